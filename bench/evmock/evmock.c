/*
 * evmock.c - an event-loop mock of OpenAI's chat completions for the benchmark
 * (bench/bench.py --mock evmock, the default).
 *
 * t/c-modules/nebula_mock in its own httpd holds one worker thread for each
 * open stream, so on a small machine the mock, not the gateway, runs out
 * first. This server answers the one route the benchmark uses with the same
 * bytes in the same shape as nebula_mock, from a few threads:
 *
 *   POST /v1/chat/completions   non-stream: one chat.completion; stream
 *       ("stream": true): chunked text/event-stream, the role chunk at once,
 *       then N content chunks ("tok<k> "), the finish chunk, the usage chunk
 *       when "stream_options": {"include_usage": true}, "data: [DONE]", each
 *       event its own write, delay_ms apart (none before the first).
 *       N = events (default 5, as nebula_mock), capped by
 *       max_completion_tokens or else max_tokens (finish_reason "length").
 *       usage: prompt_tokens P = whitespace-separated words of
 *       messages[].content (strings, or parts' "text") after the
 *       [[mock ...]] markers are cut out; completion_tokens N; total P + N.
 *       Markers: only events=N and delay_ms=D are read, other keys ignored.
 *   GET /v1/models               the list nebula_mock gives by default
 *   GET /_mock/health            {"status":"ok"}
 *   anything else                404 (405 for a known path), OpenAI's error shape
 *
 * Any Authorization is accepted. HTTP/1.1 keep-alive, Content-Length or
 * chunked request bodies (8 MiB at most), Expect: 100-continue; no
 * pipelining guarantees beyond answering in order.
 *
 * Design: -t THREADS threads, each with its own SO_REUSEPORT listener on
 * 127.0.0.1:PORT, its own epoll set (edge-triggered, non-blocking sockets,
 * TCP_NODELAY) and sorted timer lists: one FIFO per distinct delay, whose
 * deadlines (write time + delay) are sorted by construction; epoll_pwait2 sleeps
 * until the next deadline with nanosecond resolution. The main thread only
 * waits for SIGTERM / SIGINT, then stops the loops and removes the pid file.
 *
 *   evmock [-p PORT] [-t THREADS] [-c MAXCONNS] [-P PIDFILE]
 *
 * Prints nothing per request; errors go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EV_DEFAULT_EVENTS 5 /* nebula_mock's MOCK_DEFAULT_EVENTS */
#define EV_MAX_EVENTS     100000
#define EV_MAX_DELAY_MS   600000
#define EV_MAX_BODY       (8 * 1024 * 1024)
#define EV_MAX_HEAD       65536
#define EV_BURST          64 /* delay_ms=0: events written before yielding */
#define EV_FINGERPRINT    "fp_nebula_mock"

enum { K_CONN, K_LISTEN, K_WAKE };
enum { C_READ, C_STREAM, C_CLOSING };

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

struct loop;

typedef struct conn {
    int kind; /* K_CONN: first, epoll data points here */
    int fd, state;
    struct loop *loop;
    struct conn *prev, *next;
    buf_t in, out;
    size_t out_off;
    int keepalive, chunked, rd_eof, sent_continue;
    /* the stream in flight */
    buf_t prefix; /* {"id":...,"choices":[ shared by every chunk */
    buf_t usage;  /* the usage object */
    int ev, nev, n, delay_ms, include_usage, truncated, wait_drain;
    int64_t deadline;
    struct tqueue *tq; /* the timer list c is on, NULL: none */
    struct conn *tprev, *tnext;
} conn_t;

/* The streams waiting with one delay, soonest first (deadline = the time
 * the previous event went out + delay, so appending keeps the list sorted). */
typedef struct tqueue {
    int delay_ms;
    conn_t *head, *tail;
} tqueue_t;

typedef struct {
    int kind;
    int fd;
} handle_t;

typedef struct loop {
    pthread_t thread;
    int ep;
    handle_t listener, wake;
    conn_t *conns; /* every open connection, for the shutdown */
    tqueue_t **tqs; /* the non-empty timer lists */
    int tq_len, tq_cap;
    uint64_t rng;
    time_t date_sec;
    char date[64];
    buf_t scratch, str, body, evbuf;
} loop_t;

/* A parsed chat completions request. */
typedef struct {
    buf_t model; /* decoded */
    int has_model, stream, include_usage;
    long long max_completion, max_tokens;
    int has_max_completion, has_max_tokens;
    long words;
    int events, delay_ms;
} chat_req_t;

static int opt_port = 18099, opt_threads = 2, opt_maxconns = 20000;
static const char *opt_pidfile;
static atomic_int stopping, open_conns;
static atomic_ullong request_seq;
static atomic_int accept_warned;

static const char *const models[] = {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small",
                                     "claude-3-5-haiku-latest", "gemini-2.0-flash"};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void die(const char *what)
{
    fprintf(stderr, "evmock: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void buf_reserve(buf_t *b, size_t extra)
{
    size_t want = b->len + extra + 1;

    if (want <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        die("realloc");
    }
    b->p = p;
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_lit(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_addf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    buf_reserve(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Drops a large idle buffer so 20 000 idle connections stay small. */
static void buf_trim(buf_t *b)
{
    if (b->len == 0 && b->cap > 65536) {
        buf_free(b);
    }
}

/* s as a JSON string, escaped the way jansson's json_dumps escapes. */
static void buf_json_str(buf_t *b, const char *s, size_t n)
{
    size_t i;

    buf_reserve(b, n + 2);
    b->p[b->len++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];

        switch (ch) {
        case '"': buf_lit(b, "\\\""); break;
        case '\\': buf_lit(b, "\\\\"); break;
        case '\b': buf_lit(b, "\\b"); break;
        case '\f': buf_lit(b, "\\f"); break;
        case '\n': buf_lit(b, "\\n"); break;
        case '\r': buf_lit(b, "\\r"); break;
        case '\t': buf_lit(b, "\\t"); break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04X", ch);
                buf_lit(b, esc);
            }
            else {
                buf_add(b, &s[i], 1);
            }
        }
    }
    buf_add(b, "\"", 1);
}

static uint64_t rng_next(loop_t *l)
{
    /* xorshift64* */
    l->rng ^= l->rng >> 12;
    l->rng ^= l->rng << 25;
    l->rng ^= l->rng >> 27;
    return l->rng * 0x2545F4914F6CDD1DULL;
}

/* prefix + 24 random alphanumerics, as nebula_mock's mock_rand_id. */
static void rand_id(loop_t *l, buf_t *b, const char *prefix)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    char id[24];
    int i;

    for (i = 0; i < 24; i++) {
        id[i] = alnum[rng_next(l) % (sizeof(alnum) - 1)];
    }
    buf_lit(b, prefix);
    buf_add(b, id, sizeof(id));
}

static const char *http_date(loop_t *l)
{
    time_t t = time(NULL);
    struct tm tm;

    if (t != l->date_sec) {
        gmtime_r(&t, &tm);
        strftime(l->date, sizeof(l->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        l->date_sec = t;
    }
    return l->date;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static long count_words(const char *s)
{
    long words = 0;
    int in_word = 0;

    for (; *s; s++) {
        if (is_space(*s)) {
            in_word = 0;
        }
        else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    return words;
}

/* ------------------------------------------------------------------------ */
/* [[mock ...]] markers                                                      */

static char *trim(char *s)
{
    char *end;

    while (is_space(*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && is_space(end[-1])) {
        *--end = '\0';
    }
    return s;
}

static int parse_int(const char *v, int max, int *out)
{
    char *end;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > max) {
        return 0;
    }
    *out = (int)x;
    return 1;
}

/* "k=v,k=v": events and delay_ms; other keys and bad values are ignored. */
static void marker_parse(chat_req_t *r, char *spec)
{
    char *state, *item;

    for (item = strtok_r(spec, ",", &state); item; item = strtok_r(NULL, ",", &state)) {
        char *eq = strchr(item, '='), *k, *v;

        if (!eq) {
            continue;
        }
        *eq = '\0';
        k = trim(item);
        v = trim(eq + 1);
        if (!strcmp(k, "events")) {
            parse_int(v, EV_MAX_EVENTS, &r->events);
        }
        else if (!strcmp(k, "delay_ms")) {
            parse_int(v, EV_MAX_DELAY_MS, &r->delay_ms);
        }
    }
}

/* Cuts the markers out of text (NUL-terminated, changed in place), applies
 * them and counts the words left, as nebula_mock's mock_markers_strip. */
static void text_add(chat_req_t *r, char *text)
{
    char *start;

    while ((start = strstr(text, "[[mock")) != NULL) {
        char *end = strstr(start, "]]");
        char spec[512];
        size_t n;

        if (!end) {
            break;
        }
        n = (size_t)(end - start - 6);
        if (n < sizeof(spec)) {
            memcpy(spec, start + 6, n);
            spec[n] = '\0';
            marker_parse(r, spec);
        }
        memmove(start, end + 2, strlen(end + 2) + 1);
    }
    r->words += count_words(text);
}

/* ------------------------------------------------------------------------ */
/* A tiny JSON scanner: just what the chat request needs                     */

typedef struct {
    const char *p, *e;
    int bad;
    const char *why;
} js_t;

static void js_fail(js_t *j, const char *why)
{
    if (!j->bad) {
        j->bad = 1;
        j->why = why;
    }
}

static void js_ws(js_t *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int js_peek(js_t *j)
{
    js_ws(j);
    return j->p < j->e ? (unsigned char)*j->p : -1;
}

static int js_eat(js_t *j, char c)
{
    if (js_peek(j) == (unsigned char)c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int js_hex4(js_t *j, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (j->e - j->p < 4) {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        char c = j->p[i];

        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        }
        else {
            return 0;
        }
    }
    j->p += 4;
    *out = v;
    return 1;
}

static void utf8_put(buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_add(b, u, n);
}

/* A string at j->p; decoded into out (emptied first) unless out is NULL. */
static int js_str(js_t *j, buf_t *out)
{
    if (!js_eat(j, '"')) {
        js_fail(j, "string expected");
        return 0;
    }
    if (out) {
        out->len = 0;
        buf_reserve(out, 0);
        out->p[0] = '\0';
    }
    while (j->p < j->e) {
        const char *run = j->p;
        unsigned cp, lo;

        while (j->p < j->e && *j->p != '"' && *j->p != '\\' &&
               (unsigned char)*j->p >= 0x20) {
            j->p++;
        }
        if (out && j->p > run) {
            buf_add(out, run, (size_t)(j->p - run));
        }
        if (j->p >= j->e) {
            break;
        }
        if (*j->p == '"') {
            j->p++;
            return 1;
        }
        if ((unsigned char)*j->p < 0x20) {
            js_fail(j, "control character in a string");
            return 0;
        }
        j->p++; /* backslash */
        if (j->p >= j->e) {
            break;
        }
        switch (*j->p++) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!js_hex4(j, &cp)) {
                js_fail(j, "bad \\u escape");
                return 0;
            }
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (j->e - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
                    js_fail(j, "lone surrogate");
                    return 0;
                }
                j->p += 2;
                if (!js_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    js_fail(j, "bad surrogate pair");
                    return 0;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                js_fail(j, "lone surrogate");
                return 0;
            }
            if (cp == 0) {
                js_fail(j, "\\u0000 is not allowed");
                return 0;
            }
            break;
        default:
            js_fail(j, "bad escape");
            return 0;
        }
        if (out) {
            utf8_put(out, cp);
        }
    }
    js_fail(j, "unterminated string");
    return 0;
}

/* A number; *is_int when it has no fraction or exponent (jansson's integer). */
static int js_num(js_t *j, long long *v, int *is_int)
{
    const char *s = j->p;
    char tmp[64];
    size_t n;

    *is_int = 1;
    if (j->p < j->e && *j->p == '-') {
        j->p++;
    }
    if (j->p >= j->e || *j->p < '0' || *j->p > '9') {
        js_fail(j, "bad number");
        return 0;
    }
    while (j->p < j->e && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
                           *j->p == 'E' || *j->p == '+' || *j->p == '-')) {
        if (*j->p == '.' || *j->p == 'e' || *j->p == 'E') {
            *is_int = 0;
        }
        j->p++;
    }
    n = (size_t)(j->p - s);
    if (n >= sizeof(tmp)) {
        *is_int = 0;
        return 1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    *v = *is_int ? strtoll(tmp, NULL, 10) : 0;
    if (errno) {
        *is_int = 0;
    }
    return 1;
}

static int js_word(js_t *j, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)(j->e - j->p) >= n && !memcmp(j->p, w, n)) {
        j->p += n;
        return 1;
    }
    js_fail(j, "unexpected token");
    return 0;
}

static void js_skip(js_t *j, int depth)
{
    long long v;
    int is_int;

    if (depth > 64) {
        js_fail(j, "nested too deep");
        return;
    }
    switch (js_peek(j)) {
    case '"':
        js_str(j, NULL);
        break;
    case '{':
        j->p++;
        if (js_eat(j, '}')) {
            break;
        }
        do {
            js_str(j, NULL);
            if (!js_eat(j, ':')) {
                js_fail(j, "':' expected");
            }
            if (!j->bad) {
                js_skip(j, depth + 1);
            }
        } while (!j->bad && js_eat(j, ','));
        if (!j->bad && !js_eat(j, '}')) {
            js_fail(j, "'}' expected");
        }
        break;
    case '[':
        j->p++;
        if (js_eat(j, ']')) {
            break;
        }
        do {
            js_skip(j, depth + 1);
        } while (!j->bad && js_eat(j, ','));
        if (!j->bad && !js_eat(j, ']')) {
            js_fail(j, "']' expected");
        }
        break;
    case 't':
        js_word(j, "true");
        break;
    case 'f':
        js_word(j, "false");
        break;
    case 'n':
        js_word(j, "null");
        break;
    case -1:
        js_fail(j, "unexpected end of input");
        break;
    default:
        js_num(j, &v, &is_int);
        break;
    }
}

/* Iterates an object: calls fn(j, key, arg) with j->p at each value; fn must
 * consume the value. */
typedef void (*js_member_fn)(js_t *j, const char *key, void *arg);

static void js_object(js_t *j, buf_t *keybuf, js_member_fn fn, void *arg)
{
    if (!js_eat(j, '{')) {
        js_fail(j, "object expected");
        return;
    }
    if (js_eat(j, '}')) {
        return;
    }
    do {
        char key[64];

        if (!js_str(j, keybuf)) {
            return;
        }
        snprintf(key, sizeof(key), "%s", keybuf->p);
        if (!js_eat(j, ':')) {
            js_fail(j, "':' expected");
            return;
        }
        fn(j, key, arg);
    } while (!j->bad && js_eat(j, ','));
    if (!j->bad && !js_eat(j, '}')) {
        js_fail(j, "'}' expected");
    }
}

typedef struct {
    chat_req_t *r;
    loop_t *l;
} scan_t;

/* A string value: its text counted and its markers applied. */
static void scan_text(js_t *j, scan_t *s)
{
    if (js_str(j, &s->l->str)) {
        text_add(s->r, s->l->str.p);
    }
}

static void scan_part(js_t *j, const char *key, void *arg)
{
    if (!strcmp(key, "text") && js_peek(j) == '"') {
        scan_text(j, arg);
    }
    else {
        js_skip(j, 1);
    }
}

/* content: a string, or parts (strings, or objects with "text"). */
static void scan_message(js_t *j, const char *key, void *arg)
{
    scan_t *s = arg;

    if (strcmp(key, "content")) {
        js_skip(j, 1);
        return;
    }
    if (js_peek(j) == '"') {
        scan_text(j, s);
        return;
    }
    if (js_peek(j) != '[') {
        js_skip(j, 1);
        return;
    }
    j->p++;
    if (js_eat(j, ']')) {
        return;
    }
    do {
        int c = js_peek(j);

        if (c == '"') {
            scan_text(j, s);
        }
        else if (c == '{') {
            js_object(j, &s->l->scratch, scan_part, s);
        }
        else {
            js_skip(j, 2);
        }
    } while (!j->bad && js_eat(j, ','));
    if (!j->bad && !js_eat(j, ']')) {
        js_fail(j, "']' expected");
    }
}

static void scan_stream_options(js_t *j, const char *key, void *arg)
{
    scan_t *s = arg;

    if (!strcmp(key, "include_usage") && js_peek(j) == 't') {
        s->r->include_usage = js_word(j, "true");
    }
    else {
        if (!strcmp(key, "include_usage")) {
            s->r->include_usage = 0;
        }
        js_skip(j, 1);
    }
}

static void scan_int(js_t *j, long long *v, int *has)
{
    int c = js_peek(j), is_int;

    if (c == '-' || (c >= '0' && c <= '9')) {
        js_num(j, v, &is_int);
        *has = is_int;
    }
    else {
        *has = 0;
        js_skip(j, 1);
    }
}

static void scan_top(js_t *j, const char *key, void *arg)
{
    scan_t *s = arg;
    chat_req_t *r = s->r;

    if (!strcmp(key, "model")) {
        if (js_peek(j) == '"') {
            r->has_model = js_str(j, &r->model);
        }
        else {
            r->has_model = 0;
            js_skip(j, 1);
        }
    }
    else if (!strcmp(key, "stream")) {
        r->stream = js_peek(j) == 't';
        js_skip(j, 1);
    }
    else if (!strcmp(key, "stream_options")) {
        r->include_usage = 0;
        if (js_peek(j) == '{') {
            js_object(j, &s->l->scratch, scan_stream_options, s);
        }
        else {
            js_skip(j, 1);
        }
    }
    else if (!strcmp(key, "messages") && js_peek(j) == '[') {
        j->p++;
        if (js_eat(j, ']')) {
            return;
        }
        do {
            if (js_peek(j) == '{') {
                js_object(j, &s->l->scratch, scan_message, s);
            }
            else {
                js_skip(j, 1);
            }
        } while (!j->bad && js_eat(j, ','));
        if (!j->bad && !js_eat(j, ']')) {
            js_fail(j, "']' expected");
        }
    }
    else if (!strcmp(key, "max_completion_tokens")) {
        scan_int(j, &r->max_completion, &r->has_max_completion);
    }
    else if (!strcmp(key, "max_tokens")) {
        scan_int(j, &r->max_tokens, &r->has_max_tokens);
    }
    else {
        js_skip(j, 1);
    }
}

/* Parses a chat request body; NULL or why it is not valid JSON. */
static const char *chat_parse(loop_t *l, const char *body, size_t len, chat_req_t *r)
{
    js_t j = {body, body + len, 0, NULL};
    scan_t s = {r, l};

    r->events = -1;
    r->delay_ms = 0;
    if (js_peek(&j) != '{') {
        js_skip(&j, 0);
        return j.bad ? j.why : "the request body must be a JSON object";
    }
    js_object(&j, &l->scratch, scan_top, &s);
    if (!j.bad && js_peek(&j) != -1) {
        js_fail(&j, "end of file expected");
    }
    return j.bad ? j.why : NULL;
}

/* ------------------------------------------------------------------------ */
/* Connections, output, timers                                               */

/* Puts c at the end of the list for delay_ms, due delay_ms from now. */
static void timer_set(conn_t *c, int delay_ms)
{
    loop_t *l = c->loop;
    tqueue_t *q = NULL;
    int i;

    for (i = 0; i < l->tq_len; i++) {
        if (l->tqs[i]->delay_ms == delay_ms) {
            q = l->tqs[i];
            break;
        }
    }
    if (!q && l->tq_len >= 32) {
        /* many delays seen: forget the lists no stream waits on */
        for (i = 0; i < l->tq_len;) {
            if (!l->tqs[i]->head) {
                free(l->tqs[i]);
                l->tqs[i] = l->tqs[--l->tq_len];
            }
            else {
                i++;
            }
        }
    }
    if (!q) {
        if (l->tq_len == l->tq_cap) {
            int cap = l->tq_cap ? l->tq_cap * 2 : 8;
            tqueue_t **a = realloc(l->tqs, (size_t)cap * sizeof(*a));

            if (!a) {
                die("realloc");
            }
            l->tqs = a;
            l->tq_cap = cap;
        }
        q = calloc(1, sizeof(*q));
        if (!q) {
            die("calloc");
        }
        q->delay_ms = delay_ms;
        l->tqs[l->tq_len++] = q;
    }
    c->deadline = now_ns() + (int64_t)delay_ms * 1000000;
    c->tq = q;
    c->tnext = NULL;
    c->tprev = q->tail;
    if (q->tail) {
        q->tail->tnext = c;
    }
    else {
        q->head = c;
    }
    q->tail = c;
}

/* Takes c off its list; an empty list stays for the next event. */
static void timer_clear(conn_t *c)
{
    tqueue_t *q = c->tq;

    if (!q) {
        return;
    }
    if (c->tprev) {
        c->tprev->tnext = c->tnext;
    }
    else {
        q->head = c->tnext;
    }
    if (c->tnext) {
        c->tnext->tprev = c->tprev;
    }
    else {
        q->tail = c->tprev;
    }
    c->tq = NULL;
    c->tprev = c->tnext = NULL;
}

/* The connection due first, NULL if no timer is set. */
static conn_t *timer_first(loop_t *l)
{
    conn_t *first = NULL;
    int i;

    for (i = 0; i < l->tq_len; i++) {
        conn_t *h = l->tqs[i]->head;

        if (h && (!first || h->deadline < first->deadline)) {
            first = h;
        }
    }
    return first;
}

static void conn_close(conn_t *c)
{
    loop_t *l = c->loop;

    timer_clear(c);
    close(c->fd);
    if (c->prev) {
        c->prev->next = c->next;
    }
    else {
        l->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->prefix);
    buf_free(&c->usage);
    free(c);
    atomic_fetch_sub(&open_conns, 1);
}

/* Writes what c->out holds; -1 on an error (the caller closes), else 0. */
static int conn_flush(conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    buf_trim(&c->out);
    return 0;
}

static int conn_pending(const conn_t *c)
{
    return c->out_off < c->out.len;
}

/* Status line and the headers every answer has, in the order httpd sends
 * nebula_mock's (X-Mock-Seq: this process's request count, from 1). */
static void head_begin(conn_t *c, int status, const char *reason)
{
    loop_t *l = c->loop;

    buf_addf(&c->out,
             "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: evmock\r\nX-Mock-Served-By: mock\r\n"
             "x-request-id: ",
             status, reason, http_date(l));
    rand_id(l, &c->out, "req_");
    buf_addf(&c->out, "\r\nX-Mock-Seq: %llu\r\n",
             (unsigned long long)atomic_fetch_add(&request_seq, 1) + 1);
    if (!c->keepalive) {
        buf_lit(&c->out, "Connection: close\r\n");
    }
    else if (!c->chunked) {
        buf_lit(&c->out, "Connection: keep-alive\r\n"); /* an HTTP/1.0 client */
    }
}

/* A whole JSON answer. */
static void send_json(conn_t *c, int status, const char *reason, const buf_t *body,
                      const char *extra_headers)
{
    head_begin(c, status, reason);
    buf_addf(&c->out, "%sContent-Length: %zu\r\nContent-Type: application/json\r\n\r\n",
             extra_headers ? extra_headers : "", body->len);
    buf_add(&c->out, body->p, body->len);
}

static void send_error(conn_t *c, int status, const char *reason, const char *msg,
                       const char *extra_headers)
{
    buf_t *b = &c->loop->body;

    b->len = 0;
    buf_lit(b, "{\"error\":{\"message\":");
    buf_json_str(b, msg, strlen(msg));
    buf_lit(b, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    send_json(c, status, reason, b, extra_headers);
}

/* x in base 10 or 16 (lower case), without printf on the per-event path. */
static void buf_uint(buf_t *b, unsigned long x, unsigned base)
{
    char tmp[24];
    int i = (int)sizeof(tmp);

    do {
        tmp[--i] = "0123456789abcdef"[x % base];
        x /= base;
    } while (x);
    buf_add(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/* One chunk of the response body (raw when the client spoke HTTP/1.0). */
static void out_chunk(conn_t *c, const char *s, size_t n)
{
    if (c->chunked) {
        buf_uint(&c->out, n, 16);
        buf_lit(&c->out, "\r\n");
    }
    buf_add(&c->out, s, n);
    if (c->chunked) {
        buf_lit(&c->out, "\r\n");
    }
}

static void usage_json(buf_t *b, long p, int n)
{
    buf_addf(b,
             "{\"prompt_tokens\":%ld,\"completion_tokens\":%d,\"total_tokens\":%ld,"
             "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
             "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
             "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}",
             p, n, p + n);
}

/* Event k of the stream (0: role, 1..n: content, n+1: finish, then the usage
 * chunk when asked for, then [DONE]) as one chunk in c->out. */
static void stream_event(conn_t *c, int k)
{
    buf_t *e = &c->loop->evbuf;
    const char *tail = c->include_usage ? ",\"usage\":null}\n\n" : "}\n\n";

    e->len = 0;
    if (k == c->nev - 1) {
        out_chunk(c, "data: [DONE]\n\n", 14);
        if (c->chunked) {
            buf_lit(&c->out, "0\r\n\r\n");
        }
        return;
    }
    buf_lit(e, "data: ");
    if (k == 0) {
        buf_add(e, c->prefix.p, c->prefix.len);
        buf_lit(e, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                   "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]");
        buf_lit(e, tail);
    }
    else if (k <= c->n) {
        buf_add(e, c->prefix.p, c->prefix.len);
        buf_lit(e, "{\"index\":0,\"delta\":{\"content\":\"tok");
        buf_uint(e, (unsigned long)k, 10);
        buf_lit(e, " \"},\"logprobs\":null,\"finish_reason\":null}]");
        buf_lit(e, tail);
    }
    else if (k == c->n + 1) {
        buf_add(e, c->prefix.p, c->prefix.len);
        buf_addf(e,
                 "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                 c->truncated ? "length" : "stop");
        buf_lit(e, tail);
    }
    else {
        /* the include_usage chunk: choices empty, usage set */
        buf_add(e, c->prefix.p, c->prefix.len);
        buf_lit(e, "],\"usage\":");
        buf_add(e, c->usage.p, c->usage.len);
        buf_lit(e, "}\n\n");
    }
    out_chunk(c, e->p, e->len);
}

static int conn_process(conn_t *c);

/* The answer to one request is queued: keep the connection or close it.
 * Returns -1 when c was closed. */
static int response_done(conn_t *c)
{
    c->state = C_READ;
    if (!c->keepalive) {
        if (conn_pending(c)) {
            c->state = C_CLOSING;
            return 0;
        }
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Writes the stream's next events: one while delay_ms > 0, else up to
 * EV_BURST. Returns -1 when c was closed. */
static int stream_step(conn_t *c)
{
    int burst = 0;

    c->wait_drain = 0;
    for (;;) {
        if (conn_pending(c)) {
            c->wait_drain = 1; /* the client is slow: the next event waits */
            return 0;
        }
        stream_event(c, c->ev++);
        if (conn_flush(c) < 0) {
            conn_close(c);
            return -1;
        }
        if (c->ev == c->nev) {
            if (response_done(c) < 0) {
                return -1;
            }
            if (c->state == C_READ && c->in.len) {
                return conn_process(c);
            }
            return 0;
        }
        if (c->delay_ms > 0) {
            timer_set(c, c->delay_ms);
            return 0;
        }
        if (++burst >= EV_BURST) {
            timer_set(c, 0);
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                    */

static void route_chat(conn_t *c, const char *body, size_t len)
{
    loop_t *l = c->loop;
    chat_req_t r;
    const char *err;
    buf_t *b = &l->body;
    char msg[256];
    int n;

    memset(&r, 0, sizeof(r));
    err = chat_parse(l, body, len, &r);
    if (err) {
        snprintf(msg, sizeof(msg), "We could not parse the JSON body of your request. %s",
                 err);
        send_error(c, 400, "Bad Request", msg, NULL);
        buf_free(&r.model);
        return;
    }
    if (!r.has_model || !r.model.len) {
        send_error(c, 400, "Bad Request", "you must provide a model parameter", NULL);
        buf_free(&r.model);
        return;
    }
    n = r.events >= 0 ? r.events : EV_DEFAULT_EVENTS;
    c->truncated = 0;
    {
        int has = r.has_max_completion || r.has_max_tokens;
        long long max = r.has_max_completion ? r.max_completion : r.max_tokens;

        if (has && max >= 0 && max < n) {
            n = (int)max;
            c->truncated = 1;
        }
    }
    c->n = n;
    c->delay_ms = r.delay_ms;
    c->include_usage = r.stream && r.include_usage;
    c->usage.len = 0;
    usage_json(&c->usage, r.words, n);
    c->prefix.len = 0;
    buf_lit(&c->prefix, "{\"id\":");
    rand_id(l, &c->prefix, "\"chatcmpl-");
    buf_addf(&c->prefix, "\",\"object\":\"%s\",\"created\":%lld,\"model\":",
             r.stream ? "chat.completion.chunk" : "chat.completion", (long long)time(NULL));
    buf_json_str(&c->prefix, r.model.p, r.model.len);
    buf_free(&r.model);
    if (!r.stream) {
        int k;

        b->len = 0;
        buf_add(b, c->prefix.p, c->prefix.len);
        buf_lit(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                   "\"content\":\"");
        for (k = 1; k <= n; k++) {
            buf_addf(b, "tok%d ", k);
        }
        buf_addf(b,
                 "\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,"
                 "\"finish_reason\":\"%s\"}],\"service_tier\":\"default\","
                 "\"system_fingerprint\":\"" EV_FINGERPRINT "\",\"usage\":",
                 c->truncated ? "length" : "stop");
        buf_add(b, c->usage.p, c->usage.len);
        buf_lit(b, "}");
        send_json(c, 200, "OK", b, NULL);
        return;
    }
    buf_lit(&c->prefix, ",\"service_tier\":\"default\",\"system_fingerprint\":\"" EV_FINGERPRINT
                        "\",\"choices\":[");
    head_begin(c, 200, "OK");
    buf_lit(&c->out, "Cache-Control: no-cache\r\n");
    if (c->chunked) {
        buf_lit(&c->out, "Transfer-Encoding: chunked\r\n");
    }
    buf_lit(&c->out, "Content-Type: text/event-stream\r\n\r\n");
    c->ev = 0;
    c->nev = n + 3 + (c->include_usage ? 1 : 0);
    c->state = C_STREAM;
}

static void route_models(conn_t *c)
{
    buf_t *b = &c->loop->body;
    size_t i;

    b->len = 0;
    buf_lit(b, "{\"object\":\"list\",\"data\":[");
    for (i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        buf_addf(b,
                 "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":1700000000,"
                 "\"owned_by\":\"nebula-mock\"}",
                 i ? "," : "", models[i]);
    }
    buf_lit(b, "]}");
    send_json(c, 200, "OK", b, NULL);
}

static void route(conn_t *c, const char *method, const char *target, const char *body,
                  size_t len)
{
    size_t plen = strcspn(target, "?");
    char msg[512];
    static const struct {
        const char *path, *method;
    } known[] = {{"/v1/chat/completions", "POST"},
                 {"/v1/models", "GET"},
                 {"/_mock/health", "GET"}};
    size_t i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].path) != plen || strncmp(target, known[i].path, plen)) {
            continue;
        }
        if (strcmp(method, known[i].method)) {
            char allow[64];

            snprintf(msg, sizeof(msg), "Invalid method for URL (%s %.*s)", method,
                     (int)plen, target);
            snprintf(allow, sizeof(allow), "Allow: %s\r\n", known[i].method);
            send_error(c, 405, "Method Not Allowed", msg, allow);
        }
        else if (i == 0) {
            route_chat(c, body, len);
        }
        else if (i == 1) {
            route_models(c);
        }
        else {
            buf_t *b = &c->loop->body;

            b->len = 0;
            buf_lit(b, "{\"status\":\"ok\"}");
            send_json(c, 200, "OK", b, NULL);
        }
        return;
    }
    snprintf(msg, sizeof(msg), "Invalid URL (%s %.*s)", method, (int)(plen > 400 ? 400 : plen),
             target);
    send_error(c, 404, "Not Found", msg, NULL);
}

/* ------------------------------------------------------------------------ */
/* HTTP/1.1 requests                                                         */

static const char *mem_find(const char *h, size_t hl, const char *n, size_t nl)
{
    return memmem(h, hl, n, nl);
}

/* Decodes a chunked body that starts at s; the bytes it took, 0 if more are
 * needed, -1 if it is malformed or too large. */
static long chunked_decode(const char *s, size_t len, buf_t *out)
{
    size_t at = 0;

    out->len = 0;
    for (;;) {
        const char *eol = mem_find(s + at, len - at, "\r\n", 2);
        char *end;
        unsigned long size;

        if (!eol) {
            return len - at > 1024 ? -1 : 0;
        }
        size = strtoul(s + at, &end, 16);
        if (end == s + at) {
            return -1;
        }
        at = (size_t)(eol - s) + 2;
        if (size == 0) {
            /* trailers, then an empty line */
            for (;;) {
                eol = mem_find(s + at, len - at, "\r\n", 2);
                if (!eol) {
                    return 0;
                }
                if (eol == s + at) {
                    return (long)(at + 2);
                }
                at = (size_t)(eol - s) + 2;
            }
        }
        if (size > EV_MAX_BODY || out->len + size > EV_MAX_BODY) {
            return -1;
        }
        if (len - at < size + 2) {
            return 0;
        }
        buf_add(out, s + at, size);
        at += size;
        if (memcmp(s + at, "\r\n", 2)) {
            return -1;
        }
        at += 2;
    }
}

static int header_is(const char *line, size_t n, const char *name, const char **val,
                     size_t *vlen)
{
    size_t nl = strlen(name);

    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl)) {
        return 0;
    }
    line += nl + 1;
    n -= nl + 1;
    while (n && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t')) {
        n--;
    }
    *val = line;
    *vlen = n;
    return 1;
}

static int token_in(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i;

    for (i = 0; i + tl <= n; i++) {
        if (!strncasecmp(v + i, tok, tl)) {
            return 1;
        }
    }
    return 0;
}

/* Answers the complete requests c->in holds. Returns -1 when c was closed. */
static int conn_process(conn_t *c)
{
    while (c->state == C_READ && c->in.len) {
        const char *p = c->in.p, *end, *line, *body;
        char method[16], target[2048];
        size_t head_len, body_len, taken;
        long long clen = 0;
        int chunked = 0, http10 = 0, close_req = 0, keep_req = 0, expect = 0;
        const char *sp1, *sp2, *eol;
        buf_t dechunked = {0};

        end = mem_find(p, c->in.len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in.len > EV_MAX_HEAD) {
                c->keepalive = 0;
                send_error(c, 431, "Request Header Fields Too Large", "Request head too large.",
                           NULL);
                c->in.len = 0;
                conn_flush(c);
                return response_done(c);
            }
            return 0;
        }
        head_len = (size_t)(end - p) + 4;
        eol = mem_find(p, head_len, "\r\n", 2);
        sp1 = memchr(p, ' ', (size_t)(eol - p));
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || (size_t)(sp1 - p) >= sizeof(method) ||
            (size_t)(sp2 - sp1 - 1) >= sizeof(target) || eol - sp2 - 1 < 8 ||
            memcmp(sp2 + 1, "HTTP/1.", 7)) {
            c->keepalive = 0;
            send_error(c, 400, "Bad Request", "Malformed request line.", NULL);
            c->in.len = 0;
            if (conn_flush(c) < 0) {
                conn_close(c);
                return -1;
            }
            return response_done(c);
        }
        memcpy(method, p, (size_t)(sp1 - p));
        method[sp1 - p] = '\0';
        memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
        target[sp2 - sp1 - 1] = '\0';
        http10 = sp2[8] == '0';
        for (line = eol + 2; line < end + 2;) {
            const char *le = mem_find(line, (size_t)(end + 2 - line), "\r\n", 2), *v;
            size_t n = (size_t)(le - line), vl;

            if (header_is(line, n, "Content-Length", &v, &vl)) {
                clen = strtoll(v, NULL, 10);
            }
            else if (header_is(line, n, "Transfer-Encoding", &v, &vl)) {
                chunked = token_in(v, vl, "chunked");
            }
            else if (header_is(line, n, "Connection", &v, &vl)) {
                close_req = token_in(v, vl, "close");
                keep_req = token_in(v, vl, "keep-alive");
            }
            else if (header_is(line, n, "Expect", &v, &vl)) {
                expect = token_in(v, vl, "100-continue");
            }
            line = le + 2;
        }
        c->keepalive = http10 ? keep_req && !chunked : !close_req;
        c->chunked = !http10;
        if (clen < 0 || clen > EV_MAX_BODY) {
            c->keepalive = 0;
            send_error(c, 413, "Request Entity Too Large",
                       "Request exceeds the maximum allowed number of bytes.", NULL);
            c->in.len = 0;
            if (conn_flush(c) < 0) {
                conn_close(c);
                return -1;
            }
            return response_done(c);
        }
        if (chunked) {
            long got = chunked_decode(p + head_len, c->in.len - head_len, &dechunked);

            if (got < 0) {
                buf_free(&dechunked);
                c->keepalive = 0;
                send_error(c, 400, "Bad Request", "Malformed chunked request body.", NULL);
                c->in.len = 0;
                if (conn_flush(c) < 0) {
                    conn_close(c);
                    return -1;
                }
                return response_done(c);
            }
            if (got == 0) {
                buf_free(&dechunked);
                goto need_more;
            }
            body = dechunked.p ? dechunked.p : "";
            body_len = dechunked.len;
            taken = head_len + (size_t)got;
        }
        else {
            if (c->in.len - head_len < (size_t)clen) {
                goto need_more;
            }
            body = p + head_len;
            body_len = (size_t)clen;
            taken = head_len + body_len;
        }
        c->sent_continue = 0;
        if (!c->chunked && !strcmp(method, "POST")) {
            c->keepalive = 0; /* HTTP/1.0: a stream ends with the connection */
        }
        route(c, method, target, body, body_len);
        buf_free(&dechunked);
        memmove(c->in.p, c->in.p + taken, c->in.len - taken);
        c->in.len -= taken;
        buf_trim(&c->in);
        if (c->state == C_STREAM) {
            return stream_step(c);
        }
        if (conn_flush(c) < 0) {
            conn_close(c);
            return -1;
        }
        if (response_done(c) < 0) {
            return -1;
        }
        continue;
    need_more:
        if (expect && !c->sent_continue && !http10) {
            c->sent_continue = 1;
            buf_lit(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            if (conn_flush(c) < 0) {
                conn_close(c);
                return -1;
            }
        }
        return 0;
    }
    return 0;
}

/* Reads what the socket has (edge-triggered: until EAGAIN). -1: closed. */
static int conn_read(conn_t *c)
{
    for (;;) {
        ssize_t n;

        if (c->in.len > EV_MAX_BODY + EV_MAX_HEAD) {
            conn_close(c); /* a body over the limit without Content-Length */
            return -1;
        }
        buf_reserve(&c->in, 16384);
        n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        if (n == 0) {
            c->rd_eof = 1;
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        }
        conn_close(c);
        return -1;
    }
    if (c->state == C_CLOSING) {
        c->in.len = 0;
        return 0;
    }
    if (c->state == C_STREAM) {
        if (c->rd_eof) {
            conn_close(c); /* the client left the stream */
            return -1;
        }
        return 0; /* a pipelined request waits for the stream to end */
    }
    if (conn_process(c) < 0) {
        return -1;
    }
    if (c->rd_eof && c->state == C_READ) {
        if (conn_pending(c)) {
            c->state = C_CLOSING;
            return 0;
        }
        conn_close(c);
        return -1;
    }
    return 0;
}

static void conn_event(conn_t *c, uint32_t ev)
{
    if (ev & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (conn_read(c) < 0) {
            return;
        }
    }
    if (ev & EPOLLOUT) {
        if (conn_pending(c) && conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        if (conn_pending(c)) {
            return;
        }
        if (c->state == C_CLOSING) {
            conn_close(c);
            return;
        }
        if (c->state == C_STREAM && c->wait_drain) {
            stream_step(c);
        }
    }
}

static void accept_all(loop_t *l)
{
    for (;;) {
        int fd = accept4(l->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        struct epoll_event ev;
        conn_t *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK &&
                !atomic_exchange(&accept_warned, 1)) {
                /* EMFILE and the like: said once, the connection waits */
                fprintf(stderr, "evmock: accept: %s\n", strerror(errno));
            }
            return;
        }
        if (atomic_fetch_add(&open_conns, 1) >= opt_maxconns) {
            atomic_fetch_sub(&open_conns, 1);
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            die("calloc");
        }
        c->kind = K_CONN;
        c->fd = fd;
        c->loop = l;
        c->keepalive = 1;
        c->next = l->conns;
        if (l->conns) {
            l->conns->prev = c;
        }
        l->conns = c;
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = c;
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            conn_close(c);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Threads, listeners, signals                                               */

static int make_listener(int reuseport)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0) {
        die("socket");
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        die("SO_REUSEPORT");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)opt_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "evmock: bind 127.0.0.1:%d: %s\n", opt_port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void *loop_run(void *arg)
{
    loop_t *l = arg;
    struct epoll_event evs[256];

    prctl(PR_SET_TIMERSLACK, 1000UL); /* wake within 1 us of a deadline, not 50 */
    while (!atomic_load(&stopping)) {
        struct timespec ts, *tsp = NULL;
        int64_t now = now_ns();
        conn_t *c;
        int n, i;

        /* only the deadlines due before this pass: a delay_ms=0 stream that
         * re-arms at once waits for the next pass, after the sockets' events */
        while ((c = timer_first(l)) != NULL && c->deadline <= now) {
            timer_clear(c);
            if (conn_pending(c)) {
                c->wait_drain = 1;
            }
            else {
                stream_step(c);
            }
        }
        now = now_ns();
        if ((c = timer_first(l)) != NULL) {
            int64_t wait = c->deadline > now ? c->deadline - now : 0;

            ts.tv_sec = wait / 1000000000;
            ts.tv_nsec = wait % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(l->ep, evs, 256, tsp, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_pwait2");
        }
        for (i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;

            if (kind == K_LISTEN) {
                accept_all(l);
            }
            else if (kind == K_CONN) {
                conn_event(evs[i].data.ptr, evs[i].events);
            }
        }
    }
    while (l->conns) {
        conn_close(l->conns);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: evmock [-p PORT] [-t THREADS] [-c MAXCONNS] [-P PIDFILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    loop_t *loops;
    sigset_t set;
    struct rlimit rl;
    int i, opt, sig, probe;
    uint64_t seed;

    while ((opt = getopt(argc, argv, "p:t:c:P:")) != -1) {
        switch (opt) {
        case 'p': opt_port = atoi(optarg); break;
        case 't': opt_threads = atoi(optarg); break;
        case 'c': opt_maxconns = atoi(optarg); break;
        case 'P': opt_pidfile = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || opt_port <= 0 || opt_port > 65535 || opt_threads < 1 ||
        opt_threads > 256 || opt_maxconns < 1) {
        usage();
    }
    /* room for every connection plus the listeners */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt_maxconns + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)opt_maxconns + 64 ? rl.rlim_max
                                                               : (rlim_t)opt_maxconns + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* SO_REUSEPORT would let a second server share the port: refuse instead */
    probe = make_listener(0);
    close(probe);

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the threads inherit it */
    signal(SIGPIPE, SIG_IGN);

    loops = calloc((size_t)opt_threads, sizeof(*loops));
    if (!loops) {
        die("calloc");
    }
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
        seed = (uint64_t)now_ns() ^ (uint64_t)getpid();
    }
    for (i = 0; i < opt_threads; i++) {
        loop_t *l = &loops[i];
        struct epoll_event ev;

        l->rng = (seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1))) | 1;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->listener.kind = K_LISTEN;
        l->listener.fd = make_listener(1);
        if (listen(l->listener.fd, 4096) < 0) {
            die("listen");
        }
        l->wake.kind = K_WAKE;
        l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->ep < 0 || l->wake.fd < 0) {
            die("epoll/eventfd");
        }
        ev.events = EPOLLIN;
        ev.data.ptr = &l->listener;
        epoll_ctl(l->ep, EPOLL_CTL_ADD, l->listener.fd, &ev);
        ev.data.ptr = &l->wake;
        epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake.fd, &ev);
    }
    for (i = 0; i < opt_threads; i++) {
        if (pthread_create(&loops[i].thread, NULL, loop_run, &loops[i]) != 0) {
            die("pthread_create");
        }
    }
    if (opt_pidfile) {
        FILE *f = fopen(opt_pidfile, "w");

        if (!f) {
            die(opt_pidfile);
        }
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
    fprintf(stderr, "evmock: listening on 127.0.0.1:%d, %d thread%s\n", opt_port,
            opt_threads, opt_threads > 1 ? "s" : "");

    do {
        sig = 0;
        sigwait(&set, &sig);
    } while (sig != SIGTERM && sig != SIGINT);
    atomic_store(&stopping, 1);
    for (i = 0; i < opt_threads; i++) {
        uint64_t one = 1;

        if (write(loops[i].wake.fd, &one, sizeof(one)) < 0) {
            /* the loop still sees stopping at its next wake-up */
        }
    }
    for (i = 0; i < opt_threads; i++) {
        loop_t *l = &loops[i];

        pthread_join(l->thread, NULL);
        close(l->listener.fd);
        close(l->wake.fd);
        close(l->ep);
        while (l->tq_len) {
            free(l->tqs[--l->tq_len]);
        }
        free(l->tqs);
        buf_free(&l->scratch);
        buf_free(&l->str);
        buf_free(&l->body);
        buf_free(&l->evbuf);
    }
    free(loops);
    if (opt_pidfile) {
        unlink(opt_pidfile);
    }
    fprintf(stderr, "evmock: stopped\n");
    return 0;
}

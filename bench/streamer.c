/* streamer.c: holds N concurrent SSE (chat completion, stream: true) requests
 * against one HTTP/1.1 server on loopback and times every event. Each of the N
 * connections sends one streaming request after another (keep-alive) for the
 * given duration, so N streams stay open at once; a connection that would
 * start a stream after the duration stops. Prints one JSON object:
 * streams finished and failed, time to first event (TTFT, from the request's
 * write to the first "data:" line), the gaps between consecutive events of a
 * stream, the largest gap, and stalls (a gap or a first event later than
 * --stall-ms, or a failed stream). Times in microseconds.
 *
 *   streamer -p PORT -c CONNS -d SECONDS -k KEY -b BODYFILE [-u PATH]
 *            [-H "Name: value"]... [-r RAMP_PER_S] [-s STALL_MS]
 *
 * One thread, epoll, non-blocking sockets; a minimal HTTP/1.1 response
 * parser (status line, Content-Length or chunked). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HDRS 8
#define BUF 16384

enum { S_IDLE, S_CONNECTING, S_SEND, S_HEAD, S_BODY, S_DONE };

typedef struct {
    int fd, state, status, chunked, chunk_state, sent_off, events;
    long clen, chunk_left;
    int64_t t_req, t_last, max_gap;
    char head[8192];
    int head_len;
    char line[64];
    int line_len, line_skip;
} conn_t;

typedef struct {
    int64_t *v;
    size_t n, cap;
} vec_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void push(vec_t *v, int64_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4096;
        v->v = realloc(v->v, v->cap * sizeof(*v->v));
        if (!v->v) {
            perror("realloc");
            exit(1);
        }
    }
    v->v[v->n++] = x;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(vec_t *v, double q)
{
    size_t i;
    if (!v->n) {
        return -1;
    }
    i = (size_t)(q * (double)(v->n - 1) + 0.5);
    return v->v[i];
}

static char *request;
static int request_len, port, conns_n, stall_ms = 1000;
static int64_t t_end;
static conn_t *conns;
static int ep;
static vec_t ttft, gaps;
static long done_ok, failed, stalls, started, max_open, open_now;
static int64_t max_gap_all;

static void fail_conn(conn_t *c, int reopen);

static void open_conn(conn_t *c)
{
    struct sockaddr_in a;
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        c->state = S_DONE;
        failed++;
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        c->state = S_DONE;
        failed++;
        return;
    }
    c->state = S_CONNECTING;
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    open_now++;
    if (open_now > max_open) {
        max_open = open_now;
    }
}

static void start_request(conn_t *c)
{
    struct epoll_event ev;

    if (now_us() >= t_end) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->state = S_DONE;
        open_now--;
        return;
    }
    c->state = S_SEND;
    c->sent_off = 0;
    c->head_len = 0;
    c->status = 0;
    c->chunked = 0;
    c->clen = -1;
    c->chunk_state = 0;
    c->chunk_left = 0;
    c->events = 0;
    c->line_len = 0;
    c->line_skip = 0;
    c->max_gap = 0;
    c->t_req = now_us();
    c->t_last = 0;
    started++;
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void fail_conn(conn_t *c, int reopen)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        open_now--;
    }
    failed++;
    stalls++;
    c->state = S_DONE;
    if (reopen && now_us() < t_end) {
        open_conn(c);
    }
}

/* One line of the decoded body: an event when it starts with "data:". */
static void body_line(conn_t *c, int64_t t)
{
    if (c->line_len >= 5 && !memcmp(c->line, "data:", 5)) {
        if (c->events == 0) {
            push(&ttft, t - c->t_req);
            if ((t - c->t_req) / 1000 > stall_ms) {
                stalls++;
            }
        }
        else {
            int64_t g = t - c->t_last;
            push(&gaps, g);
            if (g > c->max_gap) {
                c->max_gap = g;
            }
        }
        c->t_last = t;
        c->events++;
    }
    c->line_len = 0;
}

static void body_bytes(conn_t *c, const char *p, size_t n, int64_t t)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (p[i] == '\n') {
            body_line(c, t);
        }
        else if (p[i] != '\r' && c->line_len < (int)sizeof(c->line)) {
            c->line[c->line_len++] = p[i];
        }
    }
}

static void finish_stream(conn_t *c)
{
    done_ok++;
    if (c->max_gap / 1000 > stall_ms) {
        stalls++;
    }
    if (c->max_gap > max_gap_all) {
        max_gap_all = c->max_gap;
    }
    if (c->status != 200 || c->events == 0) {
        done_ok--;
        failed++;
        stalls++;
    }
    start_request(c);
}

/* Consumes body bytes p[0..n); returns 1 when the response is complete. */
static int body_feed(conn_t *c, const char *p, size_t n, int64_t t)
{
    size_t i = 0;
    if (!c->chunked) {
        body_bytes(c, p, n, t);
        if (c->clen >= 0) {
            c->clen -= (long)n;
            return c->clen <= 0;
        }
        return 0;
    }
    while (i < n) {
        if (c->chunk_state == 0) { /* size line */
            char ch = p[i++];
            if (ch == '\n') {
                c->chunk_state = c->chunk_left ? 1 : 3;
            }
            else if (ch >= '0' && ch <= '9') {
                c->chunk_left = c->chunk_left * 16 + (ch - '0');
            }
            else if ((ch | 32) >= 'a' && (ch | 32) <= 'f') {
                c->chunk_left = c->chunk_left * 16 + ((ch | 32) - 'a' + 10);
            }
            else if (ch != '\r') {
                c->chunk_state = 4; /* extension: skip to end of line */
            }
        }
        else if (c->chunk_state == 4) {
            if (p[i++] == '\n') {
                c->chunk_state = c->chunk_left ? 1 : 3;
            }
        }
        else if (c->chunk_state == 1) { /* data */
            size_t k = n - i < (size_t)c->chunk_left ? n - i : (size_t)c->chunk_left;
            body_bytes(c, p + i, k, t);
            i += k;
            c->chunk_left -= (long)k;
            if (!c->chunk_left) {
                c->chunk_state = 2;
            }
        }
        else if (c->chunk_state == 2) { /* CRLF after data */
            if (p[i++] == '\n') {
                c->chunk_state = 0;
            }
        }
        else { /* 3: trailer section, ends with an empty line */
            if (p[i] == '\n') {
                return 1;
            }
            if (p[i] != '\r') {
                c->chunk_state = 5;
            }
            i++;
        }
        if (c->chunk_state == 5) { /* a trailer line */
            while (i < n && p[i] != '\n') {
                i++;
            }
            if (i < n) {
                i++;
                c->chunk_state = 3;
            }
        }
    }
    return 0;
}

static void parse_head(conn_t *c, int64_t t)
{
    char *end = memmem(c->head, (size_t)c->head_len, "\r\n\r\n", 4), *h;
    size_t rest;
    if (!end) {
        if (c->head_len >= (int)sizeof(c->head) - 1) {
            fail_conn(c, 1);
        }
        return;
    }
    *end = '\0';
    c->status = atoi(c->head + 9);
    for (h = strstr(c->head, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
        if (!strncasecmp(h + 2, "transfer-encoding:", 18) && strcasestr(h + 20, "chunked")) {
            c->chunked = 1;
        }
        else if (!strncasecmp(h + 2, "content-length:", 15)) {
            c->clen = atol(h + 17);
        }
    }
    rest = (size_t)(c->head + c->head_len - (end + 4));
    c->state = S_BODY;
    if (!c->chunked && c->clen == 0) {
        finish_stream(c);
        return;
    }
    if (rest && body_feed(c, end + 4, rest, t)) {
        finish_stream(c);
    }
}

static void on_event(conn_t *c, uint32_t evs)
{
    char buf[BUF];
    ssize_t n;
    int64_t t;

    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (evs & (EPOLLERR | EPOLLHUP))) {
            fail_conn(c, 0);
            return;
        }
        start_request(c);
        if (c->state == S_DONE) {
            return;
        }
    }
    if (c->state == S_SEND) {
        n = write(c->fd, request + c->sent_off, (size_t)(request_len - c->sent_off));
        if (n < 0 && errno != EAGAIN) {
            fail_conn(c, 1);
            return;
        }
        if (n > 0) {
            c->sent_off += (int)n;
        }
        if (c->sent_off == request_len) {
            struct epoll_event ev;
            c->state = S_HEAD;
            ev.events = EPOLLIN;
            ev.data.ptr = c;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        return;
    }
    for (;;) {
        n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            if (c->state == S_BODY && !c->chunked && c->clen < 0) {
                finish_stream(c);
                fail_conn(c, 1); /* closed after an unframed body: reconnect */
                failed--;
                stalls--;
            }
            else {
                fail_conn(c, 1);
            }
            return;
        }
        t = now_us();
        if (c->state == S_HEAD) {
            size_t k = (size_t)n;
            if (k > sizeof(c->head) - 1 - (size_t)c->head_len) {
                k = sizeof(c->head) - 1 - (size_t)c->head_len;
            }
            memcpy(c->head + c->head_len, buf, k);
            c->head_len += (int)k;
            parse_head(c, t);
        }
        else if (c->state == S_BODY) {
            if (body_feed(c, buf, (size_t)n, t)) {
                finish_stream(c);
            }
        }
        if (c->state == S_DONE || c->state == S_SEND) {
            return;
        }
    }
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)*len + 1);
    if (!s || fread(s, 1, (size_t)*len, f) != (size_t)*len) {
        perror(path);
        exit(2);
    }
    s[*len] = '\0';
    fclose(f);
    return s;
}

int main(int argc, char **argv)
{
    const char *key = "sk-bench", *path = "/v1/chat/completions", *bodyfile = NULL;
    const char *hdrs[MAX_HDRS];
    int nh = 0, opt, i, launched = 0, ramp = 2000;
    double secs = 5;
    long blen = 0;
    char *body, *extra = NULL;
    struct epoll_event evs[1024];
    int64_t t0;
    long want;
    size_t xl = 0;

    while ((opt = getopt(argc, argv, "p:c:d:k:b:u:H:r:s:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': conns_n = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'k': key = optarg; break;
        case 'b': bodyfile = optarg; break;
        case 'u': path = optarg; break;
        case 'H':
            if (nh < MAX_HDRS) {
                hdrs[nh++] = optarg;
            }
            break;
        case 'r': ramp = atoi(optarg); break;
        case 's': stall_ms = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: streamer -p PORT -c CONNS -d SECONDS -b BODY [-k KEY] "
                            "[-u PATH] [-H HDR]... [-r RAMP_PER_S] [-s STALL_MS]\n");
            return 2;
        }
    }
    if (!port || conns_n < 1 || !bodyfile || ramp < 1) {
        fprintf(stderr, "streamer: -p, -c and -b are required\n");
        return 2;
    }
    body = slurp(bodyfile, &blen);
    for (i = 0; i < nh; ++i) {
        xl += strlen(hdrs[i]) + 2;
    }
    extra = calloc(1, xl + 1);
    for (i = 0; i < nh; ++i) {
        strcat(extra, hdrs[i]);
        strcat(extra, "\r\n");
    }
    request_len = asprintf(&request,
                           "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                           "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                           "Accept: text/event-stream\r\n%sContent-Length: %ld\r\n\r\n%s",
                           path, port, key, extra, blen, body);
    conns = calloc((size_t)conns_n, sizeof(*conns));
    ep = epoll_create1(0);
    t0 = now_us();
    /* the ramp is not part of the hold: the duration starts once all are open */
    t_end = t0 + (int64_t)(secs * 1e6) + (int64_t)conns_n * 1000000 / ramp;
    while (1) {
        int n, timeout = 50;
        int64_t t = now_us();
        want = (long)((t - t0) * ramp / 1000000) + 1;
        while (launched < conns_n && launched < want) {
            conns[launched].fd = -1;
            open_conn(&conns[launched++]);
        }
        if (launched == conns_n && open_now == 0) {
            break;
        }
        if (t > t_end + 30000000) { /* 30 s grace after the end: the rest are stuck */
            for (i = 0; i < launched; ++i) {
                if (conns[i].state != S_DONE) {
                    stalls++;
                    failed++;
                }
            }
            break;
        }
        if (launched < conns_n) {
            timeout = 1;
        }
        n = epoll_wait(ep, evs, 1024, timeout);
        for (i = 0; i < n; ++i) {
            on_event(evs[i].data.ptr, evs[i].events);
        }
    }
    qsort(ttft.v, ttft.n, sizeof(int64_t), cmp64);
    qsort(gaps.v, gaps.n, sizeof(int64_t), cmp64);
    printf("{\"conns\":%d,\"max_open\":%ld,\"started\":%ld,\"finished\":%ld,\"failed\":%ld,"
           "\"stalls\":%ld,\"events\":%zu,\"ttft_us\":{\"p50\":%lld,\"p90\":%lld,"
           "\"p99\":%lld,\"max\":%lld},\"gap_us\":{\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,"
           "\"p999\":%lld,\"max\":%lld},\"seconds\":%.2f}\n",
           conns_n, max_open, started, done_ok, failed, stalls, gaps.n + ttft.n,
           (long long)pct(&ttft, 0.5), (long long)pct(&ttft, 0.9),
           (long long)pct(&ttft, 0.99), (long long)pct(&ttft, 1.0),
           (long long)pct(&gaps, 0.5), (long long)pct(&gaps, 0.9),
           (long long)pct(&gaps, 0.99), (long long)pct(&gaps, 0.999),
           (long long)max_gap_all, (double)(now_us() - t0) / 1e6);
    return 0;
}

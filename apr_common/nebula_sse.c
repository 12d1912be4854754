/* nebula_sse.c: the text/event-stream parser the relay uses to read upstream
 * streams chunk by chunk, and the writer for the events it emits. Owns the
 * parser's reusable line/data/type/id buffers (malloc'd, bounded by
 * max_event_bytes, freed by a cleanup on the parser's pool). Rules: see
 * nebula_sse.h and WHATWG HTML "Interpreting an event stream". */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "nebula_sse.h"

typedef struct {
    char *p;
    apr_size_t len;
    apr_size_t cap;
} sse_buf_t;

struct nebula_sse_parser_t {
    apr_size_t max;
    nebula_sse_event_fn *on_event;
    nebula_sse_comment_fn *on_comment;
    void *baton;
    sse_buf_t line; /* the current line while it spans chunks */
    sse_buf_t data; /* data buffer: value + LF per data line */
    sse_buf_t type; /* event type buffer */
    sse_buf_t id;   /* last event ID buffer, persists across events */
    long retry;
    int bom_pos;       /* bytes of the UTF-8 BOM matched at stream start */
    int bom_done;      /* past the point where a BOM may appear */
    int after_cr;      /* the last chunk ended in a CR that ended a line */
    int in_event;      /* field lines seen since the last blank line */
    apr_status_t fail; /* sticky error */
};

static const char sse_bom[3] = {'\xEF', '\xBB', '\xBF'};

static apr_status_t sse_parser_cleanup(void *data)
{
    nebula_sse_parser_t *ps = data;

    free(ps->line.p);
    free(ps->data.p);
    free(ps->type.p);
    free(ps->id.p);
    memset(ps, 0, sizeof(*ps));
    return APR_SUCCESS;
}

/* Make room for len bytes plus a NUL; capacity never exceeds max + 1. */
static apr_status_t sse_buf_reserve(sse_buf_t *b, apr_size_t len, apr_size_t max)
{
    apr_size_t cap;
    char *np;

    if (len + 1 <= b->cap) {
        return APR_SUCCESS;
    }
    if (len > max) {
        return APR_ENOSPC;
    }
    cap = b->cap < 64 ? 64 : b->cap;
    while (cap < len + 1) {
        cap *= 2;
    }
    if (cap > max + 1) {
        cap = max + 1;
    }
    np = realloc(b->p, cap);
    if (np == NULL) {
        return APR_ENOMEM;
    }
    b->p = np;
    b->cap = cap;
    return APR_SUCCESS;
}

static apr_status_t sse_buf_append(sse_buf_t *b, const char *s, apr_size_t n,
                                   apr_size_t max)
{
    apr_status_t rv = sse_buf_reserve(b, b->len + n, max);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (n > 0) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
    return APR_SUCCESS;
}

static apr_status_t sse_buf_set(sse_buf_t *b, const char *s, apr_size_t n, apr_size_t max)
{
    b->len = 0;
    return sse_buf_append(b, s, n, max);
}

nebula_sse_parser_t *nebula_sse_parser_create(apr_pool_t *p, apr_size_t max_event_bytes,
                                              nebula_sse_event_fn *on_event,
                                              nebula_sse_comment_fn *on_comment,
                                              void *baton)
{
    nebula_sse_parser_t *ps = apr_pcalloc(p, sizeof(*ps));

    ps->max = max_event_bytes ? max_event_bytes : NEBULA_SSE_DEFAULT_MAX_EVENT;
    ps->on_event = on_event;
    ps->on_comment = on_comment;
    ps->baton = baton;
    ps->retry = -1;
    ps->fail = APR_SUCCESS;
    apr_pool_cleanup_register(p, ps, sse_parser_cleanup, apr_pool_cleanup_null);
    return ps;
}

static apr_status_t sse_dispatch(nebula_sse_parser_t *ps)
{
    nebula_sse_event_t ev;
    apr_status_t rv = APR_SUCCESS;

    ps->in_event = 0;
    if (ps->data.len == 0) {
        ps->type.len = 0;
        return APR_SUCCESS;
    }
    /* the data buffer always ends in the LF its last line appended */
    ps->data.p[--ps->data.len] = '\0';
    /* a C string: a type a NUL cuts down to nothing is no type */
    ev.event = ps->type.len && ps->type.p[0] != '\0' ? ps->type.p : NULL;
    ev.data = ps->data.p;
    ev.data_len = ps->data.len;
    ev.id = ps->id.len ? ps->id.p : "";
    ev.retry = ps->retry;
    if (ps->on_event != NULL) {
        rv = ps->on_event(ps->baton, &ev);
    }
    ps->data.len = 0;
    ps->type.len = 0;
    return rv;
}

static void sse_field_retry(nebula_sse_parser_t *ps, const char *v, apr_size_t n)
{
    long val = 0;
    apr_size_t i;

    if (n == 0) {
        return;
    }
    for (i = 0; i < n; ++i) {
        if (v[i] < '0' || v[i] > '9' || val > (LONG_MAX - (v[i] - '0')) / 10) {
            return; /* not only ASCII digits, or too large: ignored */
        }
        val = val * 10 + (v[i] - '0');
    }
    ps->retry = val;
}

static apr_status_t sse_field(nebula_sse_parser_t *ps, const char *name, apr_size_t nlen,
                              const char *value, apr_size_t vlen)
{
    apr_status_t rv;

    ps->in_event = 1;
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        rv = sse_buf_append(&ps->data, value, vlen, ps->max);
        return rv == APR_SUCCESS ? sse_buf_append(&ps->data, "\n", 1, ps->max) : rv;
    }
    if (nlen == 5 && memcmp(name, "event", 5) == 0) {
        return sse_buf_set(&ps->type, value, vlen, ps->max);
    }
    if (nlen == 2 && memcmp(name, "id", 2) == 0) {
        if (memchr(value, '\0', vlen) == NULL) {
            return sse_buf_set(&ps->id, value, vlen, ps->max);
        }
        return APR_SUCCESS;
    }
    if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
        sse_field_retry(ps, value, vlen);
    }
    return APR_SUCCESS;
}

static apr_status_t sse_line(nebula_sse_parser_t *ps, const char *line, apr_size_t n)
{
    const char *colon;
    apr_size_t nlen;

    if (n + ps->data.len + ps->type.len > ps->max) {
        return APR_ENOSPC;
    }
    if (n == 0) {
        return sse_dispatch(ps);
    }
    if (line[0] == ':') {
        return ps->on_comment ? ps->on_comment(ps->baton, line + 1, n - 1) : APR_SUCCESS;
    }
    colon = memchr(line, ':', n);
    if (colon == NULL) {
        return sse_field(ps, line, n, "", 0);
    }
    nlen = (apr_size_t)(colon - line);
    n -= nlen + 1;
    ++colon;
    if (n > 0 && *colon == ' ') {
        ++colon;
        --n;
    }
    return sse_field(ps, line, nlen, colon, n);
}

static const char *sse_find_eol(const char *s, const char *end)
{
    for (; s < end; ++s) {
        if (*s == '\n' || *s == '\r') {
            return s;
        }
    }
    return NULL;
}

/* Split [s, end) into lines; keep an unterminated tail in ps->line. */
static apr_status_t sse_scan(nebula_sse_parser_t *ps, const char *s, const char *end)
{
    const char *eol;
    apr_status_t rv;

    if (ps->after_cr && s < end) {
        ps->after_cr = 0;
        if (*s == '\n') {
            ++s; /* second half of a CRLF split across chunks */
        }
    }
    while (s < end) {
        eol = sse_find_eol(s, end);
        if (eol == NULL) {
            apr_size_t n = (apr_size_t)(end - s);

            if (ps->line.len + n + ps->data.len + ps->type.len > ps->max) {
                return APR_ENOSPC;
            }
            return sse_buf_append(&ps->line, s, n, ps->max);
        }
        if (ps->line.len > 0) {
            rv = sse_buf_append(&ps->line, s, (apr_size_t)(eol - s), ps->max);
            if (rv == APR_SUCCESS) {
                rv = sse_line(ps, ps->line.p, ps->line.len);
            }
            ps->line.len = 0;
        }
        else {
            rv = sse_line(ps, s, (apr_size_t)(eol - s));
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        s = eol + 1;
        if (*eol == '\r') {
            if (s == end) {
                ps->after_cr = 1;
            }
            else if (*s == '\n') {
                ++s;
            }
        }
    }
    return APR_SUCCESS;
}

static apr_status_t sse_feed_bytes(nebula_sse_parser_t *ps, const char *buf,
                                   apr_size_t len)
{
    apr_status_t rv;

    while (!ps->bom_done && len > 0) {
        if (*buf == sse_bom[ps->bom_pos]) {
            ++buf;
            --len;
            ps->bom_done = (++ps->bom_pos == 3);
            continue;
        }
        /* not a BOM after all: what matched so far is ordinary text */
        ps->bom_done = 1;
        rv = sse_scan(ps, sse_bom, sse_bom + ps->bom_pos);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return sse_scan(ps, buf, buf + len);
}

apr_status_t nebula_sse_feed(nebula_sse_parser_t *ps, const char *buf, apr_size_t len)
{
    if (ps->fail == APR_SUCCESS && len > 0) {
        ps->fail = sse_feed_bytes(ps, buf, len);
    }
    return ps->fail;
}

int nebula_sse_finish(nebula_sse_parser_t *ps)
{
    int pending = ps->line.len > 0 || ps->in_event || (!ps->bom_done && ps->bom_pos > 0);

    ps->line.len = 0;
    ps->data.len = 0;
    ps->type.len = 0;
    ps->in_event = 0;
    ps->after_cr = 0;
    ps->bom_pos = 0;
    ps->bom_done = 0;
    ps->fail = APR_SUCCESS;
    return pending;
}

long nebula_sse_retry(const nebula_sse_parser_t *ps)
{
    return ps->retry;
}

/* Next line of data at *pos (split at CRLF, LF, CR); 0 when none is left.
 * The text after the last line end is a line too, even if empty. */
static int sse_next_line(const char *data, apr_size_t len, apr_size_t *pos, int *done,
                         const char **line, apr_size_t *llen)
{
    apr_size_t i = *pos;

    if (*done) {
        return 0;
    }
    while (i < len && data[i] != '\n' && data[i] != '\r') {
        ++i;
    }
    *line = data + *pos;
    *llen = i - *pos;
    if (i == len) {
        *done = 1;
    }
    else {
        i += (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') ? 2 : 1;
    }
    *pos = i;
    return 1;
}

char *nebula_sse_format(apr_pool_t *p, const char *event, const char *data,
                        apr_size_t len, apr_size_t *out_len)
{
    apr_size_t evlen = event ? strlen(event) : 0, total, pos = 0, llen, o = 0;
    const char *line;
    int done = 0;
    char *out;

    if (evlen != strcspn(event ? event : "", "\r\n")) {
        return NULL;
    }
    if (data == NULL) {
        data = "";
        len = 0;
    }
    total = (evlen ? 8 + evlen : 0) + 1; /* "event: " X "\n" ... final "\n" */
    while (sse_next_line(data, len, &pos, &done, &line, &llen)) {
        total += (llen ? 7 : 6) + llen;
    }
    out = apr_palloc(p, total + 1);
    if (evlen) {
        memcpy(out, "event: ", 7);
        memcpy(out + 7, event, evlen);
        out[7 + evlen] = '\n';
        o = 8 + evlen;
    }
    pos = 0;
    done = 0;
    while (sse_next_line(data, len, &pos, &done, &line, &llen)) {
        memcpy(out + o, llen ? "data: " : "data:", llen ? 6 : 5);
        o += llen ? 6 : 5;
        if (llen) {
            memcpy(out + o, line, llen);
            o += llen;
        }
        out[o++] = '\n';
    }
    out[o++] = '\n';
    out[o] = '\0';
    if (out_len != NULL) {
        *out_len = o;
    }
    return out;
}

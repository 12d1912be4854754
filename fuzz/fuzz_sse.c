/* fuzz_sse.c: the text/event-stream parser (nebula_sse.c) on arbitrary
 * bytes.
 *
 * The input is a stream. It is parsed twice, once in one piece and once in
 * pieces of 1..64 bytes (sizes from a hash of the input, so every mutation
 * also changes the cut), with the same event bound (the default, or 32..543
 * bytes, also from the hash). Properties:
 * - both parses deliver the same events (type, data, id, retry) and comments,
 *   end with the same status, and finish() says the same;
 * - every event the writer can express (nebula_sse_format()) parses back as
 *   exactly that one event. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_sse.h"
#include "fuzz_common.h"

typedef struct {
    apr_pool_t *p;
    char *log;          /* what was delivered, one record each */
    apr_size_t len, cap;
    int count;
    int check_format;   /* write each event back and read it again */
} rec_t;

static void rec_put(rec_t *r, const char *s, apr_size_t n)
{
    if (r->len + n > r->cap) {
        apr_size_t cap = r->cap ? r->cap * 2 : 256;
        char *b;

        while (cap < r->len + n) {
            cap *= 2;
        }
        b = apr_palloc(r->p, cap);
        if (r->len) {
            memcpy(b, r->log, r->len);
        }
        r->log = b;
        r->cap = cap;
    }
    memcpy(r->log + r->len, s, n);
    r->len += n;
}

static void rec_field(rec_t *r, char tag, const char *s, apr_size_t n)
{
    char head[32];
    int k = apr_snprintf(head, sizeof(head), "%c%" APR_SIZE_T_FMT ":", tag, n);

    rec_put(r, head, (apr_size_t)k);
    rec_put(r, s, n);
}

static apr_status_t on_one(void *baton, const nebula_sse_event_t *ev)
{
    rec_t *r = baton;

    rec_field(r, 'E', ev->event ? ev->event : "", ev->event ? strlen(ev->event) : 0);
    rec_field(r, 'D', ev->data, ev->data_len);
    ++r->count;
    return APR_SUCCESS;
}

/* Format the event and parse it again: the same event, alone. */
static void round_trip(apr_pool_t *p, const nebula_sse_event_t *ev)
{
    apr_size_t n;
    char *out = nebula_sse_format(p, ev->event, ev->data, ev->data_len, &n);
    rec_t back = {p, NULL, 0, 0, 0, 0}, want = {p, NULL, 0, 0, 0, 0};
    nebula_sse_parser_t *ps;

    /* a type the parser delivers never holds CR or LF: always writable */
    FUZZ_CHECK(out != NULL, "nebula_sse_format refused the event type '%s'",
               ev->event ? ev->event : "(none)");
    ps = nebula_sse_parser_create(p, 0, on_one, NULL, &back);
    FUZZ_CHECK(nebula_sse_feed(ps, out, n) == APR_SUCCESS, "formatted event fails to parse");
    FUZZ_CHECK(nebula_sse_finish(ps) == 0, "formatted event is incomplete");
    on_one(&want, ev);
    FUZZ_CHECK(back.count == 1, "formatted event parses as %d events", back.count);
    FUZZ_CHECK(back.len == want.len && memcmp(back.log, want.log, want.len) == 0,
               "formatted event parses back different");
}

static apr_status_t on_event(void *baton, const nebula_sse_event_t *ev)
{
    rec_t *r = baton;
    char num[64];
    int k;

    on_one(r, ev);
    rec_field(r, 'I', ev->id, strlen(ev->id));
    k = apr_snprintf(num, sizeof(num), "R%ld;", ev->retry);
    rec_put(r, num, (apr_size_t)k);
    FUZZ_CHECK(ev->event == NULL || ev->event[0] != '\0', "empty event type delivered");
    FUZZ_CHECK(ev->data[ev->data_len] == '\0', "data not NUL-terminated");
    if (r->check_format) {
        apr_pool_t *sub;

        apr_pool_create(&sub, r->p);
        round_trip(sub, ev);
        apr_pool_destroy(sub);
    }
    return APR_SUCCESS;
}

static apr_status_t on_comment(void *baton, const char *text, apr_size_t len)
{
    rec_field(baton, 'C', text, len);
    return APR_SUCCESS;
}

static apr_uint32_t fnv1a(const uint8_t *d, size_t n)
{
    apr_uint32_t h = 2166136261u;

    while (n--) {
        h = (h ^ *d++) * 16777619u;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    apr_uint32_t h = fnv1a(data, size), cut = h | 1;
    apr_size_t max = (h & 3) == 0 ? 32 + (h >> 2) % 512 : 0, off = 0;
    rec_t whole = {p, NULL, 0, 0, 0, 1}, parts = {p, NULL, 0, 0, 0, 0};
    nebula_sse_parser_t *a = nebula_sse_parser_create(p, max, on_event, on_comment, &whole);
    nebula_sse_parser_t *b = nebula_sse_parser_create(p, max, on_event, on_comment, &parts);
    apr_status_t ra, rb = APR_SUCCESS;
    int fa, fb;

    ra = nebula_sse_feed(a, (const char *)data, size);
    while (off < size) {
        apr_size_t n = 1 + (cut >> 8) % 64;

        cut = cut * 1103515245u + 12345u;
        if (n > size - off) {
            n = size - off;
        }
        rb = nebula_sse_feed(b, (const char *)data + off, n);
        off += n;
    }
    FUZZ_CHECK(ra == rb, "status %d in one piece, %d in pieces", ra, rb);
    FUZZ_CHECK(whole.count == parts.count, "%d events in one piece, %d in pieces",
               whole.count, parts.count);
    FUZZ_CHECK(whole.len == parts.len && (whole.len == 0
                                          || memcmp(whole.log, parts.log, whole.len) == 0),
               "events differ between one piece and pieces");
    FUZZ_CHECK(nebula_sse_retry(a) == nebula_sse_retry(b), "retry differs");
    fa = nebula_sse_finish(a);
    fb = nebula_sse_finish(b);
    FUZZ_CHECK(ra != APR_SUCCESS || fa == fb, "finish() differs: %d and %d", fa, fb);
    apr_pool_destroy(p);
    return 0;
}

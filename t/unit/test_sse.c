/* test_sse.c: nebula_sse against the WHATWG event-stream rules: one sample
 * stream with every line ending, comments, fields and edge case, parsed
 * whole and split at every byte boundary (and every pair of boundaries for
 * a shorter stream); the memory bound; callback aborts; the writer
 * round-tripping through the parser; an OpenAI-style stream. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_json.h"
#include "nebula_sse.h"
#include "nebula_unit.h"

/* A transcript of callbacks: "E<event|->|<id>|<retry>|<data>\n" per event,
 * "C<text>\n" per comment; LF, CR and NUL in data shown as \n \r \0. */
typedef struct {
    char buf[8192];
    apr_size_t len;
    int events;
    int abort_after; /* return APR_EGENERAL from event number N (0: never) */
} rec_t;

static void rec_put(rec_t *r, const char *s, apr_size_t n)
{
    ck_assert_msg(r->len + n < sizeof(r->buf), "transcript overflow");
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static apr_status_t rec_event(void *baton, const nebula_sse_event_t *ev)
{
    rec_t *r = baton;
    char num[32];
    apr_size_t i;

    ck_assert_ptr_nonnull(ev->data);
    ck_assert_ptr_nonnull(ev->id);
    ck_assert_uint_eq(ev->data[ev->data_len], '\0');
    ck_assert(ev->event == NULL || ev->event[0] != '\0');
    rec_put(r, "E", 1);
    rec_put(r, ev->event ? ev->event : "-", strlen(ev->event ? ev->event : "-"));
    rec_put(r, "|", 1);
    rec_put(r, ev->id, strlen(ev->id));
    apr_snprintf(num, sizeof(num), "|%ld|", ev->retry);
    rec_put(r, num, strlen(num));
    for (i = 0; i < ev->data_len; ++i) {
        const char c = ev->data[i];

        rec_put(r,
                c == '\n'   ? "\\n"
                : c == '\r' ? "\\r"
                : c == '\0' ? "\\0"
                            : &c,
                (c == '\n' || c == '\r' || c == '\0') ? 2 : 1);
    }
    rec_put(r, "\n", 1);
    if (++r->events == r->abort_after) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t rec_comment(void *baton, const char *text, apr_size_t len)
{
    rec_t *r = baton;

    rec_put(r, "C", 1);
    rec_put(r, text, len);
    rec_put(r, "\n", 1);
    return APR_SUCCESS;
}

/* The sample stream. The NUL inside "id: bad" makes it binary: use
 * sizeof - 1 for its length. */
static const char sample[] = "\xEF\xBB\xBF"
                             ": hello\r\n"
                             "retry: 3000\r\n"
                             "event: add\r"
                             "data: first\n"
                             "data:  second: x\r\n"
                             "id: 42\n"
                             "\n"
                             "data\n"
                             "\r"
                             "event: gone\n"
                             "id: 43\n"
                             "\n"
                             "data:no-space\r\n"
                             "retry: 12x\n"
                             "retry:\n"
                             "id: bad\0id\n"
                             "unknown: field\n"
                             "Data: wrong case\n"
                             "\xEF\xBB\xBF"
                             "data: only the first BOM is skipped\n"
                             ":PING\n"
                             "\r\n"
                             "data: cr-only\r\r"
                             "event:\n"
                             "data: a\r\n"
                             "data:\r\n"
                             "data: \r\n"
                             "\r\n"
                             "retry:500\n"
                             "event: last\n"
                             "data: unterminated\n";

static const char sample_expect[] = "C hello\n"
                                    "Eadd|42|3000|first\\n second: x\n"
                                    "E-|42|3000|\n"
                                    "CPING\n"
                                    "E-|43|3000|no-space\n"
                                    "E-|43|3000|cr-only\n"
                                    "E-|43|3000|a\\n\\n\n";

static const char *parse_chunks(apr_pool_t *p, const char *s, apr_size_t n,
                                const apr_size_t *cuts, int ncuts, int *pending)
{
    rec_t *r = apr_pcalloc(p, sizeof(*r));
    nebula_sse_parser_t *ps = nebula_sse_parser_create(p, 0, rec_event, rec_comment, r);
    apr_size_t from = 0;
    int i;

    for (i = 0; i <= ncuts; ++i) {
        apr_size_t to = i < ncuts ? cuts[i] : n;

        ck_assert_int_eq(nebula_sse_feed(ps, s + from, to - from), APR_SUCCESS);
        from = to;
    }
    *pending = nebula_sse_finish(ps);
    return r->buf;
}

START_TEST(sample_stream_whole)
{
    rec_t r;
    nebula_sse_parser_t *ps;

    memset(&r, 0, sizeof(r));
    ps = nebula_sse_parser_create(unit_pool, 0, rec_event, rec_comment, &r);
    ck_assert_int_eq(nebula_sse_feed(ps, sample, sizeof(sample) - 1), APR_SUCCESS);
    ck_assert_str_eq(r.buf, sample_expect);
    ck_assert_int_eq(nebula_sse_retry(ps), 500);
    ck_assert_int_eq(nebula_sse_finish(ps), 1); /* "last" was cut off */
    ck_assert_str_eq(r.buf, sample_expect);
}
END_TEST

START_TEST(sample_stream_every_split)
{
    const apr_size_t n = sizeof(sample) - 1;
    apr_size_t cut;
    int pending;

    for (cut = 0; cut <= n; ++cut) {
        ck_assert_msg(strcmp(parse_chunks(unit_pool, sample, n, &cut, 1, &pending),
                             sample_expect) == 0,
                      "split at %lu", (unsigned long)cut);
        ck_assert_int_eq(pending, 1);
    }
}
END_TEST

START_TEST(sample_stream_byte_by_byte)
{
    const apr_size_t n = sizeof(sample) - 1;
    apr_size_t cuts[sizeof(sample)], i;
    int pending;

    for (i = 0; i < n; ++i) {
        cuts[i] = i + 1;
    }
    ck_assert_str_eq(parse_chunks(unit_pool, sample, n, cuts, (int)n - 1, &pending),
                     sample_expect);
    ck_assert_int_eq(pending, 1);
}
END_TEST

START_TEST(short_stream_every_pair_of_splits)
{
    static const char s[] = "\xEF\xBB\xBF:c\r\nevent: e\rdata: a\r\ndata:b\n\r\n"
                            "id: 7\ndata: z\r\r\n:x\r\n\r\n";
    static const char expect[] = "Cc\nEe||-1|a\\nb\nE-|7|-1|z\nCx\n";
    const apr_size_t n = sizeof(s) - 1;
    apr_size_t cuts[2] = {0, 0};
    int pending;

    ck_assert_str_eq(parse_chunks(unit_pool, s, n, cuts, 0, &pending), expect);
    ck_assert_int_eq(pending, 0);
    for (cuts[0] = 0; cuts[0] <= n; ++cuts[0]) {
        for (cuts[1] = cuts[0]; cuts[1] <= n; ++cuts[1]) {
            apr_pool_t *p;

            apr_pool_create(&p, unit_pool);
            ck_assert_msg(strcmp(parse_chunks(p, s, n, cuts, 2, &pending), expect) == 0,
                          "splits at %lu and %lu", (unsigned long)cuts[0],
                          (unsigned long)cuts[1]);
            ck_assert_int_eq(pending, 0);
            apr_pool_destroy(p);
        }
    }
}
END_TEST

START_TEST(bom_only_at_start_and_partial_bom)
{
    static const char with_bom[] = "\xEF\xBB\xBF"
                                   "data: x\n\n";
    static const char not_bom[] = "\xEF\xBB"
                                  "data: x\n\ndata: y\n\n";
    const apr_size_t n = sizeof(with_bom) - 1;
    apr_size_t cut;
    int pending;

    for (cut = 0; cut <= n; ++cut) {
        ck_assert_str_eq(parse_chunks(unit_pool, with_bom, n, &cut, 1, &pending),
                         "E-||-1|x\n");
    }
    /* a broken BOM is part of the first line: field "\xEF\xBBdata" is unknown */
    for (cut = 0; cut <= sizeof(not_bom) - 1; ++cut) {
        ck_assert_str_eq(
            parse_chunks(unit_pool, not_bom, sizeof(not_bom) - 1, &cut, 1, &pending),
            "E-||-1|y\n");
        ck_assert_int_eq(pending, 0);
    }
    /* a lone partial BOM at end of stream is an unterminated line */
    cut = 1;
    parse_chunks(unit_pool, "\xEF\xBB", 2, &cut, 1, &pending);
    ck_assert_int_eq(pending, 1);
}
END_TEST

/* An event type a NUL cuts down to nothing is no type (found by
 * fuzz/fuzz_sse.c; rec_event asserts a type is never ""). */
START_TEST(event_type_nul_is_no_type)
{
    static const char s[] = "event:\0x\ndata: a\n\nevent: \0\ndata: b\n\n";
    apr_size_t cut = 3;
    int pending;

    ck_assert_str_eq(parse_chunks(unit_pool, s, sizeof(s) - 1, &cut, 1, &pending),
                     "E-||-1|a\nE-||-1|b\n");
    ck_assert_int_eq(pending, 0);
}
END_TEST

START_TEST(finish_reports_truncation_and_resets)
{
    rec_t r;
    nebula_sse_parser_t *ps;

    memset(&r, 0, sizeof(r));
    ps = nebula_sse_parser_create(unit_pool, 0, rec_event, rec_comment, &r);
    ck_assert_int_eq(nebula_sse_finish(ps), 0);
    nebula_sse_feed(ps, "id: 1\ndata: a\n\n: done\n", 22);
    ck_assert_int_eq(nebula_sse_finish(ps), 0);
    nebula_sse_feed(ps, "data: partial", 13);
    ck_assert_int_eq(nebula_sse_finish(ps), 1);
    nebula_sse_feed(ps, "data: x\n", 8);
    ck_assert_int_eq(nebula_sse_finish(ps), 1);
    nebula_sse_feed(ps, "event: only\n", 12);
    ck_assert_int_eq(nebula_sse_finish(ps), 1);
    /* after finish the discarded data is gone; the last id is kept */
    nebula_sse_feed(ps,
                    "\xEF\xBB\xBF"
                    "data: b\n\n",
                    12);
    ck_assert_int_eq(nebula_sse_finish(ps), 0);
    ck_assert_str_eq(r.buf, "E-|1|-1|a\nC done\nE-|1|-1|b\n");
}
END_TEST

START_TEST(max_event_bytes_overflow)
{
    rec_t r;
    nebula_sse_parser_t *ps;
    char big[200];
    apr_size_t i;

    memset(&r, 0, sizeof(r));
    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    /* within bounds: three 20-byte data lines under a 64-byte limit */
    ps = nebula_sse_parser_create(unit_pool, 64, rec_event, NULL, &r);
    ck_assert_int_eq(nebula_sse_feed(ps,
                                     "data: 0123456789abcd\ndata: 0123456789abcd\n"
                                     "data: 0123456789\n\n",
                                     60),
                     APR_SUCCESS);
    ck_assert_int_eq(r.events, 1);
    /* one long line in one chunk */
    ck_assert_int_eq(nebula_sse_feed(ps, big, sizeof(big)), APR_ENOSPC);
    ck_assert_int_eq(nebula_sse_feed(ps, "\n\n", 2), APR_ENOSPC); /* sticky */
    ck_assert_int_eq(r.events, 1);

    /* the same line fed in small pieces */
    ps = nebula_sse_parser_create(unit_pool, 64, rec_event, NULL, &r);
    for (i = 0; i < sizeof(big); i += 10) {
        apr_status_t rv = nebula_sse_feed(ps, big + i, 10);

        if (rv != APR_SUCCESS) {
            ck_assert_int_eq(rv, APR_ENOSPC);
            break;
        }
    }
    ck_assert_uint_lt(i, sizeof(big));
    /* many short data lines adding up past the bound */
    ps = nebula_sse_parser_create(unit_pool, 64, rec_event, NULL, &r);
    for (i = 0; i < 20; ++i) {
        if (nebula_sse_feed(ps, "data: 0123456789\n", 17) != APR_SUCCESS) {
            break;
        }
    }
    ck_assert_uint_lt(i, 20);
    ck_assert_int_eq(nebula_sse_feed(ps, "\n", 1), APR_ENOSPC);
    /* a long comment counts too */
    ps = nebula_sse_parser_create(unit_pool, 64, rec_event, rec_comment, &r);
    big[0] = ':';
    ck_assert_int_eq(nebula_sse_feed(ps, big, sizeof(big)), APR_ENOSPC);
    ck_assert_int_eq(r.events, 1);
}
END_TEST

START_TEST(callback_abort_is_returned)
{
    rec_t r;
    nebula_sse_parser_t *ps;

    memset(&r, 0, sizeof(r));
    r.abort_after = 2;
    ps = nebula_sse_parser_create(unit_pool, 0, rec_event, NULL, &r);
    ck_assert_int_eq(nebula_sse_feed(ps, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27),
                     APR_EGENERAL);
    ck_assert_int_eq(r.events, 2);
    ck_assert_int_eq(nebula_sse_feed(ps, "data: 4\n\n", 9), APR_EGENERAL);
    ck_assert_int_eq(r.events, 2);
}
END_TEST

START_TEST(format_exact_and_round_trip)
{
    static const struct {
        const char *event;
        const char *data;
        apr_size_t len;
        const char *parsed; /* expected data after parsing, escaped */
    } cases[] = {
        {"delta", "hello", 5, "hello"},
        {NULL, "", 0, ""},
        {NULL, "a\nb", 3, "a\\nb"},
        {"x y", "a\r\nb\rc", 6, "a\\nb\\nc"},
        {NULL, "\n", 1, "\\n"},
        {NULL, "trailing\n", 9, "trailing\\n"},
        {"", " leading space", 14, " leading space"},
        {NULL, "x\n\n\ny", 5, "x\\n\\n\\ny"},
        {NULL, "nul\0byte", 8, "nul\\0byte"},
        {" padded", "data: inner: colon", 18, "data: inner: colon"},
    };
    apr_size_t i, outlen;
    char *out;

    out = nebula_sse_format(unit_pool, "delta", "a\nb", 3, &outlen);
    ck_assert_str_eq(out, "event: delta\ndata: a\ndata: b\n\n");
    ck_assert_uint_eq(outlen, strlen(out));
    ck_assert_str_eq(nebula_sse_format(unit_pool, NULL, "", 0, NULL), "data:\n\n");
    ck_assert_str_eq(nebula_sse_format(unit_pool, NULL, NULL, 0, NULL), "data:\n\n");
    ck_assert_ptr_null(nebula_sse_format(unit_pool, "bad\nname", "x", 1, NULL));
    ck_assert_ptr_null(nebula_sse_format(unit_pool, "bad\rname", "x", 1, NULL));

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        rec_t r;
        nebula_sse_parser_t *ps;
        const char *ev = cases[i].event && *cases[i].event ? cases[i].event : "-";

        memset(&r, 0, sizeof(r));
        ps = nebula_sse_parser_create(unit_pool, 0, rec_event, NULL, &r);
        out = nebula_sse_format(unit_pool, cases[i].event, cases[i].data, cases[i].len,
                                &outlen);
        ck_assert_int_eq(nebula_sse_feed(ps, out, outlen), APR_SUCCESS);
        ck_assert_int_eq(nebula_sse_finish(ps), 0);
        ck_assert_str_eq(r.buf,
                         apr_psprintf(unit_pool, "E%s||-1|%s\n", ev, cases[i].parsed));
    }
}
END_TEST

typedef struct {
    apr_pool_t *p;
    const char *payloads[8];
    int n;
    int comments;
} oai_t;

static apr_status_t oai_event(void *baton, const nebula_sse_event_t *ev)
{
    oai_t *o = baton;

    ck_assert_ptr_null(ev->event);
    ck_assert_int_lt(o->n, 8);
    o->payloads[o->n++] = apr_pstrmemdup(o->p, ev->data, ev->data_len);
    return APR_SUCCESS;
}

static apr_status_t oai_comment(void *baton, const char *text, apr_size_t len)
{
    oai_t *o = baton;

    ck_assert_uint_eq(len, 22);
    ck_assert_int_eq(memcmp(text, " OPENROUTER PROCESSING", len), 0);
    o->comments++;
    return APR_SUCCESS;
}

START_TEST(openai_stream)
{
    static const char stream[] =
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}"
        "}]}\n\n"
        ": OPENROUTER PROCESSING\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
        "\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    oai_t o;
    nebula_sse_parser_t *ps;
    json_t *j;
    apr_size_t i;

    memset(&o, 0, sizeof(o));
    o.p = unit_pool;
    ps = nebula_sse_parser_create(unit_pool, 0, oai_event, oai_comment, &o);
    for (i = 0; i < sizeof(stream) - 1; i += 7) {
        apr_size_t n = sizeof(stream) - 1 - i < 7 ? sizeof(stream) - 1 - i : 7;

        ck_assert_int_eq(nebula_sse_feed(ps, stream + i, n), APR_SUCCESS);
    }
    ck_assert_int_eq(nebula_sse_finish(ps), 0);
    ck_assert_int_eq(o.n, 3);
    ck_assert_int_eq(o.comments, 1);
    j = nebula_json_parse(unit_pool, o.payloads[0], strlen(o.payloads[0]), 0, NULL);
    ck_assert_str_eq(nebula_json_gets(j, "choices", "#0", "delta", "content", NULL),
                     "Hel");
    ck_assert_str_eq(nebula_json_gets(j, "choices", "#0", "delta", "role", NULL),
                     "assistant");
    j = nebula_json_parse(unit_pool, o.payloads[1], strlen(o.payloads[1]), 0, NULL);
    ck_assert_str_eq(nebula_json_gets(j, "choices", "#0", "delta", "content", NULL),
                     "lo");
    ck_assert_str_eq(nebula_json_gets(j, "choices", "#0", "finish_reason", NULL), "stop");
    ck_assert_str_eq(o.payloads[2], "[DONE]");
}
END_TEST

Suite *unit_sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = tcase_create("sse");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sample_stream_whole);
    tcase_add_test(tc, sample_stream_every_split);
    tcase_add_test(tc, sample_stream_byte_by_byte);
    tcase_add_test(tc, short_stream_every_pair_of_splits);
    tcase_add_test(tc, bom_only_at_start_and_partial_bom);
    tcase_add_test(tc, event_type_nul_is_no_type);
    tcase_add_test(tc, finish_reports_truncation_and_resets);
    tcase_add_test(tc, max_event_bytes_overflow);
    tcase_add_test(tc, callback_abort_is_returned);
    tcase_add_test(tc, format_exact_and_round_trip);
    tcase_add_test(tc, openai_stream);
    suite_add_tcase(s, tc);
    return s;
}

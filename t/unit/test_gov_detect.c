/* test_gov_detect.c: nebula_gov_detect, the built-in sensitive-data detectors:
 * for each of e-mail, phone, card, cn_id and secret the true positives (the
 * exact bytes of each span) and near misses (bad Luhn, bad checksum,
 * impossible dates, IP addresses, dates, hex digests, identifiers); then the
 * combined run with its priority-based overlap resolution, names, empty and
 * very long input. */
#include <string.h>

#include "nebula_gov_detect.h"
#include "nebula_unit.h"

/* Run detector @d over @text; the spans must be exactly the NULL-terminated
 * list of strings @want, in order. */
static void expect_spans(nebula_gov_detector_e d, const char *text,
                         const char *const *want)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 4, sizeof(nebula_gov_span_t));
    int n = nebula_gov_detect_one(d, text, strlen(text), out), i;

    for (i = 0; want[i]; ++i) {
        const nebula_gov_span_t *s;

        ck_assert_msg(i < out->nelts, "%s: span %d (%s) missing in \"%s\"",
                      nebula_gov_detector_name(d), i, want[i], text);
        s = &APR_ARRAY_IDX(out, i, nebula_gov_span_t);
        ck_assert_int_eq(s->detector, d);
        ck_assert_str_eq(s->name, nebula_gov_detector_name(d));
        ck_assert_msg(s->end - s->start == strlen(want[i]) &&
                          memcmp(text + s->start, want[i], strlen(want[i])) == 0,
                      "%s: span %d is \"%.*s\", want \"%s\"", nebula_gov_detector_name(d),
                      i, (int)(s->end - s->start), text + s->start, want[i]);
    }
    ck_assert_msg(n == i && out->nelts == i, "%s: %d spans in \"%s\", want %d",
                  nebula_gov_detector_name(d), out->nelts, text, i);
}

#define SPANS(d, text, ...)                                                              \
    do {                                                                                 \
        const char *const want_[] = {__VA_ARGS__, NULL};                                 \
        expect_spans(d, text, want_);                                                    \
    } while (0)
#define NONE(d, text)                                                                    \
    do {                                                                                 \
        const char *const want_[] = {NULL};                                              \
        expect_spans(d, text, want_);                                                    \
    } while (0)

START_TEST(names)
{
    ck_assert_str_eq(nebula_gov_detector_name(NEBULA_GOV_DET_CN_ID), "cn_id");
    ck_assert_int_eq(nebula_gov_detector_by_name("secret"), NEBULA_GOV_DET_SECRET);
    ck_assert_int_eq(nebula_gov_detector_by_name("phone"), NEBULA_GOV_DET_PHONE);
    ck_assert_int_eq(nebula_gov_detector_by_name("Phone"), 0);
    ck_assert_int_eq(nebula_gov_detector_by_name(NULL), 0);
    ck_assert_ptr_null(nebula_gov_detector_name(NEBULA_GOV_DET_ALL));
}
END_TEST

START_TEST(email)
{
    SPANS(NEBULA_GOV_DET_EMAIL, "mail John.Doe+tag@mail.example.co.uk, or a_b%c@x-y.io.",
          "John.Doe+tag@mail.example.co.uk", "a_b%c@x-y.io");
    SPANS(NEBULA_GOV_DET_EMAIL,
          "<.lead@dot.org> \xE9\x82\xAE\xE7\xAE\xB1zhang@qq.com\xE3\x80\x82",
          "lead@dot.org", "zhang@qq.com");
    NONE(NEBULA_GOV_DET_EMAIL,
         "a@b foo@bar @x.com user@ x@y.c two..dots@x.com end.@x.com");
    NONE(NEBULA_GOV_DET_EMAIL, "u@-bad.com u@bad-.com u@x.123 u@@x.com @ a@");
}
END_TEST

START_TEST(phone)
{
    SPANS(NEBULA_GOV_DET_PHONE, "call +1 (555) 123-4567 or +44 20 7946 0958.",
          "+1 (555) 123-4567", "+44 20 7946 0958");
    SPANS(NEBULA_GOV_DET_PHONE,
          "\xE6\x89\x8B\xE6\x9C\xBA"
          "13812345678\xEF\xBC\x8C+86 138 1234 5678, "
          "138-1234-5678 / 86 139 0000 1111",
          "13812345678", "+86 138 1234 5678", "138-1234-5678", "86 139 0000 1111");
    SPANS(NEBULA_GOV_DET_PHONE,
          "(555) 123-4567; 555-123-4567; 555.123.4567; 020 7946 0958; "
          "1-800-555-0199; (020)79460958",
          "(555) 123-4567", "555-123-4567", "555.123.4567", "020 7946 0958",
          "1-800-555-0199");
    /* near misses: dates, IPs, versions, bare digit runs, bad CN prefix, long runs */
    NONE(NEBULA_GOV_DET_PHONE, "on 2024-01-15 at 192.168.100.200 v1.2.3 id 1234567890");
    NONE(NEBULA_GOV_DET_PHONE, "12812345678 138123456789 x13812345678 555-123-45678");
    NONE(NEBULA_GOV_DET_PHONE,
         "+0 123 456 789 +12 34 555 123 4567 890 12.5 555-1234 (555)");
    NONE(NEBULA_GOV_DET_PHONE, "4111 1111 1111 1111 3.14159265358");
}
END_TEST

START_TEST(card)
{
    SPANS(NEBULA_GOV_DET_CARD,
          "visa 4111 1111 1111 1111, mc 5555-5555-5555-4444, amex "
          "378282246310005; 6011111111111117 3530111333300000 6212345678901265 "
          "2223003122003222 4222222222222 3782 822463 10005",
          "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005",
          "6011111111111117", "3530111333300000", "6212345678901265", "2223003122003222",
          "4222222222222", "3782 822463 10005");
    /* two grouped cards in a row make one digit run: found one by one */
    SPANS(NEBULA_GOV_DET_CARD, "4111 1111 1111 1111 5555 5555 5555 4444 9",
          "4111 1111 1111 1111", "5555 5555 5555 4444");
    /* bad Luhn, unknown IIN (Luhn-valid), mixed separators, too long, wrong length
     * for the brand, glued to letters, tiny groups */
    NONE(NEBULA_GOV_DET_CARD, "4111 1111 1111 1112 1234567812345670 4111-1111 1111-1111");
    NONE(NEBULA_GOV_DET_CARD, "41111111111111110000 37828224631000 x4111111111111111 "
                              "4111111111111111x 41 11 11 11 11 11 11 11");
    ck_assert(nebula_gov_luhn_ok("4111-1111-1111-1111", 19));
    ck_assert(!nebula_gov_luhn_ok("4111-1111-1111-1112", 19));
    ck_assert(!nebula_gov_luhn_ok("0", 1));
}
END_TEST

START_TEST(cn_id)
{
    SPANS(NEBULA_GOV_DET_CN_ID,
          "\xE8\xBA\xAB\xE4\xBB\xBD\xE8\xAF\x81 11010519491231002X, "
          "440304200002291236 and 11010519491231002x.",
          "11010519491231002X", "440304200002291236", "11010519491231002x");
    ck_assert(nebula_gov_cn_id_ok("310115198506150014", 18));
    /* bad checksum; 2001-02-29; month 13; province 99; year 1899; April 31 */
    ck_assert(!nebula_gov_cn_id_ok("110105194912310021", 18));
    ck_assert(!nebula_gov_cn_id_ok("440304200102291233", 18));
    ck_assert(!nebula_gov_cn_id_ok("440304199913011236", 18));
    ck_assert(!nebula_gov_cn_id_ok("990304199001011230", 18));
    ck_assert(!nebula_gov_cn_id_ok("440304189912311238", 18));
    ck_assert(!nebula_gov_cn_id_ok("440304199004311231", 18));
    ck_assert(nebula_gov_cn_id_ok("440304199004301236", 18));
    ck_assert(!nebula_gov_cn_id_ok("11010519491231002", 17));
    NONE(NEBULA_GOV_DET_CN_ID,
         "110105194912310021 440304200102291233 1101051949123100210 "
         "A11010519491231002X 11010519491231002XY 1101051949123100");
}
END_TEST

START_TEST(secret)
{
    SPANS(NEBULA_GOV_DET_SECRET,
          "OPENAI_API_KEY=sk-proj-abc123DEF456ghi789JKL012mno and "
          "\"sk-ant-api03-AbCdEf123456_ghIJKL-789012mnop\" aws AKIAIOSFODNN7EXAMPLE",
          "sk-proj-abc123DEF456ghi789JKL012mno",
          "sk-ant-api03-AbCdEf123456_ghIJKL-789012mnop", "AKIAIOSFODNN7EXAMPLE");
    SPANS(NEBULA_GOV_DET_SECRET,
          "gh: ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d "
          "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz slack "
          "xoxb-1234567890-abcdefghij google AIzaYgCfrL1spNxnyVmihA-2O76UMFxFkM-R5Kj",
          "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
          "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
          "xoxb-1234567890-abcdefghij", "AIzaYgCfrL1spNxnyVmihA-2O76UMFxFkM-R5Kj");
    /* the generic rule: a random base62 token, also base64 cut at '/' */
    SPANS(NEBULA_GOV_DET_SECRET, "token: Xk9pQ2vR7tL4mN8sW1yB6cF3hJ5dG0zA;",
          "Xk9pQ2vR7tL4mN8sW1yB6cF3hJ5dG0zA");
    /* near misses: short/odd prefixes, wrong lengths, hex digest, UUID,
     * identifiers, repeated characters, a 31-character random token */
    NONE(NEBULA_GOV_DET_SECRET,
         "sk-learn sk-this-is-not-a-real-key-at-all AKIAIOSFODNN7EXAMPL "
         "AKIAIOSFODNN7EXAMPLE1 AKIAiosfodnn7example ghp_short xoxb-abc AIzaShort");
    NONE(NEBULA_GOV_DET_SECRET,
         "da39a3ee5e6b4b0d3255bfef95601890afd80709 "
         "550e8400-e29b-41d4-a716-446655440000 getUserAccountSettingsFromDatabase2024 "
         "ThisIsAVeryLongCamelCaseIdentifier2 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB1a "
         "Xk9pQ2vR7tL4mN8sW1yB6cF3hJ5dG0z");
    ck_assert(nebula_gov_entropy("abcd", 4) > 1.99 &&
              nebula_gov_entropy("abcd", 4) < 2.01);
    ck_assert(nebula_gov_entropy("aaaa", 4) == 0.0);
    ck_assert(nebula_gov_entropy("", 0) == 0.0);
}
END_TEST

START_TEST(combined_priority)
{
    static const char text[] =
        "Me: 13812345678@163.com, tel 138-1234-5678, card 4111111111111111, "
        "id 11010519491231002X, key sk-proj-4111111111111111abcdEFGH9876";
    static const struct {
        const char *name, *text;
    } want[] = {{"email", "13812345678@163.com"},
                {"phone", "138-1234-5678"},
                {"card", "4111111111111111"},
                {"cn_id", "11010519491231002X"},
                {"secret", "sk-proj-4111111111111111abcdEFGH9876"}};
    apr_array_header_t *spans = NULL;
    int i;

    ck_assert_int_eq(
        nebula_gov_detect(unit_pool, text, sizeof(text) - 1, NEBULA_GOV_DET_ALL, &spans),
        5);
    for (i = 0; i < 5; ++i) {
        const nebula_gov_span_t *s = &APR_ARRAY_IDX(spans, i, nebula_gov_span_t);

        ck_assert_str_eq(s->name, want[i].name);
        ck_assert_uint_eq(s->end - s->start, strlen(want[i].text));
        ck_assert_int_eq(memcmp(text + s->start, want[i].text, strlen(want[i].text)), 0);
    }
    /* without the e-mail detector, the phone inside the address shows */
    ck_assert_int_eq(nebula_gov_detect(unit_pool, text, sizeof(text) - 1,
                                       NEBULA_GOV_DET_PHONE, &spans),
                     2);
    ck_assert_uint_eq(APR_ARRAY_IDX(spans, 0, nebula_gov_span_t).start, 4);
    ck_assert_uint_eq(APR_ARRAY_IDX(spans, 0, nebula_gov_span_t).end, 15);
    ck_assert_int_eq(nebula_gov_detect(unit_pool, "", 0, NEBULA_GOV_DET_ALL, &spans), 0);
    ck_assert_int_eq(nebula_gov_detect(unit_pool, NULL, 0, NEBULA_GOV_DET_ALL, &spans),
                     0);
    ck_assert_int_eq(nebula_gov_detect(unit_pool, text, sizeof(text) - 1, 0, &spans), 0);
}
END_TEST

START_TEST(very_long_input)
{
    /* 2 MiB of digit groups, separators and letters, then one item of each kind */
    static const char tail[] = " x@example.com +1 555 123 4567, 4111111111111111";
    apr_size_t n = 2 * 1024 * 1024, i;
    char *text = apr_palloc(unit_pool, n + sizeof(tail));
    apr_array_header_t *spans = NULL;

    for (i = 0; i < n; ++i) {
        text[i] = "12 3-4.5a@b_c"[i % 13];
    }
    memcpy(text + n, tail, sizeof(tail));
    ck_assert_int_eq(nebula_gov_detect(unit_pool, text, n + sizeof(tail) - 1,
                                       NEBULA_GOV_DET_ALL, &spans),
                     3);
    ck_assert_str_eq(APR_ARRAY_IDX(spans, 0, nebula_gov_span_t).name, "email");
    ck_assert_uint_eq(APR_ARRAY_IDX(spans, 0, nebula_gov_span_t).start, n + 1);
    ck_assert_str_eq(APR_ARRAY_IDX(spans, 1, nebula_gov_span_t).name, "phone");
    ck_assert_str_eq(APR_ARRAY_IDX(spans, 2, nebula_gov_span_t).name, "card");
    ck_assert_uint_eq(APR_ARRAY_IDX(spans, 2, nebula_gov_span_t).end,
                      n + sizeof(tail) - 1);
}
END_TEST

Suite *unit_gov_detect_suite(void)
{
    Suite *s = suite_create("gov_detect");
    TCase *tc = tcase_create("gov_detect");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, names);
    tcase_add_test(tc, email);
    tcase_add_test(tc, phone);
    tcase_add_test(tc, card);
    tcase_add_test(tc, cn_id);
    tcase_add_test(tc, secret);
    tcase_add_test(tc, combined_priority);
    tcase_add_test(tc, very_long_input);
    suite_add_tcase(s, tc);
    return s;
}

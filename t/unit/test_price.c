/* test_price.c: nebula_price, the integer price arithmetic of billing.
 * new-api's scale (ratio 1 = one quota unit per token at 500000 units per
 * US dollar), the completion, cache-read and cache-write ratios, the group
 * ratio, fixed per-call prices, the single rounding up at the end, other
 * NebulaQuotaPerUSD values, the refusal of absurd usage, ratios and
 * overflow; then the decimal ratio parser and formatter. */
#include <string.h>

#include "nebula_price.h"
#include "nebula_unit.h"

#define PPM       NEBULA_PRICE_PPM
#define QPU       NEBULA_PRICE_BASE_QUOTA_PER_USD
#define BY_TOKENS (-1)

/* A token price: model, completion, cache-read, cache-write ratios (ppm). */
static nebula_price_t tokens_price(apr_int64_t model, apr_int64_t completion,
                                   apr_int64_t cache_read, apr_int64_t cache_write)
{
    nebula_price_t p;

    p.model_ratio_ppm = model;
    p.completion_ratio_ppm = completion;
    p.cache_read_ratio_ppm = cache_read;
    p.cache_write_ratio_ppm = cache_write;
    p.per_call_micro_usd = BY_TOKENS;
    return p;
}

static nebula_price_usage_t usage(apr_int64_t in, apr_int64_t cache_read,
                                  apr_int64_t cache_write, apr_int64_t out,
                                  apr_int64_t calls)
{
    nebula_price_usage_t u;

    u.input_tokens = in;
    u.cache_read_tokens = cache_read;
    u.cache_write_tokens = cache_write;
    u.output_tokens = out;
    u.calls = calls;
    return u;
}

/* The cost, failing the test unless the price is accepted. */
static apr_int64_t cost_of(nebula_price_t p, nebula_price_usage_t u, apr_int64_t group,
                           apr_int64_t qpu)
{
    apr_int64_t cost = -12345;

    ck_assert_int_eq(nebula_price_cost(&p, &u, group, qpu, &cost), NEBULA_PRICE_OK);
    return cost;
}

static int refused(nebula_price_t p, nebula_price_usage_t u, apr_int64_t group,
                   apr_int64_t qpu)
{
    apr_int64_t cost = 0;

    return nebula_price_cost(&p, &u, group, qpu, &cost) == NEBULA_PRICE_ABSURD;
}

START_TEST(ratio_one_is_one_unit_per_token)
{
    nebula_price_t one = tokens_price(PPM, PPM, PPM, PPM);

    ck_assert_int_eq(cost_of(one, usage(1, 0, 0, 0, 1), PPM, QPU), 1);
    ck_assert_int_eq(cost_of(one, usage(1000, 0, 0, 0, 1), PPM, QPU), 1000);
    ck_assert_int_eq(cost_of(one, usage(0, 0, 0, 1000, 1), PPM, QPU), 1000);
    ck_assert_int_eq(cost_of(one, usage(700, 0, 0, 300, 1), PPM, QPU), 1000);
    /* nothing used costs nothing */
    ck_assert_int_eq(cost_of(one, usage(0, 0, 0, 0, 1), PPM, QPU), 0);
    /* model ratio 1 is 2 USD per million input tokens: 1e6 tokens = 1e6
     * units = 2 USD at 500000 units per USD */
    ck_assert_int_eq(cost_of(one, usage(1000000, 0, 0, 0, 1), PPM, QPU), 2 * QPU);
}
END_TEST

START_TEST(gpt4o_example)
{
    /* gpt-4o: ratio 1.25, completion 4; 1000 prompt + 500 completion tokens
     * weigh 1000 + 500 x 4 = 3000, x 1.25 = 3750 units */
    nebula_price_t gpt4o = tokens_price(1250000, 4000000, 500000, 1000000);

    ck_assert_int_eq(cost_of(gpt4o, usage(1000, 0, 0, 500, 1), PPM, QPU), 3750);
    /* calls do not matter to a token price */
    ck_assert_int_eq(cost_of(gpt4o, usage(1000, 0, 0, 500, 7), PPM, QPU), 3750);
    /* gpt-4o-mini: ratio 0.075 */
    ck_assert_int_eq(cost_of(tokens_price(75000, 4000000, 500000, 1000000),
                             usage(1000, 0, 0, 500, 1), PPM, QPU),
                     225);
}
END_TEST

START_TEST(cache_ratios)
{
    /* 1000 fresh + 2000 cache-read at 0.5 + 400 cache-write at 1.25
     * = 1000 + 1000 + 500 = 2500 at model ratio 1 */
    nebula_price_t p = tokens_price(PPM, 4000000, 500000, 1250000);

    ck_assert_int_eq(cost_of(p, usage(1000, 2000, 400, 0, 1), PPM, QPU), 2500);
    ck_assert_int_eq(cost_of(p, usage(0, 2000, 0, 0, 1), PPM, QPU), 1000);
    ck_assert_int_eq(cost_of(p, usage(0, 0, 400, 0, 1), PPM, QPU), 500);
    /* x model ratio 1.25, with 100 output tokens at 4: (2500 + 400) x 1.25 */
    p.model_ratio_ppm = 1250000;
    ck_assert_int_eq(cost_of(p, usage(1000, 2000, 400, 100, 1), PPM, QPU), 3625);
    /* claude-style cache read at 0.1: 10000 cached tokens weigh 1000 */
    p = tokens_price(PPM, 5000000, 100000, 1250000);
    ck_assert_int_eq(cost_of(p, usage(0, 10000, 0, 0, 1), PPM, QPU), 1000);
    /* a free cache read */
    p.cache_read_ratio_ppm = 0;
    ck_assert_int_eq(cost_of(p, usage(10, 10000, 0, 0, 1), PPM, QPU), 10);
}
END_TEST

START_TEST(group_ratio)
{
    nebula_price_t gpt4o = tokens_price(1250000, 4000000, 500000, 1000000);
    nebula_price_usage_t u = usage(1000, 0, 0, 500, 1);

    ck_assert_int_eq(cost_of(gpt4o, u, 800000, QPU), 3000);  /* 0.8 */
    ck_assert_int_eq(cost_of(gpt4o, u, 2000000, QPU), 7500); /* 2 */
    ck_assert_int_eq(cost_of(gpt4o, u, 1500000, QPU), 5625); /* 1.5 */
    ck_assert_int_eq(cost_of(gpt4o, u, 0, QPU), 0);          /* a free group */
    /* the group ratio applies to per-call prices too */
    gpt4o.per_call_micro_usd = 40000;
    ck_assert_int_eq(cost_of(gpt4o, u, 500000, QPU), 10000);
}
END_TEST

START_TEST(per_call_price)
{
    /* dall-e-3: $0.04 a call = 40000 micro-dollars = 20000 units */
    nebula_price_t p = tokens_price(0, PPM, PPM, PPM);

    p.per_call_micro_usd = 40000;
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 1), PPM, QPU), 20000);
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 3), PPM, QPU), 60000);
    /* the per-call price replaces the token price, whatever the tokens */
    p.model_ratio_ppm = 5 * PPM;
    ck_assert_int_eq(cost_of(p, usage(100000, 5000, 5000, 100000, 1), PPM, QPU), 20000);
    /* a per-call price of 0 is free (omni-moderation), not "by tokens" */
    p.per_call_micro_usd = 0;
    ck_assert_int_eq(cost_of(p, usage(1000, 0, 0, 1000, 1), PPM, QPU), 0);
    /* whisper-1 at $0.006 */
    p.per_call_micro_usd = 6000;
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 1), PPM, QPU), 3000);
}
END_TEST

START_TEST(rounds_up_once)
{
    nebula_price_t mini = tokens_price(75000, 4000000, 500000, 1000000);
    nebula_price_t p = tokens_price(0, PPM, PPM, PPM);

    /* 1 token at 0.075 is 0.075 units: charged 1, never 0 */
    ck_assert_int_eq(cost_of(mini, usage(1, 0, 0, 0, 1), PPM, QPU), 1);
    /* 13 x 0.075 = 0.975 -> 1; 14 x 0.075 = 1.05 -> 2; 40 x 0.075 = 3 exactly */
    ck_assert_int_eq(cost_of(mini, usage(13, 0, 0, 0, 1), PPM, QPU), 1);
    ck_assert_int_eq(cost_of(mini, usage(14, 0, 0, 0, 1), PPM, QPU), 2);
    ck_assert_int_eq(cost_of(mini, usage(40, 0, 0, 0, 1), PPM, QPU), 3);
    /* rounding happens once, on the total: 7 input + 1 output at 0.075 with
     * completion 4 = (7 + 4) x 0.075 = 0.825 -> 1 (not 1 + 1) */
    ck_assert_int_eq(cost_of(mini, usage(7, 0, 0, 1, 1), PPM, QPU), 1);
    /* 1 cached token at 0.5 x 0.075 = 0.0375 -> 1 */
    ck_assert_int_eq(cost_of(mini, usage(0, 1, 0, 0, 1), PPM, QPU), 1);
    /* one micro-dollar a call is half a unit -> 1 */
    p.per_call_micro_usd = 1;
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 1), PPM, QPU), 1);
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 2), PPM, QPU), 1);
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 3), PPM, QPU), 2);
}
END_TEST

START_TEST(quota_per_usd_scales)
{
    nebula_price_t gpt4o = tokens_price(1250000, 4000000, 500000, 1000000);
    nebula_price_t call = tokens_price(0, PPM, PPM, PPM);
    nebula_price_usage_t u = usage(1000, 0, 0, 500, 1);

    /* 3750 units at 500000/USD is $0.0075 */
    ck_assert_int_eq(cost_of(gpt4o, u, PPM, 1000000), 7500);             /* 1e6 per USD */
    ck_assert_int_eq(cost_of(gpt4o, u, PPM, 250000), 1875);              /* half */
    ck_assert_int_eq(cost_of(gpt4o, u, PPM, 1000), 8);                   /* 7.5 -> 8 */
    ck_assert_int_eq(cost_of(gpt4o, u, PPM, 1), 1);                      /* 0.0075 -> 1 */
    ck_assert_int_eq(cost_of(gpt4o, u, PPM, 1000000000000), 7500000000); /* the max */
    /* ratio 1 is one unit per token only at the base scale */
    ck_assert_int_eq(
        cost_of(tokens_price(PPM, PPM, PPM, PPM), usage(1000, 0, 0, 0, 1), PPM, 5000000),
        10000);
    call.per_call_micro_usd = 40000;
    ck_assert_int_eq(cost_of(call, usage(0, 0, 0, 0, 1), PPM, 1000000), 40000);
    ck_assert_int_eq(cost_of(call, usage(0, 0, 0, 0, 1), PPM, 100), 4);
}
END_TEST

START_TEST(absurd_usage_refused)
{
    nebula_price_t p = tokens_price(PPM, PPM, PPM, PPM);
    const apr_int64_t max = NEBULA_PRICE_MAX_TOKENS;

    /* negative counts, each field */
    ck_assert(refused(p, usage(-1, 0, 0, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, -1, 0, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, -1, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, 0, -1, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, 0, 0, -1), PPM, QPU));
    /* a negative input cannot be hidden by a larger output */
    ck_assert(refused(p, usage(-100, 0, 0, 1000, 1), PPM, QPU));
    /* the limit itself is accepted, one more is not, in every field */
    ck_assert_int_eq(cost_of(p, usage(max, 0, 0, 0, 1), PPM, QPU), max);
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, max, 1), PPM, QPU), max);
    ck_assert(refused(p, usage(max + 1, 0, 0, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, max + 1, 0, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, max + 1, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, 0, max + 1, 1), PPM, QPU));
    ck_assert(refused(p, usage(0, 0, 0, 0, max + 1), PPM, QPU));
    ck_assert(refused(p, usage(APR_INT64_MAX, 0, 0, 0, 1), PPM, QPU));
    ck_assert(refused(p, usage(APR_INT64_MIN, 0, 0, 0, 1), PPM, QPU));
}
END_TEST

START_TEST(absurd_ratios_refused)
{
    nebula_price_t p = tokens_price(PPM, PPM, PPM, PPM);
    nebula_price_usage_t u = usage(10, 0, 0, 10, 1);
    const apr_int64_t max = NEBULA_PRICE_MAX_RATIO_PPM;

    ck_assert(refused(tokens_price(-1, PPM, PPM, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, -1, PPM, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, PPM, -1, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, PPM, PPM, -1), u, PPM, QPU));
    ck_assert(refused(tokens_price(max + 1, PPM, PPM, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, max + 1, PPM, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, PPM, max + 1, PPM), u, PPM, QPU));
    ck_assert(refused(tokens_price(PPM, PPM, PPM, max + 1), u, PPM, QPU));
    ck_assert(refused(p, u, -1, QPU));
    ck_assert(refused(p, u, max + 1, QPU));
    ck_assert(refused(p, u, PPM, 0));
    ck_assert(refused(p, u, PPM, -500000));
    /* the largest ratio is accepted: 20 tokens x 1000 = 20000 */
    ck_assert_int_eq(cost_of(tokens_price(max, PPM, PPM, PPM), u, PPM, QPU), 20000);
    ck_assert_int_eq(cost_of(p, u, max, QPU), 20000);
}
END_TEST

START_TEST(overflow_refused)
{
    nebula_price_t p =
        tokens_price(NEBULA_PRICE_MAX_RATIO_PPM, NEBULA_PRICE_MAX_RATIO_PPM,
                     NEBULA_PRICE_MAX_RATIO_PPM, NEBULA_PRICE_MAX_RATIO_PPM);
    const apr_int64_t max = NEBULA_PRICE_MAX_TOKENS;

    /* every field and ratio at its limit and an absurd units-per-dollar: the
     * product leaves 128 bits */
    ck_assert(refused(p, usage(max, max, max, max, 1), NEBULA_PRICE_MAX_RATIO_PPM,
                      APR_INT64_MAX));
    /* a per-call price whose product fits 128 bits but whose cost does not
     * fit 64: INT64_MAX micro-dollars at 2000000 units per USD */
    p.per_call_micro_usd = APR_INT64_MAX;
    ck_assert(refused(p, usage(0, 0, 0, 0, 1), PPM, 2000000));
    /* and one whose product leaves 128 bits */
    ck_assert(
        refused(p, usage(0, 0, 0, 0, max), NEBULA_PRICE_MAX_RATIO_PPM, APR_INT64_MAX));
    /* just inside 64 bits is still a price: INT64_MAX micro-dollars at 1e6
     * units per USD is INT64_MAX units */
    ck_assert_int_eq(cost_of(p, usage(0, 0, 0, 0, 1), PPM, 1000000), APR_INT64_MAX);
}
END_TEST

START_TEST(parse_ppm_accepts)
{
    static const struct {
        const char *text;
        apr_int64_t ppm;
    } ok[] = {
        {"1", 1000000},
        {"1.25", 1250000},
        {"0.075", 75000},
        {"4", 4000000},
        {"0", 0},
        {"0.0", 0},
        {"1000", 1000000000},
        {"1000.000", 1000000000},
        {"8.333333", 8333333},
        {"0.000001", 1},
        {"00.5", 500000},
        {"123.456789", 123456789},
        /* the seventh decimal rounds half up, later ones are ignored */
        {"0.0000005", 1},
        {"0.0000004", 0},
        {"0.00000049999", 0},
        {"0.9999995", 1000000},
        {"0.12345678", 123457},
        {"1000.0000004", 1000000000},
    };
    apr_int64_t ppm;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); ++i) {
        ppm = -1;
        ck_assert_msg(nebula_price_parse_ppm(ok[i].text, &ppm) == 0, "refused '%s'",
                      ok[i].text);
        ck_assert_msg(ppm == ok[i].ppm,
                      "'%s' -> %" APR_INT64_T_FMT ", not %" APR_INT64_T_FMT, ok[i].text,
                      ppm, ok[i].ppm);
    }
}
END_TEST

START_TEST(parse_ppm_refuses)
{
    static const char *const bad[] = {
        "1.",   "-1",     "abc",          "1e3",
        "1001", "",       ".5",           " 1",
        "1 ",   "+1",     "1.2.3",        "1,5",
        "0x10", "1000.1", "1000.0000005", "99999999999999999999999999",
        "-0",   "1.-5",   "1..5",         "inf",
        "nan",
    };
    apr_int64_t ppm;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(nebula_price_parse_ppm(bad[i], &ppm) == -1, "accepted '%s'",
                      bad[i]);
    }
    ck_assert_int_eq(nebula_price_parse_ppm(NULL, &ppm), -1);
}
END_TEST

START_TEST(format_ppm_round_trips)
{
    static const char *const texts[] = {"0",   "1",     "1.25",       "0.075",
                                        "4",   "1000",  "0.000001",   "8.333333",
                                        "0.5", "12.05", "123.456789", "0.1"};
    static const apr_int64_t values[] = {
        0,       1,     10,      999999,    1000000,   1000001,
        1250000, 75000, 8333333, 100000000, 999999999, NEBULA_PRICE_MAX_RATIO_PPM};
    char buf[32];
    apr_int64_t ppm;
    size_t i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); ++i) {
        ck_assert_int_eq(nebula_price_parse_ppm(texts[i], &ppm), 0);
        ck_assert_str_eq(nebula_price_format_ppm(ppm, buf, sizeof(buf)), texts[i]);
    }
    for (i = 0; i < sizeof(values) / sizeof(values[0]); ++i) {
        const char *text = nebula_price_format_ppm(values[i], buf, sizeof(buf));

        ck_assert_ptr_eq(text, buf);
        ck_assert_msg(nebula_price_parse_ppm(text, &ppm) == 0 && ppm == values[i],
                      "%" APR_INT64_T_FMT " -> '%s' does not parse back", values[i],
                      text);
    }
    /* no trailing zeros, leading zeros of the fraction kept */
    ck_assert_str_eq(nebula_price_format_ppm(1500000, buf, sizeof(buf)), "1.5");
    ck_assert_str_eq(nebula_price_format_ppm(1050000, buf, sizeof(buf)), "1.05");
    ck_assert_str_eq(nebula_price_format_ppm(1, buf, sizeof(buf)), "0.000001");
    ck_assert_str_eq(nebula_price_format_ppm(2000000, buf, sizeof(buf)), "2");
}
END_TEST

START_TEST(large_units_per_dollar)
{
    /* 1e7 output tokens at ratio 7.5, completion 5, 1e12 units per USD:
     * weighted 5e13 x 7.5 = 5e7 x 7.5 = 3.75e8 token-units at 2 USD per million = 750 USD -> 7.5e14 units */
    nebula_price_t opus = tokens_price(7500000, 5000000, 100000, 1250000);
    ck_assert_int_eq(cost_of(opus, usage(0, 0, 0, 10000000, 1), PPM, 1000000000000),
                     APR_INT64_C(750000000000000));
}
END_TEST

Suite *unit_price_suite(void)
{
    Suite *s = suite_create("price");
    TCase *cost = tcase_create("cost");
    TCase *text = tcase_create("ppm_text");

    tcase_add_test(cost, ratio_one_is_one_unit_per_token);
    tcase_add_test(cost, gpt4o_example);
    tcase_add_test(cost, cache_ratios);
    tcase_add_test(cost, group_ratio);
    tcase_add_test(cost, per_call_price);
    tcase_add_test(cost, rounds_up_once);
    tcase_add_test(cost, quota_per_usd_scales);
    tcase_add_test(cost, absurd_usage_refused);
    tcase_add_test(cost, absurd_ratios_refused);
    tcase_add_test(cost, overflow_refused);
    tcase_add_test(cost, large_units_per_dollar);
    suite_add_tcase(s, cost);

    tcase_add_test(text, parse_ppm_accepts);
    tcase_add_test(text, parse_ppm_refuses);
    tcase_add_test(text, format_ppm_round_trips);
    suite_add_tcase(s, text);
    return s;
}

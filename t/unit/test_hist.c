/* test_hist.c: nebula_hist, the latency histograms of the dashboard summary
 * and its rollup: the bucket rule at its edges (and its SQL text), the text
 * form (round trip, merging, malformed input refused whole), and the
 * percentiles (exact below 64 ms, numpy's linear interpolation, within a
 * bucket's width above). */
#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "nebula_hist.h"
#include "nebula_unit.h"

START_TEST(bucket_edges)
{
    /* exact below 64; then 32 buckets an octave */
    ck_assert_int_eq(nebula_hist_bucket(0), 0);
    ck_assert_int_eq(nebula_hist_bucket(63), 63);
    ck_assert_int_eq(nebula_hist_bucket(64), 64);
    ck_assert_int_eq(nebula_hist_bucket(65), 64);  /* [64, 128): width 2 */
    ck_assert_int_eq(nebula_hist_bucket(127), 126);
    ck_assert_int_eq(nebula_hist_bucket(128), 128); /* [128, 256): width 4 */
    ck_assert_int_eq(nebula_hist_bucket(131), 128);
    ck_assert_int_eq(nebula_hist_bucket(1000), 992); /* [512, 1024): width 16 */
    ck_assert_int_eq(nebula_hist_width(63), 1);
    ck_assert_int_eq(nebula_hist_width(64), 2);
    ck_assert_int_eq(nebula_hist_width(992), 16);
    ck_assert_int_eq(nebula_hist_width(APR_INT64_C(1) << 45), APR_INT64_C(1) << 35);
    ck_assert_int_eq(nebula_hist_bucket((APR_INT64_C(1) << 45) + 5), APR_INT64_C(1) << 45);
}
END_TEST

START_TEST(bucket_sql_text)
{
    const char *s = nebula_hist_bucket_sql(unit_pool, "latency_ms");

    ck_assert_ptr_nonnull(strstr(s, "CASE WHEN latency_ms < 64 THEN latency_ms ELSE "
                                    "latency_ms - latency_ms %% (CASE WHEN latency_ms < 128 "
                                    "THEN 2 WHEN latency_ms < 256 THEN 4"));
    ck_assert_ptr_nonnull(strstr(s, " ELSE 34359738368 END) END"));
}
END_TEST

START_TEST(text_round_trip_and_merge)
{
    nebula_hist_t *h = nebula_hist_make(unit_pool), *g = nebula_hist_make(unit_pool);

    ck_assert_str_eq(nebula_hist_text(h, unit_pool), "");
    nebula_hist_add(h, 992, 3);
    nebula_hist_add(h, 5, 1);
    nebula_hist_add(h, 128, 2);
    nebula_hist_add(h, 5, 1);
    nebula_hist_add(h, 7, 0); /* nothing */
    ck_assert_int_eq(nebula_hist_total(h), 7);
    ck_assert_str_eq(nebula_hist_text(h, unit_pool), "5:2,128:2,992:3");
    ck_assert(nebula_hist_add_text(g, nebula_hist_text(h, unit_pool)));
    ck_assert(nebula_hist_add_text(g, "128:1,4096:10"));
    ck_assert(nebula_hist_add_text(g, ""));
    ck_assert(nebula_hist_add_text(g, NULL));
    ck_assert_str_eq(nebula_hist_text(g, unit_pool), "5:2,128:3,992:3,4096:10");
    ck_assert_int_eq(nebula_hist_total(g), 18);
}
END_TEST

START_TEST(every_lower_bound_kept_in_order)
{
    /* the buckets' own bounds, at the edges of the arrays, and bounds that
     * are no bucket's (a hand-edited rollup, above 2^41): all kept, merged,
     * in ascending order */
    nebula_hist_t *h = nebula_hist_make(unit_pool);
    apr_int64_t top = (APR_INT64_C(1) << 41) - (APR_INT64_C(1) << 35);

    ck_assert(nebula_hist_add_text(h, "0:1,63:1,64:1,101:2,126:1,128:1"));
    nebula_hist_add(h, top, 1);                     /* the last bucket of the arrays */
    nebula_hist_add(h, APR_INT64_C(1) << 41, 1);    /* above them */
    nebula_hist_add(h, APR_INT64_C(1) << 40, 1);    /* the last octave's first */
    nebula_hist_add(h, -3, 1);                      /* negative */
    nebula_hist_add(h, 101, 1);                     /* not a bound: merged with itself */
    nebula_hist_add(h, 126, 4);
    ck_assert_int_eq(nebula_hist_total(h), 16);
    ck_assert_str_eq(nebula_hist_text(h, unit_pool),
                     apr_psprintf(unit_pool,
                                  "-3:1,0:1,63:1,64:1,101:3,126:5,128:1,%" APR_INT64_T_FMT
                                  ":1,%" APR_INT64_T_FMT ":1,%" APR_INT64_T_FMT ":1",
                                  APR_INT64_C(1) << 40, top, APR_INT64_C(1) << 41));
    /* the order is rebuilt after an addition */
    nebula_hist_add(h, 2, 1);
    ck_assert_str_eq(apr_pstrndup(unit_pool, nebula_hist_text(h, unit_pool), 13),
                     "-3:1,0:1,2:1,");
    /* a number that does not fit in 64 bits is malformed */
    ck_assert(!nebula_hist_add_text(h, "5:99999999999999999999"));
    ck_assert_int_eq(nebula_hist_total(h), 17);
}
END_TEST

START_TEST(text_malformed_refused_whole)
{
    static const char *const bad[] = {"5", "5:", ":5", "5:1,", "5:1;6:1", "5:1,x:2",
                                      "-5:1", "5:-1", "5:1 ", " 5:1", "5::1", NULL};
    nebula_hist_t *h = nebula_hist_make(unit_pool);
    int i;

    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(!nebula_hist_add_text(h, bad[i]), "accepted '%s'", bad[i]);
    }
    ck_assert_int_eq(nebula_hist_total(h), 0);
    ck_assert_str_eq(nebula_hist_text(h, unit_pool), "");
}
END_TEST

START_TEST(quantiles)
{
    nebula_hist_t *h = nebula_hist_make(unit_pool), *big = nebula_hist_make(unit_pool);
    apr_int64_t v;

    ck_assert(nebula_hist_quantile(h, 0.5) == 0);
    for (v = 1; v <= 10; ++v) { /* exact: numpy.percentile(range(1, 11), q) */
        nebula_hist_add(h, nebula_hist_bucket(v), 1);
    }
    ck_assert(fabs(nebula_hist_quantile(h, 0.5) - 5.5) < 1e-9);
    ck_assert(fabs(nebula_hist_quantile(h, 0.95) - 9.55) < 1e-9);
    ck_assert(fabs(nebula_hist_quantile(h, 0.0) - 1) < 1e-9);
    ck_assert(fabs(nebula_hist_quantile(h, 1.0) - 10) < 1e-9);
    /* one value of 1000 ms: within its bucket [992, 1008) */
    nebula_hist_add(big, nebula_hist_bucket(1000), 1);
    ck_assert(nebula_hist_quantile(big, 0.5) >= 992 && nebula_hist_quantile(big, 0.5) < 1008);
    /* 1000 values 1000..1999: p50 within 3.2 % of 1499.5 */
    for (v = 1000; v < 2000; ++v) {
        nebula_hist_add(big, nebula_hist_bucket(v), 1);
    }
    ck_assert(fabs(nebula_hist_quantile(big, 0.5) - 1499.5) < 1499.5 * 0.032);
}
END_TEST

Suite *unit_hist_suite(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("hist");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, bucket_edges);
    tcase_add_test(tc, bucket_sql_text);
    tcase_add_test(tc, text_round_trip_and_merge);
    tcase_add_test(tc, every_lower_bound_kept_in_order);
    tcase_add_test(tc, text_malformed_refused_whole);
    tcase_add_test(tc, quantiles);
    suite_add_tcase(s, tc);
    return s;
}

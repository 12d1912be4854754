/* main.c: the libcheck runner for libnebula_common's unit tests. Runs every
 * suite and reports in TAP on stdout (so `prove` can read it); exits non-zero
 * when any test fails. CK_FORK=no runs in-process (for valgrind);
 * CK_RUN_SUITE / CK_RUN_CASE select a subset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "nebula_unit.h"

apr_pool_t *unit_pool;

Suite *unit_jsonsuite_suite(void); /* test_jsonsuite.c */

void unit_pool_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&unit_pool, NULL), APR_SUCCESS);
}

void unit_pool_teardown(void)
{
    apr_pool_destroy(unit_pool);
    unit_pool = NULL;
}

static int unit_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    ck_assert_msg(c >= 'A' && c <= 'F', "bad hex digit in test vector");
    return c - 'A' + 10;
}

unsigned char *unit_unhex(apr_pool_t *p, const char *hex, apr_size_t *len)
{
    apr_size_t n = strlen(hex), i;
    unsigned char *out = apr_palloc(p, n / 2 + 1);

    ck_assert_msg(n % 2 == 0, "odd-length hex in test vector");
    for (i = 0; i < n / 2; ++i) {
        out[i] =
            (unsigned char)(unit_hexval(hex[2 * i]) << 4 | unit_hexval(hex[2 * i + 1]));
    }
    *len = n / 2;
    return out;
}

int main(void)
{
    SRunner *sr;
    int failed, run;

    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "apr_initialize failed\n");
        return EXIT_FAILURE;
    }
    sr = srunner_create(unit_json_suite());
    srunner_add_suite(sr, unit_jsonsuite_suite());
    srunner_add_suite(sr, unit_sse_suite());
    srunner_add_suite(sr, unit_crypto_suite());
    srunner_add_suite(sr, unit_id_suite());
    srunner_add_suite(sr, unit_dsn_suite());
    srunner_add_suite(sr, unit_migrate_split_suite());
    srunner_add_suite(sr, unit_breaker_suite());
    srunner_add_suite(sr, unit_hist_suite());
    srunner_add_suite(sr, unit_tokens_suite());
    srunner_add_suite(sr, unit_price_suite());
    srunner_add_suite(sr, unit_ledger_suite());
    srunner_add_suite(sr, unit_period_suite());
    srunner_add_suite(sr, unit_conv_anthropic_suite());
    srunner_add_suite(sr, unit_conv_gemini_suite());
    srunner_add_suite(sr, unit_conv_responses_suite());
    srunner_add_suite(sr, unit_gov_text_suite());
    srunner_add_suite(sr, unit_gov_detect_suite());
    srunner_add_suite(sr, unit_gov_policy_suite());
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    failed = srunner_ntests_failed(sr);
    run = srunner_ntests_run(sr);
    srunner_free(sr);
    apr_terminate();
    fprintf(stderr, "unit: %d passed, %d failed\n", run - failed, failed);
    return failed == 0 && run > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* nebula_unit.h: what the libcheck unit-test files share: one suite
 * constructor per library area (each in its own test_<area>.c) and the
 * per-test APR pool fixture defined in main.c. */
#ifndef NEBULA_UNIT_H
#define NEBULA_UNIT_H

#include <check.h>
#include <apr_pools.h>

/** A fresh pool for each test (created by unit_pool_setup, destroyed by
 *  unit_pool_teardown); attach both with tcase_add_checked_fixture. */
extern apr_pool_t *unit_pool;
void unit_pool_setup(void);
void unit_pool_teardown(void);

/** Decode a hex string into a pool buffer; *len receives the byte count. */
unsigned char *unit_unhex(apr_pool_t *p, const char *hex, apr_size_t *len);

Suite *unit_json_suite(void);
Suite *unit_sse_suite(void);
Suite *unit_crypto_suite(void);
Suite *unit_id_suite(void);
Suite *unit_dsn_suite(void);
Suite *unit_migrate_split_suite(void);
Suite *unit_breaker_suite(void);
Suite *unit_hist_suite(void);
Suite *unit_tokens_suite(void);
Suite *unit_price_suite(void);
Suite *unit_ledger_suite(void);
Suite *unit_period_suite(void);
Suite *unit_conv_anthropic_suite(void);
Suite *unit_conv_gemini_suite(void);
Suite *unit_conv_responses_suite(void);
Suite *unit_gov_text_suite(void);
Suite *unit_gov_detect_suite(void);
Suite *unit_gov_policy_suite(void);

#endif /* NEBULA_UNIT_H */

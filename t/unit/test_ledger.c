/* test_ledger.c: nebula_ledger, the ledger's row hash and kinds. Known
 * answers computed outside the code (sha256sum over the canonical text of
 * nebula_ledger.h), the hash is deterministic and lowercase hex, every
 * hashed field changes it, SQL NULL and "" hash alike, and a chain built
 * with it breaks where a row is edited. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_ledger.h"
#include "nebula_unit.h"

#define PREV_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* A settled request, not an account's first row. */
static nebula_ledger_row_t consume_row(void)
{
    nebula_ledger_row_t r;

    r.account_id = 7;
    r.seq = 12;
    r.kind = NEBULA_LEDGER_CONSUME;
    r.amount = -3750;
    r.balance_after = 96250;
    r.request_id = "req-abc";
    r.idem_key = "settle:req-abc";
    r.actor = "relay";
    r.created_at = APR_INT64_C(1735689600000);
    r.detail = "{\"model\":\"gpt-4o\"}";
    r.prev_hash = PREV_A;
    return r;
}

START_TEST(known_answers)
{
    nebula_ledger_row_t r = consume_row();

    /* printf 'nebula-ledger-v1\n7\n12\nconsume\n-3750\n96250\nreq-abc\n'\
     *   'settle:req-abc\nrelay\n1735689600000\n{"model":"gpt-4o"}\n'\
     *   'aaaa...(64 a)' | sha256sum */
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &r),
                     "52d0f1f2c90523f05f9791acdf315493fc7c2f0dc8366e167fb0c4ef597cf9a4");

    /* an account's first row, no request id and no detail:
     * printf 'nebula-ledger-v1\n1\n1\ntopup\n500000\n500000\n\ntopup:1\nroot\n0\n\n'\
     *   '0000...(64 0)' | sha256sum */
    memset(&r, 0, sizeof(r));
    r.account_id = 1;
    r.seq = 1;
    r.kind = NEBULA_LEDGER_TOPUP;
    r.amount = 500000;
    r.balance_after = 500000;
    r.idem_key = "topup:1";
    r.actor = "root";
    r.prev_hash = NEBULA_LEDGER_GENESIS;
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &r),
                     "8ce9e63442ab5e676da0fd1b6fbd0d2ea789ea5fdce7bdc82f2f151ad06e8d13");
}
END_TEST

START_TEST(deterministic_hex)
{
    nebula_ledger_row_t r = consume_row(), copy = consume_row();
    const char *h1 = nebula_ledger_hash(unit_pool, &r);
    const char *h2 = nebula_ledger_hash(unit_pool, &r);
    apr_size_t i;

    ck_assert_ptr_nonnull(h1);
    ck_assert_uint_eq(strlen(h1), NEBULA_LEDGER_HASH_LEN);
    for (i = 0; i < NEBULA_LEDGER_HASH_LEN; ++i) {
        ck_assert_msg(strchr("0123456789abcdef", h1[i]) != NULL, "not lowercase hex: %s",
                      h1);
    }
    ck_assert_str_eq(h1, h2);
    /* equal content in other buffers hashes the same */
    copy.detail = apr_pstrdup(unit_pool, r.detail);
    copy.idem_key = apr_pstrdup(unit_pool, r.idem_key);
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &copy), h1);
    ck_assert_uint_eq(strlen(NEBULA_LEDGER_GENESIS), NEBULA_LEDGER_HASH_LEN);
}
END_TEST

/* Each field changed alone: 11 new hashes, all different from the row's
 * and from each other. */
START_TEST(every_field_counts)
{
    nebula_ledger_row_t base = consume_row(), r;
    const char *hashes[12];
    int i, j, n = 0;

    hashes[n++] = nebula_ledger_hash(unit_pool, &base);
    r = base, r.account_id = 8;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.seq = 13;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.kind = NEBULA_LEDGER_REFUND;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.amount = -3749;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.balance_after = 96251;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.request_id = "req-abd";
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.idem_key = "settle:req-abd";
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.actor = "root";
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.created_at = base.created_at + 1;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.detail = "{\"model\":\"gpt-4o \"}";
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    r = base, r.prev_hash = NEBULA_LEDGER_GENESIS;
    hashes[n++] = nebula_ledger_hash(unit_pool, &r);
    ck_assert_int_eq(n, 12);
    for (i = 0; i < n; ++i) {
        ck_assert_ptr_nonnull(hashes[i]);
        for (j = 0; j < i; ++j) {
            ck_assert_msg(strcmp(hashes[i], hashes[j]) != 0,
                          "changes %d and %d hash alike", i, j);
        }
    }
    /* a sign, and the extremes of 64 bits, are hashed as written */
    r = base, r.amount = 3750;
    ck_assert_str_ne(nebula_ledger_hash(unit_pool, &r), hashes[0]);
    r = base, r.amount = APR_INT64_MIN;
    base.amount = APR_INT64_MAX;
    ck_assert_str_ne(nebula_ledger_hash(unit_pool, &r),
                     nebula_ledger_hash(unit_pool, &base));
}
END_TEST

START_TEST(null_is_empty)
{
    nebula_ledger_row_t a = consume_row(), b = consume_row();

    a.request_id = NULL, b.request_id = "";
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &a),
                     nebula_ledger_hash(unit_pool, &b));
    a.detail = NULL, b.detail = "";
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &a),
                     nebula_ledger_hash(unit_pool, &b));
    a.actor = NULL, b.actor = "";
    a.idem_key = NULL, b.idem_key = "";
    a.kind = NULL, b.kind = "";
    a.prev_hash = NULL, b.prev_hash = "";
    ck_assert_str_eq(nebula_ledger_hash(unit_pool, &a),
                     nebula_ledger_hash(unit_pool, &b));
    /* but absent is not the same as present */
    b.detail = "{}";
    ck_assert_str_ne(nebula_ledger_hash(unit_pool, &a),
                     nebula_ledger_hash(unit_pool, &b));
}
END_TEST

/* Three rows chained as billing_ledger_post() chains them: an edit of the
 * middle row changes its hash, so the next row's prev_hash no longer links
 * (what verify-ledger reports). */
START_TEST(chain_links)
{
    nebula_ledger_row_t rows[3];
    const char *hash[3], *edited;
    apr_int64_t balance = 0;
    int i;

    for (i = 0; i < 3; ++i) {
        memset(&rows[i], 0, sizeof(rows[i]));
        rows[i].account_id = 42;
        rows[i].seq = i + 1;
        rows[i].kind = i == 0 ? NEBULA_LEDGER_TOPUP : NEBULA_LEDGER_CONSUME;
        rows[i].amount = i == 0 ? 1000 : -100 * i;
        balance += rows[i].amount;
        rows[i].balance_after = balance;
        rows[i].idem_key = apr_psprintf(unit_pool, "k%d", i);
        rows[i].created_at = 1000 + i;
        rows[i].prev_hash = i == 0 ? NEBULA_LEDGER_GENESIS : hash[i - 1];
        hash[i] = nebula_ledger_hash(unit_pool, &rows[i]);
        ck_assert_ptr_nonnull(hash[i]);
    }
    ck_assert_str_eq(rows[2].prev_hash, hash[1]);
    rows[1].amount += 1;
    edited = nebula_ledger_hash(unit_pool, &rows[1]);
    ck_assert_str_ne(edited, hash[1]);
    ck_assert_str_ne(rows[2].prev_hash, edited);
}
END_TEST

START_TEST(kinds)
{
    static const char *const valid[] = {
        NEBULA_LEDGER_TOPUP,    NEBULA_LEDGER_CONSUME,    NEBULA_LEDGER_REFUND,
        NEBULA_LEDGER_VOUCHER,  NEBULA_LEDGER_PLAN_GRANT, NEBULA_LEDGER_PERIOD_RESET,
        NEBULA_LEDGER_ROLLOVER, NEBULA_LEDGER_EXPIRY,     NEBULA_LEDGER_ADJUSTMENT};
    static const char *const invalid[] = {"",    "TOPUP",  "topup ",    " topup",
                                          "top", "topups", "consume\n", "deposit"};
    size_t i;

    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); ++i) {
        ck_assert_msg(nebula_ledger_kind_valid(valid[i]), "'%s' refused", valid[i]);
    }
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); ++i) {
        ck_assert_msg(!nebula_ledger_kind_valid(invalid[i]), "'%s' accepted", invalid[i]);
    }
    ck_assert(!nebula_ledger_kind_valid(NULL));
    /* the schema's column is VARCHAR(16): every kind fits */
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); ++i) {
        ck_assert_uint_le(strlen(valid[i]), 16);
    }
}
END_TEST

Suite *unit_ledger_suite(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc = tcase_create("hash");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, known_answers);
    tcase_add_test(tc, deterministic_hex);
    tcase_add_test(tc, every_field_counts);
    tcase_add_test(tc, null_is_empty);
    tcase_add_test(tc, chain_links);
    tcase_add_test(tc, kinds);
    suite_add_tcase(s, tc);
    return s;
}

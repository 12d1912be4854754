/**
 * @file nebula_ledger.h
 * @brief The ledger's hash chain: one definition shared by the billing
 *        module (which writes rows) and nebulactl verify-ledger (which checks
 *        them).
 *
 * Every ledger row carries prev_hash, the row_hash of the previous row of
 * the same account (64 '0' for an account's first row, seq 1), and its own
 * row_hash: the lowercase hex SHA-256 of the canonical text
 *
 *     "nebula-ledger-v1\n" account_id "\n" seq "\n" kind "\n" amount "\n"
 *     balance_after "\n" request_id "\n" idem_key "\n" actor "\n"
 *     created_at "\n" detail "\n" prev_hash
 *
 * with integers in decimal and absent text (SQL NULL) as the empty string.
 * Editing any field of a row breaks its own hash; deleting or inserting a
 * row breaks the chain (seq and prev_hash).
 */
#ifndef NEBULA_LEDGER_H
#define NEBULA_LEDGER_H

#include <apr_pools.h>

#define NEBULA_LEDGER_HASH_LEN 64
/** prev_hash of an account's first row. */
#define NEBULA_LEDGER_GENESIS \
    "0000000000000000000000000000000000000000000000000000000000000000"

/** One ledger row as stored. Text fields may be NULL (stored as NULL). */
typedef struct {
    apr_int64_t account_id;
    apr_int64_t seq;
    const char *kind;
    apr_int64_t amount;
    apr_int64_t balance_after;
    const char *request_id;
    const char *idem_key;
    const char *actor;
    apr_int64_t created_at;
    const char *detail;
    const char *prev_hash;
} nebula_ledger_row_t;

/** The ledger kinds (ledger.kind). */
#define NEBULA_LEDGER_TOPUP        "topup"
#define NEBULA_LEDGER_CONSUME      "consume"
#define NEBULA_LEDGER_REFUND       "refund"
#define NEBULA_LEDGER_VOUCHER      "voucher"
#define NEBULA_LEDGER_PLAN_GRANT   "plan_grant"
#define NEBULA_LEDGER_PERIOD_RESET "period_reset"
#define NEBULA_LEDGER_ROLLOVER     "rollover"
#define NEBULA_LEDGER_EXPIRY       "expiry"
#define NEBULA_LEDGER_ADJUSTMENT   "adjustment"

/** Whether @a kind is one of the kinds above. */
int nebula_ledger_kind_valid(const char *kind);

/**
 * The row_hash of @a row (64 hex digits and NUL, allocated in @a p), or
 * NULL when OpenSSL fails.
 */
char *nebula_ledger_hash(apr_pool_t *p, const nebula_ledger_row_t *row);

#endif /* NEBULA_LEDGER_H */

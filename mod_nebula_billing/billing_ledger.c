/* billing_ledger.c: accounts and the append-only, hash-chained ledger.
 *
 * billing_ledger_post() is the only code that writes a ledger row or changes
 * an account's balance. Inside the caller's transaction it:
 *   1. changes the account's balance, reserved and ledger_seq with one
 *      UPDATE, which also takes the account's row lock (and, with
 *      check_floor, refuses to pass -overdraft_limit: affected rows decide);
 *   2. looks for the (account, idem_key) row: one effect per key;
 *   3. reads the new head (balance, seq, previous hash) under that lock;
 *   4. inserts the row with its hash and stores the new chain head.
 * No ledger row is ever updated or deleted. */
#include <string.h>
#include <apr_strings.h>
#include "billing_private.h"
#include "nebula_ledger.h"
#include "nebula_id.h"

apr_int64_t billing_now_ms(void)
{
    return apr_time_as_msec(apr_time_now());
}

const char *billing_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

int billing_db_conflict(const char *err)
{
    return err && (strstr(err, "UNIQUE constraint") || strstr(err, "duplicate key")
                   || strstr(err, "Duplicate entry"));
}

int billing_db_retriable(const char *err)
{
    return err && (strstr(err, "database is locked") || strstr(err, "busy")
                   || strstr(err, "deadlock") || strstr(err, "Deadlock")
                   || strstr(err, "could not serialize") || strstr(err, "Lock wait timeout")
                   /* a connection the server ended and mod_dbd reset has
                    * forgotten its prepared statements: the failure marked
                    * them stale, so the transaction runs again with fresh
                    * ones (PostgreSQL, MySQL) */
                   || (strstr(err, "prepared statement") && strstr(err, "does not exist"))
                   || strstr(err, "Unknown prepared statement"));
}

static const char *const find_sql =
    "SELECT id, amount, balance_after FROM ledger WHERE account_id = %lld AND idem_key = %s";

/* The row of (account, idem_key), if any: 1 found, 0 not, -1 error. */
static int find_row(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t account_id,
                    const char *idem_key, nebula_posting_result_t *out, const char **err)
{
    nebula_dbd_rows_t rows;
    const char *args[2] = {billing_i64(p, account_id), idem_key};

    if (nebula_ap_db_select(db, "billing_ledger_find", find_sql, 2, args, &rows, err)
        != APR_SUCCESS) {
        return -1;
    }
    if (rows.nrows == 0) {
        return 0;
    }
    if (out) {
        out->account_id = account_id;
        out->ledger_id = nebula_ap_db_int(&rows, 0, 0);
        out->amount = nebula_ap_db_int(&rows, 0, 1);
        out->balance_after = nebula_ap_db_int(&rows, 0, 2);
    }
    return 1;
}

/* The hash joins fields with newlines: a text field with a control
 * character could move text between fields unnoticed, so none may have one
 * (detail is compact JSON, which escapes them). */
static int plain_text(const char *s)
{
    for (; s && *s; ++s) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int billing_ledger_post(nebula_ap_db_t *db, apr_pool_t *p, const billing_post_t *bp,
                        nebula_posting_result_t *out, const char **err)
{
    apr_int64_t now = billing_now_ms();
    const char *args[14];
    nebula_dbd_rows_t rows;
    nebula_ledger_row_t row;
    const char *hash;
    int affected = 0, found;

    if (!nebula_ledger_kind_valid(bp->kind) || bp->idem_key == NULL || !*bp->idem_key
        || !plain_text(bp->idem_key) || !plain_text(bp->request_id)
        || !plain_text(bp->actor)) {
        *err = "invalid posting (kind, or control characters in a text field)";
        return NEBULA_BILLING_INVALID;
    }
    args[0] = billing_i64(p, bp->amount);
    args[1] = billing_i64(p, bp->reserved_delta);
    args[2] = billing_i64(p, now);
    args[3] = billing_i64(p, bp->account_id);
    args[4] = args[0];
    args[5] = args[1];
    if (nebula_ap_db_exec(db, bp->check_floor ? "billing_acct_post_floor" : "billing_acct_post",
                          bp->check_floor
                              ? "UPDATE accounts SET balance = balance + %lld, reserved = "
                                "reserved + %lld, ledger_seq = ledger_seq + 1, updated_at = "
                                "%lld WHERE id = %lld AND balance + %lld - (reserved + %lld) "
                                ">= -overdraft_limit"
                              : "UPDATE accounts SET balance = balance + %lld, reserved = "
                                "reserved + %lld, ledger_seq = ledger_seq + 1, updated_at = "
                                "%lld WHERE id = %lld",
                          bp->check_floor ? 6 : 4, args, &affected, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (affected == 0) {
        if ((found = find_row(db, p, bp->account_id, bp->idem_key, out, err)) != 0) {
            return found > 0 ? NEBULA_BILLING_DUPLICATE : NEBULA_BILLING_ERROR;
        }
        args[0] = billing_i64(p, bp->account_id);
        if (nebula_ap_db_select(db, "billing_acct_exists",
                                "SELECT id FROM accounts WHERE id = %lld", 1, args, &rows, err)
            != APR_SUCCESS) {
            return NEBULA_BILLING_ERROR;
        }
        *err = rows.nrows ? "not enough available balance" : "no such account";
        return rows.nrows ? NEBULA_BILLING_INSUFFICIENT : NEBULA_BILLING_INVALID;
    }
    /* the account's row is ours until commit: the key check and the head
     * read below cannot race another posting to this account */
    if ((found = find_row(db, p, bp->account_id, bp->idem_key, out, err)) != 0) {
        return found > 0 ? NEBULA_BILLING_DUPLICATE : NEBULA_BILLING_ERROR;
    }
    args[0] = billing_i64(p, bp->account_id);
    if (nebula_ap_db_select(db, "billing_acct_head",
                            "SELECT balance, ledger_seq, ledger_hash FROM accounts "
                            "WHERE id = %lld",
                            1, args, &rows, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (rows.nrows != 1) {
        *err = "account vanished";
        return NEBULA_BILLING_ERROR;
    }
    memset(&row, 0, sizeof(row));
    row.account_id = bp->account_id;
    row.seq = nebula_ap_db_int(&rows, 0, 1);
    row.kind = bp->kind;
    row.amount = bp->amount;
    row.balance_after = nebula_ap_db_int(&rows, 0, 0);
    row.request_id = bp->request_id;
    row.idem_key = bp->idem_key;
    row.actor = bp->actor ? bp->actor : "";
    row.created_at = now;
    row.detail = bp->detail;
    row.prev_hash = rows.rows[0][2];
    if (row.prev_hash == NULL || strlen(row.prev_hash) != NEBULA_LEDGER_HASH_LEN) {
        *err = "account has no valid ledger head";
        return NEBULA_BILLING_ERROR;
    }
    if ((hash = nebula_ledger_hash(p, &row)) == NULL) {
        *err = "cannot hash the ledger row";
        return NEBULA_BILLING_ERROR;
    }
    args[0] = billing_i64(p, row.account_id);
    args[1] = billing_i64(p, row.seq);
    args[2] = row.kind;
    args[3] = billing_i64(p, row.amount);
    args[4] = billing_i64(p, row.balance_after);
    args[5] = row.request_id;
    args[6] = row.idem_key;
    args[7] = row.actor;
    args[8] = billing_i64(p, row.created_at);
    args[9] = row.detail;
    args[10] = row.prev_hash;
    args[11] = hash;
    if (nebula_ap_db_insert(db, "billing_ledger_insert",
                            "INSERT INTO ledger (account_id, seq, kind, amount, balance_after, "
                            "request_id, idem_key, actor, created_at, detail, prev_hash, "
                            "row_hash) VALUES (%lld, %lld, %s, %lld, %lld, %s, %s, %s, %lld, "
                            "%s, %s, %s)",
                            12, args, &out->ledger_id, err)
        != APR_SUCCESS) {
        return billing_db_conflict(*err) ? NEBULA_BILLING_DUPLICATE : NEBULA_BILLING_ERROR;
    }
    args[0] = hash;
    args[1] = billing_i64(p, row.account_id);
    if (nebula_ap_db_exec(db, "billing_acct_head_set",
                          "UPDATE accounts SET ledger_hash = %s WHERE id = %lld", 2, args,
                          NULL, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    out->account_id = row.account_id;
    out->amount = row.amount;
    out->balance_after = row.balance_after;
    return NEBULA_BILLING_OK;
}

int billing_account_id(nebula_ap_db_t *db, apr_pool_t *p, const char *owner_kind,
                       apr_int64_t owner_id, const char *unit, int create, apr_int64_t *id,
                       const char **err)
{
    static const char *const sel =
        "SELECT id FROM accounts WHERE owner_kind = %s AND owner_id = %lld";
    nebula_dbd_rows_t rows;
    const char *args[5], *ins;
    apr_int64_t now = billing_now_ms();

    args[0] = owner_kind;
    args[1] = billing_i64(p, owner_id);
    if (nebula_ap_db_select(db, "billing_acct_of", sel, 2, args, &rows, err) != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (rows.nrows == 0 && create) {
        /* a concurrent creator may win: ignore the conflict, read again */
        switch (nebula_ap_db_dialect(db)) {
        case NEBULA_DBD_PGSQL:
            ins = "INSERT INTO accounts (owner_kind, owner_id, unit, created_at, updated_at) "
                  "VALUES (%s, %lld, %s, %lld, %lld) ON CONFLICT (owner_kind, owner_id) "
                  "DO NOTHING";
            break;
        case NEBULA_DBD_MYSQL:
            ins = "INSERT IGNORE INTO accounts (owner_kind, owner_id, unit, created_at, "
                  "updated_at) VALUES (%s, %lld, %s, %lld, %lld)";
            break;
        default:
            ins = "INSERT OR IGNORE INTO accounts (owner_kind, owner_id, unit, created_at, "
                  "updated_at) VALUES (%s, %lld, %s, %lld, %lld)";
        }
        args[2] = unit ? unit : "quota";
        args[3] = billing_i64(p, now);
        args[4] = args[3];
        /* MySQL's REPEATABLE READ would read the snapshot of the first
         * SELECT again and miss a wallet a concurrent creator just
         * committed: its re-read is a locking (current) read */
        if (nebula_ap_db_exec(db, "billing_acct_create", ins, 5, args, NULL, err)
                != APR_SUCCESS
            || (nebula_ap_db_dialect(db) == NEBULA_DBD_MYSQL
                    ? nebula_ap_db_select(db, "billing_acct_of_current",
                                          "SELECT id FROM accounts WHERE owner_kind = %s "
                                          "AND owner_id = %lld LOCK IN SHARE MODE",
                                          2, args, &rows, err)
                    : nebula_ap_db_select(db, "billing_acct_of", sel, 2, args, &rows, err))
                   != APR_SUCCESS) {
            return NEBULA_BILLING_ERROR;
        }
    }
    if (rows.nrows == 0) {
        *err = "no such account";
        return NEBULA_BILLING_INVALID;
    }
    *id = nebula_ap_db_int(&rows, 0, 0);
    return NEBULA_BILLING_OK;
}

/* Whether the owner of a wallet exists. */
static int owner_exists(nebula_ap_db_t *db, apr_pool_t *p, const char *kind, apr_int64_t id,
                        const char **err)
{
    nebula_dbd_rows_t rows;
    const char *args[1] = {billing_i64(p, id)};
    const char *sql = strcmp(kind, "org") == 0 ? "SELECT id FROM organizations WHERE id = %lld"
                                               : "SELECT id FROM users WHERE id = %lld";

    if (nebula_ap_db_select(db, strcmp(kind, "org") == 0 ? "billing_org_exists"
                                                         : "billing_user_exists",
                            sql, 1, args, &rows, err)
        != APR_SUCCESS) {
        return -1;
    }
    return rows.nrows > 0;
}

/* One attempt of billing_post() inside a transaction. */
static int post_txn(nebula_ap_db_t *db, apr_pool_t *p, const nebula_posting_t *np,
                    nebula_posting_result_t *out, const char **err)
{
    billing_post_t bp;
    apr_int64_t account_id = np->account_id;
    const char *args[2];
    nebula_dbd_rows_t rows;
    int rc;

    if (np->owner_kind) {
        if (strcmp(np->owner_kind, "user") && strcmp(np->owner_kind, "org")
            && strcmp(np->owner_kind, "sub")) {
            *err = "owner kind must be user, org or sub";
            return NEBULA_BILLING_INVALID;
        }
        if (strcmp(np->owner_kind, "sub") != 0) {
            if ((rc = owner_exists(db, p, np->owner_kind, np->owner_id, err)) <= 0) {
                if (rc == 0) {
                    *err = "no such owner";
                }
                return rc == 0 ? NEBULA_BILLING_INVALID : NEBULA_BILLING_ERROR;
            }
        }
        if ((rc = billing_account_id(db, p, np->owner_kind, np->owner_id, "quota",
                                     strcmp(np->owner_kind, "sub") != 0, &account_id, err))
            != NEBULA_BILLING_OK) {
            return rc;
        }
    }
    memset(&bp, 0, sizeof(bp));
    bp.account_id = account_id;
    bp.kind = np->kind;
    bp.amount = np->amount;
    bp.check_floor = !np->allow_negative && np->amount < 0;
    bp.idem_key = np->idem_key;
    bp.actor = np->actor;
    bp.detail = np->detail;
    if (np->set_balance) {
        /* lock the row first, so that the difference is computed on the
         * balance the posting then changes */
        args[0] = billing_i64(p, billing_now_ms());
        args[1] = billing_i64(p, account_id);
        if (nebula_ap_db_exec(db, "billing_acct_lock",
                              "UPDATE accounts SET updated_at = %lld WHERE id = %lld", 2, args,
                              NULL, err)
                != APR_SUCCESS
            || nebula_ap_db_select(db, "billing_acct_balance",
                                   "SELECT balance FROM accounts WHERE id = %lld", 1, args + 1,
                                   &rows, err)
                   != APR_SUCCESS) {
            return NEBULA_BILLING_ERROR;
        }
        if (rows.nrows != 1) {
            *err = "no such account";
            return NEBULA_BILLING_INVALID;
        }
        bp.amount = np->amount - nebula_ap_db_int(&rows, 0, 0);
        bp.check_floor = 0; /* the operator sets the balance it wants */
    }
    out->account_id = account_id;
    return billing_ledger_post(db, p, &bp, out, err);
}

int billing_post(server_rec *s, apr_pool_t *p, const nebula_posting_t *np,
                 nebula_posting_result_t *out)
{
    nebula_ap_db_t *db;
    const char *err = NULL;
    int rc = NEBULA_BILLING_ERROR, attempt;

    memset(out, 0, sizeof(*out));
    if (np->idem_key == NULL || !*np->idem_key || !nebula_ledger_kind_valid(np->kind)) {
        return NEBULA_BILLING_INVALID;
    }
    if ((db = nebula_ap_db_open(p, s)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    for (attempt = 0; attempt < 3; ++attempt) {
        if (nebula_ap_db_begin(db, &err) != APR_SUCCESS) {
            rc = NEBULA_BILLING_ERROR;
        }
        else if ((rc = post_txn(db, p, np, out, &err)) == NEBULA_BILLING_OK) {
            if (nebula_ap_db_commit(db, &err) == APR_SUCCESS) {
                break;
            }
            rc = NEBULA_BILLING_ERROR;
        }
        else {
            nebula_ap_db_rollback(db);
        }
        if (rc != NEBULA_BILLING_ERROR || !billing_db_retriable(err)) {
            break;
        }
    }
    if (rc == NEBULA_BILLING_DUPLICATE && out->ledger_id == 0) {
        /* the unique index caught it: read the first effect */
        find_row(db, p, out->account_id, np->idem_key, out, &err);
    }
    if (rc == NEBULA_BILLING_ERROR) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02010: ledger posting %s (%s) failed: %s", np->idem_key, np->kind,
                     err ? err : "unknown error");
    }
    nebula_ap_db_close(db);
    return rc;
}

/* ctl_import_ledger.c: an imported user's quota becomes the opening row of
 * its wallet, written the way mod_nebula_billing's billing_ledger_post()
 * writes every row (same statements, same hash chain: nebula_ledger.h), so
 * verify-ledger and the billing module take it as their own. The row is an
 * "adjustment" keyed "newapi:user:<new-api id>" with actor
 * "nebulactl import-newapi": the key makes a second import add nothing, and
 * marks the user as imported. It runs in the import's transaction. */
#include <string.h>
#include <apr_strings.h>

#include "ctl_import.h"
#include "nebula_ledger.h"

#define IMPORT_ACTOR "nebulactl import-newapi"

static const char *idem_key(imp_t *im, const char *src_id)
{
    return apr_pstrcat(im->ctl->pool, "newapi:user:", src_id, NULL);
}

/* The wallet of @a user_id; created when @a create. *@a id 0 if none. */
static int wallet(imp_t *im, const char *user_id, int create, const char **id)
{
    nebula_dbd_rows_t rows;
    const char *args[3] = {user_id, imp_i64(im, im->now_ms), NULL};
    apr_int64_t nid;

    *id = NULL;
    if (imp_select(
            im, "SELECT id FROM accounts WHERE owner_kind = 'user' AND owner_id = %lld",
            1, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        *id = rows.rows[0][0];
        return CTL_EXIT_OK;
    }
    if (!create) {
        return CTL_EXIT_OK;
    }
    args[2] = args[1];
    if (imp_insert(im,
                   "INSERT INTO accounts (owner_kind, owner_id, unit, created_at, "
                   "updated_at) VALUES ('user', %lld, 'quota', %lld, %lld)",
                   3, args, &nid) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *id = imp_i64(im, nid);
    return CTL_EXIT_OK;
}

static int find_row(imp_t *im, const char *account, const char *key, int *found)
{
    nebula_dbd_rows_t rows;
    const char *args[2] = {account, key};

    if (imp_select(im, "SELECT id FROM ledger WHERE account_id = %lld AND idem_key = %s",
                   2, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *found = rows.nrows > 0;
    return CTL_EXIT_OK;
}

int imp_ledger_has_opening(imp_t *im, const char *user_id, const char *src_id, int *has)
{
    const char *account;

    *has = 0;
    if (wallet(im, user_id, 0, &account) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    return account ? find_row(im, account, idem_key(im, src_id), has) : CTL_EXIT_OK;
}

int imp_ledger_opening(imp_t *im, const char *user_id, const char *src_id,
                       apr_int64_t amount, int *posted)
{
    const char *account, *key = idem_key(im, src_id), *args[12], *hash;
    nebula_dbd_rows_t rows;
    nebula_ledger_row_t row;
    int found, n = 0;

    *posted = 0;
    if (wallet(im, user_id, 1, &account) != CTL_EXIT_OK ||
        find_row(im, account, key, &found) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (found) {
        return CTL_EXIT_OK;
    }
    /* the balance, the chain head and the row change together */
    args[0] = imp_i64(im, amount);
    args[1] = imp_i64(im, im->now_ms);
    args[2] = account;
    if (imp_exec(
            im,
            "UPDATE accounts SET balance = balance + %lld, ledger_seq = ledger_seq + 1, "
            "updated_at = %lld WHERE id = %lld",
            3, args, &n) != CTL_EXIT_OK ||
        imp_select(
            im, "SELECT balance, ledger_seq, ledger_hash FROM accounts WHERE id = %lld",
            1, args + 2, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (n != 1 || rows.nrows != 1 || rows.rows[0][2] == NULL ||
        strlen(rows.rows[0][2]) != NEBULA_LEDGER_HASH_LEN) {
        ctl_error("account %s has no valid ledger head", account);
        return CTL_EXIT_ERROR;
    }
    memset(&row, 0, sizeof(row));
    row.account_id = apr_atoi64(account);
    row.seq = apr_atoi64(rows.rows[0][1]);
    row.kind = NEBULA_LEDGER_ADJUSTMENT;
    row.amount = amount;
    row.balance_after = apr_atoi64(rows.rows[0][0]);
    row.request_id = NULL;
    row.idem_key = key;
    row.actor = IMPORT_ACTOR;
    row.created_at = im->now_ms;
    row.detail = apr_psprintf(im->ctl->pool,
                              "{\"source\":\"new-api\",\"newapi_user_id\":%s,"
                              "\"opening_quota\":%" APR_INT64_T_FMT "}",
                              src_id, amount);
    row.prev_hash = rows.rows[0][2];
    if ((hash = nebula_ledger_hash(im->ctl->pool, &row)) == NULL) {
        ctl_error("cannot hash a ledger row");
        return CTL_EXIT_ERROR;
    }
    args[0] = account;
    args[1] = imp_i64(im, row.seq);
    args[2] = row.kind;
    args[3] = imp_i64(im, row.amount);
    args[4] = imp_i64(im, row.balance_after);
    args[5] = NULL;
    args[6] = row.idem_key;
    args[7] = row.actor;
    args[8] = imp_i64(im, row.created_at);
    args[9] = row.detail;
    args[10] = row.prev_hash;
    args[11] = hash;
    if (imp_exec(im,
                 "INSERT INTO ledger (account_id, seq, kind, amount, balance_after, "
                 "request_id, idem_key, actor, created_at, detail, prev_hash, row_hash) "
                 "VALUES (%lld, %lld, %s, %lld, %lld, %s, %s, %s, %lld, %s, %s, %s)",
                 12, args, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    args[0] = hash;
    args[1] = account;
    if (imp_exec(im, "UPDATE accounts SET ledger_hash = %s WHERE id = %lld", 2, args,
                 NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *posted = 1;
    return CTL_EXIT_OK;
}

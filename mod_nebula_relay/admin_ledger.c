/* admin_ledger.c: reading the ledger: GET /api/billing/ledger (filtered,
 * newest first, paginated), GET /api/billing/ledger/export (every matching
 * row, oldest first, as CSV or JSON lines, streamed in batches so that
 * neither the server nor the database ever holds the whole result), and GET
 * /api/billing/reconcile (each account's balance, holds and chain head
 * against its ledger rows and open reservations). Read-only: rows are
 * written by mod_nebula_billing alone. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <http_request.h>
#include "admin_billing.h"
#include "nebula_ledger.h"

const admin_col_t admin_ledger_cols[] = {
    {"id", NULL, ADMIN_COL_INT},          {"account_id", NULL, ADMIN_COL_INT},
    {"seq", NULL, ADMIN_COL_INT},         {"kind", NULL, ADMIN_COL_STR},
    {"amount", NULL, ADMIN_COL_INT},      {"balance_after", NULL, ADMIN_COL_INT},
    {"request_id", NULL, ADMIN_COL_NSTR}, {"idem_key", NULL, ADMIN_COL_STR},
    {"actor", NULL, ADMIN_COL_STR},       {"created_at", NULL, ADMIN_COL_INT},
    {"detail", NULL, ADMIN_COL_JSON},     {"prev_hash", NULL, ADMIN_COL_STR},
    {"row_hash", NULL, ADMIN_COL_STR},    {NULL, NULL, 0}};

/* rows per statement of an export */
/* mismatches a reconciliation lists (then "truncated": true) */
#define RECONCILE_MAX_LISTED 1000

void admin_ledger_filters(admin_req_t *a, admin_sql_t *w)
{
    apr_int64_t from = -1, to = -1;
    const char *kind = NULL, *request_id = NULL;

    if (admin_query_str(a, "kind", 16, &kind) == ADMIN_SET &&
        !nebula_ledger_kind_valid(kind)) {
        admin_invalid(
            a, "kind",
            "'kind' must be one of: topup, consume, refund, voucher, plan_grant, "
            "period_reset, rollover, expiry, adjustment");
    }
    admin_query_str(a, "request_id", 64, &request_id);
    admin_logs_range(a, &from, &to);
    if (kind) {
        admin_sql_where(w, "kind = %s", kind);
    }
    if (request_id) {
        admin_sql_where(w, "request_id = %s", request_id);
    }
    if (from >= 0) {
        admin_sql_where(w, "created_at >= %lld", admin_i64(a, from));
    }
    if (to >= 0) {
        admin_sql_where(w, "created_at < %lld", admin_i64(a, to));
    }
}

/* The account_id filter, then the others. */
static void ledger_where(admin_req_t *a, admin_sql_t *w)
{
    apr_int64_t account_id = 0;

    admin_sql_init(w, a->r->pool, "FROM ledger");
    if (admin_query_int(a, "account_id", 1, ADMIN_MAX_AMOUNT, &account_id) == ADMIN_SET) {
        admin_sql_where(w, "account_id = %lld", admin_i64(a, account_id));
    }
    admin_ledger_filters(a, w);
}

int admin_ledger_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",       "per_page", "account_id", "kind",
                                          "request_id", "from",     "to",         NULL};
    apr_int64_t page, per_page;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    ledger_where(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    return admin_db_send_page(a, &w, admin_ledger_cols, NULL, "id DESC", page, per_page,
                              "ledger rows");
}

/* ---- export ------------------------------------------------------------- */

int admin_ledger_export(admin_req_t *a)
{
    static const char *const allowed[] = {"format", "account_id", "kind", "request_id",
                                          "from",   "to",         NULL};
    static const char *const formats[] = {"csv", "jsonl", NULL};
    const char *format = "csv";
    admin_sql_t w;

    admin_query_only(a, allowed);
    if (admin_query_str(a, "format", 8, &format) == ADMIN_SET &&
        strcmp(format, formats[0]) && strcmp(format, formats[1])) {
        admin_invalid(a, "format", "'format' must be csv or jsonl");
    }
    ledger_where(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    return admin_export(a, &w, "ledger", admin_ledger_cols, format, "ledger");
}

/* ---- reconciliation ------------------------------------------------------ */

/* Accounts whose balance is not the sum of their ledger rows, whose
 * reserved is not the sum of their open holds, or whose chain head is not
 * their row count: one statement, so one consistent snapshot. */
#define RECONCILE_FROM                                                                   \
    "FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS s, COUNT(*) AS c "     \
    "FROM ledger GROUP BY account_id) l ON l.account_id = a.id LEFT JOIN (SELECT "       \
    "account_id, SUM(amount) AS s FROM reservations WHERE state = 'held' GROUP BY "      \
    "account_id) h ON h.account_id = a.id WHERE a.balance <> COALESCE(l.s, 0) OR "       \
    "a.reserved <> COALESCE(h.s, 0) OR a.ledger_seq <> COALESCE(l.c, 0)"

int admin_ledger_reconcile(admin_req_t *a)
{
    static const char *const none[] = {NULL};
    static const char *const names[] = {"account_id", "balance",  "ledger_sum",
                                        "reserved",   "held_sum", "ledger_seq",
                                        "ledger_rows"};
    const char *args[1] = {admin_i64(a, RECONCILE_MAX_LISTED + 1)};
    nebula_dbd_rows_t rows;
    apr_int64_t checked;
    json_t *out, *list;
    int i, j;

    admin_query_only(a, none);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((checked = admin_db_count(a, "FROM accounts", 0, NULL)) < 0 ||
        admin_db_select(a,
                        "SELECT a.id, a.balance, COALESCE(l.s, 0), a.reserved, "
                        "COALESCE(h.s, 0), a.ledger_seq, COALESCE(l.c, 0) " RECONCILE_FROM
                        " ORDER BY a.id LIMIT %lld",
                        1, args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "reconcile the accounts");
    }
    list = json_array();
    for (i = 0; i < rows.nrows && i < RECONCILE_MAX_LISTED; ++i) {
        json_t *m = json_object();
        for (j = 0; j < 7; ++j) {
            json_object_set_new(m, names[j], json_integer(nebula_ap_db_int(&rows, i, j)));
        }
        json_array_append_new(list, m);
    }
    if (rows.nrows > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01533: reconciliation: %s%d account(s) do not match their "
                      "ledger or their open holds (the first: %s)",
                      rows.nrows > RECONCILE_MAX_LISTED ? "more than " : "",
                      rows.nrows > RECONCILE_MAX_LISTED ? RECONCILE_MAX_LISTED
                                                        : rows.nrows,
                      rows.rows[0][0]);
    }
    out = json_object();
    json_object_set_new(out, "accounts_checked", json_integer(checked));
    json_object_set_new(out, "mismatches", list);
    json_object_set_new(out, "truncated",
                        json_boolean(rows.nrows > RECONCILE_MAX_LISTED));
    json_object_set_new(out, "ok", json_boolean(rows.nrows == 0));
    return admin_send_data(a, HTTP_OK, out);
}

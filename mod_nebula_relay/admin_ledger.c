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
#define EXPORT_BATCH 500
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

/* @a s as one CSV field (RFC 4180): quoted when it holds a comma, a quote,
 * a line break or surrounding spaces; NULL is the empty field. */
static const char *csv_field(apr_pool_t *p, const char *s)
{
    apr_size_t n, i, q = 0;
    char *out, *o;

    if (s == NULL) {
        return "";
    }
    n = strlen(s);
    for (i = 0; i < n; ++i) {
        q += s[i] == '"';
    }
    if (q == 0 && strpbrk(s, ",\r\n") == NULL &&
        (n == 0 || (!apr_isspace(s[0]) && !apr_isspace(s[n - 1])))) {
        return s;
    }
    o = out = apr_palloc(p, n + q + 3);
    *o++ = '"';
    for (i = 0; i < n; ++i) {
        if (s[i] == '"') {
            *o++ = '"';
        }
        *o++ = s[i];
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static const char *csv_header(apr_pool_t *p)
{
    const char *line = NULL;
    int j;

    for (j = 0; admin_ledger_cols[j].name; ++j) {
        line = line ? apr_pstrcat(p, line, ",", admin_ledger_cols[j].name, NULL)
                    : admin_ledger_cols[j].name;
    }
    return apr_pstrcat(p, line, "\r\n", NULL);
}

/* Row @a i as one line of @a csv ? CSV : JSON lines, in @a p. */
static const char *export_line(apr_pool_t *p, const nebula_dbd_rows_t *rows, int i,
                               int csv)
{
    const char *line = NULL;
    json_t *o;
    int j;

    if (!csv) {
        o = admin_row_json(rows, i, 0, admin_ledger_cols);
        line = apr_pstrcat(p, nebula_json_dumps(p, o, JSON_COMPACT), "\n", NULL);
        json_decref(o);
        return line;
    }
    for (j = 0; admin_ledger_cols[j].name; ++j) {
        const char *f = csv_field(p, rows->rows[i][j]);
        line = line ? apr_pstrcat(p, line, ",", f, NULL) : f;
    }
    return apr_pstrcat(p, line, "\r\n", NULL);
}

/* One batch: rows of @a w with last < id <= upto, at most EXPORT_BATCH, on a
 * connection borrowed for this statement alone (a slow client never holds
 * one), written to the client. The number of rows (*last advanced), or -1
 * on a database error, -2 when the client went away. */
static int export_batch(admin_req_t *a, const admin_sql_t *w, int csv, apr_int64_t upto,
                        apr_int64_t *last)
{
    nebula_ap_db_t *keep = a->db;
    nebula_dbd_rows_t rows;
    admin_sql_t q = *w;
    apr_pool_t *bp;
    apr_status_t rv;
    int i, n;

    apr_pool_create(&bp, a->r->pool);
    apr_pool_tag(bp, "nebula_ledger_export");
    admin_sql_where(&q, "id > %lld", apr_psprintf(bp, "%" APR_INT64_T_FMT, *last));
    admin_sql_where(&q, "id <= %lld", apr_psprintf(bp, "%" APR_INT64_T_FMT, upto));
    q.args[q.n++] = apr_psprintf(bp, "%d", EXPORT_BATCH);
    a->db = nebula_ap_db_open(bp, a->r->server);
    rv = a->db ? admin_db_select(a,
                                 apr_pstrcat(bp, "SELECT ",
                                             admin_cols_sql(a, admin_ledger_cols, NULL),
                                             " ", q.sql, " ORDER BY id LIMIT %lld", NULL),
                                 q.n, q.args, &rows)
               : APR_EGENERAL;
    if (a->db) {
        nebula_ap_db_close(a->db);
    }
    a->db = keep;
    if (rv != APR_SUCCESS) {
        a->db_err = a->db_err ? apr_pstrdup(a->r->pool, a->db_err) : NULL; /* in bp */
        apr_pool_destroy(bp);
        return -1;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *line = export_line(bp, &rows, i, csv);
        if (ap_rwrite(line, (int)strlen(line), a->r) < 0) {
            apr_pool_destroy(bp);
            return -2;
        }
    }
    n = rows.nrows;
    if (n > 0) {
        *last = apr_atoi64(rows.rows[n - 1][0]);
    }
    apr_pool_destroy(bp);
    return ap_rflush(a->r) < 0 || a->r->connection->aborted ? -2 : n;
}

/* End a response whose headers are sent so that the client sees it broken
 * off, never complete: a 502 error bucket makes the chunk filter leave out
 * the last chunk and the connection close (as mod_proxy does). */
static void export_abort(request_rec *r)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);

    ap_rflush(r);
    APR_BRIGADE_INSERT_TAIL(
        bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
    c->keepalive = AP_CONN_CLOSE;
}

int admin_ledger_export(admin_req_t *a)
{
    static const char *const allowed[] = {"format", "account_id", "kind", "request_id",
                                          "from",   "to",         NULL};
    static const char *const formats[] = {"csv", "jsonl", NULL};
    const char *format = "csv";
    apr_int64_t upto, last = 0;
    nebula_dbd_rows_t rows;
    admin_sql_t w;
    int csv, n;

    admin_query_only(a, allowed);
    if (admin_query_str(a, "format", 8, &format) == ADMIN_SET &&
        strcmp(format, formats[0]) && strcmp(format, formats[1])) {
        admin_invalid(a, "format", "'format' must be csv or jsonl");
    }
    ledger_where(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    /* rows appended while the export runs are left out: one consistent cut */
    if (admin_db_select(a, "SELECT COALESCE(MAX(id), 0) FROM ledger", 0, NULL, &rows) !=
            APR_SUCCESS ||
        rows.nrows != 1) {
        return admin_db_fail(a, "read the ledger's head");
    }
    upto = nebula_ap_db_int(&rows, 0, 0);
    nebula_ap_db_close(a->db); /* each batch borrows its own */
    a->db = NULL;
    csv = strcmp(format, "csv") == 0;
    a->r->status = HTTP_OK;
    apr_table_setn(a->r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(a->r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(a->r->headers_out, "Content-Disposition",
                   csv ? "attachment; filename=\"ledger.csv\""
                       : "attachment; filename=\"ledger.jsonl\"");
    ap_set_content_type(a->r, csv ? "text/csv; charset=utf-8" : "application/x-ndjson");
    if (a->r->header_only) {
        return OK;
    }
    if (csv) {
        ap_rputs(csv_header(a->r->pool), a->r);
    }
    do {
        n = export_batch(a, &w, csv, upto, &last);
    } while (n == EXPORT_BATCH);
    if (n == -1) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                      "NEB01532: admin API: the ledger export broke off after row "
                      "%" APR_INT64_T_FMT ": %s",
                      last, a->db_err ? a->db_err : "no database connection");
        export_abort(a->r);
    }
    return OK;
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

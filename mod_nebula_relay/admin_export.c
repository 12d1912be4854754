/* admin_export.c: streaming a table out of the admin API as CSV or JSON
 * lines (the ledger, the audit log). The export is one consistent cut: the
 * rows up to the table's highest id when it starts, read in batches of
 * EXPORT_BATCH on a connection borrowed for each batch alone (a slow client
 * never holds one), and written as they come. A database failure half-way
 * ends the response broken off, never as if complete. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <http_request.h>
#include "relay_admin.h"

#define EXPORT_BATCH 500

/* @a s as one CSV field (RFC 4180): quoted when it holds a comma, a quote,
 * a line break or surrounding spaces; NULL is the empty field. A field a
 * spreadsheet would run as a formula (= + - @ first, and not a number) gets
 * a leading apostrophe: some fields are client text. */
static const char *csv_field(apr_pool_t *p, const char *s)
{
    apr_size_t n, i, q = 0;
    char *out, *o;

    if (s == NULL) {
        return "";
    }
    if (*s && strchr("=+-@", *s) &&
        (s[1] == '\0' || strspn(s + 1, "0123456789.") < strlen(s + 1))) {
        s = apr_pstrcat(p, "'", s, NULL);
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

static const char *csv_header(apr_pool_t *p, const admin_col_t *cols)
{
    const char *line = NULL;
    int j;

    for (j = 0; cols[j].name; ++j) {
        line = line ? apr_pstrcat(p, line, ",", cols[j].name, NULL) : cols[j].name;
    }
    return apr_pstrcat(p, line, "\r\n", NULL);
}

/* Row @a i as one line of @a csv ? CSV : JSON lines, in @a p. */
static const char *export_line(apr_pool_t *p, const nebula_dbd_rows_t *rows, int i,
                               const admin_col_t *cols, int csv)
{
    const char *line = NULL;
    json_t *o;
    int j;

    if (!csv) {
        o = admin_row_json(rows, i, 0, cols);
        line = apr_pstrcat(p, nebula_json_dumps(p, o, JSON_COMPACT), "\n", NULL);
        json_decref(o);
        return line;
    }
    for (j = 0; cols[j].name; ++j) {
        const char *v = rows->rows[i][j];
        const char *f = cols[j].type != ADMIN_COL_BOOL ? csv_field(p, v)
                        : v && strcmp(v, "0")          ? "true"
                                                       : "false";
        line = line ? apr_pstrcat(p, line, ",", f, NULL) : f;
    }
    return apr_pstrcat(p, line, "\r\n", NULL);
}

/* One batch: rows of @a w with last < id <= upto, at most EXPORT_BATCH,
 * written to the client. The number of rows (*last advanced), or -1 on a
 * database error, -2 when the client went away. */
static int export_batch(admin_req_t *a, const admin_sql_t *w, const admin_col_t *cols,
                        int csv, apr_int64_t upto, apr_int64_t *last)
{
    nebula_ap_db_t *keep = a->db;
    nebula_dbd_rows_t rows;
    admin_sql_t q = *w;
    apr_pool_t *bp;
    apr_status_t rv;
    int i, n;

    apr_pool_create(&bp, a->r->pool);
    apr_pool_tag(bp, "nebula_admin_export");
    admin_sql_where(&q, "id > %lld", apr_psprintf(bp, "%" APR_INT64_T_FMT, *last));
    admin_sql_where(&q, "id <= %lld", apr_psprintf(bp, "%" APR_INT64_T_FMT, upto));
    q.args[q.n++] = apr_psprintf(bp, "%d", EXPORT_BATCH);
    a->db = nebula_ap_db_open(bp, a->r->server);
    rv = a->db ? admin_db_select(a,
                                 apr_pstrcat(bp, "SELECT ", admin_cols_sql(a, cols, NULL),
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
        const char *line = export_line(bp, &rows, i, cols, csv);
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

int admin_export(admin_req_t *a, const admin_sql_t *w, const char *table,
                 const admin_col_t *cols, const char *format, const char *name)
{
    apr_int64_t upto, last = 0;
    nebula_dbd_rows_t rows;
    int csv = strcmp(format, "csv") == 0, n;

    if (!admin_db(a)) {
        return OK;
    }
    /* rows appended while the export runs are left out: one consistent cut */
    if (admin_db_select(a, apr_pstrcat(a->r->pool, "SELECT COALESCE(MAX(id), 0) FROM ",
                                       table, NULL),
                        0, NULL, &rows) != APR_SUCCESS
        || rows.nrows != 1) {
        return admin_db_fail(a, apr_pstrcat(a->r->pool, "read the ", name, "'s head", NULL));
    }
    upto = nebula_ap_db_int(&rows, 0, 0);
    nebula_ap_db_close(a->db); /* each batch borrows its own */
    a->db = NULL;
    a->r->status = HTTP_OK;
    apr_table_setn(a->r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(a->r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(a->r->headers_out, "Content-Disposition",
                   apr_psprintf(a->r->pool, "attachment; filename=\"%s.%s\"", name,
                                csv ? "csv" : "jsonl"));
    ap_set_content_type(a->r, csv ? "text/csv; charset=utf-8" : "application/x-ndjson");
    if (a->r->header_only) {
        return OK;
    }
    if (csv) {
        ap_rputs(csv_header(a->r->pool, cols), a->r);
    }
    do {
        n = export_batch(a, w, cols, csv, upto, &last);
    } while (n == EXPORT_BATCH);
    if (n == -1) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                      "NEB01532: admin API: the %s export broke off after row "
                      "%" APR_INT64_T_FMT ": %s",
                      name, last, a->db_err ? a->db_err : "no database connection");
        export_abort(a->r);
    }
    return OK;
}

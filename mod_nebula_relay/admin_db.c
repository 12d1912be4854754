/* admin_db.c: the admin API's database access: the connection borrowed from
 * mod_dbd for the request, statements labelled by a digest of their text (so
 * the filters of a list may build their SQL, always parameterised, and each
 * distinct text is still prepared once per connection), rows turned into
 * JSON by a column table, and the driver's errors logged, never sent. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_crypto.h"

int admin_db(admin_req_t *a)
{
    if (a->db != NULL) {
        return 1;
    }
    if (nebula_ap_db_state(a->r->server) == NEBULA_AP_DB_READY) {
        a->db = nebula_ap_db_open(a->r->pool, a->r->server);
    }
    if (a->db == NULL) {
        admin_error(a, HTTP_SERVICE_UNAVAILABLE, "db_unavailable", NULL,
                    "the database is not available");
        return 0;
    }
    return 1;
}

/* A request gives its connection back before it calls code that borrows
 * its own (the billing and governance modules, the relay's channel
 * snapshot): no thread may hold two, since DBDMax threads each holding one
 * and waiting for a second would wait for ever (mod_dbd's pool has no
 * timeout). A statement after that borrows again (held()). */
void admin_db_release(admin_req_t *a)
{
    if (a->db != NULL) {
        nebula_ap_db_close(a->db);
        a->db = NULL;
    }
}

/* The request's connection, borrowed again after admin_db_release(). */
static int held(admin_req_t *a)
{
    if (a->db == NULL && (a->db = nebula_ap_db_open(a->r->pool, a->r->server)) == NULL) {
        a->db_err = "no database connection";
        return 0;
    }
    return 1;
}

/* "adm_" and 20 hex digits of the SHA-256 of the text: unique per text. */
static const char *label_of(admin_req_t *a, const char *sql)
{
    char *hex = nebula_crypto_sha256_hex(a->r->pool, sql, strlen(sql));

    return apr_pstrcat(a->r->pool, "adm_", apr_pstrndup(a->r->pool, hex ? hex : "x", 20),
                       NULL);
}

apr_status_t admin_db_select(admin_req_t *a, const char *sql, int nargs,
                             const char *const *args, nebula_dbd_rows_t *rows)
{
    if (!held(a)) {
        return APR_EGENERAL;
    }
    return nebula_ap_db_select(a->db, label_of(a, sql), sql, nargs, args, rows,
                               &a->db_err);
}

apr_status_t admin_db_exec(admin_req_t *a, const char *sql, int nargs,
                           const char *const *args, int *affected)
{
    if (!held(a)) {
        return APR_EGENERAL;
    }
    return nebula_ap_db_exec(a->db, label_of(a, sql), sql, nargs, args, affected,
                             &a->db_err);
}

apr_status_t admin_db_insert(admin_req_t *a, const char *sql, int nargs,
                             const char *const *args, apr_int64_t *id)
{
    if (!held(a)) {
        return APR_EGENERAL;
    }
    return nebula_ap_db_insert(a->db, label_of(a, sql), sql, nargs, args, id, &a->db_err);
}

apr_status_t admin_db_begin(admin_req_t *a)
{
    if (!held(a)) {
        return APR_EGENERAL;
    }
    return nebula_ap_db_begin(a->db, &a->db_err);
}

apr_status_t admin_db_commit(admin_req_t *a)
{
    return nebula_ap_db_commit(a->db, &a->db_err);
}

void admin_db_rollback(admin_req_t *a)
{
    nebula_ap_db_rollback(a->db);
}

int admin_db_conflict(admin_req_t *a)
{
    const char *e = a->db_err;

    return e && (ap_strcasestr(e, "unique") || ap_strcasestr(e, "duplicate"));
}

int admin_db_fail(admin_req_t *a, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r, "NEB01520: admin API: %s failed: %s",
                  what, a->db_err ? a->db_err : "unknown error");
    return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                       "database error while trying to %s (see the server log)", what);
}

/* ---- rows to JSON ------------------------------------------------------- */

const char *admin_cols_sql(admin_req_t *a, const admin_col_t *cols, const char *alias)
{
    const char *out = NULL, *one;
    int i;

    for (i = 0; cols[i].name; ++i) {
        if (cols[i].expr) {
            one = cols[i].expr;
        }
        else {
            one = alias ? apr_pstrcat(a->r->pool, alias, ".", cols[i].name, NULL)
                        : cols[i].name;
        }
        out = out ? apr_pstrcat(a->r->pool, out, ", ", one, NULL) : one;
    }
    return out;
}

static json_t *col_json(const char *v, admin_col_e type)
{
    int empty = (v == NULL || *v == '\0');
    json_t *j;

    switch (type) {
    case ADMIN_COL_STR:
        return json_string(v ? v : "");
    case ADMIN_COL_NSTR:
        return empty ? json_null() : json_string(v);
    case ADMIN_COL_INT:
        return json_integer(empty ? 0 : apr_atoi64(v));
    case ADMIN_COL_NINT:
        return empty ? json_null() : json_integer(apr_atoi64(v));
    case ADMIN_COL_BOOL:
        return json_boolean(!empty && apr_atoi64(v) != 0);
    default: /* ADMIN_COL_JSON: stored by this API, so well-formed */
        j = empty ? NULL : json_loads(v, JSON_DECODE_ANY, NULL);
        return j ? j : json_null();
    }
}

json_t *admin_row_json(const nebula_dbd_rows_t *rows, int i, int first,
                       const admin_col_t *cols)
{
    json_t *o = json_object();
    int j;

    for (j = 0; cols[j].name; ++j) {
        const char *v = (first + j < rows->ncols) ? rows->rows[i][first + j] : NULL;
        json_object_set_new(o, cols[j].name, col_json(v, cols[j].type));
    }
    return o;
}

/* ---- building SQL ----------------------------------------------------- */

void admin_sql_init(admin_sql_t *q, apr_pool_t *p, const char *head)
{
    memset(q, 0, sizeof(*q));
    q->p = p;
    q->sql = head;
}

void admin_sql_add(admin_sql_t *q, const char *text)
{
    q->sql = apr_pstrcat(q->p, q->sql, text, NULL);
}

/* Push @a value once for each placeholder ("%s", "%lld") in @a text. */
static void push_args(admin_sql_t *q, const char *text, const char *value)
{
    const char *s;

    for (s = strchr(text, '%'); s; s = strchr(s, '%')) {
        if (s[1] == '%') {
            s += 2;
            continue;
        }
        if (q->n < (int)(sizeof(q->args) / sizeof(q->args[0]))) {
            q->args[q->n++] = value;
        }
        ++s;
    }
}

void admin_sql_arg(admin_sql_t *q, const char *text, const char *value)
{
    admin_sql_add(q, text);
    push_args(q, text, value);
}

void admin_sql_where(admin_sql_t *q, const char *cond, const char *value)
{
    admin_sql_add(q, q->nconds++ ? " AND " : " WHERE ");
    admin_sql_arg(q, cond, value);
}

const char *admin_like(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 3), *o = out;

    *o++ = '%';
    for (; *s; ++s) {
        if (*s == '!' || *s == '%' || *s == '_') {
            *o++ = '!';
        }
        *o++ = *s;
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

apr_int64_t admin_db_count(admin_req_t *a, const char *from_where, int nargs,
                           const char *const *args)
{
    nebula_dbd_rows_t rows;

    if (admin_db_select(a, apr_pstrcat(a->r->pool, "SELECT COUNT(*) ", from_where, NULL),
                        nargs, args, &rows) != APR_SUCCESS ||
        rows.nrows != 1) {
        return -1;
    }
    return nebula_ap_db_int(&rows, 0, 0);
}

int admin_db_send_page(admin_req_t *a, admin_sql_t *w, const admin_col_t *cols,
                       const char *alias, const char *order, apr_int64_t page,
                       apr_int64_t per_page, const char *what)
{
    apr_int64_t total = admin_db_count(a, w->sql, w->n, w->args);
    nebula_dbd_rows_t rows;
    const char *sql;
    json_t *data;
    int i;

    if (total < 0) {
        return admin_db_fail(a, apr_pstrcat(a->r->pool, "count ", what, NULL));
    }
    sql = apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, cols, alias), " ", w->sql,
                      " ORDER BY ", order, " LIMIT %lld OFFSET %lld", NULL);
    w->args[w->n++] = admin_i64(a, per_page);
    w->args[w->n++] = admin_i64(a, (page - 1) * per_page);
    if (admin_db_select(a, sql, w->n, w->args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, apr_pstrcat(a->r->pool, "list ", what, NULL));
    }
    data = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        json_array_append_new(data, admin_row_json(&rows, i, 0, cols));
    }
    return admin_send_page(a, data, total, page, per_page);
}

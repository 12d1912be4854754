/* nebula_ap_db.c: parameterised statements on connections borrowed from
 * mod_dbd (see nebula_ap_db.h). Prepared statements are cached per
 * connection in the connection's own pool, so they live exactly as long as
 * the connection and are prepared after the schema was migrated. */
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include "nebula_ap.h"
#include "nebula_ap_db.h"

#define STMT_CACHE_KEY "nebula:stmts"

struct nebula_ap_db_t {
    apr_pool_t *pool;      /* the borrower's */
    server_rec *s;
    ap_dbd_t *dbd;
    nebula_dbd_dialect_e dialect;
    int in_txn;
};

static apr_status_t db_cleanup(void *data)
{
    nebula_ap_db_close(data);
    return APR_SUCCESS;
}

nebula_ap_db_t *nebula_ap_db_open(apr_pool_t *p, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    nebula_ap_db_t *db;
    ap_dbd_t *dbd;

    if (dbd_open == NULL || (dbd = dbd_open(p, s)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB00010: no database connection (is mod_dbd loaded and "
                     "DBDriver/DBDParams right?)");
        return NULL;
    }
    db = apr_pcalloc(p, sizeof(*db));
    db->pool = p;
    db->s = s;
    db->dbd = dbd;
    db->dialect = nebula_dbd_dialect_of(dbd->driver);
    apr_pool_cleanup_register(p, db, db_cleanup, apr_pool_cleanup_null);
    return db;
}

void nebula_ap_db_close(nebula_ap_db_t *db)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    if (db->dbd == NULL) {
        return;
    }
    if (db->in_txn) {
        nebula_ap_db_rollback(db);
    }
    if (dbd_close) {
        dbd_close(db->s, db->dbd);
    }
    db->dbd = NULL;
    apr_pool_cleanup_kill(db->pool, db, db_cleanup);
}

nebula_dbd_dialect_e nebula_ap_db_dialect(const nebula_ap_db_t *db)
{
    return db->dialect;
}

static const char *db_error(nebula_ap_db_t *db, int rv)
{
    return nebula_dbd_errmsg(db->dbd->driver, db->dbd->handle, rv, db->pool);
}

/* The statement prepared on this connection for @a label. */
static apr_dbd_prepared_t *db_stmt(nebula_ap_db_t *db, const char *label, const char *sql,
                                   const char **err)
{
    apr_hash_t *cache = NULL;
    apr_dbd_prepared_t *stmt;
    int rv;

    apr_pool_userdata_get((void **)&cache, STMT_CACHE_KEY, db->dbd->pool);
    if (cache == NULL) {
        cache = apr_hash_make(db->dbd->pool);
        apr_pool_userdata_setn(cache, STMT_CACHE_KEY, NULL, db->dbd->pool);
    }
    stmt = apr_hash_get(cache, label, APR_HASH_KEY_STRING);
    if (stmt != NULL) {
        return stmt;
    }
    /* pgsql names the server-side statement after the label */
    rv = apr_dbd_prepare(db->dbd->driver, db->dbd->pool, db->dbd->handle, sql,
                         apr_pstrcat(db->dbd->pool, "neb_", label, NULL), &stmt);
    if (rv != 0) {
        *err = apr_psprintf(db->pool, "prepare %s: %s", label, db_error(db, rv));
        return NULL;
    }
    apr_hash_set(cache, apr_pstrdup(db->dbd->pool, label), APR_HASH_KEY_STRING, stmt);
    return stmt;
}

apr_status_t nebula_ap_db_exec(nebula_ap_db_t *db, const char *label, const char *sql,
                               int nargs, const char *const *args, int *affected,
                               const char **err)
{
    apr_dbd_prepared_t *stmt = db_stmt(db, label, sql, err);
    int rv, n = 0;

    if (stmt == NULL) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pquery(db->dbd->driver, db->pool, db->dbd->handle, &n, stmt, nargs,
                        (const char **)args);
    if (rv != 0) {
        *err = apr_psprintf(db->pool, "%s: %s", label, db_error(db, rv));
        return APR_EGENERAL;
    }
    if (affected) {
        *affected = n;
    }
    return APR_SUCCESS;
}

static void copy_rows(nebula_ap_db_t *db, apr_dbd_results_t *res, nebula_dbd_rows_t *rows)
{
    const apr_dbd_driver_t *drv = db->dbd->driver;
    int i, j, n = apr_dbd_num_tuples(drv, res);

    rows->ncols = apr_dbd_num_cols(drv, res);
    rows->nrows = 0;
    rows->rows = apr_pcalloc(db->pool, sizeof(char **) * (n > 0 ? n : 1));
    for (i = 0; i < n; ++i) {
        apr_dbd_row_t *row = NULL;
        const char **out;

        /* random access, rows numbered from 1 (see nebula_dbd_select) */
        if (apr_dbd_get_row(drv, db->pool, res, &row, i + 1) != 0) {
            break;
        }
        out = apr_pcalloc(db->pool, sizeof(char *) * (rows->ncols + 1));
        for (j = 0; j < rows->ncols; ++j) {
            const char *v = apr_dbd_get_entry(drv, row, j);
            out[j] = v ? apr_pstrdup(db->pool, v) : NULL;
        }
        rows->rows[rows->nrows++] = out;
    }
}

apr_status_t nebula_ap_db_select(nebula_ap_db_t *db, const char *label, const char *sql,
                                 int nargs, const char *const *args,
                                 nebula_dbd_rows_t *rows, const char **err)
{
    apr_dbd_prepared_t *stmt = db_stmt(db, label, sql, err);
    apr_dbd_results_t *res = NULL;
    int rv;

    if (stmt == NULL) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pselect(db->dbd->driver, db->pool, db->dbd->handle, &res, stmt, 1, nargs,
                         (const char **)args);
    if (rv != 0) {
        *err = apr_psprintf(db->pool, "%s: %s", label, db_error(db, rv));
        return APR_EGENERAL;
    }
    copy_rows(db, res, rows);
    return APR_SUCCESS;
}

apr_status_t nebula_ap_db_insert(nebula_ap_db_t *db, const char *label, const char *sql,
                                 int nargs, const char *const *args, apr_int64_t *id,
                                 const char **err)
{
    nebula_dbd_rows_t rows;
    const char *last;
    apr_status_t rv;

    if (db->dialect == NEBULA_DBD_PGSQL) {
        rv = nebula_ap_db_select(db, label, apr_pstrcat(db->pool, sql, " RETURNING id", NULL),
                                 nargs, args, &rows, err);
    }
    else {
        rv = nebula_ap_db_exec(db, label, sql, nargs, args, NULL, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        last = db->dialect == NEBULA_DBD_MYSQL ? "SELECT LAST_INSERT_ID()"
                                                : "SELECT last_insert_rowid()";
        rv = nebula_ap_db_select(db, "nebula_last_id", last, 0, NULL, &rows, err);
    }
    if (rv == APR_SUCCESS && rows.nrows != 1) {
        *err = apr_psprintf(db->pool, "%s: no id returned", label);
        return APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        *id = nebula_ap_db_int(&rows, 0, 0);
    }
    return rv;
}

apr_int64_t nebula_ap_db_int(const nebula_dbd_rows_t *rows, int i, int j)
{
    const char *v;

    if (i >= rows->nrows || j >= rows->ncols || (v = rows->rows[i][j]) == NULL) {
        return 0;
    }
    return apr_atoi64(v);
}

apr_status_t nebula_ap_db_begin(nebula_ap_db_t *db, const char **err)
{
    const char *sql = db->dialect == NEBULA_DBD_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN";
    int rv = nebula_dbd_exec(db->dbd->driver, db->dbd->handle, sql, err, db->pool);

    db->in_txn = (rv == 0);
    return rv == 0 ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t nebula_ap_db_commit(nebula_ap_db_t *db, const char **err)
{
    int rv = nebula_dbd_exec(db->dbd->driver, db->dbd->handle, "COMMIT", err, db->pool);

    if (rv != 0) {
        nebula_ap_db_rollback(db);
        return APR_EGENERAL;
    }
    db->in_txn = 0;
    return APR_SUCCESS;
}

apr_status_t nebula_ap_db_rollback(nebula_ap_db_t *db)
{
    const char *err = NULL;

    db->in_txn = 0;
    return nebula_dbd_exec(db->dbd->driver, db->dbd->handle, "ROLLBACK", &err, db->pool)
               ? APR_EGENERAL
               : APR_SUCCESS;
}

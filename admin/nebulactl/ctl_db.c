/* ctl_db.c: nebulactl's database connection, through apr_dbd exactly as the
 * modules reach it through mod_dbd (same drivers, same parameter strings). */
#include <string.h>

#include <apr_strings.h>

#include "ctl.h"
#include "nebula_dbd_dsn.h"
#include "nebula_migrate.h"

static int resolve_target(ctl_t *ctl)
{
    nebula_dbd_dsn_t dsn;
    const char *err;

    if (ctl->dsn != NULL) {
        if (nebula_dbd_dsn_parse(ctl->dsn, &dsn, &err, ctl->pool) != APR_SUCCESS) {
            ctl_error("%s", err);
            return CTL_EXIT_USAGE;
        }
        ctl->driver_name = dsn.driver;
        ctl->params = dsn.params;
        ctl->target_desc = dsn.redacted;
        return CTL_EXIT_OK;
    }
    if (ctl->driver_name == NULL || ctl->params == NULL) {
        ctl_error("say which database: --dsn URL, or --driver NAME with --params "
                  "STRING (or set SQL_DSN)");
        return CTL_EXIT_USAGE;
    }
    if (nebula_dbd_dialect_from_name(ctl->driver_name) == NEBULA_DBD_UNKNOWN) {
        ctl_error("unsupported --driver '%s' (use sqlite3, pgsql or mysql)",
                  ctl->driver_name);
        return CTL_EXIT_USAGE;
    }
    /* the parameters may hold a password: describe by driver only */
    ctl->target_desc = apr_psprintf(ctl->pool, "%s database", ctl->driver_name);
    return CTL_EXIT_OK;
}

static int load_driver(ctl_t *ctl)
{
    apr_status_t rv = apr_dbd_init(ctl->pool);

    if (rv == APR_SUCCESS) {
        rv = apr_dbd_get_driver(ctl->pool, ctl->driver_name, &ctl->driver);
    }
    if (rv == APR_SUCCESS) {
        return CTL_EXIT_OK;
    }
    if (APR_STATUS_IS_ENOTIMPL(rv) || APR_STATUS_IS_EDSOOPEN(rv)) {
        ctl_error("the apr_dbd driver '%s' is not available (Debian: install "
                  "libaprutil1-dbd-%s)",
                  ctl->driver_name, ctl->driver_name);
    }
    else {
        char buf[256];

        ctl_error("loading the apr_dbd driver '%s' failed: %s", ctl->driver_name,
                  apr_strerror(rv, buf, sizeof(buf)));
    }
    return CTL_EXIT_ERROR;
}

int ctl_db_connect(ctl_t *ctl)
{
    const char *params, *err = NULL;
    int code;

    if ((code = resolve_target(ctl)) != CTL_EXIT_OK ||
        (code = load_driver(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    params = ctl->params;
    if (nebula_dbd_dialect_from_name(ctl->driver_name) == NEBULA_DBD_MYSQL) {
        /* A silent reconnect would drop the migration lock (GET_LOCK is per
         * session), and an UPDATE must report the rows it matched, as on the
         * other databases; the driver takes the last value of a repeated key. */
        params = apr_pstrcat(ctl->pool, params, " reconnect=0 flags=CLIENT_FOUND_ROWS", NULL);
    }
    if (apr_dbd_open_ex(ctl->driver, ctl->pool, params, &ctl->handle, &err) !=
        APR_SUCCESS) {
        ctl_error("cannot open the %s: %s", ctl->target_desc,
                  err ? err : "unknown error");
        ctl->handle = NULL;
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

void ctl_db_close(ctl_t *ctl)
{
    if (ctl->handle != NULL) {
        apr_dbd_close(ctl->driver, ctl->handle);
        ctl->handle = NULL;
    }
}

int ctl_db_connect_current(ctl_t *ctl, int min_version)
{
    nebula_migrate_opts_t mo;
    nebula_migrate_result_t res;
    const char *err;
    int code;

    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (nebula_dbd_dialect_of(ctl->driver) == NEBULA_DBD_SQLITE) {
        nebula_dbd_sqlite_init(ctl->driver, ctl->handle, 0, &err, ctl->pool);
    }
    memset(&mo, 0, sizeof(mo));
    if (nebula_migrate_status(ctl->driver, ctl->handle, &mo, &res, &err, ctl->pool) !=
        APR_SUCCESS) {
        ctl_error("%s", err);
        return CTL_EXIT_ERROR;
    }
    if (res.from_version < min_version || res.pending > 0) {
        ctl_error("the %s is at schema version %d with %d pending: run "
                  "'nebulactl migrate' first",
                  ctl->target_desc, res.from_version, res.pending);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

int ctl_select_prepared(ctl_t *ctl, apr_pool_t *p, apr_dbd_prepared_t *st, int nargs,
                        const char **args, nebula_dbd_rows_t *rows)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row;
    int i, j, n, rv;

    rv = apr_dbd_pselect(ctl->driver, p, ctl->handle, &res, st, 1, nargs, args);
    if (rv != 0) {
        ctl_error("database: %s", nebula_dbd_errmsg(ctl->driver, ctl->handle, rv, p));
        return CTL_EXIT_ERROR;
    }
    n = apr_dbd_num_tuples(ctl->driver, res);
    rows->ncols = apr_dbd_num_cols(ctl->driver, res);
    rows->nrows = 0;
    rows->rows = apr_pcalloc(p, sizeof(char **) * (n + 1));
    for (i = 0; i < n; ++i) {
        const char **out = apr_pcalloc(p, sizeof(char *) * (rows->ncols + 1));

        row = NULL;
        if (apr_dbd_get_row(ctl->driver, p, res, &row, i + 1) != 0) {
            ctl_error("database: cannot read row %d of %d", i + 1, n);
            return CTL_EXIT_ERROR;
        }
        for (j = 0; j < rows->ncols; ++j) {
            const char *v = apr_dbd_get_entry(ctl->driver, row, j);
            out[j] = v ? apr_pstrdup(p, v) : NULL;
        }
        rows->rows[rows->nrows++] = out;
    }
    return CTL_EXIT_OK;
}

int ctl_select(ctl_t *ctl, apr_pool_t *p, const char *sql, int nargs, const char **args,
               nebula_dbd_rows_t *rows)
{
    apr_dbd_prepared_t *st = NULL;

    if (apr_dbd_prepare(ctl->driver, p, ctl->handle, sql, NULL, &st)) {
        ctl_error("database: %s", nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, p));
        return CTL_EXIT_ERROR;
    }
    return ctl_select_prepared(ctl, p, st, nargs, args, rows);
}

int ctl_exec(ctl_t *ctl, apr_pool_t *p, const char *sql, int nargs, const char **args,
             int *nrows)
{
    apr_dbd_prepared_t *st = NULL;
    int n = 0;

    if (apr_dbd_prepare(ctl->driver, p, ctl->handle, sql, NULL, &st) ||
        apr_dbd_pquery(ctl->driver, p, ctl->handle, &n, st, nargs, args)) {
        ctl_error("database: %s", nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, p));
        return CTL_EXIT_ERROR;
    }
    if (nrows != NULL) {
        *nrows = n;
    }
    return CTL_EXIT_OK;
}

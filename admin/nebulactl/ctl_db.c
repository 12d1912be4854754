/* ctl_db.c: nebulactl's database connection, through apr_dbd exactly as the
 * modules reach it through mod_dbd (same drivers, same parameter strings). */
#include <apr_strings.h>

#include "ctl.h"
#include "nebula_dbd_dsn.h"

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

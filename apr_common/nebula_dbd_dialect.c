/* nebula_dbd_dialect.c: dialect names and the small apr_dbd helpers every
 * database user in NebulaGate shares (statement execution, result copying,
 * SQLite connection set-up). Owns no connection. See nebula_dbd_dialect.h
 * for the driver behaviours accounted for here. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <apr_lib.h>

#include "nebula_dbd_dialect.h"
#include "nebula_log.h"

typedef struct {
    nebula_dbd_dialect_e dialect;
    const char *driver_name;
    const char *sql_dir;
    int transactional_ddl;
} dialect_info_t;

static const dialect_info_t dialects[] = {
    {NEBULA_DBD_SQLITE, "sqlite3", "sqlite", 1},
    {NEBULA_DBD_PGSQL, "pgsql", "postgresql", 1},
    {NEBULA_DBD_MYSQL, "mysql", "mysql", 0},
};

#define NDIALECTS (sizeof(dialects) / sizeof(dialects[0]))

static const dialect_info_t *dialect_info(nebula_dbd_dialect_e dialect)
{
    apr_size_t i;

    for (i = 0; i < NDIALECTS; i++) {
        if (dialects[i].dialect == dialect) {
            return &dialects[i];
        }
    }
    return NULL;
}

nebula_dbd_dialect_e nebula_dbd_dialect_from_name(const char *driver_name)
{
    apr_size_t i;

    if (driver_name == NULL) {
        return NEBULA_DBD_UNKNOWN;
    }
    for (i = 0; i < NDIALECTS; i++) {
        if (strcmp(dialects[i].driver_name, driver_name) == 0) {
            return dialects[i].dialect;
        }
    }
    return NEBULA_DBD_UNKNOWN;
}

nebula_dbd_dialect_e nebula_dbd_dialect_of(const apr_dbd_driver_t *driver)
{
    return driver ? nebula_dbd_dialect_from_name(apr_dbd_name(driver))
                  : NEBULA_DBD_UNKNOWN;
}

const char *nebula_dbd_dialect_driver_name(nebula_dbd_dialect_e dialect)
{
    const dialect_info_t *info = dialect_info(dialect);

    return info ? info->driver_name : NULL;
}

const char *nebula_dbd_dialect_sql_dir(nebula_dbd_dialect_e dialect)
{
    const dialect_info_t *info = dialect_info(dialect);

    return info ? info->sql_dir : NULL;
}

int nebula_dbd_dialect_has_transactional_ddl(nebula_dbd_dialect_e dialect)
{
    const dialect_info_t *info = dialect_info(dialect);

    return info ? info->transactional_ddl : 0;
}

const char *nebula_dbd_errmsg(const apr_dbd_driver_t *driver, apr_dbd_t *handle, int rv,
                              apr_pool_t *pool)
{
    const char *msg = NULL;
    char *copy;
    apr_size_t len;

    if (driver != NULL && handle != NULL) {
        msg = apr_dbd_error(driver, handle, rv);
    }
    if (msg == NULL || *msg == '\0') {
        return apr_psprintf(pool, "error %d", rv);
    }
    copy = apr_pstrdup(pool, msg);
    len = strlen(copy);
    while (len > 0 && apr_isspace(copy[len - 1])) {
        copy[--len] = '\0';
    }
    return copy;
}

/* apr_dbd_sqlite3 prepares with the legacy sqlite3_prepare(): a statement
 * prepared against a schema another connection has since changed fails once
 * with "database schema has changed" (SQLite then reloads the schema), and
 * running it again is safe: it failed before doing anything. */
static int sqlite_schema_changed(const apr_dbd_driver_t *driver, int rv,
                                 const char *errmsg)
{
    return rv != 0 && errmsg != NULL && strstr(errmsg, "schema has changed") != NULL &&
           nebula_dbd_dialect_of(driver) == NEBULA_DBD_SQLITE;
}

#define SCHEMA_RETRIES 3

int nebula_dbd_exec(const apr_dbd_driver_t *driver, apr_dbd_t *handle, const char *sql,
                    const char **errmsg, apr_pool_t *pool)
{
    int nrows = 0, rv, attempt = 0;

    do {
        rv = apr_dbd_query(driver, handle, &nrows, sql);
        *errmsg = rv ? nebula_dbd_errmsg(driver, handle, rv, pool) : NULL;
    } while (sqlite_schema_changed(driver, rv, *errmsg) && ++attempt < SCHEMA_RETRIES);
    if (rv != 0) {
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_SUCCESS,
                          "NEB00200: statement failed (%d): %s", rv, *errmsg);
    }
    return rv;
}

static void copy_row(const apr_dbd_driver_t *driver, apr_dbd_row_t *row, int ncols,
                     const char **out, apr_pool_t *pool)
{
    int j;

    for (j = 0; j < ncols; j++) {
        const char *v = apr_dbd_get_entry(driver, row, j);

        out[j] = v ? apr_pstrdup(pool, v) : NULL;
    }
}

static int select_rows(const apr_dbd_driver_t *driver, apr_dbd_t *handle, const char *sql,
                       nebula_dbd_rows_t *rows, apr_pool_t *pool)
{
    apr_dbd_results_t *res = NULL;
    int rv, i, n;

    /* random access: synchronous and error-reporting in every driver */
    rv = apr_dbd_select(driver, pool, handle, &res, sql, 1);
    if (rv != 0 || res == NULL) {
        return rv; /* res NULL: mysql, the statement made no result set */
    }
    n = apr_dbd_num_tuples(driver, res);
    rows->ncols = apr_dbd_num_cols(driver, res);
    rows->rows = apr_pcalloc(pool, sizeof(*rows->rows) * (n > 0 ? n : 1));
    for (i = 0; i < n; i++) {
        apr_dbd_row_t *row = NULL;

        /* stop at the last row: an out-of-range request frees the result
         * in the pgsql and mysql drivers */
        if (apr_dbd_get_row(driver, pool, res, &row, i + 1) != 0) {
            break;
        }
        rows->rows[i] = apr_pcalloc(pool, sizeof(char *) * (rows->ncols + 1));
        copy_row(driver, row, rows->ncols, rows->rows[i], pool);
        rows->nrows++;
    }
    return 0;
}

int nebula_dbd_select(const apr_dbd_driver_t *driver, apr_dbd_t *handle, const char *sql,
                      nebula_dbd_rows_t *rows, const char **errmsg, apr_pool_t *pool)
{
    int rv, attempt = 0;

    do {
        memset(rows, 0, sizeof(*rows));
        rv = select_rows(driver, handle, sql, rows, pool);
        *errmsg = rv ? nebula_dbd_errmsg(driver, handle, rv, pool) : NULL;
    } while (sqlite_schema_changed(driver, rv, *errmsg) && ++attempt < SCHEMA_RETRIES);
    if (rv != 0) {
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_SUCCESS,
                          "NEB00201: query failed (%d): %s", rv, *errmsg);
    }
    return rv;
}

int nebula_dbd_table_exists(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                            const char *table, int *exists, const char **errmsg,
                            apr_pool_t *pool)
{
    const char *name = apr_dbd_escape(driver, pool, table, handle);
    const char *sql;
    nebula_dbd_rows_t rows;
    int rv;

    switch (nebula_dbd_dialect_of(driver)) {
    case NEBULA_DBD_SQLITE:
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'";
        break;
    case NEBULA_DBD_PGSQL:
        sql = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
              "current_schema() AND table_name = '%s'";
        break;
    case NEBULA_DBD_MYSQL:
        sql = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
              "DATABASE() AND table_name = '%s'";
        break;
    default:
        *errmsg =
            apr_psprintf(pool, "unsupported apr_dbd driver '%s'", apr_dbd_name(driver));
        return -1;
    }
    rv = nebula_dbd_select(driver, handle, apr_psprintf(pool, sql, name), &rows, errmsg,
                           pool);
    if (rv == 0) {
        *exists = rows.nrows > 0 && rows.rows[0][0] && atoi(rows.rows[0][0]) > 0;
    }
    return rv;
}

/* journal_mode=WAL unless it already is: the switch needs an exclusive
 * lock, the check does not, so connections to a WAL file never wait here.
 * On a new file another process may hold the lock (the first child
 * migrating) and SQLite answers "locked" at once, without its busy handler:
 * the switch is tried again for up to SQLITE_WAL_TRIES x 100 ms, and a file
 * that another connection switched meanwhile is simply found in WAL mode. */
#define SQLITE_WAL_TRIES 50
static int sqlite_wal(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                      const char **errmsg, apr_pool_t *pool)
{
    nebula_dbd_rows_t rows;
    int rv, tries;

    for (tries = 1;; ++tries) {
        rv = nebula_dbd_select(driver, handle, "PRAGMA journal_mode", &rows, errmsg, pool);
        if (rv == 0 && rows.nrows > 0 && rows.rows[0][0] &&
            strcasecmp(rows.rows[0][0], "wal") == 0) {
            return 0;
        }
        rv = nebula_dbd_select(driver, handle, "PRAGMA journal_mode = WAL", &rows, errmsg,
                               pool);
        if (rv == 0 || tries >= SQLITE_WAL_TRIES) {
            break;
        }
        apr_sleep(apr_time_from_msec(100));
    }
    if (rv != 0) {
        *errmsg = apr_psprintf(pool, "PRAGMA journal_mode = WAL: %s", *errmsg);
    }
    else if (rows.nrows > 0 && rows.rows[0][0] &&
             strcasecmp(rows.rows[0][0], "wal") != 0) {
        /* ":memory:" databases answer "memory"; not an error */
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_INFO, APR_SUCCESS,
                          "NEB00202: SQLite journal_mode is %s, not wal",
                          rows.rows[0][0]);
    }
    return rv;
}

int nebula_dbd_sqlite_init(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                           int busy_timeout_ms, const char **errmsg, apr_pool_t *pool)
{
    nebula_dbd_rows_t rows;
    const char *pragmas[4];
    int rv, i;

    if (nebula_dbd_dialect_of(driver) != NEBULA_DBD_SQLITE) {
        return 0;
    }
    if (busy_timeout_ms <= 0) {
        busy_timeout_ms = NEBULA_DBD_SQLITE_BUSY_TIMEOUT_MS;
    }
    pragmas[0] = apr_psprintf(pool, "PRAGMA busy_timeout = %d", busy_timeout_ms);
    pragmas[1] = "PRAGMA foreign_keys = ON";
    pragmas[2] = "PRAGMA synchronous = NORMAL";
    /* statement journals (and savepoints') in memory: on disk each
     * INSERT into a table with several indexes, inside a transaction,
     * created, wrote and unlinked a file in /var/tmp */
    pragmas[3] = "PRAGMA temp_store = MEMORY";
    for (i = 0; i < 4; i++) {
        /* select, not query: some PRAGMAs return a row */
        rv = nebula_dbd_select(driver, handle, pragmas[i], &rows, errmsg, pool);
        if (rv != 0) {
            *errmsg = apr_psprintf(pool, "%s: %s", pragmas[i], *errmsg);
            return rv;
        }
    }
    return sqlite_wal(driver, handle, errmsg, pool);
}

int nebula_dbd_mysql_check(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                           const char **errmsg, apr_pool_t *pool)
{
    static const char *const setup[] = {
        "CREATE TEMPORARY TABLE IF NOT EXISTS nebula_found_rows (x INT)",
        "DELETE FROM nebula_found_rows", "INSERT INTO nebula_found_rows VALUES (1)"};
    int i, n = 0, rv;

    if (nebula_dbd_dialect_of(driver) != NEBULA_DBD_MYSQL) {
        return 0;
    }
    for (i = 0; i < 3; i++) {
        if ((rv = nebula_dbd_exec(driver, handle, setup[i], errmsg, pool)) != 0) {
            return rv;
        }
    }
    /* changes nothing: 1 with CLIENT_FOUND_ROWS, 0 without */
    rv = apr_dbd_query(driver, handle, &n, "UPDATE nebula_found_rows SET x = 1");
    if (rv != 0) {
        *errmsg = apr_pstrdup(pool, apr_dbd_error(driver, handle, rv));
        return rv;
    }
    (void)nebula_dbd_exec(driver, handle, "DROP TEMPORARY TABLE nebula_found_rows", errmsg,
                          pool);
    if (n != 1) {
        *errmsg = "the connection counts changed rows, not matched ones: add "
                  "flags=CLIENT_FOUND_ROWS to DBDParams";
        return -1;
    }
    return 0;
}

/**
 * @file nebula_dbd_dialect.h
 * @brief The three SQL dialects NebulaGate speaks, and thin helpers over
 *        apr_dbd that smooth the drivers' differences.
 *
 * Plain C over APR-util's apr_dbd (never httpd.h): used by the modules with a
 * connection from mod_dbd (ap_dbd_open/ap_dbd_acquire) and by nebulactl with
 * one from apr_dbd_open_ex(). Nothing here owns the connection.
 *
 * Driver behaviours these helpers account for (apr-util 1.6 dbd/ sources):
 * - apr_dbd_query() fails on any statement that returns rows (SQLite reports
 *   SQLITE_ROW as an error), so PRAGMAs and SELECTs go through
 *   nebula_dbd_select(), which works for every statement.
 * - Result sets are read with random access (row numbers from 1): sequential
 *   mode is asynchronous in the pgsql driver and loses errors, and the mysql
 *   driver's random mode rejects the "next row" (-1) form.
 * - SQL NULL comes back as NULL from sqlite3 and mysql but as "" from pgsql:
 *   queries whose NULLs matter must COALESCE.
 * - apr_dbd_error() texts may end in a newline (libpq): nebula_dbd_errmsg()
 *   trims it.
 */
#ifndef NEBULA_DBD_DIALECT_H
#define NEBULA_DBD_DIALECT_H

#include <apr_pools.h>
#include <apr_dbd.h>

/** The SQL dialects, one per supported apr_dbd driver. */
typedef enum {
    NEBULA_DBD_UNKNOWN = 0,
    NEBULA_DBD_SQLITE, /**< apr_dbd driver "sqlite3", sql/sqlite/ */
    NEBULA_DBD_PGSQL,  /**< apr_dbd driver "pgsql", sql/postgresql/ */
    NEBULA_DBD_MYSQL   /**< apr_dbd driver "mysql" (MySQL, MariaDB), sql/mysql/ */
} nebula_dbd_dialect_e;

/** Default SQLite busy timeout (ms) set by nebula_dbd_sqlite_init(). */
#define NEBULA_DBD_SQLITE_BUSY_TIMEOUT_MS 5000

/** Rows of a result set, copied into the caller's pool. */
typedef struct {
    int ncols;          /**< columns per row */
    int nrows;          /**< number of rows */
    const char ***rows; /**< rows[i][j]; see the NULL note in the file doc */
} nebula_dbd_rows_t;

/**
 * The dialect of an apr_dbd driver name ("sqlite3", "pgsql", "mysql").
 * @return NEBULA_DBD_UNKNOWN for any other name or NULL.
 */
nebula_dbd_dialect_e nebula_dbd_dialect_from_name(const char *driver_name);

/** The dialect of a loaded driver, from apr_dbd_name(). */
nebula_dbd_dialect_e nebula_dbd_dialect_of(const apr_dbd_driver_t *driver);

/** The apr_dbd driver name of a dialect (static string; NULL if unknown). */
const char *nebula_dbd_dialect_driver_name(nebula_dbd_dialect_e dialect);

/** The folder under sql/ holding a dialect's migrations (static string). */
const char *nebula_dbd_dialect_sql_dir(nebula_dbd_dialect_e dialect);

/** Whether DDL statements take part in transactions (SQLite, PostgreSQL). */
int nebula_dbd_dialect_has_transactional_ddl(nebula_dbd_dialect_e dialect);

/**
 * The driver's message for the last error on @a handle, trimmed, copied into
 * @a pool; never NULL (falls back to "error <rv>").
 */
const char *nebula_dbd_errmsg(const apr_dbd_driver_t *driver, apr_dbd_t *handle, int rv,
                              apr_pool_t *pool);

/**
 * Execute one statement that returns no rows.
 * @param errmsg on failure, set to "<driver message>" allocated in @a pool
 * @return 0 on success, else the driver's error code
 */
int nebula_dbd_exec(const apr_dbd_driver_t *driver, apr_dbd_t *handle, const char *sql,
                    const char **errmsg, apr_pool_t *pool);

/**
 * Run one statement and copy all its rows into @a pool (fine for the small
 * result sets of bookkeeping queries; do not use for large tables).
 * A statement without a result set yields zero rows.
 * @param rows filled in; owned by the caller, allocated in @a pool
 * @return 0 on success, else the driver's error code (@a errmsg set)
 */
int nebula_dbd_select(const apr_dbd_driver_t *driver, apr_dbd_t *handle, const char *sql,
                      nebula_dbd_rows_t *rows, const char **errmsg, apr_pool_t *pool);

/**
 * Whether a table exists in the connection's current schema/database.
 * @param exists set to 1 or 0
 * @return 0 on success, else the driver's error code (@a errmsg set)
 */
int nebula_dbd_table_exists(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                            const char *table, int *exists, const char **errmsg,
                            apr_pool_t *pool);

/**
 * Per-connection set-up for SQLite; a no-op returning 0 for other drivers.
 * Sets busy_timeout (so writers wait instead of failing with SQLITE_BUSY),
 * foreign_keys=ON (off by default in SQLite, per connection),
 * synchronous=NORMAL (safe with WAL), temp_store=MEMORY (statement and
 * savepoint journals stay off the disk), and last journal_mode=WAL (readers
 * never block the writer; persistent in the file, so only the first
 * connection to a new file switches it, which needs a moment with no other
 * writer: if that fails the other settings are already in place).
 *
 * The modules call it for every new mod_dbd connection from an
 * APR_OPTIONAL_HOOK(dbd, post_connect, ...) function (mod_dbd ignores that
 * hook's return value: log a failure there); nebulactl and the migration
 * runner call it on their connection. DBDInitSQL cannot do this: mod_dbd
 * runs it with apr_dbd_query(), which treats the row these PRAGMAs return
 * as an error (and stops at the first failing DBDInitSQL). It must run
 * outside a transaction (SQLite ignores journal_mode and foreign_keys
 * changes inside one).
 *
 * @param busy_timeout_ms 0 means NEBULA_DBD_SQLITE_BUSY_TIMEOUT_MS
 * @return 0 on success, else the driver's error code (@a errmsg set)
 */
int nebula_dbd_sqlite_init(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                           int busy_timeout_ms, const char **errmsg, apr_pool_t *pool);

/**
 * Per-connection check for MySQL/MariaDB; a no-op returning 0 for other
 * drivers. NebulaGate reads an UPDATE's affected rows as the rows it
 * matched (SQLite's and PostgreSQL's meaning); MySQL reports only the rows it
 * changed unless the connection was opened with CLIENT_FOUND_ROWS
 * (apr_dbd_mysql: "flags=CLIENT_FOUND_ROWS" in the parameters). Without it
 * a hold on an unlimited key, which changes nothing, reads as "no such
 * key". Probes with a temporary table: 0, or non-zero with @a errmsg.
 */
int nebula_dbd_mysql_check(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                           const char **errmsg, apr_pool_t *pool);

#endif /* NEBULA_DBD_DIALECT_H */

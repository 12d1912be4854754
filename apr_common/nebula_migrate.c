/* nebula_migrate.c: the schema migration runner (see nebula_migrate.h for
 * the whole procedure). Owns nothing beyond one run: the caller's connection
 * is borrowed and left unlocked and outside any transaction.
 *
 * Transactions are driven with plain BEGIN/SAVEPOINT/COMMIT statements, not
 * apr_dbd_transaction_start/end, on purpose (apr-util 1.6 dbd/ sources):
 * the sqlite3 driver hard-codes BEGIN IMMEDIATE and leaves a half-made
 * transaction behind when BEGIN fails, the pgsql driver dereferences a NULL
 * transaction when BEGIN fails, the mysql driver only toggles autocommit
 * (meaningless for DDL), and all three ignore every later statement once
 * one failed, which would stop us from rolling back to a savepoint. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_time.h>
#include <apr_lib.h>

#include "nebula_migrate.h"
#include "nebula_log.h"

/* SQLite result codes the sqlite3 driver passes through (sqlite3.h) */
#define SQLITE_RC_BUSY   5
#define SQLITE_RC_LOCKED 6

#define PG_LOCK_POLL_MS      200
#define SQLITE_LOCK_POLL_MS  50
#define SQLITE_SETUP_BUSY_MS 50
/* a named lock per database (as PostgreSQL's advisory locks are); GET_LOCK
 * names are limited to 64 characters */
#define MYSQL_LOCK_DB   "LEFT(COALESCE(DATABASE(), ''), 48)"
#define MYSQL_LOCK_NAME "CONCAT('nebula_migrate:', " MYSQL_LOCK_DB ")"

/* One row of nebula_schema_version. */
typedef struct {
    int version;
    const char *name;
    const char *checksum;
} applied_t;

/* The state of one run. */
typedef struct {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    nebula_dbd_dialect_e dialect;
    apr_pool_t *pool;               /* scratch, destroyed after the run */
    const apr_array_header_t *migs; /* const nebula_migration_t *, by version */
    apr_hash_t *applied;            /* version -> applied_t */
    int target;
    int lock_timeout_ms;
    int busy_timeout_ms;
    nebula_migrate_result_t *result;
    const char *errmsg;
} migrate_ctx_t;

#define MIG(ctx, i) (APR_ARRAY_IDX((ctx)->migs, (i), const nebula_migration_t *))

/* ---- splitting a file into statements ---------------------------------- */

static const char *trim_span(const char *start, const char *end, const char **tend)
{
    while (start < end && apr_isspace(*start)) {
        start++;
    }
    while (end > start && apr_isspace(end[-1])) {
        end--;
    }
    *tend = end;
    return start;
}

static void push_stmt(apr_array_header_t *out, apr_array_header_t *parts, int line,
                      apr_pool_t *pool)
{
    nebula_migrate_stmt_t *st = apr_array_push(out);
    char *text = apr_array_pstrcat(pool, parts, '\n');
    char *end = text + strlen(text);

    /* drop the final ';' and what surrounds it */
    while (end > text && (apr_isspace(end[-1]) || end[-1] == ';')) {
        *--end = '\0';
    }
    st->sql = text;
    st->line = line;
    apr_array_clear(parts);
}

apr_status_t nebula_migrate_split(const char *sql, apr_array_header_t **stmts,
                                  const char **errmsg, apr_pool_t *pool)
{
    apr_array_header_t *out = apr_array_make(pool, 16, sizeof(nebula_migrate_stmt_t));
    apr_array_header_t *parts = apr_array_make(pool, 16, sizeof(char *));
    const char *p = sql, *eol, *t, *tend;
    int line = 0, first = 0;

    for (; *p != '\0'; p = (*eol == '\n') ? eol + 1 : eol) {
        eol = p + strcspn(p, "\n");
        line++;
        t = trim_span(p, eol, &tend);
        if (t == tend || (tend - t >= 2 && t[0] == '-' && t[1] == '-')) {
            continue; /* blank or comment line */
        }
        if (memchr(t, ';', tend - t - 1) != NULL) {
            *errmsg = apr_psprintf(pool,
                                   "line %d: ';' inside a statement (';' may "
                                   "only end a line, see sql/README.md)",
                                   line);
            return APR_EINVAL;
        }
        if (parts->nelts == 0) {
            first = line;
        }
        APR_ARRAY_PUSH(parts, char *) = apr_pstrmemdup(pool, t, tend - t);
        if (tend[-1] == ';') {
            if (parts->nelts == 1 && tend - t == 1) {
                *errmsg = apr_psprintf(pool, "line %d: empty statement", line);
                return APR_EINVAL;
            }
            push_stmt(out, parts, first, pool);
        }
    }
    if (parts->nelts > 0) {
        *errmsg = apr_psprintf(pool, "line %d: statement not terminated by ';'", first);
        return APR_EINVAL;
    }
    *stmts = out;
    return APR_SUCCESS;
}

/* ---- the embedded migrations ------------------------------------------- */

apr_array_header_t *nebula_migrate_embedded(nebula_dbd_dialect_e dialect,
                                            apr_pool_t *pool)
{
    apr_array_header_t *out = apr_array_make(pool, 8, sizeof(nebula_migration_t *));
    int i;

    /* the generated table is ordered by dialect, then version */
    for (i = 0; i < nebula_schema_sql_count; i++) {
        if (nebula_schema_sql[i].dialect == dialect) {
            APR_ARRAY_PUSH(out, const nebula_migration_t *) = &nebula_schema_sql[i];
        }
    }
    return out;
}

/* ---- context ------------------------------------------------------------ */

static apr_status_t ctx_fail(migrate_ctx_t *ctx, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static apr_status_t ctx_fail(migrate_ctx_t *ctx, apr_status_t rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctx->errmsg = apr_pvsprintf(ctx->pool, fmt, ap);
    va_end(ap);
    return rv;
}

/* Check the migration list: one dialect, versions increasing. */
static apr_status_t ctx_check_migrations(migrate_ctx_t *ctx)
{
    int i;

    for (i = 0; i < ctx->migs->nelts; i++) {
        const nebula_migration_t *m = MIG(ctx, i);

        if (m->dialect != ctx->dialect) {
            return ctx_fail(ctx, APR_EINVAL, "migration %s is not for the %s driver",
                            m->file, apr_dbd_name(ctx->driver));
        }
        if (m->version < 1 || (i > 0 && m->version <= MIG(ctx, i - 1)->version)) {
            return ctx_fail(ctx, APR_EINVAL,
                            "migration %s: versions must be unique, "
                            "increasing and >= 1",
                            m->file);
        }
    }
    if (ctx->migs->nelts > 0) {
        ctx->result->latest_version = MIG(ctx, ctx->migs->nelts - 1)->version;
    }
    return APR_SUCCESS;
}

static apr_status_t ctx_init(migrate_ctx_t *ctx, const apr_dbd_driver_t *driver,
                             apr_dbd_t *handle, const nebula_migrate_opts_t *opts,
                             nebula_migrate_result_t *result, apr_pool_t *pool)
{
    memset(ctx, 0, sizeof(*ctx));
    memset(result, 0, sizeof(*result));
    ctx->driver = driver;
    ctx->handle = handle;
    ctx->pool = pool;
    ctx->result = result;
    ctx->applied = apr_hash_make(pool);
    ctx->dialect = nebula_dbd_dialect_of(driver);
    if (ctx->dialect == NEBULA_DBD_UNKNOWN) {
        return ctx_fail(ctx, APR_ENOTIMPL,
                        "apr_dbd driver '%s' is not supported "
                        "(use sqlite3, pgsql or mysql)",
                        driver ? apr_dbd_name(driver) : "(none)");
    }
    ctx->migs = (opts && opts->migrations) ? opts->migrations
                                           : nebula_migrate_embedded(ctx->dialect, pool);
    ctx->lock_timeout_ms = (opts && opts->lock_timeout_ms > 0)
                               ? opts->lock_timeout_ms
                               : NEBULA_MIGRATE_LOCK_TIMEOUT_MS;
    ctx->busy_timeout_ms = opts ? opts->busy_timeout_ms : 0;
    if (ctx_check_migrations(ctx) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    ctx->target = (opts && opts->target_version > 0) ? opts->target_version
                                                     : result->latest_version;
    if (opts &&
        (opts->target_version < 0 || opts->target_version > result->latest_version)) {
        return ctx_fail(ctx, APR_EINVAL,
                        "there is no migration %d for %s in this "
                        "build (latest is %d)",
                        opts->target_version, apr_dbd_name(driver),
                        result->latest_version);
    }
    return APR_SUCCESS;
}

static const nebula_migration_t *ctx_find(migrate_ctx_t *ctx, int version)
{
    int i;

    for (i = 0; i < ctx->migs->nelts; i++) {
        if (MIG(ctx, i)->version == version) {
            return MIG(ctx, i);
        }
    }
    return NULL;
}

static int ctx_exec(migrate_ctx_t *ctx, const char *sql, const char **err)
{
    return nebula_dbd_exec(ctx->driver, ctx->handle, sql, err, ctx->pool);
}

static int ctx_select(migrate_ctx_t *ctx, const char *sql, nebula_dbd_rows_t *rows,
                      const char **err)
{
    return nebula_dbd_select(ctx->driver, ctx->handle, sql, rows, err, ctx->pool);
}

/* The single value of a one-row, one-column query ("" when NULL/no row). */
static int ctx_select_value(migrate_ctx_t *ctx, const char *sql, const char **value,
                            const char **err)
{
    nebula_dbd_rows_t rows;
    int rv = ctx_select(ctx, sql, &rows, err);

    *value = "";
    if (rv == 0 && rows.nrows > 0 && rows.ncols > 0 && rows.rows[0][0]) {
        *value = rows.rows[0][0];
    }
    return rv;
}

/* ---- locks ---------------------------------------------------------------- */

static apr_status_t lock_timeout(migrate_ctx_t *ctx)
{
    nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_TIMEUP,
                      "NEB00203: migration lock not obtained within %d ms",
                      ctx->lock_timeout_ms);
    return ctx_fail(ctx, APR_TIMEUP,
                    "could not take the migration lock within %d "
                    "ms: another migration is still running (or a session holds "
                    "the lock)",
                    ctx->lock_timeout_ms);
}

static void sqlite_busy_timeout(migrate_ctx_t *ctx, int ms)
{
    const char *ignored, *err;

    ctx_select_value(ctx, apr_psprintf(ctx->pool, "PRAGMA busy_timeout = %d", ms),
                     &ignored, &err);
}

static apr_status_t lock_sqlite(migrate_ctx_t *ctx)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(ctx->lock_timeout_ms);
    apr_status_t status = APR_SUCCESS;
    const char *err;
    int rv;

    /* Poll with a short busy timeout so that the deadline holds: the driver
     * itself retries a busy step 15 times, each waiting busy_timeout. */
    sqlite_busy_timeout(ctx, 100);
    for (;;) {
        rv = ctx_exec(ctx, "BEGIN IMMEDIATE", &err);
        if (rv == 0) {
            break;
        }
        if (rv != SQLITE_RC_BUSY && rv != SQLITE_RC_LOCKED) {
            status = ctx_fail(ctx, APR_EGENERAL, "BEGIN IMMEDIATE failed: %s", err);
            break;
        }
        if (apr_time_now() >= deadline) {
            status = lock_timeout(ctx);
            break;
        }
        apr_sleep(apr_time_from_msec(SQLITE_LOCK_POLL_MS));
    }
    sqlite_busy_timeout(ctx, ctx->busy_timeout_ms > 0
                                 ? ctx->busy_timeout_ms
                                 : NEBULA_DBD_SQLITE_BUSY_TIMEOUT_MS);
    return status;
}

static apr_status_t lock_pgsql(migrate_ctx_t *ctx)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(ctx->lock_timeout_ms);
    const char *sql = "SELECT pg_try_advisory_lock(" NEBULA_MIGRATE_PG_LOCK_KEY ")";
    const char *err, *got;

    /* try-lock polling rather than pg_advisory_lock(): bounded by our
     * deadline without changing the session's lock_timeout */
    for (;;) {
        if (ctx_select_value(ctx, sql, &got, &err) != 0) {
            return ctx_fail(ctx, APR_EGENERAL, "pg_try_advisory_lock failed: %s", err);
        }
        if (strcmp(got, "t") == 0) {
            return APR_SUCCESS;
        }
        if (apr_time_now() >= deadline) {
            return lock_timeout(ctx);
        }
        apr_sleep(apr_time_from_msec(PG_LOCK_POLL_MS));
    }
}

static apr_status_t lock_mysql(migrate_ctx_t *ctx)
{
    int secs = (ctx->lock_timeout_ms + 999) / 1000;
    const char *err, *got;
    const char *sql =
        apr_psprintf(ctx->pool, "SELECT GET_LOCK(" MYSQL_LOCK_NAME ", %d)", secs);

    /* named lock scoped to the database, like PostgreSQL's advisory locks */
    if (ctx_select_value(ctx, sql, &got, &err) != 0) {
        return ctx_fail(ctx, APR_EGENERAL, "GET_LOCK failed: %s", err);
    }
    if (strcmp(got, "1") == 0) {
        return APR_SUCCESS;
    }
    if (strcmp(got, "0") == 0) {
        return lock_timeout(ctx);
    }
    return ctx_fail(ctx, APR_EGENERAL, "GET_LOCK returned an error (NULL)");
}

static apr_status_t lock_take(migrate_ctx_t *ctx)
{
    apr_status_t rv;

    switch (ctx->dialect) {
    case NEBULA_DBD_SQLITE:
        rv = lock_sqlite(ctx);
        break;
    case NEBULA_DBD_PGSQL:
        rv = lock_pgsql(ctx);
        break;
    default:
        rv = lock_mysql(ctx);
        break;
    }
    if (rv == APR_SUCCESS) {
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_SUCCESS,
                          "NEB00204: migration lock taken (%s)",
                          apr_dbd_name(ctx->driver));
    }
    return rv;
}

/* Release the lock. SQLite: COMMIT the run's transaction (files that were
 * applied are kept; a failed file was already rolled back to its savepoint). */
static apr_status_t lock_release(migrate_ctx_t *ctx)
{
    const char *err, *ignored;

    switch (ctx->dialect) {
    case NEBULA_DBD_SQLITE:
        if (ctx_exec(ctx, "COMMIT", &err) != 0) {
            ctx_exec(ctx, "ROLLBACK", &ignored);
            ctx->result->to_version = ctx->result->from_version;
            ctx->result->applied = 0;
            return ctx_fail(ctx, APR_EGENERAL,
                            "COMMIT of the migrations failed, "
                            "nothing was applied: %s",
                            err);
        }
        return APR_SUCCESS;
    case NEBULA_DBD_PGSQL:
        if (ctx_select_value(ctx,
                             "SELECT pg_advisory_unlock(" NEBULA_MIGRATE_PG_LOCK_KEY ")",
                             &ignored, &err) != 0) {
            return ctx_fail(ctx, APR_EGENERAL, "pg_advisory_unlock failed: %s", err);
        }
        return APR_SUCCESS;
    default:
        if (ctx_select_value(ctx, "SELECT RELEASE_LOCK(" MYSQL_LOCK_NAME ")", &ignored,
                             &err) != 0) {
            return ctx_fail(ctx, APR_EGENERAL, "RELEASE_LOCK failed: %s", err);
        }
        return APR_SUCCESS;
    }
}

/* ---- the version table ----------------------------------------------------- */

static const char *version_table_ddl(nebula_dbd_dialect_e dialect)
{
    /* identical to the definition in each dialect's 0001_init.sql */
    if (dialect == NEBULA_DBD_MYSQL) {
        return "CREATE TABLE IF NOT EXISTS nebula_schema_version (\n"
               "    version INTEGER NOT NULL PRIMARY KEY,\n"
               "    name VARCHAR(255) NOT NULL,\n"
               "    checksum CHAR(64) NOT NULL,\n"
               "    applied_at BIGINT NOT NULL\n"
               ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
    }
    return "CREATE TABLE IF NOT EXISTS nebula_schema_version (\n"
           "    version INTEGER NOT NULL PRIMARY KEY,\n"
           "    name VARCHAR(255) NOT NULL,\n"
           "    checksum CHAR(64) NOT NULL,\n"
           "    applied_at BIGINT NOT NULL\n"
           ")";
}

static apr_status_t read_applied(migrate_ctx_t *ctx)
{
    nebula_dbd_rows_t rows;
    const char *err;
    int i;

    if (ctx_select(ctx,
                   "SELECT version, name, checksum FROM nebula_schema_version "
                   "ORDER BY version",
                   &rows, &err) != 0) {
        return ctx_fail(ctx, APR_EGENERAL, "reading nebula_schema_version failed: %s",
                        err);
    }
    apr_hash_clear(ctx->applied);
    for (i = 0; i < rows.nrows; i++) {
        applied_t *a = apr_pcalloc(ctx->pool, sizeof(*a));

        a->version = atoi(rows.rows[i][0] ? rows.rows[i][0] : "0");
        a->name = rows.rows[i][1] ? rows.rows[i][1] : "";
        a->checksum = rows.rows[i][2] ? rows.rows[i][2] : "";
        apr_hash_set(ctx->applied, apr_pmemdup(ctx->pool, &a->version, sizeof(int)),
                     sizeof(int), a);
    }
    return APR_SUCCESS;
}

static const applied_t *applied_get(migrate_ctx_t *ctx, int version)
{
    return apr_hash_get(ctx->applied, &version, sizeof(int));
}

/* Compare what the database recorded with this build's files. */
static apr_status_t verify_applied(migrate_ctx_t *ctx)
{
    apr_hash_index_t *hi;
    int max = 0;

    ctx->result->unknown = 0;
    for (hi = apr_hash_first(ctx->pool, ctx->applied); hi; hi = apr_hash_next(hi)) {
        const applied_t *a = apr_hash_this_val(hi);
        const nebula_migration_t *m = ctx_find(ctx, a->version);

        max = a->version > max ? a->version : max;
        if (m == NULL) {
            ctx->result->unknown++;
            nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_WARNING, APR_SUCCESS,
                              "NEB00205: the database has migration %d (%s), which "
                              "this build does not know: a newer NebulaGate migrated "
                              "it",
                              a->version, a->name);
            continue;
        }
        if (strcasecmp(a->checksum, m->checksum) != 0) {
            nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_EGENERAL,
                              "NEB00206: checksum mismatch for applied migration %s",
                              m->file);
            return ctx_fail(ctx, APR_EGENERAL,
                            "migration %s (version %d) was applied "
                            "with checksum %s but this build's file has %s: an "
                            "applied migration must never be edited; restore the "
                            "file and put the change into a new migration",
                            m->file, m->version, a->checksum, m->checksum);
        }
    }
    ctx->result->from_version = max;
    ctx->result->to_version = max;
    return APR_SUCCESS;
}

static void count_pending(migrate_ctx_t *ctx)
{
    int i;

    ctx->result->pending = 0;
    for (i = 0; i < ctx->migs->nelts; i++) {
        if (applied_get(ctx, MIG(ctx, i)->version) == NULL) {
            ctx->result->pending++;
        }
    }
}

/* ---- applying one file ----------------------------------------------------- */

static const char *file_begin_sql(nebula_dbd_dialect_e d)
{
    return d == NEBULA_DBD_SQLITE  ? "SAVEPOINT nebula_migration"
           : d == NEBULA_DBD_PGSQL ? "BEGIN"
                                   : NULL;
}

static const char *file_commit_sql(nebula_dbd_dialect_e d)
{
    return d == NEBULA_DBD_SQLITE  ? "RELEASE SAVEPOINT nebula_migration"
           : d == NEBULA_DBD_PGSQL ? "COMMIT"
                                   : NULL;
}

static void file_rollback(migrate_ctx_t *ctx)
{
    const char *ignored;

    if (ctx->dialect == NEBULA_DBD_SQLITE) {
        ctx_exec(ctx, "ROLLBACK TO SAVEPOINT nebula_migration", &ignored);
        ctx_exec(ctx, "RELEASE SAVEPOINT nebula_migration", &ignored);
    }
    else if (ctx->dialect == NEBULA_DBD_PGSQL) {
        ctx_exec(ctx, "ROLLBACK", &ignored);
    }
}

static const char *stmt_excerpt(migrate_ctx_t *ctx, const char *sql)
{
    apr_size_t n = strcspn(sql, "\n");

    return n > 60
               ? apr_pstrcat(ctx->pool, apr_pstrmemdup(ctx->pool, sql, 60), "...", NULL)
               : apr_pstrmemdup(ctx->pool, sql, n);
}

static apr_status_t stmt_failed(migrate_ctx_t *ctx, const nebula_migration_t *m,
                                const nebula_migrate_stmt_t *st, const char *err)
{
    file_rollback(ctx);
    nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_DEBUG, APR_EGENERAL,
                      "NEB00207: migration %s failed at line %d: %s", m->file, st->line,
                      err);
    return ctx_fail(ctx, APR_EGENERAL, "migration %s failed at line %d (%s): %s%s",
                    m->file, st->line, stmt_excerpt(ctx, st->sql), err,
                    ctx->dialect == NEBULA_DBD_MYSQL
                        ? " [MySQL cannot roll back DDL: the statements before "
                          "this one stay applied; fix the cause and run migrate "
                          "again]"
                        : " [the file was rolled back]");
}

static const char *version_insert_sql(migrate_ctx_t *ctx, const nebula_migration_t *m)
{
    return apr_psprintf(
        ctx->pool,
        "INSERT INTO nebula_schema_version (version, name, "
        "checksum, applied_at) VALUES (%d, '%s', '%s', %" APR_INT64_T_FMT ")",
        m->version, apr_dbd_escape(ctx->driver, ctx->pool, m->name, ctx->handle),
        apr_dbd_escape(ctx->driver, ctx->pool, m->checksum, ctx->handle),
        (apr_int64_t)apr_time_as_msec(apr_time_now()));
}

static apr_status_t apply_one(migrate_ctx_t *ctx, const nebula_migration_t *m)
{
    apr_array_header_t *stmts;
    nebula_migrate_stmt_t vrow = {NULL, 0};
    const char *sql, *err;
    int i;

    if (nebula_migrate_split(m->sql, &stmts, &err, ctx->pool) != APR_SUCCESS) {
        return ctx_fail(ctx, APR_EINVAL, "migration %s: %s", m->file, err);
    }
    sql = file_begin_sql(ctx->dialect);
    if (sql && ctx_exec(ctx, sql, &err) != 0) {
        return ctx_fail(ctx, APR_EGENERAL, "migration %s: %s failed: %s", m->file, sql,
                        err);
    }
    for (i = 0; i < stmts->nelts; i++) {
        const nebula_migrate_stmt_t *st = &APR_ARRAY_IDX(stmts, i, nebula_migrate_stmt_t);

        if (ctx_exec(ctx, st->sql, &err) != 0) {
            return stmt_failed(ctx, m, st, err);
        }
    }
    vrow.sql = version_insert_sql(ctx, m);
    if (ctx_exec(ctx, vrow.sql, &err) != 0) {
        return stmt_failed(ctx, m, &vrow, err);
    }
    sql = file_commit_sql(ctx->dialect);
    if (sql && ctx_exec(ctx, sql, &err) != 0) {
        file_rollback(ctx);
        return ctx_fail(ctx, APR_EGENERAL, "migration %s: %s failed: %s", m->file, sql,
                        err);
    }
    nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_INFO, APR_SUCCESS,
                      "NEB00208: applied migration %s", m->file);
    return APR_SUCCESS;
}

/* ---- the run ---------------------------------------------------------------- */

/* Everything that happens while the lock is held. */
static apr_status_t run_locked(migrate_ctx_t *ctx)
{
    const char *err;
    apr_status_t rv;
    int i;

    if (ctx_exec(ctx, version_table_ddl(ctx->dialect), &err) != 0) {
        return ctx_fail(ctx, APR_EGENERAL,
                        "creating nebula_schema_version failed: "
                        "%s",
                        err);
    }
    if ((rv = read_applied(ctx)) != APR_SUCCESS ||
        (rv = verify_applied(ctx)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < ctx->migs->nelts; i++) {
        const nebula_migration_t *m = MIG(ctx, i);

        if (m->version > ctx->target || applied_get(ctx, m->version) != NULL) {
            continue;
        }
        if ((rv = apply_one(ctx, m)) != APR_SUCCESS) {
            return rv;
        }
        ctx->result->applied++;
        if (m->version > ctx->result->to_version) {
            ctx->result->to_version = m->version;
        }
    }
    return read_applied(ctx);
}

/* Whether every migration up to the target is applied, as this build has
 * it, checked without the lock: the usual case of a child process starting
 * while the server is busy. On SQLite the lock is the database's write
 * lock, which a busy server's writers keep taking; a child that queued for
 * it could time out although there is nothing to do. Anything short of a
 * clean "all applied" (no table yet, a pending file, an unknown or edited
 * one) goes the locked way, which decides and reports. */
static int up_to_date(migrate_ctx_t *ctx)
{
    int i;

    if (read_applied(ctx) != APR_SUCCESS || verify_applied(ctx) != APR_SUCCESS
        || ctx->result->unknown) {
        ctx->errmsg = NULL;
        return 0;
    }
    for (i = 0; i < ctx->migs->nelts; i++) {
        const nebula_migration_t *m = MIG(ctx, i);

        if (m->version <= ctx->target && applied_get(ctx, m->version) == NULL) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t finish(migrate_ctx_t *ctx, apr_status_t rv, const char **errmsg,
                           apr_pool_t *pool)
{
    if (rv != APR_SUCCESS) {
        *errmsg = apr_pstrdup(pool, ctx->errmsg ? ctx->errmsg : "migration failed");
    }
    apr_pool_destroy(ctx->pool);
    return rv;
}

apr_status_t nebula_migrate_run(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                                const nebula_migrate_opts_t *opts,
                                nebula_migrate_result_t *result, const char **errmsg,
                                apr_pool_t *pool)
{
    migrate_ctx_t ctx;
    apr_pool_t *scratch;
    apr_status_t rv, rv2;
    const char *err, *first_error;

    apr_pool_create(&scratch, pool);
    apr_pool_tag(scratch, "nebula_migrate");
    if ((rv = ctx_init(&ctx, driver, handle, opts, result, scratch)) != APR_SUCCESS) {
        return finish(&ctx, rv, errmsg, pool);
    }
    /* SQLite: a short busy timeout here, so that a writer holding the file
     * cannot stall us past the lock deadline (lock_sqlite() then sets the
     * real one); WAL can wait for a later connection */
    if (nebula_dbd_sqlite_init(driver, handle, SQLITE_SETUP_BUSY_MS, &err, scratch)) {
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_INFO, APR_SUCCESS,
                          "NEB00210: SQLite set-up incomplete, continuing: %s", err);
    }
    if (up_to_date(&ctx)) {
        count_pending(&ctx);
        return finish(&ctx, APR_SUCCESS, errmsg, pool);
    }
    if ((rv = lock_take(&ctx)) != APR_SUCCESS) {
        return finish(&ctx, rv, errmsg, pool);
    }
    rv = run_locked(&ctx);
    count_pending(&ctx);
    first_error = ctx.errmsg;
    rv2 = lock_release(&ctx);
    if (rv != APR_SUCCESS) {
        ctx.errmsg = first_error; /* report the cause, not the aftermath */
    }
    rv = (rv == APR_SUCCESS) ? rv2 : rv;
    if (rv == APR_SUCCESS && result->applied > 0) {
        nebula_log_perror(NEBULA_LOG_MARK, NEBULA_LOG_NOTICE, APR_SUCCESS,
                          "NEB00209: database schema migrated from version %d to %d "
                          "(%d applied)",
                          result->from_version, result->to_version, result->applied);
    }
    return finish(&ctx, rv, errmsg, pool);
}

apr_status_t nebula_migrate_status(const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                                   const nebula_migrate_opts_t *opts,
                                   nebula_migrate_result_t *result, const char **errmsg,
                                   apr_pool_t *pool)
{
    migrate_ctx_t ctx;
    apr_pool_t *scratch;
    apr_status_t rv;
    const char *err;
    int exists = 0;

    apr_pool_create(&scratch, pool);
    apr_pool_tag(scratch, "nebula_migrate");
    if ((rv = ctx_init(&ctx, driver, handle, opts, result, scratch)) != APR_SUCCESS) {
        return finish(&ctx, rv, errmsg, pool);
    }
    if (nebula_dbd_table_exists(driver, handle, "nebula_schema_version", &exists, &err,
                                scratch) != 0) {
        rv = ctx_fail(&ctx, APR_EGENERAL,
                      "checking for nebula_schema_version "
                      "failed: %s",
                      err);
        return finish(&ctx, rv, errmsg, pool);
    }
    if (exists && ((rv = read_applied(&ctx)) != APR_SUCCESS ||
                   (rv = verify_applied(&ctx)) != APR_SUCCESS)) {
        return finish(&ctx, rv, errmsg, pool);
    }
    count_pending(&ctx);
    return finish(&ctx, APR_SUCCESS, errmsg, pool);
}

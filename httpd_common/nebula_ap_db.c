/* nebula_ap_db.c: parameterised statements on connections borrowed from
 * mod_dbd (see nebula_ap_db.h). Prepared statements are cached per
 * connection in a subpool of the connection's pool, so they live as long as
 * the connection and are prepared after the schema was migrated.
 *
 * A dead PostgreSQL connection is not replaced by mod_dbd: its check on the
 * next acquire reconnects the same handle (PQreset), and the server forgets
 * every statement prepared on it (a dead MySQL one fails the check and is
 * dropped; see db_borrow). So a
 * failed statement marks the cache stale; the next statement used outside a
 * transaction drops the cache and prepares afresh, under a new generation of
 * server-side names (the old ones may still exist if the connection lived).
 * SQLite handles are never reconnected, and its statements are not
 * finalised by pool cleanup, so its cache is never dropped.
 *
 * A server that ended a pooled connection is noticed only by the first
 * statement sent on it. When that first statement of a borrow is a SELECT or
 * the BEGIN of a transaction, nothing was done on the server, so the
 * connection is given back, a fresh one borrowed and the statement sent
 * again: a database failover costs no request. Other first statements
 * (autocommit writes) are never repeated: the server may have run them.
 *
 * SQLite: apr_dbd_sqlite3 runs every statement under one mutex for the whole
 * process, and SQLite's busy handler sleeps inside the statement. A thread
 * waiting for the file's write lock would hold that mutex while the thread
 * of the same process that owns the write lock needs it to finish: every
 * writer of the process stalls for the busy timeout, again and again (a
 * convoy that looked like a hang under 200 concurrent billed requests). So
 * SQLite writers take turns on a lock of our own first: a write transaction
 * holds it from BEGIN to COMMIT or ROLLBACK, an autocommit write for its
 * statement. Readers never wait (WAL). The lock is one per process, shared
 * by every NebulaGate module of the process (each links its own copy of this
 * file, so the lock lives in the process pool), and across processes an
 * exclusive flock() on "<database file>-nebula-lock": the kernel queues the
 * writers of every child and wakes the next one at once, where SQLite's busy
 * handler would have them sleep and poll (which starved some writers for
 * tens of seconds with 20 children). Without the lock file (an in-memory
 * database, or a directory we cannot write) SQLite's file lock arbitrates
 * between processes, as before. */
#include <apr_atomic.h>
#include <apr_optional.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_dbd.h>
#include <apr_lib.h>
#include <mod_dbd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include "nebula_ap.h"
#include "nebula_ap_db.h"

#define STMT_CACHE_KEY "nebula:stmts"

/* The statement cache of one connection, in its pool's userdata. */
typedef struct {
    apr_pool_t *pool;      /* statements; a subpool of the connection's */
    apr_hash_t *stmts;     /* label -> apr_dbd_prepared_t */
    unsigned gen;          /* names prepared as neb<gen>_<label> after a drop */
    int stale;             /* a statement failed: the server may have forgotten */
} db_cache_t;

struct nebula_ap_db_t {
    apr_pool_t *pool;      /* the borrower's */
    server_rec *s;
    ap_dbd_t *dbd;
    nebula_dbd_dialect_e dialect;
    int in_txn;
    int fresh;             /* no statement was sent on this borrow yet */
    int reborrows;         /* connections replaced in this borrow */
    int writing;           /* holds sqlite_writer */
    struct db_held_t *held; /* the borrowing thread's (nebula_ap_db_open) */
};

/* SQLite's writers of this process, one at a time, then one process at a
 * time (see the top of the file). Recursive, so that a thread writing on two
 * connections cannot lock itself out; `depth` counts its holds, and the file
 * lock is taken by the outermost one. */
typedef struct {
    pthread_mutex_t mu;
    int depth;             /* holds of the owning thread, under mu */
    int fd;                /* the lock file, or -1 */
    int has_key;
    pthread_key_t held;    /* per thread: a db_held_t */
} db_writer_t;

/* The connections a thread holds, and where it borrowed the outermost. A
 * connection may be given back by pool cleanup in another thread, so the
 * count is atomic, and these are never freed (one per thread that ever
 * borrowed). */
typedef struct db_held_t {
    long n;
    const char *outer;
} db_held_t;

#define WRITER_KEY "nebula:sqlite-writer"

/* Before child_init (and in a process where none was set up) writers meet
 * on this one; db_writer_attach() points every module at the process's. */
static db_writer_t local_writer = {PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, 0, -1, 0};
static db_writer_t *writer = &local_writer;

static void writer_lock(nebula_ap_db_t *db)
{
    if (db->dialect == NEBULA_DBD_SQLITE && !db->writing) {
        pthread_mutex_lock(&writer->mu);
        if (writer->depth++ == 0 && writer->fd >= 0) {
            while (flock(writer->fd, LOCK_EX) != 0 && errno == EINTR) {
            }
        }
        db->writing = 1;
    }
}

static void writer_unlock(nebula_ap_db_t *db)
{
    if (db->writing) {
        db->writing = 0;
        if (--writer->depth == 0 && writer->fd >= 0) {
            flock(writer->fd, LOCK_UN);
        }
        pthread_mutex_unlock(&writer->mu);
    }
}

/* The file of the "main" database of a SQLite connection, or NULL. */
static const char *sqlite_file(ap_dbd_t *dbd, apr_pool_t *p)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int i;

    if (nebula_dbd_select(dbd->driver, dbd->handle, "PRAGMA database_list", &rows, &err, p)
        != 0) {
        return NULL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (rows.ncols >= 3 && rows.rows[i][1] && !strcmp(rows.rows[i][1], "main")) {
            return rows.rows[i][2] && *rows.rows[i][2] ? rows.rows[i][2] : NULL;
        }
    }
    return NULL;
}

void nebula_ap_db_writer_attach(apr_pool_t *pchild, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    pthread_mutexattr_t attr;
    void *v = NULL;
    db_writer_t *w;
    ap_dbd_t *dbd;
    const char *file, *path;

    /* child_init runs before any worker thread: no race on the userdata */
    apr_pool_userdata_get(&v, WRITER_KEY, s->process->pool);
    if (v != NULL) {
        writer = v;
        return;
    }
    w = apr_pcalloc(s->process->pool, sizeof(*w));
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&w->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    w->fd = -1;
    /* the counts are never freed: a connection may be given back by pool
     * cleanup in another thread, after its borrower ended */
    w->has_key = pthread_key_create(&w->held, NULL) == 0;
    if (dbd_open && dbd_close && (dbd = dbd_open(pchild, s)) != NULL) {
        if (nebula_dbd_dialect_of(dbd->driver) == NEBULA_DBD_SQLITE
            && (file = sqlite_file(dbd, pchild)) != NULL) {
            path = apr_pstrcat(pchild, file, "-nebula-lock", NULL);
            w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (w->fd < 0) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                             "NEB00013: cannot open the SQLite writers' lock file %s: "
                             "processes will meet in SQLite's busy handler instead",
                             path);
            }
        }
        dbd_close(s, dbd);
    }
    apr_pool_userdata_setn(w, WRITER_KEY, NULL, s->process->pool);
    writer = w;
}

/* Borrowing. mod_dbd gives NULL for a pooled connection that fails its
 * check on lending (a MySQL connection the server ended: mysql_ping fails)
 * and drops it, so once the server ended them all a borrow meets up to
 * DBDMax dead ones before a new connection is made: it tries again, within
 * DB_OPEN_BUDGET, up to DB_OPEN_MAX times. When no connection could be had
 * at all (the server is down), borrows of the next second try once, so an
 * outage costs one failed connect per request, not a storm of them. */
#define DB_OPEN_TRIES 8          /* connections replaced in one borrow */
#define DB_OPEN_MAX 128
#define DB_OPEN_BUDGET apr_time_from_msec(100)

static apr_uint32_t db_down_until;   /* apr_time_sec(): try once before */

/* The host's borrow counters: one segment per generation of the
 * configuration, created by the first module's post_config in the parent
 * (found by the others through pconf's userdata) and inherited by every
 * child; atomics, no lock. Before that (or without shared memory) a
 * process-local one counts. */
#define STATS_KEY "nebula:db-stats"
static nebula_ap_db_stats_t local_stats;
static nebula_ap_db_stats_t *stats = &local_stats;

static int db_stats_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s)
{
    void *v = NULL;
    apr_shm_t *shm;

    (void)plog;
    (void)ptemp;
    apr_pool_userdata_get(&v, STATS_KEY, pconf);
    if (v == NULL) {
        if (apr_shm_create(&shm, sizeof(nebula_ap_db_stats_t), NULL, pconf) == APR_SUCCESS) {
            v = apr_shm_baseaddr_get(shm);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "NEB00015: no shared memory for the database borrow counters: "
                         "each process counts its own");
            v = apr_palloc(pconf, sizeof(nebula_ap_db_stats_t));
        }
        memset(v, 0, sizeof(nebula_ap_db_stats_t));
        apr_pool_userdata_setn(v, STATS_KEY, NULL, pconf);
    }
    stats = v;
    return OK;
}

void nebula_ap_db_stats_register(void)
{
    ap_hook_post_config(db_stats_post_config, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

void nebula_ap_db_stats(nebula_ap_db_stats_t *out)
{
    out->borrowed = apr_atomic_read32(&stats->borrowed);
    out->borrows = __atomic_load_n(&stats->borrows, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&stats->failures, __ATOMIC_RELAXED);
    out->nested = __atomic_load_n(&stats->nested, __ATOMIC_RELAXED);
}

static apr_status_t db_cleanup(void *data)
{
    nebula_ap_db_close(data);
    return APR_SUCCESS;
}

static ap_dbd_t *db_borrow(apr_pool_t *p, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    ap_dbd_t *dbd = NULL;
    apr_time_t start = apr_time_now();
    int i, tries = DB_OPEN_MAX;

    if ((apr_uint32_t)apr_time_sec(start) < apr_atomic_read32(&db_down_until)) {
        tries = 1;
    }
    for (i = 0; dbd_open && dbd == NULL && i < tries
                && (i == 0 || apr_time_now() - start < DB_OPEN_BUDGET); ++i) {
        dbd = dbd_open(p, s);
    }
    if (dbd == NULL) {
        apr_atomic_set32(&db_down_until, (apr_uint32_t)apr_time_sec(apr_time_now()) + 1);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB00010: no database connection (is mod_dbd loaded and "
                     "DBDriver/DBDParams right?)");
    }
    return dbd;
}

/* This thread's db_held_t, or NULL (before child_init, or out of memory). */
static db_held_t *db_held(void)
{
    db_held_t *h;

    if (!writer->has_key) {
        return NULL;
    }
    if ((h = pthread_getspecific(writer->held)) == NULL
        && (h = calloc(1, sizeof(*h))) != NULL && pthread_setspecific(writer->held, h) != 0) {
        free(h);
        h = NULL;
    }
    return h;
}

nebula_ap_db_t *nebula_ap_db_open_at(apr_pool_t *p, server_rec *s, const char *at)
{
    nebula_ap_db_t *db;
    ap_dbd_t *dbd = db_borrow(p, s);

    if (dbd == NULL) {
        __atomic_fetch_add(&stats->failures, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    apr_atomic_inc32(&stats->borrowed);
    __atomic_fetch_add(&stats->borrows, 1, __ATOMIC_RELAXED);
    db = apr_pcalloc(p, sizeof(*db));
    db->pool = p;
    db->s = s;
    db->dbd = dbd;
    db->dialect = nebula_dbd_dialect_of(dbd->driver);
    db->fresh = 1;
    if ((db->held = db_held()) != NULL) {
        if (__atomic_fetch_add(&db->held->n, 1, __ATOMIC_RELAXED) == 0) {
            db->held->outer = at;
        }
        else {
            __atomic_fetch_add(&stats->nested, 1, __ATOMIC_RELAXED);
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "NEB00014: %s borrowed a second database connection while "
                         "its thread holds one (borrowed at %s): threads doing so "
                         "can exhaust the pool (DBDMax) and wait for ever",
                         at, db->held->outer ? db->held->outer : "?");
        }
    }
    apr_pool_cleanup_register(p, db, db_cleanup, apr_pool_cleanup_null);
    return db;
}

static void db_failed(nebula_ap_db_t *db);

/* After the first statement of a borrow failed (see the top of the file):
 * 1 when a fresh connection replaced this one and the statement may be sent
 * again, 0 when it must not be or none could be had. */
static int db_reborrow(nebula_ap_db_t *db)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    if (!db->fresh || db->in_txn || db->dialect == NEBULA_DBD_SQLITE
        || db->reborrows++ >= DB_OPEN_TRIES) {
        db->fresh = 0;
        return 0;
    }
    db->fresh = 0;
    db_failed(db);
    /* mod_dbd checks it when it is next lent: PQreset, or dropped */
    if (dbd_close) {
        dbd_close(db->s, db->dbd);
    }
    db->dbd = db_borrow(db->pool, db->s);
    if (db->dbd == NULL) { /* the one given back is not replaced */
        apr_atomic_dec32(&stats->borrowed);
        __atomic_fetch_add(&stats->failures, 1, __ATOMIC_RELAXED);
        return 0;
    }
    db->fresh = 1;   /* the next pooled one may have been ended too */
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, db->s,
                 "NEB00012: the database ended a pooled connection; "
                 "the statement was sent again on another");
    return 1;
}

void nebula_ap_db_close(nebula_ap_db_t *db)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    if (db->held) {
        /* (also after a failed reborrow left no connection) */
        __atomic_fetch_sub(&db->held->n, 1, __ATOMIC_RELAXED);
        db->held = NULL;
    }
    if (db->dbd == NULL) {
        return;
    }
    if (db->in_txn) {
        nebula_ap_db_rollback(db);
    }
    writer_unlock(db);
    if (dbd_close) {
        dbd_close(db->s, db->dbd);
    }
    apr_atomic_dec32(&stats->borrowed);
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

static db_cache_t *db_cache(nebula_ap_db_t *db)
{
    db_cache_t *c = NULL;

    apr_pool_userdata_get((void **)&c, STMT_CACHE_KEY, db->dbd->pool);
    if (c == NULL) {
        c = apr_pcalloc(db->dbd->pool, sizeof(*c));
        apr_pool_create(&c->pool, db->dbd->pool);
        apr_pool_tag(c->pool, "nebula_stmts");
        c->stmts = apr_hash_make(c->pool);
        apr_pool_userdata_setn(c, STMT_CACHE_KEY, NULL, db->dbd->pool);
    }
    return c;
}

/* Note a failed statement: the connection may be reconnected under us. */
static void db_failed(nebula_ap_db_t *db)
{
    /* db->dbd is NULL when no other connection could be had after a
     * reborrow: the old one was given back already marked stale */
    if (db->dialect != NEBULA_DBD_SQLITE && db->dbd != NULL) {
        db_cache(db)->stale = 1;
    }
}

/* After a failed statement (outside a transaction: MySQL closes statements
 * as their pool is cleared): forget every statement of this connection, and
 * prepare the next ones under names of a new generation. */
static void db_cache_renew(nebula_ap_db_t *db)
{
    db_cache_t *c = db_cache(db);

    if (!c->stale) {
        return;
    }
    apr_pool_clear(c->pool);   /* MySQL closes its statements here */
    c->stmts = apr_hash_make(c->pool);
    c->stale = 0;
    c->gen++;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, db->s,
                 "NEB00011: a statement failed on this connection; "
                 "preparing afresh (generation %u)", c->gen);
}

/* The statement prepared on this connection for @a label. */
static apr_dbd_prepared_t *db_stmt(nebula_ap_db_t *db, const char *label, const char *sql,
                                   const char **err)
{
    db_cache_t *c;
    apr_dbd_prepared_t *stmt;
    const char *name;
    int rv;

    if (db->dbd == NULL) {
        *err = "no database connection";
        return NULL;
    }
    c = db_cache(db);
    if (!db->in_txn) {
        db_cache_renew(db);
    }
    stmt = apr_hash_get(c->stmts, label, APR_HASH_KEY_STRING);
    if (stmt != NULL) {
        return stmt;
    }
    /* pgsql names the server-side statement after the label */
    name = c->gen ? apr_psprintf(c->pool, "neb%u_%s", c->gen, label)
                  : apr_pstrcat(c->pool, "neb_", label, NULL);
    rv = apr_dbd_prepare(db->dbd->driver, c->pool, db->dbd->handle, sql, name, &stmt);
    if (rv != 0) {
        *err = apr_psprintf(db->pool, "prepare %s: %s", label, db_error(db, rv));
        db_failed(db);
        return NULL;
    }
    apr_hash_set(c->stmts, apr_pstrdup(c->pool, label), APR_HASH_KEY_STRING, stmt);
    return stmt;
}

apr_status_t nebula_ap_db_exec(nebula_ap_db_t *db, const char *label, const char *sql,
                               int nargs, const char *const *args, int *affected,
                               const char **err)
{
    apr_dbd_prepared_t *stmt = db_stmt(db, label, sql, err);
    int rv, n = 0;

    db->fresh = 0;   /* a write is never sent twice */
    if (stmt == NULL) {
        return APR_EGENERAL;
    }
    writer_lock(db);
    rv = apr_dbd_pquery(db->dbd->driver, db->pool, db->dbd->handle, &n, stmt, nargs,
                        (const char **)args);
    if (!db->in_txn) {
        writer_unlock(db);
    }
    if (rv != 0) {
        *err = apr_psprintf(db->pool, "%s: %s", label, db_error(db, rv));
        db_failed(db);
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

static apr_status_t db_select_once(nebula_ap_db_t *db, const char *label, const char *sql,
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
        db_failed(db);
        return APR_EGENERAL;
    }
    copy_rows(db, res, rows);
    return APR_SUCCESS;
}

/* A plain query, which may be sent twice (not INSERT ... RETURNING). */
static int db_is_query(const char *sql)
{
    while (apr_isspace(*sql)) {
        ++sql;
    }
    return strncasecmp(sql, "SELECT", 6) == 0;
}

apr_status_t nebula_ap_db_select(nebula_ap_db_t *db, const char *label, const char *sql,
                                 int nargs, const char *const *args,
                                 nebula_dbd_rows_t *rows, const char **err)
{
    apr_status_t rv;

    do {
        rv = db_select_once(db, label, sql, nargs, args, rows, err);
    } while (rv != APR_SUCCESS && db_is_query(sql) && db_reborrow(db));
    db->fresh = 0;
    return rv;
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
    int rv;

    writer_lock(db);
    do {
        if (db->dbd == NULL) {
            *err = "no database connection";
            writer_unlock(db);
            return APR_EGENERAL;
        }
        /* a transaction run again after a forgotten statement (the caller's
         * retry) starts with fresh ones */
        db_cache_renew(db);
        rv = nebula_dbd_exec(db->dbd->driver, db->dbd->handle, sql, err, db->pool);
    } while (rv != 0 && db_reborrow(db));
    db->fresh = 0;
    db->in_txn = (rv == 0);
    if (rv != 0) {
        db_failed(db);
        writer_unlock(db);
    }
    return rv == 0 ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t nebula_ap_db_commit(nebula_ap_db_t *db, const char **err)
{
    int rv;

    if (db->dbd == NULL) {
        *err = "no database connection";
        return APR_EGENERAL;
    }
    rv = nebula_dbd_exec(db->dbd->driver, db->dbd->handle, "COMMIT", err, db->pool);
    if (rv != 0) {
        db_failed(db);
        nebula_ap_db_rollback(db);
        return APR_EGENERAL;
    }
    db->in_txn = 0;
    writer_unlock(db);
    return APR_SUCCESS;
}

/* One statement of a transaction's savepoint protocol; unprepared (some
 * drivers prepare only queries). */
static apr_status_t db_txn_stmt(nebula_ap_db_t *db, const char *sql, const char **err)
{
    if (db->dbd == NULL || !db->in_txn) {
        *err = "no transaction";
        return APR_EGENERAL;
    }
    return nebula_dbd_exec(db->dbd->driver, db->dbd->handle, sql, err, db->pool) == 0
               ? APR_SUCCESS
               : APR_EGENERAL;
}

apr_status_t nebula_ap_db_mark(nebula_ap_db_t *db, const char **err)
{
    return db_txn_stmt(db, "SAVEPOINT nebula_unit", err);
}

apr_status_t nebula_ap_db_keep(nebula_ap_db_t *db, const char **err)
{
    return db_txn_stmt(db, "RELEASE SAVEPOINT nebula_unit", err);
}

apr_status_t nebula_ap_db_undo(nebula_ap_db_t *db, const char **err)
{
    /* back to the mark, and the mark itself gone, as after a keep */
    if (db_txn_stmt(db, "ROLLBACK TO SAVEPOINT nebula_unit", err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return db_txn_stmt(db, "RELEASE SAVEPOINT nebula_unit", err);
}

apr_status_t nebula_ap_db_rollback(nebula_ap_db_t *db)
{
    const char *err = NULL;
    apr_status_t rv = APR_EGENERAL;

    db->in_txn = 0;
    if (db->dbd != NULL) {
        rv = nebula_dbd_exec(db->dbd->driver, db->dbd->handle, "ROLLBACK", &err, db->pool)
                 ? APR_EGENERAL
                 : APR_SUCCESS;
    }
    writer_unlock(db);
    return rv;
}

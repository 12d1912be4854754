/**
 * @file nebula_ap_db.h
 * @brief Short units of database work on a connection borrowed from mod_dbd.
 *
 * A request borrows a connection only for the statements or transaction it
 * needs (never for the life of a stream): nebula_ap_db_open() ...
 * nebula_ap_db_close(). Statements use apr_dbd's portable placeholders:
 * "%lld" for an integer parameter and "%s" for a text one (PostgreSQL
 * prepares them as bigint and varchar, so an integer column must be compared
 * with %lld); every parameter is passed as a string, NULL meaning SQL NULL.
 * A literal '%' in SQL is written "%%". Statements are prepared once per
 * connection and cached under their label, so the three dialects share one
 * SQL text wherever their syntax agrees.
 *
 * Result rows are copied into the caller's pool (nebula_dbd_rows_t); keep
 * result sets small (paginate).
 */
#ifndef NEBULA_AP_DB_H
#define NEBULA_AP_DB_H

#include <httpd.h>
#include <apr_dbd.h>
#include "nebula_dbd_dialect.h"

typedef struct nebula_ap_db_t nebula_ap_db_t;

/**
 * Borrow a connection for @a s. NULL when mod_dbd is not loaded or has no
 * connection (logged once per call with NEB00010); the caller answers 503.
 * The connection is given back by nebula_ap_db_close() or, at the latest,
 * when @a p is destroyed.
 *
 * A thread never borrows a second connection while it holds one: mod_dbd
 * lends without a timeout, so DBDMax threads doing so at once would wait
 * for ever. Give yours back before calling code that borrows (another
 * module's optional functions above all). A nested borrow is logged with
 * NEB00014 and where both borrows were made (@a at: the macro's file:line).
 */
nebula_ap_db_t *nebula_ap_db_open_at(apr_pool_t *p, server_rec *s, const char *at);
#define nebula_ap_db_open(p, s) nebula_ap_db_open_at((p), (s), __FILE__ ":" APR_STRINGIFY(__LINE__))

/** Give the connection back (rolls back an open transaction first). */
void nebula_ap_db_close(nebula_ap_db_t *db);

/** The host's borrows of database connections, every module and process
 *  together (shared memory the parent creates at start-up; they start
 *  again from 0 at a restart). */
typedef struct {
    apr_uint32_t borrowed;     /**< connections lent out now */
    apr_uint64_t borrows;      /**< borrows that got a connection */
    apr_uint64_t failures;     /**< borrows that got none (NEB00010) */
    apr_uint64_t nested;       /**< borrows by a thread that held one (NEB00014) */
} nebula_ap_db_stats_t;

/** Read the counters (all 0 before post_config). */
void nebula_ap_db_stats(nebula_ap_db_stats_t *out);

/** The dialect of the connection, for the few statements that differ. */
nebula_dbd_dialect_e nebula_ap_db_dialect(const nebula_ap_db_t *db);

/**
 * Run a statement that returns no rows.
 * @param label   names the statement in the per-connection cache (unique
 *                per SQL text; e.g. "relay_key_touch")
 * @param sql     with %s for each of the @a nargs parameters
 * @param affected if not NULL, set to the number of rows changed
 * @param err     on failure, the driver's message, allocated in the pool
 *                the connection was opened with
 * @return APR_SUCCESS or APR_EGENERAL
 */
apr_status_t nebula_ap_db_exec(nebula_ap_db_t *db, const char *label, const char *sql,
                               int nargs, const char *const *args, int *affected,
                               const char **err);

/** Run a SELECT and copy all its rows (see nebula_dbd_rows_t). */
apr_status_t nebula_ap_db_select(nebula_ap_db_t *db, const char *label, const char *sql,
                                 int nargs, const char *const *args,
                                 nebula_dbd_rows_t *rows, const char **err);

/**
 * Run an INSERT into a table whose key column is "id" and return the new
 * id (RETURNING on PostgreSQL, last_insert_rowid() / LAST_INSERT_ID() on
 * the same connection elsewhere). @a sql must not end with ';'.
 */
apr_status_t nebula_ap_db_insert(nebula_ap_db_t *db, const char *label, const char *sql,
                                 int nargs, const char *const *args, apr_int64_t *id,
                                 const char **err);

/** Transactions: BEGIN (IMMEDIATE on SQLite, so writers queue at once). */
apr_status_t nebula_ap_db_begin(nebula_ap_db_t *db, const char **err);
apr_status_t nebula_ap_db_commit(nebula_ap_db_t *db, const char **err);
apr_status_t nebula_ap_db_rollback(nebula_ap_db_t *db);

/**
 * A savepoint inside a transaction, for work that must be undone without
 * undoing the rest (several units of work sharing one transaction): mark,
 * then keep (release the mark) or undo back to it. One mark at a time.
 * When undoing fails the transaction is lost (MySQL ends the whole
 * transaction on a deadlock): the caller rolls back and starts again.
 */
apr_status_t nebula_ap_db_mark(nebula_ap_db_t *db, const char **err);
apr_status_t nebula_ap_db_keep(nebula_ap_db_t *db, const char **err);
apr_status_t nebula_ap_db_undo(nebula_ap_db_t *db, const char **err);

/** Row @a i, column @a j of @a rows as a 64-bit integer (0 for NULL/""). */
apr_int64_t nebula_ap_db_int(const nebula_dbd_rows_t *rows, int i, int j);

#endif /* NEBULA_AP_DB_H */

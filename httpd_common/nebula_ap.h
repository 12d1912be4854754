/**
 * @file nebula_ap.h
 * @brief httpd glue that all three NebulaGate modules share: the bridge from
 *        the library's log callback to the error log, OpenAI-shaped error
 *        responses, and the database bootstrap through mod_dbd.
 *
 * Linked statically into each module (libnebula_httpd.la); nothing here is
 * exported from a DSO. Functions that log take the calling module's index so
 * that per-module LogLevel applies.
 */
#ifndef NEBULA_AP_H
#define NEBULA_AP_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

/**
 * The common part of a module's post_config: during httpd's dry-run pass it
 * returns non-zero (the caller returns OK at once); otherwise it routes the
 * library's log to the module and returns 0.
 */
int nebula_ap_post_config(server_rec *s, int module_index);

/** The common part of a module's child_init: log bridge, DB bootstrap. */
void nebula_ap_child_init(apr_pool_t *pchild, server_rec *s, int module_index);

/**
 * Register @a child_init (which must call nebula_ap_child_init()) after
 * mod_dbd's, and the SQLite connection setup; call from register_hooks.
 */
void nebula_ap_register_hooks(ap_HOOK_child_init_t *child_init);

/**
 * Route libnebula_common's messages (nebula_log.h) to the error log of
 * @a s under module @a module_index. Call in post_config and child_init.
 */
void nebula_ap_log_bridge(server_rec *s, int module_index);

/**
 * The request note that names the client's protocol family for error bodies:
 * "anthropic" or "gemini"; unset means OpenAI's shape.
 */
#define NEBULA_AP_NOTE_API "nebula-api"

/**
 * Send a JSON error in the client's protocol (NEBULA_AP_NOTE_API; OpenAI's
 * shape by default). Returns DONE (the answer is sent; httpd
 * treats DONE from a handler as OK), so that callers can tell "refused" from
 * OK ("go on").
 * @param status  HTTP status (400, 401, 403, 404, 413, 415, 429, 500, 502 ...)
 * @param type    OpenAI error "type" (invalid_request_error, ...)
 * @param code    OpenAI error "code", or NULL for JSON null
 * @param param   the offending parameter, or NULL
 */
int nebula_ap_error(request_rec *r, int status, const char *type, const char *code,
                    const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** State of the database schema in this child process. */
typedef enum {
    NEBULA_AP_DB_NONE = 0,  /**< mod_dbd not loaded: the module runs without a DB */
    NEBULA_AP_DB_READY,     /**< schema at the latest version */
    NEBULA_AP_DB_FAILED     /**< mod_dbd loaded, but the schema could not be made current */
} nebula_ap_db_state_e;

/**
 * Make sure the database mod_dbd gives @a s carries the latest schema,
 * applying pending migrations under the database's own lock. Runs once per
 * child process however many NebulaGate modules call it (the result is kept
 * in the process pool, which every module of the child shares).
 * Call from child_init, after mod_dbd's child_init.
 */
nebula_ap_db_state_e nebula_ap_db_ensure(apr_pool_t *pchild, server_rec *s,
                                         int module_index);

/** Register for mod_dbd's post_connect (SQLite per-connection settings);
 *  call from each module's register_hooks. */
void nebula_ap_db_register_hooks(void);
/* The host-wide database borrow counters (nebula_ap_db_stats()): their
 * shared memory, made in post_config. */
void nebula_ap_db_stats_register(void);

/**
 * In child_init, after nebula_ap_db_ensure(): joins this module's SQLite
 * writers to the process's one queue and, through a lock file next to the
 * database, to every other process's (see nebula_ap_db.c).
 */
void nebula_ap_db_writer_attach(apr_pool_t *pchild, server_rec *s);

/** The state nebula_ap_db_ensure() left for this process. */
nebula_ap_db_state_e nebula_ap_db_state(server_rec *s);

/**
 * Parse a directive's duration: a whole number with an optional unit ms,
 * s (the default), m / mi / min, or h, within [@a min, @a max].
 * @return 1 and *@a out set, or 0 when @a arg is not such a duration
 */
int nebula_ap_duration(const char *arg, apr_interval_time_t min, apr_interval_time_t max,
                       apr_interval_time_t *out);

#endif /* NEBULA_AP_H */

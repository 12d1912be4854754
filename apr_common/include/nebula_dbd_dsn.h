/**
 * @file nebula_dbd_dsn.h
 * @brief Translate a database URL (the Docker image's SQL_DSN, nebulactl
 *        --dsn) into an apr_dbd driver name and parameter string.
 *
 * Pure string logic over APR (no connection is made), unit-tested alone.
 *
 * Accepted forms and what they become:
 *  - sqlite:/path/file.db, sqlite:///path/file.db, sqlite:relative.db
 *    (also "sqlite3:") -> driver "sqlite3", params = the path as written.
 *  - postgres://user:pass@host:port/db?key=value (also "postgresql://")
 *    -> driver "pgsql", params = a libpq conninfo string
 *    "host='h' port='p' user='u' password='x' dbname='d' key='value'"
 *    (values single-quoted, ' and \ backslash-escaped; IPv6 hosts in [..]).
 *    Query keys are passed to libpq as they are (sslmode, connect_timeout...).
 *  - mysql://user:pass@host:port/db?socket=/path (also "mariadb://")
 *    -> driver "mysql", params "host=h port=p user=u pass=x dbname=d sock=s".
 *    apr_dbd_mysql splits values on any of " \t\r\n;|," and has no quoting,
 *    and an '=' inside a value corrupts its key parsing, so a value
 *    containing one of those characters is refused with a clear error.
 *    Query keys: socket/unix_socket/sock, and the driver's own flags, fldsz,
 *    group, reconnect.
 *  - user:pass@tcp(host:port)/db?... and user:pass@unix(/path)/db (the Go
 *    MySQL driver form new-api's SQL_DSN uses) -> as mysql:// (Go-only
 *    query options such as parseTime or charset are ignored).
 * In the URL forms, user, password, host, database and query values are
 * percent-decoded. With MySQL clients, host "localhost" means the default
 * Unix socket; use 127.0.0.1 for TCP.
 */
#ifndef NEBULA_DBD_DSN_H
#define NEBULA_DBD_DSN_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "nebula_dbd_dialect.h"

/** A parsed DSN; every string is allocated in the pool given to the parser. */
typedef struct {
    nebula_dbd_dialect_e dialect; /**< which dialect */
    const char *driver;           /**< apr_dbd driver name (DBDriver) */
    const char *params;           /**< apr_dbd parameters (DBDParams); secret */
    const char *redacted;         /**< the DSN with the password as "***", for logs */
} nebula_dbd_dsn_t;

/**
 * Parse @a dsn.
 * @param out filled in on success
 * @param errmsg on failure, a message (never containing the password)
 *        allocated in @a pool
 * @return APR_SUCCESS, or APR_EINVAL with @a errmsg set
 */
apr_status_t nebula_dbd_dsn_parse(const char *dsn, nebula_dbd_dsn_t *out,
                                  const char **errmsg, apr_pool_t *pool);

#endif /* NEBULA_DBD_DSN_H */

/* nebula_dbd_dsn.c: database URL -> apr_dbd driver + parameter string (see
 * nebula_dbd_dsn.h for the accepted forms). Pure string work in the
 * caller's pool; error messages never repeat the password. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_lib.h>

#include "nebula_dbd_dsn.h"

/* apr_dbd_mysql.c splits values on these and cannot quote them */
#define MYSQL_PARAM_BAD_CHARS " \t\r\n;|,="

typedef struct {
    const char *key;
    const char *value;
} kv_t;

/* The parts of a scheme://user:pass@host:port/db?query URL, decoded. */
typedef struct {
    const char *scheme;
    const char *user;
    const char *pass;
    const char *host;
    const char *port;
    const char *db;
    apr_array_header_t *query; /* kv_t */
    apr_size_t pass_off;       /* raw password span in the DSN, for redaction */
    apr_size_t pass_len;
} url_t;

static apr_status_t fail(const char **errmsg, apr_pool_t *pool, const char *fmt,
                         const char *arg)
{
    *errmsg = apr_psprintf(pool, fmt, arg);
    return APR_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = apr_tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n); NULL when a %XX escape is malformed or yields NUL. */
static const char *pct_decode(const char *s, apr_size_t n, apr_pool_t *pool)
{
    char *out = apr_palloc(pool, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = (i + 1 < n) ? hexval(s[i + 1]) : -1;
            int lo = (hi >= 0 && i + 2 < n) ? hexval(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static apr_status_t parse_query(const char *q, url_t *u, const char **errmsg,
                                apr_pool_t *pool)
{
    u->query = apr_array_make(pool, 4, sizeof(kv_t));
    while (q && *q) {
        apr_size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        kv_t *kv;

        if (len > 0) {
            if (eq == NULL || eq == q) {
                return fail(errmsg, pool, "query parameter '%s' is not key=value",
                            apr_pstrmemdup(pool, q, len));
            }
            kv = apr_array_push(u->query);
            kv->key = pct_decode(q, eq - q, pool);
            kv->value = pct_decode(eq + 1, q + len - eq - 1, pool);
            if (kv->key == NULL || kv->value == NULL) {
                return fail(errmsg, pool, "%s", "bad %-escape in the query string");
            }
        }
        q += len + (q[len] == '&');
    }
    return APR_SUCCESS;
}

static apr_status_t parse_hostport(const char *s, apr_size_t n, url_t *u,
                                   const char **errmsg, apr_pool_t *pool)
{
    const char *colon, *end = s + n;

    if (n > 0 && s[0] == '[') { /* IPv6 literal */
        const char *rb = memchr(s, ']', n);

        if (rb == NULL) {
            return fail(errmsg, pool, "%s", "unterminated '[' in the host");
        }
        u->host = apr_pstrmemdup(pool, s + 1, rb - s - 1);
        colon = (rb + 1 < end && rb[1] == ':') ? rb + 1 : NULL;
        if (rb + 1 < end && colon == NULL) {
            return fail(errmsg, pool, "%s", "unexpected text after ']' in the host");
        }
    }
    else {
        colon = memchr(s, ':', n);
        u->host = pct_decode(s, colon ? (apr_size_t)(colon - s) : n, pool);
    }
    if (u->host == NULL) {
        return fail(errmsg, pool, "%s", "bad %-escape in the host");
    }
    if (colon != NULL) {
        const char *p = colon + 1;
        apr_size_t plen = end - p;
        long port = plen > 0 && plen <= 5 && strspn(p, "0123456789") >= plen
                        ? strtol(apr_pstrmemdup(pool, p, plen), NULL, 10)
                        : 0;

        if (port < 1 || port > 65535) {
            return fail(errmsg, pool, "bad port '%s'", apr_pstrmemdup(pool, p, plen));
        }
        u->port = apr_pstrmemdup(pool, p, plen);
    }
    return APR_SUCCESS;
}

static apr_status_t parse_userinfo(const char *dsn, const char *s, apr_size_t n, url_t *u,
                                   const char **errmsg, apr_pool_t *pool)
{
    const char *colon = memchr(s, ':', n);
    apr_size_t ulen = colon ? (apr_size_t)(colon - s) : n;

    u->user = pct_decode(s, ulen, pool);
    if (colon != NULL) {
        u->pass_off = (colon + 1) - dsn;
        u->pass_len = n - ulen - 1;
        u->pass = pct_decode(colon + 1, u->pass_len, pool);
    }
    if (u->user == NULL || (colon && u->pass == NULL)) {
        return fail(errmsg, pool, "%s", "bad %-escape in the user or password");
    }
    return APR_SUCCESS;
}

/* Split dsn = scheme://[userinfo@]hostport[/db][?query]. */
static apr_status_t parse_url(const char *dsn, const char *rest, url_t *u,
                              const char **errmsg, apr_pool_t *pool)
{
    apr_size_t alen = strcspn(rest, "/?");
    const char *at = NULL, *p, *path, *q;
    apr_status_t rv;

    for (p = rest; p < rest + alen; p++) {
        at = (*p == '@') ? p : at; /* the last '@': passwords may hold one */
    }
    if (at != NULL &&
        (rv = parse_userinfo(dsn, rest, at - rest, u, errmsg, pool)) != APR_SUCCESS) {
        return rv;
    }
    p = at ? at + 1 : rest;
    if ((rv = parse_hostport(p, rest + alen - p, u, errmsg, pool)) != APR_SUCCESS) {
        return rv;
    }
    path = rest + alen;
    q = strchr(path, '?');
    if (*path == '/') {
        apr_size_t dlen = (q ? (apr_size_t)(q - path) : strlen(path)) - 1;

        if (memchr(path + 1, '/', dlen) != NULL) {
            return fail(errmsg, pool, "%s", "the database name contains '/'");
        }
        u->db = dlen ? pct_decode(path + 1, dlen, pool) : NULL;
        if (dlen && u->db == NULL) {
            return fail(errmsg, pool, "%s", "bad %-escape in the database name");
        }
    }
    return parse_query(q ? q + 1 : NULL, u, errmsg, pool);
}

static const char *redact(const char *dsn, const url_t *u, apr_pool_t *pool)
{
    if (u->pass_len == 0) {
        return apr_pstrdup(pool, dsn);
    }
    return apr_pstrcat(pool, apr_pstrmemdup(pool, dsn, u->pass_off), "***",
                       dsn + u->pass_off + u->pass_len, NULL);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

static void pg_add(apr_array_header_t *parts, const char *key, const char *value,
                   apr_pool_t *pool)
{
    apr_size_t n, i;
    char *q, *o;

    if (value == NULL) {
        return;
    }
    n = strlen(value);
    q = o = apr_palloc(pool, 2 * n + 1);
    for (i = 0; i < n; i++) {
        if (value[i] == '\'' || value[i] == '\\') {
            *o++ = '\\';
        }
        *o++ = value[i];
    }
    *o = '\0';
    APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(pool, "%s='%s'", key, q);
}

static apr_status_t build_pgsql(const url_t *u, nebula_dbd_dsn_t *out,
                                const char **errmsg, apr_pool_t *pool)
{
    apr_array_header_t *parts = apr_array_make(pool, 8, sizeof(const char *));
    int i;

    if (u->host && *u->host) {
        pg_add(parts, "host", u->host, pool);
    }
    if (u->port) {
        pg_add(parts, "port", u->port, pool);
    }
    if (u->user && *u->user) {
        pg_add(parts, "user", u->user, pool);
    }
    if (u->pass) {
        pg_add(parts, "password", u->pass, pool);
    }
    if (u->db) {
        pg_add(parts, "dbname", u->db, pool);
    }
    for (i = 0; i < u->query->nelts; i++) {
        const kv_t *kv = &APR_ARRAY_IDX(u->query, i, kv_t);

        if (strspn(kv->key, "abcdefghijklmnopqrstuvwxyz_") != strlen(kv->key) ||
            strcmp(kv->key, "password") == 0) {
            return fail(errmsg, pool,
                        "unsupported PostgreSQL parameter '%s' (give "
                        "the password in user:password@)",
                        kv->key);
        }
        pg_add(parts, kv->key, kv->value, pool);
    }
    out->dialect = NEBULA_DBD_PGSQL;
    out->driver = "pgsql";
    out->params = apr_array_pstrcat(pool, parts, ' ');
    return APR_SUCCESS;
}

/* ---- MySQL / MariaDB ------------------------------------------------------- */

static apr_status_t mysql_add(apr_array_header_t *parts, const char *key,
                              const char *value, const char **errmsg, apr_pool_t *pool)
{
    const char *what = strcmp(key, "pass") == 0     ? "password"
                       : strcmp(key, "dbname") == 0 ? "database name"
                       : strcmp(key, "sock") == 0   ? "socket path"
                                                    : key;

    if (value == NULL || *value == '\0') {
        return APR_SUCCESS;
    }
    if (value[strcspn(value, MYSQL_PARAM_BAD_CHARS)] != '\0') {
        return fail(errmsg, pool,
                    "the MySQL %s contains a character apr_dbd_mysql "
                    "cannot take (space, tab, newline, ; | , =): choose another "
                    "value",
                    what);
    }
    APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(pool, "%s=%s", key, value);
    return APR_SUCCESS;
}

static const char *mysql_query_key(const char *key)
{
    static const char *const own[] = {"sock", "flags", "fldsz", "group", "reconnect"};
    apr_size_t i;

    if (strcmp(key, "socket") == 0 || strcmp(key, "unix_socket") == 0) {
        return "sock";
    }
    for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (strcmp(key, own[i]) == 0) {
            return own[i];
        }
    }
    return NULL;
}

static apr_status_t build_mysql(const url_t *u, int go_form, nebula_dbd_dsn_t *out,
                                const char **errmsg, apr_pool_t *pool)
{
    apr_array_header_t *parts = apr_array_make(pool, 8, sizeof(const char *));
    const char *fields[][2] = {{"host", u->host},
                               {"port", u->port},
                               {"user", u->user},
                               {"pass", u->pass},
                               {"dbname", u->db}};
    apr_size_t i;
    int j, reconnect_given = 0, flags_given = 0;

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (mysql_add(parts, fields[i][0], fields[i][1], errmsg, pool)) {
            return APR_EINVAL;
        }
    }
    for (j = 0; j < u->query->nelts; j++) {
        const kv_t *kv = &APR_ARRAY_IDX(u->query, j, kv_t);
        const char *key = mysql_query_key(kv->key);

        if (key == NULL && go_form && !strcmp(kv->key, "tls") && strcmp(kv->value, "false")) {
            return fail(errmsg, pool,
                        "tls=%s: apr_dbd_mysql connects without TLS (use tls=false, "
                        "or a TLS tunnel to the server)",
                        kv->value);
        }
        if (key == NULL && go_form) {
            continue; /* Go driver options (parseTime, charset, loc...) */
        }
        if (key == NULL) {
            return fail(errmsg, pool,
                        "unsupported MySQL parameter '%s' (use socket, "
                        "flags, fldsz, group or reconnect)",
                        kv->key);
        }
        if (!strcmp(key, "flags") && strcmp(kv->value, "CLIENT_FOUND_ROWS")) {
            return fail(errmsg, pool,
                        "MySQL flags must be CLIENT_FOUND_ROWS (NebulaGate counts the "
                        "rows an UPDATE matched), not '%s'",
                        kv->value);
        }
        if (mysql_add(parts, key, kv->value, errmsg, pool)) {
            return APR_EINVAL;
        }
        reconnect_given |= !strcmp(key, "reconnect");
        flags_given |= !strcmp(key, "flags");
    }
    /* A reconnect inside mysql_ping would keep the handle but lose every
     * statement prepared on it; without it, mod_dbd replaces a dead
     * connection with a new one (docs/design-notes.md). */
    if (!reconnect_given) {
        APR_ARRAY_PUSH(parts, const char *) = "reconnect=0";
    }
    /* UPDATE reports the rows it matched, as on SQLite and PostgreSQL, not
     * only those it changed: a hold on an unlimited key changes nothing */
    if (!flags_given) {
        APR_ARRAY_PUSH(parts, const char *) = "flags=CLIENT_FOUND_ROWS";
    }
    out->dialect = NEBULA_DBD_MYSQL;
    out->driver = "mysql";
    out->params = apr_array_pstrcat(pool, parts, ' ');
    return APR_SUCCESS;
}

/* user:pass@tcp(host:port)/db?opts or user:pass@unix(/path)/db?opts */
static apr_status_t parse_go_mysql(const char *dsn, url_t *u, const char **errmsg,
                                   apr_pool_t *pool)
{
    const char *proto = strstr(dsn, "tcp(") ? strstr(dsn, "tcp(") : strstr(dsn, "unix(");
    const char *open = strchr(proto, '('), *close = strchr(open, ')');
    const char *path, *q;
    apr_status_t rv;

    if (proto > dsn && proto[-1] != '@') {
        return fail(errmsg, pool, "%s", "expected user:password@ before the address");
    }
    if (proto > dsn) {
        u->user = apr_pstrmemdup(pool, dsn, proto - 1 - dsn);
        if ((path = strchr(u->user, ':')) != NULL) {
            u->pass_off = path + 1 - u->user;
            u->pass_len = strlen(path + 1);
            u->pass = path + 1;
            u->user = apr_pstrmemdup(pool, u->user, path - u->user);
        }
    }
    if (close == NULL) {
        return fail(errmsg, pool, "%s", "missing ')' after the address");
    }
    if (*proto == 'u') {
        u->query = apr_array_make(pool, 2, sizeof(kv_t));
        APR_ARRAY_PUSH(u->query, kv_t) =
            (kv_t){"sock", apr_pstrmemdup(pool, open + 1, close - open - 1)};
    }
    else if ((rv = parse_hostport(open + 1, close - open - 1, u, errmsg, pool))) {
        return rv;
    }
    path = (close[1] == '/') ? close + 2 : NULL;
    q = strchr(close, '?');
    if (path) {
        u->db = apr_pstrmemdup(pool, path, q ? (apr_size_t)(q - path) : strlen(path));
    }
    if (*proto == 'u') {
        return APR_SUCCESS; /* the socket is the only option we keep */
    }
    return parse_query(q ? q + 1 : NULL, u, errmsg, pool);
}

/* ---- entry point ------------------------------------------------------------ */

/* The Go form with its address, or NULL when dsn is not that form:
 * user:pass@/db (no address) is the Go driver's TCP to 127.0.0.1:3306, not
 * the client library's default socket. */
static const char *go_mysql_form(const char *dsn, apr_pool_t *pool)
{
    const char *at = strstr(dsn, "@/");

    if (strstr(dsn, "://") != NULL) {
        return NULL;
    }
    if (strstr(dsn, "tcp(") || strstr(dsn, "unix(")) {
        return dsn;
    }
    return at ? apr_pstrcat(pool, apr_pstrmemdup(pool, dsn, at + 1 - dsn),
                            "tcp(127.0.0.1:3306)", at + 1, NULL)
              : NULL;
}

static apr_status_t parse_sqlite(const char *path, nebula_dbd_dsn_t *out,
                                 const char **errmsg, apr_pool_t *pool)
{
    if (strncmp(path, "//", 2) == 0) {
        path += 2; /* sqlite:///abs/path -> /abs/path */
    }
    if (*path == '\0') {
        return fail(errmsg, pool, "%s", "sqlite DSN without a file path");
    }
    out->dialect = NEBULA_DBD_SQLITE;
    out->driver = "sqlite3";
    out->params = apr_pstrdup(pool, path);
    return APR_SUCCESS;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

apr_status_t nebula_dbd_dsn_parse(const char *dsn, nebula_dbd_dsn_t *out,
                                  const char **errmsg, apr_pool_t *pool)
{
    url_t u;
    apr_status_t rv;
    const char *go;
    int pg;

    memset(out, 0, sizeof(*out));
    memset(&u, 0, sizeof(u));
    if (dsn == NULL || *dsn == '\0') {
        return fail(errmsg, pool, "%s", "empty DSN");
    }
    if (has_prefix(dsn, "sqlite:") || has_prefix(dsn, "sqlite3:")) {
        out->redacted = apr_pstrdup(pool, dsn);
        return parse_sqlite(strchr(dsn, ':') + 1, out, errmsg, pool);
    }
    pg = has_prefix(dsn, "postgres://") || has_prefix(dsn, "postgresql://");
    if (pg || has_prefix(dsn, "mysql://") || has_prefix(dsn, "mariadb://")) {
        rv = parse_url(dsn, strstr(dsn, "://") + 3, &u, errmsg, pool);
        if (rv == APR_SUCCESS) {
            rv = pg ? build_pgsql(&u, out, errmsg, pool)
                    : build_mysql(&u, 0, out, errmsg, pool);
        }
    }
    else if ((go = go_mysql_form(dsn, pool)) != NULL) {
        u.query = apr_array_make(pool, 1, sizeof(kv_t));
        rv = parse_go_mysql(go, &u, errmsg, pool);
        if (rv == APR_SUCCESS) {
            rv = build_mysql(&u, 1, out, errmsg, pool);
        }
    }
    else {
        return fail(errmsg, pool, "%s",
                    "unrecognised DSN: use sqlite:/path/file.db, "
                    "postgres://user:pass@host:port/db or "
                    "mysql://user:pass@host:port/db");
    }
    if (rv == APR_SUCCESS) {
        out->redacted = redact(dsn, &u, pool);
    }
    else {
        *errmsg = apr_psprintf(pool, "bad DSN: %s", *errmsg);
    }
    return rv;
}

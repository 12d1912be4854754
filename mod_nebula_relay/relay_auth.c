/* relay_auth.c: client keys. Finds the key a request presents, by its
 * SHA-256 (keys are never stored in clear), through a per-process cache that
 * expires entries after NebulaCacheTTL and is dropped whenever the host-wide
 * generation changes (relay_gen); then checks the key and its owner. */
#include <apr_strings.h>
#include <apr_network_io.h>
#include <apr_thread_rwlock.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_apikey.h"
#include "nebula_json.h"

#define KEY_COLS 16
#define CACHE_MAX_ENTRIES 20000
#define NEGATIVE_TTL apr_time_from_sec(5)

typedef struct {
    const char **row; /* KEY_COLS strings, NULL when the key does not exist */
    apr_time_t loaded;
} cache_entry_t;

static struct {
    apr_pool_t *pool;  /* entries; cleared when the generation changes */
    apr_hash_t *map;   /* key hash -> cache_entry_t */
    apr_uint32_t gen;
    int inserted;
#if APR_HAS_THREADS
    apr_thread_rwlock_t *lock;
#endif
} cache;

apr_status_t relay_auth_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_pool_create(&cache.pool, pchild);
    apr_pool_tag(cache.pool, "nebula_key_cache");
    cache.map = apr_hash_make(cache.pool);
    cache.gen = relay_gen_current();
#if APR_HAS_THREADS
    return apr_thread_rwlock_create(&cache.lock, pchild);
#else
    return APR_SUCCESS;
#endif
}

static const char *const key_sql =
    "SELECT k.id, k.user_id, k.name, k.status, k.key_group, k.expires_at, "
    "k.remain_quota, k.unlimited_quota, k.used_quota, k.allowed_models, k.allowed_ips, "
    "k.max_body_bytes, u.username, u.role, u.status, u.user_group "
    "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = %s";

/* Copy a cached row into the request pool (under the read lock). */
static const char **row_copy(apr_pool_t *p, const char **row)
{
    const char **out;
    int i;

    if (row == NULL) {
        return NULL;
    }
    out = apr_palloc(p, sizeof(char *) * KEY_COLS);
    for (i = 0; i < KEY_COLS; ++i) {
        out[i] = row[i] ? apr_pstrdup(p, row[i]) : NULL;
    }
    return out;
}

static int cache_get(request_rec *r, const char *hash, apr_uint32_t gen,
                     const char ***row)
{
    apr_interval_time_t ttl = relay_config_srv(r->server)->cache_ttl;
    cache_entry_t *e;
    int hit = 0;

#if APR_HAS_THREADS
    apr_thread_rwlock_rdlock(cache.lock);
#endif
    if (cache.gen == gen && (e = apr_hash_get(cache.map, hash, APR_HASH_KEY_STRING))) {
        apr_interval_time_t age = apr_time_now() - e->loaded;
        if (age < (e->row ? ttl : (ttl < NEGATIVE_TTL ? ttl : NEGATIVE_TTL))) {
            *row = row_copy(r->pool, e->row);
            hit = 1;
        }
    }
#if APR_HAS_THREADS
    apr_thread_rwlock_unlock(cache.lock);
#endif
    return hit;
}

static void cache_put(const char *hash, apr_uint32_t gen, const char **row)
{
    cache_entry_t *e;

#if APR_HAS_THREADS
    apr_thread_rwlock_wrlock(cache.lock);
#endif
    if (cache.gen != gen || cache.inserted >= CACHE_MAX_ENTRIES) {
        apr_pool_clear(cache.pool);
        cache.map = apr_hash_make(cache.pool);
        cache.gen = gen;
        cache.inserted = 0;
    }
    e = apr_palloc(cache.pool, sizeof(*e));
    e->row = row_copy(cache.pool, row);
    e->loaded = apr_time_now();
    apr_hash_set(cache.map, apr_pstrdup(cache.pool, hash), APR_HASH_KEY_STRING, e);
    cache.inserted++;
#if APR_HAS_THREADS
    apr_thread_rwlock_unlock(cache.lock);
#endif
}

/* The key row for @a hash: cache, else database (then *@a loaded is set).
 * APR_EGENERAL when the database cannot be asked. */
static apr_status_t key_row(request_rec *r, const char *hash, const char ***row, int *loaded)
{
    apr_uint32_t gen = relay_gen_current();
    nebula_ap_db_t *db;
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    const char *args[1];

    *loaded = 0;
    if (cache_get(r, hash, gen, row)) {
        return APR_SUCCESS;
    }
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return APR_EGENERAL;
    }
    args[0] = hash;
    if (nebula_ap_db_select(db, "relay_key_by_hash", key_sql, 1, args, &rows, &err)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "NEB01020: key lookup failed: %s", err);
        nebula_ap_db_close(db);
        return APR_EGENERAL;
    }
    nebula_ap_db_close(db);
    *row = rows.nrows == 1 && rows.ncols == KEY_COLS ? rows.rows[0] : NULL;
    cache_put(hash, gen, *row);
    *loaded = 1;
    return APR_SUCCESS;
}

/* @a s with the value of every "key=" argument (at the start, or after '?' or
 * '&') replaced by "REDACTED"; @a s itself when it has none. */
static char *redact_key_arg(apr_pool_t *p, char *s)
{
    char *q, *out = NULL, *o = NULL;
    const char *from = s;

    for (q = s; q && (q = strstr(q, "key=")) != NULL; q += 4) {
        if (q != s && q[-1] != '?' && q[-1] != '&') {
            continue;
        }
        if (out == NULL) {
            /* each "key=" (4 bytes at least) grows by 8 at most */
            out = o = apr_palloc(p, strlen(s) * 3 + 9);
        }
        memcpy(o, from, (apr_size_t)(q + 4 - from));
        o += q + 4 - from;
        memcpy(o, "REDACTED", 8);
        o += 8;
        from = q + 4 + strcspn(q + 4, "& #");
    }
    if (out == NULL) {
        return s;
    }
    strcpy(o, from);
    return out;
}

/* A key sent as ?key= (Gemini's REST form) leaves what httpd logs: the request
 * line (%r), the query (%q) and the URI; nothing after auth reads it there. */
static void redact_query_key(request_rec *r)
{
    r->args = redact_key_arg(r->pool, r->args);
    r->parsed_uri.query = redact_key_arg(r->pool, r->parsed_uri.query);
    r->unparsed_uri = redact_key_arg(r->pool, r->unparsed_uri);
    r->the_request = redact_key_arg(r->pool, r->the_request);
    if (r->main == NULL && r->prev == NULL) {
        return;
    }
    /* mod_log_config logs the original request's line */
    for (r = r->main ? r->main : r->prev; r; r = r->main ? r->main : r->prev) {
        r->the_request = redact_key_arg(r->pool, r->the_request);
        r->args = redact_key_arg(r->pool, r->args);
    }
}

/* The credential, from the headers each supported SDK uses. */
static const char *credential(request_rec *r)
{
    const char *v = apr_table_get(r->headers_in, "Authorization");
    const char *q;

    if (v && !ap_cstr_casecmpn(v, "Bearer ", 7)) {
        v += 7;
        while (*v == ' ') {
            ++v;
        }
        return *v ? v : NULL;
    }
    if ((v = apr_table_get(r->headers_in, "x-api-key")) && *v) {
        return v;
    }
    if ((v = apr_table_get(r->headers_in, "x-goog-api-key")) && *v) {
        return v;
    }
    if (r->args && (q = strstr(apr_pstrcat(r->pool, "&", r->args, NULL), "&key="))) {
        char *k = apr_pstrdup(r->pool, q + 5), *amp = strchr(k, '&');
        if (amp) {
            *amp = '\0';
        }
        ap_unescape_url(k);
        redact_query_key(r);
        return *k ? k : NULL;
    }
    return NULL;
}

/* "sk-KEY-CHANNELID": an admin forcing a channel (new-api's form). */
static int split_forced_channel(apr_pool_t *p, const char *cred, const char **secret,
                                apr_int64_t *channel)
{
    const char *s = nebula_apikey_secret(cred), *dash = strchr(s, '-');
    char *end;

    *channel = 0;
    *secret = s;
    if (dash == NULL) {
        return 1;
    }
    *channel = apr_strtoi64(dash + 1, &end, 10);
    if (dash[1] == '\0' || *end != '\0' || *channel <= 0) {
        return 0;
    }
    *secret = apr_pstrndup(p, s, (apr_size_t)(dash - s));
    return 1;
}

static apr_array_header_t *json_strings(apr_pool_t *p, const char *text)
{
    json_t *j, *el;
    apr_array_header_t *a;
    size_t i;

    if (text == NULL || *text == '\0' || (j = nebula_json_parse(p, text, strlen(text), 0,
                                                                NULL)) == NULL
        || !json_is_array(j) || json_array_size(j) == 0) {
        return NULL;
    }
    a = apr_array_make(p, (int)json_array_size(j), sizeof(const char *));
    json_array_foreach(j, i, el)
    {
        if (json_is_string(el)) {
            APR_ARRAY_PUSH(a, const char *) = apr_pstrdup(p, json_string_value(el));
        }
    }
    return a;
}

static apr_array_header_t *ip_subnets(request_rec *r, const char *text)
{
    apr_array_header_t *in = json_strings(r->pool, text), *out;
    int i;

    if (in == NULL) {
        return NULL;
    }
    out = apr_array_make(r->pool, in->nelts, sizeof(apr_ipsubnet_t *));
    for (i = 0; i < in->nelts; ++i) {
        char *ip = apr_pstrdup(r->pool, APR_ARRAY_IDX(in, i, const char *));
        char *mask = strchr(ip, '/');
        apr_ipsubnet_t *sub;

        if (mask) {
            *mask++ = '\0';
        }
        if (apr_ipsubnet_create(&sub, ip, mask, r->pool) == APR_SUCCESS) {
            APR_ARRAY_PUSH(out, apr_ipsubnet_t *) = sub;
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "NEB01021: ignoring malformed allowed IP '%s' of a key",
                          APR_ARRAY_IDX(in, i, const char *));
        }
    }
    return out;
}

static relay_key_t *key_from_row(request_rec *r, const char **row)
{
    relay_key_t *k = apr_pcalloc(r->pool, sizeof(*k));

    k->id = apr_atoi64(row[0]);
    k->user_id = apr_atoi64(row[1]);
    k->name = row[2] ? row[2] : "";
    k->group = row[4] && *row[4] ? row[4] : (row[15] ? row[15] : "default");
    k->expires_at = row[5] ? apr_atoi64(row[5]) : 0;
    k->remain_quota = row[6] ? apr_atoi64(row[6]) : 0;
    k->unlimited = row[7] && apr_atoi64(row[7]) != 0;
    k->used_quota = row[8] ? apr_atoi64(row[8]) : 0;
    k->models = json_strings(r->pool, row[9]);
    k->ips = ip_subnets(r, row[10]);
    k->max_body = row[11] ? (apr_off_t)apr_atoi64(row[11]) : 0;
    k->username = row[12] ? row[12] : "";
    k->role = row[13] ? row[13] : "user";
    return k;
}

static int ip_allowed(request_rec *r, const relay_key_t *k)
{
    int i;

    if (k->ips == NULL) {
        return 1;
    }
    for (i = 0; i < k->ips->nelts; ++i) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(k->ips, i, apr_ipsubnet_t *),
                              r->useragent_addr)) {
            return 1;
        }
    }
    return 0;
}

int relay_auth_model_allowed(const relay_key_t *key, const char *model)
{
    int i;

    if (key->models == NULL) {
        return 1;
    }
    for (i = 0; i < key->models->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(key->models, i, const char *), model)) {
            return 1;
        }
    }
    return 0;
}

/* Key and owner checks, in the order new-api applies them. */
static int check_key(request_rec *r, const char **row, relay_key_t *k)
{
    apr_int64_t now_ms = apr_time_as_msec(apr_time_now());

    if (strcmp(row[3] ? row[3] : "", "active")) {
        return nebula_ap_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                               "invalid_api_key", NULL, "This API key is %s.",
                               row[3] ? row[3] : "not active");
    }
    if (k->expires_at > 0 && k->expires_at <= now_ms) {
        return nebula_ap_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                               "invalid_api_key", NULL, "This API key has expired.");
    }
    if (strcmp(row[14] ? row[14] : "", "active")) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error", "user_disabled",
                               NULL, "The owner of this API key is disabled.");
    }
    if (!k->unlimited && k->remain_quota <= 0) {
        return nebula_ap_error(r, HTTP_TOO_MANY_REQUESTS, "insufficient_quota",
                               "insufficient_quota", NULL,
                               "You exceeded your current quota: this API key has no "
                               "quota left.");
    }
    if (!ip_allowed(r, k)) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error", "ip_not_allowed",
                               NULL, "This API key may not be used from %s.",
                               r->useragent_ip);
    }
    if (k->forced_channel && strcmp(k->role, "admin") && strcmp(k->role, "root")) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error",
                               "channel_forcing_not_allowed", NULL,
                               "Only an administrator's key may choose a channel.");
    }
    return OK;
}

int relay_auth_check(request_rec *r, relay_key_t **key)
{
    const char *cred = credential(r), *secret, **row = NULL;
    apr_int64_t forced;
    int rc, loaded = 0;

    if (cred == NULL) {
        return nebula_ap_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                               "invalid_api_key", NULL,
                               "You didn't provide an API key. Send it in the "
                               "Authorization header as 'Bearer YOUR_KEY'.");
    }
    if (!split_forced_channel(r->pool, cred, &secret, &forced)) {
        return nebula_ap_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                               "invalid_api_key", NULL, "Incorrect API key provided.");
    }
    if (key_row(r, nebula_apikey_hash(r->pool, secret), &row, &loaded) != APR_SUCCESS) {
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "database_unavailable", NULL,
                               "The gateway cannot check API keys right now.");
    }
    if (row == NULL) {
        return nebula_ap_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                               "invalid_api_key", NULL, "Incorrect API key provided.");
    }
    *key = key_from_row(r, row);
    (*key)->forced_channel = forced;
    (*key)->touch = loaded;
    if ((rc = check_key(r, row, *key)) != OK) {
        return rc;
    }
    return OK;
}

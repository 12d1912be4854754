/* admin_session.c: the admin API's session cookies.
 *
 * nebula_session (HttpOnly) holds "<user id>.<session version>.<issued ms>.
 * <last activity ms>.<csrf token>.<mac>", mac = base64url(HMAC-SHA256(
 * NebulaSessionSecret, "nebula-admin-session/v2:" + the five fields joined by
 * '.')). Nothing in it is secret but the MAC makes it unforgeable; the
 * session version ties it to the user row, so bumping users.session_version
 * (logout, password change, disable, delete) revokes every cookie of that
 * user at once. The session ends NebulaAdminSessionTTL after sign-in and
 * NebulaAdminSessionIdle after the last activity the cookie records
 * (admin_auth.c re-issues it as the session is used).
 *
 * nebula_csrf (readable by the page) holds the same CSRF token: the admin UI
 * echoes it in X-CSRF-Token on state-changing requests, and the server
 * compares the header with the token inside the signed cookie, so a cookie
 * planted by another site cannot supply a matching pair.
 *
 * With Secure cookies (https, or NebulaAdminCookieSecure On behind a TLS
 * proxy) both are named "__Host-nebula_session" / "__Host-nebula_csrf": the
 * browser then only takes them Secure, Path=/ and without Domain, set by
 * this very host, so a sibling subdomain cannot plant or shadow them. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_crypto.h"

#define MAC_CONTEXT "nebula-admin-session/v2:"
#define NFIELDS     6

static const char *session_mac(apr_pool_t *p, const char *secret, const char *fields)
{
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];
    const char *msg = apr_pstrcat(p, MAC_CONTEXT, fields, NULL);

    if (nebula_crypto_hmac_sha256(secret, strlen(secret), msg, strlen(msg), mac) !=
        APR_SUCCESS) {
        return NULL;
    }
    return nebula_crypto_b64url_encode(p, mac, sizeof(mac));
}

const char *admin_session_make(apr_pool_t *p, const char *secret,
                               const admin_session_t *s)
{
    const char *fields =
        apr_psprintf(p,
                     "%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT
                     ".%" APR_INT64_T_FMT ".%s",
                     s->user_id, s->version, s->issued_ms, s->last_ms, s->csrf);
    const char *mac = session_mac(p, secret, fields);

    return mac ? apr_pstrcat(p, fields, ".", mac, NULL) : NULL;
}

/* A decimal field of a cookie: digits only, at most 18. */
static int num_field(const char *s, apr_int64_t *out)
{
    apr_size_t n = strlen(s), i;

    if (n == 0 || n > 18) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
    }
    *out = apr_atoi64(s);
    return 1;
}

int admin_session_parse(apr_pool_t *p, const char *secret, const char *value,
                        apr_int64_t now_ms, admin_session_t *s)
{
    char *copy = apr_pstrdup(p, value), *f[NFIELDS], *tok, *state = NULL;
    const char *mac;
    int n = 0, i;

    if (strlen(value) > 256) {
        return 0;
    }
    for (tok = apr_strtok(copy, ".", &state); tok; tok = apr_strtok(NULL, ".", &state)) {
        if (n == NFIELDS) {
            return 0;
        }
        f[n++] = tok;
    }
    if (n != NFIELDS) {
        return 0;
    }
    if (!num_field(f[0], &s->user_id) || !num_field(f[1], &s->version) ||
        !num_field(f[2], &s->issued_ms) || !num_field(f[3], &s->last_ms) ||
        strlen(f[4]) != ADMIN_CSRF_CHARS) {
        return 0;
    }
    for (i = 0; i < ADMIN_CSRF_CHARS; ++i) {
        if (!apr_isalnum(f[4][i])) {
            return 0;
        }
    }
    mac = session_mac(
        p, secret,
        apr_pstrcat(p, f[0], ".", f[1], ".", f[2], ".", f[3], ".", f[4], NULL));
    if (mac == NULL || !nebula_crypto_equal(mac, strlen(mac), f[5], strlen(f[5]))) {
        return 0;
    }
    s->csrf = f[4];
    s->expires_ms = s->idle_ms = 0;
    (void)now_ms;
    return s->user_id > 0 && s->last_ms >= s->issued_ms;
}

int admin_session_limits(admin_session_t *s, apr_int64_t ttl_ms, apr_int64_t idle_ms,
                         apr_int64_t now_ms)
{
    s->expires_ms = s->issued_ms + ttl_ms;
    s->idle_ms = s->last_ms + idle_ms;
    if (s->idle_ms > s->expires_ms) {
        s->idle_ms = s->expires_ms;
    }
    /* a clock that went back a little is no reason to end a session */
    return now_ms < s->idle_ms && now_ms + 60000 >= s->issued_ms;
}

typedef struct {
    apr_pool_t *p;
    const char *name;
    apr_array_header_t *values;
} cookie_ctx_t;

static int collect_cookie(void *baton, const char *key, const char *header)
{
    cookie_ctx_t *c = baton;
    char *copy = apr_pstrdup(c->p, header), *pair, *state = NULL;
    apr_size_t nl = strlen(c->name);

    (void)key;
    for (pair = apr_strtok(copy, ";", &state); pair;
         pair = apr_strtok(NULL, ";", &state)) {
        while (apr_isspace(*pair)) {
            ++pair;
        }
        if (strncmp(pair, c->name, nl) == 0 && pair[nl] == '=') {
            char *v = pair + nl + 1, *end = v + strlen(v);
            while (end > v && apr_isspace(end[-1])) {
                *--end = '\0';
            }
            APR_ARRAY_PUSH(c->values, const char *) = v;
        }
    }
    return 1;
}

apr_array_header_t *admin_session_cookies(request_rec *r, const char *name)
{
    cookie_ctx_t c = {r->pool, name, apr_array_make(r->pool, 2, sizeof(const char *))};

    apr_table_do(collect_cookie, &c, r->headers_in, "Cookie", NULL);
    return c.values;
}

int admin_session_secure(request_rec *r)
{
    return relay_config_admin(relay_config_srv(r->server))->cookie_secure ||
           ap_cstr_casecmp(ap_http_scheme(r), "https") == 0;
}

const char *admin_session_cookie_name(request_rec *r, int csrf)
{
    const char *name = csrf ? ADMIN_CSRF_COOKIE : ADMIN_SESSION_COOKIE;

    return admin_session_secure(r) ? apr_pstrcat(r->pool, ADMIN_HOST_PREFIX, name, NULL)
                                   : name;
}

static const char *cookie_attrs(request_rec *r, apr_int64_t max_age)
{
    return apr_psprintf(r->pool,
                        "; Path=/; Max-Age=%" APR_INT64_T_FMT "; SameSite=Strict%s",
                        max_age, admin_session_secure(r) ? "; Secure" : "");
}

static void set_pair(request_rec *r, const char *session, const char *csrf,
                     apr_int64_t max_age_s)
{
    /* one answer sets the pair once: a renewal is replaced by a sign-out or
     * a new session of the same request */
    apr_table_unset(r->err_headers_out, "Set-Cookie");
    apr_table_add(r->err_headers_out, "Set-Cookie",
                  apr_pstrcat(r->pool, admin_session_cookie_name(r, 0), "=", session,
                              cookie_attrs(r, max_age_s), "; HttpOnly", NULL));
    apr_table_add(r->err_headers_out, "Set-Cookie",
                  apr_pstrcat(r->pool, admin_session_cookie_name(r, 1), "=", csrf,
                              cookie_attrs(r, max_age_s), NULL));
}

void admin_session_set_cookies(request_rec *r, const char *session, const char *csrf,
                               apr_int64_t max_age_s)
{
    set_pair(r, session, csrf, max_age_s > 0 ? max_age_s : 1);
}

void admin_session_clear_cookies(request_rec *r)
{
    set_pair(r, "", "", 0);
}

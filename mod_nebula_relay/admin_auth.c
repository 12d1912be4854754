/* admin_auth.c: who is calling the admin API, and the /api/auth routes.
 *
 * Credentials, in this order:
 *  - "Authorization: Bearer <NebulaAdminToken>": root, without a user row
 *    (constant-time comparison);
 *  - "Authorization: Bearer nat-...": a user's management access token,
 *    looked up by its SHA-256 (users.access_token_hash);
 *  - the signed session cookie from POST /api/auth/login (admin_session.c);
 *    state-changing requests must then echo the session's CSRF token in
 *    X-CSRF-Token. Bearer requests need no CSRF token (a browser never adds
 *    an Authorization header on its own).
 * An Authorization header that is present but wrong is refused, never
 * ignored in favour of a cookie. The user behind a token or session must be
 * active; its role is read from the database on every request. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_crypto.h"

/* Verified against when the username is unknown, so that a miss costs the
 * same time as a wrong password (argon2id of a throw-away password). */
static const char dummy_hash[] = "$argon2id$v=19$m=65536,t=3,p=1$bmVidWxhLWR1bW15LXNsdA$"
                                 "3+olix1h6nCJ1nmxinmGp4St2EkVA2XDVlIvZUzj3JM";

static const char *const via_names[] = {"none", "admin_token", "access_token", "session"};

#define USER_AUTH_COLS "id, username, role, status, session_version"

/* Fill a->who from a users row (USER_AUTH_COLS); 0 unless active. */
static int principal_from_row(admin_req_t *a, const nebula_dbd_rows_t *rows,
                              admin_auth_e via)
{
    if (rows->nrows != 1 || strcmp(rows->rows[0][3] ? rows->rows[0][3] : "", "active")) {
        return 0;
    }
    a->who.via = via;
    a->who.user_id = nebula_ap_db_int(rows, 0, 0);
    a->who.username = rows->rows[0][1];
    a->who.role = rows->rows[0][2];
    a->who.session_version = nebula_ap_db_int(rows, 0, 4);
    return 1;
}

static int unauthorized(admin_req_t *a, const char *code, const char *msg)
{
    admin_error(a, HTTP_UNAUTHORIZED, code, NULL, "%s", msg);
    return HTTP_UNAUTHORIZED;
}

static int auth_bearer(admin_req_t *a, const char *hdr)
{
    const char *tok = hdr;
    nebula_dbd_rows_t rows;
    const char *args[1];

    while (*tok == ' ') {
        ++tok;
    }
    if (a->sc->admin_token && nebula_crypto_equal(tok, strlen(tok), a->sc->admin_token,
                                                  strlen(a->sc->admin_token))) {
        a->who.via = ADMIN_AUTH_ROOT_TOKEN;
        a->who.username = "admin-token";
        a->who.role = "root";
        return OK;
    }
    if (strncmp(tok, ADMIN_ACCESS_TOKEN_PREFIX, strlen(ADMIN_ACCESS_TOKEN_PREFIX)) != 0 ||
        strlen(tok) > 256) {
        return unauthorized(a, "invalid_token", "the bearer token is not valid");
    }
    if (!admin_db(a)) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    args[0] = nebula_crypto_sha256_hex(a->r->pool, tok, strlen(tok));
    if (admin_db_select(
            a, "SELECT " USER_AUTH_COLS " FROM users WHERE access_token_hash = %s", 1,
            args, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "check an access token");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!principal_from_row(a, &rows, ADMIN_AUTH_USER_TOKEN)) {
        return unauthorized(a, "invalid_token", "the bearer token is not valid");
    }
    return OK;
}

/* The first session cookie that verifies and still matches its user row. */
static int auth_session(admin_req_t *a)
{
    apr_array_header_t *vals = admin_session_cookies(a->r, ADMIN_SESSION_COOKIE);
    apr_int64_t now = admin_now_ms();
    nebula_dbd_rows_t rows;
    admin_session_t s;
    int i;

    for (i = 0; i < vals->nelts && a->sc->session_secret; ++i) {
        const char *args[1];
        if (!admin_session_parse(a->r->pool, a->sc->session_secret,
                                 APR_ARRAY_IDX(vals, i, const char *), now, &s)) {
            continue;
        }
        if (!admin_db(a)) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        args[0] = admin_i64(a, s.user_id);
        if (admin_db_select(a, "SELECT " USER_AUTH_COLS " FROM users WHERE id = %lld", 1,
                            args, &rows) != APR_SUCCESS) {
            admin_db_fail(a, "check a session");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (principal_from_row(a, &rows, ADMIN_AUTH_SESSION) &&
            a->who.session_version == s.version) {
            a->who.csrf = s.csrf;
            return OK;
        }
        a->who.via = ADMIN_AUTH_NONE;
    }
    return unauthorized(a, vals->nelts ? "session_expired" : "missing_credentials",
                        vals->nelts
                            ? "the session is expired or was revoked: sign in again"
                            : "send 'Authorization: Bearer <token>' or sign in");
}

static int check_csrf(admin_req_t *a)
{
    const char *h = apr_table_get(a->r->headers_in, ADMIN_CSRF_HEADER);

    if (h == NULL ||
        !nebula_crypto_equal(h, strlen(h), a->who.csrf, strlen(a->who.csrf))) {
        admin_error(a, HTTP_FORBIDDEN, "csrf_failed", NULL,
                    "a session request that changes state needs the " ADMIN_CSRF_HEADER
                    " header (the value of the " ADMIN_CSRF_COOKIE " cookie)");
        return HTTP_FORBIDDEN;
    }
    return OK;
}

int admin_auth_authenticate(admin_req_t *a, int needs_csrf)
{
    const char *hdr = apr_table_get(a->r->headers_in, "Authorization");
    int st;

    if (hdr != NULL) {
        if (strncasecmp(hdr, "Bearer ", 7) != 0) {
            return unauthorized(a, "invalid_token",
                                "the Authorization header must be 'Bearer <token>'");
        }
        return auth_bearer(a, hdr + 7);
    }
    if ((st = auth_session(a)) != OK) {
        return st;
    }
    return needs_csrf ? check_csrf(a) : OK;
}

int admin_auth_is_manager(const admin_req_t *a)
{
    return a->who.role && (!strcmp(a->who.role, "root") || !strcmp(a->who.role, "admin"));
}

int admin_auth_may_manage(const admin_req_t *a, apr_int64_t target_id,
                          const char *target_role)
{
    if (a->who.role && strcmp(a->who.role, "root") == 0) {
        return 1;
    }
    return admin_auth_is_manager(a) &&
           (target_id == a->who.user_id || (target_role && !strcmp(target_role, "user")));
}

void admin_audit(admin_req_t *a, const char *action, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                  "NEB01501: admin audit: %s %s by %s (user %" APR_INT64_T_FMT ", %s)",
                  action, what, a->who.username ? a->who.username : "-", a->who.user_id,
                  via_names[a->who.via]);
}

/* ---- /api/auth routes ------------------------------------------------- */

/* Issue a new session for a->who (cookies set); its CSRF token and expiry. */
static int issue_session(admin_req_t *a, json_t *out)
{
    admin_session_t s;
    const char *cookie;
    apr_int64_t ttl_ms = (apr_int64_t)apr_time_as_msec(a->sc->session_ttl);

    s.user_id = a->who.user_id;
    s.version = a->who.session_version;
    s.expires_ms = admin_now_ms() + ttl_ms;
    s.csrf = nebula_crypto_token(a->r->pool, NULL, ADMIN_CSRF_CHARS);
    cookie = s.csrf ? admin_session_make(a->r->pool, a->sc->session_secret, &s) : NULL;
    if (cookie == NULL) {
        admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                    "cannot sign a session");
        return 0;
    }
    admin_session_set_cookies(a->r, cookie, s.csrf, ttl_ms / 1000);
    json_object_set_new(out, "csrf_token", json_string(s.csrf));
    json_object_set_new(out, "expires_at", json_integer(s.expires_ms));
    return 1;
}

/* Verify @a password for the users row in @a rows (id, username, role,
 * status, session_version, password_hash); a missing row, an inactive user
 * or one without a password fails after the same work. */
static int login_verify(const nebula_dbd_rows_t *rows, const char *password)
{
    const char *hash = rows->nrows == 1 ? rows->rows[0][5] : NULL;
    int usable = rows->nrows == 1 && hash && *hash &&
                 !strcmp(rows->rows[0][3] ? rows->rows[0][3] : "", "active");

    if (!usable) {
        nebula_crypto_password_verify(dummy_hash, password);
        return 0;
    }
    return nebula_crypto_password_verify(hash, password) == APR_SUCCESS;
}

static int login_refused(admin_req_t *a, const char *username, apr_int64_t now)
{
    admin_ratelimit_failed(a->r->useragent_ip, username, now);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                  "NEB01502: admin login refused for user '%s' from %s", username,
                  a->r->useragent_ip);
    return admin_error(a, HTTP_UNAUTHORIZED, "invalid_credentials", NULL,
                       "wrong username or password");
}

static int rate_limited(admin_req_t *a, apr_int64_t wait_ms)
{
    apr_table_setn(a->r->err_headers_out, "Retry-After",
                   apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT, (wait_ms + 999) / 1000));
    return admin_error(a, HTTP_TOO_MANY_REQUESTS, "too_many_attempts", NULL,
                       "too many failed sign-ins: try again later");
}

int admin_auth_login(admin_req_t *a)
{
    static const char *const fields[] = {"username", "password", NULL};
    json_t *b = admin_body(a), *out;
    const char *user = NULL, *pw = NULL;
    apr_int64_t now = admin_now_ms(), wait_ms;
    nebula_dbd_rows_t rows;

    if (a->sc->session_secret == NULL) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "sessions_disabled", NULL,
                           "NebulaSessionSecret is not set: session sign-in is off");
    }
    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_str(a, b, "username", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY, 64, &user);
        admin_field_str(a, b, "password", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY, 1024, &pw);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if ((wait_ms = admin_ratelimit_check(a->r->useragent_ip, user, now)) > 0) {
        return rate_limited(a, wait_ms);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_select(a,
                        "SELECT " USER_AUTH_COLS ", password_hash FROM users "
                        "WHERE username = %s",
                        1, &user, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "sign in");
    }
    if (!login_verify(&rows, pw) || !principal_from_row(a, &rows, ADMIN_AUTH_SESSION)) {
        return login_refused(a, user, now);
    }
    admin_ratelimit_succeeded(user);
    out = json_object();
    if (!issue_session(a, out)) {
        json_decref(out);
        return OK;
    }
    json_object_set_new(out, "user", admin_users_json(a, a->who.user_id));
    admin_audit(a, "login", apr_psprintf(a->r->pool, "from %s", a->r->useragent_ip));
    return admin_send_data(a, HTTP_OK, out);
}

/* Bump the session version of a->who: every session of the user ends. */
static apr_status_t bump_sessions(admin_req_t *a)
{
    const char *args[2] = {admin_i64(a, admin_now_ms()), admin_i64(a, a->who.user_id)};

    return admin_db_exec(a,
                         "UPDATE users SET session_version = session_version + 1, "
                         "updated_at = %lld WHERE id = %lld",
                         2, args, NULL);
}

int admin_auth_logout(admin_req_t *a)
{
    if (a->who.user_id > 0) {
        if (!admin_db(a)) {
            return OK;
        }
        if (bump_sessions(a) != APR_SUCCESS) {
            return admin_db_fail(a, "sign out");
        }
        relay_gen_bump();
        admin_audit(a, "logout", "(all sessions of the user)");
    }
    admin_session_clear_cookies(a->r);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

int admin_auth_me(admin_req_t *a)
{
    json_t *out = json_object();

    json_object_set_new(out, "auth", json_string(via_names[a->who.via]));
    json_object_set_new(out, "role", json_string(a->who.role));
    if (a->who.user_id > 0) {
        if (!admin_db(a)) {
            json_decref(out);
            return OK;
        }
        json_object_set_new(out, "user", admin_users_json(a, a->who.user_id));
    }
    else {
        json_object_set_new(out, "user", json_null());
    }
    return admin_send_data(a, HTTP_OK, out);
}

/* Check the caller's current password (rate-limited like sign-in). */
static int password_matches(admin_req_t *a, const char *current)
{
    const char *args[1] = {admin_i64(a, a->who.user_id)};
    apr_int64_t now = admin_now_ms(), wait_ms;
    nebula_dbd_rows_t rows;

    if ((wait_ms = admin_ratelimit_check(a->r->useragent_ip, a->who.username, now)) > 0) {
        rate_limited(a, wait_ms);
        return 0;
    }
    if (admin_db_select(a,
                        "SELECT " USER_AUTH_COLS ", password_hash FROM users "
                        "WHERE id = %lld",
                        1, args, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "check a password");
        return 0;
    }
    if (!login_verify(&rows, current)) {
        admin_ratelimit_failed(a->r->useragent_ip, a->who.username, now);
        admin_error(a, HTTP_FORBIDDEN, "invalid_credentials", "current_password",
                    "the current password is wrong");
        return 0;
    }
    return 1;
}

int admin_auth_password(admin_req_t *a)
{
    static const char *const fields[] = {"current_password", "new_password", NULL};
    json_t *b = admin_body(a), *out;
    const char *cur = NULL, *pw = NULL, *hash = NULL;
    const char *args[3];

    if (a->who.user_id <= 0) {
        return admin_error(a, HTTP_BAD_REQUEST, "no_user", NULL,
                           "the admin token belongs to no user and has no password");
    }
    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_str(a, b, "current_password", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY,
                        1024, &cur);
        admin_field_str(a, b, "new_password", ADMIN_F_REQUIRED, 1024, &pw);
    }
    if (a->err_status ||
        admin_users_hash_password(a, "new_password", pw, &hash) != ADMIN_SET) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a) || !password_matches(a, cur)) {
        return OK;
    }
    args[0] = hash;
    args[1] = admin_i64(a, admin_now_ms());
    args[2] = admin_i64(a, a->who.user_id);
    if (admin_db_exec(a,
                      "UPDATE users SET password_hash = %s, session_version = "
                      "session_version + 1, updated_at = %lld WHERE id = %lld",
                      3, args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change a password");
    }
    relay_gen_bump();
    admin_audit(a, "change-own-password", "(all other sessions ended)");
    out = json_object();
    json_object_set_new(out, "csrf_token", json_null());
    json_object_set_new(out, "expires_at", json_null());
    a->who.session_version++;
    if (a->who.via == ADMIN_AUTH_SESSION && !issue_session(a, out)) {
        json_decref(out);
        return OK;
    }
    json_object_set_new(out, "user", admin_users_json(a, a->who.user_id));
    return admin_send_data(a, HTTP_OK, out);
}

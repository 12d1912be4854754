/* admin_auth.c: who is calling the admin API, and the /api/auth routes.
 *
 * Credentials, in this order:
 *  - "Authorization: Bearer <NebulaAdminToken>": root, without a user row
 *    (constant-time comparison);
 *  - "Authorization: Bearer nat-...": a user's management access token,
 *    looked up by its SHA-256 (users.access_token_hash);
 *  - with NebulaAdminTrustRemoteUser On, r->user as an httpd auth module
 *    (mod_auth_basic, mod_authnz_ldap, mod_auth_openidc ...) set it: the
 *    users row of that name, provisioned on first sight when
 *    NebulaAdminRemoteUserRole names a role; NebulaAdminRemoteRoleEnv names
 *    an environment variable whose valid role wins (and is stored);
 *  - the signed session cookie from POST /api/auth/login (admin_session.c),
 *    within its idle and absolute limits; it is re-issued as it is used.
 * Session and remote-user requests that change state must echo a CSRF token
 * in X-CSRF-Token: the session's, or for a remote user an HMAC of the
 * username and the day under NebulaSessionSecret (both given by GET
 * /api/auth/me): their credentials come with every request the browser
 * makes, cross-site ones too. Bearer requests need no CSRF token (a browser
 * never adds an Authorization header on its own).
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

static const char *const via_names[] = {"none", "admin_token", "access_token", "session",
                                        "remote_user"};

static const char *const role_names[] = {"user", "operator", "admin", "root", NULL};

#define REMOTE_CSRF_CONTEXT "nebula-admin-remote-csrf/v1:"

int admin_auth_valid_role(const char *role)
{
    int i;

    for (i = 0; role && role_names[i]; ++i) {
        if (strcmp(role, role_names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

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

/* Re-issue the session cookie with the activity of now when the recorded
 * one is older than a tenth of the idle limit (never past the absolute
 * end, which the cookie keeps). */
static void renew_session(admin_req_t *a, admin_session_t *s, apr_int64_t now,
                          apr_int64_t idle_ms)
{
    const char *cookie;

    if (now - s->last_ms < idle_ms / 10) {
        return;
    }
    s->last_ms = now;
    cookie = admin_session_make(a->r->pool, a->sc->session_secret, s);
    if (cookie == NULL) {
        return; /* the old cookie stays valid until its idle end */
    }
    admin_session_set_cookies(a->r, cookie, s->csrf, (s->expires_ms - now + 999) / 1000);
    a->who.idle_expires_ms =
        now + idle_ms < s->expires_ms ? now + idle_ms : s->expires_ms;
}

/* The first session cookie (of this vhost's name) that verifies, is within
 * its limits and still matches its user row. */
static int auth_session(admin_req_t *a)
{
    const admin_auth_conf_t *ac = relay_config_admin(a->sc);
    apr_array_header_t *vals =
        admin_session_cookies(a->r, admin_session_cookie_name(a->r, 0));
    apr_int64_t now = admin_now_ms();
    apr_int64_t ttl_ms = (apr_int64_t)apr_time_as_msec(a->sc->session_ttl);
    apr_int64_t idle_ms = (apr_int64_t)apr_time_as_msec(ac->session_idle);
    nebula_dbd_rows_t rows;
    admin_session_t s;
    int i;

    for (i = 0; i < vals->nelts && a->sc->session_secret; ++i) {
        const char *args[1];
        if (!admin_session_parse(a->r->pool, a->sc->session_secret,
                                 APR_ARRAY_IDX(vals, i, const char *), now, &s) ||
            !admin_session_limits(&s, ttl_ms, idle_ms, now)) {
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
            a->who.expires_ms = s.expires_ms;
            a->who.idle_expires_ms = s.idle_ms;
            renew_session(a, &s, now, idle_ms);
            return OK;
        }
        a->who.via = ADMIN_AUTH_NONE;
    }
    return unauthorized(a, vals->nelts ? "session_expired" : "missing_credentials",
                        vals->nelts
                            ? "the session is expired or was revoked: sign in again"
                            : "send 'Authorization: Bearer <token>' or sign in");
}

/* ---- remote users (NebulaAdminTrustRemoteUser) ------------------------ */

/* The CSRF token of remote user @a user for day @a day (days since the
 * epoch, UTC): 32 hex digits of HMAC-SHA256 under NebulaSessionSecret. */
static const char *remote_csrf(admin_req_t *a, const char *user, apr_int64_t day)
{
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];
    const char *msg =
        apr_psprintf(a->r->pool, REMOTE_CSRF_CONTEXT "%s:%" APR_INT64_T_FMT, user, day);
    char *hex = apr_palloc(a->r->pool, 33);
    int i;

    if (a->sc->session_secret == NULL ||
        nebula_crypto_hmac_sha256(a->sc->session_secret, strlen(a->sc->session_secret),
                                  msg, strlen(msg), mac) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < 16; ++i) {
        hex[2 * i] = "0123456789abcdef"[mac[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[mac[i] & 15];
    }
    hex[32] = '\0';
    return hex;
}

/* The role the auth module gave in NebulaAdminRemoteRoleEnv, when valid. */
static const char *remote_env_role(admin_req_t *a)
{
    const admin_auth_conf_t *ac = relay_config_admin(a->sc);
    const char *v;
    char *role;

    if (ac->remote_role_env == NULL ||
        (v = apr_table_get(a->r->subprocess_env, ac->remote_role_env)) == NULL) {
        return NULL;
    }
    role = apr_pstrdup(a->r->pool, v);
    ap_str_tolower(role);
    return admin_auth_valid_role(role) ? role : NULL;
}

static int forbidden(admin_req_t *a, const char *what, const char *user)
{
    admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL, "the %s '%s' is %s",
                strcmp(what, "inactive") ? "remote user" : "user", user,
                !strcmp(what, "inactive") ? "not active" : what);
    return HTTP_FORBIDDEN;
}

static apr_status_t select_user_by_name(admin_req_t *a, const char *user,
                                        nebula_dbd_rows_t *rows)
{
    return admin_db_select(a, "SELECT " USER_AUTH_COLS " FROM users WHERE username = %s",
                           1, &user, rows);
}

/* Insert a users row for remote user @a user with @a role (no password). */
static int provision_remote(admin_req_t *a, const char *user, const char *role,
                            nebula_dbd_rows_t *rows)
{
    const char *now = admin_i64(a, admin_now_ms());
    const char *args[5] = {user, user, role, now, now};
    apr_int64_t id;

    if (admin_db_insert(a,
                        "INSERT INTO users (username, display_name, role, user_group, "
                        "status, created_at, updated_at) VALUES (%s, %s, %s, 'default', "
                        "'active', %lld, %lld)",
                        5, args, &id) != APR_SUCCESS) {
        if (!admin_db_conflict(a)) { /* else another request was first: read it */
            admin_db_fail(a, "provision a remote user");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else {
        relay_gen_bump();
        a->who.username = user;
        a->who.user_id = id;
        admin_audit(
            a, "provision-remote-user",
            apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " '%s' (%s)", id, user, role));
    }
    if (select_user_by_name(a, user, rows) != APR_SUCCESS) {
        admin_db_fail(a, "read a remote user");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Store the role the auth module gave when it differs from the row's. */
static int sync_remote_role(admin_req_t *a, const char *role)
{
    const char *args[3] = {role, admin_i64(a, admin_now_ms()),
                           admin_i64(a, a->who.user_id)};
    const char *was = a->who.role;

    if (admin_db_exec(a, "UPDATE users SET role = %s, updated_at = %lld WHERE id = %lld",
                      3, args, NULL) != APR_SUCCESS) {
        admin_db_fail(a, "store a remote user's role");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    relay_gen_bump();
    a->who.role = role;
    admin_audit(a, "remote-user-role",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " '%s' %s -> %s",
                             a->who.user_id, a->who.username, was, role));
    return OK;
}

static int auth_remote(admin_req_t *a)
{
    const char *user = a->r->user, *env_role = remote_env_role(a);
    nebula_dbd_rows_t rows;
    int st;

    if (!admin_users_valid_name(user)) {
        return forbidden(a, "no valid username", user);
    }
    if (!admin_db(a)) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (select_user_by_name(a, user, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "check a remote user");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rows.nrows == 0) {
        const char *role =
            env_role ? env_role : relay_config_admin(a->sc)->remote_user_role;
        if (role == NULL) {
            return forbidden(a, "not provisioned", user);
        }
        if ((st = provision_remote(a, user, role, &rows)) != OK) {
            return st;
        }
        env_role = NULL; /* the new row has it */
    }
    if (!principal_from_row(a, &rows, ADMIN_AUTH_REMOTE_USER)) {
        a->who.via = ADMIN_AUTH_NONE;
        return forbidden(a, "inactive", user);
    }
    if (env_role && strcmp(env_role, a->who.role) &&
        (st = sync_remote_role(a, env_role))) {
        return st;
    }
    a->who.csrf = remote_csrf(a, user, apr_time_sec(apr_time_now()) / 86400);
    return OK;
}

static int csrf_matches(const char *h, const char *want)
{
    return h && want && nebula_crypto_equal(h, strlen(h), want, strlen(want));
}

static int check_csrf(admin_req_t *a)
{
    const char *h = apr_table_get(a->r->headers_in, ADMIN_CSRF_HEADER);
    int ok = csrf_matches(h, a->who.csrf);

    if (!ok && a->who.via == ADMIN_AUTH_REMOTE_USER) {
        /* yesterday's token still works: a page open across midnight (UTC) */
        ok = csrf_matches(
            h, remote_csrf(a, a->who.username, apr_time_sec(apr_time_now()) / 86400 - 1));
    }
    if (!ok) {
        admin_error(a, HTTP_FORBIDDEN, "csrf_failed", NULL,
                    "a request that changes state needs the " ADMIN_CSRF_HEADER
                    " header: the csrf_token of GET /api/auth/me");
        return HTTP_FORBIDDEN;
    }
    return OK;
}

int admin_auth_authenticate(admin_req_t *a, int needs_csrf)
{
    const char *hdr = apr_table_get(a->r->headers_in, "Authorization");
    int st;

    if (hdr != NULL && strncasecmp(hdr, "Bearer ", 7) == 0) {
        return auth_bearer(a, hdr + 7);
    }
    if (relay_config_admin(a->sc)->trust_remote_user && a->r->user && *a->r->user) {
        st = auth_remote(a);
    }
    else if (hdr != NULL) {
        return unauthorized(a, "invalid_token",
                            "the Authorization header must be 'Bearer <token>'");
    }
    else {
        st = auth_session(a);
    }
    if (st != OK) {
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
    apr_int64_t idle_ms =
        (apr_int64_t)apr_time_as_msec(relay_config_admin(a->sc)->session_idle);

    s.user_id = a->who.user_id;
    s.version = a->who.session_version;
    s.issued_ms = s.last_ms = admin_now_ms();
    admin_session_limits(&s, ttl_ms, idle_ms, s.issued_ms);
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
    json_object_set_new(out, "idle_expires_at", json_integer(s.idle_ms));
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

/* A bcrypt hash imported from new-api (nebulactl import-newapi) gives way to
 * an argon2id hash of the password that just matched it; if that fails the
 * old hash stays, and the next sign-in tries again. */
static void upgrade_legacy_hash(admin_req_t *a, const char *old, const char *password)
{
    const char *enc, *args[4];

    if (!nebula_crypto_password_legacy(old)
        || nebula_crypto_password_hash(a->r->pool, password, &enc) != APR_SUCCESS) {
        return;
    }
    args[0] = enc;
    args[1] = admin_i64(a, admin_now_ms());
    args[2] = admin_i64(a, a->who.user_id);
    args[3] = old;
    if (admin_db_exec(a,
                      "UPDATE users SET password_hash = %s, updated_at = %lld "
                      "WHERE id = %lld AND password_hash = %s",
                      4, args, NULL) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01503: could not replace the imported password hash of user %"
                      APR_INT64_T_FMT " (kept; tried again at the next sign-in)",
                      a->who.user_id);
    }
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
    upgrade_legacy_hash(a, rows.rows[0][5], pw);
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
    /* the UI sends it back in X-CSRF-Token (it never reads a cookie) */
    json_object_set_new(out, "csrf_token",
                        a->who.csrf ? json_string(a->who.csrf) : json_null());
    json_object_set_new(out, "expires_at",
                        a->who.expires_ms ? json_integer(a->who.expires_ms)
                                          : json_null());
    json_object_set_new(out, "idle_expires_at",
                        a->who.idle_expires_ms ? json_integer(a->who.idle_expires_ms)
                                               : json_null());
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
    json_object_set_new(out, "idle_expires_at", json_null());
    a->who.session_version++;
    if (a->who.via == ADMIN_AUTH_SESSION && !issue_session(a, out)) {
        json_decref(out);
        return OK;
    }
    json_object_set_new(out, "user", admin_users_json(a, a->who.user_id));
    return admin_send_data(a, HTTP_OK, out);
}

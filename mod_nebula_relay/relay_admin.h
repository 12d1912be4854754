/**
 * @file relay_admin.h
 * @brief The admin API of mod_nebula_relay: JSON over the admin vhost
 *        (docs/admin-api.md is its specification).
 *
 * One request is one admin_req_t, built by the dispatcher (admin_route.c):
 * the route's path parameters, the authenticated principal (admin_auth.c),
 * the parsed JSON body and query (admin_json.c), and a database connection
 * borrowed from mod_dbd for the life of the request (admin_db.c). Handlers
 * (admin_users.c, admin_groups.c, admin_keys.c, admin_channels.c,
 * admin_chankeys.c, admin_abilities.c, admin_logs.c, admin_stats.c) validate,
 * run their statements and answer with admin_send() or admin_error(); every
 * handler returns OK once it has written a response.
 *
 * Validation helpers record the first error in the request (admin_invalid)
 * so that a handler can read several fields and check once.
 */
#ifndef RELAY_ADMIN_H
#define RELAY_ADMIN_H

#include "relay_private.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_json.h"

/** Largest request body the admin API reads. */
#define ADMIN_MAX_BODY         (1024 * 1024)
#define ADMIN_DEFAULT_PER_PAGE 20
#define ADMIN_MAX_PER_PAGE     100
#define ADMIN_MAX_PAGE         1000000

/** Cookie names: the signed session (HttpOnly) and the CSRF token the UI
 *  reads and echoes in X-CSRF-Token; with Secure cookies (https, or
 *  NebulaAdminCookieSecure On) the "__Host-" names instead, and only those
 *  are accepted there. */
#define ADMIN_SESSION_COOKIE "nebula_session"
#define ADMIN_CSRF_COOKIE    "nebula_csrf"
#define ADMIN_HOST_PREFIX    "__Host-"
#define ADMIN_CSRF_HEADER    "X-CSRF-Token"
/** Prefix of users' management access tokens. */
#define ADMIN_ACCESS_TOKEN_PREFIX "nat-"

/** How the caller proved who it is. */
typedef enum {
    ADMIN_AUTH_NONE = 0,
    ADMIN_AUTH_ROOT_TOKEN, /**< NebulaAdminToken: root, no user row */
    ADMIN_AUTH_USER_TOKEN, /**< a user's management access token */
    ADMIN_AUTH_SESSION,    /**< signed session cookie from POST /api/auth/login */
    ADMIN_AUTH_REMOTE_USER /**< r->user of an httpd auth module
                                (NebulaAdminTrustRemoteUser On) */
} admin_auth_e;

/** Default of NebulaAdminSessionIdle. */
#define ADMIN_DEFAULT_SESSION_IDLE apr_time_from_sec(30 * 60)

/** The admin authentication settings of @a sc (the server config of a
 *  request, relay_config_srv()). */
const admin_auth_conf_t *relay_config_admin(const relay_srv_conf_t *sc);
/** Whether @a role is one of user, operator, admin, root. */
int admin_auth_valid_role(const char *role);

typedef struct {
    admin_auth_e via;
    apr_int64_t user_id;         /**< 0 for the root token */
    const char *username;        /**< for the audit log */
    const char *role;            /**< "root", "admin", "operator" or "user" */
    apr_int64_t session_version; /**< of the user row */
    const char *csrf;            /**< the CSRF token (sessions, remote users) */
    apr_int64_t expires_ms;      /**< sessions: absolute end (Unix ms), else 0 */
    apr_int64_t idle_expires_ms; /**< sessions: end unless used again, else 0 */
} admin_principal_t;

/** Values of a query-string or body field lookup. */
#define ADMIN_BAD    (-1) /**< invalid: the error is recorded */
#define ADMIN_ABSENT 0
#define ADMIN_SET    1
#define ADMIN_NULL   2 /**< JSON null, only where ADMIN_F_NULLABLE */

/** Field flags. */
#define ADMIN_F_REQUIRED 0x1 /**< absent is an error */
#define ADMIN_F_NULLABLE 0x2 /**< null is accepted (ADMIN_NULL) */
#define ADMIN_F_NONEMPTY 0x4 /**< strings: "" is an error */

typedef struct admin_req_t admin_req_t;
/** A route handler: writes the response and returns OK. */
typedef int admin_handler_fn(admin_req_t *a);

struct admin_req_t {
    request_rec *r;
    relay_srv_conf_t *sc;
    admin_principal_t who;
    const char *param[2]; /**< path parameters ({id}, {key_id}, {name}) as text */
    apr_int64_t id[2];    /**< the same as integers, where the route says {id} */
    json_t *body;         /**< parsed JSON object, or NULL when there was no body */
    apr_table_t *query;   /**< decoded query parameters */
    nebula_ap_db_t *db;   /**< borrowed by admin_db() */
    const char *db_err;   /**< last driver message (logged, never sent) */
    /* the first validation error */
    int err_status;
    const char *err_code, *err_param, *err_msg;
};

/* ---- admin_route.c ----------------------------------------------------- */
#define ROUTE_PUBLIC   0x1 /**< no credentials (login) */
#define ROUTE_ANY_ROLE 0x2 /**< any signed-in user, whatever its role */
#define ROUTE_RAW_BODY 0x4 /**< the handler reads the body itself (signed
                                provider callbacks: form or raw JSON) */
/* An operator (read-only) may use every GET/HEAD route of flags 0 except
 * those that show secrets in clear (listed in admin_route.c); a write, or a
 * route of flags 0 for the role user, is 403. */

/** One route: a method, a pattern of segments ({id} a positive integer,
 *  {name} a group name, {uuid} a request-log id) and its handler. */
typedef struct {
    const char *method;
    const char *pattern;
    admin_handler_fn *fn;
    int flags;
} admin_route_t;

/** Route tables of the areas kept in their own files, each ended by a
 *  NULL method: billing (prices, organisations, accounts, ledger,
 *  self-service; admin_billing.c) and plans (plans, subscriptions,
 *  scheduler; admin_plans.c). */
extern const admin_route_t admin_billing_routes[];
extern const admin_route_t admin_plans_routes[];
/** Usage caps (admin_caps.c). */
extern const admin_route_t admin_caps_routes[];
/** Rate limits, /api/rate-limits (admin_limits.c). */
extern const admin_route_t admin_limits_routes[];
/** Top-up by payment: orders, Stripe, EPay (admin_payments.c). */
extern const admin_route_t admin_payments_routes[];
/** Vouchers, redemption and new-api's redemption routes (admin_vouchers.c). */
extern const admin_route_t admin_vouchers_routes[];
/** The dashboard's statistics, /api/stats/summary (admin_stats_summary.c). */
extern const admin_route_t admin_dashboard_routes[];
/** The caller's own keys, request logs and statistics, /api/self/keys,
 *  /api/self/logs, /api/self/stats/... (admin_self_keys.c, admin_self_usage.c). */
extern const admin_route_t admin_self_routes[];
/** The settings page, /api/settings (admin_settings.c). */
extern const admin_route_t admin_settings_routes[];

/** The "nebula-admin" handler (NebulaAdmin On). */
int relay_admin_handler(request_rec *r);

/* ---- admin_json.c: bodies, fields, responses ----------------------------- */
/** Read and parse the JSON body. OK, or an error was sent (returns the
 *  HTTP status, 413/415/400). */
int admin_json_read_body(admin_req_t *a);
/** Parse r->args into a->query; 400 (sent) on bad escapes or duplicates. */
int admin_json_read_query(admin_req_t *a);
/** Send @a j (may be NULL for no body) with @a status; returns OK. */
int admin_send(admin_req_t *a, int status, json_t *j);
/** Send {"data": @a data} with @a status. */
int admin_send_data(admin_req_t *a, int status, json_t *data);
/** 200 {"data": @a j}, or 404 "<what> <id> does not exist" when @a j is NULL. */
int admin_send_found(admin_req_t *a, json_t *j, const char *what);
/** Send an error; the type follows from @a status. Returns OK. */
int admin_error(admin_req_t *a, int status, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/** Record a 400 for @a param unless an error is recorded; returns ADMIN_BAD. */
int admin_invalid(admin_req_t *a, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Record an error with any status/code (first one wins); returns ADMIN_BAD. */
int admin_fail(admin_req_t *a, int status, const char *code, const char *param,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/** Send the recorded error (admin_invalid/admin_fail); returns OK. */
int admin_send_recorded(admin_req_t *a);
/** The body, requiring one (400 recorded when missing). */
json_t *admin_body(admin_req_t *a);
/** Record 400 for the first member of @a o not in the NULL-ended @a allowed. */
int admin_only_fields(admin_req_t *a, json_t *o, const char *const *allowed);
/** Field getters: ADMIN_SET / ADMIN_NULL / ADMIN_ABSENT, or ADMIN_BAD (recorded). */
int admin_field_str(admin_req_t *a, json_t *o, const char *name, int flags,
                    apr_size_t maxlen, const char **out);
int admin_field_int(admin_req_t *a, json_t *o, const char *name, int flags,
                    apr_int64_t min, apr_int64_t max, apr_int64_t *out);
int admin_field_bool(admin_req_t *a, json_t *o, const char *name, int flags, int *out);
int admin_field_enum(admin_req_t *a, json_t *o, const char *name, int flags,
                     const char *const *values, const char **out);
/** An array of unique non-empty strings (each at most @a maxlen bytes). */
int admin_field_strarray(admin_req_t *a, json_t *o, const char *name, int flags,
                         apr_size_t maxitems, apr_size_t maxlen, json_t **out);
/** An object whose values are non-empty strings. */
int admin_field_strmap(admin_req_t *a, json_t *o, const char *name, int flags,
                       apr_size_t maxitems, apr_size_t maxlen, json_t **out);
/** Whether @a s has no control characters (and is valid for a name field). */
int admin_text_ok(const char *s);
/** Query getters (same return values; "" counts as absent). */
int admin_query_int(admin_req_t *a, const char *name, apr_int64_t min, apr_int64_t max,
                    apr_int64_t *out);
int admin_query_str(admin_req_t *a, const char *name, apr_size_t maxlen,
                    const char **out);
/** One of @a values (NULL-ended); 400 naming them all otherwise. */
int admin_query_enum(admin_req_t *a, const char *name, const char *const *values,
                     const char **out);
/** Record 400 for the first query parameter not in @a allowed. */
int admin_query_only(admin_req_t *a, const char *const *allowed);
/** page/per_page from the query (defaults 1 and ADMIN_DEFAULT_PER_PAGE). */
int admin_query_page(admin_req_t *a, apr_int64_t *page, apr_int64_t *per_page);
/** {"data": @a data, "total": .., "page": .., "per_page": ..} */
int admin_send_page(admin_req_t *a, json_t *data, apr_int64_t total, apr_int64_t page,
                    apr_int64_t per_page);
/** Milliseconds since the epoch. */
apr_int64_t admin_now_ms(void);
/** Decimal text of @a v in the request pool. */
const char *admin_i64(admin_req_t *a, apr_int64_t v);
/** Compact JSON text of @a j in the request pool (NULL for NULL). */
const char *admin_json_text(admin_req_t *a, json_t *j);

/* ---- admin_db.c: statements, rows to JSON, dynamic SQL ------------------- */
/** Borrow the connection; 0 and 503 sent when there is no database. */
int admin_db(admin_req_t *a);
/** Give the connection back before calling code that borrows its own (the
 * billing and governance modules' functions, the channel snapshot): a
 * thread never holds two. The next statement borrows again. */
void admin_db_release(admin_req_t *a);
/** Statements labelled by a digest of their text (dynamic SQL allowed). */
apr_status_t admin_db_select(admin_req_t *a, const char *sql, int nargs,
                             const char *const *args, nebula_dbd_rows_t *rows);
apr_status_t admin_db_exec(admin_req_t *a, const char *sql, int nargs,
                           const char *const *args, int *affected);
apr_status_t admin_db_insert(admin_req_t *a, const char *sql, int nargs,
                             const char *const *args, apr_int64_t *id);
apr_status_t admin_db_begin(admin_req_t *a);
apr_status_t admin_db_commit(admin_req_t *a);
void admin_db_rollback(admin_req_t *a);
/** Whether the last driver error is a unique-constraint violation. */
int admin_db_conflict(admin_req_t *a);
/** Log the last driver error (NEB01520) and send 500; returns OK. */
int admin_db_fail(admin_req_t *a, const char *what);

/** How a column becomes JSON. */
typedef enum {
    ADMIN_COL_STR,  /**< string */
    ADMIN_COL_NSTR, /**< string, NULL or "" → null */
    ADMIN_COL_INT,  /**< integer */
    ADMIN_COL_NINT, /**< integer, NULL or "" → null */
    ADMIN_COL_BOOL, /**< 0/1 → false/true */
    ADMIN_COL_JSON  /**< JSON text, NULL or "" → null */
} admin_col_e;

typedef struct {
    const char *name; /**< JSON member */
    const char *expr; /**< SQL expression (NULL: the column called @a name) */
    admin_col_e type;
} admin_col_t;

/** "expr1, expr2, ..." for the select list (columns of @a cols, ended by a
 *  NULL name), each prefixed with @a alias "." when not NULL. */
const char *admin_cols_sql(admin_req_t *a, const admin_col_t *cols, const char *alias);
/** Row @a i of @a rows as an object (columns in @a cols order from @a first). */
json_t *admin_row_json(const nebula_dbd_rows_t *rows, int i, int first,
                       const admin_col_t *cols);

/** A growing SQL text with its parameters. */
typedef struct {
    apr_pool_t *p;
    const char *sql;
    const char *args[32];
    int n;
    int nconds; /**< WHERE conditions added so far */
} admin_sql_t;

void admin_sql_init(admin_sql_t *q, apr_pool_t *p, const char *head);
/** Append text with no parameter. */
void admin_sql_add(admin_sql_t *q, const char *text);
/** Append text that holds one placeholder and its value. */
void admin_sql_arg(admin_sql_t *q, const char *text, const char *value);
/** Append " WHERE " or " AND " then @a cond with one placeholder (or none
 *  when @a value is NULL and the condition has no placeholder). */
void admin_sql_where(admin_sql_t *q, const char *cond, const char *value);
/** A LIKE pattern that matches @a s anywhere, escaped with '!'. */
const char *admin_like(apr_pool_t *p, const char *s);
/** Run "SELECT COUNT(*) FROM (...)" of @a q's head/where; -1 on failure. */
apr_int64_t admin_db_count(admin_req_t *a, const char *from_where, int nargs,
                           const char *const *args);

/**
 * Count the rows of @a w ("FROM ... WHERE ..."), select page @a page of
 * @a per_page of them as @a cols ordered by @a order, and send the list
 * ({"data", "total", "page", "per_page"}). @a what names them in errors.
 */
int admin_db_send_page(admin_req_t *a, admin_sql_t *w, const admin_col_t *cols,
                       const char *alias, const char *order, apr_int64_t page,
                       apr_int64_t per_page, const char *what);

/* ---- admin_auth.c ---------------------------------------------------- */
/** Establish a->who from the Bearer token or the session cookie. OK, or a
 *  status after an error was sent (401, 403, 503). */
int admin_auth_authenticate(admin_req_t *a, int needs_csrf);
/** Whether the principal is root or admin. */
int admin_auth_is_manager(const admin_req_t *a);
/**
 * Whether the principal may change the user @a target_id whose role is
 * @a target_role: root may change anyone; an admin itself and 'user' users.
 */
int admin_auth_may_manage(const admin_req_t *a, apr_int64_t target_id,
                          const char *target_role);
/** Audit one change to the error log (NEB01501, notice). */
void admin_audit(admin_req_t *a, const char *action, const char *what);

admin_handler_fn admin_auth_login, admin_auth_logout, admin_auth_me, admin_auth_password;

/* admin_ratelimit.c: failed logins per client IP and per username, in this
 * process (bounded table). */
/** 0, or the milliseconds until the caller may try again. */
apr_int64_t admin_ratelimit_check(const char *ip, const char *username, apr_int64_t now);
void admin_ratelimit_failed(const char *ip, const char *username, apr_int64_t now);
void admin_ratelimit_succeeded(const char *username);

/* ---- admin_session.c: signed session cookies ------------------------- */
/** Characters of a CSRF token ([0-9A-Za-z]). */
#define ADMIN_CSRF_CHARS 32

typedef struct {
    apr_int64_t user_id;
    apr_int64_t version;    /**< users.session_version when it was issued */
    apr_int64_t issued_ms;  /**< sign-in time, Unix ms (absolute limit from it) */
    apr_int64_t last_ms;    /**< last activity the cookie records (idle limit) */
    apr_int64_t expires_ms; /**< absolute end: issued + NebulaAdminSessionTTL */
    apr_int64_t idle_ms;    /**< idle end: last + NebulaAdminSessionIdle (never
                                 beyond expires_ms) */
    const char *csrf;
} admin_session_t;

/** The cookie value for @a s, signed with @a secret; NULL on crypto failure. */
const char *admin_session_make(apr_pool_t *p, const char *secret,
                               const admin_session_t *s);

/** 1 when @a value is well-formed and correctly signed (then @a s is
 *  filled: user_id, version, issued_ms, last_ms, csrf), else 0. Expiry is
 *  the caller's: admin_session_limits(). */
int admin_session_parse(apr_pool_t *p, const char *secret, const char *value,
                        apr_int64_t now_ms, admin_session_t *s);
/** Set s->expires_ms and s->idle_ms from @a ttl_ms and @a idle_ms; 1 when
 *  @a now_ms is before both (and not before the sign-in), else 0. */
int admin_session_limits(admin_session_t *s, apr_int64_t ttl_ms, apr_int64_t idle_ms,
                         apr_int64_t now_ms);

/** Every value of cookie @a name the request carries (const char *). */
apr_array_header_t *admin_session_cookies(request_rec *r, const char *name);
/** Whether the vhost of @a r sets Secure cookies (https, or
 *  NebulaAdminCookieSecure On). */
int admin_session_secure(request_rec *r);
/** The name of the session cookie (@a csrf 0) or of the CSRF cookie (1) on
 *  the vhost of @a r: "__Host-" prefixed when Secure. */
const char *admin_session_cookie_name(request_rec *r, int csrf);

/** Set-Cookie for the session (HttpOnly) and the CSRF token (readable); both
 *  Path=/, SameSite=Strict, no Domain, Secure when admin_session_secure().
 *  Replaces any Set-Cookie already in the response. */
void admin_session_set_cookies(request_rec *r, const char *session, const char *csrf,
                               apr_int64_t max_age_s);
/** Expire both cookies. */
void admin_session_clear_cookies(request_rec *r);

/* ---- the resources --------------------------------------------------- */
admin_handler_fn admin_users_list, admin_users_create, admin_users_get, admin_users_patch,
    admin_users_delete, admin_users_password, admin_users_token_rotate,
    admin_users_token_revoke;
/** Read user @a id: role (may be NULL), status; 0 and 404 sent if missing. */
int admin_users_lookup(admin_req_t *a, apr_int64_t id, const char **role,
                       const char **status);
/** Check (8 to 1024 bytes) and hash a password for the users table;
 *  ADMIN_SET, or ADMIN_BAD with an error recorded for @a param. */
int admin_users_hash_password(admin_req_t *a, const char *param, const char *password,
                              const char **hash);
/** User @a id as the API shows it (a new reference; JSON null when missing). */
json_t *admin_users_json(admin_req_t *a, apr_int64_t id);
/** Whether @a s is a valid username. */
int admin_users_valid_name(const char *s);
/** The largest integer the API accepts for quotas and amounts (2^53 - 1,
 *  exact in every JSON reader). */
#define ADMIN_MAX_AMOUNT APR_INT64_C(9007199254740991)

admin_handler_fn admin_groups_list, admin_groups_create, admin_groups_get,
    admin_groups_patch, admin_groups_delete;
/** Whether every group named in @a names (string or array) exists; records
 *  400 for @a param when not. */
int admin_groups_check(admin_req_t *a, const char *param, json_t *names);
/** The same for one group name. */
int admin_groups_check_name(admin_req_t *a, const char *param, const char *name);
/** Whether @a s is a valid group name (1 to 64 of A-Z a-z 0-9 _ . -). */
int admin_groups_valid_name(const char *s);

admin_handler_fn admin_keys_list, admin_keys_create, admin_keys_import, admin_keys_get,
    admin_keys_patch, admin_keys_delete;
/** Whether @a s is an IP address or CIDR block (IPv4 or IPv6). */
int admin_keys_valid_cidr(const char *s);

/** The fields of POST/PATCH /api/channels; st_* are ADMIN_SET, ADMIN_NULL or
 *  ADMIN_ABSENT (admin_chaninput.c). */
typedef struct {
    const char *name, *kind, *base_url, *key_mode, *status, *proxy, *test_model;
    json_t *keys, *models, *mapping, *groups, *headers;
    apr_int64_t priority, weight, timeout_ms;
    int auto_disable;
    int st_name, st_kind, st_base_url, st_key_mode, st_status, st_proxy, st_test_model,
        st_keys, st_models, st_mapping, st_groups, st_headers, st_priority, st_weight,
        st_timeout, st_auto_disable;
} chan_input_t;

/** Read and check a channel body; errors are recorded. */
void admin_chaninput_read(admin_req_t *a, json_t *b, chan_input_t *in, int create);
/**
 * Settle in->base_url for a channel of @a kind: the given URL; on create,
 * or when "" was given, the provider's public endpoint (openai, anthropic,
 * gemini) or a recorded 400 (azure, openai-compatible need one).
 */
int admin_chaninput_base_url(admin_req_t *a, chan_input_t *in, const char *kind,
                             int create);

admin_handler_fn admin_channels_list, admin_channels_create, admin_channels_get,
    admin_channels_patch, admin_channels_delete, admin_channels_test;

admin_handler_fn admin_chankeys_add, admin_chankeys_patch, admin_chankeys_delete;
/** Validate the "keys" array of a request (printable, unique); ADMIN_BAD. */
int admin_chankeys_validate(admin_req_t *a, json_t *keys);
/** Seal and insert each key of @a keys for channel @a id (in a transaction).
 *  APR_SUCCESS, or an error was sent (the caller rolls back and returns). */
apr_status_t admin_chankeys_insert(admin_req_t *a, apr_int64_t id, json_t *keys);
/** The keys of channel @a id as JSON (never the secret). */
json_t *admin_chankeys_json(admin_req_t *a, apr_int64_t id);

admin_handler_fn admin_abilities_list;
/**
 * Rebuild the abilities of channel @a id from its row: one per
 * (channel_groups x models), enabled iff the channel is enabled, with its
 * priority and weight; none when the channel is gone. Run it inside the
 * transaction that changed the channel.
 */
/**
 * Run one small chat request through channel @a id (relay_test.c) and return
 * {ok, status, message, channel_id, model, upstream_model, latency_ms,
 * reenabled} (a new reference), or NULL with *@a http_status 404 (no such
 * channel) or 409 (no usable key). An auto-disabled channel that passes is
 * enabled again. It borrows a database connection only to record the
 * result, after the upstream answered: call it holding none.
 */
json_t *relay_channel_test(request_rec *r, apr_int64_t id, const char *model,
                           int *http_status);

apr_status_t relay_abilities_rebuild(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t id,
                                     const char **err);

admin_handler_fn admin_logs_list, admin_logs_get, admin_stats_usage;
/** The key, user, model, channel (and, @a with_status, status and stream)
 *  filters of the query as WHERE conditions of @a w (admin_logs.c). */
void admin_logs_filters(admin_req_t *a, admin_sql_t *w, int with_status);
/** from/to (Unix ms) from the query; untouched when absent. */
int admin_logs_range(admin_req_t *a, apr_int64_t *from, apr_int64_t *to);
/** A page of request logs filtered by the query (@a allowed names its
 *  parameters), shown as @a cols; with @a owner, only the rows of the user it
 *  returns (0: it has answered the request, e.g. no user). */
int admin_logs_send_list(admin_req_t *a, const char *const *allowed, const admin_col_t *cols,
                         apr_int64_t (*owner)(admin_req_t *a));

/* ---- admin_export.c ------------------------------------------------------ */
/**
 * Answer with the rows of @a w (its FROM @a table and WHERE, as the list
 * route filters) as an attachment "<name>.csv" or "<name>.jsonl" (@a format
 * "csv" or "jsonl"), streamed in batches up to the highest id at the start.
 * Returns OK (errors answered or, once streaming, logged with NEB01532 and
 * the response broken off).
 */
int admin_export(admin_req_t *a, const admin_sql_t *w, const char *table,
                 const admin_col_t *cols, const char *format, const char *name);

/* ---- governance: policies (admin_policies.c), the audit log (admin_audit.c) */
admin_handler_fn admin_policies_list, admin_policies_create, admin_policies_get,
    admin_policies_patch, admin_policies_delete, admin_policies_test;
admin_handler_fn admin_audit_list, admin_audit_export;
/** Whether the principal may read policies and the audit log (operator,
 *  admin, root): 1, or 0 after sending 403. */
int admin_policies_may_read(admin_req_t *a);

#endif /* RELAY_ADMIN_H */

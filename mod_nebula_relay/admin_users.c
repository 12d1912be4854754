/* admin_users.c: /api/users: list, create, read, change and (soft) delete
 * users, set their password, rotate or revoke their management access token.
 *
 * Deleting a user never removes its row: the ledger, request logs and keys
 * refer to it. DELETE sets status 'deleted', disables its keys, clears its
 * password and access token and ends its sessions; a deleted user keeps its
 * username (so logs stay unambiguous) and can no longer be changed.
 *
 * Who may change whom: root anyone; an admin itself and users of role
 * 'user', and may give no role but 'user'. Nobody changes their own role or
 * status or deletes themselves (no accidental lock-out).
 *
 * A user's quota is its wallet: the balance of its account (owner_kind
 * user) in mod_nebula_billing's ledger. Reading shows that balance; setting
 * it posts an adjustment to the new balance through nebula_billing_post()
 * (the users.quota column is no longer written). org_id makes the user pay
 * from an organisation's wallet instead. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "admin_billing.h"
#include "nebula_crypto.h"
#include "nebula_id.h"
#include "nebula_ledger.h"

static const admin_col_t user_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"username", NULL, ADMIN_COL_STR},
    {"display_name", NULL, ADMIN_COL_STR},
    {"role", NULL, ADMIN_COL_STR},
    {"user_group", NULL, ADMIN_COL_STR},
    {"status", NULL, ADMIN_COL_STR},
    {"org_id", NULL, ADMIN_COL_NINT},
    /* the wallet's balance; a wallet never used has no row yet */
    {"quota",
     "COALESCE((SELECT wa.balance FROM accounts wa WHERE wa.owner_kind = 'user' AND "
     "wa.owner_id = users.id), 0)",
     ADMIN_COL_INT},
    {"used_quota", NULL, ADMIN_COL_INT},
    {"request_count", NULL, ADMIN_COL_INT},
    {"has_password", "CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END", ADMIN_COL_BOOL},
    {"has_access_token", "CASE WHEN access_token_hash IS NULL THEN 0 ELSE 1 END",
     ADMIN_COL_BOOL},
    {"created_at", NULL, ADMIN_COL_INT},
    {"updated_at", NULL, ADMIN_COL_INT},
    {NULL, NULL, 0}};

static const char *const roles[] = {"user", "operator", "admin", "root", NULL};
static const char *const statuses[] = {"active", "disabled", NULL};
static const char *const list_statuses[] = {"active", "disabled", "deleted", NULL};

static int in_list(const char *const *list, const char *s)
{
    int i;

    for (i = 0; list[i]; ++i) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

int admin_users_valid_name(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > 64 || !apr_isalnum(s[0])) {
        return 0;
    }
    for (i = 1; i < n; ++i) {
        if (!apr_isalnum(s[i]) && !strchr("._@-", s[i])) {
            return 0;
        }
    }
    return 1;
}

json_t *admin_users_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, user_cols, NULL),
                    " FROM users WHERE id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return json_null();
    }
    return admin_row_json(&rows, 0, 0, user_cols);
}

int admin_users_lookup(admin_req_t *a, apr_int64_t id, const char **role,
                       const char **status)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;

    if (!admin_db(a)) {
        return 0;
    }
    if (admin_db_select(a, "SELECT role, status FROM users WHERE id = %lld", 1, args,
                        &rows) != APR_SUCCESS) {
        admin_db_fail(a, "read a user");
        return 0;
    }
    if (rows.nrows != 1) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                    "user %" APR_INT64_T_FMT " does not exist", id);
        return 0;
    }
    *role = rows.rows[0][0];
    *status = rows.rows[0][1];
    return 1;
}

int admin_users_hash_password(admin_req_t *a, const char *param, const char *password,
                              const char **hash)
{
    apr_size_t n = password ? strlen(password) : 0;

    if (n < 8 || n > 1024) {
        return admin_invalid(a, param, "'%s' must be 8 to 1024 bytes long", param);
    }
    if (nebula_crypto_password_hash(a->r->pool, password, hash) != APR_SUCCESS) {
        return admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                          "cannot hash the password");
    }
    return ADMIN_SET;
}

/* The target of /api/users/{id}: exists, not deleted, and manageable. */
static int target_user(admin_req_t *a, const char **role)
{
    const char *status;

    if (!admin_users_lookup(a, a->id[0], role, &status)) {
        return 0;
    }
    if (!admin_auth_may_manage(a, a->id[0], *role)) {
        admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL,
                    "only root may change users of role '%s'", *role);
        return 0;
    }
    if (strcmp(status, "deleted") == 0) {
        admin_error(a, HTTP_CONFLICT, "user_deleted", NULL,
                    "user %" APR_INT64_T_FMT " is deleted", a->id[0]);
        return 0;
    }
    return 1;
}

/* Whether @a username is free for user @a self (0: a new user); 409
 * recorded if not. */
static int username_free(admin_req_t *a, const char *username, apr_int64_t self)
{
    const char *args[2] = {username, admin_i64(a, self)};
    nebula_dbd_rows_t rows;

    if (admin_db_select(a, "SELECT id FROM users WHERE username = %s AND id <> %lld", 2,
                        args, &rows) != APR_SUCCESS) {
        return admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                          "database error while checking the username");
    }
    if (rows.nrows > 0) {
        return admin_fail(a, HTTP_CONFLICT, "username_taken", "username",
                          "the username '%s' is taken", username);
    }
    return ADMIN_SET;
}

int admin_users_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "q", "group",
                                          "role", "status",   NULL};
    const char *q = NULL, *group = NULL, *role = NULL, *status = NULL;
    apr_int64_t page, per_page;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "q", 64, &q);
    admin_query_str(a, "group", 64, &group);
    admin_query_str(a, "role", 16, &role);
    admin_query_str(a, "status", 16, &status);
    if (role && !in_list(roles, role)) {
        admin_invalid(a, "role", "'role' must be one of: user, operator, admin, root");
    }
    if (status && !in_list(list_statuses, status)) {
        admin_invalid(a, "status", "'status' must be one of: active, disabled, deleted");
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM users");
    admin_sql_where(&w, status ? "status = %s" : "status <> 'deleted'", status);
    if (q) {
        admin_sql_where(&w,
                        "(LOWER(username) LIKE LOWER(%s) ESCAPE '!' OR "
                        "LOWER(display_name) LIKE LOWER(%s) ESCAPE '!')",
                        admin_like(a->r->pool, q));
    }
    if (group) {
        admin_sql_where(&w, "user_group = %s", group);
    }
    if (role) {
        admin_sql_where(&w, "role = %s", role);
    }
    return admin_db_send_page(a, &w, user_cols, NULL, "id", page, per_page, "users");
}

typedef struct {
    const char *username, *password, *role, *group, *display_name, *status;
    apr_int64_t quota;  /* PATCH: -1 when not given */
    apr_int64_t org_id; /* when st_org is ADMIN_SET; ADMIN_NULL: leave the org */
    int st_org;
} user_input_t;

/* Set user @a id's wallet to @a quota: an adjustment to that balance, keyed
 * "user-quota:<id>:<uuid>" (each request is a new setting). A quota equal
 * to the balance posts nothing, so that a form sending every field leaves
 * no empty rows in the ledger. 1, or 0 when an error was sent. */
static int set_quota(admin_req_t *a, apr_int64_t id, apr_int64_t quota)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_posting_result_t out;
    nebula_dbd_rows_t rows;
    nebula_posting_t p;
    int rc;

    if (admin_db_select(a,
                        "SELECT balance FROM accounts WHERE owner_kind = 'user' AND "
                        "owner_id = %lld",
                        1, args, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "read a wallet");
        return 0;
    }
    if (quota == (rows.nrows == 1 ? nebula_ap_db_int(&rows, 0, 0) : 0)) {
        return 1;
    }
    memset(&p, 0, sizeof(p));
    p.owner_kind = "user";
    p.owner_id = id;
    p.kind = NEBULA_LEDGER_ADJUSTMENT;
    p.amount = quota;
    p.set_balance = 1;
    /* the admin states the balance: holds in flight may take it below 0 */
    p.allow_negative = 1;
    p.idem_key = apr_psprintf(a->r->pool, "user-quota:%" APR_INT64_T_FMT ":%s", id,
                              nebula_id_uuid7(a->r->pool));
    p.actor = admin_billing_actor(a);
    p.detail = admin_billing_detail(a, "quota set through the users API");
    if ((rc = admin_billing_post(a, &p, &out)) < 0) {
        return 0;
    }
    if (rc != NEBULA_BILLING_OK && rc != NEBULA_BILLING_DUPLICATE) {
        admin_billing_post_error(a, rc);
        return 0;
    }
    return 1;
}

/* The org_id member: null (no organisation) or an existing organisation. */
static void read_org_id(admin_req_t *a, json_t *b, user_input_t *in)
{
    in->st_org = admin_field_int(a, b, "org_id", ADMIN_F_NULLABLE, 1, ADMIN_MAX_AMOUNT,
                                 &in->org_id);
}

/* Read and check the fields of POST /api/users. */
static void create_input(admin_req_t *a, json_t *b, user_input_t *in)
{
    static const char *const fields[] = {"username",   "password", "role",
                                         "user_group", "quota",    "display_name",
                                         "status",     "org_id",   NULL};

    memset(in, 0, sizeof(*in));
    in->role = "user";
    in->group = "default";
    in->display_name = "";
    in->status = "active";
    in->quota = 0;
    admin_only_fields(a, b, fields);
    if (admin_field_str(a, b, "username", ADMIN_F_REQUIRED, 64, &in->username) ==
            ADMIN_SET &&
        !admin_users_valid_name(in->username)) {
        admin_invalid(a, "username",
                      "'username' must be 1 to 64 of A-Z a-z 0-9 . _ @ -, "
                      "starting with a letter or digit");
    }
    admin_field_str(a, b, "password", ADMIN_F_NULLABLE, 1024, &in->password);
    admin_field_enum(a, b, "role", 0, roles, &in->role);
    admin_field_str(a, b, "user_group", ADMIN_F_NONEMPTY, 64, &in->group);
    admin_field_int(a, b, "quota", 0, 0, ADMIN_MAX_AMOUNT, &in->quota);
    admin_field_str(a, b, "display_name", 0, 255, &in->display_name);
    admin_field_enum(a, b, "status", 0, statuses, &in->status);
    read_org_id(a, b, in);
    if (!a->err_status && strcmp(in->role, "user") && strcmp(a->who.role, "root")) {
        admin_fail(a, HTTP_FORBIDDEN, "forbidden", "role",
                   "only root may create users of role '%s'", in->role);
    }
}

int admin_users_create(admin_req_t *a)
{
    json_t *b = admin_body(a);
    user_input_t in;
    const char *hash = NULL, *args[9];
    apr_int64_t id, now = admin_now_ms();

    if (b == NULL) {
        return admin_send_recorded(a);
    }
    create_input(a, b, &in);
    if (!a->err_status && admin_db(a) == 0) {
        return OK;
    }
    if (!a->err_status && in.quota > 0 && !admin_billing_available(a)) {
        return OK; /* refused before anything is created */
    }
    if (!a->err_status) {
        admin_groups_check_name(a, "user_group", in.group);
    }
    if (!a->err_status && in.st_org == ADMIN_SET) {
        admin_orgs_check(a, "org_id", in.org_id);
    }
    if (!a->err_status && in.password) {
        admin_users_hash_password(a, "password", in.password, &hash);
    }
    if (a->err_status || username_free(a, in.username, 0) != ADMIN_SET) {
        return admin_send_recorded(a);
    }
    args[0] = in.username, args[1] = in.display_name, args[2] = in.role;
    args[3] = in.group, args[4] = in.status;
    args[5] = in.st_org == ADMIN_SET ? admin_i64(a, in.org_id) : NULL;
    args[6] = hash, args[7] = admin_i64(a, now), args[8] = args[7];
    if (admin_db_insert(a,
                        "INSERT INTO users (username, display_name, role, user_group, "
                        "status, org_id, password_hash, created_at, updated_at) VALUES "
                        "(%s, %s, %s, %s, %s, %lld, %s, %lld, %lld)",
                        9, args, &id) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "username_taken", "username",
                               "the username '%s' is taken", in.username);
        }
        return admin_db_fail(a, "create a user");
    }
    relay_gen_bump();
    admin_audit(a, "create-user",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " '%s' (%s)", id,
                             in.username, in.role));
    if (in.quota > 0 && !set_quota(a, id, in.quota)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                      "NEB01534: admin API: user %" APR_INT64_T_FMT
                      " was created but its quota could not be set",
                      id);
        return OK; /* the error was sent */
    }
    return admin_send_data(a, HTTP_CREATED, admin_users_json(a, id));
}

int admin_users_get(admin_req_t *a)
{
    json_t *u;

    if (!admin_db(a)) {
        return OK;
    }
    u = admin_users_json(a, a->id[0]);
    if (json_is_null(u)) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "user %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    return admin_send_data(a, HTTP_OK, u);
}

/* Read and check the fields of PATCH /api/users/{id} into @a in (NULL or -1
 * when absent); the number of fields given. */
static int patch_input(admin_req_t *a, json_t *b, user_input_t *in)
{
    static const char *const fields[] = {"username",     "role",   "user_group", "quota",
                                         "display_name", "status", "org_id",     NULL};

    memset(in, 0, sizeof(*in));
    in->quota = -1;
    admin_only_fields(a, b, fields);
    if (admin_field_str(a, b, "username", 0, 64, &in->username) == ADMIN_SET &&
        !admin_users_valid_name(in->username)) {
        admin_invalid(a, "username",
                      "'username' must be 1 to 64 of A-Z a-z 0-9 . _ @ -, "
                      "starting with a letter or digit");
    }
    admin_field_enum(a, b, "role", 0, roles, &in->role);
    admin_field_str(a, b, "user_group", ADMIN_F_NONEMPTY, 64, &in->group);
    admin_field_int(a, b, "quota", 0, 0, ADMIN_MAX_AMOUNT, &in->quota);
    admin_field_str(a, b, "display_name", 0, 255, &in->display_name);
    admin_field_enum(a, b, "status", 0, statuses, &in->status);
    read_org_id(a, b, in);
    if (!a->err_status && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
    return (int)json_object_size(b);
}

/* Role and status rules of a change to user a->id[0] (now of role @a cur). */
static void patch_rules(admin_req_t *a, const user_input_t *in, const char *cur)
{
    int self = a->id[0] == a->who.user_id;

    if (self && in->role && strcmp(in->role, cur)) {
        admin_fail(a, HTTP_CONFLICT, "self_change", "role",
                   "you cannot change your own role");
    }
    if (self && in->status && strcmp(in->status, "active")) {
        admin_fail(a, HTTP_CONFLICT, "self_change", "status",
                   "you cannot disable yourself");
    }
    if (in->role && strcmp(in->role, "user") && strcmp(in->role, cur) &&
        strcmp(a->who.role, "root")) {
        admin_fail(a, HTTP_FORBIDDEN, "forbidden", "role",
                   "only root may give the role '%s'", in->role);
    }
    if (!a->err_status && in->group) {
        admin_groups_check_name(a, "user_group", in->group);
    }
    if (!a->err_status && in->username) {
        username_free(a, in->username, a->id[0]);
    }
    if (!a->err_status && in->st_org == ADMIN_SET) {
        admin_orgs_check(a, "org_id", in->org_id);
    }
}

int admin_users_patch(admin_req_t *a)
{
    json_t *b = admin_body(a);
    const char *cur;
    user_input_t in;
    admin_sql_t q;

    if (b == NULL || (patch_input(a, b, &in), a->err_status)) {
        return admin_send_recorded(a);
    }
    if (!target_user(a, &cur)) {
        return OK;
    }
    patch_rules(a, &in, cur);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    /* the quota first: it is the one change that can be refused now */
    if (in.quota >= 0 && !set_quota(a, a->id[0], in.quota)) {
        return OK;
    }
    admin_sql_init(&q, a->r->pool, "");
    admin_sql_arg(&q, "UPDATE users SET updated_at = %lld", admin_i64(a, admin_now_ms()));
    if (in.username) {
        admin_sql_arg(&q, ", username = %s", in.username);
    }
    if (in.role) {
        admin_sql_arg(&q, ", role = %s", in.role);
    }
    if (in.group) {
        admin_sql_arg(&q, ", user_group = %s", in.group);
    }
    if (in.st_org == ADMIN_SET) {
        admin_sql_arg(&q, ", org_id = %lld", admin_i64(a, in.org_id));
    }
    else if (in.st_org == ADMIN_NULL) {
        admin_sql_add(&q, ", org_id = NULL");
    }
    if (in.display_name) {
        admin_sql_arg(&q, ", display_name = %s", in.display_name);
    }
    if (in.status) { /* disabling ends the user's sessions */
        admin_sql_arg(&q, ", status = %s", in.status);
        if (strcmp(in.status, "active")) {
            admin_sql_add(&q, ", session_version = session_version + 1");
        }
    }
    admin_sql_arg(&q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "username_taken", "username",
                               "the username '%s' is taken", in.username);
        }
        return admin_db_fail(a, "change a user");
    }
    relay_gen_bump();
    admin_audit(a, "update-user", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_OK, admin_users_json(a, a->id[0]));
}

int admin_users_delete(admin_req_t *a)
{
    const char *role, *status, *args[2];

    if (!admin_users_lookup(a, a->id[0], &role, &status)) {
        return OK;
    }
    if (a->id[0] == a->who.user_id) {
        return admin_error(a, HTTP_CONFLICT, "self_change", NULL,
                           "you cannot delete yourself");
    }
    if (!admin_auth_may_manage(a, a->id[0], role)) {
        return admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL,
                           "only root may delete users of role '%s'", role);
    }
    if (strcmp(status, "deleted") == 0) {
        return admin_send(a, HTTP_NO_CONTENT, NULL);
    }
    args[0] = admin_i64(a, admin_now_ms());
    args[1] = admin_i64(a, a->id[0]);
    if (admin_db_begin(a) != APR_SUCCESS ||
        admin_db_exec(a,
                      "UPDATE users SET status = 'deleted', password_hash = NULL, "
                      "access_token_hash = NULL, session_version = session_version + 1, "
                      "updated_at = %lld WHERE id = %lld",
                      2, args, NULL) != APR_SUCCESS ||
        admin_db_exec(a, "UPDATE api_keys SET status = 'disabled' WHERE user_id = %lld",
                      1, args + 1, NULL) != APR_SUCCESS ||
        admin_db_commit(a) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "delete a user");
    }
    relay_gen_bump();
    admin_audit(a, "delete-user", args[1]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

int admin_users_password(admin_req_t *a)
{
    static const char *const fields[] = {"password", NULL};
    json_t *b = admin_body(a);
    const char *role, *pw = NULL, *hash = NULL, *args[3];

    if (b) {
        admin_only_fields(a, b, fields);
        if (admin_field_str(a, b, "password", ADMIN_F_REQUIRED | ADMIN_F_NULLABLE, 1024,
                            &pw) == ADMIN_SET) {
            admin_users_hash_password(a, "password", pw, &hash);
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!target_user(a, &role)) {
        return OK;
    }
    args[0] = hash;
    args[1] = admin_i64(a, admin_now_ms());
    args[2] = admin_i64(a, a->id[0]);
    if (admin_db_exec(a,
                      "UPDATE users SET password_hash = %s, session_version = "
                      "session_version + 1, updated_at = %lld WHERE id = %lld",
                      3, args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "set a password");
    }
    relay_gen_bump();
    admin_audit(a, hash ? "set-password" : "clear-password", args[2]);
    return admin_send_data(a, HTTP_OK, admin_users_json(a, a->id[0]));
}

/* Set users.access_token_hash of a->id[0] to @a hash (NULL: revoke). */
static int set_token_hash(admin_req_t *a, const char *hash)
{
    const char *role, *args[3];

    if (!target_user(a, &role)) {
        return 0;
    }
    args[0] = hash;
    args[1] = admin_i64(a, admin_now_ms());
    args[2] = admin_i64(a, a->id[0]);
    if (admin_db_exec(a,
                      "UPDATE users SET access_token_hash = %s, updated_at = %lld "
                      "WHERE id = %lld",
                      3, args, NULL) != APR_SUCCESS) {
        admin_db_fail(a, "set an access token");
        return 0;
    }
    relay_gen_bump();
    admin_audit(a, hash ? "rotate-access-token" : "revoke-access-token", args[2]);
    return 1;
}

int admin_users_token_rotate(admin_req_t *a)
{
    const char *tok = nebula_crypto_token(a->r->pool, ADMIN_ACCESS_TOKEN_PREFIX,
                                          NEBULA_CRYPTO_API_KEY_CHARS);
    json_t *out;

    if (tok == NULL) {
        return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                           "cannot make a token");
    }
    if (!set_token_hash(a, nebula_crypto_sha256_hex(a->r->pool, tok, strlen(tok)))) {
        return OK;
    }
    out = json_object();
    json_object_set_new(out, "user_id", json_integer(a->id[0]));
    json_object_set_new(out, "access_token", json_string(tok));
    return admin_send_data(a, HTTP_OK, out);
}

int admin_users_token_revoke(admin_req_t *a)
{
    if (!set_token_hash(a, NULL)) {
        return OK;
    }
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

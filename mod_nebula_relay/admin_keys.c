/* admin_keys.c: /api/keys: client API keys. A new key is made by
 * nebula_apikey_generate() and shown once in the creation response; only its
 * hash (nebula_apikey_hash) and display prefix are stored, so the API can
 * never return it again. POST /api/keys/import stores the hash of a key
 * issued by new-api (48 characters, with or without "sk-"), so that clients
 * keep using it unchanged. Keys are really deleted (request logs keep the
 * key id); the owner's usage stays on the user. */
#include <arpa/inet.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_keys.h"
#include "nebula_apikey.h"

const admin_col_t admin_keys_cols[] = {{"id", NULL, ADMIN_COL_INT},
                                       {"user_id", NULL, ADMIN_COL_INT},
                                       {"username", "u.username", ADMIN_COL_NSTR},
                                       {"name", NULL, ADMIN_COL_STR},
                                       {"key_prefix", NULL, ADMIN_COL_STR},
                                       {"status", NULL, ADMIN_COL_STR},
                                       {"key_group", NULL, ADMIN_COL_NSTR},
                                       {"expires_at", NULL, ADMIN_COL_NINT},
                                       {"remain_quota", NULL, ADMIN_COL_INT},
                                       {"unlimited_quota", NULL, ADMIN_COL_BOOL},
                                       {"used_quota", NULL, ADMIN_COL_INT},
                                       {"allowed_models", NULL, ADMIN_COL_JSON},
                                       {"allowed_ips", NULL, ADMIN_COL_JSON},
                                       {"max_body_bytes", NULL, ADMIN_COL_NINT},
                                       {"created_at", NULL, ADMIN_COL_INT},
                                       {"accessed_at", NULL, ADMIN_COL_NINT},
                                       {NULL, NULL, 0}};

static const char *const key_statuses[] = {"active", "disabled", "expired", "exhausted",
                                           NULL};
const char *const admin_keys_settable_statuses[] = {"active", "disabled", NULL};

int admin_keys_valid_cidr(const char *s)
{
    const char *slash = strchr(s, '/');
    unsigned char buf[16];
    char addr[64];
    apr_size_t n = slash ? (apr_size_t)(slash - s) : strlen(s);
    int v6, bits = 0, max;

    if (n == 0 || n >= sizeof(addr)) {
        return 0;
    }
    memcpy(addr, s, n);
    addr[n] = '\0';
    v6 = strchr(addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, buf) != 1) {
        return 0;
    }
    if (slash == NULL) {
        return 1;
    }
    max = v6 ? 128 : 32;
    for (s = slash + 1; apr_isdigit(*s) && bits <= max; ++s) {
        bits = bits * 10 + (*s - '0');
    }
    return *s == '\0' && s > slash + 1 && (slash[1] != '0' || s == slash + 2) &&
           bits <= max;
}

json_t *admin_keys_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, admin_keys_cols, "k"),
                    " " ADMIN_KEYS_FROM " WHERE k.id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, admin_keys_cols);
}

static void read_ips(admin_req_t *a, json_t *b, admin_key_input_t *in)
{
    json_t *v;
    size_t i;

    in->st_ips =
        admin_field_strarray(a, b, "allowed_ips", ADMIN_F_NULLABLE, 256, 64, &in->ips);
    json_array_foreach(in->ips, i, v)
    {
        if (!admin_keys_valid_cidr(json_string_value(v))) {
            admin_invalid(a, "allowed_ips", "'%s' is not an IP address or CIDR block",
                          json_string_value(v));
            return;
        }
    }
}

/* The fields shared by create, import and patch. */
void admin_keys_read_fields(admin_req_t *a, json_t *b, admin_key_input_t *in)
{
    apr_int64_t now = admin_now_ms();

    in->st_name = admin_field_str(a, b, "name", 0, 255, &in->name);
    in->st_group = admin_field_str(a, b, "key_group", ADMIN_F_NULLABLE | ADMIN_F_NONEMPTY,
                                   64, &in->group);
    in->st_expires = admin_field_int(a, b, "expires_at", ADMIN_F_NULLABLE, 1,
                                     ADMIN_MAX_AMOUNT, &in->expires);
    if (in->st_expires == ADMIN_SET && in->expires <= now) {
        admin_invalid(a, "expires_at", "'expires_at' is in the past");
    }
    in->st_remain =
        admin_field_int(a, b, "remain_quota", 0, 0, ADMIN_MAX_AMOUNT, &in->remain);
    in->st_unlimited = admin_field_bool(a, b, "unlimited_quota", 0, &in->unlimited);
    in->st_models = admin_field_strarray(a, b, "allowed_models", ADMIN_F_NULLABLE, 1000,
                                         255, &in->models);
    read_ips(a, b, in);
    in->st_max_body = admin_field_int(a, b, "max_body_bytes", ADMIN_F_NULLABLE, 1024,
                                      APR_INT64_C(1073741824), &in->max_body);
    if (!a->err_status && in->st_group == ADMIN_SET) {
        admin_groups_check_name(a, "key_group", in->group);
    }
}

/* The owner of a new key: exists, not deleted, and the caller may act for it. */
static int check_owner(admin_req_t *a, apr_int64_t user_id)
{
    const char *role, *status;

    if (!admin_users_lookup(a, user_id, &role, &status)) {
        return 0;
    }
    if (strcmp(status, "deleted") == 0) {
        admin_error(a, HTTP_CONFLICT, "user_deleted", "user_id",
                    "user %" APR_INT64_T_FMT " is deleted", user_id);
        return 0;
    }
    if (!admin_auth_may_manage(a, user_id, role)) {
        admin_error(a, HTTP_FORBIDDEN, "forbidden", "user_id",
                    "only root may manage keys of users of role '%s'", role);
        return 0;
    }
    return 1;
}

static const char *opt_int(admin_req_t *a, int st, apr_int64_t v, apr_int64_t dflt)
{
    return st == ADMIN_NULL ? NULL : admin_i64(a, st == ADMIN_SET ? v : dflt);
}

/* Insert the key whose hash and prefix are given; its id. */
static apr_status_t insert_key(admin_req_t *a, const admin_key_input_t *in,
                               const char *hash, const char *prefix, apr_int64_t *id)
{
    const char *args[13];

    args[0] = admin_i64(a, in->user_id);
    args[1] = in->name ? in->name : "";
    args[2] = hash;
    args[3] = prefix;
    args[4] = in->st_group == ADMIN_SET ? in->group : NULL;
    args[5] = in->st_expires == ADMIN_SET ? admin_i64(a, in->expires) : NULL;
    args[6] = admin_i64(a, in->st_remain == ADMIN_SET ? in->remain : 0);
    args[7] = admin_i64(a, in->st_unlimited == ADMIN_SET ? in->unlimited : 0);
    args[8] = admin_json_text(a, in->models);
    args[9] = admin_json_text(a, in->ips);
    args[10] = in->st_max_body == ADMIN_SET ? admin_i64(a, in->max_body) : NULL;
    args[11] = admin_i64(a, admin_now_ms());
    return admin_db_insert(
        a,
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, "
        "status, key_group, expires_at, remain_quota, unlimited_quota, "
        "used_quota, allowed_models, allowed_ips, max_body_bytes, "
        "created_at) VALUES (%lld, %s, %s, %s, 'active', %s, %lld, "
        "%lld, %lld, 0, %s, %s, %lld, %lld)",
        12, args, id);
}

/* Create (import == 0) or import a key from a checked request. */
int admin_keys_create_key(admin_req_t *a, admin_key_input_t *in, int import)
{
    char *key = NULL, *hash, *prefix;
    apr_int64_t id;
    json_t *out;

    if (!import) {
        key = nebula_apikey_generate(a->r->pool, &hash, &prefix);
        if (key == NULL) {
            return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                               "cannot make a key");
        }
    }
    else {
        hash = nebula_apikey_hash(a->r->pool, in->key);
        prefix =
            apr_pstrcat(a->r->pool, "sk-",
                        apr_pstrndup(a->r->pool, nebula_apikey_secret(in->key), 5), NULL);
    }
    if (insert_key(a, in, hash, prefix, &id) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "key_exists", "key",
                               "this key is already stored");
        }
        return admin_db_fail(a, import ? "import a key" : "create a key");
    }
    relay_gen_bump();
    admin_audit(a, import ? "import-key" : "create-key",
                apr_psprintf(a->r->pool,
                             "%" APR_INT64_T_FMT " for user %" APR_INT64_T_FMT, id,
                             in->user_id));
    out = admin_keys_json(a, id);
    if (out && key) {
        json_object_set_new(out, "key", json_string(key));
    }
    return admin_send_data(a, HTTP_CREATED, out);
}

/* A new-api key: 48 characters of [0-9A-Za-z], with or without "sk-". */
static int valid_import_key(const char *key)
{
    const char *s = nebula_apikey_secret(key);
    int i;

    for (i = 0; s[i]; ++i) {
        if (!apr_isalnum(s[i])) {
            return 0;
        }
    }
    return i == NEBULA_CRYPTO_API_KEY_CHARS;
}

static int create_or_import(admin_req_t *a, int import)
{
    static const char *const fields[] = {"user_id",
                                         "name",
                                         "key_group",
                                         "expires_at",
                                         "remain_quota",
                                         "unlimited_quota",
                                         "allowed_models",
                                         "allowed_ips",
                                         "max_body_bytes",
                                         "key",
                                         NULL};
    static const char *const create_fields[] = {"user_id",        "name",
                                                "key_group",      "expires_at",
                                                "remain_quota",   "unlimited_quota",
                                                "allowed_models", "allowed_ips",
                                                "max_body_bytes", NULL};
    json_t *b = admin_body(a);
    admin_key_input_t in;

    memset(&in, 0, sizeof(in));
    if (b == NULL) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (!import && json_object_get(b, "key")) {
        admin_invalid(a, "key",
                      "unknown field 'key' (to store an existing key use "
                      "POST /api/keys/import)");
    }
    admin_only_fields(a, b, import ? fields : create_fields);
    admin_field_int(a, b, "user_id", ADMIN_F_REQUIRED, 1, ADMIN_MAX_AMOUNT, &in.user_id);
    if (import &&
        admin_field_str(a, b, "key", ADMIN_F_REQUIRED, 64, &in.key) == ADMIN_SET &&
        !valid_import_key(in.key)) {
        admin_invalid(a, "key",
                      "'key' must be 48 characters of A-Z a-z 0-9, with or "
                      "without the prefix 'sk-'");
    }
    admin_keys_read_fields(a, b, &in);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!check_owner(a, in.user_id)) {
        return OK;
    }
    return admin_keys_create_key(a, &in, import);
}

int admin_keys_create(admin_req_t *a)
{
    return create_or_import(a, 0);
}

int admin_keys_import(admin_req_t *a)
{
    return create_or_import(a, 1);
}

int admin_keys_get(admin_req_t *a)
{
    json_t *k;

    if (!admin_db(a)) {
        return OK;
    }
    if ((k = admin_keys_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "key %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    return admin_send_data(a, HTTP_OK, k);
}

void admin_keys_search(admin_req_t *a, admin_sql_t *w, const char *status, const char *q)
{
    if (status) {
        admin_sql_where(w, "k.status = %s", status);
    }
    if (q) {
        admin_sql_where(w,
                        "(LOWER(k.name) LIKE LOWER(%s) ESCAPE '!' OR k.key_prefix LIKE %s "
                        "ESCAPE '!')",
                        admin_like(a->r->pool, q));
    }
}

int admin_keys_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "user_id", "status",
                                          "q",    "group",    NULL};
    const char *status = NULL, *q = NULL, *group = NULL;
    apr_int64_t page, per_page, user_id = 0;
    admin_sql_t w;
    int i;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_int(a, "user_id", 1, ADMIN_MAX_AMOUNT, &user_id);
    admin_query_str(a, "q", 64, &q);
    admin_query_str(a, "group", 64, &group);
    if (admin_query_str(a, "status", 16, &status) == ADMIN_SET) {
        for (i = 0; key_statuses[i] && strcmp(key_statuses[i], status); ++i) {
        }
        if (key_statuses[i] == NULL) {
            admin_invalid(a, "status",
                          "'status' must be one of: active, disabled, expired, "
                          "exhausted");
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, ADMIN_KEYS_FROM);
    if (user_id) {
        admin_sql_where(&w, "k.user_id = %lld", admin_i64(a, user_id));
    }
    if (group) {
        admin_sql_where(&w, "k.key_group = %s", group);
    }
    admin_keys_search(a, &w, status, q);
    return admin_db_send_page(a, &w, admin_keys_cols, "k", "k.id DESC", page, per_page,
                              "keys");
}

/* The key a->id[0] exists and the caller may manage its owner. */
static int target_key(admin_req_t *a)
{
    json_t *k;
    apr_int64_t owner;
    const char *role, *status;

    if (!admin_db(a)) {
        return 0;
    }
    if ((k = admin_keys_json(a, a->id[0])) == NULL) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                    "key %" APR_INT64_T_FMT " does not exist", a->id[0]);
        return 0;
    }
    owner = nebula_json_geti(k, 0, "user_id", NULL);
    json_decref(k);
    if (!admin_users_lookup(a, owner, &role, &status)) {
        return 0;
    }
    if (!admin_auth_may_manage(a, owner, role)) {
        admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL,
                    "only root may manage keys of users of role '%s'", role);
        return 0;
    }
    return 1;
}

/* UPDATE api_keys for the fields present in @a in. */
static const char *patch_sql(admin_req_t *a, const admin_key_input_t *in, admin_sql_t *q)
{
    admin_sql_init(q, a->r->pool, "UPDATE api_keys SET id = id");
    if (in->st_name == ADMIN_SET) {
        admin_sql_arg(q, ", name = %s", in->name);
    }
    if (in->st_group) {
        admin_sql_arg(q, ", key_group = %s", in->group);
    }
    if (in->st_expires) {
        admin_sql_arg(q, ", expires_at = %lld",
                      opt_int(a, in->st_expires, in->expires, 0));
    }
    if (in->st_remain) {
        admin_sql_arg(q, ", remain_quota = %lld", admin_i64(a, in->remain));
    }
    if (in->st_unlimited) {
        admin_sql_arg(q, ", unlimited_quota = %lld", admin_i64(a, in->unlimited));
    }
    if (in->st_models) {
        admin_sql_arg(q, ", allowed_models = %s", admin_json_text(a, in->models));
    }
    if (in->st_ips) {
        admin_sql_arg(q, ", allowed_ips = %s", admin_json_text(a, in->ips));
    }
    if (in->st_max_body) {
        admin_sql_arg(q, ", max_body_bytes = %lld",
                      opt_int(a, in->st_max_body, in->max_body, 0));
    }
    if (in->st_status) {
        admin_sql_arg(q, ", status = %s", in->status);
    }
    admin_sql_arg(q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    return q->sql;
}

int admin_keys_patch(admin_req_t *a)
{
    static const char *const fields[] = {"name",
                                         "key_group",
                                         "expires_at",
                                         "remain_quota",
                                         "unlimited_quota",
                                         "allowed_models",
                                         "allowed_ips",
                                         "max_body_bytes",
                                         "status",
                                         NULL};
    json_t *b = admin_body(a);
    admin_key_input_t in;

    memset(&in, 0, sizeof(in));
    if (b == NULL) {
        return admin_send_recorded(a);
    }
    if (!target_key(a)) {
        return OK;
    }
    admin_only_fields(a, b, fields);
    admin_keys_read_fields(a, b, &in);
    in.st_status =
        admin_field_enum(a, b, "status", 0, admin_keys_settable_statuses, &in.status);
    if (!a->err_status && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    return admin_keys_update(a, &in);
}

int admin_keys_update(admin_req_t *a, const admin_key_input_t *in)
{
    admin_sql_t q;
    const char *sql = patch_sql(a, in, &q);

    if (admin_db_exec(a, sql, q.n, q.args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change a key");
    }
    relay_gen_bump();
    admin_audit(a, "update-key", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_OK, admin_keys_json(a, a->id[0]));
}

int admin_keys_delete(admin_req_t *a)
{
    if (!target_key(a)) {
        return OK;
    }
    return admin_keys_remove(a);
}

int admin_keys_remove(admin_req_t *a)
{
    const char *args[1];

    args[0] = admin_i64(a, a->id[0]);
    if (admin_db_exec(a, "DELETE FROM api_keys WHERE id = %lld", 1, args, NULL) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete a key");
    }
    relay_gen_bump();
    admin_audit(a, "delete-key", args[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* admin_self_keys.c: /api/self/keys: a signed-in user's own client keys,
 * whatever its role. The owner is always the caller; a key of anyone else is
 * 404, exactly like a key that does not exist, so ids do not leak. The
 * validation, the insert, the update and the JSON shape are admin_keys.c's.
 *
 * What an owner may set: name, expires_at, allowed_models, allowed_ips,
 * status (active | disabled) and, when mod_nebula_billing is loaded,
 * remain_quota and unlimited_quota: the key's quota is then only a cap on
 * what the key may spend of the wallet the owner pays from, and the wallet is
 * charged whatever the cap. Without billing the key's quota is the only
 * limit there is, so it stays the managers' (403). key_group (price ratio
 * and channels) and max_body_bytes (may exceed NebulaMaxBodySize) stay the
 * managers' always. */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include "admin_keys.h"
#include "admin_self.h"

/* Members a manager sets through /api/keys only. */
static const char *const managers_only[] = {"key_group", "max_body_bytes", "user_id",
                                            "key", NULL};

apr_int64_t admin_self_user(admin_req_t *a)
{
    if (a->who.user_id == 0) {
        admin_error(
            a, HTTP_BAD_REQUEST, "no_user", NULL,
            "the admin token has no user and so no keys of its own: use /api/keys");
        return 0;
    }
    return a->who.user_id;
}

static int billing_loaded(void)
{
    return apr_dynamic_fn_retrieve("nebula_billing_post") != NULL;
}

/* Refuse what the owner may not set; then read the rest (admin_keys.c). */
static void read_own_fields(admin_req_t *a, json_t *b, admin_key_input_t *in, int patch)
{
    static const char *const fields[] = {
        "name",           "expires_at",  "remain_quota", "unlimited_quota",
        "allowed_models", "allowed_ips", "status",       NULL};
    int i;

    for (i = 0; managers_only[i]; ++i) {
        if (json_object_get(b, managers_only[i])) {
            admin_fail(a, HTTP_FORBIDDEN, "forbidden", managers_only[i],
                       "'%s' of a key is set by an administrator", managers_only[i]);
            return;
        }
    }
    if (!patch && json_object_get(b, "status")) {
        admin_invalid(a, "status", "unknown field 'status' (a new key is active)");
        return;
    }
    admin_only_fields(a, b, fields);
    if (!a->err_status && !billing_loaded() &&
        (json_object_get(b, "remain_quota") || json_object_get(b, "unlimited_quota"))) {
        admin_fail(a, HTTP_FORBIDDEN, "forbidden",
                   json_object_get(b, "remain_quota") ? "remain_quota"
                                                      : "unlimited_quota",
                   "without billing a key's quota is set by an administrator");
        return;
    }
    admin_keys_read_fields(a, b, in);
    if (patch) {
        in->st_status = admin_field_enum(a, b, "status", 0, admin_keys_settable_statuses,
                                         &in->status);
    }
}

int admin_self_keys_create(admin_req_t *a)
{
    json_t *b = admin_body(a);
    admin_key_input_t in;

    memset(&in, 0, sizeof(in));
    if (b == NULL) {
        return admin_send_recorded(a);
    }
    read_own_fields(a, b, &in, 0);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if ((in.user_id = admin_self_user(a)) == 0 || !admin_db(a)) {
        return OK;
    }
    if (billing_loaded() && !in.st_remain && !in.st_unlimited) {
        in.st_unlimited = ADMIN_SET; /* the wallet is the limit */
        in.unlimited = 1;
    }
    return admin_keys_create_key(a, &in, 0);
}

int admin_self_keys_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "status", "q", NULL};
    static const char *const statuses[] = {"active", "disabled", "expired", "exhausted",
                                           NULL};
    const char *status = NULL, *q = NULL;
    apr_int64_t page, per_page, uid;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "q", 64, &q);
    admin_query_enum(a, "status", statuses, &status);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if ((uid = admin_self_user(a)) == 0 || !admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, ADMIN_KEYS_FROM);
    admin_sql_where(&w, "k.user_id = %lld", admin_i64(a, uid));
    admin_keys_search(a, &w, status, q);
    return admin_db_send_page(a, &w, admin_keys_cols, "k", "k.id DESC", page, per_page,
                              "keys");
}

/* Key a->id[0] as JSON when it is the caller's; else NULL and 404 sent. */
static json_t *own_key(admin_req_t *a)
{
    apr_int64_t uid = admin_self_user(a);
    json_t *k;

    if (uid == 0 || !admin_db(a)) {
        return NULL;
    }
    k = admin_keys_json(a, a->id[0]);
    if (k && nebula_json_geti(k, 0, "user_id", NULL) == uid) {
        return k;
    }
    json_decref(k);
    admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                "key %" APR_INT64_T_FMT " does not exist", a->id[0]);
    return NULL;
}

int admin_self_keys_get(admin_req_t *a)
{
    json_t *k = own_key(a);

    return k ? admin_send_data(a, HTTP_OK, k) : OK;
}

int admin_self_keys_patch(admin_req_t *a)
{
    json_t *b = admin_body(a), *k;
    admin_key_input_t in;

    memset(&in, 0, sizeof(in));
    if (b == NULL) {
        return admin_send_recorded(a);
    }
    if ((k = own_key(a)) == NULL) {
        return OK;
    }
    json_decref(k);
    read_own_fields(a, b, &in, 1);
    if (!a->err_status && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    return admin_keys_update(a, &in);
}

int admin_self_keys_delete(admin_req_t *a)
{
    json_t *k = own_key(a);

    if (k == NULL) {
        return OK;
    }
    json_decref(k);
    return admin_keys_remove(a);
}

/* Self-service: any signed-in user, for its own account (never another's). */
const admin_route_t admin_self_routes[] = {
    {"GET", "/api/self/keys", admin_self_keys_list, ROUTE_ANY_ROLE},
    {"POST", "/api/self/keys", admin_self_keys_create, ROUTE_ANY_ROLE},
    {"GET", "/api/self/keys/{id}", admin_self_keys_get, ROUTE_ANY_ROLE},
    {"PATCH", "/api/self/keys/{id}", admin_self_keys_patch, ROUTE_ANY_ROLE},
    {"DELETE", "/api/self/keys/{id}", admin_self_keys_delete, ROUTE_ANY_ROLE},
    {"GET", "/api/self/logs", admin_self_logs_list, ROUTE_ANY_ROLE},
    {"GET", "/api/self/stats/usage", admin_self_stats_usage, ROUTE_ANY_ROLE},
    {"GET", "/api/self/stats/summary", admin_self_stats_summary, ROUTE_ANY_ROLE},
    {NULL, NULL, NULL, 0}};

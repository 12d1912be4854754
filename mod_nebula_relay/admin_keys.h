/**
 * @file admin_keys.h
 * @brief Client keys, shared by the managers' routes (/api/keys,
 *        admin_keys.c) and the owners' own (/api/self/keys,
 *        admin_self_keys.c): one validation, one insert, one update, one
 *        JSON shape.
 */
#ifndef ADMIN_KEYS_H
#define ADMIN_KEYS_H

#include "relay_admin.h"

/** Select list of a Key (alias "k") and what it reads from. */
extern const admin_col_t admin_keys_cols[];
#define ADMIN_KEYS_FROM "FROM api_keys k LEFT JOIN users u ON u.id = k.user_id"

/** Narrows a key list (alias k) to a status and a search text (name or
 *  prefix, LIKE-escaped); NULL: no such filter. */
void admin_keys_search(admin_req_t *a, admin_sql_t *w, const char *status, const char *q);

/** The fields of a key request; st_* hold ADMIN_SET / ADMIN_NULL / ADMIN_ABSENT. */
typedef struct {
    apr_int64_t user_id;
    const char *name, *group, *status, *key;
    apr_int64_t expires, remain, max_body;
    int unlimited;
    json_t *models, *ips;
    int st_name, st_group, st_status, st_expires, st_remain, st_max_body, st_unlimited,
        st_models, st_ips;
} admin_key_input_t;

/** Key @a id as the API shows it (a new reference), or NULL. */
json_t *admin_keys_json(admin_req_t *a, apr_int64_t id);
/** Read the fields shared by create, import and patch that @a b holds
 *  (name, key_group, expires_at, remain_quota, unlimited_quota,
 *  allowed_models, allowed_ips, max_body_bytes); errors are recorded. */
void admin_keys_read_fields(admin_req_t *a, json_t *b, admin_key_input_t *in);
/** Store a new key for in->user_id (checked by the caller) and answer 201
 *  with the key, shown this once (@a import: the hash of in->key, not
 *  shown). Returns OK. */
int admin_keys_create_key(admin_req_t *a, admin_key_input_t *in, int import);
/** Change key a->id[0] as @a in says and answer 200 with it. Returns OK. */
int admin_keys_update(admin_req_t *a, const admin_key_input_t *in);
/** Delete key a->id[0] and answer 204. Returns OK. */
int admin_keys_remove(admin_req_t *a);
/** The statuses a request may set: active, disabled. */
extern const char *const admin_keys_settable_statuses[];

#endif /* ADMIN_KEYS_H */

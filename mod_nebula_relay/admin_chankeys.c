/* admin_chankeys.c: a channel's upstream keys. Each key is sealed with the
 * relay keyring (AES-256-GCM, nebula_crypto_seal) bound to its channel by the
 * AAD "nebula-channel-key:<channel id>", so a ciphertext copied to another
 * channel does not open. Only a masked form ("sk-ab…wxyz", computed here and
 * stored in channel_keys.key_masked) is ever shown again. Routes:
 * POST /api/channels/{id}/keys, PATCH and DELETE .../keys/{key_id}. */
#include <apr_strings.h>
#include <apr_hash.h>
#include <http_protocol.h>
#include "relay_admin.h"

#define ELLIPSIS "\xe2\x80\xa6"

static const admin_col_t chankey_cols[] = {
    {"id", NULL, ADMIN_COL_INT},           {"masked", "key_masked", ADMIN_COL_STR},
    {"status", NULL, ADMIN_COL_STR},       {"failures", NULL, ADMIN_COL_INT},
    {"last_error", NULL, ADMIN_COL_NSTR},  {"cooldown_until", NULL, ADMIN_COL_INT},
    {"disabled_at", NULL, ADMIN_COL_NINT}, {"key_version", NULL, ADMIN_COL_INT},
    {"created_at", NULL, ADMIN_COL_INT},   {NULL, NULL, 0}};

static const char *const key_statuses[] = {"enabled", "disabled", NULL};

/* "sk-ab…wxyz": enough to tell keys apart, too little to use one. */
static const char *mask_key(apr_pool_t *p, const char *k)
{
    apr_size_t n = strlen(k);

    if (n >= 16) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 5), ELLIPSIS, k + n - 4, NULL);
    }
    if (n >= 8) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 2), ELLIPSIS, k + n - 2, NULL);
    }
    return ELLIPSIS;
}

int admin_chankeys_validate(admin_req_t *a, json_t *keys)
{
    json_t *v;
    size_t i;

    json_array_foreach(keys, i, v)
    {
        const unsigned char *s = (const unsigned char *)json_string_value(v);
        for (; *s; ++s) {
            if (*s < 0x21 || *s > 0x7e) {
                return admin_invalid(a, "keys",
                                     "'keys' item %d has a character that cannot "
                                     "go into a header (only printable ASCII, no spaces)",
                                     (int)i);
            }
        }
    }
    return ADMIN_SET;
}

apr_status_t admin_chankeys_insert(admin_req_t *a, apr_int64_t id, json_t *keys)
{
    const char *aad =
        apr_psprintf(a->r->pool, "nebula-channel-key:%" APR_INT64_T_FMT, id);
    const char *now = admin_i64(a, admin_now_ms());
    json_t *v;
    size_t i;

    json_array_foreach(keys, i, v)
    {
        const char *k = json_string_value(v), *sealed, *args[5];
        if (nebula_crypto_seal(a->r->pool, a->sc->keyring, k, strlen(k), aad, strlen(aad),
                               &sealed) != APR_SUCCESS) {
            admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                        "cannot encrypt an upstream key");
            return APR_EGENERAL;
        }
        args[0] = admin_i64(a, id);
        args[1] = sealed;
        args[2] = admin_i64(a, nebula_crypto_keyring_version(a->sc->keyring));
        args[3] = mask_key(a->r->pool, k);
        args[4] = now;
        if (admin_db_exec(
                a,
                "INSERT INTO channel_keys (channel_id, key_ciphertext, "
                "key_version, status, cooldown_until, failures, key_masked, "
                "created_at) VALUES (%lld, %s, %lld, 'enabled', 0, 0, %s, %lld)",
                5, args, NULL) != APR_SUCCESS) {
            admin_db_fail(a, "store an upstream key");
            return APR_EGENERAL;
        }
    }
    return APR_SUCCESS;
}

json_t *admin_chankeys_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    json_t *out = json_array();
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, chankey_cols, NULL),
                    " FROM channel_keys WHERE channel_id = %lld ORDER BY id", NULL);
    int i;

    if (admin_db_select(a, sql, 1, args, &rows) == APR_SUCCESS) {
        for (i = 0; i < rows.nrows; ++i) {
            json_array_append_new(out, admin_row_json(&rows, i, 0, chankey_cols));
        }
    }
    return out;
}

/* Channel a->id[0] exists (404 sent if not). */
static int channel_exists(admin_req_t *a)
{
    const char *args[1] = {admin_i64(a, a->id[0])};
    nebula_dbd_rows_t rows;

    if (!admin_db(a)) {
        return 0;
    }
    if (admin_db_select(a, "SELECT id FROM channels WHERE id = %lld", 1, args, &rows) !=
        APR_SUCCESS) {
        admin_db_fail(a, "read a channel");
        return 0;
    }
    if (rows.nrows != 1) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                    "channel %" APR_INT64_T_FMT " does not exist", a->id[0]);
        return 0;
    }
    return 1;
}

/* Key a->id[1] of channel a->id[0] (404 sent if not). */
static json_t *key_json(admin_req_t *a, int send_404)
{
    const char *args[2] = {admin_i64(a, a->id[1]), admin_i64(a, a->id[0])};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, chankey_cols, NULL),
                    " FROM channel_keys WHERE id = %lld AND channel_id = %lld", NULL);

    if (admin_db_select(a, sql, 2, args, &rows) == APR_SUCCESS && rows.nrows == 1) {
        return admin_row_json(&rows, 0, 0, chankey_cols);
    }
    if (send_404) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "key_id",
                    "channel %" APR_INT64_T_FMT " has no key %" APR_INT64_T_FMT, a->id[0],
                    a->id[1]);
    }
    return NULL;
}

int admin_chankeys_add(admin_req_t *a)
{
    static const char *const fields[] = {"keys", NULL};
    json_t *b = admin_body(a), *keys = NULL;

    if (b) {
        admin_only_fields(a, b, fields);
        if (admin_field_strarray(a, b, "keys", ADMIN_F_REQUIRED, 100, 8192, &keys) ==
                ADMIN_SET &&
            json_array_size(keys) == 0) {
            admin_invalid(a, "keys", "'keys' must list at least one key");
        }
        if (keys) {
            admin_chankeys_validate(a, keys);
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (a->sc->keyring == NULL) {
        return admin_error(
            a, HTTP_SERVICE_UNAVAILABLE, "crypto_unavailable", "keys",
            "NebulaCryptoSecret is not set: upstream keys cannot be stored");
    }
    if (!channel_exists(a)) {
        return OK;
    }
    if (admin_db_begin(a) != APR_SUCCESS) {
        return admin_db_fail(a, "add upstream keys");
    }
    if (admin_chankeys_insert(a, a->id[0], keys) != APR_SUCCESS) {
        admin_db_rollback(a);
        return OK;
    }
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, "add upstream keys");
    }
    relay_gen_bump();
    admin_audit(a, "add-channel-keys", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_CREATED, admin_chankeys_json(a, a->id[0]));
}

int admin_chankeys_patch(admin_req_t *a)
{
    static const char *const fields[] = {"status", NULL};
    json_t *b = admin_body(a), *k;
    const char *status = NULL, *args[3];

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_enum(a, b, "status", ADMIN_F_REQUIRED, key_statuses, &status);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!channel_exists(a) || (k = key_json(a, 1)) == NULL) {
        return OK;
    }
    json_decref(k);
    args[0] = admin_i64(a, admin_now_ms());
    args[1] = admin_i64(a, a->id[1]);
    /* enabling gives the key a clean slate; disabling records when */
    if (admin_db_exec(a,
                      strcmp(status, "enabled") == 0
                          ? "UPDATE channel_keys SET status = 'enabled', failures = 0, "
                            "cooldown_until = 0, last_error = NULL, disabled_at = NULL "
                            "WHERE id = %lld"
                          : "UPDATE channel_keys SET status = 'disabled', disabled_at = "
                            "%lld WHERE id = %lld",
                      strcmp(status, "enabled") == 0 ? 1 : 2,
                      strcmp(status, "enabled") == 0 ? args + 1 : args,
                      NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change an upstream key");
    }
    relay_gen_bump();
    admin_audit(a,
                strcmp(status, "enabled") ? "disable-channel-key" : "enable-channel-key",
                args[1]);
    return admin_send_data(a, HTTP_OK, key_json(a, 0));
}

int admin_chankeys_delete(admin_req_t *a)
{
    const char *args[1];
    json_t *k;

    if (!channel_exists(a) || (k = key_json(a, 1)) == NULL) {
        return OK;
    }
    json_decref(k);
    args[0] = admin_i64(a, a->id[1]);
    if (admin_db_exec(a, "DELETE FROM channel_keys WHERE id = %lld", 1, args, NULL) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete an upstream key");
    }
    relay_gen_bump();
    admin_audit(a, "delete-channel-key", args[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* admin_channels.c: /api/channels: upstream channels. Every change of a
 * channel rebuilds its abilities in the same transaction
 * (relay_abilities_rebuild), so channel selection never sees a channel and
 * its abilities disagree. Upstream keys are sealed on the way in
 * (admin_chankeys.c) and never come back in clear: responses list each key's
 * id, masked form and health. Deleting a channel really deletes it, its keys
 * and abilities; request logs keep its id. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_admin.h"

static const admin_col_t chan_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"name", NULL, ADMIN_COL_STR},
    {"kind", NULL, ADMIN_COL_STR},
    {"base_url", NULL, ADMIN_COL_STR},
    {"key_mode", NULL, ADMIN_COL_STR},
    {"models", NULL, ADMIN_COL_JSON},
    {"model_mapping", NULL, ADMIN_COL_JSON},
    {"channel_groups", NULL, ADMIN_COL_JSON},
    {"priority", NULL, ADMIN_COL_INT},
    {"weight", NULL, ADMIN_COL_INT},
    {"status", NULL, ADMIN_COL_STR},
    {"status_reason", NULL, ADMIN_COL_NSTR},
    {"status_changed_at", NULL, ADMIN_COL_NINT},
    {"header_override", NULL, ADMIN_COL_JSON},
    {"timeout_ms", NULL, ADMIN_COL_INT},
    {"proxy", NULL, ADMIN_COL_NSTR},
    {"auto_disable", NULL, ADMIN_COL_BOOL},
    {"test_model", NULL, ADMIN_COL_NSTR},
    {"response_ms", NULL, ADMIN_COL_INT},
    {"tested_at", NULL, ADMIN_COL_NINT},
    {"created_at", NULL, ADMIN_COL_INT},
    {"updated_at", NULL, ADMIN_COL_INT},
    {"key_count", "(SELECT COUNT(*) FROM channel_keys k WHERE k.channel_id = c.id)",
     ADMIN_COL_INT},
    {"keys_enabled",
     "(SELECT COUNT(*) FROM channel_keys k WHERE k.channel_id = c.id "
     "AND k.status = 'enabled')",
     ADMIN_COL_INT},
    {NULL, NULL, 0}};

static const char *const chan_statuses[] = {"enabled", "disabled", "auto_disabled", NULL};

/* Channel @a id with its keys; NULL when it does not exist. */
static json_t *channel_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, chan_cols, "c"),
                    " FROM channels c WHERE c.id = %lld", NULL);
    json_t *o;

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    o = admin_row_json(&rows, 0, 0, chan_cols);
    json_object_set_new(o, "keys", admin_chankeys_json(a, id));
    return o;
}

/* Kind and status of channel @a id; 0 and 404/500 sent when missing. */
static int channel_lookup(admin_req_t *a, apr_int64_t id, const char **kind,
                          const char **status)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;

    if (!admin_db(a)) {
        return 0;
    }
    if (admin_db_select(a, "SELECT kind, status FROM channels WHERE id = %lld", 1, args,
                        &rows) != APR_SUCCESS) {
        admin_db_fail(a, "read a channel");
        return 0;
    }
    if (rows.nrows != 1) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                    "channel %" APR_INT64_T_FMT " does not exist", id);
        return 0;
    }
    *kind = rows.rows[0][0];
    *status = rows.rows[0][1];
    return 1;
}

int admin_channels_get(admin_req_t *a)
{
    json_t *c;

    if (!admin_db(a)) {
        return OK;
    }
    if ((c = channel_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "channel %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    return admin_send_data(a, HTTP_OK, c);
}

/* The filters of GET /api/channels into @a w. */
static void list_filters(admin_req_t *a, admin_sql_t *w)
{
    const char *q = NULL, *status = NULL, *kind = NULL, *group = NULL, *model = NULL;
    int i;

    admin_query_str(a, "q", 64, &q);
    admin_query_str(a, "kind", 32, &kind);
    admin_query_str(a, "group", 64, &group);
    admin_query_str(a, "model", 255, &model);
    if (admin_query_str(a, "status", 16, &status) == ADMIN_SET) {
        for (i = 0; chan_statuses[i] && strcmp(chan_statuses[i], status); ++i) {
        }
        if (chan_statuses[i] == NULL) {
            admin_invalid(a, "status",
                          "'status' must be one of: enabled, disabled, "
                          "auto_disabled");
        }
    }
    admin_sql_init(w, a->r->pool, "FROM channels c");
    if (q) {
        admin_sql_where(w, "LOWER(c.name) LIKE LOWER(%s) ESCAPE '!'",
                        admin_like(a->r->pool, q));
    }
    if (status) {
        admin_sql_where(w, "c.status = %s", status);
    }
    if (kind) {
        admin_sql_where(w, "c.kind = %s", kind);
    }
    if (group) {
        admin_sql_where(
            w, "c.id IN (SELECT channel_id FROM abilities WHERE user_group = %s)", group);
    }
    if (model) {
        admin_sql_where(w, "c.id IN (SELECT channel_id FROM abilities WHERE model = %s)",
                        model);
    }
}

int admin_channels_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "q",     "status",
                                          "kind", "group",    "model", NULL};
    apr_int64_t page, per_page;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    list_filters(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    return admin_db_send_page(a, &w, chan_cols, "c", "c.id", page, per_page, "channels");
}

/* Whether the request needs the keyring and there is none (503 sent). */
static int keyring_missing(admin_req_t *a, const chan_input_t *in)
{
    if (in->st_keys == ADMIN_SET && json_array_size(in->keys) > 0 &&
        a->sc->keyring == NULL) {
        admin_error(a, HTTP_SERVICE_UNAVAILABLE, "crypto_unavailable", "keys",
                    "NebulaCryptoSecret is not set: upstream keys cannot be stored");
        return 1;
    }
    return 0;
}

static const char *disabled_reason(admin_req_t *a)
{
    return apr_pstrcat(a->r->pool, "disabled by ", a->who.username, NULL);
}

static apr_status_t insert_channel(admin_req_t *a, const chan_input_t *in,
                                   apr_int64_t *id)
{
    const char *now = admin_i64(a, admin_now_ms()), *args[19];
    const char *status = in->status ? in->status : "enabled";

    args[0] = in->name, args[1] = in->kind, args[2] = in->base_url;
    args[3] = admin_json_text(a, in->models);
    args[4] = admin_json_text(a, in->mapping);
    args[5] = in->groups ? admin_json_text(a, in->groups) : "[\"default\"]";
    args[6] = admin_i64(a, in->st_priority == ADMIN_SET ? in->priority : 0);
    args[7] = admin_i64(a, in->st_weight == ADMIN_SET ? in->weight : 1);
    args[8] = status;
    args[9] = strcmp(status, "enabled") ? disabled_reason(a) : NULL;
    args[10] = admin_json_text(a, in->headers);
    args[11] = admin_i64(a, in->st_timeout == ADMIN_SET ? in->timeout_ms : 0);
    args[12] = admin_i64(a, in->st_auto_disable == ADMIN_SET ? in->auto_disable : 1);
    args[13] = in->key_mode ? in->key_mode : "round_robin";
    args[14] = in->proxy, args[15] = in->test_model;
    args[16] = now, args[17] = now, args[18] = now;
    return admin_db_insert(a,
                           "INSERT INTO channels (name, kind, base_url, models, "
                           "model_mapping, channel_groups, priority, weight, status, "
                           "status_reason, header_override, timeout_ms, auto_disable, "
                           "key_mode, proxy, test_model, status_changed_at, created_at, "
                           "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %lld, %lld, %s, "
                           "%s, %s, %lld, %lld, %s, %s, %s, %lld, %lld, %lld)",
                           19, args, id);
}

/* Commit the open transaction, then bump, audit and answer with channel @a id. */
static int finish_change(admin_req_t *a, apr_int64_t id, const char *action, int status)
{
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, action);
    }
    relay_gen_bump();
    admin_audit(a, action, admin_i64(a, id));
    return admin_send_data(a, status, channel_json(a, id));
}

int admin_channels_create(admin_req_t *a)
{
    json_t *b = admin_body(a);
    chan_input_t in;
    apr_int64_t id;

    if (b == NULL) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_chaninput_read(a, b, &in, 1);
    if (!a->err_status) {
        admin_chaninput_base_url(a, &in, in.kind, 1);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (keyring_missing(a, &in)) {
        return OK;
    }
    if (admin_db_begin(a) != APR_SUCCESS || insert_channel(a, &in, &id) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "create a channel");
    }
    if (in.st_keys == ADMIN_SET && admin_chankeys_insert(a, id, in.keys) != APR_SUCCESS) {
        admin_db_rollback(a);
        return OK;
    }
    if (relay_abilities_rebuild(a->db, a->r->pool, id, &a->db_err) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "create a channel's abilities");
    }
    return finish_change(a, id, "create-channel", HTTP_CREATED);
}

/* The nullable JSON members: their text, or NULL for null. */
static void patch_json(admin_sql_t *q, admin_req_t *a, const char *col, int st, json_t *v)
{
    if (st != ADMIN_ABSENT) {
        admin_sql_arg(q, apr_pstrcat(a->r->pool, ", ", col, " = %s", NULL),
                      st == ADMIN_SET ? admin_json_text(a, v) : NULL);
    }
}

static void patch_str(admin_sql_t *q, admin_req_t *a, const char *col, int st,
                      const char *v)
{
    if (st != ADMIN_ABSENT) {
        admin_sql_arg(q, apr_pstrcat(a->r->pool, ", ", col, " = %s", NULL),
                      st == ADMIN_SET ? v : NULL);
    }
}

static void patch_int(admin_sql_t *q, admin_req_t *a, const char *col, int st,
                      apr_int64_t v)
{
    if (st == ADMIN_SET) {
        admin_sql_arg(q, apr_pstrcat(a->r->pool, ", ", col, " = %lld", NULL),
                      admin_i64(a, v));
    }
}

/* UPDATE channels for the members present in @a in. */
static const char *patch_sql(admin_req_t *a, const chan_input_t *in,
                             const char *cur_status, admin_sql_t *q)
{
    const char *now = admin_i64(a, admin_now_ms());

    admin_sql_init(q, a->r->pool, "");
    admin_sql_arg(q, "UPDATE channels SET updated_at = %lld", now);
    patch_str(q, a, "name", in->st_name, in->name);
    patch_str(q, a, "kind", in->st_kind, in->kind);
    patch_str(q, a, "base_url", in->st_base_url, in->base_url);
    patch_str(q, a, "key_mode", in->st_key_mode, in->key_mode);
    patch_json(q, a, "models", in->st_models, in->models);
    patch_json(q, a, "model_mapping", in->st_mapping, in->mapping);
    patch_json(q, a, "channel_groups", in->st_groups, in->groups);
    patch_int(q, a, "priority", in->st_priority, in->priority);
    patch_int(q, a, "weight", in->st_weight, in->weight);
    patch_json(q, a, "header_override", in->st_headers, in->headers);
    patch_int(q, a, "timeout_ms", in->st_timeout, in->timeout_ms);
    patch_str(q, a, "proxy", in->st_proxy, in->proxy);
    patch_int(q, a, "auto_disable", in->st_auto_disable, in->auto_disable);
    patch_str(q, a, "test_model", in->st_test_model, in->test_model);
    if (in->st_status == ADMIN_SET && strcmp(in->status, cur_status) != 0) {
        admin_sql_arg(q, ", status = %s", in->status);
        admin_sql_arg(q, ", status_reason = %s",
                      strcmp(in->status, "enabled") ? disabled_reason(a) : NULL);
        admin_sql_arg(q, ", status_changed_at = %lld", now);
    }
    admin_sql_arg(q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    return q->sql;
}

/* Replace the keys of channel a->id[0] when the request lists them. */
static apr_status_t replace_keys(admin_req_t *a, const chan_input_t *in)
{
    const char *args[1] = {admin_i64(a, a->id[0])};

    if (in->st_keys != ADMIN_SET) {
        return APR_SUCCESS;
    }
    if (admin_db_exec(a, "DELETE FROM channel_keys WHERE channel_id = %lld", 1, args,
                      NULL) != APR_SUCCESS) {
        admin_db_fail(a, "replace a channel's keys");
        return APR_EGENERAL;
    }
    return admin_chankeys_insert(a, a->id[0], in->keys);
}

int admin_channels_patch(admin_req_t *a)
{
    json_t *b = admin_body(a);
    const char *kind, *status;
    chan_input_t in;
    admin_sql_t q;

    if (b == NULL) {
        return admin_send_recorded(a);
    }
    if (!channel_lookup(a, a->id[0], &kind, &status)) {
        return OK;
    }
    admin_chaninput_read(a, b, &in, 0);
    if (!a->err_status) {
        admin_chaninput_base_url(a, &in, in.kind ? in.kind : kind, 0);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (keyring_missing(a, &in)) {
        return OK;
    }
    if (admin_db_begin(a) != APR_SUCCESS ||
        admin_db_exec(a, patch_sql(a, &in, status, &q), q.n, q.args, NULL) !=
            APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "change a channel");
    }
    if (replace_keys(a, &in) != APR_SUCCESS) {
        admin_db_rollback(a);
        return OK;
    }
    if (relay_abilities_rebuild(a->db, a->r->pool, a->id[0], &a->db_err) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "rebuild a channel's abilities");
    }
    return finish_change(a, a->id[0], "update-channel", HTTP_OK);
}

int admin_channels_delete(admin_req_t *a)
{
    const char *kind, *status, *args[1];

    if (!channel_lookup(a, a->id[0], &kind, &status)) {
        return OK;
    }
    args[0] = admin_i64(a, a->id[0]);
    if (admin_db_begin(a) != APR_SUCCESS ||
        admin_db_exec(a, "DELETE FROM abilities WHERE channel_id = %lld", 1, args,
                      NULL) != APR_SUCCESS ||
        admin_db_exec(a, "DELETE FROM channel_keys WHERE channel_id = %lld", 1, args,
                      NULL) != APR_SUCCESS ||
        admin_db_exec(a, "DELETE FROM channels WHERE id = %lld", 1, args, NULL) !=
            APR_SUCCESS ||
        admin_db_commit(a) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "delete a channel");
    }
    relay_gen_bump();
    admin_audit(a, "delete-channel", args[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* POST /api/channels/{id}/test {"model"?}: one request through the channel
 * (relay_test.c). */
int admin_channels_test(admin_req_t *a)
{
    static const char *const allowed[] = {"model", NULL};
    const char *model = NULL;
    json_t *res;
    int status;

    if (a->body) {
        admin_only_fields(a, a->body, allowed);
        admin_field_str(a, a->body, "model", ADMIN_F_NONEMPTY, 255, &model);
        if (a->err_status) {
            return admin_send_recorded(a);
        }
    }
    /* no connection held across the upstream call (relay_channel_test
     * borrows one to record the result) */
    admin_db_release(a);
    res = relay_channel_test(a->r, a->id[0], model, &status);
    if (res == NULL) {
        return status == HTTP_NOT_FOUND
                   ? admin_error(a, status, "not_found", NULL, "no channel %" APR_INT64_T_FMT,
                                 a->id[0])
                   : admin_error(a, status, "no_usable_key", NULL,
                                 "the channel has no enabled key that can be decrypted");
    }
    return admin_send_data(a, HTTP_OK, res);
}

/* admin_limits.c: /api/rate-limits: requests and tokens per minute and
 * concurrent streams per key, user, group or model (table gov_limits;
 * mod_nebula_gov's gov_limit.c enforces them, docs/rate-limits.md). The list
 * shows the limits declared with NebulaRateLimit as well, read-only
 * ("source": "config", no id). Every change bumps the generation, so that
 * every process and host reads the limits again. */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_gov.h"

#define MAX_RATE    APR_INT64_C(1000000000000) /* per minute */
#define MAX_STREAMS APR_INT64_C(1000000)
#define MAX_LISTED  1000

static const admin_col_t limit_cols[] = {
    {"id", NULL, ADMIN_COL_INT},          {"scope_kind", NULL, ADMIN_COL_STR},
    {"scope_value", NULL, ADMIN_COL_STR}, {"rpm", NULL, ADMIN_COL_INT},
    {"tpm", NULL, ADMIN_COL_INT},         {"max_streams", NULL, ADMIN_COL_INT},
    {"enabled", NULL, ADMIN_COL_BOOL},    {"created_at", NULL, ADMIN_COL_INT},
    {"updated_at", NULL, ADMIN_COL_INT},  {NULL, NULL, 0}};

static const char *const scope_kinds[] = {"key", "user", "group", "model", NULL};

static json_t *limit_row(const nebula_dbd_rows_t *rows, int i)
{
    json_t *j = admin_row_json(rows, i, 0, limit_cols);

    json_object_set_new(j, "source", json_string("db"));
    return j;
}

static json_t *limit_json(admin_req_t *a, apr_int64_t id)
{
    nebula_dbd_rows_t rows;
    const char *arg = admin_i64(a, id);
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, limit_cols, NULL),
                    " FROM gov_limits WHERE id = %lld", NULL);

    if (admin_db_select(a, sql, 1, &arg, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return limit_row(&rows, 0);
}

static int limits_list(admin_req_t *a)
{
    static const char *const allowed[] = {"scope_kind", NULL};
    APR_OPTIONAL_FN_TYPE(nebula_gov_limits_declared) *declared =
        APR_RETRIEVE_OPTIONAL_FN(nebula_gov_limits_declared);
    const char *kind = NULL;
    nebula_dbd_rows_t rows;
    admin_sql_t q;
    json_t *list, *conf, *v;
    size_t k;
    int i;

    admin_query_only(a, allowed);
    admin_query_enum(a, "scope_kind", scope_kinds, &kind);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&q, a->r->pool,
                   apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, limit_cols, NULL),
                               " FROM gov_limits", NULL));
    if (kind) {
        admin_sql_where(&q, "scope_kind = %s", kind);
    }
    admin_sql_add(&q, " ORDER BY id LIMIT " APR_STRINGIFY(MAX_LISTED));
    if (admin_db_select(a, q.sql, q.n, q.args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "list the rate limits");
    }
    list = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        json_array_append_new(list, limit_row(&rows, i));
    }
    conf = declared ? declared(a->r->pool) : json_array();
    json_array_foreach(conf, k, v)
    {
        if (kind == NULL || strcmp(kind, nebula_json_gets(v, "scope_kind", NULL)) == 0) {
            json_object_set_new(v, "id", json_null());
            json_array_append(list, v);
        }
    }
    json_decref(conf);
    return admin_send_page(a, list, (apr_int64_t)json_array_size(list), 1,
                           (apr_int64_t)json_array_size(list));
}

/* Whether the key or user @a value names exists. */
static int subject_exists(admin_req_t *a, const char *kind, const char *value)
{
    nebula_dbd_rows_t rows;
    const char *sql =
        strcmp(kind, "key") == 0
            ? "SELECT id FROM api_keys WHERE id = %lld"
            : "SELECT id FROM users WHERE id = %lld AND status <> 'deleted'";

    return admin_db_select(a, sql, 1, &value, &rows) == APR_SUCCESS && rows.nrows == 1;
}

/* scope_value for @a kind: '*', an existing id, group or a model glob. */
static int check_value(admin_req_t *a, const char *kind, const char *value)
{
    if (strcmp(value, "*") == 0) {
        return ADMIN_SET;
    }
    if (strcmp(kind, "key") == 0 || strcmp(kind, "user") == 0) {
        if (value[0] < '1' || value[0] > '9' || strlen(value) > 18 ||
            strspn(value, "0123456789") != strlen(value)) {
            return admin_invalid(a, "scope_value",
                                 "'scope_value' of a %s limit must be a %s id or '*'",
                                 kind, kind);
        }
        if (!subject_exists(a, kind, value)) {
            return admin_invalid(a, "scope_value", "no %s with id %s", kind, value);
        }
        return ADMIN_SET;
    }
    if (strcmp(kind, "group") == 0) {
        return admin_groups_check_name(a, "scope_value", value);
    }
    if (!admin_text_ok(value) || strchr(value, ' ')) {
        return admin_invalid(a, "scope_value",
                             "'scope_value' of a model limit must be a "
                             "model name or glob (e.g. gpt-4o*) without spaces, or '*'");
    }
    return ADMIN_SET;
}

static int limits_create(admin_req_t *a)
{
    static const char *const fields[] = {"scope_kind",  "scope_value", "rpm", "tpm",
                                         "max_streams", "enabled",     NULL};
    json_t *b = admin_body(a);
    const char *kind = NULL, *value = NULL, *args[8];
    apr_int64_t rpm = 0, tpm = 0, streams = 0, id, now;
    int enabled = 1;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_enum(a, b, "scope_kind", ADMIN_F_REQUIRED, scope_kinds, &kind);
        admin_field_str(a, b, "scope_value", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY, 128,
                        &value);
        admin_field_int(a, b, "rpm", 0, 0, MAX_RATE, &rpm);
        admin_field_int(a, b, "tpm", 0, 0, MAX_RATE, &tpm);
        admin_field_int(a, b, "max_streams", 0, 0, MAX_STREAMS, &streams);
        admin_field_bool(a, b, "enabled", 0, &enabled);
        if (!a->err_status && streams > 0 && strcmp(kind, "key") != 0) {
            admin_invalid(a, "max_streams", "'max_streams' applies to key limits only");
        }
        if (!a->err_status && rpm == 0 && tpm == 0 && streams == 0) {
            admin_invalid(a, NULL,
                          "give at least one of 'rpm', 'tpm' or 'max_streams' "
                          "above 0");
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (check_value(a, kind, value) != ADMIN_SET) {
        return admin_send_recorded(a);
    }
    now = admin_now_ms();
    args[0] = kind, args[1] = value, args[2] = admin_i64(a, rpm),
    args[3] = admin_i64(a, tpm);
    args[4] = admin_i64(a, streams), args[5] = enabled ? "1" : "0";
    args[6] = admin_i64(a, now), args[7] = args[6];
    if (admin_db_insert(
            a,
            "INSERT INTO gov_limits (scope_kind, scope_value, rpm, tpm, "
            "max_streams, enabled, created_at, updated_at) VALUES (%s, %s, %lld, "
            "%lld, %lld, %lld, %lld, %lld)",
            8, args, &id) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "rate_limit_exists", "scope_value",
                               "a %s limit on '%s' exists (PATCH it)", kind, value);
        }
        return admin_db_fail(a, "create a rate limit");
    }
    relay_gen_bump();
    admin_audit(a, "create-rate-limit",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " %s %s", id, kind, value));
    return admin_send_data(a, HTTP_CREATED, limit_json(a, id));
}

static int limits_get(admin_req_t *a)
{
    if (!admin_db(a)) {
        return OK;
    }
    return admin_send_found(a, limit_json(a, a->id[0]), "rate limit");
}

static int limits_patch(admin_req_t *a)
{
    static const char *const fields[] = {"rpm", "tpm", "max_streams", "enabled", NULL};
    json_t *b = admin_body(a), *cur;
    apr_int64_t rpm = -1, tpm = -1, streams = -1;
    int enabled = -1;
    admin_sql_t q;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_int(a, b, "rpm", 0, 0, MAX_RATE, &rpm);
        admin_field_int(a, b, "tpm", 0, 0, MAX_RATE, &tpm);
        admin_field_int(a, b, "max_streams", 0, 0, MAX_STREAMS, &streams);
        admin_field_bool(a, b, "enabled", 0, &enabled);
        if (!a->err_status && json_object_size(b) == 0) {
            admin_invalid(a, NULL, "give at least one field to change");
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((cur = limit_json(a, a->id[0])) == NULL) {
        return admin_send_found(a, NULL, "rate limit");
    }
    if (streams > 0 && strcmp(nebula_json_gets(cur, "scope_kind", NULL), "key") != 0) {
        json_decref(cur);
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", "max_streams",
                           "'max_streams' applies to key limits only");
    }
    if ((rpm < 0 ? nebula_json_geti(cur, 0, "rpm", NULL) : rpm) == 0 &&
        (tpm < 0 ? nebula_json_geti(cur, 0, "tpm", NULL) : tpm) == 0 &&
        (streams < 0 ? nebula_json_geti(cur, 0, "max_streams", NULL) : streams) == 0) {
        json_decref(cur);
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", NULL,
                           "a limit keeps at least one of 'rpm', 'tpm' or 'max_streams' "
                           "above 0 (DELETE it instead)");
    }
    json_decref(cur);
    admin_sql_init(&q, a->r->pool, "UPDATE gov_limits SET updated_at = ");
    admin_sql_arg(&q, "%lld", admin_i64(a, admin_now_ms()));
    if (rpm >= 0) {
        admin_sql_arg(&q, ", rpm = %lld", admin_i64(a, rpm));
    }
    if (tpm >= 0) {
        admin_sql_arg(&q, ", tpm = %lld", admin_i64(a, tpm));
    }
    if (streams >= 0) {
        admin_sql_arg(&q, ", max_streams = %lld", admin_i64(a, streams));
    }
    if (enabled >= 0) {
        admin_sql_arg(&q, ", enabled = %lld", enabled ? "1" : "0");
    }
    admin_sql_arg(&q, " WHERE id = %lld", a->param[0]);
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change a rate limit");
    }
    relay_gen_bump();
    admin_audit(a, "update-rate-limit", a->param[0]);
    return admin_send_data(a, HTTP_OK, limit_json(a, a->id[0]));
}

static int limits_delete(admin_req_t *a)
{
    const char *arg = admin_i64(a, a->id[0]);
    int affected = 0;

    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_exec(a, "DELETE FROM gov_limits WHERE id = %lld", 1, &arg, &affected) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete a rate limit");
    }
    if (affected == 0) {
        return admin_send_found(a, NULL, "rate limit");
    }
    relay_gen_bump();
    admin_audit(a, "delete-rate-limit", a->param[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

const admin_route_t admin_limits_routes[] = {
    {"GET", "/api/rate-limits", limits_list, 0},
    {"POST", "/api/rate-limits", limits_create, 0},
    {"GET", "/api/rate-limits/{id}", limits_get, 0},
    {"PATCH", "/api/rate-limits/{id}", limits_patch, 0},
    {"DELETE", "/api/rate-limits/{id}", limits_delete, 0},
    {NULL, NULL, NULL, 0}};

/* admin_caps.c: /api/billing/caps: finer quotas, a cap per model and route
 * on a key, a user or a plan, per calendar day, week or month
 * (mod_nebula_billing's billing_caps.c enforces them at reserve time).
 * A cap is configuration, not money: it is created and deleted here with
 * plain statements; its counters go with it. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_admin.h"

static const admin_col_t cap_cols[] = {
    {"id", NULL, ADMIN_COL_INT},          {"subject_kind", NULL, ADMIN_COL_STR},
    {"subject_id", NULL, ADMIN_COL_INT},  {"model", NULL, ADMIN_COL_STR},
    {"route", NULL, ADMIN_COL_STR},       {"metric", NULL, ADMIN_COL_STR},
    {"period", NULL, ADMIN_COL_STR},      {"limit", "cap_limit", ADMIN_COL_INT},
    {"used", "COALESCE((SELECT used FROM usage_counters u WHERE u.cap_id = usage_caps.id "
             "ORDER BY u.period_start DESC LIMIT 1), 0)", ADMIN_COL_INT},
    {"created_at", NULL, ADMIN_COL_INT},  {NULL, NULL, 0}};

static const char *const subject_kinds[] = {"key", "user", "plan", NULL};
static const char *const metrics[] = {"tokens", "requests", "quota", NULL};
static const char *const periods[] = {"day", "week", "month", NULL};
static const char *const routes[] = {"*",         "chat",     "completions", "embeddings",
                                     "moderations", "responses", "images",   "audio",
                                     "realtime",  "messages", "gemini",     "rerank",
                                     NULL};

static json_t *cap_json(admin_req_t *a, apr_int64_t id)
{
    nebula_dbd_rows_t rows;
    const char *arg = admin_i64(a, id);
    const char *sql = apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, cap_cols, NULL),
                                  " FROM usage_caps WHERE id = %lld", NULL);

    if (admin_db_select(a, sql, 1, &arg, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, cap_cols);
}

static int caps_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "subject_kind", "subject_id",
                                          NULL};
    apr_int64_t page, per_page, sid = 0;
    const char *kind = NULL;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_enum(a, "subject_kind", subject_kinds, &kind);
    admin_query_int(a, "subject_id", 1, APR_INT64_MAX, &sid);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM usage_caps");
    if (kind) {
        admin_sql_where(&w, "subject_kind = %s", kind);
    }
    if (sid) {
        admin_sql_where(&w, "subject_id = %lld", admin_i64(a, sid));
    }
    return admin_db_send_page(a, &w, cap_cols, NULL, "id", page, per_page, "caps");
}

/* Whether the subject of a cap exists. */
static int subject_exists(admin_req_t *a, const char *kind, apr_int64_t id)
{
    nebula_dbd_rows_t rows;
    const char *arg = admin_i64(a, id);
    const char *sql = strcmp(kind, "key") == 0    ? "SELECT id FROM api_keys WHERE id = %lld"
                      : strcmp(kind, "user") == 0 ? "SELECT id FROM users WHERE id = %lld"
                                                  : "SELECT id FROM plans WHERE id = %lld";

    return admin_db_select(a, sql, 1, &arg, &rows) == APR_SUCCESS && rows.nrows == 1;
}

static int caps_create(admin_req_t *a)
{
    static const char *const fields[] = {"subject_kind", "subject_id", "model", "route",
                                         "metric",       "period",     "limit", NULL};
    json_t *b = admin_body(a);
    const char *kind = NULL, *model = "*", *route = "*", *metric = "tokens", *period = "day";
    const char *args[8];
    apr_int64_t sid = 0, limit = 0, id;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_enum(a, b, "subject_kind", ADMIN_F_REQUIRED, subject_kinds, &kind);
        admin_field_int(a, b, "subject_id", ADMIN_F_REQUIRED, 1, APR_INT64_MAX, &sid);
        if (admin_field_str(a, b, "model", ADMIN_F_NONEMPTY, 255, &model) == ADMIN_SET
            && !admin_text_ok(model)) {
            admin_invalid(a, "model", "'model' must be printable text");
        }
        admin_field_enum(a, b, "route", 0, routes, &route);
        admin_field_enum(a, b, "metric", 0, metrics, &metric);
        admin_field_enum(a, b, "period", 0, periods, &period);
        admin_field_int(a, b, "limit", ADMIN_F_REQUIRED, 1, APR_INT64_C(1000000000000000),
                        &limit);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (!subject_exists(a, kind, sid)) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "subject_id",
                           "no %s with id %" APR_INT64_T_FMT, kind, sid);
    }
    args[0] = kind;
    args[1] = admin_i64(a, sid);
    args[2] = model;
    args[3] = route;
    args[4] = metric;
    args[5] = period;
    args[6] = admin_i64(a, limit);
    args[7] = admin_i64(a, admin_now_ms());
    if (admin_db_insert(a,
                        "INSERT INTO usage_caps (subject_kind, subject_id, model, route, metric, "
                        "period, cap_limit, created_at) VALUES (%s, %lld, %s, %s, %s, %s, "
                        "%lld, %lld)",
                        8, args, &id)
        != APR_SUCCESS) {
        return admin_db_fail(a, "create a usage cap");
    }
    admin_audit(a, "create-cap", admin_i64(a, id));
    return admin_send_data(a, HTTP_CREATED, cap_json(a, id));
}

static int caps_get(admin_req_t *a)
{
    if (!admin_db(a)) {
        return OK;
    }
    return admin_send_found(a, cap_json(a, a->id[0]), "usage cap");
}

static int caps_delete(admin_req_t *a)
{
    const char *arg = admin_i64(a, a->id[0]);
    int affected = 0;

    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_begin(a) != APR_SUCCESS
        || admin_db_exec(a, "DELETE FROM usage_counters WHERE cap_id = %lld", 1, &arg, NULL)
               != APR_SUCCESS
        || admin_db_exec(a, "DELETE FROM usage_caps WHERE id = %lld", 1, &arg, &affected)
               != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "delete a usage cap");
    }
    if (affected == 0) {
        admin_db_rollback(a);
        return admin_error(a, HTTP_NOT_FOUND, "not_found", NULL, "no usage cap %s",
                           a->param[0]);
    }
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, "delete a usage cap");
    }
    admin_audit(a, "delete-cap", a->param[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

const admin_route_t admin_caps_routes[] = {
    {"GET", "/api/billing/caps", caps_list, 0},
    {"POST", "/api/billing/caps", caps_create, 0},
    {"GET", "/api/billing/caps/{id}", caps_get, 0},
    {"DELETE", "/api/billing/caps/{id}", caps_delete, 0},
    {NULL, NULL, NULL, 0}};

/* admin_plans.c: the admin API's plan, subscription and scheduler routes.
 * Subscriptions are created and cancelled through mod_nebula_billing's
 * optional functions, which own their ledger effects; this file only
 * checks requests and reads rows.
 *
 * A plan's shape (metric, period, period_seconds, alignment) is fixed once
 * it has subscriptions: their accounts hold the metric's unit and their
 * periods follow the shape. Deleting a plan that has subscriptions archives
 * it (no new subscriptions; the existing ones run on). */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_billing.h"

/* ---- plans --------------------------------------------------------------- */

static const admin_col_t plan_cols[] = {{"id", NULL, ADMIN_COL_INT},
                                        {"name", NULL, ADMIN_COL_STR},
                                        {"description", NULL, ADMIN_COL_STR},
                                        {"metric", NULL, ADMIN_COL_STR},
                                        {"period", NULL, ADMIN_COL_STR},
                                        {"period_seconds", NULL, ADMIN_COL_INT},
                                        {"alignment", NULL, ADMIN_COL_STR},
                                        {"quota_per_period", NULL, ADMIN_COL_INT},
                                        {"rollover", NULL, ADMIN_COL_STR},
                                        {"rollover_cap", NULL, ADMIN_COL_INT},
                                        {"allowed_models", NULL, ADMIN_COL_JSON},
                                        {"allowed_groups", NULL, ADMIN_COL_JSON},
                                        {"price", NULL, ADMIN_COL_INT},
                                        {"status", NULL, ADMIN_COL_STR},
                                        {"active_subscriptions",
                                         "(SELECT COUNT(*) FROM subscriptions x WHERE "
                                         "x.plan_id = p.id AND x.status = 'active')",
                                         ADMIN_COL_INT},
                                        {"created_at", NULL, ADMIN_COL_INT},
                                        {"updated_at", NULL, ADMIN_COL_INT},
                                        {NULL, NULL, 0}};

static const char *const metrics[] = {"quota", "tokens", "requests", NULL};
static const char *const periods[] = {"day", "week", "month", "custom", NULL};
static const char *const alignments[] = {"calendar", "anniversary", NULL};
static const char *const rollovers[] = {"none", "full", "capped", NULL};
static const char *const plan_statuses[] = {"active", "archived", NULL};

/** The shortest custom period the API accepts, and the longest (ten years). */
#define PLAN_MIN_SECONDS 60
#define PLAN_MAX_SECONDS APR_INT64_C(315360000)

/* A plan's fields; st_* hold ADMIN_SET / ADMIN_NULL / ADMIN_ABSENT. */
typedef struct {
    const char *name, *description, *metric, *period, *alignment, *rollover, *status;
    apr_int64_t period_seconds, quota, cap, price;
    json_t *models, *groups;
    int st_name, st_description, st_metric, st_period, st_seconds, st_alignment, st_quota,
        st_rollover, st_cap, st_models, st_groups, st_price, st_status;
} plan_input_t;

static json_t *plan_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, plan_cols, "p"),
                    " FROM plans p WHERE p.id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, plan_cols);
}

static void plan_read(admin_req_t *a, json_t *b, plan_input_t *in, int create)
{
    in->st_name = admin_field_str(
        a, b, "name", create ? ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY : ADMIN_F_NONEMPTY, 64,
        &in->name);
    in->st_description = admin_field_str(a, b, "description", 0, 255, &in->description);
    in->st_metric = admin_field_enum(a, b, "metric", 0, metrics, &in->metric);
    in->st_period = admin_field_enum(a, b, "period", 0, periods, &in->period);
    in->st_seconds = admin_field_int(a, b, "period_seconds", 0, 0, PLAN_MAX_SECONDS,
                                     &in->period_seconds);
    in->st_alignment = admin_field_enum(a, b, "alignment", 0, alignments, &in->alignment);
    in->st_quota =
        admin_field_int(a, b, "quota_per_period", create ? ADMIN_F_REQUIRED : 0, 1,
                        ADMIN_MAX_AMOUNT, &in->quota);
    in->st_rollover = admin_field_enum(a, b, "rollover", 0, rollovers, &in->rollover);
    in->st_cap = admin_field_int(a, b, "rollover_cap", 0, 0, ADMIN_MAX_AMOUNT, &in->cap);
    in->st_models = admin_field_strarray(a, b, "allowed_models", ADMIN_F_NULLABLE, 1000,
                                         255, &in->models);
    in->st_groups = admin_field_strarray(a, b, "allowed_groups", ADMIN_F_NULLABLE, 100,
                                         64, &in->groups);
    in->st_price = admin_field_int(a, b, "price", 0, 0, ADMIN_MAX_AMOUNT, &in->price);
    in->st_status = admin_field_enum(a, b, "status", 0, plan_statuses, &in->status);
    if (!a->err_status && in->st_groups == ADMIN_SET) {
        admin_groups_check(a, "allowed_groups", in->groups);
    }
}

/* The rules between fields, on the plan as it will be (@a in merged over
 * the stored plan for PATCH). */
static void plan_check(admin_req_t *a, const plan_input_t *in)
{
    int custom = strcmp(in->period, "custom") == 0;

    if (a->err_status) {
        return;
    }
    if (custom && in->period_seconds < PLAN_MIN_SECONDS) {
        admin_invalid(a, "period_seconds",
                      "a custom period needs 'period_seconds' of at least %d",
                      PLAN_MIN_SECONDS);
    }
    else if (!custom && in->period_seconds != 0) {
        admin_invalid(a, "period_seconds",
                      "'period_seconds' is only for the period 'custom' (it is '%s')",
                      in->period);
    }
    else if (custom && strcmp(in->alignment, "anniversary") != 0) {
        admin_invalid(a, "alignment",
                      "custom periods run from the subscription's start: 'alignment' "
                      "must be 'anniversary'");
    }
}

/* A field as given (@a st ADMIN_SET), else as stored in @a j (PATCH), else
 * @a dflt (create). */
static const char *str_or(admin_req_t *a, int st, const char *given, json_t *j,
                          const char *col, const char *dflt)
{
    if (st == ADMIN_SET) {
        return given;
    }
    return j ? apr_pstrdup(a->r->pool, nebula_json_gets(j, col, NULL)) : dflt;
}

static apr_int64_t int_or(int st, apr_int64_t given, json_t *j, const char *col,
                          apr_int64_t dflt)
{
    if (st == ADMIN_SET) {
        return given;
    }
    return j ? nebula_json_geti(j, 0, col, NULL) : dflt;
}

/* Fill the fields not given with the stored plan @a j (PATCH) or the
 * defaults (@a j NULL: create). */
static void plan_merge(admin_req_t *a, plan_input_t *in, json_t *j)
{
    in->description =
        str_or(a, in->st_description, in->description, j, "description", "");
    in->metric = str_or(a, in->st_metric, in->metric, j, "metric", "quota");
    in->period = str_or(a, in->st_period, in->period, j, "period", "month");
    in->period_seconds =
        int_or(in->st_seconds, in->period_seconds, j, "period_seconds", 0);
    in->rollover = str_or(a, in->st_rollover, in->rollover, j, "rollover", "none");
    in->cap = int_or(in->st_cap, in->cap, j, "rollover_cap", 0);
    in->price = int_or(in->st_price, in->price, j, "price", 0);
    in->status = str_or(a, in->st_status, in->status, j, "status", "active");
    /* a new custom plan is anniversary-aligned by nature */
    in->alignment =
        str_or(a, in->st_alignment, in->alignment, j, "alignment",
               strcmp(in->period, "custom") == 0 ? "anniversary" : "calendar");
}

static const char *const plan_fields[] = {"name",
                                          "description",
                                          "metric",
                                          "period",
                                          "period_seconds",
                                          "alignment",
                                          "quota_per_period",
                                          "rollover",
                                          "rollover_cap",
                                          "allowed_models",
                                          "allowed_groups",
                                          "price",
                                          "status",
                                          NULL};

static int admin_plans_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",   "per_page", "q",
                                          "status", "metric",   NULL};
    const char *q = NULL, *status = NULL, *metric = NULL;
    apr_int64_t page, per_page;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "q", 64, &q);
    admin_query_enum(a, "status", plan_statuses, &status);
    admin_query_enum(a, "metric", metrics, &metric);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM plans p");
    if (status) {
        admin_sql_where(&w, "p.status = %s", status);
    }
    if (metric) {
        admin_sql_where(&w, "p.metric = %s", metric);
    }
    if (q) {
        admin_sql_where(&w, "LOWER(p.name) LIKE LOWER(%s) ESCAPE '!'",
                        admin_like(a->r->pool, q));
    }
    return admin_db_send_page(a, &w, plan_cols, "p", "p.id", page, per_page, "plans");
}

static int admin_plans_create(admin_req_t *a)
{
    json_t *b = admin_body(a);
    plan_input_t in;
    const char *args[15];
    apr_int64_t id, now = admin_now_ms();

    memset(&in, 0, sizeof(in));
    if (b && !admin_db(a)) { /* allowed_groups are looked up */
        return OK;
    }
    if (b) {
        admin_only_fields(a, b, plan_fields);
        if (!a->err_status) {
            plan_read(a, b, &in, 1);
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    plan_merge(a, &in, NULL);
    plan_check(a, &in);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    args[0] = in.name;
    args[1] = in.description;
    args[2] = in.metric;
    args[3] = in.period;
    args[4] = admin_i64(a, in.period_seconds);
    args[5] = in.alignment;
    args[6] = admin_i64(a, in.quota);
    args[7] = in.rollover;
    args[8] = admin_i64(a, in.cap);
    args[9] = admin_json_text(a, in.st_models == ADMIN_SET ? in.models : NULL);
    args[10] = admin_json_text(a, in.st_groups == ADMIN_SET ? in.groups : NULL);
    args[11] = admin_i64(a, in.price);
    args[12] = in.status;
    args[13] = admin_i64(a, now);
    args[14] = args[13];
    if (admin_db_insert(a,
                        "INSERT INTO plans (name, description, metric, period, "
                        "period_seconds, alignment, quota_per_period, rollover, "
                        "rollover_cap, allowed_models, allowed_groups, price, status, "
                        "created_at, updated_at) VALUES (%s, %s, %s, %s, %lld, %s, %lld, "
                        "%s, %lld, %s, %s, %lld, %s, %lld, %lld)",
                        15, args, &id) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "plan_exists", "name",
                               "the plan '%s' exists", in.name);
        }
        return admin_db_fail(a, "create a plan");
    }
    relay_gen_bump();
    admin_audit(a, "create-plan",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " (%s)", id, in.name));
    return admin_send_data(a, HTTP_CREATED, plan_json(a, id));
}

static int admin_plans_get(admin_req_t *a)
{
    if (!admin_db(a)) {
        return OK;
    }
    return admin_send_found(a, plan_json(a, a->id[0]), "plan");
}

/* How many subscriptions (of any status) plan @a id has; -1 on failure. */
static apr_int64_t plan_subscriptions(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};

    return admin_db_count(a, "FROM subscriptions WHERE plan_id = %lld", 1, args);
}

/* Whether PATCH changes the shape of plan @a j. */
static int plan_shape_changes(const plan_input_t *in, json_t *j)
{
    return strcmp(in->metric, nebula_json_gets(j, "metric", NULL)) ||
           strcmp(in->period, nebula_json_gets(j, "period", NULL)) ||
           strcmp(in->alignment, nebula_json_gets(j, "alignment", NULL)) ||
           in->period_seconds != nebula_json_geti(j, 0, "period_seconds", NULL);
}

static int admin_plans_patch(admin_req_t *a)
{
    json_t *b = admin_body(a), *j;
    plan_input_t in;
    admin_sql_t q;
    apr_int64_t uses;

    memset(&in, 0, sizeof(in));
    if (b && !admin_db(a)) { /* allowed_groups are looked up */
        return OK;
    }
    if (b) {
        admin_only_fields(a, b, plan_fields);
        if (!a->err_status) {
            plan_read(a, b, &in, 0);
        }
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
    if ((j = plan_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "plan %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    nebula_json_own(a->r->pool, j);
    plan_merge(a, &in, j);
    plan_check(a, &in);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (plan_shape_changes(&in, j)) {
        if ((uses = plan_subscriptions(a, a->id[0])) < 0) {
            return admin_db_fail(a, "count a plan's subscriptions");
        }
        if (uses > 0) {
            return admin_error(a, HTTP_CONFLICT, "plan_in_use", NULL,
                               "plan %" APR_INT64_T_FMT " has subscriptions: its metric, "
                               "period and alignment cannot change (create a new plan)",
                               a->id[0]);
        }
    }
    admin_sql_init(&q, a->r->pool, "UPDATE plans SET");
    admin_sql_arg(&q, " updated_at = %lld", admin_i64(a, admin_now_ms()));
    if (in.st_name == ADMIN_SET) {
        admin_sql_arg(&q, ", name = %s", in.name);
    }
    admin_sql_arg(&q, ", description = %s", in.description);
    admin_sql_arg(&q, ", metric = %s", in.metric);
    admin_sql_arg(&q, ", period = %s", in.period);
    admin_sql_arg(&q, ", period_seconds = %lld", admin_i64(a, in.period_seconds));
    admin_sql_arg(&q, ", alignment = %s", in.alignment);
    if (in.st_quota == ADMIN_SET) {
        admin_sql_arg(&q, ", quota_per_period = %lld", admin_i64(a, in.quota));
    }
    admin_sql_arg(&q, ", rollover = %s", in.rollover);
    admin_sql_arg(&q, ", rollover_cap = %lld", admin_i64(a, in.cap));
    if (in.st_models != ADMIN_ABSENT) {
        admin_sql_arg(&q, ", allowed_models = %s", admin_json_text(a, in.models));
    }
    if (in.st_groups != ADMIN_ABSENT) {
        admin_sql_arg(&q, ", allowed_groups = %s", admin_json_text(a, in.groups));
    }
    admin_sql_arg(&q, ", price = %lld", admin_i64(a, in.price));
    admin_sql_arg(&q, ", status = %s", in.status);
    admin_sql_arg(&q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "plan_exists", "name",
                               "the plan '%s' exists", in.name);
        }
        return admin_db_fail(a, "change a plan");
    }
    relay_gen_bump();
    admin_audit(a, "update-plan", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_OK, plan_json(a, a->id[0]));
}

static int admin_plans_delete(admin_req_t *a)
{
    const char *args[2];
    apr_int64_t uses;
    json_t *j;

    if (!admin_db(a)) {
        return OK;
    }
    if ((j = plan_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "plan %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    json_decref(j);
    if ((uses = plan_subscriptions(a, a->id[0])) < 0) {
        return admin_db_fail(a, "count a plan's subscriptions");
    }
    args[0] = admin_i64(a, admin_now_ms());
    args[1] = admin_i64(a, a->id[0]);
    if (uses > 0) {
        /* subscriptions name it: keep the row, refuse new subscriptions */
        if (admin_db_exec(a,
                          "UPDATE plans SET status = 'archived', updated_at = %lld "
                          "WHERE id = %lld",
                          2, args, NULL) != APR_SUCCESS) {
            return admin_db_fail(a, "archive a plan");
        }
        relay_gen_bump();
        admin_audit(a, "archive-plan", args[1]);
        return admin_send_data(a, HTTP_OK, plan_json(a, a->id[0]));
    }
    if (admin_db_exec(a, "DELETE FROM plans WHERE id = %lld", 1, args + 1, NULL) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete a plan");
    }
    relay_gen_bump();
    admin_audit(a, "delete-plan", args[1]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* ---- subscriptions ------------------------------------------------------- */

static const admin_col_t sub_cols[] = {
    {"id", "s.id", ADMIN_COL_INT},
    {"plan_id", "s.plan_id", ADMIN_COL_INT},
    {"plan_name", "p.name", ADMIN_COL_STR},
    {"metric", "p.metric", ADMIN_COL_STR},
    {"subject_kind", "s.subject_kind", ADMIN_COL_STR},
    {"subject_id", "s.subject_id", ADMIN_COL_INT},
    {"status", "s.status", ADMIN_COL_STR},
    {"starts_at", "s.starts_at", ADMIN_COL_INT},
    {"expires_at", "s.expires_at", ADMIN_COL_NINT},
    {"period_start", "s.period_start", ADMIN_COL_INT},
    {"period_end", "s.period_end", ADMIN_COL_INT},
    {"account_id", "s.account_id", ADMIN_COL_INT},
    {"quota_per_period", "p.quota_per_period", ADMIN_COL_INT},
    {"balance", "a.balance", ADMIN_COL_INT},
    {"reserved", "a.reserved", ADMIN_COL_INT},
    {"available", "a.balance - a.reserved", ADMIN_COL_INT},
    {"notified_pct", "s.notified_pct", ADMIN_COL_INT},
    {"expiry_notified", "s.expiry_notified", ADMIN_COL_BOOL},
    {"created_at", "s.created_at", ADMIN_COL_INT},
    {"updated_at", "s.updated_at", ADMIN_COL_INT},
    {NULL, NULL, 0}};

#define SUBS_FROM                                                                        \
    "FROM subscriptions s JOIN plans p ON p.id = s.plan_id LEFT JOIN accounts a ON "     \
    "a.id = "                                                                            \
    "s.account_id"

static const char *const subject_kinds[] = {"user", "org", "key", NULL};
static const char *const sub_statuses[] = {"active", "expired", "cancelled", NULL};

static json_t *sub_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, sub_cols, NULL),
                    " " SUBS_FROM " WHERE s.id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, sub_cols);
}

/* Who acts, for the ledger's actor column. */
static const char *actor_of(admin_req_t *a)
{
    return a->who.via == ADMIN_AUTH_ROOT_TOKEN
               ? "root"
               : apr_psprintf(a->r->pool, "admin:%" APR_INT64_T_FMT, a->who.user_id);
}

/* The optional functions of mod_nebula_billing, or 503 sent. */
static int billing_missing(admin_req_t *a, const void *fn)
{
    if (fn != NULL) {
        return 0;
    }
    admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_unavailable", NULL,
                "mod_nebula_billing is not loaded");
    return 1;
}

static int admin_subs_list(admin_req_t *a)
{
    static const char *const allowed[] = {
        "page", "per_page", "subject_kind", "subject_id", "status", "plan_id", NULL};
    const char *kind = NULL, *status = NULL;
    apr_int64_t page, per_page, subject = 0, plan = 0;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_int(a, "subject_id", 1, ADMIN_MAX_AMOUNT, &subject);
    admin_query_int(a, "plan_id", 1, ADMIN_MAX_AMOUNT, &plan);
    admin_query_enum(a, "subject_kind", subject_kinds, &kind);
    admin_query_enum(a, "status", sub_statuses, &status);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, SUBS_FROM);
    if (kind) {
        admin_sql_where(&w, "s.subject_kind = %s", kind);
    }
    if (subject) {
        admin_sql_where(&w, "s.subject_id = %lld", admin_i64(a, subject));
    }
    if (status) {
        admin_sql_where(&w, "s.status = %s", status);
    }
    if (plan) {
        admin_sql_where(&w, "s.plan_id = %lld", admin_i64(a, plan));
    }
    return admin_db_send_page(a, &w, sub_cols, NULL, "s.id DESC", page, per_page,
                              "subscriptions");
}

/* Whether the subject of a new subscription exists; 400 recorded if not. */
static int subject_check(admin_req_t *a, const char *kind, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    const char *from = strcmp(kind, "user") == 0
                           ? "FROM users WHERE id = %lld AND status <> 'deleted'"
                       : strcmp(kind, "org") == 0 ? "FROM organizations WHERE id = %lld"
                                                  : "FROM api_keys WHERE id = %lld";
    apr_int64_t n = admin_db_count(a, from, 1, args);

    if (n < 0) {
        return admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                          "database error while checking the subject");
    }
    if (n == 0) {
        return admin_invalid(a, "subject_id", "there is no %s %" APR_INT64_T_FMT,
                             strcmp(kind, "org") == 0 ? "organisation" : kind, id);
    }
    return ADMIN_SET;
}

/** How many periods back a subscription may start: the scheduler replays
 *  every period since (one transaction each), so a start years ago on a
 *  short plan would keep it busy for nothing. */
#define SUB_MAX_BACKDATED 100

/* Whether @a starts lies more than SUB_MAX_BACKDATED periods of @a plan
 * ago (a month counted as 31 days). */
static int plan_backdated(json_t *plan, apr_int64_t starts)
{
    const char *period = nebula_json_gets(plan, "period", NULL);
    apr_int64_t len = APR_INT64_C(86400000);

    if (period && strcmp(period, "week") == 0) {
        len *= 7;
    }
    else if (period && strcmp(period, "month") == 0) {
        len *= 31;
    }
    else if (period && strcmp(period, "custom") == 0) {
        len = nebula_json_geti(plan, 60, "period_seconds", NULL) * 1000;
    }
    return admin_now_ms() - starts > len * SUB_MAX_BACKDATED;
}

static int admin_subs_create(admin_req_t *a)
{
    static const char *const fields[] = {"plan_id",   "subject_kind", "subject_id",
                                         "starts_at", "expires_at",   NULL};
    APR_OPTIONAL_FN_TYPE(nebula_billing_subscribe) *subscribe =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_subscribe);
    json_t *b = admin_body(a), *plan;
    const char *kind = NULL, *pstatus;
    apr_int64_t plan_id = 0, subject = 0, starts = 0, expires = 0, id = 0;
    int st_expires = ADMIN_ABSENT, rc;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_int(a, b, "plan_id", ADMIN_F_REQUIRED, 1, ADMIN_MAX_AMOUNT, &plan_id);
        admin_field_enum(a, b, "subject_kind", ADMIN_F_REQUIRED, subject_kinds, &kind);
        admin_field_int(a, b, "subject_id", ADMIN_F_REQUIRED, 1, ADMIN_MAX_AMOUNT,
                        &subject);
        admin_field_int(a, b, "starts_at", 0, 1, ADMIN_MAX_AMOUNT, &starts);
        st_expires = admin_field_int(a, b, "expires_at", ADMIN_F_NULLABLE, 1,
                                     ADMIN_MAX_AMOUNT, &expires);
        if (!a->err_status && st_expires == ADMIN_SET &&
            expires <= (starts ? starts : admin_now_ms())) {
            admin_invalid(a, "expires_at", "'expires_at' must be after 'starts_at'");
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (billing_missing(a, (const void *)subscribe) || !admin_db(a)) {
        return OK;
    }
    if ((plan = plan_json(a, plan_id)) == NULL) {
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", "plan_id",
                           "plan %" APR_INT64_T_FMT " does not exist", plan_id);
    }
    nebula_json_own(a->r->pool, plan);
    pstatus = nebula_json_gets(plan, "status", NULL);
    if (pstatus == NULL || strcmp(pstatus, "active") != 0) {
        return admin_error(a, HTTP_CONFLICT, "plan_archived", "plan_id",
                           "plan %" APR_INT64_T_FMT " is archived: no new subscriptions",
                           plan_id);
    }
    if (starts && plan_backdated(plan, starts)) {
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", "starts_at",
                           "'starts_at' is more than %d of the plan's periods ago",
                           SUB_MAX_BACKDATED);
    }
    if (subject_check(a, kind, subject) != ADMIN_SET) {
        return admin_send_recorded(a);
    }
    admin_db_release(a); /* billing borrows its own */
    rc = subscribe(a->r, plan_id, kind, subject, starts,
                   st_expires == ADMIN_SET ? expires : 0, actor_of(a), &id);
    if (rc == NEBULA_BILLING_INVALID) {
        return admin_error(a, HTTP_CONFLICT, "subscription_refused", NULL,
                           "the plan or the subject changed meanwhile; try again");
    }
    if (rc != NEBULA_BILLING_OK) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_error", NULL,
                           "the subscription could not be stored (see the server log)");
    }
    relay_gen_bump();
    admin_audit(a, "subscribe",
                apr_psprintf(a->r->pool,
                             "%" APR_INT64_T_FMT " (plan %" APR_INT64_T_FMT
                             ", %s %" APR_INT64_T_FMT ")",
                             id, plan_id, kind, subject));
    return admin_send_data(a, HTTP_CREATED, sub_json(a, id));
}

static int admin_subs_get(admin_req_t *a)
{
    if (!admin_db(a)) {
        return OK;
    }
    return admin_send_found(a, sub_json(a, a->id[0]), "subscription");
}

static int admin_subs_delete(admin_req_t *a)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_unsubscribe) *unsubscribe =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_unsubscribe);
    const char *status;
    json_t *j;
    int rc;

    if (billing_missing(a, (const void *)unsubscribe) || !admin_db(a)) {
        return OK;
    }
    if ((j = sub_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "subscription %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    nebula_json_own(a->r->pool, j);
    status = nebula_json_gets(j, "status", NULL);
    admin_db_release(a); /* billing borrows its own */
    rc = strcmp(status ? status : "", "active") == 0
             ? unsubscribe(a->r, a->id[0], actor_of(a))
             : NEBULA_BILLING_INVALID;
    if (rc == NEBULA_BILLING_INVALID) {
        return admin_error(a, HTTP_CONFLICT, "not_active", "id",
                           "subscription %" APR_INT64_T_FMT " is not active", a->id[0]);
    }
    if (rc != NEBULA_BILLING_OK) {
        return admin_error(
            a, HTTP_SERVICE_UNAVAILABLE, "billing_error", NULL,
            "the subscription could not be cancelled (see the server log)");
    }
    relay_gen_bump();
    admin_audit(a, "cancel-subscription", admin_i64(a, a->id[0]));
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* ---- the scheduler ------------------------------------------------------- */

static int admin_sched_run(admin_req_t *a)
{
    static const char *const fields[] = {NULL};
    APR_OPTIONAL_FN_TYPE(nebula_billing_sched_run) *run =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_sched_run);
    apr_int64_t effects = 0;

    if (a->body) {
        admin_only_fields(a, a->body, fields);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (billing_missing(a, (const void *)run)) {
        return OK;
    }
    admin_db_release(a); /* billing borrows its own */
    if (run(a->r, &effects) != NEBULA_BILLING_OK) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "db_unavailable", NULL,
                           "the scheduler could not reach the database");
    }
    if (effects > 0) {
        relay_gen_bump();
    }
    admin_audit(a, "run-scheduler",
                apr_psprintf(a->r->pool, "(%" APR_INT64_T_FMT " effects)", effects));
    return admin_send_data(a, HTTP_OK,
                           json_pack("{s:I}", "effects", (json_int_t)effects));
}

const admin_route_t admin_plans_routes[] = {
    {"GET", "/api/billing/plans", admin_plans_list, 0},
    {"POST", "/api/billing/plans", admin_plans_create, 0},
    {"GET", "/api/billing/plans/{id}", admin_plans_get, 0},
    {"PATCH", "/api/billing/plans/{id}", admin_plans_patch, 0},
    {"DELETE", "/api/billing/plans/{id}", admin_plans_delete, 0},
    {"GET", "/api/billing/subscriptions", admin_subs_list, 0},
    {"POST", "/api/billing/subscriptions", admin_subs_create, 0},
    {"GET", "/api/billing/subscriptions/{id}", admin_subs_get, 0},
    {"DELETE", "/api/billing/subscriptions/{id}", admin_subs_delete, 0},
    {"POST", "/api/billing/scheduler/run", admin_sched_run, 0},
    {NULL, NULL, NULL, 0}};

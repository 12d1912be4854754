/* admin_orgs.c: /api/orgs: organisations (organizations). A user joins one
 * with PATCH /api/users/{id} {"org_id": N} and then pays from the
 * organisation's wallet. Organisations are referred to by id, so they may
 * be renamed. One is deleted only while nothing depends on it: no member
 * (a user that is not deleted), no money in its wallet, no active
 * subscription. Its wallet's row and ledger stay (the ledger is
 * append-only). */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_billing.h"

static const admin_col_t org_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"name", NULL, ADMIN_COL_STR},
    {"display_name", NULL, ADMIN_COL_STR},
    {"members",
     "(SELECT COUNT(*) FROM users u WHERE u.org_id = organizations.id AND "
     "u.status <> 'deleted')",
     ADMIN_COL_INT},
    {"created_at", NULL, ADMIN_COL_INT},
    {NULL, NULL, 0}};

static json_t *org_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, org_cols, NULL),
                    " FROM organizations WHERE id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, org_cols);
}

int admin_orgs_check(admin_req_t *a, const char *param, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;

    if (admin_db_select(a, "SELECT id FROM organizations WHERE id = %lld", 1, args,
                        &rows) != APR_SUCCESS) {
        admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                   "database error while checking an organisation");
        return -1;
    }
    if (rows.nrows == 0) {
        admin_invalid(
            a, param,
            "the organisation %" APR_INT64_T_FMT " does not exist (POST /api/orgs)", id);
        return 0;
    }
    return 1;
}

/* name and display_name of a request; st_* ADMIN_SET or ADMIN_ABSENT. */
static void read_org(admin_req_t *a, json_t *b, int create, const char **name,
                     const char **display)
{
    static const char *const fields[] = {"name", "display_name", NULL};

    admin_only_fields(a, b, fields);
    if (admin_field_str(a, b, "name", create ? ADMIN_F_REQUIRED : 0, 64, name) ==
            ADMIN_SET &&
        !admin_groups_valid_name(*name)) {
        admin_invalid(a, "name", "'name' must be 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    admin_field_str(a, b, "display_name", 0, 255, display);
    if (!create && !a->err_status && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
}

static int org_exists_error(admin_req_t *a, const char *name)
{
    return admin_error(a, HTTP_CONFLICT, "org_exists", "name",
                       "the organisation '%s' exists", name);
}

static int org_missing(admin_req_t *a)
{
    return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                       "organisation %" APR_INT64_T_FMT " does not exist", a->id[0]);
}

int admin_orgs_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "q", NULL};
    apr_int64_t page, per_page;
    const char *q = NULL;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "q", 64, &q);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM organizations");
    if (q) {
        admin_sql_where(&w,
                        "(LOWER(name) LIKE LOWER(%s) ESCAPE '!' OR "
                        "LOWER(display_name) LIKE LOWER(%s) ESCAPE '!')",
                        admin_like(a->r->pool, q));
    }
    return admin_db_send_page(a, &w, org_cols, NULL, "id", page, per_page,
                              "organisations");
}

int admin_orgs_create(admin_req_t *a)
{
    json_t *b = admin_body(a);
    const char *name = NULL, *display = "", *args[3];
    nebula_dbd_rows_t rows;
    apr_int64_t id;

    if (b) {
        read_org(a, b, 1, &name, &display);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_select(a, "SELECT id FROM organizations WHERE name = %s", 1, &name,
                        &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "check an organisation");
    }
    if (rows.nrows > 0) {
        return org_exists_error(a, name);
    }
    args[0] = name, args[1] = display, args[2] = admin_i64(a, admin_now_ms());
    if (admin_db_insert(a,
                        "INSERT INTO organizations (name, display_name, created_at) "
                        "VALUES (%s, %s, %lld)",
                        3, args, &id) != APR_SUCCESS) {
        return admin_db_conflict(a) ? org_exists_error(a, name)
                                    : admin_db_fail(a, "create an organisation");
    }
    admin_audit(a, "create-org",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT " '%s'", id, name));
    return admin_send_data(a, HTTP_CREATED, org_json(a, id));
}

int admin_orgs_get(admin_req_t *a)
{
    json_t *o;

    if (!admin_db(a)) {
        return OK;
    }
    if ((o = org_json(a, a->id[0])) == NULL) {
        return org_missing(a);
    }
    return admin_send_data(a, HTTP_OK, o);
}

int admin_orgs_patch(admin_req_t *a)
{
    json_t *b = admin_body(a), *o;
    const char *name = NULL, *display = NULL;
    nebula_dbd_rows_t rows;
    admin_sql_t q;

    if (b) {
        read_org(a, b, 0, &name, &display);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((o = org_json(a, a->id[0])) == NULL) {
        return org_missing(a);
    }
    json_decref(o);
    if (name) {
        const char *args[2] = {name, admin_i64(a, a->id[0])};
        if (admin_db_select(a,
                            "SELECT id FROM organizations WHERE name = %s AND id <> %lld",
                            2, args, &rows) != APR_SUCCESS) {
            return admin_db_fail(a, "check an organisation");
        }
        if (rows.nrows > 0) {
            return org_exists_error(a, name);
        }
    }
    admin_sql_init(&q, a->r->pool, "UPDATE organizations SET id = id");
    if (name) {
        admin_sql_arg(&q, ", name = %s", name);
    }
    if (display) {
        admin_sql_arg(&q, ", display_name = %s", display);
    }
    admin_sql_arg(&q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        return admin_db_conflict(a) ? org_exists_error(a, name)
                                    : admin_db_fail(a, "change an organisation");
    }
    admin_audit(a, "update-org", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_OK, org_json(a, a->id[0]));
}

/* What still depends on organisation a->id[0]: NULL when nothing, else a
 * message; *failed on a database error. */
static const char *org_in_use(admin_req_t *a, int *failed)
{
    const char *args[1] = {admin_i64(a, a->id[0])};
    apr_int64_t members, subs;
    nebula_dbd_rows_t rows;

    *failed = 1;
    members = admin_db_count(a, "FROM users WHERE org_id = %lld AND status <> 'deleted'",
                             1, args);
    subs = admin_db_count(a,
                          "FROM subscriptions WHERE subject_kind = 'org' AND "
                          "subject_id = %lld AND status = 'active'",
                          1, args);
    if (members < 0 || subs < 0 ||
        admin_db_select(a,
                        "SELECT balance, reserved FROM accounts WHERE owner_kind = 'org' "
                        "AND owner_id = %lld",
                        1, args, &rows) != APR_SUCCESS) {
        return NULL;
    }
    *failed = 0;
    if (members > 0) {
        return apr_psprintf(a->r->pool, "it has %" APR_INT64_T_FMT " member(s)", members);
    }
    if (subs > 0) {
        return apr_psprintf(a->r->pool,
                            "it has %" APR_INT64_T_FMT " active subscription(s)", subs);
    }
    if (rows.nrows == 1 &&
        (nebula_ap_db_int(&rows, 0, 0) != 0 || nebula_ap_db_int(&rows, 0, 1) != 0)) {
        return apr_psprintf(a->r->pool,
                            "its wallet is not empty (balance %" APR_INT64_T_FMT
                            ", reserved %" APR_INT64_T_FMT ")",
                            nebula_ap_db_int(&rows, 0, 0), nebula_ap_db_int(&rows, 0, 1));
    }
    return NULL;
}

int admin_orgs_delete(admin_req_t *a)
{
    const char *why, *args[1];
    int failed, n = 0;
    json_t *o;

    if (!admin_db(a)) {
        return OK;
    }
    if ((o = org_json(a, a->id[0])) == NULL) {
        return org_missing(a);
    }
    json_decref(o);
    why = org_in_use(a, &failed);
    if (failed) {
        return admin_db_fail(a, "check an organisation's uses");
    }
    if (why) {
        return admin_error(a, HTTP_CONFLICT, "org_in_use", "id",
                           "organisation %" APR_INT64_T_FMT " cannot be deleted: %s",
                           a->id[0], why);
    }
    /* the guard repeats the member check inside the transaction (a user may
     * join meanwhile); deleted users keep no link to a gone organisation */
    args[0] = admin_i64(a, a->id[0]);
    if (admin_db_begin(a) != APR_SUCCESS ||
        admin_db_exec(
            a,
            "DELETE FROM organizations WHERE id = %lld AND NOT EXISTS (SELECT 1 "
            "FROM users WHERE org_id = %lld AND status <> 'deleted')",
            2, (const char *const[]){args[0], args[0]}, &n) != APR_SUCCESS ||
        (n == 1 && admin_db_exec(a, "UPDATE users SET org_id = NULL WHERE org_id = %lld",
                                 1, args, NULL) != APR_SUCCESS) ||
        admin_db_commit(a) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "delete an organisation");
    }
    if (n != 1) {
        return admin_error(a, HTTP_CONFLICT, "org_in_use", "id",
                           "organisation %" APR_INT64_T_FMT " cannot be deleted: it has "
                           "members",
                           a->id[0]);
    }
    relay_gen_bump();
    admin_audit(a, "delete-org", args[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

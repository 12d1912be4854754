/* admin_groups.c: /api/groups: user groups and their price ratio
 * (user_groups: name, ratio_ppm, description). A user's group, a key's group
 * and a channel's groups must name an existing group; "default" always
 * exists (0003_admin seeds it) and cannot be deleted, and a group still used
 * by a user, a key or a channel cannot be deleted either. Groups are named
 * by users, keys and abilities, so a group is never renamed. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"

static const admin_col_t group_cols[] = {{"name", NULL, ADMIN_COL_STR},
                                         {"ratio_ppm", NULL, ADMIN_COL_INT},
                                         {"description", NULL, ADMIN_COL_STR},
                                         {"created_at", NULL, ADMIN_COL_INT},
                                         {NULL, NULL, 0}};

#define MAX_RATIO_PPM APR_INT64_C(1000000000) /* 1000x */

int admin_groups_valid_name(const char *s)
{
    apr_size_t n = strlen(s), i;

    for (i = 0; i < n; ++i) {
        if (!apr_isalnum(s[i]) && !strchr("_.-", s[i])) {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

int admin_groups_check_name(admin_req_t *a, const char *param, const char *name)
{
    nebula_dbd_rows_t rows;

    if (!admin_groups_valid_name(name)) {
        return admin_invalid(a, param, "'%s' is not a valid group name", name);
    }
    if (admin_db_select(a, "SELECT name FROM user_groups WHERE name = %s", 1, &name,
                        &rows) != APR_SUCCESS) {
        return admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                          "database error while checking a group");
    }
    if (rows.nrows == 0 && strcmp(name, "default") != 0) {
        return admin_invalid(a, param, "the group '%s' does not exist (POST /api/groups)",
                             name);
    }
    return ADMIN_SET;
}

int admin_groups_check(admin_req_t *a, const char *param, json_t *names)
{
    json_t *v;
    size_t i;

    if (json_is_string(names)) {
        return admin_groups_check_name(a, param, json_string_value(names));
    }
    json_array_foreach(names, i, v)
    {
        if (admin_groups_check_name(a, param, json_string_value(v)) != ADMIN_SET) {
            return ADMIN_BAD;
        }
    }
    return ADMIN_SET;
}

static json_t *group_json(admin_req_t *a, const char *name)
{
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, group_cols, NULL),
                    " FROM user_groups WHERE name = %s", NULL);

    if (admin_db_select(a, sql, 1, &name, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, group_cols);
}

int admin_groups_list(admin_req_t *a)
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
    admin_sql_init(&w, a->r->pool, "FROM user_groups");
    if (q) {
        admin_sql_where(&w, "LOWER(name) LIKE LOWER(%s) ESCAPE '!'",
                        admin_like(a->r->pool, q));
    }
    return admin_db_send_page(a, &w, group_cols, NULL, "name", page, per_page, "groups");
}

int admin_groups_create(admin_req_t *a)
{
    static const char *const fields[] = {"name", "ratio_ppm", "description", NULL};
    json_t *b = admin_body(a);
    const char *name = NULL, *desc = "", *args[4];
    apr_int64_t ratio = 1000000;

    if (b) {
        admin_only_fields(a, b, fields);
        if (admin_field_str(a, b, "name", ADMIN_F_REQUIRED, 64, &name) == ADMIN_SET &&
            !admin_groups_valid_name(name)) {
            admin_invalid(a, "name", "'name' must be 1 to 64 of A-Z a-z 0-9 _ . -");
        }
        admin_field_int(a, b, "ratio_ppm", 0, 0, MAX_RATIO_PPM, &ratio);
        admin_field_str(a, b, "description", 0, 255, &desc);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (group_json(a, name) != NULL) {
        return admin_error(a, HTTP_CONFLICT, "group_exists", "name",
                           "the group '%s' exists", name);
    }
    args[0] = name, args[1] = admin_i64(a, ratio), args[2] = desc;
    args[3] = admin_i64(a, admin_now_ms());
    if (admin_db_exec(
            a,
            "INSERT INTO user_groups (name, ratio_ppm, description, created_at) "
            "VALUES (%s, %lld, %s, %lld)",
            4, args, NULL) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "group_exists", "name",
                               "the group '%s' exists", name);
        }
        return admin_db_fail(a, "create a group");
    }
    relay_gen_bump();
    admin_audit(a, "create-group", name);
    return admin_send_data(a, HTTP_CREATED, group_json(a, name));
}

int admin_groups_get(admin_req_t *a)
{
    json_t *g;

    if (!admin_db(a)) {
        return OK;
    }
    if ((g = group_json(a, a->param[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "name",
                           "the group '%s' does not exist", a->param[0]);
    }
    return admin_send_data(a, HTTP_OK, g);
}

int admin_groups_patch(admin_req_t *a)
{
    static const char *const fields[] = {"ratio_ppm", "description", NULL};
    json_t *b = admin_body(a), *g;
    const char *desc = NULL;
    apr_int64_t ratio = -1;
    admin_sql_t q;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_int(a, b, "ratio_ppm", 0, 0, MAX_RATIO_PPM, &ratio);
        admin_field_str(a, b, "description", 0, 255, &desc);
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
    if ((g = group_json(a, a->param[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "name",
                           "the group '%s' does not exist", a->param[0]);
    }
    json_decref(g);
    admin_sql_init(&q, a->r->pool, "UPDATE user_groups SET name = name");
    if (ratio >= 0) {
        admin_sql_arg(&q, ", ratio_ppm = %lld", admin_i64(a, ratio));
    }
    if (desc) {
        admin_sql_arg(&q, ", description = %s", desc);
    }
    admin_sql_arg(&q, " WHERE name = %s", a->param[0]);
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change a group");
    }
    relay_gen_bump();
    admin_audit(a, "update-group", a->param[0]);
    return admin_send_data(a, HTTP_OK, group_json(a, a->param[0]));
}

/* How many users, keys and abilities name the group; -1 on failure. */
static apr_int64_t group_uses(admin_req_t *a, const char *name, const char **what)
{
    static const char *const froms[] = {
        "FROM users WHERE user_group = %s AND status <> 'deleted'",
        "FROM api_keys WHERE key_group = %s",
        "FROM (SELECT DISTINCT channel_id FROM abilities WHERE user_group = %s) t", NULL};
    static const char *const names[] = {"users", "keys", "channels"};
    int i;

    for (i = 0; froms[i]; ++i) {
        apr_int64_t n = admin_db_count(a, froms[i], 1, &name);
        if (n != 0) {
            *what = names[i];
            return n;
        }
    }
    return 0;
}

int admin_groups_delete(admin_req_t *a)
{
    const char *what = NULL;
    apr_int64_t uses;
    json_t *g;
    int n = 0;

    if (!admin_db(a)) {
        return OK;
    }
    if ((g = group_json(a, a->param[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "name",
                           "the group '%s' does not exist", a->param[0]);
    }
    json_decref(g);
    if (strcmp(a->param[0], "default") == 0) {
        return admin_error(a, HTTP_CONFLICT, "group_in_use", "name",
                           "the group 'default' cannot be deleted");
    }
    if ((uses = group_uses(a, a->param[0], &what)) < 0) {
        return admin_db_fail(a, "check a group's uses");
    }
    if (uses > 0) {
        return admin_error(a, HTTP_CONFLICT, "group_in_use", "name",
                           "the group '%s' is still used by %s (%" APR_INT64_T_FMT ")",
                           a->param[0], what, uses);
    }
    if (admin_db_exec(a, "DELETE FROM user_groups WHERE name = %s", 1, &a->param[0],
                      &n) != APR_SUCCESS) {
        return admin_db_fail(a, "delete a group");
    }
    relay_gen_bump();
    admin_audit(a, "delete-group", a->param[0]);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

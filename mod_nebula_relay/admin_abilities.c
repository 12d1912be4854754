/* admin_abilities.c: the abilities table, (user_group, model, channel_id) ->
 * enabled, priority, weight, which channel selection reads. It is derived
 * data: relay_abilities_rebuild() recomputes a channel's rows from the
 * channel row (channel_groups x models, enabled iff the channel is enabled),
 * inside the caller's transaction. GET /api/abilities shows it. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_admin.h"

static apr_status_t insert_abilities(nebula_ap_db_t *db, const char *id,
                                     const nebula_dbd_rows_t *rows, json_t *models,
                                     json_t *groups, const char **err)
{
    const char *enabled =
        strcmp(rows->rows[0][2] ? rows->rows[0][2] : "", "enabled") ? "0" : "1";
    json_t *g, *m;
    size_t i, j;

    json_array_foreach(groups, i, g)
    {
        json_array_foreach(models, j, m)
        {
            const char *args[6];
            if (!json_is_string(g) || !json_is_string(m)) {
                continue;
            }
            args[0] = json_string_value(g);
            args[1] = json_string_value(m);
            args[2] = id;
            args[3] = enabled;
            args[4] = rows->rows[0][3];
            args[5] = rows->rows[0][4];
            if (nebula_ap_db_exec(
                    db, "relay_abilities_insert",
                    "INSERT INTO abilities (user_group, model, channel_id, "
                    "enabled, priority, weight) VALUES (%s, %s, %lld, %lld, "
                    "%lld, %lld)",
                    6, args, NULL, err) != APR_SUCCESS) {
                return APR_EGENERAL;
            }
        }
    }
    return APR_SUCCESS;
}

apr_status_t relay_abilities_rebuild(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t id,
                                     const char **err)
{
    const char *args[1] = {apr_psprintf(p, "%" APR_INT64_T_FMT, id)};
    nebula_dbd_rows_t rows;
    json_t *models, *groups;

    if (nebula_ap_db_exec(db, "relay_abilities_delete",
                          "DELETE FROM abilities WHERE channel_id = %lld", 1, args, NULL,
                          err) != APR_SUCCESS ||
        nebula_ap_db_select(db, "relay_abilities_channel",
                            "SELECT models, channel_groups, status, priority, weight "
                            "FROM channels WHERE id = %lld",
                            1, args, &rows, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (rows.nrows != 1) {
        return APR_SUCCESS; /* the channel is gone: no abilities */
    }
    models = nebula_json_parse(p, rows.rows[0][0],
                               rows.rows[0][0] ? strlen(rows.rows[0][0]) : 0, 0, NULL);
    groups = nebula_json_parse(p, rows.rows[0][1],
                               rows.rows[0][1] ? strlen(rows.rows[0][1]) : 0, 0, NULL);
    if (!json_is_array(models) || !json_is_array(groups)) {
        *err = apr_psprintf(p, "channel %s has unreadable models or channel_groups",
                            args[0]);
        return APR_EGENERAL;
    }
    return insert_abilities(db, args[0], &rows, models, groups, err);
}

static const admin_col_t ability_cols[] = {
    {"user_group", NULL, ADMIN_COL_STR}, {"model", NULL, ADMIN_COL_STR},
    {"channel_id", NULL, ADMIN_COL_INT}, {"channel_name", "c.name", ADMIN_COL_NSTR},
    {"enabled", NULL, ADMIN_COL_BOOL},   {"priority", NULL, ADMIN_COL_INT},
    {"weight", NULL, ADMIN_COL_INT},     {NULL, NULL, 0}};

int admin_abilities_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",       "per_page", "group", "model",
                                          "channel_id", "enabled",  NULL};
    const char *group = NULL, *model = NULL;
    apr_int64_t page, per_page, channel = 0, enabled = -1;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "group", 64, &group);
    admin_query_str(a, "model", 255, &model);
    admin_query_int(a, "channel_id", 1, ADMIN_MAX_AMOUNT, &channel);
    admin_query_int(a, "enabled", 0, 1, &enabled);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool,
                   "FROM abilities ab LEFT JOIN channels c ON c.id = "
                   "ab.channel_id");
    if (group) {
        admin_sql_where(&w, "ab.user_group = %s", group);
    }
    if (model) {
        admin_sql_where(&w, "ab.model = %s", model);
    }
    if (channel) {
        admin_sql_where(&w, "ab.channel_id = %lld", admin_i64(a, channel));
    }
    if (enabled >= 0) {
        admin_sql_where(&w, "ab.enabled = %lld", admin_i64(a, enabled));
    }
    return admin_db_send_page(a, &w, ability_cols, "ab",
                              "ab.user_group, ab.model, ab.priority DESC, ab.channel_id",
                              page, per_page, "abilities");
}

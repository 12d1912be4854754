/* admin_logs.c: GET /api/logs (request logs, newest first, filtered and
 * paginated) and GET /api/logs/{id}. Read-only: the relay writes the rows.
 * The filters share admin_logs_filters() with the usage statistics. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"

static const admin_col_t log_cols[] = {{"id", NULL, ADMIN_COL_STR},
                                       {"created_at", NULL, ADMIN_COL_INT},
                                       {"key_id", NULL, ADMIN_COL_NINT},
                                       {"user_id", NULL, ADMIN_COL_NINT},
                                       {"model", NULL, ADMIN_COL_STR},
                                       {"upstream_model", NULL, ADMIN_COL_NSTR},
                                       {"channel_id", NULL, ADMIN_COL_NINT},
                                       {"attempts", NULL, ADMIN_COL_INT},
                                       {"prompt_tokens", NULL, ADMIN_COL_INT},
                                       {"completion_tokens", NULL, ADMIN_COL_INT},
                                       {"cached_tokens", NULL, ADMIN_COL_INT},
                                       {"cost", NULL, ADMIN_COL_INT},
                                       {"status", NULL, ADMIN_COL_INT},
                                       {"latency_ms", NULL, ADMIN_COL_INT},
                                       {"ttfb_ms", NULL, ADMIN_COL_INT},
                                       {"is_stream", NULL, ADMIN_COL_BOOL},
                                       {"client_ip", NULL, ADMIN_COL_NSTR},
                                       {"error", NULL, ADMIN_COL_NSTR},
                                       {"end_reason", NULL, ADMIN_COL_NSTR},
                                       {"usage_estimated", NULL, ADMIN_COL_BOOL},
                                       {NULL, NULL, 0}};

/* Filters by key, user, model and channel (both routes) and, for the log
 * list, by status and stream; added to @a w as WHERE conditions. */
void admin_logs_filters(admin_req_t *a, admin_sql_t *w, int with_status)
{
    apr_int64_t key_id = 0, user_id = 0, channel_id = 0, status = 0, stream = -1;
    const char *model = NULL;

    admin_query_int(a, "key_id", 1, ADMIN_MAX_AMOUNT, &key_id);
    admin_query_int(a, "user_id", 1, ADMIN_MAX_AMOUNT, &user_id);
    admin_query_int(a, "channel_id", 1, ADMIN_MAX_AMOUNT, &channel_id);
    admin_query_str(a, "model", 255, &model);
    if (with_status) {
        admin_query_int(a, "status", 100, 599, &status);
        admin_query_int(a, "stream", 0, 1, &stream);
    }
    if (key_id) {
        admin_sql_where(w, "key_id = %lld", admin_i64(a, key_id));
    }
    if (user_id) {
        admin_sql_where(w, "user_id = %lld", admin_i64(a, user_id));
    }
    if (channel_id) {
        admin_sql_where(w, "channel_id = %lld", admin_i64(a, channel_id));
    }
    if (model) {
        admin_sql_where(w, "model = %s", model);
    }
    if (status) {
        admin_sql_where(w, "status = %lld", admin_i64(a, status));
    }
    if (stream >= 0) {
        admin_sql_where(w, "is_stream = %lld", admin_i64(a, stream));
    }
}

/* from (inclusive) and to (exclusive), Unix ms; absent ones stay as given. */
int admin_logs_range(admin_req_t *a, apr_int64_t *from, apr_int64_t *to)
{
    int sf = admin_query_int(a, "from", 0, ADMIN_MAX_AMOUNT, from);
    int st = admin_query_int(a, "to", 0, ADMIN_MAX_AMOUNT, to);

    if (sf == ADMIN_SET && st == ADMIN_SET && *from > *to) {
        return admin_invalid(a, "from", "'from' is after 'to'");
    }
    return a->err_status ? ADMIN_BAD : ADMIN_SET;
}

int admin_logs_send_list(admin_req_t *a, const char *const *allowed, const admin_col_t *cols,
                         apr_int64_t (*owner)(admin_req_t *a))
{
    apr_int64_t page, per_page, from = -1, to = -1, uid = 0;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_logs_range(a, &from, &to);
    admin_sql_init(&w, a->r->pool, "FROM request_logs");
    if (from >= 0) {
        admin_sql_where(&w, "created_at >= %lld", admin_i64(a, from));
    }
    if (to >= 0) {
        admin_sql_where(&w, "created_at < %lld", admin_i64(a, to));
    }
    admin_logs_filters(a, &w, 1);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    /* the owner's lookup answers the request itself when there is none */
    if ((owner && (uid = owner(a)) == 0) || !admin_db(a)) {
        return OK;
    }
    if (owner) {
        admin_sql_where(&w, "user_id = %lld", admin_i64(a, uid));
    }
    return admin_db_send_page(a, &w, cols, NULL, "created_at DESC, id DESC", page, per_page,
                              "request logs");
}

int admin_logs_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",   "per_page", "from",  "to",
                                          "key_id", "user_id",  "model", "channel_id",
                                          "status", "stream",   NULL};

    return admin_logs_send_list(a, allowed, log_cols, NULL);
}

int admin_logs_get(admin_req_t *a)
{
    char *id = apr_pstrdup(a->r->pool, a->param[0]), *s;
    const char *args[1] = {id};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, log_cols, NULL),
                    " FROM request_logs WHERE id = %s", NULL);

    for (s = id; *s; ++s) {
        *s = apr_tolower(*s);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "read a request log");
    }
    if (rows.nrows != 1) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                           "request log %s does not exist", id);
    }
    return admin_send_data(a, HTTP_OK, admin_row_json(&rows, 0, 0, log_cols));
}

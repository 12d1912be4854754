/* admin_self_usage.c: a signed-in user's own request logs and statistics:
 * GET /api/self/logs, /api/self/stats/usage and /api/self/stats/summary.
 * They are the managers' routes with user_id forced to the caller's: the
 * query may not name user_id (nor channel_id: channels are the operators'
 * business), so no row of another account is ever counted or shown. A log
 * shows what /api/logs shows but the channel. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "admin_self.h"

static const admin_col_t own_log_cols[] = {{"id", NULL, ADMIN_COL_STR},
                                           {"created_at", NULL, ADMIN_COL_INT},
                                           {"key_id", NULL, ADMIN_COL_NINT},
                                           {"model", NULL, ADMIN_COL_STR},
                                           {"upstream_model", NULL, ADMIN_COL_NSTR},
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

int admin_self_logs_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",  "per_page", "from",   "to", "key_id",
                                          "model", "status",   "stream", NULL};

    return admin_logs_send_list(a, allowed, own_log_cols, admin_self_user);
}

int admin_self_stats_usage(admin_req_t *a)
{
    static const char *const allowed[] = {"from",  "to",     "bucket", "tz_offset",
                                          "model", "key_id", NULL};
    apr_int64_t uid;

    admin_query_only(a, allowed);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if ((uid = admin_self_user(a)) == 0) {
        return OK;
    }
    /* the managers' route, filtered by the caller (a parameter it could not
     * give: refused above) */
    apr_table_setn(a->query, "user_id", admin_i64(a, uid));
    return admin_stats_usage(a);
}

int admin_self_stats_summary(admin_req_t *a)
{
    apr_int64_t uid = admin_self_user(a);

    return uid ? admin_stats_summary_send(a, uid) : OK;
}

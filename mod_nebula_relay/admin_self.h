/**
 * @file admin_self.h
 * @brief The dashboard's statistics (GET /api/stats/summary,
 *        admin_stats_summary.c), the owners' own keys, request logs and
 *        statistics (/api/self/keys, /api/self/logs, /api/self/stats/...:
 *        admin_self_keys.c, admin_self_usage.c) and the settings page
 *        (GET /api/settings, admin_settings.c).
 *
 * Self-service routes take the caller from the credentials, never from the
 * request: a key or row of another account is answered 404, as if it did
 * not exist, so that ids do not leak.
 */
#ifndef ADMIN_SELF_H
#define ADMIN_SELF_H

#include "relay_admin.h"

/**
 * Answer GET /api/stats/summary, or its self-service twin when @a self_user
 * is not 0: then every row is the caller's (user_id forced), and the query
 * may not name user_id or channel_id nor group by channel or user.
 */
int admin_stats_summary_send(admin_req_t *a, apr_int64_t self_user);

admin_handler_fn admin_stats_summary;
admin_handler_fn admin_self_keys_list, admin_self_keys_create, admin_self_keys_get,
    admin_self_keys_patch, admin_self_keys_delete;
admin_handler_fn admin_self_logs_list, admin_self_stats_usage, admin_self_stats_summary;
admin_handler_fn admin_settings_get;

/** The caller's user id; 0 after 400 no_user was sent (the root token). */
apr_int64_t admin_self_user(admin_req_t *a);

#endif /* ADMIN_SELF_H */

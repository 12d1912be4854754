/**
 * @file nebula_ap_reqlog.h
 * @brief The request_logs row: one INSERT shared by the relay (when billing
 *        is absent) and the billing module (in the settling transaction).
 */
#ifndef NEBULA_AP_REQLOG_H
#define NEBULA_AP_REQLOG_H

#include "nebula_ap_db.h"
#include "nebula_types.h"

/**
 * Insert @a log with @a cost (quota units) and the paying @a account_id
 * (0: none) on @a db.
 */
apr_status_t nebula_ap_reqlog_insert(nebula_ap_db_t *db, apr_pool_t *p,
                                     const nebula_reqlog_t *log, apr_int64_t cost,
                                     apr_int64_t account_id, const char **err);

#endif /* NEBULA_AP_REQLOG_H */

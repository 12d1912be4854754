/* nebula_ap_reqlog.c: the request_logs INSERT (see nebula_ap_reqlog.h). */
#include <apr_strings.h>
#include "nebula_ap_reqlog.h"

#define I64(p, v) apr_psprintf((p), "%" APR_INT64_T_FMT, (apr_int64_t)(v))

static const char *const insert_sql =
    "INSERT INTO request_logs (id, created_at, key_id, user_id, model, upstream_model, "
    "channel_id, attempts, prompt_tokens, completion_tokens, cached_tokens, cost, status, "
    "latency_ms, ttfb_ms, is_stream, client_ip, error, end_reason, usage_estimated, "
    "account_id) VALUES (%s, %lld, %lld, %lld, %s, %s, %lld, %lld, %lld, %lld, %lld, %lld, "
    "%lld, %lld, %lld, %lld, %s, %s, %s, %lld, %lld)";

static apr_int64_t nonneg(apr_int64_t v)
{
    return v < 0 ? 0 : v;
}

apr_status_t nebula_ap_reqlog_insert(nebula_ap_db_t *db, apr_pool_t *p,
                                     const nebula_reqlog_t *log, apr_int64_t cost,
                                     apr_int64_t account_id, const char **err)
{
    const nebula_req_t *req = log->req;
    const char *args[21];

    args[0] = req->request_id;
    args[1] = I64(p, apr_time_as_msec(req->received));
    args[2] = I64(p, req->key_id);
    args[3] = I64(p, req->user_id);
    args[4] = req->model ? req->model : "";
    args[5] = req->upstream_model;
    args[6] = log->channel_id ? I64(p, log->channel_id) : NULL;
    args[7] = I64(p, log->attempts);
    args[8] = I64(p, nonneg(log->usage.prompt_tokens));
    args[9] = I64(p, nonneg(log->usage.completion_tokens));
    args[10] = I64(p, nonneg(log->usage.cached_tokens));
    args[11] = I64(p, cost);
    args[12] = I64(p, log->status);
    args[13] = I64(p, log->latency_ms);
    args[14] = I64(p, log->ttfb_ms);
    args[15] = req->stream ? "1" : "0";
    args[16] = req->client_ip;
    args[17] = log->error;
    args[18] = log->end_reason;
    args[19] = log->usage.estimated ? "1" : "0";
    args[20] = account_id ? I64(p, account_id) : NULL;
    return nebula_ap_db_exec(db, "nebula_reqlog_insert", insert_sql, 21, args, NULL, err);
}

/* relay_log.c: the end of every authenticated API request: one row in
 * request_logs (what the admin API's logs and stats read), the key's last
 * use, and the env vars mod_log_config, mod_headers and <If> can use. */
#include <apr_strings.h>
#include "relay_private.h"
#include "nebula_ap_db.h"

#define I64(p, v) apr_psprintf((p), "%" APR_INT64_T_FMT, (apr_int64_t)(v))

static const char *const insert_sql =
    "INSERT INTO request_logs (id, created_at, key_id, user_id, model, upstream_model, "
    "channel_id, attempts, prompt_tokens, completion_tokens, cached_tokens, cost, status, "
    "latency_ms, ttfb_ms, is_stream, client_ip, error, end_reason, usage_estimated) "
    "VALUES (%s, %lld, %lld, %lld, %s, %s, %lld, %lld, %lld, %lld, %lld, %lld, %lld, "
    "%lld, %lld, %lld, %s, %s, %s, %lld)";

static void set_env(relay_ctx_t *ctx)
{
    apr_table_t *env = ctx->r->subprocess_env;
    apr_pool_t *p = ctx->r->pool;

    if (ctx->channel) {
        apr_table_setn(env, "NEBULA_CHANNEL", I64(p, ctx->channel->id));
    }
    apr_table_setn(env, "NEBULA_PROMPT_TOKENS", I64(p, ctx->usage.prompt_tokens));
    apr_table_setn(env, "NEBULA_COMPLETION_TOKENS", I64(p, ctx->usage.completion_tokens));
    apr_table_setn(env, "NEBULA_COST", "0");
    apr_table_setn(env, "NEBULA_END", ctx->end_reason);
}

void relay_log_request(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    apr_pool_t *p = r->pool;
    apr_time_t now = apr_time_now();
    nebula_ap_db_t *db;
    const char *args[20], *err = NULL;

    set_env(ctx);
    relay_stats_request();
    args[0] = ctx->req.request_id;
    args[1] = I64(p, apr_time_as_msec(ctx->start));
    args[2] = I64(p, ctx->key->id);
    args[3] = I64(p, ctx->key->user_id);
    args[4] = ctx->req.model ? ctx->req.model : "";
    args[5] = ctx->req.upstream_model;
    args[6] = ctx->channel ? I64(p, ctx->channel->id) : NULL;
    args[7] = I64(p, ctx->attempts);
    args[8] = I64(p, ctx->usage.prompt_tokens);
    args[9] = I64(p, ctx->usage.completion_tokens);
    args[10] = I64(p, ctx->usage.cached_tokens);
    args[11] = "0";
    args[12] = I64(p, ctx->status ? ctx->status : r->status);
    args[13] = I64(p, apr_time_as_msec(now - ctx->start));
    args[14] = I64(p, ctx->first_byte ? apr_time_as_msec(ctx->first_byte - ctx->start) : 0);
    args[15] = ctx->req.stream ? "1" : "0";
    args[16] = r->useragent_ip;
    args[17] = ctx->error;
    args[18] = ctx->end_reason;
    args[19] = ctx->usage.estimated ? "1" : "0";
    if ((db = nebula_ap_db_open(p, r->server)) == NULL) {
        return;
    }
    if (nebula_ap_db_exec(db, "relay_log_insert", insert_sql, 20, args, NULL, &err)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01060: cannot write the request log row %s: %s",
                      ctx->req.request_id, err);
    }
    args[0] = I64(p, apr_time_as_msec(now));
    args[1] = I64(p, ctx->key->id);
    if (nebula_ap_db_exec(db, "relay_key_touch",
                          "UPDATE api_keys SET accessed_at = %lld WHERE id = %lld", 2, args,
                          NULL, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB01061: cannot update the key's last use: %s", err);
    }
    nebula_ap_db_close(db);
}

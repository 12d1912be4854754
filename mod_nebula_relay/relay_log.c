/* relay_log.c: the end of every authenticated API request: billing's
 * settlement (or release) of the hold together with the request_logs row
 * (what the admin API's logs and stats read; without a settlement the row
 * goes to the writer thread of relay_logq.c), the key's last use (written
 * when the key was read from the database, not for every request), and the
 * env vars mod_log_config, mod_headers and <If> can use. */
#include <apr_strings.h>
#include <apr_optional.h>
#include "relay_private.h"
#include "nebula_ap_db.h"
#include "nebula_ap_reqlog.h"
#include "nebula_billing.h"
#include "nebula_gov.h"

#define I64(p, v) apr_psprintf((p), "%" APR_INT64_T_FMT, (apr_int64_t)(v))

static void set_env(relay_ctx_t *ctx)
{
    apr_table_t *env = ctx->r->subprocess_env;
    apr_pool_t *p = ctx->r->pool;

    if (ctx->channel) {
        apr_table_setn(env, "NEBULA_CHANNEL", I64(p, ctx->channel->id));
    }
    apr_table_setn(env, "NEBULA_PROMPT_TOKENS", I64(p, ctx->usage.prompt_tokens));
    apr_table_setn(env, "NEBULA_COMPLETION_TOKENS", I64(p, ctx->usage.completion_tokens));
    apr_table_setn(env, "NEBULA_COST", I64(p, ctx->cost));
    apr_table_setn(env, "NEBULA_END", ctx->end_reason);
}

/* Settle (something reached the client) or release the hold; billing
 * writes the request-log row in the same transaction. 1 when it did. */
static int bill(relay_ctx_t *ctx, const nebula_reqlog_t *log)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_settle) *settle =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_settle);
    APR_OPTIONAL_FN_TYPE(nebula_billing_release) *release =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_release);

    if (ctx->res == NULL || settle == NULL || release == NULL) {
        return 0;
    }
    if (ctx->first_byte) {
        return settle(ctx->r, ctx->res, log, &ctx->cost) == NEBULA_BILLING_OK;
    }
    return release(ctx->r, ctx->res, log) == NEBULA_BILLING_OK;
}

static void log_record(relay_ctx_t *ctx, apr_time_t now, nebula_reqlog_t *log)
{
    memset(log, 0, sizeof(*log));
    log->req = &ctx->req;
    log->channel_id = ctx->channel ? ctx->channel->id : 0;
    log->attempts = ctx->attempts;
    log->status = ctx->status ? ctx->status : ctx->r->status;
    log->latency_ms = apr_time_as_msec(now - ctx->start);
    log->ttfb_ms = ctx->first_byte ? apr_time_as_msec(ctx->first_byte - ctx->start) : 0;
    log->error = ctx->error;
    log->end_reason = ctx->end_reason;
    log->usage = ctx->usage;
}

void relay_log_settle(relay_ctx_t *ctx)
{
    nebula_reqlog_t log;

    if (ctx->billed) {
        return;
    }
    ctx->billed = 1;
    log_record(ctx, apr_time_now(), &log);
    ctx->logged = bill(ctx, &log);
}

void relay_log_request(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    apr_pool_t *p = r->pool;
    apr_time_t now = apr_time_now();
    nebula_reqlog_t log;
    nebula_ap_db_t *db;
    const char *args[2], *err = NULL;

    relay_stats_request();
    relay_log_settle(ctx);
    set_env(ctx);
    log_record(ctx, now, &log);
    relay_metrics_request(ctx, now);
    ap_run_nebula_gov_done(r, &log); /* limits count what was used */
    if (!ctx->logged && relay_logq_put(r->server, &log)) {
        ctx->logged = 1; /* the writer thread will (relay_logq.c) */
    }
    if ((ctx->logged && !ctx->key->touch) || (db = nebula_ap_db_open(p, r->server)) == NULL) {
        return; /* nothing to write: billing wrote the row, the key is cached */
    }
    if (!ctx->logged && nebula_ap_reqlog_insert(db, p, &log, 0, 0, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01060: cannot write the request log row %s: %s",
                      ctx->req.request_id, err);
    }
    if (!ctx->key->touch) {
        /* the key came from the cache: its last use was written when it was
         * read from the database, at most NebulaCacheTTL ago */
        nebula_ap_db_close(db);
        return;
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

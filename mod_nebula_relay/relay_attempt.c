/* relay_attempt.c: the attempts of one request: channel and key choice,
 * the upstream exchange, retry decisions, health reports, auto-disable, and
 * billing's reserve/settle around them. */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "relay_health.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_billing.h"

typedef struct {
    int status;          /* what the client gets if no attempt succeeds */
    const char *body;    /* its JSON error body, or NULL to build one */
    const char *code;
    const char *message;
} last_error_t;

apr_interval_time_t relay_attempt_timeout(relay_ctx_t *ctx, const relay_channel_t *ch)
{
    const relay_dir_conf_t *dc = relay_config_dir(ctx->r);

    if (ch->timeout_ms > 0) {
        return apr_time_from_msec(ch->timeout_ms);
    }
    return dc->timeout == RELAY_UNSET ? RELAY_DEFAULT_TIMEOUT : dc->timeout;
}

static void push_id(apr_array_header_t *a, apr_int64_t id)
{
    APR_ARRAY_PUSH(a, apr_int64_t) = id;
}

/* A definitive error crossed NebulaAutoDisable's threshold: take the key (in a
 * multi-key channel) or the channel out of service until it is re-enabled. */
static void auto_disable(relay_ctx_t *ctx, const relay_channel_t *ch,
                         const relay_chkey_t *key, const char *why)
{
    request_rec *r = ctx->r;
    nebula_ap_db_t *db = nebula_ap_db_open(r->pool, r->server);
    const char *err = NULL, *now = apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                                apr_time_as_msec(apr_time_now()));
    const char *args[3];
    int multi = ch->keys->nelts > 1;

    if (db == NULL) {
        return;
    }
    args[0] = why ? why : "definitive upstream errors";
    args[1] = now;
    args[2] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, multi ? key->id : ch->id);
    if (multi ? nebula_ap_db_exec(db, "relay_key_autodisable",
                                  "UPDATE channel_keys SET status = 'auto_disabled', "
                                  "last_error = %s, disabled_at = %lld WHERE id = %lld",
                                  3, args, NULL, &err)
              : (nebula_ap_db_exec(db, "relay_channel_autodisable",
                                   "UPDATE channels SET status = 'auto_disabled', "
                                   "status_reason = %s, status_changed_at = %lld "
                                   "WHERE id = %lld",
                                   3, args, NULL, &err)
                 || nebula_ap_db_exec(db, "relay_abilities_disable",
                                      "UPDATE abilities SET enabled = 0 "
                                      "WHERE channel_id = %lld",
                                      1, args + 2, NULL, &err))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "NEB01050: auto-disable failed: %s", err);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "NEB01051: auto-disabled %s %" APR_INT64_T_FMT " of channel %"
                      APR_INT64_T_FMT " (%s): %s", multi ? "key" : "channel",
                      multi ? key->id : ch->id, ch->id, ch->name, args[0]);
        relay_gen_bump();
    }
    nebula_ap_db_close(db);
}

static void report_failure(relay_ctx_t *ctx, const relay_channel_t *ch,
                           const relay_chkey_t *key, int definitive, const char *why)
{
    apr_time_t now = apr_time_now();
    int verdict = relay_health_failure(ch->id, key->index, definitive, now);

    relay_health_failure(ch->id, RELAY_HEALTH_CHANNEL, definitive, now);
    if (definitive && verdict == RELAY_HEALTH_DISABLE && ch->auto_disable) {
        auto_disable(ctx, ch, key, why);
    }
}

/* One exchange; OK when the answer was relayed (the request is done). */
static int attempt(relay_ctx_t *ctx, const relay_channel_t *ch, const relay_chkey_t *key,
                   last_error_t *last, int *retry_same_channel)
{
    request_rec *r = ctx->r;
    relay_outbound_t out;
    relay_upstream_t *up = NULL;
    apr_table_t *headers = NULL;
    apr_time_t t0 = apr_time_now();
    int rc, status = 0, definitive = 0;

    ctx->req.upstream_model = relay_channel_map_model(r, ch, ctx->req.model);
    if (relay_proto_outbound(ctx, ch, key, ctx->req.upstream_model, &out) != OK) {
        /* this channel does not speak what the request needs: no fault */
        last->status = HTTP_BAD_REQUEST;
        last->body = NULL;
        last->code = "unsupported_api";
        last->message = apr_psprintf(r->pool, "No channel for the model '%s' can serve this "
                                     "API (%s).", ctx->req.model,
                                     ctx->error ? ctx->error : "no conversion");
        return RELAY_CANNOT_SERVE;
    }
    {
        const relay_dir_conf_t *dc = relay_config_dir(r);
        relay_exchange_t x = {out.url, relay_attempt_timeout(ctx, ch), "POST", ch->proxy,
                              dc->first_byte == RELAY_UNSET ? 0 : dc->first_byte,
                              out.headers, out.body, out.len};
        rc = relay_upstream_exchange(r, &x, &up, &status, &headers);
    }
    if (rc == HTTP_FORBIDDEN) { /* the SSRF check refused it: nothing was sent */
        last->status = HTTP_BAD_GATEWAY;
        last->body = NULL;
        last->code = "upstream_not_allowed";
        last->message = "The channel's upstream address is not allowed by the gateway.";
        ctx->error = last->message; /* the reason (addresses) is in the error log */
        report_failure(ctx, ch, key, 0, ctx->error);
        return HTTP_BAD_GATEWAY;
    }
    if (rc != OK) {
        last->status = rc == HTTP_GATEWAY_TIME_OUT ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY;
        last->body = NULL;
        last->code = rc == HTTP_GATEWAY_TIME_OUT ? "upstream_timeout" : "upstream_unreachable";
        last->message = rc == HTTP_GATEWAY_TIME_OUT ? "The upstream did not answer in time."
                                                    : "The upstream could not be reached.";
        ctx->error = last->message;
        report_failure(ctx, ch, key, 0, last->message);
        return HTTP_BAD_GATEWAY;
    }
    if (status < 300) {
        relay_health_success(ch->id, key->index, apr_time_now() - t0, apr_time_now());
        relay_health_success(ch->id, RELAY_HEALTH_CHANNEL, apr_time_now() - t0,
                             apr_time_now());
        return ctx->req.stream ? relay_stream_respond(ctx, up, headers)
                               : relay_xlate_respond(ctx, up, status, headers);
    }
    last->body = relay_openai_error_body(ctx, up, status, &definitive);
    last->status = status;
    if (status < 400) { /* never followed: a redirect is the channel's fault */
        last->status = HTTP_BAD_GATEWAY;
        last->body = NULL;
        last->code = "upstream_redirect";
        last->message = apr_psprintf(r->pool, "The upstream answered with a redirect (%d), "
                                     "which the gateway does not follow.", status);
        ctx->error = last->message;
        report_failure(ctx, ch, key, 0, ctx->error);
        return HTTP_BAD_GATEWAY;
    }
    report_failure(ctx, ch, key, definitive, ctx->error);
    *retry_same_channel = ch->keys->nelts > 1
                          && (definitive || status == HTTP_TOO_MANY_REQUESTS);
    /* NebulaRetryStatus (default 408, 429, 5xx) heals by retrying elsewhere;
     * so does a definitive error (the channel's credential or account is at
     * fault, not the client's request), on another key or channel */
    return relay_config_retry_status(relay_config_srv(r->server), status) || definitive
                   || *retry_same_channel
               ? HTTP_BAD_GATEWAY
               : status;
}

static int send_last_error(relay_ctx_t *ctx, const last_error_t *last)
{
    request_rec *r = ctx->r;

    ctx->end_reason = "upstream_error";
    ctx->status = last->status;
    if (last->body) {
        r->status = last->status;
        ap_set_content_type(r, "application/json");
        ap_rvputs(r, last->body, "\n", NULL);
        return OK;
    }
    return nebula_ap_error(r, last->status,
                           last->status == HTTP_BAD_REQUEST ? "invalid_request_error"
                                                            : "upstream_error",
                           last->code, NULL, "%s",
                           last->message ? last->message : "The upstream failed.");
}

/* Nothing to try: an unknown model, or every channel failed or is open. */
static int no_channel(relay_ctx_t *ctx)
{
    apr_array_header_t *models = relay_channel_models(ctx->r, ctx->snap, ctx->group);
    int i;

    ctx->end_reason = "no_channel";
    if (ctx->gov_channel) {
        ctx->error = "the channel a policy reroutes to is not available";
        return nebula_ap_error(ctx->r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "no_available_channel", NULL,
                               "The channel '%s' that policy routes this request to cannot "
                               "serve it right now.", ctx->gov_channel);
    }
    for (i = 0; i < models->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(models, i, const char *), ctx->req.model)) {
            ctx->error = "no available channel";
            return nebula_ap_error(ctx->r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                                   "no_available_channel", NULL,
                                   "No channel can serve the model '%s' right now.",
                                   ctx->req.model);
        }
    }
    ctx->error = "unknown model";
    return nebula_ap_error(ctx->r, HTTP_NOT_FOUND, "invalid_request_error",
                           "model_not_found", "model",
                           "The model '%s' does not exist or you do not have access to it.",
                           ctx->req.model);
}

/* The one channel a key or a policy names, unless it was tried already. */
static const relay_channel_t *only(const relay_channel_t *ch, int n,
                                   const apr_array_header_t *tried)
{
    int i;

    for (i = 0; ch && i < tried->nelts; ++i) {
        if (APR_ARRAY_IDX(tried, i, apr_int64_t) == ch->id) {
            return NULL;
        }
    }
    return n == 0 ? ch : NULL;
}

static const relay_channel_t *next_channel(relay_ctx_t *ctx, int n,
                                           const apr_array_header_t *tried)
{
    if (ctx->gov_channel) { /* a policy's reroute names the channel */
        const relay_channel_t *ch = relay_channel_by_name(ctx->r, ctx->snap, ctx->gov_channel);
        return only(ch && !strcmp(ch->status, "enabled") ? ch : NULL, n, tried);
    }
    if (ctx->key->forced_channel) {
        return only(relay_channel_by_id(ctx->snap, ctx->key->forced_channel), n, tried);
    }
    return relay_channel_select(ctx->r, ctx->snap, ctx->group, ctx->req.model, n, tried);
}

static int attempts_loop(relay_ctx_t *ctx)
{
    int retries = ctx->key->forced_channel || ctx->gov_channel
                      ? 0 : relay_config_srv(ctx->r->server)->retries;
    apr_array_header_t *tried = apr_array_make(ctx->r->pool, 4, sizeof(apr_int64_t));
    apr_array_header_t *tried_keys = apr_array_make(ctx->r->pool, 4, sizeof(apr_int64_t));
    last_error_t last = {0};
    const relay_channel_t *ch = NULL;
    int n, rc = OK, same = 0, counted = 0, called = 0;

    for (n = 0; n <= retries; ++n) {
        const relay_chkey_t *key = NULL;

        if (!same || (key = relay_channel_key(ctx->r, ch, tried_keys)) == NULL) {
            if ((ch = next_channel(ctx, n, tried)) == NULL) {
                break;
            }
            key = relay_channel_key(ctx->r, ch, tried_keys);
        }
        if (key == NULL) { /* no usable key: the channel cannot serve */
            push_id(tried, ch->id);
            same = 0;
            continue;
        }
        /* a retry comes from the server's budget; the request adds to it */
        if (!counted) {
            relay_budget_request(relay_config_srv(ctx->r->server));
            counted = 1;
        }
        else if (called > 0 && !relay_budget_retry(relay_config_srv(ctx->r->server))) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->r,
                          "NEB01481: the retry budget is spent: no attempt %d on channel %"
                          APR_INT64_T_FMT, called + 1, ch->id);
            break;
        }
        ctx->channel = ch;
        ctx->chkey = key;
        ctx->attempts++;
        same = 0;
        rc = attempt(ctx, ch, key, &last, &same);
        called += rc != RELAY_CANNOT_SERVE;
        if (rc == RELAY_CANNOT_SERVE) {
            push_id(tried, ch->id);
            same = 0;
            --n; /* not an attempt: the next channel gets a full try */
            continue;
        }
        if (rc == OK || rc != HTTP_BAD_GATEWAY) {
            break; /* relayed, or an error retrying cannot mend */
        }
        push_id(tried_keys, key->id);
        if (!same) {
            push_id(tried, ch->id);
        }
    }
    if (ctx->attempts == 0) {
        return no_channel(ctx);
    }
    return rc == OK ? OK : send_last_error(ctx, &last);
}

/* GET or DELETE one stored Response on channel @a ch; the exchange's
 * status in *@a status (0: no answer). */
static int stored_on(relay_ctx_t *ctx, const relay_channel_t *ch, const relay_chkey_t *key,
                     relay_upstream_t **up, int *status, apr_table_t **headers)
{
    request_rec *r = ctx->r;
    apr_table_t *h = apr_table_make(r->pool, 4);
    const char *url = relay_v1_url(r->pool, ch->base_url,
                                   apr_pstrcat(r->pool, "/v1/responses/",
                                               ap_escape_uri(r->pool, ctx->arg), NULL));
    relay_exchange_t x = {url,       relay_attempt_timeout(ctx, ch), r->method, ch->proxy, 0,
                          h,         NULL,                           0};

    apr_table_setn(h, "Accept", "application/json");
    apr_table_setn(h, "User-Agent", "NebulaGate/" NEBULA_VERSION);
    relay_openai_auth(r->pool, ch, key, h);
    apr_table_overlap(h, ch->headers, APR_OVERLAP_TABLES_SET);
    *status = 0;
    return relay_upstream_exchange(r, &x, up, status, headers);
}

int relay_attempts_stored(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    apr_array_header_t *models, *tried = apr_array_make(r->pool, 4, sizeof(apr_int64_t));
    int i, n;

    if ((ctx->snap = relay_channel_snapshot(r)) == NULL) {
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "database_unavailable", NULL,
                               "The gateway cannot read its channels right now.");
    }
    /* stored responses live on OpenAI channels (the only kind the relay
     * sends Responses to natively): ask those of the key's group in turn;
     * only the one that created the response knows it */
    models = relay_channel_models(r, ctx->snap, ctx->group);
    for (i = 0; i < models->nelts; ++i) {
        const char *model = APR_ARRAY_IDX(models, i, const char *);
        const relay_channel_t *ch;

        if (!relay_auth_model_allowed(ctx->key, model)) {
            continue;
        }
        for (n = 0; (ch = relay_channel_select(r, ctx->snap, ctx->group, model, n, tried));
             ++n) {
            const relay_chkey_t *key;
            relay_upstream_t *up;
            apr_table_t *headers;
            int status;

            push_id(tried, ch->id);
            if (strcmp(ch->kind, "openai") || (key = relay_channel_key(r, ch, NULL)) == NULL
                || stored_on(ctx, ch, key, &up, &status, &headers) != OK) {
                continue;
            }
            if (status == HTTP_NOT_FOUND) {
                relay_upstream_close(up, 1);
                continue;
            }
            ctx->channel = ch;
            ctx->chkey = key;
            ctx->attempts++;
            ctx->req.model = model;
            ctx->native = 1;
            ctx->up_api = RELAY_API_RESPONSES;
            if (status >= 300) {
                int definitive = 0;
                last_error_t last = {status, NULL, NULL, NULL};
                last.body = relay_openai_error_body(ctx, up, status, &definitive);
                return send_last_error(ctx, &last);
            }
            return relay_xlate_respond(ctx, up, status, headers);
        }
    }
    ctx->end_reason = "not_found";
    return nebula_ap_error(r, HTTP_NOT_FOUND, "invalid_request_error", "not_found", "id",
                           "No response with the id '%s' was found.", ctx->arg);
}
int relay_attempt_reserve(relay_ctx_t *ctx)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_reserve) *reserve =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_reserve);
    int rc;

    if (reserve == NULL
        || (rc = reserve(ctx->r, &ctx->req, &ctx->res)) == NEBULA_BILLING_OK) {
        return OK;
    }
    ctx->res = NULL;
    switch (rc) {
    case NEBULA_BILLING_INSUFFICIENT:
        ctx->end_reason = "insufficient_quota";
        ctx->error = apr_table_get(ctx->r->notes, NEBULA_BILLING_NOTE_REFUSAL);
        return nebula_ap_error(ctx->r, HTTP_TOO_MANY_REQUESTS, "insufficient_quota",
                               "insufficient_quota", NULL,
                               "You exceeded your current quota, please check your plan "
                               "and billing details (%s).",
                               ctx->error ? ctx->error : "no balance left");
    case NEBULA_BILLING_UNPRICED:
        ctx->end_reason = "unpriced_model";
        return nebula_ap_error(ctx->r, HTTP_BAD_REQUEST, "invalid_request_error",
                               "model_price_error", "model",
                               "The model '%s' has no price set; ask the operator to "
                               "price it.", ctx->req.model);
    default:
        ctx->end_reason = "billing_unavailable";
        apr_table_setn(ctx->r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(ctx->r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "billing_unavailable", NULL,
                               "Billing is unavailable right now; retry shortly.");
    }
}

int relay_attempts_run(relay_ctx_t *ctx)
{
    int rc;

    if ((ctx->snap = relay_channel_snapshot(ctx->r)) == NULL) {
        ctx->end_reason = "no_channel";
        apr_table_setn(ctx->r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(ctx->r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "database_unavailable", NULL,
                               "The gateway cannot read its channels right now.");
    }
    if ((rc = relay_attempt_reserve(ctx)) != OK) {
        return rc;
    }
    return attempts_loop(ctx);
}

int relay_attempt_extend(relay_ctx_t *ctx)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_extend) *extend =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_extend);
    nebula_usage_t so_far;

    if (ctx->res == NULL || extend == NULL) {
        return 0;
    }
    /* the upstream reports usage only at the end: count what was delivered
     * (about 3 bytes a token: on the generous side, so the hold grows
     * before it is needed) */
    so_far.prompt_tokens = relay_prompt_estimate(ctx);
    so_far.completion_tokens = (apr_int64_t)(ctx->text.len / 3);
    so_far.cached_tokens = 0;
    so_far.cache_write_tokens = 0;
    so_far.total_tokens = so_far.prompt_tokens + so_far.completion_tokens;
    so_far.prompt_excludes_cache = 1;
    so_far.estimated = 1;
    return extend(ctx->r, ctx->res, &so_far) == NEBULA_BILLING_INSUFFICIENT;
}

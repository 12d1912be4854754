/* relay_dispatch.c: one API request from authentication to the request log.
 *
 *   auth -> body (bounded, JSON) -> governance hook -> billing reserve ->
 *   attempts: select channel and key, build the upstream request, send;
 *             a retriable failure before the first byte reaches the client
 *             (connect error, timeout, 429, 5xx) moves on to another channel,
 *             up to NebulaRetries times; never once streaming has begun ->
 *   respond (complete or streamed) -> billing settle -> request log.
 */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include <http_request.h>
#include "relay_private.h"
#include "relay_health.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_billing.h"
#include "nebula_gov.h"
#include "nebula_id.h"

static relay_ctx_t *ctx_create(request_rec *r, const relay_route_t *route)
{
    relay_ctx_t *ctx = apr_pcalloc(r->pool, sizeof(*ctx));

    ctx->r = r;
    ctx->route = route;
    ctx->start = r->request_time;
    ctx->req.request_id = nebula_id_uuid7(r->pool);
    ctx->req.proto = route->proto;
    ctx->req.client_ip = r->useragent_ip;
    ctx->req.route = relay_route_name(route->route);
    ctx->req.received = r->request_time;
    ctx->req.max_output_tokens = -1;
    ctx->req.calls = 1;
    ctx->end_reason = "refused";
    apr_table_setn(r->err_headers_out, "X-Request-Id", ctx->req.request_id);
    apr_table_setn(r->subprocess_env, "NEBULA_REQUEST_ID", ctx->req.request_id);
    return ctx;
}

/* Read the body (bounded) and parse it as a JSON object (a media route's
 * multipart form: relay_media_form()). */
static int read_json(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    const relay_dir_conf_t *dc = relay_config_dir(r);
    const char *ct = apr_table_get(r->headers_in, "Content-Type"), *err = NULL;
    apr_off_t max = ctx->key->max_body > 0 ? ctx->key->max_body
                    : dc->max_body == RELAY_UNSET ? RELAY_DEFAULT_MAX_BODY
                                                  : dc->max_body;
    char *body;
    apr_size_t len;
    int rc, form = relay_media_form_route(ctx->route), deep = 0;
    int depth = relay_config_srv(r->server)->json_max_depth;

    if (ct == NULL || (form ? ap_cstr_casecmpn(ct, "multipart/form-data", 19)
                            : ap_cstr_casecmpn(ct, "application/json", 16))) {
        return nebula_ap_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid_request_error",
                               "unsupported_content_type", NULL,
                               "Send the request body as %s.",
                               form ? "multipart/form-data" : "application/json");
    }
    if ((rc = relay_read_body(r, max, &body, &len)) != OK) {
        if (rc == AP_FILTER_ERROR) {
            return rc; /* httpd's body filter refused the framing and answered */
        }
        return rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                   ? nebula_ap_error(r, rc, "invalid_request_error", "request_too_large",
                                     NULL, "The request body is larger than %" APR_OFF_T_FMT
                                     " bytes.", max)
                   : nebula_ap_error(r, rc, "invalid_request_error", NULL, NULL,
                                     "Could not read the request body.");
    }
    ctx->raw_body = body;
    ctx->raw_len = len;
    ctx->req.body_bytes = (apr_off_t)len;
    if (form) {
        return relay_media_form(ctx);
    }
    /* a key twice ({"model":"a","model":"b"}) is refused: the body may go
     * upstream as the client's own bytes, and a parser there that keeps the
     * first value would serve another model than the policies, the route and
     * the bill saw (they read the last) */
    ctx->body = nebula_json_parse_limited(r->pool, body, len,
                                          NEBULA_JSON_CONTAINER_ONLY
                                              | NEBULA_JSON_REJECT_DUPLICATES,
                                          depth, &deep, &err);
    if (deep) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "json_too_deep",
                               NULL, "The request body nests arrays and objects deeper "
                               "than the limit of %d levels.", depth);
    }
    if (ctx->body == NULL && err != NULL && ap_strstr_c(err, "duplicate object key")) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "duplicate_key",
                               NULL, "The request body repeats an object key (%s): send "
                               "each key once.", err);
    }
    if (ctx->body == NULL || !json_is_object(ctx->body)) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "invalid_json",
                               NULL, "The request body is not a JSON object%s%s.",
                               err ? ": " : "", err ? err : "");
    }
    return OK;
}

/* model, stream and output limit in the client's protocol; the key's
 * model allow-list. */
static int read_params(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    int rc;

    if ((rc = relay_proto_params(ctx)) != OK) {
        return rc;
    }
    apr_table_setn(r->subprocess_env, "NEBULA_MODEL", ctx->req.model);
    /* governance and billing read the estimate from the request itself;
     * without them it is counted when needed, if ever */
    if (apr_optional_hook_get("nebula_gov_check") != NULL
        || APR_RETRIEVE_OPTIONAL_FN(nebula_billing_reserve) != NULL) {
        relay_prompt_estimate(ctx);
    }
    if (!relay_auth_model_allowed(ctx->key, ctx->req.model)) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error", "model_not_allowed",
                               "model", "This API key may not use the model '%s'.",
                               ctx->req.model);
    }
    return OK;
}

/* The client's Idempotency-Key: billing replays a stored outcome (or
 * refuses a conflicting reuse) and answers; OK to go on. */
static int idempotency(relay_ctx_t *ctx)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_idempotency) *idem =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_idempotency);
    const char *key = apr_table_get(ctx->r->headers_in, "Idempotency-Key");
    int rc;

    if (key == NULL || idem == NULL) {
        return OK;
    }
    if ((rc = idem(ctx->r, &ctx->req, key, ctx->raw_body, ctx->raw_len)) != OK) {
        ctx->end_reason = ctx->r->status < 300 ? "replayed" : "refused";
    }
    return rc;
}

/* Governance: every hook may block, downgrade the model, reroute, redact
 * the request and scan the completion. */
int relay_govern(relay_ctx_t *ctx)
{
    nebula_decision_t d = {0};

    if (apr_optional_hook_get("nebula_gov_check") == NULL) {
        return OK; /* no governance module: nothing to flatten or ask */
    }
    ctx->req.prompt_text = relay_prompt_text(ctx->r->pool, ctx->route, ctx->body);
    ap_run_nebula_gov_check(ctx->r, &ctx->req, &d);
    if (d.action == NEBULA_DECIDE_BLOCK) {
        ctx->end_reason = "blocked";
        ctx->error = d.policy;
        return nebula_ap_error(ctx->r, d.http_status ? d.http_status : HTTP_FORBIDDEN,
                               d.error_type ? d.error_type : "policy_violation",
                               d.http_status == HTTP_TOO_MANY_REQUESTS ? "rate_limit_exceeded"
                                                                       : "blocked_by_policy",
                               NULL, "%s",
                               d.message ? d.message : "The request was blocked by policy.");
    }
    if (d.action == NEBULA_DECIDE_DOWNGRADE && d.model) {
        ctx->req.model = d.model;
        if (ctx->body && ctx->route->api != RELAY_API_GEMINI) {
            /* a Realtime session has no body; Gemini's model is in the path */
            json_object_set_new(ctx->body, "model", json_string(d.model));
        }
        if (ctx->chat && ctx->chat != ctx->body) {
            json_object_set_new(ctx->chat, "model", json_string(d.model));
        }
    }
    else if (d.action == NEBULA_DECIDE_REROUTE) {
        if (d.group) {
            ctx->group = d.group;
        }
        ctx->gov_channel = d.channel;
    }
    if (d.redact && d.redact->fn) {
        relay_gov_redact(ctx, d.redact);
    }
    if (d.output && d.output->fn) {
        ctx->output_rw = d.output;
    }
    return OK;
}

int relay_dispatch(request_rec *r, const relay_route_t *route, const char *arg)
{
    relay_ctx_t *ctx = ctx_create(r, route);
    const char *allow = route->method ? route->method : "GET, DELETE";
    int rc;

    ctx->arg = arg;
    if (route->api == RELAY_API_ANTHROPIC || route->api == RELAY_API_GEMINI) {
        /* errors in the client's protocol (nebula_ap_error reads it) */
        apr_table_setn(r->notes, RELAY_NOTE_API,
                       route->api == RELAY_API_ANTHROPIC ? "anthropic" : "gemini");
    }
    if (route->method ? strcmp(r->method, route->method)
                      : strcmp(r->method, "GET") && strcmp(r->method, "DELETE")) {
        apr_table_setn(r->err_headers_out, "Allow", allow);
        return nebula_ap_error(r, HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                               "method_not_allowed", NULL, "Use %s for %s.", allow, r->uri);
    }
    if (route->route == RELAY_ROUTE_REALTIME) {
        relay_realtime_credential(r);
    }
    if ((rc = relay_auth_check(r, &ctx->key)) != OK) {
        return rc;
    }
    r->user = apr_pstrdup(r->pool, ctx->key->username);
    ctx->group = ctx->key->group;
    ctx->req.key_id = ctx->key->id;
    ctx->req.user_id = ctx->key->user_id;
    ctx->req.group = ctx->group;
    apr_table_setn(r->subprocess_env, "NEBULA_KEY_ID",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, ctx->key->id));
    apr_table_setn(r->subprocess_env, "NEBULA_USER", r->user);
    if (route->route == RELAY_ROUTE_REALTIME) {
        return relay_realtime_serve(ctx);
    }
    if (route->route == RELAY_ROUTE_RESPONSE) {
        rc = relay_attempts_stored(ctx);
    }
    else if (route->upstream_path == NULL && route->proto == NEBULA_PROTO_UNKNOWN) {
        return relay_info_route(ctx, arg);
    }
    else if (route->upstream_path == NULL) { /* count_tokens, countTokens */
        if ((rc = read_json(ctx)) == OK && (rc = read_params(ctx)) == OK) {
            rc = relay_proto_count(ctx);
        }
    }
    else if ((rc = read_json(ctx)) == OK && (rc = idempotency(ctx)) == OK
             && (rc = read_params(ctx)) == OK && (rc = relay_media_params(ctx)) == OK
             && (rc = relay_govern(ctx)) == OK) {
        rc = relay_attempts_run(ctx);
    }
    if (ctx->status == 0) {
        ctx->status = r->status;
    }
    relay_log_request(ctx);
    return rc;
}

/* relay_info.c: routes the gateway answers from its own data: the models a
 * key may use (GET /v1/models, /v1/models/{id}) and the legacy billing
 * routes chat front-ends call to show a key's balance. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "nebula_ap.h"

/* new-api's convention until billing says otherwise: 500000 units = 1 USD */
#define QUOTA_PER_USD 500000.0

int relay_send_json(request_rec *r, json_t *j)
{
    const char *body = nebula_json_dumps(r->pool, nebula_json_own(r->pool, j), 0);

    ap_set_content_type(r, "application/json");
    ap_rvputs(r, body, "\n", NULL);
    return OK;
}

static json_t *model_object(const char *id)
{
    return json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model", "created", 0,
                     "owned_by", "nebulagate");
}

/* The models of the key's group that its allow-list lets through. */
static apr_array_header_t *key_models(relay_ctx_t *ctx)
{
    apr_array_header_t *all = relay_channel_models(ctx->r, ctx->snap, ctx->group);
    apr_array_header_t *out = apr_array_make(ctx->r->pool, all->nelts, sizeof(char *));
    int i;

    for (i = 0; i < all->nelts; ++i) {
        const char *m = APR_ARRAY_IDX(all, i, const char *);
        if (relay_auth_model_allowed(ctx->key, m)) {
            APR_ARRAY_PUSH(out, const char *) = m;
        }
    }
    return out;
}

static int models(relay_ctx_t *ctx, const char *id)
{
    apr_array_header_t *ms = key_models(ctx);
    json_t *data = json_array();
    int i;

    for (i = 0; i < ms->nelts; ++i) {
        const char *m = APR_ARRAY_IDX(ms, i, const char *);
        if (id && !strcmp(id, m)) {
            json_decref(data);
            return relay_send_json(ctx->r, model_object(m));
        }
        json_array_append_new(data, model_object(m));
    }
    if (id) {
        json_decref(data);
        return nebula_ap_error(ctx->r, HTTP_NOT_FOUND, "invalid_request_error",
                               "model_not_found", "model",
                               "The model '%s' does not exist or you do not have access "
                               "to it.", id);
    }
    return relay_send_json(ctx->r, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* GET /v1/models as Anthropic's SDK asks for it (anthropic-version set). */
static int anthropic_models(relay_ctx_t *ctx)
{
    apr_array_header_t *ms = key_models(ctx);
    json_t *data = json_array();
    int i;

    for (i = 0; i < ms->nelts; ++i) {
        const char *m = APR_ARRAY_IDX(ms, i, const char *);
        json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id",
                                              m, "display_name", m, "created_at",
                                              "1970-01-01T00:00:00Z"));
    }
    return relay_send_json(
        ctx->r, json_pack("{s:o, s:b, s:s?, s:s?}", "data", data, "has_more", 0, "first_id",
                          ms->nelts ? APR_ARRAY_IDX(ms, 0, const char *) : NULL, "last_id",
                          ms->nelts ? APR_ARRAY_IDX(ms, ms->nelts - 1, const char *) : NULL));
}

/* GET /v1beta/models: Gemini's list. */
static int gemini_models(relay_ctx_t *ctx)
{
    apr_array_header_t *ms = key_models(ctx);
    json_t *models = json_array();
    int i;

    for (i = 0; i < ms->nelts; ++i) {
        const char *m = APR_ARRAY_IDX(ms, i, const char *);
        json_array_append_new(
            models, json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "name",
                              apr_pstrcat(ctx->r->pool, "models/", m, NULL), "version", "001",
                              "displayName", m, "supportedGenerationMethods",
                              "generateContent", "streamGenerateContent", "countTokens"));
    }
    return relay_send_json(ctx->r, json_pack("{s:o}", "models", models));
}

/* GET /dashboard/billing/subscription: the key's limit in USD. */
static int subscription(relay_ctx_t *ctx)
{
    const relay_key_t *k = ctx->key;
    double limit = k->unlimited ? 100000000.0
                                : (double)(k->remain_quota + k->used_quota) / QUOTA_PER_USD;

    return relay_send_json(ctx->r,
                     json_pack("{s:s, s:b, s:f, s:f, s:f, s:I}", "object",
                               "billing_subscription", "has_payment_method", 1,
                               "soft_limit_usd", limit, "hard_limit_usd", limit,
                               "system_hard_limit_usd", limit, "access_until",
                               (json_int_t)(k->expires_at / 1000)));
}

/* GET /dashboard/billing/usage: what the key used, in US cents. */
static int usage(relay_ctx_t *ctx)
{
    return relay_send_json(ctx->r, json_pack("{s:s, s:f}", "object", "list", "total_usage",
                                       (double)ctx->key->used_quota / QUOTA_PER_USD * 100.0));
}

int relay_info_route(relay_ctx_t *ctx, const char *arg)
{
    switch (ctx->route->route) {
    case RELAY_ROUTE_BILLING_SUB:
        return subscription(ctx);
    case RELAY_ROUTE_BILLING_USAGE:
        return usage(ctx);
    default:
        break;
    }
    if ((ctx->snap = relay_channel_snapshot(ctx->r)) == NULL) {
        return nebula_ap_error(ctx->r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "database_unavailable", NULL,
                               "The gateway cannot read its channels right now.");
    }
    if (ctx->route->route == RELAY_ROUTE_GEMINI_MODELS) {
        return gemini_models(ctx);
    }
    if (ctx->route->route == RELAY_ROUTE_MODELS
        && apr_table_get(ctx->r->headers_in, "anthropic-version")) {
        return anthropic_models(ctx);
    }
    return models(ctx, ctx->route->route == RELAY_ROUTE_MODEL ? arg : NULL);
}

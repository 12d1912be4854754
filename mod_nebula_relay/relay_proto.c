/* relay_proto.c: the client's protocol and the channel's, and the request
 * that goes upstream.
 *
 * Every client request is read in its own protocol (OpenAI, Anthropic
 * Messages, Gemini, Responses) and, where a conversion may be needed, also
 * as an OpenAI chat request: the pivot (nebula_conv.h). An attempt on a
 * channel then either passes the client's body through (same protocol:
 * only the model is mapped, so Anthropic thinking signatures and every
 * field the gateway does not know survive) or converts the pivot to what
 * the channel speaks. Combinations no converter covers (completions on an
 * Anthropic channel, say) make the channel skip the request.
 */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "relay_model.h"
#include "nebula_ap.h"
#include "nebula_conv_anthropic.h"
#include "nebula_conv_gemini.h"
#include "nebula_conv_responses.h"

#define ANTHROPIC_VERSION       "2023-06-01"
/* Anthropic requires max_tokens; a chat request may leave it out */
#define ANTHROPIC_DEFAULT_MAX   4096

relay_api_e relay_channel_api(const relay_channel_t *ch)
{
    if (!strcmp(ch->kind, "anthropic")) {
        return RELAY_API_ANTHROPIC;
    }
    if (!strcmp(ch->kind, "gemini")) {
        return RELAY_API_GEMINI;
    }
    return RELAY_API_OPENAI;
}

/* ---- reading the client's request -------------------------------------- */

static int bad_request(relay_ctx_t *ctx, const char *param, const char *msg)
{
    return nebula_ap_error(ctx->r, HTTP_BAD_REQUEST, "invalid_request_error",
                           param ? "invalid_value" : "invalid_request", param, "%s", msg);
}

/* The pivot for a request in a non-chat protocol; 400 when it cannot be
 * expressed as chat. */
static int make_pivot(relay_ctx_t *ctx)
{
    apr_pool_t *p = ctx->r->pool;
    const char *err = NULL;

    switch (ctx->route->route) {
    case RELAY_ROUTE_MESSAGES:
        ctx->chat = nebula_conv_anthropic_req_to_chat(p, ctx->body, &err);
        break;
    case RELAY_ROUTE_GEMINI_GENERATE:
    case RELAY_ROUTE_GEMINI_STREAM:
        ctx->chat = nebula_conv_gemini_req_to_chat(p, ctx->body, ctx->req.model,
                                                   ctx->req.stream, &err);
        break;
    case RELAY_ROUTE_RESPONSES:
        /* some Responses requests (stored state, hosted tools) have no chat
         * form: they can still go natively to an OpenAI channel */
        ctx->chat = nebula_conv_responses_req_to_chat(p, ctx->body, &err);
        ctx->pivot_error = err;
        return OK;
    case RELAY_ROUTE_GEMINI_EMBED:
        /* its pivot is an OpenAI embeddings request */
        ctx->chat = nebula_conv_gemini_embed_req_to_openai(p, ctx->body, ctx->req.model,
                                                           &err);
        break;
    case RELAY_ROUTE_GEMINI_COUNT:
        return OK;
    default:
        ctx->chat = ctx->body;
        return OK;
    }
    if (ctx->chat == NULL) {
        return bad_request(ctx, NULL, err ? err : "The request cannot be read.");
    }
    return OK;
}

int relay_proto_params(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    json_t *b = ctx->body, *model, *stream;
    relay_route_e route = ctx->route->route;
    int from_body;

    if (ctx->route->api == RELAY_API_GEMINI) {
        /* the model is in the path: models/{model}:method (decoded) */
        if (relay_model_check(r, ctx->arg, ctx->arg ? strlen(ctx->arg) : 0, NULL) != OK) {
            return DONE;
        }
        ctx->req.model = ctx->arg;
        ctx->req.stream = route == RELAY_ROUTE_GEMINI_STREAM;
        ctx->sse = ctx->req.stream && r->args && ap_strstr_c(r->args, "alt=sse") != NULL;
        ctx->req.max_output_tokens =
            nebula_json_geti(b, -1, "generationConfig", "maxOutputTokens", NULL);
        return make_pivot(ctx);
    }
    model = json_object_get(b, "model");
    from_body = model != NULL;
    if (model == NULL && ctx->route->default_model) {
        model = json_string(ctx->route->default_model);
        json_object_set_new(b, "model", model);
    }
    if (!json_is_string(model) || json_string_length(model) == 0) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                               model ? "invalid_type" : "missing_required_parameter",
                               "model", "You must provide a model parameter (a string).");
    }
    /* refused before anything routes, logs or forwards it */
    if (relay_model_check(r, json_string_value(model), json_string_length(model), "model")
        != OK) {
        return DONE;
    }
    ctx->req.model = apr_pstrdup(r->pool, json_string_value(model));
    ctx->client_model = from_body ? ctx->req.model : NULL; /* a default is not */
    stream = json_object_get(b, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "invalid_type",
                               "stream", "'stream' must be a boolean.");
    }
    ctx->req.stream = ctx->route->streams && json_is_true(stream);
    switch (route) {
    case RELAY_ROUTE_MESSAGES:
    case RELAY_ROUTE_MESSAGES_COUNT:
        ctx->req.max_output_tokens = nebula_json_geti(b, -1, "max_tokens", NULL);
        break;
    case RELAY_ROUTE_RESPONSES:
        ctx->req.max_output_tokens = nebula_json_geti(b, -1, "max_output_tokens", NULL);
        break;
    default:
        ctx->client_usage = ctx->req.stream
                            && nebula_json_getb(b, 0, "stream_options", "include_usage",
                                                NULL);
        ctx->req.max_output_tokens =
            nebula_json_geti(b, -1, "max_completion_tokens", NULL) >= 0
                ? nebula_json_geti(b, -1, "max_completion_tokens", NULL)
                : nebula_json_geti(b, -1, "max_tokens", NULL);
        break;
    }
    if (route == RELAY_ROUTE_MESSAGES_COUNT) {
        json_t *copy = json_deep_copy(b);
        nebula_json_own(r->pool, copy);
        /* count_tokens takes a Messages body without max_tokens */
        if (!json_object_get(copy, "max_tokens")) {
            json_object_set_new(copy, "max_tokens", json_integer(1));
        }
        ctx->body = copy;
        ctx->route = relay_route_get(RELAY_ROUTE_MESSAGES);
        if (make_pivot(ctx) != OK) {
            return DONE;
        }
        ctx->route = relay_route_get(RELAY_ROUTE_MESSAGES_COUNT);
        return OK;
    }
    return make_pivot(ctx);
}

/* ---- answers the gateway gives itself ---------------------------------- */

int relay_proto_count(relay_ctx_t *ctx)
{
    apr_int64_t n;

    if (ctx->route->route == RELAY_ROUTE_GEMINI_COUNT) {
        /* countTokens: {"contents": [...]} or {"generateContentRequest": {...}} */
        const json_t *req = json_object_get(ctx->body, "generateContentRequest");
        const char *err = NULL;
        ctx->chat = nebula_conv_gemini_req_to_chat(ctx->r->pool,
                                                   req ? req : ctx->body, ctx->req.model,
                                                   0, &err);
        if (ctx->chat == NULL) {
            return bad_request(ctx, NULL, err ? err : "The request cannot be read.");
        }
        n = relay_tokens_prompt(ctx);
        ctx->end_reason = "counted";
        return relay_send_json(ctx->r, json_pack("{s:I}", "totalTokens", (json_int_t)n));
    }
    n = relay_tokens_prompt(ctx);
    ctx->end_reason = "counted";
    return relay_send_json(ctx->r, json_pack("{s:I}", "input_tokens", (json_int_t)n));
}

/* ---- the upstream request of one attempt -------------------------------- */

/* Azure's api-version: the channel's (?api-version= on its base URL), else
 * NebulaAzureAPIVersion. */
static const char *azure_version(relay_ctx_t *ctx, const relay_channel_t *ch,
                                 const char **base)
{
    const char *q = ap_strchr_c(ch->base_url, '?'), *v;

    *base = ch->base_url;
    if (q) {
        *base = apr_pstrndup(ctx->r->pool, ch->base_url, (apr_size_t)(q - ch->base_url));
        if ((v = ap_strstr_c(q, "api-version=")) != NULL) {
            const char *e = ap_strchr_c(v, '&');
            return e ? apr_pstrndup(ctx->r->pool, v + 12, (apr_size_t)(e - v - 12)) : v + 12;
        }
    }
    return relay_config_srv(ctx->r->server)->azure_version;
}

const char *relay_v1_url(apr_pool_t *p, const char *base, const char *path)
{
    apr_size_t n = strlen(base);

    /* a base URL that already ends in /v1 */
    return apr_pstrcat(p, base, n >= 3 && !strcmp(base + n - 3, "/v1") ? path + 3 : path,
                       NULL);
}

void relay_openai_auth(apr_pool_t *p, const relay_channel_t *ch, const relay_chkey_t *key,
                       apr_table_t *h)
{
    if (!strcmp(ch->kind, "azure")) {
        apr_table_setn(h, "api-key", key->secret);
    }
    else {
        apr_table_setn(h, "Authorization", apr_pstrcat(p, "Bearer ", key->secret, NULL));
    }
}

static const char *openai_url(relay_ctx_t *ctx, const relay_channel_t *ch, const char *path,
                              const char *model)
{
    if (!strcmp(ch->kind, "azure")) {
        const char *base, *version = azure_version(ctx, ch, &base);
        /* {base}/openai/deployments/{deployment}/chat/completions?api-version= */
        return apr_psprintf(ctx->r->pool, "%s/openai/deployments/%s%s?api-version=%s", base,
                            ap_escape_uri(ctx->r->pool, model), path + 3,
                            ap_escape_uri(ctx->r->pool, version));
    }
    return relay_v1_url(ctx->r->pool, ch->base_url, path);
}

static apr_table_t *base_headers(relay_ctx_t *ctx)
{
    apr_table_t *h = apr_table_make(ctx->r->pool, 8);

    apr_table_setn(h, "Content-Type", "application/json");
    apr_table_setn(h, "Accept", ctx->req.stream ? "text/event-stream" : "application/json");
    apr_table_setn(h, "User-Agent", "NebulaGate/" NEBULA_VERSION);
    apr_table_setn(h, "X-Request-Id", ctx->req.request_id);
    return h;
}

static void set_body(relay_ctx_t *ctx, relay_outbound_t *out, json_t *body)
{
    out->body = nebula_json_dumps(ctx->r->pool, body, 0);
    out->len = strlen(out->body);
}

/* A native request whose model stays what the client named goes up as the
 * client's own bytes: nothing is re-serialised (an Anthropic thinking
 * block's signature, number formats, fields the gateway does not know). */
static int raw_body(relay_ctx_t *ctx, relay_outbound_t *out, const char *model)
{
    if (ctx->raw_body == NULL || ctx->client_model == NULL || ctx->redacted
        || strcmp(model, ctx->client_model) || strcmp(ctx->req.model, ctx->client_model)) {
        return 0;
    }
    out->body = ctx->raw_body;
    out->len = ctx->raw_len;
    return 1;
}

/* A native chat or completions stream: the client's bytes, which must ask
 * for usage: as they are when they do already, with
 * "stream_options":{"include_usage":true} spliced in after the opening brace
 * when they have no stream_options at all (the body names its model, so the
 * object is not empty). 0 when the body must be rebuilt. */
static int raw_stream_body(relay_ctx_t *ctx, relay_outbound_t *out, const char *model)
{
    static const char field[] = "\"stream_options\":{\"include_usage\":true},";
    json_t *so = json_object_get(ctx->body, "stream_options");
    const char *p, *end;
    char *buf;

    if ((so != NULL && !json_is_true(json_object_get(so, "include_usage")))
        || !raw_body(ctx, out, model)) {
        return 0;
    }
    if (so != NULL) {
        return 1;
    }
    for (p = out->body, end = out->body + out->len; p < end && apr_isspace(*p); ++p) {
    }
    if (p == end || *p != '{') {
        return 0;
    }
    ++p;
    buf = apr_palloc(ctx->r->pool, 1 + sizeof(field) - 1 + (apr_size_t)(end - p) + 1);
    buf[0] = '{';
    memcpy(buf + 1, field, sizeof(field) - 1);
    memcpy(buf + sizeof(field), p, (apr_size_t)(end - p));
    out->len = sizeof(field) + (apr_size_t)(end - p);
    buf[out->len] = '\0';
    out->body = buf;
    return 1;
}

/* A copy of @a j (owned by the request) with "model" set to @a model. */
static json_t *with_model(relay_ctx_t *ctx, const json_t *j, const char *model)
{
    json_t *c = nebula_json_own(ctx->r->pool, json_deep_copy(j));

    if (model) {
        json_object_set_new(c, "model", json_string(model));
    }
    return c;
}

static void stream_usage(json_t *chat)
{
    json_t *so = json_object_get(chat, "stream_options");

    if (!json_is_object(so)) {
        json_object_set_new(chat, "stream_options", so = json_object());
    }
    json_object_set_new(so, "include_usage", json_true());
}

/* To an OpenAI-compatible channel. */
static int to_openai(relay_ctx_t *ctx, const relay_channel_t *ch, const relay_chkey_t *key,
                     const char *model, relay_outbound_t *out)
{
    relay_route_e route = ctx->route->route;
    const char *path = "/v1/chat/completions";
    const json_t *src;
    int resend, usage;

    if (ctx->route->api == RELAY_API_OPENAI) {
        path = ctx->route->upstream_path;
        src = ctx->body;
        ctx->native = 1;
    }
    else if (route == RELAY_ROUTE_RESPONSES && !strcmp(ch->kind, "openai")
             && (ctx->output_rw == NULL || ctx->chat == NULL)) {
        /* Azure serves Responses outside its deployment paths: converted;
         * so is a request with an output scan when it has a chat form (a
         * stopped answer then ends with the converter's
         * response.incomplete) */
        path = "/v1/responses";
        src = ctx->body;
        ctx->native = 1;
    }
    else if (route == RELAY_ROUTE_GEMINI_EMBED) {
        path = "/v1/embeddings";
        src = ctx->chat;
    }
    else if (ctx->chat != NULL) {
        src = ctx->chat;
    }
    else {
        ctx->error = ctx->pivot_error;
        return RELAY_CANNOT_SERVE;
    }
    ctx->up_api = !strcmp(path, "/v1/responses") ? RELAY_API_RESPONSES : RELAY_API_OPENAI;
    /* OpenAI chat and completions streams always ask for usage (billing
     * needs it whether the client wants it); a native request goes as the
     * client's bytes when it can (that one field spliced in), and is then
     * never copied nor re-serialised */
    resend = ctx->req.stream && strcmp(path, "/v1/responses");
    usage = ctx->req.stream
            && (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions"));
    if (!ctx->native
        || !(resend ? usage && raw_stream_body(ctx, out, model) : raw_body(ctx, out, model))) {
        json_t *body = with_model(ctx, src, model);
        if (usage) {
            stream_usage(body);
        }
        set_body(ctx, out, body);
    }
    out->url = openai_url(ctx, ch, path, model);
    out->headers = base_headers(ctx);
    relay_media_outbound(ctx, model, out); /* multipart bodies as received */
    relay_openai_auth(ctx->r->pool, ch, key, out->headers);
    return OK;
}

/* To an Anthropic channel. */
static int to_anthropic(relay_ctx_t *ctx, const relay_channel_t *ch,
                        const relay_chkey_t *key, const char *model, relay_outbound_t *out)
{
    request_rec *r = ctx->r;
    const char *version = apr_table_get(r->headers_in, "anthropic-version");
    const char *beta = apr_table_get(r->headers_in, "anthropic-beta");
    const char *err = NULL;
    json_t *body;

    if (ctx->route->route == RELAY_ROUTE_MESSAGES) {
        body = with_model(ctx, ctx->body, model);
        ctx->native = 1;
    }
    else if (ctx->chat != NULL && ctx->route->route != RELAY_ROUTE_GEMINI_EMBED
             && (ctx->route->route == RELAY_ROUTE_CHAT
                 || ctx->route->api != RELAY_API_OPENAI)) {
        body = nebula_conv_chat_req_to_anthropic(r->pool, with_model(ctx, ctx->chat, model),
                                                 ANTHROPIC_DEFAULT_MAX, &err);
        if (body == NULL) {
            ctx->error = err;
            return RELAY_CANNOT_SERVE;
        }
    }
    else {
        ctx->error = ctx->pivot_error ? ctx->pivot_error
                                      : "an Anthropic channel serves only messages and chat";
        return RELAY_CANNOT_SERVE;
    }
    ctx->up_api = RELAY_API_ANTHROPIC;
    if (!ctx->native || !raw_body(ctx, out, model)) {
        set_body(ctx, out, body);
    }
    out->url = relay_v1_url(r->pool, ch->base_url, "/v1/messages");
    out->headers = base_headers(ctx);
    apr_table_setn(out->headers, "x-api-key", key->secret);
    apr_table_setn(out->headers, "anthropic-version",
                   ctx->native && version ? version : ANTHROPIC_VERSION);
    if (ctx->native && beta) {
        apr_table_setn(out->headers, "anthropic-beta", beta);
    }
    return OK;
}

/* To a Gemini channel. */
static int to_gemini(relay_ctx_t *ctx, const relay_channel_t *ch, const relay_chkey_t *key,
                     const char *model, relay_outbound_t *out)
{
    request_rec *r = ctx->r;
    relay_route_e route = ctx->route->route;
    const char *method, *err = NULL, *base = ch->base_url;
    json_t *body;

    if (route == RELAY_ROUTE_GEMINI_GENERATE || route == RELAY_ROUTE_GEMINI_STREAM
        || route == RELAY_ROUTE_GEMINI_EMBED) {
        body = nebula_json_own(r->pool, json_deep_copy(ctx->body));
        ctx->native = 1;
    }
    else if (ctx->chat != NULL && (route == RELAY_ROUTE_CHAT
                                   || ctx->route->api != RELAY_API_OPENAI)) {
        body = nebula_conv_chat_req_to_gemini(r->pool, ctx->chat, &err);
        if (body == NULL) {
            ctx->error = err;
            return RELAY_CANNOT_SERVE;
        }
    }
    else {
        ctx->error = ctx->pivot_error ? ctx->pivot_error
                                      : "a Gemini channel serves only generateContent, "
                                        "embedContent and chat";
        return RELAY_CANNOT_SERVE;
    }
    method = route == RELAY_ROUTE_GEMINI_EMBED ? ":embedContent"
             : ctx->req.stream                 ? ":streamGenerateContent?alt=sse"
                                               : ":generateContent";
    ctx->up_api = RELAY_API_GEMINI;
    if (ctx->native && ctx->raw_body && !ctx->redacted) { /* the model is in the URL */
        out->body = ctx->raw_body;
        out->len = ctx->raw_len;
    }
    else {
        set_body(ctx, out, body);
    }
    if (strlen(base) >= 7 && !strcmp(base + strlen(base) - 7, "/v1beta")) {
        out->url = apr_pstrcat(r->pool, base, "/models/", ap_escape_uri(r->pool, model),
                               method, NULL);
    }
    else {
        out->url = apr_pstrcat(r->pool, base, "/v1beta/models/",
                               ap_escape_uri(r->pool, model), method, NULL);
    }
    out->headers = base_headers(ctx);
    apr_table_setn(out->headers, "x-goog-api-key", key->secret);
    return OK;
}

int relay_proto_outbound(relay_ctx_t *ctx, const relay_channel_t *ch,
                         const relay_chkey_t *key, const char *model, relay_outbound_t *out)
{
    int rc;

    ctx->native = 0;
    switch (relay_channel_api(ch)) {
    case RELAY_API_ANTHROPIC:
        rc = to_anthropic(ctx, ch, key, model, out);
        break;
    case RELAY_API_GEMINI:
        rc = to_gemini(ctx, ch, key, model, out);
        break;
    default:
        rc = to_openai(ctx, ch, key, model, out);
        break;
    }
    if (rc == OK) {
        /* the channel's own headers win */
        apr_table_overlap(out->headers, ch->headers, APR_OVERLAP_TABLES_SET);
    }
    return rc;
}

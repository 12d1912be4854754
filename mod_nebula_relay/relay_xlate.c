/* relay_xlate.c: complete answers and errors in the client's protocol.
 *
 * A native attempt (client and channel speak the same protocol) passes the
 * upstream's bytes through untouched; the usage is read in that protocol. A
 * converted attempt goes upstream -> chat -> client (nebula_conv.h). */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "nebula_conv_anthropic.h"
#include "nebula_conv_gemini.h"
#include "nebula_conv_responses.h"

#define UPSTREAM_BODY_MAX (64 * 1024 * 1024)

const char *relay_xlate_error(relay_ctx_t *ctx, int status, const char *message,
                              const char *type, const char *code)
{
    apr_pool_t *p = ctx->r->pool;

    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        return nebula_json_dumps(p, nebula_conv_anthropic_error(p, status, message), 0);
    case RELAY_API_GEMINI:
        return nebula_json_dumps(p, nebula_conv_gemini_error(p, status, message), 0);
    default:
        return nebula_json_error_body(p, message, type, NULL, code);
    }
}

/* The usage of a complete answer @a j in the upstream's protocol. */
static int read_usage(relay_ctx_t *ctx, const json_t *j)
{
    nebula_usage_t u;
    int ok;

    switch (ctx->up_api) {
    case RELAY_API_ANTHROPIC:
        ok = nebula_conv_anthropic_usage(json_object_get(j, "usage"), &u);
        break;
    case RELAY_API_GEMINI:
        ok = nebula_conv_gemini_usage(json_object_get(j, "usageMetadata"), &u);
        break;
    case RELAY_API_RESPONSES:
        ok = nebula_conv_responses_usage(json_object_get(j, "usage"), &u);
        break;
    default:
        ok = nebula_conv_chat_usage(json_object_get(j, "usage"), &u);
        break;
    }
    if (ok) {
        ctx->usage = u;
    }
    return ok;
}

/* The answer as a chat.completion (for text counting and conversion). */
static json_t *to_chat(relay_ctx_t *ctx, json_t *j)
{
    switch (ctx->up_api) {
    case RELAY_API_ANTHROPIC:
        return nebula_conv_anthropic_resp_to_chat(ctx->r->pool, j);
    case RELAY_API_GEMINI:
        return nebula_conv_gemini_resp_to_chat(ctx->r->pool, j, ctx->req.model);
    case RELAY_API_RESPONSES:
        return NULL;
    default:
        return j;
    }
}

/* Completion text of a chat.completion, for the estimate when usage is
 * absent. */
static void collect_text(relay_ctx_t *ctx, const json_t *chat, const json_t *native)
{
    json_t *choice, *item, *part;
    size_t i, k;

    json_array_foreach(json_object_get(chat, "choices"), i, choice)
    {
        const char *t = nebula_json_gets(choice, "message", "content", NULL);
        if (t == NULL) {
            t = nebula_json_gets(choice, "text", NULL);
        }
        if (t) {
            relay_ctx_text(ctx, t, strlen(t));
        }
    }
    /* a native Response: output[].content[].text */
    json_array_foreach(json_object_get(native, "output"), i, item)
    {
        json_array_foreach(json_object_get(item, "content"), k, part)
        {
            const char *t = nebula_json_gets(part, "text", NULL);
            if (t) {
                relay_ctx_text(ctx, t, strlen(t));
            }
        }
    }
}

/* The converted answer for the client; NULL when it cannot be made. */
static json_t *for_client(relay_ctx_t *ctx, json_t *native, json_t *chat)
{
    apr_pool_t *p = ctx->r->pool;

    if (ctx->route->route == RELAY_ROUTE_GEMINI_EMBED) {
        return nebula_conv_openai_embed_resp_to_gemini(p, native);
    }
    if (chat == NULL) {
        return NULL;
    }
    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        return nebula_conv_chat_resp_to_anthropic(p, chat);
    case RELAY_API_GEMINI:
        return nebula_conv_chat_resp_to_gemini(p, chat);
    case RELAY_API_RESPONSES:
        return nebula_conv_chat_resp_to_responses(p, chat, ctx->body,
                                                  apr_pstrcat(p, "resp_",
                                                              ctx->req.request_id, NULL));
    default:
        return chat;
    }
}

/* The output scan over a complete answer in the client's protocol: its text
 * rewritten, or withheld when the scan stops it. Non-zero when changed. */
static int output_scan(relay_ctx_t *ctx, json_t *answer)
{
    if (!relay_gov_output(ctx, answer)) {
        return 0;
    }
    if (ctx->gov_stop) {
        relay_gov_withhold(ctx, answer);
    }
    return 1;
}

int relay_read_answer(relay_ctx_t *ctx, relay_upstream_t *up, apr_size_t max, char **buf,
                      apr_size_t *len)
{
    apr_status_t rv = relay_read_all(ctx, up, max, buf, len);

    relay_upstream_close(up, rv != APR_SUCCESS);
    if (rv != APR_SUCCESS) {
        ctx->end_reason = "upstream_error";
        ctx->error = "the upstream broke off its answer";
        return HTTP_BAD_GATEWAY;
    }
    return OK;
}

int relay_send_complete(relay_ctx_t *ctx, int status, const char *ct, const char *buf,
                        apr_size_t len)
{
    request_rec *r = ctx->r;

    r->status = ctx->status = status;
    ap_set_content_type(r, ct);
    ap_set_content_length(r, len);
    ctx->first_byte = apr_time_now();
    ctx->end_reason = ctx->gov_stop ? "policy_stop" : "complete";
    relay_log_settle(ctx); /* the answer is complete: charge it before it leaves */
    relay_overhead_header(r);
    ap_rwrite(buf, (int)len, r);
    return OK;
}

int relay_xlate_respond(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                        apr_table_t *headers)
{
    request_rec *r = ctx->r;
    const char *ct = apr_table_get(headers, "Content-Type");
    char *buf = NULL;
    apr_size_t len = 0;
    json_t *j, *chat = NULL;
    int rc;

    if (relay_media_route(ctx->route)) { /* rerank, images, audio (speech: binary) */
        return relay_media_respond(ctx, up, status, headers);
    }
    ct = ct ? apr_pstrdup(r->pool, ct) : "application/json";
    if ((rc = relay_read_answer(ctx, up, UPSTREAM_BODY_MAX, &buf, &len)) != OK) {
        return rc;
    }
    j = nebula_json_parse(r->pool, buf, len, 0, NULL);
    if (j != NULL) {
        chat = to_chat(ctx, j);
        if (!read_usage(ctx, j)) {
            collect_text(ctx, chat, j);
            relay_usage_estimate(ctx);
        }
    }
    if (!ctx->native) {
        json_t *out = j ? for_client(ctx, j, chat) : NULL;
        if (out == NULL) {
            ctx->end_reason = "upstream_error";
            ctx->error = "the upstream's answer could not be converted";
            return HTTP_BAD_GATEWAY;
        }
        output_scan(ctx, out);
        buf = nebula_json_dumps(r->pool, out, 0);
        len = strlen(buf);
        ct = "application/json";
    }
    else if (j != NULL && ctx->output_rw && status < 300 && output_scan(ctx, j)) {
        buf = nebula_json_dumps(r->pool, j, 0);
        len = strlen(buf);
    }
    return relay_send_complete(ctx, status, ct, buf, len);
}

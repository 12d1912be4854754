/* relay_openai.c: the OpenAI protocol on both sides of the relay: the
 * request an upstream gets (model mapping, auth header, usage asked for in
 * streams), complete answers relayed with their usage read, and upstream
 * errors turned into what the client sees. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_private.h"

#define UPSTREAM_BODY_MAX (64 * 1024 * 1024)
#define ERROR_BODY_MAX (64 * 1024)

/* new-api's default keyword list of errors that will not heal by waiting */
static const char *const definitive_words[] = {
    "you exceeded your current quota", "your credit balance is too low",
    "this organization has been disabled", "incorrect api key", "invalid api key",
    "invalid_api_key", "permission denied", "your account is not authorized", NULL};

static const char *upstream_path(const relay_ctx_t *ctx, const relay_channel_t *ch,
                                 const char *model)
{
    const char *path = ctx->route->upstream_path;

    if (!strcmp(ch->kind, "azure")) {
        /* /openai/deployments/{deployment}/chat/completions?api-version= */
        return apr_psprintf(ctx->r->pool, "/openai/deployments/%s%s?api-version=%s",
                            ap_escape_uri(ctx->r->pool, model), path + 3,
                            "2024-10-21");
    }
    /* a base URL that already ends in /v1 */
    if (strlen(ch->base_url) >= 3
        && !strcmp(ch->base_url + strlen(ch->base_url) - 3, "/v1")) {
        return path + 3;
    }
    return path;
}

int relay_openai_outbound(relay_ctx_t *ctx, const relay_channel_t *ch,
                          const relay_chkey_t *key, const char *upstream_model,
                          relay_outbound_t *out)
{
    request_rec *r = ctx->r;
    json_t *body = json_deep_copy(ctx->body);
    const char *path = upstream_path(ctx, ch, upstream_model);

    nebula_json_own(r->pool, body);
    json_object_set_new(body, "model", json_string(upstream_model));
    if (ctx->req.stream) {
        /* always ask for usage: billing needs it whether the client wants it */
        json_t *so = json_object_get(body, "stream_options");
        if (!json_is_object(so)) {
            json_object_set_new(body, "stream_options", so = json_object());
        }
        json_object_set_new(so, "include_usage", json_true());
    }
    out->body = nebula_json_dumps(r->pool, body, 0);
    out->len = strlen(out->body);
    /* the base URL's own path prefix, then the API path */
    out->url = apr_pstrcat(r->pool, ch->base_url, path, NULL);
    out->headers = apr_table_make(r->pool, 8);
    apr_table_setn(out->headers, "Content-Type", "application/json");
    apr_table_setn(out->headers, "Accept",
                   ctx->req.stream ? "text/event-stream" : "application/json");
    apr_table_setn(out->headers, "User-Agent", "NebulaGate/" NEBULA_VERSION);
    apr_table_setn(out->headers, "X-Request-Id", ctx->req.request_id);
    if (!strcmp(ch->kind, "azure")) {
        apr_table_setn(out->headers, "api-key", key->secret);
    }
    else {
        apr_table_setn(out->headers, "Authorization",
                       apr_pstrcat(r->pool, "Bearer ", key->secret, NULL));
    }
    /* the channel's own headers win */
    apr_table_overlap(out->headers, ch->headers, APR_OVERLAP_TABLES_SET);
    return OK;
}

/* Read the whole body into r->pool, up to @a max bytes. */
static apr_status_t read_all(relay_ctx_t *ctx, relay_upstream_t *up, apr_size_t max,
                             char **buf, apr_size_t *len)
{
    apr_bucket_brigade *bb = apr_brigade_create(ctx->r->pool,
                                                ctx->r->connection->bucket_alloc);
    apr_bucket_brigade *all = apr_brigade_create(ctx->r->pool,
                                                 ctx->r->connection->bucket_alloc);
    apr_off_t total = 0;
    apr_status_t rv;

    do {
        rv = relay_upstream_read_body(up, bb, APR_BLOCK_READ);
        APR_BRIGADE_CONCAT(all, bb);
        apr_brigade_length(all, 1, &total);
        if ((apr_size_t)total > max) {
            return APR_ENOSPC;
        }
    } while (rv == APR_SUCCESS);
    if (rv != APR_EOF) {
        return rv;
    }
    return apr_brigade_pflatten(all, buf, len, ctx->r->pool);
}

int relay_openai_usage(relay_ctx_t *ctx, json_t *usage)
{
    if (!json_is_object(usage) || !json_is_integer(json_object_get(usage, "prompt_tokens"))
        || !json_is_integer(json_object_get(usage, "completion_tokens"))) {
        return 0; /* absent or malformed: the gateway counts itself */
    }
    /* OpenAI counts cached tokens inside prompt_tokens; negative or absurd
     * numbers are refused by billing, never credited */
    ctx->usage.prompt_excludes_cache = 0;
    ctx->usage.cache_write_tokens = 0;
    ctx->usage.prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
    ctx->usage.completion_tokens =
        json_integer_value(json_object_get(usage, "completion_tokens"));
    ctx->usage.total_tokens = json_integer_value(json_object_get(usage, "total_tokens"));
    ctx->usage.cached_tokens =
        nebula_json_geti(usage, 0, "prompt_tokens_details", "cached_tokens", NULL);
    ctx->usage.estimated = 0;
    if (ctx->usage.total_tokens == 0) {
        ctx->usage.total_tokens = ctx->usage.prompt_tokens + ctx->usage.completion_tokens;
    }
    return 1;
}

void relay_ctx_text(relay_ctx_t *ctx, const char *s, apr_size_t len)
{
    if (ctx->text_len + len + 1 > ctx->text_cap) {
        apr_size_t cap = (ctx->text_cap ? ctx->text_cap * 2 : 1024);
        char *n;
        while (cap < ctx->text_len + len + 1) {
            cap *= 2;
        }
        n = apr_palloc(ctx->r->pool, cap);
        if (ctx->text_len) {
            memcpy(n, ctx->text, ctx->text_len);
        }
        ctx->text = n;
        ctx->text_cap = cap;
    }
    memcpy(ctx->text + ctx->text_len, s, len);
    ctx->text_len += len;
    ctx->text[ctx->text_len] = '\0';
}

void relay_usage_estimate(relay_ctx_t *ctx)
{
    ctx->usage.prompt_tokens = ctx->req.prompt_tokens_estimate;
    ctx->usage.completion_tokens =
        ctx->text_len ? relay_tokens_text(ctx->req.model, ctx->text, ctx->text_len) : 0;
    ctx->usage.cached_tokens = 0;
    ctx->usage.cache_write_tokens = 0;
    ctx->usage.prompt_excludes_cache = 0;
    ctx->usage.total_tokens = ctx->usage.prompt_tokens + ctx->usage.completion_tokens;
    ctx->usage.estimated = 1;
}

/* Completion text of a complete answer, for the estimate when usage is absent. */
static void collect_text(relay_ctx_t *ctx, json_t *j)
{
    json_t *choice;
    size_t i;

    json_array_foreach(json_object_get(j, "choices"), i, choice)
    {
        const char *t = nebula_json_gets(choice, "message", "content", NULL);
        if (t == NULL) {
            t = nebula_json_gets(choice, "text", NULL);
        }
        if (t) {
            relay_ctx_text(ctx, t, strlen(t));
        }
    }
}

int relay_openai_respond(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                         apr_table_t *headers)
{
    request_rec *r = ctx->r;
    const char *ct = apr_table_get(headers, "Content-Type");
    char *buf = NULL;
    apr_size_t len = 0;
    json_t *j;
    apr_status_t rv;

    ct = ct ? apr_pstrdup(r->pool, ct) : "application/json";
    rv = read_all(ctx, up, UPSTREAM_BODY_MAX, &buf, &len);
    relay_upstream_close(up, rv != APR_SUCCESS);
    if (rv != APR_SUCCESS) {
        ctx->end_reason = "upstream_error";
        ctx->error = "the upstream broke off its answer";
        return HTTP_BAD_GATEWAY;
    }
    if ((j = nebula_json_parse(r->pool, buf, len, 0, NULL)) != NULL) {
        if (!relay_openai_usage(ctx, json_object_get(j, "usage"))) {
            collect_text(ctx, j);
            relay_usage_estimate(ctx);
        }
    }
    r->status = ctx->status = status;
    ap_set_content_type(r, ct);
    ap_set_content_length(r, len);
    ctx->first_byte = apr_time_now();
    ctx->end_reason = "complete";
    relay_log_settle(ctx); /* the answer is complete: charge it before it leaves */
    ap_rwrite(buf, (int)len, r);
    return OK;
}

/* Mask anything that looks like a key ("sk-...", long tokens) in a message
 * from upstream, so no provider secret reaches a client or a log. */
static char *mask_secrets(apr_pool_t *p, const char *in)
{
    char *out = apr_pstrdup(p, in), *s;

    for (s = out; *s; ++s) {
        if ((s == out || !apr_isalnum(s[-1])) && !strncmp(s, "sk-", 3)) {
            char *e = s + 3;
            while (apr_isalnum(*e) || *e == '-' || *e == '_') {
                ++e;
            }
            if (e - s > 10) {
                memset(s + 5, '*', (apr_size_t)(e - s - 5));
            }
            s = e - 1;
        }
    }
    return out;
}

static int is_definitive(request_rec *r, int status, const char *msg)
{
    const apr_array_header_t *words = relay_config_srv(r->server)->disable_words;
    char *lower;
    int i;

    if (status == HTTP_UNAUTHORIZED) {
        return 1;
    }
    if (msg == NULL) {
        return 0;
    }
    lower = apr_pstrdup(r->pool, msg);
    for (i = 0; lower[i]; ++i) {
        lower[i] = (char)apr_tolower(lower[i]);
    }
    for (i = 0; words ? i < words->nelts : definitive_words[i] != NULL; ++i) {
        if (strstr(lower, words ? APR_ARRAY_IDX(words, i, const char *)
                                : definitive_words[i])) {
            return 1;
        }
    }
    return 0;
}

const char *relay_openai_error_body(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                                    int *definitive)
{
    apr_pool_t *p = ctx->r->pool;
    char *buf = NULL;
    apr_size_t len = 0;
    json_t *j = NULL, *err;
    const char *msg = NULL;

    if (read_all(ctx, up, ERROR_BODY_MAX, &buf, &len) == APR_SUCCESS && len > 0) {
        j = nebula_json_parse(p, buf, len, 0, NULL);
    }
    relay_upstream_close(up, j == NULL);
    err = j ? json_object_get(j, "error") : NULL;
    if (json_is_object(err)) {
        msg = json_string_value(json_object_get(err, "message"));
    }
    else if (json_is_string(err)) {
        msg = json_string_value(err);
    }
    *definitive = is_definitive(ctx->r, status, msg);
    if (msg == NULL) {
        msg = apr_psprintf(p, "The upstream answered with status %d.", status);
    }
    msg = mask_secrets(p, msg);
    ctx->error = msg;
    return nebula_json_error_body(
        p, msg,
        json_is_object(err) && json_string_value(json_object_get(err, "type"))
            ? mask_secrets(p, json_string_value(json_object_get(err, "type")))
            : "upstream_error",
        NULL,
        json_is_object(err) && json_string_value(json_object_get(err, "code"))
            ? mask_secrets(p, json_string_value(json_object_get(err, "code")))
            : "bad_response_status_code");
}

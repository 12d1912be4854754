/* relay_openai.c: what every protocol's answers share: reading an upstream
 * body, OpenAI usage, the gateway's own count when usage is absent, and
 * upstream errors turned into what the client sees (in its protocol). */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "nebula_conv.h"

#define ERROR_BODY_MAX (64 * 1024)

/* new-api's default keyword list of errors that will not heal by waiting */
static const char *const definitive_words[] = {
    "you exceeded your current quota", "your credit balance is too low",
    "this organization has been disabled", "incorrect api key", "invalid api key",
    "invalid_api_key", "permission denied", "your account is not authorized", NULL};

/* Read the whole body into r->pool, up to @a max bytes. */
apr_status_t relay_read_all(relay_ctx_t *ctx, relay_upstream_t *up, apr_size_t max,
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
    nebula_usage_t u;

    /* absent or malformed: the gateway counts itself; negative or absurd
     * numbers are refused by billing, never credited */
    if (!nebula_conv_chat_usage(usage, &u)) {
        return 0;
    }
    ctx->usage = u;
    return 1;
}

void relay_ctx_text(relay_ctx_t *ctx, const char *s, apr_size_t len)
{
    nebula_buf_add(ctx->r->pool, &ctx->text, s, len);
}

void relay_usage_estimate(relay_ctx_t *ctx)
{
    ctx->usage.prompt_tokens = relay_prompt_estimate(ctx);
    ctx->usage.completion_tokens =
        ctx->text.len ? relay_tokens_text(ctx->req.model, ctx->text.s, ctx->text.len) : 0;
    ctx->usage.cached_tokens = 0;
    ctx->usage.cache_write_tokens = 0;
    ctx->usage.prompt_excludes_cache = 0;
    ctx->usage.total_tokens = ctx->usage.prompt_tokens + ctx->usage.completion_tokens;
    ctx->usage.estimated = 1;
}

/* Mask anything that looks like a key ("sk-...", long tokens) in a message
 * from upstream, so no provider secret reaches a client or a log; first
 * the key this exchange sent (@a sent, may be NULL) wherever it stands, since
 * an upstream may echo a credential of any shape. */
static char *mask_secrets(apr_pool_t *p, const char *in, const char *sent)
{
    char *out = apr_pstrdup(p, in), *s;
    apr_size_t n = sent ? strlen(sent) : 0;

    if (n >= 4) {
        for (s = strstr(out, sent); s; s = strstr(s + n, sent)) {
            memset(s, '*', n);
        }
    }
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
    const char *msg = NULL, *sent;

    if (relay_read_all(ctx, up, ERROR_BODY_MAX, &buf, &len) == APR_SUCCESS && len > 0) {
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
    sent = ctx->chkey ? ctx->chkey->secret : NULL;
    msg = mask_secrets(p, msg, sent);
    ctx->error = msg;
    return relay_xlate_error(
        ctx, status, msg,
        json_is_object(err) && json_string_value(json_object_get(err, "type"))
            ? mask_secrets(p, json_string_value(json_object_get(err, "type")), sent)
            : "upstream_error",
        json_is_object(err) && json_string_value(json_object_get(err, "code"))
            ? mask_secrets(p, json_string_value(json_object_get(err, "code")), sent)
            : "bad_response_status_code");
}

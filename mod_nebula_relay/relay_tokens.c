/* relay_tokens.c: the gateway's own token count, for when an upstream
 * reports no usage (and for the prompt estimate governance and billing see
 * before relaying). With NebulaTokenizerDir, OpenAI models are counted with
 * their real BPE encodings (o200k_base, cl100k_base, loaded once by the
 * parent and shared by every child); other models, or without the data, get
 * the estimate. Either way the usage is flagged as the gateway's own. */
#include <apr_strings.h>
#include "relay_private.h"
#include "nebula_tokens.h"

static const char *const encodings[] = {"o200k_base", "cl100k_base", NULL};
static const nebula_tokens_enc_t *loaded[2];

const char *relay_tokens_post_config(apr_pool_t *pconf, server_rec *s, const char *dir)
{
    int i;

    loaded[0] = loaded[1] = NULL;
    if (dir == NULL) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "NEB01080: no NebulaTokenizerDir: usage the upstream does not "
                     "report is estimated");
        return NULL;
    }
    for (i = 0; encodings[i]; ++i) {
        const char *err = NULL;
        const char *path = apr_psprintf(pconf, "%s/%s.tiktoken", dir, encodings[i]);
        loaded[i] = nebula_tokens_load(pconf, path, encodings[i], &err);
        if (loaded[i] == NULL) {
            return apr_psprintf(pconf, "NebulaTokenizerDir: cannot load %s: %s", path,
                                err ? err : "?");
        }
    }
    return NULL;
}

static const nebula_tokens_enc_t *encoding_of(const char *model)
{
    const char *name = model ? nebula_tokens_encoding_for_model(model) : NULL;
    int i;

    for (i = 0; name && encodings[i]; ++i) {
        if (!strcmp(name, encodings[i])) {
            return loaded[i];
        }
    }
    return NULL;
}

apr_int64_t relay_tokens_text(const char *model, const char *text, apr_size_t len)
{
    const nebula_tokens_enc_t *e = encoding_of(model);
    apr_size_t n = e ? nebula_tokens_count(e, text, len) : NEBULA_TOKENS_ERROR;

    return (apr_int64_t)(n == NEBULA_TOKENS_ERROR ? nebula_tokens_estimate(text, len) : n);
}

/* The text of a message's content: a string, or the text parts of an array. */
static const char *content_text(apr_pool_t *p, json_t *content)
{
    json_t *part;
    size_t i;
    const char *out = "";

    if (json_is_string(content)) {
        return json_string_value(content);
    }
    json_array_foreach(content, i, part)
    {
        const char *t = nebula_json_gets(part, "text", NULL);
        if (t) {
            out = apr_pstrcat(p, out, *out ? "\n" : "", t, NULL);
        }
    }
    return out;
}

/* prompt / input of completions, embeddings, moderations: strings only */
static const char *input_text(apr_pool_t *p, json_t *v)
{
    json_t *el;
    size_t i;
    const char *out = "";

    if (json_is_string(v)) {
        return json_string_value(v);
    }
    json_array_foreach(v, i, el)
    {
        if (json_is_string(el)) {
            out = apr_pstrcat(p, out, *out ? "\n" : "", json_string_value(el), NULL);
        }
    }
    return out;
}

apr_int64_t relay_prompt_estimate(relay_ctx_t *ctx)
{
    if (!ctx->prompt_counted) {
        ctx->req.prompt_tokens_estimate = relay_tokens_prompt(ctx);
        ctx->prompt_counted = 1;
    }
    return ctx->req.prompt_tokens_estimate;
}

apr_int64_t relay_tokens_prompt(relay_ctx_t *ctx)
{
    apr_pool_t *p = ctx->r->pool;
    json_t *src = ctx->chat ? ctx->chat : ctx->body;
    json_t *msgs = json_object_get(src, "messages"), *m;
    const nebula_tokens_enc_t *e = encoding_of(ctx->req.model);
    nebula_tokens_msg_t *tm;
    const char *text;
    size_t i, n;

    if (!json_is_array(msgs)) {
        text = input_text(p, json_object_get(src, ctx->route->route ==
                                                 RELAY_ROUTE_COMPLETIONS ? "prompt" : "input"));
        return relay_tokens_text(ctx->req.model, text, strlen(text));
    }
    n = json_array_size(msgs);
    tm = apr_pcalloc(p, sizeof(*tm) * (n + 1));
    json_array_foreach(msgs, i, m)
    {
        tm[i].role = nebula_json_gets(m, "role", NULL);
        tm[i].content = content_text(p, json_object_get(m, "content"));
        tm[i].content_len = strlen(tm[i].content);
        tm[i].name = nebula_json_gets(m, "name", NULL);
    }
    n = nebula_tokens_count_chat(e, tm, n);
    return (apr_int64_t)(n == NEBULA_TOKENS_ERROR ? 0 : n);
}

/* relay_gov.c: what the relay does for governance's sake. The text a policy
 * reads (every protocol's request body flattened), the redaction governance
 * asks for, carried out on the body that goes upstream, and the output scan of
 * completion text on its way to the client.
 *
 * One walk over the JSON finds the text, so what is matched is exactly what
 * is redacted: a string is text when the nearest member name above it (arrays
 * pass it down) is one of the names below. That covers OpenAI chat/
 * completions/embeddings/moderations/images/speech bodies ("content",
 * "text", "prompt", "input", tool-call "arguments"), Anthropic Messages
 * ("system", "content", "text", tool results), Gemini ("text" of every part
 * of "contents" and "systemInstruction"), Responses ("instructions",
 * "input", "text", "output" of tool results) and rerank ("query",
 * "documents"). Never text: model names, roles, ids, URLs and inline media
 * ("url", "data"), tool and schema definitions. */
#include <apr_strings.h>
#include "relay_private.h"

static const char *const request_keys[] = {
    "content", "text", "prompt", "input", "instructions", "system", "query",
    "documents", "arguments", "output", NULL};

/* Completion text in any protocol's answer or stream event: OpenAI
 * message/delta "content", Anthropic "text" blocks and text_delta, Gemini
 * part "text", Responses output "text" and output_text.delta "delta". */
static const char *const output_keys[] = {"content", "text", "delta", "refusal", NULL};

typedef void walk_fn(void *baton, json_t *str);

static int is_key(const char *const *keys, const char *k)
{
    for (; *keys; ++keys) {
        if (!strcmp(*keys, k)) {
            return 1;
        }
    }
    return 0;
}

static void walk(json_t *node, const char *const *keys, int text, walk_fn *fn, void *baton,
                 int depth)
{
    const char *k;
    json_t *v;
    size_t i;

    if (depth > 64) { /* the parser refuses deeper bodies; a guard all the same */
        return;
    }
    if (json_is_object(node)) {
        json_object_foreach(node, k, v)
        {
            int t = is_key(keys, k);
            if (json_is_string(v)) {
                if (t) {
                    fn(baton, v);
                }
            }
            else {
                walk(v, keys, t, fn, baton, depth + 1);
            }
        }
    }
    else if (json_is_array(node)) {
        json_array_foreach(node, i, v)
        {
            if (json_is_string(v)) {
                if (text) {
                    fn(baton, v);
                }
            }
            else {
                walk(v, keys, text, fn, baton, depth + 1);
            }
        }
    }
}

/* ---- the prompt text ---------------------------------------------------- */
typedef struct {
    apr_pool_t *p;
    nebula_buf_t buf;
} collect_t;

static void collect(void *baton, json_t *str)
{
    collect_t *c = baton;

    if (json_string_length(str) == 0) {
        return;
    }
    if (c->buf.len) {
        nebula_buf_add(c->p, &c->buf, "\n", 1);
    }
    nebula_buf_add(c->p, &c->buf, json_string_value(str), json_string_length(str));
}

const char *relay_prompt_text(apr_pool_t *p, const relay_route_t *route, json_t *body)
{
    collect_t c = {p, {0}};

    if (body != NULL && route->proto != NEBULA_PROTO_OPENAI_REALTIME) {
        walk(body, request_keys, 0, collect, &c, 0);
    }
    return c.buf.len ? nebula_buf_str(&c.buf) : "";
}

/* ---- rewriting text in place ------------------------------------------- */
typedef struct {
    apr_pool_t *p;
    nebula_text_rewrite_t *rw;
    int changed;
    int stop;
} rewrite_t;

static void rewrite(void *baton, json_t *str)
{
    rewrite_t *w = baton;
    apr_size_t out_len = 0;
    int stop = 0;
    const char *out;

    if (w->stop || json_string_length(str) == 0) {
        return;
    }
    out = w->rw->fn(w->rw, w->p, json_string_value(str), json_string_length(str), &out_len,
                    &stop);
    if (out != NULL) {
        json_string_setn(str, out, out_len);
        w->changed++;
    }
    w->stop = stop;
}

int relay_gov_redact(relay_ctx_t *ctx, nebula_text_rewrite_t *rw)
{
    rewrite_t w = {ctx->r->pool, rw, 0, 0};

    if (ctx->body == NULL) { /* a multipart form or a WebSocket: not redacted */
        return 0;
    }
    walk(ctx->body, request_keys, 0, rewrite, &w, 0);
    if (ctx->chat != NULL && ctx->chat != ctx->body) {
        walk(ctx->chat, request_keys, 0, rewrite, &w, 0);
    }
    if (w.changed) {
        /* the client's bytes no longer go upstream as they came */
        ctx->redacted = 1;
        ctx->req.prompt_text = relay_prompt_text(ctx->r->pool, ctx->route, ctx->body);
    }
    return w.changed;
}

int relay_gov_output(relay_ctx_t *ctx, json_t *j)
{
    rewrite_t w = {ctx->r->pool, ctx->output_rw, 0, 0};

    if (ctx->output_rw == NULL || j == NULL) {
        return 0;
    }
    walk(j, output_keys, 0, rewrite, &w, 0);
    if (w.stop && !ctx->gov_stop) {
        ctx->gov_stop = 1;
        ctx->end_reason = "policy_stop";
        ctx->error = ctx->output_rw->stop_message ? ctx->output_rw->stop_message
                                                  : "stopped by an output policy";
    }
    return w.changed || w.stop;
}

/* ---- a complete answer the output scan stopped ------------------------- */
static void empty_text(void *baton, json_t *str)
{
    json_string_set(str, "");
}

void relay_gov_withhold(relay_ctx_t *ctx, json_t *answer)
{
    json_t *v;
    size_t i;

    walk(answer, output_keys, 0, empty_text, NULL, 0);
    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        json_object_set_new(answer, "stop_reason", json_string("refusal"));
        break;
    case RELAY_API_GEMINI:
        json_array_foreach(json_object_get(answer, "candidates"), i, v)
        {
            json_object_set_new(v, "finishReason", json_string("SAFETY"));
        }
        break;
    case RELAY_API_RESPONSES:
        json_object_set_new(answer, "status", json_string("incomplete"));
        json_object_set_new(answer, "incomplete_details",
                            json_pack("{s:s}", "reason", "content_filter"));
        break;
    default:
        json_array_foreach(json_object_get(answer, "choices"), i, v)
        {
            json_object_set_new(v, "finish_reason", json_string("content_filter"));
        }
        break;
    }
}

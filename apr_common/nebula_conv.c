/* nebula_conv.c: what every protocol converter shares (nebula_conv.h). */
#include "nebula_conv.h"
#include "nebula_json.h"

void nebula_conv_emit(apr_pool_t *p, apr_array_header_t *out, const char *event,
                      json_t *data)
{
    nebula_conv_event_t *ev = apr_array_push(out);

    ev->event = event;
    ev->data = nebula_json_own(p, data);
}

static int usage_int(const json_t *j, const char *key, apr_int64_t *v)
{
    const json_t *n = json_object_get(j, key);

    if (!json_is_integer(n)) {
        return 0;
    }
    *v = json_integer_value(n);
    return 1;
}

int nebula_conv_chat_usage(const json_t *usage, nebula_usage_t *u)
{
    nebula_usage_t n = {0};

    if (!json_is_object(usage) || !usage_int(usage, "prompt_tokens", &n.prompt_tokens)
        || !usage_int(usage, "completion_tokens", &n.completion_tokens)) {
        return 0;
    }
    if (!usage_int(usage, "total_tokens", &n.total_tokens) || n.total_tokens == 0) {
        n.total_tokens = n.prompt_tokens + n.completion_tokens;
    }
    n.cached_tokens =
        nebula_json_geti(usage, 0, "prompt_tokens_details", "cached_tokens", NULL);
    *u = n;
    return 1;
}

json_t *nebula_conv_chat_usage_json(const nebula_usage_t *u)
{
    apr_int64_t prompt = u->prompt_tokens;

    if (u->prompt_excludes_cache) {
        prompt += u->cached_tokens + u->cache_write_tokens;
    }
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt,
                     "completion_tokens", (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)(prompt + u->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)u->cached_tokens);
}

/* nebula_conv_anthropic.c: Anthropic Messages <-> OpenAI chat completions
 * (nebula_conv_anthropic.h is the contract, nebula_conv.h the conventions).
 * Owns the mapping of requests, complete answers, usage and error bodies;
 * the two stream state machines live in nebula_conv_anthropic_stream.c.
 * Field and event shapes follow the official SDKs (anthropic-sdk-python
 * types/, openai-python types/chat/). */
#include "nebula_conv_anthropic_int.h"

/* A request conversion under way: the pool and the first error met. */
typedef struct {
    apr_pool_t *p;
    const char *err;
} conv_t;

/* Record the first error (a sentence for the client); always NULL. */
static void *conv_fail(conv_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void *conv_fail(conv_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err == NULL) {
        va_start(ap, fmt);
        c->err = apr_pvsprintf(c->p, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* s1 + s2 joined by sep into the pool (s1 may be NULL). */
static const char *join_text(apr_pool_t *p, const char *s1, const char *sep,
                             const char *s2)
{
    return s1 == NULL ? apr_pstrdup(p, s2) : apr_pstrcat(p, s1, sep, s2, NULL);
}

/* Copy a number field; 0 (and an error) when present but not a number. */
static int copy_number(conv_t *c, const json_t *from, const char *key, json_t *to,
                       const char *to_key)
{
    json_t *v = json_object_get(from, key);

    if (v == NULL || json_is_null(v)) {
        return 1;
    }
    if (!json_is_number(v)) {
        conv_fail(c, "%s must be a number.", key);
        return 0;
    }
    json_object_set(to, to_key, v);
    return 1;
}

/* ======================================================================== */
/* Anthropic request -> chat request                                        */
/* ======================================================================== */

/* The text of a system prompt: a string, or text blocks joined by blank
 * lines (cache_control and citations have no chat equivalent). */
static const char *a2c_system_text(conv_t *c, const json_t *sys)
{
    const char *text = NULL;
    json_t *b;
    size_t i;

    if (json_is_string(sys)) {
        return json_string_value(sys);
    }
    if (!json_is_array(sys)) {
        return conv_fail(c, "system must be a string or an array of text blocks.");
    }
    json_array_foreach(sys, i, b)
    {
        const char *type = nebula_json_gets(b, "type", NULL);
        const char *t = nebula_json_gets(b, "text", NULL);

        if (type == NULL || strcmp(type, "text") || t == NULL) {
            return conv_fail(
                c, "system[%" APR_SIZE_T_FMT "] must be a text block with a string text.",
                i);
        }
        text = join_text(c->p, text, "\n\n", t);
    }
    return text ? text : "";
}

/* An image block -> an image_url part: base64 sources become data URLs. */
static json_t *a2c_image_part(conv_t *c, const json_t *block, const char *where)
{
    const json_t *src = json_object_get(block, "source");
    const char *type = nebula_json_gets(src, "type", NULL);
    const char *url;

    if (type != NULL && !strcmp(type, "base64")) {
        const char *mt = nebula_json_gets(src, "media_type", NULL);
        const char *data = nebula_json_gets(src, "data", NULL);

        if (mt == NULL || data == NULL) {
            return conv_fail(c,
                             "%s: a base64 image source needs string media_type and "
                             "data.",
                             where);
        }
        url = apr_pstrcat(c->p, "data:", mt, ";base64,", data, NULL);
    }
    else if (type != NULL && !strcmp(type, "url")) {
        if ((url = nebula_json_gets(src, "url", NULL)) == NULL) {
            return conv_fail(c, "%s: a url image source needs a string url.", where);
        }
    }
    else {
        return conv_fail(c, "%s: an image block needs a source of type base64 or url.",
                         where);
    }
    return json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url);
}

/* A tool_result block -> a tool message; its image blocks go to @a images
 * (a chat tool message carries text only), is_error prefixes "Error: ". */
static json_t *a2c_tool_result(conv_t *c, const json_t *block, const char *where,
                               json_t *images)
{
    const char *id = nebula_json_gets(block, "tool_use_id", NULL);
    const json_t *content = json_object_get(block, "content");
    const char *text = NULL;
    json_t *b;
    size_t i;

    if (id == NULL) {
        return conv_fail(c, "%s: a tool_result block needs a string tool_use_id.", where);
    }
    if (json_is_string(content)) {
        text = json_string_value(content);
    }
    else if (json_is_array(content)) {
        json_array_foreach(content, i, b)
        {
            const char *bt = nebula_json_gets(b, "type", NULL);
            const char *where_b =
                apr_psprintf(c->p, "%s.content[%" APR_SIZE_T_FMT "]", where, i);

            if (bt != NULL && !strcmp(bt, "text") && nebula_json_gets(b, "text", NULL)) {
                text = join_text(c->p, text, "\n", nebula_json_gets(b, "text", NULL));
            }
            else if (bt != NULL && !strcmp(bt, "image")) {
                json_t *part = a2c_image_part(c, b, where_b);
                if (part == NULL) {
                    return NULL;
                }
                json_array_append_new(images, part);
            }
            else {
                return conv_fail(c, "%s: a tool result holds text and image blocks only.",
                                 where_b);
            }
        }
    }
    else if (content != NULL && !json_is_null(content)) {
        return conv_fail(c, "%s: content must be a string or an array of blocks.", where);
    }
    if (nebula_json_getb(block, 0, "is_error", NULL)) {
        text = text && *text ? apr_pstrcat(c->p, "Error: ", text, NULL) : "Error";
    }
    return json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", id, "content",
                     text ? text : "");
}

/* A user turn -> its tool messages (first: they answer the previous
 * assistant turn), then one user message for the rest, if any. */
static int a2c_user(conv_t *c, const json_t *content, size_t mi, json_t *msgs)
{
    json_t *parts = json_array(), *b;
    size_t i;
    int ok = 1;

    nebula_json_own(c->p, parts);
    json_array_foreach(content, i, b)
    {
        const char *type = nebula_json_gets(b, "type", NULL);
        const char *where = apr_psprintf(
            c->p, "messages[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT "]", mi, i);
        json_t *part = NULL;

        if (type == NULL) {
            conv_fail(c, "%s: a content block must be an object with a string type.",
                      where);
            return 0;
        }
        if (!strcmp(type, "text")) {
            const char *t = nebula_json_gets(b, "text", NULL);
            if (t == NULL) {
                conv_fail(c, "%s: a text block needs a string text.", where);
                return 0;
            }
            part = json_pack("{s:s, s:s}", "type", "text", "text", t);
        }
        else if (!strcmp(type, "image")) {
            part = a2c_image_part(c, b, where);
        }
        else if (!strcmp(type, "tool_result")) {
            json_t *tm = a2c_tool_result(c, b, where, parts);
            if (tm == NULL) {
                return 0;
            }
            json_array_append_new(msgs, tm);
            continue;
        }
        else {
            conv_fail(c, "%s: a %s block cannot be sent to this model.", where, type);
            return 0;
        }
        if (part == NULL) {
            return 0;
        }
        json_array_append_new(parts, part);
    }
    if (json_array_size(parts) == 1 &&
        !strcmp(nebula_json_gets(parts, "#0", "type", NULL), "text")) {
        ok = !json_array_append_new(
            msgs, json_pack("{s:s, s:O}", "role", "user", "content",
                            json_object_get(json_array_get(parts, 0), "text")));
    }
    else if (json_array_size(parts) > 0) {
        ok = !json_array_append_new(
            msgs, json_pack("{s:s, s:O}", "role", "user", "content", parts));
    }
    return ok;
}

/* An assistant turn -> one assistant message: texts joined into content,
 * tool_use blocks into tool_calls; thinking blocks are dropped (chat
 * upstreams do not take reasoning back). */
static int a2c_assistant(conv_t *c, const json_t *content, size_t mi, json_t *msgs)
{
    json_t *msg, *calls = json_array(), *b;
    const char *text = NULL;
    size_t i;

    nebula_json_own(c->p, calls);
    json_array_foreach(content, i, b)
    {
        const char *type = nebula_json_gets(b, "type", NULL);
        const char *where = apr_psprintf(
            c->p, "messages[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT "]", mi, i);

        if (type == NULL) {
            conv_fail(c, "%s: a content block must be an object with a string type.",
                      where);
            return 0;
        }
        if (!strcmp(type, "text")) {
            const char *t = nebula_json_gets(b, "text", NULL);
            if (t == NULL) {
                conv_fail(c, "%s: a text block needs a string text.", where);
                return 0;
            }
            text = join_text(c->p, text, "", t);
        }
        else if (!strcmp(type, "tool_use")) {
            const char *id = nebula_json_gets(b, "id", NULL);
            const char *name = nebula_json_gets(b, "name", NULL);
            const json_t *input = json_object_get(b, "input");
            char *args;

            if (id == NULL || name == NULL || !json_is_object(input)) {
                conv_fail(c,
                          "%s: a tool_use block needs string id and name and an object "
                          "input.",
                          where);
                return 0;
            }
            args = nebula_json_dumps(c->p, input, 0);
            json_array_append_new(calls,
                                  json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type",
                                            "function", "function", "name", name,
                                            "arguments", args ? args : "{}"));
        }
        else if (strcmp(type, "thinking") && strcmp(type, "redacted_thinking")) {
            conv_fail(c, "%s: a %s block cannot be sent to this model.", where, type);
            return 0;
        }
    }
    msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content",
                        text                     ? json_string(text)
                        : json_array_size(calls) ? json_null()
                                                 : json_string(""));
    if (json_array_size(calls)) {
        json_object_set(msg, "tool_calls", calls);
    }
    return !json_array_append_new(msgs, msg);
}

static int a2c_messages(conv_t *c, const json_t *messages, json_t *msgs)
{
    json_t *m;
    size_t i;

    json_array_foreach(messages, i, m)
    {
        const char *role = nebula_json_gets(m, "role", NULL);
        const json_t *content = json_object_get(m, "content");
        int is_user;

        if (role == NULL || (strcmp(role, "user") && strcmp(role, "assistant"))) {
            conv_fail(c,
                      "messages[%" APR_SIZE_T_FMT
                      "]: role must be \"user\" or \"assistant\".",
                      i);
            return 0;
        }
        is_user = !strcmp(role, "user");
        if (json_is_string(content)) {
            json_array_append_new(
                msgs, json_pack("{s:s, s:O}", "role", role, "content", content));
        }
        else if (!json_is_array(content)) {
            conv_fail(c,
                      "messages[%" APR_SIZE_T_FMT
                      "]: content must be a string or an array of blocks.",
                      i);
            return 0;
        }
        else if (!(is_user ? a2c_user : a2c_assistant)(c, content, i, msgs)) {
            return 0;
        }
    }
    return 1;
}

/* tools [{name, description, input_schema}] -> function tools; Anthropic's
 * own tool types (bash, web_search, ...) cannot run elsewhere. */
static json_t *a2c_tools(conv_t *c, const json_t *tools)
{
    json_t *out = json_array(), *t;
    size_t i;

    nebula_json_own(c->p, out);
    if (!json_is_array(tools)) {
        return conv_fail(c, "tools must be an array.");
    }
    json_array_foreach(tools, i, t)
    {
        const char *name = nebula_json_gets(t, "name", NULL);
        const char *type = nebula_json_gets(t, "type", NULL);
        const json_t *schema = json_object_get(t, "input_schema");
        const json_t *desc = json_object_get(t, "description");
        json_t *fn;

        if (json_is_object(t) && json_object_get(t, "type") &&
            !json_is_null(json_object_get(t, "type")) &&
            (type == NULL || strcmp(type, "custom"))) {
            return conv_fail(c,
                             "tools[%" APR_SIZE_T_FMT
                             "]: the tool type %s cannot be used with this "
                             "model.",
                             i, type ? type : "(not a string)");
        }
        if (name == NULL || !json_is_object(schema) ||
            (desc != NULL && !json_is_string(desc))) {
            return conv_fail(c,
                             "tools[%" APR_SIZE_T_FMT
                             "] needs a string name, an object input_schema and "
                             "an optional string description.",
                             i);
        }
        fn = json_pack("{s:s}", "name", name);
        if (desc != NULL) {
            json_object_set(fn, "description", (json_t *)desc);
        }
        json_object_set(fn, "parameters", (json_t *)schema);
        json_array_append_new(
            out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

/* tool_choice {type: auto|any|tool|none} -> chat tool_choice (and
 * parallel_tool_calls false for disable_parallel_tool_use, when there are
 * tools: OpenAI refuses it without). */
static int a2c_tool_choice(conv_t *c, const json_t *tc, json_t *out, int has_tools)
{
    const char *type = nebula_json_gets(tc, "type", NULL);
    const json_t *dp = json_object_get(tc, "disable_parallel_tool_use");
    json_t *choice;

    if (type == NULL) {
        conv_fail(c, "tool_choice must be an object with a string type.");
        return 0;
    }
    if (dp != NULL && !json_is_boolean(dp)) {
        conv_fail(c, "tool_choice.disable_parallel_tool_use must be a boolean.");
        return 0;
    }
    if (!strcmp(type, "auto")) {
        choice = json_string("auto");
    }
    else if (!strcmp(type, "any")) {
        choice = json_string("required");
    }
    else if (!strcmp(type, "none")) {
        choice = json_string("none");
    }
    else if (!strcmp(type, "tool")) {
        const char *name = nebula_json_gets(tc, "name", NULL);
        if (name == NULL) {
            conv_fail(c, "tool_choice of type tool needs a string name.");
            return 0;
        }
        choice =
            json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
    }
    else {
        conv_fail(c, "tool_choice.type must be auto, any, tool or none.");
        return 0;
    }
    if (!has_tools) {
        json_decref(choice); /* OpenAI refuses a tool_choice without tools */
        return 1;
    }
    json_object_set_new(out, "tool_choice", choice);
    if (json_is_true(dp)) {
        json_object_set_new(out, "parallel_tool_calls", json_false());
    }
    return 1;
}

/* The scalar options: sampling, stop sequences, user, stream. */
static int a2c_options(conv_t *c, const json_t *req, json_t *out)
{
    const json_t *stop = json_object_get(req, "stop_sequences");
    const json_t *meta = json_object_get(req, "metadata");
    const json_t *stream = json_object_get(req, "stream");
    json_t *s;
    size_t i;

    if (!copy_number(c, req, "temperature", out, "temperature") ||
        !copy_number(c, req, "top_p", out, "top_p")) {
        return 0;
    }
    if (stop != NULL && !json_is_null(stop)) {
        if (!json_is_array(stop)) {
            conv_fail(c, "stop_sequences must be an array of strings.");
            return 0;
        }
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s)) {
                conv_fail(c, "stop_sequences must be an array of strings.");
                return 0;
            }
        }
        if (json_array_size(stop) > 0) {
            json_object_set(out, "stop", (json_t *)stop);
        }
    }
    if (meta != NULL && !json_is_null(meta)) {
        const json_t *uid = json_object_get(meta, "user_id");
        if (!json_is_object(meta) ||
            (uid && !json_is_string(uid) && !json_is_null(uid))) {
            conv_fail(c, "metadata must be an object whose user_id is a string.");
            return 0;
        }
        if (json_is_string(uid)) {
            json_object_set(out, "user", (json_t *)uid);
        }
    }
    if (stream != NULL && !json_is_boolean(stream)) {
        conv_fail(c, "stream must be a boolean.");
        return 0;
    }
    if (json_is_true(stream)) {
        json_object_set_new(out, "stream", json_true());
        json_object_set_new(out, "stream_options",
                            json_pack("{s:b}", "include_usage", 1));
    }
    return 1;
}

json_t *nebula_conv_anthropic_req_to_chat(apr_pool_t *p, const json_t *req,
                                          const char **err)
{
    conv_t c = {p, NULL};
    json_t *out, *msgs, *tools = NULL;
    const json_t *sys, *tc;
    const char *model = nebula_json_gets(req, "model", NULL);
    const json_t *max = json_object_get(req, "max_tokens");

    if (!json_is_object(req)) {
        conv_fail(&c, "The request body must be a JSON object.");
    }
    else if (model == NULL) {
        conv_fail(&c, "model: a string is required.");
    }
    else if (!json_is_integer(max) || json_integer_value(max) <= 0) {
        conv_fail(&c, "max_tokens: an integer greater than 0 is required.");
    }
    else if (!json_is_array(json_object_get(req, "messages"))) {
        conv_fail(&c, "messages: an array is required.");
    }
    if (c.err != NULL) {
        *err = c.err;
        return NULL;
    }
    out = nebula_json_own(p, json_object());
    json_object_set_new(out, "model", json_string(model));
    json_object_set_new(out, "messages", msgs = json_array());
    if ((sys = json_object_get(req, "system")) != NULL && !json_is_null(sys)) {
        const char *text = a2c_system_text(&c, sys);
        if (text != NULL && *text) {
            json_array_append_new(
                msgs, json_pack("{s:s, s:s}", "role", "system", "content", text));
        }
    }
    if (c.err == NULL) {
        a2c_messages(&c, json_object_get(req, "messages"), msgs);
    }
    json_object_set(out, "max_tokens", (json_t *)max);
    if (c.err == NULL && json_object_get(req, "tools") != NULL &&
        !json_is_null(json_object_get(req, "tools")) &&
        (tools = a2c_tools(&c, json_object_get(req, "tools"))) != NULL &&
        json_array_size(tools) > 0) {
        json_object_set(out, "tools", tools);
    }
    tc = json_object_get(req, "tool_choice");
    if (c.err == NULL && tc != NULL && !json_is_null(tc)) {
        a2c_tool_choice(&c, tc, out, tools != NULL && json_array_size(tools) > 0);
    }
    if (c.err == NULL) {
        a2c_options(&c, req, out);
    }
    if (c.err != NULL) {
        *err = c.err;
        return NULL;
    }
    return out;
}

/* ======================================================================== */
/* chat request -> Anthropic request                                        */
/* ======================================================================== */

/* Content given as a string or text parts -> one string (system,
 * developer and tool messages). */
static const char *c2a_plain_text(conv_t *c, const json_t *content, const char *where)
{
    const char *text = NULL;
    json_t *part;
    size_t i;

    if (json_is_string(content)) {
        return json_string_value(content);
    }
    if (content == NULL || json_is_null(content)) {
        return "";
    }
    if (!json_is_array(content)) {
        return conv_fail(c, "%s: content must be a string or an array of text parts.",
                         where);
    }
    json_array_foreach(content, i, part)
    {
        const char *type = nebula_json_gets(part, "type", NULL);
        const char *t = nebula_json_gets(part, "text", NULL);

        if (type == NULL || strcmp(type, "text") || t == NULL) {
            return conv_fail(c, "%s: content[%" APR_SIZE_T_FMT "] must be a text part.",
                             where, i);
        }
        text = join_text(c->p, text, "\n", t);
    }
    return text ? text : "";
}

/* An image_url part -> an image block: a data URL becomes a base64 source,
 * an http(s) URL a url source. */
static json_t *c2a_image_block(conv_t *c, const json_t *part, const char *where)
{
    const char *url = nebula_json_gets(part, "image_url", "url", NULL);
    const char *comma, *semi;

    if (url == NULL) {
        url = nebula_json_gets(part, "image_url", NULL);
    }
    if (url == NULL) {
        return conv_fail(c, "%s: an image_url part needs image_url.url (a string).",
                         where);
    }
    if (!strncmp(url, "data:", 5)) {
        comma = strchr(url, ',');
        semi = strchr(url, ';');
        if (comma == NULL || semi == NULL || semi > comma || semi == url + 5 ||
            strncmp(semi, ";base64,", 8)) {
            return conv_fail(c,
                             "%s: an image data URL must read data:<media type>;base64,"
                             "<data>.",
                             where);
        }
        return json_pack("{s:s, s:{s:s, s:s%, s:s}}", "type", "image", "source", "type",
                         "base64", "media_type", url + 5, (size_t)(semi - url - 5),
                         "data", comma + 1);
    }
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) {
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url",
                         "url", url);
    }
    return conv_fail(c, "%s: an image URL must be an http(s) or a base64 data URL.",
                     where);
}

/* A user message's content -> a string, or blocks (text, image). */
static json_t *c2a_user_content(conv_t *c, const json_t *content, const char *where)
{
    json_t *blocks, *part;
    size_t i;

    if (json_is_string(content)) {
        return json_incref((json_t *)content);
    }
    if (!json_is_array(content)) {
        return conv_fail(c, "%s: content must be a string or an array of parts.", where);
    }
    blocks = nebula_json_own(c->p, json_array());
    json_array_foreach(content, i, part)
    {
        const char *type = nebula_json_gets(part, "type", NULL);
        const char *w = apr_psprintf(c->p, "%s.content[%" APR_SIZE_T_FMT "]", where, i);
        json_t *b;

        if (type != NULL && !strcmp(type, "text") &&
            nebula_json_gets(part, "text", NULL)) {
            b = json_pack("{s:s, s:s}", "type", "text", "text",
                          nebula_json_gets(part, "text", NULL));
        }
        else if (type != NULL && !strcmp(type, "image_url")) {
            b = c2a_image_block(c, part, w);
        }
        else {
            return conv_fail(c,
                             "%s: only text and image_url parts can be sent to this "
                             "model.",
                             w);
        }
        if (b == NULL) {
            return NULL;
        }
        json_array_append_new(blocks, b);
    }
    return json_incref(blocks);
}

/* An assistant message -> content blocks: text, then one tool_use per
 * tool call with its arguments parsed ("" stands for {}). */
static json_t *c2a_assistant_content(conv_t *c, const json_t *m, const char *where)
{
    json_t *blocks = nebula_json_own(c->p, json_array()), *call;
    const json_t *content = json_object_get(m, "content");
    const json_t *calls = json_object_get(m, "tool_calls");
    const char *text;
    size_t i;

    if (json_is_array(content)) {
        json_t *part;
        text = NULL;
        json_array_foreach(content, i, part)
        {
            const char *type = nebula_json_gets(part, "type", NULL);
            const char *t = nebula_json_gets(
                part, type && !strcmp(type, "refusal") ? "refusal" : "text", NULL);
            if (type == NULL || t == NULL ||
                (strcmp(type, "text") && strcmp(type, "refusal"))) {
                return conv_fail(
                    c, "%s: content[%" APR_SIZE_T_FMT "] must be a text or refusal part.",
                    where, i);
            }
            text = join_text(c->p, text, "", t);
        }
    }
    else if ((text = c2a_plain_text(c, content, where)) == NULL) {
        return NULL;
    }
    if (text && *text) {
        json_array_append_new(blocks,
                              json_pack("{s:s, s:s}", "type", "text", "text", text));
    }
    if (calls != NULL && !json_is_null(calls) && !json_is_array(calls)) {
        return conv_fail(c, "%s: tool_calls must be an array.", where);
    }
    json_array_foreach(calls, i, call)
    {
        const char *id = nebula_json_gets(call, "id", NULL);
        const char *name = nebula_json_gets(call, "function", "name", NULL);
        const char *args = nebula_json_gets(call, "function", "arguments", NULL);
        json_t *input;

        if (id == NULL || name == NULL || args == NULL) {
            return conv_fail(c,
                             "%s: tool_calls[%" APR_SIZE_T_FMT
                             "] needs string id, function.name and "
                             "function.arguments.",
                             where, i);
        }
        input = *args ? nebula_json_parse(c->p, args, strlen(args), 0, NULL)
                      : nebula_json_own(c->p, json_object());
        if (!json_is_object(input)) {
            return conv_fail(c,
                             "%s: tool_calls[%" APR_SIZE_T_FMT
                             "].function.arguments must be a JSON "
                             "object.",
                             where, i);
        }
        json_array_append_new(blocks,
                              json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id",
                                        id, "name", name, "input", input));
    }
    return json_incref(blocks);
}

/* The messages: system/developer ones joined into the system prompt,
 * consecutive tool messages merged into one user turn of tool_result
 * blocks. */
static int c2a_messages(conv_t *c, const json_t *messages, json_t *out)
{
    json_t *msgs = json_array(), *m, *tool_turn = NULL;
    const char *system = NULL;
    size_t i;

    json_object_set_new(out, "messages", msgs);
    json_array_foreach(messages, i, m)
    {
        const char *role = nebula_json_gets(m, "role", NULL);
        const json_t *content = json_object_get(m, "content");
        const char *where = apr_psprintf(c->p, "messages[%" APR_SIZE_T_FMT "]", i);
        json_t *blocks;

        if (role == NULL) {
            conv_fail(c, "%s must be an object with a string role.", where);
            return 0;
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            const char *t = c2a_plain_text(c, content, where);
            if (t == NULL) {
                return 0;
            }
            if (*t) {
                system = join_text(c->p, system, "\n\n", t);
            }
            continue;
        }
        if (!strcmp(role, "tool")) {
            const char *id = nebula_json_gets(m, "tool_call_id", NULL);
            const char *t = c2a_plain_text(c, content, where);
            if (t == NULL) {
                return 0;
            }
            if (id == NULL) {
                conv_fail(c, "%s: a tool message needs a string tool_call_id.", where);
                return 0;
            }
            if (tool_turn == NULL) {
                tool_turn = json_array();
                json_array_append_new(
                    msgs, json_pack("{s:s, s:o}", "role", "user", "content", tool_turn));
            }
            json_array_append_new(tool_turn,
                                  json_pack("{s:s, s:s, s:s}", "type", "tool_result",
                                            "tool_use_id", id, "content", t));
            continue;
        }
        tool_turn = NULL;
        if (!strcmp(role, "user")) {
            blocks = c2a_user_content(c, content, where);
        }
        else if (!strcmp(role, "assistant")) {
            blocks = c2a_assistant_content(c, m, where);
            if (blocks != NULL && json_array_size(blocks) == 0) {
                json_decref(blocks); /* nothing said: Anthropic refuses empty turns */
                continue;
            }
        }
        else {
            conv_fail(c, "%s: the role %s cannot be sent to this model.", where, role);
            return 0;
        }
        if (blocks == NULL) {
            return 0;
        }
        json_array_append_new(msgs,
                              json_pack("{s:s, s:o}", "role", role, "content", blocks));
    }
    if (system != NULL) {
        json_object_set_new(out, "system", json_string(system));
    }
    if (json_array_size(msgs) == 0) {
        conv_fail(c, "messages: at least one user or assistant message is required.");
        return 0;
    }
    return 1;
}

/* Function tools -> Anthropic tools (other tool types cannot run there). */
static int c2a_tools(conv_t *c, const json_t *tools, json_t *out)
{
    json_t *list = json_array(), *t;
    size_t i;

    json_object_set_new(out, "tools", list);
    if (!json_is_array(tools)) {
        conv_fail(c, "tools must be an array.");
        return 0;
    }
    json_array_foreach(tools, i, t)
    {
        const char *type = nebula_json_gets(t, "type", NULL);
        const char *name = nebula_json_gets(t, "function", "name", NULL);
        const json_t *desc =
            nebula_json_getj((json_t *)t, "function", "description", NULL);
        const json_t *params =
            nebula_json_getj((json_t *)t, "function", "parameters", NULL);
        json_t *tool;

        if (type == NULL || strcmp(type, "function")) {
            conv_fail(c,
                      "tools[%" APR_SIZE_T_FMT
                      "]: only tools of type function can be used with this "
                      "model.",
                      i);
            return 0;
        }
        if (name == NULL || (desc && !json_is_string(desc) && !json_is_null(desc)) ||
            (params && !json_is_object(params) && !json_is_null(params))) {
            conv_fail(c,
                      "tools[%" APR_SIZE_T_FMT
                      "].function needs a string name, an optional string "
                      "description and optional object parameters.",
                      i);
            return 0;
        }
        tool = json_pack("{s:s}", "name", name);
        if (json_is_string(desc)) {
            json_object_set(tool, "description", (json_t *)desc);
        }
        json_object_set_new(tool, "input_schema",
                            json_is_object(params) ? json_incref((json_t *)params)
                                                   : json_pack("{s:s, s:{}}", "type",
                                                               "object", "properties"));
        json_array_append_new(list, tool);
    }
    if (json_array_size(list) == 0) {
        json_object_del(out, "tools");
    }
    return 1;
}

/* tool_choice and parallel_tool_calls -> Anthropic's tool_choice. */
static int c2a_tool_choice(conv_t *c, const json_t *req, json_t *out)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const json_t *par = json_object_get(req, "parallel_tool_calls");
    const char *s = json_string_value(tc);
    json_t *choice = NULL;

    if (par != NULL && !json_is_boolean(par) && !json_is_null(par)) {
        conv_fail(c, "parallel_tool_calls must be a boolean.");
        return 0;
    }
    if (s != NULL && !strcmp(s, "auto")) {
        choice = json_pack("{s:s}", "type", "auto");
    }
    else if (s != NULL && !strcmp(s, "required")) {
        choice = json_pack("{s:s}", "type", "any");
    }
    else if (s != NULL && !strcmp(s, "none")) {
        choice = json_pack("{s:s}", "type", "none");
    }
    else if (json_is_object(tc) && nebula_json_gets(tc, "function", "name", NULL)) {
        choice = json_pack("{s:s, s:s}", "type", "tool", "name",
                           nebula_json_gets(tc, "function", "name", NULL));
    }
    else if (tc != NULL && !json_is_null(tc)) {
        conv_fail(c, "tool_choice must be auto, required, none or "
                     "{\"type\":\"function\",\"function\":{\"name\":...}}.");
        return 0;
    }
    if (json_object_get(out, "tools") == NULL) {
        json_decref(choice); /* Anthropic refuses a tool_choice without tools */
        return 1;
    }
    if (json_is_false(par)) {
        if (choice == NULL) {
            choice = json_pack("{s:s}", "type", "auto");
        }
        if (strcmp(json_string_value(json_object_get(choice, "type")), "none")) {
            json_object_set_new(choice, "disable_parallel_tool_use", json_true());
        }
    }
    if (choice != NULL) {
        json_object_set_new(out, "tool_choice", choice);
    }
    return 1;
}

/* max_tokens (Anthropic requires it), sampling, stop, user, stream. */
static int c2a_options(conv_t *c, const json_t *req, json_t *out, apr_int64_t dflt_max)
{
    const json_t *max = json_object_get(req, "max_completion_tokens");
    const json_t *stop = json_object_get(req, "stop");
    const json_t *user = json_object_get(req, "user");
    const json_t *stream = json_object_get(req, "stream");
    const json_t *temp = json_object_get(req, "temperature");
    json_t *s;
    size_t i;

    if (max == NULL || json_is_null(max)) {
        max = json_object_get(req, "max_tokens");
    }
    if (max != NULL && !json_is_null(max) &&
        (!json_is_integer(max) || json_integer_value(max) <= 0)) {
        conv_fail(
            c, "max_tokens and max_completion_tokens must be integers greater than 0.");
        return 0;
    }
    json_object_set_new(out, "max_tokens",
                        json_is_integer(max) ? json_incref((json_t *)max)
                                             : json_integer((json_int_t)dflt_max));
    if (temp != NULL && !json_is_null(temp) && !json_is_number(temp)) {
        conv_fail(c, "temperature must be a number.");
        return 0;
    }
    if (json_is_number(temp)) {
        /* chat allows 0..2, Anthropic 0..1 */
        json_object_set_new(out, "temperature",
                            json_number_value(temp) > 1.0 ? json_real(1.0)
                                                          : json_incref((json_t *)temp));
    }
    if (!copy_number(c, req, "top_p", out, "top_p")) {
        return 0;
    }
    if (json_is_string(stop)) {
        json_object_set_new(out, "stop_sequences", json_pack("[O]", stop));
    }
    else if (json_is_array(stop)) {
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s)) {
                conv_fail(c, "stop must be a string or an array of strings.");
                return 0;
            }
        }
        if (json_array_size(stop) > 0) {
            json_object_set(out, "stop_sequences", (json_t *)stop);
        }
    }
    else if (stop != NULL && !json_is_null(stop)) {
        conv_fail(c, "stop must be a string or an array of strings.");
        return 0;
    }
    if (json_is_string(user)) {
        json_object_set_new(out, "metadata", json_pack("{s:O}", "user_id", user));
    }
    else if (user != NULL && !json_is_null(user)) {
        conv_fail(c, "user must be a string.");
        return 0;
    }
    if (stream != NULL && !json_is_null(stream) && !json_is_boolean(stream)) {
        conv_fail(c, "stream must be a boolean.");
        return 0;
    }
    if (json_is_true(stream)) {
        json_object_set_new(out, "stream", json_true());
    }
    return 1;
}

json_t *nebula_conv_chat_req_to_anthropic(apr_pool_t *p, const json_t *req,
                                          apr_int64_t default_max_tokens,
                                          const char **err)
{
    conv_t c = {p, NULL};
    const char *model = nebula_json_gets(req, "model", NULL);
    const json_t *n = json_object_get(req, "n");
    const json_t *tools = json_object_get(req, "tools");
    json_t *out;

    if (!json_is_object(req)) {
        conv_fail(&c, "The request body must be a JSON object.");
    }
    else if (model == NULL) {
        conv_fail(&c, "model: a string is required.");
    }
    else if (!json_is_array(json_object_get(req, "messages"))) {
        conv_fail(&c, "messages: an array is required.");
    }
    else if (n != NULL && !json_is_null(n) &&
             (!json_is_integer(n) || json_integer_value(n) != 1)) {
        conv_fail(&c, "n: this model gives one choice per request (n must be 1).");
    }
    if (c.err != NULL) {
        *err = c.err;
        return NULL;
    }
    out = nebula_json_own(p, json_object());
    json_object_set_new(out, "model", json_string(model));
    if (c2a_messages(&c, json_object_get(req, "messages"), out) &&
        (tools == NULL || json_is_null(tools) || c2a_tools(&c, tools, out)) &&
        c2a_tool_choice(&c, req, out)) {
        c2a_options(&c, req, out, default_max_tokens);
    }
    if (c.err != NULL) {
        *err = c.err;
        return NULL;
    }
    return out;
}

/* ======================================================================== */
/* complete answers, usage, errors                                          */
/* ======================================================================== */

/* An optional count: absent or null is 0, another non-integer fails. */
static int usage_opt(const json_t *usage, const char *key, apr_int64_t *v)
{
    const json_t *n = json_object_get(usage, key);

    if (n == NULL || json_is_null(n)) {
        *v = 0;
        return 1;
    }
    if (!json_is_integer(n)) {
        return 0;
    }
    *v = json_integer_value(n);
    return 1;
}

int nebula_conv_anthropic_usage(const json_t *usage, nebula_usage_t *u)
{
    nebula_usage_t n = {0};

    if (!json_is_object(usage) ||
        !json_is_integer(json_object_get(usage, "input_tokens")) ||
        !json_is_integer(json_object_get(usage, "output_tokens")) ||
        !usage_opt(usage, "cache_read_input_tokens", &n.cached_tokens) ||
        !usage_opt(usage, "cache_creation_input_tokens", &n.cache_write_tokens)) {
        return 0;
    }
    n.prompt_tokens = json_integer_value(json_object_get(usage, "input_tokens"));
    n.completion_tokens = json_integer_value(json_object_get(usage, "output_tokens"));
    n.total_tokens =
        n.prompt_tokens + n.cached_tokens + n.cache_write_tokens + n.completion_tokens;
    n.prompt_excludes_cache = 1;
    *u = n;
    return 1;
}

json_t *nebula_conv_anthropic_resp_to_chat(apr_pool_t *p, const json_t *resp)
{
    const json_t *content = json_object_get(resp, "content");
    const char *text = NULL, *thinking = NULL, *finish;
    json_t *out, *msg, *calls, *b, *choice;
    nebula_usage_t u;
    size_t i;

    if (!json_is_object(resp)) {
        return NULL;
    }
    calls = nebula_json_own(p, json_array());
    json_array_foreach(content, i, b)
    {
        const char *type = nebula_json_gets(b, "type", NULL);

        if (type == NULL) {
            continue;
        }
        if (!strcmp(type, "text") && nebula_json_gets(b, "text", NULL)) {
            text = join_text(p, text, "", nebula_json_gets(b, "text", NULL));
        }
        else if (!strcmp(type, "thinking") && nebula_json_gets(b, "thinking", NULL)) {
            thinking =
                join_text(p, thinking, "\n\n", nebula_json_gets(b, "thinking", NULL));
        }
        else if (!strcmp(type, "tool_use") && nebula_json_gets(b, "id", NULL) &&
                 nebula_json_gets(b, "name", NULL)) {
            const json_t *input = json_object_get(b, "input");
            char *args = json_is_object(input) ? nebula_json_dumps(p, input, 0) : NULL;

            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id",
                                                   nebula_json_gets(b, "id", NULL),
                                                   "type", "function", "function", "name",
                                                   nebula_json_gets(b, "name", NULL),
                                                   "arguments", args ? args : "{}"));
        }
    }
    msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content",
                        text                     ? json_string(text)
                        : json_array_size(calls) ? json_null()
                                                 : json_string(""));
    if (thinking != NULL) {
        json_object_set_new(msg, "reasoning_content", json_string(thinking));
    }
    if (json_array_size(calls)) {
        json_object_set(msg, "tool_calls", calls);
    }
    finish = a2c_finish(nebula_json_gets(resp, "stop_reason", NULL));
    choice = json_pack("{s:i, s:o, s:n, s:s}", "index", 0, "message", msg, "logprobs",
                       "finish_reason", finish ? finish : "stop");
    out = json_pack(
        "{s:s, s:s, s:I, s:s, s:[o]}", "id",
        nebula_json_gets(resp, "id", NULL) ? nebula_json_gets(resp, "id", NULL) : "",
        "object", "chat.completion", "created", (json_int_t)apr_time_sec(apr_time_now()),
        "model",
        nebula_json_gets(resp, "model", NULL) ? nebula_json_gets(resp, "model", NULL)
                                              : "",
        "choices", choice);
    if (nebula_conv_anthropic_usage(json_object_get(resp, "usage"), &u)) {
        json_object_set_new(out, "usage", nebula_conv_chat_usage_json(&u));
    }
    return nebula_json_own(p, out);
}

/* Anthropic usage for chat usage: input_tokens excludes cached reads. */
static json_t *c2a_usage_json(const nebula_usage_t *u)
{
    apr_int64_t input = u->prompt_tokens;

    if (!u->prompt_excludes_cache) {
        input -= u->cached_tokens;
    }
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)input,
                     "output_tokens", (json_int_t)u->completion_tokens,
                     "cache_read_input_tokens", (json_int_t)u->cached_tokens,
                     "cache_creation_input_tokens", (json_int_t)0);
}

json_t *nebula_conv_chat_resp_to_anthropic(apr_pool_t *p, const json_t *resp)
{
    const json_t *msg =
        nebula_json_getj((json_t *)resp, "choices", "#0", "message", NULL);
    const char *id = nebula_json_gets(resp, "id", NULL);
    const char *model = nebula_json_gets(resp, "model", NULL);
    const char *text = nebula_json_gets(msg, "content", NULL);
    json_t *out, *blocks, *call;
    nebula_usage_t u = {0};
    size_t i;

    if (!json_is_object(resp)) {
        return NULL;
    }
    blocks = json_array();
    if (text == NULL) {
        text = nebula_json_gets(msg, "refusal", NULL);
    }
    if (text != NULL && *text) {
        json_array_append_new(blocks,
                              json_pack("{s:s, s:s}", "type", "text", "text", text));
    }
    json_array_foreach(json_object_get(msg, "tool_calls"), i, call)
    {
        const char *cid = nebula_json_gets(call, "id", NULL);
        const char *name = nebula_json_gets(call, "function", "name", NULL);
        const char *args = nebula_json_gets(call, "function", "arguments", NULL);
        json_t *input = args ? nebula_json_parse(p, args, strlen(args), 0, NULL) : NULL;

        if (name == NULL) {
            continue;
        }
        json_array_append_new(
            blocks,
            json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id",
                      cid ? cid : apr_psprintf(p, "toolu_%" APR_SIZE_T_FMT, i), "name",
                      name, "input",
                      json_is_object(input) ? json_incref(input) : json_object()));
    }
    out = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:s, s:n}", "id",
        apr_pstrcat(p, "msg_", id ? id : "", NULL), "type", "message", "role",
        "assistant", "model", model ? model : "", "content", blocks, "stop_reason",
        c2a_stop(nebula_json_gets(resp, "choices", "#0", "finish_reason", NULL)),
        "stop_sequence");
    nebula_conv_chat_usage(json_object_get(resp, "usage"), &u);
    json_object_set_new(out, "usage", c2a_usage_json(&u));
    return nebula_json_own(p, out);
}

/* The Anthropic error type for an HTTP status. */
static const char *anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

json_t *nebula_conv_anthropic_error(apr_pool_t *p, int status, const char *message)
{
    json_t *err = json_pack("{s:s, s:o}", "type", anthropic_error_type(status), "message",
                            string_lossy(p, message));

    return nebula_json_own(p, json_pack("{s:s, s:o}", "type", "error", "error", err));
}

/* nebula_conv_responses.c: the OpenAI Responses API over a channel that only
 * speaks chat completions (nebula_conv_responses.h). Requests go Responses ->
 * chat, answers chat.completion -> Response object, streams chat chunks ->
 * Responses events. Owns the stream state machine (nebula_conv_c2r_t) and its
 * text buffers, all allocated in the pool it was created with. Shapes follow
 * openai-python's types/responses (Response, ResponseOutputMessage,
 * ResponseFunctionToolCall, ResponseUsage and the Response*Event models). */
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "nebula_conv_responses.h"
#include "nebula_json.h"
#include "nebula_buf.h"

/* ---- requests: Responses -> chat ----------------------------------------- */

/* One request conversion: the messages built so far and the error slot. */
typedef struct {
    apr_pool_t *p;
    const char **err;
    json_t *msgs;
    json_t *asst; /* the last message when it is an assistant one: function_call
                   * items that follow join its tool_calls */
} r2c_t;

static json_t *r2c_fail(r2c_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set *err (when not set yet) and return NULL. */
static json_t *r2c_fail(r2c_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err != NULL && *c->err == NULL) {
        va_start(ap, fmt);
        *c->err = apr_pvsprintf(c->p, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* A JSON value's type name or "type" member, for error messages. */
static const char *type_of(const json_t *j)
{
    const char *t = nebula_json_gets(j, "type", NULL);

    return t != NULL ? t : "(none)";
}

static void r2c_push(r2c_t *c, json_t *msg, int is_asst)
{
    json_array_append_new(c->msgs, msg);
    c->asst = is_asst ? msg : NULL;
}

/* input_image -> an image_url part; NULL (and *err) for file_id images. */
static json_t *r2c_image(r2c_t *c, size_t i, const json_t *part)
{
    const char *url = nebula_json_gets(part, "image_url", NULL);
    const char *detail = nebula_json_gets(part, "detail", NULL);
    json_t *img;

    if (url == NULL) {
        if (json_is_string(json_object_get(part, "file_id"))) {
            return r2c_fail(c,
                            "input[%" APR_SIZE_T_FMT
                            "]: input_image with file_id is not supported "
                            "on this channel: send image_url",
                            i);
        }
        return r2c_fail(c, "input[%" APR_SIZE_T_FMT "]: input_image needs image_url", i);
    }
    img = json_pack("{s:s}", "url", url);
    if (detail != NULL) {
        json_object_set_new(img, "detail", json_string(detail));
    }
    return json_pack("{s:s, s:o}", "type", "image_url", "image_url", img);
}

/* A user message's content: a string as it is, parts input_text -> text and
 * input_image -> image_url. */
static json_t *r2c_user_content(r2c_t *c, size_t i, const json_t *content)
{
    json_t *parts, *part, *conv;
    size_t k;

    if (json_is_string(content)) {
        return json_deep_copy(content);
    }
    if (!json_is_array(content)) {
        return r2c_fail(
            c, "input[%" APR_SIZE_T_FMT "]: content must be a string or an array", i);
    }
    parts = json_array();
    json_array_foreach(content, k, part)
    {
        const char *type = nebula_json_gets(part, "type", NULL);
        const char *text = nebula_json_gets(part, "text", NULL);

        if (type != NULL && !strcmp(type, "input_text") && text != NULL) {
            conv = json_pack("{s:s, s:s}", "type", "text", "text", text);
        }
        else if (type != NULL && !strcmp(type, "input_image")) {
            conv = r2c_image(c, i, part);
        }
        else {
            conv = r2c_fail(c,
                            "input[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT
                            "]: part type '%.64s' is not supported on this channel",
                            i, k, type_of(part));
        }
        if (conv == NULL) {
            json_decref(parts);
            return NULL;
        }
        json_array_append_new(parts, conv);
    }
    return parts;
}

/* The text of a content value that chat takes as text only (system and
 * assistant messages, tool results): a string, or text parts joined. Parts
 * of type refusal go to *refusal when @a refusal is not NULL. */
static int r2c_text(r2c_t *c, const char *where, const json_t *content, const char **text,
                    const char **refusal)
{
    apr_array_header_t *texts = apr_array_make(c->p, 4, sizeof(const char *));
    const json_t *part;
    size_t k;

    if (json_is_string(content)) {
        *text = json_string_value(content);
        return 1;
    }
    if (!json_is_array(content)) {
        r2c_fail(c, "%s: content must be a string or an array", where);
        return 0;
    }
    json_array_foreach(content, k, part)
    {
        const char *type = nebula_json_gets(part, "type", NULL);
        const char *s = nebula_json_gets(part, "text", NULL);

        if (type != NULL && refusal != NULL && !strcmp(type, "refusal") &&
            (s = nebula_json_gets(part, "refusal", NULL)) != NULL) {
            *refusal = s;
        }
        else if (type != NULL && s != NULL &&
                 (!strcmp(type, "input_text") || !strcmp(type, "output_text"))) {
            APR_ARRAY_PUSH(texts, const char *) = s;
        }
        else {
            r2c_fail(c,
                     "%s.content[%" APR_SIZE_T_FMT
                     "]: part type '%.64s' is not supported here",
                     where, k, type_of(part));
            return 0;
        }
    }
    *text = texts->nelts ? apr_array_pstrcat(c->p, texts, '\0') : NULL;
    return 1;
}

/* A message item (type "message", or any object with a role). */
static int r2c_message(r2c_t *c, size_t i, const json_t *item)
{
    const char *role = nebula_json_gets(item, "role", NULL);
    const json_t *content = json_object_get(item, "content");
    const char *where = apr_psprintf(c->p, "input[%" APR_SIZE_T_FMT "]", i);
    const char *text = NULL, *refusal = NULL;
    json_t *msg;

    if (role == NULL) {
        return r2c_fail(c, "%s: a message needs a role", where) != NULL;
    }
    if (!strcmp(role, "user")) {
        json_t *conv = r2c_user_content(c, i, content);

        if (conv == NULL) {
            return 0;
        }
        r2c_push(c, json_pack("{s:s, s:o}", "role", "user", "content", conv), 0);
        return 1;
    }
    if (!strcmp(role, "system") || !strcmp(role, "developer")) {
        /* chat upstreams that are not OpenAI know no "developer" role */
        if (!r2c_text(c, where, content, &text, NULL)) {
            return 0;
        }
        r2c_push(
            c, json_pack("{s:s, s:s}", "role", "system", "content", text ? text : ""), 0);
        return 1;
    }
    if (!strcmp(role, "assistant")) {
        if (!r2c_text(c, where, content, &text, &refusal)) {
            return 0;
        }
        msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                        text != NULL ? json_string(text) : json_null());
        if (refusal != NULL) {
            json_object_set_new(msg, "refusal", json_string(refusal));
        }
        r2c_push(c, msg, 1);
        return 1;
    }
    return r2c_fail(c, "%s: role '%.64s' is not supported", where, role) != NULL;
}

/* function_call -> a tool call of the preceding assistant message (a new one
 * when the previous message is not an assistant's). */
static int r2c_function_call(r2c_t *c, size_t i, const json_t *item)
{
    const char *call_id = nebula_json_gets(item, "call_id", NULL);
    const char *name = nebula_json_gets(item, "name", NULL);
    const char *args = nebula_json_gets(item, "arguments", NULL);
    json_t *calls;

    if (call_id == NULL || name == NULL || args == NULL) {
        return r2c_fail(c,
                        "input[%" APR_SIZE_T_FMT
                        "]: function_call needs call_id, name and arguments (strings)",
                        i) != NULL;
    }
    if (c->asst == NULL) {
        r2c_push(c, json_pack("{s:s, s:n}", "role", "assistant", "content"), 1);
    }
    if (c->asst == NULL) {
        return r2c_fail(c, "out of memory") != NULL;
    }
    calls = json_object_get(c->asst, "tool_calls");
    if (calls == NULL) {
        json_object_set_new(c->asst, "tool_calls", calls = json_array());
    }
    json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", call_id,
                                           "type", "function", "function", "name", name,
                                           "arguments", args));
    return 1;
}

/* function_call_output -> a tool message; list outputs must be text. */
static int r2c_function_output(r2c_t *c, size_t i, const json_t *item)
{
    const char *call_id = nebula_json_gets(item, "call_id", NULL);
    const char *where = apr_psprintf(c->p, "input[%" APR_SIZE_T_FMT "].output", i);
    const char *text = NULL;

    if (call_id == NULL) {
        return r2c_fail(c,
                        "input[%" APR_SIZE_T_FMT "]: function_call_output needs call_id",
                        i) != NULL;
    }
    if (!r2c_text(c, where, json_object_get(item, "output"), &text, NULL)) {
        return 0;
    }
    r2c_push(c,
             json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", call_id,
                       "content", text ? text : ""),
             0);
    return 1;
}

static int r2c_input(r2c_t *c, const json_t *input)
{
    const json_t *item;
    size_t i;

    if (json_is_string(input)) {
        r2c_push(
            c, json_pack("{s:s, s:o}", "role", "user", "content", json_deep_copy(input)),
            0);
        return 1;
    }
    if (!json_is_array(input)) {
        return r2c_fail(c, "input must be a string or an array of items") != NULL;
    }
    json_array_foreach(input, i, item)
    {
        const char *type = nebula_json_gets(item, "type", NULL);
        int ok;

        if (!json_is_object(item)) {
            return r2c_fail(c, "input[%" APR_SIZE_T_FMT "] must be an object", i) != NULL;
        }
        if (type == NULL && json_object_get(item, "role") != NULL) {
            type = "message"; /* EasyInputMessage: type is optional */
        }
        if (type == NULL) {
            ok = r2c_fail(
                     c, "input[%" APR_SIZE_T_FMT "]: item type '(none)' is not supported",
                     i) != NULL;
        }
        else if (!strcmp(type, "message")) {
            ok = r2c_message(c, i, item);
        }
        else if (!strcmp(type, "function_call")) {
            ok = r2c_function_call(c, i, item);
        }
        else if (!strcmp(type, "function_call_output")) {
            ok = r2c_function_output(c, i, item);
        }
        else if (!strcmp(type, "reasoning")) {
            ok = 1; /* a previous answer's reasoning: chat has no place for it */
        }
        else if (!strcmp(type, "item_reference")) {
            ok = r2c_fail(c,
                          "input[%" APR_SIZE_T_FMT
                          "]: item_reference is not supported: this gateway "
                          "stores no responses",
                          i) != NULL;
        }
        else {
            ok = r2c_fail(c,
                          "input[%" APR_SIZE_T_FMT
                          "]: item type '%.64s' is not supported on this channel",
                          i, type_of(item)) != NULL;
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* tools: only type "function" (flat in Responses, nested in chat). */
static json_t *r2c_tools(r2c_t *c, const json_t *tools)
{
    static const char *const copied[] = {"description", "parameters", "strict", NULL};
    json_t *out, *fn;
    const json_t *tool;
    size_t i;
    int k;

    if (!json_is_array(tools)) {
        return r2c_fail(c, "tools must be an array");
    }
    out = json_array();
    json_array_foreach(tools, i, tool)
    {
        const char *type = nebula_json_gets(tool, "type", NULL);
        const char *name = nebula_json_gets(tool, "name", NULL);

        if (type == NULL || strcmp(type, "function")) {
            json_decref(out);
            return r2c_fail(c,
                            "tools[%" APR_SIZE_T_FMT
                            "]: tool type '%.64s' is not supported on this "
                            "channel (only function tools)",
                            i, type_of(tool));
        }
        if (name == NULL) {
            json_decref(out);
            return r2c_fail(c, "tools[%" APR_SIZE_T_FMT "]: a function tool needs a name",
                            i);
        }
        fn = json_pack("{s:s}", "name", name);
        for (k = 0; copied[k] != NULL; ++k) {
            const json_t *v = json_object_get(tool, copied[k]);

            if (v != NULL && !json_is_null(v)) {
                json_object_set_new(fn, copied[k], json_deep_copy(v));
            }
        }
        json_array_append_new(
            out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

static json_t *r2c_tool_choice(r2c_t *c, const json_t *tc)
{
    const char *s = json_string_value(tc);
    const char *name = nebula_json_gets(tc, "name", NULL);

    if (s != NULL &&
        (!strcmp(s, "none") || !strcmp(s, "auto") || !strcmp(s, "required"))) {
        return json_string(s);
    }
    if (s == NULL && name != NULL && !strcmp(type_of(tc), "function")) {
        return json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
    }
    return r2c_fail(c, "tool_choice '%.64s' is not supported on this channel",
                    s != NULL ? s : type_of(tc));
}

/* text.format -> response_format; *out stays NULL for plain text. */
static int r2c_text_format(r2c_t *c, const json_t *text, json_t **out)
{
    const json_t *fmt = json_object_get(text, "format");
    const char *type = nebula_json_gets(fmt, "type", NULL);
    const char *name = nebula_json_gets(fmt, "name", NULL);
    json_t *js;

    *out = NULL;
    if (fmt == NULL || json_is_null(fmt) || (type != NULL && !strcmp(type, "text"))) {
        return 1;
    }
    if (type != NULL && !strcmp(type, "json_object")) {
        *out = json_pack("{s:s}", "type", "json_object");
        return 1;
    }
    if (type == NULL || strcmp(type, "json_schema")) {
        return r2c_fail(c, "text.format type '%.64s' is not supported", type_of(fmt)) !=
               NULL;
    }
    if (name == NULL || !json_is_object(json_object_get(fmt, "schema"))) {
        return r2c_fail(c, "text.format json_schema needs a name and a schema") != NULL;
    }
    js = json_pack("{s:s, s:o}", "name", name, "schema",
                   json_deep_copy(json_object_get(fmt, "schema")));
    if (json_is_string(json_object_get(fmt, "description"))) {
        json_object_set_new(js, "description",
                            json_deep_copy(json_object_get(fmt, "description")));
    }
    if (json_is_boolean(json_object_get(fmt, "strict"))) {
        json_object_set_new(js, "strict", json_deep_copy(json_object_get(fmt, "strict")));
    }
    *out = json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js);
    return 1;
}

/* Present and not null. */
static const json_t *given(const json_t *req, const char *key)
{
    const json_t *v = json_object_get(req, key);

    return json_is_null(v) ? NULL : v;
}

/* The parts of a request the gateway cannot serve without state. */
static int r2c_refuse_state(r2c_t *c, const json_t *req)
{
    if (given(req, "previous_response_id") != NULL) {
        return r2c_fail(c, "previous_response_id is not supported on this channel: this "
                           "gateway stores no responses; send the whole conversation "
                           "in input") != NULL;
    }
    if (given(req, "conversation") != NULL) {
        return r2c_fail(c, "conversation is not supported on this channel: send the "
                           "whole conversation in input") != NULL;
    }
    if (nebula_json_getb(req, 0, "background", NULL)) {
        return r2c_fail(c, "background responses are not supported on this channel") !=
               NULL;
    }
    if (given(req, "prompt") != NULL) {
        return r2c_fail(c, "stored prompt templates are not supported on this channel") !=
               NULL;
    }
    return 1;
}

/* Tools, tool_choice and text.format into @a chat. */
static int r2c_tooling(r2c_t *c, const json_t *req, json_t *chat)
{
    const json_t *v;
    json_t *conv;

    if ((v = given(req, "tools")) != NULL) {
        if ((conv = r2c_tools(c, v)) == NULL) {
            return 0;
        }
        if (json_array_size(conv) > 0) {
            json_object_set_new(chat, "tools", conv);
        }
        else {
            json_decref(conv);
        }
    }
    if ((v = given(req, "tool_choice")) != NULL) {
        if ((conv = r2c_tool_choice(c, v)) == NULL) {
            return 0;
        }
        json_object_set_new(chat, "tool_choice", conv);
    }
    if ((v = given(req, "text")) != NULL) {
        if (!r2c_text_format(c, v, &conv)) {
            return 0;
        }
        if (conv != NULL) {
            json_object_set_new(chat, "response_format", conv);
        }
    }
    return 1;
}

json_t *nebula_conv_responses_req_to_chat(apr_pool_t *p, const json_t *req,
                                          const char **err)
{
    static const char *const same[] = {"model", "temperature",         "top_p",
                                       "user",  "parallel_tool_calls", NULL};
    r2c_t c = {p, err, NULL, NULL};
    const json_t *v;
    json_t *chat;
    int k;

    if (err != NULL) {
        *err = NULL;
    }
    if (!json_is_object(req)) {
        return r2c_fail(&c, "the request body must be a JSON object");
    }
    if (!r2c_refuse_state(&c, req)) {
        return NULL;
    }
    chat = json_object();
    c.msgs = json_array();
    json_object_set_new(chat, "messages", c.msgs);
    for (k = 0; same[k] != NULL; ++k) {
        if ((v = given(req, same[k])) != NULL) {
            json_object_set_new(chat, same[k], json_deep_copy(v));
        }
    }
    if ((v = given(req, "instructions")) != NULL) {
        if (!json_is_string(v)) {
            json_decref(chat);
            return r2c_fail(&c, "instructions must be a string");
        }
        if (json_string_length(v) > 0) {
            r2c_push(
                &c,
                json_pack("{s:s, s:o}", "role", "system", "content", json_deep_copy(v)),
                0);
        }
    }
    if ((v = given(req, "input")) == NULL) {
        json_decref(chat);
        return r2c_fail(&c, "input is required");
    }
    if (!r2c_input(&c, v) || !r2c_tooling(&c, req, chat)) {
        json_decref(chat);
        return NULL;
    }
    if ((v = given(req, "max_output_tokens")) != NULL) {
        json_object_set_new(chat, "max_tokens", json_deep_copy(v));
    }
    if (nebula_json_getb(req, 0, "stream", NULL)) {
        json_object_set_new(chat, "stream", json_true());
        json_object_set_new(chat, "stream_options",
                            json_pack("{s:b}", "include_usage", 1));
    }
    /* reasoning, store, metadata, include, truncation: nothing in chat */
    return nebula_json_own(p, chat);
}

/* ---- answers: chat.completion -> Response --------------------------------- */

/* A Response's usage object. */
static json_t *usage_json(const nebula_usage_t *u, apr_int64_t reasoning)
{
    apr_int64_t input = u->prompt_tokens;

    if (u->prompt_excludes_cache) {
        input += u->cached_tokens + u->cache_write_tokens;
    }
    return json_pack("{s:I, s:{s:I, s:I}, s:I, s:{s:I}, s:I}", "input_tokens",
                     (json_int_t)input, "input_tokens_details", "cached_tokens",
                     (json_int_t)u->cached_tokens, "cache_write_tokens",
                     (json_int_t)u->cache_write_tokens, "output_tokens",
                     (json_int_t)u->completion_tokens, "output_tokens_details",
                     "reasoning_tokens", (json_int_t)reasoning, "total_tokens",
                     (json_int_t)(input + u->completion_tokens));
}

/* A request member echoed in the Response, or @a dflt (stolen) when absent. */
static void echo(json_t *r, const json_t *req, const char *key, json_t *dflt)
{
    const json_t *v = given(req, key);

    if (v != NULL) {
        json_decref(dflt);
        json_object_set_new(r, key, json_deep_copy(v));
    }
    else {
        json_object_set_new(r, key, dflt);
    }
}

/* A Response with status in_progress, no output and no usage; the request's
 * settings echoed (with the API's defaults when the request had none). */
static json_t *resp_base(const json_t *req, const char *id, apr_int64_t created,
                         const char *model)
{
    const char *instructions = nebula_json_gets(req, "instructions", NULL);
    json_t *r =
        json_pack("{s:s, s:s, s:I, s:s, s:b, s:n, s:n, s:n}", "id", id, "object",
                  "response", "created_at", (json_int_t)created, "status", "in_progress",
                  "background", 0, "completed_at", "error", "incomplete_details");

    json_object_set_new(r, "instructions",
                        instructions ? json_string(instructions) : json_null());
    json_object_set_new(r, "max_output_tokens",
                        json_is_integer(json_object_get(req, "max_output_tokens"))
                            ? json_deep_copy(json_object_get(req, "max_output_tokens"))
                            : json_null());
    json_object_set_new(r, "model", json_string(model));
    json_object_set_new(r, "output", json_array());
    echo(r, req, "parallel_tool_calls", json_true());
    json_object_set_new(r, "previous_response_id", json_null());
    echo(r, req, "reasoning", json_null());
    json_object_set_new(r, "store", json_false()); /* nothing is kept here */
    echo(r, req, "temperature", json_real(1.0));
    echo(r, req, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    echo(r, req, "tool_choice", json_string("auto"));
    echo(r, req, "tools", json_array());
    echo(r, req, "top_p", json_real(1.0));
    echo(r, req, "truncation", json_string("disabled"));
    json_object_set_new(r, "usage", json_null());
    echo(r, req, "user", json_null());
    echo(r, req, "metadata", json_object());
    return r;
}

/* completed, or incomplete (finish_reason length or content_filter). */
static const char *incomplete_reason(const char *finish)
{
    if (finish == NULL) {
        return NULL;
    }
    if (!strcmp(finish, "length")) {
        return "max_output_tokens";
    }
    if (!strcmp(finish, "content_filter")) {
        return "content_filter";
    }
    return NULL;
}

static void resp_set_status(json_t *r, const char *status, const char *reason)
{
    json_object_set_new(r, "status", json_string(status));
    json_object_set_new(r, "incomplete_details",
                        reason ? json_pack("{s:s}", "reason", reason) : json_null());
    json_object_set_new(r, "completed_at",
                        !strcmp(status, "completed")
                            ? json_integer((json_int_t)apr_time_sec(apr_time_now()))
                            : json_null());
}

static json_t *text_part(const char *text, apr_size_t len)
{
    return json_pack("{s:s, s:s%, s:[], s:[]}", "type", "output_text", "text", text, len,
                     "annotations", "logprobs");
}

static json_t *refusal_part(const char *text, apr_size_t len)
{
    return json_pack("{s:s, s:s%}", "type", "refusal", "refusal", text, len);
}

static json_t *message_item(const char *id, const char *status, json_t *content)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", "message", "status",
                     status, "role", "assistant", "content", content);
}

static json_t *call_item(const char *id, const char *status, const char *call_id,
                         const char *name, const char *args, apr_size_t args_len)
{
    return json_pack("{s:s, s:s, s:s, s:s%, s:s, s:s}", "id", id, "type", "function_call",
                     "status", status, "arguments", args, args_len, "call_id", call_id,
                     "name", name);
}

/* "resp_X" -> "X", the tail item ids share with their response. */
static const char *id_tail(const char *response_id)
{
    if (response_id == NULL) {
        return "0";
    }
    return strncmp(response_id, "resp_", 5) ? response_id : response_id + 5;
}

/* The assistant text of a chat message: a string, or text parts joined. */
static const char *chat_text(apr_pool_t *p, const json_t *content)
{
    apr_array_header_t *texts;
    const json_t *part;
    size_t k;

    if (json_is_string(content)) {
        return json_string_value(content);
    }
    if (!json_is_array(content)) {
        return NULL;
    }
    texts = apr_array_make(p, 4, sizeof(const char *));
    json_array_foreach(content, k, part)
    {
        const char *s = nebula_json_gets(part, "text", NULL);

        if (s != NULL && !strcmp(type_of(part), "text")) {
            APR_ARRAY_PUSH(texts, const char *) = s;
        }
    }
    return texts->nelts ? apr_array_pstrcat(p, texts, '\0') : NULL;
}

/* The output items of one chat message. */
static json_t *resp_output(apr_pool_t *p, const json_t *msg, const char *tail,
                           const char *status)
{
    const char *text = chat_text(p, json_object_get(msg, "content"));
    const char *refusal = nebula_json_gets(msg, "refusal", NULL);
    const json_t *calls = json_object_get(msg, "tool_calls");
    json_t *output = json_array(), *content;
    const json_t *tc;
    size_t k;

    if (text != NULL || refusal != NULL || json_array_size(calls) == 0) {
        content = json_array();
        if (text != NULL || refusal == NULL) {
            json_array_append_new(content,
                                  text_part(text ? text : "", text ? strlen(text) : 0));
        }
        if (refusal != NULL) {
            json_array_append_new(content, refusal_part(refusal, strlen(refusal)));
        }
        json_array_append_new(
            output, message_item(apr_psprintf(p, "msg_%s_0", tail), status, content));
    }
    json_array_foreach(calls, k, tc)
    {
        const char *name = nebula_json_gets(tc, "function", "name", NULL);
        const char *args = nebula_json_gets(tc, "function", "arguments", NULL);
        const char *call_id = nebula_json_gets(tc, "id", NULL);
        size_t idx = json_array_size(output);

        if (name == NULL) {
            continue; /* not a function call */
        }
        args = args ? args : "";
        json_array_append_new(
            output,
            call_item(apr_psprintf(p, "fc_%s_%" APR_SIZE_T_FMT "", tail, idx), status,
                      call_id ? call_id
                              : apr_psprintf(p, "call_%s_%" APR_SIZE_T_FMT "", tail, idx),
                      name, args, strlen(args)));
    }
    return output;
}

json_t *nebula_conv_chat_resp_to_responses(apr_pool_t *p, const json_t *resp,
                                           const json_t *req, const char *response_id)
{
    const json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    const char *model = nebula_json_gets(req, "model", NULL);
    const char *reason =
        incomplete_reason(nebula_json_gets(choice, "finish_reason", NULL));
    const char *status = reason ? "incomplete" : "completed";
    const json_t *usage = json_object_get(resp, "usage");
    apr_int64_t created = nebula_json_geti(resp, -1, "created", NULL);
    nebula_usage_t u;
    json_t *r;

    if (model == NULL) {
        model = nebula_json_gets(resp, "model", NULL);
    }
    if (created < 0) {
        created = apr_time_sec(apr_time_now());
    }
    r = resp_base(req, response_id ? response_id : "resp_0", created, model ? model : "");
    resp_set_status(r, status, reason);
    json_object_set_new(
        r, "output",
        resp_output(p, json_object_get(choice, "message"), id_tail(response_id), status));
    if (nebula_conv_chat_usage(usage, &u)) {
        json_object_set_new(
            r, "usage",
            usage_json(&u, nebula_json_geti(usage, 0, "completion_tokens_details",
                                            "reasoning_tokens", NULL)));
    }
    return nebula_json_own(p, r);
}

int nebula_conv_responses_usage(const json_t *usage, nebula_usage_t *u)
{
    nebula_usage_t n = {0};
    const json_t *in = json_object_get(usage, "input_tokens");
    const json_t *out = json_object_get(usage, "output_tokens");
    const json_t *total = json_object_get(usage, "total_tokens");

    if (!json_is_object(usage) || !json_is_integer(in) || !json_is_integer(out)) {
        return 0;
    }
    n.prompt_tokens = json_integer_value(in);
    n.completion_tokens = json_integer_value(out);
    n.total_tokens = json_is_integer(total) ? json_integer_value(total) : 0;
    if (n.total_tokens == 0) {
        n.total_tokens = n.prompt_tokens + n.completion_tokens;
    }
    n.cached_tokens =
        nebula_json_geti(usage, 0, "input_tokens_details", "cached_tokens", NULL);
    *u = n;
    return 1;
}

/* ---- streams: chat chunks -> Responses events ----------------------------- */


enum { PART_TEXT, PART_REFUSAL };
enum { ITEM_MESSAGE, ITEM_CALL };

typedef struct {
    int kind; /* PART_TEXT or PART_REFUSAL */
    nebula_buf_t text;
} c2r_part_t;

typedef struct {
    int type; /* ITEM_MESSAGE or ITEM_CALL */
    int output_index;
    int open;
    const char *status; /* once closed */
    const char *id;
    apr_array_header_t *parts; /* message: c2r_part_t; the last is open when
                                * part_open */
    int part_open;
    apr_int64_t chat_index; /* call: the chat tool_calls index */
    const char *call_id;
    nebula_buf_t name;
    nebula_buf_t args;
} c2r_item_t;

struct nebula_conv_c2r_t {
    apr_pool_t *p;
    json_t *base;     /* resp_base() of the request, owned by p */
    const char *tail; /* of the response id, for item ids */
    apr_int64_t seq;
    int started;
    int ended;
    const char *finish;        /* the last finish_reason seen */
    apr_array_header_t *items; /* c2r_item_t *, in output order */
    c2r_item_t *msg;           /* the open message item, or NULL */
};


/* Emit @a type with the members of @a data (stolen), "type" first and
 * "sequence_number" last. */
static void c2r_emit(nebula_conv_c2r_t *st, apr_array_header_t *out, const char *type,
                     json_t *data)
{
    json_t *ev = json_pack("{s:s}", "type", type);

    json_object_update(ev, data);
    json_decref(data);
    json_object_set_new(ev, "sequence_number", json_integer((json_int_t)st->seq++));
    nebula_conv_emit(st->p, out, type, ev);
}

nebula_conv_c2r_t *nebula_conv_c2r_create(apr_pool_t *p, const json_t *req,
                                          const char *response_id)
{
    nebula_conv_c2r_t *st = apr_pcalloc(p, sizeof(*st));
    const char *model = nebula_json_gets(req, "model", NULL);

    st->p = p;
    st->base =
        nebula_json_own(p, resp_base(req, response_id ? response_id : "resp_0",
                                     apr_time_sec(apr_time_now()), model ? model : ""));
    st->tail = apr_pstrdup(p, id_tail(response_id));
    st->items = apr_array_make(p, 4, sizeof(c2r_item_t *));
    return st;
}

static json_t *c2r_part_json(const c2r_part_t *pt)
{
    return pt->kind == PART_TEXT ? text_part(nebula_buf_str(&pt->text), pt->text.len)
                                 : refusal_part(nebula_buf_str(&pt->text), pt->text.len);
}

/* An output item as it stands. */
static json_t *c2r_item_json(const c2r_item_t *it)
{
    const char *status = it->open ? "in_progress" : it->status;
    json_t *content;
    int k;

    if (it->type == ITEM_CALL) {
        return call_item(it->id, status, it->call_id, nebula_buf_str(&it->name),
                         nebula_buf_str(&it->args), it->args.len);
    }
    content = json_array();
    for (k = 0; k < it->parts->nelts; ++k) {
        json_array_append_new(content,
                              c2r_part_json(&APR_ARRAY_IDX(it->parts, k, c2r_part_t)));
    }
    return message_item(it->id, status, content);
}

/* The Response as it stands, with @a status. */
static json_t *c2r_snapshot(const nebula_conv_c2r_t *st, const char *status,
                            const char *reason)
{
    json_t *r = json_deep_copy(st->base), *output = json_array();
    int k;

    for (k = 0; k < st->items->nelts; ++k) {
        json_array_append_new(output,
                              c2r_item_json(APR_ARRAY_IDX(st->items, k, c2r_item_t *)));
    }
    json_object_set_new(r, "output", output);
    resp_set_status(r, status, reason);
    return r;
}

static void c2r_start(nebula_conv_c2r_t *st, apr_array_header_t *out)
{
    if (st->started) {
        return;
    }
    st->started = 1;
    c2r_emit(st, out, "response.created",
             json_pack("{s:o}", "response", c2r_snapshot(st, "in_progress", NULL)));
    c2r_emit(st, out, "response.in_progress",
             json_pack("{s:o}", "response", c2r_snapshot(st, "in_progress", NULL)));
}

static c2r_item_t *c2r_item_add(nebula_conv_c2r_t *st, int type)
{
    c2r_item_t *it = apr_pcalloc(st->p, sizeof(*it));

    it->type = type;
    it->open = 1;
    it->output_index = st->items->nelts;
    it->id = apr_psprintf(st->p, "%s_%s_%d", type == ITEM_CALL ? "fc" : "msg", st->tail,
                          it->output_index);
    if (type == ITEM_MESSAGE) {
        it->parts = apr_array_make(st->p, 2, sizeof(c2r_part_t));
    }
    APR_ARRAY_PUSH(st->items, c2r_item_t *) = it;
    return it;
}

static void c2r_item_added(nebula_conv_c2r_t *st, apr_array_header_t *out, c2r_item_t *it)
{
    c2r_emit(st, out, "response.output_item.added",
             json_pack("{s:i, s:o}", "output_index", it->output_index, "item",
                       c2r_item_json(it)));
}

/* Close the message's open content part: .done, then content_part.done. */
static void c2r_part_close(nebula_conv_c2r_t *st, apr_array_header_t *out, c2r_item_t *it)
{
    int idx = it->parts->nelts - 1;
    const c2r_part_t *pt = &APR_ARRAY_IDX(it->parts, idx, c2r_part_t);

    if (!it->part_open) {
        return;
    }
    it->part_open = 0;
    if (pt->kind == PART_TEXT) {
        c2r_emit(st, out, "response.output_text.done",
                 json_pack("{s:s, s:i, s:i, s:s%, s:[]}", "item_id", it->id,
                           "output_index", it->output_index, "content_index", idx, "text",
                           nebula_buf_str(&pt->text), pt->text.len, "logprobs"));
    }
    else {
        c2r_emit(st, out, "response.refusal.done",
                 json_pack("{s:s, s:i, s:i, s:s%}", "item_id", it->id, "output_index",
                           it->output_index, "content_index", idx, "refusal",
                           nebula_buf_str(&pt->text), pt->text.len));
    }
    c2r_emit(st, out, "response.content_part.done",
             json_pack("{s:s, s:i, s:i, s:o}", "item_id", it->id, "output_index",
                       it->output_index, "content_index", idx, "part",
                       c2r_part_json(pt)));
}

static void c2r_item_close(nebula_conv_c2r_t *st, apr_array_header_t *out, c2r_item_t *it)
{
    if (!it->open) {
        return;
    }
    if (it->type == ITEM_MESSAGE) {
        c2r_part_close(st, out, it);
        if (st->msg == it) {
            st->msg = NULL;
        }
    }
    else {
        c2r_emit(st, out, "response.function_call_arguments.done",
                 json_pack("{s:s, s:i, s:s, s:s%}", "item_id", it->id, "output_index",
                           it->output_index, "name", nebula_buf_str(&it->name), "arguments",
                           nebula_buf_str(&it->args), it->args.len));
    }
    it->open = 0;
    it->status = incomplete_reason(st->finish) ? "incomplete" : "completed";
    c2r_emit(st, out, "response.output_item.done",
             json_pack("{s:i, s:o}", "output_index", it->output_index, "item",
                       c2r_item_json(it)));
}

/* Text or refusal text into the open message item (opened if need be). */
static void c2r_content(nebula_conv_c2r_t *st, apr_array_header_t *out, int kind,
                        const json_t *delta)
{
    const char *s = json_string_value(delta);
    apr_size_t n = json_string_length(delta);
    c2r_item_t *it = st->msg;
    c2r_part_t *pt;
    int idx;

    if (it == NULL) {
        it = st->msg = c2r_item_add(st, ITEM_MESSAGE);
        c2r_item_added(st, out, it);
    }
    if (it->part_open &&
        APR_ARRAY_IDX(it->parts, it->parts->nelts - 1, c2r_part_t).kind != kind) {
        c2r_part_close(st, out, it);
    }
    if (!it->part_open) {
        pt = apr_array_push(it->parts);
        memset(pt, 0, sizeof(*pt));
        pt->kind = kind;
        it->part_open = 1;
        c2r_emit(st, out, "response.content_part.added",
                 json_pack("{s:s, s:i, s:i, s:o}", "item_id", it->id, "output_index",
                           it->output_index, "content_index", it->parts->nelts - 1,
                           "part", c2r_part_json(pt)));
    }
    idx = it->parts->nelts - 1;
    pt = &APR_ARRAY_IDX(it->parts, idx, c2r_part_t);
    if (n == 0) {
        return;
    }
    nebula_buf_add(st->p, &pt->text, s, n);
    if (kind == PART_TEXT) {
        c2r_emit(st, out, "response.output_text.delta",
                 json_pack("{s:s, s:i, s:i, s:s%, s:[]}", "item_id", it->id,
                           "output_index", it->output_index, "content_index", idx,
                           "delta", s, n, "logprobs"));
    }
    else {
        c2r_emit(st, out, "response.refusal.delta",
                 json_pack("{s:s, s:i, s:i, s:s%}", "item_id", it->id, "output_index",
                           it->output_index, "content_index", idx, "delta", s, n));
    }
}

/* One entry of a chunk's delta.tool_calls. A call's first entry opens its
 * function_call item (closing the open message: output items follow one
 * another); calls stay open until the stream ends, so arguments of calls
 * that a provider interleaves still land in the right item. */
static void c2r_tool_call(nebula_conv_c2r_t *st, apr_array_header_t *out,
                          const json_t *tc, size_t pos)
{
    const json_t *index = json_object_get(tc, "index");
    apr_int64_t ci =
        json_is_integer(index) ? json_integer_value(index) : (apr_int64_t)pos;
    const char *name = nebula_json_gets(tc, "function", "name", NULL);
    const json_t *args = json_object_get(json_object_get(tc, "function"), "arguments");
    const char *id = nebula_json_gets(tc, "id", NULL);
    c2r_item_t *it = NULL;
    int k;

    for (k = 0; k < st->items->nelts; ++k) {
        c2r_item_t *cand = APR_ARRAY_IDX(st->items, k, c2r_item_t *);

        if (cand->type == ITEM_CALL && cand->open && cand->chat_index == ci) {
            it = cand;
            break;
        }
    }
    if (it == NULL) {
        if (st->msg != NULL) {
            c2r_item_close(st, out, st->msg);
        }
        it = c2r_item_add(st, ITEM_CALL);
        it->chat_index = ci;
        it->call_id = id ? apr_pstrdup(st->p, id)
                         : apr_psprintf(st->p, "call_%s_%d", st->tail, it->output_index);
        if (name != NULL) {
            nebula_buf_add(st->p, &it->name, name, strlen(name));
        }
        c2r_item_added(st, out, it);
    }
    else if (name != NULL && it->name.len == 0) {
        nebula_buf_add(st->p, &it->name, name, strlen(name));
    }
    if (json_is_string(args) && json_string_length(args) > 0) {
        nebula_buf_add(st->p, &it->args, json_string_value(args), json_string_length(args));
        c2r_emit(st, out, "response.function_call_arguments.delta",
                 json_pack("{s:s, s:i, s:s%}", "item_id", it->id, "output_index",
                           it->output_index, "delta", json_string_value(args),
                           json_string_length(args)));
    }
}

static void c2r_fail(nebula_conv_c2r_t *st, apr_array_header_t *out, const json_t *error)
{
    const char *msg = nebula_json_gets(error, "message", NULL);
    json_t *r;
    int k;

    if (msg == NULL) {
        msg = json_is_string(error) ? json_string_value(error) : "the upstream failed";
    }
    for (k = 0; k < st->items->nelts; ++k) {
        c2r_item_t *it = APR_ARRAY_IDX(st->items, k, c2r_item_t *);

        if (it->open) {
            it->open = 0;
            it->status = "incomplete";
        }
    }
    st->msg = NULL;
    r = c2r_snapshot(st, "failed", NULL);
    json_object_set_new(r, "error",
                        json_pack("{s:s, s:s}", "code", "server_error", "message", msg));
    c2r_emit(st, out, "response.failed", json_pack("{s:o}", "response", r));
    st->ended = 1;
}

void nebula_conv_c2r_feed(nebula_conv_c2r_t *st, const json_t *chunk,
                          apr_array_header_t *out)
{
    const json_t *choice, *delta, *calls, *tc;
    const char *finish;
    size_t i, k;

    if (st->ended || !json_is_object(chunk)) {
        return;
    }
    c2r_start(st, out);
    if (given(chunk, "error") != NULL) {
        c2r_fail(st, out, json_object_get(chunk, "error"));
        return;
    }
    json_array_foreach(json_object_get(chunk, "choices"), i, choice)
    {
        if (nebula_json_geti(choice, 0, "index", NULL) != 0) {
            continue; /* n > 1: the Responses API has one answer */
        }
        delta = json_object_get(choice, "delta");
        if (json_is_string(json_object_get(delta, "content")) &&
            json_string_length(json_object_get(delta, "content")) > 0) {
            c2r_content(st, out, PART_TEXT, json_object_get(delta, "content"));
        }
        if (json_is_string(json_object_get(delta, "refusal")) &&
            json_string_length(json_object_get(delta, "refusal")) > 0) {
            c2r_content(st, out, PART_REFUSAL, json_object_get(delta, "refusal"));
        }
        calls = json_object_get(delta, "tool_calls");
        json_array_foreach(calls, k, tc)
        {
            if (json_is_object(tc)) {
                c2r_tool_call(st, out, tc, k);
            }
        }
        if ((finish = nebula_json_gets(choice, "finish_reason", NULL)) != NULL) {
            st->finish = apr_pstrdup(st->p, finish);
        }
    }
}

void nebula_conv_c2r_finish(nebula_conv_c2r_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out)
{
    const char *reason;
    json_t *r;
    int k;

    if (st->ended) {
        return;
    }
    c2r_start(st, out);
    if (st->items->nelts == 0) {
        /* an empty answer is still one message, as in a complete answer */
        c2r_content(st, out, PART_TEXT, NULL);
    }
    for (k = 0; k < st->items->nelts; ++k) {
        c2r_item_close(st, out, APR_ARRAY_IDX(st->items, k, c2r_item_t *));
    }
    reason = incomplete_reason(st->finish);
    r = c2r_snapshot(st, reason ? "incomplete" : "completed", reason);
    if (usage != NULL) {
        json_object_set_new(r, "usage", usage_json(usage, 0));
    }
    c2r_emit(st, out, reason ? "response.incomplete" : "response.completed",
             json_pack("{s:o}", "response", r));
    st->ended = 1;
}

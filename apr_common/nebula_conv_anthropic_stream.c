/* nebula_conv_anthropic_stream.c: the two stream state machines of the
 * Anthropic converter (nebula_conv_anthropic.h): Anthropic events -> chat
 * chunks (a2c) and chat chunks -> Anthropic events (c2a). */
#include "nebula_conv_anthropic_int.h"

/* ======================================================================== */
/* streams: Anthropic events -> chat chunks                                 */
/* ======================================================================== */

#define A2C_MAX_BLOCKS 4096 /* content block indexes beyond this are ignored */

struct nebula_conv_a2c_t {
    apr_pool_t *p;
    const char *id;    /* "chatcmpl-" + the message id */
    const char *model; /* from message_start */
    apr_int64_t created;
    nebula_usage_t usage;
    int have_usage;
    int done;
    int tools;    /* tool calls opened so far: the next chat index */
    int *tool_of; /* per block index: its chat tool-call index, or -1 */
};

nebula_conv_a2c_t *nebula_conv_a2c_create(apr_pool_t *p)
{
    nebula_conv_a2c_t *st = apr_pcalloc(p, sizeof(*st));
    int i;

    st->p = p;
    st->id = "chatcmpl-";
    st->model = "";
    st->created = apr_time_sec(apr_time_now());
    st->tool_of = apr_palloc(p, sizeof(int) * A2C_MAX_BLOCKS);
    for (i = 0; i < A2C_MAX_BLOCKS; ++i) {
        st->tool_of[i] = -1;
    }
    return st;
}

/* Emit one chat.completion.chunk with @a delta (taken over). */
static void a2c_chunk(nebula_conv_a2c_t *st, json_t *delta, const char *finish,
                      apr_array_header_t *out)
{
    json_t *choice = json_pack("{s:i, s:o, s:n}", "index", 0, "delta", delta, "logprobs");

    json_object_set_new(choice, "finish_reason",
                        finish ? json_string(finish) : json_null());
    nebula_conv_emit(st->p, out, NULL,
                     json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", st->id, "object",
                               "chat.completion.chunk", "created",
                               (json_int_t)st->created, "model", st->model, "choices",
                               choice));
}

/* Merge a usage object (message_start's or message_delta's) into the
 * state: every count present replaces the one seen before. */
static void a2c_take_usage(nebula_conv_a2c_t *st, const json_t *usage)
{
    const json_t *v;

    if (!json_is_object(usage)) {
        return;
    }
    if (json_is_integer(v = json_object_get(usage, "input_tokens"))) {
        st->usage.prompt_tokens = json_integer_value(v);
        st->have_usage = 1;
    }
    if (json_is_integer(v = json_object_get(usage, "output_tokens"))) {
        st->usage.completion_tokens = json_integer_value(v);
        st->have_usage = 1;
    }
    if (json_is_integer(v = json_object_get(usage, "cache_read_input_tokens"))) {
        st->usage.cached_tokens = json_integer_value(v);
    }
    if (json_is_integer(v = json_object_get(usage, "cache_creation_input_tokens"))) {
        st->usage.cache_write_tokens = json_integer_value(v);
    }
}

/* The block index of an event, or -1 when absent or out of range. */
static int a2c_index(const json_t *data)
{
    apr_int64_t i = nebula_json_geti(data, -1, "index", NULL);

    return i >= 0 && i < A2C_MAX_BLOCKS ? (int)i : -1;
}

static void a2c_block_start(nebula_conv_a2c_t *st, const json_t *data,
                            apr_array_header_t *out)
{
    const json_t *block = json_object_get(data, "content_block");
    const char *type = nebula_json_gets(block, "type", NULL);
    const char *text;
    int idx = a2c_index(data);

    if (type == NULL || idx < 0) {
        return;
    }
    if (!strcmp(type, "tool_use")) {
        const char *id = nebula_json_gets(block, "id", NULL);
        const char *name = nebula_json_gets(block, "name", NULL);
        int tool = st->tools++;

        st->tool_of[idx] = tool;
        a2c_chunk(st,
                  json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index",
                            tool, "id", id ? id : "", "type", "function", "function",
                            "name", name ? name : "", "arguments", ""),
                  NULL, out);
    }
    else if (!strcmp(type, "text") && (text = nebula_json_gets(block, "text", NULL)) &&
             *text) {
        a2c_chunk(st, json_pack("{s:s}", "content", text), NULL, out);
    }
    else if (!strcmp(type, "thinking") &&
             (text = nebula_json_gets(block, "thinking", NULL)) && *text) {
        a2c_chunk(st, json_pack("{s:s}", "reasoning_content", text), NULL, out);
    }
}

static void a2c_block_delta(nebula_conv_a2c_t *st, const json_t *data,
                            apr_array_header_t *out)
{
    const json_t *delta = json_object_get(data, "delta");
    const char *type = nebula_json_gets(delta, "type", NULL);
    const char *s;
    int idx = a2c_index(data);

    if (type == NULL) {
        return;
    }
    if (!strcmp(type, "text_delta") && (s = nebula_json_gets(delta, "text", NULL))) {
        a2c_chunk(st, json_pack("{s:s}", "content", s), NULL, out);
    }
    else if (!strcmp(type, "thinking_delta") &&
             (s = nebula_json_gets(delta, "thinking", NULL))) {
        a2c_chunk(st, json_pack("{s:s}", "reasoning_content", s), NULL, out);
    }
    else if (!strcmp(type, "input_json_delta") &&
             (s = nebula_json_gets(delta, "partial_json", NULL)) && idx >= 0 &&
             st->tool_of[idx] >= 0 && *s) {
        a2c_chunk(st,
                  json_pack("{s:[{s:i, s:{s:s}}]}", "tool_calls", "index",
                            st->tool_of[idx], "function", "arguments", s),
                  NULL, out);
    }
    /* signature_delta and citations_delta have no chat equivalent */
}

void nebula_conv_a2c_feed(nebula_conv_a2c_t *st, const char *event, const json_t *data,
                          apr_array_header_t *out)
{
    const char *name = event ? event : nebula_json_gets(data, "type", NULL);

    if (name == NULL || !json_is_object(data)) {
        return;
    }
    if (!strcmp(name, "message_start")) {
        const json_t *msg = json_object_get(data, "message");
        const char *id = nebula_json_gets(msg, "id", NULL);
        const char *model = nebula_json_gets(msg, "model", NULL);

        st->id = apr_pstrcat(st->p, "chatcmpl-", id ? id : "", NULL);
        st->model = apr_pstrdup(st->p, model ? model : "");
        a2c_take_usage(st, json_object_get(msg, "usage"));
        a2c_chunk(st, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL,
                  out);
    }
    else if (!strcmp(name, "content_block_start")) {
        a2c_block_start(st, data, out);
    }
    else if (!strcmp(name, "content_block_delta")) {
        a2c_block_delta(st, data, out);
    }
    else if (!strcmp(name, "message_delta")) {
        const char *stop = nebula_json_gets(data, "delta", "stop_reason", NULL);

        a2c_take_usage(st, json_object_get(data, "usage"));
        if (stop != NULL) {
            a2c_chunk(st, json_object(), a2c_finish(stop), out);
        }
    }
    else if (!strcmp(name, "message_stop")) {
        st->done = 1;
    }
    else if (!strcmp(name, "error")) {
        const char *msg = nebula_json_gets(data, "error", "message", NULL);
        const char *type = nebula_json_gets(data, "error", "type", NULL);

        nebula_conv_emit(
            st->p, out, NULL,
            json_pack("{s:{s:o, s:s, s:n, s:n}}", "error", "message",
                      string_lossy(st->p, msg ? msg : "The upstream failed."), "type",
                      type ? type : "api_error", "param", "code"));
    }
    /* ping, content_block_stop: nothing to say in chat */
}

int nebula_conv_a2c_usage(const nebula_conv_a2c_t *st, nebula_usage_t *u)
{
    if (!st->have_usage) {
        return 0;
    }
    *u = st->usage;
    u->total_tokens = u->prompt_tokens + u->cached_tokens + u->cache_write_tokens +
                      u->completion_tokens;
    u->prompt_excludes_cache = 1;
    u->estimated = 0;
    return 1;
}

int nebula_conv_a2c_done(const nebula_conv_a2c_t *st)
{
    return st->done;
}

/* ======================================================================== */
/* streams: chat chunks -> Anthropic events                                 */
/* ======================================================================== */

enum { C2A_NONE, C2A_TEXT, C2A_TOOL };

struct nebula_conv_c2a_t {
    apr_pool_t *p;
    const char *model;
    apr_int64_t input_tokens;
    int started;
    int done;         /* message_stop or an error was emitted */
    int open;         /* C2A_NONE, C2A_TEXT or C2A_TOOL */
    int index;        /* the open block's index */
    int next;         /* the next block's index */
    apr_int64_t tool; /* the open tool block's chat tool-call index */
    const char *tool_id;
    int saw_tool;
    const char *finish;
};

nebula_conv_c2a_t *nebula_conv_c2a_create(apr_pool_t *p, const char *model,
                                          apr_int64_t input_tokens)
{
    nebula_conv_c2a_t *st = apr_pcalloc(p, sizeof(*st));

    st->p = p;
    st->model = apr_pstrdup(p, model ? model : "");
    st->input_tokens = input_tokens;
    return st;
}

static void c2a_start(nebula_conv_c2a_t *st, const char *chat_id, apr_array_header_t *out)
{
    const char *id = chat_id ? apr_pstrcat(st->p, "msg_", chat_id, NULL)
                             : apr_psprintf(st->p, "msg_%" APR_UINT64_T_HEX_FMT,
                                            (apr_uint64_t)apr_time_now());

    st->started = 1;
    nebula_conv_emit(
        st->p, out, "message_start",
        json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:I, s:I, s:I, s:I}}}",
                  "type", "message_start", "message", "id", id, "type", "message", "role",
                  "assistant", "model", st->model, "content", "stop_reason",
                  "stop_sequence", "usage", "input_tokens", (json_int_t)st->input_tokens,
                  "cache_creation_input_tokens", (json_int_t)0, "cache_read_input_tokens",
                  (json_int_t)0, "output_tokens", (json_int_t)0));
}

static void c2a_close(nebula_conv_c2a_t *st, apr_array_header_t *out)
{
    if (st->open == C2A_NONE) {
        return;
    }
    nebula_conv_emit(
        st->p, out, "content_block_stop",
        json_pack("{s:s, s:i}", "type", "content_block_stop", "index", st->index));
    st->open = C2A_NONE;
}

/* Open a block (closing the one before) with @a block taken over. */
static void c2a_open(nebula_conv_c2a_t *st, int kind, json_t *block,
                     apr_array_header_t *out)
{
    c2a_close(st, out);
    st->open = kind;
    st->index = st->next++;
    nebula_conv_emit(st->p, out, "content_block_start",
                     json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index",
                               st->index, "content_block", block));
}

static void c2a_delta(nebula_conv_c2a_t *st, json_t *delta, apr_array_header_t *out)
{
    nebula_conv_emit(st->p, out, "content_block_delta",
                     json_pack("{s:s, s:i, s:o}", "type", "content_block_delta", "index",
                               st->index, "delta", delta));
}

static void c2a_text(nebula_conv_c2a_t *st, const char *text, apr_array_header_t *out)
{
    if (st->open != C2A_TEXT) {
        c2a_open(st, C2A_TEXT, json_pack("{s:s, s:s}", "type", "text", "text", ""), out);
    }
    c2a_delta(st, json_pack("{s:s, s:s}", "type", "text_delta", "text", text), out);
}

/* One element of delta.tool_calls: a new index or id opens a tool_use
 * block, arguments become input_json_delta. */
static void c2a_tool_call(nebula_conv_c2a_t *st, const json_t *tc, size_t pos,
                          apr_array_header_t *out)
{
    apr_int64_t idx = nebula_json_geti(tc, (apr_int64_t)pos, "index", NULL);
    const char *id = nebula_json_gets(tc, "id", NULL);
    const char *name = nebula_json_gets(tc, "function", "name", NULL);
    const char *args = nebula_json_gets(tc, "function", "arguments", NULL);

    if (!json_is_object(tc)) {
        return;
    }
    if (st->open != C2A_TOOL || idx != st->tool ||
        (id != NULL && *id && strcmp(id, st->tool_id))) {
        st->tool = idx;
        st->tool_id =
            id && *id ? apr_pstrdup(st->p, id)
                      : apr_psprintf(st->p, "toolu_%d_%" APR_INT64_T_FMT, st->next, idx);
        st->saw_tool = 1;
        c2a_open(st, C2A_TOOL,
                 json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id", st->tool_id,
                           "name", name ? name : "", "input"),
                 out);
    }
    if (args != NULL && *args) {
        c2a_delta(
            st, json_pack("{s:s, s:s}", "type", "input_json_delta", "partial_json", args),
            out);
    }
}

/* An error chunk -> the "error" event; the stream is over after it. */
static void c2a_error(nebula_conv_c2a_t *st, const json_t *err, apr_array_header_t *out)
{
    static const char *const known[] = {"invalid_request_error",
                                        "authentication_error",
                                        "permission_error",
                                        "not_found_error",
                                        "request_too_large",
                                        "rate_limit_error",
                                        "api_error",
                                        "overloaded_error",
                                        NULL};
    const char *msg = json_is_string(err) ? json_string_value(err)
                                          : nebula_json_gets(err, "message", NULL);
    const char *type = nebula_json_gets(err, "type", NULL), *t = "api_error";
    int i;

    for (i = 0; type != NULL && known[i] != NULL; ++i) {
        if (!strcmp(type, known[i])) {
            t = known[i];
        }
    }
    nebula_conv_emit(st->p, out, "error",
                     json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type", t,
                               "message",
                               string_lossy(st->p, msg ? msg : "The upstream failed.")));
    st->done = 1;
}

void nebula_conv_c2a_feed(nebula_conv_c2a_t *st, const json_t *chunk,
                          apr_array_header_t *out)
{
    const json_t *choice, *delta, *calls, *tc;
    const char *text, *finish;
    size_t i;

    if (st->done || !json_is_object(chunk)) {
        return;
    }
    if (json_object_get(chunk, "error") != NULL) {
        c2a_error(st, json_object_get(chunk, "error"), out);
        return;
    }
    choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (!json_is_object(choice)) {
        return; /* usage only (or nothing): finish() reports it */
    }
    if (!st->started) {
        c2a_start(st, nebula_json_gets(chunk, "id", NULL), out);
    }
    delta = json_object_get(choice, "delta");
    if ((text = nebula_json_gets(delta, "content", NULL)) != NULL && *text) {
        c2a_text(st, text, out);
    }
    else if ((text = nebula_json_gets(delta, "refusal", NULL)) != NULL && *text) {
        c2a_text(st, text, out);
    }
    /* reasoning_content is dropped: a thinking block needs a signature */
    calls = json_object_get(delta, "tool_calls");
    json_array_foreach(calls, i, tc)
    {
        c2a_tool_call(st, tc, i, out);
    }
    if ((finish = nebula_json_gets(choice, "finish_reason", NULL)) != NULL) {
        st->finish = apr_pstrdup(st->p, finish);
    }
}

void nebula_conv_c2a_finish(nebula_conv_c2a_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out)
{
    const char *stop;

    if (st->done) {
        return;
    }
    if (!st->started) {
        c2a_start(st, NULL, out);
    }
    c2a_close(st, out);
    stop = st->finish == NULL && st->saw_tool ? "tool_use" : c2a_stop(st->finish);
    /* message_start could only carry the gateway's estimate of the input:
     * the final counts go here, as the API's message_delta usage allows */
    if (usage) {
        apr_int64_t cached = usage->cached_tokens + usage->cache_write_tokens;
        apr_int64_t input = usage->prompt_excludes_cache ? usage->prompt_tokens
                                                         : usage->prompt_tokens - cached;
        nebula_conv_emit(
            st->p, out, "message_delta",
            json_pack("{s:s, s:{s:s, s:n}, s:{s:I, s:I, s:I, s:I}}", "type", "message_delta",
                      "delta", "stop_reason", stop, "stop_sequence", "usage", "input_tokens",
                      (json_int_t)(input > 0 ? input : 0), "cache_creation_input_tokens",
                      (json_int_t)usage->cache_write_tokens, "cache_read_input_tokens",
                      (json_int_t)usage->cached_tokens, "output_tokens",
                      (json_int_t)usage->completion_tokens));
    }
    else {
        nebula_conv_emit(st->p, out, "message_delta",
                         json_pack("{s:s, s:{s:s, s:n}, s:{s:I}}", "type", "message_delta",
                                   "delta", "stop_reason", stop, "stop_sequence", "usage",
                                   "output_tokens", (json_int_t)0));
    }
    nebula_conv_emit(st->p, out, "message_stop",
                     json_pack("{s:s}", "type", "message_stop"));
    st->done = 1;
}

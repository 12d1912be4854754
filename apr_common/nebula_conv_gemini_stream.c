/* nebula_conv_gemini_stream.c: the two stream state machines of the Gemini
 * converter (nebula_conv_gemini.h): Gemini chunks -> chat chunks (g2c) and
 * chat chunks -> Gemini chunks (c2g). */
#include "nebula_conv_gemini_int.h"

/* ---- streams: Gemini chunks -> chat chunks ----------------------------------- */

struct nebula_conv_g2c_t {
    apr_pool_t *p;
    const char *model;
    const char *id;
    apr_int64_t created;
    int started[CONV_GEMINI_MAX_CHOICES]; /* role chunk sent */
    int ncalls[CONV_GEMINI_MAX_CHOICES];  /* tool calls sent */
    int done;
    int have_usage;
    nebula_usage_t usage;
};

nebula_conv_g2c_t *nebula_conv_g2c_create(apr_pool_t *p, const char *model)
{
    nebula_conv_g2c_t *st = apr_pcalloc(p, sizeof(*st));

    st->p = p;
    st->model = model ? apr_pstrdup(p, model) : NULL;
    st->created = apr_time_sec(apr_time_now());
    return st;
}

static void g2c_emit(nebula_conv_g2c_t *st, apr_array_header_t *out, int index,
                     json_t *delta, const char *finish)
{
    json_t *choice = json_pack("{s:i, s:o}", "index", index, "delta", delta);

    json_object_set_new(choice, "finish_reason",
                        finish ? json_string(finish) : json_null());
    nebula_conv_emit(st->p, out, NULL,
                     json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", st->id, "object",
                               "chat.completion.chunk", "created",
                               (json_int_t)st->created, "model",
                               st->model ? st->model : "", "choices", choice));
}

static void g2c_start(nebula_conv_g2c_t *st, apr_array_header_t *out, int index)
{
    if (!st->started[index]) {
        st->started[index] = 1;
        g2c_emit(st, out, index,
                 json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
    }
}

static void g2c_part(nebula_conv_g2c_t *st, apr_array_header_t *out, int index,
                     const json_t *part)
{
    const char *t = gks(part, "text");
    const json_t *fc = gk(part, "functionCall"), *args;

    if (t != NULL && *t) {
        g2c_emit(
            st, out, index,
            json_pack("{s:s}",
                      json_is_true(gk(part, "thought")) ? "reasoning_content" : "content",
                      t),
            NULL);
    }
    else if (gks(fc, "name") != NULL) {
        int n = st->ncalls[index]++;

        args = gk(fc, "args");
        g2c_emit(
            st, out, index,
            json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", n,
                      "id", apr_psprintf(st->p, "call_%d", n), "type", "function",
                      "function", "name", gks(fc, "name"), "arguments",
                      json_is_object(args) ? nebula_json_dumps(st->p, args, 0) : "{}"),
            NULL);
    }
}

static void g2c_candidate(nebula_conv_g2c_t *st, apr_array_header_t *out, size_t i,
                          const json_t *cand)
{
    json_int_t index = json_is_integer(gk(cand, "index"))
                           ? json_integer_value(gk(cand, "index"))
                           : (json_int_t)i;
    const char *fr = gks(cand, "finishReason");
    const json_t *part;
    size_t j;

    if (!json_is_object(cand) || index < 0 || index >= CONV_GEMINI_MAX_CHOICES) {
        return;
    }
    g2c_start(st, out, (int)index);
    json_array_foreach(gk(gk(cand, "content"), "parts"), j, part)
    {
        g2c_part(st, out, (int)index, part);
    }
    if (fr != NULL) {
        st->done = 1;
        g2c_emit(st, out, (int)index, json_object(),
                 finish_to_chat(fr, st->ncalls[index] > 0));
    }
}

void nebula_conv_g2c_feed(nebula_conv_g2c_t *st, const json_t *chunk,
                          apr_array_header_t *out)
{
    const json_t *cands = gk(chunk, "candidates"), *cand, *e;
    size_t i;

    if (!json_is_object(chunk)) {
        return;
    }
    if (json_is_object(e = json_object_get(chunk, "error"))) {
        /* an error event mid-stream, told the way OpenAI tells it */
        nebula_conv_emit(st->p, out, NULL,
                         json_pack("{s:{s:s, s:s, s:n, s:O?}}", "error", "message",
                                   str_or(gks(e, "message"), "upstream error"), "type",
                                   str_or(gks(e, "status"), "api_error"), "param", "code",
                                   json_object_get(e, "code")));
        return;
    }
    if (st->id == NULL) {
        st->id = apr_pstrcat(st->p, "chatcmpl-",
                             str_or(gks(chunk, "responseId"), made_up_id(st->p)), NULL);
    }
    if (st->model == NULL && gks(chunk, "modelVersion") != NULL) {
        st->model = apr_pstrdup(st->p, gks(chunk, "modelVersion"));
    }
    if (nebula_conv_gemini_usage(gk(chunk, "usageMetadata"), &st->usage)) {
        st->have_usage = 1;
    }
    json_array_foreach(cands, i, cand)
    {
        g2c_candidate(st, out, i, cand);
    }
    if (json_array_size(cands) == 0 && gks(gk(chunk, "promptFeedback"), "blockReason")) {
        /* the prompt was blocked: an empty answer */
        g2c_start(st, out, 0);
        st->done = 1;
        g2c_emit(st, out, 0, json_object(), "content_filter");
    }
}

int nebula_conv_g2c_usage(const nebula_conv_g2c_t *st, nebula_usage_t *u)
{
    if (!st->have_usage) {
        return 0;
    }
    *u = st->usage;
    return 1;
}

int nebula_conv_g2c_done(const nebula_conv_g2c_t *st)
{
    return st->done;
}

/* ---- streams: chat chunks -> Gemini chunks ----------------------------------- */

/* A tool call being streamed: arguments come in fragments. */
typedef struct {
    int choice;
    int index;
    const char *name;
    nebula_buf_t args;
} c2g_call_t;

struct nebula_conv_c2g_t {
    apr_pool_t *p;
    const char *model;
    const char *id;
    int seen[CONV_GEMINI_MAX_CHOICES];
    const char *finish[CONV_GEMINI_MAX_CHOICES];
    apr_array_header_t *calls; /* c2g_call_t, held until finish() */
    int finished;
};

nebula_conv_c2g_t *nebula_conv_c2g_create(apr_pool_t *p, const char *model)
{
    nebula_conv_c2g_t *st = apr_pcalloc(p, sizeof(*st));

    st->p = p;
    st->model = model ? apr_pstrdup(p, model) : NULL;
    st->calls = apr_array_make(p, 4, sizeof(c2g_call_t));
    return st;
}

static void c2g_tool_delta(nebula_conv_c2g_t *st, int choice, const json_t *tc)
{
    int index = (int)nebula_json_geti(tc, 0, "index", NULL);
    const char *name = nebula_json_gets(tc, "function", "name", NULL);
    const char *args = nebula_json_gets(tc, "function", "arguments", NULL);
    c2g_call_t *c = NULL;
    int i;

    for (i = 0; i < st->calls->nelts; ++i) {
        c2g_call_t *x = &APR_ARRAY_IDX(st->calls, i, c2g_call_t);
        if (x->choice == choice && x->index == index) {
            c = x;
        }
    }
    if (c == NULL) {
        c = apr_array_push(st->calls);
        memset(c, 0, sizeof(*c));
        c->choice = choice;
        c->index = index;
    }
    if (name != NULL && *name) {
        c->name = apr_pstrdup(st->p, name);
    }
    if (args != NULL) {
        nebula_buf_add(st->p, &c->args, args, strlen(args));
    }
}

/* The text and thought parts of one chat choice; NULL when it has none. */
static json_t *c2g_choice_parts(nebula_conv_c2g_t *st, int index, const json_t *choice)
{
    const json_t *delta = json_object_get(choice, "delta"), *tc;
    const char *reasoning = nebula_json_gets(delta, "reasoning_content", NULL);
    const char *text = nebula_json_gets(delta, "content", NULL);
    const char *fr = nebula_json_gets(choice, "finish_reason", NULL);
    json_t *parts = json_array();
    size_t i;

    if (reasoning != NULL && *reasoning) {
        json_array_append_new(parts,
                              json_pack("{s:s, s:b}", "text", reasoning, "thought", 1));
    }
    if (text != NULL && *text) {
        json_array_append_new(parts, json_pack("{s:s}", "text", text));
    }
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        c2g_tool_delta(st, index, tc);
    }
    if (fr != NULL) {
        st->finish[index] = apr_pstrdup(st->p, fr);
    }
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return NULL;
    }
    return parts;
}

static json_t *c2g_chunk(nebula_conv_c2g_t *st, json_t *cands)
{
    json_t *j = json_pack("{s:o}", "candidates", cands);

    if (st->model != NULL) {
        json_object_set_new(j, "modelVersion", json_string(st->model));
    }
    if (st->id != NULL) {
        json_object_set_new(j, "responseId", json_string(st->id));
    }
    return j;
}

void nebula_conv_c2g_feed(nebula_conv_c2g_t *st, const json_t *chunk,
                          apr_array_header_t *out)
{
    const json_t *choice;
    json_t *cands;
    size_t i;

    if (!json_is_object(chunk) || st->finished) {
        return;
    }
    if (st->id == NULL && nebula_json_gets(chunk, "id", NULL) != NULL) {
        st->id = apr_pstrdup(st->p, nebula_json_gets(chunk, "id", NULL));
    }
    if (st->model == NULL && nebula_json_gets(chunk, "model", NULL) != NULL) {
        st->model = apr_pstrdup(st->p, nebula_json_gets(chunk, "model", NULL));
    }
    cands = json_array();
    json_array_foreach(json_object_get(chunk, "choices"), i, choice)
    {
        apr_int64_t index = nebula_json_geti(choice, (apr_int64_t)i, "index", NULL);
        json_t *parts;

        if (index < 0 || index >= CONV_GEMINI_MAX_CHOICES) {
            continue;
        }
        st->seen[index] = 1;
        if ((parts = c2g_choice_parts(st, (int)index, choice)) != NULL) {
            json_array_append_new(cands, json_pack("{s:{s:s, s:o}, s:I}", "content",
                                                   "role", "model", "parts", parts,
                                                   "index", (json_int_t)index));
        }
    }
    if (json_array_size(cands) == 0) {
        json_decref(cands);
        return;
    }
    nebula_conv_emit(st->p, out, NULL, c2g_chunk(st, cands));
}

void nebula_conv_c2g_finish(nebula_conv_c2g_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out)
{
    json_t *cands, *j;
    int index, i, any = 0;

    if (st->finished) {
        return;
    }
    st->finished = 1;
    for (index = 0; index < CONV_GEMINI_MAX_CHOICES; ++index) {
        any |= st->seen[index];
    }
    /* an upstream that said nothing still ends with candidate 0 */
    st->seen[0] |= !any;
    cands = json_array();
    for (index = 0; index < CONV_GEMINI_MAX_CHOICES; ++index) {
        json_t *parts;

        if (!st->seen[index]) {
            continue;
        }
        parts = json_array();
        /* the function calls, now that their arguments are whole */
        for (i = 0; i < st->calls->nelts; ++i) {
            c2g_call_t *c = &APR_ARRAY_IDX(st->calls, i, c2g_call_t);
            json_t *args;

            if (c->choice != index || c->name == NULL) {
                continue;
            }
            args = parse_args(nebula_buf_str(&c->args));
            json_array_append_new(parts, json_pack("{s:{s:s, s:o}}", "functionCall",
                                                   "name", c->name, "args",
                                                   args ? args : json_object()));
        }
        if (json_array_size(parts) == 0) {
            json_array_append_new(parts, json_pack("{s:s}", "text", ""));
        }
        json_array_append_new(
            cands, json_pack("{s:{s:s, s:o}, s:s, s:i}", "content", "role", "model",
                             "parts", parts, "finishReason",
                             finish_to_gemini(st->finish[index]), "index", index));
    }
    j = c2g_chunk(st, cands);
    if (usage != NULL) {
        json_object_set_new(j, "usageMetadata", usage_to_gemini(usage, 0));
    }
    nebula_conv_emit(st->p, out, NULL, j);
}

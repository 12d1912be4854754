/* nebula_conv_gemini.c: Gemini generateContent / embedContent <-> OpenAI chat
 * completions / embeddings (nebula_conv_gemini.h). Owns the mapping of
 * every field both ways (the stream state machines live in
 * nebula_conv_gemini_stream.c) and the JSON Schema dialect change (Gemini's
 * OpenAPI subset with upper-case types). Field names come from the Gemini
 * REST reference (google-genai types): output is camelCase; input is read
 * camelCase first, then snake_case, since Google's JSON mapping accepts both
 * and Gemini's own curl examples use the latter. */
#include "nebula_conv_gemini_int.h"

/* JSON Schema nesting followed when translating tool parameters */
#define CONV_GEMINI_SCHEMA_DEPTH 64

/* ---- shared helpers ----------------------------------------------------- */

static json_t *set_err(apr_pool_t *p, const char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *set_err(apr_pool_t *p, const char **err, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        va_start(ap, fmt);
        *err = apr_pvsprintf(p, fmt, ap);
        va_end(ap);
    }
    return NULL;
}



/* Copy a number member (null or absent: nothing); -1 when it is no number. */
static int copy_num(const json_t *v, json_t *dst, const char *dkey, int integer)
{
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (integer ? !json_is_integer(v) : !json_is_number(v)) {
        return -1;
    }
    json_object_set_new(dst, dkey, json_deep_copy(v));
    return 0;
}

/* ---- finish reasons ------------------------------------------------------ */

/* ---- JSON Schema <-> Gemini Schema --------------------------------------- */

static const char *ascii_case(apr_pool_t *p, const char *s, int upper)
{
    char *c, *r = apr_pstrdup(p, s);

    for (c = r; *c; ++c) {
        *c = (char)(upper ? apr_toupper(*c) : apr_tolower(*c));
    }
    return r;
}

static json_t *schema_to_gemini(apr_pool_t *p, const json_t *s, int depth);

static void schema_type_to_gemini(apr_pool_t *p, const json_t *t, json_t *out)
{
    const json_t *v;
    size_t i;

    if (json_is_string(t)) {
        json_object_set_new(out, "type",
                            json_string(ascii_case(p, json_string_value(t), 1)));
        return;
    }
    /* ["string","null"]: Gemini says nullable instead */
    json_array_foreach(t, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), "null")) {
            json_object_set_new(out, "nullable", json_true());
        }
        else if (json_is_string(v) && json_object_get(out, "type") == NULL) {
            schema_type_to_gemini(p, v, out);
        }
    }
}

static json_t *schema_list_to_gemini(apr_pool_t *p, const json_t *list, int depth)
{
    json_t *out = json_array(), *e;
    size_t i;

    json_array_foreach(list, i, e)
    {
        json_t *c = schema_to_gemini(p, e, depth + 1);
        if (c != NULL) {
            json_array_append_new(out, c);
        }
    }
    return out;
}

/* The JSON Schema keywords Gemini's Schema object knows are kept; the rest
 * (additionalProperties, $schema, $ref, strict ...) is dropped, as the API
 * refuses names it does not know. Types go upper-case. */
static json_t *schema_to_gemini(apr_pool_t *p, const json_t *s, int depth)
{
    static const char *const keep[] = {"format",
                                       "title",
                                       "description",
                                       "nullable",
                                       "enum",
                                       "maxItems",
                                       "minItems",
                                       "required",
                                       "minProperties",
                                       "maxProperties",
                                       "minLength",
                                       "maxLength",
                                       "pattern",
                                       "example",
                                       "propertyOrdering",
                                       "default",
                                       "minimum",
                                       "maximum",
                                       NULL};
    json_t *out, *v, *c;
    const char *k;
    int i;

    if (!json_is_object(s) || depth > CONV_GEMINI_SCHEMA_DEPTH) {
        return NULL;
    }
    out = json_object();
    for (i = 0; keep[i] != NULL; ++i) {
        if ((v = json_object_get(s, keep[i])) != NULL) {
            json_object_set_new(out, keep[i], json_deep_copy(v));
        }
    }
    schema_type_to_gemini(p, json_object_get(s, "type"), out);
    if (json_is_object(v = json_object_get(s, "properties"))) {
        json_t *props = json_object();

        json_object_foreach(v, k, c)
        {
            json_t *g = schema_to_gemini(p, c, depth + 1);
            if (g != NULL) {
                json_object_set_new(props, k, g);
            }
        }
        json_object_set_new(out, "properties", props);
    }
    if ((c = schema_to_gemini(p, json_object_get(s, "items"), depth + 1)) != NULL) {
        json_object_set_new(out, "items", c);
    }
    if (json_is_array(v = json_object_get(s, "anyOf")) ||
        json_is_array(v = json_object_get(s, "oneOf"))) {
        json_object_set_new(out, "anyOf", schema_list_to_gemini(p, v, depth));
    }
    return out;
}

/* Gemini's upper-case types back to JSON Schema's, in place (on a copy). */
static void schema_to_chat(apr_pool_t *p, json_t *s, int depth)
{
    json_t *v;
    const char *k;
    size_t i;

    if (!json_is_object(s) || depth > CONV_GEMINI_SCHEMA_DEPTH) {
        return;
    }
    if (json_is_string(v = json_object_get(s, "type"))) {
        json_object_set_new(s, "type",
                            json_string(ascii_case(p, json_string_value(v), 0)));
    }
    json_object_foreach(json_object_get(s, "properties"), k, v)
    {
        schema_to_chat(p, v, depth + 1);
    }
    schema_to_chat(p, json_object_get(s, "items"), depth + 1);
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
    {
        schema_to_chat(p, v, depth + 1);
    }
}

/* A copy of a Gemini schema (either dialect field) in JSON Schema terms. */
static json_t *schema_copy_to_chat(apr_pool_t *p, const json_t *schema,
                                   const json_t *json_schema)
{
    json_t *c;

    if (json_is_object(json_schema)) {
        return json_deep_copy(json_schema);
    }
    if (!json_is_object(schema)) {
        return NULL;
    }
    c = json_deep_copy(schema);
    schema_to_chat(p, c, 0);
    return c;
}

/* ---- requests: chat -> Gemini -------------------------------------------- */

/* The MIME type a URL's extension implies; NULL when it says nothing. */
static const char *mime_from_url(apr_pool_t *p, const char *url)
{
    static const char *const map[] = {
        ".png",  "image/png",  ".jpg", "image/jpeg",      ".jpeg", "image/jpeg",
        ".webp", "image/webp", ".gif", "image/gif",       ".heic", "image/heic",
        ".heif", "image/heif", ".pdf", "application/pdf", NULL};
    const char *path = apr_pstrndup(p, url, strcspn(url, "?#"));
    apr_size_t n = strlen(path);
    int i;

    for (i = 0; map[i] != NULL; i += 2) {
        apr_size_t e = strlen(map[i]);
        if (n > e && !strcasecmp(path + n - e, map[i])) {
            return map[i + 1];
        }
    }
    return NULL;
}

/* An inlineData part from "data:<mime>;base64,<data>"; NULL if it is not one. */
static json_t *data_url_part(apr_pool_t *p, const char *url)
{
    const char *comma, *semi;

    if (strncasecmp(url, "data:", 5) || (comma = strchr(url, ',')) == NULL) {
        return NULL;
    }
    semi = strchr(url + 5, ';');
    if (semi == NULL || semi > comma || strncasecmp(semi, ";base64,", 8)) {
        return NULL;
    }
    return json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType",
                     semi > url + 5 ? apr_pstrndup(p, url + 5, semi - url - 5)
                                    : "application/octet-stream",
                     "data", comma + 1);
}

static json_t *image_part(apr_pool_t *p, const json_t *c, const char **err)
{
    const json_t *iu = json_object_get(c, "image_url");
    const char *url =
        json_is_string(iu) ? json_string_value(iu) : nebula_json_gets(iu, "url", NULL);
    const char *mime;
    json_t *part;

    if (url == NULL) {
        return set_err(p, err, "an image_url part needs image_url.url");
    }
    if (!strncasecmp(url, "data:", 5)) {
        if ((part = data_url_part(p, url)) == NULL) {
            return set_err(p, err, "an image data URL must be data:<type>;base64,<data>");
        }
        return part;
    }
    part = json_pack("{s:{s:s}}", "fileData", "fileUri", url);
    if ((mime = mime_from_url(p, url)) != NULL) {
        json_object_set_new(json_object_get(part, "fileData"), "mimeType",
                            json_string(mime));
    }
    return part;
}

/* One chat content part as a Gemini part (text parts with "" are NULL too,
 * without *err). */
static json_t *chat_part(apr_pool_t *p, const json_t *c, const char **err)
{
    const char *type = nebula_json_gets(c, "type", NULL), *s;

    *err = NULL;
    if (type == NULL) {
        return set_err(p, err, "every content part needs a type");
    }
    if (!strcmp(type, "text") || !strcmp(type, "refusal")) {
        s = nebula_json_gets(c, type, NULL);
        if (s == NULL) {
            return set_err(p, err, "a %s part needs a string %s", type, type);
        }
        return *s ? json_pack("{s:s}", "text", s) : NULL;
    }
    if (!strcmp(type, "image_url")) {
        return image_part(p, c, err);
    }
    if (!strcmp(type, "input_audio")) {
        const char *data = nebula_json_gets(c, "input_audio", "data", NULL);
        const char *fmt = nebula_json_gets(c, "input_audio", "format", NULL);

        if (data == NULL || fmt == NULL) {
            return set_err(p, err, "an input_audio part needs data and format");
        }
        return json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType",
                         apr_pstrcat(p, "audio/", fmt, NULL), "data", data);
    }
    if (!strcmp(type, "file")) {
        json_t *part = NULL;

        s = nebula_json_gets(c, "file", "file_data", NULL);
        if (s == NULL || (part = data_url_part(p, s)) == NULL) {
            return set_err(p, err,
                           "a file part needs file.file_data as a base64 data URL");
        }
        return part;
    }
    return set_err(p, err, "content parts of type %s cannot be sent to Gemini", type);
}

/* A message's content (string, parts array or null) appended to parts. */
static int chat_content_to_parts(apr_pool_t *p, const json_t *content, json_t *parts,
                                 int text_only, const char **err)
{
    const json_t *c;
    size_t i;

    if (content == NULL || json_is_null(content)) {
        return 0;
    }
    if (json_is_string(content)) {
        if (json_string_length(content) > 0) {
            json_array_append_new(parts, json_pack("{s:O}", "text", content));
        }
        return 0;
    }
    if (!json_is_array(content)) {
        set_err(p, err, "message content must be a string or an array of parts");
        return -1;
    }
    json_array_foreach(content, i, c)
    {
        json_t *part;

        if (text_only && strcmp(str_or(nebula_json_gets(c, "type", NULL), ""), "text")) {
            set_err(p, err, "system messages may hold text parts only");
            return -1;
        }
        part = chat_part(p, c, err);
        if (part == NULL && *err != NULL) {
            return -1;
        }
        if (part != NULL) {
            json_array_append_new(parts, part);
        }
    }
    return 0;
}

/* The plain text of a message's content (string or text parts). */
static const char *chat_content_text(apr_pool_t *p, const json_t *content)
{
    nebula_buf_t b = {0};
    const json_t *c;
    size_t i;

    if (json_is_string(content)) {
        return json_string_value(content);
    }
    json_array_foreach(content, i, c)
    {
        const char *t = nebula_json_gets(c, "text", NULL);
        if (t != NULL) {
            nebula_buf_add(p, &b, t, strlen(t));
        }
    }
    return nebula_buf_str(&b);
}

static int assistant_calls_to_parts(apr_pool_t *p, const json_t *msg, json_t *parts,
                                    const char **err)
{
    const json_t *tc, *fn;
    size_t i;

    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const char *name = nebula_json_gets(tc, "function", "name", NULL);
        json_t *args = parse_args(nebula_json_gets(tc, "function", "arguments", NULL));

        if (name == NULL || args == NULL) {
            json_decref(args);
            set_err(p, err,
                    "tool_calls[%lu] needs function.name and function.arguments "
                    "holding a JSON object",
                    (unsigned long)i);
            return -1;
        }
        json_array_append_new(parts, json_pack("{s:{s:s, s:o}}", "functionCall", "name",
                                               name, "args", args));
    }
    if (json_is_object(fn = json_object_get(msg, "function_call"))) {
        const char *name = nebula_json_gets(fn, "name", NULL);
        json_t *args = parse_args(nebula_json_gets(fn, "arguments", NULL));

        if (name == NULL || args == NULL) {
            json_decref(args);
            set_err(p, err,
                    "function_call needs a name and arguments holding a JSON object");
            return -1;
        }
        json_array_append_new(parts, json_pack("{s:{s:s, s:o}}", "functionCall", "name",
                                               name, "args", args));
    }
    return 0;
}

/* The function name of the tool call @a id made before message @a upto. */
static const char *tool_call_name(const json_t *messages, size_t upto, const char *id)
{
    const json_t *m, *tc;
    size_t i, j;

    for (i = upto; i-- > 0;) {
        m = json_array_get(messages, i);
        json_array_foreach(json_object_get(m, "tool_calls"), j, tc)
        {
            const char *tid = nebula_json_gets(tc, "id", NULL);
            if (tid != NULL && !strcmp(tid, id)) {
                return nebula_json_gets(tc, "function", "name", NULL);
            }
        }
    }
    return NULL;
}

static json_t *tool_msg_to_part(apr_pool_t *p, const json_t *messages, size_t i,
                                const json_t *msg, const char **err)
{
    const char *id = nebula_json_gets(msg, "tool_call_id", NULL);
    const char *name = NULL, *text;
    json_t *resp;

    if (id != NULL) {
        name = tool_call_name(messages, i, id);
    }
    if (name == NULL) {
        name = nebula_json_gets(msg, "name", NULL);
    }
    if (name == NULL) {
        return set_err(p, err,
                       "messages[%lu]: tool_call_id %s matches no earlier tool call",
                       (unsigned long)i, id ? id : "(missing)");
    }
    text = chat_content_text(p, json_object_get(msg, "content"));
    resp = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!json_is_object(resp)) {
        json_decref(resp);
        resp = json_pack("{s:s}", "content", text);
    }
    return json_pack("{s:{s:s, s:o}}", "functionResponse", "name", name, "response",
                     resp);
}

/* Append a turn, merging it into the last one when the role is the same. */
static void add_turn(json_t *contents, const char *role, json_t *parts)
{
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return;
    }
    if (last != NULL && !strcmp(nebula_json_gets(last, "role", NULL), role)) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return;
    }
    json_array_append_new(contents,
                          json_pack("{s:s, s:o}", "role", role, "parts", parts));
}

static int chat_messages_to_gemini(apr_pool_t *p, const json_t *messages, json_t *out,
                                   const char **err)
{
    json_t *contents = json_array(), *sys = json_array(), *msg;
    size_t i;
    int rc = 0;

    json_array_foreach(messages, i, msg)
    {
        const char *role = nebula_json_gets(msg, "role", NULL);
        json_t *parts = json_array();

        if (role == NULL) {
            set_err(p, err, "messages[%lu] needs a role", (unsigned long)i);
            rc = -1;
        }
        else if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            rc = chat_content_to_parts(p, json_object_get(msg, "content"), sys, 1, err);
        }
        else if (!strcmp(role, "user")) {
            rc = chat_content_to_parts(p, json_object_get(msg, "content"), parts, 0, err);
            add_turn(contents, "user", json_incref(parts));
        }
        else if (!strcmp(role, "assistant")) {
            /* reasoning_content is dropped: Gemini ignores thoughts sent back */
            rc = chat_content_to_parts(p, json_object_get(msg, "content"), parts, 0, err);
            if (rc == 0) {
                rc = assistant_calls_to_parts(p, msg, parts, err);
            }
            add_turn(contents, "model", json_incref(parts));
        }
        else if (!strcmp(role, "tool") || !strcmp(role, "function")) {
            json_t *fr = tool_msg_to_part(p, messages, i, msg, err);

            rc = fr != NULL ? json_array_append_new(parts, fr) : -1;
            add_turn(contents, "user", json_incref(parts));
        }
        else {
            set_err(p, err, "messages[%lu]: unknown role %s", (unsigned long)i, role);
            rc = -1;
        }
        json_decref(parts);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && json_array_size(contents) == 0) {
        set_err(p, err, "the messages hold no user or assistant content");
        rc = -1;
    }
    json_object_set_new(out, "contents", contents);
    if (json_array_size(sys) > 0) {
        json_object_set_new(out, "systemInstruction", json_pack("{s:O}", "parts", sys));
    }
    json_decref(sys);
    return rc;
}

static int chat_stop_to_gemini(apr_pool_t *p, const json_t *stop, json_t *gc,
                               const char **err)
{
    const json_t *s;
    size_t i;

    if (stop == NULL || json_is_null(stop)) {
        return 0;
    }
    if (json_is_string(stop)) {
        json_object_set_new(gc, "stopSequences", json_pack("[O]", stop));
        return 0;
    }
    json_array_foreach(stop, i, s)
    {
        if (!json_is_string(s)) {
            break;
        }
    }
    if (!json_is_array(stop) || i < json_array_size(stop)) {
        set_err(p, err, "stop must be a string or an array of strings");
        return -1;
    }
    json_object_set_new(gc, "stopSequences", json_deep_copy(stop));
    return 0;
}

static int chat_format_to_gemini(apr_pool_t *p, const json_t *rf, json_t *gc,
                                 const char **err)
{
    const char *type = nebula_json_gets(rf, "type", NULL);
    json_t *schema;

    if (rf == NULL || json_is_null(rf) || (type != NULL && !strcmp(type, "text"))) {
        return 0;
    }
    if (type == NULL || (strcmp(type, "json_object") && strcmp(type, "json_schema"))) {
        set_err(p, err, "response_format.type must be text, json_object or json_schema");
        return -1;
    }
    json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    schema = schema_to_gemini(
        p, nebula_json_getj((json_t *)rf, "json_schema", "schema", NULL), 0);
    if (schema != NULL) {
        json_object_set_new(gc, "responseSchema", schema);
    }
    return 0;
}

static int chat_config_to_gemini(apr_pool_t *p, const json_t *req, json_t *out,
                                 const char **err)
{
    static const char *const nums[] = {"temperature",
                                       "temperature",
                                       "top_p",
                                       "topP",
                                       "top_k",
                                       "topK",
                                       "presence_penalty",
                                       "presencePenalty",
                                       "frequency_penalty",
                                       "frequencyPenalty",
                                       NULL};
    static const char *const ints[] = {"max_tokens",
                                       "maxOutputTokens",
                                       "max_completion_tokens",
                                       "maxOutputTokens",
                                       "n",
                                       "candidateCount",
                                       "seed",
                                       "seed",
                                       "top_logprobs",
                                       "logprobs",
                                       NULL};
    json_t *gc = json_object();
    int i;

    for (i = 0; nums[i] != NULL; i += 2) {
        if (copy_num(json_object_get(req, nums[i]), gc, nums[i + 1], 0) != 0) {
            json_decref(gc);
            set_err(p, err, "%s must be a number", nums[i]);
            return -1;
        }
    }
    /* max_completion_tokens, after max_tokens, wins */
    for (i = 0; ints[i] != NULL; i += 2) {
        if (copy_num(json_object_get(req, ints[i]), gc, ints[i + 1], 1) != 0) {
            json_decref(gc);
            set_err(p, err, "%s must be an integer", ints[i]);
            return -1;
        }
    }
    if (nebula_json_getb(req, 0, "logprobs", NULL)) {
        json_object_set_new(gc, "responseLogprobs", json_true());
    }
    if (chat_stop_to_gemini(p, json_object_get(req, "stop"), gc, err) != 0 ||
        chat_format_to_gemini(p, json_object_get(req, "response_format"), gc, err) != 0) {
        json_decref(gc);
        return -1;
    }
    if (json_object_size(gc) > 0) {
        json_object_set_new(out, "generationConfig", gc);
    }
    else {
        json_decref(gc);
    }
    return 0;
}

static json_t *chat_tool_to_decl(apr_pool_t *p, const json_t *tool, size_t i,
                                 const char **err)
{
    const json_t *fn = json_object_get(tool, "function");
    const char *name = nebula_json_gets(fn, "name", NULL);
    const char *desc = nebula_json_gets(fn, "description", NULL);
    json_t *decl, *params;

    if (strcmp(str_or(nebula_json_gets(tool, "type", NULL), ""), "function") ||
        name == NULL) {
        return set_err(p, err, "tools[%lu] must be a function tool with a name",
                       (unsigned long)i);
    }
    decl = json_pack("{s:s}", "name", name);
    if (desc != NULL) {
        json_object_set_new(decl, "description", json_string(desc));
    }
    params = schema_to_gemini(p, json_object_get(fn, "parameters"), 0);
    /* Gemini refuses an OBJECT without properties: no parameters at all */
    if (params != NULL && json_object_size(json_object_get(params, "properties")) == 0 &&
        !strcmp(str_or(nebula_json_gets(params, "type", NULL), "OBJECT"), "OBJECT")) {
        json_decref(params);
        params = NULL;
    }
    if (params != NULL) {
        json_object_set_new(decl, "parameters", params);
    }
    return decl;
}

static int chat_tool_choice_to_gemini(apr_pool_t *p, const json_t *tc, json_t *out,
                                      const char **err)
{
    const char *mode = NULL, *name = NULL;
    json_t *fcc;

    if (tc == NULL || json_is_null(tc)) {
        return 0;
    }
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        mode = !strcmp(s, "auto")       ? "AUTO"
               : !strcmp(s, "none")     ? "NONE"
               : !strcmp(s, "required") ? "ANY"
                                        : NULL;
    }
    else if ((name = nebula_json_gets(tc, "function", "name", NULL)) != NULL) {
        mode = "ANY";
    }
    if (mode == NULL) {
        set_err(p, err, "tool_choice must be auto, none, required or a named function");
        return -1;
    }
    fcc = json_pack("{s:s}", "mode", mode);
    if (name != NULL) {
        json_object_set_new(fcc, "allowedFunctionNames", json_pack("[s]", name));
    }
    json_object_set_new(out, "toolConfig",
                        json_pack("{s:o}", "functionCallingConfig", fcc));
    return 0;
}

static int chat_tools_to_gemini(apr_pool_t *p, const json_t *req, json_t *out,
                                const char **err)
{
    const json_t *tools = json_object_get(req, "tools"), *t;
    json_t *decls;
    size_t i;

    if (tools == NULL || json_is_null(tools)) {
        return 0;
    }
    if (!json_is_array(tools)) {
        set_err(p, err, "tools must be an array");
        return -1;
    }
    if (json_array_size(tools) == 0) {
        return 0;
    }
    decls = json_array();
    json_array_foreach(tools, i, t)
    {
        json_t *d = chat_tool_to_decl(p, t, i, err);
        if (d == NULL) {
            json_decref(decls);
            return -1;
        }
        json_array_append_new(decls, d);
    }
    json_object_set_new(out, "tools",
                        json_pack("[{s:o}]", "functionDeclarations", decls));
    return chat_tool_choice_to_gemini(p, json_object_get(req, "tool_choice"), out, err);
}

json_t *nebula_conv_chat_req_to_gemini(apr_pool_t *p, const json_t *req, const char **err)
{
    const char *dummy;
    const json_t *messages = json_object_get(req, "messages"), *m;
    json_t *out;
    size_t i;

    err = err ? err : &dummy;
    *err = NULL;
    if (!json_is_object(req)) {
        return set_err(p, err, "the request body must be a JSON object");
    }
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        return set_err(p, err, "messages must be a non-empty array");
    }
    json_array_foreach(messages, i, m)
    {
        if (!json_is_object(m)) {
            return set_err(p, err, "messages[%lu] must be an object", (unsigned long)i);
        }
    }
    out = nebula_json_own(p, json_object());
    if (chat_messages_to_gemini(p, messages, out, err) != 0 ||
        chat_config_to_gemini(p, req, out, err) != 0 ||
        chat_tools_to_gemini(p, req, out, err) != 0) {
        return NULL;
    }
    return out;
}

/* ---- requests: Gemini -> chat -------------------------------------------- */

/* The function calls made so far, for the ids tool messages refer to. */
typedef struct {
    const char *name;
    const char *id;
    int answered;
} g2c_call_t;

typedef struct {
    apr_pool_t *p;
    const char **err;
    json_t *messages;
    apr_array_header_t *calls; /* g2c_call_t */
} g2c_req_t;

/* A chat content part for an inlineData or fileData part. */
static json_t *media_to_chat(apr_pool_t *p, const json_t *part)
{
    const json_t *blob = gk(part, "inlineData"), *file = gk(part, "fileData");
    const char *mime, *data;

    if (file != NULL) {
        const char *uri = gks(file, "fileUri");
        return uri ? json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url",
                               uri)
                   : NULL;
    }
    mime = gks(blob, "mimeType");
    data = gks(blob, "data");
    if (mime == NULL || data == NULL) {
        return NULL;
    }
    if (!strcmp(mime, "audio/wav") || !strcmp(mime, "audio/mp3") ||
        !strcmp(mime, "audio/mpeg")) {
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "input_audio", "input_audio",
                         "data", data, "format",
                         strcmp(mime, "audio/wav") ? "mp3" : "wav");
    }
    if (!strncmp(mime, "image/", 6)) {
        return json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url",
                         apr_pstrcat(p, "data:", mime, ";base64,", data, NULL));
    }
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "file", "file", "filename", "file",
                     "file_data", apr_pstrcat(p, "data:", mime, ";base64,", data, NULL));
}

/* A functionResponse part as a tool message answering the earliest
 * unanswered call of that name (or the call with its id). */
static json_t *fresp_to_tool(g2c_req_t *rq, const json_t *fr, const char *where)
{
    const char *name = gks(fr, "name"), *id = gks(fr, "id");
    const json_t *resp = gk(fr, "response");
    const char *text;
    int i;

    if (name == NULL) {
        return set_err(rq->p, rq->err, "%s: functionResponse needs a name", where);
    }
    for (i = 0; i < rq->calls->nelts; ++i) {
        g2c_call_t *c = &APR_ARRAY_IDX(rq->calls, i, g2c_call_t);
        if (!c->answered && (id ? !strcmp(c->id, id) : !strcmp(c->name, name))) {
            c->answered = 1;
            break;
        }
    }
    if (i == rq->calls->nelts) {
        return set_err(rq->p, rq->err,
                       "%s: functionResponse %s answers no earlier "
                       "functionCall",
                       where, name);
    }
    /* {"content": text}, what chat -> Gemini makes of a plain answer, unwraps */
    if (json_object_size(resp) == 1 && json_is_string(json_object_get(resp, "content"))) {
        text = json_string_value(json_object_get(resp, "content"));
    }
    else {
        text = resp ? nebula_json_dumps(rq->p, resp, 0) : "{}";
    }
    return json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                     APR_ARRAY_IDX(rq->calls, i, g2c_call_t).id, "content", text);
}

static json_t *fcall_to_tool_call(g2c_req_t *rq, const json_t *fc, const char *where)
{
    const char *name = gks(fc, "name"), *id = gks(fc, "id");
    const json_t *args = gk(fc, "args");
    g2c_call_t *c;

    if (name == NULL || (args != NULL && !json_is_object(args))) {
        return set_err(rq->p, rq->err, "%s: functionCall needs a name and object args",
                       where);
    }
    c = apr_array_push(rq->calls);
    c->name = name;
    c->id = id ? id : apr_psprintf(rq->p, "call_%d", rq->calls->nelts - 1);
    c->answered = 0;
    return json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", c->id, "type", "function",
                     "function", "name", name, "arguments",
                     args ? nebula_json_dumps(rq->p, args, 0) : "{}");
}

/* The user message for the parts kept: a string for one text part. */
static void add_user_msg(json_t *messages, json_t *parts)
{
    if (json_array_size(parts) == 1 &&
        !strcmp(nebula_json_gets(parts, "#0", "type", NULL), "text")) {
        json_array_append_new(messages,
                              json_pack("{s:s, s:O}", "role", "user", "content",
                                        nebula_json_getj(parts, "#0", "text", NULL)));
    }
    else if (json_array_size(parts) > 0) {
        json_array_append_new(messages,
                              json_pack("{s:s, s:O}", "role", "user", "content", parts));
    }
}

static int g2c_user_turn(g2c_req_t *rq, const json_t *parts, size_t ci)
{
    json_t *keep = json_array(), *part, *m;
    size_t i;
    int rc = 0;

    json_array_foreach(parts, i, part)
    {
        const char *where = apr_psprintf(rq->p, "contents[%lu].parts[%lu]",
                                         (unsigned long)ci, (unsigned long)i);
        const char *text = gks(part, "text");

        if (text != NULL) {
            json_array_append_new(keep,
                                  json_pack("{s:s, s:s}", "type", "text", "text", text));
        }
        else if (gk(part, "functionResponse") != NULL) {
            if ((m = fresp_to_tool(rq, gk(part, "functionResponse"), where)) == NULL) {
                rc = -1;
                break;
            }
            json_array_append_new(rq->messages, m);
        }
        else if ((m = media_to_chat(rq->p, part)) != NULL) {
            json_array_append_new(keep, m);
        }
        else {
            set_err(rq->p, rq->err, "%s: unsupported or malformed part", where);
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        add_user_msg(rq->messages, keep);
    }
    json_decref(keep);
    return rc;
}

static int g2c_model_turn(g2c_req_t *rq, const json_t *parts, size_t ci)
{
    json_t *calls = json_array(), *part, *tc, *msg;
    nebula_buf_t text = {0};
    size_t i;

    json_array_foreach(parts, i, part)
    {
        const char *where = apr_psprintf(rq->p, "contents[%lu].parts[%lu]",
                                         (unsigned long)ci, (unsigned long)i);
        const char *t = gks(part, "text");

        if (t != NULL) {
            /* thoughts are the model's own: not sent back as the answer */
            if (!json_is_true(gk(part, "thought"))) {
                nebula_buf_add(rq->p, &text, t, strlen(t));
            }
        }
        else if (gk(part, "functionCall") != NULL) {
            if ((tc = fcall_to_tool_call(rq, gk(part, "functionCall"), where)) == NULL) {
                json_decref(calls);
                return -1;
            }
            json_array_append_new(calls, tc);
        }
        else {
            json_decref(calls);
            set_err(rq->p, rq->err, "%s: unsupported or malformed part in a model turn",
                    where);
            return -1;
        }
    }
    msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content", text.len ? json_string(text.s) : json_null());
    if (json_array_size(calls) > 0) {
        json_object_set_new(msg, "tool_calls", calls);
    }
    else {
        json_decref(calls);
    }
    json_array_append_new(rq->messages, msg);
    return 0;
}

static int g2c_system(g2c_req_t *rq, const json_t *si)
{
    json_t *parts = json_array(), *part;
    size_t i;

    if (si == NULL || json_is_null(si)) {
        json_decref(parts);
        return 0;
    }
    json_array_foreach(gk(si, "parts"), i, part)
    {
        const char *t = gks(part, "text");
        if (t == NULL) {
            json_decref(parts);
            set_err(rq->p, rq->err, "systemInstruction.parts may hold text only");
            return -1;
        }
        json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", t));
    }
    if (json_is_string(si)) {
        json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", si));
    }
    if (json_array_size(parts) == 1) {
        json_array_append_new(rq->messages,
                              json_pack("{s:s, s:O}", "role", "system", "content",
                                        nebula_json_getj(parts, "#0", "text", NULL)));
    }
    else if (json_array_size(parts) > 1) {
        json_array_append_new(
            rq->messages, json_pack("{s:s, s:O}", "role", "system", "content", parts));
    }
    json_decref(parts);
    return 0;
}

static int g2c_contents(g2c_req_t *rq, const json_t *contents)
{
    const json_t *c, *parts, *part;
    size_t i, j;

    if (!json_is_array(contents) || json_array_size(contents) == 0) {
        set_err(rq->p, rq->err, "contents must be a non-empty array of Content objects");
        return -1;
    }
    json_array_foreach(contents, i, c)
    {
        const char *role = gks(c, "role");

        parts = gk(c, "parts");
        if (!json_is_object(c) || !json_is_array(parts) ||
            (gk(c, "role") != NULL && role == NULL)) {
            set_err(rq->p, rq->err, "contents[%lu] must be an object with a parts array",
                    (unsigned long)i);
            return -1;
        }
        json_array_foreach(parts, j, part)
        {
            if (!json_is_object(part)) {
                set_err(rq->p, rq->err, "contents[%lu].parts[%lu] must be an object",
                        (unsigned long)i, (unsigned long)j);
                return -1;
            }
        }
        if (role != NULL && !strcmp(role, "model")) {
            if (g2c_model_turn(rq, parts, i) != 0) {
                return -1;
            }
        }
        else if (role == NULL || !strcmp(role, "user") || !strcmp(role, "function")) {
            if (g2c_user_turn(rq, parts, i) != 0) {
                return -1;
            }
        }
        else {
            set_err(rq->p, rq->err, "contents[%lu]: role must be user or model",
                    (unsigned long)i);
            return -1;
        }
    }
    return 0;
}

static int g2c_config(g2c_req_t *rq, const json_t *gc, json_t *out)
{
    static const char *const nums[] = {"temperature",
                                       "temperature",
                                       "topP",
                                       "top_p",
                                       "topK",
                                       "top_k",
                                       "presencePenalty",
                                       "presence_penalty",
                                       "frequencyPenalty",
                                       "frequency_penalty",
                                       NULL};
    static const char *const ints[] = {"maxOutputTokens",
                                       "max_tokens",
                                       "candidateCount",
                                       "n",
                                       "seed",
                                       "seed",
                                       "logprobs",
                                       "top_logprobs",
                                       NULL};
    const json_t *stop = gk(gc, "stopSequences"), *s;
    const char *mime = gks(gc, "responseMimeType");
    json_t *schema;
    size_t j;
    int i;

    if (gc != NULL && !json_is_object(gc)) {
        set_err(rq->p, rq->err, "generationConfig must be an object");
        return -1;
    }
    for (i = 0; nums[i] != NULL; i += 2) {
        if (copy_num(gk(gc, nums[i]), out, nums[i + 1], 0) != 0) {
            set_err(rq->p, rq->err, "generationConfig.%s must be a number", nums[i]);
            return -1;
        }
    }
    for (i = 0; ints[i] != NULL; i += 2) {
        if (copy_num(gk(gc, ints[i]), out, ints[i + 1], 1) != 0) {
            set_err(rq->p, rq->err, "generationConfig.%s must be an integer", ints[i]);
            return -1;
        }
    }
    if (json_is_true(gk(gc, "responseLogprobs"))) {
        json_object_set_new(out, "logprobs", json_true());
    }
    json_array_foreach(stop, j, s)
    {
        if (!json_is_string(s)) {
            break;
        }
    }
    if (stop != NULL && (!json_is_array(stop) || j < json_array_size(stop))) {
        set_err(rq->p, rq->err,
                "generationConfig.stopSequences must be an array of strings");
        return -1;
    }
    if (json_array_size(stop) > 0) {
        json_object_set_new(out, "stop", json_deep_copy(stop));
    }
    if (mime != NULL && !strcmp(mime, "application/json")) {
        schema = schema_copy_to_chat(rq->p, gk(gc, "responseSchema"),
                                     gk(gc, "responseJsonSchema"));
        json_object_set_new(out, "response_format",
                            schema ? json_pack("{s:s, s:{s:s, s:o}}", "type",
                                               "json_schema", "json_schema", "name",
                                               "response", "schema", schema)
                                   : json_pack("{s:s}", "type", "json_object"));
    }
    return 0;
}

/* Keep only the tools named in @a allowed. */
static void filter_tools(json_t *tools, const json_t *allowed)
{
    size_t i = 0, j;
    const json_t *a;

    while (i < json_array_size(tools)) {
        const char *n =
            nebula_json_gets(json_array_get(tools, i), "function", "name", NULL);
        int keep = 0;

        json_array_foreach(allowed, j, a)
        {
            keep |= json_is_string(a) && n != NULL && !strcmp(n, json_string_value(a));
        }
        if (keep) {
            ++i;
        }
        else {
            json_array_remove(tools, i);
        }
    }
}

static int g2c_tool_config(g2c_req_t *rq, const json_t *tc, json_t *out)
{
    const json_t *fcc = gk(tc, "functionCallingConfig");
    const json_t *allowed = gk(fcc, "allowedFunctionNames");
    const char *mode = gks(fcc, "mode");
    json_t *tools = json_object_get(out, "tools");

    if (mode == NULL || tools == NULL) {
        return 0;
    }
    if (!strcmp(mode, "NONE")) {
        json_object_set_new(out, "tool_choice", json_string("none"));
    }
    else if (!strcmp(mode, "ANY") && json_array_size(allowed) == 1 &&
             json_is_string(json_array_get(allowed, 0))) {
        json_object_set_new(out, "tool_choice",
                            json_pack("{s:s, s:{s:O}}", "type", "function", "function",
                                      "name", json_array_get(allowed, 0)));
    }
    else if (!strcmp(mode, "ANY")) {
        /* several names: "required", with the other tools left out */
        json_object_set_new(out, "tool_choice", json_string("required"));
        if (json_array_size(allowed) > 0) {
            filter_tools(tools, allowed);
        }
    }
    else if (!strcmp(mode, "AUTO") || !strcmp(mode, "VALIDATED")) {
        json_object_set_new(out, "tool_choice", json_string("auto"));
    }
    else {
        set_err(rq->p, rq->err, "toolConfig.functionCallingConfig.mode %s is unknown",
                mode);
        return -1;
    }
    return 0;
}

static int g2c_tools(g2c_req_t *rq, const json_t *tools, json_t *out)
{
    json_t *chat = json_array(), *tool, *decl, *fn;
    const char *k;
    size_t i, j;

    json_array_foreach(tools, i, tool)
    {
        json_object_foreach(tool, k, decl)
        {
            if (strcmp(k, "functionDeclarations") && strcmp(k, "function_declarations")) {
                json_decref(chat);
                set_err(rq->p, rq->err,
                        "tools[%lu]: the %s tool cannot be relayed to this "
                        "model's provider",
                        (unsigned long)i, k);
                return -1;
            }
        }
        json_array_foreach(gk(tool, "functionDeclarations"), j, decl)
        {
            json_t *params = schema_copy_to_chat(rq->p, gk(decl, "parameters"),
                                                 gk(decl, "parametersJsonSchema"));
            if (gks(decl, "name") == NULL) {
                json_decref(params);
                json_decref(chat);
                set_err(rq->p, rq->err,
                        "tools[%lu].functionDeclarations[%lu] needs a name",
                        (unsigned long)i, (unsigned long)j);
                return -1;
            }
            fn = json_pack("{s:s}", "name", gks(decl, "name"));
            if (gks(decl, "description") != NULL) {
                json_object_set_new(fn, "description",
                                    json_string(gks(decl, "description")));
            }
            json_object_set_new(
                fn, "parameters",
                params ? params
                       : json_pack("{s:s, s:{}}", "type", "object", "properties"));
            json_array_append_new(
                chat, json_pack("{s:s, s:o}", "type", "function", "function", fn));
        }
    }
    if (json_array_size(chat) > 0) {
        json_object_set_new(out, "tools", chat);
    }
    else {
        json_decref(chat);
    }
    return 0;
}

json_t *nebula_conv_gemini_req_to_chat(apr_pool_t *p, const json_t *req,
                                       const char *model, int stream, const char **err)
{
    const char *dummy;
    g2c_req_t rq;
    json_t *out;

    err = err ? err : &dummy;
    *err = NULL;
    if (!json_is_object(req)) {
        return set_err(p, err, "the request body must be a JSON object");
    }
    if (gk(req, "cachedContent") != NULL) {
        return set_err(p, err,
                       "cachedContent cannot be relayed to this model's provider");
    }
    if (gk(req, "tools") != NULL && !json_is_array(gk(req, "tools"))) {
        return set_err(p, err, "tools must be an array");
    }
    out = nebula_json_own(
        p, json_pack("{s:s, s:[]}", "model", model ? model : "", "messages"));
    rq.p = p;
    rq.err = err;
    rq.messages = json_object_get(out, "messages");
    rq.calls = apr_array_make(p, 8, sizeof(g2c_call_t));
    /* safetySettings have no chat counterpart: dropped */
    if (g2c_system(&rq, gk(req, "systemInstruction")) != 0 ||
        g2c_contents(&rq, gk(req, "contents")) != 0 ||
        g2c_config(&rq, gk(req, "generationConfig"), out) != 0 ||
        g2c_tools(&rq, gk(req, "tools"), out) != 0 ||
        g2c_tool_config(&rq, gk(req, "toolConfig"), out) != 0) {
        return NULL;
    }
    if (stream) {
        json_object_set_new(out, "stream", json_true());
        json_object_set_new(out, "stream_options",
                            json_pack("{s:b}", "include_usage", 1));
    }
    return out;
}

/* ---- usage ---------------------------------------------------------------- */

static int usage_count(const json_t *um, const char *key, apr_int64_t *v, int *seen)
{
    const json_t *n = gk(um, key);

    if (n == NULL) {
        return 0; /* Gemini leaves out counts that are zero */
    }
    if (!json_is_integer(n)) {
        return -1;
    }
    *v = json_integer_value(n);
    *seen = 1;
    return 0;
}

int nebula_conv_gemini_usage(const json_t *usage_metadata, nebula_usage_t *u)
{
    nebula_usage_t n = {0};
    apr_int64_t cand = 0, thoughts = 0, tool_prompt = 0;
    int seen = 0;

    if (!json_is_object(usage_metadata) ||
        usage_count(usage_metadata, "promptTokenCount", &n.prompt_tokens, &seen) != 0 ||
        usage_count(usage_metadata, "candidatesTokenCount", &cand, &seen) != 0 ||
        usage_count(usage_metadata, "thoughtsTokenCount", &thoughts, &seen) != 0 ||
        usage_count(usage_metadata, "toolUsePromptTokenCount", &tool_prompt, &seen) !=
            0 ||
        usage_count(usage_metadata, "cachedContentTokenCount", &n.cached_tokens, &seen) !=
            0 ||
        usage_count(usage_metadata, "totalTokenCount", &n.total_tokens, &seen) != 0 ||
        !seen) {
        return 0;
    }
    /* tool-use prompts (search results ...) are input Google bills as such */
    n.prompt_tokens += tool_prompt;
    n.completion_tokens = cand + thoughts;
    if (n.total_tokens == 0) {
        n.total_tokens = n.prompt_tokens + n.completion_tokens;
    }
    *u = n;
    return 1;
}

/* A chat usage object for usageMetadata, thoughts as reasoning tokens. */
static json_t *usage_to_chat(const json_t *um)
{
    nebula_usage_t u;
    json_t *j;

    if (!nebula_conv_gemini_usage(um, &u)) {
        return NULL;
    }
    j = nebula_conv_chat_usage_json(&u);
    json_object_set_new(
        j, "completion_tokens_details",
        json_pack("{s:I}", "reasoning_tokens",
                  (json_int_t)nebula_json_geti(um, 0, "thoughtsTokenCount", NULL)));
    return j;
}

/* ---- complete responses --------------------------------------------------- */

/* The chat message of one candidate; *has_calls when it called functions. */
static json_t *candidate_to_message(apr_pool_t *p, const json_t *cand, int *has_calls)
{
    nebula_buf_t text = {0}, thought = {0};
    json_t *calls = json_array(), *part, *msg;
    size_t i;

    json_array_foreach(gk(gk(cand, "content"), "parts"), i, part)
    {
        const char *t = gks(part, "text");
        const json_t *fc = gk(part, "functionCall");

        if (t != NULL) {
            nebula_buf_add(p, json_is_true(gk(part, "thought")) ? &thought : &text, t,
                    strlen(t));
        }
        else if (gks(fc, "name") != NULL) {
            const json_t *args = gk(fc, "args");
            json_array_append_new(
                calls,
                json_pack(
                    "{s:s, s:s, s:{s:s, s:s}}", "id",
                    apr_psprintf(p, "call_%lu", (unsigned long)json_array_size(calls)),
                    "type", "function", "function", "name", gks(fc, "name"), "arguments",
                    json_is_object(args) ? nebula_json_dumps(p, args, 0) : "{}"));
        }
    }
    msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content",
                        text.len || !json_array_size(calls) ? json_string(nebula_buf_str(&text))
                                                            : json_null());
    if (thought.len) {
        json_object_set_new(msg, "reasoning_content", json_string(thought.s));
    }
    *has_calls = json_array_size(calls) > 0;
    if (*has_calls) {
        json_object_set_new(msg, "tool_calls", calls);
    }
    else {
        json_decref(calls);
    }
    return msg;
}

json_t *nebula_conv_gemini_resp_to_chat(apr_pool_t *p, const json_t *resp,
                                        const char *model)
{
    const json_t *cands = gk(resp, "candidates"), *cand;
    const char *rid = gks(resp, "responseId");
    json_t *out, *choices = json_array(), *usage;
    size_t i;

    if (!json_is_object(resp)) {
        json_decref(choices);
        return NULL;
    }
    json_array_foreach(cands, i, cand)
    {
        json_int_t idx = json_is_integer(gk(cand, "index"))
                             ? json_integer_value(gk(cand, "index"))
                             : (json_int_t)i;
        const char *fr = gks(cand, "finishReason");
        int has_calls = 0;
        json_t *msg;

        if (!json_is_object(cand)) {
            continue;
        }
        msg = candidate_to_message(p, cand, &has_calls);
        json_array_append_new(
            choices, json_pack("{s:I, s:o, s:s, s:n}", "index", idx, "message", msg,
                               "finish_reason",
                               finish_to_chat(fr ? fr : "STOP", has_calls), "logprobs"));
    }
    if (json_array_size(choices) == 0) {
        /* a blocked prompt (promptFeedback.blockReason) has no candidates */
        json_array_append_new(
            choices,
            json_pack("{s:i, s:{s:s, s:s}, s:s, s:n}", "index", 0, "message", "role",
                      "assistant", "content", "", "finish_reason",
                      gks(gk(resp, "promptFeedback"), "blockReason") ? "content_filter"
                                                                     : "stop",
                      "logprobs"));
    }
    out = json_pack(
        "{s:s, s:s, s:I, s:s, s:o}", "id",
        apr_pstrcat(p, "chatcmpl-", rid ? rid : made_up_id(p), NULL), "object",
        "chat.completion", "created", (json_int_t)apr_time_sec(apr_time_now()), "model",
        model ? model : (str_or(gks(resp, "modelVersion"), "")), "choices", choices);
    if ((usage = usage_to_chat(gk(resp, "usageMetadata"))) != NULL) {
        json_object_set_new(out, "usage", usage);
    }
    return nebula_json_own(p, out);
}

/* The parts of one chat message: thought, text, function calls. */
static json_t *message_to_parts(apr_pool_t *p, const json_t *msg)
{
    json_t *parts = json_array(), *tc;
    const char *reasoning = nebula_json_gets(msg, "reasoning_content", NULL);
    const char *text = nebula_json_gets(msg, "content", NULL);
    size_t i;

    if (text == NULL) {
        text = nebula_json_gets(msg, "refusal", NULL);
    }
    if (reasoning != NULL && *reasoning) {
        json_array_append_new(parts,
                              json_pack("{s:s, s:b}", "text", reasoning, "thought", 1));
    }
    if (text != NULL && *text) {
        json_array_append_new(parts, json_pack("{s:s}", "text", text));
    }
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const char *name = nebula_json_gets(tc, "function", "name", NULL);
        json_t *args = parse_args(nebula_json_gets(tc, "function", "arguments", NULL));

        if (name != NULL) {
            json_array_append_new(parts,
                                  json_pack("{s:{s:s, s:o}}", "functionCall", "name",
                                            name, "args", args ? args : json_object()));
        }
        else {
            json_decref(args);
        }
    }
    if (json_array_size(parts) == 0) {
        json_array_append_new(parts, json_pack("{s:s}", "text", ""));
    }
    return parts;
}

json_t *nebula_conv_chat_resp_to_gemini(apr_pool_t *p, const json_t *resp)
{
    const json_t *choice;
    json_t *out, *cands = json_array();
    nebula_usage_t u;
    size_t i;

    if (!json_is_object(resp)) {
        json_decref(cands);
        return NULL;
    }
    json_array_foreach(json_object_get(resp, "choices"), i, choice)
    {
        json_int_t idx = nebula_json_geti(choice, (apr_int64_t)i, "index", NULL);

        json_array_append_new(
            cands,
            json_pack("{s:{s:s, s:o}, s:s, s:I}", "content", "role", "model", "parts",
                      message_to_parts(p, json_object_get(choice, "message")),
                      "finishReason",
                      finish_to_gemini(nebula_json_gets(choice, "finish_reason", NULL)),
                      "index", idx));
    }
    out = json_pack("{s:o}", "candidates", cands);
    if (nebula_conv_chat_usage(json_object_get(resp, "usage"), &u)) {
        json_object_set_new(
            out, "usageMetadata",
            usage_to_gemini(&u, nebula_json_geti(resp, 0, "usage",
                                                 "completion_tokens_details",
                                                 "reasoning_tokens", NULL)));
    }
    if (nebula_json_gets(resp, "model", NULL) != NULL) {
        json_object_set_new(out, "modelVersion",
                            json_string(nebula_json_gets(resp, "model", NULL)));
    }
    if (nebula_json_gets(resp, "id", NULL) != NULL) {
        json_object_set_new(out, "responseId",
                            json_string(nebula_json_gets(resp, "id", NULL)));
    }
    return nebula_json_own(p, out);
}

/* ---- errors ----------------------------------------------------------------- */

json_t *nebula_conv_gemini_error(apr_pool_t *p, int status, const char *message)
{
    static const struct {
        int status;
        const char *name;
    } map[] = {
        {401, "UNAUTHENTICATED"},   {403, "PERMISSION_DENIED"},  {404, "NOT_FOUND"},
        {408, "DEADLINE_EXCEEDED"}, {429, "RESOURCE_EXHAUSTED"}, {502, "UNAVAILABLE"},
        {503, "UNAVAILABLE"},       {504, "DEADLINE_EXCEEDED"},  {0, NULL}};
    const char *s = status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
    json_t *msg = json_string(message ? message : "");
    int i;

    for (i = 0; map[i].name != NULL; ++i) {
        if (map[i].status == status) {
            s = map[i].name;
        }
    }
    if (msg == NULL) {
        /* not UTF-8: keep the ASCII, mark the rest */
        char *c, *m = apr_pstrdup(p, message);

        for (c = m; *c; ++c) {
            *c = (unsigned char)*c < 0x80 ? *c : '?';
        }
        msg = json_string(m);
    }
    return nebula_json_own(p, json_pack("{s:{s:i, s:o, s:s}}", "error", "code", status,
                                        "message", msg, "status", s));
}

/* ---- embeddings ------------------------------------------------------------- */

json_t *nebula_conv_gemini_embed_req_to_openai(apr_pool_t *p, const json_t *req,
                                               const char *model, const char **err)
{
    const char *dummy;
    const json_t *parts = gk(gk(req, "content"), "parts"), *part, *dim;
    nebula_buf_t text = {0};
    json_t *out;
    size_t i;

    err = err ? err : &dummy;
    *err = NULL;
    if (!json_is_object(req) || !json_is_array(parts) || json_array_size(parts) == 0) {
        return set_err(p, err, "content.parts must be a non-empty array of text parts");
    }
    json_array_foreach(parts, i, part)
    {
        const char *t = gks(part, "text");
        if (t == NULL) {
            return set_err(p, err, "content.parts[%lu] must be a text part",
                           (unsigned long)i);
        }
        /* the parts of one Content are one text: joined by newlines */
        if (i > 0) {
            nebula_buf_add(p, &text, "\n", 1);
        }
        nebula_buf_add(p, &text, t, strlen(t));
    }
    if (text.len == 0) {
        return set_err(p, err, "content.parts hold no text to embed");
    }
    out = json_pack("{s:s, s:s, s:s}", "model", model ? model : "", "input", text.s,
                    "encoding_format", "float");
    dim = gk(req, "outputDimensionality");
    if (json_is_integer(dim)) {
        json_object_set_new(out, "dimensions", json_deep_copy(dim));
    }
    else if (dim != NULL && !json_is_null(dim)) {
        json_decref(out);
        return set_err(p, err, "outputDimensionality must be an integer");
    }
    return nebula_json_own(p, out);
}

json_t *nebula_conv_openai_embed_resp_to_gemini(apr_pool_t *p, const json_t *resp)
{
    const json_t *emb = nebula_json_getj((json_t *)resp, "data", "#0", "embedding", NULL);
    const json_t *v;
    size_t i;

    if (!json_is_array(emb)) {
        return NULL; /* absent, or base64 */
    }
    json_array_foreach(emb, i, v)
    {
        if (!json_is_number(v)) {
            return NULL;
        }
    }
    return nebula_json_own(
        p, json_pack("{s:{s:o}}", "embedding", "values", json_deep_copy(emb)));
}

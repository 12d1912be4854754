/* test_conv_responses.c: the Responses API <-> chat completions converter
 * (nebula_conv_responses.h): request conversion for each input form, tools and
 * refusals; chat answers -> Response objects; usage; and whole streams checked
 * event by event, including the snapshot an SDK accumulates from them. */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "nebula_conv_responses.h"
#include "nebula_json.h"
#include "nebula_unit.h"

/* ---- helpers -------------------------------------------------------------- */

static json_t *J(const char *text)
{
    const char *err = NULL;
    json_t *j = nebula_json_parse(unit_pool, text, strlen(text), 0, &err);

    ck_assert_msg(j != NULL, "bad test JSON: %s", err ? err : "?");
    return j;
}

static const char *D(const json_t *j)
{
    return nebula_json_dumps(unit_pool, j, JSON_SORT_KEYS | JSON_COMPACT);
}

/* @a got equals the JSON text @a want, member order aside. */
static void ck_json(const json_t *got, const char *want)
{
    ck_assert_msg(got != NULL, "got NULL, want %s", want);
    ck_assert_msg(json_equal((json_t *)got, J(want)), "got  %s\nwant %s", D(got),
                  D(J(want)));
}

static json_t *to_chat(const char *req, const char **err)
{
    *err = NULL;
    return nebula_conv_responses_req_to_chat(unit_pool, J(req), err);
}

static json_t *chat_ok(const char *req)
{
    const char *err;
    json_t *chat = to_chat(req, &err);

    ck_assert_msg(chat != NULL, "refused: %s", err ? err : "(no message)");
    ck_assert_ptr_null(err);
    return chat;
}

/* The request is refused with a message containing @a needle. */
static void ck_refused(const char *req, const char *needle)
{
    const char *err;
    json_t *chat = to_chat(req, &err);

    ck_assert_msg(chat == NULL, "accepted %s as %s", req, D(chat));
    ck_assert_msg(err != NULL && strstr(err, needle) != NULL, "err '%s' lacks '%s'",
                  err ? err : "(null)", needle);
}

static json_t *ev_data(apr_array_header_t *out, int i)
{
    ck_assert_int_lt(i, out->nelts);
    return APR_ARRAY_IDX(out, i, nebula_conv_event_t).data;
}

/* Event @a i is @a type (as SSE name and "type") with sequence_number @a i. */
static json_t *ck_ev(apr_array_header_t *out, int i, const char *type)
{
    nebula_conv_event_t *ev = &APR_ARRAY_IDX(out, i, nebula_conv_event_t);

    ck_assert_int_lt(i, out->nelts);
    ck_assert_str_eq(ev->event, type);
    ck_assert_str_eq(nebula_json_gets(ev->data, "type", NULL), type);
    ck_assert_int_eq(nebula_json_geti(ev->data, -1, "sequence_number", NULL), i);
    return ev->data;
}

static void feed(nebula_conv_c2r_t *st, const char *chunk, apr_array_header_t *out)
{
    nebula_conv_c2r_feed(st, J(chunk), out);
}

/* What the openai SDKs' ResponseStream accumulates (openai-python
 * lib/streaming/responses/_responses.py accumulate_event): the snapshot of
 * response.created, items and parts appended, deltas concatenated. Fails
 * on anything the SDK would raise on. */
static json_t *sdk_accumulate(apr_array_header_t *out)
{
    json_t *snap = NULL;
    int i;

    for (i = 0; i < out->nelts; ++i) {
        json_t *ev = ev_data(out, i);
        const char *type = nebula_json_gets(ev, "type", NULL);
        json_t *item = NULL;

        if (snap == NULL) {
            ck_assert_str_eq(type, "response.created");
            snap = nebula_json_own(unit_pool,
                                   json_deep_copy(json_object_get(ev, "response")));
            continue;
        }
        if (json_is_integer(json_object_get(ev, "output_index"))) {
            item = json_array_get(json_object_get(snap, "output"),
                                  (size_t)nebula_json_geti(ev, 0, "output_index", NULL));
        }
        if (!strcmp(type, "response.output_item.added")) {
            ck_assert_int_eq(nebula_json_geti(ev, -1, "output_index", NULL),
                             (int)json_array_size(json_object_get(snap, "output")));
            json_array_append_new(json_object_get(snap, "output"),
                                  json_deep_copy(json_object_get(ev, "item")));
        }
        else if (!strcmp(type, "response.content_part.added")) {
            ck_assert_ptr_nonnull(item);
            ck_assert_str_eq(nebula_json_gets(ev, "item_id", NULL),
                             nebula_json_gets(item, "id", NULL));
            json_array_append_new(json_object_get(item, "content"),
                                  json_deep_copy(json_object_get(ev, "part")));
        }
        else if (!strcmp(type, "response.output_text.delta")) {
            json_t *part =
                json_array_get(json_object_get(item, "content"),
                               (size_t)nebula_json_geti(ev, 0, "content_index", NULL));
            const char *text = nebula_json_gets(part, "text", NULL);

            ck_assert_ptr_nonnull(text);
            ck_assert_str_eq(nebula_json_gets(part, "type", NULL), "output_text");
            ck_assert(json_is_array(json_object_get(ev, "logprobs")));
            json_object_set_new(
                part, "text",
                json_string(apr_pstrcat(unit_pool, text,
                                        nebula_json_gets(ev, "delta", NULL), NULL)));
        }
        else if (!strcmp(type, "response.function_call_arguments.delta")) {
            const char *args = nebula_json_gets(item, "arguments", NULL);

            ck_assert_ptr_nonnull(args);
            ck_assert_str_eq(nebula_json_gets(ev, "item_id", NULL),
                             nebula_json_gets(item, "id", NULL));
            json_object_set_new(
                item, "arguments",
                json_string(apr_pstrcat(unit_pool, args,
                                        nebula_json_gets(ev, "delta", NULL), NULL)));
        }
    }
    ck_assert_ptr_nonnull(snap);
    return snap;
}

/* ---- requests ------------------------------------------------------------- */

START_TEST(req_input_string)
{
    json_t *chat = chat_ok(
        "{\"model\":\"gpt-4o\",\"input\":\"hi\",\"instructions\":\"be brief\","
        "\"max_output_tokens\":50,\"temperature\":0.5,\"top_p\":0.9,\"user\":\"u1\","
        "\"parallel_tool_calls\":false,\"store\":true,\"metadata\":{\"a\":\"b\"},"
        "\"reasoning\":{\"effort\":\"low\"},\"include\":[\"message.output_text."
        "logprobs\"],"
        "\"truncation\":\"auto\",\"previous_response_id\":null,\"background\":false}");

    ck_json(chat, "{\"model\":\"gpt-4o\",\"messages\":["
                  "{\"role\":\"system\",\"content\":\"be brief\"},"
                  "{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"max_tokens\":50,\"temperature\":0.5,\"top_p\":0.9,\"user\":\"u1\","
                  "\"parallel_tool_calls\":false}");
    /* empty instructions add no empty system message */
    chat = chat_ok("{\"model\":\"m\",\"input\":\"hi\",\"instructions\":\"\"}");
    ck_json(json_object_get(chat, "messages"),
            "[{\"role\":\"user\",\"content\":\"hi\"}]");
}
END_TEST

START_TEST(req_message_items)
{
    json_t *chat = chat_ok(
        "{\"model\":\"m\",\"input\":["
        "{\"role\":\"developer\",\"content\":\"rules\"},"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":["
        "{\"type\":\"input_text\",\"text\":\"what is this?\"},"
        "{\"type\":\"input_image\",\"image_url\":\"https://x/"
        "y.png\",\"detail\":\"low\"}]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"id\":\"msg_1\",\"status\":"
        "\"completed\",\"content\":[{\"type\":\"output_text\",\"text\":\"A \","
        "\"annotations\":[]},{\"type\":\"output_text\",\"text\":\"cat.\"}]},"
        "{\"role\":\"system\",\"content\":[{\"type\":\"input_text\",\"text\":\"s1\"}]},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]}");

    ck_json(
        json_object_get(chat, "messages"),
        "[{\"role\":\"system\",\"content\":\"rules\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\","
        "\"detail\":\"low\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"A cat.\"},"
        "{\"role\":\"system\",\"content\":\"s1\"},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]");
    ck_assert_ptr_null(json_object_get(chat, "stream"));
}
END_TEST

START_TEST(req_function_calls_merged)
{
    /* a replayed Responses output (message, two calls, a reasoning item),
     * then the two results: one assistant message with both tool calls */
    json_t *chat = chat_ok(
        "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"output_text\",\"text\":\"Checking.\"}]},"
        "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_a\",\"name\":"
        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"},"
        "{\"type\":\"function_call\",\"call_id\":\"call_b\",\"name\":\"get_time\","
        "\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":\"18C\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_b\",\"output\":["
        "{\"type\":\"input_text\",\"text\":\"12:\"},{\"type\":\"input_text\",\"text\":"
        "\"00\"}]}]}");

    ck_json(
        json_object_get(chat, "messages"),
        "[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
        "\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"12:00\"}]");
}
END_TEST

START_TEST(req_function_call_opens_assistant)
{
    /* no assistant message before the call; a call after a tool result starts
     * a new assistant message */
    json_t *chat = chat_ok(
        "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"go\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":"
        "\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"ok\"}"
        ","
        "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"arguments\":"
        "\"{}\"}]}");

    ck_json(
        json_object_get(chat, "messages"),
        "[{\"role\":\"user\",\"content\":\"go\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c2\","
        "\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}]");
}
END_TEST

START_TEST(req_tools)
{
    json_t *chat = chat_ok(
        "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":"
        "\"get_weather\",\"description\":\"Weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}}},\"strict\":true},"
        "{\"type\":\"function\",\"name\":\"noop\",\"parameters\":null}],"
        "\"tool_choice\":{\"type\":\"function\",\"name\":\"get_weather\"}}");

    ck_json(json_object_get(chat, "tools"),
            "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
            "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\","
            "\"properties\":{\"city\":{\"type\":\"string\"}}},\"strict\":true}},"
            "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}]");
    ck_json(json_object_get(chat, "tool_choice"),
            "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}");
    chat = chat_ok("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"required\"}");
    ck_json(json_object_get(chat, "tool_choice"), "\"required\"");
}
END_TEST

START_TEST(req_hosted_tools_refused)
{
    ck_refused(
        "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":"
        "\"f\"},{\"type\":\"web_search\"}]}",
        "tools[1]: tool type 'web_search'");
    ck_refused("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"file_search\","
               "\"vector_store_ids\":[\"vs_1\"]}]}",
               "'file_search'");
    ck_refused("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\"}]}",
               "needs a name");
    ck_refused(
        "{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"web_search\"}}",
        "tool_choice 'web_search'");
}
END_TEST

START_TEST(req_state_refused)
{
    ck_refused("{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}",
               "previous_response_id");
    ck_refused("{\"model\":\"m\",\"input\":\"x\",\"conversation\":\"conv_1\"}",
               "conversation");
    ck_refused("{\"model\":\"m\",\"input\":\"x\",\"background\":true}", "background");
    ck_refused(
        "{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}",
        "item_reference");
}
END_TEST

START_TEST(req_unsupported_parts_refused)
{
    ck_refused("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_image\",\"file_id\":\"file_1\"}]}]}",
               "input[0]: input_image with file_id");
    ck_refused("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_file\",\"file_id\":\"file_1\"}]}]}",
               "input[0].content[0]: part type 'input_file'");
    ck_refused("{\"model\":\"m\",\"input\":[{\"role\":\"system\",\"content\":[{\"type\":"
               "\"input_image\",\"image_url\":\"https://x\"}]}]}",
               "part type 'input_image'");
    ck_refused(
        "{\"model\":\"m\",\"input\":[{\"type\":\"computer_call_output\",\"call_id\":"
        "\"c\"}]}",
        "item type 'computer_call_output'");
    ck_refused("{\"model\":\"m\",\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
               "role 'tool'");
}
END_TEST

START_TEST(req_malformed_never_crashes)
{
    static const char *const bad[][2] = {
        {"[]", "JSON object"},
        {"{\"model\":\"m\"}", "input is required"},
        {"{\"model\":\"m\",\"input\":5}", "input must be"},
        {"{\"model\":\"m\",\"input\":[7]}", "input[0] must be an object"},
        {"{\"model\":\"m\",\"input\":[{}]}", "item type '(none)'"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\"}]}", "content must be"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[5]}]}",
         "part type"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"message\"}]}", "needs a role"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"name\":\"f\"}]}",
         "needs call_id"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":"
         "\"c\","
         "\"output\":{}}]}",
         "content must be"},
        {"{\"model\":\"m\",\"input\":\"x\",\"instructions\":[1]}", "instructions"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":{}}", "tools must be an array"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[null]}", "tool type '(none)'"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":7}", "tool_choice"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_"
         "schema\"}}}",
         "needs a name and a schema"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":7}}", "text.format"},
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_refused(bad[i][0], bad[i][1]);
    }
    {
        const char *err = "stale";

        ck_assert_ptr_null(nebula_conv_responses_req_to_chat(unit_pool, NULL, &err));
        ck_assert_str_eq(err, "the request body must be a JSON object");
    }
}
END_TEST

START_TEST(req_stream_and_text_format)
{
    json_t *chat = chat_ok(
        "{\"model\":\"m\",\"input\":\"x\",\"stream\":true,\"text\":{\"format\":{\"type\":"
        "\"json_schema\",\"name\":\"person\",\"schema\":{\"type\":\"object\"},"
        "\"strict\":true,\"description\":\"a person\"},\"verbosity\":\"low\"}}");

    ck_assert(json_is_true(json_object_get(chat, "stream")));
    ck_json(json_object_get(chat, "stream_options"), "{\"include_usage\":true}");
    ck_json(json_object_get(chat, "response_format"),
            "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"person\",\"schema\":"
            "{\"type\":\"object\"},\"strict\":true,\"description\":\"a person\"}}");
    chat =
        chat_ok("{\"model\":\"m\",\"input\":\"x\",\"stream\":false,\"text\":{\"format\":"
                "{\"type\":\"json_object\"}}}");
    ck_assert_ptr_null(json_object_get(chat, "stream"));
    ck_assert_ptr_null(json_object_get(chat, "stream_options"));
    ck_json(json_object_get(chat, "response_format"), "{\"type\":\"json_object\"}");
    chat = chat_ok("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":"
                   "\"text\"}}}");
    ck_assert_ptr_null(json_object_get(chat, "response_format"));
}
END_TEST

START_TEST(req_input_not_modified)
{
    json_t *req =
        J("{\"model\":\"m\",\"instructions\":\"i\",\"input\":[{\"role\":\"user\","
          "\"content\":\"a\"},{\"type\":\"function_call\",\"call_id\":\"c\","
          "\"name\":\"f\",\"arguments\":\"{}\"}],\"stream\":true,\"tools\":[{"
          "\"type\":\"function\",\"name\":\"f\"}]}");
    const char *before = D(req), *err = NULL;

    ck_assert_ptr_nonnull(nebula_conv_responses_req_to_chat(unit_pool, req, &err));
    ck_assert_str_eq(D(req), before);
}
END_TEST

/* ---- answers -------------------------------------------------------------- */

static const char *const echo_req =
    "{\"model\":\"gpt-4o\",\"input\":\"hi\",\"instructions\":\"be brief\","
    "\"max_output_tokens\":64,\"temperature\":0.2,\"tools\":[{\"type\":\"function\","
    "\"name\":\"f\"}],\"tool_choice\":\"auto\",\"metadata\":{\"k\":\"v\"},\"user\":"
    "\"u\"}";

START_TEST(resp_text)
{
    json_t *resp =
        J("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":"
          "1700000000,\"model\":\"upstream-model\",\"choices\":[{\"index\":0,"
          "\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\"},"
          "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":20,"
          "\"completion_tokens\":7,\"total_tokens\":27,\"prompt_tokens_details\":"
          "{\"cached_tokens\":4},\"completion_tokens_details\":{"
          "\"reasoning_tokens\":3}}}");
    json_t *r =
        nebula_conv_chat_resp_to_responses(unit_pool, resp, J(echo_req), "resp_ab");
    json_t *completed_at = json_object_get(r, "completed_at");

    ck_assert(json_is_integer(completed_at));
    ck_assert_int_ge(json_integer_value(completed_at), 1700000000);
    json_object_del(r, "completed_at");
    ck_json(
        r,
        "{\"id\":\"resp_ab\",\"object\":\"response\",\"created_at\":1700000000,"
        "\"status\":\"completed\",\"background\":false,\"error\":null,"
        "\"incomplete_details\":null,\"instructions\":\"be brief\","
        "\"max_output_tokens\":64,\"model\":\"gpt-4o\",\"output\":[{\"id\":\"msg_ab_0\","
        "\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\","
        "\"content\":[{\"type\":\"output_text\",\"text\":\"Hello!\",\"annotations\":[],"
        "\"logprobs\":[]}]}],\"parallel_tool_calls\":true,\"previous_response_id\":null,"
        "\"reasoning\":null,\"store\":false,\"temperature\":0.2,\"text\":{\"format\":"
        "{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[{\"type\":\"function\","
        "\"name\":\"f\"}],\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":{"
        "\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":4,"
        "\"cache_write_tokens\":0},\"output_tokens\":7,\"output_tokens_details\":{"
        "\"reasoning_tokens\":3},\"total_tokens\":27},\"user\":\"u\","
        "\"metadata\":{\"k\":\"v\"}}");
}
END_TEST

START_TEST(resp_tool_calls)
{
    json_t *resp =
        J("{\"created\":1,\"choices\":[{\"index\":0,\"message\":{\"role\":"
          "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
          "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
          "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_2\","
          "\"type\":\"function\",\"function\":{\"name\":\"get_time\","
          "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}");
    json_t *r =
        nebula_conv_chat_resp_to_responses(unit_pool, resp, J(echo_req), "resp_x");

    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "completed");
    ck_json(json_object_get(r, "output"),
            "[{\"id\":\"fc_x_0\",\"type\":\"function_call\",\"status\":\"completed\","
            "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\",\"call_id\":\"call_1\","
            "\"name\":\"get_weather\"},{\"id\":\"fc_x_1\",\"type\":\"function_call\","
            "\"status\":\"completed\",\"arguments\":\"{}\",\"call_id\":\"call_2\","
            "\"name\":\"get_time\"}]");
    ck_assert(json_is_null(json_object_get(r, "usage")));
}
END_TEST

START_TEST(resp_text_and_tool_call)
{
    json_t *resp =
        J("{\"choices\":[{\"message\":{\"content\":\"Let me look.\",\"tool_calls\":"
          "[{\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}");
    json_t *r = nebula_conv_chat_resp_to_responses(unit_pool, resp,
                                                   J("{\"input\":\"x\"}"), "resp_q");

    ck_json(
        json_object_get(r, "output"),
        "[{\"id\":\"msg_q_0\",\"type\":\"message\",\"status\":\"completed\",\"role\":"
        "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Let me look.\","
        "\"annotations\":[],\"logprobs\":[]}]},{\"id\":\"fc_q_1\",\"type\":"
        "\"function_call\",\"status\":\"completed\",\"arguments\":\"{}\",\"call_id\":"
        "\"call_9\",\"name\":\"f\"}]");
    ck_assert(json_is_integer(json_object_get(r, "created_at")));
    ck_assert_str_eq(nebula_json_gets(r, "model", NULL), ""); /* neither had one */
    ck_json(json_object_get(r, "tools"), "[]");
    ck_json(json_object_get(r, "metadata"), "{}");
}
END_TEST

START_TEST(resp_length_incomplete)
{
    json_t *resp =
        J("{\"model\":\"up\",\"choices\":[{\"message\":{\"content\":\"Once upon\"},"
          "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,"
          "\"completion_tokens\":2}}");
    json_t *r = nebula_conv_chat_resp_to_responses(unit_pool, resp,
                                                   J("{\"input\":\"x\"}"), "resp_l");

    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "incomplete");
    ck_json(json_object_get(r, "incomplete_details"),
            "{\"reason\":\"max_output_tokens\"}");
    ck_assert(json_is_null(json_object_get(r, "completed_at")));
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "status", NULL), "incomplete");
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "content", "#0", "text", NULL),
                     "Once upon");
    ck_assert_str_eq(nebula_json_gets(r, "model", NULL), "up");
    ck_json(json_object_get(r, "usage"),
            "{\"input_tokens\":5,\"input_tokens_details\":{\"cached_tokens\":0,"
            "\"cache_write_tokens\":0},\"output_tokens\":2,\"output_tokens_details\":"
            "{\"reasoning_tokens\":0},\"total_tokens\":7}");
}
END_TEST

START_TEST(resp_content_filter_and_refusal)
{
    json_t *resp =
        J("{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"I can't.\"},"
          "\"finish_reason\":\"content_filter\"}]}");
    json_t *r = nebula_conv_chat_resp_to_responses(unit_pool, resp, J("{}"), "resp_c");

    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "incomplete");
    ck_json(json_object_get(r, "incomplete_details"), "{\"reason\":\"content_filter\"}");
    ck_json(
        json_object_get(r, "output"),
        "[{\"id\":\"msg_c_0\",\"type\":\"message\",\"status\":\"incomplete\",\"role\":"
        "\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"I can't.\"}]}]");
}
END_TEST

START_TEST(resp_malformed_answer)
{
    /* no choices at all: still a Response with one empty message */
    json_t *r = nebula_conv_chat_resp_to_responses(unit_pool, J("[1]"), J("7"), "resp_m");

    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "completed");
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "content", "#0", "text", NULL),
                     "");
    ck_assert(json_is_null(json_object_get(r, "usage")));
}
END_TEST

/* ---- usage ---------------------------------------------------------------- */

START_TEST(usage_parse)
{
    nebula_usage_t u = {0};

    ck_assert_int_eq(nebula_conv_responses_usage(
                         J("{\"input_tokens\":100,\"input_tokens_details\":{"
                           "\"cached_tokens\":60},\"output_tokens\":30,"
                           "\"output_tokens_details\":{\"reasoning_tokens\":10},"
                           "\"total_tokens\":130}"),
                         &u),
                     1);
    ck_assert_int_eq(u.prompt_tokens, 100);
    ck_assert_int_eq(u.cached_tokens, 60);
    ck_assert_int_eq(u.completion_tokens, 30);
    ck_assert_int_eq(u.total_tokens, 130);
    ck_assert_int_eq(u.prompt_excludes_cache, 0);
    ck_assert_int_eq(u.cache_write_tokens, 0);
    ck_assert_int_eq(u.estimated, 0);

    ck_assert_int_eq(
        nebula_conv_responses_usage(J("{\"input_tokens\":-3,\"output_tokens\":"
                                      "4}"),
                                    &u),
        1);
    ck_assert_int_eq(u.prompt_tokens, -3); /* copied: billing refuses it */
    ck_assert_int_eq(u.total_tokens, 1);
    ck_assert_int_eq(u.cached_tokens, 0);
}
END_TEST

START_TEST(usage_malformed)
{
    static const char *const bad[] = {
        "null",
        "[]",
        "{}",
        "{\"input_tokens\":1}",
        "{\"input_tokens\":\"1\",\"output_tokens\":2}",
        "{\"input_tokens\":1.0,\"output_tokens\":2}",
        "{\"prompt_tokens\":1,\"completion_tokens\":2}",
    };
    nebula_usage_t u = {7, 7, 7, 7, 7, 1, 1};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(nebula_conv_responses_usage(J(bad[i]), &u) == 0, "accepted %s",
                      bad[i]);
    }
    ck_assert_int_eq(nebula_conv_responses_usage(NULL, &u), 0);
    ck_assert_int_eq(u.prompt_tokens, 7); /* left alone */
    ck_assert_int_eq(u.total_tokens, 7);
    ck_assert_int_eq(u.prompt_excludes_cache, 1);
}
END_TEST

/* ---- streams -------------------------------------------------------------- */

START_TEST(stream_text)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(
        unit_pool, J("{\"model\":\"gpt-4o\",\"input\":\"hi\",\"stream\":true}"),
        "resp_s");
    nebula_usage_t u = {12, 3, 2, 0, 15, 0, 0};
    json_t *ev, *r, *snap;

    feed(st,
         "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
         "\"content\":\"\"},\"finish_reason\":null}]}",
         out);
    ck_assert_int_eq(out->nelts, 2); /* created, in_progress; no output yet */
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}", out);
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}", out);
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
         out);
    feed(st, "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}",
         out);
    ck_assert_int_eq(out->nelts, 6);
    nebula_conv_c2r_finish(st, &u, out);
    ck_assert_int_eq(out->nelts, 10);

    ev = ck_ev(out, 0, "response.created");
    ck_assert_str_eq(nebula_json_gets(ev, "response", "id", NULL), "resp_s");
    ck_assert_str_eq(nebula_json_gets(ev, "response", "object", NULL), "response");
    ck_assert_str_eq(nebula_json_gets(ev, "response", "status", NULL), "in_progress");
    ck_assert_str_eq(nebula_json_gets(ev, "response", "model", NULL), "gpt-4o");
    ck_json(json_object_get(json_object_get(ev, "response"), "output"), "[]");
    ck_assert(json_is_null(json_object_get(json_object_get(ev, "response"), "usage")));
    ev = ck_ev(out, 1, "response.in_progress");
    ck_assert_str_eq(nebula_json_gets(ev, "response", "status", NULL), "in_progress");
    ck_json(ck_ev(out, 2, "response.output_item.added"),
            "{\"type\":\"response.output_item.added\",\"sequence_number\":2,"
            "\"output_index\":0,\"item\":{\"id\":\"msg_s_0\",\"type\":\"message\","
            "\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}");
    ck_json(
        ck_ev(out, 3, "response.content_part.added"),
        "{\"type\":\"response.content_part.added\",\"sequence_number\":3,"
        "\"item_id\":\"msg_s_0\",\"output_index\":0,\"content_index\":0,\"part\":{"
        "\"type\":\"output_text\",\"text\":\"\",\"annotations\":[],\"logprobs\":[]}}");
    ck_json(ck_ev(out, 4, "response.output_text.delta"),
            "{\"type\":\"response.output_text.delta\",\"sequence_number\":4,"
            "\"item_id\":\"msg_s_0\",\"output_index\":0,\"content_index\":0,"
            "\"delta\":\"Hel\",\"logprobs\":[]}");
    ck_assert_str_eq(
        nebula_json_gets(ck_ev(out, 5, "response.output_text.delta"), "delta", NULL),
        "lo");
    ck_json(ck_ev(out, 6, "response.output_text.done"),
            "{\"type\":\"response.output_text.done\",\"sequence_number\":6,"
            "\"item_id\":\"msg_s_0\",\"output_index\":0,\"content_index\":0,"
            "\"text\":\"Hello\",\"logprobs\":[]}");
    ck_json(ck_ev(out, 7, "response.content_part.done"),
            "{\"type\":\"response.content_part.done\",\"sequence_number\":7,"
            "\"item_id\":\"msg_s_0\",\"output_index\":0,\"content_index\":0,\"part\":{"
            "\"type\":\"output_text\",\"text\":\"Hello\",\"annotations\":[],\"logprobs\":"
            "[]}}");
    ck_json(ck_ev(out, 8, "response.output_item.done"),
            "{\"type\":\"response.output_item.done\",\"sequence_number\":8,"
            "\"output_index\":0,\"item\":{\"id\":\"msg_s_0\",\"type\":\"message\","
            "\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":"
            "\"output_text\",\"text\":\"Hello\",\"annotations\":[],\"logprobs\":[]}]}}");
    ev = ck_ev(out, 9, "response.completed");
    r = json_object_get(ev, "response");
    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "completed");
    ck_assert(json_is_integer(json_object_get(r, "completed_at")));
    ck_assert(json_is_null(json_object_get(r, "incomplete_details")));
    ck_json(json_object_get(r, "output"),
            "[{\"id\":\"msg_s_0\",\"type\":\"message\",\"status\":\"completed\",\"role\":"
            "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello\","
            "\"annotations\":[],\"logprobs\":[]}]}]");
    ck_json(json_object_get(r, "usage"),
            "{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":2,"
            "\"cache_write_tokens\":0},\"output_tokens\":3,\"output_tokens_details\":"
            "{\"reasoning_tokens\":0},\"total_tokens\":15}");
    /* what an SDK builds from the deltas is the final output, as in_progress */
    snap = sdk_accumulate(out);
    ck_assert_str_eq(
        nebula_json_gets(snap, "output", "#0", "content", "#0", "text", NULL), "Hello");
    /* the stream is over: nothing more comes out */
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}", out);
    nebula_conv_c2r_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 10);
}
END_TEST

START_TEST(stream_tool_call)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(
        unit_pool,
        J("{\"model\":\"m\",\"input\":\"hi\",\"tools\":[{\"type\":\"function\","
          "\"name\":\"get_weather\"}]}"),
        "resp_t");
    json_t *r, *snap;

    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
         "\"Checking\"}}]}",
         out);
    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
         "\"call_w\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
         "\"arguments\":\"\"}}]}}]}",
         out);
    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
         "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}",
         out);
    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
         "\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}",
         out);
    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
         out);
    nebula_conv_c2r_finish(st, NULL, out);

    ck_assert_int_eq(out->nelts, 14);
    ck_ev(out, 0, "response.created");
    ck_ev(out, 1, "response.in_progress");
    ck_ev(out, 2, "response.output_item.added");
    ck_ev(out, 3, "response.content_part.added");
    ck_ev(out, 4, "response.output_text.delta");
    /* the message closes before the call's item opens */
    ck_assert_str_eq(
        nebula_json_gets(ck_ev(out, 5, "response.output_text.done"), "text", NULL),
        "Checking");
    ck_ev(out, 6, "response.content_part.done");
    ck_assert_str_eq(nebula_json_gets(ck_ev(out, 7, "response.output_item.done"), "item",
                                      "status", NULL),
                     "completed");
    ck_json(ck_ev(out, 8, "response.output_item.added"),
            "{\"type\":\"response.output_item.added\",\"sequence_number\":8,"
            "\"output_index\":1,\"item\":{\"id\":\"fc_t_1\",\"type\":\"function_call\","
            "\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_w\","
            "\"name\":\"get_weather\"}}");
    ck_json(ck_ev(out, 9, "response.function_call_arguments.delta"),
            "{\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":9,"
            "\"item_id\":\"fc_t_1\",\"output_index\":1,\"delta\":\"{\\\"city\\\":\"}");
    ck_assert_str_eq(
        nebula_json_gets(ck_ev(out, 10, "response.function_call_arguments.delta"),
                         "delta", NULL),
        "\"Paris\"}");
    ck_json(ck_ev(out, 11, "response.function_call_arguments.done"),
            "{\"type\":\"response.function_call_arguments.done\",\"sequence_number\":11,"
            "\"item_id\":\"fc_t_1\",\"output_index\":1,\"name\":\"get_weather\","
            "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}");
    ck_json(ck_ev(out, 12, "response.output_item.done"),
            "{\"type\":\"response.output_item.done\",\"sequence_number\":12,"
            "\"output_index\":1,\"item\":{\"id\":\"fc_t_1\",\"type\":\"function_call\","
            "\"status\":\"completed\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\","
            "\"call_id\":\"call_w\",\"name\":\"get_weather\"}}");
    r = json_object_get(ck_ev(out, 13, "response.completed"), "response");
    ck_assert(json_is_null(json_object_get(r, "usage")));
    ck_json(json_object_get(r, "output"),
            "[{\"id\":\"msg_t_0\",\"type\":\"message\",\"status\":\"completed\",\"role\":"
            "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Checking\","
            "\"annotations\":[],\"logprobs\":[]}]},{\"id\":\"fc_t_1\",\"type\":"
            "\"function_call\",\"status\":\"completed\",\"arguments\":"
            "\"{\\\"city\\\":\\\"Paris\\\"}\",\"call_id\":\"call_w\",\"name\":"
            "\"get_weather\"}]");
    ck_json(json_object_get(r, "tools"),
            "[{\"type\":\"function\",\"name\":\"get_weather\"}]");
    snap = sdk_accumulate(out);
    ck_assert_str_eq(
        nebula_json_gets(snap, "output", "#0", "content", "#0", "text", NULL),
        "Checking");
    ck_assert_str_eq(nebula_json_gets(snap, "output", "#1", "arguments", NULL),
                     "{\"city\":\"Paris\"}");
}
END_TEST

START_TEST(stream_parallel_calls_one_chunk)
{
    /* a provider that sends two whole calls at once, without ids */
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(unit_pool, J("{}"), "resp_p");
    json_t *r;

    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":"
         "\"a\",\"arguments\":\"{}\"}},{\"function\":{\"name\":\"b\",\"arguments\":"
         "\"{\\\"x\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
         out);
    nebula_conv_c2r_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 11);
    ck_ev(out, 2, "response.output_item.added");
    ck_ev(out, 3, "response.function_call_arguments.delta");
    ck_ev(out, 4, "response.output_item.added");
    ck_ev(out, 5, "response.function_call_arguments.delta");
    ck_ev(out, 6, "response.function_call_arguments.done");
    ck_ev(out, 7, "response.output_item.done");
    ck_ev(out, 8, "response.function_call_arguments.done");
    ck_ev(out, 9, "response.output_item.done");
    r = json_object_get(ck_ev(out, 10, "response.completed"), "response");
    ck_json(json_object_get(r, "output"),
            "[{\"id\":\"fc_p_0\",\"type\":\"function_call\",\"status\":\"completed\","
            "\"arguments\":\"{}\",\"call_id\":\"call_p_0\",\"name\":\"a\"},"
            "{\"id\":\"fc_p_1\",\"type\":\"function_call\",\"status\":\"completed\","
            "\"arguments\":\"{\\\"x\\\":1}\",\"call_id\":\"call_p_1\",\"name\":\"b\"}]");
    ck_assert_str_eq(
        nebula_json_gets(sdk_accumulate(out), "output", "#1", "arguments", NULL),
        "{\"x\":1}");
}
END_TEST

START_TEST(stream_length_incomplete)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(
        unit_pool, J("{\"model\":\"m\",\"max_output_tokens\":2}"), "resp_i");
    nebula_usage_t u = {3, 2, 0, 0, 5, 0, 0};
    json_t *r;

    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once upon\"}}]}", out);
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}",
         out);
    nebula_conv_c2r_finish(st, &u, out);
    ck_assert_int_eq(out->nelts, 9);
    ck_assert_str_eq(nebula_json_gets(ck_ev(out, 7, "response.output_item.done"), "item",
                                      "status", NULL),
                     "incomplete");
    r = json_object_get(ck_ev(out, 8, "response.incomplete"), "response");
    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "incomplete");
    ck_json(json_object_get(r, "incomplete_details"),
            "{\"reason\":\"max_output_tokens\"}");
    ck_assert(json_is_null(json_object_get(r, "completed_at")));
    ck_assert_int_eq(nebula_json_geti(r, -1, "max_output_tokens", NULL), 2);
    ck_assert_int_eq(nebula_json_geti(r, -1, "usage", "output_tokens", NULL), 2);
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "content", "#0", "text", NULL),
                     "Once upon");
}
END_TEST

START_TEST(stream_error_fails)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st =
        nebula_conv_c2r_create(unit_pool, J("{\"model\":\"m\"}"), "resp_e");
    json_t *r;

    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}", out);
    ck_assert_int_eq(out->nelts, 5);
    feed(st,
         "{\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\"}}",
         out);
    ck_assert_int_eq(out->nelts, 6);
    r = json_object_get(ck_ev(out, 5, "response.failed"), "response");
    ck_assert_str_eq(nebula_json_gets(r, "status", NULL), "failed");
    ck_json(json_object_get(r, "error"),
            "{\"code\":\"server_error\",\"message\":\"upstream overloaded\"}");
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "status", NULL), "incomplete");
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "content", "#0", "text", NULL),
                     "par");
    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"more\"}}]}", out);
    nebula_conv_c2r_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 6);
}
END_TEST

START_TEST(stream_empty_and_junk)
{
    /* junk chunks are skipped; an upstream that said nothing still yields
     * one (empty) message and response.completed */
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(unit_pool, J("null"), NULL);
    json_t *r;

    nebula_conv_c2r_feed(st, NULL, out);
    feed(st, "[1,2]", out);
    ck_assert_int_eq(out->nelts, 0);
    feed(st,
         "{\"choices\":[7,{\"index\":1,\"delta\":{\"content\":\"other choice\"}},"
         "{\"index\":0,\"delta\":{\"content\":5,\"tool_calls\":[3]}}]}",
         out);
    ck_assert_int_eq(out->nelts, 2);
    nebula_conv_c2r_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 8);
    ck_ev(out, 2, "response.output_item.added");
    ck_ev(out, 3, "response.content_part.added");
    ck_assert_str_eq(
        nebula_json_gets(ck_ev(out, 4, "response.output_text.done"), "text", NULL), "");
    ck_ev(out, 5, "response.content_part.done");
    ck_ev(out, 6, "response.output_item.done");
    r = json_object_get(ck_ev(out, 7, "response.completed"), "response");
    ck_assert_str_eq(nebula_json_gets(r, "id", NULL), "resp_0");
    ck_assert_str_eq(nebula_json_gets(r, "output", "#0", "id", NULL), "msg_0_0");
}
END_TEST

START_TEST(stream_refusal)
{
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(unit_pool, J("{}"), "resp_r");
    json_t *r;

    feed(st, "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No\"}}]}", out);
    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"pe.\"},"
         "\"finish_reason\":\"stop\"}]}",
         out);
    nebula_conv_c2r_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 10);
    ck_json(ck_ev(out, 3, "response.content_part.added"),
            "{\"type\":\"response.content_part.added\",\"sequence_number\":3,"
            "\"item_id\":\"msg_r_0\",\"output_index\":0,\"content_index\":0,"
            "\"part\":{\"type\":\"refusal\",\"refusal\":\"\"}}");
    ck_json(ck_ev(out, 4, "response.refusal.delta"),
            "{\"type\":\"response.refusal.delta\",\"sequence_number\":4,"
            "\"item_id\":\"msg_r_0\",\"output_index\":0,\"content_index\":0,"
            "\"delta\":\"No\"}");
    ck_ev(out, 5, "response.refusal.delta");
    ck_json(ck_ev(out, 6, "response.refusal.done"),
            "{\"type\":\"response.refusal.done\",\"sequence_number\":6,"
            "\"item_id\":\"msg_r_0\",\"output_index\":0,\"content_index\":0,"
            "\"refusal\":\"Nope.\"}");
    ck_ev(out, 7, "response.content_part.done");
    ck_ev(out, 8, "response.output_item.done");
    r = json_object_get(ck_ev(out, 9, "response.completed"), "response");
    ck_json(json_object_get(r, "output"),
            "[{\"id\":\"msg_r_0\",\"type\":\"message\",\"status\":\"completed\",\"role\":"
            "\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"Nope.\"}]}]");
}
END_TEST

START_TEST(stream_usage_excluding_cache)
{
    /* an Anthropic-convention usage still reaches the client with the cached
     * tokens inside input_tokens */
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_conv_c2r_t *st = nebula_conv_c2r_create(unit_pool, J("{}"), "resp_u");
    nebula_usage_t u = {10, 5, 20, 4, 0, 1, 0};

    feed(st,
         "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},"
         "\"finish_reason\":\"stop\"}]}",
         out);
    nebula_conv_c2r_finish(st, &u, out);
    ck_json(
        json_object_get(
            json_object_get(ck_ev(out, out->nelts - 1, "response.completed"), "response"),
            "usage"),
        "{\"input_tokens\":34,\"input_tokens_details\":{\"cached_tokens\":20,"
        "\"cache_write_tokens\":4},\"output_tokens\":5,\"output_tokens_details\":"
        "{\"reasoning_tokens\":0},\"total_tokens\":39}");
}
END_TEST

Suite *unit_conv_responses_suite(void)
{
    Suite *s = suite_create("conv_responses");
    TCase *req = tcase_create("request");
    TCase *resp = tcase_create("answer");
    TCase *stream = tcase_create("stream");

    tcase_add_checked_fixture(req, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(req, req_input_string);
    tcase_add_test(req, req_message_items);
    tcase_add_test(req, req_function_calls_merged);
    tcase_add_test(req, req_function_call_opens_assistant);
    tcase_add_test(req, req_tools);
    tcase_add_test(req, req_hosted_tools_refused);
    tcase_add_test(req, req_state_refused);
    tcase_add_test(req, req_unsupported_parts_refused);
    tcase_add_test(req, req_malformed_never_crashes);
    tcase_add_test(req, req_stream_and_text_format);
    tcase_add_test(req, req_input_not_modified);
    suite_add_tcase(s, req);

    tcase_add_checked_fixture(resp, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(resp, resp_text);
    tcase_add_test(resp, resp_tool_calls);
    tcase_add_test(resp, resp_text_and_tool_call);
    tcase_add_test(resp, resp_length_incomplete);
    tcase_add_test(resp, resp_content_filter_and_refusal);
    tcase_add_test(resp, resp_malformed_answer);
    tcase_add_test(resp, usage_parse);
    tcase_add_test(resp, usage_malformed);
    suite_add_tcase(s, resp);

    tcase_add_checked_fixture(stream, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(stream, stream_text);
    tcase_add_test(stream, stream_tool_call);
    tcase_add_test(stream, stream_parallel_calls_one_chunk);
    tcase_add_test(stream, stream_length_incomplete);
    tcase_add_test(stream, stream_error_fails);
    tcase_add_test(stream, stream_empty_and_junk);
    tcase_add_test(stream, stream_refusal);
    tcase_add_test(stream, stream_usage_excluding_cache);
    suite_add_tcase(s, stream);
    return s;
}

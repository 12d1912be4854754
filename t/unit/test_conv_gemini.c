/* test_conv_gemini.c: nebula_conv_gemini both ways, checked document by
 * document: requests (system instruction, roles, merging, images and other
 * media, tools and tool choice, generation config, response formats, the
 * tool round trip), complete responses (text, thoughts, function calls,
 * several candidates, every finish reason, a blocked prompt), usage math,
 * error bodies, embeddings, both stream state machines chunk by chunk, and
 * refusals of malformed input of every shape. Expected JSON is written with
 * ' for " to stay readable. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_conv_gemini.h"
#include "nebula_json.h"
#include "nebula_unit.h"

/* Parse test JSON written with ' for ". */
static json_t *J(const char *s)
{
    char *t = apr_pstrdup(unit_pool, s), *c;
    const char *err = NULL;
    json_t *j;

    for (c = t; *c; ++c) {
        if (*c == '\'') {
            *c = '"';
        }
    }
    j = nebula_json_parse(unit_pool, t, strlen(t), 0, &err);
    ck_assert_msg(j != NULL, "bad test JSON (%s): %s", err, t);
    return j;
}

static const char *D(const json_t *j)
{
    return j ? nebula_json_dumps(unit_pool, j, JSON_SORT_KEYS) : "(null)";
}

#define ck_assert_json(got, want)                                                        \
    do {                                                                                 \
        const json_t *g_ = (got);                                                        \
        json_t *w_ = J(want);                                                            \
        ck_assert_msg(g_ != NULL && json_equal(g_, w_), "got  %s\nwant %s", D(g_),       \
                      D(w_));                                                            \
    } while (0)

/* The request converter refuses @a in with a message containing @a what. */
#define ck_refuses_c2g(in, what)                                                         \
    do {                                                                                 \
        const char *e_ = NULL;                                                           \
        ck_assert_ptr_null(nebula_conv_chat_req_to_gemini(unit_pool, J(in), &e_));       \
        ck_assert_msg(e_ != NULL && strstr(e_, what) != NULL, "error '%s' lacks '%s'",   \
                      e_ ? e_ : "(null)", what);                                         \
    } while (0)

#define ck_refuses_g2c(in, what)                                                         \
    do {                                                                                 \
        const char *e_ = NULL;                                                           \
        ck_assert_ptr_null(                                                              \
            nebula_conv_gemini_req_to_chat(unit_pool, J(in), "m", 0, &e_));              \
        ck_assert_msg(e_ != NULL && strstr(e_, what) != NULL, "error '%s' lacks '%s'",   \
                      e_ ? e_ : "(null)", what);                                         \
    } while (0)

static json_t *c2g_req(const char *in)
{
    const char *err = "unset";
    json_t *j = nebula_conv_chat_req_to_gemini(unit_pool, J(in), &err);

    ck_assert_msg(j != NULL, "refused: %s", err ? err : "(no message)");
    ck_assert_ptr_null(err);
    return j;
}

static json_t *g2c_req(const char *in, int stream)
{
    const char *err = "unset";
    json_t *j =
        nebula_conv_gemini_req_to_chat(unit_pool, J(in), "gemini-2.5-pro", stream, &err);

    ck_assert_msg(j != NULL, "refused: %s", err ? err : "(no message)");
    ck_assert_ptr_null(err);
    return j;
}

/* The converted events' data, as one JSON array, names checked NULL. */
static json_t *events(apr_array_header_t *out, int from)
{
    json_t *a = nebula_json_own(unit_pool, json_array());
    int i;

    for (i = from; i < out->nelts; ++i) {
        nebula_conv_event_t *ev = &APR_ARRAY_IDX(out, i, nebula_conv_event_t);
        ck_assert_ptr_null(ev->event);
        json_array_append(a, ev->data);
    }
    return a;
}

/* ---- chat -> Gemini requests ------------------------------------------------ */

START_TEST(c2g_req_system_roles_config)
{
    json_t *g = c2g_req(
        "{'model':'x','messages':["
        "{'role':'system','content':'Be brief.'},"
        "{'role':'developer','content':[{'type':'text','text':'Use metric.'}]},"
        "{'role':'user','content':'Hi'},"
        "{'role':'assistant','content':'Hello','reasoning_content':'dropped'},"
        "{'role':'user','content':'Weather?','name':'bob'}],"
        "'temperature':0.5,'top_p':0.9,'top_k':40,'max_tokens':100,"
        "'max_completion_tokens':200,'n':2,'stop':'END','seed':7,'presence_penalty':0.1,"
        "'frequency_penalty':0.2,'stream':true,'user':'u1','parallel_tool_calls':false}");

    ck_assert_json(g, "{'systemInstruction':{'parts':[{'text':'Be brief.'},"
                      "{'text':'Use metric.'}]},"
                      "'contents':[{'role':'user','parts':[{'text':'Hi'}]},"
                      "{'role':'model','parts':[{'text':'Hello'}]},"
                      "{'role':'user','parts':[{'text':'Weather?'}]}],"
                      "'generationConfig':{'temperature':0.5,'topP':0.9,'topK':40,"
                      "'maxOutputTokens':200,'candidateCount':2,'stopSequences':['END'],"
                      "'seed':7,'presencePenalty':0.1,'frequencyPenalty':0.2}}");
}
END_TEST

START_TEST(c2g_req_merges_turns_and_stop_array)
{
    json_t *g = c2g_req("{'messages':[{'role':'user','content':'a'},"
                        "{'role':'user','content':[{'type':'text','text':'b'},"
                        "{'type':'text','text':''}]},"
                        "{'role':'assistant','content':''},"
                        "{'role':'assistant','content':'c'}],'stop':['x','y']}");

    ck_assert_json(g, "{'contents':[{'role':'user','parts':[{'text':'a'},{'text':'b'}]},"
                      "{'role':'model','parts':[{'text':'c'}]}],"
                      "'generationConfig':{'stopSequences':['x','y']}}");
}
END_TEST

START_TEST(c2g_req_images_and_media)
{
    json_t *g =
        c2g_req("{'messages':[{'role':'user','content':["
                "{'type':'text','text':'What is this?'},"
                "{'type':'image_url','image_url':{'url':'data:image/png;base64,iVBORw0K',"
                "'detail':'high'}},"
                "{'type':'image_url','image_url':{'url':'https://e.x/cat.JPG?s=1'}},"
                "{'type':'image_url','image_url':{'url':'https://"
                "generativelanguage.googleapis.com"
                "/v1beta/files/abc'}},"
                "{'type':'input_audio','input_audio':{'data':'UklGR','format':'wav'}},"
                "{'type':'file','file':{'file_data':'data:application/pdf;base64,JVBER',"
                "'filename':'a.pdf'}}]}]}");

    ck_assert_json(g, "{'contents':[{'role':'user','parts':[{'text':'What is this?'},"
                      "{'inlineData':{'mimeType':'image/png','data':'iVBORw0K'}},"
                      "{'fileData':{'fileUri':'https://e.x/cat.JPG?s=1',"
                      "'mimeType':'image/jpeg'}},"
                      "{'fileData':{'fileUri':'https://generativelanguage.googleapis.com"
                      "/v1beta/files/abc'}},"
                      "{'inlineData':{'mimeType':'audio/wav','data':'UklGR'}},"
                      "{'inlineData':{'mimeType':'application/pdf','data':'JVBER'}}]}]}");
}
END_TEST

START_TEST(c2g_req_tools_schema_and_choice)
{
    static const char *const choices[][2] = {
        {"'auto'", "{'mode':'AUTO'}"},
        {"'none'", "{'mode':'NONE'}"},
        {"'required'", "{'mode':'ANY'}"},
        {"{'type':'function','function':{'name':'get_weather'}}",
         "{'mode':'ANY','allowedFunctionNames':['get_weather']}"},
    };
    json_t *g = c2g_req(
        "{'messages':[{'role':'user','content':'w?'}],'tools':["
        "{'type':'function','function':{'name':'get_weather','description':'Weather.',"
        "'strict':true,'parameters':{'type':'object','additionalProperties':false,"
        "'$schema':'x','properties':{'city':{'type':'string','description':'City'},"
        "'unit':{'type':['string','null'],'enum':['C','F']},"
        "'days':{'type':'array','items':{'type':'integer','minimum':1}}},"
        "'required':['city']}}},"
        "{'type':'function','function':{'name':'now','parameters':{'type':'object',"
        "'properties':{}}}}]}");
    size_t i;

    ck_assert_json(
        json_object_get(g, "tools"),
        "[{'functionDeclarations':[{'name':'get_weather','description':'Weather.',"
        "'parameters':{'type':'OBJECT','properties':{"
        "'city':{'type':'STRING','description':'City'},"
        "'unit':{'type':'STRING','nullable':true,'enum':['C','F']},"
        "'days':{'type':'ARRAY','items':{'type':'INTEGER','minimum':1}}},"
        "'required':['city']}},{'name':'now'}]}]");
    ck_assert_ptr_null(json_object_get(g, "toolConfig"));
    for (i = 0; i < sizeof(choices) / sizeof(choices[0]); ++i) {
        char *in = apr_psprintf(unit_pool,
                                "{'messages':[{'role':'user','content':'w?'}],'tools':[{"
                                "'type':'function','function':{'name':'get_weather'}}],"
                                "'tool_choice':%s}",
                                choices[i][0]);
        char *want =
            apr_psprintf(unit_pool, "{'functionCallingConfig':%s}", choices[i][1]);

        ck_assert_json(json_object_get(c2g_req(in), "toolConfig"), want);
    }
}
END_TEST

START_TEST(c2g_req_tool_round_trip)
{
    json_t *g = c2g_req(
        "{'messages':[{'role':'user','content':'Weather in Paris and Rome?'},"
        "{'role':'assistant','content':null,'tool_calls':["
        "{'id':'call_a','type':'function','function':{'name':'get_weather',"
        "'arguments':'{\\'city\\':\\'Paris\\'}'}},"
        "{'id':'call_b','type':'function','function':{'name':'lookup','arguments':''}}]},"
        "{'role':'tool','tool_call_id':'call_a','content':'{\\'temp\\':21}'},"
        "{'role':'tool','tool_call_id':'call_b','content':[{'type':'text','text':'sunny'}"
        "]},"
        "{'role':'user','content':'Thanks'}]}");

    ck_assert_json(
        g, "{'contents':[{'role':'user','parts':[{'text':"
           "'Weather in Paris and Rome?'}]},"
           "{'role':'model','parts':[{'functionCall':{'name':'get_weather',"
           "'args':{'city':'Paris'}}},{'functionCall':{'name':'lookup','args':{}}}]},"
           "{'role':'user','parts':[{'functionResponse':{'name':'get_weather',"
           "'response':{'temp':21}}},{'functionResponse':{'name':'lookup',"
           "'response':{'content':'sunny'}}},{'text':'Thanks'}]}]}");
}
END_TEST

START_TEST(c2g_req_response_format)
{
    json_t *g = c2g_req("{'messages':[{'role':'user','content':'x'}],"
                        "'response_format':{'type':'json_object'}}");

    ck_assert_json(json_object_get(g, "generationConfig"),
                   "{'responseMimeType':'application/json'}");
    g = c2g_req("{'messages':[{'role':'user','content':'x'}],'response_format':{"
                "'type':'json_schema','json_schema':{'name':'r','strict':true,'schema':{"
                "'type':'object','properties':{'a':{'type':'number'}},"
                "'additionalProperties':false}}}}");
    ck_assert_json(json_object_get(g, "generationConfig"),
                   "{'responseMimeType':'application/json','responseSchema':{"
                   "'type':'OBJECT','properties':{'a':{'type':'NUMBER'}}}}");
    g = c2g_req("{'messages':[{'role':'user','content':'x'}],"
                "'response_format':{'type':'text'}}");
    ck_assert_ptr_null(json_object_get(g, "generationConfig"));
}
END_TEST

START_TEST(c2g_req_refusals)
{
    const char *err = NULL;

    ck_assert_ptr_null(nebula_conv_chat_req_to_gemini(unit_pool, NULL, &err));
    ck_assert_str_eq(err, "the request body must be a JSON object");
    ck_assert_ptr_null(nebula_conv_chat_req_to_gemini(unit_pool, J("[1]"), NULL));
    ck_refuses_c2g("{'messages':[]}", "messages must be a non-empty array");
    ck_refuses_c2g("{'messages':'hi'}", "messages must be a non-empty array");
    ck_refuses_c2g("{'messages':[3]}", "messages[0] must be an object");
    ck_refuses_c2g("{'messages':[{'content':'x'}]}", "messages[0] needs a role");
    ck_refuses_c2g("{'messages':[{'role':'robot','content':'x'}]}", "unknown role robot");
    ck_refuses_c2g("{'messages':[{'role':'system','content':'x'}]}",
                   "no user or assistant content");
    ck_refuses_c2g(
        "{'messages':[{'role':'system','content':[{'type':'image_url',"
        "'image_url':{'url':'https://x/a.png'}}]},{'role':'user','content':'x'}]}",
        "system messages may hold text parts only");
    ck_refuses_c2g("{'messages':[{'role':'user','content':42}]}",
                   "content must be a string or an array");
    ck_refuses_c2g("{'messages':[{'role':'user','content':[{'type':'video','v':1}]}]}",
                   "of type video cannot be sent");
    ck_refuses_c2g("{'messages':[{'role':'user','content':[{'text':'no type'}]}]}",
                   "needs a type");
    ck_refuses_c2g("{'messages':[{'role':'user','content':[{'type':'image_url',"
                   "'image_url':{'url':'data:image/png,notbase64'}}]}]}",
                   "data:<type>;base64,<data>");
    ck_refuses_c2g("{'messages':[{'role':'user','content':[{'type':'image_url'}]}]}",
                   "needs image_url.url");
    ck_refuses_c2g("{'messages':[{'role':'assistant','tool_calls':[{'id':'c',"
                   "'function':{'name':'f','arguments':'[1,2]'}}]}]}",
                   "tool_calls[0] needs function.name");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'},{'role':'tool',"
                   "'tool_call_id':'nope','content':'1'}]}",
                   "tool_call_id nope matches no earlier tool call");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],'temperature':'hot'}",
                   "temperature must be a number");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],'n':1.5}",
                   "n must be an integer");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],'stop':['a',1]}",
                   "stop must be a string or an array of strings");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],"
                   "'response_format':{'type':'yaml'}}",
                   "response_format.type");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],'tools':{}}",
                   "tools must be an array");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],"
                   "'tools':[{'type':'custom','custom':{'name':'g'}}]}",
                   "tools[0] must be a function tool");
    ck_refuses_c2g("{'messages':[{'role':'user','content':'x'}],'tools':[{'type':"
                   "'function','function':{'name':'f'}}],'tool_choice':'sometimes'}",
                   "tool_choice must be");
}
END_TEST

/* ---- Gemini -> chat requests ------------------------------------------------ */

START_TEST(g2c_req_system_roles_config)
{
    json_t *c = g2c_req(
        "{'systemInstruction':{'parts':[{'text':'Be brief.'}]},"
        "'contents':[{'role':'user','parts':[{'text':'Hi'}]},"
        "{'role':'model','parts':[{'text':'Let me think','thought':true},"
        "{'text':'Hel'},{'text':'lo'}]},"
        "{'parts':[{'text':'Weather?'},{'text':'Now.'}]}],"
        "'safetySettings':[{'category':'HARM_CATEGORY_HARASSMENT',"
        "'threshold':'BLOCK_NONE'}],"
        "'generationConfig':{'temperature':0.3,'topP':0.8,'topK':20,'maxOutputTokens':"
        "512,"
        "'stopSequences':['STOP!'],'candidateCount':2,'seed':3,'presencePenalty':0.5}}",
        1);

    ck_assert_json(c, "{'model':'gemini-2.5-pro','messages':["
                      "{'role':'system','content':'Be brief.'},"
                      "{'role':'user','content':'Hi'},"
                      "{'role':'assistant','content':'Hello'},"
                      "{'role':'user','content':[{'type':'text','text':'Weather?'},"
                      "{'type':'text','text':'Now.'}]}],"
                      "'temperature':0.3,'top_p':0.8,'top_k':20,'max_tokens':512,"
                      "'stop':['STOP!'],'n':2,'seed':3,'presence_penalty':0.5,"
                      "'stream':true,'stream_options':{'include_usage':true}}");
}
END_TEST

START_TEST(g2c_req_snake_case_spelling)
{
    json_t *c = g2c_req(
        "{'system_instruction':{'parts':[{'text':'A'},{'text':'B'}]},"
        "'contents':[{'role':'user','parts':[{'inline_data':{'mime_type':'image/jpeg',"
        "'data':'/9j/4AAQ'}},{'text':'Caption?'}]}],"
        "'generation_config':{'max_output_tokens':64,'response_mime_type':'application/"
        "json'}}",
        0);

    ck_assert_json(
        c, "{'model':'gemini-2.5-pro','messages':["
           "{'role':'system','content':[{'type':'text','text':'A'},"
           "{'type':'text','text':'B'}]},"
           "{'role':'user','content':[{'type':'image_url','image_url':{'url':"
           "'data:image/jpeg;base64,/9j/4AAQ'}},{'type':'text','text':'Caption?'}]}],"
           "'max_tokens':64,'response_format':{'type':'json_object'}}");
}
END_TEST

START_TEST(g2c_req_media_parts)
{
    json_t *c = g2c_req(
        "{'contents':[{'role':'user','parts':["
        "{'inlineData':{'mimeType':'audio/wav','data':'UklG'}},"
        "{'inlineData':{'mimeType':'audio/mp3','data':'SUQz'}},"
        "{'inlineData':{'mimeType':'application/pdf','data':'JVBE'}},"
        "{'fileData':{'mimeType':'video/mp4','fileUri':'https://youtu.be/x'}}]}]}",
        0);

    ck_assert_json(json_object_get(c, "messages"),
                   "[{'role':'user','content':["
                   "{'type':'input_audio','input_audio':{'data':'UklG','format':'wav'}},"
                   "{'type':'input_audio','input_audio':{'data':'SUQz','format':'mp3'}},"
                   "{'type':'file','file':{'filename':'file','file_data':"
                   "'data:application/pdf;base64,JVBE'}},"
                   "{'type':'image_url','image_url':{'url':'https://youtu.be/x'}}]}]");
}
END_TEST

START_TEST(g2c_req_tool_round_trip)
{
    json_t *c = g2c_req(
        "{'contents':[{'role':'user','parts':[{'text':'Paris and Rome?'}]},"
        "{'role':'model','parts':[{'functionCall':{'name':'get_weather',"
        "'args':{'city':'Paris'}}},{'functionCall':{'name':'get_weather',"
        "'args':{'city':'Rome'}}},{'functionCall':{'name':'now'}}]},"
        "{'role':'user','parts':[{'functionResponse':{'name':'get_weather',"
        "'response':{'temp':21}}},{'functionResponse':{'name':'get_weather',"
        "'response':{'content':'rainy'}}},{'functionResponse':{'name':'now',"
        "'response':{'content':'noon','tz':'CET'}}},{'text':'So?'}]}],"
        "'tools':[{'functionDeclarations':[{'name':'get_weather','description':'W',"
        "'parameters':{'type':'OBJECT','properties':{'city':{'type':'STRING'}},"
        "'required':['city']}},{'name':'now'}]}]}",
        0);
    json_t *back;
    const char *err = "unset";

    ck_assert_json(c,
                   "{'model':'gemini-2.5-pro','messages':["
                   "{'role':'user','content':'Paris and Rome?'},"
                   "{'role':'assistant','content':null,'tool_calls':["
                   "{'id':'call_0','type':'function','function':{'name':'get_weather',"
                   "'arguments':'{\\'city\\':\\'Paris\\'}'}},"
                   "{'id':'call_1','type':'function','function':{'name':'get_weather',"
                   "'arguments':'{\\'city\\':\\'Rome\\'}'}},"
                   "{'id':'call_2','type':'function','function':{'name':'now',"
                   "'arguments':'{}'}}]},"
                   "{'role':'tool','tool_call_id':'call_0','content':'{\\'temp\\':21}'},"
                   "{'role':'tool','tool_call_id':'call_1','content':'rainy'},"
                   "{'role':'tool','tool_call_id':'call_2','content':"
                   "'{\\'content\\':\\'noon\\',\\'tz\\':\\'CET\\'}'},"
                   "{'role':'user','content':'So?'}],"
                   "'tools':[{'type':'function','function':{'name':'get_weather',"
                   "'description':'W','parameters':{'type':'object','properties':"
                   "{'city':{'type':'string'}},'required':['city']}}},"
                   "{'type':'function','function':{'name':'now','parameters':"
                   "{'type':'object','properties':{}}}}]}");
    /* and back: the functionCall / functionResponse turns come out as they went in */
    back = nebula_conv_chat_req_to_gemini(unit_pool, c, &err);
    ck_assert_ptr_null(err);
    ck_assert_json(json_object_get(back, "contents"),
                   "[{'role':'user','parts':[{'text':'Paris and Rome?'}]},"
                   "{'role':'model','parts':[{'functionCall':{'name':'get_weather',"
                   "'args':{'city':'Paris'}}},{'functionCall':{'name':'get_weather',"
                   "'args':{'city':'Rome'}}},{'functionCall':{'name':'now','args':{}}}]},"
                   "{'role':'user','parts':[{'functionResponse':{'name':'get_weather',"
                   "'response':{'temp':21}}},{'functionResponse':{'name':'get_weather',"
                   "'response':{'content':'rainy'}}},{'functionResponse':{'name':'now',"
                   "'response':{'content':'noon','tz':'CET'}}},{'text':'So?'}]}]");
}
END_TEST

START_TEST(g2c_req_call_ids_kept)
{
    json_t *c =
        g2c_req("{'contents':[{'role':'model','parts':[{'functionCall':{'id':'fc9',"
                "'name':'f','args':{}}}]},{'role':'user','parts':["
                "{'functionResponse':{'id':'fc9','name':'f','response':{'ok':1}}}]}]}",
                0);

    ck_assert_str_eq(
        nebula_json_gets(c, "messages", "#0", "tool_calls", "#0", "id", NULL), "fc9");
    ck_assert_str_eq(nebula_json_gets(c, "messages", "#1", "tool_call_id", NULL), "fc9");
}
END_TEST

START_TEST(g2c_req_tool_config_and_schema)
{
    static const char *const modes[][2] = {
        {"{'mode':'AUTO'}", "'auto'"},
        {"{'mode':'NONE'}", "'none'"},
        {"{'mode':'ANY'}", "'required'"},
        {"{'mode':'ANY','allowedFunctionNames':['b']}",
         "{'type':'function','function':{'name':'b'}}"},
    };
    const char *tools = "'tools':[{'functionDeclarations':[{'name':'a'},{'name':'b'},"
                        "{'name':'c'}]}]";
    json_t *c;
    size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); ++i) {
        c = g2c_req(apr_psprintf(unit_pool,
                                 "{'contents':[{'parts':[{'text':'x'}]}],%s,"
                                 "'toolConfig':{'functionCallingConfig':%s}}",
                                 tools, modes[i][0]),
                    0);
        ck_assert_json(json_object_get(c, "tool_choice"), modes[i][1]);
        ck_assert_int_eq(json_array_size(json_object_get(c, "tools")), 3);
    }
    /* several allowed names: "required" over just those tools */
    c = g2c_req(apr_psprintf(unit_pool,
                             "{'contents':[{'parts':[{'text':'x'}]}],%s,'toolConfig':{"
                             "'functionCallingConfig':{'mode':'ANY',"
                             "'allowedFunctionNames':['a','c']}}}",
                             tools),
                0);
    ck_assert_json(json_object_get(c, "tool_choice"), "'required'");
    ck_assert_int_eq(json_array_size(json_object_get(c, "tools")), 2);
    ck_assert_str_eq(nebula_json_gets(c, "tools", "#1", "function", "name", NULL), "c");
    /* parametersJsonSchema is JSON Schema already: copied as it is */
    c = g2c_req(
        "{'contents':[{'parts':[{'text':'x'}]}],'tools':[{'function_declarations':[{"
        "'name':'q','parametersJsonSchema':{'type':'object','properties':{'a':{"
        "'type':'string'}},'additionalProperties':false}}]}]}",
        0);
    ck_assert_json(
        json_object_get(c, "tools"),
        "[{'type':'function','function':{'name':'q','parameters':{'type':'object',"
        "'properties':{'a':{'type':'string'}},'additionalProperties':false}}}]");
    ck_assert_ptr_null(json_object_get(c, "tool_choice"));
    /* responseSchema comes back as JSON Schema */
    c = g2c_req("{'contents':[{'parts':[{'text':'x'}]}],'generationConfig':{"
                "'responseMimeType':'application/json','responseSchema':{'type':'ARRAY',"
                "'items':{'type':'OBJECT','properties':{'n':{'type':'INTEGER'}},"
                "'propertyOrdering':['n']}}}}",
                0);
    ck_assert_json(json_object_get(c, "response_format"),
                   "{'type':'json_schema','json_schema':{'name':'response','schema':{"
                   "'type':'array','items':{'type':'object','properties':{'n':{'type':"
                   "'integer'}},'propertyOrdering':['n']}}}}");
}
END_TEST

START_TEST(g2c_req_refusals)
{
    static const char *const shapes[] = {
        "null", "1", "'s'", "[]", "true", "{}", "{'contents':{}}", "{'contents':[]}"};
    size_t i;

    for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); ++i) {
        const char *err = NULL;

        ck_assert_ptr_null(
            nebula_conv_gemini_req_to_chat(unit_pool, J(shapes[i]), "m", 0, &err));
        ck_assert_ptr_nonnull(err);
    }
    ck_refuses_g2c("{'contents':[[]]}",
                   "contents[0] must be an object with a parts array");
    ck_refuses_g2c("{'contents':[{'role':'user'}]}", "contents[0] must be an object");
    ck_refuses_g2c("{'contents':[{'parts':'hi'}]}", "contents[0] must be an object");
    ck_refuses_g2c("{'contents':[{'role':7,'parts':[]}]}",
                   "contents[0] must be an object");
    ck_refuses_g2c("{'contents':[{'parts':[{'text':'a'},'b']}]}",
                   "contents[0].parts[1] must be an object");
    ck_refuses_g2c("{'contents':[{'role':'system','parts':[{'text':'a'}]}]}",
                   "role must be user or model");
    ck_refuses_g2c("{'contents':[{'parts':[{'executableCode':{'code':'1'}}]}]}",
                   "contents[0].parts[0]: unsupported or malformed part");
    ck_refuses_g2c("{'contents':[{'role':'model','parts':[{'inlineData':{}}]}]}",
                   "unsupported or malformed part in a model turn");
    ck_refuses_g2c(
        "{'contents':[{'role':'model','parts':[{'functionCall':{'args':{}}}]}]}",
        "functionCall needs a name");
    ck_refuses_g2c("{'contents':[{'parts':[{'functionResponse':{'name':'f',"
                   "'response':{}}}]}]}",
                   "functionResponse f answers no earlier functionCall");
    ck_refuses_g2c("{'systemInstruction':{'parts':[{'inlineData':{}}]},"
                   "'contents':[{'parts':[{'text':'a'}]}]}",
                   "systemInstruction.parts may hold text only");
    ck_refuses_g2c("{'contents':[{'parts':[{'text':'a'}]}],'generationConfig':[]}",
                   "generationConfig must be an object");
    ck_refuses_g2c("{'contents':[{'parts':[{'text':'a'}]}],"
                   "'generationConfig':{'temperature':'x'}}",
                   "generationConfig.temperature must be a number");
    ck_refuses_g2c("{'contents':[{'parts':[{'text':'a'}]}],"
                   "'generationConfig':{'stopSequences':'x'}}",
                   "stopSequences must be an array of strings");
    ck_refuses_g2c(
        "{'contents':[{'parts':[{'text':'a'}]}],'tools':[{'googleSearch':{}}]}",
        "the googleSearch tool cannot be relayed");
    ck_refuses_g2c("{'contents':[{'parts':[{'text':'a'}]}],'tools':{}}",
                   "tools must be an array");
    ck_refuses_g2c(
        "{'contents':[{'parts':[{'text':'a'}]}],'cachedContent':'cachedContents/1'}",
        "cachedContent cannot be relayed");
}
END_TEST

/* ---- complete responses ------------------------------------------------------ */

START_TEST(g2c_resp_text_thought_usage)
{
    json_t *c = nebula_conv_gemini_resp_to_chat(
        unit_pool,
        J("{'candidates':[{'content':{'role':'model','parts':[{'text':'Plan','thought':"
          "true},"
          "{'text':'Hello '},{'text':'world'}]},'finishReason':'STOP','index':0,"
          "'safetyRatings':[]}],'usageMetadata':{'promptTokenCount':100,"
          "'cachedContentTokenCount':40,'candidatesTokenCount':20,'thoughtsTokenCount':"
          "30,"
          "'totalTokenCount':150},'modelVersion':'gemini-2.5-flash','responseId':'r1'}"),
        "my-model");

    ck_assert(json_is_integer(json_object_get(c, "created")));
    json_object_del(c, "created");
    ck_assert_json(c, "{'id':'chatcmpl-r1','object':'chat.completion','model':'my-model',"
                      "'choices':[{'index':0,'message':{'role':'assistant','content':"
                      "'Hello world','reasoning_content':'Plan'},'finish_reason':'stop',"
                      "'logprobs':null}],'usage':{'prompt_tokens':100,"
                      "'completion_tokens':50,'total_tokens':150,"
                      "'prompt_tokens_details':{'cached_tokens':40},"
                      "'completion_tokens_details':{'reasoning_tokens':30}}}");
}
END_TEST

START_TEST(g2c_resp_function_calls_and_candidates)
{
    json_t *c = nebula_conv_gemini_resp_to_chat(
        unit_pool,
        J("{'candidates':[{'content':{'role':'model','parts':[{'functionCall':{"
          "'name':'get_weather','args':{'city':'Paris'}}},{'functionCall':{'name':'now'}}"
          "]},"
          "'finishReason':'STOP','index':0},"
          "{'content':{'role':'model','parts':[{'text':'Par'}]},'finishReason':'MAX_"
          "TOKENS',"
          "'index':1}],'modelVersion':'gemini-2.0'}"),
        NULL);

    ck_assert_str_eq(nebula_json_gets(c, "model", NULL), "gemini-2.0");
    ck_assert(!strncmp(nebula_json_gets(c, "id", NULL), "chatcmpl-", 9));
    ck_assert_int_gt(strlen(nebula_json_gets(c, "id", NULL)), 20);
    ck_assert_ptr_null(json_object_get(c, "usage"));
    ck_assert_json(
        json_object_get(c, "choices"),
        "[{'index':0,'message':{'role':'assistant','content':null,'tool_calls':["
        "{'id':'call_0','type':'function','function':{'name':'get_weather',"
        "'arguments':'{\\'city\\':\\'Paris\\'}'}},"
        "{'id':'call_1','type':'function','function':{'name':'now',"
        "'arguments':'{}'}}]},'finish_reason':'tool_calls','logprobs':null},"
        "{'index':1,'message':{'role':'assistant','content':'Par'},"
        "'finish_reason':'length','logprobs':null}]");
}
END_TEST

START_TEST(g2c_resp_finish_reasons)
{
    static const char *const map[][2] = {
        {"STOP", "stop"},
        {"MAX_TOKENS", "length"},
        {"SAFETY", "content_filter"},
        {"RECITATION", "content_filter"},
        {"BLOCKLIST", "content_filter"},
        {"PROHIBITED_CONTENT", "content_filter"},
        {"SPII", "content_filter"},
        {"IMAGE_SAFETY", "content_filter"},
        {"OTHER", "stop"},
        {"MALFORMED_FUNCTION_CALL", "stop"},
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        json_t *c = nebula_conv_gemini_resp_to_chat(
            unit_pool,
            J(apr_psprintf(unit_pool,
                           "{'candidates':[{'content':{'parts':[{'text':'x'}]},"
                           "'finishReason':'%s'}]}",
                           map[i][0])),
            "m");
        ck_assert_str_eq(nebula_json_gets(c, "choices", "#0", "finish_reason", NULL),
                         map[i][1]);
    }
}
END_TEST

START_TEST(g2c_resp_prompt_blocked)
{
    json_t *c = nebula_conv_gemini_resp_to_chat(
        unit_pool,
        J("{'promptFeedback':{'blockReason':'SAFETY','safetyRatings':[]},"
          "'usageMetadata':{'promptTokenCount':8,'totalTokenCount':8},'responseId':'b'}"),
        "m");

    json_object_del(c, "created");
    ck_assert_json(c, "{'id':'chatcmpl-b','object':'chat.completion','model':'m',"
                      "'choices':[{'index':0,'message':{'role':'assistant','content':''},"
                      "'finish_reason':'content_filter','logprobs':null}],"
                      "'usage':{'prompt_tokens':8,'completion_tokens':0,'total_tokens':8,"
                      "'prompt_tokens_details':{'cached_tokens':0},"
                      "'completion_tokens_details':{'reasoning_tokens':0}}}");
    ck_assert_ptr_null(nebula_conv_gemini_resp_to_chat(unit_pool, J("[]"), "m"));
    ck_assert_ptr_null(nebula_conv_gemini_resp_to_chat(unit_pool, NULL, "m"));
}
END_TEST

START_TEST(c2g_resp_full)
{
    json_t *g = nebula_conv_chat_resp_to_gemini(
        unit_pool,
        J("{'id':'chatcmpl-9','object':'chat.completion','created':1,'model':'gpt-4o',"
          "'choices':[{'index':0,'message':{'role':'assistant','content':'Sure.',"
          "'reasoning_content':'think','tool_calls':[{'id':'c1','type':'function',"
          "'function':{'name':'f','arguments':'{\\'a\\':1}'}}]},'finish_reason':'tool_"
          "calls'},"
          "{'index':1,'message':{'role':'assistant','content':'Cut'},"
          "'finish_reason':'length'},"
          "{'index':2,'message':{'role':'assistant','content':null},"
          "'finish_reason':'content_filter'}],"
          "'usage':{'prompt_tokens':50,'completion_tokens':30,'total_tokens':80,"
          "'prompt_tokens_details':{'cached_tokens':10},"
          "'completion_tokens_details':{'reasoning_tokens':12}}}"));

    ck_assert_json(
        g, "{'candidates':["
           "{'content':{'role':'model','parts':[{'text':'think','thought':true},"
           "{'text':'Sure.'},{'functionCall':{'name':'f','args':{'a':1}}}]},"
           "'finishReason':'STOP','index':0},"
           "{'content':{'role':'model','parts':[{'text':'Cut'}]},"
           "'finishReason':'MAX_TOKENS','index':1},"
           "{'content':{'role':'model','parts':[{'text':''}]},"
           "'finishReason':'SAFETY','index':2}],"
           "'usageMetadata':{'promptTokenCount':50,'candidatesTokenCount':18,"
           "'thoughtsTokenCount':12,'cachedContentTokenCount':10,"
           "'totalTokenCount':80},'modelVersion':'gpt-4o','responseId':'chatcmpl-9'}");
    ck_assert_ptr_null(nebula_conv_chat_resp_to_gemini(unit_pool, J("'x'")));
}
END_TEST

START_TEST(resp_round_trip_gemini_chat_gemini)
{
    json_t *orig =
        J("{'candidates':[{'content':{'role':'model','parts':[{'text':'Hi'},"
          "{'functionCall':{'name':'f','args':{'q':[1,2]}}}]},"
          "'finishReason':'STOP','index':0}],'usageMetadata':{"
          "'promptTokenCount':7,'candidatesTokenCount':3,'thoughtsTokenCount':2,"
          "'totalTokenCount':12},'modelVersion':'g'}");
    json_t *chat = nebula_conv_gemini_resp_to_chat(unit_pool, orig, NULL);
    json_t *back = nebula_conv_chat_resp_to_gemini(unit_pool, chat);

    json_object_del(back, "responseId");
    ck_assert_json(back,
                   "{'candidates':[{'content':{'role':'model','parts':[{'text':'Hi'},"
                   "{'functionCall':{'name':'f','args':{'q':[1,2]}}}]},"
                   "'finishReason':'STOP','index':0}],'usageMetadata':{"
                   "'promptTokenCount':7,'candidatesTokenCount':3,"
                   "'thoughtsTokenCount':2,'totalTokenCount':12},'modelVersion':'g'}");
}
END_TEST

/* ---- usage and errors ---------------------------------------------------------- */

START_TEST(usage_math)
{
    nebula_usage_t u, keep = {.prompt_tokens = -9};

    ck_assert_int_eq(nebula_conv_gemini_usage(J("{'promptTokenCount':100,"
                                                "'cachedContentTokenCount':40,"
                                                "'candidatesTokenCount':20,"
                                                "'thoughtsTokenCount':30,"
                                                "'toolUsePromptTokenCount':5,"
                                                "'totalTokenCount':155}"),
                                              &u),
                     1);
    ck_assert_int_eq(u.prompt_tokens, 105);
    ck_assert_int_eq(u.completion_tokens, 50);
    ck_assert_int_eq(u.cached_tokens, 40);
    ck_assert_int_eq(u.total_tokens, 155);
    ck_assert_int_eq(u.prompt_excludes_cache, 0);
    ck_assert_int_eq(u.cache_write_tokens, 0);
    ck_assert_int_eq(u.estimated, 0);
    /* counts that are zero are left out by Gemini; the total is made up */
    ck_assert_int_eq(nebula_conv_gemini_usage(J("{'promptTokenCount':9}"), &u), 1);
    ck_assert_int_eq(u.prompt_tokens, 9);
    ck_assert_int_eq(u.completion_tokens, 0);
    ck_assert_int_eq(u.total_tokens, 9);
    ck_assert_int_eq(nebula_conv_gemini_usage(J("{'promptTokenCount':-3,"
                                                "'candidatesTokenCount':1}"),
                                              &u),
                     1);
    ck_assert_int_eq(u.prompt_tokens, -3);
    u = keep;
    ck_assert_int_eq(nebula_conv_gemini_usage(J("{'promptTokenCount':1.5}"), &u), 0);
    ck_assert_int_eq(nebula_conv_gemini_usage(J("{'promptTokenCount':1,"
                                                "'thoughtsTokenCount':'2'}"),
                                              &u),
                     0);
    ck_assert_int_eq(nebula_conv_gemini_usage(J("{}"), &u), 0);
    ck_assert_int_eq(nebula_conv_gemini_usage(J("[1]"), &u), 0);
    ck_assert_int_eq(nebula_conv_gemini_usage(NULL, &u), 0);
    ck_assert_int_eq(u.prompt_tokens, -9);
}
END_TEST

START_TEST(error_bodies)
{
    static const struct {
        int status;
        const char *name;
    } map[] = {{400, "INVALID_ARGUMENT"},  {401, "UNAUTHENTICATED"},
               {403, "PERMISSION_DENIED"}, {404, "NOT_FOUND"},
               {413, "INVALID_ARGUMENT"},  {429, "RESOURCE_EXHAUSTED"},
               {500, "INTERNAL"},          {502, "UNAVAILABLE"},
               {503, "UNAVAILABLE"},       {504, "DEADLINE_EXCEEDED"}};
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        json_t *e = nebula_conv_gemini_error(unit_pool, map[i].status, "no \"luck\"");
        ck_assert_json(e, apr_psprintf(unit_pool,
                                       "{'error':{'code':%d,'message':'no \\'luck\\'',"
                                       "'status':'%s'}}",
                                       map[i].status, map[i].name));
    }
    ck_assert_json(nebula_conv_gemini_error(unit_pool, 500, NULL),
                   "{'error':{'code':500,'message':'','status':'INTERNAL'}}");
    ck_assert_json(
        nebula_conv_gemini_error(unit_pool, 400, "bad \xff byte"),
        "{'error':{'code':400,'message':'bad ? byte','status':'INVALID_ARGUMENT'}}");
}
END_TEST

/* ---- embeddings ------------------------------------------------------------------ */

START_TEST(embed_both_ways)
{
    const char *err = "unset";
    json_t *o = nebula_conv_gemini_embed_req_to_openai(
        unit_pool,
        J("{'model':'models/text-embedding-004','content':{'parts':[{'text':'Hello'},"
          "{'text':'world'}]},'taskType':'RETRIEVAL_QUERY','outputDimensionality':256}"),
        "text-embedding-3-small", &err);

    ck_assert_ptr_null(err);
    ck_assert_json(o, "{'model':'text-embedding-3-small','input':'Hello\\nworld',"
                      "'encoding_format':'float','dimensions':256}");
    ck_assert_json(nebula_conv_openai_embed_resp_to_gemini(
                       unit_pool, J("{'object':'list','data':[{'object':'embedding',"
                                    "'index':0,'embedding':[0.5,-1,0.25]}],"
                                    "'model':'m','usage':{'prompt_tokens':2,"
                                    "'total_tokens':2}}")),
                   "{'embedding':{'values':[0.5,-1,0.25]}}");
    ck_assert_ptr_null(nebula_conv_openai_embed_resp_to_gemini(
        unit_pool, J("{'data':[{'embedding':'AAAA'}]}")));
    ck_assert_ptr_null(nebula_conv_openai_embed_resp_to_gemini(
        unit_pool, J("{'data':[{'embedding':[1,'x']}]}")));
    ck_assert_ptr_null(
        nebula_conv_openai_embed_resp_to_gemini(unit_pool, J("{'data':[]}")));
    ck_assert_ptr_null(nebula_conv_openai_embed_resp_to_gemini(unit_pool, J("7")));
}
END_TEST

START_TEST(embed_refusals)
{
    static const char *const bad[][2] = {
        {"[]", "content.parts must be a non-empty array"},
        {"{'content':{'parts':[]}}", "content.parts must be a non-empty array"},
        {"{'content':'hi'}", "content.parts must be a non-empty array"},
        {"{'content':{'parts':[{'inlineData':{}}]}}",
         "content.parts[0] must be a text part"},
        {"{'content':{'parts':[{'text':''}]}}", "hold no text"},
        {"{'content':{'parts':[{'text':'a'}]},'outputDimensionality':'9'}",
         "outputDimensionality must be an integer"},
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        const char *err = NULL;

        ck_assert_ptr_null(
            nebula_conv_gemini_embed_req_to_openai(unit_pool, J(bad[i][0]), "m", &err));
        ck_assert_msg(err && strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
}
END_TEST

/* ---- streams ------------------------------------------------------------------------
 */

#define CHUNK_HEAD                                                                       \
    "'id':'chatcmpl-resp7','object':'chat.completion.chunk','created':%d,"               \
    "'model':'gemini-2.5-flash'"

static const char *chunk_want(const nebula_conv_event_t *ev, const char *choice)
{
    return apr_psprintf(unit_pool, "{" CHUNK_HEAD ",'choices':[%s]}",
                        (int)nebula_json_geti(ev->data, -1, "created", NULL), choice);
}

START_TEST(g2c_stream_chunk_by_chunk)
{
    static const char *const in[] = {
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'Plan','thought':"
        "true}]},"
        "'index':0}],'usageMetadata':{'promptTokenCount':10,'totalTokenCount':10},"
        "'modelVersion':'gemini-2.5-flash','responseId':'resp7'}",
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'Hel'},{'text':'lo'}]"
        "},"
        "'index':0}],'modelVersion':'gemini-2.5-flash','responseId':'resp7'}",
        "{'candidates':[{'content':{'role':'model','parts':[{'functionCall':{'name':'f',"
        "'args':{'x':1}}},{'text':''}]},'finishReason':'STOP','index':0}],"
        "'usageMetadata':{'promptTokenCount':10,'candidatesTokenCount':4,"
        "'thoughtsTokenCount':6,'totalTokenCount':20},"
        "'modelVersion':'gemini-2.5-flash','responseId':'resp7'}",
    };
    static const int counts[] = {2, 2, 2};
    static const char *const want[] = {
        "{'index':0,'delta':{'role':'assistant','content':''},'finish_reason':null}",
        "{'index':0,'delta':{'reasoning_content':'Plan'},'finish_reason':null}",
        "{'index':0,'delta':{'content':'Hel'},'finish_reason':null}",
        "{'index':0,'delta':{'content':'lo'},'finish_reason':null}",
        "{'index':0,'delta':{'tool_calls':[{'index':0,'id':'call_0','type':'function',"
        "'function':{'name':'f','arguments':'{\\'x\\':1}'}}]},'finish_reason':null}",
        "{'index':0,'delta':{},'finish_reason':'tool_calls'}",
    };
    nebula_conv_g2c_t *st = nebula_conv_g2c_create(unit_pool, NULL);
    apr_array_header_t *out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    nebula_usage_t u;
    int i, k = 0, j;

    ck_assert_int_eq(nebula_conv_g2c_usage(st, &u), 0);
    for (i = 0; i < 3; ++i) {
        int before = out->nelts;

        ck_assert_int_eq(nebula_conv_g2c_done(st), 0);
        nebula_conv_g2c_feed(st, J(in[i]), out);
        ck_assert_int_eq(out->nelts - before, counts[i]);
        for (j = before; j < out->nelts; ++j, ++k) {
            nebula_conv_event_t *ev = &APR_ARRAY_IDX(out, j, nebula_conv_event_t);
            ck_assert_ptr_null(ev->event);
            ck_assert_json(ev->data, chunk_want(ev, want[k]));
        }
        if (i == 0) {
            ck_assert_int_eq(nebula_conv_g2c_usage(st, &u), 1);
            ck_assert_int_eq(u.prompt_tokens, 10);
        }
    }
    ck_assert_int_eq(nebula_conv_g2c_done(st), 1);
    ck_assert_int_eq(nebula_conv_g2c_usage(st, &u), 1);
    ck_assert_int_eq(u.prompt_tokens, 10);
    ck_assert_int_eq(u.completion_tokens, 10);
    ck_assert_int_eq(u.total_tokens, 20);
}
END_TEST

START_TEST(g2c_stream_blocked_candidates_and_noise)
{
    nebula_conv_g2c_t *st = nebula_conv_g2c_create(unit_pool, "m");
    apr_array_header_t *out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    json_t *ev;

    /* noise: ignored without a crash */
    nebula_conv_g2c_feed(st, NULL, out);
    nebula_conv_g2c_feed(st, J("[1,2]"), out);
    ck_assert_int_eq(out->nelts, 0);
    nebula_conv_g2c_feed(st, J("{'candidates':'x','promptFeedback':7}"), out);
    nebula_conv_g2c_feed(st, J("{'candidates':[1,{'index':99},{'index':-1}]}"), out);
    ck_assert_int_eq(out->nelts, 0);
    ck_assert_int_eq(nebula_conv_g2c_done(st), 0);
    /* a blocked prompt: the role chunk, then the end */
    nebula_conv_g2c_feed(st, J("{'promptFeedback':{'blockReason':'PROHIBITED_CONTENT'}}"),
                         out);
    ck_assert_int_eq(nebula_conv_g2c_done(st), 1);
    ev = events(out, 0);
    ck_assert_int_eq(json_array_size(ev), 2);
    ck_assert_json(nebula_json_getj(ev, "#0", "choices", NULL),
                   "[{'index':0,'delta':{'role':'assistant','content':''},"
                   "'finish_reason':null}]");
    ck_assert_json(nebula_json_getj(ev, "#1", "choices", NULL),
                   "[{'index':0,'delta':{},'finish_reason':'content_filter'}]");
    ck_assert_str_eq(nebula_json_gets(ev, "#1", "model", NULL), "m");
    ck_assert_str_eq(nebula_json_gets(ev, "#0", "id", NULL),
                     nebula_json_gets(ev, "#1", "id", NULL));

    /* two candidates in one chunk; an error event mid-stream */
    st = nebula_conv_g2c_create(unit_pool, "m");
    out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    nebula_conv_g2c_feed(st,
                         J("{'candidates':[{'content':{'parts':[{'text':'a'}]},"
                           "'finishReason':'SAFETY','index':0},"
                           "{'content':{'parts':[{'text':'b'}]},'index':1}]}"),
                         out);
    nebula_conv_g2c_feed(st,
                         J("{'error':{'code':503,'message':'overloaded',"
                           "'status':'UNAVAILABLE'}}"),
                         out);
    ev = events(out, 0);
    ck_assert_int_eq(json_array_size(ev), 6);
    ck_assert_json(nebula_json_getj(ev, "#2", "choices", NULL),
                   "[{'index':0,'delta':{},'finish_reason':'content_filter'}]");
    ck_assert_json(nebula_json_getj(ev, "#3", "choices", NULL),
                   "[{'index':1,'delta':{'role':'assistant','content':''},"
                   "'finish_reason':null}]");
    ck_assert_json(nebula_json_getj(ev, "#4", "choices", NULL),
                   "[{'index':1,'delta':{'content':'b'},'finish_reason':null}]");
    ck_assert_json(json_array_get(ev, 5),
                   "{'error':{'message':'overloaded','type':'UNAVAILABLE','param':null,"
                   "'code':503}}");
}
END_TEST

START_TEST(c2g_stream_chunk_by_chunk)
{
    static const char *const in[] = {
        "{'id':'chatcmpl-1','object':'chat.completion.chunk','created':5,'model':'gpt-4o'"
        ","
        "'choices':[{'index':0,'delta':{'role':'assistant','content':''},"
        "'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{"
        "'reasoning_content':'hmm'},'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{"
        "'content':'Let me check.'},'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{'tool_calls':"
        "["
        "{'index':0,'id':'call_x','type':'function','function':{'name':'get_weather',"
        "'arguments':''}}]},'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{'tool_calls':"
        "["
        "{'index':0,'function':{'arguments':'{\\'city\\':'}}]},'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{'tool_calls':"
        "["
        "{'index':0,'function':{'arguments':'\\'Paris\\'}'}},{'index':1,'id':'call_y',"
        "'function':{'name':'now','arguments':'{}'}}]},'finish_reason':null}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[{'index':0,'delta':{},"
        "'finish_reason':'tool_calls'}]}",
        "{'id':'chatcmpl-1','model':'gpt-4o','choices':[],'usage':{'prompt_tokens':11,"
        "'completion_tokens':7,'total_tokens':18}}",
    };
    static const char *const want[] = {
        NULL,
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'hmm','thought':true}"
        "]},"
        "'index':0}],'modelVersion':'my-gemini','responseId':'chatcmpl-1'}",
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'Let me check.'}]},"
        "'index':0}],'modelVersion':'my-gemini','responseId':'chatcmpl-1'}",
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
    };
    nebula_conv_c2g_t *st = nebula_conv_c2g_create(unit_pool, "my-gemini");
    apr_array_header_t *out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    nebula_usage_t u = {0};
    size_t i;

    for (i = 0; i < sizeof(in) / sizeof(in[0]); ++i) {
        int before = out->nelts;

        nebula_conv_c2g_feed(st, J(in[i]), out);
        if (want[i] == NULL) {
            ck_assert_msg(out->nelts == before, "chunk %d gave an event", (int)i);
            continue;
        }
        ck_assert_int_eq(out->nelts, before + 1);
        ck_assert_ptr_null(APR_ARRAY_IDX(out, before, nebula_conv_event_t).event);
        ck_assert_json(APR_ARRAY_IDX(out, before, nebula_conv_event_t).data, want[i]);
    }
    ck_assert_int_eq(
        nebula_conv_chat_usage(nebula_json_getj(J(in[7]), "usage", NULL), &u), 1);
    nebula_conv_c2g_finish(st, &u, out);
    ck_assert_int_eq(out->nelts, 3);
    ck_assert_json(APR_ARRAY_IDX(out, 2, nebula_conv_event_t).data,
                   "{'candidates':[{'content':{'role':'model','parts':["
                   "{'functionCall':{'name':'get_weather','args':{'city':'Paris'}}},"
                   "{'functionCall':{'name':'now','args':{}}}]},'finishReason':'STOP',"
                   "'index':0}],'usageMetadata':{'promptTokenCount':11,"
                   "'candidatesTokenCount':7,'totalTokenCount':18},"
                   "'modelVersion':'my-gemini','responseId':'chatcmpl-1'}");
    /* finish() once: later calls and feeds add nothing */
    nebula_conv_c2g_finish(st, &u, out);
    nebula_conv_c2g_feed(st, J(in[2]), out);
    ck_assert_int_eq(out->nelts, 3);
}
END_TEST

START_TEST(c2g_stream_finish_reasons_and_noise)
{
    nebula_conv_c2g_t *st = nebula_conv_c2g_create(unit_pool, NULL);
    apr_array_header_t *out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    nebula_usage_t anth = {.prompt_tokens = 5,
                           .cached_tokens = 100,
                           .cache_write_tokens = 20,
                           .completion_tokens = 3,
                           .prompt_excludes_cache = 1};

    nebula_conv_c2g_feed(st, NULL, out);
    nebula_conv_c2g_feed(st, J("{'choices':'x'}"), out);
    nebula_conv_c2g_feed(st,
                         J("{'choices':[7,{'index':40,'delta':{'content':'lost'}},"
                           "{'index':0,'delta':[]},{'index':0,'delta':{'tool_calls':"
                           "[1,{'index':'z'}]}}]}"),
                         out);
    ck_assert_int_eq(out->nelts, 0);
    nebula_conv_c2g_feed(
        st,
        J("{'id':'c9','model':'up','choices':[{'index':1,'delta':{"
          "'content':'B'},'finish_reason':'content_filter'},"
          "{'index':0,'delta':{'content':'A'},'finish_reason':'length'}]}"),
        out);
    ck_assert_int_eq(out->nelts, 1);
    ck_assert_json(APR_ARRAY_IDX(out, 0, nebula_conv_event_t).data,
                   "{'candidates':[{'content':{'role':'model','parts':[{'text':'B'}]},"
                   "'index':1},{'content':{'role':'model','parts':[{'text':'A'}]},"
                   "'index':0}],'modelVersion':'up','responseId':'c9'}");
    /* Anthropic-style usage: cached and written tokens go back into the prompt */
    nebula_conv_c2g_finish(st, &anth, out);
    ck_assert_json(
        APR_ARRAY_IDX(out, 1, nebula_conv_event_t).data,
        "{'candidates':[{'content':{'role':'model','parts':[{'text':''}]},"
        "'finishReason':'MAX_TOKENS','index':0},"
        "{'content':{'role':'model','parts':[{'text':''}]},"
        "'finishReason':'SAFETY','index':1}],'usageMetadata':{"
        "'promptTokenCount':125,'candidatesTokenCount':3,'totalTokenCount':128,"
        "'cachedContentTokenCount':100},'modelVersion':'up','responseId':'c9'}");

    /* only candidate 1 spoke: the last chunk ends just that one */
    st = nebula_conv_c2g_create(unit_pool, "g");
    out = apr_array_make(unit_pool, 2, sizeof(nebula_conv_event_t));
    nebula_conv_c2g_feed(
        st, J("{'choices':[{'index':1,'delta':{},'finish_reason':'stop'}]}"), out);
    nebula_conv_c2g_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 1);
    ck_assert_json(APR_ARRAY_IDX(out, 0, nebula_conv_event_t).data,
                   "{'candidates':[{'content':{'role':'model','parts':[{'text':''}]},"
                   "'finishReason':'STOP','index':1}],'modelVersion':'g'}");

    /* an upstream that ended without a word: one STOP candidate, no usage */
    st = nebula_conv_c2g_create(unit_pool, "g");
    out = apr_array_make(unit_pool, 2, sizeof(nebula_conv_event_t));
    nebula_conv_c2g_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 1);
    ck_assert_json(APR_ARRAY_IDX(out, 0, nebula_conv_event_t).data,
                   "{'candidates':[{'content':{'role':'model','parts':[{'text':''}]},"
                   "'finishReason':'STOP','index':0}],'modelVersion':'g'}");
}
END_TEST

START_TEST(stream_round_trip_g2c_then_c2g)
{
    static const char *const in[] = {
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'Hi '}]},'index':0}],"
        "'responseId':'r','modelVersion':'g'}",
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'there'}]},"
        "'finishReason':'STOP','index':0}],'usageMetadata':{'promptTokenCount':4,"
        "'candidatesTokenCount':2,'totalTokenCount':6},'responseId':'r','modelVersion':'"
        "g'}",
    };
    nebula_conv_g2c_t *g2c = nebula_conv_g2c_create(unit_pool, "g");
    nebula_conv_c2g_t *c2g = nebula_conv_c2g_create(unit_pool, "g");
    apr_array_header_t *mid = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    apr_array_header_t *out = apr_array_make(unit_pool, 8, sizeof(nebula_conv_event_t));
    nebula_usage_t u;
    json_t *ev;
    int i;

    for (i = 0; i < 2; ++i) {
        nebula_conv_g2c_feed(g2c, J(in[i]), mid);
    }
    for (i = 0; i < mid->nelts; ++i) {
        nebula_conv_c2g_feed(c2g, APR_ARRAY_IDX(mid, i, nebula_conv_event_t).data, out);
    }
    ck_assert_int_eq(nebula_conv_g2c_usage(g2c, &u), 1);
    nebula_conv_c2g_finish(c2g, &u, out);
    ev = events(out, 0);
    ck_assert_json(
        ev, "[{'candidates':[{'content':{'role':'model','parts':[{'text':'Hi '}]},"
            "'index':0}],'modelVersion':'g','responseId':'chatcmpl-r'},"
            "{'candidates':[{'content':{'role':'model','parts':[{'text':'there'}]},"
            "'index':0}],'modelVersion':'g','responseId':'chatcmpl-r'},"
            "{'candidates':[{'content':{'role':'model','parts':[{'text':''}]},"
            "'finishReason':'STOP','index':0}],'usageMetadata':{"
            "'promptTokenCount':4,'candidatesTokenCount':2,'totalTokenCount':6},"
            "'modelVersion':'g','responseId':'chatcmpl-r'}]");
}
END_TEST

/* Every converter over odd shapes: refusals come with a message, nothing
 * crashes (run under valgrind too). */
START_TEST(odd_shapes_everywhere)
{
    static const char *const shapes[] = {
        "null",
        "0",
        "'x'",
        "[]",
        "{}",
        "[{}]",
        "{'messages':[{'role':'user','content':[null]}]}",
        "{'messages':[{'role':'assistant','tool_calls':'x','function_call':1}]}",
        "{'messages':[{'role':'tool','content':{}}]}",
        "{'contents':[{'parts':[{'text':1}]}]}",
        "{'contents':[{'parts':[{'functionCall':[]}]}],'tools':[[]]}",
        "{'contents':[{'parts':[{'text':'a'}]}],'toolConfig':{'functionCallingConfig':"
        "{'mode':'WHAT'}},'tools':[{'functionDeclarations':[{'name':'f','parameters':[]}]"
        "}]}",
        "{'candidates':[{'content':{'parts':[{'functionCall':{'name':'f','args':'no'}},"
        "{'text':null},3]},'finishReason':9,'index':'z'}],'usageMetadata':[]}",
        "{'choices':[{'message':{'tool_calls':[{'function':{'name':'f','arguments':'{'}}]"
        "},"
        "'finish_reason':3}],'usage':{'prompt_tokens':'1'}}",
    };
    size_t i;

    for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); ++i) {
        json_t *in = J(shapes[i]);
        const char *err = NULL;
        nebula_usage_t u;
        nebula_conv_g2c_t *g2c = nebula_conv_g2c_create(unit_pool, NULL);
        nebula_conv_c2g_t *c2g = nebula_conv_c2g_create(unit_pool, NULL);
        apr_array_header_t *out =
            apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));

        if (!nebula_conv_chat_req_to_gemini(unit_pool, in, &err)) {
            ck_assert_msg(err != NULL, "c2g refusal without a message: %s", shapes[i]);
        }
        err = NULL;
        if (!nebula_conv_gemini_req_to_chat(unit_pool, in, "m", 1, &err)) {
            ck_assert_msg(err != NULL, "g2c refusal without a message: %s", shapes[i]);
        }
        err = NULL;
        if (!nebula_conv_gemini_embed_req_to_openai(unit_pool, in, "m", &err)) {
            ck_assert_msg(err != NULL, "embed refusal without a message: %s", shapes[i]);
        }
        nebula_conv_gemini_resp_to_chat(unit_pool, in, NULL);
        nebula_conv_chat_resp_to_gemini(unit_pool, in);
        nebula_conv_openai_embed_resp_to_gemini(unit_pool, in);
        nebula_conv_gemini_usage(in, &u);
        nebula_conv_g2c_feed(g2c, in, out);
        nebula_conv_c2g_feed(c2g, in, out);
        nebula_conv_c2g_finish(c2g, NULL, out);
        ck_assert_int_ge(out->nelts, 1);
    }
    /* a candidate whose functionCall args is no object gives "{}" */
    ck_assert_str_eq(
        nebula_json_gets(nebula_conv_gemini_resp_to_chat(unit_pool, J(shapes[12]), "m"),
                         "choices", "#0", "message", "tool_calls", "#0", "function",
                         "arguments", NULL),
        "{}");
}
END_TEST

Suite *unit_conv_gemini_suite(void)
{
    Suite *s = suite_create("conv_gemini");
    TCase *tc = tcase_create("conv_gemini");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, c2g_req_system_roles_config);
    tcase_add_test(tc, c2g_req_merges_turns_and_stop_array);
    tcase_add_test(tc, c2g_req_images_and_media);
    tcase_add_test(tc, c2g_req_tools_schema_and_choice);
    tcase_add_test(tc, c2g_req_tool_round_trip);
    tcase_add_test(tc, c2g_req_response_format);
    tcase_add_test(tc, c2g_req_refusals);
    tcase_add_test(tc, g2c_req_system_roles_config);
    tcase_add_test(tc, g2c_req_snake_case_spelling);
    tcase_add_test(tc, g2c_req_media_parts);
    tcase_add_test(tc, g2c_req_tool_round_trip);
    tcase_add_test(tc, g2c_req_call_ids_kept);
    tcase_add_test(tc, g2c_req_tool_config_and_schema);
    tcase_add_test(tc, g2c_req_refusals);
    tcase_add_test(tc, g2c_resp_text_thought_usage);
    tcase_add_test(tc, g2c_resp_function_calls_and_candidates);
    tcase_add_test(tc, g2c_resp_finish_reasons);
    tcase_add_test(tc, g2c_resp_prompt_blocked);
    tcase_add_test(tc, c2g_resp_full);
    tcase_add_test(tc, resp_round_trip_gemini_chat_gemini);
    tcase_add_test(tc, usage_math);
    tcase_add_test(tc, error_bodies);
    tcase_add_test(tc, embed_both_ways);
    tcase_add_test(tc, embed_refusals);
    tcase_add_test(tc, g2c_stream_chunk_by_chunk);
    tcase_add_test(tc, g2c_stream_blocked_candidates_and_noise);
    tcase_add_test(tc, c2g_stream_chunk_by_chunk);
    tcase_add_test(tc, c2g_stream_finish_reasons_and_noise);
    tcase_add_test(tc, stream_round_trip_g2c_then_c2g);
    tcase_add_test(tc, odd_shapes_everywhere);
    suite_add_tcase(s, tc);
    return s;
}

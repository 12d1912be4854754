/* test_conv_anthropic.c: nebula_conv_anthropic both ways: requests (system,
 * images, tool use and results, tools and tool_choice, options, required
 * fields, malformed bodies of every shape), complete answers (stop reasons,
 * usage and cache math), usage parsing, error bodies, and both stream state
 * machines checked event by event. Field shapes follow the official SDKs. */
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "nebula_conv_anthropic.h"
#include "nebula_json.h"
#include "nebula_unit.h"

/* JSON written with ' for " and ` for \" (no test text holds either). */
static json_t *J(const char *s)
{
    char *t = apr_palloc(unit_pool, strlen(s) * 2 + 1), *o = t;
    const char *err = NULL;
    json_t *j;

    for (; *s; ++s) {
        if (*s == '`') {
            *o++ = '\\';
            *o++ = '"';
        }
        else {
            *o++ = *s == '\'' ? '"' : *s;
        }
    }
    *o = '\0';
    j = nebula_json_parse(unit_pool, t, strlen(t), 0, &err);
    ck_assert_msg(j != NULL, "bad test JSON %s: %s", t, err);
    return j;
}

static const char *dump(const json_t *j)
{
    return j ? nebula_json_dumps(unit_pool, j, JSON_SORT_KEYS) : "(NULL)";
}

#define ck_json_eq(got, want) check_json(__LINE__, (got), (want))
static void check_json(int line, const json_t *got, const char *want)
{
    json_t *w = J(want);

    ck_assert_msg(got != NULL && json_equal(got, w), "line %d:\n got  %s\n want %s", line,
                  dump(got), dump(w));
}

/* A converted request must be NULL with an error naming @a needle (the
 * conversion runs before err is read). */
#define ck_refused(call, err, needle)                                                    \
    do {                                                                                 \
        const json_t *refused_ = (call);                                                 \
        check_refused(__LINE__, refused_, (err), (needle));                              \
    } while (0)
static void check_refused(int line, const json_t *j, const char *err, const char *needle)
{
    ck_assert_msg(j == NULL, "line %d: accepted: %s", line, dump(j));
    ck_assert_msg(err != NULL && *err, "line %d: no error message", line);
    ck_assert_msg(strstr(err, needle) != NULL, "line %d: error \"%s\" lacks \"%s\"", line,
                  err, needle);
}

/* Check and remove "created" (seconds, now) from a copy of @a j. */
static json_t *without_created(const json_t *j)
{
    json_t *c = nebula_json_own(unit_pool, json_deep_copy(j));
    apr_int64_t t = nebula_json_geti(c, -1, "created", NULL);
    apr_int64_t now = apr_time_sec(apr_time_now());

    ck_assert_msg(t >= now - 5 && t <= now, "created %" APR_INT64_T_FMT " is not now", t);
    json_object_del(c, "created");
    return c;
}

/* ---- Anthropic request -> chat ------------------------------------------ */

START_TEST(req_a2c_text_and_options)
{
    const char *err = NULL;
    json_t *out = nebula_conv_anthropic_req_to_chat(
        unit_pool,
        J("{'model':'claude-x','max_tokens':256,'system':'Be brief.',"
          "'messages':[{'role':'user','content':'Hi'},{'role':'assistant','content':'"
          "Hello'},"
          "{'role':'user','content':'Bye'}],'temperature':0.5,'top_p':0.9,'top_k':40,"
          "'stop_sequences':['END','STOP'],'metadata':{'user_id':'u-1'}}"),
        &err);

    ck_assert_ptr_null(err);
    ck_json_eq(out,
               "{'model':'claude-x','messages':[{'role':'system','content':'Be brief.'},"
               "{'role':'user','content':'Hi'},{'role':'assistant','content':'Hello'},"
               "{'role':'user','content':'Bye'}],'max_tokens':256,'temperature':0.5,"
               "'top_p':0.9,'stop':['END','STOP'],'user':'u-1'}");
}
END_TEST

START_TEST(req_a2c_system_blocks_drop_cache_control)
{
    const char *err = NULL;
    json_t *out = nebula_conv_anthropic_req_to_chat(
        unit_pool,
        J("{'model':'m','max_tokens':1,'system':[{'type':'text','text':'A',"
          "'cache_control':{'type':'ephemeral'}},{'type':'text','text':'B'}],"
          "'messages':[{'role':'user','content':[{'type':'text','text':'Q',"
          "'cache_control':{'type':'ephemeral'}}]}]}"),
        &err);

    ck_json_eq(json_object_get(out, "messages"),
               "[{'role':'system','content':'A\\n\\nB'},{'role':'user','content':'Q'}]");
}
END_TEST

START_TEST(req_a2c_images)
{
    const char *err = NULL;
    json_t *out = nebula_conv_anthropic_req_to_chat(
        unit_pool,
        J("{'model':'m','max_tokens':9,'messages':[{'role':'user','content':["
          "{'type':'text','text':'What?'},"
          "{'type':'image','source':{'type':'base64','media_type':'image/"
          "png','data':'iVBOR'}},"
          "{'type':'image','source':{'type':'url','url':'https://x.test/a.jpg'}}]}]}"),
        &err);

    ck_json_eq(json_object_get(out, "messages"),
               "[{'role':'user','content':[{'type':'text','text':'What?'},"
               "{'type':'image_url','image_url':{'url':'data:image/png;base64,iVBOR'}},"
               "{'type':'image_url','image_url':{'url':'https://x.test/a.jpg'}}]}]");
}
END_TEST

START_TEST(req_a2c_tool_use_and_results)
{
    const char *err = NULL;
    json_t *out = nebula_conv_anthropic_req_to_chat(
        unit_pool,
        J("{'model':'m','max_tokens':9,'messages':["
          "{'role':'user','content':'Weather in Paris and Rome?'},"
          "{'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature'"
          ":'s'},"
          "{'type':'text','text':'Checking.'},"
          "{'type':'tool_use','id':'toolu_1','name':'weather','input':{'city':'Paris'}},"
          "{'type':'tool_use','id':'toolu_2','name':'weather','input':{'city':'Rome'}}]},"
          "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1',"
          "'content':'18C'},{'type':'tool_result','tool_use_id':'toolu_2','is_error':"
          "false,"
          "'content':[{'type':'text','text':'rain'},{'type':'text','text':'12C'},"
          "{'type':'image','source':{'type':'url','url':'https://x.test/r.png'}}]},"
          "{'type':'text','text':'Summarise.'}]},"
          "{'role':'assistant','content':[{'type':'tool_use','id':'toolu_3','name':'now',"
          "'input':{}}]},"
          "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_3',"
          "'is_error':true,'content':'timeout'}]}]}"),
        &err);

    ck_assert_ptr_null(err);
    ck_json_eq(json_object_get(out, "messages"),
               "[{'role':'user','content':'Weather in Paris and Rome?'},"
               "{'role':'assistant','content':'Checking.','tool_calls':["
               "{'id':'toolu_1','type':'function','function':{'name':'weather',"
               "'arguments':'{`city`:`Paris`}'}},"
               "{'id':'toolu_2','type':'function','function':{'name':'weather',"
               "'arguments':'{`city`:`Rome`}'}}]},"
               "{'role':'tool','tool_call_id':'toolu_1','content':'18C'},"
               "{'role':'tool','tool_call_id':'toolu_2','content':'rain\\n12C'},"
               "{'role':'user','content':[{'type':'image_url','image_url':"
               "{'url':'https://x.test/r.png'}},{'type':'text','text':'Summarise.'}]},"
               "{'role':'assistant','content':null,'tool_calls':[{'id':'toolu_3',"
               "'type':'function','function':{'name':'now','arguments':'{}'}}]},"
               "{'role':'tool','tool_call_id':'toolu_3','content':'Error: timeout'}]");
}
END_TEST

START_TEST(req_a2c_tools_and_tool_choice)
{
    static const struct {
        const char *choice, *want_choice;
        int parallel_false;
    } cases[] = {
        {"{'type':'auto','disable_parallel_tool_use':true}", "'auto'", 1},
        {"{'type':'auto'}", "'auto'", 0},
        {"{'type':'any'}", "'required'", 0},
        {"{'type':'none'}", "'none'", 0},
        {"{'type':'tool','name':'weather','disable_parallel_tool_use':false}",
         "{'type':'function','function':{'name':'weather'}}", 0},
    };
    const char *err = NULL;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        json_t *out = nebula_conv_anthropic_req_to_chat(
            unit_pool,
            J(apr_psprintf(
                unit_pool,
                "{'model':'m','max_tokens':9,'messages':[{'role':'user',"
                "'content':'x'}],'tools':[{'name':'weather','description':'Get "
                "weather','input_schema':{'type':'object','properties':{'city':"
                "{'type':'string'}},'required':['city']}},{'type':'custom',"
                "'name':'now','input_schema':{'type':'object'}}],"
                "'tool_choice':%s}",
                cases[i].choice)),
            &err);

        ck_assert_msg(out != NULL, "case %zu: %s", i, err);
        ck_json_eq(json_object_get(out, "tools"),
                   "[{'type':'function','function':{'name':'weather','description':'Get "
                   "weather','parameters':{'type':'object','properties':{'city':{'type':"
                   "'string'}},'required':['city']}}},{'type':'function','function':"
                   "{'name':'now','parameters':{'type':'object'}}}]");
        ck_json_eq(json_object_get(out, "tool_choice"), cases[i].want_choice);
        if (cases[i].parallel_false) {
            ck_assert(json_is_false(json_object_get(out, "parallel_tool_calls")));
        }
        else {
            ck_assert_ptr_null(json_object_get(out, "parallel_tool_calls"));
        }
    }
    /* no tools: OpenAI refuses tool_choice and parallel_tool_calls without */
    ck_json_eq(nebula_conv_anthropic_req_to_chat(
                   unit_pool,
                   J("{'model':'m','max_tokens':9,'messages':[],'tools':[],'tool_choice':"
                     "{'type':'any','disable_parallel_tool_use':true}}"),
                   &err),
               "{'model':'m','messages':[],'max_tokens':9}");
}
END_TEST

START_TEST(req_a2c_stream_asks_for_usage)
{
    const char *err = NULL;
    json_t *on = nebula_conv_anthropic_req_to_chat(
        unit_pool, J("{'model':'m','max_tokens':9,'messages':[],'stream':true}"), &err);
    json_t *off = nebula_conv_anthropic_req_to_chat(
        unit_pool, J("{'model':'m','max_tokens':9,'messages':[],'stream':false}"), &err);

    ck_json_eq(on, "{'model':'m','messages':[],'max_tokens':9,'stream':true,"
                   "'stream_options':{'include_usage':true}}");
    ck_json_eq(off, "{'model':'m','messages':[],'max_tokens':9}");
}
END_TEST

START_TEST(req_a2c_required_fields)
{
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {"[]", "JSON object"},
        {"'text'", "JSON object"},
        {"{'max_tokens':9,'messages':[]}", "model"},
        {"{'model':7,'max_tokens':9,'messages':[]}", "model"},
        {"{'model':'m','messages':[]}", "max_tokens"},
        {"{'model':'m','max_tokens':0,'messages':[]}", "max_tokens"},
        {"{'model':'m','max_tokens':-3,'messages':[]}", "max_tokens"},
        {"{'model':'m','max_tokens':'9','messages':[]}", "max_tokens"},
        {"{'model':'m','max_tokens':9.0,'messages':[]}", "max_tokens"},
        {"{'model':'m','max_tokens':9}", "messages"},
        {"{'model':'m','max_tokens':9,'messages':{'role':'user'}}", "messages"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *err = NULL;
        ck_refused(nebula_conv_anthropic_req_to_chat(unit_pool, J(cases[i].body), &err),
                   err, cases[i].needle);
    }
    {
        const char *err = NULL;
        ck_refused(nebula_conv_anthropic_req_to_chat(unit_pool, NULL, &err), err,
                   "object");
    }
}
END_TEST

START_TEST(req_a2c_malformed_everywhere)
{
    /* each fragment is spliced into {'model':'m','max_tokens':9, ...} */
    static const struct {
        const char *frag, *needle;
    } cases[] = {
        {"'messages':[7]", "messages[0]"},
        {"'messages':[{'role':'system','content':'x'}]", "role"},
        {"'messages':[{'role':'user'}]", "messages[0]"},
        {"'messages':[{'role':'user','content':5}]", "content"},
        {"'messages':[{'role':'user','content':[5]}]", "messages[0].content[0]"},
        {"'messages':[{'role':'user','content':[{'text':'x'}]}]", "type"},
        {"'messages':[{'role':'user','content':[{'type':'text','text':1}]}]", "text"},
        {"'messages':[{'role':'user','content':[{'type':'image'}]}]", "source"},
        {"'messages':[{'role':'user','content':[{'type':'image','source':{'type':'file'}}"
         "]}]",
         "source"},
        {"'messages':[{'role':'user','content':[{'type':'image','source':{'type':'base64'"
         ","
         "'media_type':'image/png'}}]}]",
         "data"},
        {"'messages':[{'role':'user','content':[{'type':'image','source':{'type':'url',"
         "'url':3}}]}]",
         "url"},
        {"'messages':[{'role':'user','content':[{'type':'document','source':{}}]}]",
         "document"},
        {"'messages':[{'role':'user','content':[{'type':'tool_result'}]}]",
         "tool_use_id"},
        {"'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'t',"
         "'content':4}]}]",
         "content"},
        {"'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'t',"
         "'content':[{'type':'tool_use'}]}]}]",
         "content[0].content[0]"},
        {"'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'"
         "b',"
         "'input':'{}'}]}]",
         "input"},
        {"'messages':[{'role':'assistant','content':[{'type':'tool_use','name':'b',"
         "'input':{}}]}]",
         "tool_use"},
        {"'messages':[{'role':'assistant','content':[{'type':'image','source':{}}]}]",
         "image"},
        {"'messages':[],'system':5", "system"},
        {"'messages':[],'system':[{'type':'image'}]", "system[0]"},
        {"'messages':[],'tools':{}", "tools"},
        {"'messages':[],'tools':[{'name':'x'}]", "tools[0]"},
        {"'messages':[],'tools':[{'name':'x','input_schema':{},'description':3}]",
         "tools[0]"},
        {"'messages':[],'tools':[{'type':'bash_20250124','name':'bash'}]",
         "bash_20250124"},
        {"'messages':[],'tool_choice':'auto'", "tool_choice"},
        {"'messages':[],'tool_choice':{'type':'sometimes'}", "tool_choice"},
        {"'messages':[],'tool_choice':{'type':'tool'}", "name"},
        {"'messages':[],'tool_choice':{'type':'auto','disable_parallel_tool_use':1}",
         "disable_parallel_tool_use"},
        {"'messages':[],'stop_sequences':'END'", "stop_sequences"},
        {"'messages':[],'stop_sequences':[1]", "stop_sequences"},
        {"'messages':[],'metadata':'u'", "metadata"},
        {"'messages':[],'metadata':{'user_id':5}", "metadata"},
        {"'messages':[],'temperature':'hot'", "temperature"},
        {"'messages':[],'top_p':[]", "top_p"},
        {"'messages':[],'stream':'yes'", "stream"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *err = NULL;
        json_t *body =
            J(apr_psprintf(unit_pool, "{'model':'m','max_tokens':9,%s}", cases[i].frag));

        ck_refused(nebula_conv_anthropic_req_to_chat(unit_pool, body, &err), err,
                   cases[i].needle);
    }
}
END_TEST

/* ---- chat request -> Anthropic ------------------------------------------ */

START_TEST(req_c2a_text_and_options)
{
    const char *err = NULL;
    json_t *out = nebula_conv_chat_req_to_anthropic(
        unit_pool,
        J("{'model':'gpt-x','messages':[{'role':'system','content':'Rule 1.'},"
          "{'role':'user','content':'Hi'},"
          "{'role':'developer','content':[{'type':'text','text':'Rule 2.'}]}],"
          "'max_completion_tokens':100,'max_tokens':50,'temperature':1.5,'top_p':0.5,"
          "'stop':'END','user':'u-9','stream':true,'stream_options':{'include_usage':"
          "true},"
          "'frequency_penalty':0.1,'n':1}"),
        4096, &err);

    ck_assert_ptr_null(err);
    ck_json_eq(out, "{'model':'gpt-x','messages':[{'role':'user','content':'Hi'}],"
                    "'system':'Rule 1.\\n\\nRule 2.','max_tokens':100,'temperature':1.0,"
                    "'top_p':0.5,'stop_sequences':['END'],'metadata':{'user_id':'u-9'},"
                    "'stream':true}");
}
END_TEST

START_TEST(req_c2a_max_tokens_default)
{
    const char *err = NULL;

    ck_assert_int_eq(nebula_json_geti(nebula_conv_chat_req_to_anthropic(
                                          unit_pool,
                                          J("{'model':'m','messages':[{'role':'user',"
                                            "'content':'x'}]}"),
                                          4096, &err),
                                      -1, "max_tokens", NULL),
                     4096);
    ck_assert_int_eq(
        nebula_json_geti(nebula_conv_chat_req_to_anthropic(
                             unit_pool,
                             J("{'model':'m','max_tokens':7,'stop':['a','b'],"
                               "'messages':[{'role':'user','content':'x'}]}"),
                             4096, &err),
                         -1, "max_tokens", NULL),
        7);
}
END_TEST

START_TEST(req_c2a_tool_calls_and_merged_results)
{
    const char *err = NULL;
    json_t *out = nebula_conv_chat_req_to_anthropic(
        unit_pool,
        J("{'model':'m','messages':[{'role':'user','content':'Weather?'},"
          "{'role':'assistant','content':null,'tool_calls':["
          "{'id':'call_1','type':'function','function':{'name':'weather',"
          "'arguments':'{`city`:`Paris`}'}},"
          "{'id':'call_2','type':'function','function':{'name':'now','arguments':''}}]},"
          "{'role':'tool','tool_call_id':'call_1','content':'18C'},"
          "{'role':'tool','tool_call_id':'call_2','content':[{'type':'text','text':'noon'"
          "}]},"
          "{'role':'user','content':'Thanks'},"
          "{'role':'assistant','content':'Done.','tool_calls':[]}],"
          "'tools':[{'type':'function','function':{'name':'weather','description':'W',"
          "'parameters':{'type':'object','properties':{'city':{'type':'string'}}}}},"
          "{'type':'function','function':{'name':'now'}}],"
          "'tool_choice':'required','parallel_tool_calls':false}"),
        1000, &err);

    ck_assert_ptr_null(err);
    ck_json_eq(
        out,
        "{'model':'m','max_tokens':1000,'messages':["
        "{'role':'user','content':'Weather?'},"
        "{'role':'assistant','content':[{'type':'tool_use','id':'call_1',"
        "'name':'weather','input':{'city':'Paris'}},{'type':'tool_use','id':'call_2',"
        "'name':'now','input':{}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'call_1',"
        "'content':'18C'},{'type':'tool_result','tool_use_id':'call_2',"
        "'content':'noon'}]},"
        "{'role':'user','content':'Thanks'},"
        "{'role':'assistant','content':[{'type':'text','text':'Done.'}]}],"
        "'tools':[{'name':'weather','description':'W','input_schema':{'type':'object',"
        "'properties':{'city':{'type':'string'}}}},{'name':'now','input_schema':"
        "{'type':'object','properties':{}}}],"
        "'tool_choice':{'type':'any','disable_parallel_tool_use':true}}");
}
END_TEST

START_TEST(req_c2a_tool_choice_variants)
{
    static const struct {
        const char *frag, *want;
    } cases[] = {
        {"'tool_choice':'auto'", "{'type':'auto'}"},
        {"'tool_choice':'none','parallel_tool_calls':false", "{'type':'none'}"},
        {"'tool_choice':{'type':'function','function':{'name':'f'}}",
         "{'type':'tool','name':'f'}"},
        {"'parallel_tool_calls':false",
         "{'type':'auto','disable_parallel_tool_use':true}"},
        {"'parallel_tool_calls':true", NULL},
        /* the later "tools" wins: no tools, so no tool_choice at all */
        {"'tools':[],'tool_choice':'required','parallel_tool_calls':false", NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *err = NULL;
        json_t *out = nebula_conv_chat_req_to_anthropic(
            unit_pool,
            J(apr_psprintf(unit_pool,
                           "{'model':'m','messages':[{'role':'user','content':'x'}],"
                           "'tools':[{'type':'function','function':{'name':'f'}}],%s}",
                           cases[i].frag)),
            10, &err);

        ck_assert_msg(out != NULL, "case %zu: %s", i, err);
        if (cases[i].want) {
            ck_json_eq(json_object_get(out, "tool_choice"), cases[i].want);
        }
        else {
            ck_assert_ptr_null(json_object_get(out, "tool_choice"));
        }
    }
}
END_TEST

START_TEST(req_c2a_images)
{
    const char *err = NULL;
    json_t *out = nebula_conv_chat_req_to_anthropic(
        unit_pool,
        J("{'model':'m','messages':[{'role':'user','content':[{'type':'text','text':'See'"
          "},"
          "{'type':'image_url','image_url':{'url':'data:image/jpeg;base64,/9j/4A=='}},"
          "{'type':'image_url','image_url':{'url':'https://x.test/"
          "b.png','detail':'high'}}]}]}"),
        10, &err);

    ck_json_eq(
        json_object_get(out, "messages"),
        "[{'role':'user','content':[{'type':'text','text':'See'},"
        "{'type':'image','source':{'type':'base64','media_type':'image/jpeg',"
        "'data':'/9j/4A=='}},"
        "{'type':'image','source':{'type':'url','url':'https://x.test/b.png'}}]}]");
}
END_TEST

START_TEST(req_c2a_refusals)
{
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {"[1]", "JSON object"},
        {"{'messages':[]}", "model"},
        {"{'model':'m'}", "messages"},
        {"{'model':'m','messages':[],'n':2}", "n"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'n':'1'}", "n"},
        {"{'model':'m','messages':[]}", "at least one"},
        {"{'model':'m','messages':[{'role':'system','content':'x'}]}", "at least one"},
        {"{'model':'m','messages':[5]}", "messages[0]"},
        {"{'model':'m','messages':[{'role':'function','content':'x','name':'f'}]}",
         "function"},
        {"{'model':'m','messages':[{'role':'user','content':7}]}", "content"},
        {"{'model':'m','messages':[{'role':'system','content':{}}]}", "content"},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'input_audio',"
         "'input_audio':{}}]}]}",
         "content[0]"},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'image_url',"
         "'image_url':{'url':'ftp://x/y.png'}}]}]}",
         "http"},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'image_url',"
         "'image_url':{'url':'data:image/png,abc'}}]}]}",
         "base64"},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'image_url',"
         "'image_url':{}}]}]}",
         "image_url.url"},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':"
         "'function','function':{'name':'f','arguments':'{bad'}}]}]}",
         "arguments"},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':"
         "'function','function':{'name':'f','arguments':'[1]'}}]}]}",
         "arguments"},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':[{'type':'function',"
         "'function':{'name':'f','arguments':'{}'}}]}]}",
         "tool_calls[0]"},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':{}}]}", "tool_calls"},
        {"{'model':'m','messages':[{'role':'tool','content':'x'}]}", "tool_call_id"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'max_tokens':0}",
         "max_tokens"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],"
         "'max_completion_tokens':'5'}",
         "max_completion_tokens"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stop':5}", "stop"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stop':['a',2]}",
         "stop"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'temperature':'x'}",
         "temperature"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'user':5}", "user"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stream':1}", "stream"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':{}}", "tools"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':"
         "'custom','custom':{'name':'g'}}]}",
         "tools[0]"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':"
         "'function','function':{'name':'f','parameters':'{}'}}]}",
         "tools[0]"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tool_choice':'always'"
         "}",
         "tool_choice"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'parallel_tool_calls':"
         "0}",
         "parallel_tool_calls"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *err = NULL;
        ck_refused(
            nebula_conv_chat_req_to_anthropic(unit_pool, J(cases[i].body), 10, &err), err,
            cases[i].needle);
    }
}
END_TEST

/* Anthropic -> chat -> Anthropic gives back what was sent, and neither
 * converter touches its input. */
START_TEST(req_round_trip)
{
    static const char body[] =
        "{'model':'m','max_tokens':300,'system':'Sys.','temperature':0.3,'top_p':0.8,"
        "'stop_sequences':['Z'],'metadata':{'user_id':'u'},'stream':true,"
        "'messages':[{'role':'user','content':'Weather?'},"
        "{'role':'assistant','content':[{'type':'text','text':'Checking.'},"
        "{'type':'tool_use','id':'toolu_1','name':'weather','input':{'city':'Oslo','days'"
        ":[1,"
        "2]}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1',"
        "'content':'cold'}]},"
        "{'role':'user','content':[{'type':'text','text':'And?'},{'type':'image','source'"
        ":"
        "{'type':'base64','media_type':'image/gif','data':'R0lG'}}]}],"
        "'tools':[{'name':'weather','description':'W','input_schema':{'type':'object'}}],"
        "'tool_choice':{'type':'any','disable_parallel_tool_use':true}}";
    json_t *in = J(body), *copy = nebula_json_own(unit_pool, json_deep_copy(in));
    const char *err = NULL;
    json_t *chat = nebula_conv_anthropic_req_to_chat(unit_pool, in, &err);
    json_t *chat_copy = nebula_json_own(unit_pool, json_deep_copy(chat));
    json_t *back = nebula_conv_chat_req_to_anthropic(unit_pool, chat, 1, &err);

    ck_assert_ptr_null(err);
    ck_assert(json_equal(in, copy));
    ck_assert(json_equal(chat, chat_copy));
    ck_json_eq(back, body);
}
END_TEST

/* ---- complete answers --------------------------------------------------- */

START_TEST(resp_a2c_blocks_and_usage)
{
    json_t *out = nebula_conv_anthropic_resp_to_chat(
        unit_pool,
        J("{'id':'msg_01','type':'message','role':'assistant','model':'claude-x','"
          "content':["
          "{'type':'thinking','thinking':'Let me see.','signature':'s'},"
          "{'type':'text','text':'Sure, '},{'type':'text','text':'calling.'},"
          "{'type':'tool_use','id':'toolu_9','name':'weather','input':{'city':'Oslo'}}],"
          "'stop_reason':'tool_use','stop_sequence':null,'usage':{'input_tokens':100,"
          "'output_tokens':20,'cache_read_input_tokens':300,"
          "'cache_creation_input_tokens':50}}"));

    ck_json_eq(without_created(out),
               "{'id':'msg_01','object':'chat.completion','model':'claude-x','choices':["
               "{'index':0,'message':{'role':'assistant','content':'Sure, calling.',"
               "'reasoning_content':'Let me see.','tool_calls':[{'id':'toolu_9',"
               "'type':'function','function':{'name':'weather',"
               "'arguments':'{`city`:`Oslo`}'}}]},'logprobs':null,"
               "'finish_reason':'tool_calls'}],"
               "'usage':{'prompt_tokens':450,'completion_tokens':20,'total_tokens':470,"
               "'prompt_tokens_details':{'cached_tokens':300}}}");
}
END_TEST

START_TEST(resp_a2c_stop_reasons)
{
    static const char *const map[][2] = {
        {"end_turn", "stop"},          {"stop_sequence", "stop"},
        {"max_tokens", "length"},      {"tool_use", "tool_calls"},
        {"refusal", "content_filter"}, {"model_context_window_exceeded", "length"},
        {"pause_turn", "stop"},
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        json_t *out = nebula_conv_anthropic_resp_to_chat(
            unit_pool, J(apr_psprintf(unit_pool,
                                      "{'id':'m','model':'c','content':[{'type':'text',"
                                      "'text':'x'}],'stop_reason':'%s'}",
                                      map[i][0])));

        ck_assert_str_eq(nebula_json_gets(out, "choices", "#0", "finish_reason", NULL),
                         map[i][1]);
        ck_assert_str_eq(
            nebula_json_gets(out, "choices", "#0", "message", "content", NULL), "x");
        ck_assert_ptr_null(json_object_get(out, "usage")); /* none given */
    }
    ck_assert_ptr_null(nebula_conv_anthropic_resp_to_chat(unit_pool, J("[]")));
    ck_assert_ptr_null(nebula_conv_anthropic_resp_to_chat(unit_pool, NULL));
    /* content of the wrong type: an empty answer, not a crash */
    ck_assert_str_eq(nebula_json_gets(nebula_conv_anthropic_resp_to_chat(
                                          unit_pool, J("{'content':'x','id':5}")),
                                      "choices", "#0", "message", "content", NULL),
                     "");
}
END_TEST

START_TEST(resp_c2a_blocks_and_usage)
{
    json_t *out = nebula_conv_chat_resp_to_anthropic(
        unit_pool,
        J("{'id':'chatcmpl-7','object':'chat.completion','created':1,'model':'gpt-x',"
          "'choices':[{'index':0,'message':{'role':'assistant','content':'Here.',"
          "'reasoning_content':'thought','tool_calls':[{'id':'call_1','type':'function',"
          "'function':{'name':'weather','arguments':'{`city`:`Oslo`}'}},{'id':'call_2',"
          "'type':'function','function':{'name':'bad','arguments':'{oops'}}]},"
          "'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':120,"
          "'completion_tokens':30,'total_tokens':150,'prompt_tokens_details':"
          "{'cached_tokens':100}}}"));

    ck_json_eq(
        out, "{'id':'msg_chatcmpl-7','type':'message','role':'assistant',"
             "'model':'gpt-x','content':[{'type':'text','text':'Here.'},"
             "{'type':'tool_use','id':'call_1','name':'weather','input':{'city':'Oslo'}},"
             "{'type':'tool_use','id':'call_2','name':'bad','input':{}}],"
             "'stop_reason':'tool_use','stop_sequence':null,'usage':{'input_tokens':20,"
             "'output_tokens':30,'cache_read_input_tokens':100,"
             "'cache_creation_input_tokens':0}}");
}
END_TEST

START_TEST(resp_c2a_stop_reasons)
{
    static const char *const map[][2] = {
        {"'stop'", "end_turn"},          {"'length'", "max_tokens"},
        {"'tool_calls'", "tool_use"},    {"'function_call'", "tool_use"},
        {"'content_filter'", "refusal"}, {"null", "end_turn"},
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        json_t *out = nebula_conv_chat_resp_to_anthropic(
            unit_pool, J(apr_psprintf(unit_pool,
                                      "{'id':'c','model':'g','choices':[{'message':"
                                      "{'content':'hi'},'finish_reason':%s}]}",
                                      map[i][0])));

        ck_assert_str_eq(nebula_json_gets(out, "stop_reason", NULL), map[i][1]);
        ck_json_eq(json_object_get(out, "content"), "[{'type':'text','text':'hi'}]");
        /* no usage upstream: zeros, never a missing object */
        ck_json_eq(json_object_get(out, "usage"),
                   "{'input_tokens':0,'output_tokens':0,'cache_read_input_tokens':0,"
                   "'cache_creation_input_tokens':0}");
    }
    ck_assert_ptr_null(nebula_conv_chat_resp_to_anthropic(unit_pool, J("'x'")));
    ck_json_eq(nebula_conv_chat_resp_to_anthropic(unit_pool, J("{'choices':7}")),
               "{'id':'msg_','type':'message','role':'assistant','model':'','content':[],"
               "'stop_reason':'end_turn','stop_sequence':null,'usage':{'input_tokens':0,"
               "'output_tokens':0,'cache_read_input_tokens':0,"
               "'cache_creation_input_tokens':0}}");
}
END_TEST

START_TEST(usage_parse)
{
    nebula_usage_t u;

    ck_assert_int_eq(
        nebula_conv_anthropic_usage(
            J("{'input_tokens':10,'output_tokens':4,'cache_read_input_tokens':"
              "30,'cache_creation_input_tokens':7}"),
            &u),
        1);
    ck_assert_int_eq(u.prompt_tokens, 10);
    ck_assert_int_eq(u.completion_tokens, 4);
    ck_assert_int_eq(u.cached_tokens, 30);
    ck_assert_int_eq(u.cache_write_tokens, 7);
    ck_assert_int_eq(u.total_tokens, 51);
    ck_assert_int_eq(u.prompt_excludes_cache, 1);
    ck_assert_int_eq(u.estimated, 0);
    /* optional cache counts: absent or null are 0; negatives are copied */
    ck_assert_int_eq(
        nebula_conv_anthropic_usage(
            J("{'input_tokens':-1,'output_tokens':2,'cache_read_input_tokens':"
              "null}"),
            &u),
        1);
    ck_assert_int_eq(u.prompt_tokens, -1);
    ck_assert_int_eq(u.cached_tokens, 0);
    ck_assert_int_eq(u.cache_write_tokens, 0);
    ck_assert_int_eq(u.total_tokens, 1);
    /* malformed: 0 and *u untouched */
    memset(&u, 0x5a, sizeof(u));
    ck_assert_int_eq(nebula_conv_anthropic_usage(J("{'output_tokens':2}"), &u), 0);
    ck_assert_int_eq(
        nebula_conv_anthropic_usage(J("{'input_tokens':'1','output_tokens':2}"), &u), 0);
    ck_assert_int_eq(
        nebula_conv_anthropic_usage(J("{'input_tokens':1,'output_tokens':2.0}"), &u), 0);
    ck_assert_int_eq(nebula_conv_anthropic_usage(J("{'input_tokens':1,'output_tokens':2,"
                                                   "'cache_creation_input_tokens':'3'}"),
                                                 &u),
                     0);
    ck_assert_int_eq(nebula_conv_anthropic_usage(J("[1]"), &u), 0);
    ck_assert_int_eq(nebula_conv_anthropic_usage(NULL, &u), 0);
    ck_assert_int_eq(u.prompt_tokens, 0x5a5a5a5a5a5a5a5aLL);
}
END_TEST

START_TEST(error_body_by_status)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"},
        {422, "invalid_request_error"},
        {401, "authentication_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {413, "request_too_large"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "overloaded_error"},
        {529, "overloaded_error"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        json_t *e = nebula_conv_anthropic_error(unit_pool, cases[i].status, "Nope.");
        ck_json_eq(
            e, apr_psprintf(unit_pool,
                            "{'type':'error','error':{'type':'%s','message':'Nope.'}}",
                            cases[i].type));
    }
    ck_assert_str_eq(nebula_json_gets(nebula_conv_anthropic_error(unit_pool, 500, NULL),
                                      "error", "message", NULL),
                     "");
    ck_assert_str_eq(
        nebula_json_gets(nebula_conv_anthropic_error(unit_pool, 500, "bad\xff!"), "error",
                         "message", NULL),
        "bad?!");
}
END_TEST

/* ---- streams: Anthropic events -> chat chunks --------------------------- */

/* The event at @a i must be a bare chunk of the a2c test stream with this
 * delta and finish_reason. */
#define ck_chunk(out, i, delta, finish)                                                  \
    check_chunk(__LINE__, (out), (i), (delta), (finish))
static void check_chunk(int line, apr_array_header_t *out, int i, const char *delta,
                        const char *finish)
{
    nebula_conv_event_t *ev;
    json_t *want;

    ck_assert_msg(i < out->nelts, "line %d: only %d events", line, out->nelts);
    ev = &APR_ARRAY_IDX(out, i, nebula_conv_event_t);
    ck_assert_msg(ev->event == NULL, "line %d: event name %s", line, ev->event);
    want =
        J(apr_psprintf(unit_pool,
                       "{'id':'chatcmpl-msg_1','object':'chat.completion.chunk',"
                       "'model':'claude-x','choices':[{'index':0,'delta':%s,"
                       "'logprobs':null,'finish_reason':%s}]}",
                       delta, finish ? apr_psprintf(unit_pool, "'%s'", finish) : "null"));
    ck_assert_msg(json_equal(without_created(ev->data), want),
                  "line %d, chunk %d:\n got  %s\n want %s", line, i, dump(ev->data),
                  dump(want));
}

/* A real tool-using stream: thinking, text, two tool_use blocks. */
static const char *const a2c_events[][2] = {
    {"message_start",
     "{'type':'message_start','message':{'id':'msg_1','type':'message','role':'assistant'"
     ","
     "'model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,'usage':"
     "{'input_tokens':25,'output_tokens':1,'cache_read_input_tokens':10,"
     "'cache_creation_input_tokens':5}}}"},
    {"content_block_start", "{'type':'content_block_start','index':0,'content_block':"
                            "{'type':'thinking','thinking':'','signature':''}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':0,'delta':"
                            "{'type':'thinking_delta','thinking':'Hmm.'}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':0,'delta':"
                            "{'type':'signature_delta','signature':'abc'}}"},
    {"content_block_stop", "{'type':'content_block_stop','index':0}"},
    {"ping", "{'type':'ping'}"},
    {"content_block_start", "{'type':'content_block_start','index':1,'content_block':{'"
                            "type':'text','text':''}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':1,'delta':"
                            "{'type':'text_delta','text':'Hello'}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':1,'delta':"
                            "{'type':'text_delta','text':' world'}}"},
    {"content_block_stop", "{'type':'content_block_stop','index':1}"},
    {"content_block_start",
     "{'type':'content_block_start','index':2,'content_block':"
     "{'type':'tool_use','id':'toolu_1','name':'weather','input':{}}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':2,'delta':"
                            "{'type':'input_json_delta','partial_json':''}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':2,'delta':"
                            "{'type':'input_json_delta','partial_json':'{`city`:'}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':2,'delta':"
                            "{'type':'input_json_delta','partial_json':'`Oslo`}'}}"},
    {"content_block_stop", "{'type':'content_block_stop','index':2}"},
    {"content_block_start",
     "{'type':'content_block_start','index':3,'content_block':"
     "{'type':'tool_use','id':'toolu_2','name':'now','input':{}}}"},
    {"content_block_delta", "{'type':'content_block_delta','index':3,'delta':"
                            "{'type':'input_json_delta','partial_json':'{}'}}"},
    {"content_block_stop", "{'type':'content_block_stop','index':3}"},
    {"message_delta", "{'type':'message_delta','delta':{'stop_reason':'tool_use',"
                      "'stop_sequence':null},'usage':{'output_tokens':42}}"},
    {"message_stop", "{'type':'message_stop'}"},
};
#define A2C_EVENTS (sizeof(a2c_events) / sizeof(a2c_events[0]))

START_TEST(stream_a2c_event_by_event)
{
    nebula_conv_a2c_t *st = nebula_conv_a2c_create(unit_pool);
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_usage_t u;
    size_t i;

    ck_assert_int_eq(nebula_conv_a2c_usage(st, &u), 0);
    for (i = 0; i < A2C_EVENTS; ++i) {
        ck_assert_int_eq(nebula_conv_a2c_done(st), 0);
        /* the even events by name, the odd ones by their data's type */
        nebula_conv_a2c_feed(st, i % 2 ? NULL : a2c_events[i][0], J(a2c_events[i][1]),
                             out);
    }
    ck_assert_int_eq(out->nelts, 10);
    ck_chunk(out, 0, "{'role':'assistant','content':''}", NULL);
    ck_chunk(out, 1, "{'reasoning_content':'Hmm.'}", NULL);
    ck_chunk(out, 2, "{'content':'Hello'}", NULL);
    ck_chunk(out, 3, "{'content':' world'}", NULL);
    ck_chunk(out, 4,
             "{'tool_calls':[{'index':0,'id':'toolu_1','type':'function','function':"
             "{'name':'weather','arguments':''}}]}",
             NULL);
    ck_chunk(out, 5, "{'tool_calls':[{'index':0,'function':{'arguments':'{`city`:'}}]}",
             NULL);
    ck_chunk(out, 6, "{'tool_calls':[{'index':0,'function':{'arguments':'`Oslo`}'}}]}",
             NULL);
    ck_chunk(out, 7,
             "{'tool_calls':[{'index':1,'id':'toolu_2','type':'function','function':"
             "{'name':'now','arguments':''}}]}",
             NULL);
    ck_chunk(out, 8, "{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}", NULL);
    ck_chunk(out, 9, "{}", "tool_calls");
    ck_assert_int_eq(nebula_conv_a2c_done(st), 1);
    ck_assert_int_eq(nebula_conv_a2c_usage(st, &u), 1);
    ck_assert_int_eq(u.prompt_tokens, 25);
    ck_assert_int_eq(u.completion_tokens, 42);
    ck_assert_int_eq(u.cached_tokens, 10);
    ck_assert_int_eq(u.cache_write_tokens, 5);
    ck_assert_int_eq(u.total_tokens, 82);
    ck_assert_int_eq(u.prompt_excludes_cache, 1);
}
END_TEST

START_TEST(stream_a2c_error_and_malformed)
{
    nebula_conv_a2c_t *st = nebula_conv_a2c_create(unit_pool);
    apr_array_header_t *out = apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));
    nebula_conv_event_t *ev;

    /* nothing of these may crash or emit */
    nebula_conv_a2c_feed(st, "message_start", NULL, out);
    nebula_conv_a2c_feed(st, NULL, J("[1]"), out);
    nebula_conv_a2c_feed(st, NULL, J("{'type':7}"), out);
    nebula_conv_a2c_feed(st, "content_block_start",
                         J("{'content_block':{'type':'tool_use'}}"), out);
    nebula_conv_a2c_feed(st, "content_block_start",
                         J("{'index':99999999,'content_block':{'type':'tool_use'}}"),
                         out);
    nebula_conv_a2c_feed(
        st, "content_block_delta",
        J("{'index':-1,'delta':{'type':'input_json_delta','partial_json':"
          "'x'}}"),
        out);
    nebula_conv_a2c_feed(st, "content_block_delta",
                         J("{'index':0,'delta':{'type':'input_json_delta','partial_json':"
                           "'x'}}"),
                         out); /* no tool block at 0 */
    nebula_conv_a2c_feed(st, "content_block_delta", J("{'index':0,'delta':'text'}"), out);
    nebula_conv_a2c_feed(st, "message_delta",
                         J("{'delta':{},'usage':{'output_tokens':'3'}}"), out);
    nebula_conv_a2c_feed(st, "ping", J("{'type':'ping'}"), out);
    ck_assert_int_eq(out->nelts, 0);
    ck_assert_int_eq(nebula_conv_a2c_done(st), 0);
    /* an error event in OpenAI's shape, no event name */
    nebula_conv_a2c_feed(
        st, "error",
        J("{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}"),
        out);
    ck_assert_int_eq(out->nelts, 1);
    ev = &APR_ARRAY_IDX(out, 0, nebula_conv_event_t);
    ck_assert_ptr_null(ev->event);
    ck_json_eq(ev->data, "{'error':{'message':'Overloaded','type':'overloaded_error',"
                         "'param':null,'code':null}}");
}
END_TEST

/* ---- streams: chat chunks -> Anthropic events --------------------------- */

/* Every event of @a out from @a from on, as "name json\n" (keys sorted),
 * after checking that each data's "type" is its event name. */
static const char *transcript(apr_array_header_t *out, int from)
{
    const char *s = "";
    int i;

    for (i = from; i < out->nelts; ++i) {
        nebula_conv_event_t *ev = &APR_ARRAY_IDX(out, i, nebula_conv_event_t);

        ck_assert_ptr_nonnull(ev->event);
        ck_assert_str_eq(nebula_json_gets(ev->data, "type", NULL), ev->event);
        s = apr_pstrcat(unit_pool, s, ev->event, " ", dump(ev->data), "\n", NULL);
    }
    return s;
}

/* The same transcript from JSON written as in J(). */
static const char *want_transcript(const char *const *lines)
{
    const char *s = "";

    for (; *lines; lines += 2) {
        s = apr_pstrcat(unit_pool, s, lines[0], " ", dump(J(lines[1])), "\n", NULL);
    }
    return s;
}

static void c2a_feed(nebula_conv_c2a_t *st, const char *chunk, apr_array_header_t *out)
{
    nebula_conv_c2a_feed(st, J(chunk), out);
}

#define CHUNK(delta, finish)                                                             \
    "{'id':'chatcmpl-9','object':'chat.completion.chunk','created':1,'model':'gpt-x',"   \
    "'choices':[{'index':0,'delta':" delta ",'finish_reason':" finish "}]}"

START_TEST(stream_c2a_event_by_event)
{
    static const char *const want[] = {
        "message_start",
        "{'type':'message_start','message':{'id':'msg_chatcmpl-9','type':'message',"
        "'role':'assistant','model':'claude-client','content':[],'stop_reason':null,"
        "'stop_sequence':null,'usage':{'input_tokens':77,'cache_creation_input_tokens':0,"
        "'cache_read_input_tokens':0,'output_tokens':0}}}",
        "content_block_start",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''"
        "}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'"
        "Hel'}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'lo'"
        "}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':0}",
        "content_block_start",
        "{'type':'content_block_start','index':1,'content_block':{'type':'tool_use',"
        "'id':'call_a','name':'weather','input':{}}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'{`city`:'}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'`Oslo`}'}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':1}",
        "content_block_start",
        "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use',"
        "'id':'call_b','name':'now','input':{}}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
        "'partial_json':'{}'}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':2}",
        "message_delta",
        "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
        "'usage':{'input_tokens':70,'cache_creation_input_tokens':0,"
        "'cache_read_input_tokens':10,'output_tokens':33}}",
        "message_stop",
        "{'type':'message_stop'}",
        NULL};
    nebula_conv_c2a_t *st = nebula_conv_c2a_create(unit_pool, "claude-client", 77);
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_usage_t u = {0};
    int before;

    c2a_feed(st, CHUNK("{'role':'assistant','content':''}", "null"), out);
    ck_assert_int_eq(out->nelts, 1); /* message_start only: no empty text block */
    c2a_feed(st, CHUNK("{'content':'Hel'}", "null"), out);
    c2a_feed(st, CHUNK("{'content':'lo','reasoning_content':'dropped'}", "null"), out);
    c2a_feed(st,
             CHUNK("{'tool_calls':[{'index':0,'id':'call_a','type':'function','function':"
                   "{'name':'weather','arguments':''}}]}",
                   "null"),
             out);
    c2a_feed(
        st,
        CHUNK("{'tool_calls':[{'index':0,'function':{'arguments':'{`city`:'}}]}", "null"),
        out);
    c2a_feed(
        st,
        CHUNK("{'tool_calls':[{'index':0,'function':{'arguments':'`Oslo`}'}}]}", "null"),
        out);
    c2a_feed(st,
             CHUNK("{'tool_calls':[{'index':1,'id':'call_b','type':'function','function':"
                   "{'name':'now','arguments':'{}'}}]}",
                   "null"),
             out);
    c2a_feed(st, CHUNK("{}", "'tool_calls'"), out);
    before = out->nelts;
    c2a_feed(st,
             "{'id':'chatcmpl-9','object':'chat.completion.chunk','choices':[],'usage':"
             "{'prompt_tokens':80,'completion_tokens':33,'total_tokens':113}}",
             out);
    ck_assert_int_eq(out->nelts, before); /* usage alone says nothing */
    /* the final counts reach message_delta: chat's 80 prompt tokens hold
     * 10 cache reads, Anthropic's input_tokens does not */
    u.prompt_tokens = 80;
    u.cached_tokens = 10;
    u.completion_tokens = 33;
    nebula_conv_c2a_finish(st, &u, out);
    ck_assert_str_eq(transcript(out, 0), want_transcript(want));
    /* finished: more input or a second finish adds nothing */
    before = out->nelts;
    c2a_feed(st, CHUNK("{'content':'late'}", "null"), out);
    nebula_conv_c2a_finish(st, &u, out);
    ck_assert_int_eq(out->nelts, before);
}
END_TEST

START_TEST(stream_c2a_empty_and_length)
{
    static const char *const want_empty[] = {
        "message_delta",
        "{'type':'message_delta','delta':{'stop_reason':'end_turn','stop_sequence':null},"
        "'usage':{'output_tokens':0}}",
        "message_stop", "{'type':'message_stop'}", NULL};
    static const char *const want_switch[] = {
        "content_block_start",
        "{'type':'content_block_start','index':0,'content_block':{'type':'tool_use',"
        "'id':'toolu_0_3','name':'f','input':{}}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':0}",
        "content_block_start",
        "{'type':'content_block_start','index':1,'content_block':{'type':'text','text':''"
        "}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta','text':'x'}"
        "}",
        "content_block_stop",
        "{'type':'content_block_stop','index':1}",
        "message_delta",
        "{'type':'message_delta','delta':{'stop_reason':'max_tokens','stop_sequence':"
        "null},"
        "'usage':{'output_tokens':0}}",
        "message_stop",
        "{'type':'message_stop'}",
        NULL};
    nebula_conv_c2a_t *st = nebula_conv_c2a_create(unit_pool, NULL, 0);
    apr_array_header_t *out = apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));
    nebula_conv_event_t *ev;

    /* an upstream that said nothing: still a whole message */
    nebula_conv_c2a_feed(st, NULL, out);
    nebula_conv_c2a_feed(st, J("{'choices':[7]}"), out);
    nebula_conv_c2a_finish(st, NULL, out);
    ck_assert_int_eq(out->nelts, 3);
    ev = &APR_ARRAY_IDX(out, 0, nebula_conv_event_t);
    ck_assert_str_eq(ev->event, "message_start");
    ck_assert(!strncmp(nebula_json_gets(ev->data, "message", "id", NULL), "msg_", 4));
    ck_assert_str_eq(nebula_json_gets(ev->data, "message", "model", NULL), "");
    ck_json_eq(nebula_json_getj(ev->data, "message", "content", NULL), "[]");
    ck_assert_str_eq(transcript(out, 1), want_transcript(want_empty));

    /* a tool call without id (one is made), then text; finish_reason length */
    st = nebula_conv_c2a_create(unit_pool, "m", 1);
    out = apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));
    c2a_feed(st, CHUNK("{'tool_calls':[{'index':3,'function':{'name':'f'}}]}", "null"),
             out);
    c2a_feed(st, CHUNK("{'content':'x'}", "'length'"), out);
    nebula_conv_c2a_finish(st, NULL, out);
    ck_assert_str_eq(transcript(out, 1), want_transcript(want_switch));
}
END_TEST

START_TEST(stream_c2a_error_ends_the_stream)
{
    static const char *const want[] = {
        "content_block_start",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''"
        "}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'a'}"
        "}",
        "error",
        "{'type':'error','error':{'type':'api_error','message':'boom'}}",
        NULL};
    nebula_conv_c2a_t *st = nebula_conv_c2a_create(unit_pool, "m", 1);
    apr_array_header_t *out = apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));
    nebula_conv_event_t *ev;

    c2a_feed(st, CHUNK("{'content':'a'}", "null"), out);
    c2a_feed(st, "{'error':{'message':'boom','type':'server_error','code':null}}", out);
    nebula_conv_c2a_finish(st, NULL, out);
    ck_assert_str_eq(transcript(out, 1), want_transcript(want));

    /* a known Anthropic type is kept; a bare string error is a message */
    st = nebula_conv_c2a_create(unit_pool, "m", 1);
    out = apr_array_make(unit_pool, 4, sizeof(nebula_conv_event_t));
    c2a_feed(st, "{'error':{'message':'slow down','type':'rate_limit_error'}}", out);
    c2a_feed(st, "{'error':'again'}", out);
    ck_assert_int_eq(out->nelts, 1);
    ev = &APR_ARRAY_IDX(out, 0, nebula_conv_event_t);
    ck_json_eq(
        ev->data,
        "{'type':'error','error':{'type':'rate_limit_error','message':'slow down'}}");
    st = nebula_conv_c2a_create(unit_pool, "m", 1);
    c2a_feed(st, "{'error':'again'}", out);
    ev = &APR_ARRAY_IDX(out, 1, nebula_conv_event_t);
    ck_json_eq(ev->data,
               "{'type':'error','error':{'type':'api_error','message':'again'}}");
}
END_TEST

/* Anthropic events -> chat chunks -> Anthropic events: the text, the tool
 * blocks and their input, the stop reason and the usage survive. */
START_TEST(stream_round_trip)
{
    static const char *const want[] = {
        "content_block_start",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''"
        "}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'"
        "Hello'}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta',"
        "'text':' world'}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':0}",
        "content_block_start",
        "{'type':'content_block_start','index':1,'content_block':{'type':'tool_use',"
        "'id':'toolu_1','name':'weather','input':{}}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'{`city`:'}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'`Oslo`}'}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':1}",
        "content_block_start",
        "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use',"
        "'id':'toolu_2','name':'now','input':{}}}",
        "content_block_delta",
        "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
        "'partial_json':'{}'}}",
        "content_block_stop",
        "{'type':'content_block_stop','index':2}",
        "message_delta",
        "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
        "'usage':{'input_tokens':25,'cache_creation_input_tokens':5,"
        "'cache_read_input_tokens':10,'output_tokens':42}}",
        "message_stop",
        "{'type':'message_stop'}",
        NULL};
    nebula_conv_a2c_t *a2c = nebula_conv_a2c_create(unit_pool);
    nebula_conv_c2a_t *c2a = nebula_conv_c2a_create(unit_pool, "claude-x", 25);
    apr_array_header_t *chunks =
        apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    apr_array_header_t *out = apr_array_make(unit_pool, 16, sizeof(nebula_conv_event_t));
    nebula_usage_t u;
    size_t i;
    int k;

    for (i = 0; i < A2C_EVENTS; ++i) {
        nebula_conv_a2c_feed(a2c, a2c_events[i][0], J(a2c_events[i][1]), chunks);
    }
    for (k = 0; k < chunks->nelts; ++k) {
        nebula_conv_c2a_feed(c2a, APR_ARRAY_IDX(chunks, k, nebula_conv_event_t).data,
                             out);
    }
    ck_assert_int_eq(nebula_conv_a2c_usage(a2c, &u), 1);
    nebula_conv_c2a_finish(c2a, &u, out);
    ck_assert_str_eq(nebula_json_gets(APR_ARRAY_IDX(out, 0, nebula_conv_event_t).data,
                                      "message", "id", NULL),
                     "msg_chatcmpl-msg_1");
    ck_assert_str_eq(transcript(out, 1), want_transcript(want));
}
END_TEST

Suite *unit_conv_anthropic_suite(void)
{
    Suite *s = suite_create("conv_anthropic");
    TCase *tc = tcase_create("conv_anthropic");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, req_a2c_text_and_options);
    tcase_add_test(tc, req_a2c_system_blocks_drop_cache_control);
    tcase_add_test(tc, req_a2c_images);
    tcase_add_test(tc, req_a2c_tool_use_and_results);
    tcase_add_test(tc, req_a2c_tools_and_tool_choice);
    tcase_add_test(tc, req_a2c_stream_asks_for_usage);
    tcase_add_test(tc, req_a2c_required_fields);
    tcase_add_test(tc, req_a2c_malformed_everywhere);
    tcase_add_test(tc, req_c2a_text_and_options);
    tcase_add_test(tc, req_c2a_max_tokens_default);
    tcase_add_test(tc, req_c2a_tool_calls_and_merged_results);
    tcase_add_test(tc, req_c2a_tool_choice_variants);
    tcase_add_test(tc, req_c2a_images);
    tcase_add_test(tc, req_c2a_refusals);
    tcase_add_test(tc, req_round_trip);
    tcase_add_test(tc, resp_a2c_blocks_and_usage);
    tcase_add_test(tc, resp_a2c_stop_reasons);
    tcase_add_test(tc, resp_c2a_blocks_and_usage);
    tcase_add_test(tc, resp_c2a_stop_reasons);
    tcase_add_test(tc, usage_parse);
    tcase_add_test(tc, error_body_by_status);
    tcase_add_test(tc, stream_a2c_event_by_event);
    tcase_add_test(tc, stream_a2c_error_and_malformed);
    tcase_add_test(tc, stream_c2a_event_by_event);
    tcase_add_test(tc, stream_c2a_empty_and_length);
    tcase_add_test(tc, stream_c2a_error_ends_the_stream);
    tcase_add_test(tc, stream_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

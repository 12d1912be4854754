/* test_json.c: nebula_json: parsing and its error positions, path getters
 * and their defaults, compact dumps, the OpenAI error body, and that a
 * pool-owned document is released with its pool. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_json.h"
#include "nebula_unit.h"

START_TEST(parse_ok_and_getters)
{
    static const char doc[] = "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":256,"
                              "\"temperature\":0.5,\"n\":5.0,"
                              "\"messages\":[{\"role\":\"system\",\"content\":\"hi\"},"
                              "{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}],"
                              "\"meta\":{\"#1\":\"key-not-index\",\"deep\":{\"x\":-7}}}";
    const char *err = "untouched";
    json_t *j = nebula_json_parse(unit_pool, doc, strlen(doc), 0, &err);

    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(nebula_json_gets(j, "model", NULL), "gpt-4o");
    ck_assert_int_eq(nebula_json_getb(j, 0, "stream", NULL), 1);
    ck_assert_int_eq(nebula_json_geti(j, -1, "max_tokens", NULL), 256);
    ck_assert_int_eq(nebula_json_geti(j, -1, "meta", "deep", "x", NULL), -7);
    ck_assert_str_eq(nebula_json_gets(j, "messages", "#0", "role", NULL), "system");
    ck_assert_str_eq(nebula_json_gets(j, "messages", "#1", "content", "#0", "type", NULL),
                     "text");
    /* "#1" on an object is a plain key */
    ck_assert_str_eq(nebula_json_gets(j, "meta", "#1", NULL), "key-not-index");
    ck_assert_ptr_eq(nebula_json_getj(j, NULL), j);
    ck_assert(json_is_array(nebula_json_getj(j, "messages", NULL)));
    ck_assert_str_eq(nebula_json_gets(nebula_json_getj(j, "model", NULL), NULL),
                     "gpt-4o");
}
END_TEST

START_TEST(getters_missing_and_wrong_types)
{
    static const char doc[] = "{\"s\":\"str\",\"i\":3,\"b\":false,\"r\":5.0,\"z\":null,"
                              "\"a\":[10,20]}";
    json_t *j = nebula_json_parse(unit_pool, doc, strlen(doc), 0, NULL);

    ck_assert_ptr_nonnull(j);
    /* missing */
    ck_assert_ptr_null(nebula_json_gets(j, "nope", NULL));
    ck_assert_ptr_null(nebula_json_gets(j, "s", "deeper", NULL));
    ck_assert_int_eq(nebula_json_geti(j, 42, "nope", NULL), 42);
    ck_assert_int_eq(nebula_json_getb(j, 7, "nope", NULL), 7);
    ck_assert_ptr_null(nebula_json_getj(j, "a", "#2", NULL));
    ck_assert_ptr_null(nebula_json_getj(j, "a", "#x", NULL));
    ck_assert_ptr_null(nebula_json_getj(j, "a", "#", NULL));
    ck_assert_ptr_null(nebula_json_getj(j, "a", "0", NULL));
    ck_assert_int_eq(nebula_json_geti(j, -1, "a", "#1", NULL), 20);
    /* wrong types */
    ck_assert_ptr_null(nebula_json_gets(j, "i", NULL));
    ck_assert_ptr_null(nebula_json_gets(j, "z", NULL));
    ck_assert_int_eq(nebula_json_geti(j, 42, "s", NULL), 42);
    ck_assert_int_eq(nebula_json_geti(j, 42, "r", NULL), 42);
    ck_assert_int_eq(nebula_json_geti(j, 42, "b", NULL), 42);
    ck_assert_int_eq(nebula_json_getb(j, 7, "i", NULL), 7);
    ck_assert_int_eq(nebula_json_getb(j, 7, "b", NULL), 0);
    /* NULL document */
    ck_assert_ptr_null(nebula_json_gets(NULL, "s", NULL));
    ck_assert_int_eq(nebula_json_geti(NULL, 9, NULL), 9);
    ck_assert_int_eq(nebula_json_getb(NULL, 1, "b", NULL), 1);
}
END_TEST

START_TEST(parse_errors_name_the_position)
{
    static const char bad1[] = "{\"a\": }";
    static const char bad2[] = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    const char *err = NULL;

    ck_assert_ptr_null(nebula_json_parse(unit_pool, bad1, strlen(bad1), 0, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "line 1, column 7") != NULL, "got: %s", err);
    ck_assert_ptr_null(nebula_json_parse(unit_pool, bad2, strlen(bad2), 0, &err));
    ck_assert_msg(strstr(err, "line 3,") != NULL, "got: %s", err);
    /* empty input, and trailing garbage inside len */
    ck_assert_ptr_null(nebula_json_parse(unit_pool, "", 0, 0, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(nebula_json_parse(unit_pool, NULL, 0, 0, &err));
    ck_assert_ptr_null(nebula_json_parse(unit_pool, "{} x", 4, 0, &err));
    ck_assert_msg(strstr(err, "column") != NULL, "got: %s", err);
    /* \u0000 in a string is refused */
    ck_assert_ptr_null(nebula_json_parse(unit_pool, "[\"a\\u0000b\"]", 12, 0, &err));
    /* errmsg may be NULL */
    ck_assert_ptr_null(nebula_json_parse(unit_pool, "{", 1, 0, NULL));
}
END_TEST

START_TEST(parse_respects_len_and_flags)
{
    const char *err;
    json_t *j;

    /* only len bytes are read */
    j = nebula_json_parse(unit_pool, "{\"a\":1}garbage", 7, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(nebula_json_geti(j, 0, "a", NULL), 1);
    /* scalars by default, refused with NEBULA_JSON_CONTAINER_ONLY */
    j = nebula_json_parse(unit_pool, "42", 2, 0, &err);
    ck_assert(json_is_integer(j));
    ck_assert_ptr_null(
        nebula_json_parse(unit_pool, "42", 2, NEBULA_JSON_CONTAINER_ONLY, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(
        nebula_json_parse(unit_pool, "[42]", 4, NEBULA_JSON_CONTAINER_ONLY, &err));
    /* duplicates: last wins, or refused with the flag */
    j = nebula_json_parse(unit_pool, "{\"k\":1,\"k\":2}", 13, 0, &err);
    ck_assert_int_eq(nebula_json_geti(j, 0, "k", NULL), 2);
    ck_assert_ptr_null(nebula_json_parse(unit_pool, "{\"k\":1,\"k\":2}", 13,
                                         NEBULA_JSON_REJECT_DUPLICATES, &err));
    ck_assert_msg(strstr(err, "duplicate") != NULL, "got: %s", err);
}
END_TEST

START_TEST(dumps_compact_and_large)
{
    json_t *j = nebula_json_own(
        unit_pool, json_pack("{s:i,s:[b,n],s:s}", "a", 1, "b", 1, "c", "x\"y"));
    json_t *big, *back;
    char *s;
    int i;

    ck_assert_str_eq(nebula_json_dumps(unit_pool, j, 0),
                     "{\"a\":1,\"b\":[true,null],\"c\":\"x\\\"y\"}");
    s = nebula_json_dumps(unit_pool, j, JSON_INDENT(2));
    ck_assert_ptr_nonnull(strchr(s, '\n'));
    ck_assert_str_eq(
        nebula_json_dumps(unit_pool, nebula_json_own(unit_pool, json_string("s")), 0),
        "\"s\"");
    ck_assert_ptr_null(nebula_json_dumps(unit_pool, NULL, 0));
    /* beyond the 512-byte first pass */
    big = nebula_json_own(unit_pool, json_array());
    for (i = 0; i < 500; ++i) {
        json_array_append_new(big, json_integer(100000 + i));
    }
    s = nebula_json_dumps(unit_pool, big, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), 2 + 500 * 6 + 499);
    back = nebula_json_parse(unit_pool, s, strlen(s), 0, NULL);
    ck_assert(json_equal(big, back));
}
END_TEST

START_TEST(error_body_exact_and_escaped)
{
    static const char msg[] = "He said \"no\"\nthen left\\ \x01 \xC3\xBCn\xC3\xAF "
                              "\xE2\x9C\x93 \xF0\x9F\x98\x80 </script>";
    const char *body;
    json_t *j;

    body = nebula_json_error_body(unit_pool, "x", "t", NULL, NULL);
    ck_assert_str_eq(
        body,
        "{\"error\":{\"message\":\"x\",\"type\":\"t\",\"param\":null,\"code\":null}}");

    body = nebula_json_error_body(unit_pool, msg, "invalid_request_error", "messages[0]",
                                  "bad \"code\"");
    ck_assert_ptr_null(strchr(body, '\n')); /* newline escaped, compact */
    j = nebula_json_parse(unit_pool, body, strlen(body), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(nebula_json_gets(j, "error", "message", NULL), msg);
    ck_assert_str_eq(nebula_json_gets(j, "error", "type", NULL), "invalid_request_error");
    ck_assert_str_eq(nebula_json_gets(j, "error", "param", NULL), "messages[0]");
    ck_assert_str_eq(nebula_json_gets(j, "error", "code", NULL), "bad \"code\"");
    ck_assert_uint_eq(json_object_size(nebula_json_getj(j, "error", NULL)), 4);

    /* NULL message and invalid UTF-8 still give valid JSON */
    body = nebula_json_error_body(unit_pool, NULL, NULL, NULL, "c");
    j = nebula_json_parse(unit_pool, body, strlen(body), 0, NULL);
    ck_assert_str_eq(nebula_json_gets(j, "error", "message", NULL), "");
    ck_assert(json_is_null(nebula_json_getj(j, "error", "type", NULL)));
    ck_assert(json_is_null(nebula_json_getj(j, "error", "param", NULL)));
    body = nebula_json_error_body(unit_pool, "bad \xFF byte \xC3", "t", NULL, NULL);
    j = nebula_json_parse(unit_pool, body, strlen(body), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(nebula_json_gets(j, "error", "message", NULL),
                     "bad \xEF\xBF\xBD byte \xEF\xBF\xBD");
}
END_TEST

START_TEST(pool_cleanup_releases)
{
    apr_pool_t *sub;
    json_t *j = json_object();
    json_t *parsed;

    ck_assert_int_eq(apr_pool_create(&sub, unit_pool), APR_SUCCESS);
    json_incref(j); /* our own reference, to watch the pool's go away */
    ck_assert_ptr_eq(nebula_json_own(sub, j), j);
    ck_assert_uint_eq(j->refcount, 2);
    parsed = nebula_json_parse(sub, "{\"a\":[1,2,3]}", 13, 0, NULL);
    ck_assert_uint_eq(parsed->refcount, 1);
    json_incref(parsed);
    apr_pool_destroy(sub);
    ck_assert_uint_eq(j->refcount, 1);
    ck_assert_uint_eq(parsed->refcount, 1);
    json_decref(j);
    json_decref(parsed);
    ck_assert_ptr_null(nebula_json_own(unit_pool, NULL));
}
END_TEST


/* The fast reader agrees with jansson: what it takes, jansson takes and
 * builds equal; what jansson refuses, it refuses. Inputs: the shapes the
 * relay reads, every escape, UTF-8 edge cases, numbers, and each way a
 * document can be wrong (JSONTestSuite's n_ families). */
static const char *const fast_cases[] = {
    /* taken by both */
    "{}", "[]", " { } ", "[1,2,3]", "{\"a\":1,\"b\":[true,false,null]}",
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"max_tokens\":16,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi! \xe6\x88\x91\xe4\xbb\xac\"}]}",
    "[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]", "[\"\\u0041\\u00e9\\u4e2d\"]",
    "[\"\\ud83d\\ude00 emoji\"]", "[\"\xf0\x9f\x98\x80\"]", "[\"\xed\x9f\xbf\"]",
    "[\"\xef\xbf\xbf\"]", "[\"\xf4\x8f\xbf\xbf\"]", "[0,-0,1,-1,9223372036854775807]",
    "[-9223372036854775808]", "[0.5,-1.25,1e3,1E-3,1.5e+2,-0.0]", "[1e-400]",
    "{\"a\":1,\"a\":2}", "{\"\":\"\"}", "[[[[[[[[[[[]]]]]]]]]]]", "\t\r\n[ 1 ]\n",
    "{\"k\\u0041y\":\"v\\\\\"}",
    /* refused by both */
    "", " ", "[", "]", "{", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[01]",
    "[1.]", "[.5]", "[1e]", "[1e+]", "[-]", "[+1]", "[0x10]", "[NaN]", "[Infinity]",
    "[1e400]", "[-1e400]", "[9223372036854775808]", "[\"abc]", "[\"a\tb\"]",
    "[\"\\x41\"]", "[\"\\u00\"]", "[\"\\u0000\"]", "[\"\\ud800\"]", "[\"\\udc00\"]",
    "[\"\\ud800\\u0041\"]", "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]", "[\"\xed\xa0\x80\"]",
    "[\"\xf4\x90\x80\x80\"]", "[\"\xff\"]", "[\"\x80\"]", "[\"\xe6\x88\"]", "[tru]",
    "[nul]", "[true false]", "[1] [2]", "{} x", "[1]]", "\xef\xbb\xbf[1]", "['a']",
    "{\"a\":1}/**/", "[1,\n2,\n]",
    NULL};

START_TEST(fast_reader_agrees_with_jansson)
{
    int i, taken = 0;

    for (i = 0; fast_cases[i]; ++i) {
        const char *in = fast_cases[i];
        size_t n = strlen(in);
        json_error_t e;
        json_t *want = json_loadb(in, n, 0, &e), *got = nebula_json_fast_loadb(in, n, 0, 0);

        if (got != NULL) {
            ck_assert_msg(want != NULL, "fast took what jansson refuses: %s", in);
            ck_assert_msg(json_equal(want, got), "fast built another value: %s", in);
            ++taken;
        }
        else {
            ck_assert_msg(want == NULL, "fast refused what jansson takes: %s", in);
        }
        json_decref(want);
        json_decref(got);
    }
    ck_assert_int_eq(taken, 22); /* every case of the first group */
}
END_TEST

START_TEST(fast_reader_flags_and_lengths)
{
    json_t *j;

    /* a scalar only with "any" */
    ck_assert_ptr_null(nebula_json_fast_loadb("1", 1, 0, 0));
    j = nebula_json_fast_loadb(" \"x\" ", 5, 1, 0);
    ck_assert_str_eq(json_string_value(j), "x");
    json_decref(j);
    /* duplicates: the last wins, or refused */
    j = nebula_json_fast_loadb("{\"a\":1,\"a\":2}", 13, 0, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 2);
    json_decref(j);
    ck_assert_ptr_null(nebula_json_fast_loadb("{\"a\":1,\"a\":2}", 13, 0, 1));
    /* the length is the end: what follows is not read */
    j = nebula_json_fast_loadb("[1]garbage", 3, 0, 0);
    ck_assert_int_eq(json_array_size(j), 1);
    json_decref(j);
    /* a string is its bytes, NUL-free, whatever its escapes */
    j = nebula_json_fast_loadb("[\"a\\u00e9\\n\"]", 13, 0, 0);
    ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "a\xc3\xa9\n");
    json_decref(j);
    /* too deep for the fast reader: jansson decides */
    {
        char deep[1200];
        memset(deep, '[', 600);
        memset(deep + 600, ']', 600);
        ck_assert_ptr_null(nebula_json_fast_loadb(deep, 1200, 0, 0));
        j = nebula_json_parse(unit_pool, deep, 1200, 0, NULL);
        ck_assert_ptr_nonnull(j);
    }
}
END_TEST

Suite *unit_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, parse_ok_and_getters);
    tcase_add_test(tc, getters_missing_and_wrong_types);
    tcase_add_test(tc, parse_errors_name_the_position);
    tcase_add_test(tc, parse_respects_len_and_flags);
    tcase_add_test(tc, dumps_compact_and_large);
    tcase_add_test(tc, error_body_exact_and_escaped);
    tcase_add_test(tc, pool_cleanup_releases);
    tcase_add_test(tc, fast_reader_agrees_with_jansson);
    tcase_add_test(tc, fast_reader_flags_and_lengths);
    suite_add_tcase(s, tc);
    return s;
}

/* test_jsonsuite.c: nebula_json against JSONTestSuite's parsing cases
 * (t/unit/jsontestsuite/, see its README.md): every y_ text is accepted and
 * every n_ text refused by nebula_json_parse(); the fast reader alone, where
 * it decides, takes only y_ texts and builds what jansson builds; and the
 * nesting limit refuses the deep n_ texts without a syntax verdict.
 *
 * The directory is found from NEBULA_JSONSUITE_DIR, else next to the test
 * binary (t/unit/), else t/unit/jsontestsuite below the working directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "nebula_json.h"
#include "nebula_unit.h"

Suite *unit_jsonsuite_suite(void); /* run by main.c */

#define SUITE_Y_CASES 95
#define SUITE_N_CASES 188

/* y_ texts refused on purpose: a string with U+0000 would reach the code
 * that reads strings as C strings (model names, prompt text the governance
 * scan sees) cut short, while the upstream gets all of it. */
static const char *const y_refused[] = {
    "y_object_escaped_null_in_key.json",
    "y_string_null_escape.json",
    NULL};

/* y_ texts the fast reader leaves to jansson (a number longer than 63
 * bytes), besides those of y_refused */
static const char *const y_not_fast[] = {
    "y_number_double_close_to_zero.json",
    NULL};

static int listed(const char *const *list, const char *name)
{
    for (; *list; ++list) {
        if (strcmp(*list, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *suite_dir(apr_pool_t *p)
{
    const char *env = getenv("NEBULA_JSONSUITE_DIR"), *cand[3];
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    apr_finfo_t fi;
    int i, k = 0;

    if (env != NULL && *env != '\0') {
        return env;
    }
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
        }
        /* a libtool build runs t/unit/.libs/test_common */
        if ((slash = strrchr(exe, '/')) != NULL && strcmp(slash, "/.libs") == 0) {
            *slash = '\0';
        }
        cand[k++] = apr_pstrcat(p, exe, "/jsontestsuite", NULL);
    }
    cand[k++] = "t/unit/jsontestsuite";
    for (i = 0; i < k; ++i) {
        if (apr_stat(&fi, cand[i], APR_FINFO_TYPE, p) == APR_SUCCESS
            && fi.filetype == APR_DIR) {
            return cand[i];
        }
    }
    ck_abort_msg("JSONTestSuite cases not found (set NEBULA_JSONSUITE_DIR)");
    return NULL;
}

typedef void (*case_fn)(const char *name, int yes, const char *buf, apr_size_t len);

/* Run fn over every y_ and n_ case; the counts must be the vendored ones. */
static void each_case(case_fn fn)
{
    const char *dir = suite_dir(unit_pool);
    apr_dir_t *d;
    apr_finfo_t fi;
    int ny = 0, nn = 0;

    ck_assert_int_eq(apr_dir_open(&d, dir, unit_pool), APR_SUCCESS);
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        const char *name = fi.name;
        apr_size_t nl = strlen(name);
        apr_file_t *f;
        apr_finfo_t st;
        char *buf;
        apr_size_t got = 0;
        int yes;

        if (nl < 7 || strcmp(name + nl - 5, ".json") != 0
            || (strncmp(name, "y_", 2) != 0 && strncmp(name, "n_", 2) != 0)) {
            continue;
        }
        yes = name[0] == 'y';
        ck_assert_int_eq(apr_file_open(&f, apr_pstrcat(unit_pool, dir, "/", name, NULL),
                                       APR_FOPEN_READ | APR_FOPEN_BINARY, 0, unit_pool),
                         APR_SUCCESS);
        ck_assert_int_eq(apr_file_info_get(&st, APR_FINFO_SIZE, f), APR_SUCCESS);
        /* exactly the file's bytes, in a buffer of their own (ASan sees
         * a read past the end) */
        buf = apr_palloc(unit_pool, (apr_size_t)st.size + 1);
        if (st.size > 0) {
            ck_assert_int_eq(apr_file_read_full(f, buf, (apr_size_t)st.size, &got),
                             APR_SUCCESS);
        }
        apr_file_close(f);
        fn(name, yes, buf, got);
        ny += yes;
        nn += !yes;
    }
    apr_dir_close(d);
    ck_assert_int_eq(ny, SUITE_Y_CASES);
    ck_assert_int_eq(nn, SUITE_N_CASES);
}

static void check_parse(const char *name, int yes, const char *buf, apr_size_t len)
{
    const char *err = NULL;
    json_t *j = nebula_json_parse(unit_pool, buf, len, 0, &err);

    if (yes && !listed(y_refused, name)) {
        ck_assert_msg(j != NULL, "%s refused: %s", name, err ? err : "?");
    }
    else {
        ck_assert_msg(j == NULL, "%s accepted", name);
        ck_assert_msg(err != NULL, "%s refused without a message", name);
    }
}

START_TEST(suite_parse)
{
    each_case(check_parse);
}
END_TEST

static void check_fast(const char *name, int yes, const char *buf, apr_size_t len)
{
    json_t *got = nebula_json_fast_loadb(buf, len, 1, 0), *want;
    json_error_t e;

    if (!yes || listed(y_refused, name)) {
        ck_assert_msg(got == NULL, "fast reader took %s", name);
        return;
    }
    if (got == NULL) {
        ck_assert_msg(listed(y_not_fast, name), "fast reader left %s to jansson", name);
        return;
    }
    want = json_loadb(buf, len, JSON_DECODE_ANY, &e);
    ck_assert_msg(want != NULL, "jansson refused %s: %s", name, e.text);
    ck_assert_msg(json_equal(want, got), "fast reader built another value for %s", name);
    json_decref(want);
    json_decref(got);
}

START_TEST(suite_fast_reader)
{
    each_case(check_fast);
}
END_TEST

/* With the relay's default limit every y_ text keeps its verdict; the n_
 * texts that are only too deep are refused as too deep. */
static void check_limited(const char *name, int yes, const char *buf, apr_size_t len)
{
    const char *err = NULL;
    int deep = -1;
    json_t *j = nebula_json_parse_limited(unit_pool, buf, len, 0, 64, &deep, &err);

    ck_assert_int_ne(deep, -1);
    if (yes) {
        ck_assert_msg(deep == 0, "%s too deep", name);
        ck_assert_msg((j != NULL) == !listed(y_refused, name), "%s: another verdict", name);
        return;
    }
    ck_assert_msg(j == NULL, "%s accepted", name);
    if (strcmp(name, "n_structure_100000_opening_arrays.json") == 0
        || strcmp(name, "n_structure_open_array_object.json") == 0) {
        ck_assert_msg(deep == 1, "%s not refused as too deep", name);
        ck_assert_str_eq(err, "arrays and objects nested deeper than 64 levels");
    }
}

START_TEST(suite_depth_limit)
{
    each_case(check_limited);
}
END_TEST

/* "[[...[]...]]" nested n deep, after a prefix (inside the outer array) */
static const char *nest(const char *prefix, int n)
{
    apr_size_t pl = strlen(prefix);
    char *s = apr_palloc(unit_pool, pl + 2 * (apr_size_t)n + 1);

    memset(s, '[', (apr_size_t)n);
    memcpy(s + n, prefix, pl);
    memset(s + n + pl, ']', (apr_size_t)n);
    s[pl + 2 * (apr_size_t)n] = '\0';
    return s;
}

/* 0 accepted, 1 refused as too deep, 2 refused as malformed */
static int verdict(const char *text, int limit)
{
    int deep = -1;
    const char *err = NULL;
    json_t *j = nebula_json_parse_limited(unit_pool, text, strlen(text), 0, limit, &deep,
                                          &err);

    ck_assert_int_ne(deep, -1);
    if (j != NULL) {
        ck_assert_int_eq(deep, 0);
        ck_assert_ptr_null(err);
        return 0;
    }
    ck_assert_ptr_nonnull(err);
    return deep ? 1 : 2;
}

START_TEST(depth_boundaries)
{
    static const char long_num[] = "1.00000000000000000000000000000000000000000000000000"
                                   "0000000000000000000000000";

    /* the fast reader decides */
    ck_assert_int_eq(verdict(nest("", 64), 64), 0);
    ck_assert_int_eq(verdict(nest("", 65), 64), 1);
    ck_assert_int_eq(verdict(nest("", 1), 1), 0);
    ck_assert_int_eq(verdict(nest("", 2), 1), 1);
    ck_assert_int_eq(verdict("7", 1), 0);
    /* an object counts as an array does; brackets in strings do not */
    ck_assert_int_eq(verdict("{\"a\":{\"b\":[\"[[[[{{{{\\\"[[\"]}}", 3), 0);
    ck_assert_int_eq(verdict("{\"a\":{\"b\":[{}]}}", 3), 1);
    /* the fast reader gives up on the number first: the scan decides */
    ck_assert_int_eq(verdict(nest(long_num, 64), 64), 0);
    ck_assert_int_eq(verdict(nest(long_num, 65), 64), 1);
    /* no limit, or one beyond jansson's: jansson's own (2048) */
    ck_assert_int_eq(verdict(nest("", 2000), 0), 0);
    ck_assert_int_eq(verdict(nest("", 3000), 5000), 2);
    /* malformed and deep: refused, for one reason or the other */
    ck_assert_int_eq(verdict("[[[[x", 3), 1);
    ck_assert_int_eq(verdict("[[x", 3), 2);
    ck_assert_int_eq(verdict("[[[1]]", 3), 2);
    /* the scan alone */
    ck_assert_int_eq(nebula_json_too_deep("[\"\\\"[\"]", 7, 1), 0);
    ck_assert_int_eq(nebula_json_too_deep("[\"\\", 3, 1), 0);
    ck_assert_int_eq(nebula_json_too_deep("[[", 2, 1), 1);
    ck_assert_int_eq(nebula_json_too_deep(NULL, 0, 1), 0);
    ck_assert_int_eq(nebula_json_too_deep("[[", 2, 0), 0);
}
END_TEST

/* jansson alone takes "123\0" and "[1\0]" (it skips the NUL) */
START_TEST(raw_nul_refused)
{
    static const struct {
        const char *text;
        apr_size_t len;
    } cases[] = {{"123\0", 4}, {"[1\0]", 4}, {"{\"a\"\0:1}", 8}, {"[1]\0", 4}};
    const char *err;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        err = NULL;
        ck_assert_ptr_null(nebula_json_parse(unit_pool, cases[i].text, cases[i].len, 0, &err));
        ck_assert_ptr_nonnull(err);
    }
    err = NULL;
    nebula_json_parse(unit_pool, "[1\0]", 4, 0, &err);
    ck_assert_str_eq(err, "a NUL byte is not allowed in JSON text (byte 2)");
}
END_TEST

Suite *unit_jsonsuite_suite(void)
{
    Suite *s = suite_create("jsonsuite");
    TCase *tc = tcase_create("jsontestsuite");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, suite_parse);
    tcase_add_test(tc, suite_fast_reader);
    tcase_add_test(tc, suite_depth_limit);
    tcase_add_test(tc, depth_boundaries);
    tcase_add_test(tc, raw_nul_refused);
    suite_add_tcase(s, tc);
    return s;
}

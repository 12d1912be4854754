/* test_migrate_split.c: nebula_migrate_split, the statement rule of
 * sql/README.md: ';' at the end of a line ends a statement, comment and
 * blank lines are dropped, ';' elsewhere and unterminated text are errors
 * naming the line; and every embedded migration file obeys the rule. */
#include <string.h>

#include "nebula_migrate.h"
#include "nebula_unit.h"

Suite *unit_migrate_split_suite(void);

static apr_array_header_t *split_ok(const char *sql)
{
    apr_array_header_t *stmts = NULL;
    const char *err = NULL;

    ck_assert_msg(nebula_migrate_split(sql, &stmts, &err, unit_pool) == APR_SUCCESS,
                  "split failed: %s", err ? err : "?");
    return stmts;
}

static const char *split_err(const char *sql)
{
    apr_array_header_t *stmts = NULL;
    const char *err = NULL;

    ck_assert_int_eq(nebula_migrate_split(sql, &stmts, &err, unit_pool), APR_EINVAL);
    ck_assert_ptr_nonnull(err);
    return err;
}

#define STMT(a, i) (&APR_ARRAY_IDX((a), (i), nebula_migrate_stmt_t))

START_TEST(statements_and_lines)
{
    apr_array_header_t *s = split_ok("-- header\n"
                                     "\n"
                                     "CREATE TABLE a (\n"
                                     "    id INTEGER, -- trailing comment\n"
                                     "  -- inner comment line\n"
                                     "    b TEXT\n"
                                     ");\n"
                                     "\r\n"
                                     "CREATE INDEX i ON a (id) ;  \r\n"
                                     "INSERT INTO a VALUES (1, 'x');");

    ck_assert_int_eq(s->nelts, 3);
    ck_assert_str_eq(STMT(s, 0)->sql, "CREATE TABLE a (\nid INTEGER, -- trailing "
                                      "comment\nb TEXT\n)");
    ck_assert_int_eq(STMT(s, 0)->line, 3);
    ck_assert_str_eq(STMT(s, 1)->sql, "CREATE INDEX i ON a (id)");
    ck_assert_int_eq(STMT(s, 1)->line, 9);
    ck_assert_str_eq(STMT(s, 2)->sql, "INSERT INTO a VALUES (1, 'x')");
    ck_assert_int_eq(STMT(s, 2)->line, 10);
}
END_TEST

START_TEST(empty_and_comments_only)
{
    ck_assert_int_eq(split_ok("")->nelts, 0);
    ck_assert_int_eq(split_ok("-- nothing; at all\n\n   \n-- x\n")->nelts, 0);
}
END_TEST

START_TEST(semicolon_inside_is_error)
{
    const char *err = split_err("CREATE TABLE a (id INTEGER);\n"
                                "INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);\n");

    ck_assert_msg(strstr(err, "line 2") != NULL, "%s", err);
    err = split_err("SELECT 1; -- trailing comment after the end\n");
    ck_assert_msg(strstr(err, "line 1") != NULL, "%s", err);
}
END_TEST

START_TEST(unterminated_is_error)
{
    const char *err = split_err("CREATE TABLE a (id INTEGER);\n\nCREATE TABLE b (\n"
                                "    id INTEGER\n)\n");

    ck_assert_msg(strstr(err, "line 3") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "not terminated") != NULL, "%s", err);
}
END_TEST

START_TEST(empty_statement_is_error)
{
    const char *err = split_err("SELECT 1;\n;\n");

    ck_assert_msg(strstr(err, "line 2") != NULL, "%s", err);
}
END_TEST

START_TEST(embedded_files_obey_the_rule)
{
    int i;

    ck_assert_int_gt(nebula_schema_sql_count, 0);
    for (i = 0; i < nebula_schema_sql_count; i++) {
        const nebula_migration_t *m = &nebula_schema_sql[i];

        ck_assert_msg(split_ok(m->sql)->nelts > 0, "%s has no statement", m->file);
        ck_assert_int_eq(strlen(m->checksum), 64);
        ck_assert_int_ge(m->version, 1);
    }
    /* the same versions in every dialect */
    ck_assert_int_eq(nebula_migrate_embedded(NEBULA_DBD_SQLITE, unit_pool)->nelts,
                     nebula_migrate_embedded(NEBULA_DBD_PGSQL, unit_pool)->nelts);
    ck_assert_int_eq(nebula_migrate_embedded(NEBULA_DBD_SQLITE, unit_pool)->nelts,
                     nebula_migrate_embedded(NEBULA_DBD_MYSQL, unit_pool)->nelts);
}
END_TEST

Suite *unit_migrate_split_suite(void)
{
    Suite *s = suite_create("migrate_split");
    TCase *tc = tcase_create("split");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, statements_and_lines);
    tcase_add_test(tc, empty_and_comments_only);
    tcase_add_test(tc, semicolon_inside_is_error);
    tcase_add_test(tc, unterminated_is_error);
    tcase_add_test(tc, empty_statement_is_error);
    tcase_add_test(tc, embedded_files_obey_the_rule);
    suite_add_tcase(s, tc);
    return s;
}

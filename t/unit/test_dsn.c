/* test_dsn.c: nebula_dbd_dsn_parse: each accepted DSN form becomes the
 * apr_dbd driver and the exact parameter string that driver parses;
 * percent-decoding and quoting; values apr_dbd_mysql cannot carry and
 * malformed DSNs are refused; the redacted form and the error messages
 * never contain the password. */
#include <string.h>

#include "nebula_dbd_dsn.h"
#include "nebula_unit.h"

Suite *unit_dsn_suite(void);

static nebula_dbd_dsn_t parse_ok(const char *dsn)
{
    nebula_dbd_dsn_t out;
    const char *err = NULL;
    apr_status_t rv = nebula_dbd_dsn_parse(dsn, &out, &err, unit_pool);

    ck_assert_msg(rv == APR_SUCCESS, "%s: %s", dsn, err ? err : "?");
    return out;
}

static const char *parse_err(const char *dsn)
{
    nebula_dbd_dsn_t out;
    const char *err = NULL;

    ck_assert_int_eq(nebula_dbd_dsn_parse(dsn, &out, &err, unit_pool), APR_EINVAL);
    ck_assert_ptr_nonnull(err);
    return err;
}

START_TEST(sqlite_forms)
{
    nebula_dbd_dsn_t d = parse_ok("sqlite:/var/lib/nebula/nebula.db");

    ck_assert_int_eq(d.dialect, NEBULA_DBD_SQLITE);
    ck_assert_str_eq(d.driver, "sqlite3");
    ck_assert_str_eq(d.params, "/var/lib/nebula/nebula.db");
    ck_assert_str_eq(d.redacted, "sqlite:/var/lib/nebula/nebula.db");
    ck_assert_str_eq(parse_ok("sqlite:///abs/x.db").params, "/abs/x.db");
    ck_assert_str_eq(parse_ok("sqlite3:rel/x.db").params, "rel/x.db");
    ck_assert_str_eq(parse_ok("SQLite::memory:").params, ":memory:");
    parse_err("sqlite:");
    parse_err("sqlite://");
}
END_TEST

START_TEST(postgres_full)
{
    nebula_dbd_dsn_t d = parse_ok("postgres://neb:s3cret@db.example:5433/gateway");

    ck_assert_int_eq(d.dialect, NEBULA_DBD_PGSQL);
    ck_assert_str_eq(d.driver, "pgsql");
    ck_assert_str_eq(d.params, "host='db.example' port='5433' user='neb' "
                               "password='s3cret' dbname='gateway'");
    ck_assert_str_eq(d.redacted, "postgres://neb:***@db.example:5433/gateway");
}
END_TEST

START_TEST(postgres_partial_and_query)
{
    ck_assert_str_eq(parse_ok("postgresql://neb@localhost/gw?sslmode=require&"
                              "connect_timeout=5")
                         .params,
                     "host='localhost' user='neb' dbname='gw' sslmode='require' "
                     "connect_timeout='5'");
    ck_assert_str_eq(parse_ok("postgres://h").params, "host='h'");
    ck_assert_str_eq(parse_ok("postgres:///gw").params, "dbname='gw'");
    /* a socket directory as the host, percent-encoded */
    ck_assert_str_eq(parse_ok("postgres://neb@%2Frun%2Fpostgresql/gw").params,
                     "host='/run/postgresql' user='neb' dbname='gw'");
}
END_TEST

START_TEST(postgres_decoding_and_quoting)
{
    nebula_dbd_dsn_t d = parse_ok("postgres://us%20er:p%40ss'w\\d@h:1/d%2Bb");

    ck_assert_str_eq(d.params, "host='h' port='1' user='us er' "
                               "password='p@ss\\'w\\\\d' dbname='d+b'");
    ck_assert_ptr_null(strstr(d.redacted, "ss'w"));
    /* the last '@' ends the user info: an unencoded '@' in the password */
    ck_assert_str_eq(parse_ok("postgres://u:a@b@h/d").params,
                     "host='h' user='u' password='a@b' dbname='d'");
}
END_TEST

START_TEST(postgres_ipv6)
{
    ck_assert_str_eq(parse_ok("postgres://u@[::1]:5432/d").params,
                     "host='::1' port='5432' user='u' dbname='d'");
    ck_assert_str_eq(parse_ok("postgres://[fe80::2]/d").params,
                     "host='fe80::2' dbname='d'");
    parse_err("postgres://[::1/d");
    parse_err("postgres://[::1]x/d");
}
END_TEST

START_TEST(postgres_bad)
{
    parse_err("postgres://u@h:0/d");
    parse_err("postgres://u@h:65536/d");
    parse_err("postgres://u@h:54a/d");
    parse_err("postgres://u@h:/d");
    parse_err("postgres://u@h/a/b");
    parse_err("postgres://u:p%zz@h/d");
    parse_err("postgres://u@h/d?novalue");
    parse_err("postgres://u@h/d?password=x");
    parse_err("postgres://u@h/d?Bad-Key=1");
}
END_TEST

START_TEST(mysql_full)
{
    nebula_dbd_dsn_t d = parse_ok("mysql://neb:pw@127.0.0.1:3307/gateway");

    ck_assert_int_eq(d.dialect, NEBULA_DBD_MYSQL);
    ck_assert_str_eq(d.driver, "mysql");
    ck_assert_str_eq(d.params, "host=127.0.0.1 port=3307 user=neb pass=pw dbname=gateway "
                               "reconnect=0 flags=CLIENT_FOUND_ROWS");
    ck_assert_str_eq(d.redacted, "mysql://neb:***@127.0.0.1:3307/gateway");
    ck_assert_str_eq(parse_ok("mariadb://neb@db/gw").params,
                     "host=db user=neb dbname=gw reconnect=0 flags=CLIENT_FOUND_ROWS");
}
END_TEST

START_TEST(mysql_socket_and_options)
{
    ck_assert_str_eq(
        parse_ok("mysql://neb:pw@/gw?socket=%2Frun%2Fmysqld%2Fm.sock").params,
        "user=neb pass=pw dbname=gw sock=/run/mysqld/m.sock reconnect=0 "
        "flags=CLIENT_FOUND_ROWS");
    ck_assert_str_eq(parse_ok("mysql://h/gw?reconnect=0&fldsz=4096").params,
                     "host=h dbname=gw reconnect=0 fldsz=4096 flags=CLIENT_FOUND_ROWS");
    /* NebulaGate counts matched rows: the one flag there is, given or added */
    ck_assert_str_eq(parse_ok("mysql://h/gw?flags=CLIENT_FOUND_ROWS").params,
                     "host=h dbname=gw flags=CLIENT_FOUND_ROWS reconnect=0");
    parse_err("mysql://h/gw?flags=CLIENT_COMPRESS");
    parse_err("mysql://h/gw?charset=utf8mb4");
}
END_TEST

START_TEST(mysql_unrepresentable)
{
    /* apr_dbd_mysql splits on these and has no quoting; '=' breaks keys */
    const char *bad[] = {"mysql://u:a%20b@h/d", "mysql://u:a;b@h/d",
                         "mysql://u:a%7Cb@h/d", "mysql://u:a,b@h/d",
                         "mysql://u:a=b@h/d",   "mysql://u:a%09b@h/d"};
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = parse_err(bad[i]);

        ck_assert_msg(strstr(err, "pass") != NULL, "%s: %s", bad[i], err);
        ck_assert_ptr_null(strstr(err, "a;b"));
        ck_assert_ptr_null(strstr(err, "a,b"));
    }
    parse_err("mysql://u@h/d%3Bx");
}
END_TEST

START_TEST(go_mysql_forms)
{
    nebula_dbd_dsn_t d =
        parse_ok("root:123456@tcp(localhost:3306)/oneapi?parseTime=true");

    ck_assert_int_eq(d.dialect, NEBULA_DBD_MYSQL);
    ck_assert_str_eq(d.params, "host=localhost port=3306 user=root pass=123456 dbname=oneapi "
                               "reconnect=0 flags=CLIENT_FOUND_ROWS");
    ck_assert_str_eq(d.redacted, "root:***@tcp(localhost:3306)/oneapi?parseTime=true");
    ck_assert_str_eq(parse_ok("u:p@unix(/run/mysqld/mysqld.sock)/gw").params,
                     "user=u pass=p dbname=gw sock=/run/mysqld/mysqld.sock reconnect=0 "
                     "flags=CLIENT_FOUND_ROWS");
    ck_assert_str_eq(parse_ok("tcp(db:3306)/gw").params,
                     "host=db port=3306 dbname=gw reconnect=0 flags=CLIENT_FOUND_ROWS");
    /* new-api's full form; no address: the Go driver's 127.0.0.1:3306 */
    ck_assert_str_eq(parse_ok("root:pw@tcp(db:3306)/oneapi?charset=utf8mb4&"
                              "parseTime=True&loc=Local")
                         .params,
                     "host=db port=3306 user=root pass=pw dbname=oneapi reconnect=0 "
                     "flags=CLIENT_FOUND_ROWS");
    d = parse_ok("root:pw@/oneapi?parseTime=true");
    ck_assert_str_eq(d.params, "host=127.0.0.1 port=3306 user=root pass=pw dbname=oneapi "
                               "reconnect=0 flags=CLIENT_FOUND_ROWS");
    ck_assert_str_eq(d.redacted, "root:***@/oneapi?parseTime=true");
    ck_assert_str_eq(parse_ok("u:p@tcp(db)/x?tls=false").params,
                     "host=db user=u pass=p dbname=x reconnect=0 flags=CLIENT_FOUND_ROWS");
    parse_err("u:p@tcp(db)/x?tls=true");
    parse_err("u:p@tcp(db)/x?tls=skip-verify");
    parse_err("root:pw@tcp(localhost:3306/gw");
    parse_err("root:pwtcp(localhost:3306)/gw");
}
END_TEST

START_TEST(unrecognised)
{
    nebula_dbd_dsn_t out;
    const char *err = NULL;

    ck_assert_int_eq(nebula_dbd_dsn_parse(NULL, &out, &err, unit_pool), APR_EINVAL);
    parse_err("");
    parse_err("local");
    parse_err("oracle://u:p@h/d");
    parse_err("/var/lib/nebula.db");
}
END_TEST

START_TEST(errors_hide_password)
{
    const char *err = parse_err("postgres://u:topsecret@h:99999/d");

    ck_assert_ptr_null(strstr(err, "topsecret"));
    err = parse_err("mysql://u:top;secret@h/d");
    ck_assert_ptr_null(strstr(err, "secret"));
}
END_TEST

Suite *unit_dsn_suite(void)
{
    Suite *s = suite_create("dsn");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, sqlite_forms);
    tcase_add_test(tc, postgres_full);
    tcase_add_test(tc, postgres_partial_and_query);
    tcase_add_test(tc, postgres_decoding_and_quoting);
    tcase_add_test(tc, postgres_ipv6);
    tcase_add_test(tc, postgres_bad);
    tcase_add_test(tc, mysql_full);
    tcase_add_test(tc, mysql_socket_and_options);
    tcase_add_test(tc, mysql_unrepresentable);
    tcase_add_test(tc, go_mysql_forms);
    tcase_add_test(tc, unrecognised);
    tcase_add_test(tc, errors_hide_password);
    suite_add_tcase(s, tc);
    return s;
}

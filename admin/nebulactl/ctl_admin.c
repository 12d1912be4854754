/* ctl_admin.c: `nebulactl user-create` and `nebulactl key-create`: the first
 * admin and a client key without a running server (./nebula up uses them).
 * They write the same rows the admin API writes, with the same shared code:
 * argon2id password hashes (nebula_crypto) and client keys stored as their
 * hash (nebula_apikey). The username rule repeats admin_users.c's.
 *
 *   nebulactl user-create --username U [--password P | --password-stdin |
 *                         --random-password] [--role root|admin|user]
 *                         [--group G] [--display-name D] [--exists-ok] DB
 *   nebulactl key-create --username U [--name N] [--unlimited] [--quota N]
 *                        [--group G] DB
 *
 * user-create prints "id: N", "username: U", "role: R" (and "password: P"
 * for --random-password); key-create prints the key alone on stdout, once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_env.h>
#include <apr_time.h>

#include "ctl.h"
#include "nebula_apikey.h"
#include "nebula_crypto.h"
#include "nebula_migrate.h"

/* The schema version these commands write for (0003_admin). */
#define ADMIN_SCHEMA_VERSION 3

enum {
    OPT_USERNAME = CTL_OPT_OWN,
    OPT_PASSWORD,
    OPT_PWSTDIN,
    OPT_PWRANDOM,
    OPT_ROLE,
    OPT_GROUP,
    OPT_DISPLAY,
    OPT_EXISTS_OK,
    OPT_NAME,
    OPT_UNLIMITED,
    OPT_QUOTA
};

static const apr_getopt_option_t admin_options[] = {
    CTL_DB_OPTIONS,
    {"username", OPT_USERNAME, 1, "user name"},
    {"password", OPT_PASSWORD, 1, "password"},
    {"password-stdin", OPT_PWSTDIN, 0, "read the password from stdin"},
    {"random-password", OPT_PWRANDOM, 0, "make and print a password"},
    {"role", OPT_ROLE, 1, "root, admin or user"},
    {"group", OPT_GROUP, 1, "user group"},
    {"display-name", OPT_DISPLAY, 1, "display name"},
    {"exists-ok", OPT_EXISTS_OK, 0, "an existing user is not an error"},
    {"name", OPT_NAME, 1, "key name"},
    {"unlimited", OPT_UNLIMITED, 0, "unlimited quota"},
    {"quota", OPT_QUOTA, 1, "key quota"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

typedef struct {
    const char *username, *password, *role, *group, *display, *name;
    int pw_stdin, pw_random, exists_ok, unlimited;
    apr_int64_t quota;
} admin_opts_t;

int ctl_admin_is_command(const char *command)
{
    return strcmp(command, "user-create") == 0 || strcmp(command, "key-create") == 0;
}

static int valid_username(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > 64 || !apr_isalnum(s[0])) {
        return 0;
    }
    for (i = 1; i < n; ++i) {
        if (!apr_isalnum(s[i]) && !strchr("._@-", s[i])) {
            return 0;
        }
    }
    return 1;
}

static int apply(ctl_t *ctl, admin_opts_t *o, int opt, const char *arg)
{
    char *end;

    if (ctl_db_option(ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_USERNAME:
        o->username = arg;
        break;
    case OPT_PASSWORD:
        o->password = arg;
        break;
    case OPT_PWSTDIN:
        o->pw_stdin = 1;
        break;
    case OPT_PWRANDOM:
        o->pw_random = 1;
        break;
    case OPT_ROLE:
        o->role = arg;
        break;
    case OPT_GROUP:
        o->group = arg;
        break;
    case OPT_DISPLAY:
        o->display = arg;
        break;
    case OPT_EXISTS_OK:
        o->exists_ok = 1;
        break;
    case OPT_NAME:
        o->name = arg;
        break;
    case OPT_UNLIMITED:
        o->unlimited = 1;
        break;
    case OPT_QUOTA:
        o->quota = apr_strtoi64(arg, &end, 10);
        if (*arg == '\0' || *end || o->quota < 0) {
            ctl_error("--quota wants a whole number >= 0, not '%s'", arg);
            return CTL_EXIT_USAGE;
        }
        break;
    default:
        return -1;
    }
    return CTL_EXIT_OK;
}

/* Which options belong to which command, and that they make sense. */
static int check_opts(ctl_t *ctl, admin_opts_t *o)
{
    int user = strcmp(ctl->command, "user-create") == 0;

    if (o->username == NULL || !valid_username(o->username)) {
        ctl_error("--username wants 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a "
                  "letter or digit");
        return CTL_EXIT_USAGE;
    }
    if (user && (o->name || o->unlimited || o->quota)) {
        ctl_error("--name, --unlimited and --quota are key-create options");
        return CTL_EXIT_USAGE;
    }
    if (!user && (o->password || o->pw_stdin || o->pw_random || o->role || o->display ||
                  o->exists_ok)) {
        ctl_error(
            "password, --role, --display-name and --exists-ok are user-create options");
        return CTL_EXIT_USAGE;
    }
    if ((o->password != NULL) + o->pw_stdin + o->pw_random > 1) {
        ctl_error("give one of --password, --password-stdin, --random-password");
        return CTL_EXIT_USAGE;
    }
    if (o->role && strcmp(o->role, "root") && strcmp(o->role, "admin") &&
        strcmp(o->role, "user")) {
        ctl_error("--role must be root, admin or user");
        return CTL_EXIT_USAGE;
    }
    return ctl_dsn_settle(ctl);
}

typedef struct {
    ctl_t *ctl;
    admin_opts_t *o;
} admin_baton_t;

static int apply_baton(void *baton, int opt, const char *arg)
{
    admin_baton_t *b = baton;

    return apply(b->ctl, b->o, opt, arg);
}

static int parse(ctl_t *ctl, admin_opts_t *o, int argc, const char *const *argv)
{
    admin_baton_t b = {ctl, o};
    int code = ctl_getopt(ctl, argc, argv, admin_options, apply_baton, &b);

    return code != CTL_EXIT_OK ? code : check_opts(ctl, o);
}

/* ---- statements on ctl's connection ------------------------------------ */

static int q_select(ctl_t *ctl, const char *sql, int nargs, const char **args,
                    nebula_dbd_rows_t *rows)
{
    return ctl_select(ctl, ctl->pool, sql, nargs, args, rows);
}

/* INSERT ... (no ';'), returning the new id (RETURNING on PostgreSQL). */
static int q_insert(ctl_t *ctl, const char *sql, int nargs, const char **args,
                    apr_int64_t *id)
{
    nebula_dbd_dialect_e d = nebula_dbd_dialect_of(ctl->driver);
    apr_dbd_prepared_t *st = NULL;
    nebula_dbd_rows_t rows;
    int n = 0;

    if (d == NEBULA_DBD_PGSQL) {
        if (q_select(ctl, apr_pstrcat(ctl->pool, sql, " RETURNING id", NULL), nargs, args,
                     &rows) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    else if (apr_dbd_prepare(ctl->driver, ctl->pool, ctl->handle, sql, NULL, &st) ||
             apr_dbd_pquery(ctl->driver, ctl->pool, ctl->handle, &n, st, nargs, args)) {
        ctl_error("database: %s",
                  nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, ctl->pool));
        return CTL_EXIT_ERROR;
    }
    else if (q_select(ctl,
                      d == NEBULA_DBD_MYSQL ? "SELECT LAST_INSERT_ID()"
                                            : "SELECT last_insert_rowid()",
                      0, NULL, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *id = rows.nrows == 1 && rows.rows[0][0] ? apr_atoi64(rows.rows[0][0]) : 0;
    return CTL_EXIT_OK;
}

/* Connected, and the schema is current enough for these tables. */
static int connect_checked(ctl_t *ctl)
{
    return ctl_db_connect_current(ctl, ADMIN_SCHEMA_VERSION);
}

static int group_exists(ctl_t *ctl, const char *group)
{
    nebula_dbd_rows_t rows;
    const char *args[1] = {group};

    if (strcmp(group, "default") == 0) {
        return CTL_EXIT_OK;
    }
    if (q_select(ctl, "SELECT name FROM user_groups WHERE name = %s", 1, args, &rows) !=
        CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows == 0) {
        ctl_error("the group '%s' does not exist", group);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* The users row of --username: id, role, status; nrows 0 when missing. */
static int find_user(ctl_t *ctl, const char *username, nebula_dbd_rows_t *rows)
{
    const char *args[1] = {username};

    return q_select(ctl, "SELECT id, role, status FROM users WHERE username = %s", 1,
                    args, rows);
}

/* The password of user-create: given, from stdin (first line), made, or none. */
static int read_password(ctl_t *ctl, admin_opts_t *o)
{
    char buf[1100];
    apr_size_t n;

    if (o->pw_random) {
        o->password = nebula_crypto_token(ctl->pool, NULL, 24);
    }
    else if (o->pw_stdin) {
        if (fgets(buf, sizeof(buf), stdin) == NULL) {
            ctl_error("--password-stdin: nothing to read");
            return CTL_EXIT_ERROR;
        }
        n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            buf[--n] = '\0';
        }
        o->password = apr_pstrdup(ctl->pool, buf);
    }
    if (o->password && (strlen(o->password) < 8 || strlen(o->password) > 1024)) {
        ctl_error("the password must be 8 to 1024 bytes long");
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

static int insert_user(ctl_t *ctl, admin_opts_t *o, apr_int64_t *id)
{
    const char *hash = NULL, *args[8];
    const char *now = apr_psprintf(ctl->pool, "%" APR_INT64_T_FMT,
                                   (apr_int64_t)(apr_time_now() / 1000));

    if (o->password &&
        nebula_crypto_password_hash(ctl->pool, o->password, &hash) != APR_SUCCESS) {
        ctl_error("cannot hash the password");
        return CTL_EXIT_ERROR;
    }
    args[0] = o->username, args[1] = o->display ? o->display : "";
    args[2] = o->role ? o->role : "user", args[3] = o->group ? o->group : "default";
    args[4] = hash, args[5] = now, args[6] = now;
    return q_insert(ctl,
                    "INSERT INTO users (username, display_name, role, user_group, "
                    "status, quota, password_hash, created_at, updated_at) VALUES "
                    "(%s, %s, %s, %s, 'active', 0, %s, %lld, %lld)",
                    7, args, id);
}

static int user_create(ctl_t *ctl, admin_opts_t *o)
{
    nebula_dbd_rows_t rows;
    apr_int64_t id = 0;
    int code;

    if ((code = read_password(ctl, o)) != CTL_EXIT_OK ||
        (code = connect_checked(ctl)) != CTL_EXIT_OK ||
        (code = group_exists(ctl, o->group ? o->group : "default")) != CTL_EXIT_OK ||
        (code = find_user(ctl, o->username, &rows)) != CTL_EXIT_OK) {
        return code;
    }
    if (rows.nrows > 0) {
        if (!o->exists_ok) {
            ctl_error("the user '%s' exists (id %s)", o->username, rows.rows[0][0]);
            return CTL_EXIT_ERROR;
        }
        printf("id: %s\nusername: %s\nrole: %s\nexists: yes\n", rows.rows[0][0],
               o->username, rows.rows[0][1]);
        return CTL_EXIT_OK;
    }
    if ((code = insert_user(ctl, o, &id)) != CTL_EXIT_OK) {
        return code;
    }
    printf("id: %" APR_INT64_T_FMT "\nusername: %s\nrole: %s\n", id, o->username,
           o->role ? o->role : "user");
    if (o->pw_random) {
        printf("password: %s\n", o->password);
    }
    return CTL_EXIT_OK;
}

static int key_create(ctl_t *ctl, admin_opts_t *o)
{
    nebula_dbd_rows_t rows;
    char *key, *hash, *prefix;
    const char *args[8];
    apr_int64_t id = 0;
    int code;

    if ((code = connect_checked(ctl)) != CTL_EXIT_OK ||
        (o->group && (code = group_exists(ctl, o->group)) != CTL_EXIT_OK) ||
        (code = find_user(ctl, o->username, &rows)) != CTL_EXIT_OK) {
        return code;
    }
    if (rows.nrows == 0 ||
        strcmp(rows.rows[0][2] ? rows.rows[0][2] : "", "deleted") == 0) {
        ctl_error("no user '%s'", o->username);
        return CTL_EXIT_ERROR;
    }
    if ((key = nebula_apikey_generate(ctl->pool, &hash, &prefix)) == NULL) {
        ctl_error("cannot make a key (no randomness)");
        return CTL_EXIT_ERROR;
    }
    args[0] = rows.rows[0][0], args[1] = o->name ? o->name : "", args[2] = hash;
    args[3] = prefix, args[4] = o->group;
    args[5] = apr_psprintf(ctl->pool, "%" APR_INT64_T_FMT, o->quota);
    args[6] = o->unlimited ? "1" : "0";
    args[7] = apr_psprintf(ctl->pool, "%" APR_INT64_T_FMT,
                           (apr_int64_t)(apr_time_now() / 1000));
    if ((code = q_insert(ctl,
                         "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, "
                         "status, key_group, remain_quota, unlimited_quota, used_quota, "
                         "created_at) VALUES (%lld, %s, %s, %s, 'active', %s, %lld, "
                         "%lld, 0, %lld)",
                         8, args, &id)) != CTL_EXIT_OK) {
        return code;
    }
    printf("%s\n", key);
    fprintf(stderr,
            "nebulactl: key %" APR_INT64_T_FMT " (%s...) for user '%s'; it is shown "
            "only now\n",
            id, prefix, o->username);
    return CTL_EXIT_OK;
}

int ctl_admin_main(ctl_t *ctl, int argc, const char *const *argv)
{
    admin_opts_t o;
    int code;

    memset(&o, 0, sizeof(o));
    ctl->command = argv[1];
    code = parse(ctl, &o, argc, argv);
    if (code != CTL_EXIT_OK) { /* -1: --help */
        return code;
    }
    code = strcmp(ctl->command, "user-create") == 0 ? user_create(ctl, &o)
                                                    : key_create(ctl, &o);
    ctl_db_close(ctl);
    return code;
}

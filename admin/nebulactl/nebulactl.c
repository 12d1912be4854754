/* nebulactl.c: the NebulaGate command-line tool: command-line parsing,
 * logging to stderr, dispatch. Built on libnebula_common, like the modules.
 * Exit codes: 0 ok, 1 error, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_env.h>

#include "ctl.h"
#include "nebula_log.h"

static const char usage_text[] =
    "usage: nebulactl <command> [options]\n"
    "\n"
    "commands:\n"
    "  migrate          apply the pending schema migrations (safe to run\n"
    "                   concurrently: a database-wide lock serialises runs)\n"
    "  schema-version   print the current schema version and the pending count\n"
    "  dsn              print the mod_dbd driver (line 1) and DBDParams (line 2)\n"
    "                   for --dsn URL, without connecting\n"
    "  user-create      --username U [--password P | --password-stdin |\n"
    "                   --random-password] [--role root|admin|user (user)]\n"
    "                   [--group G] [--display-name D] [--exists-ok]\n"
    "                   create a user (--password is visible to other local users\n"
    "                   in ps: prefer --password-stdin); prints id, username, role\n"
    "                   and, with --random-password, the password\n"
    "  key-create       --username U [--name N] [--unlimited] [--quota N]\n"
    "                   [--group G]  create a client key for U and print it (once)\n"
    "  create-admin     the same as user-create --role root (no --role)\n"
    "  create-key       the same as key-create\n"
    "  rotate-secret    --old-secret-env VAR --new-secret-env VAR [--dry-run]\n"
    "                   [--batch N (200)]  re-encrypt every stored secret (channel\n"
    "                   keys, voucher codes) from the old CRYPTO_SECRET to the new;\n"
    "                   values already under the new one are skipped (exit 1 when\n"
    "                   some open under neither)\n"
    "  backup           --to FILE  an online, consistent copy of a SQLite database\n"
    "                   (VACUUM INTO, integrity-checked, fsynced, renamed into place)\n"
    "  restore          --from FILE [--force]  replace a SQLite database by a backup\n"
    "                   (checked first; the old file stays as DB.bak); stop the\n"
    "                   gateway first (--force: even though the file is open)\n"
    "  export           [--what channels,policies] [--with-keys]  write channels\n"
    "                   and policies to stdout as one JSON document\n"
    "  import           --file F [--dry-run] [--prune] [--allow-private]  apply an\n"
    "                   export by name (create or update; --prune deletes the rest)\n"
    "  verify-ledger    [--account N] [--json] [--batch N]\n"
    "                   check every account's ledger (or one): the hash chain,\n"
    "                   seq continuity, balances, the ledger head and the held\n"
    "                   reservations; one line per problem, then a summary\n"
    "                   (exit 0 clean, 1 problems found, 2 usage or database error)\n"
    "  ledger-export    [--format csv|jsonl (csv)] [--account N] [--from MS]\n"
    "                   [--to MS] [--batch N]  write ledger rows to stdout in id\n"
    "                   order; --from/--to select by created_at (Unix ms, --to\n"
    "                   exclusive)\n"
    "  import-newapi    --from DSN [--dry-run] [--crypto-secret-file F]\n"
    "                   import a new-api/one-api database (MySQL, PostgreSQL,\n"
    "                   SQLite: a DSN, new-api's SQL_DSN or a file path): users\n"
    "                   and balances, tokens (still valid), channels, codes,\n"
    "                   prices; one transaction, rerun-safe; --dry-run reports\n"
    "                   and writes nothing. Needs CRYPTO_SECRET (docs/migration.md)\n"
    "  help             this text\n"
    "\n"
    "database (one of):\n"
    "  --dsn URL                 sqlite:/path/file.db\n"
    "                            postgres://user:pass@host:port/db?sslmode=...\n"
    "                            mysql://user:pass@host:port/db\n"
    "                            (default: the SQL_DSN environment variable)\n"
    "  --driver NAME --params S  an apr_dbd driver (sqlite3, pgsql, mysql) and its\n"
    "                            parameter string, as in DBDriver / DBDParams\n"
    "\n"
    "options:\n"
    "  --to N              migrate: stop at version N (default: the latest)\n"
    "  --sql-dir DIR       use DIR/<dialect>/NNNN_<name>.sql instead of the\n"
    "                      migrations built into this binary\n"
    "  --lock-timeout SEC  wait at most SEC seconds for the migration lock (60)\n"
    "  -v, --verbose       log more (repeat for debug)\n"
    "  -h, --help          this text\n"
    "\n"
    "exit status: 0 ok, 1 error, 2 usage\n";

enum { OPT_TO = CTL_OPT_OWN, OPT_SQLDIR, OPT_LOCKTO };

static const apr_getopt_option_t options[] = {
    CTL_DB_OPTIONS,
    {"to", OPT_TO, 1, "target version"},
    {"sql-dir", OPT_SQLDIR, 1, "migrations folder"},
    {"lock-timeout", OPT_LOCKTO, 1, "lock timeout (s)"},
    {"verbose", 'v', 0, "log more"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

static int log_threshold = NEBULA_LOG_WARNING;

static void log_to_stderr(const char *file, int line, nebula_log_level_e level,
                          apr_status_t rv, void *baton, const char *fmt, va_list ap)
{
    char buf[256];

    (void)baton;
    if ((int)level > log_threshold) {
        return;
    }
    fputs("nebulactl: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, " (%s)", apr_strerror(rv, buf, sizeof(buf)));
    }
    if (log_threshold >= NEBULA_LOG_DEBUG) {
        fprintf(stderr, " [%s:%d]", file, line);
    }
    fputc('\n', stderr);
}

void ctl_error(const char *fmt, ...)
{
    va_list ap;

    fputs("nebulactl: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int parse_int(const char *arg, const char *opt, int min, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < min || v > 1000000) {
        ctl_error("%s wants a whole number >= %d, not '%s'", opt, min, arg);
        return CTL_EXIT_USAGE;
    }
    *out = (int)v;
    return CTL_EXIT_OK;
}

/* Apply one option; CTL_EXIT_OK, CTL_EXIT_USAGE, or -1 for --help. */
static int apply_option(ctl_t *ctl, int opt, const char *arg)
{
    int secs;

    if (ctl_db_option(ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_TO:
        return parse_int(arg, "--to", 0, &ctl->to_version);
    case OPT_SQLDIR:
        ctl->sql_dir = arg;
        return CTL_EXIT_OK;
    case OPT_LOCKTO:
        if (parse_int(arg, "--lock-timeout", 1, &secs) != CTL_EXIT_OK) {
            return CTL_EXIT_USAGE;
        }
        ctl->lock_timeout_ms = secs * 1000;
        return CTL_EXIT_OK;
    case 'v':
        ctl->verbose++;
        return CTL_EXIT_OK;
    default: /* 'h' */
        return -1;
    }
}

int ctl_getopt(ctl_t *ctl, int argc, const char *const *argv,
               const apr_getopt_option_t *opts, ctl_apply_fn *apply, void *baton)
{
    apr_getopt_t *os;
    const char *arg;
    int opt, code;
    apr_status_t rv;

    apr_getopt_init(&os, ctl->pool, argc, argv);
    /* start after the command; apr_getopt_long resets ind to skip_start
     * when it returns APR_EOF */
    os->ind = os->skip_start = os->skip_end = 2;
    os->errfn = NULL;
    while ((rv = apr_getopt_long(os, opts, &opt, &arg)) == APR_SUCCESS) {
        if ((code = apply(baton, opt, arg)) != CTL_EXIT_OK) {
            return code;
        }
    }
    if (rv != APR_EOF) {
        ctl_error("bad option near '%s' (see nebulactl --help)",
                  argv[os->ind - 1 < argc ? os->ind - 1 : argc - 1]);
        return CTL_EXIT_USAGE;
    }
    if (os->ind < argc) {
        ctl_error("unexpected argument '%s' (see nebulactl --help)", argv[os->ind]);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

int ctl_db_option(ctl_t *ctl, int opt, const char *arg)
{
    switch (opt) {
    case CTL_OPT_DSN:
        ctl->dsn = arg;
        return 1;
    case CTL_OPT_DRIVER:
        ctl->driver_name = arg;
        return 1;
    case CTL_OPT_PARAMS:
        ctl->params = arg;
        return 1;
    default:
        return 0;
    }
}

int ctl_dsn_settle(ctl_t *ctl)
{
    if (ctl->dsn != NULL && (ctl->driver_name != NULL || ctl->params != NULL)) {
        ctl_error("give either --dsn or --driver/--params, not both");
        return CTL_EXIT_USAGE;
    }
    if (ctl->dsn == NULL && ctl->driver_name == NULL && ctl->params == NULL) {
        apr_env_get((char **)&ctl->dsn, "SQL_DSN", ctl->pool);
    }
    return CTL_EXIT_OK;
}

static int apply_baton(void *baton, int opt, const char *arg)
{
    return apply_option(baton, opt, arg);
}

static int parse_args(ctl_t *ctl, int argc, const char *const *argv)
{
    int code = ctl_getopt(ctl, argc, argv, options, apply_baton, ctl);

    return code != CTL_EXIT_OK ? code : ctl_dsn_settle(ctl);
}

/* create-admin (user-create --role root) and create-key (key-create), the
 * names issue 11 gives them. */
static int alias(ctl_t *ctl, int argc, const char *const *argv)
{
    int admin = strcmp(argv[1], "create-admin") == 0, i, n = 0, code;
    const char **args = apr_pcalloc(ctl->pool, sizeof(char *) * (argc + 3));

    for (i = 0; i < argc; ++i) {
        if (admin && i >= 2 && strncmp(argv[i], "--role", 6) == 0) {
            ctl_error("create-admin makes a root user: it takes no --role (use "
                      "user-create)");
            return CTL_EXIT_USAGE;
        }
        args[n++] = i == 1 ? (admin ? "user-create" : "key-create") : argv[i];
        if (i == 1 && admin) {
            args[n++] = "--role";
            args[n++] = "root";
        }
    }
    code = ctl_admin_main(ctl, n, args);
    return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
}

static int dispatch(ctl_t *ctl, int argc, const char *const *argv)
{
    int code;

    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    ctl->command = argv[1];
    if (strcmp(ctl->command, "create-admin") == 0 || strcmp(ctl->command, "create-key") == 0) {
        return alias(ctl, argc, argv);
    }
    if (ctl_backup_is_command(ctl->command)) {
        code = ctl_backup_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (ctl_export_is_command(ctl->command)) {
        code = ctl_export_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (strcmp(ctl->command, "rotate-secret") == 0) {
        code = ctl_rotate_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (ctl_admin_is_command(ctl->command)) {
        code = ctl_admin_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (ctl_ledger_is_command(ctl->command)) {
        code = ctl_ledger_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (ctl_import_is_command(ctl->command)) {
        code = ctl_import_main(ctl, argc, argv);
        return code == -1 ? (fputs(usage_text, stdout), CTL_EXIT_OK) : code;
    }
    if (strcmp(ctl->command, "migrate") != 0 &&
        strcmp(ctl->command, "schema-version") != 0 && strcmp(ctl->command, "dsn") != 0) {
        ctl_error("unknown command '%s' (see nebulactl --help)", ctl->command);
        return CTL_EXIT_USAGE;
    }
    code = parse_args(ctl, argc, argv);
    if (code == -1) {
        fputs(usage_text, stdout);
        return CTL_EXIT_OK;
    }
    if (code != CTL_EXIT_OK) {
        return code;
    }
    log_threshold = ctl->verbose >= 2   ? NEBULA_LOG_TRACE1
                    : ctl->verbose == 1 ? NEBULA_LOG_INFO
                                        : NEBULA_LOG_WARNING;
    if (strcmp(ctl->command, "dsn") == 0) {
        return ctl_cmd_dsn(ctl);
    }
    return strcmp(ctl->command, "migrate") == 0 ? ctl_cmd_migrate(ctl)
                                                : ctl_cmd_schema_version(ctl);
}

int main(int argc, const char *const *argv)
{
    ctl_t ctl;
    int code;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "nebulactl: cannot initialise APR\n");
        return CTL_EXIT_ERROR;
    }
    memset(&ctl, 0, sizeof(ctl));
    apr_pool_create(&ctl.pool, NULL);
    nebula_log_set(log_to_stderr, NULL);
    code = dispatch(&ctl, argc, argv);
    fflush(stdout);
    apr_pool_destroy(ctl.pool);
    apr_terminate();
    return code;
}

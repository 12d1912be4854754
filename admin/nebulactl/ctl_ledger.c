/* ctl_ledger.c: `nebulactl verify-ledger` and `nebulactl ledger-export`:
 * their command line, the connection (schema 0004_billing or later), and
 * the statements they share. The checks are in ctl_ledger_verify.c, the
 * export in ctl_ledger_export.c.
 *
 *   nebulactl verify-ledger [--account N] [--json] [--batch N] DB
 *   nebulactl ledger-export [--format csv|jsonl] [--account N] [--from MS]
 *                           [--to MS] [--batch N] DB
 *
 * Both only read: they never take a lock a running server waits for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_env.h>

#include "ctl_ledger.h"

enum {
    OPT_ACCOUNT = CTL_OPT_OWN,
    OPT_JSON,
    OPT_BATCH,
    OPT_FORMAT,
    OPT_FROM,
    OPT_TO
};

static const apr_getopt_option_t ledger_options[] = {
    CTL_DB_OPTIONS,
    {"account", OPT_ACCOUNT, 1, "one account id"},
    {"json", OPT_JSON, 0, "machine-readable output"},
    {"batch", OPT_BATCH, 1, "rows per query"},
    {"format", OPT_FORMAT, 1, "csv or jsonl"},
    {"from", OPT_FROM, 1, "first created_at (ms)"},
    {"to", OPT_TO, 1, "end of created_at (ms, exclusive)"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

int ctl_ledger_is_command(const char *command)
{
    return strcmp(command, "verify-ledger") == 0 || strcmp(command, "ledger-export") == 0;
}

/* A whole number in [min, max] for option @a opt. */
static int parse_i64(const char *arg, const char *opt, apr_int64_t min, apr_int64_t max,
                     apr_int64_t *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        ctl_error("%s wants a whole number from %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                  ", not '%s'",
                  opt, min, max, arg);
        return CTL_EXIT_USAGE;
    }
    *out = v;
    return CTL_EXIT_OK;
}

static int apply(ctl_ledger_opts_t *o, int opt, const char *arg)
{
    ctl_t *ctl = o->ctl;
    apr_int64_t v;

    if (ctl_db_option(ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_ACCOUNT:
        return parse_i64(arg, "--account", 1, APR_INT64_MAX, &o->account);
    case OPT_JSON:
        o->json = 1;
        return CTL_EXIT_OK;
    case OPT_BATCH:
        if (parse_i64(arg, "--batch", 1, CTL_LEDGER_BATCH_MAX, &v) != CTL_EXIT_OK) {
            return CTL_EXIT_USAGE;
        }
        o->batch = (int)v;
        return CTL_EXIT_OK;
    case OPT_FORMAT:
        if (strcmp(arg, "csv") != 0 && strcmp(arg, "jsonl") != 0) {
            ctl_error("--format is csv or jsonl, not '%s'", arg);
            return CTL_EXIT_USAGE;
        }
        o->format = arg;
        return CTL_EXIT_OK;
    case OPT_FROM:
        o->has_from = 1;
        return parse_i64(arg, "--from", 0, APR_INT64_MAX, &o->from);
    case OPT_TO:
        o->has_to = 1;
        return parse_i64(arg, "--to", 0, APR_INT64_MAX, &o->to);
    default: /* 'h' */
        return -1;
    }
}

/* Which options belong to which command, and that they make sense. */
static int check_opts(ctl_ledger_opts_t *o)
{
    ctl_t *ctl = o->ctl;

    if (strcmp(ctl->command, "verify-ledger") == 0) {
        if (o->format || o->has_from || o->has_to) {
            ctl_error("--format, --from and --to are ledger-export options");
            return CTL_EXIT_USAGE;
        }
    }
    else {
        if (o->json) {
            ctl_error("--json is a verify-ledger option (ledger-export: --format jsonl)");
            return CTL_EXIT_USAGE;
        }
        if (o->has_from && o->has_to && o->from >= o->to) {
            ctl_error("--from must be before --to (--to is exclusive)");
            return CTL_EXIT_USAGE;
        }
        if (o->format == NULL) {
            o->format = "csv";
        }
    }
    return ctl_dsn_settle(ctl);
}

static int apply_baton(void *baton, int opt, const char *arg)
{
    return apply(baton, opt, arg);
}

static int parse(ctl_ledger_opts_t *o, int argc, const char *const *argv)
{
    int code = ctl_getopt(o->ctl, argc, argv, ledger_options, apply_baton, o);

    return code != CTL_EXIT_OK ? code : check_opts(o);
}

/* Connected, and the billing tables are there (0004_billing). Only their
 * presence is checked, not the migration checksums: reading an old ledger
 * must not depend on this build's copy of the migration files. */
static int connect_checked(ctl_t *ctl)
{
    static const char *const tables[] = {"accounts", "ledger", "reservations", NULL};
    const char *err;
    int code, i, exists;

    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (nebula_dbd_dialect_of(ctl->driver) == NEBULA_DBD_SQLITE &&
        nebula_dbd_sqlite_init(ctl->driver, ctl->handle, 0, &err, ctl->pool) != 0) {
        ctl_error("cannot set up the %s: %s", ctl->target_desc, err);
        return CTL_EXIT_ERROR;
    }
    for (i = 0; tables[i]; ++i) {
        if (nebula_dbd_table_exists(ctl->driver, ctl->handle, tables[i], &exists, &err,
                                    ctl->pool) != 0) {
            ctl_error("database: %s", err);
            return CTL_EXIT_ERROR;
        }
        if (!exists) {
            ctl_error("the %s has no %s table: run 'nebulactl migrate' first",
                      ctl->target_desc, tables[i]);
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* ---- shared by verify and export ---------------------------------------- */

const char *ctl_ledger_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static apr_int64_t to_i64(const char *s)
{
    return s ? apr_atoi64(s) : 0;
}

static const char *non_empty(const char *s)
{
    return s && *s ? s : NULL;
}

void ctl_ledger_entry(const char *const *cols, ctl_ledger_entry_t *e)
{
    e->id = to_i64(cols[0]);
    e->row.account_id = to_i64(cols[1]);
    e->row.seq = to_i64(cols[2]);
    e->row.kind = cols[3] ? cols[3] : "";
    e->row.amount = to_i64(cols[4]);
    e->row.balance_after = to_i64(cols[5]);
    e->row.request_id = non_empty(cols[6]);
    e->row.idem_key = cols[7] ? cols[7] : "";
    e->row.actor = cols[8] ? cols[8] : "";
    e->row.created_at = to_i64(cols[9]);
    e->row.detail = non_empty(cols[10]);
    e->row.prev_hash = cols[11] ? cols[11] : "";
    e->row_hash = cols[12] ? cols[12] : "";
}

int ctl_ledger_prepare(ctl_t *ctl, const char *sql, apr_dbd_prepared_t **st)
{
    *st = NULL; /* the drivers reuse a non-NULL *st */
    if (apr_dbd_prepare(ctl->driver, ctl->pool, ctl->handle, sql, NULL, st) != 0) {
        ctl_error("database: %s",
                  nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, ctl->pool));
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

static int exec_sql(ctl_t *ctl, const char *sql)
{
    const char *err;

    if (nebula_dbd_exec(ctl->driver, ctl->handle, sql, &err, ctl->pool) != 0) {
        ctl_error("database: %s: %s", sql, err);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

int ctl_ledger_snapshot_begin(ctl_t *ctl)
{
    switch (nebula_dbd_dialect_of(ctl->driver)) {
    case NEBULA_DBD_PGSQL:
        return exec_sql(ctl, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    case NEBULA_DBD_MYSQL:
        /* SET TRANSACTION (no SESSION) applies to the next transaction only */
        if (exec_sql(ctl, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ") !=
            CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
        return exec_sql(ctl, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
    default: /* SQLite: a deferred transaction reads one WAL snapshot */
        return exec_sql(ctl, "BEGIN");
    }
}

int ctl_ledger_snapshot_end(ctl_t *ctl)
{
    return exec_sql(ctl, "COMMIT");
}

int ctl_ledger_main(ctl_t *ctl, int argc, const char *const *argv)
{
    ctl_ledger_opts_t o;
    int verify = strcmp(argv[1], "verify-ledger") == 0;
    int code;

    memset(&o, 0, sizeof(o));
    o.ctl = ctl;
    o.batch = CTL_LEDGER_BATCH;
    ctl->command = argv[1];
    code = parse(&o, argc, argv);
    if (code == -1) { /* --help */
        return -1;
    }
    if (code != CTL_EXIT_OK) {
        return verify ? CTL_LEDGER_FAILED : code;
    }
    if ((code = connect_checked(ctl)) != CTL_EXIT_OK) {
        ctl_db_close(ctl);
        return verify ? CTL_LEDGER_FAILED : code;
    }
    code = verify ? ctl_ledger_verify(&o) : ctl_ledger_export(&o);
    ctl_db_close(ctl);
    return code;
}

/* ctl.h: what the nebulactl source files share: the parsed command line,
 * the database connection, exit codes and message helpers. */
#ifndef NEBULACTL_CTL_H
#define NEBULACTL_CTL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_dbd.h>
#include <apr_getopt.h>

#include "nebula_dbd_dialect.h"

#define CTL_EXIT_OK    0 /* done */
#define CTL_EXIT_ERROR 1 /* the operation failed */
#define CTL_EXIT_USAGE 2 /* bad command line */

/* One invocation: options, then the connection opened from them. */
typedef struct {
    apr_pool_t *pool;
    const char *command;     /* "migrate", "schema-version", "dsn" */
    const char *driver_name; /* --driver */
    const char *params;      /* --params (secret: never printed) */
    const char *dsn;         /* --dsn, or $SQL_DSN */
    const char *sql_dir;     /* --sql-dir: migrations from files, not embedded */
    int to_version;          /* --to; 0 = latest */
    int lock_timeout_ms;     /* --lock-timeout (given in seconds) */
    int verbose;             /* -v: 1 info, 2 debug */
    const char *target_desc; /* what we connected to, safe to print */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
} ctl_t;

/* "nebulactl: error: ..." on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The connection options every command takes: their ids (a command's own
 * options start at CTL_OPT_OWN), their table rows, and applying them. */
enum { CTL_OPT_DSN = 256, CTL_OPT_DRIVER, CTL_OPT_PARAMS, CTL_OPT_OWN = 300 };
#define CTL_DB_OPTIONS                                         \
    {"dsn", CTL_OPT_DSN, 1, "database URL"},                   \
    {"driver", CTL_OPT_DRIVER, 1, "apr_dbd driver"},           \
    {"params", CTL_OPT_PARAMS, 1, "apr_dbd parameters"}
/* Apply @a opt if it is a connection option; 1 when it was. */
int ctl_db_option(ctl_t *ctl, int opt, const char *arg);

/* One option of a command: an exit code (CTL_EXIT_OK to go on, -1 --help). */
typedef int ctl_apply_fn(void *baton, int opt, const char *arg);

/* Parse argv[2..] (after the command) with @a opts, calling @a apply for
 * each option; a bad option or a stray argument is a usage error. */
int ctl_getopt(ctl_t *ctl, int argc, const char *const *argv,
               const apr_getopt_option_t *opts, ctl_apply_fn *apply, void *baton);

/* --dsn excludes --driver/--params; with neither, SQL_DSN from the
 * environment. An exit code. */
int ctl_dsn_settle(ctl_t *ctl);

/* Open ctl->driver/handle from --dsn or --driver/--params; exit code. */
int ctl_db_connect(ctl_t *ctl);
/* ctl_db_connect(), then refuse (CTL_EXIT_ERROR, said on stderr) a database
 * below schema @a min_version or with migrations pending. */
int ctl_db_connect_current(ctl_t *ctl, int min_version);
/* Prepared statements with @a nargs string arguments on ctl's connection:
 * a SELECT's rows copied into @a p; an exec's changed rows in *nrows (if not
 * NULL). CTL_EXIT_ERROR (said on stderr) if it fails. */
int ctl_select(ctl_t *ctl, apr_pool_t *p, const char *sql, int nargs, const char **args,
               nebula_dbd_rows_t *rows);
/* ctl_select() of a statement prepared once (run many times, e.g. in batches) */
int ctl_select_prepared(ctl_t *ctl, apr_pool_t *p, apr_dbd_prepared_t *st, int nargs,
                        const char **args, nebula_dbd_rows_t *rows);
int ctl_exec(ctl_t *ctl, apr_pool_t *p, const char *sql, int nargs, const char **args,
             int *nrows);

/* Close the connection, if open. */
void ctl_db_close(ctl_t *ctl);

/* Load sql_dir/<dialect folder>/NNNN_<name>.sql into an array of
 * const nebula_migration_t * sorted by version, checksummed with SHA-256,
 * everything allocated in @a pool. */
apr_status_t ctl_sqldir_load(const char *sql_dir, nebula_dbd_dialect_e dialect,
                             apr_array_header_t **migrations, const char **errmsg,
                             apr_pool_t *pool);

/* The commands; each returns an exit code. */
int ctl_cmd_migrate(ctl_t *ctl);
int ctl_cmd_schema_version(ctl_t *ctl);
int ctl_cmd_dsn(ctl_t *ctl);

/* ctl_admin.c: user-create and key-create, with their own options. */
int ctl_admin_is_command(const char *command);
/* An exit code, or -1 for --help. */
int ctl_admin_main(ctl_t *ctl, int argc, const char *const *argv);

/* ctl_ledger*.c: verify-ledger and ledger-export, with their own options. */
int ctl_ledger_is_command(const char *command);
/* An exit code, or -1 for --help. */
int ctl_ledger_main(ctl_t *ctl, int argc, const char *const *argv);

/* ctl_import*.c: import-newapi, with its own options. */
int ctl_import_is_command(const char *command);
/* An exit code, or -1 for --help. */
int ctl_import_main(ctl_t *ctl, int argc, const char *const *argv);

/* ctl_rotate.c: rotate-secret. */
int ctl_rotate_main(ctl_t *ctl, int argc, const char *const *argv);
/* The value of the environment variable @a var, named by option @a opt:
 * set and at least NEBULA_CRYPTO_SECRET_MIN_LEN long. */
int ctl_read_secret(ctl_t *ctl, const char *opt, const char *var, const char **out);

/* The key of voucher code hashes (nebula_secrets, admin_vouchers.c), opened
 * with @a kr; set first to @a secret (sealed with @a kr) when no one has set
 * it yet, as the gateway's first use would. *@a key in @a p. */
struct nebula_crypto_keyring_t;
int ctl_voucher_key(ctl_t *ctl, apr_pool_t *p, const struct nebula_crypto_keyring_t *kr,
                    const char *secret, const char **key);

/* ctl_backup.c: backup and restore (SQLite). */
int ctl_backup_is_command(const char *command);
int ctl_backup_main(ctl_t *ctl, int argc, const char *const *argv);

/* ctl_export*.c: export and import of channels and policies as JSON. */
int ctl_export_is_command(const char *command);
int ctl_export_main(ctl_t *ctl, int argc, const char *const *argv);

#endif /* NEBULACTL_CTL_H */

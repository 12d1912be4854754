/* ctl_migrate.c: `nebulactl migrate` and `nebulactl schema-version`, thin
 * wrappers over the runner the modules use at start-up (nebula_migrate.h). */
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

#include "ctl.h"
#include "nebula_migrate.h"

/* Options for the runner; --sql-dir swaps in migrations read from files. */
static int build_opts(ctl_t *ctl, nebula_migrate_opts_t *opts)
{
    apr_array_header_t *migs;
    const char *err;

    memset(opts, 0, sizeof(*opts));
    opts->target_version = ctl->to_version;
    opts->lock_timeout_ms = ctl->lock_timeout_ms;
    if (ctl->sql_dir != NULL) {
        if (ctl_sqldir_load(ctl->sql_dir, nebula_dbd_dialect_of(ctl->driver), &migs, &err,
                            ctl->pool) != APR_SUCCESS) {
            ctl_error("%s", err);
            return CTL_EXIT_ERROR;
        }
        opts->migrations = migs;
    }
    return CTL_EXIT_OK;
}

static void print_unknown(const nebula_migrate_result_t *res)
{
    if (res->unknown > 0) {
        printf("note: the database has %d migration(s) newer than this build "
               "knows (latest known: %d)\n",
               res->unknown, res->latest_version);
    }
}

int ctl_cmd_migrate(ctl_t *ctl)
{
    nebula_migrate_opts_t opts;
    nebula_migrate_result_t res;
    const char *err;
    int code;

    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if ((code = build_opts(ctl, &opts)) == CTL_EXIT_OK) {
        if (nebula_migrate_run(ctl->driver, ctl->handle, &opts, &res, &err, ctl->pool) !=
            APR_SUCCESS) {
            ctl_error("migrate failed on the %s: %s", ctl->target_desc, err);
            if (res.applied > 0) {
                fprintf(stderr,
                        "nebulactl: %d migration(s) were applied before the "
                        "failure (now at version %d)\n",
                        res.applied, res.to_version);
            }
            code = CTL_EXIT_ERROR;
        }
        else if (res.applied > 0) {
            printf("migrated from version %d to version %d (%d applied, %d pending)\n",
                   res.from_version, res.to_version, res.applied, res.pending);
        }
        else {
            printf("up to date at version %d (0 applied, %d pending)\n", res.to_version,
                   res.pending);
        }
        if (code == CTL_EXIT_OK) {
            print_unknown(&res);
        }
    }
    ctl_db_close(ctl);
    return code;
}

int ctl_cmd_schema_version(ctl_t *ctl)
{
    nebula_migrate_opts_t opts;
    nebula_migrate_result_t res;
    const char *err;
    int code;

    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if ((code = build_opts(ctl, &opts)) == CTL_EXIT_OK) {
        opts.target_version = 0;
        if (nebula_migrate_status(ctl->driver, ctl->handle, &opts, &res, &err,
                                  ctl->pool) != APR_SUCCESS) {
            ctl_error("%s", err);
            code = CTL_EXIT_ERROR;
        }
        else {
            printf("current version: %d\nlatest version: %d\npending: %d\n",
                   res.from_version, res.latest_version, res.pending);
            print_unknown(&res);
        }
    }
    ctl_db_close(ctl);
    return code;
}

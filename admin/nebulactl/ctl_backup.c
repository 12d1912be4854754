/* ctl_backup.c: `nebulactl backup` and `nebulactl restore` of a SQLite
 * database, through apr_dbd's sqlite3 driver (no second SQLite library).
 *
 *   nebulactl backup --to FILE DB
 *     VACUUM INTO a temporary file beside FILE: one read transaction, so a
 *     consistent snapshot while the gateway writes (WAL: writers go on);
 *     then PRAGMA integrity_check on the copy, fsync, rename into place,
 *     fsync of the folder. Prints the schema version and the row counts.
 *   nebulactl restore --from FILE [--force] DB
 *     Checks FILE (integrity, a schema this build knows), refuses while
 *     another process has the database open (its -shm lock, see in_use())
 *     unless --force, copies FILE beside the database, fsyncs it, keeps the
 *     current file as DB.bak (a hard link) and renames the copy over DB:
 *     readers see the old file or the new one, never a mix. Stop the
 *     gateway first (its open connections would keep the old file).
 * PostgreSQL and MySQL: both refuse and name pg_dump / mysqldump. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "ctl.h"
#include "nebula_migrate.h"
#include "nebula_dbd_dsn.h"

enum { OPT_TO = CTL_OPT_OWN, OPT_FROM, OPT_FORCE };

static const apr_getopt_option_t backup_options[] = {
    CTL_DB_OPTIONS,
    {"to", OPT_TO, 1, "backup file"},
    {"from", OPT_FROM, 1, "backup file to restore"},
    {"force", OPT_FORCE, 0, "restore even while the database is open"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

typedef struct {
    ctl_t *ctl;
    const char *to, *from;
    int force;
} backup_t;

/* The tables whose row counts backup prints (a point-in-time check). */
static const char *const counted[] = {
    "users",     "api_keys",       "channels",         "channel_keys",
    "abilities", "ledger_entries", "billing_accounts", NULL};

int ctl_backup_is_command(const char *command)
{
    return strcmp(command, "backup") == 0 || strcmp(command, "restore") == 0;
}

static int backup_apply(void *baton, int opt, const char *arg)
{
    backup_t *b = baton;

    if (ctl_db_option(b->ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_TO:
        b->to = arg;
        return CTL_EXIT_OK;
    case OPT_FROM:
        b->from = arg;
        return CTL_EXIT_OK;
    case OPT_FORCE:
        b->force = 1;
        return CTL_EXIT_OK;
    default:
        return -1;
    }
}

/* 'text' as an SQL string literal. */
static const char *sql_quote(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i, j = 0;
    char *out = apr_palloc(p, 2 * n + 3);

    out[j++] = '\'';
    for (i = 0; i < n; ++i) {
        if (s[i] == '\'') {
            out[j++] = '\'';
        }
        out[j++] = s[i];
    }
    out[j++] = '\'';
    out[j] = '\0';
    return out;
}

static int sync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY), rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

static const char *dir_of(apr_pool_t *p, const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash == NULL   ? "."
           : slash == path ? "/"
                           : apr_pstrndup(p, path, slash - path);
}

/* Open @a file with the sqlite3 driver as a second connection of @a ctl's. */
static int open_file(ctl_t *ctl, const char *file, apr_dbd_t **h)
{
    const char *err = NULL;

    if (apr_dbd_open_ex(ctl->driver, ctl->pool, file, h, &err) != APR_SUCCESS) {
        ctl_error("cannot open %s: %s", file, err ? err : "unknown error");
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* PRAGMA integrity_check and the schema version of @a h (@a file for
 * messages); a newer schema than this build's is an error. */
static int check_file(ctl_t *ctl, apr_dbd_t *h, const char *file, int *version,
                      int *pending)
{
    nebula_migrate_opts_t mo;
    nebula_migrate_result_t res;
    nebula_dbd_rows_t rows;
    const char *err;

    if (nebula_dbd_select(ctl->driver, h, "PRAGMA integrity_check", &rows, &err,
                          ctl->pool) != 0) {
        ctl_error("%s: integrity_check failed: %s", file, err);
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows != 1 || rows.rows[0][0] == NULL ||
        strcmp(rows.rows[0][0], "ok") != 0) {
        ctl_error("%s: integrity_check: %s", file,
                  rows.nrows > 0 && rows.rows[0][0] ? rows.rows[0][0] : "no answer");
        return CTL_EXIT_ERROR;
    }
    memset(&mo, 0, sizeof(mo));
    if (nebula_migrate_status(ctl->driver, h, &mo, &res, &err, ctl->pool) !=
        APR_SUCCESS) {
        ctl_error("%s: %s", file, err);
        return CTL_EXIT_ERROR;
    }
    if (res.from_version < 1) {
        ctl_error("%s: not a NebulaGate database (no schema version)", file);
        return CTL_EXIT_ERROR;
    }
    if (res.unknown > 0) {
        ctl_error("%s: schema version %d is newer than this build knows (%d)", file,
                  res.from_version, res.latest_version);
        return CTL_EXIT_ERROR;
    }
    *version = res.from_version;
    *pending = res.pending;
    return CTL_EXIT_OK;
}

static void print_counts(ctl_t *ctl, apr_dbd_t *h)
{
    nebula_dbd_rows_t rows;
    const char *err;
    int i, exists;

    for (i = 0; counted[i] != NULL; ++i) {
        if (nebula_dbd_table_exists(ctl->driver, h, counted[i], &exists, &err,
                                    ctl->pool) != 0 ||
            !exists ||
            nebula_dbd_select(
                ctl->driver, h,
                apr_pstrcat(ctl->pool, "SELECT COUNT(*) FROM ", counted[i], NULL), &rows,
                &err, ctl->pool) != 0 ||
            rows.nrows != 1) {
            continue;
        }
        printf("rows %s: %s\n", counted[i], rows.rows[0][0]);
    }
}

static int do_backup(backup_t *b)
{
    ctl_t *ctl = b->ctl;
    const char *tmp, *err;
    apr_dbd_t *copy = NULL;
    int version = 0, pending = 0, code;

    if (b->to == NULL || *b->to == '\0') {
        ctl_error("backup: give --to FILE");
        return CTL_EXIT_USAGE;
    }
    tmp = apr_psprintf(ctl->pool, "%s.tmp-%ld", b->to, (long)getpid());
    unlink(tmp);
    if (nebula_dbd_exec(
            ctl->driver, ctl->handle,
            apr_pstrcat(ctl->pool, "VACUUM INTO ", sql_quote(ctl->pool, tmp), NULL), &err,
            ctl->pool) != 0) {
        ctl_error("backup: VACUUM INTO %s failed: %s", tmp, err);
        unlink(tmp);
        return CTL_EXIT_ERROR;
    }
    if ((code = open_file(ctl, tmp, &copy)) == CTL_EXIT_OK) {
        code = check_file(ctl, copy, tmp, &version, &pending);
        if (code == CTL_EXIT_OK) {
            printf("schema version: %d\n", version);
            print_counts(ctl, copy);
        }
        apr_dbd_close(ctl->driver, copy);
    }
    /* it holds password hashes and sealed keys: the owner's only */
    if (code == CTL_EXIT_OK && chmod(tmp, S_IRUSR | S_IWUSR) != 0) {
        ctl_error("backup: chmod %s: %s", tmp, strerror(errno));
        code = CTL_EXIT_ERROR;
    }
    if (code == CTL_EXIT_OK && sync_path(tmp, 0) != 0) {
        ctl_error("backup: fsync %s: %s", tmp, strerror(errno));
        code = CTL_EXIT_ERROR;
    }
    if (code == CTL_EXIT_OK && rename(tmp, b->to) != 0) {
        ctl_error("backup: rename %s to %s: %s", tmp, b->to, strerror(errno));
        code = CTL_EXIT_ERROR;
    }
    if (code != CTL_EXIT_OK) {
        unlink(tmp);
        return code;
    }
    sync_path(dir_of(ctl->pool, b->to), 1);
    printf("backup: %s (integrity ok)\n", b->to);
    return CTL_EXIT_OK;
}

/* Whether another process has @a db open through SQLite: in WAL mode every
 * connection holds a shared lock on the DMS byte (offset 128) of DB-shm for
 * as long as it is open. 1 (and *pid) when so. Other journal modes hold
 * no lock between transactions: not detected. */
static int in_use(apr_pool_t *p, const char *db, long *pid)
{
    struct flock fl;
    int fd = open(apr_pstrcat(p, db, "-shm", NULL), O_RDWR), busy = 0;

    if (fd < 0) {
        return 0;
    }
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 128;
    fl.l_len = 1;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
        busy = 1;
        *pid = (long)fl.l_pid;
    }
    close(fd);
    return busy;
}

/* Copy @a from to @a to with the owner and mode of @a like (the database
 * being replaced: the gateway's user must still open it), if it exists. */
static int copy_file(ctl_t *ctl, const char *from, const char *to, const char *like)
{
    char buf[256];
    struct stat st;
    apr_status_t rv =
        apr_file_copy(from, to, APR_FPROT_UREAD | APR_FPROT_UWRITE, ctl->pool);

    if (rv != APR_SUCCESS) {
        ctl_error("restore: copy %s to %s: %s", from, to,
                  apr_strerror(rv, buf, sizeof(buf)));
        return CTL_EXIT_ERROR;
    }
    if (stat(like, &st) == 0) {
        if (chown(to, st.st_uid, st.st_gid) != 0 && geteuid() == 0) {
            ctl_error("restore: chown %s: %s", to, strerror(errno));
            return CTL_EXIT_ERROR;
        }
        if (chmod(to, st.st_mode & 07777) != 0) {
            ctl_error("restore: chmod %s: %s", to, strerror(errno));
            return CTL_EXIT_ERROR;
        }
    }
    if (sync_path(to, 0) != 0) {
        ctl_error("restore: fsync %s: %s", to, strerror(errno));
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

static int do_restore(backup_t *b)
{
    ctl_t *ctl = b->ctl;
    const char *db = ctl->params, *tmp, *bak, *err;
    apr_dbd_t *h = NULL;
    nebula_dbd_rows_t rows;
    int version = 0, pending = 0, code;
    long pid = 0;

    if (b->from == NULL || *b->from == '\0') {
        ctl_error("restore: give --from FILE");
        return CTL_EXIT_USAGE;
    }
    if (access(b->from, R_OK) != 0) {
        ctl_error("restore: cannot read %s: %s", b->from, strerror(errno));
        return CTL_EXIT_ERROR;
    }
    if ((code = open_file(ctl, b->from, &h)) != CTL_EXIT_OK) {
        return code;
    }
    code = check_file(ctl, h, b->from, &version, &pending);
    apr_dbd_close(ctl->driver, h);
    if (code != CTL_EXIT_OK) {
        return code;
    }
    if (in_use(ctl->pool, db, &pid) && !b->force) {
        ctl_error("restore: process %ld has %s open (the gateway?): stop it first, or "
                  "give --force",
                  pid, db);
        return CTL_EXIT_ERROR;
    }
    /* fold the WAL of the current file into it, so that DB.bak is whole */
    if (access(db, F_OK) == 0) {
        if ((code = open_file(ctl, db, &h)) != CTL_EXIT_OK) {
            return code;
        }
        if (nebula_dbd_select(ctl->driver, h, "PRAGMA wal_checkpoint(TRUNCATE)", &rows,
                              &err, ctl->pool) != 0) {
            ctl_error("restore: checkpoint of %s: %s", db, err);
            apr_dbd_close(ctl->driver, h);
            return CTL_EXIT_ERROR;
        }
        apr_dbd_close(ctl->driver, h);
    }
    tmp = apr_psprintf(ctl->pool, "%s.restore-%ld", db, (long)getpid());
    bak = apr_pstrcat(ctl->pool, db, ".bak", NULL);
    if ((code = copy_file(ctl, b->from, tmp, db)) != CTL_EXIT_OK) {
        unlink(tmp);
        return code;
    }
    if (access(db, F_OK) == 0) {
        unlink(bak);
        if (link(db, bak) != 0) {
            ctl_error("restore: keep %s as %s: %s", db, bak, strerror(errno));
            unlink(tmp);
            return CTL_EXIT_ERROR;
        }
    }
    /* the old file's WAL and index must not meet the new file */
    unlink(apr_pstrcat(ctl->pool, db, "-wal", NULL));
    unlink(apr_pstrcat(ctl->pool, db, "-shm", NULL));
    if (rename(tmp, db) != 0) {
        ctl_error("restore: rename %s to %s: %s", tmp, db, strerror(errno));
        unlink(tmp);
        return CTL_EXIT_ERROR;
    }
    sync_path(dir_of(ctl->pool, db), 1);
    printf("restore: %s from %s (schema version %d); the previous file is %s\n", db,
           b->from, version, bak);
    if (pending > 0) {
        printf("note: run 'nebulactl migrate' to bring it to the current schema\n");
    }
    return CTL_EXIT_OK;
}

/* The dialect of --dsn or --driver, without connecting. */
static nebula_dbd_dialect_e target_dialect(ctl_t *ctl)
{
    nebula_dbd_dsn_t dsn;
    const char *err;

    if (ctl->dsn != NULL) {
        return nebula_dbd_dsn_parse(ctl->dsn, &dsn, &err, ctl->pool) == APR_SUCCESS
                   ? nebula_dbd_dialect_from_name(dsn.driver)
                   : NEBULA_DBD_SQLITE; /* ctl_db_connect() says what is wrong */
    }
    return ctl->driver_name ? nebula_dbd_dialect_from_name(ctl->driver_name)
                            : NEBULA_DBD_SQLITE;
}

int ctl_backup_main(ctl_t *ctl, int argc, const char *const *argv)
{
    backup_t b;
    int restore = strcmp(argv[1], "restore") == 0, code;
    nebula_dbd_dialect_e dialect;

    memset(&b, 0, sizeof(b));
    b.ctl = ctl;
    if ((code = ctl_getopt(ctl, argc, argv, backup_options, backup_apply, &b)) !=
            CTL_EXIT_OK ||
        (code = ctl_dsn_settle(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if ((restore && b.to) || (!restore && (b.from || b.force))) {
        ctl_error("%s", restore ? "restore takes --from FILE [--force], not --to"
                                : "backup takes --to FILE, not --from or --force");
        return CTL_EXIT_USAGE;
    }
    dialect = target_dialect(ctl);
    if (dialect == NEBULA_DBD_PGSQL || dialect == NEBULA_DBD_MYSQL) {
        ctl_error("%s works on SQLite only: for PostgreSQL use pg_dump / pg_restore "
                  "(or pg_basebackup), for MySQL mysqldump --single-transaction "
                  "(docs/nebulactl.md)",
                  argv[1]);
        return CTL_EXIT_ERROR;
    }
    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (restore) {
        ctl_db_close(ctl); /* our own connection must not hold the file */
        code = do_restore(&b);
    }
    else {
        code = do_backup(&b);
        ctl_db_close(ctl);
    }
    return code;
}

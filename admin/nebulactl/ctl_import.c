/* ctl_import.c: `nebulactl import-newapi`: bring a new-api (or one-api)
 * installation over: users with their quota as opening ledger rows, tokens
 * (stored as the hash of the key clients already send, so they keep
 * working), channels (keys sealed with our keyring) and their abilities,
 * redemption codes (as new-api-format vouchers), group ratios and model
 * prices. docs/migration.md has the mapping.
 *
 *   nebulactl import-newapi --from DSN [--dry-run] [--crypto-secret-file F] [DB]
 *
 * The source is read only. Everything is written in one transaction on our
 * database; --dry-run runs the same import and rolls it back, so its report
 * is exactly what the real run will do. A rerun imports nothing twice: each
 * object is recognised by a natural key (a username with its opening ledger
 * row "newapi:user:<id>", a token's key hash, a channel's name, kind and
 * upstream keys, a code's HMAC, a price's model, a group's name).
 * This file: options, both connections, the transaction and the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_env.h>
#include <apr_file_io.h>
#include <apr_time.h>

#include "ctl_import.h"
#include "nebula_dbd_dsn.h"
#include "nebula_migrate.h"

/* The schema version the import writes for (0006_vouchers and before). */
#define IMPORT_SCHEMA_VERSION 6

enum { OPT_FROM = CTL_OPT_OWN, OPT_DRY, OPT_SECRET_FILE };

static const apr_getopt_option_t import_options[] = {
    CTL_DB_OPTIONS,
    {"from", OPT_FROM, 1, "the new-api database"},
    {"dry-run", OPT_DRY, 0, "report only"},
    {"crypto-secret-file", OPT_SECRET_FILE, 1, "file holding CRYPTO_SECRET"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

static const char *const kind_names[IMP_NKINDS] = {
    "groups", "users", "tokens", "channels", "abilities", "redemptions", "prices"};

typedef struct {
    imp_t *im;
    const char *from, *secret_file;
} import_opts_t;

int ctl_import_is_command(const char *command)
{
    return strcmp(command, "import-newapi") == 0;
}

/* ---- helpers shared by the import files ---------------------------------- */

void imp_note(imp_t *im, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    APR_ARRAY_PUSH(im->details, const char *) = apr_pvsprintf(im->ctl->pool, fmt, ap);
    va_end(ap);
}

const char *imp_i64(imp_t *im, apr_int64_t v)
{
    return apr_psprintf(im->ctl->pool, "%" APR_INT64_T_FMT, v);
}

int imp_bool(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "t") == 0 || strcmp(v, "true") == 0 ||
                 strcmp(v, "TRUE") == 0);
}

static int db_fail(imp_t *im, const char *what)
{
    ctl_error("%s: %s", what,
              nebula_dbd_errmsg(im->ctl->driver, im->ctl->handle, 1, im->ctl->pool));
    return CTL_EXIT_ERROR;
}

int imp_select(imp_t *im, const char *sql, int nargs, const char **args,
               nebula_dbd_rows_t *rows)
{
    return ctl_select(im->ctl, im->ctl->pool, sql, nargs, args, rows);
}

int imp_exec(imp_t *im, const char *sql, int nargs, const char **args, int *affected)
{
    return ctl_exec(im->ctl, im->ctl->pool, sql, nargs, args, affected);
}

int imp_insert(imp_t *im, const char *sql, int nargs, const char **args, apr_int64_t *id)
{
    nebula_dbd_dialect_e d = nebula_dbd_dialect_of(im->ctl->driver);
    nebula_dbd_rows_t rows;

    if (d == NEBULA_DBD_PGSQL) {
        if (imp_select(im, apr_pstrcat(im->ctl->pool, sql, " RETURNING id", NULL), nargs,
                       args, &rows) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    else if (imp_exec(im, sql, nargs, args, NULL) != CTL_EXIT_OK ||
             imp_select(im,
                        d == NEBULA_DBD_MYSQL ? "SELECT LAST_INSERT_ID()"
                                              : "SELECT last_insert_rowid()",
                        0, NULL, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *id = rows.nrows == 1 && rows.rows[0][0] ? apr_atoi64(rows.rows[0][0]) : 0;
    return CTL_EXIT_OK;
}

int imp_src_select(imp_t *im, const char *sql, nebula_dbd_rows_t *rows)
{
    const char *err = NULL;
    int i, j;

    if (nebula_dbd_select(im->src.driver, im->src.handle, sql, rows, &err,
                          im->ctl->pool)) {
        ctl_error("reading the new-api database: %s", err ? err : "unknown error");
        return CTL_EXIT_ERROR;
    }
    /* apr_dbd_pgsql gives "" for NULL: empty and NULL mean the same here */
    for (i = 0; i < rows->nrows; ++i) {
        for (j = 0; j < rows->ncols; ++j) {
            if (rows->rows[i][j] && *rows->rows[i][j] == '\0') {
                rows->rows[i][j] = NULL;
            }
        }
    }
    return CTL_EXIT_OK;
}

const char *imp_src_col(imp_t *im, const char *name)
{
    return apr_psprintf(im->ctl->pool,
                        im->src_dialect == NEBULA_DBD_MYSQL ? "`%s`" : "\"%s\"", name);
}

static const char *const option_keys[] = {"ModelRatio", "CompletionRatio", "CacheRatio",
                                          "ModelPrice", "GroupRatio",      "QuotaPerUnit",
                                          NULL};

/* The options the import reads, if new-api has an options table. */
static int load_options(imp_t *im)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int exists = 0, i, j;

    im->options = apr_hash_make(im->ctl->pool);
    if (nebula_dbd_table_exists(im->src.driver, im->src.handle, "options", &exists, &err,
                                im->ctl->pool)) {
        ctl_error("reading the new-api database: %s", err ? err : "unknown error");
        return CTL_EXIT_ERROR;
    }
    if (!exists) {
        imp_note(im,
                 "the new-api database has no options table: no prices or group ratios");
        return CTL_EXIT_OK;
    }
    if (imp_src_select(im,
                       apr_psprintf(im->ctl->pool, "SELECT %s, value FROM options",
                                    imp_src_col(im, "key")),
                       &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        for (j = 0; option_keys[j]; ++j) {
            if (rows.rows[i][0] && rows.rows[i][1] &&
                !strcmp(rows.rows[i][0], option_keys[j])) {
                apr_hash_set(im->options, option_keys[j], APR_HASH_KEY_STRING,
                             rows.rows[i][1]);
            }
        }
    }
    im->quota_per_unit = imp_option(im, "QuotaPerUnit");
    return CTL_EXIT_OK;
}

const char *imp_option(imp_t *im, const char *key)
{
    return apr_hash_get(im->options, key, APR_HASH_KEY_STRING);
}

json_t *imp_option_json(imp_t *im, const char *key)
{
    const char *v = imp_option(im, key);
    json_t *j;

    if (v == NULL || *v == '\0') {
        return NULL;
    }
    j = nebula_json_parse(im->ctl->pool, v, strlen(v), 0, NULL);
    if (!json_is_object(j)) {
        imp_note(im, "option %s is not a JSON object: ignored", key);
        return NULL;
    }
    return j;
}

/* ---- options ----------------------------------------------------------- */

static int apply(void *baton, int opt, const char *arg)
{
    import_opts_t *o = baton;

    if (ctl_db_option(o->im->ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_FROM:
        o->from = arg;
        return CTL_EXIT_OK;
    case OPT_DRY:
        o->im->dry_run = 1;
        return CTL_EXIT_OK;
    case OPT_SECRET_FILE:
        o->secret_file = arg;
        return CTL_EXIT_OK;
    default:
        return -1;
    }
}

/* CRYPTO_SECRET from --crypto-secret-file (first line) or the environment. */
static int read_secret(imp_t *im, const char *file)
{
    apr_pool_t *p = im->ctl->pool;
    char *text = NULL;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;

    if (file) {
        if (apr_file_open(&f, file, APR_FOPEN_READ, 0, p) != APR_SUCCESS ||
            apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS || fi.size > 4096) {
            ctl_error("--crypto-secret-file: cannot read '%s'", file);
            return CTL_EXIT_USAGE;
        }
        n = (apr_size_t)fi.size;
        text = apr_pcalloc(p, n + 1);
        apr_file_read_full(f, text, n, &n);
        apr_file_close(f);
        text[strcspn(text, "\r\n")] = '\0';
    }
    else {
        apr_env_get(&text, "CRYPTO_SECRET", p);
    }
    if (text == NULL || strlen(text) < NEBULA_CRYPTO_SECRET_MIN_LEN) {
        ctl_error(
            "the import needs the gateway's NebulaCryptoSecret (%d+ characters) to "
            "seal channel keys and hash redemption codes: set CRYPTO_SECRET or give "
            "--crypto-secret-file",
            NEBULA_CRYPTO_SECRET_MIN_LEN);
        return CTL_EXIT_USAGE;
    }
    im->secret = text;
    im->keyring = nebula_crypto_keyring_create(p, text, strlen(text), 1);
    if (im->keyring == NULL) {
        ctl_error("cannot derive keys from the crypto secret");
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* --from as one of our DSN forms; a bare path (new-api's SQLITE_PATH, with
 * its "?_busy_timeout=..." dropped) is a SQLite file that must exist. */
static int source_dsn(imp_t *im, const char *from)
{
    apr_pool_t *p = im->ctl->pool;
    apr_finfo_t fi;
    char *path;

    if (strstr(from, "://") || strstr(from, "@tcp(") || strstr(from, "@unix(")) {
        im->src.dsn = from;
        return CTL_EXIT_OK;
    }
    path = apr_pstrdup(p, from);
    if (strncmp(path, "sqlite3:", 8) == 0 || strncmp(path, "sqlite:", 7) == 0) {
        path = strchr(path, ':') + 1;
        while (path[0] == '/' && path[1] == '/') {
            ++path;
        }
    }
    path[strcspn(path, "?")] = '\0';
    if (*path == '\0' || apr_stat(&fi, path, APR_FINFO_TYPE, p) != APR_SUCCESS ||
        fi.filetype != APR_REG) {
        ctl_error("--from: no SQLite database file '%s'", path);
        return CTL_EXIT_USAGE;
    }
    im->src.dsn = apr_pstrcat(p, "sqlite:", path, NULL);
    return CTL_EXIT_OK;
}

/* ---- connections ----------------------------------------------------- */

static int connect_ours(imp_t *im)
{
    return ctl_db_connect_current(im->ctl, IMPORT_SCHEMA_VERSION);
}

static int connect_source(imp_t *im)
{
    static const char *const required[] = {"users", "tokens", "channels", NULL};
    const char *err = NULL;
    int i, exists = 0, code;

    im->src.pool = im->ctl->pool;
    if ((code = ctl_db_connect(&im->src)) != CTL_EXIT_OK) {
        return code;
    }
    im->src_dialect = nebula_dbd_dialect_of(im->src.driver);
    for (i = 0; required[i]; ++i) {
        if (nebula_dbd_table_exists(im->src.driver, im->src.handle, required[i], &exists,
                                    &err, im->ctl->pool)) {
            ctl_error("reading the new-api database: %s", err ? err : "unknown error");
            return CTL_EXIT_ERROR;
        }
        if (!exists) {
            ctl_error("the %s has no '%s' table: is it a new-api database?",
                      im->src.target_desc, required[i]);
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* ---- the run --------------------------------------------------------------- */

static void report(imp_t *im, const char *from_desc)
{
    apr_int64_t abs_total = im->quota_total < 0 ? -im->quota_total : im->quota_total;
    int i;

    printf("new-api import from %s into %s%s\n", from_desc, im->ctl->target_desc,
           im->dry_run ? " (dry run: nothing was written)" : "");
    for (i = 0; i < IMP_NKINDS; ++i) {
        const imp_count_t *c = &im->count[i];

        printf("%s: source=%d %s=%d already=%d skipped=%d conflict=%d\n", kind_names[i],
               c->source, im->dry_run ? "would_import" : "imported", c->imported,
               c->already, c->skipped, c->conflict);
    }
    printf("quota: users=%" APR_INT64_T_FMT " total=%" APR_INT64_T_FMT
           " units (%s%" APR_INT64_T_FMT ".%06" APR_INT64_T_FMT
           " USD at 500000 a dollar)\n",
           im->quota_users, im->quota_total, im->quota_total < 0 ? "-" : "",
           abs_total / 500000, abs_total % 500000 * 2);
    if (im->quota_per_unit && strtod(im->quota_per_unit, NULL) != 500000.0) {
        printf("  new-api's QuotaPerUnit is %s: set NebulaQuotaPerUSD to it so that "
               "balances "
               "keep their dollar value\n",
               im->quota_per_unit);
    }
    for (i = 0; i < im->details->nelts; ++i) {
        printf("  %s\n", APR_ARRAY_IDX(im->details, i, const char *));
    }
}

static int run(imp_t *im)
{
    apr_dbd_transaction_t *tx = NULL;
    int code;

    if (apr_dbd_transaction_start(im->ctl->driver, im->ctl->pool, im->ctl->handle, &tx)) {
        return db_fail(im, "begin");
    }
    if ((code = load_options(im)) == CTL_EXIT_OK &&
        (code = imp_groups(im)) == CTL_EXIT_OK && (code = imp_users(im)) == CTL_EXIT_OK &&
        (code = imp_tokens(im)) == CTL_EXIT_OK &&
        (code = imp_channels(im)) == CTL_EXIT_OK &&
        (code = imp_redemptions(im)) == CTL_EXIT_OK) {
        code = imp_prices(im);
    }
    if (code != CTL_EXIT_OK || im->dry_run) {
        apr_dbd_transaction_mode_set(im->ctl->driver, tx, APR_DBD_TRANSACTION_ROLLBACK);
    }
    if (apr_dbd_transaction_end(im->ctl->driver, im->ctl->pool, tx) &&
        code == CTL_EXIT_OK) {
        return db_fail(im, im->dry_run ? "rollback" : "commit");
    }
    return code;
}

int ctl_import_main(ctl_t *ctl, int argc, const char *const *argv)
{
    imp_t im;
    import_opts_t o;
    int code;

    memset(&im, 0, sizeof(im));
    memset(&o, 0, sizeof(o));
    im.ctl = ctl;
    im.now_ms = (apr_int64_t)(apr_time_now() / 1000);
    im.details = apr_array_make(ctl->pool, 16, sizeof(const char *));
    im.user_map = apr_hash_make(ctl->pool);
    im.chan_map = apr_hash_make(ctl->pool);
    o.im = &im;
    code = ctl_getopt(ctl, argc, argv, import_options, apply, &o);
    if (code != CTL_EXIT_OK) { /* -1: --help */
        return code;
    }
    if (o.from == NULL) {
        ctl_error("say which new-api database to read: --from DSN (postgres://..., "
                  "user:pass@tcp(host:3306)/db, mysql://..., sqlite:/path or a path)");
        return CTL_EXIT_USAGE;
    }
    if ((code = ctl_dsn_settle(ctl)) != CTL_EXIT_OK ||
        (code = source_dsn(&im, o.from)) != CTL_EXIT_OK ||
        (code = read_secret(&im, o.secret_file)) != CTL_EXIT_OK) {
        return code;
    }
    if (ctl->dsn && strcmp(ctl->dsn, im.src.dsn) == 0) {
        ctl_error("--from and our database are the same (is SQL_DSN new-api's?): give "
                  "NebulaGate's database with --dsn");
        return CTL_EXIT_USAGE;
    }
    im.src.command = ctl->command;
    if ((code = connect_source(&im)) == CTL_EXIT_OK &&
        (code = connect_ours(&im)) == CTL_EXIT_OK) {
        code = run(&im);
        if (code == CTL_EXIT_OK) {
            report(&im, im.src.target_desc);
        }
    }
    ctl_db_close(&im.src);
    ctl_db_close(ctl);
    return code;
}

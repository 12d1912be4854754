/* ctl_rotate.c: `nebulactl rotate-secret`: re-encrypt every value sealed under
 * the old CRYPTO_SECRET (nebula_crypto_seal) under the new one, in batches of
 * one transaction each. Also the small query helpers the operations commands
 * (rotate-secret, backup, export/import) share.
 *
 *   nebulactl rotate-secret --old-secret-env VAR --new-secret-env VAR
 *                           [--dry-run] [--batch N] DB
 *
 * What is sealed (aad in brackets, as the modules bind it):
 *   channel_keys.key_ciphertext   ["nebula-channel-key:<channel_id>"]
 *   voucher_codes.code_enc        ["voucher_codes:<code_hash>"]
 *   nebula_secrets.sealed         ["nebula_secrets:<name>"]
 * A token carries no secret id: the row is tried under the new secret first
 * (then it is skipped: idempotent), then the old one (then it is resealed
 * with a conditional UPDATE, so a value the admin API changed meanwhile is
 * left alone and counted as changed). A row neither opens is counted
 * unreadable and makes the exit status 1.
 *
 * voucher_codes.code_hash is an HMAC under the voucher key, a sealed row of
 * nebula_secrets, so it does not change: every code, handed out or not,
 * keeps redeeming. A database whose voucher key was never set (no voucher
 * made since migration 0010) gets it set to the old secret first, the key
 * of the hashes made before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_env.h>
#include <apr_time.h>

#include "ctl.h"
#include "nebula_crypto.h"

/* The keyring version the modules seal with (RELAY_KEYRING_VERSION). */
#define CTL_KEYRING_VERSION  1
#define ROTATE_DEFAULT_BATCH 200

int ctl_read_secret(ctl_t *ctl, const char *opt, const char *var, const char **out)
{
    char *v = NULL;

    if (var == NULL) {
        ctl_error("give %s VAR (the name of an environment variable)", opt);
        return CTL_EXIT_USAGE;
    }
    if (apr_env_get(&v, var, ctl->pool) != APR_SUCCESS || v == NULL || *v == '\0') {
        ctl_error("%s: the environment variable %s is not set", opt, var);
        return CTL_EXIT_USAGE;
    }
    if (strlen(v) < NEBULA_CRYPTO_SECRET_MIN_LEN) {
        ctl_error("%s: %s is shorter than %d characters", opt, var,
                  NEBULA_CRYPTO_SECRET_MIN_LEN);
        return CTL_EXIT_USAGE;
    }
    *out = v;
    return CTL_EXIT_OK;
}

/* ---- rotate-secret ------------------------------------------------------ */

enum { OPT_OLD = CTL_OPT_OWN, OPT_NEW, OPT_DRY, OPT_BATCH };

static const apr_getopt_option_t rotate_options[] = {
    CTL_DB_OPTIONS,
    {"old-secret-env", OPT_OLD, 1, "variable holding the old secret"},
    {"new-secret-env", OPT_NEW, 1, "variable holding the new secret"},
    {"dry-run", OPT_DRY, 0, "count, change nothing"},
    {"batch", OPT_BATCH, 1, "rows a transaction"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

typedef struct {
    ctl_t *ctl;
    const char *old_var, *new_var;
    int dry_run, batch;
    nebula_crypto_keyring_t *old_kr, *new_kr;
} rotate_t;

/* One kind of sealed value: where it lives and how it is bound. */
typedef struct {
    const char *table, *column;
    const char *aad_prefix; /* aad = prefix + the value of aad_column */
    const char *aad_column;
} sealed_col_t;

static const sealed_col_t sealed_cols[] = {
    {"channel_keys", "key_ciphertext", "nebula-channel-key:", "channel_id"},
    {"voucher_codes", "code_enc", "voucher_codes:", "code_hash"},
    {"nebula_secrets", "sealed", NEBULA_SECRETS_AAD, "name"},
};

typedef struct {
    long rotated, current, unreadable, changed;
} rotate_count_t;

static int rotate_apply(void *baton, int opt, const char *arg)
{
    rotate_t *r = baton;
    char *end;
    long v;

    if (ctl_db_option(r->ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_OLD:
        r->old_var = arg;
        return CTL_EXIT_OK;
    case OPT_NEW:
        r->new_var = arg;
        return CTL_EXIT_OK;
    case OPT_DRY:
        r->dry_run = 1;
        return CTL_EXIT_OK;
    case OPT_BATCH:
        v = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || v < 1 || v > 100000) {
            ctl_error("--batch wants a whole number from 1 to 100000, not '%s'", arg);
            return CTL_EXIT_USAGE;
        }
        r->batch = (int)v;
        return CTL_EXIT_OK;
    default:
        return -1;
    }
}

/* One row (id, sealed value, aad column): 1 resealed into *@a sealed, 0
 * already under the new secret, -1 unreadable. */
static int reseal(rotate_t *r, apr_pool_t *p, const sealed_col_t *sc, const char **row,
                  const char **sealed)
{
    const char *aad = apr_pstrcat(p, sc->aad_prefix, row[2] ? row[2] : "", NULL);
    char *plain;
    apr_size_t len;

    if (nebula_crypto_open(p, r->new_kr, row[1], aad, strlen(aad), &plain, &len) ==
        APR_SUCCESS) {
        return 0;
    }
    if (nebula_crypto_open(p, r->old_kr, row[1], aad, strlen(aad), &plain, &len) !=
        APR_SUCCESS) {
        return -1;
    }
    if (nebula_crypto_seal(p, r->new_kr, plain, len, aad, strlen(aad), sealed) !=
        APR_SUCCESS) {
        return -1;
    }
    return 1;
}

/* Update the rows of one batch in one transaction. */
static int rotate_batch(rotate_t *r, apr_pool_t *p, const sealed_col_t *sc,
                        nebula_dbd_rows_t *rows, rotate_count_t *cnt)
{
    ctl_t *ctl = r->ctl;
    apr_dbd_transaction_t *trans = NULL;
    const char *sql = apr_psprintf(p, "UPDATE %s SET %s = %%s WHERE id = %%lld AND %s = %%s",
                                   sc->table, sc->column, sc->column);
    int i, n, code = CTL_EXIT_OK, began = 0;

    for (i = 0; i < rows->nrows && code == CTL_EXIT_OK; ++i) {
        const char **row = rows->rows[i], *sealed = NULL, *args[3];
        int rc = reseal(r, p, sc, row, &sealed), k = 0;

        if (rc == 0) {
            cnt->current++;
            continue;
        }
        if (rc < 0) {
            cnt->unreadable++;
            fprintf(stderr, "nebulactl: %s id %s: %s opens under neither secret\n",
                    sc->table, row[0], sc->column);
            continue;
        }
        if (r->dry_run) {
            cnt->rotated++;
            continue;
        }
        if (!began) {
            if (apr_dbd_transaction_start(ctl->driver, p, ctl->handle, &trans) != 0) {
                ctl_error("database: cannot begin a transaction: %s",
                          nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, p));
                return CTL_EXIT_ERROR;
            }
            began = 1;
        }
        args[k++] = sealed;
        args[k++] = row[0], args[k++] = row[1];
        code = ctl_exec(ctl, p, sql, k, args, &n);
        if (code == CTL_EXIT_OK) {
            if (n == 1) {
                cnt->rotated++;
            }
            else {
                cnt->changed++; /* the admin API replaced it meanwhile */
            }
        }
    }
    if (began) {
        if (code != CTL_EXIT_OK) {
            apr_dbd_transaction_mode_set(ctl->driver, trans,
                                         APR_DBD_TRANSACTION_ROLLBACK);
        }
        if (apr_dbd_transaction_end(ctl->driver, p, trans) != 0 && code == CTL_EXIT_OK) {
            ctl_error("database: commit failed: %s",
                      nebula_dbd_errmsg(ctl->driver, ctl->handle, 1, p));
            code = CTL_EXIT_ERROR;
        }
    }
    return code;
}

static int rotate_table(rotate_t *r, const sealed_col_t *sc, rotate_count_t *cnt)
{
    ctl_t *ctl = r->ctl;
    apr_pool_t *p;
    nebula_dbd_rows_t rows;
    apr_int64_t last = 0;
    rotate_count_t before;
    int code = CTL_EXIT_OK;

    apr_pool_create(&p, ctl->pool);
    for (;;) {
        const char *sql;

        apr_pool_clear(p);
        sql = apr_psprintf(p,
                           "SELECT id, %s, %s FROM %s WHERE id > %" APR_INT64_T_FMT
                           " AND %s IS NOT NULL ORDER BY id LIMIT %d",
                           sc->column, sc->aad_column, sc->table, last, sc->column,
                           r->batch);
        if ((code = ctl_select(ctl, p, sql, 0, NULL, &rows)) != CTL_EXIT_OK) {
            break;
        }
        if (rows.nrows == 0) {
            break;
        }
        before = *cnt;
        if ((code = rotate_batch(r, p, sc, &rows, cnt)) != CTL_EXIT_OK) {
            *cnt = before; /* rolled back */
            break;
        }
        last = apr_atoi64(rows.rows[rows.nrows - 1][0]);
    }
    apr_pool_destroy(p);
    return code;
}

int ctl_voucher_key(ctl_t *ctl, apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                    const char *secret, const char **key)
{
    static const char aad[] = NEBULA_SECRETS_AAD NEBULA_VOUCHER_KEY_NAME;
    static const char sel[] =
        "SELECT sealed FROM nebula_secrets WHERE name = '" NEBULA_VOUCHER_KEY_NAME "'";
    nebula_dbd_rows_t rows;
    const char *args[2], *sealed;
    char *plain;
    apr_size_t len;
    int code, n;

    if ((code = ctl_select(ctl, p, sel, 0, NULL, &rows)) != CTL_EXIT_OK) {
        return code;
    }
    if (rows.nrows != 1) {
        ctl_error("nebula_secrets has no %s row: run nebulactl migrate",
                  NEBULA_VOUCHER_KEY_NAME);
        return CTL_EXIT_ERROR;
    }
    if (rows.rows[0][0] == NULL || *rows.rows[0][0] == '\0') {
        if (nebula_crypto_seal(p, kr, secret, strlen(secret), aad, sizeof(aad) - 1,
                               &sealed) != APR_SUCCESS) {
            ctl_error("cannot seal the voucher key");
            return CTL_EXIT_ERROR;
        }
        args[0] = sealed;
        args[1] = apr_psprintf(p, "%" APR_INT64_T_FMT, apr_time_as_msec(apr_time_now()));
        if ((code = ctl_exec(ctl, p,
                             "UPDATE nebula_secrets SET sealed = %s, updated_at = %lld "
                             "WHERE name = '" NEBULA_VOUCHER_KEY_NAME "' AND sealed IS NULL",
                             2, args, &n)) != CTL_EXIT_OK ||
            (code = ctl_select(ctl, p, sel, 0, NULL, &rows)) != CTL_EXIT_OK) {
            return code;
        }
    }
    if (rows.nrows != 1 || rows.rows[0][0] == NULL ||
        nebula_crypto_open(p, kr, rows.rows[0][0], aad, sizeof(aad) - 1, &plain, &len) !=
            APR_SUCCESS) {
        ctl_error("the voucher key (nebula_secrets) does not open under this secret");
        return CTL_EXIT_ERROR;
    }
    *key = plain;
    return CTL_EXIT_OK;
}

static int rotate_run(rotate_t *r)
{
    ctl_t *ctl = r->ctl;
    const char *old_s, *new_s, *err;
    rotate_count_t cnt;
    long unreadable = 0;
    apr_size_t i;
    int code;

    if ((code = ctl_read_secret(ctl, "--old-secret-env", r->old_var, &old_s)) !=
            CTL_EXIT_OK ||
        (code = ctl_read_secret(ctl, "--new-secret-env", r->new_var, &new_s)) !=
            CTL_EXIT_OK) {
        return code;
    }
    if (strcmp(old_s, new_s) == 0) {
        ctl_error("the old and the new secret are the same");
        return CTL_EXIT_USAGE;
    }
    r->old_kr = nebula_crypto_keyring_create(ctl->pool, old_s, strlen(old_s),
                                             CTL_KEYRING_VERSION);
    r->new_kr = nebula_crypto_keyring_create(ctl->pool, new_s, strlen(new_s),
                                             CTL_KEYRING_VERSION);
    if (r->old_kr == NULL || r->new_kr == NULL) {
        ctl_error("cannot derive keys from the secrets");
        return CTL_EXIT_ERROR;
    }
    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (nebula_dbd_sqlite_init(ctl->driver, ctl->handle, 0, &err, ctl->pool) != 0) {
        ctl_error("%s", err);
        return CTL_EXIT_ERROR;
    }
    if (!r->dry_run) { /* the hashes' key set, before it is re-sealed */
        nebula_crypto_keyring_t *either =
            nebula_crypto_keyring_create(ctl->pool, old_s, strlen(old_s), CTL_KEYRING_VERSION);
        const char *key;
        int exists = 0;

        if (nebula_dbd_table_exists(ctl->driver, ctl->handle, "nebula_secrets", &exists,
                                    &err, ctl->pool) != 0) {
            ctl_error("database: %s", err);
            return CTL_EXIT_ERROR;
        }
        nebula_crypto_keyring_set_previous(either, r->new_kr); /* a rerun */
        if (exists &&
            (code = ctl_voucher_key(ctl, ctl->pool, either, old_s, &key)) != CTL_EXIT_OK) {
            return code;
        }
    }
    for (i = 0; i < sizeof(sealed_cols) / sizeof(sealed_cols[0]); ++i) {
        const sealed_col_t *sc = &sealed_cols[i];
        int exists = 0;

        if (nebula_dbd_table_exists(ctl->driver, ctl->handle, sc->table, &exists, &err,
                                    ctl->pool) != 0) {
            ctl_error("database: %s", err);
            return CTL_EXIT_ERROR;
        }
        if (!exists) {
            continue;
        }
        memset(&cnt, 0, sizeof(cnt));
        code = rotate_table(r, sc, &cnt);
        printf("%s.%s: %ld %s, %ld already under the new secret, %ld unreadable, "
               "%ld changed meanwhile\n",
               sc->table, sc->column, cnt.rotated,
               r->dry_run ? "to re-encrypt" : "re-encrypted", cnt.current, cnt.unreadable,
               cnt.changed);
        unreadable += cnt.unreadable;
        if (code != CTL_EXIT_OK) {
            return code;
        }
    }
    if (unreadable > 0) {
        ctl_error("%ld value(s) open under neither secret (listed above)", unreadable);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

int ctl_rotate_main(ctl_t *ctl, int argc, const char *const *argv)
{
    rotate_t r;
    int code;

    memset(&r, 0, sizeof(r));
    r.ctl = ctl;
    r.batch = ROTATE_DEFAULT_BATCH;
    if ((code = ctl_getopt(ctl, argc, argv, rotate_options, rotate_apply, &r)) !=
            CTL_EXIT_OK ||
        (code = ctl_dsn_settle(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    code = rotate_run(&r);
    ctl_db_close(ctl);
    return code;
}

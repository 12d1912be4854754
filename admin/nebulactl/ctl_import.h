/* ctl_import.h: what the files of `nebulactl import-newapi` share: the
 * state of one import (both connections, the id maps, the report counters)
 * and the statement helpers on our database. */
#ifndef NEBULACTL_CTL_IMPORT_H
#define NEBULACTL_CTL_IMPORT_H

#include <stdio.h>
#include <apr_hash.h>

#include "ctl.h"
#include "nebula_crypto.h"
#include "nebula_json.h"

/* The object kinds of the report, in the order they are imported. */
enum {
    IMP_GROUPS,
    IMP_USERS,
    IMP_TOKENS,
    IMP_CHANNELS,
    IMP_ABILITIES,
    IMP_REDEMPTIONS,
    IMP_PRICES,
    IMP_NKINDS
};

/* Per kind: rows in the source, and what became of them. */
typedef struct {
    int source;   /* rows read from new-api */
    int imported; /* written now (or, in a dry run, that would be) */
    int already;  /* imported by an earlier run: nothing to do */
    int skipped;  /* not importable (reason in the details) */
    int conflict; /* clashes with something of ours (kept as it is) */
} imp_count_t;

typedef struct {
    ctl_t *ctl; /* our database (ctl->handle) */
    ctl_t src;  /* the new-api database */
    nebula_dbd_dialect_e src_dialect;
    int dry_run;
    const char *secret; /* CRYPTO_SECRET (NebulaCryptoSecret) */
    nebula_crypto_keyring_t *keyring;
    const char *voucher_key; /* ctl_voucher_key(), read at the first code */
    apr_int64_t now_ms;
    apr_hash_t *user_map; /* new-api user id (text) -> our id (text) */
    apr_hash_t *chan_map; /* new-api channel id -> our id, new ones only */
    apr_hash_t *options;  /* new-api options (key -> value) the import reads */
    imp_count_t count[IMP_NKINDS];
    apr_int64_t quota_total;     /* opening balances posted now */
    apr_int64_t quota_users;     /* how many */
    const char *quota_per_unit;  /* new-api's QuotaPerUnit option, if set */
    apr_array_header_t *details; /* const char * lines of the report */
} imp_t;

/* One detail line of the report ("  " + text). */
void imp_note(imp_t *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Statements on our database (ctl->handle); CTL_EXIT_OK or CTL_EXIT_ERROR
 * (the error printed). */
int imp_select(imp_t *im, const char *sql, int nargs, const char **args,
               nebula_dbd_rows_t *rows);
int imp_exec(imp_t *im, const char *sql, int nargs, const char **args, int *affected);
int imp_insert(imp_t *im, const char *sql, int nargs, const char **args, apr_int64_t *id);

/* A new-api option's value (ModelRatio, GroupRatio ...), or NULL. */
const char *imp_option(imp_t *im, const char *key);
/* A new-api option holding a JSON object (name -> number), or NULL. */
json_t *imp_option_json(imp_t *im, const char *key);

/* A SELECT on the new-api database: all its rows. */
int imp_src_select(imp_t *im, const char *sql, nebula_dbd_rows_t *rows);
/* A column name quoted for the source dialect (`group`, "key" ...). */
const char *imp_src_col(imp_t *im, const char *name);

const char *imp_i64(imp_t *im, apr_int64_t v);
/* A new-api boolean column ("1", "t", "true") as 0 or 1. */
int imp_bool(const char *v);

/* ctl_import_ledger.c: the opening balance of user @a user_id (ours),
 * keyed by the new-api user id: 1 posted, 0 it was already there. */
int imp_ledger_opening(imp_t *im, const char *user_id, const char *src_id,
                       apr_int64_t amount, int *posted);
/* Whether the opening row of new-api user @a src_id is on @a user_id's wallet. */
int imp_ledger_has_opening(imp_t *im, const char *user_id, const char *src_id, int *has);

/* ctl_import_users.c and ctl_import_channels.c: one kind each; exit codes. */
int imp_groups(imp_t *im);
int imp_users(imp_t *im);
int imp_tokens(imp_t *im);
int imp_channels(imp_t *im);
int imp_redemptions(imp_t *im);
int imp_prices(imp_t *im);

#endif /* NEBULACTL_CTL_IMPORT_H */

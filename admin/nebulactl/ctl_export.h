/* ctl_export.h: what ctl_export.c (the command, export) and
 * ctl_export_import.c (import) share: the options and the document form. */
#ifndef NEBULACTL_CTL_EXPORT_H
#define NEBULACTL_CTL_EXPORT_H

#include <jansson.h>

#include "ctl.h"
#include "nebula_crypto.h"

/** The "version" of the document export writes and import reads. */
#define CTL_EXPORT_VERSION 1

typedef struct {
    ctl_t *ctl;
    int channels, policies;      /* --what */
    int with_keys;               /* export --with-keys */
    const char *file;            /* import --file ("-": stdin) */
    int dry_run, prune;          /* import */
    int allow_private;           /* import: skip the SSRF check of URLs */
    const char *secret_env;      /* --secret-env (CRYPTO_SECRET) */
    nebula_crypto_keyring_t *kr; /* from it, when keys are wanted */
} ctl_export_t;

/** The channel columns, in document order (name first, then these). */
#define CTL_CHANNEL_COLS                                                                 \
    "id, name, kind, base_url, models, model_mapping, channel_groups, priority, "        \
    "weight, status, header_override, timeout_ms, auto_disable, key_mode, proxy, "       \
    "test_model"

/** A channels row (CTL_CHANNEL_COLS) as its document object (no id, no keys);
 *  a new reference, NULL with *err when a JSON column does not parse. */
json_t *ctl_export_channel(apr_pool_t *p, const char *const *row, const char **err);

/** The keyring of --secret-env into x->kr; an exit code. */
int ctl_export_keyring(ctl_export_t *x);

/** The AAD channel keys are sealed with. */
const char *ctl_export_key_aad(apr_pool_t *p, const char *channel_id);

/** import: an exit code. */
int ctl_import_run(ctl_export_t *x);

#endif /* NEBULACTL_CTL_EXPORT_H */

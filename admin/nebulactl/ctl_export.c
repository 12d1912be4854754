/* ctl_export.c: `nebulactl export` and the options of export and import:
 * channels (with their models, groups, weights, priorities, base URLs;
 * abilities are derived from them) and governance policies (their canonical
 * spec, as the admin API stores it) as one JSON document, for
 * configuration as code.
 *
 *   nebulactl export [--what channels,policies] [--with-keys]
 *                    [--secret-env VAR] DB > FILE
 *
 * The document: {"version": 1, "channels": [...], "policies": [...]}, keys
 * sorted, channels and policies by name, each channel's keys (only with
 * --with-keys: in clear, so stdout is made mode 600 when it is a file, and
 * a warning goes to stderr) in id order. No ids, times or health: the
 * same configuration exports to the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_env.h>

#include "ctl_export.h"
#include "nebula_json.h"

enum {
    OPT_WHAT = CTL_OPT_OWN,
    OPT_KEYS,
    OPT_FILE,
    OPT_DRY,
    OPT_PRUNE,
    OPT_PRIV,
    OPT_SENV
};

static const apr_getopt_option_t export_options[] = {
    CTL_DB_OPTIONS,
    {"what", OPT_WHAT, 1, "channels,policies"},
    {"with-keys", OPT_KEYS, 0, "export upstream keys in clear"},
    {"file", OPT_FILE, 1, "document to import"},
    {"dry-run", OPT_DRY, 0, "say what import would do"},
    {"prune", OPT_PRUNE, 0, "delete what the document lacks"},
    {"allow-private", OPT_PRIV, 0, "no SSRF check of URLs"},
    {"secret-env", OPT_SENV, 1, "variable holding CRYPTO_SECRET"},
    {"help", 'h', 0, "help"},
    {NULL, 0, 0, NULL},
};

int ctl_export_is_command(const char *command)
{
    return strcmp(command, "export") == 0 || strcmp(command, "import") == 0;
}

static int parse_what(ctl_export_t *x, const char *arg)
{
    char *list = apr_pstrdup(x->ctl->pool, arg), *last, *w;

    x->channels = x->policies = 0;
    for (w = apr_strtok(list, ",", &last); w; w = apr_strtok(NULL, ",", &last)) {
        if (strcmp(w, "channels") == 0) {
            x->channels = 1;
        }
        else if (strcmp(w, "policies") == 0) {
            x->policies = 1;
        }
        else {
            ctl_error("--what takes channels and/or policies, not '%s'", w);
            return CTL_EXIT_USAGE;
        }
    }
    if (!x->channels && !x->policies) {
        ctl_error("--what names nothing");
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

static int export_apply(void *baton, int opt, const char *arg)
{
    ctl_export_t *x = baton;

    if (ctl_db_option(x->ctl, opt, arg)) {
        return CTL_EXIT_OK;
    }
    switch (opt) {
    case OPT_WHAT:
        return parse_what(x, arg);
    case OPT_KEYS:
        x->with_keys = 1;
        break;
    case OPT_FILE:
        x->file = arg;
        break;
    case OPT_DRY:
        x->dry_run = 1;
        break;
    case OPT_PRUNE:
        x->prune = 1;
        break;
    case OPT_PRIV:
        x->allow_private = 1;
        break;
    case OPT_SENV:
        x->secret_env = arg;
        break;
    default:
        return -1;
    }
    return CTL_EXIT_OK;
}

int ctl_export_keyring(ctl_export_t *x)
{
    const char *secret;
    int code = ctl_read_secret(x->ctl, "--secret-env", x->secret_env, &secret);

    if (code != CTL_EXIT_OK) {
        return code;
    }
    /* version 1: RELAY_KEYRING_VERSION */
    x->kr = nebula_crypto_keyring_create(x->ctl->pool, secret, strlen(secret), 1);
    if (x->kr == NULL) {
        ctl_error("cannot derive keys from %s", x->secret_env);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

const char *ctl_export_key_aad(apr_pool_t *p, const char *channel_id)
{
    return apr_pstrcat(p, "nebula-channel-key:", channel_id, NULL);
}

/* A JSON text column as a value (NULL/empty: null). */
static json_t *json_col(apr_pool_t *p, const char *text, const char *col,
                        const char **err)
{
    json_t *j;

    if (text == NULL || *text == '\0') {
        return json_null();
    }
    if ((j = nebula_json_parse(p, text, strlen(text), 0, NULL)) == NULL) {
        *err = apr_psprintf(p, "the column %s does not hold JSON", col);
        return NULL;
    }
    return json_incref(j);
}

static json_t *int_col(const char *v)
{
    return json_integer(v ? (json_int_t)apr_atoi64(v) : 0);
}

static json_t *str_col(const char *v)
{
    return v ? json_string(v) : json_null();
}

/* A nullable text column: NULL and "" are both null (apr_dbd_pgsql gives
 * "" for NULL). */
static json_t *opt_col(const char *v)
{
    return v && *v ? json_string(v) : json_null();
}

json_t *ctl_export_channel(apr_pool_t *p, const char *const *row, const char **err)
{
    json_t *o = json_object(), *models, *mapping, *groups, *headers;

    models = json_col(p, row[4], "models", err);
    mapping = models ? json_col(p, row[5], "model_mapping", err) : NULL;
    groups = mapping ? json_col(p, row[6], "channel_groups", err) : NULL;
    headers = groups ? json_col(p, row[10], "header_override", err) : NULL;
    if (headers == NULL) {
        json_decref(models), json_decref(mapping), json_decref(groups), json_decref(o);
        *err = apr_psprintf(p, "channel %s: %s", row[1], *err);
        return NULL;
    }
    json_object_set_new(o, "name", str_col(row[1]));
    json_object_set_new(o, "kind", str_col(row[2]));
    json_object_set_new(o, "base_url", str_col(row[3] ? row[3] : ""));
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "model_mapping", mapping);
    json_object_set_new(o, "channel_groups", groups);
    json_object_set_new(o, "priority", int_col(row[7]));
    json_object_set_new(o, "weight", int_col(row[8]));
    json_object_set_new(o, "status", str_col(row[9]));
    json_object_set_new(o, "header_override", headers);
    json_object_set_new(o, "timeout_ms", int_col(row[11]));
    json_object_set_new(o, "auto_disable", json_boolean(row[12] && apr_atoi64(row[12])));
    json_object_set_new(o, "key_mode", str_col(row[13]));
    json_object_set_new(o, "proxy", opt_col(row[14]));
    json_object_set_new(o, "test_model", opt_col(row[15]));
    return o;
}

/* The keys of channel @a id, opened, as a JSON array (a new reference). */
static int channel_keys(ctl_export_t *x, apr_pool_t *p, const char *id, json_t **out)
{
    nebula_dbd_rows_t rows;
    const char *args[1] = {id}, *aad = ctl_export_key_aad(p, id);
    json_t *keys;
    int i;

    if (ctl_select(x->ctl, p,
                   "SELECT id, key_ciphertext FROM channel_keys WHERE channel_id = %lld "
                   "ORDER BY id",
                   1, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    keys = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        char *plain;

        if (nebula_crypto_open(p, x->kr, rows.rows[i][1], aad, strlen(aad), &plain,
                               NULL) != APR_SUCCESS) {
            ctl_error("key %s of channel %s does not open under %s", rows.rows[i][0], id,
                      x->secret_env);
            json_decref(keys);
            return CTL_EXIT_ERROR;
        }
        json_array_append_new(keys, json_string(plain));
    }
    *out = keys;
    return CTL_EXIT_OK;
}

static int export_channels(ctl_export_t *x, json_t *doc)
{
    nebula_dbd_rows_t rows;
    json_t *list = json_array(), *o, *keys;
    const char *err = NULL;
    int i;

    json_object_set_new(doc, "channels", list);
    if (ctl_select(x->ctl, x->ctl->pool,
                   "SELECT " CTL_CHANNEL_COLS " FROM channels ORDER BY name, id", 0, NULL,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if ((o = ctl_export_channel(x->ctl->pool, rows.rows[i], &err)) == NULL) {
            ctl_error("%s", err);
            return CTL_EXIT_ERROR;
        }
        json_array_append_new(list, o);
        if (x->with_keys) {
            if (channel_keys(x, x->ctl->pool, rows.rows[i][0], &keys) != CTL_EXIT_OK) {
                return CTL_EXIT_ERROR;
            }
            json_object_set_new(o, "keys", keys);
        }
    }
    return CTL_EXIT_OK;
}

static int export_policies(ctl_export_t *x, json_t *doc)
{
    nebula_dbd_rows_t rows;
    json_t *list = json_array(), *spec;
    int i;

    json_object_set_new(doc, "policies", list);
    if (ctl_select(x->ctl, x->ctl->pool,
                   "SELECT name, spec FROM gov_policies ORDER BY name", 0, NULL,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *t = rows.rows[i][1];

        spec = t ? nebula_json_parse(x->ctl->pool, t, strlen(t), 0, NULL) : NULL;
        if (!json_is_object(spec)) {
            ctl_error("policy %s: its stored spec is not a JSON object", rows.rows[i][0]);
            return CTL_EXIT_ERROR;
        }
        json_array_append(list, spec);
    }
    return CTL_EXIT_OK;
}

static int run_export(ctl_export_t *x)
{
    json_t *doc = json_object();
    struct stat st;
    char *text;
    int code = CTL_EXIT_OK;

    if (x->with_keys) {
        if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
            fchmod(STDOUT_FILENO, S_IRUSR | S_IWUSR);
        }
        fprintf(stderr,
                "nebulactl: warning: --with-keys writes the upstream keys in "
                "clear: keep the file private (mode 600) and delete it after use\n");
    }
    json_object_set_new(doc, "version", json_integer(CTL_EXPORT_VERSION));
    if (x->channels) {
        code = export_channels(x, doc);
    }
    if (code == CTL_EXIT_OK && x->policies) {
        code = export_policies(x, doc);
    }
    if (code == CTL_EXIT_OK) {
        text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text == NULL) {
            ctl_error("cannot write the document");
            code = CTL_EXIT_ERROR;
        }
        else {
            fputs(text, stdout);
            fputc('\n', stdout);
            free(text);
        }
    }
    json_decref(doc);
    return code;
}

int ctl_export_main(ctl_t *ctl, int argc, const char *const *argv)
{
    ctl_export_t x;
    int import = strcmp(argv[1], "import") == 0, code;
    const char *err;

    memset(&x, 0, sizeof(x));
    x.ctl = ctl;
    x.channels = x.policies = 1;
    x.secret_env = "CRYPTO_SECRET";
    if ((code = ctl_getopt(ctl, argc, argv, export_options, export_apply, &x)) !=
            CTL_EXIT_OK ||
        (code = ctl_dsn_settle(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (import && (x.with_keys)) {
        ctl_error("--with-keys is an export option (import takes the keys the file has)");
        return CTL_EXIT_USAGE;
    }
    if (!import && (x.file || x.dry_run || x.prune || x.allow_private)) {
        ctl_error("--file, --dry-run, --prune and --allow-private are import options");
        return CTL_EXIT_USAGE;
    }
    if (import && x.file == NULL) {
        ctl_error("import: give --file FILE (- for stdin)");
        return CTL_EXIT_USAGE;
    }
    if (!import && x.with_keys && (code = ctl_export_keyring(&x)) != CTL_EXIT_OK) {
        return code;
    }
    if ((code = ctl_db_connect(ctl)) != CTL_EXIT_OK) {
        return code;
    }
    if (nebula_dbd_sqlite_init(ctl->driver, ctl->handle, 0, &err, ctl->pool) != 0) {
        ctl_error("%s", err);
        ctl_db_close(ctl);
        return CTL_EXIT_ERROR;
    }
    code = import ? ctl_import_run(&x) : run_export(&x);
    ctl_db_close(ctl);
    return code;
}

/* ctl_export_import.c: `nebulactl import`: apply a document of `nebulactl
 * export` by name, in one transaction: create what is missing, update what
 * differs, leave what is equal (so a second run changes nothing), and with
 * --prune delete the channels / policies the document lacks (only the
 * kinds it carries). --dry-run prints the same plan and writes nothing.
 *
 *   nebulactl import --file FILE [--dry-run] [--prune] [--allow-private]
 *                    [--what channels,policies] [--secret-env VAR] DB
 *
 * The whole document is checked before anything is written; a fault names
 * its place ("channels[2].models: ..."). Policies are compiled with the
 * governance engine (nebula_gov_policy_compile), as the admin API does, and
 * stored in its canonical form. Channel URLs (base_url, proxy) must not
 * reach loopback, private, link-local or multicast addresses (the ranges of
 * relay_ssrf.c; NebulaUpstreamAllow is a server setting the CLI does not
 * read) unless --allow-private. Upstream keys (a channel's "keys", when
 * present) are sealed under CRYPTO_SECRET (--secret-env); without "keys" a
 * channel's stored keys are left alone. Abilities are rebuilt from
 * channel_groups x models, as relay_abilities_rebuild() does. A running
 * gateway sees the changes when its caches expire (NebulaCacheTTL), or at
 * once after a graceful restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_uri.h>
#include <apr_network_io.h>
#include <apr_file_io.h>
#include <apr_time.h>

#include "ctl_export.h"
#include "nebula_json.h"
#include "nebula_gov_policy.h"

static const char *const kinds[] = {"openai",    "azure",  "openai-compatible",
                                    "anthropic", "gemini", NULL};
static const char *const key_modes[] = {"round_robin", "random", NULL};
static const char *const statuses[] = {"enabled", "disabled", "auto_disabled", NULL};

typedef struct {
    ctl_export_t *x;
    apr_pool_t *p;
    const char *err; /* the first fault of the document */
    int created, updated, unchanged, deleted;
} imp_t;

static int one_of(const char *s, const char *const *list)
{
    for (; *list; ++list) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static int fault(imp_t *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fault(imp_t *im, const char *fmt, ...)
{
    va_list ap;

    if (im->err == NULL) {
        va_start(ap, fmt);
        im->err = apr_pvsprintf(im->p, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* ---- the SSRF check ------------------------------------------------------ */

static const char *blocked_v4(const unsigned char *b)
{
    if (b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 100 && (b[1] & 0xc0) == 64) ||
        (b[0] == 169 && b[1] == 254) || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
        (b[0] == 192 && b[1] == 168) || (b[0] == 198 && (b[1] & 0xfe) == 18) ||
        b[0] >= 224) {
        return "a loopback, private, link-local, multicast or reserved address";
    }
    return NULL;
}

static const char *blocked_addr(apr_sockaddr_t *sa)
{
    const unsigned char *b = sa->ipaddr_ptr;
    static const unsigned char zero[10] = {0};

    if (sa->family == APR_INET) {
        return blocked_v4(b);
    }
    if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff) {
        return blocked_v4(b + 12); /* v4-mapped */
    }
    if (memcmp(b, zero, 10) == 0 && b[10] == 0 && b[11] == 0 && b[12] == 0 &&
        b[13] == 0 && b[14] == 0 && b[15] <= 1) {
        return "the unspecified or loopback address";
    }
    if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
        b[0] == 0xff) {
        return "a unique-local, link-local or multicast address";
    }
    return NULL;
}

/* NULL when @a url may be used, else why not. */
static const char *url_refused(imp_t *im, const char *url)
{
    apr_uri_t u;
    apr_sockaddr_t *sa;
    const char *why;

    if (apr_uri_parse(im->p, url, &u) != APR_SUCCESS || u.scheme == NULL ||
        u.hostname == NULL || *u.hostname == '\0') {
        return "not an absolute URL with a host";
    }
    if (strcasecmp(u.scheme, "http") && strcasecmp(u.scheme, "https") &&
        strcasecmp(u.scheme, "socks5") && strcasecmp(u.scheme, "socks5h")) {
        return "the scheme is not http or https";
    }
    if (im->x->allow_private) {
        return NULL;
    }
    if (apr_sockaddr_info_get(&sa, u.hostname, APR_UNSPEC, 0, 0, im->p) != APR_SUCCESS) {
        return apr_psprintf(im->p,
                            "the host %s does not resolve (--allow-private skips "
                            "the check)",
                            u.hostname);
    }
    for (; sa != NULL; sa = sa->next) {
        if ((why = blocked_addr(sa)) != NULL) {
            return apr_psprintf(im->p, "%s resolves to %s (--allow-private allows it)",
                                u.hostname, why);
        }
    }
    return NULL;
}

/* ---- checking the document ---------------------------------------------- */

/* An array of distinct non-empty strings (@a min entries at least). */
static int str_list(imp_t *im, const char *where, json_t *v, size_t min)
{
    size_t i, j;
    json_t *e;

    if (!json_is_array(v) || json_array_size(v) < min) {
        return fault(im, "%s: an array of %s strings", where, min ? "one or more" : "");
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            json_string_length(e) > 255) {
            return fault(im, "%s[%d]: a string of 1 to 255 characters", where, (int)i);
        }
        for (j = 0; j < i; ++j) {
            if (json_equal(e, json_array_get(v, j))) {
                return fault(im, "%s[%d]: '%s' twice", where, (int)i,
                             json_string_value(e));
            }
        }
    }
    return 1;
}

/* Default a missing member. */
static void dflt(json_t *o, const char *key, json_t *v)
{
    if (json_object_get(o, key) == NULL) {
        json_object_set_new(o, key, v);
    }
    else {
        json_decref(v);
    }
}

static int check_str(imp_t *im, const char *at, json_t *o, const char *key,
                     const char *const *allowed, int nullable)
{
    json_t *v = json_object_get(o, key);

    if (nullable && json_is_null(v)) {
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) > 1024) {
        return fault(im, "%s.%s: a string%s", at, key, nullable ? " or null" : "");
    }
    if (allowed && !one_of(json_string_value(v), allowed)) {
        return fault(im, "%s.%s: '%s' is not one of the allowed values", at, key,
                     json_string_value(v));
    }
    return 1;
}

static int check_int(imp_t *im, const char *at, json_t *o, const char *key,
                     json_int_t min, json_int_t max)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        return fault(
            im, "%s.%s: a whole number from %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT,
            at, key, (apr_int64_t)min, (apr_int64_t)max);
    }
    return 1;
}

/* Check channel @a i of the document and fill in its defaults. */
static int check_channel(imp_t *im, size_t i, json_t *c)
{
    static const char *const members[] = {"name",
                                          "kind",
                                          "base_url",
                                          "models",
                                          "model_mapping",
                                          "channel_groups",
                                          "priority",
                                          "weight",
                                          "status",
                                          "header_override",
                                          "timeout_ms",
                                          "auto_disable",
                                          "key_mode",
                                          "proxy",
                                          "test_model",
                                          "keys",
                                          NULL};
    static const char *const nullable[] = {"proxy", "test_model", NULL};
    const char *at = apr_psprintf(im->p, "channels[%d]", (int)i), *key, *why;
    json_t *v;
    size_t k2;
    int k;

    if (!json_is_object(c)) {
        return fault(im, "%s: an object", at);
    }
    json_object_foreach(c, key, v)
    {
        if (!one_of(key, members)) {
            return fault(im, "%s: unknown member '%s'", at, key);
        }
    }
    v = json_object_get(c, "name");
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255) {
        return fault(im, "%s.name: a string of 1 to 255 characters", at);
    }
    at = apr_psprintf(im->p, "channels[%d] (%s)", (int)i, json_string_value(v));
    dflt(c, "base_url", json_string(""));
    dflt(c, "model_mapping", json_null());
    dflt(c, "channel_groups", json_pack("[s]", "default"));
    dflt(c, "priority", json_integer(0));
    dflt(c, "weight", json_integer(1));
    dflt(c, "status", json_string("enabled"));
    dflt(c, "header_override", json_null());
    dflt(c, "timeout_ms", json_integer(0));
    dflt(c, "auto_disable", json_true());
    dflt(c, "key_mode", json_string("round_robin"));
    dflt(c, "proxy", json_null());
    dflt(c, "test_model", json_null());
    for (k = 0; nullable[k] != NULL; ++k) {
        v = json_object_get(c, nullable[k]);
        if (json_is_string(v) && json_string_length(v) == 0) {
            json_object_set_new(c, nullable[k], json_null()); /* as export writes it */
        }
    }
    if (!check_str(im, at, c, "kind", kinds, 0) ||
        !check_str(im, at, c, "base_url", NULL, 0) ||
        !check_str(im, at, c, "status", statuses, 0) ||
        !check_str(im, at, c, "key_mode", key_modes, 0) ||
        !check_str(im, at, c, "proxy", NULL, 1) ||
        !check_str(im, at, c, "test_model", NULL, 1) ||
        !check_int(im, at, c, "priority", -1000000000, 1000000000) ||
        !check_int(im, at, c, "weight", 0, 1000000) ||
        !check_int(im, at, c, "timeout_ms", 0, 86400000) ||
        !str_list(im, apr_pstrcat(im->p, at, ".models", NULL),
                  json_object_get(c, "models"), 1) ||
        !str_list(im, apr_pstrcat(im->p, at, ".channel_groups", NULL),
                  json_object_get(c, "channel_groups"), 1)) {
        return 0;
    }
    json_array_foreach(json_object_get(c, "channel_groups"), k2, v)
    {
        const char *g = json_string_value(v);

        if (strlen(g) > 64 ||
            strspn(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_.-") != strlen(g)) {
            return fault(im, "%s.channel_groups[%d]: '%s' is not a valid group name", at,
                         (int)k2, g);
        }
    }
    if (!json_is_boolean(json_object_get(c, "auto_disable"))) {
        return fault(im, "%s.auto_disable: true or false", at);
    }
    if (!json_is_null(v = json_object_get(c, "model_mapping")) && !json_is_object(v)) {
        return fault(im, "%s.model_mapping: an object or null", at);
    }
    if (!json_is_null(v = json_object_get(c, "header_override")) && !json_is_object(v)) {
        return fault(im, "%s.header_override: an object or null", at);
    }
    if ((v = json_object_get(c, "keys")) != NULL &&
        !str_list(im, apr_pstrcat(im->p, at, ".keys", NULL), v, 0)) {
        return 0;
    }
    v = json_object_get(c, "base_url");
    if (json_string_length(v) > 0 && (why = url_refused(im, json_string_value(v)))) {
        return fault(im, "%s.base_url: %s", at, why);
    }
    v = json_object_get(c, "proxy");
    if (json_is_string(v) && json_string_length(v) > 0 &&
        (why = url_refused(im, json_string_value(v)))) {
        return fault(im, "%s.proxy: %s", at, why);
    }
    return 1;
}

/* Names of @a list's objects (member "name") are distinct. */
static int names_distinct(imp_t *im, const char *what, json_t *list)
{
    apr_hash_t *seen = apr_hash_make(im->p);
    json_t *o;
    size_t i;

    json_array_foreach(list, i, o)
    {
        const char *n = json_string_value(json_object_get(o, "name"));

        if (apr_hash_get(seen, n, APR_HASH_KEY_STRING)) {
            return fault(im, "%s[%d]: the name '%s' comes twice", what, (int)i, n);
        }
        apr_hash_set(seen, n, APR_HASH_KEY_STRING, "");
    }
    return 1;
}

/* Compile each policy; replace it by its canonical spec. */
static int check_policies(imp_t *im, json_t *list)
{
    json_t *spec;
    size_t i;

    json_array_foreach(list, i, spec)
    {
        const nebula_gov_policy_t *pol;
        const char *err = NULL;

        if (!json_is_object(spec)) {
            return fault(im, "policies[%d]: an object", (int)i);
        }
        if ((pol = nebula_gov_policy_compile(im->p, spec, &err)) == NULL) {
            return fault(im, "policies[%d]: %s", (int)i,
                         err ? err : "not a valid policy");
        }
        json_array_set_new(list, i, nebula_gov_policy_spec(pol));
    }
    return names_distinct(im, "policies", list);
}

static json_t *read_doc(imp_t *im)
{
    apr_file_t *f;
    apr_status_t rv;
    apr_size_t len = 0, n;
    char *buf = NULL, chunk[65536], errbuf[256];
    const char *err = NULL;
    json_t *doc;

    rv = strcmp(im->x->file, "-") == 0 ? apr_file_open_stdin(&f, im->p)
                                       : apr_file_open(&f, im->x->file, APR_FOPEN_READ,
                                                       APR_FPROT_OS_DEFAULT, im->p);
    if (rv != APR_SUCCESS) {
        fault(im, "cannot open %s: %s", im->x->file,
              apr_strerror(rv, errbuf, sizeof(errbuf)));
        return NULL;
    }
    do {
        n = sizeof(chunk);
        rv = apr_file_read(f, chunk, &n);
        if (n > 0) {
            char *more = apr_palloc(im->p, len + n + 1);

            if (len > 0) { /* buf is NULL before the first piece */
                memcpy(more, buf, len);
            }
            memcpy(more + len, chunk, n);
            buf = more, len += n;
        }
    } while (rv == APR_SUCCESS && len < 64 * 1024 * 1024);
    if (len == 0) {
        fault(im, "%s is empty", im->x->file);
        return NULL;
    }
    if ((doc = nebula_json_parse(
             im->p, buf, len, NEBULA_JSON_CONTAINER_ONLY | NEBULA_JSON_REJECT_DUPLICATES,
             &err)) == NULL) {
        fault(im, "%s is not JSON: %s", im->x->file, err ? err : "empty");
        return NULL;
    }
    return doc;
}

static int check_doc(imp_t *im, json_t *doc)
{
    json_t *v, *list;
    const char *key;
    size_t i;

    if (!json_is_object(doc)) {
        return fault(im,
                     "the document is not an object (write it with nebulactl export)");
    }
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "version") && strcmp(key, "channels") &&
            strcmp(key, "policies")) {
            return fault(im, "unknown member '%s' at the top level", key);
        }
    }
    v = json_object_get(doc, "version");
    if (!json_is_integer(v) || json_integer_value(v) != CTL_EXPORT_VERSION) {
        return fault(im, "version: this nebulactl reads version %d documents",
                     CTL_EXPORT_VERSION);
    }
    if ((list = json_object_get(doc, "channels")) != NULL) {
        if (!json_is_array(list)) {
            return fault(im, "channels: an array");
        }
        json_array_foreach(list, i, v)
        {
            if (!check_channel(im, i, v)) {
                return 0;
            }
        }
        if (!names_distinct(im, "channels", list)) {
            return 0;
        }
    }
    if ((list = json_object_get(doc, "policies")) != NULL) {
        if (!json_is_array(list)) {
            return fault(im, "policies: an array");
        }
        return check_policies(im, list);
    }
    return 1;
}

/* ---- applying it ----------------------------------------------------------- */

static const char *jtext(imp_t *im, json_t *v)
{
    char *s;
    const char *out;

    if (json_is_null(v)) {
        return NULL;
    }
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    out = apr_pstrdup(im->p, s ? s : "null");
    free(s);
    return out;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k)); /* NULL for null */
}

static const char *jint(imp_t *im, json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    if (json_is_boolean(v)) {
        return json_is_true(v) ? "1" : "0";
    }
    return apr_psprintf(im->p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(v));
}

/* The stored keys of channel @a id, opened, equal to @a keys? 1 yes. */
static int keys_equal(imp_t *im, const char *id, json_t *keys)
{
    nebula_dbd_rows_t rows;
    const char *args[1] = {id}, *aad = ctl_export_key_aad(im->p, id);
    int i;

    if (ctl_select(im->x->ctl, im->p,
                   "SELECT key_ciphertext FROM channel_keys WHERE channel_id = %lld "
                   "ORDER BY id",
                   1, args, &rows) != CTL_EXIT_OK ||
        (size_t)rows.nrows != json_array_size(keys)) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        char *plain;

        if (nebula_crypto_open(im->p, im->x->kr, rows.rows[i][0], aad, strlen(aad),
                               &plain, NULL) != APR_SUCCESS ||
            strcmp(plain, json_string_value(json_array_get(keys, i))) != 0) {
            return 0;
        }
    }
    return 1;
}

static const char *mask_key(apr_pool_t *p, const char *k)
{
    apr_size_t n = strlen(k);

    if (n >= 16) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 5), "\xe2\x80\xa6", k + n - 4, NULL);
    }
    if (n >= 8) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 2), "\xe2\x80\xa6", k + n - 2, NULL);
    }
    return "\xe2\x80\xa6";
}

static int write_keys(imp_t *im, const char *id, json_t *keys, const char *now)
{
    const char *aad = ctl_export_key_aad(im->p, id), *args[5];
    json_t *k;
    size_t i;

    args[0] = id;
    if (ctl_exec(im->x->ctl, im->p, "DELETE FROM channel_keys WHERE channel_id = %lld", 1,
                 args, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    json_array_foreach(keys, i, k)
    {
        const char *plain = json_string_value(k), *sealed;

        if (nebula_crypto_seal(im->p, im->x->kr, plain, strlen(plain), aad, strlen(aad),
                               &sealed) != APR_SUCCESS) {
            ctl_error("cannot seal an upstream key");
            return CTL_EXIT_ERROR;
        }
        args[1] = sealed, args[2] = mask_key(im->p, plain), args[3] = now;
        if (ctl_exec(im->x->ctl, im->p,
                     "INSERT INTO channel_keys (channel_id, key_ciphertext, key_version, "
                     "status, cooldown_until, failures, key_masked, created_at) VALUES "
                     "(%lld, %s, 1, 'enabled', 0, 0, %s, %lld)",
                     4, args, NULL) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

static int write_abilities(imp_t *im, const char *id, json_t *c)
{
    json_t *g, *m, *groups = json_object_get(c, "channel_groups"),
                   *models = json_object_get(c, "models");
    const char *args[6];
    size_t i, j;

    args[0] = id;
    if (ctl_exec(im->x->ctl, im->p, "DELETE FROM abilities WHERE channel_id = %lld", 1,
                 args, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    json_array_foreach(groups, i, g)
    {
        json_array_foreach(models, j, m)
        {
            args[0] = json_string_value(g), args[1] = json_string_value(m), args[2] = id;
            args[3] = strcmp(jstr(c, "status"), "enabled") ? "0" : "1";
            args[4] = jint(im, c, "priority"), args[5] = jint(im, c, "weight");
            if (ctl_exec(im->x->ctl, im->p,
                         "INSERT INTO abilities (user_group, model, channel_id, enabled, "
                         "priority, weight) VALUES (%s, %s, %lld, %lld, %lld, %lld)",
                         6, args, NULL) != CTL_EXIT_OK) {
                return CTL_EXIT_ERROR;
            }
        }
    }
    return CTL_EXIT_OK;
}

/* Insert (id NULL) or update channel @a c; its id into *@a out_id. */
static int write_channel(imp_t *im, json_t *c, const char *id, const char *now)
{
    const char *a[18];
    nebula_dbd_rows_t rows;
    int code;

    a[0] = jstr(c, "kind"), a[1] = jstr(c, "base_url");
    a[2] = jtext(im, json_object_get(c, "models"));
    a[3] = jtext(im, json_object_get(c, "model_mapping"));
    a[4] = jtext(im, json_object_get(c, "channel_groups"));
    a[5] = jint(im, c, "priority"), a[6] = jint(im, c, "weight"),
    a[7] = jstr(c, "status");
    a[8] = jtext(im, json_object_get(c, "header_override"));
    a[9] = jint(im, c, "timeout_ms"), a[10] = jint(im, c, "auto_disable");
    a[11] = jstr(c, "key_mode"), a[12] = jstr(c, "proxy"), a[13] = jstr(c, "test_model");
    a[14] = now, a[15] = jstr(c, "name");
    if (id != NULL) {
        a[16] = id;
        code =
            ctl_exec(im->x->ctl, im->p,
                     "UPDATE channels SET kind = %s, base_url = %s, models = %s, "
                     "model_mapping = %s, channel_groups = %s, priority = %lld, weight = "
                     "%lld, status = %s, header_override = %s, timeout_ms = %lld, "
                     "auto_disable = %lld, key_mode = %s, proxy = %s, test_model = %s, "
                     "updated_at = %lld, name = %s WHERE id = %lld",
                     17, a, NULL);
    }
    else {
        code =
            ctl_exec(im->x->ctl, im->p,
                     "INSERT INTO channels (kind, base_url, models, model_mapping, "
                     "channel_groups, priority, weight, status, header_override, "
                     "timeout_ms, auto_disable, key_mode, proxy, test_model, "
                     "status_changed_at, name, created_at, updated_at) VALUES (%s, %s, "
                     "%s, %s, %s, %lld, %lld, %s, %s, %lld, %lld, %s, %s, %s, %lld, %s, "
                     "%lld, %lld)",
                     18, (a[16] = now, a[17] = now, a), NULL);
        if (code == CTL_EXIT_OK) {
            code = ctl_select(im->x->ctl, im->p,
                              "SELECT id FROM channels WHERE name = %s ORDER BY id DESC",
                              1, a + 15, &rows);
            id = code == CTL_EXIT_OK && rows.nrows > 0 ? rows.rows[0][0] : NULL;
            code = id ? code : CTL_EXIT_ERROR;
        }
    }
    if (code == CTL_EXIT_OK) {
        code = write_abilities(im, id, c);
    }
    if (code == CTL_EXIT_OK && json_object_get(c, "keys")) {
        code = write_keys(im, id, json_object_get(c, "keys"), now);
    }
    return code;
}

/* apply_channels(): a name that more than one channel has */
static const char dup_marker = 0;

static void say(imp_t *im, const char *kind, const char *name, const char *what)
{
    printf("%s%s %s: %s\n", im->x->dry_run ? "would: " : "", kind, name, what);
}

static int apply_channels(imp_t *im, json_t *list, const char *now)
{
    nebula_dbd_rows_t rows;
    apr_hash_t *have = apr_hash_make(im->p), *want = apr_hash_make(im->p);
    json_t *c;
    size_t i;
    int r;

    if (ctl_select(im->x->ctl, im->p,
                   "SELECT " CTL_CHANNEL_COLS " FROM channels ORDER BY name, id", 0, NULL,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (r = 0; r < rows.nrows; ++r) {
        /* a name twice in the database: the document cannot say which */
        apr_hash_set(have, rows.rows[r][1], APR_HASH_KEY_STRING,
                     apr_hash_get(have, rows.rows[r][1], APR_HASH_KEY_STRING)
                         ? (void *)&dup_marker
                         : (void *)rows.rows[r]);
    }
    json_array_foreach(list, i, c)
    {
        const char *name = jstr(c, "name"), *err = NULL;
        const char *const *row = apr_hash_get(have, name, APR_HASH_KEY_STRING);
        json_t *keys = json_object_get(c, "keys"), *cur, *cmp;
        int same;

        apr_hash_set(want, name, APR_HASH_KEY_STRING, "");
        if ((const void *)row == (const void *)&dup_marker) {
            ctl_error("the database has two channels named '%s': rename one first", name);
            return CTL_EXIT_ERROR;
        }
        if (row == NULL) {
            say(im, "channel", name, "create");
            im->created++;
            if (!im->x->dry_run && write_channel(im, c, NULL, now) != CTL_EXIT_OK) {
                return CTL_EXIT_ERROR;
            }
            continue;
        }
        if ((cur = ctl_export_channel(im->p, row, &err)) == NULL) {
            ctl_error("%s", err);
            return CTL_EXIT_ERROR;
        }
        cmp = json_deep_copy(c);
        json_object_del(cmp, "keys");
        same = json_equal(cur, cmp) && (keys == NULL || keys_equal(im, row[0], keys));
        json_decref(cur), json_decref(cmp);
        if (same) {
            im->unchanged++;
            continue;
        }
        say(im, "channel", name, "update");
        im->updated++;
        if (!im->x->dry_run && write_channel(im, c, row[0], now) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    for (r = 0; im->x->prune && r < rows.nrows; ++r) {
        const char *args[1] = {rows.rows[r][0]};

        if (apr_hash_get(want, rows.rows[r][1], APR_HASH_KEY_STRING)) {
            continue;
        }
        say(im, "channel", rows.rows[r][1], "delete");
        im->deleted++;
        if (!im->x->dry_run &&
            (ctl_exec(im->x->ctl, im->p, "DELETE FROM abilities WHERE channel_id = %lld",
                      1, args, NULL) != CTL_EXIT_OK ||
             ctl_exec(im->x->ctl, im->p,
                      "DELETE FROM channel_keys WHERE channel_id = %lld", 1, args,
                      NULL) != CTL_EXIT_OK ||
             ctl_exec(im->x->ctl, im->p, "DELETE FROM channels WHERE id = %lld", 1, args,
                      NULL) != CTL_EXIT_OK)) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

static int apply_policies(imp_t *im, json_t *list, const char *now)
{
    nebula_dbd_rows_t rows;
    apr_hash_t *have = apr_hash_make(im->p), *want = apr_hash_make(im->p);
    json_t *spec;
    size_t i;
    int r;

    if (ctl_select(im->x->ctl, im->p,
                   "SELECT id, name, spec FROM gov_policies ORDER BY name", 0, NULL,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (r = 0; r < rows.nrows; ++r) {
        apr_hash_set(have, rows.rows[r][1], APR_HASH_KEY_STRING, rows.rows[r]);
    }
    json_array_foreach(list, i, spec)
    {
        const char *cerr = NULL; /* checked by check_policies() */
        const nebula_gov_policy_t *pol = nebula_gov_policy_compile(im->p, spec, &cerr);
        const nebula_gov_policy_info_t *info = nebula_gov_policy_info(pol);
        const char *const *row = apr_hash_get(have, info->name, APR_HASH_KEY_STRING);
        const char *a[8];
        json_t *cur;

        apr_hash_set(want, info->name, APR_HASH_KEY_STRING, "");
        a[0] = info->name, a[1] = info->description ? info->description : "";
        a[2] = apr_itoa(im->p, info->priority), a[3] = info->enabled ? "1" : "0";
        a[4] = info->shadow ? "1" : "0", a[5] = jtext(im, spec), a[6] = a[7] = now;
        if (row != NULL) {
            cur =
                row[2] ? nebula_json_parse(im->p, row[2], strlen(row[2]), 0, NULL) : NULL;
            if (cur != NULL && json_equal(cur, spec)) {
                im->unchanged++;
                continue;
            }
        }
        say(im, "policy", info->name, row ? "update" : "create");
        row ? im->updated++ : im->created++;
        if (im->x->dry_run) {
            continue;
        }
        if (row != NULL) {
            a[7] = row[0];
            if (ctl_exec(
                    im->x->ctl, im->p,
                    "UPDATE gov_policies SET name = %s, description = %s, priority = "
                    "%lld, enabled = %lld, shadow = %lld, spec = %s, updated_at = %lld "
                    "WHERE id = %lld",
                    8, a, NULL) != CTL_EXIT_OK) {
                return CTL_EXIT_ERROR;
            }
        }
        else if (ctl_exec(
                     im->x->ctl, im->p,
                     "INSERT INTO gov_policies (name, description, priority, enabled, "
                     "shadow, spec, created_at, updated_at) VALUES (%s, %s, %lld, "
                     "%lld, %lld, %s, %lld, %lld)",
                     8, a, NULL) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    for (r = 0; im->x->prune && r < rows.nrows; ++r) {
        const char *args[1] = {rows.rows[r][0]};

        if (apr_hash_get(want, rows.rows[r][1], APR_HASH_KEY_STRING)) {
            continue;
        }
        say(im, "policy", rows.rows[r][1], "delete");
        im->deleted++;
        if (!im->x->dry_run &&
            ctl_exec(im->x->ctl, im->p, "DELETE FROM gov_policies WHERE id = %lld", 1,
                     args, NULL) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* Every group a channel names exists (or is "default"), as the admin API
 * requires (admin_groups_check_name). */
static int groups_exist(imp_t *im, json_t *chans)
{
    nebula_dbd_rows_t rows;
    json_t *c, *g;
    size_t i, j;

    json_array_foreach(chans, i, c)
    {
        json_array_foreach(json_object_get(c, "channel_groups"), j, g)
        {
            const char *name = json_string_value(g);

            if (strcmp(name, "default") == 0) {
                continue;
            }
            if (ctl_select(im->x->ctl, im->p,
                           "SELECT name FROM user_groups WHERE name = %s", 1, &name,
                           &rows) != CTL_EXIT_OK) {
                return fault(im, "cannot read user_groups");
            }
            if (rows.nrows == 0) {
                return fault(im,
                             "channels[%d] (%s).channel_groups: the group '%s' does not "
                             "exist (create it first: POST /api/groups)",
                             (int)i, jstr(c, "name"), name);
            }
        }
    }
    return 1;
}

static int needs_keys(json_t *doc)
{
    json_t *c;
    size_t i;

    json_array_foreach(json_object_get(doc, "channels"), i, c)
    {
        if (json_object_get(c, "keys")) {
            return 1;
        }
    }
    return 0;
}

int ctl_import_run(ctl_export_t *x)
{
    ctl_t *ctl = x->ctl;
    imp_t im;
    json_t *doc, *chans, *pols;
    apr_dbd_transaction_t *trans = NULL;
    const char *now;
    int code = CTL_EXIT_OK;

    memset(&im, 0, sizeof(im));
    im.x = x;
    im.p = ctl->pool;
    if ((doc = read_doc(&im)) == NULL || !check_doc(&im, doc)) {
        ctl_error("import: %s; nothing was changed", im.err);
        return CTL_EXIT_ERROR;
    }
    chans = x->channels ? json_object_get(doc, "channels") : NULL;
    pols = x->policies ? json_object_get(doc, "policies") : NULL;
    if (chans && !groups_exist(&im, chans)) {
        ctl_error("import: %s; nothing was changed", im.err);
        return CTL_EXIT_ERROR;
    }
    if (chans && needs_keys(doc) && (code = ctl_export_keyring(x)) != CTL_EXIT_OK) {
        return code;
    }
    now = apr_psprintf(im.p, "%" APR_INT64_T_FMT, (apr_int64_t)(apr_time_now() / 1000));
    if (!x->dry_run &&
        apr_dbd_transaction_start(ctl->driver, im.p, ctl->handle, &trans) != 0) {
        ctl_error("database: cannot begin a transaction");
        return CTL_EXIT_ERROR;
    }
    if (chans) {
        code = apply_channels(&im, chans, now);
    }
    if (code == CTL_EXIT_OK && pols) {
        code = apply_policies(&im, pols, now);
    }
    if (trans != NULL) {
        if (code != CTL_EXIT_OK) {
            apr_dbd_transaction_mode_set(ctl->driver, trans,
                                         APR_DBD_TRANSACTION_ROLLBACK);
        }
        if (apr_dbd_transaction_end(ctl->driver, im.p, trans) != 0 &&
            code == CTL_EXIT_OK) {
            ctl_error("database: commit failed");
            code = CTL_EXIT_ERROR;
        }
    }
    if (code != CTL_EXIT_OK) {
        ctl_error("import failed; nothing was changed");
        return code;
    }
    printf("%s%d created, %d updated, %d unchanged, %d deleted\n",
           x->dry_run ? "dry run: " : "", im.created, im.updated, im.unchanged,
           im.deleted);
    return CTL_EXIT_OK;
}

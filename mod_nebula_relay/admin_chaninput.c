/* admin_chaninput.c: reading and checking the body of POST and PATCH
 * /api/channels: kinds, base URL (http/https, no query but an Azure
 * channel's ?api-version=), models and their mapping (no cycles), groups,
 * header overrides (no framing or hop-by-hop headers), proxy URL, limits.
 * The base URL and proxy an admin gives must pass the SSRF check
 * (relay_ssrf.c: no loopback, private, link-local ... address unless
 * NebulaUpstreamAllow allows it); a provider's default endpoint is not
 * checked here (a constant; the relay checks every connection anyway).
 * Used by admin_channels.c only. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <apr_hash.h>
#include "relay_admin.h"

static const char *const kinds[] = {"openai",    "azure",  "openai-compatible",
                                    "anthropic", "gemini", NULL};
static const char *const key_modes[] = {"round_robin", "random", NULL};
static const char *const settable[] = {"enabled", "disabled", NULL};

/* The public endpoint of a provider, used when base_url is not given. */
static const char *default_base_url(const char *kind)
{
    if (strcmp(kind, "openai") == 0) {
        return "https://api.openai.com";
    }
    if (strcmp(kind, "anthropic") == 0) {
        return "https://api.anthropic.com";
    }
    if (strcmp(kind, "gemini") == 0) {
        return "https://generativelanguage.googleapis.com";
    }
    return NULL; /* azure, openai-compatible: the operator's own endpoint */
}

/* An http(s) URL with a host, no user info, query or fragment; trailing
 * slashes dropped. NULL when invalid. */
/* "api-version=V": the one query an (Azure) base URL may carry */
static int api_version_query(const char *q)
{
    apr_size_t n;

    if (q == NULL || strncmp(q, "api-version=", 12)) {
        return 0;
    }
    for (q += 12, n = 0; q[n]; ++n) {
        if (!apr_isalnum(q[n]) && q[n] != '-' && q[n] != '.') {
            return 0;
        }
    }
    return n >= 1 && n <= 32;
}

static const char *clean_url(apr_pool_t *p, const char *s, int allow_socks)
{
    apr_uri_t u;
    char *out;

    if (apr_uri_parse(p, s, &u) != APR_SUCCESS || u.scheme == NULL ||
        u.hostname == NULL || *u.hostname == '\0' ||
        (u.query && (allow_socks || !api_version_query(u.query))) || u.fragment || u.user ||
        u.password || (u.port_str && (u.port == 0 || !*u.port_str))) {
        return NULL;
    }
    if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https") &&
        !(allow_socks && !strcmp(u.scheme, "socks5"))) {
        return NULL;
    }
    out = apr_pstrdup(p, s);
    if (u.query) { /* trailing slashes of the path, before the query */
        char *q = strchr(out, '?');
        apr_size_t n = (apr_size_t)(q - out);
        while (n > 0 && out[n - 1] == '/') {
            --n;
        }
        return apr_pstrcat(p, apr_pstrndup(p, out, n), q, NULL);
    }
    while (strlen(out) > 0 && out[strlen(out) - 1] == '/') {
        out[strlen(out) - 1] = '\0';
    }
    return out;
}

/* RFC 9110 token characters, and no header that frames or routes the
 * upstream request. */
static int header_name_ok(const char *k)
{
    static const char *const refused[] = {"host",
                                          "content-length",
                                          "transfer-encoding",
                                          "connection",
                                          "keep-alive",
                                          "upgrade",
                                          "te",
                                          "trailer",
                                          "proxy-connection",
                                          "expect",
                                          NULL};
    const char *s;
    int i;

    for (s = k; *s; ++s) {
        if (!apr_isalnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s)) {
            return 0;
        }
    }
    for (i = 0; refused[i]; ++i) {
        if (strcasecmp(refused[i], k) == 0) {
            return 0;
        }
    }
    return s != k;
}

static void check_headers(admin_req_t *a, json_t *h)
{
    const char *k;
    json_t *v;

    json_object_foreach(h, k, v)
    {
        if (!header_name_ok(k)) {
            admin_invalid(a, "header_override",
                          "'%s' cannot be overridden (not a header "
                          "name, or one that frames the request)",
                          k);
            return;
        }
    }
}

/* A mapping whose chains end: following client -> upstream never returns to
 * a model already seen (a -> a included). */
static void check_mapping(admin_req_t *a, json_t *m)
{
    const char *k;
    json_t *v;

    json_object_foreach(m, k, v)
    {
        apr_hash_t *seen = apr_hash_make(a->r->pool);
        const char *cur = k;
        while (cur) {
            if (apr_hash_get(seen, cur, APR_HASH_KEY_STRING)) {
                admin_invalid(a, "model_mapping",
                              "'model_mapping' has a cycle through '%s'", k);
                return;
            }
            apr_hash_set(seen, cur, APR_HASH_KEY_STRING, "");
            cur = nebula_json_gets(m, cur, NULL);
        }
    }
}

/* The SSRF check of a URL an admin gave (its name resolved now). */
static void check_ssrf(admin_req_t *a, const char *field, const char *url, int flags)
{
    const char *why = relay_ssrf_check_url(a->r->pool, a->r->server, url,
                                           flags | RELAY_SSRF_RESOLVE);

    if (why != NULL) {
        admin_invalid(a, field,
                      "'%s' is refused (SSRF protection): %s; an operator may allow it "
                      "with NebulaUpstreamAllow",
                      field, why);
    }
}

static void read_urls(admin_req_t *a, json_t *b, chan_input_t *in)
{
    const char *s;

    in->st_base_url = admin_field_str(a, b, "base_url", 0, 1024, &s);
    if (in->st_base_url == ADMIN_SET && *s == '\0') {
        in->st_base_url = ADMIN_NULL; /* "": the provider's public endpoint */
    }
    else if (in->st_base_url == ADMIN_SET &&
             (in->base_url = clean_url(a->r->pool, s, 0)) == NULL) {
        admin_invalid(a, "base_url",
                      "'base_url' must be an http:// or https:// URL without user, "
                      "fragment or query (an Azure channel's may end in "
                      "?api-version=VERSION)");
    }
    else if (in->st_base_url == ADMIN_SET) {
        check_ssrf(a, "base_url", in->base_url, 0);
    }
    in->st_proxy = admin_field_str(a, b, "proxy", ADMIN_F_NULLABLE, 1024, &s);
    if (in->st_proxy == ADMIN_SET && *s == '\0') {
        in->st_proxy = ADMIN_NULL;
    }
    else if (in->st_proxy == ADMIN_SET &&
             (in->proxy = clean_url(a->r->pool, s, 1)) == NULL) {
        admin_invalid(a, "proxy",
                      "'proxy' must be an http://, https:// or socks5:// URL");
    }
    else if (in->st_proxy == ADMIN_SET) {
        check_ssrf(a, "proxy", in->proxy, RELAY_SSRF_PROXY);
    }
}

static void read_lists(admin_req_t *a, json_t *b, chan_input_t *in, int create)
{
    int req = create ? ADMIN_F_REQUIRED : 0;

    in->st_models = admin_field_strarray(a, b, "models", req, 1000, 255, &in->models);
    if (in->st_models == ADMIN_SET && json_array_size(in->models) == 0) {
        admin_invalid(a, "models", "'models' must list at least one model");
    }
    in->st_mapping = admin_field_strmap(a, b, "model_mapping", ADMIN_F_NULLABLE, 1000,
                                        255, &in->mapping);
    if (in->st_mapping == ADMIN_SET) {
        check_mapping(a, in->mapping);
    }
    in->st_groups = admin_field_strarray(a, b, "channel_groups", 0, 32, 64, &in->groups);
    if (in->st_groups == ADMIN_SET && json_array_size(in->groups) == 0) {
        admin_invalid(a, "channel_groups",
                      "'channel_groups' must list at least one group");
    }
    in->st_headers = admin_field_strmap(a, b, "header_override", ADMIN_F_NULLABLE, 64,
                                        4096, &in->headers);
    if (in->st_headers == ADMIN_SET) {
        check_headers(a, in->headers);
    }
    in->st_keys = admin_field_strarray(a, b, "keys", 0, 100, 8192, &in->keys);
    if (in->st_keys == ADMIN_SET) {
        admin_chankeys_validate(a, in->keys);
    }
}

void admin_chaninput_read(admin_req_t *a, json_t *b, chan_input_t *in, int create)
{
    static const char *const fields[] = {
        "name",       "kind",   "base_url",      "keys",
        "key_mode",   "models", "model_mapping", "channel_groups",
        "priority",   "weight", "status",        "header_override",
        "timeout_ms", "proxy",  "auto_disable",  "test_model",
        NULL};
    int req = create ? ADMIN_F_REQUIRED : 0;

    memset(in, 0, sizeof(*in));
    admin_only_fields(a, b, fields);
    in->st_name = admin_field_str(a, b, "name", req | ADMIN_F_NONEMPTY, 255, &in->name);
    in->st_kind = admin_field_enum(a, b, "kind", req, kinds, &in->kind);
    read_urls(a, b, in);
    in->st_key_mode = admin_field_enum(a, b, "key_mode", 0, key_modes, &in->key_mode);
    read_lists(a, b, in, create);
    in->st_priority =
        admin_field_int(a, b, "priority", 0, -1000000000, 1000000000, &in->priority);
    in->st_weight = admin_field_int(a, b, "weight", 0, 0, 1000000, &in->weight);
    in->st_status = admin_field_enum(a, b, "status", 0, settable, &in->status);
    in->st_timeout = admin_field_int(a, b, "timeout_ms", 0, 0, 86400000, &in->timeout_ms);
    in->st_auto_disable = admin_field_bool(a, b, "auto_disable", 0, &in->auto_disable);
    in->st_test_model = admin_field_str(
        a, b, "test_model", ADMIN_F_NULLABLE | ADMIN_F_NONEMPTY, 255, &in->test_model);
    if (!create && !a->err_status && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
    if (!a->err_status && in->st_groups == ADMIN_SET) {
        admin_groups_check(a, "channel_groups", in->groups);
    }
}

int admin_chaninput_base_url(admin_req_t *a, chan_input_t *in, const char *kind,
                             int create)
{
    if (in->st_base_url == ADMIN_SET) {
        if (strchr(in->base_url, '?') && (kind == NULL || strcmp(kind, "azure"))) {
            return admin_invalid(a, "base_url", "only an Azure channel's base_url may "
                                                "carry ?api-version=VERSION");
        }
        return ADMIN_SET;
    }
    if (!create && in->st_base_url == ADMIN_ABSENT) {
        return ADMIN_ABSENT; /* unchanged, whatever the kind */
    }
    in->base_url = default_base_url(kind);
    if (in->base_url == NULL) {
        return admin_invalid(a, "base_url", "a channel of kind '%s' needs a 'base_url'",
                             kind);
    }
    in->st_base_url = ADMIN_SET;
    return ADMIN_SET;
}

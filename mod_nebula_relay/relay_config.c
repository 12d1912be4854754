/* relay_config.c: mod_nebula_relay's directives and their per-directory
 * create/merge. Every setter validates its argument and names the directive
 * in its error. */
#include <errno.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include "relay_private.h"
#include "relay_admin.h"     /* admin_auth_conf_t */
#include "admin_payments.h" /* pay_money_parse */
#include "relay_health.h"
#include "nebula_ap.h"

#define GET(add, base, f) (((add)->f == RELAY_UNSET) ? (base)->f : (add)->f)

/* A per-directory duration directive: @a slot within [min, max]. */
static const char *dir_duration(cmd_parms *cmd, apr_interval_time_t *slot, const char *arg,
                                apr_interval_time_t min, apr_interval_time_t max)
{
    if (!nebula_ap_duration(arg, min, max, slot)) {
        return apr_psprintf(cmd->pool, "%s: give a duration from %" APR_TIME_T_FMT "ms to %"
                            APR_TIME_T_FMT "s (e.g. 300, 30s, 500ms, 5m)", cmd->cmd->name,
                            apr_time_as_msec(min), apr_time_sec(max));
    }
    return NULL;
}

void *relay_config_create_dir(apr_pool_t *p, char *dir)
{
    relay_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = RELAY_UNSET;
    c->passthrough = NULL;
    c->max_body = RELAY_UNSET;
    c->timeout = RELAY_UNSET;
    c->admin = RELAY_UNSET;
    c->disconnect = RELAY_UNSET;
    c->drain_timeout = RELAY_UNSET;
    c->ping = RELAY_UNSET;
    c->first_byte = RELAY_UNSET;
    c->overhead_header = RELAY_UNSET;
    return c;
}

void *relay_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    relay_dir_conf_t *base = basev, *add = addv;
    relay_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GET(add, base, enabled);
    c->passthrough = add->passthrough ? add->passthrough : base->passthrough;
    c->max_body = GET(add, base, max_body);
    c->timeout = GET(add, base, timeout);
    c->admin = GET(add, base, admin);
    c->disconnect = GET(add, base, disconnect);
    c->drain_timeout = GET(add, base, drain_timeout);
    c->ping = GET(add, base, ping);
    c->first_byte = GET(add, base, first_byte);
    c->overhead_header = GET(add, base, overhead_header);
    return c;
}

const relay_dir_conf_t *relay_config_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &nebula_relay_module);
}

static const char *set_passthrough(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_dir_conf_t *c = dc;
    apr_uri_t uri;

    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || uri.scheme == NULL
        || uri.hostname == NULL
        || (strcmp(uri.scheme, "http") && strcmp(uri.scheme, "https"))) {
        return apr_psprintf(cmd->pool,
                            "NebulaPassThrough: '%s' is not an http:// or https:// URL",
                            arg);
    }
    if (uri.query || uri.fragment) {
        return "NebulaPassThrough: the URL may not carry a query or fragment";
    }
    /* the origin plus an optional path prefix, without a trailing slash */
    c->passthrough = apr_pstrdup(cmd->pool, arg);
    while (*c->passthrough && c->passthrough[strlen(c->passthrough) - 1] == '/') {
        ((char *)c->passthrough)[strlen(c->passthrough) - 1] = '\0';
    }
    return NULL;
}

static const char *set_max_body(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_dir_conf_t *c = dc;
    char *end;
    apr_off_t v;

    if (apr_strtoff(&v, arg, &end, 10) != APR_SUCCESS || *end || v < 1024
        || v > APR_INT64_C(1073741824)) {
        return "NebulaMaxBodySize: give a number of bytes from 1024 to 1073741824";
    }
    c->max_body = v;
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    return dir_duration(cmd, &((relay_dir_conf_t *)dc)->timeout, arg, apr_time_from_msec(1),
                        apr_time_from_sec(86400));
}

static const char *set_disconnect(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_dir_conf_t *c = dc;

    if (!strcasecmp(arg, "drain")) {
        c->disconnect = RELAY_DISCONNECT_DRAIN;
    }
    else if (!strcasecmp(arg, "stop")) {
        c->disconnect = RELAY_DISCONNECT_STOP;
    }
    else {
        return "NebulaStreamDisconnect: give drain or stop";
    }
    return NULL;
}

static const char *set_drain_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    return dir_duration(cmd, &((relay_dir_conf_t *)dc)->drain_timeout, arg,
                        apr_time_from_msec(1), apr_time_from_sec(3600));
}

static const char *set_first_byte(cmd_parms *cmd, void *dc, const char *arg)
{
    return dir_duration(cmd, &((relay_dir_conf_t *)dc)->first_byte, arg,
                        apr_time_from_msec(1), apr_time_from_sec(86400));
}

static const char *set_ping(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_dir_conf_t *c = dc;

    if (!strcasecmp(arg, "off")) {
        c->ping = 0;
        return NULL;
    }
    return dir_duration(cmd, &c->ping, arg, apr_time_from_msec(100), apr_time_from_sec(3600));
}

/* ---- per-server ------------------------------------------------------ */

const admin_auth_conf_t *relay_config_admin(const relay_srv_conf_t *sc)
{
    return &sc->admin;
}

static void merge_admin(admin_auth_conf_t *c, const admin_auth_conf_t *base,
                        const admin_auth_conf_t *add)
{
    c->cookie_secure = GET(add, base, cookie_secure);
    c->session_idle = GET(add, base, session_idle);
    c->trust_remote_user = GET(add, base, trust_remote_user);
    c->remote_user_role = add->remote_user_role ? add->remote_user_role
                                                : base->remote_user_role;
    c->remote_role_env = add->remote_role_env ? add->remote_role_env
                                              : base->remote_role_env;
}

void *relay_config_create_srv(apr_pool_t *p, server_rec *s)
{
    relay_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->admin.cookie_secure = RELAY_UNSET;
    c->admin.session_idle = RELAY_UNSET;
    c->admin.trust_remote_user = RELAY_UNSET;
    c->session_ttl = RELAY_UNSET;
    c->retries = RELAY_UNSET;
    c->budget_ratio_ppm = RELAY_UNSET;
    c->budget_min_per_s = RELAY_UNSET;
    c->cache_ttl = RELAY_UNSET;
    c->adaptive = RELAY_UNSET;
    c->retest = RELAY_UNSET;
    c->json_max_depth = RELAY_UNSET;
    c->pay.rate = RELAY_UNSET;
    c->pay.min_minor = RELAY_UNSET;
    c->pay.max_minor = RELAY_UNSET;
    return c;
}

#define PAYSTR(f) c->pay.f = add->pay.f ? add->pay.f : base->pay.f

static void merge_pay(relay_srv_conf_t *c, const relay_srv_conf_t *base,
                      const relay_srv_conf_t *add)
{
    c->pay.rate = GET(&add->pay, &base->pay, rate);
    c->pay.min_minor = GET(&add->pay, &base->pay, min_minor);
    c->pay.max_minor = GET(&add->pay, &base->pay, max_minor);
    PAYSTR(currency);
    PAYSTR(stripe_key);
    PAYSTR(stripe_whsec);
    PAYSTR(stripe_api);
    PAYSTR(stripe_success);
    PAYSTR(stripe_cancel);
    PAYSTR(epay_url);
    PAYSTR(epay_pid);
    PAYSTR(epay_key);
    PAYSTR(epay_notify);
    PAYSTR(epay_return);
}

void *relay_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    relay_srv_conf_t *base = basev, *add = addv;
    relay_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    merge_admin(&c->admin, &base->admin, &add->admin);
    c->crypto_secret = add->crypto_secret ? add->crypto_secret : base->crypto_secret;
    c->crypto_previous = add->crypto_previous ? add->crypto_previous : base->crypto_previous;
    c->session_secret = add->session_secret ? add->session_secret : base->session_secret;
    c->admin_token = add->admin_token ? add->admin_token : base->admin_token;
    c->session_ttl = GET(add, base, session_ttl);
    c->retries = GET(add, base, retries);
    c->budget_ratio_ppm = GET(add, base, budget_ratio_ppm);
    c->budget_min_per_s = GET(add, base, budget_min_per_s);
    c->cache_ttl = GET(add, base, cache_ttl);
    c->adaptive = GET(add, base, adaptive);
    c->tokenizer_dir = add->tokenizer_dir ? add->tokenizer_dir : base->tokenizer_dir;
    c->retry_status = add->retry_status ? add->retry_status : base->retry_status;
    c->disable_words = add->disable_words ? add->disable_words : base->disable_words;
    c->redis = add->redis ? add->redis : base->redis;
    c->retest = GET(add, base, retest);
    c->azure_version = add->azure_version ? add->azure_version : base->azure_version;
    /* a virtual host's own list replaces the main server's (none: empty) */
    c->upstream_allow = add->upstream_allow ? add->upstream_allow : base->upstream_allow;
    c->json_max_depth = GET(add, base, json_max_depth);
    c->metrics = relay_metrics_merge(p, base->metrics, add->metrics);
    merge_pay(c, base, add);
    return c;
}

relay_srv_conf_t *relay_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &nebula_relay_module);
}

const char *relay_config_post_config(apr_pool_t *pconf, server_rec *s)
{
    for (; s; s = s->next) {
        relay_srv_conf_t *c = relay_config_srv(s);
        admin_auth_conf_t *ac = &c->admin;

        c->session_ttl = c->session_ttl == RELAY_UNSET ? RELAY_DEFAULT_SESSION_TTL
                                                       : c->session_ttl;
        ac->session_idle = ac->session_idle == RELAY_UNSET ? ADMIN_DEFAULT_SESSION_IDLE
                                                           : ac->session_idle;
        ac->cookie_secure = ac->cookie_secure == 1;
        ac->trust_remote_user = ac->trust_remote_user == 1;
        if (ac->remote_user_role && strcmp(ac->remote_user_role, "none") == 0) {
            ac->remote_user_role = NULL; /* "none" set here overrides a global role */
        }
        if (ac->trust_remote_user && c->session_secret == NULL) {
            return "NebulaAdminTrustRemoteUser On needs NebulaSessionSecret (it signs "
                   "the CSRF tokens of remote users)";
        }
        c->retries = c->retries == RELAY_UNSET ? RELAY_DEFAULT_RETRIES : c->retries;
        if (c->budget_ratio_ppm == RELAY_UNSET) {
            c->budget_ratio_ppm = RELAY_DEFAULT_BUDGET_PPM;
        }
        if (c->budget_min_per_s == RELAY_UNSET) {
            c->budget_min_per_s = RELAY_DEFAULT_BUDGET_MIN;
        }
        c->cache_ttl = c->cache_ttl == RELAY_UNSET ? RELAY_DEFAULT_CACHE_TTL : c->cache_ttl;
        c->retest = c->retest == RELAY_UNSET ? RELAY_DEFAULT_RETEST : c->retest;
        c->azure_version = c->azure_version ? c->azure_version : RELAY_DEFAULT_AZURE_VERSION;
        c->json_max_depth = c->json_max_depth == RELAY_UNSET ? RELAY_DEFAULT_JSON_DEPTH
                                                             : c->json_max_depth;
        c->pay.rate = c->pay.rate == RELAY_UNSET ? RELAY_DEFAULT_TOPUP_RATE : c->pay.rate;
        c->pay.min_minor = c->pay.min_minor == RELAY_UNSET ? RELAY_DEFAULT_TOPUP_MIN
                                                           : c->pay.min_minor;
        c->pay.max_minor = c->pay.max_minor == RELAY_UNSET ? RELAY_DEFAULT_TOPUP_MAX
                                                           : c->pay.max_minor;
        c->pay.currency = c->pay.currency ? c->pay.currency : RELAY_DEFAULT_CURRENCY;
        c->pay.stripe_api = c->pay.stripe_api ? c->pay.stripe_api : RELAY_DEFAULT_STRIPE_API;
        if (c->pay.min_minor > c->pay.max_minor) {
            return "NebulaTopupMin is above NebulaTopupMax";
        }
        if (c->crypto_secret && c->keyring == NULL) {
            c->keyring = nebula_crypto_keyring_create(pconf, c->crypto_secret,
                                                      strlen(c->crypto_secret),
                                                      RELAY_KEYRING_VERSION);
            if (c->keyring == NULL) {
                return "NebulaCryptoSecret: cannot derive keys from it";
            }
            if (c->crypto_previous != NULL) {
                nebula_crypto_keyring_t *prev = nebula_crypto_keyring_create(
                    pconf, c->crypto_previous, strlen(c->crypto_previous),
                    RELAY_KEYRING_VERSION);

                if (prev == NULL) {
                    return "NebulaCryptoSecretPrevious: cannot derive keys from it";
                }
                nebula_crypto_keyring_set_previous(c->keyring, prev);
            }
        }
        else if (c->crypto_previous && c->crypto_secret == NULL) {
            return "NebulaCryptoSecretPrevious needs NebulaCryptoSecret (the new secret)";
        }
    }
    return NULL;
}

/* NebulaCryptoSecretPrevious: like set_secret, but nothing, "" (an empty
 * variable), "none" or an unset ${CRYPTO_SECRET_PREVIOUS} mean no previous
 * secret, so that the line can stay in the configuration between
 * rotations. */
static const char *set_previous(cmd_parms *cmd, void *dc, const char *args)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    const char *arg = ap_getword_conf(cmd->pool, &args);

    (void)dc;
    if (*ap_getword_conf(cmd->pool, &args) != '\0') {
        return apr_psprintf(cmd->pool, "%s takes one argument", cmd->cmd->name);
    }
    if (*arg == '\0' || strcasecmp(arg, "none") == 0 ||
        strcmp(arg, "${CRYPTO_SECRET_PREVIOUS}") == 0) {
        c->crypto_previous = NULL;
        return NULL;
    }
    if (strlen(arg) < NEBULA_CRYPTO_SECRET_MIN_LEN) {
        return apr_psprintf(cmd->pool, "%s: the secret must be at least %d characters "
                            "(or empty: none)", cmd->cmd->name,
                            NEBULA_CRYPTO_SECRET_MIN_LEN);
    }
    if (strchr(arg, '$') && strchr(arg, '{')) {
        return apr_psprintf(cmd->pool, "%s: '${...}' was not substituted: is the "
                            "environment variable set?", cmd->cmd->name);
    }
    c->crypto_previous = arg;
    return NULL;
}

static const char *set_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);

    if (strlen(arg) < NEBULA_CRYPTO_SECRET_MIN_LEN) {
        return apr_psprintf(cmd->pool, "%s: the secret must be at least %d characters",
                            cmd->cmd->name, NEBULA_CRYPTO_SECRET_MIN_LEN);
    }
    if (strchr(arg, '$') && strchr(arg, '{')) {
        return apr_psprintf(cmd->pool, "%s: '${...}' was not substituted: is the "
                            "environment variable set?", cmd->cmd->name);
    }
    *(const char **)((char *)c + (apr_size_t)cmd->info) = arg;
    return NULL;
}

static const char *set_duration(cmd_parms *cmd, apr_interval_time_t *slot,
                                const char *arg)
{
    return dir_duration(cmd, slot, arg, apr_time_from_msec(1), apr_time_from_sec(7 * 86400));
}

static const char *set_session_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_duration(cmd, &relay_config_srv(cmd->server)->session_ttl, arg);
}

static const char *set_session_idle(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_duration(cmd, &relay_config_srv(cmd->server)->admin.session_idle,
                        arg);
}

static const char *set_admin_flag(cmd_parms *cmd, void *dc, int on)
{
    admin_auth_conf_t *ac = &relay_config_srv(cmd->server)->admin;

    *(int *)((char *)ac + (apr_size_t)cmd->info) = on;
    return NULL;
}

/* NebulaAdminRemoteUserRole user|operator|admin|root|none */
static const char *set_remote_role(cmd_parms *cmd, void *dc, const char *arg)
{
    admin_auth_conf_t *ac = &relay_config_srv(cmd->server)->admin;

    if (strcmp(arg, "none") && !admin_auth_valid_role(arg)) {
        return "NebulaAdminRemoteUserRole: give user, operator, admin, root or none";
    }
    ac->remote_user_role = arg;
    return NULL;
}

static const char *set_remote_role_env(cmd_parms *cmd, void *dc, const char *arg)
{
    admin_auth_conf_t *ac = &relay_config_srv(cmd->server)->admin;
    const char *c;

    for (c = arg; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '-') {
            return "NebulaAdminRemoteRoleEnv: give the name of an environment variable";
        }
    }
    ac->remote_role_env = *arg ? arg : NULL;
    return NULL;
}

static const char *set_cache_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_duration(cmd, &relay_config_srv(cmd->server)->cache_ttl, arg);
}

static const char *set_tokenizer_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    relay_config_srv(cmd->server)->tokenizer_dir = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

int relay_config_retry_status(const relay_srv_conf_t *c, int status)
{
    if (status < 100 || status > 599) {
        return 1;
    }
    if (c->retry_status == NULL) {
        return status == HTTP_TOO_MANY_REQUESTS || status == HTTP_REQUEST_TIME_OUT
               || status >= 500;
    }
    return (c->retry_status[status / 8] >> (status % 8)) & 1;
}

/* NebulaRetryStatus 429 500-599 ...: each argument a status or a range. */
static const char *set_retry_status(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    char *end;
    long lo = strtol(arg, &end, 10), hi = lo, i;

    if (*end == '-') {
        hi = strtol(end + 1, &end, 10);
    }
    if (*end || lo < 400 || hi > 599 || lo > hi) {
        return apr_psprintf(cmd->pool, "NebulaRetryStatus: '%s' is not a status or a "
                            "range of statuses within 400-599", arg);
    }
    if (c->retry_status == NULL) {
        c->retry_status = apr_pcalloc(cmd->pool, 600 / 8 + 1);
    }
    for (i = lo; i <= hi; ++i) {
        c->retry_status[i / 8] |= (unsigned char)(1 << (i % 8));
    }
    return NULL;
}

/* NebulaDisableKeyword "phrase" ...: replaces the default list. */
static const char *set_disable_word(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    char *w = apr_pstrdup(cmd->pool, arg), *q;

    if (*w == '\0') {
        return "NebulaDisableKeyword: give a non-empty phrase";
    }
    for (q = w; *q; ++q) {
        *q = (char)apr_tolower(*q);
    }
    if (c->disable_words == NULL) {
        c->disable_words = apr_array_make(cmd->pool, 8, sizeof(const char *));
    }
    APR_ARRAY_PUSH(c->disable_words, const char *) = w;
    return NULL;
}

static const char *set_retest(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "off")) {
        relay_config_srv(cmd->server)->retest = 0;
        return NULL;
    }
    return set_duration(cmd, &relay_config_srv(cmd->server)->retest, arg);
}

/* an api-version is a date, optionally with -preview: 2024-10-21 */
static const char *set_azure_version(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *a;

    if (strlen(arg) < 10 || strlen(arg) > 40) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an api-version (like 2024-10-21)",
                            cmd->cmd->name, arg);
    }
    for (a = arg; *a; ++a) {
        if (!apr_isalnum(*a) && *a != '-' && *a != '.') {
            return apr_psprintf(cmd->pool, "%s: '%s' is not an api-version (like "
                                "2024-10-21)", cmd->cmd->name, arg);
        }
    }
    relay_config_srv(cmd->server)->azure_version = arg;
    return NULL;
}

static const char *set_redis(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "none")) {
        relay_config_srv(cmd->server)->redis = NULL;
        return NULL;
    }
    return relay_redis_parse(cmd->pool, arg, &relay_config_srv(cmd->server)->redis);
}

static const char *set_adaptive(cmd_parms *cmd, void *dc, int on)
{
    relay_config_srv(cmd->server)->adaptive = on;
    return NULL;
}

/* NebulaRetryBudget RATIO [MIN-PER-SECOND] | off */
static const char *set_retry_budget(cmd_parms *cmd, void *dc, const char *ratio,
                                    const char *min)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    char *end;
    double r;
    long m = RELAY_DEFAULT_BUDGET_MIN;

    if (strcasecmp(ratio, "off") == 0 && min == NULL) {
        c->budget_ratio_ppm = RELAY_BUDGET_OFF;
        return NULL;
    }
    r = strtod(ratio, &end);
    if (*ratio == '\0' || *end || !(r >= 0.0 && r <= 10.0)) {
        return "NebulaRetryBudget: give a ratio of retries to requests from 0 to 10 "
               "(e.g. 0.2), or off";
    }
    if (min && ((m = strtol(min, &end, 10)), *min == '\0' || *end || m < 0 || m > 100000)) {
        return "NebulaRetryBudget: the retries a second allowed anyway must be a number "
               "from 0 to 100000";
    }
    c->budget_ratio_ppm = (int)(r * 1000000.0 + 0.5);
    c->budget_min_per_s = (int)m;
    return NULL;
}

/* NebulaJsonMaxDepth N: deeper client and admin bodies get a 400 */
static const char *set_json_depth(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end || v < 1 || v > NEBULA_JSON_DEPTH_CEILING) {
        return apr_psprintf(cmd->pool, "NebulaJsonMaxDepth: give a nesting depth from 1 "
                            "to %d", NEBULA_JSON_DEPTH_CEILING);
    }
    relay_config_srv(cmd->server)->json_max_depth = (int)v;
    return NULL;
}

static const char *set_retries(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end || v < 0 || v > 10) {
        return "NebulaRetries: give a number of retries from 0 to 10";
    }
    relay_config_srv(cmd->server)->retries = (int)v;
    return NULL;
}

/* ---- top-up by payment (docs/payments.md) ----------------------------- */

static const char *set_topup_money(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    apr_int64_t v;

    if (!pay_money_parse(arg, &v)) {
        return apr_psprintf(cmd->pool, "%s: give a positive amount of currency with at most "
                            "two decimals (e.g. 5 or 9.99)", cmd->cmd->name);
    }
    *(apr_int64_t *)((char *)c + (apr_size_t)cmd->info) = v;
    return NULL;
}

static const char *set_topup_rate(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || *end || end == arg || v < 1 || v > APR_INT64_C(1000000000000)) {
        return "NebulaTopupRate: give the quota units one currency unit buys "
               "(1 to 10^12; default 500000)";
    }
    relay_config_srv(cmd->server)->pay.rate = v;
    return NULL;
}

static const char *set_topup_currency(cmd_parms *cmd, void *dc, const char *arg)
{
    char *lower = apr_pstrdup(cmd->pool, arg);
    apr_size_t i;

    for (i = 0; lower[i]; ++i) {
        if (!apr_isalpha(lower[i])) {
            break;
        }
        lower[i] = (char)apr_tolower(lower[i]);
    }
    if (i != 3 || lower[i]) {
        return "NebulaTopupCurrency: give an ISO 4217 code with two decimals (usd, eur, "
               "cny ...)";
    }
    relay_config_srv(cmd->server)->pay.currency = lower;
    return NULL;
}

/* A payment secret: substituted from the environment, never empty. */
static const char *set_pay_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);

    if (!*arg) {
        return apr_psprintf(cmd->pool, "%s: empty value", cmd->cmd->name);
    }
    if (strchr(arg, '$') && strchr(arg, '{')) {
        return apr_psprintf(cmd->pool, "%s: '${...}' was not substituted: is the "
                            "environment variable set?", cmd->cmd->name);
    }
    *(const char **)((char *)c + (apr_size_t)cmd->info) = arg;
    return NULL;
}

/* An absolute http(s) URL; trailing slashes are dropped. */
static const char *set_pay_url(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *c = relay_config_srv(cmd->server);
    char *url = apr_pstrdup(cmd->pool, arg);
    apr_size_t n = strlen(url);
    apr_uri_t u;

    if (apr_uri_parse(cmd->pool, url, &u) != APR_SUCCESS || !u.hostname || !u.scheme
        || (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))) {
        return apr_psprintf(cmd->pool, "%s: give an absolute http:// or https:// URL",
                            cmd->cmd->name);
    }
    while (n > 0 && url[n - 1] == '/') {
        url[--n] = '\0';
    }
    *(const char **)((char *)c + (apr_size_t)cmd->info) = url;
    return NULL;
}

static const char *set_epay_pid(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *s;

    for (s = arg; *s; ++s) {
        if (!apr_isalnum(*s)) {
            return "NebulaEpayPid: the merchant id is letters and digits";
        }
    }
    if (!*arg || strlen(arg) > 64) {
        return "NebulaEpayPid: the merchant id is 1 to 64 letters and digits";
    }
    relay_config_srv(cmd->server)->pay.epay_pid = arg;
    return NULL;
}

#define PAY_OFF(f) (void *)(APR_OFFSETOF(relay_srv_conf_t, pay) + APR_OFFSETOF(relay_pay_conf_t, f))

const command_rec relay_config_cmds[] = {
    AP_INIT_FLAG("NebulaRelay", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(relay_dir_conf_t, enabled), OR_OPTIONS,
                 "On to serve the LLM API relay here (same as SetHandler nebula-relay)"),
    AP_INIT_TAKE1("NebulaPassThrough", set_passthrough, NULL, OR_OPTIONS,
                  "Origin URL to relay requests to verbatim (bring-up/diagnostics)"),
    AP_INIT_TAKE1("NebulaMaxBodySize", set_max_body, NULL, OR_OPTIONS,
                  "Largest request body accepted, in bytes (default 33554432)"),
    AP_INIT_TAKE1("NebulaUpstreamTimeout", set_timeout, NULL, OR_OPTIONS,
                  "Upstream read timeout (default 300s)"),
    AP_INIT_TAKE1("NebulaStreamDisconnect", set_disconnect, NULL, OR_OPTIONS,
                  "When a streaming client goes away: drain (bill the upstream's real "
                  "usage, default) or stop (bill what was delivered)"),
    AP_INIT_TAKE1("NebulaFirstByteTimeout", set_first_byte, NULL, OR_OPTIONS,
                  "How long an upstream may take to start answering (default: "
                  "NebulaUpstreamTimeout)"),
    AP_INIT_TAKE1("NebulaStreamPing", set_ping, NULL, OR_OPTIONS,
                  "Send ': PING' to a streaming client after this much upstream "
                  "silence (default off)"),
    AP_INIT_TAKE1("NebulaDrainTimeout", set_drain_timeout, NULL, OR_OPTIONS,
                  "How long drain keeps reading after the client left (default 30s)"),
    AP_INIT_FLAG("NebulaOverheadHeader", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(relay_dir_conf_t, overhead_header), OR_OPTIONS,
                 "On to send the gateway's own time as x-nebula-overhead-us (default Off)"),
    AP_INIT_FLAG("NebulaAdmin", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(relay_dir_conf_t, admin), OR_OPTIONS,
                 "On to serve the admin API here (same as SetHandler nebula-admin)"),
    AP_INIT_TAKE1("NebulaCryptoSecret", set_secret,
                  (void *)APR_OFFSETOF(relay_srv_conf_t, crypto_secret), RSRC_CONF,
                  "Master secret for upstream keys at rest (use ${CRYPTO_SECRET})"),
    /* raw: an empty ${CRYPTO_SECRET_PREVIOUS} leaves no argument at all */
    AP_INIT_RAW_ARGS("NebulaCryptoSecretPrevious", set_previous, NULL, RSRC_CONF,
                     "The secret being rotated out: still opens stored keys (use "
                     "${CRYPTO_SECRET_PREVIOUS}; empty or none: unset)"),
    AP_INIT_TAKE1("NebulaSessionSecret", set_secret,
                  (void *)APR_OFFSETOF(relay_srv_conf_t, session_secret), RSRC_CONF,
                  "Secret that signs admin session cookies (use ${SESSION_SECRET})"),
    AP_INIT_TAKE1("NebulaAdminToken", set_secret,
                  (void *)APR_OFFSETOF(relay_srv_conf_t, admin_token), RSRC_CONF,
                  "A root token for the admin API (bootstrap; optional)"),
    AP_INIT_TAKE1("NebulaAdminSessionTTL", set_session_ttl, NULL, RSRC_CONF,
                  "How long an admin session lasts at most (default 12h)"),
    AP_INIT_TAKE1("NebulaAdminSessionIdle", set_session_idle, NULL, RSRC_CONF,
                  "An admin session unused this long ends (default 30m)"),
    AP_INIT_FLAG("NebulaAdminCookieSecure", set_admin_flag,
                 (void *)APR_OFFSETOF(admin_auth_conf_t, cookie_secure), RSRC_CONF,
                 "On for Secure __Host- admin cookies when TLS ends at a proxy in "
                 "front (always so on https)"),
    AP_INIT_FLAG("NebulaAdminTrustRemoteUser", set_admin_flag,
                 (void *)APR_OFFSETOF(admin_auth_conf_t, trust_remote_user), RSRC_CONF,
                 "On to accept the user an httpd auth module authenticated"),
    AP_INIT_TAKE1("NebulaAdminRemoteUserRole", set_remote_role, NULL, RSRC_CONF,
                  "Role of remote users without a users row, provisioned on first "
                  "sight (user, operator, admin, root; default none: refused)"),
    AP_INIT_TAKE1("NebulaAdminRemoteRoleEnv", set_remote_role_env, NULL, RSRC_CONF,
                  "Environment variable an auth module sets to the remote user's role"),
    AP_INIT_TAKE1("NebulaRetries", set_retries, NULL, RSRC_CONF,
                  "Attempts on other channels after a retriable failure (default 2)"),
    AP_INIT_TAKE12("NebulaRetryBudget", set_retry_budget, NULL, RSRC_CONF,
                   "Retries host-wide at most RATIO of requests + MIN a second over 10 s "
                   "(default 0.2 10), or off"),
    AP_INIT_TAKE1("NebulaJsonMaxDepth", set_json_depth, NULL, RSRC_CONF,
                  "Deepest nesting of arrays and objects in a JSON request body "
                  "(default 64)"),
    AP_INIT_TAKE1("NebulaCacheTTL", set_cache_ttl, NULL, RSRC_CONF,
                  "How long a process caches a client key (default 30s)"),
    AP_INIT_FLAG("NebulaAdaptiveRouting", set_adaptive, NULL, RSRC_CONF,
                 "On to scale channel weights by observed success rate and latency"),
    AP_INIT_ITERATE("NebulaRetryStatus", set_retry_status, NULL, RSRC_CONF,
                    "Upstream statuses retried on another channel, e.g. 429 500-599 "
                    "(default 408 429 500-599)"),
    AP_INIT_ITERATE("NebulaDisableKeyword", set_disable_word, NULL, RSRC_CONF,
                    "Phrases in upstream errors that count toward auto-disable "
                    "(replaces the default list)"),
    AP_INIT_TAKE1("NebulaRetestInterval", set_retest, NULL, RSRC_CONF,
                  "After this long an auto-disabled channel or key is enabled again "
                  "on probation (default 10m; off)"),
    AP_INIT_TAKE1("NebulaAzureAPIVersion", set_azure_version, NULL, RSRC_CONF,
                  "The api-version sent to Azure OpenAI channels that name none on their "
                  "base URL (default " RELAY_DEFAULT_AZURE_VERSION "; "
                  "${AZURE_DEFAULT_API_VERSION})"),
    AP_INIT_TAKE1("NebulaRedis", set_redis, NULL, RSRC_CONF,
                  "redis://[:password@]host[:port][/db] for cross-host cache "
                  "invalidation (use ${REDIS_CONN_STRING}); none to turn off"),
    AP_INIT_TAKE1("NebulaTokenizerDir", set_tokenizer_dir, NULL, RSRC_CONF,
                  "Folder with o200k_base.tiktoken and cl100k_base.tiktoken (exact "
                  "token counts when an upstream reports none)"),
    AP_INIT_ITERATE("NebulaUpstreamAllow", relay_ssrf_set_allow, NULL, RSRC_CONF,
                    "Ranges (10.1.0.0/16, fd00::/8), addresses or host names channels "
                    "may reach although internal; * turns the SSRF check off; none "
                    "(default) allows nothing"),
    RELAY_HEALTH_COMMANDS,
    RELAY_METRICS_COMMANDS,
    AP_INIT_TAKE1("NebulaTopupRate", set_topup_rate, NULL, RSRC_CONF,
                  "Quota units credited per currency unit paid (default 500000)"),
    AP_INIT_TAKE1("NebulaTopupMin", set_topup_money, PAY_OFF(min_minor), RSRC_CONF,
                  "Smallest top-up, in currency units (default 1)"),
    AP_INIT_TAKE1("NebulaTopupMax", set_topup_money, PAY_OFF(max_minor), RSRC_CONF,
                  "Largest top-up, in currency units (default 10000)"),
    AP_INIT_TAKE1("NebulaTopupCurrency", set_topup_currency, NULL, RSRC_CONF,
                  "Currency of top-ups (ISO 4217, default usd)"),
    AP_INIT_TAKE1("NebulaStripeSecretKey", set_pay_secret, PAY_OFF(stripe_key), RSRC_CONF,
                  "Stripe secret API key (use ${STRIPE_SECRET_KEY})"),
    AP_INIT_TAKE1("NebulaStripeWebhookSecret", set_pay_secret, PAY_OFF(stripe_whsec),
                  RSRC_CONF, "Stripe webhook signing secret whsec_... "
                  "(use ${STRIPE_WEBHOOK_SECRET})"),
    AP_INIT_TAKE1("NebulaStripeAPI", set_pay_url, PAY_OFF(stripe_api), RSRC_CONF,
                  "Stripe API base URL (default " RELAY_DEFAULT_STRIPE_API ")"),
    AP_INIT_TAKE1("NebulaStripeSuccessURL", set_pay_url, PAY_OFF(stripe_success), RSRC_CONF,
                  "Where Stripe Checkout sends the payer after paying"),
    AP_INIT_TAKE1("NebulaStripeCancelURL", set_pay_url, PAY_OFF(stripe_cancel), RSRC_CONF,
                  "Where Stripe Checkout sends the payer who cancels"),
    AP_INIT_TAKE1("NebulaEpayURL", set_pay_url, PAY_OFF(epay_url), RSRC_CONF,
                  "EPay gateway base URL (its submit.php is below it)"),
    AP_INIT_TAKE1("NebulaEpayPid", set_epay_pid, NULL, RSRC_CONF, "EPay merchant id"),
    AP_INIT_TAKE1("NebulaEpayKey", set_pay_secret, PAY_OFF(epay_key), RSRC_CONF,
                  "EPay merchant key (MD5 signatures; use ${EPAY_KEY})"),
    AP_INIT_TAKE1("NebulaEpayNotifyURL", set_pay_url, PAY_OFF(epay_notify), RSRC_CONF,
                  "Public URL of /api/payments/epay/notify for EPay's async notify"),
    AP_INIT_TAKE1("NebulaEpayReturnURL", set_pay_url, PAY_OFF(epay_return), RSRC_CONF,
                  "Where EPay sends the payer back (e.g. /api/payments/epay/return)"),
    {NULL}};

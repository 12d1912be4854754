/* gov_config.c: mod_nebula_gov's directives and per-server merge. */
#include <apr_strings.h>
#include <http_core.h>
#include "gov_private.h"
#include "nebula_json.h"
#include "gov_limit.h"

#define GET(add, base, f) (((add)->f == GOV_UNSET) ? (base)->f : (add)->f)
#define GETP(add, base, f) ((add)->f ? (add)->f : (base)->f)

void *gov_config_create_srv(apr_pool_t *p, server_rec *s)
{
    gov_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GOV_UNSET;
    c->audit_days = GOV_UNSET;
    return c;
}

/* A virtual host's policies are the main server's plus its own; one of its
 * own replaces the main server's of the same name. */
static apr_array_header_t *merge_policies(apr_pool_t *p, const apr_array_header_t *base,
                                          const apr_array_header_t *add)
{
    apr_array_header_t *out;
    int i, j;

    if (base == NULL || add == NULL) {
        return (apr_array_header_t *)(add ? add : base);
    }
    out = apr_array_make(p, base->nelts + add->nelts, sizeof(json_t *));
    for (i = 0; i < base->nelts; ++i) {
        json_t *b = APR_ARRAY_IDX(base, i, json_t *);
        const char *name = nebula_json_gets(b, "name", NULL);
        for (j = 0; j < add->nelts; ++j) {
            if (!strcmp(name, nebula_json_gets(APR_ARRAY_IDX(add, j, json_t *), "name", NULL))) {
                break;
            }
        }
        if (j == add->nelts) {
            APR_ARRAY_PUSH(out, json_t *) = b;
        }
    }
    apr_array_cat(out, add);
    return out;
}

void *gov_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    gov_srv_conf_t *base = basev, *add = addv;
    gov_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GET(add, base, enabled);
    c->audit_days = GET(add, base, audit_days);
    c->policies = merge_policies(p, base->policies, add->policies);
    c->audit_sink = GETP(add, base, audit_sink);
    c->country_env = GETP(add, base, country_env);
    c->country_header = GETP(add, base, country_header);
    c->country_proxies = add->country_header ? add->country_proxies : base->country_proxies;
    /* rate limits: the main server's apply to every vhost, with the vhost's own */
    c->limits = !add->limits ? base->limits
                : !base->limits ? add->limits
                                : apr_array_append(p, base->limits, add->limits);
    return c;
}

const gov_srv_conf_t *gov_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &nebula_gov_module);
}

static gov_srv_conf_t *srv_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &nebula_gov_module);
}

static const char *set_enabled(cmd_parms *cmd, void *dc, int on)
{
    srv_of(cmd)->enabled = on;
    return NULL;
}

static const char *set_audit_days(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (*arg == '\0' || *end || v < 1 || v > 3650) {
        return "NebulaAuditRetention: give a number of days from 1 to 3650";
    }
    srv_of(cmd)->audit_days = (int)v;
    return NULL;
}

static const char *set_audit_sink(cmd_parms *cmd, void *dc, const char *arg)
{
    gov_srv_conf_t *c = srv_of(cmd);

    if (!strcmp(arg, "syslog")) {
        c->audit_sink = "syslog";
        return NULL;
    }
    if ((c->audit_sink = ap_server_root_relative(cmd->pool, arg)) == NULL) {
        return apr_psprintf(cmd->pool, "NebulaGovAuditLog: invalid path '%s'", arg);
    }
    return NULL;
}

static const char *set_country_env(cmd_parms *cmd, void *dc, const char *arg)
{
    gov_srv_conf_t *c = srv_of(cmd);

    if (c->country_env == NULL) {
        c->country_env = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(c->country_env, const char *) = arg;
    return NULL;
}

/* NebulaGovCountryHeader name cidr...: the header is believed only when the
 * connection comes from one of the listed proxies. */
static const char *set_country_header(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    gov_srv_conf_t *c = srv_of(cmd);
    int i;

    if (argc < 2) {
        return "NebulaGovCountryHeader: give the header name and the addresses of the "
               "proxies it is trusted from (e.g. CF-IPCountry 10.0.0.0/8)";
    }
    c->country_header = argv[0];
    c->country_proxies = apr_array_make(cmd->pool, argc - 1, sizeof(apr_ipsubnet_t *));
    for (i = 1; i < argc; ++i) {
        char *ip = apr_pstrdup(cmd->pool, argv[i]), *mask = strchr(ip, '/');
        apr_ipsubnet_t *sn;
        if (mask) {
            *mask++ = '\0';
        }
        if (apr_ipsubnet_create(&sn, ip, mask, cmd->pool) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "NebulaGovCountryHeader: '%s' is not an "
                                "address or CIDR block", argv[i]);
        }
        APR_ARRAY_PUSH(c->country_proxies, apr_ipsubnet_t *) = sn;
    }
    return NULL;
}

/* NebulaRateLimit <key|user|group|model> <value|*> [rpm=N] [tpm=N] [streams=N] */
static const char *set_rate_limit(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    gov_srv_conf_t *c = ap_get_module_config(cmd->server->module_config,
                                             &nebula_gov_module);
    gov_limit_t *l;
    const char *err = gov_limit_parse_directive(cmd->pool, argc, argv, &l);

    if (err) {
        return err;
    }
    if (c->limits == NULL) {
        c->limits = apr_array_make(cmd->pool, 4, sizeof(gov_limit_t *));
    }
    APR_ARRAY_PUSH(c->limits, gov_limit_t *) = l;
    return NULL;
}

const command_rec gov_config_cmds[] = {
    AP_INIT_TAKE_ARGV("NebulaRateLimit", set_rate_limit, NULL, RSRC_CONF,
                      "<key|user|group|model> <value|*> [rpm=N] [tpm=N] [streams=N]: a "
                      "rate or concurrency limit (docs/rate-limits.md)"),
    AP_INIT_FLAG("NebulaGovernance", set_enabled, NULL, RSRC_CONF,
                 "On to apply governance policies on this server (default On)"),
    AP_INIT_TAKE1("NebulaAuditRetention", set_audit_days, NULL, RSRC_CONF,
                  "Days the governance audit log is kept (default 90)"),
    AP_INIT_TAKE1("NebulaGovAuditLog", set_audit_sink, NULL, RSRC_CONF,
                  "Also write each audit row as a JSON line to this file, or to syslog"),
    AP_INIT_ITERATE("NebulaGovCountryEnv", set_country_env, NULL, RSRC_CONF,
                    "Environment variables a GeoIP module sets to the client's country "
                    "(default GEOIP_COUNTRY_CODE MM_COUNTRY_CODE)"),
    AP_INIT_TAKE_ARGV("NebulaGovCountryHeader", set_country_header, NULL, RSRC_CONF,
                      "A request header naming the client's country, and the proxies "
                      "it is trusted from"),
    AP_INIT_RAW_ARGS("<NebulaPolicy", gov_config_policy_section, NULL, RSRC_CONF,
                     "A governance policy declared in the configuration"),
    {NULL}};

/* billing_config.c: mod_nebula_billing's directives and per-server merge. */
#include <apr_strings.h>
#include "billing_private.h"

#define GET(add, base, f) (((add)->f == BILLING_UNSET) ? (base)->f : (add)->f)

void *billing_config_create_srv(apr_pool_t *p, server_rec *s)
{
    billing_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = BILLING_UNSET;
    c->quota_per_usd = BILLING_UNSET;
    return c;
}

void *billing_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    billing_srv_conf_t *base = basev, *add = addv;
    billing_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GET(add, base, enabled);
    c->quota_per_usd = GET(add, base, quota_per_usd);
    return c;
}

const billing_srv_conf_t *billing_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &nebula_billing_module);
}

static const char *set_enabled(cmd_parms *cmd, void *dc, int on)
{
    billing_srv_conf_t *c =
        ap_get_module_config(cmd->server->module_config, &nebula_billing_module);

    c->enabled = on;
    return NULL;
}

static const char *set_quota_per_usd(cmd_parms *cmd, void *dc, const char *arg)
{
    billing_srv_conf_t *c =
        ap_get_module_config(cmd->server->module_config, &nebula_billing_module);
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (*arg == '\0' || *end || v < 1 || v > APR_INT64_C(1000000000000)) {
        return "NebulaQuotaPerUSD: give a whole number of quota units from 1 to 10^12";
    }
    c->quota_per_usd = v;
    return NULL;
}

const command_rec billing_config_cmds[] = {
    AP_INIT_FLAG("NebulaBilling", set_enabled, NULL, RSRC_CONF,
                 "On to charge requests relayed by this server (default On)"),
    AP_INIT_TAKE1("NebulaQuotaPerUSD", set_quota_per_usd, NULL, RSRC_CONF,
                  "Quota units that make one US dollar (default 500000)"),
    {NULL}};

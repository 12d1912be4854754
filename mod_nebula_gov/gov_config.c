/* gov_config.c: mod_nebula_gov's directives and per-server merge. */
#include <apr_strings.h>
#include "gov_private.h"

#define GET(add, base, f) (((add)->f == GOV_UNSET) ? (base)->f : (add)->f)

void *gov_config_create_srv(apr_pool_t *p, server_rec *s)
{
    gov_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GOV_UNSET;
    c->audit_days = GOV_UNSET;
    return c;
}

void *gov_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    gov_srv_conf_t *base = basev, *add = addv;
    gov_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GET(add, base, enabled);
    c->audit_days = GET(add, base, audit_days);
    return c;
}

const gov_srv_conf_t *gov_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &nebula_gov_module);
}

static const char *set_enabled(cmd_parms *cmd, void *dc, int on)
{
    gov_srv_conf_t *c = ap_get_module_config(cmd->server->module_config,
                                             &nebula_gov_module);

    c->enabled = on;
    return NULL;
}

static const char *set_audit_days(cmd_parms *cmd, void *dc, const char *arg)
{
    gov_srv_conf_t *c = ap_get_module_config(cmd->server->module_config,
                                             &nebula_gov_module);
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (*arg == '\0' || *end || v < 1 || v > 3650) {
        return "NebulaAuditRetention: give a number of days from 1 to 3650";
    }
    c->audit_days = (int)v;
    return NULL;
}

const command_rec gov_config_cmds[] = {
    AP_INIT_FLAG("NebulaGovernance", set_enabled, NULL, RSRC_CONF,
                 "On to apply governance policies on this server (default On)"),
    AP_INIT_TAKE1("NebulaAuditRetention", set_audit_days, NULL, RSRC_CONF,
                  "Days the governance audit log is kept (default 90)"),
    {NULL}};

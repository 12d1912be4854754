/* relay_config.c: mod_nebula_relay's directives and their per-directory
 * create/merge. Every setter validates its argument and names the directive
 * in its error. */
#include <apr_strings.h>
#include <apr_uri.h>
#include "relay_private.h"

#define GET(add, base, f) (((add)->f == RELAY_UNSET) ? (base)->f : (add)->f)

void *relay_config_create_dir(apr_pool_t *p, char *dir)
{
    relay_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = RELAY_UNSET;
    c->passthrough = NULL;
    c->max_body = RELAY_UNSET;
    c->timeout = RELAY_UNSET;
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
    relay_dir_conf_t *c = dc;
    apr_interval_time_t t;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t <= 0
        || t > apr_time_from_sec(86400)) {
        return "NebulaUpstreamTimeout: give a duration from 1ms to 86400s "
               "(e.g. 300, 30s, 500ms)";
    }
    c->timeout = t;
    return NULL;
}

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
    {NULL}};

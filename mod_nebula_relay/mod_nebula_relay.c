/*
 * mod_nebula_relay: NebulaGate's LLM API gateway.
 *
 * It serves OpenAI-, Anthropic- and Gemini-protocol requests on any location
 * where "NebulaRelay On" (or "SetHandler nebula-relay") is set, relays them to
 * upstream channels through mod_proxy's pooled workers, and calls
 * mod_nebula_gov (hook nebula_gov_check) and mod_nebula_billing (optional
 * functions) when they are loaded. It runs alone as well: without them,
 * nothing is governed or billed.
 *
 * This file holds the module record and the hook registrations; the work is
 * in relay_*.c.
 */
#include <http_core.h>
#include <http_request.h>
#include <mod_proxy.h>
#include "relay_private.h"
#include "relay_health.h"
#include "relay_admin.h"
#include "nebula_ap.h"
#include "nebula_gov.h"

APR_IMPLEMENT_OPTIONAL_HOOK_RUN_ALL(ap, NEBULA, int, nebula_gov_check,
                                    (request_rec * r, nebula_req_t *req,
                                     nebula_decision_t *decision),
                                    (r, req, decision), OK, DECLINED)
APR_IMPLEMENT_OPTIONAL_HOOK_RUN_ALL(ap, NEBULA, int, nebula_gov_done,
                                    (request_rec * r, const nebula_reqlog_t *log), (r, log),
                                    OK, DECLINED)

/* nebula_gov.h: the generation governance reloads its data at */
static apr_uint32_t nebula_relay_generation(void)
{
    return relay_gen_current();
}

static int relay_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return relay_health_pre_config(pconf) == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

static int relay_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    const char *err;

    if (nebula_ap_post_config(s, APLOG_MODULE_INDEX)) {
        return OK;
    }
    if ((err = relay_config_post_config(pconf, s)) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "NEB01011: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    relay_gen_post_config(pconf, s);
    relay_budget_post_config(pconf, s);
    if ((err = relay_tokens_post_config(pconf, s, relay_config_srv(s)->tokenizer_dir))) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "NEB01081: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (relay_health_post_config(pconf, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR; /* NEB01301-NEB01303 said why */
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "NEB01000: mod_nebula_relay ready");
    return OK;
}

static void relay_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    nebula_ap_child_init(pchild, s, APLOG_MODULE_INDEX);
    relay_health_child_init(pchild, s); /* logs NEB01304 itself */
    relay_redis_child_init(pchild, s);
    relay_logq_child_init(pchild, s);
    if ((rv = relay_upstream_child_init(pchild, s)) != APR_SUCCESS
        || (rv = relay_auth_child_init(pchild, s)) != APR_SUCCESS
        || (rv = relay_channel_child_init(pchild, s)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01006: cannot create the relay's per-process caches");
    }
}

/* A relay location names no file, as a ProxyPass one does not: its URI is
 * mapped to a name of our own, so that neither core's translation nor its
 * directory walk (a stat and an .htaccess open for every directory up to
 * the document root, on every request) runs for it. <Directory> sections
 * and .htaccess files therefore do not apply to relay locations; <Location>
 * and <If> sections do (httpd walks them again after map_to_storage). */
#define RELAY_FILENAME "nebula-relay:"

static int relay_translate_name(request_rec *r)
{
    const relay_dir_conf_t *dc = relay_config_dir(r);

    if (dc->enabled != 1 || r->proxyreq || r->main != NULL) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, RELAY_FILENAME, r->uri, NULL);
    return OK;
}

static int relay_map_to_storage(request_rec *r)
{
    if (r->filename == NULL || strncmp(r->filename, RELAY_FILENAME,
                                       sizeof(RELAY_FILENAME) - 1) != 0) {
        return DECLINED;
    }
    return OK;
}

/* NebulaRelay On maps a location to the relay handler, like ProxyPass does. */
static int relay_fixups(request_rec *r)
{
    const relay_dir_conf_t *dc = relay_config_dir(r);

    if (dc->enabled == 1 && r->main == NULL) {
        r->handler = RELAY_HANDLER;
    }
    else if (dc->admin == 1 && r->main == NULL) {
        r->handler = RELAY_ADMIN_HANDLER;
    }
    return DECLINED;
}

static void relay_register_hooks(apr_pool_t *p)
{
    static const char *const watchdog[] = {"mod_watchdog.c", NULL};
    static const char *const rewrite[] = {"mod_rewrite.c", NULL};

    /* every config read: health directives start from their defaults and the
     * "nebula-health" mutex type is known before Mutex directives are read */
    ap_hook_pre_config(relay_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(relay_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_watchdog's post_config, which starts the watchdogs asked for */
    ap_hook_post_config(relay_retest_post_config, NULL, watchdog, APR_HOOK_LAST);
    nebula_ap_register_hooks(relay_child_init);
    /* before core's translation and directory walk, as mod_proxy's; after
     * mod_rewrite's server-wide rules */
    ap_hook_translate_name(relay_translate_name, rewrite, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(relay_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    /* late, so that other modules' fixups (e.g. mod_rewrite) have run */
    ap_hook_fixups(relay_fixups, NULL, NULL, APR_HOOK_LAST);
    ap_hook_handler(relay_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(relay_admin_handler, NULL, NULL, APR_HOOK_MIDDLE); /* NebulaAdmin */
    relay_status_register();
    /* the other operations views: /metrics, /healthz, /readyz, traces */
    relay_metrics_register();
    relay_metrics_http_register();
    relay_metrics_log_register();
    relay_trace_register();
    APR_REGISTER_OPTIONAL_FN(nebula_relay_generation);
}

module AP_MODULE_DECLARE_DATA nebula_relay_module = {
    STANDARD20_MODULE_STUFF,
    relay_config_create_dir,
    relay_config_merge_dir,
    relay_config_create_srv,
    relay_config_merge_srv,
    relay_config_cmds,
    relay_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};

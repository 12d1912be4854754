/*
 * mod_nebula_gov: NebulaGate's governance pipeline.
 *
 * It registers for the relay's nebula_gov_check optional hook (nebula_gov.h):
 * for every relay request, after the key is known and before anything is
 * reserved or sent upstream, the policies in force (stored through the admin
 * API, or declared with <NebulaPolicy>) are evaluated; hits are audited, and
 * the decision blocks, downgrades, reroutes, redacts the request or scans the
 * completion on its way out. Without this module the relay runs ungoverned.
 * docs/governance.md is the operator's guide; gov_private.h maps the files.
 */
#include <http_core.h>
#include <http_request.h>
#include "gov_private.h"
#include "nebula_ap.h"
#include "nebula_gov.h"
#include "gov_limit.h"

static int gov_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    if (nebula_ap_post_config(s, APLOG_MODULE_INDEX)) {
        return OK;
    }
    if (gov_audit_post_config(pconf, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR; /* NEB03020 said why */
    }
    gov_check_post_config(s);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "NEB03000: mod_nebula_gov ready");
    return OK;
}

static void gov_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    nebula_ap_child_init(pchild, s, APLOG_MODULE_INDEX);
    if ((rv = gov_store_child_init(pchild, s)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB03001: cannot create the governance snapshot's locks");
    }
}

static void gov_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(gov_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    nebula_ap_register_hooks(gov_child_init);
    gov_check_register();
    gov_limit_register_hooks(p); /* rate limits: gov_limit.c */
}

module AP_MODULE_DECLARE_DATA nebula_gov_module = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    gov_config_create_srv,
    gov_config_merge_srv,
    gov_config_cmds,
    gov_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};

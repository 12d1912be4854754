/*
 * mod_nebula_gov: NebulaGate's governance pipeline.
 *
 * It detects, then blocks, downgrades, reroutes or redacts requests, applies
 * rate limits and writes the audit log, by registering for the relay's
 * nebula_gov_check optional hook (nebula_gov.h). This release is the
 * skeleton: configuration and the database bootstrap; the hook is registered
 * once policies exist, so until then the relay allows every request.
 */
#include <http_core.h>
#include <http_request.h>
#include "gov_private.h"
#include "nebula_ap.h"
#include "nebula_gov.h"

static int gov_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    if (nebula_ap_post_config(s, APLOG_MODULE_INDEX)) {
        return OK;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "NEB03000: mod_nebula_gov ready");
    return OK;
}

static void gov_child_init(apr_pool_t *pchild, server_rec *s)
{
    nebula_ap_child_init(pchild, s, APLOG_MODULE_INDEX);
}

static void gov_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(gov_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    nebula_ap_register_hooks(gov_child_init);
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

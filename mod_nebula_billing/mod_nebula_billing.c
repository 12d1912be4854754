/*
 * mod_nebula_billing: NebulaGate's billing engine.
 *
 * It owns prices, balances, plans, vouchers, the reserve -> settle cycle and
 * the append-only ledger, and offers them to the relay through the optional
 * functions of nebula_billing.h. This release is the skeleton: configuration
 * and the database bootstrap. The optional functions are registered only once
 * they are implemented, so until then the relay sees "no billing" and says so.
 */
#include <http_core.h>
#include <http_request.h>
#include "billing_private.h"
#include "nebula_ap.h"
#include "nebula_billing.h"

static int billing_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    nebula_ap_log_bridge(s, APLOG_MODULE_INDEX);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "NEB02000: mod_nebula_billing ready");
    return OK;
}

static void billing_child_init(apr_pool_t *pchild, server_rec *s)
{
    nebula_ap_log_bridge(s, APLOG_MODULE_INDEX);
    nebula_ap_db_ensure(pchild, s, APLOG_MODULE_INDEX);
}

static void billing_register_hooks(apr_pool_t *p)
{
    static const char *const dbd[] = {"mod_dbd.c", NULL};

    ap_hook_post_config(billing_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* after mod_dbd: the schema bootstrap borrows one of its connections */
    ap_hook_child_init(billing_child_init, dbd, NULL, APR_HOOK_MIDDLE);
    nebula_ap_db_register_hooks();
}

module AP_MODULE_DECLARE_DATA nebula_billing_module = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    billing_config_create_srv,
    billing_config_merge_srv,
    billing_config_cmds,
    billing_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};

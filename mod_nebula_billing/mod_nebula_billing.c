/*
 * mod_nebula_billing: NebulaGate's billing engine.
 *
 * It owns prices, balances, plans and subscriptions, the reserve -> settle
 * cycle, client idempotency and the append-only ledger, and offers them to
 * the relay and the admin API through the optional functions of
 * nebula_billing.h. Without this module the relay serves requests without
 * charging; with it, a server with NebulaBilling Off does the same.
 */
#include <http_core.h>
#include <http_request.h>
#include "billing_private.h"
#include "nebula_ap.h"
#include "nebula_billing.h"

static int billing_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    if (nebula_ap_post_config(s, APLOG_MODULE_INDEX)) {
        return OK;
    }
    billing_config_finalize(pconf, s);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "NEB02000: mod_nebula_billing ready (%" APR_INT64_T_FMT
                 " quota units per USD, spool %s)",
                 billing_config_srv(s)->quota_per_usd, billing_config_srv(s)->spool);
    return OK;
}

static void billing_child_init(apr_pool_t *pchild, server_rec *s)
{
    nebula_ap_child_init(pchild, s, APLOG_MODULE_INDEX);
    billing_spool_child_init(pchild);
    billing_group_child_init(pchild);
}

static void billing_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(billing_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    nebula_ap_register_hooks(billing_child_init);
    billing_config_register();
    billing_reserve_register();
    billing_settle_register();
    billing_idem_register();
    billing_voucher_register();
    billing_sched_register_hooks(p);
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

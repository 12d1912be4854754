/* nebula_ap_module.c: the start-up steps every NebulaGate module takes, so
 * that each module's own hooks hold only what is particular to it. */
#include <http_core.h>
#include "nebula_ap.h"

int nebula_ap_post_config(server_rec *s, int module_index)
{
    /* httpd reads its config twice at start; the first pass is a dry run */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return 1;
    }
    nebula_ap_log_bridge(s, module_index);
    return 0;
}

void nebula_ap_child_init(apr_pool_t *pchild, server_rec *s, int module_index)
{
    nebula_ap_log_bridge(s, module_index);
    if (nebula_ap_db_ensure(pchild, s, module_index) == NEBULA_AP_DB_READY) {
        nebula_ap_db_writer_attach(pchild, s);
    }
}

void nebula_ap_register_hooks(ap_HOOK_child_init_t *child_init)
{
    static const char *const dbd[] = {"mod_dbd.c", NULL};

    /* after mod_dbd's: the schema bootstrap borrows one of its connections */
    ap_hook_child_init(child_init, dbd, NULL, APR_HOOK_MIDDLE);
    nebula_ap_db_register_hooks();
    nebula_ap_db_stats_register();
}

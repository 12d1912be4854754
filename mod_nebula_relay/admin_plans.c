/* admin_plans.c: the admin API's plan, subscription and scheduler routes.
 * Subscriptions are created and cancelled through mod_nebula_billing's
 * optional functions, which own their ledger effects. */
#include "relay_admin.h"

const admin_route_t admin_plans_routes[] = {
    {NULL, NULL, NULL, 0}};

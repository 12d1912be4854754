/* billing_sched.c: the billing scheduler (mod_watchdog). Placeholder until
 * the scheduler lands: registers nothing. */
#include "billing_private.h"

void billing_sched_register_hooks(apr_pool_t *p)
{
    (void)p;
}

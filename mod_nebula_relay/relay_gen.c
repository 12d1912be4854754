/* relay_gen.c: the host-wide generation counter of configuration data (see
 * relay_private.h). One 32-bit word in anonymous shared memory, created by
 * the parent in post_config so that every child inherits it; read and bumped
 * with APR's atomics, no lock needed. */
#include <apr_shm.h>
#include <apr_atomic.h>
#include "relay_private.h"

static volatile apr_uint32_t *gen_word;
static apr_uint32_t gen_local; /* fallback when shared memory is unavailable */

apr_status_t relay_gen_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    rv = apr_shm_create(&shm, sizeof(apr_uint32_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "NEB01010: no shared memory for the cache generation; each "
                     "process sees its own changes at once, others' after NebulaCacheTTL");
        gen_word = &gen_local;
        return rv;
    }
    gen_word = apr_shm_baseaddr_get(shm);
    apr_atomic_set32(gen_word, 1);
    return APR_SUCCESS;
}

apr_uint32_t relay_gen_current(void)
{
    return gen_word ? apr_atomic_read32(gen_word) : 0;
}

void relay_gen_bump(void)
{
    if (gen_word) {
        apr_atomic_inc32(gen_word);
    }
}

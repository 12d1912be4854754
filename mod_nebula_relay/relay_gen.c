/* relay_gen.c: the host-wide words of the relay in anonymous shared memory,
 * created by the parent in post_config so that every child inherits them and
 * read and changed with APR's atomics (no lock): the generation counter of
 * configuration data (see relay_private.h) and the counters mod_status shows. */
#include <string.h>
#include <apr_shm.h>
#include <apr_atomic.h>
#include "relay_private.h"

typedef struct {
    volatile apr_uint32_t gen;
    volatile apr_uint32_t streams_open;
    volatile apr_uint64_t requests;
} shared_words_t;

static shared_words_t *words;
static shared_words_t words_local; /* fallback when shared memory is unavailable */
static volatile apr_uint32_t *gen_word;

apr_status_t relay_gen_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    rv = apr_shm_create(&shm, sizeof(shared_words_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "NEB01010: no shared memory for the cache generation; each "
                     "process sees its own changes at once, others' after NebulaCacheTTL");
        words = &words_local;
        gen_word = &words->gen;
        return rv;
    }
    words = apr_shm_baseaddr_get(shm);
    memset(words, 0, sizeof(*words));
    gen_word = &words->gen;
    apr_atomic_set32(gen_word, 1);
    return APR_SUCCESS;
}

apr_uint32_t relay_gen_current(void)
{
    return gen_word ? apr_atomic_read32(gen_word) : 0;
}

void relay_gen_bump_local(void)
{
    if (gen_word) {
        apr_atomic_inc32(gen_word);
    }
}

void relay_gen_bump(void)
{
    relay_gen_bump_local();
    relay_redis_publish();
}

void relay_stats_request(void)
{
    if (words) {
        apr_atomic_add64(&words->requests, 1);
    }
}

void relay_stats_stream(int delta)
{
    if (words) {
        if (delta > 0) {
            apr_atomic_inc32(&words->streams_open);
        }
        else {
            apr_atomic_dec32(&words->streams_open);
        }
    }
}

void relay_stats_read(relay_stats_t *st)
{
    st->requests = words ? apr_atomic_read64(&words->requests) : 0;
    st->streams_open = words ? apr_atomic_read32(&words->streams_open) : 0;
}

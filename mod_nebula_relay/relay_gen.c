/* relay_gen.c: the host-wide words of the relay in anonymous shared memory,
 * created by the parent in post_config so that every child inherits them and
 * read and changed with APR's atomics (no lock): the generation counter of
 * configuration data (see relay_private.h) and the counters mod_status shows,
 * among them the histogram of the gateway's own time per request: buckets of
 * a quarter octave (values 0-3 µs exact, then 4 buckets per power of two, up
 * to 2^31 µs), so a percentile read from it is within a quarter of the truth
 * (linear inside its bucket). */
#include <string.h>
#include <apr_shm.h>
#include <apr_atomic.h>
#include "relay_private.h"

#define OVERHEAD_MAX_LOG2 31
#define OVERHEAD_BUCKETS  (4 * OVERHEAD_MAX_LOG2)

typedef struct {
    volatile apr_uint32_t gen;
    volatile apr_uint32_t streams_open;
    volatile apr_uint64_t requests;
    volatile apr_uint64_t overhead_count;
    volatile apr_uint64_t overhead_sum;
    volatile apr_uint64_t overhead_hist[OVERHEAD_BUCKETS];
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

/* The bucket of @a us: 0-3 themselves; then 4 per power of two 2^e (e >= 2),
 * by the two bits below the leading one. */
static int overhead_bucket(apr_uint64_t us)
{
    int e = 0;

    if (us < 4) {
        return (int)us;
    }
    if (us >= (APR_UINT64_C(1) << OVERHEAD_MAX_LOG2)) {
        return OVERHEAD_BUCKETS - 1;
    }
    while ((us >> (e + 1)) != 0) {
        ++e;
    }
    return 4 * (e - 1) + (int)((us >> (e - 2)) & 3);
}

/* The values bucket @a i holds: [*lo, *hi). */
static void overhead_range(int i, apr_uint64_t *lo, apr_uint64_t *hi)
{
    int e = i / 4 + 1, sub = i % 4;

    if (i < 4) {
        *lo = (apr_uint64_t)i;
        *hi = *lo + 1;
        return;
    }
    *lo = (apr_uint64_t)(4 + sub) << (e - 2);
    *hi = (apr_uint64_t)(5 + sub) << (e - 2);
}

void relay_stats_overhead(apr_int64_t us)
{
    apr_uint64_t v = us > 0 ? (apr_uint64_t)us : 0;

    if (words) {
        apr_atomic_add64(&words->overhead_hist[overhead_bucket(v)], 1);
        apr_atomic_add64(&words->overhead_sum, v);
        apr_atomic_add64(&words->overhead_count, 1);
    }
}

/* The @a q quantile (0 < q < 1) of the histogram @a h of @a total values,
 * linear inside the bucket it falls in. */
static apr_uint64_t overhead_quantile(const apr_uint64_t *h, apr_uint64_t total, double q)
{
    double rank = q * (double)total;
    apr_uint64_t seen = 0, lo, hi;
    int i;

    for (i = 0; total > 0 && i < OVERHEAD_BUCKETS; ++i) {
        if (h[i] > 0 && (double)(seen + h[i]) >= rank) {
            overhead_range(i, &lo, &hi);
            return lo + (apr_uint64_t)((double)(hi - lo) * (rank - (double)seen)
                                       / (double)h[i]);
        }
        seen += h[i];
    }
    return 0;
}

void relay_stats_read(relay_stats_t *st)
{
    apr_uint64_t h[OVERHEAD_BUCKETS], total = 0;
    int i;

    memset(st, 0, sizeof(*st));
    if (words == NULL) {
        return;
    }
    st->requests = apr_atomic_read64(&words->requests);
    st->streams_open = apr_atomic_read32(&words->streams_open);
    st->overhead_count = apr_atomic_read64(&words->overhead_count);
    st->overhead_us_sum = apr_atomic_read64(&words->overhead_sum);
    /* a consistent enough picture: buckets read one by one while others
     * may be added to; the quantiles use the buckets' own total */
    for (i = 0; i < OVERHEAD_BUCKETS; ++i) {
        h[i] = apr_atomic_read64(&words->overhead_hist[i]);
        total += h[i];
    }
    st->overhead_us_p50 = overhead_quantile(h, total, 0.50);
    st->overhead_us_p99 = overhead_quantile(h, total, 0.99);
}

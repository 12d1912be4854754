/* gov_limit_shm.c: the limit counters of this host, in a fixed table of
 * anonymous shared memory created by the parent in post_config (every child
 * inherits it) and guarded by the global mutex "nebula-gov-limits" (the Mutex
 * directive may choose its mechanism): safe across processes and threads,
 * bounded whatever the number of keys.
 *
 * A counter is found by the 64-bit FNV-1a hash of its name, probing at most
 * PROBE slots from hash % SLOTS. A slot whose rate counter has run out (TAT
 * in the past) or whose stream count is zero is free; when all probed slots
 * are busy the one touched least recently is taken over (its subject starts
 * afresh: a table too small forgets, it never refuses wrongly at random). */
#include <string.h>
#include "gov_private.h"
#include <apr_shm.h>
#include <apr_global_mutex.h>
#include <util_mutex.h>
#include "gov_limit.h"

#define LIMIT_MUTEX_TYPE "nebula-gov-limits"
#define SLOTS            16384
#define PROBE            32

typedef struct {
    apr_uint64_t hash;   /* 0: never used */
    apr_int64_t value;   /* rates: TAT (us since the epoch); streams: count */
    apr_int64_t touched; /* us since the epoch */
    apr_int32_t metric;
    apr_int32_t pad;
} slot_t;

static slot_t *slots;
static apr_global_mutex_t *mutex;

static apr_status_t shm_forget(void *data)
{
    (void)data;
    slots = NULL;
    mutex = NULL;
    return APR_SUCCESS;
}

apr_status_t gov_limit_shm_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, LIMIT_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

apr_status_t gov_limit_shm_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    if ((rv = apr_shm_create(&shm, sizeof(slot_t) * SLOTS, NULL, pconf)) != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, rv, s,
            "NEB03100: cannot create the shared rate-limit table (%" APR_SIZE_T_FMT
            " bytes)",
            sizeof(slot_t) * SLOTS);
        return rv;
    }
    rv = ap_global_mutex_create(&mutex, NULL, LIMIT_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB03101: cannot create the " LIMIT_MUTEX_TYPE " mutex (see the "
                     "Mutex directive)");
        return rv;
    }
    slots = apr_shm_baseaddr_get(shm);
    memset(slots, 0, sizeof(slot_t) * SLOTS);
    apr_pool_cleanup_register(pconf, NULL, shm_forget, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

void gov_limit_shm_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&mutex, apr_global_mutex_lockfile(mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB03102: cannot re-open the " LIMIT_MUTEX_TYPE " mutex in this "
                     "child; its requests are not rate-limited");
        slots = NULL;
    }
}

static apr_uint64_t fnv1a(const char *s)
{
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= APR_UINT64_C(1099511628211);
    }
    return h ? h : 1;
}

static int slot_free(const slot_t *sl, apr_time_t now)
{
    return sl->hash == 0 ||
           (sl->metric == GOV_METRIC_STREAMS ? sl->value <= 0 : sl->value <= now);
}

/* The slot of @a hash, or a free or least recently touched one (reset). */
static slot_t *slot_find(apr_uint64_t hash, int metric, apr_time_t now)
{
    apr_size_t start = (apr_size_t)(hash % SLOTS), i;
    slot_t *spare = NULL, *oldest = NULL;

    for (i = 0; i < PROBE; ++i) {
        slot_t *sl = &slots[(start + i) % SLOTS];
        if (sl->hash == hash) {
            return sl;
        }
        if (spare == NULL && slot_free(sl, now)) {
            spare = sl;
        }
        if (oldest == NULL || sl->touched < oldest->touched) {
            oldest = sl;
        }
    }
    if (spare == NULL) {
        spare = oldest;
    }
    spare->hash = hash;
    spare->metric = metric;
    spare->value = metric == GOV_METRIC_STREAMS ? 0 : now;
    spare->touched = now; /* not taken over by the request's next counter */
    return spare;
}

/* Whether @a c admits its cost, given the slot's current value. */
static int admits(const gov_counter_t *c, apr_int64_t value, apr_time_t now)
{
    apr_int64_t ahead;

    if (c->metric == GOV_METRIC_STREAMS) {
        return c->cost <= 0 || value + c->cost <= c->max;
    }
    ahead = value > now ? value - now : 0;
    if (c->metric == GOV_METRIC_TOKENS) {
        return ahead < GOV_LIMIT_WINDOW;
    }
    return ahead + c->interval * c->cost <= GOV_LIMIT_WINDOW;
}

/* Add @a c's cost to its slot and note the result in the counter. */
static void add(gov_counter_t *c, slot_t *sl, apr_time_t now)
{
    if (c->metric == GOV_METRIC_STREAMS) {
        sl->value += c->cost;
        if (sl->value < 0) {
            sl->value = 0;
        }
        c->ahead = sl->value;
    }
    else {
        apr_int64_t tat = sl->value > now ? sl->value : now;
        tat += c->interval * c->cost;
        sl->value = tat > now ? tat : now;
        c->ahead = sl->value - now;
    }
    sl->touched = now;
}

int gov_limit_shm_apply(gov_counters_t *cs, apr_time_t now, int check)
{
    slot_t *found[GOV_LIMIT_MAX_COUNTERS];
    int i, refused = -1;

    if (slots == NULL || mutex == NULL || cs->n == 0 || cs->n > GOV_LIMIT_MAX_COUNTERS) {
        return -2;
    }
    if (apr_global_mutex_lock(mutex) != APR_SUCCESS) {
        return -2;
    }
    for (i = 0; i < cs->n; ++i) {
        gov_counter_t *c = &cs->c[i];
        found[i] = slot_find(fnv1a(c->key), c->metric, now);
        if (check && refused < 0 && !admits(c, found[i]->value, now)) {
            refused = i;
        }
    }
    for (i = 0; i < cs->n; ++i) {
        gov_counter_t *c = &cs->c[i];
        if (refused < 0) {
            add(c, found[i], now);
        }
        else if (c->metric == GOV_METRIC_STREAMS) {
            c->ahead = found[i]->value;
        }
        else {
            c->ahead = found[i]->value > now ? found[i]->value - now : 0;
        }
    }
    apr_global_mutex_unlock(mutex);
    return refused;
}

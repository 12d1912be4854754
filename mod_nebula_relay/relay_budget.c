/* relay_budget.c: the retry budget (NebulaRetryBudget). Retries heal a
 * failing channel only while they are few: when most upstream calls fail,
 * retrying each of them two more times triples the load on providers that
 * are already struggling. So retries come from a budget, host-wide: over the
 * last RELAY_BUDGET_WINDOW seconds, retries may be at most RATIO of the
 * requests relayed plus MIN a second (Finagle's retry budget; Envoy's
 * retry_budget). A retry the budget refuses is not made: the client gets the
 * failed attempt's error, as when NebulaRetries is spent. Each server (vhost)
 * has its own budget, as it has its own NebulaRetryBudget.
 *
 * The counters live in anonymous shared memory created by the parent in
 * post_config, for each server one slot per second of the window, changed
 * with APR's atomics
 * (no lock). A slot older than the window is taken over by the first caller
 * of a new second (compare-and-swap on its second); counts that race with
 * the takeover may land in either second, which moves the budget by a
 * request or two, never more. */
#include <string.h>
#include <apr_atomic.h>
#include <apr_shm.h>
#include "relay_private.h"

#define RELAY_BUDGET_WINDOW 10

typedef struct {
    volatile apr_uint32_t second; /* apr_time_sec() of the slot's counts */
    volatile apr_uint32_t requests;
    volatile apr_uint32_t retries;
} budget_slot_t;

typedef struct {
    budget_slot_t slot[RELAY_BUDGET_WINDOW];
    volatile apr_uint64_t retries;  /* ever made */
    volatile apr_uint64_t refused;  /* ever refused by the budget */
} budget_words_t;

static budget_words_t *budget;    /* one per server, in the order of the list */
static int budget_servers;

apr_status_t relay_budget_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;
    server_rec *v;
    int n = 0;

    for (v = s; v; v = v->next) {
        relay_config_srv(v)->budget_idx = n++;
    }
    rv = apr_shm_create(&shm, n * sizeof(budget_words_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "NEB01480: no shared memory for the retry budget; each process "
                     "keeps its own");
        budget = apr_pcalloc(pconf, n * sizeof(budget_words_t));
        budget_servers = n;
        return rv;
    }
    budget = apr_shm_baseaddr_get(shm);
    memset(budget, 0, n * sizeof(budget_words_t));
    budget_servers = n;
    return APR_SUCCESS;
}

static budget_words_t *budget_of(const relay_srv_conf_t *c)
{
    return budget && c->budget_idx >= 0 && c->budget_idx < budget_servers
               ? &budget[c->budget_idx]
               : NULL;
}

/* The slot of second @a now, taken over if it still holds an older second. */
static budget_slot_t *budget_slot(budget_words_t *b, apr_uint32_t now)
{
    budget_slot_t *sl = &b->slot[now % RELAY_BUDGET_WINDOW];
    apr_uint32_t was = apr_atomic_read32(&sl->second);

    if (was != now && apr_atomic_cas32(&sl->second, now, was) == was) {
        apr_atomic_set32(&sl->requests, 0);
        apr_atomic_set32(&sl->retries, 0);
    }
    return sl;
}

void relay_budget_request(const relay_srv_conf_t *c)
{
    budget_words_t *b = budget_of(c);

    if (b) {
        apr_atomic_inc32(&budget_slot(b, (apr_uint32_t)apr_time_sec(apr_time_now()))->requests);
    }
}

int relay_budget_retry(const relay_srv_conf_t *c)
{
    budget_words_t *b = budget_of(c);
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint64_t requests = 0, retries = 0;
    int i;

    if (b == NULL || c->budget_ratio_ppm < 0) {
        return 1; /* NebulaRetryBudget off */
    }
    for (i = 0; i < RELAY_BUDGET_WINDOW; ++i) {
        budget_slot_t *sl = &b->slot[i];
        apr_uint32_t sec = apr_atomic_read32(&sl->second);

        if (sec + RELAY_BUDGET_WINDOW > now && sec <= now) {
            requests += apr_atomic_read32(&sl->requests);
            retries += apr_atomic_read32(&sl->retries);
        }
    }
    /* retries <= ratio x requests + min per second over the window */
    if (retries * 1000000 >= requests * (apr_uint64_t)c->budget_ratio_ppm
                                 + (apr_uint64_t)c->budget_min_per_s * RELAY_BUDGET_WINDOW
                                       * 1000000) {
        apr_atomic_add64(&b->refused, 1);
        return 0;
    }
    apr_atomic_inc32(&budget_slot(b, now)->retries);
    apr_atomic_add64(&b->retries, 1);
    return 1;
}

void relay_budget_read(apr_uint64_t *retries, apr_uint64_t *refused)
{
    int i;

    *retries = *refused = 0;
    for (i = 0; budget && i < budget_servers; ++i) {
        *retries += apr_atomic_read64(&budget[i].retries);
        *refused += apr_atomic_read64(&budget[i].refused);
    }
}

/* relay_select.c: choosing the channel and the upstream key of one attempt.
 *
 * Channels: new-api's rule. Candidates of (group, model) are grouped in
 * priority tiers; attempt n starts n tiers below the top (staying in the
 * lowest), then looks further down and finally back up, so a request never
 * fails while an untried channel is left. Within a tier the choice is
 * weighted random; a channel already tried by this request is never picked
 * again.
 */
#include <apr_strings.h>
#include <apr_atomic.h>
#include <apr_random.h>
#include "relay_private.h"
#include "relay_health.h"

/* A per-thread xorshift64* generator seeded from the CSPRNG: routing needs
 * fast, well-spread numbers, not secrets. */
static apr_uint64_t rand64(void)
{
    static __thread apr_uint64_t state;

    while (state == 0) {
        apr_generate_random_bytes((unsigned char *)&state, sizeof(state));
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * APR_UINT64_C(2685821657736338717);
}

/* The shared health table's word: breaker closed, or this caller holds the
 * half-open probe. */
static int channel_allowed(const relay_channel_t *ch)
{
    return relay_health_allow(ch->id, RELAY_HEALTH_CHANNEL, apr_time_now());
}

static int key_allowed(const relay_channel_t *ch, const relay_chkey_t *k)
{
    return relay_health_allow(ch->id, k->index, apr_time_now());
}

static int was_tried(const apr_array_header_t *tried, apr_int64_t id)
{
    int i;

    for (i = 0; tried && i < tried->nelts; ++i) {
        if (APR_ARRAY_IDX(tried, i, apr_int64_t) == id) {
            return 1;
        }
    }
    return 0;
}

/* Weighted random pick among @a n candidates with positive weights. */
static int pick_weighted(const relay_cand_t *c, int n)
{
    apr_uint64_t total = 0, x;
    int i;

    for (i = 0; i < n; ++i) {
        total += (apr_uint64_t)(c[i].weight > 0 ? c[i].weight : 0);
    }
    if (total == 0) {
        return -1;
    }
    x = rand64() % total;
    for (i = 0; i < n; ++i) {
        apr_uint64_t w = (apr_uint64_t)(c[i].weight > 0 ? c[i].weight : 0);
        if (x < w) {
            return i;
        }
        x -= w;
    }
    return n - 1;
}

/* Effective weights: all 0 means equal (new-api); with NebulaAdaptiveRouting
 * each weight is scaled by the channel's health factor (success rate and
 * latency moving averages, shared by all processes), so a failing or slow
 * channel gets less traffic before its breaker trips. */
static void effective_weights(request_rec *r, relay_cand_t *c, int n)
{
    int i, all_zero = 1, adaptive = relay_config_srv(r->server)->adaptive == 1;

    for (i = 0; i < n; ++i) {
        all_zero &= (c[i].weight <= 0);
    }
    for (i = 0; i < n; ++i) {
        double w = all_zero ? 1.0 : (c[i].weight > 0 ? (double)c[i].weight : 0.0);
        if (adaptive && w > 0) {
            w = w * 1000.0 * relay_health_weight_factor(c[i].ch->id);
            w = w < 1.0 ? 1.0 : w;
        }
        c[i].weight = (int)(w > 2e9 ? 2e9 : w);
    }
}

/* The candidates of tier @a tier (its priority), not yet tried. */
static int tier_candidates(const apr_array_header_t *all, apr_int64_t prio,
                           const apr_array_header_t *tried, relay_cand_t *out)
{
    int i, n = 0;

    for (i = 0; i < all->nelts; ++i) {
        const relay_cand_t *c = &APR_ARRAY_IDX(all, i, relay_cand_t);
        if (c->priority == prio && !was_tried(tried, c->ch->id) && c->ch->keys->nelts > 0) {
            out[n++] = *c;
        }
    }
    return n;
}

/* Distinct priorities of @a all (sorted descending already). */
static int tiers_of(const apr_array_header_t *all, apr_int64_t *tiers)
{
    int i, n = 0;

    for (i = 0; i < all->nelts; ++i) {
        apr_int64_t p = APR_ARRAY_IDX(all, i, relay_cand_t).priority;
        if (n == 0 || tiers[n - 1] != p) {
            tiers[n++] = p;
        }
    }
    return n;
}

/* Try one tier: weighted picks until the health table lets one through. */
static const relay_channel_t *pick_in_tier(request_rec *r, const apr_array_header_t *all,
                                           apr_int64_t prio,
                                           const apr_array_header_t *tried)
{
    relay_cand_t *c = apr_palloc(r->pool, sizeof(relay_cand_t) * (all->nelts + 1));
    int n = tier_candidates(all, prio, tried, c), i;

    effective_weights(r, c, n);
    while (n > 0 && (i = pick_weighted(c, n)) >= 0) {
        if (channel_allowed(c[i].ch)) {
            return c[i].ch;
        }
        c[i] = c[--n]; /* its breaker is open: the others of the tier */
    }
    return NULL;
}

const relay_channel_t *relay_select_channel(request_rec *r,
                                            const apr_array_header_t *all,
                                            int attempt, const apr_array_header_t *tried)
{
    apr_int64_t *tiers = apr_palloc(r->pool, sizeof(apr_int64_t) * (all->nelts + 1));
    int n = tiers_of(all, tiers), start, t;
    const relay_channel_t *ch;

    if (n == 0) {
        return NULL;
    }
    start = attempt < n ? attempt : n - 1;
    for (t = start; t < n; ++t) {
        if ((ch = pick_in_tier(r, all, tiers[t], tried)) != NULL) {
            return ch;
        }
    }
    for (t = start - 1; t >= 0; --t) {
        if ((ch = pick_in_tier(r, all, tiers[t], tried)) != NULL) {
            return ch;
        }
    }
    return NULL;
}

const relay_chkey_t *relay_channel_key(request_rec *r, const relay_channel_t *ch,
                                       const apr_array_header_t *tried)
{
    apr_int64_t now = apr_time_as_msec(apr_time_now());
    int n = ch->keys->nelts, i, start;

    if (n == 0) {
        return NULL;
    }
    start = strcmp(ch->key_mode, "random") ? (int)(apr_atomic_inc32(ch->rr) % (apr_uint32_t)n)
                                           : (int)(rand64() % (apr_uint64_t)n);
    for (i = 0; i < n; ++i) {
        const relay_chkey_t *k = &APR_ARRAY_IDX(ch->keys, (start + i) % n, relay_chkey_t);
        if (k->enabled && k->secret && k->cooldown_until <= now && !was_tried(tried, k->id)
            && key_allowed(ch, k)) {
            return k;
        }
    }
    return NULL;
}

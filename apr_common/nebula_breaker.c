/* nebula_breaker.c: the health table of nebula_breaker.h. It owns the layout
 * of the caller's memory block (header, hash index, slots), the breaker state
 * machine, the definitive-error rings and the moving averages. Every public
 * operation takes the caller's lock once, does O(1) work with no I/O and no
 * allocation, and releases it. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "nebula_breaker.h"

#define BRK_MAGIC   0x4b52424eu /* "NBRK" */
#define BRK_VERSION 1u
#define BRK_NIL     0xffffffffu
/* latencies below 1 microsecond count as 1 microsecond (ln 0 is -inf) */
#define BRK_MIN_LATENCY_MS 0.001

#define BRK_ALIGN(n, a) (((n) + ((a)-1)) & ~((apr_size_t)(a)-1))

/* The block starts with this header; every field is guarded by the lock. */
typedef struct {
    apr_uint32_t magic, version;
    apr_uint64_t total_size;
    nebula_breaker_conf_t conf;
    apr_uint32_t nslots, mask; /* mask + 1 buckets, a power of two >= 2 slots */
    apr_uint32_t stride, ring; /* bytes a slot; timestamps a slot's ring */
    apr_uint64_t buckets_off, slots_off;
    apr_uint32_t used, free_head, lru_head, lru_tail;
    apr_uint32_t lat_count, pad; /* whole-id slots with a latency sample ... */
    double lat_logsum;           /* ... and the sum of their ln(latency) */
    apr_uint64_t evictions;
} brk_hdr_t;

/* One slot; the ring of definitive-error timestamps follows it. Free slots
 * are chained through next; used ones form the LRU list (head = newest). */
typedef struct {
    apr_int64_t id;
    apr_int32_t key_index;
    apr_uint32_t in_use;
    apr_uint32_t prev, next;
    apr_uint32_t state, consecutive;
    apr_uint32_t ring_len, pad;
    apr_time_t open_until, probe_until;
    double success_ewma, latency_ewma_ms;
    apr_uint64_t requests, failures, latency_samples;
    apr_time_t ring[];
} brk_slot_t;

struct nebula_breaker_t {
    brk_hdr_t *hdr;
    apr_uint32_t *buckets; /* slot index + 1; 0 empty */
    char *slots;
    nebula_breaker_lock_t lock;
};

/* ---- configuration and layout ------------------------------------------ */

void nebula_breaker_conf_default(nebula_breaker_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->slots = 4096;
    conf->threshold = 5;
    conf->cooldown = apr_time_from_sec(30);
    conf->disable_count = 3;
    conf->disable_window = apr_time_from_sec(300);
    conf->success_alpha = 0.1;
    conf->latency_alpha = 0.1;
}

const char *nebula_breaker_conf_check(const nebula_breaker_conf_t *conf)
{
    if (conf->slots < NEBULA_BREAKER_MIN_SLOTS ||
        conf->slots > NEBULA_BREAKER_MAX_SLOTS) {
        return "slots must be from 64 to 1048576";
    }
    if (conf->threshold < 0 || conf->threshold > NEBULA_BREAKER_MAX_THRESHOLD) {
        return "threshold must be from 0 to 100000";
    }
    if (conf->cooldown <= 0) {
        return "cooldown must be positive";
    }
    if (conf->probe_lease < 0) {
        return "probe lease must not be negative";
    }
    if (conf->disable_count < 0 || conf->disable_count > NEBULA_BREAKER_MAX_DISABLE) {
        return "disable count must be from 0 to 100";
    }
    if (conf->disable_window <= 0) {
        return "disable window must be positive";
    }
    if (!(conf->success_alpha >= 0 && conf->success_alpha <= 1) ||
        !(conf->latency_alpha >= 0 && conf->latency_alpha <= 1)) {
        return "moving-average alphas must be from 0 to 1";
    }
    return NULL;
}

static apr_uint32_t brk_buckets_for(apr_uint32_t nslots)
{
    apr_uint32_t n = 1;

    while (n < 2 * nslots) {
        n <<= 1;
    }
    return n;
}

static apr_size_t brk_stride(int ring)
{
    return BRK_ALIGN(sizeof(brk_slot_t) + (apr_size_t)ring * sizeof(apr_time_t), 8);
}

apr_size_t nebula_breaker_size(const nebula_breaker_conf_t *conf)
{
    apr_size_t buckets_off, slots_off;

    if (nebula_breaker_conf_check(conf) != NULL) {
        return 0;
    }
    buckets_off = BRK_ALIGN(sizeof(brk_hdr_t), 64);
    slots_off =
        BRK_ALIGN(buckets_off + (apr_size_t)brk_buckets_for((apr_uint32_t)conf->slots) *
                                    sizeof(apr_uint32_t),
                  64);
    return slots_off + (apr_size_t)conf->slots * brk_stride(conf->disable_count);
}

static brk_slot_t *brk_slot(const nebula_breaker_t *b, apr_uint32_t i)
{
    return (brk_slot_t *)(b->slots + (apr_size_t)i * b->hdr->stride);
}

static nebula_breaker_t *brk_handle(void *mem, const nebula_breaker_lock_t *lock,
                                    apr_pool_t *p)
{
    nebula_breaker_t *b = apr_pcalloc(p, sizeof(*b));

    b->hdr = mem;
    b->buckets = (apr_uint32_t *)((char *)mem + b->hdr->buckets_off);
    b->slots = (char *)mem + b->hdr->slots_off;
    b->lock = *lock;
    return b;
}

apr_status_t nebula_breaker_create(nebula_breaker_t **pb, void *mem, apr_size_t size,
                                   const nebula_breaker_conf_t *conf,
                                   const nebula_breaker_lock_t *lock, apr_pool_t *p)
{
    apr_size_t need = nebula_breaker_size(conf);
    brk_hdr_t *h = mem;
    nebula_breaker_t *b;
    apr_uint32_t i, nbuckets;

    *pb = NULL;
    if (need == 0) {
        return APR_EINVAL;
    }
    if (size < need) {
        return APR_ENOSPC;
    }
    memset(mem, 0, need);
    h->magic = BRK_MAGIC;
    h->version = BRK_VERSION;
    h->total_size = need;
    h->conf = *conf;
    h->conf.probe_lease = conf->probe_lease ? conf->probe_lease : conf->cooldown;
    h->conf.success_alpha = conf->success_alpha > 0 ? conf->success_alpha : 0.1;
    h->conf.latency_alpha = conf->latency_alpha > 0 ? conf->latency_alpha : 0.1;
    h->nslots = (apr_uint32_t)conf->slots;
    nbuckets = brk_buckets_for(h->nslots);
    h->mask = nbuckets - 1;
    h->ring = (apr_uint32_t)conf->disable_count;
    h->stride = (apr_uint32_t)brk_stride(conf->disable_count);
    h->buckets_off = BRK_ALIGN(sizeof(brk_hdr_t), 64);
    h->slots_off =
        BRK_ALIGN(h->buckets_off + (apr_size_t)nbuckets * sizeof(apr_uint32_t), 64);
    h->lru_head = h->lru_tail = BRK_NIL;
    b = brk_handle(mem, lock, p);
    for (i = 0; i < h->nslots; ++i) {
        brk_slot(b, i)->next = i + 1 < h->nslots ? i + 1 : BRK_NIL;
    }
    h->free_head = 0;
    *pb = b;
    return APR_SUCCESS;
}

apr_status_t nebula_breaker_attach(nebula_breaker_t **pb, void *mem, apr_size_t size,
                                   const nebula_breaker_lock_t *lock, apr_pool_t *p)
{
    const brk_hdr_t *h = mem;

    *pb = NULL;
    if (size < sizeof(brk_hdr_t) || h->magic != BRK_MAGIC || h->version != BRK_VERSION ||
        h->total_size > size) {
        return APR_EINVAL;
    }
    *pb = brk_handle(mem, lock, p);
    return APR_SUCCESS;
}

/* ---- hash index and LRU list (caller holds the lock) ------------------- */

static apr_uint32_t brk_hash(apr_int64_t id, apr_int32_t key_index)
{
    /* splitmix64's finalizer over the id mixed with the key index */
    apr_uint64_t x = (apr_uint64_t)id ^ ((apr_uint64_t)(apr_uint32_t)key_index << 40) ^
                     ((apr_uint64_t)(apr_uint32_t)key_index * 0x9e3779b97f4a7c15ULL);

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (apr_uint32_t)x;
}

/* The slot of (id, key), or BRK_NIL; *pbucket is where it is (or where the
 * probe stopped on an empty bucket). */
static apr_uint32_t brk_find(const nebula_breaker_t *b, apr_int64_t id, int key_index,
                             apr_uint32_t *pbucket)
{
    apr_uint32_t i = brk_hash(id, key_index) & b->hdr->mask, v;

    for (;; i = (i + 1) & b->hdr->mask) {
        v = b->buckets[i];
        if (v == 0) {
            break;
        }
        if (brk_slot(b, v - 1)->id == id && brk_slot(b, v - 1)->key_index == key_index) {
            break;
        }
    }
    if (pbucket) {
        *pbucket = i;
    }
    return v ? v - 1 : BRK_NIL;
}

/* Empty bucket @a i and shift later members of its cluster back, so that
 * every lookup still finds its slot without tombstones. */
static void brk_bucket_delete(nebula_breaker_t *b, apr_uint32_t i)
{
    apr_uint32_t mask = b->hdr->mask, j = i, home;
    brk_slot_t *s;

    for (;;) {
        j = (j + 1) & mask;
        if (b->buckets[j] == 0) {
            break;
        }
        s = brk_slot(b, b->buckets[j] - 1);
        home = brk_hash(s->id, s->key_index) & mask;
        /* move j into the hole unless its home lies cyclically in (i, j] */
        if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }
        b->buckets[i] = b->buckets[j];
        i = j;
    }
    b->buckets[i] = 0;
}

static void brk_lru_unlink(nebula_breaker_t *b, apr_uint32_t idx)
{
    brk_slot_t *s = brk_slot(b, idx);

    if (s->prev != BRK_NIL) {
        brk_slot(b, s->prev)->next = s->next;
    }
    else {
        b->hdr->lru_head = s->next;
    }
    if (s->next != BRK_NIL) {
        brk_slot(b, s->next)->prev = s->prev;
    }
    else {
        b->hdr->lru_tail = s->prev;
    }
    s->prev = s->next = BRK_NIL;
}

static void brk_lru_push(nebula_breaker_t *b, apr_uint32_t idx)
{
    brk_slot_t *s = brk_slot(b, idx);

    s->prev = BRK_NIL;
    s->next = b->hdr->lru_head;
    if (s->next != BRK_NIL) {
        brk_slot(b, s->next)->prev = idx;
    }
    else {
        b->hdr->lru_tail = idx;
    }
    b->hdr->lru_head = idx;
}

static void brk_touch(nebula_breaker_t *b, apr_uint32_t idx)
{
    if (b->hdr->lru_head != idx) {
        brk_lru_unlink(b, idx);
        brk_lru_push(b, idx);
    }
}

static double brk_log_latency(double ms)
{
    return log(ms > BRK_MIN_LATENCY_MS ? ms : BRK_MIN_LATENCY_MS);
}

/* Take the slot's latency out of the reference mean (before it changes or
 * the slot goes). */
static void brk_lat_forget(nebula_breaker_t *b, const brk_slot_t *s)
{
    if (s->key_index != NEBULA_BREAKER_WHOLE || s->latency_samples == 0) {
        return;
    }
    if (--b->hdr->lat_count == 0) {
        b->hdr->lat_logsum = 0; /* no rounding residue survives an empty set */
    }
    else {
        b->hdr->lat_logsum -= brk_log_latency(s->latency_ewma_ms);
    }
}

static void brk_lat_add(nebula_breaker_t *b, const brk_slot_t *s)
{
    if (s->key_index == NEBULA_BREAKER_WHOLE && s->latency_samples > 0) {
        b->hdr->lat_count++;
        b->hdr->lat_logsum += brk_log_latency(s->latency_ewma_ms);
    }
}

/* Remove a used slot from the index and the LRU list; onto the free list. */
static void brk_release(nebula_breaker_t *b, apr_uint32_t idx)
{
    brk_slot_t *s = brk_slot(b, idx);
    apr_uint32_t bucket;

    brk_find(b, s->id, s->key_index, &bucket);
    brk_bucket_delete(b, bucket);
    brk_lru_unlink(b, idx);
    brk_lat_forget(b, s);
    s->in_use = 0;
    s->next = b->hdr->free_head;
    b->hdr->free_head = idx;
    b->hdr->used--;
}

/* The slot of (id, key), made (recycling the LRU one if need be) when absent;
 * it becomes the most recently used. */
static brk_slot_t *brk_get(nebula_breaker_t *b, apr_int64_t id, int key_index)
{
    brk_hdr_t *h = b->hdr;
    apr_uint32_t idx = brk_find(b, id, key_index, NULL), bucket;
    brk_slot_t *s;

    if (idx != BRK_NIL) {
        brk_touch(b, idx);
        return brk_slot(b, idx);
    }
    if (h->free_head == BRK_NIL) {
        brk_release(b, h->lru_tail);
        h->evictions++;
    }
    idx = h->free_head;
    s = brk_slot(b, idx);
    h->free_head = s->next;
    memset(s, 0, h->stride);
    s->id = id;
    s->key_index = key_index;
    s->in_use = 1;
    s->state = NEBULA_BREAKER_CLOSED;
    s->success_ewma = 1.0;
    brk_find(b, id, key_index, &bucket); /* after any eviction shifted buckets */
    b->buckets[bucket] = idx + 1;
    brk_lru_push(b, idx);
    h->used++;
    return s;
}

static int brk_lock(nebula_breaker_t *b)
{
    return b && b->lock.lock(b->lock.baton) == APR_SUCCESS;
}

static void brk_unlock(nebula_breaker_t *b)
{
    b->lock.unlock(b->lock.baton);
}

/* ---- the state machine -------------------------------------------------- */

static void brk_open(nebula_breaker_t *b, brk_slot_t *s, apr_time_t now)
{
    s->state = NEBULA_BREAKER_OPEN;
    s->open_until = now + b->hdr->conf.cooldown;
    s->probe_until = 0;
}

int nebula_breaker_allow(nebula_breaker_t *b, apr_int64_t id, int key_index,
                         apr_time_t now)
{
    apr_uint32_t idx;
    brk_slot_t *s;
    int allowed = 1;

    if (!brk_lock(b)) {
        return 1; /* fail open: a broken lock must not stop all traffic */
    }
    idx = brk_find(b, id, key_index, NULL);
    if (idx != BRK_NIL) {
        s = brk_slot(b, idx);
        brk_touch(b, idx);
        if (s->state == NEBULA_BREAKER_OPEN && now >= s->open_until) {
            s->state = NEBULA_BREAKER_HALF_OPEN;
            s->open_until = 0;
            s->probe_until = 0;
        }
        if (s->state == NEBULA_BREAKER_OPEN) {
            allowed = 0;
        }
        else if (s->state == NEBULA_BREAKER_HALF_OPEN) {
            /* one lease at a time; a lease nobody reported on runs out */
            allowed = s->probe_until == 0 || now >= s->probe_until;
            if (allowed) {
                s->probe_until = now + b->hdr->conf.probe_lease;
            }
        }
    }
    brk_unlock(b);
    return allowed;
}

static void brk_ewma(double *avg, double sample, double alpha)
{
    *avg += alpha * (sample - *avg);
}

void nebula_breaker_success(nebula_breaker_t *b, apr_int64_t id, int key_index,
                            apr_interval_time_t latency, apr_time_t now)
{
    const nebula_breaker_conf_t *c;
    brk_slot_t *s;
    double ms = (double)latency / 1000.0;

    (void)now;
    if (!brk_lock(b)) {
        return;
    }
    c = &b->hdr->conf;
    s = brk_get(b, id, key_index);
    s->requests++;
    brk_ewma(&s->success_ewma, 1.0, c->success_alpha);
    if (latency >= 0) {
        brk_lat_forget(b, s);
        if (s->latency_samples++ == 0) {
            s->latency_ewma_ms = ms;
        }
        else {
            brk_ewma(&s->latency_ewma_ms, ms, c->latency_alpha);
        }
        brk_lat_add(b, s);
    }
    if (s->state != NEBULA_BREAKER_OPEN) {
        /* a half-open probe (or any call) that worked closes it; reports of
         * calls admitted before an opening leave the cool-down alone */
        s->state = NEBULA_BREAKER_CLOSED;
        s->consecutive = 0;
        s->probe_until = 0;
    }
    brk_unlock(b);
}

/* Record a definitive error: the ring keeps the latest disable_count
 * timestamps by value (a report older than all of them changes nothing).
 * 1 when it is full and spans less than the window; it then starts over. */
static int brk_definitive(nebula_breaker_t *b, brk_slot_t *s, apr_time_t now)
{
    apr_uint32_t ring = b->hdr->ring, i, oldest = 0;
    apr_time_t lo, hi;

    if (ring == 0) {
        return 0;
    }
    if (s->ring_len < ring) {
        s->ring[s->ring_len++] = now;
    }
    else {
        for (i = 1; i < ring; ++i) {
            oldest = s->ring[i] < s->ring[oldest] ? i : oldest;
        }
        if (now <= s->ring[oldest]) {
            return 0;
        }
        s->ring[oldest] = now;
    }
    if (s->ring_len < ring) {
        return 0;
    }
    lo = hi = s->ring[0];
    for (i = 1; i < ring; ++i) {
        lo = s->ring[i] < lo ? s->ring[i] : lo;
        hi = s->ring[i] > hi ? s->ring[i] : hi;
    }
    if (hi - lo >= b->hdr->conf.disable_window) {
        return 0;
    }
    s->ring_len = 0;
    return 1;
}

int nebula_breaker_failure(nebula_breaker_t *b, apr_int64_t id, int key_index,
                           int definitive, apr_time_t now)
{
    const nebula_breaker_conf_t *c;
    brk_slot_t *s;
    int verdict = NEBULA_BREAKER_OK;

    if (!brk_lock(b)) {
        return NEBULA_BREAKER_OK;
    }
    c = &b->hdr->conf;
    s = brk_get(b, id, key_index);
    s->requests++;
    s->failures++;
    brk_ewma(&s->success_ewma, 0.0, c->success_alpha);
    if (s->consecutive < 0x7fffffffu) {
        s->consecutive++;
    }
    if (s->state == NEBULA_BREAKER_HALF_OPEN ||
        (s->state == NEBULA_BREAKER_CLOSED && c->threshold > 0 &&
         s->consecutive >= (apr_uint32_t)c->threshold)) {
        brk_open(b, s, now);
    }
    if (definitive && brk_definitive(b, s, now)) {
        verdict = NEBULA_BREAKER_DISABLE;
    }
    brk_unlock(b);
    return verdict;
}

void nebula_breaker_reset(nebula_breaker_t *b, apr_int64_t id, int key_index)
{
    apr_uint32_t idx;

    if (!brk_lock(b)) {
        return;
    }
    idx = brk_find(b, id, key_index, NULL);
    if (idx != BRK_NIL) {
        brk_release(b, idx);
    }
    brk_unlock(b);
}

/* ---- reading ------------------------------------------------------------ */

double nebula_breaker_weight_factor(nebula_breaker_t *b, apr_int64_t id)
{
    apr_uint32_t idx;
    const brk_slot_t *s;
    double success = 1, latency = 0, logsum = 0, f, ref;
    apr_uint64_t requests = 0, samples = 0;
    apr_uint32_t lat_count = 0;

    if (!brk_lock(b)) {
        return 1;
    }
    idx = brk_find(b, id, NEBULA_BREAKER_WHOLE, NULL);
    if (idx != BRK_NIL) {
        s = brk_slot(b, idx);
        success = s->success_ewma;
        latency = s->latency_ewma_ms;
        requests = s->requests;
        samples = s->latency_samples;
        lat_count = b->hdr->lat_count;
        logsum = b->hdr->lat_logsum;
    }
    brk_unlock(b);
    if (requests == 0) {
        return 1;
    }
    f = success * success;
    if (samples > 0 && lat_count > 0) {
        ref = exp(logsum / lat_count);
        latency = latency > BRK_MIN_LATENCY_MS ? latency : BRK_MIN_LATENCY_MS;
        if (ref < latency) {
            f *= sqrt(ref / latency);
        }
    }
    if (!(f >= NEBULA_BREAKER_MIN_FACTOR)) { /* also catches NaN */
        return NEBULA_BREAKER_MIN_FACTOR;
    }
    return f > 1 ? 1 : f;
}

static void brk_copy(const nebula_breaker_t *b, const brk_slot_t *s, apr_time_t now,
                     nebula_breaker_slot_t *out)
{
    apr_uint32_t i;

    out->id = s->id;
    out->key_index = s->key_index;
    out->state = (nebula_breaker_state_e)s->state;
    out->consecutive_failures = (int)s->consecutive;
    out->open_until = s->state == NEBULA_BREAKER_OPEN ? s->open_until : 0;
    out->probe_until = s->state == NEBULA_BREAKER_HALF_OPEN ? s->probe_until : 0;
    out->recent_definitive = 0;
    for (i = 0; i < s->ring_len; ++i) {
        if (now - s->ring[i] < b->hdr->conf.disable_window) {
            out->recent_definitive++;
        }
    }
    out->success_ewma = s->success_ewma;
    out->latency_ewma_ms = s->latency_ewma_ms;
    out->requests = s->requests;
    out->failures = s->failures;
}

apr_array_header_t *nebula_breaker_snapshot(nebula_breaker_t *b, apr_pool_t *p,
                                            apr_time_t now)
{
    apr_array_header_t *arr;
    apr_uint32_t idx;
    int cap;

    /* size the copy outside the lock: no allocation inside it */
    if (!brk_lock(b)) {
        return NULL;
    }
    cap = (int)b->hdr->used + 64;
    brk_unlock(b);
    arr = apr_array_make(p, cap, sizeof(nebula_breaker_slot_t));
    if (!brk_lock(b)) {
        return NULL;
    }
    for (idx = b->hdr->lru_head; idx != BRK_NIL && arr->nelts < cap;
         idx = brk_slot(b, idx)->next) {
        brk_copy(b, brk_slot(b, idx), now,
                 &((nebula_breaker_slot_t *)arr->elts)[arr->nelts++]);
    }
    brk_unlock(b);
    return arr;
}

apr_status_t nebula_breaker_stats(nebula_breaker_t *b, nebula_breaker_stats_t *st)
{
    if (!brk_lock(b)) {
        return APR_EGENERAL;
    }
    st->slots = (int)b->hdr->nslots;
    st->used = (int)b->hdr->used;
    st->evictions = b->hdr->evictions;
    brk_unlock(b);
    return APR_SUCCESS;
}

/* ---- self-check ----------------------------------------------------------- */

static const char *brk_verify_lists(nebula_breaker_t *b)
{
    const brk_hdr_t *h = b->hdr;
    apr_uint32_t idx, prev = BRK_NIL, n = 0, lat = 0;
    const brk_slot_t *s;

    for (idx = h->lru_head; idx != BRK_NIL; prev = idx, idx = s->next) {
        if (idx >= h->nslots || ++n > h->nslots) {
            return "LRU list leaves the table or loops";
        }
        s = brk_slot(b, idx);
        if (!s->in_use || s->prev != prev) {
            return "LRU list holds a free slot or a wrong back link";
        }
        if (brk_find(b, s->id, s->key_index, NULL) != idx) {
            return "a used slot is not found by its key";
        }
        lat += s->key_index == NEBULA_BREAKER_WHOLE && s->latency_samples > 0;
    }
    if (prev != h->lru_tail || n != h->used) {
        return "LRU tail or used count is wrong";
    }
    if (lat != h->lat_count) {
        return "latency reference count is wrong";
    }
    for (n = 0, idx = h->free_head; idx != BRK_NIL; idx = brk_slot(b, idx)->next) {
        if (idx >= h->nslots || ++n > h->nslots || brk_slot(b, idx)->in_use) {
            return "free list holds a used slot, leaves the table or loops";
        }
    }
    if (n + h->used != h->nslots) {
        return "free and used slots do not add up";
    }
    return NULL;
}

const char *nebula_breaker_verify(nebula_breaker_t *b)
{
    const char *err;
    apr_uint32_t i, n = 0;

    if (!brk_lock(b)) {
        return "cannot take the lock";
    }
    err = brk_verify_lists(b);
    for (i = 0; err == NULL && i <= b->hdr->mask; ++i) {
        if (b->buckets[i] == 0) {
            continue;
        }
        if (b->buckets[i] > b->hdr->nslots || !brk_slot(b, b->buckets[i] - 1)->in_use) {
            err = "hash index points at a free slot";
        }
        n++;
    }
    if (err == NULL && n != b->hdr->used) {
        err = "hash index and used count differ";
    }
    brk_unlock(b);
    return err;
}

/**
 * @file nebula_breaker.h
 * @brief Health table: a fixed-size table of circuit breakers, definitive-error
 *        windows and moving averages, laid out in one caller-provided memory
 *        block and guarded by a caller-provided lock.
 *
 * The library never allocates the table itself and never knows what kind of
 * memory or lock it is given: mod_nebula_relay hands it anonymous shared
 * memory and an httpd global mutex (so that every child process sees one
 * breaker per slot); the unit tests hand it a plain buffer, or an mmap shared
 * by forked processes with an apr_proc_mutex. Everything inside the block is
 * addressed by index, never by pointer, so each process may map it anywhere.
 *
 * Slots are keyed by (id, key index). Lookup is an open-addressing hash
 * (linear probing, backward-shift deletion, load factor at most 1/2) over an
 * index array; a doubly linked LRU list through the slots recycles the least
 * recently used slot when every slot is taken. Every operation is O(1) under
 * the lock except nebula_breaker_snapshot() and nebula_breaker_verify(), which
 * walk the table.
 *
 * Breaker of a slot:
 * - CLOSED: calls are allowed. @c threshold consecutive failures open it
 *   (a success resets the count); threshold 0 never opens it.
 * - OPEN until @c open_until = time of the opening failure + @c cooldown:
 *   calls are refused. Reports that arrive meanwhile (calls admitted before
 *   it opened) update counters and averages but do not move the breaker.
 * - After the cool-down the first nebula_breaker_allow() moves it to
 *   HALF_OPEN and is granted the probe, a lease that lasts @c probe_lease.
 *   While the lease runs every other caller, in any process, is refused.
 *   A success closes the breaker; a failure re-opens it for a new cool-down.
 *   If nobody reports before the lease ends (the prober died), the next
 *   caller is granted a new probe, so a lost probe never wedges the slot.
 *
 * Definitive errors (nebula_breaker_failure() with @c definitive set): each
 * slot keeps the latest @c disable_count timestamps (by value, so reports
 * that reach the lock out of order are handled; exact to the microsecond,
 * not a bucketed estimate). When it holds that many and newest - oldest <
 * @c disable_window (for reports in order: now - t < window for each), the
 * failure answers NEBULA_BREAKER_DISABLE once and the ring is emptied, so
 * the count starts over (the caller disables the channel or key; if that
 * fails, another @c disable_count errors are needed to ask again). Successes
 * do not clear the ring; only nebula_breaker_reset() does.
 *
 * Moving averages (exponentially weighted, per slot):
 * - success: starts at 1, then s += alpha * (outcome - s), outcome 1 for a
 *   success and 0 for a failure (alpha = @c success_alpha, default 0.1);
 * - latency: only successes carry one; the first sample is taken as is, then
 *   L += alpha * (sample - L) (alpha = @c latency_alpha, default 0.1).
 *
 * Weight factor of an id (its slot with key index NEBULA_BREAKER_WHOLE):
 *     f = clamp(s^2 * min(1, sqrt(Lref / L)), 0.05, 1)
 * where Lref is the geometric mean of L over every whole-id slot that has a
 * latency sample (kept as a running sum of ln L, so it costs O(1)). An id
 * without any report, or whose slot was recycled, gets 1; an id with reports
 * but no latency sample yet gets s^2. f never increases when s falls, nor
 * when L grows with the others unchanged (Lref grows as L^(1/n), slower).
 * Examples: s = 0.9 -> 0.81; 4x slower than Lref -> 0.5; 100x -> 0.1.
 * Why these choices: the reference spans every channel of the host, whatever
 * model it serves, so it must not be dragged by one outlier (geometric mean)
 * and a channel that merely serves a slower model must not hit the floor
 * (the square root); callers pick among candidates by relative weight, and
 * between two unclamped candidates of equal success the ratio of factors is
 * sqrt(L2 / L1). Failures weigh more than slowness (the square on s).
 */
#ifndef NEBULA_BREAKER_H
#define NEBULA_BREAKER_H

#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** The whole-id slot (a channel as a whole, rather than one of its keys). */
#define NEBULA_BREAKER_WHOLE (-1)

/** What nebula_breaker_failure() asks the caller to do. */
#define NEBULA_BREAKER_OK      0
#define NEBULA_BREAKER_DISABLE 1 /**< the definitive-error count was reached */

/** Bounds the table accepts (nebula_breaker_size() returns 0 outside). */
#define NEBULA_BREAKER_MIN_SLOTS     64
#define NEBULA_BREAKER_MAX_SLOTS     1048576
#define NEBULA_BREAKER_MAX_THRESHOLD 100000
#define NEBULA_BREAKER_MAX_DISABLE   100 /**< ring capacity, timestamps a slot */

/** Lower bound of nebula_breaker_weight_factor(). */
#define NEBULA_BREAKER_MIN_FACTOR 0.05

typedef enum {
    NEBULA_BREAKER_CLOSED = 0,
    NEBULA_BREAKER_OPEN,
    NEBULA_BREAKER_HALF_OPEN
} nebula_breaker_state_e;

/** Settings, fixed when the table is created (copied into the block). */
typedef struct {
    int slots;                          /**< slots in the table */
    int threshold;                      /**< consecutive failures that open; 0 never */
    apr_interval_time_t cooldown;       /**< how long it stays open (> 0) */
    apr_interval_time_t probe_lease;    /**< half-open probe lease; 0: the cooldown */
    int disable_count;                  /**< definitive errors ...; 0 never */
    apr_interval_time_t disable_window; /**< ... within this window disable */
    double success_alpha;               /**< 0 < alpha <= 1; 0: 0.1 */
    double latency_alpha;               /**< 0 < alpha <= 1; 0: 0.1 */
} nebula_breaker_conf_t;

/**
 * The lock that guards the block. Both callbacks receive @a baton. They must
 * exclude every process and thread that uses the same block; a lock() that
 * fails makes the operation fail open (allowed, nothing recorded).
 */
typedef struct {
    apr_status_t (*lock)(void *baton);
    apr_status_t (*unlock)(void *baton);
    void *baton;
} nebula_breaker_lock_t;

/**
 * A process-local handle on a table. It holds no state of its own beyond
 * where the block is and how to lock it, so a handle made before fork() may
 * be used by the children. Allocated in the pool given to create/attach.
 */
typedef struct nebula_breaker_t nebula_breaker_t;

/** A copy of one slot (see nebula_breaker_snapshot()). */
typedef struct {
    apr_int64_t id;
    int key_index;
    nebula_breaker_state_e state;
    int consecutive_failures;
    apr_time_t open_until; /**< 0 unless OPEN */
    apr_time_t
        probe_until;       /**< end of the probe lease, 0 unless HALF_OPEN with one out */
    int recent_definitive; /**< definitive errors with now - t < window (at most the
                              count) */
    double success_ewma;   /**< 0..1 */
    double latency_ewma_ms; /**< 0 without a sample */
    apr_uint64_t requests, failures;
} nebula_breaker_slot_t;

/** Table-wide counters (see nebula_breaker_stats()). */
typedef struct {
    int slots, used;
    apr_uint64_t evictions; /**< slots recycled by LRU */
} nebula_breaker_stats_t;

/** Fill @a conf with the defaults (5 failures, 30 s; 3 in 5 min; 4096 slots). */
void nebula_breaker_conf_default(nebula_breaker_conf_t *conf);

/**
 * Check @a conf. Returns NULL when it is usable, else a static message
 * naming the bad field.
 */
const char *nebula_breaker_conf_check(const nebula_breaker_conf_t *conf);

/** Bytes the block needs for @a conf; 0 when nebula_breaker_conf_check() fails. */
apr_size_t nebula_breaker_size(const nebula_breaker_conf_t *conf);

/**
 * Format @a mem (at least nebula_breaker_size() bytes, 8-byte aligned) as an
 * empty table and return a handle on it in @a pb.
 * @return APR_SUCCESS, APR_EINVAL for a bad conf, APR_ENOSPC when @a size is
 *         too small.
 */
apr_status_t nebula_breaker_create(nebula_breaker_t **pb, void *mem, apr_size_t size,
                                   const nebula_breaker_conf_t *conf,
                                   const nebula_breaker_lock_t *lock, apr_pool_t *p);

/**
 * A handle on a block that nebula_breaker_create() formatted (in this or
 * another process), with this process's own @a lock.
 * @return APR_SUCCESS, or APR_EINVAL when @a mem does not hold a table of at
 *         most @a size bytes.
 */
apr_status_t nebula_breaker_attach(nebula_breaker_t **pb, void *mem, apr_size_t size,
                                   const nebula_breaker_lock_t *lock, apr_pool_t *p);

/**
 * May (@a id, @a key_index) be tried at @a now? 1 when CLOSED (or unknown),
 * or when the half-open probe was granted to this caller (who must then
 * report the outcome); 0 when OPEN or when another caller holds the probe.
 * Never allocates a slot.
 */
int nebula_breaker_allow(nebula_breaker_t *b, apr_int64_t id, int key_index,
                         apr_time_t now);

/** Record a success and its @a latency (negative: no latency sample). */
void nebula_breaker_success(nebula_breaker_t *b, apr_int64_t id, int key_index,
                            apr_interval_time_t latency, apr_time_t now);

/**
 * Record a failure; @a definitive for errors that waiting will not heal.
 * @return NEBULA_BREAKER_DISABLE when the definitive-error count was reached
 *         within the window (once per crossing), else NEBULA_BREAKER_OK.
 */
int nebula_breaker_failure(nebula_breaker_t *b, apr_int64_t id, int key_index,
                           int definitive, apr_time_t now);

/** Forget the slot (a no-op when there is none). */
void nebula_breaker_reset(nebula_breaker_t *b, apr_int64_t id, int key_index);

/** The weight factor of @a id, in [NEBULA_BREAKER_MIN_FACTOR, 1] (formula above). */
double nebula_breaker_weight_factor(nebula_breaker_t *b, apr_int64_t id);

/**
 * Copies of every used slot, most recently used first, as an array of
 * nebula_breaker_slot_t allocated in @a p; @a now decides which definitive
 * errors are recent. NULL when the lock failed.
 */
apr_array_header_t *nebula_breaker_snapshot(nebula_breaker_t *b, apr_pool_t *p,
                                            apr_time_t now);

/** Table-wide counters; APR_SUCCESS unless the lock failed. */
apr_status_t nebula_breaker_stats(nebula_breaker_t *b, nebula_breaker_stats_t *st);

/**
 * Check the table's internal invariants (hash reaches every used slot, LRU
 * and free lists are consistent, counts add up). For tests and debugging.
 * @return NULL when sound, else a static description of the first fault.
 */
const char *nebula_breaker_verify(nebula_breaker_t *b);

#endif /* NEBULA_BREAKER_H */

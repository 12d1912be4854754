/* test_breaker.c: nebula_breaker, the health table behind mod_nebula_relay's
 * circuit breakers. The state machine on a plain buffer with a no-op lock
 * (closed -> open -> half-open -> closed/open, the single probe and its
 * lease), the definitive-error window at its boundaries, LRU recycling, the
 * weight factor; then the same table shared by threads (apr_thread_mutex)
 * and by forked processes (anonymous apr_shm + apr_proc_mutex), which must
 * grant exactly one half-open probe between them and lose no report. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_proc_mutex.h>
#include <apr_shm.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "nebula_breaker.h"
#include "nebula_unit.h"

#define T0       apr_time_from_sec(1000000)
#define COOLDOWN apr_time_from_sec(30)
#define WINDOW   apr_time_from_sec(300)
#define CH       42

static apr_status_t nolock(void *baton)
{
    (void)baton;
    return APR_SUCCESS;
}

static const nebula_breaker_lock_t no_lock = {nolock, nolock, NULL};

/* A table on a pool buffer: threshold 3, cool-down 30 s, 3 definitive in 5 min. */
static nebula_breaker_t *table(int slots, int threshold)
{
    nebula_breaker_conf_t c;
    nebula_breaker_t *b;
    apr_size_t size;
    void *mem;

    nebula_breaker_conf_default(&c);
    c.slots = slots;
    c.threshold = threshold;
    c.cooldown = COOLDOWN;
    c.disable_count = 3;
    c.disable_window = WINDOW;
    size = nebula_breaker_size(&c);
    ck_assert_uint_gt(size, 0);
    mem = apr_palloc(unit_pool, size);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size, &c, &no_lock, unit_pool),
                     APR_SUCCESS);
    return b;
}

/* The snapshot copy of one slot; the test fails when it is absent. */
static nebula_breaker_slot_t slot_of(nebula_breaker_t *b, apr_int64_t id, int key,
                                     apr_time_t now)
{
    apr_array_header_t *a = nebula_breaker_snapshot(b, unit_pool, now);
    int i;

    ck_assert_ptr_nonnull(a);
    for (i = 0; i < a->nelts; ++i) {
        nebula_breaker_slot_t *s = &APR_ARRAY_IDX(a, i, nebula_breaker_slot_t);
        if (s->id == id && s->key_index == key) {
            return *s;
        }
    }
    ck_abort_msg("no slot (%" APR_INT64_T_FMT ", %d)", id, key);
    return *(nebula_breaker_slot_t *)NULL;
}

static int has_slot(nebula_breaker_t *b, apr_int64_t id, int key)
{
    apr_array_header_t *a = nebula_breaker_snapshot(b, unit_pool, T0);
    int i;

    for (i = 0; i < a->nelts; ++i) {
        if (APR_ARRAY_IDX(a, i, nebula_breaker_slot_t).id == id &&
            APR_ARRAY_IDX(a, i, nebula_breaker_slot_t).key_index == key) {
            return 1;
        }
    }
    return 0;
}

/* Open the breaker of CH with three failures at T0. */
static void trip(nebula_breaker_t *b)
{
    int i;

    for (i = 0; i < 3; ++i) {
        ck_assert_int_eq(nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0),
                         NEBULA_BREAKER_OK);
    }
}

START_TEST(closed_opens_after_threshold)
{
    nebula_breaker_t *b = table(64, 3);

    /* two failures, a success: the count starts over */
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).consecutive_failures, 2);
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 1000, T0);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).state, NEBULA_BREAKER_CLOSED);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0), 1);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0 + 5);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).state, NEBULA_BREAKER_OPEN);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).open_until, T0 + 5 + COOLDOWN);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0 + 5), 0);
    /* other slots, and the channel's keys, are independent */
    ck_assert_int_eq(nebula_breaker_allow(b, CH, 0, T0 + 5), 1);
    ck_assert_int_eq(nebula_breaker_allow(b, CH + 1, NEBULA_BREAKER_WHOLE, T0 + 5), 1);
}
END_TEST

START_TEST(open_refuses_until_cooldown)
{
    nebula_breaker_t *b = table(64, 3);
    apr_time_t t;

    trip(b);
    for (t = T0; t < T0 + COOLDOWN; t += apr_time_from_sec(1)) {
        ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, t), 0);
    }
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0 + COOLDOWN - 1),
                     0);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0 + COOLDOWN), 1);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).state, NEBULA_BREAKER_HALF_OPEN);
}
END_TEST

START_TEST(half_open_grants_one_probe)
{
    nebula_breaker_t *b = table(64, 3);
    apr_time_t half = T0 + COOLDOWN;
    int i, granted = 0;

    trip(b);
    for (i = 0; i < 1000; ++i) {
        granted += nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + i);
    }
    ck_assert_int_eq(granted, 1);
    ck_assert_int_eq(slot_of(b, CH, -1, half).probe_until, half + COOLDOWN);
}
END_TEST

START_TEST(probe_success_closes)
{
    nebula_breaker_t *b = table(64, 3);
    apr_time_t half = T0 + COOLDOWN;
    int i;

    trip(b);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half), 1);
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 2000, half + 10);
    ck_assert_int_eq(slot_of(b, CH, -1, half).state, NEBULA_BREAKER_CLOSED);
    ck_assert_int_eq(slot_of(b, CH, -1, half).consecutive_failures, 0);
    for (i = 0; i < 10; ++i) {
        ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + 11), 1);
    }
    /* and it takes a full threshold again to open */
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, half + 20);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, half + 20);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + 21), 1);
}
END_TEST

START_TEST(probe_failure_reopens)
{
    nebula_breaker_t *b = table(64, 3);
    apr_time_t half = T0 + COOLDOWN, fail = half + apr_time_from_sec(2);

    trip(b);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half), 1);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, fail);
    ck_assert_int_eq(slot_of(b, CH, -1, fail).state, NEBULA_BREAKER_OPEN);
    ck_assert_int_eq(slot_of(b, CH, -1, fail).open_until, fail + COOLDOWN);
    ck_assert_int_eq(
        nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, fail + COOLDOWN - 1), 0);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, fail + COOLDOWN),
                     1);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, fail + COOLDOWN),
                     0);
}
END_TEST

START_TEST(probe_lease_expires)
{
    nebula_breaker_t *b = table(64, 3);
    apr_time_t half = T0 + COOLDOWN;

    trip(b);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half), 1);
    /* the prober never reports (its process died) */
    ck_assert_int_eq(
        nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + COOLDOWN - 1), 0);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + COOLDOWN),
                     1);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + COOLDOWN),
                     0);
    ck_assert_int_eq(slot_of(b, CH, -1, half).state, NEBULA_BREAKER_HALF_OPEN);
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 1000, half + COOLDOWN + 1);
    ck_assert_int_eq(
        nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, half + COOLDOWN + 2), 1);
}
END_TEST

START_TEST(late_reports_while_open)
{
    nebula_breaker_t *b = table(64, 3);

    trip(b);
    /* calls admitted before it opened report afterwards: no state change */
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 1000, T0 + 1);
    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0 + apr_time_from_sec(10));
    ck_assert_int_eq(slot_of(b, CH, -1, T0).state, NEBULA_BREAKER_OPEN);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).open_until, T0 + COOLDOWN);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0 + COOLDOWN), 1);
}
END_TEST

START_TEST(threshold_zero_never_opens)
{
    nebula_breaker_t *b = table(64, 0);
    int i;

    for (i = 0; i < 1000; ++i) {
        nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    }
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0), 1);
    ck_assert_int_eq(slot_of(b, CH, -1, T0).state, NEBULA_BREAKER_CLOSED);
}
END_TEST

START_TEST(allow_and_reset_allocate_nothing)
{
    nebula_breaker_t *b = table(64, 3);
    nebula_breaker_stats_t st;

    ck_assert_int_eq(nebula_breaker_allow(b, 7, NEBULA_BREAKER_WHOLE, T0), 1);
    nebula_breaker_reset(b, 7, 3);
    ck_assert_double_eq(nebula_breaker_weight_factor(b, 7), 1.0);
    ck_assert_int_eq(nebula_breaker_stats(b, &st), APR_SUCCESS);
    ck_assert_int_eq(st.used, 0);
    ck_assert_int_eq(st.slots, 64);
    /* reset forgets an open breaker */
    trip(b);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0), 0);
    nebula_breaker_reset(b, CH, NEBULA_BREAKER_WHOLE);
    ck_assert_int_eq(nebula_breaker_allow(b, CH, NEBULA_BREAKER_WHOLE, T0), 1);
    ck_assert(!has_slot(b, CH, -1));
    ck_assert_ptr_null(nebula_breaker_verify(b));
}
END_TEST

/* count 3, window W: an error at t counts while now - t < W */
START_TEST(window_boundaries)
{
    nebula_breaker_t *b = table(64, 1000);
    apr_int64_t k = NEBULA_BREAKER_WHOLE;

    /* a single definitive error never disables; non-definitive ones never count */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 0, T0 + 1), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 0, T0 + 2), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 3), NEBULA_BREAKER_OK);
    ck_assert_int_eq(slot_of(b, CH, k, T0 + 3).recent_definitive, 2);
    /* the third inside the window (W - 1 us after the first) disables, once */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW - 1),
                     NEBULA_BREAKER_DISABLE);
    ck_assert_int_eq(slot_of(b, CH, k, T0 + WINDOW).recent_definitive, 0);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW), NEBULA_BREAKER_OK);

    /* exactly W after the first: the first no longer counts */
    nebula_breaker_reset(b, CH, k);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 1), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW), NEBULA_BREAKER_OK);
    ck_assert_int_eq(slot_of(b, CH, k, T0 + WINDOW).recent_definitive, 2);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW + 1),
                     NEBULA_BREAKER_OK);
    /* the last three: W, W+1, W+2 */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW + 2),
                     NEBULA_BREAKER_DISABLE);

    /* reports that reach the lock out of order are kept by value */
    nebula_breaker_reset(b, CH, k);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 2), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 1), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 3), NEBULA_BREAKER_DISABLE);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW + 5),
                     NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 5), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 4),
                     NEBULA_BREAKER_OK); /* {4, 5, W+5}: spans W+1 */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + 3),
                     NEBULA_BREAKER_OK); /* older than all three: dropped */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW + 4),
                     NEBULA_BREAKER_OK); /* {5, W+4, W+5}: spans W */
    ck_assert_int_eq(nebula_breaker_failure(b, CH, k, 1, T0 + WINDOW + 6),
                     NEBULA_BREAKER_DISABLE); /* {W+4, W+5, W+6} */
}
END_TEST

START_TEST(disable_count_one_and_off)
{
    nebula_breaker_conf_t c;
    nebula_breaker_t *b;
    apr_size_t size;
    void *mem;

    nebula_breaker_conf_default(&c);
    c.slots = 64;
    c.disable_count = 1;
    size = nebula_breaker_size(&c);
    mem = apr_palloc(unit_pool, size);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size, &c, &no_lock, unit_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_breaker_failure(b, 1, 0, 1, T0), NEBULA_BREAKER_DISABLE);

    c.disable_count = 0;
    size = nebula_breaker_size(&c);
    mem = apr_palloc(unit_pool, size);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size, &c, &no_lock, unit_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_breaker_failure(b, 1, 0, 1, T0), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_failure(b, 1, 0, 1, T0), NEBULA_BREAKER_OK);
    ck_assert_int_eq(slot_of(b, 1, 0, T0).recent_definitive, 0);
}
END_TEST

START_TEST(lru_recycles_least_recent)
{
    nebula_breaker_t *b = table(64, 3);
    nebula_breaker_stats_t st;
    int i;

    for (i = 0; i < 64; ++i) {
        nebula_breaker_success(b, i, NEBULA_BREAKER_WHOLE, 1000, T0);
    }
    ck_assert_int_eq(nebula_breaker_stats(b, &st), APR_SUCCESS);
    ck_assert_int_eq(st.used, 64);
    ck_assert_uint_eq(st.evictions, 0);
    /* 0 is the oldest; using it (allow counts) makes 1 the oldest */
    nebula_breaker_allow(b, 0, NEBULA_BREAKER_WHOLE, T0);
    nebula_breaker_failure(b, 100, 2, 0, T0);
    ck_assert(has_slot(b, 0, -1));
    ck_assert(!has_slot(b, 1, -1));
    ck_assert(has_slot(b, 2, -1));
    ck_assert(has_slot(b, 100, 2));
    nebula_breaker_success(b, 101, 2, 1000, T0);
    ck_assert(!has_slot(b, 2, -1));
    ck_assert_int_eq(nebula_breaker_stats(b, &st), APR_SUCCESS);
    ck_assert_int_eq(st.used, 64);
    ck_assert_uint_eq(st.evictions, 2);
    /* a recycled slot starts afresh */
    nebula_breaker_success(b, 1, NEBULA_BREAKER_WHOLE, 1000, T0);
    ck_assert_uint_eq(slot_of(b, 1, -1, T0).requests, 1);
    ck_assert_ptr_null(nebula_breaker_verify(b));
}
END_TEST

/* Random churn with resets keeps the hash, LRU and free lists consistent
 * (backward-shift deletion across clusters and the table's wrap-around). */
START_TEST(churn_keeps_invariants)
{
    nebula_breaker_t *b = table(64, 3);
    unsigned int seed = 12345;
    int i;

    for (i = 0; i < 50000; ++i) {
        apr_int64_t id = rand_r(&seed) % 300;
        int key = rand_r(&seed) % 3 - 1;

        switch (rand_r(&seed) % 4) {
        case 0:
            nebula_breaker_success(b, id, key, rand_r(&seed) % 100000, T0 + i);
            break;
        case 1:
            nebula_breaker_failure(b, id, key, rand_r(&seed) % 2, T0 + i);
            break;
        case 2:
            nebula_breaker_allow(b, id, key, T0 + i);
            break;
        default:
            nebula_breaker_reset(b, id, key);
        }
        if (i % 97 == 0) {
            const char *err = nebula_breaker_verify(b);
            ck_assert_msg(err == NULL, "after %d operations: %s", i, err);
        }
    }
    ck_assert_ptr_null(nebula_breaker_verify(b));
}
END_TEST

START_TEST(moving_averages)
{
    nebula_breaker_t *b = table(64, 100);
    nebula_breaker_slot_t s;

    nebula_breaker_failure(b, CH, NEBULA_BREAKER_WHOLE, 0, T0);
    s = slot_of(b, CH, -1, T0);
    ck_assert_double_eq_tol(s.success_ewma, 0.9, 1e-12);
    ck_assert_double_eq(s.latency_ewma_ms, 0);
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 200000, T0); /* 200 ms */
    s = slot_of(b, CH, -1, T0);
    ck_assert_double_eq_tol(s.success_ewma, 0.91, 1e-12);
    ck_assert_double_eq_tol(s.latency_ewma_ms, 200, 1e-9);
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, 1200000, T0);
    s = slot_of(b, CH, -1, T0);
    ck_assert_double_eq_tol(s.latency_ewma_ms, 300, 1e-9);
    ck_assert_uint_eq(s.requests, 3);
    ck_assert_uint_eq(s.failures, 1);
    /* a negative latency is no sample */
    nebula_breaker_success(b, CH, NEBULA_BREAKER_WHOLE, -1, T0);
    ck_assert_double_eq_tol(slot_of(b, CH, -1, T0).latency_ewma_ms, 300, 1e-9);
}
END_TEST

START_TEST(weight_factor_bounds_and_monotonic)
{
    nebula_breaker_t *b = table(256, 0);
    double prev = 1.0, f;
    int i;

    ck_assert_double_eq(nebula_breaker_weight_factor(b, 1), 1.0); /* no history */
    for (i = 0; i < 100; ++i) {
        nebula_breaker_success(b, 1, NEBULA_BREAKER_WHOLE, -1, T0);
    }
    ck_assert_double_eq_tol(nebula_breaker_weight_factor(b, 1), 1.0, 1e-9);
    /* failures lower it, step by step, down to the floor and no further */
    for (i = 0; i < 200; ++i) {
        nebula_breaker_failure(b, 1, NEBULA_BREAKER_WHOLE, 0, T0);
        f = nebula_breaker_weight_factor(b, 1);
        ck_assert(f <= prev);
        ck_assert(f >= NEBULA_BREAKER_MIN_FACTOR && f <= 1.0);
        prev = f;
    }
    ck_assert_double_eq(prev, NEBULA_BREAKER_MIN_FACTOR);
    /* successes raise it again */
    nebula_breaker_success(b, 1, NEBULA_BREAKER_WHOLE, -1, T0);
    ck_assert(nebula_breaker_weight_factor(b, 1) >= prev);

    /* latency: 100 ms and 400 ms; reference sqrt(100*400) = 200 ms */
    nebula_breaker_success(b, 10, NEBULA_BREAKER_WHOLE, 100000, T0);
    nebula_breaker_success(b, 11, NEBULA_BREAKER_WHOLE, 400000, T0);
    /* keys never enter the reference */
    nebula_breaker_success(b, 11, 0, 100000000, T0);
    ck_assert_double_eq_tol(nebula_breaker_weight_factor(b, 10), 1.0, 1e-9);
    ck_assert_double_eq_tol(nebula_breaker_weight_factor(b, 11), sqrt(0.5), 1e-9);
    /* the slower 11 gets, the lower its factor: (100 / L)^(1/4) */
    prev = sqrt(0.5);
    for (i = 0; i < 100; ++i) {
        nebula_breaker_success(b, 11, NEBULA_BREAKER_WHOLE, 400000 + (i + 1) * 1000000,
                               T0);
        f = nebula_breaker_weight_factor(b, 11);
        ck_assert_msg(f < prev, "f %f >= prev %f at %d", f, prev, i);
        prev = f;
        ck_assert_double_eq_tol(nebula_breaker_weight_factor(b, 10), 1.0, 1e-9);
    }
    ck_assert(prev < 0.2 && prev > NEBULA_BREAKER_MIN_FACTOR);
    /* slow and failing together reach the floor, and stay on it */
    for (i = 0; i < 30; ++i) {
        nebula_breaker_failure(b, 11, NEBULA_BREAKER_WHOLE, 0, T0);
        f = nebula_breaker_weight_factor(b, 11);
        ck_assert(f <= prev && f >= NEBULA_BREAKER_MIN_FACTOR);
        prev = f;
    }
    ck_assert_double_eq(prev, NEBULA_BREAKER_MIN_FACTOR);
    /* forgetting 11 takes it out of the reference */
    nebula_breaker_reset(b, 11, NEBULA_BREAKER_WHOLE);
    ck_assert_double_eq(nebula_breaker_weight_factor(b, 11), 1.0);
    ck_assert_double_eq_tol(nebula_breaker_weight_factor(b, 10), 1.0, 1e-9);
    ck_assert_ptr_null(nebula_breaker_verify(b));
}
END_TEST

START_TEST(conf_size_create_attach)
{
    nebula_breaker_conf_t c;
    nebula_breaker_t *b, *b2;
    apr_size_t size;
    void *mem;

    nebula_breaker_conf_default(&c);
    ck_assert_int_eq(c.slots, 4096);
    ck_assert_int_eq(c.threshold, 5);
    ck_assert_int_eq(c.cooldown, apr_time_from_sec(30));
    ck_assert_int_eq(c.disable_count, 3);
    ck_assert_int_eq(c.disable_window, apr_time_from_sec(300));
    ck_assert_ptr_null(nebula_breaker_conf_check(&c));
    c.slots = 63;
    ck_assert_ptr_nonnull(nebula_breaker_conf_check(&c));
    ck_assert_uint_eq(nebula_breaker_size(&c), 0);
    c.slots = 64;
    c.disable_count = 101;
    ck_assert_ptr_nonnull(nebula_breaker_conf_check(&c));
    c.disable_count = 3;
    c.cooldown = 0;
    ck_assert_ptr_nonnull(nebula_breaker_conf_check(&c));
    c.cooldown = COOLDOWN;

    size = nebula_breaker_size(&c);
    mem = apr_palloc(unit_pool, size);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size - 1, &c, &no_lock, unit_pool),
                     APR_ENOSPC);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size, &c, &no_lock, unit_pool),
                     APR_SUCCESS);
    nebula_breaker_failure(b, 5, 1, 0, T0);
    ck_assert_int_eq(nebula_breaker_attach(&b2, mem, size, &no_lock, unit_pool),
                     APR_SUCCESS);
    ck_assert_uint_eq(slot_of(b2, 5, 1, T0).failures, 1);
    ck_assert_int_eq(nebula_breaker_attach(&b2, mem, size - 1, &no_lock, unit_pool),
                     APR_EINVAL);
    memset(mem, 0, 16);
    ck_assert_int_eq(nebula_breaker_attach(&b2, mem, size, &no_lock, unit_pool),
                     APR_EINVAL);
}
END_TEST

static apr_status_t broken_lock(void *baton)
{
    (void)baton;
    return APR_EGENERAL;
}

START_TEST(broken_lock_fails_open)
{
    static const nebula_breaker_lock_t broken = {broken_lock, nolock, NULL};
    nebula_breaker_conf_t c;
    nebula_breaker_t *b;
    apr_size_t size;
    void *mem;
    nebula_breaker_stats_t st;

    nebula_breaker_conf_default(&c);
    c.slots = 64;
    c.threshold = 1;
    size = nebula_breaker_size(&c);
    mem = apr_palloc(unit_pool, size);
    ck_assert_int_eq(nebula_breaker_create(&b, mem, size, &c, &broken, unit_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_breaker_failure(b, 1, -1, 1, T0), NEBULA_BREAKER_OK);
    ck_assert_int_eq(nebula_breaker_allow(b, 1, -1, T0), 1);
    ck_assert_double_eq(nebula_breaker_weight_factor(b, 1), 1.0);
    ck_assert_ptr_null(nebula_breaker_snapshot(b, unit_pool, T0));
    ck_assert_int_ne(nebula_breaker_stats(b, &st), APR_SUCCESS);
    ck_assert_int_eq(nebula_breaker_allow(NULL, 1, -1, T0), 1);
}
END_TEST

/* ---- shared by threads and by processes ---------------------------------- */

#define WORKERS 4
#define ROUNDS  10000
#define PROBES  200    /* half-open slots everyone asks for, ids 1..PROBES */
#define COUNTED 100000 /* the slot whose counters must add up */
#define CHURNED 64     /* slots of the churn table, far fewer than ids */

/* What every worker shares, at the start of the shared block; the two
 * tables follow it. Each worker writes only its own cells; the barriers use
 * atomics, not the table's lock, so that a broken lock shows as a failed
 * count rather than a hang. */
typedef struct {
    apr_uint32_t granted[2][PROBES][WORKERS]; /* probes won at now1, at now2 */
    volatile apr_uint32_t ready, arrived;
} shared_t;

#define SHARED_OFF APR_ALIGN(sizeof(shared_t), 64) /* where the tables start */

typedef struct {
    shared_t *sh;
    nebula_breaker_t *hot, *churn;
    int n;
} worker_t;

static const apr_time_t now1 = T0 + COOLDOWN + 1, now2 = T0 + 2 * COOLDOWN + 1;

static void barrier(volatile apr_uint32_t *count)
{
    apr_atomic_inc32(count);
    while (apr_atomic_read32(count) < WORKERS) {
        /* spin: all workers must leave together to collide */
    }
}

/* Phase 1 (all start together): at now1 everyone asks every PROBES slot for
 * its probe, reports successes and failures on COUNTED, and fills the churn
 * table with ids of its own. Phase 2: at now2 the first probes' leases have
 * run out (nobody reported on them): exactly one more each is granted. */
static void worker_run(worker_t *w)
{
    int i;

    barrier(&w->sh->ready);
    for (i = 0; i < ROUNDS; ++i) {
        int p = i % PROBES;

        w->sh->granted[0][p][w->n] += nebula_breaker_allow(w->hot, 1 + p, -1, now1);
        if (i % 3 == 0) {
            nebula_breaker_failure(w->hot, COUNTED, -1, 0, now1);
        }
        else {
            nebula_breaker_success(w->hot, COUNTED, -1, 1000, now1);
        }
        nebula_breaker_success(w->churn, (apr_int64_t)w->n * 1000000 + i, i % 2, 500,
                               now1);
    }
    barrier(&w->sh->arrived);
    for (i = 0; i < PROBES * 4; ++i) {
        w->sh->granted[1][i % PROBES][w->n] +=
            nebula_breaker_allow(w->hot, 1 + i % PROBES, -1, now2);
    }
}

/* Lay out shared_t and two tables (threshold 3, cool-down 30 s) in @a mem. */
static void shared_setup(worker_t *w, void *mem, apr_size_t size,
                         const nebula_breaker_lock_t *lock)
{
    nebula_breaker_conf_t c;
    apr_size_t off = SHARED_OFF, hot_size, churn_size;
    int i;

    memset(mem, 0, sizeof(shared_t));
    nebula_breaker_conf_default(&c);
    c.slots = 1024;
    c.threshold = 3;
    c.cooldown = COOLDOWN;
    hot_size = nebula_breaker_size(&c);
    c.slots = CHURNED;
    churn_size = nebula_breaker_size(&c);
    ck_assert_uint_ge(size, off + hot_size + churn_size);
    w->sh = mem;
    c.slots = 1024;
    ck_assert_int_eq(
        nebula_breaker_create(&w->hot, (char *)mem + off, hot_size, &c, lock, unit_pool),
        APR_SUCCESS);
    c.slots = CHURNED;
    ck_assert_int_eq(nebula_breaker_create(&w->churn, (char *)mem + off + hot_size,
                                           churn_size, &c, lock, unit_pool),
                     APR_SUCCESS);
    for (i = 0; i < 3 * PROBES; ++i) {
        nebula_breaker_failure(w->hot, 1 + i % PROBES, -1, 0, T0);
    }
}

static apr_size_t shared_size(void)
{
    nebula_breaker_conf_t c;
    apr_size_t n = SHARED_OFF;

    nebula_breaker_conf_default(&c);
    c.slots = 1024;
    n += nebula_breaker_size(&c);
    c.slots = CHURNED;
    return n + nebula_breaker_size(&c);
}

/* After the workers: one probe a slot a phase, every report counted. */
static void shared_check(worker_t *w)
{
    nebula_breaker_stats_t st;
    nebula_breaker_slot_t s;
    int i, p, phase;

    for (phase = 0; phase < 2; ++phase) {
        for (p = 0; p < PROBES; ++p) {
            apr_uint32_t g = 0;

            for (i = 0; i < WORKERS; ++i) {
                g += w->sh->granted[phase][p][i];
            }
            ck_assert_msg(g == 1, "phase %d: %u probes of slot %d", phase + 1, g, 1 + p);
        }
    }
    s = slot_of(w->hot, COUNTED, -1, now1);
    ck_assert_uint_eq(s.requests, (apr_uint64_t)WORKERS * ROUNDS);
    ck_assert_uint_eq(s.failures, (apr_uint64_t)WORKERS * ((ROUNDS + 2) / 3));
    ck_assert_int_eq(slot_of(w->hot, 1, -1, now2).state, NEBULA_BREAKER_HALF_OPEN);
    ck_assert_ptr_null(nebula_breaker_verify(w->hot));
    ck_assert_ptr_null(nebula_breaker_verify(w->churn));
    ck_assert_int_eq(nebula_breaker_stats(w->churn, &st), APR_SUCCESS);
    ck_assert_int_eq(st.used, CHURNED);
    ck_assert_uint_eq(st.evictions, (apr_uint64_t)WORKERS * ROUNDS - CHURNED);
}

static apr_status_t thread_lock(void *baton)
{
    return apr_thread_mutex_lock(baton);
}

static apr_status_t thread_unlock(void *baton)
{
    return apr_thread_mutex_unlock(baton);
}

static void *APR_THREAD_FUNC thread_main(apr_thread_t *t, void *data)
{
    worker_run(data);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(threads_share_one_probe)
{
    apr_thread_mutex_t *m;
    nebula_breaker_lock_t lock = {thread_lock, thread_unlock, NULL};
    apr_thread_t *t[WORKERS];
    worker_t w[WORKERS];
    apr_size_t size = shared_size();
    void *mem = apr_palloc(unit_pool, size);
    apr_status_t rv;
    int i;

    ck_assert_int_eq(apr_thread_mutex_create(&m, APR_THREAD_MUTEX_DEFAULT, unit_pool),
                     APR_SUCCESS);
    lock.baton = m;
    shared_setup(&w[0], mem, size, &lock);
    for (i = 0; i < WORKERS; ++i) {
        w[i] = w[0];
        w[i].n = i;
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, thread_main, &w[i], unit_pool),
                         APR_SUCCESS);
    }
    for (i = 0; i < WORKERS; ++i) {
        ck_assert_int_eq(apr_thread_join(&rv, t[i]), APR_SUCCESS);
    }
    shared_check(&w[0]);
}
END_TEST

static apr_status_t proc_lock(void *baton)
{
    return apr_proc_mutex_lock(*(apr_proc_mutex_t **)baton);
}

static apr_status_t proc_unlock(void *baton)
{
    return apr_proc_mutex_unlock(*(apr_proc_mutex_t **)baton);
}

/* Forked workers: anonymous shared memory made before fork(), as httpd's
 * parent makes it in post_config, and a cross-process mutex re-opened in
 * each child, as child_init does. */
START_TEST(processes_share_one_probe)
{
    static apr_proc_mutex_t *m;
    nebula_breaker_lock_t lock = {proc_lock, proc_unlock, &m};
    apr_proc_t procs[WORKERS];
    apr_exit_why_e why;
    apr_shm_t *shm;
    worker_t w;
    apr_size_t size = shared_size();
    int i, code;
    apr_status_t rv;

    ck_assert_int_eq(apr_shm_create(&shm, size, NULL, unit_pool), APR_SUCCESS);
    ck_assert_int_eq(apr_proc_mutex_create(&m, NULL, APR_LOCK_DEFAULT, unit_pool),
                     APR_SUCCESS);
    shared_setup(&w, apr_shm_baseaddr_get(shm), size, &lock);
    for (i = 0; i < WORKERS; ++i) {
        rv = apr_proc_fork(&procs[i], unit_pool);
        ck_assert(rv == APR_INCHILD || rv == APR_INPARENT);
        if (rv == APR_INCHILD) {
            if (apr_proc_mutex_child_init(&m, apr_proc_mutex_lockfile(m), unit_pool) !=
                APR_SUCCESS) {
                _exit(2);
            }
            w.n = i;
            worker_run(&w);
            _exit(0);
        }
    }
    for (i = 0; i < WORKERS; ++i) {
        ck_assert_int_eq(apr_proc_wait(&procs[i], &code, &why, APR_WAIT), APR_CHILD_DONE);
        ck_assert_int_eq(why, APR_PROC_EXIT);
        ck_assert_int_eq(code, 0);
    }
    shared_check(&w);
}
END_TEST

Suite *unit_breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("breaker");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, closed_opens_after_threshold);
    tcase_add_test(tc, open_refuses_until_cooldown);
    tcase_add_test(tc, half_open_grants_one_probe);
    tcase_add_test(tc, probe_success_closes);
    tcase_add_test(tc, probe_failure_reopens);
    tcase_add_test(tc, probe_lease_expires);
    tcase_add_test(tc, late_reports_while_open);
    tcase_add_test(tc, threshold_zero_never_opens);
    tcase_add_test(tc, allow_and_reset_allocate_nothing);
    tcase_add_test(tc, window_boundaries);
    tcase_add_test(tc, disable_count_one_and_off);
    tcase_add_test(tc, lru_recycles_least_recent);
    tcase_add_test(tc, churn_keeps_invariants);
    tcase_add_test(tc, moving_averages);
    tcase_add_test(tc, weight_factor_bounds_and_monotonic);
    tcase_add_test(tc, conf_size_create_attach);
    tcase_add_test(tc, broken_lock_fails_open);
    tcase_add_test(tc, threads_share_one_probe);
    tcase_add_test(tc, processes_share_one_probe);
    suite_add_tcase(s, tc);
    return s;
}

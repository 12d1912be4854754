/* test_id.c: nebula_id UUIDv7: text format, version and variant bits,
 * strict ordering for many ids in the same millisecond, uniqueness and
 * per-thread ordering across threads, and the embedded timestamp. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "nebula_id.h"
#include "nebula_unit.h"

#define ID_THREADS    4
#define ID_PER_THREAD 10000

START_TEST(format_version_variant)
{
    regex_t re;
    unsigned char raw[16];
    char text[NEBULA_ID_UUID_LEN + 1];
    const char *id;
    int i;

    ck_assert_int_eq(regcomp(&re,
                             "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                             "[0-9a-f]{12}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    for (i = 0; i < 1000; ++i) {
        id = nebula_id_uuid7(unit_pool);
        ck_assert_ptr_nonnull(id);
        ck_assert_msg(regexec(&re, id, 0, NULL, 0) == 0, "bad uuid %s", id);
    }
    ck_assert_int_eq(nebula_id_uuid7_into(text), APR_SUCCESS);
    ck_assert_int_eq(regexec(&re, text, 0, NULL, 0), 0);
    regfree(&re);
    for (i = 0; i < 1000; ++i) {
        ck_assert_int_eq(nebula_id_uuid7_bytes(raw), APR_SUCCESS);
        ck_assert_uint_eq(raw[6] >> 4, 7); /* version */
        ck_assert_uint_eq(raw[8] >> 6, 2); /* variant 0b10 */
    }
    nebula_id_uuid_format((const unsigned char *)"\x01\x23\x45\x67\x89\xab\xcd\xef"
                                                 "\xfe\xdc\xba\x98\x76\x54\x32\x10",
                          text);
    ck_assert_str_eq(text, "01234567-89ab-cdef-fedc-ba9876543210");
}
END_TEST

START_TEST(strictly_increasing)
{
    char a[NEBULA_ID_UUID_LEN + 1], b[NEBULA_ID_UUID_LEN + 1];
    char *prev = a, *cur = b, *tmp;
    unsigned char r1[16], r2[16];
    int i, same_ms = 0;

    ck_assert_int_eq(nebula_id_uuid7_into(prev), APR_SUCCESS);
    for (i = 0; i < 100000; ++i) {
        ck_assert_int_eq(nebula_id_uuid7_into(cur), APR_SUCCESS);
        ck_assert_msg(strcmp(prev, cur) < 0, "%s !< %s at %d", prev, cur, i);
        if (memcmp(prev, cur, 13) == 0) {
            ++same_ms; /* the counter, not the clock, kept the order */
        }
        tmp = prev, prev = cur, cur = tmp;
    }
    ck_assert_int_gt(same_ms, 1000);
    /* the byte form is ordered too */
    ck_assert_int_eq(nebula_id_uuid7_bytes(r1), APR_SUCCESS);
    ck_assert_int_eq(nebula_id_uuid7_bytes(r2), APR_SUCCESS);
    ck_assert_int_lt(memcmp(r1, r2, 16), 0);
}
END_TEST

typedef struct {
    char (*ids)[NEBULA_ID_UUID_LEN + 1];
    int ordered;
} id_batch_t;

static void *APR_THREAD_FUNC id_worker(apr_thread_t *t, void *data)
{
    id_batch_t *b = data;
    int i;

    b->ordered = 1;
    for (i = 0; i < ID_PER_THREAD; ++i) {
        if (nebula_id_uuid7_into(b->ids[i]) != APR_SUCCESS ||
            (i > 0 && strcmp(b->ids[i - 1], b->ids[i]) >= 0)) {
            b->ordered = 0;
        }
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(threads_distinct_and_ordered)
{
    apr_thread_t *threads[ID_THREADS];
    id_batch_t batch[ID_THREADS];
    char(*all)[NEBULA_ID_UUID_LEN + 1];
    apr_status_t rv;
    int i;

    all = apr_palloc(unit_pool, sizeof(*all) * ID_THREADS * ID_PER_THREAD);
    for (i = 0; i < ID_THREADS; ++i) {
        batch[i].ids = all + i * ID_PER_THREAD;
        ck_assert_int_eq(
            apr_thread_create(&threads[i], NULL, id_worker, &batch[i], unit_pool),
            APR_SUCCESS);
    }
    for (i = 0; i < ID_THREADS; ++i) {
        ck_assert_int_eq(apr_thread_join(&rv, threads[i]), APR_SUCCESS);
        ck_assert_msg(batch[i].ordered, "thread %d saw ids out of order", i);
    }
    qsort(all, ID_THREADS * ID_PER_THREAD, sizeof(*all), id_cmp);
    for (i = 1; i < ID_THREADS * ID_PER_THREAD; ++i) {
        /* the first 28 characters hold timestamp and counter: one process-wide
         * sequence, so even without the random tail no two ids share them */
        ck_assert_msg(strncmp(all[i - 1], all[i], 28) < 0, "duplicate %.28s", all[i]);
    }
}
END_TEST

START_TEST(timestamp_round_trip)
{
    apr_time_t before = apr_time_now(), t;
    const char *id = nebula_id_uuid7(unit_pool);
    apr_time_t after = apr_time_now();
    char upper[NEBULA_ID_UUID_LEN + 1];
    int i;

    t = nebula_id_uuid7_time(id);
    ck_assert_int_ge(t, before - APR_USEC_PER_SEC);
    ck_assert_int_le(t, after + APR_USEC_PER_SEC);
    /* millisecond resolution: truncated, never later than the clock */
    ck_assert_int_ge(t, (before / 1000) * 1000);
    ck_assert_int_le(t, after);
    for (i = 0; id[i]; ++i) {
        upper[i] = (id[i] >= 'a' && id[i] <= 'f') ? (char)(id[i] - 32) : id[i];
    }
    upper[i] = '\0';
    ck_assert_int_eq(nebula_id_uuid7_time(upper), t);
    /* a known value: 0x017f22e279b0 ms = 1645557742000 (RFC 9562 appendix A.6) */
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"),
                     APR_INT64_C(1645557742000) * 1000);
    /* malformed, or not version 7 / variant 0b10 */
    ck_assert_int_eq(nebula_id_uuid7_time(NULL), -1);
    ck_assert_int_eq(nebula_id_uuid7_time(""), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2-79b0-4cc3-98c4-dc0c0c07398f"), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2-79b0-7cc3-c8c4-dc0c0c07398f"), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2-79b0-7cc3-98c4-dc0c0c07398"), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2-79b0-7cc3-98c4-dc0c0c07398f0"), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22e2x79b0-7cc3-98c4-dc0c0c07398f"), -1);
    ck_assert_int_eq(nebula_id_uuid7_time("017f22g2-79b0-7cc3-98c4-dc0c0c07398f"), -1);
}
END_TEST

Suite *unit_id_suite(void)
{
    Suite *s = suite_create("id");
    TCase *tc = tcase_create("id");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, format_version_variant);
    tcase_add_test(tc, strictly_increasing);
    tcase_add_test(tc, threads_distinct_and_ordered);
    tcase_add_test(tc, timestamp_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

/* test_period.c: billing_period.c, where a plan's periods begin and end.
 * Calendar days, Monday weeks and months in UTC and across Berlin's DST
 * changes (a 23-hour and a 25-hour day); anniversary months clamped to the
 * month's end and computed from the start each time (Jan 31 -> Feb 28 ->
 * Mar 31), leap years, year ends, a month anniversary across DST (same
 * local time of day); fixed-length anniversary days and custom periods;
 * times before the start; what billing_period_parse refuses. Expected
 * values were computed with Python's zoneinfo. */
#include <stdlib.h>
#include <time.h>

#include "billing_sched.h"
#include "nebula_unit.h"

/* 2031-01-31 13:45:10.250 UTC, a Friday */
#define JAN31 APR_INT64_C(1927633510250)

static void zone(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static billing_period_t period(const char *kind, apr_int64_t seconds,
                               const char *alignment)
{
    billing_period_t bp;

    ck_assert_int_eq(billing_period_parse(&bp, kind, seconds, alignment), 0);
    return bp;
}

#define ck_period(bp, starts, t, want_start, want_end)                                   \
    do {                                                                                 \
        apr_int64_t s_, e_;                                                              \
        ck_assert_int_eq(billing_period_at(&(bp), (starts), (t), &s_, &e_), 0);          \
        ck_assert_int_eq(s_, (want_start));                                              \
        ck_assert_int_eq(e_, (want_end));                                                \
    } while (0)

START_TEST(parse_rules)
{
    billing_period_t bp;

    ck_assert_int_eq(billing_period_parse(&bp, "custom", 90, "anniversary"), 0);
    ck_assert_int_eq(bp.kind, BILLING_PERIOD_CUSTOM);
    ck_assert_int_eq(bp.seconds, 90);
    ck_assert_int_eq(billing_period_parse(&bp, "custom", 90, "calendar"), 0);
    ck_assert_msg(bp.anniversary, "custom periods are always anniversary");
    ck_assert_int_eq(billing_period_parse(&bp, "month", 0, NULL), 0);
    ck_assert_msg(!bp.anniversary, "calendar by default");
    ck_assert_int_eq(billing_period_parse(&bp, "week", 0, "anniversary"), 0);
    ck_assert_msg(bp.anniversary, "anniversary when asked");
    ck_assert_int_eq(billing_period_parse(&bp, "custom", 0, "anniversary"), -1);
    ck_assert_int_eq(billing_period_parse(&bp, "year", 0, "calendar"), -1);
    ck_assert_int_eq(billing_period_parse(&bp, "day", 0, "fiscal"), -1);
    ck_assert_int_eq(billing_period_parse(&bp, NULL, 0, NULL), -1);
}
END_TEST

START_TEST(calendar_utc)
{
    billing_period_t day = period("day", 0, "calendar");
    billing_period_t week = period("week", 0, "calendar");
    billing_period_t month = period("month", 0, "calendar");

    zone("UTC");
    ck_period(day, JAN31, JAN31, APR_INT64_C(1927584000000), APR_INT64_C(1927670400000));
    /* Friday Jan 31 is in the week of Monday Jan 27 */
    ck_period(week, JAN31, JAN31, APR_INT64_C(1927238400000), APR_INT64_C(1927843200000));
    /* a Monday at 00:00 starts its own week; the Sunday before does not */
    ck_period(week, 0, APR_INT64_C(1927843200000), APR_INT64_C(1927843200000),
              APR_INT64_C(1927843200000) + 7 * APR_INT64_C(86400000));
    ck_period(week, 0, APR_INT64_C(1927843200000) - 1, APR_INT64_C(1927238400000),
              APR_INT64_C(1927843200000));
    ck_period(month, JAN31, JAN31, APR_INT64_C(1924992000000),
              APR_INT64_C(1927670400000));
    /* a boundary belongs to the period it starts */
    ck_period(month, 0, APR_INT64_C(1927670400000), APR_INT64_C(1927670400000),
              APR_INT64_C(1930089600000));
}
END_TEST

START_TEST(calendar_dst)
{
    billing_period_t day = period("day", 0, "calendar");
    billing_period_t week = period("week", 0, "calendar");
    billing_period_t month = period("month", 0, "calendar");

    zone("Europe/Berlin");
    /* Sunday 2031-03-30: clocks go forward, the day has 23 hours */
    ck_period(day, 0, APR_INT64_C(1932631200000), APR_INT64_C(1932591600000),
              APR_INT64_C(1932674400000));
    /* Sunday 2031-10-26: clocks go back, the day has 25 hours */
    ck_period(day, 0, APR_INT64_C(1950732000000) + 3600000 * 13,
              APR_INT64_C(1950732000000), APR_INT64_C(1950822000000));
    /* the week of Monday 2031-03-24, local midnight to local midnight */
    ck_period(week, 0, APR_INT64_C(1932631200000), APR_INT64_C(1932073200000),
              APR_INT64_C(1932674400000));
    /* March 2031: from 00:00 CET to 00:00 CEST */
    ck_period(month, 0, APR_INT64_C(1932631200000), APR_INT64_C(1930086000000),
              APR_INT64_C(1932760800000));
}
END_TEST

START_TEST(anniversary_months)
{
    billing_period_t month = period("month", 0, "anniversary");

    zone("UTC");
    ck_period(month, JAN31, JAN31, JAN31, APR_INT64_C(1930052710250)); /* Feb 28 */
    ck_period(month, JAN31, APR_INT64_C(1930052710250), APR_INT64_C(1930052710250),
              APR_INT64_C(1932731110250)); /* Feb 28 -> Mar 31, not Mar 28 */
    ck_period(month, JAN31, APR_INT64_C(1932731110250) - 1, APR_INT64_C(1930052710250),
              APR_INT64_C(1932731110250));
    /* mid-May lies in Apr 30 (clamped) .. May 31 */
    ck_period(month, JAN31, APR_INT64_C(1936569600000), APR_INT64_C(1935323110250),
              APR_INT64_C(1938001510250));
    /* before the start: the first period */
    ck_period(month, JAN31, JAN31 - 86400000, JAN31, APR_INT64_C(1930052710250));
    /* a leap year: Jan 31 2032 -> Feb 29 -> Mar 31 */
    ck_period(month, APR_INT64_C(1959120000000), APR_INT64_C(1961625600000),
              APR_INT64_C(1961625600000), APR_INT64_C(1964304000000));
    /* across the year's end: Dec 15 -> Jan 15 -> Feb 15 */
    ck_period(month, APR_INT64_C(1955088000000), APR_INT64_C(1958169600000),
              APR_INT64_C(1957766400000), APR_INT64_C(1960444800000));
}
END_TEST

START_TEST(anniversary_month_dst)
{
    billing_period_t month = period("month", 0, "anniversary");

    zone("Europe/Berlin");
    /* 2031-03-15 12:00 CET -> 2031-04-15 12:00 CEST: the same local time,
     * one hour less of real time */
    ck_period(month, APR_INT64_C(1931338800000), APR_INT64_C(1932760800000),
              APR_INT64_C(1931338800000), APR_INT64_C(1934013600000));
}
END_TEST

START_TEST(fixed_lengths)
{
    billing_period_t day = period("day", 0, "anniversary");
    billing_period_t week = period("week", 0, "anniversary");
    billing_period_t custom = period("custom", 90, "anniversary");

    zone("Europe/Berlin"); /* fixed lengths ignore the zone */
    ck_period(day, JAN31, JAN31 + 86400000 * 3 + 5, JAN31 + 86400000 * 3,
              JAN31 + 86400000 * 4);
    ck_period(week, JAN31, JAN31 + 604800000 - 1, JAN31, JAN31 + 604800000);
    ck_period(custom, JAN31, JAN31 + 90000 * 7, JAN31 + 90000 * 7, JAN31 + 90000 * 8);
    ck_period(custom, JAN31, JAN31 - 5, JAN31, JAN31 + 90000);
}
END_TEST

Suite *unit_period_suite(void)
{
    Suite *s = suite_create("period");
    TCase *tc = tcase_create("period");

    tcase_add_test(tc, parse_rules);
    tcase_add_test(tc, calendar_utc);
    tcase_add_test(tc, calendar_dst);
    tcase_add_test(tc, anniversary_months);
    tcase_add_test(tc, anniversary_month_dst);
    tcase_add_test(tc, fixed_lengths);
    suite_add_tcase(s, tc);
    return s;
}

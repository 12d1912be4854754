/* billing_period.c: where a plan's periods begin and end.
 *
 * Calendar periods start at local midnight (a day), Monday midnight (a
 * week) or midnight of the 1st (a month) in the process's time zone, which
 * NebulaTimeZone sets once before any thread starts (billing_sched.c), so
 * localtime_r()/mktime() need no lock. Anniversary periods start at
 * starts_at + k periods: fixed lengths for day, week and custom periods;
 * for months the same day of the month and time of day as starts_at,
 * clamped to the end of shorter months and computed from starts_at each
 * time (so Jan 31 gives Feb 28, then Mar 31, not Mar 28).
 *
 * Plain C over APR and libc (no httpd.h): t/unit/test_period.c links it. */
#include <string.h>
#include <time.h>
#include "billing_sched.h"

#define DAY_MS  APR_INT64_C(86400000)
#define WEEK_MS (7 * DAY_MS)

int billing_period_parse(billing_period_t *bp, const char *period, apr_int64_t seconds,
                         const char *alignment)
{
    memset(bp, 0, sizeof(*bp));
    if (period == NULL) {
        return -1;
    }
    if (strcmp(period, "day") == 0) {
        bp->kind = BILLING_PERIOD_DAY;
    }
    else if (strcmp(period, "week") == 0) {
        bp->kind = BILLING_PERIOD_WEEK;
    }
    else if (strcmp(period, "month") == 0) {
        bp->kind = BILLING_PERIOD_MONTH;
    }
    else if (strcmp(period, "custom") == 0 && seconds >= 1) {
        bp->kind = BILLING_PERIOD_CUSTOM;
        bp->seconds = seconds;
    }
    else {
        return -1;
    }
    if (alignment == NULL || *alignment == '\0' || strcmp(alignment, "calendar") == 0) {
        bp->anniversary = 0;
    }
    else if (strcmp(alignment, "anniversary") == 0) {
        bp->anniversary = 1;
    }
    else {
        return -1;
    }
    if (bp->kind == BILLING_PERIOD_CUSTOM) {
        bp->anniversary = 1; /* a custom length has no calendar to follow */
    }
    return 0;
}

/* Division rounding towards minus infinity (times before 1970 stay right). */
static apr_int64_t floor_div(apr_int64_t a, apr_int64_t b)
{
    apr_int64_t q = a / b;

    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int local_tm(apr_int64_t sec, struct tm *tm)
{
    time_t t = (time_t)sec;

    return localtime_r(&t, tm) ? 0 : -1;
}

/* mktime() of @a tm (normalising its fields), letting it find DST. */
static int local_sec(struct tm *tm, apr_int64_t *sec)
{
    time_t t;

    tm->tm_isdst = -1;
    t = mktime(tm);
    if (t == (time_t)-1) {
        return -1;
    }
    *sec = (apr_int64_t)t;
    return 0;
}

static int days_in_month(int year, int mon)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return mon == 1 && leap ? 29 : days[mon];
}

static int calendar_at(const billing_period_t *bp, apr_int64_t t, apr_int64_t *start,
                       apr_int64_t *end)
{
    struct tm tm, next;
    apr_int64_t s, e;

    if (local_tm(floor_div(t, 1000), &tm) != 0) {
        return -1;
    }
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (bp->kind == BILLING_PERIOD_WEEK) {
        tm.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday */
    }
    else if (bp->kind == BILLING_PERIOD_MONTH) {
        tm.tm_mday = 1;
    }
    next = tm;
    if (bp->kind == BILLING_PERIOD_MONTH) {
        next.tm_mon += 1;
    }
    else {
        next.tm_mday += bp->kind == BILLING_PERIOD_WEEK ? 7 : 1;
    }
    if (local_sec(&tm, &s) != 0 || local_sec(&next, &e) != 0 || e <= s) {
        return -1;
    }
    *start = s * 1000;
    *end = e * 1000;
    return 0;
}

/* The start of anniversary month @a k (k >= 1) of a subscription that
 * started at @a starts_at, whose local time is @a base. */
static int month_boundary(apr_int64_t starts_at, const struct tm *base, apr_int64_t k,
                          apr_int64_t *out)
{
    struct tm tm = *base;
    apr_int64_t months = base->tm_mon + k, sec;
    int dim;

    tm.tm_year = (int)(base->tm_year + floor_div(months, 12));
    tm.tm_mon = (int)(months - floor_div(months, 12) * 12);
    dim = days_in_month(tm.tm_year + 1900, tm.tm_mon);
    tm.tm_mday = base->tm_mday > dim ? dim : base->tm_mday;
    if (local_sec(&tm, &sec) != 0) {
        return -1;
    }
    *out = sec * 1000 + (starts_at - floor_div(starts_at, 1000) * 1000);
    return 0;
}

static int month_anniversary_at(apr_int64_t starts_at, apr_int64_t t, apr_int64_t *start,
                                apr_int64_t *end)
{
    struct tm base, now;
    apr_int64_t k = 0, b, nb;

    if (local_tm(floor_div(starts_at, 1000), &base) != 0) {
        return -1;
    }
    if (t > starts_at) {
        if (local_tm(floor_div(t, 1000), &now) != 0) {
            return -1;
        }
        k = (apr_int64_t)(now.tm_year - base.tm_year) * 12 + (now.tm_mon - base.tm_mon);
        k = k < 0 ? 0 : k;
    }
    /* the estimate is at most one off either way (clamping, DST) */
    for (;;) {
        if (k == 0) {
            b = starts_at;
        }
        else if (month_boundary(starts_at, &base, k, &b) != 0) {
            return -1;
        }
        if (k > 0 && b > t) {
            --k;
            continue;
        }
        if (month_boundary(starts_at, &base, k + 1, &nb) != 0) {
            return -1;
        }
        if (nb <= t) {
            ++k;
            continue;
        }
        break;
    }
    *start = b;
    *end = nb;
    return *end > *start ? 0 : -1;
}

int billing_period_at(const billing_period_t *bp, apr_int64_t starts_at, apr_int64_t t,
                      apr_int64_t *start, apr_int64_t *end)
{
    apr_int64_t len;

    if (!bp->anniversary) {
        return calendar_at(bp, t, start, end);
    }
    if (bp->kind == BILLING_PERIOD_MONTH) {
        return month_anniversary_at(starts_at, t, start, end);
    }
    len = bp->kind == BILLING_PERIOD_DAY    ? DAY_MS
          : bp->kind == BILLING_PERIOD_WEEK ? WEEK_MS
                                            : bp->seconds * 1000;
    if (len <= 0) {
        return -1;
    }
    *start = t > starts_at ? starts_at + (t - starts_at) / len * len : starts_at;
    *end = *start + len;
    return 0;
}

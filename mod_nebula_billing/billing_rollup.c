/* billing_rollup.c: the rollups of request_logs (docs/operations-data.md).
 *
 * Each scheduler pass rolls up to NebulaLogRollup closed hours into
 * request_log_hourly, oldest first; then as many into request_log_summary
 * (billing_rollup_summary.c), which keeps a watermark of its own so that an
 * upgrade rolls up the hours before it; then as many whole UTC days of
 * request_log_summary from its hours. An hour is closed when it ended more
 * than ROLLUP_GRACE ago (late writers: the log queue, the settlement spool).
 * nebula_rollup_state.done_to is the end of the last hour rolled up; the
 * next hour is the one of the oldest row at or after it, so hours without
 * rows cost nothing and a catch-up after downtime is spread over passes.
 *
 * One hour is one transaction: it first moves done_to with an UPDATE
 * conditional on the value it read (the row lock serialises hosts; a pass
 * that finds it moved rolls back and stops), then recomputes the hour's
 * rows whole (DELETE, then INSERT ... SELECT ... GROUP BY; then the hour's
 * per-model totals, request_log_hourly_total, from those rows): totals are
 * recomputed from the raw rows, never added to, so a pass killed half-way
 * or two hosts at once never count a row twice. The admin API's dashboards
 * (admin_stats.c, admin_stats_summary.c) read the rollup below done_to and
 * the raw rows above. */
#include <apr_strings.h>
#include "billing_private.h"
#include "billing_sched.h"

#define HOUR_MS      APR_INT64_C(3600000)
#define DAY_MS       (24 * HOUR_MS)
#define ROLLUP_GRACE APR_INT64_C(600000) /* 10 minutes after the hour */

typedef int rollup_fn(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t start, const char **err);

/* One rollup: its nebula_rollup_state row, the first source row at or after
 * done_to, the period and what writes one. */
typedef struct {
    const char *name;
    const char *next_label, *next_sql; /* MIN(start) in [%lld, %lld) */
    apr_int64_t unit;
    rollup_fn *roll;
} rollup_kind_t;

typedef struct {
    const rollup_kind_t *kind;
    apr_int64_t done_to; /* the value read */
    apr_int64_t start;   /* the period to roll up; -1: only move done_to */
    apr_int64_t to;      /* the new done_to */
    apr_int64_t now;
} rollup_step_t;

static const char *const rollup_insert_sql =
    "INSERT INTO request_log_hourly (hour_start, user_id, key_id, model, channel_id, "
    "status_class, requests, errors, prompt_tokens, completion_tokens, cached_tokens, "
    "cost, latency_ms_sum, ttfb_ms_sum) SELECT created_at - created_at %% 3600000, "
    "user_id, key_id, model, channel_id, status - status %% 100, COUNT(*), "
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
    "SUM(completion_tokens), SUM(cached_tokens), SUM(cost), SUM(latency_ms), "
    "SUM(ttfb_ms) FROM request_logs WHERE created_at >= %lld AND created_at < %lld "
    "GROUP BY created_at - created_at %% 3600000, user_id, key_id, model, channel_id, "
    "status - status %% 100";

/* the per-model totals of the hour, from the rows just written */
static const char *const rollup_total_sql =
    "INSERT INTO request_log_hourly_total (hour_start, model, status_class, requests, "
    "errors, prompt_tokens, completion_tokens, cached_tokens, cost, latency_ms_sum, "
    "ttfb_ms_sum) SELECT hour_start, model, status_class, SUM(requests), SUM(errors), "
    "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost), "
    "SUM(latency_ms_sum), SUM(ttfb_ms_sum) FROM request_log_hourly WHERE hour_start = %lld "
    "GROUP BY hour_start, model, status_class";

/* request_log_hourly and its per-model totals for the hour at @a hour */
static int roll_hourly(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t hour, const char **err)
{
    const char *args[2];

    args[0] = billing_i64(p, hour);
    args[1] = billing_i64(p, hour + HOUR_MS);
    return nebula_ap_db_exec(db, "billing_rollup_clear",
                             "DELETE FROM request_log_hourly WHERE hour_start = %lld", 1,
                             args, NULL, err) == APR_SUCCESS &&
           nebula_ap_db_exec(db, "billing_rollup_clear_total",
                             "DELETE FROM request_log_hourly_total WHERE hour_start = %lld",
                             1, args, NULL, err) == APR_SUCCESS &&
           nebula_ap_db_exec(db, "billing_rollup_insert", rollup_insert_sql, 2, args, NULL,
                             err) == APR_SUCCESS &&
           nebula_ap_db_exec(db, "billing_rollup_total", rollup_total_sql, 1, args, NULL,
                             err) == APR_SUCCESS;
}

#define NEXT_RAW_SQL                                                                     \
    "SELECT MIN(created_at) FROM request_logs WHERE created_at >= %lld AND "             \
    "created_at < %lld"

static const rollup_kind_t kinds[] = {
    {"request_logs", "billing_rollup_next", NEXT_RAW_SQL, HOUR_MS, roll_hourly},
    {"request_logs_summary", "billing_rollup_next", NEXT_RAW_SQL, HOUR_MS,
     billing_rollup_summary_hour},
    /* every hour with rows has a 'none' row */
    {"request_logs_summary_day", "billing_rollup_next_day",
     "SELECT MIN(period_start) FROM request_log_summary WHERE dim = 'none' AND "
     "span_hours = 1 AND period_start >= %lld AND period_start < %lld",
     DAY_MS, billing_rollup_summary_day}};

static int rollup_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    rollup_step_t *st = baton;
    const char *args[4];
    int affected = 0;

    args[0] = billing_i64(p, st->to);
    args[1] = billing_i64(p, st->now);
    args[2] = st->kind->name;
    args[3] = billing_i64(p, st->done_to);
    if (nebula_ap_db_exec(db, "billing_rollup_move",
                          "UPDATE nebula_rollup_state SET done_to = %lld, updated_at = %lld "
                          "WHERE name = %s AND done_to = %lld",
                          4, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED; /* another host moved it */
    }
    if (st->start >= 0 && !st->kind->roll(db, p, st->start, err)) {
        return BILLING_STEP_ERROR;
    }
    return BILLING_STEP_DONE;
}

/* done_to of @a name, or -1 after logging why it could not be read. */
static apr_int64_t rollup_done_to(server_rec *s, nebula_ap_db_t *db, const char *name)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL;

    if (nebula_ap_db_select(db, "billing_rollup_state",
                            "SELECT done_to FROM nebula_rollup_state WHERE name = %s", 1,
                            &name, &rows, &err) != APR_SUCCESS || rows.nrows != 1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02400: log rollup: cannot read the state of %s: %s", name,
                     err ? err : "no such row in nebula_rollup_state");
        return -1;
    }
    return nebula_ap_db_int(&rows, 0, 0);
}

/* Roll up to @a max periods of @a kind ending at or before @a closed, each
 * on a connection borrowed in a pool of its own (a period's rows and
 * statements are freed before the next: a catch-up of thousands of hours
 * runs in bounded memory). */
static int rollup_kind(server_rec *s, apr_pool_t *p, const rollup_kind_t *kind,
                       apr_int64_t closed, apr_int64_t now_ms, int max)
{
    apr_pool_t *it;
    int i, n = 0, more = 1;

    apr_pool_create(&it, p);
    for (i = 0; more && i < max; ++i) {
        rollup_step_t st;
        nebula_dbd_rows_t rows;
        nebula_ap_db_t *db;
        const char *args[2], *err = NULL;

        apr_pool_clear(it);
        if ((db = nebula_ap_db_open(it, s)) == NULL) {
            break;
        }
        more = 0;
        st.kind = kind;
        st.now = now_ms;
        if ((st.done_to = rollup_done_to(s, db, kind->name)) < 0 || st.done_to >= closed) {
            nebula_ap_db_close(db);
            break;
        }
        args[0] = billing_i64(it, st.done_to);
        args[1] = billing_i64(it, closed);
        if (nebula_ap_db_select(db, kind->next_label, kind->next_sql, 2, args, &rows, &err) !=
            APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB02401: log rollup: cannot find the next period of %s: %s",
                         kind->name, err);
        }
        else {
            if (rows.nrows == 0 || rows.rows[0][0] == NULL || *rows.rows[0][0] == '\0') {
                st.start = -1; /* no rows up to the closed periods: skip them */
                st.to = closed;
            }
            else {
                apr_int64_t t = nebula_ap_db_int(&rows, 0, 0);
                st.start = t - t % kind->unit;
                st.to = st.start + kind->unit;
            }
            /* stop on an error (logged), when another host is at it, or done */
            if (billing_sched_txn(s, db, it, rollup_step, &st, "log rollup") ==
                    BILLING_STEP_DONE &&
                st.start >= 0) {
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                             "NEB02402: log rollup: %s: %" APR_INT64_T_FMT " rolled up",
                             kind->name, st.start);
                ++n;
                more = 1;
            }
        }
        nebula_ap_db_close(db);
    }
    apr_pool_destroy(it);
    return n;
}

int billing_rollup_pass(server_rec *s, apr_pool_t *p, apr_int64_t now_ms)
{
    const billing_srv_conf_t *c = billing_config_srv(s);
    apr_int64_t closed = (now_ms - ROLLUP_GRACE) - (now_ms - ROLLUP_GRACE) % HOUR_MS;
    apr_int64_t hours_done;
    nebula_ap_db_t *db;
    int n;

    if (c->rollup_hours <= 0) {
        return 0;
    }
    n = rollup_kind(s, p, &kinds[0], closed, now_ms, c->rollup_hours);
    n += rollup_kind(s, p, &kinds[1], closed, now_ms, c->rollup_hours);
    /* whole days whose hours are all in request_log_summary */
    if ((db = nebula_ap_db_open(p, s)) == NULL) {
        return n;
    }
    hours_done = rollup_done_to(s, db, kinds[1].name);
    nebula_ap_db_close(db);
    if (hours_done > 0) {
        n += rollup_kind(s, p, &kinds[2], hours_done - hours_done % DAY_MS, now_ms,
                         c->rollup_hours);
    }
    return n;
}

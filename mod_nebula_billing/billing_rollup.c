/* billing_rollup.c: the hourly rollup of request_logs (docs/operations-data.md).
 *
 * Each scheduler pass rolls up to NebulaLogRollup closed hours into
 * request_log_hourly, oldest first. An hour is closed when it ended more
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
 * (admin_stats.c) read the rollup below done_to and the raw rows above. */
#include <apr_strings.h>
#include "billing_private.h"
#include "billing_sched.h"

#define HOUR_MS      APR_INT64_C(3600000)
#define ROLLUP_GRACE APR_INT64_C(600000) /* 10 minutes after the hour */
#define ROLLUP_NAME  "request_logs"

typedef struct {
    apr_int64_t done_to; /* the value read */
    apr_int64_t hour;    /* the hour to roll up; -1: only move done_to */
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

static int rollup_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    rollup_step_t *st = baton;
    const char *args[4];
    int affected = 0;

    args[0] = billing_i64(p, st->to);
    args[1] = billing_i64(p, st->now);
    args[2] = billing_i64(p, st->done_to);
    if (nebula_ap_db_exec(db, "billing_rollup_move",
                          "UPDATE nebula_rollup_state SET done_to = %lld, updated_at = %lld "
                          "WHERE name = '" ROLLUP_NAME "' AND done_to = %lld",
                          3, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED; /* another host moved it */
    }
    if (st->hour < 0) {
        return BILLING_STEP_DONE;
    }
    args[0] = billing_i64(p, st->hour);
    args[1] = billing_i64(p, st->hour + HOUR_MS);
    if (nebula_ap_db_exec(db, "billing_rollup_clear",
                          "DELETE FROM request_log_hourly WHERE hour_start = %lld", 1, args,
                          NULL, err) != APR_SUCCESS ||
        nebula_ap_db_exec(db, "billing_rollup_clear_total",
                          "DELETE FROM request_log_hourly_total WHERE hour_start = %lld", 1,
                          args, NULL, err) != APR_SUCCESS ||
        nebula_ap_db_exec(db, "billing_rollup_insert", rollup_insert_sql, 2, args, NULL,
                          err) != APR_SUCCESS ||
        nebula_ap_db_exec(db, "billing_rollup_total", rollup_total_sql, 1, args, NULL,
                          err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    return BILLING_STEP_DONE;
}

/* done_to, or -1 after logging why it could not be read. */
static apr_int64_t rollup_done_to(server_rec *s, nebula_ap_db_t *db)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL;

    if (nebula_ap_db_select(db, "billing_rollup_state",
                            "SELECT done_to FROM nebula_rollup_state WHERE name = '"
                            ROLLUP_NAME "'",
                            0, NULL, &rows, &err) != APR_SUCCESS || rows.nrows != 1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02400: log rollup: cannot read its state: %s",
                     err ? err : "no request_logs row in nebula_rollup_state");
        return -1;
    }
    return nebula_ap_db_int(&rows, 0, 0);
}

int billing_rollup_pass(server_rec *s, apr_pool_t *p, apr_int64_t now_ms)
{
    const billing_srv_conf_t *c = billing_config_srv(s);
    apr_int64_t closed = (now_ms - ROLLUP_GRACE) - (now_ms - ROLLUP_GRACE) % HOUR_MS;
    nebula_ap_db_t *db;
    int i, n = 0;

    if (c->rollup_hours <= 0 || (db = nebula_ap_db_open(p, s)) == NULL) {
        return 0;
    }
    for (i = 0; i < c->rollup_hours; ++i) {
        rollup_step_t st;
        nebula_dbd_rows_t rows;
        const char *args[2], *err = NULL;
        int rc;

        st.now = now_ms;
        if ((st.done_to = rollup_done_to(s, db)) < 0 || st.done_to >= closed) {
            break;
        }
        args[0] = billing_i64(p, st.done_to);
        args[1] = billing_i64(p, closed);
        if (nebula_ap_db_select(db, "billing_rollup_next",
                                "SELECT MIN(created_at) FROM request_logs WHERE "
                                "created_at >= %lld AND created_at < %lld",
                                2, args, &rows, &err) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB02401: log rollup: cannot find the next hour: %s", err);
            break;
        }
        if (rows.nrows == 0 || rows.rows[0][0] == NULL || *rows.rows[0][0] == '\0') {
            st.hour = -1; /* no rows up to the closed hours: skip them */
            st.to = closed;
        }
        else {
            apr_int64_t t = nebula_ap_db_int(&rows, 0, 0);
            st.hour = t - t % HOUR_MS;
            st.to = st.hour + HOUR_MS;
        }
        rc = billing_sched_txn(s, db, p, rollup_step, &st, "log rollup");
        if (rc != BILLING_STEP_DONE) {
            break; /* an error (logged) or another host is at it */
        }
        if (st.hour >= 0) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "NEB02402: log rollup: hour %" APR_INT64_T_FMT " rolled up",
                         st.hour);
            ++n;
        }
        else {
            break;
        }
    }
    nebula_ap_db_close(db);
    return n;
}

/* admin_stats.c: GET /api/stats/usage: request logs summed per hour or day.
 *
 * The bucket of a row is computed in SQL with integer arithmetic on
 * created_at, the same text on SQLite, PostgreSQL and MySQL:
 *   (created_at + off) - ((created_at + off) % size) - off
 * where off is the time-zone offset in ms (tz_offset minutes east of UTC,
 * a multiple of 15, so at most 105 distinct statements per bucket size) and
 * size 3600000 or 86400000. The offset and size are written into the SQL as
 * validated integer literals rather than bound: MySQL binds every parameter
 * as a string and would do this arithmetic in floating point. Buckets
 * without requests are filled with zeros, so a chart needs no gap logic.
 *
 * Whole hours the scheduler has rolled up (below nebula_rollup_state.done_to,
 * billing_rollup.c) are read from the rollup and the rest of the range from
 * request_logs, in one UNION ALL summed per bucket: the same answer as the
 * raw rows alone, reading hours x groups rows instead of every request. The
 * rollup is request_log_summary's hour rows of dimension none (one row an
 * hour, billing_rollup_summary.c) when no filter is given, as far as that
 * rollup got, then request_log_hourly_total (per model) when no filter but
 * the model is given, else request_log_hourly. Only when the offset is
 * whole hours (an hour of the rollup then lies in one bucket); other
 * offsets read the raw rows. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_admin.h"

#define MAX_BUCKETS 2000
#define HOUR_MS     APR_INT64_C(3600000)
#define DAY_MS      APR_INT64_C(86400000)

typedef struct {
    apr_int64_t size, off, from, to;
    const char *bucket;
} stats_span_t;

static void read_span(admin_req_t *a, stats_span_t *sp)
{
    apr_int64_t tz = 0;

    sp->bucket = "hour";
    admin_query_str(a, "bucket", 8, &sp->bucket);
    if (sp->bucket && strcmp(sp->bucket, "hour") && strcmp(sp->bucket, "day")) {
        admin_invalid(a, "bucket", "'bucket' must be hour or day");
    }
    sp->bucket = sp->bucket ? sp->bucket : "hour";
    sp->size = strcmp(sp->bucket, "day") == 0 ? DAY_MS : HOUR_MS;
    if (admin_query_int(a, "tz_offset", -720, 840, &tz) == ADMIN_SET && tz % 15 != 0) {
        admin_invalid(a, "tz_offset", "'tz_offset' must be a multiple of 15 minutes");
    }
    sp->off = tz * 60000;
    sp->from = -1;
    sp->to = -1;
    admin_logs_range(a, &sp->from, &sp->to);
    if (sp->to < 0) {
        sp->to = admin_now_ms();
    }
    if (sp->from < 0) {
        sp->from = sp->to - sp->size * (sp->size == DAY_MS ? 30 : 24);
        sp->from = sp->from < 0 ? 0 : sp->from;
    }
    if (!a->err_status && (sp->to - sp->from) / sp->size >= MAX_BUCKETS) {
        admin_invalid(a, "from", "the range spans more than %d buckets", MAX_BUCKETS);
    }
}

static apr_int64_t bucket_of(const stats_span_t *sp, apr_int64_t t)
{
    return (t + sp->off) - ((t + sp->off) % sp->size) - sp->off;
}

static json_t *bucket_json(apr_int64_t t, const nebula_dbd_rows_t *rows, int i)
{
    json_t *o = json_object();
    static const char *const names[] = {"requests", "prompt_tokens", "completion_tokens",
                                        "cost", "errors"};
    int j;

    json_object_set_new(o, "t", json_integer(t));
    for (j = 0; j < 5; ++j) {
        json_object_set_new(o, names[j],
                            json_integer(rows ? nebula_ap_db_int(rows, i, j + 1) : 0));
    }
    return o;
}

static void add_to_total(json_t *total, json_t *b)
{
    const char *k;
    json_t *v;

    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "t") != 0) {
            json_object_set_new(
                total, k,
                json_integer(json_integer_value(v) +
                             json_integer_value(json_object_get(total, k))));
        }
    }
}

/* Every bucket of the span, from the rows (ordered by bucket) or zeros. */
static json_t *fill_buckets(const stats_span_t *sp, const nebula_dbd_rows_t *rows,
                            json_t *total)
{
    json_t *out = json_array();
    apr_int64_t t;
    int i = 0;

    for (t = bucket_of(sp, sp->from); t < sp->to; t += sp->size) {
        json_t *b;
        while (i < rows->nrows && nebula_ap_db_int(rows, i, 0) < t) {
            ++i; /* cannot happen with the WHERE range; keeps the walk safe */
        }
        if (i < rows->nrows && nebula_ap_db_int(rows, i, 0) == t) {
            b = bucket_json(t, rows, i++);
            add_to_total(total, b);
        }
        else {
            b = bucket_json(t, NULL, 0);
        }
        json_array_append_new(out, b);
    }
    return out;
}

#define USAGE_SUMS                                                                       \
    "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), "                  \
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)"

/* The bucket expression of the time column @a col. */
static const char *bucket_expr(admin_req_t *a, const stats_span_t *sp, const char *col)
{
    return apr_psprintf(a->r->pool,
                        "(%s + %" APR_INT64_T_FMT ") - ((%s + %" APR_INT64_T_FMT
                        ") %%%% %" APR_INT64_T_FMT ") - %" APR_INT64_T_FMT,
                        col, sp->off, col, sp->off, sp->size, sp->off);
}

/* The parts of the span read from a rollup, as times: request_log_summary's
 * hours [h1, s2), then request_log_hourly(_total)'s [s2, h2); the raw rows
 * answer for [from, h1) and [h2, to). */
typedef struct {
    apr_int64_t h1, s2, h2;
} stats_rolled_t;

/* Whether the query has a filter (model, key, channel or user). */
static int usage_filtered(admin_req_t *a)
{
    return apr_table_get(a->query, "model") || apr_table_get(a->query, "user_id") ||
           apr_table_get(a->query, "key_id") || apr_table_get(a->query, "channel_id");
}

/* Plan the rolled-up hours within the span (stats_rolled_t); 0 when none
 * (or the rollup state cannot be read: the raw rows answer alone). */
static int rolled_hours(admin_req_t *a, const stats_span_t *sp, stats_rolled_t *rh)
{
    nebula_dbd_rows_t rows;
    apr_int64_t hdone = 0, sdone = 0, top;
    int i;

    if (sp->off % HOUR_MS != 0 ||
        admin_db_select(a, "SELECT name, done_to FROM nebula_rollup_state WHERE name IN "
                        "('request_logs', 'request_logs_summary')",
                        0, NULL, &rows) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (strcmp(rows.rows[i][0], "request_logs") == 0) {
            hdone = nebula_ap_db_int(&rows, i, 1);
        }
        else if (!usage_filtered(a)) {
            sdone = nebula_ap_db_int(&rows, i, 1);
        }
    }
    rh->h1 = sp->from % HOUR_MS ? sp->from - sp->from % HOUR_MS + HOUR_MS : sp->from;
    top = sp->to - sp->to % HOUR_MS;
    rh->s2 = top < sdone ? top : sdone;
    rh->s2 = rh->s2 > rh->h1 ? rh->s2 : rh->h1;
    rh->h2 = top < hdone ? top : hdone;
    rh->h2 = rh->h2 > rh->s2 ? rh->h2 : rh->s2;
    return rh->h2 > rh->h1;
}

/* One part of the UNION: rows of @a table with time column @a col in
 * [lo, hi), and @a cond (or NULL). */
static void usage_part(admin_req_t *a, admin_sql_t *w, const stats_span_t *sp,
                       const char *table, const char *col, const char *cond,
                       const char *sums, apr_int64_t lo, apr_int64_t hi)
{
    w->nconds = 0;
    admin_sql_add(w, apr_pstrcat(a->r->pool, "SELECT ", bucket_expr(a, sp, col), " AS t, ",
                                 sums, " FROM ", table, NULL));
    if (cond) {
        admin_sql_where(w, cond, NULL);
    }
    admin_sql_where(w, apr_pstrcat(a->r->pool, col, " >= %lld", NULL), admin_i64(a, lo));
    admin_sql_where(w, apr_pstrcat(a->r->pool, col, " < %lld", NULL), admin_i64(a, hi));
    admin_logs_filters(a, w, 0);
    admin_sql_add(w, " GROUP BY 1");
}

#define ROLLED_SUMS                                                                      \
    "SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), SUM(errors)"

/* The SQL of the usage over the raw rows and the rollups. */
static void usage_union(admin_req_t *a, admin_sql_t *w, const stats_span_t *sp,
                        const stats_rolled_t *rh)
{
    admin_sql_init(w, a->r->pool, "SELECT t, SUM(n), SUM(pt), SUM(ct), SUM(co), SUM(er) "
                                  "FROM (");
    usage_part(a, w, sp, "request_logs", "created_at", NULL,
               "COUNT(*) AS n, SUM(prompt_tokens) AS pt, SUM(completion_tokens) AS ct, "
               "SUM(cost) AS co, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS er",
               sp->from, rh->h1);
    if (rh->s2 > rh->h1) {
        admin_sql_add(w, " UNION ALL ");
        usage_part(a, w, sp, "request_log_summary", "period_start",
                   "dim = 'none' AND span_hours = 1", ROLLED_SUMS, rh->h1, rh->s2);
    }
    if (rh->h2 > rh->s2) {
        admin_sql_add(w, " UNION ALL ");
        usage_part(a, w, sp,
                   apr_table_get(a->query, "user_id") || apr_table_get(a->query, "key_id") ||
                           apr_table_get(a->query, "channel_id")
                       ? "request_log_hourly"
                       : "request_log_hourly_total",
                   "hour_start", NULL, ROLLED_SUMS, rh->s2, rh->h2);
    }
    admin_sql_add(w, " UNION ALL ");
    usage_part(a, w, sp, "request_logs", "created_at", NULL, USAGE_SUMS, rh->h2, sp->to);
    admin_sql_add(w, ") u GROUP BY t ORDER BY t");
}

int admin_stats_usage(admin_req_t *a)
{
    static const char *const allowed[] = {"from",      "to",     "bucket",
                                          "tz_offset", "model",  "channel_id",
                                          "user_id",   "key_id", NULL};
    stats_span_t sp;
    admin_sql_t w;
    nebula_dbd_rows_t rows;
    stats_rolled_t rh;
    json_t *out, *total;

    admin_query_only(a, allowed);
    read_span(a, &sp);
    admin_sql_init(&w, a->r->pool,
                   apr_pstrcat(a->r->pool, "SELECT ", bucket_expr(a, &sp, "created_at"),
                               " AS t, " USAGE_SUMS " FROM request_logs", NULL));
    admin_sql_where(&w, "created_at >= %lld", admin_i64(a, sp.from));
    admin_sql_where(&w, "created_at < %lld", admin_i64(a, sp.to));
    admin_logs_filters(a, &w, 0);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_add(&w, " GROUP BY 1 ORDER BY 1");
    if (rolled_hours(a, &sp, &rh)) {
        usage_union(a, &w, &sp, &rh);
    }
    if (admin_db_select(a, w.sql, w.n, w.args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "sum request logs");
    }
    total = bucket_json(0, NULL, 0);
    json_object_del(total, "t");
    out = json_object();
    json_object_set_new(out, "bucket", json_string(sp.bucket));
    json_object_set_new(out, "from", json_integer(sp.from));
    json_object_set_new(out, "to", json_integer(sp.to));
    json_object_set_new(out, "tz_offset", json_integer(sp.off / 60000));
    json_object_set_new(out, "buckets", fill_buckets(&sp, &rows, total));
    json_object_set_new(out, "total", total);
    return admin_send_data(a, HTTP_OK, out);
}

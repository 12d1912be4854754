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
 * without requests are filled with zeros, so a chart needs no gap logic. */
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

int admin_stats_usage(admin_req_t *a)
{
    static const char *const allowed[] = {"from",      "to",     "bucket",
                                          "tz_offset", "model",  "channel_id",
                                          "user_id",   "key_id", NULL};
    stats_span_t sp;
    admin_sql_t w;
    nebula_dbd_rows_t rows;
    const char *expr;
    json_t *out, *total;

    admin_query_only(a, allowed);
    read_span(a, &sp);
    expr = apr_psprintf(a->r->pool,
                        "(created_at + %" APR_INT64_T_FMT
                        ") - ((created_at + %" APR_INT64_T_FMT ") %%%% %" APR_INT64_T_FMT
                        ") - %" APR_INT64_T_FMT,
                        sp.off, sp.off, sp.size, sp.off);
    admin_sql_init(&w, a->r->pool,
                   apr_pstrcat(a->r->pool, "SELECT ", expr,
                               " AS t, COUNT(*), "
                               "SUM(prompt_tokens), SUM(completion_tokens), "
                               "SUM(cost), SUM(CASE WHEN status >= 400 THEN 1 "
                               "ELSE 0 END) FROM request_logs",
                               NULL));
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

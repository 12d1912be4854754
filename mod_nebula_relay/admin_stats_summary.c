/* admin_stats_summary.c: GET /api/stats/summary, the dashboard's numbers:
 * requests, errors, success rate, tokens, cost and the latency and
 * time-to-first-token percentiles of the request logs of a time range, in
 * total and for the top groups (model, channel, key or user) by requests.
 *
 * Percentiles come from a histogram the database fills with the same SQL on
 * SQLite, PostgreSQL and MySQL (integer comparisons and %, no log()): a
 * value v below 64 ms is its own bucket; above, v falls in the octave
 * [2^e, 2^(e+1)) and the bucket is v - v % 2^(e-5), one of 32 of equal width
 * in that octave. Each bucket is at most 1/32 of its lower bound wide, so a
 * value read back from it is within 3.2 % of the true one, and exact below
 * 64 ms. The C side walks the buckets in order and interpolates linearly
 * between order statistics (as numpy's default), spreading a bucket's
 * values evenly over its width. The work is bounded: at most ~30 octaves of
 * 32 buckets per group, and only the top `limit` groups are read. */
#include <apr_strings.h>
#include <apr_hash.h>
#include <http_protocol.h>
#include "admin_self.h"

#define DAY_MS      APR_INT64_C(86400000)
#define EXACT_BELOW 64 /* values below are their own bucket */
#define SUB_BITS    5  /* 2^5 = 32 buckets an octave */
#define TOP_OCTAVE  40 /* 2^40 ms: anything above shares the last width */
#define MAX_GROUPS  100

/* What the rows are grouped by. */
typedef struct {
    const char *name;  /* the query's "by" */
    const char *col;   /* request_logs column, NULL for none */
    const char *id;    /* the JSON member of the group's value */
    const char *label; /* the JSON member of its name, or NULL */
    const char *names; /* SELECT id, name ... WHERE id IN, or NULL */
} summary_by_t;

static const summary_by_t bys[] = {
    {"none", NULL, NULL, NULL, NULL},
    {"model", "model", "model", NULL, NULL},
    {"channel", "channel_id", "channel_id", "channel_name",
     "SELECT id, name FROM channels"},
    {"key", "key_id", "key_id", "key_name", "SELECT id, name FROM api_keys"},
    {"user", "user_id", "user_id", "username", "SELECT id, username FROM users"},
    {NULL, NULL, NULL, NULL, NULL}};

/* One group's histogram: buckets (lower bound, count) in ascending order. */
typedef struct {
    apr_array_header_t *lo, *n; /* apr_int64_t each */
    apr_int64_t total;
} hist_t;

/* The bucket of column @a c, as SQL. */
static const char *bucket_sql(apr_pool_t *p, const char *c)
{
    const char *s = apr_pstrcat(p, "CASE WHEN ", c, " < ", apr_itoa(p, EXACT_BELOW),
                                " THEN ", c, " ELSE ", c, " - ", c, " %% (CASE", NULL);
    int e;

    for (e = 6; e < TOP_OCTAVE; ++e) { /* 2^6 = EXACT_BELOW */
        s = apr_psprintf(p, "%s WHEN %s < %" APR_INT64_T_FMT " THEN %" APR_INT64_T_FMT, s,
                         c, APR_INT64_C(1) << (e + 1), APR_INT64_C(1) << (e - SUB_BITS));
    }
    return apr_psprintf(p, "%s ELSE %" APR_INT64_T_FMT " END) END", s,
                        APR_INT64_C(1) << (TOP_OCTAVE - SUB_BITS));
}

/* The width of the bucket starting at @a lo. */
static apr_int64_t bucket_width(apr_int64_t lo)
{
    int e = 0;

    if (lo < EXACT_BELOW) {
        return 1;
    }
    while (e < TOP_OCTAVE && (lo >> (e + 1)) > 0) {
        ++e;
    }
    return APR_INT64_C(1) << (e - SUB_BITS);
}

/* The @a j-th smallest value (0-based) read back from @a h. */
static double hist_value(const hist_t *h, apr_int64_t j)
{
    apr_int64_t before = 0;
    int i;

    for (i = 0; i < h->n->nelts; ++i) {
        apr_int64_t c = APR_ARRAY_IDX(h->n, i, apr_int64_t);
        apr_int64_t lo = APR_ARRAY_IDX(h->lo, i, apr_int64_t);
        if (j < before + c) {
            return (double)lo + (double)(bucket_width(lo) - 1) *
                                    ((double)(j - before) + 0.5) / (double)c;
        }
        before += c;
    }
    return h->lo->nelts ? (double)APR_ARRAY_IDX(h->lo, h->lo->nelts - 1, apr_int64_t) : 0;
}

/* {"p50", "p95", "p99"} of @a h, or JSON null when it holds nothing. */
static json_t *hist_json(const hist_t *h)
{
    static const int ps[] = {50, 95, 99};
    static const char *const names[] = {"p50", "p95", "p99"};
    json_t *o;
    int i;

    if (h == NULL || h->total == 0) {
        return json_null();
    }
    o = json_object();
    for (i = 0; i < 3; ++i) {
        double k = (double)ps[i] / 100.0 * (double)(h->total - 1);
        apr_int64_t lo = (apr_int64_t)k; /* k >= 0: the floor */
        double v = hist_value(h, lo);
        if (lo + 1 < h->total) {
            v += (k - (double)lo) * (hist_value(h, lo + 1) - v);
        }
        json_object_set_new(o, names[i], json_integer((json_int_t)(v + 0.5)));
    }
    return o;
}

/* The group value of row @a i, column 0, as the key of the maps ("" for
 * NULL ids: pgsql answers NULL as ""). */
static const char *group_key(const nebula_dbd_rows_t *rows, int i)
{
    const char *v = rows->rows[i][0];

    return v ? v : "";
}

/* Query context: the WHERE text and its arguments, the grouping. */
typedef struct {
    admin_req_t *a;
    const summary_by_t *by;
    admin_sql_t w;        /* " WHERE ..." and its arguments */
    const char *in;       /* " AND (col IN (...) [OR col IS NULL])" or "" */
    const char **in_args; /* w's arguments then the IN list's */
    int in_n;
} summary_q_t;

/* Fill @a out (group key -> hist_t *, or "" for the totals) with the
 * histogram of @a col over the rows matching @a cond as well. */
static int read_hist(summary_q_t *q, const char *col, const char *cond, apr_hash_t *out)
{
    admin_req_t *a = q->a;
    apr_pool_t *p = a->r->pool;
    const char *g = q->by->col ? apr_pstrcat(p, q->by->col, ", ", NULL) : "";
    const char *sql = apr_pstrcat(
        p, "SELECT ", g, bucket_sql(p, col), ", COUNT(*) FROM request_logs", q->w.sql,
        " AND ", cond, q->by->col ? q->in : "", " GROUP BY 1", q->by->col ? ", 2" : "",
        " ORDER BY 1", q->by->col ? ", 2" : "", NULL);
    nebula_dbd_rows_t rows;
    int i, off = q->by->col ? 1 : 0;

    if (admin_db_select(a, sql, q->by->col ? q->in_n : q->w.n,
                        q->by->col ? q->in_args : q->w.args, &rows) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *key = off ? group_key(&rows, i) : "";
        hist_t *h = apr_hash_get(out, key, APR_HASH_KEY_STRING);
        if (h == NULL) {
            h = apr_pcalloc(p, sizeof(*h));
            h->lo = apr_array_make(p, 64, sizeof(apr_int64_t));
            h->n = apr_array_make(p, 64, sizeof(apr_int64_t));
            apr_hash_set(out, key, APR_HASH_KEY_STRING, h);
        }
        APR_ARRAY_PUSH(h->lo, apr_int64_t) = nebula_ap_db_int(&rows, i, off);
        APR_ARRAY_PUSH(h->n, apr_int64_t) = nebula_ap_db_int(&rows, i, off + 1);
        h->total += nebula_ap_db_int(&rows, i, off + 1);
    }
    return 1;
}

#define SUMS_SQL                                                                         \
    "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "     \
    "SUM(completion_tokens), SUM(cost)"
#define LATENCY_COND "status < 400"
#define TTFT_COND    "status < 400 AND is_stream = 1 AND ttfb_ms > 0"

/* The summary of row @a i of @a rows, its sums from column @a c0. */
static json_t *summary_json(const nebula_dbd_rows_t *rows, int i, int c0,
                            const hist_t *lat, const hist_t *ttft)
{
    json_t *o = json_object();
    apr_int64_t req = rows->nrows > i ? nebula_ap_db_int(rows, i, c0) : 0;
    apr_int64_t err = rows->nrows > i ? nebula_ap_db_int(rows, i, c0 + 1) : 0;
    static const char *const names[] = {"prompt_tokens", "completion_tokens", "cost"};
    int j;

    json_object_set_new(o, "requests", json_integer(req));
    json_object_set_new(o, "errors", json_integer(err));
    json_object_set_new(o, "success_rate",
                        req ? json_real((double)(req - err) / (double)req) : json_null());
    for (j = 0; j < 3; ++j) {
        json_object_set_new(
            o, names[j],
            json_integer(rows->nrows > i ? nebula_ap_db_int(rows, i, c0 + 2 + j) : 0));
    }
    json_object_set_new(o, "latency_ms", hist_json(lat));
    json_object_set_new(o, "ttft_ms", hist_json(ttft));
    return o;
}

/* The IN condition restricting the histograms to the groups of @a rows. */
static void restrict_groups(summary_q_t *q, const nebula_dbd_rows_t *rows)
{
    apr_pool_t *p = q->a->r->pool;
    const char *list = "";
    int i, n = 0, has_null = 0, is_text = strcmp(q->by->name, "model") == 0;

    q->in_args = apr_pcalloc(p, sizeof(char *) * (q->w.n + rows->nrows + 1));
    memcpy(q->in_args, q->w.args, sizeof(char *) * q->w.n);
    q->in_n = q->w.n;
    for (i = 0; i < rows->nrows; ++i) {
        const char *v = rows->rows[i][0];
        if (!is_text && (v == NULL || *v == '\0')) {
            has_null = 1;
            continue;
        }
        if (is_text) {
            q->in_args[q->in_n++] = v ? v : "";
        }
        list = apr_pstrcat(
            p, list, n++ ? ", " : "",
            is_text ? "%s" : apr_psprintf(p, "%" APR_INT64_T_FMT, apr_atoi64(v)), NULL);
    }
    q->in = apr_pstrcat(
        p, " AND (", n ? apr_pstrcat(p, q->by->col, " IN (", list, ")", NULL) : "1 = 0",
        has_null ? apr_pstrcat(p, " OR ", q->by->col, " IS NULL", NULL) : "", ")", NULL);
}

/* The names of the groups' ids (channel, key and user groups); NULL on a
 * database error. */
static apr_hash_t *group_names(summary_q_t *q, const nebula_dbd_rows_t *rows)
{
    apr_pool_t *p = q->a->r->pool;
    apr_hash_t *h = apr_hash_make(p);
    const char *list = "";
    nebula_dbd_rows_t nr;
    int i, n = 0;

    if (q->by->names == NULL) {
        return h;
    }
    for (i = 0; i < rows->nrows; ++i) {
        if (rows->rows[i][0] && *rows->rows[i][0]) {
            list = apr_psprintf(p, "%s%s%" APR_INT64_T_FMT, list, n++ ? ", " : "",
                                apr_atoi64(rows->rows[i][0]));
        }
    }
    if (n == 0) {
        return h;
    }
    if (admin_db_select(q->a,
                        apr_pstrcat(p, q->by->names, " WHERE id IN (", list, ")", NULL),
                        0, NULL, &nr) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < nr.nrows; ++i) {
        apr_hash_set(h, apr_psprintf(p, "%" APR_INT64_T_FMT, nebula_ap_db_int(&nr, i, 0)),
                     APR_HASH_KEY_STRING, nr.rows[i][1]);
    }
    return h;
}

/* The rows of the top groups; NULL after a database error was sent. */
static json_t *group_rows(summary_q_t *q, apr_int64_t limit)
{
    admin_req_t *a = q->a;
    apr_pool_t *p = a->r->pool;
    nebula_dbd_rows_t rows;
    apr_hash_t *lat = apr_hash_make(p), *ttft = apr_hash_make(p), *names;
    json_t *out = json_array();
    int i;
    const char *sql =
        apr_pstrcat(p, "SELECT ", q->by->col, ", " SUMS_SQL " FROM request_logs",
                    q->w.sql, " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ",
                    apr_psprintf(p, "%" APR_INT64_T_FMT, limit), NULL);

    nebula_json_own(p, out);
    if (admin_db_select(a, sql, q->w.n, q->w.args, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "sum request logs by group");
        return NULL;
    }
    restrict_groups(q, &rows);
    if ((names = group_names(q, &rows)) == NULL) {
        admin_db_fail(a, "read the names of the groups");
        return NULL;
    }
    if (!read_hist(q, "latency_ms", LATENCY_COND, lat) ||
        !read_hist(q, "ttfb_ms", TTFT_COND, ttft)) {
        admin_db_fail(a, "read latency histograms");
        return NULL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *key = group_key(&rows, i);
        json_t *o = summary_json(&rows, i, 1, apr_hash_get(lat, key, APR_HASH_KEY_STRING),
                                 apr_hash_get(ttft, key, APR_HASH_KEY_STRING));
        if (q->by->label == NULL) {
            json_object_set_new(o, q->by->id, json_string(key));
        }
        else if (*key == '\0') {
            json_object_set_new(o, q->by->id, json_null());
            json_object_set_new(o, q->by->label, json_null());
        }
        else {
            const char *name = apr_hash_get(names, key, APR_HASH_KEY_STRING);
            json_object_set_new(o, q->by->id, json_integer(apr_atoi64(key)));
            json_object_set_new(o, q->by->label, name ? json_string(name) : json_null());
        }
        json_array_append_new(out, o);
    }
    return json_incref(out);
}

/* The query: range, grouping, limit and filters; errors are recorded. */
static const summary_by_t *read_query(admin_req_t *a, summary_q_t *q,
                                      apr_int64_t self_user, apr_int64_t *from,
                                      apr_int64_t *to, apr_int64_t *limit)
{
    static const char *const allowed[] = {
        "from", "to", "by", "limit", "model", "key_id", "channel_id", "user_id", NULL};
    static const char *const self_allowed[] = {"from",  "to",     "by", "limit",
                                               "model", "key_id", NULL};
    const char *by = "none";
    int i;

    admin_query_only(a, self_user ? self_allowed : allowed);
    *from = -1;
    *to = -1;
    admin_logs_range(a, from, to);
    if (*to < 0) {
        *to = admin_now_ms();
    }
    if (*from < 0) {
        *from = *to - DAY_MS > 0 ? *to - DAY_MS : 0;
    }
    *limit = 10;
    admin_query_int(a, "limit", 1, MAX_GROUPS, limit);
    admin_query_str(a, "by", 16, &by);
    for (i = 0; bys[i].name && strcmp(bys[i].name, by); ++i) {
    }
    if (bys[i].name == NULL || (self_user && (i == 2 || i == 4))) {
        admin_invalid(a, "by",
                      self_user ? "'by' must be one of: none, model, key"
                                : "'by' must be one of: none, model, channel, key, user");
        return NULL;
    }
    admin_sql_init(&q->w, a->r->pool, "");
    admin_sql_where(&q->w, "created_at >= %lld", admin_i64(a, *from));
    admin_sql_where(&q->w, "created_at < %lld", admin_i64(a, *to));
    if (self_user) {
        admin_sql_where(&q->w, "user_id = %lld", admin_i64(a, self_user));
    }
    admin_logs_filters(a, &q->w, 0);
    return &bys[i];
}

int admin_stats_summary_send(admin_req_t *a, apr_int64_t self_user)
{
    summary_q_t q;
    apr_int64_t from, to, limit;
    nebula_dbd_rows_t rows;
    apr_hash_t *lat = apr_hash_make(a->r->pool), *ttft = apr_hash_make(a->r->pool);
    const summary_by_t *none = &bys[0];
    json_t *out, *groups;

    memset(&q, 0, sizeof(q));
    q.a = a;
    q.by = read_query(a, &q, self_user, &from, &to, &limit);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_select(a,
                        apr_pstrcat(a->r->pool, "SELECT " SUMS_SQL " FROM request_logs",
                                    q.w.sql, NULL),
                        q.w.n, q.w.args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "sum request logs");
    }
    {
        const summary_by_t *by = q.by;
        q.by = none;
        if (!read_hist(&q, "latency_ms", LATENCY_COND, lat) ||
            !read_hist(&q, "ttfb_ms", TTFT_COND, ttft)) {
            return admin_db_fail(a, "read latency histograms");
        }
        q.by = by;
    }
    groups = q.by->col ? group_rows(&q, limit) : json_array();
    if (groups == NULL) {
        return OK;
    }
    out = json_object();
    json_object_set_new(out, "from", json_integer(from));
    json_object_set_new(out, "to", json_integer(to));
    json_object_set_new(out, "by", json_string(q.by->name));
    json_object_set_new(out, "limit", json_integer(limit));
    json_object_set_new(out, "total",
                        summary_json(&rows, 0, 0,
                                     apr_hash_get(lat, "", APR_HASH_KEY_STRING),
                                     apr_hash_get(ttft, "", APR_HASH_KEY_STRING)));
    json_object_set_new(out, "rows", groups);
    return admin_send_data(a, HTTP_OK, out);
}

int admin_stats_summary(admin_req_t *a)
{
    return admin_stats_summary_send(a, 0);
}

/* Read by every manager role (operators too, once GETs are open to them). */
const admin_route_t admin_dashboard_routes[] = {
    {"GET", "/api/stats/summary", admin_stats_summary, 0}, {NULL, NULL, NULL, 0}};

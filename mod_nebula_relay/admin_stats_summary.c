/* admin_stats_summary.c: GET /api/stats/summary, the dashboard's numbers:
 * requests, errors, success rate, tokens, cost and the latency and
 * time-to-first-token percentiles of the request logs of a time range, in
 * total and for the top groups (model, channel, key or user) by requests.
 *
 * Percentiles come from log-linear histograms (nebula_hist.h: exact below
 * 64 ms, within 3.2 % above) that the database fills with the same SQL on
 * SQLite, PostgreSQL and MySQL, read back with numpy's default
 * interpolation.
 *
 * The range is read from the rollup where the scheduler has written it
 * (request_log_summary, billing_rollup_summary.c) and from the raw rows
 * elsewhere, with the same answer: raw rows for the part before the first
 * whole hour and after the last rolled-up one; hour rows up to the first
 * whole UTC day and after the last one; day rows between. The rollup holds
 * one dimension at a time, so it serves the queries that constrain at most
 * one column (grouping and filters alike: by=model, or by=key with key_id,
 * or user_id alone); others read the raw rows, through the request logs'
 * indexes on the filtered column. Only the top `limit` groups' histograms
 * are read. */
#include <apr_strings.h>
#include <apr_hash.h>
#include <http_protocol.h>
#include "admin_self.h"
#include "nebula_hist.h"

#define HOUR_MS     APR_INT64_C(3600000)
#define DAY_MS      APR_INT64_C(86400000)
#define MAX_GROUPS  100

/* What the rows are grouped by. */
typedef struct {
    const char *name;  /* the query's "by", and request_log_summary's dim */
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

/* A group's two histograms. */
typedef struct {
    nebula_hist_t *lat, *ttft;
} summary_hists_t;

/* A growing SQL text with any number of parameters. */
typedef struct {
    apr_pool_t *p;
    const char *sql;
    apr_array_header_t *args; /* const char * */
} summary_sql_t;

/* Query context: range, grouping, filters and the plan of what is read
 * where: raw rows [from, h1) and [h2, to); request_log_summary's hour rows
 * [h1, d1) and [d2, h2), its day rows [d1, d2). */
typedef struct {
    admin_req_t *a;
    const summary_by_t *by;
    apr_int64_t self_user;
    apr_int64_t from, to, h1, d1, d2, h2;
    const summary_by_t *fdim; /* the one filtered dimension, or bys[0] */
    int rolled;               /* the rollup serves this query */
    const char *in;           /* " AND (col IN (...) [OR col IS NULL])" or "" */
    apr_array_header_t *in_args;
} summary_q_t;

#define SUMS_RAW                                                                         \
    "COUNT(*) AS n, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS e, "               \
    "SUM(prompt_tokens) AS pt, SUM(completion_tokens) AS ct, SUM(cost) AS co"
#define SUMS_ROLLED                                                                      \
    "SUM(requests) AS n, SUM(errors) AS e, SUM(prompt_tokens) AS pt, "                   \
    "SUM(completion_tokens) AS ct, SUM(cost) AS co"

static void sql_init(summary_sql_t *q, apr_pool_t *p, const char *head)
{
    q->p = p;
    q->sql = head;
    q->args = apr_array_make(p, 16, sizeof(const char *));
}

static void sql_add(summary_sql_t *q, const char *text, const apr_array_header_t *args)
{
    q->sql = apr_pstrcat(q->p, q->sql, text, NULL);
    if (args) {
        apr_array_cat(q->args, args);
    }
}

/* Append the WHERE of a part (or its further conditions when @a has_where):
 * the time column @a tcol in [lo, hi), the caller's user, the query's
 * filters, then @a more and q->in. */
static void sql_where(summary_q_t *q, summary_sql_t *out, int has_where, const char *tcol,
                      apr_int64_t lo, apr_int64_t hi, const char *more)
{
    admin_req_t *a = q->a;
    admin_sql_t w;
    int i;

    admin_sql_init(&w, a->r->pool, "");
    w.nconds = has_where; /* go on with " AND " */
    admin_sql_where(&w, apr_pstrcat(a->r->pool, tcol, " >= %lld", NULL), admin_i64(a, lo));
    admin_sql_where(&w, apr_pstrcat(a->r->pool, tcol, " < %lld", NULL), admin_i64(a, hi));
    if (q->self_user) {
        admin_sql_where(&w, "user_id = %lld", admin_i64(a, q->self_user));
    }
    admin_logs_filters(a, &w, 0);
    out->sql = apr_pstrcat(out->p, out->sql, w.sql, more, q->in, NULL);
    for (i = 0; i < w.n; ++i) {
        APR_ARRAY_PUSH(out->args, const char *) = w.args[i];
    }
    if (*q->in) {
        apr_array_cat(out->args, q->in_args);
    }
}

/* The rollup's parts of [h1, h2) for dimension @a dim: hour, day, hour
 * rows; each is "SELECT <@a select> FROM request_log_summary WHERE ...
 * <@a more> <@a tail>", the first after @a sep, the others after UNION ALL.
 * Nothing when the rollup does not serve the query. */
static void rolled_parts(summary_q_t *q, summary_sql_t *out, const summary_by_t *dim,
                         const char *select, const char *more, const char *tail,
                         const char *sep)
{
    apr_pool_t *p = q->a->r->pool;
    const struct {
        const char *span;
        apr_int64_t lo, hi;
    } parts[] = {{"1", q->h1, q->d1}, {"24", q->d1, q->d2}, {"1", q->d2, q->h2}};
    int i;

    for (i = 0; q->rolled && i < 3; ++i) {
        if (parts[i].lo >= parts[i].hi) {
            continue;
        }
        /* the dimension and span as literals (from bys[], not the query):
         * PostgreSQL's generic plan of a prepared statement does not know
         * which dimension a parameter names, and scanned the whole table */
        sql_add(out, apr_pstrcat(p, sep, "SELECT ", select,
                                 " FROM request_log_summary WHERE dim = '", dim->name,
                                 "' AND span_hours = ", parts[i].span, NULL), NULL);
        sql_where(q, out, 1, "period_start", parts[i].lo, parts[i].hi, more);
        sql_add(out, tail, NULL);
        sep = " UNION ALL ";
    }
}

/* The raw parts [from, h1) and [h2, to), as rolled_parts(). */
static void raw_parts(summary_q_t *q, summary_sql_t *out, const char *select,
                      const char *more, const char *tail, const char *sep)
{
    apr_pool_t *p = q->a->r->pool;

    sql_add(out, apr_pstrcat(p, sep, "SELECT ", select, " FROM request_logs", NULL), NULL);
    sql_where(q, out, 0, "created_at", q->from, q->h1, more);
    sql_add(out, tail, NULL);
    if (q->h2 < q->to) {
        sql_add(out, apr_pstrcat(p, " UNION ALL SELECT ", select, " FROM request_logs",
                                 NULL), NULL);
        sql_where(q, out, 0, "created_at", q->h2, q->to, more);
        sql_add(out, tail, NULL);
    }
}

/* The request_log_summary dimension of column @a col. */
static const summary_by_t *dim_of(const char *col)
{
    int i;

    for (i = 1; bys[i].name && strcmp(bys[i].col, col); ++i) {
    }
    return &bys[i];
}

/* Decide what is read where (summary_q_t); the raw rows alone when the
 * rollup cannot serve the query or its state cannot be read. */
static void plan(summary_q_t *q)
{
    static const char *const filters[] = {"model", "key_id", "channel_id", "user_id", NULL};
    const char *fcol = q->self_user ? "user_id" : NULL;
    nebula_dbd_rows_t rows;
    apr_int64_t hdone = 0, ddone = 0;
    int i, nf = q->self_user ? 1 : 0;

    q->h1 = q->h2 = q->d1 = q->d2 = q->to;
    q->rolled = 0;
    q->fdim = &bys[0];
    for (i = 0; filters[i]; ++i) {
        if (apr_table_get(q->a->query, filters[i]) &&
            (fcol == NULL || strcmp(fcol, filters[i]) != 0)) {
            fcol = filters[i];
            ++nf;
        }
    }
    if (nf > 1 || (nf == 1 && q->by->col && strcmp(q->by->col, fcol) != 0)) {
        return; /* more than one column constrained */
    }
    if (admin_db_select(q->a,
                        "SELECT name, done_to FROM nebula_rollup_state WHERE name IN "
                        "('request_logs_summary', 'request_logs_summary_day')",
                        0, NULL, &rows) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (strcmp(rows.rows[i][0], "request_logs_summary") == 0) {
            hdone = nebula_ap_db_int(&rows, i, 1);
        }
        else {
            ddone = nebula_ap_db_int(&rows, i, 1);
        }
    }
    q->fdim = nf ? dim_of(fcol) : &bys[0];
    q->h1 = q->from % HOUR_MS ? q->from - q->from % HOUR_MS + HOUR_MS : q->from;
    q->h2 = q->to - q->to % HOUR_MS;
    q->h2 = q->h2 < hdone ? q->h2 : hdone;
    if (q->h2 <= q->h1) {
        q->h1 = q->h2 = q->d1 = q->d2 = q->to;
        return;
    }
    q->d1 = q->h1 % DAY_MS ? q->h1 - q->h1 % DAY_MS + DAY_MS : q->h1;
    q->d2 = q->h2 - q->h2 % DAY_MS;
    q->d2 = q->d2 < ddone ? q->d2 : ddone;
    if (q->d2 <= q->d1) {
        q->d1 = q->d2 = q->h2;
    }
    q->rolled = 1;
}

/* The group value of row @a i, column 0, as the key of the maps ("" for
 * NULL ids: pgsql answers NULL as ""). */
static const char *group_key(const nebula_dbd_rows_t *rows, int i)
{
    const char *v = rows->rows[i][0];

    return v ? v : "";
}

/* The sums (requests, errors, prompt and completion tokens, cost) of the
 * range, per group of @a by (its top @a limit) or in total. */
static apr_status_t read_sums(summary_q_t *q, const summary_by_t *by, apr_int64_t limit,
                              nebula_dbd_rows_t *rows)
{
    apr_pool_t *p = q->a->r->pool;
    const char *g = by->col ? apr_pstrcat(p, by->col, " AS g, ", NULL) : "";
    const char *gb = by->col ? " GROUP BY 1" : "";
    summary_sql_t s;

    sql_init(&s, p,
             apr_pstrcat(p, "SELECT ", by->col ? "g, " : "",
                         "SUM(n), SUM(e), SUM(pt), SUM(ct), SUM(co) FROM (", NULL));
    raw_parts(q, &s, apr_pstrcat(p, g, SUMS_RAW, NULL), "", gb, "");
    rolled_parts(q, &s, by->col ? by : q->fdim, apr_pstrcat(p, g, SUMS_ROLLED, NULL), "",
                 gb, " UNION ALL ");
    sql_add(&s, ") u", NULL);
    if (by->col) {
        sql_add(&s,
                apr_psprintf(p, " GROUP BY g ORDER BY 2 DESC, 1 LIMIT %" APR_INT64_T_FMT,
                             limit),
                NULL);
    }
    return admin_db_select(q->a, s.sql, s.args->nelts, (const char **)s.args->elts, rows);
}

/* The histograms of group key @a key in @a out, made when new. */
static summary_hists_t *hists_of(apr_hash_t *out, apr_pool_t *p, const char *key)
{
    summary_hists_t *h = apr_hash_get(out, key, APR_HASH_KEY_STRING);

    if (h == NULL) {
        h = apr_palloc(p, sizeof(*h));
        h->lat = nebula_hist_make(p);
        h->ttft = nebula_hist_make(p);
        apr_hash_set(out, key, APR_HASH_KEY_STRING, h);
    }
    return h;
}

/* The histogram of @a col over the raw rows matching @a cond, into @a out. */
static int read_raw_hist(summary_q_t *q, const summary_by_t *by, const char *col,
                         const char *cond, apr_hash_t *out)
{
    apr_pool_t *p = q->a->r->pool;
    summary_sql_t s;
    nebula_dbd_rows_t rows;
    int i, off = by->col ? 1 : 0;

    sql_init(&s, p, "");
    raw_parts(q, &s,
              apr_pstrcat(p, by->col ? by->col : "", by->col ? ", " : "",
                          nebula_hist_bucket_sql(p, col), ", COUNT(*)", NULL),
              apr_pstrcat(p, " AND ", cond, NULL), by->col ? " GROUP BY 1, 2" : " GROUP BY 1",
              "");
    if (admin_db_select(q->a, s.sql, s.args->nelts, (const char **)s.args->elts, &rows) !=
        APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        summary_hists_t *h = hists_of(out, p, off ? group_key(&rows, i) : "");
        nebula_hist_add(strcmp(col, "latency_ms") ? h->ttft : h->lat,
                        nebula_ap_db_int(&rows, i, off), nebula_ap_db_int(&rows, i, off + 1));
    }
    return 1;
}

/* The histograms of the range per group of @a by (or in total), into @a out
 * (group key -> summary_hists_t *, "" for the total). */
static int read_hists(summary_q_t *q, const summary_by_t *by, apr_hash_t *out)
{
    apr_pool_t *p = q->a->r->pool;
    summary_sql_t s;
    nebula_dbd_rows_t rows;
    int i;

    if (!read_raw_hist(q, by, "latency_ms", NEBULA_HIST_LATENCY_ROWS, out) ||
        !read_raw_hist(q, by, "ttfb_ms", NEBULA_HIST_TTFT_ROWS, out)) {
        return 0;
    }
    if (!q->rolled) {
        return 1;
    }
    sql_init(&s, p, "");
    rolled_parts(q, &s, by->col ? by : q->fdim,
                 apr_pstrcat(p, by->col ? by->col : "NULL", ", latency_hist, ttft_hist", NULL),
                 "", "", "");
    if (admin_db_select(q->a, s.sql, s.args->nelts, (const char **)s.args->elts, &rows) !=
        APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        summary_hists_t *h = hists_of(out, p, by->col ? group_key(&rows, i) : "");
        if (!nebula_hist_add_text(h->lat, rows.rows[i][1]) ||
            !nebula_hist_add_text(h->ttft, rows.rows[i][2])) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, q->a->r,
                          "NEB01504: stats summary: a malformed histogram in "
                          "request_log_summary is left out");
        }
    }
    return 1;
}

/* {"p50", "p95", "p99"} of @a h, or JSON null when it holds nothing. */
static json_t *hist_json(nebula_hist_t *h)
{
    static const int ps[] = {50, 95, 99};
    static const char *const names[] = {"p50", "p95", "p99"};
    json_t *o;
    int i;

    if (h == NULL || nebula_hist_total(h) == 0) {
        return json_null();
    }
    o = json_object();
    for (i = 0; i < 3; ++i) {
        double v = nebula_hist_quantile(h, (double)ps[i] / 100.0);
        json_object_set_new(o, names[i], json_integer((json_int_t)(v + 0.5)));
    }
    return o;
}

/* The summary of row @a i of @a rows, its sums from column @a c0. */
static json_t *summary_json(const nebula_dbd_rows_t *rows, int i, int c0,
                            const summary_hists_t *h)
{
    json_t *o = json_object();
    apr_int64_t req = nebula_ap_db_int(rows, i, c0);
    apr_int64_t err = nebula_ap_db_int(rows, i, c0 + 1);
    static const char *const names[] = {"prompt_tokens", "completion_tokens", "cost"};
    int j;

    json_object_set_new(o, "requests", json_integer(req));
    json_object_set_new(o, "errors", json_integer(err));
    json_object_set_new(o, "success_rate",
                        req ? json_real((double)(req - err) / (double)req) : json_null());
    for (j = 0; j < 3; ++j) {
        json_object_set_new(o, names[j], json_integer(nebula_ap_db_int(rows, i, c0 + 2 + j)));
    }
    json_object_set_new(o, "latency_ms", hist_json(h ? h->lat : NULL));
    json_object_set_new(o, "ttft_ms", hist_json(h ? h->ttft : NULL));
    return o;
}

/* The IN condition restricting the histograms to the groups of @a rows. */
static void restrict_groups(summary_q_t *q, const nebula_dbd_rows_t *rows)
{
    apr_pool_t *p = q->a->r->pool;
    const char *list = "";
    int i, n = 0, has_null = 0, is_text = strcmp(q->by->name, "model") == 0;

    q->in_args = apr_array_make(p, rows->nrows + 1, sizeof(const char *));
    for (i = 0; i < rows->nrows; ++i) {
        const char *v = rows->rows[i][0];
        if (!is_text && (v == NULL || *v == '\0')) {
            has_null = 1;
            continue;
        }
        if (is_text) {
            APR_ARRAY_PUSH(q->in_args, const char *) = v ? v : "";
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
    apr_hash_t *hists = apr_hash_make(p), *names;
    json_t *out = json_array();
    int i;

    nebula_json_own(p, out);
    if (read_sums(q, q->by, limit, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "sum request logs by group");
        return NULL;
    }
    if ((names = group_names(q, &rows)) == NULL) {
        admin_db_fail(a, "read the names of the groups");
        return NULL;
    }
    restrict_groups(q, &rows);
    if (!read_hists(q, q->by, hists)) {
        admin_db_fail(a, "read latency histograms");
        return NULL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *key = group_key(&rows, i);
        json_t *o = summary_json(&rows, i, 1, apr_hash_get(hists, key, APR_HASH_KEY_STRING));
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
static const summary_by_t *read_query(admin_req_t *a, apr_int64_t self_user, apr_int64_t *from,
                                      apr_int64_t *to, apr_int64_t *limit)
{
    static const char *const allowed[] = {
        "from", "to", "by", "limit", "model", "key_id", "channel_id", "user_id", NULL};
    static const char *const self_allowed[] = {"from",  "to",     "by", "limit",
                                               "model", "key_id", NULL};
    const char *by = "none";
    admin_sql_t w;
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
    admin_sql_init(&w, a->r->pool, "");
    admin_logs_filters(a, &w, 0); /* checks the filters; the parts add them */
    return &bys[i];
}

int admin_stats_summary_send(admin_req_t *a, apr_int64_t self_user)
{
    summary_q_t q;
    apr_int64_t limit;
    nebula_dbd_rows_t rows;
    apr_hash_t *hists = apr_hash_make(a->r->pool);
    json_t *out, *groups;

    memset(&q, 0, sizeof(q));
    q.a = a;
    q.self_user = self_user;
    q.in = "";
    q.by = read_query(a, self_user, &q.from, &q.to, &limit);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    plan(&q);
    if (read_sums(&q, &bys[0], 0, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "sum request logs");
    }
    if (!read_hists(&q, &bys[0], hists)) {
        return admin_db_fail(a, "read latency histograms");
    }
    groups = q.by->col ? group_rows(&q, limit) : json_array();
    if (groups == NULL) {
        return OK;
    }
    out = json_object();
    json_object_set_new(out, "from", json_integer(q.from));
    json_object_set_new(out, "to", json_integer(q.to));
    json_object_set_new(out, "by", json_string(q.by->name));
    json_object_set_new(out, "limit", json_integer(limit));
    json_object_set_new(out, "total",
                        summary_json(&rows, 0, 0, apr_hash_get(hists, "", APR_HASH_KEY_STRING)));
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

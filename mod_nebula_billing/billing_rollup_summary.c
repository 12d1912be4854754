/* billing_rollup_summary.c: the rollup behind GET /api/stats/summary
 * (request_log_summary, migration 0009; docs/operations-data.md).
 *
 * The summary ranks groups of one dimension (model, channel, key or user)
 * over a range and reads latency percentiles for them, so a per-hour rollup
 * of every column combination (request_log_hourly) does not help it: with
 * many keys it has as many rows as the raw logs. Here each dimension is
 * summed on its own, an hour from the raw rows and a UTC day from its 24
 * hours, with the latency and time-to-first-token histograms of each group
 * in nebula_hist's text form (the same buckets the summary computes over
 * raw rows, so its percentiles are unchanged). A 30-day range then reads
 * 30 day rows and at most 46 hour rows per group.
 *
 * billing_rollup.c calls these inside the transaction that moves the
 * watermark; each period is written whole (DELETE, then INSERT), never
 * added to. */
#include <apr_hash.h>
#include <apr_strings.h>
#include "billing_private.h"
#include "nebula_hist.h"

#define HOUR_MS APR_INT64_C(3600000)

/* the dimensions: dim value, column (NULL: every row in one group) */
static const struct {
    const char *dim, *col;
} dims[] = {{"none", NULL},
            {"model", "model"},
            {"channel", "channel_id"},
            {"key", "key_id"},
            {"user", "user_id"}};
#define NDIMS (sizeof(dims) / sizeof(dims[0]))

#define SUMS_RAW                                                                         \
    "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "     \
    "SUM(completion_tokens), SUM(cost)"
#define SUMS_ROLLED                                                                      \
    "SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost)"

/* One group of a period: its column's value (NULL for NULL) and sums. */
typedef struct {
    const char *val;
    apr_int64_t sums[5];
    nebula_hist_t *lat, *ttft;
} sum_group_t;

/* The group under @a key in @a h, made with value @a val when new. */
static sum_group_t *group_at(apr_hash_t *h, apr_pool_t *p, const char *key, const char *val)
{
    sum_group_t *g = apr_hash_get(h, key, APR_HASH_KEY_STRING);

    if (g == NULL) {
        g = apr_pcalloc(p, sizeof(*g));
        g->val = val ? apr_pstrdup(p, val) : NULL;
        g->lat = nebula_hist_make(p);
        g->ttft = nebula_hist_make(p);
        apr_hash_set(h, apr_pstrdup(p, key), APR_HASH_KEY_STRING, g);
    }
    return g;
}

/* The key of row @a i's group (column 0 when @a col): "" for every row in
 * one group, "\001null" for NULL. pgsql answers NULL as "": an id column's
 * "" is NULL (model is NOT NULL). */
static const char *group_key(const nebula_dbd_rows_t *rows, int i, const char *col)
{
    const char *v;

    if (col == NULL) {
        return "";
    }
    v = rows->rows[i][0];
    return v == NULL || (strcmp(col, "model") != 0 && *v == '\0') ? "\001null" : v;
}

/* Add the sums of @a rows (group column first when @a col) to @a h. */
static void add_sums(apr_hash_t *h, apr_pool_t *p, const nebula_dbd_rows_t *rows,
                     const char *col)
{
    int i, j, off = col ? 1 : 0;

    for (i = 0; i < rows->nrows; ++i) {
        const char *key = group_key(rows, i, col);
        sum_group_t *g = group_at(h, p, key, *key == '\001' || !col ? NULL : key);
        for (j = 0; j < 5; ++j) {
            g->sums[j] += nebula_ap_db_int(rows, i, off + j);
        }
    }
}

/* The group of row @a i for a histogram row: only groups with sums. */
static sum_group_t *known_group(apr_hash_t *h, const nebula_dbd_rows_t *rows, int i,
                                const char *col)
{
    return apr_hash_get(h, group_key(rows, i, col), APR_HASH_KEY_STRING);
}

/* Write the groups of @a h as rows of the period. */
static int write_groups(nebula_ap_db_t *db, apr_pool_t *p, apr_hash_t *h, apr_int64_t start,
                        int span_hours, int d, const char **err)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, h); hi; hi = apr_hash_next(hi)) {
        const sum_group_t *g = apr_hash_this_val(hi);
        const char *args[14];
        int j;

        if (g->sums[0] <= 0) {
            continue; /* "none" over an empty period */
        }
        memset(args, 0, sizeof(args));
        args[0] = billing_i64(p, start);
        args[1] = apr_itoa(p, span_hours);
        args[2] = dims[d].dim;
        if (dims[d].col) { /* model, channel_id, key_id, user_id: 3..6 */
            args[3 + (int)d - 1] = g->val;
        }
        for (j = 0; j < 5; ++j) {
            args[7 + j] = billing_i64(p, g->sums[j]);
        }
        args[12] = nebula_hist_text(g->lat, p);
        args[13] = nebula_hist_text(g->ttft, p);
        if (nebula_ap_db_exec(db, "billing_rsum_insert",
                              "INSERT INTO request_log_summary (period_start, span_hours, dim, "
                              "model, channel_id, key_id, user_id, requests, errors, "
                              "prompt_tokens, completion_tokens, cost, latency_hist, "
                              "ttft_hist) VALUES (%lld, %lld, %s, %s, %lld, %lld, %lld, %lld, "
                              "%lld, %lld, %lld, %lld, %s, %s)",
                              14, args, NULL, err) != APR_SUCCESS) {
            return 0;
        }
    }
    return 1;
}

/* Delete dimension @a d's rows of the period starting at @a start (Unix
 * ms) of @a span hours, before they are written again: through the index,
 * whose first column is the dimension. */
static int clear_period(nebula_ap_db_t *db, int d, const char *span, const char *start,
                        const char **err)
{
    return nebula_ap_db_exec(db, "billing_rsum_clear",
                             "DELETE FROM request_log_summary WHERE dim = %s AND "
                             "span_hours = %lld AND period_start = %lld",
                             3, (const char *[]){dims[d].dim, span, start}, NULL,
                             err) == APR_SUCCESS;
}

/* The histogram rows of @a metric over raw rows [args[0], args[1]) into @a h. */
static int raw_hist(nebula_ap_db_t *db, apr_pool_t *p, const char **args, int d,
                    const char *metric, const char *cond, apr_hash_t *h, const char **err)
{
    const char *col = dims[d].col;
    nebula_dbd_rows_t rows;
    int i, off = col ? 1 : 0;

    if (nebula_ap_db_select(
            db, apr_pstrcat(p, "billing_rsum_hist_", metric, "_", dims[d].dim, NULL),
            apr_pstrcat(p, "SELECT ", col ? col : "", col ? ", " : "",
                        nebula_hist_bucket_sql(p, metric),
                        ", COUNT(*) FROM request_logs WHERE created_at >= %lld AND "
                        "created_at < %lld AND ", cond, " GROUP BY ", col ? "1, 2" : "1",
                        NULL),
            2, args, &rows, err) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        sum_group_t *g = known_group(h, &rows, i, col);
        if (g) {
            nebula_hist_add(strcmp(metric, "latency_ms") ? g->ttft : g->lat,
                            nebula_ap_db_int(&rows, i, off),
                            nebula_ap_db_int(&rows, i, off + 1));
        }
    }
    return 1;
}

int billing_rollup_summary_hour(nebula_ap_db_t *db, apr_pool_t *ptemp, apr_int64_t hour,
                                const char **err)
{
    apr_pool_t *p;
    const char *args[2];
    unsigned d;
    int ok = 1;

    args[0] = billing_i64(ptemp, hour);
    args[1] = billing_i64(ptemp, hour + HOUR_MS);
    apr_pool_create(&p, ptemp);
    for (d = 0; ok && d < NDIMS; ++d) {
        const char *col = dims[d].col;
        apr_hash_t *h = apr_hash_make(p);
        nebula_dbd_rows_t rows;

        ok = clear_period(db, d, "1", args[0], err) &&
             nebula_ap_db_select(
                 db, apr_pstrcat(p, "billing_rsum_sums_", dims[d].dim, NULL),
                 apr_pstrcat(p, "SELECT ", col ? col : "", col ? ", " : "",
                             SUMS_RAW " FROM request_logs WHERE created_at >= %lld AND "
                             "created_at < %lld", col ? " GROUP BY 1" : "", NULL),
                 2, args, &rows, err) == APR_SUCCESS;
        if (ok) {
            add_sums(h, p, &rows, col);
            ok = raw_hist(db, p, args, d, "latency_ms", NEBULA_HIST_LATENCY_ROWS, h, err) &&
                 raw_hist(db, p, args, d, "ttfb_ms", NEBULA_HIST_TTFT_ROWS, h, err) &&
                 write_groups(db, p, h, hour, 1, d, err);
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return ok;
}

int billing_rollup_summary_day(nebula_ap_db_t *db, apr_pool_t *ptemp, apr_int64_t day,
                               const char **err)
{
    apr_pool_t *p;
    unsigned d;
    int ok = 1;

    apr_pool_create(&p, ptemp);
    for (d = 0; ok && d < NDIMS; ++d) {
        const char *col = dims[d].col;
        const char *args[3];
        apr_hash_t *h = apr_hash_make(p);
        nebula_dbd_rows_t rows;
        int i;

        args[0] = dims[d].dim;
        args[1] = billing_i64(p, day);
        args[2] = billing_i64(p, day + 24 * HOUR_MS);
        ok = clear_period(db, d, "24", args[1], err) &&
             nebula_ap_db_select(
                 db, apr_pstrcat(p, "billing_rsum_day_sums_", dims[d].dim, NULL),
                 apr_pstrcat(p, "SELECT ", col ? col : "", col ? ", " : "",
                             SUMS_ROLLED " FROM request_log_summary WHERE dim = %s AND "
                             "span_hours = 1 AND period_start >= %lld AND period_start < "
                             "%lld", col ? " GROUP BY 1" : "", NULL),
                 3, args, &rows, err) == APR_SUCCESS;
        if (ok) {
            add_sums(h, p, &rows, col);
            ok = nebula_ap_db_select(
                     db, apr_pstrcat(p, "billing_rsum_day_hist_", dims[d].dim, NULL),
                     apr_pstrcat(p, "SELECT ", col ? col : "NULL",
                                 ", latency_hist, ttft_hist FROM request_log_summary WHERE "
                                 "dim = %s AND span_hours = 1 AND period_start >= %lld AND "
                                 "period_start < %lld", NULL),
                     3, args, &rows, err) == APR_SUCCESS;
        }
        for (i = 0; ok && i < rows.nrows; ++i) {
            sum_group_t *g = known_group(h, &rows, i, col);
            if (g && (!nebula_hist_add_text(g->lat, rows.rows[i][1]) ||
                      !nebula_hist_add_text(g->ttft, rows.rows[i][2]))) {
                *err = "a malformed histogram in request_log_summary";
                ok = 0;
            }
        }
        ok = ok && write_groups(db, p, h, day, 24, d, err);
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return ok;
}

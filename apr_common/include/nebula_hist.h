/**
 * @file nebula_hist.h
 * @brief Log-linear histograms of request latencies, computed in SQL and
 *        merged in C (the dashboard summary and its rollup).
 *
 * A value v below 64 ms is its own bucket; above, v falls in the octave
 * [2^e, 2^(e+1)) and its bucket starts at v - v % 2^(e-5): one of 32 of
 * equal width in that octave. A bucket is at most 1/32 of its lower bound
 * wide, so a value read back from it is within 3.2 % of the true one, and
 * exact below 64 ms. The database computes buckets with integer comparisons
 * and % only (the same SQL on SQLite, PostgreSQL and MySQL); C merges
 * histograms (of groups, hours and days) and reads percentiles from them.
 *
 * The text form of a histogram, as the rollup stores it, is "lo:n,lo:n..."
 * in ascending lo, decimal, no spaces; "" when empty.
 */
#ifndef NEBULA_HIST_H
#define NEBULA_HIST_H

#include <apr_pools.h>

/** Values below are their own bucket. */
#define NEBULA_HIST_EXACT_BELOW 64
/** 2^5 = 32 buckets an octave. */
#define NEBULA_HIST_SUB_BITS    5
/** 2^40 ms: anything above shares the last width. */
#define NEBULA_HIST_TOP_OCTAVE  40

/** The request_logs rows each histogram counts (SQL conditions): latency of
 *  the successful requests, time to first token of the successful streams
 *  that have one. The summary and its rollup must count the same rows. */
#define NEBULA_HIST_LATENCY_ROWS "status < 400"
#define NEBULA_HIST_TTFT_ROWS    "status < 400 AND is_stream = 1 AND ttfb_ms > 0"

typedef struct nebula_hist_t nebula_hist_t;

/** The bucket of column @a col as SQL, written for apr_dbd's prepared
 *  statements (a literal '%' as "%%"). */
const char *nebula_hist_bucket_sql(apr_pool_t *p, const char *col);

/** The bucket of @a v (v >= 0), as nebula_hist_bucket_sql() computes it. */
apr_int64_t nebula_hist_bucket(apr_int64_t v);

/** The width of the bucket starting at @a lo. */
apr_int64_t nebula_hist_width(apr_int64_t lo);

nebula_hist_t *nebula_hist_make(apr_pool_t *p);

/** Add @a n values to the bucket starting at @a lo. */
void nebula_hist_add(nebula_hist_t *h, apr_int64_t lo, apr_int64_t n);

/** Add a histogram in text form; 0 (and nothing added) when malformed. */
int nebula_hist_add_text(nebula_hist_t *h, const char *text);

/** How many values @a h holds. */
apr_int64_t nebula_hist_total(const nebula_hist_t *h);

/** @a h in text form, allocated in @a p. */
const char *nebula_hist_text(nebula_hist_t *h, apr_pool_t *p);

/**
 * The @a q quantile (0..1) of @a h, interpolated linearly between order
 * statistics (numpy's default), a bucket's values spread evenly over its
 * width; 0 when @a h is empty.
 */
double nebula_hist_quantile(nebula_hist_t *h, double q);

#endif /* NEBULA_HIST_H */

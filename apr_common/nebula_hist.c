/* nebula_hist.c: log-linear latency histograms (nebula_hist.h).
 *
 * The counts of the buckets the SQL makes sit in small arrays indexed by
 * bucket: one row of 64 for the exact values, one row of 32 per octave up to
 * 2^(NEBULA_HIST_TOP_OCTAVE + 1), each made on first use. Merging the
 * rollup's histograms (tens of thousands of buckets for a month's
 * breakdown) is then an index per bucket, not a hash lookup. Any other
 * lower bound (above that, negative, or not a bucket's: a rollup row edited
 * by hand) goes in a hash, so every input is kept as given. The ascending
 * order the readers need is built on demand and kept until the next
 * addition. */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "nebula_hist.h"

/* the exact row, then the octaves [2^e, 2^(e+1)) for e = 6 .. TOP_OCTAVE */
#define HIST_ROWS (NEBULA_HIST_TOP_OCTAVE - NEBULA_HIST_SUB_BITS + 1)
#define HIST_SUBS (1 << NEBULA_HIST_SUB_BITS)

typedef struct {
    apr_int64_t lo, n;
} hist_bucket_t;

struct nebula_hist_t {
    apr_pool_t *pool;
    apr_int64_t *row[HIST_ROWS]; /* counts; NULL until a bucket of the row is used */
    apr_hash_t *odd;             /* apr_int64_t lo -> hist_bucket_t *, or NULL */
    apr_array_header_t *order;   /* hist_bucket_t *, ascending; NULL: stale */
    apr_int64_t total;
};

const char *nebula_hist_bucket_sql(apr_pool_t *p, const char *c)
{
    const char *s = apr_psprintf(p, "CASE WHEN %s < %d THEN %s ELSE %s - %s %%%% (CASE", c,
                                 NEBULA_HIST_EXACT_BELOW, c, c, c);
    int e;

    for (e = 6; e < NEBULA_HIST_TOP_OCTAVE; ++e) { /* 2^6 = NEBULA_HIST_EXACT_BELOW */
        s = apr_psprintf(p, "%s WHEN %s < %" APR_INT64_T_FMT " THEN %" APR_INT64_T_FMT, s,
                         c, APR_INT64_C(1) << (e + 1),
                         APR_INT64_C(1) << (e - NEBULA_HIST_SUB_BITS));
    }
    return apr_psprintf(p, "%s ELSE %" APR_INT64_T_FMT " END) END", s,
                        APR_INT64_C(1) << (NEBULA_HIST_TOP_OCTAVE - NEBULA_HIST_SUB_BITS));
}

/* the width of the octave of @a v (v >= NEBULA_HIST_EXACT_BELOW) */
static apr_int64_t octave_width(apr_int64_t v)
{
    int e = 0;

    while (e < NEBULA_HIST_TOP_OCTAVE && (v >> (e + 1)) > 0) {
        ++e;
    }
    return APR_INT64_C(1) << (e - NEBULA_HIST_SUB_BITS);
}

apr_int64_t nebula_hist_bucket(apr_int64_t v)
{
    return v < NEBULA_HIST_EXACT_BELOW ? v : v - v % octave_width(v);
}

apr_int64_t nebula_hist_width(apr_int64_t lo)
{
    return lo < NEBULA_HIST_EXACT_BELOW ? 1 : octave_width(lo);
}

nebula_hist_t *nebula_hist_make(apr_pool_t *p)
{
    nebula_hist_t *h = apr_pcalloc(p, sizeof(*h));

    h->pool = p;
    return h;
}

/* The row and index of bucket @a lo in the arrays; 0 when it has none. */
static int slot_of(apr_int64_t lo, int *row, int *idx)
{
    int e = NEBULA_HIST_SUB_BITS + 1, w;

    if (lo < NEBULA_HIST_EXACT_BELOW) {
        *row = 0;
        *idx = (int)lo;
        return lo >= 0;
    }
    while (e <= NEBULA_HIST_TOP_OCTAVE && (lo >> (e + 1)) > 0) {
        ++e;
    }
    w = e - NEBULA_HIST_SUB_BITS;
    if (e > NEBULA_HIST_TOP_OCTAVE || (lo & ((APR_INT64_C(1) << w) - 1)) != 0) {
        return 0;
    }
    *row = w;
    *idx = (int)((lo - (APR_INT64_C(1) << e)) >> w);
    return 1;
}

/* The lower bound of slot @a idx of row @a row. */
static apr_int64_t slot_lo(int row, int idx)
{
    return row == 0 ? idx
                    : (APR_INT64_C(1) << (row + NEBULA_HIST_SUB_BITS)) +
                          ((apr_int64_t)idx << row);
}

void nebula_hist_add(nebula_hist_t *h, apr_int64_t lo, apr_int64_t n)
{
    hist_bucket_t *b;
    int row, idx;

    if (n <= 0) {
        return;
    }
    h->order = NULL;
    h->total += n;
    if (slot_of(lo, &row, &idx)) {
        if (h->row[row] == NULL) {
            h->row[row] = apr_pcalloc(h->pool, (row ? HIST_SUBS : NEBULA_HIST_EXACT_BELOW) *
                                                   sizeof(apr_int64_t));
        }
        h->row[row][idx] += n;
        return;
    }
    if (h->odd == NULL) {
        h->odd = apr_hash_make(h->pool);
    }
    if ((b = apr_hash_get(h->odd, &lo, sizeof(lo))) == NULL) {
        b = apr_pcalloc(h->pool, sizeof(*b));
        b->lo = lo;
        apr_hash_set(h->odd, &b->lo, sizeof(b->lo), b);
    }
    b->n += n;
}

/* one decimal number at *s, moved past it; 0 when there is none or it
 * does not fit */
static int read_num(const char **s, apr_int64_t *v)
{
    const char *p = *s;
    apr_int64_t x = 0;

    if (*p < '0' || *p > '9') {
        return 0;
    }
    do {
        if (x > (APR_INT64_MAX - 9) / 10) {
            return 0;
        }
        x = x * 10 + (*p++ - '0');
    } while (*p >= '0' && *p <= '9');
    *s = p;
    *v = x;
    return 1;
}

int nebula_hist_add_text(nebula_hist_t *h, const char *text)
{
    const char *s = text;
    apr_int64_t lo, n;

    if (s == NULL || *s == '\0') {
        return 1;
    }
    /* check the whole text before adding anything */
    for (;;) {
        if (!read_num(&s, &lo) || *s++ != ':' || !read_num(&s, &n)) {
            return 0;
        }
        if (*s == '\0') {
            break;
        }
        if (*s++ != ',') {
            return 0;
        }
    }
    for (s = text;; ++s) {
        read_num(&s, &lo);
        ++s;
        read_num(&s, &n);
        nebula_hist_add(h, lo, n);
        if (*s == '\0') {
            return 1;
        }
    }
}

apr_int64_t nebula_hist_total(const nebula_hist_t *h)
{
    return h->total;
}

static int by_lo(const void *a, const void *b)
{
    const hist_bucket_t *x = *(hist_bucket_t *const *)a, *y = *(hist_bucket_t *const *)b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static const apr_array_header_t *ordered(nebula_hist_t *h)
{
    apr_hash_index_t *hi;
    int row, idx;

    if (h->order != NULL) {
        return h->order;
    }
    h->order = apr_array_make(h->pool, 64, sizeof(hist_bucket_t *));
    for (row = 0; row < HIST_ROWS; ++row) {
        int slots = row ? HIST_SUBS : NEBULA_HIST_EXACT_BELOW;
        for (idx = 0; h->row[row] && idx < slots; ++idx) {
            if (h->row[row][idx] > 0) {
                hist_bucket_t *b = apr_palloc(h->pool, sizeof(*b));
                b->lo = slot_lo(row, idx);
                b->n = h->row[row][idx];
                APR_ARRAY_PUSH(h->order, hist_bucket_t *) = b;
            }
        }
    }
    if (h->odd) { /* the arrays are in ascending order; these may fall anywhere */
        for (hi = apr_hash_first(NULL, h->odd); hi; hi = apr_hash_next(hi)) {
            APR_ARRAY_PUSH(h->order, hist_bucket_t *) = apr_hash_this_val(hi);
        }
        qsort(h->order->elts, h->order->nelts, sizeof(hist_bucket_t *), by_lo);
    }
    return h->order;
}

const char *nebula_hist_text(nebula_hist_t *h, apr_pool_t *p)
{
    const apr_array_header_t *o = ordered(h);
    char *out, *w;
    int i;

    w = out = apr_palloc(p, (apr_size_t)o->nelts * 42 + 1); /* 2 x 20 digits, ':', ',' */
    for (i = 0; i < o->nelts; ++i) {
        const hist_bucket_t *b = APR_ARRAY_IDX(o, i, hist_bucket_t *);
        w += apr_snprintf(w, 43, "%s%" APR_INT64_T_FMT ":%" APR_INT64_T_FMT, i ? "," : "",
                          b->lo, b->n);
    }
    *w = '\0';
    return out;
}

/* the j-th smallest value (0-based) read back from @a o */
static double value_at(const apr_array_header_t *o, apr_int64_t j)
{
    apr_int64_t before = 0;
    int i;

    for (i = 0; i < o->nelts; ++i) {
        const hist_bucket_t *b = APR_ARRAY_IDX(o, i, hist_bucket_t *);
        if (j < before + b->n) {
            return (double)b->lo + (double)(nebula_hist_width(b->lo) - 1) *
                                       ((double)(j - before) + 0.5) / (double)b->n;
        }
        before += b->n;
    }
    return o->nelts ? (double)APR_ARRAY_IDX(o, o->nelts - 1, hist_bucket_t *)->lo : 0;
}

double nebula_hist_quantile(nebula_hist_t *h, double q)
{
    const apr_array_header_t *o = ordered(h);
    double k, v;
    apr_int64_t lo;

    if (h->total == 0) {
        return 0;
    }
    k = q * (double)(h->total - 1);
    lo = (apr_int64_t)k; /* k >= 0: the floor */
    v = value_at(o, lo);
    if (lo + 1 < h->total) {
        v += (k - (double)lo) * (value_at(o, lo + 1) - v);
    }
    return v;
}

/* nebula_hist.c: log-linear latency histograms (nebula_hist.h). Buckets are
 * kept in a hash by lower bound; the ascending order the readers need is
 * built on demand and kept until the next addition. */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "nebula_hist.h"

typedef struct {
    apr_int64_t lo, n;
} hist_bucket_t;

struct nebula_hist_t {
    apr_pool_t *pool;
    apr_hash_t *by_lo;         /* apr_int64_t lo -> hist_bucket_t * */
    apr_array_header_t *order; /* hist_bucket_t *, ascending; NULL: stale */
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
    h->by_lo = apr_hash_make(p);
    return h;
}

void nebula_hist_add(nebula_hist_t *h, apr_int64_t lo, apr_int64_t n)
{
    hist_bucket_t *b = apr_hash_get(h->by_lo, &lo, sizeof(lo));

    if (n <= 0) {
        return;
    }
    if (b == NULL) {
        b = apr_palloc(h->pool, sizeof(*b));
        b->lo = lo;
        b->n = 0;
        apr_hash_set(h->by_lo, &b->lo, sizeof(b->lo), b);
        h->order = NULL;
    }
    b->n += n;
    h->total += n;
}

/* one decimal number at *s, moved past it; 0 when there is none */
static int read_num(const char **s, apr_int64_t *v)
{
    char *end;

    if (**s < '0' || **s > '9') {
        return 0;
    }
    *v = apr_strtoi64(*s, &end, 10);
    *s = end;
    return *v >= 0;
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

    if (h->order == NULL) {
        h->order = apr_array_make(h->pool, apr_hash_count(h->by_lo) + 1,
                                  sizeof(hist_bucket_t *));
        for (hi = apr_hash_first(NULL, h->by_lo); hi; hi = apr_hash_next(hi)) {
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

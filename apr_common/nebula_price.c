/* nebula_price.c: integer price arithmetic (see nebula_price.h). */
#include <apr_lib.h>
#include <apr_strings.h>
#include "nebula_price.h"

typedef unsigned __int128 u128;

static int valid_ratio(apr_int64_t ppm)
{
    return ppm >= 0 && ppm <= NEBULA_PRICE_MAX_RATIO_PPM;
}

static int valid_count(apr_int64_t n)
{
    return n >= 0 && n <= NEBULA_PRICE_MAX_TOKENS;
}

/* ceil(a * b * c * d / den), refusing overflow. a * b * c is the ratio-
 * weighted amount (it fits: every factor is bounded by validation); d, the
 * units per dollar, is applied after a first division so that a large d
 * cannot overflow a product whose quotient fits. */
static int mul_div_ceil(u128 a, u128 b, u128 c, u128 d, u128 den, apr_int64_t *out)
{
    u128 x, q, r, hi, lo;

    if (__builtin_mul_overflow(a, b, &x) || __builtin_mul_overflow(x, c, &x)) {
        return NEBULA_PRICE_ABSURD;
    }
    q = x / den;
    r = x % den; /* x = q * den + r, so x * d / den = q * d + r * d / den */
    if (__builtin_mul_overflow(q, d, &hi) || __builtin_mul_overflow(r, d, &lo)
        || hi > (u128)APR_INT64_MAX) {
        return NEBULA_PRICE_ABSURD;
    }
    q = hi + lo / den + (lo % den != 0);
    if (q > (u128)APR_INT64_MAX) {
        return NEBULA_PRICE_ABSURD;
    }
    *out = (apr_int64_t)q;
    return NEBULA_PRICE_OK;
}

int nebula_price_cost(const nebula_price_t *price, const nebula_price_usage_t *u,
                      apr_int64_t group_ratio_ppm, apr_int64_t quota_per_usd,
                      apr_int64_t *cost)
{
    const u128 ppm = NEBULA_PRICE_PPM;
    u128 weighted;

    if (!valid_count(u->input_tokens) || !valid_count(u->cache_read_tokens)
        || !valid_count(u->cache_write_tokens) || !valid_count(u->output_tokens)
        || !valid_count(u->calls) || !valid_ratio(group_ratio_ppm) || quota_per_usd < 1
        || !valid_ratio(price->model_ratio_ppm) || !valid_ratio(price->completion_ratio_ppm)
        || !valid_ratio(price->cache_read_ratio_ppm)
        || !valid_ratio(price->cache_write_ratio_ppm)) {
        return NEBULA_PRICE_ABSURD;
    }
    if (price->per_call_micro_usd >= 0) {
        /* micro-dollars x calls x group x units-per-dollar / (1e6 x 1e6) */
        return mul_div_ceil((u128)price->per_call_micro_usd, (u128)u->calls,
                            (u128)group_ratio_ppm, (u128)quota_per_usd, ppm * ppm, cost);
    }
    /* token-ppm: every token weighted by its ratio */
    weighted = (u128)u->input_tokens * ppm
               + (u128)u->cache_read_tokens * (u128)price->cache_read_ratio_ppm
               + (u128)u->cache_write_tokens * (u128)price->cache_write_ratio_ppm
               + (u128)u->output_tokens * (u128)price->completion_ratio_ppm;
    /* x model x group (ppm each) x units-per-dollar / base units-per-dollar */
    return mul_div_ceil(weighted, (u128)price->model_ratio_ppm, (u128)group_ratio_ppm,
                        (u128)quota_per_usd,
                        ppm * ppm * ppm * (u128)NEBULA_PRICE_BASE_QUOTA_PER_USD, cost);
}

int nebula_price_parse_ppm(const char *s, apr_int64_t *ppm)
{
    apr_int64_t whole = 0, frac = 0;
    int digits = 0, fd = 0;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    for (; apr_isdigit(*s); ++s, ++digits) {
        whole = whole * 10 + (*s - '0');
        if (whole > NEBULA_PRICE_MAX_RATIO_PPM / NEBULA_PRICE_PPM) {
            return -1;
        }
    }
    if (*s == '.') {
        for (++s; apr_isdigit(*s); ++s, ++fd) {
            if (fd < 7) {
                frac = frac * 10 + (*s - '0');
            }
        }
        if (fd == 0) {
            return -1;
        }
    }
    if (*s != '\0' || digits == 0) {
        return -1;
    }
    for (; fd < 7; ++fd) {
        frac *= 10;
    }
    /* frac has 7 decimals: round the seventh half up */
    *ppm = whole * NEBULA_PRICE_PPM + (frac + 5) / 10;
    return *ppm <= NEBULA_PRICE_MAX_RATIO_PPM ? 0 : -1;
}

const char *nebula_price_format_ppm(apr_int64_t ppm, char *buf, apr_size_t len)
{
    apr_int64_t whole = ppm / NEBULA_PRICE_PPM, frac = ppm % NEBULA_PRICE_PPM;
    int w = 6;

    if (frac == 0) {
        apr_snprintf(buf, len, "%" APR_INT64_T_FMT, whole);
        return buf;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        --w;
    }
    apr_snprintf(buf, len, "%" APR_INT64_T_FMT ".%0*" APR_INT64_T_FMT, whole, w, frac);
    return buf;
}

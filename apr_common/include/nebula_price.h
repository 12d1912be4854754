/**
 * @file nebula_price.h
 * @brief Integer price arithmetic: what a request costs in quota units.
 *
 * Prices follow new-api's ratios so that its price tables carry over:
 * model ratio 1.0 is 2 US dollars per million input tokens, the completion
 * ratio multiplies output tokens, cache-read and cache-write ratios multiply
 * cached input tokens, the group ratio multiplies the whole. A fixed price
 * per call (micro-dollars), when set, replaces the token price.
 *
 * Every ratio is an integer in parts per million (1000000 = 1.0), every
 * amount an integer; the only rounding is the last step, which rounds up to
 * the next whole quota unit (so a priced request never costs 0). A product
 * that would not fit in 128 bits is refused as absurd rather than wrapped.
 */
#ifndef NEBULA_PRICE_H
#define NEBULA_PRICE_H

#include <apr.h>

/** The price unit of the ratios: quota units per USD at which ratio 1.0
 *  makes one token cost one unit (new-api's QuotaPerUnit). */
#define NEBULA_PRICE_BASE_QUOTA_PER_USD APR_INT64_C(500000)
#define NEBULA_PRICE_PPM                APR_INT64_C(1000000)
/** Usage above this many tokens in one field, or calls in one request, is
 *  absurd and refused. */
#define NEBULA_PRICE_MAX_TOKENS         APR_INT64_C(100000000)
/** Largest ratio accepted (1000.0). */
#define NEBULA_PRICE_MAX_RATIO_PPM      APR_INT64_C(1000000000)

typedef struct {
    apr_int64_t model_ratio_ppm;
    apr_int64_t completion_ratio_ppm;
    apr_int64_t cache_read_ratio_ppm;
    apr_int64_t cache_write_ratio_ppm;
    /** fixed price per call in micro-dollars; -1 when the model is priced
     *  by tokens */
    apr_int64_t per_call_micro_usd;
} nebula_price_t;

/** Token counts in the price's terms: input_tokens excludes the cached
 *  (cache-read) and cache-write tokens, which are counted apart. */
typedef struct {
    apr_int64_t input_tokens;
    apr_int64_t cache_read_tokens;
    apr_int64_t cache_write_tokens;
    apr_int64_t output_tokens;
    apr_int64_t calls; /**< for per-call prices (images in one request ...) */
} nebula_price_usage_t;

#define NEBULA_PRICE_OK     0
#define NEBULA_PRICE_ABSURD 1 /**< negative or absurd usage or ratios */

/**
 * The cost of @a u at @a price for a group ratio and a quota unit.
 * @param cost set on NEBULA_PRICE_OK; 0 only when the price itself is 0
 */
int nebula_price_cost(const nebula_price_t *price, const nebula_price_usage_t *u,
                      apr_int64_t group_ratio_ppm, apr_int64_t quota_per_usd,
                      apr_int64_t *cost);

/**
 * Parse a decimal ratio ("1.25", "0.075", "4") into parts per million,
 * rounding the seventh decimal half up. 0 on success, -1 when @a s is not a
 * non-negative decimal of at most NEBULA_PRICE_MAX_RATIO_PPM.
 */
int nebula_price_parse_ppm(const char *s, apr_int64_t *ppm);

/** "1.25" for 1250000 (no trailing zeros), in @a buf (at least 32 bytes). */
const char *nebula_price_format_ppm(apr_int64_t ppm, char *buf, apr_size_t len);

#endif /* NEBULA_PRICE_H */

/* billing_price.c: what a request costs. The price of the model the client
 * asked for (never the mapped upstream model, as new-api does) times the
 * key's group ratio, in integer arithmetic (apr_common/nebula_price.c). An
 * upstream's own "cost" field is never read. */
#include <apr_strings.h>
#include "billing_private.h"
#include "nebula_price.h"

static const char *const price_sql =
    "SELECT mp.model_ratio_ppm, mp.completion_ratio_ppm, mp.cache_read_ratio_ppm, "
    "mp.cache_write_ratio_ppm, COALESCE(mp.price_per_call_micro_usd, -1), "
    "COALESCE(g.ratio_ppm, 1000000) FROM model_prices mp LEFT JOIN user_groups g "
    "ON g.name = %s WHERE mp.model = %s";

int billing_price_load(nebula_ap_db_t *db, request_rec *r, const char *model,
                       const char *group, billing_price_t *bp)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);
    const char *args[2] = {group ? group : "default", model ? model : ""};
    nebula_dbd_rows_t rows;
    const char *err = NULL;

    if (nebula_ap_db_select(db, "billing_price", price_sql, 2, args, &rows, &err)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "NEB02020: cannot read the price of %s: %s",
                      args[1], err);
        return NEBULA_BILLING_ERROR;
    }
    if (rows.nrows == 0) {
        if (conf->unpriced != BILLING_UNPRICED_FREE) {
            return NEBULA_BILLING_UNPRICED;
        }
        bp->priced = 0;
        return NEBULA_BILLING_OK;
    }
    bp->priced = 1;
    bp->model = apr_pstrdup(r->pool, args[1]);
    bp->price.model_ratio_ppm = nebula_ap_db_int(&rows, 0, 0);
    bp->price.completion_ratio_ppm = nebula_ap_db_int(&rows, 0, 1);
    bp->price.cache_read_ratio_ppm = nebula_ap_db_int(&rows, 0, 2);
    bp->price.cache_write_ratio_ppm = nebula_ap_db_int(&rows, 0, 3);
    bp->price.per_call_micro_usd = nebula_ap_db_int(&rows, 0, 4);
    bp->group_ppm = nebula_ap_db_int(&rows, 0, 5);
    return NEBULA_BILLING_OK;
}

static int cost_of(request_rec *r, const char *model, const nebula_price_t *price,
                   const nebula_price_usage_t *u, apr_int64_t group_ppm, apr_int64_t *cost)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);

    if (nebula_price_cost(price, u, group_ppm, conf->quota_per_usd, cost) != NEBULA_PRICE_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB02021: refused absurd usage for %s: input %" APR_INT64_T_FMT
                      " cache read %" APR_INT64_T_FMT " cache write %" APR_INT64_T_FMT
                      " output %" APR_INT64_T_FMT " calls %" APR_INT64_T_FMT,
                      model, u->input_tokens, u->cache_read_tokens, u->cache_write_tokens,
                      u->output_tokens, u->calls);
        return NEBULA_BILLING_INVALID;
    }
    return NEBULA_BILLING_OK;
}

/* Unknown counts (-1) of the optional fields count as 0. */
static apr_int64_t known(apr_int64_t v)
{
    return v < 0 ? 0 : v;
}

int billing_price_compute(request_rec *r, const billing_price_t *bp,
                          const nebula_usage_t *usage, apr_int64_t calls, apr_int64_t *cost)
{
    nebula_price_usage_t u;

    *cost = 0;
    if (!bp->priced) {
        return NEBULA_BILLING_OK;
    }
    u.cache_read_tokens = known(usage->cached_tokens);
    u.cache_write_tokens = known(usage->cache_write_tokens);
    u.output_tokens = usage->completion_tokens;
    /* OpenAI and Gemini count cached tokens inside the prompt; Anthropic
     * does not. A negative uncached part is absurd and refused below. */
    u.input_tokens = usage->prompt_excludes_cache
                         ? usage->prompt_tokens
                         : usage->prompt_tokens - u.cache_read_tokens - u.cache_write_tokens;
    u.calls = calls < 1 ? 1 : calls;
    return cost_of(r, bp->model, &bp->price, &u, bp->group_ppm, cost);
}

int billing_price_usage(nebula_ap_db_t *db, request_rec *r, const char *model,
                        const char *group, const nebula_usage_t *usage, apr_int64_t calls,
                        apr_int64_t *cost)
{
    billing_price_t bp;
    int rc;

    *cost = 0;
    if ((rc = billing_price_load(db, r, model, group, &bp)) != NEBULA_BILLING_OK) {
        return rc;
    }
    return billing_price_compute(r, &bp, usage, calls, cost);
}

/* Output tokens a request may produce at most, as reserved. */
static apr_int64_t worst_output(request_rec *r, const nebula_req_t *req)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);

    switch (req->proto) {
    case NEBULA_PROTO_OPENAI_EMBEDDINGS:
    case NEBULA_PROTO_OPENAI_MODERATIONS:
    case NEBULA_PROTO_RERANK:
        return 0;
    default:
        break;
    }
    if (req->max_output_tokens >= 0 && req->max_output_tokens < conf->max_output) {
        return req->max_output_tokens;
    }
    return conf->max_output;
}

/* The usage a request may reach at most. */
void billing_price_worst_usage(request_rec *r, const nebula_req_t *req, nebula_usage_t *u)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);

    u->prompt_tokens = req->prompt_tokens_estimate > conf->min_prompt
                           ? req->prompt_tokens_estimate
                           : conf->min_prompt;
    u->completion_tokens = worst_output(r, req);
    u->cached_tokens = 0;
    u->cache_write_tokens = 0;
    u->total_tokens = u->prompt_tokens + u->completion_tokens;
    u->prompt_excludes_cache = 1;
    u->estimated = 1;
}

int billing_price_worst(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                        apr_int64_t *cost)
{
    nebula_usage_t u;

    billing_price_worst_usage(r, req, &u);
    return billing_price_usage(db, r, req->model, req->group, &u, req->calls, cost);
}

/**
 * @file nebula_billing.h
 * @brief mod_nebula_billing's contract with the other modules.
 *
 * The functions are APR optional functions: a caller looks them up with
 * APR_RETRIEVE_OPTIONAL_FN() after all modules registered their hooks (in
 * post_config or later) and gets NULL when mod_nebula_billing is not loaded,
 * which means "no billing": serve the request without charging.
 */
#ifndef NEBULA_BILLING_H
#define NEBULA_BILLING_H

#include <httpd.h>
#include <apr_optional.h>
#include "nebula_types.h"

/** A credit hold made by nebula_billing_reserve(), owned by r->pool. */
typedef struct nebula_reservation_t nebula_reservation_t;

/** Outcome codes of the billing calls. */
#define NEBULA_BILLING_OK            0
#define NEBULA_BILLING_INSUFFICIENT  1  /**< not enough balance or plan left */
#define NEBULA_BILLING_ERROR         2  /**< the ledger could not be reached */

/**
 * Price @a req at its worst case and move that amount from available to
 * reserved, atomically. On success *@a res is set (pool of @a r).
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_reserve,
                        (request_rec *r, const nebula_req_t *req,
                         nebula_reservation_t **res));

/**
 * Charge the exact cost of @a usage against @a res, write one ledger entry and
 * release what is left of the hold. Idempotent: a second call for the same
 * reservation changes nothing and returns NEBULA_BILLING_OK.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_settle,
                        (request_rec *r, nebula_reservation_t *res,
                         const nebula_usage_t *usage));

/** Give the whole hold back (the request was refused before relaying). */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_release,
                        (request_rec *r, nebula_reservation_t *res));

/** The cost in quota units of @a usage for @a req, without charging. */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_price,
                        (request_rec *r, const nebula_req_t *req,
                         const nebula_usage_t *usage, apr_int64_t *cost));

#endif /* NEBULA_BILLING_H */

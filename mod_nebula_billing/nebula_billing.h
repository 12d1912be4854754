/**
 * @file nebula_billing.h
 * @brief mod_nebula_billing's contract with the other modules.
 *
 * The functions are APR optional functions: a caller looks them up with
 * APR_RETRIEVE_OPTIONAL_FN() after all modules registered their hooks (in
 * post_config or later) and gets NULL when mod_nebula_billing is not loaded,
 * which means "no billing": serve the request without charging. A server
 * with NebulaBilling Off answers reserve with OK and a NULL reservation.
 *
 * The cycle of one relayed request:
 *   idempotency (when the client sent Idempotency-Key) -> reserve ->
 *   [extend, while a stream outgrows its hold] -> settle or release.
 * settle and release write the request-log row in the same transaction as
 * the ledger row; when billing is absent the relay writes it.
 */
#ifndef NEBULA_BILLING_H
#define NEBULA_BILLING_H

#include <httpd.h>
#include <apr_optional.h>
#include "nebula_types.h"

/** r->notes keys billing sets: why reserve refused (INSUFFICIENT), in
 *  words the client may see; and "1" once a request was charged. */
#define NEBULA_BILLING_NOTE_REFUSAL "nebula-billing-refusal"
#define NEBULA_BILLING_NOTE_BILLED  "nebula-billed"

/** A credit hold made by nebula_billing_reserve(), owned by r->pool. */
typedef struct nebula_reservation_t nebula_reservation_t;

/** Outcome codes of the billing calls. */
#define NEBULA_BILLING_OK            0
#define NEBULA_BILLING_INSUFFICIENT  1  /**< not enough balance or plan left */
#define NEBULA_BILLING_ERROR         2  /**< the ledger could not be reached */
#define NEBULA_BILLING_UNPRICED      3  /**< the model has no price */
#define NEBULA_BILLING_DUPLICATE     4  /**< post: the idempotency key was used */
#define NEBULA_BILLING_INVALID       5  /**< post: no such account, bad kind ... */
#define NEBULA_BILLING_REFUSED       6  /**< redeem: refused, the result says why */

/**
 * Price @a req at its worst case and move that amount from available to
 * reserved, atomically, against the key's cap and the paying account. On
 * success *@a res is set (pool of @a r), or left NULL when nothing needs
 * settling (billing off for this server). On any other outcome an error
 * response has NOT been sent: the caller sends it (insufficient_quota 429,
 * model_price_error 400, 503 with Retry-After for ERROR).
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_reserve,
                        (request_rec *r, const nebula_req_t *req,
                         nebula_reservation_t **res));

/**
 * Grow the hold of a running stream so that it covers the cost of
 * @a so_far (the usage delivered until now) plus a margin. OK when it does
 * (cheap when the hold already covers it: no database access); INSUFFICIENT
 * when the paying account or the key cannot cover it (the caller ends the
 * stream with a clear final event); ERROR when the database is away (the
 * caller goes on: the settlement is spooled).
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_extend,
                        (request_rec *r, nebula_reservation_t *res,
                         const nebula_usage_t *so_far));

/**
 * Charge the exact cost of @a log->usage against @a res, write one ledger
 * entry and the request-log row in one transaction and release what is left
 * of the hold. Exactly once: a second call for the same reservation changes
 * nothing and returns NEBULA_BILLING_OK. When the database cannot be
 * reached the settlement is written to the local spool and replayed later.
 * @a cost, if not NULL, receives what was charged.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_settle,
                        (request_rec *r, nebula_reservation_t *res,
                         const nebula_reqlog_t *log, apr_int64_t *cost));

/** Give the whole hold back (nothing reached the client) and write the
 *  request-log row, in one transaction. */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_release,
                        (request_rec *r, nebula_reservation_t *res,
                         const nebula_reqlog_t *log));

/** The cost in quota units of @a usage for @a req, without charging. */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_price,
                        (request_rec *r, const nebula_req_t *req,
                         const nebula_usage_t *usage, apr_int64_t *cost));

/**
 * Client idempotency (the Idempotency-Key header, @a key): called after
 * authentication with the request body. Returns OK to go on (the outcome
 * will be recorded when the response is complete), or DONE when a response
 * was sent: the stored outcome replayed, 409 (the first request with this
 * key is still running), 422 (same key, different body) or 400 (bad key).
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_idempotency,
                        (request_rec *r, const nebula_req_t *req, const char *key,
                         const char *body, apr_size_t len));

/** One money movement outside the request path (admin top-up, adjustment,
 *  voucher, plan grant): one ledger row, keyed. */
typedef struct {
    const char *owner_kind;   /**< "user", "org" or "sub" (or NULL: account_id) */
    apr_int64_t owner_id;
    apr_int64_t account_id;   /**< used when owner_kind is NULL */
    const char *kind;         /**< a NEBULA_LEDGER_* kind */
    apr_int64_t amount;       /**< signed change */
    int set_balance;          /**< non-zero: amount is the new balance, the
                                   row carries the difference */
    int allow_negative;       /**< non-zero: may go below -overdraft_limit */
    const char *idem_key;     /**< required: one effect per key and account */
    const char *actor;        /**< who: "admin:3", "root", "scheduler" */
    const char *detail;       /**< JSON object text, or NULL */
} nebula_posting_t;

typedef struct {
    apr_int64_t account_id;
    apr_int64_t ledger_id;
    apr_int64_t amount;        /**< the row's amount */
    apr_int64_t balance_after;
} nebula_posting_result_t;

/**
 * Apply @a p: OK, DUPLICATE (the key was used before: @a out describes the
 * first effect), INSUFFICIENT (would pass the overdraft limit), INVALID or
 * ERROR. The account of a user or an organisation is created on first use.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_post,
                        (request_rec *r, const nebula_posting_t *p,
                         nebula_posting_result_t *out));

/**
 * Run one pass of the billing scheduler now, in the caller's thread (the
 * admin API's "run now", and tests that race several passes): period resets
 * and rollover, subscription expiry, stale holds, notifications. Safe to run
 * concurrently with itself and the watchdog. *@a effects (if not NULL)
 * receives how many effects this pass applied. OK or ERROR.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_sched_run,
                        (request_rec *r, apr_int64_t *effects));

/**
 * Subscribe a user, an organisation or a key ("user", "org", "key") to a
 * plan: the subscription row, its allowance account and the first period's
 * plan_grant row, in one transaction. @a starts_at / @a expires_at are Unix
 * ms (expires_at 0: never). OK (*@a sub_id set), INVALID (no such plan or
 * subject, plan not active) or ERROR.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_subscribe,
                        (request_rec *r, apr_int64_t plan_id, const char *subject_kind,
                         apr_int64_t subject_id, apr_int64_t starts_at,
                         apr_int64_t expires_at, const char *actor, apr_int64_t *sub_id));

/** Cancel a subscription: status cancelled and an expiry row taking what
 *  is left of its allowance. OK, INVALID (no such active one) or ERROR. */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_unsubscribe,
                        (request_rec *r, apr_int64_t sub_id, const char *actor));

/** One voucher redemption (docs/vouchers.md). The caller (the admin API)
 *  normalises the code and hashes it: billing never sees a code. */
typedef struct {
    const char *code_hash;  /**< HMAC-SHA256 hex of the normalised code, or
                                 NULL when its check character was wrong */
    apr_int64_t user_id;    /**< who receives the credit */
    const char *actor;      /**< "user:17", "root" ... */
    const char *client_ip;  /**< for the per-IP limit and the audit */
    int limit;              /**< non-zero: apply the brute-force lockout
                                 (self-service); failures are always audited */
} nebula_redeem_t;

typedef struct {
    int status;             /**< HTTP status for the client (200 on success) */
    const char *code;       /**< error code ("voucher_expired" ...), NULL on success */
    const char *message;    /**< words the client may see */
    apr_int64_t retry_after;/**< seconds (429 too_many_attempts) */
    apr_int64_t batch_id, code_id, redemption_id, ledger_id, sub_id;
    const char *kind;       /**< "quota" or "plan" */
    apr_int64_t amount;     /**< quota credited (kind quota) */
    apr_int64_t balance_after;
} nebula_redeem_result_t;

/**
 * Redeem a voucher or a new-api redemption code for @a in->user_id: the
 * lockout check, the lookup by hash, the batch's state, window, scope and
 * limits, then one transaction with the use (conditional updates), the
 * redemption row and its ledger row (or the subscription of a plan
 * voucher). OK (@a out filled), REFUSED (@a out->status, code, message)
 * or ERROR. Exactly one credit per use, whatever the concurrency.
 */
APR_DECLARE_OPTIONAL_FN(int, nebula_billing_redeem,
                        (request_rec *r, const nebula_redeem_t *in,
                         nebula_redeem_result_t *out));

/** What the admin API's settings page shows of this module (never secrets). */
typedef struct {
    int enabled;               /**< NebulaBilling */
    apr_int64_t quota_per_usd; /**< NebulaQuotaPerUSD */
    int unpriced_free;         /**< NebulaBillingUnpriced free (1) or refuse (0) */
} nebula_billing_settings_t;

/** Fill @a out with the settings of server @a s. */
APR_DECLARE_OPTIONAL_FN(void, nebula_billing_settings,
                        (server_rec *s, nebula_billing_settings_t *out));

#endif /* NEBULA_BILLING_H */

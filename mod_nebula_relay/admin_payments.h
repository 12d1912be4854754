/**
 * @file admin_payments.h
 * @brief Top-up by payment (docs/payments.md): orders, Stripe Checkout and
 *        EPay (易支付), credited through mod_nebula_billing's ledger.
 *
 * admin_payments.c         the route table, orders (self-service and admin
 *                          lists, the admin's hand completion), the one
 *                          credit path, the record of provider events
 * admin_payments_stripe.c  Checkout Sessions through mod_proxy, the signed
 *                          webhook
 * admin_payments_epay.c    the signed redirect to submit.php, the async
 *                          notify and the browser's return
 *
 * Every credit is one nebula_billing_post() keyed "topup:<provider>:<trade_no>"
 * (so no path, however often or concurrently it runs, credits an order
 * twice), then a conditional UPDATE moves the order out of 'pending'.
 */
#ifndef ADMIN_PAYMENTS_H
#define ADMIN_PAYMENTS_H

#include "admin_billing.h"

/** Stripe's default tolerance for the Stripe-Signature timestamp. */
#define PAY_STRIPE_TOLERANCE_S 300
/** Largest webhook or notify body read. */
#define PAY_MAX_BODY (256 * 1024)
/** Largest answer read from Stripe's API. */
#define PAY_MAX_ANSWER (256 * 1024)

/** One row of topup_orders. */
typedef struct {
    apr_int64_t id;
    const char *provider;     /**< "stripe" or "epay" */
    const char *trade_no;     /**< ours: ngt_<uuid7> */
    const char *provider_ref; /**< Stripe session id, EPay trade_no; may be NULL */
    apr_int64_t user_id;
    const char *owner_kind;   /**< the wallet credited: "user" or "org" */
    apr_int64_t owner_id;
    const char *currency;
    apr_int64_t amount_minor;
    apr_int64_t quota;
    const char *status;       /**< pending, paid, failed, expired */
} pay_order_t;

/* ---- admin_payments.c ---------------------------------------------------- */
admin_handler_fn pay_self_list, pay_admin_list, pay_admin_get, pay_admin_complete;

/** "12.34" for 1234 minor units. */
const char *pay_money_text(apr_pool_t *p, apr_int64_t minor);
/** Parse "12", "12.3" or "12.34" into minor units (> 0); 1 or 0. */
int pay_money_parse(const char *s, apr_int64_t *minor);

/**
 * Read "amount" of the body, check it against NebulaTopupMin/Max, and create
 * a pending order of @a provider for the caller (@a pay_type: EPay's type,
 * or NULL). 1 with @a o filled, or 0 after an error was sent.
 */
int pay_order_create(admin_req_t *a, const char *provider, const char *pay_type,
                     pay_order_t *o);
/** The order with @a trade_no: 1 found, 0 none, -1 database error (logged). */
int pay_order_find(admin_req_t *a, const char *trade_no, pay_order_t *o);
/** Order @a id as JSON (a new reference), or NULL when there is none. */
json_t *pay_order_json(admin_req_t *a, apr_int64_t id);
/** Set provider_ref of order @a id. */
void pay_order_set_ref(admin_req_t *a, apr_int64_t id, const char *ref);
/**
 * Move order @a o from pending to @a status (failed or expired); 1 when this
 * call changed it.
 */
int pay_order_mark(admin_req_t *a, const pay_order_t *o, const char *status,
                   const char *reason);

/** Outcomes of pay_credit(). */
#define PAY_CREDITED    0 /**< this call credited the order */
#define PAY_ALREADY     1 /**< credited before (replay): nothing changed */
#define PAY_NOT_PENDING 2 /**< failed or expired: not credited */
#define PAY_ERROR       3 /**< billing absent or the ledger failed (logged) */

/**
 * Credit order @a o once: the ledger row (idem "topup:<provider>:<trade_no>",
 * actor @a actor, detail @a detail JSON text) and the order marked paid.
 * Safe to race with itself, from any number of processes.
 */
int pay_credit(admin_req_t *a, const pay_order_t *o, const char *actor, const char *detail);

/**
 * Record a delivery in payment_events. @a event_id NULL for one that was
 * refused before it could be trusted. Returns 1 when it is new, 0 when the
 * same event was recorded before (its deliveries count grows), -1 on a
 * database error.
 */
int pay_event_record(admin_req_t *a, const char *provider, const char *event_id,
                     const char *type, const char *trade_no, const char *outcome,
                     const char *detail);
/** Set the outcome of a recorded event. */
void pay_event_outcome(admin_req_t *a, const char *provider, const char *event_id,
                       const char *outcome);

/** Read the raw request body (at most PAY_MAX_BODY): APR_SUCCESS or not. */
apr_status_t pay_read_body(admin_req_t *a, char **buf, apr_size_t *len);
/** application/x-www-form-urlencoded text into a table (decoded). */
apr_table_t *pay_form_parse(apr_pool_t *p, const char *text);
/** Percent-encode @a s for a form or a query (space as %20). */
const char *pay_url_encode(apr_pool_t *p, const char *s);

/* ---- admin_payments_stripe.c --------------------------------------------- */
admin_handler_fn pay_stripe_create, pay_stripe_webhook;

/* ---- admin_payments_epay.c ----------------------------------------------- */
admin_handler_fn pay_epay_create, pay_epay_notify, pay_epay_return;
/** EPay's MD5 signature of @a params (lower-case hex) with the key @a key. */
const char *pay_epay_sign(apr_pool_t *p, apr_table_t *params, const char *key);

#endif /* ADMIN_PAYMENTS_H */

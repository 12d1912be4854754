/**
 * @file admin_billing.h
 * @brief The admin API's billing area (docs/admin-api.md, "Billing"):
 *        prices, organisations, accounts, money, the ledger, reconciliation
 *        and the self-service routes.
 *
 * admin_billing.c            the route table; posting through
 *                            mod_nebula_billing's nebula_billing_post()
 * admin_prices.c             /api/billing/prices (model_prices)
 * admin_orgs.c               /api/orgs (organizations, users.org_id)
 * admin_billing_accounts.c   /api/billing/accounts, wallets of users and
 *                            organisations, top-ups and adjustments
 * admin_ledger.c             /api/billing/ledger (list, export), reconcile
 * admin_billing_self.c       /api/self/account, /api/self/ledger
 *
 * The ledger and the balances of accounts have a single writer,
 * mod_nebula_billing: these files only read them, and move money only by
 * calling nebula_billing_post() (looked up when a request needs it, so that
 * the admin API still serves everything else when the billing module is not
 * loaded: 503 billing_unavailable).
 */
#ifndef ADMIN_BILLING_H
#define ADMIN_BILLING_H

#include "relay_admin.h"
#include "nebula_billing.h"

/** Longest client idempotency key (the ledger's idem_key column is 255,
 *  less the "admin:" prefix). */
#define ADMIN_BILLING_MAX_IDEM 200

/* ---- admin_billing.c --------------------------------------------------- */

/** Who is acting, as the ledger's actor column records it: "root" for the
 *  admin token, "user:<id>" for a user. */
const char *admin_billing_actor(admin_req_t *a);

/** Whether nebula_billing_post() is there: 1, or 0 after sending 503
 *  billing_unavailable. */
int admin_billing_available(admin_req_t *a);

/**
 * Apply @a p through nebula_billing_post(). Returns its outcome
 * (NEBULA_BILLING_*), or -1 after sending 503 billing_unavailable when
 * mod_nebula_billing is not loaded. Only OK and DUPLICATE fill @a out.
 */
int admin_billing_post(admin_req_t *a, const nebula_posting_t *p,
                       nebula_posting_result_t *out);

/** Send the error for a posting outcome other than OK and DUPLICATE
 *  (409 insufficient_balance, 400, 500); returns OK. */
int admin_billing_post_error(admin_req_t *a, int rc);

/** {"reason": @a reason} as compact JSON text in the request pool. */
const char *admin_billing_detail(admin_req_t *a, const char *reason);

/* ---- admin_billing_self.c ------------------------------------------------ */
/** The owner of the wallet the caller pays from: its organisation's when it
 *  belongs to one, else its own ("org"/"user" in *@a kind). 0 when an error
 *  was sent (the admin token has no user; no database). */
int admin_billing_self_owner(admin_req_t *a, const char **kind, apr_int64_t *owner_id);

/* ---- admin_billing_accounts.c ------------------------------------------ */

/** The columns of an Account (select them from "accounts"). */
extern const admin_col_t admin_account_cols[];

/** Account @a id as JSON (a new reference), or NULL when there is none. */
json_t *admin_account_json(admin_req_t *a, apr_int64_t id);

/**
 * The wallet of (@a owner_kind, @a owner_id) as JSON (a new reference).
 * A wallet that was never used has no row: it is shown with "id": null and
 * zero amounts (reading never creates one). NULL on a database error
 * (recorded).
 */
json_t *admin_wallet_json(admin_req_t *a, const char *owner_kind, apr_int64_t owner_id);

admin_handler_fn admin_accounts_list, admin_accounts_get, admin_accounts_patch,
    admin_accounts_topup, admin_accounts_adjust, admin_accounts_user_wallet,
    admin_accounts_org_wallet, admin_accounts_user_topup, admin_accounts_org_topup;

/* ---- admin_prices.c ----------------------------------------------------- */
admin_handler_fn admin_prices_list, admin_prices_put, admin_prices_delete;

/* ---- admin_orgs.c ------------------------------------------------------- */
admin_handler_fn admin_orgs_list, admin_orgs_create, admin_orgs_get, admin_orgs_patch,
    admin_orgs_delete;
/** Whether organisation @a id exists: 1, 0 (400 recorded for @a param), or
 *  -1 (500 recorded). */
int admin_orgs_check(admin_req_t *a, const char *param, apr_int64_t id);

/* ---- admin_ledger.c ----------------------------------------------------- */

/** The columns of a ledger row (select them from "ledger"). */
extern const admin_col_t admin_ledger_cols[];

/** The kind, request_id, from and to filters of the query as WHERE
 *  conditions of @a w; errors are recorded. */
void admin_ledger_filters(admin_req_t *a, admin_sql_t *w);

admin_handler_fn admin_ledger_list, admin_ledger_export, admin_ledger_reconcile;

/* ---- admin_billing_self.c ----------------------------------------------- */
admin_handler_fn admin_self_account, admin_self_ledger;

#endif /* ADMIN_BILLING_H */

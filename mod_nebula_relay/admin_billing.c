/* admin_billing.c: the admin API's billing routes (prices, organisations,
 * accounts, top-ups and adjustments, the ledger, reconciliation,
 * self-service) and the one way they move money: mod_nebula_billing's
 * nebula_billing_post(), so that the ledger has a single writer. The
 * handlers live in the files admin_billing.h lists. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "admin_billing.h"

const admin_route_t admin_billing_routes[] = {
    {"GET", "/api/billing/prices", admin_prices_list, 0},
    {"PUT", "/api/billing/prices", admin_prices_put, 0},
    {"DELETE", "/api/billing/prices", admin_prices_delete, 0},
    {"GET", "/api/orgs", admin_orgs_list, 0},
    {"POST", "/api/orgs", admin_orgs_create, 0},
    {"GET", "/api/orgs/{id}", admin_orgs_get, 0},
    {"PATCH", "/api/orgs/{id}", admin_orgs_patch, 0},
    {"DELETE", "/api/orgs/{id}", admin_orgs_delete, 0},
    {"GET", "/api/orgs/{id}/account", admin_accounts_org_wallet, 0},
    {"POST", "/api/orgs/{id}/topup", admin_accounts_org_topup, 0},
    {"GET", "/api/users/{id}/account", admin_accounts_user_wallet, 0},
    {"POST", "/api/users/{id}/topup", admin_accounts_user_topup, 0},
    {"GET", "/api/billing/accounts", admin_accounts_list, 0},
    {"GET", "/api/billing/accounts/{id}", admin_accounts_get, 0},
    {"PATCH", "/api/billing/accounts/{id}", admin_accounts_patch, 0},
    {"POST", "/api/billing/accounts/{id}/topup", admin_accounts_topup, 0},
    {"POST", "/api/billing/accounts/{id}/adjust", admin_accounts_adjust, 0},
    {"GET", "/api/billing/ledger", admin_ledger_list, 0},
    {"GET", "/api/billing/ledger/export", admin_ledger_export, 0},
    {"GET", "/api/billing/reconcile", admin_ledger_reconcile, 0},
    /* self-service: any signed-in user, for the wallet it pays from */
    {"GET", "/api/self/account", admin_self_account, ROUTE_ANY_ROLE},
    {"GET", "/api/self/ledger", admin_self_ledger, ROUTE_ANY_ROLE},
    {NULL, NULL, NULL, 0}};

const char *admin_billing_actor(admin_req_t *a)
{
    if (a->who.user_id == 0) {
        return "root";
    }
    return apr_psprintf(a->r->pool, "user:%" APR_INT64_T_FMT, a->who.user_id);
}

const char *admin_billing_detail(admin_req_t *a, const char *reason)
{
    json_t *o = nebula_json_own(a->r->pool, json_object());

    json_object_set_new(o, "reason", json_string(reason));
    return admin_json_text(a, o);
}

/* nebula_billing_post(), looked up per request: mod_nebula_billing may be
 * absent, and everything else of the admin API must work without it. */
typedef APR_OPTIONAL_FN_TYPE(nebula_billing_post) billing_post_fn;

static billing_post_fn *poster(void)
{
    return APR_RETRIEVE_OPTIONAL_FN(nebula_billing_post);
}

int admin_billing_available(admin_req_t *a)
{
    if (poster() != NULL) {
        return 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                  "NEB01530: admin API: a money movement was refused: "
                  "mod_nebula_billing is not loaded");
    admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_unavailable", NULL,
                "billing is not available (mod_nebula_billing is not loaded)");
    return 0;
}

int admin_billing_post(admin_req_t *a, const nebula_posting_t *p,
                       nebula_posting_result_t *out)
{
    billing_post_fn *post = poster();
    int rc;

    if (post == NULL) {
        admin_billing_available(a);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    admin_db_release(a); /* billing borrows its own */
    rc = post(a->r, p, out);
    if (rc == NEBULA_BILLING_OK || rc == NEBULA_BILLING_DUPLICATE) {
        admin_audit(a, rc == NEBULA_BILLING_OK ? p->kind : "replay",
                    apr_psprintf(a->r->pool,
                                 "account %" APR_INT64_T_FMT " amount %" APR_INT64_T_FMT
                                 " (ledger %" APR_INT64_T_FMT ")",
                                 out->account_id, out->amount, out->ledger_id));
    }
    return rc;
}

int admin_billing_post_error(admin_req_t *a, int rc)
{
    switch (rc) {
    case NEBULA_BILLING_INSUFFICIENT:
        return admin_error(a, HTTP_CONFLICT, "insufficient_balance", "amount",
                           "the account's available balance (and overdraft limit) "
                           "cannot cover this amount");
    case NEBULA_BILLING_INVALID:
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_posting", NULL,
                           "the billing module refused this posting (no such account, "
                           "or an account of another unit)");
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                      "NEB01531: admin API: nebula_billing_post failed (outcome %d)", rc);
        return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                           "the ledger could not be written (see the server log)");
    }
}

/* admin_billing_self.c: the self-service routes, open to every signed-in
 * user whatever its role: GET /api/self/account (the wallet the caller pays
 * from: its organisation's when it belongs to one, else its own) and GET
 * /api/self/ledger (that wallet's rows). The account is always derived from
 * the caller, never taken from the request, so no user can read another
 * account. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "admin_billing.h"

int admin_billing_self_owner(admin_req_t *a, const char **kind, apr_int64_t *owner_id)
{
    const char *args[1];
    nebula_dbd_rows_t rows;
    apr_int64_t org;

    if (a->who.user_id == 0) {
        admin_error(a, HTTP_BAD_REQUEST, "no_user", NULL,
                    "the admin token has no user and so no wallet: use "
                    "/api/billing/accounts");
        return 0;
    }
    if (!admin_db(a)) {
        return 0;
    }
    args[0] = admin_i64(a, a->who.user_id);
    if (admin_db_select(a, "SELECT COALESCE(org_id, 0) FROM users WHERE id = %lld", 1,
                        args, &rows) != APR_SUCCESS) {
        admin_db_fail(a, "read the caller's organisation");
        return 0;
    }
    org = rows.nrows == 1 ? nebula_ap_db_int(&rows, 0, 0) : 0;
    *kind = org > 0 ? "org" : "user";
    *owner_id = org > 0 ? org : a->who.user_id;
    return 1;
}

int admin_self_account(admin_req_t *a)
{
    static const char *const none[] = {NULL};
    apr_int64_t owner_id;
    const char *kind;
    json_t *o;

    admin_query_only(a, none);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_billing_self_owner(a, &kind, &owner_id)) {
        return OK;
    }
    if ((o = admin_wallet_json(a, kind, owner_id)) == NULL) {
        return admin_send_recorded(a);
    }
    return admin_send_data(a, HTTP_OK, o);
}

int admin_self_ledger(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "kind", "request_id",
                                          "from", "to",       NULL};
    const char *kind, *args[2];
    apr_int64_t page, per_page, owner_id;
    nebula_dbd_rows_t rows;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_billing_self_owner(a, &kind, &owner_id)) {
        return OK;
    }
    args[0] = kind;
    args[1] = admin_i64(a, owner_id);
    if (admin_db_select(
            a, "SELECT id FROM accounts WHERE owner_kind = %s AND owner_id = %lld", 2,
            args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "find the caller's wallet");
    }
    admin_sql_init(&w, a->r->pool, "FROM ledger");
    /* no wallet yet: no rows (id 0 matches none) */
    admin_sql_where(&w, "account_id = %lld", rows.nrows == 1 ? rows.rows[0][0] : "0");
    admin_ledger_filters(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    return admin_db_send_page(a, &w, admin_ledger_cols, NULL, "id DESC", page, per_page,
                              "ledger rows");
}

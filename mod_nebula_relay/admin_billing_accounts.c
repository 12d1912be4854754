/* admin_billing_accounts.c: /api/billing/accounts (read them, change their
 * overdraft limit and billing preference), the wallets of users and
 * organisations, and the admin's money movements: top-ups and signed
 * adjustments. Money moves only through nebula_billing_post() with an
 * idempotency key: "admin:" and the client's key (body idempotency_key or
 * the Idempotency-Key header), else "admin:" and a fresh UUIDv7, so that a
 * retried request applies once and answers 200 with the first effect. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_billing.h"
#include "nebula_id.h"
#include "nebula_ledger.h"

const admin_col_t admin_account_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"owner_kind", NULL, ADMIN_COL_STR},
    {"owner_id", NULL, ADMIN_COL_INT},
    {"unit", NULL, ADMIN_COL_STR},
    {"balance", NULL, ADMIN_COL_INT},
    {"reserved", NULL, ADMIN_COL_INT},
    {"available", "balance - reserved", ADMIN_COL_INT},
    {"overdraft_limit", NULL, ADMIN_COL_INT},
    {"billing_preference", NULL, ADMIN_COL_STR},
    {"ledger_seq", NULL, ADMIN_COL_INT},
    {"created_at", NULL, ADMIN_COL_INT},
    {"updated_at", NULL, ADMIN_COL_INT},
    {NULL, NULL, 0}};

static const char *const owner_kinds[] = {"user", "org", "sub", NULL};
static const char *const preferences[] = {"subscription_first", "wallet_first",
                                          "subscription_only", "wallet_only", NULL};

/* Accounts matching @a where (one placeholder per arg). */
static json_t *account_select(admin_req_t *a, const char *where, int nargs,
                              const char *const *args, int *failed)
{
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, admin_account_cols, NULL),
                    " FROM accounts WHERE ", where, NULL);

    *failed = admin_db_select(a, sql, nargs, args, &rows) != APR_SUCCESS;
    if (*failed || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, admin_account_cols);
}

json_t *admin_account_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    int failed;

    return account_select(a, "id = %lld", 1, args, &failed);
}

json_t *admin_wallet_json(admin_req_t *a, const char *owner_kind, apr_int64_t owner_id)
{
    const char *args[2] = {owner_kind, admin_i64(a, owner_id)};
    int failed;
    json_t *o =
        account_select(a, "owner_kind = %s AND owner_id = %lld", 2, args, &failed);

    if (failed) {
        admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                   "database error while reading a wallet");
        return NULL;
    }
    if (o == NULL) { /* never used: what nebula_billing_post would create */
        o = json_object();
        json_object_set_new(o, "id", json_null());
        json_object_set_new(o, "owner_kind", json_string(owner_kind));
        json_object_set_new(o, "owner_id", json_integer(owner_id));
        json_object_set_new(o, "unit", json_string("quota"));
        json_object_set_new(o, "balance", json_integer(0));
        json_object_set_new(o, "reserved", json_integer(0));
        json_object_set_new(o, "available", json_integer(0));
        json_object_set_new(o, "overdraft_limit", json_integer(0));
        json_object_set_new(o, "billing_preference", json_string("subscription_first"));
        json_object_set_new(o, "ledger_seq", json_integer(0));
        json_object_set_new(o, "created_at", json_null());
        json_object_set_new(o, "updated_at", json_null());
    }
    return o;
}

static int account_missing(admin_req_t *a)
{
    return admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                       "account %" APR_INT64_T_FMT " does not exist", a->id[0]);
}

int admin_accounts_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "owner_kind", "owner_id",
                                          NULL};
    apr_int64_t page, per_page, owner_id = 0;
    const char *kind = NULL;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_int(a, "owner_id", 1, ADMIN_MAX_AMOUNT, &owner_id);
    admin_query_enum(a, "owner_kind", owner_kinds, &kind);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM accounts");
    if (kind) {
        admin_sql_where(&w, "owner_kind = %s", kind);
    }
    if (owner_id) {
        admin_sql_where(&w, "owner_id = %lld", admin_i64(a, owner_id));
    }
    return admin_db_send_page(a, &w, admin_account_cols, NULL, "id", page, per_page,
                              "accounts");
}

int admin_accounts_get(admin_req_t *a)
{
    json_t *o;

    if (!admin_db(a)) {
        return OK;
    }
    if ((o = admin_account_json(a, a->id[0])) == NULL) {
        return account_missing(a);
    }
    return admin_send_data(a, HTTP_OK, o);
}

int admin_accounts_patch(admin_req_t *a)
{
    static const char *const fields[] = {"overdraft_limit", "billing_preference", NULL};
    json_t *b = admin_body(a), *o;
    const char *pref = NULL;
    apr_int64_t limit = -1;
    admin_sql_t q;

    if (b) {
        admin_only_fields(a, b, fields);
        admin_field_int(a, b, "overdraft_limit", 0, 0, ADMIN_MAX_AMOUNT, &limit);
        admin_field_enum(a, b, "billing_preference", 0, preferences, &pref);
        if (!a->err_status && json_object_size(b) == 0) {
            admin_invalid(a, NULL, "give at least one field to change");
        }
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((o = admin_account_json(a, a->id[0])) == NULL) {
        return account_missing(a);
    }
    json_decref(o);
    /* neither column is money: balance, reserved and the chain belong to
     * mod_nebula_billing and are never written here */
    admin_sql_init(&q, a->r->pool, "");
    admin_sql_arg(&q, "UPDATE accounts SET updated_at = %lld",
                  admin_i64(a, admin_now_ms()));
    if (limit >= 0) {
        admin_sql_arg(&q, ", overdraft_limit = %lld", admin_i64(a, limit));
    }
    if (pref) {
        admin_sql_arg(&q, ", billing_preference = %s", pref);
    }
    admin_sql_arg(&q, " WHERE id = %lld", admin_i64(a, a->id[0]));
    if (admin_db_exec(a, q.sql, q.n, q.args, NULL) != APR_SUCCESS) {
        return admin_db_fail(a, "change an account");
    }
    admin_audit(a, "update-account", admin_i64(a, a->id[0]));
    return admin_send_data(a, HTTP_OK, admin_account_json(a, a->id[0]));
}

int admin_accounts_user_wallet(admin_req_t *a)
{
    const char *role, *status;
    json_t *o;

    if (!admin_users_lookup(a, a->id[0], &role, &status)) {
        return OK;
    }
    if ((o = admin_wallet_json(a, "user", a->id[0])) == NULL) {
        return admin_send_recorded(a);
    }
    return admin_send_data(a, HTTP_OK, o);
}


/* The organisation of the path ({id}): 1 when it exists, else the answer
 * (404, or the recorded error) is sent and 0 returned. */
static int org_in_path(admin_req_t *a)
{
    int st = admin_orgs_check(a, "id", a->id[0]);

    if (st < 0) {
        admin_send_recorded(a);
    }
    else if (st == 0) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id",
                    "organisation %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    return st > 0;
}

int admin_accounts_org_wallet(admin_req_t *a)
{
    json_t *o;
    int st;

    if (!admin_db(a)) {
        return OK;
    }
    if ((st = org_in_path(a)) != 1) {
        return OK;
    }
    if ((o = admin_wallet_json(a, "org", a->id[0])) == NULL) {
        return admin_send_recorded(a);
    }
    return admin_send_data(a, HTTP_OK, o);
}

/* ---- money ------------------------------------------------------------ */

typedef struct {
    apr_int64_t amount;
    const char *reason;
    const char *key; /* the client's idempotency key, or NULL */
    int allow_negative;
} money_input_t;

/* The client's idempotency key: the body's idempotency_key and/or the
 * Idempotency-Key header (the same value when both are given). */
static void read_idem(admin_req_t *a, json_t *b, money_input_t *in)
{
    const char *h = apr_table_get(a->r->headers_in, "Idempotency-Key");

    admin_field_str(a, b, "idempotency_key", ADMIN_F_NONEMPTY, ADMIN_BILLING_MAX_IDEM,
                    &in->key);
    if (h == NULL || a->err_status) {
        return;
    }
    if (*h == '\0' || strlen(h) > ADMIN_BILLING_MAX_IDEM || !admin_text_ok(h)) {
        admin_invalid(a, "Idempotency-Key",
                      "the Idempotency-Key header must be 1 to %d printable bytes",
                      ADMIN_BILLING_MAX_IDEM);
    }
    else if (in->key && strcmp(in->key, h) != 0) {
        admin_invalid(a, "idempotency_key",
                      "'idempotency_key' and the Idempotency-Key header differ");
    }
    else {
        in->key = h;
    }
}

/* The body of a top-up (@a adjust 0) or an adjustment. */
static void read_money(admin_req_t *a, json_t *b, int adjust, money_input_t *in)
{
    static const char *const topup_fields[] = {"amount", "reason", "idempotency_key",
                                               NULL};
    static const char *const adjust_fields[] = {"amount", "reason", "idempotency_key",
                                                "allow_negative", NULL};

    memset(in, 0, sizeof(*in));
    admin_only_fields(a, b, adjust ? adjust_fields : topup_fields);
    admin_field_int(a, b, "amount", ADMIN_F_REQUIRED, adjust ? -ADMIN_MAX_AMOUNT : 1,
                    ADMIN_MAX_AMOUNT, &in->amount);
    if (adjust && !a->err_status && in->amount == 0) {
        admin_invalid(a, "amount", "'amount' may not be 0");
    }
    admin_field_str(a, b, "reason", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY, 255,
                    &in->reason);
    if (adjust) {
        admin_field_bool(a, b, "allow_negative", 0, &in->allow_negative);
    }
    read_idem(a, b, in);
}

/* The ledger row @a id; NULL when it cannot be read. */
static json_t *ledger_row(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, admin_ledger_cols, NULL),
                    " FROM ledger WHERE id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, admin_ledger_cols);
}

/* Post @a in as @a kind to @a p's account (owner or id set by the caller)
 * and answer: 201 with the entry and the account, 200 for a replay. */
static int money_post(admin_req_t *a, nebula_posting_t *p, const money_input_t *in)
{
    nebula_posting_result_t out;
    json_t *entry, *acct, *o;
    const char *kind;
    int rc;

    p->amount = in->amount;
    p->allow_negative = in->allow_negative;
    p->idem_key = apr_pstrcat(
        a->r->pool, "admin:", in->key ? in->key : nebula_id_uuid7(a->r->pool), NULL);
    p->actor = admin_billing_actor(a);
    p->detail = admin_billing_detail(a, in->reason);
    if ((rc = admin_billing_post(a, p, &out)) < 0) {
        return OK;
    }
    if (rc != NEBULA_BILLING_OK && rc != NEBULA_BILLING_DUPLICATE) {
        return admin_billing_post_error(a, rc);
    }
    if (!admin_db(a)) {
        return OK;
    }
    entry = ledger_row(a, out.ledger_id);
    acct = admin_account_json(a, out.account_id);
    if (entry == NULL || acct == NULL) {
        json_decref(entry);
        json_decref(acct);
        return admin_db_fail(a, "read a ledger entry");
    }
    kind = json_string_value(json_object_get(entry, "kind"));
    if (rc == NEBULA_BILLING_DUPLICATE &&
        (kind == NULL || strcmp(kind, p->kind) != 0 ||
         json_integer_value(json_object_get(entry, "amount")) != p->amount)) {
        json_decref(entry);
        json_decref(acct);
        return admin_error(a, HTTP_UNPROCESSABLE_ENTITY, "idempotency_key_reused",
                           "idempotency_key",
                           "this idempotency key was used for another movement of this "
                           "account");
    }
    o = json_object();
    json_object_set_new(o, "replayed", json_boolean(rc == NEBULA_BILLING_DUPLICATE));
    json_object_set_new(o, "entry", entry);
    json_object_set_new(o, "account", acct);
    return admin_send_data(a, rc == NEBULA_BILLING_OK ? HTTP_CREATED : HTTP_OK, o);
}

/* POST .../topup or .../adjust: read the body; 0 when an error was sent. */
static int money_input(admin_req_t *a, int adjust, money_input_t *in)
{
    json_t *b = admin_body(a);

    if (b) {
        read_money(a, b, adjust, in);
    }
    if (a->err_status) {
        admin_send_recorded(a);
        return 0;
    }
    return admin_db(a);
}

static int account_money(admin_req_t *a, int adjust)
{
    nebula_posting_t p;
    money_input_t in;
    json_t *o;

    if (!money_input(a, adjust, &in)) {
        return OK;
    }
    if ((o = admin_account_json(a, a->id[0])) == NULL) {
        return account_missing(a);
    }
    json_decref(o);
    memset(&p, 0, sizeof(p));
    p.account_id = a->id[0];
    p.kind = adjust ? NEBULA_LEDGER_ADJUSTMENT : NEBULA_LEDGER_TOPUP;
    return money_post(a, &p, &in);
}

int admin_accounts_topup(admin_req_t *a)
{
    return account_money(a, 0);
}

int admin_accounts_adjust(admin_req_t *a)
{
    return account_money(a, 1);
}

int admin_accounts_user_topup(admin_req_t *a)
{
    const char *role, *status;
    nebula_posting_t p;
    money_input_t in;

    if (!money_input(a, 0, &in) || !admin_users_lookup(a, a->id[0], &role, &status)) {
        return OK;
    }
    if (strcmp(status, "deleted") == 0) {
        return admin_error(a, HTTP_CONFLICT, "user_deleted", "id",
                           "user %" APR_INT64_T_FMT " is deleted", a->id[0]);
    }
    memset(&p, 0, sizeof(p));
    p.owner_kind = "user";
    p.owner_id = a->id[0];
    p.kind = NEBULA_LEDGER_TOPUP;
    return money_post(a, &p, &in);
}

int admin_accounts_org_topup(admin_req_t *a)
{
    nebula_posting_t p;
    money_input_t in;
    int st;

    if (!money_input(a, 0, &in)) {
        return OK;
    }
    if ((st = org_in_path(a)) != 1) {
        return OK;
    }
    memset(&p, 0, sizeof(p));
    p.owner_kind = "org";
    p.owner_id = a->id[0];
    p.kind = NEBULA_LEDGER_TOPUP;
    return money_post(a, &p, &in);
}

/* admin_payments.c: top-up by payment (docs/payments.md). The route table,
 * the orders (the caller's own and the admin's lists, an admin completing a
 * pending order by hand), the single credit path every provider goes
 * through, and the record of what providers delivered. The providers
 * themselves are in admin_payments_stripe.c and admin_payments_epay.c. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_payments.h"
#include "nebula_ledger.h"
#include "nebula_id.h"

const admin_route_t admin_payments_routes[] = {
    {"POST", "/api/self/topup/stripe", pay_stripe_create, ROUTE_ANY_ROLE},
    {"POST", "/api/self/topup/epay", pay_epay_create, ROUTE_ANY_ROLE},
    {"GET", "/api/self/topups", pay_self_list, ROUTE_ANY_ROLE},
    {"GET", "/api/topups", pay_admin_list, 0},
    {"GET", "/api/topups/{id}", pay_admin_get, 0},
    {"POST", "/api/topups/{id}/complete", pay_admin_complete, 0},
    /* the providers' calls: no session, signed instead; raw bodies */
    {"POST", "/api/payments/stripe/webhook", pay_stripe_webhook,
     ROUTE_PUBLIC | ROUTE_RAW_BODY},
    {"GET", "/api/payments/epay/notify", pay_epay_notify, ROUTE_PUBLIC | ROUTE_RAW_BODY},
    {"POST", "/api/payments/epay/notify", pay_epay_notify, ROUTE_PUBLIC | ROUTE_RAW_BODY},
    {"GET", "/api/payments/epay/return", pay_epay_return, ROUTE_PUBLIC | ROUTE_RAW_BODY},
    {NULL, NULL, NULL, 0}};

static const admin_col_t order_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"provider", NULL, ADMIN_COL_STR},
    {"trade_no", NULL, ADMIN_COL_STR},
    {"provider_ref", NULL, ADMIN_COL_NSTR},
    {"user_id", NULL, ADMIN_COL_INT},
    {"owner_kind", NULL, ADMIN_COL_STR},
    {"owner_id", NULL, ADMIN_COL_INT},
    {"pay_type", NULL, ADMIN_COL_NSTR},
    {"currency", NULL, ADMIN_COL_STR},
    {"amount_minor", NULL, ADMIN_COL_INT},
    {"quota", NULL, ADMIN_COL_INT},
    {"status", NULL, ADMIN_COL_STR},
    {"created_at", NULL, ADMIN_COL_INT},
    {"paid_at", NULL, ADMIN_COL_NINT},
    {"ledger_id", NULL, ADMIN_COL_NINT},
    {"completed_by", NULL, ADMIN_COL_NSTR},
    {"detail", NULL, ADMIN_COL_JSON},
    {NULL, NULL, 0}};

static const admin_col_t event_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"provider", NULL, ADMIN_COL_STR},
    {"event_id", NULL, ADMIN_COL_NSTR},
    {"type", NULL, ADMIN_COL_NSTR},
    {"received_at", NULL, ADMIN_COL_INT},
    {"last_at", NULL, ADMIN_COL_INT},
    {"deliveries", NULL, ADMIN_COL_INT},
    {"outcome", NULL, ADMIN_COL_STR},
    {"detail", NULL, ADMIN_COL_JSON},
    {NULL, NULL, 0}};

/* ---- money --------------------------------------------------------------- */

const char *pay_money_text(apr_pool_t *p, apr_int64_t minor)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT ".%02d", minor / 100, (int)(minor % 100));
}

int pay_money_parse(const char *s, apr_int64_t *minor)
{
    apr_int64_t units = 0;
    int frac = 0, digits = 0;

    if (s == NULL || !apr_isdigit(*s)) {
        return 0;
    }
    for (; apr_isdigit(*s); ++s) {
        if (++digits > 12) {
            return 0;
        }
        units = units * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (++s, digits = 0; apr_isdigit(*s); ++s) {
            if (++digits > 2) {
                return 0;
            }
            frac = frac * 10 + (*s - '0');
        }
        if (digits == 0) {
            return 0;
        }
        frac *= digits == 1 ? 10 : 1;
    }
    *minor = units * 100 + frac;
    return *s == '\0' && *minor > 0;
}

/* "amount" of the body in minor units: a JSON number with at most two
 * decimals. ADMIN_SET or ADMIN_BAD (recorded). */
static int body_amount(admin_req_t *a, json_t *b, apr_int64_t *minor)
{
    json_t *v = json_object_get(b, "amount");
    const char *text = NULL;

    if (v == NULL) {
        return admin_invalid(a, "amount", "amount is required (in %s, e.g. 10 or 9.99)",
                             a->sc->pay.currency);
    }
    if (json_is_integer(v) && json_integer_value(v) > 0
        && json_integer_value(v) < APR_INT64_C(1000000000000)) {
        *minor = (apr_int64_t)json_integer_value(v) * 100;
        return ADMIN_SET;
    }
    if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1e12) {
        /* the shortest text that reads back as the same double */
        text = apr_psprintf(a->r->pool, "%.17g", json_real_value(v));
        if (pay_money_parse(apr_psprintf(a->r->pool, "%.2f", json_real_value(v)), minor)
            && (double)*minor / 100.0 == json_real_value(v)) {
            return ADMIN_SET;
        }
    }
    return admin_invalid(a, "amount", "amount must be a positive number of %s with at most "
                         "two decimals%s%s", a->sc->pay.currency, text ? ", not " : "",
                         text ? text : "");
}

/* ---- orders --------------------------------------------------------------- */

int pay_order_create(admin_req_t *a, const char *provider, const char *pay_type,
                     pay_order_t *o)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    const char *args[10];
    apr_int64_t minor = 0;
    char uuid[NEBULA_ID_UUID_LEN + 1];
    json_t *b = admin_body(a);

    if (b != NULL) {
        body_amount(a, b, &minor);
    }
    if (a->err_status) {
        admin_send_recorded(a);
        return 0;
    }
    if (minor < pc->min_minor || minor > pc->max_minor) {
        admin_error(a, HTTP_BAD_REQUEST, "amount_out_of_range", "amount",
                    "a top-up is from %s to %s %s; %s is outside that range",
                    pay_money_text(a->r->pool, pc->min_minor),
                    pay_money_text(a->r->pool, pc->max_minor), pc->currency,
                    pay_money_text(a->r->pool, minor));
        return 0;
    }
    if (a->who.user_id == 0) {
        admin_error(a, HTTP_BAD_REQUEST, "no_user", NULL,
                    "the admin token has no user and so no wallet to top up");
        return 0;
    }
    if (nebula_id_uuid7_into(uuid) != APR_SUCCESS) {
        admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                    "no randomness for an order number");
        return 0;
    }
    if (!admin_db(a) || !admin_billing_self_owner(a, &o->owner_kind, &o->owner_id)) {
        return 0;
    }
    o->provider = provider;
    o->trade_no = apr_pstrcat(a->r->pool, "ngt_", uuid, NULL);
    o->provider_ref = NULL;
    o->user_id = a->who.user_id;
    o->currency = provider[0] == 'e' ? "cny" : pc->currency;
    o->amount_minor = minor;
    /* quota = amount x rate, exactly: minor x rate / 100 without overflow */
    o->quota = (minor / 100) * pc->rate + (minor % 100) * pc->rate / 100;
    o->status = "pending";
    args[0] = provider;
    args[1] = o->trade_no;
    args[2] = admin_i64(a, o->user_id);
    args[3] = o->owner_kind;
    args[4] = admin_i64(a, o->owner_id);
    args[5] = pay_type;
    args[6] = o->currency;
    args[7] = admin_i64(a, minor);
    args[8] = admin_i64(a, o->quota);
    args[9] = admin_i64(a, admin_now_ms());
    if (admin_db_insert(a,
                        "INSERT INTO topup_orders (provider, trade_no, user_id, owner_kind, "
                        "owner_id, pay_type, currency, amount_minor, quota, status, "
                        "created_at) VALUES (%s, %s, %lld, %s, %lld, %s, %s, %lld, %lld, "
                        "'pending', %lld)",
                        10, args, &o->id) != APR_SUCCESS) {
        admin_db_fail(a, "create a top-up order");
        return 0;
    }
    admin_audit(a, "topup-order", apr_psprintf(a->r->pool, "%s %s %s %s", provider,
                                               o->trade_no,
                                               pay_money_text(a->r->pool, minor),
                                               o->currency));
    return 1;
}

static void order_from_row(apr_pool_t *p, const nebula_dbd_rows_t *rows, pay_order_t *o)
{
    const char *const *row = rows->rows[0];

    o->id = nebula_ap_db_int(rows, 0, 0);
    o->provider = apr_pstrdup(p, row[1]);
    o->trade_no = apr_pstrdup(p, row[2]);
    o->provider_ref = row[3] && *row[3] ? apr_pstrdup(p, row[3]) : NULL;
    o->user_id = nebula_ap_db_int(rows, 0, 4);
    o->owner_kind = apr_pstrdup(p, row[5]);
    o->owner_id = nebula_ap_db_int(rows, 0, 6);
    o->currency = apr_pstrdup(p, row[7]);
    o->amount_minor = nebula_ap_db_int(rows, 0, 8);
    o->quota = nebula_ap_db_int(rows, 0, 9);
    o->status = apr_pstrdup(p, row[10]);
}

#define ORDER_SELECT                                                                    \
    "SELECT id, provider, trade_no, provider_ref, user_id, owner_kind, owner_id, "     \
    "currency, amount_minor, quota, status FROM topup_orders "

static int order_load(admin_req_t *a, const char *where, const char *value, pay_order_t *o)
{
    const char *args[1];
    nebula_dbd_rows_t rows;

    args[0] = value;
    if (!admin_db(a)) {
        return -1;
    }
    if (admin_db_select(a, apr_pstrcat(a->r->pool, ORDER_SELECT, where, NULL), 1, args,
                        &rows) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01657: payments: cannot read a top-up order: %s",
                      a->db_err ? a->db_err : "?");
        return -1;
    }
    if (rows.nrows != 1) {
        return 0;
    }
    order_from_row(a->r->pool, &rows, o);
    return 1;
}

int pay_order_find(admin_req_t *a, const char *trade_no, pay_order_t *o)
{
    return order_load(a, "WHERE trade_no = %s", trade_no, o);
}

json_t *pay_order_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1];
    nebula_dbd_rows_t rows;
    json_t *o;

    args[0] = admin_i64(a, id);
    if (admin_db_select(a, apr_pstrcat(a->r->pool, "SELECT ",
                                       admin_cols_sql(a, order_cols, NULL),
                                       " FROM topup_orders WHERE id = %lld", NULL),
                        1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    o = admin_row_json(&rows, 0, 0, order_cols);
    json_object_set_new(o, "amount",
                        json_string(pay_money_text(a->r->pool,
                                                   json_integer_value(json_object_get(
                                                       o, "amount_minor")))));
    return o;
}

void pay_order_set_ref(admin_req_t *a, apr_int64_t id, const char *ref)
{
    const char *args[2];

    args[0] = ref;
    args[1] = admin_i64(a, id);
    if (admin_db_exec(a, "UPDATE topup_orders SET provider_ref = %s WHERE id = %lld", 2,
                      args, NULL) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01657: payments: cannot store the provider's reference %s: %s",
                      ref, a->db_err ? a->db_err : "?");
    }
}

int pay_order_mark(admin_req_t *a, const pay_order_t *o, const char *status,
                   const char *reason)
{
    const char *args[3];
    int changed = 0;

    args[0] = status;
    args[1] = admin_billing_detail(a, reason);
    args[2] = admin_i64(a, o->id);
    if (admin_db_exec(a,
                      "UPDATE topup_orders SET status = %s, detail = %s WHERE id = %lld "
                      "AND status = 'pending'",
                      3, args, &changed) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01657: payments: cannot mark order %s %s: %s", o->trade_no,
                      status, a->db_err ? a->db_err : "?");
        return 0;
    }
    if (changed) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                      "NEB01658: payments: order %s is %s (%s)", o->trade_no, status,
                      reason);
    }
    return changed > 0;
}

/* ---- the one credit path ------------------------------------------------- */

int pay_credit(admin_req_t *a, const pay_order_t *o, const char *actor, const char *detail)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_post) *post =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_post);
    nebula_posting_t np;
    nebula_posting_result_t res;
    const char *args[4];
    int rc, changed = 0;

    if (strcmp(o->status, "pending") && strcmp(o->status, "paid")) {
        return PAY_NOT_PENDING;
    }
    if (post == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01656: payments: order %s was paid but cannot be credited: "
                      "mod_nebula_billing is not loaded", o->trade_no);
        return PAY_ERROR;
    }
    memset(&np, 0, sizeof(np));
    np.owner_kind = o->owner_kind;
    np.owner_id = o->owner_id;
    np.kind = NEBULA_LEDGER_TOPUP;
    np.amount = o->quota;
    np.idem_key = apr_pstrcat(a->r->pool, "topup:", o->provider, ":", o->trade_no, NULL);
    np.actor = actor;
    np.detail = detail;
    memset(&res, 0, sizeof(res));
    admin_db_release(a); /* billing borrows its own */
    rc = post(a->r, &np, &res);
    if (rc != NEBULA_BILLING_OK && rc != NEBULA_BILLING_DUPLICATE) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01656: payments: order %s could not be credited (billing "
                      "outcome %d); the provider will deliver again", o->trade_no, rc);
        return PAY_ERROR;
    }
    /* the credit is there (now or before): the order leaves pending once */
    args[0] = admin_i64(a, admin_now_ms());
    args[1] = admin_i64(a, res.ledger_id);
    args[2] = actor;
    args[3] = admin_i64(a, o->id);
    if (admin_db_exec(a,
                      "UPDATE topup_orders SET status = 'paid', paid_at = %lld, "
                      "ledger_id = %lld, completed_by = %s WHERE id = %lld AND status = "
                      "'pending'",
                      4, args, &changed) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01657: payments: order %s credited (ledger %" APR_INT64_T_FMT
                      ") but not marked paid: %s", o->trade_no, res.ledger_id,
                      a->db_err ? a->db_err : "?");
    }
    if (rc == NEBULA_BILLING_DUPLICATE) {
        return PAY_ALREADY;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                  "NEB01654: payments: order %s credited %" APR_INT64_T_FMT " quota to %s %"
                  APR_INT64_T_FMT " (ledger %" APR_INT64_T_FMT ", by %s)", o->trade_no,
                  o->quota, o->owner_kind, o->owner_id, res.ledger_id, actor);
    return PAY_CREDITED;
}

/* ---- provider events ----------------------------------------------------- */

int pay_event_record(admin_req_t *a, const char *provider, const char *event_id,
                     const char *type, const char *trade_no, const char *outcome,
                     const char *detail)
{
    const char *args[8];
    apr_int64_t id;

    if (!admin_db(a)) {
        return -1;
    }
    args[0] = provider;
    args[1] = event_id;
    args[2] = type;
    args[3] = trade_no;
    args[4] = admin_i64(a, admin_now_ms());
    args[5] = args[4];
    args[6] = outcome;
    args[7] = detail;
    if (admin_db_insert(a,
                        "INSERT INTO payment_events (provider, event_id, type, trade_no, "
                        "received_at, last_at, outcome, detail) VALUES (%s, %s, %s, %s, "
                        "%lld, %lld, %s, %s)",
                        8, args, &id) == APR_SUCCESS) {
        return 1;
    }
    if (event_id && admin_db_conflict(a)) {
        args[0] = args[4];
        args[1] = provider;
        args[2] = event_id;
        if (admin_db_exec(a,
                          "UPDATE payment_events SET deliveries = deliveries + 1, "
                          "last_at = %lld WHERE provider = %s AND event_id = %s",
                          3, args, NULL) != APR_SUCCESS) {
            return -1;
        }
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                  "NEB01657: payments: cannot record a %s event: %s", provider,
                  a->db_err ? a->db_err : "?");
    return -1;
}

void pay_event_outcome(admin_req_t *a, const char *provider, const char *event_id,
                       const char *outcome)
{
    const char *args[3];

    args[0] = outcome;
    args[1] = provider;
    args[2] = event_id;
    /* "credited" is final: a racing redelivery must not hide it */
    admin_db_exec(a, "UPDATE payment_events SET outcome = %s WHERE provider = %s AND "
                  "event_id = %s AND outcome <> 'credited'", 3, args, NULL);
}

/* ---- raw bodies, forms --------------------------------------------------- */

apr_status_t pay_read_body(admin_req_t *a, char **buf, apr_size_t *len)
{
    request_rec *r = a->r;
    apr_size_t cap = 8192, n = 0;
    char *b;
    long got;

    *buf = apr_pcalloc(r->pool, 1);
    *len = 0;
    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        return APR_EGENERAL;
    }
    if (!ap_should_client_block(r)) {
        return APR_SUCCESS;
    }
    if (r->remaining > PAY_MAX_BODY) {
        return APR_ENOSPC;
    }
    b = apr_palloc(r->pool, cap);
    for (;;) {
        if (n + 1 >= cap) {
            char *grown;
            if (cap >= PAY_MAX_BODY) {
                return APR_ENOSPC;
            }
            grown = apr_palloc(r->pool, cap * 2);
            memcpy(grown, b, n);
            b = grown;
            cap *= 2;
        }
        got = ap_get_client_block(r, b + n, cap - n - 1);
        if (got < 0) {
            return APR_EGENERAL;
        }
        if (got == 0) {
            break;
        }
        n += (apr_size_t)got;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return APR_SUCCESS;
}

apr_table_t *pay_form_parse(apr_pool_t *p, const char *text)
{
    apr_table_t *t = apr_table_make(p, 12);
    char *copy = apr_pstrdup(p, text ? text : ""), *pair, *state;

    for (pair = apr_strtok(copy, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '='), *k = pair, *v = eq ? eq + 1 : "";

        if (eq) {
            *eq = '\0';
        }
        /* '+' is a space, %2F a slash (form encoding, not a path) */
        if (ap_unescape_urlencoded(k) != OK || ap_unescape_urlencoded(v) != OK || !*k) {
            return NULL;
        }
        apr_table_set(t, k, v);
    }
    return t;
}

const char *pay_url_encode(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || strchr("-._~", c)) {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- routes: lists, one order, hand completion --------------------------- */

/* The filters of a list: user_id, status, provider. */
static void list_filters(admin_req_t *a, admin_sql_t *w, int self)
{
    static const char *const statuses[] = {"pending", "paid", "failed", "expired", NULL};
    static const char *const providers[] = {"stripe", "epay", NULL};
    const char *status, *provider;
    apr_int64_t uid;

    if (self) {
        admin_sql_where(w, "user_id = %lld", admin_i64(a, a->who.user_id));
    }
    else if (admin_query_int(a, "user_id", 1, ADMIN_MAX_AMOUNT, &uid) == ADMIN_SET) {
        admin_sql_where(w, "user_id = %lld", admin_i64(a, uid));
    }
    if (admin_query_enum(a, "status", statuses, &status) == ADMIN_SET) {
        admin_sql_where(w, "status = %s", status);
    }
    if (admin_query_enum(a, "provider", providers, &provider) == ADMIN_SET) {
        admin_sql_where(w, "provider = %s", provider);
    }
}

static int send_list(admin_req_t *a, int self)
{
    static const char *const allowed[] = {"page", "per_page", "user_id", "status",
                                          "provider", NULL};
    static const char *const allowed_self[] = {"page", "per_page", "status", "provider",
                                               NULL};
    apr_int64_t page, per_page;
    admin_sql_t w;

    admin_query_only(a, self ? allowed_self : allowed);
    admin_query_page(a, &page, &per_page);
    admin_sql_init(&w, a->r->pool, "FROM topup_orders");
    list_filters(a, &w, self);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (self && a->who.user_id == 0) {
        return admin_error(a, HTTP_BAD_REQUEST, "no_user", NULL,
                           "the admin token has no user and so no top-ups: use "
                           "/api/topups");
    }
    if (!admin_db(a)) {
        return OK;
    }
    return admin_db_send_page(a, &w, order_cols, NULL, "id DESC", page, per_page,
                              "top-up orders");
}

int pay_self_list(admin_req_t *a)
{
    return send_list(a, 1);
}

int pay_admin_list(admin_req_t *a)
{
    return send_list(a, 0);
}

int pay_admin_get(admin_req_t *a)
{
    static const char *const none[] = {NULL};
    const char *args[1];
    nebula_dbd_rows_t rows;
    json_t *o, *events;
    int i;

    admin_query_only(a, none);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((o = pay_order_json(a, a->id[0])) == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", NULL,
                           "top-up order %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    nebula_json_own(a->r->pool, o);
    args[0] = json_string_value(json_object_get(o, "trade_no"));
    events = json_array();
    json_object_set_new(o, "events", events);
    if (admin_db_select(a, apr_pstrcat(a->r->pool, "SELECT ",
                                       admin_cols_sql(a, event_cols, NULL),
                                       " FROM payment_events WHERE trade_no = %s "
                                       "ORDER BY id", NULL),
                        1, args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "read the order's provider events");
    }
    for (i = 0; i < rows.nrows; ++i) {
        json_array_append_new(events, admin_row_json(&rows, i, 0, event_cols));
    }
    return admin_send_data(a, HTTP_OK, json_incref(o));
}

/* POST /api/topups/{id}/complete: an admin credits a pending order by hand
 * (the payment arrived but its notification did not), keyed as the
 * provider's notification is, so a late one credits nothing more. */
int pay_admin_complete(admin_req_t *a)
{
    static const char *const allowed[] = {"note", NULL};
    const char *note = NULL, *actor, *detail;
    pay_order_t o;
    json_t *d;
    int rc;

    if (a->body) {
        admin_only_fields(a, a->body, allowed);
        admin_field_str(a, a->body, "note", ADMIN_F_NULLABLE, 500, &note);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((rc = order_load(a, "WHERE id = %lld", admin_i64(a, a->id[0]), &o)) < 0) {
        return admin_db_fail(a, "read the top-up order");
    }
    if (rc == 0) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", NULL,
                           "top-up order %" APR_INT64_T_FMT " does not exist", a->id[0]);
    }
    if (strcmp(o.status, "pending")) {
        return admin_error(a, HTTP_CONFLICT, "order_not_pending", NULL,
                           "top-up order %" APR_INT64_T_FMT " is %s: only a pending order "
                           "can be completed by hand", o.id, o.status);
    }
    actor = admin_billing_actor(a);
    d = nebula_json_own(a->r->pool, json_pack("{s:s, s:s, s:s}", "reason",
                                              "completed by hand", "trade_no", o.trade_no,
                                              "provider", o.provider));
    if (note) {
        json_object_set_new(d, "note", json_string(note));
    }
    detail = admin_json_text(a, d);
    rc = pay_credit(a, &o, actor, detail);
    if (rc == PAY_ERROR) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_unavailable", NULL,
                           "the order could not be credited now (see the server log)");
    }
    pay_event_record(a, o.provider, apr_pstrcat(a->r->pool, "admin:", o.trade_no, NULL),
                     "admin.complete", o.trade_no,
                     rc == PAY_CREDITED ? "credited" : "ignored", detail);
    admin_audit(a, "topup-complete", apr_psprintf(a->r->pool, "%s (%s)", o.trade_no,
                                                  rc == PAY_CREDITED ? "credited"
                                                                     : "already paid"));
    if (rc != PAY_CREDITED) {
        return admin_error(a, HTTP_CONFLICT, "order_not_pending", NULL,
                           "top-up order %" APR_INT64_T_FMT " was credited meanwhile",
                           o.id);
    }
    return admin_send_data(a, HTTP_OK, pay_order_json(a, o.id));
}

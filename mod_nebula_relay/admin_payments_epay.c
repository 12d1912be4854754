/* admin_payments_epay.c: top-up through EPay (易支付, the aggregator's
 * common "submit.php" protocol). POST /api/self/topup/epay creates the order
 * and answers the signed URL the browser is sent to; EPay's asynchronous
 * notify (GET or POST /api/payments/epay/notify) is verified and credits the
 * order once, answered with the plain text "success" or "fail" as EPay
 * expects; GET /api/payments/epay/return is the browser coming back.
 *
 * The signature (MD5, sign_type=MD5): every parameter except sign and
 * sign_type whose value is not empty, sorted by name (byte order), joined
 * as name=value with '&' (values not URL-encoded), the merchant key appended
 * directly, MD5, lower-case hex. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_md5.h>
#include <http_protocol.h>
#include "admin_payments.h"
#include "nebula_crypto.h"

typedef struct {
    const char *k, *v;
} kv_t;

static int collect(void *rec, const char *k, const char *v)
{
    apr_array_header_t *arr = rec;

    if (v && *v && strcmp(k, "sign") && strcmp(k, "sign_type")) {
        kv_t *e = apr_array_push(arr);
        e->k = k;
        e->v = v;
    }
    return 1;
}

static int kv_cmp(const void *x, const void *y)
{
    return strcmp(((const kv_t *)x)->k, ((const kv_t *)y)->k);
}

const char *pay_epay_sign(apr_pool_t *p, apr_table_t *params, const char *key)
{
    apr_array_header_t *arr = apr_array_make(p, 12, sizeof(kv_t));
    unsigned char digest[APR_MD5_DIGESTSIZE];
    const char *text = "";
    int i;

    apr_table_do(collect, arr, params, NULL);
    qsort(arr->elts, (size_t)arr->nelts, sizeof(kv_t), kv_cmp);
    for (i = 0; i < arr->nelts; ++i) {
        const kv_t *e = &APR_ARRAY_IDX(arr, i, kv_t);
        text = apr_pstrcat(p, text, i ? "&" : "", e->k, "=", e->v, NULL);
    }
    text = apr_pstrcat(p, text, key, NULL);
    apr_md5(digest, text, strlen(text));
    return nebula_crypto_hex(p, digest, sizeof(digest));
}

static int configured(const relay_pay_conf_t *pc)
{
    return pc->epay_url && pc->epay_pid && pc->epay_key && pc->epay_notify;
}

static int valid_type(const char *s)
{
    apr_size_t n = 0;

    for (; s[n]; ++n) {
        if (!apr_islower(s[n]) && !apr_isdigit(s[n]) && s[n] != '_') {
            return 0;
        }
    }
    return n >= 1 && n <= 32;
}

static int add_query(void *rec, const char *k, const char *v)
{
    const char **q = rec;
    apr_pool_t *p = (apr_pool_t *)q[1];

    q[0] = apr_pstrcat(p, q[0], *q[0] ? "&" : "", pay_url_encode(p, k), "=",
                       pay_url_encode(p, v), NULL);
    return 1;
}

int pay_epay_create(admin_req_t *a)
{
    static const char *const allowed[] = {"amount", "type", NULL};
    const relay_pay_conf_t *pc = &a->sc->pay;
    apr_pool_t *p = a->r->pool;
    const char *type = "alipay", *q[2];
    apr_table_t *params;
    json_t *form;
    pay_order_t o;

    if (!configured(pc)) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "payments_unconfigured", NULL,
                           "EPay top-ups are not configured on this server (NebulaEpayURL, "
                           "NebulaEpayPid, NebulaEpayKey, NebulaEpayNotifyURL)");
    }
    if (a->body) {
        admin_only_fields(a, a->body, allowed);
        if (admin_field_str(a, a->body, "type", 0, 32, &type) == ADMIN_SET
            && !valid_type(type)) {
            admin_invalid(a, "type", "type is EPay's payment type: alipay, wxpay, qqpay ... "
                          "(lower-case letters, digits, '_')");
        }
    }
    if (!pay_order_create(a, "epay", type, &o)) {
        return OK;
    }
    params = apr_table_make(p, 10);
    apr_table_setn(params, "pid", pc->epay_pid);
    apr_table_setn(params, "type", type);
    apr_table_setn(params, "out_trade_no", o.trade_no);
    apr_table_setn(params, "notify_url", pc->epay_notify);
    if (pc->epay_return) {
        apr_table_setn(params, "return_url", pc->epay_return);
    }
    apr_table_setn(params, "name", apr_psprintf(p, "Top-up %" APR_INT64_T_FMT " quota",
                                                o.quota));
    apr_table_setn(params, "money", pay_money_text(p, o.amount_minor));
    apr_table_setn(params, "sign", pay_epay_sign(p, params, pc->epay_key));
    apr_table_setn(params, "sign_type", "MD5");
    q[0] = "";
    q[1] = (const char *)p;
    apr_table_do(add_query, q, params, NULL);
    form = json_object();
    {
        const apr_array_header_t *arr = apr_table_elts(params);
        const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
        int i;
        for (i = 0; i < arr->nelts; ++i) {
            json_object_set_new(form, e[i].key, json_string(e[i].val));
        }
    }
    return admin_send_data(a, HTTP_OK,
                           json_pack("{s:o*, s:s, s:s, s:o}", "order", pay_order_json(a, o.id),
                                     "pay_url",
                                     apr_pstrcat(p, pc->epay_url, "/submit.php?", q[0],
                                                 NULL),
                                     "submit_url",
                                     apr_pstrcat(p, pc->epay_url, "/submit.php", NULL),
                                     "params", form));
}

/* The parameters of a notify or return: the form body of a POST, else the
 * query. NULL when unreadable. */
static apr_table_t *callback_params(admin_req_t *a)
{
    char *body = NULL;
    apr_size_t len = 0;

    if (a->r->method_number == M_POST) {
        if (pay_read_body(a, &body, &len) != APR_SUCCESS) {
            return NULL;
        }
        if (len > 0) {
            return pay_form_parse(a->r->pool, body);
        }
    }
    return pay_form_parse(a->r->pool, a->r->args);
}

/* The signature and the merchant: NULL when they hold, else why not. */
static const char *verify(admin_req_t *a, apr_table_t *t)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    const char *sign = apr_table_get(t, "sign"), *st = apr_table_get(t, "sign_type");
    const char *pid = apr_table_get(t, "pid"), *expect;
    char *lower;
    apr_size_t i;

    if (sign == NULL || !*sign) {
        return "no sign";
    }
    if (st && *st && ap_cstr_casecmp(st, "MD5")) {
        return "sign_type is not MD5";
    }
    lower = apr_pstrdup(a->r->pool, sign);
    for (i = 0; lower[i]; ++i) {
        lower[i] = (char)apr_tolower(lower[i]);
    }
    expect = pay_epay_sign(a->r->pool, t, pc->epay_key);
    if (!nebula_crypto_equal(lower, strlen(lower), expect, strlen(expect))) {
        return "signature mismatch";
    }
    if (pid == NULL || strcmp(pid, pc->epay_pid)) {
        return "pid is not this merchant";
    }
    return NULL;
}

static int text(admin_req_t *a, const char *s)
{
    ap_set_content_type(a->r, "text/plain; charset=utf-8");
    ap_set_content_length(a->r, (apr_off_t)strlen(s));
    ap_rputs(s, a->r);
    return OK;
}

static int notify_fail(admin_req_t *a, const char *event_id, const char *trade_no,
                       const char *outcome, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                  "NEB01655: payments: an EPay notify from %s was not accepted: %s",
                  a->r->useragent_ip, why);
    pay_event_record(a, "epay", event_id, "notify", trade_no, outcome,
                     admin_billing_detail(a, why));
    return text(a, "fail");
}

int pay_epay_notify(admin_req_t *a)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    const char *why, *out_trade_no, *status, *money, *event_id, *detail;
    apr_int64_t paid = 0;
    apr_table_t *t;
    pay_order_t o;
    int rc;

    if (!configured(pc)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01655: payments: an EPay notify arrived, but EPay is not "
                      "configured on this server");
        return text(a, "fail");
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((t = callback_params(a)) == NULL) {
        return notify_fail(a, NULL, NULL, "refused", "unreadable parameters");
    }
    out_trade_no = apr_table_get(t, "out_trade_no");
    if ((why = verify(a, t)) != NULL) {
        return notify_fail(a, NULL, NULL, "refused", why);
    }
    status = apr_table_get(t, "trade_status");
    money = apr_table_get(t, "money");
    if (out_trade_no == NULL || strlen(out_trade_no) > 64 || status == NULL
        || strlen(status) > 64) {
        return notify_fail(a, NULL, NULL, "refused", "no out_trade_no or trade_status");
    }
    event_id = apr_pstrcat(a->r->pool, "epay:", out_trade_no, ":", status, NULL);
    if ((rc = pay_order_find(a, out_trade_no, &o)) <= 0 || strcmp(o.provider, "epay")) {
        return notify_fail(a, event_id, out_trade_no, "ignored", "no such EPay order");
    }
    if (strcmp(status, "TRADE_SUCCESS")) {
        /* acknowledged, nothing to credit */
        pay_event_record(a, "epay", event_id, "notify", out_trade_no, "ignored", NULL);
        return text(a, "success");
    }
    if (!pay_money_parse(money, &paid) || paid != o.amount_minor) {
        return notify_fail(a, event_id, out_trade_no, "mismatch",
                           apr_psprintf(a->r->pool, "money %s does not match the order's "
                                        "%s", money ? money : "(none)",
                                        pay_money_text(a->r->pool, o.amount_minor)));
    }
    if (pay_event_record(a, "epay", event_id, "notify", out_trade_no, "received", NULL) < 0) {
        return text(a, "fail");
    }
    if (apr_table_get(t, "trade_no") && o.provider_ref == NULL
        && strlen(apr_table_get(t, "trade_no")) <= 255) {
        pay_order_set_ref(a, o.id, apr_table_get(t, "trade_no"));
    }
    detail = admin_json_text(a, nebula_json_own(a->r->pool,
                                                json_pack("{s:s, s:s?, s:s, s:s?}",
                                                          "provider", "epay", "epay_trade_no",
                                                          apr_table_get(t, "trade_no"),
                                                          "trade_no", o.trade_no, "type",
                                                          apr_table_get(t, "type"))));
    rc = pay_credit(a, &o, "epay", detail);
    if (rc == PAY_ERROR) {
        pay_event_outcome(a, "epay", event_id, "failed");
        return text(a, "fail"); /* EPay notifies again */
    }
    pay_event_outcome(a, "epay", event_id, rc == PAY_CREDITED ? "credited"
                                          : rc == PAY_ALREADY ? "ignored" : "refused");
    return text(a, "success");
}

int pay_epay_return(admin_req_t *a)
{
    const char *why, *out_trade_no;
    apr_table_t *t;
    pay_order_t o;
    int found;

    if (!configured(&a->sc->pay)) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "payments_unconfigured", NULL,
                           "EPay is not configured on this server");
    }
    if ((t = callback_params(a)) == NULL || (why = verify(a, t)) != NULL) {
        return admin_error(a, HTTP_BAD_REQUEST, "signature_mismatch", NULL,
                           "the return parameters are not signed by EPay for this "
                           "merchant");
    }
    out_trade_no = apr_table_get(t, "out_trade_no");
    if (!admin_db(a)) {
        return OK;
    }
    if (out_trade_no == NULL || (found = pay_order_find(a, out_trade_no, &o)) == 0) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", NULL, "no such top-up order");
    }
    if (found < 0) {
        return admin_db_fail(a, "read the order");
    }
    /* the browser's word is not the payment: only the notify credits */
    return admin_send_data(a, HTTP_OK,
                           json_pack("{s:b, s:s, s:s, s:s?, s:o*}", "verified", 1, "trade_no",
                                     o.trade_no, "status", o.status, "trade_status",
                                     apr_table_get(t, "trade_status"), "order",
                                     pay_order_json(a, o.id)));
}

/* admin_payments_stripe.c: top-up through Stripe Checkout. POST
 * /api/self/topup/stripe creates the order and a Checkout Session (POST
 * /v1/checkout/sessions, form-encoded as Stripe's API takes it, through
 * mod_proxy's workers: relay_upstream.c); POST /api/payments/stripe/webhook
 * takes Stripe's signed events: the Stripe-Signature header checked as
 * Stripe documents it (HMAC-SHA256 of "<t>.<raw body>" with the endpoint's
 * signing secret, any v1 may match, 300 s tolerance), then
 * checkout.session.completed / async_payment_succeeded credit the order once
 * and expired / async_payment_failed mark it. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_payments.h"
#include "nebula_crypto.h"

/* ---- the Checkout Session ------------------------------------------------ */

/* One form field, key and value percent-encoded (as the official SDKs send
 * them: brackets too). */
static const char *form_add(apr_pool_t *p, const char *form, const char *k, const char *v)
{
    return apr_pstrcat(p, form, *form ? "&" : "", pay_url_encode(p, k), "=",
                       pay_url_encode(p, v), NULL);
}

static const char *session_form(admin_req_t *a, const pay_order_t *o)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    apr_pool_t *p = a->r->pool;
    const char *f = "";

    f = form_add(p, f, "mode", "payment");
    f = form_add(p, f, "line_items[0][price_data][currency]", o->currency);
    f = form_add(p, f, "line_items[0][price_data][unit_amount]",
                 admin_i64(a, o->amount_minor));
    f = form_add(p, f, "line_items[0][price_data][product_data][name]",
                 apr_psprintf(p, "Top-up: %" APR_INT64_T_FMT " quota", o->quota));
    f = form_add(p, f, "line_items[0][quantity]", "1");
    f = form_add(p, f, "success_url", pc->stripe_success);
    f = form_add(p, f, "cancel_url", pc->stripe_cancel);
    f = form_add(p, f, "client_reference_id", o->trade_no);
    f = form_add(p, f, "metadata[trade_no]", o->trade_no);
    f = form_add(p, f, "metadata[user_id]", admin_i64(a, o->user_id));
    return f;
}

/* Call Stripe; *session is its answer (200) or NULL with *why set. */
static int create_session(admin_req_t *a, const pay_order_t *o, json_t **session,
                          const char **why)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    apr_table_t *h = apr_table_make(a->r->pool, 4), *rh;
    relay_ctx_t *ctx = apr_pcalloc(a->r->pool, sizeof(*ctx));
    const char *body = session_form(a, o);
    relay_upstream_t *up;
    char *buf = NULL;
    apr_size_t len = 0;
    int rc, status = 0;
    json_t *j;

    *session = NULL;
    apr_table_setn(h, "Authorization", apr_pstrcat(a->r->pool, "Bearer ", pc->stripe_key,
                                                   NULL));
    apr_table_setn(h, "Content-Type", "application/x-www-form-urlencoded");
    apr_table_setn(h, "Accept", "application/json");
    /* Stripe's own replay protection: the same order never makes two sessions */
    apr_table_setn(h, "Idempotency-Key", o->trade_no);
    {
        relay_exchange_t x = {apr_pstrcat(a->r->pool, pc->stripe_api, "/v1/checkout/sessions",
                                          NULL),
                              apr_time_from_sec(30), "POST", NULL, 0, h, body, strlen(body),
                              1 /* trusted: NebulaStripeAPI */};
        rc = relay_upstream_exchange(a->r, &x, &up, &status, &rh);
    }
    if (rc != OK) {
        *why = "Stripe could not be reached";
        return 0;
    }
    ctx->r = a->r;
    if (relay_read_all(ctx, up, PAY_MAX_ANSWER, &buf, &len) != APR_SUCCESS) {
        relay_upstream_close(up, 1);
        *why = "Stripe's answer could not be read";
        return 0;
    }
    relay_upstream_close(up, 0);
    j = nebula_json_parse(a->r->pool, buf, len, 0, NULL);
    if (status != HTTP_OK || !json_is_object(j)) {
        const char *m = nebula_json_gets(j, "error", "message", NULL);
        *why = apr_psprintf(a->r->pool, "Stripe answered %d%s%s", status, m ? ": " : "",
                            m ? m : "");
        return 0;
    }
    if (!nebula_json_gets(j, "id", NULL) || !nebula_json_gets(j, "url", NULL)) {
        *why = "Stripe's session has no id or url";
        return 0;
    }
    *session = j;
    return 1;
}

int pay_stripe_create(admin_req_t *a)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    const char *why = NULL;
    json_t *session, *out, *order;
    pay_order_t o;

    if (!pc->stripe_key || !pc->stripe_whsec || !pc->stripe_success || !pc->stripe_cancel) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "payments_unconfigured", NULL,
                           "Stripe top-ups are not configured on this server "
                           "(NebulaStripeSecretKey, NebulaStripeWebhookSecret, "
                           "NebulaStripeSuccessURL, NebulaStripeCancelURL)");
    }
    if (a->body) {
        static const char *const allowed[] = {"amount", NULL};
        admin_only_fields(a, a->body, allowed);
    }
    if (!pay_order_create(a, "stripe", NULL, &o)) {
        return OK;
    }
    admin_db_release(a); /* none held across the call to Stripe */
    if (!create_session(a, &o, &session, &why)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01650: payments: no Stripe Checkout Session for order %s: %s",
                      o.trade_no, why);
        pay_order_mark(a, &o, "failed", why);
        return admin_error(a, HTTP_BAD_GATEWAY, "payment_provider_error", NULL,
                           "the payment could not be started: %s", why);
    }
    pay_order_set_ref(a, o.id, nebula_json_gets(session, "id", NULL));
    order = pay_order_json(a, o.id);
    out = json_pack("{s:o*, s:s, s:s}", "order", order, "checkout_url",
                    nebula_json_gets(session, "url", NULL), "session_id",
                    nebula_json_gets(session, "id", NULL));
    return admin_send_data(a, HTTP_OK, out);
}

/* ---- the webhook --------------------------------------------------------- */

/* Stripe-Signature: "t=<unix s>,v1=<hex>[,v1=<hex>...][,v0=...]". 1 with
 * *t and the v1 values, or 0 when it is malformed. */
static int parse_signature(apr_pool_t *p, const char *h, apr_int64_t *t,
                           apr_array_header_t *v1)
{
    char *copy = apr_pstrdup(p, h), *item, *state, *end;
    int have_t = 0;

    for (item = apr_strtok(copy, ",", &state); item; item = apr_strtok(NULL, ",", &state)) {
        while (apr_isspace(*item)) {
            ++item;
        }
        if (!strncmp(item, "t=", 2)) {
            *t = apr_strtoi64(item + 2, &end, 10);
            have_t = end != item + 2 && *end == '\0' && *t > 0;
        }
        else if (!strncmp(item, "v1=", 3)) {
            APR_ARRAY_PUSH(v1, const char *) = item + 3;
        }
    }
    return have_t && v1->nelts > 0;
}

/* Whether one of the v1 values is the HMAC of "<t>.<body>" (constant time
 * per comparison). */
static int signature_ok(admin_req_t *a, apr_int64_t t, const apr_array_header_t *v1,
                        const char *body, apr_size_t len)
{
    const char *secret = a->sc->pay.stripe_whsec;
    const char *head = apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT ".", t);
    apr_size_t hl = strlen(head);
    char *signed_payload = apr_palloc(a->r->pool, hl + len + 1);
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];
    const char *expect;
    int i, ok = 0;

    memcpy(signed_payload, head, hl);
    memcpy(signed_payload + hl, body, len);
    if (nebula_crypto_hmac_sha256(secret, strlen(secret), signed_payload, hl + len, mac)
        != APR_SUCCESS) {
        return 0;
    }
    expect = nebula_crypto_hex(a->r->pool, mac, sizeof(mac));
    for (i = 0; i < v1->nelts; ++i) {
        const char *v = APR_ARRAY_IDX(v1, i, const char *);
        ok |= nebula_crypto_equal(v, strlen(v), expect, strlen(expect));
    }
    return ok;
}

/* A refused delivery: recorded without an event id, logged, 400. */
static int refuse(admin_req_t *a, const char *code, const char *reason, const char *msg)
{
    pay_event_record(a, "stripe", NULL, NULL, NULL, "refused",
                     admin_billing_detail(a, reason));
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                  "NEB01651: payments: a Stripe webhook from %s was refused: %s",
                  a->r->useragent_ip, reason);
    return admin_error(a, HTTP_BAD_REQUEST, code, NULL, "%s", msg);
}

static int answer(admin_req_t *a, const char *event_id, const char *outcome)
{
    return admin_send(a, HTTP_OK, json_pack("{s:b, s:s, s:s}", "received", 1, "event",
                                            event_id, "outcome", outcome));
}

/* checkout.session.completed (paid) or async_payment_succeeded. */
static int on_paid(admin_req_t *a, const char *event_id, json_t *s, const pay_order_t *o,
                   int fresh)
{
    const char *cur = nebula_json_gets(s, "currency", NULL);
    apr_int64_t total = nebula_json_geti(s, -1, "amount_total", NULL);
    const char *sid = nebula_json_gets(s, "id", NULL), *detail;
    int rc;

    if (total != o->amount_minor || cur == NULL || ap_cstr_casecmp(cur, o->currency)) {
        pay_event_outcome(a, "stripe", event_id, "mismatch");
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, a->r,
                      "NEB01653: payments: Stripe event %s for order %s paid %"
                      APR_INT64_T_FMT " %s, the order is %" APR_INT64_T_FMT " %s: not "
                      "credited", event_id, o->trade_no, total, cur ? cur : "?",
                      o->amount_minor, o->currency);
        return admin_error(a, HTTP_BAD_REQUEST, "amount_mismatch", NULL,
                           "the session's amount_total and currency (%" APR_INT64_T_FMT
                           " %s) do not match order %s (%" APR_INT64_T_FMT " %s)",
                           total, cur ? cur : "none", o->trade_no, o->amount_minor,
                           o->currency);
    }
    if (o->provider_ref && sid && strcmp(o->provider_ref, sid)) {
        pay_event_outcome(a, "stripe", event_id, "mismatch");
        return admin_error(a, HTTP_BAD_REQUEST, "session_mismatch", NULL,
                           "session %s is not the session of order %s", sid, o->trade_no);
    }
    detail = admin_json_text(a, nebula_json_own(a->r->pool,
                                                json_pack("{s:s, s:s?, s:s, s:s}",
                                                          "provider", "stripe",
                                                          "session_id", sid, "event_id",
                                                          event_id, "trade_no",
                                                          o->trade_no)));
    rc = pay_credit(a, o, "stripe", detail);
    if (rc == PAY_ERROR) {
        /* not 2xx: Stripe delivers the event again later */
        pay_event_outcome(a, "stripe", event_id, "failed");
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_unavailable", NULL,
                           "the payment could not be credited now; deliver it again");
    }
    if (rc == PAY_CREDITED || fresh) {
        pay_event_outcome(a, "stripe", event_id,
                          rc == PAY_CREDITED ? "credited"
                          : rc == PAY_ALREADY ? "ignored" : "refused");
    }
    return answer(a, event_id, rc == PAY_CREDITED ? "credited"
                               : rc == PAY_ALREADY ? "already_credited"
                                                   : "order_not_pending");
}

int pay_stripe_webhook(admin_req_t *a)
{
    const char *sig = apr_table_get(a->r->headers_in, "Stripe-Signature");
    apr_array_header_t *v1 = apr_array_make(a->r->pool, 2, sizeof(const char *));
    const char *event_id, *type, *trade_no, *paid;
    apr_int64_t t = 0, now = apr_time_sec(apr_time_now());
    char *body;
    apr_size_t len;
    json_t *ev, *s;
    pay_order_t o;
    int fresh, found;

    if (!a->sc->pay.stripe_whsec) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "payments_unconfigured", NULL,
                           "NebulaStripeWebhookSecret is not set on this server");
    }
    if (pay_read_body(a, &body, &len) != APR_SUCCESS) {
        return admin_error(a, HTTP_BAD_REQUEST, "bad_body", NULL,
                           "the body could not be read (at most %d bytes)", PAY_MAX_BODY);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (sig == NULL || !parse_signature(a->r->pool, sig, &t, v1)) {
        return refuse(a, "signature_mismatch", "no usable Stripe-Signature header",
                      "signature mismatch: the Stripe-Signature header is missing or "
                      "has no t= and v1= values");
    }
    if (!signature_ok(a, t, v1, body, len)) {
        return refuse(a, "signature_mismatch", "signature mismatch",
                      "signature mismatch: no v1 signature matches the payload signed "
                      "with the webhook secret");
    }
    if (t < now - PAY_STRIPE_TOLERANCE_S || t > now + PAY_STRIPE_TOLERANCE_S) {
        return refuse(a, "timestamp_outside_tolerance", "timestamp outside the tolerance",
                      apr_psprintf(a->r->pool, "timestamp outside the tolerance: the "
                                   "signature is %" APR_INT64_T_FMT " s old, at most %d s "
                                   "are accepted", now - t, PAY_STRIPE_TOLERANCE_S));
    }
    ev = nebula_json_parse(a->r->pool, body, len, 0, NULL);
    event_id = nebula_json_gets(ev, "id", NULL);
    type = nebula_json_gets(ev, "type", NULL);
    s = nebula_json_getj(ev, "data", "object", NULL);
    if (event_id == NULL || type == NULL || !json_is_object(s) || strlen(event_id) > 255) {
        return refuse(a, "bad_event", "not a Stripe event",
                      "the body is not a Stripe event (id, type, data.object)");
    }
    trade_no = nebula_json_gets(s, "client_reference_id", NULL);
    if (trade_no == NULL) {
        trade_no = nebula_json_gets(s, "metadata", "trade_no", NULL);
    }
    if (strncmp(type, "checkout.session.", 17) || trade_no == NULL
        || strlen(trade_no) > 64) {
        fresh = pay_event_record(a, "stripe", event_id, type, NULL, "ignored", NULL);
        return fresh < 0 ? admin_db_fail(a, "record the event") : answer(a, event_id,
                                                                          "ignored");
    }
    if ((fresh = pay_event_record(a, "stripe", event_id, type, trade_no, "received", NULL))
        < 0) {
        return admin_db_fail(a, "record the event");
    }
    if ((found = pay_order_find(a, trade_no, &o)) <= 0 || strcmp(o.provider, "stripe")) {
        if (found < 0) {
            return admin_db_fail(a, "read the order");
        }
        pay_event_outcome(a, "stripe", event_id, "ignored");
        return answer(a, event_id, "unknown_order");
    }
    paid = nebula_json_gets(s, "payment_status", NULL);
    if (!strcmp(type, "checkout.session.completed") && (paid == NULL || strcmp(paid, "paid"))) {
        /* an asynchronous payment method: async_payment_succeeded follows */
        if (fresh) {
            pay_event_outcome(a, "stripe", event_id, "ignored");
        }
        return answer(a, event_id, "awaiting_payment");
    }
    if (!strcmp(type, "checkout.session.completed")
        || !strcmp(type, "checkout.session.async_payment_succeeded")) {
        return on_paid(a, event_id, s, &o, fresh);
    }
    if (!strcmp(type, "checkout.session.expired")
        || !strcmp(type, "checkout.session.async_payment_failed")) {
        int marked = pay_order_mark(a, &o, type[17] == 'e' ? "expired" : "failed", type);
        if (fresh) {
            pay_event_outcome(a, "stripe", event_id, marked ? "marked" : "ignored");
        }
        return answer(a, event_id, marked ? "marked" : "ignored");
    }
    if (fresh) {
        pay_event_outcome(a, "stripe", event_id, "ignored");
    }
    return answer(a, event_id, "ignored");
}

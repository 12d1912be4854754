/* billing_subscribe.c: subscriptions begin and end here.
 *
 * nebula_billing_subscribe() writes, in one transaction, the subscription
 * row, its allowance account (owner_kind 'sub', in the plan's metric) and
 * the first period's plan_grant. billing_subscribe_end() ends one (the
 * scheduler's expiry, nebula_billing_unsubscribe()'s cancellation): the
 * status changes only if the subscription is still active, and an expiry
 * row takes what is available on its account; what is reserved stays for
 * the requests in flight, which settle against it. */
#include <apr_strings.h>
#include <apr_optional.h>
#include "billing_private.h"
#include "billing_sched.h"
#include "nebula_ledger.h"

typedef struct {
    server_rec *s;
    apr_int64_t plan_id, subject_id, starts_at, expires_at, now;
    const char *subject_kind, *actor;
    apr_int64_t sub_id;
    int invalid; /* no such plan or subject, or the plan is not active */
    const char *why;
} subscribe_ctx_t;

/* Whether the subject exists (and, for a user, is not deleted). */
static int subject_exists(nebula_ap_db_t *db, apr_pool_t *p, const char *kind,
                          apr_int64_t id, const char **err)
{
    const char *args[1] = {billing_i64(p, id)}, *sql, *label;
    nebula_dbd_rows_t rows;

    if (strcmp(kind, "user") == 0) {
        label = "billing_sub_user";
        sql = "SELECT id FROM users WHERE id = %lld AND status <> 'deleted'";
    }
    else if (strcmp(kind, "org") == 0) {
        label = "billing_sub_org";
        sql = "SELECT id FROM organizations WHERE id = %lld";
    }
    else if (strcmp(kind, "key") == 0) {
        label = "billing_sub_key";
        sql = "SELECT id FROM api_keys WHERE id = %lld";
    }
    else {
        return 0;
    }
    if (nebula_ap_db_select(db, label, sql, 1, args, &rows, err) != APR_SUCCESS) {
        return -1;
    }
    return rows.nrows > 0;
}

int billing_subscribe_in_txn(nebula_ap_db_t *db, apr_pool_t *p, const billing_sub_t *in,
                             apr_int64_t *sub_id, nebula_posting_result_t *grant,
                             const char **why, const char **err)
{
    const char *args[13];
    nebula_dbd_rows_t rows;
    billing_period_t bp;
    billing_post_t post;
    apr_int64_t start, end, account_id;
    int rc;

    args[0] = billing_i64(p, in->plan_id);
    if (nebula_ap_db_select(db, "billing_sub_plan",
                            "SELECT metric, period, period_seconds, alignment, "
                            "quota_per_period, status FROM plans WHERE id = %lld",
                            1, args, &rows, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (rows.nrows != 1 || rows.rows[0][5] == NULL ||
        strcmp(rows.rows[0][5], "active") != 0) {
        *why = rows.nrows ? "the plan is not active" : "no such plan";
        return BILLING_STEP_SKIPPED;
    }
    if (billing_period_parse(&bp, rows.rows[0][1], nebula_ap_db_int(&rows, 0, 2),
                             rows.rows[0][3]) != 0 ||
        billing_period_at(&bp, in->starts_at, in->starts_at, &start, &end) != 0) {
        *why = "the plan has no valid period";
        return BILLING_STEP_SKIPPED;
    }
    if ((rc = subject_exists(db, p, in->subject_kind, in->subject_id, err)) <= 0) {
        *why = "no such subject";
        return rc == 0 ? BILLING_STEP_SKIPPED : BILLING_STEP_ERROR;
    }
    args[1] = in->subject_kind;
    args[2] = billing_i64(p, in->subject_id);
    args[3] = billing_i64(p, start);
    args[4] = billing_i64(p, end);
    args[5] = billing_i64(p, in->starts_at);
    args[6] = in->expires_at ? billing_i64(p, in->expires_at) : NULL;
    args[7] = billing_i64(p, in->now);
    args[8] = args[7];
    if (nebula_ap_db_insert(
            db, "billing_sub_insert",
            "INSERT INTO subscriptions (plan_id, subject_kind, subject_id, "
            "account_id, status, period_start, period_end, starts_at, "
            "expires_at, notified_pct, expiry_notified, created_at, "
            "updated_at) VALUES (%lld, %s, %lld, 0, 'active', %lld, %lld, "
            "%lld, %lld, 0, 0, %lld, %lld)",
            9, args, sub_id, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (billing_account_id(db, p, "sub", *sub_id, rows.rows[0][0], 1, &account_id,
                           err) != NEBULA_BILLING_OK) {
        return BILLING_STEP_ERROR;
    }
    args[0] = billing_i64(p, account_id);
    args[1] = billing_i64(p, *sub_id);
    if (nebula_ap_db_exec(db, "billing_sub_account",
                          "UPDATE subscriptions SET account_id = %lld WHERE id = %lld", 2,
                          args, NULL, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    memset(&post, 0, sizeof(post));
    post.account_id = account_id;
    post.kind = NEBULA_LEDGER_PLAN_GRANT;
    post.amount = nebula_ap_db_int(&rows, 0, 4);
    post.idem_key = apr_pstrcat(p, "grant:", args[1], ":", args[3], NULL);
    post.actor = in->actor;
    post.detail = in->detail ? in->detail
                             : apr_psprintf(p, "{\"period_start\":%s,\"period_end\":%s}",
                                            args[3], args[4]);
    if (billing_ledger_post(db, p, &post, grant, err) != NEBULA_BILLING_OK) {
        /* a fresh subscription's key cannot exist: a refusal is an error */
        if (*err == NULL) {
            *err = "the plan grant was refused";
        }
        return BILLING_STEP_ERROR;
    }
    return BILLING_STEP_DONE;
}

static int subscribe_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton,
                          const char **err)
{
    subscribe_ctx_t *c = baton;
    billing_sub_t in;
    nebula_posting_result_t grant;
    int rc;

    memset(&in, 0, sizeof(in));
    in.plan_id = c->plan_id;
    in.subject_kind = c->subject_kind;
    in.subject_id = c->subject_id;
    in.starts_at = c->starts_at;
    in.expires_at = c->expires_at;
    in.now = c->now;
    in.actor = c->actor;
    rc = billing_subscribe_in_txn(db, p, &in, &c->sub_id, &grant, &c->why, err);
    c->invalid = rc == BILLING_STEP_SKIPPED;
    return rc;
}

static int nebula_billing_subscribe(request_rec *r, apr_int64_t plan_id,
                                    const char *subject_kind, apr_int64_t subject_id,
                                    apr_int64_t starts_at, apr_int64_t expires_at,
                                    const char *actor, apr_int64_t *sub_id)
{
    subscribe_ctx_t c;
    nebula_ap_db_t *db;
    int rc;

    memset(&c, 0, sizeof(c));
    c.s = r->server;
    c.now = billing_now_ms();
    c.plan_id = plan_id;
    c.subject_kind = subject_kind ? subject_kind : "";
    c.subject_id = subject_id;
    c.starts_at = starts_at > 0 ? starts_at : c.now;
    c.expires_at = expires_at > 0 ? expires_at : 0;
    c.actor = actor ? actor : "";
    if (c.expires_at && c.expires_at <= c.starts_at) {
        return NEBULA_BILLING_INVALID;
    }
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    rc = billing_sched_txn(r->server, db, r->pool, subscribe_step, &c, "subscribe");
    nebula_ap_db_close(db);
    if (rc == BILLING_STEP_DONE) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB02350: subscription %" APR_INT64_T_FMT ": %s %" APR_INT64_T_FMT
                      " subscribed to plan %" APR_INT64_T_FMT " by %s",
                      c.sub_id, c.subject_kind, subject_id, plan_id, c.actor);
        if (sub_id) {
            *sub_id = c.sub_id;
        }
        return NEBULA_BILLING_OK;
    }
    if (c.invalid) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "NEB02351: subscribing %s %" APR_INT64_T_FMT
                      " to plan %" APR_INT64_T_FMT " refused: %s",
                      c.subject_kind, subject_id, plan_id, c.why);
        return NEBULA_BILLING_INVALID;
    }
    return NEBULA_BILLING_ERROR;
}

/* ---- the end of a subscription ------------------------------------------- */

typedef struct {
    apr_int64_t sub_id;
    const char *status, *actor;
    int expiry; /* the scheduler's expiry (not a cancellation) */
} end_ctx_t;

static int end_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    end_ctx_t *c = baton;
    const char *args[3], *id = billing_i64(p, c->sub_id);
    nebula_dbd_rows_t rows;
    apr_int64_t account_id, balance, reserved, avail;
    int affected = 0;

    args[0] = c->status;
    args[1] = billing_i64(p, billing_now_ms());
    args[2] = id;
    /* expiry waits for the period resets due before expires_at (a pass
     * that read the due resets before another expired the subscription
     * would otherwise lose them); a cancellation does not wait */
    if (nebula_ap_db_exec(db, c->expiry ? "billing_sub_expire" : "billing_sub_end",
                          c->expiry
                              ? "UPDATE subscriptions SET status = %s, updated_at = "
                                "%lld WHERE id = %lld AND status = 'active' AND "
                                "period_end >= expires_at"
                              : "UPDATE subscriptions SET status = %s, updated_at = "
                                "%lld WHERE id = %lld AND status = 'active'",
                          3, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED; /* ended already (or never existed) */
    }
    if (nebula_ap_db_select(db, "billing_sub_acct",
                            "SELECT account_id FROM subscriptions WHERE id = %lld", 1,
                            &id, &rows, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    account_id = rows.nrows ? nebula_ap_db_int(&rows, 0, 0) : 0;
    if (billing_sched_account(db, p, account_id, &balance, &reserved, err) != 0) {
        return BILLING_STEP_ERROR;
    }
    avail = balance - reserved;
    return billing_sched_post(
        db, p, account_id, NEBULA_LEDGER_EXPIRY, avail > 0 ? -avail : 0,
        apr_pstrcat(p, "expiry:", id, NULL), c->actor,
        apr_psprintf(p, "{\"status\":\"%s\",\"available\":%" APR_INT64_T_FMT "}",
                     c->status, avail),
        err);
}

int billing_subscribe_end(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                          apr_int64_t sub_id, const char *status, const char *actor)
{
    end_ctx_t c;

    c.sub_id = sub_id;
    c.status = status;
    c.actor = actor;
    c.expiry = strcmp(status, "expired") == 0;
    return billing_sched_txn(s, db, p, end_step, &c, "ending a subscription");
}

static int nebula_billing_unsubscribe(request_rec *r, apr_int64_t sub_id,
                                      const char *actor)
{
    nebula_ap_db_t *db;
    int rc;

    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    rc = billing_subscribe_end(r->server, db, r->pool, sub_id, "cancelled",
                               actor ? actor : "");
    nebula_ap_db_close(db);
    if (rc == BILLING_STEP_DONE) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB02352: subscription %" APR_INT64_T_FMT " cancelled by %s",
                      sub_id, actor ? actor : "");
        return NEBULA_BILLING_OK;
    }
    return rc == BILLING_STEP_SKIPPED ? NEBULA_BILLING_INVALID : NEBULA_BILLING_ERROR;
}

void billing_subscribe_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_subscribe);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_unsubscribe);
}

/* billing_voucher.c: voucher redemption (docs/vouchers.md).
 *
 * nebula_billing_redeem() gets the HMAC of a normalised code from the admin
 * API (billing never sees a code) and:
 *   1. refuses at once while the user or the client IP is locked out
 *      (redeem_failures), before any lookup: a locked caller learns nothing
 *      about the code it sent;
 *   2. in ONE transaction: looks the code up by hash (one indexed lookup,
 *      for a code that exists as for one that does not), checks the batch
 *      (status, window, scope, the user's uses), takes one use with
 *      conditional UPDATEs of the code and the batch (affected rows decide,
 *      never read-then-write), inserts the redemption row (unique per use
 *      and per user use) and posts its ledger row (kind voucher, idem key
 *      "voucher:<code>:<use>"), or, for a plan voucher, subscribes the user
 *      (subscription, allowance account, first plan_grant);
 *   3. records a failure (any refusal) for the user and the IP, and audits
 *      it with NEB02410 at notice level.
 *
 * Lock order inside the transaction: voucher_codes, voucher_batches, then
 * the billing order (subscriptions, accounts). */
#include <stdlib.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include "billing_private.h"
#include "billing_sched.h"
#include "nebula_ledger.h"
#include "nebula_json.h"

/** Failures allowed in a window, per user and per client IP, and how long
 *  a lockout lasts. */
#define VOUCHER_USER_FAILURES 10
#define VOUCHER_IP_FAILURES   30
#define VOUCHER_WINDOW_MS     (APR_INT64_C(15) * 60 * 1000)
#define VOUCHER_LOCK_MS       (APR_INT64_C(15) * 60 * 1000)
#define VOUCHER_DAY_MS        (APR_INT64_C(86400) * 1000)

typedef struct {
    request_rec *r;
    const nebula_redeem_t *in;
    nebula_redeem_result_t *out;
    apr_int64_t now;
    int refused;
} redeem_ctx_t;

/* "2026-11-27 06:40 UTC" */
static const char *when(apr_pool_t *p, apr_int64_t ms)
{
    apr_time_exp_t tm;
    apr_size_t len;
    char buf[64];

    if (apr_time_exp_gmt(&tm, apr_time_from_msec(ms)) != APR_SUCCESS ||
        apr_strftime(buf, &len, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm) != APR_SUCCESS) {
        return billing_i64(p, ms);
    }
    return apr_pstrdup(p, buf);
}

static int refuse(redeem_ctx_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(redeem_ctx_t *c, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    c->out->message = apr_pvsprintf(c->r->pool, fmt, ap);
    va_end(ap);
    c->out->status = status;
    c->out->code = code;
    c->refused = 1;
    return BILLING_STEP_SKIPPED;
}

/* ", "-joined strings of a JSON array. */
static const char *joined(apr_pool_t *p, json_t *arr)
{
    const char *s = "";
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v)) {
            s = *s ? apr_pstrcat(p, s, ", ", json_string_value(v), NULL)
                   : json_string_value(v);
        }
        else if (json_is_integer(v)) {
            s = apr_psprintf(p, "%s%s%" APR_INT64_T_FMT, s, *s ? ", " : "",
                             (apr_int64_t)json_integer_value(v));
        }
    }
    return s;
}

/* The scope of a batch against the user: 0 fits, 1 refused, -1 error. */
static int scope_check(nebula_ap_db_t *db, redeem_ctx_t *c, const char *scope_text,
                       const char *group, const char **err)
{
    apr_pool_t *p = c->r->pool;
    const char *args[3];
    nebula_dbd_rows_t rows;
    json_t *scope, *groups, *plans, *v;
    size_t i;
    int k, ok;

    if (scope_text == NULL || !*scope_text) {
        return 0;
    }
    scope = nebula_json_parse(p, scope_text, strlen(scope_text), 0, NULL);
    groups = json_object_get(scope, "groups");
    plans = json_object_get(scope, "plans");
    if (json_is_array(groups) && json_array_size(groups) > 0) {
        ok = 0;
        json_array_foreach(groups, i, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), group) == 0) {
                ok = 1;
            }
        }
        if (!ok) {
            refuse(c, 403, "voucher_out_of_scope",
                   "This voucher is only for the user groups %s; your group is '%s'.",
                   joined(p, groups), group);
            return 1;
        }
    }
    if (json_is_array(plans) && json_array_size(plans) > 0) {
        args[0] = billing_i64(p, c->in->user_id);
        args[1] = billing_i64(p, c->now);
        if (nebula_ap_db_select(db, "billing_voucher_subs",
                                "SELECT plan_id FROM subscriptions WHERE subject_kind = "
                                "'user' AND subject_id = %lld AND status = 'active' AND "
                                "(expires_at IS NULL OR expires_at > %lld)",
                                2, args, &rows, err) != APR_SUCCESS) {
            return -1;
        }
        ok = 0;
        json_array_foreach(plans, i, v)
        {
            for (k = 0; k < rows.nrows; ++k) {
                if (json_is_integer(v) &&
                    json_integer_value(v) == nebula_ap_db_int(&rows, k, 0)) {
                    ok = 1;
                }
            }
        }
        if (!ok) {
            refuse(c, 403, "voucher_out_of_scope",
                   "This voucher is only for subscribers of the plans %s; you hold no "
                   "active subscription to one of them.",
                   joined(p, plans));
            return 1;
        }
    }
    return 0;
}

/* Subscribe the user to @a plan_id inside the redemption's transaction
 * (what nebula_billing_subscribe() does in a transaction of its own: the
 * subscription, its allowance account, the first period's plan_grant). */
static int subscribe_in_txn(nebula_ap_db_t *db, redeem_ctx_t *c, apr_int64_t plan_id,
                            apr_int64_t days, const char *detail, const char **err)
{
    billing_sub_t in;
    nebula_posting_result_t grant;
    const char *why = NULL;
    apr_int64_t sub_id = 0;
    int rc;

    memset(&in, 0, sizeof(in));
    memset(&grant, 0, sizeof(grant));
    in.plan_id = plan_id;
    in.subject_kind = "user";
    in.subject_id = c->in->user_id;
    in.starts_at = c->now;
    in.expires_at = days > 0 ? c->now + days * VOUCHER_DAY_MS : 0;
    in.now = c->now;
    in.actor = c->in->actor;
    in.detail = detail;
    rc = billing_subscribe_in_txn(db, c->r->pool, &in, &sub_id, &grant, &why, err);
    if (rc == BILLING_STEP_SKIPPED) {
        return refuse(c, 409, "voucher_plan_unavailable",
                      "The plan of this voucher is not available any more.");
    }
    if (rc != BILLING_STEP_DONE) {
        return rc;
    }
    c->out->sub_id = sub_id;
    c->out->ledger_id = grant.ledger_id;
    c->out->balance_after = grant.balance_after;
    return BILLING_STEP_DONE;
}

/* Credit the user's wallet inside the transaction. */
static int credit_in_txn(nebula_ap_db_t *db, redeem_ctx_t *c, apr_int64_t amount,
                         const char *idem, const char *detail, const char **err)
{
    apr_pool_t *p = c->r->pool;
    billing_post_t post;
    nebula_posting_result_t res;
    apr_int64_t account_id;
    int rc;

    if (billing_account_id(db, p, "user", c->in->user_id, "quota", 1, &account_id, err) !=
        NEBULA_BILLING_OK) {
        return BILLING_STEP_ERROR;
    }
    memset(&post, 0, sizeof(post));
    memset(&res, 0, sizeof(res));
    post.account_id = account_id;
    post.kind = NEBULA_LEDGER_VOUCHER;
    post.amount = amount;
    post.idem_key = idem;
    post.actor = c->in->actor;
    post.detail = detail;
    rc = billing_ledger_post(db, p, &post, &res, err);
    if (rc == NEBULA_BILLING_DUPLICATE) {
        /* cannot happen (the use is unique): never credit twice anyway */
        return refuse(c, 409, "voucher_used", "This code has already been used.");
    }
    if (rc != NEBULA_BILLING_OK) {
        if (*err == NULL) {
            *err = "the voucher credit was refused";
        }
        return BILLING_STEP_ERROR;
    }
    c->out->ledger_id = res.ledger_id;
    c->out->balance_after = res.balance_after;
    return BILLING_STEP_DONE;
}

/* Columns of the lookup. */
enum {
    L_CODE_ID,
    L_BATCH_ID,
    L_CODE_STATUS,
    L_KIND,
    L_AMOUNT,
    L_PLAN_ID,
    L_PLAN_DAYS,
    L_STARTS,
    L_EXPIRES,
    L_SCOPE,
    L_TOTAL,
    L_PER_USER,
    L_BATCH_STATUS,
    L_USES,
    L_MAX_USES
};

static int redeem_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    redeem_ctx_t *c = baton;
    nebula_redeem_result_t *out = c->out;
    const char *args[12], *uid, *idem, *detail;
    nebula_dbd_rows_t rows, cnt;
    apr_int64_t starts, expires, per_user, total, use_no, user_seq, rid;
    int affected = 0, rc;

    c->refused = 0;
    memset(c->out, 0, sizeof(*c->out)); /* each attempt starts afresh */
    args[0] = c->in->code_hash;
    if (nebula_ap_db_select(
            db, "billing_voucher_find",
            "SELECT c.id, c.batch_id, c.status, b.kind, b.amount, b.plan_id, "
            "b.plan_days, "
            "b.starts_at, b.expires_at, b.scope, b.total_uses, b.per_user, b.status, "
            "c.uses, c.max_uses FROM voucher_codes c JOIN voucher_batches b ON b.id = "
            "c.batch_id WHERE c.code_hash = %s",
            1, args, &rows, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (rows.nrows != 1 || strcmp(rows.rows[0][L_CODE_STATUS], "active") != 0) {
        return refuse(c, 400, "invalid_code", "This code is not valid.");
    }
    out->code_id = nebula_ap_db_int(&rows, 0, L_CODE_ID);
    out->batch_id = nebula_ap_db_int(&rows, 0, L_BATCH_ID);
    out->kind = apr_pstrdup(p, rows.rows[0][L_KIND]);
    starts = nebula_ap_db_int(&rows, 0, L_STARTS);
    expires = nebula_ap_db_int(&rows, 0, L_EXPIRES);
    total = nebula_ap_db_int(&rows, 0, L_TOTAL);
    per_user = nebula_ap_db_int(&rows, 0, L_PER_USER);
    if (strcmp(rows.rows[0][L_BATCH_STATUS], "active") != 0) {
        return refuse(c, 403, "voucher_disabled", "This voucher has been disabled.");
    }
    if (nebula_ap_db_int(&rows, 0, L_USES) >= nebula_ap_db_int(&rows, 0, L_MAX_USES)) {
        return refuse(c, 409, "voucher_used", "This code has already been used.");
    }
    if (starts > 0 && c->now < starts) {
        return refuse(c, 403, "voucher_not_yet_valid",
                      "This voucher is not valid before %s.", when(p, starts));
    }
    if (expires > 0 && c->now >= expires) {
        return refuse(c, 403, "voucher_expired", "This voucher expired on %s.",
                      when(p, expires));
    }
    uid = billing_i64(p, c->in->user_id);
    if (nebula_ap_db_select(db, "billing_voucher_user",
                            "SELECT user_group, status FROM users WHERE id = %lld", 1,
                            &uid, &cnt, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (cnt.nrows != 1 || cnt.rows[0][1] == NULL ||
        strcmp(cnt.rows[0][1], "active") != 0) {
        return refuse(c, 403, "user_inactive",
                      "The user does not exist or is not active: it cannot redeem.");
    }
    if ((rc = scope_check(db, c, rows.rows[0][L_SCOPE],
                          cnt.rows[0][0] ? cnt.rows[0][0] : "", err)) != 0) {
        return rc > 0 ? BILLING_STEP_SKIPPED : BILLING_STEP_ERROR;
    }
    args[0] = billing_i64(p, out->batch_id);
    args[1] = uid;
    if (nebula_ap_db_select(
            db, "billing_voucher_peruser",
            "SELECT COUNT(*) FROM voucher_redemptions WHERE batch_id = %lld "
            "AND user_id = %lld",
            2, args, &cnt, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    user_seq = nebula_ap_db_int(&cnt, 0, 0) + 1;
    if (per_user > 0 && user_seq > per_user) {
        return refuse(c, 409, "voucher_limit",
                      "You have already redeemed this voucher (%" APR_INT64_T_FMT
                      " use%s per user).",
                      per_user, per_user == 1 ? "" : "s");
    }
    /* take one use of the code, then of the batch: affected rows decide */
    args[0] = billing_i64(p, out->code_id);
    if (nebula_ap_db_exec(db, "billing_voucher_use",
                          "UPDATE voucher_codes SET uses = uses + 1 WHERE id = %lld AND "
                          "uses < max_uses AND status = 'active'",
                          1, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return refuse(c, 409, "voucher_used", "This code has already been used.");
    }
    args[0] = billing_i64(p, out->batch_id);
    args[1] = billing_i64(p, total);
    if (nebula_ap_db_exec(
            db, total > 0 ? "billing_voucher_batch_use" : "billing_voucher_batch_one",
            total > 0 ? "UPDATE voucher_batches SET redeemed = redeemed + 1 WHERE "
                        "id = %lld AND status = 'active' AND redeemed < %lld"
                      : "UPDATE voucher_batches SET redeemed = redeemed + 1 WHERE "
                        "id = %lld AND status = 'active'",
            total > 0 ? 2 : 1, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return refuse(c, 409, "voucher_used_up",
                      "This voucher has been used up (%" APR_INT64_T_FMT " uses in all).",
                      total);
    }
    args[0] = billing_i64(p, out->code_id);
    if (nebula_ap_db_select(db, "billing_voucher_useno",
                            "SELECT uses FROM voucher_codes WHERE id = %lld", 1, args,
                            &cnt, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    use_no = nebula_ap_db_int(&cnt, 0, 0);
    idem = apr_psprintf(p, "voucher:%" APR_INT64_T_FMT ":%" APR_INT64_T_FMT, out->code_id,
                        use_no);
    detail =
        apr_psprintf(p,
                     "{\"batch_id\":%" APR_INT64_T_FMT ",\"code_id\":%" APR_INT64_T_FMT
                     ",\"use_no\":%" APR_INT64_T_FMT ",\"user_id\":%s}",
                     out->batch_id, out->code_id, use_no, uid);
    if (strcmp(out->kind, "plan") == 0) {
        rc = subscribe_in_txn(db, c, nebula_ap_db_int(&rows, 0, L_PLAN_ID),
                              nebula_ap_db_int(&rows, 0, L_PLAN_DAYS), detail, err);
        out->amount = 0;
    }
    else {
        out->amount = nebula_ap_db_int(&rows, 0, L_AMOUNT);
        rc = credit_in_txn(db, c, out->amount, idem, detail, err);
    }
    if (rc != BILLING_STEP_DONE) {
        return rc;
    }
    args[0] = billing_i64(p, out->batch_id);
    args[1] = billing_i64(p, out->code_id);
    args[2] = uid;
    args[3] = billing_i64(p, use_no);
    args[4] = billing_i64(p, user_seq);
    args[5] = billing_i64(p, out->ledger_id);
    args[6] = out->sub_id ? billing_i64(p, out->sub_id) : NULL;
    args[7] = billing_i64(p, out->amount);
    args[8] = c->in->actor;
    args[9] = c->in->client_ip;
    args[10] = billing_i64(p, c->now);
    if (nebula_ap_db_insert(
            db, "billing_voucher_redemption",
            "INSERT INTO voucher_redemptions (batch_id, code_id, user_id, "
            "use_no, user_seq, ledger_id, sub_id, amount, actor, client_ip, "
            "redeemed_at) VALUES (%lld, %lld, %lld, %lld, %lld, %lld, %lld, "
            "%lld, %s, %s, %lld)",
            11, args, &rid, err) != APR_SUCCESS) {
        if (billing_db_conflict(*err)) {
            /* a concurrent redemption by the same user took this user use */
            return refuse(c, 409, "voucher_limit",
                          "You have already redeemed this voucher (%" APR_INT64_T_FMT
                          " use%s per user).",
                          per_user, per_user == 1 ? "" : "s");
        }
        return BILLING_STEP_ERROR;
    }
    out->redemption_id = rid;
    return BILLING_STEP_DONE;
}

/* ---- the lockout ---------------------------------------------------------- */

/* The latest locked_until of the user's and the IP's scopes (0: none). */
static int locked_until(nebula_ap_db_t *db, apr_pool_t *p, const char *ukey,
                        const char *ikey, apr_int64_t now, apr_int64_t *until,
                        const char **err)
{
    const char *args[3] = {ukey, ikey, billing_i64(p, now)};
    nebula_dbd_rows_t rows;
    int i;

    *until = 0;
    if (nebula_ap_db_select(db, "billing_voucher_locked",
                            "SELECT locked_until FROM redeem_failures WHERE scope_key IN "
                            "(%s, %s) AND locked_until > %lld",
                            3, args, &rows, err) != APR_SUCCESS) {
        return -1;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (nebula_ap_db_int(&rows, i, 0) > *until) {
            *until = nebula_ap_db_int(&rows, i, 0);
        }
    }
    return 0;
}

/* Count one failure for @a key (autocommit statements, each atomic: safe
 * across processes and hosts); lock it once @a limit failures fall in the
 * window. */
static void failure_count(nebula_ap_db_t *db, request_rec *r, const char *key, int limit,
                          apr_int64_t now)
{
    const char *args[4], *err = NULL;
    int affected = 0, tries;

    args[0] = billing_i64(r->pool, now);
    args[1] = key;
    args[2] = billing_i64(r->pool, now - VOUCHER_WINDOW_MS);
    /* a window that is over starts again with this failure */
    if (nebula_ap_db_exec(db, "billing_voucher_fail_reset",
                          "UPDATE redeem_failures SET window_start = %lld, failures = 1 "
                          "WHERE scope_key = %s AND window_start < %lld",
                          3, args, &affected, &err) != APR_SUCCESS) {
        goto failed;
    }
    for (tries = 0; affected == 0 && tries < 3; ++tries) {
        if (nebula_ap_db_exec(db, "billing_voucher_fail_add",
                              "UPDATE redeem_failures SET failures = failures + 1 WHERE "
                              "scope_key = %s",
                              1, args + 1, &affected, &err) != APR_SUCCESS) {
            goto failed;
        }
        if (affected) {
            break;
        }
        args[2] = args[0];
        if (nebula_ap_db_exec(db, "billing_voucher_fail_new",
                              "INSERT INTO redeem_failures (scope_key, window_start, "
                              "failures, locked_until) VALUES (%s, %lld, 1, 0)",
                              2, args + 1, &affected, &err) != APR_SUCCESS &&
            !billing_db_conflict(err)) {
            goto failed;
        }
    }
    args[0] = billing_i64(r->pool, now + VOUCHER_LOCK_MS);
    args[1] = billing_i64(r->pool, now);
    args[2] = key;
    args[3] = billing_i64(r->pool, limit);
    if (nebula_ap_db_exec(
            db, "billing_voucher_fail_lock",
            "UPDATE redeem_failures SET locked_until = %lld, window_start = "
            "%lld, failures = 0 WHERE scope_key = %s AND failures >= %lld",
            4, args, &affected, &err) != APR_SUCCESS) {
        goto failed;
    }
    if (affected) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "NEB02411: voucher redemption locked out for %s until %s after %d "
                      "failures",
                      key, when(r->pool, now + VOUCHER_LOCK_MS), limit);
    }
    return;
failed:
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "NEB02412: cannot count a failed voucher redemption for %s: %s", key,
                  err ? err : "unknown error");
}

static void locked_result(request_rec *r, nebula_redeem_result_t *out, apr_int64_t until,
                          apr_int64_t now)
{
    apr_int64_t secs = (until - now + 999) / 1000, mins = (secs + 59) / 60;

    out->status = 429;
    out->code = "too_many_attempts";
    out->retry_after = secs > 0 ? secs : 1;
    out->message = apr_psprintf(r->pool,
                                "Too many failed redemption attempts; try again after %s "
                                "(in %" APR_INT64_T_FMT " minute%s).",
                                when(r->pool, until), mins, mins == 1 ? "" : "s");
}

/* Create the user's wallet, if it has none, before the redemption's
 * transaction: created inside it, a concurrent creator's row would stay
 * invisible to a MySQL REPEATABLE READ snapshot taken by the lookup. An
 * empty wallet is harmless; a user that does not exist gets none. */
static int wallet_ready(nebula_ap_db_t *db, request_rec *r, apr_int64_t user_id)
{
    const char *args[1] = {billing_i64(r->pool, user_id)}, *err = NULL;
    nebula_dbd_rows_t rows;
    apr_int64_t id;

    if (nebula_ap_db_select(db, "billing_voucher_user_exists",
                            "SELECT id FROM users WHERE id = %lld", 1, args, &rows,
                            &err) != APR_SUCCESS ||
        (rows.nrows == 1 && billing_account_id(db, r->pool, "user", user_id, "quota", 1,
                                               &id, &err) != NEBULA_BILLING_OK)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB02415: voucher redemption: the wallet of user %" APR_INT64_T_FMT
                      " cannot be read or created: %s",
                      user_id, err ? err : "unknown error");
        return -1;
    }
    return 0;
}

static int nebula_billing_redeem(request_rec *r, const nebula_redeem_t *in,
                                 nebula_redeem_result_t *out)
{
    redeem_ctx_t c;
    nebula_ap_db_t *db;
    const char *ukey, *ikey, *err = NULL, *ip;
    apr_int64_t until = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.r = r;
    c.in = in;
    c.out = out;
    c.now = billing_now_ms();
    ip = in->client_ip ? in->client_ip : "";
    ukey = apr_psprintf(r->pool, "u:%" APR_INT64_T_FMT, in->user_id);
    ikey = apr_pstrcat(r->pool, "i:", ip, NULL);
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    if (in->limit) {
        if (locked_until(db, r->pool, ukey, ikey, c.now, &until, &err) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "NEB02413: voucher lockout check failed: %s", err);
            nebula_ap_db_close(db);
            return NEBULA_BILLING_ERROR;
        }
        if (until > c.now) {
            locked_result(r, out, until, c.now);
            ap_log_rerror(
                APLOG_MARK, APLOG_NOTICE, 0, r,
                "NEB02410: voucher redemption refused for user %" APR_INT64_T_FMT
                " from %s by %s: too_many_attempts (locked until %s)",
                in->user_id, ip, in->actor ? in->actor : "", when(r->pool, until));
            nebula_ap_db_close(db);
            return NEBULA_BILLING_REFUSED;
        }
    }
    if (in->code_hash == NULL) {
        refuse(&c, 400, "mistyped",
               "This code is mistyped (its check character does not match): check it "
               "and try again.");
        rc = BILLING_STEP_SKIPPED;
    }
    else if (wallet_ready(db, r, in->user_id) != 0) {
        rc = BILLING_STEP_ERROR;
    }
    else {
        /* retried on busy or deadlock; an error is logged (NEB02301) */
        rc = billing_sched_txn(r->server, db, r->pool, redeem_step, &c, "voucher redemption");
    }
    if (rc == BILLING_STEP_DONE) {
        nebula_ap_db_close(db);
        out->status = 200;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB02414: voucher code %" APR_INT64_T_FMT
                      " (batch %" APR_INT64_T_FMT ") redeemed for user %" APR_INT64_T_FMT
                      " by %s: redemption %" APR_INT64_T_FMT ", ledger %" APR_INT64_T_FMT,
                      out->code_id, out->batch_id, in->user_id, in->actor,
                      out->redemption_id, out->ledger_id);
        return NEBULA_BILLING_OK;
    }
    if (!c.refused) {
        nebula_ap_db_close(db);
        return NEBULA_BILLING_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "NEB02410: voucher redemption refused for user %" APR_INT64_T_FMT
                  " from %s by %s: %s",
                  in->user_id, ip, in->actor ? in->actor : "", out->code);
    if (in->limit) {
        failure_count(db, r, ukey, VOUCHER_USER_FAILURES, c.now);
        failure_count(db, r, ikey, VOUCHER_IP_FAILURES, c.now);
    }
    nebula_ap_db_close(db);
    return NEBULA_BILLING_REFUSED;
}

void billing_voucher_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_redeem);
}

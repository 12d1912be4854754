/* billing_reserve.c: reserve and extend, the optional functions the relay
 * calls before and while relaying (billing_settle.c ends the cycle).
 *
 * reserve   prices the worst case, picks who pays (a subscription's
 *           allowance or the wallet, by the account's billing preference)
 *           and holds the amount with conditional updates: the affected-row
 *           count decides, never a read-then-write.
 * extend    grows the hold of a stream that outruns it.
 * settle    charges the exact cost: the reservation resolved, one consume
 *           ledger row, the key's and user's counters, the request-log row,
 *           all in one transaction. If the database is away, the settlement
 *           goes to the spool (billing_spool.c) and is replayed later.
 * release   gives the hold back (nothing reached the client) and writes the
 *           request-log row.
 * A reservation is resolved exactly once: "UPDATE ... WHERE state = 'held'"
 * decides which call does it. Holds older than NebulaReservationTTL (their
 * process died) are reclaimed by the scheduler; a settlement that arrives
 * after that (a very long stream, a spool replay) is charged as a late
 * settlement without a hold. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "billing_private.h"
#include "nebula_ap_reqlog.h"
#include "nebula_ledger.h"


static const char *const unit_quota = "quota";

/* ---- who pays ------------------------------------------------------------ */

typedef struct {
    apr_int64_t account_id;
    apr_int64_t sub_id;
    const char *unit;
} payer_t;

static int allowed_in(const char *json_list, const char *value)
{
    json_t *j;
    size_t i;
    int ok = 0;

    if (json_list == NULL || !*json_list) {
        return 1;
    }
    if ((j = json_loads(json_list, 0, NULL)) == NULL || !json_is_array(j)) {
        json_decref(j);
        return json_list[0] == '\0';
    }
    if (json_array_size(j) == 0) {
        ok = 1;
    }
    for (i = 0; i < json_array_size(j) && !ok; ++i) {
        const char *v = json_string_value(json_array_get(j, i));
        ok = v && value && strcmp(v, value) == 0;
    }
    json_decref(j);
    return ok;
}

/* The wallet, its billing preference, and the subscriptions that may pay
 * for @a req, in the order they are tried. */
static int payers(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                  apr_array_header_t *out, const char **err)
{
    apr_pool_t *p = r->pool;
    const char *args[5], *pref, *kind;
    nebula_dbd_rows_t rows, subs;
    apr_int64_t wallet, org_id;
    payer_t *w;
    int i, rc, subs_first, use_subs, use_wallet;

    args[0] = billing_i64(p, req->user_id);
    if (nebula_ap_db_select(db, "billing_payer",
                            "SELECT COALESCE(u.org_id, 0), COALESCE(a.id, 0), "
                            "COALESCE(a.billing_preference, 'subscription_first') FROM users u "
                            "LEFT JOIN accounts a ON a.owner_kind = CASE WHEN u.org_id IS NULL "
                            "THEN 'user' ELSE 'org' END AND a.owner_id = COALESCE(u.org_id, "
                            "u.id) WHERE u.id = %lld",
                            1, args, &rows, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (rows.nrows != 1) {
        *err = "the key's user does not exist";
        return NEBULA_BILLING_INSUFFICIENT;
    }
    org_id = nebula_ap_db_int(&rows, 0, 0);
    wallet = nebula_ap_db_int(&rows, 0, 1);
    pref = rows.rows[0][2];
    kind = org_id ? "org" : "user";
    if (wallet == 0
        && (rc = billing_account_id(db, p, kind, org_id ? org_id : req->user_id, unit_quota, 1,
                                    &wallet, err))
               != NEBULA_BILLING_OK) {
        return rc;
    }
    subs_first = strcmp(pref, "wallet_first") != 0;
    use_subs = strcmp(pref, "wallet_only") != 0;
    use_wallet = strcmp(pref, "subscription_only") != 0;
    if (use_wallet && !subs_first) {
        w = apr_array_push(out);
        w->account_id = wallet, w->sub_id = 0, w->unit = unit_quota;
    }
    if (use_subs) {
        args[0] = billing_i64(p, req->key_id);
        args[1] = billing_i64(p, req->user_id);
        args[2] = billing_i64(p, org_id);
        args[3] = billing_i64(p, billing_now_ms());
        if (nebula_ap_db_select(
                db, "billing_payer_subs",
                "SELECT s.id, s.account_id, p.metric, p.allowed_models, p.allowed_groups "
                "FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.status = "
                "'active' AND ((s.subject_kind = 'key' AND s.subject_id = %lld) OR "
                "(s.subject_kind = 'user' AND s.subject_id = %lld) OR (s.subject_kind = "
                "'org' AND s.subject_id = %lld)) AND s.starts_at <= %lld AND s.account_id > 0 "
                "ORDER BY CASE s.subject_kind WHEN 'key' THEN 0 WHEN 'user' THEN 1 ELSE 2 "
                "END, s.id",
                4, args, &subs, err)
            != APR_SUCCESS) {
            return NEBULA_BILLING_ERROR;
        }
        for (i = 0; i < subs.nrows; ++i) {
            if (!allowed_in(subs.rows[i][3], req->model)
                || !allowed_in(subs.rows[i][4], req->group)) {
                continue;
            }
            w = apr_array_push(out);
            w->sub_id = nebula_ap_db_int(&subs, i, 0);
            w->account_id = nebula_ap_db_int(&subs, i, 1);
            w->unit = apr_pstrdup(p, subs.rows[i][2]);
        }
    }
    if (use_wallet && subs_first) {
        w = apr_array_push(out);
        w->account_id = wallet, w->sub_id = 0, w->unit = unit_quota;
    }
    return NEBULA_BILLING_OK;
}

/* What @a usage counts in @a unit, given its quota cost. */
apr_int64_t billing_in_unit(const char *unit, const nebula_usage_t *u, apr_int64_t cost_q)
{
    apr_int64_t t;

    if (strcmp(unit, "tokens") == 0) {
        t = (u->prompt_tokens > 0 ? u->prompt_tokens : 0)
            + (u->completion_tokens > 0 ? u->completion_tokens : 0);
        if (u->prompt_excludes_cache) {
            t += (u->cached_tokens > 0 ? u->cached_tokens : 0)
                 + (u->cache_write_tokens > 0 ? u->cache_write_tokens : 0);
        }
        return t;
    }
    if (strcmp(unit, "requests") == 0) {
        return 1;
    }
    return cost_q;
}

/* ---- reserve ------------------------------------------------------------- */

/* Inside a transaction: add @a hold to the account's reserved amount and
 * take @a key_hold from the key's cap, each only if it fits (the affected
 * rows decide). OK, INSUFFICIENT (*err says which) or ERROR. */
static int hold_funds(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t account_id,
                      apr_int64_t key_id, apr_int64_t hold, apr_int64_t key_hold,
                      const char **err)
{
    const char *args[4];
    int affected = 0;

    args[0] = billing_i64(p, hold);
    args[1] = billing_i64(p, billing_now_ms());
    args[2] = billing_i64(p, account_id);
    args[3] = args[0];
    if (nebula_ap_db_exec(db, "billing_res_hold",
                          "UPDATE accounts SET reserved = reserved + %lld, updated_at = %lld "
                          "WHERE id = %lld AND balance - reserved - %lld >= -overdraft_limit",
                          4, args, &affected, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (affected == 0) {
        *err = "not enough available balance";
        return NEBULA_BILLING_INSUFFICIENT;
    }
    args[0] = billing_i64(p, key_hold);
    args[1] = billing_i64(p, key_id);
    args[2] = args[0];
    if (nebula_ap_db_exec(db, "billing_res_key",
                          "UPDATE api_keys SET remain_quota = remain_quota - CASE WHEN "
                          "unlimited_quota = 1 THEN 0 ELSE %lld END WHERE id = %lld AND "
                          "(unlimited_quota = 1 OR remain_quota >= %lld)",
                          3, args, &affected, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (affected == 0) {
        *err = "the key's quota is used up";
        return NEBULA_BILLING_INSUFFICIENT;
    }
    return NEBULA_BILLING_OK;
}

/* Hold @a hold on @a pay's account and @a key_hold on the key, in one
 * transaction: OK, INSUFFICIENT or ERROR. */
static int reserve_txn(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                       const payer_t *pay, apr_int64_t hold, apr_int64_t key_hold,
                       const nebula_usage_t *worst, const char **caps, const char **err)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);
    apr_pool_t *p = r->pool;
    apr_int64_t now = billing_now_ms();
    const char *args[10];
    int rc;

    if (nebula_ap_db_begin(db, err) != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    args[0] = req->request_id;
    args[1] = billing_i64(p, pay->account_id);
    args[2] = billing_i64(p, req->key_id);
    args[3] = pay->sub_id ? billing_i64(p, pay->sub_id) : NULL;
    args[4] = billing_i64(p, hold);
    args[5] = billing_i64(p, key_hold);
    args[6] = req->model ? req->model : "";
    args[7] = billing_i64(p, now);
    args[8] = billing_i64(p, now + apr_time_as_msec(conf->reservation_ttl));
    if (nebula_ap_db_exec(db, "billing_res_insert",
                          "INSERT INTO reservations (id, account_id, key_id, subscription_id, "
                          "amount, key_amount, state, model, created_at, expires_at) VALUES "
                          "(%s, %lld, %lld, %lld, %lld, %lld, 'held', %s, %lld, %lld)",
                          9, args, NULL, err)
        != APR_SUCCESS) {
        goto fail;
    }
    if ((rc = hold_funds(db, p, pay->account_id, req->key_id, hold, key_hold, err))
        != NEBULA_BILLING_OK) {
        nebula_ap_db_rollback(db);
        return rc;
    }
    if ((rc = billing_caps_reserve(db, r, req, worst, key_hold, caps, err))
        != NEBULA_BILLING_OK) {
        nebula_ap_db_rollback(db);
        return rc;
    }
    if (*caps) {
        args[0] = *caps;
        args[1] = req->request_id;
        if (nebula_ap_db_exec(db, "billing_res_caps",
                              "UPDATE reservations SET caps = %s WHERE id = %s", 2, args, NULL,
                              err)
            != APR_SUCCESS) {
            goto fail;
        }
    }
    if (nebula_ap_db_commit(db, err) != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    return NEBULA_BILLING_OK;
fail:
    nebula_ap_db_rollback(db);
    return NEBULA_BILLING_ERROR;
}

static int nebula_billing_reserve(request_rec *r, const nebula_req_t *req, nebula_reservation_t **out)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);
    apr_array_header_t *pays;
    nebula_reservation_t *res;
    nebula_ap_db_t *db;
    nebula_usage_t worst;
    apr_int64_t cost_q = 0;
    const char *err = NULL;
    int i, rc, attempt;

    *out = NULL;
    if (!conf->enabled) {
        return NEBULA_BILLING_OK;
    }
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    res = apr_pcalloc(r->pool, sizeof(*res));
    res->id = req->request_id;
    res->req = req;
    if ((rc = billing_price_load(db, r, req->model, req->group, &res->price))
        != NEBULA_BILLING_OK) {
        goto done;
    }
    billing_price_worst_usage(r, req, &worst);
    if ((rc = billing_price_compute(r, &res->price, &worst, req->calls, &cost_q))
        != NEBULA_BILLING_OK) {
        rc = NEBULA_BILLING_INSUFFICIENT; /* a prompt too large to price */
        goto done;
    }
    pays = apr_array_make(r->pool, 4, sizeof(payer_t));
    if ((rc = payers(db, r, req, pays, &err)) != NEBULA_BILLING_OK) {
        goto done;
    }
    rc = NEBULA_BILLING_INSUFFICIENT;
    for (i = 0; i < pays->nelts && rc == NEBULA_BILLING_INSUFFICIENT; ++i) {
        const payer_t *pay = &APR_ARRAY_IDX(pays, i, payer_t);
        apr_int64_t hold = billing_in_unit(pay->unit, &worst, cost_q);

        for (attempt = 0; attempt < 3; ++attempt) {
            rc = reserve_txn(db, r, req, pay, hold, cost_q, &worst, &res->caps, &err);
            if (rc != NEBULA_BILLING_ERROR || !billing_db_retriable(err)) {
                break;
            }
        }
        if (rc == NEBULA_BILLING_OK) {
            res->account_id = pay->account_id;
            res->sub_id = pay->sub_id;
            res->unit = pay->unit;
            res->hold = hold;
            res->key_hold = cost_q;
            *out = res;
        }
        else if (rc == NEBULA_BILLING_INSUFFICIENT && err
                 && (strstr(err, "key's quota") || strstr(err, "usage cap"))) {
            break; /* the key's quota or a usage cap stops every payer */
        }
    }
done:
    if (rc == NEBULA_BILLING_ERROR) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB02030: cannot reserve for request %s: %s", req->request_id,
                      err ? err : "database unavailable");
    }
    else if (rc == NEBULA_BILLING_INSUFFICIENT) {
        apr_table_setn(r->notes, NEBULA_BILLING_NOTE_REFUSAL,
                       err ? apr_pstrdup(r->pool, err) : "no balance or plan can pay");
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "NEB02031: request %s refused: %s (worst case %" APR_INT64_T_FMT
                      " units)", req->request_id, err ? err : "no payer", cost_q);
    }
    nebula_ap_db_close(db);
    return rc;
}

/* ---- extend -------------------------------------------------------------- */

/* Grow the hold by @a more (and the key's by @a more_q): OK, INSUFFICIENT
 * or ERROR. */
static int extend_txn(nebula_ap_db_t *db, request_rec *r, nebula_reservation_t *res,
                      apr_int64_t more, apr_int64_t more_q, const char **err)
{
    apr_pool_t *p = r->pool;
    const char *args[4];
    int affected = 0, rc;

    if (nebula_ap_db_begin(db, err) != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    args[0] = billing_i64(p, more);
    args[1] = billing_i64(p, more_q);
    args[2] = res->id;
    if (nebula_ap_db_exec(db, "billing_res_grow",
                          "UPDATE reservations SET amount = amount + %lld, key_amount = "
                          "key_amount + %lld WHERE id = %s AND state = 'held'",
                          3, args, &affected, err)
        != APR_SUCCESS) {
        goto fail;
    }
    if (affected == 0) { /* reclaimed meanwhile: the late settlement will charge */
        nebula_ap_db_rollback(db);
        return NEBULA_BILLING_OK;
    }
    if ((rc = hold_funds(db, p, res->account_id, res->req->key_id, more, more_q, err))
        != NEBULA_BILLING_OK) {
        nebula_ap_db_rollback(db);
        return rc;
    }
    return nebula_ap_db_commit(db, err) == APR_SUCCESS ? NEBULA_BILLING_OK
                                                        : NEBULA_BILLING_ERROR;
fail:
    nebula_ap_db_rollback(db);
    return NEBULA_BILLING_ERROR;
}

static int nebula_billing_extend(request_rec *r, nebula_reservation_t *res,
                          const nebula_usage_t *so_far)
{
    apr_int64_t cost_q = 0, need, more, more_q;
    nebula_ap_db_t *db;
    const char *err = NULL;
    int rc;

    if (res == NULL || res->resolved) {
        return NEBULA_BILLING_OK;
    }
    if (billing_price_compute(r, &res->price, so_far, res->req->calls, &cost_q)
        != NEBULA_BILLING_OK) {
        return NEBULA_BILLING_OK; /* settle refuses absurd usage */
    }
    need = billing_in_unit(res->unit, so_far, cost_q);
    if (need <= res->hold && cost_q <= res->key_hold) {
        return NEBULA_BILLING_OK; /* the common case: no database */
    }
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    /* ask for half again what is needed now; settle for exactly that if
     * the account cannot give more */
    more = need + need / 2 - res->hold;
    more_q = cost_q + cost_q / 2 - res->key_hold;
    more = more > 0 ? more : 0;
    more_q = more_q > 0 ? more_q : 0;
    rc = extend_txn(db, r, res, more, more_q, &err);
    if (rc == NEBULA_BILLING_INSUFFICIENT) {
        more = need > res->hold ? need - res->hold : 0;
        more_q = cost_q > res->key_hold ? cost_q - res->key_hold : 0;
        rc = extend_txn(db, r, res, more, more_q, &err);
    }
    if (rc == NEBULA_BILLING_OK) {
        res->hold += more;
        res->key_hold += more_q;
    }
    else if (rc == NEBULA_BILLING_ERROR) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB02032: cannot extend the hold of request %s: %s", res->id, err);
    }
    nebula_ap_db_close(db);
    return rc;
}

static int nebula_billing_price(request_rec *r, const nebula_req_t *req, const nebula_usage_t *usage,
                         apr_int64_t *cost)
{
    nebula_ap_db_t *db;
    int rc;

    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    rc = billing_price_usage(db, r, req->model, req->group, usage, req->calls, cost);
    nebula_ap_db_close(db);
    return rc;
}

static int nebula_billing_post(request_rec *r, const nebula_posting_t *np,
                           nebula_posting_result_t *out)
{
    return billing_post(r->server, r->pool, np, out);
}

/* ---- stale holds --------------------------------------------------------- */

int billing_reserve_reclaim(server_rec *s, apr_pool_t *p, apr_int64_t now_ms)
{
    nebula_ap_db_t *db;
    nebula_dbd_rows_t rows;
    const char *args[4], *err = NULL;
    int i, n = 0, affected;

    if ((db = nebula_ap_db_open(p, s)) == NULL) {
        return 0;
    }
    args[0] = billing_i64(p, now_ms);
    if (nebula_ap_db_select(db, "billing_res_stale",
                            "SELECT id, account_id, key_id, amount, key_amount, "
                            "COALESCE(caps, '') FROM reservations WHERE state = 'held' AND "
                            "expires_at < %lld ORDER BY expires_at LIMIT 200",
                            1, args, &rows, &err)
        != APR_SUCCESS) {
        goto out;
    }
    for (i = 0; i < rows.nrows; ++i) {
        affected = 0;
        if (nebula_ap_db_begin(db, &err) != APR_SUCCESS) {
            break;
        }
        args[0] = billing_i64(p, now_ms);
        args[1] = rows.rows[i][0];
        if (nebula_ap_db_exec(db, "billing_res_expire",
                              "UPDATE reservations SET state = 'expired', resolved_at = %lld "
                              "WHERE id = %s AND state = 'held'",
                              2, args, &affected, &err)
            != APR_SUCCESS) {
            nebula_ap_db_rollback(db);
            break;
        }
        if (affected == 0) { /* settled meanwhile */
            nebula_ap_db_rollback(db);
            continue;
        }
        args[0] = rows.rows[i][3];
        args[1] = billing_i64(p, now_ms);
        args[2] = rows.rows[i][1];
        if (nebula_ap_db_exec(db, "billing_res_unhold",
                              "UPDATE accounts SET reserved = reserved - %lld, updated_at = "
                              "%lld WHERE id = %lld",
                              3, args, NULL, &err)
            != APR_SUCCESS) {
            nebula_ap_db_rollback(db);
            break;
        }
        args[0] = rows.rows[i][4];
        args[1] = "0";
        args[2] = rows.rows[i][2];
        if (nebula_ap_db_exec(db, "billing_res_key_settle",
                              "UPDATE api_keys SET remain_quota = remain_quota + CASE WHEN "
                              "unlimited_quota = 1 THEN 0 ELSE %lld END, used_quota = "
                              "used_quota + %lld WHERE id = %lld",
                              3, args, NULL, &err)
                != APR_SUCCESS
            || billing_caps_correct(db, p, rows.rows[i][5], NULL, 0, 1, &err)
                   != NEBULA_BILLING_OK
            || nebula_ap_db_commit(db, &err) != APR_SUCCESS) {
            nebula_ap_db_rollback(db);
            break;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB02038: reclaimed the stale hold of request %s (%s units on account "
                     "%s): its process never settled it",
                     rows.rows[i][0], rows.rows[i][3], rows.rows[i][1]);
        ++n;
    }
out:
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "NEB02039: reclaiming stale holds: %s", err);
    }
    nebula_ap_db_close(db);
    return n;
}

void billing_reserve_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_reserve);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_extend);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_price);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_post);
}

/* billing_settle.c: settle and release, the end of every billed request.
 *
 * One transaction per request: the reservation resolved ("WHERE state =
 * 'held'" decides who does it, so it happens once), one consume ledger row,
 * the key's and the user's counters and the request-log row. When the
 * database cannot be reached the settlement is written to the spool
 * (billing_spool.c) as a JSON record and replayed from there by the
 * scheduler; the replay runs the same transaction. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "billing_private.h"
#include "nebula_ap_reqlog.h"
#include "nebula_ledger.h"

/* One settlement or release, from a live request or from the spool. */
typedef struct {
    int release;
    const char *rid;
    apr_int64_t account_id, key_id, user_id, sub_id;
    const char *unit;
    apr_int64_t hold, key_hold;
    apr_int64_t charge;  /* in unit */
    apr_int64_t cost_q;  /* in quota units: the key, the user, the log */
    const char *detail;  /* the consume row's detail */
    const char *caps;    /* usage-cap holds to correct */
    apr_int64_t calls;
    nebula_reqlog_t log;
} settlement_t;

#define SETTLE_DONE 100 /* settle_txn: already resolved, nothing to do */

/* ---- settle and release -------------------------------------------------- */

/* The consume row's amount: the charge, capped so that the account stays
 * within its overdraft limit (what is capped is logged and kept in the
 * row's detail as "uncollected"). */
static int capped_charge(nebula_ap_db_t *db, apr_pool_t *p, const settlement_t *st, int late,
                         apr_int64_t *charge, const char **err)
{
    nebula_dbd_rows_t rows;
    const char *args[2];
    apr_int64_t room, held = late ? 0 : st->hold;

    *charge = st->charge;
    if (st->charge <= held) {
        return NEBULA_BILLING_OK;
    }
    args[0] = billing_i64(p, billing_now_ms());
    args[1] = billing_i64(p, st->account_id);
    if (nebula_ap_db_exec(db, "billing_acct_lock",
                          "UPDATE accounts SET updated_at = %lld WHERE id = %lld", 2, args,
                          NULL, err)
            != APR_SUCCESS
        || nebula_ap_db_select(db, "billing_acct_room",
                               "SELECT balance - reserved + overdraft_limit FROM accounts "
                               "WHERE id = %lld",
                               1, args + 1, &rows, err)
               != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    room = (rows.nrows ? nebula_ap_db_int(&rows, 0, 0) : 0) + held;
    if (room < st->charge) {
        *charge = room > 0 ? room : 0;
    }
    return NEBULA_BILLING_OK;
}

/* One settlement's writes inside the caller's transaction: OK (keep them),
 * SETTLE_DONE (already resolved: undo what was written) or ERROR (undo). */
static int settle_body(nebula_ap_db_t *db, apr_pool_t *p, server_rec *s, const settlement_t *st,
                       const char **err)
{
    apr_int64_t now = billing_now_ms(), charge = 0;
    nebula_posting_result_t out;
    billing_post_t bp;
    const char *args[6];
    int affected = 0, late = 0, rc;

    args[0] = st->release ? "released" : "settled";
    args[1] = billing_i64(p, st->cost_q);
    args[2] = billing_i64(p, now);
    args[3] = st->rid;
    if (nebula_ap_db_exec(db, "billing_res_resolve",
                          "UPDATE reservations SET state = %s, cost = %lld, resolved_at = %lld "
                          "WHERE id = %s AND state = 'held'",
                          4, args, &affected, err)
        != APR_SUCCESS) {
        goto fail;
    }
    if (affected == 0) {
        if (st->release) {
            goto done; /* settled, released or reclaimed already */
        }
        /* the hold was reclaimed (its process looked dead): charge late */
        if (nebula_ap_db_exec(db, "billing_res_late",
                              "UPDATE reservations SET state = 'settled', cost = %lld, "
                              "resolved_at = %lld WHERE id = %s AND state = 'expired'",
                              3, args + 1, &affected, err)
            != APR_SUCCESS) {
            goto fail;
        }
        if (affected == 0) {
            goto done;
        }
        late = 1;
    }
    if (st->release) {
        args[0] = billing_i64(p, st->hold);
        args[1] = billing_i64(p, now);
        args[2] = billing_i64(p, st->account_id);
        if (nebula_ap_db_exec(db, "billing_res_unhold",
                              "UPDATE accounts SET reserved = reserved - %lld, updated_at = "
                              "%lld WHERE id = %lld",
                              3, args, NULL, err)
            != APR_SUCCESS) {
            goto fail;
        }
    }
    else {
        if (capped_charge(db, p, st, late, &charge, err) != NEBULA_BILLING_OK) {
            goto fail;
        }
        memset(&bp, 0, sizeof(bp));
        bp.account_id = st->account_id;
        bp.kind = NEBULA_LEDGER_CONSUME;
        bp.amount = -charge;
        bp.reserved_delta = late ? 0 : -st->hold;
        bp.request_id = st->rid;
        bp.idem_key = apr_pstrcat(p, "consume:", st->rid, NULL);
        bp.actor = apr_psprintf(p, "key:%" APR_INT64_T_FMT, st->key_id);
        bp.detail = charge == st->charge
                        ? st->detail
                        : apr_psprintf(p, "{\"uncollected\":%" APR_INT64_T_FMT ",\"usage\":%s}",
                                       st->charge - charge, st->detail ? st->detail : "null");
        if (charge != st->charge) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "NEB02033: request %s cost %" APR_INT64_T_FMT " but account %"
                         APR_INT64_T_FMT " could cover only %" APR_INT64_T_FMT
                         " within its overdraft limit",
                         st->rid, st->charge, st->account_id, charge);
        }
        rc = billing_ledger_post(db, p, &bp, &out, err);
        if (rc == NEBULA_BILLING_DUPLICATE) {
            goto done;
        }
        if (rc != NEBULA_BILLING_OK) {
            goto fail;
        }
    }
    args[0] = billing_i64(p, (late ? 0 : st->key_hold) - st->cost_q);
    args[1] = billing_i64(p, st->cost_q);
    args[2] = billing_i64(p, st->key_id);
    if (nebula_ap_db_exec(db, "billing_res_key_settle",
                          "UPDATE api_keys SET remain_quota = remain_quota + CASE WHEN "
                          "unlimited_quota = 1 THEN 0 ELSE %lld END, used_quota = used_quota + "
                          "%lld WHERE id = %lld",
                          3, args, NULL, err)
        != APR_SUCCESS) {
        goto fail;
    }
    /* a late settlement's cap holds were returned when it was reclaimed */
    if (!late && billing_caps_correct(db, p, st->caps, st->release ? NULL : &st->log.usage,
                                      st->cost_q, st->calls, err)
                     != NEBULA_BILLING_OK) {
        goto fail;
    }
    args[0] = billing_i64(p, st->cost_q);
    args[1] = billing_i64(p, st->user_id);
    if (nebula_ap_db_exec(db, "billing_user_used",
                          "UPDATE users SET used_quota = used_quota + %lld, request_count = "
                          "request_count + 1 WHERE id = %lld",
                          2, args, NULL, err)
        != APR_SUCCESS) {
        goto fail;
    }
    if (nebula_ap_reqlog_insert(db, p, &st->log, st->cost_q, st->account_id, err)
        != APR_SUCCESS) {
        goto fail;
    }
    return NEBULA_BILLING_OK;
done:
    return SETTLE_DONE;
fail:
    return NEBULA_BILLING_ERROR;
}

/* One settlement in one transaction: OK, SETTLE_DONE (already resolved),
 * or ERROR (rolled back). */
static int settle_txn(nebula_ap_db_t *db, apr_pool_t *p, server_rec *s, const settlement_t *st,
                      const char **err)
{
    int rc;

    if (nebula_ap_db_begin(db, err) != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    rc = settle_body(db, p, s, st, err);
    if (rc != NEBULA_BILLING_OK) {
        nebula_ap_db_rollback(db);
        return rc;
    }
    return nebula_ap_db_commit(db, err) == APR_SUCCESS ? NEBULA_BILLING_OK
                                                        : NEBULA_BILLING_ERROR;
}

/* ---- the spool record ---------------------------------------------------- */

#define JSTR(v) ((v) ? json_string(v) : json_null())

/* @a s as a JSON string literal (quotes and escapes), in @a p. */
static const char *json_quote(apr_pool_t *p, const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    const char *out = t ? apr_pstrdup(p, t) : "\"\"";

    free(t);
    json_decref(j);
    return out;
}

static const char *settlement_json(apr_pool_t *p, const settlement_t *st)
{
    const nebula_req_t *q = st->log.req;
    json_t *j = json_pack(
        "{s:i,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:I,"
        "s:{s:I,s:o,s:o,s:o,s:i,s:o,s:I,s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:i}}",
        "v", 1, "op", st->release ? "release" : "settle", "rid", st->rid,
        "account_id", (json_int_t)st->account_id, "key_id", (json_int_t)st->key_id,
        "user_id", (json_int_t)st->user_id, "sub_id", (json_int_t)st->sub_id,
        "unit", st->unit, "hold", (json_int_t)st->hold, "key_hold", (json_int_t)st->key_hold,
        "charge", (json_int_t)st->charge, "cost_q", (json_int_t)st->cost_q,
        "detail", JSTR(st->detail), "caps", JSTR(st->caps), "calls", (json_int_t)st->calls,
        "log",
        "received", (json_int_t)apr_time_as_msec(q->received), "model", JSTR(q->model),
        "upstream_model", JSTR(q->upstream_model), "client_ip", JSTR(q->client_ip),
        "stream", q->stream, "group", JSTR(q->group),
        "channel_id", (json_int_t)st->log.channel_id, "attempts", (json_int_t)st->log.attempts,
        "status", (json_int_t)st->log.status, "latency_ms", (json_int_t)st->log.latency_ms,
        "ttfb_ms", (json_int_t)st->log.ttfb_ms, "estimated", st->log.usage.estimated,
        "prompt", (json_int_t)st->log.usage.prompt_tokens,
        "completion", (json_int_t)st->log.usage.completion_tokens,
        "error", JSTR(st->log.error), "end_reason", JSTR(st->log.end_reason),
        "cached", (json_int_t)st->log.usage.cached_tokens,
        "cache_write", (json_int_t)st->log.usage.cache_write_tokens,
        "key", (json_int_t)q->key_id, "excl", st->log.usage.prompt_excludes_cache);
    char *text;
    const char *line;

    if (j == NULL) {
        return NULL;
    }
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) {
        return NULL;
    }
    line = apr_pstrdup(p, text);
    free(text);
    return line;
}

static const char *jstr(apr_pool_t *p, json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? apr_pstrdup(p, v) : NULL;
}

static apr_int64_t jint(json_t *o, const char *k)
{
    return (apr_int64_t)json_integer_value(json_object_get(o, k));
}

static int settlement_parse(apr_pool_t *p, const char *line, settlement_t *st)
{
    json_t *j = json_loads(line, 0, NULL), *l;
    nebula_req_t *q;
    const char *op;

    if (j == NULL || jint(j, "v") != 1 || (l = json_object_get(j, "log")) == NULL
        || (op = json_string_value(json_object_get(j, "op"))) == NULL
        || json_string_value(json_object_get(j, "rid")) == NULL
        || json_string_value(json_object_get(j, "unit")) == NULL) {
        json_decref(j);
        return 0;
    }
    memset(st, 0, sizeof(*st));
    q = apr_pcalloc(p, sizeof(*q));
    st->release = strcmp(op, "release") == 0;
    st->rid = jstr(p, j, "rid");
    st->account_id = jint(j, "account_id");
    st->key_id = jint(j, "key_id");
    st->user_id = jint(j, "user_id");
    st->sub_id = jint(j, "sub_id");
    st->unit = jstr(p, j, "unit");
    st->hold = jint(j, "hold");
    st->key_hold = jint(j, "key_hold");
    st->charge = jint(j, "charge");
    st->cost_q = jint(j, "cost_q");
    st->detail = jstr(p, j, "detail");
    st->caps = jstr(p, j, "caps");
    st->calls = jint(j, "calls");
    q->request_id = st->rid;
    q->received = apr_time_from_msec(jint(l, "received"));
    q->model = jstr(p, l, "model");
    q->upstream_model = jstr(p, l, "upstream_model");
    q->client_ip = jstr(p, l, "client_ip");
    q->group = jstr(p, l, "group");
    q->stream = (int)jint(l, "stream");
    q->key_id = jint(l, "key");
    q->user_id = st->user_id;
    st->log.req = q;
    st->log.channel_id = jint(l, "channel_id");
    st->log.attempts = (int)jint(l, "attempts");
    st->log.status = (int)jint(l, "status");
    st->log.latency_ms = jint(l, "latency_ms");
    st->log.ttfb_ms = jint(l, "ttfb_ms");
    st->log.error = jstr(p, l, "error");
    st->log.end_reason = jstr(p, l, "end_reason");
    st->log.usage.prompt_tokens = jint(l, "prompt");
    st->log.usage.completion_tokens = jint(l, "completion");
    st->log.usage.cached_tokens = jint(l, "cached");
    st->log.usage.cache_write_tokens = jint(l, "cache_write");
    st->log.usage.estimated = (int)jint(l, "estimated");
    st->log.usage.prompt_excludes_cache = (int)jint(l, "excl");
    json_decref(j);
    return 1;
}

/* Run @a st with retries; ERROR only when the database stays away. */
static int settle_run(server_rec *s, apr_pool_t *p, const settlement_t *st, const char **err)
{
    nebula_ap_db_t *db;
    int rc = NEBULA_BILLING_ERROR, attempt;

    if ((db = nebula_ap_db_open(p, s)) == NULL) {
        *err = "no database connection";
        return NEBULA_BILLING_ERROR;
    }
    for (attempt = 0; attempt < 3; ++attempt) {
        rc = settle_txn(db, p, s, st, err);
        if (rc != NEBULA_BILLING_ERROR || !billing_db_retriable(*err)) {
            break;
        }
    }
    nebula_ap_db_close(db);
    return rc == SETTLE_DONE ? NEBULA_BILLING_OK : rc;
}

/* A live request's settlement, as a unit of a group commit (billing_group.c):
 * settling is safe to run again, whatever became of an earlier run. */
typedef struct {
    server_rec *s;
    const settlement_t *st;
} settle_unit_t;

static int settle_unit(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    const settle_unit_t *u = baton;

    return settle_body(db, p, u->s, u->st, err);
}

static int settle_alone(server_rec *s, apr_pool_t *p, void *baton, const char **err)
{
    return settle_run(s, p, ((const settle_unit_t *)baton)->st, err);
}

static int settle_grouped(server_rec *s, apr_pool_t *p, const settlement_t *st,
                          const char **err)
{
    settle_unit_t u;
    int rc;

    u.s = s;
    u.st = st;
    rc = billing_group_run(s, p, settle_unit, settle_alone, &u, err);
    return rc == SETTLE_DONE ? NEBULA_BILLING_OK : rc;
}

int billing_reserve_settle_record(server_rec *s, apr_pool_t *p, const char *line)
{
    settlement_t st;
    const char *err = NULL;
    int rc;

    if (!settlement_parse(p, line, &st)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02034: dropped an unreadable spool record: %.200s", line);
        return NEBULA_BILLING_INVALID;
    }
    if ((rc = settle_run(s, p, &st, &err)) == NEBULA_BILLING_OK) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "NEB02035: replayed the spooled %s of request %s",
                     st.release ? "release" : "settlement", st.rid);
    }
    return rc;
}

/* Settle or release now, or spool when the database is away. */
static int resolve(request_rec *r, nebula_reservation_t *res, const nebula_reqlog_t *log,
                   int release, apr_int64_t *cost)
{
    settlement_t st;
    apr_int64_t cost_q = 0;
    const char *err = NULL, *line;
    const nebula_usage_t *u = &log->usage;
    int rc;

    if (cost) {
        *cost = 0;
    }
    if (res == NULL || res->resolved) {
        return NEBULA_BILLING_OK;
    }
    res->resolved = 1;
    memset(&st, 0, sizeof(st));
    st.release = release;
    st.rid = res->id;
    st.account_id = res->account_id;
    st.key_id = res->req->key_id;
    st.user_id = res->req->user_id;
    st.sub_id = res->sub_id;
    st.unit = res->unit;
    st.hold = res->hold;
    st.key_hold = res->key_hold;
    st.caps = res->caps;
    st.calls = res->req->calls;
    st.log = *log;
    if (!release) {
        if (billing_price_compute(r, &res->price, u, res->req->calls, &cost_q)
            != NEBULA_BILLING_OK) {
            /* usage that cannot be trusted: charge the hold, never less,
             * never a credit */
            st.charge = res->hold;
            st.cost_q = res->key_hold;
            st.detail = apr_psprintf(r->pool, "{\"model\":\"%s\",\"refused_usage\":true}",
                                     res->price.priced ? res->price.model : "");
        }
        else {
            st.cost_q = cost_q;
            st.charge = billing_in_unit(res->unit, u, cost_q);
            st.detail = apr_psprintf(
                r->pool,
                "{\"model\":%s,\"prompt\":%" APR_INT64_T_FMT ",\"completion\":%" APR_INT64_T_FMT
                ",\"cached\":%" APR_INT64_T_FMT ",\"cache_write\":%" APR_INT64_T_FMT
                ",\"estimated\":%s,\"unit\":\"%s\",\"quota\":%" APR_INT64_T_FMT "}",
                json_quote(r->pool, res->req->model), u->prompt_tokens > 0 ? u->prompt_tokens : 0,
                u->completion_tokens > 0 ? u->completion_tokens : 0,
                u->cached_tokens > 0 ? u->cached_tokens : 0,
                u->cache_write_tokens > 0 ? u->cache_write_tokens : 0,
                u->estimated ? "true" : "false", res->unit, cost_q);
        }
    }
    if ((rc = settle_grouped(r->server, r->pool, &st, &err)) == NEBULA_BILLING_OK) {
        if (cost) {
            *cost = st.cost_q;
        }
        if (!release) {
            apr_table_setn(r->notes, NEBULA_BILLING_NOTE_BILLED, "1");
        }
        return NEBULA_BILLING_OK;
    }
    /* the database is away: keep the settlement on disk, fsynced */
    if ((line = settlement_json(r->pool, &st)) != NULL
        && billing_spool_write(r->server, r->pool, line) == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB02036: database unavailable (%s): %s of request %s spooled", err,
                      release ? "release" : "settlement", res->id);
        if (cost) {
            *cost = st.cost_q;
        }
        if (!release) {
            apr_table_setn(r->notes, NEBULA_BILLING_NOTE_BILLED, "1");
        }
        return NEBULA_BILLING_OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_CRIT, 0, r,
                  "NEB02037: cannot settle or spool request %s (%s); its hold stays until "
                  "reclaimed", res->id, err);
    return NEBULA_BILLING_ERROR;
}

static int nebula_billing_settle(request_rec *r, nebula_reservation_t *res, const nebula_reqlog_t *log,
                          apr_int64_t *cost)
{
    return resolve(r, res, log, 0, cost);
}

static int nebula_billing_release(request_rec *r, nebula_reservation_t *res,
                           const nebula_reqlog_t *log)
{
    return resolve(r, res, log, 1, NULL);
}

void billing_settle_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_settle);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_release);
}

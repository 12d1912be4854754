/* billing_sched.c: the billing scheduler. A singleton mod_watchdog task
 * (one child per host runs it) makes one pass every NebulaSchedulerInterval;
 * nebula_billing_sched_run() makes one in the caller's thread (the admin
 * API's "run now"). A pass:
 *   1. resets the period of every active subscription whose period ended
 *      (one transaction per period, so one behind by several periods
 *      catches up step by step): the leftover of the allowance is taken
 *      back or carried over (plans.rollover), then the new period's grant;
 *   2. expires subscriptions past expires_at;
 *   3. reclaims stale holds, purges old idempotency records and replays the
 *      settlement spool (billing_reserve.c, billing_idem.c, billing_spool.c);
 *   4. queues and delivers notifications (billing_notify.c);
 *   5. rolls closed hours of request_logs up and deletes request logs past
 *      their retention, a bounded batch each (billing_rollup.c,
 *      billing_retention.c); not counted as effects.
 * Any number of passes may run at once, on one host or many: every change
 * is an UPDATE conditional on the state it changes (a pass that finds the
 * work done rolls back and moves on), and every ledger row carries a
 * deterministic idempotency key, so no effect is ever applied twice.
 *
 * It also sets the process's time zone (NebulaTimeZone) for calendar
 * periods, once, in post_config, before any thread starts. */
#include <stdlib.h>
#include <time.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_core.h>
#include <http_main.h>
#include <mod_watchdog.h>
#include "billing_private.h"
#include "billing_sched.h"
#include "nebula_ledger.h"

#define SCHED_WATCHDOG  "_nebula_billing_sched_"
#define SCHED_BATCH     "200" /* subscriptions read per query */
#define SCHED_MAX_STEPS 1000  /* periods one subscription catches up per pass */
#define SCHED_TXN_TRIES 3

static server_rec *sched_server;

server_rec *billing_sched_main(void)
{
    return sched_server ? sched_server : ap_server_conf;
}

/* ---- shared by the scheduler's transactions ------------------------------ */

int billing_sched_txn(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                      billing_step_fn *fn, void *baton, const char *what)
{
    const char *err = NULL;
    int rc = BILLING_STEP_ERROR, attempt;

    for (attempt = 0; attempt < SCHED_TXN_TRIES; ++attempt) {
        err = NULL;
        if (nebula_ap_db_begin(db, &err) != APR_SUCCESS) {
            rc = BILLING_STEP_ERROR;
        }
        else if ((rc = fn(db, p, baton, &err)) == BILLING_STEP_DONE) {
            if (nebula_ap_db_commit(db, &err) != APR_SUCCESS) {
                rc = BILLING_STEP_ERROR;
            }
        }
        else {
            nebula_ap_db_rollback(db);
        }
        if (rc != BILLING_STEP_ERROR || !billing_db_retriable(err)) {
            break;
        }
        apr_sleep(apr_time_from_msec(20 * (attempt + 1) + rand() % 20));
    }
    if (rc == BILLING_STEP_ERROR) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02301: billing: %s failed: %s", what,
                     err ? err : "unknown error");
    }
    return rc;
}

int billing_sched_account(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t account_id,
                          apr_int64_t *balance, apr_int64_t *reserved, const char **err)
{
    const char *args[2] = {billing_i64(p, billing_now_ms()), billing_i64(p, account_id)};
    nebula_dbd_rows_t rows;

    /* an UPDATE takes the row lock on every database (SQLite: the whole
     * database is ours since BEGIN IMMEDIATE), so the balance read next
     * cannot change before the postings that depend on it */
    if (nebula_ap_db_exec(db, "billing_sched_acct_lock",
                          "UPDATE accounts SET updated_at = %lld WHERE id = %lld", 2,
                          args, NULL, err) != APR_SUCCESS ||
        nebula_ap_db_select(db, "billing_sched_acct_read",
                            "SELECT balance, reserved FROM accounts WHERE id = %lld", 1,
                            args + 1, &rows, err) != APR_SUCCESS) {
        return -1;
    }
    if (rows.nrows != 1) {
        *err = "the subscription has no account";
        return -1;
    }
    *balance = nebula_ap_db_int(&rows, 0, 0);
    *reserved = nebula_ap_db_int(&rows, 0, 1);
    return 0;
}

int billing_sched_post(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t account_id,
                       const char *kind, apr_int64_t amount, const char *idem_key,
                       const char *actor, const char *detail, const char **err)
{
    billing_post_t bp;
    nebula_posting_result_t out;
    int rc;

    memset(&bp, 0, sizeof(bp));
    memset(&out, 0, sizeof(out));
    bp.account_id = account_id;
    bp.kind = kind;
    bp.amount = amount;
    bp.check_floor = 0;
    bp.idem_key = idem_key;
    bp.actor = actor;
    bp.detail = detail;
    rc = billing_ledger_post(db, p, &bp, &out, err);
    if (rc == NEBULA_BILLING_OK) {
        return BILLING_STEP_DONE;
    }
    if (rc == NEBULA_BILLING_DUPLICATE) {
        *err = apr_psprintf(p, "ledger row %s exists already", idem_key);
        return BILLING_STEP_SKIPPED;
    }
    if (*err == NULL) {
        *err = "ledger posting refused";
    }
    return BILLING_STEP_ERROR;
}

/* ---- period resets ------------------------------------------------------- */

/* An active subscription whose period is due, with its plan. */
typedef struct {
    apr_int64_t id, period_start, period_end, starts_at, expires_at, account_id;
    apr_int64_t quota, cap;
    const char *rollover;
    billing_period_t period;
    /* the step being applied */
    apr_int64_t new_start, new_end, now;
    int duplicate;
} sched_sub_t;

static const char *const due_sql =
    "SELECT s.id, s.period_start, s.period_end, s.starts_at, COALESCE(s.expires_at, 0), "
    "s.account_id, p.period, p.period_seconds, p.alignment, p.quota_per_period, "
    "p.rollover, p.rollover_cap FROM subscriptions s JOIN plans p ON p.id = s.plan_id "
    "WHERE s.status = 'active' AND s.period_end <= %lld AND (s.expires_at IS NULL OR "
    "s.period_end < s.expires_at) ORDER BY s.id LIMIT " SCHED_BATCH;

/* What the rollover policy takes back from a leftover @a left (available
 * at the end of a period) and what it carries into the next one. A debt
 * (negative leftover) is never forgiven: it is carried. */
static void rollover_split(const sched_sub_t *sub, apr_int64_t left, apr_int64_t *taken,
                           apr_int64_t *carried)
{
    *taken = 0;
    if (left > 0 && strcmp(sub->rollover, "full") != 0) {
        apr_int64_t cap = strcmp(sub->rollover, "capped") == 0 ? sub->cap : 0;
        *taken = left > cap ? left - cap : 0;
    }
    *carried = left - *taken;
}

/* One period reset of one subscription (one transaction). */
static int reset_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    sched_sub_t *sub = baton;
    const char *args[5], *detail;
    const char *old_end = billing_i64(p, sub->period_end);
    apr_int64_t balance, reserved, left, taken, carried;
    int affected = 0, rc;

    args[0] = billing_i64(p, sub->new_start);
    args[1] = billing_i64(p, sub->new_end);
    args[2] = billing_i64(p, sub->now);
    args[3] = billing_i64(p, sub->id);
    args[4] = old_end;
    if (nebula_ap_db_exec(
            db, "billing_sched_reset",
            "UPDATE subscriptions SET period_start = %lld, period_end = %lld, "
            "notified_pct = 0, updated_at = %lld WHERE id = %lld AND "
            "period_end = %lld AND status = 'active'",
            5, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED; /* another scheduler did it */
    }
    if (billing_sched_account(db, p, sub->account_id, &balance, &reserved, err) != 0) {
        return BILLING_STEP_ERROR;
    }
    /* reserved stays: in-flight requests settle against it later */
    left = balance - reserved;
    rollover_split(sub, left, &taken, &carried);
    detail = apr_psprintf(p,
                          "{\"leftover\":%" APR_INT64_T_FMT
                          ",\"carried\":%" APR_INT64_T_FMT ",\"period_end\":%s}",
                          left, carried, old_end);
    rc = BILLING_STEP_DONE;
    if (strcmp(sub->rollover, "full") != 0) {
        rc =
            billing_sched_post(db, p, sub->account_id, NEBULA_LEDGER_PERIOD_RESET, -taken,
                               apr_pstrcat(p, "reset:", args[3], ":", old_end, NULL),
                               BILLING_SCHED_ACTOR, detail, err);
    }
    if (rc == BILLING_STEP_DONE && strcmp(sub->rollover, "none") != 0) {
        rc = billing_sched_post(db, p, sub->account_id, NEBULA_LEDGER_ROLLOVER, 0,
                                apr_pstrcat(p, "rollover:", args[3], ":", old_end, NULL),
                                BILLING_SCHED_ACTOR, detail, err);
    }
    if (rc == BILLING_STEP_DONE) {
        rc = billing_sched_post(
            db, p, sub->account_id, NEBULA_LEDGER_PLAN_GRANT, sub->quota,
            apr_pstrcat(p, "grant:", args[3], ":", args[0], NULL), BILLING_SCHED_ACTOR,
            apr_psprintf(p, "{\"period_start\":%s,\"period_end\":%s}", args[0], args[1]),
            err);
    }
    sub->duplicate = (rc == BILLING_STEP_SKIPPED);
    return rc;
}

/* Read the subscription's period again after another scheduler moved it.
 * 0 when it is still active. */
static int reset_reload(nebula_ap_db_t *db, apr_pool_t *p, sched_sub_t *sub)
{
    const char *args[1] = {billing_i64(p, sub->id)}, *err = NULL;
    nebula_dbd_rows_t rows;

    if (nebula_ap_db_select(db, "billing_sched_reload",
                            "SELECT period_start, period_end, status FROM subscriptions "
                            "WHERE id = %lld",
                            1, args, &rows, &err) != APR_SUCCESS ||
        rows.nrows != 1 || rows.rows[0][2] == NULL ||
        strcmp(rows.rows[0][2], "active") != 0) {
        return -1;
    }
    sub->period_start = nebula_ap_db_int(&rows, 0, 0);
    sub->period_end = nebula_ap_db_int(&rows, 0, 1);
    return 0;
}

/* Bring one subscription up to date, a period per step. Returns the
 * number of periods this pass reset. */
static int reset_catch_up(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                          sched_sub_t *sub, apr_int64_t now)
{
    int steps, n = 0, rc;

    for (steps = 0; steps < SCHED_MAX_STEPS; ++steps) {
        apr_int64_t start, end;

        if (sub->period_end > now ||
            (sub->expires_at && sub->period_end >= sub->expires_at)) {
            break;
        }
        if (billing_period_at(&sub->period, sub->starts_at, sub->period_end, &start,
                              &end) != 0 ||
            end <= sub->period_end) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB02310: subscription %" APR_INT64_T_FMT
                         ": cannot compute the "
                         "period after %" APR_INT64_T_FMT,
                         sub->id, sub->period_end);
            break;
        }
        sub->new_start = sub->period_end;
        sub->new_end = end;
        sub->now = now;
        sub->duplicate = 0;
        rc = billing_sched_txn(s, db, p, reset_step, sub, "period reset");
        if (rc == BILLING_STEP_DONE) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "NEB02311: subscription %" APR_INT64_T_FMT
                         ": new period %" APR_INT64_T_FMT "..%" APR_INT64_T_FMT,
                         sub->id, sub->new_start, sub->new_end);
            sub->period_start = sub->new_start;
            sub->period_end = sub->new_end;
            ++n;
            continue;
        }
        if (rc == BILLING_STEP_ERROR) {
            break;
        }
        if (sub->duplicate) {
            /* the period did not move, yet its rows exist: someone edited
             * the subscription by hand; do not loop on it */
            ap_log_error(
                APLOG_MARK, APLOG_WARNING, 0, s,
                "NEB02312: subscription %" APR_INT64_T_FMT ": the ledger rows of "
                "the period ending %" APR_INT64_T_FMT " exist but the period was "
                "not advanced; skipped",
                sub->id, sub->period_end);
            break;
        }
        if (reset_reload(db, p, sub) != 0) {
            break; /* another scheduler moved it, or it ended */
        }
    }
    return n;
}

static int sched_resets(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t now)
{
    const char *args[1] = {billing_i64(p, now)}, *err = NULL;
    nebula_dbd_rows_t rows;
    int i, n = 0;

    if (nebula_ap_db_select(db, "billing_sched_due", due_sql, 1, args, &rows, &err) !=
        APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02313: billing scheduler: cannot read the subscriptions due: %s",
                     err);
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        sched_sub_t sub;

        memset(&sub, 0, sizeof(sub));
        sub.id = nebula_ap_db_int(&rows, i, 0);
        sub.period_start = nebula_ap_db_int(&rows, i, 1);
        sub.period_end = nebula_ap_db_int(&rows, i, 2);
        sub.starts_at = nebula_ap_db_int(&rows, i, 3);
        sub.expires_at = nebula_ap_db_int(&rows, i, 4);
        sub.account_id = nebula_ap_db_int(&rows, i, 5);
        sub.quota = nebula_ap_db_int(&rows, i, 9);
        sub.rollover = rows.rows[i][10] ? rows.rows[i][10] : "none";
        sub.cap = nebula_ap_db_int(&rows, i, 11);
        if (billing_period_parse(&sub.period, rows.rows[i][6],
                                 nebula_ap_db_int(&rows, i, 7), rows.rows[i][8]) != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB02314: subscription %" APR_INT64_T_FMT ": its plan has no "
                         "valid period",
                         sub.id);
            continue;
        }
        n += reset_catch_up(s, db, p, &sub, now);
    }
    return n;
}

/* ---- expiry -------------------------------------------------------------- */

static int sched_expiries(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                          apr_int64_t now)
{
    const char *args[1] = {billing_i64(p, now)}, *err = NULL;
    nebula_dbd_rows_t rows;
    int i, n = 0;

    if (nebula_ap_db_select(db, "billing_sched_expired",
                            "SELECT id FROM subscriptions WHERE status = 'active' AND "
                            "expires_at IS NOT NULL AND expires_at <= %lld AND "
                            "period_end >= expires_at ORDER BY id LIMIT " SCHED_BATCH,
                            1, args, &rows, &err) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02315: billing scheduler: cannot read expired subscriptions: %s",
                     err);
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        apr_int64_t id = nebula_ap_db_int(&rows, i, 0);

        if (billing_subscribe_end(s, db, p, id, "expired", BILLING_SCHED_ACTOR) ==
            BILLING_STEP_DONE) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "NEB02316: subscription %" APR_INT64_T_FMT " expired", id);
            ++n;
        }
    }
    return n;
}

/* ---- one pass ------------------------------------------------------------ */

static int sched_pass(server_rec *s, apr_pool_t *p, apr_int64_t *effects)
{
    apr_int64_t now = billing_now_ms();
    nebula_ap_db_t *db;
    int n = 0;

    *effects = 0;
    if (nebula_ap_db_state(s) != NEBULA_AP_DB_READY ||
        (db = nebula_ap_db_open(p, s)) == NULL) {
        return NEBULA_BILLING_ERROR;
    }
    n += sched_resets(s, db, p, now);
    n += sched_expiries(s, db, p, now);
    /* the others borrow connections of their own: give ours back first, so
     * that concurrent passes never wait for each other's second connection */
    nebula_ap_db_close(db);
    n += billing_reserve_reclaim(s, p, now);
    n += billing_idem_purge(s, p, now);
    n += billing_spool_replay(s, p);
    if ((db = nebula_ap_db_open(p, s)) != NULL) {
        n += billing_notify_queue(s, db, p, now);
        n += billing_notify_deliver(s, db, p, billing_now_ms());
        nebula_ap_db_close(db);
    }
    billing_rollup_pass(s, p, now);
    billing_retention_pass(s, p, billing_now_ms());
    *effects = n;
    return NEBULA_BILLING_OK;
}

static int nebula_billing_sched_run(request_rec *r, apr_int64_t *effects)
{
    apr_int64_t n = 0;
    apr_pool_t *p;
    int rc;

    apr_pool_create(&p, r->pool);
    apr_pool_tag(p, "nebula_billing_sched_run");
    rc = sched_pass(r->server, p, &n);
    apr_pool_destroy(p);
    if (effects) {
        *effects = n;
    }
    return rc;
}

static apr_status_t sched_callback(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    apr_int64_t n = 0;
    apr_pool_t *p;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    apr_pool_create(&p, pool);
    apr_pool_tag(p, "nebula_billing_sched");
    sched_pass(s, p, &n);
    if (n > 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "NEB02302: billing scheduler pass: %" APR_INT64_T_FMT " effect(s)",
                     n);
    }
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

/* ---- configuration ------------------------------------------------------- */

/* NebulaTimeZone: TZ for this process and its children, set while there is
 * only one thread (localtime_r and mktime read it without a lock later). */
static void sched_set_timezone(server_rec *s, const char *tz, apr_pool_t *ptemp)
{
    const char *dir = getenv("TZDIR");
    apr_finfo_t fi;

    if (tz == NULL) {
        tzset();
        return;
    }
    if (setenv("TZ", tz, 1) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02303: NebulaTimeZone %s: cannot set TZ", tz);
        return;
    }
    tzset();
    /* glibc takes an unknown zone for UTC without a word: say it */
    if (strcmp(tz, "UTC") != 0 && strcmp(tz, "GMT") != 0 &&
        apr_stat(&fi,
                 apr_pstrcat(ptemp, dir ? dir : "/usr/share/zoneinfo", "/", tz, NULL),
                 APR_FINFO_TYPE, ptemp) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB02304: NebulaTimeZone %s is not in the time zone database; "
                     "calendar periods will follow UTC",
                     tz);
    }
}

/* Whether any server charges requests (else there is nothing to schedule). */
static int billing_in_use(server_rec *main_server)
{
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        if (billing_config_srv(s)->enabled != 0) {
            return 1;
        }
    }
    return 0;
}

static int sched_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *reg =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    const billing_srv_conf_t *c = billing_config_srv(s);
    apr_interval_time_t every =
        c->sched_interval > 0 ? c->sched_interval : BILLING_DEFAULT_SCHED_INTERVAL;
    ap_watchdog_t *wd;
    apr_status_t rv;

    sched_server = s;
    sched_set_timezone(s, c->timezone, ptemp);
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (c->scheduler == 0 || !billing_in_use(s)) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "NEB02305: the billing scheduler does not run on this host (%s)",
                     c->scheduler == 0 ? "NebulaScheduler Off"
                                       : "NebulaBilling is Off "
                                         "everywhere");
        return OK;
    }
    if (get == NULL || reg == NULL) {
        ap_log_error(
            APLOG_MARK, APLOG_WARNING, 0, s,
            "NEB02306: mod_watchdog is not loaded: plan periods, expiry and "
            "notifications advance only through POST /api/billing/scheduler/run");
        return OK;
    }
    if ((rv = get(&wd, SCHED_WATCHDOG, 0, 1, pconf)) != APR_SUCCESS ||
        (rv = reg(wd, every, s, sched_callback)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB02307: cannot register the billing scheduler's watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "NEB02308: billing scheduler every %" APR_TIME_T_FMT " ms",
                 apr_time_as_msec(every));
    return OK;
}

void billing_sched_register_hooks(apr_pool_t *p)
{
    static const char *const watchdog[] = {"mod_watchdog.c", NULL};

    (void)p;
    /* last: after the module's own post_config has filled in the defaults;
     * before mod_watchdog's, which starts the watchdogs registered by then */
    ap_hook_post_config(sched_post_config, NULL, watchdog, APR_HOOK_LAST);
    APR_REGISTER_OPTIONAL_FN(nebula_billing_sched_run);
    billing_subscribe_register();
}

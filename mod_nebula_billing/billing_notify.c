/* billing_notify.c: the notification outbox (table notifications).
 *
 * Queueing: a subscription that has used 80 % or 100 % of its period's
 * allowance (used = quota_per_period - available), or that expires within
 * NebulaNotifyExpiryDays, gets one event. subscriptions.notified_pct (the
 * highest level sent this period; a period reset sets it to 0) and
 * expiry_notified are advanced by a conditional UPDATE in the transaction
 * that inserts the event's rows, so an event is queued once however many
 * schedulers run. One row per event and channel: the webhook's row has the
 * event's key ("usage80:<sub>:<period_start>", "expiring:<sub>:<expires_at>"),
 * the e-mail's the same key with ":mail" (so a channel that fails retries
 * without repeating the other); idem_key is UNIQUE, so a second insert is
 * a no-op.
 *
 * Delivery: due rows (state pending, next_at <= now) are claimed with a
 * conditional UPDATE (state sending, next_at = now + a lease), so two
 * schedulers never send the same row at once; a sender that died leaves a
 * row another claims again when the lease ends. 2xx (webhook) or an
 * accepted message (SMTP) -> delivered; anything else -> attempts + 1 and
 * next_at = now + 30 s x 2^attempts, failed after 8 attempts. */
#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_lib.h>
#include <http_core.h>
#include "billing_private.h"
#include "billing_sched.h"
#include "nebula_crypto.h"
#include "nebula_json.h"

#define NOTIFY_MAX_ATTEMPTS 8
#define NOTIFY_RETRY_BASE   APR_INT64_C(30000)  /* ms; x 2^attempts */
#define NOTIFY_LEASE        APR_INT64_C(300000) /* ms a claimed row is ours */
#define NOTIFY_BATCH        "50"
#define NOTIFY_MAIL_SUFFIX  ":mail"

#define EVENT_USAGE_80  "subscription.usage_80"
#define EVENT_USAGE_100 "subscription.usage_100"
#define EVENT_EXPIRING  "subscription.expiring"

/* ---- queueing ------------------------------------------------------------ */

/* One subscription's state as an event reports it. */
typedef struct {
    apr_int64_t id, plan_id, subject_id, account_id, period_start, period_end, expires_at;
    apr_int64_t quota, available, user_id;
    const char *subject_kind, *plan_name, *metric;
    /* the event */
    const char *event, *key;
    int level; /* usage: 80 or 100 */
    apr_int64_t now;
    const billing_srv_conf_t *conf;
} notify_ev_t;

static const char *const sub_cols =
    "s.id, s.plan_id, s.subject_kind, s.subject_id, s.account_id, s.period_start, "
    "s.period_end, COALESCE(s.expires_at, 0), p.name, p.metric, p.quota_per_period, "
    "a.balance - a.reserved, s.notified_pct FROM subscriptions s JOIN plans p ON "
    "p.id = s.plan_id JOIN accounts a ON a.id = s.account_id";

static void ev_from_row(notify_ev_t *ev, const nebula_dbd_rows_t *rows, int i)
{
    ev->id = nebula_ap_db_int(rows, i, 0);
    ev->plan_id = nebula_ap_db_int(rows, i, 1);
    ev->subject_kind = rows->rows[i][2] ? rows->rows[i][2] : "";
    ev->subject_id = nebula_ap_db_int(rows, i, 3);
    ev->account_id = nebula_ap_db_int(rows, i, 4);
    ev->period_start = nebula_ap_db_int(rows, i, 5);
    ev->period_end = nebula_ap_db_int(rows, i, 6);
    ev->expires_at = nebula_ap_db_int(rows, i, 7);
    ev->plan_name = rows->rows[i][8] ? rows->rows[i][8] : "";
    ev->metric = rows->rows[i][9] ? rows->rows[i][9] : "quota";
    ev->quota = nebula_ap_db_int(rows, i, 10);
    ev->available = nebula_ap_db_int(rows, i, 11);
}

/* The user an event concerns (a key's owner); 0 for an organisation. */
static apr_int64_t ev_user(nebula_ap_db_t *db, apr_pool_t *p, const notify_ev_t *ev)
{
    const char *args[1] = {billing_i64(p, ev->subject_id)}, *err = NULL;
    nebula_dbd_rows_t rows;

    if (strcmp(ev->subject_kind, "user") == 0) {
        return ev->subject_id;
    }
    if (strcmp(ev->subject_kind, "key") == 0 &&
        nebula_ap_db_select(db, "billing_notify_key_owner",
                            "SELECT user_id FROM api_keys WHERE id = %lld", 1, args,
                            &rows, &err) == APR_SUCCESS &&
        rows.nrows == 1) {
        return nebula_ap_db_int(&rows, 0, 0);
    }
    return 0;
}

/* The e-mail address of user @a id, or NULL. */
static const char *user_email(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t id)
{
    const char *args[1] = {billing_i64(p, id)}, *err = NULL;
    nebula_dbd_rows_t rows;

    if (id <= 0 ||
        nebula_ap_db_select(db, "billing_notify_email",
                            "SELECT COALESCE(email, '') FROM users WHERE id = %lld", 1,
                            args, &rows, &err) != APR_SUCCESS ||
        rows.nrows != 1 || rows.rows[0][0] == NULL || rows.rows[0][0][0] == '\0') {
        return NULL;
    }
    return rows.rows[0][0];
}

/* The event's JSON: what the webhook receives, and what the e-mail says. */
static const char *ev_payload(apr_pool_t *p, const notify_ev_t *ev)
{
    apr_int64_t used = ev->quota - ev->available;
    json_t *sub = json_pack(
        "{s:I, s:I, s:s, s:s, s:I, s:I, s:I}", "id", (json_int_t)ev->id, "plan_id",
        (json_int_t)ev->plan_id, "plan_name", ev->plan_name, "subject_kind",
        ev->subject_kind, "subject_id", (json_int_t)ev->subject_id, "period_start",
        (json_int_t)ev->period_start, "period_end", (json_int_t)ev->period_end);
    json_t *j;

    json_object_set_new(sub, "expires_at",
                        ev->expires_at ? json_integer(ev->expires_at) : json_null());
    j = json_pack("{s:s, s:I, s:o, s:{s:s, s:I, s:I, s:I, s:I}}", "event", ev->event,
                  "created_at", (json_int_t)ev->now, "subscription", sub, "usage",
                  "metric", ev->metric, "quota_per_period", (json_int_t)ev->quota, "used",
                  (json_int_t)used, "available", (json_int_t)ev->available, "percent",
                  (json_int_t)(ev->quota > 0 ? used * 100 / ev->quota : 0));
    if (ev->level) {
        json_object_set_new(j, "threshold", json_integer(ev->level));
    }
    return nebula_json_dumps(p, nebula_json_own(p, j), 0);
}

/* Insert one outbox row unless its key is there. */
static apr_status_t outbox_insert(nebula_ap_db_t *db, apr_pool_t *p,
                                  const notify_ev_t *ev, const char *key,
                                  const char *payload, const char **err)
{
    const char *args[7], *sql;

    switch (nebula_ap_db_dialect(db)) {
    case NEBULA_DBD_PGSQL:
        sql = "INSERT INTO notifications (event, idem_key, account_id, user_id, payload, "
              "state, attempts, next_at, created_at) VALUES (%s, %s, %lld, %lld, %s, "
              "'pending', 0, %lld, %lld) ON CONFLICT (idem_key) DO NOTHING";
        break;
    case NEBULA_DBD_MYSQL:
        sql =
            "INSERT IGNORE INTO notifications (event, idem_key, account_id, user_id, "
            "payload, state, attempts, next_at, created_at) VALUES (%s, %s, %lld, %lld, "
            "%s, 'pending', 0, %lld, %lld)";
        break;
    default:
        sql =
            "INSERT OR IGNORE INTO notifications (event, idem_key, account_id, user_id, "
            "payload, state, attempts, next_at, created_at) VALUES (%s, %s, %lld, %lld, "
            "%s, 'pending', 0, %lld, %lld)";
    }
    args[0] = ev->event;
    args[1] = key;
    args[2] = billing_i64(p, ev->account_id);
    args[3] = ev->user_id ? billing_i64(p, ev->user_id) : NULL;
    args[4] = payload;
    args[5] = billing_i64(p, ev->now);
    args[6] = args[5];
    return nebula_ap_db_exec(db, "billing_notify_insert", sql, 7, args, NULL, err);
}

/* The event's rows, one per channel configured (inside the transaction). */
static int ev_insert(nebula_ap_db_t *db, apr_pool_t *p, const notify_ev_t *ev,
                     const char **err)
{
    const char *payload = ev_payload(p, ev);

    if (payload == NULL) {
        *err = "cannot build the notification";
        return -1;
    }
    if (ev->conf->webhook_url &&
        outbox_insert(db, p, ev, ev->key, payload, err) != APR_SUCCESS) {
        return -1;
    }
    if (ev->conf->smtp_relay && user_email(db, p, ev->user_id) &&
        outbox_insert(db, p, ev, apr_pstrcat(p, ev->key, NOTIFY_MAIL_SUFFIX, NULL),
                      payload, err) != APR_SUCCESS) {
        return -1;
    }
    return 0;
}

static int usage_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    notify_ev_t *ev = baton;
    const char *args[5];
    int affected = 0;

    args[0] = billing_i64(p, ev->level);
    args[1] = billing_i64(p, ev->now);
    args[2] = billing_i64(p, ev->id);
    args[3] = args[0];
    args[4] = billing_i64(p, ev->period_start);
    if (nebula_ap_db_exec(
            db, "billing_notify_usage_mark",
            "UPDATE subscriptions SET notified_pct = %lld, updated_at = %lld "
            "WHERE id = %lld AND notified_pct < %lld AND period_start = %lld "
            "AND status = 'active'",
            5, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED;
    }
    return ev_insert(db, p, ev, err) == 0 ? BILLING_STEP_DONE : BILLING_STEP_ERROR;
}

static int expiring_step(nebula_ap_db_t *db, apr_pool_t *p, void *baton, const char **err)
{
    notify_ev_t *ev = baton;
    const char *args[2];
    int affected = 0;

    args[0] = billing_i64(p, ev->now);
    args[1] = billing_i64(p, ev->id);
    if (nebula_ap_db_exec(
            db, "billing_notify_expiry_mark",
            "UPDATE subscriptions SET expiry_notified = 1, updated_at = %lld "
            "WHERE id = %lld AND expiry_notified = 0 AND status = 'active'",
            2, args, &affected, err) != APR_SUCCESS) {
        return BILLING_STEP_ERROR;
    }
    if (affected == 0) {
        return BILLING_STEP_SKIPPED;
    }
    return ev_insert(db, p, ev, err) == 0 ? BILLING_STEP_DONE : BILLING_STEP_ERROR;
}

/* Queue the events of the subscriptions @a sql selects (its parameters
 * @a args); @a expiring picks the kind of event. */
static int queue_rows(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t now,
                      int expiring, const char *label, const char *sql, int nargs,
                      const char *const *args)
{
    const billing_srv_conf_t *conf = billing_config_srv(billing_sched_main());
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int i, n = 0;

    if (nebula_ap_db_select(db, label, sql, nargs, args, &rows, &err) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02330: billing notifications: cannot read subscriptions: %s",
                     err);
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        notify_ev_t ev;
        apr_int64_t used;
        int notified = (int)nebula_ap_db_int(&rows, i, 12);

        memset(&ev, 0, sizeof(ev));
        ev_from_row(&ev, &rows, i);
        ev.now = now;
        ev.conf = conf;
        used = ev.quota - ev.available;
        if (expiring) {
            ev.event = EVENT_EXPIRING;
            ev.key = apr_psprintf(p, "expiring:%" APR_INT64_T_FMT ":%" APR_INT64_T_FMT,
                                  ev.id, ev.expires_at);
        }
        else {
            ev.level = used >= ev.quota ? 100 : 80;
            if (ev.quota <= 0 || used * 5 < ev.quota * 4 || ev.level <= notified) {
                continue;
            }
            ev.event = ev.level == 100 ? EVENT_USAGE_100 : EVENT_USAGE_80;
            ev.key = apr_psprintf(p, "usage%d:%" APR_INT64_T_FMT ":%" APR_INT64_T_FMT,
                                  ev.level, ev.id, ev.period_start);
        }
        ev.user_id = ev_user(db, p, &ev);
        if (billing_sched_txn(s, db, p, expiring ? expiring_step : usage_step, &ev,
                              "queueing a notification") == BILLING_STEP_DONE) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "NEB02331: subscription %" APR_INT64_T_FMT ": %s queued", ev.id,
                         ev.event);
            ++n;
        }
    }
    return n;
}

int billing_notify_queue(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                         apr_int64_t now)
{
    const billing_srv_conf_t *conf = billing_config_srv(billing_sched_main());
    int days = conf->expiry_days >= 0 ? conf->expiry_days : BILLING_DEFAULT_EXPIRY_DAYS;
    const char *args[2];
    int n;

    args[0] = billing_i64(p, now);
    args[1] = billing_i64(p, now + (apr_int64_t)days * 86400000);
    /* used * 5 >= quota * 4 is "used >= 80 %" in integers; a period that is
     * over waits for its reset */
    n = queue_rows(s, db, p, now, 0, "billing_notify_usage",
                   apr_pstrcat(p, "SELECT ", sub_cols,
                               " WHERE s.status = 'active' AND s.notified_pct < 100 AND "
                               "s.period_end > %lld AND p.quota_per_period > 0 AND "
                               "(p.quota_per_period - (a.balance - a.reserved)) * 5 >= "
                               "p.quota_per_period * 4 ORDER BY s.id LIMIT 200",
                               NULL),
                   1, args);
    if (days > 0) {
        n +=
            queue_rows(s, db, p, now, 1, "billing_notify_expiring",
                       apr_pstrcat(p, "SELECT ", sub_cols,
                                   " WHERE s.status = 'active' AND s.expiry_notified = 0 "
                                   "AND s.expires_at IS NOT NULL AND s.expires_at > %lld "
                                   "AND s.expires_at <= %lld ORDER BY s.id LIMIT 200",
                                   NULL),
                       2, args);
    }
    return n;
}

/* ---- delivery ------------------------------------------------------------ */

/* One outbox row being delivered. */
typedef struct {
    apr_int64_t id, user_id, attempts, next_at, lease;
    const char *event, *key, *payload, *state;
} outbox_row_t;

/* Outcomes of one attempt. */
#define SEND_OK        0
#define SEND_RETRY     1 /* may work later */
#define SEND_PERMANENT 2 /* never will: failed at once */

static int outbox_claim(nebula_ap_db_t *db, apr_pool_t *p, outbox_row_t *row,
                        apr_int64_t now)
{
    const char *args[4], *err = NULL;
    int affected = 0;

    row->lease = now + NOTIFY_LEASE;
    args[0] = billing_i64(p, row->lease);
    args[1] = billing_i64(p, row->id);
    args[2] = row->state;
    args[3] = billing_i64(p, row->next_at);
    return nebula_ap_db_exec(db, "billing_notify_claim",
                             "UPDATE notifications SET state = 'sending', next_at = %lld "
                             "WHERE id = %lld AND state = %s AND next_at = %lld",
                             4, args, &affected, &err) == APR_SUCCESS &&
           affected == 1;
}

/* Record the outcome of an attempt on a row we hold. */
static void outbox_outcome(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                           const outbox_row_t *row, int outcome, const char *why)
{
    apr_int64_t now = billing_now_ms(), attempts = row->attempts + 1, next = now;
    const char *state = "delivered", *args[7], *err = NULL;

    if (outcome != SEND_OK) {
        state = (outcome == SEND_PERMANENT || attempts >= NOTIFY_MAX_ATTEMPTS)
                    ? "failed"
                    : "pending";
        next = now + (NOTIFY_RETRY_BASE << attempts);
        if (strcmp(state, "failed") == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "NEB02340: notification %" APR_INT64_T_FMT
                         " (%s) failed for good "
                         "after %" APR_INT64_T_FMT " attempt(s): %s",
                         row->id, row->event, attempts, why);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "NEB02341: notification %" APR_INT64_T_FMT
                         " (%s), attempt %" APR_INT64_T_FMT
                         ": %s; next attempt in %" APR_INT64_T_FMT " s",
                         row->id, row->event, attempts, why, (next - now) / 1000);
        }
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "NEB02342: notification %" APR_INT64_T_FMT " (%s) delivered",
                     row->id, row->event);
    }
    args[0] = state;
    args[1] = billing_i64(p, attempts);
    args[2] = billing_i64(p, next);
    args[3] = outcome == SEND_OK ? NULL : apr_pstrndup(p, why ? why : "", 1000);
    args[4] = outcome == SEND_OK ? billing_i64(p, now) : NULL;
    args[5] = billing_i64(p, row->id);
    args[6] = billing_i64(p, row->lease);
    if (nebula_ap_db_exec(
            db, "billing_notify_outcome",
            "UPDATE notifications SET state = %s, attempts = %lld, next_at = "
            "%lld, last_error = %s, delivered_at = %lld WHERE id = %lld AND "
            "state = 'sending' AND next_at = %lld",
            7, args, NULL, &err) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02343: notification %" APR_INT64_T_FMT ": cannot record the "
                     "outcome: %s",
                     row->id, err);
    }
}

/* "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" */
static const char *webhook_signature(apr_pool_t *p, const char *secret, const char *body)
{
    apr_int64_t t = apr_time_sec(apr_time_now());
    const char *text = apr_psprintf(p, "%" APR_INT64_T_FMT ".%s", t, body);
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];

    if (nebula_crypto_hmac_sha256(secret, strlen(secret), text, strlen(text), mac) !=
        APR_SUCCESS) {
        return NULL;
    }
    return apr_psprintf(p, "t=%" APR_INT64_T_FMT ",v1=%s", t,
                        nebula_crypto_hex(p, mac, sizeof(mac)));
}

static int send_webhook(apr_pool_t *p, const billing_srv_conf_t *conf,
                        const outbox_row_t *row, const char **why)
{
    const char *headers[5], *sig;
    int status = 0;

    if (conf->webhook_url == NULL) {
        *why = "NebulaNotifyWebhook is not set any more";
        return SEND_PERMANENT;
    }
    if ((sig = webhook_signature(p, conf->webhook_secret, row->payload)) == NULL) {
        *why = "cannot sign the payload";
        return SEND_RETRY;
    }
    headers[0] = "Content-Type: application/json";
    headers[1] = apr_pstrcat(p, "X-Nebula-Event: ", row->event, NULL);
    headers[2] = apr_psprintf(p, "X-Nebula-Delivery: %" APR_INT64_T_FMT, row->id);
    headers[3] = apr_pstrcat(p, "X-Nebula-Signature: ", sig, NULL);
    headers[4] = NULL;
    if (billing_http_post(p, conf->webhook_url, headers, row->payload, &status, why) !=
        APR_SUCCESS) {
        return SEND_RETRY;
    }
    if (status < 200 || status > 299) {
        *why = apr_psprintf(p, "the webhook answered HTTP %d", status);
        return SEND_RETRY;
    }
    return SEND_OK;
}

static const char *utc_text(apr_pool_t *p, apr_int64_t ms)
{
    apr_time_exp_t tm;
    apr_size_t len;
    char buf[64];

    apr_time_exp_gmt(&tm, apr_time_from_msec(ms));
    apr_strftime(buf, &len, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
    return apr_pstrdup(p, buf);
}

/* The subject and text of the e-mail of @a payload. */
static void mail_text(apr_pool_t *p, const char *event, json_t *j, const char **subject,
                      const char **text)
{
    const char *plan = nebula_json_gets(j, "subscription", "plan_name", NULL);
    const char *metric = nebula_json_gets(j, "usage", "metric", NULL);
    apr_int64_t id = nebula_json_geti(j, 0, "subscription", "id", NULL);
    apr_int64_t used = nebula_json_geti(j, 0, "usage", "used", NULL);
    apr_int64_t quota = nebula_json_geti(j, 0, "usage", "quota_per_period", NULL);
    apr_int64_t avail = nebula_json_geti(j, 0, "usage", "available", NULL);
    apr_int64_t pct = nebula_json_geti(j, 0, "usage", "percent", NULL);
    const char *end =
        utc_text(p, nebula_json_geti(j, 0, "subscription", "period_end", NULL));
    const char *head;

    plan = plan ? plan : "";
    metric = metric ? metric : "quota";
    head = apr_psprintf(p, "Your subscription %" APR_INT64_T_FMT " to the plan '%s'", id,
                        plan);
    if (strcmp(event, EVENT_EXPIRING) == 0) {
        const char *when =
            utc_text(p, nebula_json_geti(j, 0, "subscription", "expires_at", NULL));
        *subject = apr_psprintf(p, "Your plan '%s' expires on %s", plan, when);
        *text = apr_psprintf(p,
                             "%s expires on %s.\n\nWhat is left of its allowance then "
                             "expires with it. Renew it before that date to keep using "
                             "the plan.\n",
                             head, when);
        return;
    }
    *subject = apr_psprintf(p,
                            "Plan '%s': %" APR_INT64_T_FMT "%% of this period's "
                            "allowance used",
                            plan, pct);
    *text = apr_psprintf(p,
                         "%s has used %" APR_INT64_T_FMT " of its %" APR_INT64_T_FMT
                         " %s (%" APR_INT64_T_FMT "%%) in the current period, which ends "
                         "on %s.\n\n%s\n",
                         head, used, quota, metric, pct, end,
                         avail > 0 ? apr_psprintf(p,
                                                  "%" APR_INT64_T_FMT " %s are left "
                                                  "until then.",
                                                  avail, metric)
                                   : "Nothing is left until then: requests under this "
                                     "plan are refused or paid from the wallet.");
}

/* Whether @a a is an address we can put in a header and an SMTP command. */
static int mail_address_ok(const char *a)
{
    const char *at = strchr(a, '@');

    if (at == NULL || at == a || at[1] == '\0' || strlen(a) > 254) {
        return 0;
    }
    for (; *a; ++a) {
        if (apr_iscntrl(*a) || apr_isspace(*a) || strchr("<>(),;:\\\"[]", *a)) {
            return 0;
        }
    }
    return 1;
}

static int send_mail(nebula_ap_db_t *db, apr_pool_t *p, const billing_srv_conf_t *conf,
                     const outbox_row_t *row, const char **why)
{
    const char *to, *from, *subject, *text, *headers[3];
    const char *host = billing_sched_main()->server_hostname;
    json_t *j;

    if (conf->smtp_relay == NULL) {
        *why = "NebulaNotifySMTP is not set any more";
        return SEND_PERMANENT;
    }
    if ((to = user_email(db, p, row->user_id)) == NULL || !mail_address_ok(to)) {
        *why = to ? "the user's e-mail address is not usable"
                  : "the user has no e-mail address";
        return SEND_PERMANENT;
    }
    if ((j = nebula_json_parse(p, row->payload, strlen(row->payload), 0, NULL)) == NULL) {
        *why = "the stored payload is not JSON";
        return SEND_PERMANENT;
    }
    host = host ? host : "localhost";
    from = conf->smtp_from ? conf->smtp_from : apr_pstrcat(p, "nebula@", host, NULL);
    mail_text(p, row->event, j, &subject, &text);
    headers[0] = apr_pstrcat(p, "X-Nebula-Event: ", row->event, NULL);
    headers[1] = apr_psprintf(p, "X-Nebula-Delivery: %" APR_INT64_T_FMT, row->id);
    headers[2] = NULL;
    if (billing_smtp_send(p, conf->smtp_relay, host, from, to, subject, headers, text,
                          why) != APR_SUCCESS) {
        return SEND_RETRY;
    }
    return SEND_OK;
}

static int ends_with(const char *s, const char *tail)
{
    apr_size_t n = strlen(s), m = strlen(tail);

    return n >= m && strcmp(s + n - m, tail) == 0;
}

int billing_notify_deliver(server_rec *s, nebula_ap_db_t *db, apr_pool_t *p,
                           apr_int64_t now)
{
    const billing_srv_conf_t *conf = billing_config_srv(billing_sched_main());
    const char *args[1] = {billing_i64(p, now)}, *err = NULL;
    nebula_dbd_rows_t rows;
    int i, n = 0;

    if (nebula_ap_db_select(
            db, "billing_notify_due",
            "SELECT id, event, idem_key, COALESCE(user_id, 0), payload, "
            "attempts, next_at, state FROM notifications WHERE state IN "
            "('pending', 'sending') AND next_at <= %lld ORDER BY next_at, id "
            "LIMIT " NOTIFY_BATCH,
            1, args, &rows, &err) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02344: billing notifications: cannot read the outbox: %s", err);
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        outbox_row_t row;
        apr_pool_t *rp;
        const char *why = NULL;
        int outcome;

        memset(&row, 0, sizeof(row));
        row.id = nebula_ap_db_int(&rows, i, 0);
        row.event = rows.rows[i][1] ? rows.rows[i][1] : "";
        row.key = rows.rows[i][2] ? rows.rows[i][2] : "";
        row.user_id = nebula_ap_db_int(&rows, i, 3);
        row.payload = rows.rows[i][4] ? rows.rows[i][4] : "{}";
        row.attempts = nebula_ap_db_int(&rows, i, 5);
        row.next_at = nebula_ap_db_int(&rows, i, 6);
        row.state = rows.rows[i][7] ? rows.rows[i][7] : "";
        if (!outbox_claim(db, p, &row, billing_now_ms())) {
            continue; /* another scheduler has it */
        }
        apr_pool_create(&rp, p);
        outcome = ends_with(row.key, NOTIFY_MAIL_SUFFIX)
                      ? send_mail(db, rp, conf, &row, &why)
                      : send_webhook(rp, conf, &row, &why);
        outbox_outcome(s, db, rp, &row, outcome, why ? why : "unknown error");
        apr_pool_destroy(rp);
        ++n;
    }
    return n;
}

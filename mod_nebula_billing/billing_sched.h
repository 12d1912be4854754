/**
 * @file billing_sched.h
 * @brief The billing scheduler's own declarations (private to the
 *        billing_sched*.c, billing_period.c, billing_subscribe.c and
 *        billing_notify.c files).
 *
 * billing_period.c    plan periods: calendar and anniversary boundaries
 * billing_subscribe.c subscribe, and ending a subscription (expiry, cancel)
 * billing_sched.c     the mod_watchdog task, one pass, period resets
 * billing_notify.c    the notification outbox: queueing and delivery
 * billing_sched_net.c outbound connections (TCP, TLS) and the webhook POST
 * billing_sched_smtp.c notification e-mail
 *
 * The period part needs APR only (no httpd.h), so that the unit tests can
 * link billing_period.c alone; the rest names httpd types through forward
 * declarations for the same reason.
 */
#ifndef BILLING_SCHED_H
#define BILLING_SCHED_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_network_io.h>

/* ---- billing_period.c ---------------------------------------------------- */

/** The length of a plan's period (plans.period). */
typedef enum {
    BILLING_PERIOD_DAY = 0,
    BILLING_PERIOD_WEEK,
    BILLING_PERIOD_MONTH,
    BILLING_PERIOD_CUSTOM
} billing_period_kind_e;

/** How a plan's periods are cut. */
typedef struct {
    billing_period_kind_e kind;
    apr_int64_t seconds; /**< custom: the period's length (>= 1) */
    int anniversary;     /**< 1: from starts_at; 0: calendar (day 00:00, week
                              Monday 00:00, month the 1st 00:00, local time) */
} billing_period_t;

/**
 * Fill @a bp from a plan row: @a period day|week|month|custom, @a seconds
 * (custom only), @a alignment calendar|anniversary (custom periods are
 * always anniversary). Returns 0, or -1 when the values are not a period.
 */
int billing_period_parse(billing_period_t *bp, const char *period, apr_int64_t seconds,
                         const char *alignment);

/**
 * The period [*@a start, *@a end) (Unix ms) that holds @a t, for a
 * subscription that started at @a starts_at (ms). Calendar periods follow
 * the process's local time zone (NebulaTimeZone sets TZ); anniversary
 * periods start at starts_at + k periods, months on the same day of the
 * month as starts_at and time of day, clamped to the month's last day (Jan
 * 31 -> Feb 28/29 -> Mar 31). A @a t before @a starts_at gives the first
 * anniversary period. Returns 0, or -1 when the time cannot be represented.
 */
int billing_period_at(const billing_period_t *bp, apr_int64_t starts_at, apr_int64_t t,
                      apr_int64_t *start, apr_int64_t *end);

/* ---- what follows needs httpd types -------------------------------------- */
struct server_rec;
struct nebula_ap_db_t;

/** The actor of the scheduler's ledger rows. */
#define BILLING_SCHED_ACTOR "scheduler"

/** Outcome of one scheduler step (a transaction). */
#define BILLING_STEP_DONE    0 /**< applied and committed */
#define BILLING_STEP_SKIPPED 1 /**< another scheduler got there first */
#define BILLING_STEP_ERROR   2 /**< logged; rolled back */

/** The server whose settings the scheduler reads (the main server). */
struct server_rec *billing_sched_main(void);

/** One transaction of the scheduler: returns BILLING_STEP_DONE (commit),
 *  _SKIPPED or _ERROR (roll back; *@a err says why). */
typedef int billing_step_fn(struct nebula_ap_db_t *db, apr_pool_t *p, void *baton,
                            const char **err);

/**
 * Run @a fn in a transaction: commit on DONE, roll back otherwise, and run
 * it again (up to three times) when the database says the transaction may
 * simply be retried (deadlock, busy). An ERROR is logged naming @a what.
 */
int billing_sched_txn(struct server_rec *s, struct nebula_ap_db_t *db, apr_pool_t *p,
                      billing_step_fn *fn, void *baton, const char *what);

/**
 * Lock account @a account_id (inside a transaction) and read its balance
 * and reserved. 0, or -1 with *@a err set.
 */
int billing_sched_account(struct nebula_ap_db_t *db, apr_pool_t *p,
                          apr_int64_t account_id, apr_int64_t *balance,
                          apr_int64_t *reserved, const char **err);

/**
 * One ledger row on a subscription's account inside the caller's
 * transaction (billing_ledger_post with check_floor 0): BILLING_STEP_DONE,
 * _SKIPPED when the idempotency key was used already (the effect exists),
 * or _ERROR.
 */
int billing_sched_post(struct nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t account_id,
                       const char *kind, apr_int64_t amount, const char *idem_key,
                       const char *actor, const char *detail, const char **err);

/**
 * End subscription @a sub_id: status @a status ("expired" or
 * "cancelled"), conditional on it being active (and, to expire it, on no
 * period reset being due before expires_at), and an expiry row taking
 * what is available on its account (idem "expiry:<sub>"), in one
 * transaction. BILLING_STEP_DONE, _SKIPPED (not active any more) or _ERROR.
 */
int billing_subscribe_end(struct server_rec *s, struct nebula_ap_db_t *db, apr_pool_t *p,
                          apr_int64_t sub_id, const char *status, const char *actor);

/** Register nebula_billing_subscribe and nebula_billing_unsubscribe. */
void billing_subscribe_register(void);

/**
 * Queue the due notifications (usage at 80 % and 100 % of the period,
 * expiry ahead) into the outbox. Returns how many events were queued.
 */
int billing_notify_queue(struct server_rec *s, struct nebula_ap_db_t *db, apr_pool_t *p,
                         apr_int64_t now);

/** Deliver the outbox rows that are due. Returns how many were attempted. */
int billing_notify_deliver(struct server_rec *s, struct nebula_ap_db_t *db, apr_pool_t *p,
                           apr_int64_t now);

/* ---- billing_sched_net.c ------------------------------------------------- */
/** Connect and read/write timeout of outbound notification traffic. */
#define BILLING_NET_TIMEOUT apr_time_from_sec(10)

typedef struct billing_conn_t billing_conn_t;

/**
 * Connect to @a host:@a port, with TLS when @a tls (SNI, the peer verified
 * against the system's CA store and @a host). The connection is closed
 * when @a p is destroyed, or by billing_conn_close(). APR_SUCCESS, or an
 * error with *@a err set.
 */
apr_status_t billing_conn_open(apr_pool_t *p, const char *host, apr_port_t port, int tls,
                               billing_conn_t **conn, const char **err);
apr_status_t billing_conn_write(billing_conn_t *c, const char *buf, apr_size_t len);
/** Read what is there (at most *@a len bytes); APR_EOF at the end. */
apr_status_t billing_conn_read(billing_conn_t *c, char *buf, apr_size_t *len);
/** One line without its CRLF (at most 1000 bytes), in @a p. */
apr_status_t billing_conn_line(billing_conn_t *c, apr_pool_t *p, const char **line);
void billing_conn_close(billing_conn_t *c);

/**
 * POST @a body (JSON) to @a url with @a headers (each "Name: value", NULL
 * ended). *@a status receives the HTTP status; APR_SUCCESS when one was
 * received, else *@a err says why.
 */
apr_status_t billing_http_post(apr_pool_t *p, const char *url, const char *const *headers,
                               const char *body, int *status, const char **err);

/* ---- billing_sched_smtp.c ------------------------------------------------ */
/**
 * Send one plain-text e-mail through the SMTP relay @a relay ("host:port"):
 * EHLO (HELO if refused), MAIL FROM, RCPT TO, DATA. APR_SUCCESS when the
 * relay accepted it, else *@a err holds its answer.
 */
apr_status_t billing_smtp_send(apr_pool_t *p, const char *relay, const char *helo,
                               const char *from, const char *to, const char *subject,
                               const char *const *headers, const char *text,
                               const char **err);

#endif /* BILLING_SCHED_H */

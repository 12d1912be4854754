/**
 * @file billing_private.h
 * @brief Declarations shared by the files of mod_nebula_billing.
 *
 * billing_config.c   directives
 * billing_price.c    the price of a request (model_prices, group ratio)
 * billing_ledger.c   accounts and the append-only, hash-chained ledger
 * billing_reserve.c  reserve -> extend -> settle / release, stale holds
 * billing_idem.c     client Idempotency-Key: claim, replay, record
 * billing_spool.c    settlements kept on disk while the database is away
 * billing_sched*.c   the mod_watchdog scheduler and notifications
 * billing_voucher.c  voucher redemption and its brute-force lockout
 *
 * Lock order inside a transaction, everywhere: reservations, subscriptions,
 * accounts, api_keys, users (so concurrent transactions cannot deadlock).
 */
#ifndef BILLING_PRIVATE_H
#define BILLING_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_billing.h"

extern module AP_MODULE_DECLARE_DATA nebula_billing_module;
APLOG_USE_MODULE(nebula_billing);

#define BILLING_UNSET (-1)
/** new-api's convention: 500000 quota units make one US dollar. */
#define BILLING_DEFAULT_QUOTA_PER_USD   APR_INT64_C(500000)
/** new-api's floor for the prompt part of a reservation. */
#define BILLING_DEFAULT_MIN_PROMPT      APR_INT64_C(500)
/** output tokens reserved when the client sets no limit (and the cap). */
#define BILLING_DEFAULT_MAX_OUTPUT      APR_INT64_C(4096)
#define BILLING_DEFAULT_RESERVATION_TTL apr_time_from_sec(15 * 60)
#define BILLING_DEFAULT_IDEM_TTL        apr_time_from_sec(24 * 3600)
#define BILLING_DEFAULT_IDEM_MAX_BODY   (1024 * 1024)
#define BILLING_DEFAULT_SCHED_INTERVAL  apr_time_from_sec(30)
#define BILLING_DEFAULT_EXPIRY_DAYS     3
#define BILLING_DEFAULT_SPOOL           "nebula-billing.spool"
#define BILLING_DEFAULT_ROLLUP_HOURS    24                            /* a pass */
#define BILLING_DEFAULT_LOG_RETENTION   (APR_INT64_C(90) * 86400000) /* ms */
#define BILLING_DEFAULT_RETENTION_BATCH 5000

/** NebulaBillingUnpriced */
#define BILLING_UNPRICED_REFUSE 0
#define BILLING_UNPRICED_FREE   1

/** Per-server settings (the scheduler reads the main server's). */
typedef struct {
    int enabled;                          /**< NebulaBilling On|Off */
    apr_int64_t quota_per_usd;            /**< NebulaQuotaPerUSD */
    int unpriced;                         /**< NebulaBillingUnpriced */
    apr_int64_t min_prompt;               /**< NebulaReserveMinPrompt */
    apr_int64_t max_output;               /**< NebulaReserveMaxOutput */
    apr_interval_time_t reservation_ttl;  /**< NebulaReservationTTL */
    apr_interval_time_t idem_ttl;         /**< NebulaIdempotencyTTL */
    apr_int64_t idem_max_body;            /**< NebulaIdempotencyMaxBody */
    const char *spool;                    /**< NebulaBillingSpool (absolute) */
    apr_interval_time_t sched_interval;   /**< NebulaSchedulerInterval */
    int scheduler;                        /**< NebulaScheduler On|Off */
    const char *timezone;                 /**< NebulaTimeZone (TZ value) */
    const char *webhook_url;              /**< NebulaNotifyWebhook URL [secret] */
    const char *webhook_secret;
    const char *smtp_relay;               /**< NebulaNotifySMTP host:port */
    const char *smtp_from;                /**< NebulaNotifyFrom */
    int expiry_days;                      /**< NebulaNotifyExpiryDays */
    apr_int64_t rollup_hours;             /**< NebulaLogRollup: hours a pass, 0 off */
    apr_int64_t log_retention;            /**< NebulaLogRetention, ms; 0: keep */
    apr_int64_t retention_batch;          /**< NebulaRetentionBatch */
} billing_srv_conf_t;

void *billing_config_create_srv(apr_pool_t *p, server_rec *s);
void *billing_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
extern const command_rec billing_config_cmds[];
const billing_srv_conf_t *billing_config_srv(server_rec *s);
/** Defaults for what no configuration level set (post_config). */
void billing_config_finalize(apr_pool_t *p, server_rec *main_server);
/** Registers the optional function nebula_billing_settings. */
void billing_config_register(void);

/** Milliseconds since the epoch. */
apr_int64_t billing_now_ms(void);
/** Decimal text of @a v in @a p. */
const char *billing_i64(apr_pool_t *p, apr_int64_t v);

/* ---- billing_price.c ----------------------------------------------------- */
#include "nebula_price.h"
/** A model's price and a group's ratio, as loaded for one request. */
typedef struct {
    int priced;               /**< 0: no price row, and unpriced models are free */
    const char *model;
    nebula_price_t price;
    apr_int64_t group_ppm;
} billing_price_t;

/** Load the price of @a model and the ratio of @a group: OK, UNPRICED
 *  (refused by configuration) or ERROR (logged). */
int billing_price_load(nebula_ap_db_t *db, request_rec *r, const char *model,
                       const char *group, billing_price_t *bp);
/** The cost of @a usage at @a bp: OK or INVALID (absurd usage, logged). */
int billing_price_compute(request_rec *r, const billing_price_t *bp,
                          const nebula_usage_t *usage, apr_int64_t calls, apr_int64_t *cost);
/** The usage @a req may reach at most (prompt floor, output cap). */
void billing_price_worst_usage(request_rec *r, const nebula_req_t *req, nebula_usage_t *u);
/** Look up @a model's price and @a group's ratio and price @a usage.
 *  NEBULA_BILLING_OK, UNPRICED (no price row, refused by configuration),
 *  INVALID (absurd usage: logged, never charged or credited) or ERROR. */
int billing_price_usage(nebula_ap_db_t *db, request_rec *r, const char *model,
                        const char *group, const nebula_usage_t *usage, apr_int64_t calls,
                        apr_int64_t *cost);
/** The worst-case cost of @a req (reserve). Same codes. */
int billing_price_worst(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                        apr_int64_t *cost);

/* ---- billing_ledger.c ---------------------------------------------------- */
/** One ledger posting inside the caller's transaction. */
typedef struct {
    apr_int64_t account_id;
    const char *kind;          /**< NEBULA_LEDGER_* */
    apr_int64_t amount;        /**< signed change of balance */
    apr_int64_t reserved_delta;/**< signed change of reserved (settle: -hold) */
    int check_floor;           /**< refuse below -overdraft_limit */
    const char *request_id;
    const char *idem_key;      /**< required */
    const char *actor;
    const char *detail;        /**< JSON object text or NULL */
} billing_post_t;

/**
 * Append one row to @a bp->account_id's ledger and change its balance (and
 * reserved), inside a transaction the caller opened. OK; DUPLICATE when
 * (account, idem_key) exists (@a out describes that row; nothing changed);
 * INSUFFICIENT when check_floor refuses; INVALID when there is no such
 * account; ERROR (*@a err set). On anything but OK the caller rolls back.
 */
int billing_ledger_post(nebula_ap_db_t *db, apr_pool_t *p, const billing_post_t *bp,
                        nebula_posting_result_t *out, const char **err);

/** The id of the account of (@a owner_kind, @a owner_id), created (unit
 *  @a unit) when @a create and missing. OK, INVALID (missing) or ERROR. */
int billing_account_id(nebula_ap_db_t *db, apr_pool_t *p, const char *owner_kind,
                       apr_int64_t owner_id, const char *unit, int create,
                       apr_int64_t *id, const char **err);

/** nebula_billing_post on a connection of its own (also for the scheduler
 *  with @a r NULL and @a s set). */
int billing_post(server_rec *s, apr_pool_t *p, const nebula_posting_t *np,
                 nebula_posting_result_t *out);

/* ---- billing_subscribe.c ------------------------------------------------- */
/** A subscription to begin (billing_subscribe_in_txn). */
typedef struct {
    apr_int64_t plan_id;
    const char *subject_kind;   /**< "user", "org" or "key" */
    apr_int64_t subject_id;
    apr_int64_t starts_at;      /**< Unix ms */
    apr_int64_t expires_at;     /**< Unix ms, 0: never */
    apr_int64_t now;
    const char *actor;
    const char *detail;         /**< the plan grant's detail; NULL: its period */
} billing_sub_t;

/**
 * Subscribe inside the caller's transaction: the subscription row, its
 * allowance account (in the plan's metric) and the first period's
 * plan_grant (*@a grant). BILLING_STEP_DONE (billing_sched.h; *@a sub_id set), _SKIPPED
 * (*@a why: no such plan or subject, plan not active, no valid period) or
 * _ERROR (*@a err).
 */
int billing_subscribe_in_txn(nebula_ap_db_t *db, apr_pool_t *p, const billing_sub_t *in,
                             apr_int64_t *sub_id, nebula_posting_result_t *grant,
                             const char **why, const char **err);

/** Whether the last error on a connection is a unique-key violation. */
int billing_db_conflict(const char *err);
/** Whether a failed transaction may simply be run again (deadlock, busy). */
int billing_db_retriable(const char *err);

/* ---- billing_reserve.c --------------------------------------------------- */
/** A credit hold (nebula_billing.h), in the request pool. */
struct nebula_reservation_t {
    const char *id;          /* the request id */
    const nebula_req_t *req;
    apr_int64_t account_id;  /* who pays: a wallet or a subscription's account */
    apr_int64_t sub_id;      /* 0: the wallet */
    const char *unit;        /* quota, tokens or requests */
    apr_int64_t hold;        /* held on the account, in unit */
    apr_int64_t key_hold;    /* held on the key, in quota units */
    billing_price_t price;
    const char *caps;        /* holds on usage caps (billing_caps.c), JSON */
    int resolved;
};

void billing_reserve_register(void);
/** What @a usage counts in @a unit (quota, tokens, requests), given its
 *  cost in quota units. */
apr_int64_t billing_in_unit(const char *unit, const nebula_usage_t *u, apr_int64_t cost_q);
/** Expire holds past expires_at (killed processes): hold back to the
 *  account and the key, state expired. Returns how many. */
int billing_reserve_reclaim(server_rec *s, apr_pool_t *p, apr_int64_t now_ms);

/* billing_rollup.c: roll closed hours of request_logs up into
 * request_log_hourly and request_log_summary, and whole days of the latter
 * (at most NebulaLogRollup hours of each a pass). Returns the hours and
 * days rolled up. */
int billing_rollup_pass(server_rec *s, apr_pool_t *p, apr_int64_t now_ms);

/* billing_rollup_summary.c, inside the rollup's transaction: write the
 * request_log_summary rows of the hour at @a hour from request_logs, or of
 * the UTC day at @a day from its hours' rows. 0 with *err on failure. */
int billing_rollup_summary_hour(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t hour,
                                const char **err);
int billing_rollup_summary_day(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t day,
                               const char **err);

/* billing_retention.c: delete request_logs rows older than
 * NebulaLogRetention, at most NebulaRetentionBatch a pass. Returns the rows
 * deleted. */
int billing_retention_pass(server_rec *s, apr_pool_t *p, apr_int64_t now_ms);

/* ---- billing_settle.c ---------------------------------------------------- */
void billing_settle_register(void);
/** Settle a reservation from a spooled record (billing_spool.c): OK (also
 *  when it was settled before), INVALID (unreadable: dropped) or ERROR. */
int billing_reserve_settle_record(server_rec *s, apr_pool_t *p, const char *json_line);

/* ---- billing_caps.c ------------------------------------------------------ */
/** Hold the worst case on every usage cap that applies to @a req, inside
 *  the reserve transaction. OK (*@a caps_json: the holds, NULL for none),
 *  INSUFFICIENT (a cap is reached; *@a err says which) or ERROR. */
int billing_caps_reserve(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                         const nebula_usage_t *worst, apr_int64_t cost_q,
                         const char **caps_json, const char **err);
/** Correct the counters held by @a caps_json to @a actual (NULL: nothing
 *  was used), inside the settling transaction. */
int billing_caps_correct(nebula_ap_db_t *db, apr_pool_t *p, const char *caps_json,
                         const nebula_usage_t *actual, apr_int64_t cost_q, apr_int64_t calls,
                         const char **err);
/** The start (Unix ms) of the calendar day, week or month holding @a now_ms. */
apr_int64_t billing_caps_period_start(const char *period, apr_int64_t now_ms);
/** The route name caps use for a protocol ("chat", "embeddings" ...). */
const char *billing_caps_route(nebula_proto_e proto);

/* ---- billing_idem.c ------------------------------------------------------ */
void billing_idem_register(void);
/** Delete idempotency records past expires_at; returns how many. */
int billing_idem_purge(server_rec *s, apr_pool_t *p, apr_int64_t now_ms);

/* ---- billing_group.c ----------------------------------------------------- */
typedef struct billing_unit_t billing_unit_t;
/** A unit of work inside a transaction shared with other units: returns
 *  NEBULA_BILLING_OK to keep what it wrote, NEBULA_BILLING_ERROR to have it
 *  undone and run alone, anything else to have it undone with that result.
 *  It must not begin, commit or roll back. */
typedef int (*billing_unit_fn)(nebula_ap_db_t *db, apr_pool_t *p, void *baton,
                               const char **err);
/** The same unit in its own transaction(s), on a connection it borrows;
 *  its result is final. */
typedef int (*billing_alone_fn)(server_rec *s, apr_pool_t *p, void *baton, const char **err);
/** The group's mutex and condition (child_init). */
void billing_group_child_init(apr_pool_t *pchild);
/** Run a unit in a group commit with this process's other threads' units;
 *  returns once its result is durable (or final). The caller must hold no
 *  connection. */
int billing_group_run(server_rec *s, apr_pool_t *p, billing_unit_fn body,
                      billing_alone_fn alone, void *baton, const char **err);

/* ---- billing_spool.c ----------------------------------------------------- */
/** The spool's thread mutex (child_init). */
void billing_spool_child_init(apr_pool_t *pchild);
/** Append one settlement (a JSON line) to the spool and fsync it. */
apr_status_t billing_spool_write(server_rec *s, apr_pool_t *p, const char *json_line);
/** Replay the spool (settling each record, idempotently); records that
 *  still fail stay. Returns how many were replayed. */
int billing_spool_replay(server_rec *s, apr_pool_t *p);

/* ---- billing_voucher.c -------------------------------------------------- */
/** Register nebula_billing_redeem. */
void billing_voucher_register(void);

/* ---- billing_sched.c ----------------------------------------------------- */
/** Register the scheduler's hooks (mod_watchdog); from register_hooks. */
void billing_sched_register_hooks(apr_pool_t *p);

#endif /* BILLING_PRIVATE_H */

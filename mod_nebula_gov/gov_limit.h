/**
 * @file gov_limit.h
 * @brief Rate and concurrency limits of mod_nebula_gov (docs/rate-limits.md).
 *
 * A limit (table gov_limits or a NebulaRateLimit directive) names a scope
 * (key, user, group or model) and a value (an id, a group name, a model glob,
 * or '*' for each one apart) and caps requests per minute, tokens per minute
 * and, on keys, concurrent streams.
 *
 * Rates are GCRA counters ("generic cell rate algorithm", a token bucket kept
 * as one timestamp): a limit of N per minute gives each unit an emission
 * interval T = 60 s / N, and the counter is the theoretical arrival time TAT.
 * "Used" is (TAT - now) / T: N requests pass at once, the next one after T.
 * A request is admitted when TAT - now + T <= 60 s; tokens are admitted while
 * TAT - now < 60 s (the window's tokens are below the limit) and then charged.
 * Streams are a count of slots held.
 *
 * The counters live in shared memory on this host (gov_limit_shm.c) or, with
 * NebulaRedis, in Redis for all hosts (gov_limit_redis.c, one Lua script per
 * check); a request falls back to shared memory when Redis fails.
 */
#ifndef GOV_LIMIT_H
#define GOV_LIMIT_H

#include <httpd.h>
#include <http_config.h>
#include <apr_tables.h>

/** The most counters one request touches (limits that apply to it, by metric). */
#define GOV_LIMIT_MAX_COUNTERS 32

/** The window every rate is expressed in. */
#define GOV_LIMIT_WINDOW apr_time_from_sec(60)

typedef enum {
    GOV_SCOPE_KEY = 0,
    GOV_SCOPE_USER,
    GOV_SCOPE_GROUP,
    GOV_SCOPE_MODEL
} gov_scope_e;

/** One limit as declared (directive or row). */
typedef struct {
    apr_int64_t id;      /**< gov_limits.id; 0 for a directive */
    apr_int64_t created; /**< gov_limits.created_at (names its counters) */
    gov_scope_e scope;
    const char *value;             /**< id, group name, model glob, or "*" */
    apr_int64_t rpm, tpm, streams; /**< 0: no limit */
    int from_config;
} gov_limit_t;

typedef enum {
    GOV_METRIC_REQUESTS = 0,
    GOV_METRIC_TOKENS,
    GOV_METRIC_STREAMS
} gov_metric_e;

/** One counter a request touches: a limit applied to one subject. */
typedef struct {
    const gov_limit_t *limit;
    gov_metric_e metric;
    const char *key;      /**< counter name, e.g. "nebula:rl:r:key:*:7" (directive) or
                               "nebula:rl:r:12.1764223000123:key:7" (row 12) */
    const char *subject;  /**< for messages: "key 7", "model gpt-4o" */
    apr_int64_t max;      /**< the limit */
    apr_int64_t interval; /**< emission interval T in microseconds (rates) */
    apr_int64_t cost;     /**< units to add (negative: give back) */
    /* results of a check or adjust */
    apr_int64_t ahead; /**< rates: TAT - now after the call (us); streams: count */
} gov_counter_t;

/** Counters of a request; the backends fill in 'ahead' of each. */
typedef struct {
    gov_counter_t *c;
    int n;
    const char *member; /**< the request's id, names its stream slot */
} gov_counters_t;

/* gov_limit.c */
/** Parse NebulaRateLimit's arguments into a new limit; an error message or NULL. */
const char *gov_limit_parse_directive(apr_pool_t *p, int argc, char *const argv[],
                                      gov_limit_t **out);
void gov_limit_register_hooks(apr_pool_t *p);

/* gov_limit_shm.c: this host's counters (shared memory, global mutex) */
apr_status_t gov_limit_shm_pre_config(apr_pool_t *pconf);
apr_status_t gov_limit_shm_post_config(apr_pool_t *pconf, server_rec *s);
void gov_limit_shm_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * Check-and-add (@a check non-zero: add nothing unless every counter admits
 * its cost) or add (@a check zero, for corrections and releases).
 * @return the index of the refusing counter, -1 when all were admitted,
 *         -2 when there is no shared table (nothing limited)
 */
int gov_limit_shm_apply(gov_counters_t *cs, apr_time_t now, int check);

/* gov_limit_redis.c: counters shared by all hosts */
/**
 * The same through Redis at @a url. Returns -3 when Redis failed (the caller
 * falls back to shared memory); the first failure of an outage is logged.
 */
int gov_limit_redis_apply(apr_pool_t *p, server_rec *s, const char *url,
                          gov_counters_t *cs, apr_time_t now, int check);
void gov_limit_redis_child_init(apr_pool_t *pchild, server_rec *s);

#endif /* GOV_LIMIT_H */

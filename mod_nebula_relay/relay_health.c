/* relay_health.c: the host-wide health table of relay_health.h, as httpd
 * glue over nebula_breaker (apr_common), which owns the table's layout and
 * the breaker state machine. This file owns the directives (NebulaBreaker,
 * NebulaAutoDisable, NebulaHealthSlots), the anonymous shared memory the
 * parent creates in post_config (children inherit it; a restart makes a new
 * one, so health starts over), and the "nebula-health" global mutex that
 * guards it (configurable with the Mutex directive). Tags NEB01300-NEB01399. */
#include <errno.h>
#include <strings.h>

#include <apr_global_mutex.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <util_mutex.h>
#include "relay_private.h"
#include "nebula_ap.h"
#include "relay_health.h"
#include "nebula_breaker.h"

#define HEALTH_MUTEX_TYPE "nebula-health"

/* Host-wide settings: reset to the defaults in pre_config, before every read
 * of the configuration, so a directive removed at restart loses its effect. */
static relay_health_conf_t health_conf;

/* Set by the parent in post_config and inherited by the children; NULL when
 * there is no table (then every channel is allowed and nothing is recorded). */
static nebula_breaker_t *health_table;
static apr_global_mutex_t *health_mutex; /* re-opened by each child */
static server_rec *health_server;        /* the main server, for the log */

/* ---- directives ---------------------------------------------------------- */

static void health_conf_default(relay_health_conf_t *c)
{
    nebula_breaker_conf_t d;

    nebula_breaker_conf_default(&d);
    c->breaker_threshold = d.threshold;
    c->breaker_cooldown = d.cooldown;
    c->disable_count = d.disable_count;
    c->disable_window = d.disable_window;
    c->slots = d.slots;
}

/* A whole number from @a min to @a max; 0 when @a arg is not one. */
static int health_parse_int(const char *arg, apr_int64_t min, apr_int64_t max, int *out)
{
    char *end;
    apr_int64_t v;

    if (!apr_isdigit(*arg)) {
        return 0;
    }
    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || *end || v < min || v > max) {
        return 0;
    }
    *out = (int)v;
    return 1;
}

const char *relay_health_set_breaker(cmd_parms *cmd, void *dc, const char *threshold,
                                     const char *cooldown)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int n;
    apr_interval_time_t t;

    (void)dc;
    if (err) {
        return err;
    }
    if (!health_parse_int(threshold, 0, NEBULA_BREAKER_MAX_THRESHOLD, &n)) {
        return "NebulaBreaker: the threshold must be a number of consecutive failures "
               "from 1 to 100000 (0 turns the breaker off)";
    }
    if (!nebula_ap_duration(cooldown, apr_time_from_msec(100),
                               apr_time_from_sec(86400), &t)) {
        return "NebulaBreaker: the cool-down must be a duration from 100ms to 24h "
               "(e.g. 30, 30s, 2m, 500ms)";
    }
    health_conf.breaker_threshold = n;
    health_conf.breaker_cooldown = t;
    return NULL;
}

const char *relay_health_set_autodisable(cmd_parms *cmd, void *dc, const char *count,
                                         const char *window)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int n;
    apr_interval_time_t t;

    (void)dc;
    if (err) {
        return err;
    }
    if (!health_parse_int(count, 0, NEBULA_BREAKER_MAX_DISABLE, &n)) {
        return "NebulaAutoDisable: the count must be a number of definitive errors "
               "from 1 to 100 (0 never disables)";
    }
    if (!nebula_ap_duration(window, apr_time_from_sec(1), apr_time_from_sec(7 * 86400),
                               &t)) {
        return "NebulaAutoDisable: the window must be a duration from 1s to 168h "
               "(e.g. 300, 5m, 1h)";
    }
    health_conf.disable_count = n;
    health_conf.disable_window = t;
    return NULL;
}

const char *relay_health_set_slots(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int n;

    (void)dc;
    if (err) {
        return err;
    }
    if (!health_parse_int(arg, NEBULA_BREAKER_MIN_SLOTS, NEBULA_BREAKER_MAX_SLOTS, &n)) {
        return "NebulaHealthSlots: give a number of slots from 64 to 1048576";
    }
    health_conf.slots = n;
    return NULL;
}

/* ---- shared memory and mutex ----------------------------------------------- */

static apr_status_t health_lock(void *baton)
{
    apr_status_t rv = apr_global_mutex_lock(health_mutex);

    (void)baton;
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, health_server,
                     "NEB01305: cannot lock the " HEALTH_MUTEX_TYPE " mutex; channel "
                     "health is neither checked nor recorded for this call");
    }
    return rv;
}

static apr_status_t health_unlock(void *baton)
{
    apr_status_t rv = apr_global_mutex_unlock(health_mutex);

    (void)baton;
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, health_server,
                     "NEB01306: cannot unlock the " HEALTH_MUTEX_TYPE " mutex");
    }
    return rv;
}

static const nebula_breaker_lock_t health_lock_fns = {health_lock, health_unlock, NULL};

/* pconf is being cleared (restart, stop): the shared memory goes with it. */
static apr_status_t health_forget(void *data)
{
    (void)data;
    health_table = NULL;
    health_mutex = NULL;
    return APR_SUCCESS;
}

apr_status_t relay_health_pre_config(apr_pool_t *pconf)
{
    health_conf_default(&health_conf);
    /* "Mutex nebula-health:<mechanism> [dir]" may configure it */
    return ap_mutex_register(pconf, HEALTH_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

apr_status_t relay_health_post_config(apr_pool_t *pconf, server_rec *s)
{
    nebula_breaker_conf_t bc;
    nebula_breaker_t *table;
    apr_shm_t *shm;
    apr_size_t size;
    apr_status_t rv;

    health_server = s;
    nebula_breaker_conf_default(&bc);
    bc.slots = health_conf.slots;
    bc.threshold = health_conf.breaker_threshold;
    bc.cooldown = health_conf.breaker_cooldown;
    bc.probe_lease = health_conf.breaker_cooldown; /* a lost probe: retry after that */
    bc.disable_count = health_conf.disable_count;
    bc.disable_window = health_conf.disable_window;
    size = nebula_breaker_size(&bc);
    if ((rv = apr_shm_create(&shm, size, NULL, pconf)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01301: cannot create the shared health table (%" APR_SIZE_T_FMT
                     " bytes for NebulaHealthSlots %d)",
                     size, bc.slots);
        return rv;
    }
    rv =
        ap_global_mutex_create(&health_mutex, NULL, HEALTH_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01302: cannot create the " HEALTH_MUTEX_TYPE " mutex (see the "
                     "Mutex directive)");
        return rv;
    }
    rv = nebula_breaker_create(&table, apr_shm_baseaddr_get(shm), apr_shm_size_get(shm),
                               &bc, &health_lock_fns, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01303: cannot lay out the health table: %s",
                     nebula_breaker_conf_check(&bc) ? nebula_breaker_conf_check(&bc)
                                                    : "too little memory");
        return rv;
    }
    apr_pool_cleanup_register(pconf, NULL, health_forget, apr_pool_cleanup_null);
    health_table = table;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "health table: %d slots (%" APR_SIZE_T_FMT
                 " KiB), breaker %d failures / "
                 "%" APR_TIME_T_FMT " ms, auto-disable %d in %" APR_TIME_T_FMT " s",
                 bc.slots, size / 1024, bc.threshold, apr_time_as_msec(bc.cooldown),
                 bc.disable_count, apr_time_sec(bc.disable_window));
    return APR_SUCCESS;
}

apr_status_t relay_health_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (health_mutex == NULL) {
        return APR_SUCCESS;
    }
    rv = apr_global_mutex_child_init(&health_mutex,
                                     apr_global_mutex_lockfile(health_mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01304: cannot re-open the " HEALTH_MUTEX_TYPE " mutex in this "
                     "child; its requests neither check nor record channel health");
        health_table = NULL; /* unlocked access would corrupt the table */
    }
    return rv;
}

/* ---- the contract of relay_health.h ------------------------------------------ */

int relay_health_allow(apr_int64_t channel_id, int key_index, apr_time_t now)
{
    return nebula_breaker_allow(health_table, channel_id, key_index, now);
}

void relay_health_success(apr_int64_t channel_id, int key_index,
                          apr_interval_time_t latency, apr_time_t now)
{
    nebula_breaker_success(health_table, channel_id, key_index, latency, now);
}

int relay_health_failure(apr_int64_t channel_id, int key_index, int definitive,
                         apr_time_t now)
{
    return nebula_breaker_failure(health_table, channel_id, key_index, definitive, now) ==
                   NEBULA_BREAKER_DISABLE
               ? RELAY_HEALTH_DISABLE
               : RELAY_HEALTH_OK;
}

void relay_health_reset(apr_int64_t channel_id, int key_index)
{
    nebula_breaker_reset(health_table, channel_id, key_index);
}

double relay_health_weight_factor(apr_int64_t channel_id)
{
    return nebula_breaker_weight_factor(health_table, channel_id);
}

apr_array_header_t *relay_health_snapshot(apr_pool_t *p)
{
    apr_array_header_t *in, *out;
    int i;

    in = health_table ? nebula_breaker_snapshot(health_table, p, apr_time_now()) : NULL;
    out = apr_array_make(p, in ? in->nelts : 0, sizeof(relay_health_slot_t));
    for (i = 0; in && i < in->nelts; ++i) {
        const nebula_breaker_slot_t *b = &APR_ARRAY_IDX(in, i, nebula_breaker_slot_t);
        relay_health_slot_t *h = apr_array_push(out);

        h->channel_id = b->id;
        h->key_index = b->key_index;
        h->state = b->state == NEBULA_BREAKER_OPEN        ? RELAY_BREAKER_OPEN
                   : b->state == NEBULA_BREAKER_HALF_OPEN ? RELAY_BREAKER_HALF_OPEN
                                                          : RELAY_BREAKER_CLOSED;
        h->consecutive_failures = b->consecutive_failures;
        h->open_until = b->open_until;
        h->recent_definitive = b->recent_definitive;
        h->success_ewma = b->success_ewma;
        h->latency_ewma_ms = b->latency_ewma_ms;
        h->requests = b->requests;
        h->failures = b->failures;
    }
    return out;
}

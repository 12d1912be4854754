/**
 * @file relay_health.h
 * @brief Health of channels and of their upstream keys, shared by every
 *        process of the host: circuit breaker, auto-disable counting, and
 *        the moving averages adaptive routing weighs channels by.
 *
 * State lives in shared memory created by the parent (post_config) and
 * guarded by a global mutex, so all children see one breaker per channel.
 * Slots are keyed by (channel id, key index); key index -1 is the channel as
 * a whole. A fixed number of slots (NebulaHealthSlots) bounds the memory; the
 * least recently used slot is recycled when the table is full.
 *
 * Breaker (per slot): CLOSED; after NebulaBreakerThreshold consecutive
 * failures -> OPEN for NebulaBreakerCooldown; then HALF_OPEN: exactly one
 * caller (in any process) is granted a probe; its success closes the
 * breaker, its failure re-opens it for another cool-down.
 *
 * Auto-disable: definitive failures (401, configured keywords) are counted
 * in a sliding window; relay_health_failure() answers RELAY_HEALTH_DISABLE
 * once NebulaAutoDisable's count is reached within its window, and the caller
 * disables the channel or key in the database. A single error never does.
 */
#ifndef RELAY_HEALTH_H
#define RELAY_HEALTH_H

#include <httpd.h>
#include <http_config.h>
#include <apr_tables.h>

/** Whole-channel slot. */
#define RELAY_HEALTH_CHANNEL (-1)

typedef enum {
    RELAY_BREAKER_CLOSED = 0,
    RELAY_BREAKER_OPEN,
    RELAY_BREAKER_HALF_OPEN
} relay_breaker_state_e;

/** What relay_health_failure() asks the caller to do. */
#define RELAY_HEALTH_OK      0
#define RELAY_HEALTH_DISABLE 1 /**< disable it: the definitive-error threshold was reached */

/** Per-server settings of the health table (directives in relay_health.c). */
typedef struct {
    int breaker_threshold;              /**< consecutive failures that open it */
    apr_interval_time_t breaker_cooldown;
    int disable_count;                  /**< definitive errors ... */
    apr_interval_time_t disable_window; /**< ... within this window disable */
    int slots;                          /**< size of the shared table */
} relay_health_conf_t;

/** A copy of one slot, for mod_status and the admin API. */
typedef struct {
    apr_int64_t channel_id;
    int key_index;
    relay_breaker_state_e state;
    int consecutive_failures;
    apr_time_t open_until;        /**< 0 unless OPEN */
    int recent_definitive;        /**< definitive errors in the current window */
    double success_ewma;          /**< 0..1 */
    double latency_ewma_ms;
    apr_uint64_t requests, failures;
} relay_health_slot_t;

/**
 * The health directives, as command_rec initialisers: relay_config.c puts
 * RELAY_HEALTH_COMMANDS into mod_nebula_relay's one directive table. The
 * settings are host-wide (one shared table), so the directives are allowed
 * in the main server config only; their setters live in relay_health.c.
 */
const char *relay_health_set_breaker(cmd_parms *cmd, void *dc, const char *threshold,
                                     const char *cooldown);
const char *relay_health_set_autodisable(cmd_parms *cmd, void *dc, const char *count,
                                         const char *window);
const char *relay_health_set_slots(cmd_parms *cmd, void *dc, const char *n);
#define RELAY_HEALTH_COMMANDS                                                          \
    AP_INIT_TAKE2("NebulaBreaker", relay_health_set_breaker, NULL, RSRC_CONF,           \
                  "Consecutive failures that open a channel's breaker, and its "       \
                  "cool-down (default 5 30s)"),                                          \
    AP_INIT_TAKE2("NebulaAutoDisable", relay_health_set_autodisable, NULL, RSRC_CONF,   \
                  "Definitive errors within a window that disable a channel or key "   \
                  "(default 3 5m)"),                                                     \
    AP_INIT_TAKE1("NebulaHealthSlots", relay_health_set_slots, NULL, RSRC_CONF,         \
                  "Channels and keys the shared health table holds (default 4096)")

/** Create the shared table and its mutex; parent, post_config. */
apr_status_t relay_health_post_config(apr_pool_t *pconf, server_rec *s);
/** Re-open the mutex in a child; child_init. */
apr_status_t relay_health_child_init(apr_pool_t *pchild, server_rec *s);
/** Register the mutex type; pre_config. */
apr_status_t relay_health_pre_config(apr_pool_t *pconf);

/**
 * May @a channel_id / @a key_index be tried now? 1 when CLOSED, or when
 * HALF_OPEN and this caller won the single probe (then it must report the
 * outcome); 0 when OPEN or another caller holds the probe.
 */
int relay_health_allow(apr_int64_t channel_id, int key_index, apr_time_t now);

/** Report a success (and its latency to the first byte) for the slot. */
void relay_health_success(apr_int64_t channel_id, int key_index,
                          apr_interval_time_t latency, apr_time_t now);

/**
 * Report a failure. @a definitive: an error that will not heal by waiting
 * (invalid key, quota exhausted). Returns RELAY_HEALTH_DISABLE when the
 * caller should disable the channel/key now, else RELAY_HEALTH_OK.
 */
int relay_health_failure(apr_int64_t channel_id, int key_index, int definitive,
                         apr_time_t now);

/** Forget a slot (after an admin re-enables or deletes a channel). */
void relay_health_reset(apr_int64_t channel_id, int key_index);

/**
 * Adaptive routing: a factor in [0.05, 1] by which to scale the channel's
 * configured weight, from its success and latency moving averages relative
 * to the other channels seen (1 for channels without history).
 */
double relay_health_weight_factor(apr_int64_t channel_id);

/** Copies of every used slot, allocated in @a p. */
apr_array_header_t *relay_health_snapshot(apr_pool_t *p);

#endif /* RELAY_HEALTH_H */

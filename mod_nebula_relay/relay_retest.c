/* relay_retest.c: auto-disabled channels and upstream keys come back by
 * themselves. A singleton watchdog (mod_watchdog: one child per host runs
 * it) gives every channel or key that has been auto-disabled for
 * NebulaRetestInterval another chance: it is enabled again on probation, the
 * next requests test it for real (failures are retried on other channels or
 * keys, so clients do not see them), and if it still fails the breaker and
 * NebulaAutoDisable take it out again. Several hosts may run it at once: the
 * UPDATEs are conditional on the state they change. */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_core.h>
#include <mod_watchdog.h>
#include "relay_private.h"
#include "relay_health.h"
#include "relay_admin.h"

#define RETEST_WATCHDOG "_nebula_retest_"

#define I64(p, v) apr_psprintf((p), "%" APR_INT64_T_FMT, (apr_int64_t)(v))

/* A channel on probation starts with clean breakers: its own and its keys'. */
static void reset_health(nebula_ap_db_t *db, apr_pool_t *p, apr_int64_t id)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL, *args[1];
    apr_int64_t i, n = 0;

    args[0] = I64(p, id);
    if (nebula_ap_db_select(db, "relay_retest_nkeys",
                            "SELECT COUNT(*) FROM channel_keys WHERE channel_id = %lld", 1,
                            args, &rows, &err) == APR_SUCCESS) {
        n = nebula_ap_db_int(&rows, 0, 0);
    }
    relay_health_reset(id, RELAY_HEALTH_CHANNEL);
    for (i = 0; i < n; ++i) {
        relay_health_reset(id, (int)i);
    }
}

static int reenable_channels(apr_pool_t *p, server_rec *s, nebula_ap_db_t *db,
                             const char *now, const char *cutoff)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL, *args[2];
    int i, n = 0;

    args[0] = cutoff;
    if (nebula_ap_db_select(db, "relay_retest_due",
                            "SELECT id FROM channels WHERE status = 'auto_disabled' "
                            "AND status_changed_at < %lld", 1, args, &rows, &err)) {
        return 0;
    }
    for (i = 0; i < rows.nrows; ++i) {
        apr_int64_t id = nebula_ap_db_int(&rows, i, 0);
        int changed = 0;

        args[0] = now;
        args[1] = I64(p, id);
        if (nebula_ap_db_exec(db, "relay_retest_enable",
                              "UPDATE channels SET status = 'enabled', status_reason = NULL, "
                              "status_changed_at = %lld WHERE id = %lld AND status = "
                              "'auto_disabled'", 2, args, &changed, &err) == APR_SUCCESS
            && changed && relay_abilities_rebuild(db, p, id, &err) == APR_SUCCESS) {
            reset_health(db, p, id);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "NEB01100: channel %" APR_INT64_T_FMT " was auto-disabled long "
                         "enough: enabled again on probation", id);
            ++n;
        }
    }
    return n;
}

static int reenable_keys(apr_pool_t *p, server_rec *s, nebula_ap_db_t *db,
                         const char *cutoff)
{
    const char *err = NULL, *args[1];
    int changed = 0;

    args[0] = cutoff;
    if (nebula_ap_db_exec(db, "relay_retest_keys",
                          "UPDATE channel_keys SET status = 'enabled', failures = 0 "
                          "WHERE status = 'auto_disabled' AND disabled_at < %lld",
                          1, args, &changed, &err) == APR_SUCCESS && changed > 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "NEB01101: %d auto-disabled upstream key(s) enabled again on "
                     "probation", changed);
        return changed;
    }
    return 0;
}

static apr_status_t retest_callback(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    apr_interval_time_t every = relay_config_srv(s)->retest;
    apr_int64_t now = apr_time_as_msec(apr_time_now());
    nebula_ap_db_t *db;
    apr_pool_t *p;
    int n;

    if (state != AP_WATCHDOG_STATE_RUNNING || every <= 0) {
        return APR_SUCCESS;
    }
    apr_pool_create(&p, pool);
    if ((db = nebula_ap_db_open(p, s)) != NULL) {
        const char *cutoff = I64(p, now - apr_time_as_msec(every));
        n = reenable_channels(p, s, db, I64(p, now), cutoff) + reenable_keys(p, s, db, cutoff);
        nebula_ap_db_close(db);
        if (n > 0) {
            relay_gen_bump();
        }
    }
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

int relay_retest_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *reg =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    apr_interval_time_t every = relay_config_srv(s)->retest, tick;
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG || every <= 0) {
        return OK;
    }
    if (get == NULL || reg == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB01102: mod_watchdog is not loaded: auto-disabled channels come "
                     "back only when an admin enables or tests them");
        return OK;
    }
    /* look a quarter of the interval after it is due, at least every second */
    tick = every / 4 < apr_time_from_sec(1) ? apr_time_from_sec(1)
           : every / 4 > apr_time_from_sec(60) ? apr_time_from_sec(60) : every / 4;
    if ((rv = get(&wd, RETEST_WATCHDOG, 0, 1, pconf)) != APR_SUCCESS
        || (rv = reg(wd, tick, s, retest_callback)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB01103: cannot register the channel re-test watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

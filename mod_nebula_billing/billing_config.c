/* billing_config.c: mod_nebula_billing's directives and per-server merge.
 * Every setter validates its argument and names the directive in its error;
 * conf/nebula.conf documents each one. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_core.h>
#include "billing_private.h"

#define GET(add, base, f) (((add)->f == BILLING_UNSET) ? (base)->f : (add)->f)
#define GETP(add, base, f) ((add)->f ? (add)->f : (base)->f)

void *billing_config_create_srv(apr_pool_t *p, server_rec *s)
{
    billing_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = BILLING_UNSET;
    c->quota_per_usd = BILLING_UNSET;
    c->unpriced = BILLING_UNSET;
    c->min_prompt = BILLING_UNSET;
    c->max_output = BILLING_UNSET;
    c->reservation_ttl = BILLING_UNSET;
    c->idem_ttl = BILLING_UNSET;
    c->idem_max_body = BILLING_UNSET;
    c->sched_interval = BILLING_UNSET;
    c->scheduler = BILLING_UNSET;
    c->expiry_days = BILLING_UNSET;
    c->rollup_hours = BILLING_UNSET;
    c->log_retention = BILLING_UNSET;
    c->retention_batch = BILLING_UNSET;
    return c;
}

void *billing_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    billing_srv_conf_t *base = basev, *add = addv;
    billing_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->enabled = GET(add, base, enabled);
    c->quota_per_usd = GET(add, base, quota_per_usd);
    c->unpriced = GET(add, base, unpriced);
    c->min_prompt = GET(add, base, min_prompt);
    c->max_output = GET(add, base, max_output);
    c->reservation_ttl = GET(add, base, reservation_ttl);
    c->idem_ttl = GET(add, base, idem_ttl);
    c->idem_max_body = GET(add, base, idem_max_body);
    c->sched_interval = GET(add, base, sched_interval);
    c->scheduler = GET(add, base, scheduler);
    c->expiry_days = GET(add, base, expiry_days);
    c->rollup_hours = GET(add, base, rollup_hours);
    c->log_retention = GET(add, base, log_retention);
    c->retention_batch = GET(add, base, retention_batch);
    c->spool = GETP(add, base, spool);
    c->timezone = GETP(add, base, timezone);
    c->webhook_url = GETP(add, base, webhook_url);
    c->webhook_secret = add->webhook_url ? add->webhook_secret : base->webhook_secret;
    c->smtp_relay = GETP(add, base, smtp_relay);
    c->smtp_from = GETP(add, base, smtp_from);
    return c;
}

const billing_srv_conf_t *billing_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &nebula_billing_module);
}

/* nebula_billing.h: the admin API's settings page */
static void nebula_billing_settings(server_rec *s, nebula_billing_settings_t *out)
{
    const billing_srv_conf_t *c = billing_config_srv(s);

    out->enabled = c->enabled != 0;
    out->quota_per_usd = c->quota_per_usd;
    out->unpriced_free = c->unpriced == BILLING_UNPRICED_FREE;
}

void billing_config_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_settings);
}

#define DEFAULT(f, v) if (c->f == BILLING_UNSET) c->f = (v)

/* Fill in the defaults of what no level set, on every server (post_config,
 * after the merge), so that readers never see BILLING_UNSET. */
void billing_config_finalize(apr_pool_t *p, server_rec *main_server)
{
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        billing_srv_conf_t *c = ap_get_module_config(s->module_config, &nebula_billing_module);

        DEFAULT(enabled, 1);
        DEFAULT(quota_per_usd, BILLING_DEFAULT_QUOTA_PER_USD);
        DEFAULT(unpriced, BILLING_UNPRICED_REFUSE);
        DEFAULT(min_prompt, BILLING_DEFAULT_MIN_PROMPT);
        DEFAULT(max_output, BILLING_DEFAULT_MAX_OUTPUT);
        DEFAULT(reservation_ttl, BILLING_DEFAULT_RESERVATION_TTL);
        DEFAULT(idem_ttl, BILLING_DEFAULT_IDEM_TTL);
        DEFAULT(idem_max_body, BILLING_DEFAULT_IDEM_MAX_BODY);
        DEFAULT(sched_interval, BILLING_DEFAULT_SCHED_INTERVAL);
        DEFAULT(scheduler, 1);
        DEFAULT(expiry_days, BILLING_DEFAULT_EXPIRY_DAYS);
        DEFAULT(rollup_hours, BILLING_DEFAULT_ROLLUP_HOURS);
        DEFAULT(log_retention, BILLING_DEFAULT_LOG_RETENTION);
        DEFAULT(retention_batch, BILLING_DEFAULT_RETENTION_BATCH);
        if (c->spool == NULL) {
            c->spool = ap_runtime_dir_relative(p, BILLING_DEFAULT_SPOOL);
        }
    }
}

static billing_srv_conf_t *srv(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &nebula_billing_module);
}

static const char *set_flag(cmd_parms *cmd, void *dc, int on)
{
    *(int *)((char *)srv(cmd) + (apr_size_t)cmd->info) = on;
    return NULL;
}

/* A whole number within [lo, hi] into the apr_int64_t at cmd->info. */
static const char *int_in(cmd_parms *cmd, const char *arg, apr_int64_t lo, apr_int64_t hi)
{
    char *end;
    apr_int64_t v;

    if (!apr_isdigit(*arg)) {
        goto bad;
    }
    v = apr_strtoi64(arg, &end, 10);
    if (*end || v < lo || v > hi) {
        goto bad;
    }
    *(apr_int64_t *)((char *)srv(cmd) + (apr_size_t)cmd->info) = v;
    return NULL;
bad:
    return apr_psprintf(cmd->pool, "%s: give a whole number from %" APR_INT64_T_FMT
                        " to %" APR_INT64_T_FMT, cmd->cmd->name, lo, hi);
}

static const char *set_quota_per_usd(cmd_parms *cmd, void *dc, const char *arg)
{
    return int_in(cmd, arg, 1, APR_INT64_C(1000000000000));
}

static const char *set_tokens(cmd_parms *cmd, void *dc, const char *arg)
{
    return int_in(cmd, arg, 0, APR_INT64_C(10000000));
}

static const char *set_max_body(cmd_parms *cmd, void *dc, const char *arg)
{
    return int_in(cmd, arg, 1024, APR_INT64_C(64) * 1024 * 1024);
}

/* A duration within [lo, hi] into the apr_interval_time_t at cmd->info. */
static const char *duration_in(cmd_parms *cmd, const char *arg, apr_interval_time_t lo,
                               apr_interval_time_t hi)
{
    apr_interval_time_t *slot =
        (apr_interval_time_t *)((char *)srv(cmd) + (apr_size_t)cmd->info);

    if (!nebula_ap_duration(arg, lo, hi, slot)) {
        return apr_psprintf(cmd->pool, "%s: give a duration from %" APR_TIME_T_FMT
                            "s to %" APR_TIME_T_FMT "s (e.g. 30s, 15m, 24h)",
                            cmd->cmd->name, apr_time_sec(lo), apr_time_sec(hi));
    }
    return NULL;
}

static const char *set_reservation_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    return duration_in(cmd, arg, apr_time_from_sec(10), apr_time_from_sec(7 * 24 * 3600));
}

static const char *set_idem_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    return duration_in(cmd, arg, apr_time_from_sec(60), apr_time_from_sec(30 * 24 * 3600));
}

static const char *set_sched_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    return duration_in(cmd, arg, apr_time_from_sec(1), apr_time_from_sec(3600));
}

static const char *set_unpriced(cmd_parms *cmd, void *dc, const char *arg)
{
    if (!strcasecmp(arg, "refuse")) {
        srv(cmd)->unpriced = BILLING_UNPRICED_REFUSE;
    }
    else if (!strcasecmp(arg, "free")) {
        srv(cmd)->unpriced = BILLING_UNPRICED_FREE;
    }
    else {
        return "NebulaBillingUnpriced: give Refuse or Free";
    }
    return NULL;
}

static const char *set_spool(cmd_parms *cmd, void *dc, const char *arg)
{
    if ((srv(cmd)->spool = ap_runtime_dir_relative(cmd->pool, arg)) == NULL) {
        return apr_pstrcat(cmd->pool, "NebulaBillingSpool: invalid path ", arg, NULL);
    }
    return NULL;
}

static const char *set_timezone(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *s;

    for (s = arg; *s; ++s) {
        if (!apr_isalnum(*s) && !strchr("/_+-:", *s)) {
            return "NebulaTimeZone: give a time zone name such as UTC or Europe/Berlin";
        }
    }
    if (!*arg) {
        return "NebulaTimeZone: give a time zone name such as UTC or Europe/Berlin";
    }
    srv(cmd)->timezone = arg;
    return NULL;
}

static const char *set_webhook(cmd_parms *cmd, void *dc, const char *url, const char *secret)
{
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
        return "NebulaNotifyWebhook: give an http:// or https:// URL";
    }
    if (secret == NULL || strlen(secret) < 16) {
        return "NebulaNotifyWebhook: give the signing secret (at least 16 characters) "
               "after the URL";
    }
    srv(cmd)->webhook_url = url;
    srv(cmd)->webhook_secret = secret;
    return NULL;
}

static const char *set_smtp(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *colon = strrchr(arg, ':');

    if (colon == NULL || colon == arg || !apr_isdigit(colon[1])) {
        return "NebulaNotifySMTP: give host:port of an SMTP relay";
    }
    srv(cmd)->smtp_relay = arg;
    return NULL;
}

static const char *set_from(cmd_parms *cmd, void *dc, const char *arg)
{
    if (strchr(arg, '@') == NULL || strpbrk(arg, "\r\n<>")) {
        return "NebulaNotifyFrom: give an e-mail address";
    }
    srv(cmd)->smtp_from = arg;
    return NULL;
}

static const char *set_expiry_days(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (!apr_isdigit(*arg) || *end || v < 0 || v > 365) {
        return "NebulaNotifyExpiryDays: give a whole number of days from 0 to 365";
    }
    srv(cmd)->expiry_days = (int)v;
    return NULL;
}

/* NebulaLogRollup N|On|Off: hours rolled up a pass (On: the default). */
static const char *set_rollup(cmd_parms *cmd, void *dc, const char *arg)
{
    if (!strcasecmp(arg, "on")) {
        srv(cmd)->rollup_hours = BILLING_DEFAULT_ROLLUP_HOURS;
        return NULL;
    }
    if (!strcasecmp(arg, "off")) {
        srv(cmd)->rollup_hours = 0;
        return NULL;
    }
    return int_in(cmd, arg, 0, 10000);
}

static const char *set_retention_batch(cmd_parms *cmd, void *dc, const char *arg)
{
    return int_in(cmd, arg, 1, 1000000);
}

/* NebulaLogRetention DURATION: a number with d, h, m or s (days without a
 * unit); 0 or Off keeps everything. Whole hours at least. */
static const char *set_log_retention(cmd_parms *cmd, void *dc, const char *arg)
{
    char *unit;
    apr_int64_t n, ms;

    if (!strcasecmp(arg, "off")) {
        srv(cmd)->log_retention = 0;
        return NULL;
    }
    if (!apr_isdigit(*arg)) {
        goto bad;
    }
    n = apr_strtoi64(arg, &unit, 10);
    if (n < 0 || n > 100000) {
        goto bad;
    }
    if (!*unit || !strcasecmp(unit, "d")) {
        ms = n * 86400000;
    }
    else if (!strcasecmp(unit, "h")) {
        ms = n * 3600000;
    }
    else if (!strcasecmp(unit, "m")) {
        ms = n * 60000;
    }
    else if (!strcasecmp(unit, "s")) {
        ms = n * 1000;
    }
    else {
        goto bad;
    }
    if (ms != 0 && ms < 3600000) {
        goto bad;
    }
    srv(cmd)->log_retention = ms;
    return NULL;
bad:
    return "NebulaLogRetention: give a duration of at least 1h (e.g. 90d, 720h) or Off";
}

#define OFF(f) ((void *)APR_OFFSETOF(billing_srv_conf_t, f))

const command_rec billing_config_cmds[] = {
    AP_INIT_FLAG("NebulaBilling", set_flag, OFF(enabled), RSRC_CONF,
                 "On to charge requests relayed by this server (default On)"),
    AP_INIT_TAKE1("NebulaQuotaPerUSD", set_quota_per_usd, OFF(quota_per_usd), RSRC_CONF,
                  "Quota units that make one US dollar (default 500000)"),
    AP_INIT_TAKE1("NebulaBillingUnpriced", set_unpriced, NULL, RSRC_CONF,
                  "Refuse (default) or Free: requests for a model with no price"),
    AP_INIT_TAKE1("NebulaReserveMinPrompt", set_tokens, OFF(min_prompt), RSRC_CONF,
                  "Prompt tokens a reservation counts at least (default 500)"),
    AP_INIT_TAKE1("NebulaReserveMaxOutput", set_tokens, OFF(max_output), RSRC_CONF,
                  "Output tokens reserved when the client sets no limit, and the cap "
                  "of what is reserved up front (default 4096)"),
    AP_INIT_TAKE1("NebulaReservationTTL", set_reservation_ttl, OFF(reservation_ttl),
                  RSRC_CONF, "Age after which an unsettled hold is reclaimed (default 15m)"),
    AP_INIT_TAKE1("NebulaIdempotencyTTL", set_idem_ttl, OFF(idem_ttl), RSRC_CONF,
                  "How long an Idempotency-Key outcome is kept (default 24h)"),
    AP_INIT_TAKE1("NebulaIdempotencyMaxBody", set_max_body, OFF(idem_max_body), RSRC_CONF,
                  "Largest response stored for Idempotency-Key replay (default 1 MiB)"),
    AP_INIT_TAKE1("NebulaBillingSpool", set_spool, NULL, RSRC_CONF,
                  "File that keeps settlements while the database is unreachable "
                  "(default nebula-billing.spool in the runtime directory)"),
    AP_INIT_FLAG("NebulaScheduler", set_flag, OFF(scheduler), RSRC_CONF,
                 "On (default) to run the billing scheduler on this host"),
    AP_INIT_TAKE1("NebulaSchedulerInterval", set_sched_interval, OFF(sched_interval),
                  RSRC_CONF, "How often the billing scheduler runs (default 30s)"),
    AP_INIT_TAKE1("NebulaTimeZone", set_timezone, NULL, RSRC_CONF,
                  "Time zone of calendar-aligned plan periods (default: the process TZ)"),
    AP_INIT_TAKE12("NebulaNotifyWebhook", set_webhook, NULL, RSRC_CONF,
                   "URL and HMAC secret of the notification webhook"),
    AP_INIT_TAKE1("NebulaNotifySMTP", set_smtp, NULL, RSRC_CONF,
                  "host:port of the SMTP relay for notification e-mail"),
    AP_INIT_TAKE1("NebulaNotifyFrom", set_from, NULL, RSRC_CONF,
                  "Sender address of notification e-mail"),
    AP_INIT_TAKE1("NebulaNotifyExpiryDays", set_expiry_days, NULL, RSRC_CONF,
                  "Days before a subscription expires to notify (default 3)"),
    AP_INIT_TAKE1("NebulaLogRollup", set_rollup, OFF(rollup_hours), RSRC_CONF,
                  "Hours of request logs the scheduler rolls up a pass, or On (24) "
                  "or Off (default On)"),
    AP_INIT_TAKE1("NebulaLogRetention", set_log_retention, NULL, RSRC_CONF,
                  "Age after which request logs are deleted, or Off (default 90d)"),
    AP_INIT_TAKE1("NebulaRetentionBatch", set_retention_batch, OFF(retention_batch),
                  RSRC_CONF, "Rows deleted per table per scheduler pass (default 5000)"),
    {NULL}};

/* relay_metrics_http.c: the operations endpoints (docs/observability.md):
 * the handlers "nebula-metrics" (Prometheus text format: the request
 * metrics of relay_metrics.c and the gauges read at the scrape: open
 * streams, channel health, retries, the gateway's own time, the database,
 * Redis, held reservations, the billing spool), "nebula-healthz" (the
 * process answers) and "nebula-readyz" (the database answers SELECT 1 and,
 * when NebulaRedis is set, Redis answers PING), each put on a location with
 * SetHandler; and who may read /metrics (NebulaMetricsAllow,
 * NebulaMetricsToken). */
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_uri.h>
#include <apr_file_io.h>
#include <http_protocol.h>
#include <http_request.h>
#include <hiredis/hiredis.h>
#include "relay_private.h"
#include "relay_health.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_billing.h"
#include "nebula_gov.h"

#define METRICS_HANDLER "nebula-metrics"
#define HEALTHZ_HANDLER "nebula-healthz"
#define READYZ_HANDLER  "nebula-readyz"
#define REDIS_PING_MS   250
#define SPOOL_DEFAULT   "nebula-billing.spool"
#define TOKEN_MIN       16

struct relay_metrics_conf_t {
    apr_array_header_t *allow; /* apr_ipsubnet_t *; NULL: unset (loopback) */
    int allow_set;
    const char *token;         /* NebulaMetricsToken; NULL: none */
};

/* ---- configuration ------------------------------------------------------ */

static relay_metrics_conf_t *conf_of(cmd_parms *cmd)
{
    relay_srv_conf_t *sc = relay_config_srv(cmd->server);

    if (sc->metrics == NULL) {
        sc->metrics = apr_pcalloc(cmd->pool, sizeof(*sc->metrics));
    }
    return sc->metrics;
}

const char *relay_metrics_set_allow(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_metrics_conf_t *mc = conf_of(cmd);
    apr_ipsubnet_t *sub;
    char *ip = apr_pstrdup(cmd->pool, arg), *mask = strchr(ip, '/');

    if (!mc->allow_set) {
        mc->allow = apr_array_make(cmd->pool, 4, sizeof(apr_ipsubnet_t *));
        mc->allow_set = 1;
    }
    if (!strcasecmp(arg, "none")) {
        return NULL; /* nothing by address: the token only */
    }
    if (mask) {
        *mask++ = '\0';
    }
    if (apr_ipsubnet_create(&sub, ip, mask, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "NebulaMetricsAllow: '%s' is not an address or a "
                            "range (127.0.0.1, 10.0.0.0/8, fd00::/8) nor none", arg);
    }
    APR_ARRAY_PUSH(mc->allow, apr_ipsubnet_t *) = sub;
    return NULL;
}

const char *relay_metrics_set_token(cmd_parms *cmd, void *dc, const char *arg)
{
    if (strlen(arg) < TOKEN_MIN) {
        return apr_psprintf(cmd->pool, "NebulaMetricsToken: the token must have %d "
                            "characters at least", TOKEN_MIN);
    }
    conf_of(cmd)->token = arg;
    return NULL;
}

relay_metrics_conf_t *relay_metrics_merge(apr_pool_t *p, relay_metrics_conf_t *base,
                                          relay_metrics_conf_t *add)
{
    relay_metrics_conf_t *c;

    if (base == NULL || add == NULL) {
        return add ? add : base;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->allow_set = add->allow_set || base->allow_set;
    c->allow = add->allow_set ? add->allow : base->allow;
    c->token = add->token ? add->token : base->token;
    return c;
}

/* ---- access ------------------------------------------------------------- */

static int token_ok(request_rec *r, const char *token)
{
    const char *h = apr_table_get(r->headers_in, "Authorization");
    apr_size_t i, n;
    unsigned char diff = 0;

    if (token == NULL || h == NULL || strncasecmp(h, "Bearer ", 7)) {
        return 0;
    }
    h += 7;
    n = strlen(token);
    if (strlen(h) != n) {
        return 0;
    }
    for (i = 0; i < n; ++i) { /* the same time whatever the first difference */
        diff |= (unsigned char)(h[i] ^ token[i]);
    }
    return diff == 0;
}

static int address_ok(request_rec *r, const relay_metrics_conf_t *mc)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1", NULL};
    apr_sockaddr_t *sa = r->useragent_addr ? r->useragent_addr : r->connection->client_addr;
    apr_ipsubnet_t *sub;
    int i;

    if (mc && mc->allow_set) {
        for (i = 0; i < mc->allow->nelts; ++i) {
            if (apr_ipsubnet_test(APR_ARRAY_IDX(mc->allow, i, apr_ipsubnet_t *), sa)) {
                return 1;
            }
        }
        return 0;
    }
    for (i = 0; loopback[i]; ++i) {
        char *ip = apr_pstrdup(r->pool, loopback[i]), *mask = strchr(ip, '/');
        if (mask) {
            *mask++ = '\0';
        }
        if (apr_ipsubnet_create(&sub, ip, mask, r->pool) == APR_SUCCESS
            && apr_ipsubnet_test(sub, sa)) {
            return 1;
        }
    }
    return 0;
}

/* ---- probes ------------------------------------------------------------- */

/* The database answers SELECT 1 (on a connection given back at once). With
 * @a held, also the reservations held and their amount (billing loaded). */
static int db_probe(request_rec *r, int held, apr_int64_t *count, apr_int64_t *amount)
{
    nebula_ap_db_t *db = nebula_ap_db_open(r->pool, r->server);
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int up;

    *count = *amount = -1;
    if (db == NULL) {
        return 0;
    }
    up = nebula_ap_db_select(db, "relay_metrics_ping", "SELECT 1", 0, NULL, &rows, &err)
             == APR_SUCCESS;
    if (up && held
        && nebula_ap_db_select(db, "relay_metrics_held",
                               "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM reservations "
                               "WHERE state = 'held'", 0, NULL, &rows, &err) == APR_SUCCESS
        && rows.nrows == 1) {
        *count = nebula_ap_db_int(&rows, 0, 0);
        *amount = nebula_ap_db_int(&rows, 0, 1);
    }
    nebula_ap_db_close(db);
    if (!up) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB01811: the database did not answer SELECT 1: %s",
                      err ? err : "?");
    }
    return up;
}

/* -1: NebulaRedis unset; 1: PING answered within REDIS_PING_MS; 0: not. */
static int redis_probe(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(nebula_relay_redis_url) *url_of =
        APR_RETRIEVE_OPTIONAL_FN(nebula_relay_redis_url);
    struct timeval tv = {0, REDIS_PING_MS * 1000};
    const char *url = url_of ? url_of(r->server) : NULL;
    redisContext *c;
    redisReply *rep = NULL;
    apr_uri_t u;
    int ok = 0;

    if (url == NULL || apr_uri_parse(r->pool, url, &u) != APR_SUCCESS || !u.hostname) {
        return -1;
    }
    c = redisConnectWithTimeout(u.hostname, u.port ? u.port : 6379, tv);
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        if (u.password && *u.password) {
            rep = redisCommand(c, "AUTH %s", u.password);
            ok = rep && rep->type != REDIS_REPLY_ERROR;
            if (rep) {
                freeReplyObject(rep);
            }
        }
        else {
            ok = 1;
        }
        rep = ok ? redisCommand(c, "PING") : NULL;
        ok = rep && rep->type == REDIS_REPLY_STATUS && !strcasecmp(rep->str, "PONG");
        if (rep) {
            freeReplyObject(rep);
        }
    }
    if (c) {
        redisFree(c);
    }
    if (!ok) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB01812: Redis at %s:%d did not answer PING within %d ms",
                      u.hostname, u.port ? u.port : 6379, REDIS_PING_MS);
    }
    return ok;
}

/* NebulaBillingSpool as configured (first found), else billing's default. */
static const char *spool_find(apr_pool_t *p, ap_directive_t *d)
{
    const char *found;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "NebulaBillingSpool") && d->args) {
            const char *args = d->args;
            return ap_runtime_dir_relative(p, ap_getword_conf(p, &args));
        }
        if (d->first_child && (found = spool_find(p, d->first_child)) != NULL) {
            return found;
        }
    }
    return NULL;
}

/* Records (lines) and bytes waiting in the billing spool. */
static void spool_backlog(request_rec *r, apr_int64_t *records, apr_int64_t *bytes)
{
    const char *path = spool_find(r->pool, ap_conftree);
    char buf[65536];
    apr_file_t *f;
    apr_size_t n, i;

    *records = *bytes = 0;
    if (path == NULL) {
        path = ap_runtime_dir_relative(r->pool, SPOOL_DEFAULT);
    }
    if (path == NULL
        || apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, r->pool)
               != APR_SUCCESS) {
        return; /* no spool: nothing waits */
    }
    for (;;) {
        n = sizeof(buf);
        if (apr_file_read(f, buf, &n) != APR_SUCCESS || n == 0) {
            break;
        }
        *bytes += (apr_int64_t)n;
        for (i = 0; i < n; ++i) {
            *records += buf[i] == '\n';
        }
    }
    apr_file_close(f);
}

/* ---- /metrics ----------------------------------------------------------- */

static void gauge(request_rec *r, const char *name, const char *help, const char *type,
                  const char *fmt_value)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name,
               fmt_value);
}

#define I64S(v) apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)(v))
#define U64S(v) apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, (apr_uint64_t)(v))

static const char *health_labels(request_rec *r, const relay_health_slot_t *h)
{
    return apr_psprintf(r->pool, "channel=\"%" APR_INT64_T_FMT "\",key=\"%s\"", h->channel_id,
                        h->key_index < 0 ? "all" : apr_itoa(r->pool, h->key_index));
}

static void write_health(request_rec *r)
{
    apr_array_header_t *slots = relay_health_snapshot(r->pool);
    int i, f;
    static const char *const fam[][3] = {
        {"nebula_channel_breaker_state", "gauge",
         "Circuit breaker of a channel (key \"all\") or of one upstream key: 0 closed, "
         "1 open, 2 half-open"},
        {"nebula_channel_consecutive_failures", "gauge", "Failures in a row"},
        {"nebula_channel_success_ratio", "gauge", "Moving average of the success rate"},
        {"nebula_channel_latency_seconds", "gauge", "Moving average of the latency"},
        {"nebula_channel_weight_factor", "gauge",
         "What adaptive routing multiplies the channel's weight by (0.05 .. 1)"}};

    for (f = 0; f < 5; ++f) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0],
                   fam[f][1]);
        for (i = 0; slots && i < slots->nelts; ++i) {
            const relay_health_slot_t *h = &APR_ARRAY_IDX(slots, i, relay_health_slot_t);
            const char *l = health_labels(r, h);
            switch (f) {
            case 0:
                ap_rprintf(r, "%s{%s} %d\n", fam[f][0], l,
                           h->state == RELAY_BREAKER_OPEN        ? 1
                           : h->state == RELAY_BREAKER_HALF_OPEN ? 2 : 0);
                break;
            case 1:
                ap_rprintf(r, "%s{%s} %d\n", fam[f][0], l, h->consecutive_failures);
                break;
            case 2:
                ap_rprintf(r, "%s{%s} %.4f\n", fam[f][0], l, h->success_ewma);
                break;
            case 3:
                ap_rprintf(r, "%s{%s} %.6f\n", fam[f][0], l, h->latency_ewma_ms / 1000.0);
                break;
            default:
                if (h->key_index < 0) {
                    ap_rprintf(r, "%s{channel=\"%" APR_INT64_T_FMT "\"} %.4f\n", fam[f][0],
                               h->channel_id, relay_health_weight_factor(h->channel_id));
                }
            }
        }
    }
}

static void write_host(request_rec *r)
{
    relay_stats_t st;
    apr_uint64_t retries, refused;

    relay_stats_read(&st);
    relay_budget_read(&retries, &refused);
    gauge(r, "nebula_streams_open", "Streams (SSE, WebSocket) being relayed now", "gauge",
          apr_psprintf(r->pool, "%u", st.streams_open));
    gauge(r, "nebula_retries_total", "Retries made on another channel", "counter",
          U64S(retries));
    gauge(r, "nebula_retries_refused_total", "Retries the retry budget refused", "counter",
          U64S(refused));
    ap_rprintf(r, "# HELP nebula_overhead_seconds The gateway's own time per request "
                  "(docs/overhead.md)\n# TYPE nebula_overhead_seconds summary\n"
                  "nebula_overhead_seconds{quantile=\"0.5\"} %.6f\n"
                  "nebula_overhead_seconds{quantile=\"0.99\"} %.6f\n"
                  "nebula_overhead_seconds_sum %.6f\nnebula_overhead_seconds_count %"
                  APR_UINT64_T_FMT "\n",
               st.overhead_us_p50 / 1e6, st.overhead_us_p99 / 1e6, st.overhead_us_sum / 1e6,
               st.overhead_count);
}

/* The host's database borrows (httpd_common/nebula_ap_db.c): every module
 * and process together. mod_dbd itself shows nothing of its pools. */
static void write_db_pool(request_rec *r)
{
    nebula_ap_db_stats_t d;

    nebula_ap_db_stats(&d);
    gauge(r, "nebula_db_connections_borrowed",
          "Database connections lent out by mod_dbd now, all processes", "gauge",
          apr_psprintf(r->pool, "%u", d.borrowed));
    gauge(r, "nebula_db_borrows_total", "Borrows of a database connection that got one",
          "counter", apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, d.borrows));
    gauge(r, "nebula_db_borrow_failures_total",
          "Borrows that got no connection (NEB00010: the database is down or DBDMax "
          "is exhausted)", "counter", apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, d.failures));
    gauge(r, "nebula_db_nested_borrows_total",
          "Borrows by a thread that held a connection already (NEB00014)", "counter",
          apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, d.nested));
}

static void write_backends(request_rec *r)
{
    int billing = APR_RETRIEVE_OPTIONAL_FN(nebula_billing_reserve) != NULL;
    apr_int64_t held, amount, records, bytes;
    apr_time_t t0 = apr_time_now();
    int db = db_probe(r, billing, &held, &amount), redis;

    gauge(r, "nebula_db_up", "The database answered SELECT 1 at this scrape", "gauge",
          db ? "1" : "0");
    gauge(r, "nebula_db_probe_seconds", "How long that took", "gauge",
          apr_psprintf(r->pool, "%.6f", (double)(apr_time_now() - t0) / 1e6));
    write_db_pool(r);
    if ((redis = redis_probe(r)) >= 0) {
        gauge(r, "nebula_redis_up", "Redis (NebulaRedis) answered PING at this scrape",
              "gauge", redis ? "1" : "0");
    }
    if (!billing) {
        return;
    }
    if (held >= 0) {
        gauge(r, "nebula_reservations_held", "Billing holds not yet settled or released",
              "gauge", I64S(held));
        gauge(r, "nebula_reservations_held_quota", "Their amount, in quota units", "gauge",
              I64S(amount));
    }
    spool_backlog(r, &records, &bytes);
    gauge(r, "nebula_billing_spool_records",
          "Settlements waiting in the billing spool for the database", "gauge",
          I64S(records));
    gauge(r, "nebula_billing_spool_bytes", "Size of the billing spool", "gauge", I64S(bytes));
}

static int serve_metrics(request_rec *r)
{
    const relay_metrics_conf_t *mc = relay_config_srv(r->server)->metrics;

    if (!token_ok(r, mc ? mc->token : NULL) && !address_ok(r, mc)) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error", "metrics_forbidden",
                               NULL, "/metrics is for the addresses of NebulaMetricsAllow "
                               "or a bearer NebulaMetricsToken.");
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    relay_metrics_write_requests(r);
    write_host(r);
    write_health(r);
    write_backends(r);
    return OK;
}

/* ---- /healthz, /readyz --------------------------------------------------- */

static int send_json(request_rec *r, int status, json_t *body)
{
    const char *s = nebula_json_dumps(r->pool, body, JSON_COMPACT);

    json_decref(body);
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, strlen(s) + 1);
    if (!r->header_only) {
        ap_rvputs(r, s, "\n", NULL);
    }
    return OK;
}

static int serve_readyz(request_rec *r)
{
    apr_int64_t unused1, unused2;
    int db = db_probe(r, 0, &unused1, &unused2), redis = redis_probe(r);
    json_t *failed = json_array();

    if (!db) {
        json_array_append_new(failed, json_string("database"));
    }
    if (redis == 0) {
        json_array_append_new(failed, json_string("redis"));
    }
    return send_json(r, json_array_size(failed) ? HTTP_SERVICE_UNAVAILABLE : HTTP_OK,
                     json_pack("{s:s,s:s,s:s,s:o}", "status",
                               json_array_size(failed) ? "unavailable" : "ok", "database",
                               db ? "ok" : "down", "redis",
                               redis < 0 ? "off" : redis ? "ok" : "down", "failed", failed));
}

static int metrics_handler(request_rec *r)
{
    int which;

    if (r->handler == NULL) {
        return DECLINED;
    }
    which = !strcmp(r->handler, METRICS_HANDLER)   ? 1
            : !strcmp(r->handler, HEALTHZ_HANDLER) ? 2
            : !strcmp(r->handler, READYZ_HANDLER)  ? 3 : 0;
    if (which == 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) { /* HEAD is M_GET with header_only */
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return nebula_ap_error(r, HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                               "method_not_allowed", NULL, "Use GET for %s.", r->uri);
    }
    if (which == 1) {
        return serve_metrics(r);
    }
    if (which == 2) {
        return send_json(r, HTTP_OK, json_pack("{s:s}", "status", "ok"));
    }
    return serve_readyz(r);
}

void relay_metrics_http_register(void)
{
    /* its own handler names: runs for nothing else */
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

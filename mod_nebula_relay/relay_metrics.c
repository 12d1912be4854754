/* relay_metrics.c: the request metrics of /metrics (docs/observability.md),
 * host-wide: a table of series in anonymous shared memory, created by the
 * parent in post_config so that every child adds to the same counters, and
 * changed with APR's atomics (no lock).
 *
 * A series is one (model, channel, status class): its requests, tokens,
 * cost, and the histograms of latency and time to first token. A request
 * finds its series by open addressing (FNV-1a of the key, linear probing);
 * a free slot is claimed by compare-and-swap of its state (free -> being
 * written -> ready), so two processes never take one slot for two keys. At
 * most NebulaMetricsSeries series exist: past that a request counts in the
 * "other" series of its status class (model and channel "__other__"), and
 * nebula_metrics_series_overflow_total says how often. A histogram keeps a
 * count per bucket (not cumulative) and the sum; its _count is the sum of
 * its buckets at the scrape, so +Inf always equals _count. A scrape reads
 * words one by one while requests go on: a request may be in one figure and
 * not yet in another, never half in one. */
#include <string.h>
#include <sched.h>
#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "relay_model.h"

#define M_MODEL_MAX   (RELAY_MODEL_MAX + 1) /* a model name the relay admits, whole */
#define M_BUCKETS     14  /* the bounds below and +Inf */
#define M_CLASSES     6   /* status classes 0 (none), 1xx .. 5xx */
#define M_STATUS_MIN  400 /* errors are counted by status from here ... */
#define M_STATUS_N    200 /* ... to 599 */
#define M_FREE        0
#define M_WRITING     1
#define M_READY       2

/* bucket bounds in µs: 5 ms .. 60 s (the text format says seconds) */
static const apr_uint64_t bounds_us[M_BUCKETS - 1] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
static const char *const bounds_text[M_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30", "60", "+Inf"};

typedef struct {
    volatile apr_uint64_t n[M_BUCKETS];
    volatile apr_uint64_t sum_us;
} m_hist_t;

typedef struct {
    volatile apr_uint32_t state;
    apr_uint32_t hash;
    apr_int64_t channel;          /* 0: no channel was tried */
    apr_int32_t status_class;
    char model[M_MODEL_MAX];
    volatile apr_uint64_t requests;
    volatile apr_uint64_t prompt_tokens;
    volatile apr_uint64_t completion_tokens;
    volatile apr_uint64_t cost;
    m_hist_t latency;
    m_hist_t ttft;
} m_series_t;

typedef struct {
    apr_uint32_t nseries;
    volatile apr_uint64_t overflow;
    volatile apr_uint64_t errors[M_STATUS_N];
    m_series_t other[M_CLASSES];
    m_series_t series[1];         /* nseries of them */
} m_table_t;

static m_table_t *table;
static int series_max = RELAY_METRICS_DEFAULT_SERIES;

const char *relay_metrics_set_series(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    long n;

    if (err) {
        return err;
    }
    n = strtol(arg, &end, 10);
    if (*arg == '\0' || *end || n < 16 || n > 1048576) {
        return apr_psprintf(cmd->pool, "NebulaMetricsSeries: '%s' is not a number of "
                            "series between 16 and 1048576", arg);
    }
    series_max = (int)n;
    return NULL;
}

static int metrics_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    series_max = RELAY_METRICS_DEFAULT_SERIES; /* a restart reads the directive again */
    table = NULL;
    return OK;
}

static int metrics_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    apr_size_t size = sizeof(m_table_t) + (apr_size_t)(series_max - 1) * sizeof(m_series_t);
    apr_shm_t *shm;
    apr_status_t rv;
    int i;

    if ((rv = apr_shm_create(&shm, size, NULL, pconf)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "NEB01810: no shared memory for the metrics (%" APR_SIZE_T_FMT
                     " bytes); /metrics shows no request figures", size);
        table = NULL;
        return OK;
    }
    table = apr_shm_baseaddr_get(shm);
    memset(table, 0, size);
    table->nseries = (apr_uint32_t)series_max;
    for (i = 0; i < M_CLASSES; ++i) {
        table->other[i].state = M_READY;
        table->other[i].status_class = i;
        table->other[i].channel = -1;
        apr_cpystrn(table->other[i].model, "__other__", M_MODEL_MAX);
    }
    return OK;
}

/* The model name as kept: at most M_MODEL_MAX - 1 bytes, printable ASCII
 * only (other bytes become '?': a label value must be valid UTF-8). The
 * relay refuses other names before they get here (relay_model.c); this is
 * the last line, not the first. */
static void model_key(char *out, const char *model)
{
    apr_size_t i;

    for (i = 0; model && model[i] && i < M_MODEL_MAX - 1; ++i) {
        unsigned char ch = (unsigned char)model[i];
        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[i] = '\0';
}

static apr_uint32_t key_hash(const char *model, apr_int64_t channel, int cls)
{
    apr_uint32_t h = 2166136261u;
    const unsigned char *p;
    int i;

    for (p = (const unsigned char *)model; *p; ++p) {
        h = (h ^ *p) * 16777619u;
    }
    for (i = 0; i < 8; ++i) {
        h = (h ^ (apr_uint32_t)((apr_uint64_t)channel >> (8 * i) & 0xff)) * 16777619u;
    }
    return (h ^ (apr_uint32_t)cls) * 16777619u;
}

/* Wait (briefly) for a slot another process is writing; 1 when ready. */
static int slot_ready(m_series_t *sl)
{
    int spins;

    for (spins = 0; spins < 1000; ++spins) {
        if (apr_atomic_read32(&sl->state) == M_READY) {
            return 1;
        }
        sched_yield();
    }
    return 0;
}

static int slot_is(const m_series_t *sl, apr_uint32_t h, const char *model,
                   apr_int64_t channel, int cls)
{
    return sl->hash == h && sl->channel == channel && sl->status_class == cls
           && strcmp(sl->model, model) == 0;
}

/* The series of the key, claimed if new; the "other" one when full. */
static m_series_t *series_of(const char *model_in, apr_int64_t channel, int cls)
{
    char model[M_MODEL_MAX];
    apr_uint32_t h, i, n = table->nseries;

    model_key(model, model_in);
    h = key_hash(model, channel, cls);
    for (i = 0; i < n; ++i) {
        m_series_t *sl = &table->series[(h + i) % n];
        apr_uint32_t st = apr_atomic_read32(&sl->state);

        if (st == M_FREE && apr_atomic_cas32(&sl->state, M_WRITING, M_FREE) == M_FREE) {
            sl->hash = h;
            sl->channel = channel;
            sl->status_class = cls;
            memcpy(sl->model, model, sizeof(model));
            apr_atomic_set32(&sl->state, M_READY);
            return sl;
        }
        if (!slot_ready(sl)) {
            break; /* its writer died half-way: count as other */
        }
        if (slot_is(sl, h, model, channel, cls)) {
            return sl;
        }
    }
    apr_atomic_add64(&table->overflow, 1);
    return &table->other[cls];
}

static void hist_add(m_hist_t *hi, apr_interval_time_t t)
{
    apr_uint64_t us = t > 0 ? (apr_uint64_t)t : 0;
    int b = 0;

    while (b < M_BUCKETS - 1 && us > bounds_us[b]) {
        ++b;
    }
    apr_atomic_add64(&hi->n[b], 1);
    apr_atomic_add64(&hi->sum_us, us);
}

void relay_metrics_request(relay_ctx_t *ctx, apr_time_t now)
{
    int status = ctx->status ? ctx->status : ctx->r->status;
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    m_series_t *sl;

    relay_metrics_log_model(ctx->r, ctx->req.model);
    if (table == NULL) {
        return;
    }
    sl = series_of(ctx->req.model ? ctx->req.model : "",
                   ctx->channel ? ctx->channel->id : 0, cls);
    apr_atomic_add64(&sl->requests, 1);
    if (ctx->usage.prompt_tokens > 0) {
        apr_atomic_add64(&sl->prompt_tokens, (apr_uint64_t)ctx->usage.prompt_tokens);
    }
    if (ctx->usage.completion_tokens > 0) {
        apr_atomic_add64(&sl->completion_tokens, (apr_uint64_t)ctx->usage.completion_tokens);
    }
    if (ctx->cost > 0) {
        apr_atomic_add64(&sl->cost, (apr_uint64_t)ctx->cost);
    }
    hist_add(&sl->latency, now - ctx->start);
    if (ctx->first_byte) {
        hist_add(&sl->ttft, ctx->first_byte - ctx->start);
    }
    if (status >= M_STATUS_MIN && status < M_STATUS_MIN + M_STATUS_N) {
        apr_atomic_add64(&table->errors[status - M_STATUS_MIN], 1);
    }
}

/* ---- exposition (text format 0.0.4) ------------------------------------ */

/* A label value: \ and " escaped (newlines cannot occur: see model_key). */
static const char *label_escape(apr_pool_t *p, const char *v)
{
    char *out = apr_palloc(p, 2 * strlen(v) + 1), *o = out;

    for (; *v; ++v) {
        if (*v == '\\' || *v == '"') {
            *o++ = '\\';
        }
        *o++ = *v;
    }
    *o = '\0';
    return out;
}

static const char *series_labels(apr_pool_t *p, const m_series_t *sl)
{
    static const char *const cls[M_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const char *ch = sl->channel < 0   ? "__other__"
                     : sl->channel == 0 ? "none"
                                        : apr_psprintf(p, "%" APR_INT64_T_FMT, sl->channel);

    return apr_psprintf(p, "model=\"%s\",channel=\"%s\",status_class=\"%s\"",
                        label_escape(p, sl->model), ch, cls[sl->status_class]);
}

static void head(request_rec *r, const char *name, const char *type, const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The ready series with requests (the "other" ones only when used). */
static apr_array_header_t *series_list(apr_pool_t *p, int *used)
{
    apr_array_header_t *a = apr_array_make(p, 64, sizeof(const m_series_t *));
    apr_uint32_t i;

    for (i = 0; i < table->nseries; ++i) {
        const m_series_t *sl = &table->series[i];
        if (apr_atomic_read32((volatile apr_uint32_t *)&sl->state) == M_READY) {
            APR_ARRAY_PUSH(a, const m_series_t *) = sl;
        }
    }
    *used = a->nelts;
    for (i = 0; i < M_CLASSES; ++i) {
        if (apr_atomic_read64(&table->other[i].requests)) {
            APR_ARRAY_PUSH(a, const m_series_t *) = &table->other[i];
        }
    }
    return a;
}

#define SERIES_FIELD(sl, off) \
    apr_atomic_read64((volatile apr_uint64_t *)((const char *)(sl) + (off)))

static void counter_family(request_rec *r, const apr_array_header_t *a, const char **labels,
                           const char *name, apr_size_t off, const char *help)
{
    int i;

    head(r, name, "counter", help);
    for (i = 0; i < a->nelts; ++i) {
        const m_series_t *sl = APR_ARRAY_IDX(a, i, const m_series_t *);
        ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", name, labels[i],
                   SERIES_FIELD(sl, off));
    }
}

static void hist_family(request_rec *r, const apr_array_header_t *a, const char **labels,
                        const char *name, apr_size_t off, const char *help)
{
    int i, b;

    head(r, name, "histogram", help);
    for (i = 0; i < a->nelts; ++i) {
        const m_hist_t *hi = (const m_hist_t *)((const char *)APR_ARRAY_IDX(
                                                    a, i, const m_series_t *) + off);
        apr_uint64_t cum = 0, sum = apr_atomic_read64((volatile apr_uint64_t *)&hi->sum_us);

        for (b = 0; b < M_BUCKETS; ++b) {
            cum += apr_atomic_read64((volatile apr_uint64_t *)&hi->n[b]);
            ap_rprintf(r, "%s_bucket{%s,le=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
                       labels[i], bounds_text[b], cum);
        }
        ap_rprintf(r, "%s_sum{%s} %.6f\n%s_count{%s} %" APR_UINT64_T_FMT "\n", name,
                   labels[i], (double)sum / 1e6, name, labels[i], cum);
    }
}

void relay_metrics_write_requests(request_rec *r)
{
    apr_array_header_t *a;
    const char **labels;
    int i, used;

    if (table == NULL) {
        return;
    }
    a = series_list(r->pool, &used);
    labels = apr_palloc(r->pool, (a->nelts + 1) * sizeof(*labels));
    for (i = 0; i < a->nelts; ++i) {
        labels[i] = series_labels(r->pool, APR_ARRAY_IDX(a, i, const m_series_t *));
    }
    counter_family(r, a, labels, "nebula_requests_total", APR_OFFSETOF(m_series_t, requests),
                   "API requests served for a client key, by the model asked for, the "
                   "channel of the last attempt and the status class the client got");
    counter_family(r, a, labels, "nebula_prompt_tokens_total",
                   APR_OFFSETOF(m_series_t, prompt_tokens), "Prompt (input) tokens");
    counter_family(r, a, labels, "nebula_completion_tokens_total",
                   APR_OFFSETOF(m_series_t, completion_tokens),
                   "Completion (output) tokens");
    counter_family(r, a, labels, "nebula_cost_quota_total", APR_OFFSETOF(m_series_t, cost),
                   "What billing charged, in quota units (NebulaQuotaPerUSD per US dollar)");
    hist_family(r, a, labels, "nebula_request_duration_seconds",
                APR_OFFSETOF(m_series_t, latency),
                "Time from the request's start to its end (the last byte of a stream)");
    hist_family(r, a, labels, "nebula_time_to_first_token_seconds",
                APR_OFFSETOF(m_series_t, ttft),
                "Time from the request's start to the client's first byte of the answer "
                "(a stream's first event); requests that sent none are not counted");
    head(r, "nebula_errors_total", "counter",
         "API requests answered with an error status (400-599), by status");
    for (i = 0; i < M_STATUS_N; ++i) {
        apr_uint64_t n = apr_atomic_read64(&table->errors[i]);
        if (n) {
            ap_rprintf(r, "nebula_errors_total{status=\"%d\"} %" APR_UINT64_T_FMT "\n",
                       M_STATUS_MIN + i, n);
        }
    }
    head(r, "nebula_metrics_series_overflow_total", "counter",
         "Requests counted in an \"__other__\" series: NebulaMetricsSeries were in use");
    ap_rprintf(r, "nebula_metrics_series_overflow_total %" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&table->overflow));
    head(r, "nebula_metrics_series", "gauge", "Series in use (NebulaMetricsSeries at most)");
    ap_rprintf(r, "nebula_metrics_series %d\n", used);
    head(r, "nebula_metrics_series_max", "gauge", "NebulaMetricsSeries");
    ap_rprintf(r, "nebula_metrics_series_max %u\n", table->nseries);
}

void relay_metrics_totals(relay_metrics_totals_t *t)
{
    apr_uint32_t i;
    int k;

    memset(t, 0, sizeof(*t));
    for (i = 0; table && i < table->nseries + M_CLASSES; ++i) {
        m_series_t *sl = i < table->nseries ? &table->series[i]
                                            : &table->other[i - table->nseries];
        if (apr_atomic_read32(&sl->state) != M_READY) {
            continue;
        }
        t->series += i < table->nseries;
        t->prompt_tokens += apr_atomic_read64(&sl->prompt_tokens);
        t->completion_tokens += apr_atomic_read64(&sl->completion_tokens);
        t->cost += apr_atomic_read64(&sl->cost);
    }
    for (k = 0; table && k < M_STATUS_N; ++k) {
        t->errors += apr_atomic_read64(&table->errors[k]);
    }
}

void relay_metrics_register(void)
{
    /* before the relay's post_config: nothing depends on the order */
    ap_hook_pre_config(metrics_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(metrics_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}

/* relay_status.c: mod_nebula_relay's section of mod_status (/server-status):
 * requests relayed and streams open host-wide, retries made and refused by
 * the retry budget, the gateway's own time per
 * request (count, sum, p50 and p99 in µs: docs/overhead.md), and the health
 * of every channel the shared table tracks (breaker state, failures,
 * averages), and the totals of the request metrics (relay_metrics.c:
 * errors, tokens, cost, series in use). */
#include <apr_strings.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include <mod_status.h>
#include "relay_private.h"
#include "relay_health.h"

static const char *state_name(relay_breaker_state_e st)
{
    return st == RELAY_BREAKER_OPEN ? "open" : st == RELAY_BREAKER_HALF_OPEN ? "half-open"
                                                                              : "closed";
}

static int relay_status_hook(request_rec *r, int flags)
{
    apr_array_header_t *slots = relay_health_snapshot(r->pool);
    relay_stats_t st;
    relay_metrics_totals_t mt;
    apr_uint64_t retries, refused;
    int i;

    relay_stats_read(&st);
    relay_budget_read(&retries, &refused);
    relay_metrics_totals(&mt);
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "NebulaErrors: %" APR_UINT64_T_FMT "\nNebulaPromptTokens: %"
                      APR_UINT64_T_FMT "\nNebulaCompletionTokens: %" APR_UINT64_T_FMT
                      "\nNebulaCost: %" APR_UINT64_T_FMT "\nNebulaMetricsSeries: %d\n",
                   mt.errors, mt.prompt_tokens, mt.completion_tokens, mt.cost, mt.series);
        ap_rprintf(r, "NebulaRetries: %" APR_UINT64_T_FMT "\nNebulaRetriesRefused: %"
                      APR_UINT64_T_FMT "\n", retries, refused);
        ap_rprintf(r, "NebulaRequests: %" APR_UINT64_T_FMT "\nNebulaStreamsOpen: %u\n"
                      "NebulaOverheadCount: %" APR_UINT64_T_FMT "\n"
                      "NebulaOverheadUsSum: %" APR_UINT64_T_FMT "\n"
                      "NebulaOverheadUsP50: %" APR_UINT64_T_FMT "\n"
                      "NebulaOverheadUsP99: %" APR_UINT64_T_FMT "\n",
                   st.requests, st.streams_open, st.overhead_count, st.overhead_us_sum,
                   st.overhead_us_p50, st.overhead_us_p99);
        return OK;
    }
    ap_rputs("<hr />\n<h2>NebulaGate relay</h2>\n", r);
    ap_rprintf(r, "<dl><dt>requests relayed: %" APR_UINT64_T_FMT "</dt><dt>streams open: "
                  "%u</dt><dt>gateway's own time: %" APR_UINT64_T_FMT " requests, %"
                  APR_UINT64_T_FMT " &micro;s in all, p50 %" APR_UINT64_T_FMT
                  " &micro;s, p99 %" APR_UINT64_T_FMT " &micro;s</dt></dl>\n",
               st.requests, st.streams_open, st.overhead_count, st.overhead_us_sum,
               st.overhead_us_p50, st.overhead_us_p99);
    ap_rprintf(r, "<dl><dt>retries: %" APR_UINT64_T_FMT " made, %" APR_UINT64_T_FMT
                  " refused by the retry budget</dt></dl>\n", retries, refused);
    ap_rprintf(r, "<dl><dt>errors (4xx, 5xx): %" APR_UINT64_T_FMT "</dt><dt>tokens: %"
                  APR_UINT64_T_FMT " prompt, %" APR_UINT64_T_FMT " completion</dt><dt>"
                  "cost: %" APR_UINT64_T_FMT " quota units</dt><dt>metric series: %d "
                  "(/metrics)</dt></dl>\n",
               mt.errors, mt.prompt_tokens, mt.completion_tokens, mt.cost, mt.series);
    ap_rputs("<table border=\"0\"><tr><th>channel</th><th>key</th><th>breaker</th>"
             "<th>consecutive failures</th><th>recent definitive</th><th>success</th>"
             "<th>latency ms</th><th>requests</th><th>failures</th></tr>\n", r);
    for (i = 0; slots && i < slots->nelts; ++i) {
        const relay_health_slot_t *h = &APR_ARRAY_IDX(slots, i, relay_health_slot_t);
        ap_rprintf(r,
                   "<tr><td>%" APR_INT64_T_FMT "</td><td>%s</td><td>%s</td><td>%d</td>"
                   "<td>%d</td><td>%.2f</td><td>%.0f</td><td>%" APR_UINT64_T_FMT "</td>"
                   "<td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   h->channel_id,
                   h->key_index < 0 ? "all" : apr_itoa(r->pool, h->key_index),
                   state_name(h->state), h->consecutive_failures, h->recent_definitive,
                   h->success_ewma, h->latency_ewma_ms, h->requests, h->failures);
    }
    ap_rputs("</table>\n", r);
    return OK;
}

void relay_status_register(void)
{
    /* mod_status runs every registered section; absent mod_status, nothing */
    APR_OPTIONAL_HOOK(ap, status_hook, relay_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}

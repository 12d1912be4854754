/* relay_metrics_log.c: the request notes of the JSON access-log recipe
 * (conf/logformat-json.conf, docs/observability.md). mod_log_config escapes
 * '"' and '\' as JSON does, but writes control and non-ASCII bytes as \xhh,
 * which JSON does not allow. So every value the recipe puts in a JSON
 * string is offered here as a note of printable ASCII only (other bytes
 * percent-encoded), and every number as a note that is always a number:
 * whatever a client sends, each line parses. Set just before the loggers
 * run, for every request of the server. */
#include <apr_strings.h>
#include <http_request.h>
#include <http_protocol.h>
#include "relay_private.h"

#define LOG_VALUE_MAX 1024 /* bytes of a client's value kept (the rest: "...") */

/* @a v as printable ASCII: other bytes %XX; NULL -> "". */
static const char *log_safe(apr_pool_t *p, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_size_t n, i;
    char *out, *o;

    if (v == NULL) {
        return "";
    }
    n = strlen(v);
    if (n > LOG_VALUE_MAX) {
        n = LOG_VALUE_MAX;
    }
    out = o = apr_palloc(p, 3 * n + 4);
    for (i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)v[i];
        if (c >= 0x20 && c < 0x7f) {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    if (n < strlen(v)) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}

/* A number from the env (the relay's NEBULA_*), or "0". */
static const char *log_number(request_rec *r, const char *name)
{
    const char *v = apr_table_get(r->subprocess_env, name);
    char *end;

    if (v == NULL || *v == '\0') {
        return "0";
    }
    (void)apr_strtoi64(v, &end, 10);
    return *end == '\0' ? v : "0";
}

void relay_metrics_log_model(request_rec *r, const char *model)
{
    apr_table_setn(r->notes, "nebula-model", log_safe(r->pool, model));
}

static int log_notes(request_rec *r)
{
    request_rec *last = r, *q;
    apr_table_t *n = apr_table_make(r->pool, 16);
    const char *model = apr_table_get(r->notes, "nebula-model"), *rid;

    while (last->next) { /* an internal redirect: what the final request did */
        last = last->next;
        model = model ? model : apr_table_get(last->notes, "nebula-model");
    }
    apr_table_setn(n, "nebula-log-uri", log_safe(r->pool, r->unparsed_uri));
    apr_table_setn(n, "nebula-log-method", log_safe(r->pool, r->method));
    apr_table_setn(n, "nebula-log-agent",
                   log_safe(r->pool, apr_table_get(r->headers_in, "User-Agent")));
    rid = apr_table_get(last->err_headers_out, "X-Request-Id");
    apr_table_setn(n, "nebula-log-request-id",
                   log_safe(r->pool, rid ? rid : apr_table_get(last->headers_out,
                                                                "X-Request-Id")));
    apr_table_setn(n, "nebula-log-user",
                   log_safe(r->pool, apr_table_get(last->subprocess_env, "NEBULA_USER")));
    apr_table_setn(n, "nebula-log-end",
                   log_safe(r->pool, apr_table_get(last->subprocess_env, "NEBULA_END")));
    apr_table_setn(n, "nebula-model", model ? model : "");
    apr_table_setn(n, "nebula-log-key", log_number(last, "NEBULA_KEY_ID"));
    apr_table_setn(n, "nebula-log-channel", log_number(last, "NEBULA_CHANNEL"));
    apr_table_setn(n, "nebula-log-prompt-tokens", log_number(last, "NEBULA_PROMPT_TOKENS"));
    apr_table_setn(n, "nebula-log-completion-tokens",
                   log_number(last, "NEBULA_COMPLETION_TOKENS"));
    apr_table_setn(n, "nebula-log-cost", log_number(last, "NEBULA_COST"));
    apr_table_setn(n, "nebula-trace-id", relay_trace_id(r));
    for (q = r; q; q = q->next) { /* mod_log_config reads the first or the last */
        apr_table_overlap(q->notes, n, APR_OVERLAP_TABLES_SET);
    }
    return DECLINED;
}

void relay_metrics_log_register(void)
{
    /* before mod_log_config's logger (APR_HOOK_MIDDLE) reads the notes */
    ap_hook_log_transaction(log_notes, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

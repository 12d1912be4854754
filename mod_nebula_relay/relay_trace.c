/* relay_trace.c: W3C Trace Context (https://www.w3.org/TR/trace-context/)
 * for every request the server reads (docs/observability.md "Tracing").
 *
 * A client's traceparent is taken when it is valid: version 00, exactly
 * "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" in lower case, the
 * trace id and the parent id not all zeros. Otherwise (absent, malformed,
 * another version) a new trace starts: a random trace id, no parent, flags
 * 01 (the gateway records every request: its trace id is in the logs). The
 * request gets a span id of its own (random), and every upstream request it
 * makes carries "00-<trace id>-<our span id>-<flags>"; the client's
 * tracestate goes along only with a valid traceparent (the standard's rule:
 * a tracestate without its traceparent means nothing). The client's own
 * traceparent and tracestate headers are never forwarded as they came.
 *
 * The ids are request notes, for LogFormat and ErrorLogFormat (%{name}n):
 * nebula-trace-id, nebula-span-id, nebula-trace-parent (the client's parent
 * id, empty for a new trace). */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_request.h>
#include <http_protocol.h>
#include "relay_private.h"

#define TRACE_NOTE_ID     "nebula-trace-id"
#define TRACE_NOTE_SPAN   "nebula-span-id"
#define TRACE_NOTE_PARENT "nebula-trace-parent"
#define TRACE_NOTE_FLAGS  "nebula-trace-flags"
#define TRACE_NOTE_STATE  "nebula-tracestate"
#define TRACESTATE_MAX    512 /* the standard's limit a vendor may keep */

/* @a n lower-case hex digits at @a s; *@a zero set when all are '0'. */
static int lower_hex(const char *s, apr_size_t n, int *zero)
{
    apr_size_t i;

    *zero = 1;
    for (i = 0; i < n; ++i) {
        if (!apr_isdigit(s[i]) && (s[i] < 'a' || s[i] > 'f')) {
            return 0;
        }
        if (s[i] != '0') {
            *zero = 0;
        }
    }
    return 1;
}

int relay_trace_parse(const char *h, char trace_id[33], char parent_id[17], char flags[3])
{
    const char *end;
    int zero;

    if (h == NULL) {
        return 0;
    }
    while (*h == ' ' || *h == '\t') { /* optional white space around the value */
        ++h;
    }
    if (strlen(h) < 55 || strncmp(h, "00-", 3) || h[35] != '-' || h[52] != '-') {
        return 0;
    }
    for (end = h + 55; *end == ' ' || *end == '\t'; ++end) {
    }
    if (*end != '\0') {
        return 0; /* version 00 has nothing after the flags */
    }
    if (!lower_hex(h + 3, 32, &zero) || zero) {
        return 0;
    }
    if (!lower_hex(h + 36, 16, &zero) || zero || !lower_hex(h + 53, 2, &zero)) {
        return 0;
    }
    memcpy(trace_id, h + 3, 32);
    trace_id[32] = '\0';
    memcpy(parent_id, h + 36, 16);
    parent_id[16] = '\0';
    memcpy(flags, h + 53, 2);
    flags[2] = '\0';
    return 1;
}

/* @a n random bytes as lower-case hex, never all zeros. */
static const char *random_hex(apr_pool_t *p, apr_size_t n)
{
    unsigned char buf[16];
    char *out = apr_palloc(p, 2 * n + 1);
    apr_size_t i;
    int nonzero = 0, tries;

    for (tries = 0; !nonzero && tries < 4; ++tries) {
        if (apr_generate_random_bytes(buf, n) != APR_SUCCESS) {
            apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)out;
            for (i = 0; i < n; ++i) {
                buf[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 151);
            }
        }
        for (i = 0; i < n; ++i) {
            nonzero |= buf[i];
        }
    }
    if (!nonzero) {
        buf[n - 1] = 1;
    }
    ap_bin2hex(buf, n, out);
    return out;
}

/* The request whose notes hold the context (the initial one). */
static request_rec *trace_owner(request_rec *r)
{
    while (r->main) {
        r = r->main;
    }
    while (r->prev) {
        r = r->prev;
    }
    return r;
}

static void trace_begin(request_rec *r)
{
    char trace_id[33], parent[17], flags[3];
    const char *state;

    if (relay_trace_parse(apr_table_get(r->headers_in, "traceparent"), trace_id, parent,
                          flags)) {
        apr_table_set(r->notes, TRACE_NOTE_ID, trace_id);
        apr_table_set(r->notes, TRACE_NOTE_PARENT, parent);
        apr_table_set(r->notes, TRACE_NOTE_FLAGS, flags);
        state = apr_table_get(r->headers_in, "tracestate");
        if (state && *state && strlen(state) <= TRACESTATE_MAX
            && !ap_strchr_c(state, '\r') && !ap_strchr_c(state, '\n')) {
            apr_table_set(r->notes, TRACE_NOTE_STATE, state);
        }
    }
    else {
        apr_table_setn(r->notes, TRACE_NOTE_ID, random_hex(r->pool, 16));
        apr_table_setn(r->notes, TRACE_NOTE_PARENT, "");
        apr_table_setn(r->notes, TRACE_NOTE_FLAGS, "01");
    }
    apr_table_setn(r->notes, TRACE_NOTE_SPAN, random_hex(r->pool, 8));
}

/* As soon as the request is read: every log line of it can name its trace. */
static int trace_post_read(request_rec *r)
{
    if (r->main == NULL && r->prev == NULL) {
        trace_begin(r);
    }
    return DECLINED;
}

/* The context of @a r's initial request, begun now if it has none (a
 * request made up by the server itself). */
static request_rec *trace_context(request_rec *r)
{
    request_rec *o = trace_owner(r);

    if (apr_table_get(o->notes, TRACE_NOTE_ID) == NULL) {
        trace_begin(o);
    }
    return o;
}

const char *relay_trace_id(request_rec *r)
{
    return apr_table_get(trace_context(r)->notes, TRACE_NOTE_ID);
}

void relay_trace_headers(request_rec *r, apr_bucket_brigade *bb)
{
    request_rec *o = trace_context(r);
    const char *state = apr_table_get(o->notes, TRACE_NOTE_STATE);

    apr_brigade_printf(bb, NULL, NULL, "traceparent: 00-%s-%s-%s\r\n",
                       apr_table_get(o->notes, TRACE_NOTE_ID),
                       apr_table_get(o->notes, TRACE_NOTE_SPAN),
                       apr_table_get(o->notes, TRACE_NOTE_FLAGS));
    if (state) {
        apr_brigade_printf(bb, NULL, NULL, "tracestate: %s\r\n", state);
    }
}

int relay_trace_header_name(const char *name)
{
    return !strcasecmp(name, "traceparent") || !strcasecmp(name, "tracestate");
}

void relay_trace_register(void)
{
    /* first: the modules after it (and their log lines) see the notes */
    ap_hook_post_read_request(trace_post_read, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

/* relay_stream.c: relaying an event stream, in any protocol.
 *
 * Native streams (client and channel speak the same protocol) pass every
 * event through as the upstream wrote it (an Anthropic thinking block's
 * signature is never re-serialised); the gateway still reads each event for
 * the usage and the delivered text. Converted streams go upstream events ->
 * chat chunks -> client events, one state machine each side (nebula_conv.h).
 * What follows describes the OpenAI side, which the others mirror:
 *
 * The upstream body is read as mod_proxy_http reads it (non-blocking until
 * nothing is ready, then blocking) and fed to the incremental SSE parser;
 * each complete event is written to the client and flushed at once, so the
 * client sees the upstream's timing. The gateway always asked the upstream
 * for usage (stream_options.include_usage); the usage chunk and the
 * per-chunk "usage": null reach the client only if it asked for them, and a
 * usage chunk is synthesised from the gateway's own count when it asked and
 * the upstream sent none. The gateway writes its own "data: [DONE]".
 *
 * When the client goes away: NebulaStreamDisconnect drain (default) keeps
 * reading the upstream, for at most NebulaDrainTimeout, to bill its real
 * usage; stop closes at once and bills what was delivered. The text counted
 * for an upstream that reports no usage is all the text it sent: what was
 * delivered and, when draining, what came after the client left (the
 * provider bills that too, and the count no longer depends on the moment
 * the gateway noticed the client had gone).
 */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include "relay_private.h"
#include "nebula_sse.h"
#include "nebula_conv_anthropic.h"
#include "nebula_conv_gemini.h"
#include "nebula_conv_responses.h"

#define STREAM_EVENT_MAX (8 * 1024 * 1024)

typedef struct {
    relay_ctx_t *ctx;
    apr_bucket_brigade *out;
    int client_gone;
    int done;          /* [DONE] seen */
    int saw_usage;
    int malformed;
    int quota_cut;     /* the payer cannot cover more: the stream is cut */
    const char *id, *model;
    apr_int64_t created;
    /* upstream events -> chat chunks (Anthropic, Gemini upstreams) */
    nebula_conv_a2c_t *a2c;
    nebula_conv_g2c_t *g2c;
    /* chat chunks -> client events (converted attempts) */
    nebula_conv_c2a_t *c2a;
    nebula_conv_c2g_t *c2g;
    nebula_conv_c2r_t *c2r;
    apr_array_header_t *chunks;   /* json_t *: this event's chat chunks */
    apr_array_header_t *converted; /* nebula_conv_event_t: a2c / g2c output */
    apr_array_header_t *events;   /* nebula_conv_event_t: for the client */
    int items;         /* Gemini JSON-array stream: items written */
    /* a native Anthropic or Gemini stream with an output scan goes through
     * the chat form like a converted one, so that its text can be rewritten
     * and a stop ends it with the converter's final events */
    int pivot;
} stream_t;

/* Write @a len bytes of one SSE block and flush it to the client. */
static void emit_raw(stream_t *st, const char *pre, const char *data, apr_size_t len)
{
    request_rec *r = st->ctx->r;
    apr_status_t rv;

    if (st->client_gone) {
        return;
    }
    apr_brigade_puts(st->out, NULL, NULL, pre);
    apr_brigade_write(st->out, NULL, NULL, data, len);
    apr_brigade_write(st->out, NULL, NULL, "\n\n", 2);
    APR_BRIGADE_INSERT_TAIL(st->out, apr_bucket_flush_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, st->out);
    apr_brigade_cleanup(st->out);
    if (st->ctx->first_byte == 0) {
        st->ctx->first_byte = apr_time_now();
    }
    if (rv != APR_SUCCESS || r->connection->aborted) {
        st->client_gone = 1;
        st->ctx->end_reason = "client_gone";
    }
}

/* One SSE event: "event: NAME" when it has one, then the data. An
 * upstream event's data passed through as it came may span lines (its
 * "data:" lines joined by LF, a JSON document spread over them): each line
 * gets its own "data: " so that the client's parser joins the very same
 * data back; written as one field, its blank lines would end the event early
 * and its other lines could forge fields or events. */
static void emit_event(stream_t *st, const char *event, const char *data, apr_size_t len)
{
    apr_pool_t *p = st->ctx->r->pool;
    apr_size_t n;
    const char *block;

    if (memchr(data, '\n', len) == NULL && memchr(data, '\r', len) == NULL) {
        emit_raw(st, event ? apr_pstrcat(p, "event: ", event, "\ndata: ", NULL) : "data: ",
                 data, len);
        return;
    }
    /* NULL only for an event name that cannot be written: then none */
    if ((block = nebula_sse_format(p, event, data, len, &n)) == NULL) {
        block = nebula_sse_format(p, NULL, data, len, &n);
    }
    emit_raw(st, "", block, n - 2); /* emit_raw ends it with the blank line */
}

static void emit(stream_t *st, const char *data, apr_size_t len)
{
    emit_event(st, NULL, data, len);
}

/* One event in the client's framing: "event: NAME" when it has one; a
 * Gemini client without alt=sse gets the items of one JSON array. */
static void emit_named(stream_t *st, const char *event, const char *data, apr_size_t len)
{
    relay_ctx_t *ctx = st->ctx;

    if (ctx->route->api == RELAY_API_GEMINI && !ctx->sse) {
        emit_raw(st, st->items++ ? ",\r\n" : "[", data, len);
        return;
    }
    emit_event(st, event, data, len);
}

static void emit_json(stream_t *st, const char *event, const json_t *j)
{
    const char *out = nebula_json_dumps(st->ctx->r->pool, j, 0);

    emit_named(st, event, out, strlen(out));
}

/* With NebulaStreamPing: wait for the upstream, sending ": PING" comments
 * while it is silent (clients and proxies keep the connection); APR_TIMEUP
 * once it was silent for the whole upstream timeout. */
static apr_status_t wait_pinging(stream_t *st, relay_upstream_t *up, apr_interval_time_t ping,
                                 apr_interval_time_t timeout)
{
    apr_interval_time_t idle = 0;
    apr_status_t rv;

    while ((rv = relay_upstream_wait(up, ping)) == APR_TIMEUP) {
        idle += ping;
        if (idle >= timeout) {
            return APR_TIMEUP;
        }
        emit_raw(st, "", ": PING", 6);
    }
    return APR_SUCCESS;
}

/* Completion text of one chunk (chat delta or completions text): delivered,
 * or drained after the client left. */
static void chunk_text(stream_t *st, json_t *chunk)
{
    json_t *choice;
    size_t i;

    json_array_foreach(json_object_get(chunk, "choices"), i, choice)
    {
        const char *t = nebula_json_gets(choice, "delta", "content", NULL);
        if (t == NULL) {
            t = nebula_json_gets(choice, "text", NULL);
        }
        if (t) {
            relay_ctx_text(st->ctx, t, strlen(t));
        }
    }
}

/* The chunk that ends a stream the output scan stopped. */
static json_t *stop_chunk(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;

    return nebula_json_own(
        ctx->r->pool,
        json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{}, s:s}]}", "id",
                  st->id ? st->id : apr_pstrcat(ctx->r->pool, "chatcmpl-",
                                                ctx->req.request_id, NULL),
                  "object", "chat.completion.chunk", "created",
                  (json_int_t)(st->created ? st->created : apr_time_sec(apr_time_now())),
                  "model", st->model ? st->model : ctx->req.model, "choices", "index", 0,
                  "delta", "finish_reason", "content_filter"));
}

/* The output scan over this event's chat chunks: rewritten in place; the
 * chunk that stops the answer and those after it are dropped, and a
 * content_filter end takes their place. */
static void scan_chunks(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;
    int i;

    for (i = 0; i < st->chunks->nelts && !ctx->gov_stop; ++i) {
        relay_gov_output(ctx, APR_ARRAY_IDX(st->chunks, i, json_t *));
        if (ctx->gov_stop) { /* the stopping text is not delivered */
            st->chunks->nelts = i;
            *(json_t **)apr_array_push(st->chunks) = stop_chunk(st);
        }
    }
}

/* An OpenAI chunk of a native OpenAI stream (the client's own protocol). */
static apr_status_t openai_native(stream_t *st, const nebula_sse_event_t *ev, json_t *j)
{
    relay_ctx_t *ctx = st->ctx;
    json_t *usage;
    apr_size_t delivered;
    int usage_only, changed;

    if (json_object_get(j, "error")) { /* an error event mid-stream: pass it on */
        emit(st, ev->data, ev->data_len);
        return APR_SUCCESS;
    }
    st->id = st->id ? st->id : apr_pstrdup(ctx->r->pool, nebula_json_gets(j, "id", NULL));
    st->model = st->model ? st->model
                          : apr_pstrdup(ctx->r->pool, nebula_json_gets(j, "model", NULL));
    st->created = st->created ? st->created : nebula_json_geti(j, 0, "created", NULL);
    usage = json_object_get(j, "usage");
    if (json_is_object(usage)) {
        st->saw_usage = relay_openai_usage(ctx, usage);
    }
    usage_only = json_is_object(usage) && json_array_size(json_object_get(j, "choices")) == 0;
    changed = !ctx->gov_stop && relay_gov_output(ctx, j);
    if (ctx->gov_stop) { /* the stopping text is not delivered */
        emit_json(st, NULL, stop_chunk(st));
        return APR_EINTR;
    }
    delivered = ctx->text.len;
    chunk_text(st, j);
    if (ctx->text.len > delivered && relay_attempt_extend(ctx)) {
        ctx->text.len = delivered; /* not sent: not billed */
        st->quota_cut = 1;
        return APR_ENOSPC;
    }
    if (ctx->client_usage && !changed) {
        emit(st, ev->data, ev->data_len);
    }
    else if (!usage_only || ctx->client_usage) {
        /* the client did not ask for usage: no "usage" member at all */
        const char *out;
        if (!ctx->client_usage) {
            json_object_del(j, "usage");
        }
        out = nebula_json_dumps(ctx->r->pool, j, 0);
        emit(st, out, strlen(out));
    }
    return APR_SUCCESS;
}

static void flush_events(stream_t *st)
{
    int i;

    for (i = 0; i < st->events->nelts; ++i) {
        nebula_conv_event_t *e = &APR_ARRAY_IDX(st->events, i, nebula_conv_event_t);
        emit_json(st, e->event, e->data);
    }
    apr_array_clear(st->events);
}

/* One chat chunk of a converted stream, in the client's protocol. */
static void to_client(stream_t *st, json_t *chunk)
{
    relay_ctx_t *ctx = st->ctx;

    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        nebula_conv_c2a_feed(st->c2a, chunk, st->events);
        break;
    case RELAY_API_GEMINI:
        nebula_conv_c2g_feed(st->c2g, chunk, st->events);
        break;
    case RELAY_API_RESPONSES:
        nebula_conv_c2r_feed(st->c2r, chunk, st->events);
        break;
    default:
        /* an OpenAI client: usage comes at the end when it asked */
        if (!json_object_get(chunk, "usage")
            || json_array_size(json_object_get(chunk, "choices")) > 0) {
            json_object_del(chunk, "usage");
            st->id = st->id ? st->id
                            : apr_pstrdup(ctx->r->pool, nebula_json_gets(chunk, "id", NULL));
            st->model = st->model ? st->model
                                  : apr_pstrdup(ctx->r->pool,
                                                nebula_json_gets(chunk, "model", NULL));
            emit_json(st, NULL, chunk);
        }
        return;
    }
    flush_events(st);
}

/* The chat chunks of one upstream event (and its usage), for any upstream
 * protocol; a native Responses stream yields its text directly. */
static void upstream_chunks(stream_t *st, const nebula_sse_event_t *ev, json_t *j)
{
    relay_ctx_t *ctx = st->ctx;
    nebula_usage_t u;
    int i;

    switch (ctx->up_api) {
    case RELAY_API_ANTHROPIC:
        nebula_conv_a2c_feed(st->a2c, ev->event, j, st->converted);
        if (nebula_conv_a2c_usage(st->a2c, &u)) {
            ctx->usage = u;
            st->saw_usage = 1;
        }
        st->done = nebula_conv_a2c_done(st->a2c);
        break;
    case RELAY_API_GEMINI:
        nebula_conv_g2c_feed(st->g2c, j, st->converted);
        if (nebula_conv_g2c_usage(st->g2c, &u)) {
            ctx->usage = u;
            st->saw_usage = 1;
        }
        st->done = nebula_conv_g2c_done(st->g2c);
        break;
    case RELAY_API_RESPONSES: {
        const char *type = nebula_json_gets(j, "type", NULL);
        if (type && !strcmp(type, "response.output_text.delta")) {
            const char *t = nebula_json_gets(j, "delta", NULL);
            if (t) {
                relay_ctx_text(ctx, t, strlen(t));
            }
        }
        if (type && (!strcmp(type, "response.completed")
                     || !strcmp(type, "response.incomplete")
                     || !strcmp(type, "response.failed"))) {
            st->done = 1;
            if (nebula_conv_responses_usage(nebula_json_getj(j, "response", "usage", NULL),
                                            &u)) {
                ctx->usage = u;
                st->saw_usage = 1;
            }
        }
        break;
    }
    default:
        if (json_is_object(json_object_get(j, "usage"))) {
            st->saw_usage |= relay_openai_usage(ctx, json_object_get(j, "usage"));
        }
        *(json_t **)apr_array_push(st->chunks) = j;
        return;
    }
    for (i = 0; i < st->converted->nelts; ++i) {
        *(json_t **)apr_array_push(st->chunks) =
            APR_ARRAY_IDX(st->converted, i, nebula_conv_event_t).data;
    }
    apr_array_clear(st->converted);
}

static apr_status_t on_event(void *baton, const nebula_sse_event_t *ev)
{
    stream_t *st = baton;
    relay_ctx_t *ctx = st->ctx;
    apr_size_t delivered = ctx->text.len, len = ev->data_len;
    const char *data = ev->data;
    json_t *j;
    int i;

    if (ctx->up_api == RELAY_API_OPENAI && ev->data_len == 6
        && !memcmp(ev->data, "[DONE]", 6)) {
        st->done = 1;
        return APR_SUCCESS;
    }
    if ((j = nebula_json_parse(ctx->r->pool, ev->data, ev->data_len, 0, NULL)) == NULL
        || !json_is_object(j)) {
        if (st->malformed++ == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, ctx->r,
                          "NEB01040: dropping a malformed event from upstream channel %"
                          APR_INT64_T_FMT, ctx->channel ? ctx->channel->id : 0);
        }
        return APR_SUCCESS;
    }
    if (ctx->up_api == RELAY_API_OPENAI && ctx->native) {
        return openai_native(st, ev, j);
    }
    apr_array_clear(st->chunks);
    upstream_chunks(st, ev, j);
    if (ctx->output_rw && !ctx->gov_stop) {
        if (ctx->native && !st->pivot) { /* a native Responses event */
            if (relay_gov_output(ctx, j)) {
                if (ctx->gov_stop) { /* the stopping text is not delivered */
                    ctx->text.len = delivered;
                    return APR_EINTR;
                }
                data = nebula_json_dumps(ctx->r->pool, j, 0);
                len = strlen(data);
            }
        }
        else {
            scan_chunks(st);
        }
    }
    for (i = 0; i < st->chunks->nelts; ++i) {
        chunk_text(st, APR_ARRAY_IDX(st->chunks, i, json_t *));
    }
    if (ctx->text.len > delivered && relay_attempt_extend(ctx)) {
        ctx->text.len = delivered; /* not sent: not billed */
        st->quota_cut = 1;
        return APR_ENOSPC;
    }
    if (ctx->native && !st->pivot) {
        /* the upstream's own bytes: nothing re-serialised (unless the
         * output scan rewrote them) */
        emit_named(st, ev->event, data, len);
        return ctx->gov_stop ? APR_EINTR : APR_SUCCESS;
    }
    for (i = 0; i < st->chunks->nelts; ++i) {
        to_client(st, APR_ARRAY_IDX(st->chunks, i, json_t *));
    }
    return ctx->gov_stop ? APR_EINTR : APR_SUCCESS;
}

/* The usage chunk the client asked for when the upstream sent none. */
static void synthesize_usage(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[], s:{s:I, s:I, s:I}}", "id",
                          st->id ? st->id : ctx->req.request_id, "object",
                          "chat.completion.chunk", "created",
                          (json_int_t)(st->created ? st->created
                                                   : apr_time_sec(apr_time_now())),
                          "model", st->model ? st->model : ctx->req.model, "choices",
                          "usage", "prompt_tokens", (json_int_t)ctx->usage.prompt_tokens,
                          "completion_tokens", (json_int_t)ctx->usage.completion_tokens,
                          "total_tokens", (json_int_t)ctx->usage.total_tokens);
    const char *out;

    nebula_json_own(ctx->r->pool, j);
    out = nebula_json_dumps(ctx->r->pool, j, 0);
    emit(st, out, strlen(out));
}

/* Feed what the upstream has to the parser. */
static apr_status_t feed(stream_t *st, nebula_sse_parser_t *ps, apr_bucket_brigade *bb)
{
    apr_bucket *e;
    apr_status_t rv = APR_SUCCESS;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb) && rv == APR_SUCCESS;
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;
        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        if ((rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ)) == APR_SUCCESS) {
            rv = nebula_sse_feed(ps, data, len);
        }
    }
    apr_brigade_cleanup(bb);
    return rv;
}

static void send_headers(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;

    r->status = ctx->status = HTTP_OK;
    /* Gemini without alt=sse: one JSON array, written item by item */
    ap_set_content_type(r, ctx->route->api == RELAY_API_GEMINI && !ctx->sse
                               ? "application/json; charset=UTF-8"
                               : "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    relay_overhead_header(r); /* the time before the first event (docs/overhead.md) */
    ctx->headers_sent = 1;
}

/* Read and relay until the upstream ends; APR_EOF on a complete stream. */
static apr_status_t pump(stream_t *st, relay_upstream_t *up, nebula_sse_parser_t *ps)
{
    relay_ctx_t *ctx = st->ctx;
    const relay_dir_conf_t *dc = relay_config_dir(ctx->r);
    apr_bucket_brigade *bb = apr_brigade_create(ctx->r->pool,
                                                ctx->r->connection->bucket_alloc);
    apr_read_type_e mode = APR_NONBLOCK_READ;
    apr_interval_time_t ping = dc->ping == RELAY_UNSET ? 0 : dc->ping;
    apr_time_t gone_at = 0;
    apr_status_t rv;

    for (;;) {
        rv = relay_upstream_read_body(up, bb, mode);
        if (rv == APR_EAGAIN) {
            if (ping > 0 && !st->client_gone
                && wait_pinging(st, up, ping,
                                dc->timeout == RELAY_UNSET ? RELAY_DEFAULT_TIMEOUT
                                                           : dc->timeout) == APR_TIMEUP) {
                return APR_TIMEUP;
            }
            mode = APR_BLOCK_READ;
            continue;
        }
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            return rv;
        }
        if (feed(st, ps, bb) != APR_SUCCESS) {
            return st->quota_cut ? APR_ENOSPC : ctx->gov_stop ? APR_EINTR : APR_EGENERAL;
        }
        if (rv == APR_EOF) {
            return APR_EOF;
        }
        mode = APR_NONBLOCK_READ;
        if (st->client_gone) {
            gone_at = gone_at ? gone_at : apr_time_now();
            if (dc->disconnect == RELAY_DISCONNECT_STOP
                || apr_time_now() - gone_at > (dc->drain_timeout == RELAY_UNSET
                                                   ? RELAY_DEFAULT_DRAIN
                                                   : dc->drain_timeout)) {
                return APR_ECONNABORTED;
            }
        }
    }
}

/* Close the converted stream in the client's protocol (final events). */
static void finish_client(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;

    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        nebula_conv_c2a_finish(st->c2a, &ctx->usage, st->events);
        break;
    case RELAY_API_GEMINI:
        nebula_conv_c2g_finish(st->c2g, &ctx->usage, st->events);
        break;
    case RELAY_API_RESPONSES:
        nebula_conv_c2r_finish(st->c2r, &ctx->usage, st->events);
        break;
    default:
        break;
    }
    flush_events(st);
}

/* An error event in the client's protocol; the stream ends after it. */
static void emit_error(stream_t *st, int status, const char *type, const char *code,
                       const char *message)
{
    relay_ctx_t *ctx = st->ctx;
    apr_pool_t *p = ctx->r->pool;

    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        emit_json(st, "error", nebula_conv_anthropic_error(p, status, message));
        break;
    case RELAY_API_GEMINI:
        emit_json(st, NULL, nebula_conv_gemini_error(p, status, message));
        break;
    case RELAY_API_RESPONSES:
        emit_json(st, "error",
                  nebula_json_own(p, json_pack("{s:s, s:s, s:s, s:n}", "type", "error",
                                               "code", code, "message", message,
                                               "param")));
        break;
    default: {
        const char *body = nebula_json_error_body(p, message, type, NULL, code);
        emit(st, body, strlen(body));
        break;
    }
    }
}

/* A Gemini JSON-array stream is closed even after an error item. */
static void emit_end_array(stream_t *st)
{
    if (st->ctx->route->api == RELAY_API_GEMINI && !st->ctx->sse) {
        emit_raw(st, st->items ? "" : "[", "]", 1);
    }
}

/* The end of a client stream that has one: OpenAI's [DONE], the close of a
 * Gemini JSON array. */
static void emit_end(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;

    if (ctx->route->api == RELAY_API_OPENAI) {
        emit(st, "[DONE]", 6);
    }
    else if (ctx->route->api == RELAY_API_GEMINI && !ctx->sse) {
        emit_raw(st, st->items ? "" : "[", "]", 1);
    }
}

static void converters_create(stream_t *st)
{
    relay_ctx_t *ctx = st->ctx;
    apr_pool_t *p = ctx->r->pool;

    st->chunks = apr_array_make(p, 4, sizeof(json_t *));
    st->converted = apr_array_make(p, 4, sizeof(nebula_conv_event_t));
    st->events = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    if (ctx->up_api == RELAY_API_ANTHROPIC) {
        st->a2c = nebula_conv_a2c_create(p);
    }
    else if (ctx->up_api == RELAY_API_GEMINI) {
        st->g2c = nebula_conv_g2c_create(p, ctx->req.upstream_model);
    }
    st->pivot = ctx->native && ctx->output_rw
                && (ctx->up_api == RELAY_API_ANTHROPIC || ctx->up_api == RELAY_API_GEMINI);
    if (ctx->native && !st->pivot) {
        return;
    }
    switch (ctx->route->api) {
    case RELAY_API_ANTHROPIC:
        st->c2a = nebula_conv_c2a_create(p, ctx->req.model, relay_prompt_estimate(ctx));
        break;
    case RELAY_API_GEMINI:
        st->c2g = nebula_conv_c2g_create(p, ctx->req.model);
        break;
    case RELAY_API_RESPONSES:
        st->c2r = nebula_conv_c2r_create(p, ctx->body,
                                         apr_pstrcat(p, "resp_", ctx->req.request_id, NULL));
        break;
    default:
        break;
    }
}

int relay_stream_respond(relay_ctx_t *ctx, relay_upstream_t *up, apr_table_t *headers)
{
    request_rec *r = ctx->r;
    stream_t st = {0};
    nebula_sse_parser_t *ps;
    apr_status_t rv;

    st.ctx = ctx;
    st.out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    converters_create(&st);
    ps = nebula_sse_parser_create(r->pool, STREAM_EVENT_MAX, on_event, NULL, &st);
    send_headers(ctx);
    relay_stats_stream(1);
    rv = pump(&st, up, ps);
    relay_stats_stream(-1);
    relay_upstream_close(up, rv != APR_EOF);
    if (!st.saw_usage) {
        relay_usage_estimate(ctx);
    }
    if (rv == APR_EINTR && ctx->native && !st.pivot && ctx->up_api == RELAY_API_RESPONSES
        && !st.client_gone) {
        /* a native Responses stream the output scan stopped */
        emit_error(&st, HTTP_BAD_REQUEST, "invalid_request_error", "content_filter",
                   "The response was stopped by policy.");
        relay_log_settle(ctx);
    }
    else if ((rv == APR_EOF || rv == APR_EINTR) && (st.done || !st.client_gone)) {
        ctx->end_reason = st.client_gone ? "client_gone"
                          : ctx->gov_stop  ? "policy_stop"
                                           : "complete";
        if (ctx->client_usage && (!st.saw_usage || !ctx->native)) {
            synthesize_usage(&st);
        }
        if (ctx->first_byte == 0 && !st.client_gone) {
            /* a converter may hold everything back to the end (a Gemini
             * functionCall is sent whole): finish_client() delivers it */
            ctx->first_byte = apr_time_now();
        }
        relay_log_settle(ctx); /* charged before the client sees the end */
        if (!ctx->native || st.pivot) {
            finish_client(&st);
        }
        emit_end(&st);
    }
    else if (rv == APR_ENOSPC && !st.client_gone) {
        /* the payer cannot cover more: end with a clear final event */
        ctx->end_reason = "quota_exhausted";
        ctx->error = "the payer's balance could not cover more output";
        emit_error(&st, HTTP_TOO_MANY_REQUESTS, "insufficient_quota", "insufficient_quota",
                   "Your quota is used up; the response was cut short.");
        emit_end_array(&st);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    else if (!st.client_gone) {
        /* the upstream broke off: tell the client in the stream, no [DONE] */
        ctx->end_reason = "upstream_error";
        ctx->error = "the upstream stream broke off";
        emit_error(&st, HTTP_BAD_GATEWAY, "upstream_error", "stream_interrupted",
                   "The upstream stream broke off.");
        emit_end_array(&st);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (!st.client_gone) {
        APR_BRIGADE_INSERT_TAIL(st.out, apr_bucket_eos_create(r->connection->bucket_alloc));
        ap_pass_brigade(r->output_filters, st.out);
    }
    return OK;
}

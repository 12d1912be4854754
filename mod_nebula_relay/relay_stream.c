/* relay_stream.c: relaying an OpenAI event stream.
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
 * usage; stop closes at once and bills what was delivered.
 */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include "relay_private.h"
#include "nebula_sse.h"

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

static void emit(stream_t *st, const char *data, apr_size_t len)
{
    emit_raw(st, "data: ", data, len);
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

/* Delivered completion text of one chunk (chat delta or completions text). */
static void chunk_text(stream_t *st, json_t *chunk)
{
    json_t *choice;
    size_t i;

    if (st->client_gone) {
        return; /* not delivered */
    }
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

static apr_status_t on_event(void *baton, const nebula_sse_event_t *ev)
{
    stream_t *st = baton;
    relay_ctx_t *ctx = st->ctx;
    json_t *j, *usage;
    apr_size_t delivered;
    int usage_only;

    if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)) {
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
    delivered = ctx->text_len;
    chunk_text(st, j);
    if (ctx->text_len > delivered && relay_attempt_extend(ctx)) {
        ctx->text_len = delivered; /* not sent: not billed */
        st->quota_cut = 1;
        return APR_ENOSPC;
    }
    if (ctx->client_usage) {
        emit(st, ev->data, ev->data_len);
    }
    else if (!usage_only) {
        /* the client did not ask for usage: no "usage" member at all */
        const char *out;
        json_object_del(j, "usage");
        out = nebula_json_dumps(ctx->r->pool, j, 0);
        emit(st, out, strlen(out));
    }
    return APR_SUCCESS;
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
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
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
            return st->quota_cut ? APR_ENOSPC : APR_EGENERAL;
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

int relay_stream_respond(relay_ctx_t *ctx, relay_upstream_t *up, apr_table_t *headers)
{
    request_rec *r = ctx->r;
    stream_t st = {0};
    nebula_sse_parser_t *ps;
    apr_status_t rv;

    st.ctx = ctx;
    st.out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ps = nebula_sse_parser_create(r->pool, STREAM_EVENT_MAX, on_event, NULL, &st);
    send_headers(ctx);
    relay_stats_stream(1);
    rv = pump(&st, up, ps);
    relay_stats_stream(-1);
    relay_upstream_close(up, rv != APR_EOF);
    if (!st.saw_usage) {
        relay_usage_estimate(ctx);
    }
    if (rv == APR_EOF && (st.done || !st.client_gone)) {
        ctx->end_reason = st.client_gone ? "client_gone" : "complete";
        if (ctx->client_usage && !st.saw_usage) {
            synthesize_usage(&st);
        }
        relay_log_settle(ctx); /* charged before the client sees [DONE] */
        emit(&st, "[DONE]", 6);
    }
    else if (rv == APR_ENOSPC && !st.client_gone) {
        /* the payer cannot cover more: end with a clear final event */
        static const char err[] =
            "{\"error\":{\"message\":\"Your quota is used up; the response was cut "
            "short.\",\"type\":\"insufficient_quota\",\"param\":null,"
            "\"code\":\"insufficient_quota\"}}";
        ctx->end_reason = "quota_exhausted";
        ctx->error = "the payer's balance could not cover more output";
        emit(&st, err, sizeof(err) - 1);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    else if (!st.client_gone) {
        /* the upstream broke off: tell the client in the stream, no [DONE] */
        static const char err[] =
            "{\"error\":{\"message\":\"The upstream stream broke off.\","
            "\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}";
        ctx->end_reason = "upstream_error";
        ctx->error = "the upstream stream broke off";
        emit(&st, err, sizeof(err) - 1);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (!st.client_gone) {
        APR_BRIGADE_INSERT_TAIL(st.out, apr_bucket_eos_create(r->connection->bucket_alloc));
        ap_pass_brigade(r->output_filters, st.out);
    }
    return OK;
}

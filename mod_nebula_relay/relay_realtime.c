/* relay_realtime.c: the OpenAI Realtime API through the gateway.
 *
 *   GET /v1/realtime?model=M with Upgrade: websocket. Before the upgrade
 *   (plain HTTP errors): the key (relay_dispatch authenticated it; browsers
 *   send it as the subprotocol "openai-insecure-api-key.<key>"), the model
 *   allow-list, a billing check (a minimal request reserved, released once
 *   the handshake is decided: that release writes the session's own
 *   request-log row, cost 0), a channel that serves the model. Then the
 *   upstream handshake through the relay's mod_proxy worker, with the
 *   channel's key, the mapped model, a key of our own and no extensions
 *   (no compression: the frames stay readable), and the client's 101 with
 *   the Sec-WebSocket-Accept of ITS key.
 *
 *   The session: both sockets polled; client -> upstream bytes forwarded
 *   unchanged; upstream -> client frames parsed (unmasked, fragmented
 *   messages reassembled, control frames passed on) and forwarded
 *   unchanged, whole frames only, so that the gateway can speak between
 *   two of them. Each text message of type "response.done" is billed
 *   before it is forwarded: its response.usage reserved and settled at
 *   once (one ledger row, one request-log row, a request id of its own).
 *   A payer who cannot pay gets the response.done it used, then an
 *   "error" event and a close frame. Either side closing (or vanishing)
 *   ends both; the upstream connection is always closed, never pooled.
 */
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_lib.h>
#include <apr_poll.h>
#include <apr_sha1.h>
#include <apr_base64.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include "relay_private.h"
#include "relay_model.h"
#include "nebula_ap.h"
#include "nebula_billing.h"
#include "nebula_id.h"

#define RT_WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RT_KEY_PROTO    "openai-insecure-api-key."
#define RT_READ_SIZE    (64 * 1024)
/* a text message larger than this is passed on without being read */
#define RT_MAX_MESSAGE  (16 * 1024 * 1024)
/* how long a refused client has to answer our close frame */
#define RT_CLOSE_WAIT   apr_time_from_sec(2)

#define WS_CONT   0x0
#define WS_TEXT   0x1
#define WS_BINARY 0x2
#define WS_CLOSE  0x8
#define WS_PING   0x9
#define WS_PONG   0xA


typedef struct {
    relay_ctx_t *ctx;
    request_rec *r;
    apr_pool_t *pool;            /* the session's: buffers */
    conn_rec *cc;                /* the client */
    conn_rec *uc;                /* the upstream */
    relay_upstream_t *up;
    apr_bucket_brigade *bb;      /* reads, either side */
    nebula_buf_t down;               /* upstream bytes not yet forwarded */
    nebula_buf_t up_buf;             /* client bytes on their way up */
    nebula_buf_t msg;                /* the text message being reassembled */
    int in_message;              /* a fragmented message is open */
    int msg_text;                /* ... and it is text we read */
    int responses;               /* response.done seen */
    int refused;                 /* the payer cannot pay: ending */
    const char *end;             /* why the session ended */
} rt_session_t;

/* ---- handshake helpers --------------------------------------------------- */


/* base64(SHA-1(key + GUID)): RFC 6455's Sec-WebSocket-Accept. */
static const char *ws_accept(apr_pool_t *p, const char *key)
{
    apr_sha1_ctx_t sha;
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    char *out = apr_palloc(p, apr_base64_encode_len(sizeof(digest)));

    apr_sha1_init(&sha);
    apr_sha1_update(&sha, key, (unsigned int)strlen(key));
    apr_sha1_update(&sha, RT_WS_GUID, (unsigned int)strlen(RT_WS_GUID));
    apr_sha1_final(digest, &sha);
    apr_base64_encode(out, (const char *)digest, sizeof(digest));
    return out;
}

/* Whether the comma-separated header @a name of @a t lists @a token. */
static int header_has(apr_pool_t *p, apr_table_t *t, const char *name, const char *token)
{
    const char *v = apr_table_get(t, name);

    return v && ap_find_token(p, v, token);
}

/* Whether @a text (not NUL-terminated) contains @a needle. */
static int contains(const char *text, apr_size_t len, const char *needle)
{
    apr_size_t n = strlen(needle), i;

    for (i = 0; n <= len && i <= len - n; ++i) {
        if (text[i] == needle[0] && !memcmp(text + i, needle, n)) {
            return 1;
        }
    }
    return 0;
}

/* The client's subprotocols, trimmed, in order (const char *). */
static apr_array_header_t *subprotocols(request_rec *r)
{
    apr_array_header_t *out = apr_array_make(r->pool, 4, sizeof(const char *));
    const char *v = apr_table_get(r->headers_in, "Sec-WebSocket-Protocol");
    char *list, *tok, *state = NULL;

    if (v == NULL) {
        return out;
    }
    list = apr_pstrdup(r->pool, v);
    for (tok = apr_strtok(list, ",", &state); tok; tok = apr_strtok(NULL, ",", &state)) {
        while (apr_isspace(*tok)) {
            ++tok;
        }
        apr_collapse_spaces(tok, tok);
        if (*tok) {
            APR_ARRAY_PUSH(out, const char *) = tok;
        }
    }
    return out;
}

void relay_realtime_credential(request_rec *r)
{
    apr_array_header_t *protos;
    int i;

    if (apr_table_get(r->headers_in, "Authorization")) {
        return;
    }
    protos = subprotocols(r);
    for (i = 0; i < protos->nelts; ++i) {
        const char *p = APR_ARRAY_IDX(protos, i, const char *);
        if (!strncmp(p, RT_KEY_PROTO, sizeof(RT_KEY_PROTO) - 1)
            && p[sizeof(RT_KEY_PROTO) - 1] != '\0') {
            apr_table_setn(r->headers_in, "Authorization",
                           apr_pstrcat(r->pool, "Bearer ", p + sizeof(RT_KEY_PROTO) - 1,
                                       NULL));
            return;
        }
    }
}

/* The value of the query parameter @a name, URL-decoded; NULL if absent. */
static const char *query_param(request_rec *r, const char *name)
{
    char *args, *tok, *state = NULL;
    apr_size_t n = strlen(name);

    if (r->args == NULL) {
        return NULL;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&", &state); tok; tok = apr_strtok(NULL, "&", &state)) {
        if (!strncmp(tok, name, n) && tok[n] == '=') {
            char *v = tok + n + 1, *s;
            for (s = v; *s; ++s) {
                if (*s == '+') {
                    *s = ' ';
                }
            }
            return ap_unescape_url(v) == OK ? v : NULL;
        }
    }
    return NULL;
}

/* A well-formed RFC 6455 upgrade request; otherwise an error was sent. */
static int check_upgrade(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    const char *key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    const char *version = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    unsigned char raw[32];

    if (!header_has(r->pool, r->headers_in, "Upgrade", "websocket")
        || !header_has(r->pool, r->headers_in, "Connection", "upgrade")
        || r->proto_num != HTTP_VERSION(1, 1)) {
        apr_table_setn(r->err_headers_out, "Upgrade", "websocket");
        return nebula_ap_error(r, HTTP_UPGRADE_REQUIRED, "invalid_request_error",
                               "websocket_required", NULL,
                               "The Realtime API needs an HTTP/1.1 WebSocket upgrade "
                               "(Upgrade: websocket).");
    }
    if (version == NULL || strcmp(version, "13")) {
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return nebula_ap_error(r, HTTP_UPGRADE_REQUIRED, "invalid_request_error",
                               "websocket_version", NULL,
                               "Only WebSocket version 13 is supported.");
    }
    if (key == NULL || strlen(key) != 24 || apr_base64_decode_len(key) > (int)sizeof(raw)
        || apr_base64_decode((char *)raw, key) != 16) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                               "websocket_key", NULL,
                               "Sec-WebSocket-Key must be 16 bytes in base64.");
    }
    return OK;
}

/* ---- billing ------------------------------------------------------------- */

/* A request of its own for one response: billing keys its reservation,
 * ledger row and request-log row by the request id, and keeps what it
 * allocates in the request's pool, here a subpool freed once it is billed
 * (a long session must not grow r->pool by every response). */
typedef struct {
    request_rec rr;
    relay_ctx_t rc;
    apr_pool_t *pool;
} rt_bill_t;

static void bill_begin(rt_session_t *s, rt_bill_t *b)
{
    request_rec *r = s->r;

    apr_pool_create(&b->pool, r->pool);
    apr_pool_tag(b->pool, "nebula_realtime_response");
    b->rr = *r;
    b->rr.pool = b->pool;
    b->rr.notes = apr_table_make(b->pool, 4);
    b->rr.subprocess_env = apr_table_make(b->pool, 16);
    b->rr.headers_out = apr_table_make(b->pool, 4);
    b->rr.err_headers_out = apr_table_make(b->pool, 4);
    b->rc = *s->ctx;
    b->rc.r = &b->rr;
    b->rc.req.request_id = nebula_id_uuid7(b->pool);
    b->rc.req.received = apr_time_now();
    b->rc.res = NULL;
    b->rc.cost = 0;
    b->rc.billed = b->rc.logged = 0;
    b->rc.error = NULL;
    b->rc.status = HTTP_OK;
    b->rc.attempts = 1;
}

/* Bill one response.done (@a done, its event object). 0 to go on; 1 when
 * the payer cannot pay: the session must end. */
static int bill_response(rt_session_t *s, json_t *done)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_reserve) *fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_reserve);
    json_t *usage = nebula_json_getj(done, "response", "usage", NULL);
    rt_bill_t b;
    int rc = NEBULA_BILLING_OK, refused = 0;

    s->responses++;
    if (!json_is_object(usage)) {
        /* a response that reports no usage (cancelled before it began) */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, s->r,
                      "realtime response %s without usage: nothing to bill",
                      nebula_json_gets(done, "response", "id", NULL));
        return 0;
    }
    bill_begin(s, &b);
    b.rc.usage.prompt_tokens = nebula_json_geti(usage, 0, "input_tokens", NULL);
    b.rc.usage.completion_tokens = nebula_json_geti(usage, 0, "output_tokens", NULL);
    b.rc.usage.cached_tokens =
        nebula_json_geti(usage, 0, "input_token_details", "cached_tokens", NULL);
    b.rc.usage.cache_write_tokens = 0;
    b.rc.usage.total_tokens = nebula_json_geti(
        usage, b.rc.usage.prompt_tokens + b.rc.usage.completion_tokens, "total_tokens", NULL);
    /* the Realtime API counts cached tokens inside input_tokens */
    b.rc.usage.prompt_excludes_cache = 0;
    b.rc.usage.estimated = 0;
    b.rc.req.prompt_tokens_estimate = b.rc.usage.prompt_tokens;
    b.rc.req.max_output_tokens = b.rc.usage.completion_tokens;
    b.rc.end_reason = "complete";
    if (fn != NULL) {
        rc = fn(&b.rr, &b.rc.req, &b.rc.res);
    }
    if (rc != NEBULA_BILLING_OK) {
        b.rc.res = NULL;
        b.rc.status = rc == NEBULA_BILLING_ERROR ? HTTP_SERVICE_UNAVAILABLE
                                                 : HTTP_TOO_MANY_REQUESTS;
        b.rc.end_reason = rc == NEBULA_BILLING_ERROR ? "billing_unavailable"
                          : rc == NEBULA_BILLING_UNPRICED ? "unpriced_model"
                                                          : "insufficient_quota";
        b.rc.error = apr_table_get(b.rr.notes, NEBULA_BILLING_NOTE_REFUSAL);
        if (b.rc.error == NULL) {
            b.rc.error = b.rc.end_reason;
        }
        /* the usage was delivered but cannot be charged: the row keeps it */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, s->r,
                      "NEB01702: realtime response of request %s (%" APR_INT64_T_FMT
                      " in, %" APR_INT64_T_FMT " out) not billed: %s",
                      b.rc.req.request_id, b.rc.usage.prompt_tokens,
                      b.rc.usage.completion_tokens, b.rc.error);
        /* billing down is the spool's business elsewhere; here the session
         * goes on only while the ledger is reachable again next time */
        refused = rc != NEBULA_BILLING_ERROR;
    }
    b.rc.first_byte = apr_time_now(); /* something reached the client: settle */
    relay_log_request(&b.rc);
    s->ctx->cost += b.rc.cost;
    s->ctx->usage.prompt_tokens += b.rc.usage.prompt_tokens;
    s->ctx->usage.completion_tokens += b.rc.usage.completion_tokens;
    apr_pool_destroy(b.pool);
    return refused;
}

/* ---- frames -------------------------------------------------------------- */

/* Write @a len bytes to @a c and flush. APR_SUCCESS, or the side is gone. */
static apr_status_t conn_write(conn_rec *c, apr_bucket_brigade *bb, const char *data,
                               apr_size_t len)
{
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(data, len, c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(c->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv == APR_SUCCESS && c->aborted ? APR_ECONNABORTED : rv;
}

/* One unmasked frame, as a server sends it. */
static void frame_make(apr_pool_t *p, nebula_buf_t *out, int opcode, const char *payload,
                       apr_size_t len)
{
    unsigned char h[10];
    apr_size_t n = 2, i;

    h[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
    }
    else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    }
    else {
        h[1] = 127;
        for (i = 0; i < 8; ++i) {
            h[2 + i] = (unsigned char)((apr_uint64_t)len >> (56 - 8 * i));
        }
        n = 10;
    }
    nebula_buf_add(p, out, (const char *)h, n);
    nebula_buf_add(p, out, payload, len);
}

/* The gateway's own last words: an OpenAI realtime "error" event and a
 * close frame (1008, policy violation). */
static void send_refusal(rt_session_t *s, const char *code, const char *message)
{
    json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:n, s:n}}", "type", "error",
                           "event_id", apr_pstrcat(s->pool, "event_",
                                                   nebula_id_uuid7(s->pool), NULL),
                           "error", "type", "insufficient_quota", "code", code,
                           "message", message, "param", "event_id");
    const char *text = nebula_json_dumps(s->pool, nebula_json_own(s->pool, ev), 0);
    unsigned char close[2] = {1008 >> 8, 1008 & 0xFF};
    nebula_buf_t out = {0};

    frame_make(s->pool, &out, WS_TEXT, text, strlen(text));
    frame_make(s->pool, &out, WS_CLOSE, (const char *)close, sizeof(close));
    conn_write(s->cc, s->bb, out.s, out.len);
}

/* A complete text message from the upstream: bill it if it is a
 * response.done. 1 when the session must end (refused). */
static int on_message(rt_session_t *s, const char *text, apr_size_t len)
{
    static const char marker[] = "\"response.done\"";
    apr_pool_t *p;
    json_t *ev;
    const char *type;
    int end = 0;

    /* most messages (audio and text deltas) are not it: a cheap look first */
    if (!contains(text, len, marker)) {
        return 0;
    }
    apr_pool_create(&p, s->pool);
    ev = nebula_json_parse(p, text, len, NEBULA_JSON_CONTAINER_ONLY, NULL);
    type = ev ? nebula_json_gets(ev, "type", NULL) : NULL;
    if (type && !strcmp(type, "response.done")) {
        end = bill_response(s, ev);
    }
    apr_pool_destroy(p);
    return end;
}

/* The header of the frame at @a d (@a avail bytes there): its length with
 * the mask key, and the payload length; 0 while the header is incomplete. */
static int frame_head(const unsigned char *d, apr_size_t avail, apr_size_t *hlen,
                      apr_uint64_t *plen)
{
    apr_size_t i;

    if (avail < 2) {
        return 0;
    }
    *plen = d[1] & 0x7F;
    *hlen = 2 + (*plen == 126 ? 2 : *plen == 127 ? 8 : 0) + ((d[1] & 0x80) ? 4 : 0);
    if (avail < *hlen) {
        return 0;
    }
    if (*plen == 126) {
        *plen = ((apr_uint64_t)d[2] << 8) | d[3];
    }
    else if (*plen == 127) {
        for (*plen = 0, i = 0; i < 8; ++i) {
            *plen = (*plen << 8) | d[2 + i];
        }
    }
    return 1;
}

/*
 * Parse the complete frames at the start of s->down and forward them;
 * keep an incomplete one for the next read. Each response.done is billed
 * before the frame that ends it is forwarded. APR_SUCCESS, APR_EOF when the
 * session must end (refused, or a frame we cannot follow), or the client's
 * write error.
 */
static apr_status_t relay_down(rt_session_t *s)
{
    apr_size_t off = 0;
    apr_status_t rv = APR_SUCCESS;
    const unsigned char *d = (const unsigned char *)s->down.s;

    while (!s->refused) {
        apr_size_t avail = s->down.len - off, hlen, i;
        apr_uint64_t plen;
        int fin, opcode, masked;

        if (!frame_head(d + off, avail, &hlen, &plen)) {
            break;
        }
        fin = d[off] & 0x80;
        opcode = d[off] & 0x0F;
        masked = d[off + 1] & 0x80;
        if (plen > (apr_uint64_t)APR_SIZE_MAX - hlen) {
            return APR_EOF;
        }
        if (avail < hlen + plen) {
            break;
        }
        if (masked) { /* a server never masks; unmask in place to read it */
            unsigned char *m = (unsigned char *)s->down.s + off + hlen - 4;
            for (i = 0; i < plen; ++i) {
                ((unsigned char *)s->down.s)[off + hlen + i] ^= m[i % 4];
            }
            ((unsigned char *)s->down.s)[off + 1] &= 0x7F;
            memmove(s->down.s + off + hlen - 4, s->down.s + off + hlen, plen);
            memmove(s->down.s + off + hlen - 4 + plen, s->down.s + off + hlen + plen,
                    s->down.len - (off + hlen + plen));
            s->down.len -= 4;
            hlen -= 4;
        }
        if (opcode == WS_TEXT || opcode == WS_BINARY
            || (opcode == WS_CONT && s->in_message)) {
            if (opcode != WS_CONT) {
                s->msg.len = 0;
                s->msg_text = opcode == WS_TEXT && !(d[off] & 0x70); /* no RSV bits */
            }
            if (s->msg_text && s->msg.len + plen <= RT_MAX_MESSAGE) {
                nebula_buf_add(s->pool, &s->msg, s->down.s + off + hlen, (apr_size_t)plen);
            }
            else if (s->msg_text) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, s->r,
                              "NEB01703: realtime message over %d bytes passed on unread",
                              RT_MAX_MESSAGE);
                s->msg_text = 0;
            }
            s->in_message = !fin;
            if (fin && s->msg_text && on_message(s, s->msg.s, s->msg.len)) {
                s->refused = 1;
            }
        }
        off += hlen + (apr_size_t)plen;
    }
    if (off > 0 && (rv = conn_write(s->cc, s->bb, s->down.s, off)) != APR_SUCCESS) {
        s->end = "client_gone";
        return rv;
    }
    if (off > 0) { /* (s->down.s is NULL before the first read) */
        memmove(s->down.s, s->down.s + off, s->down.len - off);
        s->down.len -= off;
    }
    return s->refused ? APR_EOF : APR_SUCCESS;
}

/* ---- the session --------------------------------------------------------- */

/* Read what @a from has without waiting, into @a out. APR_SUCCESS (maybe
 * nothing), APR_EOF, or an error. */
static apr_status_t read_some(rt_session_t *s, conn_rec *from, nebula_buf_t *out)
{
    apr_status_t rv;
    apr_size_t before = out->len;

    for (;;) {
        char buf[RT_READ_SIZE];
        apr_size_t len = sizeof(buf);
        int eos;

        rv = ap_get_brigade(from->input_filters, s->bb, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, sizeof(buf));
        if (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(s->bb))) {
            apr_brigade_cleanup(s->bb);
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            apr_brigade_cleanup(s->bb);
            return rv;
        }
        eos = APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(s->bb));
        rv = apr_brigade_flatten(s->bb, buf, &len);
        apr_brigade_cleanup(s->bb);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        nebula_buf_add(s->pool, out, buf, len);
        if (eos) {
            return APR_EOF;
        }
        if (out->len - before >= 4 * RT_READ_SIZE) {
            return APR_SUCCESS; /* give the other side a turn */
        }
    }
}

/* Client -> upstream: the bytes as they came. */
static apr_status_t pump_up(rt_session_t *s)
{
    apr_status_t rv;

    s->up_buf.len = 0; /* one buffer for the session's life */
    rv = read_some(s, s->cc, &s->up_buf);
    if (s->up_buf.len > 0
        && conn_write(s->uc, s->bb, s->up_buf.s, s->up_buf.len) != APR_SUCCESS) {
        s->end = "upstream_error";
        return APR_EOF;
    }
    if (rv != APR_SUCCESS) {
        s->end = "client_gone";
        return APR_EOF;
    }
    return APR_SUCCESS;
}

/* Upstream -> client: whole frames, read on the way. */
static apr_status_t pump_down(rt_session_t *s)
{
    apr_status_t rv = read_some(s, s->uc, &s->down), rv2;

    if ((rv2 = relay_down(s)) != APR_SUCCESS) {
        if (!s->end) {
            s->end = s->refused ? "insufficient_quota" : "upstream_error";
        }
        return APR_EOF;
    }
    if (rv != APR_SUCCESS) {
        s->end = "complete"; /* the upstream closed (after its close frame) */
        return APR_EOF;
    }
    return APR_SUCCESS;
}

/* Whether the client frames in @a b include a close frame (a partial
 * frame at the end is kept for the next read). */
static int client_closed(nebula_buf_t *b)
{
    const unsigned char *d = (const unsigned char *)b->s;
    apr_size_t off = 0;

    for (;;) {
        apr_uint64_t plen;
        apr_size_t hlen;

        if (!frame_head(d + off, b->len - off, &hlen, &plen)) {
            break;
        }
        if ((d[off] & 0x0F) == WS_CLOSE) {
            return 1;
        }
        if (b->len - off - hlen < plen) {
            break;
        }
        off += hlen + (apr_size_t)plen;
    }
    if (off > 0) {
        memmove(b->s, b->s + off, b->len - off);
        b->len -= off;
    }
    return 0;
}

/* After our close frame: wait a moment for the client's answer (reading
 * and dropping what comes before it), so that it sees a clean close
 * rather than a reset. */
static void close_wait(rt_session_t *s, apr_pollset_t *ps)
{
    apr_time_t until = apr_time_now() + RT_CLOSE_WAIT;
    const apr_pollfd_t *out;
    apr_int32_t n;

    /* what the client sends now starts at a frame boundary unless it was
     * half-way through a frame when the session ended: then its close is
     * not recognised and the wait runs out, no worse than no wait */
    s->up_buf.len = 0;
    while (apr_time_now() < until) {
        if (apr_pollset_poll(ps, until - apr_time_now(), &n, &out) != APR_SUCCESS
            || read_some(s, s->cc, &s->up_buf) != APR_SUCCESS || client_closed(&s->up_buf)) {
            return;
        }
    }
}

static void session_run(rt_session_t *s, apr_interval_time_t idle)
{
    apr_pollset_t *ps = NULL, *cps = NULL;
    apr_pollfd_t pc = {0}, pu = {0};
    apr_socket_t *csock = ap_get_conn_socket(s->cc);
    const apr_pollfd_t *out;
    apr_int32_t n, i;
    apr_status_t rv;

    pc.p = pu.p = s->pool;
    pc.desc_type = pu.desc_type = APR_POLL_SOCKET;
    pc.desc.s = csock;
    pu.desc.s = relay_upstream_socket(s->up);
    pc.reqevents = pu.reqevents = APR_POLLIN;
    pc.client_data = s->cc;
    pu.client_data = s->uc;
    if (apr_pollset_create(&ps, 2, s->pool, 0) != APR_SUCCESS
        || apr_pollset_add(ps, &pc) != APR_SUCCESS || apr_pollset_add(ps, &pu) != APR_SUCCESS
        || apr_pollset_create(&cps, 1, s->pool, 0) != APR_SUCCESS
        || apr_pollset_add(cps, &pc) != APR_SUCCESS) {
        s->end = "gateway_error";
        return;
    }
    /* what either side's filters hold already (the upstream may have sent
     * session.created with its 101) comes first */
    if (pump_down(s) != APR_SUCCESS || pump_up(s) != APR_SUCCESS) {
        goto done;
    }
    for (;;) {
        rv = apr_pollset_poll(ps, idle, &n, &out);
        if (APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (APR_STATUS_IS_TIMEUP(rv)) {
            s->end = "idle_timeout";
            break;
        }
        if (rv != APR_SUCCESS) {
            s->end = "gateway_error";
            break;
        }
        for (i = 0; i < n; ++i) {
            if ((out[i].client_data == s->uc ? pump_down(s) : pump_up(s)) != APR_SUCCESS) {
                goto done;
            }
        }
    }
done:
    if (s->refused) {
        send_refusal(s, "insufficient_quota",
                     "You exceeded your current quota, please check your plan and billing "
                     "details; the session is closed.");
        close_wait(s, cps);
    }
}

/* ---- the upstream handshake ---------------------------------------------- */

/* The headers of the upstream's upgrade request on @a ch. */
static apr_table_t *upstream_headers(relay_ctx_t *ctx, const relay_channel_t *ch,
                                     const relay_chkey_t *key, const char *wskey)
{
    request_rec *r = ctx->r;
    apr_table_t *h = apr_table_make(r->pool, 12);
    apr_array_header_t *protos = subprotocols(r);
    const char *list = NULL, *v;
    static const char *const copy[] = {"OpenAI-Beta", "User-Agent", "OpenAI-Safety-Identifier",
                                       NULL};
    int i;

    for (i = 0; copy[i]; ++i) {
        if ((v = apr_table_get(r->headers_in, copy[i])) != NULL) {
            apr_table_setn(h, copy[i], v);
        }
    }
    /* the client's key never travels on: the channel's does */
    for (i = 0; i < protos->nelts; ++i) {
        const char *p = APR_ARRAY_IDX(protos, i, const char *);
        if (strncmp(p, RT_KEY_PROTO, sizeof(RT_KEY_PROTO) - 1)) {
            list = list ? apr_pstrcat(r->pool, list, ", ", p, NULL) : p;
        }
    }
    if (list) {
        apr_table_setn(h, "Sec-WebSocket-Protocol", list);
    }
    if (ch->headers) {
        apr_table_overlap(h, ch->headers, APR_OVERLAP_TABLES_SET);
    }
    relay_openai_auth(r->pool, ch, key, h);
    apr_table_setn(h, "Sec-WebSocket-Key", wskey);
    apr_table_setn(h, "Sec-WebSocket-Version", "13");
    /* no Sec-WebSocket-Extensions: no compression, the frames stay readable */
    return h;
}

/* Open the upstream's WebSocket on @a ch. OK with *@a pup switched;
 * HTTP_BAD_GATEWAY (try another channel) or the upstream's refusal, whose
 * OpenAI-shaped body is in *@a body. */
static int upstream_open(relay_ctx_t *ctx, const relay_channel_t *ch,
                         const relay_chkey_t *key, relay_upstream_t **pup,
                         apr_table_t **rh, const char **body)
{
    request_rec *r = ctx->r;
    relay_upstream_t *up = NULL;
    unsigned char nonce[16];
    char wskey[32];
    const char *url, *accept;
    int rc, status = 0, definitive = 0;

    *body = NULL;
    ctx->req.upstream_model = relay_channel_map_model(r, ch, ctx->req.model);
    url = relay_v1_url(r->pool, ch->base_url,
                       apr_pstrcat(r->pool, "/v1/realtime?model=",
                                   ap_escape_urlencoded(r->pool, ctx->req.upstream_model),
                                   NULL));
    if (apr_generate_random_bytes(nonce, sizeof(nonce)) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_base64_encode(wskey, (const char *)nonce, sizeof(nonce));
    rc = relay_upstream_open(r, url, ch->proxy, relay_attempt_timeout(ctx, ch), &up);
    if (rc != OK) {
        return HTTP_BAD_GATEWAY;
    }
    if ((rc = relay_upstream_send_upgrade(up, "websocket",
                                          upstream_headers(ctx, ch, key, wskey))) != OK
        || (rc = relay_upstream_read_upgrade(up, &status, rh)) != OK) {
        relay_upstream_close(up, 1);
        return HTTP_BAD_GATEWAY;
    }
    if (status != HTTP_SWITCHING_PROTOCOLS) {
        *body = relay_openai_error_body(ctx, up, status, &definitive);
        relay_upstream_close(up, 1);
        return relay_config_retry_status(relay_config_srv(r->server), status) || definitive
                   ? HTTP_BAD_GATEWAY
                   : status;
    }
    accept = apr_table_get(*rh, "Sec-WebSocket-Accept");
    if (!header_has(r->pool, *rh, "Upgrade", "websocket") || accept == NULL
        || strcmp(accept, ws_accept(r->pool, wskey))
        || apr_table_get(*rh, "Sec-WebSocket-Extensions")) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01704: channel %" APR_INT64_T_FMT " (%s) answered the realtime "
                      "upgrade with a bad WebSocket handshake", ch->id, ch->name);
        relay_upstream_close(up, 1);
        return HTTP_BAD_GATEWAY;
    }
    *pup = up;
    return OK;
}

/* Try channels for the model until one upgrades. OK with *@a pup; else an
 * error was sent. */
static int connect_upstream(relay_ctx_t *ctx, relay_upstream_t **pup, apr_table_t **rh)
{
    request_rec *r = ctx->r;
    int retries = ctx->key->forced_channel ? 0 : relay_config_srv(r->server)->retries;
    apr_array_header_t *tried = apr_array_make(r->pool, 4, sizeof(apr_int64_t));
    const char *body = NULL;
    int n, rc = HTTP_BAD_GATEWAY;

    for (n = 0; n <= retries; ++n) {
        const relay_channel_t *ch =
            ctx->key->forced_channel
                ? (n == 0 ? relay_channel_by_id(ctx->snap, ctx->key->forced_channel) : NULL)
                : relay_channel_select(r, ctx->snap, ctx->group, ctx->req.model, n, tried);
        const relay_chkey_t *key;

        if (ch == NULL) {
            break;
        }
        APR_ARRAY_PUSH(tried, apr_int64_t) = ch->id;
        if ((key = relay_channel_key(r, ch, NULL)) == NULL) {
            continue;
        }
        ctx->channel = ch;
        ctx->chkey = key;
        ctx->attempts++;
        if ((rc = upstream_open(ctx, ch, key, pup, rh, &body)) == OK) {
            return OK;
        }
        if (rc != HTTP_BAD_GATEWAY) {
            break;
        }
    }
    ctx->end_reason = ctx->attempts ? "upstream_error" : "no_channel";
    if (body) {
        ctx->status = rc == HTTP_BAD_GATEWAY ? HTTP_BAD_GATEWAY : rc;
        r->status = ctx->status;
        ap_set_content_type(r, "application/json");
        ap_rvputs(r, body, "\n", NULL);
        return DONE;
    }
    if (ctx->attempts == 0) {
        ctx->error = "no available channel";
        return nebula_ap_error(r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "no_available_channel", NULL,
                               "No channel can serve the model '%s' right now.",
                               ctx->req.model);
    }
    ctx->error = "The upstream could not be reached.";
    return nebula_ap_error(r, HTTP_BAD_GATEWAY, "upstream_error", "upstream_unreachable",
                           NULL, "The upstream could not be reached.");
}

/* ---- the route ----------------------------------------------------------- */

/* Everything before the upgrade: OK, or an error was sent. */
static int prepare(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    const char *model = query_param(r, "model");
    apr_array_header_t *models;
    int rc, i, known = 0;

    if ((rc = check_upgrade(ctx)) != OK) {
        return rc;
    }
    if (model == NULL || *model == '\0') {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                               "missing_required_parameter", "model",
                               "You must provide a model parameter (?model=).");
    }
    if (relay_model_check(r, model, strlen(model), "model") != OK) {
        return DONE;
    }
    ctx->req.model = model;
    ctx->req.stream = 1;
    apr_table_setn(r->subprocess_env, "NEBULA_MODEL", model);
    if (!relay_auth_model_allowed(ctx->key, model)) {
        return nebula_ap_error(r, HTTP_FORBIDDEN, "permission_error", "model_not_allowed",
                               "model", "This API key may not use the model '%s'.", model);
    }
    /* the key's policies apply at connect, as to any request */
    if ((rc = relay_govern(ctx)) != OK) {
        return rc;
    }
    model = ctx->req.model; /* maybe downgraded */
    if ((ctx->snap = relay_channel_snapshot(r)) == NULL) {
        ctx->end_reason = "no_channel";
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                               "database_unavailable", NULL,
                               "The gateway cannot read its channels right now.");
    }
    models = relay_channel_models(r, ctx->snap, ctx->group);
    for (i = 0; i < models->nelts && !known; ++i) {
        known = !strcmp(APR_ARRAY_IDX(models, i, const char *), model);
    }
    if (!known && !ctx->key->forced_channel) {
        ctx->end_reason = "no_channel";
        ctx->error = "unknown model";
        return nebula_ap_error(r, HTTP_NOT_FOUND, "invalid_request_error", "model_not_found",
                               "model",
                               "The model '%s' does not exist or you do not have access "
                               "to it.", model);
    }
    /* can the payer pay for anything at all? a minimal request's hold,
     * given back when the handshake is decided */
    ctx->req.prompt_tokens_estimate = 1;
    ctx->req.max_output_tokens = 1;
    return relay_attempt_reserve(ctx);
}

/* Answer the client's upgrade: 101 with the accept of ITS key. */
static int switch_client(relay_ctx_t *ctx, apr_table_t *rh)
{
    request_rec *r = ctx->r;
    conn_rec *c = r->connection;
    apr_array_header_t *offered = subprotocols(r);
    const char *proto = apr_table_get(rh, "Sec-WebSocket-Protocol");
    int i;

    if (proto == NULL) {
        /* the client offered some (a browser, its key among them): a
         * client must see one chosen; "realtime" is what the API speaks */
        for (i = 0; i < offered->nelts && !proto; ++i) {
            if (!strcmp(APR_ARRAY_IDX(offered, i, const char *), "realtime")) {
                proto = "realtime";
            }
        }
    }
    r->status = HTTP_SWITCHING_PROTOCOLS;
    apr_table_clear(r->headers_out);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept",
                   ws_accept(r->pool, apr_table_get(r->headers_in, "Sec-WebSocket-Key")));
    if (proto) {
        apr_table_setn(r->headers_out, "Sec-WebSocket-Protocol", proto);
    }
    apr_table_setn(r->headers_out, "X-Request-Id", ctx->req.request_id);
    ap_send_interim_response(r, 1);
    /* from here on the connection speaks WebSocket: connection filters only
     * (as mod_proxy's tunnels), no request timeout, no keep-alive */
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    r->input_filters = r->proto_input_filters = c->input_filters;
    r->output_filters = r->proto_output_filters = c->output_filters;
    c->keepalive = AP_CONN_CLOSE;
    return c->aborted ? HTTP_BAD_REQUEST : OK;
}

int relay_realtime_serve(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    relay_upstream_t *up = NULL;
    apr_table_t *rh = NULL;
    rt_session_t *s;
    int rc;

    ctx->req.proto = NEBULA_PROTO_OPENAI_REALTIME;
    if ((rc = prepare(ctx)) != OK || (rc = connect_upstream(ctx, &up, &rh)) != OK) {
        if (ctx->status == 0) {
            ctx->status = r->status;
        }
        relay_log_request(ctx); /* gives the hold back */
        return rc;
    }
    rc = switch_client(ctx, rh);
    /* the session's row: the hold given back, cost 0; each response has its
     * own row from here on */
    ctx->status = HTTP_SWITCHING_PROTOCOLS;
    ctx->end_reason = rc == OK ? "session_open" : "client_gone";
    ctx->attempts = ctx->attempts ? ctx->attempts : 1;
    relay_log_request(ctx);
    ctx->billed = ctx->logged = 0;
    ctx->res = NULL;
    if (rc == OK) {
        s = apr_pcalloc(r->pool, sizeof(*s));
        apr_pool_create(&s->pool, r->pool);
        apr_pool_tag(s->pool, "nebula_realtime_session");
        s->ctx = ctx;
        s->r = r;
        s->cc = r->connection;
        s->uc = relay_upstream_conn(up);
        s->up = up;
        s->bb = apr_brigade_create(s->pool, s->cc->bucket_alloc);
        relay_stats_stream(1);
        session_run(s, relay_attempt_timeout(ctx, ctx->channel));
        relay_stats_stream(-1);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "realtime session %s ended (%s): %d responses, cost %" APR_INT64_T_FMT,
                      ctx->req.request_id, s->end ? s->end : "complete", s->responses,
                      ctx->cost);
        apr_table_setn(r->subprocess_env, "NEBULA_END", s->end ? s->end : "complete");
        apr_table_setn(r->subprocess_env, "NEBULA_COST",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT, ctx->cost));
        apr_pool_destroy(s->pool);
    }
    /* never pooled again: the WebSocket is over */
    relay_upstream_close(up, 1);
    return DONE;
}

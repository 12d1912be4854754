/*
 * mod_nebula_mock_ws.c - the mock OpenAI Realtime API (WebSocket) of
 * NebulaGate's tests (t/relay/realtime.t, t/sdk/realtime.t).
 *
 * ROUTE  GET [/_mock/<anything>]/v1/realtime?model=M with an RFC 6455
 *   upgrade (handler nebula-mock-ws). Refused with an OpenAI-shaped JSON
 *   error before the upgrade: no "Authorization: Bearer K" (401); no model
 *   (400); a Sec-WebSocket-Extensions offer or an "openai-insecure-api-key."
 *   subprotocol (400: a gateway must strip both). The subprotocol "realtime"
 *   is chosen when offered. Records nothing: what it received shows in
 *   what it answers.
 *
 * SESSION  (event shapes of openai-python's types/realtime)
 *   on connect         session.created (session.model = M, the query's)
 *   session.update     session.updated; its session.instructions may carry
 *                      [[mock k=v,...]] controls (below), cut out of the text
 *   conversation.item.create
 *                      conversation.item.created with the item echoed
 *                      (id given when absent, status "completed")
 *   response.create    response.created, N x response.output_text.delta
 *                      ("tok<k> ", k = 1..N), response.done with usage
 *   ping / close       pong with the same payload / the close echoed, end
 *   anything else      an "error" event (invalid_request_error)
 *
 * USAGE  (exact, so tests can compute it)
 *   input_tokens  = words of the instructions + words of the text of every
 *                   item created so far (content[].text) + the output tokens
 *                   of the session's earlier responses (the conversation)
 *   output_tokens = N = events (default 3)
 *   input_token_details.cached_tokens = cached (default 0)
 *   total_tokens  = input + output
 *
 * CONTROLS  events=N (0..1000), delay_ms=D between deltas, cached=C.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_sha1.h>
#include <apr_base64.h>
#include <jansson.h>

#define WS_HANDLER "nebula-mock-ws"
#define WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX     (8 * 1024 * 1024)

module AP_MODULE_DECLARE_DATA nebula_mock_ws_module;

typedef struct {
    request_rec *r;
    conn_rec *c;
    apr_bucket_brigade *bb;
    char *buf;                  /* bytes read, not yet parsed */
    apr_size_t len, cap;
    const char *model;
    long events, delay_ms, cached;
    long instr_words, item_words, past_output;
    unsigned long seq;
} ws_t;

/* ---- helpers ------------------------------------------------------------- */

static const char *ws_id(ws_t *w, const char *prefix)
{
    return apr_psprintf(w->r->pool, "%s_mock%06lu", prefix, ++w->seq);
}

static long count_words(const char *s)
{
    long n = 0;
    int in = 0;

    for (; s && *s; ++s) {
        if (apr_isspace(*s)) {
            in = 0;
        }
        else if (!in) {
            in = 1;
            ++n;
        }
    }
    return n;
}

/* Apply and cut out every [[mock k=v,...]] marker of @a text. */
static char *ws_controls(ws_t *w, const char *text)
{
    char *t = apr_pstrdup(w->r->pool, text ? text : ""), *m, *e;

    while ((m = strstr(t, "[[mock ")) != NULL && (e = strstr(m, "]]")) != NULL) {
        char *kv = apr_pstrndup(w->r->pool, m + 7, (apr_size_t)(e - m - 7)), *tok, *st = NULL;

        for (tok = apr_strtok(kv, ",", &st); tok; tok = apr_strtok(NULL, ",", &st)) {
            char *eq = strchr(tok, '=');
            long v;

            if (eq == NULL) {
                continue;
            }
            *eq = '\0';
            v = strtol(eq + 1, NULL, 10);
            if (!strcmp(tok, "events") && v >= 0 && v <= 1000) {
                w->events = v;
            }
            else if (!strcmp(tok, "delay_ms") && v >= 0) {
                w->delay_ms = v;
            }
            else if (!strcmp(tok, "cached") && v >= 0) {
                w->cached = v;
            }
        }
        memmove(m, e + 2, strlen(e + 2) + 1);
    }
    return t;
}

static int ws_http_error(request_rec *r, int status, const char *type, const char *msg)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type", type,
                          "param", "code");
    char *body = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_rvputs(r, body, "\n", NULL);
    free(body);
    return OK;
}

/* ---- frames -------------------------------------------------------------- */

static apr_status_t ws_send(ws_t *w, int opcode, const char *data, apr_size_t len)
{
    unsigned char h[10];
    apr_size_t n = 2, i;
    apr_status_t rv;

    h[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
    }
    else if (len <= 0xFFFF) {
        h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len, n = 4;
    }
    else {
        h[1] = 127;
        for (i = 0; i < 8; ++i) {
            h[2 + i] = (unsigned char)((apr_uint64_t)len >> (56 - 8 * i));
        }
        n = 10;
    }
    apr_brigade_write(w->bb, NULL, NULL, (const char *)h, n);
    apr_brigade_write(w->bb, NULL, NULL, data, len);
    APR_BRIGADE_INSERT_TAIL(w->bb, apr_bucket_flush_create(w->c->bucket_alloc));
    rv = ap_pass_brigade(w->c->output_filters, w->bb);
    apr_brigade_cleanup(w->bb);
    return rv;
}

/* Send @a ev (stolen) as a text frame, with an event_id. */
static apr_status_t ws_event(ws_t *w, json_t *ev)
{
    char *text;
    apr_status_t rv;

    json_object_set_new(ev, "event_id", json_string(ws_id(w, "event")));
    text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    rv = ws_send(w, 0x1, text, strlen(text));
    free(text);
    return rv;
}

/* Read one whole client frame (masked): opcode, payload (unmasked, pool).
 * Fragmented messages are not needed by the tests: continuation frames are
 * returned as they come. */
static apr_status_t ws_read(ws_t *w, int *opcode, char **payload, apr_size_t *plen)
{
    for (;;) {
        if (w->len >= 2) {
            const unsigned char *d = (const unsigned char *)w->buf;
            apr_size_t hlen = 2, i;
            apr_uint64_t n = d[1] & 0x7F;

            hlen += n == 126 ? 2 : n == 127 ? 8 : 0;
            hlen += (d[1] & 0x80) ? 4 : 0;
            if (w->len >= hlen) {
                if (n == 126) {
                    n = ((apr_uint64_t)d[2] << 8) | d[3];
                }
                else if (n == 127) {
                    for (n = 0, i = 0; i < 8; ++i) {
                        n = (n << 8) | d[2 + i];
                    }
                }
                if (n > WS_MAX) {
                    return APR_EGENERAL;
                }
                if (w->len >= hlen + n) {
                    char *p = apr_palloc(w->r->pool, (apr_size_t)n + 1);
                    const unsigned char *mask = (d[1] & 0x80) ? d + hlen - 4 : NULL;

                    for (i = 0; i < n; ++i) {
                        p[i] = (char)(d[hlen + i] ^ (mask ? mask[i % 4] : 0));
                    }
                    p[n] = '\0';
                    *opcode = d[0] & 0x0F;
                    *payload = p;
                    *plen = (apr_size_t)n;
                    memmove(w->buf, w->buf + hlen + n, w->len - hlen - n);
                    w->len -= hlen + n;
                    return APR_SUCCESS;
                }
            }
        }
        {
            char tmp[16384];
            apr_size_t got = sizeof(tmp);
            apr_status_t rv = ap_get_brigade(w->c->input_filters, w->bb, AP_MODE_READBYTES,
                                             APR_BLOCK_READ, sizeof(tmp));
            int eos;

            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(w->bb);
                return rv;
            }
            eos = !APR_BRIGADE_EMPTY(w->bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(w->bb));
            rv = apr_brigade_flatten(w->bb, tmp, &got);
            apr_brigade_cleanup(w->bb);
            if (rv != APR_SUCCESS || (got == 0 && eos)) {
                return APR_EOF;
            }
            if (w->len + got > w->cap) {
                char *nb;
                w->cap = (w->len + got) * 2;
                nb = apr_palloc(w->r->pool, w->cap);
                if (w->len) { /* w->buf is NULL before the first frame */
                    memcpy(nb, w->buf, w->len);
                }
                w->buf = nb;
            }
            memcpy(w->buf + w->len, tmp, got);
            w->len += got;
        }
    }
}

/* ---- events -------------------------------------------------------------- */

static json_t *ws_session(ws_t *w)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "type", "realtime", "object",
                     "realtime.session", "id", "sess_mock", "model", w->model,
                     "output_modalities", "text");
}

static long item_words(json_t *item)
{
    json_t *content = json_object_get(item, "content"), *part;
    size_t i;
    long n = 0;

    json_array_foreach(content, i, part) {
        n += count_words(json_string_value(json_object_get(part, "text")));
    }
    return n;
}

static apr_status_t ws_respond(ws_t *w)
{
    const char *rid = ws_id(w, "resp"), *iid = ws_id(w, "item");
    long k, input = w->instr_words + w->item_words + w->past_output;
    apr_status_t rv;
    json_t *text = json_string("");

    rv = ws_event(w, json_pack("{s:s, s:{s:s, s:s, s:s, s:[], s:n}}", "type",
                               "response.created", "response", "id", rid, "object",
                               "realtime.response", "status", "in_progress", "output",
                               "usage"));
    for (k = 1; k <= w->events && rv == APR_SUCCESS; ++k) {
        const char *delta = apr_psprintf(w->r->pool, "tok%ld ", k);

        if (k > 1 && w->delay_ms > 0) {
            apr_sleep(apr_time_from_msec(w->delay_ms));
        }
        json_string_set(text, apr_pstrcat(w->r->pool, json_string_value(text), delta, NULL));
        rv = ws_event(w, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s}", "type",
                                   "response.output_text.delta", "response_id", rid, "item_id",
                                   iid, "output_index", 0, "content_index", 0, "delta", delta));
    }
    if (rv == APR_SUCCESS) {
        rv = ws_event(
            w, json_pack("{s:s, s:{s:s, s:s, s:s,"
                         " s:[{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:O}]}],"
                         " s:{s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I}}}}",
                         "type", "response.done", "response", "id", rid, "object",
                         "realtime.response", "status", "completed", "output", "id", iid,
                         "object", "realtime.item", "type", "message", "role", "assistant",
                         "status", "completed", "content", "type", "output_text", "text", text,
                         "usage", "total_tokens", (json_int_t)(input + w->events),
                         "input_tokens", (json_int_t)input, "output_tokens",
                         (json_int_t)w->events, "input_token_details", "cached_tokens",
                         (json_int_t)w->cached, "text_tokens", (json_int_t)input,
                         "audio_tokens", (json_int_t)0, "output_token_details",
                         "text_tokens", (json_int_t)w->events, "audio_tokens",
                         (json_int_t)0));
        w->past_output += w->events;
    }
    json_decref(text);
    return rv;
}

static apr_status_t ws_on_text(ws_t *w, const char *text, apr_size_t len)
{
    json_t *ev = json_loadb(text, len, 0, NULL), *item;
    const char *type = json_string_value(json_object_get(ev, "type"));
    apr_status_t rv;

    if (type && !strcmp(type, "session.update")) {
        const char *ins = json_string_value(
            json_object_get(json_object_get(ev, "session"), "instructions"));
        json_t *s = ws_session(w);

        if (ins) {
            char *clean = ws_controls(w, ins);
            w->instr_words = count_words(clean);
            json_object_set_new(s, "instructions", json_string(clean));
        }
        rv = ws_event(w, json_pack("{s:s, s:o}", "type", "session.updated", "session", s));
    }
    else if (type && !strcmp(type, "conversation.item.create")
             && json_is_object(item = json_object_get(ev, "item"))) {
        item = json_deep_copy(item);
        if (!json_object_get(item, "id")) {
            json_object_set_new(item, "id", json_string(ws_id(w, "item")));
        }
        json_object_set_new(item, "object", json_string("realtime.item"));
        json_object_set_new(item, "status", json_string("completed"));
        w->item_words += item_words(item);
        rv = ws_event(w, json_pack("{s:s, s:n, s:o}", "type", "conversation.item.created",
                                   "previous_item_id", "item", item));
    }
    else if (type && !strcmp(type, "response.create")) {
        rv = ws_respond(w);
    }
    else {
        rv = ws_event(w, json_pack("{s:s, s:{s:s, s:s, s:n, s:s}}", "type", "error", "error",
                                   "type", "invalid_request_error", "message",
                                   "The mock does not know this event.", "code",
                                   "event_id", type ? type : ""));
    }
    json_decref(ev);
    return rv;
}

/* ---- handler ------------------------------------------------------------- */

static const char *ws_accept(apr_pool_t *p, const char *key)
{
    apr_sha1_ctx_t sha;
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    char *out = apr_palloc(p, apr_base64_encode_len(sizeof(digest)));

    apr_sha1_init(&sha);
    apr_sha1_update(&sha, key, (unsigned int)strlen(key));
    apr_sha1_update(&sha, WS_GUID, (unsigned int)strlen(WS_GUID));
    apr_sha1_final(digest, &sha);
    apr_base64_encode(out, (const char *)digest, sizeof(digest));
    return out;
}

static int ws_handler(request_rec *r)
{
    const char *auth = apr_table_get(r->headers_in, "Authorization");
    const char *key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    const char *protos = apr_table_get(r->headers_in, "Sec-WebSocket-Protocol");
    const char *q;
    ws_t *w;
    int opcode;
    char *payload;
    apr_size_t plen;

    if (!r->handler || strcmp(r->handler, WS_HANDLER)) {
        return DECLINED;
    }
    if (strlen(r->uri) < 12 || strcmp(r->uri + strlen(r->uri) - 12, "/v1/realtime")) {
        return ws_http_error(r, HTTP_NOT_FOUND, "invalid_request_error", "Unknown URL.");
    }
    if (auth == NULL || strncmp(auth, "Bearer ", 7) || auth[7] == '\0') {
        return ws_http_error(r, HTTP_UNAUTHORIZED, "invalid_request_error",
                             "Missing bearer authentication in header.");
    }
    if (key == NULL || !ap_find_token(r->pool, apr_table_get(r->headers_in, "Upgrade"),
                                      "websocket")) {
        return ws_http_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                             "Expected a WebSocket upgrade.");
    }
    if (apr_table_get(r->headers_in, "Sec-WebSocket-Extensions")
        || (protos && strstr(protos, "openai-insecure-api-key."))) {
        return ws_http_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                             "The mock refuses extensions and key subprotocols.");
    }
    w = apr_pcalloc(r->pool, sizeof(*w));
    w->r = r;
    w->c = r->connection;
    w->bb = apr_brigade_create(r->pool, w->c->bucket_alloc);
    w->events = 3;
    if (r->args && (q = strstr(apr_pstrcat(r->pool, "&", r->args, NULL), "&model="))) {
        char *m = apr_pstrdup(r->pool, q + 7), *amp = strchr(m, '&');
        if (amp) {
            *amp = '\0';
        }
        ap_unescape_url(m);
        w->model = m;
    }
    if (w->model == NULL || *w->model == '\0') {
        return ws_http_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                             "Missing the model query parameter.");
    }
    r->status = HTTP_SWITCHING_PROTOCOLS;
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", ws_accept(r->pool, key));
    if (protos && ap_find_token(r->pool, protos, "realtime")) {
        apr_table_setn(r->headers_out, "Sec-WebSocket-Protocol", "realtime");
    }
    ap_send_interim_response(r, 1);
    ap_remove_input_filter_byhandle(w->c->input_filters, "reqtimeout");
    r->input_filters = r->proto_input_filters = w->c->input_filters;
    r->output_filters = r->proto_output_filters = w->c->output_filters;
    w->c->keepalive = AP_CONN_CLOSE;
    if (ws_event(w, json_pack("{s:s, s:o}", "type", "session.created", "session",
                              ws_session(w))) != APR_SUCCESS) {
        return DONE;
    }
    while (ws_read(w, &opcode, &payload, &plen) == APR_SUCCESS) {
        apr_status_t rv = APR_SUCCESS;

        if (opcode == 0x8) {
            ws_send(w, 0x8, payload, plen >= 2 ? 2 : 0);
            break;
        }
        if (opcode == 0x9) {
            rv = ws_send(w, 0xA, payload, plen);
        }
        else if (opcode == 0x1) {
            rv = ws_on_text(w, payload, plen);
        }
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    return DONE;
}

static void ws_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(ws_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA nebula_mock_ws_module = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    ws_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};

/* The vhost, <VirtualHost nebula_mock_ws> with SetHandler nebula-mock-ws,
 * is declared in t/conf/extra.conf.in (channels there name its port). */
#if CONFIG_FOR_HTTPD_TEST
#endif

/* relay_media.c: the media routes of the OpenAI API family, on OpenAI-kind
 * channels (openai, azure, openai-compatible; the others cannot serve them):
 *
 *   POST /v1/rerank                  JSON (Jina / Cohere shape)
 *   POST /v1/images/generations      JSON
 *   POST /v1/images/edits            multipart/form-data
 *   POST /v1/images/variations       multipart/form-data
 *   POST /v1/audio/speech            JSON; the answer is binary audio
 *   POST /v1/audio/transcriptions    multipart/form-data
 *   POST /v1/audio/translations      multipart/form-data
 *
 * A multipart body goes upstream byte for byte with the client's
 * Content-Type (and so its boundary): the form is only scanned for its small
 * fields (model, n, size, quality, prompt) and the size of its file; file
 * parts are never decoded or copied. Only when the model the channel gets
 * differs from the form's (mapping, governance) is the body spliced once
 * around the model's value. Speech audio is relayed chunk by chunk as the
 * upstream sends it, flushed whenever the upstream pauses.
 *
 * Billing units (docs/media.md): rerank tokens (usage.total_tokens as
 * prompt tokens); images per image (req.calls = n) or the token usage of
 * gpt-image-1; speech characters of `input` as prompt tokens; transcriptions
 * seconds of audio as prompt tokens, or their token usage.
 */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <util_filter.h>
#include <mod_proxy.h>
#include "relay_private.h"
#include "nebula_ap.h"

#define MEDIA_BODY_MAX   (64 * 1024 * 1024) /* a complete upstream answer */
#define MEDIA_FIELD_MAX  (64 * 1024)        /* a form field the gateway reads */
#define MEDIA_BOUNDARY_MAX 70               /* RFC 2046 */
/* transcriptions without a reported duration: 16000 bytes a second (128
 * kbit/s, a common MP3 rate; 8 kHz 16-bit mono WAV is the same) */
#define MEDIA_BYTES_PER_SECOND 16000

/* What the gateway learnt of a media request. */
struct relay_media_t {
    const char *content_type;  /**< multipart: the client's, with its boundary */
    apr_size_t model_off;      /**< multipart: the model value in the raw body */
    apr_size_t model_len;
    const char *model_value;   /**< ... as sent (NULL: no model field) */
    apr_int64_t file_bytes;    /**< the "file" part's size; -1 none */
    apr_int64_t n;             /**< images asked for */
};

int relay_media_route(const relay_route_t *route)
{
    switch (route->route) {
    case RELAY_ROUTE_RERANK:
    case RELAY_ROUTE_IMAGES_GEN:
    case RELAY_ROUTE_IMAGES_EDIT:
    case RELAY_ROUTE_IMAGES_VAR:
    case RELAY_ROUTE_SPEECH:
    case RELAY_ROUTE_TRANSCRIBE:
    case RELAY_ROUTE_TRANSLATE:
        return 1;
    default:
        return 0;
    }
}

int relay_media_form_route(const relay_route_t *route)
{
    switch (route->route) {
    case RELAY_ROUTE_IMAGES_EDIT:
    case RELAY_ROUTE_IMAGES_VAR:
    case RELAY_ROUTE_TRANSCRIBE:
    case RELAY_ROUTE_TRANSLATE:
        return 1;
    default:
        return 0;
    }
}

static struct relay_media_t *media_of(relay_ctx_t *ctx)
{
    if (ctx->media == NULL) {
        ctx->media = apr_pcalloc(ctx->r->pool, sizeof(*ctx->media));
        ctx->media->file_bytes = -1;
        ctx->media->n = 1;
    }
    return ctx->media;
}

/* ---- multipart/form-data ------------------------------------------------ */

static int bad_form(relay_ctx_t *ctx, const char *why)
{
    return nebula_ap_error(ctx->r, HTTP_BAD_REQUEST, "invalid_request_error",
                           "invalid_multipart", NULL,
                           "The request body is not valid multipart/form-data: %s.", why);
}

/* The boundary parameter of a multipart/form-data Content-Type, or NULL. */
static const char *form_boundary(apr_pool_t *p, const char *ct)
{
    const char *s = ct;

    while ((s = ap_strchr_c(s, ';')) != NULL) {
        const char *v, *e;
        ++s;
        while (*s == ' ' || *s == '\t') {
            ++s;
        }
        if (ap_cstr_casecmpn(s, "boundary=", 9)) {
            continue;
        }
        v = s + 9;
        if (*v == '"') {
            e = ap_strchr_c(++v, '"');
        }
        else {
            for (e = v; *e && *e != ';' && *e != ' ' && *e != '\t'; ++e) {
            }
        }
        if (e == NULL || e == v || e - v > MEDIA_BOUNDARY_MAX) {
            return NULL;
        }
        return apr_pstrndup(p, v, (apr_size_t)(e - v));
    }
    return NULL;
}

/* The first @a n bytes equal to @a needle in [@a s, @a s + @a len), or NULL. */
static const char *find_bytes(const char *s, apr_size_t len, const char *needle,
                              apr_size_t n)
{
    const char *end = s + len, *c;

    while ((apr_size_t)(end - s) >= n
           && (c = memchr(s, needle[0], (apr_size_t)(end - s) - n + 1)) != NULL) {
        if (!memcmp(c, needle, n)) {
            return c;
        }
        s = c + 1;
    }
    return NULL;
}

/* A parameter (name="...") of a Content-Disposition value; NULL absent. */
static const char *disposition_param(apr_pool_t *p, const char *v, const char *name)
{
    apr_size_t n = strlen(name);
    const char *s = v;

    while ((s = ap_strchr_c(s, ';')) != NULL) {
        const char *e;
        char *out, *o;
        ++s;
        while (*s == ' ' || *s == '\t') {
            ++s;
        }
        if (ap_cstr_casecmpn(s, name, n) || s[n] != '=') {
            continue;
        }
        s += n + 1;
        if (*s != '"') {
            for (e = s; *e && *e != ';' && *e != ' '; ++e) {
            }
            return apr_pstrndup(p, s, (apr_size_t)(e - s));
        }
        out = o = apr_palloc(p, strlen(s));
        for (++s; *s && *s != '"'; ++s) {
            if (*s == '\\' && s[1]) {
                ++s;
            }
            *o++ = *s;
        }
        *o = '\0';
        return out;
    }
    return NULL;
}

/* The fields the gateway reads from a form, into ctx->body. */
static void form_field(relay_ctx_t *ctx, const char *name, const char *v, apr_size_t len,
                       apr_size_t off)
{
    struct relay_media_t *m = ctx->media;
    static const char *const wanted[] = {"model", "n", "size", "quality", "prompt", NULL};
    char *s;
    int i;

    for (i = 0; wanted[i] && strcmp(wanted[i], name); ++i) {
    }
    if (wanted[i] == NULL || len > MEDIA_FIELD_MAX) {
        return;
    }
    s = apr_pstrmemdup(ctx->r->pool, v, len);
    if (!strcmp(name, "model")) {
        m->model_off = off;
        m->model_len = len;
        m->model_value = s;
    }
    if (!strcmp(name, "n") && *s && strspn(s, "0123456789") == len && len < 10) {
        json_object_set_new(ctx->body, name, json_integer(apr_atoi64(s)));
    }
    else if (json_object_get(ctx->body, name) == NULL) {
        json_object_set_new(ctx->body, name, json_string(s));
    }
}

/* One part's headers, [@a h, @a h + @a len): its name and filename. */
static int part_head(apr_pool_t *p, const char *h, apr_size_t len, const char **name,
                     const char **filename)
{
    char *head = apr_pstrmemdup(p, h, len), *line, *last = NULL;

    *name = *filename = NULL;
    for (line = apr_strtok(head, "\r\n", &last); line; line = apr_strtok(NULL, "\r\n", &last)) {
        if (!ap_cstr_casecmpn(line, "Content-Disposition:", 20)) {
            *name = disposition_param(p, line + 20, "name");
            *filename = disposition_param(p, line + 20, "filename");
        }
    }
    return *name != NULL;
}

int relay_media_form(relay_ctx_t *ctx)
{
    request_rec *r = ctx->r;
    struct relay_media_t *m = media_of(ctx);
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    const char *boundary = ct ? form_boundary(r->pool, ct) : NULL;
    const char *body = ctx->raw_body, *end = body + ctx->raw_len, *s, *delim;
    apr_size_t dlen;
    int models = 0;

    if (boundary == NULL) {
        return bad_form(ctx, "the Content-Type has no boundary");
    }
    m->content_type = apr_pstrdup(r->pool, ct);
    ctx->body = nebula_json_own(r->pool, json_object());
    /* "\r\n--boundary" ends every part; the first delimiter may open the body */
    delim = apr_pstrcat(r->pool, "\r\n--", boundary, NULL);
    dlen = strlen(delim);
    if (ctx->raw_len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2)) {
        s = body + dlen - 2;
    }
    else if ((s = find_bytes(body, ctx->raw_len, delim, dlen)) != NULL) {
        s += dlen;
    }
    else {
        return bad_form(ctx, "no part starts with the boundary");
    }
    for (;;) {
        const char *hend, *next, *name, *filename;

        if (end - s >= 2 && s[0] == '-' && s[1] == '-') {
            return OK; /* the closing delimiter */
        }
        while (s < end && (*s == ' ' || *s == '\t')) {
            ++s;
        }
        if (end - s < 2 || s[0] != '\r' || s[1] != '\n') {
            return bad_form(ctx, "a boundary line does not end in CRLF");
        }
        s += 2;
        if ((hend = find_bytes(s, (apr_size_t)(end - s), "\r\n\r\n", 4)) == NULL) {
            return bad_form(ctx, "a part's headers do not end");
        }
        if (!part_head(r->pool, s, (apr_size_t)(hend - s), &name, &filename)) {
            return bad_form(ctx, "a part has no Content-Disposition name");
        }
        s = hend + 4;
        if ((next = find_bytes(s, (apr_size_t)(end - s), delim, dlen)) == NULL) {
            return bad_form(ctx, "no closing boundary");
        }
        if (!strcmp(name, "model") && models++) {
            /* the policies would see one, the upstream maybe the other */
            return bad_form(ctx, "the form repeats the model field");
        }
        if (filename != NULL) {
            if (!strcmp(name, "file") && m->file_bytes < 0) {
                m->file_bytes = (apr_int64_t)(next - s);
            }
        }
        else {
            form_field(ctx, name, s, (apr_size_t)(next - s), (apr_size_t)(s - body));
        }
        s = next + dlen;
    }
}

/* ---- what the request will cost ----------------------------------------- */

/* Characters (Unicode code points) of a UTF-8 string. */
static apr_int64_t utf8_chars(const char *s)
{
    apr_int64_t n = 0;

    for (; s && *s; ++s) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static apr_int64_t seconds_of_bytes(apr_int64_t bytes)
{
    return bytes <= 0 ? 1 : (bytes + MEDIA_BYTES_PER_SECOND - 1) / MEDIA_BYTES_PER_SECOND;
}

static apr_int64_t text_tokens(relay_ctx_t *ctx, const char *s)
{
    return s ? relay_tokens_text(ctx->req.model, s, strlen(s)) : 0;
}

/* Rerank: query and documents (strings, or {text}). */
static apr_int64_t rerank_tokens(relay_ctx_t *ctx)
{
    json_t *doc;
    apr_int64_t n = text_tokens(ctx, nebula_json_gets(ctx->body, "query", NULL));
    size_t i;

    json_array_foreach(json_object_get(ctx->body, "documents"), i, doc)
    {
        n += text_tokens(ctx, json_is_string(doc) ? json_string_value(doc)
                                                  : nebula_json_gets(doc, "text", NULL));
    }
    return n;
}

int relay_media_params(relay_ctx_t *ctx)
{
    struct relay_media_t *m;
    json_t *n;

    if (!relay_media_route(ctx->route)) {
        return OK;
    }
    m = media_of(ctx);
    switch (ctx->route->route) {
    case RELAY_ROUTE_RERANK:
        ctx->req.prompt_tokens_estimate = rerank_tokens(ctx);
        break;
    case RELAY_ROUTE_IMAGES_GEN:
    case RELAY_ROUTE_IMAGES_EDIT:
    case RELAY_ROUTE_IMAGES_VAR:
        n = json_object_get(ctx->body, "n");
        if (n != NULL && !json_is_null(n)
            && (!json_is_integer(n) || json_integer_value(n) < 1)) {
            return nebula_ap_error(ctx->r, HTTP_BAD_REQUEST, "invalid_request_error",
                                   "invalid_value", "n",
                                   "'n' must be an integer of at least 1.");
        }
        m->n = json_is_integer(n) ? (apr_int64_t)json_integer_value(n) : 1;
        ctx->req.calls = m->n; /* a per-call price is a price per image */
        ctx->req.prompt_tokens_estimate =
            text_tokens(ctx, nebula_json_gets(ctx->body, "prompt", NULL));
        break;
    case RELAY_ROUTE_SPEECH:
        /* the unit is known before the call: characters of the input */
        ctx->req.prompt_tokens_estimate =
            utf8_chars(nebula_json_gets(ctx->body, "input", NULL));
        ctx->req.max_output_tokens = 0;
        break;
    default: /* transcriptions, translations: seconds of audio */
        if (m->file_bytes < 0) {
            return nebula_ap_error(ctx->r, HTTP_BAD_REQUEST, "invalid_request_error",
                                   "missing_required_parameter", "file",
                                   "Missing required parameter: 'file'.");
        }
        ctx->req.prompt_tokens_estimate = seconds_of_bytes(m->file_bytes);
        break;
    }
    ctx->prompt_counted = 1; /* in the route's own unit */
    return OK;
}

/* ---- the upstream request ------------------------------------------------ */

void relay_media_outbound(relay_ctx_t *ctx, const char *model, relay_outbound_t *out)
{
    request_rec *r = ctx->r;
    struct relay_media_t *m = ctx->media;
    const char *accept = apr_table_get(r->headers_in, "Accept");
    char *b;

    if (!relay_media_route(ctx->route) || m == NULL) {
        return;
    }
    if (ctx->route->route == RELAY_ROUTE_SPEECH || relay_media_form_route(ctx->route)) {
        /* binary audio, or text / srt / vtt transcripts */
        apr_table_setn(out->headers, "Accept", accept ? accept : "*/*");
    }
    if (!relay_media_form_route(ctx->route)) {
        return;
    }
    apr_table_setn(out->headers, "Content-Type", m->content_type);
    out->body = ctx->raw_body;
    out->len = ctx->raw_len;
    if (model == NULL || m->model_value == NULL || !strcmp(model, m->model_value)) {
        return; /* byte for byte */
    }
    /* another model upstream: the one copy, around the model's value */
    out->len = ctx->raw_len - m->model_len + strlen(model);
    b = apr_palloc(r->pool, out->len + 1);
    memcpy(b, ctx->raw_body, m->model_off);
    memcpy(b + m->model_off, model, strlen(model));
    memcpy(b + m->model_off + strlen(model), ctx->raw_body + m->model_off + m->model_len,
           ctx->raw_len - m->model_off - m->model_len);
    b[out->len] = '\0';
    out->body = b;
}

/* ---- usage of a complete answer ----------------------------------------- */

static void usage_set(relay_ctx_t *ctx, apr_int64_t prompt, apr_int64_t completion,
                      int estimated)
{
    memset(&ctx->usage, 0, sizeof(ctx->usage));
    ctx->usage.prompt_tokens = prompt;
    ctx->usage.completion_tokens = completion;
    ctx->usage.total_tokens = prompt + completion;
    ctx->usage.estimated = estimated;
}

/* A count in @a j at @a name: a non-negative integer (or a whole real);
 * -1 when absent or not a count. */
static apr_int64_t count_of(const json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        return (apr_int64_t)json_integer_value(v);
    }
    return -1;
}

/* Seconds (a number) rounded up; -1 when absent or negative. */
static apr_int64_t seconds_of(const json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);

    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e9) {
        return -1;
    }
    {
        double d = json_number_value(v);
        apr_int64_t whole = (apr_int64_t)d;
        return (double)whole < d ? whole + 1 : whole;
    }
}

/* {input_tokens, output_tokens} (gpt-image-1, gpt-4o-transcribe) */
static int token_usage(relay_ctx_t *ctx, const json_t *u)
{
    apr_int64_t in = count_of(u, "input_tokens"), out = count_of(u, "output_tokens");

    if (in < 0 || out < 0) {
        return 0;
    }
    usage_set(ctx, in, out, 0);
    return 1;
}

static void rerank_usage(relay_ctx_t *ctx, const json_t *j)
{
    json_t *u = json_object_get(j, "usage");
    apr_int64_t total = count_of(u, "total_tokens"), units;

    /* Jina / Cohere v1 compatible: total_tokens are all prompt tokens */
    if (total < 0) {
        total = count_of(u, "prompt_tokens");
    }
    if (total >= 0) {
        usage_set(ctx, total, 0, 0);
    }
    else {
        usage_set(ctx, ctx->req.prompt_tokens_estimate, 0, 1);
    }
    /* Cohere bills search units: one per query of up to 100 documents */
    units = nebula_json_geti(j, -1, "meta", "billed_units", "search_units", NULL);
    if (units >= 1 && units <= 1000) {
        ctx->req.calls = units;
    }
}

static void images_usage(relay_ctx_t *ctx, const json_t *j)
{
    apr_int64_t made = (apr_int64_t)json_array_size(json_object_get(j, "data"));

    if (!token_usage(ctx, json_object_get(j, "usage"))) {
        usage_set(ctx, ctx->req.prompt_tokens_estimate, 0, 1);
    }
    /* per image made, never more than were asked (and held) */
    if (made >= 1 && made < ctx->req.calls) {
        ctx->req.calls = made;
    }
}

static void audio_usage(relay_ctx_t *ctx, const json_t *j)
{
    const json_t *u = json_object_get(j, "usage");
    const char *type = nebula_json_gets(u, "type", NULL);
    apr_int64_t secs;

    if (type && !strcmp(type, "tokens") && token_usage(ctx, u)) {
        return;
    }
    if ((secs = seconds_of(u, "seconds")) < 0) {
        secs = seconds_of(j, "duration"); /* verbose_json */
    }
    if (secs >= 0) {
        usage_set(ctx, secs, 0, 0);
        return;
    }
    usage_set(ctx, seconds_of_bytes(ctx->media ? ctx->media->file_bytes : 0), 0, 1);
}

static void media_usage(relay_ctx_t *ctx, const json_t *j)
{
    switch (ctx->route->route) {
    case RELAY_ROUTE_RERANK:
        rerank_usage(ctx, j);
        break;
    case RELAY_ROUTE_IMAGES_GEN:
    case RELAY_ROUTE_IMAGES_EDIT:
    case RELAY_ROUTE_IMAGES_VAR:
        images_usage(ctx, j);
        break;
    default:
        audio_usage(ctx, j);
        break;
    }
}

/* ---- the answers ----------------------------------------------------------- */

/* Speech: relay the audio as it arrives; the charge (characters of the
 * input) is known, so it is settled before the last bytes leave. */
static int speech_relay(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                        apr_table_t *headers)
{
    request_rec *r = ctx->r;
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    const char *ct = apr_table_get(headers, "Content-Type");
    apr_read_type_e mode = APR_NONBLOCK_READ;
    apr_status_t rv;

    usage_set(ctx, ctx->req.prompt_tokens_estimate, 0, 0);
    r->status = ctx->status = status;
    ap_set_content_type(r, apr_pstrdup(r->pool, ct ? ct : "application/octet-stream"));
    relay_overhead_header(r);
    for (;;) {
        apr_off_t got = 0;

        rv = relay_upstream_read_body(up, bb, mode);
        if (rv == APR_EAGAIN) { /* the upstream pauses: what we have goes out now */
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
            if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS || c->aborted) {
                break;
            }
            apr_brigade_cleanup(bb);
            mode = APR_BLOCK_READ;
            continue;
        }
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                          "NEB01100: the upstream broke off the audio");
            relay_upstream_close(up, 1);
            apr_brigade_cleanup(bb);
            ctx->end_reason = "upstream_error";
            ctx->error = "the upstream broke off its answer";
            ctx->status = HTTP_BAD_GATEWAY;
            /* an unfinished response (no last chunk), as mod_proxy_http does */
            ap_proxy_backend_broke(r, bb);
            ap_pass_brigade(r->output_filters, bb);
            return DONE;
        }
        apr_brigade_length(bb, 1, &got);
        if (got > 0 && ctx->first_byte == 0) {
            ctx->first_byte = apr_time_now();
        }
        if (rv == APR_EOF) {
            relay_upstream_close(up, 0);
            ctx->end_reason = "complete";
            relay_log_settle(ctx); /* complete: charge it before the last bytes */
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
            ap_pass_brigade(r->output_filters, bb);
            return OK;
        }
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
        if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS || c->aborted) {
            break;
        }
        apr_brigade_cleanup(bb);
        mode = APR_NONBLOCK_READ;
    }
    /* the client left: the input was spoken, the charge stands */
    relay_upstream_close(up, 1);
    apr_brigade_cleanup(bb);
    ctx->end_reason = "client_gone";
    return DONE;
}

int relay_media_respond(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                        apr_table_t *headers)
{
    request_rec *r = ctx->r;
    const char *ct = apr_table_get(headers, "Content-Type");
    char *buf = NULL;
    apr_size_t len = 0;
    json_t *j = NULL;
    int rc;

    if (ctx->route->route == RELAY_ROUTE_SPEECH) {
        return speech_relay(ctx, up, status, headers);
    }
    ct = ct ? apr_pstrdup(r->pool, ct) : "application/json";
    if ((rc = relay_read_answer(ctx, up, MEDIA_BODY_MAX, &buf, &len)) != OK) {
        return rc;
    }
    /* json and verbose_json carry usage; text, srt and vtt do not */
    if (ap_strcasestr(ct, "json")) {
        j = nebula_json_parse(r->pool, buf, len, NEBULA_JSON_CONTAINER_ONLY, NULL);
    }
    media_usage(ctx, json_is_object(j) ? j : NULL);
    return relay_send_complete(ctx, status, ct, buf, len);
}

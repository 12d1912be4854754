/*
 * mod_nebula_mock.c - the mock upstream LLM provider of NebulaGate's tests.
 *
 * The only simulated part of the test system: the gateway under test calls
 * it exactly as it would call OpenAI, Anthropic and Gemini, so every body
 * and event below follows the providers' own API references (field names
 * and event order as in the official SDKs' type definitions). It owns: the
 * routes, the controls, the fault injection, the request record file and
 * the cross-process state (sequence numbers, fail_first counters) in shared
 * memory behind one global mutex.
 *
 * ROUTES (anything else: 404, wrong method: 405, both in the protocol's
 * error shape)
 *   OpenAI     POST /v1/chat/completions, POST /v1/completions,
 *              POST /v1/embeddings, POST /v1/moderations, GET /v1/models,
 *              GET /v1/models/{id},
 *              POST /v1/responses
 *   Anthropic  POST /v1/messages (and GET /v1/models with anthropic-version)
 *   Gemini     POST /v1beta/models/{model}:generateContent
 *              POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]
 *              (without alt=sse: one streamed JSON array, as Google does)
 *   Webhooks   POST /hooks/<anything>: 200 {"received":true}, no auth, the
 *              body taken as it is ([[mock ...]] markers in it apply); for
 *              the gateway's outbound notifications (NebulaNotifyWebhook)
 *   Any of them may follow a control prefix: /_mock/<controls>/v1/...
 *   Admin: GET /_mock/health, GET /_mock/records?last=N&tag=X,
 *          DELETE /_mock/records, DELETE /_mock/counters
 *
 * USAGE FORMULA (exact, so tests can compute it)
 *   P = prompt tokens = number of whitespace-separated words (runs of bytes
 *       other than space, \t, \n, \r, \f, \v) in the input text, after every
 *       [[mock ...]] marker has been cut out. Input text is:
 *         chat:        messages[].content (string, or parts[].text)
 *         completions: prompt (string or strings; a token id counts 1)
 *         embeddings:  input  (string or strings; a token id counts 1)
 *         responses:   instructions + input (string, or items' content
 *                      string or content parts' text)
 *         anthropic:   system (string or blocks' text) + messages[].content
 *         gemini:      systemInstruction.parts[].text + contents[].parts[].text
 *   N = completion tokens = number of content events = `events` (default 5),
 *       capped by max_completion_tokens / max_tokens / max_output_tokens /
 *       generationConfig.maxOutputTokens; when capped the finish reason is
 *       "length" / "max_tokens" / "MAX_TOKENS" / status "incomplete" (the
 *       Responses stream then ends with response.incomplete, as OpenAI's).
 *   Event k (1..N) carries the text "tok<k> ", so the full text is
 *   "tok1 tok2 ... tokN " (N words). total = P + N. Embeddings: usage is
 *   {prompt_tokens: P, total_tokens: P}. The response's model echoes the
 *   request's model. Anthropic's message_start carries output_tokens 1 (0
 *   when N is 0), as the real API does; message_delta carries the final,
 *   cumulative counts.
 *
 * CONTROLS  "k=v,k=v", from (lowest priority first) NebulaMockDefaults, the
 *   URL control prefix, the X-Mock-Control header, [[mock k=v,...]] markers
 *   in the input text (later ones win). Values are URL-decoded ('+' is a
 *   space, %2C a comma). An unknown key or bad value is a 400.
 *   events=N            content events (completion tokens), default 5
 *   delay_ms=D          sleep between stream events (not before the first)
 *   header_delay_ms=D   sleep before anything is sent
 *   status=S            answer S (300..599) in the protocol's error shape
 *                       (2xx: the normal answer);
 *                       429 adds Retry-After (retry_after=S, default 1)
 *   error_message=TEXT  message of that error
 *   fail_first=N        only the first N requests with this tag fail with
 *                       `status` (default 503); later ones succeed
 *   drop_after=K        stream: cut the connection after K content events
 *                       (chunked body never terminated)
 *   malformed_after=K   stream: after K content events send one data line
 *                       that is not JSON, then go on
 *   no_usage=1          omit usage everywhere
 *   cached=C            OpenAI usage: prompt_tokens_details.cached_tokens = C
 *                       (prompt_tokens stays P, which OpenAI says includes it)
 *   negative_usage=1    OpenAI usage: completion_tokens = -N (a broken or
 *                       hostile upstream; billing must refuse it)
 *   tag=X               [A-Za-z0-9_.:-]{1,63}; echoed as X-Mock-Tag,
 *                       X-Mock-Served-By, and in the record
 *
 * AUTH  OpenAI "Authorization: Bearer K" (Azure, under /openai/deployments/:
 *       api-key: K and ?api-version= required); Anthropic x-api-key and
 *   anthropic-version (the key may also come as a Bearer token, as newer
 *   Anthropic SDKs send it); Gemini x-goog-api-key or ?key=. Missing key: 401.
 *   K starting with "bad": 401 (Gemini itself answers 400 API_KEY_INVALID;
 *   we answer 401 UNAUTHENTICATED with the same ErrorInfo reason).
 *   K = "quota-exceeded": 429 insufficient_quota.
 *
 * DIRECTIVES (server config)
 *   NebulaMockRecordFile PATH|off   where records go (default: off)
 *   NebulaMockDefaults "k=v,..."    lowest-priority controls
 *   NebulaMockModels ID...          what GET /v1/models lists
 *   NebulaMockMaxBody BYTES         larger bodies get a 413 (default 8 MiB)
 *
 * RECORDS  one JSON line per API request in NebulaMockRecordFile: seq
 *   (monotonic across processes), time_ms (arrival), method, path (with
 *   query), headers (names lower-cased), body (string), tag, model, route,
 *   stream, status (what the mock answered), prompt_tokens,
 *   completion_tokens.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "util_mutex.h"
#include "util_script.h"
#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_base64.h"
#include "apr_shm.h"
#include "apr_global_mutex.h"
#include "apr_file_io.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

module AP_MODULE_DECLARE_DATA nebula_mock_module;
APLOG_USE_MODULE(nebula_mock);

#define MOCK_HANDLER         "nebula-mock"
#define MOCK_MUTEX_TYPE      "nebula-mock"
#define MOCK_SHM_KEY         "nebula_mock_shm"
#define MOCK_FINGERPRINT     "fp_nebula_mock"
#define MOCK_DEFAULT_EVENTS  5
#define MOCK_DEFAULT_DIMS    8
#define MOCK_MAX_DIMS        4096
#define MOCK_MAX_EVENTS      100000
#define MOCK_MAX_DELAY_MS    600000
#define MOCK_DEFAULT_MAXBODY (8 * 1024 * 1024)
#define MOCK_TAGS_MAX        1024
#define MOCK_TAG_LEN         64
#define MOCK_UNSET           (-1)

#define MOCK_QUOTA_MSG                                                                   \
    "You exceeded your current quota, please check your plan and billing "               \
    "details. For more information on this error, read the docs: "                       \
    "https://platform.openai.com/docs/guides/error-codes/api-errors."

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

typedef struct {
    const char *record_file; /* NULL: unset; "" : recording off */
    const char *defaults;    /* control string, lowest priority */
    apr_array_header_t *models;
    apr_off_t max_body; /* MOCK_UNSET: unset */
} mock_srv_conf_t;

/* Controls; ints are MOCK_UNSET and strings NULL until a source sets them. */
typedef struct {
    int events;
    int delay_ms;
    int header_delay_ms;
    int status;
    int drop_after;
    int malformed_after;
    int no_usage;
    int cached;
    int negative_usage;
    int fail_first;
    int retry_after;
    const char *error_message;
    const char *tag;
} mock_ctl_t;

/* Cross-process state, in anonymous shared memory behind mock_mutex. */
typedef struct {
    char tag[MOCK_TAG_LEN];
    apr_uint32_t count;
} mock_tag_slot_t;

typedef struct {
    apr_uint64_t seq;
    apr_uint32_t ntags;
    mock_tag_slot_t tags[MOCK_TAGS_MAX];
} mock_shared_t;

/* Set in post_config (before fork) and child_init; read-only afterwards. */
static apr_global_mutex_t *mock_mutex;
static mock_shared_t *mock_shared;

typedef enum { MOCK_P_OPENAI, MOCK_P_ANTHROPIC, MOCK_P_GEMINI } mock_proto_e;

typedef enum {
    MOCK_R_NONE = 0,
    MOCK_R_CHAT,
    MOCK_R_COMPLETIONS,
    MOCK_R_EMBEDDINGS,
    MOCK_R_MODERATIONS,
    MOCK_R_MODELS,
    MOCK_R_MODEL,
    MOCK_R_RESPONSES,
    MOCK_R_MESSAGES,
    MOCK_R_GEMINI,
    MOCK_R_HOOK
} mock_route_e;

static const char *const mock_route_names[] = {
    "none",           "openai.chat",  "openai.completions", "openai.embeddings",
    "openai.moderations", "openai.models",  "openai.model", "openai.responses",   "anthropic.messages",
    "gemini.generate", "hook"};

/* An error answer; NULL fields take the defaults of mock_status_row(). */
typedef struct {
    int status;
    const char *message;
    const char *type;   /* OpenAI type / Anthropic type / Gemini status */
    const char *code;   /* OpenAI code */
    const char *reason; /* Gemini ErrorInfo reason */
    int code_null;      /* OpenAI code is explicitly null */
} mock_err_t;

/* Everything one request needs; lives in r->pool. */
typedef struct {
    request_rec *r;
    mock_srv_conf_t *conf;
    mock_proto_e proto;
    mock_route_e route;
    const char *method;  /* the method the route accepts */
    const char *path;    /* route path, after any control prefix */
    const char *ctl_url; /* raw control segment of the URL, or NULL */
    const char *gmodel;  /* Gemini model from the path; /v1/models/{id} */
    int gemini_stream;   /* :streamGenerateContent */
    int gemini_sse;      /* ... with alt=sse */
    int azure;           /* /openai/deployments/{d}/...?api-version=: Azure OpenAI */
    char *body;
    apr_size_t body_len;
    int body_too_large;
    json_t *req; /* parsed body, released by a pool cleanup */
    const char *json_error;
    const char *ctl_error;
    const char *model;
    mock_ctl_t ctl;
    int stream;
    int include_usage;
    int usage; /* !no_usage */
    long prompt_tokens;
    int n;         /* completion tokens = content events */
    int truncated; /* n was capped by the request's max tokens */
    const char *id;
    const char *request_id; /* x-request-id / request-id, also in errors */
    json_int_t created;
    apr_uint64_t seq;
    apr_table_t *args; /* query arguments, parsed on first use */
    apr_bucket_brigade *bb;
    int sent;  /* stream events flushed so far */
    int seqno; /* Responses API sequence_number */
    int aborted;
} mock_req_t;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static apr_status_t mock_json_release(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

static const char *mock_rand_id(apr_pool_t *p, const char *prefix, int len)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[48];
    apr_size_t plen = strlen(prefix);
    char *out;
    int i;

    if (len > (int)sizeof(raw)) {
        len = (int)sizeof(raw);
    }
    ap_random_insecure_bytes(raw, (apr_size_t)len);
    out = apr_palloc(p, plen + (apr_size_t)len + 1);
    memcpy(out, prefix, plen);
    for (i = 0; i < len; i++) {
        out[plen + (apr_size_t)i] = alnum[raw[i] % (sizeof(alnum) - 1)];
    }
    out[plen + (apr_size_t)len] = '\0';
    return out;
}

static int mock_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static long mock_count_words(const char *s)
{
    long words = 0;
    int in_word = 0;

    for (; *s; s++) {
        if (mock_is_space(*s)) {
            in_word = 0;
        }
        else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    return words;
}

static void mock_token_text(char *buf, apr_size_t size, int k)
{
    apr_snprintf(buf, size, "tok%d ", k);
}

static char *mock_full_text(apr_pool_t *p, int n)
{
    apr_size_t size = (apr_size_t)n * 12 + 1;
    char *out = apr_palloc(p, size), *at = out;
    int k;

    *out = '\0';
    for (k = 1; k <= n; k++) {
        mock_token_text(at, size - (apr_size_t)(at - out), k);
        at += strlen(at);
    }
    return out;
}

static const char *mock_query_arg(mock_req_t *m, const char *name)
{
    if (!m->args) {
        ap_args_to_table(m->r, &m->args);
    }
    return apr_table_get(m->args, name);
}

static const char *mock_header(const mock_req_t *m, const char *name)
{
    return apr_table_get(m->r->headers_in, name);
}

/* ------------------------------------------------------------------------ */
/* Controls                                                                  */

static void mock_ctl_init(mock_ctl_t *c)
{
    c->events = c->delay_ms = c->header_delay_ms = c->status = MOCK_UNSET;
    c->drop_after = c->malformed_after = c->no_usage = MOCK_UNSET;
    c->cached = c->negative_usage = MOCK_UNSET;
    c->fail_first = c->retry_after = MOCK_UNSET;
    c->error_message = c->tag = NULL;
}

#define MOCK_OVERLAY(dst, src, f)                                                        \
    do {                                                                                 \
        if ((src)->f != MOCK_UNSET)                                                      \
            (dst)->f = (src)->f;                                                         \
    } while (0)

static void mock_ctl_overlay(mock_ctl_t *dst, const mock_ctl_t *src)
{
    MOCK_OVERLAY(dst, src, events);
    MOCK_OVERLAY(dst, src, delay_ms);
    MOCK_OVERLAY(dst, src, header_delay_ms);
    MOCK_OVERLAY(dst, src, status);
    MOCK_OVERLAY(dst, src, drop_after);
    MOCK_OVERLAY(dst, src, malformed_after);
    MOCK_OVERLAY(dst, src, no_usage);
    MOCK_OVERLAY(dst, src, cached);
    MOCK_OVERLAY(dst, src, negative_usage);
    MOCK_OVERLAY(dst, src, fail_first);
    MOCK_OVERLAY(dst, src, retry_after);
    if (src->error_message) {
        dst->error_message = src->error_message;
    }
    if (src->tag) {
        dst->tag = src->tag;
    }
}

static int mock_parse_int(const char *v, int min, int max, int *out)
{
    char *end;
    apr_int64_t n;

    if (!*v) {
        return 0;
    }
    n = apr_strtoi64(v, &end, 10);
    if (*end || n < min || n > max) {
        return 0;
    }
    *out = (int)n;
    return 1;
}

static int mock_valid_tag(const char *t)
{
    apr_size_t len = strlen(t), i;

    if (len == 0 || len >= MOCK_TAG_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isalnum(t[i]) && !strchr("_.:-", t[i])) {
            return 0;
        }
    }
    return 1;
}

/* Sets one control; returns an error message or NULL. */
static const char *mock_ctl_set(apr_pool_t *p, mock_ctl_t *c, const char *k,
                                const char *v)
{
    static const struct {
        const char *name;
        apr_size_t offset;
        int min, max;
    } ints[] = {
        {"events", APR_OFFSETOF(mock_ctl_t, events), 0, MOCK_MAX_EVENTS},
        {"delay_ms", APR_OFFSETOF(mock_ctl_t, delay_ms), 0, MOCK_MAX_DELAY_MS},
        {"header_delay_ms", APR_OFFSETOF(mock_ctl_t, header_delay_ms), 0,
         MOCK_MAX_DELAY_MS},
        {"status", APR_OFFSETOF(mock_ctl_t, status), 200, 599},
        {"drop_after", APR_OFFSETOF(mock_ctl_t, drop_after), 0, MOCK_MAX_EVENTS},
        {"malformed_after", APR_OFFSETOF(mock_ctl_t, malformed_after), 0,
         MOCK_MAX_EVENTS},
        {"no_usage", APR_OFFSETOF(mock_ctl_t, no_usage), 0, 1},
        {"cached", APR_OFFSETOF(mock_ctl_t, cached), 0, 10000000},
        {"negative_usage", APR_OFFSETOF(mock_ctl_t, negative_usage), 0, 1},
        {"fail_first", APR_OFFSETOF(mock_ctl_t, fail_first), 0, 1000000},
        {"retry_after", APR_OFFSETOF(mock_ctl_t, retry_after), 0, 86400},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (!strcmp(k, ints[i].name)) {
            int *field = (int *)((char *)c + ints[i].offset);
            if (!mock_parse_int(v, ints[i].min, ints[i].max, field)) {
                return apr_psprintf(p, "bad value for control %s: '%s'", k, v);
            }
            return NULL;
        }
    }
    if (!strcmp(k, "error_message")) {
        c->error_message = v;
        return NULL;
    }
    if (!strcmp(k, "tag")) {
        if (!mock_valid_tag(v)) {
            return apr_psprintf(p, "bad tag '%s' (want [A-Za-z0-9_.:-]{1,63})", v);
        }
        c->tag = v;
        return NULL;
    }
    return apr_psprintf(p, "unknown control '%s'", k);
}

/* Cuts leading and trailing whitespace in place. */
static char *mock_trim(char *s)
{
    char *end;

    while (mock_is_space(*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && mock_is_space(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* Parses "k=v,k=v" into *c (fields not named stay as they were). */
static const char *mock_ctl_parse(apr_pool_t *p, const char *spec, mock_ctl_t *c)
{
    char *copy = apr_pstrdup(p, spec), *state, *item;

    for (item = apr_strtok(copy, ",", &state); item;
         item = apr_strtok(NULL, ",", &state)) {
        char *eq, *k, *v;
        const char *err;

        k = mock_trim(item);
        if (!*k) {
            continue;
        }
        eq = strchr(k, '=');
        if (!eq) {
            return apr_psprintf(p, "control '%s' has no '='", k);
        }
        *eq = '\0';
        k = mock_trim(k);
        v = mock_trim(eq + 1);
        if (ap_unescape_urlencoded(v) != OK) {
            return apr_psprintf(p, "bad escape in control %s", k);
        }
        err = mock_ctl_set(p, c, k, v);
        if (err) {
            return err;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Input text: collection, [[mock ...]] markers, word counts                  */

typedef struct {
    mock_req_t *m;
    mock_ctl_t marker; /* controls found in markers */
    long words;
} mock_text_acc_t;

/* Cuts every [[mock ...]] marker out of text, applying its controls. */
static char *mock_markers_strip(mock_text_acc_t *acc, const char *text)
{
    apr_pool_t *p = acc->m->r->pool;
    char *out = apr_pstrdup(p, text), *start;

    while ((start = strstr(out, "[[mock")) != NULL) {
        char *end = strstr(start, "]]");
        char *spec;
        const char *err;

        if (!end) {
            break;
        }
        spec = apr_pstrmemdup(p, start + 6, (apr_size_t)(end - start - 6));
        err = mock_ctl_parse(p, spec, &acc->marker);
        if (err && !acc->m->ctl_error) {
            acc->m->ctl_error = err;
        }
        memmove(start, end + 2, strlen(end + 2) + 1);
    }
    return out;
}

static void mock_text_add(mock_text_acc_t *acc, const char *text)
{
    if (text) {
        acc->words += mock_count_words(mock_markers_strip(acc, text));
    }
}

/* A string, or an array of parts with "text" (or strings). */
static void mock_text_add_content(mock_text_acc_t *acc, json_t *content)
{
    size_t i;
    json_t *part;

    if (json_is_string(content)) {
        mock_text_add(acc, json_string_value(content));
        return;
    }
    json_array_foreach(content, i, part)
    {
        if (json_is_string(part)) {
            mock_text_add(acc, json_string_value(part));
        }
        else {
            mock_text_add(acc, json_string_value(json_object_get(part, "text")));
        }
    }
}

/* OpenAI prompt / input: a string, strings, token ids, or arrays of ids. */
static void mock_text_add_prompt(mock_text_acc_t *acc, json_t *v)
{
    size_t i;
    json_t *el;

    if (json_is_string(v)) {
        mock_text_add(acc, json_string_value(v));
        return;
    }
    json_array_foreach(v, i, el)
    {
        if (json_is_integer(el)) {
            acc->words++;
        }
        else if (json_is_array(el)) {
            acc->words += (long)json_array_size(el);
        }
        else {
            mock_text_add(acc, json_string_value(el));
        }
    }
}

static void mock_text_add_messages(mock_text_acc_t *acc, json_t *messages)
{
    size_t i;
    json_t *msg;

    json_array_foreach(messages, i, msg)
    {
        mock_text_add_content(acc, json_object_get(msg, "content"));
    }
}

static void mock_text_add_gemini(mock_text_acc_t *acc, json_t *req)
{
    json_t *sys = json_object_get(req, "systemInstruction");
    json_t *content;
    size_t i;

    if (!sys) {
        sys = json_object_get(req, "system_instruction");
    }
    mock_text_add_content(acc, json_object_get(sys, "parts"));
    json_array_foreach(json_object_get(req, "contents"), i, content)
    {
        mock_text_add_content(acc, json_object_get(content, "parts"));
    }
}

static void mock_text_add_responses(mock_text_acc_t *acc, json_t *req)
{
    json_t *input = json_object_get(req, "input"), *item;
    size_t i;

    mock_text_add(acc, json_string_value(json_object_get(req, "instructions")));
    if (json_is_string(input)) {
        mock_text_add(acc, json_string_value(input));
        return;
    }
    json_array_foreach(input, i, item)
    {
        mock_text_add_content(acc, json_object_get(item, "content"));
    }
}

/* Counts the prompt words of the parsed request and collects its markers. */
static void mock_text_scan(mock_req_t *m, mock_ctl_t *marker)
{
    mock_text_acc_t acc;
    json_t *req = m->req;

    acc.m = m;
    acc.words = 0;
    mock_ctl_init(&acc.marker);
    switch (m->route) {
    case MOCK_R_CHAT:
        mock_text_add_messages(&acc, json_object_get(req, "messages"));
        break;
    case MOCK_R_COMPLETIONS:
        mock_text_add_prompt(&acc, json_object_get(req, "prompt"));
        break;
    case MOCK_R_EMBEDDINGS:
    case MOCK_R_MODERATIONS:
        mock_text_add_prompt(&acc, json_object_get(req, "input"));
        break;
    case MOCK_R_RESPONSES:
        mock_text_add_responses(&acc, req);
        break;
    case MOCK_R_MESSAGES:
        mock_text_add_content(&acc, json_object_get(req, "system"));
        mock_text_add_messages(&acc, json_object_get(req, "messages"));
        break;
    case MOCK_R_GEMINI:
        mock_text_add_gemini(&acc, req);
        break;
    default:
        break;
    }
    m->prompt_tokens = acc.words;
    *marker = acc.marker;
}

/* ------------------------------------------------------------------------ */
/* Shared state: sequence numbers, fail_first counters, the record file      */

static int mock_lock(request_rec *r)
{
    apr_status_t rv = apr_global_mutex_lock(mock_mutex);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "NEB09001: cannot take mock mutex");
        return 0;
    }
    return 1;
}

static void mock_unlock(void)
{
    apr_global_mutex_unlock(mock_mutex);
}

/* Counts one more request for tag; true while the count is <= limit. */
static int mock_fail_first_hit(request_rec *r, const char *tag, int limit)
{
    apr_uint32_t i;
    mock_tag_slot_t *slot = NULL;
    int fail;

    if (!mock_lock(r)) {
        return 0;
    }
    for (i = 0; i < mock_shared->ntags; i++) {
        if (!strcmp(mock_shared->tags[i].tag, tag)) {
            slot = &mock_shared->tags[i];
            break;
        }
    }
    if (!slot && mock_shared->ntags < MOCK_TAGS_MAX) {
        slot = &mock_shared->tags[mock_shared->ntags++];
        apr_cpystrn(slot->tag, tag, sizeof(slot->tag));
        slot->count = 0;
    }
    fail = slot ? (++slot->count <= (apr_uint32_t)limit) : 0;
    mock_unlock();
    if (!slot) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB09002: fail_first table full (%d tags); "
                      "DELETE /_mock/counters resets it",
                      MOCK_TAGS_MAX);
    }
    return fail;
}

static void mock_record_write(request_rec *r, const char *file, const char *line)
{
    apr_file_t *f;
    apr_size_t len = strlen(line);
    apr_status_t rv;

    rv = apr_file_open(&f, file, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_APPEND,
                       APR_FPROT_OS_DEFAULT, r->pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, line, len, NULL);
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "NEB09003: cannot append to NebulaMockRecordFile %s", file);
    }
}

typedef struct {
    apr_pool_t *p;
    json_t *obj;
} mock_hdr_acc_t;

static int mock_header_add(void *rec, const char *key, const char *value)
{
    mock_hdr_acc_t *acc = rec;
    char *name = apr_pstrdup(acc->p, key);
    const char *prev;

    ap_str_tolower(name);
    prev = json_string_value(json_object_get(acc->obj, name));
    if (prev) {
        value = apr_pstrcat(acc->p, prev, ", ", value, NULL);
    }
    json_object_set_new(acc->obj, name, json_string(value));
    return 1;
}

/* A JSON string of possibly invalid UTF-8: bad bytes become '?'. */
static json_t *mock_json_bytes(apr_pool_t *p, const char *s, apr_size_t len)
{
    json_t *j = json_stringn(s, len);
    char *copy;
    apr_size_t i;

    if (j) {
        return j;
    }
    copy = apr_pstrmemdup(p, s, len);
    for (i = 0; i < len; i++) {
        if ((unsigned char)copy[i] >= 0x80 || copy[i] == '\0') {
            copy[i] = '?';
        }
    }
    return json_stringn(copy, len);
}

static json_t *mock_record_build(mock_req_t *m, int status)
{
    request_rec *r = m->r;
    mock_hdr_acc_t acc;
    json_t *rec;

    acc.p = r->pool;
    acc.obj = json_object();
    apr_table_do(mock_header_add, &acc, r->headers_in, NULL);
    rec = json_pack(
        "{s:I, s:s, s:s, s:o, s:o?, s:s?, s:s?, s:s, s:b, s:i, s:I, s:i}", "time_ms",
        (json_int_t)apr_time_as_msec(r->request_time), "method", r->method, "path",
        r->unparsed_uri, "headers", acc.obj, "body",
        m->body_too_large ? NULL : mock_json_bytes(r->pool, m->body, m->body_len), "tag",
        m->ctl.tag, "model", m->model, "route", mock_route_names[m->route], "stream",
        m->stream, "status", status, "prompt_tokens", (json_int_t)m->prompt_tokens,
        "completion_tokens", status == HTTP_OK ? m->n : 0);
    return rec;
}

/* Takes the next sequence number and appends the request's record line. */
static void mock_record(mock_req_t *m, int status)
{
    request_rec *r = m->r;
    const char *file = m->conf->record_file;
    json_t *rec = mock_record_build(m, status);
    char *dumped = rec ? json_dumps(rec, JSON_COMPACT) : NULL;

    json_decref(rec);
    if (mock_lock(r)) {
        m->seq = ++mock_shared->seq;
        if (dumped && file && *file) {
            mock_record_write(r, file,
                              apr_psprintf(r->pool, "{\"seq\":%" APR_UINT64_T_FMT ",%s\n",
                                           m->seq, dumped + 1));
        }
        mock_unlock();
    }
    free(dumped);
    apr_table_setn(r->err_headers_out, "X-Mock-Seq",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, m->seq));
}

/* ------------------------------------------------------------------------ */
/* Sending: plain JSON, errors                                               */

static void mock_set_status(request_rec *r, int status)
{
    r->status = status;
    if (status == 529) {
        r->status_line = "529 Overloaded";
    }
    else {
        r->status_line = ap_get_status_line_ex(r->pool, status);
    }
}

/* Sends obj (stolen) as the whole response. */
static int mock_send_json(mock_req_t *m, int status, json_t *obj)
{
    request_rec *r = m->r;
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    apr_size_t len;

    json_decref(obj);
    if (!s) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "NEB09004: cannot serialize reply");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    len = strlen(s);
    mock_set_status(r, status);
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(s, (int)len, r);
    }
    free(s);
    return OK;
}

typedef struct {
    int status;
    const char *message;
    const char *openai_type;
    const char *openai_code;
    const char *anthropic_type;
    const char *gemini_status;
} mock_status_row_t;

static mock_status_row_t mock_status_row(int status)
{
    static const mock_status_row_t rows[] = {
        {400, "Invalid request.", "invalid_request_error", NULL, "invalid_request_error",
         "INVALID_ARGUMENT"},
        {401, "Invalid authentication.", "invalid_request_error", "invalid_api_key",
         "authentication_error", "UNAUTHENTICATED"},
        {403, "You are not allowed to access this resource.", "invalid_request_error",
         "permission_denied", "permission_error", "PERMISSION_DENIED"},
        {404, "The requested resource was not found.", "invalid_request_error", NULL,
         "not_found_error", "NOT_FOUND"},
        {405, "Method not allowed.", "invalid_request_error", NULL,
         "invalid_request_error", "UNIMPLEMENTED"},
        {408, "Request timed out.", "timeout", NULL, "timeout_error",
         "DEADLINE_EXCEEDED"},
        {413, "Request exceeds the maximum allowed number of bytes.",
         "invalid_request_error", "request_too_large", "request_too_large",
         "INVALID_ARGUMENT"},
        {429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded",
         "rate_limit_error", "RESOURCE_EXHAUSTED"},
        {500, "The server had an error while processing your request. Sorry about that!",
         "server_error", NULL, "api_error", "INTERNAL"},
        {502, "Bad gateway.", "server_error", NULL, "api_error", "UNAVAILABLE"},
        {503, "The server is overloaded or not ready yet.", "server_error", NULL,
         "api_error", "UNAVAILABLE"},
        {504, "The request timed out.", "server_error", NULL, "timeout_error",
         "DEADLINE_EXCEEDED"},
        {529, "Overloaded", "server_error", NULL, "overloaded_error", "UNAVAILABLE"},
    };
    mock_status_row_t fallback = {
        status, "Mock error.",           "invalid_request_error",
        NULL,   "invalid_request_error", "FAILED_PRECONDITION"};
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].status == status) {
            return rows[i];
        }
    }
    if (status >= 500) {
        fallback.openai_type = "server_error";
        fallback.anthropic_type = "api_error";
        fallback.gemini_status = "INTERNAL";
    }
    return fallback;
}

static json_t *mock_error_gemini(const mock_err_t *e, const mock_status_row_t *row)
{
    json_t *err = json_pack("{s:i, s:s, s:s}", "code", e->status, "message",
                            e->message ? e->message : row->message, "status",
                            e->type ? e->type : row->gemini_status);

    if (err && e->reason) {
        json_object_set_new(err, "details",
                            json_pack("[{s:s, s:s, s:s, s:{s:s}}]", "@type",
                                      "type.googleapis.com/google.rpc.ErrorInfo",
                                      "reason", e->reason, "domain", "googleapis.com",
                                      "metadata", "service",
                                      "generativelanguage.googleapis.com"));
    }
    return json_pack("{s:o}", "error", err);
}

/* Sends e in the shape of m's protocol. */
static int mock_send_error(mock_req_t *m, const mock_err_t *e)
{
    request_rec *r = m->r;
    mock_status_row_t row = mock_status_row(e->status);
    const char *msg = e->message ? e->message : row.message;
    json_t *body;

    if (e->status == 429) {
        apr_table_setn(
            r->err_headers_out, "Retry-After",
            apr_itoa(r->pool, m->ctl.retry_after != MOCK_UNSET ? m->ctl.retry_after : 1));
    }
    switch (m->proto) {
    case MOCK_P_ANTHROPIC:
        body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type",
                         e->type ? e->type : row.anthropic_type, "message", msg,
                         "request_id", m->request_id);
        break;
    case MOCK_P_GEMINI:
        body = mock_error_gemini(e, &row);
        break;
    default:
        body = json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", msg, "type",
                         e->type ? e->type : row.openai_type, "param", "code",
                         e->code_null ? NULL : (e->code ? e->code : row.openai_code));
        break;
    }
    return mock_send_json(m, e->status, body);
}

static void mock_err_set(mock_err_t *e, int status, const char *message, const char *type,
                         const char *code)
{
    memset(e, 0, sizeof(*e));
    e->status = status;
    e->message = message;
    e->type = type;
    e->code = code;
}

/* ------------------------------------------------------------------------ */
/* Streaming                                                                 */

static void mock_stream_begin(mock_req_t *m, const char *content_type)
{
    request_rec *r = m->r;

    mock_set_status(r, HTTP_OK);
    ap_set_content_type(r, content_type);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    m->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
}

static void mock_bb_lit(mock_req_t *m, const char *s)
{
    APR_BRIGADE_INSERT_TAIL(
        m->bb, apr_bucket_immortal_create(s, strlen(s), m->bb->bucket_alloc));
}

/* Appends a malloc()ed string; the bucket frees it. */
static void mock_bb_owned(mock_req_t *m, char *s)
{
    APR_BRIGADE_INSERT_TAIL(
        m->bb, apr_bucket_heap_create(s, strlen(s), free, m->bb->bucket_alloc));
}

/* Waits delay_ms (except before the first event), then flushes what the
 * brigade holds to the client. Returns 0 once the client is gone. */
static int mock_bb_flush_event(mock_req_t *m)
{
    request_rec *r = m->r;
    apr_status_t rv;

    if (m->sent++ > 0 && m->ctl.delay_ms > 0) {
        apr_sleep(apr_time_from_msec(m->ctl.delay_ms));
    }
    APR_BRIGADE_INSERT_TAIL(m->bb, apr_bucket_flush_create(m->bb->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, m->bb);
    apr_brigade_cleanup(m->bb);
    if (rv != APR_SUCCESS || r->connection->aborted) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, "client left the stream");
        m->aborted = 1;
    }
    return !m->aborted;
}

/* One SSE event whose data is obj (stolen); event may be NULL. */
static int mock_sse_json(mock_req_t *m, const char *event, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (m->aborted || !s) {
        free(s);
        return 0;
    }
    if (event) {
        mock_bb_lit(m, "event: ");
        mock_bb_lit(m, event);
        mock_bb_lit(m, "\n");
    }
    mock_bb_lit(m, "data: ");
    mock_bb_owned(m, s);
    mock_bb_lit(m, "\n\n");
    return mock_bb_flush_event(m);
}

/* One SSE event with literal data (e.g. [DONE]). */
static int mock_sse_lit(mock_req_t *m, const char *event, const char *data)
{
    if (m->aborted) {
        return 0;
    }
    if (event) {
        mock_bb_lit(m, "event: ");
        mock_bb_lit(m, event);
        mock_bb_lit(m, "\n");
    }
    mock_bb_lit(m, "data: ");
    mock_bb_lit(m, data);
    mock_bb_lit(m, "\n\n");
    return mock_bb_flush_event(m);
}

static int mock_stream_end(mock_req_t *m)
{
    if (!m->aborted) {
        APR_BRIGADE_INSERT_TAIL(m->bb, apr_bucket_eos_create(m->bb->bucket_alloc));
        ap_pass_brigade(m->r->output_filters, m->bb);
        apr_brigade_cleanup(m->bb);
    }
    return OK;
}

/* Cuts the stream the way mod_proxy does when a backend breaks: the
 * HTTP_BAD_GATEWAY error bucket makes the chunk filter skip the last chunk
 * and the connection close, so the client sees a truncated body. */
static void mock_stream_drop(mock_req_t *m)
{
    request_rec *r = m->r;
    conn_rec *c = r->connection;

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "drop_after=%d: cutting the stream",
                  m->ctl.drop_after);
    APR_BRIGADE_INSERT_TAIL(m->bb, apr_bucket_flush_create(c->bucket_alloc));
    ap_pass_brigade(r->output_filters, m->bb);
    apr_brigade_cleanup(m->bb);
    APR_BRIGADE_INSERT_TAIL(
        m->bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(m->bb, apr_bucket_eos_create(c->bucket_alloc));
    c->keepalive = AP_CONN_CLOSE;
    ap_pass_brigade(r->output_filters, m->bb);
    apr_brigade_cleanup(m->bb);
    m->aborted = 1;
}

/* Applies malformed_after / drop_after once k content events are out.
 * Returns 0 when the stream must stop. */
static int mock_stream_fault(mock_req_t *m, int k, const char *event)
{
    if (m->aborted) {
        return 0;
    }
    if (m->ctl.malformed_after == k) {
        mock_sse_lit(m, event, "{\"malformed\": tru");
    }
    if (m->ctl.drop_after == k && !m->aborted) {
        mock_stream_drop(m);
    }
    return !m->aborted;
}

/* ------------------------------------------------------------------------ */
/* OpenAI: chat completions                                                  */

static json_t *mock_openai_usage(const mock_req_t *m)
{
    json_int_t n = m->ctl.negative_usage == 1 ? -(json_int_t)m->n : (json_int_t)m->n;
    json_int_t cached = m->ctl.cached == MOCK_UNSET ? 0 : m->ctl.cached;

    return json_pack("{s:I, s:I, s:I, s:{s:I, s:i}, s:{s:i, s:i, s:i, s:i}}",
                     "prompt_tokens", (json_int_t)m->prompt_tokens, "completion_tokens", n,
                     "total_tokens", (json_int_t)m->prompt_tokens + n,
                     "prompt_tokens_details",
                     "cached_tokens", cached, "audio_tokens", 0, "completion_tokens_details",
                     "reasoning_tokens", 0, "audio_tokens", 0,
                     "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

static const char *mock_openai_finish(const mock_req_t *m)
{
    return m->truncated ? "length" : "stop";
}

static int mock_chat_full(mock_req_t *m)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s, s:n, s:[]}, s:n, s:s}], s:s, s:s}",
        "id", m->id, "object", "chat.completion", "created", m->created, "model",
        m->model, "choices", "index", 0, "message", "role", "assistant", "content",
        mock_full_text(m->r->pool, m->n), "refusal", "annotations", "logprobs",
        "finish_reason", mock_openai_finish(m), "service_tier", "default",
        "system_fingerprint", MOCK_FINGERPRINT);

    if (o && m->usage) {
        json_object_set_new(o, "usage", mock_openai_usage(m));
    }
    return mock_send_json(m, HTTP_OK, o);
}

/* A chat.completion.chunk with one choice (delta stolen). */
static json_t *mock_chat_chunk(const mock_req_t *m, json_t *delta, const char *finish)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:[{s:i, s:o, s:n, s:s?}]}",
                          "id", m->id, "object", "chat.completion.chunk", "created",
                          m->created, "model", m->model, "service_tier", "default",
                          "system_fingerprint", MOCK_FINGERPRINT, "choices", "index", 0,
                          "delta", delta, "logprobs", "finish_reason", finish);

    if (o && m->include_usage && m->usage) {
        json_object_set_new(o, "usage", json_null());
    }
    return o;
}

/* The include_usage chunk: choices empty, usage set. */
static json_t *mock_usage_chunk(const mock_req_t *m, const char *object)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "id", m->id, "object", object,
                          "created", m->created, "model", m->model);

    if (o && !strcmp(object, "chat.completion.chunk")) {
        json_object_set_new(o, "service_tier", json_string("default"));
    }
    if (o) {
        json_object_set_new(o, "system_fingerprint", json_string(MOCK_FINGERPRINT));
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", mock_openai_usage(m));
    }
    return o;
}

static int mock_chat_stream(mock_req_t *m)
{
    char tok[32];
    int k;

    mock_stream_begin(m, "text/event-stream");
    if (!mock_sse_json(m, NULL,
                       mock_chat_chunk(m,
                                       json_pack("{s:s, s:s, s:n}", "role", "assistant",
                                                 "content", "", "refusal"),
                                       NULL)) ||
        !mock_stream_fault(m, 0, NULL)) {
        return OK;
    }
    for (k = 1; k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (!mock_sse_json(
                m, NULL, mock_chat_chunk(m, json_pack("{s:s}", "content", tok), NULL)) ||
            !mock_stream_fault(m, k, NULL)) {
            return OK;
        }
    }
    if (!mock_sse_json(m, NULL,
                       mock_chat_chunk(m, json_object(), mock_openai_finish(m)))) {
        return OK;
    }
    if (m->include_usage && m->usage &&
        !mock_sse_json(m, NULL, mock_usage_chunk(m, "chat.completion.chunk"))) {
        return OK;
    }
    mock_sse_lit(m, NULL, "[DONE]");
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* OpenAI: legacy completions                                                */

static json_t *mock_completion_obj(const mock_req_t *m, const char *text,
                                   const char *finish)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:s, s:i, s:n, s:s?}]}", "id", m->id,
                     "object", "text_completion", "created", m->created, "model",
                     m->model, "system_fingerprint", MOCK_FINGERPRINT, "choices", "text",
                     text, "index", 0, "logprobs", "finish_reason", finish);
}

static int mock_completion_full(mock_req_t *m)
{
    json_t *o =
        mock_completion_obj(m, mock_full_text(m->r->pool, m->n), mock_openai_finish(m));

    if (o && m->usage) {
        json_object_set_new(o, "usage", mock_openai_usage(m));
    }
    return mock_send_json(m, HTTP_OK, o);
}

static int mock_completion_stream(mock_req_t *m)
{
    char tok[32];
    int k;

    mock_stream_begin(m, "text/event-stream");
    if (!mock_stream_fault(m, 0, NULL)) {
        return OK;
    }
    for (k = 1; k <= m->n; k++) {
        json_t *o;

        mock_token_text(tok, sizeof(tok), k);
        o = mock_completion_obj(m, tok, NULL);
        if (o && m->include_usage && m->usage) {
            json_object_set_new(o, "usage", json_null());
        }
        if (!mock_sse_json(m, NULL, o) || !mock_stream_fault(m, k, NULL)) {
            return OK;
        }
    }
    if (!mock_sse_json(m, NULL, mock_completion_obj(m, "", mock_openai_finish(m)))) {
        return OK;
    }
    if (m->include_usage && m->usage &&
        !mock_sse_json(m, NULL, mock_usage_chunk(m, "text_completion"))) {
        return OK;
    }
    mock_sse_lit(m, NULL, "[DONE]");
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* OpenAI: embeddings and models                                             */

/* Deterministic vector for one input: multiples of 1/512 in [-1, 1], exact in
 * float32, so the float and base64 forms carry the same numbers. */
static json_t *mock_embedding_vector(apr_pool_t *p, const char *seed_text,
                                     apr_size_t seed_len, int dims, int base64)
{
    apr_uint64_t h = 1469598103934665603ULL;
    float *raw = apr_palloc(p, sizeof(float) * (apr_size_t)dims);
    json_t *vec = base64 ? NULL : json_array();
    apr_size_t i;
    char *enc;

    for (i = 0; i < seed_len; i++) {
        h = (h ^ (unsigned char)seed_text[i]) * 1099511628211ULL;
    }
    for (i = 0; i < (apr_size_t)dims; i++) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        raw[i] = (float)((double)((h >> 33) % 1025) / 512.0 - 1.0);
        if (vec) {
            json_array_append_new(vec, json_real(raw[i]));
        }
    }
    if (vec) {
        return vec;
    }
    /* float32 little-endian, as OpenAI's base64 encoding_format */
    enc = apr_palloc(p, (apr_size_t)apr_base64_encode_len(dims * 4));
    apr_base64_encode(enc, (const char *)raw, dims * 4);
    return json_string(enc);
}

/* The inputs of an embeddings request, each as seed bytes. */
static apr_array_header_t *mock_embedding_inputs(mock_req_t *m)
{
    apr_array_header_t *seeds = apr_array_make(m->r->pool, 4, sizeof(json_t *));
    json_t *input = json_object_get(m->req, "input"), *el;
    size_t i;

    if (json_is_string(input) ||
        (json_is_array(input) && json_is_integer(json_array_get(input, 0)))) {
        APR_ARRAY_PUSH(seeds, json_t *) = input;
        return seeds;
    }
    json_array_foreach(input, i, el)
    {
        APR_ARRAY_PUSH(seeds, json_t *) = el;
    }
    return seeds;
}

static int mock_embeddings(mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    apr_array_header_t *inputs = mock_embedding_inputs(m);
    json_t *dims_j = json_object_get(m->req, "dimensions"), *data = json_array(), *o;
    const char *fmt = json_string_value(json_object_get(m->req, "encoding_format"));
    int dims = MOCK_DEFAULT_DIMS, i;

    if (json_is_integer(dims_j) && json_integer_value(dims_j) >= 1 &&
        json_integer_value(dims_j) <= MOCK_MAX_DIMS) {
        dims = (int)json_integer_value(dims_j);
    }
    for (i = 0; i < inputs->nelts; i++) {
        json_t *in = APR_ARRAY_IDX(inputs, i, json_t *);
        char *seed = json_is_string(in) ? apr_pstrdup(p, json_string_value(in))
                                        : json_dumps(in, JSON_COMPACT);
        json_t *vec = mock_embedding_vector(p, seed ? seed : "", seed ? strlen(seed) : 0,
                                            dims, fmt && !strcmp(fmt, "base64"));

        if (!json_is_string(in)) {
            free(seed);
        }
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding",
                                              "index", i, "embedding", vec));
    }
    o = json_pack("{s:s, s:o, s:s}", "object", "list", "data", data, "model", m->model);
    if (o && m->usage) {
        json_object_set_new(o, "usage",
                            json_pack("{s:I, s:I}", "prompt_tokens",
                                      (json_int_t)m->prompt_tokens, "total_tokens",
                                      (json_int_t)m->prompt_tokens));
    }
    return mock_send_json(m, HTTP_OK, o);
}

/* OpenAI moderations: one result per input; an input is flagged (violence)
 * when its text contains "kill", so tests can predict it. Categories as in
 * OpenAI's Moderation object. */
static int mock_moderations(mock_req_t *m)
{
    static const char *const cats[] = {
        "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
        "sexual", "sexual/minors", "violence", "violence/graphic", NULL};
    apr_array_header_t *inputs = mock_embedding_inputs(m);
    json_t *results = json_array();
    int i, c;

    for (i = 0; i < inputs->nelts; i++) {
        json_t *in = APR_ARRAY_IDX(inputs, i, json_t *);
        int flagged = json_is_string(in) && strstr(json_string_value(in), "kill") != NULL;
        json_t *cat = json_object(), *score = json_object(), *types = json_object();

        for (c = 0; cats[c]; c++) {
            int hit = flagged && !strcmp(cats[c], "violence");
            json_object_set_new(cat, cats[c], json_boolean(hit));
            json_object_set_new(score, cats[c], json_real(hit ? 0.97 : 0.0001));
            json_object_set_new(types, cats[c], json_pack("[s]", "text"));
        }
        json_array_append_new(results,
                              json_pack("{s:b, s:o, s:o, s:o}", "flagged", flagged,
                                        "categories", cat, "category_scores", score,
                                        "category_applied_input_types", types));
    }
    return mock_send_json(m, HTTP_OK,
                          json_pack("{s:s, s:s, s:o}", "id",
                                    apr_psprintf(m->r->pool, "modr-%d", (int)getpid()),
                                    "model", m->model, "results", results));
}

static json_t *mock_model_obj(const mock_req_t *m, const char *id)
{
    if (m->proto == MOCK_P_ANTHROPIC) {
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id", id,
                         "display_name", id, "created_at", "2025-01-01T00:00:00Z");
    }
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)1700000000, "owned_by", "nebula-mock");
}

static int mock_models(mock_req_t *m)
{
    apr_array_header_t *models = m->conf->models;
    json_t *data = json_array();
    int i;

    for (i = 0; i < models->nelts; i++) {
        json_array_append_new(data, mock_model_obj(m, APR_ARRAY_IDX(models, i, char *)));
    }
    if (m->proto == MOCK_P_ANTHROPIC) {
        const char *first = models->nelts ? APR_ARRAY_IDX(models, 0, char *) : NULL;
        const char *last =
            models->nelts ? APR_ARRAY_IDX(models, models->nelts - 1, char *) : NULL;
        return mock_send_json(m, HTTP_OK,
                              json_pack("{s:o, s:b, s:s?, s:s?}", "data", data,
                                        "has_more", 0, "first_id", first, "last_id",
                                        last));
    }
    return mock_send_json(m, HTTP_OK,
                          json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static int mock_model_one(mock_req_t *m)
{
    apr_array_header_t *models = m->conf->models;
    mock_err_t e;
    int i;

    for (i = 0; i < models->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(models, i, char *), m->gmodel)) {
            return mock_send_json(m, HTTP_OK, mock_model_obj(m, m->gmodel));
        }
    }
    mock_err_set(&e, HTTP_NOT_FOUND,
                 apr_psprintf(m->r->pool, "The model '%s' does not exist", m->gmodel),
                 NULL, "model_not_found");
    return mock_send_error(m, &e);
}

/* ------------------------------------------------------------------------ */
/* OpenAI: Responses API                                                     */

static json_t *mock_responses_usage(const mock_req_t *m)
{
    return json_pack("{s:I, s:{s:i}, s:I, s:{s:i}, s:I}", "input_tokens",
                     (json_int_t)m->prompt_tokens, "input_tokens_details",
                     "cached_tokens", 0, "output_tokens", (json_int_t)m->n,
                     "output_tokens_details", "reasoning_tokens", 0, "total_tokens",
                     (json_int_t)(m->prompt_tokens + m->n));
}

static const char *mock_responses_item_id(const mock_req_t *m)
{
    return apr_pstrcat(m->r->pool, "msg_", m->id + 5, NULL);
}

static json_t *mock_responses_part(const char *text)
{
    return json_pack("{s:s, s:[], s:[], s:s}", "type", "output_text", "annotations",
                     "logprobs", "text", text);
}

static json_t *mock_responses_item(const mock_req_t *m, const char *status,
                                   json_t *content)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", mock_responses_item_id(m), "type",
                     "message", "status", status, "role", "assistant", "content",
                     content);
}

/* The response object; final: completed (or incomplete) with output/usage. */
static json_t *mock_responses_obj(const mock_req_t *m, int final)
{
    const char *status =
        !final ? "in_progress" : (m->truncated ? "incomplete" : "completed");
    json_t *max = json_object_get(m->req, "max_output_tokens");
    json_t *instructions = json_object_get(m->req, "instructions");
    json_t *output = json_array();
    json_t *o;

    if (final) {
        json_array_append_new(
            output,
            mock_responses_item(
                m, status,
                json_pack("[o]", mock_responses_part(mock_full_text(m->r->pool, m->n)))));
    }
    o = json_pack("{s:s, s:s, s:I, s:s, s:n, s:n, s:O?, s:O?, s:s, s:o, s:b, s:n, "
                  "s:{}, s:f, s:f, s:s, s:[], s:s, s:{s:{s:s}}}",
                  "id", m->id, "object", "response", "created_at", m->created, "status",
                  status, "error", "incomplete_details", "instructions", instructions,
                  "max_output_tokens", max, "model", m->model, "output", output,
                  "parallel_tool_calls", 1, "previous_response_id", "metadata",
                  "temperature", 1.0, "top_p", 1.0, "tool_choice", "auto", "tools",
                  "truncation", "disabled", "text", "format", "type", "text");
    if (o && final && m->truncated) {
        json_object_set_new(o, "incomplete_details",
                            json_pack("{s:s}", "reason", "max_output_tokens"));
    }
    if (o && m->usage) {
        json_object_set_new(o, "usage", final ? mock_responses_usage(m) : json_null());
    }
    return o;
}

static int mock_responses_full(mock_req_t *m)
{
    return mock_send_json(m, HTTP_OK, mock_responses_obj(m, 1));
}

/* One Responses event: adds type and sequence_number to obj (stolen). */
static int mock_responses_event(mock_req_t *m, const char *type, json_t *obj)
{
    if (obj) {
        json_object_set_new(obj, "type", json_string(type));
        json_object_set_new(obj, "sequence_number", json_integer(m->seqno++));
    }
    return mock_sse_json(m, type, obj);
}

/* Emits the content part's delta events; 0 if the stream stopped. */
static int mock_responses_deltas(mock_req_t *m, const char *item_id)
{
    const char *ev = "response.output_text.delta";
    char tok[32];
    int k;

    if (!mock_stream_fault(m, 0, ev)) {
        return 0;
    }
    for (k = 1; k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (!mock_responses_event(m, ev,
                                  json_pack("{s:s, s:i, s:i, s:s, s:[]}", "item_id",
                                            item_id, "output_index", 0, "content_index",
                                            0, "delta", tok, "logprobs")) ||
            !mock_stream_fault(m, k, ev)) {
            return 0;
        }
    }
    return 1;
}

static int mock_responses_stream(mock_req_t *m)
{
    const char *item_id = mock_responses_item_id(m);
    const char *text = mock_full_text(m->r->pool, m->n);
    const char *done_status = m->truncated ? "incomplete" : "completed";

    mock_stream_begin(m, "text/event-stream");
    if (!mock_responses_event(m, "response.created",
                              json_pack("{s:o}", "response", mock_responses_obj(m, 0))) ||
        !mock_responses_event(m, "response.in_progress",
                              json_pack("{s:o}", "response", mock_responses_obj(m, 0))) ||
        !mock_responses_event(
            m, "response.output_item.added",
            json_pack("{s:i, s:o}", "output_index", 0, "item",
                      mock_responses_item(m, "in_progress", json_array()))) ||
        !mock_responses_event(m, "response.content_part.added",
                              json_pack("{s:s, s:i, s:i, s:o}", "item_id", item_id,
                                        "output_index", 0, "content_index", 0, "part",
                                        mock_responses_part(""))) ||
        !mock_responses_deltas(m, item_id) ||
        !mock_responses_event(m, "response.output_text.done",
                              json_pack("{s:s, s:i, s:i, s:s, s:[]}", "item_id", item_id,
                                        "output_index", 0, "content_index", 0, "text",
                                        text, "logprobs")) ||
        !mock_responses_event(m, "response.content_part.done",
                              json_pack("{s:s, s:i, s:i, s:o}", "item_id", item_id,
                                        "output_index", 0, "content_index", 0, "part",
                                        mock_responses_part(text))) ||
        !mock_responses_event(
            m, "response.output_item.done",
            json_pack(
                "{s:i, s:o}", "output_index", 0, "item",
                mock_responses_item(m, done_status,
                                    json_pack("[o]", mock_responses_part(text))))) ||
        !mock_responses_event(m,
                              m->truncated ? "response.incomplete" : "response.completed",
                              json_pack("{s:o}", "response", mock_responses_obj(m, 1)))) {
        return OK;
    }
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* Anthropic: messages                                                       */

static const char *mock_anthropic_stop(const mock_req_t *m)
{
    return m->truncated ? "max_tokens" : "end_turn";
}

static json_t *mock_anthropic_usage(const mock_req_t *m, int output_tokens)
{
    return json_pack("{s:I, s:i, s:i, s:I, s:s}", "input_tokens",
                     (json_int_t)m->prompt_tokens, "cache_creation_input_tokens", 0,
                     "cache_read_input_tokens", 0, "output_tokens",
                     (json_int_t)output_tokens, "service_tier", "standard");
}

/* The message object; content stolen. */
static json_t *mock_anthropic_message(const mock_req_t *m, json_t *content,
                                      const char *stop, int output_tokens)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s?, s:n}", "id", m->id, "type",
                          "message", "role", "assistant", "model", m->model, "content",
                          content, "stop_reason", stop, "stop_sequence");

    if (o && m->usage) {
        json_object_set_new(o, "usage", mock_anthropic_usage(m, output_tokens));
    }
    return o;
}

static int mock_anthropic_full(mock_req_t *m)
{
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text",
                                mock_full_text(m->r->pool, m->n));

    return mock_send_json(
        m, HTTP_OK, mock_anthropic_message(m, content, mock_anthropic_stop(m), m->n));
}

static int mock_anthropic_deltas(mock_req_t *m)
{
    const char *ev = "content_block_delta";
    char tok[32];
    int k;

    if (!mock_stream_fault(m, 0, ev)) {
        return 0;
    }
    for (k = 1; k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (!mock_sse_json(m, ev,
                           json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", ev, "index", 0,
                                     "delta", "type", "text_delta", "text", tok)) ||
            !mock_stream_fault(m, k, ev)) {
            return 0;
        }
    }
    return 1;
}

static int mock_anthropic_stream(mock_req_t *m)
{
    json_t *delta;

    mock_stream_begin(m, "text/event-stream");
    delta = json_pack("{s:s, s:{s:s, s:n}}", "type", "message_delta", "delta",
                      "stop_reason", mock_anthropic_stop(m), "stop_sequence");
    if (delta && m->usage) {
        json_object_set_new(
            delta, "usage",
            json_pack("{s:I, s:i, s:i, s:I}", "input_tokens",
                      (json_int_t)m->prompt_tokens, "cache_creation_input_tokens", 0,
                      "cache_read_input_tokens", 0, "output_tokens", (json_int_t)m->n));
    }
    if (!mock_sse_json(
            m, "message_start",
            json_pack("{s:s, s:o}", "type", "message_start", "message",
                      mock_anthropic_message(m, json_array(), NULL, m->n > 0 ? 1 : 0))) ||
        !mock_sse_json(m, "content_block_start",
                       json_pack("{s:s, s:i, s:{s:s, s:s}}", "type",
                                 "content_block_start", "index", 0, "content_block",
                                 "type", "text", "text", "")) ||
        !mock_sse_lit(m, "ping", "{\"type\": \"ping\"}") || !mock_anthropic_deltas(m) ||
        !mock_sse_json(
            m, "content_block_stop",
            json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0)) ||
        !mock_sse_json(m, "message_delta", json_incref(delta)) ||
        !mock_sse_lit(m, "message_stop", "{\"type\":\"message_stop\"}")) {
        json_decref(delta);
        return OK;
    }
    json_decref(delta);
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* Gemini: generateContent / streamGenerateContent                           */

static json_t *mock_gemini_usage(const mock_req_t *m)
{
    return json_pack("{s:I, s:I, s:I, s:[{s:s, s:I}]}", "promptTokenCount",
                     (json_int_t)m->prompt_tokens, "candidatesTokenCount",
                     (json_int_t)m->n, "totalTokenCount",
                     (json_int_t)(m->prompt_tokens + m->n), "promptTokensDetails",
                     "modality", "TEXT", "tokenCount", (json_int_t)m->prompt_tokens);
}

/* A GenerateContentResponse with one text part; finish NULL: not last. */
static json_t *mock_gemini_chunk(const mock_req_t *m, const char *text,
                                 const char *finish)
{
    json_t *cand = json_pack("{s:{s:[{s:s}], s:s}, s:i}", "content", "parts", "text",
                             text, "role", "model", "index", 0);
    json_t *o;

    if (cand && finish) {
        json_object_set_new(cand, "finishReason", json_string(finish));
    }
    o = json_pack("{s:[o]}", "candidates", cand);
    if (o && finish && m->usage) {
        json_object_set_new(o, "usageMetadata", mock_gemini_usage(m));
    }
    if (o) {
        json_object_set_new(o, "modelVersion", json_string(m->model));
        json_object_set_new(o, "responseId", json_string(m->id));
    }
    return o;
}

static const char *mock_gemini_finish(const mock_req_t *m)
{
    return m->truncated ? "MAX_TOKENS" : "STOP";
}

static int mock_gemini_full(mock_req_t *m)
{
    return mock_send_json(
        m, HTTP_OK,
        mock_gemini_chunk(m, mock_full_text(m->r->pool, m->n), mock_gemini_finish(m)));
}

/* One element of the JSON-array form (no alt=sse): "[", ",\r\n" before. */
static int mock_gemini_array_item(mock_req_t *m, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (m->aborted || !s) {
        free(s);
        return 0;
    }
    mock_bb_lit(m, m->sent ? ",\r\n" : "[");
    mock_bb_owned(m, s);
    return mock_bb_flush_event(m);
}

static int mock_gemini_emit(mock_req_t *m, json_t *obj)
{
    return m->gemini_sse ? mock_sse_json(m, NULL, obj) : mock_gemini_array_item(m, obj);
}

static int mock_gemini_stream(mock_req_t *m)
{
    char tok[32];
    int k;

    mock_stream_begin(m, m->gemini_sse ? "text/event-stream" : "application/json");
    if (!mock_stream_fault(m, 0, NULL)) {
        return OK;
    }
    for (k = 1; k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (!mock_gemini_emit(m, mock_gemini_chunk(m, tok, NULL)) ||
            !mock_stream_fault(m, k, NULL)) {
            return OK;
        }
    }
    if (!mock_gemini_emit(m, mock_gemini_chunk(m, "", mock_gemini_finish(m)))) {
        return OK;
    }
    if (!m->gemini_sse) {
        mock_bb_lit(m, "]");
    }
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */

/* Splits off /_mock/<controls>; returns the admin name for /_mock/<admin>. */
static const char *mock_path_split(mock_req_t *m)
{
    /* r->uri is already %-decoded, and %2C must survive until the split */
    const char *raw = m->r->unparsed_uri, *q, *seg, *slash;

    if (!raw || raw[0] != '/') {
        raw = m->r->uri;
    }
    else if ((q = strchr(raw, '?')) != NULL) {
        raw = apr_pstrmemdup(m->r->pool, raw, (apr_size_t)(q - raw));
    }
    m->path = raw;
    if (strncmp(raw, "/_mock/", 7)) {
        return NULL;
    }
    seg = raw + 7;
    slash = strchr(seg, '/');
    if (!strchr(slash ? apr_pstrmemdup(m->r->pool, seg, (apr_size_t)(slash - seg)) : seg,
                '=')) {
        return slash ? apr_pstrmemdup(m->r->pool, seg, (apr_size_t)(slash - seg)) : seg;
    }
    m->ctl_url = slash ? apr_pstrmemdup(m->r->pool, seg, (apr_size_t)(slash - seg)) : seg;
    m->path = slash ? slash : "/";
    return NULL;
}

/* /v1beta/models/{model}:action (also /v1/models/...:action). */
static int mock_route_gemini(mock_req_t *m, const char *path)
{
    const char *rest, *colon;

    if (!strncmp(path, "/v1beta/models/", 15)) {
        rest = path + 15;
    }
    else if (!strncmp(path, "/v1/models/", 11) && strchr(path + 11, ':')) {
        rest = path + 11;
    }
    else {
        return 0;
    }
    m->proto = MOCK_P_GEMINI;
    colon = strrchr(rest, ':');
    if (!colon || colon == rest || strchr(rest, '/')) {
        return 1;
    }
    m->gmodel = apr_pstrmemdup(m->r->pool, rest, (apr_size_t)(colon - rest));
    ap_unescape_url((char *)m->gmodel);
    if (!strcmp(colon + 1, "generateContent")) {
        m->route = MOCK_R_GEMINI;
    }
    else if (!strcmp(colon + 1, "streamGenerateContent")) {
        const char *alt = mock_query_arg(m, "alt");

        m->route = MOCK_R_GEMINI;
        m->gemini_stream = 1;
        m->gemini_sse = alt && !strcmp(alt, "sse");
    }
    m->method = "POST";
    return 1;
}

static void mock_route_resolve(mock_req_t *m)
{
    static const struct {
        const char *path;
        mock_route_e route;
        mock_proto_e proto;
        const char *method;
    } table[] = {
        {"/v1/chat/completions", MOCK_R_CHAT, MOCK_P_OPENAI, "POST"},
        {"/v1/completions", MOCK_R_COMPLETIONS, MOCK_P_OPENAI, "POST"},
        {"/v1/embeddings", MOCK_R_EMBEDDINGS, MOCK_P_OPENAI, "POST"},
        {"/v1/moderations", MOCK_R_MODERATIONS, MOCK_P_OPENAI, "POST"},
        {"/v1/models", MOCK_R_MODELS, MOCK_P_OPENAI, "GET"},
        {"/v1/responses", MOCK_R_RESPONSES, MOCK_P_OPENAI, "POST"},
        {"/v1/messages", MOCK_R_MESSAGES, MOCK_P_ANTHROPIC, "POST"},
    };
    const char *path = m->path;
    apr_size_t i;

    m->proto = MOCK_P_OPENAI;
    if (!strncmp(path, "/hooks/", 7)) {
        m->route = MOCK_R_HOOK;
        m->method = "POST";
        return;
    }
    if (mock_route_gemini(m, path)) {
        return;
    }
    /* Azure OpenAI: /openai/deployments/{deployment}/chat/completions etc.
     * answer like OpenAI's /v1/... (the deployment names the model) */
    if (!strncmp(path, "/openai/deployments/", 20) && strchr(path + 20, '/')) {
        m->azure = 1;
        path = apr_pstrcat(m->r->pool, "/v1", strchr(path + 20, '/'), NULL);
    }
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (!strcmp(path, table[i].path)) {
            m->route = table[i].route;
            m->proto = table[i].proto;
            m->method = table[i].method;
            break;
        }
    }
    if (m->route == MOCK_R_NONE && !strncmp(path, "/v1/models/", 11) && path[11] &&
        !strchr(path + 11, '/')) {
        m->route = MOCK_R_MODEL;
        m->method = "GET";
        m->gmodel = path + 11;
    }
    if ((m->route == MOCK_R_MODELS || m->route == MOCK_R_NONE) &&
        (mock_header(m, "anthropic-version") || !strncmp(path, "/v1/messages", 12))) {
        m->proto = MOCK_P_ANTHROPIC;
    }
    if (m->route == MOCK_R_NONE && !strncmp(path, "/v1beta", 7)) {
        m->proto = MOCK_P_GEMINI;
    }
}

/* ------------------------------------------------------------------------ */
/* Request body                                                              */

static int mock_read_body(mock_req_t *m)
{
    request_rec *r = m->r;
    apr_off_t limit = m->conf->max_body, expect;
    apr_size_t cap = 8192;
    long got = 0;
    int rc;

    m->body = apr_pcalloc(r->pool, 1);
    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rc;
    }
    if (!ap_should_client_block(r)) {
        return OK;
    }
    if (r->remaining > limit) {
        m->body_too_large = 1;
        return OK;
    }
    expect = r->read_chunked ? 0 : r->remaining;
    if (expect > 0) {
        cap = (apr_size_t)expect + 1;
    }
    m->body = apr_palloc(r->pool, cap);
    /* with a Content-Length the buffer fits exactly: stop when it is full */
    while (!expect || (apr_off_t)m->body_len < expect) {
        if (m->body_len + 1 >= cap) {
            char *grown = apr_palloc(r->pool, cap * 2);
            memcpy(grown, m->body, m->body_len);
            m->body = grown;
            cap *= 2;
        }
        got = ap_get_client_block(r, m->body + m->body_len, cap - m->body_len - 1);
        if (got <= 0) {
            break;
        }
        m->body_len += (apr_size_t)got;
        if ((apr_off_t)m->body_len > limit) {
            m->body_too_large = 1;
            break;
        }
    }
    m->body[m->body_len] = '\0';
    return got < 0 ? HTTP_BAD_REQUEST : OK;
}

/* Parses the body; fills model, stream, include_usage. */
static void mock_parse_request(mock_req_t *m)
{
    json_error_t jerr;
    json_t *opts;

    if (m->route == MOCK_R_NONE || m->route == MOCK_R_HOOK || !strcmp(m->method, "GET")) {
        return;
    }
    m->req = json_loadb(m->body, m->body_len, 0, &jerr);
    if (!m->req) {
        m->json_error = apr_psprintf(m->r->pool, "%s (line %d, column %d)", jerr.text,
                                     jerr.line, jerr.column);
        return;
    }
    apr_pool_cleanup_register(m->r->pool, m->req, mock_json_release,
                              apr_pool_cleanup_null);
    if (!json_is_object(m->req)) {
        m->json_error = "the request body must be a JSON object";
        return;
    }
    m->model = json_string_value(json_object_get(m->req, "model"));
    if (m->route == MOCK_R_GEMINI) {
        m->model = m->gmodel;
        m->stream = m->gemini_stream;
    }
    else {
        m->stream = json_is_true(json_object_get(m->req, "stream"));
    }
    opts = json_object_get(m->req, "stream_options");
    m->include_usage = m->stream && json_is_true(json_object_get(opts, "include_usage"));
}

/* Merges the controls of all sources, lowest priority first. */
static void mock_resolve_controls(mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    const char *hdr = mock_header(m, "X-Mock-Control");
    mock_ctl_t src, marker;
    const char *err = NULL;

    mock_ctl_init(&m->ctl);
    mock_ctl_init(&marker);
    if (m->req && json_is_object(m->req)) {
        mock_text_scan(m, &marker);
    }
    else if (m->body_len && !m->body_too_large) {
        mock_text_acc_t acc = {m, {0}, 0};
        mock_ctl_init(&acc.marker);
        mock_markers_strip(&acc, m->body);
        marker = acc.marker;
    }
    mock_ctl_init(&src);
    if (m->conf->defaults) {
        mock_ctl_parse(p, m->conf->defaults, &src); /* checked at config time */
    }
    if (m->ctl_url) {
        err = mock_ctl_parse(p, m->ctl_url, &src);
    }
    if (hdr && !err) {
        err = mock_ctl_parse(p, hdr, &src);
    }
    mock_ctl_overlay(&src, &marker);
    m->ctl = src;
    if (err && !m->ctl_error) {
        m->ctl_error = err;
    }
}

/* Completion size: events, capped by the protocol's max-tokens field. */
static void mock_plan_output(mock_req_t *m)
{
    json_t *max = NULL;

    m->n = m->ctl.events != MOCK_UNSET ? m->ctl.events : MOCK_DEFAULT_EVENTS;
    m->usage = m->ctl.no_usage != 1;
    if (!m->req) {
        return;
    }
    switch (m->route) {
    case MOCK_R_CHAT:
        max = json_object_get(m->req, "max_completion_tokens");
        if (!json_is_integer(max)) {
            max = json_object_get(m->req, "max_tokens");
        }
        break;
    case MOCK_R_COMPLETIONS:
    case MOCK_R_MESSAGES:
        max = json_object_get(m->req, "max_tokens");
        break;
    case MOCK_R_RESPONSES:
        max = json_object_get(m->req, "max_output_tokens");
        break;
    case MOCK_R_GEMINI: {
        json_t *gc = json_object_get(m->req, "generationConfig");
        max = json_object_get(gc ? gc : json_object_get(m->req, "generation_config"),
                              gc ? "maxOutputTokens" : "max_output_tokens");
        break;
    }
    default:
        break;
    }
    if (json_is_integer(max) && json_integer_value(max) >= 0 &&
        json_integer_value(max) < m->n) {
        m->n = (int)json_integer_value(max);
        m->truncated = 1;
    }
    if (m->route == MOCK_R_EMBEDDINGS || m->route == MOCK_R_MODERATIONS ||
        m->route == MOCK_R_MODELS ||
        m->route == MOCK_R_MODEL || m->route == MOCK_R_HOOK) {
        m->n = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Decisions: auth, validation, injected failures                            */

static const char *mock_mask_key(apr_pool_t *p, const char *key)
{
    apr_size_t len = strlen(key);

    if (len <= 8) {
        return apr_pstrcat(p, apr_pstrmemdup(p, key, len > 3 ? 3 : len), "*****", NULL);
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, key, 3), "*****", key + len - 4, NULL);
}

static int mock_auth_missing(mock_req_t *m, mock_err_t *e)
{
    static const char *const msgs[] = {
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        "x-api-key header is required",
        "Method doesn't allow unregistered callers (callers without established "
        "identity). Please use API Key or other form of API consumer identity to call "
        "this API."};

    mock_err_set(e, HTTP_UNAUTHORIZED, msgs[m->proto], NULL, NULL);
    e->code_null = 1;
    return 1;
}

/* Checks a key the way the providers do; true if e was filled. */
static int mock_auth_key(mock_req_t *m, const char *key, mock_err_t *e)
{
    apr_pool_t *p = m->r->pool;

    if (!key || !*key) {
        return mock_auth_missing(m, e);
    }
    if (!strncmp(key, "bad", 3)) {
        const char *msgs[] = {
            apr_psprintf(p,
                         "Incorrect API key provided: %s. You can find your API key at "
                         "https://platform.openai.com/account/api-keys.",
                         mock_mask_key(p, key)),
            "invalid x-api-key", "API key not valid. Please pass a valid API key."};
        mock_err_set(e, HTTP_UNAUTHORIZED, msgs[m->proto], NULL, "invalid_api_key");
        e->reason = "API_KEY_INVALID";
        return 1;
    }
    if (!strcmp(key, "quota-exceeded")) {
        mock_err_set(e, HTTP_TOO_MANY_REQUESTS, MOCK_QUOTA_MSG,
                     m->proto == MOCK_P_OPENAI ? "insufficient_quota" : NULL,
                     "insufficient_quota");
        return 1;
    }
    return 0;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *mock_bearer(const mock_req_t *m)
{
    const char *h = mock_header(m, "Authorization");

    if (!h || ap_cstr_casecmpn(h, "Bearer ", 7)) {
        return NULL;
    }
    for (h += 7; *h == ' '; h++) {
    }
    return h;
}

static int mock_check_auth(mock_req_t *m, mock_err_t *e)
{
    const char *key = NULL;

    switch (m->proto) {
    case MOCK_P_ANTHROPIC:
        /* x-api-key; newer SDKs send the API key as a Bearer token */
        key = mock_header(m, "x-api-key");
        if (mock_auth_key(m, key ? key : mock_bearer(m), e)) {
            return 1;
        }
        if (!mock_header(m, "anthropic-version")) {
            mock_err_set(e, HTTP_BAD_REQUEST, "anthropic-version: header is required",
                         NULL, NULL);
            return 1;
        }
        return 0;
    case MOCK_P_GEMINI:
        key = mock_header(m, "x-goog-api-key");
        if (!key) {
            key = mock_query_arg(m, "key");
        }
        return mock_auth_key(m, key, e);
    default:
        if (m->azure) {
            /* Azure: the key in api-key, and api-version is required */
            if (mock_auth_key(m, mock_header(m, "api-key"), e)) {
                return 1;
            }
            if (!mock_query_arg(m, "api-version")) {
                mock_err_set(e, HTTP_NOT_FOUND, "Resource not found", NULL, NULL);
                return 1;
            }
            return 0;
        }
        return mock_auth_key(m, mock_bearer(m), e);
    }
}

/* Validates the request body; true if e was filled. */
static int mock_check_request(mock_req_t *m, mock_err_t *e)
{
    apr_pool_t *p = m->r->pool;

    if (!strcmp(m->method, "GET")) {
        return 0;
    }
    if (m->json_error) {
        mock_err_set(e, HTTP_BAD_REQUEST,
                     apr_psprintf(p,
                                  m->proto == MOCK_P_GEMINI
                                      ? "Invalid JSON payload received. %s"
                                      : "We could not parse the JSON body of your "
                                        "request. %s",
                                  m->json_error),
                     NULL, NULL);
        return 1;
    }
    if (!m->model || !*m->model) {
        mock_err_set(e, HTTP_BAD_REQUEST,
                     m->proto == MOCK_P_ANTHROPIC ? "model: Field required"
                                                  : "you must provide a model parameter",
                     NULL, NULL);
        e->code_null = 1;
        return 1;
    }
    if (m->route == MOCK_R_MESSAGES &&
        !json_is_integer(json_object_get(m->req, "max_tokens"))) {
        mock_err_set(e, HTTP_BAD_REQUEST, "max_tokens: Field required", NULL, NULL);
        return 1;
    }
    return 0;
}

/* Decides the answer; e->status 0 means a normal reply. */
static void mock_decide(mock_req_t *m, mock_err_t *e)
{
    request_rec *r = m->r;
    int status = m->ctl.status;

    memset(e, 0, sizeof(*e));
    if (m->body_too_large) {
        mock_err_set(e, HTTP_REQUEST_ENTITY_TOO_LARGE, NULL, NULL, NULL);
        return;
    }
    if (m->ctl_error) {
        mock_err_set(e, HTTP_BAD_REQUEST,
                     apr_pstrcat(r->pool, "nebula-mock: ", m->ctl_error, NULL), NULL,
                     NULL);
        return;
    }
    if (m->route == MOCK_R_NONE || (m->route == MOCK_R_GEMINI && !m->method)) {
        mock_err_set(e, HTTP_NOT_FOUND,
                     apr_psprintf(r->pool, "Invalid URL (%s %s)", r->method, m->path),
                     NULL, NULL);
        return;
    }
    if (strcmp(r->method, m->method) && !(r->header_only && !strcmp(m->method, "GET"))) {
        apr_table_setn(r->err_headers_out, "Allow", m->method);
        mock_err_set(
            e, HTTP_METHOD_NOT_ALLOWED,
            apr_psprintf(r->pool, "Invalid method for URL (%s %s)", r->method, m->path),
            NULL, NULL);
        return;
    }
    if (m->route != MOCK_R_HOOK && (mock_check_auth(m, e) || mock_check_request(m, e))) {
        return;
    }
    if (m->ctl.fail_first != MOCK_UNSET) {
        if (!mock_fail_first_hit(r, m->ctl.tag ? m->ctl.tag : "", m->ctl.fail_first)) {
            return;
        }
        status = status != MOCK_UNSET ? status : HTTP_SERVICE_UNAVAILABLE;
    }
    if (status != MOCK_UNSET && status >= 300) {
        mock_err_set(e, status, m->ctl.error_message, NULL, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Admin routes                                                              */

static int mock_admin_simple(mock_req_t *m, int status, const char *key,
                             const char *value)
{
    return mock_send_json(m, status, json_pack("{s:s}", key, value));
}

static char *mock_records_load(request_rec *r, const char *file)
{
    apr_finfo_t fi;
    apr_file_t *f;
    char *buf = NULL;
    apr_status_t rv;

    if (!mock_lock(r)) {
        return NULL;
    }
    rv = apr_file_open(&f, file, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, r->pool);
    if (rv == APR_SUCCESS) {
        if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) == APR_SUCCESS) {
            buf = apr_palloc(r->pool, (apr_size_t)fi.size + 1);
            apr_file_read_full(f, buf, (apr_size_t)fi.size, NULL);
            buf[fi.size] = '\0';
        }
        apr_file_close(f);
    }
    else {
        buf = apr_pstrdup(r->pool, "");
    }
    mock_unlock();
    return buf;
}

static int mock_admin_records_get(mock_req_t *m)
{
    request_rec *r = m->r;
    const char *tag, *last_s;
    char *buf, *line, *state;
    json_t *all = json_array(), *out = json_array();
    int last = 0;
    size_t i;

    tag = mock_query_arg(m, "tag");
    last_s = mock_query_arg(m, "last");
    if (last_s && !mock_parse_int(last_s, 0, 1000000, &last)) {
        json_decref(all);
        json_decref(out);
        return mock_admin_simple(m, HTTP_BAD_REQUEST, "error", "bad 'last'");
    }
    buf = mock_records_load(r, m->conf->record_file);
    for (line = buf ? apr_strtok(buf, "\n", &state) : NULL; line;
         line = apr_strtok(NULL, "\n", &state)) {
        json_t *rec = json_loads(line, 0, NULL);
        const char *rtag = json_string_value(json_object_get(rec, "tag"));

        if (rec && (!tag || (rtag && !strcmp(rtag, tag)))) {
            json_array_append(all, rec);
        }
        json_decref(rec);
    }
    for (i = (last && json_array_size(all) > (size_t)last)
                 ? json_array_size(all) - (size_t)last
                 : 0;
         i < json_array_size(all); i++) {
        json_array_append(out, json_array_get(all, i));
    }
    json_decref(all);
    return mock_send_json(m, HTTP_OK, out);
}

static int mock_admin_records_clear(mock_req_t *m)
{
    request_rec *r = m->r;
    apr_file_t *f;
    apr_status_t rv = APR_EGENERAL;

    if (mock_lock(r)) {
        rv = apr_file_open(&f, m->conf->record_file,
                           APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                           APR_FPROT_OS_DEFAULT, r->pool);
        if (rv == APR_SUCCESS) {
            apr_file_close(f);
        }
        mock_unlock();
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "NEB09005: cannot truncate %s",
                      m->conf->record_file);
        return mock_admin_simple(m, HTTP_INTERNAL_SERVER_ERROR, "error", "truncate");
    }
    return mock_admin_simple(m, HTTP_OK, "status", "cleared");
}

static int mock_admin_counters_clear(mock_req_t *m)
{
    if (mock_lock(m->r)) {
        mock_shared->ntags = 0;
        mock_unlock();
    }
    return mock_admin_simple(m, HTTP_OK, "status", "cleared");
}

static int mock_admin(mock_req_t *m, const char *name)
{
    request_rec *r = m->r;
    int is_get = r->method_number == M_GET, is_delete = r->method_number == M_DELETE;

    if (!strcmp(name, "health")) {
        return is_get ? mock_admin_simple(m, HTTP_OK, "status", "ok")
                      : mock_admin_simple(m, HTTP_METHOD_NOT_ALLOWED, "error", "GET");
    }
    if (!strcmp(name, "counters")) {
        return is_delete
                   ? mock_admin_counters_clear(m)
                   : mock_admin_simple(m, HTTP_METHOD_NOT_ALLOWED, "error", "DELETE");
    }
    if (strcmp(name, "records")) {
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error", "no such admin route");
    }
    if (!m->conf->record_file || !*m->conf->record_file) {
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error",
                                 "NebulaMockRecordFile is not set");
    }
    if (is_get) {
        return mock_admin_records_get(m);
    }
    if (is_delete) {
        return mock_admin_records_clear(m);
    }
    return mock_admin_simple(m, HTTP_METHOD_NOT_ALLOWED, "error", "GET, DELETE");
}

/* ------------------------------------------------------------------------ */
/* The handler                                                               */

static int mock_reply(mock_req_t *m)
{
    switch (m->route) {
    case MOCK_R_CHAT:
        return m->stream ? mock_chat_stream(m) : mock_chat_full(m);
    case MOCK_R_COMPLETIONS:
        return m->stream ? mock_completion_stream(m) : mock_completion_full(m);
    case MOCK_R_EMBEDDINGS:
        return mock_embeddings(m);
    case MOCK_R_MODERATIONS:
        return mock_moderations(m);
    case MOCK_R_MODELS:
        return mock_models(m);
    case MOCK_R_MODEL:
        return mock_model_one(m);
    case MOCK_R_RESPONSES:
        return m->stream ? mock_responses_stream(m) : mock_responses_full(m);
    case MOCK_R_MESSAGES:
        return m->stream ? mock_anthropic_stream(m) : mock_anthropic_full(m);
    case MOCK_R_GEMINI:
        return m->stream ? mock_gemini_stream(m) : mock_gemini_full(m);
    case MOCK_R_HOOK:
        return mock_send_json(m, HTTP_OK, json_pack("{s:b}", "received", 1));
    default:
        return HTTP_NOT_FOUND;
    }
}

static const char *mock_id_prefix(const mock_req_t *m)
{
    switch (m->route) {
    case MOCK_R_CHAT:
        return "chatcmpl-";
    case MOCK_R_COMPLETIONS:
        return "cmpl-";
    case MOCK_R_RESPONSES:
        return "resp_";
    case MOCK_R_MESSAGES:
        return "msg_";
    default:
        return "";
    }
}

static void mock_set_tag_headers(mock_req_t *m)
{
    request_rec *r = m->r;

    apr_table_setn(r->err_headers_out, "X-Mock-Served-By",
                   m->ctl.tag ? m->ctl.tag : "mock");
    if (m->ctl.tag) {
        apr_table_setn(r->err_headers_out, "X-Mock-Tag", m->ctl.tag);
    }
    m->request_id = mock_rand_id(r->pool, "req_", 24);
    apr_table_setn(r->err_headers_out,
                   m->proto == MOCK_P_ANTHROPIC ? "request-id" : "x-request-id",
                   m->request_id);
}

static int mock_handler(request_rec *r)
{
    mock_req_t *m;
    const char *admin;
    mock_err_t e;
    int rc;

    if (!r->handler || strcmp(r->handler, MOCK_HANDLER)) {
        return DECLINED;
    }
    m = apr_pcalloc(r->pool, sizeof(*m));
    m->r = r;
    m->conf = ap_get_module_config(r->server->module_config, &nebula_mock_module);
    mock_ctl_init(&m->ctl);
    apr_table_setn(r->err_headers_out, "X-Mock-Served-By", "mock");
    admin = mock_path_split(m);
    if (admin) {
        return mock_admin(m, admin);
    }
    mock_route_resolve(m);
    rc = mock_read_body(m);
    if (rc != OK) {
        return rc;
    }
    mock_parse_request(m);
    mock_resolve_controls(m);
    mock_plan_output(m);
    mock_set_tag_headers(m);
    m->id = mock_rand_id(r->pool, mock_id_prefix(m), 24);
    m->created = (json_int_t)apr_time_sec(r->request_time);
    mock_decide(m, &e);
    mock_record(m, e.status ? e.status : HTTP_OK);
    if (m->body_too_large) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (m->ctl.header_delay_ms > 0) {
        apr_sleep(apr_time_from_msec(m->ctl.header_delay_ms));
    }
    return e.status ? mock_send_error(m, &e) : mock_reply(m);
}

/* ------------------------------------------------------------------------ */
/* Configuration directives                                                  */

static void *mock_create_srv(apr_pool_t *p, server_rec *s)
{
    mock_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->max_body = MOCK_UNSET;
    return c;
}

static void *mock_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    mock_srv_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));

    c->record_file = add->record_file ? add->record_file : base->record_file;
    c->defaults = add->defaults ? add->defaults : base->defaults;
    c->models = add->models ? add->models : base->models;
    c->max_body = add->max_body != MOCK_UNSET ? add->max_body : base->max_body;
    return c;
}

static mock_srv_conf_t *mock_cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &nebula_mock_module);
}

static const char *mock_set_record_file(cmd_parms *cmd, void *d, const char *arg)
{
    mock_srv_conf_t *c = mock_cmd_conf(cmd);

    (void)d;
    if (!strcasecmp(arg, "off")) {
        c->record_file = "";
        return NULL;
    }
    c->record_file = ap_server_root_relative(cmd->pool, arg);
    if (!c->record_file) {
        return apr_pstrcat(cmd->pool, "NebulaMockRecordFile: bad path ", arg, NULL);
    }
    return NULL;
}

static const char *mock_set_defaults(cmd_parms *cmd, void *d, const char *arg)
{
    mock_ctl_t probe;
    const char *err;

    (void)d;
    mock_ctl_init(&probe);
    err = mock_ctl_parse(cmd->pool, arg, &probe);
    if (err) {
        return apr_pstrcat(cmd->pool, "NebulaMockDefaults: ", err, NULL);
    }
    mock_cmd_conf(cmd)->defaults = arg;
    return NULL;
}

static const char *mock_add_model(cmd_parms *cmd, void *d, const char *arg)
{
    mock_srv_conf_t *c = mock_cmd_conf(cmd);

    (void)d;
    if (!c->models) {
        c->models = apr_array_make(cmd->pool, 4, sizeof(char *));
    }
    APR_ARRAY_PUSH(c->models, const char *) = arg;
    return NULL;
}

static const char *mock_set_max_body(cmd_parms *cmd, void *d, const char *arg)
{
    char *end;
    apr_off_t n;

    (void)d;
    if (apr_strtoff(&n, arg, &end, 10) != APR_SUCCESS || *end || n < 1) {
        return "NebulaMockMaxBody: want a positive number of bytes";
    }
    mock_cmd_conf(cmd)->max_body = n;
    return NULL;
}

static const command_rec mock_cmds[] = {
    AP_INIT_TAKE1("NebulaMockRecordFile", mock_set_record_file, NULL, RSRC_CONF,
                  "file the mock appends one JSON line per request to, or 'off'"),
    AP_INIT_TAKE1("NebulaMockDefaults", mock_set_defaults, NULL, RSRC_CONF,
                  "default controls, e.g. \"events=20,delay_ms=50\""),
    AP_INIT_ITERATE("NebulaMockModels", mock_add_model, NULL, RSRC_CONF,
                    "model ids that GET /v1/models lists"),
    AP_INIT_TAKE1("NebulaMockMaxBody", mock_set_max_body, NULL, RSRC_CONF,
                  "largest request body in bytes (default 8 MiB); larger: 413"),
    {NULL}};

/* ------------------------------------------------------------------------ */
/* Hooks                                                                     */

static int mock_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return ap_mutex_register(pconf, MOCK_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0) ==
                   APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

/* The shared state lives in the process pool so that it, and the sequence
 * numbers in it, survive graceful restarts. */
static apr_status_t mock_shared_attach(server_rec *s)
{
    apr_pool_t *ppool = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&shm, MOCK_SHM_KEY, ppool);
    if (!shm) {
        rv = apr_shm_create(&shm, sizeof(mock_shared_t), NULL, ppool);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        memset(apr_shm_baseaddr_get(shm), 0, sizeof(mock_shared_t));
        apr_pool_userdata_set(shm, MOCK_SHM_KEY, apr_pool_cleanup_null, ppool);
    }
    mock_shared = apr_shm_baseaddr_get(shm);
    return APR_SUCCESS;
}

static void mock_fill_defaults(apr_pool_t *p, server_rec *s)
{
    static const char *const models[] = {"gpt-4o-mini", "gpt-4o",
                                         "text-embedding-3-small",
                                         "claude-3-5-haiku-latest", "gemini-2.0-flash"};

    for (; s; s = s->next) {
        mock_srv_conf_t *c = ap_get_module_config(s->module_config, &nebula_mock_module);
        apr_size_t i;

        if (c->max_body == MOCK_UNSET) {
            c->max_body = MOCK_DEFAULT_MAXBODY;
        }
        if (!c->models) {
            c->models = apr_array_make(p, 5, sizeof(char *));
            for (i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
                APR_ARRAY_PUSH(c->models, const char *) = models[i];
            }
        }
    }
}

static int mock_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    /* seed jansson's hash while single-threaded (a no-op once seeded) */
    json_object_seed(0);
    mock_fill_defaults(pconf, s);
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    rv = mock_shared_attach(s);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "NEB09006: cannot create the mock's shared memory");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = ap_global_mutex_create(&mock_mutex, NULL, MOCK_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "NEB09007: cannot create the mock's global mutex");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static void mock_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (!mock_mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&mock_mutex, apr_global_mutex_lockfile(mock_mutex),
                                     p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB09008: cannot attach the mock's global mutex in a child");
    }
}

static void mock_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* pre_config: mutex types must be registered before the Mutex directive */
    ap_hook_pre_config(mock_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* post_config: shm and mutex are created once, before the children fork */
    ap_hook_post_config(mock_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* child_init: each child re-attaches the global mutex */
    ap_hook_child_init(mock_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* handler: only for SetHandler nebula-mock, so its order does not matter */
    ap_hook_handler(mock_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Spelled out rather than AP_DECLARE_MODULE(), whose APLOG_USE_MODULE would
 * repeat the one at the top that the log calls above need. */
module AP_MODULE_DECLARE_DATA nebula_mock_module = {
    STANDARD20_MODULE_STUFF,
    NULL,            /* per-directory config: none */
    NULL,            /* merge per-directory */
    mock_create_srv, /* per-server config */
    mock_merge_srv,  /* merge per-server */
    mock_cmds,
    mock_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};

/* Apache::Test appends this block to its httpd.conf. The mock vhost itself,
 * <VirtualHost nebula_mock> with SetHandler nebula-mock and
 * NebulaMockRecordFile, is declared in t/conf/extra.conf.in so that the
 * gateway vhosts there can name its port; declaring it here too would give
 * the mock a second port. */
#if CONFIG_FOR_HTTPD_TEST
#endif

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
 *              POST /v1/responses, GET /v1/responses/{id} (a completed
 *              response with that id, the usual text, input_tokens 0, model
 *              the first NebulaMockModels id), DELETE /v1/responses/{id}
 *              ({"id", "object": "response.deleted", "deleted": true}),
 *              POST /v1/images/generations (JSON), POST /v1/images/edits and
 *              /v1/images/variations (multipart/form-data: image or image[]
 *              files, mask, prompt, model, n, size, response_format),
 *              POST /v1/audio/speech (JSON; binary answer),
 *              POST /v1/audio/transcriptions, /v1/audio/translations
 *              (multipart: file, model, response_format, language, prompt)
 *   Azure      /openai/deployments/{d}/<any OpenAI route above without /v1>
 *              ?api-version=...: answered as OpenAI's, the model echoed is
 *              the deployment {d}
 *   Anthropic  POST /v1/messages, POST /v1/messages/count_tokens
 *              ({"input_tokens": P}), GET /v1/models with anthropic-version
 *   Gemini     POST /v1beta/models/{model}:generateContent
 *              POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]
 *              (without alt=sse: one streamed JSON array, as Google does)
 *              POST /v1beta/models/{model}:countTokens ({"totalTokens": P})
 *              POST /v1beta/models/{model}:embedContent ({"embedding":
 *              {"values": [...]}}, the vector /v1/embeddings gives the parts'
 *              texts joined; outputDimensionality, default 8) and
 *              :batchEmbedContents ({"embeddings": [...]})
 *              GET /v1beta/models ({"models": [Model...]} from
 *              NebulaMockModels: name "models/<id>", displayName,
 *              supportedGenerationMethods ...), GET /v1beta/models/{id}
 *   Rerank     POST /v1/rerank (Jina), /v2/rerank (Cohere): {model, query,
 *              documents (strings or {text}), top_n, return_documents
 *              (default true)} -> {id, model, results: [{index,
 *              relevance_score, document: {text}}], usage: {total_tokens: P},
 *              meta: {billed_units: {search_units: 1}}}. relevance_score =
 *              distinct query words found in the document / distinct query
 *              words (words: lower-cased alphanumeric runs); results sorted
 *              by score, then index; cut at top_n
 *   Webhooks   POST /hooks/<anything>: 200 {"received":true}, no auth, the
 *              body taken as it is ([[mock ...]] markers in it apply); for
 *              the gateway's outbound notifications (NebulaNotifyWebhook)
 *   Payments   POST /v1/checkout/sessions (Stripe: Bearer sk_... (the
 *              NebulaMockStripeKey one when set, else 401 as Stripe words
 *              it), form body as Stripe's API takes it: mode=payment,
 *              line_items[0][price_data][currency|unit_amount|product_data]
 *              [name]], line_items[0][quantity], success_url required (400
 *              parameter_missing), cancel_url, client_reference_id,
 *              metadata[k]) -> a Checkout Session object: id "cs_test_...",
 *              object "checkout.session", amount_subtotal/amount_total =
 *              unit_amount x quantity, currency, client_reference_id,
 *              metadata, mode, payment_status "unpaid", status "open", url
 *              "https://checkout.stripe.com/c/pay/<id>", created, expires_at
 *              ...; GET|POST /submit.php (EPay: pid and sign checked with
 *              NebulaMockEpay PID KEY: MD5 of the non-empty parameters but
 *              sign/sign_type sorted by name as k=v&k=v, the key appended;
 *              400 text "sign error" / "merchant (pid) does not exist" /
 *              "missing <p>", else 200 HTML with X-Mock-Epay-Trade-No).
 *              Sessions and EPay orders are kept in <record file>.stripe /
 *              .epay (JSON lines) for the admin routes below
 *   Any of them may follow a control prefix: /_mock/<controls>/v1/...
 *   Admin: GET /_mock/health, GET /_mock/records?last=N&tag=X,
 *          DELETE /_mock/records, DELETE /_mock/counters,
 *          POST /_mock/stripe/complete {session, url, secret, times (1),
 *            bad_sig, stale, type (checkout.session.completed), amount_total,
 *            currency}: the mock acts as Stripe and POSTs one event (id
 *            "evt_...", object "event", data.object the session, now
 *            complete/paid) to url `times` times, indented JSON signed as
 *            Stripe signs (Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256
 *            of "<t>.<body>" keyed with the whole secret>), then once signed
 *            with another secret (bad_sig) and once with t 600 s old
 *            (stale); answers {event_id, payload, deliveries: [{kind,
 *            signature, status, body}]}
 *          POST /_mock/epay/notify {out_trade_no, times (1), bad_sign, money,
 *            trade_status (TRADE_SUCCESS), method (GET)}: the mock acts as
 *            EPay and calls the order's notify_url with pid, trade_no,
 *            out_trade_no, type, name, money, trade_status, sign,
 *            sign_type=MD5 (then once signed with another key: bad_sign);
 *            answers {deliveries: [{kind, query, status, body}]}
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
 *                      (count_tokens too)
 *         gemini:      systemInstruction.parts[].text + contents[].parts[].text
 *                      (countTokens: the same, or of generateContentRequest;
 *                      embedContent: content.parts[].text, batch: of all)
 *         rerank:      query + documents' text
 *         images:      prompt; speech: input; transcriptions: prompt
 *       Only "text" parts count: tool definitions, tool calls, tool results
 *       and image parts do not (the record has the whole body).
 *   N = completion tokens = number of content events = `events` (default 5),
 *       capped by max_completion_tokens / max_tokens / max_output_tokens /
 *       generationConfig.maxOutputTokens; when capped the finish reason is
 *       "length" / "max_tokens" / "MAX_TOKENS" / status "incomplete" (the
 *       Responses stream then ends with response.incomplete, as OpenAI's).
 *   Event k (1..N) carries the text "tok<k> ", so the full text is
 *   "tok1 tok2 ... tokN " (N words). total = P + N. Embeddings: usage is
 *   {prompt_tokens: P, total_tokens: P}. The response's model echoes the
 *   request's model. Anthropic's message_start carries output_tokens 1 (0
 *   when the output is 0), as the real API does; message_delta carries the
 *   final, cumulative counts.
 *   Tool calls (tool_call=NAME): the answer is one call to NAME with the
 *     arguments A = tool_args (compact JSON, ASCII) instead of text; usage
 *     stays N (completion tokens = N, as for text). Streams cut A into
 *     max(2, min(N, length of A)) pieces of near-equal length (their
 *     concatenation is A); drop_after / malformed_after count pieces. The
 *     finish reason is "tool_calls" / "tool_use" / STOP / "completed" even
 *     when N was capped. Legacy completions ignore tool_call.
 *       OpenAI chat: message content null, tool_calls [{id "call_...",
 *         type function, function {name, arguments A}}]; stream: first
 *         chunk {role, content null, tool_calls [{index 0, id, type,
 *         function {name, arguments ""}}], refusal null}, then one chunk per
 *         piece {tool_calls [{index 0, function {arguments piece}}]}, then
 *         {} with finish_reason "tool_calls" (then usage, [DONE]).
 *       Responses: output [{id "fc_...", type function_call, status, arguments
 *         A, call_id "call_...", name}]; stream: created, in_progress,
 *         output_item.added (arguments ""), function_call_arguments.delta
 *         per piece, function_call_arguments.done {arguments, name},
 *         output_item.done, completed.
 *       Anthropic: content [tool_use {id "toolu_...", name, input}],
 *         stop_reason "tool_use"; stream: content_block_start {type tool_use,
 *         id, name, input {}}, input_json_delta {partial_json piece}...
 *       Gemini: parts [{functionCall {name, args}}], finishReason STOP; the
 *         stream sends it whole in one chunk (with usageMetadata).
 *   Anthropic thinking=K (K >= 1): a thinking block first, its text
 *     "think1 ... thinkK " and signature = base64("nebula-mock-thinking-
 *     signature:" + tag, or "mock" without a tag), byte-stable; the answer
 *     block is then index 1. Stream: content_block_start {thinking "",
 *     signature ""}, ping, K thinking_delta, one signature_delta,
 *     content_block_stop. output_tokens = N + K (Anthropic bills thinking
 *     as output), usage.output_tokens_details.thinking_tokens = K.
 *   Anthropic cache_read=R, cache_write=W: cache_read_input_tokens R,
 *     cache_creation_input_tokens W (and cache_creation.ephemeral_5m_input_
 *     tokens W), input_tokens = max(0, P - R - W).
 *   Gemini thoughts=T: usageMetadata.thoughtsTokenCount T, totalTokenCount
 *     P + N + T. block=1: {promptFeedback {blockReason SAFETY,
 *     safetyRatings}, usageMetadata {promptTokenCount P, totalTokenCount P}}
 *     and no candidates (N = 0); a stream sends that one chunk.
 *   Images: n images (default 1, 1..10), each {url} (response_format url,
 *     the default; https://images.mock.nebula.test/<id>-<i>.png) or
 *     {b64_json} (a fixed 1x1 PNG), with revised_prompt = prompt (not for
 *     variations); {"created", "data"}. The model defaults to dall-e-2.
 *   Speech: 64 bytes per character (UTF-8 code point) of input, markers cut
 *     out; byte i = (31 i + 17) mod 256; Content-Type by response_format
 *     (mp3 audio/mpeg, opus, aac, flac, wav, pcm: audio/<fmt>); sent
 *     chunked in max(1, min(events, length)) pieces, delay_ms between them
 *     (drop_after counts pieces).
 *   Transcriptions / translations: text = "tok1 ... tokN "; S = audio_seconds
 *     or ceil(bytes of the file / 16000). json: {text, usage {type
 *     "duration", seconds S}}; text: text/plain "<text>\n"; srt / vtt: one
 *     cue 0..S; verbose_json: {text, task transcribe|translate, language
 *     (language's name, e.g. en -> english; translations: english),
 *     duration S, segments [one, 0..S], usage}.
 *   Records: completion_tokens = N + K (thinking) or N + T (thoughts);
 *     images: the number of images; 0 for routes without output.
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
 *   fail_mod=N          requests with this tag fail with `status` (default
 *                       503) except every Nth (N-1 of every N fail; never
 *                       N in a row, so a breaker with a threshold of N or
 *                       more stays closed)
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
 *   tool_call=NAME      answer with a call to NAME ([A-Za-z0-9_.:-]{1,63})
 *   tool_args=JSON      its arguments, a URL-encoded JSON object (commas as
 *                       %2C); default {"q":"tok1"}
 *   thinking=K          Anthropic: K thinking deltas before the answer
 *   cache_read=R        Anthropic usage: cache_read_input_tokens
 *   cache_write=W       Anthropic usage: cache_creation_input_tokens
 *   thoughts=T          Gemini usageMetadata.thoughtsTokenCount
 *   block=1             Gemini: the prompt is blocked (SAFETY)
 *   audio_seconds=S     transcriptions: the audio's duration
 *   sse_inject=1        streams (SSE): a hostile but well-formed event stream;
 *                       before every event a comment line ended by a lone
 *                       CR and a data-less "event: error" block (CRLF; no
 *                       event by the SSE rules), then the event with its JSON
 *                       pretty-printed over several "data:" lines ended by
 *                       CRLF; chat content event k carries the text
 *                       "tok<k>" MOCK_INJECT_TEXT " " (CR, LF, blank lines,
 *                       "event:", "data: [DONE]" inside the JSON string)
 *   echo_auth=1         a careless provider: the credential the request
 *                       carried (Bearer token, x-api-key, api-key,
 *                       x-goog-api-key or ?key=) is echoed in full in the
 *                       message of an injected error (status=S) and in the
 *                       X-Mock-Auth-Echo header of any answer (secrets
 *                       hygiene tests: the gateway must not pass it on)
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
 *   NebulaMockStripeKey sk_...      the one Stripe key accepted (default: any sk_)
 *   NebulaMockEpay PID KEY          the EPay merchant submit.php knows
 *
 * RECORDS  one JSON line per API request in NebulaMockRecordFile: seq
 *   (monotonic across processes), time_ms (arrival), method, path (with
 *   query), headers (names lower-cased), body (string; bytes that are not
 *   UTF-8 become '?'), tag, model, route, stream, status (what the mock
 *   answered), prompt_tokens, completion_tokens. A multipart/form-data
 *   request adds body_base64 (the raw body, base64) and multipart: one
 *   {name, size, filename (files) or value (fields), content_type (when
 *   sent)} per part, in order.
 *   Errors of the new routes are OpenAI-shaped with param set, e.g. 400
 *   {"message": "Missing required parameter: 'image'.", "param": "image",
 *   "code": "missing_required_parameter"}; a non-multipart body where one is
 *   needed: 400 "Invalid Content-Type header (...), expected
 *   multipart/form-data.".
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
#include "apr_md5.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "apr_uri.h"
#include "apr_network_io.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
/* sse_inject=1: what each chat content event's text carries after "tok<k>" */
#define MOCK_INJECT_TEXT                                                                 \
    "\r\n\nevent: error\ndata: [DONE]\n\ndata: {\"forged\":1}\r\r: c\n"

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
    const char *stripe_key; /* NebulaMockStripeKey; NULL: any sk_ key */
    const char *epay_pid;   /* NebulaMockEpay PID KEY */
    const char *epay_key;
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
    int fail_mod;
    int retry_after;
    int thinking;
    int cache_read;
    int cache_write;
    int thoughts;
    int block;
    int audio_seconds;
    int sse_inject;
    int echo_auth;
    const char *error_message;
    const char *tag;
    const char *tool_call;
    const char *tool_args; /* canonical (compact, ASCII) JSON object */
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
    MOCK_R_HOOK,
    MOCK_R_RESPONSE_GET,
    MOCK_R_RESPONSE_DELETE,
    MOCK_R_COUNT_TOKENS,
    MOCK_R_GEMINI_COUNT,
    MOCK_R_GEMINI_EMBED,
    MOCK_R_GEMINI_BATCH_EMBED,
    MOCK_R_GEMINI_MODELS,
    MOCK_R_GEMINI_MODEL,
    MOCK_R_RERANK,
    MOCK_R_IMAGES_GEN,
    MOCK_R_IMAGES_EDIT,
    MOCK_R_IMAGES_VAR,
    MOCK_R_SPEECH,
    MOCK_R_TRANSCRIBE,
    MOCK_R_TRANSLATE,
    MOCK_R_STRIPE_SESSION,
    MOCK_R_EPAY_SUBMIT
} mock_route_e;

static const char *const mock_route_names[] = {"none",
                                               "openai.chat",
                                               "openai.completions",
                                               "openai.embeddings",
                                               "openai.moderations",
                                               "openai.models",
                                               "openai.model",
                                               "openai.responses",
                                               "anthropic.messages",
                                               "gemini.generate",
                                               "hook",
                                               "openai.responses.get",
                                               "openai.responses.delete",
                                               "anthropic.count_tokens",
                                               "gemini.count_tokens",
                                               "gemini.embed",
                                               "gemini.batch_embed",
                                               "gemini.models",
                                               "gemini.model",
                                               "rerank",
                                               "openai.images.generations",
                                               "openai.images.edits",
                                               "openai.images.variations",
                                               "openai.audio.speech",
                                               "openai.audio.transcriptions",
                                               "openai.audio.translations",
                                               "stripe.checkout.sessions",
                                               "epay.submit"};

/* One part of a multipart/form-data body; data points into the body. */
typedef struct {
    const char *name;
    const char *filename; /* NULL: a plain field */
    const char *content_type;
    const char *data;
    apr_size_t len;
} mock_part_t;

/* An error answer; NULL fields take the defaults of mock_status_row(). */
typedef struct {
    int status;
    const char *message;
    const char *type;   /* OpenAI type / Anthropic type / Gemini status */
    const char *code;   /* OpenAI code */
    const char *reason; /* Gemini ErrorInfo reason */
    const char *param;  /* OpenAI param (null when NULL) */
    int code_null;      /* OpenAI code is explicitly null */
} mock_err_t;

/* Everything one request needs; lives in r->pool. */
typedef struct {
    request_rec *r;
    mock_srv_conf_t *conf;
    mock_proto_e proto;
    mock_route_e route;
    const char *method;     /* the method the route accepts */
    const char *path;       /* route path, after any control prefix */
    const char *ctl_url;    /* raw control segment of the URL, or NULL */
    const char *gmodel;     /* Gemini model from the path; /v1/models/{id} */
    int gemini_stream;      /* :streamGenerateContent */
    int gemini_sse;         /* ... with alt=sse */
    int azure;              /* /openai/deployments/{d}/...?api-version=: Azure OpenAI */
    const char *deployment; /* Azure deployment: the model echoed */
    const char *item_id;    /* /v1/responses/{id} */
    apr_array_header_t *parts; /* multipart/form-data parts (mock_part_t) */
    const char *body_error;    /* the body is not what the route takes */
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
    int think;     /* Anthropic thinking deltas (thinking=K) */
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
    c->fail_first = c->fail_mod = c->retry_after = MOCK_UNSET;
    c->thinking = c->cache_read = c->cache_write = c->thoughts = MOCK_UNSET;
    c->block = c->audio_seconds = c->sse_inject = c->echo_auth = MOCK_UNSET;
    c->error_message = c->tag = c->tool_call = c->tool_args = NULL;
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
    MOCK_OVERLAY(dst, src, fail_mod);
    MOCK_OVERLAY(dst, src, retry_after);
    MOCK_OVERLAY(dst, src, thinking);
    MOCK_OVERLAY(dst, src, cache_read);
    MOCK_OVERLAY(dst, src, cache_write);
    MOCK_OVERLAY(dst, src, thoughts);
    MOCK_OVERLAY(dst, src, block);
    MOCK_OVERLAY(dst, src, audio_seconds);
    MOCK_OVERLAY(dst, src, sse_inject);
    MOCK_OVERLAY(dst, src, echo_auth);
    if (src->error_message) {
        dst->error_message = src->error_message;
    }
    if (src->tag) {
        dst->tag = src->tag;
    }
    if (src->tool_call) {
        dst->tool_call = src->tool_call;
    }
    if (src->tool_args) {
        dst->tool_args = src->tool_args;
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

/* tool_args: a JSON object, kept in its compact ASCII form so that it can be
 * cut anywhere into argument deltas. */
static const char *mock_ctl_tool_args(apr_pool_t *p, mock_ctl_t *c, const char *v)
{
    json_t *obj = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
    char *dumped =
        json_is_object(obj) ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

    json_decref(obj);
    if (!dumped) {
        return apr_psprintf(p,
                            "bad value for control tool_args: '%s' (want a JSON "
                            "object)",
                            v);
    }
    c->tool_args = apr_pstrdup(p, dumped);
    free(dumped);
    return NULL;
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
        {"fail_mod", APR_OFFSETOF(mock_ctl_t, fail_mod), 2, 1000000},
        {"retry_after", APR_OFFSETOF(mock_ctl_t, retry_after), 0, 86400},
        {"thinking", APR_OFFSETOF(mock_ctl_t, thinking), 0, MOCK_MAX_EVENTS},
        {"cache_read", APR_OFFSETOF(mock_ctl_t, cache_read), 0, 10000000},
        {"cache_write", APR_OFFSETOF(mock_ctl_t, cache_write), 0, 10000000},
        {"thoughts", APR_OFFSETOF(mock_ctl_t, thoughts), 0, 10000000},
        {"block", APR_OFFSETOF(mock_ctl_t, block), 0, 1},
        {"audio_seconds", APR_OFFSETOF(mock_ctl_t, audio_seconds), 0, 864000},
        {"sse_inject", APR_OFFSETOF(mock_ctl_t, sse_inject), 0, 1},
        {"echo_auth", APR_OFFSETOF(mock_ctl_t, echo_auth), 0, 1},
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
    if (!strcmp(k, "tool_call")) {
        if (!mock_valid_tag(v)) {
            return apr_psprintf(p, "bad tool_call '%s' (want [A-Za-z0-9_.:-]{1,63})", v);
        }
        c->tool_call = v;
        return NULL;
    }
    if (!strcmp(k, "tool_args")) {
        return mock_ctl_tool_args(p, c, v);
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

/* Rerank documents: strings or objects with "text". */
static void mock_text_add_documents(mock_text_acc_t *acc, json_t *docs)
{
    json_t *doc;
    size_t i;

    json_array_foreach(docs, i, doc)
    {
        mock_text_add(acc, json_is_string(doc)
                               ? json_string_value(doc)
                               : json_string_value(json_object_get(doc, "text")));
    }
}

static void mock_text_add_gemini_embed(mock_text_acc_t *acc, json_t *req)
{
    json_t *one;
    size_t i;

    if (json_is_array(json_object_get(req, "requests"))) {
        json_array_foreach(json_object_get(req, "requests"), i, one)
        {
            mock_text_add_content(
                acc, json_object_get(json_object_get(one, "content"), "parts"));
        }
        return;
    }
    mock_text_add_content(acc, json_object_get(json_object_get(req, "content"), "parts"));
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
    case MOCK_R_COUNT_TOKENS:
        mock_text_add_content(&acc, json_object_get(req, "system"));
        mock_text_add_messages(&acc, json_object_get(req, "messages"));
        break;
    case MOCK_R_GEMINI:
        mock_text_add_gemini(&acc, req);
        break;
    case MOCK_R_GEMINI_COUNT:
        /* contents, or a whole generateContentRequest */
        mock_text_add_gemini(&acc, json_object_get(req, "generateContentRequest")
                                       ? json_object_get(req, "generateContentRequest")
                                       : req);
        break;
    case MOCK_R_GEMINI_EMBED:
    case MOCK_R_GEMINI_BATCH_EMBED:
        mock_text_add_gemini_embed(&acc, req);
        break;
    case MOCK_R_RERANK:
        mock_text_add(&acc, json_string_value(json_object_get(req, "query")));
        mock_text_add_documents(&acc, json_object_get(req, "documents"));
        break;
    case MOCK_R_IMAGES_GEN:
    case MOCK_R_IMAGES_EDIT:
    case MOCK_R_TRANSCRIBE:
    case MOCK_R_TRANSLATE:
        mock_text_add(&acc, json_string_value(json_object_get(req, "prompt")));
        break;
    case MOCK_R_SPEECH:
        mock_text_add(&acc, json_string_value(json_object_get(req, "input")));
        break;
    default:
        break;
    }
    m->prompt_tokens = acc.words;
    *marker = acc.marker;
}

/* What the answer bills as output: text events plus thinking (Anthropic
 * thinking=K) or thoughts (Gemini thoughts=T). */
static long mock_output_tokens(const mock_req_t *m)
{
    long out = m->n + m->think;

    if (m->route == MOCK_R_GEMINI && m->ctl.thoughts != MOCK_UNSET) {
        out += m->ctl.thoughts;
    }
    return out;
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

/* Counts one more request for tag; its number (1, 2 ...), 0 when the table
 * is full. */
static apr_uint32_t mock_tag_count(request_rec *r, const char *tag)
{
    apr_uint32_t i, n;
    mock_tag_slot_t *slot = NULL;

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
    n = slot ? ++slot->count : 0;
    mock_unlock();
    if (!slot) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB09002: fail_first table full (%d tags); "
                      "DELETE /_mock/counters resets it",
                      MOCK_TAGS_MAX);
    }
    return n;
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

/* Multipart bodies: the raw bytes in base64 and what the parser found. */
static void mock_record_multipart(mock_req_t *m, json_t *rec)
{
    apr_pool_t *p = m->r->pool;
    json_t *list = json_array();
    char *enc = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)m->body_len));
    int i;

    apr_base64_encode(enc, m->body, (int)m->body_len);
    json_object_set_new(rec, "body_base64", json_string(enc));
    for (i = 0; i < m->parts->nelts; i++) {
        const mock_part_t *pt = &APR_ARRAY_IDX(m->parts, i, mock_part_t);
        json_t *o =
            json_pack("{s:s, s:I}", "name", pt->name, "size", (json_int_t)pt->len);

        if (pt->filename) {
            json_object_set_new(o, "filename", json_string(pt->filename));
        }
        else {
            json_object_set_new(o, "value", mock_json_bytes(p, pt->data, pt->len));
        }
        if (pt->content_type) {
            json_object_set_new(o, "content_type", json_string(pt->content_type));
        }
        json_array_append_new(list, o);
    }
    json_object_set_new(rec, "multipart", list);
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
        "{s:I, s:s, s:s, s:o, s:o?, s:s?, s:s?, s:s, s:b, s:i, s:I, s:I}", "time_ms",
        (json_int_t)apr_time_as_msec(r->request_time), "method", r->method, "path",
        r->unparsed_uri, "headers", acc.obj, "body",
        m->body_too_large ? NULL : mock_json_bytes(r->pool, m->body, m->body_len), "tag",
        m->ctl.tag, "model", m->model, "route", mock_route_names[m->route], "stream",
        m->stream, "status", status, "prompt_tokens", (json_int_t)m->prompt_tokens,
        "completion_tokens", (json_int_t)(status == HTTP_OK ? mock_output_tokens(m) : 0));
    if (rec && m->parts && !m->body_too_large) {
        mock_record_multipart(m, rec);
    }
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
        body = json_pack("{s:{s:s, s:s, s:o, s:s?}}", "error", "message", msg, "type",
                         e->type ? e->type : row.openai_type, "param",
                         e->param ? json_string(e->param) : json_null(), "code",
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

/* sse_inject=1: what precedes an event, and the event's data over
 * several "data:" lines (s: pretty-printed JSON, freed here). */
static int mock_sse_inject(mock_req_t *m, const char *event, char *s)
{
    char *copy = apr_pstrdup(m->r->pool, s), *line, *last = NULL;

    free(s);
    mock_bb_lit(m, ": mock keep-alive, data: {\"forged\":1}\r");
    mock_bb_lit(m, "event: error\r\n\r\n");
    if (event) {
        mock_bb_lit(m, "event: ");
        mock_bb_lit(m, event);
        mock_bb_lit(m, "\r\n");
    }
    for (line = apr_strtok(copy, "\n", &last); line; line = apr_strtok(NULL, "\n", &last)) {
        mock_bb_lit(m, "data: ");
        mock_bb_lit(m, line);
        mock_bb_lit(m, "\r\n");
    }
    mock_bb_lit(m, "\r\n");
    return mock_bb_flush_event(m);
}

/* One SSE event whose data is obj (stolen); event may be NULL. */
static int mock_sse_json(mock_req_t *m, const char *event, json_t *obj)
{
    char *s = obj ? json_dumps(obj, m->ctl.sse_inject == 1 ? JSON_INDENT(1) : JSON_COMPACT)
                  : NULL;

    json_decref(obj);
    if (m->aborted || !s) {
        free(s);
        return 0;
    }
    if (m->ctl.sse_inject == 1) {
        return mock_sse_inject(m, event, s);
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
/* Tool calls: the arguments and their pieces                                */

#define MOCK_DEFAULT_TOOL_ARGS "{\"q\":\"tok1\"}"

static const char *mock_tool_args(const mock_req_t *m)
{
    return m->ctl.tool_args ? m->ctl.tool_args : MOCK_DEFAULT_TOOL_ARGS;
}

/* The arguments cut into max(2, min(N, length)) pieces of near-equal length
 * (ASCII, so any cut is safe); an array of strings. */
static apr_array_header_t *mock_tool_pieces(const mock_req_t *m)
{
    const char *args = mock_tool_args(m);
    apr_size_t len = strlen(args), count = (apr_size_t)m->n, i;
    apr_array_header_t *out;

    if (count > len) {
        count = len;
    }
    if (count < 2) {
        count = 2;
    }
    out = apr_array_make(m->r->pool, (int)count, sizeof(char *));
    for (i = 0; i < count; i++) {
        apr_size_t from = i * len / count, to = (i + 1) * len / count;
        APR_ARRAY_PUSH(out, char *) = apr_pstrmemdup(m->r->pool, args + from, to - from);
    }
    return out;
}

/* Emits one delta per piece, through emit(m, piece, k); faults apply after
 * piece k as after content event k. Returns 0 if the stream stopped. */
static int mock_tool_deltas(mock_req_t *m, const char *event,
                            int (*emit)(mock_req_t *, const char *))
{
    apr_array_header_t *pieces = mock_tool_pieces(m);
    int k;

    if (!mock_stream_fault(m, 0, event)) {
        return 0;
    }
    for (k = 1; k <= pieces->nelts; k++) {
        if (!emit(m, APR_ARRAY_IDX(pieces, k - 1, char *)) ||
            !mock_stream_fault(m, k, event)) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* OpenAI: chat completions                                                  */

static json_t *mock_openai_usage(const mock_req_t *m)
{
    json_int_t n = m->ctl.negative_usage == 1 ? -(json_int_t)m->n : (json_int_t)m->n;
    json_int_t cached = m->ctl.cached == MOCK_UNSET ? 0 : m->ctl.cached;

    return json_pack("{s:I, s:I, s:I, s:{s:I, s:i}, s:{s:i, s:i, s:i, s:i}}",
                     "prompt_tokens", (json_int_t)m->prompt_tokens, "completion_tokens",
                     n, "total_tokens", (json_int_t)m->prompt_tokens + n,
                     "prompt_tokens_details", "cached_tokens", cached, "audio_tokens", 0,
                     "completion_tokens_details", "reasoning_tokens", 0, "audio_tokens",
                     0, "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

static const char *mock_openai_finish(const mock_req_t *m)
{
    if (m->ctl.tool_call && m->route == MOCK_R_CHAT) {
        return "tool_calls";
    }
    return m->truncated ? "length" : "stop";
}

static const char *mock_tool_call_id(mock_req_t *m)
{
    return apr_pstrcat(m->r->pool, "call_", m->id + strlen(m->id) - 24, NULL);
}

static int mock_chat_full(mock_req_t *m)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s?, s:n, s:[]}, s:n, s:s}], s:s, s:s}",
        "id", m->id, "object", "chat.completion", "created", m->created, "model",
        m->model, "choices", "index", 0, "message", "role", "assistant", "content",
        m->ctl.tool_call ? NULL : mock_full_text(m->r->pool, m->n), "refusal",
        "annotations", "logprobs", "finish_reason", mock_openai_finish(m), "service_tier",
        "default", "system_fingerprint", MOCK_FINGERPRINT);

    if (o && m->ctl.tool_call) {
        json_t *msg =
            json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
        json_object_set_new(msg, "tool_calls",
                            json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id",
                                      mock_tool_call_id(m), "type", "function",
                                      "function", "name", m->ctl.tool_call, "arguments",
                                      mock_tool_args(m)));
    }

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

static int mock_chat_tool_piece(mock_req_t *m, const char *piece)
{
    return mock_sse_json(
        m, NULL,
        mock_chat_chunk(m,
                        json_pack("{s:[{s:i, s:{s:s}}]}", "tool_calls", "index", 0,
                                  "function", "arguments", piece),
                        NULL));
}

/* First chunk: role, content null, the call's id and name, arguments "";
 * then the arguments in pieces, as OpenAI streams a tool call. */
static int mock_chat_tool_stream(mock_req_t *m)
{
    return mock_sse_json(
               m, NULL,
               mock_chat_chunk(m,
                               json_pack("{s:s, s:n, s:[{s:i, s:s, s:s, s:{s:s, s:s}}], "
                                         "s:n}",
                                         "role", "assistant", "content", "tool_calls",
                                         "index", 0, "id", mock_tool_call_id(m), "type",
                                         "function", "function", "name", m->ctl.tool_call,
                                         "arguments", "", "refusal"),
                               NULL)) &&
           mock_tool_deltas(m, NULL, mock_chat_tool_piece);
}

static int mock_chat_stream(mock_req_t *m)
{
    char tok[128];
    int k;

    mock_stream_begin(m, "text/event-stream");
    if (m->ctl.tool_call) {
        if (!mock_chat_tool_stream(m)) {
            return OK;
        }
    }
    else if (!mock_sse_json(
                 m, NULL,
                 mock_chat_chunk(m,
                                 json_pack("{s:s, s:s, s:n}", "role", "assistant",
                                           "content", "", "refusal"),
                                 NULL)) ||
             !mock_stream_fault(m, 0, NULL)) {
        return OK;
    }
    for (k = 1; !m->ctl.tool_call && k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (m->ctl.sse_inject == 1) {
            apr_snprintf(tok, sizeof(tok), "tok%d" MOCK_INJECT_TEXT " ", k);
        }
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
    static const char *const cats[] = {"harassment",
                                       "harassment/threatening",
                                       "hate",
                                       "hate/threatening",
                                       "illicit",
                                       "illicit/violent",
                                       "self-harm",
                                       "self-harm/intent",
                                       "self-harm/instructions",
                                       "sexual",
                                       "sexual/minors",
                                       "violence",
                                       "violence/graphic",
                                       NULL};
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

static const char *mock_responses_fc_id(const mock_req_t *m)
{
    return apr_pstrcat(m->r->pool, "fc_", m->id + 5, NULL);
}

/* A function_call output item (ResponseFunctionToolCall). */
static json_t *mock_responses_fc(mock_req_t *m, const char *status, const char *args)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", mock_responses_fc_id(m),
                     "type", "function_call", "status", status, "arguments", args,
                     "call_id", mock_tool_call_id(m), "name", m->ctl.tool_call);
}

/* The response object; final: completed (or incomplete) with output/usage. */
static json_t *mock_responses_obj(mock_req_t *m, int final)
{
    const char *status =
        !final ? "in_progress" : (m->truncated ? "incomplete" : "completed");
    json_t *max = json_object_get(m->req, "max_output_tokens");
    json_t *instructions = json_object_get(m->req, "instructions");
    json_t *output = json_array();
    json_t *o;

    if (final && m->ctl.tool_call) {
        json_array_append_new(output,
                              mock_responses_fc(m, "completed", mock_tool_args(m)));
    }
    else if (final) {
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

static int mock_responses_fc_piece(mock_req_t *m, const char *piece)
{
    return mock_responses_event(m, "response.function_call_arguments.delta",
                                json_pack("{s:s, s:i, s:s}", "item_id",
                                          mock_responses_fc_id(m), "output_index", 0,
                                          "delta", piece));
}

/* The function_call item: added, arguments delta..., done, item done. */
static int mock_responses_fc_events(mock_req_t *m)
{
    const char *args = mock_tool_args(m);

    return mock_responses_event(m, "response.output_item.added",
                                json_pack("{s:i, s:o}", "output_index", 0, "item",
                                          mock_responses_fc(m, "in_progress", ""))) &&
           mock_tool_deltas(m, "response.function_call_arguments.delta",
                            mock_responses_fc_piece) &&
           mock_responses_event(m, "response.function_call_arguments.done",
                                json_pack("{s:s, s:i, s:s, s:s}", "item_id",
                                          mock_responses_fc_id(m), "output_index", 0,
                                          "name", m->ctl.tool_call, "arguments", args)) &&
           mock_responses_event(m, "response.output_item.done",
                                json_pack("{s:i, s:o}", "output_index", 0, "item",
                                          mock_responses_fc(m, "completed", args))) &&
           mock_responses_event(m, "response.completed",
                                json_pack("{s:o}", "response", mock_responses_obj(m, 1)));
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
                              json_pack("{s:o}", "response", mock_responses_obj(m, 0)))) {
        return OK;
    }
    if (m->ctl.tool_call) {
        return mock_responses_fc_events(m) ? mock_stream_end(m) : OK;
    }
    if (!mock_responses_event(
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

#define MOCK_SIGNATURE_SEED "nebula-mock-thinking-signature:"

static const char *mock_anthropic_stop(const mock_req_t *m)
{
    if (m->ctl.tool_call) {
        return "tool_use";
    }
    return m->truncated ? "max_tokens" : "end_turn";
}

static json_int_t mock_ctl_or0(int v)
{
    return v == MOCK_UNSET ? 0 : (json_int_t)v;
}

/* input_tokens = P - cache_read - cache_write, never below 0. */
static json_int_t mock_anthropic_input(const mock_req_t *m)
{
    json_int_t in = m->prompt_tokens - mock_ctl_or0(m->ctl.cache_read) -
                    mock_ctl_or0(m->ctl.cache_write);

    return in < 0 ? 0 : in;
}

static json_t *mock_anthropic_usage(const mock_req_t *m, long output_tokens)
{
    json_t *u = json_pack("{s:I, s:I, s:I, s:{s:I, s:i}, s:I, s:s}", "input_tokens",
                          mock_anthropic_input(m), "cache_creation_input_tokens",
                          mock_ctl_or0(m->ctl.cache_write), "cache_read_input_tokens",
                          mock_ctl_or0(m->ctl.cache_read), "cache_creation",
                          "ephemeral_5m_input_tokens", mock_ctl_or0(m->ctl.cache_write),
                          "ephemeral_1h_input_tokens", 0, "output_tokens",
                          (json_int_t)output_tokens, "service_tier", "standard");

    if (u && m->think) {
        json_object_set_new(u, "output_tokens_details",
                            json_pack("{s:i}", "thinking_tokens", m->think));
    }
    return u;
}

/* The message object; content stolen. */
static json_t *mock_anthropic_message(const mock_req_t *m, json_t *content,
                                      const char *stop, long output_tokens)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s?, s:n}", "id", m->id, "type",
                          "message", "role", "assistant", "model", m->model, "content",
                          content, "stop_reason", stop, "stop_sequence");

    if (o && m->usage) {
        json_object_set_new(o, "usage", mock_anthropic_usage(m, output_tokens));
    }
    return o;
}

/* base64 of a fixed string and the tag: stable across runs and processes. */
static const char *mock_anthropic_signature(const mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    const char *raw =
        apr_pstrcat(p, MOCK_SIGNATURE_SEED, m->ctl.tag ? m->ctl.tag : "mock", NULL);
    char *enc = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)strlen(raw)));

    apr_base64_encode(enc, raw, (int)strlen(raw));
    return enc;
}

static void mock_thinking_text(char *buf, apr_size_t size, int k)
{
    apr_snprintf(buf, size, "think%d ", k);
}

static char *mock_anthropic_thinking(apr_pool_t *p, int k_max)
{
    apr_size_t size = (apr_size_t)k_max * 14 + 1;
    char *out = apr_palloc(p, size), *at = out;
    int k;

    *out = '\0';
    for (k = 1; k <= k_max; k++) {
        mock_thinking_text(at, size - (apr_size_t)(at - out), k);
        at += strlen(at);
    }
    return out;
}

static const char *mock_anthropic_tool_id(mock_req_t *m)
{
    return apr_pstrcat(m->r->pool, "toolu_", m->id + 4, NULL);
}

static int mock_anthropic_full(mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    json_t *content = json_array();

    if (m->think) {
        json_array_append_new(content,
                              json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking",
                                        mock_anthropic_thinking(p, m->think), "signature",
                                        mock_anthropic_signature(m)));
    }
    if (m->ctl.tool_call) {
        json_array_append_new(
            content, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id",
                               mock_anthropic_tool_id(m), "name", m->ctl.tool_call,
                               "input", json_loads(mock_tool_args(m), 0, NULL)));
    }
    else {
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text",
                                                 mock_full_text(p, m->n)));
    }
    return mock_send_json(m, HTTP_OK,
                          mock_anthropic_message(m, content, mock_anthropic_stop(m),
                                                 mock_output_tokens(m)));
}

/* One content_block_delta event at index (delta stolen). */
static int mock_anthropic_delta(mock_req_t *m, int index, json_t *delta)
{
    return mock_sse_json(m, "content_block_delta",
                         json_pack("{s:s, s:i, s:o}", "type", "content_block_delta",
                                   "index", index, "delta", delta));
}

static int mock_anthropic_block_start(mock_req_t *m, int index, json_t *block)
{
    return mock_sse_json(m, "content_block_start",
                         json_pack("{s:s, s:i, s:o}", "type", "content_block_start",
                                   "index", index, "content_block", block));
}

static int mock_anthropic_block_stop(mock_req_t *m, int index)
{
    return mock_sse_json(
        m, "content_block_stop",
        json_pack("{s:s, s:i}", "type", "content_block_stop", "index", index));
}

static int mock_anthropic_text_deltas(mock_req_t *m, int index)
{
    const char *ev = "content_block_delta";
    char tok[32];
    int k;

    if (!mock_stream_fault(m, 0, ev)) {
        return 0;
    }
    for (k = 1; k <= m->n; k++) {
        mock_token_text(tok, sizeof(tok), k);
        if (!mock_anthropic_delta(
                m, index, json_pack("{s:s, s:s}", "type", "text_delta", "text", tok)) ||
            !mock_stream_fault(m, k, ev)) {
            return 0;
        }
    }
    return 1;
}

/* The thinking block (index 0): start, ping, thinking_delta..., signature_delta,
 * stop. */
static int mock_anthropic_thinking_block(mock_req_t *m)
{
    char buf[32];
    int k;

    if (!mock_anthropic_block_start(m, 0,
                                    json_pack("{s:s, s:s, s:s}", "type", "thinking",
                                              "thinking", "", "signature", "")) ||
        !mock_sse_lit(m, "ping", "{\"type\": \"ping\"}")) {
        return 0;
    }
    for (k = 1; k <= m->think; k++) {
        mock_thinking_text(buf, sizeof(buf), k);
        if (!mock_anthropic_delta(
                m, 0,
                json_pack("{s:s, s:s}", "type", "thinking_delta", "thinking", buf))) {
            return 0;
        }
    }
    return mock_anthropic_delta(m, 0,
                                json_pack("{s:s, s:s}", "type", "signature_delta",
                                          "signature", mock_anthropic_signature(m))) &&
           mock_anthropic_block_stop(m, 0);
}

/* index of the tool_use block of the stream being sent */
static int mock_anthropic_tool_piece(mock_req_t *m, const char *piece)
{
    return mock_anthropic_delta(
        m, m->think ? 1 : 0,
        json_pack("{s:s, s:s}", "type", "input_json_delta", "partial_json", piece));
}

/* The answer block (text or tool_use) at index; the ping follows the first
 * content_block_start of the stream, as in Anthropic's examples. */
static int mock_anthropic_answer_block(mock_req_t *m, int index)
{
    json_t *block =
        m->ctl.tool_call
            ? json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id",
                        mock_anthropic_tool_id(m), "name", m->ctl.tool_call, "input")
            : json_pack("{s:s, s:s}", "type", "text", "text", "");

    if (!mock_anthropic_block_start(m, index, block) ||
        (index == 0 && !mock_sse_lit(m, "ping", "{\"type\": \"ping\"}"))) {
        return 0;
    }
    if (m->ctl.tool_call
            ? !mock_tool_deltas(m, "content_block_delta", mock_anthropic_tool_piece)
            : !mock_anthropic_text_deltas(m, index)) {
        return 0;
    }
    return mock_anthropic_block_stop(m, index);
}

static int mock_anthropic_stream(mock_req_t *m)
{
    long out = mock_output_tokens(m);
    json_t *delta;
    int ok;

    mock_stream_begin(m, "text/event-stream");
    delta = json_pack("{s:s, s:{s:s, s:n}}", "type", "message_delta", "delta",
                      "stop_reason", mock_anthropic_stop(m), "stop_sequence");
    if (delta && m->usage) {
        json_object_set_new(
            delta, "usage",
            json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", mock_anthropic_input(m),
                      "cache_creation_input_tokens", mock_ctl_or0(m->ctl.cache_write),
                      "cache_read_input_tokens", mock_ctl_or0(m->ctl.cache_read),
                      "output_tokens", (json_int_t)out));
    }
    ok = mock_sse_json(
             m, "message_start",
             json_pack("{s:s, s:o}", "type", "message_start", "message",
                       mock_anthropic_message(m, json_array(), NULL, out > 0 ? 1 : 0))) &&
         (!m->think || mock_anthropic_thinking_block(m)) &&
         mock_anthropic_answer_block(m, m->think ? 1 : 0) &&
         mock_sse_json(m, "message_delta", json_incref(delta)) &&
         mock_sse_lit(m, "message_stop", "{\"type\":\"message_stop\"}");
    json_decref(delta);
    return ok ? mock_stream_end(m) : OK;
}

/* POST /v1/messages/count_tokens */
static int mock_anthropic_count(mock_req_t *m)
{
    return mock_send_json(
        m, HTTP_OK, json_pack("{s:I}", "input_tokens", (json_int_t)m->prompt_tokens));
}

/* ------------------------------------------------------------------------ */
/* Gemini: generateContent / streamGenerateContent                           */

static json_t *mock_gemini_usage(const mock_req_t *m)
{
    json_int_t thoughts = mock_ctl_or0(m->ctl.thoughts);
    json_t *u =
        json_pack("{s:I, s:I, s:I, s:[{s:s, s:I}]}", "promptTokenCount",
                  (json_int_t)m->prompt_tokens, "candidatesTokenCount", (json_int_t)m->n,
                  "totalTokenCount", (json_int_t)(m->prompt_tokens + m->n) + thoughts,
                  "promptTokensDetails", "modality", "TEXT", "tokenCount",
                  (json_int_t)m->prompt_tokens);

    if (u && m->ctl.thoughts != MOCK_UNSET) {
        json_object_set_new(u, "thoughtsTokenCount", json_integer(thoughts));
    }
    return u;
}

/* The part of the answer: text, or the functionCall of tool_call. */
static json_t *mock_gemini_part(const mock_req_t *m, const char *text)
{
    if (m->ctl.tool_call) {
        return json_pack("{s:{s:s, s:o}}", "functionCall", "name", m->ctl.tool_call,
                         "args", json_loads(mock_tool_args(m), 0, NULL));
    }
    return json_pack("{s:s}", "text", text);
}

static void mock_gemini_stamp(const mock_req_t *m, json_t *o)
{
    if (o) {
        json_object_set_new(o, "modelVersion", json_string(m->model));
        json_object_set_new(o, "responseId", json_string(m->id));
    }
}

/* A GenerateContentResponse with one part; finish NULL: not last. */
static json_t *mock_gemini_chunk(const mock_req_t *m, const char *text,
                                 const char *finish)
{
    json_t *cand = json_pack("{s:{s:[o], s:s}, s:i}", "content", "parts",
                             mock_gemini_part(m, text), "role", "model", "index", 0);
    json_t *o;

    if (cand && finish) {
        json_object_set_new(cand, "finishReason", json_string(finish));
    }
    o = json_pack("{s:[o]}", "candidates", cand);
    if (o && finish && m->usage) {
        json_object_set_new(o, "usageMetadata", mock_gemini_usage(m));
    }
    mock_gemini_stamp(m, o);
    return o;
}

/* block=1: the prompt is refused, no candidates at all. */
static json_t *mock_gemini_blocked(const mock_req_t *m)
{
    static const char *const cats[] = {
        "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT", NULL};
    json_t *ratings = json_array(), *o;
    int i;

    for (i = 0; cats[i]; i++) {
        int hit = !strcmp(cats[i], "HARM_CATEGORY_DANGEROUS_CONTENT");
        json_t *rt = json_pack("{s:s, s:s}", "category", cats[i], "probability",
                               hit ? "HIGH" : "NEGLIGIBLE");
        if (rt && hit) {
            json_object_set_new(rt, "blocked", json_true());
        }
        json_array_append_new(ratings, rt);
    }
    o = json_pack("{s:{s:s, s:o}}", "promptFeedback", "blockReason", "SAFETY",
                  "safetyRatings", ratings);
    if (o && m->usage) {
        json_object_set_new(o, "usageMetadata",
                            json_pack("{s:I, s:I, s:[{s:s, s:I}]}", "promptTokenCount",
                                      (json_int_t)m->prompt_tokens, "totalTokenCount",
                                      (json_int_t)m->prompt_tokens, "promptTokensDetails",
                                      "modality", "TEXT", "tokenCount",
                                      (json_int_t)m->prompt_tokens));
    }
    mock_gemini_stamp(m, o);
    return o;
}

static const char *mock_gemini_finish(const mock_req_t *m)
{
    return m->truncated ? "MAX_TOKENS" : "STOP";
}

static int mock_gemini_full(mock_req_t *m)
{
    if (m->ctl.block == 1) {
        return mock_send_json(m, HTTP_OK, mock_gemini_blocked(m));
    }
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

/* Text: one chunk per event, then the finishing one. A function call or a
 * blocked prompt comes whole, in one chunk, as Gemini streams them. */
static int mock_gemini_stream(mock_req_t *m)
{
    char tok[32];
    int k;

    mock_stream_begin(m, m->gemini_sse ? "text/event-stream" : "application/json");
    if (!mock_stream_fault(m, 0, NULL)) {
        return OK;
    }
    if (m->ctl.block == 1 || m->ctl.tool_call) {
        if (!mock_gemini_emit(m, m->ctl.block == 1 ? mock_gemini_blocked(m)
                                                   : mock_gemini_chunk(m, "", "STOP"))) {
            return OK;
        }
    }
    else {
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
    }
    if (!m->gemini_sse) {
        mock_bb_lit(m, "]");
    }
    return mock_stream_end(m);
}

/* ------------------------------------------------------------------------ */
/* Gemini: countTokens, embedContent, batchEmbedContents, models             */

static int mock_gemini_count(mock_req_t *m)
{
    return mock_send_json(m, HTTP_OK,
                          json_pack("{s:I, s:[{s:s, s:I}]}", "totalTokens",
                                    (json_int_t)m->prompt_tokens, "promptTokensDetails",
                                    "modality", "TEXT", "tokenCount",
                                    (json_int_t)m->prompt_tokens));
}

/* {"values": [...]} for one EmbedContentRequest: the vector of the parts'
 * texts joined, as /v1/embeddings makes it for that string. */
static json_t *mock_gemini_embedding(mock_req_t *m, json_t *one)
{
    apr_pool_t *p = m->r->pool;
    json_t *parts = json_object_get(json_object_get(one, "content"), "parts"), *part;
    json_t *dims_j = json_object_get(one, "outputDimensionality");
    const char *seed = "";
    int dims = MOCK_DEFAULT_DIMS;
    size_t i;

    json_array_foreach(parts, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        seed = apr_pstrcat(p, seed, t ? t : "", NULL);
    }
    if (json_is_integer(dims_j) && json_integer_value(dims_j) >= 1 &&
        json_integer_value(dims_j) <= MOCK_MAX_DIMS) {
        dims = (int)json_integer_value(dims_j);
    }
    return json_pack("{s:o}", "values",
                     mock_embedding_vector(p, seed, strlen(seed), dims, 0));
}

static int mock_gemini_embed(mock_req_t *m)
{
    json_t *list, *one;
    size_t i;

    if (m->route == MOCK_R_GEMINI_EMBED) {
        return mock_send_json(
            m, HTTP_OK,
            json_pack("{s:o}", "embedding", mock_gemini_embedding(m, m->req)));
    }
    list = json_array();
    json_array_foreach(json_object_get(m->req, "requests"), i, one)
    {
        json_array_append_new(list, mock_gemini_embedding(m, one));
    }
    return mock_send_json(m, HTTP_OK, json_pack("{s:o}", "embeddings", list));
}

/* A Model resource of the Gemini API for id. */
static json_t *mock_gemini_model_obj(apr_pool_t *p, const char *id)
{
    int embed = strstr(id, "embedding") != NULL;
    json_t *methods = embed ? json_pack("[s, s, s]", "embedContent", "batchEmbedContents",
                                        "countTokens")
                            : json_pack("[s, s, s]", "generateContent",
                                        "streamGenerateContent", "countTokens");

    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:f, s:f, s:f, s:i}",
                     "name", apr_pstrcat(p, "models/", id, NULL), "baseModelId", id,
                     "version", "001", "displayName", id, "description",
                     apr_pstrcat(p, "NebulaGate mock model ", id, NULL),
                     "inputTokenLimit", 1048576, "outputTokenLimit", embed ? 1 : 8192,
                     "supportedGenerationMethods", methods, "temperature", 1.0,
                     "maxTemperature", 2.0, "topP", 0.95, "topK", 40);
}

static int mock_gemini_models(mock_req_t *m)
{
    apr_array_header_t *models = m->conf->models;
    json_t *list = json_array();
    mock_err_t e;
    int i;

    for (i = 0; i < models->nelts; i++) {
        const char *id = APR_ARRAY_IDX(models, i, char *);

        if (m->route == MOCK_R_GEMINI_MODEL && !strcmp(id, m->gmodel)) {
            json_decref(list);
            return mock_send_json(m, HTTP_OK, mock_gemini_model_obj(m->r->pool, id));
        }
        json_array_append_new(list, mock_gemini_model_obj(m->r->pool, id));
    }
    if (m->route == MOCK_R_GEMINI_MODELS) {
        return mock_send_json(m, HTTP_OK, json_pack("{s:o}", "models", list));
    }
    json_decref(list);
    mock_err_set(&e, HTTP_NOT_FOUND,
                 apr_psprintf(m->r->pool,
                              "models/%s is not found for API version v1beta, "
                              "or is not supported for generateContent.",
                              m->gmodel),
                 NULL, NULL);
    return mock_send_error(m, &e);
}

/* ------------------------------------------------------------------------ */
/* OpenAI: stored responses                                                  */

/* GET /v1/responses/{id}: the completed response with that id and the
 * usual text; DELETE: the deletion receipt. */
static int mock_response_item(mock_req_t *m)
{
    if (m->route == MOCK_R_RESPONSE_DELETE) {
        return mock_send_json(m, HTTP_OK,
                              json_pack("{s:s, s:s, s:b}", "id", m->item_id, "object",
                                        "response.deleted", "deleted", 1));
    }
    return mock_send_json(m, HTTP_OK, mock_responses_obj(m, 1));
}

/* ------------------------------------------------------------------------ */
/* Rerank (Jina / Cohere shape)                                              */

typedef struct {
    int index;
    double score;
    const char *text;
} mock_rank_t;

/* The distinct lower-cased alphanumeric runs of s, as a table. */
static apr_table_t *mock_word_set(apr_pool_t *p, const char *s)
{
    apr_table_t *set = apr_table_make(p, 8);
    const char *at = s ? s : "";

    while (*at) {
        const char *start;
        char *w;

        while (*at && !apr_isalnum(*at)) {
            at++;
        }
        start = at;
        while (*at && apr_isalnum(*at)) {
            at++;
        }
        if (at > start) {
            w = apr_pstrmemdup(p, start, (apr_size_t)(at - start));
            ap_str_tolower(w);
            apr_table_setn(set, w, "1");
        }
    }
    return set;
}

typedef struct {
    apr_table_t *doc;
    int hits;
} mock_overlap_t;

static int mock_overlap_one(void *rec, const char *key, const char *value)
{
    mock_overlap_t *o = rec;

    (void)value;
    if (apr_table_get(o->doc, key)) {
        o->hits++;
    }
    return 1;
}

static int mock_rank_cmp(const void *a, const void *b)
{
    const mock_rank_t *x = a, *y = b;

    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->index - y->index;
}

static const char *mock_doc_text(json_t *doc)
{
    const char *t = json_is_string(doc) ? json_string_value(doc)
                                        : json_string_value(json_object_get(doc, "text"));
    return t ? t : "";
}

/* Score = distinct query words found in the document / distinct query words
 * (words: lower-cased alphanumeric runs); sorted by score, then index. */
static int mock_rerank(mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    json_t *docs = json_object_get(m->req, "documents");
    json_t *top_j = json_object_get(m->req, "top_n"), *results = json_array(), *o;
    int with_docs = !json_is_false(json_object_get(m->req, "return_documents"));
    apr_table_t *q =
        mock_word_set(p, json_string_value(json_object_get(m->req, "query")));
    int nq = apr_table_elts(q)->nelts, count = (int)json_array_size(docs), top = count, i;
    mock_rank_t *ranks = apr_pcalloc(p, sizeof(*ranks) * (apr_size_t)(count + 1));

    for (i = 0; i < count; i++) {
        mock_overlap_t ov;

        ranks[i].index = i;
        ranks[i].text = mock_doc_text(json_array_get(docs, (size_t)i));
        ov.doc = mock_word_set(p, ranks[i].text);
        ov.hits = 0;
        apr_table_do(mock_overlap_one, &ov, q, NULL);
        ranks[i].score = nq ? (double)ov.hits / nq : 0.0;
    }
    qsort(ranks, (size_t)count, sizeof(*ranks), mock_rank_cmp);
    if (json_is_integer(top_j) && json_integer_value(top_j) >= 1 &&
        json_integer_value(top_j) < count) {
        top = (int)json_integer_value(top_j);
    }
    for (i = 0; i < top; i++) {
        json_t *res = json_pack("{s:i, s:f}", "index", ranks[i].index, "relevance_score",
                                ranks[i].score);
        if (res && with_docs) {
            json_object_set_new(res, "document",
                                json_pack("{s:s}", "text", ranks[i].text));
        }
        json_array_append_new(results, res);
    }
    o = json_pack("{s:s, s:s, s:o, s:{s:{s:i}}}", "id", m->id, "model", m->model,
                  "results", results, "meta", "billed_units", "search_units", 1);
    if (o && m->usage) {
        json_object_set_new(
            o, "usage", json_pack("{s:I}", "total_tokens", (json_int_t)m->prompt_tokens));
    }
    return mock_send_json(m, HTTP_OK, o);
}

/* ------------------------------------------------------------------------ */
/* OpenAI: images                                                            */

/* a 1x1 transparent PNG */
#define MOCK_PNG_B64                                                                     \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"                       \
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

/* A request field as a string: JSON string or integer, or a form field. */
static const char *mock_field(const mock_req_t *m, const char *name)
{
    json_t *v = json_object_get(m->req, name);

    if (json_is_integer(v)) {
        return apr_psprintf(m->r->pool, "%" APR_INT64_T_FMT,
                            (apr_int64_t)json_integer_value(v));
    }
    return json_string_value(v);
}

/* The first file part named name (or name2), or NULL. */
static const mock_part_t *mock_file_part(const mock_req_t *m, const char *name,
                                         const char *name2)
{
    int i;

    for (i = 0; m->parts && i < m->parts->nelts; i++) {
        const mock_part_t *pt = &APR_ARRAY_IDX(m->parts, i, mock_part_t);

        if (pt->filename &&
            (!strcmp(pt->name, name) || (name2 && !strcmp(pt->name, name2)))) {
            return pt;
        }
    }
    return NULL;
}

/* n images: 1 by default, -1 when not an integer in 1..10. */
static int mock_images_count(const mock_req_t *m)
{
    const char *n = mock_field(m, "n");
    int out;

    if (!n) {
        return 1;
    }
    return mock_parse_int(n, 1, 10, &out) ? out : -1;
}

static int mock_images(mock_req_t *m)
{
    const char *fmt = mock_field(m, "response_format");
    const char *prompt = m->route == MOCK_R_IMAGES_VAR ? NULL : mock_field(m, "prompt");
    int b64 = fmt && !strcmp(fmt, "b64_json"), i;
    json_t *data = json_array();

    for (i = 0; i < m->n; i++) {
        json_t *img =
            b64 ? json_pack("{s:s}", "b64_json", MOCK_PNG_B64)
                : json_pack("{s:s}", "url",
                            apr_psprintf(m->r->pool,
                                         "https://images.mock.nebula.test/%s-%d.png",
                                         m->id, i));
        if (img && prompt) {
            json_object_set_new(img, "revised_prompt", json_string(prompt));
        }
        json_array_append_new(data, img);
    }
    return mock_send_json(m, HTTP_OK,
                          json_pack("{s:I, s:o}", "created", m->created, "data", data));
}

/* ------------------------------------------------------------------------ */
/* OpenAI: audio                                                             */

static const char *mock_speech_type(const char *fmt)
{
    static const char *const map[][2] = {{"mp3", "audio/mpeg"}, {"opus", "audio/opus"},
                                         {"aac", "audio/aac"},  {"flac", "audio/flac"},
                                         {"wav", "audio/wav"},  {"pcm", "audio/pcm"}};
    apr_size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcmp(fmt ? fmt : "mp3", map[i][0])) {
            return map[i][1];
        }
    }
    return NULL;
}

/* Characters (UTF-8 code points) of the input, markers cut out. */
static apr_size_t mock_speech_chars(mock_req_t *m)
{
    mock_text_acc_t acc;
    const char *s;
    apr_size_t chars = 0;

    memset(&acc, 0, sizeof(acc));
    acc.m = m;
    mock_ctl_init(&acc.marker);
    s = mock_markers_strip(&acc, mock_field(m, "input") ? mock_field(m, "input") : "");
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            chars++;
        }
    }
    return chars;
}

/* The speech body: 64 bytes a character, byte i = (31 i + 17) mod 256, sent
 * chunked in max(1, min(events, length)) pieces with delay_ms between. */
static int mock_speech(mock_req_t *m)
{
    apr_size_t len = 64 * mock_speech_chars(m), chunks, i, k;
    char *audio = apr_palloc(m->r->pool, len + 1);
    int events = m->ctl.events != MOCK_UNSET ? m->ctl.events : MOCK_DEFAULT_EVENTS;

    for (i = 0; i < len; i++) {
        audio[i] = (char)(unsigned char)((31 * i + 17) & 0xff);
    }
    chunks = (apr_size_t)(events < 1 ? 1 : events);
    if (chunks > len) {
        chunks = len ? len : 1;
    }
    mock_stream_begin(m, mock_speech_type(mock_field(m, "response_format")));
    apr_table_unset(m->r->headers_out, "Cache-Control");
    for (k = 0; k < chunks; k++) {
        apr_size_t from = k * len / chunks, to = (k + 1) * len / chunks;

        if (to > from) {
            APR_BRIGADE_INSERT_TAIL(m->bb, apr_bucket_pool_create(audio + from, to - from,
                                                                  m->r->pool,
                                                                  m->bb->bucket_alloc));
        }
        if (!mock_bb_flush_event(m) || !mock_stream_fault(m, (int)k + 1, NULL)) {
            return OK;
        }
    }
    return mock_stream_end(m);
}

static const char *mock_language_name(const char *code)
{
    static const char *const map[][2] = {
        {"en", "english"}, {"de", "german"},   {"fr", "french"},  {"es", "spanish"},
        {"it", "italian"}, {"ja", "japanese"}, {"zh", "chinese"}, {"pt", "portuguese"}};
    apr_size_t i;

    if (!code || !*code) {
        return "english";
    }
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcmp(code, map[i][0])) {
            return map[i][1];
        }
    }
    return code;
}

static int mock_send_text(mock_req_t *m, const char *type, const char *text)
{
    apr_size_t len = strlen(text);

    mock_set_status(m->r, HTTP_OK);
    ap_set_content_type(m->r, type);
    ap_set_content_length(m->r, (apr_off_t)len);
    if (!m->r->header_only) {
        ap_rwrite(text, (int)len, m->r);
    }
    return OK;
}

/* seconds as "HH:MM:SS" + sep + "mmm" */
static const char *mock_timestamp(apr_pool_t *p, long s, char sep)
{
    return apr_psprintf(p, "%02ld:%02ld:%02ld%c000", s / 3600, (s / 60) % 60, s % 60,
                        sep);
}

/* Transcriptions and translations: the text is N events' text; the audio
 * lasts S = audio_seconds or ceil(file bytes / 16000) seconds. */
static int mock_transcribe(mock_req_t *m)
{
    apr_pool_t *p = m->r->pool;
    const mock_part_t *file = mock_file_part(m, "file", NULL);
    const char *fmt = mock_field(m, "response_format");
    const char *text = mock_full_text(p, m->n);
    int translate = m->route == MOCK_R_TRANSLATE;
    long secs = m->ctl.audio_seconds != MOCK_UNSET ? m->ctl.audio_seconds
                                                   : (long)((file->len + 15999) / 16000);
    json_t *o;

    fmt = fmt ? fmt : "json";
    if (!strcmp(fmt, "text")) {
        return mock_send_text(m, "text/plain; charset=utf-8",
                              apr_pstrcat(p, text, "\n", NULL));
    }
    if (!strcmp(fmt, "srt") || !strcmp(fmt, "vtt")) {
        int srt = fmt[0] == 's';
        return mock_send_text(m, "text/plain; charset=utf-8",
                              apr_pstrcat(p, srt ? "1\n" : "WEBVTT\n\n",
                                          mock_timestamp(p, 0, srt ? ',' : '.'), " --> ",
                                          mock_timestamp(p, secs, srt ? ',' : '.'), "\n",
                                          text, "\n\n", NULL));
    }
    o = json_pack("{s:s}", "text", text);
    if (o && !strcmp(fmt, "verbose_json")) {
        json_object_set_new(o, "task",
                            json_string(translate ? "translate" : "transcribe"));
        json_object_set_new(
            o, "language",
            json_string(translate ? "english"
                                  : mock_language_name(mock_field(m, "language"))));
        json_object_set_new(o, "duration", json_real((double)secs));
        json_object_set_new(
            o, "segments",
            json_pack("[{s:i, s:i, s:f, s:f, s:s, s:[i, i], s:f, s:f, s:f, s:f}]", "id",
                      0, "seek", 0, "start", 0.0, "end", (double)secs, "text", text,
                      "tokens", 50364, 50365, "temperature", 0.0, "avg_logprob", -0.25,
                      "compression_ratio", 1.0, "no_speech_prob", 0.0));
    }
    if (o && m->usage) {
        json_object_set_new(
            o, "usage",
            json_pack("{s:s, s:I}", "type", "duration", "seconds", (json_int_t)secs));
    }
    return mock_send_json(m, HTTP_OK, o);
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

/* /v1beta/models/{model}:action (also /v1/models/...:action), GET
 * /v1beta/models and /v1beta/models/{model}. */
static int mock_route_gemini(mock_req_t *m, const char *path)
{
    static const struct {
        const char *action;
        mock_route_e route;
    } actions[] = {{"generateContent", MOCK_R_GEMINI},
                   {"streamGenerateContent", MOCK_R_GEMINI},
                   {"countTokens", MOCK_R_GEMINI_COUNT},
                   {"embedContent", MOCK_R_GEMINI_EMBED},
                   {"batchEmbedContents", MOCK_R_GEMINI_BATCH_EMBED}};
    const char *rest, *colon;
    apr_size_t i;

    if (!strcmp(path, "/v1beta/models")) {
        m->proto = MOCK_P_GEMINI;
        m->route = MOCK_R_GEMINI_MODELS;
        m->method = "GET";
        return 1;
    }
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
    if (strchr(rest, '/') || !*rest) {
        return 1;
    }
    if (!colon) {
        m->gmodel = apr_pstrdup(m->r->pool, rest);
        ap_unescape_url((char *)m->gmodel);
        m->route = MOCK_R_GEMINI_MODEL;
        m->method = "GET";
        return 1;
    }
    if (colon == rest) {
        return 1;
    }
    m->gmodel = apr_pstrmemdup(m->r->pool, rest, (apr_size_t)(colon - rest));
    ap_unescape_url((char *)m->gmodel);
    for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (!strcmp(colon + 1, actions[i].action)) {
            m->route = actions[i].route;
        }
    }
    if (!strcmp(colon + 1, "streamGenerateContent")) {
        const char *alt = mock_query_arg(m, "alt");

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
        {"/v1/messages/count_tokens", MOCK_R_COUNT_TOKENS, MOCK_P_ANTHROPIC, "POST"},
        {"/v1/rerank", MOCK_R_RERANK, MOCK_P_OPENAI, "POST"},
        {"/v2/rerank", MOCK_R_RERANK, MOCK_P_OPENAI, "POST"},
        {"/v1/images/generations", MOCK_R_IMAGES_GEN, MOCK_P_OPENAI, "POST"},
        {"/v1/images/edits", MOCK_R_IMAGES_EDIT, MOCK_P_OPENAI, "POST"},
        {"/v1/images/variations", MOCK_R_IMAGES_VAR, MOCK_P_OPENAI, "POST"},
        {"/v1/audio/speech", MOCK_R_SPEECH, MOCK_P_OPENAI, "POST"},
        {"/v1/audio/transcriptions", MOCK_R_TRANSCRIBE, MOCK_P_OPENAI, "POST"},
        {"/v1/audio/translations", MOCK_R_TRANSLATE, MOCK_P_OPENAI, "POST"},
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
        const char *slash = strchr(path + 20, '/');

        m->azure = 1;
        m->deployment =
            apr_pstrmemdup(m->r->pool, path + 20, (apr_size_t)(slash - path - 20));
        ap_unescape_url((char *)m->deployment);
        path = apr_pstrcat(m->r->pool, "/v1", slash, NULL);
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
    if (m->route == MOCK_R_NONE && !strncmp(path, "/v1/responses/", 14) && path[14] &&
        !strchr(path + 14, '/')) {
        int del = m->r->method_number == M_DELETE;

        m->item_id = path + 14;
        m->route = del ? MOCK_R_RESPONSE_DELETE : MOCK_R_RESPONSE_GET;
        m->method = del || m->r->method_number == M_GET ? m->r->method : "GET, DELETE";
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
/* multipart/form-data                                                       */

static const char *mock_memfind(const char *hay, apr_size_t hlen, const char *needle,
                                apr_size_t nlen)
{
    apr_size_t i;

    for (i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nlen)) {
            return hay + i;
        }
    }
    return NULL;
}

/* The boundary parameter of a multipart/form-data Content-Type, or NULL. */
static const char *mock_boundary(mock_req_t *m)
{
    const char *ct = mock_header(m, "Content-Type"), *b;

    if (!ct || ap_cstr_casecmpn(ct, "multipart/form-data", 19)) {
        return NULL;
    }
    b = ap_strcasestr(ct, "boundary=");
    if (!b) {
        return NULL;
    }
    b += 9;
    if (*b == '"') {
        const char *end = strchr(b + 1, '"');
        return end && end > b + 1
                   ? apr_pstrmemdup(m->r->pool, b + 1, (apr_size_t)(end - b - 1))
                   : NULL;
    }
    return *b ? apr_pstrmemdup(m->r->pool, b, strcspn(b, "; \t")) : NULL;
}

/* The value of parameter key in a Content-Disposition header: quoted (with
 * backslash escapes) or a token; NULL when absent. */
static const char *mock_disposition_param(apr_pool_t *p, const char *h, const char *key)
{
    apr_size_t klen = strlen(key);
    const char *at = strchr(h, ';');

    while (at && *at) {
        char *val, *out;

        at++;
        while (mock_is_space(*at)) {
            at++;
        }
        if (!ap_cstr_casecmpn(at, key, klen) && at[klen] == '=') {
            at += klen + 1;
            if (*at != '"') {
                return apr_pstrmemdup(p, at, strcspn(at, "; \t"));
            }
            val = out = apr_palloc(p, strlen(at));
            for (at++; *at && *at != '"'; at++) {
                if (*at == '\\' && at[1]) {
                    at++;
                }
                *out++ = *at;
            }
            *out = '\0';
            return val;
        }
        /* skip this parameter, minding quoted semicolons */
        while (*at && *at != ';') {
            if (*at == '"') {
                for (at++; *at && *at != '"'; at++) {
                    if (*at == '\\' && at[1]) {
                        at++;
                    }
                }
            }
            if (*at) {
                at++;
            }
        }
    }
    return NULL;
}

/* Reads one part's header block [h, end) into pt. */
static void mock_part_headers(apr_pool_t *p, const char *h, const char *end,
                              mock_part_t *pt)
{
    while (h < end) {
        const char *eol = mock_memfind(h, (apr_size_t)(end - h), "\r\n", 2);
        char *line =
            apr_pstrmemdup(p, h, eol ? (apr_size_t)(eol - h) : (apr_size_t)(end - h));
        char *colon = strchr(line, ':');

        h = eol ? eol + 2 : end;
        if (!colon) {
            continue;
        }
        *colon = '\0';
        if (!strcasecmp(line, "Content-Disposition")) {
            pt->name = mock_disposition_param(p, colon + 1, "name");
            pt->filename = mock_disposition_param(p, colon + 1, "filename");
        }
        else if (!strcasecmp(line, "Content-Type")) {
            pt->content_type = mock_trim(colon + 1);
        }
    }
}

/* Splits the body into m->parts; the plain fields also become m->req, a
 * JSON object of strings (the last of a repeated name wins). Returns an
 * error message or NULL. */
static const char *mock_multipart_parse(mock_req_t *m, const char *boundary)
{
    apr_pool_t *p = m->r->pool;
    const char *delim = apr_pstrcat(p, "--", boundary, NULL);
    const char *end = m->body + m->body_len, *at;
    apr_size_t dlen = strlen(delim);

    m->parts = apr_array_make(p, 4, sizeof(mock_part_t));
    m->req = json_object();
    apr_pool_cleanup_register(p, m->req, mock_json_release, apr_pool_cleanup_null);
    at = mock_memfind(m->body, m->body_len, delim, dlen);
    while (at) {
        const char *hdr_end, *next;
        mock_part_t pt;

        at += dlen;
        if (end - at >= 2 && at[0] == '-' && at[1] == '-') {
            return NULL; /* the close delimiter */
        }
        at = mock_memfind(at, (apr_size_t)(end - at), "\r\n", 2);
        if (!at) {
            break;
        }
        at += 2;
        hdr_end = mock_memfind(at, (apr_size_t)(end - at), "\r\n\r\n", 4);
        if (at + 2 <= end && at[0] == '\r' && at[1] == '\n') {
            hdr_end = at - 2; /* a part without headers */
        }
        if (!hdr_end) {
            break;
        }
        memset(&pt, 0, sizeof(pt));
        mock_part_headers(p, at, hdr_end, &pt);
        at = hdr_end + 4;
        next = mock_memfind(at, (apr_size_t)(end - at),
                            apr_pstrcat(p, "\r\n", delim, NULL), dlen + 2);
        if (!next) {
            break;
        }
        if (!pt.name) {
            return "a multipart/form-data part has no name";
        }
        pt.data = at;
        pt.len = (apr_size_t)(next - at);
        APR_ARRAY_PUSH(m->parts, mock_part_t) = pt;
        if (!pt.filename) {
            json_object_set_new(m->req, pt.name, mock_json_bytes(p, pt.data, pt.len));
        }
        at = next + 2;
    }
    return "malformed multipart/form-data body (no closing boundary)";
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

static int mock_route_is_multipart(const mock_req_t *m)
{
    return m->route == MOCK_R_IMAGES_EDIT || m->route == MOCK_R_IMAGES_VAR ||
           m->route == MOCK_R_TRANSCRIBE || m->route == MOCK_R_TRANSLATE;
}

/* Routes that take no request body. */
static int mock_route_is_bodyless(const mock_req_t *m)
{
    return m->route == MOCK_R_NONE || m->route == MOCK_R_HOOK ||
           m->route == MOCK_R_RESPONSE_GET || m->route == MOCK_R_RESPONSE_DELETE ||
           !strcmp(m->method, "GET");
}

/* The model of routes that do not name it in a JSON body. */
static void mock_default_model(mock_req_t *m)
{
    apr_array_header_t *models = m->conf->models;

    if (m->proto == MOCK_P_GEMINI && m->gmodel) {
        m->model = m->gmodel;
    }
    if ((m->route == MOCK_R_IMAGES_GEN || m->route == MOCK_R_IMAGES_EDIT ||
         m->route == MOCK_R_IMAGES_VAR) &&
        (!m->model || !*m->model)) {
        m->model = "dall-e-2"; /* OpenAI's default for these */
    }
    if (m->route == MOCK_R_RESPONSE_GET || m->route == MOCK_R_RESPONSE_DELETE) {
        m->model = models->nelts ? APR_ARRAY_IDX(models, 0, char *) : "gpt-4o-mini";
    }
    if (m->deployment) {
        m->model = m->deployment;
    }
}

/* Parses the body; fills model, stream, include_usage. */
static void mock_parse_request(mock_req_t *m)
{
    json_error_t jerr;
    json_t *opts;

    if (mock_route_is_bodyless(m)) {
        mock_default_model(m);
        return;
    }
    if (mock_route_is_multipart(m) && !m->body_too_large) {
        const char *boundary = mock_boundary(m);
        const char *ct = mock_header(m, "Content-Type");

        m->body_error = boundary
                            ? mock_multipart_parse(m, boundary)
                            : apr_psprintf(m->r->pool,
                                           "Invalid Content-Type header (%s), expected "
                                           "multipart/form-data.",
                                           ct ? ct : "none");
        m->model = json_string_value(json_object_get(m->req, "model"));
        mock_default_model(m);
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
    mock_default_model(m);
    if (m->proto == MOCK_P_GEMINI) {
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

/* What each route produces besides text events. */
static void mock_plan_route(mock_req_t *m)
{
    int images;

    switch (m->route) {
    case MOCK_R_CHAT:
    case MOCK_R_COMPLETIONS:
    case MOCK_R_RESPONSES:
    case MOCK_R_RESPONSE_GET:
    case MOCK_R_TRANSCRIBE:
    case MOCK_R_TRANSLATE:
        break;
    case MOCK_R_MESSAGES:
        m->think = m->ctl.thinking != MOCK_UNSET ? m->ctl.thinking : 0;
        break;
    case MOCK_R_GEMINI:
        if (m->ctl.block == 1) {
            m->n = 0;
            m->truncated = 0;
        }
        break;
    case MOCK_R_IMAGES_GEN:
    case MOCK_R_IMAGES_EDIT:
    case MOCK_R_IMAGES_VAR:
        images = mock_images_count(m);
        m->n = images > 0 ? images : 0; /* the record counts images made */
        break;
    default:
        m->n = 0;
        break;
    }
}

/* Completion size: events, capped by the protocol's max-tokens field. */
static void mock_plan_output(mock_req_t *m)
{
    json_t *max = NULL;

    m->n = m->ctl.events != MOCK_UNSET ? m->ctl.events : MOCK_DEFAULT_EVENTS;
    m->usage = m->ctl.no_usage != 1;
    if (!m->req) {
        mock_plan_route(m);
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
        m->truncated = !m->ctl.tool_call;
    }
    mock_plan_route(m);
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

/* echo_auth: whatever credential the request carried, in any protocol's place. */
static const char *mock_sent_key(mock_req_t *m)
{
    static const char *const names[] = {"x-api-key", "api-key", "x-goog-api-key", NULL};
    const char *key = mock_bearer(m);
    int i;

    for (i = 0; !key && names[i]; i++) {
        key = mock_header(m, names[i]);
    }
    return key ? key : mock_query_arg(m, "key");
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

/* A 400 naming the missing or bad parameter; returns 1. */
static int mock_bad_param(mock_req_t *m, mock_err_t *e, const char *param,
                          const char *message, const char *code)
{
    mock_err_set(e, HTTP_BAD_REQUEST, message, NULL, code);
    e->param = param;
    (void)m;
    return 1;
}

static int mock_missing(mock_req_t *m, mock_err_t *e, const char *param)
{
    return mock_bad_param(
        m, e, param, apr_psprintf(m->r->pool, "Missing required parameter: '%s'.", param),
        "missing_required_parameter");
}

/* What the new routes require of their body; true if e was filled. */
static int mock_check_route(mock_req_t *m, mock_err_t *e)
{
    apr_pool_t *p = m->r->pool;
    const char *fmt = mock_field(m, "response_format");
    json_t *docs;

    switch (m->route) {
    case MOCK_R_RERANK:
        docs = json_object_get(m->req, "documents");
        if (!json_is_string(json_object_get(m->req, "query"))) {
            return mock_missing(m, e, "query");
        }
        if (!json_is_array(docs) || !json_array_size(docs)) {
            return mock_missing(m, e, "documents");
        }
        return 0;
    case MOCK_R_IMAGES_EDIT:
    case MOCK_R_IMAGES_VAR:
    case MOCK_R_IMAGES_GEN:
        if (m->route == MOCK_R_IMAGES_EDIT && !mock_file_part(m, "image", "image[]")) {
            return mock_missing(m, e, "image");
        }
        if (m->route == MOCK_R_IMAGES_VAR && !mock_file_part(m, "image", NULL)) {
            return mock_missing(m, e, "image");
        }
        if (m->route != MOCK_R_IMAGES_VAR && !mock_field(m, "prompt")) {
            return mock_missing(m, e, "prompt");
        }
        if (mock_images_count(m) < 0) {
            return mock_bad_param(m, e, "n",
                                  apr_psprintf(p,
                                               "Invalid 'n': '%s'. Expected an integer "
                                               "between 1 and 10.",
                                               mock_field(m, "n")),
                                  "invalid_value");
        }
        if (fmt && strcmp(fmt, "url") && strcmp(fmt, "b64_json")) {
            return mock_bad_param(m, e, "response_format",
                                  apr_psprintf(p,
                                               "Invalid value: '%s'. Supported values "
                                               "are: 'url' and 'b64_json'.",
                                               fmt),
                                  "invalid_value");
        }
        return 0;
    case MOCK_R_SPEECH:
        if (!mock_field(m, "input") || !*mock_field(m, "input")) {
            return mock_missing(m, e, "input");
        }
        if (!mock_field(m, "voice")) {
            return mock_missing(m, e, "voice");
        }
        if (!mock_speech_type(fmt)) {
            return mock_bad_param(m, e, "response_format",
                                  apr_psprintf(p,
                                               "Invalid value: '%s'. Supported values "
                                               "are: 'mp3', 'opus', 'aac', 'flac', "
                                               "'wav', and 'pcm'.",
                                               fmt),
                                  "invalid_value");
        }
        return 0;
    case MOCK_R_TRANSCRIBE:
    case MOCK_R_TRANSLATE:
        if (!mock_file_part(m, "file", NULL)) {
            return mock_missing(m, e, "file");
        }
        if (fmt && strcmp(fmt, "json") && strcmp(fmt, "text") && strcmp(fmt, "srt") &&
            strcmp(fmt, "vtt") && strcmp(fmt, "verbose_json")) {
            return mock_bad_param(m, e, "response_format",
                                  apr_psprintf(p,
                                               "Invalid value: '%s'. Supported values "
                                               "are: 'json', 'text', 'srt', "
                                               "'verbose_json', and 'vtt'.",
                                               fmt),
                                  "invalid_value");
        }
        return 0;
    default:
        return 0;
    }
}

/* Validates the request body; true if e was filled. */
static int mock_check_request(mock_req_t *m, mock_err_t *e)
{
    apr_pool_t *p = m->r->pool;

    if (mock_route_is_bodyless(m)) {
        return 0;
    }
    if (m->body_error) {
        mock_err_set(e, HTTP_BAD_REQUEST, m->body_error, NULL, NULL);
        return 1;
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
    return mock_check_route(m, e);
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
    if (m->ctl.fail_first != MOCK_UNSET || m->ctl.fail_mod != MOCK_UNSET) {
        apr_uint32_t n = mock_tag_count(r, m->ctl.tag ? m->ctl.tag : "");

        if (n == 0 || (m->ctl.fail_first != MOCK_UNSET && n > (apr_uint32_t)m->ctl.fail_first)
            || (m->ctl.fail_mod != MOCK_UNSET && n % (apr_uint32_t)m->ctl.fail_mod == 0)) {
            return;
        }
        status = status != MOCK_UNSET ? status : HTTP_SERVICE_UNAVAILABLE;
    }
    if (status != MOCK_UNSET && status >= 300) {
        const char *key = m->ctl.echo_auth == 1 ? mock_sent_key(m) : NULL;

        mock_err_set(e, status,
                     key ? apr_psprintf(r->pool, "%s (the key you sent: %s)",
                                        m->ctl.error_message ? m->ctl.error_message
                                                             : "Request refused",
                                        key)
                         : m->ctl.error_message,
                     NULL, NULL);
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
        json_t *rec = json_loads(line, JSON_ALLOW_NUL, NULL);
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
/* Payments: Stripe Checkout and EPay (易支付)                                */

static void mock_set_tag_headers(mock_req_t *m);

static const char *mock_hex(apr_pool_t *p, const unsigned char *d, apr_size_t n)
{
    char *out = apr_palloc(p, 2 * n + 1);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
    out[2 * n] = '\0';
    return out;
}

/* HMAC-SHA256(key, data) as lower-case hex (OpenSSL, as Stripe's own
 * libraries sign). */
static const char *mock_hmac_sha256_hex(apr_pool_t *p, const char *key, const char *data,
                                        apr_size_t len)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, len, out, &n);
    return mock_hex(p, out, n);
}

/* Stripe-Signature for payload at t: "t=<t>,v1=<HMAC-SHA256 hex of
 * '<t>.<payload>' keyed with the whole endpoint secret>". */
static const char *mock_stripe_signature(apr_pool_t *p, const char *secret, apr_int64_t t,
                                         const char *payload)
{
    const char *signed_payload = apr_psprintf(p, "%" APR_INT64_T_FMT ".%s", t, payload);

    return apr_psprintf(p, "t=%" APR_INT64_T_FMT ",v1=%s", t,
                        mock_hmac_sha256_hex(p, secret, signed_payload,
                                             strlen(signed_payload)));
}

/* EPay's sign: non-empty parameters but sign and sign_type, sorted by name,
 * "k=v&k=v" (raw values) + key, MD5, lower-case hex. */
typedef struct {
    const char *k, *v;
} mock_kv_t;

static int mock_kv_collect(void *rec, const char *k, const char *v)
{
    if (v && *v && strcmp(k, "sign") && strcmp(k, "sign_type")) {
        mock_kv_t *e = apr_array_push((apr_array_header_t *)rec);
        e->k = k;
        e->v = v;
    }
    return 1;
}

static int mock_kv_cmp(const void *a, const void *b)
{
    return strcmp(((const mock_kv_t *)a)->k, ((const mock_kv_t *)b)->k);
}

static const char *mock_epay_sign(apr_pool_t *p, apr_table_t *params, const char *key)
{
    apr_array_header_t *arr = apr_array_make(p, 12, sizeof(mock_kv_t));
    unsigned char digest[APR_MD5_DIGESTSIZE];
    const char *s = "";
    int i;

    apr_table_do(mock_kv_collect, arr, params, NULL);
    qsort(arr->elts, (size_t)arr->nelts, sizeof(mock_kv_t), mock_kv_cmp);
    for (i = 0; i < arr->nelts; i++) {
        const mock_kv_t *e = &APR_ARRAY_IDX(arr, i, mock_kv_t);
        s = apr_pstrcat(p, s, i ? "&" : "", e->k, "=", e->v, NULL);
    }
    s = apr_pstrcat(p, s, key, NULL);
    apr_md5(digest, s, strlen(s));
    return mock_hex(p, digest, sizeof(digest));
}

/* application/x-www-form-urlencoded into a table; NULL on bad escapes. */
static apr_table_t *mock_form_parse(apr_pool_t *p, const char *text)
{
    apr_table_t *t = apr_table_make(p, 16);
    char *copy = apr_pstrdup(p, text ? text : ""), *pair, *state;

    for (pair = apr_strtok(copy, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '='), *v = eq ? eq + 1 : "";

        if (eq) {
            *eq = '\0';
        }
        /* '+' is a space, %2F a slash: form encoding, not a path */
        if (ap_unescape_urlencoded(pair) != OK || ap_unescape_urlencoded(v) != OK) {
            return NULL;
        }
        apr_table_add(t, pair, v);
    }
    return t;
}

static const char *mock_url_encode(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || strchr("-._~", c)) {
            *o++ = (char)c;
        }
        else {
            apr_snprintf(o, 4, "%%%02X", c);
            o += 3;
        }
    }
    *o = '\0';
    return out;
}

/* The payment stores: JSON lines beside the record file, one per session or
 * order (a later line for the same id wins), under the mock mutex. */
static const char *mock_store_file(mock_req_t *m, const char *what)
{
    return apr_pstrcat(m->r->pool, m->conf->record_file, ".", what, NULL);
}

static void mock_store_put(mock_req_t *m, const char *what, json_t *obj)
{
    char *line = json_dumps(obj, JSON_COMPACT);

    if (line && mock_lock(m->r)) {
        mock_record_write(m->r, mock_store_file(m, what),
                          apr_pstrcat(m->r->pool, line, "\n", NULL));
        mock_unlock();
    }
    free(line);
}

/* The last stored object whose field @a key is @a value (a new reference). */
static json_t *mock_store_get(mock_req_t *m, const char *what, const char *key,
                              const char *value)
{
    char *buf = mock_records_load(m->r, mock_store_file(m, what)), *line, *state;
    json_t *found = NULL;

    for (line = buf ? apr_strtok(buf, "\n", &state) : NULL; line;
         line = apr_strtok(NULL, "\n", &state)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *v = json_string_value(json_object_get(o, key));

        if (v && !strcmp(v, value)) {
            json_decref(found);
            found = o;
        }
        else {
            json_decref(o);
        }
    }
    return found;
}

/* One HTTP/1.1 request to an http:// URL (the gateway's webhook), the
 * connection closed after it. *status 0 when nothing came back. */
static void mock_http_call(apr_pool_t *p, const char *method, const char *url,
                           const char *headers, const char *body, int *status,
                           const char **answer)
{
    apr_uri_t u;
    apr_sockaddr_t *sa;
    apr_socket_t *s = NULL;
    apr_size_t len, blen = body ? strlen(body) : 0;
    char *req, buf[8192], *resp = "", *sep;
    apr_size_t total = 0;

    *status = 0;
    *answer = "";
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || !u.hostname || !u.scheme ||
        strcmp(u.scheme, "http") ||
        apr_sockaddr_info_get(&sa, u.hostname, APR_UNSPEC, u.port ? u.port : 80, 0, p) !=
            APR_SUCCESS ||
        apr_socket_create(&s, sa->family, SOCK_STREAM, APR_PROTO_TCP, p) != APR_SUCCESS) {
        *answer = "bad URL or no socket";
        return;
    }
    apr_socket_timeout_set(s, apr_time_from_sec(30));
    if (apr_socket_connect(s, sa) != APR_SUCCESS) {
        apr_socket_close(s);
        *answer = "connect failed";
        return;
    }
    req = apr_psprintf(p,
                       "%s %s%s%s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n%s"
                       "Content-Length: %" APR_SIZE_T_FMT "\r\n\r\n",
                       method, u.path ? u.path : "/", u.query ? "?" : "",
                       u.query ? u.query : "", u.hostname, u.port ? u.port : 80, headers,
                       blen);
    len = strlen(req);
    if (apr_socket_send(s, req, &len) == APR_SUCCESS && blen > 0) {
        len = blen;
        apr_socket_send(s, body, &len);
    }
    for (;;) {
        len = sizeof(buf);
        if (apr_socket_recv(s, buf, &len) != APR_SUCCESS && len == 0) {
            break;
        }
        resp = apr_pstrcat(p, resp, apr_pstrmemdup(p, buf, len), NULL);
        total += len;
        if (total > 1024 * 1024) {
            break;
        }
    }
    apr_socket_close(s);
    if (strncmp(resp, "HTTP/1.", 7) || strlen(resp) < 12) {
        *answer = "no HTTP answer";
        return;
    }
    *status = atoi(resp + 9);
    sep = strstr(resp, "\r\n\r\n");
    *answer = sep ? sep + 4 : "";
    if (sep && ap_strcasestr(apr_pstrmemdup(p, resp, (apr_size_t)(sep - resp)),
                             "transfer-encoding: chunked")) {
        /* de-chunk: size line, data, CRLF ... 0 */
        const char *c = sep + 4;
        char *out = "";
        for (;;) {
            long n = strtol(c, NULL, 16);
            const char *data = strstr(c, "\r\n");
            if (n <= 0 || !data || strlen(data + 2) < (apr_size_t)n) {
                break;
            }
            out = apr_pstrcat(p, out, apr_pstrmemdup(p, data + 2, (apr_size_t)n), NULL);
            c = data + 2 + n + 2;
        }
        *answer = out;
    }
}

static int mock_stripe_error(mock_req_t *m, int status, const char *type, const char *code,
                             const char *param, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "type", type, "message", message);

    if (code) {
        json_object_set_new(e, "code", json_string(code));
    }
    if (param) {
        json_object_set_new(e, "param", json_string(param));
    }
    mock_record(m, status);
    return mock_send_json(m, status, json_pack("{s:o}", "error", e));
}

/* POST /v1/checkout/sessions: a Checkout Session (mode payment, price_data
 * line items) as Stripe's API reference describes the object. */
static int mock_stripe_session(mock_req_t *m)
{
    request_rec *r = m->r;
    const char *auth = mock_header(m, "Authorization"), *key, *missing = NULL;
    static const char *const required[] = {
        "mode", "line_items[0][price_data][currency]",
        "line_items[0][price_data][unit_amount]",
        "line_items[0][price_data][product_data][name]", "line_items[0][quantity]",
        "success_url", NULL};
    apr_table_t *f;
    apr_int64_t unit, qty, now = apr_time_sec(r->request_time);
    const char *id;
    json_t *s, *meta;
    int i;

    if (!auth || strncasecmp(auth, "Bearer ", 7)) {
        return mock_stripe_error(m, HTTP_UNAUTHORIZED, "invalid_request_error", NULL, NULL,
                                 "You did not provide an API key. You need to provide your "
                                 "API key in the Authorization header, using Bearer auth "
                                 "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').");
    }
    key = auth + 7;
    if (strncmp(key, "sk_", 3) ||
        (m->conf->stripe_key && strcmp(key, m->conf->stripe_key))) {
        return mock_stripe_error(m, HTTP_UNAUTHORIZED, "invalid_request_error", NULL, NULL,
                                 apr_psprintf(r->pool, "Invalid API Key provided: %.8s****",
                                              key));
    }
    f = mock_form_parse(r->pool, m->body);
    if (!f) {
        return mock_stripe_error(m, HTTP_BAD_REQUEST, "invalid_request_error", NULL, NULL,
                                 "Invalid request body.");
    }
    for (i = 0; required[i]; i++) {
        if (!apr_table_get(f, required[i])) {
            missing = required[i];
            break;
        }
    }
    if (missing) {
        return mock_stripe_error(m, HTTP_BAD_REQUEST, "invalid_request_error",
                                 "parameter_missing", missing,
                                 apr_psprintf(r->pool, "Missing required param: %s.",
                                              missing));
    }
    unit = apr_atoi64(apr_table_get(f, "line_items[0][price_data][unit_amount]"));
    qty = apr_atoi64(apr_table_get(f, "line_items[0][quantity]"));
    if (strcmp(apr_table_get(f, "mode"), "payment") || unit < 1 || qty < 1) {
        return mock_stripe_error(m, HTTP_BAD_REQUEST, "invalid_request_error",
                                 "parameter_invalid_integer", "line_items[0][quantity]",
                                 "Invalid mode, unit_amount or quantity.");
    }
    id = mock_rand_id(r->pool, "cs_test_", 48);
    meta = json_object();
    {
        const apr_array_header_t *arr = apr_table_elts(f);
        const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
        for (i = 0; i < arr->nelts; i++) {
            apr_size_t kl = strlen(e[i].key);
            if (!strncmp(e[i].key, "metadata[", 9) && e[i].key[kl - 1] == ']') {
                json_object_set_new(
                    meta, apr_pstrmemdup(r->pool, e[i].key + 9, kl - 10),
                    json_string(e[i].val));
            }
        }
    }
    s = json_pack("{s:s, s:s, s:n, s:I, s:I, s:s?, s:s?, s:s?, s:I, s:s, s:n, s:n, s:I, "
                  "s:b, s:o, s:s, s:n, s:[s], s:s, s:s, s:s, s:s}",
                  "id", id, "object", "checkout.session", "after_expiration",
                  "amount_subtotal", (json_int_t)(unit * qty), "amount_total",
                  (json_int_t)(unit * qty), "cancel_url", apr_table_get(f, "cancel_url"),
                  "success_url", apr_table_get(f, "success_url"), "client_reference_id",
                  apr_table_get(f, "client_reference_id"), "created", (json_int_t)now,
                  "currency", apr_table_get(f, "line_items[0][price_data][currency]"),
                  "customer", "customer_email", "expires_at", (json_int_t)(now + 86400),
                  "livemode", 0, "metadata", meta, "mode", "payment", "payment_intent",
                  "payment_method_types", "card", "payment_status", "unpaid", "status",
                  "open", "ui_mode", "hosted", "url",
                  apr_pstrcat(r->pool, "https://checkout.stripe.com/c/pay/", id, NULL));
    mock_store_put(m, "stripe", s);
    mock_record(m, HTTP_OK);
    return mock_send_json(m, HTTP_OK, s);
}

/* GET|POST /submit.php: EPay's page submit: checks the merchant and the
 * signature as EPay does, keeps the order for /_mock/epay/notify. */
static int mock_epay_submit(mock_req_t *m)
{
    request_rec *r = m->r;
    apr_table_t *f = mock_form_parse(r->pool, m->body_len ? m->body : r->args);
    static const char *const required[] = {"pid", "type", "out_trade_no", "notify_url",
                                           "name", "money", "sign", NULL};
    const char *err = NULL, *trade_no;
    json_t *o;
    int i;

    for (i = 0; f && required[i] && !err; i++) {
        if (!apr_table_get(f, required[i])) {
            err = apr_pstrcat(r->pool, "missing ", required[i], NULL);
        }
    }
    if (!f || err) {
        err = err ? err : "bad parameters";
    }
    else if (!m->conf->epay_pid || strcmp(apr_table_get(f, "pid"), m->conf->epay_pid)) {
        err = "merchant (pid) does not exist";
    }
    else if (apr_table_get(f, "sign_type") && strcmp(apr_table_get(f, "sign_type"), "MD5")) {
        err = "sign_type must be MD5";
    }
    else if (strcmp(apr_table_get(f, "sign"),
                    mock_epay_sign(r->pool, f, m->conf->epay_key))) {
        err = "sign error";
    }
    apr_table_setn(r->err_headers_out, "X-Mock-Epay-Result", err ? err : "ok");
    if (err) {
        mock_record(m, HTTP_BAD_REQUEST);
        mock_set_status(r, HTTP_BAD_REQUEST);
        ap_set_content_type(r, "text/html; charset=utf-8");
        ap_rputs(err, r);
        return OK;
    }
    trade_no = apr_psprintf(r->pool, "2026%" APR_UINT64_T_FMT "%s",
                            (apr_uint64_t)apr_time_now(), mock_rand_id(r->pool, "", 4));
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "trade_no", trade_no,
                  "out_trade_no", apr_table_get(f, "out_trade_no"), "type",
                  apr_table_get(f, "type"), "name", apr_table_get(f, "name"), "money",
                  apr_table_get(f, "money"), "notify_url", apr_table_get(f, "notify_url"),
                  "return_url", apr_table_get(f, "return_url"));
    mock_store_put(m, "epay", o);
    json_decref(o);
    apr_table_setn(r->err_headers_out, "X-Mock-Epay-Trade-No", trade_no);
    mock_record(m, HTTP_OK);
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<html><body>mock cashier: order %s</body></html>",
               ap_escape_html(r->pool, trade_no));
    return OK;
}

/* POST /_mock/stripe/complete {session, url, secret, times, bad_sig, stale,
 * type, amount_total, currency}: acts as Stripe delivering the event for
 * the session: `times` correctly signed deliveries of one event (as Stripe
 * retries it, same id), then one signed with another secret (bad_sig), then
 * one correctly signed 10 minutes ago (stale). */
static int mock_admin_stripe(mock_req_t *m)
{
    request_rec *r = m->r;
    json_t *in = json_loads(m->body, 0, NULL), *s, *ev, *list;
    const char *sid = json_string_value(json_object_get(in, "session"));
    const char *url = json_string_value(json_object_get(in, "url"));
    const char *secret = json_string_value(json_object_get(in, "secret"));
    const char *type = json_string_value(json_object_get(in, "type"));
    apr_int64_t now = apr_time_sec(apr_time_now());
    int times = (int)json_integer_value(json_object_get(in, "times")), i, status;
    const char *payload, *answer, *sig, *hdr;
    char *dumped;

    if (!sid || !url || !secret) {
        json_decref(in);
        return mock_admin_simple(m, HTTP_BAD_REQUEST, "error",
                                 "want {session, url, secret[, times, bad_sig, stale, type, "
                                 "amount_total, currency]}");
    }
    s = mock_store_get(m, "stripe", "id", sid);
    if (!s) {
        json_decref(in);
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error", "no such session");
    }
    type = type ? type : "checkout.session.completed";
    if (!strcmp(type, "checkout.session.completed") ||
        !strcmp(type, "checkout.session.async_payment_succeeded")) {
        json_object_set_new(s, "status", json_string("complete"));
        json_object_set_new(s, "payment_status", json_string("paid"));
        json_object_set_new(s, "payment_intent",
                            json_string(mock_rand_id(r->pool, "pi_", 24)));
    }
    else if (!strcmp(type, "checkout.session.expired")) {
        json_object_set_new(s, "status", json_string("expired"));
    }
    if (json_object_get(in, "amount_total")) {
        json_object_set(s, "amount_total", json_object_get(in, "amount_total"));
    }
    if (json_object_get(in, "currency")) {
        json_object_set(s, "currency", json_object_get(in, "currency"));
    }
    mock_store_put(m, "stripe", s);
    ev = json_pack("{s:s, s:s, s:s, s:I, s:{s:o}, s:b, s:i, s:{s:n, s:n}, s:s}", "id",
                   mock_rand_id(r->pool, "evt_", 24), "object", "event", "api_version",
                   "2024-06-20", "created", (json_int_t)now, "data", "object", s, "livemode",
                   0, "pending_webhooks", 1, "request", "id", "idempotency_key", "type",
                   type);
    /* Stripe sends indented JSON: the signature covers these exact bytes */
    dumped = json_dumps(ev, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    payload = apr_pstrdup(r->pool, dumped ? dumped : "{}");
    free(dumped);
    list = json_array();
    times = times < 0 ? 0 : times > 100 ? 100 : json_object_get(in, "times") ? times : 1;
    for (i = 0; i < times + 2; i++) {
        const char *kind = i < times ? "good" : i == times ? "bad_sig" : "stale";

        if ((i == times && !json_is_true(json_object_get(in, "bad_sig"))) ||
            (i == times + 1 && !json_is_true(json_object_get(in, "stale")))) {
            continue;
        }
        sig = mock_stripe_signature(r->pool,
                                    i == times ? "whsec_not_the_endpoint_secret" : secret,
                                    i == times + 1 ? now - 600 : now, payload);
        hdr = apr_psprintf(r->pool,
                           "Content-Type: application/json; charset=utf-8\r\n"
                           "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
                           "Stripe-Signature: %s\r\n", sig);
        mock_http_call(r->pool, "POST", url, hdr, payload, &status, &answer);
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:s}", "kind", kind,
                                              "signature", sig, "status", status, "body",
                                              answer));
    }
    json_decref(in);
    s = json_pack("{s:O, s:s, s:o}", "event_id", json_object_get(ev, "id"), "payload",
                  payload, "deliveries", list);
    json_decref(ev);
    return mock_send_json(m, HTTP_OK, s);
}

/* POST /_mock/epay/notify {out_trade_no, times, bad_sign, money, trade_status,
 * method}: acts as EPay notifying the order's notify_url (GET with the
 * signed query, as EPay does; method POST sends the same as a form). */
static int mock_admin_epay(mock_req_t *m)
{
    request_rec *r = m->r;
    json_t *in = json_loads(m->body, 0, NULL), *o, *list;
    const char *otn = json_string_value(json_object_get(in, "out_trade_no"));
    const char *method = json_string_value(json_object_get(in, "method"));
    int times = json_object_get(in, "times")
                    ? (int)json_integer_value(json_object_get(in, "times")) : 1;
    int i, status;
    apr_table_t *params;
    const char *query = "", *answer, *url;

    if (!otn || !m->conf->epay_key) {
        json_decref(in);
        return mock_admin_simple(m, HTTP_BAD_REQUEST, "error",
                                 "want {out_trade_no[, times, bad_sign, money, trade_status, "
                                 "method]} and NebulaMockEpay");
    }
    if (!(o = mock_store_get(m, "epay", "out_trade_no", otn))) {
        json_decref(in);
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error", "no such order");
    }
    method = method && !strcmp(method, "POST") ? "POST" : "GET";
    params = apr_table_make(r->pool, 10);
    apr_table_set(params, "pid", m->conf->epay_pid);
    apr_table_set(params, "trade_no", json_string_value(json_object_get(o, "trade_no")));
    apr_table_set(params, "out_trade_no", otn);
    apr_table_set(params, "type", json_string_value(json_object_get(o, "type")));
    apr_table_set(params, "name", json_string_value(json_object_get(o, "name")));
    apr_table_set(params, "money",
                  json_string_value(json_object_get(in, "money"))
                      ? json_string_value(json_object_get(in, "money"))
                      : json_string_value(json_object_get(o, "money")));
    apr_table_set(params, "trade_status",
                  json_string_value(json_object_get(in, "trade_status"))
                      ? json_string_value(json_object_get(in, "trade_status"))
                      : "TRADE_SUCCESS");
    url = apr_pstrdup(r->pool, json_string_value(json_object_get(o, "notify_url")));
    list = json_array();
    times = times < 0 ? 0 : times > 100 ? 100 : times;
    for (i = 0; i < times + 1; i++) {
        int bad = i == times;
        const apr_array_header_t *arr;
        const apr_table_entry_t *e;
        int j;

        if (bad && !json_is_true(json_object_get(in, "bad_sign"))) {
            continue;
        }
        apr_table_set(params, "sign",
                      mock_epay_sign(r->pool, params,
                                     bad ? "not-the-merchant-key" : m->conf->epay_key));
        apr_table_set(params, "sign_type", "MD5");
        arr = apr_table_elts(params);
        e = (const apr_table_entry_t *)arr->elts;
        query = "";
        for (j = 0; j < arr->nelts; j++) {
            query = apr_pstrcat(r->pool, query, j ? "&" : "", e[j].key, "=",
                                mock_url_encode(r->pool, e[j].val), NULL);
        }
        if (!strcmp(method, "GET")) {
            mock_http_call(r->pool, "GET",
                           apr_pstrcat(r->pool, url, strchr(url, '?') ? "&" : "?", query,
                                       NULL),
                           "", NULL, &status, &answer);
        }
        else {
            mock_http_call(r->pool, "POST", url,
                           "Content-Type: application/x-www-form-urlencoded\r\n", query,
                           &status, &answer);
        }
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:s}", "kind",
                                              bad ? "bad_sign" : "good", "query", query,
                                              "status", status, "body", answer));
    }
    json_decref(o);
    json_decref(in);
    return mock_send_json(m, HTTP_OK, json_pack("{s:o}", "deliveries", list));
}

/* POST /_mock/stripe/complete, POST /_mock/epay/notify. */
static int mock_admin_payments(mock_req_t *m, const char *name)
{
    int is_stripe = !strcmp(name, "stripe");
    const char *want = is_stripe ? "/_mock/stripe/complete" : "/_mock/epay/notify";

    if (strcmp(m->path, want)) {
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error", "no such admin route");
    }
    if (m->r->method_number != M_POST) {
        return mock_admin_simple(m, HTTP_METHOD_NOT_ALLOWED, "error", "POST");
    }
    if (!m->conf->record_file || !*m->conf->record_file) {
        return mock_admin_simple(m, HTTP_NOT_FOUND, "error",
                                 "NebulaMockRecordFile is not set");
    }
    if (mock_read_body(m) != OK) {
        return mock_admin_simple(m, HTTP_BAD_REQUEST, "error", "unreadable body");
    }
    return is_stripe ? mock_admin_stripe(m) : mock_admin_epay(m);
}

/* The payment routes, before the LLM routes: 0 when the path is not one. */
static int mock_payments(mock_req_t *m, int *rc)
{
    int post = m->r->method_number == M_POST, get = m->r->method_number == M_GET;

    if (!strcmp(m->path, "/v1/checkout/sessions")) {
        m->route = MOCK_R_STRIPE_SESSION;
        m->method = "POST";
    }
    else if (!strcmp(m->path, "/submit.php")) {
        m->route = MOCK_R_EPAY_SUBMIT;
        m->method = "GET, POST";
    }
    else {
        return 0;
    }
    mock_set_tag_headers(m);
    if ((*rc = mock_read_body(m)) != OK) {
        return 1;
    }
    if (m->route == MOCK_R_STRIPE_SESSION) {
        *rc = post ? mock_stripe_session(m)
                   : mock_stripe_error(m, HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                                       NULL, NULL, "Unrecognized request URL.");
    }
    else {
        *rc = post || get ? mock_epay_submit(m) : HTTP_METHOD_NOT_ALLOWED;
    }
    return 1;
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
    case MOCK_R_RESPONSE_GET:
    case MOCK_R_RESPONSE_DELETE:
        return mock_response_item(m);
    case MOCK_R_COUNT_TOKENS:
        return mock_anthropic_count(m);
    case MOCK_R_GEMINI_COUNT:
        return mock_gemini_count(m);
    case MOCK_R_GEMINI_EMBED:
    case MOCK_R_GEMINI_BATCH_EMBED:
        return mock_gemini_embed(m);
    case MOCK_R_GEMINI_MODELS:
    case MOCK_R_GEMINI_MODEL:
        return mock_gemini_models(m);
    case MOCK_R_RERANK:
        return mock_rerank(m);
    case MOCK_R_IMAGES_GEN:
    case MOCK_R_IMAGES_EDIT:
    case MOCK_R_IMAGES_VAR:
        return mock_images(m);
    case MOCK_R_SPEECH:
        return mock_speech(m);
    case MOCK_R_TRANSCRIBE:
    case MOCK_R_TRANSLATE:
        return mock_transcribe(m);
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
    case MOCK_R_RERANK:
        return "rerank-";
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
    if (admin && (!strcmp(admin, "stripe") || !strcmp(admin, "epay"))) {
        return mock_admin_payments(m, admin);
    }
    if (admin) {
        return mock_admin(m, admin);
    }
    if (mock_payments(m, &rc)) {
        return rc;
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
    m->id = m->item_id ? m->item_id : mock_rand_id(r->pool, mock_id_prefix(m), 24);
    m->created = (json_int_t)apr_time_sec(r->request_time);
    mock_decide(m, &e);
    mock_record(m, e.status ? e.status : HTTP_OK);
    if (m->ctl.echo_auth == 1 && mock_sent_key(m)) {
        apr_table_set(r->err_headers_out, "X-Mock-Auth-Echo", mock_sent_key(m));
    }
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
    c->stripe_key = add->stripe_key ? add->stripe_key : base->stripe_key;
    c->epay_pid = add->epay_pid ? add->epay_pid : base->epay_pid;
    c->epay_key = add->epay_pid ? add->epay_key : base->epay_key;
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

static const char *mock_set_stripe_key(cmd_parms *cmd, void *d, const char *arg)
{
    (void)d;
    if (strncmp(arg, "sk_", 3)) {
        return "NebulaMockStripeKey: a Stripe secret key starts with sk_";
    }
    mock_cmd_conf(cmd)->stripe_key = arg;
    return NULL;
}

static const char *mock_set_epay(cmd_parms *cmd, void *d, const char *pid, const char *key)
{
    (void)d;
    mock_cmd_conf(cmd)->epay_pid = pid;
    mock_cmd_conf(cmd)->epay_key = key;
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
    AP_INIT_TAKE1("NebulaMockStripeKey", mock_set_stripe_key, NULL, RSRC_CONF,
                  "the only Stripe secret key POST /v1/checkout/sessions accepts"),
    AP_INIT_TAKE2("NebulaMockEpay", mock_set_epay, NULL, RSRC_CONF,
                  "EPay merchant id and key submit.php and the notify use"),
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

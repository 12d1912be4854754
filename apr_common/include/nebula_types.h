/**
 * @file nebula_types.h
 * @brief Data types the three modules exchange through their hooks and
 *        optional functions (nebula_billing.h, nebula_gov.h).
 *
 * Every pointer in these structs is owned by the request pool of the request
 * being served; a hook that stores something longer must copy it. The structs
 * are allocated by the relay; other modules read them and fill in only the
 * fields their contract names.
 */
#ifndef NEBULA_TYPES_H
#define NEBULA_TYPES_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** The wire protocol a client request speaks. */
typedef enum {
    NEBULA_PROTO_UNKNOWN = 0,
    NEBULA_PROTO_OPENAI_CHAT,
    NEBULA_PROTO_OPENAI_COMPLETIONS,
    NEBULA_PROTO_OPENAI_EMBEDDINGS,
    NEBULA_PROTO_OPENAI_MODERATIONS,
    NEBULA_PROTO_OPENAI_RESPONSES,
    NEBULA_PROTO_OPENAI_IMAGES,
    NEBULA_PROTO_OPENAI_AUDIO,
    NEBULA_PROTO_OPENAI_REALTIME,
    NEBULA_PROTO_ANTHROPIC_MESSAGES,
    NEBULA_PROTO_GEMINI,
    NEBULA_PROTO_RERANK
} nebula_proto_e;

/** Token counts of one request; -1 means "not known".
 *
 * Providers count cached input differently: OpenAI's prompt_tokens and
 * Gemini's promptTokenCount include the cached tokens, Anthropic's
 * input_tokens exclude both cache reads and cache writes. The relay copies
 * the provider's numbers and says which convention they follow; billing
 * prices the uncached part, cache reads and cache writes apart. */
typedef struct nebula_usage_t {
    apr_int64_t prompt_tokens;
    apr_int64_t completion_tokens;
    apr_int64_t cached_tokens;      /**< cache reads */
    apr_int64_t cache_write_tokens; /**< cache writes (Anthropic) */
    apr_int64_t total_tokens;
    /** Non-zero when prompt_tokens excludes cached_tokens and
     *  cache_write_tokens (Anthropic's convention). */
    int prompt_excludes_cache;
    /** Non-zero when the counts are the gateway's own estimate, not the
     *  provider's report. */
    int estimated;
} nebula_usage_t;

/** One client request, as the relay understood it. */
typedef struct nebula_req_t {
    const char *request_id;     /**< UUIDv7, echoed as X-Request-Id */
    nebula_proto_e proto;
    const char *model;          /**< as the client asked */
    const char *upstream_model; /**< after mapping, once a channel is chosen */
    int stream;
    apr_int64_t key_id;         /**< 0 when unauthenticated */
    apr_int64_t user_id;
    const char *group;          /**< the key's group */
    const char *client_ip;
    const char *route;          /**< the route's name: "chat", "messages" ... */
    apr_off_t body_bytes;       /**< size of the request body as received */
    const char *prompt_text;    /**< flattened text view, for policy matching:
                                     system, user, assistant and tool text of
                                     every protocol's body, one part a line */
    apr_int64_t prompt_tokens_estimate;
    apr_int64_t max_output_tokens; /**< what the client allows; -1 unknown */
    apr_int64_t calls;          /**< units of a per-call price (images: n); 1 */
    apr_time_t received;
} nebula_req_t;

/** The request-log row of one relayed request. Billing writes it in the
 *  transaction that settles the request (one ledger row and one log row
 *  together); without billing the relay writes it itself. */
typedef struct nebula_reqlog_t {
    const nebula_req_t *req;
    apr_int64_t channel_id;     /**< 0: no channel was tried */
    int attempts;
    int status;                 /**< HTTP status sent to the client */
    apr_int64_t latency_ms;
    apr_int64_t ttfb_ms;
    const char *error;          /**< NULL when none */
    const char *end_reason;     /**< complete, client_gone, upstream_error ... */
    nebula_usage_t usage;
} nebula_reqlog_t;

/** What governance decided; the relay carries it out. */
typedef enum {
    NEBULA_DECIDE_ALLOW = 0,
    NEBULA_DECIDE_BLOCK,
    NEBULA_DECIDE_DOWNGRADE,
    NEBULA_DECIDE_REROUTE,
    NEBULA_DECIDE_REDACT
} nebula_decision_e;

/**
 * Text rewriting governance asks of the relay. The relay calls @a fn on each
 * text string of the request body (REDACT: message contents, system prompt,
 * tool results ... of whatever protocol) or on each piece of completion text
 * before it reaches the client (the output scan). @a fn returns the text to
 * use instead, from @a p, or NULL to keep it; an output scan sets *@a stop to
 * end the response there with a well-formed final event (the piece that
 * stopped it is not delivered).
 */
typedef struct nebula_text_rewrite_t {
    const char *(*fn)(struct nebula_text_rewrite_t *rw, apr_pool_t *p,
                      const char *text, apr_size_t len, apr_size_t *out_len, int *stop);
    void *baton;
    const char *stop_message;   /**< why an output scan stopped, for the log */
} nebula_text_rewrite_t;

typedef struct nebula_decision_t {
    nebula_decision_e action;
    int http_status;            /**< for BLOCK: 403, 429 ... */
    const char *error_type;     /**< OpenAI error "type" for BLOCK */
    const char *message;        /**< shown to the client for BLOCK */
    const char *model;          /**< for DOWNGRADE: the model to use instead */
    const char *group;          /**< for REROUTE: the group to route through */
    const char *channel;        /**< for REROUTE: the name of the channel to use */
    const char *policy;         /**< name of the policy that decided */
    /** Non-terminal rewriting, with any action above: the request's text
     *  (redaction before it leaves) and the completion's (output scan). */
    nebula_text_rewrite_t *redact;
    nebula_text_rewrite_t *output;
} nebula_decision_t;

#endif /* NEBULA_TYPES_H */

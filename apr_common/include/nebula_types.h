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

/** Token counts of one request; -1 means "not known". */
typedef struct nebula_usage_t {
    apr_int64_t prompt_tokens;
    apr_int64_t completion_tokens;
    apr_int64_t cached_tokens;
    apr_int64_t total_tokens;
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
    const char *prompt_text;    /**< flattened text view, for policy matching */
    apr_int64_t prompt_tokens_estimate;
    apr_int64_t max_output_tokens; /**< what the client allows; -1 unknown */
    apr_time_t received;
} nebula_req_t;

/** What governance decided; the relay carries it out. */
typedef enum {
    NEBULA_DECIDE_ALLOW = 0,
    NEBULA_DECIDE_BLOCK,
    NEBULA_DECIDE_DOWNGRADE,
    NEBULA_DECIDE_REROUTE,
    NEBULA_DECIDE_REDACT
} nebula_decision_e;

typedef struct nebula_decision_t {
    nebula_decision_e action;
    int http_status;            /**< for BLOCK: 403, 429 ... */
    const char *error_type;     /**< OpenAI error "type" for BLOCK */
    const char *message;        /**< shown to the client for BLOCK */
    const char *model;          /**< for DOWNGRADE: the model to use instead */
    const char *group;          /**< for REROUTE: the group to route through */
    const char *policy;         /**< name of the policy that decided */
} nebula_decision_t;

#endif /* NEBULA_TYPES_H */

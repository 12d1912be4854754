/**
 * @file nebula_conv.h
 * @brief Converting between the LLM wire protocols, with OpenAI chat
 *        completions as the pivot.
 *
 * A client speaks protocol X, a channel speaks protocol Y. When X == Y the
 * relay passes the request and the answer through (only the model is
 * mapped). Otherwise the request goes X -> chat -> Y, a complete answer
 * Y -> chat -> X, and a stream's events Y -> chat chunks -> X events, each
 * step one converter (nebula_conv_anthropic.h, nebula_conv_gemini.h,
 * nebula_conv_responses.h).
 *
 * Conventions shared by every converter:
 * - Inputs are borrowed and never modified. Every json_t a converter
 *   returns or emits is owned by the pool it was given (nebula_json_own):
 *   callers never json_decref() it.
 * - A request converter returns NULL and sets *err to a message meant for
 *   the client (the relay answers 400 invalid_request_error) when the input
 *   cannot be expressed; it never crashes on any JSON value of any shape.
 * - Stream converters are state machines: create, feed one upstream event
 *   at a time (parsed JSON), finish once the upstream ended. Each call
 *   appends zero or more nebula_conv_event_t to an apr array the caller
 *   owns; the caller writes each as "event: NAME\ndata: JSON\n\n" (no
 *   "event:" line when NAME is NULL). A state machine is used by one thread.
 * - Usage parsers fill a nebula_usage_t from the provider's own usage
 *   object and return 1, or return 0 (and leave *u alone) when it is absent
 *   or malformed (non-integer counts); negative numbers are copied as they
 *   are: billing refuses them.
 */
#ifndef NEBULA_CONV_H
#define NEBULA_CONV_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>
#include "nebula_types.h"

/** One event of a converted stream. */
typedef struct {
    const char *event; /**< SSE event name; NULL: a bare "data:" event */
    json_t *data;      /**< owned by the converter's pool */
} nebula_conv_event_t;

/** Append (@a event, @a data) to @a out (an array of nebula_conv_event_t);
 *  @a data becomes owned by @a p. */
void nebula_conv_emit(apr_pool_t *p, apr_array_header_t *out, const char *event,
                      json_t *data);

/** The usage object of an OpenAI chat completion (or chunk) into *@a u:
 *  prompt_tokens includes prompt_tokens_details.cached_tokens. */
int nebula_conv_chat_usage(const json_t *usage, nebula_usage_t *u);

/** An OpenAI chat usage object for @a u (cached tokens inside
 *  prompt_tokens, whatever the convention of @a u). */
json_t *nebula_conv_chat_usage_json(const nebula_usage_t *u);

#endif /* NEBULA_CONV_H */

/**
 * @file nebula_conv_anthropic.h
 * @brief Anthropic Messages <-> OpenAI chat completions (see nebula_conv.h
 *        for the conventions).
 *
 * Covered both ways: system prompt (string or text blocks) <-> system
 * messages; text, image (base64 and url sources <-> image_url parts, data
 * URLs for base64); tool_use blocks <-> assistant tool_calls; tool_result
 * blocks <-> tool messages (several results in one user turn <-> several
 * tool messages); tools and tool_choice (auto/any/tool/none <->
 * auto/required/function/none); stop_sequences <-> stop; max_tokens,
 * temperature, top_p, top_k (dropped towards OpenAI), metadata.user_id <->
 * user; stream. Stop reasons: end_turn/stop_sequence <-> stop, max_tokens
 * <-> length, tool_use <-> tool_calls, refusal <-> content_filter.
 * Extended thinking: a thinking block becomes the chat message's
 * "reasoning_content" (towards chat) and is dropped towards Anthropic
 * (its signature cannot be made); native Anthropic channels never go
 * through these converters, so signatures survive byte for byte there.
 * Usage: Anthropic input_tokens excludes cache reads and writes; chat
 * prompt_tokens includes them (prompt_tokens_details.cached_tokens = reads).
 * Where the protocols differ: a tool_result's text blocks are joined by
 * newlines into the tool message (its images follow in the user message,
 * is_error prefixes "Error: "); system text blocks and system/developer
 * messages are joined by blank lines; tool_choice is dropped when there are
 * no tools (both APIs refuse it); a chat temperature above 1 becomes 1;
 * tool call arguments that are not a JSON object refuse a request and
 * become {} in an answer. Blocks other than text, image, tool_use,
 * tool_result and thinking (documents, server tools) are refused.
 */
#ifndef NEBULA_CONV_ANTHROPIC_H
#define NEBULA_CONV_ANTHROPIC_H

#include "nebula_conv.h"

/* ---- requests ----------------------------------------------------------- */
/** A Messages request body -> a chat completions request body. */
json_t *nebula_conv_anthropic_req_to_chat(apr_pool_t *p, const json_t *req,
                                          const char **err);
/** A chat completions request body -> a Messages request body;
 *  @a default_max_tokens when the chat request sets neither max_tokens nor
 *  max_completion_tokens (Anthropic requires it). */
json_t *nebula_conv_chat_req_to_anthropic(apr_pool_t *p, const json_t *req,
                                          apr_int64_t default_max_tokens, const char **err);

/* ---- complete responses ------------------------------------------------- */
/** A Message object -> a chat.completion object (id kept, "chatcmpl-"
 *  prefix not required). */
json_t *nebula_conv_anthropic_resp_to_chat(apr_pool_t *p, const json_t *resp);
/** A chat.completion object -> a Message object ("msg_" id derived from
 *  the chat id). */
json_t *nebula_conv_chat_resp_to_anthropic(apr_pool_t *p, const json_t *resp);

/** Anthropic's usage object (input_tokens, output_tokens,
 *  cache_read_input_tokens, cache_creation_input_tokens) into *@a u, with
 *  prompt_excludes_cache set. */
int nebula_conv_anthropic_usage(const json_t *usage, nebula_usage_t *u);

/** An Anthropic error body {"type":"error","error":{"type":T,"message":M}}
 *  for an HTTP @a status (T from the status: invalid_request_error,
 *  authentication_error, permission_error, not_found_error,
 *  request_too_large, rate_limit_error, api_error, overloaded_error). */
json_t *nebula_conv_anthropic_error(apr_pool_t *p, int status, const char *message);

/* ---- streams: Anthropic events -> chat chunks --------------------------- */
typedef struct nebula_conv_a2c_t nebula_conv_a2c_t;
nebula_conv_a2c_t *nebula_conv_a2c_create(apr_pool_t *p);
/** One Anthropic event (@a event: its SSE name, e.g. "content_block_delta";
 *  when NULL the data's "type" is used). message_start gives the first
 *  chunk (role), text deltas content chunks, tool_use blocks tool_calls
 *  chunks (index per tool block), message_delta the finish_reason chunk,
 *  ping nothing; an "error" event is emitted as {"error":{...}} in
 *  OpenAI's shape. Usage is never emitted as a chunk: read it with
 *  nebula_conv_a2c_usage(). */
void nebula_conv_a2c_feed(nebula_conv_a2c_t *st, const char *event, const json_t *data,
                          apr_array_header_t *out);
/** The usage seen so far (message_start's input and cache counts,
 *  message_delta's output count); 0 when none was seen. */
int nebula_conv_a2c_usage(const nebula_conv_a2c_t *st, nebula_usage_t *u);
/** Non-zero once message_stop was seen. */
int nebula_conv_a2c_done(const nebula_conv_a2c_t *st);

/* ---- streams: chat chunks -> Anthropic events --------------------------- */
typedef struct nebula_conv_c2a_t nebula_conv_c2a_t;
/** @a model is echoed in message_start; @a input_tokens (the gateway's
 *  estimate) is message_start's usage.input_tokens. */
nebula_conv_c2a_t *nebula_conv_c2a_create(apr_pool_t *p, const char *model,
                                          apr_int64_t input_tokens);
/** One chat.completion.chunk: message_start (first time), then
 *  content_block_start / content_block_delta (text_delta, or input_json_delta
 *  for tool calls) / content_block_stop as blocks open and close. A chunk
 *  with only usage emits nothing; its finish_reason is kept for finish().
 *  A chunk {"error":...} becomes an "error" event, which ends the stream
 *  (later chunks and finish() add nothing). delta.reasoning_content is
 *  dropped (a thinking block would need a signature). */
void nebula_conv_c2a_feed(nebula_conv_c2a_t *st, const json_t *chunk,
                          apr_array_header_t *out);
/** The upstream ended: close the open block, then message_delta (stop
 *  reason, usage.output_tokens from @a usage) and message_stop. @a usage may
 *  be NULL (output_tokens 0). */
void nebula_conv_c2a_finish(nebula_conv_c2a_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out);

#endif /* NEBULA_CONV_ANTHROPIC_H */

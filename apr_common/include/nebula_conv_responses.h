/**
 * @file nebula_conv_responses.h
 * @brief OpenAI Responses API -> chat completions, for channels that have
 *        no Responses endpoint (see nebula_conv.h).
 *
 * Requests: input (a string, or items: messages with role
 * user/system/developer/assistant and content input_text / input_image /
 * output_text parts, function_call, function_call_output) and instructions
 * -> messages; max_output_tokens -> max_tokens; tools of type "function"
 * ({type,name,description,parameters,strict}) -> chat tools (other tool
 * types are refused: the channel cannot run them); tool_choice; temperature,
 * top_p, user, parallel_tool_calls, stream; text.format (json_object,
 * json_schema) -> response_format. previous_response_id, conversation and
 * background are refused (the gateway keeps no state for converted
 * responses).
 * Answers: a chat.completion -> a Response object (status completed, or
 * incomplete with incomplete_details.reason max_output_tokens on
 * finish_reason length; output: a message item with output_text parts, and
 * one function_call item per tool call); usage -> input_tokens,
 * input_tokens_details.cached_tokens, output_tokens,
 * output_tokens_details.reasoning_tokens, total_tokens.
 * Streams: chat chunks -> response.created, response.in_progress,
 * response.output_item.added, response.content_part.added,
 * response.output_text.delta ... .done, response.content_part.done,
 * response.output_item.done, response.function_call_arguments.delta /
 * .done, then response.completed (or response.incomplete); every event has
 * "type" (= its SSE name) and an increasing "sequence_number".
 */
#ifndef NEBULA_CONV_RESPONSES_H
#define NEBULA_CONV_RESPONSES_H

#include "nebula_conv.h"

/** A Responses request body -> a chat completions request body. */
json_t *nebula_conv_responses_req_to_chat(apr_pool_t *p, const json_t *req,
                                          const char **err);
/** A chat.completion -> a Response object with id @a response_id (echoing
 *  the request's model, instructions, tools, temperature, top_p, ...). */
json_t *nebula_conv_chat_resp_to_responses(apr_pool_t *p, const json_t *resp,
                                           const json_t *req, const char *response_id);
/** A Response's usage object (input_tokens, output_tokens,
 *  input_tokens_details.cached_tokens) into *@a u (prompt_excludes_cache 0:
 *  input_tokens includes the cached ones). */
int nebula_conv_responses_usage(const json_t *usage, nebula_usage_t *u);

/* ---- streams: chat chunks -> Responses events --------------------------- */
typedef struct nebula_conv_c2r_t nebula_conv_c2r_t;
nebula_conv_c2r_t *nebula_conv_c2r_create(apr_pool_t *p, const json_t *req,
                                          const char *response_id);
/** One chat.completion.chunk (response.created and response.in_progress
 *  come before the first output). A chunk {"error":...} ends the response
 *  with response.failed. */
void nebula_conv_c2r_feed(nebula_conv_c2r_t *st, const json_t *chunk,
                          apr_array_header_t *out);
/** The upstream ended: close the open items, then response.completed (or
 *  response.incomplete after finish_reason length) carrying the full
 *  response with usage from @a usage (NULL: none). */
void nebula_conv_c2r_finish(nebula_conv_c2r_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out);

#endif /* NEBULA_CONV_RESPONSES_H */

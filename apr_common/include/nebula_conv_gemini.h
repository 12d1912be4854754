/**
 * @file nebula_conv_gemini.h
 * @brief Gemini generateContent <-> OpenAI chat completions, and Gemini
 *        embedContent <-> OpenAI embeddings (see nebula_conv.h).
 *
 * Gemini names the model in the URL (models/{model}:generateContent), so
 * request converters take it apart from the body. Covered both ways:
 * systemInstruction <-> system messages; contents (role user/model <->
 * user/assistant) with parts text, inlineData (<-> data-URL image_url),
 * fileData (<-> image_url with a plain URL), functionCall <-> assistant
 * tool_calls (ids "call_<n>" made up towards chat; the function name is
 * what links a functionResponse back), functionResponse <-> tool messages;
 * tools.functionDeclarations <-> tools; toolConfig.functionCallingConfig
 * (AUTO/ANY/NONE, allowedFunctionNames) <-> tool_choice; generationConfig
 * (temperature, topP, maxOutputTokens, stopSequences, candidateCount <-> n,
 * responseMimeType "application/json" <-> response_format json_object,
 * responseSchema <-> json_schema). Finish reasons: STOP <-> stop,
 * MAX_TOKENS <-> length, SAFETY, RECITATION, BLOCKLIST,
 * PROHIBITED_CONTENT, SPII, IMAGE_SAFETY -> content_filter (content_filter
 * -> SAFETY), a functionCall part -> tool_calls; promptFeedback.blockReason
 * -> an empty answer with finish_reason content_filter.
 * Usage (usageMetadata): promptTokenCount includes cachedContentTokenCount;
 * completion = candidatesTokenCount + thoughtsTokenCount.
 */
#ifndef NEBULA_CONV_GEMINI_H
#define NEBULA_CONV_GEMINI_H

#include "nebula_conv.h"

/* ---- requests ----------------------------------------------------------- */
/** A generateContent body for @a model -> a chat request (stream as given). */
json_t *nebula_conv_gemini_req_to_chat(apr_pool_t *p, const json_t *req, const char *model,
                                       int stream, const char **err);
/** A chat request -> a generateContent body (no model: it goes in the URL). */
json_t *nebula_conv_chat_req_to_gemini(apr_pool_t *p, const json_t *req, const char **err);

/* ---- complete responses ------------------------------------------------- */
/** A GenerateContentResponse -> a chat.completion (one choice per
 *  candidate). */
json_t *nebula_conv_gemini_resp_to_chat(apr_pool_t *p, const json_t *resp,
                                        const char *model);
/** A chat.completion -> a GenerateContentResponse (one candidate per
 *  choice, usageMetadata from usage, modelVersion from model). */
json_t *nebula_conv_chat_resp_to_gemini(apr_pool_t *p, const json_t *resp);

/** usageMetadata into *@a u (prompt_excludes_cache 0). */
int nebula_conv_gemini_usage(const json_t *usage_metadata, nebula_usage_t *u);

/** A Gemini error body {"error":{"code":STATUS,"message":M,"status":S}}
 *  (S from the HTTP status: INVALID_ARGUMENT, UNAUTHENTICATED,
 *  PERMISSION_DENIED, NOT_FOUND, RESOURCE_EXHAUSTED, INTERNAL,
 *  UNAVAILABLE, DEADLINE_EXCEEDED). */
json_t *nebula_conv_gemini_error(apr_pool_t *p, int status, const char *message);

/* ---- embeddings --------------------------------------------------------- */
/** An embedContent body {"content":{"parts":[{"text"}...]}} for @a model
 *  -> an OpenAI embeddings request (input: the joined text). */
json_t *nebula_conv_gemini_embed_req_to_openai(apr_pool_t *p, const json_t *req,
                                               const char *model, const char **err);
/** An OpenAI embeddings response -> {"embedding":{"values":[...]}}. */
json_t *nebula_conv_openai_embed_resp_to_gemini(apr_pool_t *p, const json_t *resp);

/* ---- streams: Gemini chunks -> chat chunks ------------------------------ */
typedef struct nebula_conv_g2c_t nebula_conv_g2c_t;
nebula_conv_g2c_t *nebula_conv_g2c_create(apr_pool_t *p, const char *model);
/** One streamed GenerateContentResponse (an "alt=sse" data event): the
 *  first gives a role chunk, text parts content chunks, functionCall parts
 *  tool_calls chunks, a finishReason the finish chunk. Usage is not
 *  emitted: read it with nebula_conv_g2c_usage(). */
void nebula_conv_g2c_feed(nebula_conv_g2c_t *st, const json_t *chunk,
                          apr_array_header_t *out);
/** The last usageMetadata seen; 0 when none. */
int nebula_conv_g2c_usage(const nebula_conv_g2c_t *st, nebula_usage_t *u);
/** Non-zero once a finishReason was seen. */
int nebula_conv_g2c_done(const nebula_conv_g2c_t *st);

/* ---- streams: chat chunks -> Gemini chunks ------------------------------ */
typedef struct nebula_conv_c2g_t nebula_conv_c2g_t;
nebula_conv_c2g_t *nebula_conv_c2g_create(apr_pool_t *p, const char *model);
/** One chat.completion.chunk -> zero or one GenerateContentResponse chunk
 *  (text or functionCall parts; role "model"). The finish reason is held
 *  back for finish(), so that the last chunk carries it with the usage. */
void nebula_conv_c2g_feed(nebula_conv_c2g_t *st, const json_t *chunk,
                          apr_array_header_t *out);
/** The upstream ended: one last chunk with finishReason and usageMetadata
 *  (from @a usage; omitted when NULL). */
void nebula_conv_c2g_finish(nebula_conv_c2g_t *st, const nebula_usage_t *usage,
                            apr_array_header_t *out);

#endif /* NEBULA_CONV_GEMINI_H */

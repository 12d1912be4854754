/* nebula_conv_gemini_int.h: what the two halves of the Gemini converter
 * share (nebula_conv_gemini.c: requests, answers, usage, errors, embeddings;
 * nebula_conv_gemini_stream.c: the two stream state machines). Private to
 * apr_common; the helpers are static inline, one copy per file. */
#ifndef NEBULA_CONV_GEMINI_INT_H
#define NEBULA_CONV_GEMINI_INT_H

#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "nebula_conv_gemini.h"
#include "nebula_id.h"
#include "nebula_json.h"
#include "nebula_buf.h"

/* candidateCount is at most 8; indices past this are not tracked */
#define CONV_GEMINI_MAX_CHOICES 16

/* A member read by its camelCase name, else by its snake_case spelling. */
static inline json_t *gk(const json_t *o, const char *camel)
{
    char snake[64];
    apr_size_t i, n = 0;
    json_t *v = json_object_get(o, camel);

    if (v != NULL || !json_is_object(o)) {
        return v;
    }
    for (i = 0; camel[i] != '\0' && n + 2 < sizeof(snake); ++i) {
        if (apr_isupper(camel[i])) {
            snake[n++] = '_';
            snake[n++] = (char)apr_tolower(camel[i]);
        }
        else {
            snake[n++] = camel[i];
        }
    }
    snake[n] = '\0';
    return json_object_get(o, snake);
}

static inline const char *gks(const json_t *o, const char *camel)
{
    return json_string_value(gk(o, camel));
}

static inline const char *str_or(const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

static inline const char *made_up_id(apr_pool_t *p)
{
    char uuid[NEBULA_ID_UUID_LEN + 1];
    char *s, *d;

    if (nebula_id_uuid7_into(uuid) != APR_SUCCESS) {
        return apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_now());
    }
    s = d = uuid;
    for (; *s; ++s) {
        if (*s != '-') {
            *d++ = *s;
        }
    }
    *d = '\0';
    return apr_pstrdup(p, uuid);
}

static inline const char *finish_to_chat(const char *fr, int has_calls)
{
    static const char *const filtered[] = {"SAFETY",
                                           "RECITATION",
                                           "BLOCKLIST",
                                           "PROHIBITED_CONTENT",
                                           "SPII",
                                           "IMAGE_SAFETY",
                                           "IMAGE_PROHIBITED_CONTENT",
                                           "IMAGE_RECITATION",
                                           NULL};
    int i;

    if (fr == NULL) {
        return NULL;
    }
    for (i = 0; filtered[i] != NULL; ++i) {
        if (!strcmp(fr, filtered[i])) {
            return "content_filter";
        }
    }
    if (!strcmp(fr, "MAX_TOKENS")) {
        return "length";
    }
    return has_calls ? "tool_calls" : "stop";
}

static inline const char *finish_to_gemini(const char *fr)
{
    if (fr == NULL || !strcmp(fr, "stop") || !strcmp(fr, "tool_calls") ||
        !strcmp(fr, "function_call")) {
        return "STOP";
    }
    if (!strcmp(fr, "length")) {
        return "MAX_TOKENS";
    }
    if (!strcmp(fr, "content_filter")) {
        return "SAFETY";
    }
    return "OTHER";
}

/* Parse tool-call arguments: "" is {}, anything but an object is NULL. */
static inline json_t *parse_args(const char *s)
{
    json_t *j;

    if (s == NULL) {
        return NULL;
    }
    if (strspn(s, " \t\r\n") == strlen(s)) {
        return json_object();
    }
    j = json_loads(s, JSON_DECODE_ANY, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* usageMetadata for @a u; @a thoughts of its completion tokens were thinking. */
static inline json_t *usage_to_gemini(const nebula_usage_t *u, apr_int64_t thoughts)
{
    apr_int64_t prompt = u->prompt_tokens;
    json_t *um;

    if (u->prompt_excludes_cache) {
        prompt += u->cached_tokens + u->cache_write_tokens;
    }
    if (thoughts < 0 || thoughts > u->completion_tokens) {
        thoughts = 0;
    }
    um = json_pack("{s:I, s:I, s:I}", "promptTokenCount", (json_int_t)prompt,
                   "candidatesTokenCount", (json_int_t)(u->completion_tokens - thoughts),
                   "totalTokenCount", (json_int_t)(prompt + u->completion_tokens));
    if (u->cached_tokens > 0) {
        json_object_set_new(um, "cachedContentTokenCount",
                            json_integer((json_int_t)u->cached_tokens));
    }
    if (thoughts > 0) {
        json_object_set_new(um, "thoughtsTokenCount", json_integer((json_int_t)thoughts));
    }
    return um;
}

#endif /* NEBULA_CONV_GEMINI_INT_H */

/* nebula_conv_anthropic_int.h: what the two halves of the Anthropic
 * converter share (nebula_conv_anthropic.c: requests, answers, usage,
 * errors; nebula_conv_anthropic_stream.c: the two stream state machines).
 * Private to apr_common; the helpers are static inline, one copy per file. */
#ifndef NEBULA_CONV_ANTHROPIC_INT_H
#define NEBULA_CONV_ANTHROPIC_INT_H

#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "nebula_conv_anthropic.h"
#include "nebula_json.h"

/* A JSON string for s; when s is not valid UTF-8 its bytes >= 0x80 become '?'
 * (only upstream error texts can be that broken). */
static inline json_t *string_lossy(apr_pool_t *p, const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *fixed, *c;

    if (j != NULL) {
        return j;
    }
    fixed = apr_pstrdup(p, s);
    for (c = fixed; *c; ++c) {
        if ((unsigned char)*c >= 0x80) {
            *c = '?';
        }
    }
    return json_string(fixed);
}

/* Anthropic stop_reason -> chat finish_reason (NULL stays NULL). */
static inline const char *a2c_finish(const char *stop)
{
    if (stop == NULL) {
        return NULL;
    }
    if (!strcmp(stop, "max_tokens") || !strcmp(stop, "model_context_window_exceeded")) {
        return "length";
    }
    if (!strcmp(stop, "tool_use")) {
        return "tool_calls";
    }
    if (!strcmp(stop, "refusal")) {
        return "content_filter";
    }
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* chat finish_reason -> Anthropic stop_reason (NULL: end_turn). */
static inline const char *c2a_stop(const char *finish)
{
    if (finish == NULL) {
        return "end_turn";
    }
    if (!strcmp(finish, "length")) {
        return "max_tokens";
    }
    if (!strcmp(finish, "tool_calls") || !strcmp(finish, "function_call")) {
        return "tool_use";
    }
    if (!strcmp(finish, "content_filter")) {
        return "refusal";
    }
    return "end_turn";
}

#endif /* NEBULA_CONV_ANTHROPIC_INT_H */

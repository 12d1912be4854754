/* nebula_tokens_model.c: which encoding a model name uses, and the chat
 * format's per-message overhead. The model table follows tiktoken's
 * tiktoken/model.py (prefix matching, so new dated snapshots need no code);
 * the overhead numbers are those of OpenAI's cookbook "How to count tokens
 * with tiktoken". Owns nothing: the table and results are static. */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "nebula_tokens.h"

typedef struct {
    const char *prefix;
    const char *encoding;
} tokens_model_t;

/* First match wins, so the o200k families come before the "gpt-4" catch-all. */
static const tokens_model_t tokens_models[] = {
    {"gpt-4o", NEBULA_TOKENS_O200K_BASE},
    {"gpt-4.1", NEBULA_TOKENS_O200K_BASE},
    {"gpt-4.5", NEBULA_TOKENS_O200K_BASE},
    {"gpt-5", NEBULA_TOKENS_O200K_BASE},
    {"chatgpt-4o", NEBULA_TOKENS_O200K_BASE},
    {"o1", NEBULA_TOKENS_O200K_BASE},
    {"o3", NEBULA_TOKENS_O200K_BASE},
    {"o4", NEBULA_TOKENS_O200K_BASE},
    /* o200k_harmony: o200k_base plus special tokens, the same for plain text */
    {"gpt-oss", NEBULA_TOKENS_O200K_BASE},
    {"gpt-4", NEBULA_TOKENS_CL100K_BASE},
    {"gpt-3.5", NEBULA_TOKENS_CL100K_BASE},
    {"gpt-35-turbo", NEBULA_TOKENS_CL100K_BASE}, /* Azure's spelling */
    {"text-embedding-3", NEBULA_TOKENS_CL100K_BASE},
    {"text-embedding-ada-002", NEBULA_TOKENS_CL100K_BASE},
    {"davinci-002", NEBULA_TOKENS_CL100K_BASE},
    {"babbage-002", NEBULA_TOKENS_CL100K_BASE},
};

static int tokens_has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

const char *nebula_tokens_encoding_for_model(const char *model)
{
    apr_size_t i;

    if (model == NULL) {
        return NULL;
    }
    if (tokens_has_prefix(model, "openai/")) {
        model += strlen("openai/");
    }
    if (tokens_has_prefix(model, "ft:")) {
        model += strlen("ft:");
    }
    for (i = 0; i < sizeof(tokens_models) / sizeof(tokens_models[0]); ++i) {
        const char *pre = tokens_models[i].prefix;

        /* "o1" must not claim "o10-foo": a bare o-series name ends or goes on
         * with '-' (o1, o1-mini, o3-pro-2025-06-10) */
        if (tokens_has_prefix(model, pre) &&
            (pre[0] != 'o' || model[strlen(pre)] == '\0' || model[strlen(pre)] == '-')) {
            return tokens_models[i].encoding;
        }
    }
    return NULL;
}

static apr_size_t tokens_text(const nebula_tokens_enc_t *e, const char *s, apr_size_t n)
{
    if (s == NULL || n == 0) {
        return 0;
    }
    return e ? nebula_tokens_count(e, s, n) : nebula_tokens_estimate(s, n);
}

apr_size_t nebula_tokens_count_chat(const nebula_tokens_enc_t *e,
                                    const nebula_tokens_msg_t *msgs, apr_size_t n)
{
    apr_size_t total = NEBULA_TOKENS_REPLY_PRIME, i, part[3];
    int k;

    for (i = 0; i < n; ++i) {
        const nebula_tokens_msg_t *m = &msgs[i];

        part[0] = tokens_text(e, m->role, m->role ? strlen(m->role) : 0);
        part[1] = tokens_text(e, m->content, m->content_len);
        part[2] = tokens_text(e, m->name, m->name ? strlen(m->name) : 0);
        total += NEBULA_TOKENS_PER_MESSAGE;
        for (k = 0; k < 3; ++k) {
            if (part[k] == NEBULA_TOKENS_ERROR) {
                return NEBULA_TOKENS_ERROR;
            }
            total += part[k];
        }
        if (m->name != NULL) {
            total += NEBULA_TOKENS_PER_NAME;
        }
    }
    return total;
}

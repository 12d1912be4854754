/* relay_route.c: the API routes the relay answers (OpenAI, Anthropic,
 * Gemini, Responses), and what each means for the rest of the request:
 * protocol, upstream path on an OpenAI-compatible channel, streaming, and
 * the shape of its answers and errors. */
#include <apr_strings.h>
#include "relay_private.h"

static const relay_route_t routes[] = {
    {RELAY_ROUTE_CHAT, "POST", NEBULA_PROTO_OPENAI_CHAT, "/v1/chat/completions", 1, NULL,
     RELAY_API_OPENAI},
    {RELAY_ROUTE_COMPLETIONS, "POST", NEBULA_PROTO_OPENAI_COMPLETIONS, "/v1/completions", 1,
     NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_EMBEDDINGS, "POST", NEBULA_PROTO_OPENAI_EMBEDDINGS, "/v1/embeddings", 0,
     NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_MODERATIONS, "POST", NEBULA_PROTO_OPENAI_MODERATIONS, "/v1/moderations",
     0, "omni-moderation-latest", RELAY_API_OPENAI},
    {RELAY_ROUTE_MODELS, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_MODEL, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_BILLING_SUB, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_BILLING_USAGE, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL,
     RELAY_API_OPENAI},
    {RELAY_ROUTE_MESSAGES, "POST", NEBULA_PROTO_ANTHROPIC_MESSAGES, "/v1/chat/completions",
     1, NULL, RELAY_API_ANTHROPIC},
    {RELAY_ROUTE_MESSAGES_COUNT, "POST", NEBULA_PROTO_ANTHROPIC_MESSAGES, NULL, 0, NULL,
     RELAY_API_ANTHROPIC},
    {RELAY_ROUTE_GEMINI_GENERATE, "POST", NEBULA_PROTO_GEMINI, "/v1/chat/completions", 0,
     NULL, RELAY_API_GEMINI},
    {RELAY_ROUTE_GEMINI_STREAM, "POST", NEBULA_PROTO_GEMINI, "/v1/chat/completions", 1,
     NULL, RELAY_API_GEMINI},
    {RELAY_ROUTE_GEMINI_COUNT, "POST", NEBULA_PROTO_GEMINI, NULL, 0, NULL,
     RELAY_API_GEMINI},
    {RELAY_ROUTE_GEMINI_EMBED, "POST", NEBULA_PROTO_GEMINI, "/v1/embeddings", 0, NULL,
     RELAY_API_GEMINI},
    {RELAY_ROUTE_GEMINI_MODELS, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL,
     RELAY_API_GEMINI},
    {RELAY_ROUTE_RESPONSES, "POST", NEBULA_PROTO_OPENAI_RESPONSES, "/v1/responses", 1, NULL,
     RELAY_API_RESPONSES},
    {RELAY_ROUTE_RESPONSE, NULL, NEBULA_PROTO_OPENAI_RESPONSES, "/v1/responses", 0, NULL,
     RELAY_API_OPENAI},
    {RELAY_ROUTE_REALTIME, "GET", NEBULA_PROTO_OPENAI_REALTIME, "/v1/realtime", 0, NULL,
     RELAY_API_OPENAI},
    /* media (relay_media.c): OpenAI-kind channels only */
    {RELAY_ROUTE_RERANK, "POST", NEBULA_PROTO_RERANK, "/v1/rerank", 0, NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_IMAGES_GEN, "POST", NEBULA_PROTO_OPENAI_IMAGES, "/v1/images/generations", 0,
     NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_IMAGES_EDIT, "POST", NEBULA_PROTO_OPENAI_IMAGES, "/v1/images/edits", 0, NULL,
     RELAY_API_OPENAI},
    {RELAY_ROUTE_IMAGES_VAR, "POST", NEBULA_PROTO_OPENAI_IMAGES, "/v1/images/variations", 0,
     NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_SPEECH, "POST", NEBULA_PROTO_OPENAI_AUDIO, "/v1/audio/speech", 0, NULL,
     RELAY_API_OPENAI},
    {RELAY_ROUTE_TRANSCRIBE, "POST", NEBULA_PROTO_OPENAI_AUDIO, "/v1/audio/transcriptions", 0,
     NULL, RELAY_API_OPENAI},
    {RELAY_ROUTE_TRANSLATE, "POST", NEBULA_PROTO_OPENAI_AUDIO, "/v1/audio/translations", 0,
     NULL, RELAY_API_OPENAI},
};

/* path suffixes (the two billing routes also answer without /v1, as new-api
 * and the chat front-ends expect) */
static const struct {
    const char *suffix;
    relay_route_e route;
} suffixes[] = {
    {"/v1/chat/completions", RELAY_ROUTE_CHAT},
    {"/v1/completions", RELAY_ROUTE_COMPLETIONS},
    {"/v1/embeddings", RELAY_ROUTE_EMBEDDINGS},
    {"/v1/moderations", RELAY_ROUTE_MODERATIONS},
    {"/v1/models", RELAY_ROUTE_MODELS},
    {"/v1/messages", RELAY_ROUTE_MESSAGES},
    {"/v1/messages/count_tokens", RELAY_ROUTE_MESSAGES_COUNT},
    {"/v1beta/models", RELAY_ROUTE_GEMINI_MODELS},
    {"/v1/responses", RELAY_ROUTE_RESPONSES},
    {"/v1/realtime", RELAY_ROUTE_REALTIME},
    {"/v1/rerank", RELAY_ROUTE_RERANK},
    {"/v1/images/generations", RELAY_ROUTE_IMAGES_GEN},
    {"/v1/images/edits", RELAY_ROUTE_IMAGES_EDIT},
    {"/v1/images/variations", RELAY_ROUTE_IMAGES_VAR},
    {"/v1/audio/speech", RELAY_ROUTE_SPEECH},
    {"/v1/audio/transcriptions", RELAY_ROUTE_TRANSCRIBE},
    {"/v1/audio/translations", RELAY_ROUTE_TRANSLATE},
    {"/dashboard/billing/subscription", RELAY_ROUTE_BILLING_SUB},
    {"/dashboard/billing/usage", RELAY_ROUTE_BILLING_USAGE},
};

/* Gemini's models/{model}:{method} */
static const struct {
    const char *method;
    relay_route_e route;
} gemini_methods[] = {
    {":generateContent", RELAY_ROUTE_GEMINI_GENERATE},
    {":streamGenerateContent", RELAY_ROUTE_GEMINI_STREAM},
    {":countTokens", RELAY_ROUTE_GEMINI_COUNT},
    {":embedContent", RELAY_ROUTE_GEMINI_EMBED},
};

static const relay_route_t *route_of(relay_route_e which)
{
    apr_size_t i;

    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        if (routes[i].route == which) {
            return &routes[i];
        }
    }
    return NULL;
}

static int ends_with(const char *s, apr_size_t slen, const char *suffix)
{
    apr_size_t n = strlen(suffix);

    return slen >= n && strncmp(s + slen - n, suffix, n) == 0;
}

/* /v1beta/models/{model}:{method} (and /v1/models/...: Gemini's v1) */
static const relay_route_t *match_gemini(request_rec *r, const char *uri, apr_size_t len,
                                         const char **arg)
{
    const char *m = strstr(uri, "/v1beta/models/");
    apr_size_t skip = 15, i;

    if (m == NULL) {
        if ((m = strstr(uri, "/v1/models/")) == NULL) {
            return NULL;
        }
        skip = 11;
    }
    m += skip;
    for (i = 0; i < sizeof(gemini_methods) / sizeof(gemini_methods[0]); ++i) {
        if (ends_with(uri, len, gemini_methods[i].method)) {
            apr_size_t mlen = (apr_size_t)(uri + len - m) - strlen(gemini_methods[i].method);
            if (mlen == 0) {
                return NULL;
            }
            *arg = apr_pstrndup(r->pool, m, mlen);
            return route_of(gemini_methods[i].route);
        }
    }
    return NULL;
}

const relay_route_t *relay_route_match(request_rec *r, const char **arg)
{
    const char *uri = r->uri;
    apr_size_t len = strlen(uri), i;
    const relay_route_t *g;
    const char *m;

    while (len > 1 && uri[len - 1] == '/') { /* tolerate a trailing slash */
        --len;
    }
    *arg = NULL;
    if ((g = match_gemini(r, uri, len, arg)) != NULL) {
        return g;
    }
    for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); ++i) {
        if (ends_with(uri, len, suffixes[i].suffix)) {
            return route_of(suffixes[i].route);
        }
    }
    /* /v1/models/{id}: ids may contain '/', e.g. "org/model" */
    if ((m = strstr(uri, "/v1/models/")) != NULL && m[11] != '\0') {
        *arg = apr_pstrndup(r->pool, m + 11, len - (apr_size_t)(m + 11 - uri));
        return route_of(RELAY_ROUTE_MODEL);
    }
    /* /v1/responses/{id} */
    if ((m = strstr(uri, "/v1/responses/")) != NULL && m[14] != '\0'
        && (apr_size_t)(m + 14 - uri) < len) {
        *arg = apr_pstrndup(r->pool, m + 14, len - (apr_size_t)(m + 14 - uri));
        return ap_strchr_c(*arg, '/') ? NULL : route_of(RELAY_ROUTE_RESPONSE);
    }
    return NULL;
}

const relay_route_t *relay_route_get(relay_route_e which)
{
    return route_of(which);
}

/* The names governance policies (scope "routes", matcher "route") and the
 * audit log use, in relay_route_e's order. */
static const char *const route_names[] = {
    "none", "chat", "completions", "embeddings", "moderations", "models", "model",
    "billing", "billing", "messages", "count_tokens", "gemini_generate", "gemini_stream",
    "gemini_count", "gemini_embed", "gemini_models", "responses", "response", "realtime",
    "rerank", "images", "image_edits", "image_variations", "speech", "transcriptions",
    "translations"};

const char *relay_route_name(relay_route_e which)
{
    return (unsigned)which < sizeof(route_names) / sizeof(route_names[0])
               ? route_names[which] : "none";
}

const relay_route_t *relay_route_chat(void)
{
    return route_of(RELAY_ROUTE_CHAT);
}

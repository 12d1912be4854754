/* relay_route.c: the OpenAI-protocol routes the relay answers, and what each
 * means for the rest of the request (protocol, upstream path, streaming). */
#include <apr_strings.h>
#include "relay_private.h"

static const relay_route_t routes[] = {
    {RELAY_ROUTE_CHAT, "POST", NEBULA_PROTO_OPENAI_CHAT, "/v1/chat/completions", 1, NULL},
    {RELAY_ROUTE_COMPLETIONS, "POST", NEBULA_PROTO_OPENAI_COMPLETIONS, "/v1/completions", 1,
     NULL},
    {RELAY_ROUTE_EMBEDDINGS, "POST", NEBULA_PROTO_OPENAI_EMBEDDINGS, "/v1/embeddings", 0,
     NULL},
    {RELAY_ROUTE_MODERATIONS, "POST", NEBULA_PROTO_OPENAI_MODERATIONS, "/v1/moderations",
     0, "omni-moderation-latest"},
    {RELAY_ROUTE_MODELS, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL},
    {RELAY_ROUTE_MODEL, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL},
    {RELAY_ROUTE_BILLING_SUB, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL},
    {RELAY_ROUTE_BILLING_USAGE, "GET", NEBULA_PROTO_UNKNOWN, NULL, 0, NULL},
};

/* path suffixes, in the order of routes[] (the two billing routes also
 * answer without /v1, as new-api and the chat front-ends expect) */
static const struct {
    const char *suffix;
    relay_route_e route;
} suffixes[] = {
    {"/v1/chat/completions", RELAY_ROUTE_CHAT},
    {"/v1/completions", RELAY_ROUTE_COMPLETIONS},
    {"/v1/embeddings", RELAY_ROUTE_EMBEDDINGS},
    {"/v1/moderations", RELAY_ROUTE_MODERATIONS},
    {"/v1/models", RELAY_ROUTE_MODELS},
    {"/dashboard/billing/subscription", RELAY_ROUTE_BILLING_SUB},
    {"/dashboard/billing/usage", RELAY_ROUTE_BILLING_USAGE},
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

    return slen >= n && strcmp(s + slen - n, suffix) == 0;
}

const relay_route_t *relay_route_match(request_rec *r, const char **arg)
{
    const char *uri = r->uri;
    apr_size_t len = strlen(uri), i;
    const char *m;

    while (len > 1 && uri[len - 1] == '/') { /* tolerate a trailing slash */
        --len;
    }
    *arg = NULL;
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
    return NULL;
}

const relay_route_t *relay_route_chat(void)
{
    return route_of(RELAY_ROUTE_CHAT);
}

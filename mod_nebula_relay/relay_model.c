/* relay_model.c: the allow-list of model names. A client's model name ends
 * up in upstream URLs (an Azure deployment, a Gemini models/{m}:method
 * path), in the policy engine's view, in the request log and in env vars
 * mod_log_config may print; the gateway therefore refuses, before routing,
 * every name outside a conservative character set instead of escaping it
 * in each of those places: no CR, LF, NUL, space, '%', '?', '#', '\' and
 * no ".." (a path segment walking up), at most RELAY_MODEL_MAX bytes.
 * Every real provider's model ids fit: "gpt-4o-2024-08-06",
 * "meta-llama/Llama-3-70b-chat-hf", "claude-3-5-sonnet@20240620",
 * "anthropic.claude-3-sonnet-20240229-v1:0", "qwen2.5:7b-instruct_q4". */
#include "relay_private.h"
#include "relay_model.h"
#include "nebula_ap.h"

/* 1 for the bytes a model name may hold: [A-Za-z0-9._:/@+-] */
static int model_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '+'
           || c == '-';
}

const char *relay_model_invalid(const char *model, apr_size_t len)
{
    apr_size_t i;

    if (model == NULL || len == 0) {
        return "is empty";
    }
    if (len > RELAY_MODEL_MAX) {
        return "is longer than 256 bytes";
    }
    for (i = 0; i < len; ++i) {
        if (!model_char((unsigned char)model[i])) {
            return "holds a character other than A-Z a-z 0-9 . _ : / @ + -";
        }
        if (model[i] == '.' && i + 1 < len && model[i + 1] == '.') {
            return "holds \"..\"";
        }
    }
    return NULL;
}

int relay_model_check(request_rec *r, const char *model, apr_size_t len, const char *param)
{
    const char *why = relay_model_invalid(model, len);

    if (why == NULL) {
        return OK;
    }
    /* the reason only: the name may be built to forge log lines */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "NEB01420: refused a request whose model name %s", why);
    return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "invalid_model",
                           param, "The model name %s.", why);
}

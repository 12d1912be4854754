/**
 * @file relay_model.h
 * @brief The one check every model name a client sends goes through
 *        (relay_model.c): in a JSON body, a multipart form field, a Gemini
 *        path (models/{model}:method) or a Realtime ?model=.
 */
#ifndef RELAY_MODEL_H
#define RELAY_MODEL_H

#include <httpd.h>

/** The longest model name a client may send, in bytes. */
#define RELAY_MODEL_MAX 256

/**
 * Why @a model cannot name a model, or NULL when it can: 1 to
 * RELAY_MODEL_MAX bytes of [A-Za-z0-9._:/@+-], never "..". The name is
 * later written into upstream URLs (Azure deployments, Gemini paths),
 * headers, logs and the request log, so nothing that could split a line,
 * escape a path segment or start a query may pass.
 * @param model the name, not necessarily NUL-terminated (may hold NUL)
 * @param len its length in bytes
 * @return a static phrase ("contains ..."), or NULL
 */
const char *relay_model_invalid(const char *model, apr_size_t len);

/**
 * Check a client's model name before anything routes, logs or forwards it.
 * @param r the request
 * @param model the name (may hold NUL bytes)
 * @param len its length in bytes
 * @param param the request parameter to name in the error ("model"), or NULL
 * @return OK, or DONE after a 400 invalid_request_error (code
 *         "invalid_model") in the client's protocol; the name itself is
 *         neither echoed nor logged
 */
int relay_model_check(request_rec *r, const char *model, apr_size_t len, const char *param);

#endif /* RELAY_MODEL_H */

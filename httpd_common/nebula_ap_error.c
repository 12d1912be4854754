/* nebula_ap_error.c: JSON error responses, the one way every NebulaGate
 * handler refuses a request: OpenAI-shaped, or Anthropic- or Gemini-shaped
 * when the relay noted that the client speaks that protocol
 * (NEBULA_AP_NOTE_API), so that each SDK can read its errors. */
#include <apr_strings.h>
#include <http_protocol.h>
#include <util_filter.h>
#include "nebula_ap.h"
#include "nebula_json.h"
#include "nebula_conv_anthropic.h"
#include "nebula_conv_gemini.h"

int nebula_ap_error(request_rec *r, int status, const char *type, const char *code,
                    const char *param, const char *fmt, ...)
{
    va_list ap;
    const char *message, *body, *api;

    va_start(ap, fmt);
    message = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);

    api = apr_table_get(r->notes, NEBULA_AP_NOTE_API);
    if (api && !strcmp(api, "anthropic")) {
        body = nebula_json_dumps(r->pool, nebula_conv_anthropic_error(r->pool, status,
                                                                      message), 0);
    }
    else if (api && !strcmp(api, "gemini")) {
        body = nebula_json_dumps(r->pool, nebula_conv_gemini_error(r->pool, status, message),
                                 0);
    }
    else {
        body = nebula_json_error_body(r->pool, message, type, param, code);
    }
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, strlen(body) + 1);
    ap_rvputs(r, body, "\n", NULL);
    /* DONE, not OK: callers tell "refused, answer sent" from "go on" */
    return DONE;
}

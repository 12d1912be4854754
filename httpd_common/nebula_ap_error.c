/* nebula_ap_error.c: OpenAI-shaped JSON error responses, the one way every
 * NebulaGate handler refuses a request. */
#include <apr_strings.h>
#include <http_protocol.h>
#include <util_filter.h>
#include "nebula_ap.h"
#include "nebula_json.h"

int nebula_ap_error(request_rec *r, int status, const char *type, const char *code,
                    const char *param, const char *fmt, ...)
{
    va_list ap;
    const char *message, *body;

    va_start(ap, fmt);
    message = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);

    body = nebula_json_error_body(r->pool, message, type, param, code);
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, strlen(body) + 1);
    ap_rvputs(r, body, "\n", NULL);
    /* DONE, not OK: callers tell "refused, answer sent" from "go on" */
    return DONE;
}

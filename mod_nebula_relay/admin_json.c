/* admin_json.c: the admin API's request and response plumbing: the bounded
 * JSON body and the JSON responses and OpenAI-shaped errors (the typed field
 * and query getters are in admin_fields.c). Nothing here knows a resource. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"

/* ---- responses --------------------------------------------------------- */

int admin_send(admin_req_t *a, int status, json_t *j)
{
    request_rec *r = a->r;
    const char *text;

    r->status = status;
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    if (j == NULL || status == HTTP_NO_CONTENT) {
        r->clength = 0;
        apr_table_unset(r->headers_out, "Content-Length");
        return OK;
    }
    text = apr_pstrcat(r->pool, nebula_json_dumps(r->pool, j, 0), "\n", NULL);
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, strlen(text));
    ap_rputs(text, r);
    return OK;
}

int admin_send_data(admin_req_t *a, int status, json_t *data)
{
    json_t *o = nebula_json_own(a->r->pool, json_object());

    json_object_set_new(o, "data", data ? data : json_null());
    return admin_send(a, status, o);
}

int admin_send_page(admin_req_t *a, json_t *data, apr_int64_t total, apr_int64_t page,
                    apr_int64_t per_page)
{
    json_t *o = nebula_json_own(a->r->pool, json_object());

    json_object_set_new(o, "data", data);
    json_object_set_new(o, "total", json_integer(total));
    json_object_set_new(o, "page", json_integer(page));
    json_object_set_new(o, "per_page", json_integer(per_page));
    return admin_send(a, HTTP_OK, o);
}

static const char *error_type(int status)
{
    switch (status) {
    case HTTP_UNAUTHORIZED:
        return "authentication_error";
    case HTTP_FORBIDDEN:
        return "permission_error";
    case HTTP_NOT_FOUND:
        return "not_found_error";
    case HTTP_TOO_MANY_REQUESTS:
        return "rate_limit_error";
    case HTTP_NOT_IMPLEMENTED:
        return "not_implemented";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

int admin_error(admin_req_t *a, int status, const char *code, const char *param,
                const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(a->r->pool, fmt, ap);
    va_end(ap);
    if (status == HTTP_UNAUTHORIZED) {
        apr_table_setn(a->r->err_headers_out, "WWW-Authenticate",
                       "Bearer realm=\"nebula-admin\"");
    }
    apr_table_setn(a->r->err_headers_out, "X-Content-Type-Options", "nosniff");
    return nebula_ap_error(a->r, status, error_type(status), code, param, "%s", msg);
}

static int record(admin_req_t *a, int status, const char *code, const char *param,
                  const char *fmt, va_list ap)
{
    if (a->err_status == 0) {
        a->err_status = status;
        a->err_code = code;
        a->err_param = param;
        a->err_msg = apr_pvsprintf(a->r->pool, fmt, ap);
    }
    return ADMIN_BAD;
}

int admin_invalid(admin_req_t *a, const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    record(a, HTTP_BAD_REQUEST, "invalid_field", param, fmt, ap);
    va_end(ap);
    return ADMIN_BAD;
}

int admin_fail(admin_req_t *a, int status, const char *code, const char *param,
               const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    record(a, status, code, param, fmt, ap);
    va_end(ap);
    return ADMIN_BAD;
}

int admin_send_recorded(admin_req_t *a)
{
    if (a->err_status == 0) {
        return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                           "internal error");
    }
    return admin_error(a, a->err_status, a->err_code, a->err_param, "%s", a->err_msg);
}

apr_int64_t admin_now_ms(void)
{
    return (apr_int64_t)(apr_time_now() / 1000);
}

const char *admin_i64(admin_req_t *a, apr_int64_t v)
{
    return apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT, v);
}

const char *admin_json_text(admin_req_t *a, json_t *j)
{
    return j ? nebula_json_dumps(a->r->pool, j, JSON_COMPACT) : NULL;
}

/* ---- the body ---------------------------------------------------------- */

static int is_json_type(const char *ct)
{
    const char *semi;
    apr_size_t n;

    if (ct == NULL) {
        return 0;
    }
    semi = strchr(ct, ';');
    n = semi ? (apr_size_t)(semi - ct) : strlen(ct);
    while (n > 0 && apr_isspace(ct[n - 1])) {
        --n;
    }
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static int body_error(admin_req_t *a, int st)
{
    if (st == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        admin_error(a, st, "body_too_large", NULL,
                    "the request body is larger than %d bytes", ADMIN_MAX_BODY);
    }
    else {
        admin_error(a, HTTP_BAD_REQUEST, "bad_body", NULL,
                    "the request body could not be read");
    }
    return st == HTTP_REQUEST_ENTITY_TOO_LARGE ? st : HTTP_BAD_REQUEST;
}

int admin_json_read_body(admin_req_t *a)
{
    request_rec *r = a->r;
    const char *err;
    char *buf;
    apr_size_t len;
    int st, deep = 0, depth = relay_config_srv(r->server)->json_max_depth;

    if ((st = relay_read_body(r, ADMIN_MAX_BODY, &buf, &len)) != OK) {
        return st == AP_FILTER_ERROR ? st : body_error(a, st);
    }
    if (len == 0) {
        return OK; /* no body: a->body stays NULL */
    }
    if (!is_json_type(apr_table_get(r->headers_in, "Content-Type"))) {
        admin_error(a, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                    "the request body must be application/json");
        return HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    /* never echo the parser's excerpt: bodies carry passwords and keys */
    a->body = nebula_json_parse_limited(r->pool, buf, len, NEBULA_JSON_REJECT_DUPLICATES,
                                        depth, &deep, &err);
    if (deep) {
        admin_error(a, HTTP_BAD_REQUEST, "json_too_deep", NULL,
                    "the request body nests arrays and objects deeper than %d levels",
                    depth);
        return HTTP_BAD_REQUEST;
    }
    if (a->body == NULL || !json_is_object(a->body)) {
        admin_error(a, HTTP_BAD_REQUEST, "invalid_json", NULL,
                    a->body ? "the request body must be a JSON object"
                            : "the request body is not valid JSON");
        return HTTP_BAD_REQUEST;
    }
    return OK;
}

json_t *admin_body(admin_req_t *a)
{
    if (a->body == NULL) {
        admin_fail(a, HTTP_BAD_REQUEST, "invalid_json", NULL,
                   "this request needs a JSON object body");
    }
    return a->body;
}

int admin_only_fields(admin_req_t *a, json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    int i;

    json_object_foreach(o, k, v)
    {
        for (i = 0; allowed[i] && strcmp(allowed[i], k); ++i) {
        }
        if (allowed[i] == NULL) {
            return admin_invalid(a, apr_pstrdup(a->r->pool, k), "unknown field '%s'", k);
        }
    }
    return ADMIN_SET;
}

int admin_send_found(admin_req_t *a, json_t *j, const char *what)
{
    if (j == NULL) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "id", "%s %s does not exist", what,
                           a->param[0]);
    }
    return admin_send_data(a, HTTP_OK, j);
}

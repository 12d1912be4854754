/* relay_handler.c: the content handler of the LLM relay: API routes go to
 * relay_dispatch(); NebulaPassThrough (a bring-up and diagnostics mode)
 * relays every request verbatim to one origin: the client body is read
 * (bounded), forwarded with the client's end-to-end headers, and the
 * response streamed back with mod_proxy_http's read loop (non-blocking read;
 * when the upstream pauses, FLUSH to the client and block).
 *
 * It also times every request it serves (docs/overhead.md): the gateway's
 * own time is the time in this handler minus the waits for the upstream
 * that relay_upstream.c reports (connecting, from sending the request to
 * the response head, blocking reads and waits on the body). Every request
 * counts into the host-wide histogram (relay_stats_overhead) as the handler
 * returns; NebulaOverheadHeader On also sends the figure so far as
 * x-nebula-overhead-us with the response head. Realtime sessions (hours of
 * client frames) are not timed.
 */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <mod_proxy.h>
#include "relay_private.h"
#include "nebula_ap.h"

#define OVERHEAD_HEADER "x-nebula-overhead-us"

/* The timing of one request, in its request_config. */
typedef struct {
    apr_time_t start;            /* the handler's entry */
    apr_interval_time_t waited;  /* upstream waits so far */
} relay_timing_t;

static relay_timing_t *timing_of(request_rec *r)
{
    return ap_get_module_config(r->request_config, &nebula_relay_module);
}

static void overhead_begin(request_rec *r)
{
    relay_timing_t *t = apr_pcalloc(r->pool, sizeof(*t));

    t->start = apr_time_now();
    ap_set_module_config(r->request_config, &nebula_relay_module, t);
}

/* The own time so far, µs (never negative). */
static apr_int64_t overhead_us(const relay_timing_t *t, apr_time_t now)
{
    apr_interval_time_t own = now - t->start - t->waited;

    return own > 0 ? (apr_int64_t)own : 0;
}

static void overhead_end(request_rec *r)
{
    relay_timing_t *t = timing_of(r);

    if (t != NULL) {
        relay_stats_overhead(overhead_us(t, apr_time_now()));
    }
}

apr_time_t relay_overhead_wait_begin(request_rec *r)
{
    return timing_of(r) != NULL ? apr_time_now() : 0;
}

void relay_overhead_wait_end(request_rec *r, apr_time_t since)
{
    relay_timing_t *t;

    if (since != 0 && (t = timing_of(r)) != NULL) {
        t->waited += apr_time_now() - since;
    }
}

void relay_overhead_header(request_rec *r)
{
    relay_timing_t *t = timing_of(r);

    if (t != NULL && relay_config_dir(r)->overhead_header == 1) {
        apr_table_setn(r->headers_out, OVERHEAD_HEADER,
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                    overhead_us(t, apr_time_now())));
    }
}

/* Read the whole request body into r->pool, refusing more than @a max
 * (early, from Content-Length, when the client announced it: nothing is
 * ever allocated from it). The buffer grows geometrically, with what
 * arrived, and stays NUL-terminated. AP_FILTER_ERROR: httpd's body filter
 * refused the framing (a bad chunk size, say) and answered itself. */
int relay_read_body(request_rec *r, apr_off_t max, char **body, apr_size_t *len)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_size_t cap = 0;
    apr_off_t announced;
    int seen_eos = 0;
    apr_status_t rv;

    if (cl != NULL) {
        /* digits only, no sign, no overflow (2^63 is not "very large") */
        if (!ap_parse_strict_length(&announced, cl)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "NEB01421: refused an invalid Content-Length");
            return HTTP_BAD_REQUEST;
        }
        if (announced > max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    *body = "";
    *len = 0;
    do {
        apr_off_t total = 0;
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                            HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        seen_eos = !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
        apr_brigade_length(bb, 1, &total);
        if ((apr_off_t)*len + total > max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        if (total > 0) {
            apr_size_t n = (apr_size_t)total;
            if (*len + n + 1 > cap) {
                char *buf;
                cap = (*len + n + 1) * 2;
                buf = apr_palloc(r->pool, cap);
                memcpy(buf, *body, *len);
                *body = buf;
            }
            apr_brigade_flatten(bb, *body + *len, &n);
            *len += n;
            (*body)[*len] = '\0';
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    return OK;
}

/* End-to-end headers a pass-through forwards: everything the client sent
 * except hop-by-hop fields (relay_upstream drops those). */
static apr_table_t *forward_headers(request_rec *r)
{
    apr_table_t *h = apr_table_copy(r->pool, r->headers_in);

    apr_table_unset(h, "Expect");
    apr_table_setn(h, "X-Forwarded-For", r->useragent_ip);
    return h;
}

static int copy_response_header(void *rv, const char *key, const char *val)
{
    request_rec *r = rv;
    static const char *const skip[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
                                       "Content-Length", "Date", "Server", NULL};
    int i;

    for (i = 0; skip[i]; ++i) {
        if (!ap_cstr_casecmp(key, skip[i])) {
            return 1;
        }
    }
    if (!ap_cstr_casecmp(key, "Content-Type")) {
        ap_set_content_type(r, apr_pstrdup(r->pool, val));
    }
    else {
        apr_table_add(r->headers_out, key, val);
    }
    return 1;
}

/* Stream the body to the client, flushing whenever the upstream pauses. */
static int stream_body(request_rec *r, relay_upstream_t *up)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    apr_read_type_e mode = APR_NONBLOCK_READ;
    apr_status_t rv;

    for (;;) {
        rv = relay_upstream_read_body(up, bb, mode);
        if (rv == APR_EAGAIN) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
            if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS || c->aborted) {
                relay_upstream_close(up, 1);
                return DONE;
            }
            apr_brigade_cleanup(bb);
            mode = APR_BLOCK_READ;
            continue;
        }
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                          "NEB01005: upstream broke off the response");
            relay_upstream_close(up, 1);
            apr_brigade_cleanup(bb);
            /* headers are sent: an error bucket makes the core end the
             * response unfinished (no last chunk) and close the connection,
             * as mod_proxy_http does; ap_die() would append an error page */
            ap_proxy_backend_broke(r, bb);
            ap_pass_brigade(r->output_filters, bb);
            return DONE;
        }
        if (rv == APR_EOF) {
            /* release the upstream before the last, possibly slow, client write */
            relay_upstream_close(up, 0);
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
            ap_pass_brigade(r->output_filters, bb);
            return OK;
        }
        if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS || c->aborted) {
            relay_upstream_close(up, 1);
            return DONE;
        }
        apr_brigade_cleanup(bb);
        mode = APR_NONBLOCK_READ;
    }
}

static int passthrough(request_rec *r, const relay_dir_conf_t *dc)
{
    relay_upstream_t *up;
    apr_table_t *rh;
    apr_size_t len;
    char *body;
    int rc, status;

    rc = relay_read_body(r, dc->max_body == RELAY_UNSET ? RELAY_DEFAULT_MAX_BODY : dc->max_body,
                   &body, &len);
    if (rc == AP_FILTER_ERROR) {
        return rc; /* httpd's body filter answered */
    }
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return nebula_ap_error(r, rc, "invalid_request_error", "request_too_large", NULL,
                               "Request body is larger than the gateway accepts.");
    }
    if (rc != OK) {
        return nebula_ap_error(r, rc, "invalid_request_error", NULL, NULL,
                               "Could not read the request body.");
    }
    {
        /* the configured origin (and path prefix), then the client's path */
        relay_exchange_t x = {apr_pstrcat(r->pool, dc->passthrough, r->uri, r->args ? "?" : "",
                                          r->args ? r->args : "", NULL),
                              dc->timeout == RELAY_UNSET ? RELAY_DEFAULT_TIMEOUT : dc->timeout,
                              r->method, NULL, 0, forward_headers(r), body, len,
                              1 /* trusted: configuration */};
        rc = relay_upstream_exchange(r, &x, &up, &status, &rh);
    }
    if (rc == HTTP_GATEWAY_TIME_OUT) {
        return nebula_ap_error(r, rc, "upstream_error", "upstream_timeout", NULL,
                               "The upstream did not answer in time.");
    }
    if (rc != OK) {
        return nebula_ap_error(r, HTTP_BAD_GATEWAY, "upstream_error", "upstream_unreachable",
                               NULL, "The upstream could not be reached.");
    }
    r->status = status;
    apr_table_do(copy_response_header, r, rh, NULL);
    relay_overhead_header(r);
    if (r->header_only || status == HTTP_NO_CONTENT || status == HTTP_NOT_MODIFIED) {
        relay_upstream_close(up, 0);
        return OK;
    }
    return stream_body(r, up);
}

int relay_handler(request_rec *r)
{
    const relay_dir_conf_t *dc;
    const relay_route_t *route;
    const char *arg;
    int rc;

    if (r->handler == NULL || strcmp(r->handler, RELAY_HANDLER)) {
        return DECLINED;
    }
    dc = relay_config_dir(r);
    if (dc->passthrough != NULL) {
        overhead_begin(r);
        rc = passthrough(r, dc);
        overhead_end(r);
        return rc;
    }
    if ((route = relay_route_match(r, &arg)) == NULL) {
        return nebula_ap_error(r, HTTP_NOT_FOUND, "invalid_request_error",
                               "unknown_url", NULL, "Unknown request URL: %s %s.",
                               r->method, r->uri);
    }
    if (route->route == RELAY_ROUTE_REALTIME) {
        return relay_dispatch(r, route, arg);
    }
    overhead_begin(r);
    rc = relay_dispatch(r, route, arg);
    overhead_end(r);
    return rc;
}

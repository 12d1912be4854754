/* relay_upstream.c: HTTP/1.1 exchanges with upstream origins through
 * mod_proxy's connection pooling.
 *
 * Upstreams are data (channels), so their origins are unknown when httpd reads
 * its configuration, and mod_proxy's generic reverse worker never reuses
 * connections. This file therefore keeps one private proxy_worker per origin
 * and timeout in each child, created on first use the way mod_proxy_hcheck
 * builds its workers (no balancer, no conf: nothing shared is modified), and
 * drives it with the calls mod_proxy_http uses. TLS comes from mod_ssl's proxy
 * side (SSLProxyEngine in the vhost).
 *
 * Every URL and address is checked against SSRF (relay_ssrf.c) unless the
 * caller says the URL comes from httpd's configuration: the URL and proxy
 * before a worker is touched, the addresses mod_proxy resolved before it
 * connects, and the peer of the connection once connected (mod_proxy
 * resolves again when every cached address failed), so nothing is ever
 * sent to a refused address and a name rebound between the checks is
 * caught at the one that counts.
 *
 * Every wait for the upstream (connecting, from sending a request to its
 * response head, blocking reads and polls of the body) is reported to the
 * request's timing (relay_overhead_wait_*), which subtracts it from the
 * gateway's own time.
 */
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_poll.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_proxy.h>
#include "relay_private.h"

#define RELAY_PROXY_FN "NEBULA"
#define RELAY_STATUS_LINE_MAX 8192

struct relay_upstream_t {
    request_rec *r;
    proxy_worker *worker;
    proxy_conn_rec *backend;
    request_rec *rp;           /* the fake request the response is read through */
    apr_bucket_brigade *tmp;   /* backend-allocated buckets, before transform */
    int body_ready;
    int reused;                /* a pooled connection that served before */
    const char *target;        /* request-line target: path, or the absolute URL
                                * when a forward proxy carries plain HTTP */
    const char *host;          /* the Host header: the origin's, even when proxied */
};

/* Per-child cache of workers, keyed by "vhost|origin|timeout": a pooled TLS
 * connection keeps the SSLProxy* policy (trusted CAs, peer-name check,
 * client certificate) of the vhost that opened it, so vhosts never share
 * one. Per-channel TLS or proxy settings must join this key too. */
static apr_pool_t *workers_pool;
static apr_hash_t *workers;
#if APR_HAS_THREADS
static apr_thread_mutex_t *workers_lock;
#endif

apr_status_t relay_upstream_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = relay_ssrf_child_init(pchild, s);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_create(&workers_pool, pchild);
    apr_pool_tag(workers_pool, "nebula_relay_workers");
    workers = apr_hash_make(workers_pool);
#if APR_HAS_THREADS
    return apr_thread_mutex_create(&workers_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
#else
    return APR_SUCCESS;
#endif
}

static proxy_worker *worker_create(request_rec *r, const char *origin,
                                   apr_interval_time_t timeout)
{
    proxy_worker *w = NULL;
    const char *err;

    err = ap_proxy_define_worker_ex(workers_pool, &w, NULL, NULL, origin, 0);
    if (err != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01001: cannot define an upstream worker for %s: %s", origin,
                      err);
        return NULL;
    }
    w->s->timeout = timeout;
    w->s->timeout_set = 1;
    w->s->conn_timeout = apr_time_from_sec(10);
    w->s->conn_timeout_set = 1;
    /* a failing origin is the channel breaker's business, not mod_proxy's */
    w->s->status |= PROXY_WORKER_IGNORE_ERRORS;
    if (ap_proxy_initialize_worker(w, r->server, workers_pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01002: cannot initialise the upstream worker for %s", origin);
        return NULL;
    }
    return w;
}

static proxy_worker *worker_get(request_rec *r, const char *origin, const char *proxy,
                                apr_interval_time_t timeout)
{
    const char *key = apr_psprintf(r->pool, "%pp|%s|%s|%" APR_TIME_T_FMT, (void *)r->server,
                                   origin, proxy ? proxy : "", timeout);
    proxy_worker *w;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(workers_lock);
#endif
    w = apr_hash_get(workers, key, APR_HASH_KEY_STRING);
    if (w == NULL && (w = worker_create(r, origin, timeout)) != NULL) {
        apr_hash_set(workers, apr_pstrdup(workers_pool, key), APR_HASH_KEY_STRING, w);
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(workers_lock);
#endif
    return w;
}

/* The request_rec through which the response is read, like mod_proxy_http's. */
static request_rec *fake_request(conn_rec *c, request_rec *r)
{
    apr_pool_t *pool;
    request_rec *rp;

    apr_pool_create(&pool, c->pool);
    apr_pool_tag(pool, "nebula_relay_rp");
    rp = apr_pcalloc(pool, sizeof(*rp));
    rp->pool = pool;
    rp->status = HTTP_OK;
    rp->headers_in = apr_table_make(pool, 20);
    rp->trailers_in = apr_table_make(pool, 2);
    rp->subprocess_env = apr_table_make(pool, 5);
    rp->headers_out = apr_table_make(pool, 5);
    rp->trailers_out = apr_table_make(pool, 2);
    rp->err_headers_out = apr_table_make(pool, 2);
    rp->notes = apr_table_make(pool, 5);
    rp->server = r->server;
    rp->log = r->log;
    rp->proxyreq = PROXYREQ_RESPONSE;
    rp->request_time = r->request_time;
    rp->connection = c;
    rp->output_filters = rp->proto_output_filters = c->output_filters;
    rp->input_filters = rp->proto_input_filters = c->input_filters;
    rp->useragent_ip = c->client_ip;
    rp->useragent_addr = c->client_addr;
    rp->request_config = ap_create_request_config(pool);
    return rp;
}

/* The SSRF check refused @a origin: nothing was sent. */
static int ssrf_refuse(request_rec *r, const char *origin, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "NEB01440: upstream %s refused (SSRF protection; NebulaUpstreamAllow "
                  "may allow it): %s", origin, why);
    apr_table_setn(r->notes, RELAY_NOTE_SSRF, why);
    return HTTP_FORBIDDEN;
}

/* Before any connection: the URL, and the proxy's (the proxy resolves the
 * target itself, so the target's name is resolved here, cached briefly). */
static const char *ssrf_urls(request_rec *r, const char *url, const char *proxy)
{
    const char *why = relay_ssrf_check_url(r->pool, r->server, url,
                                           proxy ? RELAY_SSRF_RESOLVE | RELAY_SSRF_CACHED : 0);

    if (why == NULL && proxy) {
        why = relay_ssrf_check_url(r->pool, r->server, proxy, RELAY_SSRF_PROXY);
        why = why ? apr_pstrcat(r->pool, "the proxy: ", why, NULL) : NULL;
    }
    return why;
}

/* After the connection is made (or a pooled one checked): its peer. */
static const char *ssrf_peer(request_rec *r, relay_upstream_t *up, const char *host)
{
    apr_sockaddr_t *peer = NULL;

    if (up->backend->sock == NULL
        || apr_socket_addr_get(&peer, APR_REMOTE, up->backend->sock) != APR_SUCCESS) {
        return "the upstream connection has no peer address";
    }
    return relay_ssrf_check_addr(r->pool, r->server, host, peer, 0);
}

static int upstream_open(request_rec *r, const char *url, const char *proxy,
                         apr_interval_time_t timeout, int guard, relay_upstream_t **pup)
{
    proxy_server_conf *pconf;
    relay_upstream_t *up;
    apr_uri_t uri, puri;
    char *target = apr_pstrdup(r->pool, url);
    char portstr[32];
    const char *origin, *host, *why = NULL;
    int rc;

    pconf = ap_get_module_config(r->server->module_config, &proxy_module);
    if (apr_uri_parse(r->pool, url, &uri) != APR_SUCCESS || !uri.hostname || !uri.scheme) {
        return guard ? ssrf_refuse(r, "(unparsable URL)", "it is not an absolute http(s) URL")
                     : HTTP_INTERNAL_SERVER_ERROR;
    }
    /* a channel's outbound proxy: http://host:port (CONNECT for https) */
    memset(&puri, 0, sizeof(puri));
    if (proxy && (apr_uri_parse(r->pool, proxy, &puri) != APR_SUCCESS || !puri.hostname)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* an IPv6 literal keeps its brackets in the worker's name and in Host */
    host = strchr(uri.hostname, ':') ? apr_pstrcat(r->pool, "[", uri.hostname, "]", NULL)
                                     : uri.hostname;
    origin = apr_psprintf(r->pool, "%s://%s:%u", uri.scheme, host,
                          uri.port ? uri.port : apr_uri_port_of_scheme(uri.scheme));
    if (guard && (why = ssrf_urls(r, url, proxy)) != NULL) {
        return ssrf_refuse(r, origin, why);
    }
    up = apr_pcalloc(r->pool, sizeof(*up));
    up->r = r;
    up->host = uri.port && uri.port != apr_uri_port_of_scheme(uri.scheme)
                   ? apr_psprintf(r->pool, "%s:%u", host, uri.port)
                   : host;
    if ((up->worker = worker_get(r, origin, proxy, timeout)) == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = ap_proxy_acquire_connection(RELAY_PROXY_FN, &up->backend, up->worker, r->server);
    if (rc != OK) {
        return rc;
    }
    up->backend->is_ssl = !strcmp(uri.scheme, "https");
    /* a pooled connection keeps its conn_rec between requests */
    up->reused = up->backend->connection != NULL;
    rc = ap_proxy_determine_connection(r->pool, r, pconf, up->worker, up->backend, &uri,
                                       &target, proxy ? puri.hostname : NULL,
                                       proxy ? (puri.port ? puri.port : 80) : 0, portstr,
                                       sizeof(portstr));
    up->target = target;
    /* the addresses mod_proxy is about to connect to (the proxy's, if any) */
    if (rc == OK && guard
        && (why = relay_ssrf_check_addr(r->pool, r->server, proxy ? puri.hostname
                                                                  : uri.hostname,
                                        up->backend->addr, 1)) != NULL) {
        relay_upstream_close(up, 1);
        return ssrf_refuse(r, origin, proxy ? apr_pstrcat(r->pool, "the proxy: ", why, NULL)
                                            : why);
    }
    if (rc == OK) {
        apr_time_t since = relay_overhead_wait_begin(r);
        if (ap_proxy_connect_backend(RELAY_PROXY_FN, up->backend, up->worker, r->server)
            != OK) {
            rc = HTTP_SERVICE_UNAVAILABLE;
        }
        relay_overhead_wait_end(r, since);
    }
    /* a kept-alive connection's peer was checked when it was made (mod_proxy
     * forgets the conn_rec of a connection it had to make again) */
    if (rc == OK && guard && up->backend->connection == NULL
        && (why = ssrf_peer(r, up, proxy ? puri.hostname : uri.hostname)) != NULL) {
        relay_upstream_close(up, 1);
        return ssrf_refuse(r, origin, proxy ? apr_pstrcat(r->pool, "the proxy: ", why, NULL)
                                            : why);
    }
    if (rc == OK) {
        rc = ap_proxy_connection_create_ex(RELAY_PROXY_FN, up->backend, r);
    }
    if (rc != OK) {
        relay_upstream_close(up, 1);
        return rc;
    }
    *pup = up;
    return OK;
}

int relay_upstream_open(request_rec *r, const char *url, const char *proxy,
                        apr_interval_time_t timeout, relay_upstream_t **pup)
{
    return upstream_open(r, url, proxy, timeout, 1, pup);
}

static int hop_by_hop(const char *name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                      "TE", "Trailer", "Transfer-Encoding",
                                      "Upgrade", "Content-Length", "Host", NULL};
    int i;

    for (i = 0; hop[i]; ++i) {
        if (!ap_cstr_casecmp(name, hop[i])) {
            return 1;
        }
    }
    return 0;
}

static int add_header(void *bb, const char *key, const char *val)
{
    if (!hop_by_hop(key) && !relay_trace_header_name(key)) {
        apr_brigade_printf(bb, NULL, NULL, "%s: %s\r\n", key, val);
    }
    return 1;
}

int relay_upstream_send(relay_upstream_t *up, const char *method, const char *path,
                        apr_table_t *headers, const char *body, apr_size_t len)
{
    conn_rec *c = up->backend->connection;
    apr_bucket_brigade *bb = apr_brigade_create(up->r->pool, c->bucket_alloc);

    apr_brigade_printf(bb, NULL, NULL, "%s %s HTTP/1.1\r\nHost: %s", method,
                       path ? path : up->target, up->host);
    apr_brigade_puts(bb, NULL, NULL, "\r\n");
    apr_table_do(add_header, bb, headers, NULL);
    relay_trace_headers(up->r, bb); /* the client's own are replaced */
    apr_brigade_printf(bb, NULL, NULL, "Content-Length: %" APR_SIZE_T_FMT "\r\n\r\n",
                       len);
    if (len > 0) {
        APR_BRIGADE_INSERT_TAIL(
            bb, apr_bucket_transient_create(body, len, c->bucket_alloc));
    }
    if (ap_proxy_pass_brigade(c->bucket_alloc, up->r, up->backend, c, bb, 1)
        != OK) {
        up->backend->close = 1;
        return HTTP_BAD_GATEWAY;
    }
    return OK;
}

static int parse_status_line(const char *line, int *status)
{
    /* "HTTP/1.1 200 OK": version, three digits, optional reason */
    if (strncmp(line, "HTTP/1.", 7) || !apr_isdigit(line[7]) || line[8] != ' '
        || !apr_isdigit(line[9]) || !apr_isdigit(line[10]) || !apr_isdigit(line[11])
        || (line[12] && line[12] != ' ')) {
        return 0;
    }
    *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return *status >= 100;
}

/* Read the status line and headers; interim 1xx answers are skipped, except
 * 101 when @a upgrade (the answer hoped for). */
static int read_head(relay_upstream_t *up, int *status, apr_table_t **headers, int upgrade)
{
    conn_rec *c = up->backend->connection;
    apr_bucket_brigade *bb = apr_brigade_create(up->r->pool, c->bucket_alloc);
    char *line;
    apr_size_t len;
    apr_status_t rv;

    up->rp = fake_request(c, up->r);
    do {
        line = NULL;
        rv = ap_rgetline(&line, RELAY_STATUS_LINE_MAX, &len, up->rp, 0, bb);
        if (rv == APR_SUCCESS && len == 0) { /* one stray CRLF is tolerated */
            rv = ap_rgetline(&line, RELAY_STATUS_LINE_MAX, &len, up->rp, 0, bb);
        }
        if (rv != APR_SUCCESS || !parse_status_line(line, status)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, up->r,
                          "NEB01003: no valid status line from upstream %s:%d",
                          up->backend->hostname, up->backend->port);
            up->backend->close = 1;
            return APR_STATUS_IS_TIMEUP(rv) ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY;
        }
        apr_table_clear(up->rp->headers_in);
        ap_get_mime_headers_core(up->rp, bb);
        if (up->rp->status != HTTP_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, up->r,
                          "NEB01004: malformed response headers from upstream %s:%d",
                          up->backend->hostname, up->backend->port);
            up->backend->close = 1;
            return HTTP_BAD_GATEWAY;
        }
    } while (*status < 200 && !(upgrade && *status == HTTP_SWITCHING_PROTOCOLS));
    apr_brigade_destroy(bb);
    /* after a 101 the connection carries the new protocol, read raw from
     * relay_upstream_conn()'s filters (what the core input filter holds
     * already comes first); never back to the pool */
    if (*status == HTTP_SWITCHING_PROTOCOLS) {
        up->backend->close = 1;
    }
    else {
        /* the body is framed by the response headers, which HTTP_IN reads
         * from the fake request's headers_in */
        ap_proxy_pre_http_request(c, up->rp);
        up->tmp = apr_brigade_create(up->r->pool, c->bucket_alloc);
        up->body_ready = 1;
    }
    *headers = up->rp->headers_in;
    return OK;
}

int relay_upstream_read_head(relay_upstream_t *up, int *status, apr_table_t **headers)
{
    return read_head(up, status, headers, 0);
}

apr_status_t relay_upstream_read_body(relay_upstream_t *up, apr_bucket_brigade *bb,
                                      apr_read_type_e mode)
{
    apr_time_t since = mode == APR_BLOCK_READ ? relay_overhead_wait_begin(up->r) : 0;
    apr_status_t rv;
    apr_bucket *e;

    rv = ap_get_brigade(up->rp->input_filters, up->tmp, AP_MODE_READBYTES, mode,
                        AP_IOBUFSIZE);
    relay_overhead_wait_end(up->r, since);
    if (mode == APR_NONBLOCK_READ
        && (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(up->tmp)))) {
        return APR_EAGAIN;
    }
    if (rv != APR_SUCCESS) {
        up->backend->close = 1;
        return rv;
    }
    /* buckets of the backend connection must not outlive it */
    ap_proxy_buckets_lifetime_transform(up->r, up->tmp, bb);
    apr_brigade_cleanup(up->tmp);
    if (!APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
        e = APR_BRIGADE_LAST(bb);
        apr_bucket_delete(e);
        for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            apr_bucket_setaside(e, up->r->pool);
        }
        return APR_EOF;
    }
    return APR_SUCCESS;
}

void relay_upstream_close(relay_upstream_t *up, int broken)
{
    if (up->backend == NULL) {
        return;
    }
    if (broken) {
        up->backend->close = 1;
    }
    if (up->rp) {
        apr_pool_destroy(up->rp->pool);
        up->rp = NULL;
    }
    ap_proxy_release_connection(RELAY_PROXY_FN, up->backend, up->r->server);
    up->backend = NULL;
}

int relay_upstream_exchange(request_rec *r, const relay_exchange_t *x, relay_upstream_t **pup,
                            int *status, apr_table_t **headers)
{
    int attempt, rc = HTTP_BAD_GATEWAY, reused;
    relay_upstream_t *up;

    /* a pooled connection the upstream closed while it was idle shows as no
     * answer at all: try once more on a fresh one (as mod_proxy_http does) */
    for (attempt = 0; attempt < 2; ++attempt) {
        apr_time_t since;

        if ((rc = upstream_open(r, x->url, x->proxy, x->timeout, !x->trusted, &up)) != OK) {
            return rc;
        }
        reused = up->reused;
        since = relay_overhead_wait_begin(r);
        rc = relay_upstream_send(up, x->method, NULL, x->headers, x->body, x->len);
        if (rc == OK && x->first_byte > 0) {
            /* the answer's head may take this long; the body, x->timeout */
            apr_socket_timeout_set(up->backend->sock, x->first_byte);
        }
        if (rc == OK && (rc = relay_upstream_read_head(up, status, headers)) == OK) {
            relay_overhead_wait_end(r, since);
            apr_socket_timeout_set(up->backend->sock, x->timeout);
            *pup = up;
            return OK;
        }
        relay_overhead_wait_end(r, since);
        relay_upstream_close(up, 1);
        if (!reused || rc == HTTP_GATEWAY_TIME_OUT) {
            break;
        }
    }
    return rc;
}

apr_status_t relay_upstream_wait(relay_upstream_t *up, apr_interval_time_t timeout)
{
    apr_pollfd_t pfd = {0};
    apr_int32_t n = 0;
    apr_time_t since = relay_overhead_wait_begin(up->r);
    apr_status_t rv;

    pfd.p = up->r->pool;
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = up->backend->sock;
    pfd.reqevents = APR_POLLIN;
    rv = apr_poll(&pfd, 1, &n, timeout);
    relay_overhead_wait_end(up->r, since);
    return rv;
}

/* ---- protocol upgrades (the Realtime API's WebSocket) ------------------- */

int relay_upstream_send_upgrade(relay_upstream_t *up, const char *protocol,
                                apr_table_t *headers)
{
    conn_rec *c = up->backend->connection;
    apr_bucket_brigade *bb = apr_brigade_create(up->r->pool, c->bucket_alloc);

    /* no body and no Content-Length: a GET that asks to switch protocols */
    apr_brigade_printf(bb, NULL, NULL,
                       "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n",
                       up->target, up->host, protocol);
    apr_table_do(add_header, bb, headers, NULL);
    relay_trace_headers(up->r, bb);
    apr_brigade_puts(bb, NULL, NULL, "\r\n");
    if (ap_proxy_pass_brigade(c->bucket_alloc, up->r, up->backend, c, bb, 1) != OK) {
        up->backend->close = 1;
        return HTTP_BAD_GATEWAY;
    }
    return OK;
}

int relay_upstream_read_upgrade(relay_upstream_t *up, int *status, apr_table_t **headers)
{
    return read_head(up, status, headers, 1);
}

conn_rec *relay_upstream_conn(relay_upstream_t *up)
{
    return up->backend ? up->backend->connection : NULL;
}

apr_socket_t *relay_upstream_socket(relay_upstream_t *up)
{
    return up->backend ? up->backend->sock : NULL;
}

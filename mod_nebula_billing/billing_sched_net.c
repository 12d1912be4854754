/* billing_sched_net.c: the scheduler's outbound connections: TCP with
 * timeouts (APR sockets), TLS over them (OpenSSL: SNI, the peer verified
 * against the system's CA store and the host name), and the webhook's
 * HTTP/1.1 POST. Nothing here runs in a request: notification delivery is
 * rare and small, so a connection per delivery is enough.
 *
 * With TLS the socket is switched to blocking mode with the kernel's send
 * and receive timeouts (SO_SNDTIMEO/SO_RCVTIMEO), since OpenSSL reads and
 * writes the descriptor itself; plain connections use APR's timeouts. */
#include <sys/socket.h>
#include <sys/time.h>
#include <limits.h>
#include <stdlib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_portable.h>
#include <apr_base64.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "billing_sched.h"

struct billing_conn_t {
    apr_socket_t *sock;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[4096]; /* read buffer of billing_conn_line() */
    apr_size_t pos, len;
};

static apr_status_t conn_cleanup(void *data)
{
    billing_conn_t *c = data;

    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->ctx) {
        SSL_CTX_free(c->ctx);
        c->ctx = NULL;
    }
    if (c->sock) {
        apr_socket_close(c->sock);
        c->sock = NULL;
    }
    return APR_SUCCESS;
}

static const char *tls_error(apr_pool_t *p, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e == 0) {
        return what;
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return apr_pstrcat(p, what, ": ", buf, NULL);
}

static int is_ip_literal(const char *host)
{
    return strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
}

static apr_status_t tls_start(apr_pool_t *p, billing_conn_t *c, const char *host,
                              const char **err)
{
    struct timeval tv;
    apr_os_sock_t fd;
    long verify;

    apr_socket_timeout_set(c->sock, -1); /* blocking; the kernel keeps time */
    apr_os_sock_get(&fd, c->sock);
    tv.tv_sec = (time_t)apr_time_sec(BILLING_NET_TIMEOUT);
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ERR_clear_error();
    if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) ||
        SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        *err = tls_error(p, "cannot set up TLS");
        return APR_EGENERAL;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if ((c->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        *err = tls_error(p, "cannot set up TLS");
        return APR_EGENERAL;
    }
    if (is_ip_literal(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
    }
    else {
        SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set1_host(c->ssl, host);
    }
    if (SSL_connect(c->ssl) != 1) {
        verify = SSL_get_verify_result(c->ssl);
        *err = verify != X509_V_OK
                   ? apr_pstrcat(p, "TLS: the certificate of ", host, " is not trusted: ",
                                 X509_verify_cert_error_string(verify), NULL)
                   : tls_error(p, "TLS handshake failed");
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t billing_conn_open(apr_pool_t *p, const char *host, apr_port_t port, int tls,
                               billing_conn_t **conn, const char **err)
{
    billing_conn_t *c = apr_pcalloc(p, sizeof(*c));
    apr_sockaddr_t *sa;
    apr_status_t rv;

    if ((rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, 0, p)) != APR_SUCCESS) {
        *err = apr_pstrcat(p, "cannot resolve ", host, NULL);
        return rv;
    }
    rv = APR_EGENERAL;
    for (; sa; sa = sa->next) {
        if ((rv = apr_socket_create(&c->sock, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                                    p)) != APR_SUCCESS) {
            continue;
        }
        apr_socket_timeout_set(c->sock, BILLING_NET_TIMEOUT);
        if ((rv = apr_socket_connect(c->sock, sa)) == APR_SUCCESS) {
            break;
        }
        apr_socket_close(c->sock);
        c->sock = NULL;
    }
    if (c->sock == NULL) {
        char buf[120];
        *err = apr_psprintf(p, "cannot connect to %s:%d: %s", host, (int)port,
                            apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    apr_pool_cleanup_register(p, c, conn_cleanup, apr_pool_cleanup_null);
    if (tls && (rv = tls_start(p, c, host, err)) != APR_SUCCESS) {
        return rv;
    }
    *conn = c;
    return APR_SUCCESS;
}

apr_status_t billing_conn_write(billing_conn_t *c, const char *buf, apr_size_t len)
{
    apr_status_t rv;

    while (len > 0) {
        apr_size_t n = len;

        if (c->ssl) {
            int w = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
            if (w <= 0) {
                return APR_EGENERAL;
            }
            n = (apr_size_t)w;
        }
        else if ((rv = apr_socket_send(c->sock, buf, &n)) != APR_SUCCESS) {
            return rv;
        }
        buf += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* Read from the connection itself (not the line buffer). */
static apr_status_t conn_recv(billing_conn_t *c, char *buf, apr_size_t *len)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, *len > INT_MAX ? INT_MAX : (int)*len);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            *len = 0;
            return e == SSL_ERROR_ZERO_RETURN ? APR_EOF : APR_EGENERAL;
        }
        *len = (apr_size_t)r;
        return APR_SUCCESS;
    }
    return apr_socket_recv(c->sock, buf, len);
}

apr_status_t billing_conn_read(billing_conn_t *c, char *buf, apr_size_t *len)
{
    if (c->pos < c->len) {
        apr_size_t n = c->len - c->pos < *len ? c->len - c->pos : *len;
        memcpy(buf, c->buf + c->pos, n);
        c->pos += n;
        *len = n;
        return APR_SUCCESS;
    }
    return conn_recv(c, buf, len);
}

apr_status_t billing_conn_line(billing_conn_t *c, apr_pool_t *p, const char **line)
{
    char out[1001];
    apr_size_t n = 0;
    apr_status_t rv;

    for (;;) {
        char ch;

        if (c->pos == c->len) {
            apr_size_t got = sizeof(c->buf);
            c->pos = c->len = 0;
            if ((rv = conn_recv(c, c->buf, &got)) != APR_SUCCESS && got == 0) {
                return rv;
            }
            if (got == 0) {
                return APR_EOF;
            }
            c->len = got;
        }
        ch = c->buf[c->pos++];
        if (ch == '\n') {
            break;
        }
        if (n < sizeof(out) - 1) {
            out[n++] = ch;
        }
    }
    if (n > 0 && out[n - 1] == '\r') {
        --n;
    }
    *line = apr_pstrmemdup(p, out, n);
    return APR_SUCCESS;
}

void billing_conn_close(billing_conn_t *c)
{
    conn_cleanup(c);
}

apr_status_t billing_http_post(apr_pool_t *p, const char *url, const char *const *headers,
                               const char *body, int *status, const char **err)
{
    const char *req, *line = NULL, *hosthdr, *path;
    billing_conn_t *c;
    apr_port_t port;
    apr_status_t rv;
    apr_uri_t u;
    int tls, i;

    *status = 0;
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || u.scheme == NULL ||
        u.hostname == NULL ||
        (strcasecmp(u.scheme, "http") != 0 && strcasecmp(u.scheme, "https") != 0)) {
        *err = "the webhook URL is not an http:// or https:// URL";
        return APR_EINVAL;
    }
    tls = strcasecmp(u.scheme, "https") == 0;
    port = u.port_str ? u.port : (tls ? 443 : 80);
    path = apr_pstrcat(p, u.path && *u.path ? u.path : "/", u.query ? "?" : "",
                       u.query ? u.query : "", NULL);
    hosthdr = apr_pstrcat(p, strchr(u.hostname, ':') ? "[" : "", u.hostname,
                          strchr(u.hostname, ':') ? "]" : "", u.port_str ? ":" : "",
                          u.port_str ? u.port_str : "", NULL);
    req = apr_psprintf(p,
                       "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: NebulaGate/%s\r\n"
                       "Content-Length: %" APR_SIZE_T_FMT "\r\nConnection: close\r\n",
                       path, hosthdr, NEBULA_VERSION, strlen(body));
    if (u.user) { /* https://user:password@host/...: Basic authentication */
        const char *cred =
            apr_pstrcat(p, u.user, ":", u.password ? u.password : "", NULL);
        char *b64 = apr_palloc(p, apr_base64_encode_len((int)strlen(cred)));
        apr_base64_encode(b64, cred, (int)strlen(cred));
        req = apr_pstrcat(p, req, "Authorization: Basic ", b64, "\r\n", NULL);
    }
    for (i = 0; headers && headers[i]; ++i) {
        req = apr_pstrcat(p, req, headers[i], "\r\n", NULL);
    }
    req = apr_pstrcat(p, req, "\r\n", body, NULL);
    if ((rv = billing_conn_open(p, u.hostname, port, tls, &c, err)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = billing_conn_write(c, req, strlen(req))) != APR_SUCCESS ||
        (rv = billing_conn_line(c, p, &line)) != APR_SUCCESS) {
        *err = apr_pstrcat(p, "no answer from ", hosthdr, NULL);
        billing_conn_close(c);
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    billing_conn_close(c);
    if (strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12 || line[8] != ' ' ||
        (*status = atoi(line + 9)) < 100 || *status > 599) {
        *status = 0;
        *err = apr_pstrcat(p, "not an HTTP answer from ", hosthdr, NULL);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* billing_sched_smtp.c: notification e-mail through an SMTP relay
 * (NebulaNotifySMTP host:port): EHLO (HELO when the relay refuses it), MAIL
 * FROM, RCPT TO, DATA, QUIT; a plain-text UTF-8 message with CRLF lines and
 * dot-stuffing (RFC 5321), a subject in RFC 2047 encoded words when it is
 * not plain ASCII. No STARTTLS or AUTH: the relay is meant to be a local
 * MTA that accepts the gateway's mail. */
#include <stdlib.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_base64.h>
#include <apr_date.h>
#include "billing_sched.h"

/* Read one SMTP reply (all its lines); its code, or -1. */
static int smtp_reply(billing_conn_t *c, apr_pool_t *p, const char **text)
{
    const char *line = NULL;

    do {
        if (billing_conn_line(c, p, &line) != APR_SUCCESS || strlen(line) < 3 ||
            !apr_isdigit(line[0]) || !apr_isdigit(line[1]) || !apr_isdigit(line[2])) {
            *text = line ? line : "the connection was closed";
            return -1;
        }
    } while (line[3] == '-');
    *text = line;
    return atoi(line);
}

/* Send @a cmd (without CRLF; NULL: send nothing) and read the reply; 1
 * when its code is one of @a ok1 / @a ok2, else 0 with *@a err set. */
static int smtp_cmd(billing_conn_t *c, apr_pool_t *p, const char *cmd, int ok1, int ok2,
                    const char **err)
{
    const char *line = cmd ? apr_pstrcat(p, cmd, "\r\n", NULL) : NULL, *text;
    int code;

    if (line && billing_conn_write(c, line, strlen(line)) != APR_SUCCESS) {
        *err = "the SMTP relay closed the connection";
        return 0;
    }
    code = smtp_reply(c, p, &text);
    if (code != ok1 && code != ok2) {
        *err = apr_psprintf(p, "SMTP relay: %s: %s",
                            cmd ? apr_pstrndup(p, cmd, 10) : "message", text);
        return 0;
    }
    return 1;
}

/* The Subject header's value: as is when printable ASCII, else RFC 2047
 * encoded words of whole UTF-8 characters. */
static const char *subject_value(apr_pool_t *p, const char *s)
{
    const unsigned char *u;
    const char *out = NULL;
    apr_size_t len = strlen(s), at = 0;

    for (u = (const unsigned char *)s; *u && *u >= 0x20 && *u < 0x7f; ++u) {
    }
    if (*u == '\0' && len <= 900) {
        return s;
    }
    while (at < len) {
        apr_size_t n = len - at > 45 ? 45 : len - at;
        char *b64;

        while (at + n < len && n > 1 && ((unsigned char)s[at + n] & 0xc0) == 0x80) {
            --n; /* do not split a UTF-8 character */
        }
        b64 = apr_palloc(p, apr_base64_encode_len((int)n));
        apr_base64_encode(b64, s + at, (int)n);
        out = apr_pstrcat(p, out ? out : "", out ? "\r\n " : "", "=?UTF-8?B?", b64,
                          "?=", NULL);
        at += n;
    }
    return out ? out : "";
}

/* @a text with CRLF line ends, control characters other than tab taken
 * out, and lines starting with '.' doubled (the DATA terminator). */
static const char *dot_stuffed(apr_pool_t *p, const char *text)
{
    apr_size_t n = strlen(text), i, o = 0;
    char *out = apr_palloc(p, 3 * n + 3);
    int bol = 1;

    for (i = 0; i < n; ++i) {
        unsigned char ch = (unsigned char)text[i];

        if (ch == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            bol = 1;
            continue;
        }
        if (ch == '\r' || (ch < 0x20 && ch != '\t') || ch == 0x7f) {
            continue;
        }
        if (bol && ch == '.') {
            out[o++] = '.';
        }
        out[o++] = (char)ch;
        bol = 0;
    }
    if (!bol) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o] = '\0';
    return out;
}

static const char *message(apr_pool_t *p, const char *helo, const char *from,
                           const char *to, const char *subject,
                           const char *const *headers, const char *text)
{
    char date[APR_RFC822_DATE_LEN];
    unsigned char rnd[8];
    const char *msg;
    int i;

    apr_rfc822_date(date, apr_time_now());
    apr_generate_random_bytes(rnd, sizeof(rnd));
    msg = apr_psprintf(p,
                       "Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: %s\r\n"
                       "Message-ID: <nebula.%" APR_TIME_T_FMT
                       ".%02x%02x%02x%02x%02x%02x%02x"
                       "%02x@%s>\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: 8bit\r\n",
                       date, from, to, subject_value(p, subject), apr_time_now(), rnd[0],
                       rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], helo);
    for (i = 0; headers && headers[i]; ++i) {
        msg = apr_pstrcat(p, msg, headers[i], "\r\n", NULL);
    }
    return apr_pstrcat(p, msg, "\r\n", dot_stuffed(p, text), ".\r\n", NULL);
}

apr_status_t billing_smtp_send(apr_pool_t *p, const char *relay, const char *helo,
                               const char *from, const char *to, const char *subject,
                               const char *const *headers, const char *text,
                               const char **err)
{
    const char *colon = strrchr(relay, ':'), *host, *greeting, *msg;
    billing_conn_t *c;
    apr_status_t rv;
    int port;

    if (colon == NULL || (port = atoi(colon + 1)) <= 0 || port > 65535) {
        *err = "NebulaNotifySMTP is not host:port";
        return APR_EINVAL;
    }
    host = apr_pstrmemdup(p, relay, (apr_size_t)(colon - relay));
    if (*host == '[' && host[strlen(host) - 1] == ']') { /* [::1]:25 */
        host = apr_pstrmemdup(p, host + 1, strlen(host) - 2);
    }
    if ((rv = billing_conn_open(p, host, (apr_port_t)port, 0, &c, err)) != APR_SUCCESS) {
        return rv;
    }
    if (smtp_reply(c, p, &greeting) != 220) {
        *err = apr_pstrcat(p, "SMTP relay greeting: ", greeting, NULL);
        billing_conn_close(c);
        return APR_EGENERAL;
    }
    msg = message(p, helo, from, to, subject, headers, text);
    if ((smtp_cmd(c, p, apr_pstrcat(p, "EHLO ", helo, NULL), 250, 250, err) ||
         smtp_cmd(c, p, apr_pstrcat(p, "HELO ", helo, NULL), 250, 250, err)) &&
        smtp_cmd(c, p, apr_pstrcat(p, "MAIL FROM:<", from, ">", NULL), 250, 250, err) &&
        smtp_cmd(c, p, apr_pstrcat(p, "RCPT TO:<", to, ">", NULL), 250, 251, err) &&
        smtp_cmd(c, p, "DATA", 354, 354, err) &&
        billing_conn_write(c, msg, strlen(msg)) == APR_SUCCESS &&
        smtp_cmd(c, p, NULL, 250, 250, err)) {
        const char *ignored;
        smtp_cmd(c, p, "QUIT", 221, 221, &ignored);
        billing_conn_close(c);
        return APR_SUCCESS;
    }
    billing_conn_close(c);
    return APR_EGENERAL;
}

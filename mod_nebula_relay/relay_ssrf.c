/* relay_ssrf.c: SSRF protection for the upstream URLs an admin supplies.
 *
 * Channel base URLs and proxies are data edited through the admin API, yet
 * the relay connects to them from inside the operator's network: a base URL
 * naming 127.0.0.1, the cloud metadata address or a private range would
 * make the gateway a proxy into internal services. This file decides which
 * URLs and addresses an upstream may have:
 *
 *  - the scheme is http or https (socks5 too for a proxy); the host is a
 *    name of letters, digits, '-', '_' and '.', or an address in canonical
 *    form: a host whose last label is a number is an IPv4 address to
 *    inet_aton() and to browsers, so it must be a dotted quad of four
 *    decimals without leading zeros (2130706433, 0x7f.1, 0177.0.0.1 and
 *    127.1 all reach 127.0.0.1 and are refused as not canonical);
 *  - no address of the host (every address a name resolves to) is in a
 *    blocked range: loopback, "this network", private, link-local (cloud
 *    metadata), carrier-grade NAT, multicast, reserved, broadcast, and for
 *    IPv6 ::, ::1, unique-local, link-local, site-local, multicast, and the
 *    forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
 *    6to4), judged by that address;
 *  - NebulaUpstreamAllow lets ranges or exact host names through, or turns
 *    the check off ("*").
 *
 * The admin API checks a URL when it is saved, resolving its name then
 * (admin_chaninput.c). The relay checks again at every connection
 * (relay_upstream.c), against the addresses mod_proxy really connects to,
 * so a name that resolves elsewhere later (DNS rebinding) is caught where
 * it matters. A name the relay resolves only for this check (a target
 * behind a forward proxy) has its verdict cached per process for
 * SSRF_CACHE_TTL. The whole story: docs/design-notes.md, "SSRF".
 */
#include <arpa/inet.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <apr_network_io.h>
#if APR_HAS_THREADS
#include <apr_thread_mutex.h>
#endif
#include "relay_private.h"

#define SSRF_CACHE_TTL apr_time_from_sec(30)
#define SSRF_CACHE_MAX 512

struct relay_ssrf_allow_t {
    int all;                   /* "*": no check at all */
    apr_array_header_t *nets;  /* apr_ipsubnet_t *: allowed ranges */
    apr_array_header_t *hosts; /* const char *: lower case, no trailing dot */
};

/* ---- names and literal addresses -------------------------------------- */

/* Letters, digits, '-', '_' and '.': what a host name may hold (percent
 * escapes, zone ids and anything a resolver might read otherwise refused). */
static int host_name_ok(const char *h)
{
    const char *c;

    if (*h == '\0' || strlen(h) > 253) {
        return 0;
    }
    for (c = h; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.' && *c != '_') {
            return 0;
        }
    }
    return 1;
}

/* The WHATWG URL rule: a host whose last label (a trailing dot aside) is a
 * decimal or 0x-hex number is an IPv4 address, whatever its other labels. */
static int ends_in_number(const char *h)
{
    const char *end = h + strlen(h), *last, *c;

    if (end > h && end[-1] == '.') {
        --end;
    }
    last = end;
    while (last > h && last[-1] != '.') {
        --last;
    }
    if (last == end) {
        return 0;
    }
    if (end - last >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (c = last + 2; c < end; ++c) {
            if (!apr_isxdigit(*c)) {
                return 0;
            }
        }
        return 1;
    }
    for (c = last; c < end; ++c) {
        if (!apr_isdigit(*c)) {
            return 0;
        }
    }
    return 1;
}

/* Four decimals 0-255 without leading zeros, dot-separated: the one IPv4
 * spelling accepted. */
static int dotted_quad(const char *h)
{
    int part;

    for (part = 0; part < 4; ++part) {
        const char *start = h;
        unsigned int n = 0;

        while (apr_isdigit(*h) && h - start < 3) {
            n = n * 10 + (unsigned int)(*h++ - '0');
        }
        if (h == start || n > 255 || (*start == '0' && h - start > 1)) {
            return 0;
        }
        if (part < 3 && *h++ != '.') {
            return 0;
        }
    }
    return *h == '\0';
}

/* AF_INET or AF_INET6 when @a h is an address literal; 0 for anything else. */
static int literal_family(const char *h)
{
    unsigned char buf[16];

    if (dotted_quad(h)) {
        return AF_INET;
    }
    if (strchr(h, ':') && inet_pton(AF_INET6, h, buf) == 1) {
        return AF_INET6;
    }
    return 0;
}

/* ---- blocked ranges ------------------------------------------------------ */

/* The IPv4 range @a a (host order) is in, as text, or NULL when public. */
static const char *blocked_v4(apr_uint32_t a)
{
    static const struct {
        apr_uint32_t net;
        int bits;
        const char *what;
    } ranges[] = {
        {0x00000000, 8, "0.0.0.0/8 (this network)"},
        {0x7f000000, 8, "127.0.0.0/8 (loopback)"},
        {0x0a000000, 8, "10.0.0.0/8 (private)"},
        {0x64400000, 10, "100.64.0.0/10 (carrier-grade NAT)"},
        {0xa9fe0000, 16, "169.254.0.0/16 (link-local, cloud metadata)"},
        {0xac100000, 12, "172.16.0.0/12 (private)"},
        {0xc0000000, 24, "192.0.0.0/24 (IETF protocol assignments, cloud metadata)"},
        {0xc0a80000, 16, "192.168.0.0/16 (private)"},
        {0xffffffff, 32, "255.255.255.255 (broadcast)"},
        {0xe0000000, 4, "224.0.0.0/4 (multicast)"},
        {0xf0000000, 4, "240.0.0.0/4 (reserved)"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); ++i) {
        apr_uint32_t mask = 0xffffffffu << (32 - ranges[i].bits);
        if ((a & mask) == ranges[i].net) {
            return ranges[i].what;
        }
    }
    return NULL;
}

static apr_uint32_t v4_at(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16)
           | ((apr_uint32_t)b[2] << 8) | (apr_uint32_t)b[3];
}

/* An IPv6 form around an IPv4 address: blocked when that address is. */
static const char *embedded(apr_pool_t *p, const char *form, const unsigned char *v4)
{
    const char *w = blocked_v4(v4_at(v4));

    return w ? apr_psprintf(p, "%s of %u.%u.%u.%u, in %s", form, v4[0], v4[1], v4[2], v4[3],
                            w)
             : NULL;
}

/* The IPv6 range of the 16 bytes @a b as text, or NULL when public. */
static const char *blocked_v6(apr_pool_t *p, const unsigned char *b)
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(b, zero, 12) == 0) {
        if (v4_at(b + 12) == 0) {
            return "::/128 (unspecified)";
        }
        if (v4_at(b + 12) == 1) {
            return "::1/128 (loopback)";
        }
        return "::/96 (IPv4-compatible, deprecated)";
    }
    if (memcmp(b, mapped, 12) == 0) {
        return embedded(p, "::ffff:0:0/96, the IPv4-mapped form", b + 12);
    }
    if (memcmp(b, nat64, 12) == 0) {
        return embedded(p, "64:ff9b::/96, the NAT64 form", b + 12);
    }
    if (memcmp(b, nat64, 5) == 0 && b[5] == 1) { /* 64:ff9b:1::/48 (RFC 8215) */
        return embedded(p, "64:ff9b:1::/48, the local NAT64 form", b + 12);
    }
    if (b[0] == 0x20 && b[1] == 0x02) {
        return embedded(p, "2002::/16, the 6to4 form", b + 2);
    }
    if ((b[0] & 0xfe) == 0xfc) {
        return "fc00::/7 (unique local)";
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return "fe80::/10 (link-local)";
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
        return "fec0::/10 (site-local, deprecated)";
    }
    if (b[0] == 0xff) {
        return "ff00::/8 (multicast)";
    }
    return NULL;
}

/* Why @a sa is blocked ("in RANGE"), NULL when public or allow-listed. */
static const char *blocked(apr_pool_t *p, const relay_ssrf_allow_t *al,
                           const apr_sockaddr_t *sa)
{
    const unsigned char *b = sa->ipaddr_ptr;
    const char *w = NULL;
    int i;

    for (i = 0; al && i < al->nets->nelts; ++i) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(al->nets, i, apr_ipsubnet_t *),
                              (apr_sockaddr_t *)sa)) {
            return NULL;
        }
    }
    if (sa->family == AF_INET && sa->ipaddr_len == 4) {
        w = blocked_v4(v4_at(b));
    }
#if APR_HAVE_IPV6
    else if (sa->family == AF_INET6 && sa->ipaddr_len == 16) {
        w = blocked_v6(p, b);
    }
#endif
    else {
        w = "an address family the gateway does not connect to";
    }
    return w;
}

/* ---- NebulaUpstreamAllow ------------------------------------------------ */

static const relay_ssrf_allow_t *allow_of(server_rec *s)
{
    return relay_config_srv(s)->upstream_allow;
}

/* @a h in lower case without its trailing dot. */
static const char *host_key(apr_pool_t *p, const char *h)
{
    char *k = apr_pstrdup(p, h), *c;
    apr_size_t n = strlen(k);

    if (n > 0 && k[n - 1] == '.') {
        k[n - 1] = '\0';
    }
    for (c = k; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return k;
}

static int host_allowed(apr_pool_t *p, const relay_ssrf_allow_t *al, const char *host)
{
    const char *k;
    int i;

    if (al == NULL || al->hosts->nelts == 0) {
        return 0;
    }
    k = host_key(p, host);
    for (i = 0; i < al->hosts->nelts; ++i) {
        if (strcmp(APR_ARRAY_IDX(al->hosts, i, const char *), k) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *relay_ssrf_set_allow(cmd_parms *cmd, void *dc, const char *arg)
{
    relay_srv_conf_t *sc = relay_config_srv(cmd->server);
    relay_ssrf_allow_t *al = sc->upstream_allow;
    char *ip = apr_pstrdup(cmd->pool, arg), *bits;
    apr_ipsubnet_t *net;

    if (al == NULL) {
        al = sc->upstream_allow = apr_pcalloc(cmd->pool, sizeof(*al));
        al->nets = apr_array_make(cmd->pool, 4, sizeof(apr_ipsubnet_t *));
        al->hosts = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    if (strcmp(arg, "*") == 0) {
        al->all = 1;
        return NULL;
    }
    if (strcasecmp(arg, "none") == 0) {
        return NULL; /* this server's list exists, empty: nothing inherited */
    }
    if ((bits = strchr(ip, '/')) != NULL) {
        *bits++ = '\0';
    }
    if (literal_family(ip)) {
        if ((bits && (*bits == '\0' || strspn(bits, "0123456789") != strlen(bits)))
            || apr_ipsubnet_create(&net, ip, bits, cmd->pool) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "NebulaUpstreamAllow: '%s' is not a valid range "
                                "(give ADDRESS/BITS, e.g. 10.1.0.0/16 or fd00::/8)", arg);
        }
        APR_ARRAY_PUSH(al->nets, apr_ipsubnet_t *) = net;
        return NULL;
    }
    if (bits || !host_name_ok(ip) || ends_in_number(ip)) {
        return apr_psprintf(cmd->pool, "NebulaUpstreamAllow: '%s' is not a range "
                            "(10.1.0.0/16, fd00::/8), an address in canonical form or a "
                            "host name; '*' turns the check off, 'none' allows nothing",
                            arg);
    }
    APR_ARRAY_PUSH(al->hosts, const char *) = host_key(cmd->pool, ip);
    return NULL;
}

/* ---- per-process verdicts on resolved names ----------------------------- */

typedef struct {
    apr_time_t until;
    const char *why; /* NULL: allowed */
} verdict_t;

static apr_pool_t *cache_parent, *cache_pool;
static apr_hash_t *cache;
#if APR_HAS_THREADS
static apr_thread_mutex_t *cache_lock;
#endif

apr_status_t relay_ssrf_child_init(apr_pool_t *pchild, server_rec *s)
{
    cache_parent = pchild;
    apr_pool_create(&cache_pool, pchild);
    apr_pool_tag(cache_pool, "nebula_relay_ssrf");
    cache = apr_hash_make(cache_pool);
#if APR_HAS_THREADS
    return apr_thread_mutex_create(&cache_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
#else
    return APR_SUCCESS;
#endif
}

static void cache_lock_on(int on)
{
#if APR_HAS_THREADS
    if (on) {
        apr_thread_mutex_lock(cache_lock);
    }
    else {
        apr_thread_mutex_unlock(cache_lock);
    }
#else
    (void)on;
#endif
}

/* 1 and *@a why when a fresh verdict on @a key is known. */
static int cache_get(apr_pool_t *p, const char *key, const char **why)
{
    verdict_t *v;
    int found = 0;

    if (cache == NULL) {
        return 0;
    }
    cache_lock_on(1);
    v = apr_hash_get(cache, key, APR_HASH_KEY_STRING);
    if (v && v->until > apr_time_now()) {
        *why = v->why ? apr_pstrdup(p, v->why) : NULL;
        found = 1;
    }
    cache_lock_on(0);
    return found;
}

static void cache_put(const char *key, const char *why)
{
    verdict_t *v;

    if (cache == NULL) {
        return;
    }
    cache_lock_on(1);
    if (apr_hash_count(cache) >= SSRF_CACHE_MAX) { /* names are few: start over */
        apr_pool_destroy(cache_pool);
        apr_pool_create(&cache_pool, cache_parent);
        apr_pool_tag(cache_pool, "nebula_relay_ssrf");
        cache = apr_hash_make(cache_pool);
    }
    v = apr_hash_get(cache, key, APR_HASH_KEY_STRING);
    if (v == NULL) {
        v = apr_palloc(cache_pool, sizeof(*v));
        apr_hash_set(cache, apr_pstrdup(cache_pool, key), APR_HASH_KEY_STRING, v);
    }
    v->until = apr_time_now() + SSRF_CACHE_TTL;
    v->why = why ? apr_pstrdup(cache_pool, why) : NULL;
    cache_lock_on(0);
}

/* ---- the checks ----------------------------------------------------------- */

/* The first blocked address of @a sa (all of the list when @a list), as a
 * sentence about @a host; NULL when none is. */
static const char *check_addrs(apr_pool_t *p, const relay_ssrf_allow_t *al,
                               const char *host, const apr_sockaddr_t *sa, int list)
{
    for (; sa; sa = list ? sa->next : NULL) {
        const char *w = blocked(p, al, sa);
        char *ip = NULL;

        if (w == NULL) {
            continue;
        }
        if (host && literal_family(host)) {
            return apr_psprintf(p, "%s is in %s", host, w);
        }
        apr_sockaddr_ip_get(&ip, (apr_sockaddr_t *)sa);
        if (host) {
            return apr_psprintf(p, "the host '%s' resolves to %s, in %s", host,
                                ip ? ip : "an address", w);
        }
        return apr_psprintf(p, "%s is in %s", ip ? ip : "the address", w);
    }
    return NULL;
}

/* Resolve @a host and check every address; a name that does not resolve is
 * let through (nothing to connect to: the connect-time check sees what a
 * later resolution gives). */
static const char *check_resolved(apr_pool_t *p, server_rec *s,
                                  const relay_ssrf_allow_t *al, const char *host,
                                  apr_port_t port, int cached)
{
    const char *key = NULL, *why = NULL;
    apr_sockaddr_t *sa = NULL;

    if (cached) {
        key = apr_psprintf(p, "%pp|%s", (void *)s, host);
        if (cache_get(p, key, &why)) {
            return why;
        }
    }
    if (apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, 0, p) == APR_SUCCESS) {
        why = check_addrs(p, al, host, sa, 1);
    }
    if (cached) {
        cache_put(key, why);
    }
    return why;
}

const char *relay_ssrf_check_url(apr_pool_t *p, server_rec *s, const char *url, int flags)
{
    const relay_ssrf_allow_t *al = allow_of(s);
    apr_uri_t u;
    apr_port_t port;
    int fam;

    if (al && al->all) {
        return NULL;
    }
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || u.scheme == NULL) {
        return "it is not an absolute URL";
    }
    if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https")
        && !((flags & RELAY_SSRF_PROXY) && !strcmp(u.scheme, "socks5"))) {
        return apr_psprintf(p, "the scheme '%s' is not allowed (only http and https%s)",
                            u.scheme, flags & RELAY_SSRF_PROXY ? ", or socks5" : "");
    }
    if (u.hostname == NULL || *u.hostname == '\0') {
        return "it names no host";
    }
    fam = literal_family(u.hostname);
    if (fam == 0 && strchr(u.hostname, ':')) {
        return apr_psprintf(p, "'%s' is not a plain IPv6 address", u.hostname);
    }
    if (fam == 0 && !host_name_ok(u.hostname)) {
        return apr_psprintf(p, "'%s' is not a valid host name", u.hostname);
    }
    if (fam == 0 && ends_in_number(u.hostname)) {
        return apr_psprintf(p, "'%s' looks like an IPv4 address but is not written as "
                            "four decimal numbers (like 192.0.2.10)", u.hostname);
    }
    if (fam == 0 && host_allowed(p, al, u.hostname)) {
        return NULL;
    }
    port = u.port ? u.port : apr_uri_port_of_scheme(u.scheme);
    if (fam != 0) { /* a literal: no DNS query, check it now */
        apr_sockaddr_t *sa;
        if (apr_sockaddr_info_get(&sa, u.hostname, fam, port, 0, p) != APR_SUCCESS) {
            return apr_psprintf(p, "'%s' is not a valid address", u.hostname);
        }
        return check_addrs(p, al, u.hostname, sa, 1);
    }
    if (!(flags & RELAY_SSRF_RESOLVE)) {
        return NULL;
    }
    return check_resolved(p, s, al, u.hostname, port, flags & RELAY_SSRF_CACHED);
}

const char *relay_ssrf_check_addr(apr_pool_t *p, server_rec *s, const char *host,
                                  const apr_sockaddr_t *sa, int list)
{
    const relay_ssrf_allow_t *al = allow_of(s);

    if ((al && al->all) || sa == NULL) {
        return NULL;
    }
    if (host && literal_family(host) == 0 && host_allowed(p, al, host)) {
        return NULL;
    }
    return check_addrs(p, al, host, sa, list);
}

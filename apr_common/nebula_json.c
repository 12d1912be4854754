/* nebula_json.c: jansson glue for libnebula_common. Owns the rule that a
 * document's lifetime is a pool's lifetime (json_decref in a pool cleanup),
 * the path getters used to read request and response bodies, and the
 * OpenAI-compatible error body every module answers with. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_json.h"

static apr_status_t json_pool_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *nebula_json_own(apr_pool_t *p, json_t *j)
{
    if (j != NULL) {
        apr_pool_cleanup_register(p, j, json_pool_cleanup, apr_pool_cleanup_null);
    }
    return j;
}

int nebula_json_too_deep(const char *buf, apr_size_t len, int max_depth)
{
    const char *s = buf, *end;
    int depth = 0;

    if (buf == NULL || max_depth <= 0) {
        return 0;
    }
    end = buf + len;
    while (s < end) {
        switch (*s++) {
        case '"':
            /* to the closing quote; a backslash hides the byte after it */
            while (s < end && *s != '"') {
                s += *s == '\\' && end - s > 1 ? 2 : 1;
            }
            if (s < end) {
                ++s;
            }
            break;
        case '[':
        case '{':
            if (++depth > max_depth) {
                return 1;
            }
            break;
        case ']':
        case '}':
            depth -= depth > 0;
            break;
        default:
            break;
        }
    }
    return 0;
}

json_t *nebula_json_parse_limited(apr_pool_t *p, const char *buf, apr_size_t len, int flags,
                                  int max_depth, int *too_deep, const char **errmsg)
{
    json_error_t err;
    size_t jflags = 0;
    int deep = 0;
    const char *nul;
    json_t *j;

    if (flags & NEBULA_JSON_REJECT_DUPLICATES) {
        jflags |= JSON_REJECT_DUPLICATES;
    }
    if (!(flags & NEBULA_JSON_CONTAINER_ONLY)) {
        jflags |= JSON_DECODE_ANY;
    }
    if (max_depth < 0 || max_depth >= NEBULA_JSON_DEPTH_CEILING) {
        max_depth = 0; /* jansson's own limit */
    }
    if (errmsg != NULL) {
        *errmsg = NULL;
    }
    /* the fast reader says yes only to what jansson accepts; anything else
     * (and every error message) is jansson's. It stops at the limit; when it
     * gave up for another reason, a scan for brackets decides the nesting
     * before jansson builds anything. */
    j = nebula_json_fast_loadb_depth(buf, len, !(flags & NEBULA_JSON_CONTAINER_ONLY),
                                     (flags & NEBULA_JSON_REJECT_DUPLICATES) != 0, max_depth,
                                     &deep);
    if (j == NULL && !deep && max_depth > 0) {
        deep = nebula_json_too_deep(buf, len, max_depth);
    }
    if (too_deep != NULL) {
        *too_deep = deep;
    }
    if (deep) {
        if (errmsg != NULL) {
            *errmsg = apr_psprintf(p, "arrays and objects nested deeper than %d levels",
                                   max_depth);
        }
        return NULL;
    }
    if (j == NULL && buf != NULL && (nul = memchr(buf, '\0', len)) != NULL) {
        /* never JSON; jansson reads "123\0" and "[1\0]" as if it were not there */
        if (errmsg != NULL) {
            *errmsg = apr_psprintf(p, "a NUL byte is not allowed in JSON text (byte %"
                                   APR_SIZE_T_FMT ")", (apr_size_t)(nul - buf));
        }
        return NULL;
    }
    if (j == NULL) {
        j = json_loadb(buf != NULL ? buf : "", buf != NULL ? len : 0, jflags, &err);
    }
    if (j == NULL) {
        if (errmsg != NULL) {
            *errmsg = apr_psprintf(p, "%s at line %d, column %d (byte %d)", err.text,
                                   err.line, err.column, err.position);
        }
        return NULL;
    }
    return nebula_json_own(p, j);
}

json_t *nebula_json_parse(apr_pool_t *p, const char *buf, apr_size_t len, int flags,
                          const char **errmsg)
{
    return nebula_json_parse_limited(p, buf, len, flags, 0, NULL, errmsg);
}

/* "#N" with N decimal and small enough to be an index; -1 otherwise. */
static long json_path_index(const char *elem)
{
    long idx = 0;
    const char *s;

    if (elem[0] != '#' || elem[1] == '\0') {
        return -1;
    }
    for (s = elem + 1; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9' || idx > 100000000L) {
            return -1;
        }
        idx = idx * 10 + (*s - '0');
    }
    return idx;
}

static json_t *json_walk(json_t *j, va_list ap)
{
    const char *elem;
    long idx;

    while (j != NULL && (elem = va_arg(ap, const char *)) != NULL) {
        if (json_is_object(j)) {
            j = json_object_get(j, elem);
        }
        else if (json_is_array(j) && (idx = json_path_index(elem)) >= 0) {
            j = json_array_get(j, (size_t)idx);
        }
        else {
            j = NULL;
        }
    }
    return j;
}

json_t *nebula_json_getj(json_t *j, ...)
{
    va_list ap;

    va_start(ap, j);
    j = json_walk(j, ap);
    va_end(ap);
    return j;
}

const char *nebula_json_gets(const json_t *j, ...)
{
    va_list ap;
    json_t *node;

    va_start(ap, j);
    node = json_walk((json_t *)j, ap);
    va_end(ap);
    return json_is_string(node) ? json_string_value(node) : NULL;
}

apr_int64_t nebula_json_geti(const json_t *j, apr_int64_t dflt, ...)
{
    va_list ap;
    json_t *node;

    va_start(ap, dflt);
    node = json_walk((json_t *)j, ap);
    va_end(ap);
    return json_is_integer(node) ? (apr_int64_t)json_integer_value(node) : dflt;
}

int nebula_json_getb(const json_t *j, int dflt, ...)
{
    va_list ap;
    json_t *node;

    va_start(ap, dflt);
    node = json_walk((json_t *)j, ap);
    va_end(ap);
    return json_is_boolean(node) ? json_is_true(node) : dflt;
}

char *nebula_json_dumps(apr_pool_t *p, const json_t *j, size_t flags)
{
    char small[512];
    size_t need;
    char *out;

    if (j == NULL) {
        return NULL;
    }
    if ((flags & JSON_MAX_INDENT) == 0) {
        flags |= JSON_COMPACT;
    }
    flags |= JSON_ENCODE_ANY;
    /* Most bodies we serialize are small: one pass into the stack, a second
     * pass straight into the pool only when that was too short. */
    need = json_dumpb(j, small, sizeof(small), flags);
    if (need == 0) {
        return NULL;
    }
    if (need <= sizeof(small)) {
        return apr_pstrmemdup(p, small, need);
    }
    out = apr_palloc(p, need + 1);
    if (json_dumpb(j, out, need, flags) != need) {
        return NULL;
    }
    out[need] = '\0';
    return out;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static apr_size_t json_utf8_seq(const unsigned char *s, apr_size_t n)
{
    apr_size_t len, i;
    apr_uint32_t cp, min;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2, cp = s[0] & 0x1F, min = 0x80;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3, cp = s[0] & 0x0F, min = 0x800;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4, cp = s[0] & 0x07, min = 0x10000;
    }
    else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; ++i) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* A JSON string for s; invalid UTF-8 bytes become U+FFFD. */
static json_t *json_string_lossy(apr_pool_t *p, const char *s)
{
    const unsigned char *in = (const unsigned char *)s;
    apr_size_t n = strlen(s), i = 0, o = 0, seq;
    char *fixed;
    json_t *j = json_string(s);

    if (j != NULL) {
        return j;
    }
    fixed = apr_palloc(p, n * 3 + 1);
    while (i < n) {
        seq = json_utf8_seq(in + i, n - i);
        if (seq == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += 1;
            continue;
        }
        memcpy(fixed + o, in + i, seq);
        o += seq;
        i += seq;
    }
    fixed[o] = '\0';
    return json_string(fixed);
}

static json_t *json_string_or_null(apr_pool_t *p, const char *s)
{
    return s != NULL ? json_string_lossy(p, s) : json_null();
}

char *nebula_json_error_body(apr_pool_t *p, const char *message, const char *type,
                             const char *param, const char *code)
{
    json_t *err = json_object();
    json_t *doc = json_object();
    char *body = NULL;
    int failed = 0;

    if (err == NULL || doc == NULL) {
        json_decref(err);
        json_decref(doc);
        return NULL;
    }
    failed |=
        json_object_set_new(err, "message", json_string_lossy(p, message ? message : ""));
    failed |= json_object_set_new(err, "type", json_string_or_null(p, type));
    failed |= json_object_set_new(err, "param", json_string_or_null(p, param));
    failed |= json_object_set_new(err, "code", json_string_or_null(p, code));
    failed |= json_object_set_new(doc, "error", err);
    if (!failed) {
        body = nebula_json_dumps(p, doc, 0);
    }
    json_decref(doc);
    return body;
}

/* nebula_gov_policy.c: governance policies, from a JSON spec to a compiled
 * policy (every field validated, errors naming the field), the canonical
 * spec, and a set of policies in evaluation order (nebula_gov_policy.h).
 * Evaluation is in nebula_gov_match.c. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "nebula_gov_policy_int.h"
#include "nebula_json.h"

#define GOV_NAME_MAX        64
#define GOV_DESC_MAX        255
#define GOV_MESSAGE_MAX     1024
#define GOV_VALUE_MAX       128 /* a model glob, route, group, label, mask */
#define GOV_VALUES_MAX      1000
#define GOV_PRIORITY_MAX    1000000
#define GOV_DEFAULT_MESSAGE "This request was blocked by a governance policy."
#define GOV_DEFAULT_MASK    "[REDACTED]"

/* A compile in progress: the pool, the error slot, and the field being read
 * (a prefix such as "match[2]" for messages). */
typedef struct {
    apr_pool_t *p;
    const char **err;
} gov_cc_t;

static int gov_fail(gov_cc_t *cc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int gov_fail(gov_cc_t *cc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *cc->err = apr_pvsprintf(cc->p, fmt, ap);
    va_end(ap);
    return -1;
}

/* "prefix.field" or "field" when there is no prefix. */
static const char *gov_path(gov_cc_t *cc, const char *prefix, const char *field)
{
    return *prefix ? apr_pstrcat(cc->p, prefix, ".", field, NULL) : field;
}

/* Refuse any key of @a obj that is not in the NULL-terminated @a allowed. */
static int gov_keys(gov_cc_t *cc, const json_t *obj, const char *prefix,
                    const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        const char *const *a;

        for (a = allowed; *a && strcmp(*a, key) != 0; ++a) {
        }
        if (!*a) {
            return *prefix ? gov_fail(cc, "%s: unknown field '%s'", prefix, key)
                           : gov_fail(cc, "unknown field '%s'", key);
        }
    }
    return 0;
}

static int gov_name_ok(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n == 0 || n > GOV_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* An optional string field: *out stays as it was when absent. */
static int gov_string(gov_cc_t *cc, const json_t *obj, const char *prefix,
                      const char *field, apr_size_t min, apr_size_t max, const char **out)
{
    json_t *v = json_object_get(obj, field);
    apr_size_t n;

    if (!v) {
        return 0;
    }
    if (!json_is_string(v)) {
        return gov_fail(cc, "%s: must be a string", gov_path(cc, prefix, field));
    }
    n = json_string_length(v);
    if (n < min || n > max || memchr(json_string_value(v), '\0', n)) {
        return gov_fail(cc, "%s: must be %lu..%lu bytes", gov_path(cc, prefix, field),
                        (unsigned long)min, (unsigned long)max);
    }
    *out = apr_pstrmemdup(cc->p, json_string_value(v), n);
    return 0;
}

/* An optional boolean field. */
static int gov_bool(gov_cc_t *cc, const json_t *obj, const char *prefix,
                    const char *field, int *out)
{
    json_t *v = json_object_get(obj, field);

    if (!v) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return gov_fail(cc, "%s: must be true or false", gov_path(cc, prefix, field));
    }
    *out = json_is_true(v);
    return 0;
}

/* An optional integer field within [min, max]. */
static int gov_int(gov_cc_t *cc, const json_t *obj, const char *prefix, const char *field,
                   apr_int64_t min, apr_int64_t max, apr_int64_t *out)
{
    json_t *v = json_object_get(obj, field);

    if (!v) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        return gov_fail(cc,
                        "%s: must be an integer %" APR_INT64_T_FMT "..%" APR_INT64_T_FMT,
                        gov_path(cc, prefix, field), min, max);
    }
    *out = json_integer_value(v);
    return 0;
}

/* A required, non-empty array of strings of 1..maxlen bytes, at most maxn. */
static int gov_strings(gov_cc_t *cc, const json_t *obj, const char *prefix,
                       const char *field, int maxn, apr_size_t maxlen, const char ***out,
                       int *n)
{
    json_t *a = json_object_get(obj, field), *v;
    const char *path = gov_path(cc, prefix, field);
    size_t i;

    if (!a) {
        return gov_fail(cc, "%s: required", path);
    }
    if (!json_is_array(a) || json_array_size(a) == 0) {
        return gov_fail(cc, "%s: must be a non-empty array", path);
    }
    if (json_array_size(a) > (size_t)maxn) {
        return gov_fail(cc, "%s: at most %d values", path, maxn);
    }
    *out = apr_palloc(cc->p, (json_array_size(a) + 1) * sizeof(**out));
    json_array_foreach(a, i, v)
    {
        apr_size_t len;

        if (!json_is_string(v)) {
            return gov_fail(cc, "%s[%lu]: must be a string", path, (unsigned long)i);
        }
        len = json_string_length(v);
        if (len == 0 || len > maxlen || memchr(json_string_value(v), '\0', len)) {
            return gov_fail(cc, "%s[%lu]: must be 1..%lu bytes", path, (unsigned long)i,
                            (unsigned long)maxlen);
        }
        (*out)[i] = apr_pstrmemdup(cc->p, json_string_value(v), len);
    }
    (*out)[json_array_size(a)] = NULL;
    *n = (int)json_array_size(a);
    return 0;
}

/* A required, non-empty array of positive ids. */
static int gov_ids(gov_cc_t *cc, const json_t *obj, const char *prefix, const char *field,
                   const apr_int64_t **out, int *n)
{
    json_t *a = json_object_get(obj, field), *v;
    const char *path = gov_path(cc, prefix, field);
    apr_int64_t *ids;
    size_t i;

    if (!json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > GOV_VALUES_MAX) {
        return gov_fail(cc, "%s: must be an array of 1..%d ids", path, GOV_VALUES_MAX);
    }
    ids = apr_palloc(cc->p, json_array_size(a) * sizeof(*ids));
    json_array_foreach(a, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            return gov_fail(cc, "%s[%lu]: must be a positive integer", path,
                            (unsigned long)i);
        }
        ids[i] = json_integer_value(v);
    }
    *out = ids;
    *n = (int)json_array_size(a);
    return 0;
}

/* ---- scope ------------------------------------------------------------ */

static int gov_scope(gov_cc_t *cc, const json_t *spec, nebula_gov_policy_t *pol,
                     json_t *canon)
{
    static const char *const allowed[] = {"groups", "users",  "keys",
                                          "models", "routes", NULL};
    json_t *scope = json_object_get(spec, "scope"), *out = json_object();
    const char **strs;
    const char *key;
    json_t *v;

    json_object_set_new(canon, "scope", out);
    if (!scope || json_is_null(scope)) {
        return 0;
    }
    if (!json_is_object(scope)) {
        return gov_fail(cc, "scope: must be an object");
    }
    if (gov_keys(cc, scope, "scope", allowed) != 0) {
        return -1;
    }
    if (json_object_get(scope, "groups")) {
        if (gov_strings(cc, scope, "scope", "groups", GOV_VALUES_MAX, GOV_VALUE_MAX,
                        &strs, &pol->ngroups) != 0) {
            return -1;
        }
        pol->groups = strs;
    }
    if (json_object_get(scope, "users") &&
        gov_ids(cc, scope, "scope", "users", &pol->users, &pol->nusers) != 0) {
        return -1;
    }
    if (json_object_get(scope, "keys") &&
        gov_ids(cc, scope, "scope", "keys", &pol->keys, &pol->nkeys) != 0) {
        return -1;
    }
    if (json_object_get(scope, "models")) {
        if (gov_strings(cc, scope, "scope", "models", GOV_VALUES_MAX, GOV_VALUE_MAX,
                        &strs, &pol->nmodels) != 0) {
            return -1;
        }
        pol->models = strs;
    }
    if (json_object_get(scope, "routes")) {
        if (gov_strings(cc, scope, "scope", "routes", GOV_VALUES_MAX, GOV_VALUE_MAX,
                        &strs, &pol->nroutes) != 0) {
            return -1;
        }
        pol->routes = strs;
    }
    json_object_foreach(scope, key, v)
    {
        json_object_set_new(out, key, json_deep_copy(v));
    }
    return 0;
}

/* ---- matchers --------------------------------------------------------- */

static apr_status_t gov_re_free(void *data)
{
    pcre2_code_free(data);
    return APR_SUCCESS;
}

static apr_status_t gov_mctx_free(void *data)
{
    pcre2_match_context_free(data);
    return APR_SUCCESS;
}

static int gov_m_keywords(gov_cc_t *cc, const json_t *js, const char *pfx,
                          gov_matcher_t *m, json_t *out)
{
    static const char *const allowed[] = {"type",   "name", "negate",
                                          "values", "word", NULL};
    const char **kw;
    apr_size_t *lens;
    int i;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_strings(cc, js, pfx, "values", GOV_KEYWORDS_MAX, GOV_KEYWORD_MAX, &kw,
                    &m->nvalues) != 0 ||
        gov_bool(cc, js, pfx, "word", &m->word) != 0) {
        return -1;
    }
    lens = apr_palloc(cc->p, m->nvalues * sizeof(*lens));
    for (i = 0; i < m->nvalues; ++i) {
        kw[i] = nebula_gov_normalize(cc->p, kw[i], strlen(kw[i]), &lens[i]);
        if (lens[i] == 0) {
            return gov_fail(cc, "%s.values[%d]: empty once normalised", pfx, i);
        }
    }
    m->values = kw;
    m->lens = lens;
    m->text = 1;
    json_object_set_new(out, "values", json_deep_copy(json_object_get(js, "values")));
    json_object_set_new(out, "word", json_boolean(m->word));
    return 0;
}

static int gov_m_regex(gov_cc_t *cc, const json_t *js, const char *pfx, gov_matcher_t *m,
                       json_t *out)
{
    static const char *const allowed[] = {
        "type", "name", "negate", "pattern", "case_insensitive", NULL};
    const char *pat = NULL;
    int icase = 0, ecode;
    PCRE2_SIZE eoff;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_string(cc, js, pfx, "pattern", 1, GOV_PATTERN_MAX, &pat) != 0 ||
        gov_bool(cc, js, pfx, "case_insensitive", &icase) != 0) {
        return -1;
    }
    if (!pat) {
        return gov_fail(cc, "%s.pattern: required", pfx);
    }
    if (icase) {
        opts |= PCRE2_CASELESS;
    }
    m->re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), opts, &ecode, &eoff, NULL);
    if (!m->re) {
        PCRE2_UCHAR msg[256];

        pcre2_get_error_message(ecode, msg, sizeof(msg));
        return gov_fail(cc, "%s.pattern: %s at offset %lu", pfx, (const char *)msg,
                        (unsigned long)eoff);
    }
    apr_pool_cleanup_register(cc->p, m->re, gov_re_free, apr_pool_cleanup_null);
    (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE); /* the interpreter otherwise */
    m->mctx = pcre2_match_context_create(NULL);
    if (!m->mctx) {
        return gov_fail(cc, "%s.pattern: out of memory", pfx);
    }
    apr_pool_cleanup_register(cc->p, m->mctx, gov_mctx_free, apr_pool_cleanup_null);
    pcre2_set_match_limit(m->mctx, GOV_MATCH_LIMIT);
    pcre2_set_depth_limit(m->mctx, GOV_DEPTH_LIMIT);
    pcre2_set_heap_limit(m->mctx, GOV_HEAP_LIMIT);
    m->text = 1;
    json_object_set_new(out, "pattern", json_string(pat));
    json_object_set_new(out, "case_insensitive", json_boolean(icase));
    return 0;
}

static int gov_m_detector(gov_cc_t *cc, const json_t *js, const char *pfx,
                          gov_matcher_t *m, json_t *out)
{
    static const char *const allowed[] = {"type", "name", "negate", "detectors", NULL};
    const char **names;
    int n, i;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_strings(cc, js, pfx, "detectors", 16, 32, &names, &n) != 0) {
        return -1;
    }
    for (i = 0; i < n; ++i) {
        nebula_gov_detector_e d = nebula_gov_detector_by_name(names[i]);

        if (!d) {
            return gov_fail(
                cc,
                "%s.detectors[%d]: unknown detector '%s' (email, phone, card, "
                "cn_id, secret)",
                pfx, i, names[i]);
        }
        m->detectors |= d;
    }
    m->text = 1;
    json_object_set_new(out, "detectors",
                        json_deep_copy(json_object_get(js, "detectors")));
    return 0;
}

/* model, route, country: a list of values. */
static int gov_m_values(gov_cc_t *cc, const json_t *js, const char *pfx, gov_matcher_t *m,
                        json_t *out)
{
    static const char *const allowed[] = {"type", "name", "negate", "values", NULL};
    const char **vals;
    int i;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_strings(cc, js, pfx, "values", GOV_VALUES_MAX, GOV_VALUE_MAX, &vals,
                    &m->nvalues) != 0) {
        return -1;
    }
    for (i = 0; m->type == GOV_M_COUNTRY && i < m->nvalues; ++i) {
        char *c = apr_pstrdup(cc->p, vals[i]);

        if (strlen(c) != 2 || !apr_isalpha(c[0]) || !apr_isalpha(c[1])) {
            return gov_fail(cc, "%s.values[%d]: not an ISO 3166 alpha-2 code", pfx, i);
        }
        c[0] = (char)apr_toupper(c[0]);
        c[1] = (char)apr_toupper(c[1]);
        vals[i] = c;
    }
    m->values = vals;
    if (m->type == GOV_M_COUNTRY) {
        json_t *a = json_array();

        for (i = 0; i < m->nvalues; ++i) {
            json_array_append_new(a, json_string(vals[i]));
        }
        json_object_set_new(out, "values", a);
    }
    else {
        json_object_set_new(out, "values", json_deep_copy(json_object_get(js, "values")));
    }
    return 0;
}

/* "a.b.c.d[/n]" or "v6[/n]" into @a net. */
static int gov_parse_net(apr_pool_t *p, const char *s, gov_net_t *net)
{
    const char *slash = strchr(s, '/');
    char *addr = slash ? apr_pstrmemdup(p, s, slash - s) : apr_pstrdup(p, s);
    int max;

    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, addr, net->addr) == 1) {
        net->family = 4, max = 32;
    }
    else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
        net->family = 6, max = 128;
    }
    else {
        return -1;
    }
    net->bits = max;
    if (slash) {
        char *end;
        long bits;

        if (!apr_isdigit(slash[1])) {
            return -1;
        }
        bits = strtol(slash + 1, &end, 10);
        if (*end || bits < 0 || bits > max) {
            return -1;
        }
        net->bits = (int)bits;
    }
    return 0;
}

static int gov_m_ip(gov_cc_t *cc, const json_t *js, const char *pfx, gov_matcher_t *m,
                    json_t *out)
{
    static const char *const allowed[] = {"type", "name", "negate", "values", NULL};
    const char **vals;
    int i;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_strings(cc, js, pfx, "values", GOV_VALUES_MAX, 64, &vals, &m->nnets) != 0) {
        return -1;
    }
    m->nets = apr_palloc(cc->p, m->nnets * sizeof(*m->nets));
    for (i = 0; i < m->nnets; ++i) {
        if (gov_parse_net(cc->p, vals[i], &m->nets[i]) != 0) {
            return gov_fail(cc, "%s.values[%d]: not an IP address or CIDR network: '%s'",
                            pfx, i, vals[i]);
        }
    }
    json_object_set_new(out, "values", json_deep_copy(json_object_get(js, "values")));
    return 0;
}

/* "HH:MM" into minutes of the day; "24:00" only when @a end. */
static int gov_parse_hhmm(const char *s, int end)
{
    int h, m;

    if (strlen(s) != 5 || !apr_isdigit(s[0]) || !apr_isdigit(s[1]) || s[2] != ':' ||
        !apr_isdigit(s[3]) || !apr_isdigit(s[4])) {
        return -1;
    }
    h = (s[0] - '0') * 10 + s[1] - '0';
    m = (s[3] - '0') * 10 + s[4] - '0';
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end))) {
        return -1;
    }
    return h * 60 + m;
}

/* "Z", "+HH:MM" or "-HH:MM" (up to 14:00) into minutes east of UTC. */
static int gov_parse_offset(const char *s, int *out)
{
    int v;

    if (strcmp(s, "Z") == 0) {
        *out = 0;
        return 0;
    }
    if ((s[0] != '+' && s[0] != '-') || (v = gov_parse_hhmm(s + 1, 0)) < 0 ||
        v > 14 * 60) {
        return -1;
    }
    *out = s[0] == '-' ? -v : v;
    return 0;
}

static int gov_m_time(gov_cc_t *cc, const json_t *js, const char *pfx, gov_matcher_t *m,
                      json_t *out)
{
    static const char *const allowed[] = {"type", "name", "negate",     "days",
                                          "from", "to",   "utc_offset", NULL};
    static const char *const day_names[] = {"sun", "mon", "tue", "wed",
                                            "thu", "fri", "sat"};
    const char *from = NULL, *to = NULL, *off = "Z";
    const char **days;
    int ndays, i;

    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_string(cc, js, pfx, "from", 1, 16, &from) != 0 ||
        gov_string(cc, js, pfx, "to", 1, 16, &to) != 0 ||
        gov_string(cc, js, pfx, "utc_offset", 1, 16, &off) != 0) {
        return -1;
    }
    m->days = 0x7F;
    if (json_object_get(js, "days")) {
        json_t *a = json_array();

        if (gov_strings(cc, js, pfx, "days", 7, 16, &days, &ndays) != 0) {
            json_decref(a);
            return -1;
        }
        m->days = 0;
        for (i = 0; i < ndays; ++i) {
            int d;

            for (d = 0; d < 7 && strcmp(day_names[d], days[i]) != 0; ++d) {
            }
            if (d == 7) {
                json_decref(a);
                return gov_fail(cc, "%s.days[%d]: must be one of mon..sun", pfx, i);
            }
            m->days |= 1u << d;
        }
        for (i = 1; i <= 7; ++i) { /* canonical: mon..sun, each once */
            if (m->days & 1u << (i % 7)) {
                json_array_append_new(a, json_string(day_names[i % 7]));
            }
        }
        json_object_set_new(out, "days", a);
    }
    if (!from != !to) {
        return gov_fail(cc, "%s.%s: required with '%s'", pfx, from ? "to" : "from",
                        from ? "from" : "to");
    }
    if (!from && !json_object_get(js, "days")) {
        return gov_fail(cc, "%s: needs days, or from and to", pfx);
    }
    m->from = 0, m->to = 24 * 60;
    if (from) {
        if ((m->from = gov_parse_hhmm(from, 0)) < 0) {
            return gov_fail(cc, "%s.from: must be HH:MM (00:00..23:59)", pfx);
        }
        if ((m->to = gov_parse_hhmm(to, 1)) < 0) {
            return gov_fail(cc, "%s.to: must be HH:MM (00:00..24:00)", pfx);
        }
        if (m->from == m->to) {
            return gov_fail(cc, "%s.to: must differ from 'from'", pfx);
        }
    }
    if (gov_parse_offset(off, &m->utc_offset) != 0) {
        return gov_fail(cc, "%s.utc_offset: must be Z, +HH:MM or -HH:MM", pfx);
    }
    json_object_set_new(
        out, "from",
        json_string(apr_psprintf(cc->p, "%02d:%02d", m->from / 60, m->from % 60)));
    json_object_set_new(
        out, "to", json_string(apr_psprintf(cc->p, "%02d:%02d", m->to / 60, m->to % 60)));
    json_object_set_new(out, "utc_offset", json_string(off));
    return 0;
}

/* size, tokens: min and/or max. */
static int gov_m_range(gov_cc_t *cc, const json_t *js, const char *pfx, gov_matcher_t *m,
                       json_t *out)
{
    static const char *const allowed[] = {"type", "name", "negate", "min", "max", NULL};
    const apr_int64_t top = APR_INT64_C(1) << 53;

    m->min = 0, m->max = -1;
    if (gov_keys(cc, js, pfx, allowed) != 0 ||
        gov_int(cc, js, pfx, "min", 0, top, &m->min) != 0 ||
        gov_int(cc, js, pfx, "max", 0, top, &m->max) != 0) {
        return -1;
    }
    if (!json_object_get(js, "min") && !json_object_get(js, "max")) {
        return gov_fail(cc, "%s: needs min or max", pfx);
    }
    if (m->max >= 0 && m->max < m->min) {
        return gov_fail(cc, "%s.max: must not be below min", pfx);
    }
    json_object_set_new(out, "min", json_integer(m->min));
    if (m->max >= 0) {
        json_object_set_new(out, "max", json_integer(m->max));
    }
    return 0;
}

static const struct {
    const char *name;
    gov_mtype_e type;
    int (*parse)(gov_cc_t *, const json_t *, const char *, gov_matcher_t *, json_t *);
} gov_matcher_types[] = {
    {"keywords", GOV_M_KEYWORDS, gov_m_keywords},
    {"regex", GOV_M_REGEX, gov_m_regex},
    {"detector", GOV_M_DETECTOR, gov_m_detector},
    {"model", GOV_M_MODEL, gov_m_values},
    {"route", GOV_M_ROUTE, gov_m_values},
    {"ip", GOV_M_IP, gov_m_ip},
    {"country", GOV_M_COUNTRY, gov_m_values},
    {"time", GOV_M_TIME, gov_m_time},
    {"size", GOV_M_SIZE, gov_m_range},
    {"tokens", GOV_M_TOKENS, gov_m_range},
};

static int gov_matcher(gov_cc_t *cc, const json_t *js, int idx, gov_matcher_t *m,
                       json_t *canon)
{
    const char *pfx = apr_psprintf(cc->p, "match[%d]", idx);
    const char *type = NULL, *name = NULL;
    json_t *out;
    size_t t;

    memset(m, 0, sizeof(*m));
    if (!json_is_object(js)) {
        return gov_fail(cc, "%s: must be an object", pfx);
    }
    if (gov_string(cc, js, pfx, "type", 1, 32, &type) != 0) {
        return -1;
    }
    if (!type) {
        return gov_fail(cc, "%s.type: required", pfx);
    }
    for (t = 0; t < sizeof(gov_matcher_types) / sizeof(gov_matcher_types[0]); ++t) {
        if (strcmp(gov_matcher_types[t].name, type) == 0) {
            break;
        }
    }
    if (t == sizeof(gov_matcher_types) / sizeof(gov_matcher_types[0])) {
        return gov_fail(cc, "%s.type: unknown matcher '%s'", pfx, type);
    }
    if (gov_string(cc, js, pfx, "name", 1, GOV_NAME_MAX, &name) != 0 ||
        gov_bool(cc, js, pfx, "negate", &m->negate) != 0) {
        return -1;
    }
    m->type = gov_matcher_types[t].type;
    m->name = name ? name : gov_matcher_types[t].name;
    out = json_object();
    json_array_append_new(canon, out);
    json_object_set_new(out, "type", json_string(type));
    if (name) {
        json_object_set_new(out, "name", json_string(name));
    }
    json_object_set_new(out, "negate", json_boolean(m->negate));
    return gov_matcher_types[t].parse(cc, js, pfx, m, out);
}

static int gov_matchers(gov_cc_t *cc, const json_t *spec, nebula_gov_policy_t *pol,
                        json_t *canon)
{
    json_t *match = json_object_get(spec, "match"), *out = json_array(), *v;
    gov_matcher_t *all;
    size_t i;
    int k;

    json_object_set_new(canon, "match", out);
    if (!match || json_is_null(match)) {
        return 0;
    }
    if (!json_is_array(match) || json_array_size(match) > 32) {
        return gov_fail(cc, "match: must be an array of at most 32 matchers");
    }
    all = apr_palloc(cc->p, (json_array_size(match) + 1) * sizeof(*all));
    json_array_foreach(match, i, v)
    {
        if (gov_matcher(cc, v, (int)i, &all[i], out) != 0) {
            return -1;
        }
    }
    /* the non-text matchers first, then the text ones, each in spec order */
    pol->m = apr_palloc(cc->p, (json_array_size(match) + 1) * sizeof(*pol->m));
    for (k = 0, i = 0; i < json_array_size(match); ++i) {
        if (!all[i].text) {
            pol->m[k++] = all[i];
        }
    }
    for (i = 0; i < json_array_size(match); ++i) {
        if (all[i].text) {
            pol->m[k++] = all[i];
            pol->has_text |= !all[i].negate;
        }
    }
    pol->nm = k;
    return 0;
}

/* ---- action ----------------------------------------------------------- */

static int gov_action(gov_cc_t *cc, const json_t *spec, nebula_gov_policy_t *pol,
                      json_t *canon)
{
    static const char *const a_block[] = {"type", "status", "message", NULL};
    static const char *const a_downgrade[] = {"type", "model", NULL};
    static const char *const a_reroute[] = {"type", "group", "channel", NULL};
    static const char *const a_redact[] = {"type", "mask", NULL};
    static const char *const a_tag[] = {"type", "tag", NULL};
    nebula_gov_policy_info_t *in = &pol->info;
    json_t *a = json_object_get(spec, "action"), *out;
    const char *type = NULL;
    apr_int64_t status = 403;

    if (!a) {
        return gov_fail(cc, "action: required");
    }
    if (!json_is_object(a)) {
        return gov_fail(cc, "action: must be an object");
    }
    if (gov_string(cc, a, "action", "type", 1, 16, &type) != 0) {
        return -1;
    }
    if (!type) {
        return gov_fail(cc, "action.type: required");
    }
    out = json_object();
    json_object_set_new(canon, "action", out);
    json_object_set_new(out, "type", json_string(type));
    if (strcmp(type, "block") == 0) {
        in->action = NEBULA_GOV_ACT_BLOCK;
        in->message = GOV_DEFAULT_MESSAGE;
        if (gov_keys(cc, a, "action", a_block) != 0 ||
            gov_string(cc, a, "action", "message", 1, GOV_MESSAGE_MAX, &in->message) !=
                0) {
            return -1;
        }
        if (json_object_get(a, "status") &&
            (!json_is_integer(json_object_get(a, "status")) ||
             (status = json_integer_value(json_object_get(a, "status"))) < 400 ||
             status > 599)) {
            return gov_fail(cc, "action.status: must be 400..599");
        }
        in->status = (int)status;
        json_object_set_new(out, "status", json_integer(in->status));
        json_object_set_new(out, "message", json_string(in->message));
    }
    else if (strcmp(type, "downgrade") == 0) {
        in->action = NEBULA_GOV_ACT_DOWNGRADE;
        if (gov_keys(cc, a, "action", a_downgrade) != 0 ||
            gov_string(cc, a, "action", "model", 1, GOV_VALUE_MAX, &in->model) != 0) {
            return -1;
        }
        if (!in->model) {
            return gov_fail(cc, "action.model: required");
        }
        json_object_set_new(out, "model", json_string(in->model));
    }
    else if (strcmp(type, "reroute") == 0) {
        in->action = NEBULA_GOV_ACT_REROUTE;
        if (gov_keys(cc, a, "action", a_reroute) != 0 ||
            gov_string(cc, a, "action", "group", 1, GOV_VALUE_MAX, &in->group) != 0 ||
            gov_string(cc, a, "action", "channel", 1, GOV_VALUE_MAX, &in->channel) != 0) {
            return -1;
        }
        if (!in->group == !in->channel) {
            return gov_fail(cc, "action: reroute needs one of group or channel");
        }
        json_object_set_new(out, in->group ? "group" : "channel",
                            json_string(in->group ? in->group : in->channel));
    }
    else if (strcmp(type, "redact") == 0) {
        in->action = NEBULA_GOV_ACT_REDACT;
        in->mask = GOV_DEFAULT_MASK;
        if (gov_keys(cc, a, "action", a_redact) != 0 ||
            gov_string(cc, a, "action", "mask", 0, GOV_VALUE_MAX, &in->mask) != 0) {
            return -1;
        }
        json_object_set_new(out, "mask", json_string(in->mask));
    }
    else if (strcmp(type, "tag") == 0) {
        in->action = NEBULA_GOV_ACT_TAG;
        if (gov_keys(cc, a, "action", a_tag) != 0 ||
            gov_string(cc, a, "action", "tag", 1, GOV_NAME_MAX, &in->tag) != 0) {
            return -1;
        }
        if (in->tag) {
            json_object_set_new(out, "tag", json_string(in->tag));
        }
    }
    else {
        return gov_fail(cc,
                        "action.type: unknown action '%s' (block, downgrade, reroute, "
                        "redact, tag)",
                        type);
    }
    return 0;
}

/* ---- the policy ------------------------------------------------------- */

nebula_gov_policy_t *nebula_gov_policy_compile(apr_pool_t *p, const json_t *spec,
                                               const char **err)
{
    static const char *const allowed[] = {"name",   "description", "priority", "enabled",
                                          "shadow", "stage",       "scope",    "match",
                                          "action", NULL};
    nebula_gov_policy_t *pol = apr_pcalloc(p, sizeof(*pol));
    nebula_gov_policy_info_t *in = &pol->info;
    gov_cc_t cc = {p, err};
    json_t *canon = nebula_json_own(p, json_object());
    const char *stage = "request";
    apr_int64_t prio = 0;

    *err = NULL;
    in->enabled = 1;
    in->description = "";
    if (!json_is_object(spec)) {
        gov_fail(&cc, "policy: must be a JSON object");
        return NULL;
    }
    if (gov_keys(&cc, spec, "", allowed) != 0) {
        return NULL;
    }
    if (gov_string(&cc, spec, "", "name", 0, 1024, &in->name) != 0) {
        return NULL;
    }
    if (!in->name) {
        gov_fail(&cc, "name: required");
        return NULL;
    }
    if (!gov_name_ok(in->name)) {
        gov_fail(&cc, "name: must be 1..%d characters of [A-Za-z0-9_.-]", GOV_NAME_MAX);
        return NULL;
    }
    if (gov_string(&cc, spec, "", "description", 0, GOV_DESC_MAX, &in->description) !=
            0 ||
        gov_int(&cc, spec, "", "priority", -GOV_PRIORITY_MAX, GOV_PRIORITY_MAX, &prio) !=
            0 ||
        gov_bool(&cc, spec, "", "enabled", &in->enabled) != 0 ||
        gov_bool(&cc, spec, "", "shadow", &in->shadow) != 0 ||
        gov_string(&cc, spec, "", "stage", 1, 16, &stage) != 0) {
        return NULL;
    }
    in->priority = (int)prio;
    if (strcmp(stage, "request") == 0) {
        in->stage = NEBULA_GOV_STAGE_REQUEST;
    }
    else if (strcmp(stage, "response") == 0) {
        in->stage = NEBULA_GOV_STAGE_RESPONSE;
    }
    else if (strcmp(stage, "both") == 0) {
        in->stage = NEBULA_GOV_STAGE_BOTH;
    }
    else {
        gov_fail(&cc, "stage: must be request, response or both");
        return NULL;
    }
    json_object_set_new(canon, "name", json_string(in->name));
    json_object_set_new(canon, "description", json_string(in->description));
    json_object_set_new(canon, "priority", json_integer(in->priority));
    json_object_set_new(canon, "enabled", json_boolean(in->enabled));
    json_object_set_new(canon, "shadow", json_boolean(in->shadow));
    json_object_set_new(canon, "stage", json_string(stage));
    if (gov_scope(&cc, spec, pol, canon) != 0 ||
        gov_matchers(&cc, spec, pol, canon) != 0 ||
        gov_action(&cc, spec, pol, canon) != 0) {
        return NULL;
    }
    if ((in->action == NEBULA_GOV_ACT_DOWNGRADE ||
         in->action == NEBULA_GOV_ACT_REROUTE) &&
        in->stage != NEBULA_GOV_STAGE_REQUEST) {
        gov_fail(&cc, "action: %s is for the request stage only",
                 nebula_gov_action_name(in->action));
        return NULL;
    }
    if (in->action == NEBULA_GOV_ACT_REDACT && !pol->has_text) {
        gov_fail(&cc, "action: redact needs a text matcher (keywords, regex or detector) "
                      "that is not negated");
        return NULL;
    }
    pol->spec = canon;
    return pol;
}

const nebula_gov_policy_info_t *nebula_gov_policy_info(const nebula_gov_policy_t *pol)
{
    return &pol->info;
}

json_t *nebula_gov_policy_spec(const nebula_gov_policy_t *pol)
{
    /* a copy: the canonical spec is shared by every thread evaluating */
    return json_deep_copy(pol->spec);
}

const char *nebula_gov_action_name(nebula_gov_action_e a)
{
    switch (a) {
    case NEBULA_GOV_ACT_BLOCK:
        return "block";
    case NEBULA_GOV_ACT_DOWNGRADE:
        return "downgrade";
    case NEBULA_GOV_ACT_REROUTE:
        return "reroute";
    case NEBULA_GOV_ACT_REDACT:
        return "redact";
    case NEBULA_GOV_ACT_TAG:
        return "tag";
    }
    return "unknown";
}

/* ---- sets ------------------------------------------------------------- */

static int gov_order(const void *a, const void *b)
{
    const nebula_gov_policy_t *x = *(const nebula_gov_policy_t *const *)a;
    const nebula_gov_policy_t *y = *(const nebula_gov_policy_t *const *)b;

    if (x->info.priority != y->info.priority) {
        return x->info.priority > y->info.priority ? -1 : 1;
    }
    return strcmp(x->info.name, y->info.name);
}

nebula_gov_set_t *nebula_gov_set_make(apr_pool_t *p, const apr_array_header_t *policies,
                                      const char **err)
{
    nebula_gov_set_t *set = apr_pcalloc(p, sizeof(*set));
    apr_hash_t *names = apr_hash_make(p);
    int n = policies ? policies->nelts : 0, i;

    *err = NULL;
    set->pol = apr_palloc(p, (n + 1) * sizeof(*set->pol));
    for (i = 0; i < n; ++i) {
        const nebula_gov_policy_t *pol =
            APR_ARRAY_IDX(policies, i, nebula_gov_policy_t *);

        if (apr_hash_get(names, pol->info.name, APR_HASH_KEY_STRING)) {
            *err = apr_psprintf(p, "duplicate policy name '%s'", pol->info.name);
            return NULL;
        }
        apr_hash_set(names, pol->info.name, APR_HASH_KEY_STRING, pol);
        if (pol->info.enabled) {
            set->pol[set->n++] = pol;
            set->stages |= pol->info.stage;
        }
    }
    qsort(set->pol, set->n, sizeof(*set->pol), gov_order);
    return set;
}

int nebula_gov_set_count(const nebula_gov_set_t *set)
{
    return set ? set->n : 0;
}

int nebula_gov_set_has_stage(const nebula_gov_set_t *set, nebula_gov_stage_e stage)
{
    return set && (set->stages & stage) != 0;
}

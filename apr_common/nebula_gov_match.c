/* nebula_gov_match.c: evaluating a set of compiled governance policies
 * against a request or a piece of completion text, redacting what the redact
 * policies match, and the outcome as JSON (nebula_gov_policy.h).
 *
 * One evaluation shares its text work across all policies: the text is
 * normalised once (only when a keywords matcher is reached), a bigram bitmap
 * of the normalised text rules most keywords out before any search, regexes
 * run on a valid-UTF-8 view of the original text (validated once), and each
 * set of detectors runs once. Scope and the request matchers are checked
 * before any text matcher. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "nebula_gov_policy_int.h"

#define GOV_DET_CACHE 8

/* A span found by a text matcher, before merging: the placeholder that
 * replaces it in an excerpt (or the mask, when redacting) travels with it. */
typedef struct {
    apr_size_t start, end;
    const char *name;          /* the detector's name, else the matcher's */
    nebula_gov_detector_e det; /* 0: keywords or regex */
    const char *ph;            /* "[email]", "[keyword]", "[regex]"; or a mask */
    int seq;                   /* order found, for a stable sort */
} gov_mark_t;

/* What one evaluation shares across policies. */
typedef struct {
    apr_pool_t *p;
    const char *text; /* NULL: no text */
    apr_size_t len;
    nebula_gov_text_t *norm; /* lazily */
    unsigned char *bigrams;  /* lazily: 65536 bits, pairs of bytes in norm */
    unsigned char bytes[32]; /* with bigrams: single bytes in norm */
    const char *safe;        /* lazily: text with invalid UTF-8 bytes as '?' */
    struct {
        unsigned mask;
        apr_array_header_t *spans;
    } det[GOV_DET_CACHE]; /* spans by detector set */
    int ndet;
    apr_array_header_t *one[5]; /* spans by detector, lazily */
    apr_time_t now;             /* 0 until a time matcher asks */
    int ip_state;               /* 0 not parsed, 1 parsed, -1 unparseable */
    gov_net_t ip;
    int seq;
} gov_ctx_t;

static void gov_ctx_init(gov_ctx_t *cx, apr_pool_t *p, const char *text, apr_size_t len)
{
    memset(cx, 0, sizeof(*cx));
    cx->p = p;
    cx->text = text;
    cx->len = text ? len : 0;
}

/* ---- shared text views ------------------------------------------------ */

static nebula_gov_text_t *gov_norm(gov_ctx_t *cx)
{
    if (!cx->norm) {
        apr_size_t i;

        cx->norm = nebula_gov_normalize_map(cx->p, cx->text, cx->len);
        cx->bigrams = apr_pcalloc(cx->p, 65536 / 8);
        for (i = 0; i < cx->norm->len; ++i) {
            unsigned b = (unsigned char)cx->norm->text[i];

            cx->bytes[b >> 3] |= (unsigned char)(1u << (b & 7));
            if (i + 1 < cx->norm->len) {
                unsigned bg = b << 8 | (unsigned char)cx->norm->text[i + 1];

                cx->bigrams[bg >> 3] |= (unsigned char)(1u << (bg & 7));
            }
        }
    }
    return cx->norm;
}

/* Whether every byte pair of @a kw occurs somewhere in the text: when not,
 * the keyword cannot. */
static int gov_maybe(const gov_ctx_t *cx, const char *kw, apr_size_t n)
{
    const unsigned char *k = (const unsigned char *)kw;
    apr_size_t i;

    if (n == 1) {
        return cx->bytes[k[0] >> 3] & (1u << (k[0] & 7));
    }
    for (i = 0; i + 1 < n; ++i) {
        unsigned bg = (unsigned)k[i] << 8 | k[i + 1];

        if (!(cx->bigrams[bg >> 3] & (1u << (bg & 7)))) {
            return 0;
        }
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at s[i] (shortest form, no surrogates,
 * at most U+10FFFF, as PCRE2 checks), 0 when it is not one. */
static apr_size_t gov_utf8_len(const unsigned char *s, apr_size_t i, apr_size_t len)
{
    unsigned char c = s[i];
    apr_size_t n, k;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
    }
    else {
        return 0;
    }
    if (i + n > len) {
        return 0;
    }
    for (k = 1; k < n; ++k) {
        if ((s[i + k] & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
        (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) {
        return 0;
    }
    return n;
}

/* The text as valid UTF-8 of the same length: itself, or a copy with each
 * byte that does not start a valid sequence replaced by '?'. */
static const char *gov_safe(gov_ctx_t *cx)
{
    const unsigned char *s = (const unsigned char *)cx->text;
    char *copy = NULL;
    apr_size_t i = 0, n;

    if (cx->safe) {
        return cx->safe;
    }
    while (i < cx->len) {
        if (s[i] < 0x80) {
            ++i;
            continue;
        }
        if ((n = gov_utf8_len(s, i, cx->len)) > 0) {
            i += n;
            continue;
        }
        if (!copy) {
            copy = apr_pstrmemdup(cx->p, cx->text, cx->len);
        }
        copy[i++] = '?';
    }
    cx->safe = copy ? copy : cx->text;
    return cx->safe;
}

/* ---- text matchers ---------------------------------------------------- */

static void gov_mark(gov_ctx_t *cx, apr_array_header_t *marks, apr_size_t start,
                     apr_size_t end, const char *name, nebula_gov_detector_e det,
                     const char *ph)
{
    gov_mark_t *mk = apr_array_push(marks);

    mk->start = start;
    mk->end = end;
    mk->name = name;
    mk->det = det;
    mk->ph = ph;
    mk->seq = cx->seq++;
}

/* Whether @a m finds anything; with @a marks, what it finds is appended
 * (placeholders @a ph, or the detector's when NULL). */
static int gov_keywords(gov_ctx_t *cx, const gov_matcher_t *m, apr_array_header_t *marks,
                        const char *ph)
{
    const char **cand = NULL;
    apr_array_header_t *found = NULL;
    nebula_gov_text_t *t = gov_norm(cx);
    int i, n = 0;

    /* the bitmap rules most keywords out; memmem() confirms the others, and
     * only those present are searched for (words, every occurrence) */
    for (i = 0; i < m->nvalues; ++i) {
        if (m->lens[i] <= t->len && gov_maybe(cx, m->values[i], m->lens[i]) &&
            memmem(t->text, t->len, m->values[i], m->lens[i])) {
            if (!cand) {
                cand = apr_palloc(cx->p, (m->nvalues - i) * sizeof(*cand));
            }
            cand[n++] = m->values[i];
        }
    }
    if (n == 0 ||
        nebula_gov_keyword_find(cx->p, t, cand, n, m->word ? NEBULA_GOV_KW_WORD : 0,
                                marks ? GOV_SPANS_MAX : 1, &found) == 0) {
        return 0;
    }
    for (i = 0; marks && i < found->nelts; ++i) {
        const nebula_gov_match_t *k = &APR_ARRAY_IDX(found, i, nebula_gov_match_t);

        gov_mark(cx, marks, k->orig_start, k->orig_end, m->name, 0,
                 ph ? ph : "[keyword]");
    }
    return 1;
}

static int gov_regex(gov_ctx_t *cx, const gov_matcher_t *m, apr_array_header_t *marks,
                     const char *ph)
{
    const unsigned char *subj = (const unsigned char *)gov_safe(cx);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
    apr_size_t off = 0;
    int found = 0;

    if (!md) {
        return 0;
    }
    while (off <= cx->len) {
        PCRE2_SIZE *ov, s, e;
        int rc = pcre2_match(m->re, subj, cx->len, off, PCRE2_NO_UTF_CHECK, md, m->mctx);

        if (rc < 0) { /* no match, or a limit reached: nothing more */
            break;
        }
        ++found;
        if (!marks) {
            break;
        }
        ov = pcre2_get_ovector_pointer(md);
        s = ov[0], e = ov[1];
        if (e > s) {
            gov_mark(cx, marks, s, e, m->name, 0, ph ? ph : "[regex]");
        }
        if (found >= GOV_SPANS_MAX) {
            break;
        }
        if (e > off) {
            off = e;
        }
        else if (off < cx->len) { /* an empty match: on to the next character */
            apr_size_t n = gov_utf8_len(subj, off, cx->len);

            off += n ? n : 1;
        }
        else {
            break;
        }
    }
    pcre2_match_data_free(md);
    return found > 0;
}

/* The spans of the detectors in @a mask: each detector runs once per
 * evaluation; where spans of several overlap, the higher-priority detector's
 * wins, then the earlier, as nebula_gov_detect() resolves them. */
static apr_array_header_t *gov_detect(gov_ctx_t *cx, unsigned mask)
{
    apr_array_header_t *kept;
    unsigned d;
    int i, k;

    for (i = 0; i < cx->ndet; ++i) {
        if (cx->det[i].mask == mask) {
            return cx->det[i].spans;
        }
    }
    kept = apr_array_make(cx->p, 4, sizeof(nebula_gov_span_t));
    for (k = 0, d = 1; d < NEBULA_GOV_DET_ALL; d <<= 1, ++k) {
        apr_array_header_t *one;

        if (!(mask & d)) {
            continue;
        }
        if (!cx->one[k]) {
            cx->one[k] = apr_array_make(cx->p, 4, sizeof(nebula_gov_span_t));
            nebula_gov_detect_one(d, cx->text, cx->len, cx->one[k]);
        }
        one = cx->one[k];
        nebula_gov_spans_keep(kept, (const nebula_gov_span_t *)one->elts, one->nelts);
    }
    if (cx->ndet < GOV_DET_CACHE) {
        cx->det[cx->ndet].mask = mask;
        cx->det[cx->ndet++].spans = kept;
    }
    return kept;
}

static int gov_detector(gov_ctx_t *cx, const gov_matcher_t *m, apr_array_header_t *marks,
                        const char *ph)
{
    apr_array_header_t *spans = gov_detect(cx, m->detectors);
    int i;

    for (i = 0; marks && i < spans->nelts && i < GOV_SPANS_MAX; ++i) {
        const nebula_gov_span_t *s = &APR_ARRAY_IDX(spans, i, nebula_gov_span_t);

        gov_mark(cx, marks, s->start, s->end, s->name, s->detector,
                 ph ? ph : apr_pstrcat(cx->p, "[", s->name, "]", NULL));
    }
    return spans->nelts > 0;
}

static int gov_text_find(gov_ctx_t *cx, const gov_matcher_t *m, apr_array_header_t *marks,
                         const char *ph)
{
    if (!cx->text) {
        return 0;
    }
    switch (m->type) {
    case GOV_M_KEYWORDS:
        return gov_keywords(cx, m, marks, ph);
    case GOV_M_REGEX:
        return gov_regex(cx, m, marks, ph);
    case GOV_M_DETECTOR:
        return gov_detector(cx, m, marks, ph);
    default:
        return 0;
    }
}

/* ---- request matchers and scope --------------------------------------- */

/* '*' and '?' glob over the whole of @a s, ASCII case-insensitive. */
static int gov_glob(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s) {
        if (*pat == '*') {
            star = ++pat;
            resume = s;
        }
        else if (*pat && (*pat == '?' || apr_tolower(*pat) == apr_tolower(*s))) {
            ++pat, ++s;
        }
        else if (star) {
            pat = star;
            s = ++resume;
        }
        else {
            return 0;
        }
    }
    while (*pat == '*') {
        ++pat;
    }
    return *pat == '\0';
}

static int gov_in(const char *s, const char *const *vals, int n, int glob)
{
    int i;

    for (i = 0; s && i < n; ++i) {
        if (glob ? gov_glob(vals[i], s) : strcmp(vals[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

static int gov_in_ids(apr_int64_t id, const apr_int64_t *ids, int n)
{
    int i;

    for (i = 0; id > 0 && i < n; ++i) {
        if (ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

static int gov_scope_ok(const nebula_gov_policy_t *pol, const nebula_gov_subject_t *s)
{
    return (!pol->groups || gov_in(s->group, pol->groups, pol->ngroups, 0)) &&
           (!pol->users || gov_in_ids(s->user_id, pol->users, pol->nusers)) &&
           (!pol->keys || gov_in_ids(s->key_id, pol->keys, pol->nkeys)) &&
           (!pol->models || gov_in(s->model, pol->models, pol->nmodels, 1)) &&
           (!pol->routes || gov_in(s->route, pol->routes, pol->nroutes, 0));
}

static int gov_net_has(const gov_net_t *net, const gov_net_t *ip)
{
    int full = net->bits / 8, rest = net->bits % 8;

    if (net->family != ip->family || memcmp(net->addr, ip->addr, full) != 0) {
        return 0;
    }
    return rest == 0 || ((net->addr[full] ^ ip->addr[full]) &
                         (unsigned char)(0xFF << (8 - rest))) == 0;
}

static int gov_ip(gov_ctx_t *cx, const gov_matcher_t *m, const char *client_ip)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    int i;

    if (cx->ip_state == 0) {
        cx->ip_state = -1;
        memset(&cx->ip, 0, sizeof(cx->ip));
        if (client_ip && inet_pton(AF_INET, client_ip, cx->ip.addr) == 1) {
            cx->ip.family = 4, cx->ip_state = 1;
        }
        else if (client_ip && inet_pton(AF_INET6, client_ip, cx->ip.addr) == 1) {
            cx->ip.family = 6, cx->ip_state = 1;
            if (memcmp(cx->ip.addr, v4mapped, 12) == 0) { /* ::ffff:a.b.c.d */
                memmove(cx->ip.addr, cx->ip.addr + 12, 4);
                memset(cx->ip.addr + 4, 0, 12);
                cx->ip.family = 4;
            }
        }
    }
    for (i = 0; cx->ip_state > 0 && i < m->nnets; ++i) {
        if (gov_net_has(&m->nets[i], &cx->ip)) {
            return 1;
        }
    }
    return 0;
}

/* Within the window: a window that spans midnight belongs to the day it
 * starts on (Friday 22:00-02:00 holds early on Saturday). */
static int gov_time(gov_ctx_t *cx, const gov_matcher_t *m, apr_time_t now)
{
    apr_time_exp_t tm;
    int minute;

    if (!cx->now) {
        cx->now = now ? now : apr_time_now();
    }
    apr_time_exp_gmt(&tm, cx->now + apr_time_from_sec((apr_time_t)m->utc_offset * 60));
    minute = tm.tm_hour * 60 + tm.tm_min;
    if (m->from < m->to) {
        return minute >= m->from && minute < m->to && (m->days & 1u << tm.tm_wday);
    }
    if (minute >= m->from) {
        return (m->days & 1u << tm.tm_wday) != 0;
    }
    return minute < m->to && (m->days & 1u << (tm.tm_wday + 6) % 7);
}

static int gov_range(const gov_matcher_t *m, apr_int64_t v)
{
    return v >= 0 && v >= m->min && (m->max < 0 || v <= m->max);
}

/* A matcher that reads the request, not the text (before negation). */
static int gov_plain(gov_ctx_t *cx, const gov_matcher_t *m, const nebula_gov_subject_t *s)
{
    switch (m->type) {
    case GOV_M_MODEL:
        return gov_in(s->model, m->values, m->nvalues, 1);
    case GOV_M_ROUTE:
        return gov_in(s->route, m->values, m->nvalues, 0);
    case GOV_M_IP:
        return gov_ip(cx, m, s->client_ip);
    case GOV_M_COUNTRY: {
        int i;

        for (i = 0; s->country && i < m->nvalues; ++i) {
            if (strcasecmp(m->values[i], s->country) == 0) {
                return 1;
            }
        }
        return 0;
    }
    case GOV_M_TIME:
        return gov_time(cx, m, s->now);
    case GOV_M_SIZE:
        return gov_range(m, (apr_int64_t)s->body_bytes);
    case GOV_M_TOKENS:
        return gov_range(m, s->tokens);
    default:
        return 0;
    }
}

/* ---- spans ------------------------------------------------------------ */

static int gov_mark_cmp(const void *a, const void *b)
{
    const gov_mark_t *x = a, *y = b;

    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort @a marks by start and merge the overlapping ones in place (the
 * first keeps its name and placeholder). */
static void gov_merge(apr_array_header_t *marks)
{
    gov_mark_t *mk = (gov_mark_t *)marks->elts;
    int i, n = 0;

    if (marks->nelts > 1) {
        qsort(mk, marks->nelts, sizeof(*mk), gov_mark_cmp);
    }
    for (i = 0; i < marks->nelts; ++i) {
        if (n > 0 && mk[i].start < mk[n - 1].end) {
            if (mk[i].end > mk[n - 1].end) {
                mk[n - 1].end = mk[i].end;
            }
        }
        else {
            mk[n++] = mk[i];
        }
    }
    marks->nelts = n;
}

/* Append the piece [from, to) of the text to @a out (at *olen, capacity
 * @a cap), placeholders instead of the marked bytes; a piece of text is cut on
 * a character boundary, a placeholder is written whole or not at all.
 * Returns 0 when everything fit. */
static int gov_render(const char *text, apr_size_t from, apr_size_t to,
                      const apr_array_header_t *marks, char *out, apr_size_t *olen,
                      apr_size_t cap)
{
    const gov_mark_t *mk = (const gov_mark_t *)marks->elts;
    apr_size_t pos = from;
    int i = 0;

    while (pos < to) {
        apr_size_t next = to, n;

        while (i < marks->nelts && mk[i].end <= pos) {
            ++i;
        }
        if (i < marks->nelts && mk[i].start <= pos) {
            n = strlen(mk[i].ph);
            if (*olen + n > cap) {
                return -1;
            }
            memcpy(out + *olen, mk[i].ph, n);
            *olen += n;
            pos = mk[i].end;
            continue;
        }
        if (i < marks->nelts && mk[i].start < next) {
            next = mk[i].start;
        }
        n = next - pos;
        if (*olen + n > cap) {
            n = cap - *olen;
            while (n > 0 && (text[pos + n] & 0xC0) == 0x80) {
                --n;
            }
            memcpy(out + *olen, text + pos, n);
            *olen += n;
            return -1;
        }
        memcpy(out + *olen, text + pos, n);
        *olen += n;
        pos = next;
    }
    return 0;
}

/* Up to GOV_EXCERPT_MAX bytes around mark @a first of @a marks (merged,
 * sorted): every marked span, and anything a detector finds near it, shown
 * as its placeholder. */
static const char *gov_excerpt(gov_ctx_t *cx, const apr_array_header_t *hit_marks,
                               int first)
{
    const char *text = gov_safe(cx);
    const gov_mark_t *f = &APR_ARRAY_IDX(hit_marks, first, gov_mark_t);
    apr_array_header_t *marks = apr_array_copy(cx->p, hit_marks), *det = NULL;
    apr_size_t ws, we, lo, hi, half, olen = 0, keep, size;
    char *left, *out = apr_palloc(cx->p, GOV_EXCERPT_MAX + 1);
    int i;

    /* secrets near the match stay out of the audit log as well */
    lo = f->start > 3 * GOV_EXCERPT_MAX ? f->start - 3 * GOV_EXCERPT_MAX : 0;
    hi = cx->len - f->end > 3 * GOV_EXCERPT_MAX ? f->end + 3 * GOV_EXCERPT_MAX : cx->len;
    nebula_gov_detect(cx->p, cx->text + lo, hi - lo, NEBULA_GOV_DET_ALL, &det);
    for (i = 0; i < det->nelts; ++i) {
        const nebula_gov_span_t *s = &APR_ARRAY_IDX(det, i, nebula_gov_span_t);

        gov_mark(cx, marks, lo + s->start, lo + s->end, s->name, s->detector,
                 apr_pstrcat(cx->p, "[", s->name, "]", NULL));
    }
    gov_merge(marks);
    for (i = 0; i < marks->nelts; ++i) { /* the merged mark holding the first */
        f = &APR_ARRAY_IDX(marks, i, gov_mark_t);
        if (f->start <= APR_ARRAY_IDX(hit_marks, first, gov_mark_t).start &&
            f->end > APR_ARRAY_IDX(hit_marks, first, gov_mark_t).start) {
            break;
        }
    }
    if (strlen(f->ph) >= GOV_EXCERPT_MAX) {
        return apr_pstrndup(cx->p, f->ph, GOV_EXCERPT_MAX);
    }
    half = (GOV_EXCERPT_MAX - strlen(f->ph)) / 2;
    /* the text before, rendered, then its last `half` bytes kept */
    ws = f->start > 2 * half ? f->start - 2 * half : 0;
    while (ws < f->start && (text[ws] & 0xC0) == 0x80) {
        ++ws;
    }
    size = f->start - ws + 1;
    for (i = 0; i < marks->nelts; ++i) {
        size += strlen(APR_ARRAY_IDX(marks, i, gov_mark_t).ph);
    }
    left = apr_palloc(cx->p, size);
    gov_render(text, ws, f->start, marks, left, &olen, size);
    keep = olen > half ? olen - half : 0;
    while (keep < olen && (left[keep] & 0xC0) == 0x80) {
        ++keep;
    }
    memcpy(out, left + keep, olen - keep);
    olen -= keep;
    we = f->end;
    memcpy(out + olen, f->ph, strlen(f->ph));
    olen += strlen(f->ph);
    gov_render(text, we, cx->len, marks, out, &olen, GOV_EXCERPT_MAX);
    out[olen] = '\0';
    while ((left = memchr(out, '\0', olen)) != NULL) { /* a C string, whole */
        *left = '?';
    }
    return out;
}

/* ---- evaluation ------------------------------------------------------- */

static int gov_terminal(const nebula_gov_policy_t *pol)
{
    return !pol->info.shadow && (pol->info.action == NEBULA_GOV_ACT_BLOCK ||
                                 pol->info.action == NEBULA_GOV_ACT_DOWNGRADE ||
                                 pol->info.action == NEBULA_GOV_ACT_REROUTE);
}

/* Whether every matcher of @a pol holds; the spans of its text matchers go
 * to @a marks, the deciding matcher to *@a matcher and the index of its first
 * mark to *@a first (-1: none). */
static int gov_holds(gov_ctx_t *cx, const nebula_gov_policy_t *pol,
                     const nebula_gov_subject_t *subj, apr_array_header_t *marks,
                     const char **matcher, int *first)
{
    const char *last = "scope";
    int i;

    *matcher = NULL;
    *first = -1;
    for (i = 0; i < pol->nm; ++i) {
        const gov_matcher_t *m = &pol->m[i];
        int before = marks->nelts, r;

        last = m->name;
        if (!m->text) {
            r = gov_plain(cx, m, subj);
        }
        else {
            r = gov_text_find(cx, m, m->negate ? NULL : marks, NULL);
            if (r && !m->negate && !*matcher) {
                *matcher = m->name;
                *first = marks->nelts > before ? before : -1;
            }
        }
        if (r == m->negate) {
            return 0;
        }
    }
    if (!*matcher) {
        *matcher = last;
    }
    return 1;
}

static apr_array_header_t *gov_spans(apr_pool_t *p, const apr_array_header_t *marks)
{
    apr_array_header_t *spans =
        apr_array_make(p, marks->nelts ? marks->nelts : 1, sizeof(nebula_gov_span_t));
    int i;

    for (i = 0; i < marks->nelts; ++i) {
        const gov_mark_t *mk = &APR_ARRAY_IDX(marks, i, gov_mark_t);
        nebula_gov_span_t *s = apr_array_push(spans);

        s->detector = mk->det;
        s->name = mk->name;
        s->start = mk->start;
        s->end = mk->end;
    }
    return spans;
}

void nebula_gov_evaluate(apr_pool_t *p, const nebula_gov_set_t *set,
                         nebula_gov_stage_e stage, const nebula_gov_subject_t *subj,
                         nebula_gov_result_t *out)
{
    apr_array_header_t *marks = NULL;
    gov_ctx_t cx;
    int i, decided = -1;

    memset(out, 0, sizeof(*out));
    out->hits = apr_array_make(p, 4, sizeof(nebula_gov_hit_t));
    if (!set || !subj) {
        return;
    }
    gov_ctx_init(&cx, p, subj->text, subj->text_len);
    for (i = 0; i < set->n; ++i) {
        const nebula_gov_policy_t *pol = set->pol[i];
        nebula_gov_hit_t *hit;
        const char *matcher;
        int first;

        if (!(pol->info.stage & stage) || (decided >= 0 && gov_terminal(pol)) ||
            !gov_scope_ok(pol, subj)) {
            continue;
        }
        ++out->evaluated;
        if (!marks) {
            marks = apr_array_make(p, 8, sizeof(gov_mark_t));
        }
        marks->nelts = 0;
        if (!gov_holds(&cx, pol, subj, marks, &matcher, &first)) {
            continue;
        }
        hit = apr_array_push(out->hits);
        memset(hit, 0, sizeof(*hit));
        hit->policy = pol;
        hit->info = &pol->info;
        hit->matcher = pol->nm ? matcher : "scope";
        hit->shadow = pol->info.shadow;
        hit->terminal = gov_terminal(pol);
        if (first >= 0) {
            hit->excerpt = gov_excerpt(&cx, marks, first);
        }
        gov_merge(marks);
        hit->spans = gov_spans(p, marks);
        if (hit->terminal) {
            decided = out->hits->nelts - 1;
        }
        if (pol->info.action == NEBULA_GOV_ACT_REDACT && !pol->info.shadow) {
            out->redact = 1;
        }
    }
    if (decided >= 0) {
        out->decided = &APR_ARRAY_IDX(out->hits, decided, nebula_gov_hit_t);
    }
}

/* A piece of text is not the whole: the text matchers of a redact policy are
 * not ANDed over it. When the scope and the request matchers hold, every span
 * any of its text matchers (not negated) finds in the piece is masked. */
const char *nebula_gov_redact(apr_pool_t *p, const nebula_gov_set_t *set,
                              nebula_gov_stage_e stage, const nebula_gov_subject_t *subj,
                              const char *text, apr_size_t len, apr_size_t *out_len)
{
    apr_array_header_t *marks;
    gov_ctx_t cx;
    apr_size_t olen = 0, pos = 0, size;
    char *out;
    int i, j;

    if (!set || !subj || !text || len == 0) {
        return NULL;
    }
    gov_ctx_init(&cx, p, text, len);
    marks = apr_array_make(p, 8, sizeof(gov_mark_t));
    for (i = 0; i < set->n; ++i) {
        const nebula_gov_policy_t *pol = set->pol[i];

        if (pol->info.action != NEBULA_GOV_ACT_REDACT || pol->info.shadow ||
            !(pol->info.stage & stage) || !gov_scope_ok(pol, subj)) {
            continue;
        }
        for (j = 0; j < pol->nm; ++j) {
            if (!pol->m[j].text && gov_plain(&cx, &pol->m[j], subj) == pol->m[j].negate) {
                break;
            }
        }
        if (j < pol->nm && !pol->m[j].text) {
            continue;
        }
        for (j = 0; j < pol->nm; ++j) {
            if (pol->m[j].text && !pol->m[j].negate) {
                gov_text_find(&cx, &pol->m[j], marks, pol->info.mask);
            }
        }
    }
    if (marks->nelts == 0) {
        return NULL;
    }
    gov_merge(marks);
    size = len + 1;
    for (i = 0; i < marks->nelts; ++i) {
        size += strlen(APR_ARRAY_IDX(marks, i, gov_mark_t).ph);
    }
    out = apr_palloc(p, size);
    for (i = 0; i < marks->nelts; ++i) {
        const gov_mark_t *mk = &APR_ARRAY_IDX(marks, i, gov_mark_t);
        apr_size_t n = strlen(mk->ph);

        memcpy(out + olen, text + pos, mk->start - pos);
        olen += mk->start - pos;
        memcpy(out + olen, mk->ph, n);
        olen += n;
        pos = mk->end;
    }
    memcpy(out + olen, text + pos, len - pos);
    olen += len - pos;
    out[olen] = '\0';
    if (out_len) {
        *out_len = olen;
    }
    return out;
}

/* ---- the trace -------------------------------------------------------- */

static json_t *gov_str_or_null(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;

    return j ? j : json_null();
}

json_t *nebula_gov_result_json(const nebula_gov_result_t *res)
{
    json_t *root = json_object(), *dec = json_object(), *hits = json_array();
    const nebula_gov_hit_t *d = res->decided;
    const nebula_gov_policy_info_t *in = d ? d->info : NULL;
    int i;

    json_object_set_new(dec, "action",
                        json_string(in ? nebula_gov_action_name(in->action) : "allow"));
    json_object_set_new(dec, "policy", gov_str_or_null(in ? in->name : NULL));
    json_object_set_new(dec, "status",
                        in && in->action == NEBULA_GOV_ACT_BLOCK
                            ? json_integer(in->status)
                            : json_null());
    json_object_set_new(dec, "message", gov_str_or_null(in ? in->message : NULL));
    json_object_set_new(dec, "model", gov_str_or_null(in ? in->model : NULL));
    json_object_set_new(dec, "group", gov_str_or_null(in ? in->group : NULL));
    json_object_set_new(dec, "channel", gov_str_or_null(in ? in->channel : NULL));
    json_object_set_new(root, "decision", dec);
    json_object_set_new(root, "redact", json_boolean(res->redact));
    for (i = 0; res->hits && i < res->hits->nelts; ++i) {
        const nebula_gov_hit_t *h = &APR_ARRAY_IDX(res->hits, i, nebula_gov_hit_t);

        json_array_append_new(hits,
                              json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "policy",
                                        h->info->name, "matcher", h->matcher, "action",
                                        nebula_gov_action_name(h->info->action), "shadow",
                                        h->shadow, "terminal", h->terminal, "excerpt",
                                        gov_str_or_null(h->excerpt)));
    }
    json_object_set_new(root, "hits", hits);
    json_object_set_new(root, "evaluated", json_integer(res->evaluated));
    return root;
}

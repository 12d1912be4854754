/* nebula_gov_detect.c: the built-in sensitive-data detectors (nebula_gov_detect.h):
 * hand-written scanners, each linear in the text, over ASCII structure (any
 * non-ASCII byte is simply a boundary). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nebula_gov_detect.h"

#define GOV_MAX_GROUPS 8
#define GOV_MAX_DIGITS 24

static int gov_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int gov_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int gov_alnum(unsigned char c)
{
    return gov_digit(c) || gov_alpha(c);
}

static int gov_tok(unsigned char c)
{
    return gov_alnum(c) || c == '_' || c == '-';
}

static void gov_emit(apr_array_header_t *out, nebula_gov_detector_e d, apr_size_t s,
                     apr_size_t e)
{
    nebula_gov_span_t *sp = apr_array_push(out);

    sp->detector = d;
    sp->name = nebula_gov_detector_name(d);
    sp->start = s;
    sp->end = e;
}

const char *nebula_gov_detector_name(nebula_gov_detector_e d)
{
    switch (d) {
    case NEBULA_GOV_DET_SECRET:
        return "secret";
    case NEBULA_GOV_DET_CN_ID:
        return "cn_id";
    case NEBULA_GOV_DET_CARD:
        return "card";
    case NEBULA_GOV_DET_EMAIL:
        return "email";
    case NEBULA_GOV_DET_PHONE:
        return "phone";
    default:
        return NULL;
    }
}

nebula_gov_detector_e nebula_gov_detector_by_name(const char *name)
{
    unsigned d;

    for (d = 1; d < NEBULA_GOV_DET_ALL; d <<= 1) {
        if (name && strcmp(name, nebula_gov_detector_name(d)) == 0) {
            return d;
        }
    }
    return 0;
}

/* ---- e-mail ----------------------------------------------------------- */

static int gov_local_char(unsigned char c)
{
    return gov_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* The end of a valid domain starting at t[i], or 0. */
static apr_size_t gov_domain(const unsigned char *t, apr_size_t i, apr_size_t len)
{
    apr_size_t j = i, ls, end = 0;
    int labels = 0, tld_ok = 0;

    for (;;) {
        ls = j;
        while (j < len && (gov_alnum(t[j]) || t[j] == '-')) {
            ++j;
        }
        if (j == ls || j - ls > 63 || t[ls] == '-' || t[j - 1] == '-') {
            break;
        }
        ++labels;
        tld_ok = j - ls >= 2;
        for (apr_size_t k = ls; k < j; ++k) {
            tld_ok = tld_ok && gov_alpha(t[k]);
        }
        if (labels >= 2 && tld_ok) {
            end = j;
        }
        if (j + 1 < len && t[j] == '.' && gov_alnum(t[j + 1])) {
            ++j;
            continue;
        }
        break;
    }
    if (end && end < len && (gov_alnum(t[end]) || t[end] == '-' || t[end] == '@')) {
        return 0;
    }
    return end;
}

static int gov_email(const unsigned char *t, apr_size_t len, apr_array_header_t *out)
{
    apr_size_t at, ls, de, k;
    int n = 0, ok;

    for (at = 1; at + 1 < len; ++at) {
        if (t[at] != '@') {
            continue;
        }
        ls = at;
        while (ls > 0 && gov_local_char(t[ls - 1])) {
            --ls;
        }
        if (ls > 0 && t[ls - 1] == '@') {
            continue;
        }
        while (ls < at && t[ls] == '.') {
            ++ls;
        }
        ok = ls < at && t[at - 1] != '.';
        for (k = ls; ok && k + 1 < at; ++k) {
            ok = !(t[k] == '.' && t[k + 1] == '.');
        }
        if (!ok || !(de = gov_domain(t, at + 1, len))) {
            continue;
        }
        gov_emit(out, NEBULA_GOV_DET_EMAIL, ls, de);
        ++n;
        at = de;
    }
    return n;
}

/* ---- digit groups (phones, cards) ------------------------------------- */

typedef struct {
    apr_size_t start, end; /* the number */
    apr_size_t run_end;    /* where scanning resumes */
    int plus, paren, overflow;
    int ngroups, glen[GOV_MAX_GROUPS];
    apr_size_t gend[GOV_MAX_GROUPS]; /* where each group ends */
    int ndig;
    char dig[GOV_MAX_DIGITS + 1];
    unsigned seps; /* 1: ' ', 2: '-', 4: '.' */
} gov_num_t;

static unsigned gov_sepbit(unsigned char c)
{
    return c == ' ' ? 1 : c == '-' ? 2 : c == '.' ? 4 : 0;
}

/* A number may start at t[i] when the byte before is not part of a word or
 * of a longer number. */
static int gov_num_start_ok(const unsigned char *t, apr_size_t i)
{
    return i == 0 || !(gov_alnum(t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '+' ||
                       t[i - 1] == '.' || t[i - 1] == '/' ||
                       (t[i - 1] == '-' && i > 1 && gov_digit(t[i - 2])));
}

static void gov_num_group(const unsigned char *t, apr_size_t *j, apr_size_t len,
                          gov_num_t *n)
{
    int g = 0;

    while (*j < len && gov_digit(t[*j])) {
        if (n->ndig < GOV_MAX_DIGITS) {
            n->dig[n->ndig] = (char)t[*j];
        }
        ++n->ndig;
        ++g;
        ++*j;
    }
    if (n->ngroups < GOV_MAX_GROUPS) {
        n->glen[n->ngroups] = g;
        n->gend[n->ngroups] = *j;
    }
    ++n->ngroups;
}

/* Parse the number at t[i] ('+', '(' or a digit): groups of digits, one
 * of them possibly in parentheses, split by single separators; 0 when there
 * is no number there. */
static int gov_num_parse(const unsigned char *t, apr_size_t i, apr_size_t len,
                         gov_num_t *n)
{
    apr_size_t j = i, back = i;

    memset(n, 0, sizeof(*n));
    n->start = i;
    if (t[j] == '+') {
        n->plus = 1;
        ++j;
    }
    for (;;) {
        if (j < len && t[j] == '(' && !n->paren && j + 1 < len && gov_digit(t[j + 1])) {
            apr_size_t k = j + 1;

            while (k < len && gov_digit(t[k])) {
                ++k;
            }
            if (k >= len || t[k] != ')') {
                j = back; /* not a parenthesised group: the number ends before it */
                break;
            }
            ++j;
            n->paren = 1;
            gov_num_group(t, &j, len, n);
            ++j;
            if (n->ngroups <= GOV_MAX_GROUPS) {
                n->gend[n->ngroups - 1] = j;
            }
            if (j < len && gov_digit(t[j])) {
                continue; /* "(555)123-4567" */
            }
        }
        else if (j < len && gov_digit(t[j])) {
            gov_num_group(t, &j, len, n);
        }
        else {
            j = back;
            break;
        }
        if (j + 1 < len && gov_sepbit(t[j]) && (gov_digit(t[j + 1]) || t[j + 1] == '(')) {
            back = j;
            n->seps |= gov_sepbit(t[j]);
            ++j;
            continue;
        }
        break;
    }
    if (n->ngroups == 0) {
        return 0;
    }
    n->end = n->run_end = j;
    n->overflow = n->ndig > GOV_MAX_DIGITS || n->ngroups > GOV_MAX_GROUPS;
    n->dig[n->ndig < GOV_MAX_DIGITS ? n->ndig : GOV_MAX_DIGITS] = '\0';
    /* the number must end on a boundary (not a word, not a decimal part) */
    if (j < len &&
        (gov_alpha(t[j]) || t[j] == '_' ||
         ((t[j] == '.' || t[j] == ',') && j + 1 < len && gov_digit(t[j + 1])))) {
        n->overflow = 1;
    }
    return 1;
}

static int gov_cn_mobile(const char *d)
{
    return d[0] == '1' && d[1] >= '3' && d[1] <= '9';
}

static int gov_glen_is(const gov_num_t *n, int a, int b, int c)
{
    return n->ngroups == 3 && n->glen[0] == a && n->glen[1] == b && n->glen[2] == c;
}

static int gov_phone_ok(const gov_num_t *n)
{
    int g;

    if (n->overflow) {
        return 0;
    }
    if (n->plus) {
        return n->ndig >= 8 && n->ndig <= 15 && n->dig[0] != '0';
    }
    if (!n->paren && n->ndig == 11 && gov_cn_mobile(n->dig) &&
        (n->ngroups == 1 || (gov_glen_is(n, 3, 4, 4) && n->seps != 4))) {
        return 1;
    }
    if (!n->paren && n->ndig == 13 && n->dig[0] == '8' && n->dig[1] == '6' &&
        gov_cn_mobile(n->dig + 2) && n->ngroups >= 2 && n->glen[0] == 2 && n->seps != 4) {
        return 1;
    }
    if (n->ngroups < 2 || n->ngroups > 5 || n->ndig < 10 || n->ndig > 11 ||
        n->glen[n->ngroups - 1] != 4) {
        return 0;
    }
    if (n->seps & 4) {
        return n->seps == 4 && !n->paren && gov_glen_is(n, 3, 3, 4);
    }
    for (g = 0; g < n->ngroups; ++g) {
        if (n->glen[g] < 2 && !(g == 0 && (n->dig[0] == '1' || n->dig[0] == '0'))) {
            return 0;
        }
        if (n->glen[g] > 5) {
            return 0;
        }
    }
    return 1;
}

int nebula_gov_luhn_ok(const char *s, apr_size_t len)
{
    int sum = 0, dbl = 0, nd = 0, v;
    apr_size_t i;

    for (i = len; i-- > 0;) {
        if (!gov_digit((unsigned char)s[i])) {
            continue;
        }
        v = s[i] - '0';
        if (dbl && (v *= 2) > 9) {
            v -= 9;
        }
        sum += v;
        dbl = !dbl;
        ++nd;
    }
    return nd >= 2 && sum % 10 == 0;
}

static int gov_prefix_in(const char *d, int digits, int lo, int hi)
{
    int v = 0, k;

    for (k = 0; k < digits; ++k) {
        v = v * 10 + (d[k] - '0');
    }
    return v >= lo && v <= hi;
}

/* A known issuer for this prefix and length. */
static int gov_iin_ok(const char *d, int nd)
{
    if (d[0] == '4') {
        return nd == 13 || nd == 16 || nd == 19; /* Visa */
    }
    if (gov_prefix_in(d, 2, 51, 55) || gov_prefix_in(d, 4, 2221, 2720)) {
        return nd == 16; /* Mastercard */
    }
    if (gov_prefix_in(d, 2, 34, 34) || gov_prefix_in(d, 2, 37, 37)) {
        return nd == 15; /* Amex */
    }
    if (gov_prefix_in(d, 4, 6011, 6011) || gov_prefix_in(d, 3, 644, 649) ||
        gov_prefix_in(d, 2, 65, 65)) {
        return nd >= 16; /* Discover */
    }
    if (gov_prefix_in(d, 4, 3528, 3589)) {
        return nd >= 16; /* JCB */
    }
    if (gov_prefix_in(d, 3, 300, 305) || gov_prefix_in(d, 2, 36, 36) ||
        gov_prefix_in(d, 2, 38, 39)) {
        return nd >= 14; /* Diners */
    }
    if (gov_prefix_in(d, 2, 62, 62) || gov_prefix_in(d, 2, 81, 81)) {
        return nd >= 16; /* UnionPay */
    }
    if (gov_prefix_in(d, 4, 2200, 2204)) {
        return nd >= 16; /* Mir */
    }
    if (gov_prefix_in(d, 2, 50, 50) || gov_prefix_in(d, 2, 56, 58) ||
        gov_prefix_in(d, 2, 63, 63) || gov_prefix_in(d, 2, 67, 68)) {
        return 1; /* Maestro */
    }
    return 0;
}

static int gov_card_ok(const gov_num_t *n)
{
    int g;

    if (n->overflow || n->plus || n->paren || n->ndig < 13 || n->ndig > 19 ||
        (n->seps & 4) || n->seps == 3 || n->ngroups > 5) {
        return 0;
    }
    for (g = 0; n->ngroups > 1 && g < n->ngroups; ++g) {
        if (n->glen[g] < 3 || n->glen[g] > 6) {
            return 0;
        }
    }
    return gov_iin_ok(n->dig, n->ndig) && nebula_gov_luhn_ok(n->dig, (apr_size_t)n->ndig);
}

/* Card numbers written in a row ("4111 1111 1111 1111 5555 5555 5555 4444")
 * make one digit run: try its leading groups, longest first. Returns the
 * number of groups of the card found, 0 for none. */
static int gov_card_prefix(const gov_num_t *n, gov_num_t *sub)
{
    int k, g;

    for (k = (n->ngroups < GOV_MAX_GROUPS ? n->ngroups : GOV_MAX_GROUPS) - 1; k >= 1;
         --k) {
        *sub = *n;
        sub->ngroups = k;
        sub->overflow = 0;
        sub->ndig = 0;
        for (g = 0; g < k; ++g) {
            sub->ndig += n->glen[g];
        }
        if (sub->ndig > 19) {
            continue;
        }
        sub->dig[sub->ndig] = '\0';
        sub->end = n->gend[k - 1];
        if (gov_card_ok(sub)) {
            return k;
        }
    }
    return 0;
}

static int gov_numbers(const unsigned char *t, apr_size_t len, nebula_gov_detector_e d,
                       apr_array_header_t *out)
{
    apr_size_t i = 0;
    gov_num_t num, sub;
    int found = 0;

    while (i < len) {
        unsigned char c = t[i];

        if (!(gov_digit(c) || c == '+' || c == '(') || !gov_num_start_ok(t, i) ||
            (d == NEBULA_GOV_DET_CARD && !gov_digit(c)) ||
            !gov_num_parse(t, i, len, &num)) {
            ++i;
            continue;
        }
        if (d == NEBULA_GOV_DET_PHONE ? gov_phone_ok(&num) : gov_card_ok(&num)) {
            gov_emit(out, d, num.start, num.end);
            ++found;
        }
        else if (d == NEBULA_GOV_DET_CARD && num.ngroups > 1 &&
                 gov_card_prefix(&num, &sub)) {
            gov_emit(out, d, sub.start, sub.end);
            ++found;
            i = sub.end;
            continue;
        }
        i = num.run_end > i ? num.run_end : i + 1;
    }
    return found;
}

/* ---- Chinese resident identity numbers ---------------------------------- */

static int gov_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int nebula_gov_cn_id_ok(const char *s, apr_size_t len)
{
    static const int weight[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check[] = "10X98765432";
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int k, sum = 0, prov, y, m, dd;
    char last;

    if (len != 18) {
        return 0;
    }
    for (k = 0; k < 17; ++k) {
        if (!gov_digit((unsigned char)s[k])) {
            return 0;
        }
        sum += (s[k] - '0') * weight[k];
    }
    last = s[17] == 'x' ? 'X' : s[17];
    if (last != check[sum % 11]) {
        return 0;
    }
    prov = (s[0] - '0') * 10 + (s[1] - '0');
    if (prov < 11 || prov > 82) {
        return 0;
    }
    y = (s[6] - '0') * 1000 + (s[7] - '0') * 100 + (s[8] - '0') * 10 + (s[9] - '0');
    m = (s[10] - '0') * 10 + (s[11] - '0');
    dd = (s[12] - '0') * 10 + (s[13] - '0');
    if (y < 1900 || y > 2099 || m < 1 || m > 12 || dd < 1) {
        return 0;
    }
    return dd <= mdays[m - 1] + (m == 2 && gov_leap(y));
}

static int gov_cn_id(const unsigned char *t, apr_size_t len, apr_array_header_t *out)
{
    apr_size_t i = 0, j;
    int found = 0;

    while (i < len) {
        if (!gov_digit(t[i]) || (i > 0 && (gov_alnum(t[i - 1]) || t[i - 1] == '_'))) {
            ++i;
            continue;
        }
        for (j = i; j < len && gov_digit(t[j]); ++j) {
        }
        if (j - i == 17 && j < len && (t[j] == 'X' || t[j] == 'x')) {
            ++j;
        }
        if (j - i == 18 && (j == len || !(gov_alnum(t[j]) || t[j] == '_')) &&
            nebula_gov_cn_id_ok((const char *)t + i, 18)) {
            gov_emit(out, NEBULA_GOV_DET_CN_ID, i, j);
            ++found;
        }
        i = j;
    }
    return found;
}

/* ---- secrets ---------------------------------------------------------- */

double nebula_gov_entropy(const char *s, apr_size_t len)
{
    apr_size_t count[256] = {0}, i;
    double h = 0.0;

    for (i = 0; i < len; ++i) {
        ++count[(unsigned char)s[i]];
    }
    for (i = 0; i < 256; ++i) {
        if (count[i]) {
            double q = (double)count[i] / (double)len;

            h -= q * log2(q);
        }
    }
    return h;
}

/* Every byte of t[from, to) is alphanumeric, or one of the extra characters. */
static int gov_all(const unsigned char *t, apr_size_t from, apr_size_t to,
                   const char *extra)
{
    for (; from < to; ++from) {
        if (!gov_alnum(t[from]) && !strchr(extra, t[from])) {
            return 0;
        }
    }
    return 1;
}

static int gov_has_digit(const unsigned char *t, apr_size_t from, apr_size_t to)
{
    for (; from < to; ++from) {
        if (gov_digit(t[from])) {
            return 1;
        }
    }
    return 0;
}

static int gov_starts(const unsigned char *t, apr_size_t s, apr_size_t e, const char *pre)
{
    apr_size_t n = strlen(pre);

    return e - s >= n && memcmp(t + s, pre, n) == 0;
}

/* The generic high-entropy rule (see the header). */
static int gov_random_token(const unsigned char *t, apr_size_t s, apr_size_t e)
{
    int up = 0, lo = 0, dg = 0, runs = 0;
    apr_size_t i;

    if (e - s < NEBULA_GOV_SECRET_MIN_LEN || e - s > NEBULA_GOV_SECRET_MAX_LEN) {
        return 0;
    }
    for (i = s; i < e; ++i) {
        if (t[i] >= 'a' && t[i] <= 'z') {
            ++lo;
            runs += i == s || !(t[i - 1] >= 'a' && t[i - 1] <= 'z');
        }
        else if (t[i] >= 'A' && t[i] <= 'Z') {
            ++up;
        }
        else if (gov_digit(t[i])) {
            ++dg;
        }
    }
    if (!up || !lo || !dg || (double)lo / runs >= NEBULA_GOV_SECRET_MAX_LOWER_RUN) {
        return 0;
    }
    return nebula_gov_entropy((const char *)t + s, e - s) >=
           NEBULA_GOV_SECRET_MIN_ENTROPY;
}

/* Whether the token t[s, e) is a secret. */
static int gov_secret_token(const unsigned char *t, apr_size_t s, apr_size_t e)
{
    apr_size_t n = e - s;

    if (gov_starts(t, s, e, "sk-ant-")) {
        return n >= 7 + 20;
    }
    if (gov_starts(t, s, e, "sk-")) {
        return n >= 3 + 20 && gov_has_digit(t, s + 3, e);
    }
    if (gov_starts(t, s, e, "AKIA") || gov_starts(t, s, e, "ASIA")) {
        apr_size_t i;

        for (i = s + 4; n == 20 && i < e; ++i) {
            if (!gov_digit(t[i]) && !(t[i] >= 'A' && t[i] <= 'Z')) {
                return 0;
            }
        }
        return n == 20;
    }
    if (n == 40 && t[s] == 'g' && t[s + 1] == 'h' && strchr("pousr", t[s + 2]) &&
        t[s + 3] == '_') {
        return gov_all(t, s + 4, e, "");
    }
    if (gov_starts(t, s, e, "github_pat_")) {
        return n >= 11 + 22 && gov_all(t, s + 11, e, "_");
    }
    if (n >= 5 && t[s] == 'x' && t[s + 1] == 'o' && t[s + 2] == 'x' &&
        strchr("bap", t[s + 3]) && t[s + 4] == '-') {
        return n >= 5 + 10 && gov_all(t, s + 5, e, "-") && gov_has_digit(t, s + 5, e);
    }
    if (gov_starts(t, s, e, "AIza")) {
        return n == 39;
    }
    return gov_random_token(t, s, e);
}

static int gov_secret(const unsigned char *t, apr_size_t len, apr_array_header_t *out)
{
    apr_size_t i = 0, j;
    int found = 0;

    while (i < len) {
        if (!gov_tok(t[i])) {
            ++i;
            continue;
        }
        for (j = i; j < len && gov_tok(t[j]); ++j) {
        }
        if (gov_secret_token(t, i, j)) {
            gov_emit(out, NEBULA_GOV_DET_SECRET, i, j);
            ++found;
        }
        i = j;
    }
    return found;
}

/* ---- the table -------------------------------------------------------- */

int nebula_gov_detect_one(nebula_gov_detector_e d, const char *text, apr_size_t len,
                          apr_array_header_t *out)
{
    const unsigned char *t = (const unsigned char *)text;

    if (!text || !len) {
        return 0;
    }
    switch (d) {
    case NEBULA_GOV_DET_SECRET:
        return gov_secret(t, len, out);
    case NEBULA_GOV_DET_CN_ID:
        return gov_cn_id(t, len, out);
    case NEBULA_GOV_DET_CARD:
    case NEBULA_GOV_DET_PHONE:
        return gov_numbers(t, len, d, out);
    case NEBULA_GOV_DET_EMAIL:
        return gov_email(t, len, out);
    default:
        return 0;
    }
}

static int gov_span_cmp(const void *a, const void *b)
{
    const nebula_gov_span_t *x = a, *y = b;

    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return x->end < y->end ? -1 : x->end > y->end;
}

void nebula_gov_spans_keep(apr_array_header_t *kept, const nebula_gov_span_t *add, int n)
{
    int i, nkept = kept->nelts;

    for (i = 0; i < n; ++i) {
        const nebula_gov_span_t *s = &add[i];
        int lo = 0, hi = nkept;

        /* kept is sorted and free of overlaps (so its ends ascend too): the
         * first kept span ending after s starts is the only one that may
         * overlap it */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;

            if (APR_ARRAY_IDX(kept, mid, nebula_gov_span_t).end <= s->start) {
                lo = mid + 1;
            }
            else {
                hi = mid;
            }
        }
        if (lo == nkept || APR_ARRAY_IDX(kept, lo, nebula_gov_span_t).start >= s->end) {
            *(nebula_gov_span_t *)apr_array_push(kept) = *s;
        }
    }
    if (kept->nelts > 1) {
        qsort(kept->elts, kept->nelts, sizeof(nebula_gov_span_t), gov_span_cmp);
    }
}

int nebula_gov_detect(apr_pool_t *p, const char *text, apr_size_t len, unsigned mask,
                      apr_array_header_t **spans)
{
    apr_array_header_t *all = apr_array_make(p, 8, sizeof(nebula_gov_span_t));
    apr_array_header_t *kept = apr_array_make(p, 8, sizeof(nebula_gov_span_t));
    unsigned d;

    /* one detector at a time, highest priority first; each list is in order
     * of start and free of overlaps within itself */
    for (d = 1; d < NEBULA_GOV_DET_ALL; d <<= 1) {
        int from;

        if (!(mask & d)) {
            continue;
        }
        from = all->nelts;
        nebula_gov_detect_one(d, text, len, all);
        nebula_gov_spans_keep(kept, &APR_ARRAY_IDX(all, from, nebula_gov_span_t),
                              all->nelts - from);
    }
    *spans = kept;
    return kept->nelts;
}

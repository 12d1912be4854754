/* nebula_tokens_estimate.c: the floor of token counting, for models whose
 * tokenizer the gateway does not have. A single pass over the bytes that
 * prices runs of characters in thousandths of a token, with weights fitted to
 * what cl100k_base and o200k_base count on English, code, numbers, CJK,
 * Cyrillic and emoji (the table and its error: docs/tokens.md). Owns nothing;
 * no allocation; never reads past len. */
#include "nebula_tokens.h"

/* Prices in thousandths of a token. The split rules they mirror are those of
 * cl100k_base/o200k_base: a word takes one space or punctuation mark before
 * it, digits go in groups of three and take nothing, punctuation takes the
 * line breaks after it, and whitespace before a line break or indentation is
 * a token of its own. */
#define EST_WORD        1000 /* each word (or camelCase part) */
#define EST_WORD_FREE   6    /* letters a word has before it costs more */
#define EST_WORD_EXTRA  260  /* each letter beyond that */
#define EST_WORD_ACCENT 250  /* each non-ASCII Latin letter in a word */
#define EST_WORD_UPPER  220  /* each capital in a word after its first letter */
#define EST_DIGITS      1000 /* each started group of 3 digits */
#define EST_PUNCT       1000 /* a run of ASCII punctuation or symbols... */
#define EST_PUNCT_EXTRA 320  /* ...and each character of it beyond the first */
#define EST_PUNCT_LEAD  250  /* a mark that leads a word: "(const", "_t", ".get" */
#define EST_NEWLINE     600  /* the line breaks of a whitespace run */
#define EST_INDENT      1000 /* the blanks of a run that no word takes */
#define EST_SPACE_EXTRA 20   /* each whitespace character beyond the fourth */
#define EST_CJK         1000 /* each Han, kana or Hangul character */
#define EST_ALPHA       500  /* each letter of another alphabet (Cyrillic, Greek...) */
#define EST_ABUGIDA     700  /* each character of Indic, Thai and similar scripts */
#define EST_SYMBOL      1900 /* each emoji or other symbol above U+2000 */
#define EST_BAD_BYTE    1000 /* each byte that is not UTF-8 */

typedef enum {
    EST_C_SPACE,
    EST_C_LATIN,  /* ASCII letter */
    EST_C_ACCENT, /* other Latin letter */
    EST_C_DIGIT,
    EST_C_PUNCT,
    EST_C_CJK,
    EST_C_ALPHA,
    EST_C_ABUGIDA,
    EST_C_SYMBOL,
    EST_C_BAD
} est_class_e;

/* Decode one code point leniently (the estimate needs no strictness): the
 * byte count goes to *n, the value is returned, or -1 for a stray byte. */
static long est_decode(const unsigned char *s, apr_size_t len, apr_size_t *n)
{
    unsigned char c = s[0];
    apr_size_t k, i;
    long cp;

    if (c < 0x80) {
        *n = 1;
        return c;
    }
    k = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c < 0xF0 ? 3 : 0) : c >= 0xC2 ? 2 : 0;
    *n = 1;
    if (k == 0 || k > len) {
        return -1;
    }
    cp = c & (0x7F >> k);
    for (i = 1; i < k; ++i) {
        if ((s[i] & 0xC0) != 0x80) {
            return -1;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *n = k;
    return cp;
}

static est_class_e est_class(long cp)
{
    if (cp < 0) {
        return EST_C_BAD;
    }
    if (cp < 0x80) {
        if (cp == ' ' || (cp >= '\t' && cp <= '\r')) {
            return EST_C_SPACE;
        }
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') {
            return EST_C_LATIN;
        }
        return cp >= '0' && cp <= '9' ? EST_C_DIGIT : EST_C_PUNCT;
    }
    if (cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A)) {
        return EST_C_SPACE;
    }
    if ((cp >= 0xC0 && cp <= 0x36F && cp != 0xD7 && cp != 0xF7) ||
        (cp >= 0x1E00 && cp <= 0x1EFF)) {
        return EST_C_ACCENT; /* Latin letters, IPA, combining accents */
    }
    if (cp >= 0x2010 && cp <= 0x205F) {
        return EST_C_PUNCT; /* typographic quotes, dashes, ellipsis */
    }
    if (cp < 0x900) {
        return cp >= 0x370 ? EST_C_ALPHA : EST_C_PUNCT;
    }
    if (cp < 0x1100) {
        return EST_C_ABUGIDA; /* Indic, Sinhala, Thai, Lao, Tibetan, Myanmar, Georgian */
    }
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x2E80 && cp <= 0x9FFF) ||
        (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFF00 && cp <= 0xFFEF) || (cp >= 0x20000 && cp <= 0x3FFFF)) {
        return EST_C_CJK;
    }
    return cp >= 0x2000 ? EST_C_SYMBOL : EST_C_ALPHA;
}

/* Price of a run of Latin letters: a word for each stretch that starts
 * where a lower-case letter is followed by a capital (camelCase splits),
 * more for long stretches, capitals after the first, and accented letters. */
static apr_size_t est_word(const unsigned char *s, apr_size_t len)
{
    apr_size_t i = 0, n, seg = 0, price = 0;
    int prev_lower = 0;

    while (i < len) {
        long cp = est_decode(s + i, len - i, &n);
        int upper = cp < 0x80 ? (cp >= 'A' && cp <= 'Z') : 0;

        if (seg > 0 && upper && prev_lower) {
            seg = 0; /* a new camelCase part */
        }
        price += seg == 0 ? EST_WORD : 0;
        price += seg >= EST_WORD_FREE ? EST_WORD_EXTRA : 0;
        price += seg > 0 && upper ? EST_WORD_UPPER : 0;
        price += cp >= 0x80 ? EST_WORD_ACCENT : 0;
        prev_lower = !upper;
        ++seg;
        i += n;
    }
    return price;
}

/* A run of one class: where it is, what surrounds it. */
typedef struct {
    const unsigned char *s;
    apr_size_t bytes;
    apr_size_t chars;
    est_class_e c;
    est_class_e prev; /* class of the run before, EST_C_BAD at the start */
    est_class_e next; /* class of the run after, EST_C_BAD at the end */
    int at_end;
} est_run_t;

static int est_is_letter(est_class_e c)
{
    return c == EST_C_LATIN || c == EST_C_ACCENT || c == EST_C_ALPHA || c == EST_C_CJK ||
           c == EST_C_ABUGIDA;
}

/* Whitespace: line breaks are one token (none right after punctuation, which
 * takes them), the blanks after the last break one more unless they are a
 * single space the next word or mark takes (digits take none). */
static apr_size_t est_space(const est_run_t *r)
{
    apr_size_t i, tail = 0, price = 0;
    int nl = 0, lead_nl = r->s[0] == '\n' || r->s[0] == '\r';

    for (i = 0; i < r->bytes; ++i) {
        if (r->s[i] == '\n' || r->s[i] == '\r') {
            nl = 1;
            tail = 0;
        }
        else {
            ++tail;
        }
    }
    if (nl && !(lead_nl && r->prev == EST_C_PUNCT)) {
        price += EST_NEWLINE;
    }
    if (tail > 0 && !r->at_end && r->s[r->bytes - 1] == ' ' && r->next != EST_C_DIGIT) {
        --tail;
    }
    if (tail > 0) {
        price += EST_INDENT;
    }
    return price + (r->chars > 4 ? (r->chars - 4) * EST_SPACE_EXTRA : 0);
}

static apr_size_t est_punct(const est_run_t *r)
{
    apr_size_t n = r->chars;

    if (!r->at_end && est_is_letter(r->next)) {
        return EST_PUNCT_LEAD + (n > 1 ? EST_PUNCT + (n - 2) * EST_PUNCT_EXTRA : 0);
    }
    return EST_PUNCT + (n - 1) * EST_PUNCT_EXTRA;
}

static apr_size_t est_price(const est_run_t *r)
{
    switch (r->c) {
    case EST_C_LATIN:
    case EST_C_ACCENT:
        return est_word(r->s, r->bytes);
    case EST_C_DIGIT:
        return (r->chars + 2) / 3 * EST_DIGITS;
    case EST_C_SPACE:
        return est_space(r);
    case EST_C_PUNCT:
        return est_punct(r);
    case EST_C_CJK:
        return r->chars * EST_CJK;
    case EST_C_ALPHA:
        return r->chars * EST_ALPHA;
    case EST_C_ABUGIDA:
        return r->chars * EST_ABUGIDA;
    case EST_C_SYMBOL:
        return r->chars * EST_SYMBOL;
    default:
        return r->chars * EST_BAD_BYTE;
    }
}

/* Measure the run starting at s (Latin letters with and without accents are
 * one run); *next gets the class that ended it. */
static void est_measure(est_run_t *r, const unsigned char *s, apr_size_t len)
{
    apr_size_t n;
    est_class_e k;

    r->s = s;
    r->bytes = r->chars = 0;
    r->c = est_class(est_decode(s, len, &n));
    r->next = EST_C_BAD;
    while (r->bytes < len) {
        k = est_class(est_decode(s + r->bytes, len - r->bytes, &n));
        if (k != r->c && !((r->c == EST_C_LATIN || r->c == EST_C_ACCENT) &&
                           (k == EST_C_LATIN || k == EST_C_ACCENT))) {
            r->next = k;
            break;
        }
        ++r->chars;
        r->bytes += n;
    }
    r->at_end = r->bytes == len;
}

apr_size_t nebula_tokens_estimate(const char *text, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    apr_size_t i = 0, milli = 0;
    est_class_e prev = EST_C_BAD;
    est_run_t r;

    while (i < len) {
        est_measure(&r, s + i, len - i);
        r.prev = prev;
        milli += est_price(&r);
        prev = r.c;
        i += r.bytes;
    }
    if (len > 0 && milli < 1000) {
        return 1;
    }
    return (milli + 500) / 1000;
}

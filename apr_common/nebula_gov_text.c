/* nebula_gov_text.c: governance text normalisation with an offset map, and
 * keyword search over the result (nebula_gov_text.h). Two passes over the
 * input: the first sizes the output exactly, the second writes the text and
 * the map, so memory is proportional to the output, never a worst case. */
#include <string.h>

#include "nebula_gov_text.h"

#define GOV_REPLACEMENT 0xFFFDu
#define GOV_MAX_EXPAND  4 /* "(20)" from U+2487 is the longest replacement */

/* Decode one code point at in[i]; returns its byte length (>= 1). A byte that
 * does not start a valid, shortest-form sequence is one U+FFFD. */
static apr_size_t gov_decode(const unsigned char *in, apr_size_t i, apr_size_t len,
                             apr_uint32_t *cp)
{
    unsigned char c = in[i];
    apr_uint32_t v, min;
    apr_size_t n, k;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    }
    else {
        *cp = GOV_REPLACEMENT;
        return 1;
    }
    if (i + n > len) {
        *cp = GOV_REPLACEMENT;
        return 1;
    }
    for (k = 1; k < n; ++k) {
        if ((in[i + k] & 0xC0) != 0x80) {
            *cp = GOV_REPLACEMENT;
            return 1;
        }
        v = v << 6 | (in[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = GOV_REPLACEMENT;
        return 1;
    }
    *cp = v;
    return n;
}

static apr_size_t gov_encode(apr_uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int gov_removed(apr_uint32_t cp)
{
    return cp == 0x00AD || cp == 0x034F || cp == 0x180E ||
           (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF ||
           (cp >= 0xE0000 && cp <= 0xE007F);
}

static int gov_space(apr_uint32_t cp)
{
    return cp == 0x00A0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Simple lower-case mapping for the scripts we cover; anything else as is. */
static apr_uint32_t gov_lower(apr_uint32_t cp)
{
    if (cp < 0x80) {
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    }
    if (cp < 0x100) {
        return cp >= 0xC0 && cp <= 0xDE && cp != 0xD7 ? cp + 32 : cp;
    }
    if (cp < 0x180) {
        if (cp == 0x130) {
            return 'i';
        }
        if (cp == 0x178) {
            return 0xFF;
        }
        if (cp == 0x17F) {
            return 's';
        }
        if ((cp < 0x130 || (cp >= 0x132 && cp <= 0x137) ||
             (cp >= 0x14A && cp <= 0x177)) &&
            cp % 2 == 0) {
            return cp + 1;
        }
        if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) &&
            cp % 2 == 1) {
            return cp + 1;
        }
        return cp;
    }
    if (cp >= 0x370 && cp < 0x400) {
        if (cp == 0x370 || cp == 0x372 || cp == 0x376) {
            return cp + 1;
        }
        if (cp == 0x37F) {
            return 0x3F3;
        }
        if (cp == 0x386) {
            return 0x3AC;
        }
        if (cp >= 0x388 && cp <= 0x38A) {
            return cp + 37;
        }
        if (cp == 0x38C) {
            return 0x3CC;
        }
        if (cp == 0x38E || cp == 0x38F) {
            return cp + 63;
        }
        if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) {
            return cp + 32;
        }
        if (cp == 0x3C2) {
            return 0x3C3; /* final sigma, folded */
        }
        if (cp == 0x3CF) {
            return 0x3D7;
        }
        if (cp >= 0x3D8 && cp <= 0x3EF && cp % 2 == 0) {
            return cp + 1;
        }
        if (cp == 0x3F4) {
            return 0x3B8;
        }
        if (cp == 0x3F7 || cp == 0x3FA) {
            return cp + 1;
        }
        if (cp == 0x3F9) {
            return 0x3F2;
        }
        if (cp >= 0x3FD && cp <= 0x3FF) {
            return cp - 130;
        }
        return cp;
    }
    if (cp >= 0x400 && cp < 0x530) {
        if (cp < 0x410) {
            return cp + 0x50;
        }
        if (cp < 0x430) {
            return cp + 0x20;
        }
        if (cp == 0x4C0) {
            return 0x4CF;
        }
        if (((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF) ||
             cp >= 0x4D0) &&
            cp % 2 == 0) {
            return cp + 1;
        }
        if (cp >= 0x4C1 && cp <= 0x4CE && cp % 2 == 1) {
            return cp + 1;
        }
    }
    return cp;
}

/* Half-width katakana U+FF61..U+FF9F to their NFKC forms. */
static const apr_uint16_t gov_halfwidth_kana[] = {
    0x3002, 0x300C, 0x300D, 0x3001, 0x30FB, 0x30F2, 0x30A1, 0x30A3, 0x30A5,
    0x30A7, 0x30A9, 0x30E3, 0x30E5, 0x30E7, 0x30C3, 0x30FC, 0x30A2, 0x30A4,
    0x30A6, 0x30A8, 0x30AA, 0x30AB, 0x30AD, 0x30AF, 0x30B1, 0x30B3, 0x30B5,
    0x30B7, 0x30B9, 0x30BB, 0x30BD, 0x30BF, 0x30C1, 0x30C4, 0x30C6, 0x30C8,
    0x30CA, 0x30CB, 0x30CC, 0x30CD, 0x30CE, 0x30CF, 0x30D2, 0x30D5, 0x30D8,
    0x30DB, 0x30DE, 0x30DF, 0x30E0, 0x30E1, 0x30E2, 0x30E4, 0x30E6, 0x30E8,
    0x30E9, 0x30EA, 0x30EB, 0x30EC, 0x30ED, 0x30EF, 0x30F3, 0x3099, 0x309A};

/* U+FFE0..U+FFE6: ¢ £ ¬ ¯ ¦ ¥ ₩ */
static const apr_uint16_t gov_fullwidth_signs[] = {0xA2, 0xA3, 0xAC,  0xAF,
                                                   0xA6, 0xA5, 0x20A9};

/* Letterlike symbols U+2100..U+2139 that are plain letters under NFKC (the
 * holes of the mathematical alphabets) or are letters in disguise (ohm, kelvin,
 * angstrom signs); 0 = leave alone. */
static const apr_uint16_t gov_letterlike[0x3A] = {
    [0x26] = 0x3C9, [0x2A] = 'k', [0x2B] = 0xE5, [0x02] = 'c', [0x0A] = 'g', [0x0B] = 'h',
    [0x0C] = 'h',   [0x0D] = 'h', [0x0E] = 'h',  [0x10] = 'i', [0x11] = 'i', [0x12] = 'l',
    [0x13] = 'l',   [0x15] = 'n', [0x19] = 'p',  [0x1A] = 'q', [0x1B] = 'r', [0x1C] = 'r',
    [0x1D] = 'r',   [0x24] = 'z', [0x28] = 'z',  [0x2C] = 'b', [0x2D] = 'c', [0x2F] = 'e',
    [0x30] = 'e',   [0x31] = 'f', [0x33] = 'm',  [0x34] = 'o', [0x39] = 'i'};

/* A number 1..20 as decimal digits into out; returns how many. */
static int gov_number(apr_uint32_t n, apr_uint32_t *out)
{
    if (n >= 10) {
        out[0] = '0' + n / 10;
        out[1] = '0' + n % 10;
        return 2;
    }
    out[0] = '0' + n;
    return 1;
}

/* Mathematical alphanumeric symbols U+1D400..U+1D7FF. */
static int gov_math(apr_uint32_t cp, apr_uint32_t *out)
{
    /* after the 25 capitals: nabla; after the 25 small letters: partial and the
     * six variant forms */
    static const apr_uint16_t greek_tail[] = {0x2202, 0x3B5, 0x3B8, 0x3BA,
                                              0x3C6,  0x3C1, 0x3C0};
    apr_uint32_t i;

    if (cp <= 0x1D6A3) {
        i = (cp - 0x1D400) % 52;
        out[0] = i < 26 ? 'a' + i : 'a' + (i - 26);
        return 1;
    }
    if (cp == 0x1D6A4 || cp == 0x1D6A5) {
        out[0] = cp == 0x1D6A4 ? 0x131 : 0x237;
        return 1;
    }
    if (cp >= 0x1D6A8 && cp <= 0x1D7C9) {
        i = (cp - 0x1D6A8) % 58;
        if (i < 25) {
            out[0] = i == 17 ? 0x3B8 : 0x3B1 + i;
        }
        else if (i >= 26 && i < 51) {
            out[0] = i - 26 == 17 ? 0x3C3 : 0x3B1 + (i - 26);
        }
        else if (i == 25) {
            out[0] = 0x2207;
        }
        else {
            out[0] = greek_tail[i - 51];
        }
        return 1;
    }
    if (cp == 0x1D7CA || cp == 0x1D7CB) {
        out[0] = 0x3DD;
        return 1;
    }
    if (cp >= 0x1D7CE) {
        out[0] = '0' + (cp - 0x1D7CE) % 10;
        return 1;
    }
    out[0] = cp;
    return 1;
}

/* The replacement of one code point: 0..GOV_MAX_EXPAND code points in out. */
static int gov_map(apr_uint32_t cp, apr_uint32_t *out)
{
    int n, k;

    if (cp < 0x80) {
        out[0] = gov_lower(cp);
        return 1;
    }
    if (gov_removed(cp)) {
        return 0;
    }
    if (gov_space(cp)) {
        out[0] = ' ';
        return 1;
    }
    if (cp >= 0xFF01 && cp <= 0xFF5E) {
        out[0] = gov_lower(cp - 0xFF01 + 0x21);
        return 1;
    }
    if (cp >= 0xFF61 && cp <= 0xFF9F) {
        out[0] = gov_halfwidth_kana[cp - 0xFF61];
        return 1;
    }
    if (cp >= 0xFFE0 && cp <= 0xFFE6) {
        out[0] = gov_fullwidth_signs[cp - 0xFFE0];
        return 1;
    }
    if (cp >= 0x2100 && cp <= 0x2139 && gov_letterlike[cp - 0x2100]) {
        out[0] = gov_letterlike[cp - 0x2100];
        return 1;
    }
    if (cp >= 0x2460 && cp <= 0x2473) {
        return gov_number(cp - 0x2460 + 1, out);
    }
    if (cp >= 0x2474 && cp <= 0x2487) {
        out[0] = '(';
        n = 1 + gov_number(cp - 0x2474 + 1, out + 1);
        out[n] = ')';
        return n + 1;
    }
    if (cp >= 0x2488 && cp <= 0x249B) {
        n = gov_number(cp - 0x2488 + 1, out);
        out[n] = '.';
        return n + 1;
    }
    if (cp >= 0x249C && cp <= 0x24B5) {
        out[0] = '(';
        out[1] = 'a' + (cp - 0x249C);
        out[2] = ')';
        return 3;
    }
    if (cp >= 0x24B6 && cp <= 0x24CF) {
        out[0] = 'a' + (cp - 0x24B6);
        return 1;
    }
    if (cp >= 0x24D0 && cp <= 0x24E9) {
        out[0] = 'a' + (cp - 0x24D0);
        return 1;
    }
    if (cp == 0x24EA) {
        out[0] = '0';
        return 1;
    }
    if (cp >= 0xFB00 && cp <= 0xFB06) {
        static const char *const lig[] = {"ff", "fi", "fl", "ffi", "ffl", "st", "st"};
        const char *s = lig[cp - 0xFB00];

        for (k = 0; s[k]; ++k) {
            out[k] = (unsigned char)s[k];
        }
        return k;
    }
    if (cp >= 0x1D400 && cp <= 0x1D7FF) {
        n = gov_math(cp, out);
        out[0] = gov_lower(out[0]);
        return n;
    }
    out[0] = gov_lower(cp);
    return 1;
}

/* One pass: with t->text NULL only counts the output bytes. */
static apr_size_t gov_pass(const unsigned char *in, apr_size_t len, nebula_gov_text_t *t)
{
    apr_uint32_t cp, rep[GOV_MAX_EXPAND];
    apr_size_t i = 0, o = 0, n, b, eb;
    char enc[4];
    int k, nrep;

    while (i < len) {
        n = gov_decode(in, i, len, &cp);
        nrep = gov_map(cp, rep);
        for (k = 0; k < nrep; ++k) {
            eb = gov_encode(rep[k], enc);
            if (t) {
                for (b = 0; b < eb; ++b) {
                    t->text[o + b] = enc[b];
                    t->src_start[o + b] = i;
                    t->src_end[o + b] = i + n;
                }
            }
            o += eb;
        }
        i += n;
    }
    return o;
}

nebula_gov_text_t *nebula_gov_normalize_map(apr_pool_t *p, const char *in, apr_size_t len)
{
    nebula_gov_text_t *t = apr_pcalloc(p, sizeof(*t));
    const unsigned char *u = (const unsigned char *)(in ? in : "");

    if (!in) {
        len = 0;
    }
    t->src = in ? in : "";
    t->src_len = len;
    t->len = gov_pass(u, len, NULL);
    t->text = apr_palloc(p, t->len + 1);
    t->src_start = apr_palloc(p, (t->len + 1) * sizeof(apr_size_t));
    t->src_end = apr_palloc(p, (t->len + 1) * sizeof(apr_size_t));
    gov_pass(u, len, t);
    t->text[t->len] = '\0';
    t->src_start[t->len] = len;
    t->src_end[t->len] = len;
    return t;
}

char *nebula_gov_normalize(apr_pool_t *p, const char *in, apr_size_t len,
                           apr_size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)(in ? in : "");
    nebula_gov_text_t t;
    apr_size_t i = 0, o = 0, n, eb;
    apr_uint32_t cp, rep[GOV_MAX_EXPAND];
    int k, nrep;

    if (!in) {
        len = 0;
    }
    t.len = gov_pass(u, len, NULL);
    t.text = apr_palloc(p, t.len + 1);
    while (i < len) {
        n = gov_decode(u, i, len, &cp);
        nrep = gov_map(cp, rep);
        for (k = 0; k < nrep; ++k) {
            eb = gov_encode(rep[k], t.text + o);
            o += eb;
        }
        i += n;
    }
    t.text[o] = '\0';
    if (out_len) {
        *out_len = o;
    }
    return t.text;
}

int nebula_gov_text_orig(const nebula_gov_text_t *t, apr_size_t start, apr_size_t end,
                         apr_size_t *orig_start, apr_size_t *orig_end)
{
    if (start > end || end > t->len) {
        return -1;
    }
    *orig_start = t->src_start[start];
    *orig_end = start == end ? t->src_start[start] : t->src_end[end - 1];
    return 0;
}

static int gov_wordchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int nebula_gov_keyword_find(apr_pool_t *p, const nebula_gov_text_t *t,
                            const char *const *keywords, int nkw, int flags, int max,
                            apr_array_header_t **matches)
{
    apr_size_t *klen, *next, i;
    int k, found = 0;

    if (!*matches) {
        *matches = apr_array_make(p, 8, sizeof(nebula_gov_match_t));
    }
    if (nkw <= 0 || t->len == 0) {
        return 0;
    }
    klen = apr_palloc(p, nkw * sizeof(*klen));
    next = apr_pcalloc(p, nkw * sizeof(*next));
    for (k = 0; k < nkw; ++k) {
        klen[k] = keywords[k] ? strlen(keywords[k]) : 0;
    }
    for (i = 0; i < t->len; ++i) {
        for (k = 0; k < nkw; ++k) {
            nebula_gov_match_t *m;

            if (!klen[k] || i < next[k] || klen[k] > t->len - i ||
                t->text[i] != keywords[k][0] ||
                memcmp(t->text + i, keywords[k], klen[k]) != 0) {
                continue;
            }
            if ((flags & NEBULA_GOV_KW_WORD) &&
                ((i > 0 && gov_wordchar(t->text[i - 1])) ||
                 (i + klen[k] < t->len && gov_wordchar(t->text[i + klen[k]])))) {
                continue;
            }
            m = apr_array_push(*matches);
            m->keyword = k;
            m->start = i;
            m->end = i + klen[k];
            nebula_gov_text_orig(t, m->start, m->end, &m->orig_start, &m->orig_end);
            next[k] = m->end;
            if (++found == max) {
                return found;
            }
        }
    }
    return found;
}

/**
 * @file nebula_gov_text.h
 * @brief Governance text normalisation: prompt text folded to a canonical form
 *        so that keyword rules are not defeated by trivial evasion, with an
 *        offset map back to the original bytes (for redaction).
 *
 * nebula_gov_normalize() turns UTF-8 into UTF-8, one code point at a time:
 * - invalid UTF-8 (stray continuation bytes, truncated or overlong sequences,
 *   surrogates, values above U+10FFFF) becomes U+FFFD, one per bad byte;
 * - removed: zero-width and format characters U+00AD, U+034F, U+180E,
 *   U+200B..U+200F, U+202A..U+202E, U+2060..U+2064, U+2066..U+206F,
 *   variation selectors U+FE00..U+FE0F, U+FEFF, tag characters U+E0000..U+E007F;
 * - to ASCII space: U+00A0, U+2000..U+200A, U+202F, U+205F, U+3000;
 * - compatibility forms (as NFKC does): full-width ASCII U+FF01..U+FF5E,
 *   half-width katakana U+FF61..U+FF9F (to the full-width forms, voiced marks
 *   left uncomposed), U+FFE0..U+FFE6; circled and parenthesised latin letters
 *   and digits U+2460..U+24EA ("⑴" -> "(1)", "⒈" -> "1.", "Ⓐ" -> "a");
 *   mathematical alphanumerics U+1D400..U+1D7FF and the letterlike symbols
 *   that fill their holes (ℎ ℂ ℕ ...) to plain latin/greek letters and digits;
 *   ligatures U+FB00..U+FB06 ("ﬁ" -> "fi"), U+017F long s -> "s";
 * - lower-cased (simple case mapping): ASCII, Latin-1, Latin Extended-A,
 *   Greek (final sigma folded to σ) and Cyrillic (U+0400..U+052F).
 * Not done: canonical composition/decomposition (accents stay as written),
 * lower-casing of Latin Extended-B and beyond, confusable (homoglyph) folding
 * across scripts (Cyrillic "а" stays "а"), whitespace collapsing. The result
 * is idempotent: normalising normalised text changes nothing.
 *
 * The offset map: for every byte i of the normalised text (0 <= i < len),
 * src_start[i] and src_end[i] delimit the input character that produced it
 * (several output bytes share one source character: "ﬁ" -> "f","i" both map
 * to the 3 input bytes). src_start[len] == src_end[len] == the input length.
 * Removed characters produce no byte, so a match [s, e) in the normalised text
 * covers the input bytes [src_start[s], src_end[e - 1]); characters removed
 * inside the match (a zero-width space splitting a keyword) fall within that
 * range, those around it do not. nebula_gov_text_orig() does this arithmetic.
 */
#ifndef NEBULA_GOV_TEXT_H
#define NEBULA_GOV_TEXT_H

#include <apr_pools.h>
#include <apr_tables.h>

/** Normalised text with its map back to the input. */
typedef struct {
    const char *src; /**< the input (borrowed, not copied) */
    apr_size_t src_len;
    char *text;            /**< normalised UTF-8, NUL-terminated */
    apr_size_t len;        /**< bytes in text, without the NUL */
    apr_size_t *src_start; /**< len + 1 entries, see the file comment */
    apr_size_t *src_end;   /**< len + 1 entries */
} nebula_gov_text_t;

/** Normalise @a len bytes of @a in; returns the NUL-terminated text from
 *  @a p and its length in @a *out_len (may be NULL). @a in may be NULL when
 *  @a len is 0. */
char *nebula_gov_normalize(apr_pool_t *p, const char *in, apr_size_t len,
                           apr_size_t *out_len);

/** Normalise and build the offset map (all from @a p). */
nebula_gov_text_t *nebula_gov_normalize_map(apr_pool_t *p, const char *in,
                                            apr_size_t len);

/** Map the normalised span [@a start, @a end) back to the input byte range
 *  [*@a orig_start, *@a orig_end). An empty span maps to an empty range at
 *  src_start[start]. Returns 0, or -1 when the span is out of range. */
int nebula_gov_text_orig(const nebula_gov_text_t *t, apr_size_t start, apr_size_t end,
                         apr_size_t *orig_start, apr_size_t *orig_end);

/** One keyword occurrence. */
typedef struct {
    int keyword;                     /**< index into the keyword list */
    apr_size_t start, end;           /**< byte span in the normalised text */
    apr_size_t orig_start, orig_end; /**< byte span in the input */
} nebula_gov_match_t;

/** Flags for nebula_gov_keyword_find(). */
/** A match must not have an ASCII letter or digit just before or after it
 *  (so "ass" does not match inside "class"); non-ASCII neighbours, e.g. CJK
 *  text, never count as word characters. */
#define NEBULA_GOV_KW_WORD 0x1

/**
 * Find every occurrence of each of the @a nkw keywords (already normalised:
 * pass them through nebula_gov_normalize() first; empty ones are skipped) in
 * @a t. The occurrences of one keyword do not overlap each other (scan
 * resumes after a match); different keywords may overlap. Matches are
 * appended to @a *matches (an array of nebula_gov_match_t created from @a p
 * when *matches is NULL), ordered by start, then by keyword index. At most
 * @a max matches are reported (0: no limit). Returns the number found.
 */
int nebula_gov_keyword_find(apr_pool_t *p, const nebula_gov_text_t *t,
                            const char *const *keywords, int nkw, int flags, int max,
                            apr_array_header_t **matches);

#endif /* NEBULA_GOV_TEXT_H */

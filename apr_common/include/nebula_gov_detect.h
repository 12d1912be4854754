/**
 * @file nebula_gov_detect.h
 * @brief Built-in sensitive-data detectors for governance: hand-written
 *        scanners (no regex library) returning byte spans over the text.
 *
 * The detectors, by name (nebula_gov_detector_name()):
 * - "email":  local@domain.tld: local part [A-Za-z0-9._%+-] (no leading,
 *   trailing or doubled dot), domain labels [A-Za-z0-9-] (not starting or
 *   ending with '-'), at least two labels, the last 2..63 letters.
 * - "phone":  E.164 "+" then 8..15 digits (first not 0), groups separated by
 *   one space, '-' or '.', the first group optionally in parentheses;
 *   Chinese mobile 1[3-9] + 9 digits, bare or 3-4-4 grouped, optionally after
 *   "+86"/"86" (no '+': then grouped with a separator); national numbers of
 *   10..11 digits written in 2+ groups (at least one separator; "(0xx)" or
 *   "(xxx)" area codes; the last group 4 digits; with '.' only the 3.3.4 form,
 *   so IP addresses and dates do not match). Bare digit runs other than a
 *   Chinese mobile are not phones (too many order numbers, timestamps).
 * - "card":   13..19 digits, optionally in groups split by single spaces or
 *   dashes (one kind per number), Luhn-valid, with a known IIN: Visa 4,
 *   Mastercard 51-55 and 2221-2720, Amex 34/37, Discover 6011/644-649/65,
 *   JCB 3528-3589, Diners 300-305/36/38/39, UnionPay 62/81, Maestro 50/56-58/
 *   63/67/68, Mir 2200-2204.
 * - "cn_id":  Chinese resident identity number (GB 11643-1999): 17 digits and
 *   a check character (0-9, X or x), valid ISO 7064 MOD 11-2 checksum, a
 *   province code 11..82 and a real birth date YYYYMMDD 1900-01-01..2099-12-31.
 * - "secret": API-key-like tokens: sk-ant-... (Anthropic) and sk-... (OpenAI,
 *   incl. sk-proj-) with at least 20 more [A-Za-z0-9_-]; AKIA/ASIA + 16
 *   [0-9A-Z] (AWS access key ids); ghp_/gho_/ghu_/ghs_/ghr_ + 36 [A-Za-z0-9]
 *   and github_pat_ + 22 or more [A-Za-z0-9_]; Slack xoxb-/xoxa-/xoxp- + 10 or
 *   more [A-Za-z0-9-]; Google AIza + 35 [0-9A-Za-z_-]; and any other run of
 *   32..512 token characters [A-Za-z0-9_-] that holds upper case letters,
 *   lower case letters and digits, whose Shannon entropy is at least
 *   NEBULA_GOV_SECRET_MIN_ENTROPY (3.5) bits per character and whose runs of
 *   lower-case letters are on average shorter than
 *   NEBULA_GOV_SECRET_MAX_LOWER_RUN (3.5). Random base62 keys of 32 characters
 *   have an entropy of 4.0..5.0 and lower-case runs of 1.7 on average (3.5 is
 *   reached by well under 1% of them); CamelCase identifiers reach an entropy of
 *   4.2 too, but their words make lower-case runs of 3.7..6; hex digests and
 *   UUIDs lack upper case (or lower case); repeated characters have a low
 *   entropy.
 *
 * Every match must sit on token boundaries: the byte before and after it is
 * not an ASCII letter or digit (nor, for secrets, a token character).
 * Spans are over the bytes passed in (use the original text, not the
 * normalised one: case and the '+'/'-' characters matter here).
 */
#ifndef NEBULA_GOV_DETECT_H
#define NEBULA_GOV_DETECT_H

#include <apr_pools.h>
#include <apr_tables.h>

#define NEBULA_GOV_SECRET_MIN_ENTROPY   3.5
#define NEBULA_GOV_SECRET_MAX_LOWER_RUN 3.5
#define NEBULA_GOV_SECRET_MIN_LEN       32
#define NEBULA_GOV_SECRET_MAX_LEN       512

/** Detector bits, in the priority order used to resolve overlaps. */
typedef enum {
    NEBULA_GOV_DET_SECRET = 1 << 0,
    NEBULA_GOV_DET_CN_ID = 1 << 1,
    NEBULA_GOV_DET_CARD = 1 << 2,
    NEBULA_GOV_DET_EMAIL = 1 << 3,
    NEBULA_GOV_DET_PHONE = 1 << 4,
    NEBULA_GOV_DET_ALL = (1 << 5) - 1
} nebula_gov_detector_e;

/** One detected item: the half-open byte range [start, end). */
typedef struct {
    nebula_gov_detector_e detector;
    const char *name; /**< the detector's name (static string) */
    apr_size_t start, end;
} nebula_gov_span_t;

/** "secret", "cn_id", "card", "email", "phone"; NULL for anything else. */
const char *nebula_gov_detector_name(nebula_gov_detector_e d);

/** The detector bit for a name (case-sensitive), 0 when unknown. */
nebula_gov_detector_e nebula_gov_detector_by_name(const char *name);

/**
 * Run ONE detector (@a d a single bit) over @a len bytes of @a text and append
 * its matches, in order of start, to @a out (an array of nebula_gov_span_t).
 * Returns the number appended.
 */
int nebula_gov_detect_one(nebula_gov_detector_e d, const char *text, apr_size_t len,
                          apr_array_header_t *out);

/**
 * Run every detector in @a mask; the result (from @a p, in @a *spans) is
 * sorted by start and free of overlaps: where spans overlap, the one from the
 * higher-priority detector (lower bit: secret, cn_id, card, email, phone)
 * wins, then the earlier, then the longer. Returns the number of spans.
 */
int nebula_gov_detect(apr_pool_t *p, const char *text, apr_size_t len, unsigned mask,
                      apr_array_header_t **spans);

/** Add to @a kept (sorted by start, free of overlaps) each of the @a n
 *  spans of @a add that overlaps none of it; @a kept stays sorted. Calling
 *  it once per detector, highest priority first, resolves overlaps as
 *  nebula_gov_detect() does. */
void nebula_gov_spans_keep(apr_array_header_t *kept, const nebula_gov_span_t *add, int n);

/** Helpers, exposed for tests and for rules that validate captured values:
 *  the Luhn check over the digits of @a s (other bytes ignored; false with
 *  fewer than 2 digits), and the GB 11643 check of an 18-character id. */
int nebula_gov_luhn_ok(const char *s, apr_size_t len);
int nebula_gov_cn_id_ok(const char *s, apr_size_t len);

/** Shannon entropy in bits per byte of @a len bytes (0 for len 0). */
double nebula_gov_entropy(const char *s, apr_size_t len);

#endif /* NEBULA_GOV_DETECT_H */

/* nebula_tokens.c: exact token counts for OpenAI's BPE encodings (o200k_base,
 * cl100k_base), compatible with tiktoken's encode_ordinary(). Owns the rank
 * tables (one- and two-byte tokens indexed directly, tokens of up to 8 bytes
 * in an open-addressing hash keyed by their bytes, longer ones in a second
 * hash over one blob of their bytes; all malloc'd and freed by a cleanup of
 * the load pool), the compiled split pattern, the memo of recent texts'
 * counts (shared by the threads, under a mutex), and the per-call scratch of
 * nebula_tokens_count(): malloc'd because the API has no pool, freed before
 * it returns. The algorithm is described in nebula_tokens.h
 * and docs/tokens.md; this is our own implementation of it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "nebula_crypto.h"
#include "nebula_tokens.h"

/* Pieces up to this many bytes are merged in stack arrays by rescanning for
 * the lowest rank (quadratic, but tiny); longer ones with a heap. Overridable
 * so that a test build can send every piece through the heap. */
#ifndef NEBULA_TOKENS_SMALL_MAX
#define NEBULA_TOKENS_SMALL_MAX 64
#endif

/* "no such token" */
#define TOKENS_NONE ((apr_uint32_t)0xFFFFFFFFu)
/* the longest piece: the long merger indexes its bytes with 32 bits */
#define TOKENS_PIECE_MAX ((apr_size_t)0x3FFFFFFFu)

/* Unicode White_Space, which is what \s means to Rust's regex (and so to
 * tiktoken). PCRE2's \s differs (ASCII only, or with UCP also U+180E). */
#define WS                                                                               \
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"               \
    "\\x{202F}\\x{205F}\\x{3000}"
/* tiktoken's optional contraction suffix of o200k_base */
#define O200K_CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
#define O200K_UPPER       "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define O200K_LOWER       "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"

typedef struct {
    const char *name;
    const char *pattern; /* tiktoken's pat_str in PCRE2 spelling: \s -> [WS], $ -> \z */
    const char *sha256;  /* of OpenAI's published rank file */
} tokens_spec_t;

static const tokens_spec_t tokens_specs[] = {
    {NEBULA_TOKENS_O200K_BASE,
     "[^\\r\\n\\p{L}\\p{N}]?" O200K_UPPER "*" O200K_LOWER "+" O200K_CONTRACTION
     "|[^\\r\\n\\p{L}\\p{N}]?" O200K_UPPER "+" O200K_LOWER "*" O200K_CONTRACTION
     "|\\p{N}{1,3}"
     "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*"
     "|[" WS "]*[\\r\\n]+"
     "|[" WS "]+(?![^" WS "])"
     "|[" WS "]+",
     "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"},
    {NEBULA_TOKENS_CL100K_BASE,
     "'(?i:[sdmt]|ll|ve|re)"
     "|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++"
     "|\\p{N}{1,3}+"
     "| ?[^" WS "\\p{L}\\p{N}]++[\\r\\n]*+"
     "|[" WS "]++\\z"
     "|[" WS "]*[\\r\\n]"
     "|[" WS "]+(?![^" WS "])"
     "|[" WS "]",
     "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"},
};

/* Tokens of 3 to 8 bytes (most of both vocabularies) are keyed by their
 * bytes in one word, so a lookup touches one slot and no blob. */
#define TOKENS_SHORT_MAX 8

typedef struct {
    apr_uint64_t w;    /* the token's bytes, zero-padded */
    apr_uint32_t len;  /* 0: empty slot */
    apr_uint32_t rank; /* TOKENS_NONE in an empty slot */
} tokens_short_t;

typedef struct {
    apr_uint32_t tag;  /* high bits of the hash: most misses end here */
    apr_uint32_t off;  /* of the token's bytes in the blob */
    apr_uint32_t len;  /* 0: empty slot */
    apr_uint32_t rank; /* TOKENS_NONE in an empty slot */
} tokens_slot_t;

/* Counts of texts seen before (the memo). Requests repeat their texts: a
 * conversation resends its history every turn, an application sends the
 * same system prompt with every request. A text is known by the first 16
 * bytes of its SHA-256, so a client cannot make two texts share a count.
 * Two ways a set; the way used less recently is replaced. */
#define TOKENS_MEMO_MIN  128  /* shorter texts count faster than they hash */
#define TOKENS_MEMO_SETS 1024 /* 2 048 texts, 48 KB an encoding */

typedef struct {
    unsigned char d[16];
    apr_uint32_t count;
    apr_uint32_t used; /* the memo's clock when last read or written; 0: empty */
} tokens_memo_t;

struct nebula_tokens_enc_t {
    const char *name;
    pcre2_code *re;
    apr_uint32_t rank1[256]; /* one-byte tokens, by the byte */
    apr_uint32_t *rank2;     /* two-byte tokens, by the bytes (65 536 entries) */
    tokens_short_t *shorts;  /* 3 to TOKENS_SHORT_MAX bytes */
    apr_size_t short_mask;
    unsigned char *blob;     /* the longer tokens' bytes, back to back */
    tokens_slot_t *slots;    /* the longer tokens */
    apr_size_t mask;         /* slot count - 1 (a power of two minus one) */
    apr_size_t max_len;      /* of any token: longer slices need no lookup */
    tokens_memo_t *memo;     /* TOKENS_MEMO_SETS sets of two, under memo_lock */
    pthread_mutex_t memo_lock;
    apr_uint32_t memo_clock;
    int memo_lock_made;
};

/* Scratch one count call reuses from piece to piece (malloc'd). */
typedef struct {
    void *mem;
    apr_size_t cap;
} tokens_scratch_t;

/* ---- the rank table -------------------------------------------------- */

static apr_uint64_t tokens_mix(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

static apr_uint64_t tokens_hash(const unsigned char *s, apr_size_t n)
{
    apr_uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((apr_uint64_t)n * 0xC2B2AE3D27D4EB4FULL);
    apr_uint64_t w;

    while (n >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDULL;
    return h ^ (h >> 32);
}

/* The short slot holding s[0..n) (3 <= n <= TOKENS_SHORT_MAX), or the empty
 * slot where it would go. */
static tokens_short_t *tokens_short(const nebula_tokens_enc_t *e, const unsigned char *s,
                                    apr_size_t n)
{
    apr_uint64_t w = 0;
    apr_size_t i;

    memcpy(&w, s, n);
    i = (apr_size_t)tokens_mix(w ^ (apr_uint64_t)n << 59) & e->short_mask;
    for (;;) {
        tokens_short_t *sl = &e->shorts[i];

        if (sl->len == 0 || (sl->w == w && sl->len == n)) {
            return sl;
        }
        i = (i + 1) & e->short_mask;
    }
}

/* The long slot holding s[0..n) (n > TOKENS_SHORT_MAX), or the empty slot
 * where it would go. */
static tokens_slot_t *tokens_slot(const nebula_tokens_enc_t *e, const unsigned char *s,
                                  apr_size_t n)
{
    apr_uint64_t h = tokens_hash(s, n);
    apr_size_t i = (apr_size_t)h & e->mask;
    apr_uint32_t tag = (apr_uint32_t)(h >> 32);

    for (;;) {
        tokens_slot_t *sl = &e->slots[i];

        if (sl->len == 0 ||
            (sl->tag == tag && sl->len == n && memcmp(e->blob + sl->off, s, n) == 0)) {
            return sl;
        }
        i = (i + 1) & e->mask;
    }
}

static apr_uint32_t tokens_rank(const nebula_tokens_enc_t *e, const unsigned char *s,
                                apr_size_t n)
{
    if (n == 2) {
        return e->rank2[(apr_size_t)s[0] << 8 | s[1]];
    }
    if (n <= TOKENS_SHORT_MAX) {
        return n == 1 ? e->rank1[s[0]] : n == 0 ? TOKENS_NONE : tokens_short(e, s, n)->rank;
    }
    if (n > e->max_len) {
        return TOKENS_NONE;
    }
    return tokens_slot(e, s, n)->rank;
}

static apr_status_t tokens_enc_cleanup(void *data)
{
    nebula_tokens_enc_t *e = data;

    free(e->blob);
    free(e->slots);
    free(e->shorts);
    free(e->rank2);
    free(e->memo);
    if (e->memo_lock_made) {
        pthread_mutex_destroy(&e->memo_lock);
    }
    if (e->re) {
        pcre2_code_free(e->re);
    }
    memset(e, 0, sizeof(*e));
    return APR_SUCCESS;
}

/* ---- loading --------------------------------------------------------- */

static int tokens_b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict padded base64 of s[0..n) into out; returns the byte count or -1. */
static long tokens_b64decode(const char *s, apr_size_t n, unsigned char *out)
{
    apr_size_t i, o = 0;

    if (n == 0 || n % 4 != 0) {
        return -1;
    }
    for (i = 0; i < n; i += 4) {
        int v[4], k, pad = 0;

        for (k = 0; k < 4; ++k) {
            unsigned char c = (unsigned char)s[i + k];

            v[k] = 0;
            if (c == '=' && i + 4 == n && k >= 2) {
                ++pad;
            }
            else if (pad || (v[k] = tokens_b64val(c)) < 0) {
                return -1;
            }
        }
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2) {
            out[o++] = (unsigned char)((v[1] & 0x0F) << 4 | v[2] >> 2);
        }
        if (pad < 1) {
            out[o++] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
        }
    }
    return (long)o;
}

/* Put one token in its table; NULL or an error text. Only tokens longer
 * than TOKENS_SHORT_MAX keep their bytes in the blob. */
static const char *tokens_put(apr_pool_t *p, nebula_tokens_enc_t *e, apr_size_t *blob_len,
                              apr_size_t tlen, unsigned long rank)
{
    const unsigned char *t = e->blob + *blob_len;
    apr_uint32_t *cell = NULL;

    if (tlen == 1) {
        cell = &e->rank1[t[0]];
    }
    else if (tlen == 2) {
        cell = &e->rank2[(apr_size_t)t[0] << 8 | t[1]];
    }
    else if (tlen <= TOKENS_SHORT_MAX) {
        tokens_short_t *ss = tokens_short(e, t, tlen);

        if (ss->len == 0) {
            memcpy(&ss->w, t, tlen);
            ss->len = (apr_uint32_t)tlen;
        }
        else {
            ss = NULL;
        }
        cell = ss ? &ss->rank : NULL;
    }
    else {
        tokens_slot_t *sl = tokens_slot(e, t, tlen);

        if (sl->len == 0) {
            sl->tag = (apr_uint32_t)(tokens_hash(t, tlen) >> 32);
            sl->off = (apr_uint32_t)*blob_len;
            sl->len = (apr_uint32_t)tlen;
            *blob_len += tlen;
            cell = &sl->rank;
        }
    }
    if (cell == NULL || *cell != TOKENS_NONE) {
        return apr_psprintf(p, "duplicate token (rank %lu)", rank);
    }
    *cell = (apr_uint32_t)rank;
    if (tlen > e->max_len) {
        e->max_len = tlen;
    }
    return NULL;
}

/* Parse one "<base64> <rank>" line into the tables; NULL or an error text. */
static const char *tokens_add_line(apr_pool_t *p, nebula_tokens_enc_t *e,
                                   apr_size_t *blob_len, const char *line, apr_size_t n)
{
    const char *sp = memchr(line, ' ', n);
    char digits[16];
    apr_size_t dlen;
    unsigned long rank;
    char *end;
    long tlen;

    if (sp == NULL) {
        return "no space";
    }
    tlen = tokens_b64decode(line, (apr_size_t)(sp - line), e->blob + *blob_len);
    dlen = n - (apr_size_t)(sp - line) - 1;
    if (tlen <= 0) {
        return "bad base64";
    }
    if (dlen == 0 || dlen >= sizeof(digits) || !apr_isdigit(sp[1])) {
        return "bad rank";
    }
    memcpy(digits, sp + 1, dlen);
    digits[dlen] = '\0';
    rank = strtoul(digits, &end, 10);
    if (*end != '\0' || rank >= TOKENS_NONE) {
        return "bad rank";
    }
    return tokens_put(p, e, blob_len, (apr_size_t)tlen, rank);
}

/* The decoded length of a line's base64 (the text before its space), to
 * size the tables before they are filled; 0 when it is no base64. */
static apr_size_t tokens_line_len(const char *line, apr_size_t n)
{
    const char *sp = memchr(line, ' ', n);
    apr_size_t b = sp ? (apr_size_t)(sp - line) : 0;

    if (b == 0 || b % 4 != 0) {
        return 0;
    }
    return b / 4 * 3 - (line[b - 1] == '=') - (line[b - 2] == '=');
}

static apr_size_t tokens_pow2(apr_size_t want)
{
    apr_size_t n = 16;

    while (n < want) {
        n *= 2;
    }
    return n;
}

/* Size the tables for the file's lines and fill them; NULL or an error text. */
static const char *tokens_parse(apr_pool_t *p, nebula_tokens_enc_t *e, const char *buf,
                                apr_size_t len)
{
    apr_size_t nshort = 0, nlong = 0, i, blob_len = 0, lineno = 0, slots, shorts;
    const char *s = buf, *end = buf + len;
    unsigned char *shrunk;

    while (s < end) {
        const char *nl = memchr(s, '\n', (apr_size_t)(end - s));
        apr_size_t n = nl ? (apr_size_t)(nl - s) : (apr_size_t)(end - s);
        apr_size_t tlen = tokens_line_len(s, n);

        nshort += tlen > 2 && tlen <= TOKENS_SHORT_MAX;
        nlong += tlen > TOKENS_SHORT_MAX;
        s += n + 1;
    }
    /* at most half full, so that a miss ends after a probe or two */
    slots = tokens_pow2(2 * (nlong + 1));
    shorts = tokens_pow2(2 * (nshort + 1));
    e->mask = slots - 1;
    e->short_mask = shorts - 1;
    e->slots = malloc(slots * sizeof(*e->slots));
    e->shorts = malloc(shorts * sizeof(*e->shorts));
    e->rank2 = malloc(65536 * sizeof(*e->rank2));
    e->blob = malloc(len + 1);
    if (e->slots == NULL || e->shorts == NULL || e->rank2 == NULL || e->blob == NULL
        || len >= TOKENS_NONE) {
        return "out of memory";
    }
    for (i = 0; i < slots; ++i) {
        e->slots[i].len = 0;
        e->slots[i].rank = TOKENS_NONE;
    }
    for (i = 0; i < shorts; ++i) {
        e->shorts[i].w = 0;
        e->shorts[i].len = 0;
        e->shorts[i].rank = TOKENS_NONE;
    }
    for (i = 0; i < 65536; ++i) {
        e->rank2[i] = TOKENS_NONE;
    }
    for (i = 0; i < 256; ++i) {
        e->rank1[i] = TOKENS_NONE;
    }
    s = buf;
    while (s < end) {
        const char *nl = memchr(s, '\n', (apr_size_t)(end - s));
        apr_size_t n = nl ? (apr_size_t)(nl - s) : (apr_size_t)(end - s);
        const char *why;

        ++lineno;
        if (n > 0 && (why = tokens_add_line(p, e, &blob_len, s, n)) != NULL) {
            return apr_psprintf(p, "line %" APR_SIZE_T_FMT ": %s", lineno, why);
        }
        s += n + 1;
    }
    if (blob_len > 0 && (shrunk = realloc(e->blob, blob_len)) != NULL) {
        e->blob = shrunk; /* the longer tokens' bytes: a fraction of the file */
    }
    for (i = 0; i < 256; ++i) {
        unsigned char b = (unsigned char)i;

        if (tokens_rank(e, &b, 1) == TOKENS_NONE) {
            return apr_psprintf(p, "byte 0x%02x has no token", (unsigned)i);
        }
    }
    return NULL;
}

static const char *tokens_read_file(apr_pool_t *p, const char *path, char **buf,
                                    apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char ebuf[128];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS && (fi.size <= 0 || fi.size > 64 * 1024 * 1024)) {
            apr_file_close(f);
            return "not a rank file (empty or over 64 MB)";
        }
        if (rv == APR_SUCCESS && (*buf = malloc((apr_size_t)fi.size)) == NULL) {
            rv = APR_ENOMEM;
        }
        if (rv == APR_SUCCESS) {
            *len = (apr_size_t)fi.size;
            rv = apr_file_read_full(f, *buf, *len, NULL);
            if (rv != APR_SUCCESS) {
                free(*buf);
                *buf = NULL;
            }
        }
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        return apr_pstrdup(p, apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    return NULL;
}

static const char *tokens_compile(apr_pool_t *p, nebula_tokens_enc_t *e,
                                  const tokens_spec_t *spec)
{
    int errcode;
    PCRE2_SIZE erroff;
    PCRE2_UCHAR msg[160];

    e->re = pcre2_compile((PCRE2_SPTR)spec->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                          &errcode, &erroff, NULL);
    if (e->re == NULL) {
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return apr_psprintf(p, "split pattern: %s at offset %" APR_SIZE_T_FMT,
                            (const char *)msg, (apr_size_t)erroff);
    }
    /* JIT is an optimisation: without it (or when it fails) the interpreter
     * gives the same matches. */
    (void)pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE);
    return NULL;
}

nebula_tokens_enc_t *nebula_tokens_load(apr_pool_t *p, const char *path, const char *name,
                                        const char **err)
{
    const tokens_spec_t *spec = NULL;
    nebula_tokens_enc_t *e;
    const char *why, *sha;
    char *buf = NULL;
    apr_size_t len = 0, i;

    for (i = 0; i < sizeof(tokens_specs) / sizeof(tokens_specs[0]); ++i) {
        if (name && strcmp(name, tokens_specs[i].name) == 0) {
            spec = &tokens_specs[i];
        }
    }
    if (spec == NULL) {
        *err = apr_psprintf(p, "unknown encoding '%s' (known: o200k_base, cl100k_base)",
                            name ? name : "(null)");
        return NULL;
    }
    e = apr_pcalloc(p, sizeof(*e));
    e->name = spec->name;
    apr_pool_cleanup_register(p, e, tokens_enc_cleanup, apr_pool_cleanup_null);
    why = tokens_read_file(p, path, &buf, &len);
    if (why == NULL) {
        sha = nebula_crypto_sha256_hex(p, buf, len);
        if (sha == NULL || strcmp(sha, spec->sha256) != 0) {
            why = apr_psprintf(p, "sha256 %s is not the %s rank file's %s",
                               sha ? sha : "(failed)", spec->name, spec->sha256);
        }
    }
    if (why == NULL) {
        why = tokens_parse(p, e, buf, len);
    }
    free(buf);
    if (why == NULL) {
        why = tokens_compile(p, e, spec);
    }
    if (why == NULL) {
        /* without it every count is computed: not an error */
        e->memo = calloc(2 * TOKENS_MEMO_SETS, sizeof(*e->memo));
        if (e->memo && pthread_mutex_init(&e->memo_lock, NULL) == 0) {
            e->memo_lock_made = 1;
        }
        else {
            free(e->memo);
            e->memo = NULL;
        }
    }
    if (why != NULL) {
        *err = apr_psprintf(p, "%s: %s", path, why);
        apr_pool_cleanup_run(p, e, tokens_enc_cleanup);
        return NULL;
    }
    return e;
}

const char *nebula_tokens_name(const nebula_tokens_enc_t *e)
{
    return e->name;
}

/* ---- merging one piece ----------------------------------------------- */

/* Parts start at pos[0..m) (pos[m] is the end); pr[i] is the rank of parts i
 * and i+1 joined. Repeatedly join the lowest-ranked pair, the leftmost on a
 * tie, until no pair is a token. Returns the number of parts left. */
static apr_size_t tokens_merge_small(const nebula_tokens_enc_t *e, const unsigned char *s,
                                     apr_size_t n)
{
    apr_uint32_t pos[NEBULA_TOKENS_SMALL_MAX + 1], pr[NEBULA_TOKENS_SMALL_MAX];
    apr_size_t m = n, i, best;

    for (i = 0; i <= n; ++i) {
        pos[i] = (apr_uint32_t)i;
    }
    for (i = 0; i + 1 < n; ++i) {
        pr[i] = tokens_rank(e, s + i, 2);
    }
    while (m > 1) {
        best = 0;
        for (i = 1; i + 1 < m; ++i) {
            if (pr[i] < pr[best]) {
                best = i;
            }
        }
        if (pr[best] == TOKENS_NONE) {
            break;
        }
        /* part best+1 joins part best */
        memmove(pos + best + 1, pos + best + 2, (m - best - 1) * sizeof(pos[0]));
        if (m > best + 3) {
            memmove(pr + best + 1, pr + best + 2, (m - best - 3) * sizeof(pr[0]));
        }
        --m;
        pr[best] = best + 1 < m ? tokens_rank(e, s + pos[best], pos[best + 2] - pos[best])
                                : TOKENS_NONE;
        if (best > 0) {
            pr[best - 1] =
                tokens_rank(e, s + pos[best - 1], pos[best + 1] - pos[best - 1]);
        }
    }
    return m;
}

/* The long-piece merger's candidates are 64-bit keys, rank << 32 | start, in
 * a 4-ary min-heap: the smallest key is the lowest rank, leftmost on a tie,
 * and four children share a cache line. */
#define TOKENS_KEY(rank, start) ((apr_uint64_t)(rank) << 32 | (start))

static void tokens_heap_push(apr_uint64_t *h, apr_size_t *n, apr_uint64_t key)
{
    apr_size_t i = (*n)++;

    while (i > 0 && key < h[(i - 1) / 4]) {
        h[i] = h[(i - 1) / 4];
        i = (i - 1) / 4;
    }
    h[i] = key;
}

/* Remove the smallest key (the heap must not be empty). */
static apr_uint64_t tokens_heap_pop(apr_uint64_t *h, apr_size_t *n)
{
    apr_uint64_t top = h[0], last = h[--*n];
    apr_size_t i = 0, c, k, best;

    while ((c = 4 * i + 1) < *n) {
        best = c;
        for (k = c + 1; k < c + 4 && k < *n; ++k) {
            if (h[k] < h[best]) {
                best = k;
            }
        }
        if (last <= h[best]) {
            break;
        }
        h[i] = h[best];
        i = best;
    }
    h[i] = last;
    return top;
}

/* State of the long-piece merger: parts are a linked list indexed by their
 * first byte; rank[l] is the rank of part l joined with its right neighbour
 * (TOKENS_NONE if that is no token), which is also how a heap entry made
 * stale by a later merge is told apart: its rank no longer matches. (Ranks
 * are unique per token in both encodings, so a pair whose bytes changed
 * cannot keep its rank.) */
typedef struct {
    const nebula_tokens_enc_t *e;
    const unsigned char *s;
    apr_uint32_t n;
    apr_uint32_t *nxt, *prv, *rank;
    apr_uint64_t *heap;
    apr_size_t hn;
} tokens_merge_t;

/* Recompute the candidate "part l joined with its right neighbour". */
static void tokens_merge_offer(tokens_merge_t *m, apr_uint32_t l)
{
    apr_uint32_t r = m->nxt[l];

    m->rank[l] = r < m->n ? tokens_rank(m->e, m->s + l, m->nxt[r] - l) : TOKENS_NONE;
    if (m->rank[l] != TOKENS_NONE) {
        tokens_heap_push(m->heap, &m->hn, TOKENS_KEY(m->rank[l], l));
    }
}

/* The same merge order as tokens_merge_small() in O(n log n). Every merge
 * offers at most two candidates, so the heap never exceeds 3n keys. */
static apr_size_t tokens_merge_large(const nebula_tokens_enc_t *e, const unsigned char *s,
                                     apr_uint32_t n, void *mem)
{
    tokens_merge_t m;
    apr_size_t parts = n;
    apr_uint32_t i;

    m.e = e;
    m.s = s;
    m.n = n;
    m.heap = mem;
    m.nxt = (apr_uint32_t *)(m.heap + 3 * (apr_size_t)n);
    m.prv = m.nxt + n;
    m.rank = m.prv + n;
    m.hn = 0;
    for (i = 0; i < n; ++i) {
        m.nxt[i] = i + 1;
        m.prv[i] = i ? i - 1 : 0; /* part 0 has no left neighbour; never read */
    }
    for (i = 0; i < n; ++i) {
        tokens_merge_offer(&m, i);
    }
    while (m.hn > 0) {
        apr_uint64_t key = tokens_heap_pop(m.heap, &m.hn);
        apr_uint32_t l = (apr_uint32_t)key, mid;

        if (m.rank[l] != (apr_uint32_t)(key >> 32)) {
            continue; /* stale: l was merged away or its neighbour changed */
        }
        mid = m.nxt[l];
        m.nxt[l] = m.nxt[mid];
        if (m.nxt[l] < n) {
            m.prv[m.nxt[l]] = l;
        }
        m.rank[mid] = TOKENS_NONE;
        --parts;
        tokens_merge_offer(&m, l);
        if (l > 0) {
            tokens_merge_offer(&m, m.prv[l]);
        }
    }
    return parts;
}

/* Tokens of one piece of the split; NEBULA_TOKENS_ERROR without memory. */
static apr_size_t tokens_piece(const nebula_tokens_enc_t *e, const unsigned char *s,
                               apr_size_t n, tokens_scratch_t *scr)
{
    apr_size_t need;

    if (n <= 1 || tokens_rank(e, s, n) != TOKENS_NONE) {
        return n ? 1 : 0;
    }
    if (n <= NEBULA_TOKENS_SMALL_MAX) {
        return tokens_merge_small(e, s, n);
    }
    if (n > TOKENS_PIECE_MAX) {
        return NEBULA_TOKENS_ERROR;
    }
    need = 3 * n * (sizeof(apr_uint64_t) + sizeof(apr_uint32_t));
    if (need > scr->cap) {
        void *mem = realloc(scr->mem, need);

        if (mem == NULL) {
            return NEBULA_TOKENS_ERROR;
        }
        scr->mem = mem;
        scr->cap = need;
    }
    return tokens_merge_large(e, s, (apr_uint32_t)n, scr->mem);
}

/* ---- UTF-8 ----------------------------------------------------------- */

/* The bytes at s[0..n) that begin a well-formed UTF-8 sequence (RFC 3629:
 * no overlongs, surrogates or values above U+10FFFF), at least 1; *need
 * gets the sequence's full length, or 0 when s[0] cannot start one. A short
 * prefix is a "maximal subpart" that decoding replaces with one U+FFFD. */
static apr_size_t tokens_utf8_prefix(const unsigned char *s, apr_size_t n,
                                     apr_size_t *need)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    apr_size_t i;

    if (c < 0x80 || c < 0xC2 || c > 0xF4) {
        *need = c < 0x80 ? 1 : 0;
        return 1;
    }
    *need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c == 0xE0) {
        lo = 0xA0; /* else overlong */
    }
    else if (c == 0xED) {
        hi = 0x9F; /* else a surrogate */
    }
    else if (c == 0xF0) {
        lo = 0x90; /* else overlong */
    }
    else if (c == 0xF4) {
        hi = 0x8F; /* else above U+10FFFF */
    }
    for (i = 1; i < *need && i < n; ++i) {
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) {
            break;
        }
    }
    return i;
}

/* Length of the well-formed sequence at s, or 0. */
static apr_size_t tokens_utf8_seq(const unsigned char *s, apr_size_t n)
{
    apr_size_t need, got = tokens_utf8_prefix(s, n, &need);

    return got == need ? got : 0;
}

/* A malloc'd copy of s with each maximal invalid subpart replaced by U+FFFD,
 * as Python's decode(errors="replace") and WHATWG's decoder do. */
static unsigned char *tokens_utf8_repair(const unsigned char *s, apr_size_t n,
                                         apr_size_t *outlen)
{
    unsigned char *out = malloc(3 * n + 1), *o = out;
    apr_size_t i = 0;

    if (out == NULL) {
        return NULL;
    }
    while (i < n) {
        apr_size_t k = tokens_utf8_seq(s + i, n - i);

        if (k > 0) {
            memcpy(o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        memcpy(o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += tokens_utf8_prefix(s + i, n - i, &k);
    }
    *outlen = (apr_size_t)(o - out);
    return out;
}

static int tokens_utf8_valid(const unsigned char *s, apr_size_t n)
{
    apr_size_t i = 0, k;

    while (i < n) {
        if (s[i] < 0x80) {
            ++i;
            continue;
        }
        if ((k = tokens_utf8_seq(s + i, n - i)) == 0) {
            return 0;
        }
        i += k;
    }
    return 1;
}

/* ---- counting -------------------------------------------------------- */

/* Split valid UTF-8 with the encoding's pattern and merge each piece. Like
 * tiktoken's find_iter, text no alternative matches would be skipped (each
 * pattern matches every character, so none is). */
static apr_size_t tokens_count_valid(const nebula_tokens_enc_t *e, const unsigned char *s,
                                     apr_size_t n)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    tokens_scratch_t scr = {NULL, 0};
    apr_size_t total = 0, off = 0, k;
    PCRE2_SIZE *ov;
    int rc;

    if (md == NULL) {
        return NEBULA_TOKENS_ERROR;
    }
    ov = pcre2_get_ovector_pointer(md);
    while (off < n) {
        rc = pcre2_match(e->re, s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            /* the interpreter keeps its backtracking state on the heap */
            rc = pcre2_match(e->re, s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             NULL);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0 || ov[1] <= ov[0]) {
            total = NEBULA_TOKENS_ERROR;
            break;
        }
        k = tokens_piece(e, s + ov[0], ov[1] - ov[0], &scr);
        if (k == NEBULA_TOKENS_ERROR) {
            total = k;
            break;
        }
        total += k;
        off = ov[1];
    }
    free(scr.mem);
    pcre2_match_data_free(md);
    return total;
}

static apr_size_t tokens_count_text(const nebula_tokens_enc_t *e, const unsigned char *s,
                                    apr_size_t len)
{
    unsigned char *fixed;
    apr_size_t n, total;

    if (tokens_utf8_valid(s, len)) {
        return tokens_count_valid(e, s, len);
    }
    if ((fixed = tokens_utf8_repair(s, len, &n)) == NULL) {
        return NEBULA_TOKENS_ERROR;
    }
    total = tokens_count_valid(e, fixed, n);
    free(fixed);
    return total;
}

/* The memo's set for digest d. */
static tokens_memo_t *tokens_memo_set(const nebula_tokens_enc_t *e, const unsigned char *d)
{
    apr_uint32_t h;

    memcpy(&h, d, sizeof(h));
    return &e->memo[2 * (h % TOKENS_MEMO_SETS)];
}

/* The memo's count for digest d, or NEBULA_TOKENS_ERROR. */
static apr_size_t tokens_memo_get(nebula_tokens_enc_t *e, const unsigned char *d)
{
    tokens_memo_t *set = tokens_memo_set(e, d);
    apr_size_t count = NEBULA_TOKENS_ERROR;
    int w;

    pthread_mutex_lock(&e->memo_lock);
    for (w = 0; w < 2; ++w) {
        if (set[w].used != 0 && memcmp(set[w].d, d, 16) == 0) {
            set[w].used = ++e->memo_clock ? e->memo_clock : ++e->memo_clock;
            count = set[w].count;
            break;
        }
    }
    pthread_mutex_unlock(&e->memo_lock);
    return count;
}

static void tokens_memo_put(nebula_tokens_enc_t *e, const unsigned char *d,
                            apr_size_t count)
{
    tokens_memo_t *set = tokens_memo_set(e, d), *victim;

    pthread_mutex_lock(&e->memo_lock);
    /* the way used less recently (the clock wraps after 4G uses: then an
     * entry may be replaced early, which costs a recount, nothing else) */
    victim = set[0].used <= set[1].used ? &set[0] : &set[1];
    memcpy(victim->d, d, 16);
    victim->count = (apr_uint32_t)count;
    victim->used = ++e->memo_clock ? e->memo_clock : ++e->memo_clock;
    pthread_mutex_unlock(&e->memo_lock);
}

apr_size_t nebula_tokens_count(const nebula_tokens_enc_t *e, const char *text,
                               apr_size_t len)
{
    /* the memo is the only part of an encoding a count writes */
    nebula_tokens_enc_t *m = (nebula_tokens_enc_t *)e;
    const unsigned char *s = (const unsigned char *)text;
    unsigned char d[NEBULA_CRYPTO_SHA256_LEN];
    apr_size_t total;

    if (len == 0) {
        return 0;
    }
    if (e->memo == NULL || len < TOKENS_MEMO_MIN
        || nebula_crypto_sha256(s, len, d) != APR_SUCCESS) {
        return tokens_count_text(e, s, len);
    }
    if ((total = tokens_memo_get(m, d)) != NEBULA_TOKENS_ERROR) {
        return total;
    }
    total = tokens_count_text(e, s, len);
    if (total != NEBULA_TOKENS_ERROR && total < 0xFFFFFFFFu) {
        tokens_memo_put(m, d, total);
    }
    return total;
}

/* nebula_tokens.c: exact token counts for OpenAI's BPE encodings (o200k_base,
 * cl100k_base), compatible with tiktoken's encode_ordinary(). Owns the rank
 * table (an open-addressing hash over one blob of token bytes, malloc'd and
 * freed by a cleanup of the load pool), the compiled split pattern, and the
 * per-call scratch of nebula_tokens_count(): malloc'd because the API has no
 * pool, freed before it returns. The algorithm is described in nebula_tokens.h
 * and docs/tokens.md; this is our own implementation of it. */
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

typedef struct {
    apr_uint32_t tag;  /* high bits of the hash: most misses end here */
    apr_uint32_t off;  /* of the token's bytes in the blob */
    apr_uint32_t len;  /* 0: empty slot */
    apr_uint32_t rank; /* TOKENS_NONE in an empty slot */
} tokens_slot_t;

struct nebula_tokens_enc_t {
    const char *name;
    pcre2_code *re;
    unsigned char *blob; /* every token's bytes, back to back */
    tokens_slot_t *slots;
    apr_size_t mask;    /* slot count - 1 (a power of two minus one) */
    apr_size_t max_len; /* of any token: longer slices need no lookup */
};

/* Scratch one count call reuses from piece to piece (malloc'd). */
typedef struct {
    void *mem;
    apr_size_t cap;
} tokens_scratch_t;

/* ---- the rank table -------------------------------------------------- */

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

/* The slot holding s[0..n), or the empty slot where it would go. */
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

/* Parse one "<base64> <rank>" line into the table; NULL or an error text. */
static const char *tokens_add_line(apr_pool_t *p, nebula_tokens_enc_t *e,
                                   apr_size_t *blob_len, const char *line, apr_size_t n)
{
    const char *sp = memchr(line, ' ', n);
    char digits[16];
    apr_size_t dlen;
    unsigned long rank;
    char *end;
    long tlen;
    tokens_slot_t *sl;

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
    sl = tokens_slot(e, e->blob + *blob_len, (apr_size_t)tlen);
    if (sl->len != 0) {
        return apr_psprintf(p, "duplicate token (rank %lu)", rank);
    }
    sl->tag = (apr_uint32_t)(tokens_hash(e->blob + *blob_len, (apr_size_t)tlen) >> 32);
    sl->off = (apr_uint32_t)*blob_len;
    sl->len = (apr_uint32_t)tlen;
    sl->rank = (apr_uint32_t)rank;
    *blob_len += (apr_size_t)tlen;
    if ((apr_size_t)tlen > e->max_len) {
        e->max_len = (apr_size_t)tlen;
    }
    return NULL;
}

/* Size the table for the file's lines and fill it; NULL or an error text. */
static const char *tokens_parse(apr_pool_t *p, nebula_tokens_enc_t *e, const char *buf,
                                apr_size_t len)
{
    apr_size_t lines = 0, slots = 1024, i, blob_len = 0, lineno = 0;
    const char *s = buf, *end = buf + len;
    unsigned char *shrunk;

    for (i = 0; i < len; ++i) {
        lines += buf[i] == '\n';
    }
    while (slots < 2 * (lines + 1)) {
        slots *= 2;
    }
    e->mask = slots - 1;
    e->slots = malloc(slots * sizeof(*e->slots));
    e->blob = malloc(len + 1);
    if (e->slots == NULL || e->blob == NULL || len >= TOKENS_NONE) {
        return "out of memory";
    }
    for (i = 0; i < slots; ++i) {
        e->slots[i].len = 0;
        e->slots[i].rank = TOKENS_NONE;
    }
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
        e->blob = shrunk; /* token bytes take about a third of the file */
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

apr_size_t nebula_tokens_count(const nebula_tokens_enc_t *e, const char *text,
                               apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *fixed;
    apr_size_t n, total;

    if (len == 0) {
        return 0;
    }
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

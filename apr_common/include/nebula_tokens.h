/**
 * @file nebula_tokens.h
 * @brief Token counting: exact for OpenAI's BPE encodings, estimated for the rest.
 *
 * When an upstream reports no usage, the gateway counts tokens itself:
 * - with the model's encoding when it is known (nebula_tokens_encoding_for_model()):
 *   a tiktoken-compatible byte-pair encoder over the encoding's rank file
 *   (nebula_tokens_load(), nebula_tokens_count()) gives the exact count
 *   tiktoken's encode_ordinary() would give;
 * - otherwise with nebula_tokens_estimate(), a heuristic that callers must
 *   record as an estimate.
 *
 * Exact counting follows tiktoken 0.8 and later (openai/tiktoken): the text is
 * split with the encoding's pattern (PCRE2 in UTF mode, with \\s spelled as
 * Unicode White_Space and $ as end of text so that PCRE2 agrees with Rust's
 * regex), then each piece is one token if it is in the rank table, else is
 * merged pairwise, lowest rank first, leftmost on ties. Special tokens such as
 * "<|endoftext|>" are never recognised: they count as the ordinary text they
 * are. Text that is not valid UTF-8 is counted as if each maximal invalid
 * subsequence were U+FFFD (what decoding with replacement would give).
 *
 * Memory and threads: an encoding is loaded once into malloc'd tables that a
 * cleanup of the load pool frees; after that it is read-only, and any number
 * of threads may count with it at once. Counting allocates only transient
 * scratch (freed before it returns) and does bounded, iterative work: about
 * O(n log n) in the text's length, whatever the text.
 */
#ifndef NEBULA_TOKENS_H
#define NEBULA_TOKENS_H

#include <apr_pools.h>

/** The two encodings nebula_tokens_load() knows. */
#define NEBULA_TOKENS_O200K_BASE  "o200k_base"
#define NEBULA_TOKENS_CL100K_BASE "cl100k_base"

/** Returned by nebula_tokens_count() when it could not count: scratch memory
 *  ran out, or the regex engine hit its limits. Neither happens with sane
 *  inputs; callers fall back to nebula_tokens_estimate(). */
#define NEBULA_TOKENS_ERROR ((apr_size_t)-1)

typedef struct nebula_tokens_enc_t nebula_tokens_enc_t;

/**
 * Load an encoding's rank file.
 * @param p pool that owns the encoding; its tables are freed with @a p
 * @param path a file in tiktoken's text format ("<base64 bytes> <rank>" a
 *        line), e.g. "<dir>/o200k_base.tiktoken" as written by
 *        scripts/tokenizer-data.sh
 * @param name "o200k_base" or "cl100k_base": selects the split pattern; the
 *        file's sha256 must be the one OpenAI publishes for that encoding
 * @param err on failure, set to a message (allocated in @a p) naming the
 *        file and the problem; untouched on success
 * @return the encoding, or NULL on failure
 */
nebula_tokens_enc_t *nebula_tokens_load(apr_pool_t *p, const char *path, const char *name,
                                        const char **err);

/** The encoding's name ("o200k_base" or "cl100k_base"), owned by the encoding. */
const char *nebula_tokens_name(const nebula_tokens_enc_t *e);

/**
 * Count the tokens of @a len bytes at @a text (need not be NUL-terminated),
 * as tiktoken's encode_ordinary() would. Thread-safe.
 * @param e a loaded encoding (not NULL)
 * @return the count (0 for empty text), or NEBULA_TOKENS_ERROR
 */
apr_size_t nebula_tokens_count(const nebula_tokens_enc_t *e, const char *text,
                               apr_size_t len);

/**
 * The encoding a model uses: "o200k_base" for the gpt-4o, gpt-4.1, gpt-4.5,
 * gpt-5, o1, o3, o4, chatgpt-4o and gpt-oss families, "cl100k_base" for the
 * other gpt-4 and gpt-3.5 models, text-embedding-3-*, text-embedding-ada-002,
 * davinci-002 and babbage-002; NULL for any other model. Matching is by
 * prefix and ignores case, a fine-tune prefix "ft:" and a vendor prefix
 * "openai/". The returned string is static.
 */
const char *nebula_tokens_encoding_for_model(const char *model);

/** One chat message for nebula_tokens_count_chat(). Strings are UTF-8. */
typedef struct nebula_tokens_msg_t {
    const char *role;    /**< NUL-terminated; NULL counts as "" */
    const char *content; /**< content_len bytes; NULL counts as "" */
    apr_size_t content_len;
    const char *name; /**< NUL-terminated, or NULL when the message has none */
} nebula_tokens_msg_t;

/** Tokens the chat format adds per message, per name and for reply priming,
 *  as OpenAI's cookbook "How to count tokens with tiktoken" gives them for
 *  gpt-3.5-turbo, gpt-4 and gpt-4o. */
#define NEBULA_TOKENS_PER_MESSAGE 3
#define NEBULA_TOKENS_PER_NAME    1
#define NEBULA_TOKENS_REPLY_PRIME 3

/**
 * Prompt tokens of a chat request, by the cookbook's rule: for each message
 * NEBULA_TOKENS_PER_MESSAGE plus the tokens of its role, content and name,
 * plus NEBULA_TOKENS_PER_NAME when it has a name; then
 * NEBULA_TOKENS_REPLY_PRIME once. An estimate of the format's overhead (tools
 * and images are not covered), exact for the text in it.
 * @param e the encoding, or NULL to use nebula_tokens_estimate() for the text
 * @return the count, or NEBULA_TOKENS_ERROR as nebula_tokens_count()
 */
apr_size_t nebula_tokens_count_chat(const nebula_tokens_enc_t *e,
                                    const nebula_tokens_msg_t *msgs, apr_size_t n);

/**
 * Estimate the tokens of @a len bytes of text for a model whose tokenizer is
 * unknown, by the split rules cl100k_base and o200k_base share: about one
 * token per word of English (long, capitalised and accented words more), one
 * per 1-3 digits, one per punctuation run, one per line break and per
 * indentation, one per CJK character, half a token per letter of other
 * alphabets, about two per emoji. On English and code it is typically within
 * 15% of cl100k_base/o200k_base (worst seen: +35%, -33%); on other scripts it
 * lands between o200k_base's count and cl100k_base's (docs/tokens.md has the
 * measurements). Never 0 for non-empty text; O(len), no allocation, any bytes
 * accepted. Thread-safe.
 */
apr_size_t nebula_tokens_estimate(const char *text, apr_size_t len);

#endif /* NEBULA_TOKENS_H */

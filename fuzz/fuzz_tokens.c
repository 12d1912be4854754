/* fuzz_tokens.c: exact token counting (nebula_tokens.c) on arbitrary bytes,
 * with both encodings (o200k_base, cl100k_base) loaded once from
 * $NEBULA_TOKENIZER_DIR (default build/tokenizer; scripts/fuzz.sh skips this
 * harness when the rank files are absent).
 *
 * Properties, for each encoding:
 * - a count is 0 exactly for empty text, and at most one token per byte of
 *   the text once invalid UTF-8 is replaced by U+FFFD (3 bytes);
 * - nebula_tokens_count_chat() over the input cut into messages at NUL bytes
 *   is the cookbook's sum of the parts' counts;
 * - the estimate is never 0 for non-empty text;
 * - no crash, leak or undefined behaviour. */
#include <string.h>

#include <apr_strings.h>

#include "nebula_tokens.h"
#include "fuzz_common.h"

#define MAX_MSGS 16

static const nebula_tokens_enc_t *enc[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const names[2] = {NEBULA_TOKENS_O200K_BASE,
                                         NEBULA_TOKENS_CL100K_BASE};
    const char *dir = getenv("NEBULA_TOKENIZER_DIR");
    apr_pool_t *p = fuzz_root_pool();
    int i;

    (void)argc;
    (void)argv;
    if (dir == NULL || *dir == '\0') {
        dir = "build/tokenizer";
    }
    for (i = 0; i < 2; ++i) {
        const char *err = NULL;

        enc[i] = nebula_tokens_load(p, apr_pstrcat(p, dir, "/", names[i], ".tiktoken", NULL),
                                    names[i], &err);
        if (enc[i] == NULL) {
            fprintf(stderr, "fuzz_tokens: %s (make them: scripts/tokenizer-data.sh %s)\n",
                    err ? err : names[i], dir);
            exit(2);
        }
    }
    return 0;
}

static void one(const nebula_tokens_enc_t *e, const char *text, apr_size_t len)
{
    nebula_tokens_msg_t msgs[MAX_MSGS];
    apr_size_t n = nebula_tokens_count(e, text, len), sum, c, role, k = 0, off = 0;
    int exact = 1;

    if (n != NEBULA_TOKENS_ERROR) {
        FUZZ_CHECK((n == 0) == (len == 0), "%zu tokens for %zu bytes (%s)", (size_t)n,
                   (size_t)len, nebula_tokens_name(e));
        FUZZ_CHECK(n <= 3 * len, "%zu tokens for %zu bytes (%s)", (size_t)n, (size_t)len,
                   nebula_tokens_name(e));
    }
    /* messages: the input cut at NUL bytes (at most MAX_MSGS) */
    role = nebula_tokens_count(e, "user", 4);
    sum = NEBULA_TOKENS_REPLY_PRIME;
    while (k < MAX_MSGS && off <= len) {
        const char *nul = memchr(text + off, '\0', len - off);
        apr_size_t end = nul ? (apr_size_t)(nul - text) : len;

        msgs[k].role = "user";
        msgs[k].content = text + off;
        msgs[k].content_len = end - off;
        msgs[k].name = NULL;
        c = nebula_tokens_count(e, text + off, end - off);
        exact &= c != NEBULA_TOKENS_ERROR;
        sum += NEBULA_TOKENS_PER_MESSAGE + role + c;
        ++k;
        off = end + 1;
    }
    c = nebula_tokens_count_chat(e, msgs, k);
    if (exact && c != NEBULA_TOKENS_ERROR) {
        FUZZ_CHECK(c == sum, "count_chat %zu, parts %zu (%s)", (size_t)c, (size_t)sum,
                   nebula_tokens_name(e));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    one(enc[0], text, size);
    one(enc[1], text, size);
    FUZZ_CHECK(size == 0 || nebula_tokens_estimate(text, size) > 0, "estimate 0");
    return 0;
}

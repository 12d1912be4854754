/* fuzz_json.c: nebula_json_parse() and the fast reader on arbitrary bytes.
 *
 * Properties, for every combination of the two parse flags:
 * - the fast reader takes only what jansson takes, and builds an equal value;
 * - nebula_json_parse() gives jansson's verdict and value (but refuses a raw
 *   NUL byte, which jansson sometimes skips);
 * - with a nesting limit (1..72, from the input's length), an accepted text
 *   nests no deeper than the limit, a text refused as too deep that jansson
 *   takes nests deeper, and any other refusal is jansson's too;
 * - what jansson accepts, dumped and read back by the fast reader, is equal. */
#include <string.h>

#include <jansson.h>

#include "nebula_json.h"
#include "fuzz_common.h"

/* Nesting of arrays and objects in @a j (a scalar is 0). */
static int depth_of(const json_t *j)
{
    int d = 0, k;
    size_t i;
    const char *key;
    json_t *v;

    if (json_is_array(j)) {
        for (i = 0; i < json_array_size(j); ++i) {
            if ((k = depth_of(json_array_get(j, i))) > d) {
                d = k;
            }
        }
        return d + 1;
    }
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v)
        {
            if ((k = depth_of(v)) > d) {
                d = k;
            }
        }
        return d + 1;
    }
    return 0;
}

static void one(apr_pool_t *p, const char *buf, size_t len, int flags)
{
    int any = !(flags & NEBULA_JSON_CONTAINER_ONLY);
    int dups = (flags & NEBULA_JSON_REJECT_DUPLICATES) != 0;
    size_t jflags = (any ? JSON_DECODE_ANY : 0) | (dups ? JSON_REJECT_DUPLICATES : 0);
    json_error_t e;
    json_t *ref = json_loadb(buf, len, jflags, &e);
    json_t *fast = nebula_json_fast_loadb(buf, len, any, dups);
    json_t *got;
    const char *err = NULL;
    int limit = (int)(len % 72) + 1, deep = -1;

    if (fast != NULL) {
        FUZZ_CHECK(ref != NULL, "fast reader took what jansson refuses (flags %d)", flags);
        FUZZ_CHECK(json_equal(ref, fast), "fast reader built another value (flags %d)", flags);
    }
    got = nebula_json_parse(p, buf, len, flags, &err);
    if (ref != NULL && memchr(buf, '\0', len) != NULL) {
        json_decref(ref); /* a raw NUL is refused, though jansson may skip it */
        ref = NULL;
        FUZZ_CHECK(fast == NULL, "fast reader took a raw NUL");
    }
    FUZZ_CHECK((got == NULL) == (ref == NULL), "nebula_json_parse verdict differs");
    FUZZ_CHECK(got == NULL || json_equal(got, ref), "nebula_json_parse value differs");
    FUZZ_CHECK((got == NULL) == (err != NULL), "error message and verdict disagree");

    got = nebula_json_parse_limited(p, buf, len, flags, limit, &deep, &err);
    FUZZ_CHECK(deep == 0 || deep == 1, "too_deep not set");
    if (got != NULL) {
        FUZZ_CHECK(!deep && ref != NULL && json_equal(got, ref), "limited parse differs");
        FUZZ_CHECK(depth_of(got) <= limit, "accepted %d levels over a limit of %d",
                   depth_of(got), limit);
    }
    else if (deep) {
        FUZZ_CHECK(ref == NULL || depth_of(ref) > limit,
                   "refused as too deep: %d levels, limit %d", depth_of(ref), limit);
    }
    else {
        FUZZ_CHECK(ref == NULL, "limited parse refused valid JSON %d levels deep (limit %d)",
                   depth_of(ref), limit);
    }
    if (ref != NULL) {
        char *out = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
        json_t *again;

        FUZZ_CHECK(out != NULL, "jansson cannot dump what it read");
        again = nebula_json_fast_loadb(out, strlen(out), 1, 0);
        FUZZ_CHECK(again == NULL || json_equal(again, ref), "dump read back differs");
        json_decref(again);
        free(out);
    }
    json_decref(fast);
    json_decref(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    int flags;

    for (flags = 0; flags < 4; ++flags) {
        one(p, (const char *)data, size, flags);
    }
    apr_pool_destroy(p);
    return 0;
}

/* fuzz_conv.h: what the converter harnesses (fuzz_conv_*.c) share: the input
 * read as JSON (with the relay's own reader), and the checks every
 * converter's output must pass (see nebula_conv.h's conventions). */
#ifndef FUZZ_CONV_H
#define FUZZ_CONV_H

#include <string.h>

#include "nebula_conv.h"
#include "nebula_json.h"
#include "fuzz_common.h"

/* The input as a JSON value (any top level), or NULL. */
static inline json_t *conv_input(apr_pool_t *p, const uint8_t *data, size_t size)
{
    return nebula_json_parse(p, (const char *)data, size, 0, NULL);
}

/* A request converter's outcome: a document (that serializes) or an error
 * message for the client, never both, never neither. */
static inline void conv_check_req(apr_pool_t *p, const json_t *out, const char *err,
                                  const char *what)
{
    FUZZ_CHECK((out == NULL) != (err == NULL), "%s: result and error disagree", what);
    FUZZ_CHECK(out == NULL || json_is_object(out), "%s: not an object", what);
    FUZZ_CHECK(out == NULL || nebula_json_dumps(p, out, 0) != NULL, "%s: cannot dump",
               what);
}

/* A response converter's document serializes (NULL is allowed). */
static inline void conv_check_doc(apr_pool_t *p, const json_t *out, const char *what)
{
    FUZZ_CHECK(out == NULL || nebula_json_dumps(p, out, 0) != NULL, "%s: cannot dump",
               what);
}

/* Every emitted event has data that serializes, and a name without CR/LF. */
static inline void conv_check_events(apr_pool_t *p, const apr_array_header_t *out,
                                     const char *what)
{
    int i;

    for (i = 0; i < out->nelts; ++i) {
        const nebula_conv_event_t *ev = &APR_ARRAY_IDX(out, i, nebula_conv_event_t);

        FUZZ_CHECK(ev->data != NULL, "%s: event %d without data", what, i);
        FUZZ_CHECK(nebula_json_dumps(p, ev->data, 0) != NULL, "%s: event %d cannot dump",
                   what, i);
        FUZZ_CHECK(ev->event == NULL || strpbrk(ev->event, "\r\n") == NULL,
                   "%s: event name with a line end", what);
    }
}

/* A usage parser either fills *u or leaves it alone. */
static inline void conv_check_usage(int got, const nebula_usage_t *u, const char *what)
{
    static const nebula_usage_t zero;

    FUZZ_CHECK(got == 0 || got == 1, "%s: returned %d", what, got);
    FUZZ_CHECK(got || memcmp(u, &zero, sizeof(zero)) == 0, "%s: wrote usage and said no",
               what);
}

/* The stream events of an input: the elements of an array, or the value. */
static inline size_t conv_count(const json_t *in)
{
    return json_is_array(in) ? json_array_size(in) : 1;
}

static inline const json_t *conv_at(const json_t *in, size_t i)
{
    return json_is_array(in) ? json_array_get(in, i) : in;
}

/* A converter harness's body: its @a requests for an object input (with the
 * input's size, which some use to pick a mode), its @a streams for any JSON
 * input. */
typedef void (*conv_requests_fn)(apr_pool_t *p, const json_t *in, size_t size);
typedef void (*conv_streams_fn)(apr_pool_t *p, const json_t *in);

static inline int conv_run(const uint8_t *data, size_t size, conv_requests_fn requests,
                           conv_streams_fn streams)
{
    apr_pool_t *p = fuzz_pool();
    json_t *in = conv_input(p, data, size);

    if (in != NULL) {
        if (json_is_object(in)) {
            requests(p, in, size);
        }
        streams(p, in);
    }
    apr_pool_destroy(p);
    return 0;
}

#endif /* FUZZ_CONV_H */

/* fuzz_conv_anthropic.c: Anthropic Messages <-> OpenAI chat
 * (nebula_conv_anthropic*.c) on arbitrary JSON.
 *
 * An object goes through both request converters (and a converted request
 * back), both response converters, and the usage parser (of the object and
 * its "usage"). An array is a stream: its elements are fed as Anthropic
 * events to a2c, whose chunks are fed to c2a (finished with a2c's usage),
 * and as chat chunks to a second c2a. A lone object is a one-event stream.
 * Properties: fuzz_conv.h's checks, and no crash, leak or undefined
 * behaviour (ASan, UBSan). */
#include "nebula_conv_anthropic.h"
#include "fuzz_conv.h"

static void requests(apr_pool_t *p, const json_t *in)
{
    const char *err = NULL;
    json_t *chat, *back;
    nebula_usage_t u;

    chat = nebula_conv_anthropic_req_to_chat(p, in, &err);
    conv_check_req(p, chat, err, "anthropic_req_to_chat");
    if (chat != NULL) {
        err = NULL;
        back = nebula_conv_chat_req_to_anthropic(p, chat, 4096, &err);
        conv_check_req(p, back, err, "chat_req_to_anthropic (round trip)");
    }
    err = NULL;
    back = nebula_conv_chat_req_to_anthropic(p, in, 1024, &err);
    conv_check_req(p, back, err, "chat_req_to_anthropic");
    conv_check_doc(p, nebula_conv_anthropic_resp_to_chat(p, in), "anthropic_resp_to_chat");
    conv_check_doc(p, nebula_conv_chat_resp_to_anthropic(p, in), "chat_resp_to_anthropic");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_anthropic_usage(in, &u), &u, "anthropic_usage");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_anthropic_usage(json_object_get(in, "usage"), &u), &u,
                     "anthropic_usage(usage)");
}

static void streams(apr_pool_t *p, const json_t *in)
{
    apr_array_header_t *chunks = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    nebula_conv_a2c_t *a2c = nebula_conv_a2c_create(p);
    nebula_conv_c2a_t *c2a = nebula_conv_c2a_create(p, "claude-x", 12);
    nebula_conv_c2a_t *direct = nebula_conv_c2a_create(p, "claude-x", 0);
    const json_t *ev;
    const char *name;
    nebula_usage_t u;
    size_t i, n;
    int k;

    for (i = 0, n = conv_count(in); i < n; ++i) {
        ev = conv_at(in, i);
        /* the SSE name: none (the data's "type" is used), or that type */
        name = i % 2 ? json_string_value(json_object_get(ev, "type")) : NULL;
        nebula_conv_a2c_feed(a2c, name, ev, chunks);
        nebula_conv_c2a_feed(direct, ev, out);
    }
    conv_check_events(p, chunks, "a2c");
    memset(&u, 0, sizeof(u));
    k = nebula_conv_a2c_usage(a2c, &u);
    conv_check_usage(k, &u, "a2c_usage");
    (void)nebula_conv_a2c_done(a2c);
    for (i = 0; i < (size_t)chunks->nelts; ++i) {
        nebula_conv_c2a_feed(c2a, APR_ARRAY_IDX(chunks, i, nebula_conv_event_t).data, out);
    }
    nebula_conv_c2a_finish(c2a, k ? &u : NULL, out);
    nebula_conv_c2a_finish(direct, NULL, out);
    conv_check_events(p, out, "c2a");
}

static void requests_of(apr_pool_t *p, const json_t *in, size_t size)
{
    (void)size;
    requests(p, in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return conv_run(data, size, requests_of, streams);
}

/* fuzz_conv_gemini.c: Gemini generateContent <-> OpenAI chat
 * (nebula_conv_gemini*.c) on arbitrary JSON.
 *
 * An object goes through both request converters (streamed or not, from the
 * input's length, and a converted request back), both response converters,
 * the embeddings converters and the usage parser (of the object and its
 * "usageMetadata"). An array is a stream: its elements are fed as Gemini
 * chunks to g2c, whose chunks are fed to c2g (finished with g2c's usage),
 * and as chat chunks to a second c2g. A lone object is a one-event stream.
 * Properties: fuzz_conv.h's checks; no crash, leak or undefined behaviour. */
#include "nebula_conv_gemini.h"
#include "fuzz_conv.h"

static void requests(apr_pool_t *p, const json_t *in, int stream)
{
    const char *err = NULL;
    json_t *chat, *back;
    nebula_usage_t u;

    chat = nebula_conv_gemini_req_to_chat(p, in, "gemini-x", stream, &err);
    conv_check_req(p, chat, err, "gemini_req_to_chat");
    if (chat != NULL) {
        err = NULL;
        back = nebula_conv_chat_req_to_gemini(p, chat, &err);
        conv_check_req(p, back, err, "chat_req_to_gemini (round trip)");
    }
    err = NULL;
    back = nebula_conv_chat_req_to_gemini(p, in, &err);
    conv_check_req(p, back, err, "chat_req_to_gemini");
    err = NULL;
    back = nebula_conv_gemini_embed_req_to_openai(p, in, "embed-x", &err);
    conv_check_req(p, back, err, "gemini_embed_req_to_openai");
    conv_check_doc(p, nebula_conv_gemini_resp_to_chat(p, in, "gemini-x"),
                   "gemini_resp_to_chat");
    conv_check_doc(p, nebula_conv_chat_resp_to_gemini(p, in), "chat_resp_to_gemini");
    conv_check_doc(p, nebula_conv_openai_embed_resp_to_gemini(p, in),
                   "openai_embed_resp_to_gemini");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_gemini_usage(in, &u), &u, "gemini_usage");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_gemini_usage(json_object_get(in, "usageMetadata"), &u), &u,
                     "gemini_usage(usageMetadata)");
}

static void streams(apr_pool_t *p, const json_t *in)
{
    apr_array_header_t *chunks = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    nebula_conv_g2c_t *g2c = nebula_conv_g2c_create(p, "gemini-x");
    nebula_conv_c2g_t *c2g = nebula_conv_c2g_create(p, "gemini-x");
    nebula_conv_c2g_t *direct = nebula_conv_c2g_create(p, "gemini-x");
    const json_t *ev;
    nebula_usage_t u;
    size_t i, n;
    int k;

    for (i = 0, n = conv_count(in); i < n; ++i) {
        ev = conv_at(in, i);
        nebula_conv_g2c_feed(g2c, ev, chunks);
        nebula_conv_c2g_feed(direct, ev, out);
    }
    conv_check_events(p, chunks, "g2c");
    memset(&u, 0, sizeof(u));
    k = nebula_conv_g2c_usage(g2c, &u);
    conv_check_usage(k, &u, "g2c_usage");
    (void)nebula_conv_g2c_done(g2c);
    for (i = 0; i < (size_t)chunks->nelts; ++i) {
        nebula_conv_c2g_feed(c2g, APR_ARRAY_IDX(chunks, i, nebula_conv_event_t).data, out);
    }
    nebula_conv_c2g_finish(c2g, k ? &u : NULL, out);
    nebula_conv_c2g_finish(direct, NULL, out);
    conv_check_events(p, out, "c2g");
}

/* the low bit of the input's size picks streaming or not */
static void requests_of(apr_pool_t *p, const json_t *in, size_t size)
{
    requests(p, in, (int)(size & 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return conv_run(data, size, requests_of, streams);
}

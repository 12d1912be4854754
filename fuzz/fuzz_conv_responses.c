/* fuzz_conv_responses.c: the OpenAI Responses API <-> chat
 * (nebula_conv_responses.c) on arbitrary JSON.
 *
 * An object goes through the request converter, the response converter (as a
 * chat.completion answering itself as the request) and the usage parser (of
 * the object and its "usage"). An array is a stream of chat chunks fed to
 * c2r (created with the array's first element as the request), finished
 * with the usage of the last chunk that carried one. A lone object is a
 * one-chunk stream. Properties: fuzz_conv.h's checks; every emitted event
 * named, its data's "type" that name and its "sequence_number" increasing
 * (nebula_conv_responses.h); no crash, leak or undefined behaviour. */
#include "nebula_conv_responses.h"
#include "fuzz_conv.h"

static void requests(apr_pool_t *p, const json_t *in)
{
    const char *err = NULL;
    json_t *chat;
    nebula_usage_t u;

    chat = nebula_conv_responses_req_to_chat(p, in, &err);
    conv_check_req(p, chat, err, "responses_req_to_chat");
    conv_check_doc(p, nebula_conv_chat_resp_to_responses(p, in, in, "resp_fuzz"),
                   "chat_resp_to_responses");
    conv_check_doc(p, nebula_conv_chat_resp_to_responses(p, in, chat, "resp_fuzz"),
                   "chat_resp_to_responses (converted request)");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_responses_usage(in, &u), &u, "responses_usage");
    memset(&u, 0, sizeof(u));
    conv_check_usage(nebula_conv_responses_usage(json_object_get(in, "usage"), &u), &u,
                     "responses_usage(usage)");
}

static void streams(apr_pool_t *p, const json_t *in)
{
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(nebula_conv_event_t));
    const json_t *ev, *req;
    nebula_conv_c2r_t *c2r;
    nebula_usage_t u;
    size_t i, n;
    int k = 0, e;
    json_int_t last = -1;

    req = conv_count(in) > 0 ? conv_at(in, 0) : NULL;
    if (!json_is_object(req)) {
        req = nebula_json_own(p, json_object());
    }
    c2r = nebula_conv_c2r_create(p, req, "resp_fuzz");
    memset(&u, 0, sizeof(u));
    for (i = 0, n = conv_count(in); i < n; ++i) {
        ev = conv_at(in, i);
        nebula_conv_c2r_feed(c2r, ev, out);
        if (nebula_conv_chat_usage(json_object_get(ev, "usage"), &u)) {
            k = 1;
        }
    }
    nebula_conv_c2r_finish(c2r, k ? &u : NULL, out);
    conv_check_events(p, out, "c2r");
    for (e = 0; e < out->nelts; ++e) {
        const nebula_conv_event_t *ce = &APR_ARRAY_IDX(out, e, nebula_conv_event_t);
        const char *type = json_string_value(json_object_get(ce->data, "type"));
        json_t *seq = json_object_get(ce->data, "sequence_number");

        FUZZ_CHECK(ce->event != NULL, "c2r: event %d without a name", e);
        FUZZ_CHECK(type != NULL && strcmp(type, ce->event) == 0,
                   "c2r: event %s has type %s", ce->event, type ? type : "(none)");
        FUZZ_CHECK(json_is_integer(seq) && json_integer_value(seq) > last,
                   "c2r: sequence_number not increasing at event %d", e);
        last = json_integer_value(seq);
    }
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

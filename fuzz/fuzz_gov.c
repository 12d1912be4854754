/* fuzz_gov.c: the governance policy engine (nebula_gov_policy.c, _match.c,
 * _text.c, _detect.c) on arbitrary text.
 *
 * A fixed set of policies (keywords plain and whole-word, regexes, every
 * detector, negation, shadow, each action) is compiled once. Each input is
 * the prompt text on the request stage and the completion text on the
 * response stage; it is evaluated and redacted. Properties:
 * - every hit's spans lie inside the text, are non-empty, sorted and
 *   disjoint; at most one hit is terminal, and it is the decision;
 * - redaction masks something exactly when evaluation says a redact policy
 *   held (the redact policies have text matchers only), and the masked text
 *   is no longer than the text plus a mask per span;
 * - the trace serializes; no crash, leak or undefined behaviour. */
#include <string.h>

#include "nebula_gov_policy.h"
#include "nebula_json.h"
#include "fuzz_common.h"

static const char *const specs[] = {
    "{\"name\":\"block-words\",\"priority\":100,\"match\":[{\"type\":\"keywords\","
    "\"values\":[\"forbidden phrase\",\"\\u79d8\\u5bc6\",\"ignore previous\"]}],"
    "\"action\":{\"type\":\"block\",\"status\":403,\"message\":\"no\"}}",
    "{\"name\":\"word-tag\",\"priority\":90,\"stage\":\"both\",\"match\":[{\"type\":"
    "\"keywords\",\"values\":[\"bomb\",\"ab\"],\"word\":true}],"
    "\"action\":{\"type\":\"tag\",\"tag\":\"w\"}}",
    "{\"name\":\"pii\",\"priority\":80,\"stage\":\"both\",\"match\":[{\"type\":\"detector\","
    "\"detectors\":[\"email\",\"phone\",\"card\",\"cn_id\",\"secret\"]}],"
    "\"action\":{\"type\":\"redact\",\"mask\":\"[PII]\"}}",
    "{\"name\":\"keys\",\"priority\":70,\"stage\":\"both\",\"match\":[{\"type\":\"regex\","
    "\"pattern\":\"sk-[a-z0-9]{8,}|\\\\b[A-Z]{3}-\\\\d{3}\\\\b\",\"case_insensitive\":true}],"
    "\"action\":{\"type\":\"redact\"}}",
    "{\"name\":\"no-x-shadow\",\"priority\":60,\"shadow\":true,\"match\":[{\"type\":\"regex\","
    "\"pattern\":\"^\\\\p{L}+$\",\"negate\":true},{\"type\":\"tokens\",\"min\":0}],"
    "\"action\":{\"type\":\"block\",\"status\":429}}",
    "{\"name\":\"downgrade\",\"priority\":50,\"match\":[{\"type\":\"keywords\","
    "\"values\":[\"\\uff21\\uff22\\uff23\",\"ze\\u200bro\"]},{\"type\":\"model\","
    "\"values\":[\"gpt-4*\"]}],\"action\":{\"type\":\"downgrade\",\"model\":\"gpt-4o-mini\"}}",
    "{\"name\":\"reroute\",\"priority\":40,\"stage\":\"request\",\"match\":[{\"type\":"
    "\"detector\",\"detectors\":[\"card\"]},{\"type\":\"size\",\"max\":1048576}],"
    "\"action\":{\"type\":\"reroute\",\"group\":\"safe\"}}",
    NULL};

static nebula_gov_set_t *policy_set;

static void set_up(void)
{
    apr_pool_t *p = fuzz_root_pool();
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(nebula_gov_policy_t *));
    const char *err = NULL;
    int i;

    for (i = 0; specs[i]; ++i) {
        json_t *j = nebula_json_parse(p, specs[i], strlen(specs[i]), 0, &err);
        nebula_gov_policy_t *pol = j ? nebula_gov_policy_compile(p, j, &err) : NULL;

        FUZZ_CHECK(pol != NULL, "policy %d does not compile: %s", i, err ? err : "?");
        APR_ARRAY_PUSH(a, nebula_gov_policy_t *) = pol;
    }
    policy_set = nebula_gov_set_make(p, a, &err);
    FUZZ_CHECK(policy_set != NULL, "set: %s", err ? err : "?");
}

static void check_result(const nebula_gov_result_t *res, apr_size_t len, int *spans)
{
    int i, j, terminal = 0;

    *spans = 0;
    for (i = 0; res->hits != NULL && i < res->hits->nelts; ++i) {
        const nebula_gov_hit_t *h = &APR_ARRAY_IDX(res->hits, i, nebula_gov_hit_t);
        apr_size_t prev_end = 0;

        terminal += h->terminal;
        FUZZ_CHECK(!h->terminal || res->decided == h, "a terminal hit is not the decision");
        for (j = 0; h->spans != NULL && j < h->spans->nelts; ++j) {
            const nebula_gov_span_t *s = &APR_ARRAY_IDX(h->spans, j, nebula_gov_span_t);

            FUZZ_CHECK(s->start < s->end && s->end <= len, "span [%zu,%zu) in %zu bytes",
                       (size_t)s->start, (size_t)s->end, (size_t)len);
            FUZZ_CHECK(j == 0 || s->start >= prev_end, "spans overlap or are unsorted");
            prev_end = s->end;
            ++*spans;
        }
    }
    FUZZ_CHECK(terminal <= 1, "%d terminal hits", terminal);
    FUZZ_CHECK((res->decided == NULL) == (terminal == 0), "decision without a terminal hit");
}

static void stage(apr_pool_t *p, nebula_gov_stage_e st, const char *text, apr_size_t len)
{
    nebula_gov_subject_t subj;
    nebula_gov_result_t res;
    apr_size_t out_len = 0;
    const char *out;
    json_t *trace;
    int spans;

    memset(&subj, 0, sizeof(subj));
    subj.text = text;
    subj.text_len = len;
    subj.model = "gpt-4o";
    subj.route = "chat";
    subj.client_ip = "192.0.2.7";
    subj.now = APR_USEC_PER_SEC;
    subj.body_bytes = (apr_off_t)len;
    subj.tokens = (apr_int64_t)len / 4;
    nebula_gov_evaluate(p, policy_set, st, &subj, &res);
    check_result(&res, len, &spans);
    trace = nebula_gov_result_json(&res);
    FUZZ_CHECK(trace != NULL && nebula_json_dumps(p, trace, 0) != NULL, "trace");
    json_decref(trace);
    out = nebula_gov_redact(p, policy_set, st, &subj, text, len, &out_len);
    FUZZ_CHECK((out != NULL) == (res.redact != 0), "redacted %d, evaluation says %d",
               out != NULL, res.redact);
    FUZZ_CHECK(out == NULL || out_len <= len + (apr_size_t)spans * 16,
               "masked text of %zu bytes from %zu", (size_t)out_len, (size_t)len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    set_up();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    stage(p, NEBULA_GOV_STAGE_REQUEST, (const char *)data, size);
    stage(p, NEBULA_GOV_STAGE_RESPONSE, (const char *)data, size);
    apr_pool_destroy(p);
    return 0;
}

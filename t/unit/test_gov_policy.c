/* test_gov_policy.c: nebula_gov_policy, the governance policy engine: spec
 * validation (each field, errors naming it), the canonical spec, every
 * matcher (positive, negative, negated), keyword evasion, evaluation order
 * (priority, first terminal wins, shadow, redact and tag), stages, redaction
 * in original bytes, excerpts that never hold the secret, the result JSON,
 * and a hostile regex stopped by the match limit. */
#include <stdarg.h>
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>

#include "nebula_gov_detect.h"
#include "nebula_gov_policy.h"
#include "nebula_json.h"
#include "nebula_unit.h"

/* 2026-11-27 (a Friday) 10:30:00 UTC */
#define FRI_1030_UTC (APR_INT64_C(1795775400) * APR_USEC_PER_SEC)

static const char *compile_err(const char *spec)
{
    const char *err = NULL, *perr = NULL;
    json_t *j = nebula_json_parse(unit_pool, spec, strlen(spec), 0, &perr);

    ck_assert_msg(j != NULL, "bad JSON in test: %s", perr);
    ck_assert_ptr_null(nebula_gov_policy_compile(unit_pool, j, &err));
    ck_assert_ptr_nonnull(err);
    return err;
}

#define BAD(spec, want) ck_assert_str_eq(compile_err(spec), want)

static nebula_gov_policy_t *pol(const char *spec)
{
    const char *err = NULL, *perr = NULL;
    json_t *j = nebula_json_parse(unit_pool, spec, strlen(spec), 0, &perr);
    nebula_gov_policy_t *p;

    ck_assert_msg(j != NULL, "bad JSON in test: %s", perr);
    p = nebula_gov_policy_compile(unit_pool, j, &err);
    ck_assert_msg(p != NULL, "compile failed: %s", err);
    ck_assert_ptr_null(err);
    return p;
}

/* A set of the given specs (NULL-terminated). */
static nebula_gov_set_t *set_of(const char *first, ...)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 4, sizeof(nebula_gov_policy_t *));
    const char *spec, *err = NULL;
    nebula_gov_set_t *set;
    va_list ap;

    va_start(ap, first);
    for (spec = first; spec; spec = va_arg(ap, const char *)) {
        APR_ARRAY_PUSH(a, nebula_gov_policy_t *) = pol(spec);
    }
    va_end(ap);
    set = nebula_gov_set_make(unit_pool, a, &err);
    ck_assert_msg(set != NULL, "set: %s", err);
    return set;
}

static nebula_gov_subject_t subj_text(const char *text)
{
    nebula_gov_subject_t s;

    memset(&s, 0, sizeof(s));
    s.text = text;
    s.text_len = text ? strlen(text) : 0;
    s.model = "gpt-4o";
    s.route = "chat";
    s.group = "default";
    s.user_id = 3;
    s.key_id = 7;
    s.client_ip = "10.1.2.3";
    s.country = "US";
    s.now = FRI_1030_UTC;
    s.body_bytes = 2048;
    s.tokens = 500;
    return s;
}

/* Whether the one-policy set built from @a spec holds for @a s. */
static int holds(const char *spec, const nebula_gov_subject_t *s)
{
    nebula_gov_result_t res;

    nebula_gov_evaluate(unit_pool, set_of(spec, NULL), NEBULA_GOV_STAGE_REQUEST, s, &res);
    ck_assert_int_eq(res.evaluated, 1);
    return res.hits->nelts == 1;
}

static int holds_text(const char *spec, const char *text)
{
    nebula_gov_subject_t s = subj_text(text);

    return holds(spec, &s);
}

static const nebula_gov_hit_t *hit_at(const nebula_gov_result_t *r, int i)
{
    ck_assert_int_gt(r->hits->nelts, i);
    return &APR_ARRAY_IDX(r->hits, i, nebula_gov_hit_t);
}

static const char *redact(const nebula_gov_set_t *set, const char *text)
{
    nebula_gov_subject_t s = subj_text(NULL);
    apr_size_t n = 0;
    const char *out = nebula_gov_redact(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s,
                                        text, strlen(text), &n);

    if (out) {
        ck_assert_uint_eq(n, strlen(out));
    }
    return out;
}

#define BLOCK "\"action\":{\"type\":\"block\"}"

START_TEST(validation_errors)
{
    BAD("[]", "policy: must be a JSON object");
    BAD("{" BLOCK "}", "name: required");
    BAD("{\"name\":\"a b\"," BLOCK "}",
        "name: must be 1..64 characters of [A-Za-z0-9_.-]");
    BAD("{\"name\":\"\"," BLOCK "}", "name: must be 1..64 characters of [A-Za-z0-9_.-]");
    BAD("{\"name\":7," BLOCK "}", "name: must be a string");
    BAD("{\"name\":\"a\",\"prio\":1," BLOCK "}", "unknown field 'prio'");
    BAD("{\"name\":\"a\",\"priority\":\"1\"," BLOCK "}",
        "priority: must be an integer -1000000..1000000");
    BAD("{\"name\":\"a\",\"enabled\":1," BLOCK "}", "enabled: must be true or false");
    BAD("{\"name\":\"a\",\"shadow\":\"no\"," BLOCK "}", "shadow: must be true or false");
    BAD("{\"name\":\"a\",\"stage\":\"reply\"," BLOCK "}",
        "stage: must be request, response or both");
    BAD("{\"name\":\"a\",\"description\":7," BLOCK "}", "description: must be a string");
    BAD("{\"name\":\"a\"}", "action: required");
    BAD("{\"name\":\"a\",\"action\":{}}", "action.type: required");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"nuke\"}}",
        "action.type: unknown action 'nuke' (block, downgrade, reroute, redact, tag)");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"block\",\"status\":200}}",
        "action.status: must be 400..599");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"block\",\"status\":600}}",
        "action.status: must be 400..599");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"block\",\"model\":\"x\"}}",
        "action: unknown field 'model'");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"downgrade\"}}", "action.model: required");
    BAD("{\"name\":\"a\",\"stage\":\"response\","
        "\"action\":{\"type\":\"downgrade\",\"model\":\"m\"}}",
        "action: downgrade is for the request stage only");
    BAD("{\"name\":\"a\",\"stage\":\"both\",\"action\":{\"type\":\"reroute\",\"group\":"
        "\"g\"}}",
        "action: reroute is for the request stage only");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"reroute\"}}",
        "action: reroute needs one of group or channel");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"reroute\",\"group\":\"g\",\"channel\":"
        "\"c\"}}",
        "action: reroute needs one of group or channel");
    BAD("{\"name\":\"a\",\"action\":{\"type\":\"redact\"}}",
        "action: redact needs a text matcher (keywords, regex or detector) that is not "
        "negated");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\",\"values\":[\"x\"],"
        "\"negate\":true},{\"type\":\"model\",\"values\":[\"m\"]}],"
        "\"action\":{\"type\":\"redact\"}}",
        "action: redact needs a text matcher (keywords, regex or detector) that is not "
        "negated");
    BAD("{\"name\":\"a\",\"scope\":{\"group\":[\"x\"]}," BLOCK "}",
        "scope: unknown field 'group'");
    BAD("{\"name\":\"a\",\"scope\":{\"users\":[0]}," BLOCK "}",
        "scope.users[0]: must be a positive integer");
    BAD("{\"name\":\"a\",\"scope\":{\"models\":[]}," BLOCK "}",
        "scope.models: must be a non-empty array");
    BAD("{\"name\":\"a\",\"match\":{}," BLOCK "}",
        "match: must be an array of at most 32 matchers");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"model\",\"values\":[\"m\"]},"
        "{\"type\":\"route\",\"values\":[\"chat\"]},{\"type\":\"foo\"}]," BLOCK "}",
        "match[2].type: unknown matcher 'foo'");
    BAD("{\"name\":\"a\",\"match\":[{\"values\":[\"x\"]}]," BLOCK "}",
        "match[0].type: required");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\",\"values\":[]}]," BLOCK "}",
        "match[0].values: must be a non-empty array");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\"}]," BLOCK "}",
        "match[0].values: required");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\",\"values\":[\"x\"],\"wrd\":1}]"
        "," BLOCK "}",
        "match[0]: unknown field 'wrd'");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\",\"values\":[\"\\u200b\"]}]"
        "," BLOCK "}",
        "match[0].values[0]: empty once normalised");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"keywords\",\"values\":[\"x\"],"
        "\"negate\":\"yes\"}]," BLOCK "}",
        "match[0].negate: must be true or false");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"regex\",\"pattern\":\"ab(c\"}]," BLOCK
        "}",
        "match[0].pattern: missing closing parenthesis at offset 4");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"regex\"}]," BLOCK "}",
        "match[0].pattern: required");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"detector\",\"detectors\":[\"email\","
        "\"ssn\"]}]," BLOCK "}",
        "match[0].detectors[1]: unknown detector 'ssn' (email, phone, card, cn_id, "
        "secret)");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"ip\",\"values\":[\"10.0.0.0/"
        "33\"]}]," BLOCK "}",
        "match[0].values[0]: not an IP address or CIDR network: '10.0.0.0/33'");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"ip\",\"values\":[\"example.com\"]}]"
        "," BLOCK "}",
        "match[0].values[0]: not an IP address or CIDR network: 'example.com'");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"country\",\"values\":[\"USA\"]}]," BLOCK
        "}",
        "match[0].values[0]: not an ISO 3166 alpha-2 code");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\",\"from\":\"9:00\",\"to\":\"18:"
        "00\"}]," BLOCK "}",
        "match[0].from: must be HH:MM (00:00..23:59)");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\",\"from\":\"09:00\"}]," BLOCK "}",
        "match[0].to: required with 'from'");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\",\"days\":[\"monday\"]}]," BLOCK
        "}",
        "match[0].days[0]: must be one of mon..sun");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\",\"days\":[\"mon\",\"xyz\"]}]"
        "," BLOCK "}",
        "match[0].days[1]: must be one of mon..sun");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\",\"days\":[\"mon\"],"
        "\"utc_offset\":\"+8\"}]," BLOCK "}",
        "match[0].utc_offset: must be Z, +HH:MM or -HH:MM");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"time\"}]," BLOCK "}",
        "match[0]: needs days, or from and to");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"size\",\"min\":10,\"max\":5}]," BLOCK "}",
        "match[0].max: must not be below min");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"tokens\",\"min\":-1}]," BLOCK "}",
        "match[0].min: must be an integer 0..9007199254740992");
    BAD("{\"name\":\"a\",\"match\":[{\"type\":\"tokens\"}]," BLOCK "}",
        "match[0]: needs min or max");
}
END_TEST

START_TEST(keyword_and_pattern_limits)
{
    json_t *spec = json_pack("{s:s, s:[{s:s, s:[]}], s:{s:s}}", "name", "many", "match",
                             "type", "keywords", "values", "action", "type", "block");
    json_t *values =
        json_object_get(json_array_get(json_object_get(spec, "match"), 0), "values");
    char *pattern = apr_palloc(unit_pool, 1026);
    const char *err = NULL;
    int i;

    nebula_json_own(unit_pool, spec);
    for (i = 0; i < 1000; ++i) {
        json_array_append_new(values, json_string(apr_psprintf(unit_pool, "w%d", i)));
    }
    ck_assert_ptr_nonnull(nebula_gov_policy_compile(unit_pool, spec, &err));
    json_array_append_new(values, json_string("one-too-many"));
    ck_assert_ptr_null(nebula_gov_policy_compile(unit_pool, spec, &err));
    ck_assert_str_eq(err, "match[0].values: at most 1000 values");

    memset(pattern, 'a', 1025);
    pattern[1025] = '\0';
    spec =
        nebula_json_own(unit_pool, json_pack("{s:s, s:[{s:s, s:s}], s:{s:s}}", "name",
                                             "long", "match", "type", "regex", "pattern",
                                             pattern, "action", "type", "block"));
    ck_assert_ptr_null(nebula_gov_policy_compile(unit_pool, spec, &err));
    ck_assert_str_eq(err, "match[0].pattern: must be 1..1024 bytes");
}
END_TEST

START_TEST(canonical_spec_and_info)
{
    nebula_gov_policy_t *p = pol(
        "{\"name\":\"no-cards\",\"match\":[{\"type\":\"detector\",\"detectors\":["
        "\"card\"]},"
        "{\"type\":\"time\",\"days\":[\"sun\",\"mon\"]},"
        "{\"type\":\"country\",\"values\":[\"cn\"]}],\"action\":{\"type\":\"block\"}}");
    const nebula_gov_policy_info_t *in = nebula_gov_policy_info(p);
    json_t *spec = nebula_json_own(unit_pool, nebula_gov_policy_spec(p));
    const char *err = NULL;

    ck_assert_str_eq(in->name, "no-cards");
    ck_assert_int_eq(in->priority, 0);
    ck_assert_int_eq(in->enabled, 1);
    ck_assert_int_eq(in->shadow, 0);
    ck_assert_int_eq(in->stage, NEBULA_GOV_STAGE_REQUEST);
    ck_assert_int_eq(in->action, NEBULA_GOV_ACT_BLOCK);
    ck_assert_int_eq(in->status, 403);
    ck_assert_ptr_nonnull(in->message);
    ck_assert_str_eq(
        nebula_json_dumps(unit_pool, spec, JSON_SORT_KEYS),
        "{\"action\":{\"message\":\"This request was blocked by a governance policy.\","
        "\"status\":403,\"type\":\"block\"},\"description\":\"\",\"enabled\":true,"
        "\"match\":[{\"detectors\":[\"card\"],\"negate\":false,\"type\":\"detector\"},"
        "{\"days\":[\"mon\",\"sun\"],\"from\":\"00:00\",\"negate\":false,\"to\":\"24:"
        "00\","
        "\"type\":\"time\",\"utc_offset\":\"Z\"},"
        "{\"negate\":false,\"type\":\"country\",\"values\":[\"CN\"]}],"
        "\"name\":\"no-cards\",\"priority\":0,\"scope\":{},\"shadow\":false,"
        "\"stage\":\"request\"}");
    /* the canonical form compiles to the same */
    ck_assert_ptr_nonnull(nebula_gov_policy_compile(unit_pool, spec, &err));

    in = nebula_gov_policy_info(
        pol("{\"name\":\"d\",\"description\":\"cheap\",\"priority\":-5,\"shadow\":true,"
            "\"action\":{\"type\":\"downgrade\",\"model\":\"gpt-4o-mini\"}}"));
    ck_assert_str_eq(in->description, "cheap");
    ck_assert_int_eq(in->priority, -5);
    ck_assert_int_eq(in->shadow, 1);
    ck_assert_str_eq(in->model, "gpt-4o-mini");
    in = nebula_gov_policy_info(pol(
        "{\"name\":\"r\",\"action\":{\"type\":\"reroute\",\"channel\":\"azure-1\"}}"));
    ck_assert_ptr_null(in->group);
    ck_assert_str_eq(in->channel, "azure-1");
    in = nebula_gov_policy_info(
        pol("{\"name\":\"m\",\"stage\":\"both\",\"match\":[{\"type\":"
            "\"regex\",\"pattern\":\"x\"}],\"action\":{\"type\":"
            "\"redact\"}}"));
    ck_assert_str_eq(in->mask, "[REDACTED]");
    ck_assert_int_eq(in->stage, NEBULA_GOV_STAGE_BOTH);
    in = nebula_gov_policy_info(pol("{\"name\":\"t\",\"action\":{\"type\":\"tag\"}}"));
    ck_assert_ptr_null(in->tag);
    ck_assert_str_eq(nebula_gov_action_name(NEBULA_GOV_ACT_REROUTE), "reroute");
}
END_TEST

START_TEST(set_order_and_names)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 4, sizeof(nebula_gov_policy_t *));
    const char *err = NULL;
    nebula_gov_set_t *set;

    APR_ARRAY_PUSH(a, nebula_gov_policy_t *) =
        pol("{\"name\":\"b\",\"priority\":5,\"action\":{\"type\":\"tag\"}}");
    APR_ARRAY_PUSH(a, nebula_gov_policy_t *) =
        pol("{\"name\":\"off\",\"enabled\":false,\"stage\":\"response\","
            "\"action\":{\"type\":\"tag\"}}");
    APR_ARRAY_PUSH(a, nebula_gov_policy_t *) =
        pol("{\"name\":\"a\",\"priority\":5,\"action\":{\"type\":\"tag\"}}");
    APR_ARRAY_PUSH(a, nebula_gov_policy_t *) =
        pol("{\"name\":\"c\",\"priority\":9,\"action\":{\"type\":\"tag\"}}");
    set = nebula_gov_set_make(unit_pool, a, &err);
    ck_assert_ptr_nonnull(set);
    ck_assert_int_eq(nebula_gov_set_count(set), 3);
    ck_assert_int_eq(nebula_gov_set_count(NULL), 0);
    ck_assert(nebula_gov_set_has_stage(set, NEBULA_GOV_STAGE_REQUEST));
    ck_assert(!nebula_gov_set_has_stage(set, NEBULA_GOV_STAGE_RESPONSE));
    {
        nebula_gov_subject_t s = subj_text("hi");
        nebula_gov_result_t r;

        nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
        ck_assert_int_eq(r.hits->nelts, 3);
        ck_assert_str_eq(hit_at(&r, 0)->info->name, "c");
        ck_assert_str_eq(hit_at(&r, 1)->info->name, "a");
        ck_assert_str_eq(hit_at(&r, 2)->info->name, "b");
        ck_assert_str_eq(hit_at(&r, 0)->matcher, "scope");
    }
    APR_ARRAY_PUSH(a, nebula_gov_policy_t *) =
        pol("{\"name\":\"off\",\"action\":{\"type\":\"tag\"}}");
    ck_assert_ptr_null(nebula_gov_set_make(unit_pool, a, &err));
    ck_assert_str_eq(err, "duplicate policy name 'off'");
}
END_TEST

START_TEST(keyword_matcher)
{
    const char *kw = "{\"name\":\"k\",\"match\":[{\"type\":\"keywords\","
                     "\"values\":[\"bad\",\"\xe6\x9c\xba\xe5\xaf\x86\"]}]," BLOCK "}";
    const char *word = "{\"name\":\"k\",\"match\":[{\"type\":\"keywords\","
                       "\"values\":[\"ass\"],\"word\":true}]," BLOCK "}";
    const char *neg = "{\"name\":\"k\",\"match\":[{\"type\":\"keywords\","
                      "\"values\":[\"bad\"],\"negate\":true}]," BLOCK "}";

    ck_assert(holds_text(kw, "this is bad"));
    ck_assert(holds_text(kw,
                         "\xe8\xbf\x99\xe6\x98\xaf\xe6\x9c\xba\xe5\xaf\x86\xe6\x96\x87"
                         "\xe4\xbb\xb6")); /* 这是机密文件 */
    ck_assert(!holds_text(kw, "this is fine"));
    ck_assert(!holds_text(kw, ""));
    ck_assert(!holds_text(kw, NULL));
    /* evasion: case, full-width, zero-width */
    ck_assert(holds_text(kw, "bAd idea"));
    ck_assert(holds_text(kw, "\xef\xbc\xa2\xef\xbc\xa1\xef\xbc\xa4")); /* ＢＡＤ */
    ck_assert(holds_text(kw, "b\xe2\x80\x8b"
                             "ad"));
    ck_assert(holds_text(word, "kick ass now"));
    ck_assert(!holds_text(word, "first class"));
    ck_assert(!holds_text(neg, "this is bad"));
    ck_assert(holds_text(neg, "this is good"));
    ck_assert(holds_text(neg, NULL)); /* no text: negated holds */
}
END_TEST

START_TEST(regex_matcher)
{
    const char *re = "{\"name\":\"r\",\"match\":[{\"type\":\"regex\","
                     "\"pattern\":\"\\\\bproject\\\\s+[A-Z]\\\\w+\"}]," BLOCK "}";
    const char *ci = "{\"name\":\"r\",\"match\":[{\"type\":\"regex\","
                     "\"pattern\":\"Ärger\",\"case_insensitive\":true}]," BLOCK "}";
    const char *cjk = "{\"name\":\"r\",\"match\":[{\"type\":\"regex\","
                      "\"pattern\":\"\\\\p{Han}{2}\\u673a\\u5bc6\"}]," BLOCK "}";
    const char *neg = "{\"name\":\"r\",\"match\":[{\"type\":\"regex\","
                      "\"pattern\":\"^ok\",\"negate\":true}]," BLOCK "}";

    ck_assert(holds_text(re, "about project Falcon today"));
    ck_assert(!holds_text(re, "about project falcon today"));
    ck_assert(holds_text(ci, "viel \xc3\xa4rger hier")); /* ärger */
    ck_assert(!holds_text(ci, "viel arger hier"));
    ck_assert(holds_text(
        cjk, "\xe8\xbf\x99\xe6\x98\xaf\xe6\x9c\xba\xe5\xaf\x86")); /* 这是机密 */
    ck_assert(!holds_text(cjk, "\xe6\x9c\xba\xe5\xaf\x86"));
    ck_assert(holds_text(neg, "not ok"));
    ck_assert(!holds_text(neg, "ok then"));
    /* invalid UTF-8 in the subject: matched, not refused */
    ck_assert(holds_text(re, "\xff\xfe project Falcon \xc3"));
}
END_TEST

START_TEST(detector_matcher)
{
    const char *det = "{\"name\":\"d\",\"match\":[{\"type\":\"detector\","
                      "\"detectors\":[\"email\",\"card\"]}]," BLOCK "}";
    nebula_gov_subject_t s =
        subj_text("mail alice@example.com or pay 4111 1111 1111 1111");
    nebula_gov_result_t r;
    const nebula_gov_hit_t *h;
    const nebula_gov_span_t *sp;

    ck_assert(!holds_text(det, "call +1 415 555 0100"));
    ck_assert(!holds_text(det, "card 4111 1111 1111 1112")); /* Luhn fails */
    nebula_gov_evaluate(unit_pool, set_of(det, NULL), NEBULA_GOV_STAGE_REQUEST, &s, &r);
    h = hit_at(&r, 0);
    ck_assert_str_eq(h->matcher, "detector");
    ck_assert_int_eq(h->spans->nelts, 2);
    sp = &APR_ARRAY_IDX(h->spans, 0, nebula_gov_span_t);
    ck_assert_str_eq(sp->name, "email");
    ck_assert_uint_eq(sp->start, 5);
    ck_assert_uint_eq(sp->end, 22);
    sp = &APR_ARRAY_IDX(h->spans, 1, nebula_gov_span_t);
    ck_assert_str_eq(sp->name, "card");
    ck_assert_uint_eq(sp->start, 30);
    ck_assert_uint_eq(sp->end, 49);
    ck_assert_str_eq(h->excerpt, "mail [email] or pay [card]");
}
END_TEST

START_TEST(request_matchers)
{
    nebula_gov_subject_t s = subj_text("hello");

#define M(json) "{\"name\":\"x\",\"match\":[" json "]," BLOCK "}"
    ck_assert(holds(M("{\"type\":\"model\",\"values\":[\"claude-*\",\"gpt-4?\"]}"), &s));
    ck_assert(holds(M("{\"type\":\"model\",\"values\":[\"GPT-*O\"]}"), &s));
    ck_assert(!holds(M("{\"type\":\"model\",\"values\":[\"gpt-4\"]}"), &s));
    ck_assert(
        holds(M("{\"type\":\"model\",\"values\":[\"gpt-4\"],\"negate\":true}"), &s));
    ck_assert(holds(M("{\"type\":\"route\",\"values\":[\"messages\",\"chat\"]}"), &s));
    ck_assert(!holds(M("{\"type\":\"route\",\"values\":[\"embeddings\"]}"), &s));
    ck_assert(
        holds(M("{\"type\":\"ip\",\"values\":[\"192.0.2.7\",\"10.0.0.0/8\"]}"), &s));
    ck_assert(!holds(M("{\"type\":\"ip\",\"values\":[\"10.1.3.0/24\"]}"), &s));
    ck_assert(holds(M("{\"type\":\"ip\",\"values\":[\"10.1.2.0/23\"]}"), &s));
    s.client_ip = "::ffff:10.1.2.3";
    ck_assert(holds(M("{\"type\":\"ip\",\"values\":[\"10.1.2.3\"]}"), &s));
    s.client_ip = "2001:db8:1::5";
    ck_assert(holds(M("{\"type\":\"ip\",\"values\":[\"2001:db8::/32\"]}"), &s));
    ck_assert(
        !holds(M("{\"type\":\"ip\",\"values\":[\"2001:db9::/32\",\"10.0.0.0/8\"]}"), &s));
    s.client_ip = "not-an-ip";
    ck_assert(!holds(M("{\"type\":\"ip\",\"values\":[\"0.0.0.0/0\"]}"), &s));
    ck_assert(
        holds(M("{\"type\":\"ip\",\"values\":[\"0.0.0.0/0\"],\"negate\":true}"), &s));
    ck_assert(holds(M("{\"type\":\"country\",\"values\":[\"cn\",\"US\"]}"), &s));
    s.country = NULL;
    ck_assert(!holds(M("{\"type\":\"country\",\"values\":[\"US\"]}"), &s));
    ck_assert(holds(M("{\"type\":\"size\",\"min\":1024,\"max\":4096}"), &s));
    ck_assert(!holds(M("{\"type\":\"size\",\"max\":2047}"), &s));
    s.body_bytes = -1;
    ck_assert(!holds(M("{\"type\":\"size\",\"min\":0}"), &s));
    ck_assert(holds(M("{\"type\":\"tokens\",\"min\":500}"), &s));
    ck_assert(!holds(M("{\"type\":\"tokens\",\"min\":501}"), &s));
    s.model = NULL;
    ck_assert(!holds(M("{\"type\":\"model\",\"values\":[\"*\"]}"), &s));
    ck_assert(holds(M("{\"type\":\"model\",\"values\":[\"*\"],\"negate\":true}"), &s));
}
END_TEST

START_TEST(time_matcher)
{
    nebula_gov_subject_t s = subj_text("hello"); /* Friday 10:30 UTC */

    ck_assert(holds(M("{\"type\":\"time\",\"from\":\"09:00\",\"to\":\"18:00\"}"), &s));
    ck_assert(!holds(M("{\"type\":\"time\",\"from\":\"11:00\",\"to\":\"18:00\"}"), &s));
    ck_assert(holds(M("{\"type\":\"time\",\"days\":[\"fri\"]}"), &s));
    ck_assert(!holds(M("{\"type\":\"time\",\"days\":[\"sat\",\"sun\"]}"), &s));
    /* 18:30 in +08:00 */
    ck_assert(!holds(M("{\"type\":\"time\",\"from\":\"09:00\",\"to\":\"18:00\","
                       "\"utc_offset\":\"+08:00\"}"),
                     &s));
    ck_assert(holds(M("{\"type\":\"time\",\"from\":\"18:00\",\"to\":\"19:00\","
                      "\"utc_offset\":\"+08:00\",\"days\":[\"fri\"]}"),
                    &s));
    /* 05:30 in -05:00 */
    ck_assert(holds(M("{\"type\":\"time\",\"from\":\"05:00\",\"to\":\"06:00\","
                      "\"utc_offset\":\"-05:00\"}"),
                    &s));
    /* spanning midnight: Thursday 22:00 - 11:00 holds on Friday 10:30, as the
     * Thursday window; a Friday one does not */
    ck_assert(holds(M("{\"type\":\"time\",\"from\":\"22:00\",\"to\":\"11:00\","
                      "\"days\":[\"thu\"]}"),
                    &s));
    ck_assert(!holds(M("{\"type\":\"time\",\"from\":\"22:00\",\"to\":\"11:00\","
                       "\"days\":[\"fri\"]}"),
                     &s));
    ck_assert(!holds(M("{\"type\":\"time\",\"from\":\"22:00\",\"to\":\"10:00\"}"), &s));
    ck_assert(holds(M("{\"type\":\"time\",\"from\":\"10:00\",\"to\":\"09:00\"}"), &s));
    ck_assert(holds(M("{\"type\":\"time\",\"days\":[\"sat\"],\"negate\":true}"), &s));
#undef M
}
END_TEST

START_TEST(scope)
{
    nebula_gov_subject_t s = subj_text("hello");
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of(
        "{\"name\":\"vip\",\"scope\":{\"groups\":[\"vip\"]},\"action\":{\"type\":\"tag\"}"
        "}",
        "{\"name\":\"u3\",\"scope\":{\"users\":[3,4],\"keys\":[7]},\"action\":{\"type\":"
        "\"tag\"}}",
        "{\"name\":\"k8\",\"scope\":{\"keys\":[8]},\"action\":{\"type\":\"tag\"}}",
        "{\"name\":\"gpt\",\"scope\":{\"models\":[\"gpt-*\"],\"routes\":[\"chat\"]},"
        "\"action\":{\"type\":\"tag\"}}",
        "{\"name\":\"msg\",\"scope\":{\"routes\":[\"messages\"]},\"action\":{\"type\":"
        "\"tag\"}}",
        NULL);

    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_eq(r.evaluated, 2);
    ck_assert_int_eq(r.hits->nelts, 2);
    ck_assert_str_eq(hit_at(&r, 0)->info->name, "gpt");
    ck_assert_str_eq(hit_at(&r, 1)->info->name, "u3");
    s.group = "vip";
    s.user_id = 0;
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_eq(r.hits->nelts, 2);
    ck_assert_str_eq(hit_at(&r, 0)->info->name, "gpt");
    ck_assert_str_eq(hit_at(&r, 1)->info->name, "vip");
}
END_TEST

START_TEST(priority_and_terminal)
{
    nebula_gov_subject_t s = subj_text("the secret plan");
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of(
        "{\"name\":\"low-block\",\"priority\":1,\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"plan\"]}],\"action\":{\"type\":\"block\",\"status\":451}}",
        "{\"name\":\"high-down\",\"priority\":50,\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"secret\"]}],\"action\":{\"type\":\"downgrade\",\"model\":\"mini\"}"
        "}",
        "{\"name\":\"top-shadow\",\"priority\":100,\"shadow\":true,\"match\":[{\"type\":"
        "\"keywords\",\"values\":[\"plan\"]}],\"action\":{\"type\":\"block\"}}",
        "{\"name\":\"tag-last\",\"priority\":-10,\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"the\"]}],\"action\":{\"type\":\"tag\",\"tag\":\"t\"}}",
        "{\"name\":\"redact-mid\",\"priority\":20,\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"secret\"]}],\"action\":{\"type\":\"redact\"}}",
        "{\"name\":\"shadow-after\",\"priority\":10,\"shadow\":true,\"match\":[{\"type\":"
        "\"keywords\",\"values\":[\"plan\"]}],\"action\":{\"type\":\"reroute\","
        "\"group\":\"g\"}}",
        NULL);

    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    /* top-shadow (hit, not terminal), high-down (decides), redact-mid,
     * shadow-after (shadow: still evaluated), low-block skipped, tag-last */
    ck_assert_int_eq(r.hits->nelts, 5);
    ck_assert_int_eq(r.evaluated, 5);
    ck_assert_str_eq(hit_at(&r, 0)->info->name, "top-shadow");
    ck_assert_int_eq(hit_at(&r, 0)->shadow, 1);
    ck_assert_int_eq(hit_at(&r, 0)->terminal, 0);
    ck_assert_str_eq(hit_at(&r, 1)->info->name, "high-down");
    ck_assert_int_eq(hit_at(&r, 1)->terminal, 1);
    ck_assert_str_eq(hit_at(&r, 2)->info->name, "redact-mid");
    ck_assert_int_eq(hit_at(&r, 2)->terminal, 0);
    ck_assert_str_eq(hit_at(&r, 3)->info->name, "shadow-after");
    ck_assert_int_eq(hit_at(&r, 3)->terminal, 0);
    ck_assert_str_eq(hit_at(&r, 4)->info->name, "tag-last");
    ck_assert_ptr_eq(r.decided, hit_at(&r, 1));
    ck_assert_int_eq(r.redact, 1);

    /* without "secret": the block decides */
    s = subj_text("the plan");
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_ptr_nonnull(r.decided);
    ck_assert_str_eq(r.decided->info->name, "low-block");
    ck_assert_int_eq(r.decided->info->status, 451);
    ck_assert_int_eq(r.redact, 0);
    ck_assert_int_eq(r.hits->nelts, 4);

    /* nothing */
    s = subj_text("hello");
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_ptr_null(r.decided);
    ck_assert_int_eq(r.hits->nelts, 0);
    ck_assert_int_eq(r.evaluated, 6);
    nebula_gov_evaluate(unit_pool, NULL, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_eq(r.evaluated, 0);
    ck_assert_int_eq(r.hits->nelts, 0);
}
END_TEST

START_TEST(stages)
{
    nebula_gov_subject_t s = subj_text("leak: alice@example.com");
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of(
        "{\"name\":\"req\",\"match\":[{\"type\":\"detector\",\"detectors\":[\"email\"]}],"
        "\"action\":{\"type\":\"tag\"}}",
        "{\"name\":\"resp\",\"stage\":\"response\",\"match\":[{\"type\":\"detector\","
        "\"detectors\":[\"email\"]}],\"action\":{\"type\":\"block\"}}",
        "{\"name\":\"both\",\"stage\":\"both\",\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"leak\"]}],\"action\":{\"type\":\"tag\"}}",
        NULL);

    ck_assert(nebula_gov_set_has_stage(set, NEBULA_GOV_STAGE_RESPONSE));
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_eq(r.evaluated, 2);
    ck_assert_int_eq(r.hits->nelts, 2);
    ck_assert_str_eq(hit_at(&r, 0)->info->name, "both");
    ck_assert_str_eq(hit_at(&r, 1)->info->name, "req");
    ck_assert_ptr_null(r.decided);
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_RESPONSE, &s, &r);
    ck_assert_int_eq(r.evaluated, 2);
    ck_assert_int_eq(r.hits->nelts, 2);
    ck_assert_str_eq(hit_at(&r, 0)->info->name, "both");
    ck_assert_str_eq(hit_at(&r, 1)->info->name, "resp");
    ck_assert_str_eq(r.decided->info->name, "resp");
}
END_TEST

START_TEST(redaction)
{
    nebula_gov_set_t *kw = set_of(
        "{\"name\":\"kw\",\"match\":[{\"type\":\"keywords\",\"values\":[\"secret\","
        "\"\xe6\x9c\xba\xe5\xaf\x86\"]}],\"action\":{\"type\":\"redact\",\"mask\":\"***"
        "\"}}",
        NULL);
    nebula_gov_set_t *many = set_of(
        "{\"name\":\"mail\",\"priority\":5,\"match\":[{\"type\":\"detector\","
        "\"detectors\":[\"email\"]}],\"action\":{\"type\":\"redact\",\"mask\":\"<E>\"}}",
        "{\"name\":\"dom\",\"match\":[{\"type\":\"regex\",\"pattern\":\"example\\\\."
        "\\\\w+ "
        "now\"}],\"action\":{\"type\":\"redact\",\"mask\":\"<R>\"}}",
        "{\"name\":\"proj\",\"match\":[{\"type\":\"keywords\",\"values\":[\"falcon\"]}],"
        "\"action\":{\"type\":\"redact\"}}",
        "{\"name\":\"shadowed\",\"shadow\":true,\"match\":[{\"type\":\"keywords\","
        "\"values\":[\"mail\"]}],\"action\":{\"type\":\"redact\"}}",
        "{\"name\":\"tagged\",\"match\":[{\"type\":\"keywords\",\"values\":[\"write\"]}],"
        "\"action\":{\"type\":\"tag\"}}",
        "{\"name\":\"other-model\",\"match\":[{\"type\":\"model\",\"values\":[\"claude-*"
        "\"]},"
        "{\"type\":\"keywords\",\"values\":[\"to\"]}],\"action\":{\"type\":\"redact\"}}",
        NULL);

    /* zero-width space inside the keyword goes with it; the one after stays */
    ck_assert_str_eq(redact(kw, "a SE\xe2\x80\x8b"
                                "CRET\xe2\x80\x8b!"),
                     "a ***\xe2\x80\x8b!");
    /* full-width, CJK */
    ck_assert_str_eq(
        redact(kw, "\xef\xbd\x93\xef\xbd\x85\xef\xbd\x83\xef\xbd\x92\xef\xbd\x85"
                   "\xef\xbd\x94 \xe8\xbf\x99\xe6\x98\xaf\xe6\x9c\xba\xe5\xaf\x86"
                   "\xe6\x96\x87\xe4\xbb\xb6"),
        "*** \xe8\xbf\x99\xe6\x98\xaf***\xe6\x96\x87\xe4\xbb\xb6");
    ck_assert_ptr_null(redact(kw, "nothing here"));
    /* several policies; the email and the regex overlap: merged, the earlier
     * span's mask; shadow, tag and out-of-scope policies change nothing */
    ck_assert_str_eq(redact(many, "write to bob@example.com now about Falcon"),
                     "write to <E> about [REDACTED]");
    ck_assert_str_eq(redact(many, "mail falcon, falcon"), "mail [REDACTED], [REDACTED]");
}
END_TEST

START_TEST(redact_on_evaluate_spans)
{
    const char *text = "key sk-proj-Abcdefghijklmnopqrstuvwx1234 and SE\xe2\x80\x8b"
                       "CRET";
    nebula_gov_subject_t s = subj_text(text);
    nebula_gov_result_t r;
    nebula_gov_set_t *set =
        set_of("{\"name\":\"r\",\"match\":[{\"type\":\"keywords\",\"name\":\"words\","
               "\"values\":[\"secret\",\"and\"]},{\"type\":\"detector\",\"detectors\":["
               "\"secret\"]}],"
               "\"action\":{\"type\":\"redact\"}}",
               NULL);
    const nebula_gov_span_t *sp;
    const nebula_gov_hit_t *h;

    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    h = hit_at(&r, 0);
    ck_assert_str_eq(h->matcher, "words");
    ck_assert_int_eq(h->spans->nelts, 3);
    sp = &APR_ARRAY_IDX(h->spans, 0, nebula_gov_span_t);
    ck_assert_str_eq(sp->name, "secret");
    ck_assert_int_eq(sp->detector, NEBULA_GOV_DET_SECRET);
    ck_assert_uint_eq(sp->start, 4);
    ck_assert_uint_eq(sp->end, 40);
    sp = &APR_ARRAY_IDX(h->spans, 1, nebula_gov_span_t);
    ck_assert_str_eq(sp->name, "words");
    ck_assert_uint_eq(sp->start, 41);
    ck_assert_uint_eq(sp->end, 44);
    sp = &APR_ARRAY_IDX(h->spans, 2, nebula_gov_span_t);
    ck_assert_uint_eq(sp->start, 45);
    ck_assert_uint_eq(sp->end, strlen(text));
    ck_assert_str_eq(h->excerpt, "key [secret] [keyword] [keyword]");
    ck_assert_int_eq(r.redact, 1);
}
END_TEST

START_TEST(excerpt_never_holds_secret)
{
    char *text = apr_palloc(unit_pool, 4096);
    nebula_gov_subject_t s;
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of("{\"name\":\"pw\",\"match\":[{\"type\":\"keywords\","
                                   "\"values\":[\"hunter2\"]}]," BLOCK "}",
                                   NULL);
    const char *ex;
    apr_size_t i, n = 0;

    /* 300 bytes of CJK before, an email right after the keyword, then more */
    for (i = 0; i < 100; ++i) {
        memcpy(text + n, "\xe4\xb8\xad", 3);
        n += 3;
    }
    n += (apr_size_t)apr_snprintf(
        text + n, 4096 - n, " password HUNTER2 mail carol@corp.example.org thanks ");
    for (i = 0; i < 100; ++i) {
        memcpy(text + n, "\xe6\x96\x87", 3);
        n += 3;
    }
    text[n] = '\0';
    s = subj_text(text);
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ex = hit_at(&r, 0)->excerpt;
    ck_assert_ptr_nonnull(ex);
    ck_assert_uint_le(strlen(ex), 160);
    ck_assert_ptr_null(strstr(ex, "HUNTER2"));
    ck_assert_ptr_null(strstr(ex, "carol"));
    ck_assert_ptr_nonnull(strstr(ex, " password [keyword] mail [email] thanks "));
    /* cut on whole characters: 21 of the 100 before (63 bytes), 19 after */
    {
        char want[161];
        apr_size_t w = 0;

        for (i = 0; i < 21; ++i, w += 3) {
            memcpy(want + w, "\xe4\xb8\xad", 3);
        }
        memcpy(want + w, " password [keyword] mail [email] thanks ", 40);
        w += 40;
        for (i = 0; i < 19; ++i, w += 3) {
            memcpy(want + w, "\xe6\x96\x87", 3);
        }
        want[w] = '\0';
        ck_assert_uint_eq(w, 160);
        ck_assert_str_eq(ex, want);
    }
}
END_TEST

START_TEST(result_json)
{
    nebula_gov_subject_t s = subj_text("please rm -rf the secret box");
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of(
        "{\"name\":\"block-rm\",\"priority\":10,\"match\":[{\"type\":\"regex\","
        "\"name\":\"rm\",\"pattern\":\"rm\\\\s+-rf\"}],"
        "\"action\":{\"type\":\"block\",\"status\":422,\"message\":\"no\"}}",
        "{\"name\":\"sh\",\"shadow\":true,\"action\":{\"type\":\"tag\",\"tag\":\"x\"}}",
        NULL);
    json_t *j;

    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    j = nebula_json_own(unit_pool, nebula_gov_result_json(&r));
    ck_assert_str_eq(
        nebula_json_dumps(unit_pool, j, JSON_SORT_KEYS),
        "{\"decision\":{\"action\":\"block\",\"channel\":null,\"group\":null,"
        "\"message\":\"no\",\"model\":null,\"policy\":\"block-rm\",\"status\":422},"
        "\"evaluated\":2,\"hits\":[{\"action\":\"block\",\"excerpt\":\"please [regex] "
        "the "
        "secret box\",\"matcher\":\"rm\",\"policy\":\"block-rm\",\"shadow\":false,"
        "\"terminal\":true},{\"action\":\"tag\",\"excerpt\":null,\"matcher\":\"scope\","
        "\"policy\":\"sh\",\"shadow\":true,\"terminal\":false}],\"redact\":false}");
    s = subj_text("fine");
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_RESPONSE, &s, &r);
    j = nebula_json_own(unit_pool, nebula_gov_result_json(&r));
    ck_assert_str_eq(
        nebula_json_dumps(unit_pool, j, JSON_SORT_KEYS),
        "{\"decision\":{\"action\":\"allow\",\"channel\":null,\"group\":null,"
        "\"message\":null,\"model\":null,\"policy\":null,\"status\":null},"
        "\"evaluated\":0,\"hits\":[],\"redact\":false}");
}
END_TEST

START_TEST(hostile_regex)
{
    char text[64];
    nebula_gov_subject_t s;
    nebula_gov_result_t r;
    nebula_gov_set_t *set = set_of("{\"name\":\"evil\",\"match\":[{\"type\":\"regex\","
                                   "\"pattern\":\"(a+)+$\"}]," BLOCK "}",
                                   "{\"name\":\"after\",\"priority\":-1,\"match\":[{"
                                   "\"type\":\"regex\",\"pattern\":\"b$\"}]," BLOCK "}",
                                   NULL);
    apr_time_t t0;

    memset(text, 'a', 30);
    text[30] = 'b';
    text[31] = '\0';
    s = subj_text(text);
    t0 = apr_time_now();
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_sec(2));
    /* the limit makes "evil" not match; evaluation goes on */
    ck_assert_int_eq(r.hits->nelts, 1);
    ck_assert_str_eq(r.decided->info->name, "after");
    ck_assert_int_eq(r.evaluated, 2);

    /* the limit, not the pattern, decides: "b" would match at the end, but the
     * first alternative gives up the whole match first */
    t0 = apr_time_now();
    ck_assert(!holds_text("{\"name\":\"evil2\",\"match\":[{\"type\":\"regex\","
                          "\"pattern\":\"(a+)+$|b\"}]," BLOCK "}",
                          text));
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_sec(2));
    ck_assert(holds_text("{\"name\":\"evil2\",\"match\":[{\"type\":\"regex\","
                         "\"pattern\":\"(a+)+$|b\"}]," BLOCK "}",
                         "aaab"));
}
END_TEST

START_TEST(excerpt_invalid_utf8_and_detector_sets)
{
    const char *re = "{\"name\":\"r\",\"match\":[{\"type\":\"regex\","
                     "\"pattern\":\"\\\\bproject\\\\s+[A-Z]\\\\w+\"}]," BLOCK "}";
    nebula_gov_subject_t s = subj_text("\xff\xfe project Falcon \xc3");
    nebula_gov_result_t r;
    nebula_gov_set_t *set;
    const nebula_gov_hit_t *h;

    nebula_gov_evaluate(unit_pool, set_of(re, NULL), NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_str_eq(hit_at(&r, 0)->excerpt, "?? [regex] ?");
    ck_assert_uint_eq(APR_ARRAY_IDX(hit_at(&r, 0)->spans, 0, nebula_gov_span_t).start, 3);
    s.text = "a\0b project Falcon"; /* a NUL byte does not cut the excerpt */
    s.text_len = 18;
    nebula_gov_evaluate(unit_pool, set_of(re, NULL), NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_str_eq(hit_at(&r, 0)->excerpt, "a?b [regex]");

    /* policies with different detector sets over one text */
    set = set_of("{\"name\":\"a\",\"match\":[{\"type\":\"detector\","
                 "\"detectors\":[\"phone\",\"email\"]}],\"action\":{\"type\":\"tag\"}}",
                 "{\"name\":\"b\",\"match\":[{\"type\":\"detector\","
                 "\"detectors\":[\"phone\"]}],\"action\":{\"type\":\"tag\"}}",
                 "{\"name\":\"c\",\"match\":[{\"type\":\"detector\","
                 "\"detectors\":[\"card\",\"cn_id\"]}],\"action\":{\"type\":\"tag\"}}",
                 NULL);
    s = subj_text("x@example.org 13812345678 y@example.org");
    nebula_gov_evaluate(unit_pool, set, NEBULA_GOV_STAGE_REQUEST, &s, &r);
    ck_assert_int_eq(r.hits->nelts, 2);
    h = hit_at(&r, 0);
    ck_assert_int_eq(h->spans->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(h->spans, 0, nebula_gov_span_t).name, "email");
    ck_assert_str_eq(APR_ARRAY_IDX(h->spans, 1, nebula_gov_span_t).name, "phone");
    ck_assert_uint_eq(APR_ARRAY_IDX(h->spans, 1, nebula_gov_span_t).start, 14);
    ck_assert_str_eq(APR_ARRAY_IDX(h->spans, 2, nebula_gov_span_t).name, "email");
    ck_assert_str_eq(h->excerpt, "[email] [phone] [email]");
    h = hit_at(&r, 1);
    ck_assert_str_eq(h->info->name, "b");
    ck_assert_int_eq(h->spans->nelts, 1);
    ck_assert_str_eq(h->excerpt, "[email] [phone] [email]");
}
END_TEST

START_TEST(redact_stage_and_scope)
{
    nebula_gov_set_t *set = set_of(
        "{\"name\":\"out\",\"stage\":\"response\",\"scope\":{\"groups\":[\"default\"]},"
        "\"match\":[{\"type\":\"detector\",\"detectors\":[\"email\"]}],"
        "\"action\":{\"type\":\"redact\",\"mask\":\"\"}}",
        NULL);
    nebula_gov_subject_t s = subj_text("ignored: z@example.org");
    const char *text = "reply to a@example.org!";
    apr_size_t n = 0;

    ck_assert_ptr_null(redact(set, text)); /* request stage: none */
    ck_assert_str_eq(nebula_gov_redact(unit_pool, set, NEBULA_GOV_STAGE_RESPONSE, &s,
                                       text, strlen(text), &n),
                     "reply to !");
    ck_assert_uint_eq(n, 10);
    s.group = "vip";
    ck_assert_ptr_null(nebula_gov_redact(unit_pool, set, NEBULA_GOV_STAGE_RESPONSE, &s,
                                         text, strlen(text), &n));
    ck_assert_ptr_null(nebula_gov_redact(unit_pool, NULL, NEBULA_GOV_STAGE_RESPONSE, &s,
                                         text, strlen(text), &n));
}
END_TEST

Suite *unit_gov_policy_suite(void)
{
    Suite *s = suite_create("gov_policy");
    TCase *tc = tcase_create("gov_policy");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, validation_errors);
    tcase_add_test(tc, keyword_and_pattern_limits);
    tcase_add_test(tc, canonical_spec_and_info);
    tcase_add_test(tc, set_order_and_names);
    tcase_add_test(tc, keyword_matcher);
    tcase_add_test(tc, regex_matcher);
    tcase_add_test(tc, detector_matcher);
    tcase_add_test(tc, request_matchers);
    tcase_add_test(tc, time_matcher);
    tcase_add_test(tc, scope);
    tcase_add_test(tc, priority_and_terminal);
    tcase_add_test(tc, stages);
    tcase_add_test(tc, redaction);
    tcase_add_test(tc, redact_on_evaluate_spans);
    tcase_add_test(tc, excerpt_never_holds_secret);
    tcase_add_test(tc, result_json);
    tcase_add_test(tc, hostile_regex);
    tcase_add_test(tc, excerpt_invalid_utf8_and_detector_sets);
    tcase_add_test(tc, redact_stage_and_scope);
    suite_add_tcase(s, tc);
    return s;
}

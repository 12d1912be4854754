/* bench_gov.c: times the governance policy engine (nebula_gov_policy.h).
 * Compiles 100 policies (40 keyword lists of 20 words, English and Chinese;
 * 20 regexes; 10 detector sets; 10 scoped by model, route, ip, time or size;
 * 20 tag and shadow policies), then evaluates a 2 KB mixed English/Chinese
 * prompt that none of them matches, and one that several match, N times
 * each, and redacts the second. Prints one JSON object (microseconds).
 * `bench_gov --specs` prints the 100 policy specs instead, one JSON object a
 * line, and `bench_gov --prompt` the prompt none of them matches (the
 * whole-gateway benchmark, bench/bench.py, loads both into the gateway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "nebula_gov_policy.h"

static const char *const english[] = {
    "ransomware",       "keylogger",
    "botnet",           "zero-day exploit",
    "phishing kit",     "credential dump",
    "carding",          "skimmer",
    "money mule",       "wire fraud",
    "counterfeit",      "meth recipe",
    "nerve agent",      "pipe bomb",
    "detonator",        "ghost gun",
    "untraceable",      "darknet market",
    "escrow scam",      "pump and dump",
    "insider tip",      "front running",
    "wash trading",     "shell company",
    "tax haven",        "bribe",
    "kickback",         "embezzle",
    "launder",          "smuggle",
    "human traffic",    "forged passport",
    "fake diploma",     "stolen card",
    "cvv dump",         "fullz",
    "sim swap",         "doxx",
    "swatting",         "stalkerware",
    "rootkit",          "backdoor",
    "reverse shell",    "privilege escalation",
    "jailbreak",        "ignore previous instructions",
    "system prompt",    "developer mode",
    "dan mode",         "confidential",
    "internal only",    "trade secret",
    "source code leak", "salary list",
    "layoff plan",      "merger talks",
    "earnings leak",    "customer list",
    "api secret",
};

static const char *const chinese[] = {
    "\xe6\x9c\xba\xe5\xaf\x86",                         /* 机密 */
    "\xe7\xbb\x9d\xe5\xaf\x86",                         /* 绝密 */
    "\xe5\x86\x85\xe9\x83\xa8\xe8\xb5\x84\xe6\x96\x99", /* 内部资料 */
    "\xe8\xb5\x8c\xe5\x8d\x9a",                         /* 赌博 */
    "\xe6\xaf\x92\xe5\x93\x81",                         /* 毒品 */
    "\xe6\xb4\x97\xe9\x92\xb1",                         /* 洗钱 */
    "\xe8\xaf\x88\xe9\xaa\x97",                         /* 诈骗 */
    "\xe5\x81\x87\xe5\xb8\x81",                         /* 假币 */
    "\xe7\x82\xb8\xe5\xbc\xb9",                         /* 炸弹 */
    "\xe6\x9e\xaa\xe6\x94\xaf",                         /* 枪支 */
    "\xe9\xbb\x91\xe5\xae\xa2",                         /* 黑客 */
    "\xe6\x9c\xa8\xe9\xa9\xac",                         /* 木马 */
    "\xe5\x88\xb7\xe5\x8d\x95",                         /* 刷单 */
    "\xe5\xa5\x97\xe7\x8e\xb0",                         /* 套现 */
    "\xe5\x86\x85\xe5\xb9\x95",                         /* 内幕 */
    "\xe8\xa1\x8c\xe8\xb4\xbf",                         /* 行贿 */
    "\xe5\x8f\x91\xe7\xa5\xa8",                         /* 发票 */
    "\xe4\xbb\xa3\xe8\x80\x83",                         /* 代考 */
    "\xe7\xbf\xbb\xe5\xa2\x99",                         /* 翻墙 */
    "\xe8\xb6\x8a\xe7\x8b\xb1",                         /* 越狱 */
    "\xe5\xae\xa2\xe6\x88\xb7\xe5\x90\x8d\xe5\x8d\x95", /* 客户名单 */
    "\xe5\xb7\xa5\xe8\xb5\x84\xe8\xa1\xa8",             /* 工资表 */
    "\xe6\xba\x90\xe4\xbb\xa3\xe7\xa0\x81",             /* 源代码 */
    "\xe8\xa3\x81\xe5\x91\x98",                         /* 裁员 */
    "\xe5\xb9\xb6\xe8\xb4\xad",                         /* 并购 */
};

static const char *const regexes[] = {
    "\\b(?:password|passwd|pwd)\\s*[:=]\\s*\\S+",
    "\\b\\d{3}-\\d{2}-\\d{4}\\b",
    "internal\\s+use\\s+only",
    "\\bproject\\s+(?:falcon|atlas|orion|hydra)\\b",
    "\\b[A-Z]{2}\\d{2}[A-Z0-9]{11,30}\\b",
    "-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "\\b(?:rm\\s+-rf\\s+/|DROP\\s+TABLE|TRUNCATE\\s+TABLE)\\b",
    "(?:jdbc|mongodb(?:\\+srv)?|postgres(?:ql)?)://\\S+:\\S+@",
    "\\b[0-9a-f]{40}\\b",
    "(?:\xe8\xba\xab\xe4\xbb\xbd\xe8\xaf\x81|\xe6\x8a\xa4\xe7\x85\xa7)\xe5\x8f\xb7"
    "\xe7\xa0\x81?[:\xef\xbc\x9a]\\s*\\w+",
    "\\b(?:10|172\\.(?:1[6-9]|2\\d|3[01])|192\\.168)\\.\\d{1,3}\\.\\d{1,3}\\b",
    "\\bxox[bap]-[0-9A-Za-z-]{10,}",
    "\\b(?:visa|mastercard)\\s+ending\\s+in\\s+\\d{4}\\b",
    "(?:\xe9\x93\xb6\xe8\xa1\x8c\xe5\x8d\xa1|\xe5\x8d\xa1\xe5\x8f\xb7)[:\xef\xbc\x9a]?"
    "\\s*"
    "\\d{12,19}",
    "\\bBearer\\s+[A-Za-z0-9._~+/-]{20,}=*",
    "\\b(?:DAN|STAN|DUDE)\\s+mode\\b",
    "\\bpretend\\s+you\\s+(?:are|have)\\s+no\\s+(?:rules|limits|filters)\\b",
    "\\b(?:how\\s+to\\s+)?(?:make|build|synthesi[sz]e)\\s+(?:a\\s+)?(?:bomb|explosive|"
    "sarin)",
    "\\p{Han}{2,}(?:\xe5\x86\x85\xe9\x83\xa8|\xe4\xbf\x9d\xe5\xaf\x86)\\p{Han}*",
    "\\bAKIA[0-9A-Z]{16}\\b",
};

static const char *const detector_sets[][5] = {
    {"email", NULL},
    {"phone", NULL},
    {"card", NULL},
    {"cn_id", NULL},
    {"secret", NULL},
    {"email", "phone", NULL},
    {"card", "cn_id", NULL},
    {"secret", "card", NULL},
    {"email", "phone", "card", "cn_id", "secret"},
    {"cn_id", "phone", NULL},
};

/* A prompt of about 2 KB: an engineer's question, English and Chinese. */
static const char *const prompt_parts[] = {
    "Hi! I am working on the quarterly report for our logistics team and need help. ",
    "\xe6\x88\x91\xe4\xbb\xac\xe7\x9a\x84\xe5\x9b\xa2\xe9\x98\x9f\xe6\xad\xa3\xe5\x9c\xa8"
    "\xe6\x95\xb4\xe7\x90\x86\xe4\xb8\x8a\xe4\xb8\xaa\xe5\xad\xa3\xe5\xba\xa6\xe7\x9a\x84"
    "\xe7\x89\xa9\xe6\xb5\x81\xe6\x95\xb0\xe6\x8d\xae\xef\xbc\x8c\xe5\xb8\x8c\xe6\x9c\x9b"
    "\xe4\xbd\xa0\xe8\x83\xbd\xe5\xb8\xae\xe5\xbf\x99\xe5\x88\x86\xe6\x9e\x90\xe4\xb8\x80"
    "\xe4\xb8\x8b\xe3\x80\x82",
    "Please summarise the table below, point out the three warehouses with the longest ",
    "average delivery delay, and suggest what we could change in the routing. ",
    "Warehouse A: 1,204 orders, 2.3 days average; Warehouse B: 987 orders, 3.1 days; ",
    "Warehouse C: 1,530 orders, 1.8 days; Warehouse D: 640 orders, 4.2 days. ",
    "\xe5\x8f\xa6\xe5\xa4\x96\xef\xbc\x8c\xe8\xaf\xb7\xe7\x94\xa8\xe4\xb8\xad\xe6\x96\x87"
    "\xe5\x86\x99\xe4\xb8\x80\xe6\xae\xb5\xe7\xae\x80\xe7\x9f\xad\xe7\x9a\x84\xe6\x80\xbb"
    "\xe7\xbb\x93\xef\xbc\x8c\xe6\x96\xb9\xe4\xbe\xbf\xe5\x8f\x91\xe7\xbb\x99\xe4\xb8\x8a"
    "\xe6\xb5\xb7\xe7\x9a\x84\xe5\x90\x8c\xe4\xba\x8b\xe3\x80\x82",
    "We also want a short Python snippet that reads the CSV export and plots the delays ",
    "per week with matplotlib, with the weeks on the x axis and a line per warehouse. ",
    "\xe5\xa6\x82\xe6\x9e\x9c\xe5\x8f\xaf\xe4\xbb\xa5\xef\xbc\x8c\xe8\xaf\xb7\xe9\xa1\xba"
    "\xe4\xbe\xbf\xe8\xa7\xa3\xe9\x87\x8a\xe4\xb8\x80\xe4\xb8\x8b\xe5\xbb\xb6\xe8\xbf\x9f"
    "\xe7\x9a\x84\xe5\x8f\xaf\xe8\x83\xbd\xe5\x8e\x9f\xe5\x9b\xa0\xef\xbc\x8c\xe6\xaf\x94"
    "\xe5\xa6\x82\xe5\xa4\xa9\xe6\xb0\x94\xe3\x80\x81\xe4\xba\xba\xe6\x89\x8b\xe6\x88\x96"
    "\xe8\xbf\x90\xe8\xbe\x93\xe8\xb7\xaf\xe7\xba\xbf\xe3\x80\x82",
    "Thanks a lot, and keep the answer under five hundred words if you can. ",
};

/* What the second prompt adds: an email, a keyword, a regex and a phone. */
static const char *const hit_parts =
    "PS: my password: Tr0ub4dor&3 for the portal, ask bob.smith@example.com or call "
    "+1 415 555 0100; this is internal use only and \xe6\x9c\xba\xe5\xaf\x86. ";

static apr_uint32_t rng = 2463534242u;
static int emit_specs; /* --specs: print the specs, compile nothing */

static apr_uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static json_t *words(int n)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < n; ++i) {
        if (i % 4 == 3) {
            json_array_append_new(
                a,
                json_string(chinese[next_rand() % (sizeof(chinese) / sizeof(*chinese))]));
        }
        else {
            json_array_append_new(
                a,
                json_string(english[next_rand() % (sizeof(english) / sizeof(*english))]));
        }
    }
    return a;
}

static void add(apr_pool_t *p, apr_array_header_t *pols, json_t *spec)
{
    const char *err = NULL;
    nebula_gov_policy_t *pol;

    if (emit_specs) {
        char *line = json_dumps(spec, JSON_COMPACT);

        puts(line);
        free(line);
        json_decref(spec);
        return;
    }
    pol = nebula_gov_policy_compile(p, spec, &err);
    if (!pol) {
        fprintf(stderr, "bench_gov: %s: %s\n", json_dumps(spec, 0), err);
        exit(1);
    }
    APR_ARRAY_PUSH(pols, nebula_gov_policy_t *) = pol;
    json_decref(spec);
}

static nebula_gov_set_t *make_policies(apr_pool_t *p)
{
    apr_array_header_t *pols = apr_array_make(p, 100, sizeof(nebula_gov_policy_t *));
    const char *err = NULL;
    nebula_gov_set_t *set;
    int i;

    for (i = 0; i < 40; ++i) { /* keyword lists: 30 block, 10 redact */
        add(p, pols,
            json_pack("{s:s, s:i, s:[{s:s, s:o, s:b}], s:{s:s}}", "name",
                      apr_psprintf(p, "kw-%02d", i), "priority", 100 - i, "match", "type",
                      "keywords", "values", words(20), "word", i % 3 == 0, "action",
                      "type", i < 30 ? "block" : "redact"));
    }
    for (i = 0; i < 20; ++i) { /* regexes: 15 block, 5 redact */
        add(p, pols,
            json_pack("{s:s, s:i, s:[{s:s, s:s, s:b}], s:{s:s}}", "name",
                      apr_psprintf(p, "re-%02d", i), "priority", 50 - i, "match", "type",
                      "regex", "pattern", regexes[i], "case_insensitive", i % 2 == 0,
                      "action", "type", i < 15 ? "block" : "redact"));
    }
    for (i = 0; i < 10; ++i) { /* detector sets: 5 redact, 5 block */
        json_t *d = json_array();
        int k;

        for (k = 0; k < 5 && detector_sets[i][k]; ++k) {
            json_array_append_new(d, json_string(detector_sets[i][k]));
        }
        add(p, pols,
            json_pack("{s:s, s:i, s:[{s:s, s:o}], s:{s:s}}", "name",
                      apr_psprintf(p, "det-%02d", i), "priority", 30 - i, "match", "type",
                      "detector", "detectors", d, "action", "type",
                      i < 5 ? "redact" : "block"));
    }
    /* scoped */
    add(p, pols,
        json_pack("{s:s, s:{s:[s]}, s:[{s:s, s:o}], s:{s:s, s:s}}", "name", "sc-claude",
                  "scope", "models", "claude-*", "match", "type", "keywords", "values",
                  words(20), "action", "type", "downgrade", "model", "claude-3-haiku"));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:[s]}, {s:s, s:o}], s:{s:s, s:s}}", "name", "sc-gpt4",
                  "match", "type", "model", "values", "gpt-4*", "type", "keywords",
                  "values", words(20), "action", "type", "reroute", "group", "safe"));
    add(p, pols,
        json_pack("{s:s, s:{s:[s, s]}, s:[{s:s, s:[s]}], s:{s:s}}", "name", "sc-route",
                  "scope", "routes", "embeddings", "images", "match", "type", "detector",
                  "detectors", "secret", "action", "type", "block"));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:[s, s, s]}], s:{s:s}}", "name", "sc-ip", "match",
                  "type", "ip", "values", "203.0.113.0/24", "198.51.100.7",
                  "2001:db8::/32", "action", "type", "block"));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:[s, s, s]}], s:{s:s}}", "name", "sc-country", "match",
                  "type", "country", "values", "KP", "IR", "SY", "action", "type",
                  "block"));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:[s, s], s:s, s:s, s:s}, {s:s, s:o}], s:{s:s}}",
                  "name", "sc-night", "match", "type", "time", "days", "sat", "sun",
                  "from", "22:00", "to", "06:00", "utc_offset", "+08:00", "type",
                  "keywords", "values", words(20), "action", "type", "block"));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:i}], s:{s:s, s:i}}", "name", "sc-size", "match",
                  "type", "size", "min", 1048576, "action", "type", "block", "status",
                  413));
    add(p, pols,
        json_pack("{s:s, s:[{s:s, s:i}], s:{s:s, s:s}}", "name", "sc-tokens", "match",
                  "type", "tokens", "min", 50000, "action", "type", "downgrade", "model",
                  "gpt-4o-mini"));
    add(p, pols,
        json_pack("{s:s, s:{s:[s], s:[i, i]}, s:[{s:s, s:s}], s:{s:s}}", "name",
                  "sc-group", "scope", "groups", "interns", "users", 42, 43, "match",
                  "type", "regex", "pattern", "(?i)\\bsalary\\b", "action", "type",
                  "block"));
    add(p, pols,
        json_pack("{s:s, s:{s:[s]}, s:[{s:s, s:o, s:b}], s:{s:s}}", "name", "sc-route-kw",
                  "scope", "routes", "chat", "match", "type", "keywords", "values",
                  words(20), "negate", 0, "action", "type", "tag"));
    for (i = 0; i < 20; ++i) { /* tags and shadows */
        json_t *m = i % 2
                        ? json_pack("{s:s, s:o}", "type", "keywords", "values", words(20))
                        : json_pack("{s:s, s:s}", "type", "regex", "pattern",
                                    regexes[(i * 7) % 20]);

        add(p, pols,
            json_pack("{s:s, s:i, s:b, s:[o], s:{s:s}}", "name",
                      apr_psprintf(p, "watch-%02d", i), "priority", -i, "shadow", i >= 10,
                      "match", m, "action", "type", i >= 10 ? "block" : "tag"));
    }
    if (emit_specs) {
        return NULL;
    }
    set = nebula_gov_set_make(p, pols, &err);
    if (!set) {
        fprintf(stderr, "bench_gov: %s\n", err);
        exit(1);
    }
    return set;
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(int)(q * (n - 1))];
}

/* Time @a iters evaluations (or redactions) of @a text; *hits: the last's. */
static void run(apr_pool_t *p, const nebula_gov_set_t *set, const char *text, int iters,
                int do_redact, double *t, int *hits)
{
    apr_pool_t *it;
    int i;

    apr_pool_create(&it, p);
    for (i = 0; i < iters; ++i) {
        nebula_gov_subject_t s;
        nebula_gov_result_t res;
        apr_size_t n;
        double t0;

        memset(&s, 0, sizeof(s));
        s.text = text;
        s.text_len = strlen(text);
        s.model = "gpt-4o";
        s.route = "chat";
        s.group = "default";
        s.user_id = 3;
        s.key_id = 7;
        s.client_ip = "192.0.2.10";
        s.country = "DE";
        s.body_bytes = 4096;
        s.tokens = 700;
        t0 = now_us();
        if (do_redact) {
            *hits = nebula_gov_redact(it, set, NEBULA_GOV_STAGE_REQUEST, &s, text,
                                      s.text_len, &n) != NULL;
        }
        else {
            nebula_gov_evaluate(it, set, NEBULA_GOV_STAGE_REQUEST, &s, &res);
            *hits = res.hits->nelts;
        }
        t[i] = now_us() - t0;
        apr_pool_clear(it);
    }
    apr_pool_destroy(it);
}

int main(int argc, char **argv)
{
    int iters, clean_hits = 0, hits = 0, redacted = 0, want_prompt = 0;
    apr_pool_t *p;
    nebula_gov_set_t *set;
    char *clean = "", *dirty;
    double *t, t0, compile_ms, e50, e90, e99, h50, h99, r50;
    size_t i;

    emit_specs = argc > 1 && !strcmp(argv[1], "--specs");
    want_prompt = argc > 1 && !strcmp(argv[1], "--prompt");
    iters = argc > 1 && !emit_specs && !want_prompt ? atoi(argv[1]) : 20000;
    if (iters < 10 || apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "usage: bench_gov [ITERATIONS >= 10]\n");
        return 2;
    }
    apr_pool_create(&p, NULL);
    if (emit_specs) {
        make_policies(p);
        return 0;
    }
    t0 = now_us();
    set = want_prompt ? NULL : make_policies(p);
    compile_ms = (now_us() - t0) / 1e3;
    while (strlen(clean) < 2048) {
        for (i = 0;
             i < sizeof(prompt_parts) / sizeof(*prompt_parts) && strlen(clean) < 2048;
             ++i) {
            clean = apr_pstrcat(p, clean, prompt_parts[i], NULL);
        }
    }
    if (want_prompt) {
        fputs(clean, stdout);
        return 0;
    }
    dirty = apr_pstrcat(p, hit_parts, clean, NULL);
    t = malloc(iters * sizeof(*t));
    run(p, set, clean, iters, 0, t, &clean_hits);
    e50 = pct(t, iters, 0.50), e90 = pct(t, iters, 0.90), e99 = pct(t, iters, 0.99);
    run(p, set, dirty, iters, 0, t, &hits);
    h50 = pct(t, iters, 0.50), h99 = pct(t, iters, 0.99);
    run(p, set, dirty, iters, 1, t, &redacted);
    r50 = pct(t, iters, 0.50);
    printf(
        "{\"policies\":%d,\"prompt_bytes\":%lu,\"iterations\":%d,\"compile_ms\":%.1f,"
        "\"eval_us_p50\":%.1f,\"eval_us_p90\":%.1f,\"eval_us_p99\":%.1f,\"eval_hits\":%d,"
        "\"hit_prompt_bytes\":%lu,\"hit_eval_us_p50\":%.1f,\"hit_eval_us_p99\":%.1f,"
        "\"hit_eval_hits\":%d,\"redact_us_p50\":%.1f,\"redacted\":%s}\n",
        nebula_gov_set_count(set), (unsigned long)strlen(clean), iters, compile_ms, e50,
        e90, e99, clean_hits, (unsigned long)strlen(dirty), h50, h99, hits, r50,
        redacted ? "true" : "false");
    free(t);
    apr_pool_destroy(p);
    apr_terminate();
    return clean_hits == 0 && hits > 0 && redacted ? 0 : 1;
}

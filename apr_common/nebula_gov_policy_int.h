/* nebula_gov_policy_int.h: what the two halves of the policy engine share
 * (nebula_gov_policy.c: parse, validate and compile a spec, order a set;
 * nebula_gov_match.c: evaluate a set, redact, the result as JSON): the
 * compiled forms of a policy and its matchers. Private to apr_common. */
#ifndef NEBULA_GOV_POLICY_INT_H
#define NEBULA_GOV_POLICY_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "nebula_gov_detect.h"
#include "nebula_gov_policy.h"
#include "nebula_gov_text.h"

#define GOV_PATTERN_MAX  1024   /* bytes in a regex pattern */
#define GOV_KEYWORDS_MAX 1000   /* keywords in one matcher */
#define GOV_KEYWORD_MAX  256    /* bytes in one keyword */
#define GOV_MATCH_LIMIT  100000 /* pcre2_set_match_limit */
#define GOV_DEPTH_LIMIT  5000   /* pcre2_set_depth_limit */
#define GOV_HEAP_LIMIT   4096   /* pcre2_set_heap_limit, KiB */
#define GOV_SPANS_MAX    1000   /* spans one text matcher reports */
#define GOV_EXCERPT_MAX  160    /* bytes in an excerpt */

typedef enum {
    GOV_M_KEYWORDS = 1,
    GOV_M_REGEX,
    GOV_M_DETECTOR,
    GOV_M_MODEL,
    GOV_M_ROUTE,
    GOV_M_IP,
    GOV_M_COUNTRY,
    GOV_M_TIME,
    GOV_M_SIZE,
    GOV_M_TOKENS
} gov_mtype_e;

/* One IPv4 or IPv6 network: addresses of 4 or 16 bytes, prefix in bits. */
typedef struct {
    int family; /* 4 or 6 */
    unsigned char addr[16];
    int bits;
} gov_net_t;

typedef struct {
    gov_mtype_e type;
    const char *name; /* the matcher's "name", else its type */
    int negate;
    int text;                  /* keywords, regex or detector */
    const char *const *values; /* keywords (normalised), models, routes, countries */
    int nvalues;
    const apr_size_t *lens;    /* keywords: their lengths */
    int word;                  /* keywords: NEBULA_GOV_KW_WORD */
    pcre2_code *re;            /* regex */
    pcre2_match_context *mctx; /* regex: the match and depth limits */
    unsigned detectors;        /* detector: nebula_gov_detector_e bits */
    gov_net_t *nets;           /* ip */
    int nnets;
    unsigned days;        /* time: bit 0 Sunday .. bit 6 Saturday */
    int from, to;         /* time: minutes of the day, to may be 1440 */
    int utc_offset;       /* time: minutes east of UTC */
    apr_int64_t min, max; /* size, tokens: max < 0 means none */
} gov_matcher_t;

struct nebula_gov_policy_t {
    nebula_gov_policy_info_t info;
    json_t *spec; /* canonical, owned by the pool */
    /* scope */
    const char *const *groups;
    int ngroups;
    const apr_int64_t *users;
    int nusers;
    const apr_int64_t *keys;
    int nkeys;
    const char *const *models;
    int nmodels;
    const char *const *routes;
    int nroutes;
    /* matchers: the non-text ones first, then the text ones, each group in
     * spec order (cheap checks before the text is looked at) */
    gov_matcher_t *m;
    int nm;
    int has_text; /* a text matcher that is not negated */
};

struct nebula_gov_set_t {
    const nebula_gov_policy_t **pol;
    int n;
    unsigned stages;
};

#endif /* NEBULA_GOV_POLICY_INT_H */

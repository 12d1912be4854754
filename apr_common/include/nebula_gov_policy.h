/**
 * @file nebula_gov_policy.h
 * @brief Governance policies: parse and validate a policy's JSON spec,
 *        compile it, evaluate a set of them against a request (or a piece of
 *        completion text), and redact what they matched.
 *
 * Pure APR + jansson + PCRE2: the gov module evaluates with it, the admin API
 * validates with it, the unit tests and bench/ drive it directly.
 *
 * A policy spec (docs/governance.md is the user's reference):
 *
 *   {"name": "no-cards",          [A-Za-z0-9_.-], 1..64, required
 *    "description": "...",        optional, <= 255 bytes
 *    "priority": 100,             integer, higher is evaluated first (ties: name)
 *    "enabled": true, "shadow": false,
 *    "stage": "request",          request | response | both (default request)
 *    "scope": {                   every part optional; all given must hold
 *        "groups": ["vip"], "users": [3], "keys": [7],
 *        "models": ["gpt-4*"],    globs ('*' and '?'), on the requested model
 *        "routes": ["chat", "messages"]},
 *    "match": [ matcher, ... ],   all must hold (AND); empty or absent: always
 *    "action": {"type": "block", "status": 403, "message": "..."}}
 *
 * Matchers (each may carry "negate": true, and an optional "name" used in
 * traces and the audit log instead of the type):
 *   {"type": "keywords", "values": ["a", "b"], "word": false}
 *        on the normalised text (nebula_gov_text.h): case, full-width,
 *        compatibility forms and zero-width characters do not evade it
 *   {"type": "regex", "pattern": "...", "case_insensitive": true}
 *        PCRE2, UTF + UCP, on the original text; compile errors refused
 *   {"type": "detector", "detectors": ["email", "phone", "card", "cn_id",
 *                                      "secret"]}
 *   {"type": "model", "values": ["glob", ...]}
 *   {"type": "route", "values": ["chat", ...]}
 *   {"type": "ip", "values": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]}
 *   {"type": "country", "values": ["CN", "US"]}   ISO 3166 alpha-2
 *   {"type": "time", "days": ["mon", ...], "from": "09:00", "to": "18:00",
 *    "utc_offset": "+08:00"}     from > to spans midnight; days optional
 *   {"type": "size", "min": 0, "max": 1048576}      request body bytes
 *   {"type": "tokens", "min": 0, "max": 100000}     prompt token estimate
 * keywords, regex and detector are text matchers: on the request stage they
 * read the prompt text, on the response stage the completion text. The other
 * matchers describe the request and hold the same on both stages.
 *
 * Actions:
 *   {"type": "block", "status": 403, "message": "..."}  status 400..599
 *   {"type": "downgrade", "model": "gpt-4o-mini"}       request stage only
 *   {"type": "reroute", "group": "g"} | {"type": "reroute", "channel": "name"}
 *                                                       request stage only
 *   {"type": "redact", "mask": "[REDACTED]"}   masks every span the policy's
 *        text matchers found (default mask "[REDACTED]"); needs one text
 *        matcher that is not negated
 *   {"type": "tag", "tag": "pii"}              audit only
 * block, downgrade and reroute are terminal: the first terminal policy (by
 * priority) that holds decides, and terminal policies after it are not
 * evaluated. redact and tag are not terminal and are all evaluated, whatever
 * was decided (a downgraded request is still redacted). A shadow policy is
 * evaluated and reported as a hit with shadow set, and changes nothing (it is
 * never terminal either, and evaluation goes on after it).
 */
#ifndef NEBULA_GOV_POLICY_H
#define NEBULA_GOV_POLICY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>
#include "nebula_gov_detect.h"

typedef enum {
    NEBULA_GOV_STAGE_REQUEST = 1,
    NEBULA_GOV_STAGE_RESPONSE = 2,
    NEBULA_GOV_STAGE_BOTH = 3
} nebula_gov_stage_e;

typedef enum {
    NEBULA_GOV_ACT_BLOCK = 1,
    NEBULA_GOV_ACT_DOWNGRADE,
    NEBULA_GOV_ACT_REROUTE,
    NEBULA_GOV_ACT_REDACT,
    NEBULA_GOV_ACT_TAG
} nebula_gov_action_e;

/** A compiled policy (opaque); lives as long as the pool it was compiled in. */
typedef struct nebula_gov_policy_t nebula_gov_policy_t;

/** A policy's public face, read after compiling. */
typedef struct {
    const char *name;
    const char *description;
    int priority;
    int enabled;
    int shadow;
    nebula_gov_stage_e stage;
    nebula_gov_action_e action;
    int status;             /**< block: HTTP status (default 403) */
    const char *message;    /**< block: text for the client (a default if none) */
    const char *model;      /**< downgrade: the model to use */
    const char *group;      /**< reroute: the group, or NULL */
    const char *channel;    /**< reroute: the channel's name, or NULL */
    const char *mask;       /**< redact: the replacement text */
    const char *tag;        /**< tag: the label, or NULL */
} nebula_gov_policy_info_t;

/**
 * Validate and compile @a spec (a JSON object, as above) in @a p. Returns
 * NULL and sets *@a err (from @a p) to a message naming the offending field
 * ("match[1].pattern: missing ) at offset 4") when the spec is invalid.
 */
nebula_gov_policy_t *nebula_gov_policy_compile(apr_pool_t *p, const json_t *spec,
                                               const char **err);

/** The policy's public face. */
const nebula_gov_policy_info_t *nebula_gov_policy_info(const nebula_gov_policy_t *pol);

/** The spec in canonical form (defaults filled in), a new reference. */
json_t *nebula_gov_policy_spec(const nebula_gov_policy_t *pol);

/** A set of policies in evaluation order (priority high to low, then name). */
typedef struct nebula_gov_set_t nebula_gov_set_t;

/** Order @a policies (an array of nebula_gov_policy_t *) into a set. Disabled
 *  policies are kept out. Names must be unique: NULL and *@a err naming the
 *  duplicate otherwise. */
nebula_gov_set_t *nebula_gov_set_make(apr_pool_t *p, const apr_array_header_t *policies,
                                      const char **err);

/** Number of (enabled) policies in the set; 0 for NULL. */
int nebula_gov_set_count(const nebula_gov_set_t *set);

/** Whether any policy of the set applies to @a stage (so a relay can skip
 *  scanning completions when none does). */
int nebula_gov_set_has_stage(const nebula_gov_set_t *set, nebula_gov_stage_e stage);

/** What a request looks like to the matchers. NULL / -1: not known (a
 *  matcher that needs it does not hold; negated, it does). */
typedef struct {
    const char *text;            /**< prompt text (request stage) or the
                                      completion text (response stage) */
    apr_size_t text_len;
    const char *model;
    const char *route;
    const char *group;
    apr_int64_t user_id;         /**< 0: none */
    apr_int64_t key_id;          /**< 0: none */
    const char *client_ip;
    const char *country;         /**< ISO alpha-2, upper case */
    apr_time_t now;              /**< 0: apr_time_now() */
    apr_off_t body_bytes;        /**< -1: not known */
    apr_int64_t tokens;          /**< prompt token estimate, -1: not known */
} nebula_gov_subject_t;

/** One policy that held. */
typedef struct {
    const nebula_gov_policy_t *policy;
    const nebula_gov_policy_info_t *info;
    const char *matcher;         /**< the matcher that decided: the first text
                                      matcher that found something, else the
                                      last one evaluated; "scope" when the
                                      policy has no matcher */
    int shadow;
    int terminal;                /**< this hit decided (not shadow) */
    const char *excerpt;         /**< up to 160 bytes of text around the first
                                      text match, matched bytes replaced by
                                      "[<detector>]", "[keyword]" or "[regex]";
                                      NULL without a text match */
    apr_array_header_t *spans;   /**< nebula_gov_span_t (nebula_gov_detect.h)
                                      over subject->text, sorted, merged; the
                                      name field says which matcher found it */
} nebula_gov_hit_t;

/** The outcome of evaluating a set for one stage. */
typedef struct {
    apr_array_header_t *hits;        /**< nebula_gov_hit_t, in evaluation order */
    const nebula_gov_hit_t *decided; /**< the terminal hit, or NULL */
    int redact;                      /**< a non-shadow redact policy held */
    int evaluated;                   /**< policies whose scope and stage applied */
} nebula_gov_result_t;

/**
 * Evaluate @a set for @a stage against @a subj; fills @a out (from @a p).
 * Never fails: a regex that errors at match time (e.g. match limit) counts
 * as not matching.
 */
void nebula_gov_evaluate(apr_pool_t *p, const nebula_gov_set_t *set,
                         nebula_gov_stage_e stage, const nebula_gov_subject_t *subj,
                         nebula_gov_result_t *out);

/**
 * Apply the redact policies of @a set that hold for @a subj on @a stage to
 * @a text (any piece of the request or completion: one message's content, a
 * stream delta): every span their text matchers find in it is replaced by the
 * policy's mask. The non-text matchers and the scope are checked against
 * @a subj (its text fields are ignored). Returns the new text from @a p and
 * its length in *@a out_len, or NULL when nothing was masked.
 */
const char *nebula_gov_redact(apr_pool_t *p, const nebula_gov_set_t *set,
                              nebula_gov_stage_e stage, const nebula_gov_subject_t *subj,
                              const char *text, apr_size_t len, apr_size_t *out_len);

/** The trace of @a res as JSON (a new reference) for the policy test API:
 *  {"decision": {"action": "block"|"downgrade"|"reroute"|"allow", "policy",
 *  "status", "message", "model", "group", "channel"}, "redact": bool,
 *  "hits": [{"policy", "matcher", "action", "shadow", "terminal", "excerpt"}],
 *  "evaluated": n}. */
json_t *nebula_gov_result_json(const nebula_gov_result_t *res);

/** "block", "downgrade", "reroute", "redact", "tag". */
const char *nebula_gov_action_name(nebula_gov_action_e a);

#endif /* NEBULA_GOV_POLICY_H */

/**
 * @file nebula_gov.h
 * @brief The governance hook the relay runs after authentication and before
 *        billing reserves credit.
 *
 * It is an APR *optional* hook (like mod_status's status_hook): the relay
 * implements and runs it (ap_run_nebula_gov_check); mod_nebula_gov, and any
 * other module, registers with
 * APR_OPTIONAL_HOOK(ap, nebula_gov_check, fn, NULL, NULL, APR_HOOK_MIDDLE).
 * No module links against another, so each loads alone.
 *
 * A hook returns OK after filling @a decision when it decided, DECLINED when
 * it has no opinion; the relay runs all hooks and stops at the first that sets
 * a BLOCK decision.
 *
 * nebula_gov_done runs once the request has ended (before the request log
 * row is written; hooks return OK or DECLINED, nothing else): limits count the tokens really used and release what the
 * request held (a concurrent stream slot).
 */
#ifndef NEBULA_GOV_H
#define NEBULA_GOV_H

#include <httpd.h>
#include <apr_hooks.h>
#include <apr_optional_hooks.h>
#include <apr_optional.h>
#include <jansson.h>
#include "nebula_types.h"

/* Linkage of the hook's functions: plain C, kept private to each DSO by its
 * -export-symbols-regex. */
#define NEBULA_DECLARE(type)        type
#define NEBULA_DECLARE_NONSTD(type) type
#define NEBULA_DECLARE_DATA

APR_DECLARE_EXTERNAL_HOOK(ap, NEBULA, int, nebula_gov_check,
                          (request_rec *r, nebula_req_t *req,
                           nebula_decision_t *decision))

APR_DECLARE_EXTERNAL_HOOK(ap, NEBULA, int, nebula_gov_done,
                          (request_rec *r, const nebula_reqlog_t *log))

/**
 * mod_nebula_relay's host-wide generation of configuration data: it changes
 * whenever the admin API changes anything cached (on this host at once, on
 * others through Redis). Governance reloads its policies and limits when it
 * differs from the one they were read at. Absent without the relay.
 */
APR_DECLARE_OPTIONAL_FN(apr_uint32_t, nebula_relay_generation, (void));

/**
 * Evaluate the policies for @a req without effects (nothing audited, no
 * limit counted): the admin API's policy test. @a extra (may be NULL) is a
 * JSON array of policy specs to evaluate as well, as if stored. Returns
 * NULL and sets *@a trace to a new JSON object:
 * {"decision": {...}, "hits": [...], "evaluated": n}; or an error message
 * (a policy in @a extra is invalid).
 */
APR_DECLARE_OPTIONAL_FN(const char *, nebula_gov_policy_test,
                        (request_rec *r, const nebula_req_t *req, const json_t *extra,
                         json_t **trace));

/**
 * The policies declared in @a s's configuration (<NebulaPolicy> sections),
 * as a new JSON array of canonical specs: the admin API lists them
 * read-only. Absent without mod_nebula_gov.
 */
APR_DECLARE_OPTIONAL_FN(json_t *, nebula_gov_config_policies, (server_rec *s));

/** The request note through which the policy test (POST /api/policies/test)
 *  gives nebula_gov_policy_test the sample request's country (ISO alpha-2,
 *  upper case); where set, it stands for what the country matcher would
 *  otherwise learn from the client's address or headers. */
#define NEBULA_GOV_NOTE_COUNTRY "nebula-gov-country"

/**
 * The Redis URL (redis://[:password@]host[:port][/db]) mod_nebula_relay is
 * configured with for @a s (NebulaRedis), or NULL: rate limits count there
 * so that all hosts share them. Registered by the relay.
 */
APR_DECLARE_OPTIONAL_FN(const char *, nebula_relay_redis_url, (server_rec *s));

/**
 * The rate limits declared with NebulaRateLimit on any server of this
 * configuration, as a new JSON array of objects {scope_kind, scope_value,
 * rpm, tpm, max_streams, enabled, source: "config"}: the admin API lists them
 * (read-only) next to the table gov_limits. Registered by mod_nebula_gov.
 */
APR_DECLARE_OPTIONAL_FN(json_t *, nebula_gov_limits_declared, (apr_pool_t *p));

/** What the admin API's settings page shows of this module. */
typedef struct {
    int enabled;    /**< NebulaGovernance */
    int audit_days; /**< NebulaAuditRetention, days */
} nebula_gov_settings_t;

/** Fill @a out with the settings of server @a s. Registered by mod_nebula_gov. */
APR_DECLARE_OPTIONAL_FN(void, nebula_gov_settings, (server_rec *s, nebula_gov_settings_t *out));

#endif /* NEBULA_GOV_H */

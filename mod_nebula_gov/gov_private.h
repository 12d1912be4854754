/**
 * @file gov_private.h
 * @brief Declarations shared by the files of mod_nebula_gov.
 *
 * gov_config.c         directives and their per-server merge
 * gov_config_policy.c  <NebulaPolicy name> sections, read into policy specs
 * gov_store.c          the per-process snapshot of the policies in force
 * gov_check.c          the nebula_gov_check hook: evaluate, decide, rewrite
 * gov_audit.c          the audit log: table rows, the JSON-lines/syslog sink,
 *                      retention
 * gov_limit*.c         rate and concurrency limits (gov_limit.h)
 */
#ifndef GOV_PRIVATE_H
#define GOV_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_network_io.h>
#include "nebula_gov_policy.h"
#include "nebula_types.h"

extern module AP_MODULE_DECLARE_DATA nebula_gov_module;
APLOG_USE_MODULE(nebula_gov);

#define GOV_UNSET (-1)
#define GOV_DEFAULT_AUDIT_DAYS 90

/** Per-server settings. */
typedef struct {
    int enabled;                 /**< NebulaGovernance On|Off */
    int audit_days;              /**< NebulaAuditRetention, days */
    /** <NebulaPolicy> sections: json_t * specs (canonical), in config order;
     *  NULL when none (then the main server's apply) */
    apr_array_header_t *policies;
    const char *audit_sink;      /**< NebulaGovAuditLog: a path, "syslog", NULL */
    apr_file_t *audit_file;      /**< opened in post_config */
    apr_array_header_t *country_env;   /**< NebulaGovCountryEnv names */
    const char *country_header;        /**< NebulaGovCountryHeader name */
    apr_array_header_t *country_proxies; /**< apr_ipsubnet_t * trusted for it */
    /* rate limits (gov_limit.c) */
    apr_array_header_t *limits;  /**< NebulaRateLimit: gov_limit_t *, the main
                                      server's then the vhost's own */
} gov_srv_conf_t;

void *gov_config_create_srv(apr_pool_t *p, server_rec *s);
void *gov_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
extern const command_rec gov_config_cmds[];
const gov_srv_conf_t *gov_config_srv(server_rec *s);

/* ---- gov_config_policy.c ------------------------------------------------ */
/** The <NebulaPolicy name> section handler (reads up to </NebulaPolicy>). */
const char *gov_config_policy_section(cmd_parms *cmd, void *dc, const char *arg);

/* ---- gov_store.c --------------------------------------------------------- */
typedef struct gov_snapshot_t gov_snapshot_t;

apr_status_t gov_store_child_init(apr_pool_t *pchild, server_rec *s);
/** A counted reference (released with r->pool) to the policies in force for
 *  r->server: config-declared and stored; reloaded when the relay's
 *  generation changed. NULL when there are none and none could be read. */
gov_snapshot_t *gov_store_snapshot(request_rec *r);
/** The set r->server evaluates in @a sn (never NULL). */
const nebula_gov_set_t *gov_store_set(request_rec *r, gov_snapshot_t *sn);
/** The config-declared policies of @a s, compiled (for the policy test). */
apr_array_header_t *gov_store_config_policies(apr_pool_t *p, server_rec *s);
/** The stored policies, compiled in @a p (invalid rows logged, skipped). */
apr_status_t gov_store_db_policies(request_rec *r, apr_pool_t *p, apr_array_header_t *out);

/* ---- gov_check.c --------------------------------------------------------- */
/** Fill @a subj from @a req and the connection (country included). */
void gov_check_subject(request_rec *r, const nebula_req_t *req, const char *text,
                       apr_size_t len, nebula_gov_subject_t *subj);
void gov_check_register(void);
/** Remember the main server (the admin API lists every server's sections). */
void gov_check_post_config(server_rec *s);

/* ---- gov_audit.c --------------------------------------------------------- */
/** Record a hit of @a stage ("request", "response", "limit"). */
void gov_audit_hit(request_rec *r, const nebula_req_t *req, const char *stage,
                   const nebula_gov_hit_t *hit);
/** Record a row that is not a policy hit (a refused limit). */
void gov_audit_row(request_rec *r, const nebula_req_t *req, const char *stage,
                   const char *policy, const char *matcher, const char *action,
                   int shadow, const char *excerpt);
/** Open the sinks (post_config). */
apr_status_t gov_audit_post_config(apr_pool_t *pconf, server_rec *s);

#endif /* GOV_PRIVATE_H */

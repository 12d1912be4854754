/**
 * @file gov_private.h
 * @brief Declarations shared by the files of mod_nebula_gov.
 */
#ifndef GOV_PRIVATE_H
#define GOV_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

extern module AP_MODULE_DECLARE_DATA nebula_gov_module;
APLOG_USE_MODULE(nebula_gov);

#define GOV_UNSET (-1)
#define GOV_DEFAULT_AUDIT_DAYS 90

/** Per-server settings. */
typedef struct {
    int enabled;                 /**< NebulaGovernance On|Off */
    int audit_days;              /**< NebulaAuditRetention, days */
} gov_srv_conf_t;

void *gov_config_create_srv(apr_pool_t *p, server_rec *s);
void *gov_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
extern const command_rec gov_config_cmds[];
const gov_srv_conf_t *gov_config_srv(server_rec *s);

#endif /* GOV_PRIVATE_H */

/**
 * @file billing_private.h
 * @brief Declarations shared by the files of mod_nebula_billing.
 */
#ifndef BILLING_PRIVATE_H
#define BILLING_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

extern module AP_MODULE_DECLARE_DATA nebula_billing_module;
APLOG_USE_MODULE(nebula_billing);

#define BILLING_UNSET (-1)
/** new-api's convention: 500000 quota units make one US dollar. */
#define BILLING_DEFAULT_QUOTA_PER_USD APR_INT64_C(500000)

/** Per-server settings. */
typedef struct {
    int enabled;                 /**< NebulaBilling On|Off */
    apr_int64_t quota_per_usd;   /**< NebulaQuotaPerUSD */
} billing_srv_conf_t;

void *billing_config_create_srv(apr_pool_t *p, server_rec *s);
void *billing_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
extern const command_rec billing_config_cmds[];
const billing_srv_conf_t *billing_config_srv(server_rec *s);

#endif /* BILLING_PRIVATE_H */

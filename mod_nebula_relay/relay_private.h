/**
 * @file relay_private.h
 * @brief Declarations shared by the files of mod_nebula_relay.
 */
#ifndef RELAY_PRIVATE_H
#define RELAY_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_buckets.h>
#include "nebula_crypto.h"
#include "nebula_types.h"

extern module AP_MODULE_DECLARE_DATA nebula_relay_module;
APLOG_USE_MODULE(nebula_relay);

#define RELAY_HANDLER "nebula-relay"
#define RELAY_UNSET   (-1)

/** Per-directory settings (NebulaRelay, NebulaPassThrough, ...). */
typedef struct {
    int enabled;                   /**< NebulaRelay On|Off */
    const char *passthrough;       /**< NebulaPassThrough origin URL, NULL unset */
    apr_off_t max_body;            /**< NebulaMaxBodySize, bytes */
    apr_interval_time_t timeout;   /**< NebulaUpstreamTimeout */
    int admin;                     /**< NebulaAdmin On|Off */
} relay_dir_conf_t;

#define RELAY_DEFAULT_MAX_BODY  (32 * 1024 * 1024)
#define RELAY_DEFAULT_TIMEOUT   apr_time_from_sec(300)

#define RELAY_ADMIN_HANDLER "nebula-admin"

/** Per-server settings. Secrets come from ${ENV} substitution. */
typedef struct {
    const char *crypto_secret;     /**< NebulaCryptoSecret: upstream keys at rest */
    const char *session_secret;    /**< NebulaSessionSecret: admin session cookies */
    const char *admin_token;       /**< NebulaAdminToken: bootstrap root token, or NULL */
    apr_interval_time_t session_ttl; /**< NebulaAdminSessionTTL */
    int retries;                   /**< NebulaRetries: extra attempts on other channels */
    apr_interval_time_t cache_ttl; /**< NebulaCacheTTL: key cache entries */
    /** Built in post_config from crypto_secret; NULL when it is unset. */
    nebula_crypto_keyring_t *keyring;
} relay_srv_conf_t;

#define RELAY_DEFAULT_RETRIES      2
#define RELAY_DEFAULT_CACHE_TTL    apr_time_from_sec(30)
#define RELAY_DEFAULT_SESSION_TTL  apr_time_from_sec(12 * 3600)
#define RELAY_KEYRING_VERSION      1

/* relay_config.c */
void *relay_config_create_dir(apr_pool_t *p, char *dir);
void *relay_config_merge_dir(apr_pool_t *p, void *basev, void *addv);
extern const command_rec relay_config_cmds[];
/** The effective per-dir config of @a r. */
const relay_dir_conf_t *relay_config_dir(request_rec *r);
void *relay_config_create_srv(apr_pool_t *p, server_rec *s);
void *relay_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
/** The server config of @a s (values resolved: defaults applied). */
relay_srv_conf_t *relay_config_srv(server_rec *s);
/** Build every server's keyring; post_config. Returns a message on error. */
const char *relay_config_post_config(apr_pool_t *pconf, server_rec *s);

/* relay_gen.c: a host-wide "generation" of the configuration data (keys,
 * users, channels): any change bumps it, and every process drops its caches
 * when it sees a new value. Shared memory, so one bump reaches all children;
 * several hosts share it through Redis when configured. */
apr_status_t relay_gen_post_config(apr_pool_t *pconf, server_rec *s);
/** The current generation (an atomic read: cheap enough for every request). */
apr_uint32_t relay_gen_current(void);
/** Announce a change of keys, users, groups or channels. */
void relay_gen_bump(void);

/* relay_upstream.c: one HTTP exchange with an upstream origin through
 * mod_proxy's pooled workers. */
typedef struct relay_upstream_t relay_upstream_t;

/** Create the per-child worker cache; called from child_init. */
apr_status_t relay_upstream_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * Connect to the origin of @a url (scheme://host[:port]), reusing a pooled
 * connection when one is idle. Returns OK or an HTTP status to refuse with.
 */
int relay_upstream_open(request_rec *r, const char *url, apr_interval_time_t timeout,
                        relay_upstream_t **pup);
/** Send one request; @a headers must not carry hop-by-hop fields. */
int relay_upstream_send(relay_upstream_t *up, const char *method, const char *path,
                        apr_table_t *headers, const char *body, apr_size_t len);
/** Read the status line and headers of the response. */
int relay_upstream_read_head(relay_upstream_t *up, int *status, apr_table_t **headers);
/**
 * Read what the upstream has of the body into @a bb (buckets owned by the
 * request, safe to pass to the client). APR_EOF once the body is complete;
 * with APR_NONBLOCK_READ, APR_EAGAIN when nothing is ready yet.
 */
apr_status_t relay_upstream_read_body(relay_upstream_t *up, apr_bucket_brigade *bb,
                                      apr_read_type_e mode);
/** Give the connection back to the pool (or close it when @a broken). */
void relay_upstream_close(relay_upstream_t *up, int broken);

/* relay_handler.c */
int relay_handler(request_rec *r);

#endif /* RELAY_PRIVATE_H */

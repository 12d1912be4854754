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
} relay_dir_conf_t;

#define RELAY_DEFAULT_MAX_BODY  (32 * 1024 * 1024)
#define RELAY_DEFAULT_TIMEOUT   apr_time_from_sec(300)

/* relay_config.c */
void *relay_config_create_dir(apr_pool_t *p, char *dir);
void *relay_config_merge_dir(apr_pool_t *p, void *basev, void *addv);
extern const command_rec relay_config_cmds[];
/** The effective per-dir config of @a r. */
const relay_dir_conf_t *relay_config_dir(request_rec *r);

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

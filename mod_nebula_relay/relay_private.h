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
#include <apr_hash.h>
#include "nebula_crypto.h"
#include "nebula_types.h"
#include "nebula_json.h"
#include "nebula_buf.h"

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
    int disconnect;                /**< NebulaStreamDisconnect drain|stop */
    apr_interval_time_t drain_timeout; /**< NebulaDrainTimeout */
    apr_interval_time_t ping;      /**< NebulaStreamPing; 0 off */
    apr_interval_time_t first_byte; /**< NebulaFirstByteTimeout; 0: as NebulaUpstreamTimeout */
    int overhead_header;           /**< NebulaOverheadHeader On|Off */
} relay_dir_conf_t;

#define RELAY_DISCONNECT_DRAIN 0
#define RELAY_DISCONNECT_STOP  1
#define RELAY_DEFAULT_DRAIN    apr_time_from_sec(30)

#define RELAY_DEFAULT_MAX_BODY  (32 * 1024 * 1024)
#define RELAY_DEFAULT_TIMEOUT   apr_time_from_sec(300)

#define RELAY_ADMIN_HANDLER "nebula-admin"

/** Top-up by payment (admin_payments*.c, docs/payments.md): per server, the
 *  admin vhost's values count. Money in minor units (cents). */
typedef struct {
    apr_int64_t rate;             /**< NebulaTopupRate: quota per currency unit */
    apr_int64_t min_minor;        /**< NebulaTopupMin */
    apr_int64_t max_minor;        /**< NebulaTopupMax */
    const char *currency;         /**< NebulaTopupCurrency (lower case) */
    const char *stripe_key;       /**< NebulaStripeSecretKey */
    const char *stripe_whsec;     /**< NebulaStripeWebhookSecret */
    const char *stripe_api;       /**< NebulaStripeAPI (no trailing '/') */
    const char *stripe_success;   /**< NebulaStripeSuccessURL */
    const char *stripe_cancel;    /**< NebulaStripeCancelURL */
    const char *epay_url;         /**< NebulaEpayURL (no trailing '/') */
    const char *epay_pid;         /**< NebulaEpayPid */
    const char *epay_key;         /**< NebulaEpayKey */
    const char *epay_notify;      /**< NebulaEpayNotifyURL */
    const char *epay_return;      /**< NebulaEpayReturnURL */
} relay_pay_conf_t;

#define RELAY_DEFAULT_TOPUP_RATE  APR_INT64_C(500000)
#define RELAY_DEFAULT_TOPUP_MIN   APR_INT64_C(100)       /* 1.00 */
#define RELAY_DEFAULT_TOPUP_MAX   APR_INT64_C(1000000)   /* 10000.00 */
#define RELAY_DEFAULT_CURRENCY    "usd"
#define RELAY_DEFAULT_STRIPE_API  "https://api.stripe.com"

/** The admin authentication directives of a server (relay_config.c). */
typedef struct {
    int cookie_secure;                /**< NebulaAdminCookieSecure (0 unless On) */
    apr_interval_time_t session_idle; /**< NebulaAdminSessionIdle */
    int trust_remote_user;            /**< NebulaAdminTrustRemoteUser */
    const char *remote_user_role;     /**< NebulaAdminRemoteUserRole, NULL: none */
    const char *remote_role_env;      /**< NebulaAdminRemoteRoleEnv, or NULL */
} admin_auth_conf_t;

/** NebulaUpstreamAllow: the ranges and host names exempt from the SSRF
 *  check, or "*" (relay_ssrf.c). */
typedef struct relay_ssrf_allow_t relay_ssrf_allow_t;
/** NebulaMetricsAllow, NebulaMetricsToken (relay_metrics_http.c). */
typedef struct relay_metrics_conf_t relay_metrics_conf_t;

/** Per-server settings. Secrets come from ${ENV} substitution. */
typedef struct {
    const char *crypto_secret;     /**< NebulaCryptoSecret: upstream keys at rest */
    /** NebulaCryptoSecretPrevious: the secret being rotated out, or NULL */
    const char *crypto_previous;
    const char *session_secret;    /**< NebulaSessionSecret: admin session cookies */
    const char *admin_token;       /**< NebulaAdminToken: bootstrap root token, or NULL */
    apr_interval_time_t session_ttl; /**< NebulaAdminSessionTTL */
    int retries;                   /**< NebulaRetries: extra attempts on other channels */
    /** NebulaRetryBudget: retries per request relayed, in millionths
     *  (RELAY_BUDGET_OFF: no budget), and retries a second allowed anyway */
    int budget_ratio_ppm;
    int budget_min_per_s;
    int budget_idx;                /**< this server's budget (relay_budget.c) */
    apr_interval_time_t cache_ttl; /**< NebulaCacheTTL: key cache entries */
    int adaptive;                  /**< NebulaAdaptiveRouting On|Off */
    const char *tokenizer_dir;     /**< NebulaTokenizerDir (main server) */
    /** NebulaRetryStatus: bit n set when upstream status n is retried;
     *  NULL: 429, 408 and 500-599 */
    unsigned char *retry_status;
    /** NebulaDisableKeyword: lower-case phrases that make an upstream error
     *  definitive (const char *); NULL: the default list */
    apr_array_header_t *disable_words;
    apr_interval_time_t retest;    /**< NebulaRetestInterval; 0 off */
    const char *azure_version;     /**< NebulaAzureAPIVersion */
    int json_max_depth;            /**< NebulaJsonMaxDepth: client and admin bodies */
    /** NebulaRedis: where to publish and hear invalidations (main server) */
    void *redis;
    /** Built in post_config from crypto_secret; NULL when it is unset. */
    nebula_crypto_keyring_t *keyring;
    /** NebulaUpstreamAllow; NULL: none set here (a virtual host inherits
     *  the main server's list unless it sets its own) */
    relay_ssrf_allow_t *upstream_allow;
    relay_pay_conf_t pay;          /**< top-up by payment */
    relay_metrics_conf_t *metrics; /**< who may read /metrics; NULL: unset */
    admin_auth_conf_t admin;       /**< admin sign-in (relay_admin.h) */
} relay_srv_conf_t;

#define RELAY_DEFAULT_RETRIES      2
#define RELAY_BUDGET_OFF           (-2)
#define RELAY_DEFAULT_BUDGET_PPM   200000 /* retries <= 20 % of requests ... */
#define RELAY_DEFAULT_BUDGET_MIN   10     /* ... + 10 a second */
#define RELAY_DEFAULT_RETEST       apr_time_from_sec(600)
#define RELAY_DEFAULT_CACHE_TTL    apr_time_from_sec(30)
#define RELAY_DEFAULT_SESSION_TTL  apr_time_from_sec(12 * 3600)
#define RELAY_KEYRING_VERSION      1
#define RELAY_DEFAULT_AZURE_VERSION "2024-10-21"
#define RELAY_DEFAULT_JSON_DEPTH   64

/* relay_config.c (durations: nebula_ap_duration()) */
/** Whether an upstream answer with @a status may be retried elsewhere. */
int relay_config_retry_status(const relay_srv_conf_t *c, int status);
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
/** Announce a change of keys, users, groups or channels (this host, and
 *  every host through Redis when NebulaRedis is set). */
void relay_gen_bump(void);
/** Bump this host's generation only (what the Redis subscriber does). */
void relay_gen_bump_local(void);

/* relay_retest.c: auto-disabled channels and keys come back (watchdog) */
int relay_retest_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s);

/* relay_redis.c: cross-host invalidation (NebulaRedis) */
const char *relay_redis_parse(apr_pool_t *p, const char *url, void **out);
void relay_redis_child_init(apr_pool_t *pchild, server_rec *s);
void relay_redis_publish(void);
/** Host-wide counters for mod_status. */
typedef struct {
    apr_uint64_t requests;
    apr_uint32_t streams_open;
    apr_uint64_t overhead_count;   /**< requests whose own time was recorded */
    apr_uint64_t overhead_us_sum;  /**< ... and the sum of those times, µs */
    apr_uint64_t overhead_us_p50;  /**< estimated from the histogram; 0 if none */
    apr_uint64_t overhead_us_p99;
} relay_stats_t;
/* relay_budget.c: the host-wide retry budget (NebulaRetryBudget) */
apr_status_t relay_budget_post_config(apr_pool_t *pconf, server_rec *s);
/** Count a request that goes upstream (its first attempt). */
void relay_budget_request(const relay_srv_conf_t *c);
/** May one more retry be made? 1 (counted as made) or 0 (refused, counted). */
int relay_budget_retry(const relay_srv_conf_t *c);
/** Retries made and refused since the server started, all servers. */
void relay_budget_read(apr_uint64_t *retries, apr_uint64_t *refused);

void relay_stats_request(void);
void relay_stats_stream(int delta);
/** Record one request's own time (µs) in the host-wide histogram. */
void relay_stats_overhead(apr_int64_t us);
void relay_stats_read(relay_stats_t *st);

/* relay_handler.c: the gateway's own time per request (docs/overhead.md):
 * the time in the relay handler minus the time spent waiting for the
 * upstream (connecting, from sending the request to its response head, and
 * every blocking read or wait on its body). The upstream calls below add
 * their waits; nothing happens for a request the handler does not time. */
/** When @a r is timed: the current time, the start of a wait; else 0. */
apr_time_t relay_overhead_wait_begin(request_rec *r);
/** End the wait begun at @a since (0: none). */
void relay_overhead_wait_end(request_rec *r, apr_time_t since);
/** With NebulaOverheadHeader On: x-nebula-overhead-us, the own time so far,
 *  into the response headers (call just before the head goes out). */
void relay_overhead_header(request_rec *r);
/* relay_status.c: the mod_status section, and the hooks of the metrics
 * and tracing files below (register_hooks). */
void relay_status_register(void);

/* relay_metrics.c, relay_metrics_http.c: /metrics, /healthz, /readyz
 * (docs/observability.md) */
#define RELAY_METRICS_DEFAULT_SERIES 2048
const char *relay_metrics_set_series(cmd_parms *cmd, void *dc, const char *arg);
const char *relay_metrics_set_allow(cmd_parms *cmd, void *dc, const char *arg);
const char *relay_metrics_set_token(cmd_parms *cmd, void *dc, const char *arg);
relay_metrics_conf_t *relay_metrics_merge(apr_pool_t *p, relay_metrics_conf_t *base,
                                          relay_metrics_conf_t *add);
#define RELAY_METRICS_COMMANDS                                                         \
    AP_INIT_TAKE1("NebulaMetricsSeries", relay_metrics_set_series, NULL, RSRC_CONF,     \
                  "Series (model, channel, status class) /metrics keeps (default "      \
                  "2048, 16..1048576; main server only)"),                               \
    AP_INIT_ITERATE("NebulaMetricsAllow", relay_metrics_set_allow, NULL, RSRC_CONF,     \
                    "Addresses and ranges that may read /metrics, or none (default "    \
                    "127.0.0.0/8 ::1)"),                                                 \
    AP_INIT_TAKE1("NebulaMetricsToken", relay_metrics_set_token, NULL, RSRC_CONF,       \
                  "A bearer token that may read /metrics from anywhere (default none)")
/** Hooks of relay_metrics.c (shared memory) and relay_metrics_http.c
 *  (the handlers nebula-metrics, nebula-healthz, nebula-readyz). */
void relay_metrics_register(void);
void relay_metrics_http_register(void);
/** relay_metrics_log.c: the JSON-safe notes of conf/logformat-json.conf. */
void relay_metrics_log_register(void);
/** The note nebula-model: @a model as the log recipe shows it. */
void relay_metrics_log_model(request_rec *r, const char *model);
/** Totals of the request metrics, for mod_status. */
typedef struct {
    apr_uint64_t errors;            /**< requests answered 400-599 */
    apr_uint64_t prompt_tokens;
    apr_uint64_t completion_tokens;
    apr_uint64_t cost;              /**< quota units */
    int series;                     /**< series in use */
} relay_metrics_totals_t;
void relay_metrics_totals(relay_metrics_totals_t *t);
/** The request metric families (text format) into the response. */
void relay_metrics_write_requests(request_rec *r);

/* relay_trace.c: W3C trace context (docs/observability.md "Tracing") */
/** The post_read_request hook that takes or starts every request's trace. */
void relay_trace_register(void);
/** Parse a traceparent header: 1 when valid (version 00), ids copied. */
int relay_trace_parse(const char *h, char trace_id[33], char parent_id[17], char flags[3]);
/** The trace id of @a r (32 hex; the note nebula-trace-id). */
const char *relay_trace_id(request_rec *r);
/** The traceparent (and tracestate) header lines of an upstream request. */
void relay_trace_headers(request_rec *r, apr_bucket_brigade *bb);
/** Whether @a name is a trace header (never copied from a table upstream). */
int relay_trace_header_name(const char *name);

/* relay_ssrf.c: which upstream URLs and addresses the gateway may connect
 * to (SSRF protection; docs/design-notes.md "SSRF"). */
#define RELAY_SSRF_PROXY   1 /**< the URL of a forward proxy: socks5:// too */
#define RELAY_SSRF_RESOLVE 2 /**< resolve a host name and check its addresses */
#define RELAY_SSRF_CACHED  4 /**< with RESOLVE: a verdict of the last 30 s will do */
/** NebulaUpstreamAllow's setter (one argument: a range, an address, a host
 *  name, "*" or "none"). */
const char *relay_ssrf_set_allow(cmd_parms *cmd, void *dc, const char *arg);
/** Create the per-process verdict cache; child_init. */
apr_status_t relay_ssrf_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * Whether @a url may be an upstream (or, with RELAY_SSRF_PROXY, a forward
 * proxy) of server @a s: NULL when it may, else why not, a phrase for an
 * admin ("the host 'localhost' resolves to 127.0.0.1, in 127.0.0.0/8
 * (loopback)"). Scheme, host syntax and address literals are always
 * checked; a host name's addresses only with RELAY_SSRF_RESOLVE (a name
 * that does not resolve passes: the connect-time check sees its addresses).
 */
const char *relay_ssrf_check_url(apr_pool_t *p, server_rec *s, const char *url, int flags);
/** Whether the gateway may connect to @a sa (every address of its list
 *  when @a list) for the host @a host: NULL, or why not. */
const char *relay_ssrf_check_addr(apr_pool_t *p, server_rec *s, const char *host,
                                  const apr_sockaddr_t *sa, int list);
/** The request note that holds why relay_upstream_open() refused an
 *  upstream (HTTP_FORBIDDEN). */
#define RELAY_NOTE_SSRF "nebula-upstream-refused"

/* relay_upstream.c: one HTTP exchange with an upstream origin through
 * mod_proxy's pooled workers. */
typedef struct relay_upstream_t relay_upstream_t;

/** Create the per-child worker cache; called from child_init. */
apr_status_t relay_upstream_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * Connect to the origin of @a url (scheme://host[:port]/path...), through
 * the forward @a proxy (http://host:port; NULL for none), reusing a pooled
 * connection when one is idle. Returns OK or an HTTP status to refuse with:
 * HTTP_FORBIDDEN when the SSRF check refuses the URL, the proxy or the
 * address connected to (nothing sent; the reason in r->notes under
 * RELAY_NOTE_SSRF).
 */
int relay_upstream_open(request_rec *r, const char *url, const char *proxy,
                        apr_interval_time_t timeout, relay_upstream_t **pup);
/** Send one request; @a headers must not carry hop-by-hop fields; @a path
 *  NULL targets the URL relay_upstream_open() was given. */
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
/** Wait until the upstream has something to read: APR_SUCCESS, or
 *  APR_TIMEUP after @a timeout (the stream keep-alive uses it). */
apr_status_t relay_upstream_wait(relay_upstream_t *up, apr_interval_time_t timeout);
/** Give the connection back to the pool (or close it when @a broken). */
void relay_upstream_close(relay_upstream_t *up, int broken);

/** One request to send upstream. */
typedef struct {
    const char *url;            /**< scheme://host[:port]/path?query: the target */
    apr_interval_time_t timeout;
    const char *method;
    const char *proxy;          /**< forward proxy URL, or NULL */
    apr_interval_time_t first_byte; /**< for the response head; 0: @a timeout */
    apr_table_t *headers;       /**< end-to-end headers only */
    const char *body;
    apr_size_t len;
    /** the URL comes from httpd's configuration (NebulaPassThrough,
     *  NebulaStripeAPI), not from data an admin edits: no SSRF check */
    int trusted;
} relay_exchange_t;

/**
 * Open, send and read the response head as one step. A pooled connection
 * that the upstream closed while idle (no answer on a reused connection) is
 * retried once on a fresh one. On OK *@a pup holds the open exchange; on
 * failure it is closed: HTTP_GATEWAY_TIME_OUT for a timeout, otherwise
 * HTTP_BAD_GATEWAY or HTTP_SERVICE_UNAVAILABLE (nothing reached the upstream,
 * or no valid answer came back), HTTP_FORBIDDEN as relay_upstream_open().
 */
int relay_upstream_exchange(request_rec *r, const relay_exchange_t *x,
                            relay_upstream_t **pup, int *status, apr_table_t **headers);

/* ---- relay_route.c: which API a request speaks ------------------------ */
typedef enum {
    RELAY_ROUTE_NONE = 0,
    RELAY_ROUTE_CHAT,            /**< POST /v1/chat/completions */
    RELAY_ROUTE_COMPLETIONS,     /**< POST /v1/completions */
    RELAY_ROUTE_EMBEDDINGS,      /**< POST /v1/embeddings */
    RELAY_ROUTE_MODERATIONS,     /**< POST /v1/moderations */
    RELAY_ROUTE_MODELS,          /**< GET /v1/models */
    RELAY_ROUTE_MODEL,           /**< GET /v1/models/{id} */
    RELAY_ROUTE_BILLING_SUB,     /**< GET [/v1]/dashboard/billing/subscription */
    RELAY_ROUTE_BILLING_USAGE,   /**< GET [/v1]/dashboard/billing/usage */
    RELAY_ROUTE_MESSAGES,        /**< POST /v1/messages (Anthropic) */
    RELAY_ROUTE_MESSAGES_COUNT,  /**< POST /v1/messages/count_tokens */
    RELAY_ROUTE_GEMINI_GENERATE, /**< POST /v1beta/models/{m}:generateContent */
    RELAY_ROUTE_GEMINI_STREAM,   /**< POST ...:streamGenerateContent[?alt=sse] */
    RELAY_ROUTE_GEMINI_COUNT,    /**< POST ...:countTokens */
    RELAY_ROUTE_GEMINI_EMBED,    /**< POST ...:embedContent */
    RELAY_ROUTE_GEMINI_MODELS,   /**< GET /v1beta/models */
    RELAY_ROUTE_RESPONSES,       /**< POST /v1/responses */
    RELAY_ROUTE_RESPONSE,        /**< GET|DELETE /v1/responses/{id} */
    RELAY_ROUTE_REALTIME,        /**< GET /v1/realtime (WebSocket) */
    /* media routes (relay_media.c) */
    RELAY_ROUTE_RERANK,          /**< POST /v1/rerank */
    RELAY_ROUTE_IMAGES_GEN,      /**< POST /v1/images/generations */
    RELAY_ROUTE_IMAGES_EDIT,     /**< POST /v1/images/edits (multipart) */
    RELAY_ROUTE_IMAGES_VAR,      /**< POST /v1/images/variations (multipart) */
    RELAY_ROUTE_SPEECH,          /**< POST /v1/audio/speech */
    RELAY_ROUTE_TRANSCRIBE,      /**< POST /v1/audio/transcriptions (multipart) */
    RELAY_ROUTE_TRANSLATE        /**< POST /v1/audio/translations (multipart) */
} relay_route_e;

/** Where an answer's shape comes from: the client's API family. */
typedef enum {
    RELAY_API_OPENAI = 0,        /**< OpenAI (chat, completions, embeddings ...) */
    RELAY_API_ANTHROPIC,
    RELAY_API_GEMINI,
    RELAY_API_RESPONSES
} relay_api_e;

typedef struct {
    relay_route_e route;
    const char *method;          /**< the one method it answers (NULL: see route) */
    nebula_proto_e proto;
    const char *upstream_path;   /**< path on an OpenAI-compatible upstream */
    int streams;                 /**< may stream (stream:true) */
    const char *default_model;   /**< when the body names none (moderations) */
    relay_api_e api;             /**< the shape of its answers and errors */
} relay_route_t;

/**
 * The route for r->uri (matched on its end, so the relay can live under any
 * location prefix); NULL for an unknown path. *@a arg receives the {id} of
 * RELAY_ROUTE_MODEL.
 */
const relay_route_t *relay_route_match(request_rec *r, const char **arg);
/** The chat completions route (channel tests use it). */
const relay_route_t *relay_route_chat(void);
/** The route entry for @a which. */
const relay_route_t *relay_route_get(relay_route_e which);
/** The route's name in policies and the audit log: "chat", "messages" ...
 *  (docs/governance.md lists them). */
const char *relay_route_name(relay_route_e which);
/** The request note naming the client's API family for error bodies. */
#define RELAY_NOTE_API NEBULA_AP_NOTE_API

/* ---- relay_auth.c: client keys ---------------------------------------- */
typedef struct {
    apr_int64_t id;
    apr_int64_t user_id;
    const char *name;
    const char *username;
    const char *role;            /**< the owner's: user | admin | root */
    const char *group;           /**< the key's group, else the owner's */
    apr_int64_t expires_at;      /**< ms; 0 never */
    apr_int64_t remain_quota;
    int unlimited;
    apr_int64_t used_quota;
    apr_array_header_t *models;  /**< allowed models (const char *); NULL any */
    apr_array_header_t *ips;     /**< allowed apr_ipsubnet_t *; NULL any */
    apr_off_t max_body;          /**< 0: the location's NebulaMaxBodySize */
    apr_int64_t forced_channel;  /**< sk-KEY-CHANNELID (admins only); 0 none */
    /** read from the database, not the cache, for this request: its last
     *  use (accessed_at) is written; so once per NebulaCacheTTL a process */
    int touch;
} relay_key_t;

/** Create the per-process key cache; child_init. */
apr_status_t relay_auth_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * Authenticate the client: find its key (any of Authorization: Bearer,
 * x-api-key, x-goog-api-key, ?key=), check status, expiry, quota, owner and
 * IP. On failure an OpenAI-shaped error has been sent and the return value
 * is what the handler returns; on success OK and *@a key is set.
 */
int relay_auth_check(request_rec *r, relay_key_t **key);
/** Whether @a key may use @a model (its allow-list). */
int relay_auth_model_allowed(const relay_key_t *key, const char *model);

/* ---- relay_channel.c: channels, abilities, selection ------------------- */
/** One upstream key of a channel, decrypted when the snapshot was loaded. */
typedef struct {
    apr_int64_t id;
    int index;                  /**< position in the channel's key list */
    const char *secret;         /**< NULL when it could not be decrypted */
    int enabled;
    apr_int64_t cooldown_until; /**< ms */
} relay_chkey_t;

/** A channel as the relay uses it; read-only, owned by a snapshot. */
typedef struct {
    apr_int64_t id;
    const char *name;
    const char *kind;           /**< openai | azure | openai-compatible | anthropic | gemini */
    const char *base_url;       /**< without a trailing '/' */
    const char *status;         /**< enabled | disabled | auto_disabled */
    const char *key_mode;       /**< round_robin | random */
    const char *proxy;
    const char *test_model;
    apr_int64_t priority;
    int weight;
    int timeout_ms;             /**< 0: the location's NebulaUpstreamTimeout */
    int auto_disable;
    apr_hash_t *mapping;        /**< client model -> upstream model */
    apr_table_t *headers;       /**< header overrides */
    apr_array_header_t *models; /**< const char * */
    apr_array_header_t *keys;   /**< relay_chkey_t */
    volatile apr_uint32_t *rr;  /**< round-robin position */
} relay_channel_t;

typedef struct relay_snapshot_t relay_snapshot_t;

/** A channel able to serve a (group, model), with the ability's priority
 *  and weight. */
typedef struct {
    const relay_channel_t *ch;
    apr_int64_t priority;
    int weight;
} relay_cand_t;

apr_status_t relay_channel_child_init(apr_pool_t *pchild, server_rec *s);
/**
 * The current snapshot of channels and abilities, loaded again when the
 * generation changed or it is older than NebulaCacheTTL. The reference is
 * released with r->pool. NULL when the database cannot be read (logged).
 */
relay_snapshot_t *relay_channel_snapshot(request_rec *r);
const relay_channel_t *relay_channel_by_id(const relay_snapshot_t *snap, apr_int64_t id);
/**
 * Pick a channel for (@a group, @a model): the highest priority tier that
 * still has a candidate (attempt n starts n tiers down, new-api's rule),
 * weighted random inside it, never one whose id is in @a tried, and only
 * channels the health table lets through. NULL when none is left.
 */
const relay_channel_t *relay_channel_select(request_rec *r, const relay_snapshot_t *snap,
                                            const char *group, const char *model,
                                            int attempt, const apr_array_header_t *tried);
/* relay_select.c */
/** The selection rule of relay_channel_select() over @a all (relay_cand_t,
 *  sorted by priority, highest first). */
const relay_channel_t *relay_select_channel(request_rec *r, const apr_array_header_t *all,
                                            int attempt, const apr_array_header_t *tried);
/** The next usable upstream key of @a ch (round robin or random), skipping
 *  those in @a tried (relay_chkey_t ids); NULL when none is usable. */
const relay_chkey_t *relay_channel_key(request_rec *r, const relay_channel_t *ch,
                                       const apr_array_header_t *tried);
/** The channel called @a name in @a snap, or NULL (a policy's reroute). */
const relay_channel_t *relay_channel_by_name(request_rec *r, const relay_snapshot_t *snap,
                                             const char *name);
/** The upstream model for @a model on @a ch (chained mapping, cycle-safe). */
const char *relay_channel_map_model(request_rec *r, const relay_channel_t *ch,
                                    const char *model);
/** The models @a group may use (sorted, unique), const char * in r->pool. */
apr_array_header_t *relay_channel_models(request_rec *r, const relay_snapshot_t *snap,
                                         const char *group);

/* ---- one relayed request ----------------------------------------------- */
/** Everything the relay knows about the request it is serving; r->pool. */
typedef struct {
    request_rec *r;
    const relay_route_t *route;
    relay_key_t *key;
    nebula_req_t req;            /**< what governance and billing see */
    const char *group;           /**< routing group (key's, or rerouted) */
    json_t *body;                /**< the client's JSON body */
    json_t *chat;                /**< ... as a chat request (the pivot); == body
                                      for chat, NULL where no pivot exists */
    const char *arg;             /**< the route's {id} / {model} from the path */
    const char *client_model;    /**< the model the raw body names (before any
                                      governance downgrade) */
    const char *pivot_error;     /**< why the body has no chat form (Responses) */
    int sse;                     /**< Gemini stream: alt=sse (else a JSON array) */
    int native;                  /**< this attempt passes the client's body through */
    relay_api_e up_api;          /**< what this attempt's upstream speaks */
    const char *raw_body;        /**< ... as received (idempotency fingerprint) */
    apr_size_t raw_len;
    struct nebula_reservation_t *res; /**< billing's hold, NULL without billing */
    apr_int64_t cost;            /**< what billing charged (quota units) */
    int billed;                  /**< settle or release was called */
    int logged;                  /**< ... and billing wrote the request-log row */
    int client_usage;            /**< stream_options.include_usage asked */
    int prompt_counted;          /**< req.prompt_tokens_estimate is set */
    relay_snapshot_t *snap;
    const relay_channel_t *channel; /**< the channel of the last attempt */
    const relay_chkey_t *chkey;
    int attempts;
    nebula_usage_t usage;
    int status;                  /**< what the client got */
    const char *end_reason;      /**< complete, client_gone, upstream_error ... */
    const char *error;           /**< for the request log */
    apr_time_t start;
    apr_time_t first_byte;       /**< when the client got its first byte; 0 none */
    int headers_sent;
    struct apr_bucket_brigade *out;
    nebula_buf_t text;           /**< completion text delivered (for counting) */
    struct relay_media_t *media; /**< media routes: what relay_media.c learnt */
    /* governance's decision, carried out by the relay (relay_gov.c) */
    int redacted;                /**< the body was redacted: re-serialise it */
    nebula_text_rewrite_t *output_rw; /**< the output scan, NULL without one */
    int gov_stop;                /**< the output scan ended the answer */
    const char *gov_channel;     /**< reroute: the channel named by a policy */
} relay_ctx_t;

/* relay_handler.c */
/** Read the request body into r->pool; HTTP_REQUEST_ENTITY_TOO_LARGE over @a max. */
int relay_read_body(request_rec *r, apr_off_t max, char **body, apr_size_t *len);

/* relay_attempt.c */
/** Reserve, then try channels until one answers and relay its answer
 *  (relay_log_request() settles or releases the hold). */
int relay_attempts_run(relay_ctx_t *ctx);
/** Billing's reserve for ctx->req, with its refusals answered (429
 *  insufficient_quota, 400 model_price_error, 503 + Retry-After): OK, or an
 *  error was sent. Without billing: OK. */
int relay_attempt_reserve(relay_ctx_t *ctx);
/** How long an exchange with @a ch may take: its own timeout, else the
 *  location's NebulaUpstreamTimeout. */
apr_interval_time_t relay_attempt_timeout(relay_ctx_t *ctx, const relay_channel_t *ch);
/** GET or DELETE /v1/responses/{id}: asked of the group's OpenAI channels
 *  until one knows the id. */
int relay_attempts_stored(relay_ctx_t *ctx);
/** While streaming: make sure the hold covers what was delivered so far
 *  (billing's extend). 0 to go on; non-zero: the payer cannot cover more,
 *  end the stream. */
int relay_attempt_extend(relay_ctx_t *ctx);

/* relay_info.c */
/** Send @a j (owned by the call) as the application/json answer. */
int relay_send_json(request_rec *r, json_t *j);
/** The routes answered from the gateway's own data: models, billing. */
int relay_info_route(relay_ctx_t *ctx, const char *arg);

/* relay_gov.c */
/** The text policies read: every text string of @a body (any protocol), one
 *  per line; "" when there is none. */
const char *relay_prompt_text(apr_pool_t *p, const relay_route_t *route, json_t *body);
/** Rewrite the text strings of the body (and of its chat pivot) through
 *  @a rw; returns how many changed (then ctx->redacted is set). */
int relay_gov_redact(relay_ctx_t *ctx, nebula_text_rewrite_t *rw);
/** Pass the completion text of @a j (an answer or stream event in any
 *  protocol) through the output scan, in place: non-zero when something
 *  changed or the scan stopped the answer (then ctx->gov_stop is set). */
int relay_gov_output(relay_ctx_t *ctx, json_t *j);
/** A complete answer the output scan stopped: its text emptied and its
 *  finish reason set to the protocol's content filter. */
void relay_gov_withhold(relay_ctx_t *ctx, json_t *answer);

/* relay_dispatch.c */
/** Serve an API route: auth, body, govern, select, attempts, respond, log. */
int relay_dispatch(request_rec *r, const relay_route_t *route, const char *arg);
/** The governance hook on ctx->req: blocked (an error was sent), or the
 *  model downgraded / the group rerouted as the decision says; OK to go on. */
int relay_govern(relay_ctx_t *ctx);

/* relay_openai.c: the OpenAI protocol on both sides. */
/** The upstream URL, headers and body of one attempt on @a ch. */
typedef struct {
    const char *url;
    apr_table_t *headers;
    const char *body;
    apr_size_t len;
} relay_outbound_t;
/**
 * Read an upstream error body (bounded) and build what the client would get:
 * an OpenAI-shaped error JSON with secrets masked. Sets *@a definitive when
 * the error says the upstream key is invalid or out of quota.
 */
const char *relay_openai_error_body(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                                    int *definitive);
/** Add @a s (delivered completion text) to the context's counting buffer. */
void relay_ctx_text(relay_ctx_t *ctx, const char *s, apr_size_t len);
/** Fill ctx->usage from the gateway's own count (flagged as estimated). */
void relay_usage_estimate(relay_ctx_t *ctx);
/** The usage object of an OpenAI response into ctx->usage; 0 if absent. */
int relay_openai_usage(relay_ctx_t *ctx, json_t *usage);

/* relay_proto.c: the client's protocol, the channel's, and the request
 * that goes upstream */
/** Returned by relay_proto_outbound() when the channel does not speak what
 *  the request needs (no converter): the attempt moves on, no health hit. */
#define RELAY_CANNOT_SERVE (-2)
/** @a base + @a path ("/v1/..."), without doubling a base that already
 *  ends in /v1. */
const char *relay_v1_url(apr_pool_t *p, const char *base, const char *path);
/** The credential header of an OpenAI-kind channel (Azure: api-key). */
void relay_openai_auth(apr_pool_t *p, const relay_channel_t *ch, const relay_chkey_t *key,
                       apr_table_t *h);
/** What @a ch speaks upstream. */
relay_api_e relay_channel_api(const relay_channel_t *ch);
/** Model, stream, output limit, and the chat pivot (ctx->chat) of the
 *  client's body in its protocol. OK, or an error was sent. */
int relay_proto_params(relay_ctx_t *ctx);
/** count_tokens / countTokens, answered from the gateway's own count. */
int relay_proto_count(relay_ctx_t *ctx);
/** The upstream request of one attempt on @a ch (sets ctx->native and
 *  ctx->up_api); RELAY_CANNOT_SERVE when no conversion reaches it. */
int relay_proto_outbound(relay_ctx_t *ctx, const relay_channel_t *ch,
                         const relay_chkey_t *key, const char *model,
                         relay_outbound_t *out);

/* relay_xlate.c: answers in the client's protocol */
/** Relay a complete (non-streamed) 2xx answer, converted when the attempt
 *  was, with its usage read in the upstream's protocol. */
int relay_xlate_respond(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                        apr_table_t *headers);
/** Read a complete upstream answer (bounded) and give the connection back;
 *  HTTP_BAD_GATEWAY (noted in ctx) when it broke off. */
int relay_read_answer(relay_ctx_t *ctx, relay_upstream_t *up, apr_size_t max, char **buf,
                      apr_size_t *len);
/** Send a complete answer: settled first, so the client's next request sees
 *  the charge. */
int relay_send_complete(relay_ctx_t *ctx, int status, const char *ct, const char *buf,
                        apr_size_t len);
/** An error body in the client's protocol. */
const char *relay_xlate_error(relay_ctx_t *ctx, int status, const char *message,
                              const char *type, const char *code);
/** Read a whole upstream body (bounded) into r->pool. */
apr_status_t relay_read_all(relay_ctx_t *ctx, relay_upstream_t *up, apr_size_t max,
                            char **buf, apr_size_t *len);

/* relay_stream.c */
/** Relay a 2xx event stream event by event (see the file comment). */
int relay_stream_respond(relay_ctx_t *ctx, relay_upstream_t *up, apr_table_t *headers);

/* relay_tokens.c: the gateway's own token count */
/** Load the encodings from @a dir (NULL: estimate only); post_config. */
const char *relay_tokens_post_config(apr_pool_t *pconf, server_rec *s, const char *dir);
/** Tokens of @a text for @a model (BPE when known, else the estimate). */
apr_int64_t relay_tokens_text(const char *model, const char *text, apr_size_t len);
/** Tokens of the request's prompt (chat format overhead included). */
apr_int64_t relay_tokens_prompt(relay_ctx_t *ctx);
/** req.prompt_tokens_estimate, counted on first use: counting costs about
 *  0.1 ms for a 2 KB prompt, and a request that neither governance nor
 *  billing sees, whose upstream reports usage, never needs it. */
apr_int64_t relay_prompt_estimate(relay_ctx_t *ctx);

/* relay_logq.c: request-log rows written by a thread per process */
/** Start the writer (child_init). */
void relay_logq_child_init(apr_pool_t *pchild, server_rec *s);
/** Queue @a log (copied) for @a s's database: 1, or 0 when there is no
 *  writer (the caller writes the row itself). */
int relay_logq_put(server_rec *s, const nebula_reqlog_t *log);

/* relay_log.c */
/** One request-log row, env vars for mod_log_config; at the end of a request. */
void relay_log_request(relay_ctx_t *ctx);
/** Count the request in the host-wide metrics (relay_metrics.c). */
void relay_metrics_request(relay_ctx_t *ctx, apr_time_t now);
/** Settle (or release) the hold now, once: called before the last bytes of
 *  a complete answer are written, so that a client that reads its balance
 *  after the answer sees the charge (and its next request the freed hold). */
void relay_log_settle(relay_ctx_t *ctx);

/* relay_handler.c */
int relay_handler(request_rec *r);

/* relay_upstream.c: protocol upgrades */
/** Send a bodiless GET that asks to switch to @a protocol ("websocket");
 *  @a headers must not carry hop-by-hop fields (Connection, Upgrade ...). */
int relay_upstream_send_upgrade(relay_upstream_t *up, const char *protocol,
                                apr_table_t *headers);
/**
 * Read the answer's head without skipping 101 Switching Protocols. After a
 * 101 the connection is never pooled again: read and write it raw through
 * relay_upstream_conn(); any other status has a body for
 * relay_upstream_read_body().
 */
int relay_upstream_read_upgrade(relay_upstream_t *up, int *status, apr_table_t **headers);
/** The upstream connection (its filters: TLS included), NULL once closed. */
conn_rec *relay_upstream_conn(relay_upstream_t *up);
/** Its socket, to poll; NULL once closed. */
apr_socket_t *relay_upstream_socket(relay_upstream_t *up);

/* relay_realtime.c: the Realtime API, GET /v1/realtime over WebSocket */
/** Before authentication: a browser's key, sent as the subprotocol
 *  "openai-insecure-api-key.<key>", becomes the Authorization header when
 *  the request has none. */
void relay_realtime_credential(request_rec *r);
/** Serve an authenticated upgrade request: check, bill-check, connect the
 *  upstream, answer 101, relay frames and bill every response.done. */
int relay_realtime_serve(relay_ctx_t *ctx);

/* ---- relay_media.c: rerank, images, audio (OpenAI-kind channels) -------- */
/** Whether @a route is one of the media routes (rerank, images, audio). */
int relay_media_route(const relay_route_t *route);
/** Whether its body is multipart/form-data (edits, variations, transcripts). */
int relay_media_form_route(const relay_route_t *route);
/** Scan the multipart body in ctx->raw_body: its small fields (model, n,
 *  size, quality, prompt) become ctx->body, the file is only measured. OK,
 *  or a 400 was sent. */
int relay_media_form(relay_ctx_t *ctx);
/** After relay_proto_params(): calls (images: n), the estimate in the
 *  route's billing unit. OK for any other route; otherwise OK or an error
 *  was sent. */
int relay_media_params(relay_ctx_t *ctx);
/** Finish the upstream request of a media route built by to_openai(): the
 *  multipart body byte for byte (the model spliced when the channel's
 *  differs), the client's Content-Type, Accept for binary and text answers.
 *  Nothing for other routes. */
void relay_media_outbound(relay_ctx_t *ctx, const char *model, relay_outbound_t *out);
/** Relay a 2xx answer of a media route: speech audio chunk by chunk, the
 *  others complete; usage in the route's billing unit. */
int relay_media_respond(relay_ctx_t *ctx, relay_upstream_t *up, int status,
                        apr_table_t *headers);

#endif /* RELAY_PRIVATE_H */

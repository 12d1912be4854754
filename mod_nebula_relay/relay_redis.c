/* relay_redis.c: cross-host cache invalidation through Redis pub/sub
 * (NebulaRedis). Every change of keys, users, groups or channels made on one
 * host is published on the channel "nebula:invalidate"; one subscriber
 * thread per child on every host receives it and bumps the host's shared
 * generation, so all processes everywhere drop their caches at once instead
 * of after NebulaCacheTTL. Redis being down only delays invalidation to the
 * TTL: requests never wait for it. */
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <errno.h>
#include <sys/socket.h>
#include <hiredis/hiredis.h>
#include "relay_private.h"
#include "nebula_gov.h"

#define REDIS_CHANNEL "nebula:invalidate"

typedef struct {
    const char *host;
    int port;
    const char *password;
    int db;
    const char *url;       /* as configured, for nebula_relay_redis_url */
} redis_target_t;

static redis_target_t *target;     /* NULL: Redis not configured */
static volatile int stopping;
static apr_thread_t *subscriber;
static apr_thread_mutex_t *sub_lock; /* guards sub_ctx */
static redisContext *sub_ctx;        /* the subscriber's connection, for shutdown */
static server_rec *main_server;

/* nebula_gov.h: where rate limits count across hosts (registered once a
 * NebulaRedis is parsed) */
static const char *nebula_relay_redis_url(server_rec *s)
{
    const redis_target_t *t = relay_config_srv(s)->redis;

    return t ? t->url : NULL;
}

const char *relay_redis_parse(apr_pool_t *p, const char *url, void **out)
{
    redis_target_t *t = apr_pcalloc(p, sizeof(*t));
    apr_uri_t uri;

    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || uri.scheme == NULL
        || strcmp(uri.scheme, "redis") || uri.hostname == NULL) {
        return apr_psprintf(p, "NebulaRedis: '%s' is not a redis://[:password@]host[:port]"
                            "[/db] URL", url);
    }
    t->host = uri.hostname;
    t->port = uri.port ? uri.port : 6379;
    t->password = uri.password && *uri.password ? uri.password : NULL;
    t->db = uri.path && uri.path[0] == '/' && uri.path[1] ? atoi(uri.path + 1) : 0;
    t->url = apr_pstrdup(p, url);
    *out = t;
    APR_REGISTER_OPTIONAL_FN(nebula_relay_redis_url);
    return NULL;
}

static redisContext *redis_connect(int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(target->host, target->port, tv);
    redisReply *rep;

    if (c == NULL || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (target->password) {
        rep = redisCommand(c, "AUTH %s", target->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            if (rep) {
                freeReplyObject(rep);
            }
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

void relay_redis_publish(void)
{
    redisContext *c;
    redisReply *rep;

    if (target == NULL || (c = redis_connect(500)) == NULL) {
        return;
    }
    rep = redisCommand(c, "PUBLISH %s %u", REDIS_CHANNEL, relay_gen_current());
    if (rep) {
        freeReplyObject(rep);
    }
    redisFree(c);
}

/* Wait for messages (blocking, no timeout); returns when the connection
 * breaks, or when the child exits and subscriber_stop() shuts it down. */
static void subscribe_loop(redisContext *c)
{
    struct timeval forever = {0, 0};
    redisReply *rep = redisCommand(c, "SUBSCRIBE %s", REDIS_CHANNEL);

    if (rep == NULL) {
        return;
    }
    freeReplyObject(rep);
    redisSetTimeout(c, forever);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_server,
                 "NEB01090: subscribed to %s on %s:%d", REDIS_CHANNEL, target->host,
                 target->port);
    while (!stopping) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) {
            return;
        }
        rep = reply;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
            relay_gen_bump_local();
        }
        freeReplyObject(rep);
    }
}

static void sub_ctx_set(redisContext *c)
{
    apr_thread_mutex_lock(sub_lock);
    sub_ctx = c;
    apr_thread_mutex_unlock(sub_lock);
}

static void *APR_THREAD_FUNC subscriber_main(apr_thread_t *thd, void *data)
{
    int warned = 0;

    while (!stopping) {
        redisContext *c = redis_connect(1000);
        if (c == NULL) {
            if (!warned++) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server,
                             "NEB01091: cannot reach Redis at %s:%d: changes made on "
                             "other hosts arrive after NebulaCacheTTL", target->host,
                             target->port);
            }
            apr_sleep(apr_time_from_sec(1));
            continue;
        }
        warned = 0;
        /* (re)connected: what changed meanwhile is unknown, so drop the caches */
        relay_gen_bump_local();
        sub_ctx_set(c);
        if (!stopping) {
            subscribe_loop(c);
        }
        sub_ctx_set(NULL);
        redisFree(c);
    }
    return NULL;
}

static apr_status_t subscriber_stop(void *data)
{
    apr_status_t rv;

    stopping = 1;
    apr_thread_mutex_lock(sub_lock);
    if (sub_ctx) {
        shutdown(sub_ctx->fd, SHUT_RDWR); /* wakes the blocked read */
    }
    apr_thread_mutex_unlock(sub_lock);
    if (subscriber) {
        apr_thread_join(&rv, subscriber);
        subscriber = NULL;
    }
    return APR_SUCCESS;
}

void relay_redis_child_init(apr_pool_t *pchild, server_rec *s)
{
    void *t = relay_config_srv(s)->redis;
    apr_status_t rv;

    target = t;
    main_server = s;
    stopping = 0;
    if (target == NULL) {
        return;
    }
    apr_thread_mutex_create(&sub_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    rv = apr_thread_create(&subscriber, NULL, subscriber_main, NULL, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "NEB01092: cannot start the Redis subscriber thread");
        return;
    }
    /* before pchild destroys its subpools, the thread's among them */
    apr_pool_pre_cleanup_register(pchild, NULL, subscriber_stop);
}

/* gov_limit_redis.c: the limit counters shared by every host, in the Redis
 * the relay is configured with (NebulaRedis). One Lua script checks and adds
 * all the counters of a request atomically in one round trip (EVALSHA, EVAL
 * when the server does not know the script yet). Rates are GCRA timestamps
 * (string keys that expire once they run out), streams a sorted set of the
 * requests holding a slot, scored by when the slot lapses (a host that dies
 * mid-stream does not hold the slot for ever).
 *
 * Connections: a small pool per process (a mutex guards it), 50 ms to connect
 * and per command. When Redis fails, the request is counted on this host
 * instead and Redis is not asked again for a second; the first failure of an
 * outage is a warning (NEB03110), the first success after it a notice. */
#include <pthread.h>
#include "gov_private.h"
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_sha1.h>
#include <hiredis/hiredis.h>
#include "gov_limit.h"

#define POOL_MAX   8
#define TIMEOUT_MS 50
#define BACKOFF    apr_time_from_sec(1)

/* KEYS: the counters. ARGV: now (us), window (us), check (1/0), member, then
 * for each key: metric (r, t, s), interval (us), max, cost. Returns
 * {refused (1-based, 0: none), ahead of each key}. */
static const char script[] =
    "local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local check, member = ARGV[3] == '1', ARGV[4]\n"
    "local refused, cur = 0, {}\n"
    "for i = 1, #KEYS do\n"
    "  local b = 4 + (i - 1) * 4\n"
    "  local m, iv = ARGV[b + 1], tonumber(ARGV[b + 2])\n"
    "  local max, cost = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])\n"
    "  if m == 's' then\n"
    "    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)\n"
    "    cur[i] = redis.call('ZCARD', KEYS[i])\n"
    "    if check and refused == 0 and cost > 0 and cur[i] + cost > max then\n"
    "      refused = i\n"
    "    end\n"
    "  else\n"
    "    local t = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "    if t < now then t = now end\n"
    "    cur[i] = t\n"
    "    if check and refused == 0 and ((m == 't' and t - now >= win)\n"
    "        or (m == 'r' and t - now + iv * cost > win)) then\n"
    "      refused = i\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {refused}\n"
    "for i = 1, #KEYS do\n"
    "  local b = 4 + (i - 1) * 4\n"
    "  local m, iv, cost = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 4])\n"
    "  if m == 's' then\n"
    "    if refused == 0 and cost > 0 then\n"
    "      local lease = string.format('%.0f', now + 3600000000)\n"
    "      redis.call('ZADD', KEYS[i], lease, member)\n"
    "      redis.call('PEXPIRE', KEYS[i], 3600000)\n"
    "      cur[i] = cur[i] + 1\n"
    "    elseif refused == 0 and cost < 0 then\n"
    "      cur[i] = cur[i] - redis.call('ZREM', KEYS[i], member)\n"
    "    end\n"
    "    out[i + 1] = cur[i]\n"
    "  else\n"
    "    local t = cur[i]\n"
    "    if refused == 0 then\n"
    "      t = t + iv * cost\n"
    "      if t < now then t = now end\n"
    "      if t > now then\n"
    "        local ms = math.floor((t - now) / 1000) + 1000\n"
    "        redis.call('SET', KEYS[i], string.format('%.0f', t), 'PX', ms)\n"
    "      else\n"
    "        redis.call('DEL', KEYS[i])\n"
    "      end\n"
    "    end\n"
    "    out[i + 1] = t - now\n"
    "  end\n"
    "end\n"
    "return out\n";

static char script_sha[APR_SHA1_DIGESTSIZE * 2 + 1];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static redisContext *idle[POOL_MAX];
static int nidle;
static const char *idle_url;  /* the URL the idle connections go to */
static apr_time_t down_until; /* no Redis until then */
static int in_outage;         /* a failure was logged, no success since */

void gov_limit_redis_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_sha1_ctx_t ctx;
    unsigned char d[APR_SHA1_DIGESTSIZE];
    int i;

    apr_sha1_init(&ctx);
    apr_sha1_update(&ctx, script, (unsigned int)strlen(script));
    apr_sha1_final(d, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; ++i) {
        apr_snprintf(script_sha + 2 * i, 3, "%02x", d[i]);
    }
}

/* A reply that is not an error, or NULL with *why set (@a rep freed). */
static int reply_ok(redisContext *c, redisReply *rep, apr_pool_t *p, const char **why)
{
    if (rep == NULL) {
        *why = apr_pstrdup(p, c->errstr[0] ? c->errstr : "no reply");
        return 0;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *why = apr_pstrdup(p, rep->str);
        freeReplyObject(rep);
        return 0;
    }
    freeReplyObject(rep);
    return 1;
}

static redisContext *connect_to(apr_pool_t *p, const char *url, const char **why)
{
    struct timeval tv = {0, TIMEOUT_MS * 1000};
    apr_uri_t uri;
    redisContext *c;

    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || uri.hostname == NULL) {
        *why = "bad NebulaRedis URL";
        return NULL;
    }
    c = redisConnectWithTimeout(uri.hostname, uri.port ? uri.port : 6379, tv);
    if (c == NULL || c->err) {
        *why = c ? apr_pstrdup(p, c->errstr) : "out of memory";
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    if ((uri.password && *uri.password &&
         !reply_ok(c, redisCommand(c, "AUTH %s", uri.password), p, why)) ||
        (uri.path && uri.path[0] == '/' && uri.path[1] &&
         !reply_ok(c, redisCommand(c, "SELECT %d", atoi(uri.path + 1)), p, why))) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *take(apr_pool_t *p, const char *url, const char **why)
{
    redisContext *c = NULL;

    pthread_mutex_lock(&lock);
    if (nidle > 0 && idle_url && strcmp(idle_url, url) == 0) {
        c = idle[--nidle];
    }
    pthread_mutex_unlock(&lock);
    return c ? c : connect_to(p, url, why);
}

static void give_back(redisContext *c, const char *url)
{
    pthread_mutex_lock(&lock);
    if (idle_url == NULL || strcmp(idle_url, url) != 0) {
        while (nidle > 0) {
            redisFree(idle[--nidle]);
        }
        free((void *)idle_url);
        idle_url = strdup(url);
    }
    if (nidle < POOL_MAX && idle_url) {
        idle[nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (c) {
        redisFree(c);
    }
}

static redisReply *run(redisContext *c, apr_pool_t *p, const gov_counters_t *cs,
                       apr_time_t now, int check)
{
    int argc = 3 + cs->n + 4 + 4 * cs->n, i, k = 0;
    const char **argv = apr_palloc(p, sizeof(*argv) * argc);
    static const char mchar[] = {'r', 't', 's'};
    redisReply *rep;

    argv[k++] = "EVALSHA";
    argv[k++] = script_sha;
    argv[k++] = apr_itoa(p, cs->n);
    for (i = 0; i < cs->n; ++i) {
        argv[k++] = cs->c[i].key;
    }
    argv[k++] = apr_psprintf(p, "%" APR_TIME_T_FMT, now);
    argv[k++] = apr_psprintf(p, "%" APR_TIME_T_FMT, (apr_time_t)GOV_LIMIT_WINDOW);
    argv[k++] = check ? "1" : "0";
    argv[k++] = cs->member ? cs->member : "-";
    for (i = 0; i < cs->n; ++i) {
        const gov_counter_t *n = &cs->c[i];
        argv[k++] = apr_pstrndup(p, &mchar[n->metric], 1);
        argv[k++] = apr_psprintf(p, "%" APR_INT64_T_FMT, n->interval);
        argv[k++] = apr_psprintf(p, "%" APR_INT64_T_FMT, n->max);
        argv[k++] = apr_psprintf(p, "%" APR_INT64_T_FMT, n->cost);
    }
    rep = redisCommandArgv(c, argc, argv, NULL);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        argv[0] = "EVAL";
        argv[1] = script;
        rep = redisCommandArgv(c, argc, argv, NULL);
    }
    return rep;
}

/* @a url without its password, for the log */
static const char *safe_url(apr_pool_t *p, const char *url)
{
    apr_uri_t uri;

    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS) {
        return "(bad URL)";
    }
    return apr_uri_unparse(p, &uri, APR_URI_UNP_OMITPASSWORD);
}

static void outage(apr_pool_t *p, server_rec *s, const char *url, const char *why)
{
    int first;

    pthread_mutex_lock(&lock);
    first = !in_outage;
    in_outage = 1;
    down_until = apr_time_now() + BACKOFF;
    pthread_mutex_unlock(&lock);
    if (first) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB03110: Redis at %s failed (%s): rate limits are counted on each "
                     "host apart until it answers again",
                     safe_url(p, url), why);
    }
}

int gov_limit_redis_apply(apr_pool_t *p, server_rec *s, const char *url,
                          gov_counters_t *cs, apr_time_t now, int check)
{
    const char *why = NULL;
    redisContext *c;
    redisReply *rep;
    int refused, i, recovered;

    if (cs->n == 0) {
        return -1;
    }
    if (now < down_until) {
        return -3;
    }
    if ((c = take(p, url, &why)) == NULL) {
        outage(p, s, url, why ? why : "cannot connect");
        return -3;
    }
    rep = run(c, p, cs, now, check);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements != (size_t)cs->n + 1) {
        why = rep == NULL ? apr_pstrdup(p, c->errstr[0] ? c->errstr : "no reply")
              : rep->type == REDIS_REPLY_ERROR ? apr_pstrdup(p, rep->str)
                                               : "unexpected reply";
        if (rep) {
            freeReplyObject(rep);
        }
        redisFree(c);
        outage(p, s, url, why);
        return -3;
    }
    refused = (int)rep->element[0]->integer - 1;
    for (i = 0; i < cs->n; ++i) {
        cs->c[i].ahead = rep->element[i + 1]->integer;
    }
    freeReplyObject(rep);
    give_back(c, url);
    pthread_mutex_lock(&lock);
    recovered = in_outage;
    in_outage = 0;
    pthread_mutex_unlock(&lock);
    if (recovered) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "NEB03111: Redis at %s answers again: rate limits are shared again "
                     "by all hosts",
                     safe_url(p, url));
    }
    return refused;
}

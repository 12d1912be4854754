/* gov_limit.c: rate and concurrency limits on the relay's nebula_gov_check
 * hook (run last, after the policies) and nebula_gov_done hook.
 *
 * Limits come from the NebulaRateLimit directives of the server and from
 * the table gov_limits, read again whenever the relay's generation changes
 * (an admin change on any host) and at least every minute. Admission checks
 * and counts every counter of the request at once (gov_limit_redis.c across
 * hosts, else gov_limit_shm.c); done adds the tokens really used minus the
 * estimate admission counted and gives the stream slot back (a cleanup on
 * the request pool does that too if done never runs). docs/rate-limits.md. */
#include <pthread.h>
#include <apr_strings.h>
#include <apr_fnmatch.h>
#include <apr_optional.h>
#include <http_core.h>
#include <http_protocol.h>
#include "gov_private.h"
#include "gov_limit.h"
#include "nebula_ap.h"
#include "nebula_ap_db.h"
#include "nebula_gov.h"

#define CACHE_TTL apr_time_from_sec(60)
#define STATE_KEY "nebula-gov-limit"

static const char *const scope_names[] = {"key", "user", "group", "model", NULL};
static const char *const metric_names[] = {"requests per minute", "tokens per minute",
                                           "concurrent streams"};

/* ---- declared limits -------------------------------------------------- */

static apr_array_header_t *declared; /* every NebulaRateLimit, for the admin API */

static const char *parse_count(const char *arg, const char *name, apr_int64_t *out)
{
    char *end;
    apr_int64_t v;

    if (strncmp(arg, name, strlen(name)) || arg[strlen(name)] != '=') {
        return "no";
    }
    arg += strlen(name) + 1;
    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end || v < 0 || v > APR_INT64_C(1000000000000)) {
        return "bad";
    }
    *out = v;
    return NULL;
}

const char *gov_limit_parse_directive(apr_pool_t *p, int argc, char *const argv[],
                                      gov_limit_t **out)
{
    gov_limit_t *l = apr_pcalloc(p, sizeof(*l));
    int i;

    if (argc < 3) {
        return "NebulaRateLimit: give a scope (key, user, group or model), a value (an "
               "id, "
               "a group name, a model glob, or * for each one apart) and at least one of "
               "rpm=N tpm=N streams=N";
    }
    for (i = 0; scope_names[i] && strcmp(scope_names[i], argv[0]); ++i) {
    }
    if (scope_names[i] == NULL) {
        return apr_psprintf(p,
                            "NebulaRateLimit: '%s' is not a scope: use key, user, "
                            "group or model",
                            argv[0]);
    }
    l->scope = (gov_scope_e)i;
    l->value = argv[1];
    if (strcmp(l->value, "*") &&
        (l->scope == GOV_SCOPE_KEY || l->scope == GOV_SCOPE_USER) &&
        (l->value[0] < '1' || l->value[0] > '9' || strlen(l->value) > 18 ||
         strspn(l->value, "0123456789") != strlen(l->value))) {
        return apr_psprintf(p, "NebulaRateLimit: a %s limit names an id or *, not '%s'",
                            argv[0], l->value);
    }
    if (strlen(l->value) > 128) {
        return "NebulaRateLimit: the value is longer than 128 characters";
    }
    for (i = 2; i < argc; ++i) {
        const char *e1 = parse_count(argv[i], "rpm", &l->rpm);
        const char *e2 = e1 ? parse_count(argv[i], "tpm", &l->tpm) : NULL;
        const char *e3 = e1 && e2 ? parse_count(argv[i], "streams", &l->streams) : NULL;
        if (e1 && e2 && e3) {
            return apr_psprintf(p,
                                "NebulaRateLimit: '%s' is not rpm=N, tpm=N or "
                                "streams=N with N a whole number >= 0",
                                argv[i]);
        }
    }
    if (l->streams && l->scope != GOV_SCOPE_KEY) {
        return "NebulaRateLimit: streams=N applies to key limits only";
    }
    if (l->rpm == 0 && l->tpm == 0 && l->streams == 0) {
        return "NebulaRateLimit: give at least one of rpm=N tpm=N streams=N above 0";
    }
    l->from_config = 1;
    if (declared) {
        APR_ARRAY_PUSH(declared, gov_limit_t *) = l;
    }
    *out = l;
    return NULL;
}

/* nebula_gov.h: the declared limits as the admin API lists them */
static json_t *nebula_gov_limits_declared(apr_pool_t *p)
{
    json_t *a = json_array();
    int i;

    for (i = 0; declared && i < declared->nelts; ++i) {
        const gov_limit_t *l = APR_ARRAY_IDX(declared, i, gov_limit_t *);
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:s}", "scope_kind",
                         scope_names[l->scope], "scope_value", l->value, "rpm",
                         (json_int_t)l->rpm, "tpm", (json_int_t)l->tpm, "max_streams",
                         (json_int_t)l->streams, "enabled", 1, "source", "config"));
    }
    return a;
}

/* ---- limits of the database (a per-process cache) ----------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static apr_pool_t *cache_parent;  /* the child's pool */
static apr_pool_t *cache_pool;    /* holds cache */
static apr_array_header_t *cache; /* gov_limit_t */
static apr_uint32_t cache_gen;
static apr_time_t cache_time; /* 0: never read */

static int scope_of(const char *s)
{
    int i;

    for (i = 0; scope_names[i]; ++i) {
        if (strcmp(scope_names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

/* Read gov_limits into a new pool; NULL when it cannot be read. */
static apr_array_header_t *cache_load(request_rec *r, apr_pool_t *p)
{
    nebula_ap_db_t *db;
    nebula_dbd_rows_t rows;
    apr_array_header_t *a;
    const char *err = NULL;
    int i;

    if (nebula_ap_db_state(r->server) != NEBULA_AP_DB_READY ||
        (db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return apr_array_make(p, 1, sizeof(gov_limit_t));
    }
    if (nebula_ap_db_select(
            db, "gov_limits_load",
            "SELECT id, scope_kind, scope_value, rpm, tpm, max_streams, created_at "
            "FROM gov_limits WHERE enabled = 1 ORDER BY id",
            0, NULL, &rows, &err) != APR_SUCCESS) {
        nebula_ap_db_close(db);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB03120: cannot read the rate limits (gov_limits): %s; the last "
                      "ones read still apply",
                      err ? err : "?");
        return NULL;
    }
    nebula_ap_db_close(db);
    a = apr_array_make(p, rows.nrows + 1, sizeof(gov_limit_t));
    for (i = 0; i < rows.nrows; ++i) {
        int sc = scope_of(rows.rows[i][1] ? rows.rows[i][1] : "");
        gov_limit_t *l;
        if (sc < 0 || rows.rows[i][2] == NULL) {
            continue;
        }
        l = apr_array_push(a);
        l->id = nebula_ap_db_int(&rows, i, 0);
        l->scope = (gov_scope_e)sc;
        l->value = apr_pstrdup(p, rows.rows[i][2]);
        l->rpm = nebula_ap_db_int(&rows, i, 3);
        l->tpm = nebula_ap_db_int(&rows, i, 4);
        l->streams = l->scope == GOV_SCOPE_KEY ? nebula_ap_db_int(&rows, i, 5) : 0;
        l->created = nebula_ap_db_int(&rows, i, 6);
        l->from_config = 0;
    }
    return a;
}

/* The database's limits, current as of the relay's generation. */
static void cache_refresh(request_rec *r, apr_time_t now)
{
    APR_OPTIONAL_FN_TYPE(nebula_relay_generation) *gen_fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_relay_generation);
    apr_uint32_t gen = gen_fn ? gen_fn() : 0;
    apr_array_header_t *a;
    apr_pool_t *p, *old = NULL;

    pthread_mutex_lock(&cache_lock);
    if (cache_time && gen == cache_gen && now - cache_time < CACHE_TTL) {
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    /* subpools of the child's pool are made and destroyed under the lock */
    if (cache_parent == NULL || apr_pool_create(&p, cache_parent) != APR_SUCCESS) {
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
    a = cache_load(r, p); /* outside the lock: others go on with the old list */
    pthread_mutex_lock(&cache_lock);
    if (a) {
        old = cache_pool;
        cache_pool = p;
        cache = a;
        cache_gen = gen;
    }
    else {
        old = p;
    }
    cache_time = now;
    if (old) {
        apr_pool_destroy(old);
    }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- which counters a request touches ----------------------------------- */

typedef struct {
    gov_counters_t cs;
    server_rec *s;
    const char *url;    /* Redis, or NULL: counted in shared memory */
    apr_int64_t tokens; /* what admission counted */
    int held;           /* counters to give back or correct */
} limit_state_t;

static int applies(const gov_limit_t *l, const char *subject)
{
    if (subject == NULL) {
        return 0;
    }
    if (strcmp(l->value, "*") == 0) {
        return 1;
    }
    if (l->scope == GOV_SCOPE_MODEL) {
        return apr_fnmatch(l->value, subject, 0) == APR_SUCCESS;
    }
    return strcmp(l->value, subject) == 0;
}

static void add_counter(apr_pool_t *p, gov_counters_t *cs, const gov_limit_t *l,
                        const char *subject, gov_metric_e m, apr_int64_t max,
                        apr_int64_t cost)
{
    static const char mchar[] = {'r', 't', 's'};
    gov_counter_t *c;

    if (max <= 0 || cs->n >= GOV_LIMIT_MAX_COUNTERS) {
        return;
    }
    c = &cs->c[cs->n++];
    c->limit = l;
    c->metric = m;
    /* a row's counters are its own (a limit made again starts afresh, and
     * another database's row of the same id shares no counter with it); a
     * directive's are those of its scope and value on every host */
    c->key = l->from_config
                 ? apr_psprintf(p, "nebula:rl:%c:%s:%s:%s", mchar[m],
                                scope_names[l->scope], l->value, subject)
                 : apr_psprintf(
                       p, "nebula:rl:%c:%" APR_INT64_T_FMT ".%" APR_INT64_T_FMT ":%s:%s",
                       mchar[m], l->id, l->created, scope_names[l->scope], subject);
    c->subject = apr_pstrcat(p, scope_names[l->scope], " ", subject, NULL);
    c->max = max;
    c->interval = m == GOV_METRIC_STREAMS ? 0 : GOV_LIMIT_WINDOW / max;
    if (m != GOV_METRIC_STREAMS && c->interval < 1) {
        c->interval = 1;
    }
    c->cost = cost;
}

static void add_limit(apr_pool_t *p, gov_counters_t *cs, const gov_limit_t *l,
                      const char *const subjects[], const nebula_req_t *req,
                      apr_int64_t tokens)
{
    const char *subject = subjects[l->scope];

    if (!applies(l, subject)) {
        return;
    }
    add_counter(p, cs, l, subject, GOV_METRIC_REQUESTS, l->rpm, 1);
    add_counter(p, cs, l, subject, GOV_METRIC_TOKENS, l->tpm, tokens);
    if (l->scope == GOV_SCOPE_KEY && req->stream) {
        add_counter(p, cs, l, subject, GOV_METRIC_STREAMS, l->streams, 1);
    }
}

static void collect(request_rec *r, const nebula_req_t *req, const char *model,
                    apr_int64_t tokens, gov_counters_t *cs)
{
    const gov_srv_conf_t *sc = gov_config_srv(r->server);
    const char *subjects[4];
    int i;

    subjects[GOV_SCOPE_KEY] =
        req->key_id > 0 ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT, req->key_id) : NULL;
    subjects[GOV_SCOPE_USER] =
        req->user_id > 0 ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT, req->user_id)
                         : NULL;
    subjects[GOV_SCOPE_GROUP] = req->group && *req->group ? req->group : NULL;
    subjects[GOV_SCOPE_MODEL] = model && *model ? model : NULL;
    cs->c = apr_pcalloc(r->pool, sizeof(gov_counter_t) * GOV_LIMIT_MAX_COUNTERS);
    cs->n = 0;
    for (i = 0; sc->limits && i < sc->limits->nelts; ++i) {
        add_limit(r->pool, cs, APR_ARRAY_IDX(sc->limits, i, gov_limit_t *), subjects, req,
                  tokens);
    }
    pthread_mutex_lock(&cache_lock);
    for (i = 0; cache && i < cache->nelts; ++i) {
        const gov_limit_t *l = &APR_ARRAY_IDX(cache, i, gov_limit_t);
        if (applies(l, subjects[l->scope])) {
            gov_limit_t *copy = apr_pmemdup(r->pool, l, sizeof(*l));
            copy->value = apr_pstrdup(r->pool, l->value);
            add_limit(r->pool, cs, copy, subjects, req, tokens);
        }
    }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- counting ----------------------------------------------------------- */

static const char *redis_url(server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(nebula_relay_redis_url) *fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_relay_redis_url);

    return fn ? fn(s) : NULL;
}

/* Count through Redis when configured and up, else here; sets st->url to
 * the store used. */
static int apply(limit_state_t *st, apr_pool_t *p, apr_time_t now, int check)
{
    int rc = -3;

    if (st->url) {
        rc = gov_limit_redis_apply(p, st->s, st->url, &st->cs, now, check);
    }
    if (rc == -3) {
        if (!check && st->url) {
            return -1; /* the counters are in Redis: nothing to give back here */
        }
        st->url = NULL;
        rc = gov_limit_shm_apply(&st->cs, now, check);
    }
    return rc;
}

/* Give the stream slot back and correct the tokens; once. */
static void settle(limit_state_t *st, apr_pool_t *p, apr_int64_t used)
{
    int i, n = 0;

    if (!st->held) {
        return;
    }
    st->held = 0;
    for (i = 0; i < st->cs.n; ++i) {
        gov_counter_t *c = &st->cs.c[i];
        if (c->metric == GOV_METRIC_STREAMS) {
            c->cost = -1;
        }
        else if (c->metric == GOV_METRIC_TOKENS && used >= 0) {
            c->cost = used - st->tokens;
        }
        else {
            continue;
        }
        if (c->cost != 0) {
            st->cs.c[n++] = *c;
        }
    }
    st->cs.n = n;
    if (n > 0) {
        apply(st, p, apr_time_now(), 0);
    }
}

/* r->pool's cleanup: done did not run (an error path); give the slot back */
static apr_status_t state_cleanup(void *data)
{
    limit_state_t *st = data;
    apr_pool_t *p;

    if (st->held && apr_pool_create(&p, NULL) == APR_SUCCESS) {
        settle(st, p, -1);
        apr_pool_destroy(p);
    }
    return APR_SUCCESS;
}

/* ---- headers and messages ----------------------------------------------- */

/* A duration as OpenAI's x-ratelimit-reset-* give it: "20ms", "1s", "1.5s",
 * "6m0s", "1h2m3s" (Go's time.Duration format, to the millisecond). */
static const char *fmt_duration(apr_pool_t *p, apr_interval_time_t us)
{
    apr_int64_t ms = (us + 999) / 1000, s, frac;
    const char *secs;

    if (ms <= 0) {
        return "0s";
    }
    if (ms < 1000) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", ms);
    }
    s = ms / 1000;
    frac = ms % 1000;
    if (frac == 0) {
        secs = apr_psprintf(p, "%" APR_INT64_T_FMT "s", s % 60);
    }
    else {
        char *f =
            apr_psprintf(p, "%" APR_INT64_T_FMT ".%03" APR_INT64_T_FMT "s", s % 60, frac);
        char *z = f + strlen(f) - 2; /* the last digit */
        while (*z == '0') {
            memmove(z, z + 1, 2);
            --z;
        }
        secs = f;
    }
    if (s >= 3600) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "h%" APR_INT64_T_FMT "m%s", s / 3600,
                            (s / 60) % 60, secs);
    }
    if (s >= 60) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "m%s", s / 60, secs);
    }
    return secs;
}

static apr_int64_t used_of(const gov_counter_t *c)
{
    if (c->metric == GOV_METRIC_STREAMS) {
        return c->ahead;
    }
    return (c->ahead + c->interval - 1) / c->interval;
}

/* x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the tightest
 * counter of each metric. */
static void set_headers(request_rec *r, const gov_counters_t *cs)
{
    static const char *const names[] = {"requests", "tokens"};
    int m, i;

    for (m = GOV_METRIC_REQUESTS; m <= GOV_METRIC_TOKENS; ++m) {
        const gov_counter_t *best = NULL;
        apr_int64_t best_left = 0;
        for (i = 0; i < cs->n; ++i) {
            const gov_counter_t *c = &cs->c[i];
            apr_int64_t left;
            if ((int)c->metric != m) {
                continue;
            }
            left = c->max - used_of(c);
            if (best == NULL || left < best_left) {
                best = c, best_left = left;
            }
        }
        if (best == NULL) {
            continue;
        }
        apr_table_setn(r->err_headers_out,
                       apr_pstrcat(r->pool, "x-ratelimit-limit-", names[m], NULL),
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT, best->max));
        apr_table_setn(
            r->err_headers_out,
            apr_pstrcat(r->pool, "x-ratelimit-remaining-", names[m], NULL),
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, best_left > 0 ? best_left : 0));
        apr_table_setn(r->err_headers_out,
                       apr_pstrcat(r->pool, "x-ratelimit-reset-", names[m], NULL),
                       fmt_duration(r->pool, best->ahead));
    }
}

static void refuse(request_rec *r, const gov_counter_t *c, nebula_decision_t *d)
{
    apr_interval_time_t wait;
    apr_int64_t secs;

    if (c->metric == GOV_METRIC_REQUESTS) {
        wait = c->ahead + c->interval * c->cost - GOV_LIMIT_WINDOW;
    }
    else if (c->metric == GOV_METRIC_TOKENS) {
        wait = c->ahead - GOV_LIMIT_WINDOW + apr_time_from_msec(1);
    }
    else {
        wait = apr_time_from_sec(1); /* when a stream ends is unknown */
    }
    secs = (wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    if (secs < 1) {
        secs = 1;
    }
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, secs));
    d->action = NEBULA_DECIDE_BLOCK;
    d->http_status = HTTP_TOO_MANY_REQUESTS;
    /* OpenAI's 429: type "requests" or "tokens", code "rate_limit_exceeded" */
    d->error_type = c->metric == GOV_METRIC_TOKENS ? "tokens" : "requests";
    d->policy = apr_psprintf(r->pool, "rate-limit:%s %s", scope_names[c->limit->scope],
                             c->limit->value);
    d->message = apr_psprintf(r->pool,
                              "Rate limit reached for %s on %s: limit %" APR_INT64_T_FMT
                              ", used %" APR_INT64_T_FMT ". Try again in %s.",
                              metric_names[c->metric], c->subject, c->max, used_of(c),
                              fmt_duration(r->pool, apr_time_from_sec(secs)));
    apr_table_setn(r->notes, "nebula-rate-limited", d->policy);
}

/* ---- the hooks ---------------------------------------------------------- */

static int limit_check(request_rec *r, nebula_req_t *req, nebula_decision_t *d)
{
    const gov_srv_conf_t *sc = gov_config_srv(r->server);
    apr_time_t now = apr_time_now();
    limit_state_t *st;
    const char *model = req->model;
    int refused;

    if (d->action == NEBULA_DECIDE_BLOCK || sc->enabled == 0) {
        return DECLINED;
    }
    if (d->action == NEBULA_DECIDE_DOWNGRADE && d->model) {
        model = d->model;
    }
    cache_refresh(r, now);
    st = apr_pcalloc(r->pool, sizeof(*st));
    st->s = r->server;
    st->tokens = req->prompt_tokens_estimate > 0 ? req->prompt_tokens_estimate : 0;
    st->cs.member = req->request_id;
    collect(r, req, model, st->tokens, &st->cs);
    if (st->cs.n == 0) {
        return DECLINED;
    }
    st->url = redis_url(r->server);
    refused = apply(st, r->pool, now, 1);
    if (refused == -2) {
        return DECLINED; /* no shared table: NEB03100/NEB03102 said why */
    }
    set_headers(r, &st->cs);
    if (refused >= 0) {
        refuse(r, &st->cs.c[refused], d);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "NEB03130: %s", d->message);
        return OK;
    }
    st->held = 1;
    apr_pool_userdata_setn(st, STATE_KEY, NULL, r->pool);
    apr_pool_cleanup_register(r->pool, st, state_cleanup, apr_pool_cleanup_null);
    return DECLINED;
}

static int limit_done(request_rec *r, const nebula_reqlog_t *log)
{
    limit_state_t *st = NULL;
    apr_int64_t used = -1;

    apr_pool_userdata_get((void **)&st, STATE_KEY, r->pool);
    if (st == NULL || !st->held) {
        return DECLINED;
    }
    if (log->usage.prompt_tokens >= 0 || log->usage.completion_tokens >= 0) {
        used = (log->usage.prompt_tokens > 0 ? log->usage.prompt_tokens : 0) +
               (log->usage.completion_tokens > 0 ? log->usage.completion_tokens : 0);
    }
    settle(st, r->pool, used);
    return OK;
}

static int limit_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    declared = apr_array_make(pconf, 4, sizeof(gov_limit_t *));
    return gov_limit_shm_pre_config(pconf) == APR_SUCCESS ? OK
                                                          : HTTP_INTERNAL_SERVER_ERROR;
}

static int limit_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    return gov_limit_shm_post_config(pconf, s) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

static void limit_child_init(apr_pool_t *pchild, server_rec *s)
{
    cache_parent = pchild;
    gov_limit_shm_child_init(pchild, s);
    gov_limit_redis_child_init(pchild, s);
}

void gov_limit_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(limit_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(limit_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(limit_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, nebula_gov_check, limit_check, NULL, NULL, APR_HOOK_LAST);
    APR_OPTIONAL_HOOK(ap, nebula_gov_done, limit_done, NULL, NULL, APR_HOOK_MIDDLE);
    APR_REGISTER_OPTIONAL_FN(nebula_gov_limits_declared);
}

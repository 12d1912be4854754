/* gov_check.c: the nebula_gov_check hook. For each relay request it
 * evaluates the policies in force on the prompt text and what is known of
 * the request, audits every hit, and fills the relay's decision: the first
 * terminal policy's block, downgrade or reroute; redaction of the request's
 * text; and, when any policy reads completions, the output scan.
 *
 * The output scan sees the completion piece by piece (stream deltas, or the
 * whole text of a complete answer). Each piece is redacted on its own; the
 * stop test reads the piece after the last GOV_TAIL bytes already delivered,
 * so a phrase split across two deltas still stops the stream (its first part
 * has gone out by then). A response-stage hit is audited once per request. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_optional.h>
#include <http_core.h>
#include "gov_private.h"
#include "nebula_gov.h"
#include "nebula_json.h"

#define GOV_TAIL 256

typedef struct {
    request_rec *r;
    const nebula_req_t *req;
    const nebula_gov_set_t *set;
    nebula_gov_subject_t subj;
    nebula_text_rewrite_t rw_req;
    nebula_text_rewrite_t rw_out;
    char tail[GOV_TAIL];
    apr_size_t tail_len;
    apr_hash_t *audited;     /* response-stage policies audited already */
} gov_req_t;

static const char *country_of(request_rec *r)
{
    const gov_srv_conf_t *c = gov_config_srv(r->server);
    static const char *const defaults[] = {"GEOIP_COUNTRY_CODE", "MM_COUNTRY_CODE", NULL};
    const char *v = apr_table_get(r->notes, NEBULA_GOV_NOTE_COUNTRY); /* policy test */
    int i;

    if (v == NULL && c->country_header) {
        for (i = 0; c->country_proxies && i < c->country_proxies->nelts; ++i) {
            if (apr_ipsubnet_test(APR_ARRAY_IDX(c->country_proxies, i, apr_ipsubnet_t *),
                                  r->connection->client_addr)) {
                v = apr_table_get(r->headers_in, c->country_header);
                break;
            }
        }
    }
    if (v == NULL && c->country_env) {
        for (i = 0; v == NULL && i < c->country_env->nelts; ++i) {
            v = apr_table_get(r->subprocess_env, APR_ARRAY_IDX(c->country_env, i, char *));
        }
    }
    for (i = 0; v == NULL && c->country_env == NULL && defaults[i]; ++i) {
        v = apr_table_get(r->subprocess_env, defaults[i]);
    }
    if (v && *v) {
        char *u = apr_pstrdup(r->pool, v), *s;
        for (s = u; *s; ++s) {
            *s = (char)apr_toupper(*s);
        }
        return u;
    }
    return NULL;
}

void gov_check_subject(request_rec *r, const nebula_req_t *req, const char *text,
                       apr_size_t len, nebula_gov_subject_t *subj)
{
    memset(subj, 0, sizeof(*subj));
    subj->text = text;
    subj->text_len = len;
    subj->model = req->model;
    subj->route = req->route;
    subj->group = req->group;
    subj->user_id = req->user_id;
    subj->key_id = req->key_id;
    subj->client_ip = req->client_ip;
    subj->country = country_of(r);
    subj->now = apr_time_now();
    subj->body_bytes = req->body_bytes > 0 ? req->body_bytes : -1;
    subj->tokens = req->prompt_tokens_estimate >= 0 ? req->prompt_tokens_estimate : -1;
}

static const char *redact_request(nebula_text_rewrite_t *rw, apr_pool_t *p, const char *text,
                                  apr_size_t len, apr_size_t *out_len, int *stop)
{
    gov_req_t *g = rw->baton;

    return nebula_gov_redact(p, g->set, NEBULA_GOV_STAGE_REQUEST, &g->subj, text, len,
                             out_len);
}

/* Keep the last GOV_TAIL bytes of what was delivered (whole characters). */
static void keep_tail(gov_req_t *g, const char *text, apr_size_t len)
{
    char joined[GOV_TAIL * 2];
    apr_size_t n, skip;

    if (len >= GOV_TAIL) {
        skip = len - GOV_TAIL;
        while (skip < len && (text[skip] & 0xC0) == 0x80) {
            ++skip;
        }
        memcpy(g->tail, text + skip, len - skip);
        g->tail_len = len - skip;
        return;
    }
    memcpy(joined, g->tail, g->tail_len);
    memcpy(joined + g->tail_len, text, len);
    n = g->tail_len + len;
    skip = n > GOV_TAIL ? n - GOV_TAIL : 0;
    while (skip < n && (joined[skip] & 0xC0) == 0x80) {
        ++skip;
    }
    memcpy(g->tail, joined + skip, n - skip);
    g->tail_len = n - skip;
}

static const char *scan_output(nebula_text_rewrite_t *rw, apr_pool_t *p, const char *text,
                               apr_size_t len, apr_size_t *out_len, int *stop)
{
    gov_req_t *g = rw->baton;
    nebula_gov_subject_t subj = g->subj;
    nebula_gov_result_t res;
    const char *out;
    char *seen;
    int i;

    out = nebula_gov_redact(p, g->set, NEBULA_GOV_STAGE_RESPONSE, &g->subj, text, len,
                            out_len);
    seen = apr_palloc(p, g->tail_len + len + 1);
    memcpy(seen, g->tail, g->tail_len);
    memcpy(seen + g->tail_len, text, len);
    seen[g->tail_len + len] = '\0';
    subj.text = seen;
    subj.text_len = g->tail_len + len;
    nebula_gov_evaluate(p, g->set, NEBULA_GOV_STAGE_RESPONSE, &subj, &res);
    for (i = 0; i < res.hits->nelts; ++i) {
        const nebula_gov_hit_t *hit = &APR_ARRAY_IDX(res.hits, i, nebula_gov_hit_t);
        if (apr_hash_get(g->audited, hit->info->name, APR_HASH_KEY_STRING) == NULL) {
            apr_hash_set(g->audited, hit->info->name, APR_HASH_KEY_STRING, "");
            gov_audit_hit(g->r, g->req, "response", hit);
        }
    }
    if (res.decided && res.decided->info->action == NEBULA_GOV_ACT_BLOCK) {
        *stop = 1;
        rw->stop_message = apr_psprintf(g->r->pool, "stopped by policy %s",
                                        res.decided->info->name);
    }
    keep_tail(g, text, len);
    return out;
}

/* The set r->server evaluates; without a snapshot (no database yet) its
 * configured policies alone. */
static const nebula_gov_set_t *set_of(request_rec *r)
{
    gov_snapshot_t *sn = gov_store_snapshot(r);
    const char *err = NULL;

    if (sn) {
        return gov_store_set(r, sn);
    }
    return nebula_gov_set_make(r->pool, gov_store_config_policies(r->pool, r->server), &err);
}

static void decide(const nebula_gov_hit_t *hit, nebula_decision_t *d)
{
    const nebula_gov_policy_info_t *info = hit->info;

    d->policy = info->name;
    switch (info->action) {
    case NEBULA_GOV_ACT_BLOCK:
        d->action = NEBULA_DECIDE_BLOCK;
        d->http_status = info->status;
        d->message = info->message;
        break;
    case NEBULA_GOV_ACT_DOWNGRADE:
        d->action = NEBULA_DECIDE_DOWNGRADE;
        d->model = info->model;
        break;
    case NEBULA_GOV_ACT_REROUTE:
        d->action = NEBULA_DECIDE_REROUTE;
        d->group = info->group;
        d->channel = info->channel;
        break;
    default:
        break;
    }
}

static int gov_check(request_rec *r, nebula_req_t *req, nebula_decision_t *d)
{
    const gov_srv_conf_t *c = gov_config_srv(r->server);
    const nebula_gov_set_t *set;
    nebula_gov_result_t res;
    gov_req_t *g;
    int i;

    if (c->enabled == 0 || d->action == NEBULA_DECIDE_BLOCK) {
        return DECLINED;
    }
    if ((set = set_of(r)) == NULL || nebula_gov_set_count(set) == 0) {
        return DECLINED;
    }
    g = apr_pcalloc(r->pool, sizeof(*g));
    g->r = r;
    g->req = req;
    g->set = set;
    gov_check_subject(r, req, req->prompt_text ? req->prompt_text : "",
                      req->prompt_text ? strlen(req->prompt_text) : 0, &g->subj);
    nebula_gov_evaluate(r->pool, set, NEBULA_GOV_STAGE_REQUEST, &g->subj, &res);
    for (i = 0; i < res.hits->nelts; ++i) {
        gov_audit_hit(r, req, "request", &APR_ARRAY_IDX(res.hits, i, nebula_gov_hit_t));
    }
    if (res.decided) {
        decide(res.decided, d);
        if (d->action == NEBULA_DECIDE_BLOCK) {
            return OK;
        }
    }
    if (res.redact) {
        g->rw_req.fn = redact_request;
        g->rw_req.baton = g;
        d->redact = &g->rw_req;
        d->policy = d->policy ? d->policy : "redact";
    }
    if (nebula_gov_set_has_stage(set, NEBULA_GOV_STAGE_RESPONSE)) {
        /* the output scan reads completions, not the prompt */
        g->subj.text = NULL;
        g->subj.text_len = 0;
        g->audited = apr_hash_make(r->pool);
        g->rw_out.fn = scan_output;
        g->rw_out.baton = g;
        d->output = &g->rw_out;
    }
    return OK;
}

/* ---- nebula_gov_policy_test: the admin API's policy test ------------------- */
static const char *policy_name(const apr_array_header_t *a, int i)
{
    return nebula_gov_policy_info(APR_ARRAY_IDX(a, i, nebula_gov_policy_t *))->name;
}

/* Append @a pol to @a all, replacing a policy of the same name. */
static void put_policy(apr_array_header_t *all, nebula_gov_policy_t *pol)
{
    const char *name = nebula_gov_policy_info(pol)->name;
    int i;

    for (i = 0; i < all->nelts; ++i) {
        if (!strcmp(policy_name(all, i), name)) {
            APR_ARRAY_IDX(all, i, nebula_gov_policy_t *) = pol;
            return;
        }
    }
    APR_ARRAY_PUSH(all, nebula_gov_policy_t *) = pol;
}

static const char *nebula_gov_policy_test(request_rec *r, const nebula_req_t *req,
                                          const json_t *extra, json_t **trace)
{
    apr_array_header_t *all = gov_store_config_policies(r->pool, r->server);
    apr_array_header_t *stored = apr_array_make(r->pool, 8, sizeof(nebula_gov_policy_t *));
    const nebula_gov_set_t *set;
    nebula_gov_subject_t subj;
    nebula_gov_result_t res;
    const char *err = NULL;
    json_t *spec;
    size_t k;
    int i;

    gov_store_db_policies(r, r->pool, stored);
    for (i = 0; i < stored->nelts; ++i) {
        put_policy(all, APR_ARRAY_IDX(stored, i, nebula_gov_policy_t *));
    }
    json_array_foreach(extra, k, spec)
    {
        nebula_gov_policy_t *pol = nebula_gov_policy_compile(r->pool, spec, &err);
        if (pol == NULL) {
            return apr_psprintf(r->pool, "policies[%u]: %s", (unsigned)k, err);
        }
        put_policy(all, pol);
    }
    if ((set = nebula_gov_set_make(r->pool, all, &err)) == NULL) {
        return err;
    }
    gov_check_subject(r, req, req->prompt_text ? req->prompt_text : "",
                      req->prompt_text ? strlen(req->prompt_text) : 0, &subj);
    nebula_gov_evaluate(r->pool, set, NEBULA_GOV_STAGE_REQUEST, &subj, &res);
    *trace = nebula_gov_result_json(&res);
    json_object_set_new(*trace, "output_scan",
                        json_boolean(nebula_gov_set_has_stage(set, NEBULA_GOV_STAGE_RESPONSE)));
    json_object_set_new(*trace, "country", subj.country ? json_string(subj.country)
                                                        : json_null());
    return NULL;
}

/* ---- nebula_gov_config_policies: <NebulaPolicy> sections for the admin API.
 * Those of every server, each name once (a virtual host's own are marked with
 * "server": its name and port). */
static server_rec *main_server;

void gov_check_post_config(server_rec *s)
{
    main_server = s;
}

static json_t *nebula_gov_config_policies(server_rec *s)
{
    json_t *out = json_array(), *seen = json_object();
    server_rec *v;
    int i;

    for (v = main_server ? main_server : s; v; v = v->next) {
        const gov_srv_conf_t *c = gov_config_srv(v);
        for (i = 0; c->policies && i < c->policies->nelts; ++i) {
            json_t *spec = APR_ARRAY_IDX(c->policies, i, json_t *), *copy;
            const char *name = json_string_value(json_object_get(spec, "name"));
            if (name == NULL || json_object_get(seen, name)) {
                continue;
            }
            json_object_set_new(seen, name, json_true());
            copy = json_deep_copy(spec);
            if (v != main_server) {
                json_object_set_new(copy, "server",
                                    json_sprintf("%s:%u", v->server_hostname,
                                                 v->addrs ? v->addrs->host_port : 0));
            }
            json_array_append_new(out, copy);
        }
    }
    json_decref(seen);
    return out;
}

/* nebula_gov.h: the admin API's settings page */
static void nebula_gov_settings(server_rec *s, nebula_gov_settings_t *out)
{
    const gov_srv_conf_t *c = gov_config_srv(s);

    out->enabled = c->enabled != 0;
    out->audit_days = c->audit_days == GOV_UNSET ? GOV_DEFAULT_AUDIT_DAYS : c->audit_days;
}

void gov_check_register(void)
{
    APR_OPTIONAL_HOOK(ap, nebula_gov_check, gov_check, NULL, NULL, APR_HOOK_MIDDLE);
    APR_REGISTER_OPTIONAL_FN(nebula_gov_policy_test);
    APR_REGISTER_OPTIONAL_FN(nebula_gov_config_policies);
    APR_REGISTER_OPTIONAL_FN(nebula_gov_settings);
}

/* gov_audit.c: the governance audit log.
 *
 * Every policy hit and every refused limit is one row of gov_audit, written
 * at once on its own short connection borrow (autocommit); rows are never
 * updated, and deleted only by age (NebulaAuditRetention), by at most one
 * purge per child an hour. With NebulaGovAuditLog each row is also written
 * as one JSON line to a file (O_APPEND, one write per line) or to syslog,
 * for a SIEM. The excerpt never holds the matched text: the engine masks it. */
#include <apr_strings.h>
#include <apr_atomic.h>
#include <syslog.h>
#include "gov_private.h"
#include "nebula_ap_db.h"
#include "nebula_json.h"

#define PURGE_EVERY apr_time_from_sec(3600)
#define PURGE_BATCH 5000 /* rows a purge deletes at most */
#define EXCERPT_MAX 500

static volatile apr_uint32_t last_purge_sec; /* this child's last purge */

apr_status_t gov_audit_post_config(apr_pool_t *pconf, server_rec *s)
{
    server_rec *v;
    apr_status_t rv;

    for (v = s; v; v = v->next) {
        gov_srv_conf_t *c = ap_get_module_config(v->module_config, &nebula_gov_module);
        if (c->audit_sink == NULL || !strcmp(c->audit_sink, "syslog")) {
            continue;
        }
        if (v != s && c->audit_sink == gov_config_srv(s)->audit_sink) {
            c->audit_file = gov_config_srv(s)->audit_file; /* inherited: one file */
            continue;
        }
        rv = apr_file_open(&c->audit_file, c->audit_sink,
                           APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_APPEND
                               | APR_FOPEN_XTHREAD,
                           APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, pconf);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "NEB03020: cannot open the audit log %s", c->audit_sink);
            return rv;
        }
    }
    return APR_SUCCESS;
}

static const char *i64(apr_pool_t *p, apr_int64_t v)
{
    return v ? apr_psprintf(p, "%" APR_INT64_T_FMT, v) : NULL;
}

/* Cut @a s to at most @a max bytes on a character boundary. */
static const char *cut(apr_pool_t *p, const char *s, apr_size_t max)
{
    apr_size_t n;

    if (s == NULL || strlen(s) <= max) {
        return s;
    }
    n = max;
    while (n > 0 && (s[n] & 0xC0) == 0x80) {
        --n;
    }
    return apr_pstrndup(p, s, n);
}

static void purge(request_rec *r, nebula_ap_db_t *db)
{
    const gov_srv_conf_t *c = gov_config_srv(r->server);
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&last_purge_sec);
    int days = c->audit_days == GOV_UNSET ? GOV_DEFAULT_AUDIT_DAYS : c->audit_days;
    const char *args[1], *err = NULL;
    int n = 0;

    if (now - last < apr_time_sec(PURGE_EVERY)
        || apr_atomic_cas32(&last_purge_sec, now, last) != last) {
        return;
    }
    args[0] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                           apr_time_as_msec(apr_time_now()) - (apr_int64_t)days * 86400000);
    /* a bounded batch, oldest first (the derived table is what MySQL takes
     * in place of LIMIT in a subquery); a full batch lets the next audit
     * write purge again at once, so a backlog drains in steps that never
     * hold a request up long */
    if (nebula_ap_db_exec(db, "gov_audit_purge",
                          "DELETE FROM gov_audit WHERE id IN (SELECT id FROM (SELECT id FROM "
                          "gov_audit WHERE created_at < %lld ORDER BY id LIMIT "
                          APR_STRINGIFY(PURGE_BATCH) ") AS old)",
                          1, args, &n, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB03021: cannot purge old audit rows: %s", err);
    }
    else if (n > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "NEB03022: purged %d audit rows older than %d days", n, days);
        if (n >= PURGE_BATCH) {
            apr_atomic_set32(&last_purge_sec, 0);
        }
    }
}

static void sink(request_rec *r, const char *const *f, int shadow, apr_time_t now)
{
    const gov_srv_conf_t *c = gov_config_srv(r->server);
    static const char *const names[] = {"request_id", "key_id", "user_id", "client_ip",
                                        "model", "route", "stage", "policy", "matcher",
                                        "action", NULL, "excerpt"};
    json_t *j;
    char *line;
    apr_size_t len;
    int i;

    if (c->audit_sink == NULL) {
        return;
    }
    j = json_pack("{s:I, s:b}", "time", (json_int_t)apr_time_as_msec(now), "shadow", shadow);
    for (i = 0; i < 12; ++i) {
        if (names[i] && f[i + 1]) {
            json_object_set_new(j, names[i], json_string(f[i + 1]));
        }
    }
    line = apr_pstrcat(r->pool, nebula_json_dumps(r->pool, nebula_json_own(r->pool, j), 0),
                       "\n", NULL);
    len = strlen(line);
    if (c->audit_file) {
        apr_file_write_full(c->audit_file, line, len, NULL);
    }
    else {
        syslog(LOG_AUTHPRIV | LOG_NOTICE, "nebula-audit: %.*s", (int)len - 1, line);
    }
}

void gov_audit_row(request_rec *r, const nebula_req_t *req, const char *stage,
                   const char *policy, const char *matcher, const char *action, int shadow,
                   const char *excerpt)
{
    apr_pool_t *p = r->pool;
    apr_time_t now = apr_time_now();
    nebula_ap_db_t *db;
    const char *f[14], *err = NULL;

    f[0] = apr_psprintf(p, "%" APR_INT64_T_FMT, apr_time_as_msec(now));
    f[1] = req->request_id;
    f[2] = i64(p, req->key_id);
    f[3] = i64(p, req->user_id);
    f[4] = req->client_ip;
    f[5] = cut(p, req->model, 128);
    f[6] = req->route;
    f[7] = stage;
    f[8] = cut(p, policy, 64);
    f[9] = cut(p, matcher, 64);
    f[10] = action;
    f[11] = shadow ? "1" : "0";
    f[12] = cut(p, excerpt, EXCERPT_MAX);
    f[13] = NULL;
    sink(r, f, shadow, now);
    if ((db = nebula_ap_db_open(p, r->server)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB03023: no database: audit row of policy %s for request %s lost",
                      policy, req->request_id);
        return;
    }
    if (nebula_ap_db_exec(db, "gov_audit_insert",
                          "INSERT INTO gov_audit (created_at, request_id, key_id, user_id, "
                          "client_ip, model, route, stage, policy, matcher, action, shadow, "
                          "excerpt) VALUES (%lld, %s, %lld, %lld, %s, %s, %s, %s, %s, %s, %s, "
                          "%lld, %s)",
                          13, f, NULL, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "NEB03024: cannot write the audit row of policy %s for request %s: %s",
                      policy, req->request_id, err);
    }
    purge(r, db);
    nebula_ap_db_close(db);
}

void gov_audit_hit(request_rec *r, const nebula_req_t *req, const char *stage,
                   const nebula_gov_hit_t *hit)
{
    gov_audit_row(r, req, stage, hit->info->name, hit->matcher,
                  nebula_gov_action_name(hit->info->action), hit->shadow, hit->excerpt);
}

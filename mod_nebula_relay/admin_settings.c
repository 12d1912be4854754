/* admin_settings.c: GET /api/settings, the effective configuration the
 * admin UI shows on its settings page, read-only: every setting lives in
 * the httpd configuration. Which modules are loaded is told by their
 * optional functions; mod_nebula_billing and mod_nebula_gov describe their
 * own settings through nebula_billing_settings and nebula_gov_settings.
 * Never a secret: secrets are only said to be set or not. */
#include <apr_strings.h>
#include <http_main.h>
#include <http_protocol.h>
#include "admin_payments.h"
#include "admin_self.h"
#include "nebula_gov.h"

#define RELAY_QUOTA_PER_USD APR_INT64_C(500000) /* new-api's, without billing */

static const char *server_name(apr_pool_t *p, const server_rec *s)
{
    return apr_psprintf(p, "%s:%u", s->server_hostname ? s->server_hostname : "",
                        s->addrs ? (unsigned)s->addrs->host_port : 0u);
}

static json_t *billing_json(admin_req_t *a, apr_int64_t *quota_per_usd)
{
    APR_OPTIONAL_FN_TYPE(nebula_billing_settings) *fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_billing_settings);
    json_t *o = json_object(), *on;
    nebula_billing_settings_t st;
    server_rec *s;

    json_object_set_new(o, "loaded", json_boolean(fn != NULL));
    if (fn == NULL) {
        json_object_set_new(o, "enabled", json_false());
        return o;
    }
    fn(a->r->server, &st);
    *quota_per_usd = st.quota_per_usd;
    json_object_set_new(o, "enabled", json_boolean(st.enabled));
    json_object_set_new(o, "unpriced", json_string(st.unpriced_free ? "free" : "refuse"));
    on = json_array();
    for (s = ap_server_conf; s; s = s->next) {
        nebula_billing_settings_t v;
        fn(s, &v);
        if (v.enabled) {
            json_array_append_new(on, json_string(server_name(a->r->pool, s)));
        }
    }
    json_object_set_new(o, "enabled_on", on);
    return o;
}

static json_t *gov_json(admin_req_t *a)
{
    APR_OPTIONAL_FN_TYPE(nebula_gov_settings) *fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_gov_settings);
    json_t *o = json_object();
    nebula_gov_settings_t st;

    json_object_set_new(o, "loaded", json_boolean(fn != NULL));
    if (fn == NULL) {
        json_object_set_new(o, "enabled", json_false());
        json_object_set_new(o, "audit_retention_days", json_null());
        return o;
    }
    fn(a->r->server, &st);
    json_object_set_new(o, "enabled", json_boolean(st.enabled));
    json_object_set_new(o, "audit_retention_days", json_integer(st.audit_days));
    return o;
}

static json_t *payments_json(admin_req_t *a)
{
    const relay_pay_conf_t *pc = &a->sc->pay;
    json_t *o = json_object(), *pr = json_object();
    apr_pool_t *p = a->r->pool;

    json_object_set_new(o, "currency", json_string(pc->currency));
    json_object_set_new(o, "rate", json_integer(pc->rate));
    json_object_set_new(o, "min_amount", json_string(pay_money_text(p, pc->min_minor)));
    json_object_set_new(o, "max_amount", json_string(pay_money_text(p, pc->max_minor)));
    /* the same conditions the providers' routes check */
    json_object_set_new(pr, "stripe",
                        json_boolean(pc->stripe_key && pc->stripe_whsec &&
                                     pc->stripe_success && pc->stripe_cancel));
    json_object_set_new(
        pr, "epay",
        json_boolean(pc->epay_url && pc->epay_pid && pc->epay_key && pc->epay_notify));
    json_object_set_new(o, "providers", pr);
    return o;
}

static const char *db_driver(admin_req_t *a)
{
    nebula_ap_db_state_e st = nebula_ap_db_state(a->r->server);

    if (st == NEBULA_AP_DB_READY && a->db == NULL) {
        a->db = nebula_ap_db_open(a->r->pool, a->r->server);
    }
    if (a->db == NULL) {
        return st == NEBULA_AP_DB_NONE ? "none" : "unavailable";
    }
    switch (nebula_ap_db_dialect(a->db)) {
    case NEBULA_DBD_SQLITE:
        return "sqlite3";
    case NEBULA_DBD_PGSQL:
        return "pgsql";
    case NEBULA_DBD_MYSQL:
        return "mysql";
    default:
        return "unknown";
    }
}

static json_t *relay_json(admin_req_t *a)
{
    const relay_srv_conf_t *sc = a->sc;
    json_t *o = json_object();

    json_object_set_new(o, "retries", json_integer(sc->retries));
    json_object_set_new(o, "cache_ttl_s", json_integer(apr_time_sec(sc->cache_ttl)));
    json_object_set_new(o, "adaptive_routing", json_boolean(sc->adaptive));
    json_object_set_new(o, "retest_interval_s", json_integer(apr_time_sec(sc->retest)));
    json_object_set_new(o, "crypto_secret_set", json_boolean(sc->crypto_secret != NULL));
    json_object_set_new(o, "redis", json_boolean(sc->redis != NULL));
    return o;
}

int admin_settings_get(admin_req_t *a)
{
    static const char *const none[] = {NULL};
    apr_int64_t quota_per_usd = RELAY_QUOTA_PER_USD;
    json_t *out, *mods, *billing, *gov, *sess;

    admin_query_only(a, none);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    billing = billing_json(a, &quota_per_usd);
    gov = gov_json(a);
    mods = json_object();
    json_object_set_new(mods, "relay", json_true());
    json_object_set(mods, "billing", json_object_get(billing, "loaded"));
    json_object_set(mods, "gov", json_object_get(gov, "loaded"));
    sess = json_object();
    json_object_set_new(sess, "enabled", json_boolean(a->sc->session_secret != NULL));
    json_object_set_new(sess, "ttl_s", json_integer(apr_time_sec(a->sc->session_ttl)));
    json_object_set_new(sess, "idle_s",
                        json_integer(apr_time_sec(relay_config_admin(a->sc)->session_idle)));
    json_object_set_new(sess, "admin_token_set",
                        json_boolean(a->sc->admin_token != NULL));

    out = json_object();
    json_object_set_new(out, "version", json_string(NEBULA_VERSION));
    json_object_set_new(out, "modules", mods);
    json_object_set_new(out, "database", json_pack("{s:s}", "driver", db_driver(a)));
    json_object_set_new(out, "quota_per_usd", json_integer(quota_per_usd));
    json_object_set_new(out, "billing", billing);
    json_object_set_new(out, "sessions", sess);
    json_object_set_new(out, "governance", gov);
    json_object_set_new(out, "rate_limits",
                        json_pack("{s:s}", "backend", a->sc->redis ? "redis" : "shm"));
    json_object_set_new(out, "payments", payments_json(a));
    json_object_set_new(out, "relay", relay_json(a));
    json_object_set_new(
        out, "config_note",
        json_string("Settings live in the httpd configuration (the Nebula* "
                    "directives of conf/nebula.conf and its virtual hosts): "
                    "change them there and reload httpd (apachectl "
                    "graceful). This page only shows them."));
    return admin_send_data(a, HTTP_OK, out);
}

/* Read by every manager role (operators too, once GETs are open to them). */
const admin_route_t admin_settings_routes[] = {
    {"GET", "/api/settings", admin_settings_get, 0}, {NULL, NULL, NULL, 0}};

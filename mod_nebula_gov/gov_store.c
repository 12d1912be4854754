/* gov_store.c: the policies in force, one read-only snapshot per child.
 *
 * A snapshot holds the stored policies (gov_policies), compiled once, and
 * for each server the set it evaluates: that server's <NebulaPolicy>
 * sections plus the stored ones. It is replaced when the relay's generation
 * moves (the admin API changed something: at once on this host, through
 * Redis on others) or after GOV_STORE_TTL; requests hold counted references,
 * so a replaced snapshot goes when its last request ends. When the database
 * cannot be read the previous snapshot stays in force. */
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_optional.h>
#include <apr_thread_mutex.h>
#include "gov_private.h"
#include "nebula_gov.h"
#include "nebula_ap_db.h"
#include "nebula_json.h"

#define GOV_STORE_TTL apr_time_from_sec(30)

struct gov_snapshot_t {
    apr_pool_t *pool;
    apr_uint32_t gen;
    apr_time_t loaded;
    apr_uint32_t refs;              /* under snap_lock */
    apr_array_header_t *stored;     /* nebula_gov_policy_t *, compiled in pool */
    apr_hash_t *sets;               /* server_rec * -> nebula_gov_set_t, under snap_lock */
};

static apr_pool_t *snap_parent;
static gov_snapshot_t *current;
static apr_thread_mutex_t *snap_lock; /* current, refs, sets, pool create/destroy */
static apr_thread_mutex_t *load_lock; /* one loader at a time */
static APR_OPTIONAL_FN_TYPE(nebula_relay_generation) *generation;

apr_status_t gov_store_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    snap_parent = pchild;
    generation = APR_RETRIEVE_OPTIONAL_FN(nebula_relay_generation);
    if ((rv = apr_thread_mutex_create(&snap_lock, APR_THREAD_MUTEX_DEFAULT, pchild))) {
        return rv;
    }
    return apr_thread_mutex_create(&load_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
}

apr_array_header_t *gov_store_config_policies(apr_pool_t *p, server_rec *s)
{
    const gov_srv_conf_t *c = gov_config_srv(s);
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(nebula_gov_policy_t *));
    const char *err = NULL;
    int i;

    for (i = 0; c->policies && i < c->policies->nelts; ++i) {
        nebula_gov_policy_t *pol =
            nebula_gov_policy_compile(p, APR_ARRAY_IDX(c->policies, i, json_t *), &err);
        if (pol) { /* it compiled when the configuration was read */
            APR_ARRAY_PUSH(out, nebula_gov_policy_t *) = pol;
        }
    }
    return out;
}

apr_status_t gov_store_db_policies(request_rec *r, apr_pool_t *p, apr_array_header_t *out)
{
    nebula_ap_db_t *db = nebula_ap_db_open(r->pool, r->server);
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int i;

    if (db == NULL) {
        return APR_EGENERAL;
    }
    if (nebula_ap_db_select(db, "gov_policies_load",
                            "SELECT id, name, spec FROM gov_policies WHERE enabled = 1", 0,
                            NULL, &rows, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB03010: cannot read the governance policies: %s", err);
        nebula_ap_db_close(db);
        return APR_EGENERAL;
    }
    nebula_ap_db_close(db);
    for (i = 0; i < rows.nrows; ++i) {
        const char *text = rows.rows[i][2];
        json_t *spec = text ? nebula_json_parse(p, text, strlen(text), 0, &err) : NULL;
        nebula_gov_policy_t *pol = spec ? nebula_gov_policy_compile(p, spec, &err) : NULL;
        if (pol == NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "NEB03011: skipping stored policy %s (%s): %s", rows.rows[i][0],
                          rows.rows[i][1] ? rows.rows[i][1] : "?", err ? err : "no spec");
            continue;
        }
        APR_ARRAY_PUSH(out, nebula_gov_policy_t *) = pol;
    }
    return APR_SUCCESS;
}

static gov_snapshot_t *snapshot_load(request_rec *r, apr_uint32_t gen)
{
    gov_snapshot_t *sn;
    apr_pool_t *p;

    apr_thread_mutex_lock(snap_lock);
    apr_pool_create(&p, snap_parent);
    apr_thread_mutex_unlock(snap_lock);
    apr_pool_tag(p, "nebula_gov_snapshot");
    sn = apr_pcalloc(p, sizeof(*sn));
    sn->pool = p;
    sn->gen = gen;
    sn->loaded = apr_time_now();
    sn->stored = apr_array_make(p, 8, sizeof(nebula_gov_policy_t *));
    sn->sets = apr_hash_make(p);
    if (gov_store_db_policies(r, p, sn->stored) != APR_SUCCESS) {
        apr_thread_mutex_lock(snap_lock);
        apr_pool_destroy(p);
        apr_thread_mutex_unlock(snap_lock);
        return NULL;
    }
    return sn;
}

static apr_status_t snapshot_release(void *data)
{
    gov_snapshot_t *sn = data;

    apr_thread_mutex_lock(snap_lock);
    if (--sn->refs == 0) {
        apr_pool_destroy(sn->pool);
    }
    apr_thread_mutex_unlock(snap_lock);
    return APR_SUCCESS;
}

static gov_snapshot_t *ref_fresh(request_rec *r, apr_uint32_t gen, int any)
{
    gov_snapshot_t *sn = NULL;

    apr_thread_mutex_lock(snap_lock);
    if (current
        && (any || (current->gen == gen && apr_time_now() - current->loaded < GOV_STORE_TTL))) {
        sn = current;
        sn->refs++;
    }
    apr_thread_mutex_unlock(snap_lock);
    if (sn) {
        apr_pool_cleanup_register(r->pool, sn, snapshot_release, apr_pool_cleanup_null);
    }
    return sn;
}

/* The set of @a s in @a sn, made on first use: the server's sections, then
 * the stored policies (a stored one named like a section is left out). */
static const nebula_gov_set_t *set_for(request_rec *r, gov_snapshot_t *sn)
{
    const nebula_gov_set_t *set;
    apr_array_header_t *all;
    const char *err = NULL;
    int i, j;

    apr_thread_mutex_lock(snap_lock);
    if ((set = apr_hash_get(sn->sets, &r->server, sizeof(r->server))) == NULL) {
        all = gov_store_config_policies(sn->pool, r->server);
        for (i = 0; i < sn->stored->nelts; ++i) {
            nebula_gov_policy_t *pol = APR_ARRAY_IDX(sn->stored, i, nebula_gov_policy_t *);
            const char *name = nebula_gov_policy_info(pol)->name;
            for (j = 0; j < all->nelts; ++j) {
                if (!strcmp(name, nebula_gov_policy_info(
                                      APR_ARRAY_IDX(all, j, nebula_gov_policy_t *))->name)) {
                    break;
                }
            }
            if (j == all->nelts) {
                APR_ARRAY_PUSH(all, nebula_gov_policy_t *) = pol;
            }
        }
        set = nebula_gov_set_make(sn->pool, all, &err);
        if (set == NULL) { /* cannot happen: names were made unique above */
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "NEB03012: %s", err);
            set = nebula_gov_set_make(sn->pool, apr_array_make(sn->pool, 1, sizeof(void *)),
                                      &err);
        }
        apr_hash_set(sn->sets, apr_pmemdup(sn->pool, &r->server, sizeof(r->server)),
                     sizeof(r->server), set);
    }
    apr_thread_mutex_unlock(snap_lock);
    return set;
}

gov_snapshot_t *gov_store_snapshot(request_rec *r)
{
    apr_uint32_t gen = generation ? generation() : 0;
    gov_snapshot_t *sn, *old;

    if ((sn = ref_fresh(r, gen, 0)) == NULL) {
        apr_thread_mutex_lock(load_lock);
        if ((sn = ref_fresh(r, gen, 0)) == NULL && (sn = snapshot_load(r, gen)) != NULL) {
            apr_thread_mutex_lock(snap_lock);
            old = current;
            current = sn;
            sn->refs = 2; /* "current" and this request */
            if (old && --old->refs == 0) {
                apr_pool_destroy(old->pool);
            }
            apr_thread_mutex_unlock(snap_lock);
            apr_pool_cleanup_register(r->pool, sn, snapshot_release, apr_pool_cleanup_null);
        }
        apr_thread_mutex_unlock(load_lock);
        if (sn == NULL) { /* the database is unreachable: what we had */
            sn = ref_fresh(r, gen, 1);
        }
    }
    return sn;
}

const nebula_gov_set_t *gov_store_set(request_rec *r, gov_snapshot_t *sn)
{
    return set_for(r, sn);
}

/* relay_channel.c: the relay's view of channels and abilities, and the
 * choice of a channel and an upstream key for each attempt.
 *
 * Each child keeps one read-only snapshot (channels with their decrypted
 * keys, abilities by group and model), reference-counted so a reload never
 * pulls it from under a request, and reloaded when the host-wide generation
 * changes (any admin change) or after NebulaCacheTTL (changes made on other
 * hosts, auto-disable).
 */
#include <apr_strings.h>
#include <apr_atomic.h>
#include <apr_thread_mutex.h>
#include "relay_private.h"
#include "nebula_ap_db.h"
#include "nebula_json.h"

#define MAP_MAX_HOPS 16

struct relay_snapshot_t {
    apr_pool_t *pool;
    apr_uint32_t gen;
    apr_time_t loaded;
    apr_uint32_t refs;       /* under snap_lock */
    apr_hash_t *channels;    /* id (apr_int64_t) -> relay_channel_t */
    apr_hash_t *abilities;   /* "group\nmodel" -> apr_array of relay_cand_t, priority desc */
    apr_hash_t *group_models; /* group -> apr_hash of model names */
};

static apr_pool_t *snap_parent;
static relay_snapshot_t *current;
#if APR_HAS_THREADS
static apr_thread_mutex_t *snap_lock; /* current, refs, pool create/destroy */
static apr_thread_mutex_t *load_lock; /* one loader at a time */
#endif

apr_status_t relay_channel_child_init(apr_pool_t *pchild, server_rec *s)
{
    snap_parent = pchild;
#if APR_HAS_THREADS
    apr_thread_mutex_create(&snap_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    return apr_thread_mutex_create(&load_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
#else
    return APR_SUCCESS;
#endif
}

static void lock(apr_thread_mutex_t *m)
{
#if APR_HAS_THREADS
    apr_thread_mutex_lock(m);
#endif
}

static void unlock(apr_thread_mutex_t *m)
{
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(m);
#endif
}

/* ---- loading ------------------------------------------------------------ */

static apr_array_header_t *strings_of(apr_pool_t *p, json_t *arr)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    json_t *el;
    size_t i;

    json_array_foreach(arr, i, el)
    {
        if (json_is_string(el)) {
            APR_ARRAY_PUSH(a, const char *) = apr_pstrdup(p, json_string_value(el));
        }
    }
    return a;
}

static void channel_json_fields(apr_pool_t *p, relay_channel_t *ch, const char *models,
                                const char *mapping, const char *headers)
{
    json_t *j, *v;
    const char *k;

    ch->mapping = apr_hash_make(p);
    ch->headers = apr_table_make(p, 2);
    j = models ? nebula_json_parse(p, models, strlen(models), 0, NULL) : NULL;
    ch->models = j && json_is_array(j) ? strings_of(p, j)
                                       : apr_array_make(p, 1, sizeof(const char *));
    j = mapping ? nebula_json_parse(p, mapping, strlen(mapping), 0, NULL) : NULL;
    if (j && json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if (json_is_string(v)) {
                apr_hash_set(ch->mapping, apr_pstrdup(p, k), APR_HASH_KEY_STRING,
                             apr_pstrdup(p, json_string_value(v)));
            }
        }
    }
    j = headers ? nebula_json_parse(p, headers, strlen(headers), 0, NULL) : NULL;
    if (j && json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if (json_is_string(v)) {
                apr_table_set(ch->headers, k, json_string_value(v));
            }
        }
    }
}

static const char *const channels_sql =
    "SELECT id, name, kind, base_url, models, model_mapping, priority, weight, status, "
    "header_override, timeout_ms, auto_disable, key_mode, proxy, test_model "
    "FROM channels";

static apr_status_t load_channels(relay_snapshot_t *sn, nebula_ap_db_t *db,
                                  const char **err)
{
    nebula_dbd_rows_t rows;
    int i;

    if (nebula_ap_db_select(db, "relay_channels", channels_sql, 0, NULL, &rows, err)) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char **row = rows.rows[i];
        relay_channel_t *ch = apr_pcalloc(sn->pool, sizeof(*ch));
        char *url = apr_pstrdup(sn->pool, row[3] ? row[3] : "");
        apr_int64_t *id = apr_palloc(sn->pool, sizeof(*id));

        while (*url && url[strlen(url) - 1] == '/') {
            url[strlen(url) - 1] = '\0';
        }
        ch->id = *id = apr_atoi64(row[0]);
        ch->name = apr_pstrdup(sn->pool, row[1] ? row[1] : "");
        ch->kind = apr_pstrdup(sn->pool, row[2] ? row[2] : "openai");
        ch->base_url = url;
        ch->priority = row[6] ? apr_atoi64(row[6]) : 0;
        ch->weight = row[7] ? atoi(row[7]) : 1;
        ch->status = apr_pstrdup(sn->pool, row[8] ? row[8] : "disabled");
        ch->timeout_ms = row[10] ? atoi(row[10]) : 0;
        ch->auto_disable = row[11] ? atoi(row[11]) : 1;
        ch->key_mode = apr_pstrdup(sn->pool, row[12] ? row[12] : "round_robin");
        ch->proxy = row[13] && *row[13] ? apr_pstrdup(sn->pool, row[13]) : NULL;
        ch->test_model = row[14] && *row[14] ? apr_pstrdup(sn->pool, row[14]) : NULL;
        ch->keys = apr_array_make(sn->pool, 1, sizeof(relay_chkey_t));
        ch->rr = apr_pcalloc(sn->pool, sizeof(apr_uint32_t));
        channel_json_fields(sn->pool, ch, row[4], row[5], row[9]);
        apr_hash_set(sn->channels, id, sizeof(*id), ch);
    }
    return APR_SUCCESS;
}

static const char *const keys_sql =
    "SELECT id, channel_id, key_ciphertext, status, cooldown_until FROM channel_keys "
    "ORDER BY channel_id, id";

static apr_status_t load_keys(relay_snapshot_t *sn, nebula_ap_db_t *db, server_rec *s,
                              const char **err)
{
    const nebula_crypto_keyring_t *kr = relay_config_srv(s)->keyring;
    nebula_dbd_rows_t rows;
    int i;

    if (nebula_ap_db_select(db, "relay_channel_keys", keys_sql, 0, NULL, &rows, err)) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char **row = rows.rows[i];
        apr_int64_t cid = apr_atoi64(row[1]);
        relay_channel_t *ch = apr_hash_get(sn->channels, &cid, sizeof(cid));
        const char *aad = apr_psprintf(sn->pool, "nebula-channel-key:%" APR_INT64_T_FMT, cid);
        relay_chkey_t *k;
        char *plain = NULL;

        if (ch == NULL) {
            continue;
        }
        k = apr_array_push(ch->keys);
        k->id = apr_atoi64(row[0]);
        k->index = ch->keys->nelts - 1;
        k->enabled = row[3] && !strcmp(row[3], "enabled");
        k->cooldown_until = row[4] ? apr_atoi64(row[4]) : 0;
        if (kr == NULL || row[2] == NULL
            || nebula_crypto_open(sn->pool, kr, row[2], aad, strlen(aad), &plain, NULL)
                   != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB01030: cannot decrypt key %" APR_INT64_T_FMT " of channel %"
                         APR_INT64_T_FMT " (is NebulaCryptoSecret the one it was stored "
                         "with?)", k->id, cid);
            k->secret = NULL;
            continue;
        }
        k->secret = plain;
    }
    return APR_SUCCESS;
}

static int cand_cmp(const void *a, const void *b)
{
    const relay_cand_t *x = a, *y = b;

    return x->priority < y->priority ? 1 : x->priority > y->priority ? -1 : 0;
}

static const char *const abilities_sql =
    "SELECT user_group, model, channel_id, priority, weight FROM abilities "
    "WHERE enabled = 1";

static apr_status_t load_abilities(relay_snapshot_t *sn, nebula_ap_db_t *db,
                                   const char **err)
{
    nebula_dbd_rows_t rows;
    apr_hash_index_t *hi;
    int i;

    if (nebula_ap_db_select(db, "relay_abilities", abilities_sql, 0, NULL, &rows, err)) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char **row = rows.rows[i];
        apr_int64_t cid = apr_atoi64(row[2]);
        const relay_channel_t *ch = apr_hash_get(sn->channels, &cid, sizeof(cid));
        const char *key = apr_pstrcat(sn->pool, row[0], "\n", row[1], NULL);
        apr_array_header_t *list = apr_hash_get(sn->abilities, key, APR_HASH_KEY_STRING);
        apr_hash_t *models = apr_hash_get(sn->group_models, row[0], APR_HASH_KEY_STRING);
        relay_cand_t *c;

        if (ch == NULL || strcmp(ch->status, "enabled")) {
            continue;
        }
        if (list == NULL) {
            list = apr_array_make(sn->pool, 2, sizeof(relay_cand_t));
            apr_hash_set(sn->abilities, key, APR_HASH_KEY_STRING, list);
        }
        if (models == NULL) {
            models = apr_hash_make(sn->pool);
            apr_hash_set(sn->group_models, apr_pstrdup(sn->pool, row[0]),
                         APR_HASH_KEY_STRING, models);
        }
        apr_hash_set(models, apr_pstrdup(sn->pool, row[1]), APR_HASH_KEY_STRING, "");
        c = apr_array_push(list);
        c->ch = ch;
        c->priority = row[3] ? apr_atoi64(row[3]) : ch->priority;
        c->weight = row[4] ? atoi(row[4]) : ch->weight;
    }
    for (hi = apr_hash_first(sn->pool, sn->abilities); hi; hi = apr_hash_next(hi)) {
        apr_array_header_t *list = apr_hash_this_val(hi);
        qsort(list->elts, list->nelts, sizeof(relay_cand_t), cand_cmp);
    }
    return APR_SUCCESS;
}

static void snapshot_destroy(relay_snapshot_t *sn)
{
    apr_pool_destroy(sn->pool);
}

static relay_snapshot_t *snapshot_load(request_rec *r, apr_uint32_t gen)
{
    relay_snapshot_t *sn;
    nebula_ap_db_t *db;
    const char *err = NULL;
    apr_pool_t *p;

    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return NULL;
    }
    lock(snap_lock);
    apr_pool_create(&p, snap_parent);
    unlock(snap_lock);
    apr_pool_tag(p, "nebula_channel_snapshot");
    sn = apr_pcalloc(p, sizeof(*sn));
    sn->pool = p;
    sn->gen = gen;
    sn->loaded = apr_time_now();
    sn->channels = apr_hash_make(p);
    sn->abilities = apr_hash_make(p);
    sn->group_models = apr_hash_make(p);
    if (load_channels(sn, db, &err) || load_keys(sn, db, r->server, &err)
        || load_abilities(sn, db, &err)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "NEB01031: cannot load channels: %s", err ? err : "?");
        nebula_ap_db_close(db);
        lock(snap_lock);
        snapshot_destroy(sn);
        unlock(snap_lock);
        return NULL;
    }
    nebula_ap_db_close(db);
    return sn;
}

static apr_status_t snapshot_release(void *data)
{
    relay_snapshot_t *sn = data;

    lock(snap_lock);
    if (--sn->refs == 0) {
        snapshot_destroy(sn);
    }
    unlock(snap_lock);
    return APR_SUCCESS;
}

/* A counted reference to the current snapshot if it is still fresh. */
static relay_snapshot_t *snapshot_ref_fresh(request_rec *r, apr_uint32_t gen, int any)
{
    apr_interval_time_t ttl = relay_config_srv(r->server)->cache_ttl;
    relay_snapshot_t *sn = NULL;

    lock(snap_lock);
    if (current
        && (any || (current->gen == gen && apr_time_now() - current->loaded < ttl))) {
        sn = current;
        sn->refs++;
    }
    unlock(snap_lock);
    if (sn) {
        apr_pool_cleanup_register(r->pool, sn, snapshot_release, apr_pool_cleanup_null);
    }
    return sn;
}

relay_snapshot_t *relay_channel_snapshot(request_rec *r)
{
    apr_uint32_t gen = relay_gen_current();
    relay_snapshot_t *sn, *old;

    if ((sn = snapshot_ref_fresh(r, gen, 0)) != NULL) {
        return sn;
    }
    lock(load_lock);
    /* another thread may have loaded it while we waited */
    if ((sn = snapshot_ref_fresh(r, gen, 0)) == NULL
        && (sn = snapshot_load(r, gen)) != NULL) {
        lock(snap_lock);
        old = current;
        current = sn;
        sn->refs = 2; /* "current" and this request */
        if (old && --old->refs == 0) {
            snapshot_destroy(old);
        }
        unlock(snap_lock);
        apr_pool_cleanup_register(r->pool, sn, snapshot_release, apr_pool_cleanup_null);
    }
    unlock(load_lock);
    /* the database is unreachable: keep serving with what we had */
    return sn ? sn : snapshot_ref_fresh(r, gen, 1);
}

/* ---- lookups --------------------------------------------------------------- */

const relay_channel_t *relay_channel_by_id(const relay_snapshot_t *snap, apr_int64_t id)
{
    return apr_hash_get(snap->channels, &id, sizeof(id));
}

const relay_channel_t *relay_channel_by_name(request_rec *r, const relay_snapshot_t *snap,
                                             const char *name)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(r->pool, snap->channels); hi; hi = apr_hash_next(hi)) {
        const relay_channel_t *ch = apr_hash_this_val(hi);
        if (!strcmp(ch->name, name)) {
            return ch;
        }
    }
    return NULL;
}

const char *relay_channel_map_model(request_rec *r, const relay_channel_t *ch,
                                    const char *model)
{
    const char *m = model, *next;
    apr_hash_t *seen = apr_hash_make(r->pool);
    int hops = 0;

    while ((next = apr_hash_get(ch->mapping, m, APR_HASH_KEY_STRING)) != NULL
           && *next != '\0') {
        apr_hash_set(seen, m, APR_HASH_KEY_STRING, "");
        if (apr_hash_get(seen, next, APR_HASH_KEY_STRING) || ++hops > MAP_MAX_HOPS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "NEB01032: model mapping of channel %" APR_INT64_T_FMT
                          " loops at '%s'; using '%s'", ch->id, next, m);
            break;
        }
        m = next;
    }
    return m;
}

static int model_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

apr_array_header_t *relay_channel_models(request_rec *r, const relay_snapshot_t *snap,
                                         const char *group)
{
    apr_hash_t *models = apr_hash_get(snap->group_models, group, APR_HASH_KEY_STRING);
    apr_array_header_t *out = apr_array_make(r->pool, 8, sizeof(const char *));
    apr_hash_index_t *hi;

    if (models) {
        for (hi = apr_hash_first(r->pool, models); hi; hi = apr_hash_next(hi)) {
            APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(r->pool, apr_hash_this_key(hi));
        }
    }
    qsort(out->elts, out->nelts, sizeof(const char *), model_cmp);
    return out;
}

const relay_channel_t *relay_channel_select(request_rec *r, const relay_snapshot_t *snap,
                                            const char *group, const char *model,
                                            int attempt, const apr_array_header_t *tried)
{
    const apr_array_header_t *all =
        apr_hash_get(snap->abilities, apr_pstrcat(r->pool, group, "\n", model, NULL),
                     APR_HASH_KEY_STRING);

    return all ? relay_select_channel(r, all, attempt, tried) : NULL;
}

/* nebula_ap_dbd.c: the database bootstrap every NebulaGate module runs in
 * child_init. The schema is embedded in the binary (nebula_migrate.h); this
 * file borrows one connection from mod_dbd, lets the migration runner bring
 * the schema to the latest version under the database's own lock, and records
 * the outcome in the process pool so the other modules of the same child do
 * not repeat the work. It also prepares every new SQLite connection mod_dbd
 * opens (WAL, busy timeout, foreign keys) and checks every MySQL one (it must
 * count matched rows) through mod_dbd's post_connect hook. */
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include "nebula_ap.h"
#include "nebula_migrate.h"
#include "nebula_dbd_dialect.h"

#define DB_STATE_KEY "nebula:db-state"

nebula_ap_db_state_e nebula_ap_db_state(server_rec *s)
{
    void *v = NULL;

    apr_pool_userdata_get(&v, DB_STATE_KEY, s->process->pool);
    /* stored as state + 1, so that "not yet decided" is NULL */
    return v ? (nebula_ap_db_state_e)((apr_uintptr_t)v - 1) : NEBULA_AP_DB_NONE;
}

static void db_state_set(server_rec *s, nebula_ap_db_state_e st)
{
    apr_pool_userdata_set((void *)((apr_uintptr_t)st + 1), DB_STATE_KEY, NULL,
                          s->process->pool);
}

static nebula_ap_db_state_e db_migrate(apr_pool_t *p, server_rec *s, int mi)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    nebula_migrate_result_t res;
    const char *err = NULL;
    ap_dbd_t *dbd;
    apr_status_t rv;

    if (dbd_open == NULL || dbd_close == NULL) {
        ap_log_error_(__FILE__, __LINE__, mi, APLOG_NOTICE, 0, s,
                      "NEB00001: mod_dbd is not loaded: running without a database");
        return NEBULA_AP_DB_NONE;
    }
    dbd = dbd_open(p, s);
    if (dbd == NULL) {
        ap_log_error_(__FILE__, __LINE__, mi, APLOG_ERR, 0, s,
                      "NEB00002: no database connection from mod_dbd (check DBDriver "
                      "and DBDParams); requests that need the database will fail");
        return NEBULA_AP_DB_FAILED;
    }
    rv = nebula_migrate_run(dbd->driver, dbd->handle, NULL, &res, &err, p);
    dbd_close(s, dbd);
    if (rv != APR_SUCCESS) {
        ap_log_error_(__FILE__, __LINE__, mi, APLOG_ERR, rv, s,
                      "NEB00003: database schema migration failed: %s",
                      err ? err : "unknown error");
        return NEBULA_AP_DB_FAILED;
    }
    /* the runner logged what it applied (NEB00209) */
    return NEBULA_AP_DB_READY;
}

nebula_ap_db_state_e nebula_ap_db_ensure(apr_pool_t *pchild, server_rec *s, int mi)
{
    void *done = NULL;
    nebula_ap_db_state_e st;
    apr_pool_t *p;

    /* The first module to get here in this child does the work. */
    apr_pool_userdata_get(&done, DB_STATE_KEY, s->process->pool);
    if (done != NULL) {
        return nebula_ap_db_state(s);
    }
    apr_pool_create(&p, pchild);
    apr_pool_tag(p, "nebula_db_ensure");
    st = db_migrate(p, s, mi);
    apr_pool_destroy(p);
    db_state_set(s, st);
    return st;
}

/* mod_dbd's post_connect: per-connection set-up (SQLite's settings, the
 * check that a MySQL connection counts matched rows; each a no-op for the
 * other drivers). Every loaded NebulaGate module registers this; the
 * connection pool's userdata makes the work happen once per connection. */
static apr_status_t db_post_connect(apr_pool_t *p, dbd_cfg_t *cfg, ap_dbd_t *dbd)
{
    const char *err = NULL;
    void *done = NULL;

    apr_pool_userdata_get(&done, "nebula:connection-setup", dbd->pool);
    if (done) {
        return APR_SUCCESS;
    }
    if (nebula_dbd_sqlite_init(dbd->driver, dbd->handle, 0, &err, p) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, cfg->server,
                     "NEB00005: cannot prepare a SQLite connection: %s",
                     err ? err : "unknown error");
        return APR_EGENERAL;
    }
    if (nebula_dbd_mysql_check(dbd->driver, dbd->handle, &err, p) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, cfg->server,
                     "NEB00006: refused a MySQL connection: %s", err ? err : "unknown error");
        return APR_EGENERAL;
    }
    apr_pool_userdata_setn((void *)1, "nebula:connection-setup", NULL, dbd->pool);
    return APR_SUCCESS;
}

void nebula_ap_db_register_hooks(void)
{
    APR_OPTIONAL_HOOK(dbd, post_connect, db_post_connect, NULL, NULL, APR_HOOK_MIDDLE);
}

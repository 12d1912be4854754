/* billing_retention.c: request_logs retention (docs/operations-data.md).
 *
 * Each scheduler pass deletes at most NebulaRetentionBatch request_logs rows
 * older than NebulaLogRetention, oldest first, in one statement:
 *   DELETE ... WHERE id IN (SELECT id FROM (SELECT id ... ORDER BY created_at
 *   LIMIT n) AS old)
 * The derived table is for MySQL, which refuses LIMIT in an IN subquery and
 * a subquery on the table being deleted from; SQLite and PostgreSQL accept
 * the same text. Short statements keep locks short on a busy database; a
 * backlog (a first run on a large table) drains over passes.
 *
 * While the rollup runs (NebulaLogRollup), rows not yet rolled up (into
 * request_log_hourly and request_log_summary) are kept whatever their age,
 * so the dashboards' totals lose nothing. The
 * rollup rows themselves are kept (they are small), and the ledger is never
 * pruned: it is the accounts' history. gov_audit has its own retention
 * (mod_nebula_gov, NebulaAuditRetention). */
#include <apr_strings.h>
#include "billing_private.h"

int billing_retention_pass(server_rec *s, apr_pool_t *p, apr_int64_t now_ms)
{
    const billing_srv_conf_t *c = billing_config_srv(s);
    apr_int64_t before = now_ms - c->log_retention;
    nebula_ap_db_t *db;
    nebula_dbd_rows_t rows;
    const char *args[1], *err = NULL;
    int affected = 0;

    if (c->log_retention <= 0 || (db = nebula_ap_db_open(p, s)) == NULL) {
        return 0;
    }
    if (c->rollup_hours > 0) {
        if (nebula_ap_db_select(db, "billing_retention_rolled",
                                "SELECT MIN(done_to) FROM nebula_rollup_state WHERE "
                                "name IN ('request_logs', 'request_logs_summary')",
                                0, NULL, &rows, &err) != APR_SUCCESS || rows.nrows != 1) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB02403: log retention: cannot read the rollup state: %s",
                         err ? err : "no row");
            nebula_ap_db_close(db);
            return 0;
        }
        if (nebula_ap_db_int(&rows, 0, 0) < before) {
            before = nebula_ap_db_int(&rows, 0, 0);
        }
    }
    args[0] = billing_i64(p, before);
    /* the batch size is written into the text (MySQL binds a LIMIT
     * parameter as a string): one label per size */
    if (nebula_ap_db_exec(
            db, apr_psprintf(p, "billing_retention_logs_%" APR_INT64_T_FMT, c->retention_batch),
            apr_psprintf(p,
                         "DELETE FROM request_logs WHERE id IN (SELECT id FROM (SELECT id "
                         "FROM request_logs WHERE created_at < %%lld ORDER BY created_at "
                         "LIMIT %" APR_INT64_T_FMT ") AS old)",
                         c->retention_batch),
            1, args, &affected, &err) != APR_SUCCESS) {
        /* a warning: nothing is lost, the next pass deletes them (a MySQL
         * deadlock with the gateway's own inserts is the usual cause) */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB02404: log retention: cannot delete old request logs (the next "
                     "pass tries again): %s", err);
    }
    else if (affected > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "NEB02405: log retention: deleted %d request log(s) older than "
                     "%" APR_INT64_T_FMT,
                     affected, before);
    }
    nebula_ap_db_close(db);
    return affected;
}

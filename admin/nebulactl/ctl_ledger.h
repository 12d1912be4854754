/* ctl_ledger.h: what the ledger commands of nebulactl share (ctl_ledger.c:
 * command line, connection, reading in batches; ctl_ledger_verify.c:
 * verify-ledger; ctl_ledger_export.c: ledger-export). Private to those
 * three files; the rest of nebulactl sees ctl_ledger_main() in ctl.h. */
#ifndef NEBULACTL_CTL_LEDGER_H
#define NEBULACTL_CTL_LEDGER_H

#include "ctl.h"
#include "nebula_ledger.h"

/* verify-ledger's exit codes (a monitoring script tells a broken ledger
 * from a broken invocation). ledger-export uses the usual CTL_EXIT_*. */
#define CTL_LEDGER_CLEAN    0 /* every check passed */
#define CTL_LEDGER_PROBLEMS 1 /* at least one problem was found */
#define CTL_LEDGER_FAILED   2 /* usage, or the database could not be read */

/* Rows read per query: a ledger of any length is walked a batch at a time. */
#define CTL_LEDGER_BATCH     1000
#define CTL_LEDGER_BATCH_MAX 100000

/* The columns of a ledger row, in the order ctl_ledger_entry() reads. */
#define CTL_LEDGER_COLUMNS                                                               \
    "id, account_id, seq, kind, amount, balance_after, request_id, idem_key, actor, "    \
    "created_at, detail, prev_hash, row_hash"

/* The options of both commands (each refuses the other's). */
typedef struct {
    ctl_t *ctl;
    apr_int64_t account; /* --account; 0: every account */
    int json;            /* verify-ledger --json */
    int batch;           /* --batch: rows per query */
    const char *format;  /* ledger-export --format: "csv" or "jsonl" */
    int has_from, has_to;
    apr_int64_t from, to; /* ledger-export --from (inclusive), --to (exclusive), ms */
} ctl_ledger_opts_t;

/* One ledger row as read: the hashed fields, and what is not hashed. */
typedef struct {
    apr_int64_t id;
    nebula_ledger_row_t row; /* request_id and detail: NULL when empty */
    const char *row_hash;
} ctl_ledger_entry_t;

/* Fill @a e from a row of CTL_LEDGER_COLUMNS (pointers into @a cols).
 * SQL NULL and "" are the same (nebula_ledger.h; pgsql returns NULL as ""). */
void ctl_ledger_entry(const char *const *cols, ctl_ledger_entry_t *e);

/* Prepare @a sql on ctl's connection, in ctl's pool. CTL_EXIT_OK or
 * CTL_EXIT_ERROR (message printed). */
int ctl_ledger_prepare(ctl_t *ctl, const char *sql, apr_dbd_prepared_t **st);

/* (a prepared statement's rows: ctl_select_prepared(), ctl.h) */

/* A read-only snapshot: every statement until ctl_ledger_snapshot_end()
 * sees the same committed state (REPEATABLE READ on PostgreSQL and MySQL,
 * a read transaction on SQLite in WAL mode), so rows a running server
 * appends meanwhile cannot look like a broken chain. */
int ctl_ledger_snapshot_begin(ctl_t *ctl);
int ctl_ledger_snapshot_end(ctl_t *ctl);

/* Decimal text of @a v in @a p. */
const char *ctl_ledger_i64(apr_pool_t *p, apr_int64_t v);

/* The commands, on an open connection. */
int ctl_ledger_verify(ctl_ledger_opts_t *o);
int ctl_ledger_export(ctl_ledger_opts_t *o);

#endif /* NEBULACTL_CTL_LEDGER_H */

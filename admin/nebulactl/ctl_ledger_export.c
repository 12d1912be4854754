/* ctl_ledger_export.c: `nebulactl ledger-export`: ledger rows to stdout in
 * id order, as CSV (RFC 4180, a header line first) or JSON Lines, for
 * accounting and for checking the chain elsewhere: every hashed field is
 * written exactly as stored (detail as its JSON text, in a string), so
 * row_hash can be recomputed from the export alone.
 *
 * --account N keeps one account; --from MS (inclusive) and --to MS
 * (exclusive) select by created_at, so consecutive ranges never overlap.
 * The rows are read a batch at a time inside one read-only snapshot: the
 * export is the ledger as it was at one instant, however long it takes.
 * request_id and detail are empty in CSV and null in JSON when absent (SQL
 * NULL and "" are the same thing in the ledger). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ctl_ledger.h"

static const char csv_header[] = "id,account_id,seq,kind,amount,balance_after,request_id,"
                                 "idem_key,actor,created_at,detail,prev_hash,row_hash\n";

/* One CSV field: quoted (quotes doubled) when it holds , " CR or LF. */
static void csv_field(const char *s, int last)
{
    if (s != NULL && strpbrk(s, ",\"\r\n") != NULL) {
        putchar('"');
        for (; *s; ++s) {
            if (*s == '"') {
                putchar('"');
            }
            putchar(*s);
        }
        putchar('"');
    }
    else if (s != NULL) {
        fputs(s, stdout);
    }
    putchar(last ? '\n' : ',');
}

static void write_csv(const ctl_ledger_entry_t *e)
{
    const nebula_ledger_row_t *r = &e->row;

    printf("%" APR_INT64_T_FMT ",%" APR_INT64_T_FMT ",%" APR_INT64_T_FMT ",", e->id,
           r->account_id, r->seq);
    csv_field(r->kind, 0);
    printf("%" APR_INT64_T_FMT ",%" APR_INT64_T_FMT ",", r->amount, r->balance_after);
    csv_field(r->request_id, 0);
    csv_field(r->idem_key, 0);
    csv_field(r->actor, 0);
    printf("%" APR_INT64_T_FMT ",", r->created_at);
    csv_field(r->detail, 0);
    csv_field(r->prev_hash, 0);
    csv_field(e->row_hash, 1);
}

static json_t *json_text(const char *s)
{
    /* json_string refuses invalid UTF-8: keep such bytes visible anyway */
    json_t *j = s ? json_string(s) : json_null();

    return j ? j : json_stringn_nocheck(s, strlen(s));
}

static int write_jsonl(const ctl_ledger_entry_t *e)
{
    const nebula_ledger_row_t *r = &e->row;
    json_t *j = json_object();
    char *text;

    json_object_set_new(j, "id", json_integer(e->id));
    json_object_set_new(j, "account_id", json_integer(r->account_id));
    json_object_set_new(j, "seq", json_integer(r->seq));
    json_object_set_new(j, "kind", json_text(r->kind));
    json_object_set_new(j, "amount", json_integer(r->amount));
    json_object_set_new(j, "balance_after", json_integer(r->balance_after));
    json_object_set_new(j, "request_id", json_text(r->request_id));
    json_object_set_new(j, "idem_key", json_text(r->idem_key));
    json_object_set_new(j, "actor", json_text(r->actor));
    json_object_set_new(j, "created_at", json_integer(r->created_at));
    json_object_set_new(j, "detail", json_text(r->detail));
    json_object_set_new(j, "prev_hash", json_text(r->prev_hash));
    json_object_set_new(j, "row_hash", json_text(e->row_hash));
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL) {
        ctl_error("cannot encode ledger row %" APR_INT64_T_FMT " as JSON", e->id);
        return CTL_EXIT_ERROR;
    }
    puts(text);
    free(text);
    return CTL_EXIT_OK;
}

/* The statement of one batch: id > %lld, then the filters that are set,
 * and the arguments for them after the first (filled per batch). */
static int prepare_batch(ctl_ledger_opts_t *o, apr_dbd_prepared_t **st, const char **args,
                         int *nargs)
{
    apr_pool_t *p = o->ctl->pool;
    const char *sql = "SELECT " CTL_LEDGER_COLUMNS " FROM ledger WHERE id > %lld";

    *nargs = 1;
    if (o->account) {
        sql = apr_pstrcat(p, sql, " AND account_id = %lld", NULL);
        args[(*nargs)++] = ctl_ledger_i64(p, o->account);
    }
    if (o->has_from) {
        sql = apr_pstrcat(p, sql, " AND created_at >= %lld", NULL);
        args[(*nargs)++] = ctl_ledger_i64(p, o->from);
    }
    if (o->has_to) {
        sql = apr_pstrcat(p, sql, " AND created_at < %lld", NULL);
        args[(*nargs)++] = ctl_ledger_i64(p, o->to);
    }
    sql = apr_psprintf(p, "%s ORDER BY id LIMIT %d", sql, o->batch);
    return ctl_ledger_prepare(o->ctl, sql, st);
}

static int export_rows(ctl_ledger_opts_t *o)
{
    apr_dbd_prepared_t *st;
    const char *args[4];
    nebula_dbd_rows_t rows;
    ctl_ledger_entry_t e;
    apr_int64_t after = 0;
    apr_pool_t *p;
    int csv = strcmp(o->format, "csv") == 0;
    int i, nargs, code;

    if ((code = prepare_batch(o, &st, args, &nargs)) != CTL_EXIT_OK) {
        return code;
    }
    if (csv) {
        fputs(csv_header, stdout);
    }
    apr_pool_create(&p, o->ctl->pool);
    do {
        args[0] = ctl_ledger_i64(p, after);
        if ((code = ctl_select_prepared(o->ctl, p, st, nargs, args, &rows)) !=
            CTL_EXIT_OK) {
            break;
        }
        for (i = 0; i < rows.nrows && code == CTL_EXIT_OK; ++i) {
            ctl_ledger_entry(rows.rows[i], &e);
            after = e.id;
            if (csv) {
                write_csv(&e);
            }
            else {
                code = write_jsonl(&e);
            }
        }
        apr_pool_clear(p);
        if (code == CTL_EXIT_OK && ferror(stdout)) {
            ctl_error("cannot write the export to stdout");
            code = CTL_EXIT_ERROR;
        }
    } while (code == CTL_EXIT_OK && rows.nrows == o->batch);
    apr_pool_destroy(p);
    return code;
}

int ctl_ledger_export(ctl_ledger_opts_t *o)
{
    int code;

    if ((code = ctl_ledger_snapshot_begin(o->ctl)) != CTL_EXIT_OK) {
        return code;
    }
    code = export_rows(o);
    if (ctl_ledger_snapshot_end(o->ctl) != CTL_EXIT_OK && code == CTL_EXIT_OK) {
        code = CTL_EXIT_ERROR;
    }
    if (code == CTL_EXIT_OK && fflush(stdout) != 0) {
        ctl_error("cannot write the export to stdout");
        code = CTL_EXIT_ERROR;
    }
    return code;
}

/* ctl_ledger_verify.c: `nebulactl verify-ledger`: walk every account's
 * ledger (or one, --account N) in seq order, a batch of rows at a time, and
 * check what nebula_ledger.h promises:
 *
 *   per row      seq continues from 1 without a gap; prev_hash is the
 *                row_hash of the row before (the genesis hash for seq 1);
 *                row_hash is the hash of the row as stored; the kind is
 *                known; balance_after = previous balance_after + amount
 *   per account  balance = the sum of the amounts; ledger_seq and
 *                ledger_hash are the last row's seq and row_hash; reserved =
 *                the sum of its reservations in state 'held'
 *   overall      no ledger rows of an account that does not exist
 *
 * Each account is read inside one read-only snapshot, so a server that keeps
 * appending rows meanwhile cannot make a sound chain look broken. A problem
 * is reported where it is (one line each) and the walk goes on from what the
 * row says, so one edited row is one problem, not one per later row.
 *
 * Output: "account 7 seq 12: row_hash mismatch (row edited?)" lines, then
 * "verified N accounts, M rows: OK" (or ": K problems"); --json prints one
 * JSON object instead. Exit 0 clean, 1 problems, 2 usage or database error. */
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ctl_ledger.h"

/* "no seq": a problem of the account, not of one row. */
#define NO_SEQ APR_INT64_MIN
/* The seq every walk starts after: rows with a seq below 1 are read too. */
#define SEQ_BEFORE_ALL "-9223372036854775808"

typedef struct {
    ctl_ledger_opts_t *o;
    ctl_t *ctl;
    apr_dbd_prepared_t *st_ids, *st_head, *st_rows, *st_held, *st_count;
    apr_int64_t accounts, rows, problems;
} verify_t;

/* One account's chain as walked so far. */
typedef struct {
    apr_int64_t id;
    apr_int64_t next_seq;     /* the seq the next row should have */
    apr_int64_t last_seq;     /* seq of the last row read; 0 before the first */
    apr_int64_t last_balance; /* its balance_after; 0 before the first */
    apr_int64_t sum;          /* of the amounts */
    int overflow;             /* the sum left 64 bits */
    char last_hash[NEBULA_LEDGER_HASH_LEN + 1]; /* its row_hash; genesis first */
} chain_t;

/* The account's head (accounts row). */
typedef struct {
    apr_int64_t balance, reserved, ledger_seq;
    const char *ledger_hash;
} head_t;

/* Text from the database made safe for a one-line message (and for JSON:
 * printable ASCII only, at most 40 bytes). */
static const char *printable(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i;
    char *out;

    if (n > 40) {
        n = 40;
    }
    out = apr_pstrndup(p, s, n);
    for (i = 0; i < n; ++i) {
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f) {
            out[i] = '?';
        }
    }
    return n < strlen(s) ? apr_pstrcat(p, out, "...", NULL) : out;
}

static void problem(verify_t *v, apr_int64_t account, apr_int64_t seq, const char *check,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(verify_t *v, apr_int64_t account, apr_int64_t seq, const char *check,
                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v->o->json) {
        json_t *j = json_object();
        char *text;

        json_object_set_new(j, "account", json_integer(account));
        json_object_set_new(j, "seq", seq == NO_SEQ ? json_null() : json_integer(seq));
        json_object_set_new(j, "check", json_string(check));
        json_object_set_new(j, "message", json_string(msg));
        text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s%s", v->problems > 0 ? ",\n" : "\n", text ? text : "{}");
        free(text);
        json_decref(j);
    }
    else if (seq == NO_SEQ) {
        printf("account %" APR_INT64_T_FMT ": %s\n", account, msg);
    }
    else {
        printf("account %" APR_INT64_T_FMT " seq %" APR_INT64_T_FMT ": %s\n", account,
               seq, msg);
    }
    v->problems++;
}

static int prepare_all(verify_t *v)
{
    ctl_t *ctl = v->ctl;
    int n = v->o->batch;

    if (ctl_ledger_prepare(ctl,
                           apr_psprintf(ctl->pool,
                                        "SELECT id FROM accounts WHERE id > %%lld "
                                        "ORDER BY id LIMIT %d",
                                        n),
                           &v->st_ids) != CTL_EXIT_OK ||
        ctl_ledger_prepare(ctl,
                           "SELECT balance, reserved, ledger_seq, ledger_hash FROM "
                           "accounts WHERE id = %lld",
                           &v->st_head) != CTL_EXIT_OK ||
        ctl_ledger_prepare(ctl,
                           apr_psprintf(ctl->pool,
                                        "SELECT " CTL_LEDGER_COLUMNS " FROM ledger "
                                        "WHERE account_id = %%lld AND seq > %%lld "
                                        "ORDER BY seq LIMIT %d",
                                        n),
                           &v->st_rows) != CTL_EXIT_OK ||
        ctl_ledger_prepare(ctl,
                           "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE "
                           "account_id = %lld AND state = 'held'",
                           &v->st_held) != CTL_EXIT_OK ||
        ctl_ledger_prepare(ctl, "SELECT COUNT(*) FROM ledger WHERE account_id = %lld",
                           &v->st_count) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* seq continuity: the row after seq k is k + 1, the first is 1. */
static void check_seq(verify_t *v, chain_t *c, apr_int64_t seq)
{
    if (seq == c->next_seq) {
        return;
    }
    if (seq < c->next_seq) {
        problem(v, c->id, seq, "seq", "seq out of range (the first row is seq 1)");
    }
    else if (seq == c->next_seq + 1) {
        problem(v, c->id, seq, "seq",
                "seq %" APR_INT64_T_FMT " is missing (row deleted?)", c->next_seq);
    }
    else {
        problem(v, c->id, seq, "seq",
                "seq %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                " are missing (rows deleted?)",
                c->next_seq, seq - 1);
    }
}

/* Check one row against the chain so far, then advance the chain. */
static int check_row(verify_t *v, chain_t *c, const ctl_ledger_entry_t *e, apr_pool_t *p)
{
    const nebula_ledger_row_t *r = &e->row;
    const char *hash;
    apr_int64_t expect;

    check_seq(v, c, r->seq);
    if (strcmp(r->prev_hash, c->last_hash) != 0) {
        if (c->last_seq == 0) {
            problem(v, c->id, r->seq, "prev_hash",
                    "prev_hash is not the genesis hash of a first row");
        }
        else {
            problem(v, c->id, r->seq, "prev_hash",
                    "prev_hash is not the row_hash of seq %" APR_INT64_T_FMT
                    " (row deleted or inserted?)",
                    c->last_seq);
        }
    }
    if ((hash = nebula_ledger_hash(p, r)) == NULL) {
        ctl_error("cannot compute a SHA-256 hash (OpenSSL)");
        return CTL_EXIT_ERROR;
    }
    if (strcmp(hash, e->row_hash) != 0) {
        problem(v, c->id, r->seq, "row_hash", "row_hash mismatch (row edited?)");
    }
    if (!nebula_ledger_kind_valid(r->kind)) {
        problem(v, c->id, r->seq, "kind", "unknown kind '%s'", printable(p, r->kind));
    }
    if (__builtin_add_overflow(c->last_balance, r->amount, &expect)) {
        problem(v, c->id, r->seq, "balance_after",
                "the previous balance_after plus the amount overflow 64 bits");
    }
    else if (r->balance_after != expect) {
        problem(v, c->id, r->seq, "balance_after",
                "balance_after %" APR_INT64_T_FMT
                ", but the previous balance %" APR_INT64_T_FMT
                " plus the amount %" APR_INT64_T_FMT " is %" APR_INT64_T_FMT,
                r->balance_after, c->last_balance, r->amount, expect);
    }
    if (!c->overflow && __builtin_add_overflow(c->sum, r->amount, &c->sum)) {
        c->overflow = 1;
    }
    c->next_seq = r->seq + 1;
    c->last_seq = r->seq;
    c->last_balance = r->balance_after;
    apr_cpystrn(c->last_hash, e->row_hash, sizeof(c->last_hash));
    v->rows++;
    return CTL_EXIT_OK;
}

/* Walk the account's rows in seq order, one batch in memory at a time. */
static int walk_rows(verify_t *v, chain_t *c, apr_pool_t *pool)
{
    const char *args[2];
    nebula_dbd_rows_t rows;
    ctl_ledger_entry_t e;
    apr_pool_t *p;
    const char *after = SEQ_BEFORE_ALL;
    int i, code = CTL_EXIT_OK;

    apr_pool_create(&p, pool);
    args[0] = ctl_ledger_i64(pool, c->id);
    do {
        args[1] = after;
        if ((code = ctl_select_prepared(v->ctl, p, v->st_rows, 2, args, &rows)) !=
            CTL_EXIT_OK) {
            break;
        }
        for (i = 0; i < rows.nrows && code == CTL_EXIT_OK; ++i) {
            ctl_ledger_entry(rows.rows[i], &e);
            code = check_row(v, c, &e, p);
        }
        after = ctl_ledger_i64(pool, c->last_seq);
        apr_pool_clear(p);
    } while (code == CTL_EXIT_OK && rows.nrows == v->o->batch);
    apr_pool_destroy(p);
    return code;
}

/* One value of a one-row, one-column query. */
static int select_i64(verify_t *v, apr_pool_t *p, apr_dbd_prepared_t *st, apr_int64_t id,
                      apr_int64_t *out)
{
    const char *args[1] = {ctl_ledger_i64(p, id)};
    nebula_dbd_rows_t rows;

    if (ctl_select_prepared(v->ctl, p, st, 1, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    *out = rows.nrows > 0 && rows.rows[0][0] ? apr_atoi64(rows.rows[0][0]) : 0;
    return CTL_EXIT_OK;
}

/* The account's row; *found 0 when there is none. */
static int read_head(verify_t *v, apr_pool_t *p, apr_int64_t id, head_t *h, int *found)
{
    const char *args[1] = {ctl_ledger_i64(p, id)};
    nebula_dbd_rows_t rows;
    const char **r;

    if (ctl_select_prepared(v->ctl, p, v->st_head, 1, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if ((*found = rows.nrows > 0)) {
        r = rows.rows[0];
        h->balance = r[0] ? apr_atoi64(r[0]) : 0;
        h->reserved = r[1] ? apr_atoi64(r[1]) : 0;
        h->ledger_seq = r[2] ? apr_atoi64(r[2]) : 0;
        h->ledger_hash = r[3] ? r[3] : "";
    }
    return CTL_EXIT_OK;
}

/* The account's row against its chain and its holds. */
static void check_head(verify_t *v, const chain_t *c, const head_t *h, apr_int64_t held)
{
    if (h->ledger_seq != c->last_seq) {
        problem(v, c->id, NO_SEQ, "ledger_seq",
                "ledger_seq %" APR_INT64_T_FMT
                " but the last row is seq %" APR_INT64_T_FMT,
                h->ledger_seq, c->last_seq);
    }
    if (strcmp(h->ledger_hash, c->last_hash) != 0) {
        if (c->last_seq == 0) {
            problem(v, c->id, NO_SEQ, "ledger_hash",
                    "ledger_hash is not the genesis hash, but there are no rows");
        }
        else {
            problem(
                v, c->id, NO_SEQ, "ledger_hash",
                "ledger_hash is not the row_hash of the last row, seq %" APR_INT64_T_FMT,
                c->last_seq);
        }
    }
    if (c->overflow) {
        problem(v, c->id, NO_SEQ, "balance", "the sum of the amounts overflows 64 bits");
    }
    else if (h->balance != c->sum) {
        problem(v, c->id, NO_SEQ, "balance",
                "balance %" APR_INT64_T_FMT " but the rows sum to %" APR_INT64_T_FMT,
                h->balance, c->sum);
    }
    if (h->reserved != held) {
        problem(v, c->id, NO_SEQ, "reserved",
                "reserved %" APR_INT64_T_FMT
                " but its held reservations sum to %" APR_INT64_T_FMT,
                h->reserved, held);
    }
}

/* Verify account @a id inside one snapshot; *found 0 when it does not exist. */
static int verify_account(verify_t *v, apr_int64_t id, int *found)
{
    chain_t c;
    head_t h;
    apr_int64_t held = 0;
    apr_pool_t *p;
    int code;

    apr_pool_create(&p, v->ctl->pool);
    memset(&c, 0, sizeof(c));
    memset(&h, 0, sizeof(h));
    *found = 0;
    c.id = id;
    c.next_seq = 1;
    apr_cpystrn(c.last_hash, NEBULA_LEDGER_GENESIS, sizeof(c.last_hash));
    if ((code = ctl_ledger_snapshot_begin(v->ctl)) != CTL_EXIT_OK) {
        apr_pool_destroy(p);
        return code;
    }
    code = read_head(v, p, id, &h, found);
    if (code == CTL_EXIT_OK && *found) {
        code = walk_rows(v, &c, p);
    }
    if (code == CTL_EXIT_OK && *found) {
        code = select_i64(v, p, v->st_held, id, &held);
    }
    if (ctl_ledger_snapshot_end(v->ctl) != CTL_EXIT_OK) {
        code = CTL_EXIT_ERROR;
    }
    if (code == CTL_EXIT_OK && *found) {
        v->accounts++;
        check_head(v, &c, &h, held);
    }
    apr_pool_destroy(p);
    return code;
}

/* Ledger rows whose account does not exist (the account row deleted?). */
static int check_orphans(verify_t *v, apr_pool_t *p)
{
    apr_dbd_prepared_t *st;
    nebula_dbd_rows_t rows;
    int i;

    if (ctl_ledger_prepare(v->ctl,
                           "SELECT l.account_id, COUNT(*) FROM ledger l LEFT JOIN "
                           "accounts a ON a.id = l.account_id WHERE a.id IS NULL "
                           "GROUP BY l.account_id ORDER BY l.account_id",
                           &st) != CTL_EXIT_OK ||
        ctl_select_prepared(v->ctl, p, st, 0, NULL, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        problem(v, apr_atoi64(rows.rows[i][0]), NO_SEQ, "account",
                "%s ledger rows, but there is no such account (account deleted?)",
                rows.rows[i][1]);
    }
    return CTL_EXIT_OK;
}

static int verify_every_account(verify_t *v)
{
    const char *args[1];
    nebula_dbd_rows_t rows;
    apr_int64_t after = 0;
    apr_pool_t *p;
    int i, found, code = CTL_EXIT_OK;

    apr_pool_create(&p, v->ctl->pool);
    do {
        args[0] = ctl_ledger_i64(p, after);
        if ((code = ctl_select_prepared(v->ctl, p, v->st_ids, 1, args, &rows)) !=
            CTL_EXIT_OK) {
            break;
        }
        for (i = 0; i < rows.nrows && code == CTL_EXIT_OK; ++i) {
            after = apr_atoi64(rows.rows[i][0]);
            code = verify_account(v, after, &found);
        }
        apr_pool_clear(p);
    } while (code == CTL_EXIT_OK && rows.nrows == v->o->batch);
    if (code == CTL_EXIT_OK) {
        code = check_orphans(v, p);
    }
    apr_pool_destroy(p);
    return code;
}

static int verify_one_account(verify_t *v)
{
    apr_int64_t id = v->o->account, n = 0;
    int found, code;

    if ((code = verify_account(v, id, &found)) != CTL_EXIT_OK || found) {
        return code;
    }
    if ((code = select_i64(v, v->ctl->pool, v->st_count, id, &n)) != CTL_EXIT_OK) {
        return code;
    }
    if (n == 0) {
        ctl_error("there is no account %" APR_INT64_T_FMT, id);
        return CTL_EXIT_USAGE;
    }
    problem(v, id, NO_SEQ, "account",
            "%" APR_INT64_T_FMT " ledger rows, but there is no such account (account "
            "deleted?)",
            n);
    return CTL_EXIT_OK;
}

static const char *plural(apr_int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

int ctl_ledger_verify(ctl_ledger_opts_t *o)
{
    verify_t v;
    int code;

    memset(&v, 0, sizeof(v));
    v.o = o;
    v.ctl = o->ctl;
    if (o->json) {
        fputs("{\"problems\":[", stdout);
    }
    code = prepare_all(&v);
    if (code == CTL_EXIT_OK) {
        code = o->account ? verify_one_account(&v) : verify_every_account(&v);
    }
    if (o->json) {
        printf("%s],\"accounts\":%" APR_INT64_T_FMT ",\"rows\":%" APR_INT64_T_FMT
               ",\"ok\":%s%s}\n",
               v.problems > 0 ? "\n" : "", v.accounts, v.rows,
               code == CTL_EXIT_OK && v.problems == 0 ? "true" : "false",
               code == CTL_EXIT_OK ? ""
                                   : ",\"error\":\"the verification did not finish\"");
    }
    if (code != CTL_EXIT_OK) {
        if (code == CTL_EXIT_ERROR) {
            ctl_error("the verification did not finish (%" APR_INT64_T_FMT
                      " accounts checked)",
                      v.accounts);
        }
        return CTL_LEDGER_FAILED;
    }
    if (!o->json) {
        printf("verified %" APR_INT64_T_FMT " %s, %" APR_INT64_T_FMT " %s: ", v.accounts,
               plural(v.accounts, "account", "accounts"), v.rows,
               plural(v.rows, "row", "rows"));
        if (v.problems == 0) {
            puts("OK");
        }
        else {
            printf("%" APR_INT64_T_FMT " %s\n", v.problems,
                   plural(v.problems, "problem", "problems"));
        }
    }
    return v.problems == 0 ? CTL_LEDGER_CLEAN : CTL_LEDGER_PROBLEMS;
}

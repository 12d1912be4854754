/* relay_logq.c: the request-log rows the relay writes itself (the requests
 * billing does not settle), written off the request's path.
 *
 * A request used to INSERT its row before it ended: one write transaction
 * per request, on whichever pooled connection it borrowed. With SQLite a
 * write also invalidates the page cache of every other connection, which
 * then reads its pages again (the pread()s at the top of the relay's
 * profile), and writers queue for the database's single write lock. Now a
 * request copies its row into this process's queue and returns; one writer
 * thread per child process drains the queue: every row queued since its
 * last transaction goes into the next one (group commit), on one connection
 * whose cache stays warm, and in the order the requests ended. When fewer
 * than LOGQ_GATHER rows wait, the writer lingers up to LOGQ_LINGER for more:
 * a commit costs about as much as a dozen rows, and a row is seldom read
 * within milliseconds of its answer.
 *
 * What this costs in durability, documented in docs/design-notes.md: a row
 * is in memory until its transaction commits, typically well under a
 * millisecond after the response. A graceful stop or restart writes every
 * queued row (the writer drains the queue before the child's pools go);
 * kill -9 of a child loses the rows queued at that instant. No money rides
 * on these rows: a request billing settles has its row written in the
 * settlement's own transaction. While the database is unreachable the rows
 * wait, up to LOGQ_MAX (beyond it the oldest are dropped, counted in
 * NEB01063), and the writer tries again every second. */
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
#include "relay_private.h"
#include "nebula_ap_db.h"
#include "nebula_ap_reqlog.h"

#define LOGQ_MAX 100000   /* rows held while the database is away */
#define LOGQ_BATCH 256    /* rows per transaction: bounds the write lock's hold */
#define LOGQ_GATHER 64    /* fewer queued: wait up to LOGQ_LINGER for more */
#define LOGQ_LINGER apr_time_from_msec(5)
#define LOGQ_RETRY apr_time_from_sec(1)

typedef struct logq_row_t {
    struct logq_row_t *next;
    server_rec *s;
    nebula_req_t req;
    nebula_reqlog_t log;
    /* the strings follow */
} logq_row_t;

typedef struct {
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    apr_thread_t *thread;
    logq_row_t *head, **tail;
    apr_size_t n;
    apr_size_t dropped;    /* since the last report */
    int stopping;
} logq_t;

static logq_t q;

static apr_size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *put_str(char **at, const char *s)
{
    apr_size_t n = slen(s);
    char *d = *at;

    if (s == NULL) {
        return NULL;
    }
    memcpy(d, s, n);
    *at += n;
    return d;
}

int relay_logq_put(server_rec *s, const nebula_reqlog_t *log)
{
    const nebula_req_t *req = log->req;
    logq_row_t *row, *old = NULL;
    char *at;

    if (q.mu == NULL) {
        return 0;
    }
    row = malloc(sizeof(*row) + slen(req->request_id) + slen(req->model)
                 + slen(req->upstream_model) + slen(req->client_ip) + slen(log->error)
                 + slen(log->end_reason));
    if (row == NULL) {
        return 0;
    }
    row->next = NULL;
    row->s = s;
    memset(&row->req, 0, sizeof(row->req));
    at = (char *)(row + 1);
    /* what nebula_ap_reqlog_insert() reads, nothing that points elsewhere */
    row->req.request_id = put_str(&at, req->request_id);
    row->req.model = put_str(&at, req->model);
    row->req.upstream_model = put_str(&at, req->upstream_model);
    row->req.client_ip = put_str(&at, req->client_ip);
    row->req.key_id = req->key_id;
    row->req.user_id = req->user_id;
    row->req.stream = req->stream;
    row->req.received = req->received;
    row->log = *log;
    row->log.req = &row->req;
    row->log.error = put_str(&at, log->error);
    row->log.end_reason = put_str(&at, log->end_reason);

    apr_thread_mutex_lock(q.mu);
    if (q.stopping) {
        apr_thread_mutex_unlock(q.mu);
        free(row);
        return 0; /* the child is going: the caller writes it itself */
    }
    if (q.n >= LOGQ_MAX) {
        old = q.head;
        if ((q.head = old->next) == NULL) {
            q.tail = &q.head;
        }
        --q.n;
        ++q.dropped;
    }
    *q.tail = row;
    q.tail = &row->next;
    /* the writer waits for a first row, then lingers for LOGQ_GATHER */
    if (++q.n == 1 || q.n == LOGQ_GATHER) {
        apr_thread_cond_signal(q.cv);
    }
    apr_thread_mutex_unlock(q.mu);
    free(old);
    return 1;
}

static void rows_free(logq_row_t *row)
{
    logq_row_t *next;

    for (; row; row = next) {
        next = row->next;
        free(row);
    }
}

/* One by one, in autocommit, after a batch failed on one of its rows (a bad
 * row must not hold back the others): the rows from @a row to @a end are
 * written or logged, and freed; @a end is returned. */
static logq_row_t *write_each(nebula_ap_db_t *db, apr_pool_t *p, logq_row_t *row,
                              logq_row_t *end)
{
    const char *err = NULL;
    logq_row_t *next;

    for (; row != end; row = next) {
        next = row->next;
        if (nebula_ap_reqlog_insert(db, p, &row->log, 0, 0, &err) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, row->s,
                         "NEB01060: cannot write the request log row %s: %s",
                         row->req.request_id, err ? err : "?");
        }
        free(row);
    }
    return end;
}

/* Write the rows from @a row on, a transaction per LOGQ_BATCH rows of one
 * server; the rows not written (no database) are returned, in order. */
static logq_row_t *write_rows(apr_pool_t *p, logq_row_t *row)
{
    while (row) {
        server_rec *s = row->s;
        nebula_ap_db_t *db = nebula_ap_db_open(p, s);
        const char *err = NULL;
        logq_row_t *end = row, *next;
        int n = 0, ok;

        if (db == NULL) {
            return row;
        }
        while (end && end->s == s && n < LOGQ_BATCH) {
            end = end->next;
            ++n;
        }
        if (nebula_ap_db_begin(db, &err) != APR_SUCCESS) {
            nebula_ap_db_close(db);
            return row;
        }
        ok = 1;
        for (next = row; ok && next != end; next = next->next) {
            ok = nebula_ap_reqlog_insert(db, p, &next->log, 0, 0, &err) == APR_SUCCESS;
        }
        if (ok && nebula_ap_db_commit(db, &err) == APR_SUCCESS) {
            for (; row != end; row = next) {
                next = row->next;
                free(row);
            }
        }
        else {
            nebula_ap_db_rollback(db);
            row = write_each(db, p, row, end);
        }
        nebula_ap_db_close(db);
        apr_pool_clear(p);
    }
    return NULL;
}

static void *APR_THREAD_FUNC logq_main(apr_thread_t *thd, void *data)
{
    server_rec *s = data;
    apr_pool_t *p;
    logq_row_t *batch, *rest, *last;
    apr_size_t dropped;

    apr_pool_create(&p, apr_thread_pool_get(thd));
    apr_pool_tag(p, "nebula_logq");
    apr_thread_mutex_lock(q.mu);
    for (;;) {
        while (q.head == NULL && !q.stopping) {
            apr_thread_cond_wait(q.cv, q.mu);
        }
        if (q.head == NULL) {
            break; /* stopping, and everything is written */
        }
        if (q.n < LOGQ_GATHER && !q.stopping) {
            apr_thread_cond_timedwait(q.cv, q.mu, LOGQ_LINGER);
        }
        batch = q.head;
        q.head = NULL;
        q.tail = &q.head;
        q.n = 0;
        dropped = q.dropped;
        q.dropped = 0;
        apr_thread_mutex_unlock(q.mu);

        if (dropped) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB01063: %" APR_SIZE_T_FMT " request log row(s) dropped: "
                         "the database was unreachable and %d were waiting",
                         dropped, LOGQ_MAX);
        }
        rest = write_rows(p, batch);
        apr_pool_clear(p);

        apr_thread_mutex_lock(q.mu);
        if (rest == NULL) {
            continue;
        }
        if (q.stopping) {
            apr_size_t lost = 0;
            for (last = rest; last; last = last->next) {
                ++lost;
            }
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "NEB01064: %" APR_SIZE_T_FMT " request log row(s) not written: "
                         "the database is unreachable and the process is stopping",
                         lost);
            rows_free(rest);
            continue;
        }
        /* the older rows go first again; then wait a while */
        for (last = rest; last->next; last = last->next) {
            ++q.n;
        }
        ++q.n;
        last->next = q.head;
        if (q.head == NULL) {
            q.tail = &last->next;
        }
        q.head = rest;
        apr_thread_cond_timedwait(q.cv, q.mu, LOGQ_RETRY);
    }
    apr_thread_mutex_unlock(q.mu);
    apr_pool_destroy(p);
    /* a plain return, not apr_thread_exit(): pthread_exit() would unwind this
     * frame without its epilogue (under ASan: its stack left poisoned) */
    return NULL;
}

/* Before the child's pools go (a pre-cleanup: the writer's pool is a
 * subpool of pchild, and mod_dbd's pool is still there): write what is
 * queued, then stop the writer. */
static apr_status_t logq_stop(void *data)
{
    apr_status_t rv;

    (void)data;
    apr_thread_mutex_lock(q.mu);
    q.stopping = 1;
    apr_thread_cond_signal(q.cv);
    apr_thread_mutex_unlock(q.mu);
    apr_thread_join(&rv, q.thread);
    q.mu = NULL;
    return APR_SUCCESS;
}

void relay_logq_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (apr_thread_mutex_create(&q.mu, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS
        || apr_thread_cond_create(&q.cv, pchild) != APR_SUCCESS) {
        q.mu = NULL;
        return;
    }
    q.head = NULL;
    q.tail = &q.head;
    if (apr_thread_create(&q.thread, NULL, logq_main, s, pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB01062: no request-log writer thread: each request writes "
                     "its own row");
        q.mu = NULL;
        return;
    }
    apr_pool_pre_cleanup_register(pchild, NULL, logq_stop);
}

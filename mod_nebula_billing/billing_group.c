/* billing_group.c: group commit. Units of billing work that threads of one
 * process want written at the same moment share one transaction.
 *
 * A thread queues its unit and waits. The first waiting thread that finds no
 * leader becomes it: it takes every queued unit (up to GROUP_MAX, oldest
 * first), runs each inside a savepoint of one transaction on one borrowed
 * connection, commits once, and wakes the owners. Units queued meanwhile go
 * to the next leader, which is one of their owners. So an idle gateway runs
 * a lone unit at once, in its own transaction as before, and a busy one
 * pays one BEGIN and one COMMIT (on SQLite: one turn of the write lock and
 * one write of each page the units share) for many.
 *
 * Nothing is weakened: an owner learns its result only after the commit
 * that made it durable. A unit that fails inside the group is undone to its
 * savepoint and then run alone, in its own transaction(s), and that result
 * is final. When the group's transaction itself fails (BEGIN, a savepoint,
 * COMMIT), every unit of it is run alone: units must therefore be safe to
 * run again after a commit whose outcome is unknown, which settlement is
 * (a reservation settles once; the ledger's idempotency key).
 *
 * Units group per server (each its own database) and only on SQLite, where
 * writers take turns on the whole database anyway (group_wanted()). */
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include "billing_private.h"

#define GROUP_MAX 64

struct billing_unit_t {
    billing_unit_fn body;   /* inside the group's transaction */
    billing_alone_fn alone; /* in its own */
    void *baton;
    apr_pool_t *p; /* the owner's: the owner waits while the leader uses it */
    const char *err;
    int rc;
    int state; /* UNIT_QUEUED, UNIT_RUNNING, UNIT_DONE */
    billing_unit_t *next;
};

enum { UNIT_QUEUED, UNIT_RUNNING, UNIT_DONE };

/* One queue per server: a unit is written to its own server's database. */
typedef struct {
    billing_unit_t *head, *tail;
    int leading;
    int grouping; /* GROUP_UNKNOWN until a leader has seen the database */
} group_queue_t;

enum { GROUP_UNKNOWN, GROUP_ON, GROUP_OFF };

/* All under group_mutex. */
static apr_thread_mutex_t *group_mutex;
static apr_thread_cond_t *group_cond;
static apr_hash_t *group_queues; /* server_rec * -> group_queue_t *, in group_pool */
static apr_pool_t *group_pool;

void billing_group_child_init(apr_pool_t *pchild)
{
    group_pool = pchild;
    group_queues = apr_hash_make(pchild);
    if (apr_thread_mutex_create(&group_mutex, APR_THREAD_MUTEX_DEFAULT, pchild)
            != APR_SUCCESS
        || apr_thread_cond_create(&group_cond, pchild) != APR_SUCCESS) {
        group_mutex = NULL; /* every unit runs alone */
    }
}

/* Only SQLite groups: its writers take turns on the whole database anyway,
 * so a group only saves transactions. PostgreSQL and MySQL lock rows: one
 * transaction per settlement lets different accounts' writes proceed side
 * by side, and a group would hold many rows' locks at once, in an order
 * that other processes' groups could cross (a deadlock). */
static int group_wanted(const nebula_ap_db_t *db)
{
    return nebula_ap_db_dialect(db) == NEBULA_DBD_SQLITE;
}

/* Run a taken group: 1 when every unit has its result, 0 when each unit must
 * run alone (the group's transaction failed, or this database does not
 * group: q->grouping is then learnt). */
static int group_txn(server_rec *s, apr_pool_t *tp, group_queue_t *q, billing_unit_t *units,
                     int n)
{
    nebula_ap_db_t *db = nebula_ap_db_open(tp, s);
    const char *err = NULL;
    billing_unit_t *u;
    int ok = 0;

    if (db == NULL) {
        return 0;
    }
    if (q->grouping == GROUP_UNKNOWN) {
        /* written by its leader alone; read by owners under group_mutex */
        apr_thread_mutex_lock(group_mutex);
        q->grouping = group_wanted(db) ? GROUP_ON : GROUP_OFF;
        apr_thread_mutex_unlock(group_mutex);
    }
    if (q->grouping != GROUP_ON || nebula_ap_db_begin(db, &err) != APR_SUCCESS) {
        nebula_ap_db_close(db);
        return 0;
    }
    for (u = units; u; u = u->next) {
        if (nebula_ap_db_mark(db, &err) != APR_SUCCESS) {
            goto lost;
        }
        u->err = NULL;
        u->rc = u->body(db, u->p, u->baton, &u->err);
        if (u->rc == NEBULA_BILLING_OK) {
            if (nebula_ap_db_keep(db, &err) != APR_SUCCESS) {
                goto lost;
            }
            continue;
        }
        if (nebula_ap_db_undo(db, &err) != APR_SUCCESS) {
            goto lost;
        }
        /* copied: the error text lives in the connection's pool */
        u->err = u->err ? apr_pstrdup(u->p, u->err) : NULL;
    }
    ok = nebula_ap_db_commit(db, &err) == APR_SUCCESS;
    nebula_ap_db_close(db);
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, s, "group commit of %d billing writes: %s", n,
                 ok ? "committed" : "failed");
    if (!ok) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "NEB02060: a group of billing writes could not commit (%s); "
                     "each runs alone", err ? err : "unknown");
    }
    return ok;
lost:
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "NEB02061: a group of billing writes lost its transaction (%s); "
                 "each runs alone", err ? err : "unknown");
    nebula_ap_db_rollback(db);
    nebula_ap_db_close(db);
    return 0;
}

/* As leader: run the taken units and publish their results. A unit that
 * failed inside the group (ERROR) runs alone, after the commit. */
static void group_lead(server_rec *s, apr_pool_t *p, group_queue_t *q, billing_unit_t *units,
                       int n)
{
    billing_unit_t *u;
    apr_pool_t *tp;
    int ok = 0;

    if (apr_pool_create(&tp, p) == APR_SUCCESS) {
        ok = group_txn(s, tp, q, units, n);
        apr_pool_destroy(tp);
    }
    for (u = units; u; u = u->next) {
        if (!ok || u->rc == NEBULA_BILLING_ERROR) {
            u->err = NULL;
            u->rc = u->alone(s, u->p, u->baton, &u->err);
        }
    }
    apr_thread_mutex_lock(group_mutex);
    for (u = units; u; u = u->next) {
        u->state = UNIT_DONE;
    }
    apr_thread_cond_broadcast(group_cond);
    apr_thread_mutex_unlock(group_mutex);
}

int billing_group_run(server_rec *s, apr_pool_t *p, billing_unit_fn body,
                      billing_alone_fn alone, void *baton, const char **err)
{
    billing_unit_t me, *units, *u;
    group_queue_t *q;
    int n;

    if (group_mutex == NULL) {
        return alone(s, p, baton, err);
    }
    apr_thread_mutex_lock(group_mutex);
    q = apr_hash_get(group_queues, &s, sizeof(s));
    if (q == NULL) {
        q = apr_pcalloc(group_pool, sizeof(*q));
        apr_hash_set(group_queues, apr_pmemdup(group_pool, &s, sizeof(s)), sizeof(s), q);
    }
    if (q->grouping == GROUP_OFF) {
        apr_thread_mutex_unlock(group_mutex);
        return alone(s, p, baton, err);
    }
    memset(&me, 0, sizeof(me));
    me.body = body;
    me.alone = alone;
    me.baton = baton;
    me.p = p;
    me.state = UNIT_QUEUED;
    if (q->tail) {
        q->tail->next = &me;
    }
    else {
        q->head = &me;
    }
    q->tail = &me;
    while (me.state != UNIT_DONE) {
        if (q->leading || me.state != UNIT_QUEUED) {
            apr_thread_cond_wait(group_cond, group_mutex);
            continue;
        }
        /* lead: take the queue's first GROUP_MAX units. Ours is among
         * them, or else in a later turn of this loop. */
        q->leading = 1;
        units = q->head;
        for (u = units, n = 1; n < GROUP_MAX && u->next; u = u->next, ++n) {
            u->state = UNIT_RUNNING;
        }
        u->state = UNIT_RUNNING;
        q->head = u->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        u->next = NULL;
        apr_thread_mutex_unlock(group_mutex);
        group_lead(s, p, q, units, n);
        apr_thread_mutex_lock(group_mutex);
        q->leading = 0;
        /* the next queued owner leads */
        apr_thread_cond_broadcast(group_cond);
    }
    apr_thread_mutex_unlock(group_mutex);
    *err = me.err;
    return me.rc;
}

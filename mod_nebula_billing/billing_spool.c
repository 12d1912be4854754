/* billing_spool.c: settlements kept on local disk while the database is
 * unreachable, replayed when it returns.
 *
 * The spool is one file of JSON lines (NebulaBillingSpool). A writer takes
 * the file's exclusive lock, appends one line, fsyncs and lets go, so every
 * record is on disk before the request that produced it ends. The
 * scheduler replays it under the same lock: each record is settled (an
 * idempotent operation: the reservation's state and the ledger's
 * "consume:<request id>" key make a second replay change nothing), the
 * records that still fail are written back, the rest are dropped. A crash in
 * the middle of a replay therefore only replays some records twice, which
 * changes nothing. */
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "billing_private.h"

#define SPOOL_MAX_BYTES (64 * 1024 * 1024)

/* File locks (fcntl) exclude other processes only: threads of this process
 * also take this mutex, so that a replay can never truncate away a line a
 * sibling thread appended after the replay read the file. */
static apr_thread_mutex_t *spool_mutex;

void billing_spool_child_init(apr_pool_t *pchild)
{
    apr_thread_mutex_create(&spool_mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
}

static void spool_lock(void)
{
    if (spool_mutex) {
        apr_thread_mutex_lock(spool_mutex);
    }
}

static void spool_unlock(void)
{
    if (spool_mutex) {
        apr_thread_mutex_unlock(spool_mutex);
    }
}

apr_status_t billing_spool_write(server_rec *s, apr_pool_t *p, const char *json_line)
{
    const billing_srv_conf_t *conf = billing_config_srv(s);
    apr_file_t *f;
    apr_status_t rv;
    apr_size_t len;
    const char *line = apr_pstrcat(p, json_line, "\n", NULL);

    spool_lock();
    rv = apr_file_open(&f, conf->spool,
                       APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_APPEND,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv != APR_SUCCESS) {
        spool_unlock();
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "NEB02040: cannot open the billing spool %s",
                     conf->spool);
        return rv;
    }
    if ((rv = apr_file_lock(f, APR_FLOCK_EXCLUSIVE)) == APR_SUCCESS) {
        len = strlen(line);
        rv = apr_file_write_full(f, line, len, NULL);
        if (rv == APR_SUCCESS) {
            rv = apr_file_sync(f);
        }
        apr_file_unlock(f);
    }
    apr_file_close(f);
    spool_unlock();
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB02041: cannot write to the billing spool %s", conf->spool);
    }
    return rv;
}

int billing_spool_replay(server_rec *s, apr_pool_t *p)
{
    const billing_srv_conf_t *conf = billing_config_srv(s);
    apr_pool_t *tmp;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_off_t zero = 0;
    char *buf, *line, *next;
    apr_size_t len;
    const char *keep = "";
    int n = 0, kept = 0;

    spool_lock();
    rv = apr_file_open(&f, conf->spool, APR_FOPEN_READ | APR_FOPEN_WRITE,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        spool_unlock();
        return 0; /* no spool: nothing was ever spooled here */
    }
    if (apr_file_lock(f, APR_FLOCK_EXCLUSIVE | APR_FLOCK_NONBLOCK) != APR_SUCCESS) {
        apr_file_close(f); /* a writer or another replay has it: next pass */
        spool_unlock();
        return 0;
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS || fi.size == 0) {
        goto out;
    }
    if (fi.size > SPOOL_MAX_BYTES) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "NEB02042: the billing spool %s is %" APR_OFF_T_FMT " bytes; replaying "
                     "its first %d MiB", conf->spool, fi.size, SPOOL_MAX_BYTES >> 20);
    }
    len = (apr_size_t)(fi.size > SPOOL_MAX_BYTES ? SPOOL_MAX_BYTES : fi.size);
    buf = apr_palloc(p, len + 1);
    if (apr_file_read_full(f, buf, len, &len) != APR_SUCCESS) {
        goto out;
    }
    buf[len] = '\0';
    apr_pool_create(&tmp, p);
    for (line = buf; line && *line; line = next) {
        if ((next = strchr(line, '\n')) != NULL) {
            *next++ = '\0';
        }
        else if (fi.size > SPOOL_MAX_BYTES) {
            keep = apr_pstrcat(p, keep, line, NULL); /* a line cut by the limit */
            break;
        }
        if (!*line) {
            continue;
        }
        if (billing_reserve_settle_record(s, tmp, line) == NEBULA_BILLING_ERROR) {
            keep = apr_pstrcat(p, keep, line, "\n", NULL);
            ++kept;
        }
        else {
            ++n;
        }
        apr_pool_clear(tmp);
    }
    apr_pool_destroy(tmp);
    if (fi.size > SPOOL_MAX_BYTES) { /* keep what was not read */
        apr_off_t off = (apr_off_t)len;
        apr_size_t rest = (apr_size_t)(fi.size - off), got = 0;
        char *tail = apr_palloc(p, rest + 1);

        if (apr_file_seek(f, APR_SET, &off) == APR_SUCCESS
            && apr_file_read_full(f, tail, rest, &got) == APR_SUCCESS) {
            tail[got] = '\0';
            keep = apr_pstrcat(p, keep, tail, NULL);
        }
    }
    /* rewrite the file with what is left, then sync */
    if ((rv = apr_file_trunc(f, 0)) == APR_SUCCESS
        && (rv = apr_file_seek(f, APR_SET, &zero)) == APR_SUCCESS) {
        if (*keep) {
            rv = apr_file_write_full(f, keep, strlen(keep), NULL);
        }
        if (rv == APR_SUCCESS) {
            rv = apr_file_sync(f);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "NEB02043: cannot rewrite the billing spool %s (records replayed "
                     "already will be replayed again, which changes nothing)", conf->spool);
    }
    if (n || kept) {
        ap_log_error(APLOG_MARK, kept ? APLOG_WARNING : APLOG_NOTICE, 0, s,
                     "NEB02044: billing spool: %d settlement(s) replayed, %d kept for the "
                     "next pass", n, kept);
    }
out:
    apr_file_unlock(f);
    apr_file_close(f);
    spool_unlock();
    return n;
}

/* billing_idem.c: the client's Idempotency-Key on relay requests.
 *
 * The key is scoped to the paying account (a user's or organisation's
 * wallet) and bound to a fingerprint of the request (method, path, body).
 * The first request claims (account, key) with an insert that only one can
 * win; its response is captured by an output filter and stored when the
 * filter sees its end (EOS), before the last bytes reach the client: a
 * client retrying at once finds the outcome, not a running claim
 * (log_transaction stores it when no EOS came). Later requests with the same key:
 *   - same fingerprint, first one finished: the stored outcome is replayed
 *     (status, Content-Type, body; "Idempotent-Replayed: true"), nothing is
 *     relayed or charged;
 *   - same fingerprint, first one still running: 409;
 *   - another fingerprint: 422.
 * Outcomes that cost nothing and may succeed on a retry (5xx, 429 and
 * 408 without a charge) are not kept: the claim is dropped so that the
 * client can retry with the same key. Records live NebulaIdempotencyTTL
 * (24 h); a claim whose process died is taken over once it is older than
 * NebulaReservationTTL. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include "billing_private.h"
#include "nebula_crypto.h"

#define IDEM_FILTER "NEBULA_IDEMPOTENCY"
#define IDEM_MAX_KEY 255

typedef struct {
    apr_int64_t account_id;
    const char *key;
    const char *rid;
    char *buf;
    apr_size_t len, cap, max;
    int overflow;
    int recorded; /* idem_store() ran */
} idem_ctx_t;

static void idem_store(request_rec *r, idem_ctx_t *ctx);

/* The capturing filter: copies what is sent (up to the limit) and passes
 * everything on untouched. */
static apr_status_t idem_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    idem_ctx_t *ctx = f->ctx;
    apr_bucket *b;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb) && !ctx->overflow;
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t n;

        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
            ctx->overflow = 1;
            break;
        }
        if (ctx->len + n > ctx->max || memchr(data, '\0', n) != NULL) {
            ctx->overflow = 1;
            break;
        }
        if (ctx->len + n + 1 > ctx->cap) {
            apr_size_t cap = ctx->cap ? ctx->cap : 4096;
            char *nb;

            while (cap < ctx->len + n + 1) {
                cap *= 2;
            }
            nb = apr_palloc(f->r->pool, cap);
            if (ctx->len) {
                memcpy(nb, ctx->buf, ctx->len);
            }
            ctx->buf = nb;
            ctx->cap = cap;
        }
        memcpy(ctx->buf + ctx->len, data, n);
        ctx->len += n;
    }
    if (!ctx->recorded && !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
        idem_store(f->r, ctx); /* the settlement (relay_log.c) came before */
    }
    return ap_pass_brigade(f->next, bb);
}

/* A key is 1..255 visible ASCII characters. */
static int key_ok(const char *k)
{
    apr_size_t n = 0;

    for (; *k; ++k, ++n) {
        if (*k < 0x21 || *k > 0x7e || n >= IDEM_MAX_KEY) {
            return 0;
        }
    }
    return n > 0;
}

static int replay(request_rec *r, nebula_dbd_rows_t *rows)
{
    const char *ctype = rows->rows[0][3], *body = rows->rows[0][4];
    int status = (int)nebula_ap_db_int(rows, 0, 2);

    apr_table_setn(r->headers_out, "Idempotent-Replayed", "true");
    if (nebula_ap_db_int(rows, 0, 8) || body == NULL) { /* not kept: too large */
        return nebula_ap_error(r, HTTP_CONFLICT, "invalid_request_error",
                               "idempotency_response_unavailable", NULL,
                               "A request with this Idempotency-Key was completed (HTTP %d) "
                               "but its response was too large to keep; it is not repeated.",
                               status);
    }
    r->status = status;
    if (ctype && *ctype) {
        ap_set_content_type(r, apr_pstrdup(r->pool, ctype));
    }
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rwrite(body, (int)strlen(body), r);
    }
    return DONE;
}

static int nebula_billing_idempotency(request_rec *r, const nebula_req_t *req, const char *key,
                                      const char *body, apr_size_t len)
{
    const billing_srv_conf_t *conf = billing_config_srv(r->server);
    apr_pool_t *p = r->pool;
    nebula_ap_db_t *db;
    nebula_dbd_rows_t rows;
    const char *args[7], *err = NULL, *hash, *ins, *fp;
    apr_int64_t now = billing_now_ms(), account_id = 0, org_id;
    idem_ctx_t *ctx;
    int affected = 0, tries;

    if (!key_ok(key)) {
        return nebula_ap_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                               "invalid_idempotency_key", NULL,
                               "Idempotency-Key must be 1 to %d visible ASCII characters.",
                               IDEM_MAX_KEY);
    }
    /* the fingerprint covers the body's bytes: uploads carry NULs */
    fp = apr_pstrcat(p, r->method, " ", r->uri, "\n", NULL);
    {
        apr_size_t flen = strlen(fp);
        char *all = apr_palloc(p, flen + len + 1);

        memcpy(all, fp, flen);
        memcpy(all + flen, body, len);
        hash = nebula_crypto_sha256_hex(p, all, flen + len);
    }
    if (hash == NULL || (db = nebula_ap_db_open(p, r->server)) == NULL) {
        goto unavailable;
    }
    args[0] = billing_i64(p, req->user_id);
    if (nebula_ap_db_select(db, "billing_idem_org",
                            "SELECT COALESCE(org_id, 0) FROM users WHERE id = %lld", 1, args,
                            &rows, &err)
            != APR_SUCCESS
        || rows.nrows != 1) {
        goto fail;
    }
    org_id = nebula_ap_db_int(&rows, 0, 0);
    if (billing_account_id(db, p, org_id ? "org" : "user", org_id ? org_id : req->user_id,
                           "quota", 1, &account_id, &err)
        != NEBULA_BILLING_OK) {
        goto fail;
    }
    switch (nebula_ap_db_dialect(db)) {
    case NEBULA_DBD_PGSQL:
        ins = "INSERT INTO idempotency_keys (account_id, idem_key, body_hash, state, "
              "request_id, created_at, expires_at) VALUES (%lld, %s, %s, 'running', %s, %lld, "
              "%lld) ON CONFLICT (account_id, idem_key) DO NOTHING";
        break;
    case NEBULA_DBD_MYSQL:
        ins = "INSERT IGNORE INTO idempotency_keys (account_id, idem_key, body_hash, state, "
              "request_id, created_at, expires_at) VALUES (%lld, %s, %s, 'running', %s, %lld, "
              "%lld)";
        break;
    default:
        ins = "INSERT OR IGNORE INTO idempotency_keys (account_id, idem_key, body_hash, state, "
              "request_id, created_at, expires_at) VALUES (%lld, %s, %s, 'running', %s, %lld, "
              "%lld)";
    }
    for (tries = 0; tries < 2; ++tries) {
        args[0] = billing_i64(p, account_id);
        args[1] = key;
        args[2] = hash;
        args[3] = req->request_id;
        args[4] = billing_i64(p, now);
        args[5] = billing_i64(p, now + apr_time_as_msec(conf->idem_ttl));
        if (nebula_ap_db_exec(db, "billing_idem_claim", ins, 6, args, &affected, &err)
            != APR_SUCCESS) {
            goto fail;
        }
        if (affected == 1) {
            break; /* ours */
        }
        if (nebula_ap_db_select(db, "billing_idem_get",
                                "SELECT body_hash, state, status, COALESCE(content_type, ''), "
                                "COALESCE(response, ''), expires_at, created_at, request_id, "
                                "CASE WHEN response IS NULL THEN 1 ELSE 0 END FROM "
                                "idempotency_keys WHERE account_id = %lld AND idem_key = %s",
                                2, args, &rows, &err)
            != APR_SUCCESS) {
            goto fail;
        }
        if (rows.nrows == 0) {
            continue; /* purged meanwhile: claim again */
        }
        if (nebula_ap_db_int(&rows, 0, 5) < now) {
            /* expired: forget it and claim again */
            args[2] = billing_i64(p, now);
            if (nebula_ap_db_exec(db, "billing_idem_drop_expired",
                                  "DELETE FROM idempotency_keys WHERE account_id = %lld AND "
                                  "idem_key = %s AND expires_at < %lld",
                                  3, args, NULL, &err)
                != APR_SUCCESS) {
                goto fail;
            }
            continue;
        }
        if (strcmp(rows.rows[0][0], hash) != 0) {
            nebula_ap_db_close(db);
            return nebula_ap_error(r, HTTP_UNPROCESSABLE_ENTITY, "invalid_request_error",
                                   "idempotency_key_reused", NULL,
                                   "This Idempotency-Key was used with a different request; "
                                   "use a new key for a new request.");
        }
        if (strcmp(rows.rows[0][1], "done") == 0) {
            int rc = replay(r, &rows);
            nebula_ap_db_close(db);
            return rc;
        }
        if (nebula_ap_db_int(&rows, 0, 6) + apr_time_as_msec(conf->reservation_ttl) < now) {
            /* its process died: take the claim over */
            args[2] = req->request_id;
            args[3] = billing_i64(p, now);
            args[4] = rows.rows[0][7];
            args[5] = billing_i64(p, account_id);
            args[6] = key;
            if (nebula_ap_db_exec(db, "billing_idem_takeover",
                                  "UPDATE idempotency_keys SET request_id = %s, created_at = "
                                  "%lld WHERE request_id = %s AND account_id = %lld AND "
                                  "idem_key = %s AND state = 'running'",
                                  5, args + 2, &affected, &err)
                != APR_SUCCESS) {
                goto fail;
            }
            if (affected == 1) {
                break;
            }
        }
        nebula_ap_db_close(db);
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return nebula_ap_error(r, HTTP_CONFLICT, "invalid_request_error",
                               "idempotency_key_in_use", NULL,
                               "A request with this Idempotency-Key is still being processed; "
                               "retry later to get its result.");
    }
    nebula_ap_db_close(db);
    if (affected != 1) {
        goto unavailable;
    }
    ctx = apr_pcalloc(p, sizeof(*ctx));
    ctx->account_id = account_id;
    ctx->key = key;
    ctx->rid = req->request_id;
    ctx->max = (apr_size_t)conf->idem_max_body;
    ap_set_module_config(r->request_config, &nebula_billing_module, ctx);
    ap_add_output_filter(IDEM_FILTER, ctx, r, r->connection);
    return OK;
fail:
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "NEB02050: Idempotency-Key store unavailable: %s", err ? err : "");
    nebula_ap_db_close(db);
unavailable:
    apr_table_setn(r->err_headers_out, "Retry-After", "1");
    return nebula_ap_error(r, HTTP_SERVICE_UNAVAILABLE, "server_error",
                           "idempotency_unavailable", NULL,
                           "Idempotency-Key cannot be honoured right now; retry shortly.");
}

/* Keep the outcome, or drop the claim (once). */
static void idem_store(request_rec *r, idem_ctx_t *ctx)
{
    nebula_ap_db_t *db;
    const char *args[7], *err = NULL;
    int billed, keep;

    ctx->recorded = 1;
    billed = apr_table_get(r->notes, NEBULA_BILLING_NOTE_BILLED) != NULL;
    keep = billed || (r->status < 500 && r->status != HTTP_TOO_MANY_REQUESTS
                      && r->status != HTTP_REQUEST_TIME_OUT);
    if ((db = nebula_ap_db_open(r->pool, r->server)) == NULL) {
        return; /* the claim ages out and is taken over */
    }
    if (keep) {
        if (ctx->buf) {
            ctx->buf[ctx->len] = '\0';
        }
        args[0] = billing_i64(r->pool, r->status);
        args[1] = r->content_type;
        args[2] = ctx->overflow ? NULL : (ctx->buf ? ctx->buf : "");
        args[3] = billing_i64(r->pool, ctx->account_id);
        args[4] = ctx->key;
        args[5] = ctx->rid;
        if (nebula_ap_db_exec(db, "billing_idem_done",
                              "UPDATE idempotency_keys SET state = 'done', status = %lld, "
                              "content_type = %s, response = %s WHERE account_id = %lld AND "
                              "idem_key = %s AND request_id = %s",
                              6, args, NULL, &err)
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "NEB02051: cannot store the outcome of Idempotency-Key request %s: "
                          "%s", ctx->rid, err);
        }
    }
    else {
        args[0] = billing_i64(r->pool, ctx->account_id);
        args[1] = ctx->key;
        args[2] = ctx->rid;
        if (nebula_ap_db_exec(db, "billing_idem_forget",
                              "DELETE FROM idempotency_keys WHERE account_id = %lld AND "
                              "idem_key = %s AND request_id = %s AND state = 'running'",
                              3, args, NULL, &err)
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "NEB02052: cannot drop the Idempotency-Key claim of request %s: %s",
                          ctx->rid, err);
        }
    }
    nebula_ap_db_close(db);
}

/* log_transaction: the outcome of a request whose filter saw no EOS. */
static int idem_record(request_rec *r)
{
    idem_ctx_t *ctx = ap_get_module_config(r->request_config, &nebula_billing_module);

    if (ctx != NULL && !r->main && !ctx->recorded) {
        idem_store(r, ctx);
    }
    return DECLINED;
}

int billing_idem_purge(server_rec *s, apr_pool_t *p, apr_int64_t now_ms)
{
    nebula_ap_db_t *db;
    const char *args[1], *err = NULL;
    int affected = 0;

    if ((db = nebula_ap_db_open(p, s)) == NULL) {
        return 0;
    }
    args[0] = billing_i64(p, now_ms);
    if (nebula_ap_db_exec(db, "billing_idem_purge",
                          "DELETE FROM idempotency_keys WHERE expires_at < %lld", 1, args,
                          &affected, &err)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "NEB02053: cannot purge expired Idempotency-Key records: %s", err);
    }
    nebula_ap_db_close(db);
    return affected;
}

void billing_idem_register(void)
{
    APR_REGISTER_OPTIONAL_FN(nebula_billing_idempotency);
    ap_register_output_filter(IDEM_FILTER, idem_filter, NULL, AP_FTYPE_RESOURCE);
    ap_hook_log_transaction(idem_record, NULL, NULL, APR_HOOK_MIDDLE);
}

/* relay_test.c: a channel test: one small chat request through one channel
 * (any of its usable keys, whatever its breaker says), timed. A channel that
 * was auto-disabled and passes is enabled again; every test records its
 * response time. Used by POST /api/channels/{id}/test. */
#include <apr_strings.h>
#include <http_protocol.h>
#include "relay_private.h"
#include "relay_health.h"
#include "relay_admin.h"

static const relay_chkey_t *test_key(const relay_channel_t *ch)
{
    int i;

    for (i = 0; i < ch->keys->nelts; ++i) {
        const relay_chkey_t *k = &APR_ARRAY_IDX(ch->keys, i, relay_chkey_t);
        if (k->enabled && k->secret) {
            return k;
        }
    }
    return NULL;
}

/* Store the outcome; re-enable an auto-disabled channel that passed. */
static void record(request_rec *r, const relay_channel_t *ch, int ok, apr_int64_t ms)
{
    const char *err = NULL, *args[3];
    nebula_ap_db_t *db = nebula_ap_db_open(r->pool, r->server);

    if (db == NULL) {
        return;
    }

    args[0] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, ms);
    args[1] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, apr_time_as_msec(apr_time_now()));
    args[2] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, ch->id);
    nebula_ap_db_exec(db, "relay_test_record",
                      "UPDATE channels SET response_ms = %lld, tested_at = %lld WHERE id = %lld",
                      3, args, NULL, &err);
    if (ok && !strcmp(ch->status, "auto_disabled")) {
        args[0] = args[1];
        args[1] = args[2];
        if (nebula_ap_db_exec(db, "relay_test_enable",
                              "UPDATE channels SET status = 'enabled', status_reason = NULL, "
                              "status_changed_at = %lld WHERE id = %lld",
                              2, args, NULL, &err) == APR_SUCCESS
            && relay_abilities_rebuild(db, r->pool, ch->id, &err) == APR_SUCCESS) {
            int i;
            relay_health_reset(ch->id, RELAY_HEALTH_CHANNEL);
            for (i = 0; i < ch->keys->nelts; ++i) {
                relay_health_reset(ch->id, i);
            }
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          "NEB01070: channel %" APR_INT64_T_FMT " (%s) passed its test and "
                          "is enabled again", ch->id, ch->name);
        }
    }
    nebula_ap_db_close(db);
    relay_gen_bump();
}

/* One exchange; fills @a out with what happened. */
static int run(relay_ctx_t *ctx, const relay_channel_t *ch, const relay_chkey_t *key,
               json_t *out)
{
    relay_outbound_t ob;
    relay_upstream_t *up;
    apr_table_t *headers;
    int rc, status = 0, definitive = 0;

    ctx->chkey = key; /* relay_openai_error_body() masks it in an echo */
    ctx->req.upstream_model = relay_channel_map_model(ctx->r, ch, ctx->req.model);
    if (relay_proto_outbound(ctx, ch, key, ctx->req.upstream_model, &ob) != OK) {
        json_object_set_new(out, "message", json_string(ctx->error ? ctx->error : ""));
        return 0;
    }
    {
        relay_exchange_t x = {ob.url, apr_time_from_sec(30), "POST", ch->proxy, 0,
                              ob.headers, ob.body, ob.len};
        rc = relay_upstream_exchange(ctx->r, &x, &up, &status, &headers);
    }
    if (rc == HTTP_FORBIDDEN) { /* refused by the SSRF check: the admin sees why */
        json_object_set_new(out, "message",
                            json_string(apr_pstrcat(ctx->r->pool, "the upstream address is "
                                                    "not allowed (NebulaUpstreamAllow): ",
                                                    apr_table_get(ctx->r->notes,
                                                                  RELAY_NOTE_SSRF),
                                                    NULL)));
        return 0;
    }
    if (rc != OK) {
        json_object_set_new(out, "message", json_string(rc == HTTP_GATEWAY_TIME_OUT
                                                            ? "the upstream did not answer"
                                                            : "the upstream could not be "
                                                              "reached"));
        return 0;
    }
    json_object_set_new(out, "status", json_integer(status));
    if (status >= 300) {
        relay_openai_error_body(ctx, up, status, &definitive);
        json_object_set_new(out, "message", json_string(ctx->error ? ctx->error : ""));
        return 0;
    }
    relay_upstream_close(up, 1); /* the answer itself is not needed */
    return 1;
}

json_t *relay_channel_test(request_rec *r, apr_int64_t id, const char *model,
                           int *http_status)
{
    relay_ctx_t *ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    relay_snapshot_t *snap = relay_channel_snapshot(r);
    const relay_channel_t *ch = snap ? relay_channel_by_id(snap, id) : NULL;
    const relay_chkey_t *key;
    apr_time_t t0;
    json_t *out;
    int ok;

    *http_status = HTTP_OK;
    if (ch == NULL || (key = test_key(ch)) == NULL) {
        *http_status = ch ? HTTP_CONFLICT : HTTP_NOT_FOUND;
        return NULL;
    }
    ctx->r = r;
    ctx->route = relay_route_chat();
    ctx->req.request_id = "channel-test";
    ctx->req.model = model ? model
                     : ch->test_model ? ch->test_model
                     : ch->models->nelts ? APR_ARRAY_IDX(ch->models, 0, const char *)
                                         : "gpt-4o-mini";
    ctx->body = nebula_json_own(r->pool, json_pack("{s:s, s:[{s:s, s:s}], s:i}", "model",
                                                   ctx->req.model, "messages", "role",
                                                   "user", "content", "hi", "max_tokens", 16));
    ctx->chat = ctx->body;
    out = nebula_json_own(r->pool, json_object());
    t0 = apr_time_now();
    ok = run(ctx, ch, key, out);
    json_object_set_new(out, "ok", json_boolean(ok));
    json_object_set_new(out, "channel_id", json_integer(id));
    json_object_set_new(out, "model", json_string(ctx->req.model));
    json_object_set_new(out, "upstream_model", json_string(ctx->req.upstream_model));
    json_object_set_new(out, "latency_ms",
                        json_integer(apr_time_as_msec(apr_time_now() - t0)));
    json_object_set_new(out, "reenabled",
                        json_boolean(ok && !strcmp(ch->status, "auto_disabled")));
    record(r, ch, ok, apr_time_as_msec(apr_time_now() - t0));
    return json_incref(out);
}

/* billing_caps.c: finer quotas: a cap per model and per route on a key, a
 * user or a plan ("100k tokens a day of gpt-4o", "50 image calls a month"),
 * enforced at reserve time.
 *
 * usage_caps holds the caps; usage_counters one row per (cap, period start)
 * with what was used. Reserve adds the worst case to every cap that applies
 * with a conditional update (used + hold <= limit: the affected-row count
 * decides, as for balances) inside the reserve transaction; settle and
 * release correct each counter by (actual - hold). The holds travel with the
 * reservation (reservations.caps, JSON), so a spooled settlement or a
 * reclaimed hold corrects the same counters. Periods are calendar days,
 * ISO weeks (Monday) and months in the configured time zone. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "billing_private.h"
#include "billing_sched.h"

/* The route name caps use for each protocol. */
static const char *route_name(nebula_proto_e proto)
{
    switch (proto) {
    case NEBULA_PROTO_OPENAI_CHAT: return "chat";
    case NEBULA_PROTO_OPENAI_COMPLETIONS: return "completions";
    case NEBULA_PROTO_OPENAI_EMBEDDINGS: return "embeddings";
    case NEBULA_PROTO_OPENAI_MODERATIONS: return "moderations";
    case NEBULA_PROTO_OPENAI_RESPONSES: return "responses";
    case NEBULA_PROTO_OPENAI_IMAGES: return "images";
    case NEBULA_PROTO_OPENAI_AUDIO: return "audio";
    case NEBULA_PROTO_OPENAI_REALTIME: return "realtime";
    case NEBULA_PROTO_ANTHROPIC_MESSAGES: return "messages";
    case NEBULA_PROTO_GEMINI: return "gemini";
    case NEBULA_PROTO_RERANK: return "rerank";
    default: return "other";
    }
}

const char *billing_caps_route(nebula_proto_e proto)
{
    return route_name(proto);
}

apr_int64_t billing_caps_period_start(const char *period, apr_int64_t now_ms)
{
    billing_period_t bp;
    apr_int64_t start = 0, end = 0;

    /* a cap's period is a calendar period, as a plan's (billing_period.c) */
    if (billing_period_parse(&bp, period, 0, "calendar") != 0
        || billing_period_at(&bp, 0, now_ms, &start, &end) != 0) {
        return 0;
    }
    return start;
}

/* What a request counts in a cap's metric. */
static apr_int64_t amount(const char *metric, const nebula_usage_t *u, apr_int64_t cost_q,
                          apr_int64_t calls)
{
    if (strcmp(metric, "requests") == 0) {
        return calls < 1 ? 1 : calls;
    }
    return billing_in_unit(metric, u, cost_q);
}

int billing_caps_reserve(nebula_ap_db_t *db, request_rec *r, const nebula_req_t *req,
                         const nebula_usage_t *worst, apr_int64_t cost_q,
                         const char **caps_json, const char **err)
{
    apr_pool_t *p = r->pool;
    apr_int64_t now = billing_now_ms();
    nebula_dbd_rows_t rows;
    const char *args[6], *ins;
    json_t *held;
    int i, affected;

    *caps_json = NULL;
    args[0] = req->model ? req->model : "";
    args[1] = route_name(req->proto);
    args[2] = billing_i64(p, req->key_id);
    args[3] = billing_i64(p, req->user_id);
    args[4] = args[2];
    args[5] = args[3];
    if (nebula_ap_db_select(
            db, "billing_caps_of",
            "SELECT c.id, c.metric, c.period, c.cap_limit FROM usage_caps c WHERE (c.model = "
            "'*' OR c.model = %s) AND (c.route = '*' OR c.route = %s) AND ((c.subject_kind = "
            "'key' AND c.subject_id = %lld) OR (c.subject_kind = 'user' AND c.subject_id = "
            "%lld) OR (c.subject_kind = 'plan' AND c.subject_id IN (SELECT s.plan_id FROM "
            "subscriptions s WHERE s.status = 'active' AND ((s.subject_kind = 'key' AND "
            "s.subject_id = %lld) OR (s.subject_kind = 'user' AND s.subject_id = %lld))))) "
            "ORDER BY c.id",
            6, args, &rows, err)
        != APR_SUCCESS) {
        return NEBULA_BILLING_ERROR;
    }
    if (rows.nrows == 0) {
        return NEBULA_BILLING_OK;
    }
    switch (nebula_ap_db_dialect(db)) {
    case NEBULA_DBD_PGSQL:
        ins = "INSERT INTO usage_counters (cap_id, period_start, used) VALUES (%lld, %lld, 0) "
              "ON CONFLICT (cap_id, period_start) DO NOTHING";
        break;
    case NEBULA_DBD_MYSQL:
        ins = "INSERT IGNORE INTO usage_counters (cap_id, period_start, used) VALUES (%lld, "
              "%lld, 0)";
        break;
    default:
        ins = "INSERT OR IGNORE INTO usage_counters (cap_id, period_start, used) VALUES (%lld, "
              "%lld, 0)";
    }
    held = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        const char *metric = rows.rows[i][1];
        apr_int64_t start = billing_caps_period_start(rows.rows[i][2], now);
        apr_int64_t hold = amount(metric, worst, cost_q, req->calls);

        /* (SQLite compares a bare text parameter as text: keep every
         * parameter inside arithmetic) */
        args[0] = rows.rows[i][0];
        args[1] = billing_i64(p, start);
        args[2] = billing_i64(p, hold);
        args[3] = args[0];
        args[4] = args[1];
        args[5] = rows.rows[i][3];
        affected = 0;
        if (nebula_ap_db_exec(db, "billing_caps_row", ins, 2, args, NULL, err) != APR_SUCCESS
            || nebula_ap_db_exec(db, "billing_caps_hold",
                                 "UPDATE usage_counters SET used = used + %lld WHERE cap_id = "
                                 "%lld AND period_start = %lld AND used + %lld - %lld <= 0",
                                 5, (const char *[]){args[2], args[3], args[4], args[2],
                                                     args[5]},
                                 &affected, err)
                   != APR_SUCCESS) {
            json_decref(held);
            return NEBULA_BILLING_ERROR;
        }
        if (affected == 0) {
            *err = apr_psprintf(p, "usage cap %s (%s %s per %s) is reached", rows.rows[i][0],
                                rows.rows[i][3], metric, rows.rows[i][2]);
            json_decref(held);
            return NEBULA_BILLING_INSUFFICIENT;
        }
        json_array_append_new(held, json_pack("[I,I,I,s]", (json_int_t)nebula_ap_db_int(&rows, i, 0),
                                              (json_int_t)start, (json_int_t)hold, metric));
    }
    {
        char *t = json_dumps(held, JSON_COMPACT);
        *caps_json = t ? apr_pstrdup(p, t) : NULL;
        free(t);
    }
    json_decref(held);
    return NEBULA_BILLING_OK;
}

int billing_caps_correct(nebula_ap_db_t *db, apr_pool_t *p, const char *caps_json,
                         const nebula_usage_t *actual, apr_int64_t cost_q, apr_int64_t calls,
                         const char **err)
{
    json_t *held, *c;
    size_t i;
    int rc = NEBULA_BILLING_OK;

    if (caps_json == NULL || !*caps_json) {
        return NEBULA_BILLING_OK;
    }
    if ((held = json_loads(caps_json, 0, NULL)) == NULL) {
        *err = "unreadable cap holds";
        return NEBULA_BILLING_ERROR;
    }
    json_array_foreach(held, i, c)
    {
        const char *metric = json_string_value(json_array_get(c, 3));
        apr_int64_t used = actual && metric ? amount(metric, actual, cost_q, calls) : 0;
        const char *args[3];

        args[0] = billing_i64(p, used - (apr_int64_t)json_integer_value(json_array_get(c, 2)));
        args[1] = billing_i64(p, (apr_int64_t)json_integer_value(json_array_get(c, 0)));
        args[2] = billing_i64(p, (apr_int64_t)json_integer_value(json_array_get(c, 1)));
        if (nebula_ap_db_exec(db, "billing_caps_correct",
                              "UPDATE usage_counters SET used = used + %lld WHERE cap_id = %lld "
                              "AND period_start = %lld",
                              3, args, NULL, err)
            != APR_SUCCESS) {
            rc = NEBULA_BILLING_ERROR;
            break;
        }
    }
    json_decref(held);
    return rc;
}

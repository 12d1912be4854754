/* admin_audit.c: reading the governance audit log (gov_audit, one row per
 * policy hit or refused limit): GET /api/audit (filtered, newest first,
 * paginated) and GET /api/audit/export (every matching row, oldest first, as
 * CSV or JSON lines, streamed in batches like the ledger's export so that
 * neither the server nor the database holds the whole result). Read-only:
 * mod_nebula_gov appends the rows and only its retention deletes them; no
 * route here writes one. Roles: operator, admin and root read. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <http_request.h>
#include "relay_admin.h"

static const admin_col_t audit_cols[] = {{"id", NULL, ADMIN_COL_INT},
                                         {"created_at", NULL, ADMIN_COL_INT},
                                         {"request_id", NULL, ADMIN_COL_NSTR},
                                         {"key_id", NULL, ADMIN_COL_NINT},
                                         {"user_id", NULL, ADMIN_COL_NINT},
                                         {"client_ip", NULL, ADMIN_COL_NSTR},
                                         {"model", NULL, ADMIN_COL_NSTR},
                                         {"route", NULL, ADMIN_COL_NSTR},
                                         {"stage", NULL, ADMIN_COL_STR},
                                         {"policy", NULL, ADMIN_COL_STR},
                                         {"matcher", NULL, ADMIN_COL_NSTR},
                                         {"action", NULL, ADMIN_COL_STR},
                                         {"shadow", NULL, ADMIN_COL_BOOL},
                                         {"excerpt", NULL, ADMIN_COL_NSTR},
                                         {NULL, NULL, 0}};

/* rows per statement of an export */

/* ---- filters ------------------------------------------------------------- */

/* "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]" (RFC 3339; 't', 'z' and a
 * space for 'T' too) as Unix ms; -1 when malformed. */
static apr_int64_t rfc3339_ms(const char *s)
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0, sign = 0;
    apr_int64_t ms = 0, scale = 100;
    apr_time_exp_t tm;
    apr_time_t t;

    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) !=
            6 ||
        n != 19) {
        return -1;
    }
    s += n;
    if (*s == '.') {
        for (++s; apr_isdigit(*s); ++s) {
            ms += (*s - '0') * scale;
            scale /= 10;
        }
        if (s[-1] == '.') {
            return -1;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        ++s;
    }
    else if (*s == '+' || *s == '-') {
        sign = *s == '-' ? -1 : 1;
        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 ||
            om > 59) {
            return -1;
        }
        s += 6;
    }
    else {
        return -1;
    }
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec > 59 ? 59 : sec;
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS || t < 0) {
        return -1;
    }
    return apr_time_as_msec(t) + ms - (apr_int64_t)sign * (oh * 60 + om) * 60000;
}

/* Query @a name as Unix ms (digits) or RFC 3339; -1 when absent. */
static apr_int64_t query_time(admin_req_t *a, const char *name)
{
    const char *v = NULL;
    apr_int64_t ms = -1;

    if (admin_query_str(a, name, 40, &v) != ADMIN_SET) {
        return -1;
    }
    if (apr_isdigit(*v) && strspn(v, "0123456789") == strlen(v)) {
        admin_query_int(a, name, 0, ADMIN_MAX_AMOUNT, &ms);
        return ms;
    }
    if ((ms = rfc3339_ms(v)) < 0) {
        admin_invalid(
            a, name,
            "query parameter '%s' must be Unix milliseconds or an RFC 3339 time "
            "(2026-01-31T08:00:00Z)",
            name);
    }
    return ms;
}

/* The query's filters as WHERE conditions of a statement over gov_audit;
 * errors are recorded. */
static void audit_where(admin_req_t *a, admin_sql_t *w)
{
    static const char *const stages[] = {"request", "response", "limit", NULL};
    static const char *const bools[] = {"true", "false", "1", "0", NULL};
    apr_int64_t from = query_time(a, "from"), to = query_time(a, "to"), key_id = 0,
                user_id = 0;
    const char *policy = NULL, *action = NULL, *stage = NULL, *shadow = NULL,
               *request_id = NULL, *model = NULL, *route = NULL;

    if (from >= 0 && to >= 0 && from > to) {
        admin_invalid(a, "from", "'from' is after 'to'");
    }
    admin_query_str(a, "policy", 64, &policy);
    admin_query_str(a, "action", 16, &action);
    admin_query_enum(a, "stage", stages, &stage);
    admin_query_enum(a, "shadow", bools, &shadow);
    admin_query_int(a, "key_id", 1, ADMIN_MAX_AMOUNT, &key_id);
    admin_query_int(a, "user_id", 1, ADMIN_MAX_AMOUNT, &user_id);
    admin_query_str(a, "request_id", 40, &request_id);
    admin_query_str(a, "model", 128, &model);
    admin_query_str(a, "route", 32, &route);
    admin_sql_init(w, a->r->pool, "FROM gov_audit");
    if (from >= 0) {
        admin_sql_where(w, "created_at >= %lld", admin_i64(a, from));
    }
    if (to >= 0) {
        admin_sql_where(w, "created_at < %lld", admin_i64(a, to));
    }
    if (policy) {
        admin_sql_where(w, "policy = %s", policy);
    }
    if (action) {
        admin_sql_where(w, "action = %s", action);
    }
    if (stage) {
        admin_sql_where(w, "stage = %s", stage);
    }
    if (shadow) {
        admin_sql_where(w, "shadow = %lld",
                        !strcmp(shadow, "true") || !strcmp(shadow, "1") ? "1" : "0");
    }
    if (key_id) {
        admin_sql_where(w, "key_id = %lld", admin_i64(a, key_id));
    }
    if (user_id) {
        admin_sql_where(w, "user_id = %lld", admin_i64(a, user_id));
    }
    if (request_id) {
        admin_sql_where(w, "request_id = %s", request_id);
    }
    if (model) {
        admin_sql_where(w, "model = %s", model);
    }
    if (route) {
        admin_sql_where(w, "route = %s", route);
    }
}

#define AUDIT_FILTERS                                                                    \
    "from", "to", "policy", "action", "stage", "shadow", "key_id", "user_id",            \
        "request_id", "model", "route"

int admin_audit_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", AUDIT_FILTERS, NULL};
    apr_int64_t page, per_page;
    admin_sql_t w;

    if (!admin_policies_may_read(a)) {
        return OK;
    }
    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    audit_where(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    return admin_db_send_page(a, &w, audit_cols, NULL, "created_at DESC, id DESC", page,
                              per_page, "audit rows");
}

/* ---- export ------------------------------------------------------------- */

int admin_audit_export(admin_req_t *a)
{
    static const char *const allowed[] = {"format", AUDIT_FILTERS, NULL};
    static const char *const formats[] = {"csv", "jsonl", NULL};
    const char *format = "csv";
    admin_sql_t w;

    if (!admin_policies_may_read(a)) {
        return OK;
    }
    admin_query_only(a, allowed);
    admin_query_enum(a, "format", formats, &format);
    audit_where(a, &w);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    return admin_export(a, &w, "gov_audit", audit_cols, format, "audit");
}

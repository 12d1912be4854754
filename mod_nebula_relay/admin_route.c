/* admin_route.c: the "nebula-admin" handler: the route table of the admin
 * API and the order every request goes through: route lookup, credentials
 * (admin_auth.c), 404/405, role, query, body, then the route's handler.
 * docs/admin-api.md describes each route. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include <http_request.h>
#include "relay_admin.h"

static const admin_route_t routes[] = {
    {"POST", "/api/auth/login", admin_auth_login, ROUTE_PUBLIC},
    {"POST", "/api/auth/logout", admin_auth_logout, ROUTE_ANY_ROLE},
    {"GET", "/api/auth/me", admin_auth_me, ROUTE_ANY_ROLE},
    {"POST", "/api/auth/password", admin_auth_password, ROUTE_ANY_ROLE},
    {"GET", "/api/users", admin_users_list, 0},
    {"POST", "/api/users", admin_users_create, 0},
    {"GET", "/api/users/{id}", admin_users_get, 0},
    {"PATCH", "/api/users/{id}", admin_users_patch, 0},
    {"DELETE", "/api/users/{id}", admin_users_delete, 0},
    {"PUT", "/api/users/{id}/password", admin_users_password, 0},
    {"POST", "/api/users/{id}/access-token", admin_users_token_rotate, 0},
    {"DELETE", "/api/users/{id}/access-token", admin_users_token_revoke, 0},
    {"GET", "/api/groups", admin_groups_list, 0},
    {"POST", "/api/groups", admin_groups_create, 0},
    {"GET", "/api/groups/{name}", admin_groups_get, 0},
    {"PATCH", "/api/groups/{name}", admin_groups_patch, 0},
    {"DELETE", "/api/groups/{name}", admin_groups_delete, 0},
    {"GET", "/api/keys", admin_keys_list, 0},
    {"POST", "/api/keys", admin_keys_create, 0},
    {"POST", "/api/keys/import", admin_keys_import, 0},
    {"GET", "/api/keys/{id}", admin_keys_get, 0},
    {"PATCH", "/api/keys/{id}", admin_keys_patch, 0},
    {"DELETE", "/api/keys/{id}", admin_keys_delete, 0},
    {"GET", "/api/channels", admin_channels_list, 0},
    {"POST", "/api/channels", admin_channels_create, 0},
    {"GET", "/api/channels/{id}", admin_channels_get, 0},
    {"PATCH", "/api/channels/{id}", admin_channels_patch, 0},
    {"DELETE", "/api/channels/{id}", admin_channels_delete, 0},
    /* the lead's channel test replaces admin_channels_test (501 until then) */
    {"POST", "/api/channels/{id}/test", admin_channels_test, 0},
    {"POST", "/api/channels/{id}/keys", admin_chankeys_add, 0},
    {"PATCH", "/api/channels/{id}/keys/{id}", admin_chankeys_patch, 0},
    {"DELETE", "/api/channels/{id}/keys/{id}", admin_chankeys_delete, 0},
    {"GET", "/api/abilities", admin_abilities_list, 0},
    {"GET", "/api/logs", admin_logs_list, 0},
    {"GET", "/api/logs/{uuid}", admin_logs_get, 0},
    {"GET", "/api/stats/usage", admin_stats_usage, 0},
    /* governance: operators read (the handlers check), admin and root write */
    {"GET", "/api/policies", admin_policies_list, ROUTE_ANY_ROLE},
    {"POST", "/api/policies", admin_policies_create, 0},
    {"POST", "/api/policies/test", admin_policies_test, ROUTE_ANY_ROLE},
    {"GET", "/api/policies/{name}", admin_policies_get, ROUTE_ANY_ROLE},
    {"PATCH", "/api/policies/{name}", admin_policies_patch, 0},
    {"DELETE", "/api/policies/{name}", admin_policies_delete, 0},
    {"GET", "/api/audit", admin_audit_list, ROUTE_ANY_ROLE},
    {"GET", "/api/audit/export", admin_audit_export, ROUTE_ANY_ROLE},
    {NULL, NULL, NULL, 0}};

/* GET routes of flags 0 that show secrets in clear: not for operators */
static const char *const secret_reads[] = {"/api/vouchers/{id}/export", NULL};

/* every route table, searched in order: the core's, then each area's */
static const admin_route_t *const tables[] = {routes, admin_billing_routes,
                                              admin_plans_routes, admin_caps_routes,
                                              admin_limits_routes,
                                              admin_payments_routes, admin_vouchers_routes,
                                              admin_dashboard_routes, admin_self_routes,
                                              admin_settings_routes, NULL};

/* A positive decimal id without sign or leading zero, below 2^63. */
static int parse_id(const char *s, apr_size_t n, apr_int64_t *out)
{
    apr_int64_t v = 0;
    apr_size_t i;

    if (n == 0 || n > 18 || s[0] == '0') {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int segment_ok(const char *kind, const char *s, apr_size_t n)
{
    apr_size_t i;

    if (strcmp(kind, "{name}") == 0) { /* group names, see admin_groups.c */
        for (i = 0; i < n; ++i) {
            if (!apr_isalnum(s[i]) && !strchr("_.-", s[i])) {
                return 0;
            }
        }
        return n >= 1 && n <= 64;
    }
    for (i = 0; i < n; ++i) { /* {uuid} */
        if (!apr_isxdigit(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return n == 36;
}

/* Whether @a uri matches @a pattern; fills the path parameters of @a a. */
static int path_match(admin_req_t *a, const char *pattern, const char *uri)
{
    int np = 0;

    while (*pattern && *uri) {
        const char *pe = strchr(pattern + 1, '/'), *ue = strchr(uri + 1, '/');
        apr_size_t pl = pe ? (apr_size_t)(pe - pattern) : strlen(pattern);
        apr_size_t ul = ue ? (apr_size_t)(ue - uri) : strlen(uri);

        if (pattern[1] == '{') {
            const char *kind = apr_pstrndup(a->r->pool, pattern + 1, pl - 1);
            const char *seg = uri + 1;
            int ok = strcmp(kind, "{id}") == 0 ? parse_id(seg, ul - 1, &a->id[np])
                                               : segment_ok(kind, seg, ul - 1);
            if (!ok || np >= 2) {
                return 0;
            }
            a->param[np++] = apr_pstrndup(a->r->pool, seg, ul - 1);
        }
        else if (pl != ul || strncmp(pattern, uri, pl) != 0) {
            return 0;
        }
        pattern += pl;
        uri += ul;
    }
    return *pattern == '\0' && *uri == '\0';
}

/* The route for the request; *allow lists the methods of its path when the
 * path is known (for 405 and OPTIONS). */
static const admin_route_t *route_find(admin_req_t *a, const char **allow)
{
    const char *method = a->r->header_only ? "GET" : a->r->method;
    const admin_route_t *found = NULL, *rt;
    int t;

    *allow = NULL;
    for (t = 0; tables[t]; ++t) {
        for (rt = tables[t]; rt->method; ++rt) {
            if (!path_match(a, rt->pattern, a->r->uri)) {
                continue;
            }
            *allow = *allow ? apr_pstrcat(a->r->pool, *allow, ", ", rt->method, NULL)
                            : rt->method;
            if (found == NULL && strcmp(rt->method, method) == 0) {
                found = rt;
            }
        }
    }
    if (found) { /* fill the parameters of the route that matched */
        path_match(a, found->pattern, a->r->uri);
    }
    return found;
}

static int method_changes_state(const request_rec *r)
{
    return r->method_number != M_GET && r->method_number != M_OPTIONS;
}

/* Whether the principal's role may use @a route (of neither ROUTE_PUBLIC
 * nor ROUTE_ANY_ROLE): admin and root all of them; operator, read-only, the
 * GET/HEAD ones but those that show secrets. */
static int role_allows(const admin_req_t *a, const admin_route_t *route)
{
    int i;

    if (admin_auth_is_manager(a)) {
        return 1;
    }
    if (a->who.role == NULL || strcmp(a->who.role, "operator") ||
        a->r->method_number != M_GET) {
        return 0;
    }
    for (i = 0; secret_reads[i]; ++i) {
        if (strcmp(route->pattern, secret_reads[i]) == 0) {
            return 0;
        }
    }
    return 1;
}

/* Credentials, 404/405, role. OK to go on; anything else: answered. */
static int admin_gate(admin_req_t *a, const admin_route_t *route, const char *allow)
{
    int st;

    if (route == NULL && allow != NULL && a->r->method_number == M_OPTIONS) {
        apr_table_setn(a->r->err_headers_out, "Allow", allow);
        admin_send(a, HTTP_NO_CONTENT, NULL);
        return DONE;
    }
    if (route == NULL || !(route->flags & ROUTE_PUBLIC)) {
        if ((st = admin_auth_authenticate(a, method_changes_state(a->r))) != OK) {
            return st;
        }
    }
    if (route == NULL && allow != NULL) {
        apr_table_setn(a->r->err_headers_out, "Allow", allow);
        admin_error(a, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
                    "%s is not allowed on %s (allowed: %s)", a->r->method, a->r->uri,
                    allow);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (route == NULL) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", NULL, "no such admin API route: %s",
                    a->r->uri);
        return HTTP_NOT_FOUND;
    }
    if (!(route->flags & (ROUTE_PUBLIC | ROUTE_ANY_ROLE)) && !role_allows(a, route)) {
        admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL,
                    a->r->method_number == M_GET && a->who.role &&
                            !strcmp(a->who.role, "operator")
                        ? "this route shows secrets: it needs the role admin or root"
                        : "this route needs the role admin or root");
        return HTTP_FORBIDDEN;
    }
    return OK;
}

int relay_admin_handler(request_rec *r)
{
    const admin_route_t *route;
    const char *allow;
    admin_req_t *a;

    if (r->handler == NULL || strcmp(r->handler, RELAY_ADMIN_HANDLER) != 0) {
        return DECLINED;
    }
    a = apr_pcalloc(r->pool, sizeof(*a));
    a->r = r;
    a->sc = relay_config_srv(r->server);
    route = route_find(a, &allow);
    if (admin_gate(a, route, allow) != OK) {
        return OK;
    }
    if (admin_json_read_query(a) != OK) {
        return OK;
    }
    if (r->method_number == M_GET || r->method_number == M_DELETE) {
        /* bodies mean nothing here; read and drop them */
        if (ap_discard_request_body(r) != OK) {
            return admin_error(a, HTTP_BAD_REQUEST, "bad_body", NULL,
                               "the request body could not be read");
        }
    }
    else if (!(route->flags & ROUTE_RAW_BODY) && admin_json_read_body(a) != OK) {
        return OK;
    }
    return route->fn(a);
}

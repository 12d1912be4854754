/* admin_policies.c: /api/policies: the governance policies stored in
 * gov_policies (created, changed and deleted here), listed together with the
 * ones the server configuration declares (<NebulaPolicy>, read-only: owned
 * by mod_nebula_gov, asked through its optional nebula_gov_config_policies).
 * A policy is its spec (apr_common/include/nebula_gov_policy.h): every write
 * is validated by compiling it with the engine, and the canonical spec is
 * what is stored; the columns beside it repeat what lists sort on.
 *
 * A policy is addressed as /api/policies/{id} or by its name in the same
 * place (an all-digit segment is an id); config-declared ones have no id and
 * refuse PATCH and DELETE (403 read_only). Every change bumps the relay's
 * generation so that governance reloads at once.
 *
 * POST /api/policies/test evaluates the policies (and any given beside
 * them) against a sample request of a route's protocol, without effects,
 * through mod_nebula_gov's nebula_gov_policy_test. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_optional.h>
#include <http_protocol.h>
#include "relay_admin.h"
#include "nebula_gov.h"
#include "nebula_gov_policy.h"

/* The members the API adds to a spec; refused in bodies. */
static const char *const read_only[] = {"id", "source", "created_at", "updated_at", NULL};

#define POLICY_COLS     "id, spec, created_at, updated_at"
#define MAX_POLICY_NAME 64

/* ---- who may read ------------------------------------------------------- */

int admin_policies_may_read(admin_req_t *a)
{
    if (admin_auth_is_manager(a) || (a->who.role && !strcmp(a->who.role, "operator"))) {
        return 1;
    }
    admin_error(a, HTTP_FORBIDDEN, "forbidden", NULL,
                "this route needs the role operator, admin or root");
    return 0;
}

/* ---- policies as JSON ---------------------------------------------------- */

/* Row @a i (POLICY_COLS) as the API shows it: the stored spec with id,
 * source, created_at and updated_at; a new reference. */
static json_t *row_policy(const nebula_dbd_rows_t *rows, int i)
{
    const char *text = rows->rows[i][1];
    json_t *spec = text ? json_loads(text, 0, NULL) : NULL;

    if (!json_is_object(spec)) { /* never written so: show what is there */
        json_decref(spec);
        spec = json_object();
        json_object_set_new(spec, "spec_error",
                            json_string("the stored spec is not JSON"));
    }
    json_object_set_new(spec, "id", json_integer(nebula_ap_db_int(rows, i, 0)));
    json_object_set_new(spec, "source", json_string("db"));
    json_object_set_new(spec, "created_at", json_integer(nebula_ap_db_int(rows, i, 2)));
    json_object_set_new(spec, "updated_at", json_integer(nebula_ap_db_int(rows, i, 3)));
    return spec;
}

/* The config-declared policies, each marked read-only (a new array, owned by
 * the request pool); empty without mod_nebula_gov. */
static json_t *config_policies(admin_req_t *a)
{
    APR_OPTIONAL_FN_TYPE(nebula_gov_config_policies) *fn =
        APR_RETRIEVE_OPTIONAL_FN(nebula_gov_config_policies);
    json_t *list = fn ? fn(a->r->server) : NULL, *out, *p;
    size_t i;

    out = nebula_json_own(a->r->pool, json_array());
    json_array_foreach(list, i, p)
    {
        json_t *c;
        if (!json_is_object(p)) {
            continue;
        }
        c = json_deep_copy(p);
        json_object_set_new(c, "id", json_null());
        json_object_set_new(c, "source", json_string("config"));
        json_object_set_new(c, "created_at", json_null());
        json_object_set_new(c, "updated_at", json_null());
        json_array_append_new(out, c);
    }
    json_decref(list);
    return out;
}

/* The config-declared policy named @a name (borrowed from the request
 * pool's list), or NULL. */
static json_t *config_policy(admin_req_t *a, const char *name)
{
    json_t *list = config_policies(a), *p;
    size_t i;

    json_array_foreach(list, i, p)
    {
        const char *n = nebula_json_gets(p, "name", NULL);
        if (n && strcmp(n, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* The stored policy of @a id (or, @a id 0, of @a name): a new reference, or
 * NULL when there is none; *@a failed on a database error. */
static json_t *stored_policy(admin_req_t *a, apr_int64_t id, const char *name,
                             int *failed)
{
    const char *args[1] = {id ? admin_i64(a, id) : name};
    nebula_dbd_rows_t rows;

    *failed = 0;
    if (admin_db_select(a,
                        id ? "SELECT " POLICY_COLS " FROM gov_policies WHERE id = %lld"
                           : "SELECT " POLICY_COLS " FROM gov_policies WHERE name = %s",
                        1, args, &rows) != APR_SUCCESS) {
        *failed = 1;
        return NULL;
    }
    return rows.nrows == 1 ? row_policy(&rows, 0) : NULL;
}

/* Whether the path segment is an id (all digits) and which. */
static apr_int64_t path_id(admin_req_t *a)
{
    const char *s = a->param[0];
    apr_int64_t v = 0;

    if (*s == '0' || strlen(s) > 18) {
        return 0;
    }
    for (; *s; ++s) {
        if (!apr_isdigit(*s)) {
            return 0;
        }
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* The policy the path names: stored (*@a cfg 0) or config-declared (*@a cfg
 * 1); NULL after sending 404 or 500. The stored one is a new reference. */
static json_t *path_policy(admin_req_t *a, int *cfg)
{
    apr_int64_t id = path_id(a);
    json_t *p;
    int failed;

    *cfg = 0;
    p = stored_policy(a, id, a->param[0], &failed);
    if (failed) {
        admin_db_fail(a, "read a policy");
        return NULL;
    }
    if (p == NULL && id == 0 && (p = config_policy(a, a->param[0])) != NULL) {
        *cfg = 1;
        return json_incref(p);
    }
    if (p == NULL) {
        admin_error(a, HTTP_NOT_FOUND, "not_found", "id", "the policy %s does not exist",
                    a->param[0]);
    }
    return p;
}

/* ---- validation ------------------------------------------------------------ */

/* The engine's message "match[1].pattern: ..." names the member first
 * ("unknown field 'x'": a top-level member). */
static const char *err_param(admin_req_t *a, const char *err)
{
    const char *colon = strstr(err, ": ");
    apr_size_t n = colon ? (apr_size_t)(colon - err) : 0, i;

    if (colon == NULL && strncmp(err, "unknown field '", 15) == 0) {
        const char *end = strchr(err + 15, '\'');
        return end ? apr_pstrndup(a->r->pool, err + 15, (apr_size_t)(end - err - 15))
                   : NULL;
    }
    if (n == 0 || n > 64) {
        return NULL;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isalnum(err[i]) && !strchr("_.[]", err[i])) {
            return NULL;
        }
    }
    return apr_pstrndup(a->r->pool, err, n);
}

/* Compile @a spec; the canonical spec (a new reference, owned by the
 * request pool) and its public face, or NULL with a 400 recorded. */
static json_t *validate(admin_req_t *a, json_t *spec,
                        const nebula_gov_policy_info_t **info)
{
    const nebula_gov_policy_t *pol;
    const char *err = NULL;
    int i;

    for (i = 0; read_only[i]; ++i) {
        if (json_object_get(spec, read_only[i])) {
            admin_invalid(a, read_only[i], "'%s' is read-only", read_only[i]);
            return NULL;
        }
    }
    if ((pol = nebula_gov_policy_compile(a->r->pool, spec, &err)) == NULL) {
        admin_fail(a, HTTP_BAD_REQUEST, "invalid_policy", err ? err_param(a, err) : NULL,
                   "%s", err ? err : "the policy is not valid");
        return NULL;
    }
    *info = nebula_gov_policy_info(pol);
    return nebula_json_own(a->r->pool, nebula_gov_policy_spec(pol));
}

/* 409 when @a name is declared in the configuration; 1 when free. */
static int name_free_of_config(admin_req_t *a, const char *name)
{
    if (config_policy(a, name) == NULL) {
        return 1;
    }
    admin_error(a, HTTP_CONFLICT, "policy_exists", "name",
                "the policy '%s' is declared in the server configuration", name);
    return 0;
}

/* ---- the routes ---------------------------------------------------------- */

/* A bool query parameter: true/false or 1/0; -1 when absent. */
static int query_bool(admin_req_t *a, const char *name)
{
    static const char *const values[] = {"true", "false", "1", "0", NULL};
    const char *v = NULL;

    if (admin_query_enum(a, name, values, &v) != ADMIN_SET) {
        return -1;
    }
    return !strcmp(v, "true") || !strcmp(v, "1");
}

/* Whether @a p passes the list filters. */
static int listed(json_t *p, int enabled, int shadow, const char *stage, const char *q)
{
    const char *name = nebula_json_gets(p, "name", NULL);
    const char *desc = nebula_json_gets(p, "description", NULL);
    const char *own = nebula_json_gets(p, "stage", NULL);

    if (enabled >= 0 && nebula_json_getb(p, 1, "enabled", NULL) != enabled) {
        return 0;
    }
    if (shadow >= 0 && nebula_json_getb(p, 0, "shadow", NULL) != shadow) {
        return 0;
    }
    if (stage && strcmp(own ? own : "request", stage)) {
        return 0;
    }
    if (q && !(name && ap_strcasestr(name, q)) && !(desc && ap_strcasestr(desc, q))) {
        return 0;
    }
    return 1;
}

/* priority high to low, then name: the order they are evaluated in */
static int policy_cmp(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    apr_int64_t pa = nebula_json_geti(a, 0, "priority", NULL);
    apr_int64_t pb = nebula_json_geti(b, 0, "priority", NULL);
    const char *na = nebula_json_gets(a, "name", NULL),
               *nb = nebula_json_gets(b, "name", NULL);

    if (pa != pb) {
        return pa > pb ? -1 : 1;
    }
    return strcmp(na ? na : "", nb ? nb : "");
}

int admin_policies_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page",  "per_page", "enabled", "shadow",
                                          "stage", "q",        NULL};
    static const char *const stages[] = {"request", "response", "both", NULL};
    apr_int64_t page, per_page, k;
    const char *stage = NULL, *q = NULL;
    nebula_dbd_rows_t rows;
    apr_array_header_t *all;
    json_t *cfg, *p, *data;
    int enabled, shadow, i;
    size_t j;

    if (!admin_policies_may_read(a)) {
        return OK;
    }
    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    enabled = query_bool(a, "enabled");
    shadow = query_bool(a, "shadow");
    admin_query_enum(a, "stage", stages, &stage);
    admin_query_str(a, "q", 64, &q);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    /* few policies exist (each is evaluated on every request): merge the
     * stored and the declared ones, filter and page here */
    if (admin_db_select(a, "SELECT " POLICY_COLS " FROM gov_policies", 0, NULL, &rows) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "list the policies");
    }
    all = apr_array_make(a->r->pool, rows.nrows + 8, sizeof(json_t *));
    for (i = 0; i < rows.nrows; ++i) {
        APR_ARRAY_PUSH(all, json_t *) = nebula_json_own(a->r->pool, row_policy(&rows, i));
    }
    cfg = config_policies(a);
    json_array_foreach(cfg, j, p)
    {
        APR_ARRAY_PUSH(all, json_t *) = p;
    }
    qsort(all->elts, all->nelts, sizeof(json_t *), policy_cmp);
    data = json_array();
    for (i = 0, k = 0; i < all->nelts; ++i) {
        p = APR_ARRAY_IDX(all, i, json_t *);
        if (!listed(p, enabled, shadow, stage, q)) {
            continue;
        }
        if (k >= (page - 1) * per_page && k < page * per_page) {
            json_array_append(data, p);
        }
        ++k;
    }
    return admin_send_page(a, data, k, page, per_page);
}

int admin_policies_get(admin_req_t *a)
{
    json_t *p;
    int cfg;

    if (!admin_policies_may_read(a) || !admin_db(a)) {
        return OK;
    }
    if ((p = path_policy(a, &cfg)) == NULL) {
        return OK;
    }
    return admin_send_data(a, HTTP_OK, p);
}

/* The columns of a canonical spec: name, description, priority, enabled,
 * shadow, spec text. */
static void spec_args(admin_req_t *a, json_t *spec, const nebula_gov_policy_info_t *info,
                      const char **args)
{
    args[0] = info->name;
    args[1] = info->description ? info->description : "";
    args[2] = apr_itoa(a->r->pool, info->priority);
    args[3] = info->enabled ? "1" : "0";
    args[4] = info->shadow ? "1" : "0";
    args[5] = admin_json_text(a, spec);
}

int admin_policies_create(admin_req_t *a)
{
    const nebula_gov_policy_info_t *info = NULL;
    json_t *b = admin_body(a), *spec = NULL, *p;
    const char *args[8];
    apr_int64_t id = 0, now = admin_now_ms();
    int failed;

    if (b) {
        spec = validate(a, b, &info);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!name_free_of_config(a, info->name) || !admin_db(a)) {
        return OK;
    }
    spec_args(a, spec, info, args);
    args[6] = args[7] = admin_i64(a, now);
    if (admin_db_insert(
            a,
            "INSERT INTO gov_policies (name, description, priority, enabled, "
            "shadow, spec, created_at, updated_at) VALUES (%s, %s, %lld, %lld, %lld, "
            "%s, %lld, %lld)",
            8, args, &id) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "policy_exists", "name",
                               "the policy '%s' exists", info->name);
        }
        return admin_db_fail(a, "create a policy");
    }
    relay_gen_bump();
    admin_audit(a, "create-policy", info->name);
    p = stored_policy(a, 0, info->name, &failed);
    return admin_send_data(a, HTTP_CREATED, p);
}

/* 403 for a config-declared policy; 1 for a stored one. */
static int writable(admin_req_t *a, json_t *p, int cfg)
{
    if (!cfg) {
        return 1;
    }
    admin_error(a, HTTP_FORBIDDEN, "read_only", "id",
                "the policy '%s' is declared in the server configuration "
                "(<NebulaPolicy>): change it there",
                nebula_json_gets(p, "name", NULL));
    json_decref(p);
    return 0;
}

int admin_policies_patch(admin_req_t *a)
{
    const nebula_gov_policy_info_t *info = NULL;
    json_t *b = admin_body(a), *old, *merged, *spec, *v;
    const char *k, *old_name, *args[8];
    apr_int64_t id;
    int cfg, failed, n = 0;

    if (b && json_object_size(b) == 0) {
        admin_invalid(a, NULL, "give at least one field to change");
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a) || (old = path_policy(a, &cfg)) == NULL || !writable(a, old, cfg)) {
        return OK;
    }
    id = nebula_json_geti(old, 0, "id", NULL);
    old_name = apr_pstrdup(a->r->pool, nebula_json_gets(old, "name", NULL));
    /* the stored spec, its top-level members replaced (null: removed, so
     * that the default applies), then validated whole */
    merged = nebula_json_own(a->r->pool, old);
    for (n = 0; read_only[n]; ++n) {
        json_object_del(merged, read_only[n]);
    }
    json_object_foreach(b, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(merged, k);
        }
        else {
            json_object_set(merged, k, v);
        }
    }
    if ((spec = validate(a, merged, &info)) == NULL) {
        return admin_send_recorded(a);
    }
    if (strcmp(info->name, old_name) && !name_free_of_config(a, info->name)) {
        return OK;
    }
    spec_args(a, spec, info, args);
    args[6] = admin_i64(a, admin_now_ms());
    args[7] = admin_i64(a, id);
    if (admin_db_exec(
            a,
            "UPDATE gov_policies SET name = %s, description = %s, priority = %lld, "
            "enabled = %lld, shadow = %lld, spec = %s, updated_at = %lld WHERE id = "
            "%lld",
            8, args, &n) != APR_SUCCESS) {
        if (admin_db_conflict(a)) {
            return admin_error(a, HTTP_CONFLICT, "policy_exists", "name",
                               "the policy '%s' exists", info->name);
        }
        return admin_db_fail(a, "change a policy");
    }
    relay_gen_bump();
    admin_audit(a, "update-policy", info->name);
    return admin_send_data(a, HTTP_OK, stored_policy(a, id, NULL, &failed));
}

int admin_policies_delete(admin_req_t *a)
{
    const char *args[1];
    json_t *old;
    int cfg, n = 0;

    if (!admin_db(a) || (old = path_policy(a, &cfg)) == NULL || !writable(a, old, cfg)) {
        return OK;
    }
    nebula_json_own(a->r->pool, old);
    args[0] = admin_i64(a, nebula_json_geti(old, 0, "id", NULL));
    if (admin_db_exec(a, "DELETE FROM gov_policies WHERE id = %lld", 1, args, &n) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete a policy");
    }
    relay_gen_bump();
    admin_audit(a, "delete-policy", nebula_json_gets(old, "name", NULL));
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

/* ---- POST /api/policies/test ---------------------------------------------- */

/* The route named @a name ("chat", "messages" ...: relay_route_name()). */
static const relay_route_t *route_named(const char *name)
{
    int i;

    for (i = RELAY_ROUTE_CHAT; i <= RELAY_ROUTE_TRANSLATE; ++i) {
        if (strcmp(relay_route_name((relay_route_e)i), name) == 0) {
            return relay_route_get((relay_route_e)i);
        }
    }
    return NULL;
}

/* Who the sample request comes from: the key's user and group (the key's own
 * group, else its user's, as the relay does), a user's group, or a group
 * given outright (it wins). Errors are recorded. */
static void test_identity(admin_req_t *a, json_t *b, nebula_req_t *req)
{
    apr_int64_t key_id = 0, user_id = 0;
    const char *group = NULL, *args[1];
    nebula_dbd_rows_t rows;

    admin_field_int(a, b, "key_id", 0, 1, ADMIN_MAX_AMOUNT, &key_id);
    admin_field_int(a, b, "user_id", 0, 1, ADMIN_MAX_AMOUNT, &user_id);
    if (admin_field_str(a, b, "group", ADMIN_F_NONEMPTY, 64, &group) == ADMIN_SET &&
        !admin_groups_valid_name(group)) {
        admin_invalid(a, "group", "'group' must be 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    if (key_id && user_id) {
        admin_invalid(a, "user_id", "give 'key_id' or 'user_id', not both");
    }
    if (a->err_status || (key_id == 0 && user_id == 0)) {
        req->group = group ? group : "default";
        return;
    }
    args[0] = admin_i64(a, key_id ? key_id : user_id);
    if (admin_db_select(a,
                        key_id
                            ? "SELECT k.user_id, k.key_group, u.user_group FROM api_keys "
                              "k JOIN users u ON u.id = k.user_id WHERE k.id = %lld"
                            : "SELECT id, NULL, user_group FROM users WHERE id = %lld",
                        1, args, &rows) != APR_SUCCESS) {
        admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                   "database error while reading the %s", key_id ? "key" : "user");
        return;
    }
    if (rows.nrows != 1) {
        admin_invalid(a, key_id ? "key_id" : "user_id", "the %s %s does not exist",
                      key_id ? "key" : "user", args[0]);
        return;
    }
    req->key_id = key_id;
    req->user_id = nebula_ap_db_int(&rows, 0, 0);
    req->group = group                                 ? group
                 : rows.rows[0][1] && *rows.rows[0][1] ? rows.rows[0][1]
                 : rows.rows[0][2]                     ? rows.rows[0][2]
                                                       : "default";
}

/* The model of the sample: the override, else the body's (Gemini names it
 * in the URL path, so there it must be given), else the route's default. */
static const char *test_model(admin_req_t *a, json_t *b, json_t *body,
                              const relay_route_t *route)
{
    const char *model = NULL;

    if (admin_field_str(a, b, "model", ADMIN_F_NONEMPTY, 255, &model) == ADMIN_SET) {
        return model;
    }
    if (route->api != RELAY_API_GEMINI) {
        model = nebula_json_gets(body, "model", NULL);
    }
    if (model == NULL || *model == '\0') {
        model = route->default_model;
    }
    if (model == NULL && !a->err_status) {
        admin_invalid(a, "model",
                      route->api == RELAY_API_GEMINI
                          ? "give 'model': a Gemini request names it in the URL path"
                          : "the sample body names no model: give 'model'");
    }
    return model;
}

/* The trace's subject: what the matchers saw besides the text. */
static json_t *subject_json(const nebula_req_t *req, const char *country)
{
    json_t *o = json_object();

    json_object_set_new(o, "route", json_string(req->route));
    json_object_set_new(o, "model", json_string(req->model));
    json_object_set_new(o, "group", json_string(req->group));
    json_object_set_new(o, "key_id",
                        req->key_id ? json_integer(req->key_id) : json_null());
    json_object_set_new(o, "user_id",
                        req->user_id ? json_integer(req->user_id) : json_null());
    json_object_set_new(o, "client_ip",
                        req->client_ip ? json_string(req->client_ip) : json_null());
    json_object_set_new(o, "country", country ? json_string(country) : json_null());
    json_object_set_new(o, "body_bytes", json_integer(req->body_bytes));
    json_object_set_new(o, "prompt_tokens", json_integer(req->prompt_tokens_estimate));
    return o;
}

/* client_ip (an address, no prefix) and country (ISO alpha-2, upper-cased). */
static void test_origin(admin_req_t *a, json_t *b, nebula_req_t *req,
                        const char **country)
{
    const char *ip = NULL, *cc = NULL;

    if (admin_field_str(a, b, "client_ip", ADMIN_F_NONEMPTY, 63, &ip) == ADMIN_SET &&
        (strchr(ip, '/') || !admin_keys_valid_cidr(ip))) {
        admin_invalid(a, "client_ip", "'client_ip' must be an IPv4 or IPv6 address");
    }
    if (admin_field_str(a, b, "country", ADMIN_F_NONEMPTY, 2, &cc) == ADMIN_SET) {
        if (strlen(cc) != 2 || !apr_isalpha(cc[0]) || !apr_isalpha(cc[1])) {
            admin_invalid(a, "country", "'country' must be an ISO 3166 alpha-2 code");
        }
        else {
            char *u = apr_pstrdup(a->r->pool, cc);
            u[0] = apr_toupper(u[0]);
            u[1] = apr_toupper(u[1]);
            cc = u;
        }
    }
    req->client_ip = ip;
    *country = cc;
}

int admin_policies_test(admin_req_t *a)
{
    static const char *const fields[] = {"route",    "body",  "model",     "key_id",
                                         "user_id",  "group", "client_ip", "country",
                                         "policies", NULL};
    APR_OPTIONAL_FN_TYPE(nebula_gov_policy_test) *evaluate =
        APR_RETRIEVE_OPTIONAL_FN(nebula_gov_policy_test);
    const relay_route_t *route = NULL;
    const char *rname = "chat", *country = NULL, *err;
    json_t *b, *body = NULL, *extra = NULL, *trace = NULL;
    nebula_req_t req;

    if (!admin_policies_may_read(a)) {
        return OK;
    }
    if (evaluate == NULL) {
        return admin_error(a, HTTP_SERVICE_UNAVAILABLE, "governance_unavailable", NULL,
                           "governance is not available (mod_nebula_gov is not loaded)");
    }
    memset(&req, 0, sizeof(req));
    if ((b = admin_body(a)) != NULL) {
        admin_only_fields(a, b, fields);
        if (admin_field_str(a, b, "route", ADMIN_F_NONEMPTY, 32, &rname) != ADMIN_BAD &&
            (route = route_named(rname)) == NULL) {
            admin_invalid(a, "route",
                          "'%s' is not a route name (chat, messages, "
                          "gemini_generate ...: see docs/governance.md)",
                          rname);
        }
        body = json_object_get(b, "body");
        if (!json_is_object(body)) {
            admin_invalid(a, "body", "'body' must be the sample request: a JSON object");
        }
        extra = json_object_get(b, "policies");
        if (extra && (!json_is_array(extra) || json_array_size(extra) > 100)) {
            admin_invalid(a, "policies",
                          "'policies' must be an array of at most 100 "
                          "policy specs");
        }
    }
    if (route && json_is_object(body)) {
        req.model = test_model(a, b, body, route);
    }
    if (b) {
        test_origin(a, b, &req, &country);
    }
    if (!a->err_status && b &&
        (json_object_get(b, "key_id") || json_object_get(b, "user_id")) && !admin_db(a)) {
        return OK;
    }
    if (b) {
        test_identity(a, b, &req);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    req.request_id = "policy-test";
    req.proto = route->proto;
    req.route = relay_route_name(route->route);
    req.stream = nebula_json_getb(body, 0, "stream", NULL);
    req.body_bytes = (apr_off_t)strlen(admin_json_text(a, body));
    req.prompt_text = relay_prompt_text(a->r->pool, route, body);
    req.prompt_tokens_estimate =
        relay_tokens_text(req.model, req.prompt_text, strlen(req.prompt_text));
    req.max_output_tokens = -1;
    req.calls = 1;
    req.received = apr_time_now();
    if (country) {
        apr_table_setn(a->r->notes, NEBULA_GOV_NOTE_COUNTRY, country);
    }
    admin_db_release(a); /* governance may load its policies */
    if ((err = evaluate(a->r, &req, extra, &trace)) != NULL) {
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_policy", "policies", "%s", err);
    }
    if (!json_is_object(trace)) {
        json_decref(trace);
        return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                           "governance gave no trace");
    }
    json_object_set_new(trace, "prompt_text", json_string(req.prompt_text));
    json_object_set_new(trace, "subject", subject_json(&req, country));
    return admin_send_data(a, HTTP_OK, trace);
}

/* admin_fields.c: typed, validated getters for the admin API's JSON body
 * fields and query parameters. Each getter returns ADMIN_SET, ADMIN_NULL
 * (only with ADMIN_F_NULLABLE), ADMIN_ABSENT, or ADMIN_BAD after recording a
 * 400 error that names the field (admin_invalid), so a handler can read all
 * its fields and check once. */
#include <errno.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "relay_admin.h"

int admin_text_ok(const char *s)
{
    const unsigned char *p;

    for (p = (const unsigned char *)s; *p; ++p) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* The member @a name of @a o: ADMIN_SET (in *v), ADMIN_NULL, ADMIN_ABSENT, ADMIN_BAD. */
static int member(admin_req_t *a, json_t *o, const char *name, int flags, json_t **v)
{
    *v = o ? json_object_get(o, name) : NULL;
    if (*v == NULL) {
        if (flags & ADMIN_F_REQUIRED) {
            return admin_invalid(a, name, "'%s' is required", name);
        }
        return ADMIN_ABSENT;
    }
    if (json_is_null(*v)) {
        if (flags & ADMIN_F_NULLABLE) {
            return ADMIN_NULL;
        }
        return admin_invalid(a, name, "'%s' may not be null", name);
    }
    return ADMIN_SET;
}

/* Check one string value; @a what names it in the message. */
static int check_string(admin_req_t *a, const char *param, const char *what, json_t *v,
                        int nonempty, apr_size_t maxlen)
{
    if (!json_is_string(v)) {
        return admin_invalid(a, param, "%s must be a string", what);
    }
    if (nonempty && json_string_length(v) == 0) {
        return admin_invalid(a, param, "%s may not be empty", what);
    }
    if (json_string_length(v) > maxlen) {
        return admin_invalid(a, param, "%s is longer than %" APR_SIZE_T_FMT " bytes",
                             what, maxlen);
    }
    if (!admin_text_ok(json_string_value(v))) {
        return admin_invalid(a, param, "%s contains control characters", what);
    }
    return ADMIN_SET;
}

int admin_field_str(admin_req_t *a, json_t *o, const char *name, int flags,
                    apr_size_t maxlen, const char **out)
{
    json_t *v;
    int st = member(a, o, name, flags, &v);

    if (st == ADMIN_NULL) {
        *out = NULL;
    }
    if (st != ADMIN_SET) {
        return st;
    }
    st = check_string(a, name, apr_psprintf(a->r->pool, "'%s'", name), v,
                      flags & ADMIN_F_NONEMPTY, maxlen);
    if (st == ADMIN_SET) {
        *out = json_string_value(v);
    }
    return st;
}

int admin_field_int(admin_req_t *a, json_t *o, const char *name, int flags,
                    apr_int64_t min, apr_int64_t max, apr_int64_t *out)
{
    json_t *v;
    int st = member(a, o, name, flags, &v);

    if (st != ADMIN_SET) {
        return st;
    }
    if (!json_is_integer(v)) {
        return admin_invalid(a, name, "'%s' must be an integer", name);
    }
    if (json_integer_value(v) < min || json_integer_value(v) > max) {
        return admin_invalid(
            a, name, "'%s' must be from %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT, name,
            min, max);
    }
    *out = json_integer_value(v);
    return ADMIN_SET;
}

int admin_field_bool(admin_req_t *a, json_t *o, const char *name, int flags, int *out)
{
    json_t *v;
    int st = member(a, o, name, flags, &v);

    if (st != ADMIN_SET) {
        return st;
    }
    if (!json_is_boolean(v)) {
        return admin_invalid(a, name, "'%s' must be true or false", name);
    }
    *out = json_is_true(v);
    return ADMIN_SET;
}

/* @a s as one of @a values (ADMIN_SET, *out the table's copy), or a
 * recorded 400 naming them all (ADMIN_BAD). */
static int enum_pick(admin_req_t *a, const char *name, const char *s,
                     const char *const *values, const char **out)
{
    const char *list = NULL;
    int i;

    for (i = 0; values[i]; ++i) {
        if (strcmp(values[i], s) == 0) {
            *out = values[i];
            return ADMIN_SET;
        }
        list = list ? apr_pstrcat(a->r->pool, list, ", ", values[i], NULL) : values[i];
    }
    return admin_invalid(a, name, "'%s' must be one of: %s", name, list);
}

int admin_field_enum(admin_req_t *a, json_t *o, const char *name, int flags,
                     const char *const *values, const char **out)
{
    const char *s;
    int st = admin_field_str(a, o, name, flags, 64, &s);

    return st == ADMIN_SET ? enum_pick(a, name, s, values, out) : st;
}

int admin_field_strarray(admin_req_t *a, json_t *o, const char *name, int flags,
                         apr_size_t maxitems, apr_size_t maxlen, json_t **out)
{
    apr_hash_t *seen = apr_hash_make(a->r->pool);
    json_t *v, *item;
    size_t i;
    int st = member(a, o, name, flags, &v);

    if (st == ADMIN_NULL) {
        *out = NULL;
    }
    if (st != ADMIN_SET) {
        return st;
    }
    if (!json_is_array(v)) {
        return admin_invalid(a, name, "'%s' must be an array of strings", name);
    }
    if (json_array_size(v) > maxitems) {
        return admin_invalid(a, name, "'%s' has more than %" APR_SIZE_T_FMT " items",
                             name, maxitems);
    }
    json_array_foreach(v, i, item)
    {
        const char *what = apr_psprintf(a->r->pool, "'%s' item %d", name, (int)i);
        if (check_string(a, name, what, item, 1, maxlen) != ADMIN_SET) {
            return ADMIN_BAD;
        }
        if (apr_hash_get(seen, json_string_value(item), APR_HASH_KEY_STRING)) {
            return admin_invalid(a, name, "'%s' lists '%s' twice", name,
                                 json_string_value(item));
        }
        apr_hash_set(seen, json_string_value(item), APR_HASH_KEY_STRING, "");
    }
    *out = v;
    return ADMIN_SET;
}

int admin_field_strmap(admin_req_t *a, json_t *o, const char *name, int flags,
                       apr_size_t maxitems, apr_size_t maxlen, json_t **out)
{
    const char *k;
    json_t *v, *item;
    int st = member(a, o, name, flags, &v);

    if (st == ADMIN_NULL) {
        *out = NULL;
    }
    if (st != ADMIN_SET) {
        return st;
    }
    if (!json_is_object(v)) {
        return admin_invalid(a, name, "'%s' must be an object of strings", name);
    }
    if (json_object_size(v) > maxitems) {
        return admin_invalid(a, name, "'%s' has more than %" APR_SIZE_T_FMT " members",
                             name, maxitems);
    }
    json_object_foreach(v, k, item)
    {
        const char *what = apr_psprintf(a->r->pool, "'%s' member '%s'", name, k);
        if (*k == '\0' || strlen(k) > maxlen || !admin_text_ok(k)) {
            return admin_invalid(a, name,
                                 "'%s' has an empty, overlong or unprintable name", name);
        }
        if (check_string(a, name, what, item, 1, maxlen) != ADMIN_SET) {
            return ADMIN_BAD;
        }
    }
    *out = v;
    return ADMIN_SET;
}

/* ---- the query string ---------------------------------------------------- */

int admin_json_read_query(admin_req_t *a)
{
    request_rec *r = a->r;
    char *args, *pair, *state = NULL;

    a->query = apr_table_make(r->pool, 8);
    if (r->args == NULL || *r->args == '\0') {
        return OK;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &state); pair;
         pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '=');
        char *val = eq ? eq + 1 : apr_pcalloc(r->pool, 1);

        if (eq) {
            *eq = '\0';
        }
        if (ap_unescape_urlencoded(pair) || ap_unescape_urlencoded(val) ||
            *pair == '\0') {
            admin_error(a, HTTP_BAD_REQUEST, "invalid_query", NULL,
                        "the query string is malformed");
            return HTTP_BAD_REQUEST;
        }
        if (apr_table_get(a->query, pair)) {
            admin_error(a, HTTP_BAD_REQUEST, "invalid_query", pair,
                        "query parameter '%s' is given twice", pair);
            return HTTP_BAD_REQUEST;
        }
        apr_table_setn(a->query, pair, val);
    }
    return OK;
}

typedef struct {
    admin_req_t *a;
    const char *const *allowed;
} only_ctx_t;

static int check_query_name(void *baton, const char *k, const char *v)
{
    only_ctx_t *c = baton;
    int i;

    (void)v;
    for (i = 0; c->allowed[i]; ++i) {
        if (strcmp(c->allowed[i], k) == 0) {
            return 1;
        }
    }
    admin_invalid(c->a, apr_pstrdup(c->a->r->pool, k), "unknown query parameter '%s'", k);
    return 0;
}

int admin_query_only(admin_req_t *a, const char *const *allowed)
{
    only_ctx_t c = {a, allowed};

    return apr_table_do(check_query_name, &c, a->query, NULL) ? ADMIN_SET : ADMIN_BAD;
}

int admin_query_str(admin_req_t *a, const char *name, apr_size_t maxlen, const char **out)
{
    const char *v = apr_table_get(a->query, name);

    if (v == NULL || *v == '\0') {
        return ADMIN_ABSENT;
    }
    if (strlen(v) > maxlen || !admin_text_ok(v)) {
        return admin_invalid(a, name, "query parameter '%s' is too long or unprintable",
                             name);
    }
    *out = v;
    return ADMIN_SET;
}

int admin_query_enum(admin_req_t *a, const char *name, const char *const *values,
                     const char **out)
{
    const char *s;
    int st = admin_query_str(a, name, 64, &s);

    return st == ADMIN_SET ? enum_pick(a, name, s, values, out) : st;
}

int admin_query_int(admin_req_t *a, const char *name, apr_int64_t min, apr_int64_t max,
                    apr_int64_t *out)
{
    const char *v = apr_table_get(a->query, name), *p;
    char *end;
    apr_int64_t n;

    if (v == NULL || *v == '\0') {
        return ADMIN_ABSENT;
    }
    for (p = (*v == '-') ? v + 1 : v; apr_isdigit(*p); ++p) {
    }
    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (*p || p == v || (*v == '-' && p == v + 1) || errno == ERANGE || *end) {
        return admin_invalid(a, name, "query parameter '%s' must be an integer", name);
    }
    if (n < min || n > max) {
        return admin_invalid(a, name,
                             "query parameter '%s' must be from %" APR_INT64_T_FMT
                             " to %" APR_INT64_T_FMT,
                             name, min, max);
    }
    *out = n;
    return ADMIN_SET;
}

int admin_query_page(admin_req_t *a, apr_int64_t *page, apr_int64_t *per_page)
{
    *page = 1;
    *per_page = ADMIN_DEFAULT_PER_PAGE;
    admin_query_int(a, "page", 1, ADMIN_MAX_PAGE, page);
    admin_query_int(a, "per_page", 1, ADMIN_MAX_PER_PAGE, per_page);
    return a->err_status ? ADMIN_BAD : ADMIN_SET;
}

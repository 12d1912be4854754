/* gov_config_policy.c: <NebulaPolicy name> ... </NebulaPolicy>, a policy
 * declared in the configuration. Each line inside sets one part of the
 * policy's spec (the JSON the admin API takes, nebula_gov_policy.h); the
 * spec is compiled at once, so a bad policy stops httpd at start-up with
 * the file and line. docs/governance.md has the grammar:
 *
 *   Description "text"            Priority 100         Enabled On|Off
 *   Shadow On|Off                 Stage request|response|both
 *   Scope groups|users|keys|models|routes value...
 *   Match [!]keywords|words word...     Match [!]regex "pattern" [nocase]
 *   Match [!]detector email|phone|card|cn_id|secret...
 *   Match [!]model|route|ip|country value...
 *   Match [!]time [days=mon,tue] [from=09:00] [to=18:00] [utc_offset=+08:00]
 *   Match [!]size|tokens [min=N] [max=N]
 *   Action block [status] ["message"]  Action downgrade model
 *   Action reroute group=name|channel=name
 *   Action redact ["mask"]             Action tag [label]
 */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_core.h>
#include "gov_private.h"
#include "nebula_json.h"

static const char *flag(apr_pool_t *p, const char *dir, const char *v, int *out)
{
    if (!ap_cstr_casecmp(v, "on")) {
        *out = 1;
    }
    else if (!ap_cstr_casecmp(v, "off")) {
        *out = 0;
    }
    else {
        return apr_psprintf(p, "%s takes On or Off", dir);
    }
    return NULL;
}

/* The words after the first on a line, as a JSON array (numbers for the
 * scopes that hold ids). */
static json_t *rest(apr_pool_t *p, const char **line, int numbers)
{
    json_t *a = json_array();
    char *w;

    while (*(w = ap_getword_conf(p, line)) != '\0') {
        char *end;
        apr_int64_t v = apr_strtoi64(w, &end, 10);
        json_array_append_new(a, numbers && *end == '\0' ? json_integer(v) : json_string(w));
    }
    return a;
}

/* key=value words into @a o: numbers stay numbers, days a list. */
static const char *options(apr_pool_t *p, const char **line, json_t *o)
{
    char *w;

    while (*(w = ap_getword_conf(p, line)) != '\0') {
        char *eq = strchr(w, '='), *end;
        apr_int64_t v;
        if (eq == NULL || eq == w) {
            return apr_psprintf(p, "'%s' is not name=value", w);
        }
        *eq++ = '\0';
        v = apr_strtoi64(eq, &end, 10);
        if (!strcmp(w, "days")) {
            json_t *days = json_array();
            char *tok, *last;
            for (tok = apr_strtok(eq, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
                json_array_append_new(days, json_string(tok));
            }
            json_object_set_new(o, w, days);
        }
        else {
            json_object_set_new(o, w, *eq && *end == '\0' ? json_integer(v) : json_string(eq));
        }
    }
    return NULL;
}

static const char *match_line(apr_pool_t *p, const char *line, json_t *matchers)
{
    char *type = ap_getword_conf(p, &line);
    json_t *m = json_object();
    const char *err = NULL;

    json_array_append_new(matchers, m);
    if (*type == '!') {
        json_object_set_new(m, "negate", json_true());
        ++type;
    }
    if (!strcmp(type, "words")) {
        json_object_set_new(m, "type", json_string("keywords"));
        json_object_set_new(m, "word", json_true());
        json_object_set_new(m, "values", rest(p, &line, 0));
    }
    else if (!strcmp(type, "regex")) {
        const char *pattern = ap_getword_conf(p, &line), *opt = ap_getword_conf(p, &line);
        json_object_set_new(m, "type", json_string(type));
        json_object_set_new(m, "pattern", json_string(pattern));
        if (!ap_cstr_casecmp(opt, "nocase")) {
            json_object_set_new(m, "case_insensitive", json_true());
        }
        else if (*opt) {
            return apr_psprintf(p, "Match regex: unknown option '%s' (nocase?)", opt);
        }
    }
    else if (!strcmp(type, "detector")) {
        json_object_set_new(m, "type", json_string(type));
        json_object_set_new(m, "detectors", rest(p, &line, 0));
    }
    else if (!strcmp(type, "time") || !strcmp(type, "size") || !strcmp(type, "tokens")) {
        json_object_set_new(m, "type", json_string(type));
        err = options(p, &line, m);
    }
    else {
        /* keywords, model, route, ip, country; the engine refuses others */
        json_object_set_new(m, "type", json_string(type));
        json_object_set_new(m, "values", rest(p, &line, 0));
    }
    return err ? apr_pstrcat(p, "Match ", type, ": ", err, NULL) : NULL;
}

static const char *action_line(apr_pool_t *p, const char *line, json_t *spec)
{
    char *type = ap_getword_conf(p, &line), *w;
    json_t *a = json_pack("{s:s}", "type", type);

    json_object_set_new(spec, "action", a);
    if (!strcmp(type, "block")) {
        while (*(w = ap_getword_conf(p, &line)) != '\0') {
            char *end;
            apr_int64_t v = apr_strtoi64(w, &end, 10);
            json_object_set_new(a, *end == '\0' ? "status" : "message",
                                *end == '\0' ? json_integer(v) : json_string(w));
        }
    }
    else if (!strcmp(type, "downgrade")) {
        json_object_set_new(a, "model", json_string(ap_getword_conf(p, &line)));
    }
    else if (!strcmp(type, "reroute")) {
        return options(p, &line, a);
    }
    else if (!strcmp(type, "redact") || !strcmp(type, "tag")) {
        if (*(w = ap_getword_conf(p, &line)) != '\0') {
            json_object_set_new(a, !strcmp(type, "redact") ? "mask" : "tag", json_string(w));
        }
    }
    return NULL;
}

/* One line of the section into @a spec. */
static const char *policy_line(apr_pool_t *p, const char *line, json_t *spec)
{
    char *dir = ap_getword_conf(p, &line), *end;
    const char *v;
    json_t *o;
    int on;

    if (!ap_cstr_casecmp(dir, "Match")) {
        if ((o = json_object_get(spec, "match")) == NULL) {
            json_object_set_new(spec, "match", o = json_array());
        }
        return match_line(p, line, o);
    }
    if (!ap_cstr_casecmp(dir, "Action")) {
        return action_line(p, line, spec);
    }
    if (!ap_cstr_casecmp(dir, "Scope")) {
        char *kind = ap_getword_conf(p, &line);
        if ((o = json_object_get(spec, "scope")) == NULL) {
            json_object_set_new(spec, "scope", o = json_object());
        }
        json_object_set_new(o, kind, rest(p, &line, !strcmp(kind, "users")
                                                    || !strcmp(kind, "keys")));
        return NULL;
    }
    v = ap_getword_conf(p, &line);
    if (!ap_cstr_casecmp(dir, "Description")) {
        json_object_set_new(spec, "description", json_string(v));
    }
    else if (!ap_cstr_casecmp(dir, "Priority")) {
        apr_int64_t n = apr_strtoi64(v, &end, 10);
        if (*v == '\0' || *end) {
            return "Priority takes an integer";
        }
        json_object_set_new(spec, "priority", json_integer(n));
    }
    else if (!ap_cstr_casecmp(dir, "Stage")) {
        json_object_set_new(spec, "stage", json_string(v));
    }
    else if (!ap_cstr_casecmp(dir, "Enabled") || !ap_cstr_casecmp(dir, "Shadow")) {
        const char *err = flag(p, dir, v, &on);
        if (err) {
            return err;
        }
        json_object_set_new(spec, !ap_cstr_casecmp(dir, "Enabled") ? "enabled" : "shadow",
                            json_boolean(on));
    }
    else {
        return apr_psprintf(p, "unknown line '%s' (Description, Priority, Enabled, Shadow, "
                            "Stage, Scope, Match, Action)", dir);
    }
    return NULL;
}

static apr_status_t spec_free(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

const char *gov_config_policy_section(cmd_parms *cmd, void *dc, const char *arg)
{
    gov_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &nebula_gov_module);
    apr_pool_t *p = cmd->temp_pool;
    const char *endp = ap_strrchr_c(arg, '>'), *err = NULL;
    char *name;
    const ap_directive_t *d;
    nebula_gov_policy_t *pol;
    json_t *spec;
    int i;

    if (endp == NULL) {
        return "<NebulaPolicy> directive missing closing '>'";
    }
    arg = apr_pstrndup(p, arg, endp - arg);
    name = ap_getword_conf(p, &arg);
    if (*name == '\0' || *arg) {
        return "<NebulaPolicy> takes one argument, the policy's name";
    }
    spec = json_pack("{s:s}", "name", name);
    /* httpd read the section's lines into the configuration tree: each one
     * is a child node (its first word the "directive", the rest its args) */
    for (d = cmd->directive->first_child; d; d = d->next) {
        const char *l = apr_pstrcat(p, d->directive, " ", d->args, NULL);
        if ((err = policy_line(p, l, spec)) != NULL) {
            json_decref(spec);
            return apr_psprintf(cmd->pool, "<NebulaPolicy %s> (%s:%d): %s", name,
                                d->filename, d->line_num, err);
        }
    }
    pol = nebula_gov_policy_compile(p, spec, &err);
    json_decref(spec);
    if (pol == NULL) {
        return apr_psprintf(cmd->pool, "<NebulaPolicy %s>: %s", name, err);
    }
    /* keep the canonical spec; the snapshot compiles it again per child */
    spec = nebula_gov_policy_spec(pol);
    apr_pool_cleanup_register(cmd->pool, spec, spec_free, apr_pool_cleanup_null);
    if (c->policies == NULL) {
        c->policies = apr_array_make(cmd->pool, 4, sizeof(json_t *));
    }
    for (i = 0; i < c->policies->nelts; ++i) {
        if (!strcmp(name, nebula_json_gets(APR_ARRAY_IDX(c->policies, i, json_t *), "name",
                                           NULL))) {
            return apr_psprintf(cmd->pool, "<NebulaPolicy %s>: declared twice", name);
        }
    }
    APR_ARRAY_PUSH(c->policies, json_t *) = spec;
    return NULL;
}

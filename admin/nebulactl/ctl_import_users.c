/* ctl_import_users.c: groups, users and tokens of `nebulactl import-newapi`.
 *
 * - groups: the GroupRatio option and every group a user, token or channel
 *   names become user_groups rows (ratio as parts per million; 1.0 when the
 *   option does not list the group). An existing group is kept as it is.
 * - users: username, display name, role (100 root, 10 admin, else user),
 *   status (1 active, else disabled; a soft-deleted user is imported as
 *   deleted so that its name stays taken), group, e-mail, used quota and
 *   request count; the quota is the opening ledger row of the user's
 *   wallet (ctl_import_ledger.c). new-api's bcrypt password hash is kept in
 *   password_hash: the admin login verifies it and replaces it with an
 *   argon2id hash at the user's first sign-in.
 *   A username that exists here without that opening row is a conflict:
 *   the user and its tokens are skipped.
 * - tokens: key_hash is nebula_apikey_hash() of the stored key, which is
 *   what the relay computes from "sk-<key>" or "<key>" as clients send it;
 *   status 1/2/3/4 -> active/disabled/expired/exhausted, expired_time (s,
 *   -1 never) -> expires_at (ms), quotas, model and IP limits as JSON. A
 *   soft-deleted token is not imported (it can never be used again). */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ctl_import.h"
#include "nebula_apikey.h"

/* ---- groups ------------------------------------------------------------ */

static int valid_name(const char *s, apr_size_t max)
{
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > max || !apr_isalnum(s[0])) {
        return 0;
    }
    for (i = 1; i < n; ++i) {
        if (!apr_isalnum(s[i]) && !strchr("._@-", s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Add the comma-separated groups of @a list to @a groups (ratio unknown). */
static void add_groups(imp_t *im, apr_hash_t *groups, const char *list)
{
    char *copy, *tok, *last;

    if (list == NULL) {
        return;
    }
    copy = apr_pstrdup(im->ctl->pool, list);
    for (tok = apr_strtok(copy, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
        char *g = tok;
        apr_size_t n;

        while (apr_isspace(*g)) {
            ++g;
        }
        for (n = strlen(g); n > 0 && apr_isspace(g[n - 1]); --n) {
            g[n - 1] = '\0';
        }
        if (*g && strcmp(g, "auto") &&
            apr_hash_get(groups, g, APR_HASH_KEY_STRING) == NULL) {
            apr_hash_set(groups, g, APR_HASH_KEY_STRING, "1000000");
        }
    }
}

static int import_group(imp_t *im, const char *name, const char *ppm)
{
    nebula_dbd_rows_t rows;
    const char *args[4] = {name, ppm, NULL, NULL};
    imp_count_t *c = &im->count[IMP_GROUPS];

    c->source++;
    if (!valid_name(name, 64)) {
        c->skipped++;
        imp_note(im, "skip group '%s': not a valid group name here", name);
        return CTL_EXIT_OK;
    }
    if (imp_select(im, "SELECT ratio_ppm FROM user_groups WHERE name = %s", 1, args,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        if (rows.rows[0][0] && strcmp(rows.rows[0][0], ppm) == 0) {
            c->already++;
        }
        else {
            c->conflict++;
            imp_note(im, "conflict group '%s': ratio here %s ppm, new-api %s ppm (kept)",
                     name, rows.rows[0][0] ? rows.rows[0][0] : "?", ppm);
        }
        return CTL_EXIT_OK;
    }
    args[2] = "imported from new-api";
    args[3] = imp_i64(im, im->now_ms);
    if (imp_exec(im,
                 "INSERT INTO user_groups (name, ratio_ppm, description, created_at) "
                 "VALUES (%s, %lld, %s, %lld)",
                 4, args, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    c->imported++;
    return CTL_EXIT_OK;
}

int imp_groups(imp_t *im)
{
    apr_hash_t *groups = apr_hash_make(im->ctl->pool);
    json_t *ratios = imp_option_json(im, "GroupRatio"), *v;
    apr_hash_index_t *hi;
    nebula_dbd_rows_t rows;
    const char *name, *grp = imp_src_col(im, "group");
    int i;

    json_object_foreach(ratios, name, v)
    {
        if (!json_is_number(v) || json_number_value(v) < 0 ||
            json_number_value(v) > 1e6) {
            imp_note(im, "skip group '%s': its GroupRatio is not a number", name);
            continue;
        }
        apr_hash_set(groups, apr_pstrdup(im->ctl->pool, name), APR_HASH_KEY_STRING,
                     imp_i64(im, (apr_int64_t)(json_number_value(v) * 1e6 + 0.5)));
    }
    if (imp_src_select(
            im,
            apr_psprintf(im->ctl->pool,
                         "SELECT DISTINCT %s FROM users UNION SELECT DISTINCT %s "
                         "FROM tokens UNION SELECT DISTINCT %s FROM channels",
                         grp, grp, grp),
            &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        add_groups(im, groups, rows.rows[i][0]);
    }
    for (hi = apr_hash_first(im->ctl->pool, groups); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *val;

        apr_hash_this(hi, &k, NULL, &val);
        if (import_group(im, k, val) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* ---- users ------------------------------------------------------------- */

enum {
    U_ID,
    U_NAME,
    U_PASS,
    U_DISPLAY,
    U_ROLE,
    U_STATUS,
    U_EMAIL,
    U_QUOTA,
    U_USED,
    U_REQS,
    U_GROUP,
    U_DELETED
};

static const char *user_role(const char *r)
{
    apr_int64_t v = r ? apr_atoi64(r) : 1;

    return v >= 100 ? "root" : v >= 10 ? "admin" : "user";
}

static int insert_user(imp_t *im, const char **u, apr_int64_t *id)
{
    const char *args[11];
    const char *group = u[U_GROUP] && valid_name(u[U_GROUP], 64) ? u[U_GROUP] : "default";
    const char *pw = u[U_PASS];

    args[0] = u[U_NAME];
    args[1] = u[U_DISPLAY] ? u[U_DISPLAY] : "";
    args[2] = user_role(u[U_ROLE]);
    args[3] = group;
    args[4] = u[U_DELETED]                                 ? "deleted"
              : (u[U_STATUS] && !strcmp(u[U_STATUS], "1")) ? "active"
                                                           : "disabled";
    args[5] = imp_i64(im, u[U_USED] ? apr_atoi64(u[U_USED]) : 0);
    args[6] = imp_i64(im, u[U_REQS] ? apr_atoi64(u[U_REQS]) : 0);
    /* a deleted user keeps no password, as our DELETE does */
    args[7] = u[U_DELETED] || pw == NULL || strncmp(pw, "$2", 2) ? NULL : pw;
    args[8] = u[U_EMAIL] && *u[U_EMAIL] ? u[U_EMAIL] : NULL;
    args[9] = imp_i64(im, im->now_ms);
    args[10] = args[9];
    return imp_insert(
        im,
        "INSERT INTO users (username, display_name, role, user_group, status, "
        "quota, used_quota, request_count, password_hash, email, created_at, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, 0, %lld, %lld, %s, %s, %lld, "
        "%lld)",
        11, args, id);
}

static int import_user(imp_t *im, const char **u)
{
    imp_count_t *c = &im->count[IMP_USERS];
    nebula_dbd_rows_t rows;
    const char *args[1] = {u[U_NAME]}, *our;
    apr_int64_t quota = u[U_QUOTA] ? apr_atoi64(u[U_QUOTA]) : 0, id;
    int has, posted;

    c->source++;
    if (u[U_NAME] == NULL || !valid_name(u[U_NAME], 64)) {
        c->skipped++;
        imp_note(im,
                 "skip user %s '%s': usernames here are 1-64 of A-Z a-z 0-9 . _ @ - "
                 "(rename it in new-api, then import again)",
                 u[U_ID], u[U_NAME] ? u[U_NAME] : "");
        return CTL_EXIT_OK;
    }
    if (imp_select(im, "SELECT id FROM users WHERE username = %s", 1, args, &rows) !=
        CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        our = rows.rows[0][0];
        if (imp_ledger_has_opening(im, our, u[U_ID], &has) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
        if (!has) {
            c->conflict++;
            imp_note(im,
                     "conflict user %s '%s': a user of that name exists here (id %s); "
                     "it and its tokens are not imported",
                     u[U_ID], u[U_NAME], our);
            return CTL_EXIT_OK;
        }
        c->already++;
        apr_hash_set(im->user_map, u[U_ID], APR_HASH_KEY_STRING, our);
        return CTL_EXIT_OK;
    }
    if (insert_user(im, u, &id) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    our = imp_i64(im, id);
    if (imp_ledger_opening(im, our, u[U_ID], quota, &posted) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    apr_hash_set(im->user_map, u[U_ID], APR_HASH_KEY_STRING, our);
    c->imported++;
    im->quota_total += quota;
    im->quota_users++;
    if (u[U_DELETED]) {
        imp_note(im, "user %s '%s' was deleted in new-api: imported as deleted", u[U_ID],
                 u[U_NAME]);
    }
    return CTL_EXIT_OK;
}

int imp_users(imp_t *im)
{
    nebula_dbd_rows_t rows;
    int i, nopw = 0;

    if (imp_src_select(
            im,
            apr_psprintf(im->ctl->pool,
                         "SELECT id, username, password, display_name, role, "
                         "status, email, quota, used_quota, request_count, %s, "
                         "deleted_at FROM users ORDER BY id",
                         imp_src_col(im, "group")),
            &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        int before = im->count[IMP_USERS].imported;

        if (import_user(im, rows.rows[i]) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
        nopw += im->count[IMP_USERS].imported > before && !rows.rows[i][U_DELETED];
    }
    if (nopw > 0) {
        imp_note(
            im,
            "%d imported user(s) sign in with their new-api password (bcrypt); "
            "the first sign-in replaces its hash with an argon2id one",
            nopw);
    }
    return CTL_EXIT_OK;
}

/* ---- tokens ------------------------------------------------------------ */

enum {
    T_ID,
    T_USER,
    T_KEY,
    T_STATUS,
    T_NAME,
    T_CREATED,
    T_ACCESSED,
    T_EXPIRED,
    T_REMAIN,
    T_UNLIMITED,
    T_USED,
    T_LIMITS_ON,
    T_LIMITS,
    T_IPS,
    T_GROUP,
    T_DELETED
};

/* A list split on any of @a seps as a JSON array text; NULL when empty. */
static const char *list_json(imp_t *im, const char *text, const char *seps)
{
    json_t *a = json_array();
    char *copy = apr_pstrdup(im->ctl->pool, text ? text : ""), *tok, *last;
    const char *out;

    for (tok = apr_strtok(copy, seps, &last); tok; tok = apr_strtok(NULL, seps, &last)) {
        if (*tok) {
            json_array_append_new(a, json_string(tok));
        }
    }
    out = json_array_size(a) ? json_dumps(a, JSON_COMPACT) : NULL;
    if (out) {
        const char *kept = apr_pstrdup(im->ctl->pool, out);
        free((void *)out);
        out = kept;
    }
    json_decref(a);
    return out;
}

static const char *token_status(const char *s)
{
    apr_int64_t v = s ? apr_atoi64(s) : 1;

    return v == 1 ? "active" : v == 3 ? "expired" : v == 4 ? "exhausted" : "disabled";
}

static int insert_token(imp_t *im, const char **t, const char *user_id, const char *hash)
{
    const char *args[14];
    apr_int64_t expired = t[T_EXPIRED] ? apr_atoi64(t[T_EXPIRED]) : -1;
    apr_int64_t accessed = t[T_ACCESSED] ? apr_atoi64(t[T_ACCESSED]) : 0;
    apr_int64_t created = t[T_CREATED] ? apr_atoi64(t[T_CREATED]) : 0;
    const char *group =
        t[T_GROUP] && strcmp(t[T_GROUP], "auto") && valid_name(t[T_GROUP], 64)
            ? t[T_GROUP]
            : NULL;

    args[0] = user_id;
    args[1] = t[T_NAME] ? t[T_NAME] : "";
    args[2] = hash;
    args[3] =
        apr_pstrndup(im->ctl->pool, apr_pstrcat(im->ctl->pool, "sk-", t[T_KEY], NULL), 8);
    args[4] = token_status(t[T_STATUS]);
    args[5] = group;
    args[6] = expired > 0 ? imp_i64(im, expired * 1000) : NULL;
    args[7] = imp_i64(im, t[T_REMAIN] ? apr_atoi64(t[T_REMAIN]) : 0);
    args[8] = imp_bool(t[T_UNLIMITED]) ? "1" : "0";
    args[9] = imp_i64(im, t[T_USED] ? apr_atoi64(t[T_USED]) : 0);
    args[10] = imp_bool(t[T_LIMITS_ON]) ? list_json(im, t[T_LIMITS], ",") : NULL;
    args[11] = list_json(im, t[T_IPS], "\n\r ,");
    args[12] = imp_i64(im, created > 0 ? created * 1000 : im->now_ms);
    args[13] = accessed > 0 ? imp_i64(im, accessed * 1000) : NULL;
    if (t[T_GROUP] && strcmp(t[T_GROUP], "auto") == 0) {
        imp_note(im, "token %s uses new-api's 'auto' group: imported in its user's group",
                 t[T_ID]);
    }
    return imp_exec(
        im,
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, status, "
        "key_group, expires_at, remain_quota, unlimited_quota, used_quota, "
        "allowed_models, allowed_ips, created_at, accessed_at) VALUES (%lld, %s, "
        "%s, %s, %s, %s, %lld, %lld, %lld, %lld, %s, %s, %lld, %lld)",
        14, args, NULL);
}

static int import_token(imp_t *im, const char **t)
{
    imp_count_t *c = &im->count[IMP_TOKENS];
    nebula_dbd_rows_t rows;
    const char *user, *hash, *args[1];

    c->source++;
    if (t[T_DELETED]) {
        c->skipped++;
        imp_note(im, "skip token %s: deleted in new-api", t[T_ID]);
        return CTL_EXIT_OK;
    }
    if (t[T_KEY] == NULL || strlen(t[T_KEY]) < 8) {
        c->skipped++;
        imp_note(im, "skip token %s: its key is empty or too short", t[T_ID]);
        return CTL_EXIT_OK;
    }
    user = t[T_USER] ? apr_hash_get(im->user_map, t[T_USER], APR_HASH_KEY_STRING) : NULL;
    if (user == NULL) {
        c->skipped++;
        imp_note(im, "skip token %s: its user %s was not imported", t[T_ID],
                 t[T_USER] ? t[T_USER] : "?");
        return CTL_EXIT_OK;
    }
    hash = nebula_apikey_hash(im->ctl->pool, t[T_KEY]);
    args[0] = hash;
    if (imp_select(im, "SELECT user_id FROM api_keys WHERE key_hash = %s", 1, args,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        if (rows.rows[0][0] && strcmp(rows.rows[0][0], user) == 0) {
            c->already++;
        }
        else {
            c->conflict++;
            imp_note(im, "conflict token %s: the same key belongs to user %s here",
                     t[T_ID], rows.rows[0][0] ? rows.rows[0][0] : "?");
        }
        return CTL_EXIT_OK;
    }
    if (insert_token(im, t, user, hash) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    c->imported++;
    return CTL_EXIT_OK;
}

int imp_tokens(imp_t *im)
{
    nebula_dbd_rows_t rows;
    int i;

    if (imp_src_select(im,
                       apr_psprintf(im->ctl->pool,
                                    "SELECT id, user_id, %s, status, name, created_time, "
                                    "accessed_time, expired_time, remain_quota, "
                                    "unlimited_quota, used_quota, model_limits_enabled, "
                                    "model_limits, allow_ips, %s, deleted_at FROM tokens "
                                    "ORDER BY id",
                                    imp_src_col(im, "key"), imp_src_col(im, "group")),
                       &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (import_token(im, rows.rows[i]) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* ctl_import_channels.c: channels and abilities of `nebulactl import-newapi`.
 *
 * A new-api channel type maps to one of our kinds (types[] below): OpenAI,
 * Azure, Anthropic and Gemini to their own, the OpenAI-compatible providers
 * to "openai-compatible" with new-api's default base URL when the channel
 * has none. Other types (Midjourney, Baidu, AWS, Vertex ...) are skipped and
 * listed with the reason. Keys (one, or new-api's multi-key lists) are
 * sealed with our keyring exactly as the admin API seals them (AAD
 * "nebula-channel-key:<id>"); per-key disabled states, the polling/random
 * mode, status (1 enabled, 2 disabled, 3 auto_disabled), priority, weight,
 * groups, models, model mapping, header override, test model and auto-ban
 * carry over. Abilities are derived as the admin API derives them
 * (channel_groups x models, enabled iff the channel is enabled), which is
 * what new-api's own abilities rows are made of; a channel whose derived
 * count differs from new-api's rows is noted.
 * A channel counts as imported already when one of ours has its name, kind
 * and the same upstream keys (opened with the keyring) in the same order. */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ctl_import.h"

typedef struct {
    int type;
    const char *name;     /* new-api's name of the type */
    const char *kind;     /* ours; NULL: not importable */
    const char *base_url; /* new-api's default base URL, when we need one */
} chan_type_t;

static const chan_type_t types[] = {
    {1, "OpenAI", "openai", NULL},
    {3, "Azure", "azure", NULL},
    {4, "Ollama", "openai-compatible", NULL},
    {8, "Custom", "openai-compatible", NULL},
    {14, "Anthropic", "anthropic", NULL},
    {20, "OpenRouter", "openai-compatible", "https://openrouter.ai/api"},
    {24, "Gemini", "gemini", NULL},
    {25, "Moonshot", "openai-compatible", "https://api.moonshot.cn"},
    {40, "SiliconFlow", "openai-compatible", "https://api.siliconflow.cn"},
    {42, "Mistral", "openai-compatible", "https://api.mistral.ai"},
    {43, "DeepSeek", "openai-compatible", "https://api.deepseek.com"},
    {47, "Xinference", "openai-compatible", NULL},
    {48, "xAI", "openai-compatible", "https://api.x.ai"},
    {2, "Midjourney", NULL, NULL},
    {5, "MidjourneyPlus", NULL, NULL},
    {15, "Baidu", NULL, NULL},
    {16, "Zhipu", NULL, NULL},
    {17, "Ali", NULL, NULL},
    {18, "Xunfei", NULL, NULL},
    {23, "Tencent", NULL, NULL},
    {26, "ZhipuV4", NULL, NULL},
    {27, "Perplexity", NULL, NULL},
    {33, "AWS", NULL, NULL},
    {34, "Cohere", NULL, NULL},
    {35, "MiniMax", NULL, NULL},
    {36, "Suno", NULL, NULL},
    {37, "Dify", NULL, NULL},
    {38, "Jina", NULL, NULL},
    {39, "Cloudflare", NULL, NULL},
    {41, "VertexAI", NULL, NULL},
    {44, "MokaAI", NULL, NULL},
    {45, "VolcEngine", NULL, NULL},
    {46, "BaiduV2", NULL, NULL},
    {49, "Coze", NULL, NULL},
    {50, "Kling", NULL, NULL},
    {51, "Jimeng", NULL, NULL},
    {52, "Vidu", NULL, NULL},
    {54, "DoubaoVideo", NULL, NULL},
    {55, "Sora", NULL, NULL},
    {56, "Replicate", NULL, NULL},
    {57, "Codex", NULL, NULL},
    {0, NULL, NULL, NULL},
};

enum {
    C_ID,
    C_TYPE,
    C_KEY,
    C_STATUS,
    C_NAME,
    C_WEIGHT,
    C_BASE,
    C_MODELS,
    C_GROUP,
    C_MAPPING,
    C_PRIORITY,
    C_AUTOBAN,
    C_TEST_MODEL,
    C_HEADERS,
    C_INFO,
    C_OTHER
};

/* One channel on its way in. */
typedef struct {
    const char **row;
    const chan_type_t *type;
    const char *base_url, *models, *groups, *mapping, *headers, *key_mode;
    apr_array_header_t *keys;     /* const char * */
    apr_array_header_t *disabled; /* int: 1 when that key is disabled */
    int nmodels, ngroups;
} chan_t;

static const chan_type_t *type_of(const char *t)
{
    int v = t ? atoi(t) : 0, i;

    for (i = 0; types[i].name; ++i) {
        if (types[i].type == v) {
            return &types[i];
        }
    }
    return NULL;
}

/* Comma list -> JSON array text (trimmed, empty items and repeats dropped). */
static const char *comma_json(imp_t *im, const char *text, int *n)
{
    json_t *a = json_array();
    char *copy = apr_pstrdup(im->ctl->pool, text ? text : ""), *tok, *last, *dump;
    const char *out;
    apr_hash_t *seen = apr_hash_make(im->ctl->pool);

    for (tok = apr_strtok(copy, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
        apr_size_t len;

        while (apr_isspace(*tok)) {
            ++tok;
        }
        for (len = strlen(tok); len > 0 && apr_isspace(tok[len - 1]); --len) {
            tok[len - 1] = '\0';
        }
        if (*tok && apr_hash_get(seen, tok, APR_HASH_KEY_STRING) == NULL) {
            apr_hash_set(seen, tok, APR_HASH_KEY_STRING, tok);
            json_array_append_new(a, json_string(tok));
        }
    }
    *n = (int)json_array_size(a);
    dump = json_dumps(a, JSON_COMPACT);
    out = apr_pstrdup(im->ctl->pool, dump ? dump : "[]");
    free(dump);
    json_decref(a);
    return out;
}

/* A JSON object of strings kept as compact text; NULL (noted) otherwise. */
static const char *string_map(imp_t *im, const char *text, const char *what,
                              const char *id)
{
    json_t *j, *v;
    const char *k;
    char *dump;
    const char *out;

    if (text == NULL) {
        return NULL;
    }
    j = nebula_json_parse(im->ctl->pool, text, strlen(text), 0, NULL);
    if (!json_is_object(j)) {
        imp_note(im, "channel %s: its %s is not a JSON object: dropped", id, what);
        return NULL;
    }
    json_object_foreach(j, k, v)
    {
        if (!json_is_string(v)) {
            imp_note(im, "channel %s: its %s has a value that is not a string: dropped",
                     id, what);
            return NULL;
        }
    }
    if (json_object_size(j) == 0) {
        return NULL;
    }
    dump = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    out = apr_pstrdup(im->ctl->pool, dump ? dump : "{}");
    free(dump);
    return out;
}

/* The channel's keys: one, or a multi-key list (one a line), with their
 * per-key states from channel_info; NULL reason on success. */
static const char *read_keys(imp_t *im, chan_t *c)
{
    const char *info = c->row[C_INFO], *key = c->row[C_KEY];
    json_t *ji =
        info ? nebula_json_parse(im->ctl->pool, info, strlen(info), 0, NULL) : NULL;
    json_t *states = json_object_get(ji, "multi_key_status_list");
    const char *mode = json_string_value(json_object_get(ji, "multi_key_mode"));
    int multi = json_is_true(json_object_get(ji, "is_multi_key")), i;
    char *copy, *tok, *last;

    c->keys = apr_array_make(im->ctl->pool, 1, sizeof(const char *));
    c->disabled = apr_array_make(im->ctl->pool, 1, sizeof(int));
    c->key_mode = mode && strcmp(mode, "random") == 0 ? "random" : "round_robin";
    if (key == NULL) {
        return "it has no key";
    }
    copy = apr_pstrdup(im->ctl->pool, key);
    for (tok = multi ? apr_strtok(copy, "\n", &last) : copy; tok;
         tok = multi ? apr_strtok(NULL, "\n", &last) : NULL) {
        apr_size_t n;
        const unsigned char *s;

        while (apr_isspace(*tok)) {
            ++tok;
        }
        for (n = strlen(tok); n > 0 && apr_isspace(tok[n - 1]); --n) {
            tok[n - 1] = '\0';
        }
        if (*tok == '\0') {
            continue;
        }
        for (s = (const unsigned char *)tok; *s; ++s) {
            if (*s < 0x21 || *s > 0x7e) {
                return "a key has characters that cannot go into a header (a JSON "
                       "credential?)";
            }
        }
        APR_ARRAY_PUSH(c->keys, const char *) = tok;
    }
    if (c->keys->nelts == 0) {
        return "it has no key";
    }
    for (i = 0; i < c->keys->nelts; ++i) {
        json_t *st = json_object_get(states, apr_psprintf(im->ctl->pool, "%d", i));
        APR_ARRAY_PUSH(c->disabled, int) =
            multi && json_is_integer(st) && json_integer_value(st) != 1;
    }
    return NULL;
}

/* base_url: the channel's (http/https, trailing '/' dropped), else the
 * type's default; NULL reason on success. */
static const char *read_base_url(imp_t *im, chan_t *c)
{
    const char *b = c->row[C_BASE];
    char *u;
    apr_size_t n;

    if (b == NULL) {
        b = c->type->base_url;
    }
    if (b == NULL) {
        if (strcmp(c->type->kind, "openai-compatible") == 0 ||
            strcmp(c->type->kind, "azure") == 0) {
            return "it has no base URL";
        }
        c->base_url = strcmp(c->type->kind, "openai") == 0 ? "https://api.openai.com"
                      : strcmp(c->type->kind, "anthropic") == 0
                          ? "https://api.anthropic.com"
                          : "https://generativelanguage.googleapis.com";
        return NULL;
    }
    if (strncmp(b, "http://", 7) && strncmp(b, "https://", 8)) {
        return "its base URL is not http(s)";
    }
    u = apr_pstrdup(im->ctl->pool, b);
    for (n = strlen(u); n > 8 && u[n - 1] == '/'; --n) {
        u[n - 1] = '\0';
    }
    if (strchr(u, '?') || strchr(u, '#') || strchr(u + 8, '@')) {
        return "its base URL has a query, fragment or credentials";
    }
    if (strcmp(c->type->kind, "azure") == 0 && c->row[C_OTHER]) {
        u = apr_pstrcat(im->ctl->pool, u, "?api-version=", c->row[C_OTHER], NULL);
    }
    c->base_url = u;
    return NULL;
}

/* Whether one of our channels already holds this one (see the file doc). */
static int find_same(imp_t *im, chan_t *c, const char **same)
{
    nebula_dbd_rows_t chans, keys;
    const char *args[2] = {c->row[C_NAME] ? c->row[C_NAME] : "", c->type->kind};
    int i, j;

    *same = NULL;
    if (imp_select(im,
                   "SELECT id FROM channels WHERE name = %s AND kind = %s ORDER BY id", 2,
                   args, &chans) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < chans.nrows && *same == NULL; ++i) {
        const char *aad =
            apr_pstrcat(im->ctl->pool, "nebula-channel-key:", chans.rows[i][0], NULL);
        int match;

        if (imp_select(im,
                       "SELECT key_ciphertext FROM channel_keys WHERE channel_id = %lld "
                       "ORDER BY id",
                       1, &chans.rows[i][0], &keys) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
        match = keys.nrows == c->keys->nelts;
        for (j = 0; match && j < keys.nrows; ++j) {
            char *plain = NULL;

            match = keys.rows[j][0] &&
                    nebula_crypto_open(im->ctl->pool, im->keyring, keys.rows[j][0], aad,
                                       strlen(aad), &plain, NULL) == APR_SUCCESS &&
                    strcmp(plain, APR_ARRAY_IDX(c->keys, j, const char *)) == 0;
        }
        if (match) {
            *same = chans.rows[i][0];
        }
    }
    return CTL_EXIT_OK;
}

static const char *mask_key(apr_pool_t *p, const char *k)
{
    apr_size_t n = strlen(k);

    if (n >= 16) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 5), "\xe2\x80\xa6", k + n - 4, NULL);
    }
    if (n >= 8) {
        return apr_pstrcat(p, apr_pstrndup(p, k, 2), "\xe2\x80\xa6", k + n - 2, NULL);
    }
    return "\xe2\x80\xa6";
}

static int insert_keys(imp_t *im, chan_t *c, apr_int64_t id)
{
    const char *aad =
        apr_psprintf(im->ctl->pool, "nebula-channel-key:%" APR_INT64_T_FMT, id);
    int i;

    for (i = 0; i < c->keys->nelts; ++i) {
        const char *k = APR_ARRAY_IDX(c->keys, i, const char *), *sealed, *args[6];
        int off = APR_ARRAY_IDX(c->disabled, i, int);

        if (nebula_crypto_seal(im->ctl->pool, im->keyring, k, strlen(k), aad, strlen(aad),
                               &sealed) != APR_SUCCESS) {
            ctl_error("cannot encrypt an upstream key");
            return CTL_EXIT_ERROR;
        }
        args[0] = imp_i64(im, id);
        args[1] = sealed;
        args[2] = off ? "disabled" : "enabled";
        args[3] = mask_key(im->ctl->pool, k);
        args[4] = imp_i64(im, im->now_ms);
        args[5] = off ? args[4] : NULL;
        if (imp_exec(im,
                     "INSERT INTO channel_keys (channel_id, key_ciphertext, key_version, "
                     "status, cooldown_until, failures, key_masked, created_at, "
                     "disabled_at) VALUES (%lld, %s, 1, %s, 0, 0, %s, %lld, %lld)",
                     6, args, NULL) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* Abilities as relay_abilities_rebuild() makes them; their count. */
static int insert_abilities(imp_t *im, chan_t *c, apr_int64_t id, const char *status,
                            int *n)
{
    json_t *models =
        nebula_json_parse(im->ctl->pool, c->models, strlen(c->models), 0, NULL);
    json_t *groups =
        nebula_json_parse(im->ctl->pool, c->groups, strlen(c->groups), 0, NULL);
    json_t *g, *m;
    size_t i, j;

    *n = 0;
    json_array_foreach(groups, i, g)
    {
        json_array_foreach(models, j, m)
        {
            const char *args[6];

            args[0] = json_string_value(g);
            args[1] = json_string_value(m);
            args[2] = imp_i64(im, id);
            args[3] = strcmp(status, "enabled") ? "0" : "1";
            args[4] =
                imp_i64(im, c->row[C_PRIORITY] ? apr_atoi64(c->row[C_PRIORITY]) : 0);
            args[5] = imp_i64(im, c->row[C_WEIGHT] && apr_atoi64(c->row[C_WEIGHT]) > 0
                                      ? apr_atoi64(c->row[C_WEIGHT])
                                      : 1);
            if (imp_exec(im,
                         "INSERT INTO abilities (user_group, model, channel_id, enabled, "
                         "priority, weight) VALUES (%s, %s, %lld, %lld, %lld, %lld)",
                         6, args, NULL) != CTL_EXIT_OK) {
                return CTL_EXIT_ERROR;
            }
            ++*n;
        }
    }
    return CTL_EXIT_OK;
}

static int insert_channel(imp_t *im, chan_t *c, apr_int64_t *id, const char **status)
{
    const char *args[17];
    apr_int64_t st = c->row[C_STATUS] ? apr_atoi64(c->row[C_STATUS]) : 1;
    apr_int64_t w = c->row[C_WEIGHT] ? apr_atoi64(c->row[C_WEIGHT]) : 0;

    *status = st == 1 ? "enabled" : st == 3 ? "auto_disabled" : "disabled";
    args[0] = c->row[C_NAME] ? c->row[C_NAME] : "";
    args[1] = c->type->kind;
    args[2] = c->base_url;
    args[3] = c->models;
    args[4] = c->mapping;
    args[5] = c->groups;
    args[6] = imp_i64(im, c->row[C_PRIORITY] ? apr_atoi64(c->row[C_PRIORITY]) : 0);
    args[7] = imp_i64(im, w > 0 ? w : 1);
    args[8] = *status;
    args[9] = st == 1   ? NULL
              : st == 3 ? "auto-disabled in new-api"
                        : "disabled in new-api";
    args[10] = c->headers;
    args[11] = c->row[C_AUTOBAN] && apr_atoi64(c->row[C_AUTOBAN]) == 0 ? "0" : "1";
    args[12] = c->key_mode;
    args[13] = c->row[C_TEST_MODEL];
    args[14] = imp_i64(im, im->now_ms);
    args[15] = args[14];
    args[16] = args[14];
    return imp_insert(
        im,
        "INSERT INTO channels (name, kind, base_url, models, model_mapping, "
        "channel_groups, priority, weight, status, status_reason, "
        "header_override, timeout_ms, auto_disable, key_mode, test_model, "
        "status_changed_at, created_at, updated_at) VALUES (%s, %s, %s, %s, "
        "%s, %s, %lld, %lld, %s, %s, %s, 0, %lld, %s, %s, %lld, %lld, %lld)",
        17, args, id);
}

static void skip(imp_t *im, chan_t *c, int nabilities, const char *why)
{
    im->count[IMP_CHANNELS].skipped++;
    im->count[IMP_ABILITIES].skipped += nabilities;
    imp_note(im, "skip channel %s '%s' (type %s%s%s): %s", c->row[C_ID],
             c->row[C_NAME] ? c->row[C_NAME] : "", c->row[C_TYPE] ? c->row[C_TYPE] : "?",
             c->type ? " " : "", c->type ? c->type->name : "", why);
}

static int import_channel(imp_t *im, const char **row, int nabilities)
{
    chan_t c;
    const char *why, *same, *status;
    apr_int64_t id;
    int n;

    memset(&c, 0, sizeof(c));
    c.row = row;
    c.type = type_of(row[C_TYPE]);
    im->count[IMP_CHANNELS].source++;
    im->count[IMP_ABILITIES].source += nabilities;
    if (c.type == NULL || c.type->kind == NULL) {
        skip(im, &c, nabilities, "no NebulaGate protocol for this type");
        return CTL_EXIT_OK;
    }
    if ((why = read_keys(im, &c)) != NULL || (why = read_base_url(im, &c)) != NULL) {
        skip(im, &c, nabilities, why);
        return CTL_EXIT_OK;
    }
    c.models = comma_json(im, row[C_MODELS], &c.nmodels);
    c.groups = comma_json(im, row[C_GROUP] ? row[C_GROUP] : "default", &c.ngroups);
    if (c.nmodels == 0) {
        skip(im, &c, nabilities, "it serves no model");
        return CTL_EXIT_OK;
    }
    c.mapping = string_map(im, row[C_MAPPING], "model_mapping", row[C_ID]);
    c.headers = string_map(im, row[C_HEADERS], "header_override", row[C_ID]);
    if (find_same(im, &c, &same) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (same) {
        imp_note(im, "channel %s '%s' (type %s %s): imported already as channel %s",
                 row[C_ID], row[C_NAME] ? row[C_NAME] : "", row[C_TYPE], c.type->name,
                 same);
        im->count[IMP_CHANNELS].already++;
        im->count[IMP_ABILITIES].already += nabilities;
        return CTL_EXIT_OK;
    }
    if (insert_channel(im, &c, &id, &status) != CTL_EXIT_OK ||
        insert_keys(im, &c, id) != CTL_EXIT_OK ||
        insert_abilities(im, &c, id, status, &n) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    imp_note(im,
             "channel %s '%s' (type %s %s) -> channel %" APR_INT64_T_FMT
             " kind %s, %d key(s), %s",
             row[C_ID], row[C_NAME] ? row[C_NAME] : "", row[C_TYPE], c.type->name, id,
             c.type->kind, c.keys->nelts, status);
    im->count[IMP_CHANNELS].imported++;
    im->count[IMP_ABILITIES].imported += n;
    if (n != nabilities) {
        imp_note(
            im, "channel %s: %d abilities from its groups x models (new-api had %d rows)",
            row[C_ID], n, nabilities);
    }
    apr_hash_set(im->chan_map, row[C_ID], APR_HASH_KEY_STRING, imp_i64(im, id));
    return CTL_EXIT_OK;
}

/* new-api's abilities rows per channel id. */
static int count_abilities(imp_t *im, apr_hash_t *per_channel)
{
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int exists = 0, i;

    if (nebula_dbd_table_exists(im->src.driver, im->src.handle, "abilities", &exists,
                                &err, im->ctl->pool)) {
        ctl_error("reading the new-api database: %s", err ? err : "unknown error");
        return CTL_EXIT_ERROR;
    }
    if (!exists) {
        return CTL_EXIT_OK;
    }
    if (imp_src_select(im,
                       "SELECT channel_id, COUNT(*) FROM abilities GROUP BY channel_id",
                       &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (rows.rows[i][0]) {
            apr_hash_set(per_channel, rows.rows[i][0], APR_HASH_KEY_STRING,
                         rows.rows[i][1]);
        }
    }
    return CTL_EXIT_OK;
}

int imp_channels(imp_t *im)
{
    apr_hash_t *per_channel = apr_hash_make(im->ctl->pool);
    nebula_dbd_rows_t rows;
    int i;

    if (count_abilities(im, per_channel) != CTL_EXIT_OK ||
        imp_src_select(
            im,
            apr_psprintf(im->ctl->pool,
                         "SELECT id, type, %s, status, name, weight, base_url, "
                         "models, %s, model_mapping, priority, auto_ban, "
                         "test_model, header_override, channel_info, other FROM "
                         "channels ORDER BY id",
                         imp_src_col(im, "key"), imp_src_col(im, "group")),
            &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        const char *na = apr_hash_get(per_channel, rows.rows[i][0] ? rows.rows[i][0] : "",
                                      APR_HASH_KEY_STRING);

        if (import_channel(im, rows.rows[i], na ? atoi(na) : 0) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

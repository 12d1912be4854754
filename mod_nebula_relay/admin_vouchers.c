/* admin_vouchers.c: vouchers and new-api redemption codes (docs/vouchers.md,
 * docs/admin-api.md "Vouchers").
 *
 * Codes are made here, with the CSPRNG: a voucher code is 16 characters of
 * Crockford's base32 (no I, L, O, U) and one check character (Luhn mod 32
 * over the prefix and the 16), shown as [PREFIX-]XXXX-XXXX-XXXX-XXXX-C; a
 * new-api code is 32 lowercase hex digits (a UUIDv4 without dashes, as
 * new-api makes them). A code is stored only as its HMAC-SHA256 under the
 * voucher key (voucher_key(): sealed in the database with the relay
 * keyring, so a dump of the database cannot test guesses, and a secret
 * rotation keeps every code valid) and, until its batch's one export,
 * sealed with the relay keyring.
 *
 * Redemption normalises what the user typed (case, dashes, spaces, O -> 0,
 * I/L -> 1), refuses a wrong check character before any lookup, hashes the
 * rest (whatever it is: the same work for every guess) and hands the hash to
 * mod_nebula_billing's nebula_billing_redeem(), which owns the lookup, the
 * limits, the lockout and the ledger row. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_billing.h"
#include "nebula_crypto.h"

/** Crockford's base32 alphabet: what codes are made of. */
static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
#define CODE_BODY         16 /* random characters of a voucher code (80 bits) */
#define CODE_MAX_PREFIX   8
#define NEWAPI_LEN        32
#define VOUCHER_MAX_CODES 10000
#define NEWAPI_MAX_CODES  100
#define VOUCHER_MAX_INPUT 128

/* ---- codes ---------------------------------------------------------------- */

static int symbol_value(char c)
{
    const char *at = strchr(alphabet, c);

    return (c && at) ? (int)(at - alphabet) : -1;
}

/* Luhn mod 32: the check value of @a s (all alphabet characters). */
static int luhn_check(const char *s, apr_size_t n)
{
    int factor = 2, sum = 0, addend;
    apr_size_t i;

    for (i = n; i-- > 0;) {
        addend = factor * symbol_value(s[i]);
        factor = factor == 2 ? 1 : 2;
        sum += addend / 32 + addend % 32;
    }
    return (32 - sum % 32) % 32;
}

/* What the user typed, normalised: *@a newapi set for 32 hex digits
 * (lowercased); else upper case with O -> 0 and I, L -> 1. Dashes, spaces
 * and tabs are dropped. *@a mistyped is set when it is shaped like a voucher
 * code but its check character is wrong. Never NULL. */
static const char *code_normalise(apr_pool_t *p, const char *in, int *newapi,
                                  int *mistyped)
{
    apr_size_t n = strlen(in), i, k = 0, hex = 0;
    char *s = apr_palloc(p, n + 1);
    int ok = 1;

    *newapi = 0;
    *mistyped = 0;
    for (i = 0; i < n; ++i) {
        char c = in[i];

        if (c == '-' || c == ' ' || c == '\t') {
            continue;
        }
        s[k++] = c;
        hex += apr_isxdigit(c) != 0;
    }
    s[k] = '\0';
    if (k == NEWAPI_LEN && hex == k) {
        for (i = 0; i < k; ++i) {
            s[i] = (char)apr_tolower(s[i]);
        }
        *newapi = 1;
        return s;
    }
    for (i = 0; i < k; ++i) {
        char c = (char)apr_toupper(s[i]);

        c = c == 'O' ? '0' : (c == 'I' || c == 'L') ? '1' : c;
        s[i] = c;
        ok = ok && symbol_value(c) >= 0;
    }
    if (ok && k >= CODE_BODY + 1 && k <= CODE_BODY + 1 + CODE_MAX_PREFIX &&
        luhn_check(s, k - 1) != symbol_value(s[k - 1])) {
        *mistyped = 1;
    }
    return s;
}

/* The key of the codes' hashes (nebula_secrets, migration 0010), opened
 * with the keyring (the previous secret's too, mid-rotation). The first use
 * sets it to NebulaCryptoSecret, the key of the hashes made before the
 * table existed; `nebulactl rotate-secret` re-seals it, so the hashes, and
 * the codes already handed out, outlive a rotation. NULL after an error was
 * sent. */
static const char *voucher_key(admin_req_t *a)
{
    static const char aad[] = NEBULA_SECRETS_AAD NEBULA_VOUCHER_KEY_NAME;
    nebula_dbd_rows_t rows;
    const char *args[2], *sealed;
    char *plain;
    apr_size_t len;
    int first;

    for (first = 1;; first = 0) {
        if (admin_db_select(a,
                            "SELECT sealed FROM nebula_secrets WHERE name = '"
                            NEBULA_VOUCHER_KEY_NAME "'",
                            0, NULL, &rows) != APR_SUCCESS) {
            admin_db_fail(a, "read the voucher key");
            return NULL;
        }
        if (rows.nrows == 1 && rows.rows[0][0] && *rows.rows[0][0]) {
            break;
        }
        if (rows.nrows != 1 || !first) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                          "NEB01601: vouchers: nebula_secrets has no %s row "
                          "(run nebulactl migrate)", NEBULA_VOUCHER_KEY_NAME);
            admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                        "the voucher key is missing (see the server log)");
            return NULL;
        }
        /* the first use: the secret itself; a racing host's value wins */
        if (nebula_crypto_seal(a->r->pool, a->sc->keyring, a->sc->crypto_secret,
                               strlen(a->sc->crypto_secret), aad, sizeof(aad) - 1,
                               &sealed) != APR_SUCCESS) {
            admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                        "the voucher key could not be sealed");
            return NULL;
        }
        args[0] = sealed;
        args[1] = admin_i64(a, admin_now_ms());
        if (admin_db_exec(a,
                          "UPDATE nebula_secrets SET sealed = %s, updated_at = %lld WHERE "
                          "name = '" NEBULA_VOUCHER_KEY_NAME "' AND sealed IS NULL",
                          2, args, NULL) != APR_SUCCESS) {
            admin_db_fail(a, "set the voucher key");
            return NULL;
        }
    }
    if (nebula_crypto_open(a->r->pool, a->sc->keyring, rows.rows[0][0], aad,
                           sizeof(aad) - 1, &plain, &len) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                      "NEB01602: vouchers: the voucher key cannot be opened (another "
                      "NebulaCryptoSecret, or a rotation without "
                      "NebulaCryptoSecretPrevious?)");
        admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                    "the voucher key cannot be decrypted (see the server log)");
        return NULL;
    }
    return plain;
}

/* A fresh code: *@a shown as the user sees it, *@a norm normalised. */
static apr_status_t code_make(apr_pool_t *p, const char *prefix, int newapi,
                              const char **shown, const char **norm)
{
    unsigned char rnd[CODE_BODY];
    char body[CODE_BODY + CODE_MAX_PREFIX + 2];
    apr_size_t plen = strlen(prefix), i;
    apr_status_t rv;

    if ((rv = nebula_crypto_random(rnd, sizeof(rnd))) != APR_SUCCESS) {
        return rv;
    }
    if (newapi) { /* a UUIDv4, as new-api's common.GetUUID(), without dashes */
        rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40);
        rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80);
        *norm = *shown = nebula_crypto_hex(p, rnd, sizeof(rnd));
        return APR_SUCCESS;
    }
    memcpy(body, prefix, plen);
    for (i = 0; i < CODE_BODY; ++i) {
        body[plen + i] = alphabet[rnd[i] & 0x1f]; /* 256 = 8 x 32: unbiased */
    }
    body[plen + CODE_BODY] = alphabet[luhn_check(body, plen + CODE_BODY)];
    body[plen + CODE_BODY + 1] = '\0';
    *norm = apr_pstrdup(p, body);
    *shown = apr_psprintf(p, "%s%s%.4s-%.4s-%.4s-%.4s-%c", prefix, plen ? "-" : "",
                          body + plen, body + plen + 4, body + plen + 8, body + plen + 12,
                          body[plen + CODE_BODY]);
    return APR_SUCCESS;
}

static int need_secret(admin_req_t *a)
{
    if (a->sc->crypto_secret && a->sc->keyring) {
        return 1;
    }
    admin_error(a, HTTP_SERVICE_UNAVAILABLE, "crypto_unavailable", NULL,
                "vouchers need NebulaCryptoSecret (codes are stored only as its HMAC)");
    return 0;
}

/* Insert @a n codes of batch @a batch_id (in the caller's transaction);
 * @a keys (if not NULL) receives the codes as shown, which are then not
 * kept (new-api answers them at once). APR_SUCCESS or an error was sent. */
static apr_status_t codes_insert(admin_req_t *a, apr_int64_t batch_id, apr_int64_t n,
                                 const char *prefix, int newapi, apr_int64_t max_uses,
                                 json_t *keys)
{
    apr_pool_t *sub;
    const char *args[6], *shown, *norm, *hash, *sealed, *aad;
    const char *bid = admin_i64(a, batch_id), *uses = admin_i64(a, max_uses),
               *now = admin_i64(a, admin_now_ms());
    const char *key = voucher_key(a);
    apr_int64_t i;
    apr_size_t len;

    if (key == NULL) {
        return APR_EGENERAL;
    }
    apr_pool_create(&sub, a->r->pool);
    for (i = 0; i < n; ++i) {
        apr_pool_clear(sub);
        if (code_make(sub, prefix, newapi, &shown, &norm) != APR_SUCCESS ||
            (hash = nebula_crypto_voucher_hash(sub, key, norm)) == NULL) {
            admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                        "no random bytes or no HMAC for a voucher code");
            return APR_EGENERAL;
        }
        aad = apr_pstrcat(sub, "voucher_codes:", hash, NULL);
        sealed = NULL;
        if (keys == NULL &&
            nebula_crypto_seal(sub, a->sc->keyring, shown, strlen(shown), aad,
                               strlen(aad), &sealed) != APR_SUCCESS) {
            admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                        "a voucher code could not be sealed");
            return APR_EGENERAL;
        }
        len = strlen(norm);
        args[0] = bid;
        args[1] = hash;
        args[2] = sealed;
        args[3] = norm + (len > 4 ? len - 4 : 0);
        args[4] = uses;
        args[5] = now;
        if (admin_db_exec(
                a,
                "INSERT INTO voucher_codes (batch_id, code_hash, code_enc, hint, "
                "uses, max_uses, status, created_at) VALUES (%lld, %s, %s, %s, 0, "
                "%lld, 'active', %lld)",
                6, args, NULL) != APR_SUCCESS) {
            admin_db_fail(a, "insert a voucher code");
            return APR_EGENERAL;
        }
        if (keys) {
            json_array_append_new(keys, json_string(shown));
        }
    }
    apr_pool_destroy(sub);
    return APR_SUCCESS;
}

/* ---- batches -------------------------------------------------------------- */

static const admin_col_t batch_cols[] = {
    {"id", NULL, ADMIN_COL_INT},
    {"name", NULL, ADMIN_COL_STR},
    {"note", NULL, ADMIN_COL_STR},
    {"kind", NULL, ADMIN_COL_STR},
    {"amount", NULL, ADMIN_COL_INT},
    {"plan_id", NULL, ADMIN_COL_NINT},
    {"plan_days", NULL, ADMIN_COL_INT},
    {"starts_at", NULL, ADMIN_COL_INT},
    {"expires_at", NULL, ADMIN_COL_INT},
    {"scope", NULL, ADMIN_COL_JSON},
    {"total_uses", NULL, ADMIN_COL_INT},
    {"per_user", NULL, ADMIN_COL_INT},
    {"prefix", NULL, ADMIN_COL_STR},
    {"codes", NULL, ADMIN_COL_INT},
    {"redeemed", NULL, ADMIN_COL_INT},
    {"remaining",
     "CASE WHEN b.total_uses > 0 THEN b.total_uses - b.redeemed ELSE (SELECT "
     "COALESCE(SUM(c.max_uses - c.uses), 0) FROM voucher_codes c WHERE c.batch_id = b.id "
     "AND c.status = 'active') END",
     ADMIN_COL_INT},
    {"users",
     "(SELECT COUNT(DISTINCT v.user_id) FROM voucher_redemptions v WHERE "
     "v.batch_id = b.id)",
     ADMIN_COL_INT},
    {"last_redeemed_at",
     "(SELECT MAX(v.redeemed_at) FROM voucher_redemptions v WHERE "
     "v.batch_id = b.id)",
     ADMIN_COL_NINT},
    {"status", NULL, ADMIN_COL_STR},
    {"format", NULL, ADMIN_COL_STR},
    {"created_by", NULL, ADMIN_COL_STR},
    {"created_at", NULL, ADMIN_COL_INT},
    {"updated_at", NULL, ADMIN_COL_INT},
    {"exported_at", NULL, ADMIN_COL_NINT},
    {NULL, NULL, 0}};

static json_t *batch_json(admin_req_t *a, apr_int64_t id)
{
    const char *args[1] = {admin_i64(a, id)};
    nebula_dbd_rows_t rows;
    const char *sql =
        apr_pstrcat(a->r->pool, "SELECT ", admin_cols_sql(a, batch_cols, "b"),
                    " FROM voucher_batches b WHERE b.id = %lld", NULL);

    if (admin_db_select(a, sql, 1, args, &rows) != APR_SUCCESS || rows.nrows != 1) {
        return NULL;
    }
    return admin_row_json(&rows, 0, 0, batch_cols);
}

static const char *const kinds[] = {"quota", "plan", NULL};
static const char *const batch_statuses[] = {"active", "disabled", NULL};

/* The plan of a plan voucher: its allowed_models (JSON text or NULL) in
 * *@a models; 0 and an error recorded when it is not an active plan. */
static int plan_check(admin_req_t *a, apr_int64_t plan_id, const char **models)
{
    const char *args[1] = {admin_i64(a, plan_id)};
    nebula_dbd_rows_t rows;

    if (admin_db_select(a, "SELECT status, allowed_models FROM plans WHERE id = %lld", 1,
                        args, &rows) != APR_SUCCESS) {
        admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                   "database error while reading a plan");
        return 0;
    }
    if (rows.nrows != 1 || strcmp(rows.rows[0][0], "active") != 0) {
        admin_invalid(a, "plan_id", "plan %" APR_INT64_T_FMT " %s", plan_id,
                      rows.nrows ? "is not active" : "does not exist");
        return 0;
    }
    *models = rows.rows[0][1];
    return 1;
}

/* The "scope" member: {"groups": [...], "plans": [ids], "models": [...]};
 * models only for plan vouchers, and only models the plan covers. */
static json_t *scope_read(admin_req_t *a, json_t *b, const char *kind,
                          apr_int64_t plan_id)
{
    json_t *scope = json_object_get(b, "scope"), *out, *groups = NULL, *models = NULL, *v,
           *pm;
    json_t *plans;
    const char *allowed = NULL;
    const char *const members[] = {"groups", "plans", "models", NULL};
    size_t i, j;
    int found;

    if (scope == NULL || json_is_null(scope)) {
        return NULL;
    }
    if (!json_is_object(scope)) {
        admin_invalid(a, "scope",
                      "'scope' must be an object with groups, plans and models");
        return NULL;
    }
    if (admin_only_fields(a, scope, members) == ADMIN_BAD ||
        admin_field_strarray(a, scope, "groups", 0, 100, 64, &groups) == ADMIN_BAD ||
        admin_field_strarray(a, scope, "models", 0, 1000, 255, &models) == ADMIN_BAD) {
        return NULL;
    }
    out = nebula_json_own(a->r->pool, json_object());
    if (groups && json_array_size(groups)) {
        if (!admin_groups_check(a, "scope.groups", groups)) {
            return NULL;
        }
        json_object_set(out, "groups", groups);
    }
    plans = json_object_get(scope, "plans");
    if (plans && !json_is_null(plans)) {
        if (!json_is_array(plans) || json_array_size(plans) > 100) {
            admin_invalid(a, "scope.plans", "'scope.plans' must be an array of plan ids");
            return NULL;
        }
        json_array_foreach(plans, i, v)
        {
            const char *args[1];
            nebula_dbd_rows_t rows;

            if (!json_is_integer(v) || json_integer_value(v) < 1) {
                admin_invalid(a, "scope.plans", "'scope.plans' must hold plan ids");
                return NULL;
            }
            args[0] = admin_i64(a, json_integer_value(v));
            if (admin_db_select(a, "SELECT id FROM plans WHERE id = %lld", 1, args,
                                &rows) != APR_SUCCESS) {
                admin_fail(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                           "database error while reading a plan");
                return NULL;
            }
            if (rows.nrows == 0) {
                admin_invalid(a, "scope.plans", "plan %s does not exist", args[0]);
                return NULL;
            }
        }
        if (json_array_size(plans)) {
            json_object_set(out, "plans", plans);
        }
    }
    if (models && json_array_size(models)) {
        if (strcmp(kind, "plan") != 0) {
            admin_invalid(a, "scope.models",
                          "a quota voucher credits the wallet, which pays for any model: "
                          "limit models with a plan (allowed_models) and a plan voucher");
            return NULL;
        }
        if (!plan_check(a, plan_id, &allowed)) {
            return NULL;
        }
        pm = allowed ? nebula_json_parse(a->r->pool, allowed, strlen(allowed), 0, NULL)
                     : NULL;
        json_array_foreach(models, i, v)
        {
            json_t *w;

            found = !json_is_array(pm); /* a plan without a list covers every model */
            json_array_foreach(pm, j, w)
            {
                found = found || (json_is_string(w) && strcmp(json_string_value(w),
                                                              json_string_value(v)) == 0);
            }
            if (!found) {
                admin_invalid(a, "scope.models",
                              "the plan %" APR_INT64_T_FMT
                              " does not cover the model '%s'",
                              plan_id, json_string_value(v));
                return NULL;
            }
        }
        json_object_set(out, "models", models);
    }
    return json_object_size(out) ? out : NULL;
}

static int vouchers_create(admin_req_t *a)
{
    static const char *const allowed[] = {
        "name",      "note",      "kind",       "amount", "plan_id",
        "plan_days", "starts_at", "expires_at", "scope",  "total_uses",
        "per_user",  "codes",     "prefix",     NULL};
    json_t *b = admin_body(a), *scope, *out;
    const char *name = NULL, *note = "", *kind = "quota", *prefix = "", *args[16];
    apr_int64_t amount = 0, plan_id = 0, days = 0, starts = 0, expires = 0, total = 0,
                per_user = 1, n = 1, id, now = admin_now_ms(), max_uses;
    int st_amount, st_plan;
    char *pfx;
    apr_size_t i;

    if (b == NULL || admin_only_fields(a, b, allowed) == ADMIN_BAD) {
        return admin_send_recorded(a);
    }
    admin_field_str(a, b, "name", ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY, 64, &name);
    admin_field_str(a, b, "note", 0, 1024, &note);
    admin_field_enum(a, b, "kind", 0, kinds, &kind);
    st_amount = admin_field_int(a, b, "amount", 0, 1, ADMIN_MAX_AMOUNT, &amount);
    st_plan = admin_field_int(a, b, "plan_id", 0, 1, ADMIN_MAX_AMOUNT, &plan_id);
    admin_field_int(a, b, "plan_days", 0, 0, 36500, &days);
    admin_field_int(a, b, "starts_at", 0, 0, ADMIN_MAX_AMOUNT, &starts);
    admin_field_int(a, b, "expires_at", 0, 0, ADMIN_MAX_AMOUNT, &expires);
    admin_field_int(a, b, "total_uses", 0, 0, 100000000, &total);
    admin_field_int(a, b, "per_user", 0, 1, 1000000, &per_user);
    admin_field_int(a, b, "codes", 0, 1, VOUCHER_MAX_CODES, &n);
    admin_field_str(a, b, "prefix", 0, CODE_MAX_PREFIX, &prefix);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    pfx = apr_pstrdup(a->r->pool, prefix);
    for (i = 0; pfx[i]; ++i) {
        char c = (char)apr_toupper(pfx[i]);

        pfx[i] = c == 'O' ? '0' : (c == 'I' || c == 'L') ? '1' : c;
        if (symbol_value(pfx[i]) < 0) {
            return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", "prefix",
                               "'prefix' may hold only the characters %s", alphabet);
        }
    }
    if (strcmp(kind, "quota") == 0 && (st_amount != ADMIN_SET || st_plan == ADMIN_SET)) {
        return admin_error(
            a, HTTP_BAD_REQUEST, "invalid_field",
            st_plan == ADMIN_SET ? "plan_id" : "amount",
            "a quota voucher needs 'amount' (quota units) and no 'plan_id'");
    }
    if (strcmp(kind, "plan") == 0) {
        const char *models;

        if (st_plan != ADMIN_SET || st_amount == ADMIN_SET) {
            return admin_error(a, HTTP_BAD_REQUEST, "invalid_field",
                               st_amount == ADMIN_SET ? "amount" : "plan_id",
                               "a plan voucher needs 'plan_id' (and 'plan_days', 0: no "
                               "end) and no 'amount'");
        }
        if (!admin_db(a)) {
            return OK;
        }
        if (!plan_check(a, plan_id, &models)) {
            return admin_send_recorded(a);
        }
    }
    if (expires && expires <= (starts > now ? starts : now)) {
        return admin_error(a, HTTP_BAD_REQUEST, "invalid_field", "expires_at",
                           "'expires_at' must be later than 'starts_at' and than now");
    }
    if (!need_secret(a) || !admin_db(a)) {
        return OK;
    }
    scope = scope_read(a, b, kind, plan_id);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    max_uses = total > 0 ? total : 1;
    args[0] = name;
    args[1] = note;
    args[2] = kind;
    args[3] = admin_i64(a, amount);
    args[4] = plan_id ? admin_i64(a, plan_id) : NULL;
    args[5] = admin_i64(a, days);
    args[6] = admin_i64(a, starts);
    args[7] = admin_i64(a, expires);
    args[8] = scope ? admin_json_text(a, scope) : NULL;
    args[9] = admin_i64(a, total);
    args[10] = admin_i64(a, per_user);
    args[11] = admin_i64(a, n);
    args[12] = pfx;
    args[13] = admin_billing_actor(a);
    args[14] = admin_i64(a, now);
    args[15] = args[14];
    if (admin_db_begin(a) != APR_SUCCESS) {
        return admin_db_fail(a, "begin");
    }
    if (admin_db_insert(
            a,
            "INSERT INTO voucher_batches (name, note, kind, amount, plan_id, "
            "plan_days, starts_at, expires_at, scope, total_uses, per_user, codes, "
            "redeemed, prefix, status, format, created_by, created_at, updated_at) "
            "VALUES (%s, %s, %s, %lld, %lld, %lld, %lld, %lld, %s, %lld, %lld, "
            "%lld, 0, %s, 'active', 'voucher', %s, %lld, %lld)",
            16, args, &id) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "insert a voucher batch");
    }
    if (codes_insert(a, id, n, pfx, 0, max_uses, NULL) != APR_SUCCESS) {
        admin_db_rollback(a);
        return OK;
    }
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, "commit a voucher batch");
    }
    admin_audit(a, "voucher.create",
                apr_psprintf(a->r->pool,
                             "batch %" APR_INT64_T_FMT " '%s': %" APR_INT64_T_FMT
                             " codes, %s",
                             id, name, n, kind));
    out = batch_json(a, id);
    return admin_send_data(a, HTTP_CREATED, out);
}

static int vouchers_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "status", "format", NULL};
    static const char *const formats[] = {"voucher", "newapi", NULL};
    apr_int64_t page, per_page;
    const char *status = NULL, *format = NULL;
    admin_sql_t w;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_enum(a, "status", batch_statuses, &status);
    admin_query_enum(a, "format", formats, &format);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM voucher_batches b");
    if (status) {
        admin_sql_where(&w, "b.status = %s", status);
    }
    if (format) {
        admin_sql_where(&w, "b.format = %s", format);
    }
    return admin_db_send_page(a, &w, batch_cols, "b", "b.id DESC", page, per_page,
                              "voucher batches");
}

static const admin_col_t redemption_cols[] = {
    {"id", "v.id", ADMIN_COL_INT},
    {"user_id", "v.user_id", ADMIN_COL_INT},
    {"username", "(SELECT u.username FROM users u WHERE u.id = v.user_id)",
     ADMIN_COL_NSTR},
    {"code_id", "v.code_id", ADMIN_COL_INT},
    {"code_hint", "(SELECT c.hint FROM voucher_codes c WHERE c.id = v.code_id)",
     ADMIN_COL_NSTR},
    {"use_no", "v.use_no", ADMIN_COL_INT},
    {"amount", "v.amount", ADMIN_COL_INT},
    {"ledger_id", "v.ledger_id", ADMIN_COL_NINT},
    {"sub_id", "v.sub_id", ADMIN_COL_NINT},
    {"actor", "v.actor", ADMIN_COL_STR},
    {"client_ip", "v.client_ip", ADMIN_COL_STR},
    {"redeemed_at", "v.redeemed_at", ADMIN_COL_INT},
    {NULL, NULL, 0}};

/* GET /api/vouchers/{id}: the batch with its statistics and a page of its
 * redemptions (who, when), newest first. */
static int vouchers_get(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", NULL};
    apr_int64_t page, per_page, total;
    const char *args[3], *sql;
    nebula_dbd_rows_t rows;
    json_t *batch, *list, *o;
    int i;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if ((batch = batch_json(a, a->id[0])) == NULL) {
        return admin_send_found(a, NULL, "voucher batch");
    }
    nebula_json_own(a->r->pool, batch);
    args[0] = a->param[0];
    total =
        admin_db_count(a, "FROM voucher_redemptions v WHERE v.batch_id = %lld", 1, args);
    args[1] = admin_i64(a, per_page);
    args[2] = admin_i64(a, (page - 1) * per_page);
    sql = apr_pstrcat(
        a->r->pool, "SELECT ", admin_cols_sql(a, redemption_cols, NULL),
        " FROM voucher_redemptions v WHERE v.batch_id = %lld ORDER BY v.id DESC "
        "LIMIT %lld OFFSET %lld",
        NULL);
    if (total < 0 || admin_db_select(a, sql, 3, args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "list voucher redemptions");
    }
    list = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        json_array_append_new(list, admin_row_json(&rows, i, 0, redemption_cols));
    }
    o = json_object();
    json_object_set_new(o, "data", list);
    json_object_set_new(o, "total", json_integer(total));
    json_object_set_new(o, "page", json_integer(page));
    json_object_set_new(o, "per_page", json_integer(per_page));
    json_object_set(batch, "redemptions", o);
    json_decref(o);
    return admin_send_data(a, HTTP_OK, json_incref(batch));
}

static int vouchers_patch(admin_req_t *a)
{
    static const char *const allowed[] = {"status", "expires_at", "note", NULL};
    json_t *b = admin_body(a), *batch;
    const char *status = NULL, *note = NULL;
    apr_int64_t expires = 0;
    int st_status, st_expires, st_note, affected = 0;
    admin_sql_t q;

    if (b == NULL || admin_only_fields(a, b, allowed) == ADMIN_BAD) {
        return admin_send_recorded(a);
    }
    st_status = admin_field_enum(a, b, "status", 0, batch_statuses, &status);
    st_expires = admin_field_int(a, b, "expires_at", 0, 0, ADMIN_MAX_AMOUNT, &expires);
    st_note = admin_field_str(a, b, "note", 0, 1024, &note);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (st_status != ADMIN_SET && st_expires != ADMIN_SET && st_note != ADMIN_SET) {
        return admin_error(a, HTTP_BAD_REQUEST, "empty_patch", NULL,
                           "nothing to change: give status, expires_at or note");
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&q, a->r->pool, "UPDATE voucher_batches SET updated_at = ");
    admin_sql_arg(&q, "%lld", admin_i64(a, admin_now_ms()));
    if (st_status == ADMIN_SET) {
        admin_sql_arg(&q, ", status = %s", status);
    }
    if (st_expires == ADMIN_SET) {
        admin_sql_arg(&q, ", expires_at = %lld", admin_i64(a, expires));
    }
    if (st_note == ADMIN_SET) {
        admin_sql_arg(&q, ", note = %s", note);
    }
    admin_sql_arg(&q, " WHERE id = %lld", a->param[0]);
    if (admin_db_exec(a, q.sql, q.n, q.args, &affected) != APR_SUCCESS) {
        return admin_db_fail(a, "update a voucher batch");
    }
    if (affected == 0) {
        return admin_send_found(a, NULL, "voucher batch");
    }
    admin_audit(a, "voucher.update",
                apr_psprintf(a->r->pool, "batch %s%s%s%s", a->param[0],
                             status ? " status " : "", status ? status : "",
                             st_expires == ADMIN_SET ? " expires_at changed" : ""));
    batch = batch_json(a, a->id[0]);
    return admin_send_found(a, batch, "voucher batch");
}

/* GET /api/vouchers/{id}/export: the codes, once, as CSV (codes, hints and
 * statuses never hold a comma or a quote). */
static int vouchers_export(admin_req_t *a)
{
    const char *args[2], *plain_aad, *csv;
    apr_array_header_t *lines;
    nebula_dbd_rows_t rows;
    apr_int64_t now = admin_now_ms();
    int affected = 0, i;
    char *plain;
    apr_size_t len;

    if (!need_secret(a) || !admin_db(a)) {
        return OK;
    }
    if (admin_db_begin(a) != APR_SUCCESS) {
        return admin_db_fail(a, "begin");
    }
    args[0] = admin_i64(a, now);
    args[1] = a->param[0];
    if (admin_db_exec(a,
                      "UPDATE voucher_batches SET exported_at = %lld WHERE id = %lld AND "
                      "exported_at IS NULL",
                      2, args, &affected) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "claim a voucher export");
    }
    if (affected == 0) {
        admin_db_rollback(a);
        if (admin_db_select(a,
                            "SELECT exported_at, format FROM voucher_batches WHERE id = "
                            "%lld",
                            1, args + 1, &rows) != APR_SUCCESS) {
            return admin_db_fail(a, "read a voucher batch");
        }
        if (rows.nrows == 0) {
            return admin_send_found(a, NULL, "voucher batch");
        }
        return admin_error(
            a, HTTP_GONE, "already_exported", NULL,
            "the codes of voucher batch %s were %s: they are not kept in "
            "clear and cannot be shown again (disable the batch and make a "
            "new one if they were lost)",
            a->param[0],
            strcmp(rows.rows[0][1], "newapi") == 0
                ? "returned when they were created"
                : apr_psprintf(a->r->pool, "exported at %s (Unix ms)", rows.rows[0][0]));
    }
    if (admin_db_select(a,
                        "SELECT code_hash, code_enc, hint, uses, max_uses, status FROM "
                        "voucher_codes WHERE batch_id = %lld ORDER BY id",
                        1, args + 1, &rows) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "read voucher codes");
    }
    lines = apr_array_make(a->r->pool, rows.nrows + 1, sizeof(const char *));
    APR_ARRAY_PUSH(lines, const char *) = "code,hint,uses,max_uses,status\n";
    for (i = 0; i < rows.nrows; ++i) {
        plain_aad = apr_pstrcat(a->r->pool, "voucher_codes:", rows.rows[i][0], NULL);
        if (rows.rows[i][1] == NULL ||
            nebula_crypto_open(a->r->pool, a->sc->keyring, rows.rows[i][1], plain_aad,
                               strlen(plain_aad), &plain, &len) != APR_SUCCESS) {
            admin_db_rollback(a);
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r,
                          "NEB01600: voucher batch %s: a code cannot be opened (another "
                          "NebulaCryptoSecret?); nothing was exported",
                          a->param[0]);
            return admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                               "a code of this batch cannot be decrypted (see the server "
                               "log); nothing was exported");
        }
        APR_ARRAY_PUSH(lines, const char *) =
            apr_pstrcat(a->r->pool, plain, ",", rows.rows[i][2], ",", rows.rows[i][3],
                        ",", rows.rows[i][4], ",", rows.rows[i][5], "\n", NULL);
    }
    csv = apr_array_pstrcat(a->r->pool, lines, '\0');
    if (admin_db_exec(a, "UPDATE voucher_codes SET code_enc = NULL WHERE batch_id = %lld",
                      1, args + 1, NULL) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "forget exported voucher codes");
    }
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, "commit a voucher export");
    }
    admin_audit(a, "voucher.export",
                apr_psprintf(a->r->pool, "batch %s: %d codes", a->param[0], rows.nrows));
    a->r->status = HTTP_OK;
    apr_table_setn(a->r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(a->r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(a->r->headers_out, "Content-Disposition",
                   apr_psprintf(a->r->pool, "attachment; filename=\"vouchers-%s.csv\"",
                                a->param[0]));
    ap_set_content_type(a->r, "text/csv; charset=utf-8");
    ap_set_content_length(a->r, strlen(csv));
    ap_rputs(csv, a->r);
    return OK;
}

/* ---- redemption ----------------------------------------------------------- */

typedef APR_OPTIONAL_FN_TYPE(nebula_billing_redeem) redeem_fn;

/* Redeem @a code for @a user_id. 1 with @a res filled (success or a
 * refusal: res->status says), or 0 after an error was sent. */
static int redeem(admin_req_t *a, apr_int64_t user_id, const char *code, int limit,
                  nebula_redeem_result_t *res)
{
    redeem_fn *fn = APR_RETRIEVE_OPTIONAL_FN(nebula_billing_redeem);
    nebula_redeem_t in;
    const char *norm, *key;
    int newapi, mistyped, rc;

    if (fn == NULL) {
        admin_billing_available(a);
        return 0;
    }
    if (!need_secret(a)) {
        return 0;
    }
    if ((key = voucher_key(a)) == NULL) {
        return 0;
    }
    norm = code_normalise(a->r->pool, code, &newapi, &mistyped);
    memset(&in, 0, sizeof(in));
    in.code_hash = mistyped ? NULL : nebula_crypto_voucher_hash(a->r->pool, key, norm);
    if (!mistyped && in.code_hash == NULL) {
        admin_error(a, HTTP_INTERNAL_SERVER_ERROR, "internal_error", NULL,
                    "the code could not be hashed");
        return 0;
    }
    in.user_id = user_id;
    in.actor = admin_billing_actor(a);
    in.client_ip = a->r->useragent_ip;
    in.limit = limit;
    admin_db_release(a); /* billing borrows its own */
    rc = fn(a->r, &in, res);
    if (rc == NEBULA_BILLING_OK || rc == NEBULA_BILLING_REFUSED) {
        if (rc == NEBULA_BILLING_OK) {
            admin_audit(
                a, "voucher.redeem",
                apr_psprintf(a->r->pool,
                             "code %" APR_INT64_T_FMT " (batch %" APR_INT64_T_FMT
                             ") for user %" APR_INT64_T_FMT ": ledger %" APR_INT64_T_FMT,
                             res->code_id, res->batch_id, user_id, res->ledger_id));
        }
        if (res->status == HTTP_TOO_MANY_REQUESTS) {
            apr_table_setn(
                a->r->err_headers_out, "Retry-After",
                apr_psprintf(a->r->pool, "%" APR_INT64_T_FMT, res->retry_after));
        }
        return 1;
    }
    admin_error(a, HTTP_SERVICE_UNAVAILABLE, "billing_unavailable", NULL,
                "the redemption could not be completed (database); try again");
    return 0;
}

/* The "code" member of the body. */
static const char *body_code(admin_req_t *a, const char *member)
{
    const char *const allowed[] = {member, NULL};
    json_t *b = admin_body(a);
    const char *code = NULL;

    if (b == NULL || admin_only_fields(a, b, allowed) == ADMIN_BAD ||
        admin_field_str(a, b, member, ADMIN_F_REQUIRED | ADMIN_F_NONEMPTY,
                        VOUCHER_MAX_INPUT, &code) != ADMIN_SET) {
        admin_send_recorded(a);
        return NULL;
    }
    return code;
}

static int send_redeemed(admin_req_t *a, apr_int64_t user_id, nebula_redeem_result_t *res)
{
    json_t *o;

    if (res->status != HTTP_OK) {
        return admin_error(a, res->status, res->code, "code", "%s", res->message);
    }
    o = json_object();
    json_object_set_new(o, "redemption_id", json_integer(res->redemption_id));
    json_object_set_new(o, "batch_id", json_integer(res->batch_id));
    json_object_set_new(o, "user_id", json_integer(user_id));
    json_object_set_new(o, "kind", json_string(res->kind));
    json_object_set_new(o, "amount", json_integer(res->amount));
    json_object_set_new(o, "ledger_id", json_integer(res->ledger_id));
    json_object_set_new(o, "sub_id",
                        res->sub_id ? json_integer(res->sub_id) : json_null());
    json_object_set_new(o, "balance_after", json_integer(res->balance_after));
    return admin_send_data(a, HTTP_OK, o);
}

/* POST /api/users/{id}/redeem: an admin redeems a code for a user (no
 * lockout: failures are still audited). */
static int vouchers_redeem_for(admin_req_t *a)
{
    nebula_redeem_result_t res;
    const char *code = body_code(a, "code"), *role, *status;

    if (code == NULL || !admin_users_lookup(a, a->id[0], &role, &status)) {
        return OK;
    }
    if (!redeem(a, a->id[0], code, 0, &res)) {
        return OK;
    }
    return send_redeemed(a, a->id[0], &res);
}

/* POST /api/self/redeem: any signed-in user, for itself. */
static int vouchers_redeem_self(admin_req_t *a)
{
    nebula_redeem_result_t res;
    const char *code;

    if (a->who.user_id == 0) {
        return admin_error(a, HTTP_BAD_REQUEST, "no_user", NULL,
                           "the admin token has no user: redeem for a user with "
                           "POST /api/users/{id}/redeem");
    }
    if ((code = body_code(a, "code")) == NULL ||
        !redeem(a, a->who.user_id, code, 1, &res)) {
        return OK;
    }
    return send_redeemed(a, a->who.user_id, &res);
}

/* ---- new-api's routes ----------------------------------------------------- */

/* {"success": false, "message": ...} with @a status (new-api answers 200). */
static int newapi_fail(admin_req_t *a, int status, const char *msg)
{
    json_t *o = nebula_json_own(a->r->pool, json_object());

    json_object_set_new(o, "success", json_false());
    json_object_set_new(o, "message", json_string(msg));
    return admin_send(a, status, o);
}

static int newapi_ok(admin_req_t *a, json_t *data)
{
    json_t *o = nebula_json_own(a->r->pool, json_object());

    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string(""));
    if (data) {
        json_object_set_new(o, "data", data);
    }
    return admin_send(a, HTTP_OK, o);
}

/* POST /api/redemption/ {"name", "count", "quota", "expired_time"}: one
 * batch of single-use fixed-amount codes; the keys are answered once. */
static int newapi_create(admin_req_t *a)
{
    json_t *b = a->body, *keys;
    const char *name, *args[8];
    apr_int64_t count, quota, expired, id, now = admin_now_ms();

    if (!json_is_object(b)) {
        return newapi_fail(a, HTTP_OK, "invalid parameters");
    }
    name = nebula_json_gets(b, "name", NULL);
    count = nebula_json_geti(b, 0, "count", NULL);
    quota = nebula_json_geti(b, 0, "quota", NULL);
    expired = nebula_json_geti(b, 0, "expired_time", NULL);
    if (name == NULL || !*name || strlen(name) > 20 || !admin_text_ok(name)) {
        return newapi_fail(a, HTTP_OK, "the name must be 1 to 20 characters long");
    }
    if (count <= 0) {
        return newapi_fail(a, HTTP_OK, "count must be greater than 0");
    }
    if (count > NEWAPI_MAX_CODES) {
        return newapi_fail(a, HTTP_OK, "at most 100 codes can be created at once");
    }
    if (quota <= 0 || quota > ADMIN_MAX_AMOUNT) {
        return newapi_fail(a, HTTP_OK, "quota must be a positive integer");
    }
    if (expired != 0 &&
        (expired < 0 || expired * 1000 <= now || expired > ADMIN_MAX_AMOUNT / 1000)) {
        return newapi_fail(a, HTTP_OK, "the expiry time cannot be earlier than now");
    }
    if (!need_secret(a) || !admin_db(a)) {
        return OK;
    }
    args[0] = name;
    args[1] = admin_i64(a, quota);
    args[2] = admin_i64(a, expired * 1000);
    args[3] = admin_i64(a, count);
    args[4] = admin_billing_actor(a);
    args[5] = admin_i64(a, now);
    args[6] = args[5];
    args[7] = args[5];
    if (admin_db_begin(a) != APR_SUCCESS) {
        return admin_db_fail(a, "begin");
    }
    if (admin_db_insert(
            a,
            "INSERT INTO voucher_batches (name, note, kind, amount, plan_days, "
            "starts_at, expires_at, total_uses, per_user, codes, redeemed, prefix, "
            "status, format, created_by, created_at, updated_at, exported_at) "
            "VALUES (%s, '', 'quota', %lld, 0, 0, %lld, 0, 0, %lld, 0, '', "
            "'active', 'newapi', %s, %lld, %lld, %lld)",
            8, args, &id) != APR_SUCCESS) {
        admin_db_rollback(a);
        return admin_db_fail(a, "insert a redemption batch");
    }
    keys = json_array();
    nebula_json_own(a->r->pool, keys);
    if (codes_insert(a, id, count, "", 1, 1, keys) != APR_SUCCESS) {
        admin_db_rollback(a);
        return OK;
    }
    if (admin_db_commit(a) != APR_SUCCESS) {
        return admin_db_fail(a, "commit a redemption batch");
    }
    admin_audit(a, "redemption.create",
                apr_psprintf(a->r->pool,
                             "batch %" APR_INT64_T_FMT " '%s': %" APR_INT64_T_FMT
                             " new-api codes of %" APR_INT64_T_FMT,
                             id, name, count, quota));
    return newapi_ok(a, json_incref(keys));
}

/* GET /api/redemption/?p=&page_size=: the codes of new-api batches, as
 * new-api lists them (status 1 unused, 2 disabled, 3 used; times in
 * seconds). The key itself is not kept: "key" shows its last 4 digits. */
static int newapi_list(admin_req_t *a)
{
    apr_int64_t page = 1, size = 10, total;
    const char *v, *args[2];
    nebula_dbd_rows_t rows;
    json_t *items, *o, *data;
    int i;

    if ((v = apr_table_get(a->query, "p")) && *v) {
        page = apr_atoi64(v);
    }
    if ((v = apr_table_get(a->query, "page_size")) && *v) {
        size = apr_atoi64(v);
    }
    page = page < 1 ? 1 : page > ADMIN_MAX_PAGE ? ADMIN_MAX_PAGE : page;
    size = size < 1 ? 10 : size > ADMIN_MAX_PER_PAGE ? ADMIN_MAX_PER_PAGE : size;
    if (!admin_db(a)) {
        return OK;
    }
    total =
        admin_db_count(a,
                       "FROM voucher_codes c JOIN voucher_batches b ON b.id = c.batch_id "
                       "WHERE b.format = 'newapi'",
                       0, NULL);
    args[0] = admin_i64(a, size);
    args[1] = admin_i64(a, (page - 1) * size);
    if (total < 0 ||
        admin_db_select(a,
                        "SELECT c.id, b.name, c.hint, c.status, c.uses, b.amount, "
                        "c.created_at, b.expires_at, (SELECT MAX(v.user_id) FROM "
                        "voucher_redemptions v WHERE v.code_id = c.id), (SELECT "
                        "MAX(v.redeemed_at) FROM voucher_redemptions v WHERE v.code_id = "
                        "c.id) FROM voucher_codes c JOIN voucher_batches b ON b.id = "
                        "c.batch_id WHERE b.format = 'newapi' ORDER BY c.id DESC LIMIT "
                        "%lld OFFSET %lld",
                        2, args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "list redemption codes");
    }
    items = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        int used = nebula_ap_db_int(&rows, i, 4) > 0;

        o = json_object();
        json_object_set_new(o, "id", json_integer(nebula_ap_db_int(&rows, i, 0)));
        json_object_set_new(o, "user_id", json_integer(0));
        json_object_set_new(
            o, "key",
            json_string(apr_pstrcat(a->r->pool, "****", rows.rows[i][2], NULL)));
        json_object_set_new(o, "status",
                            json_integer(used                                ? 3
                                         : strcmp(rows.rows[i][3], "active") ? 2
                                                                             : 1));
        json_object_set_new(o, "name", json_string(rows.rows[i][1]));
        json_object_set_new(o, "quota", json_integer(nebula_ap_db_int(&rows, i, 5)));
        json_object_set_new(o, "created_time",
                            json_integer(nebula_ap_db_int(&rows, i, 6) / 1000));
        json_object_set_new(o, "redeemed_time",
                            json_integer(nebula_ap_db_int(&rows, i, 9) / 1000));
        json_object_set_new(o, "used_user_id",
                            json_integer(nebula_ap_db_int(&rows, i, 8)));
        json_object_set_new(o, "expired_time",
                            json_integer(nebula_ap_db_int(&rows, i, 7) / 1000));
        json_array_append_new(items, o);
    }
    data = json_object();
    json_object_set_new(data, "page", json_integer(page));
    json_object_set_new(data, "page_size", json_integer(size));
    json_object_set_new(data, "total", json_integer(total));
    json_object_set_new(data, "items", items);
    return newapi_ok(a, data);
}

/* DELETE /api/redemption/{id}: the code can no longer be redeemed. */
static int newapi_delete(admin_req_t *a)
{
    const char *args[1] = {a->param[0]};
    int affected = 0;

    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_exec(
            a,
            "UPDATE voucher_codes SET status = 'disabled' WHERE id = %lld AND "
            "batch_id IN (SELECT id FROM voucher_batches WHERE format = 'newapi')",
            1, args, &affected) != APR_SUCCESS) {
        return admin_db_fail(a, "disable a redemption code");
    }
    if (affected == 0) {
        return newapi_fail(a, HTTP_OK, "no such redemption code");
    }
    admin_audit(a, "redemption.delete",
                apr_pstrcat(a->r->pool, "code ", a->param[0], NULL));
    return newapi_ok(a, NULL);
}

/* POST /api/user/topup {"key"}: new-api's redemption; data is the quota. */
static int newapi_topup(admin_req_t *a)
{
    nebula_redeem_result_t res;
    const char *key =
        json_is_object(a->body) ? nebula_json_gets(a->body, "key", NULL) : NULL;

    if (a->who.user_id == 0) {
        return newapi_fail(a, HTTP_OK, "the admin token has no user");
    }
    if (key == NULL || !*key || strlen(key) > VOUCHER_MAX_INPUT) {
        return newapi_fail(a, HTTP_OK, "invalid parameters");
    }
    if (!redeem(a, a->who.user_id, key, 1, &res)) {
        return OK;
    }
    if (res.status != HTTP_OK) {
        return newapi_fail(a, res.status == HTTP_TOO_MANY_REQUESTS ? res.status : HTTP_OK,
                           res.message);
    }
    return newapi_ok(a, json_integer(res.amount));
}

const admin_route_t admin_vouchers_routes[] = {
    {"GET", "/api/vouchers", vouchers_list, 0},
    {"POST", "/api/vouchers", vouchers_create, 0},
    {"GET", "/api/vouchers/{id}", vouchers_get, 0},
    {"PATCH", "/api/vouchers/{id}", vouchers_patch, 0},
    {"GET", "/api/vouchers/{id}/export", vouchers_export, 0},
    {"POST", "/api/users/{id}/redeem", vouchers_redeem_for, 0},
    {"POST", "/api/self/redeem", vouchers_redeem_self, ROUTE_ANY_ROLE},
    /* new-api's routes, for operators that keep their flow */
    {"GET", "/api/redemption/", newapi_list, 0},
    {"POST", "/api/redemption/", newapi_create, 0},
    {"DELETE", "/api/redemption/{id}", newapi_delete, 0},
    {"POST", "/api/user/topup", newapi_topup, ROUTE_ANY_ROLE},
    {NULL, NULL, NULL, 0}};

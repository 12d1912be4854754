/* ctl_import_codes.c: redemption codes and prices of `nebulactl import-newapi`.
 *
 * Redemption codes become codes of new-api-format voucher batches
 * (docs/vouchers.md), one batch per (name, quota, expiry) of new-api,
 * created by "nebulactl import-newapi": single use, fixed amount, per_user
 * 0, as POST /api/redemption/ makes them. A code is stored as the HMAC of
 * its normalised form under the voucher key (nebula_secrets), so the code a
 * user already holds redeems here once. Unused codes (status 1) stay usable; used ones
 * (3) are imported used, disabled ones (2) disabled; deleted ones are not
 * imported. The earlier redemptions themselves are not (their quota is in
 * the users' balances).
 *
 * Prices: the ModelRatio, CompletionRatio, CacheRatio and ModelPrice
 * options become model_prices rows (ratios as parts per million, the same
 * meaning: 1.0 = 2 USD per million input tokens; a ModelPrice in USD per
 * call as micro-dollars). A model we have no price for is added; one that
 * still has the price this gateway shipped (updated_at 0) takes new-api's;
 * one an operator has set here is kept and reported as a conflict. */
#include <math.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ctl_import.h"

#define IMPORT_ACTOR    "nebulactl import-newapi"
#define NEWAPI_CODE_LEN 32

/* ---- redemption codes ------------------------------------------------- */

enum { R_ID, R_KEY, R_STATUS, R_NAME, R_QUOTA, R_CREATED, R_EXPIRED, R_DELETED };

/* The normalised code, as admin_vouchers.c normalises what a user types:
 * dashes, spaces and tabs dropped; 32 hex digits lowercased; anything else
 * upper-cased with O read as 0 and I, L as 1. */
static const char *normalise(apr_pool_t *p, const char *in)
{
    apr_size_t n = strlen(in), i, k = 0, hex = 0;
    char *s = apr_palloc(p, n + 1);

    for (i = 0; i < n; ++i) {
        if (in[i] != '-' && in[i] != ' ' && in[i] != '\t') {
            s[k++] = in[i];
            hex += apr_isxdigit(in[i]) != 0;
        }
    }
    s[k] = '\0';
    for (i = 0; i < k; ++i) {
        if (k == NEWAPI_CODE_LEN && hex == k) {
            s[i] = (char)apr_tolower(s[i]);
        }
        else {
            char c = (char)apr_toupper(s[i]);
            s[i] = c == 'O' ? '0' : (c == 'I' || c == 'L') ? '1' : c;
        }
    }
    return s;
}

/* The stored form of a code (admin_vouchers.c): its HMAC under the voucher
 * key, which is set to the secret if no voucher was made before. */
static const char *code_hash(imp_t *im, const char *norm)
{
    if (im->voucher_key == NULL &&
        ctl_voucher_key(im->ctl, im->ctl->pool, im->keyring, im->secret,
                        &im->voucher_key) != CTL_EXIT_OK) {
        return NULL;
    }
    return nebula_crypto_voucher_hash(im->ctl->pool, im->voucher_key, norm);
}

/* The batch of (name, quota, expiry): found or made; *@a id. */
static int batch_of(imp_t *im, apr_hash_t *batches, const char **r, const char **id)
{
    const char *name = r[R_NAME] ? r[R_NAME] : "new-api import";
    apr_int64_t exp = r[R_EXPIRED] ? apr_atoi64(r[R_EXPIRED]) : 0;
    const char *args[8], *key;
    nebula_dbd_rows_t rows;
    apr_int64_t nid;

    name = strlen(name) > 64 ? apr_pstrndup(im->ctl->pool, name, 64) : name;
    args[0] = name;
    args[1] = imp_i64(im, r[R_QUOTA] ? apr_atoi64(r[R_QUOTA]) : 0);
    args[2] = imp_i64(im, exp > 0 ? exp * 1000 : 0);
    args[3] = IMPORT_ACTOR;
    key = apr_pstrcat(im->ctl->pool, args[0], "\n", args[1], "\n", args[2], NULL);
    if ((*id = apr_hash_get(batches, key, APR_HASH_KEY_STRING)) != NULL) {
        return CTL_EXIT_OK;
    }
    if (imp_select(
            im,
            "SELECT id FROM voucher_batches WHERE format = 'newapi' AND name = %s "
            "AND amount = %lld AND expires_at = %lld AND created_by = %s ORDER BY id",
            4, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        *id = rows.rows[0][0];
    }
    else {
        args[4] = imp_i64(im, im->now_ms);
        args[5] = args[4];
        if (imp_insert(
                im,
                "INSERT INTO voucher_batches (name, note, kind, amount, plan_days, "
                "starts_at, expires_at, total_uses, per_user, codes, redeemed, "
                "prefix, status, format, created_by, created_at, updated_at, "
                "exported_at) VALUES (%s, 'imported from new-api', 'quota', %lld, "
                "0, 0, %lld, 0, 0, 0, 0, '', 'active', 'newapi', %s, %lld, %lld, "
                "%lld)",
                7,
                (const char *[]){args[0], args[1], args[2], args[3], args[4], args[5],
                                 args[4]},
                &nid) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
        *id = imp_i64(im, nid);
    }
    apr_hash_set(batches, key, APR_HASH_KEY_STRING, *id);
    return CTL_EXIT_OK;
}

static int import_code(imp_t *im, apr_hash_t *batches, const char **r)
{
    imp_count_t *c = &im->count[IMP_REDEMPTIONS];
    const char *norm, *hash, *batch, *args[6];
    apr_int64_t st = r[R_STATUS] ? apr_atoi64(r[R_STATUS]) : 1;
    nebula_dbd_rows_t rows;
    apr_size_t len;

    c->source++;
    if (r[R_DELETED]) {
        c->skipped++;
        imp_note(im, "skip redemption code %s: deleted in new-api", r[R_ID]);
        return CTL_EXIT_OK;
    }
    if (r[R_KEY] == NULL || r[R_QUOTA] == NULL || apr_atoi64(r[R_QUOTA]) <= 0) {
        c->skipped++;
        imp_note(im, "skip redemption code %s: no key or no positive quota", r[R_ID]);
        return CTL_EXIT_OK;
    }
    norm = normalise(im->ctl->pool, r[R_KEY]);
    if ((hash = code_hash(im, norm)) == NULL) {
        ctl_error("cannot compute a code's HMAC");
        return CTL_EXIT_ERROR;
    }
    args[0] = hash;
    if (imp_select(im, "SELECT id FROM voucher_codes WHERE code_hash = %s", 1, args,
                   &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    if (rows.nrows > 0) {
        c->already++;
        return CTL_EXIT_OK;
    }
    if (batch_of(im, batches, r, &batch) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    len = strlen(norm);
    args[0] = batch;
    args[1] = hash;
    args[2] = norm + (len > 4 ? len - 4 : 0);
    args[3] = st == 3 ? "1" : "0";
    args[4] = st == 2 ? "disabled" : "active";
    args[5] = imp_i64(im, r[R_CREATED] && apr_atoi64(r[R_CREATED]) > 0
                              ? apr_atoi64(r[R_CREATED]) * 1000
                              : im->now_ms);
    if (imp_exec(im,
                 "INSERT INTO voucher_codes (batch_id, code_hash, code_enc, hint, uses, "
                 "max_uses, status, created_at) VALUES (%lld, %s, NULL, %s, %lld, 1, %s, "
                 "%lld)",
                 6, args, NULL) != CTL_EXIT_OK ||
        imp_exec(
            im,
            "UPDATE voucher_batches SET codes = codes + 1, redeemed = redeemed + %lld "
            "WHERE id = %lld",
            2, (const char *[]){args[3], batch}, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    c->imported++;
    return CTL_EXIT_OK;
}

int imp_redemptions(imp_t *im)
{
    apr_hash_t *batches = apr_hash_make(im->ctl->pool);
    nebula_dbd_rows_t rows;
    const char *err = NULL;
    int exists = 0, i;

    if (nebula_dbd_table_exists(im->src.driver, im->src.handle, "redemptions", &exists,
                                &err, im->ctl->pool)) {
        ctl_error("reading the new-api database: %s", err ? err : "unknown error");
        return CTL_EXIT_ERROR;
    }
    if (!exists) {
        return CTL_EXIT_OK;
    }
    if (imp_src_select(
            im,
            apr_psprintf(im->ctl->pool,
                         "SELECT id, %s, status, name, quota, created_time, "
                         "expired_time, deleted_at FROM redemptions ORDER BY id",
                         imp_src_col(im, "key")),
            &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    for (i = 0; i < rows.nrows; ++i) {
        if (import_code(im, batches, rows.rows[i]) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

/* ---- prices ------------------------------------------------------------ */

/* @a key's number in option object @a o, in millionths; -1 when absent. */
static apr_int64_t ppm_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    double d;

    if (!json_is_number(v) || (d = json_number_value(v)) < 0 || d > 1e9) {
        return -1;
    }
    return (apr_int64_t)llround(d * 1e6);
}

static int import_price(imp_t *im, const char *model, json_t *ratio, json_t * compl,
                        json_t *cache, json_t *price)
{
    imp_count_t *c = &im->count[IMP_PRICES];
    apr_int64_t r = ppm_of(ratio, model), cr = ppm_of(compl, model);
    apr_int64_t ca = ppm_of(cache, model), pc = ppm_of(price, model);
    nebula_dbd_rows_t rows;
    const char *args[7];
    int fresh;

    c->source++;
    if (strlen(model) > 255 || (r < 0 && pc < 0)) {
        c->skipped++;
        imp_note(im, "skip price of '%.64s': no usable ratio or price", model);
        return CTL_EXIT_OK;
    }
    args[0] = model;
    if (imp_select(im,
                   "SELECT model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, "
                   "cache_write_ratio_ppm, price_per_call_micro_usd, updated_at FROM "
                   "model_prices WHERE model = %s",
                   1, args, &rows) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    fresh = rows.nrows == 0;
    args[0] = imp_i64(im, r < 0 ? 0 : r);
    args[1] = cr >= 0 ? imp_i64(im, cr) : fresh ? "1000000" : rows.rows[0][1];
    args[2] = ca >= 0 ? imp_i64(im, ca) : fresh ? "1000000" : rows.rows[0][2];
    args[3] = fresh ? "1250000" : rows.rows[0][3];
    args[4] = pc >= 0 ? imp_i64(im, pc) : NULL;
    args[5] = imp_i64(im, im->now_ms);
    args[6] = model;
    if (!fresh) {
        const char **o = rows.rows[0];
        int same = !strcmp(o[0] ? o[0] : "", args[0]) &&
                   !strcmp(o[1] ? o[1] : "", args[1]) &&
                   !strcmp(o[2] ? o[2] : "", args[2]) &&
                   (args[4] ? o[4] && !strcmp(o[4], args[4]) : o[4] == NULL);

        if (same) {
            c->already++;
            return CTL_EXIT_OK;
        }
        if (o[5] == NULL || apr_atoi64(o[5]) != 0) {
            c->conflict++;
            imp_note(im,
                     "conflict price of '%s': set here already, kept (new-api: ratio %s "
                     "ppm, completion %s ppm%s%s)",
                     model, args[0], args[1], args[4] ? ", per call micro-USD " : "",
                     args[4] ? args[4] : "");
            return CTL_EXIT_OK;
        }
    }
    if (imp_exec(im,
                 fresh
                     ? "INSERT INTO model_prices (model_ratio_ppm, completion_ratio_ppm, "
                       "cache_read_ratio_ppm, cache_write_ratio_ppm, "
                       "price_per_call_micro_usd, updated_at, model) VALUES (%lld, %lld, "
                       "%lld, %lld, %lld, %lld, %s)"
                     : "UPDATE model_prices SET model_ratio_ppm = %lld, "
                       "completion_ratio_ppm = %lld, cache_read_ratio_ppm = %lld, "
                       "cache_write_ratio_ppm = %lld, price_per_call_micro_usd = %lld, "
                       "updated_at = %lld WHERE model = %s",
                 7, args, NULL) != CTL_EXIT_OK) {
        return CTL_EXIT_ERROR;
    }
    c->imported++;
    return CTL_EXIT_OK;
}

int imp_prices(imp_t *im)
{
    json_t *ratio = imp_option_json(im, "ModelRatio");
    json_t *compl = imp_option_json(im, "CompletionRatio");
    json_t *cache = imp_option_json(im, "CacheRatio");
    json_t *price = imp_option_json(im, "ModelPrice");
    apr_hash_t *models = apr_hash_make(im->ctl->pool);
    apr_array_header_t *order = apr_array_make(im->ctl->pool, 64, sizeof(const char *));
    json_t *objs[2] = {ratio, price}, *v;
    const char *m;
    int i;

    for (i = 0; i < 2; ++i) {
        json_object_foreach(objs[i], m, v)
        {
            if (*m && apr_hash_get(models, m, APR_HASH_KEY_STRING) == NULL) {
                apr_hash_set(models, m, APR_HASH_KEY_STRING, m);
                APR_ARRAY_PUSH(order, const char *) = m;
            }
        }
    }
    for (i = 0; i < order->nelts; ++i) {
        if (import_price(im, APR_ARRAY_IDX(order, i, const char *), ratio, compl, cache,
                         price) != CTL_EXIT_OK) {
            return CTL_EXIT_ERROR;
        }
    }
    return CTL_EXIT_OK;
}

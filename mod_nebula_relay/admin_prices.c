/* admin_prices.c: /api/billing/prices: the price of each model
 * (model_prices). Ratios are stored as parts per million and shown as
 * decimal strings ("1.25", nebula_price.h); a fixed price per call is
 * stored in micro-dollars and shown as a decimal string of dollars. Model
 * names may contain '/', so they travel in the body or the query, never in
 * the path. mod_nebula_billing reads the table for every request, so a
 * change applies at once. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_protocol.h>
#include "admin_billing.h"
#include "nebula_price.h"

/* a fixed price of at most a million dollars a call */
#define MAX_PER_CALL_MICRO_USD APR_INT64_C(1000000000000)

typedef struct {
    const char *model;
    apr_int64_t ratio[4]; /* model, completion, cache read, cache write (ppm) */
    int st_ratio[4];
    apr_int64_t per_call; /* micro-dollars */
    int st_per_call;
} price_input_t;

static const char *const ratio_names[] = {"model_ratio", "completion_ratio",
                                          "cache_read_ratio", "cache_write_ratio"};
static const char *const ratio_cols[] = {"model_ratio_ppm", "completion_ratio_ppm",
                                         "cache_read_ratio_ppm", "cache_write_ratio_ppm"};
/* the schema's defaults, for what a new price does not give */
static const apr_int64_t ratio_defaults[] = {0, 1000000, 1000000, 1250000};

#define PRICE_SELECT                                                                     \
    "SELECT model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, "        \
    "cache_write_ratio_ppm, price_per_call_micro_usd, updated_at "

static json_t *decimal_json(const char *v, int nullable)
{
    char buf[48];

    if (nullable && (v == NULL || *v == '\0')) {
        return json_null();
    }
    return json_string(nebula_price_format_ppm(apr_atoi64(v), buf, sizeof(buf)));
}

/* Row @a i of a PRICE_SELECT as a Price. */
static json_t *price_json(const nebula_dbd_rows_t *rows, int i)
{
    json_t *o = json_object();
    int k;

    json_object_set_new(o, "model", json_string(rows->rows[i][0]));
    for (k = 0; k < 4; ++k) {
        json_object_set_new(o, ratio_names[k], decimal_json(rows->rows[i][1 + k], 0));
    }
    json_object_set_new(o, "price_per_call_usd", decimal_json(rows->rows[i][5], 1));
    json_object_set_new(o, "updated_at", json_integer(apr_atoi64(rows->rows[i][6])));
    return o;
}

/* The price of @a model: a new reference, NULL when there is none; *@a
 * failed set on a database error. */
static json_t *price_get(admin_req_t *a, const char *model, int *failed)
{
    nebula_dbd_rows_t rows;

    *failed = 0;
    if (admin_db_select(a, PRICE_SELECT "FROM model_prices WHERE model = %s", 1, &model,
                        &rows) != APR_SUCCESS) {
        *failed = 1;
        return NULL;
    }
    return rows.nrows == 1 ? price_json(&rows, 0) : NULL;
}

/* A model name: 1..255 printable characters, no surrounding spaces. */
static int model_ok(const char *s)
{
    apr_size_t n = strlen(s);

    return n >= 1 && n <= 255 && admin_text_ok(s) && !apr_isspace(s[0]) &&
           !apr_isspace(s[n - 1]);
}

/* A decimal given as a JSON string or number, as text; NULL when it is
 * neither (or negative). */
static const char *decimal_text(admin_req_t *a, json_t *v)
{
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        return admin_i64(a, json_integer_value(v));
    }
    if (json_is_real(v) && json_real_value(v) >= 0) {
        /* one rounding, to the sixth decimal, of the binary value */
        return apr_psprintf(a->r->pool, "%.6f", json_real_value(v));
    }
    return NULL;
}

/* A ratio member: ADMIN_SET (*ppm), ADMIN_ABSENT or ADMIN_BAD. */
static int field_ratio(admin_req_t *a, json_t *b, const char *name, int required,
                       apr_int64_t *ppm)
{
    json_t *v = json_object_get(b, name);
    const char *s;

    if (v == NULL) {
        return required ? admin_invalid(a, name, "'%s' is required", name) : ADMIN_ABSENT;
    }
    s = decimal_text(a, v);
    if (s == NULL || nebula_price_parse_ppm(s, ppm) != 0) {
        return admin_invalid(a, name,
                             "'%s' must be a non-negative decimal of at most 1000 (a "
                             "string such as \"1.25\", or a number)",
                             name);
    }
    return ADMIN_SET;
}

/* Dollars with at most six decimals ("0.04") in micro-dollars; 0 if not. */
static int parse_usd(const char *s, apr_int64_t *micro)
{
    apr_int64_t whole = 0, frac = 0;
    int digits = 0, fd = 0;

    for (; apr_isdigit(*s); ++s, ++digits) {
        whole = whole * 10 + (*s - '0');
        if (whole > MAX_PER_CALL_MICRO_USD / 1000000) {
            return 0;
        }
    }
    if (*s == '.') {
        for (++s; apr_isdigit(*s) && fd < 6; ++s, ++fd) {
            frac = frac * 10 + (*s - '0');
        }
        if (fd == 0) {
            return 0;
        }
    }
    if (*s != '\0' || digits == 0) {
        return 0;
    }
    for (; fd < 6; ++fd) {
        frac *= 10;
    }
    *micro = whole * 1000000 + frac;
    return *micro <= MAX_PER_CALL_MICRO_USD;
}

static int field_usd(admin_req_t *a, json_t *b, apr_int64_t *micro)
{
    json_t *v = json_object_get(b, "price_per_call_usd");
    const char *s;

    if (v == NULL) {
        return ADMIN_ABSENT;
    }
    if (json_is_null(v)) {
        return ADMIN_NULL;
    }
    s = decimal_text(a, v);
    if (s == NULL || !parse_usd(s, micro)) {
        return admin_invalid(a, "price_per_call_usd",
                             "'price_per_call_usd' must be null or a non-negative amount "
                             "of dollars with at most 6 decimals (such as \"0.04\")");
    }
    return ADMIN_SET;
}

static void read_price(admin_req_t *a, json_t *b, price_input_t *in)
{
    static const char *const fields[] = {"model",
                                         "model_ratio",
                                         "completion_ratio",
                                         "cache_read_ratio",
                                         "cache_write_ratio",
                                         "price_per_call_usd",
                                         NULL};
    int k;

    memset(in, 0, sizeof(*in));
    admin_only_fields(a, b, fields);
    if (admin_field_str(a, b, "model", ADMIN_F_REQUIRED, 255, &in->model) == ADMIN_SET &&
        !model_ok(in->model)) {
        admin_invalid(a, "model",
                      "'model' must be 1 to 255 printable characters without "
                      "leading or trailing spaces");
    }
    for (k = 0; k < 4; ++k) {
        in->st_ratio[k] = field_ratio(a, b, ratio_names[k], k == 0, &in->ratio[k]);
    }
    in->st_per_call = field_usd(a, b, &in->per_call);
}

int admin_prices_list(admin_req_t *a)
{
    static const char *const allowed[] = {"page", "per_page", "model", "q", NULL};
    apr_int64_t page, per_page, total;
    const char *model = NULL, *q = NULL;
    nebula_dbd_rows_t rows;
    admin_sql_t w;
    json_t *data;
    int i;

    admin_query_only(a, allowed);
    admin_query_page(a, &page, &per_page);
    admin_query_str(a, "model", 255, &model);
    admin_query_str(a, "q", 255, &q);
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    admin_sql_init(&w, a->r->pool, "FROM model_prices");
    if (model) {
        admin_sql_where(&w, "model = %s", model);
    }
    if (q) {
        admin_sql_where(&w, "LOWER(model) LIKE LOWER(%s) ESCAPE '!'",
                        admin_like(a->r->pool, q));
    }
    if ((total = admin_db_count(a, w.sql, w.n, w.args)) < 0) {
        return admin_db_fail(a, "count prices");
    }
    w.args[w.n++] = admin_i64(a, per_page);
    w.args[w.n++] = admin_i64(a, (page - 1) * per_page);
    if (admin_db_select(a,
                        apr_pstrcat(a->r->pool, PRICE_SELECT, w.sql,
                                    " ORDER BY model LIMIT %lld OFFSET %lld", NULL),
                        w.n, w.args, &rows) != APR_SUCCESS) {
        return admin_db_fail(a, "list prices");
    }
    data = json_array();
    for (i = 0; i < rows.nrows; ++i) {
        json_array_append_new(data, price_json(&rows, i));
    }
    return admin_send_page(a, data, total, page, per_page);
}

/* UPDATE the given members of @a in->model's price; APR status. */
static apr_status_t price_update(admin_req_t *a, const price_input_t *in)
{
    admin_sql_t q;
    int k;

    admin_sql_init(&q, a->r->pool, "");
    admin_sql_arg(&q, "UPDATE model_prices SET updated_at = %lld",
                  admin_i64(a, admin_now_ms()));
    for (k = 0; k < 4; ++k) {
        if (in->st_ratio[k] == ADMIN_SET) {
            admin_sql_arg(&q,
                          apr_pstrcat(a->r->pool, ", ", ratio_cols[k], " = %lld", NULL),
                          admin_i64(a, in->ratio[k]));
        }
    }
    if (in->st_per_call == ADMIN_SET) {
        admin_sql_arg(&q, ", price_per_call_micro_usd = %lld",
                      admin_i64(a, in->per_call));
    }
    else if (in->st_per_call == ADMIN_NULL) {
        admin_sql_add(&q, ", price_per_call_micro_usd = NULL");
    }
    admin_sql_arg(&q, " WHERE model = %s", in->model);
    return admin_db_exec(a, q.sql, q.n, q.args, NULL);
}

static apr_status_t price_insert(admin_req_t *a, const price_input_t *in)
{
    const char *args[7];
    int k;

    args[0] = in->model;
    for (k = 0; k < 4; ++k) {
        args[1 + k] =
            admin_i64(a, in->st_ratio[k] == ADMIN_SET ? in->ratio[k] : ratio_defaults[k]);
    }
    args[5] = in->st_per_call == ADMIN_SET ? admin_i64(a, in->per_call) : NULL;
    args[6] = admin_i64(a, admin_now_ms());
    return admin_db_exec(
        a,
        "INSERT INTO model_prices (model, model_ratio_ppm, "
        "completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, "
        "price_per_call_micro_usd, updated_at) VALUES (%s, %lld, %lld, "
        "%lld, %lld, %lld, %lld)",
        7, args, NULL);
}

int admin_prices_put(admin_req_t *a)
{
    json_t *b = admin_body(a), *cur;
    price_input_t in;
    int failed, created = 0;

    if (b) {
        read_price(a, b, &in);
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    cur = price_get(a, in.model, &failed);
    if (failed) {
        return admin_db_fail(a, "read a price");
    }
    if (cur == NULL) {
        /* a concurrent PUT of the same model may insert first: update then */
        created = price_insert(a, &in) == APR_SUCCESS;
        if (!created && !admin_db_conflict(a)) {
            return admin_db_fail(a, "create a price");
        }
    }
    json_decref(cur);
    if (!created && price_update(a, &in) != APR_SUCCESS) {
        return admin_db_fail(a, "change a price");
    }
    admin_audit(a, created ? "create-price" : "update-price", in.model);
    cur = price_get(a, in.model, &failed);
    if (cur == NULL) {
        return admin_db_fail(a, "read a price");
    }
    return admin_send_data(a, created ? HTTP_CREATED : HTTP_OK, cur);
}

int admin_prices_delete(admin_req_t *a)
{
    static const char *const allowed[] = {"model", NULL};
    const char *model = NULL;
    int n = 0;

    admin_query_only(a, allowed);
    if (admin_query_str(a, "model", 255, &model) == ADMIN_ABSENT) {
        admin_invalid(a, "model", "query parameter 'model' is required");
    }
    if (a->err_status) {
        return admin_send_recorded(a);
    }
    if (!admin_db(a)) {
        return OK;
    }
    if (admin_db_exec(a, "DELETE FROM model_prices WHERE model = %s", 1, &model, &n) !=
        APR_SUCCESS) {
        return admin_db_fail(a, "delete a price");
    }
    if (n == 0) {
        return admin_error(a, HTTP_NOT_FOUND, "not_found", "model",
                           "there is no price for the model '%s'", model);
    }
    admin_audit(a, "delete-price", model);
    return admin_send(a, HTTP_NO_CONTENT, NULL);
}

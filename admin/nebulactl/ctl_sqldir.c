/* ctl_sqldir.c: nebulactl --sql-dir: read migrations from a sql/ tree at run
 * time instead of the copy embedded at build time, checksummed the same way
 * build/embed-sql.sh does (SHA-256 of the file). For trying out a new
 * migration before rebuilding, and for the migration tests. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_lib.h>

#include <openssl/evp.h>

#include "ctl.h"
#include "nebula_migrate.h"

static const char *sha256_hex(const char *data, apr_size_t len, apr_pool_t *pool)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *hex;

    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL)) {
        return NULL;
    }
    hex = apr_palloc(pool, mdlen * 2 + 1);
    for (i = 0; i < mdlen; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    return hex;
}

/* NNNN_<name>.sql with <name> in [a-z0-9_]: the version, or 0. */
static int parse_file_name(const char *fname, const char **name, apr_pool_t *pool)
{
    apr_size_t len = strlen(fname), i;

    if (len < 10 || strcmp(fname + len - 4, ".sql") != 0 || fname[4] != '_') {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        if (!apr_isdigit(fname[i])) {
            return 0;
        }
    }
    for (i = 5; i < len - 4; i++) {
        if (!(apr_islower(fname[i]) || apr_isdigit(fname[i]) || fname[i] == '_')) {
            return 0;
        }
    }
    *name = apr_pstrmemdup(pool, fname + 5, len - 9);
    return atoi(apr_pstrmemdup(pool, fname, 4));
}

static apr_status_t read_whole(const char *path, char **text, apr_size_t *len,
                               apr_pool_t *pool)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS) {
            *len = (apr_size_t)fi.size;
            *text = apr_palloc(pool, *len + 1);
            rv = *len ? apr_file_read_full(f, *text, *len, NULL) : APR_SUCCESS;
            (*text)[*len] = '\0';
        }
        apr_file_close(f);
    }
    return rv;
}

static apr_status_t load_one(const char *dir, const char *sub, const char *fname,
                             nebula_dbd_dialect_e dialect, nebula_migration_t **out,
                             const char **errmsg, apr_pool_t *pool)
{
    nebula_migration_t *m = apr_pcalloc(pool, sizeof(*m));
    char *text, buf[256];
    apr_size_t len;
    apr_status_t rv;

    m->version = parse_file_name(fname, &m->name, pool);
    if (m->version < 1) {
        *errmsg = apr_psprintf(pool,
                               "%s/%s/%s: migration files are named "
                               "NNNN_<name>.sql (NNNN >= 0001, name [a-z0-9_])",
                               dir, sub, fname);
        return APR_EINVAL;
    }
    m->dialect = dialect;
    m->file = apr_psprintf(pool, "%s/%s/%s", dir, sub, fname);
    if ((rv = read_whole(m->file, &text, &len, pool)) != APR_SUCCESS) {
        *errmsg =
            apr_psprintf(pool, "%s: %s", m->file, apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    if (strlen(text) != len) {
        *errmsg = apr_psprintf(pool, "%s: contains a NUL byte", m->file);
        return APR_EINVAL;
    }
    m->sql = text;
    m->checksum = sha256_hex(text, len, pool);
    *out = m;
    return m->checksum ? APR_SUCCESS : APR_EGENERAL;
}

static int by_version(const void *a, const void *b)
{
    const nebula_migration_t *x = *(const nebula_migration_t *const *)a;
    const nebula_migration_t *y = *(const nebula_migration_t *const *)b;

    return (x->version > y->version) - (x->version < y->version);
}

apr_status_t ctl_sqldir_load(const char *sql_dir, nebula_dbd_dialect_e dialect,
                             apr_array_header_t **migrations, const char **errmsg,
                             apr_pool_t *pool)
{
    const char *sub = nebula_dbd_dialect_sql_dir(dialect);
    const char *path = apr_psprintf(pool, "%s/%s", sql_dir, sub);
    apr_array_header_t *out = apr_array_make(pool, 8, sizeof(nebula_migration_t *));
    apr_dir_t *dir;
    apr_finfo_t fi;
    apr_status_t rv;
    char buf[256];
    int i;

    if ((rv = apr_dir_open(&dir, path, pool)) != APR_SUCCESS) {
        *errmsg = apr_psprintf(pool, "%s: %s", path, apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir) == APR_SUCCESS) {
        nebula_migration_t *m;
        apr_size_t n = strlen(fi.name);

        if (fi.filetype != APR_REG || n < 4 || strcmp(fi.name + n - 4, ".sql") != 0) {
            continue;
        }
        if ((rv = load_one(sql_dir, sub, fi.name, dialect, &m, errmsg, pool))) {
            apr_dir_close(dir);
            return rv;
        }
        APR_ARRAY_PUSH(out, nebula_migration_t *) = m;
    }
    apr_dir_close(dir);
    qsort(out->elts, out->nelts, sizeof(nebula_migration_t *), by_version);
    for (i = 1; i < out->nelts; i++) {
        if (APR_ARRAY_IDX(out, i, nebula_migration_t *)->version ==
            APR_ARRAY_IDX(out, i - 1, nebula_migration_t *)->version) {
            *errmsg = apr_psprintf(pool, "%s: two files for version %d", path,
                                   APR_ARRAY_IDX(out, i, nebula_migration_t *)->version);
            return APR_EINVAL;
        }
    }
    *migrations = out;
    return APR_SUCCESS;
}

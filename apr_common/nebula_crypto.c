/* nebula_crypto.c: the library's only user of OpenSSL's libcrypto and of
 * libargon2. Owns the keyring (derived AES-256-GCM keys, wiped by a pool
 * cleanup), the sealed-token format "nbk<version>:<base64url>", the API-key
 * alphabet, and the password hash parameters. Secrets never reach a log. */
#include <crypt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "nebula_crypto.h"

#define TOKEN_PREFIX "nbk"

struct nebula_crypto_keyring_t {
    int current;
    unsigned char *keys; /* NEBULA_CRYPTO_GCM_KEY_LEN bytes per version 1..current */
    /* the keyring of the previous secret while it is being rotated out:
     * nebula_crypto_open() tries it after this one; NULL when none */
    const nebula_crypto_keyring_t *previous;
};

/* Mark the thread's OpenSSL error queue on entry, drop what we added on exit. */
#define CRYPTO_ENTER() ERR_set_mark()
#define CRYPTO_LEAVE() ERR_pop_to_mark()

apr_status_t nebula_crypto_sha256(const void *data, apr_size_t len,
                                  unsigned char out[NEBULA_CRYPTO_SHA256_LEN])
{
    unsigned int outlen = 0;
    int ok;

    CRYPTO_ENTER();
    ok = EVP_Digest(len ? data : "", len, out, &outlen, EVP_sha256(), NULL);
    CRYPTO_LEAVE();
    return ok && outlen == NEBULA_CRYPTO_SHA256_LEN ? APR_SUCCESS : APR_EGENERAL;
}

char *nebula_crypto_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *in = data;
    char *out = apr_palloc(p, len * 2 + 1);
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0F];
    }
    out[2 * len] = '\0';
    return out;
}

char *nebula_crypto_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    unsigned char md[NEBULA_CRYPTO_SHA256_LEN];

    if (nebula_crypto_sha256(data, len, md) != APR_SUCCESS) {
        return NULL;
    }
    return nebula_crypto_hex(p, md, sizeof(md));
}

apr_status_t nebula_crypto_hmac_sha256(const void *key, apr_size_t keylen,
                                       const void *data, apr_size_t len,
                                       unsigned char out[NEBULA_CRYPTO_SHA256_LEN])
{
    size_t outlen = 0;
    unsigned char *res;

    CRYPTO_ENTER();
    res = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, keylen ? key : "", keylen,
                    len ? data : (const void *)"", len, out, NEBULA_CRYPTO_SHA256_LEN,
                    &outlen);
    CRYPTO_LEAVE();
    return res != NULL && outlen == NEBULA_CRYPTO_SHA256_LEN ? APR_SUCCESS : APR_EGENERAL;
}

const char *nebula_crypto_voucher_hash(apr_pool_t *p, const char *key, const char *norm)
{
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];
    const char *msg = apr_pstrcat(p, "voucher:", norm, NULL);

    if (nebula_crypto_hmac_sha256(key, strlen(key), msg, strlen(msg), mac) != APR_SUCCESS) {
        return NULL;
    }
    return nebula_crypto_hex(p, mac, sizeof(mac));
}

apr_status_t nebula_crypto_hkdf_sha256(const void *ikm, apr_size_t ikmlen,
                                       const void *salt, apr_size_t saltlen,
                                       const void *info, apr_size_t infolen,
                                       unsigned char *out, apr_size_t outlen)
{
    OSSL_PARAM params[5], *q = params;
    EVP_KDF *kdf;
    EVP_KDF_CTX *kctx = NULL;
    int ok = 0;

    if (ikm == NULL || ikmlen == 0 || outlen == 0 ||
        outlen > 255 * NEBULA_CRYPTO_SHA256_LEN) {
        return APR_EINVAL;
    }
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
    /* an absent salt is HashLen zero bytes, which HMAC treats like "" */
    if (salt != NULL && saltlen > 0) {
        *q++ =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
    }
    if (info != NULL && infolen > 0) {
        *q++ =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
    }
    *q = OSSL_PARAM_construct_end();

    CRYPTO_ENTER();
    kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    if (kdf != NULL) {
        kctx = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
    }
    if (kctx != NULL) {
        ok = EVP_KDF_derive(kctx, out, outlen, params) > 0;
        EVP_KDF_CTX_free(kctx);
    }
    CRYPTO_LEAVE();
    if (!ok) {
        OPENSSL_cleanse(out, outlen);
    }
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

int nebula_crypto_equal(const void *a, apr_size_t alen, const void *b, apr_size_t blen)
{
    if (alen != blen) {
        return 0;
    }
    if (alen == 0) {
        return 1;
    }
    return CRYPTO_memcmp(a, b, alen) == 0;
}

apr_status_t nebula_crypto_random(void *buf, apr_size_t len)
{
    unsigned char *out = buf;
    int ok = 1;

    CRYPTO_ENTER();
    while (ok && len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;

        ok = RAND_bytes(out, n) == 1;
        out += n;
        len -= (apr_size_t)n;
    }
    CRYPTO_LEAVE();
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

char *nebula_crypto_token(apr_pool_t *p, const char *prefix, int nchars)
{
    static const char alphabet[] = "0123456789"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz";
    unsigned char rnd[64];
    apr_size_t plen = prefix ? strlen(prefix) : 0, used = sizeof(rnd);
    char *out, *o, *end;

    if (nchars < 1 || nchars > NEBULA_CRYPTO_TOKEN_MAX_CHARS) {
        return NULL;
    }
    out = apr_palloc(p, plen + (apr_size_t)nchars + 1);
    memcpy(out, prefix ? prefix : "", plen);
    o = out + plen;
    end = o + nchars;
    while (o < end) {
        if (used == sizeof(rnd)) {
            if (nebula_crypto_random(rnd, sizeof(rnd)) != APR_SUCCESS) {
                OPENSSL_cleanse(rnd, sizeof(rnd));
                return NULL;
            }
            used = 0;
        }
        /* 248 = 4 * 62: bytes at or above it would bias the first symbols */
        if (rnd[used] < 248) {
            *o++ = alphabet[rnd[used] % 62];
        }
        ++used;
    }
    *o = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return out;
}

char *nebula_crypto_b64url_encode(apr_pool_t *p, const void *data, apr_size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_";
    const unsigned char *in = data;
    char *out = apr_palloc(p, (len / 3) * 4 + 4 + 1), *o = out;
    apr_size_t i = 0;
    apr_uint32_t v;

    for (; i + 3 <= len; i += 3) {
        v = ((apr_uint32_t)in[i] << 16) | ((apr_uint32_t)in[i + 1] << 8) | in[i + 2];
        *o++ = alphabet[(v >> 18) & 0x3F];
        *o++ = alphabet[(v >> 12) & 0x3F];
        *o++ = alphabet[(v >> 6) & 0x3F];
        *o++ = alphabet[v & 0x3F];
    }
    if (len - i == 1) {
        v = (apr_uint32_t)in[i] << 16;
        *o++ = alphabet[(v >> 18) & 0x3F];
        *o++ = alphabet[(v >> 12) & 0x3F];
    }
    else if (len - i == 2) {
        v = ((apr_uint32_t)in[i] << 16) | ((apr_uint32_t)in[i + 1] << 8);
        *o++ = alphabet[(v >> 18) & 0x3F];
        *o++ = alphabet[(v >> 12) & 0x3F];
        *o++ = alphabet[(v >> 6) & 0x3F];
    }
    *o = '\0';
    return out;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    return c == '_' ? 63 : -1;
}

apr_status_t nebula_crypto_b64url_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                         unsigned char **out, apr_size_t *outlen)
{
    apr_uint32_t acc = 0;
    apr_size_t i, o = 0;
    int bits = 0, v;
    unsigned char *buf;

    if (inlen % 4 == 1 || (in == NULL && inlen > 0)) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, inlen / 4 * 3 + 3 + 1);
    for (i = 0; i < inlen; ++i) {
        if ((v = b64url_value(in[i])) < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return APR_EINVAL; /* non-canonical: unused trailing bits set */
    }
    buf[o] = '\0';
    *out = buf;
    *outlen = o;
    return APR_SUCCESS;
}

apr_status_t
nebula_crypto_aes256gcm_encrypt(const unsigned char key[NEBULA_CRYPTO_GCM_KEY_LEN],
                                const unsigned char nonce[NEBULA_CRYPTO_GCM_NONCE_LEN],
                                const void *plain, apr_size_t len, const void *aad,
                                apr_size_t aadlen, unsigned char *cipher,
                                unsigned char tag[NEBULA_CRYPTO_GCM_TAG_LEN])
{
    EVP_CIPHER_CTX *ctx;
    int outl, ok;

    if (len > INT_MAX - 32 || aadlen > INT_MAX) {
        return APR_EINVAL;
    }
    CRYPTO_ENTER();
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL && EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, NULL);
    if (ok && aadlen > 0) {
        ok = EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aadlen);
    }
    if (ok && len > 0) {
        ok = EVP_EncryptUpdate(ctx, cipher, &outl, plain, (int)len);
    }
    ok = ok && EVP_EncryptFinal_ex(ctx, cipher + len, &outl);
    ok = ok &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, NEBULA_CRYPTO_GCM_TAG_LEN, tag);
    EVP_CIPHER_CTX_free(ctx);
    CRYPTO_LEAVE();
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t nebula_crypto_aes256gcm_decrypt(
    const unsigned char key[NEBULA_CRYPTO_GCM_KEY_LEN],
    const unsigned char nonce[NEBULA_CRYPTO_GCM_NONCE_LEN], const void *cipher,
    apr_size_t len, const void *aad, apr_size_t aadlen,
    const unsigned char tag[NEBULA_CRYPTO_GCM_TAG_LEN], unsigned char *plain)
{
    EVP_CIPHER_CTX *ctx;
    int outl, ok, verified = 0;

    if (len > INT_MAX - 32 || aadlen > INT_MAX) {
        return APR_EINVAL;
    }
    CRYPTO_ENTER();
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL && EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, NULL);
    if (ok && aadlen > 0) {
        ok = EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aadlen);
    }
    if (ok && len > 0) {
        ok = EVP_DecryptUpdate(ctx, plain, &outl, cipher, (int)len);
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, NEBULA_CRYPTO_GCM_TAG_LEN,
                                   (void *)tag);
    if (ok) {
        verified = EVP_DecryptFinal_ex(ctx, plain + len, &outl) > 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    CRYPTO_LEAVE();
    if (!verified && len > 0) {
        OPENSSL_cleanse(plain, len);
    }
    if (!ok) {
        return APR_EGENERAL;
    }
    return verified ? APR_SUCCESS : APR_EMISMATCH;
}

static apr_status_t keyring_cleanup(void *data)
{
    nebula_crypto_keyring_t *kr = data;

    OPENSSL_cleanse(kr->keys, (apr_size_t)kr->current * NEBULA_CRYPTO_GCM_KEY_LEN);
    return APR_SUCCESS;
}

static const unsigned char *keyring_key(const nebula_crypto_keyring_t *kr, int version)
{
    return kr->keys + (apr_size_t)(version - 1) * NEBULA_CRYPTO_GCM_KEY_LEN;
}

nebula_crypto_keyring_t *nebula_crypto_keyring_create(apr_pool_t *p, const char *secret,
                                                      apr_size_t secret_len,
                                                      int current_version)
{
    static const char salt[] = NEBULA_CRYPTO_KEYRING_SALT;
    nebula_crypto_keyring_t *kr;
    char info[sizeof(NEBULA_CRYPTO_KEYRING_INFO) + 16];
    int v, n;

    if (secret == NULL || secret_len < NEBULA_CRYPTO_SECRET_MIN_LEN ||
        current_version < 1 || current_version > NEBULA_CRYPTO_KEYRING_MAX_VERSION) {
        return NULL;
    }
    kr = apr_palloc(p, sizeof(*kr));
    kr->current = current_version;
    kr->previous = NULL;
    kr->keys = apr_pcalloc(p, (apr_size_t)current_version * NEBULA_CRYPTO_GCM_KEY_LEN);
    apr_pool_cleanup_register(p, kr, keyring_cleanup, apr_pool_cleanup_null);
    for (v = 1; v <= current_version; ++v) {
        n = apr_snprintf(info, sizeof(info), "%s%d", NEBULA_CRYPTO_KEYRING_INFO, v);
        if (nebula_crypto_hkdf_sha256(secret, secret_len, salt, sizeof(salt) - 1, info,
                                      (apr_size_t)n, (unsigned char *)keyring_key(kr, v),
                                      NEBULA_CRYPTO_GCM_KEY_LEN) != APR_SUCCESS) {
            apr_pool_cleanup_run(p, kr, keyring_cleanup);
            return NULL;
        }
    }
    return kr;
}

int nebula_crypto_keyring_version(const nebula_crypto_keyring_t *kr)
{
    return kr->current;
}

void nebula_crypto_keyring_set_previous(nebula_crypto_keyring_t *kr,
                                        const nebula_crypto_keyring_t *previous)
{
    kr->previous = previous; /* one level: open_one() never follows its own */
}

apr_status_t nebula_crypto_seal(apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                                const void *plain, apr_size_t len, const void *aad,
                                apr_size_t aadlen, const char **out)
{
    unsigned char *raw;
    apr_size_t rawlen;
    apr_status_t rv;

    if (kr == NULL || out == NULL || (plain == NULL && len > 0) || len > INT_MAX - 64) {
        return APR_EINVAL;
    }
    rawlen = NEBULA_CRYPTO_GCM_NONCE_LEN + len + NEBULA_CRYPTO_GCM_TAG_LEN;
    raw = apr_palloc(p, rawlen);
    rv = nebula_crypto_random(raw, NEBULA_CRYPTO_GCM_NONCE_LEN);
    if (rv == APR_SUCCESS) {
        rv = nebula_crypto_aes256gcm_encrypt(
            keyring_key(kr, kr->current), raw, plain, len, aad, aadlen,
            raw + NEBULA_CRYPTO_GCM_NONCE_LEN, raw + NEBULA_CRYPTO_GCM_NONCE_LEN + len);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = apr_psprintf(p, TOKEN_PREFIX "%d:%s", kr->current,
                        nebula_crypto_b64url_encode(p, raw, rawlen));
    return APR_SUCCESS;
}

/* "nbk<1-3 digits, no leading zero>:" -> version and the text after ':'. */
static apr_status_t token_parse(const char *token, int *version, const char **body)
{
    const char *s;
    int v = 0, digits = 0;

    if (token == NULL || strncmp(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1) != 0) {
        return APR_EINVAL;
    }
    s = token + sizeof(TOKEN_PREFIX) - 1;
    if (*s == '0' && s[1] != ':') {
        return APR_EINVAL;
    }
    for (; *s >= '0' && *s <= '9'; ++s) {
        if (++digits > 3) {
            return APR_EINVAL;
        }
        v = v * 10 + (*s - '0');
    }
    if (digits == 0 || *s != ':') {
        return APR_EINVAL;
    }
    *version = v;
    *body = s + 1;
    return APR_SUCCESS;
}

static apr_status_t open_one(apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                             const char *token, const void *aad, apr_size_t aadlen,
                             char **plain, apr_size_t *len)
{
    const char *body;
    unsigned char *raw;
    apr_size_t rawlen, clen;
    char *out;
    int version;
    apr_status_t rv;

    if (kr == NULL || plain == NULL) {
        return APR_EINVAL;
    }
    if ((rv = token_parse(token, &version, &body)) != APR_SUCCESS ||
        (rv = nebula_crypto_b64url_decode(p, body, strlen(body), &raw, &rawlen)) !=
            APR_SUCCESS) {
        return rv;
    }
    if (rawlen < NEBULA_CRYPTO_GCM_NONCE_LEN + NEBULA_CRYPTO_GCM_TAG_LEN) {
        return APR_EINVAL;
    }
    if (version < 1 || version > kr->current) {
        return APR_ENOENT;
    }
    clen = rawlen - NEBULA_CRYPTO_GCM_NONCE_LEN - NEBULA_CRYPTO_GCM_TAG_LEN;
    out = apr_palloc(p, clen + 1);
    rv = nebula_crypto_aes256gcm_decrypt(
        keyring_key(kr, version), raw, raw + NEBULA_CRYPTO_GCM_NONCE_LEN, clen, aad,
        aadlen, raw + NEBULA_CRYPTO_GCM_NONCE_LEN + clen, (unsigned char *)out);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    out[clen] = '\0';
    *plain = out;
    if (len != NULL) {
        *len = clen;
    }
    return APR_SUCCESS;
}

apr_status_t nebula_crypto_open(apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                                const char *token, const void *aad, apr_size_t aadlen,
                                char **plain, apr_size_t *len)
{
    apr_status_t rv = open_one(p, kr, token, aad, aadlen, plain, len);

    if ((rv == APR_EMISMATCH || rv == APR_ENOENT) && kr != NULL && kr->previous != NULL) {
        apr_status_t prv = open_one(p, kr->previous, token, aad, aadlen, plain, len);

        /* a token neither opens is reported as the current keyring saw it */
        return prv == APR_SUCCESS ? APR_SUCCESS : rv;
    }
    return rv;
}

apr_status_t nebula_crypto_password_hash(apr_pool_t *p, const char *password,
                                         const char **encoded)
{
    unsigned char salt[NEBULA_CRYPTO_ARGON2_SALT_LEN];
    char buf[160];
    int rc;

    if (password == NULL || encoded == NULL) {
        return APR_EINVAL;
    }
    if (nebula_crypto_random(salt, sizeof(salt)) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rc = argon2id_hash_encoded(NEBULA_CRYPTO_ARGON2_T_COST, NEBULA_CRYPTO_ARGON2_M_COST,
                               NEBULA_CRYPTO_ARGON2_LANES, password, strlen(password),
                               salt, sizeof(salt), NEBULA_CRYPTO_ARGON2_HASH_LEN, buf,
                               sizeof(buf));
    if (rc != ARGON2_OK) {
        return APR_EGENERAL;
    }
    *encoded = apr_pstrdup(p, buf);
    return APR_SUCCESS;
}

/* A bcrypt hash ($2a$, $2b$, $2y$), as new-api and one-api store passwords:
 * imported users sign in with their old password (the caller then stores an
 * argon2id hash in its place). */
static apr_status_t bcrypt_verify(const char *encoded, const char *password)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd)); /* 32 KB: not on the stack */
    const char *out;
    apr_status_t rv;

    if (cd == NULL) {
        return APR_ENOMEM;
    }
    out = crypt_r(password, encoded, cd);
    if (out == NULL || out[0] == '*') {
        rv = APR_EINVAL;
    }
    else {
        rv = nebula_crypto_equal(out, strlen(out), encoded, strlen(encoded)) ? APR_SUCCESS
                                                                             : APR_EMISMATCH;
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return rv;
}

int nebula_crypto_password_legacy(const char *encoded)
{
    return encoded && encoded[0] == '$' && encoded[1] == '2'
           && (encoded[2] == 'a' || encoded[2] == 'b' || encoded[2] == 'y') && encoded[3] == '$';
}

apr_status_t nebula_crypto_password_verify(const char *encoded, const char *password)
{
    int rc;

    if (password != NULL && nebula_crypto_password_legacy(encoded)) {
        return bcrypt_verify(encoded, password);
    }
    if (encoded == NULL || password == NULL || strncmp(encoded, "$argon2id$", 10) != 0) {
        return APR_EINVAL;
    }
    rc = argon2id_verify(encoded, password, strlen(password));
    if (rc == ARGON2_OK) {
        return APR_SUCCESS;
    }
    if (rc == ARGON2_VERIFY_MISMATCH) {
        return APR_EMISMATCH;
    }
    return rc == ARGON2_DECODING_FAIL ? APR_EINVAL : APR_EGENERAL;
}

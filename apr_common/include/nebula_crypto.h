/**
 * @file nebula_crypto.h
 * @brief Hashes, MACs, key derivation, randomness, tokens, base64url,
 *        AES-256-GCM sealing with a versioned keyring, and argon2id password
 *        hashing for libnebula_common.
 *
 * Built on OpenSSL 3 EVP interfaces (no deprecated calls) and libargon2.
 * Every function is thread-safe. Functions that use OpenSSL leave the
 * calling thread's OpenSSL error queue as they found it, so a failure here
 * never confuses mod_ssl's error handling on the same thread.
 *
 * Status codes used throughout:
 * - APR_SUCCESS
 * - APR_EINVAL: bad argument or malformed input (syntax)
 * - APR_EMISMATCH: authentication failed (AEAD tag, password)
 * - APR_ENOENT: a sealed token names a key version the keyring lacks
 * - APR_EGENERAL: OpenSSL or libargon2 failed internally (out of memory,
 *   RNG not seeded)
 */
#ifndef NEBULA_CRYPTO_H
#define NEBULA_CRYPTO_H

#include <apr_pools.h>
#include <apr_errno.h>

#define NEBULA_CRYPTO_SHA256_LEN    32
#define NEBULA_CRYPTO_GCM_KEY_LEN   32
#define NEBULA_CRYPTO_GCM_NONCE_LEN 12
#define NEBULA_CRYPTO_GCM_TAG_LEN   16

/** Characters after the "sk-" prefix of an API key. */
#define NEBULA_CRYPTO_API_KEY_CHARS 48
/** Largest nchars nebula_crypto_token() accepts. */
#define NEBULA_CRYPTO_TOKEN_MAX_CHARS 4096

/** Shortest master secret nebula_crypto_keyring_create() accepts. Use 32
 *  random bytes (e.g. 43 base64url characters) in production. */
#define NEBULA_CRYPTO_SECRET_MIN_LEN 16
/** Highest keyring version. */
#define NEBULA_CRYPTO_KEYRING_MAX_VERSION 999
/** HKDF-SHA256 salt for keyring keys (fixed). */
#define NEBULA_CRYPTO_KEYRING_SALT "NebulaGate/keyring/salt"
/** HKDF-SHA256 info for the key of version N is this prefix followed by N in
 *  decimal, e.g. "NebulaGate/keyring/aes-256-gcm/v1". */
#define NEBULA_CRYPTO_KEYRING_INFO "NebulaGate/keyring/aes-256-gcm/v"

/** argon2id parameters of nebula_crypto_password_hash(). */
#define NEBULA_CRYPTO_ARGON2_T_COST   3
#define NEBULA_CRYPTO_ARGON2_M_COST   65536 /* KiB = 64 MiB */
#define NEBULA_CRYPTO_ARGON2_LANES    1
#define NEBULA_CRYPTO_ARGON2_SALT_LEN 16
#define NEBULA_CRYPTO_ARGON2_HASH_LEN 32

/**
 * SHA-256 of @a len bytes.
 * @param out receives 32 bytes (caller's buffer)
 * @return APR_SUCCESS or APR_EGENERAL
 */
apr_status_t nebula_crypto_sha256(const void *data, apr_size_t len,
                                  unsigned char out[NEBULA_CRYPTO_SHA256_LEN]);

/**
 * SHA-256 as 64 lowercase hex digits.
 * @return NUL-terminated string owned by @a p, or NULL on OpenSSL failure
 */
char *nebula_crypto_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len);

/**
 * Lowercase hex of @a len bytes.
 * @return NUL-terminated string of 2 * len digits, owned by @a p
 */
char *nebula_crypto_hex(apr_pool_t *p, const void *data, apr_size_t len);

/**
 * HMAC-SHA256 (RFC 2104 / RFC 4231). Any key length.
 * @param out receives 32 bytes (caller's buffer)
 * @return APR_SUCCESS or APR_EGENERAL
 */
apr_status_t nebula_crypto_hmac_sha256(const void *key, apr_size_t keylen,
                                       const void *data, apr_size_t len,
                                       unsigned char out[NEBULA_CRYPTO_SHA256_LEN]);

/** nebula_secrets: the row holding the key of voucher code hashes, and the
 *  AAD prefix of every row's sealed value ("nebula_secrets:" + name). */
#define NEBULA_VOUCHER_KEY_NAME  "voucher_hmac_key"
#define NEBULA_SECRETS_AAD       "nebula_secrets:"

/**
 * The stored form of a normalised voucher code: HMAC-SHA256 under the
 * voucher key (the nebula_secrets row NEBULA_VOUCHER_KEY_NAME, opened) of
 * "voucher:" + @a norm, as 64 hex digits.
 * @return owned by @a p, or NULL on OpenSSL failure
 */
const char *nebula_crypto_voucher_hash(apr_pool_t *p, const char *key, const char *norm);

/**
 * HKDF-SHA256 extract-then-expand (RFC 5869).
 * @param ikm input keying material, at least one byte
 * @param salt optional (NULL/0: HashLen zero bytes, as the RFC says)
 * @param info optional context (NULL/0 allowed)
 * @param out caller's buffer of @a outlen bytes, 1 <= outlen <= 255 * 32
 * @return APR_SUCCESS, APR_EINVAL (lengths) or APR_EGENERAL
 */
apr_status_t nebula_crypto_hkdf_sha256(const void *ikm, apr_size_t ikmlen,
                                       const void *salt, apr_size_t saltlen,
                                       const void *info, apr_size_t infolen,
                                       unsigned char *out, apr_size_t outlen);

/**
 * Constant-time equality: the time depends on the lengths only, never on
 * the content.
 * @return 1 if both lengths and all bytes are equal, else 0 (different
 *         lengths always give 0; two empty buffers are equal)
 */
int nebula_crypto_equal(const void *a, apr_size_t alen, const void *b, apr_size_t blen);

/**
 * Fill @a buf with @a len bytes from OpenSSL's CSPRNG (RAND_bytes).
 * @return APR_SUCCESS or APR_EGENERAL
 */
apr_status_t nebula_crypto_random(void *buf, apr_size_t len);

/**
 * A random token: @a prefix followed by @a nchars characters of [0-9A-Za-z],
 * each uniform (rejection sampling over CSPRNG bytes, so about 5.95 bits of
 * entropy per character). API keys are nebula_crypto_token(p, "sk-",
 * NEBULA_CRYPTO_API_KEY_CHARS).
 * @param prefix copied verbatim (NULL for none)
 * @param nchars 1..NEBULA_CRYPTO_TOKEN_MAX_CHARS
 * @return NUL-terminated token owned by @a p; NULL on bad @a nchars or RNG
 *         failure
 */
char *nebula_crypto_token(apr_pool_t *p, const char *prefix, int nchars);

/**
 * base64url (RFC 4648 section 5) without padding.
 * @return NUL-terminated text owned by @a p ("" for @a len 0)
 */
char *nebula_crypto_b64url_encode(apr_pool_t *p, const void *data, apr_size_t len);

/**
 * Decode unpadded base64url. Strict: rejects '=', whitespace, characters
 * outside the alphabet, a length of 4k+1, and non-zero unused trailing bits
 * (so every byte string has exactly one accepted encoding).
 * @param in the text, @a inlen bytes (need not be NUL-terminated)
 * @param out receives the bytes, owned by @a p, with a NUL after them
 * @param outlen receives their count
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t nebula_crypto_b64url_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                         unsigned char **out, apr_size_t *outlen);

/**
 * Raw AES-256-GCM encryption with a caller-chosen nonce. Never reuse a
 * nonce with the same key; prefer nebula_crypto_seal(). Exposed for
 * known-answer tests and for callers with their own nonce discipline.
 * @param cipher caller's buffer of @a len bytes (may equal @a plain)
 * @param tag receives the 16-byte tag
 * @return APR_SUCCESS, APR_EINVAL (length > INT_MAX) or APR_EGENERAL
 */
apr_status_t
nebula_crypto_aes256gcm_encrypt(const unsigned char key[NEBULA_CRYPTO_GCM_KEY_LEN],
                                const unsigned char nonce[NEBULA_CRYPTO_GCM_NONCE_LEN],
                                const void *plain, apr_size_t len, const void *aad,
                                apr_size_t aadlen, unsigned char *cipher,
                                unsigned char tag[NEBULA_CRYPTO_GCM_TAG_LEN]);

/**
 * Raw AES-256-GCM decryption and tag check.
 * @param plain caller's buffer of @a len bytes (may equal @a cipher); its
 *        content is wiped when authentication fails
 * @return APR_SUCCESS, APR_EMISMATCH (tag does not verify: wrong key, AAD,
 *         nonce or tampered data), APR_EINVAL or APR_EGENERAL
 */
apr_status_t nebula_crypto_aes256gcm_decrypt(
    const unsigned char key[NEBULA_CRYPTO_GCM_KEY_LEN],
    const unsigned char nonce[NEBULA_CRYPTO_GCM_NONCE_LEN], const void *cipher,
    apr_size_t len, const void *aad, apr_size_t aadlen,
    const unsigned char tag[NEBULA_CRYPTO_GCM_TAG_LEN], unsigned char *plain);

/** AES-256-GCM keys for versions 1..current, derived from one secret. */
typedef struct nebula_crypto_keyring_t nebula_crypto_keyring_t;

/**
 * Derive the keys of versions 1..@a current_version from the master secret
 * (CRYPTO_SECRET): key(N) = HKDF-SHA256(IKM = secret,
 * salt = NEBULA_CRYPTO_KEYRING_SALT, info = NEBULA_CRYPTO_KEYRING_INFO "N",
 * L = 32). New seals use the current version; tokens of older versions
 * still open. The keys live in @a p and are wiped (OPENSSL_cleanse) by a
 * cleanup when @a p goes. The secret itself is not copied.
 * @param secret_len at least NEBULA_CRYPTO_SECRET_MIN_LEN
 * @param current_version 1..NEBULA_CRYPTO_KEYRING_MAX_VERSION
 * @return the keyring (read-only afterwards, shareable between threads), or
 *         NULL on bad arguments or OpenSSL failure
 */
nebula_crypto_keyring_t *nebula_crypto_keyring_create(apr_pool_t *p, const char *secret,
                                                      apr_size_t secret_len,
                                                      int current_version);

/** The version new seals use. */
int nebula_crypto_keyring_version(const nebula_crypto_keyring_t *kr);

/**
 * Let @a kr also open tokens sealed under @a previous (the keyring of the
 * secret being rotated out, CRYPTO_SECRET_PREVIOUS): nebula_crypto_open()
 * tries @a kr first, then @a previous; seals always use @a kr. Tokens carry
 * no secret id, so which one opens a token is found by trying (the GCM tag
 * tells). Set it before sharing @a kr between threads; NULL removes it.
 * @a previous must live as long as @a kr.
 */
void nebula_crypto_keyring_set_previous(nebula_crypto_keyring_t *kr,
                                        const nebula_crypto_keyring_t *previous);

/**
 * Encrypt and authenticate @a plain, binding @a aad (e.g. the row id and
 * column name, so a sealed value cannot be moved elsewhere). The token is
 * "nbk<version>:<base64url(nonce[12] || ciphertext || tag[16])>", with a
 * fresh random nonce (keep one key under 2^32 seals).
 * @param out receives the NUL-terminated token, owned by @a p
 * @return APR_SUCCESS, APR_EINVAL or APR_EGENERAL
 */
apr_status_t nebula_crypto_seal(apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                                const void *plain, apr_size_t len, const void *aad,
                                apr_size_t aadlen, const char **out);

/**
 * Check and decrypt a token made by nebula_crypto_seal().
 * @param plain receives the plaintext, owned by @a p, with a NUL after it
 *        (so text comes back as a C string); not wiped when @a p goes
 * @param len receives its length (may be NULL)
 * @return APR_SUCCESS;
 *         APR_EINVAL: not a token (prefix, version digits, base64url, too
 *         short);
 *         APR_ENOENT: version 0 or above the keyring's current version;
 *         APR_EMISMATCH: authentication failed (wrong AAD, wrong secret,
 *         any bit of nonce, ciphertext or tag changed), under the previous
 *         keyring too when one is set;
 *         APR_EGENERAL: OpenSSL failure
 */
apr_status_t nebula_crypto_open(apr_pool_t *p, const nebula_crypto_keyring_t *kr,
                                const char *token, const void *aad, apr_size_t aadlen,
                                char **plain, apr_size_t *len);

/**
 * Hash a password with argon2id (t=3, m=64 MiB, p=1, 16-byte random salt,
 * 32-byte hash) into the standard encoded form
 * "$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>". Costs about 64 MiB of
 * memory and tens of milliseconds per call.
 * @param encoded receives the string, owned by @a p
 * @return APR_SUCCESS, APR_EINVAL (NULL password) or APR_EGENERAL
 */
apr_status_t nebula_crypto_password_hash(apr_pool_t *p, const char *password,
                                         const char **encoded);

/**
 * Check @a password against an encoded argon2id hash (from our own store:
 * the encoded parameters are trusted, including its memory cost), or a
 * bcrypt hash imported from new-api / one-api (nebulactl import-newapi).
 * @return APR_SUCCESS if it matches, APR_EMISMATCH if not, APR_EINVAL if
 *         @a encoded is neither, APR_EGENERAL otherwise
 */
apr_status_t nebula_crypto_password_verify(const char *encoded, const char *password);

/** Whether @a encoded is a bcrypt hash ($2a$, $2b$, $2y$): one to replace
 *  by an argon2id hash once its password was verified. */
int nebula_crypto_password_legacy(const char *encoded);

#endif /* NEBULA_CRYPTO_H */

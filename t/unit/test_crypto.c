/* test_crypto.c: nebula_crypto against published vectors (FIPS 180-2
 * SHA-256, RFC 4231 HMAC-SHA256, RFC 5869 HKDF, McGrew-Viega GCM test cases
 * 15 and 16, RFC 4648 base64), plus the sealed-token keyring, constant-time
 * compare, API tokens and argon2id passwords. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "nebula_crypto.h"
#include "nebula_unit.h"

#define HEX(s, lenp) unit_unhex(unit_pool, (s), (lenp))

static const char *hmac_hex(const void *key, apr_size_t keylen, const char *data)
{
    unsigned char mac[NEBULA_CRYPTO_SHA256_LEN];

    ck_assert_int_eq(nebula_crypto_hmac_sha256(key, keylen, data, strlen(data), mac),
                     APR_SUCCESS);
    return nebula_crypto_hex(unit_pool, mac, sizeof(mac));
}

START_TEST(sha256_vectors)
{
    unsigned char md[NEBULA_CRYPTO_SHA256_LEN];

    ck_assert_str_eq(nebula_crypto_sha256_hex(unit_pool, "", 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(nebula_crypto_sha256_hex(unit_pool, NULL, 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(nebula_crypto_sha256_hex(unit_pool, "abc", 3),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_int_eq(nebula_crypto_sha256("abc", 3, md), APR_SUCCESS);
    ck_assert_uint_eq(md[0], 0xba);
    ck_assert_uint_eq(md[31], 0xad);
    ck_assert_str_eq(nebula_crypto_hex(unit_pool, "\x00\x0f\xf0\xff", 4), "000ff0ff");
}
END_TEST

START_TEST(hmac_rfc4231)
{
    unsigned char key[131];

    /* test case 1 */
    memset(key, 0x0b, 20);
    ck_assert_str_eq(hmac_hex(key, 20, "Hi There"),
                     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* test case 2 */
    ck_assert_str_eq(hmac_hex("Jefe", 4, "what do ya want for nothing?"),
                     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* test cases 6 and 7: key longer than the block size */
    memset(key, 0xaa, sizeof(key));
    ck_assert_str_eq(hmac_hex(key, sizeof(key),
                              "Test Using Larger Than Block-Size Key - Hash Key First"),
                     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    ck_assert_str_eq(
        hmac_hex(key, sizeof(key),
                 "This is a test using a larger than block-size key and a larger than "
                 "block-size data. The key needs to be hashed before being used by the "
                 "HMAC algorithm."),
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}
END_TEST

START_TEST(hkdf_rfc5869)
{
    unsigned char ikm[80], salt[80], info[80], okm[82];
    apr_size_t n, i;
    const unsigned char *expect;

    /* A.1 */
    memset(ikm, 0x0b, 22);
    expect = HEX("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                 "34007208d5b887185865",
                 &n);
    ck_assert_int_eq(
        nebula_crypto_hkdf_sha256(ikm, 22, HEX("000102030405060708090a0b0c", &i), 13,
                                  HEX("f0f1f2f3f4f5f6f7f8f9", &i), 10, okm, 42),
        APR_SUCCESS);
    ck_assert_uint_eq(n, 42);
    ck_assert_mem_eq(okm, expect, 42);
    /* A.2: longer inputs and outputs */
    for (i = 0; i < 80; ++i) {
        ikm[i] = (unsigned char)i;
        salt[i] = (unsigned char)(0x60 + i);
        info[i] = (unsigned char)(0xb0 + i);
    }
    expect = HEX("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                 "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                 "cc30c58179ec3e87c14c01d5c1f3434f1d87",
                 &n);
    ck_assert_int_eq(nebula_crypto_hkdf_sha256(ikm, 80, salt, 80, info, 80, okm, 82),
                     APR_SUCCESS);
    ck_assert_uint_eq(n, 82);
    ck_assert_mem_eq(okm, expect, 82);
    /* A.3: zero-length salt and info */
    memset(ikm, 0x0b, 22);
    expect = HEX("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                 "9d201395faa4b61a96c8",
                 &n);
    ck_assert_int_eq(nebula_crypto_hkdf_sha256(ikm, 22, "", 0, NULL, 0, okm, 42),
                     APR_SUCCESS);
    ck_assert_mem_eq(okm, expect, 42);
    /* lengths outside RFC 5869's range */
    ck_assert_int_eq(nebula_crypto_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 0),
                     APR_EINVAL);
    ck_assert_int_eq(
        nebula_crypto_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 255 * 32 + 1),
        APR_EINVAL);
    ck_assert_int_eq(nebula_crypto_hkdf_sha256(ikm, 0, NULL, 0, NULL, 0, okm, 32),
                     APR_EINVAL);
}
END_TEST

START_TEST(gcm_known_answer)
{
    apr_size_t klen, nlen, plen, alen, clen, n;
    const unsigned char *key = HEX("feffe9928665731c6d6a8f9467308308"
                                   "feffe9928665731c6d6a8f9467308308",
                                   &klen);
    const unsigned char *nonce = HEX("cafebabefacedbaddecaf888", &nlen);
    const unsigned char *pt =
        HEX("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
            "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
            "ba637b391aafd255",
            &plen);
    const unsigned char *aad = HEX("feedfacedeadbeeffeedfacedeadbeefabaddad2", &alen);
    const unsigned char *ct =
        HEX("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd"
            "2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
            "bcc9f662898015ad",
            &clen);
    unsigned char out[64], back[64], tag[16];

    ck_assert_uint_eq(klen, 32);
    ck_assert_uint_eq(nlen, 12);
    /* test case 15: 64-byte plaintext, no AAD */
    ck_assert_int_eq(
        nebula_crypto_aes256gcm_encrypt(key, nonce, pt, 64, NULL, 0, out, tag),
        APR_SUCCESS);
    ck_assert_mem_eq(out, ct, 64);
    ck_assert_mem_eq(tag, HEX("b094dac5d93471bdec1a502270e3cc6c", &n), 16);
    /* test case 16: 60-byte plaintext, 20-byte AAD */
    ck_assert_int_eq(
        nebula_crypto_aes256gcm_encrypt(key, nonce, pt, 60, aad, alen, out, tag),
        APR_SUCCESS);
    ck_assert_mem_eq(out, ct, 60);
    ck_assert_mem_eq(tag, HEX("76fc6ece0f4e1768cddf8853bb2d551b", &n), 16);
    ck_assert_int_eq(
        nebula_crypto_aes256gcm_decrypt(key, nonce, out, 60, aad, alen, tag, back),
        APR_SUCCESS);
    ck_assert_mem_eq(back, pt, 60);
    /* wrong AAD: rejected and the output wiped */
    ck_assert_int_eq(
        nebula_crypto_aes256gcm_decrypt(key, nonce, out, 60, aad, alen - 1, tag, back),
        APR_EMISMATCH);
    ck_assert_uint_eq(back[0], 0);
    ck_assert_uint_eq(plen, 64);
}
END_TEST

static nebula_crypto_keyring_t *keyring(const char *secret, int version)
{
    nebula_crypto_keyring_t *kr =
        nebula_crypto_keyring_create(unit_pool, secret, strlen(secret), version);

    ck_assert_ptr_nonnull(kr);
    ck_assert_int_eq(nebula_crypto_keyring_version(kr), version);
    return kr;
}

START_TEST(seal_round_trip)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    static const char bin[] = "bin\0ary\xff";
    nebula_crypto_keyring_t *kr = keyring(secret, 1);
    const char *tok, *tok2;
    char *plain, big[1000];
    apr_size_t len;

    ck_assert_int_eq(
        nebula_crypto_seal(unit_pool, kr, "sk-upstream", 11, "channel:7", 9, &tok),
        APR_SUCCESS);
    ck_assert_int_eq(strncmp(tok, "nbk1:", 5), 0);
    /* 12 + 11 + 16 = 39 bytes -> 52 base64url chars */
    ck_assert_uint_eq(strlen(tok), 5 + 52);
    ck_assert_uint_eq(strspn(tok + 5,
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789-_"),
                      52);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, "channel:7", 9, &plain, &len),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, 11);
    ck_assert_str_eq(plain, "sk-upstream");
    /* a fresh nonce each time */
    ck_assert_int_eq(
        nebula_crypto_seal(unit_pool, kr, "sk-upstream", 11, "channel:7", 9, &tok2),
        APR_SUCCESS);
    ck_assert_str_ne(tok, tok2);
    /* empty, binary and larger plaintexts, no AAD */
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr, NULL, 0, NULL, 0, &tok),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, NULL, 0, &plain, &len),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(plain, "");
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr, bin, sizeof(bin) - 1, "", 0, &tok),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, NULL, 0, &plain, &len),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(bin) - 1);
    ck_assert_mem_eq(plain, bin, len);
    memset(big, 'q', sizeof(big));
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr, big, sizeof(big), "a", 1, &tok),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, "a", 1, &plain, NULL),
                     APR_SUCCESS);
    ck_assert_mem_eq(plain, big, sizeof(big));
}
END_TEST

/* The token with bit `bit` of raw byte `at` (negative: from the end) flipped. */
static const char *flip(const char *tok, long at, int bit)
{
    unsigned char *raw;
    apr_size_t len;
    const char *colon = strchr(tok, ':');

    ck_assert_int_eq(
        nebula_crypto_b64url_decode(unit_pool, colon + 1, strlen(colon + 1), &raw, &len),
        APR_SUCCESS);
    raw[at < 0 ? (long)len + at : at] ^= (unsigned char)(1 << bit);
    return apr_pstrcat(unit_pool, apr_pstrmemdup(unit_pool, tok, colon - tok + 1),
                       nebula_crypto_b64url_encode(unit_pool, raw, len), NULL);
}

START_TEST(open_rejects_tampering)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    nebula_crypto_keyring_t *kr = keyring(secret, 1);
    nebula_crypto_keyring_t *other = keyring("another secret of sufficient length", 1);
    const char *tok;
    char *plain = NULL;
    int bit;

    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr, "payload", 7, "user:1", 6, &tok),
                     APR_SUCCESS);
    for (bit = 0; bit < 8; bit += 7) {
        ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, flip(tok, 0, bit), "user:1", 6,
                                            &plain, NULL),
                         APR_EMISMATCH); /* nonce */
        ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, flip(tok, 12, bit), "user:1",
                                            6, &plain, NULL),
                         APR_EMISMATCH); /* ciphertext */
        ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, flip(tok, -1, bit), "user:1",
                                            6, &plain, NULL),
                         APR_EMISMATCH); /* tag */
    }
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, "user:2", 6, &plain, NULL),
                     APR_EMISMATCH);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, NULL, 0, &plain, NULL),
                     APR_EMISMATCH);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, other, tok, "user:1", 6, &plain, NULL),
                     APR_EMISMATCH);
    ck_assert_ptr_null(plain);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, "user:1", 6, &plain, NULL),
                     APR_SUCCESS);
}
END_TEST

START_TEST(open_rejects_malformed)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    static const char *bad[] = {
        "",
        "nbk",
        "nbk1",
        "nbk:AAAA",
        "nbkx:AAAA",
        "NBK1:AAAA",
        "nbk01:AAAA",
        "nbk1234:AAAA",
        "nbk-1:AAAA",
        "nbk1:",
        "nbk1:AAAA",
        "nbk1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "nbk1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!",
        "nbk1 :AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    nebula_crypto_keyring_t *kr = keyring(secret, 1);
    char *plain;
    apr_size_t i;
    const char *tok;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(nebula_crypto_open(unit_pool, kr, bad[i], NULL, 0, &plain, NULL) ==
                          APR_EINVAL,
                      "accepted \"%s\"", bad[i]);
    }
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, NULL, NULL, 0, &plain, NULL),
                     APR_EINVAL);
    /* 27 raw bytes: one short of nonce + tag */
    tok = apr_pstrcat(unit_pool,
                      "nbk1:", nebula_crypto_b64url_encode(unit_pool, secret, 27), NULL);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr, tok, NULL, 0, &plain, NULL),
                     APR_EINVAL);
    /* bad keyring arguments */
    ck_assert_ptr_null(nebula_crypto_keyring_create(unit_pool, "short", 5, 1));
    ck_assert_ptr_null(nebula_crypto_keyring_create(unit_pool, secret, 32, 0));
    ck_assert_ptr_null(nebula_crypto_keyring_create(unit_pool, secret, 32, 1000));
    ck_assert_ptr_null(nebula_crypto_keyring_create(unit_pool, NULL, 32, 1));
}
END_TEST

START_TEST(keyring_versions)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    nebula_crypto_keyring_t *kr1 = keyring(secret, 1);
    nebula_crypto_keyring_t *kr2 = keyring(secret, 2);
    nebula_crypto_keyring_t *kr1b = keyring(secret, 1);
    const char *tok1, *tok2, *forged;
    char *plain;

    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr1, "old", 3, "aad", 3, &tok1),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr2, "new", 3, "aad", 3, &tok2),
                     APR_SUCCESS);
    ck_assert_int_eq(strncmp(tok2, "nbk2:", 5), 0);
    /* same secret, same keys: another process's keyring opens our tokens */
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr1b, tok1, "aad", 3, &plain, NULL),
                     APR_SUCCESS);
    /* a version-1 token opens after rotation to version 2 */
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr2, tok1, "aad", 3, &plain, NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(plain, "old");
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr2, tok2, "aad", 3, &plain, NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(plain, "new");
    /* unknown versions */
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr1, tok2, "aad", 3, &plain, NULL),
                     APR_ENOENT);
    forged = apr_pstrcat(unit_pool, "nbk0", strchr(tok1, ':'), NULL);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr2, forged, "aad", 3, &plain, NULL),
                     APR_ENOENT);
    forged = apr_pstrcat(unit_pool, "nbk999", strchr(tok1, ':'), NULL);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr2, forged, "aad", 3, &plain, NULL),
                     APR_ENOENT);
    /* versions have distinct keys: relabelling a v2 token as v1 fails */
    forged = apr_pstrcat(unit_pool, "nbk1", strchr(tok2, ':'), NULL);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, kr2, forged, "aad", 3, &plain, NULL),
                     APR_EMISMATCH);
}
END_TEST

START_TEST(keyring_derivation_is_documented_hkdf)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    static const char info[] = NEBULA_CRYPTO_KEYRING_INFO "2";
    nebula_crypto_keyring_t *kr = keyring(secret, 2);
    unsigned char key[32], *raw, out[5];
    apr_size_t len;
    const char *tok;

    ck_assert_str_eq(info, "NebulaGate/keyring/aes-256-gcm/v2");
    ck_assert_int_eq(nebula_crypto_hkdf_sha256(secret, 32, NEBULA_CRYPTO_KEYRING_SALT,
                                               strlen(NEBULA_CRYPTO_KEYRING_SALT), info,
                                               strlen(info), key, sizeof(key)),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, kr, "hello", 5, "ad", 2, &tok),
                     APR_SUCCESS);
    ck_assert_int_eq(
        nebula_crypto_b64url_decode(unit_pool, tok + 5, strlen(tok + 5), &raw, &len),
        APR_SUCCESS);
    ck_assert_uint_eq(len, 12 + 5 + 16);
    ck_assert_int_eq(
        nebula_crypto_aes256gcm_decrypt(key, raw, raw + 12, 5, "ad", 2, raw + 17, out),
        APR_SUCCESS);
    ck_assert_mem_eq(out, "hello", 5);
}
END_TEST

START_TEST(constant_time_equal)
{
    ck_assert_int_eq(nebula_crypto_equal("abc", 3, "abc", 3), 1);
    ck_assert_int_eq(nebula_crypto_equal("abc", 3, "abd", 3), 0);
    ck_assert_int_eq(nebula_crypto_equal("abc", 3, "xbc", 3), 0);
    ck_assert_int_eq(nebula_crypto_equal("abc", 3, "abcd", 4), 0);
    ck_assert_int_eq(nebula_crypto_equal("abcd", 4, "abc", 3), 0);
    ck_assert_int_eq(nebula_crypto_equal("", 0, "", 0), 1);
    ck_assert_int_eq(nebula_crypto_equal(NULL, 0, NULL, 0), 1);
    ck_assert_int_eq(nebula_crypto_equal("a\0b", 3, "a\0c", 3), 0);
    ck_assert_int_eq(nebula_crypto_equal("a\0b", 3, "a\0b", 3), 1);
    /* equal prefixes of different lengths, both ways round */
    ck_assert_int_eq(nebula_crypto_equal("abc\0", 4, "abc", 3), 0);
    ck_assert_int_eq(nebula_crypto_equal("abc", 3, "abc\0", 4), 0);
}
END_TEST

START_TEST(tokens)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz";
    apr_hash_t *seen = apr_hash_make(unit_pool);
    unsigned counts[256];
    const char *t;
    int i, c;

    memset(counts, 0, sizeof(counts));
    for (i = 0; i < 1000; ++i) {
        t = nebula_crypto_token(unit_pool, "sk-", NEBULA_CRYPTO_API_KEY_CHARS);
        ck_assert_ptr_nonnull(t);
        ck_assert_uint_eq(strlen(t), 3 + 48);
        ck_assert_int_eq(strncmp(t, "sk-", 3), 0);
        ck_assert_uint_eq(strspn(t + 3, alphabet), 48);
        ck_assert_ptr_null(apr_hash_get(seen, t, APR_HASH_KEY_STRING));
        apr_hash_set(seen, t, APR_HASH_KEY_STRING, t);
        for (c = 3; c < 51; ++c) {
            counts[(unsigned char)t[c]]++;
        }
    }
    ck_assert_uint_eq(apr_hash_count(seen), 1000);
    /* modulo bias (no rejection) would give '0'..'7' 5/256 each instead of
     * 1/62: about 7500 of the 48000 symbols instead of 6194 +- 73 */
    for (i = 0, c = 0; i < 8; ++i) {
        c += (int)counts[(unsigned char)alphabet[i]];
    }
    ck_assert_msg(c < 6700, "'0'..'7' over-represented: %d", c);
    /* 48000 symbols, about 774 each: every symbol used, none wildly off */
    for (i = 0; i < 62; ++i) {
        ck_assert_msg(counts[(unsigned char)alphabet[i]] > 500 &&
                          counts[(unsigned char)alphabet[i]] < 1100,
                      "symbol %c seen %u times", alphabet[i],
                      counts[(unsigned char)alphabet[i]]);
    }
    t = nebula_crypto_token(unit_pool, NULL, 1);
    ck_assert_uint_eq(strlen(t), 1);
    ck_assert_ptr_null(nebula_crypto_token(unit_pool, "sk-", 0));
    ck_assert_ptr_null(
        nebula_crypto_token(unit_pool, "sk-", NEBULA_CRYPTO_TOKEN_MAX_CHARS + 1));
    t = nebula_crypto_token(unit_pool, "", NEBULA_CRYPTO_TOKEN_MAX_CHARS);
    ck_assert_uint_eq(strspn(t, alphabet), NEBULA_CRYPTO_TOKEN_MAX_CHARS);
}
END_TEST

START_TEST(base64url)
{
    static const char *rfc[][2] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    static const char *bad[] = {"Z",      "Zg=",  "Zg==", "Zh",    "Zm9",
                                "Zm9v\n", "Zm+v", "Zm/v", "Zm9vY", " Zg"};
    unsigned char buf[64], *out;
    apr_size_t i, len, n;

    for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); ++i) {
        ck_assert_str_eq(
            nebula_crypto_b64url_encode(unit_pool, rfc[i][0], strlen(rfc[i][0])),
            rfc[i][1]);
        ck_assert_int_eq(nebula_crypto_b64url_decode(unit_pool, rfc[i][1],
                                                     strlen(rfc[i][1]), &out, &len),
                         APR_SUCCESS);
        ck_assert_uint_eq(len, strlen(rfc[i][0]));
        ck_assert_str_eq((char *)out, rfc[i][0]);
    }
    /* the URL-safe characters: 0xfb 0xff is "+/8=" in standard base64 */
    ck_assert_str_eq(nebula_crypto_b64url_encode(unit_pool, "\xfb\xff", 2), "-_8");
    for (n = 0; n <= 64; n = n < 10 ? n + 1 : n * 2) {
        const char *enc;

        ck_assert_int_eq(nebula_crypto_random(buf, n), APR_SUCCESS);
        enc = nebula_crypto_b64url_encode(unit_pool, buf, n);
        ck_assert_uint_eq(strlen(enc), (n * 4 + 2) / 3);
        ck_assert_int_eq(
            nebula_crypto_b64url_decode(unit_pool, enc, strlen(enc), &out, &len),
            APR_SUCCESS);
        ck_assert_uint_eq(len, n);
        ck_assert_mem_eq(out, buf, n);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(nebula_crypto_b64url_decode(unit_pool, bad[i], strlen(bad[i]), &out,
                                                  &len) == APR_EINVAL,
                      "accepted \"%s\"", bad[i]);
    }
}
END_TEST

START_TEST(random_bytes_differ)
{
    unsigned char a[32], b[32];

    ck_assert_int_eq(nebula_crypto_random(a, sizeof(a)), APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_random(b, sizeof(b)), APR_SUCCESS);
    ck_assert_int_ne(memcmp(a, b, sizeof(a)), 0);
    ck_assert_int_eq(nebula_crypto_random(a, 0), APR_SUCCESS);
}
END_TEST

START_TEST(argon2id_passwords)
{
    const char *enc, *enc2;

    ck_assert_int_eq(nebula_crypto_password_hash(unit_pool, "correct horse", &enc),
                     APR_SUCCESS);
    ck_assert_msg(strncmp(enc, "$argon2id$v=19$m=65536,t=3,p=1$", 31) == 0, "got %s",
                  enc);
    ck_assert_int_eq(nebula_crypto_password_verify(enc, "correct horse"), APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_password_verify(enc, "correct horsf"), APR_EMISMATCH);
    ck_assert_int_eq(nebula_crypto_password_verify(enc, ""), APR_EMISMATCH);
    /* random salt: same password, different encodings, both verify */
    ck_assert_int_eq(nebula_crypto_password_hash(unit_pool, "correct horse", &enc2),
                     APR_SUCCESS);
    ck_assert_str_ne(enc, enc2);
    ck_assert_int_eq(nebula_crypto_password_verify(enc2, "correct horse"), APR_SUCCESS);
    /* malformed */
    ck_assert_int_eq(
        nebula_crypto_password_verify("$argon2i$v=19$m=65536,t=3,p=1$x$y", "a"),
        APR_EINVAL);
    ck_assert_int_eq(nebula_crypto_password_verify("$argon2id$garbage", "a"), APR_EINVAL);
    ck_assert_int_eq(nebula_crypto_password_verify(NULL, "a"), APR_EINVAL);
    ck_assert_int_eq(nebula_crypto_password_hash(unit_pool, NULL, &enc), APR_EINVAL);
}
END_TEST

/* CRYPTO_SECRET rotation: a keyring opens what the previous secret sealed
 * only while that one is set as its previous; it always seals as itself. */
START_TEST(keyring_previous)
{
    nebula_crypto_keyring_t *old = keyring("old-secret-0123456789abcdef0123456789", 1);
    nebula_crypto_keyring_t *cur = keyring("new-secret-0123456789abcdef0123456789", 1);
    const char *t_old, *t_new;
    char *plain = NULL;
    apr_size_t len = 0;

    ck_assert_int_eq(nebula_crypto_seal(unit_pool, old, "sk-up", 5, "channel:1", 9, &t_old),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, cur, t_old, "channel:1", 9, &plain, &len),
                     APR_EMISMATCH);
    nebula_crypto_keyring_set_previous(cur, old);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, cur, t_old, "channel:1", 9, &plain, &len),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(plain, "sk-up", 5), 0);
    /* the AAD still binds under the previous secret */
    ck_assert_int_eq(nebula_crypto_open(unit_pool, cur, t_old, "channel:2", 9, &plain, &len),
                     APR_EMISMATCH);
    /* seals are the current secret's: the old one alone cannot open them */
    ck_assert_int_eq(nebula_crypto_seal(unit_pool, cur, "sk-up", 5, "channel:1", 9, &t_new),
                     APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, old, t_new, "channel:1", 9, &plain, &len),
                     APR_EMISMATCH);
    nebula_crypto_keyring_set_previous(cur, NULL);
    ck_assert_int_eq(nebula_crypto_open(unit_pool, cur, t_old, "channel:1", 9, &plain, &len),
                     APR_EMISMATCH);
}
END_TEST

/* new-api's bcrypt hashes ($2a$, cost 10) verify; other strings do not. */
START_TEST(bcrypt_passwords)
{
    static const char h[] = "$2a$10$C49nu6mr5oQpmhfWefxRNepEq2PV2iruus0.Qn5I5/K1iO2eytNuC";

    ck_assert(nebula_crypto_password_legacy(h));
    ck_assert(!nebula_crypto_password_legacy("$argon2id$v=19$m=65536,t=3,p=1$x$y"));
    ck_assert(!nebula_crypto_password_legacy(NULL));
    ck_assert_int_eq(nebula_crypto_password_verify(h, "alice-old-password"), APR_SUCCESS);
    ck_assert_int_eq(nebula_crypto_password_verify(h, "alice-old-passwore"), APR_EMISMATCH);
    ck_assert_int_eq(nebula_crypto_password_verify("$2a$10$short", "a"), APR_EINVAL);
}
END_TEST

Suite *unit_crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("crypto");
    TCase *slow = tcase_create("argon2");

    tcase_add_checked_fixture(tc, unit_pool_setup, unit_pool_teardown);
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, hmac_rfc4231);
    tcase_add_test(tc, hkdf_rfc5869);
    tcase_add_test(tc, gcm_known_answer);
    tcase_add_test(tc, seal_round_trip);
    tcase_add_test(tc, open_rejects_tampering);
    tcase_add_test(tc, open_rejects_malformed);
    tcase_add_test(tc, keyring_versions);
    tcase_add_test(tc, keyring_derivation_is_documented_hkdf);
    tcase_add_test(tc, constant_time_equal);
    tcase_add_test(tc, tokens);
    tcase_add_test(tc, base64url);
    tcase_add_test(tc, random_bytes_differ);
    tcase_add_test(tc, keyring_previous);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(slow, unit_pool_setup, unit_pool_teardown);
    tcase_set_timeout(slow, 120);
    tcase_add_test(slow, argon2id_passwords);
    tcase_add_test(slow, bcrypt_passwords);
    suite_add_tcase(s, slow);
    return s;
}

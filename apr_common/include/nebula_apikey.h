/**
 * @file nebula_apikey.h
 * @brief Client API keys: the one definition of their form and of the hash
 *        stored for them, shared by the relay (auth), the admin API and
 *        nebulactl (create, import).
 *
 * A key is "sk-" followed by NEBULA_CRYPTO_API_KEY_CHARS base62 characters
 * from the CSPRNG. Clients may send it with or without the "sk-" prefix (as
 * new-api accepts), so the stored hash covers the secret part only: the
 * lowercase hex SHA-256 of the characters after an optional leading "sk-".
 * Keys imported from new-api (48 characters stored without "sk-") therefore
 * hash the same way and keep working.
 */
#ifndef NEBULA_APIKEY_H
#define NEBULA_APIKEY_H

#include <apr_pools.h>

/** The secret part of a presented key: after a leading "sk-", if any. */
const char *nebula_apikey_secret(const char *presented);

/** The stored form: hex SHA-256 of nebula_apikey_secret(@a presented). */
char *nebula_apikey_hash(apr_pool_t *p, const char *presented);

/**
 * A new key. Returns "sk-..." (shown once) and sets *@a hash (to store) and
 * *@a prefix (the first 8 characters, e.g. "sk-AbCd", for display), all in
 * @a p. NULL if the CSPRNG failed.
 */
char *nebula_apikey_generate(apr_pool_t *p, char **hash, char **prefix);

#endif /* NEBULA_APIKEY_H */

/* nebula_apikey.c: the form and stored hash of client API keys (see
 * nebula_apikey.h). */
#include <string.h>
#include <apr_strings.h>
#include "nebula_apikey.h"
#include "nebula_crypto.h"

const char *nebula_apikey_secret(const char *presented)
{
    return strncmp(presented, "sk-", 3) == 0 ? presented + 3 : presented;
}

char *nebula_apikey_hash(apr_pool_t *p, const char *presented)
{
    const char *secret = nebula_apikey_secret(presented);

    return nebula_crypto_sha256_hex(p, secret, strlen(secret));
}

char *nebula_apikey_generate(apr_pool_t *p, char **hash, char **prefix)
{
    char *key = nebula_crypto_token(p, "sk-", NEBULA_CRYPTO_API_KEY_CHARS);

    if (key == NULL) {
        return NULL;
    }
    *hash = nebula_apikey_hash(p, key);
    *prefix = apr_pstrndup(p, key, 8);
    return key;
}

#!/bin/sh
# Maps the operator-facing environment onto NebulaGate's directives, then
# starts httpd. SQL_DSN: sqlite:/path | postgres://u:p@h:port/db | mysql://u:p@h:port/db
set -eu
: "${SESSION_SECRET:?SESSION_SECRET must be set}"
: "${CRYPTO_SECRET:?CRYPTO_SECRET must be set}"
SQL_DSN=${SQL_DSN:-sqlite:/var/lib/nebula/nebula.db}
# nebulactl parses the DSN exactly as the Docker docs describe and prints the
# mod_dbd driver and parameters; the schema is migrated before httpd starts.
dbd=$(nebulactl dsn --dsn "$SQL_DSN")
NEBULA_DBD_DRIVER=$(printf '%s\n' "$dbd" | sed -n 1p)
NEBULA_DBD_PARAMS=$(printf '%s\n' "$dbd" | sed -n 2p)
export SESSION_SECRET CRYPTO_SECRET NEBULA_DBD_DRIVER NEBULA_DBD_PARAMS
export REDIS_CONN_STRING=${REDIS_CONN_STRING:-none}
export STREAMING_TIMEOUT=${STREAMING_TIMEOUT:-300}
export AZURE_DEFAULT_API_VERSION=${AZURE_DEFAULT_API_VERSION:-2024-10-21}
# channels' upstreams in private ranges (other containers, an internal
# model server) must be allowed explicitly: NebulaUpstreamAllow (SSRF)
export UPSTREAM_ALLOW=${UPSTREAM_ALLOW:-none}
export TZ=${TZ:-UTC}
nebulactl migrate --dsn "$SQL_DSN"
exec "$@"

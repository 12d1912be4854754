#!/bin/sh
# Maps the operator-facing environment onto NebulaGate's directives, then
# starts httpd. SQL_DSN: sqlite:/path | postgres://u:p@h:port/db | mysql://u:p@h:port/db
# | new-api's forms (below). docker/README.md lists every variable.
set -eu
: "${SESSION_SECRET:?SESSION_SECRET must be set}"
: "${CRYPTO_SECRET:?CRYPTO_SECRET must be set}"
# new-api's SQL_DSN forms are taken as they are (nebulactl parses them):
# postgres:// and postgresql:// URLs, the Go MySQL driver's
# user:pass@tcp(host:3306)/db?charset=utf8mb4&parseTime=true (options for Go
# only are ignored) and user:pass@unix(/socket)/db. Empty or "local" means
# SQLite at SQLITE_PATH, as in new-api (its "?_busy_timeout=..." is dropped;
# a relative path is under /var/lib/nebula).
case "${SQL_DSN:-}" in
    '' | local*)
        sqlite_path=${SQLITE_PATH:-/var/lib/nebula/nebula.db}
        sqlite_path=${sqlite_path%%\?*}
        case "$sqlite_path" in /*) ;; *) sqlite_path=/var/lib/nebula/$sqlite_path ;; esac
        SQL_DSN=sqlite:$sqlite_path
        ;;
esac
# nebulactl parses the DSN exactly as the Docker docs describe and prints the
# mod_dbd driver and parameters; the schema is migrated before httpd starts.
dbd=$(nebulactl dsn --dsn "$SQL_DSN")
NEBULA_DBD_DRIVER=$(printf '%s\n' "$dbd" | sed -n 1p)
NEBULA_DBD_PARAMS=$(printf '%s\n' "$dbd" | sed -n 2p)
export SESSION_SECRET CRYPTO_SECRET NEBULA_DBD_DRIVER NEBULA_DBD_PARAMS
# --print-dbd: show the mapping (driver, then DBDParams: the password too)
# and stop, before migrating or starting httpd (docker/README.md)
if [ "${1:-}" = "--print-dbd" ]; then
    printf '%s\n%s\n' "$NEBULA_DBD_DRIVER" "$NEBULA_DBD_PARAMS"
    exit 0
fi
export REDIS_CONN_STRING=${REDIS_CONN_STRING:-none}
export STREAMING_TIMEOUT=${STREAMING_TIMEOUT:-300}
export AZURE_DEFAULT_API_VERSION=${AZURE_DEFAULT_API_VERSION:-2024-10-21}
# channels' upstreams in private ranges (other containers, an internal
# model server) must be allowed explicitly: NebulaUpstreamAllow (SSRF)
export UPSTREAM_ALLOW=${UPSTREAM_ALLOW:-none}
export TZ=${TZ:-UTC}
nebulactl migrate --dsn "$SQL_DSN"
# a SQLite file the migration (as root) created belongs to the children's
# user (httpd-nebula.conf: User www-data)
if [ "$NEBULA_DBD_DRIVER" = sqlite3 ]; then
    for f in "$NEBULA_DBD_PARAMS" "$NEBULA_DBD_PARAMS-wal" "$NEBULA_DBD_PARAMS-shm"; do
        [ ! -e "$f" ] || chown www-data: "$f" 2>/dev/null || true # (not as root: its own)
    done
fi
exec "$@"

#!/usr/bin/env bash
# npm-deps.sh: installs t/sdk/node_modules (the official openai SDK that
# t/sdk/openai.t drives) exactly as t/sdk/package-lock.json pins it, with
# `npm ci`. Offline-safe: when node_modules was installed from the same
# lockfile (a stamp holds the lockfile's SHA-256), nothing runs and nothing is
# fetched. npm's cache goes to var/npm-cache (override with npm_config_cache),
# so an unprivileged user with no writable home can run it.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SDK="$TOP/t/sdk"
STAMP="$SDK/node_modules/.nebula-lock.sha256"

die() { printf 'npm-deps.sh: %s\n' "$*" >&2; exit 1; }
command -v node >/dev/null || die "node is missing (Node.js >= 20, e.g. NodeSource's nodejs package)"
command -v npm >/dev/null || die "npm is missing (it comes with NodeSource's nodejs package)"
# the pinned SDK supports Node.js 20 and later (Debian 12's own nodejs is 18)
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "node $(node --version) is too old: the openai SDK needs Node.js >= 20"

want=$(sha256sum "$SDK/package-lock.json" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -f "$SDK/node_modules/openai/package.json" ]; then
    exit 0
fi

export npm_config_cache="${npm_config_cache:-$TOP/var/npm-cache}"
export npm_config_update_notifier=false
mkdir -p "$npm_config_cache"
# no lifecycle scripts: the SDK needs none, and tests should not run any
( cd "$SDK" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
    --loglevel=error ) || die "npm ci failed in t/sdk (is the npm registry reachable?)"
printf '%s\n' "$want" > "$STAMP"

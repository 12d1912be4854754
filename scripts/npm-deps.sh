#!/usr/bin/env bash
# npm-deps.sh: installs the node_modules of the Node.js tests exactly as their
# lockfiles pin them, with `npm ci`:
#   t/sdk      the official SDKs that t/sdk/*.t drive (openai, ...)
#   t/browser  playwright-core, which t/browser/*.t use to drive Debian's
#              headless Chromium (/usr/bin/chromium) through the admin UI
# Offline-safe: when a node_modules was installed from the same lockfile (a
# stamp holds the lockfile's SHA-256), nothing runs and nothing is fetched.
# npm's cache goes to var/npm-cache (override with npm_config_cache), so an
# unprivileged user with no writable home can run it.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { printf 'npm-deps.sh: %s\n' "$*" >&2; exit 1; }
command -v node >/dev/null || die "node is missing (Node.js >= 20, e.g. NodeSource's nodejs package)"
command -v npm >/dev/null || die "npm is missing (it comes with NodeSource's nodejs package)"
# the pinned SDK supports Node.js 20 and later (Debian 12's own nodejs is 18)
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "node $(node --version) is too old: the openai SDK needs Node.js >= 20"

export npm_config_cache="${npm_config_cache:-$TOP/var/npm-cache}"
export npm_config_update_notifier=false

# npm_install DIR MARKER: npm ci in DIR unless its stamp matches its lockfile and
# node_modules/MARKER/package.json is there
npm_install() {
    local dir="$TOP/$1" marker="$2"
    local stamp="$dir/node_modules/.nebula-lock.sha256" want
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -f "$dir/node_modules/$marker/package.json" ]; then
        return 0
    fi
    mkdir -p "$npm_config_cache"
    # no lifecycle scripts: the packages need none, and tests should not run
    # any (playwright-core downloads no browser: the tests use Debian's)
    ( cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
        --loglevel=error ) || die "npm ci failed in $1 (is the npm registry reachable?)"
    printf '%s\n' "$want" > "$stamp"
}

npm_install t/sdk openai
npm_install t/browser playwright-core

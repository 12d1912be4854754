#!/bin/sh
# bench/gov/run.sh - the governance policy engine's micro-benchmark: compiles
# 100 realistic policies and times nebula_gov_evaluate / nebula_gov_redact
# over a 2 KB mixed English/Chinese prompt; prints one JSON line.
#
#   bench/gov/run.sh [ITERATIONS]      (default 20000)
#
# Builds the tree first when libnebula_common is missing (scripts/build.sh),
# then bench/gov/.build/bench_gov with gcc and pkg-config against
# apr_common/.libs/libnebula_common.a.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
LIB="$TOP/apr_common/.libs/libnebula_common.a"
BUILD="$HERE/.build"
if [ ! -f "$LIB" ]; then
    "$TOP/scripts/build.sh" >&2
fi
mkdir -p "$BUILD"
PKGS="apr-1 apr-util-1 jansson libpcre2-8 libcrypto libargon2 hiredis"
if [ ! -x "$BUILD/bench_gov" ] || [ "$HERE/bench_gov.c" -nt "$BUILD/bench_gov" ] ||
   [ "$LIB" -nt "$BUILD/bench_gov" ]; then
    # shellcheck disable=SC2046
    gcc -std=gnu99 -O2 -Wall -Wextra -Werror -I"$TOP/apr_common/include" \
        $(pkg-config --cflags $PKGS) -o "$BUILD/bench_gov" "$HERE/bench_gov.c" \
        "$LIB" $(pkg-config --libs $PKGS) -lpthread -lm
fi
exec "$BUILD/bench_gov" "${1:-20000}"

#!/bin/sh
# Build NebulaGate's Debian package: scripts/package.sh [OUTDIR]  (default var/pkg)
# dpkg-buildpackage cleans and builds its source tree in place and writes the
# .deb to the parent directory, so it runs on a copy of this tree in
# OUTDIR/build/nebulagate-VERSION/ (the developer's own build is untouched)
# and the .deb is copied to OUTDIR. Needs no root (Rules-Requires-Root: no).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/var/pkg}
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
work="$out/build"
src="$work/nebulagate-$version"
rm -rf "$work"
mkdir -p "$src"
# the sources, uncommitted changes included; no build products or run state
rsync -a --exclude '/.git' --exclude '/var/' --exclude '/t/logs/' --exclude 'node_modules/' \
    --exclude '*.o' --exclude '*.lo' --exclude '*.la' --exclude '.libs/' --exclude '.deps/' \
    --exclude '.dirstamp' --exclude '.build/' --exclude '/build/tokenizer/' \
    --exclude '/bench/.work/' --exclude '/bench/.peers/' --exclude '/t/browser/screenshots/' \
    --exclude '/configure' --exclude '/config.status' --exclude '/config.log' \
    --exclude '/libtool' --exclude '/aclocal.m4' --exclude '/autom4te.cache/' \
    --exclude 'Makefile' --exclude 'Makefile.in' \
    --exclude '/build/aux/' --exclude '/build/m4/' \
    --exclude '/build/nebula_config.h*' --exclude '/build/stamp-h1' \
    --exclude '/build/configure.log' --exclude '/apr_common/nebula_schema_sql.c' \
    --exclude '/admin/nebulactl/nebulactl' --exclude '/t/unit/test_common' \
    "$top/" "$src/"
echo "package.sh: building nebulagate $version in $src" >&2
log="$work/dpkg-buildpackage.log"
jobs=$(nproc 2>/dev/null || echo 2)
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -b -us -uc) >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "package.sh: dpkg-buildpackage failed (whole log: $log)" >&2
    exit 1
fi
rm -f "$out"/nebulagate_*.deb
cp "$work"/nebulagate_*.deb "$out"/
rm -rf "$src"
ls "$out"/nebulagate_*.deb

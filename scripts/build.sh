#!/bin/sh
# Build NebulaGate: the one build recipe that ./nebula and docker/Dockerfile share.
#   scripts/build.sh [--apxs PATH] [--install] [--werror] [--asan]
# Configures once (again when configure.ac or Makefile.am change), then makes.
# --asan: an AddressSanitizer + UBSan build of a copy of this tree, var/asan/src (this
# tree's own build stays as it is: scripts/asan.sh runs the suite there).
set -eu
cd "$(dirname "$0")/.."
apxs=""; install=no; werror=""; asan=no; args="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --apxs) apxs="$2"; shift 2 ;;
        --install) install=yes; shift ;;
        --werror) werror="--enable-werror"; shift ;;
        --asan) asan=yes; shift ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$asan" = yes ] && [ ! -f .nebula-asan-tree ]; then
    mkdir -p var/asan/src
    rsync -a --delete --exclude-from=scripts/asan-excludes ./ var/asan/src/
    touch var/asan/src/.nebula-asan-tree
    # shellcheck disable=SC2086
    exec var/asan/src/scripts/build.sh $args
fi
# the copy is always instrumented, whoever builds it (./nebula up in t/build/nebula_up.t)
san=""
if [ -f .nebula-asan-tree ]; then
    san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    [ "$install" = no ] || { echo "build.sh: an ASan build is not installed" >&2; exit 2; }
fi
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    mkdir -p build/m4 build/aux
    autoreconf -fi >/dev/null
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ] || [ ! -f config.status ]; then
    ./configure ${apxs:+--with-apxs="$apxs"} $werror \
        ${san:+CFLAGS="$san -g -O1" LDFLAGS="$san"} >build/configure.log 2>&1 \
        || { tail -30 build/configure.log; exit 1; }
    sed -n '/NebulaGate /,$p' build/configure.log
fi
make -s --no-print-directory -j"$(nproc 2>/dev/null || echo 2)"
if [ "$install" = yes ]; then
    make install
fi

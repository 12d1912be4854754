#!/bin/sh
# Build NebulaGate: the one build recipe that ./nebula and docker/Dockerfile share.
#   scripts/build.sh [--apxs PATH] [--install] [--werror]
# Configures once (again when configure.ac or Makefile.am change), then makes.
set -eu
cd "$(dirname "$0")/.."
apxs=""; install=no; werror=""
while [ $# -gt 0 ]; do
    case "$1" in
        --apxs) apxs="$2"; shift 2 ;;
        --install) install=yes; shift ;;
        --werror) werror="--enable-werror"; shift ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    mkdir -p build/m4 build/aux
    autoreconf -fi >/dev/null
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ] || [ ! -f config.status ]; then
    ./configure ${apxs:+--with-apxs="$apxs"} $werror >build/configure.log 2>&1 \
        || { tail -30 build/configure.log; exit 1; }
    sed -n '/NebulaGate /,$p' build/configure.log
fi
make -s --no-print-directory -j"$(nproc 2>/dev/null || echo 2)"
if [ "$install" = yes ]; then
    make install
fi

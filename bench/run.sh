#!/bin/sh
# bench/run.sh - the whole-gateway benchmark (issue 9); `./nebula bench` runs it
# after installing wrk and nginx and building the tree.
#
#   bench/run.sh [--quick] [--runs N] [--peer] [--soak SECONDS] [--out DIR]
#                [--no-docs] [--mock evmock|httpd]
#
# Loopback only, ports 19000-19019 (PostgreSQL and Redis from scripts/testdb.sh
# pick their own). Starts the mock provider, the httpd and nginx references and
# the NebulaGate scenarios side by side, measures them, writes
# bench/results/<UTC>.json and the "Latest run" section of docs/benchmarks.md,
# and stops everything it started, also when interrupted. docs/benchmarks.md
# says what each figure means. Work files: bench/.work/ (kept for inspection).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# every stream is a socket at the client, two in a gateway and one in the mock
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$HERE/bench.py" --command "./nebula bench${*:+ $*}" "$@"

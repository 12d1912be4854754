#!/bin/sh
# bench/datagrowth.sh - the data-growth benchmark (issue 11, item 6;
# docs/benchmarks.md, "Data growth"; docs/operations-data.md).
#
#   bench/datagrowth.sh [--rows N (5000000)] [--runs N (5)] [--skip-load]
#                       [--no-rollup] [--no-time]
#                       [--no-pg]
#
# Run as an unprivileged user (PostgreSQL refuses root). Starts a private
# PostgreSQL with scripts/testdb.sh under bench/.work/datagrowth/pg (stopped
# again on exit), then bench/datagrowth.py loads the rows into a SQLite file
# and into that PostgreSQL and, through a gateway on each, rolls them up with
# the scheduler and times the dashboards' admin API requests. The SQLite file
# stays in bench/.work/datagrowth (--skip-load reuses it; 5M rows and their
# rollups are ~2.5 GB); the private PostgreSQL is made anew by each run, so it
# is always loaded and rolled up again (~8 min). Prints a Markdown table.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
VAR=$TOP/bench/.work/datagrowth
CTL=$TOP/admin/nebulactl/nebulactl

[ "$(id -u)" -ne 0 ] || { echo "datagrowth: run as an unprivileged user" >&2; exit 2; }
[ -x "$CTL" ] || { echo "datagrowth: build first (scripts/build.sh): no $CTL" >&2; exit 2; }
PG=1
for a in "$@"; do [ "$a" = --no-pg ] && PG=0; done
mkdir -p "$VAR"
ARGS=""
for a in "$@"; do [ "$a" = --no-pg ] || ARGS="$ARGS $a"; done
cd "$TOP"
if [ "$PG" -eq 0 ]; then
    # shellcheck disable=SC2086
    exec nice python3 "$HERE/datagrowth.py" --dir "$VAR" --nebulactl "$CTL" $ARGS
fi
NEBULA_TESTDB_SERVICES=pg "$TOP/scripts/testdb.sh" start "$VAR/pg" >&2
trap 'NEBULA_TESTDB_SERVICES=pg "$TOP/scripts/testdb.sh" stop "$VAR/pg" >&2' EXIT INT TERM
eval "$(NEBULA_TESTDB_SERVICES=pg "$TOP/scripts/testdb.sh" env "$VAR/pg")"
# shellcheck disable=SC2086
nice python3 "$HERE/datagrowth.py" --dir "$VAR" --nebulactl "$CTL" \
    --pg "$NEBULA_TEST_PG_PARAMS" \
    --pg-restart "'$TOP/scripts/testdb.sh' pause '$VAR/pg' pg && '$TOP/scripts/testdb.sh' resume '$VAR/pg' pg" \
    $ARGS

#!/usr/bin/env bash
# scripts/asan.sh: the whole Apache::Test suite under AddressSanitizer and UBSan
# (docs/reliability.md, "ASan run"). Run as the unprivileged test user; `./nebula test
# --asan` does it for you.
#   scripts/asan.sh [--db sqlite|all] [--no-build] [--keep-reports] [t/x/y.t ...]
#     --db all        also the server-database suites, as ./nebula test runs them
#     --no-build      use the instrumented copy as it was last built
#     --keep-reports  do not clear var/asan/reports/ first
#     t/x/y.t ...     only these tests (default: all of them)
# Builds an instrumented copy of this tree in var/asan/src (scripts/build.sh --asan:
# -fsanitize=address,undefined -fno-sanitize-recover=undefined, the mock modules too),
# runs t/TEST there with an httpd wrapper (var/asan/httpd) that preloads the sanitizer
# runtimes into /usr/sbin/apache2 (perl is not run under them), then counts the reports
# ("ERROR: AddressSanitizer", "runtime error:") in var/asan/reports/, the error logs and
# the suite's output.
# Exit status 0 only when every test passed, the error logs hold no unexpected
# [error] lines and there is no sanitizer report at all.
# Leak detection is off (detect_leaks=0): httpd frees by pools, at exit or never.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A="$TOP/var/asan"
SRC="$A/src"
REP="$A/reports"
db=sqlite; build=yes; keep=no; tests=()
while [ $# -gt 0 ]; do
    case "$1" in
        --db) db="${2:-}"; shift 2
              [[ "$db" =~ ^(sqlite|all)$ ]] || { echo "asan.sh: --db sqlite|all" >&2; exit 2; }
              ;;
        --no-build) build=no; shift ;;
        --keep-reports) keep=yes; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "asan.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) tests+=("$1"); shift ;;
    esac
done
say() { printf 'asan: %s\n' "$*" >&2; }
[ "$(id -u)" -ne 0 ] || { say "Apache::Test refuses root: ./nebula test --asan"; exit 2; }
start=$(date +%s); started=$(date -u '+%Y-%m-%d %H:%M UTC')

if [ "$build" = yes ]; then
    nice -n 10 "$TOP/scripts/build.sh" --werror --asan
fi
if [ ! -f "$SRC/.nebula-asan-tree" ] \
        || [ ! -f "$SRC/mod_nebula_relay/.libs/mod_nebula_relay.so" ]; then
    say "no instrumented build in $SRC (run without --no-build)"; exit 1
fi

# ---- the environment: sanitizer runtimes for httpd only ----------------------
httpd="$(apxs -q SBINDIR)/$(apxs -q TARGET)"
libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
if [ ! -e "$libasan" ] || [ ! -e "$libubsan" ]; then
    say "gcc has no libasan/libubsan (libgcc-12-dev)"; exit 2
fi
cat > "$A/httpd" <<SH
#!/bin/sh
# scripts/asan.sh: $httpd with the sanitizer runtimes preloaded (our modules are
# instrumented, httpd is not; ASan's runtime must come first)
LD_PRELOAD="$libasan $libubsan\${LD_PRELOAD:+ \$LD_PRELOAD}" exec $httpd "\$@"
SH
chmod 755 "$A/httpd"
[ "$keep" = yes ] || rm -rf "$REP" "$A"/test-*.log "$A"/error_log.*
mkdir -p "$REP"
# ASan: every report to a file of its own (<path>.<exe>.<pid>); UBSan the same where its
# runtime heeds log_path (gcc's does not beside ASan: stderr, the error log). Nothing
# aborts but the faulty process (-fno-sanitize-recover=undefined: UB ends it too).
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$REP/asan:log_exe_name=1\
${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REP/ubsan:log_exe_name=1\
${UBSAN_EXTRA_OPTIONS:+:$UBSAN_EXTRA_OPTIONS}"
export NEBULA_HTTPD="$A/httpd"
export NEBULA_CTL="$SRC/admin/nebulactl/nebulactl"
# the mock provider modules, which Apache::Test builds with apxs -c, instrumented too
export EXTRA_CFLAGS="-Wc,-fsanitize=address,undefined -Wc,-fno-sanitize-recover=undefined \
-Wc,-fno-omit-frame-pointer -Wc,-g -Wc,-O1 -Wl,-fsanitize=address,undefined"

"$TOP/scripts/testdb.sh" start "$A/testdb"
trap '"$TOP/scripts/testdb.sh" stop "$A/testdb" || true' EXIT
eval "$("$TOP/scripts/testdb.sh" env "$A/testdb")"

# ---- the suites ------------------------------------------------------------------
total_tests=0; total_failed=0; bad_logs=0; summary=""
count_reports() { # files...: sanitizer reports in them
    cat "$@" 2>/dev/null | grep -cE 'ERROR: AddressSanitizer|runtime error:' || true
}
run_suite() { # label, t/TEST arguments
    local label=$1; shift
    local log="$A/test-$label.log" n failed bad elog="$SRC/t/logs/error_log"
    say "== suite: $label (NEBULA_TEST_DB=$NEBULA_TEST_DB)"
    ( cd "$SRC" && nice -n 10 t/TEST -apxs "$(command -v apxs)" -httpd "$A/httpd" "$@" ) 2>&1 \
        | tee "$log" || true
    n=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log" | tail -n 1)
    failed=$(grep -o 'Failed: [0-9]*)' "$log" \
             | awk -F'[: )]+' '{s += $2} END {print s + 0}' || true)
    n=${n:-0}; failed=${failed:-0}
    if ! grep -q '^Result: PASS' "$log" && [ "$failed" -eq 0 ]; then failed=1; fi
    total_tests=$((total_tests + n)); total_failed=$((total_failed + failed))
    # the error log goes with the next server start: keep it
    [ -f "$elog" ] && cp "$elog" "$A/error_log.$label"
    bad=$(grep -E '\[(\w+:)?(error|crit|alert|emerg)\]|NEB00014' "$A/error_log.$label" \
              2>/dev/null \
          | grep -v -F -f <(grep -v '^#' "$SRC/t/conf/expected-errors.txt" | sed '/^$/d') \
          || true)
    if [ -n "$bad" ]; then
        say "unexpected lines in the error log of suite $label:"
        printf '%s\n' "$bad" | head -20
        bad_logs=$((bad_logs + 1))
    fi
    summary="$summary  $label: $n tests, $failed failed, $(count_reports \
        "$A/error_log.$label") sanitizer lines in its error log"$'\n'
}
if [ ${#tests[@]} -gt 0 ]; then
    NEBULA_TEST_DB=sqlite run_suite sqlite "${tests[@]}"
else
    NEBULA_TEST_DB=sqlite run_suite sqlite
fi
if [ "$db" = all ]; then
    NEBULA_TEST_DB=pgsql run_suite pgsql t/db t/admin t/relay t/billing t/gov t/security
    NEBULA_TEST_DB=mysql run_suite mysql t/db t/admin t/relay t/billing t/gov t/security
fi

# ---- the reports -----------------------------------------------------------------
reports=$(find "$REP" -type f | sort)
n_files=$(printf '%s' "$reports" | grep -c . || true)
# shellcheck disable=SC2086
n_asan=$(cat $reports /dev/null | grep -c 'ERROR: AddressSanitizer' || true)
# shellcheck disable=SC2086
n_ubsan=$(cat $reports /dev/null | grep -c 'runtime error:' || true)
# (gcc's UBSan runtime ignores log_path beside ASan's: its reports go to stderr, that
# is httpd's error log, or a tool's output in the suite's log)
n_logs=$(count_reports "$A"/error_log.* "$A"/test-*.log)
for f in $reports; do
    say "report $f:"
    grep -m1 -E 'ERROR: AddressSanitizer|runtime error:' "$f" | sed 's/^/    /' >&2 || true
    grep -m4 -E '^ +#[0-9]+ ' "$f" | sed 's/^/    /' >&2 || true
done
secs=$(( $(date +%s) - start ))
printf 'asan: started %s, took %d min %d s\n' "$started" $((secs / 60)) $((secs % 60))
printf '%s' "$summary"
echo "asan: tests $total_tests, failed $total_failed, report files $n_files" \
     "(AddressSanitizer $n_asan, UBSan $n_ubsan)," \
     "sanitizer lines in error and test logs $n_logs," \
     "error logs with unexpected lines $bad_logs"
[ "$total_failed" -eq 0 ] && [ "$n_files" -eq 0 ] && [ "$n_logs" -eq 0 ] \
    && [ "$bad_logs" -eq 0 ] && [ "$total_tests" -gt 0 ]

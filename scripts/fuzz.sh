#!/usr/bin/env bash
# scripts/fuzz.sh: build the libFuzzer harnesses of fuzz/ (clang, ASan + UBSan) and run
# each for a bounded time (fuzz/README.md).
#   scripts/fuzz.sh [--time SECONDS] [--harness NAME]... [--fresh] [--build-only]
#     --time SECONDS  how long each harness runs (default 60)
#     --harness NAME  run only this one (repeatable): json sse conv_anthropic
#                     conv_gemini conv_responses gov tokens
#     --fresh         start from the seed corpus (forget fuzz/.build/corpus/)
#     --build-only    build, do not run
# Prints one line a harness: executions, executions per second, corpus size, coverage
# (libFuzzer's cov: edges and ft: features) and crashes. A crash, leak, timeout or
# sanitizer report is copied to fuzz/crashes/<harness>-<file> and makes the exit status 1.
# Builds in fuzz/.build/; logs in fuzz/.build/<harness>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(json sse conv_anthropic conv_gemini conv_responses gov tokens)
time_s=60; build_only=no; fresh=no; picked=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) time_s="${2:-}"; shift 2 ;;
        --harness) picked+=("${2:-}"); shift 2 ;;
        --fresh) fresh=yes; shift ;;
        --build-only) build_only=yes; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$time_s" in
    ''|*[!0-9]*) echo "fuzz.sh: --time wants whole seconds" >&2; exit 2 ;;
esac
[ ${#picked[@]} -gt 0 ] || picked=("${ALL[@]}")
for h in "${picked[@]}"; do
    [ -f "fuzz/fuzz_$h.c" ] || { echo "fuzz.sh: no harness '$h' (${ALL[*]})" >&2; exit 2; }
done

# ---- tools --------------------------------------------------------------
if ! command -v clang >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "fuzz.sh: installing clang" >&2
        apt-get install -y clang >&2 || { apt-get update >&2 && apt-get install -y clang >&2; }
    else
        echo "fuzz.sh: clang is missing: run 'apt-get install -y clang' as root" >&2
        exit 2
    fi
fi
PKGS="apr-1 apr-util-1 jansson libpcre2-8 libcrypto libargon2"
pkg-config --exists $PKGS || {
    echo "fuzz.sh: missing development packages ($PKGS): ./nebula up installs them" >&2
    exit 2
}
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' \
        | clang -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
    echo "fuzz.sh: this clang has no libFuzzer runtime (Debian: the clang package has it)" >&2
    exit 2
fi

# ---- build --------------------------------------------------------------
B=fuzz/.build
mkdir -p "$B/obj"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu99 -g -O1 -fno-omit-frame-pointer $SAN -Iapr_common/include $(pkg-config --cflags $PKGS)"
WARN="-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wstrict-prototypes \
-Wmissing-prototypes -Wshadow -Wpointer-arith -Werror"
LIBS="$(pkg-config --libs $PKGS) -lcrypt -lpthread -lm"
# the pure-C code the harnesses reach, linked directly (as t/unit/test_common is)
SOURCES="nebula_json nebula_json_fast nebula_sse nebula_buf nebula_conv nebula_conv_anthropic
nebula_conv_anthropic_stream nebula_conv_gemini nebula_conv_gemini_stream nebula_conv_responses
nebula_gov_text nebula_gov_detect nebula_gov_policy nebula_gov_match nebula_tokens
nebula_tokens_model nebula_tokens_estimate nebula_crypto nebula_id"
newest_header=$(ls -t apr_common/include/*.h apr_common/*.h | head -1)
objs=()
for s in $SOURCES; do
    o="$B/obj/$s.o"
    if [ ! -f "$o" ] || [ "apr_common/$s.c" -nt "$o" ] || [ "$newest_header" -nt "$o" ] \
        || [ "$0" -nt "$o" ]; then
        clang $CFLAGS -fsanitize=fuzzer-no-link -c "apr_common/$s.c" -o "$o"
    fi
    objs+=("$o")
done
rm -f "$B/libnebula_fuzz.a"
ar rcs "$B/libnebula_fuzz.a" "${objs[@]}"
for h in "${picked[@]}"; do
    clang $CFLAGS $WARN -fsanitize=fuzzer -Ifuzz "fuzz/fuzz_$h.c" "$B/libnebula_fuzz.a" \
        $LIBS -o "$B/fuzz_$h"
done
echo "fuzz.sh: built ${picked[*]} in $B/ ($(clang --version | head -1))"
[ "$build_only" = no ] || exit 0

# ---- run ----------------------------------------------------------------
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export NEBULA_TOKENIZER_DIR="${NEBULA_TOKENIZER_DIR:-$PWD/build/tokenizer}"
mkdir -p fuzz/crashes
failed=0
echo "fuzz.sh: $time_s s a harness, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
for h in "${picked[@]}"; do
    if [ "$h" = tokens ] && [ ! -f "$NEBULA_TOKENIZER_DIR/o200k_base.tiktoken" \
        -o ! -f "$NEBULA_TOKENIZER_DIR/cl100k_base.tiktoken" ]; then
        printf '%-15s skipped: no %s/*.tiktoken (make them: scripts/tokenizer-data.sh %s)\n' \
            "$h" "$NEBULA_TOKENIZER_DIR" "$NEBULA_TOKENIZER_DIR"
        continue
    fi
    work="$B/corpus/$h"; art="$B/artifacts/$h"; log="$B/$h.log"
    [ "$fresh" = no ] || rm -rf "$work"
    rm -rf "$art"; mkdir -p "$work" "$art"
    dict=()
    d="fuzz/dict/${h%%_*}.dict"
    [ ! -f "$d" ] || dict=("-dict=$d")
    rc=0
    "$B/fuzz_$h" -max_total_time="$time_s" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" \
        "$work" "fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
    crashes=0
    for f in "$art"/*; do
        [ -f "$f" ] || continue
        cp "$f" "fuzz/crashes/$h-$(basename "$f")"
        crashes=$((crashes + 1))
    done
    printf '%-15s execs %10s  exec/s %7s  corpus %6s  cov %6s  ft %7s  crashes %d\n' \
        "$h" "${execs:-?}" "${eps:-?}" "${corp:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        failed=1
        grep -m1 -E 'ERROR: |runtime error|property violated' "$log" | sed 's/^/    /' || true
        echo "    saved in fuzz/crashes/$h-*; log $log" \
             "(reproduce: $B/fuzz_$h fuzz/crashes/$h-<file>)"
    elif [ "$rc" -ne 0 ]; then
        failed=1
        echo "    the harness failed (exit $rc) without a crash file: see $log"
    fi
done
exit $failed

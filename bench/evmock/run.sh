#!/bin/sh
# bench/evmock/run.sh - runs evmock, the event-loop mock of OpenAI's chat
# completions (bench/evmock/evmock.c), on loopback; bench/bench.py's default
# mock (--mock evmock).
#
#   bench/evmock/run.sh start [PORT]   build into bench/evmock/.build/ and start
#   bench/evmock/run.sh stop           stop the instance started here
#   bench/evmock/run.sh status         is it running?
#
# Environment:
#   EVMOCK_THREADS=N     event loops (default 2), each with its own listener
#   EVMOCK_MAXCONNS=N    open connections at most (default 20000)
#
# Everything (binary, pid file, log) lives under bench/evmock/.build/.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD="$HERE/.build"
BIN="$BUILD/evmock"
PIDFILE="$BUILD/evmock.pid"
LOG="$BUILD/evmock.log"
CC=${CC:-gcc}

build() {
    mkdir -p "$BUILD"
    if [ ! -x "$BIN" ] || [ "$HERE/evmock.c" -nt "$BIN" ]; then
        "$CC" -std=gnu99 -O2 -Wall -Wextra -Werror -pthread -o "$BIN.tmp" "$HERE/evmock.c" \
            >"$BUILD/build.log" 2>&1 || {
            cat "$BUILD/build.log" >&2
            echo "run.sh: build failed" >&2
            exit 1
        }
        mv "$BIN.tmp" "$BIN"
    fi
}

running() {
    pid=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start() {
    port=${1:-18099}
    if running; then
        echo "run.sh: already running (pid $(cat "$PIDFILE"))" >&2
        exit 1
    fi
    build
    rm -f "$PIDFILE"
    # every stream is a socket: raise the limit as far as allowed
    ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    setsid "$BIN" -p "$port" -t "${EVMOCK_THREADS:-2}" -c "${EVMOCK_MAXCONNS:-20000}" \
        -P "$PIDFILE" </dev/null >"$LOG" 2>&1 &
    i=0
    while [ $i -lt 50 ]; do
        if [ -f "$PIDFILE" ] &&
            curl -fsS "http://127.0.0.1:$port/_mock/health" >/dev/null 2>&1; then
            echo "evmock listening on http://127.0.0.1:$port (pid $(cat "$PIDFILE"))"
            return 0
        fi
        if ! kill -0 $! 2>/dev/null; then
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    cat "$LOG" >&2
    echo "run.sh: evmock did not come up; see $LOG" >&2
    exit 1
}

stop() {
    if ! running; then
        echo "run.sh: not running"
        return 0
    fi
    kill -TERM "$(cat "$PIDFILE")"
    i=0
    while running && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if running; then
        echo "run.sh: evmock (pid $(cat "$PIDFILE")) did not stop" >&2
        exit 1
    fi
    echo "evmock stopped"
}

case "${1:-}" in
start) start "${2:-}" ;;
stop) stop ;;
status) if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "stopped"; fi ;;
*)
    echo "usage: $0 start [PORT] | stop | status" >&2
    exit 2
    ;;
esac

#!/bin/bash
# testdb.sh: private, throwaway PostgreSQL, MariaDB and Redis servers for the
# test suite, run as the current (unprivileged) user, listening on loopback
# only, with every file under one directory.
#
#   scripts/testdb.sh start <vardir>   initialise and start the servers
#   scripts/testdb.sh env   <vardir>   print `export` lines for the tests
#   scripts/testdb.sh stop  <vardir>   stop them (safe to call twice)
#   scripts/testdb.sh pause <vardir> pg|mysql   stop one server, keeping its data
#   scripts/testdb.sh resume <vardir> pg|mysql  start it again (same port)
#     (the outage tests: t/billing/outage.t)
#   scripts/testdb.sh drop-clients <vardir> pg|mysql
#                                      end every client connection to the
#                                      httpd's database, the server staying up
#                                      (t/db/reconnect.t)
#
# Environment:
#   NEBULA_TESTDB_SERVICES  which servers to run (default "pg mysql redis")
#   NEBULA_TESTDB_TIMEOUT   seconds to wait for each server (default 60)
#   PG_BIN                  PostgreSQL bin dir (default: newest
#                           /usr/lib/postgresql/*/bin)
#
# `env` prints NEBULA_TEST_PG_PARAMS and NEBULA_TEST_MYSQL_PARAMS (apr_dbd
# parameter strings for the pgsql and mysql drivers) and NEBULA_TEST_REDIS_URL.
# Only processes this script started (recorded in pid files under <vardir>)
# are ever signalled.

set -u

SERVICES=${NEBULA_TESTDB_SERVICES:-pg mysql redis}
TIMEOUT=${NEBULA_TESTDB_TIMEOUT:-60}
DB_NAME=nebula_test
# a second database for the httpd under test, so that CLI tests that drop and
# recreate nebula_test never pull the tables from under a running server
HTTPD_DB_NAME=nebula_httpd
DB_USER=nebula

die() {
    echo "testdb: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|env <vardir>" >&2
    exit 2
}

have_service() {
    case " $SERVICES " in *" $1 "*) return 0 ;; esac
    return 1
}

# A port is taken when something accepts a connection on it or ss lists it.
port_in_use() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        return 0
    fi
    if command -v ss >/dev/null 2>&1 &&
        ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; then
        return 0
    fi
    return 1
}

# Below Linux's ephemeral range (32768-60999): t/billing/outage.t stops a
# server for 30 s, and an outgoing connection must not take its port meanwhile.
pick_port() {
    local p
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12000))
        if grep -qx "$p" "$VARDIR/ports.used" 2>/dev/null; then
            continue
        fi
        if ! port_in_use "$p"; then
            echo "$p" >>"$VARDIR/ports.used"
            echo "$p"
            return 0
        fi
    done
    die "no free TCP port found on 127.0.0.1"
}

# Unix socket paths are limited to ~107 bytes; use a short private directory
# under /tmp when <vardir> is too deep.
socket_dir() {
    local want=$1 d
    if [ $((${#want} + 24)) -lt 100 ]; then
        mkdir -p "$want" && echo "$want"
        return
    fi
    d=$(mktemp -d /tmp/nebdb.XXXXXX) || die "mktemp failed"
    echo "$d" >>"$VARDIR/tmpdirs"
    echo "$d"
}

# wait_until <what> <log file> <command...>: poll every 0.2 s, bounded.
wait_until() {
    local what=$1 log=$2 deadline
    shift 2
    deadline=$(($(date +%s) + TIMEOUT))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "testdb: $what did not answer within ${TIMEOUT}s" >&2
    if [ -f "$log" ]; then
        echo "testdb: last lines of $log:" >&2
        tail -n 30 "$log" >&2
    fi
    return 1
}

# pid_alive <pid file> <name>: the recorded process exists and is <name>.
pid_alive() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(head -n 1 "$1" 2>/dev/null)
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2"
}

# stop_pid <pid file> <name>: TERM, wait (bounded), then KILL.
stop_pid() {
    local pidfile=$1 name=$2 pid deadline
    pid_alive "$pidfile" "$name" || {
        rm -f "$pidfile"
        return 0
    }
    pid=$(head -n 1 "$pidfile")
    kill -TERM "$pid" 2>/dev/null
    deadline=$(($(date +%s) + TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "testdb: $name (pid $pid) ignored TERM for ${TIMEOUT}s, killing" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

find_pg_bin() {
    if [ -z "${PG_BIN:-}" ]; then
        PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
}

start_pg() {
    local dir=$VARDIR/pg port sock log
    find_pg_bin
    [ -x "${PG_BIN:-}/initdb" ] || die "PostgreSQL initdb not found (set PG_BIN)"
    mkdir -p "$dir"
    log=$dir/postgres.log
    if ! "$PG_BIN/initdb" -D "$dir/data" -U "$DB_USER" --auth-local=trust \
        --auth-host=trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    port=$(pick_port) || exit 1
    sock=$(socket_dir "$dir/sock")
    # until pg_ctl returns, stop must wait for postmaster.pid to appear
    : >"$dir/starting"
    if ! "$PG_BIN/pg_ctl" -D "$dir/data" -l "$log" -w -t "$TIMEOUT" \
        -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        start >"$dir/pg_ctl.log" 2>&1; then
        tail -n 30 "$log" >&2
        die "PostgreSQL did not start"
    fi
    rm -f "$dir/starting"
    echo "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        >"$dir/options"
    wait_until "PostgreSQL on 127.0.0.1:$port" "$log" \
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || die "PostgreSQL failed"
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres \
        -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB_NAME" -c "CREATE DATABASE $HTTPD_DB_NAME" \
        >>"$dir/pg_ctl.log" 2>&1 || die "CREATE DATABASE failed on PostgreSQL"
    echo "export NEBULA_TEST_PG_PARAMS='host=127.0.0.1 port=$port user=$DB_USER dbname=$DB_NAME'" \
        >>"$VARDIR/testdb.env.partial"
    echo "export NEBULA_TEST_PG_HTTPD_PARAMS='host=127.0.0.1 port=$port user=$DB_USER dbname=$HTTPD_DB_NAME'" \
        >>"$VARDIR/testdb.env.partial"
}

# mariadbd on the port and socket recorded in $1 (start, resume)
run_mysql() {
    local dir=$1 port sock
    port=$(cat "$dir/port") sock=$(cat "$dir/socket")
    # $! is mariadbd itself (setsid execs when not a group leader); record it
    # at once so that stop finds it even if it never gets to write its own
    setsid mariadbd --no-defaults --datadir="$dir/data" --port="$port" \
        --socket="$sock" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.err" --tmpdir="$dir/tmp" \
        --skip-log-bin --innodb-buffer-pool-size=32M \
        --innodb-flush-log-at-trx-commit=0 --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_bin </dev/null >>"$dir/stdout.log" 2>&1 &
    echo $! >"$dir/mariadbd.pid"
    wait_until "MariaDB on 127.0.0.1:$port" "$dir/mariadbd.err" \
        mariadb-admin --no-defaults --socket="$sock" -uroot ping
}

do_pause() {
    case "$1" in
    pg) stop_pg ;;
    mysql) stop_pid "$VARDIR/mariadb/mariadbd.pid" mariadbd ;;
    *) usage ;;
    esac
}

do_resume() {
    local dir
    case "$1" in
    pg)
        dir=$VARDIR/pg
        find_pg_bin
        "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$TIMEOUT" \
            -o "$(cat "$dir/options")" start >>"$dir/pg_ctl.log" 2>&1 ||
            die "PostgreSQL did not start again"
        ;;
    mysql) run_mysql "$VARDIR/mariadb" || die "MariaDB did not start again" ;;
    *) usage ;;
    esac
}

# The server ends the connections the way a restart or failover does.
do_drop_clients() {
    local dir sock
    case "$1" in
    pg)
        dir=$VARDIR/pg
        find_pg_bin
        "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$(sed -n 's/^-p \([0-9]*\).*/\1/p' "$dir/options")" \
            -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                   WHERE datname = '$HTTPD_DB_NAME' AND pid <> pg_backend_pid()" ||
            die "cannot end the PostgreSQL clients"
        ;;
    mysql)
        sock=$(cat "$VARDIR/mariadb/socket")
        mariadb --no-defaults --socket="$sock" -uroot -N -B -e \
            "SELECT id FROM information_schema.processlist
             WHERE db = '$HTTPD_DB_NAME' AND id <> CONNECTION_ID()" |
            while read -r id; do
                mariadb --no-defaults --socket="$sock" -uroot -e "KILL CONNECTION $id" 2>/dev/null || true
                echo "$id"
            done | wc -l
        ;;
    *) usage ;;
    esac
}

start_mysql() {
    local dir=$VARDIR/mariadb port sock pw log
    command -v mariadbd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
    command -v mariadbd >/dev/null 2>&1 || die "mariadbd not found"
    mkdir -p "$dir/tmp"
    log=$dir/mariadbd.err
    if ! mariadb-install-db --no-defaults --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$dir/install.log" 2>&1; then
        tail -n 30 "$dir/install.log" >&2
        die "mariadb-install-db failed"
    fi
    port=$(pick_port) || exit 1
    sock=$(socket_dir "$dir/sock")/mariadb.sock
    echo "$port" >"$dir/port"
    echo "$sock" >"$dir/socket"
    run_mysql "$dir" || die "MariaDB failed"
    pw=nebula_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    mariadb --no-defaults --socket="$sock" -uroot -e "
        CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
        CREATE DATABASE $HTTPD_DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
        CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pw';
        CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
        GRANT ALL ON $HTTPD_DB_NAME.* TO '$DB_USER'@'127.0.0.1';
        GRANT ALL ON $HTTPD_DB_NAME.* TO '$DB_USER'@'localhost';" >>"$dir/stdout.log" 2>&1 ||
        die "creating the MariaDB database and user failed (see $dir/stdout.log)"
    echo "export NEBULA_TEST_MYSQL_PARAMS='host=127.0.0.1 port=$port user=$DB_USER pass=$pw dbname=$DB_NAME reconnect=0 flags=CLIENT_FOUND_ROWS'" \
        >>"$VARDIR/testdb.env.partial"
    echo "export NEBULA_TEST_MYSQL_HTTPD_PARAMS='host=127.0.0.1 port=$port user=$DB_USER pass=$pw dbname=$HTTPD_DB_NAME reconnect=0 flags=CLIENT_FOUND_ROWS'" \
        >>"$VARDIR/testdb.env.partial"
}

start_redis() {
    local dir=$VARDIR/redis port
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
    mkdir -p "$dir"
    port=$(pick_port) || exit 1
    if ! redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" >"$dir/stdout.log" 2>&1; then
        cat "$dir/stdout.log" >&2
        die "redis-server did not start"
    fi
    wait_until "Redis on 127.0.0.1:$port" "$dir/redis.log" \
        sh -c "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG" || die "Redis failed"
    echo "export NEBULA_TEST_REDIS_URL='redis://127.0.0.1:$port'" >>"$VARDIR/testdb.env.partial"
}

stop_pg() {
    local dir=$VARDIR/pg n=0
    [ -d "$dir/data" ] || return 0
    if [ -f "$dir/starting" ]; then
        while [ ! -f "$dir/data/postmaster.pid" ] && [ $n -lt 25 ]; do
            sleep 0.2
            n=$((n + 1))
        done
    fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        find_pg_bin
        "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t "$TIMEOUT" stop \
            >/dev/null 2>&1 || {
            head -n 1 "$dir/data/postmaster.pid" >"$dir/postgres.pid"
            stop_pid "$dir/postgres.pid" postgres
        }
    fi
    rm -f "$dir/starting"
}

do_stop() {
    local d
    stop_pg
    stop_pid "$VARDIR/mariadb/mariadbd.pid" mariadbd
    stop_pid "$VARDIR/redis/redis.pid" redis-server
    if [ -f "$VARDIR/tmpdirs" ]; then
        while read -r d; do
            case "$d" in /tmp/nebdb.*) rm -rf "$d" ;; esac
        done <"$VARDIR/tmpdirs"
        rm -f "$VARDIR/tmpdirs"
    fi
    rm -f "$VARDIR/testdb.env" "$VARDIR/testdb.env.partial" "$VARDIR/ports.used"
}

do_start() {
    if [ -f "$VARDIR/testdb.env" ] || [ -f "$VARDIR/testdb.env.partial" ]; then
        # a run that was killed leaves its servers (or their pid files)
        # behind; one tree holds one set of servers, so end them first
        echo "testdb: an earlier run left servers in $VARDIR; stopping them" >&2
        do_stop
    fi
    rm -rf "$VARDIR/pg" "$VARDIR/mariadb" "$VARDIR/redis"
    : >"$VARDIR/testdb.env.partial"
    trap do_stop EXIT
    have_service pg && start_pg
    have_service mysql && start_mysql
    have_service redis && start_redis
    trap - EXIT
    echo "export NEBULA_TESTDB_DIR='$VARDIR'" >>"$VARDIR/testdb.env.partial"
    # the env file appears only once every server answers
    mv "$VARDIR/testdb.env.partial" "$VARDIR/testdb.env"
    echo "testdb: started ($SERVICES) in $VARDIR" >&2
}

[ $# -eq 2 ] || [ $# -eq 3 ] || usage
CMD=$1
mkdir -p "$2" || die "cannot create $2"
VARDIR=$(cd "$2" && pwd) || die "cannot enter $2"

case "$CMD" in
start) do_start ;;
stop) do_stop ;;
pause) [ $# -eq 3 ] || usage; do_pause "$3" ;;
resume) [ $# -eq 3 ] || usage; do_resume "$3" ;;
drop-clients) [ $# -eq 3 ] || usage; do_drop_clients "$3" ;;
env)
    [ -f "$VARDIR/testdb.env" ] || die "not started in $VARDIR (run: $0 start $VARDIR)"
    cat "$VARDIR/testdb.env"
    ;;
*) usage ;;
esac

#!/bin/bash
# Install NebulaGate's .deb on this machine and load its modules, then purge
# it and check that nothing is left (as root; ./nebula test runs it as CI).
#   scripts/package-test.sh [--build-as USER --src DIR | --deb FILE] [--result FILE]
# --build-as: build the package first with scripts/package.sh in DIR as USER
# (dpkg-buildpackage -b -us -uc must work unprivileged). Prints one "ok" or
# "not ok" line a check; --result FILE receives "PASSED:FAILED". Exit 0 when
# all passed. The system apache2 is never started or reloaded (a policy-rc.d
# forbids it meanwhile); /etc/apache2 and /var/lib/apache2 end as they began.
set -uo pipefail
build_as="" src="" deb="" result=""
while [ $# -gt 0 ]; do
    case "$1" in
        --build-as) build_as=$2; shift 2 ;;
        --src) src=$2; shift 2 ;;
        --deb) deb=$2; shift 2 ;;
        --result) result=$2; shift 2 ;;
        *) echo "package-test.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
pass=0 fail=0 n=0
check() { # description, then a command that must succeed
    local what=$1; shift
    n=$((n + 1))
    if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); echo "ok $n - $what"
    else fail=$((fail + 1)); echo "not ok $n - $what"; return 1; fi
}
finish() {
    echo "package: $pass passed, $fail failed"
    [ -z "$result" ] || echo "$pass:$fail" > "$result"
    [ "$fail" -eq 0 ]
    exit $?
}
[ "$(id -u)" -eq 0 ] || { echo "package-test.sh: run as root" >&2; exit 2; }
work=$(mktemp -d /tmp/nebula-pkgtest.XXXXXX)
trap 'rm -rf "$work"' EXIT
snapshot() { # the system apache2's configuration and a2enmod state
    (cd / && { find etc/apache2 var/lib/apache2 -type l -printf 'L %p -> %l\n'
               find etc/apache2 var/lib/apache2 -type d -printf 'D %p %m\n'
               find etc/apache2 var/lib/apache2 -type f -exec md5sum {} +; } | sort)
}
apache_running() {
    [ -s /run/apache2/apache2.pid ] && kill -0 "$(cat /run/apache2/apache2.pid)" 2>/dev/null
}
if dpkg-query -W -f='${Status}' nebulagate 2>/dev/null | grep -q installed; then
    check "nebulagate is not installed already (this test would replace it)" false
    finish
fi
if apache_running; then
    check "the system apache2 is stopped (this test enables modules for a moment)" false
    finish
fi

# ---- build (unprivileged) ---------------------------------------------------------
if [ -z "$deb" ]; then
    runuser -u "$build_as" -- env -i HOME="$(getent passwd "$build_as" | cut -d: -f6)" \
        PATH="$PATH" LANG=C.UTF-8 "$src/scripts/package.sh" > "$work/build.log" 2>&1
    check "dpkg-buildpackage -b -us -uc as $build_as" test $? -eq 0 \
        || tail -30 "$work/build.log"
    deb=$(ls "$src"/var/pkg/nebulagate_*.deb 2>/dev/null | head -n 1)
fi
check "a .deb to install ($deb)" test -f "$deb"
[ -f "$deb" ] || finish
cp "$deb" "$work/" && deb="$work/$(basename "$deb")" && chmod 644 "$deb"

# ---- install ---------------------------------------------------------------------
before=$(snapshot)
enabled_before=$(ls /etc/apache2/mods-enabled/)
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then # no service starts meanwhile
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
fi
cleanup() { # after a failure half-way: take the package out again
    if dpkg-query -W nebulagate >/dev/null 2>&1; then
        a2disconf -q -p nebula >/dev/null 2>&1
        a2dismod -q -p nebula_relay nebula_billing nebula_gov >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq nebulagate >/dev/null 2>&1
    fi
    [ -z "$policy" ] || rm -f "$policy"
    rm -rf "$work"
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" \
    > "$work/install.log" 2>&1
check "apt-get install ./$(basename "$deb")" test $? -eq 0 || tail -20 "$work/install.log"
dpkg -L nebulagate | sort > "$work/files"
for f in /usr/lib/apache2/modules/mod_nebula_{relay,billing,gov}.so /usr/bin/nebulactl \
         /etc/apache2/mods-available/nebula_{relay,billing,gov}.load \
         /etc/apache2/mods-available/nebula_relay.conf /etc/apache2/conf-available/nebula.conf \
         /usr/share/nebula/admin-ui/index.html /usr/share/nebula/sql/sqlite \
         /usr/share/doc/nebulagate/examples/systemd/apache2.service.d/nebula.conf \
         /usr/share/doc/nebulagate/examples/logrotate/nebula; do
    grep -qxF "$f" "$work/files" || { echo "# missing from the package: $f"; missing=1; }
done
check "the package holds the modules, .load files, nebulactl, the UI and examples" \
    test -z "${missing:-}"
check "nothing is enabled at installation" \
    bash -c '! ls /etc/apache2/mods-enabled/nebula_* /etc/apache2/conf-enabled/nebula.conf'
check "/etc/nebula/env: generated, root's, mode 600, with the secrets" \
    bash -c '[ "$(stat -c %U:%a /etc/nebula/env)" = root:600 ] &&
             grep -Eq "^CRYPTO_SECRET=[A-Za-z0-9]{48}$" /etc/nebula/env &&
             grep -Eq "^SESSION_SECRET=[A-Za-z0-9]{48}$" /etc/nebula/env'
check "/var/lib/nebula belongs to www-data, mode 750" \
    test "$(stat -c %U:%a /var/lib/nebula)" = www-data:750

# ---- enable and load -------------------------------------------------------------
check "a2enmod nebula_relay nebula_billing nebula_gov; a2enconf nebula" \
    bash -c 'a2enmod -q nebula_relay nebula_billing nebula_gov && a2enconf -q nebula'
apache2ctl -t -D DUMP_MODULES > "$work/modules" 2>&1
rc=$?
for m in proxy_module dbd_module nebula_relay_module nebula_billing_module nebula_gov_module; do
    grep -q " $m (shared)" "$work/modules" || { echo "# not loaded: $m"; rc=1; }
done
check "apache2ctl -t -D DUMP_MODULES loads the three modules (and proxy, dbd)" \
    test "$rc" -eq 0 \
    || sed 's/^/# /' "$work/modules" | tail -20
check "no warning while loading (LoadModule order)" \
    bash -c "! grep -Ei 'already loaded|undefined symbol|AH0157' '$work/modules'"
check "/usr/bin/nebulactl migrate --dsn sqlite:$work/x.db" \
    /usr/bin/nebulactl migrate --dsn "sqlite:$work/x.db"
check "as www-data, nebulactl migrates a database in /var/lib/nebula" \
    bash -c 'd=sqlite:/var/lib/nebula/t.db
             runuser -u www-data -- /usr/bin/nebulactl migrate --dsn $d &&
             runuser -u www-data -- /usr/bin/nebulactl schema-version --dsn $d'
rm -f /var/lib/nebula/t.db /var/lib/nebula/t.db-wal /var/lib/nebula/t.db-shm

# ---- disable and purge -------------------------------------------------------------
deps=""
for m in proxy dbd; do
    printf '%s\n' "$enabled_before" | grep -qx "$m.load" || deps="$deps $m"
done
check "a2disconf nebula; a2dismod the modules (and$deps, enabled by a2enmod)" \
    bash -c "a2disconf -q -p nebula &&
             a2dismod -q -p nebula_relay nebula_billing nebula_gov $deps"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq nebulagate > "$work/purge.log" 2>&1
check "apt-get purge -y nebulagate" test $? -eq 0 || tail -20 "$work/purge.log"
check "dpkg no longer knows the package" bash -c '! dpkg-query -W nebulagate'
left=$(while read -r f; do
           [ -d "$f" ] && [ ! -L "$f" ] && continue
           [ -e "$f" ] || [ -L "$f" ] && echo "$f"
       done < "$work/files"; ls -d /etc/nebula /var/lib/nebula 2>/dev/null)
check "no file of the package left, nor /etc/nebula, /var/lib/nebula" test -z "$left" \
    || printf '# left: %s\n' $left
# a2dismod -p leaves its (empty) state folders: remove the new, empty ones
after=$(snapshot)
comm -13 <(printf '%s\n' "$before" | sed -n 's/^D \([^ ]*\) .*/\1/p') \
         <(printf '%s\n' "$after" | sed -n 's/^D \([^ ]*\) .*/\1/p') | sort -r \
    | while read -r d; do rmdir "/$d" 2>/dev/null; done
after=$(snapshot)
check "/etc/apache2 and /var/lib/apache2 exactly as before" test "$before" = "$after" \
    || diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | head -20 | sed 's/^/# /'
check "the system apache2 was not started" bash -c '! [ -s /run/apache2/apache2.pid ]'
finish

#!/usr/bin/env bash
# mkcerts.sh DIR: the certificates of the suite's TLS upstreams (t/conf/tls.conf.in),
# made with the openssl CLI (EC P-256, SHA-256, ten years).
#
#   ca.crt            "NebulaGate Test CA": the only CA the verifying gateway trusts
#   mock.crt/.key     the mock's server certificate, issued by the test CA
#                     (SAN DNS:localhost, IP:127.0.0.1)
#   rogue-ca.crt      "NebulaGate Rogue CA", which nobody should trust
#   rogue.crt/.key    the same names as mock.crt, issued by the rogue CA: an impostor
#   wrongname.crt/.key  issued by the test CA, but for DNS:wrong-name.invalid only
#
# Idempotent: when DIR already holds a complete set that verifies and stays
# valid for another day, nothing is done. A new set is built in a temporary
# directory and moved into place, so a failed run leaves no half set behind.
set -euo pipefail
DIR=${1:?usage: mkcerts.sh DIR}
FILES="ca.crt mock.crt mock.key rogue-ca.crt rogue.crt rogue.key wrongname.crt wrongname.key"

complete() {
    local f
    for f in $FILES; do [ -s "$DIR/$f" ] || return 1; done
    openssl verify -CAfile "$DIR/ca.crt" "$DIR/mock.crt" "$DIR/wrongname.crt" >/dev/null 2>&1 \
        && openssl verify -CAfile "$DIR/rogue-ca.crt" "$DIR/rogue.crt" >/dev/null 2>&1 \
        && openssl x509 -checkend 86400 -noout -in "$DIR/mock.crt" >/dev/null 2>&1
}
complete && exit 0

mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name, subject CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/O=NebulaGate tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" -out "$1.crt"
}

leaf() { # name, issuer, CN, subjectAltName
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=NebulaGate tests/CN=$3" -out "$1.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
        "subjectAltName=$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" \
        -sha256 -days 3650 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

ca ca "NebulaGate Test CA"
ca rogue-ca "NebulaGate Rogue CA"
leaf mock ca localhost "DNS:localhost,IP:127.0.0.1"
leaf rogue rogue-ca localhost "DNS:localhost,IP:127.0.0.1"
leaf wrongname ca wrong-name.invalid "DNS:wrong-name.invalid"

# httpd reads the keys as the test user; the CA keys are not kept
chmod 644 ./*.crt
chmod 600 ./*.key
for f in $FILES; do mv -f "$f" "$DIR/$f"; done
complete || { echo "mkcerts.sh: the new certificates do not verify" >&2; exit 1; }

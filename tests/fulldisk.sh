#!/usr/bin/env bash
# A real full disk under the CLI: a 256 KiB tmpfs holds a small model (784→10, 31 KB); training
# a 784-512-10 model (1.6 MB) with --save over it must fail with exit status 1 and a message
# that names the file and says it was not changed, leave the old model byte for byte, and leave
# nothing else in the directory. Then the same with the tmpfs filled to the last byte first.
# (tests/test_fulldisk.c checks the library the same way with RLIMIT_FSIZE, anywhere.)
#
# Needs root and a kernel that lets this process mount a tmpfs: otherwise it skips (77), except
# on CI as root (CI=true), where a mount that fails is a failure: CI's machine can mount, and a
# skip there would hide this test for good.
#
# usage: fulldisk.sh PATH/TO/backprop
set -u
exe=${1:?usage: fulldisk.sh PATH/TO/backprop}
if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: mounting a tmpfs needs root"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-fulldisk.XXXXXX") || exit 1
mnt=$tmp/mnt
mounted=0
cleanup() {
    if [[ $mounted -eq 1 ]]; then
        umount "$mnt" || echo "warning: cannot unmount $mnt"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$mnt" || exit 1
if ! mount -t tmpfs -o size=256k tmpfs "$mnt" 2>"$tmp/mount.err"; then
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: CI runs as root, yet mount -t tmpfs failed: $(cat "$tmp/mount.err")"
        exit 1
    fi
    echo "SKIP: cannot mount a tmpfs here: $(cat "$tmp/mount.err")"
    exit 77
fi
mounted=1

checks=0
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# A tiny MNIST-layout set of 28×28 images (the sizes are what matters, not the pixels).
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
images() { # images FILE N
    { printf '\0\0\10\3'; be32 "$2"; be32 28; be32 28; head -c $(($2 * 784)) /dev/zero | tr '\0' '\200'; } >"$1"
}
labels() { # labels FILE N
    { printf '\0\0\10\1'; be32 "$2"; for ((i = 0; i < $2; i++)); do printf "\\x0$((i % 10))"; done; } >"$1"
}
data=$tmp/data
mkdir "$data"
images "$data/train-images-idx3-ubyte" 20
labels "$data/train-labels-idx1-ubyte" 20
images "$data/t10k-images-idx3-ubyte" 10
labels "$data/t10k-labels-idx1-ubyte" 10

model=$mnt/m.st
if ! "$exe" train --data "$data" --epochs 1 --quiet --save "$model" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: the small model could not be saved: $(cat "$tmp/err")"
    exit 1
fi
cp "$model" "$tmp/orig.st"

# full_disk_save WHAT ARGS...: train with ARGS and --save over the model on the full tmpfs;
# $listing (global) is what `ls -A` must show in the directory afterwards.
full_disk_save() {
    local what=$1
    shift
    "$exe" train --data "$data" --epochs 1 --quiet --save "$model" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? err before=$fails
    err=$(cat "$tmp/err")
    checks=$((checks + 5))
    [[ $rc -eq 1 ]] || fail "$what: exit $rc, expected 1 (stderr: $err)"
    [[ $err == *"$model"* ]] || fail "$what: the message does not name $model: $err"
    [[ $err == *"the file was not changed"* ]] || fail "$what: the message does not say the file was not changed: $err"
    cmp -s "$model" "$tmp/orig.st" || fail "$what: $model is not the old model any more"
    local left
    left=$(cd "$mnt" && ls -A | tr '\n' ' ')
    [[ $left == "$listing" ]] || fail "$what: $mnt holds '$left', expected '$listing'"
    [[ $fails -gt $before ]] || echo "ok: $what: exit $rc, $err"
}

# 1. the disk fills up while the big model is written
listing="m.st "
full_disk_save "1.6 MB model on a 256 KiB tmpfs" --hidden 512

# 2. the disk is full before anything is written: even the small model does not fit
dd if=/dev/zero of="$mnt/fill" bs=4096 2>/dev/null
checks=$((checks + 1))
[[ $(df --output=avail -B1 "$mnt" | tail -1 | tr -d ' ') -lt 4096 ]] || fail "the tmpfs is not full"
listing="fill m.st "
full_disk_save "31 KB model on a full tmpfs"
rm -f "$mnt/fill"

echo "$checks checks, $fails failed"
[[ $fails -eq 0 ]]

#!/usr/bin/env bash
# The Python reader of docs/model-format.md reads a model the CLI trained and reproduces the
# test accuracy the CLI printed (tests/reader.py does the comparison).
#
# usage: reader.sh PATH/TO/backprop DATA_ROOT DOC READER_PY
#
# Skips (77) when /usr/bin/python3 lacks numpy or data/mnist is missing, unless CI=true, where
# a skip would hide a broken setup: then it fails (1) with the reason.
set -u
exe=${1:?usage: reader.sh PATH/TO/backprop DATA_ROOT DOC READER_PY}
root=${2:?data root}
doc=${3:?docs/model-format.md}
reader=${4:?tests/reader.py}
# This python, not the first on PATH: the system one is the one with numpy.
py=/usr/bin/python3

skip() {
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: $1 (CI=true: the setup must provide it)"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}

if [[ ! -x $py ]] || ! "$py" -c 'import numpy' 2>/dev/null; then
    skip "$py with numpy is not available"
fi
mnist=$root/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -e $mnist/$f || -e $mnist/$f.gz ]] || skip "$mnist lacks $f (data/fetch.sh downloads it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-reader.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# An MLP (so the activation path of predict() runs) with Adam (so the checkpoint carries both
# optimizer tensors as well as the permutation).
args=(train --data "$mnist" --epochs 1 --hidden 32 --optim adam --threads 1 --quiet
    --save "$tmp/m.st" --checkpoint "$tmp/c.st")
echo "+ backprop ${args[*]}"
if ! "$exe" "${args[@]}" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: train failed: $(cat "$tmp/err")"
    exit 1
fi
cat "$tmp/out"
acc=$(tail -n 1 "$tmp/out" | grep -Eo '(^| )test_acc=[0-9.]+' | sed 's/.*=//')
if [[ -z $acc ]]; then
    echo "FAIL: no test_acc= on the final line"
    exit 1
fi
"$py" "$reader" "$doc" "$tmp/m.st" "$mnist" "$acc" "$tmp/c.st"

#!/usr/bin/env bash
# A small CNN on real MNIST, end to end:
#   - one epoch of conv5x5:8,relu,maxpool2,dropout:0.25,fc:32,relu reaches a sensible test
#     accuracy (≥ 0.96; seed 1 gets 0.9731);
#   - the saved file, read by tests/cnn_reader.py with numpy alone (PyTorch's conventions:
#     [C_out, C_in, kh, kw] weights, NCHW flatten), reproduces `backprop predict`'s
#     probabilities for all 10000 test images and train's test_acc; with torch present, the
#     file loads into nn.Sequential (load_state_dict, strict) and gives the same logits;
#   - dropout is seeded by the run: 2 epochs straight and 1 + checkpoint + --resume write the
#     same bytes.
#
# usage: cnn.sh PATH/TO/backprop DATA_ROOT CNN_READER_PY
# Skips (77) without data/mnist or without /usr/bin/python3 and numpy (a failure on CI=true).
set -u
exe=${1:?usage: cnn.sh PATH/TO/backprop DATA_ROOT CNN_READER_PY}
root=${2:?data root}
reader=${3:?tests/cnn_reader.py}
py=/usr/bin/python3
skip() {
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: $1 (CI=true: the setup must provide it)"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}
mnist=$root/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -e $mnist/$f || -e $mnist/$f.gz ]] || skip "$mnist lacks $f (data/fetch.sh downloads it)"
done
[[ -x $py ]] && "$py" -c 'import numpy' 2>/dev/null || skip "$py with numpy is not available"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-cnn.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

arch=conv5x5:8,relu,maxpool2,dropout:0.25,fc:32,relu
common=(train --data "$mnist" --arch "$arch" --optim adam --lr 0.003 --batch 100 --threads 1)
echo "+ backprop ${common[*]} --epochs 1 --save m.st"
if ! "$exe" "${common[@]}" --epochs 1 --save "$tmp/m.st" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: train: $(cat "$tmp/err")"
    exit 1
fi
cat "$tmp/out"
acc=$(tail -n 1 "$tmp/out" | grep -Eo '(^| )test_acc=[0-9.]+' | sed 's/.*=//')
if [[ -z $acc ]] || ! awk -v a="$acc" 'BEGIN { exit !(a >= 0.96) }'; then
    fail "test_acc '$acc' is below 0.96 after one epoch"
else
    echo "ok: test_acc $acc >= 0.96"
fi
t10k=$mnist/t10k-images-idx3-ubyte
[[ -e $t10k ]] || t10k=$t10k.gz
if "$exe" predict --model "$tmp/m.st" --json --threads 1 "$t10k" >"$tmp/pred.json" 2>"$tmp/err"; then
    "$py" "$reader" "$tmp/m.st" "$mnist" "$tmp/pred.json" "$acc" || fail "cnn_reader.py"
else
    fail "predict: $(cat "$tmp/err")"
fi

# dropout masks follow the run's seed and step: a resumed run draws what the straight one did
"$exe" "${common[@]}" --epochs 2 --quiet --save "$tmp/a.st" >/dev/null 2>"$tmp/err" || fail "train 2 epochs: $(cat "$tmp/err")"
"$exe" "${common[@]}" --epochs 2 --stop-after 1 --quiet --checkpoint "$tmp/c.st" >/dev/null 2>"$tmp/err" ||
    fail "train --stop-after 1: $(cat "$tmp/err")"
"$exe" train --data "$mnist" --resume "$tmp/c.st" --threads 1 --quiet --save "$tmp/b.st" >/dev/null 2>"$tmp/err" ||
    fail "train --resume: $(cat "$tmp/err")"
if cmp -s "$tmp/a.st" "$tmp/b.st"; then
    echo "ok: 2 epochs straight and 1 + --resume give the same file"
else
    fail "the resumed CNN differs from the straight run"
fi
"$exe" eval --model "$tmp/a.st" --data "$mnist" --threads 1 >"$tmp/eval" 2>"$tmp/err" && grep -q '^accuracy 0\.9' "$tmp/eval" &&
    echo "ok: eval of the CNN: $(grep '^accuracy' "$tmp/eval")" || fail "eval: $(cat "$tmp/err") $(cat "$tmp/eval")"
"$exe" weights --model "$tmp/a.st" --out "$tmp/w.png" 2>"$tmp/err" && [[ -s $tmp/w.png ]] &&
    echo "ok: weights drew the conv filters" || fail "weights: $(cat "$tmp/err")"
echo "cnn.sh: $fails failed"
[[ $fails -eq 0 ]]

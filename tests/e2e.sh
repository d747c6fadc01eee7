#!/usr/bin/env bash
# End-to-end runs of the backprop tool on the real data sets fetched by data/fetch.sh.
# Exits 77 (Meson: SKIP) with the reason when a data set is not there.
#
# usage: e2e.sh PATH/TO/backprop DATA_ROOT CASE
#   CASE: mnist-softmax | mnist-mlp | fashion | deterministic | impls
#
# Bounds were measured on this code before they were set (1 OpenBLAS thread, one epoch):
#   mnist-softmax  defaults, seeds 1–4: 0.9146 0.9134 0.9137 0.9143           bound ≥ 0.90
#   mnist-mlp      --hidden 128 --optim adam, seeds 1–5:
#                  0.9344 0.9359 0.9377 0.9336 0.9367                           bound ≥ 0.92
#   fashion        defaults, seeds 1–3: 0.8257 0.8277 0.8265                   bound ≥ 0.75
# so each bound sits ≥ 0.013 below the worst seed seen: a working build passes whatever the
# seed, while a broken gradient (accuracy near 0.1) or a badly scaled one fails.
set -u
exe=${1:?usage: e2e.sh PATH/TO/backprop DATA_ROOT CASE}
root=${2:?data root}
case_=${3:?case}

# need DIR: skip unless DIR holds the four MNIST-layout files (raw or .gz). In CI (CI=true)
# the data must be there: a missing set fails the run instead of passing it with skips.
need() {
    local dir=$1 missing=""
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [[ -e $dir/$f || -e $dir/$f.gz ]] || missing+=" $f"
    done
    [[ -z $missing ]] && return
    local what="$dir lacks$missing"
    [[ -d $dir ]] || what="$dir does not exist"
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: $what (CI=true: data/fetch.sh must have fetched it)"
        exit 1
    fi
    echo "SKIP: $what (data/fetch.sh downloads it)"
    exit 77
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-e2e.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# train OUTFILE ARGS...: runs train; fails the test on a non-zero exit.
train() {
    local outfile=$1
    shift
    echo "+ backprop train $*"
    "$exe" train "$@" >"$outfile" 2>"$tmp/err"
    local rc=$?
    cat "$outfile"
    if [[ $rc -ne 0 ]]; then
        echo "FAIL: exit $rc: $(cat "$tmp/err")"
        exit 1
    fi
}

# field FILE KEY: the value of KEY= on the final line.
field() {
    tail -n 1 "$1" | grep -Eo "(^| )$2=[^ ]+" | sed 's/.*=//'
}

# at_least VALUE BOUND WHAT
at_least() {
    if [[ -z $1 ]]; then
        echo "FAIL: $3: no value parsed"
        exit 1
    fi
    if awk -v v="$1" -v b="$2" 'BEGIN { exit !(v >= b) }'; then
        echo "ok: $3 = $1 (bound >= $2)"
    else
        echo "FAIL: $3 = $1, below the bound $2"
        exit 1
    fi
}

mnist=$root/mnist
case $case_ in
mnist-softmax)
    need "$mnist"
    train "$tmp/out" --data "$mnist" --epochs 1
    at_least "$(field "$tmp/out" test_acc)" 0.90 "MNIST softmax regression, 1 epoch, test_acc"
    ;;
mnist-mlp)
    need "$mnist"
    train "$tmp/out" --data "$mnist" --hidden 128 --optim adam --epochs 1 --quiet
    at_least "$(field "$tmp/out" test_acc)" 0.92 "MNIST 784-128-10 adam, 1 epoch, test_acc"
    ;;
fashion)
    need "$root/fashion-mnist"
    train "$tmp/out" --data "$root/fashion-mnist" --epochs 1 --quiet
    at_least "$(field "$tmp/out" test_acc)" 0.75 "Fashion-MNIST softmax regression, 1 epoch, test_acc"
    ;;
deterministic)
    # No random initialisation, no shuffling: two runs must print the same numbers. Only the
    # timing fields may differ.
    need "$mnist"
    args=(--data "$mnist" --init zeros --no-shuffle --batch 100 --lr 0.1 --epochs 1)
    train "$tmp/a" "${args[@]}"
    train "$tmp/b" "${args[@]}"
    strip() {
        sed -E -e 's/  [0-9.]+ s  [0-9]+ samples\/s$//' -e 's/ seconds=[^ ]+ samples_per_s=[^ ]+$//' \
            -e 's/, [0-9]+ threads?$//' "$1"
    }
    n=$(grep -c '^epoch ' "$tmp/a")
    if [[ $n -ne 1 ]] || ! grep -q '^final ' "$tmp/a"; then
        echo "FAIL: expected one epoch line and a final line"
        exit 1
    fi
    if ! diff <(strip "$tmp/a") <(strip "$tmp/b"); then
        echo "FAIL: two identical runs printed different numbers"
        exit 1
    fi
    # The stripping must have removed only timing: the epoch line keeps its four numbers.
    if ! strip "$tmp/a" | grep -Eq '^epoch 1/1  train_loss [0-9.]+  train_acc [0-9.]+  test_acc [0-9.]+$'; then
        echo "FAIL: unexpected epoch line format: $(grep '^epoch ' "$tmp/a")"
        exit 1
    fi
    echo "ok: two runs print identical epoch and final lines (timing fields ignored)"
    ;;
impls)
    # The same deterministic run through the three implementations: they differ only by float
    # rounding, which may flip a handful of the 10000 test predictions, not more: within 0.002.
    need "$mnist"
    args=(--data "$mnist" --init zeros --no-shuffle --batch 100 --lr 0.1 --epochs 1 --quiet)
    for impl in blas jacobian naive; do
        train "$tmp/$impl" "${args[@]}" --impl "$impl"
    done
    ref=$(field "$tmp/blas" test_acc)
    status=0
    for impl in jacobian naive; do
        acc=$(field "$tmp/$impl" test_acc)
        if [[ -n $ref && -n $acc ]] &&
            awk -v a="$acc" -v r="$ref" 'BEGIN { d = a - r; if (d < 0) d = -d; exit !(d <= 0.002) }'; then
            echo "ok: $impl test_acc $acc vs blas $ref (|diff| <= 0.002)"
        else
            echo "FAIL: $impl test_acc '$acc' vs blas '$ref': differ by more than 0.002"
            status=1
        fi
    done
    exit $status
    ;;
*)
    echo "unknown case '$case_'"
    exit 2
    ;;
esac

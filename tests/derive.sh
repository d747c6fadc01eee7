#!/usr/bin/env bash
# backprop derive on real MNIST, read the way a student reads it:
#   - on the default fresh softmax regression and on a trained 784-16-10 MLP (--sample 7): exit
#     0; every "check" line ends in ok AND the err it prints is at most the tol it prints (so a
#     verdict that disagreed with its own numbers would fail too); the number of check lines is
#     the one the final "N checks, all ok" line states and the one the model's layers call for;
#     every step of the slides is there, each quantity checked, and the three text pictures
#     (the image, a row of dL/dW, dL/dx) are 28 framed rows each;
#   - bad usage and bad input (--sample 10000, -1, abc; an unknown flag; a missing model or
#     data directory) exit 2 with a message that says what is wrong, and print nothing on stdout.
# Skips (77) without data/mnist; with CI=true a missing data set fails instead.
#
# usage: derive.sh PATH/TO/backprop DATA_ROOT
set -u
exe=$(realpath "${1:?usage: derive.sh PATH/TO/backprop DATA_ROOT}")
mnist=$(realpath -m "${2:?data root}")/mnist
# derive reads the test set, through bp_dataset_load_dir, which wants all four files
missing=""
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
    t10k-labels-idx1-ubyte; do
    [[ -e $mnist/$f || -e $mnist/$f.gz ]] || missing+=" $f"
done
if [[ -n $missing ]]; then
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: $mnist lacks$missing (CI=true: data/fetch.sh must have fetched it)"
        exit 1
    fi
    echo "SKIP: $mnist lacks$missing (data/fetch.sh downloads it)"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-derive.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# checks OUT WHAT EXPECTED: every check line of OUT is ok and within its tolerance, there are
# EXPECTED of them, and the summary line agrees.
checks() {
    local out=$1 what=$2 expected=$3 bad n
    bad=$(awk '/^  check  / {
            err = ""; tol = ""
            for (k = 1; k < NF; k++) {
                if ($k == "err") err = $(k + 1)
                if ($k == "tol") tol = $(k + 1)
            }
            if ($NF != "ok" || err == "" || tol == "" || !(err + 0 <= tol + 0)) print
        }' "$out")
    n=$(grep -c '^  check  ' "$out")
    if [[ -n $bad ]]; then
        fail "$what: check lines not ok or above their tolerance:"$'\n'"$bad"
    elif [[ $n -ne $expected ]]; then
        fail "$what: $n check lines, expected $expected"
    elif [[ $(tail -n 1 "$out") != "$expected checks, all ok" ]]; then
        fail "$what: last line '$(tail -n 1 "$out")', expected '$expected checks, all ok'"
    else
        ok "$what: $n check lines, each ok and within its printed tolerance"
    fi
}

# has OUT WHAT LINE...: each LINE (a fixed string) starts a line of OUT.
has() {
    local out=$1 what=$2 line missing=""
    shift 2
    for line in "$@"; do
        grep -qF -- "$line" <(cut -c 1-${#line} "$out") || missing+=$'\n'"  $line"
    done
    if [[ -n $missing ]]; then
        fail "$what: missing lines starting with:$missing"
    else
        ok "$what: all $# expected steps and checks are there"
    fi
}

# pictures OUT WHAT N: N text pictures of 28 framed rows of 56 characters.
pictures() {
    local n
    n=$(grep -cE '^    \|.{56}\|$' "$1")
    if [[ $n -eq $(($3 * 28)) ]]; then
        ok "$2: $3 pictures of 28x28"
    else
        fail "$2: $n framed picture rows, expected $(($3 * 28))"
    fi
}

steps=("Step 1. Forward pass" "Step 2. dL/dy: dL/dy_i = -labels_i / y_i"
    "Step 3. dL/dv = J^T * dL/dy" "Step 4. " "Step 5. dL/dx = reshape^-1(dL/du)"
    "Step 6. The library's float32 pass")

# ---- the fresh softmax regression: v = W*u + b ----
"$exe" derive --data "$mnist" >"$tmp/fresh" 2>"$tmp/err"
rc=$?
if [[ $rc -ne 0 ]]; then
    fail "derive (fresh model): exit $rc: $(cat "$tmp/err")"
else
    ok "derive (fresh model): exit 0"
fi
# 3 forward values (v, y, L) + dL/dy, J, J^T*dL/dy, dL/dv + dL/du, dL/db, dL/dW + the library's
# y, L, db, dW, dX
checks "$tmp/fresh" "derive (fresh model)" 15
has "$tmp/fresh" "derive (fresh model)" "${steps[@]}" \
    "  model   fresh 784-10 softmax regression" "  image   $mnist, test image 0 of 10000, label 7" \
    "  v = W*u + b" "  y = softmax(v)" "  L = -sum_i labels_i*log y_i" \
    "  J^T * dL/dy next to y - labels" "  dL/du = W^T * dL/dv" "  dL/db = E^T * dL/dv = dL/dv" \
    "  dL/dW = dL/dv * u^T" "  row 7 of dL/dW (the true class)" \
    "  check  v: " "  check  y: " "  check  L: " "  check  dL/dy: central differences" \
    "  check  J: central differences" "  check  J^T*dL/dy against y - labels" \
    "  check  dL/dv: central differences" "  check  dL/du: central differences, all 784" \
    "  check  dL/db: central differences" "  check  dL/dW: central differences, 10 largest" \
    "  check  dL/dW: bp_grad's m->dW[0]" "  check  dL/du: bp_grad's dX"
pictures "$tmp/fresh" "derive (fresh model)" 3

# ---- a trained MLP: the chain through the hidden layer ----
cd "$tmp" || exit 1
if ! "$exe" train --data "$mnist" --hidden 16 --epochs 1 --save m.st --quiet >train.out 2>&1; then
    fail "train --hidden 16 --epochs 1 --save m.st: $(cat train.out)"
else
    "$exe" derive --data "$mnist" --model m.st --sample 7 >mlp 2>err
    rc=$?
    [[ $rc -eq 0 ]] && ok "derive --model m.st --sample 7: exit 0" ||
        fail "derive --model m.st --sample 7: exit $rc: $(cat err)"
    # forward z0, a1, v, y, L + dL/dy, J, J^T*dL/dy, dL/dv + per layer dL/da, dL/db, dL/dW and
    # dL/dz0 + the library's y, L and db, dW of both layers, dX
    checks mlp "derive (784-16-10 MLP)" 23
    has mlp "derive (784-16-10 MLP)" "${steps[@]}" \
        "  model   m.st: 784-16-10 relu" "  image   $mnist, test image 7 of 10000, label 9" \
        "  z0 = W0*u + b0" "  a1 = relu(z0)" "  v = W1*a1 + b1" "  layer 1: v = W1*a1 + b1" \
        "  dL/da1 = W1^T * dL/dv" "  dL/dW1 = dL/dv * a1^T" "  layer 0: z0 = W0*u + b0" \
        "  dL/dz0 = dL/da1 (.) relu'(z0)" "  dL/du = W0^T * dL/dz0" "  dL/dW0 = dL/dz0 * u^T" \
        "  check  z0: " "  check  a1: " "  check  v: " "  check  dL/da1: central differences" \
        "  check  dL/dz0: central differences" "  check  dL/db0: central differences" \
        "  check  dL/dW1: central differences" "  check  dL/dW0: central differences, 10 largest" \
        "  check  dL/dW1: bp_grad's m->dW[1]" "  check  dL/db0: bp_grad's m->db[0]"
    pictures mlp "derive (784-16-10 MLP)" 3
fi

# ---- bad usage and bad input: exit 2, the reason on stderr, nothing on stdout ----
refused() {
    local phrase=$1
    shift
    "$exe" derive "$@" >out 2>err
    local rc=$?
    if [[ $rc -ne 2 ]]; then
        fail "derive $*: exit $rc, expected 2"$'\n'"  stderr: $(cat err)"
    elif ! grep -qF -- "$phrase" err; then
        fail "derive $*: stderr lacks '$phrase'"$'\n'"  stderr: $(cat err)"
    elif [[ -s out ]]; then
        fail "derive $*: printed on stdout when refusing"
    else
        ok "derive $*: exit 2, '$phrase'"
    fi
}
range="backprop derive: --sample: 10000 is out of range: the test set of $mnist"
refused "$range has 10000 images (0 to 9999)" --data "$mnist" --sample 10000
refused "backprop derive: --sample: -1 is out of range: test images are numbered from 0" \
    --data "$mnist" --sample -1
refused "backprop derive: --sample: expected an integer, got 'abc'" --data "$mnist" --sample abc
refused "backprop derive: unknown option '--bogus'" --data "$mnist" --bogus
refused "backprop derive: --sample needs a value" --data "$mnist" --sample
refused "no-such-model.st" --data "$mnist" --model no-such-model.st
refused "$tmp/no-data" --data "$tmp/no-data"

if ((fails)); then
    echo "$fails failure(s)"
    exit 1
fi
echo "all derive checks passed"

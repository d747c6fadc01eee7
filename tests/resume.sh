#!/usr/bin/env bash
# Train, save, resume on real MNIST: 5 epochs straight and 3 epochs + checkpoint + resume for 2
# write byte-identical model files (softmax regression with SGD/cosine, and an MLP with
# Adam/step); the --log CSV has its header and one numeric row per epoch, the same rows either
# way; and --resume refuses a changed setting, a model that is not a checkpoint, and a damaged
# file, each with exit status 2 and the reason.
#
# usage: resume.sh PATH/TO/backprop DATA_ROOT
#
# Skips (77) when data/mnist is missing, unless CI=true: then it fails (1) with the reason.
set -u
exe=${1:?usage: resume.sh PATH/TO/backprop DATA_ROOT}
root=${2:?data root}
mnist=$root/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [[ ! -e $mnist/$f && ! -e $mnist/$f.gz ]]; then
        if [[ ${CI:-} == true ]]; then
            echo "FAIL: $mnist lacks $f (CI=true: data/fetch.sh must have fetched it)"
            exit 1
        fi
        echo "SKIP: $mnist lacks $f (data/fetch.sh downloads it)"
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-resume.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run ARGS...: backprop ARGS; sets rc, and out/err in $tmp.
run() {
    echo "+ backprop $*"
    "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# must ARGS...: run, and stop the test unless it succeeded.
must() {
    run "$@"
    if [[ $rc -ne 0 ]]; then
        echo "FAIL: exit $rc: $(cat "$tmp/err")"
        exit 1
    fi
    cp "$tmp/out" "$tmp/last"
}

# check_log FILE EPOCHS: a header, then EPOCHS rows of 9 numbers, epochs 1..EPOCHS in order.
check_log() {
    local header="epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s"
    if [[ $(head -n 1 "$1") != "$header" ]]; then
        fail "$1: the first line is not the header: $(head -n 1 "$1")"
        return
    fi
    local why
    why=$(awk -F, -v want="$2" '
        NR == 1 { next }
        NF != 9 { print "line " NR " has " NF " fields"; exit }
        {
            for (i = 1; i <= NF; i++)
                if ($i !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) {
                    print "line " NR " field " i " is not a number: " $i; exit
                }
            if ($1 != NR - 1) { print "line " NR " is epoch " $1 ", expected " NR - 1; exit }
        }
        END { if (NR - 1 != want) print NR - 1 " rows, expected " want }' "$1")
    if [[ -n $why ]]; then
        fail "$1: $why"
    else
        echo "ok: $1: header and $2 numeric rows, epochs 1..$2"
    fi
}

# The columns of a log that do not measure time.
untimed() { cut -d, -f1-7 "$1"; }

# final FILE: the final line without its timing fields.
final() { tail -n 1 "$1" | sed -E 's/ seconds=.*//'; }

# same_run NAME ARGS...: straight vs stopped + resumed with ARGS.
same_run() {
    local name=$1
    shift
    local common=(--data "$mnist" --epochs 5 --threads 1 --quiet "$@")
    must train "${common[@]}" --save "$tmp/$name-a.st" --log "$tmp/$name-a.csv"
    cp "$tmp/last" "$tmp/$name-a.out"
    must train "${common[@]}" --stop-after 3 --checkpoint "$tmp/$name-c.st" --log "$tmp/$name-b.csv"
    if [[ $(grep -o 'epochs=[0-9]*' "$tmp/last") != epochs=3 ]]; then
        fail "$name: --stop-after 3 did not stop after 3 epochs: $(cat "$tmp/last")"
    fi
    # Only what --resume allows: the settings come from the checkpoint.
    must train --data "$mnist" --threads 1 --quiet --resume "$tmp/$name-c.st" \
        --save "$tmp/$name-b.st" --log "$tmp/$name-b.csv"
    cp "$tmp/last" "$tmp/$name-b.out"
    if cmp "$tmp/$name-a.st" "$tmp/$name-b.st"; then
        echo "ok: $name: 5 epochs straight and 3 + resume write byte-identical model files"
    else
        fail "$name: the resumed run's model file differs from the straight run's"
    fi
    if [[ $(final "$tmp/$name-a.out") == "$(final "$tmp/$name-b.out")" ]]; then
        echo "ok: $name: same final line: $(final "$tmp/$name-a.out")"
    else
        fail "$name: final lines differ: '$(final "$tmp/$name-a.out")' vs '$(final "$tmp/$name-b.out")'"
    fi
    check_log "$tmp/$name-a.csv" 5
    check_log "$tmp/$name-b.csv" 5 # the resumed run appended to the stopped run's log
    if diff <(untimed "$tmp/$name-a.csv") <(untimed "$tmp/$name-b.csv") >/dev/null; then
        echo "ok: $name: the two logs agree in every column but the timings"
    else
        fail "$name: the logs differ outside the timing columns"
    fi
}

same_run sgd
same_run adam --hidden 32 --optim adam --lr-schedule step

# expect_refused PHRASE... -- ARGS...: exit 2, and every PHRASE in stderr.
expect_refused() {
    local phrases=()
    while [[ $1 != -- ]]; do
        phrases+=("$1")
        shift
    done
    shift
    run "$@"
    local e
    e=$(cat "$tmp/err")
    if [[ $rc -ne 2 ]]; then
        fail "exit $rc, expected 2: backprop $*"$'\n'"  stderr: $e"
        return
    fi
    for p in "${phrases[@]}"; do
        if [[ $e != *"$p"* ]]; then
            fail "stderr lacks '$p': backprop $*"$'\n'"  stderr: $e"
            return
        fi
    done
    echo "ok: exit 2: $e"
}

ck=$tmp/sgd-c.st
expect_refused "--lr" "--resume" -- train --data "$mnist" --resume "$ck" --lr 0.1
expect_refused "is a model, not a checkpoint" -- train --data "$mnist" --resume "$tmp/sgd-a.st"
# Damaged: the bits of one data byte inverted (the last byte of the file is tensor data).
cp "$ck" "$tmp/damaged.st"
size=$(stat -c %s "$tmp/damaged.st")
byte=$(od -An -tu1 -j $((size - 1)) -N 1 "$tmp/damaged.st" | tr -d ' ')
printf "\\$(printf %03o $((byte ^ 0xff)))" |
    dd of="$tmp/damaged.st" bs=1 seek=$((size - 1)) conv=notrunc status=none
cmp -s "$ck" "$tmp/damaged.st" && fail "the damaged copy is not damaged"
expect_refused "$tmp/damaged.st" "CRC-32 of the tensor data" "the file is damaged" -- \
    train --data "$mnist" --resume "$tmp/damaged.st"
# Cut short: the header promises more than the file holds.
head -c 100 "$ck" >"$tmp/short.st"
expect_refused "$tmp/short.st" "runs past the end of the file" -- \
    train --data "$mnist" --resume "$tmp/short.st"
expect_refused "$tmp/none.st" "cannot open" -- train --data "$mnist" --resume "$tmp/none.st"

if [[ $fails -ne 0 ]]; then
    echo "$fails failed"
    exit 1
fi
echo "all passed"

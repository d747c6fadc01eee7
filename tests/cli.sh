#!/usr/bin/env bash
# The backprop tool as a user meets it: exit codes (0 ok, 1 runtime failure, 2 bad usage or bad
# input), the one-line messages on stderr, nothing half-printed on stdout, and the final
# key=value line that scripts parse. Data are tiny IDX files made here with printf.
#
# usage: cli.sh PATH/TO/backprop
set -u
exe=${1:?usage: cli.sh PATH/TO/backprop}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
checks=0
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run ARGS...: runs the tool; sets rc, out, err (stdout and stderr as text).
run() {
    "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

# expect CODE PHRASE ARGS...: exit status CODE, PHRASE (fixed string) in stderr, stdout empty.
expect() {
    local code=$1 phrase=$2
    shift 2
    run "$@"
    checks=$((checks + 1))
    if [[ $rc -ne $code ]]; then
        fail "exit $rc, expected $code: backprop $*"$'\n'"  stderr: $err"
    elif [[ $err != *"$phrase"* ]]; then
        fail "stderr lacks '$phrase': backprop $*"$'\n'"  stderr: $err"
    elif [[ -n $out ]]; then
        fail "stdout not empty on error: backprop $*"$'\n'"  stdout: $out"
    else
        echo "ok: exit $code, '$phrase': backprop $*"
    fi
}

# usage_error PHRASE ARGS...: a bad usage of train: exit 2, the phrase, and the hint.
# --data points nowhere, so a bad value that slipped through parsing would fail with a
# different message instead of training on real data.
nodata=$tmp/no-data-here
usage_error() {
    local phrase=$1
    shift
    expect 2 "$phrase" train --data "$nodata" "$@"
    checks=$((checks + 1))
    [[ $err == *"Try 'backprop train --help'."* ]] || fail "no --help hint for: train $*"
}

# ---- options ----
usage_error "backprop train: unknown option '--bogus'" --bogus
usage_error "backprop train: unknown option '-x'" -x
# Inside a cluster getopt has not stepped past the word: the option is named by its character,
# not by the word before the cluster (found by fuzz_cli).
usage_error "backprop train: unknown option '-x'" -xh
expect 2 "backprop gradcheck: unknown option '-q'" gradcheck -qh
expect 2 "backprop eval: unknown option '-z'" eval -zh
usage_error "backprop train: --epochs needs a value" --epochs
usage_error "backprop train: --lr needs a value" --lr
for v in abc 1.5 nan inf -inf '' 12x 99999999999999999999; do
    usage_error "--epochs: expected an integer, got '$v'" --epochs "$v"
done
usage_error "--epochs: 0 must be from 1 to 100000" --epochs 0
usage_error "--epochs: -3 must be from 1 to 100000" --epochs -3
for v in nan NaN x inf 3.5 -1e9; do
    usage_error "--batch: " --batch "$v"
done
usage_error "--batch: 0 must be from 1 to 65536" --batch 0
usage_error "--batch: -5 must be from 1 to 65536" --batch -5
usage_error "--batch: expected an integer, got 'nan'" --batch nan
for v in nan NAN inf -inf infinity 1e400 abc 0.1.2 ''; do
    usage_error "--lr: expected a finite number, got '$v'" --lr "$v"
done
usage_error "--lr: 0 must be greater than 0" --lr 0
usage_error "--lr: -0.5 must be greater than 0" --lr -0.5
usage_error "--lr: 2e+06 must be 0 (the optimizer's default) or positive, and at most 1e6" --lr 2e6
usage_error "--lr-min: 0.2 must be at least 0 and at most the learning rate 0.1" --lr 0.1 --lr-min 0.2
usage_error "--lr-min: 0.6 must be at least 0 and at most the learning rate 0.5" --lr-min 0.6
usage_error "--momentum: 1 must be at least 0 and below 1" --momentum 1
usage_error "--weight-decay: -1 must be from 0 to 10" --weight-decay -1
usage_error "--lr-gamma: 0 must be greater than 0 and at most 1" --lr-gamma 0
usage_error "--lr-step: 0 must be from 1 to 100000" --lr-step 0
usage_error "--impl: unknown implementation 'fast' (one of: blas, jacobian, naive)" --impl fast
usage_error "--act: unknown activation 'gelu' (one of: relu, tanh, sigmoid)" --act gelu
usage_error "--optim: unknown optimizer 'rmsprop' (one of: sgd, momentum, nesterov, adam)" --optim rmsprop
usage_error "--init: unknown initialisation 'he' (one of: auto, zeros, uniform, normal, torch)" --init he
usage_error "--lr-schedule: unknown learning-rate schedule 'linear'" --lr-schedule linear
usage_error "--hidden: expected widths like 256 or 512,256" --hidden 0
usage_error "--hidden: expected widths like 256 or 512,256" --hidden 64,,32
usage_error "--threads: -1 must be 0 (the default) or positive" --threads -1
usage_error "--seed: expected a non-negative integer, got '-1'" --seed -1
usage_error "backprop train: unexpected argument 'extra'" extra
expect 2 "backprop: unknown command 'frobnicate'" frobnicate
expect 2 "usage: backprop COMMAND"
expect 2 "backprop gradcheck: unknown option '--bogus'" gradcheck --bogus
expect 2 "--batch: 0 must be from 1 to 4096" gradcheck --batch 0
expect 2 "--step: 1e-38 must be from 1e-10 to 1" gradcheck --step 1e-38
expect 2 "backprop gradcheck: unexpected argument 'x'" gradcheck x

# ---- help and version: exit 0, on stdout, nothing on stderr ----
expect_ok() {
    local pattern=$1
    shift
    run "$@"
    checks=$((checks + 1))
    if [[ $rc -ne 0 || -n $err ]] || ! grep -Eq -- "$pattern" "$tmp/out"; then
        fail "backprop $*: exit $rc, stdout lacks /$pattern/ or stderr not empty: $err"
    else
        echo "ok: exit 0, /$pattern/: backprop $*"
    fi
}
expect_ok '^usage: backprop COMMAND' --help
expect_ok '^usage: backprop COMMAND' help
expect_ok '^usage: backprop train' train --help
expect_ok '^usage: backprop train' train -h
expect_ok '^usage: backprop gradcheck' gradcheck --help
expect_ok '^backprop [0-9]+\.[0-9]+\.[0-9]+$' --version
expect_ok '^backprop [0-9]+\.[0-9]+\.[0-9]+$' train --version

# ---- tiny IDX data ----
# Bytes are written as octal escapes built into printf's format string, on purpose.
# shellcheck disable=SC2059
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
# shellcheck disable=SC2059
byte() { printf "\\$(printf %03o "$1")"; }
# images FILE N: N images of 2x2 whose pixels depend on the class i % 10
images() {
    {
        printf '\0\0\10\3'
        be32 "$2"
        be32 2
        be32 2
        for ((i = 0; i < $2; i++)); do
            c=$((i % 10))
            byte $((c * 25)); byte $((250 - c * 25)); byte $((c * 12 + i % 3)); byte $((c % 2 * 200))
        done
    } >"$1"
}
# labels FILE N [BAD_INDEX BAD_LABEL]
labels() {
    {
        printf '\0\0\10\1'
        be32 "$2"
        for ((i = 0; i < $2; i++)); do
            if [[ $# -ge 4 && $i -eq $3 ]]; then byte "$4"; else byte $((i % 10)); fi
        done
    } >"$1"
}
make_set() { # make_set DIR
    mkdir -p "$1"
    images "$1/train-images-idx3-ubyte" 20
    labels "$1/train-labels-idx1-ubyte" 20
    images "$1/t10k-images-idx3-ubyte" 10
    labels "$1/t10k-labels-idx1-ubyte" 10
}
good=$tmp/good
make_set "$good"
checks=$((checks + 1))
[[ $(wc -c <"$good/train-images-idx3-ubyte") -eq $((16 + 20 * 4)) ]] || fail "test data: bad image file size"

# data_error PHRASE DIR FILE: exit 2, exactly one line on stderr naming FILE, stdout empty
data_error() {
    local phrase=$1 dir=$2 file=$3
    expect 2 "$phrase" train --data "$dir" --epochs 1
    checks=$((checks + 2))
    [[ $err == *"$file"* ]] || fail "message does not name $file: $err"
    [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "not one line on stderr: $err"
}
data_error "cannot open the data directory" "$nodata" "$nodata"
: >"$tmp/a-file"
data_error "not a directory" "$tmp/a-file" "$tmp/a-file"
mkdir -p "$tmp/empty-dir"
data_error "not found (nor train-images-idx3-ubyte.gz)" "$tmp/empty-dir" "$tmp/empty-dir/train-images-idx3-ubyte"
mkdir "$tmp/three" && cp "$good"/* "$tmp/three/" && rm "$tmp/three/t10k-labels-idx1-ubyte"
data_error "not found (nor t10k-labels-idx1-ubyte.gz)" "$tmp/three" "$tmp/three/t10k-labels-idx1-ubyte"

make_set "$tmp/magic"
{ printf '\0\0\10\4'; tail -c +5 "$good/train-images-idx3-ubyte"; } >"$tmp/magic/train-images-idx3-ubyte"
data_error "4 dimensions in the header (expected 3" "$tmp/magic" "$tmp/magic/train-images-idx3-ubyte"
make_set "$tmp/magic2"
{ printf 'GIF8'; tail -c +5 "$good/train-images-idx3-ubyte"; } >"$tmp/magic2/train-images-idx3-ubyte"
data_error "bad magic" "$tmp/magic2" "$tmp/magic2/train-images-idx3-ubyte"
make_set "$tmp/trunc"
head -c 50 "$good/t10k-images-idx3-ubyte" >"$tmp/trunc/t10k-images-idx3-ubyte"
data_error "truncated: header promises 40 bytes of data, file has 34" "$tmp/trunc" "$tmp/trunc/t10k-images-idx3-ubyte"
make_set "$tmp/label12"
labels "$tmp/label12/train-labels-idx1-ubyte" 20 7 12
data_error "label 12 at index 7 is not below 10 classes" "$tmp/label12" "$tmp/label12/train-labels-idx1-ubyte"
make_set "$tmp/count"
labels "$tmp/count/t10k-labels-idx1-ubyte" 9
data_error "9 labels, but" "$tmp/count" "$tmp/count/t10k-labels-idx1-ubyte"

# ---- training on the tiny set ----
final_re='^final test_acc=[0-9]+\.[0-9]{4} best_test_acc=[0-9]+\.[0-9]{4} train_loss=[0-9]+\.[0-9]{4} epochs=3 seconds=[0-9]+\.[0-9]{2} samples_per_s=[0-9]+$'
check_train() { # check_train DESCRIPTION ARGS...
    local what=$1
    shift
    run train "$@" --epochs 3 --batch 6
    checks=$((checks + 1))
    local last nepochs keys
    last=$(tail -n 1 "$tmp/out")
    nepochs=$(grep -Ec '^epoch [ 0-9]+/3  train_loss [0-9.]+  train_acc [0-9.]+  test_acc [0-9.]+  ' "$tmp/out")
    keys=$(sed -E 's/=[^ ]*//g' <<<"$last")
    if [[ $rc -ne 0 || -n $err ]]; then
        fail "$what: exit $rc, stderr: $err"
    elif ! [[ $last =~ $final_re ]]; then
        fail "$what: last line does not match: $last"
    elif [[ $keys != "final test_acc best_test_acc train_loss epochs seconds samples_per_s" ]]; then
        fail "$what: keys are '$keys'"
    elif [[ $nepochs -ne 3 ]]; then
        fail "$what: $nepochs epoch lines, expected 3"$'\n'"$out"
    else
        echo "ok: $what: $last"
    fi
}
check_train "tiny raw set" --data "$good"
check_train "tiny set, MLP, naive" --data "$good" --hidden 8 --impl naive --optim momentum
mkdir "$tmp/gz"
for f in "$good"/*; do gzip -c "$f" >"$tmp/gz/$(basename "$f").gz"; done
check_train "tiny gzip set" --data "$tmp/gz"

# --quiet: the final line only
run train --data "$good" --epochs 3 --batch 6 --quiet
checks=$((checks + 1))
if [[ $rc -eq 0 && $(wc -l <"$tmp/out") -eq 1 && $out =~ $final_re ]]; then
    echo "ok: --quiet prints only: $out"
else
    fail "--quiet: exit $rc, stdout: $out"
fi

# A learning rate of 1e6 makes training diverge. Two ways it shows: on a three-hidden-layer
# ReLU net the loss overflows to NaN or infinity within a few steps; on --hidden 64,64 it climbs
# to ~1e34 but stays finite (log-sum-exp keeps it so), which the trainer catches with its
# bound on the loss (20·log C). Either way: exit 1, the message on stderr, and no final line.
for net in 64,64,64 64,64; do
    run train --data "$good" --hidden "$net" --lr 1e6 --epochs 20 --batch 5 --lr-schedule constant
    checks=$((checks + 1))
    if [[ $rc -eq 1 && $err == *"training diverged: the training loss became"* && $out != *final* ]]; then
        echo "ok: --hidden $net diverges: exit 1: $err"
    else
        fail "--hidden $net --lr 1e6: exit $rc (expected 1), stderr: $err, stdout: $out"
    fi
done

# All-zero images, softmax regression, lr 1e6: only the biases learn, and they overshoot until
# the loss is ~1e5 yet finite; that is divergence too. A diverged run never replaces the last
# good model: --save's file is left as the good run wrote it.
mkdir -p "$tmp/zeros"
{ printf '\0\0\10\3'; be32 20; be32 2; be32 2; head -c 80 /dev/zero; } >"$tmp/zeros/train-images-idx3-ubyte"
{ printf '\0\0\10\3'; be32 10; be32 2; be32 2; head -c 40 /dev/zero; } >"$tmp/zeros/t10k-images-idx3-ubyte"
cp "$good/train-labels-idx1-ubyte" "$good/t10k-labels-idx1-ubyte" "$tmp/zeros/"
run train --data "$tmp/zeros" --epochs 3 --batch 5 --save "$tmp/good.st" --quiet
cp "$tmp/good.st" "$tmp/good.copy"
run train --data "$tmp/zeros" --lr 1e6 --epochs 20 --batch 5 --lr-schedule constant --save "$tmp/good.st"
checks=$((checks + 1))
if [[ $rc -eq 1 && $err == *"training diverged"* && $out != *final* ]] && cmp -s "$tmp/good.st" "$tmp/good.copy"; then
    echo "ok: all-zero images at lr 1e6 diverge, and the saved model is untouched: $err"
else
    fail "all-zero images, lr 1e6: exit $rc, stderr: $err; model changed: $(cmp "$tmp/good.st" "$tmp/good.copy")"
fi

# Output that cannot be written is a failure: scripts read the final line.
if [[ -w /dev/full ]]; then
    "$exe" train --data "$good" --epochs 1 --batch 6 --quiet >/dev/full 2>"$tmp/err"
    rc=$?
    checks=$((checks + 1))
    if [[ $rc -eq 1 ]] && grep -q "error writing standard output" "$tmp/err"; then
        echo "ok: stdout to /dev/full: exit 1"
    else
        fail "stdout to /dev/full: exit $rc, stderr: $(cat "$tmp/err")"
    fi
fi

# ---- gradcheck ----
for args in "" "--hidden 16 --act tanh --inputs 20 --entries 0 --impl naive" \
    "--hidden 12,8 --act sigmoid --inputs 30 --impl jacobian --batch 3"; do
    # shellcheck disable=SC2086
    run gradcheck $args
    checks=$((checks + 1))
    if [[ $rc -eq 0 && $out == *" ok"* && $out != *FAIL* && -z $err ]]; then
        echo "ok: gradcheck $args: exit 0"
    else
        fail "gradcheck $args: exit $rc"$'\n'"$out$err"
    fi
done
# ...and it can fail: no float gradient is within 1e-12 of the double reference.
run gradcheck --tol 1e-12
checks=$((checks + 1))
if [[ $rc -eq 1 && $out == *FAIL* ]]; then
    echo "ok: gradcheck --tol 1e-12: exit 1 with FAIL lines"
else
    fail "gradcheck --tol 1e-12: exit $rc"$'\n'"$out"
fi


# ---- model files and the commands that read them (tiny 2x2 set) ----
m=$tmp/tiny.st
run train --data "$good" --epochs 2 --batch 5 --save "$m" --quiet
checks=$((checks + 1))
[[ $rc -eq 0 && -s $m ]] && echo "ok: train --save wrote $(wc -c <"$m") bytes" || fail "train --save: exit $rc $err"
run eval --model "$m" --data "$good"
checks=$((checks + 1))
[[ $rc -eq 0 && $out == *"confusion matrix"* && $out == *"macro"* ]] && echo "ok: eval on the tiny set" ||
    fail "eval: exit $rc: $err"
expect 2 "backprop eval: --model FILE is required" eval --data "$good"
expect 2 "$tmp/none.st: cannot open: No such file or directory" eval --model "$tmp/none.st" --data "$good"
printf 'not a model' >"$tmp/junk.st"
expect 2 "$tmp/junk.st: header length" eval --model "$tmp/junk.st" --data "$good"
expect 2 "$tmp: not a regular file" eval --model "$tmp" --data "$good"
mkfifo "$tmp/fifo.st"
expect 2 "fifo.st: not a regular file" eval --model "$tmp/fifo.st" --data "$good"
expect 2 "backprop eval: unknown option '--bogus'" eval --model "$m" --bogus
expect 2 "--errors-count: 0 must be from 1 to 400" eval --model "$m" --errors-count 0
# a model for 2x2 images on 3x1 data: the widths differ
mkdir -p "$tmp/wide"
{ printf '\0\0\10\3'; be32 20; be32 3; be32 1; head -c 60 /dev/zero; } >"$tmp/wide/train-images-idx3-ubyte"
{ printf '\0\0\10\3'; be32 10; be32 3; be32 1; head -c 30 /dev/zero; } >"$tmp/wide/t10k-images-idx3-ubyte"
cp "$good/train-labels-idx1-ubyte" "$good/t10k-labels-idx1-ubyte" "$tmp/wide/"
expect 2 "takes 4 inputs per image, the images of $tmp/wide have 1x3 = 3" eval --model "$m" --data "$tmp/wide"

# predict: sizes, kinds, --invert, several inputs
printf 'P5\n2 2\n255\n\0\377\0\377' >"$tmp/ok.pgm"
run predict --model "$m" "$tmp/ok.pgm" "$good/t10k-images-idx3-ubyte"
checks=$((checks + 1))
[[ $rc -eq 0 && $(grep -c ':  [0-9] (' <<<"$out") -eq 11 ]] && echo "ok: predict: 1 PGM + 10 IDX images" ||
    fail "predict: exit $rc, $(wc -l <<<"$out") lines: $err"
printf 'P5\n3 3\n255\n123456789' >"$tmp/big.pgm"
expect 2 "big.pgm: 3x3 pixels; the model takes 2x2 images" predict --model "$m" "$tmp/big.pgm"
printf 'hello' >"$tmp/x.txt"
expect 2 "x.txt: not a PGM, PNG or IDX image file" predict --model "$m" "$tmp/x.txt"
printf 'P5\n2 2\n255\n\0' >"$tmp/cut.pgm"
expect 2 "cut.pgm" predict --model "$m" "$tmp/cut.pgm"
expect 2 "no input image given" predict --model "$m"
expect 2 "none.pgm: cannot open" predict --model "$m" "$tmp/none.pgm"
run predict --model "$m" --json "$tmp/ok.pgm"
checks=$((checks + 1))
[[ $rc -eq 0 && $out == *'"input"'* && $out == *'"top"'* ]] && echo "ok: predict --json" || fail "predict --json: $out $err"

# weights and plot
run weights --model "$m" --out "$tmp/w.png"
checks=$((checks + 1))
[[ $rc -eq 0 && $(head -c 4 "$tmp/w.png" | od -An -c | tr -d ' ') == '211PNG' ]] && echo "ok: weights wrote a PNG" ||
    fail "weights: exit $rc $err"
expect 2 "--model FILE and --out FILE.png are required" weights --model "$m"
expect 2 "--units: 0 must be from 1 to 100" weights --model "$m" --out "$tmp/w.png" --units 0
expect 2 "backprop plot: --out FILE.svg is required" plot "$tmp/x.txt"
expect 2 "x.txt:1:" plot "$tmp/x.txt" --out "$tmp/c.svg"
checks=$((checks + 1))
[[ ! -e $tmp/c.svg ]] && echo "ok: a failed plot leaves no file" || fail "plot left $tmp/c.svg"

# train --resume: settings come from the checkpoint
run train --data "$good" --epochs 3 --batch 5 --stop-after 1 --checkpoint "$tmp/ck.st" --quiet
checks=$((checks + 1))
[[ $rc -eq 0 && -s $tmp/ck.st ]] && echo "ok: --stop-after 1 --checkpoint" || fail "checkpoint: exit $rc $err"
usage_error "--lr: not with --resume" --resume "$tmp/ck.st" --lr 0.1
expect 2 "is a model, not a checkpoint" train --data "$good" --resume "$m"
expect 2 "junk.st: header length" train --data "$good" --resume "$tmp/junk.st"
expect 2 "--epochs: 1: the checkpoint has already trained 1 epochs" train --data "$good" --resume "$tmp/ck.st" --epochs 1
run train --data "$good" --resume "$tmp/ck.st" --quiet
checks=$((checks + 1))
[[ $rc -eq 0 && $out == *"epochs=3 "* ]] && echo "ok: --resume runs epochs 2-3: $out" || fail "resume: exit $rc $out $err"

# ---- the audit's defects: each is a clear one-line error now ----
usage_error "backprop train: unknown option '-x'" -xy
usage_error "backprop train: unknown option '-x'" --quiet -xy
usage_error "ambiguous option '--lr-s' (could be --lr-schedule --lr-step)" --lr-s constant
usage_error "--no-shuffle takes no value (got '--no-shuffle=1')" --no-shuffle=1
expect 2 "backprop train: the data directory name is empty" train --data '' --epochs 1
# A FIFO where an IDX file should be: refused by name at once, never waited on.
mkdir -p "$tmp/fifo"
cp "$good"/* "$tmp/fifo/"
rm "$tmp/fifo/train-images-idx3-ubyte"
mkfifo "$tmp/fifo/train-images-idx3-ubyte"
checks=$((checks + 1))
timeout 10 "$exe" train --data "$tmp/fifo" --epochs 1 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [[ $rc -eq 2 ]] && grep -q "train-images-idx3-ubyte: is a FIFO (named pipe), not an IDX file" "$tmp/err"; then
    echo "ok: a FIFO in the data directory is refused by name: $(cat "$tmp/err")"
else
    fail "FIFO data file: exit $rc (124 = hung), stderr: $(cat "$tmp/err")"
fi
# A dangling symbolic link is not "not found".
mkdir -p "$tmp/dangling"
cp "$good"/* "$tmp/dangling/"
rm "$tmp/dangling/t10k-images-idx3-ubyte"
ln -s "$tmp/nowhere" "$tmp/dangling/t10k-images-idx3-ubyte"
expect 2 "t10k-images-idx3-ubyte: a symbolic link to a file that does not exist" train --data "$tmp/dangling" --epochs 1
# A link loop reports its errno.
rm "$tmp/dangling/t10k-images-idx3-ubyte"
ln -s "$tmp/dangling/loop" "$tmp/dangling/loop" 2>/dev/null
ln -s "$tmp/dangling/loop" "$tmp/dangling/t10k-images-idx3-ubyte"
expect 2 "t10k-images-idx3-ubyte: Too many levels of symbolic links" train --data "$tmp/dangling" --epochs 1
# Images wider than any model can take: refused at load time, naming the file.
mkdir -p "$tmp/huge"
cp "$good"/*labels* "$tmp/huge/"
cp "$good/t10k-images-idx3-ubyte" "$tmp/huge/"
{ printf '\0\0\10\3'; be32 1; be32 1025; be32 1025; } >"$tmp/huge/train-images-idx3-ubyte"
expect 2 "huge/train-images-idx3-ubyte: images of 1025x1025 = 1050625 pixels are more than a model's largest input (1048576)" train --data "$tmp/huge" --epochs 1
# Range messages say the range, not internal bounds.
usage_error "--momentum: -0.5 must be at least 0 and below 1" --momentum -0.5
usage_error "--lr-min: -1 must be at least 0" --lr-min -1


# ---- --arch: layer lists, strictly parsed, the bad token named ----
usage_error "backprop train: --arch: token 1 'conv3x3:0': channels must be from 1 to 4096" --arch conv3x3:0
usage_error "backprop train: --arch: token 3 'conv3x3:0': channels must be from 1 to 4096" --arch relu,relu,conv3x3:0
usage_error "--arch: token 2 'gelu': unknown layer" --arch fc:8,gelu
usage_error "--arch: token 1 'fc:x': fc:N needs a width" --arch fc:x
usage_error "--arch: token 2 '': empty" --arch fc:8,,relu
usage_error "--arch: token 1 'dropout:1.5': dropout:P needs a rate" --arch dropout:1.5
usage_error "--arch: token 1 'conv4x4:8:same': 'same' padding needs an odd kernel" --arch conv4x4:8:same
usage_error "--arch: token 3 'maxpool2': a spatial layer after fc or flatten" --arch conv3x3:4,fc:8,maxpool2
usage_error "--arch: an empty architecture" --arch ''
usage_error "backprop train: --arch: not with --hidden" --arch fc:8 --hidden 8
usage_error "backprop train: --arch: not with --act" --act tanh --arch fc:8
usage_error "backprop train: --arch needs a value" --arch
usage_error "--arch: not with --resume" --arch fc:8 --resume "$tmp/none.st"
# shapes are known once the data is: a 3x3 kernel on the tiny set's 2x2 images
expect 2 "backprop train: --arch: layer 0 (conv2d): a 3x3 kernel does not fit a 2x2 input" train --data "$good" --arch conv3x3:4
check_train "tiny set, CNN" --data "$good" --arch conv1x1:3,relu,maxpool2,fc:6,relu,dropout:0.2 --optim adam
check_train "tiny set, CNN, naive" --data "$good" --arch conv2x2:3:s2,tanh,dropout:0.1 --impl naive
# a saved CNN through eval, weights (the conv filters) and gradcheck --arch
cnn=$tmp/cnn.st
run train --data "$good" --epochs 2 --batch 5 --arch conv1x1:3,relu,avgpool2,fc:5 --save "$cnn"
checks=$((checks + 1))
[[ $rc -eq 0 && $out == *"model 1x2x2 conv1x1:3,relu,avgpool2,flatten,fc:5,fc:10 (layers, "* ]] &&
    echo "ok: train --arch header: $(head -n 1 <<<"$out")" || fail "train --arch: exit $rc $err: $out"
run eval --model "$cnn" --data "$good"
checks=$((checks + 1))
[[ $rc -eq 0 && $out == *"model $cnn: 1x2x2 conv1x1:3"* && $out == *"confusion matrix"* ]] &&
    echo "ok: eval of a CNN" || fail "eval CNN: exit $rc $err: $out"
run weights --model "$cnn" --out "$tmp/filters.png"
checks=$((checks + 1))
[[ $rc -eq 0 && -s $tmp/filters.png ]] && echo "ok: weights of a CNN" || fail "weights CNN: exit $rc $err"
run gradcheck --arch conv3x3:3:same,relu,maxpool2,dropout:0.3,fc:8,tanh --inputs 36 --batch 2 --entries 0
checks=$((checks + 1))
[[ $rc -eq 0 && $(grep -c ' ok' <<<"$out") -eq 7 ]] && echo "ok: gradcheck --arch, 7 tensors" ||
    fail "gradcheck --arch: exit $rc $err: $out"
expect 2 "backprop gradcheck: --arch: not with --hidden or --act" gradcheck --arch fc:4 --hidden 4
expect 2 "backprop gradcheck: --inputs: 10 is not a square image for --arch" gradcheck --arch conv3x3:2 --inputs 10
expect 2 "backprop gradcheck: --arch: token 2 'maxpool9x': the window" gradcheck --arch conv3x3:2,maxpool9x
expect 2 "backprop derive: $cnn is not an MLP" derive --model "$cnn" --data "$good"

echo "cli.sh: $checks checks, $fails failed"
[[ $fails -eq 0 && $checks -gt 0 ]]

#!/usr/bin/env bash
# The README's "train, save, evaluate, predict, plot" walk-through on real MNIST, checked as a
# user would check it:
#   - eval's accuracy equals train's final test_acc for the saved model, its confusion matrix
#     sums to the test set, its --json parses and agrees with the tables;
#   - predict on the whole t10k IDX file gets exactly eval's number of correct answers;
#   - predict on PGM (P2, P5) and PNG files written here from test images prints exactly the
#     probabilities predict gives those images inside the IDX file (same scaling, same pass);
#     --invert on an inverted PGM gives them too;
#   - weights, eval --errors and plot write pictures that decode to the expected size (PNG
#     header; the SVG parses as XML and renders with rsvg-convert).
# usage: workflow.sh PATH/TO/backprop DATA_ROOT
set -u
exe=$(realpath "${1:?usage: workflow.sh PATH/TO/backprop DATA_ROOT}")
mnist=${2:?data root}/mnist
py=/usr/bin/python3
fails=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
missing() {
    if [[ ${CI:-} == true ]]; then echo "FAIL: $* (CI=true needs it)"; exit 1; fi
    echo "SKIP: $*"; exit 77
}
[[ -e $mnist/t10k-images-idx3-ubyte ]] || missing "$mnist/t10k-images-idx3-ubyte is missing (data/fetch.sh)"
$py -c 'import zlib, struct, json' 2>/dev/null || missing "$py cannot run"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-workflow.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

"$exe" train --data "$mnist" --epochs 2 --save m.st --log log.csv --quiet >train.out 2>&1 ||
    { echo "FAIL: train: $(cat train.out)"; exit 1; }
acc=$(grep -Eo 'test_acc=[0-9.]+' train.out | head -n 1 | cut -d= -f2)

# eval: tables and JSON
"$exe" eval --model m.st --data "$mnist" >eval.txt 2>&1 || fail "eval: $(cat eval.txt)"
eacc=$(awk '/^accuracy/ {print $2}' eval.txt)
[[ -n $acc && $eacc == "$acc" ]] && ok "eval accuracy $eacc = train's test_acc" ||
    fail "eval accuracy '$eacc', train's test_acc '$acc'"
"$exe" eval --model m.st --data "$mnist" --json >eval.json 2>&1 || fail "eval --json"
correct=$($py - <<'PY' 2>&1
import json
e = json.load(open("eval.json"))
conf = e["confusion"]
assert len(conf) == 10 and all(len(r) == 10 for r in conf), "confusion is not 10x10"
assert sum(map(sum, conf)) == e["samples"] == 10000, "confusion does not sum to the samples"
diag = sum(conf[i][i] for i in range(10))
assert abs(diag / e["samples"] - e["accuracy"]) < 1e-12, "accuracy is not the diagonal"
for c, pc in enumerate(e["per_class"]):
    col = sum(conf[k][c] for k in range(10))
    assert pc["support"] == sum(conf[c]), "support"
    assert abs(pc["precision"] - conf[c][c] / col) < 1e-9, "precision"
    assert abs(pc["recall"] - conf[c][c] / sum(conf[c])) < 1e-9, "recall"
print(diag)
PY
)
[[ $correct =~ ^[0-9]+$ ]] && ok "eval --json consistent: $correct correct" || fail "eval --json: $correct"

# predict on the whole IDX file: the same count of correct answers as eval
"$exe" predict --model m.st --json "$mnist/t10k-images-idx3-ubyte" >pred.json 2>pred.err ||
    fail "predict IDX: $(cat pred.err)"
pcorrect=$($py - "$mnist/t10k-labels-idx1-ubyte" <<'PY' 2>&1
import json, sys
labels = open(sys.argv[1], "rb").read()[8:]
p = json.load(open("pred.json"))
assert len(p) == 10000 and [o["index"] for o in p] == list(range(10000))
print(sum(o["top"][0]["class"] == labels[o["index"]] for o in p))
PY
)
[[ $pcorrect == "$correct" ]] && ok "predict on t10k: $pcorrect correct, as eval" ||
    fail "predict on t10k: '$pcorrect' correct, eval '$correct'"

# test images 0..4 as PGM P5, P2, an inverted P5, and PNG (written by Python's zlib)
$py - "$mnist/t10k-images-idx3-ubyte" <<'PY' || fail "could not write the image files"
import struct, sys, zlib
raw = open(sys.argv[1], "rb").read()
for k in range(5):
    px = raw[16 + 784 * k:16 + 784 * (k + 1)]
    open(f"t{k}.pgm", "wb").write(b"P5\n# test image %d\n28 28\n255\n" % k + px)
    open(f"i{k}.pgm", "wb").write(b"P5 28 28 255\n" + bytes(255 - v for v in px))
    rows = [" ".join(str(v) for v in px[r * 28:(r + 1) * 28]) for r in range(28)]
    open(f"t{k}.p2.pgm", "w").write("P2\n28 28\n255\n" + "\n".join(rows) + "\n")
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    scan = b"".join(b"\0" + px[r * 28:(r + 1) * 28] for r in range(28))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(scan)) + chunk(b"IEND", b""))
    open(f"t{k}.png", "wb").write(png)
PY
"$exe" predict --model m.st "$mnist/t10k-images-idx3-ubyte" 2>/dev/null | head -n 5 |
    sed -E 's/^[^:]*\]:/:/' >idx5.txt
for form in pgm p2.pgm png; do
    "$exe" predict --model m.st t{0,1,2,3,4}.$form 2>&1 | sed -E 's/^[^:]*:/:/' >"f.$form.txt"
    if diff -q idx5.txt "f.$form.txt" >/dev/null; then
        ok "predict on .$form files = predict on the same IDX images"
    else
        fail "predict on .$form differs from IDX:"$'\n'"$(diff idx5.txt "f.$form.txt")"
    fi
done
"$exe" predict --model m.st --invert i{0,1,2,3,4}.pgm 2>&1 | sed -E 's/^[^:]*:/:/' >inv.txt
diff -q idx5.txt inv.txt >/dev/null && ok "--invert undoes an inverted image" ||
    fail "--invert: $(diff idx5.txt inv.txt)"
head -n 1 idx5.txt | grep -Eq '^:  [0-9] \([01]\.[0-9]{6}\)  [0-9] \(' &&
    ok "predict prints the top 3 with probabilities: $(head -n 1 idx5.txt)" ||
    fail "predict output format: $(head -n 1 idx5.txt)"

# pictures: PNG sizes from the IHDR chunk; the SVG through xmllint and rsvg-convert
png_size() { $py -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1" 2>&1; }
"$exe" weights --model m.st --out w.png 2>&1 || fail "weights"
s=$(png_size w.png)
[[ $s =~ ^[0-9]+x[0-9]+$ ]] && ok "weights wrote a ${s} PNG" || fail "weights PNG: $s"
"$exe" eval --model m.st --data "$mnist" --errors err.png --errors-count 16 >/dev/null 2>&1 ||
    fail "eval --errors"
s=$(png_size err.png)
[[ $s =~ ^[0-9]+x[0-9]+$ ]] && ok "eval --errors wrote a ${s} PNG" || fail "errors PNG: $s"
rows=$(($(wc -l <log.csv) - 1))
[[ $rows -eq 2 ]] && ok "the log has a header and 2 rows" || fail "log rows: $rows"
"$exe" plot log.csv --out c.svg 2>&1 || fail "plot"
if command -v xmllint >/dev/null && command -v rsvg-convert >/dev/null; then
    xmllint --noout c.svg && rsvg-convert -o c.png c.svg && ok "plot: the SVG parses and renders ($(png_size c.png))" ||
        fail "plot: the SVG does not parse or render"
elif [[ ${CI:-} == true ]]; then
    fail "xmllint or rsvg-convert missing"
fi
echo "workflow.sh: $fails failed"
[[ $fails -eq 0 ]]

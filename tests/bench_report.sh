#!/usr/bin/env bash
# bench/report.py on records with known numbers: every target judged as the numbers say (met,
# miss, not measured), naive's single timing reused at the second thread count, the SVG well
# formed with one panel per model and thread count, files written with the umask's mode; and
# records it cannot use refused with exit status 1 and no output left behind.
#
# usage: bench_report.sh PYTHON3 bench/report.py bench/targets.json
set -u
py=${1:?usage: bench_report.sh PYTHON3 REPORT_PY TARGETS_JSON}
report=${2:?}
targets=${3:?}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-bench-report.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
checks=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

# epoch and step records: kind model impl batch threads samples/s gflops
rec() {
    printf '{"kind":"%s","model":"%s","impl":"%s","batch":%d,"threads":%d,"unit":"samples/s",' "${@:1:5}"
    printf '"samples_per_s":%s,"gflops":%s,"steps_per_rep":1,"samples_per_rep":%d,' "$6" "$7" "$4"
    printf '"reps":[%s],"median":%s,"min":%s,"max":%s}\n' "$6" "$6" "$6" "$6"
}
{
    echo '{"kind":"header","schema":2,"mode":"full","date_utc":"2026-01-01T00:00:00Z",'`
        `'"commit":"abc1234","wall_seconds":1,"loadavg_before":[0,0,0],"loadavg_after":[0,0,0],'`
        `'"data":{"description":"test"},"options":{"threads":[1,2],"batches":[1,128],'`
        `'"impls":["naive","jacobian","blas"],"reps":1,"step_seconds":0.2,"rep_seconds":2,'`
        `'"tolerance":1e-4,"lr":0.01,"seed":1},"models":[{"name":"linear","label":"784→10"},'`
        `'{"name":"mlp","label":"784-256-10 ReLU"},{"name":"cnn","label":"MNIST CNN",'`
        `'"arch":"conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,flatten,fc:128,relu,'`
        `'dropout:0.5,fc:10","params":1199882,"flops_per_sample":71565312,"batches":[64]}],'`
        `'"machine":{},"blas":{},"build":{}}'
    for t in 1 2; do
        echo '{"kind":"sgemm","threads":'$t',"n":2048,"unit":"GFLOP/s","peak_gflops":'$((100 * t))`
            `',"reps":['$((100 * t))'],"median":'$((100 * t))',"min":'$((100 * t))',"max":'$((100 * t))'}'
    done
    echo '{"kind":"validation","model":"linear","impl":"blas","ref":"naive","batch":128,'`
        `'"threads":1,"grad_rel":1e-7,"tensor_rel":1e-7,"loss_rel":1e-8,"tolerance":1e-4,"ok":true}'
    rec epoch linear naive 128 1 100000 3.1
    rec epoch linear blas 128 1 1300000 40.8 # 13x naive: met
    rec epoch linear blas 128 2 1100000 34.5 # 11x naive, timed once at 1 thread: miss
    rec epoch linear naive 1 1 90000 2.8
    rec epoch linear blas 1 1 80000 2.5
    # 170 of 200 GFLOP/s = 85 %: met; against the sgemm after each epoch, 80 %: miss
    rec epoch mlp blas 128 2 200000 170 | sed 's/}$/,"paired_sgemm":{"reps":[190],"median":190,"min":190,"max":190},"paired_fraction":{"reps":[0.8],"median":0.8,"min":0.8,"max":0.8}}/'
    rec step mlp blas 128 2 210000 171.8
    # cnn at its own batch size 64, which is not in the run's list
    rec epoch cnn naive 64 1 150 0.011
    rec epoch cnn blas 64 2 1800 130 # 12x naive: miss; 130 of 200 GFLOP/s = 65 %: met
} >"$tmp/latest.jsonl"

check "renders" "$py" -S "$report" --targets "$targets" "$tmp/latest.jsonl" >"$tmp/out"
md=$tmp/latest.md
check "784→10 1 thread met at 13×" grep -q '1 thread: blas epochs at least 12× naive | 13.0× | ≥ 12× | .* | met |' "$md"
check "784→10 2 threads missed at 11× (naive reused)" grep -q '2 threads: blas epochs at least 12× naive | 11.0× | ≥ 12× | .* | miss |' "$md"
check "MLP at 85.0 % of the peak met" grep -q '| 85.0 % (170.0 of 200.0 GFLOP/s) | ≥ 85 % | .* | met |' "$md"
check "MLP at 80.0 % of the paired sgemm missed" grep -q \
    '| 80.0 % (median of 1 epochs, each over the sgemm after it; those sgemm: median 190.0 GFLOP/s) | ≥ 85 % | 161.5 GFLOP/s = 85 % of peak | miss |' "$md"
check "targets table on stdout" grep -q '| met |' "$tmp/out"
check "naive marked † at 2 threads" grep -q '| 128 | naive† | 100 000 |' "$md"
check "blas wins from batch 128, loses at batch 1" grep -q \
    '784→10, 1 thread: blas beats naive from batch 128 on (13.0× there); at batch 1 blas runs at 0.89× naive' "$md"
check "CNN 2 threads missed at 12× (naive reused)" grep -q 'MNIST CNN, batch 64, 2 threads: blas epochs at least 20× naive | 12.0× | ≥ 20× | .* | miss |' "$md"
check "CNN at 65.0 % of the peak met" grep -q '| 65.0 % (130.0 of 200.0 GFLOP/s) | ≥ 60 % | .* | met |' "$md"
check "CNN's batch 64 in its table" grep -q '| 64 | blas | 1 800 |' "$md"
check "CNN's FLOPs in the models table" grep -q '| MNIST CNN | `conv3x3:32,.*` | 1 199 882 | 71 565 312 | 64 |' "$md"
check "the markdown links the chart" grep -q '](latest.svg)' "$md"
check "the SVG is XML with 6 panels" "$py" -c '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
panels = [g for g in root.iter("{http://www.w3.org/2000/svg}g")]
sys.exit(0 if len(panels) == 6 else 1)' "$tmp/latest.svg"
check "outputs follow the umask" test "$(stat -c %a "$md")" = "$(printf '%o' $((0666 & ~0$(umask))))"

# What it must refuse, leaving nothing behind.
mkdir "$tmp/bad"
printf '{"kind":"epoch"}\n' >"$tmp/bad/noheader.jsonl"
printf 'not json\n' >"$tmp/bad/garbage.jsonl"
for f in noheader garbage; do
    "$py" -S "$report" --targets "$targets" "$tmp/bad/$f.jsonl" >/dev/null 2>"$tmp/err"
    check "$f.jsonl refused with status 1" test $? -eq 1
done
printf '{bad' >"$tmp/bad/targets.json"
"$py" -S "$report" --targets "$tmp/bad/targets.json" "$tmp/latest.jsonl" --out-dir "$tmp/bad" \
    >/dev/null 2>"$tmp/err"
check "a broken targets file is refused by name" grep -q "bad/targets.json: not a targets file" "$tmp/err"
check "nothing written for refused input" test -z "$(cd "$tmp/bad" && ls -A | grep -v -e '\.jsonl$' -e '^targets.json$')"

echo "$checks checks, $fails failed"
[[ $fails -eq 0 ]]

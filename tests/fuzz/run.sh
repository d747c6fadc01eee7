#!/usr/bin/env bash
# One libFuzzer run of a target: FUZZ_SECONDS (default 30) on one worker, from the generated
# seeds and the committed inputs of corpus/TARGET/, with the sanitizers stopping at the first
# report. New inputs go to WORK/TARGET/corpus, which later runs start from too; a crash, a
# sanitizer report, a leak or a failed property leaves its input in WORK/TARGET/artifacts/.
# Prints one line with the executions; exit status 0 when the time ran out with no finding,
# else 1.
#
# usage: run.sh PATH/TO/fuzz_TARGET TARGET PATH/TO/backprop SOURCE_DIR WORK
set -u
fuzzer=${1:?usage: run.sh FUZZER TARGET BACKPROP SOURCE_DIR WORK}
target=${2:?} exe=${3:?} src=${4:?} work=${5:?}
seconds=${FUZZ_SECONDS:-30}
w=$work/$target
mkdir -p "$w/corpus" "$w/artifacts" || exit 1
rm -rf "$w/seeds"
bash "$src/make_corpus.sh" "$w/seeds" "$exe" "$target" || { echo "make_corpus.sh failed"; exit 1; }
dirs=("$w/corpus" "$w/seeds/$target")
[ -d "$src/corpus/$target" ] && dirs+=("$src/corpus/$target")
args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1
    -artifact_prefix="$w/artifacts/")
[ -f "$src/dict/$target.dict" ] && args+=(-dict="$src/dict/$target.dict")
# UBSan recovers by default: halt_on_error makes its first report a crash libFuzzer records.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1
start=$SECONDS
"$fuzzer" "${args[@]}" "${dirs[@]}" >"$w/log" 2>&1
rc=$? took=$((SECONDS - start))
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$w/log" | tail -n 1)
echo "fuzz-$target: exit $rc, ${execs:-?} executions in ${took} s (${rate:-?}/s)," \
    "corpus $(find "$w/corpus" -type f | wc -l) inputs"
if [ "$rc" -ne 0 ]; then
    tail -n 80 "$w/log"
    ls -l "$w/artifacts"
    exit 1 # not libFuzzer's own status: its 77 for a crash is "skipped" to Meson
fi

#!/usr/bin/env bash
# bp_bench's output directory is checked before anything is timed: a missing directory, a file
# where the directory should be, an over-long path (refused, not cut) and an empty one each
# fail at once, with a message that names the option or the directory, and nothing is written.
#
# usage: bench_out_dir.sh PATH/TO/bp_bench
set -u
exe=${1:?usage: bench_out_dir.sh PATH/TO/bp_bench}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-bench-out.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
checks=0
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect CODE PHRASE ARGS...: exit CODE within a second, PHRASE in stderr, nothing on stdout.
expect() {
    local code=$1 phrase=$2
    shift 2
    local t0 t1 rc err out before=$fails
    t0=$(date +%s%N)
    timeout 20 "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    t1=$(date +%s%N)
    err=$(cat "$tmp/err")
    out=$(cat "$tmp/out")
    local ms=$(((t1 - t0) / 1000000))
    checks=$((checks + 4))
    [[ $rc -eq $code ]] || fail "exit $rc, expected $code: bp_bench ${*:1:4}…"$'\n'"  stderr: $err"
    [[ $err == *"$phrase"* ]] || fail "stderr lacks '$phrase': bp_bench ${*:1:4}…"$'\n'"  stderr: $err"
    [[ -z $out ]] || fail "stdout not empty: $out"
    [[ $ms -lt 1000 ]] || fail "took $ms ms, not under a second: the check came after other work"
    [[ $fails -gt $before ]] || echo "ok: exit $rc in $ms ms: ${err:0:120}"
}

# /nonexistent, as a user would mistype it, when it really does not exist; a path under the
# test's own directory in any case.
if [[ ! -e /nonexistent ]]; then
    expect 1 "--out-dir /nonexistent: No such file or directory" --quick --out-dir /nonexistent
fi
expect 1 "--out-dir $tmp/missing: No such file or directory" --quick --out-dir "$tmp/missing"
touch "$tmp/file"
expect 1 "--out-dir $tmp/file: not a directory" --quick --out-dir "$tmp/file"
long=$tmp/$(printf 'd%.0s' {1..1100})
expect 2 "--out-dir: the path is" --quick --out-dir "$long"
expect 2 "--data: the path is" --quick --data "$long" --out-dir "$tmp"
expect 2 "--out-dir needs a directory" --quick --out-dir ""
# nothing was written anywhere: not even a probe or a temporary was left
checks=$((checks + 1))
left=$(cd "$tmp" && ls -A | grep -v -x -e out -e err -e file | tr '\n' ' ')
[[ -z $left ]] || fail "left in $tmp: $left"

echo "$checks checks, $fails failed"
[[ $fails -eq 0 ]]

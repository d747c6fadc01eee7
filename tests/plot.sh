#!/usr/bin/env bash
# bp_plot_log as other programs see its SVGs and as a caller sees its refusals. Logs are
# written here; `test_plot --plot CSV SVG` makes each call and prints "STATUS MESSAGE".
# Good logs (several epochs and one, with and without a test set, a hostile file name): the SVG
# parses as XML (xmllint), renders (rsvg-convert) to a PNG of its declared size, and holds the
# legend texts and one polyline per series with a point per row. Malformed logs: the status,
# and a one-line message naming the file and the line; no SVG is written.
#
# usage: plot.sh PATH/TO/test_plot
# Without xmllint or rsvg-convert the test is skipped (77), but fails when CI is "true".
set -u
export LC_ALL=C
exe=${1:?usage: plot.sh PATH/TO/test_plot}

missing=()
for tool in xmllint rsvg-convert; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "missing: ${missing[*]} (Debian packages libxml2-utils, librsvg2-bin)"
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: CI must run this test"
        exit 1
    fi
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-plot.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
checks=0
fails=0
header=epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# check DESCRIPTION TEST...: counts a check; a failure when the command TEST... fails.
check() {
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

# write_log FILE EPOCHS WITH_TEST: loss falling from 2.3, accuracy rising to about 0.97.
write_log() {
    {
        echo "$header"
        awk -v n="$2" -v t="$3" 'BEGIN {
            for (e = 1; e <= n; e++) {
                l = 0.1 + 2.2 / e; a = 0.97 - 0.5 / (e * e + 1)
                if (t) test = sprintf("%.9g,%.9g", l + 0.05, a - 0.01); else test = "nan,nan"
                printf "%d,%d,%.9g,%.9g,%s,0.1,1.5,40000\n", e, 600 * e, l, a, test
            }
        }'
    } >"$1"
}

# xp SVG XPATH: the XPath's value (SVG elements are matched by local-name: the default
# namespace has no prefix to use).
xp() { xmllint --xpath "$2" "$1" 2>/dev/null; }

# The PNG's WIDTHxHEIGHT from its IHDR chunk, after checking the signature.
png_size() {
    local b
    read -ra b < <(od -An -tu1 -N24 "$1" | tr "\n" " ")
    [[ ${#b[@]} -eq 24 && "${b[*]:0:4}" == "137 80 78 71" ]] || return 1
    echo "$(((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19]))x$(((b[20] << 24) |
        (b[21] << 16) | (b[22] << 8) | b[23]))"
}

# good NAME EPOCHS WITH_TEST: a log that must plot.
good() {
    local csv=$tmp/$1.csv svg=$tmp/$1.svg png=$tmp/$1.png n=$2 test=$3 out size
    write_log "$csv" "$n" "$test"
    out=$("$exe" --plot "$csv" "$svg" 2>&1)
    check "$1: plotted ($out)" test -s "$svg"
    check "$1: well-formed XML" xmllint --noout "$svg"
    local root="concat(namespace-uri(/*), ' ', local-name(/*), ' ', /*/@version, ' ',
        /*/@width, ' ', /*/@height, ' ', /*/@viewBox)"
    check "$1: SVG 1.1 root with xmlns, size and viewBox" test "$(xp "$svg" "$root")" \
        = "http://www.w3.org/2000/svg svg 1.1 960 440 0 0 960 440"
    check "$1: a title" test -n "$(xp "$svg" "string(/*/*[local-name()='title'])")"
    check "$1: rsvg-convert renders it" rsvg-convert -o "$png" "$svg"
    size=$(png_size "$png")
    check "$1: the PNG is the declared 960x440 (got '$size')" test "$size" = 960x440
    local polylines=2 series_list=train id series pts
    [[ $test == 1 ]] && polylines=4 series_list="train test"
    check "$1: $polylines polylines" \
        test "$(xp "$svg" "count(//*[local-name()='polyline'])")" = $polylines
    for id in loss accuracy; do
        for series in $series_list; do
            pts=$(xp "$svg" "string(//*[local-name()='polyline'][@id='$id-$series']/@points)" |
                wc -w)
            check "$1: $id-$series has $n points (got $pts)" test "$pts" -eq "$n"
        done
    done
    check "$1: legend 'train' in both panels" test \
        "$(xp "$svg" "count(//*[local-name()='text'][.='train'])")" = 2
    if [[ $test == 1 ]]; then
        check "$1: legend 'test' in both panels" test \
            "$(xp "$svg" "count(//*[local-name()='text'][.='test'])")" = 2
    else
        check "$1: legend 'no test set' in both panels" test \
            "$(xp "$svg" "count(//*[local-name()='text'][.='no test set'])")" = 2
    fi
    check "$1: one of 'test' and 'no test set' in each legend" test \
        "$(xp "$svg" "count(//*[local-name()='text'][.='test' or .='no test set'])")" = 2
}

good several 10 1
good several-no-test 12 0
good one-epoch 1 1
good one-epoch-no-test 1 0
good many 200 1

# A file name with markup characters and a byte that is not UTF-8: still XML.
name=$'we&ird <name> "\xff"'
write_log "$tmp/$name.csv" 3 1
"$exe" --plot "$tmp/$name.csv" "$tmp/name.svg" >/dev/null
check "hostile file name: well-formed XML" xmllint --noout "$tmp/name.svg"
check "hostile file name: escaped in the title" test \
    "$(xp "$tmp/name.svg" "string(/*/*[local-name()='title'])")" \
    = $'Training curves: we&ird <name> "\xef\xbf\xbd".csv'

# refused FILE STATUS PHRASE: bp_plot_log fails with STATUS and a one-line message that
# contains PHRASE, and writes no SVG.
refused() {
    local csv=$1 status=$2 phrase=$3 out rc
    rm -f "$tmp/bad.svg"
    out=$(timeout 20 "$exe" --plot "$csv" "$tmp/bad.svg" 2>&1)
    rc=$?
    checks=$((checks + 1))
    if [[ $rc -ne 1 ]]; then
        fail "exit $rc, expected 1: $csv"$'\n'"  $out"
    elif [[ ${out%% *} != "$status" ]]; then
        fail "status ${out%% *}, expected $status: $out"
    elif [[ $out != *"$phrase"* || $out == *$'\n'* ]]; then
        fail "message is not one line with '$phrase': $out"
    elif [[ -e $tmp/bad.svg ]]; then
        fail "an SVG was written for $csv"
    else
        echo "ok: $out"
    fi
}

# bad NAME LINE PHRASE CONTENT: CONTENT (printf %b) as NAME.csv must be refused as BP_ERR_FORMAT
# (-2) with "NAME.csv:LINE: PHRASE".
bad() {
    printf '%b' "$4" >"$tmp/$1.csv"
    refused "$tmp/$1.csv" -2 "$tmp/$1.csv:$2: $3"
}

h="$header\n"
r1="1,600,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"
r2="2,1200,1.3,0.7,1.4,0.69,0.1,1.5,40000\n"
bad empty 1 "no rows after the header (the file is empty)" ""
bad header-only 2 "no rows after the header" "$h"
bad header-wrong 1 "not a training log" "epoch,step,loss\n$r1"
bad header-space 1 "not a training log" "$header \n$r1"
bad fields-8 3 "8 fields, expected 9" "$h${r1}2,1200,1.3,0.7,1.4,0.69,0.1,1.5\n"
bad fields-10 2 "10 fields, expected 9" "${h}1,600,2.3,0.5,2.4,0.49,0.1,1.5,40000,7\n"
bad blank-line 3 "1 fields, expected 9" "$h$r1\n$r2"
bad not-number 3 "train_loss 'abc' is not a number" "$h${r1}2,1200,abc,0.7,1.4,0.69,0.1,1.5,40000\n"
bad empty-field 2 "step '' is not a number" "${h}1,,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"
bad leading-space 2 "epoch ' 1' is not a number" "$h 1,600,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"
bad trailing-junk 2 "lr '0.1x' is not a number" "${h}1,600,2.3,0.5,2.4,0.49,0.1x,1.5,40000\n"
bad control-char 2 "seconds '1?5' is not a number" "${h}1,600,2.3,0.5,2.4,0.49,0.1,1\e5,40000\n"
bad epoch-repeat 3 "epoch 1 does not follow epoch 1" "$h$r1$r1"
bad epoch-decrease 3 "epoch 1 does not follow epoch 2" "$h$r2$r1"
bad epoch-fraction 2 "epoch 1.5 is not an integer" "${h}1.5,600,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"
bad epoch-zero 2 "epoch 0 is not an integer from 1" "${h}0,600,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"
bad acc-over-1 2 "train_acc 1.5 is outside 0 to 1" "${h}1,600,2.3,1.5,2.4,0.49,0.1,1.5,40000\n"
bad loss-negative 3 "test_loss -1 is outside 0 to" "$h${r1}2,1200,1.3,0.7,-1,0.69,0.1,1.5,40000\n"
bad loss-nan 2 "train_loss nan is outside 0 to" "${h}1,600,nan,0.5,2.4,0.49,0.1,1.5,40000\n"
bad loss-inf 2 "train_loss inf is outside 0 to" "${h}1,600,inf,0.5,2.4,0.49,0.1,1.5,40000\n"
bad test-half-nan 2 "test_loss nan is outside 0 to" "${h}1,600,2.3,0.5,nan,0.49,0.1,1.5,40000\n"
bad test-dropped 3 "test_loss and test_acc are nan here but not on line 2" \
    "$h${r1}2,1200,1.3,0.7,nan,nan,0.1,1.5,40000\n"
bad test-appears 3 "test_loss and test_acc are numbers here but not on line 2" \
    "${h}1,600,2.3,0.5,nan,nan,0.1,1.5,40000\n$r2"
bad long-line 3 "line longer than 1023 bytes" "$h$r1$(printf '%02000d' 0)\n"
bad nul-byte 2 "NUL byte" "${h}1,600\0,2.3,0.5,2.4,0.49,0.1,1.5,40000\n"

mkfifo "$tmp/fifo.csv"
refused "$tmp/fifo.csv" -2 "$tmp/fifo.csv: not a regular file"
mkdir "$tmp/dir.csv"
refused "$tmp/dir.csv" -2 "$tmp/dir.csv: not a regular file"
refused "$tmp/missing.csv" -1 "$tmp/missing.csv: cannot open: No such file or directory"

echo "$checks checks, $fails failed"
[[ $fails -eq 0 ]]

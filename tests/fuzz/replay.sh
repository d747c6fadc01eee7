#!/usr/bin/env bash
# A fuzz target's properties on its seeds, outside libFuzzer: generates the seeds
# (make_corpus.sh) and runs the replay driver over them and the committed inputs of
# corpus/TARGET/ (regressions: each input a finding once made fail).
#
# usage: replay.sh PATH/TO/replay_TARGET TARGET PATH/TO/backprop SOURCE_DIR
set -u
driver=${1:?usage: replay.sh DRIVER TARGET BACKPROP SOURCE_DIR}
target=${2:?} exe=${3:?} src=${4:?}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-replay.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
bash "$src/make_corpus.sh" "$tmp" "$exe" "$target" || { echo "make_corpus.sh failed"; exit 1; }
dirs=("$tmp/$target")
[ -d "$src/corpus/$target" ] && dirs+=("$src/corpus/$target")
echo "replay_$target on ${dirs[*]}"
"$driver" "${dirs[@]}"

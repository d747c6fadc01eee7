#!/usr/bin/env bash
# doc-names: docs/derivation.md points students from formulas to code, so every code name it
# cites must exist. Checked, each failure named:
#   - functions: an inline code span that starts with name( must name something the code in
#     src/ or include/ declares, defines or calls as name(…);
#   - identifiers: every snake_case word (bp_grad, xent_backward_dy, max_rel_err, FLT_MIN) and
#     every ->member must occur in that code. A word counts as code when each of its parts has
#     at least two characters and one has three, or when it starts with bp_ or BP_: that keeps
#     the formulas' subscripts (y_c, labels_i, dW_kj) from being taken for code;
#   - files: every src/, include/, tests/, bench/, data/ or docs/ path and every markdown link
#     must exist inside the repository, and a bare foo.c or foo.h must be one of its files (or a
#     system header the code includes); nothing may point outside the repository;
#   - src/naive.c, the independent reference, must call none of the batched or fused path's
#     functions for the forward pass, the softmax, the loss or their backward.
# "The code" has its comments removed: a name that survives only in a comment is not in the code.
set -u
root=${1:?usage: doc_names.sh SOURCE_ROOT}
doc=$root/docs/derivation.md
status=0
fail() {
    echo "FAIL: $*"
    status=1
}

[[ -f $doc ]] || { echo "FAIL: $doc not found"; exit 1; }

strip_comments() {
    sed -z -e 's#/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/# #g' -e 's#//[^\n]*##g'
}
code=$(find "$root/src" "$root/include" -name '*.[ch]' -print0 | sort -z | xargs -0 cat |
    strip_comments)
[[ -n $code ]] || { echo "FAIL: no code found under $root/src and $root/include"; exit 1; }

missing() { # kind name
    fail "docs/derivation.md cites $1 '$2', which is not in src/ or include/"
}

# The doc without its fenced blocks, for inline code spans (a fence's ``` would pair wrongly).
prose=$(awk '/^```/ { fenced = !fenced; next } !fenced' "$doc")
spans=$(grep -oP '`[^`\n]+`' <<<"$prose" | sed 's/^`//; s/`$//')

checked=0
# Functions: spans that start with name(
while IFS= read -r f; do
    [[ -z $f ]] && continue
    checked=$((checked + 1))
    grep -qP "(?<![A-Za-z0-9_])\Q$f\E\s*\(" <<<"$code" || missing function "$f"
done < <(grep -oP '^[A-Za-z_][A-Za-z0-9_]*(?=\()' <<<"$spans" | sort -u)

# snake_case identifiers anywhere in the doc, formulas and fenced blocks included (not the
# stem of a file name such as test_impls.c: the file checks below cover those)
while IFS= read -r id; do
    [[ -z $id ]] && continue
    if [[ $id != [bB][pP]_* ]]; then
        [[ _$id =~ _[A-Za-z0-9](_|$) ]] && continue       # a one-character part: a subscript
        [[ $id =~ [A-Za-z0-9]{3} ]] || continue           # only two-character parts: W_oi
    fi
    checked=$((checked + 1))
    grep -qP "(?<![A-Za-z0-9_])\Q$id\E(?![A-Za-z0-9_])" <<<"$code" || missing identifier "$id"
done < <(grep -oP '(?<![\\A-Za-z0-9_])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![A-Za-z0-9_]|\.[A-Za-z])' \
    "$doc" | sort -u)

# struct members: m->grads, w->V, w->D[0], …
while IFS= read -r mb; do
    [[ -z $mb ]] && continue
    checked=$((checked + 1))
    grep -qP "(->|\.)\Q$mb\E(?![A-Za-z0-9_])" <<<"$code" || missing member "$mb"
done < <(grep -oP '(?<=->)[A-Za-z_][A-Za-z0-9_]*' "$doc" | sort -u)

# Paths inside the repository, with or without the ../ of a link from docs/
while IFS= read -r p; do
    [[ -z $p ]] && continue
    checked=$((checked + 1))
    [[ -e $root/${p#../} ]] || fail "docs/derivation.md cites file '$p', which does not exist"
done < <(grep -oP '(?<![A-Za-z0-9_./-])(?:\.\./)?(?:src|include|tests|bench|data|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_]' \
    "$doc" | sort -u)

# Markdown links: relative to docs/, existing, inside the repository
realroot=$(cd "$root" && pwd -P)
while IFS= read -r target; do
    [[ -z $target || $target == '#'* ]] && continue
    checked=$((checked + 1))
    t=${target%%#*}
    if [[ $t == *://* || $t == /* ]]; then
        fail "docs/derivation.md links to '$target', outside the repository"
        continue
    fi
    full=$root/docs/$t
    if [[ ! -e $full ]]; then
        fail "docs/derivation.md links to '$target', which does not exist"
        continue
    fi
    real=$(cd "$(dirname "$full")" && pwd -P)
    [[ $real == "$realroot" || $real == "$realroot"/* ]] ||
        fail "docs/derivation.md links to '$target', outside the repository"
done < <(grep -oP '\]\(\K[^)\s]+' "$doc" | sort -u)

# Bare file names: foo.c must be a file of the project; foo.h too, or a header the code includes
while IFS= read -r f; do
    [[ -z $f ]] && continue
    checked=$((checked + 1))
    if [[ -n $(find "$root/src" "$root/include" "$root/tests" "$root/bench" -name "$f" -print -quit) ]]; then
        continue
    fi
    if [[ $f == *.h ]] && grep -rqF "#include <$f>" "$root/src"; then
        continue
    fi
    fail "docs/derivation.md cites file '$f', which is not in the repository"
done < <(grep -oP '(?<![A-Za-z0-9_./-])[A-Za-z0-9_]+\.[ch](?![A-Za-z0-9_])' "$doc" | sort -u)

# Documents the repository does not have, and places outside it
while IFS= read -r hit; do
    fail "docs/derivation.md points outside the repository: $hit"
done < <(grep -nE 'STYLE\.md|DESIGN\.md|\.\./\.\.|\.\./shared|/work/|slides\.txt' "$doc")

# naive.c is the independent reference: it writes its own loops for everything below.
naive=$(strip_comments <"$root/src/naive.c")
for f in softmax_xent_forward softmax_xent_backward xent_backward_dy softmax_jacobian \
    softmax_backward_jacobian linear_forward linear_backward model_forward act_forward \
    act_backward gemm cblas_sgemm; do
    grep -qP "(?<![A-Za-z0-9_])$f\s*\(" <<<"$naive" &&
        fail "src/naive.c calls $f(): the naive reference must not share the batched path's code"
done

if ((status == 0)); then
    echo "ok: $checked names, files and links cited by docs/derivation.md exist;" \
        "src/naive.c shares none of the batched path's functions"
fi
exit $status

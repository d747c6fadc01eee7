#!/usr/bin/env bash
# A new user's install, in a DESTDIR: `meson install` puts the library, the headers, the .pc
# file and the tool where a stock Debian finds them (pkg-config's default path, ld.so.conf);
# the shared library exports only bp_ symbols; the README's C example compiles against the
# installed header and .pc file, links the installed library and prints the same final line as
# `backprop train` with the defaults.
#
# usage: install.sh BUILD_DIR SOURCE_DIR DATA_ROOT
set -u
build=${1:?usage: install.sh BUILD_DIR SOURCE_DIR DATA_ROOT}
src=${2:?source dir}
data=${3:?data root}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-test-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

dest=$tmp/root
if ! meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/log" 2>&1; then
    echo "FAIL: meson install: $(cat "$tmp/log")"
    exit 1
fi
ok "meson install --destdir"

prefix=$(meson introspect "$build" --buildoptions | /usr/bin/env python3 -c \
    'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print(o["prefix"]); print(o["libdir"])')
libdir_rel=$(sed -n 2p <<<"$prefix")
prefix=$(sed -n 1p <<<"$prefix")
libdir=$prefix/$libdir_rel
[[ $libdir_rel = /* ]] && libdir=$libdir_rel

pc=$dest$libdir/pkgconfig/backprop.pc
[[ -f $pc ]] && ok "backprop.pc in $libdir/pkgconfig" || fail "no $pc"
# Found without PKG_CONFIG_PATH once installed for real: its directory is on the default path.
if pkg-config --variable pc_path pkg-config | tr ':' '\n' | grep -qx "$libdir/pkgconfig"; then
    ok "$libdir/pkgconfig is on pkg-config's default path"
else
    fail "$libdir/pkgconfig is not on pkg-config's default path ($(pkg-config --variable pc_path pkg-config))"
fi
# Found by the dynamic loader once ldconfig has run: its directory is in ld.so.conf.
if cat /etc/ld.so.conf /etc/ld.so.conf.d/*.conf 2>/dev/null | grep -qx "$libdir"; then
    ok "$libdir is in ld.so.conf (ldconfig after install makes it found)"
else
    fail "$libdir is not in /etc/ld.so.conf{,.d}: the loader would not find libbackprop"
fi

so=$(ls "$dest$libdir"/libbackprop.so.* 2>/dev/null | head -n 1)
if [[ -z $so ]]; then
    fail "no libbackprop.so.* in $dest$libdir"
else
    soname=$(objdump -p "$so" | awk '$1 == "SONAME" {print $2}')
    [[ $soname =~ ^libbackprop\.so\.[0-9]+$ ]] && ok "SONAME $soname" || fail "SONAME '$soname'"
    others=$(nm -D --defined-only "$so" | awk '{print $3}' |
             grep -v -E '^(bp_|_init$|_fini$|_edata$|_end$|__bss_start$)')
    if [[ -z $others ]]; then
        ok "only bp_ symbols exported ($(nm -D --defined-only "$so" | grep -c ' T bp_') functions)"
    else
        fail "exported symbols that are not bp_: $(echo $others)"
    fi
fi

export LD_LIBRARY_PATH=$dest$libdir
tool=$dest$prefix/bin/backprop
version=$(meson introspect "$build" --projectinfo | /usr/bin/env python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
out=$("$tool" --version 2>&1)
[[ $out == "backprop $version" ]] && ok "installed tool starts: $out" || fail "installed tool: '$out'"
# It must be the installed library it runs on, not the build tree's (no build rpath left).
if ldd "$tool" | grep -q "$dest$libdir/libbackprop.so"; then
    ok "the installed tool loads the installed library"
else
    fail "the installed tool does not load $dest$libdir: $(ldd "$tool" | grep backprop)"
fi

# The README's example, exactly as the README shows it.
awk '/<!-- readme-example/ {f = 1; next} f && /^```c/ {g = 1; next} g && /^```/ {exit} g {print}' \
    "$src/README.md" >"$tmp/ex.c"
[[ -s $tmp/ex.c ]] || { fail "no example found in README.md"; exit 1; }
if PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest \
   cc -std=c11 -Wall -Wextra -Werror "$tmp/ex.c" \
      $(PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags --libs backprop) \
      -o "$tmp/ex" 2>"$tmp/cc.log"; then
    ok "README example compiles against the installed header and backprop.pc"
else
    fail "README example does not compile: $(cat "$tmp/cc.log")"
    exit 1
fi

# The README's in-tree command too, word for word, from the top of the source tree.
intree=$(grep -m1 '^cc -std=c11 -Iinclude -Ibuild ex.c' "$src/README.md")
if [[ -z $intree ]]; then
    fail "README.md has no in-tree build command"
elif (cd "$tmp" && mv ex ex.installed && ln -sf "$src/include" include && ln -sfn "$(realpath "$build")" build &&
      eval "${intree%% && ./ex}" 2>"$tmp/intree.log" && [[ -x ex ]]); then
    ok "README's in-tree command builds the example: $intree"
else
    fail "README's in-tree command fails: $intree: $(cat "$tmp/intree.log")"
fi

# Same final line as the tool with defaults (the timing keys apart).
mnist=$data/mnist
if [[ ! -e $mnist/train-images-idx3-ubyte && ! -e $mnist/train-images-idx3-ubyte.gz ]]; then
    if [[ ${CI:-} == true ]]; then
        fail "$mnist is missing (data/fetch.sh); CI needs it"
    else
        echo "SKIP: $mnist missing (data/fetch.sh): the C-vs-CLI comparison did not run"
        [[ $fails -eq 0 ]] && exit 77
    fi
else
    c_line=$("$tmp/ex.installed" "$mnist" 2>&1)
    cli_line=$("$tool" train --data "$mnist" --quiet 2>&1 | sed -E 's/ seconds=.*//')
    if [[ -n $c_line && $c_line == "$cli_line" ]]; then
        ok "C example and backprop train agree: $c_line"
    else
        fail "C example: '$c_line'; backprop train: '$cli_line'"
    fi
fi
echo "install.sh: $checks checks, $fails failed"
[[ $fails -eq 0 ]]

#!/usr/bin/env bash
# Writes the fuzz targets' seed inputs into OUT/TARGET/, generated here rather than committed
# (the repository holds no binary seeds): small valid IDX files raw and gzip, data-set inputs
# in fuzz_dataset's layout, model files and checkpoints trained by the tool itself on a tiny
# generated set, PGM and PNG images of every kind the reader converts, training logs, and
# command lines. The seeds are valid inputs on purpose: the fuzzer's mutations of valid files
# reach deeper than random bytes do.
#
# usage: make_corpus.sh OUT PATH/TO/backprop [TARGET...]   (default: every target)
set -euo pipefail
out=${1:?usage: make_corpus.sh OUT PATH/TO/backprop [TARGET...]}
exe=${2:?usage: make_corpus.sh OUT PATH/TO/backprop [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx idx_gz dataset model image plot cli)
py=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bp-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Bytes as octal escapes in printf's format string, on purpose.
# shellcheck disable=SC2059
byte() { printf "\\$(printf %03o "$(($1 & 255))")"; }
be32() { byte $(($1 >> 24)); byte $(($1 >> 16)); byte $(($1 >> 8)); byte "$1"; }
le16() { byte "$1"; byte $(($1 >> 8)); }

# images N ROWS COLS: an IDX image file on stdout, pixels depending on the sample's class.
images() {
    printf '\0\0\10\3'
    be32 "$1"; be32 "$2"; be32 "$3"
    for ((i = 0; i < $1; i++)); do
        for ((k = 0; k < $2 * $3; k++)); do byte $(((i % 10) * 25 + k * 37)); done
    done
}
# labels N: classes 0, 1, ..., 9, 0, ...
labels() {
    printf '\0\0\10\1'
    be32 "$1"
    for ((i = 0; i < $1; i++)); do byte $((i % 10)); done
}

seeds_idx() {
    local d=$out/idx
    mkdir -p "$d"
    images 3 2 2 >"$d/images-3x2x2"
    images 1 1 1 >"$d/images-1x1x1"
    images 4 3 2 >"$d/images-4x3x2"
    labels 5 >"$d/labels-5"
    labels 1 >"$d/labels-1"
    for f in images-3x2x2 labels-5; do gzip -9 -n -c "$d/$f" >"$d/$f.gz"; done
    gzip -1 -c "$d/images-4x3x2" >"$d/images-4x3x2-named.gz" # FNAME in the header
    # two gzip members, split inside the header
    { head -c 7 "$d/images-3x2x2" | gzip -n -c; tail -c +8 "$d/images-3x2x2" | gzip -n -c; } \
        >"$d/images-two-members.gz"
}

seeds_idx_gz() {
    local d=$out/idx_gz
    mkdir -p "$d"
    images 3 2 2 >"$d/images-3x2x2"
    images 2 5 1 >"$d/images-2x5x1"
    labels 5 >"$d/labels-5"
    labels 12 >"$d/labels-12"
}

# dataset FLAGS TRAIN_N TEST_N ROWS COLS: fuzz_dataset's layout (flags, three 16-bit lengths,
# then train images, train labels, test images, test labels).
dataset() {
    local f=$tmp/ds
    images "$2" "$4" "$5" >"$f.0"
    labels "$2" >"$f.1"
    images "$3" "$4" "$5" >"$f.2"
    labels "$3" >"$f.3"
    byte "$1"
    for k in 0 1 2; do le16 "$(wc -c <"$f.$k")"; done
    cat "$f.0" "$f.1" "$f.2" "$f.3"
}

seeds_dataset() {
    local d=$out/dataset
    mkdir -p "$d"
    # flags: bits 0-3 gzip per file, bit 4 hidden layer, bits 5-6 impl, bit 7 zero init,
    # flags mod 3 the activation (relu, tanh, sigmoid)
    dataset 0x00 6 3 2 2 >"$d/raw-softmax-blas"
    dataset 0x0f 6 3 2 2 >"$d/gzip-softmax-blas"
    dataset 0x11 10 4 3 3 >"$d/hidden-sigmoid-blas"
    dataset 0x34 8 2 2 2 >"$d/hidden-tanh-jacobian"
    dataset 0x51 9 2 1 4 >"$d/hidden-relu-naive"
    dataset 0x90 12 5 2 3 >"$d/hidden-relu-zero-init"
    dataset 0xa5 3 3 2 2 >"$d/gzip-mixed-softmax-jacobian-zero-init"
}

seeds_model() {
    local d=$out/model data=$tmp/tiny
    mkdir -p "$d" "$data"
    images 20 2 2 >"$data/train-images-idx3-ubyte"
    labels 20 >"$data/train-labels-idx1-ubyte"
    images 10 2 2 >"$data/t10k-images-idx3-ubyte"
    labels 10 >"$data/t10k-labels-idx1-ubyte"
    local t=("$exe" train --data "$data" --quiet --batch 5 --threads 1)
    "${t[@]}" --epochs 2 --save "$d/softmax.st" >/dev/null
    "${t[@]}" --epochs 2 --hidden 3 --act tanh --optim adam --save "$d/mlp-adam.st" >/dev/null
    "${t[@]}" --epochs 3 --stop-after 1 --hidden 2,2 --act sigmoid --optim momentum \
        --no-shuffle --checkpoint "$d/ckpt-momentum-noshuffle.st" >/dev/null
    "${t[@]}" --epochs 3 --stop-after 1 --optim adam --checkpoint "$d/ckpt-adam.st" >/dev/null
    "${t[@]}" --epochs 2 --optim nesterov --lr-schedule step --init uniform \
        --checkpoint "$d/ckpt-nesterov.st" --save "$d/nesterov.st" >/dev/null
    # A NaN weight under a correct CRC: the check behind the CRC gets a seed of its own.
    "$py" - "$d/softmax.st" "$d/softmax-nan-weight.st" <<'EOF'
import json, struct, sys, zlib
raw = open(sys.argv[1], 'rb').read()
hlen = struct.unpack('<Q', raw[:8])[0]
head, data = raw[8:8 + hlen].decode(), bytearray(raw[8 + hlen:])
begin = json.loads(head)['0.weight']['data_offsets'][0]
data[begin:begin + 4] = struct.pack('<I', 0x7fc00000)
old = json.loads(head)['__metadata__']['crc32']
head = head.replace('"crc32":"%s"' % old, '"crc32":"%08x"' % zlib.crc32(bytes(data)))
open(sys.argv[2], 'wb').write(raw[:8] + head.encode() + bytes(data))
EOF
}

seeds_image() {
    local d=$out/image
    mkdir -p "$d"
    printf 'P2\n# a comment\n3 2\n255\n0 128 255\n 1 2 3\n' >"$d/p2-8bit.pgm"
    printf 'P2 2 2 65535 0 65535 257 32768' >"$d/p2-16bit.pgm"
    printf 'P2\n1 1\n1\n1\n' >"$d/p2-maxval1.pgm"
    { printf 'P5\n2 3\n255\n'; for v in 0 50 100 150 200 255; do byte $v; done; } >"$d/p5-8bit.pgm"
    { printf 'P5 #c\n2 1 1000\n'; byte 3; byte 232; byte 0; byte 7; } >"$d/p5-16bit.pgm"
    { printf 'P5\n4 1\n15\n'; for v in 0 5 10 15; do byte $v; done; } >"$d/p5-maxval15.pgm"
    "$py" - "$d" <<'EOF'
import struct, sys, zlib
out = sys.argv[1]

def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

def pack(samples, depth):
    """One row of samples of depth bits, packed big-endian as PNG stores them."""
    if depth == 16:
        return b''.join(struct.pack('>H', s) for s in samples)
    if depth == 8:
        return bytes(samples)
    per = 8 // depth
    row = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for j, s in enumerate(samples[i:i + per]):
            b |= s << (8 - depth * (j + 1))
        row.append(b)
    return bytes(row)

def png(name, w, h, depth, ctype, rows, extra=b'', interlace=0):
    ihdr = struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, interlace)
    data = b''.join(b'\0' + pack(r, depth) for r in rows)
    body = chunk(b'IHDR', ihdr) + extra + chunk(b'IDAT', zlib.compress(data)) + chunk(b'IEND', b'')
    open('%s/%s.png' % (out, name), 'wb').write(b'\x89PNG\r\n\x1a\n' + body)

def grid(w, h, ch, top):
    return [[(x * 37 + y * 91 + c * 53) % (top + 1) for x in range(w) for c in range(ch)]
            for y in range(h)]

png('gray1', 9, 2, 1, 0, grid(9, 2, 1, 1))
png('gray4', 3, 2, 4, 0, grid(3, 2, 1, 15))
png('gray8', 4, 3, 8, 0, grid(4, 3, 1, 255))
png('gray16', 2, 2, 16, 0, grid(2, 2, 1, 65535))
png('gray8-trns', 3, 1, 8, 0, [[0, 128, 255]], chunk(b'tRNS', struct.pack('>H', 128)))
png('rgb8', 3, 2, 8, 2, grid(3, 2, 3, 255))
png('rgb16', 2, 1, 16, 2, grid(2, 1, 3, 65535))
png('gray-alpha8', 2, 2, 8, 4, grid(2, 2, 2, 255))
png('rgba8', 2, 2, 8, 6, grid(2, 2, 4, 255))
png('rgba16', 1, 2, 16, 6, grid(1, 2, 4, 65535))
plte = chunk(b'PLTE', bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255]))
png('palette4-trns', 5, 2, 4, 3, grid(5, 2, 1, 3), plte + chunk(b'tRNS', bytes([0, 128])))
png('palette8', 2, 2, 8, 3, grid(2, 2, 1, 3), plte)
png('text-gama', 2, 1, 8, 0, [[10, 20]],
    chunk(b'gAMA', struct.pack('>I', 45455)) + chunk(b'tEXt', b'Comment\0seed'))

# Adam7: each pass's pixels as rows of their own, with a filter byte each.
def adam7(name, w, h):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    pix = lambda x, y: [(x * 40 + y * 15) % 256, (x * 7) % 256, (y * 90) % 256]
    data = b''
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if len(xs) and len(ys):
            for y in ys:
                data += b'\0' + bytes(v for x in xs for v in pix(x, y))
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 1)
    body = chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(data)) + chunk(b'IEND', b'')
    open('%s/%s.png' % (out, name), 'wb').write(b'\x89PNG\r\n\x1a\n' + body)

adam7('rgb8-adam7', 5, 3)
EOF
}

seeds_plot() {
    local d=$out/plot data=$tmp/tiny-plot
    mkdir -p "$d" "$data"
    images 20 2 2 >"$data/train-images-idx3-ubyte"
    labels 20 >"$data/train-labels-idx1-ubyte"
    images 10 2 2 >"$data/t10k-images-idx3-ubyte"
    labels 10 >"$data/t10k-labels-idx1-ubyte"
    "$exe" train --data "$data" --quiet --epochs 4 --batch 5 --threads 1 --log "$d/train.csv" >/dev/null
}

# Command lines: one a line here, spaces becoming the NULs that fuzz_cli splits at.
seeds_cli() {
    local d=$out/cli i=0 line
    mkdir -p "$d"
    while IFS= read -r line; do
        i=$((i + 1))
        printf '%s' "$line" | tr ' ' '\0' >"$d/argv-$i"
    done <<'EOF'
train --epochs 3 --batch 6
train --hidden 8,4 --act tanh --init normal --optim adam --lr 0.002 --lr-schedule step --lr-step 2 --lr-gamma 0.5
train --optim momentum --momentum 0.8 --weight-decay 1e-4 --lr-min 0.01 --seed 42 --no-shuffle --impl naive --threads 1
train --optim nesterov --lr-schedule cosine --lr 0.1 --lr-min 0.2
train --save m.st --checkpoint c.st --checkpoint-every 2 --stop-after 1 --log l.csv --quiet
train --resume @ckpt --epochs 5 --threads 1
train --resume @ckpt --lr 0.1
train --resume @model
train --help
train --version
train --epochs
train --lr nan --epochs 0
train --hidden none --batch 65537
eval --model @model --json --errors e.png --errors-count 10 --threads 2
eval --model @ckpt
eval --model missing.st
eval --help
eval --errors-count 0 --model @model
gradcheck --hidden 16 --act sigmoid --impl jacobian --step 1e-4 --tol 0.05 --seed 3
gradcheck --tol 1e-12
gradcheck --impl naive --act relu --entries 0
gradcheck --step 1e-38
gradcheck --help
opt 12 -5 +7 0 007 2147483647 -2147483648 2147483648 1e-3 0.5 1e-50 inf nan 0x10 256,128 none 18446744073709551615 18446744073709551616
EOF
}

for t in "${targets[@]}"; do
    case $t in
    idx | idx_gz | dataset | model | image | plot | cli) "seeds_$t" ;;
    *) echo "make_corpus.sh: unknown target '$t'" >&2; exit 2 ;;
    esac
done

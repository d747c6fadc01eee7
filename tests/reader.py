"""The Python reader of docs/model-format.md against the CLI's own evaluation.

usage: reader.py DOC MODEL DATA_DIR TEST_ACC [CHECKPOINT]

Runs the code blocks of DOC that are marked "<!-- tests/reader.py runs this block -->",
character for character, so the documented reader and this test cannot drift apart. Then it
reads MODEL with that reader, reads DATA_DIR's t10k IDX files with numpy (code of its own, not
the library's), predicts every test image with the documented predict(), and compares the
number of correct predictions with TEST_ACC, the test_acc= that `backprop train` printed for
the same model. If CHECKPOINT is given, that file is read too, and its checkpoint tensors are
checked. Exit status 0: pass, 1: fail.
"""
import gzip
import json
import os
import re
import sys
import zlib

import numpy as np

MARK = "<!-- tests/reader.py runs this block -->"


def doc_blocks(doc_path):
    """The marked ```python blocks of the document, in order."""
    text = open(doc_path, encoding="utf-8").read()
    blocks = re.findall(re.escape(MARK) + r"\n```python\n(.*?)\n```\n", text, re.S)
    if len(blocks) != text.count(MARK):
        sys.exit(f"FAIL: {doc_path}: a '{MARK}' line is not directly followed by a python block")
    if len(blocks) < 2:
        sys.exit(f"FAIL: {doc_path}: expected the reader and predict blocks, found {len(blocks)}")
    return blocks


def idx(path):
    """An IDX file (raw or .gz) as a numpy array of its shape."""
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            raw = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
            break
    else:
        sys.exit(f"FAIL: {path} (or .gz) does not exist")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"FAIL: {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    doc, model, data_dir, test_acc = sys.argv[1:5]
    env = {}
    for block in doc_blocks(doc):
        exec(compile(block, doc + " (marked block)", "exec"), env)
    read_model, predict = env["read_model"], env["predict"]

    tensors, meta = read_model(model)
    fails = 0
    names = sorted(tensors)
    print(f"read {model}: tensors {names}, activation {meta['activation']}, epoch {meta['epoch']}")
    # The reader must hand back what the format promises: F32 arrays of the arch's shapes, and
    # a data section whose CRC the header states.
    raw = open(model, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    if f"{zlib.crc32(raw[8 + n:]):08x}" != meta["crc32"]:
        print("FAIL: the CRC-32 of the data section is not the header's crc32")
        fails += 1
    arch = json.loads(meta["arch"])
    linear = [layer for layer in arch["layers"] if layer["type"] == "linear"]
    for k, layer in enumerate(linear):
        w, b = tensors[f"{2 * k}.weight"], tensors[f"{2 * k}.bias"]
        if w.shape != (layer["out"], layer["in"]) or b.shape != (layer["out"],) or \
                w.dtype != np.float32 or b.dtype != np.float32:
            print(f"FAIL: layer {2 * k}: shapes {w.shape} {b.shape}, dtypes {w.dtype} {b.dtype}")
            fails += 1

    images = idx(os.path.join(data_dir, "t10k-images-idx3-ubyte"))
    labels = idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte"))
    pred = predict(tensors, meta, images)
    correct = int((pred == labels).sum())
    # The CLI prints test_acc with 4 decimals, and 10000 test images make that exactly the count
    # of correct predictions over 10000: compare counts, not rounded fractions.
    expected = round(float(test_acc) * len(labels))
    # The same model in float64: how many predictions float rounding alone can flip here.
    pred64 = predict({k: v.astype(np.float64) for k, v in tensors.items()}, meta,
                     images.astype(np.float64))
    flips = int((pred64 != pred).sum())
    print(f"numpy float32: {correct}/{len(labels)} correct ({correct / len(labels):.4f}); "
          f"float64: {int((pred64 == labels).sum())} correct, {flips} predictions differ from "
          f"float32; backprop train printed test_acc={test_acc} ({expected} correct)")
    # Exact equality of the count is the expectation (it holds on the machine this test was
    # written on). One prediction of difference (1e-4) is tolerated: numpy's matrix product
    # sums in a different order from backprop's GEMMs, and a test image whose top two logits
    # tie to float32 rounding may then go the other way. More than one is a real disagreement.
    if correct == expected:
        print("ok: the documented reader reproduces the CLI's test accuracy exactly")
    elif abs(correct - expected) == 1:
        print("ok: within one prediction (1e-4) of the CLI's test accuracy (a float32 near-tie)")
    else:
        print(f"FAIL: the documented reader finds {correct} correct, the CLI {expected}")
        fails += 1

    if len(sys.argv) == 6:
        ck, ckmeta = read_model(sys.argv[5])
        perm = ck.get("trainer.perm")
        nparams = sum(v.size for k, v in ck.items() if k[0].isdigit())
        want_opt = {"sgd": [], "momentum": ["optimizer.m"], "nesterov": ["optimizer.m"],
                    "adam": ["optimizer.m", "optimizer.s"]}[ckmeta["train.optimizer"]]
        if ckmeta.get("checkpoint") != "1" or perm is None or perm.dtype != np.uint32 or \
                not np.array_equal(np.sort(perm), np.arange(60000, dtype=np.uint32)):
            print("FAIL: the checkpoint's trainer.perm is not a U32 permutation of 0..59999")
            fails += 1
        elif sorted(k for k in ck if k.startswith("optimizer.")) != want_opt or \
                any(ck[k].shape != (nparams,) or ck[k].dtype != np.float32 for k in want_opt):
            print(f"FAIL: the checkpoint's optimizer tensors are not {want_opt}, F32 [{nparams}]")
            fails += 1
        else:
            print(f"ok: checkpoint read: trainer.perm a permutation of 60000, optimizer state "
                  f"[{nparams}], optimizer.t {ckmeta['optimizer.t']}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()

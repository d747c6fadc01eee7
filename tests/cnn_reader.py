"""A saved CNN read and run by numpy alone, with PyTorch's conventions, against backprop.

usage: cnn_reader.py MODEL DATA_DIR PREDICT_JSON TEST_ACC

MODEL is a safetensors file written by `backprop train --arch ... --save`. This script parses
it itself (8-byte length, JSON header, little-endian F32 tensors), builds the forward pass of
the nn.Sequential the "arch" metadata describes, the way PyTorch computes it:
  Conv2d     weight [C_out, C_in, kh, kw], cross-correlation, zero padding, NCHW
  MaxPool2d / AvgPool2d (k)  windows k x k, stride k, floor
  Flatten    the (c, h, w) order of a contiguous NCHW tensor
  Linear     x @ weight.T + bias,  weight [out, in]
  Dropout    the identity (eval mode)
then checks, for all test images of DATA_DIR, that
  - the top class equals the one `backprop predict --json` printed (PREDICT_JSON), and the
    probabilities of its three classes agree within 1e-4;
  - the accuracy equals TEST_ACC, the test_acc= the training run printed.
If torch imports, the same file is also loaded into torch.nn.Sequential with load_state_dict
(strict) and its logits are compared with numpy's. Exit status 0 pass, 1 fail.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np


def read_model(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    data = raw[8 + n :]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit(f"FAIL: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return meta, json.loads(meta["arch"]), tensors


def idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            raw = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
            ndim = raw[3]
            shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    sys.exit(f"FAIL: {path} not found")


def conv2d(x, w, b, stride, pad):
    """x [N, C, H, W], w [O, C, kh, kw]: PyTorch's Conv2d (cross-correlation)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (x.shape[2] - kh) // stride + 1
    ow = (x.shape[3] - kw) // stride + 1
    y = np.zeros((n, o, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + b[None, :, None, None]


def pool(x, k, kind):
    n, c, h, w = x.shape
    x = x[:, :, : h // k * k, : w // k * k].reshape(n, c, h // k, k, w // k, k)
    return x.max(axis=(3, 5)) if kind == "maxpool2d" else x.mean(axis=(3, 5))


ACTS = {
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def forward(arch, tensors, x):
    """x [N, *input] in [0, 1] → logits [N, classes], float64."""
    shape = arch["input"]
    x = x.reshape([x.shape[0]] + ([1] + shape if len(shape) == 2 else shape)).astype(np.float64)
    spatial = any(l["type"] in ("conv2d", "maxpool2d", "avgpool2d") for l in arch["layers"])
    if not spatial:
        x = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(arch["layers"]):
        t = layer["type"]
        if t == "conv2d":
            kh, kw = layer["kernel"]
            pad = ((kh - 1) // 2, (kw - 1) // 2) if layer["padding"] == "same" else None
            x = conv2d(x, tensors[f"{i}.weight"], tensors[f"{i}.bias"], layer["stride"], pad)
        elif t in ("maxpool2d", "avgpool2d"):
            x = pool(x, layer["kernel"], t)
        elif t == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif t == "linear":
            x = x @ tensors[f"{i}.weight"].T.astype(np.float64) + tensors[f"{i}.bias"]
        elif t == "dropout":
            pass
        elif t in ACTS:
            x = ACTS[t](x)
        else:
            sys.exit(f"FAIL: unknown layer type {t}")
    return x


def torch_check(arch, tensors, x, logits):
    try:
        import torch
    except ImportError:
        print("torch not available: the PyTorch load is not checked")
        return 0
    mods = []
    for layer in arch["layers"]:
        t = layer["type"]
        if t == "conv2d":
            mods.append(torch.nn.Conv2d(layer["in_channels"], layer["out_channels"],
                                        tuple(layer["kernel"]), stride=layer["stride"],
                                        padding=tuple((k - 1) // 2 for k in layer["kernel"])
                                        if layer["padding"] == "same" else 0))
        elif t == "maxpool2d":
            mods.append(torch.nn.MaxPool2d(layer["kernel"]))
        elif t == "avgpool2d":
            mods.append(torch.nn.AvgPool2d(layer["kernel"]))
        elif t == "flatten":
            mods.append(torch.nn.Flatten())
        elif t == "linear":
            mods.append(torch.nn.Linear(layer["in"], layer["out"]))
        elif t == "dropout":
            mods.append(torch.nn.Dropout(float(layer["p"])))
        else:
            mods.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                         "sigmoid": torch.nn.Sigmoid}[t]())
    net = torch.nn.Sequential(*mods).eval()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    shape = arch["input"]
    with torch.no_grad():
        xt = torch.from_numpy(x.astype(np.float32)).reshape([x.shape[0]] + ([1] + shape if len(shape) == 2 else shape))
        out = net(xt).numpy()
    err = np.abs(out - logits).max()
    print(f"torch.nn.Sequential load_state_dict(strict=True): logits max |diff| {err:.2e}")
    if err > 1e-3:
        print("FAIL: PyTorch's logits differ from numpy's")
        return 1
    return 0


def main():
    model, data, pred_json, test_acc = sys.argv[1:5]
    meta, arch, tensors = read_model(model)
    images = idx(os.path.join(data, "t10k-images-idx3-ubyte"))
    labels = idx(os.path.join(data, "t10k-labels-idx1-ubyte"))
    x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    logits = np.concatenate([forward(arch, tensors, x[i : i + 1000])
                             for i in range(0, len(x), 1000)])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    fails = 0
    ours = json.load(open(pred_json))
    if len(ours) != len(x):
        sys.exit(f"FAIL: predict printed {len(ours)} images, the test set has {len(x)}")
    worst, disagree = 0.0, 0
    for k, e in enumerate(ours):
        top = e["top"]
        if top[0]["class"] != pred[k] and abs(p[k, top[0]["class"]] - p[k, pred[k]]) > 1e-4:
            disagree += 1
        for c in top:
            worst = max(worst, abs(c["p"] - p[k, c["class"]]))
    print(f"numpy forward (PyTorch conventions) vs backprop predict: {disagree} top classes "
          f"differ, probabilities max |diff| {worst:.2e}")
    if disagree or worst > 1e-4:
        print("FAIL: numpy's forward disagrees with backprop's predictions")
        fails += 1
    acc = float((pred == labels).mean())
    print(f"numpy test accuracy {acc:.4f}, backprop train printed {test_acc}")
    if f"{acc:.4f}" != test_acc:
        print("FAIL: the accuracies differ")
        fails += 1
    fails += torch_check(arch, tensors, x[:500], logits[:500])
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

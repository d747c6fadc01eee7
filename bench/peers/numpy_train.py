#!/usr/bin/env python3
"""MNIST training in plain numpy, written the way a numpy user would write it: the peer that
bench/peers/run.py compares backprop with (bench/README.md, "Peers").

Settings shared by every peer: float32, pixels / 255, mini-batches of 128 reshuffled every
epoch (the last partial batch kept), plain SGD at a constant rate of 0.1, mean cross-entropy of
the softmax, and PyTorch's default nn.Linear initialisation: W and b ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)). Models: `linear` (784 -> 10, 10 epochs by default) and `mlp` (784-256-10 with
ReLU, 5 epochs by default).

numpy cannot change its BLAS thread count once it is imported, so the count is set through the
environment: the runner sets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS before starting this
process, and this script sets them to --threads itself before `import numpy` for standalone use.

Prints one JSON line at the end: peer, model, threads, epoch_seconds (the training loop of each
epoch, without loading the data and without evaluating), test_acc (after the last epoch),
train_loss (mean over each epoch's batches), versions and settings.
"""

import argparse
import json
import os
import platform
import sys
import time

BATCH = 128
LR = 0.1
DEFAULT_EPOCHS = {"linear": 10, "mlp": 5}
HIDDEN = 256


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["linear", "mlp"], default="linear")
    p.add_argument("--epochs", type=int, help="default: 10 for linear, 5 for mlp")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="data/mnist", help="directory of the raw IDX files")
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS[args.model]
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be at least 1")
    return args


args = parse_args()
# Before numpy loads OpenBLAS, which reads these once when it is initialised.
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import numpy as np  # noqa: E402  (deliberately after the environment is set)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import blasinfo  # noqa: E402  (instrumentation only: which OpenBLAS numpy loaded)
from idx import read_idx as idx_bytes  # noqa: E402  (the one IDX reader of both peers)


def read_idx(path):
    raw, offset, shape = idx_bytes(path)
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load(split):
    images = read_idx(os.path.join(args.data, f"{split}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(args.data, f"{split}-labels-idx1-ubyte"))
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return x, labels.astype(np.int64)


def init_layer(rng, fan_in, fan_out):
    """PyTorch's nn.Linear default: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(np.float32)
    b = rng.uniform(-bound, bound, size=fan_out).astype(np.float32)
    return w, b


def forward(layers, x):
    """Logits, and the input of every layer (x, then each hidden ReLU output) for backward."""
    inputs = [x]
    h = x
    for i, (w, b) in enumerate(layers):
        z = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(z, 0.0)
            inputs.append(h)
    return z, inputs


def train_epoch(layers, x, y, rng):
    """One pass over (x, y) in shuffled mini-batches; returns the mean training loss."""
    n = len(x)
    order = rng.permutation(n)
    loss_sum = 0.0
    for start in range(0, n, BATCH):
        idx = order[start:start + BATCH]
        xb, yb = x[idx], y[idx]
        m = len(idx)
        rows = np.arange(m)

        logits, inputs = forward(layers, xb)
        # Softmax and cross-entropy, shifted by the row maximum so exp cannot overflow.
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        total = e.sum(axis=1, keepdims=True)
        loss_sum += float(np.sum(np.log(total[:, 0]) - logits[rows, yb]))

        # Gradient of the mean cross-entropy with respect to the logits: (softmax - onehot) / m.
        grad = e / total
        grad[rows, yb] -= 1.0
        grad /= m
        # Backward through the layers, last first; each update after its gradient is passed on.
        for i in range(len(layers) - 1, -1, -1):
            w, b = layers[i]
            a = inputs[i]
            grad_w = a.T @ grad
            grad_b = grad.sum(axis=0)
            if i > 0:
                grad = grad @ w.T
                grad *= a > 0  # ReLU: no gradient where the unit was off
            w -= LR * grad_w
            b -= LR * grad_b
    return loss_sum / n


def accuracy(layers, x, y):
    logits, _ = forward(layers, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def blas_name():
    """The BLAS numpy was built against, as numpy.show_config reports it."""
    cfg = np.__config__
    if hasattr(cfg, "blas_opt_info"):  # numpy < 1.26
        libs = cfg.blas_opt_info.get("libraries", [])
        return ",".join(sorted(set(libs))) or "unknown"
    try:  # numpy >= 1.26
        return cfg.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        return "unknown"


def main():
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")

    rng = np.random.default_rng(args.seed)
    sizes = [x_train.shape[1]] + ([HIDDEN] if args.model == "mlp" else []) + [10]
    layers = [init_layer(rng, sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]

    epoch_seconds, train_loss = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        train_loss.append(train_epoch(layers, x_train, y_train, rng))
        epoch_seconds.append(time.perf_counter() - t0)

    print(json.dumps({
        "peer": "numpy",
        "model": args.model,
        "threads": args.threads,
        "epoch_seconds": epoch_seconds,
        "test_acc": accuracy(layers, x_test, y_test),
        "train_loss": train_loss,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas_name": blas_name(),
            "blas": blasinfo.describe_loaded(),
        },
        "settings": {"epochs": args.epochs, "batch": BATCH, "lr": LR, "seed": args.seed,
                     "sizes": sizes},
    }))


if __name__ == "__main__":
    main()

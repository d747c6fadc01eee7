#!/usr/bin/env python3
"""MNIST training in PyTorch, written the way a PyTorch user would write it: a peer that
bench/peers/run.py compares backprop with (bench/README.md, "Peers").

Two variants of the same loop:
  default       shuffle with torch.randperm and slice the tensors (peer "torch");
  --dataloader  TensorDataset + DataLoader(shuffle=True), as many tutorials do
                (peer "torch-dataloader").

Settings shared by every peer: float32, pixels / 255, mini-batches of 128 reshuffled every
epoch (the last partial batch kept), plain SGD at a constant rate of 0.1, nn.CrossEntropyLoss
(mean over the batch), nn.Linear's default initialisation. Models: `linear` (784 -> 10, 10
epochs by default) and `mlp` (784-256-10 with ReLU, 5 epochs by default).

Threads: torch.set_num_threads(--threads) for ATen's own parallel loops and one inter-op
thread. PyTorch hands float32 matrix products to the system BLAS (OpenBLAS on Debian), whose
thread count torch.set_num_threads does not reach, so OPENBLAS_NUM_THREADS and OMP_NUM_THREADS
are set to --threads as well, before `import torch` (the runner also sets them).

Prints one JSON line at the end: peer, model, threads, epoch_seconds (the training loop of each
epoch, without loading the data and without evaluating), test_acc (after the last epoch),
train_loss (mean over each epoch's samples), versions and settings.
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
    p.add_argument("--threads", type=int, default=1, help="intra-op and BLAS threads (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="data/mnist", help="directory of the raw IDX files")
    p.add_argument("--dataloader", action="store_true",
                   help="batches from TensorDataset + DataLoader(shuffle=True)")
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS[args.model]
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be at least 1")
    return args


args = parse_args()
# Before torch loads OpenBLAS and OpenMP, which read these once when they are initialised.
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402  (deliberately after the environment is set)
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

# Both before any parallel work: the inter-op pool cannot be resized once it has started.
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import blasinfo  # noqa: E402  (instrumentation only: which OpenBLAS torch loaded)
from idx import read_idx as idx_bytes  # noqa: E402  (the one IDX reader of both peers)


def read_idx(path):
    raw, offset, shape = idx_bytes(path)
    return torch.frombuffer(raw, dtype=torch.uint8, offset=offset).reshape(shape)


def load(split):
    images = read_idx(os.path.join(args.data, f"{split}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(args.data, f"{split}-labels-idx1-ubyte"))
    x = images.reshape(len(images), -1).float() / 255.0
    return x, labels.long()


def batches_randperm(x, y):
    """Shuffled mini-batches by indexing the whole tensors with a fresh permutation."""
    order = torch.randperm(len(x))
    for start in range(0, len(x), BATCH):
        idx = order[start:start + BATCH]
        yield x[idx], y[idx]


def main():
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")

    torch.manual_seed(args.seed)
    if args.model == "linear":
        model = nn.Sequential(nn.Linear(x_train.shape[1], 10))
    else:
        model = nn.Sequential(nn.Linear(x_train.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    if args.dataloader:
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True)

    epoch_seconds, train_loss = [], []
    model.train()
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        batches = loader if args.dataloader else batches_randperm(x_train, y_train)
        loss_sum = 0.0
        for xb, yb in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(yb)
        epoch_seconds.append(time.perf_counter() - t0)
        train_loss.append(loss_sum / len(x_train))

    model.eval()
    with torch.no_grad():
        correct = (model(x_test).argmax(dim=1) == y_test).sum().item()
    test_acc = correct / len(y_test)

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "blas": blasinfo.describe_loaded(),
    }
    try:
        import numpy
        versions["numpy"] = numpy.__version__
    except ImportError:
        pass
    print(json.dumps({
        "peer": "torch-dataloader" if args.dataloader else "torch",
        "model": args.model,
        "threads": args.threads,
        "epoch_seconds": epoch_seconds,
        "test_acc": test_acc,
        "train_loss": train_loss,
        "versions": versions,
        "settings": {"epochs": args.epochs, "batch": BATCH, "lr": LR, "seed": args.seed,
                     "dataloader": args.dataloader},
    }))


if __name__ == "__main__":
    main()

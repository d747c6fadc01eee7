#!/usr/bin/env python3
"""PyTorch's MNIST example network trained in PyTorch: the peer of `backprop train --arch
conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,fc:128,relu,dropout:0.5`.

The network of pytorch/examples mnist/main.py, as an nn.Sequential (whose state_dict names are
the ones a backprop model file of the same --arch carries):
  Conv2d(1, 32, 3), ReLU, Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Dropout(0.25), Flatten,
  Linear(9216, 128), ReLU, Dropout(0.5), Linear(128, 10)
trained at batch 64 with the example's optimizer, Adadelta (lr 1.0) and StepLR (gamma 0.7 per
epoch). Inputs are pixels / 255 as in every backprop peer (the example also normalises by the
mean and deviation; that changes the accuracy slightly, not the cost). It reads the same raw
IDX files as torch_train.py, in the same way.

Threads: as torch_train.py (torch.set_num_threads, one inter-op thread, OPENBLAS_NUM_THREADS
and OMP_NUM_THREADS set to --threads before torch is imported).

Prints one JSON line in torch_train.py's shape: peer, model, threads, epoch_seconds (the
training loop of each epoch only), test_acc (after the last epoch), train_loss, versions and
settings.
"""

import argparse
import json
import os
import platform
import sys
import time

BATCH = 64
LR = 1.0
GAMMA = 0.7


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="default 1 (about 4 TFLOP each)")
    p.add_argument("--threads", type=int, default=1, help="intra-op and BLAS threads (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="data/mnist", help="directory of the raw IDX files")
    args = p.parse_args()
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be at least 1")
    return args


args = parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402  (deliberately after the environment is set)
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import blasinfo  # noqa: E402


def read_idx(path):
    """An IDX file of unsigned bytes (magic 0x0000 08 NDIM, big-endian sizes, then the data)."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = 1
    for d in shape:
        count *= d
    if len(raw) - offset != count:
        sys.exit(f"{path}: {len(raw) - offset} bytes of data, the header says {shape}")
    return torch.frombuffer(raw, dtype=torch.uint8, offset=offset).reshape(shape)


def load(split):
    images = read_idx(os.path.join(args.data, f"{split}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(args.data, f"{split}-labels-idx1-ubyte"))
    x = images.reshape(len(images), 1, images.shape[1], images.shape[2]).float() / 255.0
    return x, labels.long()


def network():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10))


def main():
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")

    torch.manual_seed(args.seed)
    model = network()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=GAMMA)

    epoch_seconds, train_loss = [], []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x_train))
        loss_sum = 0.0
        for start in range(0, len(x_train), BATCH):
            idx = order[start:start + BATCH]
            xb, yb = x_train[idx], y_train[idx]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(yb)
        epoch_seconds.append(time.perf_counter() - t0)
        train_loss.append(loss_sum / len(x_train))
        scheduler.step()

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x_test), 1000):
            out = model(x_test[start:start + 1000])
            correct += (out.argmax(dim=1) == y_test[start:start + 1000]).sum().item()
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
        "peer": "torch",
        "model": "cnn",
        "threads": args.threads,
        "epoch_seconds": epoch_seconds,
        "test_acc": test_acc,
        "train_loss": train_loss,
        "versions": versions,
        "settings": {"epochs": args.epochs, "batch": BATCH, "lr": LR, "seed": args.seed,
                     "optimizer": "adadelta", "gamma": GAMMA,
                     "arch": "conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,flatten,"
                             "fc:128,relu,dropout:0.5,fc:10"},
    }))


if __name__ == "__main__":
    main()

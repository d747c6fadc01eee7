#!/usr/bin/env python3
"""Time backprop's training against the same training in numpy and PyTorch (bench/README.md,
"Peers"), and write the results as data (peers.json) and as a table rendered from it
(peers.md).

    /usr/bin/python3 bench/peers/run.py            # the full run: writes bench/results/peers.*
    /usr/bin/python3 bench/peers/run.py --quick    # smoke test: writes BUILD/bench/peers.*

Every measurement is one process: backprop's CLI or one peer script, training one model at one
thread count from scratch. Per round the runs alternate (backprop, numpy, torch,
torch-dataloader, backprop, ...) for every model and thread count, so that a change in the
machine's load during the run affects all of them alike.

This runner imports neither numpy nor torch: it probes with the peers' interpreter (--python)
whether each can be imported, and skips, and names in the report, a peer that cannot.

Exit status: 0 all runs succeeded; 1 a run failed (the reports are still written, naming it);
2 bad usage, or backprop or the data missing; 77 with --quick when numpy or the data is
missing (Meson's "skipped").
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The settings every peer uses (each peer script hard-codes the same ones).
BATCH = 128
LR = 0.1
MODELS = {
    "linear": {"epochs": 10, "hidden": None, "what": "784→10 softmax regression"},
    "mlp": {"epochs": 5, "hidden": 256, "what": "784-256-10, ReLU"},
    # PyTorch's MNIST example network, at its batch size 64, against torch only (numpy has no
    # convolution). Its optimizer, Adadelta, has no backprop counterpart: backprop runs Adam
    # (lr 0.001), so the epoch times compare the same layers and batch, and the accuracies
    # agree only loosely (tolerance below). Not run by default: about a minute per epoch.
    "cnn": {"epochs": 1, "hidden": None, "batch": 64, "peers": ("backprop", "torch"),
            "arch": "conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,fc:128,relu,"
                    "dropout:0.5",
            "optim": ("adam", "0.001"), "acc_tolerance": 0.01,
            "what": "PyTorch's MNIST example CNN (batch 64; Adam vs Adadelta)"},
}
# In the order in which each round runs them; backprop first, the reference of every ratio.
PEERS = ["backprop", "numpy", "torch", "torch-dataloader"]
# The module each Python peer needs (None: backprop, a program of this checkout).
PEER_MODULE = {"backprop": None, "numpy": "numpy", "torch": "torch", "torch-dataloader": "torch"}
# Final test accuracy of a peer must be within this of backprop's (mean over rounds).
ACC_TOLERANCE = 0.003
# Set on some machines; they slow OpenBLAS down in the Python peers, which therefore run
# without them (backprop runs with the environment as it is; the report records both).
BLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
# Not changed by the runner, only recorded: how OpenMP threads wait (torch's pool spins by default).
RECORDED_VARS = THREAD_VARS + BLAS_TUNING_VARS + ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class Skip(Exception):
    """A reason to skip the whole run (exit 77 with --quick)."""


def parse_args():
    p = argparse.ArgumentParser(
        description="backprop vs numpy and PyTorch: seconds per epoch of MNIST training.")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of alternating runs (default 3; at least 3 for a full run)")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--models", default="linear,mlp",
                   help="models: linear, mlp, cnn (default linear,mlp)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help="which to run (default all: %s)" % ",".join(PEERS))
    p.add_argument("--seed", type=int, default=1,
                   help="seed of round 1; round r uses seed + r - 1 (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round, 1 epoch per model, 1 thread; writes into "
                        "BUILD/bench unless --out-dir is given")
    p.add_argument("--epochs", type=int,
                   help="epochs of every model, instead of 10 (linear) and 5 (mlp): a partial run")
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="the build directory (default build/ of this checkout)")
    p.add_argument("--backprop", help="the CLI (default BUILD/backprop)")
    p.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"),
                   help="directory of the raw MNIST IDX files (default data/mnist)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter for the peers (default: the one running this)")
    p.add_argument("--out-dir", help="where peers.json and peers.md go "
                                     "(default bench/results, or BUILD/bench with --quick)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    args = p.parse_args()

    def int_list(text, what):
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            p.error(f"--{what}: a comma-separated list of integers, not {text!r}")
        if not values or min(values) < 1:
            p.error(f"--{what}: every value must be at least 1")
        return values

    def name_list(text, what, known):
        names = [v for v in text.split(",") if v]
        unknown = [v for v in names if v not in known]
        if unknown or not names:
            p.error(f"--{what}: {','.join(unknown) or 'none given'}; known: {','.join(known)}")
        return names

    args.threads = int_list(args.threads, "threads")
    args.models = name_list(args.models, "models", list(MODELS))
    chosen = name_list(args.peers, "peers", PEERS)
    args.peers = [peer for peer in PEERS if peer in chosen]  # always in the alternation order
    if "backprop" not in args.peers:
        p.error("--peers must include backprop: it is the reference of every ratio")
    if args.quick:
        args.rounds, args.threads = 1, [1]
    if args.rounds < 1 or (args.epochs is not None and args.epochs < 1):
        p.error("--rounds and --epochs must be at least 1")
    fixed_epochs = 1 if args.quick else args.epochs
    args.epochs = {m: fixed_epochs or MODELS[m]["epochs"] for m in args.models}
    # Anything short of the full measurement is "partial": its report says so, and by default
    # it goes into the build directory, so it cannot replace bench/results/peers.* by accident.
    args.partial = args.quick or fixed_epochs is not None or args.rounds < 3
    args.backprop = args.backprop or os.path.join(args.build, "backprop")
    if args.out_dir is None:
        args.out_dir = (os.path.join(args.build, "bench") if args.partial
                        else os.path.join(ROOT, "bench", "results"))
    return args


# ---------------------------------------------------------------------------------------------
# Small helpers


def run_text(argv, env=None, timeout=60):
    """stdout of a short helper command, stripped; "" if it cannot be run."""
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_atomic(path, text):
    """Write via a temporary file in the same directory and rename it over `path`, so a reader
    sees the old file or the new one, never a half-written one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def idx_count(path):
    """The first dimension (the sample count) from an IDX file's header."""
    with open(path, "rb") as f:
        header = f.read(8)
    if len(header) < 8 or header[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    return int.from_bytes(header[4:8], "big")


def load1():
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------
# The machine, the libraries and the peers' availability


def machine_info():
    fields = {}
    for line in run_text(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass

    def as_int(key):
        try:
            return int(fields.get(key, ""))
        except ValueError:
            return None

    sockets, cores_per_socket = as_int("Socket(s)"), as_int("Core(s) per socket")
    return {
        "cpu": fields.get("Model name", platform.processor() or "unknown"),
        "logical_cpus": os.cpu_count(),
        "cores": sockets * cores_per_socket if sockets and cores_per_socket else None,
        "threads_per_core": as_int("Thread(s) per core"),
        "hypervisor": fields.get("Hypervisor vendor"),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def probe_module(python, module):
    """(version, None) if `python` can import `module`, else (None, the reason)."""
    code = f"import {module}; print({module}.__version__)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{python}: {e}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, f"{python} -c 'import {module}': {last}"
    return out.stdout.strip(), None


def backprop_openblas(backprop, env):
    """The OpenBLAS that backprop loads (from ldd) and what it says about itself when loaded
    with backprop's environment: build string, version and core."""
    path = None
    for line in run_text(["ldd", backprop]).splitlines():
        m = re.match(r"\s*(libopenblas\S*)\s+=>\s+(\S+)", line)
        if m:
            path = m.group(2)
    if path is None:
        return {"library": None, "source": "none", "core": "unknown", "version": "unknown"}
    # A separate process, so this runner never has OpenBLAS (or its threads) loaded.
    text = run_text([sys.executable, os.path.join(HERE, "blasinfo.py"), path], env=env)
    try:
        return json.loads(text)
    except ValueError:
        return {"library": path, "source": "none", "core": "unknown", "version": "unknown"}


def git_describe():
    return run_text(["git", "--no-optional-locks", "-C", ROOT, "describe", "--always",
                     "--dirty", "--abbrev=7"]) or "unknown"


# ---------------------------------------------------------------------------------------------
# One measurement


def process_env(peer, threads):
    """The environment of one run: the thread variables set to `threads` for everyone; the
    Python peers also without the OpenBLAS tuning variables."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if peer != "backprop":
        for var in BLAS_TUNING_VARS:
            env.pop(var, None)
    return env


def command(args, peer, model, threads, seed, log_path):
    epochs = str(args.epochs[model])
    spec = MODELS[model]
    if peer == "backprop":
        optim, lr = spec.get("optim", ("sgd", str(LR)))
        argv = [args.backprop, "train", "--data", args.data,
                "--batch", str(spec.get("batch", BATCH)), "--optim", optim,
                "--lr", lr, "--lr-schedule", "constant", "--epochs", epochs,
                "--threads", str(threads), "--seed", str(seed), "--log", log_path,
                "--init", "torch"]  # the peers' initialisation (PyTorch's nn.Linear default)
        if spec["hidden"]:
            argv += ["--hidden", str(spec["hidden"])]
        if spec.get("arch"):
            argv += ["--arch", spec["arch"]]
        return argv
    if model == "cnn":
        return [args.python, os.path.join(HERE, "torch_cnn.py"), "--epochs", epochs,
                "--threads", str(threads), "--seed", str(seed), "--data", args.data]
    script = "numpy_train.py" if peer == "numpy" else "torch_train.py"
    argv = [args.python, os.path.join(HERE, script), "--model", model, "--epochs", epochs,
            "--threads", str(threads), "--seed", str(seed), "--data", args.data]
    if peer == "torch-dataloader":
        argv.append("--dataloader")
    return argv


# backprop's per-epoch line and summary line (src/cli/train.c):
#   epoch 1/10  train_loss 0.5799  train_acc 0.8535  test_acc 0.8985  0.05 s  1164587 samples/s
#   final test_acc=0.9210 best_test_acc=... seconds=... samples_per_s=...
EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/(\d+)\s.*\s(\d+(?:\.\d+)?) s\s+\d+ samples/s\s*$")
FINAL_LINE = re.compile(r"^final test_acc=(\d+(?:\.\d+)?)\s")


def parse_backprop(stdout, log_path, epochs):
    """Per-epoch seconds and the final test accuracy from backprop's output.

    The epoch lines print the seconds with two decimals, which is ±10 % for a 0.05 s epoch;
    the --log CSV holds the same field in microseconds. The epoch lines are parsed, and each
    epoch's seconds are then taken from the CSV row of that epoch, which must round to them.
    """
    printed = []
    acc = None
    for line in stdout.splitlines():
        m = EPOCH_LINE.match(line)
        if m:
            printed.append((int(m.group(1)), float(m.group(3))))
        m = FINAL_LINE.match(line)
        if m:
            acc = float(m.group(1))
    if [e for e, _ in printed] != list(range(1, epochs + 1)) or acc is None:
        raise ValueError(f"expected {epochs} epoch lines and a final line in backprop's output")
    with open(log_path, newline="") as f:
        logged = {int(row["epoch"]): float(row["seconds"]) for row in csv.DictReader(f)}
    seconds = []
    for epoch, shown in printed:
        if epoch not in logged or abs(logged[epoch] - shown) > 0.0051:
            raise ValueError(f"epoch {epoch}: --log says {logged.get(epoch)} s, "
                             f"the output {shown} s")
        seconds.append(logged[epoch])
    return seconds, acc


def parse_peer(stdout, peer, model, threads, epochs):
    """The peer's one JSON line (its last line of output), checked against what was asked."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    if not lines:
        raise ValueError("no output")
    doc = json.loads(lines[-1])
    if (doc.get("peer"), doc.get("model"), doc.get("threads")) != (peer, model, threads):
        raise ValueError(f"the output describes {doc.get('peer')}/{doc.get('model')}/"
                         f"{doc.get('threads')} threads")
    if len(doc.get("epoch_seconds", [])) != epochs or not isinstance(doc.get("test_acc"), float):
        raise ValueError("epoch_seconds or test_acc missing or of the wrong length")
    return doc


def measure(args, peer, model, threads, round_no, tmpdir):
    """Run one process; return its record (with "error" set when it failed)."""
    seed = args.seed + round_no - 1
    log_path = os.path.join(tmpdir, f"backprop-{model}-{threads}-{round_no}.csv")
    argv = command(args, peer, model, threads, seed, log_path)
    env = process_env(peer, threads)
    record = {"round": round_no, "model": model, "peer": peer, "threads": threads, "seed": seed,
              "epochs": args.epochs[model], "command": argv, "load1_before": load1(),
              "env": {v: env.get(v) for v in RECORDED_VARS}}
    t0 = time.monotonic()
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        record["error"] = f"timed out after {args.timeout:g} s"
        return record
    except OSError as e:
        record["error"] = str(e)
        return record
    record["wall_seconds"] = round(time.monotonic() - t0, 3)
    if out.returncode != 0:
        tail = " | ".join((out.stderr.strip() or out.stdout.strip()).splitlines()[-3:])
        tail = tail or "(no output)"
        record["error"] = f"exit status {out.returncode}: {tail}"
        return record
    try:
        if peer == "backprop":
            record["epoch_seconds"], record["test_acc"] = parse_backprop(
                out.stdout, log_path, args.epochs[model])
        else:
            doc = parse_peer(out.stdout, peer, model, threads, args.epochs[model])
            record["epoch_seconds"], record["test_acc"] = doc["epoch_seconds"], doc["test_acc"]
            record["train_loss"] = doc.get("train_loss")
            record["versions"] = doc.get("versions", {})
            # The thread count the peer's OpenBLAS reports, where it could be asked.
            blas_threads = record["versions"].get("blas", {}).get("num_threads")
            if blas_threads is not None and blas_threads != threads:
                record["warning"] = f"its OpenBLAS reports {blas_threads} threads, not {threads}"
    except (ValueError, KeyError, OSError) as e:
        record["error"] = f"unreadable output: {e}"
    return record


# ---------------------------------------------------------------------------------------------
# Summaries


def summarize(records, n_train, models, threads_list, peers):
    """Per (model, peer, threads): the epoch-time statistics, accuracy and ratio to backprop;
    then every ratio, each peer's best thread count and the best-vs-best ratios."""
    summary = []
    for model in models:
        for peer in peers:
            for threads in threads_list:
                ok = [r for r in records if (r["model"], r["peer"], r["threads"]) ==
                      (model, peer, threads) and "error" not in r]
                failed = sum(1 for r in records if (r["model"], r["peer"], r["threads"]) ==
                             (model, peer, threads) and "error" in r)
                if not ok:
                    if failed:
                        summary.append({"model": model, "peer": peer, "threads": threads,
                                        "rounds_ok": 0, "rounds_failed": failed})
                    continue
                seconds = [s for r in ok for s in r["epoch_seconds"]]
                accs = [r["test_acc"] for r in ok]
                median = statistics.median(seconds)
                summary.append({
                    "model": model, "peer": peer, "threads": threads,
                    "rounds_ok": len(ok), "rounds_failed": failed, "epochs_timed": len(seconds),
                    "epoch_seconds": {"median": median, "min": min(seconds), "max": max(seconds)},
                    "samples_per_s": n_train / median,
                    "test_acc": {"mean": statistics.fmean(accs), "min": min(accs),
                                 "max": max(accs)},
                })

    def find(model, peer, threads):
        for s in summary:
            if ((s["model"], s["peer"], s["threads"]) == (model, peer, threads)
                    and "epoch_seconds" in s):
                return s
        return None

    # Same thread count: the headline ratio, and the accuracy check.
    for s in summary:
        bp = find(s["model"], "backprop", s["threads"])
        if bp is None or "epoch_seconds" not in s:
            continue
        s["ratio_to_backprop"] = s["epoch_seconds"]["median"] / bp["epoch_seconds"]["median"]
        diff = s["test_acc"]["mean"] - bp["test_acc"]["mean"]
        s["acc_diff_to_backprop"] = diff
        tol = MODELS.get(s["model"], {}).get("acc_tolerance", ACC_TOLERANCE)
        s["acc_within_tolerance"] = abs(diff) <= tol + 1e-12

    # Every ratio measured: each peer configuration against backprop at each thread count.
    ratios = []
    for s in summary:
        if "epoch_seconds" not in s or s["peer"] == "backprop":
            continue
        for bp_threads in threads_list:
            bp = find(s["model"], "backprop", bp_threads)
            if bp is not None:
                ratios.append({"model": s["model"], "peer": s["peer"], "peer_threads": s["threads"],
                               "backprop_threads": bp_threads,
                               "ratio": (s["epoch_seconds"]["median"] /
                                         bp["epoch_seconds"]["median"])})

    # Best thread count: the lowest median epoch time of each (model, peer).
    best = []
    for model in models:
        bp_best = min((s for s in summary if s["model"] == model and s["peer"] == "backprop"
                       and "epoch_seconds" in s),
                      key=lambda s: s["epoch_seconds"]["median"], default=None)
        for peer in peers:
            mine = [s for s in summary if s["model"] == model and s["peer"] == peer
                    and "epoch_seconds" in s]
            if not mine:
                continue
            top = min(mine, key=lambda s: s["epoch_seconds"]["median"])
            entry = {"model": model, "peer": peer, "best_threads": top["threads"],
                     "epoch_seconds_median": top["epoch_seconds"]["median"]}
            if bp_best is not None:
                entry["backprop_best_threads"] = bp_best["threads"]
                entry["ratio_best_vs_best"] = (top["epoch_seconds"]["median"] /
                                               bp_best["epoch_seconds"]["median"])
            best.append(entry)
    return summary, ratios, best


# ---------------------------------------------------------------------------------------------
# The markdown report, rendered from the JSON document alone


def fmt_s(x):
    return f"{x:.4f}" if x < 10 else f"{x:.2f}"


def fmt_env(env):
    return ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in env.items())


def render_md(doc):
    h = doc["header"]
    m = h["machine"]
    lines = []
    add = lines.append
    title = "backprop vs numpy and PyTorch: seconds per training epoch on MNIST"
    add(f"# {title}" + (" (--quick smoke test)" if h["quick"] else
                        " (partial run)" if h["partial"] else ""))
    add("")
    add("Written by `bench/peers/run.py` from `peers.json`; how to read it: bench/README.md, "
        "\"Peers\".")
    if h["quick"]:
        add("")
        add("**--quick: 1 round, 1 epoch, 1 thread. This shows that the runner works; its "
            "times and accuracies mean nothing.**")
    elif h["partial"]:
        add("")
        add("**Partial run (fewer than 3 rounds, or --epochs given): not the measurement the "
            "README describes.**")
    add("")
    add("| | |")
    add("|:--|:--|")
    add(f"| date | {h['date']} (run took {h['run_seconds']:.0f} s) |")
    cores = f"{m['cores']} cores" if m["cores"] else "cores unknown"
    add(f"| machine | {m['cpu']}; {cores}, {m['logical_cpus']} logical CPUs"
        + (f"; {m['hypervisor']} guest" if m.get("hypervisor") else "")
        + f"; {m['memory_gib']} GiB |")
    add(f"| kernel | {m['kernel']} |")
    add(f"| backprop | {h['backprop']['version']}, commit `{h['backprop']['commit']}` |")
    for peer, blas in h["openblas"].items():
        add(f"| OpenBLAS of {peer} | {blas.get('config') or blas.get('version', 'unknown')}; "
            f"core **{blas.get('core', 'unknown')}** (via {blas.get('source', 'none')}) |")
    for name, version in h["python_modules"].items():
        add(f"| {name} | {version} |")
    add(f"| python | {m['python']} (runner), peers run by `{h['peer_python']}` |")
    add(f"| settings | float32, pixels/255, batch {h['settings']['batch']}, plain SGD lr "
        f"{h['settings']['lr']} constant, reshuffled every epoch; epochs: "
        + ", ".join(f"{k} {v}" for k, v in h["settings"]["epochs"].items())
        + f"; {h['rounds']} round(s); seeds {h['seed']}.. (one per round) |")
    add(f"| threads | {', '.join(str(t) for t in h['threads'])}: OPENBLAS_NUM_THREADS and "
        "OMP_NUM_THREADS set for every process; backprop --threads N; torch "
        "set_num_threads(N), set_num_interop_threads(1) |")
    add(f"| environment | inherited: {fmt_env(h['inherited_env'])}; backprop runs with "
        f"{' and '.join(BLAS_TUNING_VARS)} as inherited, the Python peers without |")
    add(f"| load average (1 min) | {h['load_before'][0]:.2f} before, "
        f"{h['load_after'][0]:.2f} after (5 min: {h['load_before'][1]:.2f}, "
        f"{h['load_after'][1]:.2f}) |")
    for peer, reason in h["skipped"].items():
        add(f"| **skipped: {peer}** | {reason} |")
    add("")

    cores_seen = {b.get("core") for b in h["openblas"].values()}
    if len(cores_seen) > 1:
        add("**Note:** the processes did not all use the same OpenBLAS core ("
            + ", ".join(f"{p}: {b.get('core')}" for p, b in h["openblas"].items())
            + "); their GEMMs ran different kernels.")
        add("")

    add("## Seconds per epoch")
    add("")
    add("Median over all epochs of all rounds (training loop only); × backprop = this median / "
        "backprop's at the same thread count (above 1: backprop is faster). Accuracy: final "
        f"test accuracy, mean and range over rounds; ✓ within ±{ACC_TOLERANCE} of backprop's "
        "mean, **✗** not.")
    add("")
    add("| model | peer | threads | s/epoch | min – max | samples/s | × backprop "
        "| test acc | range | vs backprop | rounds |")
    add("|:--|:--|--:|--:|--:|--:|--:|--:|--:|:--|--:|")
    for s in doc["summary"]:
        if "epoch_seconds" not in s:
            add(f"| {s['model']} | {s['peer']} | {s['threads']} | failed | | | | | | | "
                f"0/{s['rounds_failed']} |")
            continue
        e, a = s["epoch_seconds"], s["test_acc"]
        ratio = f"{s['ratio_to_backprop']:.2f}" if "ratio_to_backprop" in s else "–"
        if s["peer"] == "backprop":
            check = "(reference)"
        elif "acc_within_tolerance" in s:
            mark = "✓" if s["acc_within_tolerance"] else "**✗**"
            check = f"{mark} {s['acc_diff_to_backprop']:+.4f}"
        else:
            check = "–"
        rounds = str(s["rounds_ok"])
        if s["rounds_failed"]:
            rounds += f" (+{s['rounds_failed']} failed)"
        add(f"| {s['model']} | {s['peer']} | {s['threads']} | {fmt_s(e['median'])} | "
            f"{fmt_s(e['min'])} – {fmt_s(e['max'])} | {s['samples_per_s']:,.0f} | {ratio} | "
            f"{a['mean']:.4f} | {a['min']:.4f} – {a['max']:.4f} | {check} | {rounds} |")
    add("")

    add("## Best thread count")
    add("")
    add("Each one at its fastest measured thread count; best vs best = its median / backprop's "
        "median at backprop's fastest.")
    add("")
    add("| model | peer | best threads | s/epoch | backprop best threads | best vs best |")
    add("|:--|:--|--:|--:|--:|--:|")
    for b in doc["best"]:
        ratio = f"{b['ratio_best_vs_best']:.2f}" if "ratio_best_vs_best" in b else "–"
        add(f"| {b['model']} | {b['peer']} | {b['best_threads']} | "
            f"{fmt_s(b['epoch_seconds_median'])} | {b.get('backprop_best_threads', '–')} | "
            f"{ratio} |")
    add("")

    cross = [r for r in doc["ratios"] if r["peer_threads"] != r["backprop_threads"]]
    if cross:
        add("## Ratios across thread counts")
        add("")
        add("| model | peer | peer threads | backprop threads | × backprop |")
        add("|:--|:--|--:|--:|--:|")
        for r in cross:
            add(f"| {r['model']} | {r['peer']} | {r['peer_threads']} | {r['backprop_threads']} | "
                f"{r['ratio']:.2f} |")
        add("")

    add("## Accuracy check")
    add("")
    peers_rows = [s for s in doc["summary"] if s["peer"] != "backprop"]
    bad = [s for s in peers_rows if s.get("acc_within_tolerance") is False]
    unchecked = [s for s in peers_rows if "acc_within_tolerance" not in s]
    if bad:
        add(f"**Mismatch**: outside ±{ACC_TOLERANCE} of backprop's mean test accuracy: "
            + "; ".join(f"{s['model']} {s['peer']} {s['threads']} thread(s) "
                        f"{s['acc_diff_to_backprop']:+.4f}" for s in bad) + ".")
    elif len(unchecked) < len(peers_rows):
        add(f"Every peer checked is within ±{ACC_TOLERANCE} of backprop's mean final test "
            "accuracy.")
    if unchecked:
        add("**Not checked** (no successful run of it or of backprop at that thread count): "
            + "; ".join(f"{s['model']} {s['peer']} {s['threads']} thread(s)" for s in unchecked)
            + ".")
    add("backprop initialises with its default (He for ReLU layers, Glorot otherwise, biases "
        "0); the peers with PyTorch's nn.Linear default (W, b ~ U(±1/√fan_in)). The check "
        "asks whether the same training ends at the same accuracy despite that.")
    if h["partial"]:
        add("After fewer epochs than the full run the different initialisations can still "
            "differ by more than the tolerance: in a partial run the check is informational.")
    add("")

    failures = [r for r in doc["records"] if "error" in r]
    if failures:
        add("## Failed runs")
        add("")
        for r in failures:
            add(f"- round {r['round']} {r['model']} {r['peer']} {r['threads']} thread(s): "
                f"{r['error']}")
        add("")

    warnings = [r for r in doc["records"] if "warning" in r]
    if warnings:
        add("## Warnings")
        add("")
        for r in warnings:
            add(f"- round {r['round']} {r['model']} {r['peer']} {r['threads']} thread(s): "
                f"{r['warning']}")
        add("")

    add("## Every run")
    add("")
    add("In the order they ran. s/epoch: median of the run's epochs.")
    add("")
    add("| # | round | model | peer | threads | s/epoch | epochs | test acc | wall s | load |")
    add("|--:|--:|:--|:--|--:|--:|--:|--:|--:|--:|")
    for i, r in enumerate(doc["records"], 1):
        if "error" in r:
            add(f"| {i} | {r['round']} | {r['model']} | {r['peer']} | {r['threads']} | failed "
                f"| | | | {r['load1_before']:.2f} |")
            continue
        add(f"| {i} | {r['round']} | {r['model']} | {r['peer']} | {r['threads']} | "
            f"{fmt_s(statistics.median(r['epoch_seconds']))} | {len(r['epoch_seconds'])} | "
            f"{r['test_acc']:.4f} | {r['wall_seconds']:.1f} | {r['load1_before']:.2f} |")
    add("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main():
    args = parse_args()
    started = time.monotonic()

    # Preconditions: the CLI and the data; then which peers can run at all.
    if not (os.path.isfile(args.backprop) and os.access(args.backprop, os.X_OK)):
        print(f"run.py: {args.backprop}: no backprop CLI (build first, or --backprop)",
              file=sys.stderr)
        return 2
    try:
        missing = [f for f in IDX_FILES if not os.path.isfile(os.path.join(args.data, f))]
        if missing:
            raise Skip(f"{args.data}: missing {', '.join(missing)} (data/fetch.sh)")
        n_train = idx_count(os.path.join(args.data, IDX_FILES[0]))

        modules, skipped = {}, {}
        for module in sorted({PEER_MODULE[p] for p in args.peers if PEER_MODULE[p]}):
            modules[module] = probe_module(args.python, module)
        for peer in args.peers:
            module = PEER_MODULE[peer]
            if module and modules[module][0] is None:
                skipped[peer] = modules[module][1]
        if args.quick and "numpy" in skipped:
            raise Skip(f"numpy peer unavailable: {skipped['numpy']}")
    except Skip as why:
        print(f"run.py: SKIP: {why}" if args.quick else f"run.py: {why}", file=sys.stderr)
        return 77 if args.quick else 2
    except (OSError, ValueError) as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    peers = [p for p in args.peers if p not in skipped]
    os.makedirs(args.out_dir, exist_ok=True)

    load_before = [round(x, 2) for x in os.getloadavg()]
    def runs_of(model):
        return [p for p in peers if p in MODELS[model].get("peers", PEERS)]
    total = args.rounds * len(args.threads) * sum(len(runs_of(m)) for m in args.models)
    print(f"run.py: {total} runs ({', '.join(peers)}; models {', '.join(args.models)}; threads "
          f"{','.join(map(str, args.threads))}; {args.rounds} round(s)); load {load_before[0]:.2f}"
          + "".join(f"; skipped {p}: {why}" for p, why in skipped.items()), flush=True)

    records = []
    with tempfile.TemporaryDirectory(prefix="bp-peers-") as tmpdir:
        for round_no in range(1, args.rounds + 1):
            for model in args.models:
                for threads in args.threads:
                    for peer in runs_of(model):  # alternating: A B C A B C ...
                        r = measure(args, peer, model, threads, round_no, tmpdir)
                        records.append(r)
                        if "error" in r:
                            status = "FAILED: " + r["error"]
                        else:
                            status = (f"{statistics.median(r['epoch_seconds']):.4f} s/epoch, "
                                      f"test_acc {r['test_acc']:.4f}")
                        print(f"  [{len(records)}/{total}] round {round_no} {model} {peer} "
                              f"{threads}t: {status}", flush=True)
    load_after = [round(x, 2) for x in os.getloadavg()]

    # What each process's OpenBLAS was: backprop's asked separately, the peers' from their runs.
    openblas = {"backprop": backprop_openblas(args.backprop, process_env("backprop", 1))}
    for peer in peers:
        if peer == "backprop":
            continue
        for r in records:
            if r["peer"] == peer and "versions" in r:
                openblas[peer] = r["versions"].get("blas", {"core": "unknown"})
                break
    python_modules = {m: v for m, (v, _) in modules.items() if v is not None}

    summary, ratios, best = summarize(records, n_train, args.models, args.threads, peers)
    doc = {
        "header": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "run_seconds": round(time.monotonic() - started, 1),
            "quick": args.quick,
            "partial": args.partial,
            "machine": machine_info(),
            "backprop": {"version": run_text([args.backprop, "--version"]) or "unknown",
                         "commit": git_describe(), "path": args.backprop},
            "openblas": openblas,
            "python_modules": python_modules,
            "peer_python": args.python,
            "skipped": skipped,
            "settings": {"batch": BATCH, "lr": LR, "lr_schedule": "constant", "dtype": "float32",
                         "epochs": args.epochs, "n_train": n_train,
                         "acc_tolerance": ACC_TOLERANCE,
                         "models": {m: MODELS[m] for m in args.models}},
            "rounds": args.rounds,
            "seed": args.seed,
            "threads": args.threads,
            "inherited_env": {v: os.environ.get(v) for v in RECORDED_VARS},
            "load_before": load_before,
            "load_after": load_after,
        },
        "records": records,  # one per measurement (process), in the order they ran
        "summary": summary,
        "ratios": ratios,
        "best": best,
    }
    json_path = os.path.join(args.out_dir, "peers.json")
    md_path = os.path.join(args.out_dir, "peers.md")
    write_atomic(json_path, json.dumps(doc, indent=1) + "\n")
    # The markdown from the JSON as written, so it can never show anything the data lacks.
    with open(json_path) as f:
        write_atomic(md_path, render_md(json.load(f)))
    print(f"run.py: wrote {md_path} and {json_path} ({doc['header']['run_seconds']:.0f} s; load "
          f"{load_after[0]:.2f})")
    mismatches = [s for s in summary if s.get("acc_within_tolerance") is False]
    for s in mismatches:
        print(f"run.py: accuracy mismatch: {s['model']} {s['peer']} {s['threads']}t "
              f"{s['acc_diff_to_backprop']:+.4f} vs backprop"
              + (" (partial run: informational)" if args.partial else ""), file=sys.stderr)
    failed = [r for r in records if "error" in r]
    if failed:
        print(f"run.py: {len(failed)} run(s) failed (see the report)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""SIGINT and SIGTERM during `backprop train`: the step in progress finishes, the checkpoint and
the model asked for are written (whole), the summary line is printed and marked interrupted=1,
the exit status is 128 + the signal, and the checkpoint resumes. A second signal ends the
process at once, by the signal itself.

usage: signals.py PATH/TO/backprop   (tiny data are made here; stdlib only)"""
import os, signal, struct, subprocess, sys, tempfile, time

exe = os.path.abspath(sys.argv[1])
tmp = tempfile.mkdtemp(prefix="bp-test-signals.")
fails = 0


def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what)
    fails += not ok


def idx_images(path, n):
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 2, 2))
        f.write(bytes(((i % 10) * 25 + k * 7) % 256 for i in range(n) for k in range(4)))


def idx_labels(path, n):
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))


data = os.path.join(tmp, "data")
os.mkdir(data)
idx_images(os.path.join(data, "train-images-idx3-ubyte"), 2000)
idx_labels(os.path.join(data, "train-labels-idx1-ubyte"), 2000)
idx_images(os.path.join(data, "t10k-images-idx3-ubyte"), 100)
idx_labels(os.path.join(data, "t10k-labels-idx1-ubyte"), 100)


def start(tag):
    ck, model = os.path.join(tmp, tag + ".ck"), os.path.join(tmp, tag + ".st")
    p = subprocess.Popen([exe, "train", "--data", data, "--epochs", "100000", "--batch", "5",
                          "--hidden", "16", "--lr", "0.05", "--checkpoint", ck, "--save", model],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [p.stdout.readline(), p.stdout.readline()]  # the header, then epoch 1 done
    return p, ck, model, lines


for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
    p, ck, model, lines = start(name)
    check(lines[1].startswith("epoch "), f"{name}: training runs ({lines[1].strip()})")
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    last = (lines + out.splitlines())[-1]
    check(p.returncode == 128 + sig, f"{name}: exit {p.returncode}, expected {128 + sig}")
    check(last.startswith("final ") and last.endswith(" interrupted=1"),
          f"{name}: summary line marked: {last}")
    check("interrupted during epoch" in err and name in err, f"{name}: stderr says so: {err.strip()}")
    check(os.path.exists(ck) and os.path.exists(model), f"{name}: checkpoint and model written")
    check(not [f for f in os.listdir(tmp) if ".tmp" in f], f"{name}: no temporary file left")
    r = subprocess.run([exe, "eval", "--model", model, "--data", data], capture_output=True,
                       text=True)
    check(r.returncode == 0 and "accuracy" in r.stdout, f"{name}: the saved model evaluates")
    done = int(last.split("epochs=")[1].split()[0])
    r = subprocess.run([exe, "train", "--data", data, "--resume", ck, "--epochs", str(done + 2),
                        "--quiet"], capture_output=True, text=True)
    check(r.returncode == 0 and f"epochs={done + 2} " in r.stdout,
          f"{name}: the checkpoint resumes to epoch {done + 2}: {r.stdout.strip()} {r.stderr.strip()}")

# Two signals: stopped, sent SIGINT and SIGTERM, continued. The first handled asks for a clean
# stop, the second must end the process by its default action at once: no summary line.
p, ck, model, lines = start("twice")
p.send_signal(signal.SIGSTOP)
p.send_signal(signal.SIGINT)
p.send_signal(signal.SIGTERM)
time.sleep(0.1)
p.send_signal(signal.SIGCONT)
out, err = p.communicate(timeout=60)
check(p.returncode in (-signal.SIGINT, -signal.SIGTERM),
      f"second signal: killed by a signal (returncode {p.returncode})")
check("final " not in out, "second signal: no summary line")

subprocess.run(["rm", "-rf", tmp])
print(f"signals.py: {fails} failed")
sys.exit(1 if fails else 0)

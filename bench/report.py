#!/usr/bin/env python3
"""Render bp_bench's records (latest.jsonl) into Markdown tables (latest.md) and an SVG chart
(latest.svg), and judge the targets file (bench/targets.json) against them.

The records are JSON Lines: first a header (kind "header": machine, build, options, models),
then one object per validation check ("validation") and per measurement ("sgemm", "step",
"epoch"), each with its repetitions. Everything derived is computed here:
  GFLOP/s    the record's samples/s (median) x GEMM FLOPs per sample (the harness writes it)
  % peak     GFLOP/s over the best sgemm repetition at the same thread count
  x naive    samples/s over naive's, same kind and batch; naive calls no BLAS, so it is timed
             at the first thread count only and reused (marked with a dagger) at the others.

Standard library only; python3 >= 3.9. Prints the targets table on stdout. Exit status 0 when
the report was written (a missed target does not fail it), 1 when the records cannot be read
or the report cannot be written, 2 bad usage.
"""

import argparse
import json
import math
import os
import sys
import tempfile

IMPL_ORDER = ["naive", "jacobian", "blas"]
COLORS = {"naive": "#7f7f7f", "jacobian": "#e6862a", "blas": "#1f66b3"}


class BadInput(Exception):
    pass


def read_records(path):
    header, recs = None, []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise BadInput(f"{path}:{no}: not JSON: {e}")
            if not isinstance(rec, dict) or "kind" not in rec:
                raise BadInput(f"{path}:{no}: a record needs a 'kind'")
            if rec["kind"] == "header":
                header = rec
            else:
                recs.append(rec)
    if header is None:
        raise BadInput(f"{path}: no header record")
    return header, recs


class Run:
    """The records of one run, indexed, with the derived numbers."""

    def __init__(self, header, recs):
        self.h = header
        self.opts = header.get("options", {})
        self.models = {m["name"]: m for m in header.get("models", [])}
        self.threads = self.opts.get("threads", [])
        # the run's list and any other size a model was measured at (cnn: one size of its own)
        self.batches = sorted(set(self.opts.get("batches", [])) |
                              {r["batch"] for r in recs if r["kind"] in ("step", "epoch")})
        self.impls = [i for i in IMPL_ORDER if i in self.opts.get("impls", IMPL_ORDER)]
        self.validation = [r for r in recs if r["kind"] == "validation"]
        self.peak = {r["threads"]: r["max"] for r in recs if r["kind"] == "sgemm"}
        self.sgemm = [r for r in recs if r["kind"] == "sgemm"]
        self.rows = {}
        for r in recs:
            if r["kind"] in ("step", "epoch"):
                self.rows[(r["kind"], r["model"], r["impl"], r["batch"], r["threads"])] = r

    def model_batches(self, model):
        """The batch sizes measured for a model (the header's list when nothing was)."""
        b = {k[3] for k in self.rows if k[1] == model}
        return sorted(b) if b else sorted(self.models.get(model, {}).get("batches",
                                                                          self.batches))

    def find(self, kind, model, impl, batch, threads):
        """The record and whether it was timed at another thread count (naive only)."""
        r = self.rows.get((kind, model, impl, batch, threads))
        if r is None and impl == "naive":
            for t in self.threads:
                r = self.rows.get((kind, model, impl, batch, t))
                if r is not None:
                    return r, True
        return r, False

    def speedup(self, kind, model, impl, batch, threads):
        r, _ = self.find(kind, model, impl, batch, threads)
        n, _ = self.find(kind, model, "naive", batch, threads)
        if r is None or n is None or not n.get("samples_per_s"):
            return None
        return r["samples_per_s"] / n["samples_per_s"]

    def paired_fraction(self, kind, model, impl, batch, threads):
        r, _ = self.find(kind, model, impl, batch, threads)
        if r is None or "paired_fraction" not in r or "paired_sgemm" not in r:
            return None
        return r["paired_fraction"]["median"]

    def peak_fraction(self, kind, model, impl, batch, threads):
        r, _ = self.find(kind, model, impl, batch, threads)
        p = self.peak.get(threads)
        if r is None or not p:
            return None
        return r["gflops"] / p


def grouped(v):
    """1234567 -> '1 234 567'."""
    return f"{v:,.0f}".replace(",", " ")


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def judge(run, targets):
    """One dict per target: its description, measured text, threshold text, need, status."""
    out = []
    for t in targets:
        args = (t["kind"], t["model"], t["impl"], t["batch"], t["threads"])
        r, _ = run.find(*args)
        peak = run.peak.get(t["threads"])
        frac = t["metric"] in ("peak_fraction", "paired_peak_fraction")
        if t["metric"] not in ("peak_fraction", "paired_peak_fraction", "speedup_vs_naive"):
            raise BadInput(f"unknown metric {t['metric']!r} in the targets")
        if t["metric"] == "paired_peak_fraction":
            v = run.paired_fraction(*args)
            if v is not None:  # the sgemm runs of this record stand for the peak
                peak = r["paired_sgemm"]["median"]
        else:
            v = run.peak_fraction(*args) if frac else run.speedup(*args)
        row = {"description": t["description"],
               "threshold": f"≥ {100 * t['threshold']:.0f} %" if frac else f"≥ {t['threshold']:g}×"}
        if v is None:
            row.update(measured="not measured", needs="", status="not measured")
        else:
            # The GEMM rate the threshold asks for, as a share of the peak.
            need = t["threshold"] * (peak if frac else r["gflops"] / v)
            row["needs"] = f"{need:.1f} GFLOP/s = {100 * need / peak:.0f} % of peak" if peak else ""
            if t["metric"] == "paired_peak_fraction":
                row["measured"] = (f"{100 * v:.1f} % (median of {len(r['paired_fraction']['reps'])}"
                                   f" epochs, each over the sgemm after it; those sgemm: median "
                                   f"{peak:.1f} GFLOP/s)")
            else:
                row["measured"] = (f"{100 * v:.1f} % ({r['gflops']:.1f} of {peak:.1f} GFLOP/s)"
                                   if frac else f"{v:.1f}×")
            row["status"] = "met" if v >= t["threshold"] else "miss"
        out.append(row)
    return out


def targets_table(rows):
    lines = ["| target | measured | threshold | threshold needs | result |",
             "|:--|--:|--:|--:|:--|"]
    for r in rows:
        lines.append(f"| {r['description']} | {r['measured']} | {r['threshold']} | {r['needs']} "
                     f"| {r['status']} |")
    return lines


def crossover(run, model, threads):
    """The smallest batch from which blas epochs beat naive's at every larger batch measured."""
    first, seen = None, False
    for b in run.model_batches(model):
        s = run.speedup("epoch", model, "blas", b, threads)
        if s is None:
            continue
        seen = True
        if s <= 1.0:
            first = None
        elif first is None:
            first = (b, s)
    s1 = run.speedup("epoch", model, "blas", 1, threads)
    if not seen:
        return "not measured (this run has no blas or no naive epochs)"
    text = (f"blas beats naive from batch {first[0]} on ({first[1]:.1f}× there)" if first
            else "blas does not beat naive at the largest batch measured")
    if s1 is not None:
        text += f"; at batch 1 blas runs at {s1:.2f}× naive"
    return text


def render_md(run, judged, svg_name):
    h, o = run.h, run.opts
    m, b = h.get("machine", {}), h.get("build", {})
    blas = h.get("blas", {})
    L = ["# backprop benchmark: naive loops vs batched GEMMs", ""]
    quick = h.get("mode") == "quick"
    L.append(f"{'Quick' if quick else 'Full'} run of `bp_bench`, {h.get('date_utc')}, commit "
             f"`{h.get('commit')}`, {h.get('wall_seconds', 0):.0f} s. Data: "
             f"{h.get('data', {}).get('description')}. Rendered by `bench/report.py` from the "
             "records; how to read it: bench/README.md." +
             (" **Quick mode: short repetitions and a small sgemm; not for comparing.**"
              if quick else ""))
    L += ["", "## Against the targets", ""] + targets_table(judged)
    L += ["", "## Models", "",
          "GEMM FLOPs per sample: forward, dW and dX of every linear and conv2d layer (dX not "
          "for the first layer); bench/README.md gives the formula.", "",
          "| model | layers | parameters | GEMM FLOPs per sample | batch sizes |",
          "|:--|:--|--:|--:|:--|"]
    for name, md in run.models.items():
        arch = md.get("arch") or "-".join(str(x) for x in md.get("sizes", []))
        fps = md.get("flops_per_sample")
        L.append(f"| {md['label']} | `{arch}` | "
                 f"{grouped(md['params']) if 'params' in md else ''} | "
                 f"{grouped(fps) if fps else ''} | "
                 f"{', '.join(str(b) for b in run.model_batches(name))} |")
    L += ["", "## Where batching pays (epochs, blas vs naive at the same batch size)", ""]
    for name in run.models:
        for t in run.threads:
            L.append(f"- {run.models[name]['label']}, {plural(t, 'thread')}: "
                     f"{crossover(run, name, t)}.")
    la, lb = h.get("loadavg_after"), h.get("loadavg_before")
    L += ["", f"![samples/s against batch size]({svg_name})", "", "## Machine and build", "",
          "| | |", "|:--|:--|",
          f"| CPU | {m.get('cpu_model')}; AVX2 {yesno(m.get('avx2'))}, FMA "
          f"{yesno(m.get('fma'))}, AVX-512F {yesno(m.get('avx512f'))} |",
          f"| cores, memory | {m.get('cores')} online, {m.get('mem_gib', 0):.1f} GiB |",
          f"| kernel | {m.get('kernel')} |",
          f"| OpenBLAS | {blas.get('config')}; core `{blas.get('corename')}`; "
          f"OPENBLAS_CORETYPE {blas.get('OPENBLAS_CORETYPE')}; OPENBLAS_NUM_THREADS "
          f"{blas.get('OPENBLAS_NUM_THREADS')} |",
          f"| backprop's kernels | `{h.get('kernel_set', 'unknown')}` (its own kernel set, chosen "
          f"at run time; README \"Threads\" lists the products it does) |",
          f"| compiler | {b.get('compiler')}; buildtype {b.get('buildtype')}, "
          f"-O{b.get('optimization')}, c_args {b.get('c_args')}, sanitize {b.get('sanitize')} |",
          f"| load average (1, 5, 15 min) | before {fmt_load(lb)}, after {fmt_load(la)} |",
          f"| settings | {o.get('reps')} reps after a warm-up; step reps ≈ {o.get('step_seconds'):.3g}"
          f" s; epoch reps cut at {o.get('rep_seconds'):.3g} s; SGD lr {o.get('lr'):g}; seed "
          f"{o.get('seed')} |"]
    L += ["", "## sgemm peak (row-major C = A·B, square, in this run)", "",
          "Peak is the best repetition, the denominator of every % peak below.", "",
          "| threads | n | GFLOP/s median | min | max = peak |", "|--:|--:|--:|--:|--:|"]
    for g in run.sgemm:
        L.append(f"| {g['threads']} | {g['n']} | {g['median']:.1f} | {g['min']:.1f} | "
                 f"{g['max']:.1f} |")
    L += ["", "## Validation (before timing)", "",
          "`bp_grad_agree` of each implementation against naive on the benchmark's own batch, "
          "from the same parameters: max |g − g_naive| / max |g_naive| over the whole gradient "
          f"block, and the loss likewise, tolerance {o.get('tolerance', 0):.1e}. A model with "
          "dropout is checked twice: without its dropout layers, and as timed with both passes "
          "drawing the same masks (same seed and step). Worst over batch sizes, thread counts "
          "and both checks:", "",
          "| model | impl | worst rel. diff | at batch | worst loss diff | checks | result |",
          "|:--|:--|--:|--:|--:|--:|:--|"]
    for name in run.models:
        for impl in run.impls:
            vs = [v for v in run.validation if v["model"] == name and v["impl"] == impl]
            if not vs:
                continue
            w = max(vs, key=lambda v: v["grad_rel"] if v["grad_rel"] is not None else math.inf)
            lw = max((v["loss_rel"] or 0) for v in vs)
            ok = all(v["ok"] for v in vs)
            L.append(f"| {run.models[name]['label']} | {impl} | {fmt_e(w['grad_rel'])} | "
                     f"{w['batch']} | {lw:.2e} | {len(vs)} | {'ok' if ok else 'FAILED'} |")
    L += ["", "## Epochs", "",
          "One repetition is `bp_train` over the training set (shuffle, gather and scale uint8 "
          "→ float per batch, step, plain SGD), or over its first *samples/rep* samples where a "
          f"full epoch would take more than {o.get('rep_seconds'):.3g} s; samples/s is "
          "comparable either way. GFLOP/s counts GEMM work only."]
    for name in run.models:
        for t in run.threads:
            L += table(run, "epoch", name, t)
    L += ["", "## Steps", "",
          "One repetition is *steps/rep* calls of `bp_grad` + `bp_opt_step` (SGD) on one fixed "
          "batch already in float: no gather, no shuffle."]
    for name in run.models:
        for t in run.threads:
            L += table(run, "step", name, t)
    return "\n".join(L) + "\n"


def yesno(v):
    return "unknown" if v is None else "yes" if v else "no"


def fmt_load(v):
    return ", ".join(f"{x:.2f}" for x in v) if v else "unknown"


def fmt_e(v):
    return "NaN" if v is None else f"{v:.2e}"


def table(run, kind, model, threads):
    step = kind == "step"
    peak = run.peak.get(threads, 0)
    L = ["", f"### {run.models[model]['label']}, {kind}, {plural(threads, 'thread')} "
             f"(sgemm peak {peak:.1f} GFLOP/s)", "",
         "| batch | impl | samples/s | min – max | " + ("µs/step | " if step else "") +
         "GFLOP/s | % peak | × naive | " + ("steps/rep" if step else "samples/rep") + " |",
         "|--:|:--|--:|--:|" + ("--:|" if step else "") + "--:|--:|--:|--:|"]
    reused = False
    for b in run.model_batches(model):
        for impl in run.impls:
            r, other = run.find(kind, model, impl, b, threads)
            if r is None:
                continue
            reused |= other
            s = run.speedup(kind, model, impl, b, threads)
            f = r["gflops"] / peak if peak else None
            cells = [str(b), impl + ("†" if other else ""), grouped(r["samples_per_s"]),
                     f"{grouped(r['min'])} – {grouped(r['max'])}"]
            if step:
                cells.append(f"{1e6 * b / r['samples_per_s']:.1f}")
            cells += [f"{r['gflops']:.2f}", "" if f is None else f"{100 * f:.1f}",
                      "" if s is None else "1" if impl == "naive" else f"{s:.1f}",
                      str(r["steps_per_rep"] if step else r["samples_per_rep"])]
            L.append("| " + " | ".join(cells) + " |")
    if reused:
        L += ["", f"† naive calls no BLAS: timed once, with {plural(run.threads[0], 'thread')} "
                  "set, and repeated here."]
    return L


def render_svg(run):
    """Samples/s (epochs solid, steps dashed) against batch size, log axes, one panel per
    model (rows) and thread count (columns), one colour per implementation."""
    pw, ph, ml, mr, mt, mb = 400, 270, 64, 16, 34, 44  # panel size and its margins
    top = 76
    rows, cols = list(run.models), run.threads
    W, H = ml + len(cols) * (pw + ml + mr) , top + len(rows) * (ph + mt + mb)
    vals = [r["samples_per_s"] for r in run.rows.values() if r["samples_per_s"] > 0]
    if not vals or not run.batches:
        raise BadInput("no step or epoch measurements to plot")
    y0 = 10 ** math.floor(math.log10(min(vals)))
    y1 = 10 ** math.ceil(math.log10(max(vals)))
    y1 = y1 * 10 if y1 == y0 else y1
    x0, x1 = min(run.batches), max(run.batches)
    x1 = x1 * 2 if x1 == x0 else x1
    S = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{ml}" y="22" font-size="15" font-weight="bold">samples/s against batch '
         f'size ({esc(run.h.get("mode", ""))} run, {esc(run.h.get("date_utc", ""))}, commit '
         f'{esc(run.h.get("commit", ""))})</text>']
    lx = ml
    for impl in run.impls:  # legend
        S.append(f'<line x1="{lx}" y1="40" x2="{lx + 24}" y2="40" stroke="{COLORS[impl]}" '
                 'stroke-width="2.5"/>')
        S.append(f'<text x="{lx + 30}" y="44">{impl}</text>')
        lx += 110
    S.append(f'<text x="{ml}" y="62">solid: epoch (bp_train) · dashed: step (bp_grad + '
             'bp_opt_step) · naive is timed at the first thread count only</text>')

    def fx(x):
        return math.log(x / x0) / math.log(x1 / x0) * pw

    def fy(y):
        return ph - math.log(y / y0) / math.log(y1 / y0) * ph

    for ri, model in enumerate(rows):
        for ci, t in enumerate(cols):
            ox, oy = ml + ci * (pw + ml + mr), top + ri * (ph + mt + mb) + mt
            S.append(f'<g transform="translate({ox},{oy})">')
            S.append(f'<text x="0" y="-10" font-weight="bold">{esc(run.models[model]["label"])}'
                     f', {plural(t, "thread")} (sgemm peak {run.peak.get(t, 0):.0f} '
                     'GFLOP/s)</text>')
            S.append(f'<rect width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
            d = y0
            while d <= y1 * 1.0001:  # decades
                y = fy(d)
                S.append(f'<line x1="0" y1="{y:.1f}" x2="{pw}" y2="{y:.1f}" stroke="#ddd"/>')
                S.append(f'<text x="-6" y="{y + 4:.1f}" text-anchor="end">{si(d)}</text>')
                d *= 10
            for b in run.model_batches(model):
                x = fx(b)
                S.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{ph}" stroke="#eee"/>')
                S.append(f'<text x="{x:.1f}" y="{ph + 16}" text-anchor="middle">{b}</text>')
            S.append(f'<text x="{pw / 2}" y="{ph + 34}" text-anchor="middle">batch size</text>')
            S.append(f'<text transform="translate(-50,{ph / 2}) rotate(-90)" '
                     'text-anchor="middle">samples/s</text>')
            for kind, dash in (("epoch", ""), ("step", ' stroke-dasharray="5,4"')):
                for impl in run.impls:
                    pts = []
                    for b in run.model_batches(model):
                        r, _ = run.find(kind, model, impl, b, t)
                        if r is not None and r["samples_per_s"] > 0:
                            pts.append((fx(b), fy(r["samples_per_s"])))
                    if not pts:
                        continue
                    S.append(f'<polyline fill="none" stroke="{COLORS[impl]}" stroke-width="2"'
                             f'{dash} points="' +
                             " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
                    if kind == "epoch":
                        S += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS[impl]}"/>'
                              for x, y in pts]
            S.append("</g>")
    S.append("</svg>")
    return "\n".join(S) + "\n"


def si(v):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_all(files):
    """Every (path, text) written to a temporary beside it first, then all renamed."""
    temps = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, text in files:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                       dir=os.path.dirname(path) or ".")
            temps.append((tmp, path))
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would be unlike every other output
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records", help="bp_bench's latest.jsonl")
    p.add_argument("--targets", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "targets.json"))
    p.add_argument("--out-dir", help="where latest.md and latest.svg go (default: beside the "
                   "records)")
    a = p.parse_args()
    try:
        run = Run(*read_records(a.records))
        try:
            with open(a.targets, encoding="utf-8") as f:
                targets = json.load(f)["targets"]
        except (ValueError, KeyError, TypeError) as e:
            raise BadInput(f"{a.targets}: not a targets file ({e})")
        judged = judge(run, targets)
        out = a.out_dir or os.path.dirname(a.records) or "."
        stem = os.path.splitext(os.path.basename(a.records))[0]
        md, svg = os.path.join(out, stem + ".md"), os.path.join(out, stem + ".svg")
        write_all([(svg, render_svg(run)), (md, render_md(run, judged, stem + ".svg"))])
    except (OSError, ValueError, KeyError, TypeError, BadInput) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    print(f"targets ({a.targets}):")
    print("\n".join(targets_table(judged)))
    print(f"report.py: wrote {md} and {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

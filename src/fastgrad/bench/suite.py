"""The workloads of bench/README.md's table: sizes, units, targets, and how each is run.

The arithmetic of each workload is in cases.py (written once, run on every
library); this file says which sizes to run, how to turn seconds into the
figure the table reports, which peers take part, and what fastgrad's
target is. W7 and W9 run in subprocesses (_child.py), W8 times interpreter
start-ups, W10 switches thread counts in this process.

A workload function takes the `Run` and returns table rows:
    {"workload", "case", "unit", "better": "lower"|"higher", "figures":
     {column: number | "n/a (...)"}, "target": text, "met": bool | None,
     "ratios": bool (False where a ratio means nothing, e.g. RSS growth)}
"""
import json
import os
import statistics
import subprocess
import sys
import time

from . import cases
from .harness import Column, failure_note, speedup, time_columns, timed  # noqa: F401 (re-exported)

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")


class Target:
    """fastgrad's target for a row: an absolute limit, or a multiple of a peer.

    `value(figures)` is the figure fastgrad must reach (None for "completes"),
    `met(figures)` whether it did (None when fastgrad has no figure).
    """

    def __init__(self, higher, limit=None, peer=None, factor=None, text=None, strict=False):
        self.higher, self.limit, self.peer, self.factor = higher, limit, peer, factor
        self.strict = strict
        sign = (">" if strict else "≥") if higher else ("<" if strict else "≤")
        if text:
            self.text = text
        elif peer:
            self.text = f"{sign} {factor:g}x {peer}"
        else:
            self.text = f"{sign} {limit:g}"

    def value(self, figures):
        if self.peer:
            p = figures.get(self.peer)
            return self.factor * p if isinstance(p, (int, float)) else None
        return self.limit

    def met(self, figures):
        fg, goal = figures.get("fastgrad"), self.value(figures)
        if not isinstance(fg, (int, float)):
            return None
        if self.limit is None and self.peer is None:
            return True                   # "completes": any figure means it did
        if goal is None:
            return None
        if self.strict:
            return fg > goal if self.higher else fg < goal
        return fg >= goal if self.higher else fg <= goal


def at_most(limit):
    return Target(False, limit=limit)


COMPLETES = Target(False, text="completes")


def case(name, *args, **kwargs):
    """A workload body for Run.columns: cases.<name>(lib, *args, **kwargs), in this process or
    a peer's (so only names and JSON-able arguments)."""
    return (name, list(args), kwargs)


def row(workload, case, unit, figures, target, better="lower", ratios=True):
    return {"workload": workload, "case": case, "unit": unit, "better": better,
            "figures": figures, "target": target.text, "target_value": target.value(figures),
            "met": target.met(figures), "ratios": ratios}


def _scaled(results, factor):
    return {k: v * factor if isinstance(v, float) else v for k, v in results.items()}


# --- in-process, timed by the harness -----------------------------------------

def w1(run):
    rows = []
    for n in (1, 16):
        for bwd in (False, True):
            label = f"{'fwd+bwd' if bwd else 'fwd'} n={n}"
            run.progress("W1", label)
            cols = run.columns(case("make_w1", n, bwd),
                               numpy=lambda n=n, bwd=bwd: cases.numpy_w1(n, bwd))
            per_op = 1e6 / cases.W1_OPS
            rows.append(row("W1", label, "µs/op", _scaled(run.time(cols), per_op),
                            at_most(0.5 if bwd else 0.25)))
    return rows


def w2(run):
    rows = []
    for n, limit in ((10**6, 2.5), (10**7, 28.0)):
        if run.quick and n > 10**6:
            continue
        label = f"fwd+bwd n=1e{len(str(n)) - 1}"
        run.progress("W2", label)
        cols = run.columns(case("make_w2", n), numpy=lambda n=n: cases.numpy_w2(n))
        rows.append(row("W2", label, "ms", _scaled(run.time(cols), 1e3), at_most(limit)))
    return rows


def w3(run):
    rows = []
    for n in (64, 256, 1024):
        label = f"fwd+bwd n={n}"
        run.progress("W3", label)
        cols = run.columns(case("make_w3", n), numpy=lambda n=n: cases.numpy_w3(n))
        gflops = {k: cases.w3_flops(n) / v / 1e9 if isinstance(v, float) else v
                  for k, v in run.time(cols).items()}
        rows.append(row("W3", label, "GFLOP/s", gflops, Target(True, peer="numpy", factor=0.95),
                        better="higher"))
    return rows


def w4(run):
    run.progress("W4", "XOR 2-2-1 SGD step")
    cols = run.columns(case("make_w4"), numpy=cases.numpy_w4)
    return [row("W4", "XOR 2-2-1 SGD step", "µs/step", _scaled(run.time(cols), 1e6),
                at_most(15))]


def _mlp(run, workload, sizes, batch, unit, factor, target, gemms=False):
    label = f"{'-'.join(map(str, sizes))} Adam b={batch}"
    run.progress(workload, label)
    cols = run.columns(case("make_mlp", sizes, batch),
                       numpy=lambda: cases.numpy_mlp(sizes, batch),
                       fused=case("make_mlp", sizes, batch, fused=True),
                       gemms=(lambda: cases.mlp_products(sizes, batch)) if gemms else None)
    return [row(workload, label, unit, _scaled(run.time(cols), factor), target)]


def w5(run):
    return _mlp(run, "W5", (64, 128, 10), 64, "µs/step", 1e6, at_most(90))


def w6(run):
    """Against the time of the step's eight matrix products alone (NumPy's BLAS, same run)."""
    return _mlp(run, "W6", (784, 256, 256, 10), 128, "ms/step", 1e3,
                Target(False, peer="gemms", factor=1.1), gemms=True)


def w11(run):
    label = f"LeNet-style CNN SGD step b={cases.W11_BATCH}"
    run.progress("W11", label)
    cols = run.columns(case("make_w11"))
    return [row("W11", label, "ms/step", _scaled(run.time(cols), 1e3),
                Target(False, peer="torch", factor=1 / 1.5, text="≥ 1.5x torch"))]


def w12(run):
    """LSTM(64, 128) classifier step against torch's in the same run: time ≤ 0.5x torch's."""
    label = (f"LSTM({cases.W12_IN},{cases.W12_HIDDEN}) T={cases.W12_SEQ} b={cases.W12_BATCH} "
             "Adam")
    run.progress("W12", label)
    cols = run.columns(case("make_w12"))
    return [row("W12", label, "ms/step", _scaled(run.time(cols), 1e3),
                Target(False, peer="torch", factor=0.5, text="≥ 2x torch"))]


def w10(run):
    """W2 at n=1e7: time per step on 1 thread / on 2 threads, each library in its process."""
    n = 10**7
    run.progress("W10", "W2 n=1e7, 2 vs 1 thread")
    lib = run.subject
    if lib is None:                                      # fastgrad did not import
        figures = {"fastgrad": run.subject_note}
    elif not hasattr(lib, "set_num_threads"):
        figures = {"fastgrad": f"n/a (missing: {lib.__name__}.set_num_threads)"}
    else:
        try:
            figures = {"fastgrad": speedup(cases.make_w2(lib, n), lib.set_num_threads,
                                           run.repeat)}
        except Exception as exc:
            figures = {"fastgrad": failure_note(exc)}
        finally:
            run.restore_threads()
    if run.peer is not None:
        reply = run.peer.ask(op="speedup", case=case("make_w2", n), repeat=run.repeat)
        figures["torch"] = reply.get("error") or reply["value"]
    return [row("W10", "W2 n=1e7 speed-up 2 vs 1 thr", "x", figures, Target(True, limit=1.7),
                better="higher")]


def w13(run):
    """Against torch in the same run: at least 1.5x its speed (fastgrad <= torch / 1.5)."""
    label = "2-layer TransformerEncoder d128 h4 ff256 AdamW b=16 L=64"
    run.progress("W13", label)
    cols = run.columns(case("make_w13"))
    return [row("W13", label, "ms/step", _scaled(run.time(cols), 1e3),
                Target(False, peer="torch", factor=1 / 1.5, text="≥ 1.5x torch"))]


def w14(run):
    """One DataLoader epoch (60000 x 784 float32, int64 labels, batch 128, shuffled). The numpy
    column is the memory floor: a contiguous copy of the bytes an epoch gathers and writes, timed
    in the same run (so the floor is those bytes / the bandwidth that copy reaches)."""
    rows = 6000 if run.quick else cases.W14_ROWS
    label = f"DataLoader epoch {rows}x{cases.W14_FEATURES} b={cases.W14_BATCH} shuffled"
    run.progress("W14", label)
    cols = run.columns(case("make_w14", rows), numpy=lambda: cases.numpy_w14_floor(rows))
    times = run.time(cols)
    floor = times.get("numpy")
    if isinstance(floor, float):
        gbps = cases.w14_bytes(*cases.w14_arrays(rows)) / floor / 1e9
        label += f" (numpy = floor, {gbps:.1f} GB/s copy)"
    return [row("W14", label, "ms", _scaled(times, 1e3), Target(False, peer="numpy", factor=2))]


# --- out of process ------------------------------------------------------------

def w7(run):
    steps = 1000 if run.quick else 10000
    res = run.child_results("W7")
    peak = {k: v["peak_mib"] if isinstance(v, dict) else v for k, v in res.items()}
    growth = {k: v["growth_mib"] if isinstance(v, dict) else v for k, v in res.items()}
    return [row("W7", f"W5 x{steps}: peak RSS", "MiB", peak, at_most(60)),
            row("W7", f"W5 x{steps}: growth after warm-up", "MiB", growth,
                Target(False, limit=1, strict=True), ratios=False)]


def w9(run):
    ops = 100_000 if run.quick else 1_000_000
    res = run.child_results("W9")
    rows = []
    for key, label, target in (("fwd_us", "fwd", COMPLETES), ("bwd_us", "backward", at_most(0.2)),
                               ("free_us", "free (del)", COMPLETES)):
        figures = {k: v[key] if isinstance(v, dict) else v for k, v in res.items()}
        rows.append(row("W9", f"{ops:,}-op chain: {label}", "µs/node", figures, target))
    return rows


def w8(run):
    """Wall time of `python -c "import <lib>"`, interpreters started in turn."""
    run.progress("W8", "import time")
    mods = [("fastgrad", run.subject_name), ("numpy", "numpy")]
    if run.peer is not None:
        mods.append(("torch", "torch"))
    samples = {name: [] for name, _ in mods}
    figures = {}
    for _ in range(3 if run.quick else max(5, run.repeat)):
        for name, module in mods:
            if name in figures:
                continue
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", f"import {module}"],
                                  env=run.child_env(), capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if proc.returncode:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1][:70]
                figures[name] = f"n/a (error: import failed: {last})"
            samples[name].append(elapsed)
    for name, values in samples.items():
        figures.setdefault(name, statistics.median(values) * 1e3)
    return [row("W8", "python -c 'import ...'", "ms", figures, Target(False, peer="torch", factor=0.1))]


def run_children(run, wanted):
    """One subprocess per library runs the wanted W7/W9 tasks in order.

    Returns {workload: {column: figures dict or 'n/a (...)'}}. A child that
    dies (a segfault on a deep graph, say) is reported, not propagated.
    """
    counts = {"W7": 1000 if run.quick else 10000, "W9": 100_000 if run.quick else 1_000_000}
    mods = [("fastgrad", run.subject_name)]
    if run.peer is not None:
        mods.append(("torch", "torch"))
    if "W7" in wanted:
        mods.insert(1, ("numpy", "numpy"))
    out = {w: {} for w in wanted}
    for name, module in mods:
        tasks = [f"{w}={counts[w]}" for w in wanted if not (w == "W9" and name == "numpy")]
        run.progress("+".join(wanted), f"subprocess {name}")
        try:
            proc = subprocess.run([sys.executable, CHILD, module, *tasks], env=run.child_env(),
                                  capture_output=True, text=True, timeout=900)
            lines, code = proc.stdout.splitlines(), proc.returncode
        except subprocess.TimeoutExpired:
            lines, code = [], "timeout"
        for line in lines:
            out.update({w: {**out[w], name: r} for w, r in json.loads(line).items()})
        for w in wanted:
            result = out[w].get(name)
            if isinstance(result, dict) and "error" in result:
                out[w][name] = result["error"]
            elif result is None and not (w == "W9" and name == "numpy"):
                why = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit {code}"
                out[w][name] = f"n/a (crashed: {why})"
    return out


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6,
             "W7": w7, "W8": w8, "W9": w9, "W10": w10, "W11": w11, "W12": w12, "W13": w13,
             "W14": w14}

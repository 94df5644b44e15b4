"""What a run prints and writes: the header, the table, JSON, the plot.

Nothing here measures anything. Rows come from suite.py; a figure is a
number or an 'n/a (...)' string; ratios are computed here, once, so the
table, the JSON and the plot agree.
"""
import json
import os
import platform
import subprocess
import time

import numpy as np

from .harness import ratio

COLUMN_ORDER = ("fastgrad", "numpy", "torch", "torch fused", "gemms")
PEERS = COLUMN_ORDER[1:]
RATIO_NOTE = ("x <peer> = peer figure / fastgrad figure for times and MiB, fastgrad / peer "
              "for GFLOP/s and speed-ups: > 1 means fastgrad is faster (or smaller)")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(where):
    """Short commit (+ '-dirty') of the checkout holding `where`, or None."""
    for cwd in (where, os.getcwd()):
        try:
            head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd,
                                  capture_output=True, text=True, timeout=10)
            if head.returncode:
                continue
            dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=cwd,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return head.stdout.strip() + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def _version(module):
    if module is None:
        return None
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version
            version = dist_version(module.__name__)
        except Exception:
            version = "unknown (no __version__)"
    return str(version)


def _loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def _host_speed():
    """One core's float32 GEMM rate at the start of the run: a shared host slows down in
    spells (this one's fell from ~95 to ~50 GMAC/s for an hour), and runs compare only at
    similar rates."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "not measured (no threadpoolctl)"
    a = np.ones((512, 512), np.float32)
    best = float("inf")
    with threadpool_limits(1):
        for _ in range(10):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    return f"one core, float32 512x512 GEMM (NumPy's BLAS): {512 ** 3 / best / 1e9:.0f} GMAC/s"


def _threads(module):
    get = getattr(module, "get_num_threads", None)
    try:
        return get() if get else None
    except Exception:
        return None


def _threads_line(run):
    fg = _threads(run.subject)
    if fg is None:
        fg = "default (no get_num_threads)" if run.subject is not None else "-"
    line = f"fastgrad {fg}, torch {run.peer_info.get('threads') or '-'} (in its own process)"
    if run.threads:
        blas = "limited" if run.blas_limit is not None else "not limited (no threadpoolctl)"
        line = f"requested {run.threads}: {line}, NumPy BLAS {blas}"
    return line


def header(run):
    """Machine and software facts, as a dict (JSON) in display order."""
    subject = run.subject
    where = os.path.dirname(os.path.abspath(getattr(subject, "__file__", None) or __file__))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{_cpu_model()}, {cores} cores usable ({os.cpu_count()} online)",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "fastgrad": _version(subject) or run.subject_note,
        "torch": run.peer_info.get("version") or run.peer_info["error"],
        "commit": _git_commit(where) or "not in a git checkout",
        "mode": f"{'quick' if run.quick else 'full'}, median of {run.repeat} repeats",
        "load": "1/5/15-min load average at start %.2f %.2f %.2f (the machine is "
                "shared: a load near the core count makes every figure noisy)" % _loadavg(),
        "threads": _threads_line(run),
        "host speed": _host_speed(),
    }
    if run.subject_name != "fastgrad":
        info["WARNING"] = (f"FASTGRAD_BENCH_SUBJECT={run.subject_name}: the 'fastgrad' column "
                           f"measures {run.subject_name}, not fastgrad (harness self-check)")
    return info


def add_ratios(rows):
    for r in rows:
        fg = r["figures"].get("fastgrad")
        r["ratios"] = {p: ratio(fg, r["figures"][p], r["better"] == "higher")
                       for p in PEERS if p in r["figures"]} if r["ratios"] is not False else {}
    return rows


def _fmt(v):
    if isinstance(v, str):
        return v
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def table(rows):
    """The run's table as text lines (Markdown-compatible pipes)."""
    cols = [c for c in COLUMN_ORDER if any(c in r["figures"] for r in rows)]
    peers = [c for c in cols if c != "fastgrad"]
    head = ["id", "case", "unit", *cols, *[f"x {p}" for p in peers], "target", "met"]
    body = []
    for r in rows:
        figs = [_fmt(r["figures"].get(c)) for c in cols]
        ratios = [_fmt(r["ratios"].get(p)) + ("x" if r["ratios"].get(p) else "")
                  for p in peers]
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        body.append([r["workload"], r["case"], r["unit"], *figs, *ratios, r["target"], met])
    widths = [max(len(str(line[i])) for line in [head] + body) for i in range(len(head))]
    numeric = set(range(3, 3 + len(cols) + len(peers)))

    def fmt_line(cells):
        return "| " + " | ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    lines = [fmt_line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt_line(b) for b in body]
    return lines


def print_report(info, rows, out):
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.ljust(width)} : {value}", file=out)
    print(file=out)
    for line in table(rows):
        print(line, file=out)
    print(f"\n{RATIO_NOTE}", file=out)
    met = [r["met"] for r in rows]
    print(f"targets met: {met.count(True)} of {len(met)} "
          f"({met.count(None)} without a fastgrad figure)", file=out)


def write_json(path, info, rows):
    with open(path, "w") as f:
        json.dump({"header": info, "ratio_meaning": RATIO_NOTE, "rows": rows}, f, indent=2,
                  ensure_ascii=False)


def write_plot(path, rows):
    """Bar chart: fastgrad's ratio to each peer, with the target as a tick.

    Returns a message for the user (written, or why not).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"--plot: matplotlib is not installed (pip install matplotlib); {path} not written"
    rows = [r for r in rows if r["ratios"]]
    peers = [p for p in PEERS if any(p in r["ratios"] for r in rows)]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows)), 5))
    width = 0.8 / max(1, len(peers))
    for j, peer in enumerate(peers):
        xs = [i + (j - (len(peers) - 1) / 2) * width for i in range(len(rows))]
        vals = [r["ratios"].get(peer) or 0 for r in rows]
        ax.bar(xs, vals, width, label=f"fastgrad vs {peer}")
        goals = [ratio(r["target_value"], r["figures"].get(peer), r["better"] == "higher")
                 for r in rows]
        pts = [(x, g) for x, g in zip(xs, goals) if g]
        if pts:
            ax.scatter(*zip(*pts), marker="_", s=300, color="black", zorder=3,
                       label="target" if j == 0 else None)
    ax.axhline(1, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['workload']} {r['case']}" for r in rows], rotation=60,
                       ha="right", fontsize=8)
    ax.set_ylabel("speed ratio (> 1: fastgrad faster)")
    ax.set_title("fastgrad-bench: ratio to each peer; black tick = target")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"

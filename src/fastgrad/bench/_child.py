"""Subprocess side of the workloads that must run alone: W7 (memory) and W9
(a 1,000,000-op chain, which may crash a library).

Run by path, not as `-m fastgrad.bench._child`, so that measuring torch or
NumPy does not import fastgrad too (that would add to the RSS being measured):

    python _child.py <module> W7=<steps> W9=<ops>

<module> is `fastgrad`, `torch` or `numpy` (NumPy by hand; W7 only). The
tasks run in the order given (W7 first, so the chain of W9 cannot inflate
W7's peak). Prints one JSON line per task as it finishes:
{"W7": figures} or {"W7": {"error": "n/a (...)"}}.
"""
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402  (this directory, loaded without the fastgrad package)
from harness import failure_note  # noqa: E402

MIB = 1024 * 1024


def _status_mib(field):
    """VmRSS / VmHWM of this process in MiB, from /proc/self/status."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        pass
    import resource                      # no /proc: peak is all we can get
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB


def w7(module, steps):
    """W5's training step `steps` times; RSS after import, warm-up, end; peak."""
    lib = importlib.import_module(module)
    after_import = _status_mib("VmRSS")
    if module == "numpy":
        step = cases.numpy_mlp((64, 128, 10), 64)
    else:
        step = cases.make_mlp(lib, (64, 128, 10), 64)
    warm = max(100, steps // 10)
    for _ in range(warm):
        step()
    after_warm = _status_mib("VmRSS")
    for _ in range(steps - warm):
        step()
    end = _status_mib("VmRSS")
    return {"import_mib": after_import, "warm_mib": after_warm, "end_mib": end,
            "growth_mib": end - after_warm, "peak_mib": _status_mib("VmHWM"),
            "steps": steps}


def w9(module, ops):
    """Build, back-propagate and free an `ops`-long chain; µs per node each."""
    lib = importlib.import_module(module)
    t0 = time.perf_counter()
    x, y = cases.w9_chain(lib, ops)
    t1 = time.perf_counter()
    y.sum().backward()
    t2 = time.perf_counter()
    grad_ok = x.grad is not None
    del y
    t3 = time.perf_counter()
    per = 1e6 / ops
    return {"fwd_us": (t1 - t0) * per, "bwd_us": (t2 - t1) * per,
            "free_us": (t3 - t2) * per, "grad_ok": grad_ok,
            "peak_mib": _status_mib("VmHWM"), "ops": ops}


def main(argv):
    module, tasks = argv[0], argv[1:]
    threads = os.environ.get("FASTGRAD_BENCH_THREADS")
    for task in tasks:
        workload, count = task.split("=")
        try:
            if threads:
                lib = importlib.import_module(module)
                if hasattr(lib, "set_num_threads"):
                    lib.set_num_threads(int(threads))
            result = {"W7": w7, "W9": w9}[workload](module, int(count))
        except Exception as exc:         # reported by the parent, never raised
            result = {"error": failure_note(exc)}
        print(json.dumps({workload: result}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

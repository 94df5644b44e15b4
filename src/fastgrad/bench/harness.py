"""Timing and bookkeeping shared by the workloads: no workload lives here.

`time_columns` times several libraries' `step()` on one workload in turn
(round-robin over repeats, so drifting machine load hits every column alike)
and returns the median seconds per call of each. `failure_note` turns the
exception a library raised while building or running a workload into the
`n/a (...)` text the table shows: a library that lacks an API must never
stop the run.
"""
import gc
import re
import statistics
import time
import types

MISSING = (AttributeError, NotImplementedError, TypeError)


def failure_note(exc):
    """'n/a (missing: fastgrad.tanh)' for a missing API, 'n/a (error: ...)' else."""
    if isinstance(exc, AttributeError) and getattr(exc, "name", None):
        obj = getattr(exc, "obj", None)
        if isinstance(obj, (types.ModuleType, type)):
            owner = obj.__name__              # fastgrad.nn.Sigmoid, Tensor.tanh
        else:
            owner = type(obj).__name__        # an instance: name its class
        return f"n/a (missing: {owner}.{exc.name})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    operands = re.match(r"unsupported operand type\(s\) for (\S+): '(\w+)' and '(\w+)'", text)
    if operands:                          # 'Tensor @ Tensor' says it in three words
        text = f"{operands[2]} {operands[1]} {operands[3]}"
    if len(text) > 70:
        text = text[:67] + "..."
    if isinstance(exc, MISSING):
        return f"n/a (missing: {text})"
    return f"n/a (error: {type(exc).__name__}: {text})"


class Column:
    """One library's run of one workload: a step builder, or why it has none."""

    def __init__(self, name, build=None, note=None):
        self.name = name                  # table column: fastgrad, numpy, torch, ...
        self.build = build                # () -> step(); None when note says why
        self.note = note                  # 'n/a (...)' when this column has no figure


def timed(step, calls):
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def time_columns(columns, repeat, min_time):
    """Median seconds per `step()` call for each column, or its note.

    Each column's step is built and called once untimed (warm-up, and the
    check that the library has every API the workload needs); then the
    number of calls per sample is doubled until a sample lasts `min_time`;
    then `repeat` samples are taken, columns in turn.
    """
    results, steps, calls = {}, {}, {}
    for col in columns:
        if col.build is None:
            results[col.name] = col.note or "n/a"
            continue
        try:
            step = col.build()
            step()
            n = 1
            while timed(step, n) * n < min_time and n < 1 << 20:
                n *= 2
        except Exception as exc:          # reported in the table, never raised
            results[col.name] = failure_note(exc)
            continue
        steps[col.name], calls[col.name] = step, n
    samples = {name: [] for name in steps}
    gc.collect()                          # once: a full collection costs ~0.1 s with torch
    for _ in range(repeat):
        for name, step in steps.items():
            try:
                samples[name].append(timed(step, calls[name]))
            except Exception as exc:
                results[name] = failure_note(exc)
    for name, values in samples.items():
        if name not in results:
            results[name] = statistics.median(values)
    steps.clear()                         # free the workloads' data before the next
    step = None
    gc.collect()
    return results


def ratio(fastgrad, peer, higher_is_better):
    """Peer time / fastgrad time (so > 1 means fastgrad is faster)."""
    if not isinstance(fastgrad, (int, float)) or not isinstance(peer, (int, float)):
        return None
    if fastgrad <= 0 or peer <= 0:
        return None
    return fastgrad / peer if higher_is_better else peer / fastgrad

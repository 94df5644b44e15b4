"""Timing and bookkeeping shared by the workloads: no workload lives here.

`time_columns` times several libraries' `step()` on one workload in turn
(round-robin over repeats, so drifting machine load hits every column alike)
and returns the median seconds per call of each; a peer library's columns
are timed in a process of its own (`Peer`, Note [Each library in its own
process]). `failure_note` turns the
exception a library raised while building or running a workload into the
`n/a (...)` text the table shows: a library that lacks an API must never
stop the run.
"""
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
import types

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peer.py")

# Seconds of idling before each sample: the column before may leave threads spinning (torch's
# OpenMP threads spun on for 1-5 ms after a loop here, taking a core from the next column).
SETTLE = 0.02

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
    """One library's run of one workload: a step builder, a case for a peer process, or why it
    has neither.

    `build` is `() -> step()`, run in this process; `peer` and `case` send the workload to a
    library's own process instead (a `Peer`; `case` is `(name in cases.py, args, kwargs)`).
    """

    def __init__(self, name, build=None, note=None, peer=None, case=None):
        self.name = name                  # table column: fastgrad, numpy, torch, ...
        self.build = build
        self.note = note                  # 'n/a (...)' when this column has no figure
        self.peer, self.case = peer, case

    def timer(self):
        if self.peer is not None:
            return self.peer.timer(self.case)
        if self.build is not None:
            return LocalTimer(self.build)
        return None


def timed(step, calls):
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


class LocalTimer:
    """A step built and timed in this process. `prepare` and `sample` return a note instead of
    raising: a library that lacks an API must never stop the run."""

    def __init__(self, build):
        self.build, self.step, self.calls = build, None, 1

    def prepare(self, min_time):
        """Build, call once untimed, then double the calls per sample until one lasts
        `min_time`; None, or the note saying why there is no figure."""
        try:
            self.step = self.build()
            self.step()
            while timed(self.step, self.calls) * self.calls < min_time \
                    and self.calls < 1 << 20:
                self.calls *= 2
        except Exception as exc:
            self.step = None
            return failure_note(exc)
        return None

    def sample(self):
        """Seconds per call over one sample, or a note."""
        try:
            return timed(self.step, self.calls)
        except Exception as exc:
            return failure_note(exc)

    def close(self):
        self.step = None


def speedup(step, set_threads, repeat):
    """time(1 thread) / time(2 threads) of `step`, thread counts alternated `repeat` times."""
    samples = {1: [], 2: []}
    for k in (1, 2):
        set_threads(k)
        step()                            # warm the pool
    for _ in range(repeat):
        for k in (1, 2):
            set_threads(k)
            samples[k].append(timed(step, 1))
    return statistics.median(samples[1]) / statistics.median(samples[2])


def time_columns(columns, repeat, min_time):
    """Median seconds per `step()` call for each column, or its note.

    Each column's step is built and called once untimed (warm-up, and the
    check that the library has every API the workload needs); then the
    number of calls per sample is doubled until a sample lasts `min_time`;
    then `repeat` samples are taken, columns in turn (a peer's samples in its
    own process, Note [Each library in its own process]).
    """
    results, timers = {}, {}
    for col in columns:
        timer = col.timer()
        note = (col.note or "n/a") if timer is None else timer.prepare(min_time)
        if note is None:
            timers[col.name] = timer
        else:
            results[col.name] = note
    samples = {name: [] for name in timers}
    gc.collect()                          # once: a full collection costs ~0.1 s with torch
    for _ in range(repeat):
        for name, timer in timers.items():
            if name in results:
                continue
            time.sleep(SETTLE)
            value = timer.sample()
            if isinstance(value, str):
                results[name] = value
            else:
                samples[name].append(value)
    for name, timer in timers.items():
        timer.close()                     # free the workloads' data before the next
        if name not in results:
            results[name] = statistics.median(samples[name])
    gc.collect()
    return results


# Note [Each library in its own process]
# Two libraries in one process share what each sets for the whole process: importing fastgrad
# raises glibc's mmap and trim thresholds (Note [Keeping large buffers] in kernels.pyx), both
# libraries size NumPy's or their own BLAS pools, and an OpenMP runtime loaded by one is the one
# the other gets (when fastgrad's loops ran on libgomp with passive waiting, torch's W12 step took
# 5.4 ms in a process that had imported fastgrad against 3.9 ms in one of its own). A user of
# torch does not run it like that, so each peer library is timed in a process of its own that
# never imports fastgrad (_peer.py, started by path), sent the workload's case by name; the
# columns are still sampled in turn, the parent waiting while the peer times.

class Peer:
    """A library (torch) timed in a process of its own: `_peer.py <module>`, one JSON request
    per line on its stdin, one JSON reply per line on its stdout. Started at once, to learn its
    version and thread count (`info`); restarted after a crash."""

    def __init__(self, module, env):
        self.module, self.env, self.proc, self._keys = module, env, None, 0
        self.info = self._start()

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, PEER, self.module], env=self.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        return self._reply()

    def _reply(self):
        line = self.proc.stdout.readline()
        if line:
            return json.loads(line)
        code = self.proc.wait()
        self.proc = None
        why = f"signal {-code}" if code < 0 else f"exit {code}"
        return {"error": f"n/a (crashed: {why})"}

    def ask(self, **request):
        """Send one request, return its reply (a dict; {"error": note} when it failed)."""
        if self.proc is None:
            started = self._start()
            if "error" in started:
                return started
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass                          # it died: _reply says how
        return self._reply()

    def timer(self, case):
        self._keys += 1
        return PeerTimer(self, self._keys, case)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None


class PeerTimer:
    """LocalTimer's interface for a step built and timed in a Peer's process."""

    def __init__(self, peer, key, case):
        self.peer, self.key, self.case = peer, key, case

    def prepare(self, min_time):
        return self.peer.ask(op="build", key=self.key, case=self.case,
                             min_time=min_time).get("error")

    def sample(self):
        reply = self.peer.ask(op="sample", key=self.key)
        return reply.get("error") or reply["seconds"]

    def close(self):
        if self.peer.proc is not None:
            self.peer.ask(op="drop", key=self.key)


def ratio(fastgrad, peer, higher_is_better):
    """Peer time / fastgrad time (so > 1 means fastgrad is faster)."""
    if not isinstance(fastgrad, (int, float)) or not isinstance(peer, (int, float)):
        return None
    if fastgrad <= 0 or peer <= 0:
        return None
    return fastgrad / peer if higher_is_better else peer / fastgrad

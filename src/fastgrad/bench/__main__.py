"""fastgrad-bench: run the workloads of bench/README.md beside the installed peers.

    fastgrad-bench                 # W1-W14
    fastgrad-bench W1 W4 --quick   # some workloads, the whole run under ~30 s
    python -m fastgrad.bench --repeat 7 --threads 2 --json out.json --plot out.png

Peers: NumPy by hand (always, where a workload has a by-hand form) and
PyTorch when it is installed (plus torch's fused Adam on W5/W6). fastgrad and
NumPy are timed in this process, torch in a process of its own (harness.Peer),
the columns in turn; each figure is the median of the repeats.
"""
import argparse
import importlib
import importlib.util
import os
import sys
import time

from . import cases, harness, report, suite


class Run:
    """Options, the libraries under test, and progress for one invocation."""

    def __init__(self, args, wanted):
        self.quick, self.threads, self.wanted = args.quick, args.threads, wanted
        self.repeat = args.repeat or (3 if args.quick else 5)
        self.min_time = 0.01 if args.quick else 0.1     # seconds per timed sample
        # FASTGRAD_BENCH_SUBJECT lets a developer check this harness against
        # another module (torch) before fastgrad runs; the report says so loudly.
        self.subject_name = os.environ.get("FASTGRAD_BENCH_SUBJECT", "fastgrad")
        self.subject, self.subject_note = self._import(self.subject_name)
        self._default_threads = None
        if self.subject is not None and hasattr(self.subject, "get_num_threads"):
            self._default_threads = self.subject.get_num_threads()
        if self.threads and self.subject is not None:
            self.restore_threads()
        self.blas_limit = None
        if self.threads:
            try:                          # NumPy's BLAS pool too, when threadpoolctl is there
                from threadpoolctl import threadpool_limits
                self.blas_limit = threadpool_limits(limits=self.threads)
            except ImportError:
                pass
        # torch never loads here (Note [Each library in its own process])
        self.peer, self.peer_info = None, {"error": "not installed"}
        if importlib.util.find_spec("torch") is not None:
            self.peer = harness.Peer("torch", self.child_env())
            self.peer_info = self.peer.info
            if "error" in self.peer_info:
                self.peer.close()
                self.peer = None
        self._children = None
        self._started, self._step, self._line = time.perf_counter(), 0, ""

    @staticmethod
    def _import(name):
        try:
            return importlib.import_module(name), None
        except Exception as exc:
            return None, f"n/a (cannot import {name}: {type(exc).__name__}: {exc})"

    def columns(self, case, numpy=None, fused=None, gemms=None):
        """Table columns for a workload. case = (name in cases.py, args, kwargs): the make
        function of fastgrad's and torch's columns, called as make(lib, *args, **kwargs);
        numpy() -> step for NumPy by hand; fused: the case of torch's fused-Adam column;
        gemms() -> the step's matrix products alone, in NumPy."""
        name, args, kwargs = case
        if self.subject is None:
            cols = [suite.Column("fastgrad", note=self.subject_note)]
        else:
            cols = [suite.Column("fastgrad", build=lambda: getattr(cases, name)(
                self.subject, *args, **kwargs))]
        if numpy is not None:
            cols.append(suite.Column("numpy", build=numpy))
        if self.peer is not None:
            cols.append(suite.Column("torch", peer=self.peer, case=case))
            if fused is not None:
                cols.append(suite.Column("torch fused", peer=self.peer, case=fused))
        if gemms is not None:
            cols.append(suite.Column("gemms", build=gemms))
        return cols

    def time(self, columns):
        return suite.time_columns(columns, self.repeat, self.min_time)

    def restore_threads(self):
        """fastgrad back to --threads, or to the count it started with."""
        count = self.threads or self._default_threads
        if count and hasattr(self.subject, "set_num_threads"):
            self.subject.set_num_threads(count)

    def child_env(self):
        """Environment for subprocesses: they must find the same fastgrad."""
        env = dict(os.environ)
        pkg = getattr(self.subject, "__file__", None) or next(
            iter(getattr(self.subject, "__path__", [])), None)
        if pkg:
            root = os.path.dirname(os.path.dirname(os.path.abspath(pkg)))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if self.threads:
            env["FASTGRAD_BENCH_THREADS"] = str(self.threads)
        return env

    def child_results(self, workload):
        """W7 and W9 share one subprocess per library (one torch import)."""
        if self._children is None:
            wanted = [w for w in ("W7", "W9") if w in self.wanted]
            self._children = suite.run_children(self, wanted)
        return self._children[workload]

    def progress(self, workload, label):
        """One status line on stderr: overwritten on a terminal, appended otherwise."""
        if workload != getattr(self, "_workload", None):
            self._workload, self._step = workload, self._step + 1
        text = (f"[{self._step}/{len(self.wanted)} {time.perf_counter() - self._started:5.1f}s] "
                f"{workload} {label}")
        if sys.stderr.isatty():
            sys.stderr.write("\r" + text.ljust(len(self._line)))
        else:
            sys.stderr.write(text + "\n")
        self._line = text
        sys.stderr.flush()

    def done(self):
        if self.peer is not None:
            self.peer.close()
        if sys.stderr.isatty() and self._line:
            sys.stderr.write("\r" + " " * len(self._line) + "\r")
        sys.stderr.write(f"done in {time.perf_counter() - self._started:.1f} s\n")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fastgrad-bench",
        description="Time fastgrad on the workloads of bench/README.md beside NumPy by hand "
                    "and PyTorch (when installed). Ratios are peer/fastgrad: > 1 means "
                    "fastgrad is faster.")
    p.add_argument("workloads", nargs="*", metavar="W",
                   help=f"workloads to run (default: all of {', '.join(suite.WORKLOADS)})")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer samples: the whole run in under ~30 s")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="timed samples per figure, median taken (default 5; 3 with --quick)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads for fastgrad (fastgrad.set_num_threads) and torch")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="bar chart of the ratios against the targets (needs matplotlib)")
    args = p.parse_args(argv)
    wanted = [w.upper() for w in args.workloads] or list(suite.WORKLOADS)
    unknown = [w for w in wanted if w not in suite.WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from "
                f"{', '.join(suite.WORKLOADS)}")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    return args, list(dict.fromkeys(wanted))


def main(argv=None):
    args, wanted = parse_args(sys.argv[1:] if argv is None else argv)
    run = Run(args, wanted)
    info = report.header(run)
    rows = []
    for workload in wanted:
        try:
            rows += suite.WORKLOADS[workload](run)
        except Exception as exc:                 # a harness bug must not lose the rest
            rows.append(suite.row(workload, "(workload failed)", "-",
                                  {"fastgrad": suite.failure_note(exc)}, suite.COMPLETES))
    run.done()
    report.add_ratios(rows)
    report.print_report(info, rows, sys.stdout)
    if args.json:
        report.write_json(args.json, info, rows)
        print(f"JSON written to {args.json}")
    if args.plot:
        print(report.write_plot(args.plot, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

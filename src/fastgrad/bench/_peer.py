"""Process side of a peer library's columns (Note [Each library in its own process] in
harness.py): builds and times the workloads of cases.py on one library, on request.

Run by path, not as `-m fastgrad.bench._peer`, so that the library timed here is the only one
this process loads:

    python _peer.py <module>

First line out: {"version": ..., "threads": ...} or {"error": "n/a (cannot import ...)"}.
Then one JSON request per line in, one reply per line out, until stdin closes:
    {"op": "build", "key": k, "case": [name, args, kwargs], "min_time": s} -> {} or {"error"}
    {"op": "sample", "key": k}                    -> {"seconds": per call} or {"error"}
    {"op": "drop", "key": k}                      -> {}
    {"op": "speedup", "case": [...], "repeat": n} -> {"value": t1 / t2} or {"error"}
"""
import gc
import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402  (this directory, loaded without the fastgrad package)
from harness import LocalTimer, failure_note, speedup  # noqa: E402


def _builder(lib, case):
    name, args, kwargs = case
    return lambda: getattr(cases, name)(lib, *args, **kwargs)


def _version(lib):
    version = getattr(lib, "__version__", None)
    return str(version) if version is not None else "unknown (no __version__)"


def serve(lib, requests, reply):
    timers = {}
    start_threads = lib.get_num_threads() if hasattr(lib, "get_num_threads") else None
    for line in requests:
        request = json.loads(line)
        op = request["op"]
        if op == "build":
            timer = LocalTimer(_builder(lib, request["case"]))
            note = timer.prepare(request["min_time"])
            if note is None:
                timers[request["key"]] = timer
            gc.collect()                  # setup's garbage, before the timed samples
            reply({} if note is None else {"error": note})
        elif op == "sample":
            value = timers[request["key"]].sample()
            reply({"error": value} if isinstance(value, str) else {"seconds": value})
        elif op == "drop":
            timers.pop(request["key"]).close()
            gc.collect()
            reply({})
        elif op == "speedup":
            set_threads = getattr(lib, "set_num_threads", None)
            if set_threads is None:
                reply({"error": f"n/a (missing: {lib.__name__}.set_num_threads)"})
                continue
            try:
                step = _builder(lib, request["case"])()
                reply({"value": speedup(step, set_threads, request["repeat"])})
            except Exception as exc:
                reply({"error": failure_note(exc)})
            finally:
                step = None
                if start_threads:
                    set_threads(start_threads)
        else:
            reply({"error": f"n/a (error: unknown request {op!r})"})


def main(argv):
    # the replies get the pipe to themselves: whatever the library prints, from Python or from
    # C (file descriptor 1), goes to stderr
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message):
        out.write(json.dumps(message) + "\n")
        out.flush()
    try:
        lib = importlib.import_module(argv[0])
        threads = os.environ.get("FASTGRAD_BENCH_THREADS")
        if threads and hasattr(lib, "set_num_threads"):
            lib.set_num_threads(int(threads))
    except Exception as exc:
        reply({"error": f"n/a (cannot import {argv[0]}: {type(exc).__name__}: {exc})"})
        return
    reply({"version": _version(lib),
           "threads": lib.get_num_threads() if hasattr(lib, "get_num_threads") else None})
    serve(lib, sys.stdin, reply)


if __name__ == "__main__":
    main(sys.argv[1:])

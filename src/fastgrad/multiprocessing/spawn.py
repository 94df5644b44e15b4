"""spawn / start_processes: run fn(i, *args) in nprocs processes and wait for them, raising in the
parent what made one of them fail (torch.multiprocessing.spawn)."""
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings

__all__ = ["ProcessContext", "ProcessException", "ProcessExitedException",
           "ProcessRaisedException", "spawn", "SpawnContext", "start_processes"]


class ProcessException(Exception):
    """A process started by spawn / start_processes failed: which one (error_index) and its pid."""

    def __init__(self, msg, error_index, error_pid):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """The process's function raised; the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """The process exited with a non-zero code or was killed by a signal."""

    def __init__(self, msg, error_index, error_pid, exit_code, signal_name=None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return (type(self), (self.msg, self.error_index, self.error_pid, self.exit_code,
                             self.signal_name))


def _run(fn, i, args, error_path):
    """The started process's body: fn(i, *args); a traceback goes to error_path for the parent."""
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass                                   # the parent is stopping the processes
    except Exception:
        import traceback
        with open(error_path, "wb") as f:
            pickle.dump(traceback.format_exc(), f)
        sys.exit(1)


class ProcessContext:
    """The processes start_processes started (join=False): join() waits for them."""

    def __init__(self, processes, error_files):
        self.processes = processes
        self.error_files = error_files
        self.sentinels = {p.sentinel: i for i, p in enumerate(processes)}

    def pids(self):
        return [int(p.pid) for p in self.processes]

    def _join_all(self, seconds):
        end = time.monotonic() + seconds
        for p in self.processes:
            p.join(max(0.0, end - time.monotonic()))

    def join(self, timeout=None, grace_period=None):
        """Wait up to `timeout` seconds (None: until one finishes). True once every process has
        finished cleanly, False while some still run; when one failed, stop the others (SIGTERM,
        after `grace_period` seconds if given, then SIGKILL) and raise ProcessRaisedException
        with its traceback or ProcessExitedException with its exit code or signal."""
        if not self.sentinels:
            return True
        failed = None
        for sentinel in multiprocessing.connection.wait(list(self.sentinels), timeout=timeout):
            i = self.sentinels.pop(sentinel)
            self.processes[i].join()
            if self.processes[i].exitcode != 0:
                failed = i
                break
        if failed is None:
            return not self.sentinels
        if grace_period is not None:
            self._join_all(grace_period)
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        self._join_all(30 if grace_period is None else grace_period)
        for p in self.processes:
            if p.is_alive():
                p.kill()
            p.join()
        self._raise(failed)

    def _raise(self, i):
        proc, path = self.processes[i], self.error_files[i]
        if os.access(path, os.R_OK):
            with open(path, "rb") as f:
                trace = pickle.load(f)
            os.unlink(path)
            raise ProcessRaisedException(
                f"\n\n-- Process {i} terminated with the following error:\n{trace}", i, proc.pid)
        code = proc.exitcode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"<Unknown signal {-code}>"
            raise ProcessExitedException(f"process {i} terminated with signal {name}", i,
                                         proc.pid, code, name)
        raise ProcessExitedException(f"process {i} terminated with exit code {code}", i,
                                     proc.pid, code)


class SpawnContext(ProcessContext):
    def __init__(self, processes, error_files):
        warnings.warn("SpawnContext is renamed to ProcessContext since 1.4 release.",
                      stacklevel=2)
        super().__init__(processes, error_files)


def _error_path():
    """A path where no file is yet: a failing process writes its traceback there."""
    fd, path = tempfile.mkstemp(prefix="fastgrad-errorfile-", suffix=".pickle")
    os.close(fd)
    os.unlink(path)
    return path


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Start nprocs processes with `start_method` running fn(i, *args) for i in range(nprocs);
    wait for them (join=True, returns None) or return their ProcessContext."""
    ctx = multiprocessing.get_context(start_method)
    processes, error_files = [], []
    for i in range(nprocs):
        path = _error_path()
        p = ctx.Process(target=_run, args=(fn, i, args, path), daemon=daemon)
        p.start()
        processes.append(p)
        error_files.append(path)
    context = ProcessContext(processes, error_files)
    if not join:
        return context
    while not context.join():
        pass


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """start_processes with the 'spawn' start method: fn must be defined at a module's top level
    (it is pickled), and the script's main code guarded by `if __name__ == "__main__":`."""
    if start_method != "spawn":
        warnings.warn(f"spawn() only supports start_method=spawn (got: {start_method}); to use "
                      f"another start method call start_processes(...)", FutureWarning,
                      stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")

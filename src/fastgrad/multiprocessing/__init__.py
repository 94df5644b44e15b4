"""fastgrad.multiprocessing: Python's multiprocessing (the same names: Process, Queue, Pool,
get_context, set_start_method ...) with tensors that processes share, as torch.multiprocessing.

Tensor.share_memory_() / Module.share_memory() move values into shared memory (Note [Shared
memory] in fastgrad/_shared_memory.py). Processes forked afterwards share them; so do processes
that receive them through this module's queues and pipes, or as the arguments of a process
started with 'spawn' or 'forkserver' (reductions.py). spawn() runs a function in several
processes and raises in the parent what made one of them fail.

A forked child runs fastgrad's parallel loops on one thread (Note [Threads after fork] in
_core/kernels.pyx); a spawned one has its own thread team.
"""
import multiprocessing
import sys

from multiprocessing import *  # noqa: F401,F403

from fastgrad.multiprocessing.reductions import init_reductions
from fastgrad.multiprocessing.spawn import (ProcessContext, ProcessExitedException,  # noqa: F401
                                            ProcessRaisedException, SpawnContext, spawn,
                                            start_processes)

__all__ = ["set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies"]
__all__ += multiprocessing.__all__

# PyTorch's names. fastgrad sends a shared tensor as a file descriptor under either strategy
# (reductions.py); "file_system", which PyTorch offers against running out of descriptors, is
# accepted so that scripts choosing it run. Tensors that are not in shared memory travel by value
# and hold no descriptor, which covers DataLoader workers' batches.
if sys.platform in ("darwin", "win32"):
    _sharing_strategy = "file_system"
    _all_sharing_strategies = {"file_system"}
else:
    _sharing_strategy = "file_descriptor"
    _all_sharing_strategies = {"file_descriptor", "file_system"}


def set_sharing_strategy(new_strategy):
    """Choose how CPU tensors are shared: one of get_all_sharing_strategies()."""
    global _sharing_strategy
    if new_strategy not in _all_sharing_strategies:
        raise AssertionError(f"invalid sharing strategy {new_strategy!r}, expected one of "
                             f"{sorted(_all_sharing_strategies)}")
    _sharing_strategy = new_strategy


def get_sharing_strategy():
    """The strategy set_sharing_strategy chose (default: 'file_descriptor' on Linux)."""
    return _sharing_strategy


def get_all_sharing_strategies():
    """The sharing strategies this system supports."""
    return _all_sharing_strategies


init_reductions()

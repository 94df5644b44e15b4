"""The DataLoader worker process: its loop, get_worker_info(), and how errors travel back.

A worker takes (epoch, task, index) from its own index queue, fetches and collates the batch,
and puts (epoch, task, payload) on the shared result queue. The payload is pickled here, in the
worker, so that a batch or an exception that cannot be pickled becomes an error the main process
sees rather than a batch lost in the queue's feeder thread. `None` on the index queue stops the
worker; RESUME starts a new epoch of an IterableDataset for persistent workers."""
import os
import pickle
import queue
import random
import sys
import traceback

RESUME = "resume"
POLL_SECONDS = 1.0

_worker_info = None


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed, dataset."""
    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return (f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
                f"dataset={self.dataset!r})")


def get_worker_info():
    """The WorkerInfo of this DataLoader worker process; None in the main process."""
    return _worker_info


class ExceptionWrapper:
    """An exception raised in a worker, carried to the main process with its traceback text."""

    def __init__(self, exc_info, where):
        exc_type = exc_info[0]
        try:
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = RuntimeError
        self.exc_type = exc_type
        self.msg = (f"Caught {exc_info[0].__name__} {where}.\nOriginal "
                    + "".join(traceback.format_exception(*exc_info)))

    def reraise(self):
        try:
            exc = self.exc_type(self.msg)
        except Exception:
            exc = RuntimeError(self.msg)
        raise exc


class IterableEnd:
    """A worker's IterableDataset copy is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


def _seed_everything(seed):
    random.seed(seed)
    import numpy as np
    np.random.seed(seed % 2 ** 32)
    import fastgrad
    fastgrad.manual_seed(seed)


def worker_loop(iterable, dataset, index_queue, result_queue, auto_collation, collate_fn,
                drop_last, base_seed, init_fn, worker_id, num_workers, parent_pid):
    global _worker_info
    from fastgrad.utils.data._fetch import make_fetcher
    where = f"in DataLoader worker process {worker_id}"
    result_queue.cancel_join_thread()        # exiting never waits on an unread batch
    seed = base_seed + worker_id
    fetcher, pending_error = None, None
    try:
        _seed_everything(seed)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
    except Exception:
        pending_error = ExceptionWrapper(sys.exc_info(), where)
    ended = False
    while True:
        try:
            task = index_queue.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if os.getppid() != parent_pid:       # the main process died: stop
                return
            continue
        except (EOFError, OSError):
            return
        if task is None:
            return
        if task == RESUME:
            if pending_error is None:
                try:
                    fetcher = make_fetcher(iterable, dataset, auto_collation, collate_fn,
                                           drop_last)
                except Exception:
                    pending_error = ExceptionWrapper(sys.exc_info(), where)
            ended = False
            continue
        epoch, number, index = task
        if pending_error is not None:
            data, pending_error = pending_error, None
        elif ended:
            data = IterableEnd(worker_id)
        else:
            try:
                data = fetcher.fetch(index)
            except StopIteration:
                if not iterable:
                    data = ExceptionWrapper(sys.exc_info(), where)
                else:
                    data, ended = IterableEnd(worker_id), True
            except Exception:
                data = ExceptionWrapper(sys.exc_info(), where)
        try:
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            payload = pickle.dumps(ExceptionWrapper(sys.exc_info(), f"pickling a batch {where}"))
        result_queue.put((epoch, number, payload))

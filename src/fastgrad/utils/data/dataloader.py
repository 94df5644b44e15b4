"""DataLoader: batches of a dataset in the sampler's order, in this process or in worker
processes (num_workers > 0).

Workers are processes from `multiprocessing_context` (default: multiprocessing's default start
method, fork on Linux as in PyTorch). A forked worker is safe with fastgrad's thread team: the
child runs fastgrad's loops on one thread (Note [Threads after fork] in kernels.pyx); `spawn` and
`forkserver` work too, for picklable datasets and a script guarded by
`if __name__ == "__main__":`."""
import atexit
import itertools
import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import time
import warnings
import weakref

from fastgrad.utils.data import _random, _worker
from fastgrad.utils.data._collate import default_collate, default_convert
from fastgrad.utils.data._fetch import gathers, make_fetcher
from fastgrad.utils.data.dataset import IterableDataset
from fastgrad.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


class _InfiniteConstantSampler(Sampler):
    """The sampler of an IterableDataset: None forever (the dataset decides when to stop)."""

    def __iter__(self):
        while True:
            yield None


_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
           "persistent_workers")


class DataLoader:
    """Iterate over `dataset` in batches; PyTorch's arguments and checks."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value, unset in (("shuffle", shuffle, shuffle in (None, False)),
                                       ("sampler", sampler, sampler is None),
                                       ("batch_sampler", batch_sampler, batch_sampler is None)):
                if not unset:
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value!r} (an "
                                     f"IterableDataset decides its own order)")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle (shuffle "
                             "through the sampler, e.g. RandomSampler)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        if isinstance(multiprocessing_context, str):
            multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self._iterable = iterable
        self._iterator = None
        self._initialized = True

    def __setattr__(self, name, value):
        if name in _FROZEN and getattr(self, "_initialized", False):
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} "
                             f"is initialized; make a new DataLoader instead")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _index_iter(self):
        """The batch sampler's batches; as int64 arrays when batches are gathered (a plain
        BatchSampler then slices them from its sampler's index arrays)."""
        if (type(self.batch_sampler) is BatchSampler and not self._iterable
                and gathers(self.dataset, True, self.collate_fn)):
            return self.batch_sampler._index_batches()
        return iter(self._index_sampler)

    def __iter__(self):
        if self.pin_memory:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=2)
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset(self)
            return self._iterator
        return _MultiProcessIter(self)

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)


class _BaseIter:
    def __init__(self, loader):
        self._loader = loader
        self._sampler_iter = loader._index_iter()
        # drawn whether or not there are workers, as PyTorch does, so that the global random
        # stream moves on by the same draws
        self._base_seed = _random.seed_from(loader.generator)

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = make_fetcher(loader._iterable, loader.dataset, loader._auto_collation,
                                     loader.collate_fn, loader.drop_last)

    def __next__(self):
        return self._fetcher.fetch(next(self._sampler_iter))


_running = weakref.WeakSet()             # iterators whose workers are up


@atexit.register
def _stop_all_workers():
    # before multiprocessing's own exit handler (atexit runs last-registered first), while the
    # queues still deliver the stop message: idle workers then exit at once
    for it in list(_running):
        it._shutdown_workers()


class _MultiProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        _running.add(self)
        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        n = loader.num_workers
        self._num_workers = n
        self._prefetch = max(1, loader.prefetch_factor * n)
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._result_queue = ctx.Queue()
        self._index_queues, self._workers = [], []
        self._shutdown = False
        self._epoch = 0
        try:
            for i in range(n):
                index_queue = ctx.Queue()
                index_queue.cancel_join_thread()
                w = ctx.Process(target=_worker.worker_loop, daemon=True, args=(
                    loader._iterable, loader.dataset, index_queue, self._result_queue,
                    loader._auto_collation, loader.collate_fn, loader.drop_last,
                    self._base_seed, loader.worker_init_fn, i, n, os.getpid()))
                w.start()
                self._index_queues.append(index_queue)
                self._workers.append(w)
        except BaseException:
            self._shutdown_workers()
            raise
        self._start_epoch()

    def _start_epoch(self):
        self._send, self._rcvd = 0, 0
        self._tasks = {}                 # task number -> [worker id] or [worker id, payload]
        self._outstanding = 0
        self._active = [True] * self._num_workers
        self._next_worker = itertools.cycle(range(self._num_workers))
        for _ in range(self._prefetch):
            self._put_index()

    def _reset(self, loader):
        """A new epoch over the same (persistent) workers."""
        self._sampler_iter = loader._index_iter()
        self._epoch += 1
        if loader._iterable:
            for q in self._index_queues:
                q.put(_worker.RESUME)
        self._start_epoch()

    def _put_index(self):
        if self._outstanding >= self._prefetch:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._next_worker)
            if self._active[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._epoch, self._send, index))
        self._tasks[self._send] = [worker_id]
        self._outstanding += 1
        self._send += 1

    def __next__(self):
        while True:
            while self._rcvd < self._send:
                task = self._tasks[self._rcvd]
                if len(task) == 2 or self._active[task[0]]:
                    break
                del self._tasks[self._rcvd]          # its worker's iterable ended
                self._rcvd += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            task = self._tasks[self._rcvd]
            if len(task) == 2:
                del self._tasks[self._rcvd]
                self._rcvd += 1
                return self._process(task[1])
            epoch, number, payload = self._get()
            if epoch != self._epoch:
                continue                            # a batch of an abandoned epoch
            self._outstanding -= 1
            data = pickle.loads(payload)
            if isinstance(data, _worker.IterableEnd):
                self._active[data.worker_id] = False
                self._put_index()
                continue
            if number != self._rcvd:
                self._tasks[number].append(data)
                continue
            del self._tasks[number]
            self._rcvd += 1
            return self._process(data)

    def _process(self, data):
        self._put_index()
        if isinstance(data, _worker.ExceptionWrapper):
            data.reraise()
        return data

    def _get(self):
        start = time.monotonic()
        while True:
            wait = _worker.POLL_SECONDS
            if self._timeout > 0:
                wait = min(wait, max(0.0, self._timeout - (time.monotonic() - start)))
            try:
                return self._result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            if self._timeout > 0 and time.monotonic() - start >= self._timeout:
                self._shutdown_workers(wait=0.0)        # they are stuck in the dataset
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds; raise "
                                   f"timeout= or make the dataset's __getitem__ faster")
            dead = [w.pid for w, on in zip(self._workers, self._active)
                    if on and not w.is_alive()]
            if dead:
                self._shutdown_workers()
                raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) "
                                   f"exited unexpectedly; run with num_workers=0 to see the "
                                   f"error in this process")

    def _shutdown_workers(self, wait=2.0):
        """Stop the workers: idle ones exit on the None sent to them; any still running after
        `wait` seconds (busy in the dataset) are terminated."""
        if self._shutdown:
            return
        self._shutdown = True
        if getattr(multiprocessing.util, "_exiting", False):
            wait = 0.0                # queues no longer deliver once multiprocessing has exited
        for q in self._index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + wait
        for w in self._workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.is_alive():
                w.terminate()
                w.join(timeout=1)
        for q in self._index_queues:
            q.close()
        self._result_queue.cancel_join_thread()
        self._result_queue.close()

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass

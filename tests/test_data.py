"""fastgrad.utils.data as torch.utils.data: datasets, samplers, default_collate, random_split and
DataLoader (in this process and with worker processes), compared with PyTorch where installed
(FASTGRAD_TEST_BACKEND=torch runs the file on PyTorch itself)."""
import collections
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE

data = fg.utils.data
Point = collections.namedtuple("Point", "x y")


def _plain(obj):
    """A library-neutral picture of a collated structure: containers by type name, tensors as
    (dtype name, shape, values)."""
    if hasattr(obj, "dtype") and hasattr(obj, "shape") and not isinstance(obj, np.ndarray):
        return ("tensor", str(obj.dtype), tuple(obj.shape), obj.tolist())
    if isinstance(obj, dict):
        return ("dict", {k: _plain(v) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, [_plain(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_plain(v) for v in obj])
    return obj


def _batches(loader):
    return [_plain(b) for b in loader]


class Squares(data.Dataset):
    """sample i = (i*i as float32 vector, i); index 7 raises when `bad`."""

    def __init__(self, n, bad=False):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.bad and i == 7:
            raise KeyError(f"no sample {i}")
        return np.full(3, i * i, dtype=np.float32), i


class Counting(data.IterableDataset):
    """0 .. n-1, split between workers by get_worker_info()."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))

    def __len__(self):
        return self.n


class WorkerIds(data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = data.get_worker_info()
        return -1 if info is None else info.id


def _samples(n=10):
    x = fg.arange(n * 3, dtype=fg.float32).reshape(n, 3)
    y = fg.arange(n)
    return data.TensorDataset(x, y)


# --- imports ---------------------------------------------------------------------------------

def test_import_paths():
    from fastgrad.utils.data import DataLoader, TensorDataset  # noqa: F401
    import fastgrad as torch
    assert torch.utils.data.DataLoader is DataLoader
    assert data.get_worker_info() is None


# --- batches in order, compared with PyTorch ---------------------------------------------------

@pytest.mark.parametrize("batch_size,drop_last", [(4, False), (4, True), (1, False), (10, False),
                                                  (11, False)])
def test_sequential_batches_match_torch(batch_size, drop_last):
    torch = pytest.importorskip("torch")
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    ours = data.DataLoader(data.TensorDataset(fg.tensor(x), fg.arange(10)),
                           batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(x), torch.arange(10)),
        batch_size=batch_size, drop_last=drop_last)
    assert _batches(ours) == _batches(theirs)
    assert len(ours) == len(theirs)


def test_tensor_dataset_batches_values():
    batches = list(data.DataLoader(_samples(), batch_size=4))
    assert [type(b) for b in batches] == [list] * 3
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[2][0].tolist() == [[24.0, 25.0, 26.0], [27.0, 28.0, 29.0]]
    assert batches[0][0].dtype == fg.float32 and batches[0][1].dtype == fg.int64


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own promise: one gather per tensor")
def test_tensor_dataset_batch_is_one_gather_not_per_sample(monkeypatch):
    calls = []
    original = data.TensorDataset.__getitem__

    def counted(self, index):
        calls.append(index)
        return original(self, index)

    monkeypatch.setattr(data.TensorDataset, "__getitem__", counted)
    ds = _samples(10)
    batches = list(data.DataLoader(ds, batch_size=4, shuffle=True))
    assert calls == []                                   # no per-sample __getitem__
    # the same batch as the per-sample path (a custom collate_fn disables the gather)
    order = [i for b in batches for i in b[1].tolist()]
    per_sample = data.DataLoader(ds, batch_size=4, sampler=order,
                                 collate_fn=lambda b: data.default_collate(b))
    for fast, slow in zip(batches, per_sample):
        assert _plain(fast) == _plain(slow)
    assert len(calls) == 10
    # Subsets of it (random_split) are gathered too, through their index lists
    calls.clear()
    train, val = data.random_split(ds, [7, 3])
    for part in (train, val, data.Subset(train, [6, 0, 2])):
        fast = list(data.DataLoader(part, batch_size=4, shuffle=True))
        assert calls == []
        order = [i for b in fast for i in b[1].tolist()]
        slow = data.DataLoader(ds, batch_size=4, sampler=order,
                               collate_fn=lambda b: data.default_collate(b))
        assert [_plain(b) for b in fast] == [_plain(b) for b in slow]
        calls.clear()
    with pytest.raises(IndexError, match="out of bounds"):
        list(data.DataLoader(data.Subset(ds, [0, 12]), batch_size=2))


def test_squares_batches_and_map_dataset_match_torch():
    torch = pytest.importorskip("torch")

    class TorchSquares(torch.utils.data.Dataset):
        __len__ = Squares.__len__
        __getitem__ = Squares.__getitem__
        __init__ = Squares.__init__

    ours = data.DataLoader(Squares(9), batch_size=4)
    theirs = torch.utils.data.DataLoader(TorchSquares(9), batch_size=4)
    assert _batches(ours) == _batches(theirs)


def test_batch_size_none_converts_each_sample():
    out = list(data.DataLoader(Squares(3), batch_size=None))
    assert len(out) == 3
    assert isinstance(out[2], list) and out[2][1] == 2
    assert out[2][0].dtype == fg.float32 and out[2][0].tolist() == [4.0, 4.0, 4.0]


def test_batch_sampler_and_sampler_arguments():
    bs = data.BatchSampler(data.SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    bs = data.BatchSampler(range(7), 3, drop_last=True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2
    loader = data.DataLoader(_samples(), batch_sampler=[[9, 0], [5]])
    assert [b[1].tolist() for b in loader] == [[9, 0], [5]]
    loader = data.DataLoader(_samples(), batch_size=3, sampler=[2, 4, 6, 8])
    assert [b[1].tolist() for b in loader] == [[2, 4, 6], [8]] and len(loader) == 2


def test_concat_subset_and_getitems():
    a, b = _samples(4), _samples(3)
    cat = data.ConcatDataset([a, b])
    assert len(cat) == 7 and cat[5][1].item() == 1 and cat[-1][1].item() == 2
    assert (a + b).cumulative_sizes == [4, 7]
    sub = data.Subset(a, [3, 1])
    assert len(sub) == 2 and sub[0][1].item() == 3
    assert [x[1].tolist() for x in data.DataLoader(sub, batch_size=2)] == [[3, 1]]
    with pytest.raises(ValueError):
        cat[-8]


# --- default_collate -----------------------------------------------------------------------------

COLLATE_CASES = {
    "ints": [1, 2, 3],
    "floats": [1.5, 2.0],
    "bools": [True, False],
    "strings": ["a", "bc"],
    "numpy scalars": [np.float32(1.5), np.float32(2)],
    "numpy int scalars": [np.int32(1), np.int32(2)],
    "numpy arrays": [np.zeros((2, 2), np.float64), np.ones((2, 2), np.float64)],
    "tuples": [(1, 2.0, "a"), (3, 4.0, "b")],
    "lists": [[1, 2], [3, 4]],
    "dicts": [{"x": 1, "y": [1.0, 2.0]}, {"x": 2, "y": [3.0, 4.0]}],
    "namedtuples": [Point(1, 2.5), Point(3, 4.5)],
    "nested": [({"a": np.int64(1)}, [np.ones(2, np.int16)]),
               ({"a": np.int64(2)}, [np.zeros(2, np.int16)])],
}


@pytest.mark.parametrize("case", list(COLLATE_CASES))
def test_default_collate_matches_torch(case):
    torch = pytest.importorskip("torch")
    batch = COLLATE_CASES[case]
    assert _plain(data.default_collate(batch)) == _plain(torch.utils.data.default_collate(batch))


def test_default_collate_fixed_dtypes():
    assert data.default_collate([1, 2]).dtype == fg.int64
    assert data.default_collate([1.0, 2.0]).dtype == fg.float64
    assert data.default_collate([fg.ones(2), fg.zeros(2)]).shape == (2, 2)
    assert data.default_collate([np.ones(3, np.float32)] * 2).dtype == fg.float32
    assert isinstance(data.default_collate([(1, 2)]), list)


@pytest.mark.parametrize("batch,error", [([object()], TypeError),
                                         ([np.array(["a"])], TypeError),
                                         ([[1, 2], [3]], RuntimeError)])
def test_default_collate_errors_match_torch(batch, error):
    with pytest.raises(error):
        data.default_collate(batch)
    torch = pytest.importorskip("torch")
    with pytest.raises(error):
        torch.utils.data.default_collate(batch)


def test_default_convert_matches_torch():
    torch = pytest.importorskip("torch")
    for sample in [np.arange(3), (np.float32(2), "s"), {"a": np.ones(2)}, Point(np.int8(1), 2),
                   [np.zeros(1)], 5]:
        assert (_plain(data.default_convert(sample))
                == _plain(torch.utils.data.default_convert(sample)))


# --- random_split ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.5, 0.25, 0.25], [1 / 3] * 3, [10, 0]])
def test_random_split_lengths_match_torch(lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = data.random_split(range(10), lengths)
    got = sorted(i for p in parts for i in p)
    assert got == list(range(10))                       # a partition of the dataset
    assert all(isinstance(p, data.Subset) for p in parts)
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch.utils.data.random_split(range(10), lengths)
    assert [len(p) for p in parts] == [len(p) for p in want]


@pytest.mark.parametrize("lengths", [[3, 3], [11], [0.5, 0.6]])
def test_random_split_bad_lengths_raise_value_error(lengths):
    with pytest.raises(ValueError, match="length|Fraction|Sum"):
        data.random_split(range(10), lengths)


@pytest.mark.skipif(REFERENCE, reason="PyTorch splits off a negative length without a word")
def test_random_split_negative_length_raises_value_error():
    with pytest.raises(ValueError, match="negative; lengths must be non-negative"):
        data.random_split(range(10), [-1, 11])


def test_random_split_reproducible_under_manual_seed():
    fg.manual_seed(3)
    a = [list(p) for p in data.random_split(range(20), [5, 15])]
    fg.manual_seed(3)
    b = [list(p) for p in data.random_split(range(20), [5, 15])]
    assert a == b


@pytest.mark.skipif(not hasattr(fg, "Generator"), reason="needs fastgrad.Generator")
def test_shuffle_and_split_orders_match_torch():
    torch = pytest.importorskip("torch")
    orders = []
    for lib in (fg, torch):
        lib.manual_seed(0)
        shuffled = [b.tolist() for b in lib.utils.data.DataLoader(range(10), batch_size=4,
                                                                  shuffle=True)]
        g = lib.Generator().manual_seed(42)
        split = [list(s) for s in lib.utils.data.random_split(range(10), [3, 7], generator=g)]
        orders.append((shuffled, split))
    assert orders[0] == orders[1]


# --- samplers --------------------------------------------------------------------------------------

def test_random_sampler_permutes_and_replacement_counts():
    fg.manual_seed(0)
    s = data.RandomSampler(range(10))
    order = list(s)
    assert sorted(order) == list(range(10)) and len(s) == 10
    s = data.RandomSampler(range(5), replacement=True, num_samples=70)
    draws = list(s)
    assert len(draws) == 70 == len(s) and set(draws) <= set(range(5))
    s = data.RandomSampler(range(4), num_samples=10)
    drawn = list(s)
    assert len(drawn) == 10 and sorted(drawn[:4]) == list(range(4))
    with pytest.raises(ValueError, match="num_samples"):
        data.RandomSampler(range(3), num_samples=0)
    with pytest.raises(TypeError, match="replacement"):
        data.RandomSampler(range(3), replacement=1)


def test_shuffled_epochs_differ_and_reseed_repeats():
    fg.manual_seed(1)
    loader = data.DataLoader(range(50), batch_size=50, shuffle=True)
    first, second = [next(iter(loader)).tolist() for _ in range(2)]
    assert sorted(first) == list(range(50)) and first != second
    fg.manual_seed(1)
    assert next(iter(loader)).tolist() == first


def test_subset_and_weighted_samplers():
    fg.manual_seed(0)
    s = data.SubsetRandomSampler([10, 20, 30])
    assert sorted(s) == [10, 20, 30] and len(s) == 3
    w = data.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200)
    draws = list(w)
    assert len(draws) == 200 == len(w) and set(draws) == {1, 3}
    assert draws.count(3) > draws.count(1)
    w = data.WeightedRandomSampler([1.0, 1.0, 5.0], 3, replacement=False)
    assert sorted(w) == [0, 1, 2]
    with pytest.raises(ValueError, match="weights should be a 1d"):
        data.WeightedRandomSampler([[1.0]], 1)
    with pytest.raises(ValueError, match="num_samples"):
        data.WeightedRandomSampler([1.0], 0)


# --- bad arguments: PyTorch's exception types ----------------------------------------------------

BAD_LOADERS = {
    "batch_size=0": dict(batch_size=0),
    "batch_size=-1": dict(batch_size=-1),
    "shuffle and sampler": dict(shuffle=True, sampler=[0, 1]),
    "batch_sampler and batch_size": dict(batch_sampler=[[0]], batch_size=2),
    "batch_sampler and drop_last": dict(batch_sampler=[[0]], drop_last=True),
    "batch_size None and drop_last": dict(batch_size=None, drop_last=True),
    "negative workers": dict(num_workers=-1),
    "negative timeout": dict(timeout=-1),
    "prefetch without workers": dict(prefetch_factor=2),
    "persistent without workers": dict(persistent_workers=True),
}


@pytest.mark.parametrize("case", list(BAD_LOADERS))
def test_bad_loader_arguments_raise_value_error(case):
    with pytest.raises(ValueError):
        data.DataLoader(range(4), **BAD_LOADERS[case])
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(range(4), **BAD_LOADERS[case])


def test_batch_size_zero_message_says_what_to_do():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
        data.DataLoader(range(4), batch_size=0)


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0]),
                                    dict(batch_sampler=[[0]])])
def test_iterable_dataset_rejects_order_options(kwargs):
    with pytest.raises(ValueError, match="IterableDataset"):
        data.DataLoader(Counting(4), **kwargs)


def test_attributes_frozen_after_init():
    loader = data.DataLoader(range(4))
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 2
    loader.num_workers = 0                               # not frozen in PyTorch either


def test_dataset_error_names_the_index():
    loader = data.DataLoader(Squares(10, bad=True), batch_size=4)
    with pytest.raises(KeyError) as info:
        list(loader)
    if not REFERENCE:
        assert "index 7" in "".join(getattr(info.value, "__notes__", []))


def test_pin_memory_accepted_on_cpu():
    with pytest.warns(UserWarning, match="pin_memory"):
        batches = list(data.DataLoader(_samples(4), batch_size=2, pin_memory=True))
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3]]


def test_iterable_dataset_in_process():
    loader = data.DataLoader(Counting(7), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]] and len(loader) == 3
    loader = data.DataLoader(Counting(7), batch_size=3, drop_last=True)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]] and len(loader) == 2
    assert list(data.DataLoader(Counting(2), batch_size=None)) == [0, 1]


# --- worker processes ----------------------------------------------------------------------------

WORKERS = dict(num_workers=2, multiprocessing_context="spawn", timeout=120)


def test_workers_give_the_same_batches_as_in_process():
    ds = _samples(23)
    want = _batches(data.DataLoader(ds, batch_size=4))
    loader = data.DataLoader(ds, batch_size=4, **WORKERS)
    assert _batches(loader) == want
    assert _batches(data.DataLoader(Squares(11), batch_size=3, **WORKERS)) == \
        _batches(data.DataLoader(Squares(11), batch_size=3))


def test_workers_persistent_iterable_init_fn_and_errors():
    # persistent workers: two epochs over the same processes, in order both times
    loader = data.DataLoader(_samples(9), batch_size=2, persistent_workers=True, **WORKERS)
    first, second = _batches(loader), _batches(loader)
    assert first == second == _batches(data.DataLoader(_samples(9), batch_size=2))
    # which worker fetched each sample: batches go to workers in turn
    ids = [b.tolist() for b in data.DataLoader(WorkerIds(), batch_size=2, **WORKERS)]
    assert ids == [[0, 0], [1, 1], [0, 0], [1, 1]]
    # an IterableDataset split between workers by get_worker_info()
    got = [b.tolist() for b in data.DataLoader(Counting(9), batch_size=2, **WORKERS)]
    assert sorted(i for b in got for i in b) == list(range(9))
    # a dataset's exception comes back with its type, the worker and the index
    with pytest.raises(KeyError) as info:
        list(data.DataLoader(Squares(10, bad=True), batch_size=4, **WORKERS))
    if not REFERENCE:
        assert "worker process" in str(info.value) and "index 7" in str(info.value)


# --- the gathered batch path -------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="fastgrad's own batch path")
@pytest.mark.parametrize("kwargs,drop_last", [(dict(), False), (dict(), True),
                                              (dict(num_samples=250), False),
                                              (dict(replacement=True, num_samples=77), False),
                                              (dict(replacement=True, num_samples=77), True)])
def test_index_batches_equal_the_batch_sampler(kwargs, drop_last):
    bs = data.BatchSampler(data.RandomSampler(range(100), **kwargs), 16, drop_last)
    fg.manual_seed(5)
    want = list(bs)
    fg.manual_seed(5)
    got = [a.tolist() for a in bs._index_batches()]
    assert got == want and len(got) == len(bs)
    seq = data.BatchSampler(data.SequentialSampler(range(10)), 4, drop_last)
    assert [a.tolist() for a in seq._index_batches()] == list(seq)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own batch path")
def test_shuffled_gathered_epoch_is_a_permutation_with_matching_labels():
    x = fg.arange(300, dtype=fg.float32).reshape(100, 3)
    loader = data.DataLoader(data.TensorDataset(x, fg.arange(100)), batch_size=16, shuffle=True)
    seen = []
    for xb, yb in loader:
        assert (xb[:, 0] == yb * 3).all().item()
        seen += yb.tolist()
    assert sorted(seen) == list(range(100)) and seen != list(range(100))


@pytest.mark.skipif(REFERENCE, reason="the benchmark's fastgrad side")
def test_w14_workload_runs():
    from fastgrad.bench import cases, suite
    assert "W14" in suite.WORKLOADS
    x, y = cases.w14_arrays(1000)
    cases.make_w14(fg, 1000)()
    cases.numpy_w14_floor(1000)()
    assert cases.w14_bytes(x, y) == 2 * (1000 * 784 * 4 + 1000 * 8)


# --- worker processes: fork after the thread team started, init functions, timeouts, dead workers

_INIT_MARK = []


def _mark_worker(worker_id):
    _INIT_MARK.append(100 + worker_id)


class InitMarks(data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return _INIT_MARK[0] if _INIT_MARK else -1


class BigOps(data.Dataset):
    """Each sample runs an elementwise op large enough for fastgrad's parallel loops."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (fg.ones(2_000_000) * (i + 1)).sum().item()


class Sleepy(data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        import time
        time.sleep(60)
        return i


class Dies(data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        import os
        os._exit(3)


def test_worker_init_fn_runs_in_each_worker():
    loader = data.DataLoader(InitMarks(), batch_size=1, worker_init_fn=_mark_worker, **WORKERS)
    assert [b.item() for b in loader] == [100, 101, 100, 101]
    assert _INIT_MARK == []                              # not in this process


def test_forked_workers_after_parallel_loops_do_not_hang():
    (fg.ones(2_000_000) * 2).sum()                       # the thread team now exists here
    loader = data.DataLoader(BigOps(), batch_size=None, num_workers=2,
                             multiprocessing_context="fork", timeout=120)
    assert [round(v) for v in loader] == [2_000_000, 4_000_000, 6_000_000, 8_000_000]


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own messages")
def test_worker_timeout_and_death_raise_runtime_error():
    with pytest.raises(RuntimeError, match="timed out after 1 seconds"):
        next(iter(data.DataLoader(Sleepy(), num_workers=1, timeout=1,
                                  multiprocessing_context="fork")))
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        next(iter(data.DataLoader(Dies(), num_workers=1, multiprocessing_context="fork")))


def test_persistent_workers_iterable_epochs_and_an_abandoned_epoch():
    loader = data.DataLoader(Counting(20), batch_size=2, num_workers=2, persistent_workers=True,
                             multiprocessing_context="fork", timeout=120)
    it = iter(loader)
    next(it), next(it)                                   # leave the first epoch early
    for _ in range(2):
        assert sorted(i for b in loader for i in b.tolist()) == list(range(20))
    loader = data.DataLoader(_samples(9), batch_size=2, num_workers=2, persistent_workers=True,
                             multiprocessing_context="fork", timeout=120)
    it = iter(loader)
    next(it)
    assert _batches(loader) == _batches(data.DataLoader(_samples(9), batch_size=2))

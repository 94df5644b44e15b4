"""fastgrad.multiprocessing and shared memory: share_memory_() keeps a tensor's values, layout and
autograd state; in-place writes of forked children reach the parent (Hogwild training); shared
tensors sent to spawned processes and through queues share memory; the module has
torch.multiprocessing's names. Every join has a timeout, so a hang fails instead of blocking."""
import multiprocessing as std_mp
import os
import pickle

import numpy as np
import pytest
from _backend import REFERENCE, fg, reference_torch

mp = pytest.importorskip(f"{fg.__name__}.multiprocessing")
F = fg.nn.functional
JOIN = 120            # seconds: far beyond what any process here needs

needs_fork = pytest.mark.skipif("fork" not in std_mp.get_all_start_methods(),
                                reason="no fork start method on this system")


def _finish(*procs):
    """Join every process (timeout JOIN); a process still running is killed and fails the test."""
    for p in procs:
        p.join(JOIN)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join(10)
    assert not hung, f"{len(hung)} process(es) still running after {JOIN} s"
    assert [p.exitcode for p in procs] == [0] * len(procs)


# --- share_memory_, is_shared, Module.share_memory ---------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "bool"])
def test_share_memory_keeps_values_dtype_and_shape(dtype):
    dt = getattr(fg, dtype)
    t = (fg.arange(24).reshape(2, 3, 4) % 5).to(dt)
    before = t.tolist()
    assert not t.is_shared()
    assert t.share_memory_() is t
    assert t.is_shared()
    assert t.tolist() == before and t.dtype == dt and t.shape == (2, 3, 4)
    assert t.stride() == (12, 4, 1)


def test_share_memory_keeps_requires_grad_grad_and_training():
    w = fg.randn(3, 4, dtype=fg.float64, requires_grad=True)
    (w * w).sum().backward()
    g = w.grad
    w.share_memory_()
    assert w.requires_grad and w.is_leaf and w.grad is g
    assert not g.is_shared()                     # only the tensor's own storage moves
    w.grad = None
    (w * 3).sum().backward()                     # backward still reaches the moved leaf
    assert np.array_equal(w.grad.numpy(), np.full((3, 4), 3.0))
    with fg.no_grad():
        w.sub_(w.grad)                           # and an in-place step writes the shared memory
    assert w.is_shared()


def test_share_memory_is_a_no_op_when_shared():
    t = fg.ones(5).share_memory_()
    arr = t.detach().numpy()
    t.share_memory_()
    t.add_(1)
    assert arr[0] == 2.0                         # the same memory as before the second call


def test_share_memory_keeps_a_transposed_layout_and_moves_a_view_with_its_base():
    x = fg.randn(2, 3).t()
    values = x.tolist()
    x.share_memory_()
    assert x.is_shared() and x.stride() == (1, 3) and x.tolist() == values
    base = fg.arange(12.0).reshape(3, 4)
    base.share_memory_()
    row = base[1]
    assert row.is_shared()                       # a view of a shared tensor is shared
    row.add_(100)
    assert base[1].tolist() == [104.0, 105.0, 106.0, 107.0]


def test_share_memory_of_an_empty_tensor():
    t = fg.zeros(0, 3).share_memory_()
    assert t.is_shared() and t.shape == (0, 3)


def test_module_share_memory_moves_parameters_gradients_and_buffers():
    model = fg.nn.Sequential(fg.nn.Linear(3, 4), fg.nn.BatchNorm1d(4))
    model(fg.randn(5, 3)).sum().backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    assert model.share_memory() is model
    assert list(model.parameters()) == params and all(type(p) is fg.nn.Parameter for p in params)
    assert all(p.is_shared() and p.grad.is_shared() and p.requires_grad for p in params)
    assert all(b.is_shared() for b in model.buffers())
    for k, v in model.state_dict().items():
        assert fg.equal(v, state[k]), k


@pytest.mark.skipif(REFERENCE, reason="fastgrad's message")
def test_running_out_of_file_descriptors_is_a_clear_error():
    resource = pytest.importorskip("resource")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    kept = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 20, hard))
    try:
        with pytest.raises(RuntimeError, match="too many open files.*ulimit -n"):
            for _ in range(100):
                kept.append(fg.ones(2).share_memory_())
    finally:
        kept.clear()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert fg.ones(2).share_memory_().is_shared()      # descriptors come back with the tensors


def test_is_shared_against_torch():
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    for lib in (fg, torch):
        t = lib.arange(6.0).reshape(2, 3)
        v = t[1]
        assert (t.is_shared(), v.is_shared()) == (False, False)
        t.share_memory_()
        assert (t.is_shared(), t[0].is_shared(), t.t().stride()) == (True, True, (1, 3))


# --- forked children ---------------------------------------------------------------------------

def _add_in_child(t, value):
    t.add_(value)


def _fill_in_child(t, value):
    t[:2] = value


@needs_fork
def test_child_in_place_update_is_seen_by_the_parent():
    ctx = mp.get_context("fork")
    t = fg.zeros(4).share_memory_()
    view = t[2:]
    p1 = ctx.Process(target=_add_in_child, args=(view, 5.0))
    p2 = ctx.Process(target=_fill_in_child, args=(t, -1.0))
    p1.start()
    p1.join(JOIN)
    p2.start()
    _finish(p1, p2)
    assert t.tolist() == [-1.0, -1.0, 5.0, 5.0]


@needs_fork
def test_unshared_tensor_stays_the_parents_own():
    ctx = mp.get_context("fork")
    t = fg.zeros(4)
    p = ctx.Process(target=_add_in_child, args=(t, 5.0))
    p.start()
    _finish(p)
    assert t.tolist() == [0.0] * 4


def _problem():
    g = fg.Generator().manual_seed(0)
    X = fg.randn(256, 8, generator=g)
    Y = X @ fg.randn(8, 1, generator=g) + 0.5
    return X, Y


def _model():
    fg.manual_seed(0)
    return fg.nn.Sequential(fg.nn.Linear(8, 16), fg.nn.Tanh(), fg.nn.Linear(16, 1))


def _large_ops():
    """Ops large enough for fastgrad's parallel loops (and BLAS's threads)."""
    big = fg.randn(300_000)
    assert (big.exp() * 0).sum().item() == 0.0
    a = fg.randn(256, 256, requires_grad=True)
    (a @ a).sum().backward()


def _hogwild_worker(rank, model, X, Y, steps):
    fg.manual_seed(100 + rank)
    if not REFERENCE:
        _large_ops()       # fastgrad runs them on this one thread in a forked child: no hang
    opt = fg.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    for _ in range(steps):
        idx = fg.randint(0, len(X), (32,))
        opt.zero_grad()
        F.mse_loss(model(X[idx]), Y[idx]).backward()
        opt.step()


def _loss(model, X, Y):
    with fg.no_grad():
        return F.mse_loss(model(X), Y).item()


@needs_fork
def test_hogwild_two_forked_children_train_the_parents_model():
    X, Y = _problem()
    model = _model()
    model.share_memory()
    if not REFERENCE:
        _large_ops()        # the parent's thread team has run before fork (torch's may then hang)
    before = _loss(model, X, Y)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hogwild_worker, args=(rank, model, X, Y, 150))
             for rank in range(2)]
    for p in procs:
        p.start()
    _finish(*procs)
    after = _loss(model, X, Y)
    assert after < 0.2 * before, (before, after)


# --- spawned children, queues, pickling ---------------------------------------------------------

def _spawned(t, inbox, outbox):
    t.add_(1)                                     # shared through the process's arguments
    shared, unshared = inbox.get(timeout=JOIN)
    shared.mul_(10)                               # shared through the queue
    unshared.mul_(10)
    outbox.put((shared.is_shared(), unshared.tolist()))


def test_spawned_child_shares_tensors_from_its_arguments_and_a_queue():
    ctx = mp.get_context("spawn")
    t = fg.zeros(3).share_memory_()
    m = fg.ones(2, 3).share_memory_()
    unshared = fg.tensor([1.0, 2.0])
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_spawned, args=(t, inbox, outbox))
    p.start()
    inbox.put((m[1], unshared))
    try:
        child_saw = outbox.get(timeout=JOIN)
    finally:
        _finish(p)
    assert t.tolist() == [1.0, 1.0, 1.0]
    assert m.tolist() == [[1.0] * 3, [10.0] * 3]
    assert child_saw == (True, [10.0, 20.0])      # the unshared one arrived with its values
    if not REFERENCE:
        assert unshared.tolist() == [1.0, 2.0]    # fastgrad sends it by value (torch shares it)


def test_forking_pickler_shares_a_storage_and_keeps_parameters():
    from multiprocessing.reduction import ForkingPickler
    base = fg.arange(6.0).share_memory_()
    a, b = pickle.loads(ForkingPickler.dumps((base[:4], base[2:])))
    a.add_(1)
    assert b.tolist() == [3.0, 4.0, 4.0, 5.0]     # both arrived over the sender's memory
    assert base.tolist() == [1.0, 2.0, 3.0, 4.0, 4.0, 5.0]
    p = fg.nn.Parameter(fg.ones(2)).share_memory_()
    q = pickle.loads(ForkingPickler.dumps(p))
    assert type(q) is fg.nn.Parameter and q.requires_grad and q.is_shared()
    frozen = pickle.loads(ForkingPickler.dumps(fg.ones(2).share_memory_().requires_grad_()))
    assert frozen.requires_grad and frozen.is_leaf


def test_forking_pickler_refuses_a_non_leaf_that_requires_grad():
    from multiprocessing.reduction import ForkingPickler
    y = fg.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        ForkingPickler.dumps(y)
    assert pickle.loads(ForkingPickler.dumps(y.detach())).tolist() == [2.0, 2.0]


def _fail_on_one(i):
    if i == 1:
        raise ValueError("worker one fails")


def _write_rank(i, t):
    t[i] = i + 1


def test_start_processes_runs_each_rank_and_raises_a_childs_error():
    method = "fork" if "fork" in std_mp.get_all_start_methods() else "spawn"
    t = fg.zeros(3).share_memory_()
    mp.start_processes(_write_rank, args=(t,), nprocs=3, start_method=method)
    assert t.tolist() == [1.0, 2.0, 3.0]
    context = mp.start_processes(_fail_on_one, nprocs=2, join=False, start_method=method)
    with pytest.raises(mp.ProcessRaisedException, match="worker one fails") as info:
        while not context.join(timeout=JOIN):
            pass
    assert info.value.error_index == 1


# --- the module's names --------------------------------------------------------------------------

def test_module_has_torch_multiprocessing_names():
    names = {"set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies",
             "Process", "Queue", "SimpleQueue", "Pool", "Manager", "Pipe", "Lock", "Event",
             "get_context", "set_start_method", "get_start_method", "cpu_count",
             "current_process", "spawn", "start_processes", "ProcessContext",
             "ProcessRaisedException", "ProcessExitedException"}
    torch = reference_torch()
    if torch is not None:
        import torch.multiprocessing as tmp
        names |= set(tmp.__all__)
        assert set(tmp.__all__) <= set(mp.__all__)
    missing = sorted(n for n in names if not hasattr(mp, n))
    assert missing == []
    assert mp.Process is std_mp.Process and mp.get_context is not None


def test_sharing_strategies():
    old = mp.get_sharing_strategy()
    assert old in mp.get_all_sharing_strategies()
    try:
        for s in mp.get_all_sharing_strategies():
            mp.set_sharing_strategy(s)
            assert mp.get_sharing_strategy() == s
        with pytest.raises(AssertionError, match="invalid sharing strategy"):
            mp.set_sharing_strategy("no_such_strategy")
    finally:
        mp.set_sharing_strategy(old)

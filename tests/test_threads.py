"""set_num_threads / get_num_threads (torch's names and errors), and results that do not depend
on the thread count: sums and means bit-identical (fixed partition, fixed-order combine), and the
elementwise kernels too."""
import numpy as np
import pytest

from _backend import REFERENCE, fg


@pytest.fixture
def restore_threads():
    before = fg.get_num_threads()
    yield
    fg.set_num_threads(before)


def test_default_is_positive():
    n = fg.get_num_threads()
    assert isinstance(n, int) and n >= 1


@pytest.mark.parametrize("n", [1, 2, 3])
def test_round_trip(n, restore_threads):
    fg.set_num_threads(n)
    assert fg.get_num_threads() == n


@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_raises(bad, restore_threads):
    before = fg.get_num_threads()
    with pytest.raises(RuntimeError, match="set_num_threads expects a positive integer"):
        fg.set_num_threads(bad)
    assert fg.get_num_threads() == before


@pytest.mark.parametrize("bad", [2.0, "2", True, None])
def test_non_int_raises(bad, restore_threads):
    with pytest.raises(RuntimeError, match="set_num_threads expects an int, but got"):
        fg.set_num_threads(bad)


def test_numpy_int_accepted(restore_threads):
    fg.set_num_threads(np.int64(1))
    assert fg.get_num_threads() == 1


@pytest.mark.skipif(REFERENCE, reason="fastgrad sizes NumPy's BLAS pool with its own")
def test_blas_pool_follows(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fg.set_num_threads(1)
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)


def _by_threads(fn):
    """fn() under 1, 2 and 3 threads."""
    out = []
    for k in (1, 2, 3):
        fg.set_num_threads(k)
        out.append(fn())
    return out


# fastgrad's promises: torch's own sums and sigmoid change in the last bits with the thread count
# and its float32 sum is less accurate (these tests fail in reference mode).
own_promise = pytest.mark.skipif(REFERENCE, reason="fastgrad's promise, not torch's")

SIZES = [1, 1000, 16_384, 16_385, 65_536, 1_000_003]


@own_promise
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduction_bit_identical_across_threads(n, dtype, op, restore_threads):
    x = fg.tensor(np.random.default_rng(n).standard_normal(n).astype(dtype) * 1e3)
    res = _by_threads(lambda: getattr(x, op)().numpy().tobytes())
    assert res[0] == res[1] == res[2]


@own_promise
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_accuracy(dtype, restore_threads):
    """The sum is at least as accurate as the input precision: compared with an exact float64
    (math.fsum) sum of the same values."""
    import math
    v = np.random.default_rng(1).standard_normal(1_000_003).astype(dtype)
    exact = math.fsum(v.astype(np.float64).tolist())
    x = fg.tensor(v)
    for k in (1, 2):
        fg.set_num_threads(k)
        s = float(x.sum())
        assert abs(s - exact) <= 2 * abs(np.spacing(np.array(exact, dtype=dtype))) + 1e-9 * abs(exact)
        assert float(x.mean()) == pytest.approx(exact / v.size, rel=1e-6 if dtype == "float32"
                                                else 1e-12)


@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_shapes_and_grads(keepdim, restore_threads):
    fg.set_num_threads(2)
    a = fg.tensor(np.ones((300, 400), np.float32), requires_grad=True)
    s = a.sum(dim=None, keepdim=keepdim) if keepdim else a.sum()
    assert tuple(s.shape) == ((1, 1) if keepdim else ())
    assert float(s) == 120_000.0
    m = a.mean()
    (s.sum() + m).backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((300, 400), 1 + 1 / 120_000, np.float32))


@own_promise
@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "log", "neg", "sqrt", "relu"])
def test_elementwise_bit_identical_across_threads(name, restore_threads):
    x = fg.tensor(np.random.default_rng(5).uniform(0.1, 4, 300_001).astype(np.float32),
                  requires_grad=True)
    w = fg.tensor(np.random.default_rng(6).uniform(-1, 1, 300_001).astype(np.float32))

    def run():
        x.grad = None
        y = getattr(fg, name)(x) * w + w
        y.sum().backward()
        return y.detach().numpy().tobytes() + x.grad.numpy().tobytes()
    res = _by_threads(run)
    assert res[0] == res[1] == res[2]


@own_promise
@pytest.mark.parametrize("opt", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                 ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
                                 ("AdamW", dict(lr=0.01)),
                                 ("Adagrad", dict(lr=0.1)),
                                 ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True))])
def test_optimizer_steps_bit_identical_across_threads(opt, restore_threads):
    """Parameters large enough to be updated in parallel blocks (Note [Parallel updates]), and one
    small one, after 3 steps."""
    name, kw = opt
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(n).astype(np.float32) for n in (300_001, 40)]
    grads = [[rng.standard_normal(a.size).astype(np.float32) for a in start] for _ in range(3)]

    def run():
        ps = [fg.tensor(a.copy(), requires_grad=True) for a in start]
        o = getattr(fg.optim, name)(ps, **kw)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = fg.tensor(g)
            o.step()
        return b"".join(p.detach().numpy().tobytes() for p in ps)
    res = _by_threads(run)
    assert res[0] == res[1] == res[2]
    assert res[0] != b"".join(a.tobytes() for a in start)


@own_promise
@pytest.mark.parametrize("shape", [(16, 64, 128, 384), (1024, 256, 128), (300, 97, 200)])
def test_linear_gradients_bit_identical_across_threads(shape, restore_threads):
    """Note [Two products at once]: grad_input and grad_weight each on a thread of its own, each
    one unsplit call, as on one thread (the 300x97x200 products are below the split size)."""
    *lead, k, n = shape
    rng = np.random.default_rng(8)
    x0 = rng.standard_normal(tuple(lead) + (k,)).astype(np.float32)
    w0 = rng.standard_normal((n, k)).astype(np.float32)
    cot = rng.standard_normal(tuple(lead) + (n,)).astype(np.float32)

    def run():
        x = fg.tensor(x0, requires_grad=True)
        lin = fg.nn.Linear(k, n)
        with fg.no_grad():
            lin.weight.copy_(fg.tensor(w0))
        lin(x).backward(fg.tensor(cot))
        return [x.grad.numpy(), lin.weight.grad.numpy(), lin.bias.grad.numpy()]
    res = _by_threads(run)
    for k_run in (1, 2):
        for a, b in zip(res[0], res[k_run]):
            np.testing.assert_array_equal(a, b)
    x2, g2 = x0.reshape(-1, k).astype(np.float64), cot.reshape(-1, n).astype(np.float64)
    np.testing.assert_allclose(res[0][1], g2.T @ x2, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(res[0][0].reshape(-1, k), g2 @ w0, rtol=1e-4, atol=1e-3)


def _child_work(q):
    """Run every kind of parallel loop in a forked child; report the numbers and thread count."""
    import warnings
    try:
        rng = np.random.default_rng(3)
        a = fg.tensor(rng.standard_normal(300_001).astype(np.float32), requires_grad=True)
        lin = fg.nn.Linear(784, 256)
        x = fg.tensor(rng.standard_normal((128, 784)).astype(np.float32))
        (fg.tanh(a * 2).sum() + lin(x).sum()).backward()
        fg.optim.Adam([a]).step()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fg.set_num_threads(2)
        q.put((float(a.detach().sum()), fg.get_num_threads(), [str(x.message) for x in w]))
    except BaseException as e:          # report instead of dying silently
        q.put(repr(e))


@own_promise
def test_forked_child_runs_parallel_loops_on_one_thread(restore_threads):
    """Note [Threads after fork]: a child forked after the parent started its thread team runs
    its parallel loops on one thread (the team's partners do not exist there) and finishes."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    fg.set_num_threads(2)
    warm = fg.tensor(np.ones(300_001, np.float32))
    (warm * 2).sum()                   # the parent's thread team exists now
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_work, args=(q,))
    p.start()
    p.join(timeout=60)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung in a parallel loop")
    res = q.get(timeout=5)
    assert not isinstance(res, str), res
    total, threads, warned = res
    assert np.isfinite(total) and threads == 1
    assert any("forked" in m for m in warned)
    assert fg.get_num_threads() == 2    # the parent keeps its threads


# --- autograd from several Python threads (Note [Backward from several threads] in engine.pyx) ---
# Each test starts its threads together at a barrier and asserts exact numbers: the gradients are
# integer-valued, so every lost or doubled contribution shows. The 100_000-element cases run the
# adds with the GIL released, where two threads' adds into one .grad used to interleave.

import threading  # noqa: E402
import warnings  # noqa: E402

THREAD_SIZES = [1, 100_000]


def _in_threads(n, work):
    """Run work(i) in n threads started together; re-raise the first exception any raised."""
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as e:     # reported to the test below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("size", THREAD_SIZES)
def test_backward_into_shared_leaf_from_threads(size):
    """4 threads x 200 backward calls, each on its own graph ending in one shared leaf: every
    contribution is summed (torch: 800)."""
    x = fg.ones(size, requires_grad=True)

    def work(i):
        for _ in range(200):
            (x * 1.0).sum().backward()
    _in_threads(4, work)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(size, 800, np.float32))


@pytest.mark.parametrize("size", THREAD_SIZES)
def test_backward_retain_graph_one_graph_from_threads(size):
    """2 threads x 100 backward(retain_graph=True) over one graph: each call adds its gradient
    (4x here, from two paths into the leaf) to x.grad."""
    x = fg.tensor(np.arange(size, dtype=np.float32) % 7, requires_grad=True)
    y = ((x * 2) * x).sum()

    def work(i):
        for _ in range(100):
            y.backward(retain_graph=True)
    _in_threads(2, work)
    np.testing.assert_array_equal(x.grad.numpy(), 200 * 4 * (np.arange(size) % 7))


@pytest.mark.parametrize("size", THREAD_SIZES)
def test_autograd_grad_one_graph_from_threads(size):
    """3 threads x 60 autograd.grad calls over one graph (several paths into each input): every
    call returns the gradient one call alone returns, bit for bit, and no .grad is touched."""
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.uniform(-1, 1, size).astype(np.float32), requires_grad=True)
    w = fg.tensor(rng.uniform(-1, 1, size).astype(np.float32), requires_grad=True)
    h = fg.tanh(x * w) + x
    y = (h * h + fg.exp(x) * w).sum()
    want = [g.numpy().tobytes() for g in fg.autograd.grad(y, (x, w), retain_graph=True)]
    wrong = []

    def work(i):
        for _ in range(60):
            got = fg.autograd.grad(y, (x, w), retain_graph=True)
            if [g.numpy().tobytes() for g in got] != want:
                wrong.append(i)
    _in_threads(3, work)
    assert not wrong
    assert x.grad is None and w.grad is None


@own_promise
def test_nonleaf_inputs_from_threads():
    """backward(inputs=[non-leaf]) from two threads at once: its .grad sums every call's part
    (torch's can come out as garbage here)."""
    x = fg.ones(100_000, requires_grad=True)
    k = x * 5
    z = (k * 2).sum()

    def work(i):
        for _ in range(100):
            z.backward(inputs=[k], retain_graph=True)
    _in_threads(2, work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # .grad of a non-leaf: filled here through inputs=
        np.testing.assert_array_equal(k.grad.numpy(), np.full(100_000, 400, np.float32))
    assert x.grad is None


@own_promise
def test_retain_grad_from_threads():
    """retain_grad's .grad sums every call's part too (torch's retain_grad hook can lose one)."""
    x = fg.ones(100_000, requires_grad=True)
    h = x * 3
    h.retain_grad()
    y = (h * 2).sum()

    def work(i):
        for _ in range(100):
            y.backward(retain_graph=True)
    _in_threads(2, work)
    np.testing.assert_array_equal(h.grad.numpy(), np.full(100_000, 400, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(100_000, 1200, np.float32))


def test_leaf_hooks_from_threads():
    """A leaf's tensor hook runs once per backward call in any thread, and its replacement
    gradient is what is summed; post-accumulate hooks see every accumulation."""
    x = fg.ones(100_000, requires_grad=True)
    calls = []
    x.register_hook(lambda g: (calls.append(1), g * 2)[1])
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(1))

    def work(i):
        for _ in range(100):
            (x * 1.0).sum().backward()
    _in_threads(4, work)
    assert len(calls) == 400 and len(seen) == 400
    np.testing.assert_array_equal(x.grad.numpy(), np.full(100_000, 800, np.float32))


def test_backward_inside_backward_shares_leaves():
    """A backward run from inside another (a custom Function's backward, as reentrant
    checkpointing does) over nodes the outer call has not finished with: both are right."""
    class Twice(fg.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            with fg.enable_grad():
                (w * 3).sum().backward()     # into w, which the outer call also reaches
            return g * 2

    x = fg.ones(5, requires_grad=True)
    w = fg.ones(5, requires_grad=True)
    (Twice.apply(x * w) + w * 7).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(5, 2, np.float32))
    np.testing.assert_array_equal(w.grad.numpy(), np.full(5, 2 + 7 + 3, np.float32))


@own_promise
def test_post_accumulate_hook_may_backward_into_its_leaf():
    """The leaf's lock is re-entered by its own thread: a post-accumulate hook that runs a
    backward into the same leaf finishes (torch's non-recursive mutex would wait forever)."""
    x = fg.ones(3, requires_grad=True)
    runs = []

    errors = []

    def hook(t):
        if not runs:
            runs.append(1)
            with fg.enable_grad():
                (x * 1.0).sum().backward()

    def work():
        try:
            (x * 1.0).sum().backward()
        except BaseException as e:     # reported below
            errors.append(e)
    x.register_post_accumulate_grad_hook(hook)
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "backward from a post-accumulate hook hung"
    if errors:
        raise errors[0]
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2, np.float32))


def _train(seed, opt_name, steps, barrier=None):
    """A small MLP trained `steps` steps from `seed`; its parameters' bytes afterwards."""
    rng = np.random.default_rng(seed)
    model = fg.nn.Sequential(fg.nn.Linear(8, 32), fg.nn.Tanh(), fg.nn.Linear(32, 1))
    with fg.no_grad():
        for p in model.parameters():
            p.copy_(fg.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    opt = (fg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if opt_name == "SGD"
           else fg.optim.Adam(model.parameters(), lr=0.01))
    xs = fg.tensor(rng.standard_normal((16, 8)).astype(np.float32))
    ys = fg.tensor(rng.standard_normal((16, 1)).astype(np.float32))
    if barrier is not None:
        barrier.wait(timeout=30)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(xs) - ys) ** 2).mean()
        loss.backward()
        opt.step()
    return b"".join(p.detach().numpy().tobytes() for p in model.parameters())


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_separate_models_train_in_threads(opt_name):
    """4 threads each train their own model (forward, backward, optimizer step): bit-identical
    to the same training run one after the other."""
    want = [_train(s, opt_name, 30) for s in range(4)]
    got = [None] * 4

    def work(i):
        got[i] = _train(i, opt_name, 30)
    _in_threads(4, work)
    assert got == want


def test_large_linear_layers_in_threads(restore_threads):
    """Products big enough for BLAS and fastgrad's own threads, run from two Python threads at
    once: the gradients are bit-identical to the same work done one thread after the other."""
    fg.set_num_threads(2)
    rng = np.random.default_rng(4)
    ws = [fg.tensor(rng.standard_normal((384, 384)).astype(np.float32), requires_grad=True)
          for _ in range(2)]
    x = fg.tensor(rng.standard_normal((256, 384)).astype(np.float32))

    def run(i):
        ws[i].grad = None
        for _ in range(3):
            fg.nn.functional.linear(x, ws[i]).tanh().sum().backward()
        return ws[i].grad.numpy().tobytes()
    want = [run(0), run(1)]
    got = [None, None]

    def work(i):
        got[i] = run(i)
    _in_threads(2, work)
    assert got == want


def test_grad_mode_is_per_thread():
    """no_grad in one thread does not stop another thread from recording (as in torch)."""
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def hold():
        with fg.no_grad():
            inside.set()
            done.wait(timeout=30)
            seen["holder"] = fg.is_grad_enabled()

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(timeout=30)
        x = fg.ones(3, requires_grad=True)
        seen["other"] = fg.is_grad_enabled()
        seen["records"] = (x * 2).requires_grad
    finally:
        done.set()
        t.join(timeout=30)
    assert seen == {"holder": False, "other": True, "records": True}

"""Training-step fast paths: a leaf taking an unshared gradient without a copy (Note [Stealing the
incoming gradient] in engine.pyx) and never one that something else can reach; linear's products
on one OpenBLAS thread below a size (Note [Single-threaded BLAS for small products])."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from fastgrad._core import blas
from fastgrad import _threads

try:                                    # only the BLAS-thread tests need it
    import threadpoolctl
except ImportError:
    threadpoolctl = None


# ------------------------------------------------------------------ taking a leaf's gradient
class _Fresh(fg.autograd.Function):
    """Identity whose backward returns a new tensor, recording its id (and keeping it when
    `keep` is set, or a NumPy view of its array when `view` is set)."""
    seen = []

    @staticmethod
    def forward(ctx, x, keep, view):
        ctx.keep, ctx.view = keep, view
        return x * 1

    @staticmethod
    def backward(ctx, g):
        r = g * 2
        _Fresh.seen.append(r if ctx.keep else id(r))
        if ctx.view:
            _Fresh.seen.append(r.numpy()[:])
        return r, None, None


def _fresh_grad(keep=False, view=False):
    _Fresh.seen = []
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    _Fresh.apply(x, keep, view).backward(fg.tensor([1.0, 1.0, 1.0]))
    return x


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own no-copy promise")
def test_unshared_gradient_is_taken_without_copy():
    x = _fresh_grad()
    assert id(x.grad) == _Fresh.seen[0]
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_gradient_kept_by_backward_is_copied():
    x = _fresh_grad(keep=True)
    kept = _Fresh.seen[0]
    assert x.grad is not kept
    x.grad.add_(1)
    np.testing.assert_array_equal(kept.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


@pytest.mark.skipif(REFERENCE, reason="PyTorch takes such a gradient; fastgrad copies it")
def test_gradient_whose_array_is_viewed_is_copied():
    x = _fresh_grad(view=True)
    view = _Fresh.seen[1]
    x.grad.add_(1)
    np.testing.assert_array_equal(view, [2.0, 2.0, 2.0])


def test_gradient_shared_by_two_leaves_is_not_aliased():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([3.0, 4.0], requires_grad=True)
    ((a + b) * 3).backward(fg.tensor([1.0, 2.0]))
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.add_(1)
    np.testing.assert_array_equal(b.grad.numpy(), [3.0, 6.0])
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 7.0])


def test_seed_passed_through_to_a_leaf_is_not_aliased():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    seed = fg.tensor([5.0, 6.0])
    (x + 1).backward(seed)
    assert not np.shares_memory(x.grad.numpy(), seed.numpy())
    x.grad.add_(1)
    np.testing.assert_array_equal(seed.numpy(), [5.0, 6.0])


def test_retained_gradient_passed_to_a_leaf_is_not_aliased():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([1.0, 2.0], requires_grad=True)
    y = a + b
    y.retain_grad()
    (y * 2).backward(fg.tensor([1.0, 1.0]))
    a.grad.add_(1)
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0])


def test_taken_gradient_accumulates_in_place_on_the_next_backward():
    x = _fresh_grad()
    g = x.grad
    _Fresh.apply(x, False, False).backward(fg.tensor([1.0, 1.0, 1.0]))
    assert x.grad is g
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_linear_training_grads_match_numpy():
    rng = np.random.default_rng(0)
    lin = fg.nn.Linear(8, 4)
    X = rng.standard_normal((16, 8)).astype(np.float32)
    lin(fg.tensor(X)).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((16, 4)).T @ X, rtol=1e-5)
    np.testing.assert_array_equal(lin.bias.grad.numpy(), np.full(4, 16.0))


# ------------------------------------------- linear's products: one BLAS thread, split by fastgrad
@pytest.fixture
def two_blas_threads():
    if threadpoolctl is None:
        pytest.skip("threadpoolctl is not installed")
    if blas.blas_threads_during() is None:
        pytest.skip("NumPy does not use a single OpenBLAS here")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        yield


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_products_run_on_one_blas_thread_and_restore(two_blas_threads):
    assert blas.blas_threads_during() == 1
    assert set(_blas_threads()) == {2}
    lin = fg.nn.Linear(300, 200)
    lin(fg.randn(64, 300)).sum().backward()
    assert set(_blas_threads()) == {2}


@pytest.fixture(params=["direct", "np.matmul"])
def product_path(request):
    """linear's products through BLAS called directly (Note [Products on fastgrad's threads]) or,
    with the entry points withdrawn, through np.matmul."""
    if request.param == "direct" and not all(blas.installed()):
        pytest.skip("NumPy's OpenBLAS entry points were not found")
    if request.param == "np.matmul":
        blas.install(0, 0, 0, 0, False)
    try:
        yield request.param
    finally:
        _threads._hand_blas_hooks()


@pytest.mark.parametrize("split", [0, 1 << 62])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_same_numbers_on_every_path(product_path, split, threads, dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 70, 96)).astype(dtype)
    W = rng.standard_normal((96, 48)).astype(dtype).T         # (48, 96), column-major
    B = rng.standard_normal(48).astype(dtype)
    G = rng.standard_normal((3, 70, 48)).astype(dtype)
    old, old_t = blas.set_split_macs(split), fg.get_num_threads()
    try:
        fg.set_num_threads(threads)
        x = fg.tensor(X, requires_grad=True)
        w = fg.tensor(W, requires_grad=True)
        b = fg.tensor(B, requires_grad=True)
        y = fg.nn.functional.linear(x, w, b)
        y.backward(fg.tensor(G))
    finally:
        blas.set_split_macs(old)
        fg.set_num_threads(old_t)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    X64, W64, B64, G64 = (a.astype(np.float64) for a in (X, W, B, G))
    np.testing.assert_allclose(y.detach().numpy(), X64 @ W64.T + B64, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad.numpy(), G64 @ W64, rtol=tol, atol=tol)
    np.testing.assert_allclose(w.grad.numpy(), np.einsum("bij,bik->jk", G64, X64), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(b.grad.numpy(), G64.sum((0, 1)), rtol=tol, atol=tol)


def test_split_products_repeat_bit_for_bit():
    rng = np.random.default_rng(2)
    x = fg.tensor(rng.standard_normal((128, 300)).astype(np.float32))
    w = fg.tensor(rng.standard_normal((200, 300)).astype(np.float32))
    old = blas.set_split_macs(0)
    try:
        first = fg.nn.functional.linear(x, w).numpy()
        for _ in range(5):
            np.testing.assert_array_equal(fg.nn.functional.linear(x, w).numpy(), first)
    finally:
        blas.set_split_macs(old)


def test_linear_bias_of_wrong_length_is_refused(product_path):
    x, w = fg.randn(200, 300), fg.randn(100, 300)
    msg = None if REFERENCE else "bias of shape \\[7\\] does not match out_features 100"
    with pytest.raises(RuntimeError, match=msg):
        fg.nn.functional.linear(x, w, fg.randn(7))

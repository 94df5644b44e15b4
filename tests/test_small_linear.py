"""linear below and above the small-matrix threshold (Note [Small linear] in ops_linear.pyx):
the C loops and the BLAS path must give the same values and gradients, for every stride
pattern, dtype and requires_grad combination, and match finite differences and torch."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional


@pytest.fixture
def threshold():
    """Yields a setter for the small-linear threshold and restores it afterwards."""
    if REFERENCE:
        pytest.skip("fastgrad's own dispatch threshold")
    from fastgrad._core.ops_linear import _set_small_linear_macs
    old = _set_small_linear_macs(2048)
    yield _set_small_linear_macs
    _set_small_linear_macs(old)


def _run(x, w, b, rg, g=None):
    """Forward linear, backward with cotangent g (ones via sum when None); returns numpy
    output and grads (None where not requested)."""
    xt = fg.tensor(x, requires_grad=rg[0])
    wt = fg.tensor(w, requires_grad=rg[1])
    bt = None if b is None else fg.tensor(b, requires_grad=rg[2])
    y = F.linear(xt, wt, bt)
    if g is None:
        y.sum().backward()
    else:
        y.backward(fg.tensor(g))
    grads = [t.grad.numpy().copy() if t is not None and t.grad is not None else None
             for t in (xt, wt, bt)]
    return y.detach().numpy().copy(), grads


def _expected(x, w, b, g):
    y = x @ w.T + (0 if b is None else b)
    g = np.ones_like(y) if g is None else g
    return y, [g @ w, g.T @ x, g.sum(0) if b is not None else None]


# (m, k, n) on both sides of the default threshold 2048 multiply-adds
SHAPES = [(1, 1, 1), (4, 2, 2), (4, 2, 1), (3, 5, 7), (16, 16, 8), (16, 16, 9), (8, 16, 16),
          (17, 11, 11), (64, 64, 10), (0, 3, 2), (2, 0, 3)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_and_blas_paths_agree(threshold, m, k, n, dtype):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal((m, n)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y_ref, g_ref = _expected(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                             g.astype(np.float64))
    for macs in (0, 1 << 40):            # BLAS path, then the C loops for every shape
        threshold(macs)
        y, grads = _run(x, w, b, (True, True, True), g)
        assert y.dtype == dtype and all(gr.dtype == dtype for gr in grads)
        np.testing.assert_allclose(y, y_ref, **tol)
        for got, want in zip(grads, g_ref):
            np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("rg", [(False, True, True), (True, False, False), (True, True, False),
                                (False, False, True), (False, True, False)])
def test_small_requires_grad_combinations(threshold, rg):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    y, grads = _run(x, w, b, rg)
    y_ref, g_ref = _expected(x, w, b, None)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)
    for req, got, want in zip(rg, grads, g_ref):
        if req:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        else:
            assert got is None


def test_small_non_contiguous_operands(threshold):
    """Transposed x and w, a strided bias, and a non-contiguous incoming gradient."""
    rng = np.random.default_rng(2)
    xb, wb = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    bb, gb = rng.standard_normal(8), rng.standard_normal((4, 5))
    x, w, b, g = xb.T, wb.T, bb[::2], gb.T            # (5, 3), (4, 3), (4,), (5, 4)
    assert not x.flags.c_contiguous and not b.flags.c_contiguous
    xt, wt = fg.tensor(xb, requires_grad=True), fg.tensor(wb, requires_grad=True)
    bt = fg.tensor(bb, requires_grad=True)
    y = F.linear(xt.t(), wt.t(), bt[::2])
    y.backward(fg.tensor(gb).t())
    y_ref, (gx, gw, gbias) = _expected(x, w, b, g)
    np.testing.assert_allclose(y.detach().numpy(), y_ref, rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), gx.T, rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), gw.T, rtol=1e-12)
    want_b = np.zeros(8)
    want_b[::2] = gbias
    np.testing.assert_allclose(bt.grad.numpy(), want_b, rtol=1e-12, atol=1e-15)


def test_small_expanded_gradient_and_no_bias(threshold):
    """sum() hands the node a stride-0 gradient; the loops read it without a copy."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    y, (gx, gw, gb) = _run(x, w, None, (True, True, False))
    y_ref, (ex, ew, _) = _expected(x, w, None, None)
    assert gb is None
    np.testing.assert_allclose(gx, ex, rtol=1e-12)
    np.testing.assert_allclose(gw, ew, rtol=1e-12)


@pytest.mark.parametrize("xshape", [(3,), (2, 3, 3)])
def test_small_other_ranks_fall_back(threshold, xshape):
    def fn(x, w, b):
        return F.linear(x, w, b)
    rng = np.random.default_rng(4)
    check_grad(fn, [rng.standard_normal(xshape), rng.standard_normal((2, 3)),
                    rng.standard_normal(2)],
               ref=lambda x, w, b: x @ w.T + b)


def test_small_finite_differences_and_double_backward(threshold):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)]
    check_grad(lambda x, w, b: F.linear(x, w, b), arrays, ref=lambda x, w, b: x @ w.T + b)
    # create_graph goes through recorded ops: second derivatives by finite differences
    inputs = [fg.tensor(a, requires_grad=True) for a in arrays]
    assert fg.autograd.gradgradcheck(lambda x, w, b: F.linear(x, w, b).sigmoid(), inputs)


def test_small_mixed_dtype_error(threshold):
    x = fg.tensor(np.ones((2, 2), dtype=np.float64))
    w = fg.tensor(np.ones((2, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match="same dtype"):
        F.linear(x, w)


def test_small_vs_torch(threshold):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 2), (2, 2), (2,)))
    out = {}
    for lib in (torch, fg):
        xt = lib.tensor(x, requires_grad=True)
        wt = lib.tensor(w, requires_grad=True)
        bt = lib.tensor(b, requires_grad=True)
        y = lib.nn.functional.linear(xt, wt, bt).sigmoid()
        ((y - 1) ** 2).mean().backward()
        out[lib.__name__] = [t.detach().numpy() for t in (y, xt.grad, wt.grad, bt.grad)]
        assert type(y.grad_fn).__name__ == "SigmoidBackward0"
    for a, c in zip(out["torch"], out["fastgrad"]):
        np.testing.assert_allclose(c, a, rtol=1e-6, atol=1e-7)

"""Pooling (max/avg, 1-D/2-D, adaptive): outputs, indices and input gradients against torch over a
grid of arguments, ties routed to the element PyTorch picks, float64 finite differences, errors."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional


def _vs_torch(call, x, tol=1e-12, with_indices=False):
    torch = pytest.importorskip("torch")
    outs = []
    for lib in (torch, fg):
        t = lib.tensor(x, requires_grad=True)
        r = call(lib, t)
        y, idx = r if with_indices else (r, None)
        gy = np.random.default_rng(1).standard_normal(tuple(y.shape)).astype(x.dtype)
        y.backward(lib.tensor(gy))
        outs.append((y.detach().numpy(), None if idx is None else idx.numpy(), t.grad.numpy()))
    (ty, ti, tg), (fy, fi, fgr) = outs
    np.testing.assert_allclose(fy, ty, rtol=tol, atol=tol)
    if with_indices:
        np.testing.assert_array_equal(fi, ti)
    np.testing.assert_allclose(fgr, tg, rtol=tol, atol=tol)


MAX2D = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
         dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1)),
         dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, stride=1, padding=1,
                                                             ceil_mode=True),
         dict(kernel_size=3, dilation=2, padding=1, ceil_mode=True, stride=3)]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kw", MAX2D)
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (3, 6, 5)])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d_vs_torch(kw, shape, ties):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    _vs_torch(lambda lib, t: lib.nn.functional.max_pool2d(t, return_indices=True, **kw), x,
              with_indices=True)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                           dilation=2, ceil_mode=True)])
def test_max_pool1d_vs_torch(kw):
    x = np.random.default_rng(2).integers(0, 3, (2, 3, 11)).astype(np.float32)
    _vs_torch(lambda lib, t: lib.nn.functional.max_pool1d(t, return_indices=True, **kw), x,
              with_indices=True)


AVG2D = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
         dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
         dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True),
         dict(kernel_size=2, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
         dict(kernel_size=3, padding=1, divisor_override=5)]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kw", AVG2D)
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (3, 5, 5)])
def test_avg_pool2d_vs_torch(kw, shape):
    x = np.random.default_rng(3).standard_normal(shape)
    _vs_torch(lambda lib, t: lib.nn.functional.avg_pool2d(t, **kw), x)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=4, stride=3, padding=2,
                                                           ceil_mode=True,
                                                           count_include_pad=False)])
def test_avg_pool1d_vs_torch(kw):
    x = np.random.default_rng(4).standard_normal((2, 3, 13))
    _vs_torch(lambda lib, t: lib.nn.functional.avg_pool1d(t, **kw), x)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("out", [1, 3, (2, 5), (None, 4), (7, 9)])
def test_adaptive_2d_vs_torch(out):
    x = np.random.default_rng(5).integers(0, 4, (2, 3, 7, 9)).astype(np.float64)
    _vs_torch(lambda lib, t: lib.nn.functional.adaptive_avg_pool2d(t, out), x)
    _vs_torch(lambda lib, t: lib.nn.functional.adaptive_max_pool2d(t, out, return_indices=True),
              x, with_indices=True)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("out", [1, 4, 10])
def test_adaptive_1d_vs_torch(out):
    x = np.random.default_rng(6).integers(0, 4, (2, 3, 10)).astype(np.float64)
    _vs_torch(lambda lib, t: lib.nn.functional.adaptive_avg_pool1d(t, out), x)
    _vs_torch(lambda lib, t: lib.nn.functional.adaptive_max_pool1d(t, out, return_indices=True),
              x, with_indices=True)


PAIR_SHAPES = [(2, 3, 6, 22), (2, 3, 4, 6), (1, 2, 5, 17), (1, 1, 2, 16)]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("shape", PAIR_SHAPES)
def test_max_pool2d_float32_pairs_ties_vs_torch(shape):
    """float32 2x2 windows at stride 2 run vectorised (pool_pairs.h), eight outputs at a time and
    a masked rest: ties still go to the element torch picks."""
    x = np.random.default_rng(3).integers(0, 3, shape).astype(np.float32)
    _vs_torch(lambda lib, t: lib.nn.functional.max_pool2d(t, 2, return_indices=True), x,
              with_indices=True)


@pytest.mark.parametrize("shape", PAIR_SHAPES)
def test_max_pool2d_float32_pairs_nan_as_the_scan(shape):
    """With NaNs among ties, the vectorised float32 windows pick what the float64 scan picks
    (the last NaN of a window, else its first maximum)."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, shape).astype(np.float64)
    x[rng.random(shape) < 0.2] = np.nan
    y64, i64 = F.max_pool2d(fg.tensor(x), 2, return_indices=True)
    y32, i32 = F.max_pool2d(fg.tensor(x.astype(np.float32)), 2, return_indices=True)
    np.testing.assert_array_equal(i32.numpy(), i64.numpy())
    np.testing.assert_array_equal(y32.numpy(), y64.numpy().astype(np.float32))

def test_max_pool_ties_route_to_the_first_maximum():
    """Equal values in a window: the gradient goes to the first in row-major scan order."""
    x = fg.tensor([[[[1.0, 1.0], [1.0, 1.0]]]], requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    y.sum().backward()
    assert idx.tolist() == [[[[0]]]]
    assert x.grad.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_max_pool_nan_wins():
    x = fg.tensor([[[[float("nan"), 1.0], [2.0, float("nan")]]]])
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y.item()) and idx.item() == 3


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_modules_and_reprs_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 9)).astype(np.float32)
    x1 = x[:, :, 0]
    for make, arr in [(lambda nn: nn.MaxPool2d(3, 2, 1, ceil_mode=True), x),
                      (lambda nn: nn.AvgPool2d(2, padding=1), x),
                      (lambda nn: nn.AdaptiveAvgPool2d((2, 3)), x),
                      (lambda nn: nn.AdaptiveMaxPool2d(4), x), (lambda nn: nn.MaxPool1d(3), x1),
                      (lambda nn: nn.AvgPool1d(3, 2), x1), (lambda nn: nn.AdaptiveAvgPool1d(2), x1),
                      (lambda nn: nn.AdaptiveMaxPool1d(3), x1)]:
        tm, fm = make(torch.nn), make(fg.nn)
        assert repr(fm) == repr(tm)
        np.testing.assert_allclose(fm(fg.tensor(arr)).numpy(), tm(torch.tensor(arr)).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_max_pool2d_finite_differences():
    x = np.random.default_rng(8).permutation(60).reshape(1, 3, 4, 5) / 7.0  # no ties
    check_grad(lambda t: F.max_pool2d(t, 2, stride=1, padding=1, dilation=(1, 2)), [x])


def test_avg_pool_finite_differences_and_double_backward():
    rng = np.random.default_rng(9)
    check_grad(lambda t: F.avg_pool2d(t, 3, stride=2, padding=1, ceil_mode=True,
                                      count_include_pad=False), [rng.standard_normal((1, 2, 6, 5))])
    check_grad(lambda t: F.adaptive_avg_pool2d(t, (2, 3)), [rng.standard_normal((1, 2, 5, 7))])

    def gradgrad(t):
        with fg.enable_grad():
            t = t if t.requires_grad else t.detach().requires_grad_()
            y = F.avg_pool2d(t * t, 2, padding=1)
            g, = fg.autograd.grad(y.sum(), t, create_graph=True)
            return g * g
    check_grad(gradgrad, [rng.standard_normal((1, 1, 4, 4))])


def test_max_pool_double_backward():
    x = np.random.default_rng(10).permutation(32).reshape(1, 2, 4, 4) / 5.0

    def gradgrad(t):
        with fg.enable_grad():
            t = t if t.requires_grad else t.detach().requires_grad_()
            y = F.max_pool2d(t * t, 2)
            g, = fg.autograd.grad(y.sum(), t, create_graph=True)
            return g * g
    check_grad(gradgrad, [x])


def test_float32_large_batch_threads_agree():
    x = np.random.default_rng(11).standard_normal((64, 6, 28, 28)).astype(np.float32)
    t = fg.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 2)
    ref = x.reshape(64, 6, 14, 2, 14, 2).max((3, 5))
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    y.sum().backward()
    assert t.grad.numpy().sum() == 64 * 6 * 14 * 14


def test_errors():
    x = fg.randn(2, 3, 5, 5)
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel size"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.avg_pool2d(x, 3, padding=2)
    with pytest.raises(RuntimeError, match=r"Given input size: \(3x2x2\). Calculated output size: "
                                           r"\(3x0x0\). Output size is too small"):
        F.max_pool2d(fg.randn(2, 3, 2, 2), 3)
    with pytest.raises(RuntimeError, match="3D or 4D"):
        F.max_pool2d(fg.randn(2, 3), 3)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D tensor"):
        F.adaptive_avg_pool2d(fg.randn(2, 3), 3)
    with pytest.raises(RuntimeError, match="stride should not be zero"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(RuntimeError, match="divisor must be not zero"):
        F.avg_pool2d(x, 2, divisor_override=0)

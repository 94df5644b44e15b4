"""F.binary_cross_entropy at probabilities of exactly 0 and 1, with weights and reductions.

The loss clamps each log at -100 and the input gradient is g w (x - y) / max(x (1 - x), eps)
with eps = 1e-12 rounded to float32 (PyTorch's formula): finite where x is 0 or 1. Inputs or targets
outside [0, 1] (NaN included)
raise RuntimeError. Expectations are closed forms; torch, where installed, is run on the same
cases.
"""
import numpy as np
import pytest

from _backend import fg

F = fg.nn.functional

X = [0.0, 1.0, 0.5, 0.0, 1.0, 0.25]
Y = [0.0, 1.0, 1.0, 1.0, 0.0, 0.5]
W = [1.0, 2.0, 0.5, 3.0, 1.5, 2.0]


def _expected(x, y, w, reduction):
    x, y, w = (np.asarray(v, dtype=np.float64) for v in (x, y, w))
    with np.errstate(divide="ignore"):
        lx, l1x = np.maximum(np.log(x), -100.0), np.maximum(np.log(1 - x), -100.0)
        gy = -(np.log(x) - np.log(1 - x))
    loss = -w * (y * lx + (1 - y) * l1x)
    gx = w * (x - y) / np.maximum(x * (1 - x), float(np.float32(1e-12)))
    gy = w * gy
    if reduction == "mean":
        return loss.mean(), gx / x.size, gy / x.size
    if reduction == "sum":
        return loss.sum(), gx, gy
    return loss, gx, gy


def _run(T, reduction, weighted):
    x = T.tensor(X, dtype=T.float64, requires_grad=True)
    y = T.tensor(Y, dtype=T.float64, requires_grad=True)
    w = T.tensor(W, dtype=T.float64) if weighted else None
    loss = T.nn.functional.binary_cross_entropy(x, y, weight=w, reduction=reduction)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy(), y.grad.numpy()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_at_zero_and_one(reduction, weighted):
    got = _run(fg, reduction, weighted)
    expected = _expected(X, Y, W if weighted else [1.0] * len(X), reduction)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    assert np.isfinite(got[1]).all()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_matches_torch(reduction, weighted):
    torch = pytest.importorskip("torch")
    for g, e in zip(_run(fg, reduction, weighted), _run(torch, reduction, weighted)):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_bce_module_with_weight():
    x = fg.tensor([0.0, 0.5], dtype=fg.float64, requires_grad=True)
    y = fg.tensor([0.0, 1.0], dtype=fg.float64)
    loss = fg.nn.BCELoss(weight=fg.tensor([2.0, 4.0], dtype=fg.float64))(x, y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 4.0 * np.log(2.0) / 2, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -4.0], rtol=1e-12)


def test_bce_float32_edges_finite():
    x = fg.tensor([0.0, 1.0, 1.0], requires_grad=True)
    y = fg.tensor([1.0, 0.0, 1.0])
    loss = F.binary_cross_entropy(x, y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 200.0 / 3, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [-1e12 / 3, 1e12 / 3, 0.0], rtol=1e-6)


@pytest.mark.parametrize("x,y,which", [
    ([float("nan")], [0.0], "input"),
    ([1.5], [0.0], "input"),
    ([-0.1], [0.0], "input"),
    ([0.5], [2.0], "target"),
    ([0.5], [-0.1], "target"),
    ([0.5], [float("nan")], "target"),
])
def test_bce_out_of_range_raises(x, y, which):
    with pytest.raises(RuntimeError, match=f"all elements of {which} should be between 0 and 1"):
        F.binary_cross_entropy(fg.tensor(x), fg.tensor(y))


def test_bce_gradgradcheck():
    x = fg.tensor([0.2, 0.7, 0.5], dtype=fg.float64, requires_grad=True)
    y = fg.tensor([0.1, 0.9, 0.3], dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda a, b: F.binary_cross_entropy(a, b), (x, y))
    w = fg.tensor([1.0, 2.0, 0.5], dtype=fg.float64)
    assert fg.autograd.gradgradcheck(
        lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction="sum"), (x, y))

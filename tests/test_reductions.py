"""softmax/log_softmax and the reductions of issue 3: values vs NumPy, gradients vs float64
central differences (0-d, empty, non-contiguous inputs), stability at large logits, vs torch."""
import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

R = np.random.default_rng(11)


def arr(*shape):
    return R.standard_normal(shape)


def np_softmax(x, d):
    e = np.exp(x - x.max(d, keepdims=True))
    return e / e.sum(d, keepdims=True)


@pytest.mark.parametrize("shape, dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1), ((), 0)])
def test_softmax_log_softmax(shape, dim):
    x = arr(*shape)
    check_grad(lambda t: fg.softmax(t, dim), [x], ref=lambda a: np_softmax(a, dim) if a.ndim else np.ones(()))
    check_grad(lambda t: fg.log_softmax(t, dim), [x],
               ref=lambda a: np.log(np_softmax(a, dim)) if a.ndim else np.zeros(()))
    check_grad(lambda t: t.t().softmax(0) if t.ndim == 2 else t.softmax(dim), [x])


def test_softmax_stable_and_float32():
    x = fg.tensor([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    s = fg.softmax(x, 1).numpy()
    assert np.isfinite(s).all() and s[0, 0] == 1.0
    ls = fg.log_softmax(x, 1).numpy()
    assert np.isfinite(ls).all() and ls[0, 2] == pytest.approx(-2000.0)
    assert fg.logsumexp(x, 1).numpy()[0] == pytest.approx(1000.0)
    a = arr(4, 7)
    np.testing.assert_allclose(fg.tensor(a, dtype=fg.float32).softmax(1).numpy(), np_softmax(a, 1), rtol=1e-5)


@pytest.mark.parametrize("fn, ref, shape", [
    (lambda t: t.var(), lambda a: a.var(ddof=1), (3, 4)),
    (lambda t: t.var(1), lambda a: a.var(1, ddof=1), (3, 4)),
    (lambda t: t.var(0, keepdim=True, correction=0), lambda a: a.var(0, keepdims=True), (3, 4)),
    (lambda t: t.std(), lambda a: a.std(ddof=1), (5,)),
    (lambda t: t.std((0, 2), unbiased=False), lambda a: a.std((0, 2)), (2, 3, 2)),
    (lambda t: t.prod(), lambda a: a.prod(), (2, 3)),
    (lambda t: t.prod(1), lambda a: a.prod(1), (3, 4)),
    (lambda t: t.prod(0, keepdim=True), lambda a: a.prod(0, keepdims=True), (3, 2)),
    (lambda t: t.cumsum(0), lambda a: a.cumsum(0), (4, 2)),
    (lambda t: t.cumsum(-1), lambda a: a.cumsum(-1), (2, 3)),
    (lambda t: t.logsumexp(1), lambda a: np.log(np.exp(a).sum(1)), (3, 4)),
    (lambda t: t.logsumexp((0, 1), keepdim=True), lambda a: np.log(np.exp(a).sum(keepdims=True)), (3, 4)),
    (lambda t: t.norm(), lambda a: np.sqrt((a * a).sum()), (3, 4)),
    (lambda t: t.norm(dim=1), lambda a: np.sqrt((a * a).sum(1)), (3, 4)),
    (lambda t: t.norm(p=1, dim=0), lambda a: np.abs(a).sum(0), (3, 4)),
    (lambda t: t.norm(p=3), lambda a: (np.abs(a) ** 3).sum() ** (1 / 3), (5,)),
    (lambda t: t.norm(p=float("inf")), lambda a: np.abs(a).max(), (5,)),
    (lambda t: t.amax(1), lambda a: a.max(1), (3, 4)),
    (lambda t: t.amin(), lambda a: a.min(), (3, 4)),
    (lambda t: t.amax((0, 1), keepdim=True), lambda a: a.max((0, 1), keepdims=True), (2, 3)),
    (lambda t: t.t()[::2].var(0), lambda a: a.T[::2].var(0, ddof=1), (3, 5)),
    (lambda t: t.t().prod(0), lambda a: a.T.prod(0), (3, 2)),
    (lambda t: t.sum(1).cumsum(0), lambda a: a.sum(1).cumsum(0), (3, 0)),
])
def test_reductions(fn, ref, shape):
    check_grad(fn, [arr(*shape)], ref=ref)


def test_prod_with_zeros_and_ties():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 1.0], [1.0, 2.0, 4.0]])
    t = fg.tensor(x, requires_grad=True)
    t.prod(1).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), [[0, 6, 0], [0, 0, 0], [8, 4, 2]])
    t = fg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    t.amax().backward()
    np.testing.assert_allclose(t.grad.numpy(), [0, 0.5, 0.5])


def test_arg_and_bool_reductions():
    a = arr(3, 4)
    t = fg.tensor(a)
    assert t.argmax().item() == a.argmax()
    np.testing.assert_array_equal(t.argmax(1).numpy(), a.argmax(1))
    np.testing.assert_array_equal(t.argmin(0, keepdim=True).numpy(), a.argmin(0)[None])
    assert t.argmax(1).dtype == fg.int64
    b = t > 0
    np.testing.assert_array_equal(b.all(1).numpy(), (a > 0).all(1))
    np.testing.assert_array_equal(fg.any(b, 0).numpy(), (a > 0).any(0))
    assert bool(b.any()) == bool((a > 0).any())
    with pytest.raises(IndexError):
        fg.zeros(0).argmax()


def test_vs_torch():
    torch = pytest.importorskip("torch")
    xn = arr(3, 5)
    res = []
    for lib in (torch, fg):
        x = lib.tensor(xn, requires_grad=True)
        ys = [x.var(1), x.std(0, keepdim=True), x.prod(1), x.cumsum(1), x.logsumexp(0), x.norm(dim=1),
              x.amax(0), lib.softmax(x, 1), lib.log_softmax(x, 0), x.norm(p=1)]
        sum(((y * y).sum() for y in ys[1:]), (ys[0] * ys[0]).sum()).backward()
        res.append(([y.detach().numpy() for y in ys], x.grad.numpy().copy(), [y.grad_fn.name() for y in ys]))
    for a, b in zip(res[0][0], res[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)
    assert res[0][2] == res[1][2]

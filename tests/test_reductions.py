"""softmax/log_softmax and the reductions: values vs NumPy, gradients vs float64 central
differences (0-d, empty, non-contiguous inputs), stability at large logits, vs torch; prod's
gradient with zeros, infinities and underflow; std/var of large float32 values (accumulated in
float64); NumPy's axis=/keepdims= spellings and dtype=; histogram."""
import math

import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch
from _fd import check_grad

F = fg.nn.functional
R = np.random.default_rng(11)
inf = math.inf


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


# --- std / var of large float32 values: accumulated in float64 ---------------------------------

def _std_var(T):
    x = T.tensor([3e19, -3e19], requires_grad=True)
    s = x.std()
    s.backward()
    return (s.item(), x.var().item(), x.std(correction=0).item(), x.std(dim=0).item(),
            x.grad.numpy())


def test_std_float32_does_not_overflow():
    s, v, s0, sd, g = _std_var(fg)
    np.testing.assert_allclose([s, s0, sd], [math.sqrt(2) * 3e19, 3e19, math.sqrt(2) * 3e19],
                               rtol=1e-6)
    assert v == inf                        # 1.8e39 itself does not fit a float32
    np.testing.assert_allclose(g, [1 / math.sqrt(2), -1 / math.sqrt(2)], rtol=1e-6)


def test_std_float32_matches_torch():
    torch = pytest.importorskip("torch")
    got, ref = _std_var(fg), _std_var(torch)
    np.testing.assert_allclose(got[:4], ref[:4], rtol=1e-6)
    np.testing.assert_allclose(got[4], ref[4], rtol=1e-6)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's float64 accumulation; PyTorch's float32 var keeps fewer digits")
def test_std_float32_precision_from_float64_accumulation():
    """Mean 1e4, spread 1e-2: a float32 two-pass would keep ~3 digits of the 1e-4 variance."""
    rng = np.random.default_rng(0)
    a = (1e4 + rng.standard_normal(1000) * 1e-2).astype(np.float32)
    np.testing.assert_allclose(fg.tensor(a).var().item(), np.var(a.astype(np.float64), ddof=1),
                               rtol=1e-6)


# -- prod's gradient is prod / x when nothing is zero (an underflowed or infinite product) --

def test_prod_grad_with_infinity_is_prod_over_x():
    x = fg.tensor([-float("inf"), 1.4542558734138378, -1.0], dtype=fg.float64, requires_grad=True)
    x.prod().backward()
    g = x.grad.numpy()
    assert math.isnan(g[0]) and g[1] == float("inf") and g[2] == -float("inf")


def test_prod_grad_with_underflowed_product():
    x = fg.tensor([[-0.6694312240767955, 0.5, 5e-324], [0.386, -0.527, 0.125]],
                  dtype=fg.float64, requires_grad=True)
    x.prod(1).sum().backward()
    assert x.grad.numpy()[0].tolist() == [0.0, 0.0, 0.0]     # prod underflowed to -0.0
    np.testing.assert_allclose(x.grad.numpy()[1], [-0.527 * 0.125, 0.386 * 0.125, 0.386 * -0.527],
                               rtol=1e-14)


def test_prod_grad_with_one_zero_stays_exact():
    x = fg.tensor([2.0, 0.0, 3.0], dtype=fg.float64, requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 6.0, 0.0]


@pytest.mark.parametrize("fn", [fg.softmax, F.log_softmax])
def test_softmax_checks_the_dim_before_the_dtype(fn):
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(fg.tensor([0, 0, 0]), -2)


# --- NumPy's axis / keepdims spellings and dtype= on sum and mean (makemore: sum(1, keepdims=True))

def test_sum_mean_accept_axis_and_keepdims():
    x = fg.arange(6.0).reshape(2, 3)
    assert x.sum(1, keepdims=True).tolist() == [[3.0], [12.0]]
    assert x.sum(axis=0).tolist() == [3.0, 5.0, 7.0]
    assert fg.sum(x, axis=1, keepdims=True).shape == (2, 1)
    assert x.mean(axis=0).tolist() == [1.5, 2.5, 3.5]
    assert fg.mean(x, 1, keepdims=True).tolist() == [[1.0], [4.0]]
    with pytest.raises(TypeError):
        x.sum(dim=1, axis=1)


def test_sum_mean_dtype_casts_first():
    x = fg.tensor([1.0, 2.0, 1e-8])
    assert x.sum(dtype=fg.float64).dtype == fg.float64
    assert fg.sum(x, 0, dtype=fg.float64).dtype == fg.float64
    assert x.mean(dtype=fg.float64).dtype == fg.float64
    assert fg.tensor([1, 2]).sum(dtype=fg.float32).dtype == fg.float32
    w = fg.ones(3, requires_grad=True)
    w.sum(dtype=fg.float64).backward()
    assert w.grad.dtype == fg.float32 and w.grad.tolist() == [1.0, 1.0, 1.0]


# --- histogram (makemore part 3 plots activation statistics with it) ---------------------------

def test_histogram_counts_and_edges():
    x = fg.tensor([0.0, 0.1, 0.5, 0.9, 1.0, 2.0])
    hist, edges = fg.histogram(x, bins=2, range=(0.0, 1.0))
    assert hist.tolist() == [2.0, 3.0] and edges.tolist() == [0.0, 0.5, 1.0]
    r = fg.histogram(x, 4)
    assert r.hist.tolist() == [2.0, 2.0, 1.0, 1.0] and r.bin_edges.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    d = fg.histogram(x, fg.tensor([0.0, 1.0, 2.0]), density=True)
    assert np.allclose(d.hist.numpy(), [4 / 6, 2 / 6])
    assert r.hist.dtype == fg.float32
    with pytest.raises(NotImplementedError):
        fg.histogram(fg.arange(5), 3)


def test_histogram_matches_torch():
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    t = torch.randn(1000)
    ref, got = torch.histogram(t, density=True), fg.histogram(fg.tensor(t.numpy()), density=True)
    assert np.allclose(got.hist.numpy(), ref.hist.numpy(), rtol=1e-5)
    assert np.allclose(got.bin_edges.numpy(), ref.bin_edges.numpy(), atol=1e-6)


# --- axis= / keepdims= on every reduction ------------------------------------------------------

AXIS_CALLS = [
    ("max", lambda m, x: m.max(x, axis=1)[0]), ("min_method", lambda m, x: x.min(axis=0)[1]),
    ("prod", lambda m, x: x.prod(axis=1)), ("std", lambda m, x: x.std(axis=0, keepdims=True)),
    ("var", lambda m, x: m.var(x, axis=1)), ("argmax", lambda m, x: x.argmax(axis=1)),
    ("amax", lambda m, x: x.amax(axis=0, keepdims=True)), ("cumsum", lambda m, x: x.cumsum(axis=1)),
    ("logsumexp", lambda m, x: m.logsumexp(x, axis=1)), ("softmax", lambda m, x: x.softmax(axis=0)),
    ("any", lambda m, x: (x > 0).any(axis=1)), ("sum", lambda m, x: m.sum(x, axis=0, keepdims=True)),
]


@pytest.mark.parametrize("name, call", AXIS_CALLS, ids=[c[0] for c in AXIS_CALLS])
def test_axis_and_keepdims_are_aliases_of_dim_and_keepdim(name, call):
    x0 = np.array([[1.0, -2.0, 3.5], [0.5, 4.0, -1.0]], dtype=np.float32)
    got = call(fg, fg.tensor(x0)).numpy()
    dim_form = {"max": lambda x: np.max(x, 1), "min_method": lambda x: np.argmin(x, 0),
                "prod": lambda x: np.prod(x, 1), "std": lambda x: np.std(x, 0, ddof=1, keepdims=True),
                "var": lambda x: np.var(x, 1, ddof=1), "argmax": lambda x: np.argmax(x, 1),
                "amax": lambda x: np.max(x, 0, keepdims=True), "cumsum": lambda x: np.cumsum(x, 1),
                "logsumexp": lambda x: np.log(np.exp(x).sum(1)),
                "softmax": lambda x: np.exp(x) / np.exp(x).sum(0), "any": lambda x: (x > 0).any(1),
                "sum": lambda x: x.sum(0, keepdims=True)}[name](x0.astype(np.float64))
    np.testing.assert_allclose(got, dim_form, rtol=1e-6)
    with pytest.raises(TypeError):
        fg.tensor(x0).max(dim=0, axis=1)


def test_count_nonzero():
    x = fg.tensor([[0.0, 1.0, float("nan")], [0.0, 0.0, -3.0]], requires_grad=True)
    assert fg.count_nonzero(x).item() == 3                  # NaN is not zero
    assert fg.count_nonzero(x, dim=0).tolist() == [0, 1, 2]
    assert x.count_nonzero(1).tolist() == [2, 1]
    assert x.count_nonzero((0, 1)).item() == 3
    r = fg.count_nonzero(fg.tensor([True, False, True]))
    assert r.dtype == fg.int64 and r.item() == 2 and r.grad_fn is None
    assert fg.count_nonzero(fg.tensor(3.0), 0).item() == 1
    assert fg.count_nonzero(fg.zeros(0, 3), 0).tolist() == [0, 0, 0]
    with pytest.raises(IndexError, match="out of range"):
        fg.count_nonzero(x, 2)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        fg.count_nonzero(x, (0, 0))

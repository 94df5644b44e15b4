"""The core differentiable ops against float64 central finite differences.

Forward values are compared with NumPy; gradients with tests/_fd.py, over
0-d, 1-d, 2-d and 3-d inputs and broadcast pairs. Sample points stay away from
non-differentiable kinks (abs/relu at 0, clamp at its bounds, max/min ties). The order in which
a backward formula is evaluated decides where it overflows: div's and reciprocal's follow PyTorch's.
"""
import math
import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from _backend import fg
from _fd import check_grad

UNARY_SHAPES = [(), (1,), (3,), (2, 3), (2, 1, 3)]
BINARY_SHAPES = [
    ((), ()),
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((), (4, 1)),
    ((4, 1), ()),
    ((2, 1, 3), (4, 1)),
    ((1,), (2, 3)),
    ((2, 1), (1, 3)),
]


# ---------------------------------------------------------------- samplers
def any_(rng, shape):
    return rng.uniform(-2.0, 2.0, size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def nonzero(rng, shape):
    """|x| in [0.3, 2], random sign: away from 0 (abs, relu, 1/x)."""
    return rng.uniform(0.3, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def away_from_half(rng, shape):
    """Uniform in [-1.5, 1.5] but at least 0.15 away from the clamp bounds +-0.5."""
    x = rng.uniform(-1.5, 1.5, size=shape)
    return np.where(np.abs(np.abs(x) - 0.5) < 0.05, x + 0.2, x)


def grid_a(rng, shape):
    """Values 0.2k + 0.05; with grid_b values 0.2k - 0.05 no pair is closer than 0.1."""
    return 0.2 * rng.integers(-8, 9, size=shape) + 0.05


def grid_b(rng, shape):
    return 0.2 * rng.integers(-8, 9, size=shape) - 0.05


def distinct(rng, shape):
    """All entries pairwise >= 0.15 apart: no ties for max/min."""
    n = int(np.prod(shape, dtype=np.int64))
    x = rng.permutation(n) * 0.25 - 0.125 * n + rng.uniform(-0.05, 0.05, size=n)
    return x.reshape(shape)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------- unary ops
# (id, method form, function form or None, NumPy reference, sampler)
UNARY = [
    ("neg", lambda t: t.neg(), lambda t: fg.neg(t), np.negative, any_),
    ("neg_op", lambda t: -t, None, np.negative, any_),
    ("abs", lambda t: t.abs(), lambda t: fg.abs(t), np.abs, nonzero),
    ("abs_builtin", lambda t: abs(t), None, np.abs, nonzero),
    ("exp", lambda t: t.exp(), lambda t: fg.exp(t), np.exp, any_),
    ("log", lambda t: t.log(), lambda t: fg.log(t), np.log, positive),
    ("sqrt", lambda t: t.sqrt(), lambda t: fg.sqrt(t), np.sqrt, positive),
    ("sin", lambda t: t.sin(), lambda t: fg.sin(t), np.sin, any_),
    ("cos", lambda t: t.cos(), lambda t: fg.cos(t), np.cos, any_),
    ("tanh", lambda t: t.tanh(), lambda t: fg.tanh(t), np.tanh, any_),
    ("sigmoid", lambda t: t.sigmoid(), lambda t: fg.sigmoid(t), _sigmoid, any_),
    ("relu", lambda t: t.relu(), lambda t: fg.relu(t), lambda x: np.maximum(x, 0.0), nonzero),
    ("reciprocal", lambda t: t.reciprocal(), lambda t: fg.reciprocal(t), lambda x: 1.0 / x, nonzero),
    ("clamp", lambda t: t.clamp(-0.5, 0.5), lambda t: fg.clamp(t, -0.5, 0.5),
     lambda x: np.clip(x, -0.5, 0.5), away_from_half),
    ("clamp_min", lambda t: t.clamp(min=-0.5), lambda t: fg.clamp(t, min=-0.5),
     lambda x: np.maximum(x, -0.5), away_from_half),
    ("clamp_max", lambda t: t.clamp(max=0.5), lambda t: fg.clamp(t, max=0.5),
     lambda x: np.minimum(x, 0.5), away_from_half),
    ("pow2", lambda t: t ** 2, None, lambda x: x ** 2, any_),
    ("pow3", lambda t: t ** 3, None, lambda x: x ** 3, any_),
    ("pow_half", lambda t: t ** 0.5, None, np.sqrt, positive),
    ("pow_neg1", lambda t: t ** -1, None, lambda x: 1.0 / x, nonzero),
    ("pow_2_5", lambda t: t.pow(2.5), None, lambda x: x ** 2.5, positive),
    ("pow0", lambda t: t ** 0, None, lambda x: np.ones_like(x), any_),
    ("rpow", lambda t: 2.0 ** t, None, lambda x: 2.0 ** x, any_),
    ("add_scalar", lambda t: t + 2.5, None, lambda x: x + 2.5, any_),
    ("radd_scalar", lambda t: 2.5 + t, None, lambda x: 2.5 + x, any_),
    ("add_int", lambda t: t + 2, None, lambda x: x + 2, any_),
    ("sub_scalar", lambda t: t - 1.5, None, lambda x: x - 1.5, any_),
    ("rsub_scalar", lambda t: 1.5 - t, None, lambda x: 1.5 - x, any_),
    ("rsub_int", lambda t: 2 - t, None, lambda x: 2 - x, any_),
    ("mul_scalar", lambda t: t * -3.0, None, lambda x: x * -3.0, any_),
    ("rmul_scalar", lambda t: -3.0 * t, None, lambda x: -3.0 * x, any_),
    ("rmul_int", lambda t: 3 * t, None, lambda x: 3 * x, any_),
    ("div_scalar", lambda t: t / 4.0, None, lambda x: x / 4.0, any_),
    ("rdiv_scalar", lambda t: 2.0 / t, None, lambda x: 2.0 / x, nonzero),
    ("rdiv_int", lambda t: 1 / t, None, lambda x: 1 / x, nonzero),
]
UNARY_IDS = [u[0] for u in UNARY]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name, method, func, ref, sample", UNARY, ids=UNARY_IDS)
def test_unary_grad(name, method, func, ref, sample, shape, rng):
    check_grad(method, [sample(rng, shape)], ref=ref, rng=rng)


FUNCTIONAL = [u for u in UNARY if u[2] is not None]


@pytest.mark.parametrize("shape", [(), (2, 3)], ids=str)
@pytest.mark.parametrize("name, method, func, ref, sample", FUNCTIONAL, ids=[u[0] for u in FUNCTIONAL])
def test_unary_function_form_grad(name, method, func, ref, sample, shape, rng):
    """fastgrad.exp(x) etc. are the same op as x.exp()."""
    check_grad(func, [sample(rng, shape)], ref=ref, rng=rng)


@pytest.mark.parametrize("name, method, func, ref, sample", UNARY, ids=UNARY_IDS)
def test_unary_float32_forward_and_grad_dtype(name, method, func, ref, sample, rng):
    """float32 stays float32 (Python scalars do not promote it); grads are float32 too."""
    x_np = sample(rng, (2, 3)).astype(np.float32)
    x = fg.tensor(x_np, requires_grad=True)
    assert x.dtype == fg.float32
    y = method(x)
    assert y.dtype == fg.float32
    np.testing.assert_allclose(y.detach().numpy(), ref(x_np.astype(np.float64)), rtol=2e-6, atol=1e-6)
    y.sum().backward()
    assert x.grad.dtype == fg.float32
    assert tuple(x.grad.shape) == (2, 3)


# ---------------------------------------------------------------- binary ops
BINARY = [
    ("add", operator.add, np.add, any_, any_),
    ("sub", operator.sub, np.subtract, any_, any_),
    ("mul", operator.mul, np.multiply, any_, any_),
    ("div", operator.truediv, np.divide, any_, nonzero),
    ("pow", operator.pow, np.power, positive, any_),
    ("pow_method", lambda a, b: a.pow(b), np.power, positive, any_),
    ("maximum", lambda a, b: fg.maximum(a, b), np.maximum, grid_a, grid_b),
    ("maximum_method", lambda a, b: a.maximum(b), np.maximum, grid_a, grid_b),
    ("minimum", lambda a, b: fg.minimum(a, b), np.minimum, grid_a, grid_b),
    ("minimum_method", lambda a, b: a.minimum(b), np.minimum, grid_a, grid_b),
]


@pytest.mark.parametrize("sa, sb", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name, op, ref, sample_a, sample_b", BINARY, ids=[b[0] for b in BINARY])
def test_binary_grad(name, op, ref, sample_a, sample_b, sa, sb, rng):
    out = check_grad(op, [sample_a(rng, sa), sample_b(rng, sb)], ref=ref, rng=rng)
    assert out.shape == np.broadcast_shapes(sa, sb)


@pytest.mark.parametrize("name, op, ref, sample_a, sample_b", BINARY[:5], ids=[b[0] for b in BINARY[:5]])
def test_binary_one_side_requires_grad(name, op, ref, sample_a, sample_b, rng):
    """Only the input that requires grad gets one; the other keeps grad None."""
    a, b = sample_a(rng, (2, 3)), sample_b(rng, (3,))
    check_grad(op, [a, b], ref=ref, rng=rng, wrt=[0])
    check_grad(op, [a, b], ref=ref, rng=rng, wrt=[1])


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       op_index=st.integers(0, 4), seed=st.integers(0, 2 ** 16))
def test_binary_grad_random_broadcast_shapes(shapes, op_index, seed):
    name, op, ref, sample_a, sample_b = BINARY[op_index]
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    out = check_grad(op, [sample_a(rng, sa), sample_b(rng, sb)], ref=ref, rng=rng)
    assert out.shape == shapes.result_shape


def test_same_tensor_both_operands(rng):
    """x*x, x+x, x/x, x**x: both edges lead to the same leaf; the gradients add."""
    x = positive(rng, (3,))
    check_grad(lambda t: t * t, [x], ref=lambda a: a * a)
    check_grad(lambda t: t + t, [x], ref=lambda a: a + a)
    check_grad(lambda t: t / t, [x], ref=lambda a: a / a)
    check_grad(lambda t: t ** t, [x], ref=lambda a: a ** a)
    check_grad(lambda t: fg.maximum(t, t * 2.0), [x], ref=lambda a: np.maximum(a, 2 * a))


# ---------------------------------------------------------------- reductions
REDUCTIONS = [
    ("sum", lambda t: t.sum(), lambda a: a.sum()),
    ("sum_dim0", lambda t: t.sum(0), lambda a: a.sum(0)),
    ("sum_dim_last", lambda t: t.sum(dim=-1), lambda a: a.sum(-1)),
    ("sum_dim_tuple", lambda t: t.sum(dim=(0, 2)), lambda a: a.sum((0, 2))),
    ("sum_keepdim", lambda t: t.sum(1, keepdim=True), lambda a: a.sum(1, keepdims=True)),
    ("sum_tuple_keepdim", lambda t: t.sum((0, -1), keepdim=True), lambda a: a.sum((0, 2), keepdims=True)),
    ("sum_fn", lambda t: fg.sum(t), lambda a: a.sum()),
    ("sum_fn_dim", lambda t: fg.sum(t, dim=1), lambda a: a.sum(1)),
    ("mean", lambda t: t.mean(), lambda a: a.mean()),
    ("mean_dim0", lambda t: t.mean(0), lambda a: a.mean(0)),
    ("mean_dim_tuple", lambda t: t.mean(dim=(1, 2)), lambda a: a.mean((1, 2))),
    ("mean_keepdim", lambda t: t.mean(-1, keepdim=True), lambda a: a.mean(-1, keepdims=True)),
    ("mean_fn", lambda t: fg.mean(t), lambda a: a.mean()),
    ("max", lambda t: t.max(), lambda a: a.max()),
    ("min", lambda t: t.min(), lambda a: a.min()),
    ("max_dim", lambda t: t.max(dim=1).values, lambda a: a.max(1)),
    ("max_dim_index0", lambda t: t.max(1)[0], lambda a: a.max(1)),
    ("max_dim_keepdim", lambda t: t.max(0, keepdim=True).values, lambda a: a.max(0, keepdims=True)),
    ("max_dim_neg", lambda t: t.max(-1).values, lambda a: a.max(-1)),
    ("min_dim", lambda t: t.min(dim=2).values, lambda a: a.min(2)),
    ("min_dim_keepdim", lambda t: t.min(1, keepdim=True)[0], lambda a: a.min(1, keepdims=True)),
]


@pytest.mark.parametrize("name, fn, ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_grad(name, fn, ref, rng):
    check_grad(fn, [distinct(rng, (2, 3, 4))], ref=ref, rng=rng)


@pytest.mark.parametrize("name, fn, ref", [r for r in REDUCTIONS if "dim" not in r[0]],
                         ids=[r[0] for r in REDUCTIONS if "dim" not in r[0]])
@pytest.mark.parametrize("shape", [(), (1,), (5,)], ids=str)
def test_full_reduction_grad_small_shapes(name, fn, ref, shape, rng):
    out = check_grad(fn, [distinct(rng, shape)], ref=ref, rng=rng)
    assert out.shape == ()


def test_full_max_min_return_0d_tensor():
    x = fg.tensor([[1.0, 5.0], [3.0, -2.0]], requires_grad=True)
    m = x.max()
    assert m.dim() == 0 and m.item() == 5.0
    assert x.min().item() == -2.0
    m.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0], [0.0, 0.0]])


def test_max_min_dim_namedtuple_values_and_indices(rng):
    a = distinct(rng, (3, 4))
    x = fg.tensor(a, requires_grad=True)
    res = x.max(dim=1)
    values, indices = res  # unpacks like a tuple
    assert res.values is res[0] and res.indices is res[1]
    np.testing.assert_array_equal(values.detach().numpy(), a.max(1))
    assert indices.dtype == fg.int64
    assert indices.tolist() == a.argmax(1).tolist()
    assert not indices.requires_grad
    rmin = x.min(0, keepdim=True)
    assert tuple(rmin.values.shape) == (1, 4) and tuple(rmin.indices.shape) == (1, 4)
    assert rmin.indices.tolist() == [a.argmin(0).tolist()]
    # gradient lands on the arg-max positions only
    values.sum().backward()
    expected = np.zeros_like(a)
    expected[np.arange(3), a.argmax(1)] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_sum_mean_values_and_dtypes():
    x = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.sum().item() == 21.0
    assert x.sum(0).tolist() == [5.0, 7.0, 9.0]
    assert x.sum(dim=1, keepdim=True).tolist() == [[6.0], [15.0]]
    assert x.sum(dim=(0, 1)).item() == 21.0
    assert x.mean().item() == 3.5
    assert x.mean(1).tolist() == [2.0, 5.0]
    assert x.mean(dim=0, keepdim=True).shape == (1, 3)
    assert x.sum().dtype == fg.float32
    i = fg.tensor([[1, 2], [3, 4]])
    assert i.sum().dtype == fg.int64 and i.sum().item() == 10
    assert i.sum(0).tolist() == [4, 6]
    assert i.max().item() == 4 and i.max().dtype == fg.int64


def test_mean_grad_is_one_over_n():
    """A worked example: (2x + 1).mean() at [1, 2, 3] -> grad [2/3, 2/3, 2/3]."""
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (2 * x + 1).mean()
    assert y.item() == pytest.approx(5.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 / 3] * 3, rtol=1e-6)


# ---------------------------------------------------------------- composites
COMPOSITES = [
    ("poly", lambda x: x ** 2 + 3 * x + 1, lambda x: x ** 2 + 3 * x + 1),
    ("sigmoid_affine", lambda x, w, b: (w * x + b).sigmoid(), lambda x, w, b: _sigmoid(w * x + b)),
    ("tanh_chain", lambda x: (x.sin() * x.cos()).tanh().exp(), lambda x: np.exp(np.tanh(np.sin(x) * np.cos(x)))),
    ("normalise", lambda x: (x - x.mean(1, keepdim=True)) / (x * x).sum(1, keepdim=True).sqrt(),
     lambda x: (x - x.mean(1, keepdims=True)) / np.sqrt((x * x).sum(1, keepdims=True))),
    ("softplus_like", lambda x: (x.exp() + 1).log(), lambda x: np.log1p(np.exp(x))),
    ("reuse", lambda x: x * x.exp() - x / (x * x + 1), lambda x: x * np.exp(x) - x / (x * x + 1)),
]


@pytest.mark.parametrize("name, fn, ref", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composite_grad(name, fn, ref, rng):
    nargs = fn.__code__.co_argcount
    shapes = [(2, 3), (3,), (1, 3)][:nargs]
    check_grad(fn, [any_(rng, s) for s in shapes], ref=ref, rng=rng)


def test_pow_tensor_exponent_example():
    """A worked example: z = x**y at x=3, y=4."""
    x = fg.tensor(3.0, requires_grad=True)
    y = fg.tensor(4.0, requires_grad=True)
    z = x ** y
    assert z.item() == 81.0
    z.backward()
    assert x.grad.item() == pytest.approx(108.0, rel=1e-6)
    assert y.grad.item() == pytest.approx(81.0 * math.log(3.0), rel=1e-6)
    assert y.grad.item() == pytest.approx(88.9876, abs=1e-3)


def test_polynomial_example():
    """A worked example: y = x**2 + 3x + 1 at [2.] -> [11.]; grad 2x + 3 = [7.]."""
    x = fg.tensor([2.0], requires_grad=True)
    y = x ** 2 + 3 * x + 1
    assert y.tolist() == [11.0]
    y.backward()
    assert x.grad.tolist() == [7.0]


def test_gradient_reduced_to_input_shape():
    """Broadcast gradients are summed back over the broadcast dimensions."""
    a = fg.tensor([[1.0], [2.0]], requires_grad=True)       # (2, 1)
    b = fg.tensor([10.0, 20.0, 30.0], requires_grad=True)   # (3,)
    (a * b).sum().backward()
    assert a.grad.tolist() == [[60.0], [60.0]]
    assert b.grad.tolist() == [3.0, 3.0, 3.0]
    s = fg.tensor(2.0, requires_grad=True)
    m = fg.ones(2, 3, 4, requires_grad=True)
    (s * m).sum().backward()
    assert s.grad.dim() == 0 and s.grad.item() == 24.0
    assert m.grad.shape == (2, 3, 4)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_sum_mean_random_dims(data):
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim), label="shape"))
    dims = data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                              unique_by=lambda d: d % ndim), label="dims")
    keepdim = data.draw(st.booleans(), label="keepdim")
    op = data.draw(st.sampled_from(["sum", "mean"]), label="op")
    dim = dims[0] if len(dims) == 1 else tuple(dims)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16), label="seed"))
    np_dim = tuple(d % ndim for d in dims)
    check_grad(lambda t: getattr(t, op)(dim=dim, keepdim=keepdim), [any_(rng, shape)],
               ref=lambda a: getattr(a, op)(axis=np_dim, keepdims=keepdim), rng=rng)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       dim=st.integers(-3, 2), keepdim=st.booleans(), op=st.sampled_from(["max", "min"]),
       seed=st.integers(0, 2 ** 16))
def test_max_min_dim_random(shape, dim, keepdim, op, seed):
    if not -len(shape) <= dim < len(shape):
        dim = dim % len(shape)
    rng = np.random.default_rng(seed)
    a = distinct(rng, shape)
    np_fn = getattr(np, "argmax" if op == "max" else "argmin")
    x = fg.tensor(a)
    values, indices = getattr(x, op)(dim, keepdim)
    expected_idx = np_fn(a, axis=dim)
    if keepdim:
        expected_idx = np.expand_dims(expected_idx, dim)
    np.testing.assert_array_equal(indices.numpy(), expected_idx)
    ref = getattr(a, op)(axis=dim, keepdims=keepdim)
    check_grad(lambda t: getattr(t, op)(dim, keepdim)[0], [a], ref=lambda v: getattr(v, op)(axis=dim, keepdims=keepdim),
               rng=rng)
    assert values.shape == ref.shape


# ---------------------------------------------------------------- memory layouts and sizes
LAYOUTS = [
    ("transposed", lambda a: a.T, (4, 3)),
    ("sliced_columns", lambda a: a[:, ::2], (3, 4)),
    ("reversed_rows_copy", lambda a: np.ascontiguousarray(a[::-1]), (3, 4)),
    ("fortran", lambda a: np.asfortranarray(a), (3, 4)),
]


@pytest.mark.parametrize("name, view, shape", LAYOUTS, ids=[lay[0] for lay in LAYOUTS])
def test_non_contiguous_storage(name, view, shape, rng):
    """from_numpy of strided arrays: forward and gradients equal the contiguous computation."""
    base = positive(rng, shape) if name != "transposed" else positive(rng, shape[::-1])
    arr = view(base)
    other = any_(rng, arr.shape[-1:])
    results = []
    for a in (arr, np.ascontiguousarray(arr)):
        x = fg.from_numpy(a).requires_grad_()
        w = fg.tensor(other, requires_grad=True)
        y = ((x * w).exp() + x.log() / w - x.sqrt().sigmoid()).sum(0)
        y.backward(fg.tensor(np.linspace(0.5, 1.5, y.shape[0])))
        results.append((y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()))
        assert x.grad.shape == a.shape
    for got, want in zip(results[0], results[1]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.array_equal(fg.from_numpy(arr).numpy(), arr)


UNARY_DERIVATIVES = [
    ("neg", lambda t: t.neg(), np.negative, lambda x: -np.ones_like(x), any_),
    ("abs", lambda t: t.abs(), np.abs, np.sign, nonzero),
    ("exp", lambda t: t.exp(), np.exp, np.exp, any_),
    ("log", lambda t: t.log(), np.log, lambda x: 1 / x, positive),
    ("sqrt", lambda t: t.sqrt(), np.sqrt, lambda x: 0.5 / np.sqrt(x), positive),
    ("sin", lambda t: t.sin(), np.sin, np.cos, any_),
    ("cos", lambda t: t.cos(), np.cos, lambda x: -np.sin(x), any_),
    ("tanh", lambda t: t.tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2, any_),
    ("sigmoid", lambda t: t.sigmoid(), _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), any_),
    ("relu", lambda t: t.relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(x.dtype), nonzero),
    ("reciprocal", lambda t: t.reciprocal(), lambda x: 1 / x, lambda x: -1 / x ** 2, nonzero),
    ("clamp", lambda t: t.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
     lambda x: (np.abs(x) < 0.5).astype(x.dtype), away_from_half),
    ("pow3", lambda t: t ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2, any_),
]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("name, op, ref, deriv, sample", UNARY_DERIVATIVES, ids=[u[0] for u in UNARY_DERIVATIVES])
def test_large_tensor_unary(name, op, ref, deriv, sample, dtype, rtol, rng):
    """300,000 elements (past any parallel threshold): values and grads equal NumPy's formulas."""
    a = sample(rng, (300_000,)).astype(dtype)
    x = fg.tensor(a, requires_grad=True)
    y = op(x)
    np.testing.assert_allclose(y.detach().numpy(), ref(a.astype(np.float64)), rtol=rtol, atol=rtol)
    g = rng.standard_normal(a.shape).astype(dtype)
    y.backward(fg.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), g * deriv(a.astype(np.float64)), rtol=10 * rtol, atol=10 * rtol)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-11), ("float32", 1e-4)])
def test_large_tensor_broadcast_binary(dtype, rtol, rng):
    a = any_(rng, (700, 1, 300)).astype(dtype)
    b = nonzero(rng, (4, 300)).astype(dtype)
    x = fg.tensor(a, requires_grad=True)
    w = fg.tensor(b, requires_grad=True)
    y = x * w + x / w - (x - w) ** 2
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(y.detach().numpy(), a64 * b64 + a64 / b64 - (a64 - b64) ** 2, rtol=rtol, atol=rtol)
    y.sum().backward()
    gx = (b64 + 1 / b64 - 2 * (a64 - b64)).sum(1, keepdims=True)
    gw = (a64 - a64 / b64 ** 2 + 2 * (a64 - b64)).sum(0)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(w.grad.numpy(), gw, rtol=rtol, atol=rtol * 1000)
    assert x.grad.shape == (700, 1, 300) and w.grad.shape == (4, 300)


def test_large_reductions(rng):
    a = distinct(rng, (50, 40, 30))
    x = fg.tensor(a, requires_grad=True)
    np.testing.assert_allclose(x.sum((0, 2)).detach().numpy(), a.sum((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(x.mean(1).detach().numpy(), a.mean(1), rtol=1e-12, atol=1e-12)
    vals, idx = x.max(2)
    np.testing.assert_array_equal(idx.numpy(), a.argmax(2))
    (vals.sum() + x.mean() + x.min(0).values.sum()).backward()
    expected = np.full(a.shape, 1 / a.size)
    np.put_along_axis(expected, a.argmax(2)[..., None], np.take_along_axis(expected, a.argmax(2)[..., None], 2) + 1, 2)
    np.put_along_axis(expected, a.argmin(0)[None], np.take_along_axis(expected, a.argmin(0)[None], 0) + 1, 0)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


# ---------------------------------------------------------------- PyTorch's conventions at kinks
# Finite differences cannot see these points; the values are PyTorch 2.13's.
KINKS = [
    # (expression, x, expected value, expected x.grad)
    (lambda x: x.relu(), [-1.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
    (lambda x: x.abs(), [-1.0, 0.0, 2.0], [1.0, 0.0, 2.0], [-1.0, 0.0, 1.0]),
    (lambda x: x.clamp(0.0, 1.0), [0.0, 0.5, 1.0, 2.0], [0.0, 0.5, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]),
    (lambda x: x.clamp(min=0.0), [0.0, -1.0], [0.0, 0.0], [1.0, 0.0]),
    (lambda x: x.max(), [0.0, 1.0, 1.0, 0.5], 1.0, [0.0, 0.5, 0.5, 0.0]),        # ties share evenly
    (lambda x: x.min(), [2.0, 1.0, 3.0, 1.0], 1.0, [0.0, 0.5, 0.0, 0.5]),
    (lambda x: fg.maximum(x, fg.tensor([1.0, 0.0, 0.0])), [1.0, 2.0, -1.0], [1.0, 2.0, 0.0], [0.5, 1.0, 0.0]),
    (lambda x: fg.minimum(x, fg.tensor([1.0, 0.0, 0.0])), [1.0, 2.0, -1.0], [1.0, 0.0, -1.0], [0.5, 0.0, 1.0]),
    (lambda x: x ** 2, [0.0], [0.0], [0.0]),
    (lambda x: x ** 0, [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]),
    (lambda x: x ** fg.tensor([0.0, 2.0]), [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]),  # d/dx x^0 = 0 even at 0
    (lambda x: x ** x, [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]),
    (lambda x: fg.tensor([0.0, 2.0]) ** x, [0.0, 1.0], [1.0, 2.0], [0.0, 2 * math.log(2.0)]),
]


KINK_IDS = ["relu0", "abs0", "clamp_bounds", "clamp_min_bound", "max_ties", "min_ties", "maximum_tie",
            "minimum_tie", "pow2_at0", "pow0_at0", "pow_tensor_exp0_at0", "pow_self_at0", "rpow_base0"]


@pytest.mark.parametrize("i", range(len(KINKS)), ids=KINK_IDS)
def test_gradient_conventions_at_kinks(i):
    fn, xv, value, grad = KINKS[i]
    x = fg.tensor(xv, requires_grad=True)
    y = fn(x)
    np.testing.assert_allclose(y.detach().numpy(), value, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-6)


# -- the order of a backward formula decides where it overflows: PyTorch's order --

def test_div_divisor_grad_is_a_over_b_over_b():
    # b * b overflows float32 (1e40) while (a / b) / b is 1e-10
    a = fg.tensor([1e30], dtype=fg.float32)
    b = fg.tensor([1e20], dtype=fg.float32, requires_grad=True)
    (a / b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [-1e-10], rtol=1e-6)


def test_div_divisor_grad_with_infinite_dividend():
    a = fg.tensor([float("inf")], dtype=fg.float32)
    b = fg.tensor([-1e30], dtype=fg.float32, requires_grad=True)
    (a / b).sum().backward()
    assert b.grad.tolist() == [-float("inf")]


def test_reciprocal_grad_squares_the_result_first():
    # y = 1e-30; y * y underflows float32 to 0, so -g * (y * y) is nan for g = inf
    x = fg.tensor([1e30, 2.0], dtype=fg.float32, requires_grad=True)
    x.reciprocal().backward(fg.tensor([float("inf"), 1.0]))
    g = x.grad.numpy()
    assert math.isnan(g[0]) and g[1] == -0.25

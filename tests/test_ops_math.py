"""Elementwise math beyond the hot set (log1p ... atan2, hypot, isclose): values, result dtypes,
grad_fn names and gradients, against float64 finite differences and against PyTorch; rsqrt; the
sign of zero and NaN through relu/clamp/maximum and the activations."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

# name -> (domain of the test points, NumPy reference of the forward)
UNARY = {
    "log1p": ((-0.9, 3), np.log1p), "expm1": ((-3, 3), np.expm1), "log2": ((0.1, 4), np.log2),
    "log10": ((0.1, 4), np.log10), "exp2": ((-3, 3), np.exp2), "sinh": ((-3, 3), np.sinh),
    "cosh": ((-3, 3), np.cosh), "tan": ((-1.2, 1.2), np.tan), "asin": ((-0.95, 0.95), np.arcsin),
    "acos": ((-0.95, 0.95), np.arccos), "atan": ((-3, 3), np.arctan),
    "erf": ((-3, 3), None), "erfc": ((-3, 3), None), "erfinv": ((-0.99, 0.99), None),
    "frac": ((-3, 3), lambda x: x - np.trunc(x)),
}
NODE = {"log1p": "Log1PBackward0", "erfinv": "ErfinvBackward0", "atan": "AtanBackward0",
        "frac": "FracBackward0", "exp2": "Exp2Backward0"}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradient_matches_finite_differences(name, rng):
    (lo, hi), ref = UNARY[name]
    x = rng.uniform(lo, hi, (3, 4))
    check_grad(lambda t: getattr(fg, name)(t), [x], ref=ref)


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp"])
def test_binary_gradient_with_broadcasting(name, rng):
    a, b = rng.uniform(0.2, 2, (2, 3)), rng.uniform(-2, 2, (3,))
    ref = {"atan2": np.arctan2, "hypot": np.hypot, "logaddexp": np.logaddexp}[name]
    check_grad(lambda x, y: getattr(fg, name)(x, y), [a, b], ref=ref)


def test_lerp_gradient(rng):
    check_grad(lambda a, b, w: fg.lerp(a, b, w), [rng.standard_normal(4), rng.standard_normal(4),
                                                   rng.uniform(0, 1, 4)])


def test_erfinv_inverts_erf_to_double_precision():
    from math import erf
    ys = np.array([-0.999999, -0.9, -0.5, -1e-8, 0.0, 1e-8, 0.3, 0.7, 0.95, 0.999999])
    xs = fg.erfinv(fg.tensor(ys, dtype=fg.float64)).numpy()
    np.testing.assert_allclose([erf(x) for x in xs], ys, rtol=1e-14, atol=1e-16)
    edges = fg.erfinv(fg.tensor([1.0, -1.0, 1.5, float("nan")])).numpy()
    assert edges[0] == np.inf and edges[1] == -np.inf and np.isnan(edges[2:]).all()


def test_rounding_is_half_to_even_and_has_zero_gradient():
    x = fg.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997], requires_grad=True)
    np.testing.assert_array_equal(fg.round(x).detach().numpy(), [-2, -2, -0, 0, 2, 2, 0])
    np.testing.assert_array_equal(fg.round(fg.tensor([1.234, -5.678]), decimals=1).numpy(),
                                  np.array([1.2, -5.7], dtype=np.float32))
    for f in (fg.floor, fg.ceil, fg.trunc, fg.round):
        x.grad = None
        f(x).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros(7))


def test_integer_inputs():
    i = fg.tensor([1, 2, 3])
    assert fg.floor(i).dtype == fg.int64 and fg.floor(i).tolist() == [1, 2, 3]
    assert fg.log1p(i).dtype == fg.float32
    np.testing.assert_allclose(fg.log1p(i).numpy(), np.log1p([1, 2, 3]), rtol=1e-6)


def test_float16_stays_float16():
    h = fg.tensor([0.5, 1.0], dtype=fg.float16)
    for name in ("log1p", "erf", "sinh", "atan", "floor"):
        assert getattr(fg, name)(h).dtype == fg.float16, name


def test_nan_to_num_values_and_gradient():
    x = fg.tensor([1.0, float("nan"), float("inf"), -float("inf")], requires_grad=True)
    y = fg.nan_to_num(x, nan=0.5, posinf=7.0)
    np.testing.assert_array_equal(y.detach().numpy(),
                                  np.array([1.0, 0.5, 7.0, np.finfo(np.float32).min], np.float32))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 0, 0, 0])


def test_value_tests():
    x = fg.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    assert fg.isnan(x).tolist() == [False, True, False, False]
    assert fg.isinf(x).tolist() == [False, False, True, True]
    assert fg.isfinite(x).tolist() == [True, False, False, False]
    assert x.isposinf().tolist() == [False, False, True, False]
    assert fg.isclose(fg.tensor([1.0, 1.1]), fg.tensor([1.0 + 1e-7, 1.0])).tolist() == [True, False]
    assert fg.allclose(fg.tensor([1.0, 2.0]), fg.tensor([1.0, 2.0 + 1e-6]))
    assert not fg.allclose(fg.tensor([1.0]), fg.tensor([1.1]))
    assert fg.equal(fg.tensor([1, 2]), fg.tensor([1, 2]))
    assert not fg.equal(fg.tensor([1, 2]), fg.tensor([[1, 2]]))


def test_in_place_forms():
    x = fg.tensor([0.25, 0.5])
    assert x.log1p_() is x
    np.testing.assert_allclose(x.numpy(), np.log1p([0.25, 0.5]).astype(np.float32))
    w = fg.tensor([0.3], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.sin() and w.erf_()


def test_create_graph_second_derivative():
    x = fg.tensor([0.3, -0.7], dtype=fg.float64, requires_grad=True)
    (g,) = fg.autograd.grad(fg.sinh(x).sum(), x, create_graph=True)
    (h,) = fg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), np.sinh([0.3, -0.7]), rtol=1e-12)


def test_grad_fn_names():
    x = fg.tensor([0.5], requires_grad=True)
    for name, node in NODE.items():
        assert getattr(fg, name)(x).grad_fn.name().rpartition("::")[2] == node
    assert fg.atan2(x, x).grad_fn.name().rpartition("::")[2] == "Atan2Backward0"


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("name", sorted(UNARY) + ["floor", "ceil", "round", "trunc"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_matches_torch_with_edge_values(name, dtype):
    torch = pytest.importorskip("torch")
    x = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, 1e-30, 1e30, np.inf, -np.inf, np.nan],
                 dtype=dtype)
    ours = getattr(fg, name)(fg.tensor(x, requires_grad=True))
    theirs = getattr(torch, name)(torch.tensor(x, requires_grad=True))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                               rtol=2e-6 if dtype == "float32" else 1e-13, equal_nan=True)
    assert str(ours.dtype) == str(theirs.dtype)
    ours.sum().backward()
    theirs.sum().backward()
    (a,) = [t for t in ours.grad_fn.next_functions if t[0] is not None][0][0].variable.grad,
    np.testing.assert_allclose(a.numpy(), theirs.grad_fn.next_functions[0][0].variable.grad.numpy(),
                               rtol=2e-6 if dtype == "float32" else 1e-13, equal_nan=True)


# --- sign of zero ---------------------------------------------------------------------------------

def _sign(t):
    return np.copysign(1.0, t.numpy()).tolist()


def test_relu_clamp_maximum_keep_negative_zero():
    z = fg.tensor([-0.0, 0.0])
    assert _sign(fg.relu(z)) == [-1.0, 1.0]
    assert _sign(z.relu()) == [-1.0, 1.0]
    assert _sign(fg.nn.functional.relu(z)) == [-1.0, 1.0]
    assert _sign(z.double().relu()) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, min=0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, max=0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, 0, 1)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, min=-0.0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, max=-0.0)) == [-1.0, 1.0]
    zero, neg = fg.tensor(0.0), fg.tensor(-0.0)
    assert _sign(fg.maximum(neg, zero)) == -1.0 and _sign(fg.maximum(zero, neg)) == 1.0
    assert _sign(fg.minimum(neg, zero)) == -1.0 and _sign(fg.minimum(zero, neg)) == 1.0
    assert _sign(fg.clamp(z, min=fg.tensor(0.0))) == [-1.0, 1.0]


@pytest.mark.parametrize("act", ["elu", "leaky_relu", "silu"])   # torch's vectorised gelu is not consistent
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_keep_negative_zero(act, dtype):
    z = fg.tensor([-0.0, 0.0], dtype=getattr(fg, dtype))
    assert _sign(getattr(fg.nn.functional, act)(z)) == [-1.0, 1.0]
    # vectorised loops too (PyTorch's own vectorised maximum/minimum do not keep the tie rule)
    big = fg.zeros(1003, dtype=fg.float64) * -1.0
    assert np.signbit(big.clamp(0.0, 1.0).numpy()).all() and np.signbit(big.relu().numpy()).all()
    assert np.signbit(big.float().clamp(min=0).numpy()).all()
    assert np.signbit(big.float().relu().numpy()).all()


def test_clamp_nan_and_crossed_bounds():
    nan = float("nan")
    x = fg.tensor([-1.0, 0.5, 2.0, nan])
    r = x.clamp(0.0, 1.0).numpy()
    assert r[:3].tolist() == [0.0, 0.5, 1.0] and np.isnan(r[3])
    assert np.isnan(x.clamp(min=nan).numpy()).all()
    assert np.isnan(x.clamp(max=nan).numpy()).all()
    c = x.clamp(min=1.0, max=0.0).numpy()
    assert c[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(c[3])
    assert fg.tensor([1, 5]).clamp(min=2.5).tolist() == [2.5, 5.0]
    assert fg.tensor([1, 5]).clamp(min=2).dtype == fg.int64
    m = fg.maximum(x, fg.tensor(nan)).numpy()
    assert np.isnan(m).all()


# --- rsqrt (graph convolution examples build D^-1/2 with it) ------------------------------------

def test_rsqrt_is_one_over_sqrt():
    x = fg.tensor([0.25, 4.0, 2.0])
    a = x.numpy()
    assert np.array_equal(fg.rsqrt(x).numpy(), np.float32(1) / np.sqrt(a))
    assert np.array_equal(x.rsqrt().numpy(), np.float32(1) / np.sqrt(a))
    w = fg.tensor([4.0], requires_grad=True)
    w.rsqrt().backward()
    assert w.grad.tolist() == [-0.0625]                 # -1/2 * 4 ** -1.5

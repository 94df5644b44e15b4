"""The activations beyond relu/gelu/silu/elu: hardtanh, relu6, selu, celu, glu, hardsigmoid,
hardswish, mish, softsign, tanhshrink, threshold, logsigmoid, prelu, hardshrink, softshrink,
softmin; their in-place forms, modules, reprs and PyTorch's node names and bad-argument errors.

Values and gradients are compared with PyTorch on special points (the bounds themselves, 0, -0.0,
NaN, +-inf) in float32 and float64, and with float64 central finite differences away from kinks.
"""
import math

import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn
torch = reference_torch()
needs_torch = pytest.mark.skipif(torch is None, reason="compares with PyTorch")

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 3.0, -3.0, 6.0, -1.0, 1.0, 0.5, -0.5, 0.25,
           -0.25, 2.0, -2.0, 0.1, 25.0, -25.0, 1e-8, -1e-8, 2.9999, -2.9999, 20.0, -20.0, 1e5]

# name -> (function of (F, x), points its gradient has a kink at, PyTorch's node name)
ELEMENTWISE = {
    "hardtanh": (lambda F, x: F.hardtanh(x), (-1.0, 1.0), "HardtanhBackward0"),
    "hardtanh_2_3": (lambda F, x: F.hardtanh(x, -2.0, 3.0), (-2.0, 3.0), "HardtanhBackward0"),
    "relu6": (lambda F, x: F.relu6(x), (0.0, 6.0), "HardtanhBackward0"),
    "selu": (lambda F, x: F.selu(x), (0.0,), "EluBackward0"),
    "celu": (lambda F, x: F.celu(x), (0.0,), "CeluBackward0"),
    "celu_2": (lambda F, x: F.celu(x, 2.0), (0.0,), "CeluBackward0"),
    "hardsigmoid": (lambda F, x: F.hardsigmoid(x), (-3.0, 3.0), "HardsigmoidBackward0"),
    "hardswish": (lambda F, x: F.hardswish(x), (-3.0, 3.0), "HardswishBackward0"),
    "mish": (lambda F, x: F.mish(x), (), "MishBackward0"),
    "softsign": (lambda F, x: F.softsign(x), (), "DivBackward0"),
    "tanhshrink": (lambda F, x: F.tanhshrink(x), (), "SubBackward0"),
    "threshold": (lambda F, x: F.threshold(x, 0.5, 9.0), (0.5,), "ThresholdBackward0"),
    "threshold_neg": (lambda F, x: F.threshold(x, -1.0, -7.0), (-1.0,), "ThresholdBackward0"),
    "logsigmoid": (lambda F, x: F.logsigmoid(x), (), "LogSigmoidBackward0"),
    "hardshrink": (lambda F, x: F.hardshrink(x), (-0.5, 0.5), "HardshrinkBackward0"),
    "hardshrink_2": (lambda F, x: F.hardshrink(x, 2.0), (-2.0, 2.0), "HardshrinkBackward0"),
    "softshrink": (lambda F, x: F.softshrink(x), (-0.5, 0.5), "SoftshrinkBackward0"),
    "softshrink_0": (lambda F, x: F.softshrink(x, 0.0), (0.0,), "SoftshrinkBackward0"),
    "prelu_scalar": (lambda F, x: F.prelu(x, _weight(x, [0.25])), (0.0,), "PreluKernelBackward0"),
}


def _weight(x, values):
    """A slope tensor of x's library and dtype."""
    lib = torch if torch is not None and isinstance(x, torch.Tensor) else fg
    return lib.tensor(values, dtype=x.dtype)


def _np(t):
    return np.asarray(t.detach().numpy(), dtype=np.float64)


def _both(fn, values, dtype_name, cotangent=None):
    """fn's value and input gradient in fastgrad and in torch, as float64 arrays."""
    out = []
    for lib in (fg, torch):
        x = lib.tensor(values, dtype=getattr(lib, dtype_name), requires_grad=True)
        y = fn(lib.nn.functional, x)
        g = lib.ones_like(y) if cotangent is None else lib.tensor(cotangent, dtype=y.dtype)
        y.backward(g)
        out.append((_np(y), _np(x.grad), y.grad_fn.name()))
    return out


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_values_and_gradients_match_torch_on_special_points(name, dtype):
    fn, kinks, _ = ELEMENTWISE[name]
    values = SPECIAL + list(kinks) + [k + d for k in kinks for d in (1e-3, -1e-3)]
    (y, gx, _), (ty, tgx, _) = _both(fn, values, dtype)
    rtol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=1e-7 if dtype == "float32" else 1e-15)
    if name.startswith(("selu", "celu", "hardswish")):
        # torch's elu and hardswish backward give a NaN input the upper branch's slope below 16
        # elements and NaN above (its scalar and vector loops differ); fastgrad takes the slope
        # at any size, as its elu does
        keep = ~np.isnan(values)
        gx, tgx = gx[keep], tgx[keep]
    np.testing.assert_allclose(gx, tgx, rtol=rtol, atol=1e-7 if dtype == "float32" else 1e-15)


@needs_torch
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_gradient_is_selected_where_torch_selects(name):
    """An inf or NaN incoming gradient: torch multiplies by the derivative or selects; equal NaNs
    and zeros here say fastgrad does the same for each element."""
    fn, kinks, _ = ELEMENTWISE[name]
    values = [-4.0, -2.0, -0.5, 0.0, 0.5, 2.0, 4.0, 7.0] + list(kinks)
    cot = [math.inf if i % 2 else math.nan for i in range(len(values))]
    (_, gx, _), (_, tgx, _) = _both(fn, values, "float64", cot)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(tgx))
    np.testing.assert_allclose(gx, tgx)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_node_names(name):
    fn, _, node = ELEMENTWISE[name]
    x = fg.tensor([0.3, -0.7], dtype=fg.float64, requires_grad=True)
    assert fn(F, x).grad_fn.name() == node


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_finite_differences_away_from_kinks(name):
    fn, kinks, _ = ELEMENTWISE[name]
    rng = np.random.default_rng(len(name))
    x = rng.uniform(-5, 5, size=(3, 4))
    for k in kinks:                                    # keep 1e-3 away from each kink
        x = np.where(np.abs(x - k) < 1e-3, x + 0.01, x)
    check_grad(lambda t: fn(F, t), [x])


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_second_derivatives_by_finite_differences(name):
    """create_graph: the gradient is itself recorded, and its gradient is right."""
    if REFERENCE and name == "hardsigmoid":
        pytest.skip("torch has no double backward for hardsigmoid")
    fn, kinks, _ = ELEMENTWISE[name]
    x0 = np.array([-2.3, -0.7, 0.2, 1.4, 2.6, 4.1])
    for k in kinks:
        x0 = np.where(np.abs(x0 - k) < 1e-2, x0 + 0.05, x0)
    x = fg.tensor(x0, dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda t: fn(F, t), [x])


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3)])
def test_zero_dim_and_empty(name, shape):
    fn = ELEMENTWISE[name][0]
    x = fg.full(shape, 0.75, dtype=fg.float32, requires_grad=True)
    y = fn(F, x)
    assert tuple(y.shape) == shape and y.dtype == fg.float32
    y.sum().backward()
    assert tuple(x.grad.shape) == shape


# --- in-place forms ---------------------------------------------------------------------------------

INPLACE = {   # name -> (in-place call, its out-of-place twin, PyTorch's node name for it)
    "hardtanh_": (lambda F, x: F.hardtanh_(x, -0.5, 0.7), lambda F, x: F.hardtanh(x, -0.5, 0.7),
                  "HardtanhBackward0"),
    "hardtanh(inplace)": (lambda F, x: F.hardtanh(x, inplace=True), lambda F, x: F.hardtanh(x),
                          "HardtanhBackward0"),
    "relu6(inplace)": (lambda F, x: F.relu6(x, inplace=True), lambda F, x: F.relu6(x),
                       "HardtanhBackward0"),
    "selu_": (lambda F, x: F.selu_(x), lambda F, x: F.selu(x), "EluBackward1"),
    "selu(inplace)": (lambda F, x: F.selu(x, inplace=True), lambda F, x: F.selu(x), "EluBackward1"),
    "celu_": (lambda F, x: F.celu_(x, 1.5), lambda F, x: F.celu(x, 1.5), "CeluBackward1"),
    "threshold_": (lambda F, x: F.threshold_(x, 0.1, 2.0), lambda F, x: F.threshold(x, 0.1, 2.0),
                   "ThresholdBackward1"),
    "hardsigmoid(inplace)": (lambda F, x: F.hardsigmoid(x, True), lambda F, x: F.hardsigmoid(x),
                             "HardsigmoidBackward0"),
    "hardswish(inplace)": (lambda F, x: F.hardswish(x, True), lambda F, x: F.hardswish(x),
                           "HardswishBackward0"),
    "mish(inplace)": (lambda F, x: F.mish(x, True), lambda F, x: F.mish(x), "MishBackward0"),
    "elu_": (lambda F, x: F.elu_(x, 0.7), lambda F, x: F.elu(x, 0.7), "EluBackward1"),
    "elu(inplace)": (lambda F, x: F.elu(x, inplace=True), lambda F, x: F.elu(x), "EluBackward1"),
    "leaky_relu_": (lambda F, x: F.leaky_relu_(x, 0.2), lambda F, x: F.leaky_relu(x, 0.2),
                    "LeakyReluBackward1"),
    "silu(inplace)": (lambda F, x: F.silu(x, inplace=True), lambda F, x: F.silu(x),
                      "SiluBackward0"),
    "torch.selu_": (lambda F, x: fg.selu_(x), lambda F, x: fg.selu(x), "EluBackward1"),
    "torch.celu_": (lambda F, x: fg.celu_(x), lambda F, x: fg.celu(x), "CeluBackward1"),
    "torch.threshold_": (lambda F, x: fg.threshold_(x, 0.0, -1.0),
                         lambda F, x: fg.threshold(x, 0.0, -1.0), "ThresholdBackward1"),
}
X0 = [[-3.5, -1.2, -0.5, 0.0], [0.05, 0.7, 2.5, 6.5]]


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_writes_the_input_and_differentiates(name):
    inplace, twin, node = INPLACE[name]
    leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    y = leaf * 1.0
    v0 = y._version
    out = inplace(F, y)
    assert out is y and y._version == v0 + 1
    assert y.grad_fn.name() == node
    cot = fg.tensor(np.arange(8.0).reshape(2, 4) - 3, dtype=fg.float64)
    y.backward(cot)

    ref_leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    ref = twin(F, ref_leaf * 1.0)
    ref.backward(cot)
    np.testing.assert_array_equal(_np(y), _np(ref))
    np.testing.assert_allclose(_np(leaf.grad), _np(ref_leaf.grad), rtol=1e-14)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_on_a_leaf_that_requires_grad_raises(name):
    inplace, twin, _ = INPLACE[name]
    leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        inplace(F, leaf)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        inplace(F, leaf[0])                          # a view of it
    with fg.no_grad():                               # allowed without recording
        out = inplace(F, leaf)
    assert out is leaf and leaf._version == 1
    np.testing.assert_array_equal(_np(leaf), _np(twin(F, fg.tensor(X0, dtype=fg.float64))))


def test_inplace_through_a_view_updates_the_base():
    leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    base = leaf * 2.0
    F.hardtanh_(base[1], 0.0, 1.0)
    np.testing.assert_array_equal(_np(base)[1], [0.1, 1.0, 1.0, 1.0])
    base.sum().backward()
    np.testing.assert_array_equal(_np(leaf.grad), [[2.0] * 4, [2.0, 0.0, 0.0, 0.0]])


def test_inplace_saved_input_is_not_stale():
    """The in-place form saves a copy of the old values, so a backward through it does not
    trip the version check (x.copy_(f(x)) would), and an op that saved the overwritten values
    does."""
    leaf = fg.tensor([-1.0, 0.5, 2.0], dtype=fg.float64, requires_grad=True)
    y = leaf * 2.0
    F.celu_(y, 0.5)
    y.sum().backward()
    x2 = 2 * np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(_np(leaf.grad), 2 * np.where(x2 <= 0, np.exp(x2 / 0.5), 1.0))
    z = leaf.exp()                                   # exp saves its result, which celu_ overwrites
    F.celu_(z, 0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


@needs_torch
@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_node_names_match_torch(name):
    inplace = INPLACE[name][0]
    names = []
    for lib in (fg, torch):
        y = lib.tensor(X0, dtype=lib.float64, requires_grad=True) * 1.0
        out = inplace(lib.nn.functional, y) if lib is fg else _torch_call(name, inplace, y)
        names.append(out.grad_fn.name())
    assert names[0] == names[1]


def _torch_call(name, inplace, y):
    if name.startswith("torch."):              # the lambdas name fastgrad's namespace
        fn = getattr(torch, name[len("torch."):])
        return {"torch.threshold_": lambda: fn(y, 0.0, -1.0)}.get(name, lambda: fn(y))()
    return inplace(torch.nn.functional, y)


# --- glu, prelu, softmin --------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_glu_finite_differences(dim):
    rng = np.random.default_rng(dim + 5)
    check_grad(lambda t: F.glu(t, dim), [rng.standard_normal((4, 2, 6))])


def test_glu_and_prelu_second_derivatives():
    x = fg.tensor([[0.3, -1.2, 0.4], [0.8, 2.0, -0.6]], dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda t: F.glu(t, 0), [x])
    w = fg.tensor([0.2, -0.5, 1.5], dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda t, v: F.prelu(t, v), [x, w])


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_glu_matches_torch(dtype):
    vals = [[1.0, -2.0, math.inf, 0.5], [math.nan, 3.0, -math.inf, 40.0], [-0.0, 2.0, -50.0, 0.0],
            [7.0, -7.0, 1.0, 1.0]]
    for dim in (0, 1):
        (y, g, name), (ty, tg, tname) = _both(lambda F, x, d=dim: F.glu(x, d), vals, dtype)
        np.testing.assert_allclose(y, ty, rtol=1e-6)
        np.testing.assert_allclose(g, tg, rtol=1e-6)
        assert name == tname == "GluBackward0"


def test_glu_bad_arguments():
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(fg.zeros(3, 5))
    with pytest.raises(RuntimeError, match="glu does not support scalars"):
        F.glu(fg.tensor(1.0))
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.glu(fg.zeros(2, 4), 2)
    assert tuple(F.glu(fg.zeros(0, 4)).shape) == (0, 2)


@pytest.mark.parametrize("shape,w", [((5,), [0.3]), ((2, 3), [0.1, -0.4, 2.0]),
                                     ((2, 3, 4), [0.2]), ((2, 3, 2, 2), [0.5, 0.0, -1.5]),
                                     ((), [0.7])])
def test_prelu_finite_differences_input_and_weight(shape, w):
    rng = np.random.default_rng(len(shape))
    x = rng.uniform(-2, 2, size=shape)
    x = np.where(np.abs(x) < 1e-2, 0.3, x)
    check_grad(lambda t, wt: F.prelu(t, wt), [x, np.array(w)])


def test_prelu_zero_dim_weight():
    x = fg.tensor([[-2.0, 1.0]], dtype=fg.float64, requires_grad=True)
    w = fg.tensor(0.5, dtype=fg.float64, requires_grad=True)
    F.prelu(x, w).sum().backward()
    assert tuple(w.grad.shape) == () and float(w.grad) == -2.0
    np.testing.assert_array_equal(_np(x.grad), [[0.5, 1.0]])


@needs_torch
def test_prelu_matches_torch_at_zero_nan_and_inf():
    vals = [[0.0, -0.0, math.inf, -math.inf], [2.0, -3.0, 0.0, 1e-9], [math.nan, 1.0, -1.0, 5.0]]
    for wv in ([0.25], [0.1, -0.5, 2.0, 0.0]):
        out = []
        for lib in (fg, torch):
            x = lib.tensor(vals, dtype=lib.float64, requires_grad=True)
            w = lib.tensor(wv, dtype=lib.float64, requires_grad=True)
            y = lib.nn.functional.prelu(x, w)
            y.backward(lib.ones_like(y))
            out.append((_np(y), _np(x.grad), _np(w.grad), y.grad_fn.name()))
        for a, b in zip(out[0][:3], out[1][:3]):
            np.testing.assert_allclose(a, b)
        assert out[0][3] == out[1][3]
    # no NaN in the input: an inf that passes contributes nothing to the slope
    x = fg.tensor([[math.inf, -2.0]], dtype=fg.float64, requires_grad=True)
    w = fg.tensor([0.5], dtype=fg.float64, requires_grad=True)
    F.prelu(x, w).sum().backward()
    assert float(w.grad[0]) == -2.0


def test_prelu_bad_arguments():
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size"):
        F.prelu(fg.zeros(2, 4), fg.zeros(3))
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        F.prelu(fg.zeros(2), fg.zeros(2))            # a 1-d input has one channel
    with pytest.raises(RuntimeError, match="scalar or 1D tensor"):
        F.prelu(fg.zeros(2, 4), fg.zeros(4, 1))
    with pytest.raises(NotImplementedError):
        F.prelu(fg.tensor([1, -2]), fg.tensor([1]))


@needs_torch
def test_softmin_matches_torch():
    vals = [[1.0, -2.0, 0.5], [3.0, 3.0, -1.0]]
    for dim in (0, 1, -1):
        (y, g, name), (ty, tg, tname) = _both(lambda F, x, d=dim: F.softmin(x, d), vals, "float64",
                                              [[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
        np.testing.assert_allclose(y, ty, rtol=1e-12)
        np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)
        assert name == tname
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        F.softmin(fg.zeros(2, 3))
    assert F.softmin(fg.zeros(2, 3), 1, dtype=fg.float64).dtype == fg.float64


# --- published names, dtypes, bad arguments ------------------------------------------------------

def test_torch_namespace_and_methods():
    x = fg.tensor([-1.0, 0.25, 0.75])
    np.testing.assert_array_equal(_np(fg.hardshrink(x)), [-1.0, 0.0, 0.75])
    np.testing.assert_array_equal(_np(x.hardshrink(0.9)), [-1.0, 0.0, 0.0])
    np.testing.assert_array_equal(_np(x.prelu(fg.tensor([0.5]))), [-0.5, 0.25, 0.75])
    np.testing.assert_array_equal(_np(fg.prelu(x, fg.tensor([0.5]))), [-0.5, 0.25, 0.75])
    np.testing.assert_array_equal(_np(fg.threshold(x, 0.5, 4.0)), [4.0, 4.0, 0.75])
    np.testing.assert_allclose(_np(fg.selu(x)), _np(F.selu(x)))
    np.testing.assert_allclose(_np(fg.celu(x, 2.0)), _np(F.celu(x, 2.0)))


@needs_torch
def test_every_name_torch_publishes_exists():
    names = ("hardtanh relu6 selu celu glu hardsigmoid hardswish mish softsign tanhshrink "
             "threshold logsigmoid prelu hardshrink softshrink softmin elu leaky_relu").split()
    missing = [f"{where}.{n}" for n in names for s in ("", "_")
               for where, a, b in (("F", torch.nn.functional, F), ("torch", torch, fg),
                                   ("Tensor", torch.Tensor, fg.Tensor))
               if hasattr(a, n + s) and not hasattr(b, n + s)]
    assert missing == []


def test_integer_inputs():
    xi = fg.tensor([-2, 0, 3])
    np.testing.assert_array_equal(F.hardtanh(xi).numpy(), [-1, 0, 1])
    assert F.hardtanh(xi).dtype == fg.int64
    np.testing.assert_array_equal(F.relu6(xi).numpy(), [0, 0, 3])
    np.testing.assert_array_equal(F.threshold(xi, 0, 5).numpy(), [5, 5, 3])
    for fn in (F.selu, F.celu, F.hardsigmoid, F.hardswish, F.mish, F.logsigmoid, F.hardshrink,
               F.softshrink):
        with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
            fn(xi)


def test_bad_arguments():
    x = fg.zeros(3)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(x, 1.0, 0.0)
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        F.celu(x, 0.0)
    with pytest.raises(RuntimeError, match="lambda must be in range"):
        F.softshrink(x, -1.0)
    with pytest.raises(TypeError):
        F.hardtanh([1.0, 2.0])
    # a negative lambd is allowed for hardshrink (torch: the band is empty)
    np.testing.assert_array_equal(_np(F.hardshrink(fg.tensor([-0.5, 0.5]), -1.0)), [-0.5, 0.5])


@pytest.mark.parametrize("fn", [F.hardtanh, F.selu, F.celu, F.hardsigmoid, F.hardswish, F.mish,
                                F.logsigmoid, F.hardshrink, F.softshrink, F.softsign,
                                F.tanhshrink, lambda x: F.threshold(x, 0.1, 0.0)])
def test_float16_keeps_its_dtype(fn):
    assert fn(fg.tensor([-1.0, 0.5], dtype=fg.float16)).dtype == fg.float16


# --- modules ----------------------------------------------------------------------------------------

REPRS = [
    (lambda: nn.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (lambda: nn.Hardtanh(-2, 2, True), "Hardtanh(min_val=-2, max_val=2, inplace=True)"),
    (lambda: nn.ReLU6(), "ReLU6()"),
    (lambda: nn.ReLU6(True), "ReLU6(inplace=True)"),
    (lambda: nn.SELU(), "SELU()"),
    (lambda: nn.SELU(True), "SELU(inplace=True)"),
    (lambda: nn.CELU(), "CELU(alpha=1.0)"),
    (lambda: nn.CELU(2.0, True), "CELU(alpha=2.0, inplace=True)"),
    (lambda: nn.GLU(), "GLU(dim=-1)"),
    (lambda: nn.GLU(0), "GLU(dim=0)"),
    (lambda: nn.Hardsigmoid(True), "Hardsigmoid()"),
    (lambda: nn.Hardswish(True), "Hardswish()"),
    (lambda: nn.Mish(), "Mish()"),
    (lambda: nn.Mish(True), "Mish(inplace=True)"),
    (lambda: nn.Softsign(), "Softsign()"),
    (lambda: nn.Tanhshrink(), "Tanhshrink()"),
    (lambda: nn.Threshold(0.1, 20), "Threshold(threshold=0.1, value=20)"),
    (lambda: nn.Threshold(1, 2, True), "Threshold(threshold=1, value=2, inplace=True)"),
    (lambda: nn.LogSigmoid(), "LogSigmoid()"),
    (lambda: nn.PReLU(), "PReLU(num_parameters=1)"),
    (lambda: nn.PReLU(3, 0.1), "PReLU(num_parameters=3)"),
    (lambda: nn.Hardshrink(), "Hardshrink(0.5)"),
    (lambda: nn.Softshrink(0.25), "Softshrink(0.25)"),
    (lambda: nn.Softmin(), "Softmin(dim=None)"),
    (lambda: nn.Softmin(1), "Softmin(dim=1)"),
    (lambda: nn.Softmax2d(), "Softmax2d()"),
    (lambda: nn.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
]


@pytest.mark.parametrize("make,text", REPRS, ids=[t for _, t in REPRS])
def test_module_reprs(make, text):
    assert repr(make()) == text


def test_hardtanh_module_arguments():
    with pytest.raises(AssertionError, match=r"max_val \(0\) must be greater than min_val \(1\)"):
        nn.Hardtanh(1, 0)
    with pytest.raises(AssertionError):
        nn.Hardtanh(1, 1)
    with pytest.warns(FutureWarning, match="min_value"):
        m = nn.Hardtanh(min_value=-3.0)
    assert m.min_val == -3.0
    assert (nn.ReLU6().min_val, nn.ReLU6().max_val) == (0.0, 6.0)


def test_prelu_module_parameter_state_dict_and_gradient():
    m = nn.PReLU(3, init=0.1)
    assert list(m.state_dict()) == ["weight"]
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    np.testing.assert_allclose(_np(m.weight), [0.1] * 3, rtol=1e-7)
    x = fg.tensor([[[-1.0, 2.0], [-3.0, -4.0], [5.0, -6.0]]])
    m(x).sum().backward()
    np.testing.assert_array_equal(_np(m.weight.grad), [-1.0, -7.0, -6.0])
    m.load_state_dict({"weight": fg.tensor([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(_np(m(x)), [[[-1.0, 2.0], [-6.0, -8.0], [5.0, -18.0]]])
    assert nn.PReLU(dtype=fg.float64).weight.dtype == fg.float64


@needs_torch
def test_prelu_state_dict_loads_from_torch():
    tm = torch.nn.PReLU(4, 0.3)
    m = nn.PReLU(4)
    m.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(2, 4, 2)
    np.testing.assert_allclose(_np(m(fg.tensor(x))), tm(torch.tensor(x)).detach().numpy())


MODULES = [
    (lambda: nn.Hardtanh(-0.5, 0.5), lambda x: F.hardtanh(x, -0.5, 0.5)),
    (lambda: nn.ReLU6(), F.relu6), (lambda: nn.SELU(), F.selu),
    (lambda: nn.CELU(0.5), lambda x: F.celu(x, 0.5)), (lambda: nn.GLU(2), lambda x: F.glu(x, 2)),
    (lambda: nn.Hardsigmoid(), F.hardsigmoid), (lambda: nn.Hardswish(), F.hardswish),
    (lambda: nn.Mish(), F.mish), (lambda: nn.Softsign(), F.softsign),
    (lambda: nn.Tanhshrink(), F.tanhshrink),
    (lambda: nn.Threshold(0.2, -1.0), lambda x: F.threshold(x, 0.2, -1.0)),
    (lambda: nn.LogSigmoid(), F.logsigmoid), (lambda: nn.Hardshrink(0.3), lambda x: F.hardshrink(x, 0.3)),
    (lambda: nn.Softshrink(0.3), lambda x: F.softshrink(x, 0.3)),
    (lambda: nn.Softmin(1), lambda x: F.softmin(x, 1)),
    (lambda: nn.Softmax2d(), lambda x: F.softmax(x, -3)),
]


@pytest.mark.parametrize("make,fn", MODULES)
def test_modules_compute_their_function(make, fn):
    x = fg.tensor(np.linspace(-4, 4, 24).reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(_np(make()(x)), _np(fn(x)))


@pytest.mark.parametrize("make", [lambda: nn.Hardtanh(inplace=True), lambda: nn.ReLU6(True),
                                  lambda: nn.SELU(True), lambda: nn.CELU(inplace=True),
                                  lambda: nn.Threshold(0.0, 1.0, True), lambda: nn.Mish(True),
                                  lambda: nn.Hardswish(True), lambda: nn.Hardsigmoid(True),
                                  lambda: nn.ELU(inplace=True), lambda: nn.SiLU(True),
                                  lambda: nn.LeakyReLU(inplace=True), lambda: nn.ReLU(True)])
def test_inplace_modules_write_their_input(make):
    y = fg.tensor([-2.0, 0.5, 3.0], requires_grad=True) * 1.0
    v0 = y._version
    assert make()(y) is y and y._version > v0


def test_softmax2d_needs_3d_or_4d():
    with pytest.raises(ValueError, match="expected input to be 3D or 4D, got 2D instead"):
        nn.Softmax2d()(fg.zeros(2, 3))
    out = nn.Softmax2d()(fg.zeros(3, 2, 2))
    np.testing.assert_allclose(_np(out), np.full((3, 2, 2), 1 / 3))


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own messages")
def test_messages_say_what_to_do():
    with pytest.raises(NotImplementedError, match="convert it with .float()"):
        F.mish(fg.tensor([1, 2]))


# --- the alias table's in-place methods (x.relu_(), x.clamp_(), ...) --------------------------------

@pytest.mark.parametrize("name,args,node", [("relu_", (), "ReluBackward0"),
                                            ("clamp_", (-0.5, 0.5), "ClampBackward1"),
                                            ("exp_", (), "ExpBackward0"),
                                            ("sigmoid_", (), "SigmoidBackward0"),
                                            ("abs_", (), "AbsBackward0")])
def test_inplace_methods_differentiate_through_the_old_values(name, args, node):
    """clamp_ and abs_ save their input: it must be the values before the write (x.copy_(f(x))
    left them reading the overwritten tensor, and backward raised)."""
    leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    y = leaf * 1.0
    assert getattr(y, name)(*args) is y and y._version == 1
    assert y.grad_fn.name() == node
    y.backward(fg.ones_like(y))
    ref_leaf = fg.tensor(X0, dtype=fg.float64, requires_grad=True)
    getattr(ref_leaf * 1.0, name[:-1])(*args).backward(fg.ones_like(y))
    np.testing.assert_array_equal(_np(leaf.grad), _np(ref_leaf.grad))
    assert F.relu(leaf * 1.0, inplace=True).grad_fn.name() == "ReluBackward0"


def test_inplace_method_refuses_a_result_its_dtype_cannot_hold():
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        fg.tensor([1, 2]).exp_()


# --- rrelu ------------------------------------------------------------------------------------------

@needs_torch
def test_rrelu_eval_is_leaky_relu_with_the_mean_slope():
    vals = [-3.0, -0.5, 0.0, -0.0, 0.5, math.inf, -math.inf, math.nan]
    (y, g, _), (ty, tg, _) = _both(lambda F, x: F.rrelu(x, 0.1, 0.3), vals, "float64")
    np.testing.assert_allclose(y, ty)
    np.testing.assert_allclose(g, tg)


def test_rrelu_training_draws_a_slope_per_negative_element():
    fg.manual_seed(3)
    x0 = np.linspace(-5, 5, 400)
    x = fg.tensor(x0, dtype=fg.float64, requires_grad=True)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    y.sum().backward()
    yn, gn = _np(y), _np(x.grad)
    neg = x0 <= 0
    slopes = yn[neg & (x0 != 0)] / x0[neg & (x0 != 0)]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and slopes.std() > 0.03
    np.testing.assert_array_equal(yn[~neg], x0[~neg])
    np.testing.assert_allclose(gn[neg & (x0 != 0)], slopes)
    np.testing.assert_array_equal(gn[~neg], 1.0)


def test_rrelu_inplace_forms_and_module():
    y = fg.tensor([-2.0, 1.0], requires_grad=True) * 1.0
    assert F.rrelu(y, inplace=True) is y and y._version == 1
    z = fg.tensor([-2.0, 1.0], requires_grad=True) * 1.0
    assert F.rrelu_(z, 0.2, 0.2, training=True) is z
    np.testing.assert_allclose(_np(z), [-0.4, 1.0], rtol=1e-6)
    assert fg.rrelu(fg.tensor([-1.0])).shape == (1,) and hasattr(fg, "rrelu_")
    m = nn.RReLU(0.1, 0.3)
    np.testing.assert_allclose(_np(m.eval()(fg.tensor([-1.0]))), [-0.2], rtol=1e-6)
    assert repr(m) == "RReLU(lower=0.1, upper=0.3)"
    assert repr(nn.RReLU(inplace=True)) == "RReLU(lower=0.125, upper=0.3333333333333333, inplace=True)"

"""Result dtypes PyTorch fixes: reductions' dtype=, cat/stack promotion, uint8 indices as masks,
scatter_add's dtype check, float16 through the unary ops, dtypes of NumPy scalars in tensor(),
float-valued ops of (non-contiguous) integer tensors, float-only kernels refusing integers.

Each expectation is written out (PyTorch 2.13's documented rule) and, where torch is installed,
the same calls are made on torch and compared.
"""
import warnings

import numpy as np
import pytest

from _backend import fg

F = fg.nn.functional


# --- dtype= of sum / mean / prod / cumsum ----------------------------------------------------------

def _dt(T, name):
    return None if name is None else getattr(T, name)


REDUCTIONS = [
    ("sum", lambda T, x, dt: x.sum(dtype=_dt(T, dt))),
    ("sum_fn", lambda T, x, dt: T.sum(x, dtype=_dt(T, dt))),
    ("sum_dim", lambda T, x, dt: x.sum(0, dtype=_dt(T, dt))),
    ("mean", lambda T, x, dt: x.mean(dtype=_dt(T, dt))),
    ("mean_fn_dim", lambda T, x, dt: T.mean(x, 1, True, dtype=_dt(T, dt))),
    ("prod", lambda T, x, dt: x.prod(dtype=_dt(T, dt))),
    ("prod_dim", lambda T, x, dt: x.prod(1, dtype=_dt(T, dt))),
    ("cumsum", lambda T, x, dt: x.cumsum(1, dtype=_dt(T, dt))),
]
A = np.array([[0.5, 1.5, 2.0], [1.25, -1.0, 3.0]], dtype=np.float32)


def _reduce_run(T, fn, a, dt):
    x = T.tensor(a, requires_grad=True)
    r = fn(T, x, dt)
    r.sum().backward()
    return r, x.grad


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_dtype_argument(name, fn):
    """The result has dtype=; the gradient comes back in the input's dtype, with the values of
    the float64 computation."""
    r, g = _reduce_run(fg, fn, A, "float64")
    assert r.dtype == fg.float64 and g.dtype == fg.float32
    r64, g64 = _reduce_run(fg, fn, A.astype(np.float64), None)
    np.testing.assert_allclose(r.detach().numpy(), r64.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(g.numpy(), g64.numpy().astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_dtype_matches_torch(name, fn):
    torch = pytest.importorskip("torch")
    r, g = _reduce_run(fg, fn, A, "float64")
    rt, gt = _reduce_run(torch, fn, A, "float64")
    assert str(r.dtype) == str(rt.dtype) and str(g.dtype) == str(gt.dtype)
    np.testing.assert_allclose(r.detach().numpy(), rt.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-6)


def test_sum_dtype_accumulates_in_that_dtype():
    x = fg.tensor([1e8, 1.0, -1e8] * 1000, dtype=fg.float32)
    assert x.sum(dtype=fg.float64).item() == 1000.0
    assert fg.ones(3, dtype=fg.int64).sum(dtype=fg.float32).dtype == fg.float32
    assert fg.ones(3, dtype=fg.int64).mean(dtype=fg.float32).item() == 1.0


def test_mean_integer_dtype_raises():
    with pytest.raises(RuntimeError, match="Optional dtype must be either a floating point"):
        fg.ones(3).mean(dtype=fg.int64)


# --- cat / stack ----------------------------------------------------------------------------------

PROMOTIONS = [
    (("float32", "int64"), "float32"),
    (("int64", "float32"), "float32"),
    (("float16", "int64"), "float16"),
    (("bool", "int32"), "int32"),
    (("uint8", "int8"), "int16"),
    (("float32", "float64"), "float64"),
    (("int32", "int64", "bool"), "int64"),
]


@pytest.mark.parametrize("op", ["cat", "stack"])
@pytest.mark.parametrize("dtypes,expected", PROMOTIONS, ids=["-".join(p[0]) for p in PROMOTIONS])
def test_cat_stack_promotion(op, dtypes, expected):
    ts = [fg.ones(2, dtype=getattr(fg, d)) for d in dtypes]
    r = getattr(fg, op)(ts)
    assert r.dtype == getattr(fg, expected)
    assert (r.numpy() == 1).all()


@pytest.mark.parametrize("op", ["cat", "stack"])
@pytest.mark.parametrize("dtypes,expected", PROMOTIONS, ids=["-".join(p[0]) for p in PROMOTIONS])
def test_cat_stack_promotion_matches_torch(op, dtypes, expected):
    torch = pytest.importorskip("torch")
    r = getattr(torch, op)([torch.ones(2, dtype=getattr(torch, d)) for d in dtypes])
    assert str(r.dtype) == f"torch.{expected}"


def test_cat_mixed_gradient_dtype():
    x = fg.ones(2, requires_grad=True)
    r = fg.cat([x, fg.tensor([3, 4])])
    assert r.dtype == fg.float32
    (r * fg.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.dtype == fg.float32
    assert x.grad.tolist() == [1.0, 2.0]


# --- uint8 index tensors are masks ----------------------------------------------------------------

def test_uint8_index_is_a_mask_with_warning():
    x = fg.tensor([10.0, 20.0, 30.0], requires_grad=True)
    with pytest.warns(UserWarning, match="indexing with dtype torch.uint8 is now deprecated"):
        y = x[fg.tensor([1, 0, 2], dtype=fg.uint8)]
    assert y.tolist() == [10.0, 30.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_uint8_index_2d_and_setitem():
    x = fg.arange(6.0).reshape(2, 3)
    m = fg.tensor([[1, 0, 0], [0, 1, 1]], dtype=fg.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert x[m].tolist() == [0.0, 4.0, 5.0]
        x[m] = fg.tensor([-1.0, -2.0, -3.0])
        assert x.tolist() == [[-1.0, 1.0, 2.0], [3.0, -2.0, -3.0]]
        with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks"):
            x[m] = -1.0                       # as PyTorch: a number through a uint8 mask


def test_uint8_index_matches_torch():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = torch.tensor([10.0, 20.0, 30.0])[torch.tensor([1, 0, 2], dtype=torch.uint8)]
    assert r.tolist() == [10.0, 30.0]


# --- scatter_add dtype ----------------------------------------------------------------------------

def test_scatter_add_dtype_mismatch_raises():
    with pytest.raises(RuntimeError, match="scatter\\(\\): Expected self.dtype to be equal to "
                                           "src.dtype"):
        fg.zeros(3).scatter_add(0, fg.tensor([0]), fg.ones(1, dtype=fg.float64))
    r = fg.zeros(3).scatter_add(0, fg.tensor([0, 0]), fg.ones(2))
    assert r.tolist() == [2.0, 0.0, 0.0]


def test_scatter_add_dtype_mismatch_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="scatter\\(\\): Expected self.dtype to be equal to "
                                           "src.dtype"):
        torch.zeros(3).scatter_add(0, torch.tensor([0]), torch.ones(1, dtype=torch.float64))


# --- float16 unary ops ----------------------------------------------------------------------------

HALF_OPS = ["exp", "log", "sigmoid", "tanh", "sqrt", "sin", "cos", "abs", "neg", "reciprocal",
            "relu"]
HALF_NN = ["gelu", "silu", "elu", "leaky_relu", "softplus"]


def _half_run(T, name):
    x = T.tensor([0.5, 2.0], dtype=T.float16, requires_grad=True)
    f = getattr(x, name) if name in HALF_OPS else (lambda: getattr(T.nn.functional, name)(x))
    r = f()
    r.sum().backward()
    return r, x.grad


@pytest.mark.parametrize("name", HALF_OPS + HALF_NN)
def test_float16_stays_float16(name):
    """Computed in float32, returned as float16; gradient float16, close to the float64 one."""
    r, g = _half_run(fg, name)
    assert r.dtype == fg.float16 and g.dtype == fg.float16
    x64 = fg.tensor([0.5, 2.0], dtype=fg.float64, requires_grad=True)
    f = getattr(x64, name) if name in HALF_OPS else (lambda: getattr(fg.nn.functional, name)(x64))
    r64 = f()
    r64.sum().backward()
    np.testing.assert_allclose(r.detach().numpy(), r64.detach().numpy(), rtol=2e-3)
    # the gradient is computed from the float16 output: tanh'(2) = 1 - y^2 loses ~3 digits
    np.testing.assert_allclose(g.numpy(), x64.grad.numpy(), rtol=1e-2)


@pytest.mark.parametrize("name", HALF_OPS + HALF_NN)
def test_float16_matches_torch(name):
    torch = pytest.importorskip("torch")
    r, g = _half_run(fg, name)
    rt, gt = _half_run(torch, name)
    assert str(rt.dtype) == "torch.float16"
    np.testing.assert_array_equal(r.detach().numpy(), rt.detach().numpy())
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-3)   # rounded once, at the end


# --- tensor() of NumPy scalars ------------------------------------------------------------------

@pytest.mark.parametrize("data, dtype", [
    ([np.float64(1.5)], "float64"), ([np.float32(1.5)], "float32"), ([np.int32(3)], "int32"),
    ([np.bool_(True)], "bool"), ([np.int64(2)], "int64"), ([np.float16(1)], "float16"),
    ([np.uint8(3)], "uint8"), (np.float64(1.5), "float64"), (np.float32(2), "float32"),
    (np.int32(3), "int32"), (np.bool_(True), "bool"), (np.array(1.5), "float64"),
    (np.array(2, np.int32), "int32"), ([np.float64(1.5), 2], "float64"),
    ([np.float32(1), np.float64(2)], "float64"), ([np.int32(1), np.int8(2)], "int32"),
    ([np.int32(1), 2.5], "float32"), ([[np.float64(1)], [2.0]], "float64"),
    ([1.5, 2], "float32"), ([1, 2], "int64"), ([True, False], "bool"),
    ((np.float64(0.25), np.float64(0.5)), "float64")])
def test_numpy_scalars_keep_their_dtype(data, dtype):
    t = fg.tensor(data)
    assert t.dtype == getattr(fg, dtype)
    np.testing.assert_array_equal(t.numpy(), np.array(data).astype(t.numpy().dtype))


# -- float-only kernels on an integer tensor: NotImplementedError (a RuntimeError) --

@pytest.mark.parametrize("fn", [
    lambda x: F.gelu(x), lambda x: F.gelu(x, approximate="tanh"), lambda x: F.silu(x),
    lambda x: F.softplus(x), lambda x: F.elu(x), lambda x: F.leaky_relu(x),
    lambda x: fg.softmax(x, 0), lambda x: F.log_softmax(x, dim=-1),
    lambda x: F.layer_norm(x, (2,)),
], ids=["gelu", "gelu_tanh", "silu", "softplus", "elu", "leaky_relu", "softmax", "log_softmax",
        "layer_norm"])
def test_float_only_kernels_raise_not_implemented_for_ints(fn):
    with pytest.raises(NotImplementedError, match="not implemented for"):
        fn(fg.tensor([3, 1]))


# -- float-valued ops of a non-contiguous integer tensor (an expand, a transpose) --

@pytest.mark.parametrize("name", ["sqrt", "exp", "reciprocal", "sin", "tanh", "sigmoid"])
def test_float_op_of_expanded_or_transposed_int_tensor(name):
    base = np.array([[1, 3], [-3, 3], [0, -3]])
    for t, ref in [(fg.tensor([-2, -2, 2]).expand(2, 3), np.broadcast_to([-2, -2, 2], (2, 3))),
                   (fg.tensor(base).transpose(1, -2), base.T)]:
        out = getattr(t, name)()
        assert out.dtype == fg.float32
        with np.errstate(all="ignore"):
            expect = {"sqrt": np.sqrt, "exp": np.exp, "reciprocal": lambda a: 1 / a,
                      "sin": np.sin, "tanh": np.tanh,
                      "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[name](ref.astype(np.float32))
        np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)

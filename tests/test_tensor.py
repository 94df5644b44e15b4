"""The Tensor facade: creation, dtypes, metadata, conversions, reprs, NumPy sharing,
type promotion, comparisons and in-place ops with version counters, the in-place pointwise forms
(sqrt_, exp_ ...) and the grad_fn names of zero_/fill_."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _backend import REFERENCE, fg


# ---------------------------------------------------------------- tensor()
@pytest.mark.parametrize("data, dtype, shape", [
    (2.0, "float32", ()),
    (2, "int64", ()),
    (True, "bool", ()),
    ([1.0, 2.0, 3.0], "float32", (3,)),
    ([1, 2, 3], "int64", (3,)),
    ([1, 2.5], "float32", (2,)),          # mixed int/float list -> float
    ([True, False], "bool", (2,)),
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "float32", (3, 2)),
    ([[[1], [2]]], "int64", (1, 2, 1)),
    ([], "float32", (0,)),
], ids=str)
def test_tensor_from_python_data(data, dtype, shape):
    t = fg.tensor(data)
    assert t.dtype == getattr(fg, dtype)
    assert t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=dtype).reshape(shape))


@pytest.mark.parametrize("np_dtype, dtype", [
    (np.float64, "float64"), (np.float32, "float32"), (np.int64, "int64"), (np.bool_, "bool")])
def test_tensor_from_numpy_keeps_dtype(np_dtype, dtype):
    a = np.arange(6).reshape(2, 3).astype(np_dtype)
    t = fg.tensor(a)
    assert t.dtype == getattr(fg, dtype)
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), a)


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0])
    t = fg.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]
    t.add_(1.0)
    assert a.tolist() == [100.0, 2.0]


def test_tensor_from_numpy_scalar_and_0d():
    assert fg.tensor(np.float64(1.5)).dtype == fg.float64
    t = fg.tensor(np.array(3.0))
    assert t.shape == () and t.dtype == fg.float64 and t.item() == 3.0


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_tensor_explicit_dtype(dtype):
    t = fg.tensor([0, 1, 2], dtype=getattr(fg, dtype))
    assert t.dtype == getattr(fg, dtype)
    np.testing.assert_array_equal(t.numpy(), np.array([0, 1, 2]).astype(dtype))
    assert t.numpy().dtype == np.dtype(dtype)


def test_tensor_explicit_dtype_from_float64_numpy():
    t = fg.tensor(np.array([1.25, 2.5]), dtype=fg.float32)
    assert t.dtype == fg.float32 and t.numpy().dtype == np.float32
    assert t.tolist() == [1.25, 2.5]


def test_tensor_requires_grad_flag():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    assert x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    y = fg.tensor([1.0, 2.0])
    assert not y.requires_grad and y.is_leaf


# ---------------------------------------------------------------- factories
def test_zeros_ones_full_empty():
    z = fg.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == fg.float32 and z.sum().item() == 0.0
    assert fg.zeros((2, 3)).shape == (2, 3)
    assert fg.zeros([4]).shape == (4,)
    assert fg.zeros(()).shape == () and fg.zeros(()).item() == 0.0
    o = fg.ones(3, dtype=fg.float64)
    assert o.dtype == fg.float64 and o.tolist() == [1.0, 1.0, 1.0]
    assert fg.ones(2, 2, dtype=fg.int64).tolist() == [[1, 1], [1, 1]]
    f = fg.full((2, 2), 3.5)
    assert f.dtype == fg.float32 and f.tolist() == [[3.5, 3.5], [3.5, 3.5]]
    assert fg.full((3,), 7).dtype == fg.int64
    assert fg.full((2,), True).dtype == fg.bool
    assert fg.full((2,), 1, dtype=fg.float64).dtype == fg.float64
    e = fg.empty(2, 5)
    assert e.shape == (2, 5) and e.dtype == fg.float32
    assert fg.empty((3,), dtype=fg.int64).dtype == fg.int64


def test_factories_requires_grad():
    for t in [fg.zeros(2, requires_grad=True), fg.ones(2, requires_grad=True),
              fg.full((2,), 1.0, requires_grad=True), fg.randn(2, requires_grad=True),
              fg.rand(2, requires_grad=True), fg.zeros_like(fg.ones(2), requires_grad=True)]:
        assert t.requires_grad and t.is_leaf and t.grad_fn is None


def test_arange():
    a = fg.arange(5)
    assert a.dtype == fg.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert fg.arange(2, 8, 3).tolist() == [2, 5]
    b = fg.arange(0.0, 1.0, 0.25)
    assert b.dtype == fg.float32 and b.tolist() == [0.0, 0.25, 0.5, 0.75]
    c = fg.arange(1, 4, dtype=fg.float64)
    assert c.dtype == fg.float64 and c.tolist() == [1.0, 2.0, 3.0]
    assert fg.arange(5, 0, -2).tolist() == [5, 3, 1]


def test_linspace():
    t = fg.linspace(0, 1, 5)
    assert t.dtype == fg.float32 and t.shape == (5,)
    np.testing.assert_allclose(t.numpy(), [0.0, 0.25, 0.5, 0.75, 1.0])
    t = fg.linspace(-1.0, 1.0, steps=3, dtype=fg.float64)
    assert t.dtype == fg.float64 and t.tolist() == [-1.0, 0.0, 1.0]


def test_eye():
    np.testing.assert_array_equal(fg.eye(3).numpy(), np.eye(3, dtype=np.float32))
    assert fg.eye(3).dtype == fg.float32
    np.testing.assert_array_equal(fg.eye(2, 3).numpy(), np.eye(2, 3))
    assert fg.eye(2, dtype=fg.float64).dtype == fg.float64


def test_rand_randn_and_manual_seed():
    fg.manual_seed(123)
    a = fg.randn(4, 5)
    b = fg.rand(3)
    fg.manual_seed(123)
    a2 = fg.randn(4, 5)
    b2 = fg.rand(3)
    assert a.shape == (4, 5) and a.dtype == fg.float32
    assert b.shape == (3,) and b.dtype == fg.float32
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    fg.manual_seed(124)
    assert not np.array_equal(fg.randn(4, 5).numpy(), a.numpy())
    assert fg.randn((2, 3)).shape == (2, 3)
    assert fg.randn(2, dtype=fg.float64).dtype == fg.float64


def test_rand_randn_distribution():
    fg.manual_seed(0)
    u = fg.rand(20000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.02
    n = fg.randn(20000).numpy()
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1.0) < 0.03


def test_zeros_like_ones_like():
    src = fg.tensor([[1, 2, 3]])
    z = fg.zeros_like(src)
    assert z.dtype == fg.int64 and z.shape == (1, 3) and z.tolist() == [[0, 0, 0]]
    o = fg.ones_like(fg.tensor([1.0, 2.0], dtype=fg.float64))
    assert o.dtype == fg.float64 and o.tolist() == [1.0, 1.0]
    assert fg.zeros_like(src, dtype=fg.float32).dtype == fg.float32
    x = fg.ones(2, requires_grad=True)
    assert not fg.zeros_like(x).requires_grad


# ---------------------------------------------------------------- NumPy sharing
def test_numpy_shares_memory():
    t = fg.zeros(3)
    n = t.numpy()
    assert isinstance(n, np.ndarray) and n.dtype == np.float32
    n[0] = 7.0
    assert t.tolist() == [7.0, 0.0, 0.0]
    t.add_(1.0)
    assert n.tolist() == [8.0, 1.0, 1.0]


def test_from_numpy_shares_memory():
    a = np.array([1.0, 2.0, 3.0])
    t = fg.from_numpy(a)
    assert t.dtype == fg.float64 and not t.requires_grad
    a[1] = -5.0
    assert t.tolist() == [1.0, -5.0, 3.0]
    t.mul_(2.0)
    assert a.tolist() == [2.0, -10.0, 6.0]
    assert np.shares_memory(t.numpy(), a)
    assert fg.from_numpy(np.arange(3)).dtype == fg.int64
    assert fg.from_numpy(np.ones(2, dtype=np.float32)).dtype == fg.float32


def test_detach_numpy_shares_memory():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    n = x.detach().numpy()
    n[0] = 9.0
    assert x.tolist() == [9.0, 2.0]


# ---------------------------------------------------------------- metadata & conversions
def test_shape_size_dim_numel():
    t = fg.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and tuple(t.shape) == (2, 3, 4)
    assert isinstance(t.shape, tuple)
    assert t.size() == (2, 3, 4)
    assert t.size(0) == 2 and t.size(-1) == 4 and t.size(1) == 3
    assert t.shape[1] == 3
    assert t.dim() == 3 and t.ndim == 3
    assert t.numel() == 24
    s = fg.tensor(1.0)
    assert s.shape == () and s.dim() == 0 and s.ndim == 0 and s.numel() == 1
    assert len(fg.zeros(5, 2)) == 5


def test_item():
    f = fg.tensor(2.5).item()
    assert f == 2.5 and type(f) is float
    i = fg.tensor([7]).item()
    assert i == 7 and type(i) is int
    b = fg.tensor([[True]]).item()
    assert b is True
    assert fg.tensor(0.1).item() == pytest.approx(0.1, rel=1e-7)   # float32 value widened
    x = fg.tensor(3.0, requires_grad=True)
    assert x.item() == 3.0 and (x * 2).item() == 6.0


def test_tolist():
    assert fg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    lst = fg.tensor([1.5, -2.0]).tolist()
    assert lst == [1.5, -2.0] and all(type(v) is float for v in lst)
    assert fg.tensor(4.0).tolist() == 4.0
    assert fg.tensor([True, False]).tolist() == [True, False]
    assert fg.zeros(2, 0).tolist() == [[], []]


def test_dtype_conversions():
    x = fg.tensor([1.7, -2.2])
    d = x.double()
    assert d.dtype == fg.float64
    np.testing.assert_allclose(d.numpy(), [1.7, -2.2], rtol=1e-6)
    assert x.long().dtype == fg.int64 and x.long().tolist() == [1, -2]   # truncation toward 0
    assert fg.tensor([1, 2]).float().dtype == fg.float32
    assert x.to(fg.float64).dtype == fg.float64
    assert x.to(dtype=fg.int64).tolist() == [1, -2]
    assert fg.tensor([0, 2]).to(fg.bool).tolist() == [False, True]
    assert fg.tensor([True, False]).long().tolist() == [1, 0]
    # a conversion to the same dtype returns the tensor itself
    assert x.float() is x
    assert x.to(fg.float32) is x


def test_conversion_copies():
    x = fg.tensor([1.0, 2.0])
    d = x.double()
    d.add_(1.0)
    assert x.tolist() == [1.0, 2.0]


def test_float64_to_float32_conversion_is_differentiable():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.grad_fn.name() == "ToCopyBackward0"
    (y * y).sum().backward()
    assert x.grad.dtype == fg.float32 and x.grad.tolist() == [2.0, 4.0]


def test_dtype_objects():
    assert fg.float32 != fg.float64
    assert fg.tensor(1.0).dtype == fg.float32
    assert fg.float32.is_floating_point and fg.float64.is_floating_point
    assert not fg.int64.is_floating_point and not fg.bool.is_floating_point
    assert fg.tensor(1.0).is_floating_point() and not fg.tensor(1).is_floating_point()


# ---------------------------------------------------------------- reprs (PYTORCH-COMPAT §3)
def _x(v=2.0):
    return fg.tensor(v, requires_grad=True)


REPRS = [
    (lambda: _x(), "tensor(2., requires_grad=True)"),
    (lambda: _x() + 3, "tensor(5., grad_fn=<AddBackward0>)"),
    (lambda: _x() * _x(), "tensor(4., grad_fn=<MulBackward0>)"),
    (lambda: fg.tensor(4.0), "tensor(4.)"),
    (lambda: fg.tensor([1.0, 2.0, 3.0], requires_grad=True), "tensor([1., 2., 3.], requires_grad=True)"),
    (lambda: fg.tensor([1.0, 2.0, 3.0], requires_grad=True).exp(),
     "tensor([ 2.7183,  7.3891, 20.0855], grad_fn=<ExpBackward0>)"),
    (lambda: fg.tensor([[1.0, 2.0], [3.0, 4.0]]), "tensor([[1., 2.],\n        [3., 4.]])"),
    (lambda: fg.tensor([1.0, 2.0], dtype=fg.float64, requires_grad=True),
     "tensor([1., 2.], dtype=torch.float64, requires_grad=True)"),
    (lambda: fg.tensor([2.0, 4.0], dtype=fg.float64), "tensor([2., 4.], dtype=torch.float64)"),
    (lambda: fg.tensor(3.0, dtype=fg.float64), "tensor(3., dtype=torch.float64)"),
    (lambda: fg.tensor([1, 2, 3]), "tensor([1, 2, 3])"),
    (lambda: fg.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: fg.tensor(3), "tensor(3)"),
    (lambda: fg.tensor([[1, 2], [3, 4]]), "tensor([[1, 2],\n        [3, 4]])"),
    (lambda: fg.tensor([1.5, 2.25]), "tensor([1.5000, 2.2500])"),
    (lambda: fg.tensor([1e-5, 1e5]), "tensor([1.0000e-05, 1.0000e+05])"),
    (lambda: fg.tensor([-1.0, 2.0]), "tensor([-1.,  2.])"),
    (lambda: fg.tensor(-0.5), "tensor(-0.5000)"),
    (lambda: fg.tensor([1, 2, 3]) > 1, "tensor([False,  True,  True])"),
    (lambda: fg.tensor(True), "tensor(True)"),
    (lambda: fg.tensor([1.0, 2.0, 3.0], requires_grad=True).detach(), "tensor([1., 2., 3.])"),
    (lambda: fg.tensor([0.0, float("nan"), -float("inf")]), "tensor([0., nan, -inf])"),
    (lambda: fg.tensor([1, 2]) / 2, "tensor([0.5000, 1.0000])"),
]


@pytest.mark.parametrize("make, expected", REPRS, ids=[r[1] for r in REPRS])
def test_repr(make, expected):
    assert repr(make()) == expected
    assert str(make()) == expected


def test_repr_grad_after_backward_and_no_grad():
    x = _x()
    y = x * x
    y.backward()
    assert repr(x.grad) == "tensor(4.)"
    with fg.no_grad():
        assert repr(x * x) == "tensor(4.)"


def test_grad_fn_repr_and_next_functions():
    x = _x()
    y = x * 3
    assert re.fullmatch(r"<MulBackward0 object at 0x[0-9a-fA-F]+>", repr(y.grad_fn))
    assert y.grad_fn.name() == "MulBackward0"
    nf = y.grad_fn.next_functions
    assert isinstance(nf, tuple) and len(nf) == 2
    assert re.fullmatch(r"<AccumulateGrad object at 0x[0-9a-fA-F]+>", repr(nf[0][0]))
    assert nf[0][1] == 0
    assert nf[1] == (None, 0)
    assert x.is_leaf and not y.is_leaf and x.grad_fn is None
    z = (x * 3).exp()
    assert z.grad_fn.next_functions[0][0].name() == "MulBackward0"


# ---------------------------------------------------------------- grad_fn names (§4)
def _v():
    return fg.tensor([0.5, 1.5, 2.0], requires_grad=True)


GRAD_FN_NAMES = [
    (lambda a: a + _v(), "AddBackward0"),
    (lambda a: a + 3, "AddBackward0"),
    (lambda a: 3 + a, "AddBackward0"),
    (lambda a: a - 1, "SubBackward0"),
    (lambda a: a - _v(), "SubBackward0"),
    (lambda a: 2 - a, "RsubBackward1"),
    (lambda a: a * _v(), "MulBackward0"),
    (lambda a: a * 3, "MulBackward0"),
    (lambda a: a / 2, "DivBackward0"),
    (lambda a: a / _v(), "DivBackward0"),
    (lambda a: 1 / a, "MulBackward0"),
    (lambda a: -a, "NegBackward0"),
    (lambda a: a.neg(), "NegBackward0"),
    (lambda a: a ** 2, "PowBackward0"),
    (lambda a: a.pow(2), "PowBackward0"),
    (lambda a: a.pow(a), "PowBackward1"),
    (lambda a: a ** _v(), "PowBackward1"),
    (lambda a: a.reciprocal(), "ReciprocalBackward0"),
    (lambda a: a.exp(), "ExpBackward0"),
    (lambda a: a.log(), "LogBackward0"),
    (lambda a: a.tanh(), "TanhBackward0"),
    (lambda a: a.sigmoid(), "SigmoidBackward0"),
    (lambda a: a.sqrt(), "SqrtBackward0"),
    (lambda a: a.abs(), "AbsBackward0"),
    (lambda a: a.sin(), "SinBackward0"),
    (lambda a: a.cos(), "CosBackward0"),
    (lambda a: fg.exp(a), "ExpBackward0"),
    (lambda a: a.relu(), "ReluBackward0"),
    (lambda a: fg.relu(a), "ReluBackward0"),
    (lambda a: a.clamp(0, 1), "ClampBackward1"),
    (lambda a: a.sum(), "SumBackward0"),
    (lambda a: a.sum(0, keepdim=True), "SumBackward1"),
    (lambda a: a.mean(), "MeanBackward0"),
    (lambda a: a.max(), "MaxBackward1"),
    (lambda a: fg.maximum(a, _v()), "MaximumBackward0"),
    (lambda a: fg.minimum(a, _v()), "MinimumBackward0"),
]


@pytest.mark.parametrize("fn, name", GRAD_FN_NAMES, ids=[f"{i}-{g[1]}" for i, g in enumerate(GRAD_FN_NAMES)])
def test_grad_fn_name(fn, name):
    y = fn(_v())
    assert y.grad_fn is not None and y.grad_fn.name() == name
    assert type(y.grad_fn).__name__ == name
    assert y.requires_grad and not y.is_leaf


# ---------------------------------------------------------------- type promotion
PROMOTION = [
    (lambda: fg.tensor([1, 2]) * fg.tensor([1.0, 2.0]), "float32"),
    (lambda: fg.tensor([1, 2]) * fg.tensor([1.0, 2.0], dtype=fg.float64), "float64"),
    (lambda: fg.tensor([1.0]) * 2.5, "float32"),
    (lambda: 2.5 * fg.tensor([1.0]), "float32"),
    (lambda: fg.tensor([1.0]) + 2, "float32"),
    (lambda: 2 * fg.tensor([1.0]), "float32"),
    (lambda: fg.tensor([1, 2]) * 2.5, "float32"),
    (lambda: 2.5 + fg.tensor([1, 2]), "float32"),
    (lambda: fg.tensor([1, 2]) * 2, "int64"),
    (lambda: fg.tensor([1, 2]) + fg.tensor([3, 4]), "int64"),
    (lambda: fg.tensor([1, 2]) / 2, "float32"),
    (lambda: fg.tensor([1, 2]) / fg.tensor([3, 4]), "float32"),
    (lambda: fg.tensor([1.0], dtype=fg.float64) * 2.5, "float64"),
    (lambda: fg.tensor([1.0]) + fg.tensor([1.0], dtype=fg.float64), "float64"),
    (lambda: fg.tensor(2.0, dtype=fg.float64) * fg.ones(3), "float32"),   # 0-d doesn't promote in-category
    (lambda: fg.tensor(2) * fg.ones(3), "float32"),
    (lambda: fg.tensor([True, False]) + 1, "int64"),
    (lambda: fg.tensor([True, False]) * 1.5, "float32"),
    (lambda: fg.tensor([1, 2]) ** 2, "int64"),
    (lambda: fg.tensor([1, 2]) ** 0.5, "float32"),
    (lambda: fg.maximum(fg.tensor([1, 2]), fg.tensor([1.5, 0.5])), "float32"),
    (lambda: fg.tensor([1, 4]).sqrt(), "float32"),
    (lambda: fg.tensor([0, 1]).exp(), "float32"),
    (lambda: -fg.tensor([1, 2]), "int64"),
    (lambda: fg.tensor([-1, 2]).abs(), "int64"),
]


@pytest.mark.parametrize("make, dtype", PROMOTION, ids=[f"{i}-{p[1]}" for i, p in enumerate(PROMOTION)])
def test_type_promotion(make, dtype):
    assert make().dtype == getattr(fg, dtype)


def test_promotion_values():
    assert (fg.tensor([1, 2]) * 2.5).tolist() == [2.5, 5.0]
    assert (fg.tensor([1, 2]) / fg.tensor([2, 4])).tolist() == [0.5, 0.5]
    assert (fg.tensor([3, 4]) * fg.tensor([0.5, 0.25])).tolist() == [1.5, 1.0]
    assert (fg.tensor([1, 2]) ** 2).tolist() == [1, 4]
    assert (7 - fg.tensor([1, 2])).tolist() == [6, 5]


def test_mixed_precision_grads_keep_leaf_dtype():
    a = fg.tensor([1.0, 2.0], requires_grad=True)                      # float32
    b = fg.tensor([3.0, 4.0], dtype=fg.float64, requires_grad=True)    # float64
    y = a * b
    assert y.dtype == fg.float64
    y.sum().backward()
    assert a.grad.dtype == fg.float32 and a.grad.tolist() == [3.0, 4.0]
    assert b.grad.dtype == fg.float64 and b.grad.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------- comparisons
COMPARISONS = [
    ("eq", lambda a, b: a == b, np.equal),
    ("ne", lambda a, b: a != b, np.not_equal),
    ("lt", lambda a, b: a < b, np.less),
    ("le", lambda a, b: a <= b, np.less_equal),
    ("gt", lambda a, b: a > b, np.greater),
    ("ge", lambda a, b: a >= b, np.greater_equal),
]


@pytest.mark.parametrize("name, op, ref", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons(name, op, ref):
    a_np = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b_np = np.array([2.0, 2.0, 2.0])
    a = fg.tensor(a_np, requires_grad=True)
    b = fg.tensor(b_np)
    for out, expected in [(op(a, b), ref(a_np, b_np)),         # broadcast tensor-tensor
                          (op(a, 2.0), ref(a_np, 2.0)),        # tensor-scalar
                          (op(2, a), ref(2, a_np)),            # scalar-tensor (reflected)
                          (op(fg.tensor([1, 2, 3]), fg.tensor([2.0, 2.0, 2.0])),
                           ref(np.array([1, 2, 3]), b_np))]:   # int vs float
        assert out.dtype == fg.bool
        assert not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), expected)


def test_comparison_bool_tensor_arithmetic():
    x = fg.tensor([-1.0, 2.0, 3.0])
    mask = x > 0
    assert mask.sum().item() == 2
    assert (x * mask).tolist() == [-0.0, 2.0, 3.0]


# ---------------------------------------------------------------- in-place ops
def test_inplace_values_and_version_counter():
    t = fg.tensor([1.0, 2.0, 3.0])
    assert t._version == 0
    r = t.add_(1.0)
    assert r is t and t.tolist() == [2.0, 3.0, 4.0] and t._version == 1
    assert t.sub_(fg.tensor([1.0, 1.0, 1.0])) is t and t.tolist() == [1.0, 2.0, 3.0] and t._version == 2
    assert t.mul_(2) is t and t.tolist() == [2.0, 4.0, 6.0] and t._version == 3
    assert t.div_(fg.tensor(4.0)) is t and t.tolist() == [0.5, 1.0, 1.5] and t._version == 4
    assert t.fill_(7.0) is t and t.tolist() == [7.0, 7.0, 7.0] and t._version == 5
    assert t.zero_() is t and t.tolist() == [0.0, 0.0, 0.0] and t._version == 6
    src = fg.tensor([9.0, 8.0, 7.0])
    assert t.copy_(src) is t and t.tolist() == [9.0, 8.0, 7.0] and t._version == 7
    src.add_(1.0)
    assert t.tolist() == [9.0, 8.0, 7.0]   # copy_ copies
    assert src._version == 1


def test_inplace_broadcast_and_dtype_cast():
    t = fg.zeros(2, 3)
    t.add_(fg.tensor([1.0, 2.0, 3.0]))
    assert t.tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    t.copy_(fg.tensor([[5.0], [6.0]]))
    assert t.tolist() == [[5.0, 5.0, 5.0], [6.0, 6.0, 6.0]]
    t.copy_(fg.tensor([1, 2, 3]))          # int source cast to float32 destination
    assert t.dtype == fg.float32 and t.tolist() == [[1.0, 2.0, 3.0]] * 2
    i = fg.tensor([1, 2])
    i.mul_(3)
    assert i.dtype == fg.int64 and i.tolist() == [3, 6]
    f = fg.tensor([1.0, 2.0])
    f.add_(fg.tensor([1.0, 1.0], dtype=fg.float64))   # stays float32
    assert f.dtype == fg.float32


def test_augmented_assignment_is_inplace():
    t = fg.tensor([1.0, 2.0])
    n = t.numpy()
    ident = id(t)
    t += 1
    t *= 2.0
    t -= fg.tensor([1.0, 1.0])
    t /= 2
    assert id(t) == ident and t._version == 4
    assert n.tolist() == [1.5, 2.5]


def test_inplace_on_nonleaf_is_recorded():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.add_(1.0)
    assert y.grad_fn.name() == "AddBackward0"
    y.mul_(3.0)
    assert y.grad_fn.name() == "MulBackward0"
    assert y.tolist() == [9.0, 15.0, 21.0]
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0, 6.0]


def test_inplace_with_grad_requiring_operand():
    w = fg.tensor([2.0, 3.0], requires_grad=True)
    h = fg.ones(2) * 1.0       # plain tensor: no grad
    h.mul_(w)                  # now part of the graph
    assert h.requires_grad and h.grad_fn.name() == "MulBackward0"
    (h * h).sum().backward()
    assert w.grad.tolist() == [4.0, 6.0]


def test_fastgrad_never_imports_torch():
    if REFERENCE:
        pytest.skip("fastgrad-only property")
    code = "import sys, fastgrad; x = fastgrad.tensor(1.0, requires_grad=True); (x*x).backward(); " \
           "assert 'torch' not in sys.modules, 'fastgrad imported torch'"
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_results_are_tensor_instances():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    for t in [x, x * 2, x.exp(), x.sum(), x.max(0).values, x > 1, fg.zeros(2), fg.from_numpy(np.ones(2)),
              x.detach()]:
        assert isinstance(t, fg.Tensor), type(t)
    (x * x).sum().backward()
    assert isinstance(x.grad, fg.Tensor)


# --- grad_fn names of zero_ / fill_ ----------------------------------------------------------------

def test_zero_and_fill_grad_fn_names():
    x = fg.zeros(3, requires_grad=True)
    y = x * 1
    assert y.zero_().grad_fn.name() == "ZeroBackward0"
    assert len(y.grad_fn.next_functions) == 1
    y = x * 1
    assert y.fill_(2).grad_fn.name() == "FillBackward2"
    assert len(y.grad_fn.next_functions) == 1
    y = x * 1
    assert y.fill_(fg.tensor(2.0)).grad_fn.name() == "FillBackward3"
    assert y.grad_fn.next_functions[1][0] is None


def test_fill_with_a_tensor_value_gets_its_gradient():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = fg.tensor(2.0, requires_grad=True)
    y = x * 1
    y.fill_(v)
    assert y.grad_fn.name() == "FillBackward3"
    (y * fg.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert v.grad.item() == 7.0 and x.grad.tolist() == [0.0, 0.0, 0.0]
    w = fg.tensor(5.0, requires_grad=True)
    z = fg.zeros(2)
    z.fill_(w)
    assert z.requires_grad and z.grad_fn.name() == "FillBackward3"
    z.sum().backward()
    assert w.grad.item() == 2.0
    u = x * 1
    u.zero_().sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


# --- in-place pointwise forms (introyt tensors tutorial) ----------------------------------------

def test_inplace_pointwise_methods_and_functions():
    x = fg.tensor([0.25, 1.0, 4.0])
    assert x.sqrt_() is x and x.tolist() == [0.5, 1.0, 2.0]
    assert fg.exp_(fg.zeros(2)).tolist() == [1.0, 1.0]
    assert fg.tensor([-1.5, 2.0]).abs_().tolist() == [1.5, 2.0]
    assert fg.tensor([-1.0, 2.0]).neg_().tolist() == [1.0, -2.0]
    assert fg.tensor([-1.0, 2.0]).relu_().tolist() == [0.0, 2.0]
    assert fg.tensor([0.0]).sigmoid_().tolist() == [0.5]
    assert fg.tensor([2.0, 3.0]).pow_(2).tolist() == [4.0, 9.0]
    b = fg.tensor([0.0, 1.0])
    assert fg.sin_(b) is b and b[0].item() == 0.0
    w = fg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.exp_()


def test_inplace_pointwise_gradient_flows_through():
    w = fg.tensor([0.5, 2.0], requires_grad=True)
    y = w * 3
    y.tanh_()
    y.sum().backward()
    assert np.allclose(w.grad.numpy(), 3 * (1 - np.tanh(np.array([1.5, 6.0])) ** 2),
                       rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------- Size
def test_size_slices_and_joins_stay_sizes():
    s = fg.zeros(2, 3, 4).shape
    size_type = type(s)
    for r, want in [(s[1:], (3, 4)), (s[::-1], (4, 3, 2)), (s + (5,), (2, 3, 4, 5)),
                    ((5,) + s, (5, 2, 3, 4)), (s * 2, (2, 3, 4) * 2), (2 * s, (2, 3, 4) * 2)]:
        assert type(r) is size_type and r == want
    assert fg.zeros(2, 3, 4).size()[1:].numel() == 12
    assert repr(s[1:]) == "torch.Size([3, 4])"
    assert type(s[0]) is int and s[-1] == 4
    with pytest.raises(TypeError):
        s + [1]
    with pytest.raises(TypeError):
        s * 1.5

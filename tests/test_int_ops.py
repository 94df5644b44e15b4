"""floor_divide (//), remainder (%), fmod, bitwise (& | ^ ~) and logical ops, and arithmetic on
bool tensors (subtraction refused): values against Python's own semantics over signs and dtypes,
PyTorch's dtype promotion, errors and grad_fn names (checked against torch 2.13:
FASTGRAD_TEST_BACKEND=torch runs this file on PyTorch), gradients against central finite
differences."""
import itertools
import math
import operator

import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

INTS = [-7, -6, -3, -1, 0, 1, 3, 6, 7]
NONZERO = [v for v in INTS if v != 0]
FLOATS = [-7.5, -3.0, -2.25, -0.5, 0.0, 0.5, 2.25, 3.0, 7.5]
NZ_FLOATS = [v for v in FLOATS if v != 0]


def _pairs(xs, ys):
    p = list(itertools.product(xs, ys))
    return [a for a, _ in p], [b for _, b in p]


def _c_fmod(a, b):
    """C's fmod on integers: truncated quotient, the result has the dividend's sign."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return a - q * b


@pytest.mark.parametrize("dt", ["int64", "int32", "int16", "int8"])
def test_integer_ops_follow_python_semantics(dt):
    xs, ys = _pairs(INTS, NONZERO)
    a = fg.tensor(xs, dtype=getattr(fg, dt))
    b = fg.tensor(ys, dtype=getattr(fg, dt))
    cases = [(a // b, [x // y for x, y in zip(xs, ys)]),
             (a % b, [x % y for x, y in zip(xs, ys)]),
             (fg.floor_divide(a, b), [x // y for x, y in zip(xs, ys)]),
             (fg.remainder(a, b), [x % y for x, y in zip(xs, ys)]),
             (fg.fmod(a, b), [_c_fmod(x, y) for x, y in zip(xs, ys)]),
             (a & b, [x & y for x, y in zip(xs, ys)]),
             (a | b, [x | y for x, y in zip(xs, ys)]),
             (a ^ b, [x ^ y for x, y in zip(xs, ys)]),
             (~a, [~x for x in xs])]
    for got, want in cases:
        assert got.dtype == getattr(fg, dt)
        assert got.tolist() == want


@pytest.mark.parametrize("s", [-3, -2, 2, 5])
def test_integer_ops_with_python_numbers_both_ways(s):
    a = fg.tensor(INTS)
    nz = fg.tensor(NONZERO)
    assert (a // s).tolist() == [x // s for x in INTS]
    assert (a % s).tolist() == [x % s for x in INTS]
    assert fg.fmod(a, s).tolist() == [_c_fmod(x, s) for x in INTS]
    assert (s // nz).tolist() == [s // x for x in NONZERO]
    assert (s % nz).tolist() == [s % x for x in NONZERO]
    assert (a & s).tolist() == [x & s for x in INTS]
    assert (s | a).tolist() == [s | x for x in INTS]
    assert (s ^ a).tolist() == [s ^ x for x in INTS]
    for r in (a // s, s // nz, a % s, s % nz, a & s):
        assert r.dtype == fg.int64


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_float_floor_divide_remainder_fmod_values(dt):
    xs, ys = _pairs(FLOATS, NZ_FLOATS)
    a = fg.tensor(xs, dtype=getattr(fg, dt))
    b = fg.tensor(ys, dtype=getattr(fg, dt))
    np.testing.assert_array_equal((a // b).numpy(), [x // y for x, y in zip(xs, ys)])
    np.testing.assert_array_equal((a % b).numpy(), [x % y for x, y in zip(xs, ys)])
    np.testing.assert_array_equal(fg.fmod(a, b).numpy(), [math.fmod(x, y) for x, y in zip(xs, ys)])
    for r in (a // b, a % b, fg.fmod(a, b)):
        assert r.dtype == getattr(fg, dt)


def _signs(t):
    return np.copysign(1.0, t.numpy()).tolist()


def test_sign_of_zero_results_as_pytorch():
    # PyTorch's remainder is fmod then a shift by the divisor: a zero keeps the dividend's sign
    # (Python's % would give the divisor's sign instead)
    x = fg.tensor([-0.0, 0.0, -4.0, 4.0])
    assert _signs(x % 2.0) == [-1.0, 1.0, -1.0, 1.0]
    assert _signs(x % -2.0) == [-1.0, 1.0, -1.0, 1.0]
    assert _signs(fg.fmod(x, 2.0)) == [-1.0, 1.0, -1.0, 1.0]
    f = fg.tensor([-0.0, 0.0, -1.0, 1.0, 1e-30]) // 2.0
    assert f.tolist() == [0.0, 0.0, -1.0, 0.0, 0.0]
    assert _signs(f) == [-1.0, 1.0, -1.0, 1.0, 1.0]


def test_float_division_by_zero_and_infinities():
    x = fg.tensor([-7.5, -3.0, 0.0, 3.0, 7.5])
    q = (x // 0).numpy()
    assert q[0] == -np.inf and q[1] == -np.inf and np.isnan(q[2]) and q[3] == np.inf
    assert np.isnan((x % 0).numpy()).all()
    assert np.isnan(fg.fmod(x, 0.0).numpy()).all()
    assert np.isnan((x % fg.zeros(5)).numpy()).all()
    assert (fg.tensor([5.0, -5.0]) % float("inf")).tolist() == [5.0, float("inf")]
    d = (fg.tensor([1.0, -1.0]) // fg.tensor([float("inf"), float("inf")])).tolist()
    assert d == [0.0, -1.0]


@pytest.mark.parametrize("f", [lambda a, b: a // b, lambda a, b: a % b, fg.fmod,
                               fg.floor_divide, fg.remainder])
def test_integer_division_by_zero_raises(f):
    a = fg.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        f(a, 0)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        f(a, fg.tensor([1, 0, 1]))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        f(fg.tensor([True, False]), 0)       # bool (op) int computes in int64
    a //= 1                                    # nothing was overwritten by the failed calls
    assert a.tolist() == [1, 2, 3]


def test_dtype_promotion():
    i = fg.tensor([-7, 3])
    i32 = fg.tensor([-7, 3], dtype=fg.int32)
    bo = fg.tensor([True, False])
    f = fg.tensor([-7.5, 3.0])
    assert (i // 2.5).dtype == fg.float32 and (i // 2.5).tolist() == [-3.0, 1.0]
    assert (i % 2.5).tolist() == [0.5, 0.5]
    assert (7.5 % fg.tensor([2, -2])).tolist() == [1.5, -0.5]
    assert (i32 // fg.tensor([2, 2])).dtype == fg.int64
    assert (i32 % fg.tensor(2)).dtype == fg.int32          # a 0-d tensor does not widen
    assert (i32 & 3).dtype == fg.int32
    assert (f.double() // f).dtype == fg.float64
    assert (bo // 2).dtype == fg.int64 and (bo // 2).tolist() == [0, 0]
    assert (bo % 2.0).dtype == fg.float32 and (bo % 2.0).tolist() == [1.0, 0.0]
    assert fg.fmod(bo, 2).tolist() == [1, 0]
    assert (bo & 1).dtype == fg.int64 and (bo & 1).tolist() == [1, 0]
    assert (bo & True).dtype == fg.bool and (bo & True).tolist() == [True, False]
    assert (i & True).dtype == fg.int64 and (i & True).tolist() == [1, 1]
    assert (i & bo).dtype == fg.int64 and (i & bo).tolist() == [1, 0]


def test_bool_ops():
    a = fg.tensor([True, False, True, False])
    b = fg.tensor([True, True, False, False])
    assert (a & b).tolist() == [True, False, False, False]
    assert (a | b).tolist() == [True, True, True, False]
    assert (a ^ b).tolist() == [False, True, True, False]
    assert (~a).tolist() == [False, True, False, True]
    assert (True ^ a).tolist() == [False, True, False, True]
    for r in (a & b, a | b, a ^ b, ~a, fg.bitwise_not(a)):
        assert r.dtype == fg.bool


def test_logical_ops_any_dtype():
    a = fg.tensor([-7, -3, 0, 3, 7])
    b = fg.tensor([2, 0, 3, 0, 2])
    f = fg.tensor([-7.5, 0.0, 0.0, 3.0, 7.5])
    assert fg.logical_and(a, b).tolist() == [True, False, False, False, True]
    assert fg.logical_or(a, b).tolist() == [True, True, True, True, True]
    assert fg.logical_xor(f, a).tolist() == [False, True, False, False, False]
    assert fg.logical_not(f).tolist() == [False, True, True, False, False]
    assert a.logical_and(f).tolist() == [True, False, False, True, True]
    for r in (fg.logical_and(a, b), fg.logical_not(f), fg.logical_xor(f, a)):
        assert r.dtype == fg.bool
    with pytest.raises(TypeError, match="logical_or"):
        fg.logical_or(a, 0)


def test_unsupported_dtypes_raise_as_pytorch():
    f = fg.tensor([1.5])
    with pytest.raises(NotImplementedError, match="\"bitwise_and_cpu\" not implemented for 'Float'"):
        f & f
    with pytest.raises(NotImplementedError, match="\"bitwise_and_cpu\" not implemented for 'Double'"):
        fg.bitwise_and(f.double(), 1)
    with pytest.raises(NotImplementedError, match="\"bitwise_or_cpu\" not implemented for 'Float'"):
        fg.tensor([3]) | 4.5
    with pytest.raises(NotImplementedError, match="\"bitwise_not_cpu\" not implemented for 'Float'"):
        fg.bitwise_not(f)
    with pytest.raises(TypeError, match="only implemented on integer and Boolean-type tensors"):
        ~f
    bo = fg.tensor([True, False])
    with pytest.raises(NotImplementedError, match="\"div_floor_cpu\" not implemented for 'Bool'"):
        bo // bo
    with pytest.raises(NotImplementedError, match="\"remainder_cpu\" not implemented for 'Bool'"):
        bo % bo
    with pytest.raises(NotImplementedError, match="\"fmod_cpu\" not implemented for 'Bool'"):
        fg.fmod(bo, bo)
    with pytest.raises(TypeError):
        fg.tensor([5]) // "a"
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of "
                                           r"tensor b \(5\)"):
        fg.tensor([True, False, True]) ^ fg.tensor([1, 2, 3, 4, 5])


def test_broadcasting():
    a = fg.tensor([[7], [-7]])
    b = fg.tensor([2, -2, 3])
    assert (a // b).tolist() == [[3, -4, 2], [-4, 3, -3]]
    assert (a % b).tolist() == [[1, -1, 1], [1, -1, 2]]
    assert (a & b).tolist() == [[2, 6, 3], [0, -8, 1]]


def test_in_place_forms():
    a = fg.tensor([-7, -3, 0, 3, 7])
    b = fg.tensor([2, -2, 3, -3, 2])
    cases = [(operator.ifloordiv, b, [-4, 1, 0, -1, 3]), (operator.imod, 2, [1, 1, 0, 1, 1]),
             (operator.iand, 3, [1, 1, 0, 3, 3]), (operator.ior, b, [-5, -1, 3, -1, 7]),
             (operator.ixor, 1, [-8, -4, 1, 2, 6])]
    for op, other, want in cases:
        t = a.clone()
        r = op(t, other)
        assert r is t and t.tolist() == want and t.dtype == fg.int64
    methods = [("floor_divide_", 2, [-4, -2, 0, 1, 3]), ("remainder_", -2, [-1, -1, 0, -1, -1]),
               ("fmod_", 2, [-1, -1, 0, 1, 1]), ("bitwise_and_", b, [0, -4, 0, 1, 2]),
               ("bitwise_or_", 1, [-7, -3, 1, 3, 7]), ("bitwise_xor_", b, [-5, 3, 3, -2, 5]),
               ("logical_and_", b, [1, 1, 0, 1, 1]), ("logical_or_", b, [1, 1, 1, 1, 1]),
               ("logical_xor_", b, [0, 0, 1, 0, 0])]
    for name, other, want in methods:
        t = a.clone()
        assert getattr(t, name)(other) is t and t.tolist() == want and t.dtype == fg.int64
    t = a.clone()
    assert t.bitwise_not_() is t and t.tolist() == [6, 2, -1, -4, -8]
    bo = fg.tensor([True, False])
    assert bo.logical_not_().tolist() == [False, True] and bo.dtype == fg.bool
    f = fg.tensor([-7.5, 3.0])
    f %= 2
    assert f.tolist() == [0.5, 1.0] and f.dtype == fg.float32


def test_in_place_cannot_change_dtype():
    a = fg.tensor([7, -7])
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Long"):
        a //= 2.5
    bo = fg.tensor([True, False])
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired "
                                           "output type Bool"):
        bo ^= 1
    assert a.tolist() == [7, -7] and bo.tolist() == [True, False]


def _safe(shape, rng, lo=0.2, hi=0.8):
    """Dividends whose quotient by 1.7 stays away from integers (remainder's jumps)."""
    k = rng.integers(-3, 4, size=shape)
    return (k + rng.uniform(lo, hi, size=shape)) * 1.7


def test_remainder_and_fmod_gradients(rng):
    a = _safe((2, 3), rng)
    b = np.full((2, 3), 1.7) * np.where(rng.random((2, 3)) < 0.5, -1.0, 1.0)
    check_grad(lambda x, y: x % y, [a, b],
               ref=lambda x, y: x - np.floor(x / y) * y)
    check_grad(lambda x, y: fg.remainder(x, y), [a, b[0]])           # broadcast divisor
    check_grad(fg.fmod, [a, b], ref=np.fmod)
    check_grad(lambda x, y: x.fmod(y), [a, b], wrt=[1])
    check_grad(lambda x: x % 1.7, [a], ref=lambda x: np.mod(x, 1.7))
    check_grad(lambda x: fg.fmod(x, -1.7), [a], ref=lambda x: np.fmod(x, -1.7))


def test_remainder_gradient_values_and_names():
    x = fg.tensor([-7.5, 3.0], requires_grad=True)
    y = fg.tensor([2.0, -2.0], requires_grad=True)
    r = x % y
    assert r.grad_fn.name() == "RemainderBackward1"
    r.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0] and y.grad.tolist() == [4.0, 2.0]
    x.grad = y.grad = None
    r = fg.fmod(x, y)
    assert r.grad_fn.name() == "FmodBackward1"
    r.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0] and y.grad.tolist() == [3.0, 1.0]
    assert (x % 2.0).grad_fn.name() == "RemainderBackward0"
    assert x.remainder(2).grad_fn.name() == "RemainderBackward0"
    assert fg.fmod(x, 2.0).grad_fn.name() == "FmodBackward0"
    assert len((x % 2.0).grad_fn.next_functions) == 1
    assert (x * 1).remainder_(2).grad_fn.name() == "RemainderBackward0"


def test_ops_without_derivative_raise_on_backward():
    x = fg.tensor([-7.5, 3.0], requires_grad=True)
    y = fg.tensor([2.0, -2.0], requires_grad=True)
    for r, op in [(x // y, "floor_divide"), (x // 2, "floor_divide"),
                  (fg.floor_divide(x, y), "floor_divide"), (3.0 % x, "remainder"),
                  ((x * 1).floor_divide_(2), "floor_divide_")]:
        assert r.requires_grad and r.grad_fn.name() == "torch::autograd::NotImplemented"
        assert "NotImplemented object" in repr(r.grad_fn)
        assert repr(r).endswith("grad_fn=<NotImplemented>)")
        with pytest.raises(RuntimeError, match=f"derivative for aten::{op} is not implemented"):
            r.sum().backward()
    assert (x // y).tolist() == [-4.0, -2.0] and (3.0 % x).tolist() == [-4.5, 0.0]
    assert not (x.detach() // 2).requires_grad


def test_results_without_gradients():
    x = fg.tensor([1.5], requires_grad=True)
    assert fg.logical_not(x).tolist() == [False] and not fg.logical_not(x).requires_grad
    assert not fg.logical_and(x, x).requires_grad
    with fg.no_grad():
        assert not (x % 2).requires_grad


def test_remainder_double_backward():
    x = fg.tensor([2.5, -4.0], dtype=fg.float64, requires_grad=True)
    y = fg.tensor([1.5, 1.5], dtype=fg.float64, requires_grad=True)
    gx, gy = fg.autograd.grad((x % y * x).sum(), [x, y], create_graph=True)
    # d/dx [(x - floor(x/y) y) x] = 2x - floor(x/y) y;  d/dy = -floor(x/y) x
    np.testing.assert_allclose(gx.detach().numpy(), [5.0 - 1.5, -8.0 + 3 * 1.5])
    np.testing.assert_allclose(gy.detach().numpy(), [-2.5, -12.0])
    (g2,) = fg.autograd.grad(gx.sum(), [x])
    np.testing.assert_allclose(g2.numpy(), [2.0, 2.0])


def test_div_rounding_modes():
    xs, ys = _pairs(INTS, NONZERO)
    a, b = fg.tensor(xs), fg.tensor(ys)
    trunc = [int(x / y) for x, y in zip(xs, ys)]
    assert fg.div(a, b, rounding_mode="floor").tolist() == [x // y for x, y in zip(xs, ys)]
    assert fg.div(a, b, rounding_mode="trunc").tolist() == trunc
    assert a.div(b, rounding_mode="trunc").dtype == fg.int64
    fx, fy = _pairs(FLOATS, NZ_FLOATS)
    f, g = fg.tensor(fx, dtype=fg.float64), fg.tensor(fy, dtype=fg.float64)
    assert f.div(g, rounding_mode="floor").tolist() == [x // y for x, y in zip(fx, fy)]
    assert f.div(g, rounding_mode="trunc").tolist() == [math.trunc(x / y) for x, y in zip(fx, fy)]
    assert _signs(fg.tensor([-0.5]).div(2, rounding_mode="trunc")) == [-1.0]
    assert f.div(g).tolist() == (f / g).tolist()
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fg.div(fg.tensor([7, -7]), 0, rounding_mode="trunc")
    with pytest.raises(RuntimeError, match="rounding_mode to be one of None, 'trunc', or 'floor'"):
        fg.div(f, 2, rounding_mode="bad")
    with pytest.raises(NotImplementedError, match="\"div_trunc_cpu\" not implemented for 'Bool'"):
        fg.div(fg.tensor([True]), fg.tensor([True]), rounding_mode="trunc")
    t = fg.tensor([7, -7])
    assert t.div_(2, rounding_mode="floor") is t and t.tolist() == [3, -4]


def test_div_rounding_gradients_are_zero():
    x = fg.tensor([2.5, -1.0], requires_grad=True)
    y = fg.tensor([2.0, -3.0], requires_grad=True)
    for mode in ("floor", "trunc"):
        r = fg.div(x, y, rounding_mode=mode)
        assert r.grad_fn.name() == "DivBackward2"
        s = x.div(2, rounding_mode=mode)
        assert s.grad_fn.name() == "DivBackward2" and s.grad_fn.next_functions[1][0] is None
        (r.sum() + s.sum()).backward()
        assert x.grad.tolist() == [0.0, 0.0] and y.grad.tolist() == [0.0, 0.0]
    assert fg.div(x, y, rounding_mode="floor").tolist() == [1.0, 0.0]
    assert fg.div(x, y, rounding_mode="trunc").tolist() == [1.0, 0.0]


# -- subtraction of booleans is refused, as PyTorch refuses it --

@pytest.mark.parametrize("expr", [
    lambda: fg.tensor([1.0]) - True,
    lambda: True - fg.tensor([1]),
    lambda: fg.tensor([True]) - fg.tensor([1.0]),
    lambda: fg.tensor([1.0]) - fg.tensor([True]),
    lambda: fg.tensor([1.0]).sub_(True),
    lambda: fg.sub(fg.tensor([1.0]), fg.tensor([True])),
    lambda: fg.tensor([1.0], requires_grad=True).clone().sub_(fg.tensor(False)),
])
def test_bool_subtraction_raises(expr):
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor"):
        expr()


def test_two_bool_subtraction_raises():
    with pytest.raises(RuntimeError, match="with two bool tensors is not supported"):
        fg.tensor([True]) - True


def test_bool_addition_still_works():
    assert (fg.tensor([1.0]) + True).tolist() == [2.0]


# -- remainder's divisor gradient uses the forward's floor quotient --

def test_remainder_divisor_grad_with_infinite_divisor():
    x = fg.tensor([0.126, -0.5, 2.0], requires_grad=True)
    y = fg.tensor([-float("inf"), float("inf"), 0.75], requires_grad=True)
    out = x % y
    out.sum().backward()
    assert out.tolist()[:2] == [-float("inf"), float("inf")]
    # -(x // y): 0.126 // -inf == -1 and -0.5 // inf == -1 (floor(x / y) would give -0)
    assert y.grad.tolist() == [1.0, 1.0, -2.0]
    assert x.grad.tolist() == [1.0, 1.0, 1.0]

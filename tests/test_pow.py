"""Powers: PyTorch's numbers at a zero base (not NaN/0/inf), integer powers with negative
exponents, the exponent's gradient, and small scalar exponents computed as PyTorch computes them.

d/dx 0**x is 0 for x >= 0 and -inf for x < 0 (0**x * log 0); d/dx x**s at x = 0 follows
s * 0**(s-1) (zero for s = 0 by definition); x**0.5 at -0.0 is -0.0 (a square root). Expectations
are closed forms; torch, where installed, is run on the same cases.
"""
import math

import numpy as np
import pytest

from _backend import fg, reference_torch

inf, nan = math.inf, math.nan

CASES = [
    ("zero_base", lambda T, x: 0.0 ** x, [[-1.0, 0.0, 2.0, -0.5, nan]],
     [[-inf, 0.0, 0.0, -inf, nan]]),
    ("zero_base_pow_fn", lambda T, x: T.pow(0.0, x), [[-1.0, 0.0, 2.0]], [[-inf, 0.0, 0.0]]),
    ("zero_base_tensor", lambda T, x, y: x ** y, [[0.0] * 6, [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]],
     [[-inf, -inf, 0.0, inf, 1.0, 0.0], [-inf, -inf, 0.0, 0.0, 0.0, 0.0]]),
    ("scalar_m1", lambda T, x: x ** -1, [[0.0, 2.0]], [[-inf, -0.25]]),
    ("scalar_m05", lambda T, x: x ** -0.5, [[0.0, -0.0, 4.0]], [[-inf, -inf, -1.0 / 16]]),
    ("scalar_0", lambda T, x: x ** 0, [[0.0, 2.0]], [[0.0, 0.0]]),
    ("scalar_05", lambda T, x: x ** 0.5, [[0.0, -0.0, 4.0]], [[inf, -inf, 0.25]]),
    ("scalar_1", lambda T, x: x ** 1, [[0.0, 2.0]], [[1.0, 1.0]]),
    ("scalar_2", lambda T, x: x ** 2, [[0.0, 2.0]], [[0.0, 4.0]]),
    ("scalar_3", lambda T, x: x ** 3, [[0.0, 2.0]], [[0.0, 12.0]]),
    ("two_base", lambda T, x: 2.0 ** x, [[0.0, -1.0]], [[math.log(2), 0.5 * math.log(2)]]),
]


def _grads(T, fn, inputs):
    xs = [T.tensor(v, dtype=T.float64, requires_grad=True) for v in inputs]
    out = fn(T, *xs)
    out.sum().backward()
    return out.detach().numpy(), [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("name,fn,inputs,expected", CASES, ids=[c[0] for c in CASES])
def test_pow_gradient(name, fn, inputs, expected):
    _, grads = _grads(fg, fn, inputs)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=1e-15)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(np.asarray(e)))


@pytest.mark.parametrize("name,fn,inputs,expected", CASES, ids=[c[0] for c in CASES])
def test_pow_matches_torch(name, fn, inputs, expected):
    torch = pytest.importorskip("torch")
    out, grads = _grads(fg, fn, inputs)
    out_t, grads_t = _grads(torch, fn, inputs)
    np.testing.assert_allclose(out, out_t, rtol=1e-15)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(out_t))
    for g, gt in zip(grads, grads_t):
        np.testing.assert_allclose(g, gt, rtol=1e-15)


def test_zero_base_no_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (0.0 ** fg.tensor([-1.0])).item() == inf


def test_sqrt_power_forward_signed_zero():
    assert np.signbit((fg.tensor([-0.0]) ** 0.5).numpy()[0])
    assert (fg.tensor([-0.0]) ** -0.5).item() == -inf
    assert (fg.tensor([4.0], dtype=fg.float32) ** -0.5).item() == 0.5


# -- integer powers with a negative exponent: 0 except for a base of +-1 (NumPy refuses them) --

def test_number_to_negative_int_tensor_power():
    out = 3 ** fg.tensor([-2, 2, 0])
    assert out.dtype == fg.int64
    assert out.tolist() == [0, 9, 1]
    assert ((-1) ** fg.tensor([-1, -2])).tolist() == [-1, 1]
    assert (1 ** fg.tensor([-7])).tolist() == [1]


def test_int_tensor_to_negative_int_tensor_power():
    out = fg.tensor([0, 1, -1, -1, 2, -3]) ** fg.tensor([-1, -5, -2, -3, -1, -2])
    assert out.dtype == fg.int64
    assert out.tolist() == [0, 1, 1, -1, 0, 0]


def test_int_tensor_to_negative_python_int_still_raises():
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        fg.tensor([2]) ** -1


# -- pow's exponent gradient takes log(base) in the result's dtype --

@pytest.mark.parametrize("base_dtype", ["int64", "float32"])
def test_pow_exponent_grad_is_float64_exact(base_dtype):
    base = fg.tensor([2, 3], dtype=getattr(fg, base_dtype))
    e = fg.tensor([-0.8876547086569173, 0.3], dtype=fg.float64, requires_grad=True)
    (base ** e).sum().backward()
    expect = [2 ** -0.8876547086569173 * math.log(2), 3 ** 0.3 * math.log(3)]
    np.testing.assert_allclose(e.grad.numpy(), expect, rtol=1e-15)


# --- scalar exponents PyTorch computes by products (regression example: x ** i features) -------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_small_integer_exponents_are_products(dtype):
    g = fg.Generator().manual_seed(0)
    x = fg.rand(4096, generator=g, dtype=getattr(fg, dtype)) * 4 + 0.01
    a = x.numpy()
    one = a.dtype.type(1)
    assert np.array_equal((x ** 3).numpy(), a * a * a)
    assert np.array_equal((x ** -1).numpy(), one / a)
    assert np.array_equal((x ** -2).numpy(), one / (a * a))
    assert np.array_equal((x ** -0.5).numpy(), one / np.sqrt(a))
    assert np.array_equal(fg.pow(x, 3).numpy(), a * a * a)


def test_pow_matches_torch_bit_for_bit():
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    t = (torch.rand(4096) * 4 - 2).requires_grad_()
    x = fg.tensor(t.detach().numpy(), requires_grad=True)
    for e in (2, 3, -1, -2, -0.5):
        ref, got = t ** e, x ** e
        assert np.array_equal(ref.detach().numpy(), got.detach().numpy(), equal_nan=True), e
    # the gradient is grad * (e * x ** (e - 1)), rounded in that order
    g = torch.rand(4096)
    (t ** 3).backward(g)
    (x ** 3).backward(fg.tensor(g.numpy()))
    assert np.array_equal(t.grad.numpy(), x.grad.numpy())

"""Powers at a zero base and variances of large values: PyTorch's numbers, not NaN/0/inf.

d/dx 0**x is 0 for x >= 0 and -inf for x < 0 (0**x * log 0); d/dx x**s at x = 0 follows
s * 0**(s-1) (zero for s = 0 by definition); x**0.5 at -0.0 is -0.0 (a square root). std/var of
float32 accumulate in float64, so std([3e19, -3e19]) is 4.24e19. Expectations are closed forms;
torch, where installed, is run on the same cases.
"""
import math

import numpy as np
import pytest

from _backend import REFERENCE, fg

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

"""Sums over many terms keep their accuracy (Note [Sums' accumulators] in ops_reduce.pyx).

A running float16 sum stops growing at 2048 and a float32 one at 2**24; before that their error
grows with the count. Each check here failed when the sum ran in the input's own dtype.
"""
import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F


def _f16_ones(n):
    return fg.ones(n, dtype=fg.float16).reshape(-1, 2)        # n / 2 rows of two ones


@pytest.mark.parametrize("op, want", [
    (lambda z: z.sum(0), 2500.0),
    (lambda z: z.T.sum(1), 2500.0),                            # a strided view
    (lambda z: z.sum(0, keepdim=True)[0], 2500.0),
    (lambda z: fg.sum(z, dim=(0,)), 2500.0),
    (lambda z: z.cumsum(0)[-1], 2500.0),
    (lambda z: z.norm(dim=0), 50.0),
    (lambda z: z.logsumexp(0), 1 + np.log(2500)),
    (lambda z: z.log_softmax(0)[0], -np.log(2500)),
    (lambda z: z.softmax(0)[0] * 2500, 1.0),
    (lambda z: fg.einsum("ij->j", z), 2500.0),
])
def test_float16_sums_accumulate_in_float32(op, want):
    r = op(_f16_ones(5000))
    assert r.dtype == fg.float16
    np.testing.assert_allclose(r.float().numpy(), [want, want], rtol=2e-3)


def test_float16_norm_and_prod_do_not_overflow_midway():
    assert float(fg.tensor([300.0], dtype=fg.float16).norm()) == 300.0     # 300**2 > 65504
    big = fg.full((20,), 3.0, dtype=fg.float16).prod()
    assert big.dtype == fg.float16 and np.isinf(float(big))
    y = fg.tensor([1e-4, 1e-4, 1e4, 1e4], dtype=fg.float16)
    # in float16 the running product underflows to 0 after two terms; in float32 it is ~1
    assert float(y.prod()) == pytest.approx(1.0, rel=1e-2)
    assert float(y.reshape(4, 1).prod(0)) == pytest.approx(1.0, rel=1e-2)


@pytest.fixture(scope="module")
def many_rows():
    """2**24 + 2**20 rows of (1, 1): past where a float32 running sum stops growing."""
    return fg.ones((1 << 24) + (1 << 20), 2)


def test_float32_sums_past_two_to_the_24(many_rows):
    n = many_rows.shape[0]
    assert many_rows.sum(0).tolist() == [n, n]
    assert many_rows.mean(0).tolist() == [1.0, 1.0]
    assert fg.einsum("ij->j", many_rows).tolist() == [n, n]
    assert float(many_rows[:, 0].cumsum(0)[-1]) == n
    np.testing.assert_allclose(many_rows.norm(dim=0).numpy(), [np.sqrt(n)] * 2, rtol=1e-6)
    np.testing.assert_allclose(many_rows.softmax(0)[0].numpy() * n, [1.0, 1.0], rtol=1e-5)


def test_float32_bias_gradient_past_two_to_the_24(many_rows):
    lin = fg.nn.Linear(2, 2)
    lin(many_rows).sum().backward()
    n = many_rows.shape[0]
    assert lin.bias.grad.tolist() == [n, n]
    assert lin.weight.grad.tolist() == [[n, n], [n, n]]


@pytest.mark.parametrize("shape, axes", [((400000, 8), 0), ((2, 300000, 4), 1),
                                         ((3000, 50, 3), (0, 1))])
def test_float32_sum_error_stays_small(shape, axes):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) + 1).astype(np.float32)
    ref = x.astype(np.float64).sum(axes)
    got = fg.from_numpy(x).sum(axes).numpy()
    # a float32 running sum was ~1e-5 off relative here; float32 rounding of the result is 6e-8
    np.testing.assert_allclose(got, ref, rtol=3e-7)
    np.testing.assert_allclose(fg.from_numpy(x).mean(axes).numpy(),
                               ref / (x.size / ref.size), rtol=3e-7)


def test_float32_sums_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((300000, 16)) + 1).astype(np.float32)
    ref = x.astype(np.float64).sum(0)
    ours = fg.from_numpy(x).sum(0).numpy()
    theirs = torch.from_numpy(x).sum(0).numpy()
    # no worse than PyTorch's cascade sum, up to float32's rounding of the result
    assert np.abs(ours - ref).max() <= np.abs(theirs - ref).max() + 4 * np.spacing(
        np.float32(np.abs(ref).max()))
    z = np.ones((5000, 2), np.float16)
    assert fg.from_numpy(z).sum(0).tolist() == torch.from_numpy(z).sum(0).tolist()
    assert fg.from_numpy(z).cumsum(0)[-1].tolist() == torch.from_numpy(z).cumsum(0)[-1].tolist()


def test_small_sums_unchanged():
    """Below the threshold float32 sums stay in float32, as NumPy adds them (bit for bit)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1024, 128)).astype(np.float32)
    assert np.array_equal(fg.from_numpy(x).sum(0).numpy(), np.add.reduce(x, 0))
    g = F.linear(fg.from_numpy(x), fg.ones(3, 128))
    assert g.dtype == fg.float32


@pytest.mark.parametrize("shape", [(2_000_000,), (1_500_000, 3)])
def test_float32_layer_norm_of_long_rows_and_many_rows(shape):
    """layer_norm's row loops sum in the row's dtype: in float32 a 2,000,000-value row was
    normalised ~3e-5 off, and the gradient of 1,500,000 rows ~1e-2 off."""
    rng = np.random.default_rng(3)
    a = (rng.uniform(0.01, 3, shape) + 2).astype(np.float32)
    g = np.linspace(0.5, 1.5, a.size).astype(np.float32).reshape(shape)
    out = {}
    for dt in (fg.float32, fg.float64):
        x = fg.tensor(a, dtype=dt, requires_grad=True)
        w = fg.ones(shape[-1], dtype=dt, requires_grad=True)
        y = F.layer_norm(x, shape[-1:], w)
        y.backward(fg.tensor(g, dtype=dt))
        out[dt] = (y.detach().numpy(), x.grad.numpy(), w.grad.numpy())
    assert out[fg.float32][0].dtype == np.float32
    for got, want in zip(out[fg.float32], out[fg.float64]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_float16_var_gradient_rounds_the_mean_once():
    """var's gradient 2 (x - mean) / (N - 1) took the mean as a float16 sum, rounded, then
    divided: of values near 100 that is off by up to an ulp of the sum (0.25 / N)."""
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((4000, 3)) + 100).astype(np.float16)
    x = fg.tensor(a, requires_grad=True)
    x.var(1).sum().backward()
    a64 = a.astype(np.float64)
    want = 2 * (a64 - a64.mean(1, keepdims=True)) / 2
    # the float16 mean (an ulp of 100 is 0.0625) and the result's rounding, no more
    assert np.abs(x.grad.double().numpy() - want).max() <= 0.0625 / 2 + 0.002


def test_float16_cross_entropy_mean_over_many_rows():
    """The mean of 40,000 float16 losses near 2.7 was their float16 sum (inf) over 40,000."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40000, 10)).astype(np.float16)
    y = np.zeros(40000, np.int64)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(1))
    got = F.cross_entropy(fg.tensor(x), fg.tensor(y))
    assert got.dtype == fg.float16
    np.testing.assert_allclose(float(got), (lse - x64[:, 0]).mean(), rtol=1e-3)
    w = fg.ones(10, dtype=fg.float16)
    np.testing.assert_allclose(float(F.cross_entropy(fg.tensor(x), fg.tensor(y), weight=w)),
                               (lse - x64[:, 0]).mean(), rtol=1e-3)


def test_float16_cumprod_does_not_overflow_midway():
    # in float16 the running product 300 * 300 overflowed to inf before the 0.5 brought it back
    x = fg.tensor([[300.0, -200.0], [300.0, 250.0], [0.5, 0.5]], dtype=fg.float16)
    y = x.cumprod(0)
    assert y.dtype == fg.float16 and float(y[1, 0]) == np.inf     # 90,000 itself is past 65504
    np.testing.assert_allclose(y[2].float().numpy(), [45000.0, -25000.0], rtol=1e-3)
    assert x.T.cumprod(1)[:, 2].tolist() == y[2].tolist()         # a strided view


def test_zero_dim_cumprod_has_a_gradient():
    x = fg.tensor(3.0, requires_grad=True)
    y = x.cumprod(0)
    assert y.grad_fn is not None and type(y.grad_fn).__name__ == "CumprodBackward0"
    (y * 2).backward()
    assert x.grad.item() == 2.0
    assert fg.tensor(3).cumprod(0).dtype == fg.int64

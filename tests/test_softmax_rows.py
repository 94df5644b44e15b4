"""softmax and log_softmax on compiled loops (Note [Softmax over the last dim], Note [Softmax
over a middle dim] in attention_kernels.pyx): values against a float64 reference, gradients
against float64 finite differences, PyTorch's NaN rows and columns, the NumPy path for float16,
and the same bits on 1 and 2 threads."""
import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch

F = fg.nn.functional

# (rows..., last dim): a single column, a row past the 1024-element exp buffer, more rows than
# one 64-row block
SHAPES = [(3, 5), (4, 1), (2, 3, 2000), (70, 40), (7,)]


def _ref(x, log):
    """softmax / log_softmax of float64 x over its last dim."""
    s = x - x.max(-1, keepdims=True)
    lse = np.log(np.exp(s).sum(-1, keepdims=True))
    return s - lse if log else np.exp(s - lse)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients_match_a_float64_reference(shape, dtype, log):
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.standard_normal(shape) * 4
    w = rng.standard_normal(shape)
    t = fg.tensor(x, dtype=getattr(fg, dtype), requires_grad=True)
    y = (F.log_softmax if log else F.softmax)(t, -1)
    (y * fg.tensor(w, dtype=getattr(fg, dtype))).sum().backward()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y.detach().numpy(), _ref(x, log), rtol=tol * 10, atol=tol)
    y64 = _ref(x, log)                   # d/dx sum(w * f(x)), analytically from the reference
    p = np.exp(y64) if log else y64
    grad = w - p * w.sum(-1, keepdims=True) if log else p * (w - (w * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(t.grad.numpy(), grad, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("log", [False, True])
def test_gradient_matches_finite_differences(log):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    f = F.log_softmax if log else F.softmax
    t = fg.tensor(x, requires_grad=True)
    (f(t, -1) * fg.tensor(w)).sum().backward()
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        fd[i] = ((f(fg.tensor(x + e), -1) * fg.tensor(w)).sum().item()
                 - (f(fg.tensor(x - e), -1) * fg.tensor(w)).sum().item()) / 2e-6
    np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-6, atol=1e-8)


ROWS = [[np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0],
        [1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0]]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_rows_as_pytorch(dtype, log):
    """+inf anywhere or every element -inf: a NaN row (inf - inf); NaN: a NaN row; large
    logits stay finite; a -inf element gets probability 0 (log: -inf)."""
    x = np.array(ROWS)
    y = (F.log_softmax if log else F.softmax)(fg.tensor(x, dtype=getattr(fg, dtype)), -1).numpy()
    assert np.isnan(y[:3]).all()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(y[3:], _ref(x[3:], log), rtol=1e-6)
    torch = reference_torch()
    if torch is not None:
        ty = getattr(torch.nn.functional, "log_softmax" if log else "softmax")(
            torch.tensor(x, dtype=getattr(torch, dtype)), -1).numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
        np.testing.assert_allclose(y[3:], ty[3:], rtol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_other_dims_and_strided_views_agree_with_the_rows(log):
    """Another dim (the middle-dim loops), float16 (NumPy) and a strided view (copied into rows)
    give what the compiled rows give."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 18))
    f = F.log_softmax if log else F.softmax
    rows = f(fg.tensor(x.T.copy()), -1).numpy().T
    np.testing.assert_allclose(f(fg.tensor(x), 0).numpy(), rows, rtol=1e-13, atol=1e-15)
    t = fg.tensor(x)
    np.testing.assert_allclose(f(t[:, ::2], -1).numpy(), f(fg.tensor(x[:, ::2].copy()), -1).numpy(),
                               rtol=1e-13, atol=1e-15)
    half = f(fg.tensor(x, dtype=fg.float16), -1).numpy()
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float64), f(t, -1).numpy(), rtol=1e-2, atol=1e-2)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's thread team")
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", [((300, 257), -1), ((8, 50, 400), 1)])
def test_same_bits_on_one_and_two_threads(shape, dim, log):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w = fg.tensor(rng.standard_normal(shape), dtype=fg.float32)
    f = F.log_softmax if log else F.softmax
    old = fg.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            fg.set_num_threads(n)
            t = fg.tensor(x, requires_grad=True)
            y = f(t, dim)
            (y * w).sum().backward()
            out.append((y.detach().numpy(), t.grad.numpy()))
    finally:
        fg.set_num_threads(old)
    for a, b in zip(out[0], out[1]):
        np.testing.assert_array_equal(a, b)


# (shape, dim): a middle dim with inner blocks of 5, 300 (two 256-column chunks) and 20, the first
# dim of a matrix, a dim of length 1
MID = [((3, 4, 5), 1), ((2, 7, 300), 1), ((6, 5), 0), ((2, 3, 4, 5), 1), ((4, 1, 3), 1)]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,dim", MID)
def test_middle_dims_match_a_float64_reference(shape, dim, dtype, log):
    """Over a dim that is not the last (Note [Softmax over a middle dim]): values and
    gradients against the float64 reference taken with the dim moved last."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 4
    w = rng.standard_normal(shape)
    t = fg.tensor(x, dtype=getattr(fg, dtype), requires_grad=True)
    y = (F.log_softmax if log else F.softmax)(t, dim)
    (y * fg.tensor(w, dtype=getattr(fg, dtype))).sum().backward()
    xl, wl = np.moveaxis(x, dim, -1), np.moveaxis(w, dim, -1)
    ref = _ref(xl, log)
    p = np.exp(ref) if log else ref
    grad = wl - p * wl.sum(-1, keepdims=True) if log else p * (wl - (wl * p).sum(-1, keepdims=True))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y.detach().numpy(), np.moveaxis(ref, -1, dim), rtol=tol * 10,
                               atol=tol)
    np.testing.assert_allclose(t.grad.numpy(), np.moveaxis(grad, -1, dim), rtol=tol * 10,
                               atol=tol * 10)


@pytest.mark.parametrize("log", [False, True])
def test_middle_dim_non_finite_columns_as_pytorch(log):
    """The last dim's rows, as columns over dim 0: NaN where PyTorch gives NaN."""
    x = np.array(ROWS).T.copy()
    y = (F.log_softmax if log else F.softmax)(fg.tensor(x), 0).numpy()
    assert np.isnan(y[:, :3]).all()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(y[:, 3:], _ref(x[:, 3:].T, log).T, rtol=1e-12)


@pytest.fixture(params=[2, 1, 0])
def row_level(request):
    """Every instruction set of the row loops (softmax_rows.h, norm_rows.h) that the CPU has."""
    from fastgrad._core import attention_kernels, ops_norm
    best = attention_kernels.rows_level(2)
    try:
        if attention_kernels.rows_level(request.param) != request.param \
                or ops_norm.rows_level(request.param) != request.param:
            pytest.skip(f"this CPU runs row loops up to level {best}")
        yield request.param
    finally:
        attention_kernels.rows_level(2)
        ops_norm.rows_level(2)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's row loops")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_row_level_matches_float64(row_level, dtype):
    """softmax, log_softmax, layer norm and multi-head attention, forward and backward, on each
    instruction set's row loops, against float64 references (a row of 37: a partial vector)."""
    rng = np.random.default_rng(4)
    tol = 2e-5 if dtype == "float32" else 1e-12
    x, w = rng.standard_normal((9, 37)) * 3, rng.standard_normal((9, 37))
    for log in (False, True):
        t = fg.tensor(x, dtype=getattr(fg, dtype), requires_grad=True)
        y = (F.log_softmax if log else F.softmax)(t, -1)
        (y * fg.tensor(w, dtype=getattr(fg, dtype))).sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), _ref(x, log), rtol=tol, atol=tol)
    t = fg.tensor(x, dtype=getattr(fg, dtype), requires_grad=True)
    ln = fg.nn.LayerNorm(37, dtype=getattr(fg, dtype))
    (ln(t) * fg.tensor(w, dtype=getattr(fg, dtype))).sum().backward()
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    xh = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(ln(t).detach().numpy(), xh, rtol=tol * 10, atol=tol * 10)
    gx = (w - w.mean(-1, keepdims=True) - xh * (w * xh).mean(-1, keepdims=True)) \
        / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(t.grad.numpy(), gx, rtol=tol * 100, atol=tol * 100)
    np.testing.assert_allclose(ln.weight.grad.numpy(), (w * xh).sum(0), rtol=tol * 100,
                               atol=tol * 100)
    fg.manual_seed(0)
    mha = fg.nn.MultiheadAttention(8, 2, batch_first=True, dtype=fg.float64)
    q = fg.tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)
    out, _ = mha(q, q, q)
    out.sum().backward()
    ref = _mha_ref(mha, q.detach().numpy())
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-10, atol=1e-12)


def _mha_ref(mha, x):
    """Multi-head self-attention of x (N, L, E) in float64 NumPy with mha's weights."""
    E, H = mha.embed_dim, mha.num_heads
    D = E // H
    W, b = mha.in_proj_weight.detach().numpy(), mha.in_proj_bias.detach().numpy()
    qkv = x @ W.T + b
    q, k, v = (qkv[..., i * E:(i + 1) * E].reshape(x.shape[0], x.shape[1], H, D)
               .transpose(0, 2, 1, 3) for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    return o @ mha.out_proj.weight.detach().numpy().T + mha.out_proj.bias.detach().numpy()

"""float16 norms and attention compute in float32 and round once, as PyTorch's kernels do
(Note [float16 computed in float32] in nn/float16_compute.py).

Run in float16 itself, their statistics overflowed (squares of values past 256), lost their
digits over long rows, and attention's row loops read float16 data as float64 (nan, or heap
corruption). Each check compares with the same program in float64, and where PyTorch is
installed, with PyTorch.
"""
import numpy as np
import pytest

from _backend import REFERENCE, fg, reference_torch

F = fg.nn.functional
torch = reference_torch()


def _norms():
    return {
        "layer_norm": lambda x: F.layer_norm(x, tuple(x.shape[-1:])),
        "layer_norm_all": lambda x: F.layer_norm(x, tuple(x.shape[1:])),
        "group_norm": lambda x: F.group_norm(x, 1),
        "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
        "instance_norm": lambda x: F.instance_norm(x),
        "rms_norm": lambda x: F.rms_norm(x, tuple(x.shape[-1:]), eps=1e-6),
        "sdpa": lambda x: F.scaled_dot_product_attention(x, x * 0.5, x),
    }


def _run(lib, fn, arr, dtype):
    x = lib.tensor(arr, dtype=dtype, requires_grad=True)
    y = fn(x)
    # weights exact in float16: both dtypes differentiate the same function
    w = np.linspace(0.5, 1.5, y.numel()).astype(np.float16).reshape(tuple(y.shape))
    w = lib.tensor(w.astype(np.float64), dtype=y.dtype)
    (y * w).double().sum().backward()      # the float16 sum itself may overflow
    return y, x.grad


# (values, what the float16 statistics did with them)
_CASES = {
    "large": lambda rng, s: rng.standard_normal(s) * 300,          # squares overflow float16
    "offset": lambda rng, s: rng.standard_normal(s) + 100,         # variance lost to rounding
    "normal": lambda rng, s: rng.standard_normal(s),
}


@pytest.mark.skipif(REFERENCE, reason="PyTorch 2.13's float16 norms miss this bound on some "
                    "cases (values near 100: ~16 float16 ulps off float64); this test holds "
                    "fastgrad to float64, test_float16_norms_match_pytorch compares the two")
@pytest.mark.parametrize("case", sorted(_CASES))
@pytest.mark.parametrize("op", sorted(_norms()))
@pytest.mark.parametrize("shape", [(2, 3, 2500), (4, 3, 8)])
def test_float16_norms_match_float64(op, case, shape):
    if op == "sdpa" and case == "large":
        shape = (2, 3, 8)                   # q k^T itself overflows float16 beyond that
    rng = np.random.default_rng(0)
    arr = _CASES[case](rng, shape).astype(np.float16).astype(np.float64)
    fn = _norms()[op]
    y, g = _run(fg, fn, arr, fg.float16)
    y64, g64 = _run(fg, fn, arr, fg.float64)
    assert y.dtype == fg.float16 and g.dtype == fg.float16
    # within float16's rounding of the result (3 ulps), not its rounding of every statistic
    np.testing.assert_allclose(y.detach().float().numpy(), y64.detach().numpy(),
                               rtol=2e-3, atol=2e-3 * float(y64.abs().max()))
    np.testing.assert_allclose(g.float().numpy(), g64.numpy(), rtol=4e-3,
                               atol=4e-3 * float(g64.abs().max()))


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
@pytest.mark.parametrize("op", sorted(_norms()))
def test_float16_norms_match_pytorch(op):
    arr = (np.random.default_rng(1).standard_normal((2, 4, 3000)) * 3 + 20).astype(np.float64)
    arr = arr.astype(np.float16).astype(np.float64)
    fn = _norms()[op]
    ours = _run(fg, fn, arr, fg.float16)
    theirs = _run(torch, eval("lambda x: " + _TORCH_CALLS[op]), arr, torch.float16)
    exact = _run(fg, fn, arr, fg.float64)
    for a, b, c in zip(ours, theirs, exact):
        assert str(a.dtype) == str(b.dtype)
        a, b, c = (t.detach().double().numpy() for t in (a, b, c))
        # no further from float64 than PyTorch, up to an ulp of float16 (PyTorch's float16
        # gradients of the norms round their intermediate terms and are the worse ones here)
        assert np.abs(a - c).max() <= np.abs(b - c).max() + 1e-3 * np.abs(c).max()


_TORCH_CALLS = {
    "layer_norm": "torch.nn.functional.layer_norm(x, tuple(x.shape[-1:]))",
    "layer_norm_all": "torch.nn.functional.layer_norm(x, tuple(x.shape[1:]))",
    "group_norm": "torch.nn.functional.group_norm(x, 1)",
    "batch_norm": "torch.nn.functional.batch_norm(x, None, None, training=True)",
    "instance_norm": "torch.nn.functional.instance_norm(x)",
    "rms_norm": "torch.nn.functional.rms_norm(x, tuple(x.shape[-1:]), eps=1e-6)",
    "sdpa": "torch.nn.functional.scaled_dot_product_attention(x, x * 0.5, x)",
}


def test_float16_input_with_float32_parameters_gives_float16():
    x = fg.tensor(np.random.default_rng(2).standard_normal((4, 6)), dtype=fg.float16)
    w, b = fg.ones(6), fg.zeros(6)
    assert F.layer_norm(x, (6,), w, b).dtype == fg.float16
    assert F.rms_norm(x, (6,), w).dtype == fg.float16
    assert F.group_norm(x, 2, w, b).dtype == fg.float16
    assert F.batch_norm(x, None, None, w, b, training=True).dtype == fg.float16
    assert F.instance_norm(x.reshape(2, 6, 2), weight=w, bias=b).dtype == fg.float16


def test_float16_batch_norm_updates_float16_running_statistics():
    x = fg.tensor(np.random.default_rng(3).standard_normal((5000, 2)) + 100, dtype=fg.float16)
    rm, rv = fg.zeros(2, dtype=fg.float16), fg.ones(2, dtype=fg.float16)
    F.batch_norm(x, rm, rv, training=True, momentum=1.0)
    x64 = x.double().numpy()
    assert rm.dtype == fg.float16
    np.testing.assert_allclose(rm.float().numpy(), x64.mean(0), rtol=1e-3)
    np.testing.assert_allclose(rv.float().numpy(), x64.var(0, ddof=1), rtol=2e-3)
    y = F.batch_norm(x, rm, rv, training=False)
    assert y.dtype == fg.float16 and abs(float(y.float().mean())) < 0.05


def test_float16_rms_norm_default_eps_is_float32s():
    # PyTorch's kernel takes the epsilon of the type it computes in (float32), not float16's
    x = fg.full((1, 4), 1e-3, dtype=fg.float16)
    want = 1e-3 / np.sqrt(1e-6 + np.finfo(np.float32).eps)
    np.testing.assert_allclose(F.rms_norm(x, (4,)).float().numpy(), np.full((1, 4), want),
                               rtol=2e-3)


def test_float16_attention_with_masks():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 5, 16)) for _ in range(3))
    bool_mask = np.tril(np.ones((5, 5), bool))
    for kw in ({"is_causal": True}, {"attn_mask": fg.tensor(bool_mask)},
               {"attn_mask": fg.tensor(np.where(bool_mask, 0.0, -1e4), dtype=fg.float16)}):
        got = F.scaled_dot_product_attention(*(fg.tensor(a, dtype=fg.float16) for a in (q, k, v)),
                                             **kw)
        kw64 = {n: (m.double() if m.dtype == fg.float16 else m) if n == "attn_mask" else m
                for n, m in kw.items()}
        want = F.scaled_dot_product_attention(*(fg.tensor(a) for a in (q, k, v)), **kw64)
        assert got.dtype == fg.float16
        np.testing.assert_allclose(got.float().numpy(), want.numpy(), rtol=3e-3, atol=3e-3)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own kernel")
def test_attention_kernel_refuses_float16():
    from fastgrad._core.ops_attention import attention
    x = fg.ones(2, 3, dtype=fg.float16)
    with pytest.raises(TypeError, match="float32 or float64"):
        attention(x, x, x)


def test_float16_cosine_similarity_of_large_and_small_vectors():
    # in float16 the squares of 300 overflowed (nan) and those of 1e-4 underflowed (inf)
    a = fg.tensor([[1e-4, 2e-4, 0.0], [300.0, 400.0, 0.0]], dtype=fg.float16, requires_grad=True)
    r = F.cosine_similarity(a, a * 2)
    assert r.dtype == fg.float16 and r.tolist() == [1.0, 1.0]
    r.sum().backward()
    assert np.isfinite(a.grad.float().numpy()).all()
    assert F.cosine_similarity(a, a.float()).dtype == fg.float32

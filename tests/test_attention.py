"""scaled_dot_product_attention (one node, fused backward), MultiheadAttention and the transformer
encoder/decoder: values and gradients against PyTorch with identical weights, gradients against
float64 finite differences, dropout draws equal to PyTorch's after manual_seed, and PyTorch's
exceptions for bad input."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn


def _t(x, rg=False):
    return fg.tensor(x.detach().numpy(), requires_grad=rg)


def _close(a, b, tol=2e-5):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def _load(fm, tm):
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


# --- scaled_dot_product_attention ----------------------------------------------------------------

def _sdpa_masks(torch):
    g = torch.Generator().manual_seed(0)
    bool_mask = torch.rand(5, 6, generator=g) > 0.4
    bool_mask[:, 0] = True
    return {"none": {}, "bool": {"attn_mask": bool_mask},
            "float": {"attn_mask": torch.randn(3, 5, 6, generator=g)},
            "causal": {"is_causal": True}, "scale": {"scale": 0.3},
            "masked_row": {"attn_mask": torch.cat([torch.zeros(1, 6, dtype=torch.bool),
                                                   torch.ones(4, 6, dtype=torch.bool)])}}


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("case", ["none", "bool", "float", "causal", "scale", "masked_row"])
@pytest.mark.parametrize("shapes", [((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)),
                                    ((5, 4), (6, 4), (6, 2)),
                                    ((2, 3, 5, 4), (1, 3, 6, 4), (3, 6, 7))])
def test_sdpa_matches_torch(case, shapes):
    torch = pytest.importorskip("torch")
    kw = _sdpa_masks(torch)[case]
    if case == "float" and len(shapes[0]) == 2:
        kw = {"attn_mask": kw["attn_mask"][0]}
    q, k, v = (torch.randn(*s, requires_grad=True) for s in shapes)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
    cot = torch.randn(out.shape)
    out.backward(cot)
    fq, fk, fv = _t(q, True), _t(k, True), _t(v, True)
    fkw = {a: (_t(b) if isinstance(b, torch.Tensor) else b) for a, b in kw.items()}
    fout = F.scaled_dot_product_attention(fq, fk, fv, **fkw)
    fout.backward(_t(cot))
    _close(fout, out)
    for a, b in ((fq, q), (fk, k), (fv, v)):
        _close(a.grad, b.grad)
    assert type(fout.grad_fn).__name__ == "ScaledDotProductAttentionBackward0"


def test_sdpa_gradient_matches_finite_differences(rng):
    mask = rng.standard_normal((3, 4))

    def fn(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.7)
    check_grad(fn, [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 4)),
                    rng.standard_normal((1, 4, 3)), mask])


def test_sdpa_causal_gradient_matches_finite_differences(rng):
    check_grad(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
               [rng.standard_normal((2, 2, 3, 2)) for _ in range(3)])


def test_sdpa_double_backward_matches_finite_differences(rng):
    """create_graph: the recorded rule is differentiable again (gradient of a gradient)."""
    def fn(q, k, v):
        with fg.enable_grad():
            if not q.requires_grad:           # the finite-difference evaluations
                q = q.detach().requires_grad_()
            out = F.scaled_dot_product_attention(q, k, v)
            (g,) = fg.autograd.grad((out * out).sum(), q, create_graph=True)
        return g
    check_grad(fn, [rng.standard_normal((2, 3, 2)) for _ in range(3)])


def test_sdpa_fully_masked_row_is_zero():
    q = fg.randn(3, 4, requires_grad=True)
    mask = fg.tensor([[False] * 5, [True] * 5, [True] * 5])
    out = F.scaled_dot_product_attention(q, fg.randn(5, 4), fg.randn(5, 2), attn_mask=mask)
    out.sum().backward()
    assert np.all(out.detach().numpy()[0] == 0)
    assert np.all(np.isfinite(q.grad.numpy()))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_sdpa_dropout_draws_as_torch():
    torch = pytest.importorskip("torch")
    q = torch.randn(2, 2, 5, 4, requires_grad=True)
    torch.manual_seed(5)
    out = torch.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.3)
    after = torch.rand(3)
    fg.manual_seed(5)
    fq = _t(q, True)
    fout = F.scaled_dot_product_attention(fq, fq, fq, dropout_p=0.3)
    _close(fout, out)
    np.testing.assert_array_equal(fg.rand(3).numpy(), after.numpy())
    out.sum().backward()
    fout.sum().backward()
    _close(fq.grad, q.grad)


def test_sdpa_bad_input():
    q = fg.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(RuntimeError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=fg.ones(3, 3, dtype=fg.bool),
                                       is_causal=True)


# --- MultiheadAttention --------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kdim", [None, 5])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("masks", ["none", "kpm_bool", "attn_float", "both", "causal"])
def test_mha_matches_torch(batch_first, kdim, need_weights, average, masks):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch.nn.MultiheadAttention(8, 2, kdim=kdim, vdim=kdim, batch_first=batch_first)
    fg.manual_seed(1)
    fm = nn.MultiheadAttention(8, 2, kdim=kdim, vdim=kdim, batch_first=batch_first)
    tp, fp = dict(tm.named_parameters()), dict(fm.named_parameters())
    assert sorted(tp) == sorted(fp)
    for name, p in tp.items():          # PyTorch's init draws, in PyTorch's order
        np.testing.assert_array_equal(fp[name].detach().numpy(), p.detach().numpy())
    L, S, N = 3, 4, 2
    q = torch.randn((N, L, 8) if batch_first else (L, N, 8), requires_grad=True)
    kv = torch.randn((N, S, kdim or 8) if batch_first else (S, N, kdim or 8), requires_grad=True)
    kw = {}
    if masks in ("kpm_bool", "both"):
        kpm = torch.zeros(N, S, dtype=torch.bool)
        kpm[0, -1] = True
        kw["key_padding_mask"] = kpm
    if masks in ("attn_float", "both"):
        kw["attn_mask"] = torch.randn(L, S)
    if masks == "causal":
        kw["attn_mask"] = torch.triu(torch.full((L, S), float("-inf")), 1)
        kw["is_causal"] = not need_weights
    out, w = tm(q, kv, kv, need_weights=need_weights, average_attn_weights=average, **kw)
    cot = torch.randn(out.shape)
    (out * cot).sum().backward()
    fq, fkv = _t(q, True), _t(kv, True)
    fkw = {a: (_t(b) if isinstance(b, torch.Tensor) else b) for a, b in kw.items()}
    fout, fw = fm(fq, fkv, fkv, need_weights=need_weights, average_attn_weights=average, **fkw)
    (fout * _t(cot)).sum().backward()
    _close(fout, out)
    assert (fw is None) == (w is None)
    if w is not None:
        _close(fw, w)
    _close(fq.grad, q.grad)
    _close(fkv.grad, kv.grad)
    for name, p in tp.items():
        _close(fp[name].grad, p.grad, 1e-4)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("opts", [dict(add_bias_kv=True), dict(add_zero_attn=True),
                                  dict(bias=False), dict(dropout=0.4)])
def test_mha_options_match_torch(opts):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    tm = torch.nn.MultiheadAttention(8, 4, **opts)
    fg.manual_seed(2)
    fm = nn.MultiheadAttention(8, 4, **opts)
    for name, p in tm.named_parameters():
        np.testing.assert_array_equal(dict(fm.named_parameters())[name].detach().numpy(),
                                      p.detach().numpy())
    x = torch.randn(3, 2, 8)
    kpm = torch.zeros(2, 3, dtype=torch.bool)
    kpm[1, 0] = True
    for nw in (True, False):
        torch.manual_seed(7)
        out, _ = tm(x, x, x, key_padding_mask=kpm, need_weights=nw)
        fg.manual_seed(7)
        fout, _ = fm(_t(x), _t(x), _t(x), key_padding_mask=_t(kpm), need_weights=nw)
        _close(fout, out)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_mha_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    tm = torch.nn.MultiheadAttention(6, 3)
    fm = nn.MultiheadAttention(6, 3)
    _load(fm, tm)
    q, kv = torch.randn(4, 6), torch.randn(5, 6)
    out, w = tm(q, kv, kv, key_padding_mask=torch.tensor([False, False, True, False, False]))
    fout, fw = fm(_t(q), _t(kv), _t(kv),
                  key_padding_mask=fg.tensor([False, False, True, False, False]))
    _close(fout, out)
    _close(fw, w)


def test_mha_gradient_matches_finite_differences(rng):
    fg.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, dtype=fg.float64)
    mask = fg.tensor([[False, False, True], [False, False, False]])

    def fn(q, k, v):
        return m(q, k, v, key_padding_mask=mask, need_weights=False)[0]
    check_grad(fn, [rng.standard_normal((2, 2, 4)), rng.standard_normal((3, 2, 3)),
                    rng.standard_normal((3, 2, 5))])


def test_mha_bad_input():
    with pytest.raises(AssertionError, match="divisible by num_heads"):
        nn.MultiheadAttention(7, 2)
    m = nn.MultiheadAttention(8, 2)
    x = fg.randn(3, 2, 8)
    with pytest.raises(AssertionError, match=r"key_padded_mask.shape\[0\] to be 2, but got 3"):
        m(x, x, x, key_padding_mask=fg.zeros(3, 3, dtype=fg.bool))
    with pytest.raises(AssertionError, match=r"key_padded_mask.shape\[1\] to be 3, but got 4"):
        m(x, x, x, key_padding_mask=fg.zeros(2, 4, dtype=fg.bool))
    with pytest.raises(AssertionError, match="embedding dimension of 8, but got 6"):
        m(fg.randn(3, 2, 6), x, x)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=fg.zeros(3, 4))
    with pytest.raises(AssertionError, match="batched"):
        m(x, fg.randn(3, 8), x)


# --- transformer layers --------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_encoder_matches_torch(batch_first, norm_first, activation):
    torch = pytest.importorskip("torch")
    act_t = torch.nn.functional.silu if activation == "callable" else activation
    act_f = F.silu if activation == "callable" else activation
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=act_t,
                                          batch_first=batch_first, norm_first=norm_first)
    te = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(8),
                                     enable_nested_tensor=False)
    fe = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                          activation=act_f,
                                                          batch_first=batch_first,
                                                          norm_first=norm_first),
                               2, norm=nn.LayerNorm(8))
    _load(fe, te)
    x = torch.randn((3, 5, 8) if batch_first else (5, 3, 8), requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    kpm = torch.zeros(3, 5, dtype=torch.bool)
    kpm[:, -1] = True
    out = te(x, mask=mask, src_key_padding_mask=kpm)
    (out ** 2).sum().backward()
    fx = _t(x, True)
    fout = fe(fx, mask=_t(mask), src_key_padding_mask=_t(kpm))
    (fout ** 2).sum().backward()
    _close(fout, out)
    _close(fx.grad, x.grad, 1e-4)
    fp = dict(fe.named_parameters())
    for name, p in te.named_parameters():
        _close(fp[name].grad, p.grad, 1e-4)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_matches_torch(batch_first, norm_first):
    torch = pytest.importorskip("torch")
    td = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=batch_first,
        norm_first=norm_first), 2)
    fd = nn.TransformerDecoder(nn.TransformerDecoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=batch_first,
        norm_first=norm_first), 2)
    _load(fd, td)
    x = torch.randn((3, 5, 8) if batch_first else (5, 3, 8), requires_grad=True)
    mem = torch.randn((3, 4, 8) if batch_first else (4, 3, 8), requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    mkpm = torch.zeros(3, 4, dtype=torch.bool)
    mkpm[1, 2] = True
    out = td(x, mem, tgt_mask=mask, memory_key_padding_mask=mkpm)
    (out ** 2).sum().backward()
    fx, fmem = _t(x, True), _t(mem, True)
    fout = fd(fx, fmem, tgt_mask=_t(mask), memory_key_padding_mask=_t(mkpm))
    (fout ** 2).sum().backward()
    _close(fout, out)
    _close(fx.grad, x.grad, 1e-4)
    _close(fmem.grad, mem.grad, 1e-4)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_encoder_layer_dropout_draws_as_torch():
    """Default init and every dropout (attention, residual, feed-forward) equal PyTorch's after
    manual_seed: the attention output keeps PyTorch's memory layout, so the residual dropout
    fills its mask in the same order."""
    torch = pytest.importorskip("torch")
    for batch_first in (False, True):
        torch.manual_seed(3)
        tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=batch_first)
        fg.manual_seed(3)
        fl = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=batch_first)
        x = torch.randn(2, 5, 8)
        torch.manual_seed(5)
        out = tl(x)
        fg.manual_seed(5)
        _close(fl(_t(x)), out)


def test_encoder_gradient_matches_finite_differences(rng):
    fg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, norm_first=True,
                                       dtype=fg.float64)
    check_grad(lambda x: layer(x, is_causal=True,
                               src_mask=nn.Transformer.generate_square_subsequent_mask(
                                   3, dtype=fg.float64)),
               [rng.standard_normal((2, 3, 4))])


def test_encoder_layer_bad_activation():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_dropout_of_a_transposed_tensor_draws_in_memory_order():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 3, 5).transpose(0, 1)
    torch.manual_seed(11)
    out = torch.nn.functional.dropout(x, 0.5)
    fg.manual_seed(11)
    fout = F.dropout(fg.tensor(x.transpose(0, 1).numpy()).transpose(0, 1), 0.5)
    _close(fout, out)


@pytest.mark.skipif(REFERENCE, reason="runs the fastgrad example")
def test_transformer_classifier_example_loss_falls():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(root, "examples",
                                                       "transformer_classifier.py"), "150"],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    losses = [float(ln.split()[-1]) for ln in out.splitlines() if ln.startswith("step")]
    assert len(losses) == 10
    assert losses[-1] < 0.8 * losses[0]
    assert "held-out accuracy" in out


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_sdpa_large_batch_split_across_threads_matches_torch():
    """A batch of products large enough to be split across threads (Note [Batched products]),
    with transposed (head-split) views as operands."""
    torch = pytest.importorskip("torch")
    q, k, v = (torch.randn(16, 64, 4, 32).transpose(1, 2).requires_grad_() for _ in range(3))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    cot = torch.randn(out.shape)
    out.backward(cot)
    fq, fk, fv = (_t(t.detach().transpose(1, 2), True) for t in (q, k, v))
    fout = F.scaled_dot_product_attention(fq.transpose(1, 2), fk.transpose(1, 2),
                                          fv.transpose(1, 2))
    fout.backward(_t(cot))
    _close(fout, out)
    for a, b in ((fq, q), (fk, k), (fv, v)):
        _close(a.grad.transpose(1, 2), b.grad, 1e-4)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_sdpa_grouped_query_heads_match_torch():
    torch = pytest.importorskip("torch")
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 3)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    _close(F.scaled_dot_product_attention(_t(q), _t(k), _t(v), enable_gqa=True), out)

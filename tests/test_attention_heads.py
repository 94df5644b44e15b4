"""Multi-head attention computed by (batch, head) pairs (Note [Attention by heads]): the same
numbers as the composed attention (products, softmax, products) for every layout, mask and
projection MultiheadAttention can take; results that do not depend on the thread count; gradients
against float64 finite differences, twice differentiable; and the node PyTorch's graph shows."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

nn = fg.nn

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's attention by heads")


def _mha(kdim=None, seed=0, dtype=None, batch_first=True, heads=2, dim=8):
    fg.manual_seed(seed)
    return nn.MultiheadAttention(dim, heads, kdim=kdim, vdim=kdim, batch_first=batch_first,
                                 dtype=dtype)


def _masks(case, N, L, S):
    kw = {}
    if case in ("kpm", "both"):
        kpm = np.zeros((N, S), dtype=bool)
        kpm[0, -1] = True
        kw["key_padding_mask"] = fg.tensor(kpm)
    if case in ("float", "both"):
        kw["attn_mask"] = fg.tensor(np.cos(np.arange(L * S)).reshape(L, S))
    if case == "heads3d":
        kw["attn_mask"] = fg.tensor(np.sin(np.arange(N * 2 * L * S)).reshape(N * 2, L, S))
    if case == "causal":
        kw["attn_mask"] = fg.tensor(np.triu(np.full((L, S), -np.inf), 1))
        kw["is_causal"] = True
    if case == "masked_row":           # every key of query row 1 masked: that row gives zeros
        m = np.zeros((L, S))
        m[1] = -np.inf
        kw["attn_mask"] = fg.tensor(m)
    return kw


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("proj", ["self", "kv", "kdim"])
@pytest.mark.parametrize("case", ["none", "kpm", "float", "both", "heads3d", "causal",
                                  "masked_row"])
def test_heads_match_the_composed_attention(batch_first, proj, case):
    """need_weights=False takes the heads path; need_weights=True composes products and a
    softmax. Same weights, same inputs, float64: the outputs and every gradient agree."""
    N, L = 2, 4
    S = L if proj == "self" else 5
    m = _mha(kdim=5 if proj == "kdim" else None, dtype=fg.float64, batch_first=batch_first)
    rng = np.random.default_rng(3)

    def arr(n, length, d):
        return rng.standard_normal((n, length, d) if batch_first else (length, n, d))
    q0 = arr(N, L, 8)
    kv0 = q0 if proj == "self" else arr(N, S, 5 if proj == "kdim" else 8)
    cot = rng.standard_normal((N, L, 8) if batch_first else (L, N, 8))
    kw = _masks(case, N, L, S)
    results = []
    for need_weights in (False, True):
        m.zero_grad()
        q = fg.tensor(q0, requires_grad=True)
        kv = q if proj == "self" else fg.tensor(kv0, requires_grad=True)
        if need_weights:
            kw = {k: v for k, v in kw.items() if k != "is_causal"}
        out = m(q, kv, kv, need_weights=need_weights, **kw)[0]
        (out * fg.tensor(cot)).sum().backward()
        results.append([out.detach().numpy(), q.grad.numpy(), kv.grad.numpy()] +
                       [p.grad.numpy() for p in m.parameters()])
    if case == "masked_row":       # as PyTorch: NaN with the weights, the bias without
        row = (slice(None), 1) if batch_first else 1
        assert np.isnan(results[1][0][row]).all()
        np.testing.assert_array_equal(results[0][0][row],
                                      np.broadcast_to(m.out_proj.bias.detach().numpy(), (N, 8)))
        keep = (slice(None), [0, 2, 3]) if batch_first else [0, 2, 3]
        np.testing.assert_allclose(results[0][0][keep], results[1][0][keep], rtol=1e-12)
        return
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _run(m, x, threads):
    old = fg.get_num_threads()
    fg.set_num_threads(threads)
    try:
        m.zero_grad()
        xt = fg.tensor(x, requires_grad=True)
        out = m(xt, xt, xt, need_weights=False)[0]
        (out * out).sum().backward()
        return [out.detach().numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]
    finally:
        fg.set_num_threads(old)


@pytest.mark.parametrize("shape", [(16, 64, 128, 4), (3, 5, 12, 3), (1, 1, 8, 2)])
def test_heads_do_not_depend_on_the_thread_count(shape):
    from fastgrad._core import attention_kernels
    N, L, E, H = shape
    m = _mha(dim=E, heads=H)
    x = np.random.default_rng(4).standard_normal((N, L, E)).astype(np.float32)
    old = attention_kernels.set_team_macs(0)      # share the pairs at every size
    try:
        one, two = _run(m, x, 1), _run(m, x, 2)
    finally:
        attention_kernels.set_team_macs(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["self", "self_causal", "cross_kpm"])
def test_heads_gradient_matches_finite_differences(rng, case):
    m = _mha(kdim=3 if case == "cross_kpm" else None, dtype=fg.float64)
    if case == "cross_kpm":
        kpm = fg.tensor([[False, False, True], [False, False, False]])

        def fn(q, kv):
            return m(q, kv, kv, key_padding_mask=kpm, need_weights=False)[0]
        check_grad(fn, [rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 3, 3))])
    else:
        causal = fg.tensor(np.triu(np.full((4, 4), -np.inf), 1))

        def fn(x):
            if case == "self":
                return m(x, x, x, need_weights=False)[0]
            return m(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)[0]
        check_grad(fn, [rng.standard_normal((2, 4, 8))])


def test_heads_double_backward_matches_finite_differences(rng):
    m = _mha(dtype=fg.float64)
    x = fg.tensor(rng.standard_normal((2, 3, 8)), requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda t: m(t, t, t, need_weights=False)[0], [x])


def test_heads_node_is_named_as_in_pytorch():
    m = _mha()
    x = fg.randn(2, 3, 8, requires_grad=True)
    out = m(x, x, x, need_weights=False)[0]
    names, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None:
            names.add(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    assert "ScaledDotProductFlashAttentionForCpuBackward0" in names


@pytest.mark.parametrize("mask", [None, "causal", "float"])
def test_single_query_single_key_attention_is_the_value(mask):
    """A (1, 1) product of operands with stride 0 on their length-1 dims (a scalar expanded):
    BLAS rejected the leading dimension and the result was silently garbage."""
    kw = {"causal": {"is_causal": True}, "float": {"attn_mask": fg.tensor([[0.0]])}}.get(mask, {})
    for i in range(20):            # the bad leading dimension was whatever the stack held
        q, v = fg.tensor(0.5).expand(1, 1, 1, 1), fg.tensor(0.75).expand(1, 1, 1, 1)
        out = nn.functional.scaled_dot_product_attention(q, q, v, **kw)
        np.testing.assert_array_equal(out.numpy(), [[[[0.75]]]])
        fg.ones(i + 1, 3) @ fg.ones(3, i + 2)

"""layer_norm(x + h) with the sum made in the norm's pass (Note [Residual sum in the norm's pass]
in ops_norm.pyx), as the transformer layers normalise their residual sums: the same values,
gradients and graph as the add and the norm one after the other, on one thread and two."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional


@pytest.fixture
def fused():
    if REFERENCE:
        pytest.skip("fastgrad's own fused path")
    from fastgrad._core.ops_norm import add_layer_norm
    threads = fg.get_num_threads()
    yield add_layer_norm
    fg.set_num_threads(threads)


def _data(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _both(fused, x, h, k, w, b, g, rg=(True, True, True, True), hview=None):
    """(fused, composed) results: output and the four gradients (None where not asked)."""
    out = []
    for use in (True, False):
        xt = fg.tensor(x, requires_grad=rg[0])
        ht = fg.tensor(h, requires_grad=rg[1])
        wt = None if w is None else fg.tensor(w, requires_grad=rg[2])
        bt = None if b is None else fg.tensor(b, requires_grad=rg[3])
        hh = ht if hview is None else hview(ht)
        shape = tuple(x.shape[x.ndim - k:])
        y = fused(xt, hh, k, wt, bt, 1e-5) if use else F.layer_norm(xt + hh, shape, wt, bt, 1e-5)
        assert y is not None
        if y.requires_grad:
            y.backward(fg.tensor(g))
        out.append([y.detach().numpy().copy()] + [
            None if t is None or t.grad is None else t.grad.numpy().copy()
            for t in (xt, ht, wt, bt)])
    return out


# (shape, k): one and two leading dims, two normalised dims, large enough for the thread team
CASES = [((6, 8), 1), ((3, 4, 8), 1), ((3, 4, 2, 4), 2), ((16, 64, 128), 1), ((2, 0, 4), 1),
         ((8,), 1)]


@pytest.mark.parametrize("shape,k", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_equals_add_then_layer_norm(fused, shape, k, dtype, affine, threads):
    fg.set_num_threads(threads)
    x, h, g = _data(shape, 1, dtype), _data(shape, 2, dtype), _data(shape, 3, dtype)
    pshape = shape[len(shape) - k:]
    w = _data(pshape, 4, dtype) if affine else None
    b = _data(pshape, 5, dtype) if affine else None
    got, want = _both(fused, x, h, k, w, b, g)
    for a, e in zip(got, want):
        assert (a is None) == (e is None)
        if e is not None:
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("threads", [1, 2])
def test_transposed_view_operand(fused, threads):
    """h as a transposed view (the attention block's output), read in place."""
    fg.set_num_threads(threads)
    x, h, g = _data((16, 64, 128), 6, np.float32), _data((64, 16, 128), 7, np.float32), \
        _data((16, 64, 128), 8, np.float32)
    w, b = _data(128, 9, np.float32), _data(128, 10, np.float32)
    got, want = _both(fused, x, h, 1, w, b, g, hview=lambda t: t.transpose(0, 1))
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)


def test_thread_counts_agree(fused):
    x, h, g = _data((16, 64, 128), 11, np.float32), _data((16, 64, 128), 12, np.float32), \
        _data((16, 64, 128), 13, np.float32)
    w, b = _data(128, 14, np.float32), _data(128, 15, np.float32)
    runs = []
    for threads in (1, 2):
        fg.set_num_threads(threads)
        runs.append(_both(fused, x, h, 1, w, b, g)[0])
    for a, e in zip(*runs):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("rg", [(True, False, False, False), (False, True, False, False),
                                (False, False, True, True), (False, False, False, False)])
def test_requires_grad_combinations(fused, rg):
    x, h, g = _data((5, 6), 16), _data((5, 6), 17), _data((5, 6), 18)
    w, b = _data(6, 19), _data(6, 20)
    got, want = _both(fused, x, h, 1, w, b, g, rg)
    for a, e in zip(got, want):
        assert (a is None) == (e is None)
        if e is not None:
            np.testing.assert_array_equal(a, e)


def test_finite_differences(fused):
    x, h = _data((3, 4, 6), 21), _data((4, 3, 6), 22)
    w, b = _data(6, 23), _data(6, 24)
    check_grad(lambda x, h, w, b: fused(x, h.transpose(0, 1), 1, w, b, 1e-5), [x, h, w, b])


def test_graph_is_the_two_ops(fused):
    x = fg.tensor(_data((4, 6), 25), requires_grad=True)
    h = fg.tensor(_data((4, 6), 26), requires_grad=True)
    w = fg.tensor(_data(6, 27), requires_grad=True)
    y = fused(x, h, 1, w, None, 1e-5)
    ref = F.layer_norm(x + h, (6,), w, None, 1e-5)
    assert y.grad_fn.name() == ref.grad_fn.name() == "NativeLayerNormBackward0"
    names = [f.name() if f is not None else None for f, _ in y.grad_fn.next_functions]
    assert names == [f.name() if f is not None else None for f, _ in ref.grad_fn.next_functions]
    assert names[0] == "AddBackward0"


def test_double_backward(fused):
    res = []
    for use in (True, False):
        x = fg.tensor(_data((5, 6), 28), requires_grad=True)
        h = fg.tensor(_data((5, 6), 29), requires_grad=True)
        w = fg.tensor(_data(6, 30), requires_grad=True)
        y = fused(x, h, 1, w, None, 1e-5) if use else F.layer_norm(x + h, (6,), w, None, 1e-5)
        gx, = fg.autograd.grad((y * y * y).sum(), x, create_graph=True)
        gx.sum().backward()
        res.append([gx.detach().numpy(), h.grad.numpy(), w.grad.numpy()])
    for a, e in zip(*res):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_no_grad_mode(fused):
    x = fg.tensor(_data((4, 6), 31), requires_grad=True)
    with fg.no_grad():
        y = fused(x, x, 1, None, None, 1e-5)
    assert y.grad_fn is None and not y.requires_grad


def test_operands_it_leaves_to_the_composed_ops(fused):
    x = fg.tensor(_data((2, 3, 4), 32, np.float32))
    assert fused(x, fg.tensor(_data((2, 3, 4), 33)), 1, None, None, 1e-5) is None   # dtypes
    assert fused(x, fg.tensor(_data((3, 4), 34, np.float32)), 1, None, None, 1e-5) is None
    sq = fg.tensor(_data((2, 4, 4), 41, np.float32))
    assert fused(sq, sq.transpose(1, 2), 1, None, None, 1e-5) is None     # rows not contiguous
    assert fused(sq, sq[:, :, ::2].repeat(1, 1, 2), 1, None, None, 1e-5) is not None
    x4 = fg.tensor(_data((2, 2, 3, 4), 35, np.float32))
    assert fused(x4, x4, 1, None, None, 1e-5) is None                        # 3 leading dims
    xi = fg.tensor(np.ones((2, 3), np.int64))
    assert fused(xi, xi, 1, None, None, 1e-5) is None
    w64 = fg.tensor(_data(4, 36))
    assert fused(x, x, 1, w64, None, 1e-5) is None                           # weight dtype
    assert fused(x, x, 1, fg.tensor(_data(3, 37, np.float32)), None, 1e-5) is None
    assert fused(x, 1.0, 1, None, None, 1e-5) is None


# --- the transformer layers --------------------------------------------------------------------

def _encoder(seed=0):
    fg.manual_seed(seed)
    return fg.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                         dtype=fg.float64)


def _step(layer, x):
    xt = fg.tensor(x, requires_grad=True)
    out = layer(xt)
    out.backward(fg.tensor(np.cos(np.arange(out.numel())).reshape(tuple(out.shape))))
    return [out.detach().numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in layer.parameters()]


def test_encoder_layer_norm_hook_sees_the_sum():
    """A hooked LayerNorm is called as a module (the fused path stands aside), with the same
    results."""
    x = _data((3, 5, 16), 38)
    plain = _step(_encoder(), x)
    layer = _encoder()
    seen = []
    layer.norm1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    hooked = _step(layer, x)
    assert seen == [(3, 5, 16)]
    for a, e in zip(hooked, plain):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("kind", ["Encoder", "Decoder"])
def test_layers_match_torch(kind):
    """Both fused paths (the feed-forward's ReLU, the residual sums) against PyTorch."""
    from _backend import reference_torch
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    x = _data((4, 9, 16), 39).astype(np.float32)
    mem = (_data((4, 7, 16), 40).astype(np.float32),) if kind == "Decoder" else ()
    fg.manual_seed(1)
    layer = getattr(fg.nn, f"Transformer{kind}Layer")(16, 2, 32, dropout=0.0, batch_first=True)
    tl = getattr(torch.nn, f"Transformer{kind}Layer")(16, 2, 32, dropout=0.0, batch_first=True)
    tl.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in
                        layer.state_dict().items()})
    xt, xf = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    ot = tl(xt, *[torch.tensor(m) for m in mem])
    of = layer(xf, *[fg.tensor(m) for m in mem])
    cot = np.sin(np.arange(ot.numel())).reshape(tuple(ot.shape)).astype(np.float32)
    ot.backward(torch.tensor(cot))
    of.backward(fg.tensor(cot))
    np.testing.assert_allclose(of.detach().numpy(), ot.detach().numpy(), rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=2e-4, atol=2e-5)
    for (name, p), q in zip(layer.named_parameters(), tl.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-4, atol=2e-5,
                                   err_msg=name)

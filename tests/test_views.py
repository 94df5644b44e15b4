"""Views and shapes (issue 3): values vs NumPy, gradients vs float64 central differences,
storage sharing with the base, grad_fn names and errors as PyTorch."""
import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

R = np.random.default_rng(3)


def arr(*shape):
    return R.standard_normal(shape)


@pytest.mark.parametrize("fn, ref, shape", [
    (lambda x: x.reshape(3, 4), lambda x: x.reshape(3, 4), (2, 6)),
    (lambda x: x.reshape(-1), lambda x: x.reshape(-1), (2, 3)),
    (lambda x: x.t().reshape(6), lambda x: x.T.reshape(6), (2, 3)),        # non-viewable: copy
    (lambda x: x.view(6, 1), lambda x: x.reshape(6, 1), (2, 3)),
    (lambda x: x.reshape(()), lambda x: x.reshape(()), (1,)),
    (lambda x: x.reshape(0, 3), lambda x: x.reshape(0, 3), (3, 0)),
    (lambda x: x.flatten(), lambda x: x.reshape(-1), (2, 3, 2)),
    (lambda x: x.flatten(1), lambda x: x.reshape(2, 6), (2, 3, 2)),
    (lambda x: x.unflatten(1, (2, 3)), lambda x: x.reshape(2, 2, 3), (2, 6)),
    (lambda x: x.squeeze(), lambda x: x.squeeze(), (1, 3, 1)),
    (lambda x: x.squeeze(0), lambda x: x[0], (1, 3)),
    (lambda x: x.unsqueeze(1), lambda x: x[:, None], (2, 3)),
    (lambda x: x.unsqueeze(-1), lambda x: x[..., None], ()),
    (lambda x: x.transpose(0, 2), lambda x: x.transpose(2, 1, 0), (2, 3, 4)),
    (lambda x: x.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0), (2, 3, 4)),
    (lambda x: x.T, lambda x: x.T, (2, 3)),
    (lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), (2, 3, 4)),
    (lambda x: x.t(), lambda x: x.T, (3,)),
    (lambda x: x.expand(4, 2, 3), lambda x: np.broadcast_to(x, (4, 2, 3)), (2, 1)),
    (lambda x: x.expand(-1, 5), lambda x: np.broadcast_to(x, (3, 5)), (3, 1)),
    (lambda x: x.broadcast_to((2, 3)), lambda x: np.broadcast_to(x, (2, 3)), ()),
    (lambda x: x.repeat(2, 3), lambda x: np.tile(x, (2, 3)), (2, 2)),
    (lambda x: x.repeat(2, 1, 2), lambda x: np.tile(x, (2, 1, 2)), (3,)),
    (lambda x: x.flip(0), lambda x: x[::-1], (3, 2)),
    (lambda x: x.flip(0, 1), lambda x: x[::-1, ::-1], (3, 2)),
    (lambda x: x.diagonal(), lambda x: np.diagonal(x), (3, 4)),
    (lambda x: x.diagonal(1, 1, 2), lambda x: np.diagonal(x, 1, 1, 2), (2, 3, 4)),
    (lambda x: x.contiguous() * 1, lambda x: x, (2, 3)),
    (lambda x: x.t().contiguous(), lambda x: x.T, (2, 3)),
    (lambda x: x[::2, 1:].t().reshape(-1), lambda x: x[::2, 1:].T.reshape(-1), (5, 3)),
])
def test_view_values_and_grads(fn, ref, shape):
    check_grad(fn, [arr(*shape)], ref=ref)


def test_multi_output_views_grads():
    check_grad(lambda x: x.chunk(3, 1)[1] * 2, [arr(2, 7)], ref=lambda x: np.array_split(x, [3, 6], 1)[1] * 2)
    check_grad(lambda x: fg.stack(x.split(2)[::2]), [arr(6, 2)])
    check_grad(lambda x: x.split([1, 3], 0)[1], [arr(4, 2)], ref=lambda x: x[1:])
    check_grad(lambda x: x.unbind(1)[2] + x.unbind(1)[0], [arr(3, 4)], ref=lambda x: x[:, 2] + x[:, 0])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack(dim):
    a, b = arr(2, 3), arr(2, 3)
    check_grad(lambda x, y: fg.cat([x, y, x], dim), [a, b], ref=lambda x, y: np.concatenate([x, y, x], dim))
    check_grad(lambda x, y: fg.stack([x, y], dim), [a, b], ref=lambda x, y: np.stack([x, y], dim))


def test_cat_empty_and_noncontiguous():
    check_grad(lambda x, y: fg.cat([x.t(), y]), [arr(3, 0), arr(2, 3)],
               ref=lambda x, y: np.concatenate([x.T, y]))


def test_views_share_storage_and_version():
    x = fg.zeros(2, 3)
    for v in (x.view(6), x.reshape(3, 2), x.t(), x.T, x[0], x[:, 1:], x.unsqueeze(0), x.transpose(0, 1),
              x.flatten(), x.expand(2, 2, 3), x.diagonal(), x.chunk(2, 1)[0], x.unbind(0)[1]):
        assert v._base is x
        assert np.shares_memory(v.numpy(), x.numpy())
    v = x.view(6)
    v[4] = 7.0
    assert x[1, 1].item() == 7.0
    x.t()[2, 0] = 3.0
    assert x.numpy()[0, 2] == 3.0
    assert v._version == x._version > 0


def test_grad_through_view_reaches_base():
    x = fg.tensor(np.arange(6.0), requires_grad=True)
    y = x.view(2, 3).t()[1:] * 3
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 3, 3, 0, 3, 3])


def test_grad_fn_names():
    a = fg.randn(3, requires_grad=True)
    m = fg.randn(2, 3, requires_grad=True)
    names = {
        "ViewBackward0": a.view(3, 1), "TBackward0": m.t(), "PermuteBackward0": m.T,
        "TransposeBackward0": m.transpose(0, 1), "ExpandBackward0": a.expand(2, 3),
        "UnsqueezeBackward0": a.unsqueeze(0), "SqueezeBackward0": a.unsqueeze(0).squeeze(),
        "CatBackward0": fg.cat([a, a]), "StackBackward0": fg.stack([a, a]),
        "UnsafeViewBackward0": m.t().reshape(-1), "SplitBackward0": m.chunk(2, 1)[0],
        "UnbindBackward0": m.unbind()[0], "FlipBackward0": m.flip(0), "RepeatBackward0": m.repeat(1, 2),
    }
    for name, t in names.items():
        assert t.grad_fn.name() == name
    assert a.flatten() is a


def test_errors():
    with pytest.raises(RuntimeError, match=r"shape '\[2, 2\]' is invalid for input of size 3"):
        fg.randn(3).view(2, 2)
    with pytest.raises(RuntimeError, match=r"reshape"):
        fg.randn(2, 3).t().view(-1)
    with pytest.raises(RuntimeError, match=r"\[2, 3\].*\[2, 4\]|Sizes of tensors must match"):
        fg.cat([fg.randn(2, 3), fg.randn(2, 4)])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        fg.stack([fg.randn(2, 3), fg.randn(3, 3)])
    with pytest.raises(IndexError, match="Dimension out of range"):
        fg.randn(2, 3).squeeze(5)
    with pytest.raises(RuntimeError, match="expanded size"):
        fg.randn(2, 3).expand(4, 3)


def test_vs_torch():
    torch = pytest.importorskip("torch")
    xn = arr(2, 3, 4)
    for f in (lambda t: t.permute(2, 0, 1).reshape(4, 6)[1:, ::2] * 2,
              lambda t: fg_or(t).cat([t.flip(1), t], 1).unbind(2)[3],
              lambda t: t.mT.flatten(0, 1).repeat(2, 1)):
        outs = []
        for lib in (torch, fg):
            x = lib.tensor(xn, requires_grad=True)
            y = f(x)
            (y * y).sum().backward()
            outs.append((y.detach().numpy(), x.grad.numpy(), y.grad_fn.name()))
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6)
        np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-6)
        assert outs[0][2] == outs[1][2]


def fg_or(t):
    import sys
    return sys.modules[type(t).__module__.split(".")[0]]

"""Views and shapes: values vs NumPy, gradients vs float64 central differences, storage sharing
with the base, grad_fn names and errors as PyTorch; view(dtype), narrow/flatten/unflatten,
split/chunk/unbind, diagonal, in-place reshapes (unsqueeze_, t_ ...)."""
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


# -- expand() without sizes --

def test_expand_without_sizes_is_a_type_error():
    with pytest.raises(TypeError, match="expand\\(\\) missing 1 required positional"):
        fg.tensor(False).expand()


# --- in-place reshapes (introyt tensors tutorial) -----------------------------------------------

def test_squeeze_unsqueeze_in_place():
    b = fg.rand(3, 4)
    assert b.unsqueeze_(0) is b and b.shape == (1, 3, 4)
    assert b.squeeze_(0).shape == (3, 4) and b.t_().shape == (4, 3)
    assert b.transpose_(0, 1).shape == (3, 4)
    w = fg.rand(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        w.unsqueeze_(0)


# --- view(dtype) ----------------------------------------------------------------------------------

def test_view_dtype_same_size_shares_storage():
    x = fg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    y = x.view(fg.int32)
    assert y.dtype == fg.int32 and y.shape == (2, 3) and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), np.arange(6, dtype=np.float32).view(np.int32).reshape(2, 3))
    z = x.detach().view(fg.int32)
    z[0, 0] = np.float32(7.0).view(np.int32).item()
    assert x[0, 0].item() == 7.0
    f = x.view(fg.float32)
    assert f.grad_fn is None and not f.requires_grad


def test_view_dtype_different_size():
    x = fg.tensor(np.arange(8, dtype=np.int32).reshape(2, 4))
    assert x.view(fg.int64).shape == (2, 2)
    np.testing.assert_array_equal(x.view(fg.int64).numpy(),
                                  np.arange(8, dtype=np.int32).reshape(2, 4).view(np.int64))
    assert x.view(fg.int16).shape == (2, 8)
    assert x.t().view(fg.int32).shape == (4, 2)
    assert fg.zeros(0, 4).view(fg.float64).shape == (0, 2)
    assert fg.zeros(()).view(fg.int32).shape == ()
    y = fg.tensor(np.arange(12, dtype=np.int32).reshape(2, 6))[:, 2:]
    np.testing.assert_array_equal(y.view(fg.int64).numpy(), y.numpy().view(np.int64))


@pytest.mark.parametrize("make, dt, msg", [
    (lambda: fg.zeros(3), "float64", "self.size(-1) must be divisible by 2 to view Float as Double "
                                     "(different element sizes), but got 3"),
    (lambda: fg.zeros(3, 4).t(), "float16", "self.stride(-1) must be 1 to view Float as Half "
                                            "(different element sizes), but got 4"),
    (lambda: fg.zeros(()), "float64", "self.dim() cannot be 0 to view Float as Double "
                                      "(different element sizes)"),
    (lambda: fg.zeros(3, 5, dtype=fg.int16)[:, 1:], "int32",
     "self.storage_offset() must be divisible by 2 to view Short as Int (different element "
     "sizes), but got 1"),
    (lambda: fg.zeros(3, 5, dtype=fg.int16)[:, :2], "int32",
     "self.stride(0) must be divisible by 2 to view Short as Int (different element sizes), "
     "but got 5"),
])
def test_view_dtype_errors(make, dt, msg):
    with pytest.raises(RuntimeError) as e:
        make().view(getattr(fg, dt))
    assert str(e.value) == msg


# --- views: storage sharing of the C-built views --------------------------------------------------

_VIEW_OPS = [
    lambda x: x.view(6, 4), lambda x: x.reshape(-1), lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(-1),
    lambda x: x[None].squeeze(), lambda x: x[:, None].squeeze(1), lambda x: x[None, :, None].squeeze((0, 2)),
    lambda x: x.transpose(0, 2), lambda x: x.permute(2, 0, 1), lambda x: x.mT, lambda x: x.T,
    lambda x: x[1], lambda x: x[:, 1], lambda x: x[1:, ::2], lambda x: x[-1, 1:3, -2],
    lambda x: x.narrow(2, 1, 2), lambda x: x.select(1, -1), lambda x: x[..., 1], lambda x: x[:, -5:9],
    lambda x: x[0, 0, :2].expand(3, 2), lambda x: x[:, :1].expand(2, 3, 4),
    lambda x: x[None, 1, None, :, None], lambda x: x[None], lambda x: x.diagonal(),
    lambda x: x.diagonal(1, 0, 2), lambda x: x.diagonal(-1, 2, 1), lambda x: x.diagonal(5, 1, 2),
]


@pytest.mark.parametrize("off, d1, d2", [(0, 0, 1), (1, 0, 2), (-1, 2, 1), (-2, 1, 2), (3, 1, 2),
                                         (-5, 0, 1), (2, -1, -2)])
def test_diagonal_values(off, d1, d2):
    x = R.standard_normal((3, 4, 5))
    np.testing.assert_array_equal(fg.tensor(x).diagonal(off, d1, d2).numpy(),
                                  np.diagonal(x, off, d1 % 3, d2 % 3))
    check_grad(lambda t: t.diagonal(off, d1, d2) * 1.0, [x],
               ref=lambda a: np.diagonal(a, off, d1 % 3, d2 % 3))


def test_getitem_fast_path_values():
    x = R.standard_normal((3, 4, 5))
    for key in [1, -1, slice(1, None), (None, 1), (1, None, slice(0, 5, 2)), (slice(None), -2),
                (None, None), (slice(-2, 10), 3, None, 4), slice(5, 9)]:
        np.testing.assert_array_equal(fg.tensor(x)[key].numpy(), x[key])


@pytest.mark.parametrize("op", _VIEW_OPS)
def test_views_share_storage_and_grads(op):
    base = R.standard_normal((2, 3, 4))
    x = fg.tensor(base.copy())
    v = op(x)
    assert v._base is x
    ref = op(fg.tensor(base.copy()))
    np.testing.assert_array_equal(v.numpy(), ref.numpy())
    x.add_(1)                                        # writes through the base show in the view
    np.testing.assert_array_equal(v.numpy(), ref.numpy() + 1)
    assert v.numel() == 0 or np.shares_memory(v.numpy(), x.numpy())
    check_grad(lambda t: op(t) * 1.0, [base])
    if op is not _VIEW_OPS[0]:                        # view(6, 4) needs a viewable layout
        check_grad(lambda t: op(t.permute(2, 1, 0)) * 1.0, [R.standard_normal((4, 3, 2))])


_VIEW_OPS += [lambda x: x.narrow(-1, -3, 2), lambda x: x.narrow(0, 1, 0), lambda x: x.flatten(1),
              lambda x: x.flatten(0, 1), lambda x: x.flatten(), lambda x: x.unflatten(2, (2, -1)),
              lambda x: x.unflatten(-1, [fg.tensor(2), 2])]


def test_narrow_flatten_unflatten_paths():
    y = fg.zeros(3, 4, requires_grad=True)
    v = y.narrow(1, -3, 2)
    assert type(v.grad_fn).__name__ == "SliceBackward0" and v.shape == (3, 2)
    assert v._version == y._version
    with fg.no_grad():
        y.add_(1)
    assert v._version == y._version == 1              # one counter shared with the base
    np.testing.assert_array_equal(v.detach().numpy(), np.ones((3, 2)))
    with pytest.raises(RuntimeError, match="narrow\\(\\) cannot be applied to a 0-dim tensor"):
        fg.tensor(1.0).narrow(0, 0, 1)
    with pytest.raises(RuntimeError, match="start \\(3\\) \\+ length \\(2\\) exceeds dimension size \\(4\\)"):
        y.narrow(1, 3, 2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        y.narrow(2, 0, 1)
    assert y.flatten().shape == (12,) and y.flatten(-1).shape == (3, 4)
    assert type(y.flatten().grad_fn).__name__ == "ViewBackward0"
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        y.flatten(1, 0)
    assert y.unflatten(1, (-1, 2)).shape == (3, 2, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        y.unflatten(1, (-1, -1))


def test_split_chunk_unbind_edges():
    x = fg.zeros(5, 2, requires_grad=True)
    parts = x.chunk(2)
    assert [tuple(p.shape) for p in parts] == [(3, 2), (2, 2)]
    assert type(parts[1].grad_fn).__name__ == "SplitBackward0"
    assert type(x.split([1, 4])[0].grad_fn).__name__ == "SplitWithSizesBackward0"
    with fg.no_grad():
        assert all(p.grad_fn is None for p in x.split(2))
    assert [tuple(p.shape) for p in fg.zeros(0).split(0)] == [(0,)]
    s = fg.tensor(1.0)
    with pytest.raises(RuntimeError, match="split expects at least a 1-dimensional tensor"):
        s.split(1)
    with pytest.raises(RuntimeError, match="chunk expects at least a 1-dimensional tensor"):
        s.chunk(2)
    with pytest.raises(IndexError, match="Dimension specified as 0 but tensor has no dimensions"):
        s.unbind(0)
    with pytest.raises(RuntimeError, match="split expects split_size be non-negative"):
        x.split(-1)
    with pytest.raises(RuntimeError, match="split_size can only be 0 if dimension size is 0"):
        x.split(0)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
        x.chunk(0)
    with pytest.raises(TypeError):
        x.chunk(2.0)
    w = fg.tensor(R.standard_normal((5, 2)))
    check_grad(lambda t: t.chunk(3)[1] * w[2:4] + t.split(1)[4].sum(), [R.standard_normal((5, 2))])


def test_view_errors_unchanged():
    x = fg.zeros(2, 3)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.t().view(6)
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        x.view(4, 2)
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size 2"):
        x[2]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(RuntimeError, match="must match the existing size"):
        x.expand(3, 4)
    assert x.t().reshape(6).grad_fn is None
    y = fg.zeros(2, 3, requires_grad=True)
    assert type(y.t().reshape(6).grad_fn).__name__ == "UnsafeViewBackward0"
    assert type(y.reshape(6).grad_fn).__name__ == "ViewBackward0"
    assert type(y[0].grad_fn).__name__ == "SelectBackward0"
    assert type(y[:, 1:].grad_fn).__name__ == "SliceBackward0"
    assert type(y.unsqueeze(0).grad_fn).__name__ == "UnsqueezeBackward0"
    assert type(y.squeeze().grad_fn).__name__ == "SqueezeBackward0"
    assert type(y.squeeze(0).grad_fn).__name__ == "SqueezeBackward1"
    assert type(y.expand(2, 2, 3).grad_fn).__name__ == "ExpandBackward0"
    assert type(y.permute(1, 0).grad_fn).__name__ == "PermuteBackward0"
    assert fg.zeros(0, 3).view(3, 0).shape == (3, 0)
    assert fg.zeros(2, 1).expand(2, 3).numpy().strides[1] == 0

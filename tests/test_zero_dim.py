"""0-d and 0-size tensors through forward, backward and double backward, plus the errors
PyTorch raises (or does not) around them. NumPy returns scalars, not arrays, for ufuncs and
reductions of 0-d inputs, and cannot reshape to (-1, 0): both used to surface as errors here."""
import numpy as np
import pytest

from _backend import REFERENCE, fg

try:
    import torch
except ImportError:
    torch = None

inf = float("inf")

# (id, f(T, x)) applied to a 0-d float32 x = 0.7 that requires grad
ZERO_DIM_OPS = [
    ("amax", lambda T, x: x.amax()),
    ("amin", lambda T, x: x.amin()),
    ("amax_dim", lambda T, x: x.amax(0)),
    ("max", lambda T, x: x.max()),
    ("max_dim", lambda T, x: x.max(0)[0]),
    ("silu", lambda T, x: T.nn.functional.silu(x)),
    ("gelu", lambda T, x: T.nn.functional.gelu(x)),
    ("gelu_tanh", lambda T, x: T.nn.functional.gelu(x, approximate="tanh")),
    ("elu", lambda T, x: T.nn.functional.elu(x)),
    ("leaky_relu", lambda T, x: T.nn.functional.leaky_relu(x, 0.1)),
    ("softplus", lambda T, x: T.nn.functional.softplus(x)),
    ("norm_inf", lambda T, x: x.norm(p=inf)),
    ("norm_neg_inf", lambda T, x: x.norm(p=-inf)),
    ("norm_2", lambda T, x: x.norm()),
    ("norm_3", lambda T, x: x.norm(p=3)),
    ("norm_dim", lambda T, x: x.norm(dim=0)),
    ("exp", lambda T, x: x.exp()),
    ("log", lambda T, x: x.log()),
    ("sqrt", lambda T, x: x.sqrt()),
    ("sigmoid", lambda T, x: x.sigmoid()),
    ("tanh", lambda T, x: x.tanh()),
    ("relu", lambda T, x: x.relu()),
    ("abs", lambda T, x: x.abs()),
    ("pow", lambda T, x: x ** 2.5),
    ("rpow", lambda T, x: 2 ** x),
    ("pow_tensor", lambda T, x: x.pow(x)),
    ("clamp", lambda T, x: x.clamp(0, 0.5)),
    ("softmax", lambda T, x: x.softmax(0)),
    ("log_softmax", lambda T, x: x.log_softmax(0)),
    ("logsumexp", lambda T, x: x.logsumexp(0)),
    ("cumsum", lambda T, x: x.cumsum(0)),
    ("prod", lambda T, x: x.prod()),
    ("prod_dim", lambda T, x: x.prod(0)),
    ("mean", lambda T, x: x.mean()),
    ("sum_dim", lambda T, x: x.sum(-1)),
    ("maximum", lambda T, x: T.maximum(x, T.tensor(0.1))),
    ("where", lambda T, x: T.where(x > 0, x, x * 2)),
    ("masked_fill", lambda T, x: x.masked_fill(x > 1, 1.0)),
    ("mse", lambda T, x: T.nn.functional.mse_loss(x, T.tensor(0.0))),
    ("bce_logits", lambda T, x: T.nn.functional.binary_cross_entropy_with_logits(
        x, T.tensor(1.0))),
    ("bce", lambda T, x: T.nn.functional.binary_cross_entropy(x.sigmoid(), T.tensor(1.0))),
    ("smooth_l1", lambda T, x: T.nn.functional.smooth_l1_loss(x, T.tensor(0.0))),
    ("l1", lambda T, x: T.nn.functional.l1_loss(x, T.tensor(0.0))),
    ("cross_entropy", lambda T, x: T.nn.functional.cross_entropy(x.reshape(1, 1),
                                                                  T.tensor([0]))),
    ("squeeze", lambda T, x: x.squeeze(0) * 2),
    ("unsqueeze", lambda T, x: x.unsqueeze(0) * 2),
    ("flip", lambda T, x: x.flip(0) * 2),
    ("movedim", lambda T, x: x.movedim(0, 0) * 2),
    ("expand", lambda T, x: x.expand(3) * T.tensor([1.0, 2.0, 3.0])),
    ("mul_view_inplace", lambda T, x: _inplace_on_0d_view(T, x)),
    ("index_bool", lambda T, x: x[T.tensor(True)] * 3),
    ("scatter_add", lambda T, x: x.scatter_add(0, T.tensor(0), x)),
]


def _inplace_on_0d_view(T, x):
    y = x * T.ones(3)
    y[0].mul_(2)
    return y


def _zero_dim(T, f, create_graph):
    x = T.tensor(0.7, requires_grad=True)
    out = f(T, x)
    (g,) = T.autograd.grad(out.sum(), x, create_graph=create_graph)
    gg = None
    if create_graph and g.requires_grad:
        (gg,) = T.autograd.grad(g, x, allow_unused=True)
    return out, g, gg


@pytest.mark.parametrize("create_graph", [False, True], ids=["grad", "double"])
@pytest.mark.parametrize("name,f", ZERO_DIM_OPS, ids=[o[0] for o in ZERO_DIM_OPS])
def test_zero_dim_op(name, f, create_graph):
    out, g, gg = _zero_dim(fg, f, create_graph)
    assert tuple(g.shape) == () and g.dtype == fg.float32
    assert np.isfinite(g.item())
    if torch is None:
        return
    tout, tg, tgg = _zero_dim(torch, f, create_graph)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5)
    assert tuple(out.shape) == tuple(tout.shape)
    np.testing.assert_allclose(g.item(), tg.item(), rtol=1e-5, atol=1e-7)
    if gg is not None and tgg is not None:
        np.testing.assert_allclose(gg.item(), tgg.item(), rtol=1e-4, atol=1e-6)


# --- 0-size ------------------------------------------------------------------------------------

def _empty_grads(T, f, *shapes):
    xs = [T.zeros(s, requires_grad=True) for s in shapes]
    out = f(T, *xs)
    out.sum().backward()
    return [tuple(out.shape)] + [(tuple(x.grad.shape), x.grad.sum().item()) for x in xs]


ZERO_SIZE = [
    ("addmm_k0", lambda T, c, a, b: T.addmm(c, a, b), (2, 3), (2, 0), (0, 3)),
    ("addmm_n0", lambda T, c, a, b: T.addmm(c, a, b), (2, 0), (2, 4), (4, 0)),
    ("addmm_m0", lambda T, c, a, b: T.addmm(c, a, b), (0, 3), (0, 4), (4, 3)),
    ("linear_in0", lambda T, x, w: T.nn.functional.linear(x, w), (2, 3, 0), (4, 0)),
    ("linear_out0", lambda T, x, w: T.nn.functional.linear(x, w), (2, 3, 5), (0, 5)),
    ("linear_bias_in0", lambda T, x, w, b: T.nn.functional.linear(x, w, b), (3, 0), (4, 0),
     (4,)),
    ("matmul_k0", lambda T, a, b: a @ b, (2, 0), (0, 3)),
    ("prod_dim0", lambda T, x: x.prod(0), (0, 3)),
    ("prod_dim1", lambda T, x: x.prod(1), (0, 3)),
    ("prod_all", lambda T, x: x.prod(), (0,)),
    ("max_dim1", lambda T, x: x.max(1)[0], (0, 3)),
    ("min_dim1", lambda T, x: x.min(1)[0], (0, 3)),
    ("amax_dim1", lambda T, x: x.amax(1), (0, 3)),
    ("norm_inf_dim1", lambda T, x: x.norm(p=inf, dim=1), (0, 3)),
    ("softmax", lambda T, x: x.softmax(1), (0, 3)),
    ("cumsum", lambda T, x: x.cumsum(0), (0, 3)),
]


@pytest.mark.parametrize("name,f,shapes", [(r[0], r[1], r[2:]) for r in ZERO_SIZE],
                         ids=[r[0] for r in ZERO_SIZE])
def test_zero_size_backward(name, f, shapes):
    got = _empty_grads(fg, f, *shapes)
    assert [s for s, _ in got[1:]] == [tuple(s) for s in shapes]
    if torch is not None:
        assert got == _empty_grads(torch, f, *shapes)


ZERO_SIZE_ERRORS = [
    ("max_dim0", lambda T: T.zeros(0, 3).max(0), IndexError),
    ("min_dim0", lambda T: T.zeros(0, 3).min(0), IndexError),
    ("max_all", lambda T: T.zeros(0, 3).max(), RuntimeError),
    ("amax_all", lambda T: T.zeros(0, 3).amax(), RuntimeError),
    ("amax_dim0", lambda T: T.zeros(0, 3).amax(0), IndexError),
    ("argmax_dim0", lambda T: T.zeros(0, 3).argmax(0), IndexError),
    ("norm_inf_all", lambda T: T.zeros(0, 3).norm(p=inf), RuntimeError),
    ("norm_inf_dim0", lambda T: T.zeros(0, 3).norm(p=-inf, dim=0), RuntimeError),
    ("index_select_empty_dim", lambda T: T.zeros(0, 3).index_select(0, T.tensor([0])),
     RuntimeError),
]


@pytest.mark.parametrize("name,f,exc", ZERO_SIZE_ERRORS, ids=[r[0] for r in ZERO_SIZE_ERRORS])
def test_zero_size_errors(name, f, exc):
    with pytest.raises(exc):
        f(fg)
    if torch is not None:
        with pytest.raises(exc):
            f(torch)


def test_chunk_of_empty_dim():
    """PyTorch gives `chunks` empty pieces when the dim is empty."""
    parts = fg.zeros(0, 3).chunk(3, 0)
    assert [tuple(p.shape) for p in parts] == [(0, 3)] * 3
    if torch is not None:
        assert [tuple(p.shape) for p in torch.zeros(0, 3).chunk(3, 0)] == [(0, 3)] * 3


# --- the rest of the error surface around in-place and autograd.Function ----------------------

def test_data_inplace_is_outside_autograd():
    """x.data.add_() (a manual SGD step) does not bump x's version: backward uses the new
    values, as PyTorch's does."""
    def run(T):
        x = T.ones(3, requires_grad=True)
        loss = (x * x).sum()
        x.data.add_(1)
        v = x._version
        loss.backward()
        return v, x.grad.tolist(), x.tolist()
    assert run(fg) == (0, [4.0, 4.0, 4.0], [2.0, 2.0, 2.0])
    if torch is not None:
        assert run(fg) == run(torch)


def test_data_shares_memory():
    x = fg.zeros(3)
    x.data[1] = 5.0
    assert x.tolist() == [0.0, 5.0, 0.0]


@pytest.mark.parametrize("op", ["add_", "mul_", "zero_", "fill_", "copy_", "setitem"])
def test_expanded_inplace_message(op):
    """NumPy marks an expanded array read-only; the error is PyTorch's. (PyTorch lets fill_,
    zero_ and setitem through, as every alias gets the same value; fastgrad refuses them.)"""
    y = fg.ones(3).expand(2, 3)
    f = {"add_": lambda: y.add_(1), "mul_": lambda: y.mul_(2), "zero_": lambda: y.zero_(),
         "fill_": lambda: y.fill_(2.0), "copy_": lambda: y.copy_(fg.zeros(2, 3)),
         "setitem": lambda: y.__setitem__(0, 1.0)}[op]
    if REFERENCE and op in ("zero_", "fill_", "setitem"):
        pytest.skip("PyTorch lets this one through")
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor "
                                           "refers to a single memory location"):
        f()
    if torch is not None and op in ("add_", "mul_", "copy_"):
        t = torch.ones(3).expand(2, 3)
        g = {"add_": lambda: t.add_(1), "mul_": lambda: t.mul_(2),
             "copy_": lambda: t.copy_(torch.zeros(2, 3))}[op]
        with pytest.raises(RuntimeError):
            g()


def test_save_for_backward_non_tensor():
    def run(T):
        class Fn(T.autograd.Function):
            @staticmethod
            def forward(ctx, t):
                ctx.save_for_backward(t, 5)
                return t * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2
        return Fn.apply(T.ones(2, requires_grad=True))
    with pytest.raises(TypeError, match="save_for_backward can only save variables, but "
                                        "argument 1 is of type int"):
        run(fg)
    if torch is not None:
        with pytest.raises(TypeError):
            run(torch)


@pytest.mark.parametrize("dims", [(0, 0), (1, -1), (0, 1, 0)])
def test_flip_repeated_dim(dims):
    with pytest.raises(RuntimeError, match="appears multiple times in the list of dims"):
        fg.ones(2, 3).flip(dims)
    if torch is not None:
        with pytest.raises(RuntimeError, match="appears multiple times"):
            torch.ones(2, 3).flip(dims)


@pytest.mark.parametrize("target,exc", [([1], None), ([1, 2], ValueError), ([[1]], RuntimeError),
                                        (1, None)])
@pytest.mark.parametrize("fname", ["nll_loss", "cross_entropy"])
def test_loss_1d_input_target(fname, target, exc):
    """A 1-D input is one sample: its target is 0-d or of size 1."""
    def run(T):
        f = getattr(T.nn.functional, fname)
        x = T.tensor([0.1, -0.4, 0.9], requires_grad=True)
        for reduction in ("none", "mean"):
            out = f(x, T.tensor(target), reduction=reduction)
            assert tuple(out.shape) == ()
        if isinstance(target, list):                 # PyTorch's own backward fails here
            return out.item(), None
        out.backward()
        return out.item(), x.grad.tolist()
    if exc is not None:
        with pytest.raises(exc):
            run(fg)
        if torch is not None:
            with pytest.raises(exc):
                run(torch)
        return
    got = run(fg)
    if torch is not None:
        want = run(torch)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        if want[1] is not None:
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)


def test_float16_unary_keeps_dtype():
    x = fg.tensor([0.5, 1.0, 2.0], dtype=fg.float16)
    for f in (lambda t: t.exp(), lambda t: t.sigmoid(), lambda t: t.sqrt(), lambda t: t.tanh()):
        y = f(x)
        assert y.dtype == fg.float16
        if torch is not None:
            ty = f(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float16))
            np.testing.assert_allclose(y.numpy().astype(np.float64),
                                       ty.numpy().astype(np.float64), rtol=2e-3)


def test_inplace_on_0d_view_of_nonleaf():
    """y = x * 1; y[0].mul_(2): the in-place op on a 0-d view rewrites y's history."""
    def run(T):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        y[0].mul_(2)
        y[2].add_(y[0])
        (y * T.tensor([1.0, 10.0, 100.0])).sum().backward()
        return y.tolist(), x.grad.tolist()
    assert run(fg) == ([2.0, 2.0, 5.0], [202.0, 10.0, 100.0])
    if torch is not None:
        assert run(fg) == run(torch)

"""Losses and fused activations (nn.functional / ops_loss): forward and gradients against
float64 central differences always, against PyTorch where installed, plus bad-input errors;
binary_cross_entropy at probabilities of exactly 0 and 1; the deprecated size_average/reduce
flags."""
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch
from _fd import check_grad

F = fg.nn.functional
RED = ["mean", "sum", "none"]


def _t(a, **kw):
    return fg.tensor(np.asarray(a), **kw)


# --- finite differences (always) ---------------------------------------------------------------

@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 3, 4)])
def test_cross_entropy_indices_fd(rng, reduction, shape):
    x = rng.standard_normal(shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    y = _t(rng.integers(0, c, tshape))
    check_grad(lambda a: F.cross_entropy(a, y, reduction=reduction), [x])


@pytest.mark.parametrize("reduction", RED)
def test_cross_entropy_weight_ignore_smoothing_fd(rng, reduction):
    x = rng.standard_normal((6, 4))
    y = _t(np.array([0, 1, 2, 3, 1, 2]))
    w = _t(rng.random(4) + 0.5, dtype=fg.float64)
    check_grad(lambda a: F.cross_entropy(a, y, weight=w, ignore_index=2, label_smoothing=0.15,
                                         reduction=reduction), [x])


@pytest.mark.parametrize("reduction", RED)
def test_cross_entropy_probabilities_fd(rng, reduction):
    x = rng.standard_normal((3, 4))
    q = rng.random((3, 4))
    q /= q.sum(1, keepdims=True)
    w = _t(rng.random(4) + 0.5, dtype=fg.float64)
    check_grad(lambda a, b: F.cross_entropy(a, b, weight=w, label_smoothing=0.1,
                                            reduction=reduction), [x, q])


@pytest.mark.parametrize("reduction", RED)
def test_nll_loss_fd(rng, reduction):
    x = rng.standard_normal((5, 3))
    y = _t(np.array([0, 2, 1, 1, 0]))
    check_grad(lambda a: F.nll_loss(a, y, reduction=reduction, ignore_index=1), [x])


@pytest.mark.parametrize("reduction", RED)
def test_mse_fd(rng, reduction):
    check_grad(lambda a, b: F.mse_loss(a, b, reduction=reduction),
               [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))])


@pytest.mark.parametrize("reduction", RED)
def test_bce_with_logits_fd(rng, reduction):
    pw = _t(rng.random(4) + 0.5, dtype=fg.float64)
    w = _t(rng.random(4), dtype=fg.float64)
    check_grad(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw,
                                                               reduction=reduction),
               [rng.standard_normal((3, 4)) * 3, rng.random((3, 4))])


@pytest.mark.parametrize("name, kw", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.7}),
                                      ("huber_loss", {"delta": 0.6})])
@pytest.mark.parametrize("reduction", RED)
def test_regression_losses_fd(rng, name, kw, reduction):
    x = rng.standard_normal((3, 4))
    y = x + rng.choice([-1.5, -0.3, 0.3, 1.5], size=(3, 4))     # away from the kinks
    check_grad(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kw), [x, y])


@pytest.mark.parametrize("reduction", RED)
def test_bce_fd(rng, reduction):
    x = rng.random((3, 4)) * 0.8 + 0.1
    check_grad(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction),
               [x, rng.random((3, 4))])


@pytest.mark.parametrize("fn", [lambda a: F.gelu(a), lambda a: F.gelu(a, approximate="tanh"),
                                lambda a: F.silu(a), lambda a: F.softplus(a, 2.0, 1.0),
                                lambda a: F.elu(a, 0.7), lambda a: F.leaky_relu(a, 0.2)])
def test_activation_fd(rng, fn):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5
    check_grad(fn, [x])


@pytest.mark.parametrize("fn", [
    lambda a: F.cross_entropy(a, _t(np.array([1, 0, 2]))),
    lambda a: F.mse_loss(a, _t(np.ones((3, 3)), dtype=fg.float64)),
    lambda a: F.binary_cross_entropy_with_logits(a, _t(np.full((3, 3), 0.3), dtype=fg.float64),
                                                 pos_weight=_t(np.array([1., 2., 3.]), dtype=fg.float64)),
    lambda a: F.gelu(a).sum(), lambda a: F.silu(a).sum(), lambda a: F.softplus(a).sum(),
    lambda a: F.elu(a).sum()])
def test_double_backward_fd(rng, fn):
    """The gradient itself is differentiable (create_graph): d/dx sum(v * grad)."""
    x0 = rng.standard_normal((3, 3))
    v = rng.standard_normal((3, 3))

    def grad_dot_v(a):
        with fg.enable_grad():             # check_grad evaluates its perturbations under no_grad
            if not a.requires_grad:
                a = a.detach().requires_grad_()
            g, = fg.autograd.grad(fn(a), a, create_graph=True)
            return (g * _t(v, dtype=fg.float64)).sum()

    check_grad(grad_dot_v, [x0])


def test_embedding_grad_fd(rng):
    idx = _t(np.array([[0, 2], [2, 3]]))
    check_grad(lambda w: F.embedding(idx, w), [rng.standard_normal((4, 3))])
    w = _t(rng.standard_normal((4, 3)), dtype=fg.float64, requires_grad=True)
    F.embedding(idx, w, padding_idx=2).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [[1] * 3, [0] * 3, [0] * 3, [1] * 3])


# --- closed forms and names ----------------------------------------------------------------------

def test_cross_entropy_closed_form_and_name():
    x = _t(np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), requires_grad=True)
    y = _t(np.array([2, 0]))
    loss = F.cross_entropy(x, y)
    lse0 = np.log(np.exp([1, 2, 3]).sum())
    expected = ((lse0 - 3) + np.log(3.0)) / 2
    assert abs(loss.item() - expected) < 1e-6
    assert loss.grad_fn.name() == "NllLossBackward0"
    assert F.mse_loss(x, x.detach()).grad_fn.name() == "MseLossBackward0"
    loss.backward()
    p = np.exp(x.detach().numpy())
    p /= p.sum(1, keepdims=True)
    p[[0, 1], [2, 0]] -= 1
    np.testing.assert_allclose(x.grad.numpy(), p / 2, rtol=1e-6)


def test_cross_entropy_all_ignored_is_nan():
    x = _t(np.zeros((2, 3)), requires_grad=True)
    assert np.isnan(F.cross_entropy(x, _t(np.array([-100, -100]))).item())


def test_no_graph_under_no_grad():
    x = _t(np.zeros((2, 3)), requires_grad=True)
    with fg.no_grad():
        out = F.cross_entropy(x, _t(np.array([0, 1])))
    assert out.grad_fn is None and not out.requires_grad


# --- bad input -----------------------------------------------------------------------------------

def test_cross_entropy_float_target_wrong_shape():
    x = fg.zeros(3, 5)
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got Float"):
        F.cross_entropy(x, fg.zeros(3))


def test_cross_entropy_int32_target():
    with pytest.raises(RuntimeError, match="Long"):
        F.cross_entropy(fg.zeros(3, 5), fg.zeros(3, dtype=fg.int32))


def test_cross_entropy_batch_mismatch():
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                                         r"batch_size \(4\)"):
        F.cross_entropy(fg.zeros(3, 5), fg.zeros(4, dtype=fg.int64))


def test_cross_entropy_target_out_of_bounds():
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.cross_entropy(fg.zeros(2, 5), _t(np.array([1, 7])))


def test_bce_with_logits_shape_mismatch():
    with pytest.raises(ValueError, match=r"Target size .* must be the same as input size"):
        F.binary_cross_entropy_with_logits(fg.zeros(3, 2), fg.zeros(3))


def test_bce_input_out_of_range():
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(_t(np.array([1.5, 0.2])), _t(np.array([1.0, 0.0])))


def test_mse_broadcast_warns():
    with pytest.warns(UserWarning, match="different to the input size"):
        out = F.mse_loss(fg.zeros(3, 1), fg.ones(3))
    assert tuple(out.shape) == ()


def test_bad_reduction():
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(fg.zeros(2), fg.zeros(2), reduction="avg")


def test_loss_module_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(2\).*\(3\)"):
        fg.nn.CrossEntropyLoss()(fg.zeros(2, 4), fg.zeros(3, dtype=fg.int64))


# --- against PyTorch -----------------------------------------------------------------------------

CASES = [
    ("CrossEntropyLoss", {}, "idx"), ("CrossEntropyLoss", {"label_smoothing": 0.2}, "idx"),
    ("CrossEntropyLoss", {"ignore_index": 1}, "idx"), ("CrossEntropyLoss", {"weight": "w"}, "idx"),
    ("CrossEntropyLoss", {}, "prob"), ("NLLLoss", {"weight": "w"}, "idx"),
    ("MSELoss", {}, "real"), ("L1Loss", {}, "real"), ("SmoothL1Loss", {"beta": 0.5}, "real"),
    ("HuberLoss", {"delta": 0.5}, "real"), ("BCELoss", {}, "bce"),
    ("BCEWithLogitsLoss", {"pos_weight": "pw"}, "prob01"),
]


@pytest.mark.parametrize("name, kw, kind", CASES)
@pytest.mark.parametrize("reduction", RED)
def test_losses_vs_torch(rng, name, kw, kind, reduction):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 4)).astype(np.float32)
    if kind == "bce":
        x = (rng.random((6, 4)) * 0.9 + 0.05).astype(np.float32)
    y = {"idx": lambda: np.array([0, 1, 3, 2, 1, 1]),
         "prob": lambda: rng.dirichlet(np.ones(4), 6).astype(np.float32),
         "prob01": lambda: rng.random((6, 4)).astype(np.float32),
         "bce": lambda: rng.random((6, 4)).astype(np.float32),
         "real": lambda: rng.standard_normal((6, 4)).astype(np.float32)}[kind]()
    extra = {"w": rng.random(4).astype(np.float32) + 0.5,
             "pw": rng.random(4).astype(np.float32) + 0.5}

    def build(lib):
        kws = {k: (lib.tensor(extra[v]) if isinstance(v, str) else v) for k, v in kw.items()}
        return getattr(lib.nn, name)(reduction=reduction, **kws)

    xf, xt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_f = build(fg)(xf, fg.tensor(y))
    out_t = build(torch)(xt, torch.tensor(y))
    np.testing.assert_allclose(out_f.detach().numpy(), out_t.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    g = rng.standard_normal(tuple(out_t.shape)).astype(np.float32)
    out_f.backward(fg.tensor(g))
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert repr(build(fg)) == repr(build(torch))


@pytest.mark.parametrize("name, kw", [("GELU", {}), ("GELU", {"approximate": "tanh"}),
                                      ("SiLU", {}), ("ELU", {"alpha": 0.5}),
                                      ("LeakyReLU", {"negative_slope": 0.2}),
                                      ("Softplus", {"beta": 2.0, "threshold": 1.0}),
                                      ("ReLU", {}), ("Sigmoid", {}), ("Tanh", {})])
def test_activations_vs_torch(rng, name, kw):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((5, 7)) * 3).astype(np.float32)
    xf, xt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    mf, mt = getattr(fg.nn, name)(**kw), getattr(torch.nn, name)(**kw)
    yf, yt = mf(xf), mt(xt)
    np.testing.assert_allclose(yf.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    yf.backward(fg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert yf.grad_fn.name() == yt.grad_fn.name()
    assert repr(mf) == repr(mt)


# --- the compiled fast paths and the general paths agree -----------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_fast_path_target_grad_and_strided_fallback(rng, reduction, dtype):
    """Contiguous same-shape operands take the one-pass loop; a transposed input the general
    path: both give d/dx = 2(x - y)/n and d/dy = -d/dx."""
    a = rng.standard_normal((4, 3)).astype(dtype)
    b = rng.standard_normal((4, 3)).astype(dtype)
    n = a.size if reduction == "mean" else 1
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for x_arr, y_arr in ((a, b), (np.ascontiguousarray(a.T).T, b)):
        x, y = _t(x_arr, requires_grad=True), _t(y_arr, requires_grad=True)
        out = F.mse_loss(x, y, reduction=reduction)
        assert out.dtype == x.dtype and type(out.grad_fn).__name__ == "MseLossBackward0"
        np.testing.assert_allclose(out.item(), ((a - b) ** 2).sum() / n, rtol=tol)
        (out * 3).backward()
        np.testing.assert_allclose(x.grad.numpy(), 6 * (a - b) / n, rtol=tol, atol=tol)
        np.testing.assert_allclose(y.grad.numpy(), -6 * (a - b) / n, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_fast_path_vs_torch(rng, dtype, reduction):
    """Class indices, no weight/smoothing: the compiled target scan, loss sum and fused
    softmax - onehot backward; with an ignored target the general path."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((33, 10)).astype(dtype)
    for y in (rng.integers(0, 10, 33), np.r_[rng.integers(0, 10, 32), -100]):
        outs = []
        for lib in (torch, fg):
            xt = lib.tensor(x, requires_grad=True)
            loss = lib.nn.functional.cross_entropy(xt, lib.tensor(y), reduction=reduction)
            (loss * 2).backward()
            outs.append((loss.item(), xt.grad.numpy()))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=tol)
        np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=tol, atol=tol)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's message names the value")
def test_cross_entropy_out_of_bounds_names_the_value():
    x = _t(np.zeros((3, 4)), requires_grad=True)
    for bad in (4, -1):
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
            F.cross_entropy(x, _t(np.array([0, bad, 1])))


# --- binary_cross_entropy at probabilities of exactly 0 and 1 ----------------------------------
# The loss clamps each log at -100 and the input gradient is g w (x - y) / max(x (1 - x), eps)
# with eps = 1e-12 rounded to float32 (PyTorch's formula): finite where x is 0 or 1. Inputs or
# targets outside [0, 1] (NaN included) raise RuntimeError. Expectations are closed forms; torch,
# where installed, is run on the same cases.

X = [0.0, 1.0, 0.5, 0.0, 1.0, 0.25]
Y = [0.0, 1.0, 1.0, 1.0, 0.0, 0.5]
W = [1.0, 2.0, 0.5, 3.0, 1.5, 2.0]


def _expected(x, y, w, reduction):
    x, y, w = (np.asarray(v, dtype=np.float64) for v in (x, y, w))
    with np.errstate(divide="ignore"):
        lx, l1x = np.maximum(np.log(x), -100.0), np.maximum(np.log(1 - x), -100.0)
        gy = -(np.log(x) - np.log(1 - x))
    loss = -w * (y * lx + (1 - y) * l1x)
    gx = w * (x - y) / np.maximum(x * (1 - x), float(np.float32(1e-12)))
    gy = w * gy
    if reduction == "mean":
        return loss.mean(), gx / x.size, gy / x.size
    if reduction == "sum":
        return loss.sum(), gx, gy
    return loss, gx, gy


def _run(T, reduction, weighted):
    x = T.tensor(X, dtype=T.float64, requires_grad=True)
    y = T.tensor(Y, dtype=T.float64, requires_grad=True)
    w = T.tensor(W, dtype=T.float64) if weighted else None
    loss = T.nn.functional.binary_cross_entropy(x, y, weight=w, reduction=reduction)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy(), y.grad.numpy()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_at_zero_and_one(reduction, weighted):
    got = _run(fg, reduction, weighted)
    expected = _expected(X, Y, W if weighted else [1.0] * len(X), reduction)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    assert np.isfinite(got[1]).all()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_matches_torch(reduction, weighted):
    torch = pytest.importorskip("torch")
    for g, e in zip(_run(fg, reduction, weighted), _run(torch, reduction, weighted)):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_bce_module_with_weight():
    x = fg.tensor([0.0, 0.5], dtype=fg.float64, requires_grad=True)
    y = fg.tensor([0.0, 1.0], dtype=fg.float64)
    loss = fg.nn.BCELoss(weight=fg.tensor([2.0, 4.0], dtype=fg.float64))(x, y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 4.0 * np.log(2.0) / 2, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -4.0], rtol=1e-12)


def test_bce_float32_edges_finite():
    x = fg.tensor([0.0, 1.0, 1.0], requires_grad=True)
    y = fg.tensor([1.0, 0.0, 1.0])
    loss = F.binary_cross_entropy(x, y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 200.0 / 3, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [-1e12 / 3, 1e12 / 3, 0.0], rtol=1e-6)


@pytest.mark.parametrize("x,y,which", [
    ([float("nan")], [0.0], "input"),
    ([1.5], [0.0], "input"),
    ([-0.1], [0.0], "input"),
    ([0.5], [2.0], "target"),
    ([0.5], [-0.1], "target"),
    ([0.5], [float("nan")], "target"),
])
def test_bce_out_of_range_raises(x, y, which):
    with pytest.raises(RuntimeError, match=f"all elements of {which} should be between 0 and 1"):
        F.binary_cross_entropy(fg.tensor(x), fg.tensor(y))


def test_bce_gradgradcheck():
    x = fg.tensor([0.2, 0.7, 0.5], dtype=fg.float64, requires_grad=True)
    y = fg.tensor([0.1, 0.9, 0.3], dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda a, b: F.binary_cross_entropy(a, b), (x, y))
    w = fg.tensor([1.0, 2.0, 0.5], dtype=fg.float64)
    assert fg.autograd.gradgradcheck(
        lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction="sum"), (x, y))


# -- class losses of integer logits: NotImplementedError --

def test_cross_entropy_and_nll_loss_of_ints_raise_not_implemented():
    target = fg.tensor([0, 1])
    with pytest.raises(NotImplementedError, match="not implemented for"):
        F.cross_entropy(fg.tensor([[0, 2], [2, 0]]), target, label_smoothing=0.1)
    with pytest.raises(NotImplementedError, match="not implemented for"):
        F.nll_loss(fg.tensor([[0, 2], [2, 0]]), target)


# --- the deprecated size_average / reduce flags (VAE tutorials: size_average=False) ------------

def _pair():
    g = fg.Generator().manual_seed(1)
    p = fg.rand(4, 5, generator=g) * 0.9 + 0.05
    q = fg.rand(4, 5, generator=g)
    return p, q


LEGACY_CASES = [
    (dict(size_average=False), "sum"),
    (dict(size_average=True), "mean"),
    (dict(reduce=False), "none"),
    (dict(size_average=False, reduce=True), "sum"),
    (dict(size_average=True, reduce=False), "none"),
]


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("flags,reduction", LEGACY_CASES)
def test_functional_losses_honour_size_average_and_reduce(name, flags, reduction):
    p, q = _pair()
    fn = getattr(F, name)
    with pytest.warns(UserWarning, match=f"please use reduction='{reduction}'"):
        got = fn(p, q, **flags)
    want = fn(p, q, reduction=reduction)
    assert got.shape == want.shape and np.allclose(got.numpy(), want.numpy(), rtol=0, atol=0)
    if reduction == "sum":
        assert np.allclose(got.item(), fn(p, q, reduction="none").sum().item(), rtol=1e-6)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("flags,reduction", LEGACY_CASES)
def test_class_losses_honour_size_average_and_reduce(name, flags, reduction):
    logits, _ = _pair()
    target = fg.tensor([0, 4, 2, 1])
    inp = logits if name == "cross_entropy" else F.log_softmax(logits, 1)
    fn = getattr(F, name)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        got = fn(inp, target, **flags)
    assert np.array_equal(got.numpy(), fn(inp, target, reduction=reduction).numpy())


def test_bce_size_average_false_is_the_sum_torch_gives():
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    p, q = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.nn.functional.binary_cross_entropy(torch.tensor(p.numpy()),
                                                       torch.tensor(q.numpy()),
                                                       size_average=False)
        got = F.binary_cross_entropy(p, q, size_average=False)
    assert abs(ref.item() - got.item()) <= 1e-6 * abs(ref.item())


def test_loss_modules_still_take_the_flags():
    p, q = _pair()
    with pytest.warns(UserWarning, match="reduction='sum'"):
        m = fg.nn.MSELoss(size_average=False)
    assert m.reduction == "sum"
    assert np.array_equal(m(p, q).numpy(), F.mse_loss(p, q, reduction="sum").numpy())
    assert fg.nn.L1Loss().reduction == "mean"


@pytest.mark.skipif(REFERENCE, reason="fastgrad's warning location")
@pytest.mark.parametrize("call", [
    lambda: F.binary_cross_entropy(fg.rand(3), fg.rand(3), size_average=False),
    lambda: F.cross_entropy(fg.rand(3, 4), fg.tensor([0, 1, 2]), size_average=False),
    lambda: F.l1_loss(fg.rand(3), fg.rand(3), reduce=False),
    lambda: fg.nn.MSELoss(size_average=False)(fg.rand(3), fg.rand(3)),
])
def test_size_average_warning_points_at_the_callers_line(call):
    """The deprecation warning names the user's line, whichever Python wrappers (or none) lie
    between it and the compiled loss."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    hits = [w for w in caught if "size_average and reduce" in str(w.message)]
    assert hits and all(w.filename == __file__ for w in hits), [(w.filename, w.lineno) for w in hits]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cross_entropy_minus_inf_logits_of_other_classes(dtype):
    """A -inf logit of a class that is not the target adds nothing (0 * -inf was nan on the
    paths that weigh every class: float16, class weights, ignore_index); with label smoothing
    every class counts, and the loss is inf."""
    x = fg.tensor([[-np.inf, 1.0, 2.0], [0.5, -np.inf, 1.0]], dtype=getattr(fg, dtype))
    y = fg.tensor([1, 0])
    want = [np.log(np.exp(1) + np.exp(2)) - 1, np.log(np.exp(0.5) + np.exp(1)) - 0.5]
    tol = 2e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(F.cross_entropy(x, y, reduction="none").float().numpy(), want,
                               rtol=tol)
    w = fg.tensor([1.0, 2.0, 3.0], dtype=getattr(fg, dtype))
    np.testing.assert_allclose(float(F.cross_entropy(x, y, weight=w)),
                               (2 * want[0] + want[1]) / 3, rtol=tol)
    np.testing.assert_allclose(float(F.cross_entropy(x, fg.tensor([1, -100]))), want[0],
                               rtol=tol)
    assert float(F.cross_entropy(x, y, label_smoothing=0.1)) == np.inf

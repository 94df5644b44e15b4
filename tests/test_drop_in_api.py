"""API details that public PyTorch programs lean on, found by running them with only their import
lines changed: each test names the kind of program that needed it. Fixed expectations, and the
same values as PyTorch where it is installed (FASTGRAD_TEST_BACKEND=torch runs the file on
PyTorch)."""
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE

F = fg.nn.functional


def _torch():
    if REFERENCE:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- indexing with a Python range (forward-forward MNIST: x_[range(n), y] = x.max()) ------------

def test_index_with_range_reads_like_a_list():
    x = fg.arange(12.0).reshape(4, 3)
    assert x[range(2)].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x[range(4), [0, 1, 2, 0]].tolist() == [0.0, 4.0, 8.0, 9.0]
    assert x[:, range(1, 3)].tolist() == [[1, 2], [4, 5], [7, 8], [10, 11]]
    assert x[range(0)].shape == (0, 3)


def test_assign_with_range_and_labels():
    x = fg.zeros(3, 4)
    y = fg.tensor([2, 0, 3])
    x[range(x.shape[0]), y] = 7.0
    assert x.tolist() == [[0, 0, 7, 0], [7, 0, 0, 0], [0, 0, 0, 7]]


def test_range_index_gradient():
    x = fg.arange(6.0, requires_grad=True)
    x[range(1, 6, 2)].sum().backward()
    assert x.grad.tolist() == [0, 1, 0, 1, 0, 1]


# --- scalar exponents PyTorch computes by products (regression example: x ** i features) -------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_small_integer_exponents_are_products(dtype):
    g = fg.Generator().manual_seed(0)
    x = fg.rand(4096, generator=g, dtype=getattr(fg, dtype)) * 4 + 0.01
    a = x.numpy()
    one = a.dtype.type(1)
    assert np.array_equal((x ** 3).numpy(), a * a * a)
    assert np.array_equal((x ** -1).numpy(), one / a)
    assert np.array_equal((x ** -2).numpy(), one / (a * a))
    assert np.array_equal((x ** -0.5).numpy(), one / np.sqrt(a))
    assert np.array_equal(fg.pow(x, 3).numpy(), a * a * a)


def test_pow_matches_torch_bit_for_bit():
    torch = _torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    t = (torch.rand(4096) * 4 - 2).requires_grad_()
    x = fg.tensor(t.detach().numpy(), requires_grad=True)
    for e in (2, 3, -1, -2, -0.5):
        ref, got = t ** e, x ** e
        assert np.array_equal(ref.detach().numpy(), got.detach().numpy(), equal_nan=True), e
    # the gradient is grad * (e * x ** (e - 1)), rounded in that order
    g = torch.rand(4096)
    (t ** 3).backward(g)
    (x ** 3).backward(fg.tensor(g.numpy()))
    assert np.array_equal(t.grad.numpy(), x.grad.numpy())


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
    torch = _torch()
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


# --- in-place pointwise forms, in-place reshapes, cross (introyt tensors tutorial) -------------

def test_inplace_pointwise_methods_and_functions():
    x = fg.tensor([0.25, 1.0, 4.0])
    assert x.sqrt_() is x and x.tolist() == [0.5, 1.0, 2.0]
    assert fg.exp_(fg.zeros(2)).tolist() == [1.0, 1.0]
    assert fg.tensor([-1.5, 2.0]).abs_().tolist() == [1.5, 2.0]
    assert fg.tensor([-1.0, 2.0]).neg_().tolist() == [1.0, -2.0]
    assert fg.tensor([-1.0, 2.0]).relu_().tolist() == [0.0, 2.0]
    assert fg.tensor([0.0]).sigmoid_().tolist() == [0.5]
    assert fg.tensor([2.0, 3.0]).pow_(2).tolist() == [4.0, 9.0]
    b = fg.tensor([0.0, 1.0])
    assert fg.sin_(b) is b and b[0].item() == 0.0
    w = fg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.exp_()


def test_inplace_pointwise_gradient_flows_through():
    w = fg.tensor([0.5, 2.0], requires_grad=True)
    y = w * 3
    y.tanh_()
    y.sum().backward()
    assert np.allclose(w.grad.numpy(), 3 * (1 - np.tanh(np.array([1.5, 6.0])) ** 2),
                       rtol=1e-3, atol=1e-6)


def test_squeeze_unsqueeze_in_place():
    b = fg.rand(3, 4)
    assert b.unsqueeze_(0) is b and b.shape == (1, 3, 4)
    assert b.squeeze_(0).shape == (3, 4) and b.t_().shape == (4, 3)
    assert b.transpose_(0, 1).shape == (3, 4)
    w = fg.rand(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        w.unsqueeze_(0)


def test_cross_product():
    v1, v2 = fg.tensor([1.0, 0.0, 0.0]), fg.tensor([0.0, 1.0, 0.0])
    assert fg.linalg.cross(v2, v1).tolist() == [0.0, 0.0, -1.0]
    assert fg.cross(v1, v2, dim=0).tolist() == [0.0, 0.0, 1.0]
    with pytest.warns(UserWarning, match="without specifying the dim"):
        assert fg.cross(v2, v1).tolist() == [0.0, 0.0, -1.0]
    a = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = fg.tensor([[7.0, 8.0, 10.0]])
    c = fg.linalg.cross(a, b)
    assert c.tolist() == np.cross(a.detach().numpy(), b.numpy()).tolist()
    c.sum().backward()
    # d/da sum(a x b) = b x (1, 1, 1)
    assert a.grad.tolist() == [np.cross(b.numpy()[0], np.ones(3)).tolist()] * 2
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        fg.linalg.cross(a, fg.tensor([7.0, 8.0, 10.0]))
    with pytest.raises(RuntimeError, match="must have length 3"):
        fg.linalg.cross(fg.rand(2, 4), fg.rand(2, 4))


def test_cross_matches_torch():
    torch = _torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    got = fg.linalg.cross(fg.tensor(a.numpy()), fg.tensor(b.numpy()))
    # PyTorch's kernel may fuse a multiply-add: equal to the last bit or so
    assert np.allclose(got.numpy(), torch.linalg.cross(a, b).numpy(), rtol=1e-6, atol=1e-7)


# --- NumPy's axis / keepdims spellings and dtype= on sum and mean (makemore: sum(1, keepdims=True))

def test_sum_mean_accept_axis_and_keepdims():
    x = fg.arange(6.0).reshape(2, 3)
    assert x.sum(1, keepdims=True).tolist() == [[3.0], [12.0]]
    assert x.sum(axis=0).tolist() == [3.0, 5.0, 7.0]
    assert fg.sum(x, axis=1, keepdims=True).shape == (2, 1)
    assert x.mean(axis=0).tolist() == [1.5, 2.5, 3.5]
    assert fg.mean(x, 1, keepdims=True).tolist() == [[1.0], [4.0]]
    with pytest.raises(TypeError):
        x.sum(dim=1, axis=1)


def test_sum_mean_dtype_casts_first():
    x = fg.tensor([1.0, 2.0, 1e-8])
    assert x.sum(dtype=fg.float64).dtype == fg.float64
    assert fg.sum(x, 0, dtype=fg.float64).dtype == fg.float64
    assert x.mean(dtype=fg.float64).dtype == fg.float64
    assert fg.tensor([1, 2]).sum(dtype=fg.float32).dtype == fg.float32
    w = fg.ones(3, requires_grad=True)
    w.sum(dtype=fg.float64).backward()
    assert w.grad.dtype == fg.float32 and w.grad.tolist() == [1.0, 1.0, 1.0]


# --- histogram (makemore part 3 plots activation statistics with it) ---------------------------

def test_histogram_counts_and_edges():
    x = fg.tensor([0.0, 0.1, 0.5, 0.9, 1.0, 2.0])
    hist, edges = fg.histogram(x, bins=2, range=(0.0, 1.0))
    assert hist.tolist() == [2.0, 3.0] and edges.tolist() == [0.0, 0.5, 1.0]
    r = fg.histogram(x, 4)
    assert r.hist.tolist() == [2.0, 2.0, 1.0, 1.0] and r.bin_edges.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    d = fg.histogram(x, fg.tensor([0.0, 1.0, 2.0]), density=True)
    assert np.allclose(d.hist.numpy(), [4 / 6, 2 / 6])
    assert r.hist.dtype == fg.float32
    with pytest.raises(NotImplementedError):
        fg.histogram(fg.arange(5), 3)


def test_histogram_matches_torch():
    torch = _torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    t = torch.randn(1000)
    ref, got = torch.histogram(t, density=True), fg.histogram(fg.tensor(t.numpy()), density=True)
    assert np.allclose(got.hist.numpy(), ref.hist.numpy(), rtol=1e-5)
    assert np.allclose(got.bin_edges.numpy(), ref.bin_edges.numpy(), atol=1e-6)


# --- diag and rsqrt (graph convolution examples build D^-1/2 with them) -------------------------

def test_diag_builds_and_reads_diagonals():
    v = fg.tensor([1.0, -2.0, 3.0])
    assert fg.diag(v).tolist() == [[1, 0, 0], [0, -2, 0], [0, 0, 3]]
    assert fg.diag(v, 1).shape == (4, 4) and fg.diag(v, 1)[0, 1].item() == 1.0
    assert fg.diag(v, -2)[4, 2].item() == 3.0 and fg.diag(v, -2).sum().item() == 2.0
    m = fg.arange(9.0).reshape(3, 3)
    assert fg.diag(m).tolist() == [0, 4, 8] and m.diag(1).tolist() == [1, 5]
    assert fg.diag(fg.tensor([1, 2])).dtype == fg.int64
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    (fg.diag(w) * fg.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert w.grad.tolist() == [1.0, 4.0]
    with pytest.raises(RuntimeError, match="1D or 2D"):
        fg.diag(fg.zeros(2, 2, 2))


def test_rsqrt_is_one_over_sqrt():
    x = fg.tensor([0.25, 4.0, 2.0])
    a = x.numpy()
    assert np.array_equal(fg.rsqrt(x).numpy(), np.float32(1) / np.sqrt(a))
    assert np.array_equal(x.rsqrt().numpy(), np.float32(1) / np.sqrt(a))
    w = fg.tensor([4.0], requires_grad=True)
    w.rsqrt().backward()
    assert w.grad.tolist() == [-0.0625]                 # -1/2 * 4 ** -1.5


AXIS_CALLS = [
    ("max", lambda m, x: m.max(x, axis=1)[0]), ("min_method", lambda m, x: x.min(axis=0)[1]),
    ("prod", lambda m, x: x.prod(axis=1)), ("std", lambda m, x: x.std(axis=0, keepdims=True)),
    ("var", lambda m, x: m.var(x, axis=1)), ("argmax", lambda m, x: x.argmax(axis=1)),
    ("amax", lambda m, x: x.amax(axis=0, keepdims=True)), ("cumsum", lambda m, x: x.cumsum(axis=1)),
    ("logsumexp", lambda m, x: m.logsumexp(x, axis=1)), ("softmax", lambda m, x: x.softmax(axis=0)),
    ("any", lambda m, x: (x > 0).any(axis=1)), ("sum", lambda m, x: m.sum(x, axis=0, keepdims=True)),
]


@pytest.mark.parametrize("name, call", AXIS_CALLS, ids=[c[0] for c in AXIS_CALLS])
def test_axis_and_keepdims_are_aliases_of_dim_and_keepdim(name, call):
    x0 = np.array([[1.0, -2.0, 3.5], [0.5, 4.0, -1.0]], dtype=np.float32)
    got = call(fg, fg.tensor(x0)).numpy()
    dim_form = {"max": lambda x: np.max(x, 1), "min_method": lambda x: np.argmin(x, 0),
                "prod": lambda x: np.prod(x, 1), "std": lambda x: np.std(x, 0, ddof=1, keepdims=True),
                "var": lambda x: np.var(x, 1, ddof=1), "argmax": lambda x: np.argmax(x, 1),
                "amax": lambda x: np.max(x, 0, keepdims=True), "cumsum": lambda x: np.cumsum(x, 1),
                "logsumexp": lambda x: np.log(np.exp(x).sum(1)),
                "softmax": lambda x: np.exp(x) / np.exp(x).sum(0), "any": lambda x: (x > 0).any(1),
                "sum": lambda x: x.sum(0, keepdims=True)}[name](x0.astype(np.float64))
    np.testing.assert_allclose(got, dim_form, rtol=1e-6)
    with pytest.raises(TypeError):
        fg.tensor(x0).max(dim=0, axis=1)

"""Indexing: x[key] for every key kind (Python ranges included), setitem with and without grad
(CopySlices), in-place writes through views, gather/scatter_add/index_select/masked_fill (its
nodes, and integer tensors filled with values they cannot hold)/take_along_dim, repeat_interleave."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from _fd import check_grad

R = np.random.default_rng(5)


def arr(*shape):
    return R.standard_normal(shape)


def _t(a, rg=True, dtype=None):
    return fg.tensor(np.array(a, dtype=dtype or np.float64), requires_grad=rg)


KEYS = [0, -1, (1, 2), slice(1, None), slice(None, None, 2), (slice(None), 1), (Ellipsis, 0),
        (None, 1), (0, None, slice(1, 3)), ([0, 2, 2],), (slice(None), [3, 0]),
        ([0, 1], [1, 2]), (1, [0, -1]), (Ellipsis, None)]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_getitem_values_and_grads(key):
    check_grad(lambda x: x[key], [arr(3, 4)], ref=lambda x: x[key])


def test_getitem_tensor_and_mask_keys():
    m = np.array([[True, False, True, False]] * 3)
    check_grad(lambda x: x[fg.tensor(m)], [arr(3, 4)], ref=lambda x: x[m])
    check_grad(lambda x: x[fg.tensor([2, 0, 2])], [arr(3, 4)], ref=lambda x: x[[2, 0, 2]])
    check_grad(lambda x: x[x > 0], [arr(5)], ref=lambda x: x[x > 0])
    check_grad(lambda x: x[:, fg.tensor([True, False, True])], [arr(2, 3)])


def test_getitem_noncontiguous_and_0d():
    check_grad(lambda x: x.t()[1:, ::2][0], [arr(3, 4)], ref=lambda x: x.T[1:, ::2][0])
    check_grad(lambda x: x[...], [arr()], ref=lambda x: x)
    check_grad(lambda x: x[None], [arr()], ref=lambda x: x[None])
    check_grad(lambda x: x[1:1], [arr(3)], ref=lambda x: x[1:1])


def test_index_bounds():
    x = fg.randn(3, 4)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[5]
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 0 with size 3"):
        x[-5]
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 1 with size 4"):
        x[:, 7]
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 0 with size 3"):
        x[fg.tensor([0, 9])]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    # PyTorch 2.13 raises RuntimeError here on one kernel path and IndexError on another;
    # fastgrad raises IndexError for every out-of-range index
    with pytest.raises((IndexError, RuntimeError) if REFERENCE else IndexError):
        x.index_select(1, fg.tensor([4]))
    with pytest.raises(IndexError):
        x[0, 0] = x[9, 0]


def test_setitem_no_grad_and_plain():
    x = fg.zeros(3, 4)
    x[1] = 2.0
    x[:, 0] = fg.tensor([1.0, 2.0, 3.0])
    x[x > 2.5] = -1.0
    x[[0, 2], [3, 3]] = 9.0
    ref = np.zeros((3, 4))
    ref[1] = 2
    ref[:, 0] = [1, 2, 3]
    ref[ref > 2.5] = -1
    ref[[0, 2], [3, 3]] = 9
    np.testing.assert_array_equal(x.numpy(), ref)
    w = fg.ones(2, requires_grad=True)
    with fg.no_grad():
        w[0] = 5.0
    assert w.tolist() == [5.0, 1.0] and w.grad_fn is None


def _set(key, val_from_b=True):
    def f(a, b):
        y = a * 1
        y[key] = b * 2 if val_from_b else 7.0
        return y * a
    return f


@pytest.mark.parametrize("key, bshape", [(0, (4,)), ((slice(None), 1), (3,)), ((1, slice(1, 3)), ()),
                                         (([0, 2],), (2, 4)), ((Ellipsis, 2), (1,))])
def test_setitem_grads(key, bshape):
    check_grad(_set(key), [arr(3, 4), arr(*bshape)])


def test_inplace_through_view_grads():
    def f(a, b):
        y = a * 1
        v = y[:, 1:3]
        v.mul_(b)
        w = y.t()[0]
        w.add_(1.0)
        return y * y
    check_grad(f, [arr(3, 4), arr(2)])

    def g(a):
        y = a * 3
        y.view(-1)[::2] = 0.0
        return y * a
    check_grad(g, [arr(2, 3)])


def test_setitem_grad_fn_and_errors():
    x = fg.randn(3, requires_grad=True)
    y = x * 1
    y[0] = 5
    assert y.grad_fn.name().rpartition("::")[2] == "CopySlices"
    v = y[1:]
    v.mul_(2)
    assert v.grad_fn.name() == "AsStridedBackward0"
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x[0] = 1.0
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        x[1:].mul_(2)


def test_gather_scatter_index_select():
    idx = np.array([[0, 2, 1], [2, 2, 0]])
    check_grad(lambda x: x.gather(1, fg.tensor(idx)), [arr(2, 4)],
               ref=lambda x: np.take_along_axis(x, idx, 1))
    check_grad(lambda x: x.gather(0, fg.tensor(idx[:, :2] % 2)), [arr(2, 4)])
    check_grad(lambda x, s: x.scatter_add(0, fg.tensor(idx % 2), s), [arr(2, 4), arr(2, 3)])
    check_grad(lambda x: x.index_select(1, fg.tensor([3, 0, 3])), [arr(2, 4)], ref=lambda x: x[:, [3, 0, 3]])
    check_grad(lambda x: fg.take_along_dim(x, fg.tensor(idx[:1]), 0), [arr(3, 3)])
    check_grad(lambda x: fg.take_along_dim(x, fg.tensor([5, 0])), [arr(2, 3)], ref=lambda x: x.reshape(-1)[[5, 0]])
    with pytest.raises(RuntimeError, match="out of bounds"):
        fg.randn(2, 3).gather(1, fg.tensor([[3]]))


def test_masked_fill():
    m = np.array([True, False, True])
    check_grad(lambda x: x.masked_fill(fg.tensor(m), 0.5), [arr(2, 3)], ref=lambda x: np.where(m, 0.5, x))
    check_grad(lambda x, v: x.masked_fill(fg.tensor(m), v), [arr(2, 3), arr()])


def test_vs_torch():
    torch = pytest.importorskip("torch")
    xn = arr(3, 4)
    res = []
    for lib in (torch, fg):
        x = lib.tensor(xn, requires_grad=True)
        y = x * 2
        y[0, 1:] = x[1, :3] ** 2
        y[:, 0].mul_(3)
        z = y[lib.tensor([2, 0])][:, ::2].sum() + y.gather(1, lib.tensor([[1], [0], [3]])).sum()
        z.backward()
        res.append((z.item(), x.grad.numpy().copy(), type(y.grad_fn).__name__))
    assert res[0][0] == pytest.approx(res[1][0], rel=1e-6)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)
    assert res[0][2] == res[1][2]


# -- masked_fill of an integer tensor with a value it cannot hold --

@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e30, -float("inf")])
def test_masked_fill_int_overflow_raises(value):
    x = fg.tensor([1, -4])
    with pytest.raises(RuntimeError, match="value cannot be converted to type int64_t without "
                                           "overflow"):
        x.masked_fill(x > 0, value)


def test_masked_fill_int_with_float_in_range_truncates():
    x = fg.tensor([1, -4])
    assert x.masked_fill(x > 0, 2.7).tolist() == [2, -4]


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


# --- repeat_interleave ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, reps, dim", [((2, 3), 2, None), ((2, 3), 2, 0), ((2, 3), 3, 1),
                                              ((2, 3), 2, -1), ((), 3, None), ((2, 3), 0, 1),
                                              ((0, 3), 2, 0), ((2, 3), [1, 2], 0),
                                              ((2, 3), [1, 0, 2], 1), ((2, 3), [2], 0),
                                              ((2, 3), 2, "t"), ((4,), [0, 1, 2, 3], None)])
def test_repeat_interleave(shape, reps, dim):
    x = arr(*shape)
    r = fg.tensor(np.array(reps, dtype=np.int64)) if isinstance(reps, list) else reps
    nr = np.array(reps) if isinstance(reps, list) else reps
    if dim == "t":
        check_grad(lambda a: a.t().repeat_interleave(r, dim=0), [x],
                   ref=lambda a: np.repeat(a.T, nr, axis=0))
        return
    check_grad(lambda a: fg.repeat_interleave(a, r, dim=dim), [x],
               ref=lambda a: np.repeat(a, nr, axis=dim))


def test_repeat_interleave_names_and_errors():
    x = _t(arr(2, 3))
    assert type(x.repeat_interleave(2, 1).grad_fn).__name__ == "ViewBackward0"
    assert type(x.repeat_interleave(fg.tensor([1, 2]), 0).grad_fn).__name__ == "IndexSelectBackward0"
    np.testing.assert_array_equal(fg.repeat_interleave(fg.tensor([1, 2, 0, 3])).numpy(),
                                  [0, 1, 1, 3, 3, 3])
    for reps, msg in [(-1, "Repeats must be non-negative"),
                      (fg.tensor([1, -2]), "repeats can not be negative"),
                      (fg.tensor([[1, 2]]), "repeats must be 0-dim or 1-dim tensor"),
                      (fg.tensor([1, 2, 3]), "repeats must have the same size as input along dim, "
                                             "but got repeats.size\\(0\\) = 3 and input.size\\(0\\) = 2")]:
        with pytest.raises(RuntimeError, match=msg):
            fg.repeat_interleave(x, reps, 0)


# --- masked_fill ----------------------------------------------------------------------------------

def test_masked_fill_nodes_and_grads():
    m = fg.tensor([True, False, True])
    x = _t(arr(2, 3))
    y = x.masked_fill(m, 1.5)
    assert type(y.grad_fn).__name__ == "MaskedFillBackward0"
    np.testing.assert_array_equal(y.detach().numpy(), np.where([True, False, True], 1.5, x.detach().numpy()))
    check_grad(lambda a: a.masked_fill(m, -2.0), [arr(2, 3)])
    check_grad(lambda a: a.t().masked_fill(fg.tensor([[True], [False], [True]]), 0.0), [arr(2, 3)])
    check_grad(lambda a: a.masked_fill(fg.tensor(True), 0.0), [arr()])
    check_grad(lambda a, v: a.masked_fill(m, v), [arr(2, 3), arr()])
    v = _t(2.0)
    y = x.masked_fill(m, v)
    assert type(y.grad_fn).__name__ == "MaskedFillBackward1"
    y.sum().backward()
    assert v.grad.item() == 4.0
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [0, 1, 0]])
    xi = fg.tensor([[1, 2, 3]])
    assert xi.masked_fill(m, 7).dtype == fg.int64
    np.testing.assert_array_equal(xi.masked_fill(m, 7).numpy(), [[7, 2, 7]])

"""Issue 3 additions: matmul backward for broadcast gradients (the W3 path), einsum with '...' and
repeated indices, Tensor.view(dtype), repeat_interleave, masked_fill's nodes, out= keywords.
Values vs NumPy, gradients vs float64 finite differences, names/messages vs torch."""
import numpy as np
import pytest

from _backend import fg, REFERENCE
from _fd import check_grad

R = np.random.default_rng(11)


def arr(*shape):
    return R.standard_normal(shape)


def _t(a, rg=True, dtype=None):
    return fg.tensor(np.array(a, dtype=dtype or np.float64), requires_grad=rg)


# --- matmul backward with an expanded (stride-0) gradient ----------------------------------------

@pytest.mark.parametrize("reduce", ["sum", "sum3", "mean", "sum0", "sum1", "sum0w", "sum1w"])
@pytest.mark.parametrize("layout", ["c", "t", "slice"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_broadcast_grad(reduce, layout, dtype):
    """C.sum() / C.mean() / C.sum(d) (* w) hand matmul's backward a gradient that repeats one
    row or column; the O(n^2) formulas must equal G @ B^T and A^T @ G with G materialized."""
    m, k, n = 5, 4, 3
    a0 = arr(k, m).T if layout == "t" else arr(m, 2 * k)[:, ::2] if layout == "slice" else arr(m, k)
    b0 = arr(k, n)
    w0 = arr(n) if reduce == "sum0w" else arr(m) if reduce == "sum1w" else None
    A, B = _t(a0, dtype=dtype), _t(b0, dtype=dtype)
    if layout == "t":
        A = _t(np.ascontiguousarray(a0.T), dtype=dtype).t().detach().requires_grad_()
    C = A @ B
    out = {"sum": lambda: C.sum(), "sum3": lambda: C.sum() * 3, "mean": lambda: C.mean(),
           "sum0": lambda: C.sum(0).sum(), "sum1": lambda: C.sum(1).sum(),
           "sum0w": lambda: (C.sum(0) * _t(w0, False, dtype)).sum(),
           "sum1w": lambda: (C.sum(1) * _t(w0, False, dtype)).sum()}[reduce]()
    out.backward()
    G = np.full((m, n), {"sum": 1.0, "sum3": 3.0, "mean": 1.0 / (m * n)}.get(reduce, 1.0))
    if reduce == "sum0w":
        G = np.broadcast_to(w0, (m, n))
    elif reduce == "sum1w":
        G = np.broadcast_to(w0[:, None], (m, n))
    a, b = a0.astype(dtype).astype(np.float64), b0.astype(dtype).astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(A.grad.numpy(), G @ b.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(B.grad.numpy(), a.T @ G, rtol=tol, atol=tol)
    assert A.grad.dtype == A.dtype and A.grad.shape == A.shape
    assert B.grad.numpy().flags.c_contiguous and B.grad.numpy().flags.writeable
    B.grad.add_(1)                                            # .grad is its own writable array


def test_matmul_broadcast_grad_one_side_and_empty():
    A, B = _t(arr(3, 4)), _t(arr(4, 2), rg=False)
    (A @ B).sum().backward()
    np.testing.assert_allclose(A.grad.numpy(), np.ones((3, 2)) @ B.numpy().T, atol=1e-12)
    A, B = _t(arr(3, 0)), _t(arr(0, 2))
    (A @ B).sum().backward()
    assert A.grad.shape == (3, 0) and B.grad.shape == (0, 2)
    A, B = _t(arr(0, 4)), _t(arr(4, 2))
    (A @ B).sum().backward()
    np.testing.assert_array_equal(B.grad.numpy(), np.zeros((4, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduce", ["sum", "sum0w", "sum1w"])
@pytest.mark.parametrize("layout", ["c", "slice", "bt"])
def test_matmul_broadcast_grad_kernel_strides(dtype, reduce, layout):
    """The C path for broadcast gradients: sizes not a multiple of its unroll, a strided A, a
    transposed B (column-major rows), vs G materialized; the grads are fresh C arrays."""
    m, k, n = 7, 6, 9
    a0, b0, w0 = arr(m, k), arr(k, n), arr(n if reduce == "sum0w" else m)
    A = _t(a0, dtype=dtype)
    B = _t(b0, dtype=dtype)
    if layout == "slice":
        A = _t(np.repeat(a0, 2, axis=1), dtype=dtype)[:, ::2].detach().requires_grad_()
        assert A.stride() == (2 * k, 2)
    if layout == "bt":
        B = _t(np.ascontiguousarray(b0.T), dtype=dtype).t().detach().requires_grad_()
    C = A @ B
    w = _t(w0, False, dtype)
    out = {"sum": lambda: C.sum() * 2, "sum0w": lambda: (C.sum(0) * w).sum(),
           "sum1w": lambda: (C.sum(1) * w).sum()}[reduce]()
    out.backward()
    G = {"sum": lambda: np.full((m, n), 2.0), "sum0w": lambda: np.broadcast_to(w0, (m, n)),
         "sum1w": lambda: np.broadcast_to(w0[:, None], (m, n))}[reduce]()
    a, b = a0.astype(dtype).astype(np.float64), b0.astype(dtype).astype(np.float64)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(A.grad.numpy(), G @ b.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(B.grad.numpy(), a.T @ G, rtol=tol, atol=tol)
    if not REFERENCE:   # fastgrad's own layout promise; PyTorch's grads follow the leaf's strides
        assert A.grad.numpy().flags.c_contiguous and B.grad.numpy().flags.c_contiguous
    assert A.grad.dtype == A.dtype


def test_matmul_broadcast_grad_kernel_one_side_fd():
    """Only B requires grad (A's product is skipped), checked against finite differences."""
    a = arr(5, 3)
    A = fg.tensor(a)
    check_grad(lambda B: (A @ B).sum(), [arr(3, 4)])


def test_matmul_broadcast_grad_double_backward():
    a, b = arr(3, 4), arr(4, 2)
    A, B = _t(a), _t(b)
    (ga,) = fg.autograd.grad((A @ B).sum(), (A,), create_graph=True)
    (ga * ga).sum().backward()
    # ga = 1 (B 1)^T: d/dB sum(ga^2) = 2 * 3 * rowsum(B) 1^T
    np.testing.assert_allclose(B.grad.numpy(), 6 * np.outer(b.sum(1), np.ones(2)), atol=1e-12)


# --- einsum: '...' and repeated indices -----------------------------------------------------------

@pytest.mark.parametrize("eq, shapes, np_eq", [
    ("ii->i", [(3, 3)], None), ("ii->", [(3, 3)], None), ("ii", [(4, 4)], None), ("bii->b", [(2, 3, 3)], None),
    ("bii->bi", [(2, 3, 3)], None), ("iij->ij", [(2, 2, 3)], None), ("iji->j", [(3, 2, 3)], None),
    ("ii,i->i", [(3, 3), (3,)], None), ("ij,jj->i", [(2, 3), (3, 3)], None),
    ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 2)], None), ("...ij,...jk", [(2, 3), (2, 3, 4)], None),
    ("i...->...", [(2, 3, 4)], None), ("...i->...", [(3,)], None), ("b...,b...->b", [(2, 3), (2, 3)], "bx,bx->b"),
    ("...ii->...i", [(2, 3, 3)], None), ("...,...->...", [(2, 1), (1, 3)], None), ("i...i", [(3, 2, 3)], None),
    ("ij...,jk->ik...", [(2, 3, 2), (3, 4)], None), ("...", [(2, 3)], None), ("i,i->", [(0,), (0,)], None),
    ("b...,b...->b", [(2, 3, 2), (2, 3, 2)], "bxy,bxy->b"), ("i...->i", [(2, 3)], "ix->i"),
])
def test_einsum_ellipsis_diagonal(eq, shapes, np_eq):
    """NumPy cannot sum away '...' dims (PyTorch can): np_eq spells those out."""
    check_grad(lambda *ts: fg.einsum(eq, *ts), [arr(*s) for s in shapes],
               ref=lambda *a: np.einsum(np_eq or eq, *a))


def test_einsum_noncontiguous_and_double_backward():
    x = arr(4, 4)
    check_grad(lambda a: fg.einsum("ii->i", a.t()), [x], ref=lambda a: np.diagonal(a.T))
    a = _t(arr(3, 3))
    (g,) = fg.autograd.grad((fg.einsum("ii->i", a) ** 2).sum(), (a,), create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.diag(2 * np.diag(a.detach().numpy())),
                               atol=1e-12)
    g.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * np.eye(3), atol=1e-12)


@pytest.mark.parametrize("eq, shapes, msg", [
    ("ij->i", [(2, 3, 4)], "number of subscripts"),
    ("ij,jk->ik", [(2, 3)], "fewer operands"),
    ("i->j", [(3,)], "output subscript j does not appear"),
    ("ii->i", [(2, 3)], "don't match"),
    ("ij...k->i", [(2,)], "more than the number of dimensions"),
])
def test_einsum_errors(eq, shapes, msg):
    with pytest.raises(RuntimeError, match=msg):
        fg.einsum(eq, *[_t(arr(*s)) for s in shapes])


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


# --- out= -----------------------------------------------------------------------------------------

def _f32(*shape):
    return fg.tensor(R.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("name, make, ref", [
    ("matmul", lambda a, b, o: fg.matmul(a, b, out=o), lambda a, b: a @ b),
    ("mm", lambda a, b, o: fg.mm(a, b, out=o), lambda a, b: a @ b),
    ("bmm", lambda a, b, o: fg.bmm(a[None], b[None], out=o), lambda a, b: (a @ b)[None]),
    ("cat", lambda a, b, o: fg.cat([a, b.t()], 0, out=o), lambda a, b: np.concatenate([a, b.T])),
    ("stack", lambda a, b, o: fg.stack([a, b.t()], 1, out=o), lambda a, b: np.stack([a, b.T], 1)),
    ("add", lambda a, b, o: fg.add(a, b.t(), alpha=2, out=o), lambda a, b: a + 2 * b.T),
    ("mul", lambda a, b, o: fg.mul(a, b.t(), out=o), lambda a, b: a * b.T),
])
def test_out_keyword(name, make, ref):
    a, b = _f32(2, 3), _f32(3, 2)
    expect = ref(a.numpy(), b.numpy())
    o = fg.empty(expect.shape)
    assert make(a, b, o) is o
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    o = fg.empty(0)                                   # empty: resized silently
    make(a, b, o)
    assert o.shape == expect.shape
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    o = fg.zeros(7)                                   # wrong shape: resized with torch's warning
    with pytest.warns(UserWarning, match=r"An output with one or more elements was resized since "
                                         r"it had shape \[7\], which does not match the required "
                                         r"output shape"):
        make(a, b, o)
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    ar = a.detach().requires_grad_()
    with pytest.raises(RuntimeError, match=rf"^{name}\(\): functions with out=\.\.\. arguments don't "
                                           r"support automatic differentiation, but one of the "
                                           r"arguments requires grad\.$"):
        make(ar, b, fg.empty(expect.shape))
    with fg.no_grad():
        o = fg.empty(expect.shape)
        make(ar, b, o)
        np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    assert not o.requires_grad


def test_out_dtype_rules():
    a, b = _f32(2, 3), _f32(3, 2)
    with pytest.raises(RuntimeError, match="^Expected out tensor to have dtype float, but got "
                                           "double instead$"):
        fg.mm(a, b, out=fg.empty(2, 2, dtype=fg.float64))
    with pytest.raises(RuntimeError, match="^result type Float can't be cast to the desired "
                                           "output type Long$"):
        fg.add(a, 1, out=fg.empty(2, 3, dtype=fg.int64))
    with pytest.raises(TypeError, match="^torch.cat\\(\\): input types can't be cast to the "
                                        "desired output type Long$"):
        fg.cat([a, a], out=fg.empty(0, dtype=fg.int64))
    o = fg.empty(2, 3, dtype=fg.float64)
    fg.add(a, 1, out=o)
    np.testing.assert_allclose(o.numpy(), a.numpy().astype(np.float64) + 1, rtol=1e-6)
    o = fg.empty(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="functions with out="):
        fg.add(a, 1, out=o)


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

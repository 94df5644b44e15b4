"""Matrix products: matmul for every rank combination with broadcast batch dims, mm, bmm, mv, dot,
outer, addmm, linear, einsum (with '...' and repeated indices), cross; matmul's backward for
broadcast (stride-0) gradients; double backward; errors; vs torch."""
import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch
from _fd import check_grad

R = np.random.default_rng(7)


def arr(*shape):
    return R.standard_normal(shape)


def _t(a, rg=True, dtype=None):
    return fg.tensor(np.array(a, dtype=dtype or np.float64), requires_grad=rg)


@pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((2, 2, 3), (3, 4)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)),
                                    ((2, 1, 2, 3), (3, 3, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3)),
                                    ((1, 2, 3), (4, 3, 1))])
def test_matmul_shapes(sa, sb):
    check_grad(lambda a, b: a @ b, [arr(*sa), arr(*sb)], ref=np.matmul)


def test_matmul_noncontiguous():
    check_grad(lambda a, b: a.t() @ b[::2], [arr(3, 2), arr(6, 4)], ref=lambda a, b: a.T @ b[::2])
    check_grad(lambda a, b: a.mT @ b.mT, [arr(2, 3, 2), arr(2, 4, 3)])


def test_products():
    check_grad(lambda a, b: fg.mm(a, b), [arr(2, 3), arr(3, 2)], ref=np.matmul)
    check_grad(lambda a, b: fg.bmm(a, b), [arr(2, 2, 3), arr(2, 3, 2)], ref=np.matmul)
    check_grad(lambda a, b: fg.mv(a, b), [arr(2, 3), arr(3)], ref=np.matmul)
    check_grad(lambda a, b: fg.dot(a, b), [arr(4), arr(4)], ref=np.dot)
    check_grad(lambda a, b: fg.outer(a, b), [arr(3), arr(2)], ref=np.outer)
    check_grad(lambda c, a, b: fg.addmm(c, a, b, beta=0.5, alpha=2.0), [arr(2), arr(3, 4), arr(4, 2)],
               ref=lambda c, a, b: 0.5 * c + 2 * a @ b)


@pytest.mark.parametrize("xs", [(3,), (4, 3), (2, 4, 3), (0, 3)])
def test_linear(xs):
    check_grad(lambda x, w, b: fg.nn.functional.linear(x, w, b), [arr(*xs), arr(2, 3), arr(2)],
               ref=lambda x, w, b: x @ w.T + b)
    check_grad(lambda x, w: fg.nn.functional.linear(x, w), [arr(*xs), arr(2, 3)],
               ref=lambda x, w: x @ w.T)


@pytest.mark.parametrize("eq, shapes", [("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,ij->", [(2, 3), (2, 3)]),
                                        ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("i,j->ij", [(3,), (2,)]),
                                        ("ij->j", [(2, 3)]), ("ij->ji", [(2, 3)]), ("ij,j->i", [(2, 3), (3,)])])
def test_einsum(eq, shapes):
    check_grad(lambda *ts: fg.einsum(eq, *ts), [arr(*s) for s in shapes],
               ref=lambda *a: np.einsum(eq, *a))


def test_double_backward():
    a = fg.tensor(arr(2, 3), requires_grad=True)
    b = fg.tensor(arr(3, 2), requires_grad=True)
    (ga,) = fg.autograd.grad((a @ b).pow(2).sum(), (a,), create_graph=True)
    ga.sum().backward()
    an, bn = a.detach().numpy(), b.detach().numpy()
    # d/db sum_ik (2 (AB)_ij B_kj) -> numeric check against finite differences of the closed form
    def f(bb):
        return (2 * (an @ bb) @ bb.T).sum()
    eps, num = 1e-6, np.zeros_like(bn)
    for i in np.ndindex(bn.shape):
        p, m = bn.copy(), bn.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (f(p) - f(m)) / (2 * eps)
    np.testing.assert_allclose(b.grad.numpy(), num, rtol=1e-5, atol=1e-6)


def test_grad_fn_names():
    v = fg.randn(3, requires_grad=True)
    m = fg.randn(2, 3, requires_grad=True)
    w = fg.randn(4, 3, requires_grad=True)
    assert (v @ v).grad_fn.name() == "DotBackward0"
    assert (m @ m.t()).grad_fn.name() == "MmBackward0"
    assert (m @ v).grad_fn.name() == "MvBackward0"
    assert fg.nn.functional.linear(m, w, fg.randn(4)).grad_fn.name() == "AddmmBackward0"
    assert fg.nn.functional.linear(m, w).grad_fn.name() == "MmBackward0"


def test_errors():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        fg.randn(2, 3) @ fg.randn(4, 5)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied"):
        fg.nn.functional.linear(fg.randn(2, 3), fg.randn(5, 4))
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        fg.randn(3) @ fg.randn(4)
    with pytest.raises(RuntimeError, match="size of tensor a"):
        fg.randn(2, 2, 3) @ fg.randn(3, 3, 4)
    with pytest.raises(RuntimeError):
        fg.randn(2, 3) @ fg.randn(3, 2, dtype=fg.float64)


def test_float32_close_to_float64():
    a, b = arr(16, 32), arr(32, 8)
    r32 = (fg.tensor(a, dtype=fg.float32) @ fg.tensor(b, dtype=fg.float32)).numpy()
    np.testing.assert_allclose(r32, a @ b, rtol=1e-5, atol=1e-5)


def test_vs_torch():
    torch = pytest.importorskip("torch")
    an, bn, wn, cn = arr(2, 3, 4), arr(4, 5), arr(6, 5), arr(6)
    res = []
    for lib in (torch, fg):
        a, b, w, c = (lib.tensor(z, requires_grad=True) for z in (an, bn, wn, cn))
        y = lib.nn.functional.linear(a @ b, w, c)
        z = lib.einsum("bij,bij->", y, y) + (a.mT @ a).sum()
        z.backward()
        res.append([z.item()] + [t.grad.numpy().copy() for t in (a, b, w, c)])
    for x, y in zip(*res):
        np.testing.assert_allclose(x, y, rtol=1e-6)


# --- cross (introyt tensors tutorial) -----------------------------------------------------------

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
    torch = reference_torch()
    if torch is None:
        pytest.skip("needs torch")
    torch.manual_seed(0)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    got = fg.linalg.cross(fg.tensor(a.numpy()), fg.tensor(b.numpy()))
    # PyTorch's kernel may fuse a multiply-add: equal to the last bit or so
    assert np.allclose(got.numpy(), torch.linalg.cross(a, b).numpy(), rtol=1e-6, atol=1e-7)


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


@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((4,), (4, 3)), ((4,), (2, 4, 3)),
                                   ((3, 4), (4,)), ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5)),
                                   ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5))])
def test_matmul_second_derivatives_for_every_rank_pair(sa, sb):
    """create_graph through matmul's backward for 1-D, 2-D and batched operands (a 1-D operand
    against a batch once raised AttributeError there)."""
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a = fg.tensor(rng.standard_normal(sa), dtype=fg.float64, requires_grad=True)
    b = fg.tensor(rng.standard_normal(sb), dtype=fg.float64, requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda x, y: x @ y, (a, b))

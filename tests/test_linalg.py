"""Matrix products (issue 3): matmul for every rank combination with broadcast batch dims, mm,
bmm, mv, dot, outer, addmm, linear, einsum; double backward; errors; vs torch."""
import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

R = np.random.default_rng(7)


def arr(*shape):
    return R.standard_normal(shape)


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

"""autograd.functional: jacobian, hessian, vjp, jvp, hvp, vhp, with PyTorch's nesting."""
import numpy as np
import pytest

from _backend import fg

F = fg.autograd.functional
RNG = np.random.default_rng(3)
A_NP = RNG.standard_normal((4, 3))
B_NP = RNG.standard_normal((3, 3))


def _t(a, rg=False):
    return fg.tensor(np.asarray(a, dtype=np.float64), dtype=fg.float64, requires_grad=rg)


def _Ax(x):
    return (_t(A_NP) * x).sum(1)


def _quad(x):
    return (x * (_t(B_NP) * x).sum(1)).sum()          # x^T B x


def test_jacobian_of_linear_map_is_A():
    x = _t(RNG.standard_normal(3))
    J = F.jacobian(_Ax, x)
    assert tuple(J.shape) == (4, 3) and not J.requires_grad
    np.testing.assert_allclose(J.numpy(), A_NP, rtol=1e-12)


def test_hessian_of_quadratic_form_is_A_plus_At():
    x = _t(RNG.standard_normal(3))
    H = F.hessian(_quad, x)
    np.testing.assert_allclose(H.numpy(), B_NP + B_NP.T, rtol=1e-12)


def test_vjp_jvp_hvp_vhp():
    x0, v0, u0 = RNG.standard_normal(3), RNG.standard_normal(3), RNG.standard_normal(4)
    out, r = F.vjp(_Ax, _t(x0), _t(u0))
    np.testing.assert_allclose(out.numpy(), A_NP @ x0)
    np.testing.assert_allclose(r.numpy(), A_NP.T @ u0)
    out, r = F.jvp(_Ax, _t(x0), _t(v0))
    np.testing.assert_allclose(r.numpy(), A_NP @ v0)
    H = B_NP + B_NP.T
    out, r = F.hvp(_quad, _t(x0), _t(v0))
    np.testing.assert_allclose(float(out), x0 @ B_NP @ x0)
    np.testing.assert_allclose(r.numpy(), H @ v0)
    _, r = F.vhp(_quad, _t(x0), _t(v0))
    np.testing.assert_allclose(r.numpy(), v0 @ H)


def test_nesting_several_inputs_and_outputs():
    a, b = _t(RNG.standard_normal(3)), _t(RNG.standard_normal(2))
    J = F.jacobian(lambda a, b: (a.exp(), (a.sum() * b)), (a, b))
    assert isinstance(J, tuple) and len(J) == 2 and all(isinstance(r, tuple) for r in J)
    assert [tuple(j.shape) for j in J[0]] == [(3, 3), (3, 2)]
    assert [tuple(j.shape) for j in J[1]] == [(2, 3), (2, 2)]
    np.testing.assert_allclose(J[0][0].numpy(), np.diag(np.exp(a.numpy())))
    np.testing.assert_allclose(J[0][1].numpy(), 0)                 # independent: zeros
    np.testing.assert_allclose(J[1][0].numpy(), np.repeat(b.numpy()[:, None], 3, 1))
    J = F.jacobian(lambda a, b: (a * a).sum() + b.sum(), (a, b))
    assert isinstance(J, tuple) and [tuple(j.shape) for j in J] == [(3,), (2,)]
    J = F.jacobian(lambda a: (a, a * 2), a)
    assert isinstance(J, tuple) and [tuple(j.shape) for j in J] == [(3, 3), (3, 3)]
    H = F.hessian(lambda a, b: (a * a * b.sum()).sum(), (a, b))
    assert [[tuple(h.shape) for h in r] for r in H] == [[(3, 3), (3, 2)], [(2, 3), (2, 2)]]
    np.testing.assert_allclose(H[0][0].numpy(), 2 * b.numpy().sum() * np.eye(3))
    out, r = F.vjp(lambda a, b: a * b.sum(), (a, b), _t(np.ones(3)))
    assert isinstance(r, tuple) and len(r) == 2


def test_strict_and_create_graph():
    x = _t(RNG.standard_normal(3))
    with pytest.raises(RuntimeError, match="does not require gradients"):
        F.jacobian(lambda x: fg.ones(2, dtype=fg.float64) * 1, x, strict=True)
    y = _t(RNG.standard_normal(2))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F.jacobian(lambda x, y: x * 2, (x, y), strict=True)
    xr = _t(x.numpy(), rg=True)
    J = F.jacobian(lambda x: x.exp(), xr, create_graph=True)
    assert J.requires_grad
    J.sum().backward()
    np.testing.assert_allclose(xr.grad.numpy(), np.exp(x.numpy()))


def test_vjp_without_v_needs_scalar_output():
    with pytest.raises(RuntimeError, match="v can only be None"):
        F.vjp(_Ax, _t(np.ones(3)))


def test_jacobian_costs_one_backward_per_output_element():
    calls = []
    x = _t(RNG.standard_normal(16))

    def f(x):
        y = x.tanh() * 2
        y.register_hook(lambda g: calls.append(1))
        return y[:5] if hasattr(y, "__getitem__") else y
    J = F.jacobian(f, x)
    assert tuple(J.shape) == (5, 16) and len(calls) == 5

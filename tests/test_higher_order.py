"""create_graph=True: gradients of gradients, for every op, against finite differences."""
import numpy as np
import pytest

from _backend import fg

gradcheck = fg.autograd.gradcheck
gradgradcheck = fg.autograd.gradgradcheck


def _r(*shape, pos=False, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    if pos:
        a = np.abs(a) + 0.5
    return fg.tensor(a, dtype=fg.float64, requires_grad=True)


def test_third_derivative_of_cube():
    x = fg.tensor([-1.5, 0.5, 2.0], dtype=fg.float64, requires_grad=True)
    (d1,) = fg.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (d2,) = fg.autograd.grad(d1.sum(), x, create_graph=True)
    (d3,) = fg.autograd.grad(d2.sum(), x)
    np.testing.assert_allclose(d1.detach().numpy(), 3 * x.detach().numpy() ** 2)
    np.testing.assert_allclose(d2.detach().numpy(), 6 * x.detach().numpy())
    np.testing.assert_allclose(d3.numpy(), [6.0, 6.0, 6.0])


def test_second_derivative_matches_finite_differences():
    f = lambda x: (x.sin() * x.exp()).sum()          # noqa: E731
    x0, eps = np.array([0.3, -1.1]), 1e-4
    x = fg.tensor(x0, dtype=fg.float64, requires_grad=True)
    (g,) = fg.autograd.grad(f(x), x, create_graph=True)
    (h,) = fg.autograd.grad(g.sum(), x)

    def grad_at(v):
        t = fg.tensor(v, dtype=fg.float64, requires_grad=True)
        return fg.autograd.grad(f(t), t)[0].numpy()
    fd = np.array([(grad_at(x0 + eps * e) - grad_at(x0 - eps * e))[i] / (2 * eps)
                   for i, e in enumerate(np.eye(2))])
    np.testing.assert_allclose(h.numpy(), fd, rtol=1e-6)


def test_backward_create_graph_then_backward_through_grad():
    x = fg.tensor(2.0, dtype=fg.float64, requires_grad=True)
    y = x ** 3
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and float(g) == 12.0
    x.grad = None
    g.backward()
    assert float(x.grad) == 12.0                     # d(3x^2)/dx = 6x


def test_mlp_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(1)
    W1 = fg.tensor(rng.standard_normal((4, 3)), dtype=fg.float64)
    W2 = fg.tensor(rng.standard_normal((1, 4)), dtype=fg.float64)

    def f(x):                                        # tiny MLP by broadcasting: no matmul needed
        h = (W1 * x).sum(1).tanh()
        return (W2 * h).sum().sigmoid()

    x0 = rng.standard_normal(3)
    v0 = rng.standard_normal(3)
    x = fg.tensor(x0, dtype=fg.float64, requires_grad=True)
    v = fg.tensor(v0, dtype=fg.float64)
    (g,) = fg.autograd.grad(f(x), x, create_graph=True)
    (hv,) = fg.autograd.grad((g * v).sum(), x)

    def grad_at(a):
        t = fg.tensor(a, dtype=fg.float64, requires_grad=True)
        return fg.autograd.grad(f(t), t)[0].numpy()
    eps = 1e-5
    fd = (grad_at(x0 + eps * v0) - grad_at(x0 - eps * v0)) / (2 * eps)
    np.testing.assert_allclose(hv.numpy(), fd, rtol=1e-6, atol=1e-9)
    _, hvp = fg.autograd.functional.hvp(f, fg.tensor(x0, dtype=fg.float64), v)
    np.testing.assert_allclose(hvp.numpy(), fd, rtol=1e-6, atol=1e-9)


OPS = {
    "exp": (lambda x: x.exp(), [dict()]),
    "log": (lambda x: x.log(), [dict(pos=True)]),
    "sqrt": (lambda x: x.sqrt(), [dict(pos=True)]),
    "tanh": (lambda x: x.tanh(), [dict()]),
    "sigmoid": (lambda x: x.sigmoid(), [dict()]),
    "sin_cos": (lambda x: x.sin() * x.cos(), [dict()]),
    "abs": (lambda x: x.abs() * x, [dict()]),
    "relu": (lambda x: x.relu() * x, [dict()]),
    "reciprocal": (lambda x: x.reciprocal(), [dict(pos=True)]),
    "neg": (lambda x: -x * x, [dict()]),
    "pow_scalar": (lambda x: x ** 3, [dict()]),
    "pow_tensor": (lambda x, y: x ** y, [dict(pos=True), dict()]),
    "rpow": (lambda x: 2.0 ** x, [dict()]),
    "mul_broadcast": (lambda x, y: x * y * x, [dict(shape=(2, 3)), dict(shape=(3,))]),
    "div": (lambda x, y: x / y, [dict(shape=(2, 3)), dict(shape=(3,), pos=True)]),
    "rdiv": (lambda x: 2 / x, [dict(pos=True)]),
    "add_sub": (lambda x, y: (x + y) * (x - y) * (2 - x), [dict(), dict()]),
    "sum": (lambda x: (x * x).sum(), [dict(shape=(2, 3))]),
    "sum_dim": (lambda x: (x * x).sum(1), [dict(shape=(2, 3))]),
    "mean": (lambda x: (x * x).mean(0, keepdim=True), [dict(shape=(2, 3))]),
    "max": (lambda x: (x * x).max(), [dict(shape=(2, 3))]),
    "max_dim": (lambda x: (x * x).max(1)[0], [dict(shape=(2, 3))]),
    "min": (lambda x: (x * x).min(), [dict(shape=(2, 3))]),
    "clamp": (lambda x: (x * x).clamp(0.1, 1.0), [dict(shape=(6,))]),
    "maximum": (lambda x, y: fg.maximum(x * x, y * y), [dict(), dict()]),
    "minimum": (lambda x, y: fg.minimum(x * x, y), [dict(), dict()]),
    "where": (lambda x, y: fg.where(x > 0, x * x, y * x), [dict(), dict()]),
    "clone": (lambda x: x.clone() * x, [dict()]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradgradcheck_every_op(name):
    fn, specs = OPS[name]
    inputs = [_r(*s.get("shape", (4,)), pos=s.get("pos", False), seed=k)
              for k, s in enumerate(specs)]
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_grad_without_create_graph_is_not_differentiable():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = fg.autograd.grad((x * x).sum(), x)
    assert not g.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        fg.autograd.grad(g.sum(), x)

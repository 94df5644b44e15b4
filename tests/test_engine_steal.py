"""Backward rules that write into their incoming gradient (Note [Stealing the incoming gradient]
in engine.pyx): whatever else holds that gradient sees it unchanged."""
import numpy as np
import pytest

from _backend import fg
from _fd import check_grad

X = np.array([0.3, -0.2, 0.5, 0.1])
W = np.array([0.4, 0.7, -0.6, 0.2])


def _chain(x, w):
    """exp(tanh(x*w + w)) * w, and its pieces by hand (float64)."""
    u = x * w + w
    t = np.tanh(u)
    e = np.exp(t)
    return u, t, e


def _by_hand(x, w):
    """d(sum(exp(tanh(x*w + w)) * w))/d(e, t, w)."""
    u, t, e = _chain(x, w)
    g_e = w                               # d/de of sum(e * w)
    g_t = g_e * e
    g_u = g_t * (1 - t * t)
    g_w = e + g_u + g_u * x
    return g_e, g_t, g_w


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_retained_intermediate_grads_are_not_overwritten(dtype):
    x = fg.tensor(X.astype(dtype))
    w = fg.tensor(W.astype(dtype), requires_grad=True)
    t = (x * w + w).tanh()
    t.retain_grad()
    e = t.exp()
    e.retain_grad()
    (e * w).sum().backward()
    g_e, g_t, g_w = _by_hand(X, W)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(e.grad.numpy(), g_e, rtol=tol)
    np.testing.assert_allclose(t.grad.numpy(), g_t, rtol=tol)
    np.testing.assert_allclose(w.grad.numpy(), g_w, rtol=tol)


def test_tensor_hook_keeps_the_gradient_it_saw():
    x = fg.tensor(X)
    w = fg.tensor(W, requires_grad=True)
    t = (x * w + w).tanh()
    e = t.exp()
    seen = {}
    e.register_hook(lambda g: seen.__setitem__("e", g))
    t.register_hook(lambda g: seen.__setitem__("t", g))
    (e * w).sum().backward()
    g_e, g_t, _ = _by_hand(X, W)
    np.testing.assert_allclose(seen["e"].numpy(), g_e, rtol=1e-12)
    np.testing.assert_allclose(seen["t"].numpy(), g_t, rtol=1e-12)


def test_node_hooks_see_unchanged_gradients():
    x = fg.tensor(X)
    w = fg.tensor(W, requires_grad=True)
    e = (x * w + w).tanh().exp()
    seen = []
    e.grad_fn.register_hook(lambda gin, gout: seen.append((gin[0].clone(), gout[0].clone(),
                                                           gout[0])))
    (e * w).sum().backward()
    g_e, g_t, _ = _by_hand(X, W)
    gin, gout, gout_live = seen[0]
    np.testing.assert_allclose(gout.numpy(), g_e, rtol=1e-12)
    np.testing.assert_allclose(gin.numpy(), g_t, rtol=1e-12)
    np.testing.assert_allclose(gout_live.numpy(), g_e, rtol=1e-12)


def test_autograd_grad_of_intermediates():
    x = fg.tensor(X)
    w = fg.tensor(W, requires_grad=True)
    t = (x * w + w).tanh()
    e = t.exp()
    ge, gt, gw = fg.autograd.grad((e * w).sum(), (e, t, w))
    g_e, g_t, g_w = _by_hand(X, W)
    np.testing.assert_allclose(ge.numpy(), g_e, rtol=1e-12)
    np.testing.assert_allclose(gt.numpy(), g_t, rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), g_w, rtol=1e-12)


def test_gradient_shared_by_two_consumers():
    """e feeds two ops; each receives the gradient made for e's two uses' sum."""
    def f(w, x):
        e = (x * w).exp()
        return (e.tanh() * e.sigmoid() + e * e).sum()
    check_grad(f, [W, X])


def test_create_graph_then_second_backward():
    x = fg.tensor(X)
    w = fg.tensor(W, requires_grad=True)
    e = (x * w + w).tanh().exp()
    (gw,) = fg.autograd.grad(e.sum(), w, create_graph=True)
    gw.sum().backward()
    # d/dw sum(d/dw sum(exp(tanh((x+1) w)))), by central differences of the first derivative
    def first(wv):
        u = (X + 1) * wv
        t = np.tanh(u)
        return np.exp(t) * (1 - t * t) * (X + 1)
    h = 1e-6
    fd = np.array([(first(W + h * np.eye(4)[i]) - first(W - h * np.eye(4)[i])).sum() / (2 * h)
                   for i in range(4)])
    np.testing.assert_allclose(w.grad.numpy(), fd, rtol=1e-6)
    np.testing.assert_allclose(gw.detach().numpy(), first(W), rtol=1e-12)


def test_seed_given_by_the_caller_is_not_modified():
    w = fg.tensor(W, requires_grad=True)
    e = (w * w).exp()
    seed = fg.tensor(np.array([1.0, 2.0, 3.0, 4.0]))
    e.backward(seed)
    np.testing.assert_array_equal(seed.numpy(), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(w.grad.numpy(), [1, 2, 3, 4] * np.exp(W * W) * 2 * W, rtol=1e-12)

"""The engine's gradient buffers and backward()'s compiled entry: a gradient summed over many
uses, sums that become a leaf's .grad, hooks that keep a gradient, and `loss.backward()` on
one-element outputs of every shape, dtype and retain_graph setting (Note [Input buffers])."""
import numpy as np
import pytest

from _backend import fg
from _fd import check_grad


# ------------------------------------------------------------------ a leaf used many times
@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [1, 16])
def test_leaf_used_k_times(k, n):
    def f(w, x):
        y = x
        for _ in range(k):
            y = (y * w + w).tanh()
        return y.sum()
    rng = np.random.default_rng(k)
    check_grad(f, [rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)])


def test_w1_chain_matches_numpy_by_hand():
    x = np.linspace(0.1, 0.2, 16)
    w0 = np.linspace(0.2, 0.3, 16)
    w = fg.tensor(w0, requires_grad=True)
    y = fg.tensor(x)
    for _ in range(25):
        y = (y * w + w).tanh().exp()
    y.sum().backward()
    # by hand
    saved, yy = [], x
    for _ in range(25):
        t = np.tanh(yy * w0 + w0)
        e = np.exp(t)
        saved.append((yy, t, e))
        yy = e
    g, gw = np.ones(16), np.zeros(16)
    for y_in, t, e in reversed(saved):
        g = g * e * (1 - t * t)
        gw += g * y_in + g
        g = g * w0
    np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-12)


def test_second_backward_accumulates_into_a_taken_sum():
    # w's gradient is a sum the engine made; it becomes w.grad, and the next backward adds to it
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        (w * 3 + w * 4 + w * 5).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [24.0, 24.0])


def test_non_leaf_used_three_times_with_retain_grad():
    x = fg.tensor([1.0, -2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    y = h + h + h * 4
    y.sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [12.0, 12.0])


def test_shared_gradient_is_not_modified_by_a_later_sum():
    # AddBackward0 hands one tensor to both inputs; summing further gradients into it must not
    # change the value a retain_grad'ed tensor (or a hook) already saw
    x = fg.tensor([1.0], requires_grad=True)
    a = x * 1
    b = x * 1
    s = a + b
    s.retain_grad()
    seen = []
    a.register_hook(lambda g: seen.append(g))
    (s + a * 10).sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), [1.0])
    np.testing.assert_array_equal(seen[0].numpy(), [11.0])
    np.testing.assert_array_equal(x.grad.numpy(), [12.0])


def test_leaf_hook_keeps_gradient_that_is_not_aliased_with_grad():
    w = fg.tensor([1.0, 1.0], requires_grad=True)
    kept = []
    w.register_hook(lambda g: kept.append(g))
    (w * 2 + w * 3 + w).sum().backward()
    (w * 2 + w * 3 + w).sum().backward()
    np.testing.assert_array_equal(kept[0].numpy(), [6.0, 6.0])
    np.testing.assert_array_equal(w.grad.numpy(), [12.0, 12.0])


def test_accumulate_grad_prehook_keeps_gradient():
    w = fg.tensor([1.0], requires_grad=True)
    y = w * 2 + w * 3
    acc = y.grad_fn.next_functions[0][0].next_functions[0][0]
    kept = []
    acc.register_prehook(lambda grads: kept.append(grads[0]))
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_array_equal(kept[0].numpy(), [5.0])
    np.testing.assert_array_equal(w.grad.numpy(), [10.0])


def test_sum_of_mixed_dtypes_and_broadcast_uses():
    w = fg.tensor([[1.0, 2.0]], dtype=fg.float32, requires_grad=True)
    x = fg.tensor([[1.0], [2.0], [3.0]], dtype=fg.float64)
    y = (w * x).sum() + (w + w).sum() + (w * w).sum()
    y.backward()
    assert w.grad.dtype == fg.float32 and tuple(w.grad.shape) == (1, 2)
    np.testing.assert_allclose(w.grad.numpy(), [[6 + 2 + 2, 6 + 2 + 4]])


def test_create_graph_sums_stay_differentiable():
    w = fg.tensor([1.5, -0.5], requires_grad=True)
    y = (w * w * w + w * w + w).sum()
    (g,) = fg.autograd.grad(y, w, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * np.array([1.5, -0.5]) ** 2
                               + 2 * np.array([1.5, -0.5]) + 1)
    g.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 6 * np.array([1.5, -0.5]) + 2)


def test_grad_of_leaf_used_many_times_is_not_aliased_across_calls():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    (g1,) = fg.autograd.grad((w * 2 + w * 3 + w).sum(), w)
    (g2,) = fg.autograd.grad((w * 2 + w * 3 + w).sum(), w)
    assert g1 is not g2
    np.testing.assert_array_equal(g1.numpy(), [6.0, 6.0])
    assert w.grad is None


# ------------------------------------------------------------------ loss.backward() entry
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_seed_of_one_element_output(shape, dtype):
    dt = getattr(fg, dtype)
    w = fg.tensor(np.full(shape, 3.0), dtype=dt, requires_grad=True)
    (w * w).backward()
    assert w.grad.dtype == dt and tuple(w.grad.shape) == shape
    np.testing.assert_array_equal(w.grad.numpy(), np.full(shape, 6.0))


def test_backward_on_leaf_itself():
    w = fg.tensor(2.0, requires_grad=True)
    w.backward()
    w.backward()
    assert w.grad.item() == 2.0


@pytest.mark.parametrize("retain", [None, False])
def test_backward_frees_graph_unless_retained(retain):
    w = fg.tensor(2.0, requires_grad=True)
    y = w * w
    y.backward(retain_graph=retain)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_backward_retain_graph_true_allows_second():
    w = fg.tensor(2.0, requires_grad=True)
    y = (w * w).exp()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(w.grad.item(), 2 * 4 * np.exp(4.0), rtol=1e-6)


def test_backward_entry_errors_unchanged():
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does "
                                           "not have a grad_fn"):
        fg.tensor(1.0).backward()
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (w * 2).backward()


def test_backward_with_gradient_and_inputs_still_work():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    v = fg.tensor([3.0], requires_grad=True)
    y = w * v
    y.backward(fg.tensor([1.0, 10.0]), inputs=[w])
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 30.0])
    assert v.grad is None
    z = (w * w).sum()
    z.backward(create_graph=True)
    assert w.grad.requires_grad


def test_backward_with_truthy_retain_graph():
    w = fg.tensor(2.0, requires_grad=True)
    y = w * w
    y.backward(retain_graph=1)
    y.backward()
    assert w.grad.item() == 8.0


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_implicit_seed_through_autograd_backward_and_grad(dtype):
    dt = getattr(fg, dtype)
    w = fg.tensor([[2.0]], dtype=dt, requires_grad=True)
    fg.autograd.backward(w * w)
    assert w.grad.dtype == dt and w.grad.tolist() == [[4.0]]
    (g,) = fg.autograd.grad(w * 3, w)
    assert g.dtype == dt and g.tolist() == [[3.0]]


# ------------------------------------------------------------------ saved outputs
def test_saved_output_unpacked_under_create_graph_and_after_release():
    x = fg.tensor([0.5, -1.0], dtype=fg.float64, requires_grad=True)
    y = x.tanh().exp()
    (g,) = fg.autograd.grad(y.sum(), x, create_graph=True)
    t = np.tanh([0.5, -1.0])
    np.testing.assert_allclose(g.detach().numpy(), np.exp(t) * (1 - t * t), rtol=1e-12)
    (gg,) = fg.autograd.grad(g.sum(), x)
    d = np.exp(t) * (1 - t * t) ** 2 + np.exp(t) * (-2 * t) * (1 - t * t)
    np.testing.assert_allclose(gg.numpy(), d, rtol=1e-12)
    z = x.exp()
    z.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.sum().backward()


def test_saved_output_survives_dropping_the_output():
    x = fg.tensor([0.25, 2.0], dtype=fg.float64, requires_grad=True)
    s = x.exp().sum()            # the output of exp is gone; its node keeps the values
    s.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.25, 2.0]), rtol=1e-12)


# ------------------------------------------------------------------ reductions' broadcast back
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False)])
def test_reduction_gradient_broadcast_back(dim, keepdim):
    def f(a):
        s = a.sum() if dim is None else a.sum(dim, keepdim=keepdim)
        return (s * s).sum()
    check_grad(f, [np.random.default_rng(1).uniform(-1, 1, (2, 3, 4))])


def test_grad_from_a_broadcast_is_a_writeable_copy():
    w = fg.tensor(np.ones((2, 3)), requires_grad=True)
    w.sum().backward()
    w.grad.add_(1)                        # the broadcast view itself is read-only
    w.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((2, 3), 3.0))


# ------------------------------------------------------------------ a gradient a leaf may take
# A gradient only the engine holds becomes the leaf's .grad without a copy (torch steals one whose
# use count is what the engine holds). Every gradient someone else can see must be copied.
def _alias(t, arr):
    return np.shares_memory(t.grad.numpy(), arr)


def test_fresh_gradients_become_grad_with_correct_values_and_accumulate():
    a = fg.tensor([0.1, 0.2, 0.3], dtype=fg.float64, requires_grad=True)
    b = fg.tensor([0.4, 0.5, 0.6], dtype=fg.float64, requires_grad=True)
    c = fg.tensor([0.5, 0.5, 0.5], dtype=fg.float64, requires_grad=True)
    (a * b + c).tanh().sum().backward()
    t = np.tanh(np.array([0.54, 0.6, 0.68]))
    np.testing.assert_allclose(a.grad.numpy(), (1 - t * t) * [0.4, 0.5, 0.6], rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), (1 - t * t) * [0.1, 0.2, 0.3], rtol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), 1 - t * t, rtol=1e-12)
    for x, y in [(a, b), (a, c), (b, c)]:
        assert not _alias(x, y.grad.numpy())
    ga = a.grad
    (a * b + c).tanh().sum().backward()            # a second backward adds into the taken grad
    assert a.grad is ga
    np.testing.assert_allclose(a.grad.numpy(), 2 * (1 - t * t) * [0.4, 0.5, 0.6], rtol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), 2 * (1 - t * t), rtol=1e-12)


def test_gradient_passed_to_two_leaves_is_not_shared():
    # AddBackward0 passes one gradient tensor to both inputs
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    c = fg.tensor([3.0, 4.0], requires_grad=True)
    (a + c).sum().backward()
    assert not _alias(a, c.grad.numpy())
    a.grad.numpy()[:] = 7
    np.testing.assert_array_equal(c.grad.numpy(), [1.0, 1.0])


def test_gradient_kept_by_retain_grad_is_not_taken():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    c = fg.tensor([3.0, 4.0], requires_grad=True)
    h = a * 2
    h.retain_grad()
    (h + c).sum().backward()                        # c receives the tensor that is h.grad
    assert not _alias(c, h.grad.numpy())
    c.grad.numpy()[:] = 9
    np.testing.assert_array_equal(h.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def test_gradient_kept_by_a_tensor_hook_is_not_taken():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    c = fg.tensor([3.0, 4.0], requires_grad=True)
    h = a * 3
    kept = []
    h.register_hook(lambda g: kept.append(g))
    (h + c).sum().backward()
    assert not _alias(c, kept[0].numpy())
    c.grad.numpy()[:] = 9
    np.testing.assert_array_equal(kept[0].numpy(), [1.0, 1.0])


def test_gradient_kept_by_a_leaf_hook_is_not_taken():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([5.0, 6.0])
    kept = []
    a.register_hook(lambda g: kept.append(g))
    (a * b).sum().backward()
    assert not _alias(a, kept[0].numpy())
    a.grad.numpy()[:] = 0
    np.testing.assert_array_equal(kept[0].numpy(), [5.0, 6.0])


def test_view_of_a_gradient_is_not_taken():
    # ViewBackward0 hands a reshaped view of c's gradient to a
    a = fg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    c = fg.tensor([[1.0, 1.0], [1.0, 1.0]], requires_grad=True)
    (a.reshape(2, 2) * 1 + c).sum().backward()
    assert not _alias(a, c.grad.numpy())
    a.grad.numpy()[:] = 5
    np.testing.assert_array_equal(c.grad.numpy(), np.ones((2, 2)))


def test_user_gradient_and_captured_inputs_are_not_taken():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    g = fg.tensor([0.5, 0.25])
    a.backward(g)                                   # the root seed belongs to the caller
    assert not _alias(a, g.numpy())
    a.grad.numpy()[:] = 3
    np.testing.assert_array_equal(g.numpy(), [0.5, 0.25])
    a.grad = None
    b = fg.tensor([1.0, 1.0], requires_grad=True)
    h = a * b
    (h * 2).sum().backward(inputs=[a])
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])
    assert b.grad is None


# ------------------------------------------------------------------ ops that save their output
@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid", "relu", "reciprocal"])
def test_saved_output_modified_or_released_still_raises(op):
    x = fg.tensor([0.5, 1.5], requires_grad=True)
    y = getattr(x, op)()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    z = getattr(x, op)()
    z.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.sum().backward()


@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid", "relu", "reciprocal"])
@pytest.mark.parametrize("n", [1, 5000])
def test_saved_output_gradients_below_and_above_the_nogil_size(op, n):
    rng = np.random.default_rng(n)
    check_grad(lambda x: (getattr(x, op)() * x).sum(), [rng.uniform(0.2, 1.0, n)])

"""inference_mode and inference tensors, as parameters and in optimizer steps too (PyTorch 2.13
behaviour, checked against torch itself: FASTGRAD_TEST_BACKEND=torch runs this file on PyTorch)."""
import threading

import numpy as np
import pytest

from _backend import fg, REFERENCE
from _fd import check_grad

SAVED = "Inference tensors cannot be saved for backward"
INPLACE = "Inplace update to inference tensor outside InferenceMode is not allowed"
REQUIRES = "Setting requires_grad=True on inference tensor outside InferenceMode is not allowed"


def _x(*vals):
    return fg.tensor(list(vals), requires_grad=True)


def test_tensors_made_inside_are_inference_tensors():
    x = _x(1.0, 2.0, 3.0)
    n = fg.ones(3)
    with fg.inference_mode():
        a = fg.ones(3)
        b = x * 2
        c = fg.tensor([1.0, 2.0])
        cl = n.clone()
        assert fg.is_inference_mode_enabled() and not fg.is_grad_enabled()
    assert a.is_inference() and b.is_inference() and c.is_inference() and cl.is_inference()
    assert fg.is_inference(a) and not fg.is_inference(x)
    assert not b.requires_grad and b.grad_fn is None
    np.testing.assert_allclose(b.numpy(), [2.0, 4.0, 6.0])
    assert not x.is_inference() and not n.is_inference()
    assert not fg.is_inference_mode_enabled() and fg.is_grad_enabled()
    # ops on inference tensors outside inference mode give normal tensors
    assert not (a * 2).is_inference() and not (a + 1).is_inference()
    assert not a.clone().is_inference()


def test_views_and_detach_follow_their_base():
    n = fg.ones(4)
    x = _x(1.0, 2.0)
    with fg.inference_mode():
        a = fg.ones(4)
        assert not n.view(2, 2).is_inference()      # view of a normal tensor stays normal
        assert not n[1:].is_inference()
        assert not n.detach().is_inference()
        assert not x.detach().is_inference()
    assert a.view(2, 2).is_inference() and a[1:].is_inference() and a.detach().is_inference()
    assert not x.detach().is_inference()


def test_saving_an_inference_tensor_for_backward_raises():
    x = _x(1.0, 2.0, 3.0)
    with fg.inference_mode():
        a = fg.ones(3) * 2
    with pytest.raises(RuntimeError, match=SAVED):
        x * a                       # MulBackward0 saves `a` for x's gradient
    with pytest.raises(RuntimeError, match=SAVED):
        a * x
    with pytest.raises(RuntimeError, match=SAVED):
        fg.mul(a, x)
    with pytest.raises(RuntimeError, match="torch.no_grad()"):
        x.exp() * a                 # the message names the no_grad alternative


def test_inference_tensor_not_saved_is_fine_and_gradients_are_right():
    x = _x(1.0, 2.0, 3.0)
    with fg.inference_mode():
        a = fg.tensor([4.0, 5.0, 6.0])
    (x + a).sum().backward()        # add saves neither input
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 1.0])
    x.grad = None
    (x * a.clone()).sum().backward()  # the documented workaround: clone
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 5.0, 6.0])
    check_grad(lambda t: t * a.clone(), [np.array([1.0, 2.0, 3.0])],
               ref=lambda t: t * np.array([4.0, 5.0, 6.0]))
    with fg.no_grad():
        r = x * a                   # nothing recorded, nothing saved
    np.testing.assert_allclose(r.numpy(), [4.0, 10.0, 18.0])
    assert not r.is_inference()


@pytest.mark.parametrize("update", [
    lambda a: a.add_(1), lambda a: a.mul_(2), lambda a: a.sub_(1), lambda a: a.div_(2),
    lambda a: a.zero_(), lambda a: a.fill_(3.0), lambda a: a.copy_(fg.zeros(3)),
    lambda a: a.__setitem__(0, 1.0), lambda a: a.__iadd__(1), lambda a: a.view(3).add_(1),
])
def test_inplace_update_outside_inference_mode_raises(update):
    with fg.inference_mode():
        a = fg.ones(3)
    with pytest.raises(RuntimeError, match=INPLACE):
        update(a)
    if not REFERENCE:       # fastgrad checks before writing; torch 2.13 writes, then raises
        np.testing.assert_allclose(a.numpy(), [1.0, 1.0, 1.0])
    with fg.no_grad():                                          # no_grad does not help
        with pytest.raises(RuntimeError, match=INPLACE):
            update(a)
    with fg.inference_mode():                                   # inside it is allowed
        update(a)


def test_inplace_on_normal_tensor_inside_inference_mode():
    m = fg.ones(3)
    with fg.inference_mode():
        m.add_(1)
        mv = m.view(3)
    assert not m.is_inference() and m._version == 1
    mv.add_(1)                                                  # a normal view: allowed outside
    np.testing.assert_allclose(m.numpy(), [3.0, 3.0, 3.0])


def test_requires_grad_on_inference_tensor():
    with fg.inference_mode():
        a = fg.ones(3)
        b = fg.ones(2)
        b.requires_grad_()                                      # allowed inside
        assert b.requires_grad
    with pytest.raises(RuntimeError, match=REQUIRES):
        a.requires_grad_()
    with pytest.raises(RuntimeError, match=REQUIRES):
        a.requires_grad = True
    a.requires_grad_(False)                                     # turning it off is fine
    assert not a.requires_grad
    c = a.clone().requires_grad_()
    (c * c).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), [2.0, 2.0, 2.0])


def test_inference_tensor_has_no_version_counter():
    with fg.inference_mode():
        a = fg.ones(3)
    with pytest.raises(RuntimeError, match="Inference tensors do not track version counter"):
        a._version


def test_nested_inference_mode_false():
    x = _x(1.0, 2.0)
    with fg.inference_mode():
        a = fg.ones(2)
        with fg.inference_mode(False):
            assert not fg.is_inference_mode_enabled() and fg.is_grad_enabled()
            d = fg.ones(2)
            e = x * 3
            assert not d.is_inference() and not e.is_inference()
            assert e.requires_grad and type(e.grad_fn).__name__ == "MulBackward0"
            with pytest.raises(RuntimeError, match=SAVED):
                x * a
        assert fg.is_inference_mode_enabled() and not fg.is_grad_enabled()
    e.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    with fg.no_grad():
        with fg.inference_mode(False):                          # turns grad mode on
            assert fg.is_grad_enabled() and not fg.is_inference_mode_enabled()
        with fg.inference_mode():
            pass
        assert not fg.is_grad_enabled()                         # restored on exit


def test_enable_grad_inside_inference_mode_still_records_nothing():
    x = _x(1.0, 2.0)
    with fg.inference_mode():
        with fg.enable_grad():
            assert fg.is_grad_enabled()
            y = x * 2
    assert not y.requires_grad and y.grad_fn is None and y.is_inference()
    assert fg.is_grad_enabled() and not fg.is_inference_mode_enabled()


def test_decorator_forms():
    x = _x(1.0, 2.0)

    @fg.inference_mode()
    def f(z):
        return z * 2

    @fg.inference_mode
    def g(z):
        return z * 2

    @fg.inference_mode(False)
    def h(z):
        return z * 2

    for fn in (f, g):
        r = fn(x)
        assert r.is_inference() and not r.requires_grad
        np.testing.assert_allclose(r.numpy(), [2.0, 4.0])
    assert f.__name__ == "f" and g.__name__ == "g"
    with fg.inference_mode():
        r = h(x)
    assert not r.is_inference() and r.requires_grad
    assert type(fg.inference_mode().clone()) is fg.inference_mode


def test_module_forward_under_inference_mode():
    lin = fg.nn.Linear(2, 2)
    with fg.inference_mode():
        out = lin(fg.ones(1, 2))
    assert out.is_inference() and not out.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward()
    with fg.inference_mode():
        p = fg.nn.Parameter(fg.ones(2))
    assert p.is_inference() and p.requires_grad


def test_custom_function_saving_an_inference_tensor_raises():
    class Twice(fg.autograd.Function):
        @staticmethod
        def forward(ctx, t, u):
            ctx.save_for_backward(u)
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    x = _x(1.0, 2.0)
    with fg.inference_mode():
        a = fg.ones(2)
        r = Twice.apply(x, a)
    assert r.is_inference() and not r.requires_grad
    with pytest.raises(RuntimeError, match=SAVED):
        Twice.apply(x, a)


def test_inference_mode_is_per_thread():
    seen = {}

    def worker():
        seen["mode"] = fg.is_inference_mode_enabled()
        seen["inf"] = fg.ones(1).is_inference()

    with fg.inference_mode():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen == {"mode": False, "inf": False}


# --- inference tensors ------------------------------------------------------------------------

def test_parameter_of_an_inference_tensor():
    with fg.inference_mode():
        t = fg.ones(3)
        inside = fg.nn.Parameter(fg.ones(3))
    assert inside.requires_grad and inside.is_inference()
    with pytest.raises(RuntimeError, match=REQUIRES):
        fg.nn.Parameter(t)
    p = fg.nn.Parameter(t, requires_grad=False)
    assert not p.requires_grad and p.is_inference() and p.tolist() == [1.0, 1.0, 1.0]
    q = fg.nn.Parameter(fg.ones(2))
    assert q.requires_grad and not q.is_inference()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_optimizer_step_on_inference_parameters_outside_inference_mode(name):
    with fg.inference_mode():
        p = fg.nn.Parameter(fg.ones(3))
    p.grad = fg.ones(3)
    opt = getattr(fg.optim, name)([p], lr=0.1)
    with pytest.raises(RuntimeError, match=INPLACE):
        opt.step()
    with fg.inference_mode():
        q = fg.nn.Parameter(fg.ones(3))
        q.grad = fg.ones(3)
        fg.optim.SGD([q], lr=0.1).step()
    np.testing.assert_allclose(q.detach().numpy(), [0.9, 0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("outer", ["enabled", "no_grad"])
def test_backward_inside_inference_mode_keeps_grad_mode(outer):
    x = fg.ones(2, requires_grad=True)
    y = (x * x).sum()
    with (fg.no_grad() if outer == "no_grad" else fg.enable_grad()):
        before = fg.is_grad_enabled()
        with fg.inference_mode():
            with fg.enable_grad():
                assert fg.is_grad_enabled()
                y.backward(retain_graph=True)
                assert fg.is_grad_enabled()
                fg.autograd.grad(y, [x])
                assert fg.is_grad_enabled()
            assert not fg.is_grad_enabled()
        assert fg.is_grad_enabled() == before
    assert x.grad.tolist() == [2.0, 2.0]

"""Small PyTorch 2.13 compatibility points (each checked against torch itself:
FASTGRAD_TEST_BACKEND=torch runs this file on PyTorch): inference tensors as parameters and in
optimizer steps, grad mode after a backward inside inference mode, dtypes of NumPy scalars in
tensor(), the sign of zero through relu/clamp/maximum, and the grad_fn names of zero_/fill_."""
import numpy as np
import pytest

from _backend import fg

REQUIRES = "Setting requires_grad=True on inference tensor outside InferenceMode is not allowed"
INPLACE = "Inplace update to inference tensor outside InferenceMode is not allowed"


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


# --- tensor() of NumPy scalars ------------------------------------------------------------------

@pytest.mark.parametrize("data, dtype", [
    ([np.float64(1.5)], "float64"), ([np.float32(1.5)], "float32"), ([np.int32(3)], "int32"),
    ([np.bool_(True)], "bool"), ([np.int64(2)], "int64"), ([np.float16(1)], "float16"),
    ([np.uint8(3)], "uint8"), (np.float64(1.5), "float64"), (np.float32(2), "float32"),
    (np.int32(3), "int32"), (np.bool_(True), "bool"), (np.array(1.5), "float64"),
    (np.array(2, np.int32), "int32"), ([np.float64(1.5), 2], "float64"),
    ([np.float32(1), np.float64(2)], "float64"), ([np.int32(1), np.int8(2)], "int32"),
    ([np.int32(1), 2.5], "float32"), ([[np.float64(1)], [2.0]], "float64"),
    ([1.5, 2], "float32"), ([1, 2], "int64"), ([True, False], "bool"),
    ((np.float64(0.25), np.float64(0.5)), "float64")])
def test_numpy_scalars_keep_their_dtype(data, dtype):
    t = fg.tensor(data)
    assert t.dtype == getattr(fg, dtype)
    np.testing.assert_array_equal(t.numpy(), np.array(data).astype(t.numpy().dtype))


# --- sign of zero ---------------------------------------------------------------------------------

def _sign(t):
    return np.copysign(1.0, t.numpy()).tolist()


def test_relu_clamp_maximum_keep_negative_zero():
    z = fg.tensor([-0.0, 0.0])
    assert _sign(fg.relu(z)) == [-1.0, 1.0]
    assert _sign(z.relu()) == [-1.0, 1.0]
    assert _sign(fg.nn.functional.relu(z)) == [-1.0, 1.0]
    assert _sign(z.double().relu()) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, min=0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, max=0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, 0, 1)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, min=-0.0)) == [-1.0, 1.0]
    assert _sign(fg.clamp(z, max=-0.0)) == [-1.0, 1.0]
    zero, neg = fg.tensor(0.0), fg.tensor(-0.0)
    assert _sign(fg.maximum(neg, zero)) == -1.0 and _sign(fg.maximum(zero, neg)) == 1.0
    assert _sign(fg.minimum(neg, zero)) == -1.0 and _sign(fg.minimum(zero, neg)) == 1.0
    assert _sign(fg.clamp(z, min=fg.tensor(0.0))) == [-1.0, 1.0]


@pytest.mark.parametrize("act", ["elu", "leaky_relu", "silu"])   # torch's vectorised gelu is not consistent
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_keep_negative_zero(act, dtype):
    z = fg.tensor([-0.0, 0.0], dtype=getattr(fg, dtype))
    assert _sign(getattr(fg.nn.functional, act)(z)) == [-1.0, 1.0]
    # vectorised loops too (PyTorch's own vectorised maximum/minimum do not keep the tie rule)
    big = fg.zeros(1003, dtype=fg.float64) * -1.0
    assert np.signbit(big.clamp(0.0, 1.0).numpy()).all() and np.signbit(big.relu().numpy()).all()
    assert np.signbit(big.float().clamp(min=0).numpy()).all()
    assert np.signbit(big.float().relu().numpy()).all()


def test_clamp_nan_and_crossed_bounds():
    nan = float("nan")
    x = fg.tensor([-1.0, 0.5, 2.0, nan])
    r = x.clamp(0.0, 1.0).numpy()
    assert r[:3].tolist() == [0.0, 0.5, 1.0] and np.isnan(r[3])
    assert np.isnan(x.clamp(min=nan).numpy()).all()
    assert np.isnan(x.clamp(max=nan).numpy()).all()
    c = x.clamp(min=1.0, max=0.0).numpy()
    assert c[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(c[3])
    assert fg.tensor([1, 5]).clamp(min=2.5).tolist() == [2.5, 5.0]
    assert fg.tensor([1, 5]).clamp(min=2).dtype == fg.int64
    m = fg.maximum(x, fg.tensor(nan)).numpy()
    assert np.isnan(m).all()


# --- grad_fn names of zero_ / fill_ ----------------------------------------------------------------

def test_zero_and_fill_grad_fn_names():
    x = fg.zeros(3, requires_grad=True)
    y = x * 1
    assert y.zero_().grad_fn.name() == "ZeroBackward0"
    assert len(y.grad_fn.next_functions) == 1
    y = x * 1
    assert y.fill_(2).grad_fn.name() == "FillBackward2"
    assert len(y.grad_fn.next_functions) == 1
    y = x * 1
    assert y.fill_(fg.tensor(2.0)).grad_fn.name() == "FillBackward3"
    assert y.grad_fn.next_functions[1][0] is None


def test_fill_with_a_tensor_value_gets_its_gradient():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = fg.tensor(2.0, requires_grad=True)
    y = x * 1
    y.fill_(v)
    assert y.grad_fn.name() == "FillBackward3"
    (y * fg.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert v.grad.item() == 7.0 and x.grad.tolist() == [0.0, 0.0, 0.0]
    w = fg.tensor(5.0, requires_grad=True)
    z = fg.zeros(2)
    z.fill_(w)
    assert z.requires_grad and z.grad_fn.name() == "FillBackward3"
    z.sum().backward()
    assert w.grad.item() == 2.0
    u = x * 1
    u.zero_().sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]

"""gradcheck / gradgradcheck: pass on right gradients, raise GradcheckError on wrong ones."""
import importlib
import warnings

import numpy as np
import pytest

from _backend import fg

GradcheckError = importlib.import_module(fg.__name__ + ".autograd.gradcheck").GradcheckError


def _x(n=3, seed=0):
    return fg.tensor(np.random.default_rng(seed).standard_normal(n), dtype=fg.float64,
                     requires_grad=True)


class Leaky(fg.autograd.Function):
    """x * 3 with a backward off by 1e-2: small enough to need a real comparison."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3.01


def test_passes_on_correct_gradients_several_inputs_and_outputs():
    assert fg.autograd.gradcheck(lambda a, b: (a * b, (a / b.exp()).sum()), (_x(), _x(seed=1)))


def test_wrong_gradient_raises_with_both_jacobians():
    x = _x()
    with pytest.raises(GradcheckError) as info:
        fg.autograd.gradcheck(Leaky.apply, (x,))
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert msg.startswith("Jacobian mismatch for output 0 with respect to input 0,\nnumerical:")
    assert "analytical:" in msg and "3.01" in msg


def test_which_input_is_named():
    a, b = _x(), _x(seed=1)
    with pytest.raises(GradcheckError, match="with respect to input 1"):
        fg.autograd.gradcheck(lambda a, b: a + Leaky.apply(b), (a, b))


def test_raise_exception_false_returns_false():
    assert fg.autograd.gradcheck(Leaky.apply, (_x(),), raise_exception=False) is False


def test_float32_input_warns():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fg.autograd.gradcheck(lambda x: x * 2, (x,), eps=1e-2, atol=1e-2, raise_exception=False)
    assert any("Input #0 requires gradient and is not a double precision floating point"
               in str(m.message) for m in w)


def test_non_tensor_args_and_inputs_without_grad():
    k = fg.tensor([2.0, 3.0], dtype=fg.float64)
    assert fg.autograd.gradcheck(lambda x, k, p: (x * k) ** p, (_x(2), k, 2))


def test_gradgradcheck_catches_a_wrong_double_backward():
    class BadDouble(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * g * x.detach()             # right value, but not differentiable in x

    x = _x()
    assert fg.autograd.gradcheck(BadDouble.apply, (x,))
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        fg.autograd.gradgradcheck(BadDouble.apply, (x,))
    assert fg.autograd.gradgradcheck(lambda x: (x * x).exp(), (x,))

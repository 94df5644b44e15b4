"""Built-in grad_fn nodes carry no per-instance __dict__ (as in torch: setting an unknown attribute
raises AttributeError); metadata is a dict kept per node; custom Function nodes keep ctx state."""
import numpy as np
import pytest

from _backend import fg


def test_builtin_node_rejects_unknown_attribute():
    y = fg.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(AttributeError):
        y.grad_fn.foo = 1


def test_metadata_is_one_dict_per_node():
    x = fg.tensor([1.0], requires_grad=True)
    y = x * 2
    y.grad_fn.metadata["k"] = 3
    assert y.grad_fn.metadata == {"k": 3}
    assert (x * 2).grad_fn.metadata == {}


def test_custom_function_ctx_keeps_attributes():
    class Scale(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None

    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = Scale.apply(x, 3.0)
    assert y.grad_fn.k == 3.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])

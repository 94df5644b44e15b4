"""fastgrad.Tensor's arithmetic slots call TensorBase's C operators directly (fast_number_slots);
operators of both orientations, in-place ones, and subclasses that override one must still work."""
import numpy as np
import pytest

from _backend import REFERENCE, fg


def test_binary_operators_both_orientations():
    t = fg.tensor([1.0, 2.0], dtype=fg.float64)
    cases = [(t + 2, [3, 4]), (2 + t, [3, 4]), (t - 1, [0, 1]), (1 - t, [0, -1]),
             (t * 3, [3, 6]), (3 * t, [3, 6]), (t / 2, [0.5, 1]), (2 / t, [2, 1]),
             (t ** 2, [1, 4]), (2 ** t, [2, 4]), (-t, [-1, -2]), (abs(-t), [1, 2]), (+t, [1, 2]),
             (np.float64(2) * t, [2, 4]), (t * np.float64(2), [2, 4]), (t * t, [1, 4])]
    for got, want in cases:
        assert isinstance(got, fg.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)


def test_inplace_operators_keep_the_tensor():
    t = fg.tensor([1.0, 2.0])
    u = t
    t += 1
    t *= 2
    t -= 1
    t /= 2
    assert t is u
    np.testing.assert_array_equal(u.numpy(), [1.5, 2.5])


def test_operators_on_parameters_record_gradients():
    p = fg.nn.Parameter(fg.tensor([1.0, 2.0]))
    (2 * p * p + p).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [5.0, 9.0])


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own slot installer")
def test_a_subclass_overriding_an_operator_keeps_its_override():
    class T(fg.Tensor):
        def __mul__(self, other):
            return "mul"

        def __radd__(self, other):
            return "radd"

    fg._core.tensor.fast_number_slots(T)
    t = T.__new__(T)
    t._set_data(np.array([1.0]))
    assert t * 2 == "mul"
    assert 1 + t == "radd"
    np.testing.assert_array_equal((t - 1).numpy(), [0.0])


def test_non_tensor_operand_raises_type_error():
    t = fg.tensor([1.0])
    with pytest.raises(TypeError):
        t * "a"
    with pytest.raises(TypeError):
        object() + t

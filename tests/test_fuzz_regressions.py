"""Faults the differential fuzzer (tests/fuzz_graphs.py) found, one focused test each, with the
values PyTorch 2.13 gives (the suite's reference mode runs them against PyTorch itself)."""
import math

import numpy as np
import pytest

from _backend import fg

F = fg.nn.functional


# -- integer powers with a negative exponent: 0 except for a base of +-1 (NumPy refuses them) --

def test_number_to_negative_int_tensor_power():
    out = 3 ** fg.tensor([-2, 2, 0])
    assert out.dtype == fg.int64
    assert out.tolist() == [0, 9, 1]
    assert ((-1) ** fg.tensor([-1, -2])).tolist() == [-1, 1]
    assert (1 ** fg.tensor([-7])).tolist() == [1]


def test_int_tensor_to_negative_int_tensor_power():
    out = fg.tensor([0, 1, -1, -1, 2, -3]) ** fg.tensor([-1, -5, -2, -3, -1, -2])
    assert out.dtype == fg.int64
    assert out.tolist() == [0, 1, 1, -1, 0, 0]


def test_int_tensor_to_negative_python_int_still_raises():
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        fg.tensor([2]) ** -1


# -- pow's exponent gradient takes log(base) in the result's dtype --

@pytest.mark.parametrize("base_dtype", ["int64", "float32"])
def test_pow_exponent_grad_is_float64_exact(base_dtype):
    base = fg.tensor([2, 3], dtype=getattr(fg, base_dtype))
    e = fg.tensor([-0.8876547086569173, 0.3], dtype=fg.float64, requires_grad=True)
    (base ** e).sum().backward()
    expect = [2 ** -0.8876547086569173 * math.log(2), 3 ** 0.3 * math.log(3)]
    np.testing.assert_allclose(e.grad.numpy(), expect, rtol=1e-15)


# -- subtraction of booleans is refused, as PyTorch refuses it --

@pytest.mark.parametrize("expr", [
    lambda: fg.tensor([1.0]) - True,
    lambda: True - fg.tensor([1]),
    lambda: fg.tensor([True]) - fg.tensor([1.0]),
    lambda: fg.tensor([1.0]) - fg.tensor([True]),
    lambda: fg.tensor([1.0]).sub_(True),
    lambda: fg.sub(fg.tensor([1.0]), fg.tensor([True])),
    lambda: fg.tensor([1.0], requires_grad=True).clone().sub_(fg.tensor(False)),
])
def test_bool_subtraction_raises(expr):
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor"):
        expr()


def test_two_bool_subtraction_raises():
    with pytest.raises(RuntimeError, match="with two bool tensors is not supported"):
        fg.tensor([True]) - True


def test_bool_addition_still_works():
    assert (fg.tensor([1.0]) + True).tolist() == [2.0]


# -- masked_fill of an integer tensor with a value it cannot hold --

@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e30, -float("inf")])
def test_masked_fill_int_overflow_raises(value):
    x = fg.tensor([1, -4])
    with pytest.raises(RuntimeError, match="value cannot be converted to type int64_t without "
                                           "overflow"):
        x.masked_fill(x > 0, value)


def test_masked_fill_int_with_float_in_range_truncates():
    x = fg.tensor([1, -4])
    assert x.masked_fill(x > 0, 2.7).tolist() == [2, -4]


# -- expand() without sizes --

def test_expand_without_sizes_is_a_type_error():
    with pytest.raises(TypeError, match="expand\\(\\) missing 1 required positional"):
        fg.tensor(False).expand()


# -- scatter_add needs src of the input's dtype --

def test_scatter_add_dtype_mismatch_raises():
    x = fg.zeros(3)
    src = fg.tensor([1.0, 2.0, 3.0], dtype=fg.float64)
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        fg.scatter_add(x, 0, fg.tensor([0, 0, 1]), src)


# -- float-only kernels on an integer tensor: NotImplementedError (a RuntimeError) --

@pytest.mark.parametrize("fn", [
    lambda x: F.gelu(x), lambda x: F.gelu(x, approximate="tanh"), lambda x: F.silu(x),
    lambda x: F.softplus(x), lambda x: F.elu(x), lambda x: F.leaky_relu(x),
    lambda x: fg.softmax(x, 0), lambda x: F.log_softmax(x, dim=-1),
    lambda x: F.layer_norm(x, (2,)),
], ids=["gelu", "gelu_tanh", "silu", "softplus", "elu", "leaky_relu", "softmax", "log_softmax",
        "layer_norm"])
def test_float_only_kernels_raise_not_implemented_for_ints(fn):
    with pytest.raises(NotImplementedError, match="not implemented for"):
        fn(fg.tensor([3, 1]))


# -- remainder's divisor gradient uses the forward's floor quotient --

def test_remainder_divisor_grad_with_infinite_divisor():
    x = fg.tensor([0.126, -0.5, 2.0], requires_grad=True)
    y = fg.tensor([-float("inf"), float("inf"), 0.75], requires_grad=True)
    out = x % y
    out.sum().backward()
    assert out.tolist()[:2] == [-float("inf"), float("inf")]
    # -(x // y): 0.126 // -inf == -1 and -0.5 // inf == -1 (floor(x / y) would give -0)
    assert y.grad.tolist() == [1.0, 1.0, -2.0]
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


# -- prod's gradient is prod / x when nothing is zero (an underflowed or infinite product) --

def test_prod_grad_with_infinity_is_prod_over_x():
    x = fg.tensor([-float("inf"), 1.4542558734138378, -1.0], dtype=fg.float64, requires_grad=True)
    x.prod().backward()
    g = x.grad.numpy()
    assert math.isnan(g[0]) and g[1] == float("inf") and g[2] == -float("inf")


def test_prod_grad_with_underflowed_product():
    x = fg.tensor([[-0.6694312240767955, 0.5, 5e-324], [0.386, -0.527, 0.125]],
                  dtype=fg.float64, requires_grad=True)
    x.prod(1).sum().backward()
    assert x.grad.numpy()[0].tolist() == [0.0, 0.0, 0.0]     # prod underflowed to -0.0
    np.testing.assert_allclose(x.grad.numpy()[1], [-0.527 * 0.125, 0.386 * 0.125, 0.386 * -0.527],
                               rtol=1e-14)


def test_prod_grad_with_one_zero_stays_exact():
    x = fg.tensor([2.0, 0.0, 3.0], dtype=fg.float64, requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 6.0, 0.0]


@pytest.mark.parametrize("fn", [fg.softmax, F.log_softmax])
def test_softmax_checks_the_dim_before_the_dtype(fn):
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(fg.tensor([0, 0, 0]), -2)


def test_cross_entropy_and_nll_loss_of_ints_raise_not_implemented():
    target = fg.tensor([0, 1])
    with pytest.raises(NotImplementedError, match="not implemented for"):
        F.cross_entropy(fg.tensor([[0, 2], [2, 0]]), target, label_smoothing=0.1)
    with pytest.raises(NotImplementedError, match="not implemented for"):
        F.nll_loss(fg.tensor([[0, 2], [2, 0]]), target)


# -- the order of a backward formula decides where it overflows: PyTorch's order --

def test_div_divisor_grad_is_a_over_b_over_b():
    # b * b overflows float32 (1e40) while (a / b) / b is 1e-10
    a = fg.tensor([1e30], dtype=fg.float32)
    b = fg.tensor([1e20], dtype=fg.float32, requires_grad=True)
    (a / b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [-1e-10], rtol=1e-6)


def test_div_divisor_grad_with_infinite_dividend():
    a = fg.tensor([float("inf")], dtype=fg.float32)
    b = fg.tensor([-1e30], dtype=fg.float32, requires_grad=True)
    (a / b).sum().backward()
    assert b.grad.tolist() == [-float("inf")]


def test_reciprocal_grad_squares_the_result_first():
    # y = 1e-30; y * y underflows float32 to 0, so -g * (y * y) is nan for g = inf
    x = fg.tensor([1e30, 2.0], dtype=fg.float32, requires_grad=True)
    x.reciprocal().backward(fg.tensor([float("inf"), 1.0]))
    g = x.grad.numpy()
    assert math.isnan(g[0]) and g[1] == -0.25


# -- float-valued ops of a non-contiguous integer tensor (an expand, a transpose) --

@pytest.mark.parametrize("name", ["sqrt", "exp", "reciprocal", "sin", "tanh", "sigmoid"])
def test_float_op_of_expanded_or_transposed_int_tensor(name):
    base = np.array([[1, 3], [-3, 3], [0, -3]])
    for t, ref in [(fg.tensor([-2, -2, 2]).expand(2, 3), np.broadcast_to([-2, -2, 2], (2, 3))),
                   (fg.tensor(base).transpose(1, -2), base.T)]:
        out = getattr(t, name)()
        assert out.dtype == fg.float32
        with np.errstate(all="ignore"):
            expect = {"sqrt": np.sqrt, "exp": np.exp, "reciprocal": lambda a: 1 / a,
                      "sin": np.sin, "tanh": np.tanh,
                      "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[name](ref.astype(np.float32))
        np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)


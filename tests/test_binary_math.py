"""nansum, logaddexp2, copysign, fmax, fmin, xlogy, nextafter, float_power, ldexp, dist and lerp's
dtype rules: values against float64 NumPy references, gradients against float64 central finite
differences, PyTorch's gradients at the points where the derivative is undefined, result dtypes,
broadcasting, 0-d and 0-size tensors, in-place forms, error types, and PyTorch itself where it is
installed."""
import math
import warnings

import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

NAN, INF = float("nan"), float("inf")
LN2 = math.log(2.0)


def _xlogy(x, y):
    with np.errstate(all="ignore"):
        r = np.where(x == 0, 0.0, x * np.log(y))
    return np.where(np.isnan(y), np.nan, r)


# name -> (NumPy float64 reference, domain of input, domain of other)
BINARY = {
    "logaddexp2": (np.logaddexp2, (-5, 5), (-5, 5)),
    "copysign": (np.copysign, (0.2, 3), (-3, 3)),
    "fmax": (np.fmax, (-3, 3), (-3, 3)),
    "fmin": (np.fmin, (-3, 3), (-3, 3)),
    "xlogy": (_xlogy, (-3, 3), (0.2, 4)),
    "nextafter": (np.nextafter, (-3, 3), (-3, 3)),
    "ldexp": (lambda x, e: x * np.exp2(e), (-3, 3), (-4, 4)),
    "float_power": (np.power, (0.2, 3), (-2, 2)),
}
NODE = {"logaddexp2": "Logaddexp2Backward0", "copysign": "CopysignBackward0",
        "fmax": "FmaxBackward0", "fmin": "FminBackward0", "xlogy": "XlogyBackward0",
        "nextafter": "NextafterBackward0", "ldexp": "LdexpBackward0", "float_power": "PowBackward1"}


def _t(values, dtype=None, requires_grad=False):
    return fg.tensor(values, dtype=fg.float64 if dtype is None else dtype,
                     requires_grad=requires_grad)


def _grads(name, a, b, **kw):
    """(out, grad of a, grad of b) of fg.<name>(a, b).sum() on float64 leaves."""
    x, y = _t(a, requires_grad=True), _t(b, requires_grad=True)
    out = getattr(fg, name)(x, y, **kw)
    out.sum().backward()
    return out.detach().numpy(), x.grad.numpy(), y.grad.numpy()


def _node(t):
    return type(t.grad_fn).__name__


@pytest.fixture
def torch():
    """PyTorch to compare with (skips without it, and in reference mode, where fg is torch)."""
    if REFERENCE:
        pytest.skip("compares fastgrad with torch")
    return pytest.importorskip("torch")


# --- values and gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BINARY))
def test_values_and_gradients_against_finite_differences_with_broadcasting(name, rng):
    ref, (lo, hi), (lo2, hi2) = BINARY[name]
    a, b = rng.uniform(lo, hi, (2, 3)), rng.uniform(lo2, hi2, (3,))
    out = check_grad(lambda x, y: getattr(fg, name)(x, y), [a, b], ref=ref, ref_rtol=1e-14)
    assert out.shape == (2, 3)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_float32_values_against_float64_reference(name, rng):
    ref, (lo, hi), (lo2, hi2) = BINARY[name]
    a = rng.uniform(lo, hi, 50).astype(np.float32)
    b = rng.uniform(lo2, hi2, 50).astype(np.float32)
    out = getattr(fg, name)(fg.tensor(a), fg.tensor(b))
    expected = ref(a.astype(np.float64), b.astype(np.float64))
    if name == "nextafter":                     # one float32 step, not a float64 one
        expected = np.nextafter(a, b)
    assert str(out.dtype) == ("torch.float64" if name == "float_power" else "torch.float32")
    np.testing.assert_allclose(out.numpy(), expected, rtol=3e-7 if name != "float_power" else 1e-15,
                               atol=1e-7 if name == "logaddexp2" else 0)   # results near 0


def test_node_names():
    x = _t([0.5, 1.5], requires_grad=True)
    for name, node in NODE.items():
        assert _node(getattr(fg, name)(x, x)) == node, name
    assert _node(fg.copysign(x, -1.0)) == "CopysignBackward1"
    assert _node(fg.xlogy(2.0, x)) == "XlogyBackward1"
    assert _node(fg.xlogy(x, 2.0)) == "XlogyBackward2"
    assert _node(fg.float_power(x, 2.5)) == "PowBackward0"
    assert _node(fg.float_power(2.5, x)) == "PowBackward2"
    assert _node(fg.nansum(x)) == "NansumBackward0"
    assert _node(fg.dist(x, x * 2)) == "DistBackward0"
    assert _node(fg.lerp(x, x * 2, 0.3)) == "LerpBackward0"
    assert _node(fg.lerp(x, x * 2, _t(0.3))) == "LerpBackward1"


@pytest.mark.parametrize("name", ["xlogy", "logaddexp2", "copysign", "ldexp", "fmax"])
def test_second_derivatives(name, rng):
    ref, (lo, hi), (lo2, hi2) = BINARY[name]
    a = _t(rng.uniform(lo, hi, 4), requires_grad=True)
    b = _t(rng.uniform(lo2, hi2, 4), requires_grad=True)
    assert fg.autograd.gradgradcheck(lambda x, y: getattr(fg, name)(x, y), (a, b))


# --- PyTorch's gradients where the derivative is undefined ---------------------------------------

def test_fmax_fmin_send_ties_and_nan_to_the_operand_that_won():
    a = [1.0, 2.0, NAN, NAN, 3.0, -0.0, 0.0]
    b = [1.0, 3.0, 1.0, NAN, NAN, 0.0, -0.0]
    out, ga, gb = _grads("fmax", a, b)
    np.testing.assert_array_equal(out, [1, 3, 1, NAN, 3, 0, 0])
    assert list(np.signbit(out[5:])) == [True, False]         # a tie returns the first operand
    np.testing.assert_array_equal(ga, [1, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(gb, [0, 1, 1, 0, 0, 0, 0])
    out, ga, gb = _grads("fmin", a, b)
    np.testing.assert_array_equal(out, [1, 2, 1, NAN, 3, 0, 0])
    np.testing.assert_array_equal(ga, [1, 1, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(gb, [0, 0, 1, 0, 0, 0, 0])


def test_fmax_gradient_selects_so_an_inf_gradient_stays_on_its_branch():
    x, y = _t([1.0, 5.0], requires_grad=True), _t([3.0, 2.0], requires_grad=True)
    fg.fmax(x, y).backward(_t([INF, 1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1])
    np.testing.assert_array_equal(y.grad.numpy(), [INF, 0])


def test_copysign_gradient_is_zero_at_zero_and_other_gets_zeros():
    out, ga, gb = _grads("copysign", [1.0, -2.0, 0.0, -0.0, 3.0, 2.0, NAN, INF],
                         [1.0, 3.0, 1.0, -1.0, -0.0, 0.0, 1.0, -1.0])
    np.testing.assert_array_equal(out, [1, 2, 0, 0, -3, 2, NAN, -INF])
    assert list(np.signbit(out[2:4])) == [False, True]
    np.testing.assert_array_equal(ga, [1, -1, 0, 0, -1, 1, NAN, NAN])
    np.testing.assert_array_equal(gb, np.zeros(8))


def test_copysign_takes_a_number_and_the_sign_bit_of_minus_zero():
    x = _t([1.0, -2.0, 0.0], requires_grad=True)
    y = fg.copysign(x, -0.0)
    np.testing.assert_array_equal(y.detach().numpy(), [-1, -2, -0.0])
    assert np.signbit(y.detach().numpy()).all()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1, 1, 0])


def test_xlogy_at_zero_follows_pytorch():
    x = [0.0, 0.0, 0.0, 1.0, 2.0, 0.0, NAN, 1.0, 0.0]
    y = [0.0, 1.0, NAN, 0.0, 3.0, INF, 1.0, -1.0, -1.0]
    out, ga, gb = _grads("xlogy", x, y)
    np.testing.assert_allclose(out, [0, 0, NAN, -INF, 2 * np.log(3), 0, NAN, NAN, 0])
    np.testing.assert_allclose(ga, [0, 0, NAN, -INF, np.log(3), INF, 0, NAN, 0])
    np.testing.assert_allclose(gb, [NAN, 0, NAN, INF, 2 / 3, 0, NAN, -1, 0])


def test_xlogy_with_a_number_on_either_side():
    y = _t([0.5, 2.0], requires_grad=True)
    out = fg.xlogy(3.0, y)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), 3 * np.log([0.5, 2.0]), rtol=1e-15)
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 1.5], rtol=1e-15)
    x = _t([0.0, 2.0], requires_grad=True)
    out = fg.xlogy(x, 0.0)                      # x = 0 with y <= 0: value 0, gradient 0
    out.sum().backward()
    np.testing.assert_array_equal(out.detach().numpy(), [0, -INF])
    np.testing.assert_array_equal(x.grad.numpy(), [0, -INF])


def test_nextafter_moves_one_step_and_its_gradient_is_zero_where_operands_are_equal():
    out, ga, gb = _grads("nextafter", [1.0, 2.0, 3.0, 0.0], [2.0, 0.0, 3.0, -1.0])
    np.testing.assert_array_equal(out, [np.nextafter(1.0, 2.0), np.nextafter(2.0, 0.0), 3.0,
                                        -5e-324])
    np.testing.assert_array_equal(ga, [1, 1, 0, 1])
    np.testing.assert_array_equal(gb, np.zeros(4))
    h = fg.nextafter(fg.tensor([1.0], dtype=fg.float16), fg.tensor([2.0], dtype=fg.float16))
    assert h.dtype == fg.float16 and h.item() == float(np.nextafter(np.float16(1), np.float16(2)))


def test_logaddexp2_at_infinities():
    out, ga, gb = _grads("logaddexp2", [1.0, -INF, INF, INF, 1000.0], [2.0, -INF, INF, -INF, 999.0])
    np.testing.assert_allclose(out, [2 + np.log2(1.5), -INF, INF, INF, 1000 + np.log2(1.5)])
    np.testing.assert_allclose(ga, [1 / 3, NAN, NAN, 1, 2 / 3])
    np.testing.assert_allclose(gb, [2 / 3, NAN, NAN, 0, 1 / 3])


def test_ldexp_exponent_gradient_is_result_times_ln2():
    out, ga, gb = _grads("ldexp", [1.0, 2.0, -3.0], [2.0, 3.0, 0.5])
    np.testing.assert_allclose(out, [4, 16, -3 * 2 ** 0.5], rtol=1e-15)
    np.testing.assert_allclose(ga, [4, 8, 2 ** 0.5], rtol=1e-15)
    np.testing.assert_allclose(gb, out * LN2, rtol=1e-15)


def test_ldexp_with_an_integer_exponent_is_exact_in_the_input_dtype():
    x = fg.tensor([1e-30, 1e30, 3.0, 0.0, -0.0, INF, NAN])
    e = fg.tensor([200, -200, -1, 1000, 5, 1, 1])
    out = fg.ldexp(x, e)
    assert out.dtype == fg.float32
    expected = np.ldexp(np.array([1e-30, 1e30, 3, 0, -0.0, INF, NAN], dtype=np.float32),
                        np.array([200, -200, -1, 1000, 5, 1, 1]))
    np.testing.assert_array_equal(out.numpy(), expected)
    assert np.isfinite(expected[:2]).all() and expected[0] > 1e30   # no 2**200 formed in float32
    assert np.signbit(out.numpy()[4])
    h = fg.ldexp(fg.tensor([3.0], dtype=fg.float16), fg.tensor([-25]))
    assert h.dtype == fg.float16 and h.item() == float(np.ldexp(np.float16(3), -25))
    # a float exponent forms 2**e in float32 first, as PyTorch does: overflow
    assert fg.ldexp(fg.tensor([1e-30]), fg.tensor([200.0])).item() == INF


@pytest.mark.skipif(REFERENCE, reason="PyTorch 2.13 gives 0 here (an integer pow 2 ** e rounds "
                                      "2 ** -1 down to 0); fastgrad gives 2 ** e")
def test_ldexp_gradient_with_a_negative_integer_exponent():
    x = fg.tensor([3.0, 3.0, 3.0], requires_grad=True)
    fg.ldexp(x, fg.tensor([-1, 2, -3])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 4, 0.125])


# --- float_power ---------------------------------------------------------------------------------

def test_float_power_is_always_float64():
    cases = [(fg.tensor([1, 2, 3]), fg.tensor([2, 2, 2])), (fg.tensor([True, False]), fg.tensor(True)),
             (fg.tensor([2.0], dtype=fg.float16), fg.tensor([0.5], dtype=fg.float16)),
             (fg.tensor([2.0]), 0.5), (2, fg.tensor([3])), (fg.tensor([2.0]), fg.tensor(3))]
    for base, exp in cases:
        out = fg.float_power(base, exp)
        assert out.dtype == fg.float64
    np.testing.assert_array_equal(fg.float_power(fg.tensor([1, 2, 3]), 2).numpy(), [1, 4, 9])
    # computed in float64: 3 ** 0.1 of float32 inputs keeps float64's digits
    r = fg.float_power(fg.tensor([3.0]), fg.tensor([0.1])).item()
    assert r == float(np.power(np.float64(np.float32(3.0)), np.float64(np.float32(0.1))))


def test_float_power_gradient_flows_back_to_a_float32_input():
    x = fg.tensor([1.5, 2.0], requires_grad=True)
    y = fg.float_power(x, 3)
    y.sum().backward()
    assert x.grad.dtype == fg.float32
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([1.5, 2.0]) ** 2, rtol=1e-7)
    check_grad(lambda a, b: fg.float_power(a, b), [[0.5, 2.0, 3.0], [1.5, -0.5, 2.0]],
               ref=np.power)
    check_grad(lambda b: fg.float_power(2.5, b), [[1.5, -0.5, 2.0]], ref=lambda b: 2.5 ** b)


def test_float_power_inplace_needs_a_float64_base():
    x = fg.tensor([2.0, 3.0], dtype=fg.float64)
    assert x.float_power_(2) is x
    np.testing.assert_array_equal(x.numpy(), [4, 9])
    for base in (fg.tensor([2.0]), fg.tensor([2])):
        with pytest.raises(RuntimeError, match="the base given to float_power_ has dtype"):
            base.float_power_(2)


# --- dtypes, operands, broadcasting, shapes -----------------------------------------------------

F32, F64, F16, I64, BOOL = "float32", "float64", "float16", "int64", "bool"
DTYPES = {  # name -> {(input dtype, other dtype): result dtype}
    "copysign": {(I64, I64): F32, (BOOL, BOOL): F32, (F32, I64): F32, (F32, F64): F64,
                 (F16, F16): F16, (F16, F32): F32},
    "xlogy": {(I64, I64): F32, (F32, F64): F64, (F16, F16): F16, (I64, F16): F16},
    "fmax": {(I64, I64): I64, (BOOL, BOOL): BOOL, (I64, F32): F32, (F16, F64): F64},
    "fmin": {(I64, I64): I64, (F32, F64): F64},
    "logaddexp2": {(F32, I64): F32, (F16, F16): F16, (F32, F64): F64},
    "nextafter": {(I64, F32): F32, (F16, F16): F16, (F64, F32): F64},
    "ldexp": {(I64, I64): F32, (BOOL, BOOL): F32, (F32, I64): F32, (F16, I64): F16,
              (F64, I64): F64, (F16, F16): F16, (F16, F32): F32, (I64, F16): F16,
              (F32, F64): F64},
}


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_result_dtypes(name):
    for (da, db), expected in DTYPES[name].items():
        a = fg.tensor([1, 2, 3]).to(getattr(fg, da))
        b = fg.tensor([1, 0, 2]).to(getattr(fg, db))
        assert str(getattr(fg, name)(a, b).dtype) == "torch." + expected, (da, db)


def test_a_zero_dim_tensor_or_a_number_does_not_widen_the_result():
    f = fg.tensor([1.0, 2.0])
    for name in ("copysign", "xlogy", "fmax", "logaddexp2", "nextafter", "ldexp"):
        assert getattr(fg, name)(f, fg.tensor(2.0, dtype=fg.float64)).dtype == fg.float32, name
        assert getattr(fg, name)(fg.tensor([1, 2]), fg.tensor(2.0)).dtype == fg.float32, name
    assert fg.copysign(fg.tensor([1, 2]), -2.5).dtype == fg.float32
    assert fg.xlogy(fg.tensor([1, 2]), 2).dtype == fg.float32
    assert fg.xlogy(2.5, fg.tensor([1.0], dtype=fg.float16)).dtype == fg.float16


@pytest.mark.parametrize("name", ["logaddexp2", "fmax", "fmin", "nextafter", "ldexp"])
def test_ops_without_a_number_overload_refuse_numbers(name):
    f = fg.tensor([1.0, 2.0])
    for args in ((f, 2.0), (f, 2), (2.0, f), (2, 3), (f, "a"), (f, [1.0, 2.0])):
        with pytest.raises(TypeError, match="must be Tensor"):
            getattr(fg, name)(*args)


def test_ops_with_a_number_overload_refuse_the_other_side_or_two_numbers():
    f = fg.tensor([1.0, 2.0])
    for call in (lambda: fg.copysign(2.0, f), lambda: fg.copysign(2.0, 3.0),
                 lambda: fg.xlogy(2, 3), lambda: fg.xlogy(f, "a"), lambda: fg.float_power(2, 3),
                 lambda: fg.float_power(f, "2")):
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize("name", ["logaddexp2", "nextafter"])
def test_integer_inputs_raise_not_implemented_where_pytorch_has_no_kernel(name):
    for a in (fg.tensor([1, 2]), fg.tensor([True, False])):
        with pytest.raises(NotImplementedError, match="not implemented for"):
            getattr(fg, name)(a, a)
    getattr(fg, name)(fg.tensor([1, 2]), fg.tensor([1.0, 2.0]))     # promoted to float: fine


def test_ldexp_of_a_float_by_a_bool_exponent_raises_as_pytorch():
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        fg.ldexp(fg.tensor([1.0]), fg.tensor([True]))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_shapes_broadcast_zero_dim_and_zero_size(name):
    fn = getattr(fg, name)
    assert tuple(fn(_t([[0.5], [1.5]]), _t([1.0, 2.0, 3.0])).shape) == (2, 3)
    assert tuple(fn(_t(0.5), _t(1.5)).shape) == ()
    assert tuple(fn(_t(np.zeros((0, 3))), _t([1.0, 2.0, 3.0])).shape) == (0, 3)
    with pytest.raises(RuntimeError, match="must match the size"):
        fn(_t([1.0, 2.0]), _t([1.0, 2.0, 3.0]))


def test_zero_size_inputs_backward():
    x = _t(np.zeros((0, 3)), requires_grad=True)
    y = _t([1.0, 2.0, 3.0], requires_grad=True)
    for name in ("xlogy", "fmax", "copysign", "ldexp"):
        x.grad = y.grad = None
        getattr(fg, name)(x, y).sum().backward()
        assert tuple(x.grad.shape) == (0, 3)
        np.testing.assert_array_equal(y.grad.numpy(), np.zeros(3))


@pytest.mark.parametrize("name", ["copysign", "xlogy", "nextafter", "ldexp"])
def test_inplace_forms(name, rng):
    a, b = rng.uniform(0.5, 2, (2, 3)), rng.uniform(0.5, 2, 3)
    x = _t(a)
    assert getattr(x, name + "_")(_t(b)) is x
    np.testing.assert_array_equal(x.numpy(), getattr(fg, name)(_t(a), _t(b)).numpy())
    leaf = _t(a, requires_grad=True)
    y = leaf * 1.0
    getattr(y, name + "_")(_t(b))
    assert _node(y) == NODE[name]
    y.sum().backward()
    expected = _t(a, requires_grad=True)
    getattr(fg, name)(expected, _t(b)).sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), expected.grad.numpy())
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        getattr(_t(b), name + "_")(_t(a))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        getattr(fg.tensor([1, 2, 3]), name + "_")(_t(b))


def test_methods_exist_where_pytorch_has_them():
    x = _t([[1.0, NAN], [3.0, 4.0]])
    for name in list(BINARY) + ["nansum", "dist", "lerp"]:
        assert callable(getattr(x, name)), name
    for name in ("copysign_", "xlogy_", "nextafter_", "ldexp_", "float_power_", "lerp_"):
        assert callable(getattr(x, name)), name
    for name in ("logaddexp2_", "fmax_", "fmin_", "nansum_", "dist_"):
        assert not hasattr(x, name), name
    np.testing.assert_array_equal(x.nansum(axis=1, keepdims=True).numpy(), [[1], [7]])
    y = _t([1.0, 2.0])
    assert y.dist(y + 1, p=1).item() == 2 and y.nansum().item() == 3


# --- nansum --------------------------------------------------------------------------------------

def test_nansum_values_dims_and_dtypes():
    a = np.array([[1.0, NAN, 3.0], [NAN, NAN, NAN]])
    x = _t(a)
    assert fg.nansum(x).item() == 4
    np.testing.assert_array_equal(fg.nansum(x, 1).numpy(), [4, 0])
    np.testing.assert_array_equal(fg.nansum(x, 1, True).numpy(), [[4], [0]])
    np.testing.assert_array_equal(fg.nansum(x, (0, 1)).numpy(), 4)
    np.testing.assert_array_equal(fg.nansum(x, []).numpy(), 4)
    assert tuple(fg.nansum(x, keepdim=True).shape) == (1, 1)
    assert fg.nansum(x.float(), dtype=fg.float64).dtype == fg.float64
    assert fg.nansum(x, dtype=fg.int64).dtype == fg.int64
    assert fg.nansum(fg.tensor([1, 2, 3])).dtype == fg.int64
    assert fg.nansum(fg.tensor([True, True])).item() == 2
    assert fg.nansum(fg.tensor([1.0, NAN], dtype=fg.float16)).dtype == fg.float16
    assert fg.nansum(_t(NAN)).item() == 0 and fg.nansum(_t(NAN), 0).item() == 0
    np.testing.assert_array_equal(fg.nansum(_t(np.zeros((0, 3))), 0).numpy(), [0, 0, 0])
    assert math.isnan(fg.nansum(_t([INF, -INF, NAN])).item())
    with pytest.raises(IndexError, match="Dimension out of range"):
        fg.nansum(x, 2)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        fg.nansum(x, (1, 1))


@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (0, True), ((0, 1), False)])
def test_nansum_gradient_is_zero_at_nans(dim, keepdim, rng):
    a = rng.standard_normal((3, 4))
    a[0, 1] = a[2, 3] = a[1, 0] = np.nan
    check_grad(lambda t: fg.nansum(t, dim, keepdim) if dim is not None else fg.nansum(t),
               [a], ref=lambda v: np.nansum(v, axis=dim, keepdims=keepdim))


def test_nansum_gradient_is_cast_back_after_dtype():
    x = fg.tensor([[1.0, NAN, 3.0], [NAN, 2.0, NAN]], requires_grad=True)
    y = fg.nansum(x, dtype=fg.float64)
    y.backward()
    assert x.grad.dtype == fg.float32
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0, 1], [0, 1, 0]])


def test_nansum_of_all_dims_equals_sum_of_the_cleaned_tensor(rng):
    a = rng.standard_normal(10001).astype(np.float32)
    a[::7] = np.nan
    assert fg.nansum(fg.tensor(a)).item() == fg.tensor(np.where(np.isnan(a), 0, a)).sum().item()


# --- dist ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [2, 1, 3, 0.5, -1, INF, -INF, 0])
def test_dist_values_and_gradients(p, rng):
    if p == 0 and REFERENCE:
        pytest.skip("PyTorch 2.13's dist(p=0) backward raises; test_dist_p0_gradient_is_zero")
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3,))

    def ref(x, y):
        d = np.abs(x - y).ravel()
        if p == 0:
            return np.count_nonzero(d)
        if abs(p) == INF:
            return d.max() if p > 0 else d.min()
        return np.sum(d ** p) ** (1 / p)
    check_grad(lambda x, y: fg.dist(x, y, p), [a, b], ref=ref, ref_rtol=1e-13)


def test_dist_default_p_promotion_and_arguments():
    f, d = fg.tensor([1.0, 2.0]), fg.tensor([4.0, 6.0], dtype=fg.float64)
    out = fg.dist(f, d)
    assert out.dtype == fg.float64 and out.item() == 5.0
    assert fg.dist(f, fg.tensor([4, 6])).dtype == fg.float32
    assert fg.dist(f.to(fg.float16), f.to(fg.float16) + 1).dtype == fg.float16
    assert fg.dist(f, f + 1, fg.tensor(1.0)).item() == 2.0
    assert tuple(fg.dist(_t([[1.0], [2.0]]), _t([1.0, 2.0, 3.0])).shape) == ()
    assert fg.dist(_t(1.0), _t(4.0)).item() == 3.0
    assert fg.dist(_t(np.zeros(0)), _t(np.zeros(0))).item() == 0.0
    assert math.isnan(fg.dist(_t([NAN, 1.0]), _t([0.0, 0.0])).item())
    assert fg.dist(_t([NAN, 1.0]), _t([0.0, 0.0]), 0).item() == 2.0


def test_dist_errors():
    f = fg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="input dtype should be either floating point"):
        fg.dist(fg.tensor([1, 2]), fg.tensor([3, 4]))
    with pytest.raises(TypeError, match="must be Tensor"):
        fg.dist(f, 2.0)
    with pytest.raises(TypeError, match="must be Number"):
        fg.dist(f, f, "fro")
    with pytest.raises(RuntimeError, match="must match the size"):
        fg.dist(f, fg.tensor([1.0, 2.0, 3.0]))
    for p in (INF, -INF):
        with pytest.raises(RuntimeError, match="on an empty tensor"):
            fg.dist(_t(np.zeros(0)), _t(np.zeros(0)), p)


@pytest.mark.parametrize("p", [2, 3, 0.5, 1, INF, -1])
def test_dist_gradient_is_zero_where_the_operands_are_equal(p):
    a = _t([1.0, 2.0, 3.0], requires_grad=True)
    b = _t([1.0, 2.0, 3.0], requires_grad=True)
    out = fg.dist(a, b, p)
    out.backward()
    assert out.item() == 0
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(b.grad.numpy(), np.zeros(3))


@pytest.mark.skipif(REFERENCE, reason="PyTorch 2.13's dist(p=0) backward raises 'Expected a "
                                      "proper Tensor but got None'; fastgrad gives norm's zeros")
def test_dist_p0_gradient_is_zero():
    a = _t([1.0, 2.0, 3.0], requires_grad=True)
    b = _t([1.0, 5.0, 4.0], requires_grad=True)
    fg.dist(a, b, 0).backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(b.grad.numpy(), np.zeros(3))


def test_dist_inf_gradient_splits_between_ties():
    a = _t([1.0, 5.0, 3.0], requires_grad=True)
    b = _t([1.0, 2.0, 0.0], requires_grad=True)
    fg.dist(a, b, INF).backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0, 0.5, 0.5])
    np.testing.assert_array_equal(b.grad.numpy(), [0, -0.5, -0.5])


def test_norm_with_negative_p_and_zeros_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fg.dist(_t([0.0, 3.0]), _t([0.0, 0.0]), -1).item() == 0.0
        assert fg.norm(_t([0.0, 3.0]), -2).item() == 0.0
    with warnings.catch_warnings():     # p = 2's sum of squares overflows with NumPy's warning
        warnings.simplefilter("ignore", RuntimeWarning)
        assert fg.dist(fg.tensor([1e30, 1e30]), fg.tensor([0.0, 0.0])).item() == INF


# --- lerp ----------------------------------------------------------------------------------------

def test_lerp_refuses_mixed_dtypes_as_pytorch():
    f, d = fg.tensor([1.0, 2.0]), fg.tensor([3.0, 4.0], dtype=fg.float64)
    with pytest.raises(RuntimeError, match="expected dtype float for `end` but got dtype double"):
        fg.lerp(f, d, 0.5)
    with pytest.raises(RuntimeError, match="expected dtype double for `end` but got dtype float"):
        fg.lerp(d, f, 0.5)
    with pytest.raises(RuntimeError, match="expected dtype float for `end` but got dtype double"):
        fg.lerp(f, fg.tensor(2.0, dtype=fg.float64), 0.5)
    with pytest.raises(RuntimeError,
                       match="expected dtype float for `weight` but got dtype double"):
        fg.lerp(f, f, fg.tensor([0.5, 0.5], dtype=fg.float64))
    with pytest.raises(RuntimeError, match="expected dtype float for `weight` but got dtype long"):
        fg.lerp(f, f, fg.tensor([1, 1]))
    with pytest.raises(RuntimeError, match="expected dtype c10::Half for `end`"):
        fg.lerp(f.to(fg.float16), f, 0.5)
    with pytest.raises(RuntimeError, match="expected dtype float for `end`"):
        f.clone().lerp_(d, 0.5)
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        fg.lerp(fg.tensor([1, 2]), fg.tensor([3, 4]), 0.5)
    with pytest.raises(TypeError):
        fg.lerp(f, 2.0, 0.5)
    # a 0-d weight of any dtype is fine
    for w in (fg.tensor(0.5, dtype=fg.float64), fg.tensor(1), fg.tensor(0.5, dtype=fg.float16)):
        assert fg.lerp(f, f + 2, w).dtype == fg.float32


def test_lerp_values_as_pytorch_computes_them():
    out = fg.lerp(fg.tensor([1.0, 1.0, -INF, 0.0, 1.0]), fg.tensor([INF, INF, INF, 1e38, 3.0]),
                  fg.tensor([0.25, 1.0, 0.5, 0.75, 0.75]))
    np.testing.assert_array_equal(out.numpy(), np.array([INF, NAN, NAN, 7.5e37, 2.5], np.float32))
    # from the nearer end: weight 1 gives end exactly
    a, b = fg.tensor([1e8, 0.1]), fg.tensor([1.0, 0.7])
    np.testing.assert_array_equal(fg.lerp(a, b, 1.0).numpy(), b.numpy())
    assert fg.lerp(fg.tensor([1.0]), fg.tensor([INF]), 1.0).isnan().all()


def test_lerp_gradients(rng):
    a, b, w = rng.standard_normal((2, 3)), rng.standard_normal(3), rng.uniform(-0.5, 1.5, (2, 1))
    check_grad(lambda x, y, t: fg.lerp(x, y, t), [a, b, w], ref=lambda x, y, t: x + t * (y - x))
    check_grad(lambda x, y: fg.lerp(x, y, 0.75), [a, b], ref=lambda x, y: x + 0.75 * (y - x))
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    w = fg.tensor(0.25, dtype=fg.float64, requires_grad=True)
    fg.lerp(x, fg.tensor([3.0, 6.0]), w).sum().backward()
    assert w.grad.dtype == fg.float64 and w.grad.item() == 6.0
    np.testing.assert_array_equal(x.grad.numpy(), [0.75, 0.75])


# --- against PyTorch -----------------------------------------------------------------------------

EDGE = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -3.0, 1e-30, 1e30, INF, -INF, NAN])


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # float_power's grad to float32
def test_matches_torch_on_edge_values(name, dtype, torch):
    a = np.repeat(EDGE, EDGE.size).astype(dtype)
    b = np.tile(EDGE, EDGE.size).astype(dtype)
    if name == "ldexp":                       # 2**1e30 is inf in both; keep exponents moderate
        b = np.clip(np.nan_to_num(b, nan=1.0), -40, 40)
    ours_in = [fg.tensor(v, requires_grad=True) for v in (a, b)]
    theirs_in = [torch.tensor(v, requires_grad=True) for v in (a, b)]
    ours = getattr(fg, name)(*ours_in)
    theirs = getattr(torch, name)(*theirs_in)
    assert str(ours.dtype) == str(theirs.dtype)
    assert _node(ours) == _node(theirs)
    rtol = 1e-13 if dtype == "float64" or name == "float_power" else 2e-7
    # logaddexp2(-1, -1): PyTorch's fused multiply-add leaves -4.8e-17 of float64's rounding
    atol = 1e-16 if name == "logaddexp2" and dtype == "float64" else 0
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol,
                               atol=atol, equal_nan=True)
    ours.sum().backward()
    theirs.sum().backward()
    for o, t in zip(ours_in, theirs_in):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=rtol, equal_nan=True)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_matches_torch_in_float16(name, torch, rng):
    a = rng.uniform(-4, 4, 500).astype(np.float16)
    b = rng.uniform(-4, 4, 500).astype(np.float16)
    if name in ("xlogy", "float_power"):
        b = np.abs(b) + np.float16(0.01)
        a = np.abs(a) + np.float16(0.01) if name == "float_power" else a
    ours = getattr(fg, name)(fg.tensor(a), fg.tensor(b)).numpy()
    theirs = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    assert ours.dtype == theirs.dtype
    if name == "float_power":                  # float64 pow: libm's last bit may differ
        np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    else:
        np.testing.assert_array_equal(ours, theirs)


def test_ldexp_with_integer_exponents_matches_torch(torch, rng):
    for dtype in ("float16", "float32", "float64"):
        a = rng.uniform(-4, 4, 300).astype(dtype)
        e = rng.integers(-40, 40, 300)
        ours = fg.ldexp(fg.tensor(a), fg.tensor(e)).numpy()
        theirs = torch.ldexp(torch.tensor(a), torch.tensor(e)).numpy()
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)


def test_nansum_and_dist_match_torch(torch, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    a[0, 1] = a[2, 2] = np.nan
    for kw in ({}, {"dim": 1}, {"dim": (0, 1), "keepdim": True}, {"dtype": "float64"}):
        okw = {k: getattr(fg, v) if k == "dtype" else v for k, v in kw.items()}
        tkw = {k: getattr(torch, v) if k == "dtype" else v for k, v in kw.items()}
        x, t = fg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        ours, theirs = fg.nansum(x, **okw), torch.nansum(t, **tkw)
        assert str(ours.dtype) == str(theirs.dtype) and ours.shape == theirs.shape
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)
        ours.sum().backward()
        theirs.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    b = rng.standard_normal(4)
    a = np.nan_to_num(a)
    for p in (2, 1, 3, 0.5, -1, INF, -INF):
        xs = [fg.tensor(a, requires_grad=True), fg.tensor(b, requires_grad=True)]
        ts = [torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)]
        ours, theirs = fg.dist(*xs, p), torch.dist(*ts, p)
        assert str(ours.dtype) == str(theirs.dtype)
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
        ours.backward()
        theirs.backward()
        for o, t in zip(xs, ts):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-10)


def test_lerp_matches_torch(torch, rng):
    a = rng.standard_normal(200).astype(np.float32) * 100
    b = rng.standard_normal(200).astype(np.float32) * 100
    w = rng.uniform(-1, 2, 200).astype(np.float32)
    for weight in (w, 0.3, 0.7, -1.5):
        xs = [fg.tensor(v, requires_grad=True) for v in (a, b)]
        ts = [torch.tensor(v, requires_grad=True) for v in (a, b)]
        ow = fg.tensor(weight, requires_grad=True) if isinstance(weight, np.ndarray) else weight
        tw = torch.tensor(weight, requires_grad=True) if isinstance(weight, np.ndarray) else weight
        ours, theirs = fg.lerp(*xs, ow), torch.lerp(*ts, tw)
        assert _node(ours) == _node(theirs)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6,
                                   atol=1e-4)
        ours.sum().backward()
        theirs.sum().backward()
        for o, t in zip(xs, ts):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-6)

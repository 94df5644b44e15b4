# cython: boundscheck=False, wraparound=False
"""Elementwise math beyond the hot set: log1p, expm1, log2, log10, exp2, erf, erfc, erfinv,
sinh, cosh, asin, acos, atan, floor, ceil, round, trunc, frac; atan2, hypot, logaddexp, lerp;
isnan, isinf, isfinite, nan_to_num, isclose, allclose, equal.

Forward: NumPy's ufuncs, libm's erf/erfc and fastgrad's own erfinv, on the input's array (float16
computed in float32 and rounded back, integers promoted to float32 as PyTorch does). Backward: one
rule per op, written in recorded tensor ops (Note [Formula nodes] in formula.pyx). None of these is on W1's hot
path; the hot elementwise ops keep their fused kernels in ops_unary.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport erf as c_erf
from libc.math cimport log as c_log, sqrt as c_sqrt, fabs, copysign, INFINITY, NAN

import math

import numpy as np

from fastgrad._core.promotion cimport promote_tt, broadcast_shapes
from fastgrad._core.tensor cimport shape_of as _shape, tensor_arg as _input
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.formula cimport record
from fastgrad._core.erf_kernels cimport erf_loop, ERF_ERF, ERF_ERFC

cnp.import_array()


# --- input conversion ----------------------------------------------------------------------------





cdef object _compute_dtype(cnp.ndarray x):
    """(array to compute on, dtype of the result): ints and bools give float32, as in PyTorch;
    float16 is computed in float32 and rounded back once."""
    k = x.dtype.kind
    if k in "biu":
        return x.astype(np.float32), np.dtype(np.float32)
    if x.dtype == np.float16:
        return x.astype(np.float32), x.dtype
    return x, x.dtype


cdef inline cnp.ndarray _as_array(object r, object dtype):
    """ufuncs return NumPy scalars for 0-d inputs: always an ndarray of `dtype`."""
    r = np.asarray(r)
    return r if r.dtype == dtype else r.astype(dtype)


cdef object _unary(object input, str name, object fn, str node, object rule, int save):
    """save: 0 nothing, 1 the input, 2 the output."""
    cdef TensorBase a = _input(input, name)
    x, dt = _compute_dtype(a._data)
    with np.errstate(all="ignore"):
        out = wrap(_as_array(fn(x), dt))
    return record(out, node, rule, (a,), (a,) if save == 1 else (), save == 2, None)


# --- unary rules (grad g; s = saved tensors) -----------------------------------------------------

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI_OVER_2 = math.sqrt(math.pi) / 2.0


def _r_log1p(g, s, e):
    return (g / (s[0] + 1),)


def _r_expm1(g, s, e):
    return (g * (s[0] + 1),)


def _r_log2(g, s, e):
    return (g / (s[0] * _LN2),)


def _r_log10(g, s, e):
    return (g / (s[0] * _LN10),)


def _r_exp2(g, s, e):
    return (g * s[0] * _LN2,)


def _r_erf(g, s, e):
    x = s[0]
    return (g * ((-(x * x)).exp() * _TWO_OVER_SQRT_PI),)


def _r_erfc(g, s, e):
    x = s[0]
    return (g * ((-(x * x)).exp() * -_TWO_OVER_SQRT_PI),)


def _r_erfinv(g, s, e):
    y = s[0]
    return (g * ((y * y).exp() * _SQRT_PI_OVER_2),)


def _r_sinh(g, s, e):
    return (g * cosh(s[0]),)


def _r_cosh(g, s, e):
    return (g * sinh(s[0]),)


def _r_asin(g, s, e):
    x = s[0]
    return (g / (1 - x * x).sqrt(),)


def _r_acos(g, s, e):
    x = s[0]
    return (-g / (1 - x * x).sqrt(),)


def _r_atan(g, s, e):
    x = s[0]
    return (g / (x * x + 1),)


def _r_zero(g, s, e):
    return (g * 0,)


def _r_identity(g, s, e):
    return (g,)


def log1p(input):
    return _unary(input, "log1p", np.log1p, "Log1PBackward0", _r_log1p, 1)


def expm1(input):
    return _unary(input, "expm1", np.expm1, "Expm1Backward0", _r_expm1, 2)


def log2(input):
    return _unary(input, "log2", np.log2, "Log2Backward0", _r_log2, 1)


def log10(input):
    return _unary(input, "log10", np.log10, "Log10Backward0", _r_log10, 1)


def exp2(input):
    return _unary(input, "exp2", np.exp2, "Exp2Backward0", _r_exp2, 2)


def erf(input):
    return _unary(input, "erf", _erf_array, "ErfBackward0", _r_erf, 1)


def erfc(input):
    return _unary(input, "erfc", _erfc_array, "ErfcBackward0", _r_erfc, 1)


def erfinv(input):
    return _unary(input, "erfinv", _erfinv_array, "ErfinvBackward0", _r_erfinv, 2)


def sinh(input):
    return _unary(input, "sinh", np.sinh, "SinhBackward0", _r_sinh, 1)


def cosh(input):
    return _unary(input, "cosh", np.cosh, "CoshBackward0", _r_cosh, 1)


def asin(input):
    return _unary(input, "asin", np.arcsin, "AsinBackward0", _r_asin, 1)


def acos(input):
    return _unary(input, "acos", np.arccos, "AcosBackward0", _r_acos, 1)


def atan(input):
    return _unary(input, "atan", np.arctan, "AtanBackward0", _r_atan, 1)


def tan(input):
    return _unary(input, "tan", np.tan, "TanBackward0", _r_tan, 2)


def _r_tan(g, s, e):
    y = s[0]
    return (g * (y * y + 1),)


cdef object _rounding(object input, str name, object fn, str node):
    """floor/ceil/round/trunc: integer tensors come back unchanged (a copy), as in PyTorch."""
    cdef TensorBase a = _input(input, name)
    if a._data.dtype.kind in "biu":
        return wrap(a._data.copy())
    return _unary(a, name, fn, node, _r_zero, 0)


def floor(input):
    return _rounding(input, "floor", np.floor, "FloorBackward0")


def ceil(input):
    return _rounding(input, "ceil", np.ceil, "CeilBackward0")


def trunc(input):
    return _rounding(input, "trunc", np.trunc, "TruncBackward0")


fix = trunc


def round(input, *, decimals=0):
    """Round half to even, as PyTorch (and C's nearbyint) do; decimals scale by 10**decimals."""
    if decimals == 0:
        return _rounding(input, "round", np.rint, "RoundBackward0")
    scale = 10.0 ** decimals
    return _rounding(input, "round", lambda x: np.rint(x * scale) / scale, "RoundBackward1")


def frac(input):
    """x - trunc(x); the gradient passes through unchanged."""
    cdef TensorBase a = _input(input, "frac")
    if a._data.dtype.kind in "biu":
        raise RuntimeError(f"\"frac_cpu\" not implemented for '{scalar_type_name(a._data.dtype)}': frac "
                           f"needs a floating-point tensor; convert with .float() first")
    return _unary(a, "frac", lambda x: x - np.trunc(x), "FracBackward0", _r_identity, 0)


# --- erf, erfc (libm) and erfinv -----------------------------------------------------------------

def _erf_array(cnp.ndarray x):
    return _erf_loop(x, False)


def _erfc_array(cnp.ndarray x):
    return _erf_loop(x, True)


cdef cnp.ndarray _erf_loop(cnp.ndarray x, bint complement):
    """libm's erf (or erfc) over a float32/float64 array."""
    cdef cnp.ndarray c = np.ascontiguousarray(x)
    cdef cnp.ndarray out = np.empty_like(c)
    cdef Py_ssize_t n = c.size
    cdef int kind = ERF_ERFC if complement else ERF_ERF
    if c.dtype == np.float32:
        with nogil:
            erf_loop(<float*>cnp.PyArray_DATA(c), <float*>cnp.PyArray_DATA(out), n, kind)
    else:
        with nogil:
            erf_loop(<double*>cnp.PyArray_DATA(c), <double*>cnp.PyArray_DATA(out), n, kind)
    return out.reshape((<object>x).shape)


cdef double _erfinv1(double y) noexcept nogil:
    """Inverse error function: a rational first guess (central region and tails), then two
    Newton steps on erf(x) - y, which bring it to double precision."""
    cdef double a = fabs(y), x, w, err
    cdef int k
    if a > 1.0 or y != y:
        return NAN
    if a == 1.0:
        return copysign(INFINITY, y)
    if a <= 0.7:
        w = y * y
        x = y * (((-0.140543331 * w + 0.914624893) * w - 1.645349621) * w + 0.886226899) / \
            ((((0.012229801 * w - 0.329097515) * w + 1.442710462) * w - 2.118377725) * w + 1.0)
    else:
        w = c_sqrt(-c_log((1.0 - a) / 2.0))
        x = (((1.641345311 * w + 3.429567803) * w - 1.624906493) * w - 1.970840454) / \
            ((1.637067800 * w + 3.543889200) * w + 1.0)
        x = copysign(x, y)
    for k in range(2):
        err = c_erf(x) - y
        x = x - err / (1.1283791670955126 * _exp(-x * x))
    return x


cdef extern from "math.h" nogil:
    double _exp "exp"(double)


def _erfinv_array(cnp.ndarray x):
    cdef cnp.ndarray c = np.asarray(x, dtype=np.float64, order="C")
    cdef cnp.ndarray out = np.empty_like(c)
    cdef Py_ssize_t i, n = c.size
    cdef double* src = <double*>cnp.PyArray_DATA(c)
    cdef double* dst = <double*>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            dst[i] = _erfinv1(src[i])
    return out.astype(x.dtype) if x.dtype != np.float64 else out


# --- binary --------------------------------------------------------------------------------------

cdef object _pair(object input, object other, str name):
    """Both operands as tensors, and the floating result dtype (PyTorch's promotion: a Python
    number takes the tensor's floating dtype; integer tensors give float32)."""
    a = input if isinstance(input, TensorBase) else None
    b = other if isinstance(other, TensorBase) else None
    if a is None and b is None:
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if a is None:
        a = _number(input, (<TensorBase>b)._data.dtype, name)
    if b is None:
        b = _number(other, (<TensorBase>a)._data.dtype, name)
    dt = promote_tt((<TensorBase>a)._data, (<TensorBase>b)._data)
    if dt.kind in "biu":
        dt = np.dtype(np.float32)
    try:
        np.broadcast_shapes(_shape(<TensorBase>a), _shape(<TensorBase>b))
    except ValueError:
        raise RuntimeError(f"{name}: the shapes {list(_shape(<TensorBase>a))} and "
                           f"{list(_shape(<TensorBase>b))} cannot be broadcast together; "
                           f"sizes must match or be 1 at each dimension (aligned from the "
                           f"right)") from None
    return a, b, dt


cdef TensorBase _number(object value, object like, str name):
    """A Python number as a 0-d tensor of the other operand's floating dtype (else float32)."""
    if not isinstance(value, (int, float, bool)):
        raise TypeError(f"{name}(): expected a Tensor or a number, got {type(value).__name__}")
    return wrap(np.asarray(value, dtype=like if like.kind == "f" else np.float32))


cdef object _binary(object input, object other, str name, object fn, str node, object rule,
                    bint save_out):
    a, b, dt = _pair(input, other, name)
    compute = np.float32 if dt == np.float16 else dt
    xa = (<TensorBase>a)._data.astype(compute, copy=False)
    xb = (<TensorBase>b)._data.astype(compute, copy=False)
    with np.errstate(all="ignore"):
        out = wrap(_as_array(fn(xa, xb), dt))
    return record(out, node, rule, (a, b), (a, b), save_out, None)


def _r_atan2(g, s, e):
    y, x = s[0], s[1]
    d = x * x + y * y
    return (g * x / d, g * -y / d)


def _r_hypot(g, s, e):
    a, b, out = s
    return (g * a / out, g * b / out)


def _r_logaddexp(g, s, e):
    a, b = s[0], s[1]
    return (g * (a - b).sigmoid(), g * (b - a).sigmoid())


def atan2(input, other):
    return _binary(input, other, "atan2", np.arctan2, "Atan2Backward0", _r_atan2, False)


arctan2 = atan2


def hypot(input, other):
    return _binary(input, other, "hypot", np.hypot, "HypotBackward0", _r_hypot, True)


def logaddexp(input, other):
    return _binary(input, other, "logaddexp", np.logaddexp, "LogaddexpBackward0", _r_logaddexp,
                   False)


# PyTorch's C++ names of the dtypes, which its lerp messages use
_CPP_NAME = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
             "int32": "int", "int16": "short int", "int8": "signed char",
             "uint8": "unsigned char", "bool": "bool"}


cdef void _same_dtype(TensorBase a, TensorBase t, str arg) except *:
    if t._data.dtype != a._data.dtype:
        raise RuntimeError(f"expected dtype {_CPP_NAME[a._data.dtype.name]} for `{arg}` but got "
                           f"dtype {_CPP_NAME[t._data.dtype.name]}: lerp takes {arg} of the "
                           f"input's dtype; convert it with .to(input.dtype)")


def _r_lerp_number(g, s, e):
    return (g * (1 - e), g * e)


def _r_lerp_tensor(g, s, e):
    a, b, w = s
    return (g * (1 - w), g * w, g * (b - a))


def lerp(input, end, weight):
    """input + weight * (end - input), computed as PyTorch computes it: from the nearer end
    (end - (end - input) * (1 - weight) for |weight| >= 0.5). end must have the input's dtype, and
    so must a weight tensor that is not 0-d (PyTorch's RuntimeError otherwise)."""
    cdef TensorBase a = _input(input, "lerp")
    cdef TensorBase b = _input(end, "lerp", "end")
    cdef TensorBase w = None
    _same_dtype(a, b, "end")
    if isinstance(weight, TensorBase):
        w = weight
        if w._data.ndim:
            _same_dtype(a, w, "weight")
        kernel = "lerp_kernel_tensor"
    elif isinstance(weight, (int, float, np.integer, np.floating)):
        kernel = "lerp_kernel_scalar"
    else:
        raise TypeError(f"lerp(): argument 'weight' (position 3) must be Tensor or Number, not "
                        f"{type(weight).__name__}")
    if a._data.dtype.kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for "
                                  f"'{scalar_type_name(a._data.dtype)}': lerp takes floating-point "
                                  f"tensors; convert with .float() first")
    shape = broadcast_shapes(_shape(a), _shape(b), "lerp")
    if w is not None:
        broadcast_shapes(shape, _shape(w), "lerp")
    x, dt = _compute_dtype(a._data)
    y = b._data.astype(x.dtype, copy=False)
    t = float(weight) if w is None else w._data.astype(x.dtype, copy=False)
    with np.errstate(all="ignore"):
        if w is None:
            r = x + t * (y - x) if abs(t) < 0.5 else y - (y - x) * (1 - t)
        else:
            r = np.where(np.abs(t) < 0.5, x + t * (y - x), y - (y - x) * (1 - t))
    out = wrap(_as_array(r, dt))
    if w is None:
        return record(out, "LerpBackward0", _r_lerp_number, (a, b), (), False, t)
    return record(out, "LerpBackward1", _r_lerp_tensor, (a, b, w), (a, b, w), False, None)


# --- tests of values (no gradient) ---------------------------------------------------------------

cdef object _flag(object input, str name, object fn):
    cdef TensorBase a = _input(input, name)
    return wrap(_as_array(fn(a._data), np.dtype(np.bool_)))


def isnan(input):
    return _flag(input, "isnan", np.isnan)


def isinf(input):
    return _flag(input, "isinf", np.isinf)


def isfinite(input):
    return _flag(input, "isfinite", np.isfinite)


def isposinf(input):
    return _flag(input, "isposinf", np.isposinf)


def isneginf(input):
    return _flag(input, "isneginf", np.isneginf)


def isreal(input):
    cdef TensorBase a = _input(input, "isreal")
    return wrap(np.ones(_shape(a), dtype=np.bool_))


def _r_nan_to_num(g, s, e):
    return (g * s[0].isfinite(),)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +inf -> posinf (default: the dtype's largest), -inf -> neginf (its lowest);
    the gradient is 0 where the input was not finite."""
    cdef TensorBase a = _input(input, "nan_to_num")
    if a._data.dtype.kind in "biu":
        return wrap(a._data.copy())
    fn = lambda x: np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    return _unary(a, "nan_to_num", fn, "NanToNumBackward0", _r_nan_to_num, 1)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other|, elementwise (PyTorch's and NumPy's rule)."""
    a = _input(input, "isclose")
    b = _input(other, "isclose")
    if (<TensorBase>a)._data.dtype != (<TensorBase>b)._data.dtype:
        raise RuntimeError(f"isclose: the two tensors must have the same dtype, got "
                           f"{a.dtype} and {b.dtype}; convert one with .to(other.dtype)")
    return wrap(_as_array(np.isclose((<TensorBase>a)._data, (<TensorBase>b)._data, rtol=rtol,
                                     atol=atol, equal_nan=equal_nan), np.dtype(np.bool_)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when isclose holds everywhere (a Python bool)."""
    return bool((<TensorBase>isclose(input, other, rtol, atol, equal_nan))._data.all())


def equal(input, other):
    """True when both tensors have the same shape and the same values (a Python bool)."""
    a = _input(input, "equal")
    b = _input(other, "equal")
    return _shape(a) == _shape(b) and bool(np.array_equal((<TensorBase>a)._data,
                                                          (<TensorBase>b)._data))


# --- the table the facade reads ------------------------------------------------------------------

#: name -> function: each is a `fastgrad.<name>` function and a `Tensor.<name>` method.
FUNCTIONS = {f.__name__: f for f in (
    log1p, expm1, log2, log10, exp2, erf, erfc, erfinv, sinh, cosh, tan, asin, acos, atan,
    floor, ceil, trunc, round, frac, atan2, hypot, logaddexp, lerp, isnan, isinf, isfinite,
    isposinf, isneginf, isreal, nan_to_num, isclose, allclose, equal)}
FUNCTIONS.update(fix=trunc, arctan2=atan2, arcsin=asin, arccos=acos, arctan=atan)

#: ops with an in-place form `Tensor.<name>_` (the result written back with copy_)
INPLACE = ("log1p", "expm1", "log2", "log10", "exp2", "erf", "erfc", "erfinv", "sinh", "cosh",
           "tan", "asin", "acos", "atan", "floor", "ceil", "trunc", "round", "frac", "atan2",
           "hypot", "logaddexp", "lerp", "nan_to_num", "fix", "arctan2", "arcsin", "arccos",
           "arctan")

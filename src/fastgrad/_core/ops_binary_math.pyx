# cython: boundscheck=False, wraparound=False
"""Two-operand elementwise math beyond ops_math's: logaddexp2, copysign, fmax, fmin, xlogy,
nextafter, ldexp, float_power (and float_power_).

Operands as PyTorch takes them: a Python number only where PyTorch has an overload for one
(copysign's other, either side of xlogy and float_power), integer and bool tensors only where it
has a kernel for them (NotImplementedError naming the dtype otherwise), results promoted by
PyTorch's rules (promotion.pxd). Forward: NumPy's ufuncs; float16 is computed in float32 and
rounded once, except by the ops that are exact in float16 (copysign, fmax, fmin, nextafter) and
xlogy, which PyTorch computes in float16 (the log rounded, then the product).
Backward: one rule of recorded ops per op (Note [Formula nodes] in formula.pyx), with PyTorch's
values where the derivative is undefined: fmax/fmin send a tie (and a NaN against a number) to
the operand that won, copysign's gradient is 0 where the input is 0, xlogy's is 0 at x = 0 for
y <= 0, nextafter's is 0 where both operands are equal and ldexp's exponent gets
grad * result * ln 2.
"""
cimport numpy as cnp

import math

import numpy as np

from fastgrad._core.promotion cimport promote_tt, promote_ts, broadcast_shapes, pyscalar
from fastgrad._core.tensor cimport TensorBase, wrap, tensor_arg, shape_of as _shape
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.formula cimport record
from fastgrad._core.ops_select cimport where_, select_grad, zeros_grad
from fastgrad._core.ops_cast cimport cast
from fastgrad._core.ops_math import exp2
from fastgrad._core.ops_inplace import apply_inplace

cnp.import_array()

_LN2 = math.log(2.0)
_float32 = np.dtype(np.float32)
_float64 = np.dtype(np.float64)

# which operands may be Python numbers (PyTorch's overloads of the op)
cdef enum Numbers:
    TENSORS, OTHER_NUMBER, EITHER_NUMBER


# --- operands ------------------------------------------------------------------------------------

cdef bint _real_number(object x):
    return isinstance(x, (int, float, np.integer, np.floating, np.bool_))


cdef str _not_tensor(str name, str arg, int pos, object x):
    return (f"{name}(): argument '{arg}' (position {pos}) must be Tensor, not "
            f"{type(x).__name__}; make it one with fastgrad.tensor(...)")


cdef tuple _operands(object input, object other, str name, Numbers numbers):
    """(a, b, dtype): both operands as tensors (a Python number as a 0-d array of the result
    dtype) and the result dtype PyTorch's promotion gives, before any integer-to-float step."""
    cdef bint na = not isinstance(input, TensorBase), nb = not isinstance(other, TensorBase)
    if na and (numbers != EITHER_NUMBER or nb or not _real_number(input)):
        raise TypeError(_not_tensor(name, "input", 1, input))
    if nb and (numbers == TENSORS or not _real_number(other)):
        raise TypeError(_not_tensor(name, "other", 2, other))
    if na:
        dt = promote_ts((<TensorBase>other)._data, pyscalar(input))
        return wrap(np.asarray(pyscalar(input), dtype=dt)), other, dt
    if nb:
        dt = promote_ts((<TensorBase>input)._data, pyscalar(other))
        return input, wrap(np.asarray(pyscalar(other), dtype=dt)), dt
    broadcast_shapes(_shape(<TensorBase>input), _shape(<TensorBase>other), name)
    return input, other, promote_tt((<TensorBase>input)._data, (<TensorBase>other)._data)


cdef object _floating(object dt, str name, bint takes_integers):
    """The result dtype of an op on floating values: integers and bools give float32 (as in
    PyTorch), or PyTorch's NotImplementedError where it has no integer kernel."""
    if dt.kind in "biu":
        if not takes_integers:
            raise NotImplementedError(
                f"\"{name}_cpu\" not implemented for '{scalar_type_name(dt)}': {name} takes "
                f"floating-point tensors; convert with .float() first")
        return _float32
    return dt


cdef object _apply(TensorBase a, TensorBase b, object dt, object fn, bint in_half):
    """fn on both operands' arrays in dt, as a tensor of dt; float16 in float32, rounded once,
    unless in_half (the ops PyTorch computes in float16 itself, or exact there)."""
    compute = _float32 if dt == np.float16 and not in_half else dt
    with np.errstate(all="ignore"):
        r = np.asarray(fn(a._data.astype(compute, copy=False), b._data.astype(compute, copy=False)))
        return wrap(r.astype(dt, copy=False))


# --- logaddexp2, copysign, fmax, fmin, nextafter ------------------------------------------------

def _r_logaddexp2(g, s, e):
    a, b = s
    return (g / (exp2(b - a) + 1), g / (exp2(a - b) + 1))


def _logaddexp2_arrays(x, y):
    """The larger operand plus log2(1 + 2**-|x - y|), as PyTorch computes it: log1p times
    1 / ln 2 added to the larger one in one fused multiply-add (one rounding, which decides the
    result's last bit where it cancels to about 0: logaddexp2(-1, -1)); two equal infinities
    give themselves. float32 (and float16, computed in it) fuse exactly through float64;
    float64 rounds the product too (about 1e-16 where it cancels)."""
    l = np.log1p(np.exp2(-np.abs(x - y)))
    m = np.maximum(x, y)
    if x.dtype == np.float32:
        r = (m.astype(np.float64) + l.astype(np.float64) * float(np.float32(1.0 / _LN2)))
        r = r.astype(np.float32)
    else:
        r = m + l * (1.0 / _LN2)
    return np.where(np.isinf(x) & (x == y), x, r)


def logaddexp2(input, other):
    """log2(2**input + 2**other), without overflow."""
    a, b, dt = _operands(input, other, "logaddexp2", TENSORS)
    out = _apply(a, b, _floating(dt, "logaddexp2", False), _logaddexp2_arrays, False)
    return record(out, "Logaddexp2Backward0", _r_logaddexp2, (a, b), (a, b), False, None)


def _r_copysign(g, s, e):
    a, out = s
    # |input|'s sign flipped or kept: the ratio out / input, 0 where the input is 0
    zero = wrap(np.asarray((<TensorBase>a)._data == 0))
    return (g * where_(zero, 0.0, out / a),  # product: as PyTorch
            zeros_grad(g))


def copysign(input, other):
    """|input| with the sign of other (the sign bit: -0.0 counts as negative)."""
    a, b, dt = _operands(input, other, "copysign", OTHER_NUMBER)
    out = _apply(a, b, _floating(dt, "copysign", True), np.copysign, True)
    node = "CopysignBackward0" if isinstance(other, TensorBase) else "CopysignBackward1"
    return record(out, node, _r_copysign, (a, b), (a,), True, None)


cdef object _first(cnp.ndarray x, cnp.ndarray y, bint is_max):
    """Where fmax (fmin) takes its first operand: a tie included (so fmax(0.0, -0.0) is 0.0),
    and wherever the other is NaN."""
    return np.asarray(((x >= y) if is_max else (x <= y)) | np.isnan(y))


def _r_fmax(g, s, e):
    first = _first((<TensorBase>s[0])._data, (<TensorBase>s[1])._data, True)
    return (select_grad(first, g), select_grad(~first, g))


def _r_fmin(g, s, e):
    first = _first((<TensorBase>s[0])._data, (<TensorBase>s[1])._data, False)
    return (select_grad(first, g), select_grad(~first, g))


cdef object _fmaxmin(object input, object other, bint is_max):
    name = "fmax" if is_max else "fmin"
    a, b, dt = _operands(input, other, name, TENSORS)
    fn = lambda x, y: np.where(_first(x, y, is_max), x, y)
    out = _apply(a, b, dt, fn, True)
    return record(out, "FmaxBackward0" if is_max else "FminBackward0",
                  _r_fmax if is_max else _r_fmin, (a, b), (a, b), False, None)


def fmax(input, other):
    """The larger of the two, elementwise; a NaN loses to a number (maximum propagates it)."""
    return _fmaxmin(input, other, True)


def fmin(input, other):
    """The smaller of the two, elementwise; a NaN loses to a number (minimum propagates it)."""
    return _fmaxmin(input, other, False)


def _r_nextafter(g, s, e):
    moved = np.asarray((<TensorBase>s[0])._data != (<TensorBase>s[1])._data)
    return (select_grad(moved, g), zeros_grad(g))


def nextafter(input, other):
    """The next representable value after input in the direction of other."""
    a, b, dt = _operands(input, other, "nextafter", TENSORS)
    out = _apply(a, b, _floating(dt, "nextafter", False), np.nextafter, True)
    return record(out, "NextafterBackward0", _r_nextafter, (a, b), (a, b), False, None)


# --- xlogy ---------------------------------------------------------------------------------------

def _xlogy_arrays(x, y):
    """x * log(y), 0 where x is 0 (even for y = 0 or inf), NaN where y is NaN."""
    r = np.where(x == 0, 0, x * np.log(y))
    return np.where(np.isnan(y), np.nan, r)


def _r_xlogy(g, s, e):
    x, y = s
    # 0 at x = 0 for y <= 0, where x * log(y) is not defined around the point (PyTorch's choice)
    undefined = np.asarray(((<TensorBase>x)._data == 0) & ((<TensorBase>y)._data <= 0))
    return (where_(wrap(undefined), 0.0, xlogy(g, y)), g * x / y)


def xlogy(input, other):
    """input * log(other), 0 where input is 0 (unless other is NaN)."""
    a, b, dt = _operands(input, other, "xlogy", EITHER_NUMBER)
    out = _apply(a, b, _floating(dt, "xlogy", True), _xlogy_arrays, True)
    node = ("XlogyBackward1" if not isinstance(input, TensorBase) else
            "XlogyBackward2" if not isinstance(other, TensorBase) else "XlogyBackward0")
    return record(out, node, _r_xlogy, (a, b), (a, b), False, None)


# --- ldexp ---------------------------------------------------------------------------------------

def _r_ldexp(g, s, e):
    b, out = s
    if (<TensorBase>b)._data.dtype.kind != "f":
        b = cast(<TensorBase>b, (<TensorBase>g)._data.dtype, False)
    return (g * exp2(b), g * out * _LN2)


def ldexp(input, other):
    """input * 2**other. An integer exponent scales a floating input exactly, in its own dtype
    (no power of two is formed, so 1e-30 * 2**200 stays finite in float32); otherwise 2**other
    is formed in PyTorch's dtype for it (float32 for integer or float32 inputs, else promoted with
    the input's dtype) and multiplied."""
    a, b, dt = _operands(input, other, "ldexp", TENSORS)
    cdef cnp.ndarray x = (<TensorBase>a)._data, e = (<TensorBase>b)._data
    if e.dtype.kind in "biu" and x.dtype.kind == "f":
        if e.dtype.kind == "b":
            raise NotImplementedError("\"ldexp_cpu_exp\" not implemented for 'Bool': ldexp takes "
                                      "an integer or floating exponent; convert with .int() first")
        with np.errstate(all="ignore"):          # float16 overflows to inf, as in PyTorch
            r = np.ldexp(x.astype(_float32) if x.dtype == np.float16 else x, e.astype(np.int64))
            out = wrap(np.asarray(r).astype(x.dtype, copy=False))
    else:
        if x.dtype.kind in "biu" or x.dtype == np.float32:
            pdt = promote_ts(e, 2.0)
        else:
            pdt = promote_tt(np.zeros((), x.dtype), e)
        with np.errstate(all="ignore"):
            p = np.asarray(np.exp2(e.astype(_float32 if pdt == np.float16 else pdt))).astype(pdt)
        dt = promote_tt(x, p)
        out = _apply(a, wrap(p), dt, np.multiply, False)
    return record(out, "LdexpBackward0", _r_ldexp, (a, b), (b,), True, None)


# --- float_power ---------------------------------------------------------------------------------

cdef object _double(object x, str name, str arg, int pos):
    """An operand of float_power in float64: a tensor cast (recorded), a number as a float."""
    if isinstance(x, TensorBase):
        return cast(<TensorBase>x, _float64, False)
    if not _real_number(x):
        raise TypeError(_not_tensor(name, arg, pos, x))
    return float(x)


def float_power(input, exponent):
    """input ** exponent computed in float64, whatever the operands' dtypes (PyTorch's
    float_power; the result is always float64). Its node is pow's."""
    if not isinstance(input, TensorBase) and not isinstance(exponent, TensorBase):
        raise TypeError(_not_tensor("float_power", "input", 1, input))
    base = _double(input, "float_power", "input", 1)
    power = _double(exponent, "float_power", "exponent", 2)
    if not isinstance(base, TensorBase):
        return power.__rpow__(base)
    return base ** power


def float_power_(input, exponent):
    """In-place float_power: the base must already be float64 (the result's dtype)."""
    cdef TensorBase a = tensor_arg(input, "float_power_")
    if a._data.dtype != np.float64:
        raise RuntimeError(f"the base given to float_power_ has dtype "
                           f"{scalar_type_name(a._data.dtype)} but the operation's result "
                           f"requires dtype Double; convert it first with .double(), or use "
                           f"float_power(x, exponent)")
    return apply_inplace(a, float_power, "float_power_", exponent)


# --- the table the facade reads ------------------------------------------------------------------

#: name -> function: each is a `fastgrad.<name>` function and a `Tensor.<name>` method.
FUNCTIONS = {f.__name__: f for f in (
    logaddexp2, copysign, fmax, fmin, xlogy, nextafter, ldexp, float_power)}

#: ops with an in-place form `Tensor.<name>_` (float_power_ checks its base's dtype first: its own)
INPLACE = ("copysign", "xlogy", "nextafter", "ldexp")

#: in-place methods written here
INPLACE_METHODS = {"float_power_": float_power_}

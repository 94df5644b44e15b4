# cython: boundscheck=False, wraparound=False
"""Comparisons (== != < <= > >=), floor_divide/remainder/fmod, div with a rounding mode, and the
bitwise and logical ops, with their in-place forms (through ops_inplace) and backward nodes."""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport (TensorBase, OpTable, op_table, wrap, set_meta2, CMP_EQ, CMP_NE,
                                    CMP_LT, CMP_LE, CMP_GT, CMP_GE)
from fastgrad._core.recording cimport set_history1, set_history2
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.inplace_checks cimport check_inplace
from fastgrad._core.promotion cimport (is_scalar, broadcast_shapes, pyscalar, promote_tt,
                                       promote_ts, same_shape, as_array, cast_array)
from fastgrad._core.kernels cimport OP_DIV
from fastgrad._core.ops_arith cimport mul, div
from fastgrad._core.ops_select cimport zeros_grad
from fastgrad._core.ops_inplace cimport history_alias, rebase, inplace

cnp.import_array()

cdef object _bool = np.dtype(np.bool_)
cdef dict _CMP_UFUNC = {CMP_EQ: np.equal, CMP_NE: np.not_equal, CMP_LT: np.less,
                        CMP_LE: np.less_equal, CMP_GT: np.greater, CMP_GE: np.greater_equal}


# --- comparisons ---------------------------------------------------------------------------------

cdef object compare(int op, object a, object b):
    """a (cmp) b as a bool tensor; records nothing."""
    cdef TensorBase ta = a
    if isinstance(b, TensorBase):
        y = (<TensorBase>b)._data
        if not same_shape(ta._data, y):
            broadcast_shapes((<object>ta._data).shape, (<object>y).shape, "comparison")
    elif is_scalar(b):
        y = pyscalar(b)
    else:
        return NotImplemented
    return wrap(as_array(_CMP_UFUNC[op](ta._data, y)))


# --- floor_divide, remainder, fmod, bitwise and logical ops ---------------------------------------
# Tensor (op) tensor/number in either order, promoted as the arithmetic ops are. Integer division
# by zero raises (PyTorch's "ZeroDivisionError"); floats follow IEEE (inf, nan). remainder takes the
# divisor's sign (Python's %), fmod the dividend's (C's fmod); a zero result keeps fmod's sign.

cdef enum:
    IOP_FLOORDIV = 0
    IOP_REMAINDER = 1
    IOP_FMOD = 2
    IOP_DIV_FLOOR = 3              # div(rounding_mode="floor"): floor_divide's values
    IOP_DIV_TRUNC = 4              # div(rounding_mode="trunc")
    IOP_AND = 5
    IOP_OR = 6
    IOP_XOR = 7
    IOP_LAND = 8
    IOP_LOR = 9
    IOP_LXOR = 10

cdef tuple _IOP_NAME = ("floor_divide", "remainder", "fmod", "div", "div", "bitwise_and",
                        "bitwise_or", "bitwise_xor", "logical_and", "logical_or", "logical_xor")
cdef tuple _IOP_KERNEL = ("div_floor_cpu", "remainder_cpu", "fmod_cpu", "div_floor_cpu",
                          "div_trunc_cpu", "bitwise_and_cpu", "bitwise_or_cpu", "bitwise_xor_cpu")
cdef tuple _IOP_UFUNC = (np.floor_divide, None, np.fmod, np.floor_divide, None, np.bitwise_and,
                         np.bitwise_or, np.bitwise_xor, np.logical_and, np.logical_or,
                         np.logical_xor)


cdef object _iop_values(int op, cnp.ndarray x, object y, object dt):
    """x (op) y as an ndarray of dtype dt; y is an ndarray or a number, both already of dt."""
    cdef str kind = dt.kind
    if op <= IOP_DIV_TRUNC:
        if kind == "b":
            raise NotImplementedError(f'"{_IOP_KERNEL[op]}" not implemented for \'Bool\': '
                                      f'{_IOP_NAME[op]} needs integer or floating tensors')
        if kind in "iu" and not np.all(y):
            raise RuntimeError(f"ZeroDivisionError: integer {_IOP_NAME[op]} by zero")
    elif op <= IOP_XOR and kind not in "biu":
        raise NotImplementedError(f'"{_IOP_KERNEL[op]}" not implemented for \'{scalar_type_name(dt)}\': '
                                  f'{_IOP_NAME[op]} takes integer or bool tensors')
    with np.errstate(all="ignore"):
        if op == IOP_DIV_TRUNC:
            if kind == "f":
                return as_array(np.trunc(np.true_divide(x, y)))
            q = as_array(np.floor_divide(x, y))
            return as_array(q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(dt))
        if op == IOP_REMAINDER:
            if kind != "f":
                return as_array(np.remainder(x, y))
            m = as_array(np.fmod(x, y))
            fix = (m != 0) & ((y < 0) != (m < 0))
            return as_array(np.where(fix, m + y, m).astype(dt, copy=False))
        return as_array(_IOP_UFUNC[op](x, y))


cdef object _intop(int op, object a, object b):
    """a (op) b where a or b is a tensor and the other a tensor or number; NotImplemented for
    other operands. Records RemainderBackward*/FmodBackward*; floor_divide records a node whose
    backward raises (PyTorch has no derivative for it)."""
    cdef TensorBase ta = a if isinstance(a, TensorBase) else None
    cdef TensorBase tb = b if isinstance(b, TensorBase) else None
    cdef TensorBase out
    cdef Node node
    cdef bint logical = op >= IOP_LAND
    if ta is None and tb is None:
        return NotImplemented
    if (ta is None and not is_scalar(a)) or (tb is None and not is_scalar(b)):
        return NotImplemented
    if ta is not None and tb is not None:
        dt = promote_tt(ta._data, tb._data)
        if not same_shape(ta._data, tb._data):
            broadcast_shapes((<object>ta._data).shape, (<object>tb._data).shape, _IOP_NAME[op])
    elif ta is not None:
        dt = promote_ts(ta._data, pyscalar(b))
    else:
        dt = promote_ts(tb._data, pyscalar(a))
    if logical:
        x = ta._data if ta is not None else np.asarray(pyscalar(a))
        y = tb._data if tb is not None else np.asarray(pyscalar(b))
    else:
        x = cast_array(ta._data, dt) if ta is not None else np.asarray(pyscalar(a)).astype(dt)
        y = cast_array(tb._data, dt) if tb is not None else np.asarray(pyscalar(b)).astype(dt)
    out = wrap(_iop_values(op, x, y, dt if not logical else _bool))
    if logical or dt.kind != "f" or not grad_enabled():
        return out
    if not ((ta is not None and ta._requires_grad) or (tb is not None and tb._requires_grad)):
        return out
    if op == IOP_DIV_FLOOR or op == IOP_DIV_TRUNC:
        node = DivBackward2.__new__(DivBackward2)
        set_meta2(node, out._data, ta, tb)
        set_history2(out, node, ta, tb)           # a number divisor is a (None, 0) edge
        return out
    if op == IOP_FLOORDIV or ta is None:
        node = _NotImplementedBackward.__new__(_NotImplementedBackward)
        (<_NotImplementedBackward>node).op = _IOP_NAME[op]
        set_history1(out, node, ta if ta is not None else tb)
        return out
    if tb is None:
        node = (RemainderBackward0.__new__(RemainderBackward0) if op == IOP_REMAINDER
                else FmodBackward0.__new__(FmodBackward0))
        if out._data.dtype != ta._data.dtype:
            node._in_meta = (((<object>ta._data).shape, ta._data.dtype),)
        set_history1(out, node, ta)
        return out
    node = (RemainderBackward1.__new__(RemainderBackward1) if op == IOP_REMAINDER
            else FmodBackward1.__new__(FmodBackward1))
    if tb._requires_grad:
        (<_DivisorBackward>node).self_ = save(ta, False)
        (<_DivisorBackward>node).other = save(tb, False)
    set_meta2(node, out._data, ta, tb)
    set_history2(out, node, ta, tb)
    return out


cdef class _NotImplementedBackward(Node):
    """The node of an op PyTorch gives no derivative (floor_divide, number % tensor): named
    NotImplemented as there, its backward raises."""
    cdef str op

    def name(self):
        return "torch::autograd::NotImplemented"

    def __repr__(self):
        return f"<NotImplemented object at {hex(id(self))}>"

    cdef tuple apply(self, tuple grads):
        raise RuntimeError(f"derivative for aten::{self.op} is not implemented: {self.op} is "
                           f"piecewise constant; detach its result (or compute it under "
                           f"no_grad) to use it in a differentiated computation")


@cython.final
cdef class DivBackward2(Node):
    """div with rounding_mode: piecewise constant, so both gradients are zero."""
    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (zeros_grad(g) if self._next_fns[0] is not None else None,
                zeros_grad(g) if self._next_fns[1] is not None else None)


@cython.final
cdef class RemainderBackward0(Node):
    """remainder(a, number): grad_a = grad"""
    cdef tuple apply(self, tuple grads):
        return (grads[0],)


@cython.final
cdef class FmodBackward0(Node):
    """fmod(a, number): grad_a = grad"""
    cdef tuple apply(self, tuple grads):
        return (grads[0],)


cdef class _DivisorBackward(Node):
    """a - q(a / b) * b with q = floor (remainder) or trunc (fmod): grad_a = grad,
    grad_b = -q(a / b) * grad."""
    cdef SavedVar self_, other

    cdef object _quotient(self, cnp.ndarray x, cnp.ndarray y):
        raise NotImplementedError

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        gb = None
        if self.other is not None:
            x = (<TensorBase>self.self_.unpack(self))._data
            y = (<TensorBase>self.other.unpack(self))._data
            dt = promote_tt(x, y)
            with np.errstate(all="ignore"):
                q = self._quotient(cast_array(x, dt), cast_array(y, dt))
            gb = mul(g, wrap(as_array(np.negative(q)).astype(dt, copy=False)))
        return (g if self._next_fns[0] is not None else None, gb)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
            self.other.release()


@cython.final
cdef class RemainderBackward1(_DivisorBackward):
    cdef object _quotient(self, cnp.ndarray x, cnp.ndarray y):
        # the quotient the forward's remainder implies (0.5 // -inf is -1, floor(0.5 / -inf) is
        # -0): div(rounding_mode="floor"), as PyTorch's derivative uses
        return np.floor_divide(x, y)


@cython.final
cdef class FmodBackward1(_DivisorBackward):
    cdef object _quotient(self, cnp.ndarray x, cnp.ndarray y):
        return np.trunc(np.true_divide(x, y))


cdef object _checked(object res, str name, object other):
    if res is NotImplemented:
        raise TypeError(f"{name}(): arguments must be a Tensor and a Tensor or a number, got "
                        f"{type(other).__name__}")
    return res


def bitwise_not(input):
    """~input: bitwise NOT of an integer tensor, logical NOT of a bool tensor."""
    cdef TensorBase a = input
    if a._data.dtype.kind not in "biu":
        raise NotImplementedError(f'"bitwise_not_cpu" not implemented for '
                                  f'\'{scalar_type_name(a._data.dtype)}\': bitwise_not takes integer or '
                                  f'bool tensors')
    return wrap(as_array(np.invert(a._data)))


def logical_not(input):
    cdef TensorBase a = input
    return wrap(as_array(np.logical_not(a._data)))


def _invert(input):
    cdef TensorBase a = input
    if a._data.dtype.kind not in "biu":
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type "
                        "tensors")
    return bitwise_not(a)


def _operator_form(int op, bint reflected):
    """a.__floordiv__ and friends: NotImplemented for unsupported operands lets Python raise
    its TypeError; the reflected form (b // a) swaps the operands."""
    if reflected:
        return lambda a, b: _intop(op, b, a)
    return lambda a, b: _intop(op, a, b)


_floordiv = _operator_form(IOP_FLOORDIV, False)
_rfloordiv = _operator_form(IOP_FLOORDIV, True)
_mod = _operator_form(IOP_REMAINDER, False)
_rmod = _operator_form(IOP_REMAINDER, True)
_and = _operator_form(IOP_AND, False)
_or = _operator_form(IOP_OR, False)
_xor = _operator_form(IOP_XOR, False)


cdef object _inplace_op(object fn, TensorBase a, object b, str name):
    """a = fn(a, b) written into a (the result must cast to a's dtype), as add_ and friends."""
    check_inplace(a)
    if grad_enabled() and (a._requires_grad or
                           (isinstance(b, TensorBase) and (<TensorBase>b)._requires_grad)):
        res = fn(history_alias(a), b)
    else:
        res = fn(a, b)
    if res is NotImplemented:
        return NotImplemented
    if isinstance((<TensorBase>res)._grad_fn, _NotImplementedBackward):
        (<_NotImplementedBackward>(<TensorBase>res)._grad_fn).op = name
    rebase(a, res, name)
    return a


def _forms(int op, str doc):
    """(function, in-place method) of op: fastgrad.floor_divide / Tensor.floor_divide_ ...
    The function raises TypeError for unsupported operands; logical ops take two tensors."""
    cdef str name = _IOP_NAME[op]
    def f(input, other):
        if op >= IOP_LAND and not (isinstance(input, TensorBase) and
                                   isinstance(other, TensorBase)):
            bad = other if isinstance(input, TensorBase) else input
            raise TypeError(f"{name}(): arguments must be Tensors, got {type(bad).__name__}")
        return _checked(_intop(op, input, other), name, other)
    operator = f if op >= IOP_LAND else _operator_form(op, False)
    def f_(input, other):
        return _inplace_op(operator, input, other, name + "_")
    f.__name__ = f.__qualname__ = name
    f_.__name__ = f_.__qualname__ = name + "_"
    f.__doc__ = doc
    return f, f_


floor_divide, floor_divide_ = _forms(IOP_FLOORDIV, "input // other, rounded toward -infinity.")
remainder, remainder_ = _forms(IOP_REMAINDER, "input % other with the sign of other, as Python.")
fmod, fmod_ = _forms(IOP_FMOD, "C's fmod: input - trunc(input / other) * other.")
bitwise_and, bitwise_and_ = _forms(IOP_AND, "input & other on integer or bool tensors.")
bitwise_or, bitwise_or_ = _forms(IOP_OR, "input | other on integer or bool tensors.")
bitwise_xor, bitwise_xor_ = _forms(IOP_XOR, "input ^ other on integer or bool tensors.")
logical_and, logical_and_ = _forms(IOP_LAND, "Elementwise AND of input != 0 and other != 0.")
logical_or, logical_or_ = _forms(IOP_LOR, "Elementwise OR of input != 0 and other != 0.")
logical_xor, logical_xor_ = _forms(IOP_LXOR, "Elementwise XOR of input != 0 and other != 0.")


def bitwise_not_(input):
    return _inplace_op(lambda a, b: bitwise_not(a), input, None, "bitwise_not_")


def logical_not_(input):
    return _inplace_op(lambda a, b: logical_not(a), input, None, "logical_not_")


cdef object _div_rounding(object input, object other, object rounding_mode):
    if rounding_mode == "floor":
        return _checked(_intop(IOP_DIV_FLOOR, input, other), "div", other)
    if rounding_mode == "trunc":
        return _checked(_intop(IOP_DIV_TRUNC, input, other), "div", other)
    raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                       f"found '{rounding_mode}'")


def div_rounding(input, other, *, rounding_mode=None):
    """Tensor.div / fastgrad.div: true division, or rounded with rounding_mode "floor" / "trunc"
    (grad_fn DivBackward2, whose gradients are zero)."""
    if rounding_mode is None:
        return div(input, other)
    return _div_rounding(input, other, rounding_mode)


def div_rounding_(input, other, *, rounding_mode=None):
    if rounding_mode is None:
        return inplace(OP_DIV, input, other)
    return _inplace_op(lambda a, b: _div_rounding(a, b, rounding_mode), input, other, "div_")


cdef OpTable* _ops = op_table()
_ops.compare = compare

# cython: boundscheck=False, wraparound=False
"""Copies and dtype conversions: clone and to_dtype (Tensor.to / .float() / .double() ...), each
with its backward node; to_dtype also fills the op table's cast slot, with which the engine casts
gradients back to their inputs' dtypes (Note [The op table] in tensor.pxd)."""
cimport cython
cimport numpy as cnp

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap
from fastgrad._core.recording cimport set_history1

cnp.import_array()


def clone(input):
    """A copy of `input` with its own storage; gradients pass straight through."""
    cdef TensorBase a = input, out = wrap(a._data.copy())
    cdef Node node
    if a._requires_grad and grad_enabled():
        node = CloneBackward0.__new__(CloneBackward0)
        set_history1(out, node, a)
    return out


@cython.final
cdef class CloneBackward0(Node):
    """grad_a = grad"""
    cdef tuple apply(self, tuple grads):
        return (grads[0],)


def to_dtype(input, np_dtype, bint copy=False):
    """`input` cast to `np_dtype` (the same tensor when it already has it and copy is False);
    the gradient is cast back to the input's dtype."""
    return cast(input, np_dtype, copy)


cdef object cast(TensorBase a, object np_dtype, bint copy):
    cdef TensorBase out
    cdef Node node
    if a._data.dtype == np_dtype and not copy:
        return a
    out = wrap(a._data.astype(np_dtype))
    if a._requires_grad and grad_enabled():
        if out._data.dtype.kind not in "fc":
            return out                      # integer results do not carry gradients
        node = ToCopyBackward0.__new__(ToCopyBackward0)
        node._in_meta = (((<object>a._data).shape, a._data.dtype),)
        set_history1(out, node, a)
    return out


@cython.final
cdef class ToCopyBackward0(Node):
    """grad_a = grad cast back to the input's dtype (done by the engine from _in_meta)"""
    cdef tuple apply(self, tuple grads):
        return (grads[0],)


cdef object _cast_slot(TensorBase a, object np_dtype):
    return cast(a, np_dtype, False)


cdef OpTable* _ops = op_table()
_ops.to_dtype = _cast_slot

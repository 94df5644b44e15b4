# cython: boundscheck=False, wraparound=False
"""In-place writes: a += b and add_/sub_/mul_/div_, fill_/zero_, copy_, and the machinery they and
the other in-place forms (ops_compare's floor_divide_ ...) share: the op runs out of place on an
alias that carries the old history, and its result is written back into the tensor, which
becomes the output of the op's node (PyTorch's rebase_history). PyTorch's rules on what may be
written in place are inplace_checks.pyx's check_inplace.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap
from fastgrad._core.recording cimport set_history, set_history1, set_history2
from fastgrad._core.inplace_checks cimport check_inplace
from fastgrad._core.promotion cimport is_scalar, pyscalar, same_shape
from fastgrad._core.ops_arith cimport binary, binary_tt, binary_ts, check_bool_sub
from fastgrad._core.ops_select cimport zeros_grad
from fastgrad._core.kernels cimport OP_SUB
from fastgrad._core.ops_setitem cimport rebase_view

cnp.import_array()

cdef tuple _INPLACE_NAME = ("add_", "sub_", "mul_", "div_")     # by op code, OP_ADD .. OP_DIV


cdef TensorBase history_alias(TensorBase a):
    """A copy of `a`'s values that carries `a`'s history: the input of a recorded in-place op
    (the op may save it, and `a` itself is about to be overwritten)."""
    cdef TensorBase alias = wrap(a._data.copy())
    alias._grad_fn = a._grad_fn
    alias._requires_grad = a._requires_grad
    alias._output_nr = a._output_nr
    return alias


cdef void rebase(TensorBase a, TensorBase res, str op) except *:
    """Write `res` into `a` in place and make `a` the output of `res`'s node."""
    cdef cnp.ndarray x = a._data, r = res._data
    if not same_shape(x, r):
        raise RuntimeError(f"output with shape {list((<object>x).shape)} doesn't match the broadcast shape "
                           f"{list((<object>r).shape)} in {op}; an in-place op cannot change its target's "
                           f"shape")
    if not np.can_cast(r.dtype, x.dtype, "same_kind"):
        raise RuntimeError(f"result type {scalar_type_name(r.dtype)} can't be cast to the desired output "
                           f"type {scalar_type_name(x.dtype)} in {op}; convert the tensor first")
    np.copyto(x, r, casting="unsafe")
    if res._grad_fn is not None:
        a._grad_fn = res._grad_fn
        a._requires_grad = True
        a._output_nr = res._output_nr
        _after_inplace(a)
    a.bump_version()


cdef inline void _after_inplace(TensorBase a) except *:
    """A write through a view rebases the view's base (Note [In-place writes through views] in
    ops_setitem.pyx)."""
    if a._base is not None and a._grad_fn is not None:
        rebase_view(a)


def apply_inplace(input, fn, str name, *args, **kwargs):
    """input = fn(input, *args, **kwargs) written in place, as the in-place method `name`: fn runs
    on a copy carrying input's history, and input becomes the output of fn's node, so a node
    that saved fn's input keeps the old values (writing fn's result back with copy_ would leave
    that node reading the overwritten ones). The in-place forms of the alias table use it."""
    if not isinstance(input, TensorBase):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(input).__name__}")
    cdef TensorBase a = input
    check_inplace(a)
    rebase(a, fn(history_alias(a) if a._requires_grad and grad_enabled() else a, *args,
                 **kwargs), name)
    return a


cdef object inplace(int op, TensorBase a, object b):
    """a (op)= b: add_, sub_, mul_, div_ and the augmented assignments."""
    cdef str name = _INPLACE_NAME[op]
    check_inplace(a)
    if not is_scalar(b) and not isinstance(b, TensorBase):
        return NotImplemented
    if op == OP_SUB:
        check_bool_sub(a, b)
    if grad_enabled() and (a._requires_grad or
                           (isinstance(b, TensorBase) and (<TensorBase>b)._requires_grad)):
        res = binary(op, history_alias(a), b)
        rebase(a, res, name)
        return a
    res = wrap(binary_tt(op, a._data, (<TensorBase>b)._data) if isinstance(b, TensorBase)
               else binary_ts(op, a._data, pyscalar(b)))
    rebase(a, res, name)
    return a


cdef object fill_(TensorBase a, object value):
    return _fill(a, value, False)


def zero_(input):
    """a.zero_(): fill_ with 0, recorded as ZeroBackward0 as PyTorch does."""
    return _fill(input, 0, True)


cdef object _fill(TensorBase a, object value, bint zero):
    check_inplace(a)
    cdef Node node
    cdef TensorBase v = None
    if isinstance(value, TensorBase):
        v = value
        if v._data.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{v._data.ndim} dimensions.")
        value = v._data.item()
    a._data.fill(value)
    if grad_enabled() and (a._requires_grad or (v is not None and v._requires_grad)):
        if zero:
            node = ZeroBackward0.__new__(ZeroBackward0)
        elif v is None:
            node = FillBackward2.__new__(FillBackward2)
        else:
            node = FillBackward3.__new__(FillBackward3)
            if v._data.dtype != a._data.dtype:
                node._in_meta = (None, ((), v._data.dtype))
        if v is None:
            set_history1(a, node, history_alias(a))
        else:
            set_history2(a, node, history_alias(a), v)
        a._output_nr = 0
        _after_inplace(a)
    a.bump_version()
    return a


cdef class _OverwrittenBackward(Node):
    """The old values no longer matter: their gradient is zero."""
    cdef tuple apply(self, tuple grads):
        return (zeros_grad(grads[0]),)


@cython.final
cdef class ZeroBackward0(_OverwrittenBackward):
    """zero_()"""


@cython.final
cdef class FillBackward2(_OverwrittenBackward):
    """fill_(number)"""


@cython.final
cdef class FillBackward3(Node):
    """fill_(0-d tensor): the old values get zero, the value the sum of the gradient."""
    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (zeros_grad(g) if self._next_fns[0] is not None else None,
                g.sum() if self._next_fns[1] is not None else None)


cdef object copy_(TensorBase a, object src):
    cdef TensorBase s
    cdef CopyBackwards node
    check_inplace(a)
    if not isinstance(src, TensorBase):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    s = src
    try:
        np.copyto(a._data, np.broadcast_to(s._data, (<object>a._data).shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(f"copy_: the source of shape {list((<object>s._data).shape)} is not "
                           f"broadcastable to the destination of shape {list((<object>a._data).shape)}")
    if grad_enabled() and (a._requires_grad or s._requires_grad):
        node = CopyBackwards.__new__(CopyBackwards)
        if s._requires_grad and ((<object>s._data).shape != (<object>a._data).shape or s._data.dtype != a._data.dtype):
            node._in_meta = (None, ((<object>s._data).shape, s._data.dtype))
        set_history(a, node, (history_alias(a), s))
        a._output_nr = 0
        _after_inplace(a)
    a.bump_version()
    return a


@cython.final
cdef class CopyBackwards(Node):
    """grad_self = 0 (overwritten), grad_src = grad"""
    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (zeros_grad(g) if self._next_fns[0] is not None else None, g)


cdef OpTable* _ops = op_table()
_ops.inplace = inplace
_ops.fill = fill_
_ops.copy = copy_

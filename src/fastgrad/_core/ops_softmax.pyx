# cython: boundscheck=True, wraparound=True
"""Fused primitives: softmax and log_softmax over a dim (stable: the row max is subtracted
first, so logits of 1000 do not overflow), each with one fused backward.

Plain backward runs on the arrays: softmax grad = y * (g - sum(g * y)), log_softmax grad =
g - exp(y) * sum(g). Under create_graph the same formulas are written with recorded ops.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.dtypes import to_numpy_dtype

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.ops_arith cimport mul, sub
from fastgrad._core.ops_unary cimport unary
from fastgrad._core.kernels cimport OP_EXP
from fastgrad._core.ops_reduce cimport sum_, acc_dtype
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.attention_kernels cimport softmax_last, softmax_last_bwd, softmax_mid, \
    softmax_mid_bwd

cnp.import_array()


cdef cnp.ndarray _prepare(TensorBase a, object dtype, str op):
    x = a._data
    if dtype is not None:
        x = x.astype(to_numpy_dtype(dtype))
    if x.dtype.kind != "f":
        raise NotImplementedError(f"\"{op}_lastdim_kernel_impl\" not implemented for "
                                  f"'{scalar_type_name(x.dtype)}': {op} needs a floating point input; "
                                  f"convert first, e.g. x.float()")
    return x


cdef int _dim(TensorBase a, object dim, str op) except? -1:
    if dim is None:
        nd = a._data.ndim
        return 0 if nd in (0, 1, 3) else 1
    return wrap_dim(dim, a._data.ndim, op)


cdef cnp.ndarray _shifted(cnp.ndarray x, int d):
    """x - max(x, d). As in PyTorch, a row whose max is inf (+inf anywhere, or all -inf) or NaN
    comes out all NaN: inf - inf is NaN, and the row's sum carries it to every element."""
    with np.errstate(invalid="ignore"):
        return x - np.max(x, axis=d, keepdims=True)


cdef object _sum_along(object x, int d):
    """NumPy's sum of x along d, kept, in its accumulator's dtype (Note [Sums' accumulators] in
    ops_reduce.pyx: float16 sums in float32); the caller casts its result back to x's dtype."""
    return np.sum(x, axis=d, keepdims=True, dtype=acc_dtype(x, (d,), False))


cdef inline bint _rows_dtype(cnp.ndarray x):
    """float32 or float64 in native byte order: the compiled rows' types."""
    return cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT64


cdef bint _split(cnp.ndarray x, int d, Py_ssize_t* outer, Py_ssize_t* C,
                 Py_ssize_t* inner) noexcept:
    """x's shape as (outer, C, inner) around dim d; False when x is empty."""
    cdef int i
    outer[0], C[0], inner[0] = 1, x.shape[d], 1
    for i in range(d):
        outer[0] *= x.shape[i]
    for i in range(d + 1, x.ndim):
        inner[0] *= x.shape[i]
    return x.size != 0


cdef object _compiled(cnp.ndarray x, int d, bint log_, bint own):
    """softmax (log_: log_softmax) over dim d on the compiled loops (Note [Softmax over the last
    dim], Note [Softmax over a middle dim] in attention_kernels.pyx) as a C-contiguous array (x
    itself when `own`, x being a copy made for the call, e.g. by dtype=, and C-contiguous; else a
    new one), or None when x is not of that kind (another dtype, empty): the caller uses
    NumPy."""
    cdef Py_ssize_t outer, C, inner
    cdef cnp.ndarray y
    cdef void* p
    cdef bint f32
    if not _rows_dtype(x) or not x.dtype.isnative or not _split(x, d, &outer, &C, &inner):
        return None
    y = x if own and cnp.PyArray_IS_C_CONTIGUOUS(x) else np.array(x, order="C", copy=True)
    p = cnp.PyArray_DATA(y)
    f32 = cnp.PyArray_TYPE(y) == cnp.NPY_FLOAT32
    with nogil:
        if inner == 1:
            softmax_last(p, outer, C, f32, log_)
        else:
            softmax_mid(p, outer, C, inner, f32, log_)
    return y


cdef object _compiled_bwd(object g, object y, int d, bint log_):
    """The gradient of _compiled from its result y and the output's gradient g, or None (the
    caller uses NumPy)."""
    cdef Py_ssize_t outer, C, inner
    cdef cnp.ndarray gx, yc = y
    cdef void* pg
    cdef const void* py
    cdef bint f32
    if not _rows_dtype(yc) or not yc.dtype.isnative or g.dtype != y.dtype \
            or not cnp.PyArray_IS_C_CONTIGUOUS(yc) or not _split(yc, d, &outer, &C, &inner):
        return None
    gx = np.array(g, order="C", copy=True)
    pg, py = cnp.PyArray_DATA(gx), cnp.PyArray_DATA(yc)
    f32 = cnp.PyArray_TYPE(yc) == cnp.NPY_FLOAT32
    with nogil:
        if inner == 1:
            softmax_last_bwd(pg, py, outer, C, f32, log_)
        else:
            softmax_mid_bwd(pg, py, outer, C, inner, f32, log_)
    return gx


def softmax(input, dim=None, dtype=None, *, _stacklevel=3):
    """exp(x) / sum(exp(x)) along dim, computed stably (SoftmaxBackward0)."""
    cdef TensorBase a = input, out
    cdef int d = _dim(a, dim, "softmax")          # the dim is checked first, as in PyTorch
    x = _prepare(a, dtype, "softmax")
    if x.ndim == 0:                                # exp(x - x): 1, or NaN for inf/NaN as PyTorch
        with np.errstate(invalid="ignore"):
            y = np.exp(x - x)
    elif x.size == 0:
        y = x.copy()
    else:
        y = _compiled(x, d, False, x is not a._data)
        if y is None:
            e = np.exp(_shifted(x, d))
            y = (e / _sum_along(e, d)).astype(x.dtype, copy=False)
    out = wrap(np.asarray(y))
    if a._requires_grad and grad_enabled():
        _record(SoftmaxBackward0.__new__(SoftmaxBackward0), a, out, x, d, dtype)
    return out


cdef void _record(_ResultBackward node, TensorBase a, TensorBase out, object x, int d,
                  object dtype) except *:
    """out's history: node, fed by a, keeping out and the dim (-1 for a 0-d input); the
    gradient cast back to a's dtype when dtype= changed it."""
    node.dim = d if x.ndim else -1
    if dtype is not None and x.dtype != a._data.dtype:
        node._in_meta = (((<object>a._data).shape, a._data.dtype),)
    set_history1(out, node, a)
    node.result = save(out, True)


cdef class _ResultBackward(Node):
    """The softmaxes' nodes: the saved result and the dim."""
    cdef SavedVar result
    cdef int dim

    cdef void release_variables(self):
        self.result.release()


@cython.final
cdef class SoftmaxBackward0(_ResultBackward):
    """grad_x = y * (g - sum(g * y, dim))"""

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], y = self.result.unpack(self)
        if self.dim < 0:                # y = 1: y (g - g y) is g - g (NaN where g is inf)
            return (sub(g, g),)
        if not grad_enabled():
            gd, yd = g._data, y._data
            gx = _compiled_bwd(gd, yd, self.dim, False)
            if gx is not None:
                return (wrap(gx),)
            gy = gd * yd
            return (wrap(np.asarray(gy - yd * _sum_along(gy, self.dim)).astype(gy.dtype,
                                                                                copy=False)),)
        gy = mul(g, y)
        return (sub(gy, mul(y, sum_(gy, self.dim, True))),)


def log_softmax(input, dim=None, dtype=None, *, _stacklevel=3):
    """x - logsumexp(x) along dim, computed stably (LogSoftmaxBackward0)."""
    cdef TensorBase a = input, out
    cdef int d = _dim(a, dim, "log_softmax")          # the dim is checked first, as in PyTorch
    x = _prepare(a, dtype, "log_softmax")
    if x.ndim == 0:                                # x - x: 0, or NaN for inf/NaN as PyTorch
        with np.errstate(invalid="ignore"):
            y = x - x
    elif x.size == 0:
        y = x.copy()
    else:
        y = _compiled(x, d, True, x is not a._data)
        if y is None:
            s = _shifted(x, d)
            y = (s - np.log(_sum_along(np.exp(s), d))).astype(x.dtype, copy=False)
    out = wrap(np.asarray(y))
    if a._requires_grad and grad_enabled():
        _record(LogSoftmaxBackward0.__new__(LogSoftmaxBackward0), a, out, x, d, dtype)
    return out


@cython.final
cdef class LogSoftmaxBackward0(_ResultBackward):
    """grad_x = g - exp(y) * sum(g, dim)"""

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], y = self.result.unpack(self)
        if self.dim < 0:                # y = 0: g - exp(y) g is g - g (NaN where g is inf)
            return (sub(g, g),)
        if not grad_enabled():
            gd = g._data
            gx = _compiled_bwd(gd, y._data, self.dim, True)
            if gx is not None:
                return (wrap(gx),)
            return (wrap(np.asarray(gd - np.exp(y._data) * _sum_along(gd, self.dim))
                         .astype(gd.dtype, copy=False)),)
        return (sub(g, mul(unary(OP_EXP, y), sum_(g, self.dim, True))),)

# cython: boundscheck=False, wraparound=False
"""The activations with a second operand, one node each: glu (the input's second half gates its
first, GluBackward0) and prelu (a learned slope per channel, PreluKernelBackward0).

Forwards run on the NumPy storage; each backward follows Note [Fused backward, composed double
backward] (ops_loss.pyx): directly on arrays without create_graph, with recorded ops under it.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1, set_history2
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_activation cimport _tensor, _pick
from fastgrad._core.ops_unary cimport unary
from fastgrad._core.ops_select cimport where_
from fastgrad._core.ops_reduce cimport sum_to
from fastgrad._core.ops_view cimport reshape_c
from fastgrad._core.ops_index cimport getitem_c
from fastgrad._core.ops_join import cat
from fastgrad._core.kernels cimport OP_SIGMOID

cnp.import_array()


cdef int _float_only(cnp.ndarray a, str kernel) except -1:
    if a.dtype.kind != "f":
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{scalar_type_name(a.dtype)}': it expects a floating point "
                                  f"tensor; convert it with .float()")
    return 0


cdef cnp.ndarray _carray(object a, object dtype):
    """a as a C-contiguous array of dtype, 0-d kept 0-d (np.ascontiguousarray makes it 1-d)."""
    return np.asarray(a, dtype=dtype, order="C")


cdef object _sigmoid_np(object b):
    """1 / (1 + exp(-b)): keeps sigmoid(-50) a tiny number (inf * it is inf, as in torch)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-b))


# --- glu -------------------------------------------------------------------------------------------

def glu(input, dim=-1):
    """a * sigmoid(b), where a and b are input's halves along dim."""
    cdef TensorBase x = _tensor(input, "glu", "input")
    cdef cnp.ndarray xd = x._data
    cdef int nd = xd.ndim, d = dim
    cdef GluBackward0 node
    if nd == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even; "
                           "pass a tensor with at least one dimension")
    if not -nd <= d < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}],"
                         f" but got {dim})")
    d = d % nd
    cdef Py_ssize_t n = xd.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    _float_only(xd, "glu_cpu")
    a, b = np.split(xd, 2, axis=d)
    out = wrap(_carray(a * _sigmoid_np(b), dtype=xd.dtype))
    if x._requires_grad and grad_enabled():
        node = GluBackward0.__new__(GluBackward0)
        node.x = save(x, False)
        node.dim = d
        set_history1(out, node, x)
    return out


@cython.final
cdef class GluBackward0(Node):
    """d/da = g * s, d/db = g * a * s * (1 - s), s = sigmoid(b), joined along dim."""
    cdef SavedVar x
    cdef int dim

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self)
        cdef cnp.ndarray xd = x._data
        cdef Py_ssize_t h = xd.shape[self.dim] // 2
        if grad_enabled():
            lead = (slice(None),) * self.dim
            a = getitem_c(x, lead + (slice(0, h),))
            s = unary(OP_SIGMOID, getitem_c(x, lead + (slice(h, None),)))
            ga = pw.mul(g, s)
            return (cat([ga, pw.mul(pw.mul(ga, a), pw.rsub(s, 1.0))], self.dim),)
        a, b = np.split(xd, 2, axis=self.dim)
        s = _sigmoid_np(b)
        ga = g._data * s
        return (wrap(_carray(np.concatenate([ga, ga * a * (1 - s)], axis=self.dim),
                                          dtype=xd.dtype)),)

    cdef void release_variables(self):
        self.x.release()


# --- prelu -----------------------------------------------------------------------------------------

cdef tuple _prelu_shape(cnp.ndarray x, cnp.ndarray w):
    """The shape weight is read in against input: one slope for all, or one per channel (dim 1;
    a tensor of fewer than two dims has one channel)."""
    cdef Py_ssize_t channels = x.shape[1] if x.ndim >= 2 else 1
    if w.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                           f"ndim = {w.ndim}")
    if w.size == 1:
        return ()
    if w.size != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                           f"parameter numbers = {w.size} and channel size = {channels}.")
    return (channels,) + (1,) * (x.ndim - 2)


def prelu(input, weight):
    """input where input > 0, else weight * input; weight: one slope, or one per channel."""
    cdef TensorBase x = _tensor(input, "prelu", "input"), w = _tensor(weight, "prelu", "weight")
    cdef cnp.ndarray xd = x._data, wd = w._data
    cdef PreluKernelBackward0 node
    _float_only(xd, "prelu_cpu")
    if wd.dtype != xd.dtype:
        raise RuntimeError(f"prelu: expected weight to have the input's dtype "
                           f"({scalar_type_name(xd.dtype)}), got {scalar_type_name(wd.dtype)}; "
                           f"convert one with .to()")
    cdef tuple shape = _prelu_shape(xd, wd)
    wb = wd.reshape(shape)
    with np.errstate(invalid="ignore"):                  # 0 * inf is NaN, as in torch
        out = wrap(_carray(_pick(xd > 0, xd, wb * xd, xd.dtype), xd.dtype))
    if (x._requires_grad or w._requires_grad) and grad_enabled():
        node = PreluKernelBackward0.__new__(PreluKernelBackward0)
        node.x = save(x, False)
        node.w = save(w, False)
        node.shape = shape
        set_history2(out, node, x, w)
    return out


@cython.final
cdef class PreluKernelBackward0(Node):
    """d/dx = g where x > 0, else weight * g; d/dweight = sum of x * g where x <= 0 (selected:
    an element that passes contributes 0 to the slope, whatever x or g hold there)."""
    cdef SavedVar x, w
    cdef tuple shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self), w = self.w.unpack(self)
        cdef cnp.ndarray xd = x._data, wd = w._data
        pos = xd > 0
        wshape = (<object>wd).shape
        if grad_enabled():
            wb = reshape_c(w, self.shape)
            gx = where_(wrap(pos), g, pw.mul(g, wb)) if self._next_fns[0] is not None else None
            gw = None
            if self._next_fns[1] is not None:
                gw = sum_to(where_(wrap(pos), 0.0, pw.mul(g, x)), self.shape)
                gw = reshape_c(gw, wshape)
            return (gx, gw)
        gd = g._data
        gx = gw = None
        with np.errstate(invalid="ignore"):
            if self._next_fns[0] is not None:
                gx = wrap(_carray(_pick(pos, gd, wd.reshape(self.shape) * gd, xd.dtype),
                                  xd.dtype))
            if self._next_fns[1] is not None:
                contrib = _pick(pos, 0, gd * xd, xd.dtype)
                if self.shape == ():
                    total = contrib.sum()
                else:
                    axes = (0,) + tuple(range(2, xd.ndim))
                    total = contrib.sum(axis=axes)
                gw = wrap(_carray(np.asarray(total).reshape(wshape), wd.dtype))
        return (gx, gw)

    cdef void release_variables(self):
        self.x.release()
        self.w.release()

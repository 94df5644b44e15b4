# cython: boundscheck=False, wraparound=False, cdivision=True
"""Activations as one node each: gelu (exact and tanh), silu, softplus, elu, leaky_relu, and erf
(gelu's gradient is written with it).

Forwards run on the NumPy storage (gelu's exact form and erf through erf_kernels.pxd's loop);
each node's backward follows Note [Fused backward, composed double backward] (ops_loss.pyx):
directly on arrays without create_graph, with recorded ops under it.
"""
cimport cython
cimport numpy as cnp
import math

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.erf_kernels cimport erf_loop, ERF_ERF_WIDE, ERF_GELU
from fastgrad._core.ops_unary cimport unary
from fastgrad._core.ops_select cimport where_
from fastgrad._core.kernels cimport OP_EXP, OP_NEG, OP_SIGMOID, OP_TANH

cnp.import_array()

cdef dict _ACT_NODES, _ACT_NAMES, _ACT_KERNELS  # activation op -> node class / op name / kernel
cdef double _SQRT1_2 = 0.7071067811865476
cdef double _INV_SQRT_2PI = 0.3989422804014327
cdef double _TWO_OVER_SQRT_PI = 1.1283791670955126


cdef TensorBase _tensor(object x, str op, str arg):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}(): argument '{arg}' must be Tensor, not {type(x).__name__}")
    return <TensorBase>x


cdef cnp.ndarray _c(cnp.ndarray a):
    return a if cnp.PyArray_IS_C_CONTIGUOUS(a) else np.asarray(a, order="C")


cdef enum:
    ACT_GELU = 0
    ACT_GELU_TANH = 1
    ACT_SILU = 2
    ACT_SOFTPLUS = 3
    ACT_ELU = 4
    ACT_LEAKY = 5
    ACT_ERF = 6



cdef cnp.ndarray _erf_like(object x, bint gelu):
    """erf or gelu of a float32/float64 array; float16 computed in float32, returned as float16."""
    x = np.asarray(x)                                     # x * c of a 0-d x is a NumPy scalar
    if x.dtype.itemsize < 4:
        return _erf_like(x.astype(np.float32), gelu).astype(x.dtype)
    cdef cnp.ndarray a = _c(x)
    cdef cnp.ndarray out = np.empty_like(a)
    cdef Py_ssize_t n = a.size
    if a.dtype == np.float32:
        with nogil:
            erf_loop(<float*>cnp.PyArray_DATA(a), <float*>cnp.PyArray_DATA(out), n,
                     ERF_GELU if gelu else ERF_ERF_WIDE)
    else:
        with nogil:
            erf_loop(<double*>cnp.PyArray_DATA(a), <double*>cnp.PyArray_DATA(out), n,
                     ERF_GELU if gelu else ERF_ERF_WIDE)
    return out


_K_TANH = math.sqrt(2.0 / math.pi)


cdef object _act_fwd(int op, cnp.ndarray x, double a, double b):
    if op == ACT_GELU:
        return _erf_like(x, True)
    if op == ACT_ERF:
        return _erf_like(x, False)
    if op == ACT_GELU_TANH:
        return 0.5 * x * (1.0 + np.tanh(_K_TANH * (x + 0.044715 * x * x * x)))
    if op == ACT_SILU:
        return x * (0.5 * (1.0 + np.tanh(0.5 * x)))
    if op == ACT_SOFTPLUS:                               # a = beta, b = threshold
        bx = x * a
        return np.where(bx > b, x, np.logaddexp(0, bx) / a)
    if op == ACT_ELU:                                    # a = alpha
        return np.where(x > 0, x, a * np.expm1(np.minimum(0, x)))   # keeps -0.0, as torch
    return np.where(x > 0, x, x * a)                     # leaky_relu: a = negative_slope


cdef object _act_grad_np(int op, cnp.ndarray x, double a, double b):
    """d act / dx on arrays."""
    if op == ACT_GELU:
        return 0.5 * (1.0 + _erf_like(x * _SQRT1_2, False)) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    if op == ACT_ERF:
        return _TWO_OVER_SQRT_PI * np.exp(-x * x)
    if op == ACT_GELU_TANH:
        t = np.tanh(_K_TANH * (x + 0.044715 * x * x * x))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _K_TANH * (1 + 3 * 0.044715 * x * x)
    if op == ACT_SILU:
        s = 0.5 * (1.0 + np.tanh(0.5 * x))
        return s * (1 + x * (1 - s))
    if op == ACT_SOFTPLUS:
        bx = x * a
        return np.where(bx > b, 1.0, 0.5 * (1.0 + np.tanh(0.5 * bx)))
    if op == ACT_ELU:                                    # x <= 0 selects: NaN takes the 1
        return np.where(x <= 0, a * np.exp(np.minimum(x, 0)), 1.0)
    return np.where(x > 0, 1.0, a)


cdef object _act_grad_rec(int op, TensorBase x, double a, double b):
    """d act / dx with recorded ops (create_graph)."""
    cdef cnp.ndarray xd = x._data
    if op == ACT_GELU:
        Phi = pw.mul_any(pw.add(_act(ACT_ERF, pw.mul_any(x, _SQRT1_2), 0, 0), 1.0), 0.5)
        phi = pw.mul_any(unary(OP_EXP, pw.mul_any(pw.mul(x, x), -0.5)), _INV_SQRT_2PI)
        return pw.add(Phi, pw.mul(x, phi))
    if op == ACT_ERF:
        return pw.mul_any(unary(OP_EXP, unary(OP_NEG, pw.mul(x, x))), _TWO_OVER_SQRT_PI)
    if op == ACT_GELU_TANH:
        x2 = pw.mul(x, x)
        t = unary(OP_TANH, pw.mul_any(pw.add(x, pw.mul_any(pw.mul(x2, x), 0.044715)), _K_TANH))
        d1 = pw.mul_any(pw.add(t, 1.0), 0.5)
        d2 = pw.mul(pw.mul_any(x, 0.5 * _K_TANH), pw.rsub(pw.mul(t, t), 1.0))
        return pw.add(d1, pw.mul(d2, pw.add(pw.mul_any(x2, 3 * 0.044715), 1.0)))
    if op == ACT_SILU:
        s = unary(OP_SIGMOID, x)
        return pw.mul(s, pw.add(pw.mul(x, pw.rsub(s, 1.0)), 1.0))
    if op == ACT_SOFTPLUS:
        s = unary(OP_SIGMOID, pw.mul_any(x, a))
        return where_(wrap(xd * a > b), 1.0, s)
    if op == ACT_ELU:
        return where_(wrap(xd <= 0), pw.mul_any(unary(OP_EXP, x), a), 1.0)
    return wrap(np.where(xd > 0, 1.0, a).astype(xd.dtype))  # product: as PyTorch


cdef object _act(int op, object input, double a, double b):
    cdef TensorBase x = <TensorBase>input, out
    cdef cnp.ndarray xd = x._data
    cdef ActBackward node
    if xd.dtype.kind != "f":
        # PyTorch's kernels have no integer version: NotImplementedError (a RuntimeError)
        raise NotImplementedError(f'"{_ACT_KERNELS[op]}" not implemented for '
                                  f"'{scalar_type_name(xd.dtype)}': {_ACT_NAMES[op]} expects a floating "
                                  f"point tensor; convert it with .float()")
    out = wrap(np.asarray(_act_fwd(op, xd, a, b), dtype=xd.dtype))
    if x._requires_grad and grad_enabled():
        cls = _ACT_NODES[op]
        node = <ActBackward>cls.__new__(cls)
        node.op = op
        node.a = a
        node.b = b
        node.x = save(x, False)
        set_history1(out, node, x)
    return out


cdef class ActBackward(Node):
    """grad * act'(x) (Note [Fused backward, composed double backward])."""
    cdef SavedVar x
    cdef int op
    cdef double a, b

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self)
        if grad_enabled():
            return (pw.mul(g, _act_grad_rec(self.op, x, self.a, self.b)),)
        d = _act_grad_np(self.op, x._data, self.a, self.b)
        with np.errstate(invalid="ignore"):          # inf * 0 is NaN, quietly, as in PyTorch
            return (wrap(np.asarray(g._data * d, dtype=x._data.dtype, order="C")),)

    cdef void release_variables(self):
        self.x.release()


@cython.final
cdef class GeluBackward0(ActBackward):
    pass


@cython.final
cdef class SiluBackward0(ActBackward):
    pass


@cython.final
cdef class SoftplusBackward0(ActBackward):
    pass


@cython.final
cdef class EluBackward0(ActBackward):
    pass


@cython.final
cdef class LeakyReluBackward0(ActBackward):
    pass


@cython.final
cdef class ErfBackward0(ActBackward):
    pass


_ACT_NODES = {ACT_GELU: GeluBackward0, ACT_GELU_TANH: GeluBackward0,
                        ACT_SILU: SiluBackward0, ACT_SOFTPLUS: SoftplusBackward0,
                        ACT_ELU: EluBackward0, ACT_LEAKY: LeakyReluBackward0, ACT_ERF: ErfBackward0}
_ACT_NAMES = {ACT_GELU: "gelu", ACT_GELU_TANH: "gelu", ACT_SILU: "silu",
                        ACT_SOFTPLUS: "softplus", ACT_ELU: "elu", ACT_LEAKY: "leaky_relu",
                        ACT_ERF: "erf"}
_ACT_KERNELS = {ACT_GELU: "GeluKernelImpl", ACT_GELU_TANH: "GeluKernelImpl", ACT_SILU: "silu_cpu",
                ACT_SOFTPLUS: "softplus_cpu", ACT_ELU: "elu_cpu", ACT_LEAKY: "leaky_relu_cpu",
                ACT_ERF: "erf_cpu"}


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act(ACT_GELU if approximate == "none" else ACT_GELU_TANH,
                _tensor(input, "gelu", "input"), 0, 0)


def erf(input):
    return _act(ACT_ERF, _tensor(input, "erf", "input"), 0, 0)


def silu(input, inplace=False):
    return _act(ACT_SILU, _tensor(input, "silu", "input"), 0, 0)


def softplus(input, beta=1.0, threshold=20.0):
    return _act(ACT_SOFTPLUS, _tensor(input, "softplus", "input"), beta, threshold)


def elu(input, alpha=1.0, inplace=False):
    return _act(ACT_ELU, _tensor(input, "elu", "input"), alpha, 0)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _act(ACT_LEAKY, _tensor(input, "leaky_relu", "input"), negative_slope, 0)

# cython: boundscheck=False, wraparound=False, cdivision=True
"""Activations as one node each: gelu (exact and tanh), silu, softplus, elu, leaky_relu, and erf
(gelu's gradient is written with it); hardtanh (relu6), selu, celu, hardsigmoid, hardswish, mish,
threshold, logsigmoid, hardshrink, softshrink; and their in-place forms (`_apply`).

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
from fastgrad._core.ops_select cimport where_, select_grad
from fastgrad._core.inplace_checks cimport check_inplace
from fastgrad._core.ops_inplace cimport history_alias, rebase
from fastgrad._core.kernels cimport OP_EXP, OP_LOG, OP_NEG, OP_SIGMOID, OP_TANH

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
    ACT_HARDTANH = 7      # a = min_val, b = max_val
    ACT_SELU = 8
    ACT_CELU = 9          # a = alpha
    ACT_HARDSIGMOID = 10
    ACT_HARDSWISH = 11
    ACT_MISH = 12
    ACT_THRESHOLD = 13    # a = threshold, b = value
    ACT_LOGSIGMOID = 14
    ACT_HARDSHRINK = 15   # a = lambd
    ACT_SOFTSHRINK = 16   # a = lambd

# selu is elu with these two constants, as PyTorch (its node is EluBackward0)
cdef double _SELU_ALPHA = 1.6732632423543772848170429916717
cdef double _SELU_SCALE = 1.0507009873554804934193349852946


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
        with np.errstate(over="ignore", invalid="ignore"):   # x**3 of a huge x: inf, quietly
            return 0.5 * x * (1.0 + np.tanh(_K_TANH * (x + 0.044715 * x * x * x)))
    if op == ACT_SILU:
        return x * (0.5 * (1.0 + np.tanh(0.5 * x)))
    if op == ACT_SOFTPLUS:                               # a = beta, b = threshold
        bx = x * a
        return np.where(bx > b, x, np.logaddexp(0, bx) / a)
    if op == ACT_ELU:                                    # a = alpha
        return np.where(x > 0, x, a * np.expm1(np.minimum(0, x)))   # keeps -0.0, as torch
    if op == ACT_LEAKY:
        return np.where(x > 0, x, x * a)                 # a = negative_slope
    if op == ACT_HARDTANH:
        return np.clip(x, a, b)                          # NaN and -0.0 pass, as torch's clamp
    if op == ACT_SELU:
        return _pick(x > 0, x * _SELU_SCALE,
                     (_SELU_ALPHA * _SELU_SCALE) * np.expm1(np.minimum(0, x)), x.dtype)
    if op == ACT_CELU:
        return _pick(x > 0, x, a * np.expm1(np.minimum(0, x) * (1.0 / a)), x.dtype)
    if op == ACT_THRESHOLD:
        return _pick(x <= a, b, x, x.dtype)              # NaN is not <= threshold: it passes
    if op == ACT_LOGSIGMOID:                             # min(x, 0) - log1p(exp(-|x|)), as torch
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    if op == ACT_HARDSHRINK:                             # x * 1 outside the band, NaN kept
        return x * ~((x >= -a) & (x <= a))
    if op == ACT_SOFTSHRINK:                             # x - a, x + a, or 0 in the band
        return x - np.clip(x, -a, a)
    with np.errstate(over="ignore", invalid="ignore"):   # -inf * 0 is NaN, as in torch
        if op == ACT_HARDSIGMOID:
            return np.minimum(np.maximum(x + 3, 0), 6) / 6
        if op == ACT_HARDSWISH:
            return x * np.minimum(np.maximum(x + 3, 0), 6) / 6
        return x * np.tanh(np.log1p(np.exp(x)))          # mish


cdef object _act_keep(int op, cnp.ndarray x, double a, double b):
    """Where the gradient passes (a bool array), for the ops whose gradient PyTorch selects
    rather than multiplies (an inf or NaN incoming gradient stays out where it is cut); None for
    the others. The bounds are excluded and a NaN input cuts, as PyTorch's backward kernels."""
    if op == ACT_HARDTANH:
        return (x > a) & (x < b)
    if op == ACT_THRESHOLD:
        return ~(x <= a)                                 # NaN passes: ThresholdBackward's test
    if op == ACT_HARDSHRINK or op == ACT_SOFTSHRINK:
        return (x < -a) | (x > a)
    if op == ACT_HARDSIGMOID:
        return (x > -3) & (x < 3)
    if op == ACT_HARDSWISH:
        return ~(x <= -3)
    return None


cdef object _pick(object keep, object v, object w, object dtype):
    """where(keep, v, w) as an array of dtype, whatever v and w hold where not picked (inf and
    NaN included): their bits anded with all-ones or all-zero masks. np.where on an
    unpredictable mask runs ~10x slower (~6 ns an element: a branch per element)."""
    ut = np.dtype(f"u{np.dtype(dtype).itemsize}")
    mask = np.negative(np.asarray(keep, dtype=ut))      # True -> all ones, False -> 0
    vb = np.asarray(v, dtype=dtype).view(ut)
    wb = np.asarray(w, dtype=dtype).view(ut)
    return ((vb & mask) | (wb & ~mask)).view(dtype)


cdef float _ONE_SIXTH = 1.0 / 6.0      # a float constant in PyTorch's kernel, for double too


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
    if op == ACT_LEAKY:
        return np.where(x > 0, 1.0, a)
    if op == ACT_SELU:
        return _pick(x <= 0, (_SELU_ALPHA * _SELU_SCALE) * np.exp(np.minimum(x, 0)),
                     _SELU_SCALE, x.dtype)
    if op == ACT_CELU:
        return _pick(x <= 0, np.exp(np.minimum(x, 0) * (1.0 / a)), 1.0, x.dtype)
    if op == ACT_HARDSIGMOID:
        return np.asarray(_ONE_SIXTH, dtype=x.dtype)
    if op == ACT_HARDSWISH:
        return _pick(x < 3, x / 3 + 0.5, 1.0, x.dtype)
    if op == ACT_MISH:
        with np.errstate(over="ignore", invalid="ignore"):
            t = np.tanh(np.log1p(np.exp(x)))
            return t + x * (0.5 * (1.0 + np.tanh(0.5 * x))) * (1 - t * t)
    if op == ACT_LOGSIGMOID:                             # sigmoid(-x) in torch's two branches
        z = np.exp(-np.abs(x))
        neg = x < 0
        return _pick(neg, 1.0, 0.0, x.dtype) - _pick(neg, 1.0, -1.0, x.dtype) * (z / (1 + z))
    return None                                          # a selected gradient: _act_keep


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
    if op == ACT_LEAKY:
        return wrap(np.where(xd > 0, 1.0, a).astype(xd.dtype))  # product: as PyTorch
    if op == ACT_SELU:
        return where_(wrap(xd <= 0), pw.mul_any(unary(OP_EXP, x), _SELU_ALPHA * _SELU_SCALE),
                      _SELU_SCALE)
    if op == ACT_CELU:
        return where_(wrap(xd <= 0), unary(OP_EXP, pw.mul_any(x, 1.0 / a)), 1.0)
    if op == ACT_HARDSIGMOID:
        return <double>_ONE_SIXTH
    if op == ACT_HARDSWISH:
        return where_(wrap(xd < 3), pw.add(pw.mul_any(x, 1.0 / 3), 0.5), 1.0)
    if op == ACT_MISH:                    # tanh(softplus(x)), softplus as log(1 + e^x)
        t = unary(OP_TANH, unary(OP_LOG, pw.add(unary(OP_EXP, x), 1.0)))
        s = unary(OP_SIGMOID, x)
        return pw.add(t, pw.mul(pw.mul(x, s), pw.rsub(pw.mul(t, t), 1.0)))
    if op == ACT_LOGSIGMOID:
        return unary(OP_SIGMOID, unary(OP_NEG, x))
    return None


cdef object _act(int op, object input, double a, double b, bint inplace=False):
    """The activation `op` of input (a new tensor), recorded with its node: for an in-place form
    (`inplace`, input a history alias) the node PyTorch names for it."""
    cdef TensorBase x = <TensorBase>input, out
    cdef cnp.ndarray xd = x._data
    cdef ActBackward node
    if xd.dtype.kind != "f" and not (op in (ACT_HARDTANH, ACT_THRESHOLD) and xd.dtype.kind in "iu"):
        # PyTorch's kernels have no integer version: NotImplementedError (a RuntimeError)
        raise NotImplementedError(f'"{_ACT_KERNELS[op]}" not implemented for '
                                  f"'{scalar_type_name(xd.dtype)}': {_ACT_NAMES[op]} expects a floating "
                                  f"point tensor; convert it with .float()")
    out = wrap(np.asarray(_act_fwd(op, xd, a, b), dtype=xd.dtype))
    if x._requires_grad and grad_enabled():
        cls = _ACT_NODES_INPLACE.get(op, _ACT_NODES[op]) if inplace else _ACT_NODES[op]
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
        keep = _act_keep(self.op, x._data, self.a, self.b)
        if grad_enabled():
            d = _act_grad_rec(self.op, x, self.a, self.b)
            gd = g if d is None else pw.mul_any(g, d)
            return (gd if keep is None else select_grad(keep, gd),)
        # huge x overflows and inf * 0 is NaN, quietly, as in PyTorch
        with np.errstate(over="ignore", invalid="ignore"):
            d = _act_grad_np(self.op, x._data, self.a, self.b)
            gd = np.asarray(g._data if d is None else g._data * d, dtype=x._data.dtype)
            if keep is not None:
                gd = _pick(keep, gd, 0, gd.dtype)
            return (wrap(np.asarray(gd, order="C")),)

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


@cython.final
cdef class EluBackward1(ActBackward):
    pass


@cython.final
cdef class LeakyReluBackward1(ActBackward):
    pass


@cython.final
cdef class HardtanhBackward0(ActBackward):
    pass


@cython.final
cdef class CeluBackward0(ActBackward):
    pass


@cython.final
cdef class CeluBackward1(ActBackward):
    pass


@cython.final
cdef class HardsigmoidBackward0(ActBackward):
    pass


@cython.final
cdef class HardswishBackward0(ActBackward):
    pass


@cython.final
cdef class MishBackward0(ActBackward):
    pass


@cython.final
cdef class ThresholdBackward0(ActBackward):
    pass


@cython.final
cdef class ThresholdBackward1(ActBackward):
    pass


@cython.final
cdef class LogSigmoidBackward0(ActBackward):
    pass


@cython.final
cdef class HardshrinkBackward0(ActBackward):
    pass


@cython.final
cdef class SoftshrinkBackward0(ActBackward):
    pass


_ACT_NODES = {ACT_GELU: GeluBackward0, ACT_GELU_TANH: GeluBackward0,
              ACT_SILU: SiluBackward0, ACT_SOFTPLUS: SoftplusBackward0,
              ACT_ELU: EluBackward0, ACT_LEAKY: LeakyReluBackward0, ACT_ERF: ErfBackward0,
              ACT_HARDTANH: HardtanhBackward0, ACT_SELU: EluBackward0, ACT_CELU: CeluBackward0,
              ACT_HARDSIGMOID: HardsigmoidBackward0, ACT_HARDSWISH: HardswishBackward0,
              ACT_MISH: MishBackward0, ACT_THRESHOLD: ThresholdBackward0,
              ACT_LOGSIGMOID: LogSigmoidBackward0, ACT_HARDSHRINK: HardshrinkBackward0,
              ACT_SOFTSHRINK: SoftshrinkBackward0}
# the in-place forms PyTorch records under a node of their own (elu_ saves its result)
_ACT_NODES_INPLACE = {ACT_ELU: EluBackward1, ACT_SELU: EluBackward1, ACT_CELU: CeluBackward1,
                      ACT_LEAKY: LeakyReluBackward1, ACT_THRESHOLD: ThresholdBackward1}
_ACT_NAMES = {ACT_GELU: "gelu", ACT_GELU_TANH: "gelu", ACT_SILU: "silu",
              ACT_SOFTPLUS: "softplus", ACT_ELU: "elu", ACT_LEAKY: "leaky_relu",
              ACT_ERF: "erf", ACT_HARDTANH: "hardtanh", ACT_SELU: "selu", ACT_CELU: "celu",
              ACT_HARDSIGMOID: "hardsigmoid", ACT_HARDSWISH: "hardswish", ACT_MISH: "mish",
              ACT_THRESHOLD: "threshold", ACT_LOGSIGMOID: "logsigmoid",
              ACT_HARDSHRINK: "hardshrink", ACT_SOFTSHRINK: "softshrink"}
_ACT_KERNELS = {ACT_GELU: "GeluKernelImpl", ACT_GELU_TANH: "GeluKernelImpl", ACT_SILU: "silu_cpu",
                ACT_SOFTPLUS: "softplus_cpu", ACT_ELU: "elu_cpu", ACT_LEAKY: "leaky_relu_cpu",
                ACT_ERF: "erf_cpu", ACT_SELU: "elu_cpu", ACT_CELU: "elu_cpu",
                ACT_HARDSIGMOID: "hardsigmoid_cpu", ACT_HARDSWISH: "hardswish_cpu",
                ACT_MISH: "mish_cpu", ACT_LOGSIGMOID: "log_sigmoid_cpu",
                ACT_HARDSHRINK: "hardshrink_cpu", ACT_SOFTSHRINK: "softshrink_cpu"}


cdef object _apply(int op, object input, double a, double b, bint inplace, str name):
    """The activation, or with `inplace` written into input: the op runs on a copy carrying
    input's history and input becomes the output of its node (ops_inplace's rebase)."""
    cdef TensorBase x = _tensor(input, name, "input")
    if not inplace:
        return _act(op, x, a, b)
    check_inplace(x)
    src = history_alias(x) if x._requires_grad and grad_enabled() else x
    rebase(x, _act(op, src, a, b, True), name + "_")
    return x


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act(ACT_GELU if approximate == "none" else ACT_GELU_TANH,
                _tensor(input, "gelu", "input"), 0, 0)


def erf(input):
    return _act(ACT_ERF, _tensor(input, "erf", "input"), 0, 0)


def silu(input, inplace=False):
    return _apply(ACT_SILU, input, 0, 0, inplace, "silu")


def softplus(input, beta=1.0, threshold=20.0):
    return _act(ACT_SOFTPLUS, _tensor(input, "softplus", "input"), beta, threshold)


def elu(input, alpha=1.0, inplace=False):
    return _apply(ACT_ELU, input, alpha, 0, inplace, "elu")


def elu_(input, alpha=1.0):
    return _apply(ACT_ELU, input, alpha, 0, True, "elu")


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _apply(ACT_LEAKY, input, negative_slope, 0, inplace, "leaky_relu")


def leaky_relu_(input, negative_slope=0.01):
    return _apply(ACT_LEAKY, input, negative_slope, 0, True, "leaky_relu")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError(f"min_val cannot be greater than max_val (hardtanh got min_val="
                         f"{min_val}, max_val={max_val}); swap them")
    return _apply(ACT_HARDTANH, input, min_val, max_val, inplace, "hardtanh")


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, True)


def relu6(input, inplace=False):
    return _apply(ACT_HARDTANH, input, 0.0, 6.0, inplace, "hardtanh")


def selu(input, inplace=False):
    return _apply(ACT_SELU, input, 0, 0, inplace, "selu")


def selu_(input):
    return _apply(ACT_SELU, input, 0, 0, True, "selu")


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU (it divides the input); "
                           "pass a nonzero alpha")
    return _apply(ACT_CELU, input, alpha, 0, inplace, "celu")


def celu_(input, alpha=1.0):
    return celu(input, alpha, True)


def hardsigmoid(input, inplace=False):
    return _apply(ACT_HARDSIGMOID, input, 0, 0, inplace, "hardsigmoid")


def hardswish(input, inplace=False):
    return _apply(ACT_HARDSWISH, input, 0, 0, inplace, "hardswish")


def mish(input, inplace=False):
    return _apply(ACT_MISH, input, 0, 0, inplace, "mish")


def threshold(input, threshold, value, inplace=False):
    return _apply(ACT_THRESHOLD, input, threshold, value, inplace, "threshold")


def threshold_(input, threshold, value):
    return _apply(ACT_THRESHOLD, input, threshold, value, True, "threshold")


def logsigmoid(input):
    return _act(ACT_LOGSIGMOID, _tensor(input, "logsigmoid", "input"), 0, 0)


def hardshrink(input, lambd=0.5):
    return _act(ACT_HARDSHRINK, _tensor(input, "hardshrink", "input"), lambd, 0)


def softshrink(input, lambd=0.5):
    cdef TensorBase x = _tensor(input, "softshrink", "input")
    if not lambd >= 0:
        raise RuntimeError(f"softshrink: lambda must be in range [0, inf) for input dtype "
                           f"{scalar_type_name(x._data.dtype)}, but found {lambd:g}")
    return _act(ACT_SOFTSHRINK, x, lambd, 0)

# cython: boundscheck=False, wraparound=False
"""The hot unary ops: exp log sqrt sin cos tanh sigmoid relu neg abs reciprocal, one kernel
launch each (kernels.pyx), with their backward nodes (UnaryBackward and its subclasses, whose
plain backward runs one fused kernel from the saved output when it can). Elementwise math beyond
this set lives in ops_math.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport tensor_arg as _input
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap
from fastgrad._core.recording cimport set_history1
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.storage cimport empty_like
from fastgrad._core.promotion cimport same_shape, fast_float, as_array
from fastgrad._core.ops_arith cimport mul, div, rsub, NOGIL_MIN
from fastgrad._core.ops_select cimport select_grad
from fastgrad._core.kernels cimport (OP_NEG, OP_ABS, OP_EXP, OP_LOG, OP_SQRT, OP_SIN, OP_COS,
    OP_TANH, OP_SIGMOID, OP_RELU, OP_RECIPROCAL)
from fastgrad._core cimport kernels as K
from fastgrad._core.ops_select import sign

cnp.import_array()

cdef object _float32 = np.dtype(np.float32)
cdef dict _UNARY_UFUNC = {OP_NEG: np.negative, OP_ABS: np.abs, OP_EXP: np.exp, OP_LOG: np.log,
                          OP_SQRT: np.sqrt, OP_SIN: np.sin, OP_COS: np.cos, OP_TANH: np.tanh,
                          OP_RECIPROCAL: np.reciprocal}


cdef object unary(int op, TensorBase a):
    """f(a) for the unary ops; integer inputs of float-valued ops are promoted to float32."""
    cdef cnp.ndarray x = a._data, out
    cdef bint f32
    cdef Py_ssize_t n
    cdef TensorBase res
    cdef object half = None
    if cnp.PyArray_ISINTEGER(x) or cnp.PyArray_ISBOOL(x):
        if op == OP_RELU:
            return wrap(as_array(np.maximum(x, 0)) if x.dtype.kind != "b" else x.copy())
        if op == OP_NEG or op == OP_ABS:
            if x.dtype.kind == "b" and op == OP_NEG:
                raise RuntimeError("Negation, the `-` operator, on a bool tensor is not "
                                   "supported. If you are trying to invert a mask, use the `~` "
                                   "or `logical_not()` operator instead.")
            return wrap(as_array(_UNARY_UFUNC[op](x)))
        x = x.astype(_float32, order="C")     # the kernel walks memory in C order
    elif not fast_float(x):
        if x.dtype.itemsize < 4:                 # float16: computed in float32, stored as float16
            half = x.dtype
        x = x.astype(np.float32 if half is not None else x.dtype, order="C")
    out = empty_like(x)
    n = cnp.PyArray_SIZE(x)
    f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    if n < NOGIL_MIN:
        _unary_call(op, f32, cnp.PyArray_DATA(x), cnp.PyArray_DATA(out), n)
    else:
        with nogil:
            _unary_call(op, f32, cnp.PyArray_DATA(x), cnp.PyArray_DATA(out), n)
    res = wrap(out if half is None else out.astype(half))
    if a._requires_grad and grad_enabled():
        _record_unary(op, res, a)
    return res


# torch.exp(x) and friends as compiled functions: a Python wrapper calling x.exp() costs ~35 ns
# more per call (W1 calls tanh and exp this way), and a callable object per op (tp_call with an
# argument tuple) ~30 ns more; these cost what the method does.


def exp(input):
    return unary(OP_EXP, _input(input, "exp"))


def log(input):
    return unary(OP_LOG, _input(input, "log"))


def sqrt(input):
    return unary(OP_SQRT, _input(input, "sqrt"))


def sin(input):
    return unary(OP_SIN, _input(input, "sin"))


def cos(input):
    return unary(OP_COS, _input(input, "cos"))


def tanh(input):
    return unary(OP_TANH, _input(input, "tanh"))


def sigmoid(input):
    return unary(OP_SIGMOID, _input(input, "sigmoid"))


def relu(input):
    return unary(OP_RELU, _input(input, "relu"))


def neg(input):
    return unary(OP_NEG, _input(input, "neg"))


def abs(input):
    return unary(OP_ABS, _input(input, "abs"))


def reciprocal(input):
    return unary(OP_RECIPROCAL, _input(input, "reciprocal"))


cdef inline void _unary_call(int op, bint f32, void* x, void* out, Py_ssize_t n) noexcept nogil:
    if f32:
        K.unary_fwd(op, <float*>x, <float*>out, n)
    else:
        K.unary_fwd(op, <double*>x, <double*>out, n)


cdef inline void _unary_bwd_call(int op, bint f32, void* g, void* y, void* out,
                                 Py_ssize_t n) noexcept nogil:
    if f32:
        K.unary_bwd(op, <float*>g, <float*>y, <float*>out, n)
    else:
        K.unary_bwd(op, <double*>g, <double*>y, <double*>out, n)


cdef void _record_unary(int op, TensorBase res, TensorBase a) except *:
    cdef UnaryBackward node
    if op == OP_NEG:
        node = NegBackward0.__new__(NegBackward0)
    elif op == OP_ABS:
        node = AbsBackward0.__new__(AbsBackward0)
    elif op == OP_EXP:
        node = ExpBackward0.__new__(ExpBackward0)
    elif op == OP_LOG:
        node = LogBackward0.__new__(LogBackward0)
    elif op == OP_SQRT:
        node = SqrtBackward0.__new__(SqrtBackward0)
    elif op == OP_SIN:
        node = SinBackward0.__new__(SinBackward0)
    elif op == OP_COS:
        node = CosBackward0.__new__(CosBackward0)
    elif op == OP_TANH:
        node = TanhBackward0.__new__(TanhBackward0)
    elif op == OP_SIGMOID:
        node = SigmoidBackward0.__new__(SigmoidBackward0)
    elif op == OP_RELU:
        node = ReluBackward0.__new__(ReluBackward0)
    else:
        node = ReciprocalBackward0.__new__(ReciprocalBackward0)
    node.op = op
    if op in (OP_ABS, OP_LOG, OP_SIN, OP_COS):
        node.saved = save(a, False)
    set_history1(res, node, a)
    if op in (OP_EXP, OP_SQRT, OP_TANH, OP_SIGMOID, OP_RELU, OP_RECIPROCAL):
        node.saved = save(res, True)


cdef class UnaryBackward(Node):
    """Shared base of one-input elementwise nodes: one saved tensor (input or output)."""
    cdef SavedVar saved
    cdef int op

    cdef void release_variables(self):
        if self.saved is not None:
            self.saved.release()

    cdef object _fused_saved(self, TensorBase g):
        """_fused on the saved output's array, without a tensor for it; None when it does not
        apply (then unpack() raises the released / modified errors or the op falls back)."""
        cdef SavedVar s = self.saved
        if s is None or not s.is_output or s.data is None or s.vc.value != s.version:
            return None
        return self._fused(g, s.data)

    cdef object _fused(self, TensorBase g, cnp.ndarray yd):
        """The fused kernel for grad * f'(from saved output yd), when nothing records and the
        buffers fit the kernel contract; None otherwise."""
        cdef cnp.ndarray gd = g._data, out
        cdef int t = cnp.PyArray_TYPE(gd), op = self.op
        cdef Py_ssize_t n = cnp.PyArray_SIZE(yd)
        cdef double gs
        cdef bint f32 = t == cnp.NPY_FLOAT32
        if t == cnp.NPY_FLOAT16 and cnp.PyArray_TYPE(yd) == t and not grad_enabled():
            # float16 runs the float32 kernel and rounds once, as PyTorch's backward kernels do
            # (a composed 1 - y*y rounds three times: tanh'(2) would lose two digits)
            r = self._fused(wrap(gd.astype(np.float32)), yd.astype(np.float32))
            return None if r is None else wrap((<TensorBase>r)._data.astype(np.float16))
        if grad_enabled() or t != cnp.PyArray_TYPE(yd) or not fast_float(yd) \
                or not same_shape(gd, yd):
            return None
        if self._steal and fast_float(gd):       # Note [Stealing the incoming gradient]
            out = gd
        else:
            out = empty_like(yd)
        if not fast_float(gd):
            if n == 0 or not _is_broadcast_scalar(gd):
                return None
            gs = gd.flat[0]             # one number broadcast over y, as below a sum()
            if f32:
                with nogil:
                    K.unary_bwd_s(op, gs, <float*>cnp.PyArray_DATA(yd),
                                  <float*>cnp.PyArray_DATA(out), n)
            else:
                with nogil:
                    K.unary_bwd_s(op, gs, <double*>cnp.PyArray_DATA(yd),
                                  <double*>cnp.PyArray_DATA(out), n)
        elif n < NOGIL_MIN:
            _unary_bwd_call(op, f32, cnp.PyArray_DATA(gd), cnp.PyArray_DATA(yd),
                            cnp.PyArray_DATA(out), n)
        else:
            with nogil:
                _unary_bwd_call(op, f32, cnp.PyArray_DATA(gd), cnp.PyArray_DATA(yd),
                                cnp.PyArray_DATA(out), n)
        return g if out is gd else wrap(out)


cdef inline bint _is_broadcast_scalar(cnp.ndarray x) noexcept:
    """Every stride 0: one element seen at every index (np.broadcast_to of a scalar)."""
    cdef int d
    for d in range(x.ndim):
        if cnp.PyArray_STRIDE(x, d) != 0 and cnp.PyArray_DIM(x, d) > 1:
            return False
    return True


@cython.final
cdef class NegBackward0(UnaryBackward):
    """grad_a = -grad"""
    cdef tuple apply(self, tuple grads):
        return (unary(OP_NEG, grads[0]),)


@cython.final
cdef class AbsBackward0(UnaryBackward):
    """grad_a = grad * sign(a)"""
    cdef tuple apply(self, tuple grads):
        return (mul(grads[0], sign(self.saved.unpack(self))),)


@cython.final
cdef class ExpBackward0(UnaryBackward):
    """grad_a = grad * exp(a) = grad * y"""
    cdef tuple apply(self, tuple grads):
        r = self._fused_saved(grads[0])
        if r is not None:
            return (r,)
        y = self.saved.unpack(self)
        return (mul(grads[0], y),)


@cython.final
cdef class LogBackward0(UnaryBackward):
    """grad_a = grad / a"""
    cdef tuple apply(self, tuple grads):
        return (div(grads[0], self.saved.unpack(self)),)


@cython.final
cdef class SqrtBackward0(UnaryBackward):
    """grad_a = grad / (2 y)"""
    cdef tuple apply(self, tuple grads):
        return (div(grads[0], mul(self.saved.unpack(self), 2)),)


@cython.final
cdef class SinBackward0(UnaryBackward):
    """grad_a = grad * cos(a)"""
    cdef tuple apply(self, tuple grads):
        return (mul(grads[0], unary(OP_COS, self.saved.unpack(self))),)


@cython.final
cdef class CosBackward0(UnaryBackward):
    """grad_a = -grad * sin(a)"""
    cdef tuple apply(self, tuple grads):
        return (unary(OP_NEG, mul(grads[0], unary(OP_SIN, self.saved.unpack(self)))),)


@cython.final
cdef class TanhBackward0(UnaryBackward):
    """grad_a = grad * (1 - y**2)"""
    cdef tuple apply(self, tuple grads):
        r = self._fused_saved(grads[0])
        if r is not None:
            return (r,)
        y = self.saved.unpack(self)
        return (mul(grads[0], rsub(mul(y, y), 1)),)


@cython.final
cdef class SigmoidBackward0(UnaryBackward):
    """grad_a = grad * y * (1 - y)"""
    cdef tuple apply(self, tuple grads):
        r = self._fused_saved(grads[0])
        if r is not None:
            return (r,)
        y = self.saved.unpack(self)
        return (mul(mul(grads[0], y), rsub(y, 1)),)


@cython.final
cdef class ReluBackward0(UnaryBackward):
    """grad_a = grad where y > 0 or y is NaN, else 0 (PyTorch's threshold_backward: y <= 0
    gives 0, so relu(NaN) passes the gradient)"""
    cdef tuple apply(self, tuple grads):
        r = self._fused_saved(grads[0])
        if r is not None:
            return (r,)
        cdef TensorBase y = self.saved.unpack(self)
        return (select_grad(np.logical_not(y._data <= 0), grads[0]),)


@cython.final
cdef class ReciprocalBackward0(UnaryBackward):
    """grad_a = -grad * y**2"""
    cdef tuple apply(self, tuple grads):
        r = self._fused_saved(grads[0])
        if r is not None:
            return (r,)
        y = self.saved.unpack(self)
        return (unary(OP_NEG, mul(grads[0], mul(y, y))),)


cdef OpTable* _ops = op_table()
_ops.unary = unary

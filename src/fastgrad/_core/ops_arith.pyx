# cython: boundscheck=False, wraparound=False
"""Arithmetic: + - * / ** on tensors and Python numbers, each forward with its backward nodes.

Each forward is glue: check once, promote dtypes as PyTorch does (promotion.pxd), allocate the
output, run a kernel (kernels.pyx) on contiguous float buffers or NumPy's ufunc otherwise, and
record a node only when grad mode is on and an input requires grad. Each backward node sits right
under its forward and is written with these same ops, so it is itself differentiable
(create_graph); while the engine runs without create_graph, grad mode is off and those ops record
nothing. Broadcast inputs get their gradient summed back by the engine (Note [Un-broadcasting in
the engine]). The unary ops the rules need (neg, reciprocal, log) are a family above this one and
are called through the op table (Note [The op table] in tensor.pxd).
"""
cimport cython
cimport numpy as cnp
import math

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap, set_meta2
from fastgrad._core.recording cimport set_history, set_history1, set_history2, any_requires_grad2
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.storage cimport empty_like
from fastgrad._core.promotion cimport (is_scalar, broadcast_shapes, pyscalar, promote_tt,
                                       promote_ts, same_shape, fast_float, as_array, cast_array)
from fastgrad._core.ops_select cimport where_, zeros_grad
from fastgrad._core.kernels cimport (OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_RSUB, OP_RDIV, OP_POW,
    OP_NEG, OP_LOG, OP_RECIPROCAL)
from fastgrad._core cimport kernels as K

cnp.import_array()

cdef object _float32 = np.dtype(np.float32)
cdef dict _UFUNC = {OP_ADD: np.add, OP_SUB: np.subtract, OP_MUL: np.multiply,
                    OP_DIV: np.true_divide}
cdef dict _OPNAME = {OP_ADD: "add", OP_SUB: "sub", OP_MUL: "mul", OP_DIV: "div"}
cdef OpTable* _ops = op_table()


# --- binary forward ------------------------------------------------------------------------------

cdef cnp.ndarray binary_tt(int op, cnp.ndarray a, cnp.ndarray b):
    """a (op) b for two arrays (op: add, sub, mul, div, pow). Floats run the contiguous kernel
    when shapes match, the strided broadcast kernel otherwise; other dtypes use NumPy."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.PyArray_TYPE(b) and fast_float(a) and fast_float(b) and same_shape(a, b):
        return _contiguous_binary(op, a, b)
    dt = promote_tt(a, b)
    if (op == OP_DIV or op == OP_POW) and dt.kind in "biu" and not (op == OP_POW and
                                                                   dt.kind in "iu"):
        dt = _float32
    shape = broadcast_shapes((<object>a).shape, (<object>b).shape, _OPNAME.get(op, "pow"))
    x = cast_array(a, dt)
    y = cast_array(b, dt)
    if dt.kind == "f" and dt.itemsize >= 4:
        if same_shape(x, y) and fast_float(x) and fast_float(y):
            return _contiguous_binary(op, x, y)
        return _strided_binary(op, _aligned(x), _aligned(y), shape)
    if op == OP_POW:
        return _int_power(x, y)
    return as_array(_UFUNC[op](x, y))


cdef cnp.ndarray _int_power(object x, object y):
    """x ** y for integer operands as PyTorch computes it: a negative exponent gives 1 for a base
    of 1, +-1 for -1 and 0 for every other base (NumPy refuses negative integer powers)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or not (y < 0).any():
        return as_array(np.power(x, y))
    neg = y < 0
    r = np.power(x, np.where(neg, 0, y))
    small = np.where(x == 1, 1, np.where(x == -1, np.where(y % 2 == 0, 1, -1), 0))
    return as_array(np.where(neg, small, r).astype(r.dtype, copy=False))


cdef inline cnp.ndarray _aligned(cnp.ndarray x):
    return x if cnp.PyArray_ISALIGNED(x) else x.copy()


cdef cnp.ndarray _contiguous_binary(int op, cnp.ndarray a, cnp.ndarray b):
    cdef cnp.ndarray out = empty_like(a)
    _binary_into(op, a, b, out)
    return out


cdef void _binary_into(int op, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out) noexcept:
    """out = a (op) b on contiguous buffers of one float type and size (out may alias a)."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef void* pa = cnp.PyArray_DATA(a)
    cdef void* pb = cnp.PyArray_DATA(b)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef bint f32 = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
    if n < NOGIL_MIN:
        _binary_call(op, f32, pa, pb, po, n)
    else:
        with nogil:
            _binary_call(op, f32, pa, pb, po, n)


cdef inline void _binary_call(int op, bint f32, void* a, void* b, void* out,
                              Py_ssize_t n) noexcept nogil:
    if f32:
        K.binary_fwd(op, <float*>a, <float*>b, <float*>out, n)
    else:
        K.binary_fwd(op, <double*>a, <double*>b, <double*>out, n)


cdef cnp.ndarray _strided_binary(int op, cnp.ndarray x, cnp.ndarray y, tuple shape):
    """Broadcasting kernel call: element strides of x and y aligned to `shape`, 0 where an input
    is broadcast (its size is 1 or the dimension is missing)."""
    cdef int nd = len(shape), d, kx, ky
    cdef Py_ssize_t[32] sx, sy, dims
    cdef Py_ssize_t item = x.itemsize
    if nd == 0:
        return _contiguous_binary(op, x, y)
    if nd > 32:
        raise RuntimeError(f"tensors with more than 32 dimensions are not supported (got {nd})")
    cdef cnp.ndarray out = np.empty(shape, dtype=x.dtype)
    for d in range(nd):
        dims[d] = shape[d]
        kx = d - (nd - x.ndim)
        ky = d - (nd - y.ndim)
        sx[d] = 0 if kx < 0 or x.shape[kx] == 1 else x.strides[kx] // item
        sy[d] = 0 if ky < 0 or y.shape[ky] == 1 else y.strides[ky] // item
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            K.strided_fwd(op, <float*>cnp.PyArray_DATA(x), <float*>cnp.PyArray_DATA(y),
                          <float*>cnp.PyArray_DATA(out), nd, dims, sx, sy)
    else:
        with nogil:
            K.strided_fwd(op, <double*>cnp.PyArray_DATA(x), <double*>cnp.PyArray_DATA(y),
                          <double*>cnp.PyArray_DATA(out), nd, dims, sx, sy)
    return out


cdef cnp.ndarray binary_ts(int op, cnp.ndarray a, object s):
    """a (op) s for an array and a Python number (OP_RSUB/OP_RDIV: s (op) a)."""
    cdef cnp.ndarray out, x
    cdef Py_ssize_t n
    cdef int t
    cdef double c
    dt = promote_ts(a, s)
    if (op == OP_DIV or op == OP_RDIV) and dt.kind in "biu":
        dt = _float32
    if op == OP_POW and dt.kind in "biu" and isinstance(s, float):
        dt = _float32
    x = cast_array(a, dt)
    if dt.kind == "f" and dt.itemsize >= 4:
        if not fast_float(x):
            x = x.copy()
        c = s
        out = empty_like(x)
        n = cnp.PyArray_SIZE(x)
        t = cnp.PyArray_TYPE(x)
        if t == cnp.NPY_FLOAT32:
            with nogil:
                K.scalar_fwd(op, <float*>cnp.PyArray_DATA(x), c, <float*>cnp.PyArray_DATA(out), n)
        else:
            with nogil:
                K.scalar_fwd(op, <double*>cnp.PyArray_DATA(x), c, <double*>cnp.PyArray_DATA(out), n)
        return out
    if op == OP_RSUB:
        return as_array(np.subtract(s, x))
    if op == OP_POW:
        return as_array(np.power(x, s))
    return as_array(_UFUNC[op](x, s))


cdef inline cnp.ndarray _scalar_kernel(int op, cnp.ndarray x, double c):
    """The scalar kernel on a contiguous float32/float64 array."""
    cdef cnp.ndarray out = empty_like(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void* px = cnp.PyArray_DATA(x)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    if n < NOGIL_MIN:
        _scalar_call(op, f32, px, c, po, n)
    else:
        with nogil:
            _scalar_call(op, f32, px, c, po, n)
    return out


cdef inline void _scalar_call(int op, bint f32, void* x, double c, void* out,
                              Py_ssize_t n) noexcept nogil:
    if f32:
        K.scalar_fwd(op, <float*>x, c, <float*>out, n)
    else:
        K.scalar_fwd(op, <double*>x, c, <double*>out, n)


cdef Node _scalar_node(int op, TensorBase a, object b):
    cdef Node node
    if op == OP_ADD:
        return AddBackward0.__new__(AddBackward0)
    if op == OP_SUB:
        return SubBackward0.__new__(SubBackward0)
    if op == OP_RSUB:
        return RsubBackward1.__new__(RsubBackward1)
    if op == OP_MUL:
        return _mul_node(a, None, b)
    return _div_node(a, None, b)


cdef object binary(int op, TensorBase a, object b):
    """Forward of add/sub/mul/div with a tensor `a`; records `op`'s node when needed."""
    cdef TensorBase tb, out
    cdef Node node
    cdef type tyb = type(b)
    if (tyb is float or tyb is int) and fast_float(a._data):
        # hot path: float tensor (op) Python number keeps the tensor's dtype
        out = wrap(_scalar_kernel(op, a._data, b))
        if a._requires_grad and grad_enabled():
            node = _scalar_node(op, a, b)
            if op == OP_RSUB:
                set_history1(out, node, a)
            else:
                set_history2(out, node, a, None)  # PyTorch lists the number as a (None, 0) edge
        return out
    if op == OP_SUB or op == OP_RSUB:
        check_bool_sub(a, b)
    if isinstance(b, TensorBase):
        tb = <TensorBase>b
        out = wrap(binary_tt(op, a._data, tb._data))
        if any_requires_grad2(a, tb):
            if op == OP_ADD:
                node = AddBackward0.__new__(AddBackward0)
            elif op == OP_SUB:
                node = SubBackward0.__new__(SubBackward0)
            elif op == OP_MUL:
                node = _mul_node(a, tb, None)
            else:
                node = _div_node(a, tb, None)
            if cnp.PyArray_TYPE(a._data) != cnp.PyArray_TYPE(tb._data) or \
                    not same_shape(a._data, tb._data):
                set_meta2(node, out._data, a, tb)
            set_history2(out, node, a, tb)
        return out
    if not is_scalar(b):
        return NotImplemented
    b = pyscalar(b)
    out = wrap(binary_ts(op, a._data, b))
    if a._requires_grad and grad_enabled():
        node = _scalar_node(op, a, b)
        if out._data.dtype != a._data.dtype:
            node._in_meta = (((<object>a._data).shape, a._data.dtype), None)
        if op == OP_RSUB:
            set_history1(out, node, a)
        else:
            set_history(out, node, (a, None))     # PyTorch lists the number as a (None, 0) edge
    return out


cdef int check_bool_sub(TensorBase a, object b) except -1:
    """PyTorch refuses to subtract booleans (a Python bool counts as one)."""
    cdef bint ab = cnp.PyArray_ISBOOL(a._data), bb
    if isinstance(b, TensorBase):
        bb = cnp.PyArray_ISBOOL((<TensorBase>b)._data)
    else:
        bb = type(b) is bool or isinstance(b, np.bool_)
    if ab or bb:
        _bool_sub_error(ab and bb)
    return 0


cdef int _bool_sub_error(bint both) except -1:
    if both:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                       "If you are trying to invert a mask, use the `~` or `logical_not()` "
                       "operator instead.")


cdef object add(object a, object b):
    return binary(OP_ADD, <TensorBase>a, b)


cdef bint add_into(cnp.ndarray acc, cnp.ndarray g) noexcept:
    """acc += g with the contiguous kernel (out aliases its first input, elementwise) when both
    are the same float type and shape and acc is writeable; False, with nothing done, otherwise.
    For buffers that only the caller holds (the engine's gradient sums, a leaf's .grad)."""
    cdef int t = cnp.PyArray_TYPE(acc)
    if t != cnp.PyArray_TYPE(g) or not fast_float(acc) or not fast_float(g) or \
            not same_shape(acc, g) or not cnp.PyArray_ISWRITEABLE(acc):
        return False
    _binary_into(OP_ADD, acc, g, acc)
    return True


cdef object sub(object a, object b):
    return binary(OP_SUB, <TensorBase>a, b)


cdef object rsub(object a, object b):
    if not is_scalar(b):
        return NotImplemented
    return binary(OP_RSUB, <TensorBase>a, b)


cdef object mul(object a, object b):
    return binary(OP_MUL, <TensorBase>a, b)


cdef object div(object a, object b):
    return binary(OP_DIV, <TensorBase>a, b)


cdef object rdiv(object a, object b):
    # s / a is recorded as reciprocal(a) * s, as PyTorch does (grad_fn MulBackward0)
    if not is_scalar(b):
        return NotImplemented
    return mul(_ops.unary(OP_RECIPROCAL, <TensorBase>a), b)


cdef object mul_any(object a, object b):
    if isinstance(a, TensorBase):
        return mul(a, b)
    if isinstance(b, TensorBase):
        return mul(b, a)
    return a * b


# --- add / sub backward --------------------------------------------------------------------------

cdef void record_add(TensorBase out, TensorBase a, TensorBase b) except *:
    """Record out = a + b (a and b of out's shape and dtype; the sum made by a fused loop
    elsewhere) as the add op does."""
    if any_requires_grad2(a, b):
        set_history2(out, AddBackward0.__new__(AddBackward0), a, b)


@cython.final
cdef class AddBackward0(Node):
    """grad_a = grad, grad_b = grad (then summed to each input's shape)."""

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (g, g)


@cython.final
cdef class SubBackward0(Node):
    """grad_a = grad, grad_b = -grad."""

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (g, _ops.unary(OP_NEG, g) if self._next_fns[1] is not None else None)


@cython.final
cdef class RsubBackward1(Node):
    """s - a: grad_a = -grad."""

    cdef tuple apply(self, tuple grads):
        return (_ops.unary(OP_NEG, grads[0]),)


# --- mul -----------------------------------------------------------------------------------------

cdef Node _mul_node(TensorBase a, TensorBase b, object scalar):
    cdef MulBackward0 node = MulBackward0.__new__(MulBackward0)
    if b is None:
        node.scalar = scalar
        return node
    if a._requires_grad:
        node.other = save(b, False)
    if b._requires_grad:
        node.self_ = save(a, False)
    return node


@cython.final
cdef class MulBackward0(Node):
    """grad_a = grad * b, grad_b = grad * a."""
    cdef SavedVar self_, other     # saved inputs (only those the other input's gradient needs)
    cdef object scalar             # b when it was a Python number

    cdef tuple apply(self, tuple grads):
        cdef TensorBase a, b
        g = grads[0]
        if self.other is None and self.self_ is None:
            return (mul(g, self.scalar), None)
        if self.other is not None and self.self_ is not None and not grad_enabled():
            a = self.self_.unpack(self)
            b = self.other.unpack(self)
            r = _mul_both(g, a, b, self._steal)
            if r is not None:
                return r
        ga = mul(g, self.other.unpack(self)) if self.other is not None else None
        gb = mul(g, self.self_.unpack(self)) if self.self_ is not None else None
        return (ga, gb)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
        if self.other is not None:
            self.other.release()


cdef tuple _mul_both(TensorBase g, TensorBase a, TensorBase b, bint steal):
    """(g * b, g * a) straight into two new buffers (the second into g's own when `steal`: Note
    [Stealing the incoming gradient]) when all three are the same float type and shape; None
    otherwise (the caller broadcasts through mul)."""
    cdef cnp.ndarray gd = g._data, ad = a._data, bd = b._data, ga, gb
    cdef int t = cnp.PyArray_TYPE(gd)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(gd)
    if t != cnp.PyArray_TYPE(ad) or t != cnp.PyArray_TYPE(bd) or not fast_float(gd) or \
            not fast_float(ad) or not fast_float(bd) or not same_shape(gd, ad) or \
            not same_shape(gd, bd):
        return None
    ga = empty_like(gd)
    gb = gd if steal else empty_like(gd)
    if n < NOGIL_MIN:
        _mul_both_call(t == cnp.NPY_FLOAT32, cnp.PyArray_DATA(gd), cnp.PyArray_DATA(bd),
                       cnp.PyArray_DATA(ad), cnp.PyArray_DATA(ga), cnp.PyArray_DATA(gb), n)
    else:
        with nogil:
            _mul_both_call(t == cnp.NPY_FLOAT32, cnp.PyArray_DATA(gd), cnp.PyArray_DATA(bd),
                           cnp.PyArray_DATA(ad), cnp.PyArray_DATA(ga), cnp.PyArray_DATA(gb), n)
    return (wrap(ga), g if steal else wrap(gb))


cdef inline void _mul_both_call(bint f32, void* g, void* b, void* a, void* ga, void* gb,
                                Py_ssize_t n) noexcept nogil:
    if f32:
        K.mul_both(<float*>g, <float*>b, <float*>a, <float*>ga, <float*>gb, n)
    else:
        K.mul_both(<double*>g, <double*>b, <double*>a, <double*>ga, <double*>gb, n)


# --- div -----------------------------------------------------------------------------------------

cdef Node _div_node(TensorBase a, TensorBase b, object scalar):
    cdef DivBackward0 node = DivBackward0.__new__(DivBackward0)
    if b is None:
        node.scalar = scalar
        return node
    node.other = save(b, False)
    if b._requires_grad:
        node.self_ = save(a, False)
    return node


@cython.final
cdef class DivBackward0(Node):
    """grad_a = grad / b, grad_b = -grad * (a / b) / b."""
    cdef SavedVar self_, other
    cdef object scalar

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        if self.other is None:
            return (div(g, self.scalar), None)
        b = self.other.unpack(self)
        ga = div(g, b) if self._next_fns[0] is not None else None
        gb = None
        if self.self_ is not None:
            # -grad * ((a / b) / b) as PyTorch groups it: a / (b * b) overflows b * b first
            gb = _ops.unary(OP_NEG, mul(g, div(div(self.self_.unpack(self), b), b)))
        return (ga, gb)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
        if self.other is not None:
            self.other.release()


# --- pow -----------------------------------------------------------------------------------------

cdef object pow_(object a, object b):
    cdef TensorBase ta = <TensorBase>a, tb, out
    cdef PowBackward0 n0
    cdef PowBackward1 n1
    if isinstance(b, TensorBase):
        tb = <TensorBase>b
        out = wrap(binary_tt(OP_POW, ta._data, tb._data))
        if any_requires_grad2(ta, tb):
            n1 = PowBackward1.__new__(PowBackward1)
            n1.self_ = save(ta, False)
            n1.exponent = save(tb, False)
            set_meta2(n1, out._data, ta, tb)
            set_history(out, n1, (ta, tb))
            n1.result = save(out, True)
        return out
    if not is_scalar(b):
        return NotImplemented
    b = pyscalar(b)
    if ta._data.dtype.kind in "iub" and (isinstance(b, int) and b < 0):
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    out = wrap(binary_ts(OP_POW, ta._data, b))
    if ta._requires_grad and grad_enabled():
        n0 = PowBackward0.__new__(PowBackward0)
        n0.self_ = save(ta, False)
        n0.exponent = b
        set_history1(out, n0, ta)
    return out


cdef object rpow(object a, object b):
    """b ** a with a Python number b."""
    cdef TensorBase ta = <TensorBase>a, out
    cdef PowBackward2 node
    if not is_scalar(b):
        return NotImplemented
    b = pyscalar(b)
    dt = promote_ts(ta._data, b)
    if dt.kind in "iu":
        out = wrap(_int_power(b, ta._data))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):     # 0 ** -1 is inf, as in PyTorch
            out = wrap(as_array(np.power(b, cast_array(ta._data, dt))))
    if ta._requires_grad and grad_enabled():
        node = PowBackward2.__new__(PowBackward2)
        node.base = b
        set_history1(out, node, ta)
        node.result = save(out, True)
    return out


@cython.final
cdef class PowBackward0(Node):
    """a ** s: grad_a = grad * s * a ** (s - 1) (zero when s == 0)."""
    cdef SavedVar self_
    cdef object exponent

    cdef tuple apply(self, tuple grads):
        cdef TensorBase a = self.self_.unpack(self)
        e = self.exponent
        if e == 0:
            return (zeros_grad(grads[0]),)
        if e == 2:
            return (mul(grads[0], mul(a, 2)),)
        return (mul(grads[0], mul(pow_(a, e - 1), e)),)      # PyTorch's rounding order

    cdef void release_variables(self):
        self.self_.release()


@cython.final
cdef class PowBackward1(Node):
    """a ** b: grad_a = grad * b * a**(b-1); grad_b = grad * a**b * log(a) (0 where a == 0, b >= 0)."""
    cdef SavedVar self_, exponent, result

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        cdef TensorBase a = self.self_.unpack(self)
        cdef TensorBase b = self.exponent.unpack(self)
        ga = gb = None
        if self._next_fns[0] is not None:
            ga = where_(wrap(as_array(b._data == 0)), 0.0, mul(mul(g, b), pow_(a, sub(b, 1))))
        if self._next_fns[1] is not None:
            # grad * (0 where a == 0 <= b, else a**b log a): the product with grad stays outside
            # the select, as in PyTorch
            r = self.result.unpack(self)
            mask = wrap(as_array(np.logical_and(a._data == 0, b._data >= 0)))
            # log(a) in the result's dtype: an int64 or float32 base of a float64 power would
            # otherwise take its log in float32
            la = _ops.unary(OP_LOG, a if a._data.dtype == r._data.dtype
                       else wrap(a._data.astype(r._data.dtype)))
            gb = mul(g, where_(mask, 0.0, mul(r, la)))  # product: as PyTorch
        return (ga, gb)

    cdef void release_variables(self):
        self.self_.release()
        self.exponent.release()
        self.result.release()


@cython.final
cdef class PowBackward2(Node):
    """s ** b: grad_b = grad * s**b * log(s); for s == 0, grad * (0 where b >= 0, else
    0**b * log(0) = -inf), as PyTorch (b >= 0 is read off the result: 0**b <= 1)."""
    cdef SavedVar result
    cdef object base

    cdef tuple apply(self, tuple grads):
        cdef TensorBase r = self.result.unpack(self)
        if self.base == 0:
            # a constant: 0 where b >= 0 (so its own derivative, under create_graph, is 0
            # there, not the inf * 0 a recorded product would send back)
            with np.errstate(invalid="ignore"):
                # product: as PyTorch
                d = np.where(r._data <= 1, 0, r._data * -math.inf).astype(r._data.dtype)
            return (mul(grads[0], wrap(as_array(d))),)
        return (mul(mul(grads[0], r), math.log(self.base) if self.base > 0 else math.nan),)

    cdef void release_variables(self):
        self.result.release()


_ops.add = add
_ops.sub = sub
_ops.mul = mul
_ops.div = div
_ops.pow_ = pow_
_ops.rsub = rsub
_ops.rdiv = rdiv
_ops.rpow = rpow
_ops.mul_any = mul_any
_ops.add_into = add_into

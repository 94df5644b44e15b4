# cython: boundscheck=False, wraparound=False
"""Elementwise ops: + - * / **, unary math, comparisons, where, clamp, maximum/minimum, in-place.

Each forward is glue: check once, promote dtypes as PyTorch does, allocate the output, run a
kernel (kernels.pyx) on contiguous float buffers or NumPy's ufunc otherwise, and record a node
only when grad mode is on and an input requires grad. Each backward node sits right under its
forward and is written with these same ops, so it is itself differentiable (create_graph); while
the engine runs without create_graph, grad mode is off and those ops record nothing.
Broadcast inputs get their gradient summed back by the engine (Note [Un-broadcasting in the engine]).

Note [Selecting, not masking, gradients]
A backward that passes the gradient on one branch and zero on the other must select,
where(taken, grad, 0), never multiply by a 0/1 mask: the gradient arriving at a branch that was
not taken can be inf or NaN (1 / clamp(x, min=0) at x < 0 sends -inf), and inf * 0 is NaN, so a
multiply leaks NaN into inputs that did not affect the result. PyTorch selects in these rules
(relu, clamp, maximum/minimum, max/min, masked_fill, where, copy slices) and returns zeros_like
for the gradients that are zero by definition (sign, x ** 0, overwritten values). select_grad,
share_grad and zeros_grad below are the one way to write such a rule here; the rules PyTorch
writes as grad * f'(x) (abs, amax/amin, norm, leaky_relu, dropout) keep the product, as its
results do, and say so with the comment `# product: as PyTorch` on or above the line; a source
check in tests/test_nan_masking.py fails on any other product with 0 or with a mask.
"""
cimport cython
cimport numpy as cnp
from libc.string cimport memcmp
import math

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport tensor_arg as _input
from fastgrad._core.tensor cimport (TensorBase, SavedVar, wrap, save, set_history, set_history1,
                                    set_history2, any_requires_grad2)
from fastgrad._core.tensor cimport check_inference_inplace, empty_like
from fastgrad._core cimport kernels as K

cnp.import_array()

cdef object _float32 = np.dtype(np.float32)
cdef object _int64 = np.dtype(np.int64)
cdef object _bool = np.dtype(np.bool_)
cdef dict _UFUNC = {OP_ADD: np.add, OP_SUB: np.subtract, OP_MUL: np.multiply,
                    OP_DIV: np.true_divide}
cdef dict _UNARY_UFUNC = {OP_NEG: np.negative, OP_ABS: np.abs, OP_EXP: np.exp, OP_LOG: np.log,
                          OP_SQRT: np.sqrt, OP_SIN: np.sin, OP_COS: np.cos, OP_TANH: np.tanh,
                          OP_RECIPROCAL: np.reciprocal}
cdef dict _OPNAME = {OP_ADD: "add", OP_SUB: "sub", OP_MUL: "mul", OP_DIV: "div"}
# Kernels on fewer elements keep the GIL: dropping and retaking it costs more than such a loop.
cdef enum:
    NOGIL_MIN = 4096

cdef dict _CMP_UFUNC = {CMP_EQ: np.equal, CMP_NE: np.not_equal, CMP_LT: np.less,
                        CMP_LE: np.less_equal, CMP_GT: np.greater, CMP_GE: np.greater_equal}


# --- helpers: scalars, promotion, shapes -------------------------------------------------------

cdef bint is_scalar(object x) noexcept:
    return isinstance(x, (float, int)) or isinstance(x, np.generic)


cdef inline object _pyscalar(object x):
    return x.item() if isinstance(x, np.generic) else x


cdef inline int _category(object dt):
    """bool < integer < floating, PyTorch's promotion categories."""
    cdef str k = dt.kind
    return 0 if k == "b" else (1 if k in "iu" else 2)


cdef object _promote_tt(cnp.ndarray a, cnp.ndarray b):
    """Result dtype of an op on two tensors (PyTorch's rules): a higher category (bool < int <
    float) wins outright; within a category the wider type wins, except that a 0-d tensor does
    not widen a dimensioned one."""
    cdef object da = a.dtype, db = b.dtype
    if da is db or da == db:
        return da
    cdef int ca = _category(da), cb = _category(db)
    if ca != cb:
        return da if ca > cb else db
    cdef bint a0 = a.ndim == 0, b0 = b.ndim == 0
    if a0 != b0:
        return db if a0 else da
    return np.promote_types(da, db)


cdef object promote_arrays(list arrays):
    """The result dtype of an op on several tensors of equal standing (cat, stack): the highest
    category wins outright (float32 with int64 is float32, not NumPy's float64), the widest
    type within it."""
    cdef int best = -1, c
    cdef object dt = None
    for a in arrays:
        best = max(best, _category((<cnp.ndarray>a).dtype))
    for a in arrays:
        c = _category((<cnp.ndarray>a).dtype)
        if c == best:
            dt = a.dtype if dt is None else np.promote_types(dt, a.dtype)
    return dt


cdef object _promote_ts(cnp.ndarray a, object s):
    """Result dtype of tensor (op) Python number: the number only lifts the category."""
    cdef object da = a.dtype
    cdef int cat = _category(da)
    if isinstance(s, bool) or isinstance(s, np.bool_):
        return da
    if isinstance(s, (int, np.integer)):
        return _int64 if cat == 0 else da
    return _float32 if cat < 2 else da


cdef inline bint _same_shape(cnp.ndarray x, cnp.ndarray y) noexcept:
    cdef int nd = x.ndim
    if nd != y.ndim:
        return False
    return memcmp(cnp.PyArray_DIMS(x), cnp.PyArray_DIMS(y), nd * sizeof(cnp.npy_intp)) == 0


cdef inline bint _fast_float(cnp.ndarray x) noexcept:
    """float32/float64, C-contiguous, aligned: the kernels' contract."""
    cdef int t = cnp.PyArray_TYPE(x)
    return (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64) and cnp.PyArray_IS_C_CONTIGUOUS(x) \
        and cnp.PyArray_ISALIGNED(x)


cdef object broadcast_shapes(tuple sa, tuple sb, str op):
    """The broadcast shape of sa and sb, or PyTorch's RuntimeError naming both shapes."""
    cdef Py_ssize_t na = len(sa), nb = len(sb), n = max(na, nb), i
    out = [0] * n
    for i in range(1, n + 1):
        da = sa[na - i] if i <= na else 1
        db = sb[nb - i] if i <= nb else 1
        if da == db or db == 1:
            out[n - i] = da
        elif da == 1:
            out[n - i] = db
        else:
            raise RuntimeError(
                f"The size of tensor a ({da}) must match the size of tensor b ({db}) at "
                f"non-singleton dimension {n - i}: {op} cannot broadcast shapes {list(sa)} and "
                f"{list(sb)}; dimensions must be equal or 1, aligned from the right")
    return tuple(out)


cdef inline cnp.ndarray _arr(object r):
    """ufuncs return NumPy scalars for 0-d inputs: always hand back an ndarray."""
    return r if type(r) is np.ndarray else np.asarray(r)


cdef inline cnp.ndarray _empty_like(cnp.ndarray x):
    return empty_like(x)


cdef inline object _meta(cnp.ndarray out, TensorBase t):
    """(shape, dtype) of an input whose gradient must be summed/cast back, else None."""
    if t is None or not t._requires_grad:
        return None
    if _same_shape(out, t._data) and out.dtype == t._data.dtype:
        return None
    return ((<object>t._data).shape, t._data.dtype)


cdef inline void _set_meta2(Node node, cnp.ndarray out, TensorBase a, TensorBase b):
    ma = _meta(out, a)
    mb = _meta(out, b)
    if ma is not None or mb is not None:
        node._in_meta = (ma, mb)


cdef inline cnp.ndarray _cast(cnp.ndarray x, object dt):
    return x if x.dtype == dt else x.astype(dt)


# --- binary forward ------------------------------------------------------------------------------

cdef cnp.ndarray _binary_tt(int op, cnp.ndarray a, cnp.ndarray b):
    """a (op) b for two arrays (op: add, sub, mul, div, pow). Floats run the contiguous kernel
    when shapes match, the strided broadcast kernel otherwise; other dtypes use NumPy."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.PyArray_TYPE(b) and _fast_float(a) and _fast_float(b) and _same_shape(a, b):
        return _contiguous_binary(op, a, b)
    dt = _promote_tt(a, b)
    if (op == OP_DIV or op == OP_POW) and dt.kind in "biu" and not (op == OP_POW and
                                                                   dt.kind in "iu"):
        dt = _float32
    shape = broadcast_shapes((<object>a).shape, (<object>b).shape, _OPNAME.get(op, "pow"))
    x = _cast(a, dt)
    y = _cast(b, dt)
    if dt.kind == "f" and dt.itemsize >= 4:
        if _same_shape(x, y) and _fast_float(x) and _fast_float(y):
            return _contiguous_binary(op, x, y)
        return _strided_binary(op, _aligned(x), _aligned(y), shape)
    if op == OP_POW:
        return _int_power(x, y)
    return _arr(_UFUNC[op](x, y))


cdef cnp.ndarray _int_power(object x, object y):
    """x ** y for integer operands as PyTorch computes it: a negative exponent gives 1 for a base
    of 1, +-1 for -1 and 0 for every other base (NumPy refuses negative integer powers)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or not (y < 0).any():
        return _arr(np.power(x, y))
    neg = y < 0
    r = np.power(x, np.where(neg, 0, y))
    small = np.where(x == 1, 1, np.where(x == -1, np.where(y % 2 == 0, 1, -1), 0))
    return _arr(np.where(neg, small, r).astype(r.dtype, copy=False))


cdef inline cnp.ndarray _aligned(cnp.ndarray x):
    return x if cnp.PyArray_ISALIGNED(x) else x.copy()


cdef cnp.ndarray _contiguous_binary(int op, cnp.ndarray a, cnp.ndarray b):
    cdef cnp.ndarray out = _empty_like(a)
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


cdef cnp.ndarray _binary_ts(int op, cnp.ndarray a, object s):
    """a (op) s for an array and a Python number (OP_RSUB/OP_RDIV: s (op) a)."""
    cdef cnp.ndarray out, x
    cdef Py_ssize_t n
    cdef int t
    cdef double c
    dt = _promote_ts(a, s)
    if (op == OP_DIV or op == OP_RDIV) and dt.kind in "biu":
        dt = _float32
    if op == OP_POW and dt.kind in "biu" and isinstance(s, float):
        dt = _float32
    x = _cast(a, dt)
    if dt.kind == "f" and dt.itemsize >= 4:
        if not _fast_float(x):
            x = x.copy()
        c = s
        out = _empty_like(x)
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
        return _arr(np.subtract(s, x))
    if op == OP_POW:
        return _arr(np.power(x, s))
    return _arr(_UFUNC[op](x, s))


cdef inline cnp.ndarray _scalar_kernel(int op, cnp.ndarray x, double c):
    """The scalar kernel on a contiguous float32/float64 array."""
    cdef cnp.ndarray out = _empty_like(x)
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


cdef object _binary(int op, TensorBase a, object b):
    """Forward of add/sub/mul/div with a tensor `a`; records `op`'s node when needed."""
    cdef TensorBase tb, out
    cdef Node node
    cdef type tyb = type(b)
    if (tyb is float or tyb is int) and _fast_float(a._data):
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
        _check_bool_sub(a, b)
    if isinstance(b, TensorBase):
        tb = <TensorBase>b
        out = wrap(_binary_tt(op, a._data, tb._data))
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
                    not _same_shape(a._data, tb._data):
                _set_meta2(node, out._data, a, tb)
            set_history2(out, node, a, tb)
        return out
    if not is_scalar(b):
        return NotImplemented
    b = _pyscalar(b)
    out = wrap(_binary_ts(op, a._data, b))
    if a._requires_grad and grad_enabled():
        node = _scalar_node(op, a, b)
        if out._data.dtype != a._data.dtype:
            node._in_meta = (((<object>a._data).shape, a._data.dtype), None)
        if op == OP_RSUB:
            set_history1(out, node, a)
        else:
            set_history(out, node, (a, None))     # PyTorch lists the number as a (None, 0) edge
    return out


cdef inline int _check_bool_sub(TensorBase a, object b) except -1:
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
    return _binary(OP_ADD, <TensorBase>a, b)


cdef bint add_into(cnp.ndarray acc, cnp.ndarray g) noexcept:
    """acc += g with the contiguous kernel (out aliases its first input, elementwise) when both
    are the same float type and shape and acc is writeable; False, with nothing done, otherwise.
    For buffers that only the caller holds (the engine's gradient sums, a leaf's .grad)."""
    cdef int t = cnp.PyArray_TYPE(acc)
    if t != cnp.PyArray_TYPE(g) or not _fast_float(acc) or not _fast_float(g) or \
            not _same_shape(acc, g) or not cnp.PyArray_ISWRITEABLE(acc):
        return False
    _binary_into(OP_ADD, acc, g, acc)
    return True


cdef object sub(object a, object b):
    return _binary(OP_SUB, <TensorBase>a, b)


cdef object rsub(object a, object b):
    if not is_scalar(b):
        return NotImplemented
    return _binary(OP_RSUB, <TensorBase>a, b)


cdef object mul(object a, object b):
    return _binary(OP_MUL, <TensorBase>a, b)


cdef object div(object a, object b):
    return _binary(OP_DIV, <TensorBase>a, b)


cdef object rdiv(object a, object b):
    # s / a is recorded as reciprocal(a) * s, as PyTorch does (grad_fn MulBackward0)
    if not is_scalar(b):
        return NotImplemented
    return mul(unary(OP_RECIPROCAL, <TensorBase>a), b)


cdef object mul_any(object a, object b):
    if isinstance(a, TensorBase):
        return mul(a, b)
    if isinstance(b, TensorBase):
        return mul(b, a)
    return a * b


# --- add / sub backward --------------------------------------------------------------------------

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
        return (g, unary(OP_NEG, g) if self._next_fns[1] is not None else None)


@cython.final
cdef class RsubBackward1(Node):
    """s - a: grad_a = -grad."""

    cdef tuple apply(self, tuple grads):
        return (unary(OP_NEG, grads[0]),)


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
    if t != cnp.PyArray_TYPE(ad) or t != cnp.PyArray_TYPE(bd) or not _fast_float(gd) or \
            not _fast_float(ad) or not _fast_float(bd) or not _same_shape(gd, ad) or \
            not _same_shape(gd, bd):
        return None
    ga = _empty_like(gd)
    gb = gd if steal else _empty_like(gd)
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
            gb = unary(OP_NEG, mul(g, div(div(self.self_.unpack(self), b), b)))
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
        out = wrap(_binary_tt(OP_POW, ta._data, tb._data))
        if any_requires_grad2(ta, tb):
            n1 = PowBackward1.__new__(PowBackward1)
            n1.self_ = save(ta, False)
            n1.exponent = save(tb, False)
            _set_meta2(n1, out._data, ta, tb)
            set_history(out, n1, (ta, tb))
            n1.result = save(out, True)
        return out
    if not is_scalar(b):
        return NotImplemented
    b = _pyscalar(b)
    if ta._data.dtype.kind in "iub" and (isinstance(b, int) and b < 0):
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    out = wrap(_binary_ts(OP_POW, ta._data, b))
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
    b = _pyscalar(b)
    dt = _promote_ts(ta._data, b)
    if dt.kind in "iu":
        out = wrap(_int_power(b, ta._data))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):     # 0 ** -1 is inf, as in PyTorch
            out = wrap(_arr(np.power(b, _cast(ta._data, dt))))
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
            ga = where_(wrap(_arr(b._data == 0)), 0.0, mul(mul(g, b), pow_(a, sub(b, 1))))
        if self._next_fns[1] is not None:
            # grad * (0 where a == 0 <= b, else a**b log a): the product with grad stays outside
            # the select, as in PyTorch
            r = self.result.unpack(self)
            mask = wrap(_arr(np.logical_and(a._data == 0, b._data >= 0)))
            # log(a) in the result's dtype: an int64 or float32 base of a float64 power would
            # otherwise take its log in float32
            la = unary(OP_LOG, a if a._data.dtype == r._data.dtype
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
            return (mul(grads[0], wrap(_arr(d))),)
        return (mul(mul(grads[0], r), math.log(self.base) if self.base > 0 else math.nan),)

    cdef void release_variables(self):
        self.result.release()


# --- unary ---------------------------------------------------------------------------------------

cdef object unary(int op, TensorBase a):
    """f(a) for the unary ops; integer inputs of float-valued ops are promoted to float32."""
    cdef cnp.ndarray x = a._data, out
    cdef bint f32
    cdef Py_ssize_t n
    cdef TensorBase res
    cdef object half = None
    if cnp.PyArray_ISINTEGER(x) or cnp.PyArray_ISBOOL(x):
        if op == OP_RELU:
            return wrap(_arr(np.maximum(x, 0)) if x.dtype.kind != "b" else x.copy())
        if op == OP_NEG or op == OP_ABS:
            if x.dtype.kind == "b" and op == OP_NEG:
                raise RuntimeError("Negation, the `-` operator, on a bool tensor is not "
                                   "supported. If you are trying to invert a mask, use the `~` "
                                   "or `logical_not()` operator instead.")
            return wrap(_arr(_UNARY_UFUNC[op](x)))
        x = x.astype(_float32, order="C")     # the kernel walks memory in C order
    elif not _fast_float(x):
        if x.dtype.itemsize < 4:                 # float16: computed in float32, stored as float16
            half = x.dtype
        x = x.astype(np.float32 if half is not None else x.dtype, order="C")
    out = _empty_like(x)
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
        if grad_enabled() or t != cnp.PyArray_TYPE(yd) or not _fast_float(yd) \
                or not _same_shape(gd, yd):
            return None
        if self._steal and _fast_float(gd):       # Note [Stealing the incoming gradient]
            out = gd
        else:
            out = _empty_like(yd)
        if not _fast_float(gd):
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


# --- sign, clamp, maximum / minimum, where -------------------------------------------------------

def sign(input):
    """sign(a): (a > 0) - (a < 0), so sign(NaN) and sign(-0.0) are 0 as in PyTorch; its
    gradient is zero everywhere."""
    cdef TensorBase a = input, out
    x = a._data
    if x.dtype.kind == "b":
        out = wrap(x.copy())
    else:
        out = wrap(_arr(np.subtract(x > 0, x < 0, dtype=x.dtype)))
    cdef Node node
    if a._requires_grad and grad_enabled():
        node = SignBackward0.__new__(SignBackward0)
        set_history1(out, node, a)
    return out


@cython.final
cdef class SignBackward0(Node):
    """grad_a = 0"""
    cdef tuple apply(self, tuple grads):
        return (zeros_grad(grads[0]),)


def clamp(input, min=None, max=None):
    """Clamp to [min, max] (Python numbers or tensors; either may be None)."""
    cdef TensorBase a = input, out
    cdef ClampBackward1 node
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, TensorBase) or isinstance(max, TensorBase):
        return _clamp_tensor(a, min, max)
    x = a._data
    lo = _pyscalar(min) if min is not None else None
    hi = _pyscalar(max) if max is not None else None
    dt = x.dtype
    for v in (lo, hi):
        if v is not None:       # each bound promotes like a Python number: int64 with 0.25 is float32
            dt = _promote_ts(x if dt == x.dtype else np.empty(0, dtype=dt), v)
    # NumPy's maximum/minimum return their second operand at ties, so the bound goes first: -0.0
    # clamped at 0 stays -0.0 as in PyTorch; NaN (input or bound) propagates
    r = _cast(x, dt)
    if lo is not None:
        r = np.maximum(lo, r)
    if hi is not None:
        r = np.minimum(hi, r)
    out = wrap(_arr(r).astype(dt, copy=False))
    if a._requires_grad and grad_enabled():
        node = ClampBackward1.__new__(ClampBackward1)
        node.self_ = save(a, False)
        node.lo = lo
        node.hi = hi
        set_history1(out, node, a)
    return out


cdef object _in_bounds(object x, object lo, object hi):
    """lo <= x <= hi as a bool array (a None bound is not checked): where clamp passed x
    through. NaN fails every comparison, so NaN inputs and NaN bounds get no gradient."""
    if lo is not None and hi is not None:
        return np.logical_and(x >= lo, x <= hi)
    return x >= lo if lo is not None else x <= hi


cdef object _clamp_tensor(TensorBase a, object min, object max):
    """clamp with tensor bounds (a number bound is used as such), recorded as ClampBackward0."""
    cdef TensorBase tl = min if isinstance(min, TensorBase) else None
    cdef TensorBase th = max if isinstance(max, TensorBase) else None
    cdef TensorBase out
    cdef ClampBackward0 node
    x = a._data
    dt = x.dtype
    shape = (<object>x).shape
    bounds = []
    for b, t in ((min, tl), (max, th)):
        if b is None:
            bounds.append(None)
        elif t is not None:
            dt = _promote_bound(x, dt, t._data)
            shape = broadcast_shapes(shape, (<object>t._data).shape, "clamp")
            bounds.append(t._data)
        else:
            dt = np.promote_types(dt, _promote_ts(x, _pyscalar(b)))
            bounds.append(_pyscalar(b))
    lo = _cast(bounds[0], dt) if tl is not None else bounds[0]
    hi = _cast(bounds[1], dt) if th is not None else bounds[1]
    # the bound goes first: NumPy returns the second operand at ties (-0.0 stays -0.0)
    r = _cast(x, dt)
    if lo is not None:
        r = np.maximum(lo, r)
    if hi is not None:
        r = np.minimum(hi, r)
    out = wrap(np.ascontiguousarray(np.broadcast_to(_arr(r).astype(dt, copy=False), shape)))
    if grad_enabled() and (a._requires_grad or (tl is not None and tl._requires_grad) or
                           (th is not None and th._requires_grad)):
        node = ClampBackward0.__new__(ClampBackward0)
        node.keep = _in_bounds(x, lo, hi)
        if tl is not None and tl._requires_grad:
            node.keep_lo = x < lo if hi is None else np.logical_and(x < lo, lo < hi)
        if th is not None and th._requires_grad:
            node.keep_hi = x > hi if lo is None else np.logical_or(x > hi, hi < lo)
        metas = (_meta(out._data, a), _meta(out._data, tl), _meta(out._data, th))
        if metas != (None, None, None):
            node._in_meta = metas
        set_history(out, node, (a, tl, th))
    return out


cdef object _promote_bound(cnp.ndarray x, object dt, cnp.ndarray b):
    """The result dtype of clamp with a tensor bound: PyTorch's tensor-tensor promotion."""
    cdef cnp.ndarray probe = x if x.dtype == dt else x.astype(dt)
    return _promote_tt(probe, b)


@cython.final
cdef class ClampBackward0(Node):
    """clamp with tensor bounds: grad_a = grad where min <= a <= max; grad_min = grad where
    a < min (and min < max); grad_max = grad where a > max (or max < min); else 0."""
    cdef object keep, keep_lo, keep_hi

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (select_grad(self.keep, g) if self._next_fns[0] is not None else None,
                select_grad(self.keep_lo, g) if self.keep_lo is not None else None,
                select_grad(self.keep_hi, g) if self.keep_hi is not None else None)

    cdef void release_variables(self):
        self.keep = self.keep_lo = self.keep_hi = None


@cython.final
cdef class ClampBackward1(Node):
    """grad_a = grad where min <= a <= max, else 0"""
    cdef SavedVar self_
    cdef object lo, hi

    cdef tuple apply(self, tuple grads):
        cdef TensorBase a = self.self_.unpack(self)
        x = a._data
        return (select_grad(_in_bounds(x, self.lo, self.hi), grads[0]),)

    cdef void release_variables(self):
        self.self_.release()


def maximum(input, other):
    """Elementwise max of two tensors (NaN propagates); at ties each input gets half the
    gradient, and where either is NaN both get all of it (PyTorch's rule)."""
    return _extremum(input, other, True)


def minimum(input, other):
    """Elementwise min of two tensors (NaN propagates); ties and NaN as maximum."""
    return _extremum(input, other, False)


cdef object _extremum(object input, object other, bint is_max):
    cdef TensorBase a = input, b = other, out
    cdef ExtremumBackward node
    name = "maximum" if is_max else "minimum"
    if not isinstance(other, TensorBase):
        raise TypeError(f"{name}(): argument 'other' must be Tensor, not {type(other).__name__}")
    dt = _promote_tt(a._data, b._data)
    if not _same_shape(a._data, b._data):
        broadcast_shapes((<object>a._data).shape, (<object>b._data).shape, name)
    f = np.maximum if is_max else np.minimum
    # NumPy returns its second operand at ties, PyTorch `input`: maximum(-0., 0.) is -0.
    out = wrap(_arr(f(_cast(b._data, dt), _cast(a._data, dt))))
    if any_requires_grad2(a, b):
        node = (MaximumBackward0.__new__(MaximumBackward0) if is_max
                else MinimumBackward0.__new__(MinimumBackward0))
        x, y = a._data, b._data
        # share 1 for the winner, 1/2 each at a tie, 0 for the loser; NaN compares false both
        # ways, so a NaN pair gives both inputs the whole gradient, as PyTorch does
        tie = _arr(np.where(x == y, 0.5, 1.0)).astype(dt)
        node.share_a = _arr(np.where((x < y) if is_max else (x > y), 0, tie)).astype(dt)
        node.share_b = _arr(np.where((x > y) if is_max else (x < y), 0, tie)).astype(dt)
        _set_meta2(node, out._data, a, b)
        set_history(out, node, (a, b))
    return out


cdef class ExtremumBackward(Node):
    """grad_a = grad * share_a where share_a != 0, else 0 (share_grad); the same for b."""
    cdef object share_a, share_b

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        ga = share_grad(self.share_a, g) if self._next_fns[0] is not None else None
        gb = share_grad(self.share_b, g) if self._next_fns[1] is not None else None
        return (ga, gb)

    cdef void release_variables(self):
        self.share_a = self.share_b = None


@cython.final
cdef class MaximumBackward0(ExtremumBackward):
    pass


@cython.final
cdef class MinimumBackward0(ExtremumBackward):
    pass


cdef object where_(object cond, object a, object b):
    """where(cond, a, b): a and b may be tensors or Python numbers."""
    cdef TensorBase c = cond, ta = None, tb = None, out
    cdef WhereBackward0 node
    if c._data.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {c.dtype}; compare first, e.g. where(x > 0, ...)")
    if isinstance(a, TensorBase):
        ta = a
    if isinstance(b, TensorBase):
        tb = b
    for v in (a, b):
        if not isinstance(v, TensorBase) and not is_scalar(v):
            raise TypeError(f"where(): expected a Tensor or a number for input and other, got "
                            f"{type(v).__name__}; wrap arrays with fastgrad.as_tensor")
    if ta is not None and tb is not None:
        dt = _promote_tt(ta._data, tb._data)
    elif ta is not None:
        dt = _promote_ts(ta._data, _pyscalar(b))
    elif tb is not None:
        dt = _promote_ts(tb._data, _pyscalar(a))
    else:
        dt = np.result_type(a, b)
        dt = _float32 if dt.kind == "f" else dt
    xa = _cast(ta._data, dt) if ta is not None else _pyscalar(a)
    xb = _cast(tb._data, dt) if tb is not None else _pyscalar(b)
    shapes = [(<object>c._data).shape] + [(<object>t._data).shape for t in (ta, tb) if t is not None]
    shape = shapes[0]
    for s in shapes[1:]:
        shape = broadcast_shapes(shape, s, "where")
    out = wrap(_arr(np.where(c._data, xa, xb)).astype(dt, copy=False))
    if grad_enabled() and ((ta is not None and ta._requires_grad) or
                           (tb is not None and tb._requires_grad)):
        node = WhereBackward0.__new__(WhereBackward0)
        node.cond = c._data
        _set_meta2(node, out._data, ta, tb)
        set_history(out, node, (ta, tb))
    return out


def where(condition, input, other):
    """where(condition, input, other): elements of input where condition, else other."""
    return where_(condition, input, other)


@cython.final
cdef class WhereBackward0(Node):
    """grad_a = where(cond, grad, 0), grad_b = where(cond, 0, grad)"""
    cdef object cond               # bool ndarray, broadcastable to the output

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        c = wrap(np.broadcast_to(self.cond, (<object>(<TensorBase>g)._data).shape))
        ga = where_(c, g, 0.0) if self._next_fns[0] is not None else None
        gb = where_(c, 0.0, g) if self._next_fns[1] is not None else None
        return (ga, gb)


# --- gradient selection (Note [Selecting, not masking, gradients]) ------------------------------

cdef object select_grad(object keep, object g):
    """g where `keep` (a bool ndarray broadcastable with g), 0 elsewhere, whatever g holds
    there; recorded (a where), so it is differentiable under create_graph."""
    return where_(wrap(_arr(keep)), g, 0.0)


cdef object share_grad(object share, object g):
    """g * share where share != 0, 0 elsewhere (share: a float ndarray of g's dtype holding 1
    for a selected element, 1/k for each of k tied ones, 0 for the others)."""
    cdef cnp.ndarray s = _arr(share)
    cdef cnp.ndarray keep = _arr(s != 0)
    if np.all(s[keep] == 1):
        return select_grad(keep, g)
    return where_(wrap(keep), mul(g, wrap(s)), 0.0)


cdef object zeros_grad(object g):
    """A zero gradient shaped like g (PyTorch's zeros_like(grad)), not g * 0, which is NaN
    where g is inf or NaN."""
    cdef TensorBase t = g
    return wrap(np.zeros((<object>t._data).shape, dtype=t._data.dtype))


# --- comparisons ---------------------------------------------------------------------------------

cdef object compare(int op, object a, object b):
    """a (cmp) b as a bool tensor; records nothing."""
    cdef TensorBase ta = a
    if isinstance(b, TensorBase):
        y = (<TensorBase>b)._data
        if not _same_shape(ta._data, y):
            broadcast_shapes((<object>ta._data).shape, (<object>y).shape, "comparison")
    elif is_scalar(b):
        y = _pyscalar(b)
    else:
        return NotImplemented
    return wrap(_arr(_CMP_UFUNC[op](ta._data, y)))


# --- in-place ------------------------------------------------------------------------------------

cdef void check_inplace(TensorBase a) except *:
    check_inference_inplace(a)
    if not cnp.PyArray_ISWRITEABLE(a._data):
        _refuse_readonly(a._data)
    if not grad_enabled():
        return
    if a._grad_fn is None and a._requires_grad:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation. Wrap the update in `with torch.no_grad():`, or operate "
                           "on a copy (x = x.clone()).")
    if a._base is not None and a._base._grad_fn is None and a._base._requires_grad:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation. Wrap the update in `with torch.no_grad():`, or "
                           "clone the leaf first.")


cdef void _refuse_readonly(cnp.ndarray x) except *:
    """An in-place write into memory NumPy marks read-only: an expanded tensor (several elements
    share one memory location) or a tensor sharing a read-only NumPy array."""
    cdef int i
    for i in range(x.ndim):
        if x.strides[i] == 0 and x.shape[i] > 1:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.")
    raise RuntimeError("the tensor's memory is read-only (it shares a read-only NumPy array, "
                       "e.g. from from_numpy or as_tensor); clone() the tensor before writing "
                       "to it in place")


cdef TensorBase _history_alias(TensorBase a):
    """A copy of `a`'s values that carries `a`'s history: the input of a recorded in-place op
    (the op may save it, and `a` itself is about to be overwritten)."""
    cdef TensorBase alias = wrap(a._data.copy())
    alias._grad_fn = a._grad_fn
    alias._requires_grad = a._requires_grad
    alias._output_nr = a._output_nr
    return alias


cdef void _rebase(TensorBase a, TensorBase res, str op) except *:
    """Write `res` into `a` in place and make `a` the output of `res`'s node."""
    cdef cnp.ndarray x = a._data, r = res._data
    if not _same_shape(x, r):
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


# In-place writes through a view rebase the view's base (Note [In-place writes through views] in
# ops_index.pyx, which registers the hook: this module cannot cimport it without a cycle).
cdef object _view_hook = None


def _set_view_hook(fn):
    global _view_hook
    _view_hook = fn


cdef inline void _after_inplace(TensorBase a) except *:
    if a._base is not None and a._grad_fn is not None and _view_hook is not None:
        _view_hook(a)


cdef object inplace(int op, TensorBase a, object b):
    """a (op)= b: add_, sub_, mul_, div_ and the augmented assignments."""
    cdef str name = _OPNAME[op] + "_"
    check_inplace(a)
    if not is_scalar(b) and not isinstance(b, TensorBase):
        return NotImplemented
    if op == OP_SUB:
        _check_bool_sub(a, b)
    if grad_enabled() and (a._requires_grad or
                           (isinstance(b, TensorBase) and (<TensorBase>b)._requires_grad)):
        res = _binary(op, _history_alias(a), b)
        _rebase(a, res, name)
        return a
    res = wrap(_binary_tt(op, a._data, (<TensorBase>b)._data) if isinstance(b, TensorBase)
               else _binary_ts(op, a._data, _pyscalar(b)))
    _rebase(a, res, name)
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
            set_history1(a, node, _history_alias(a))
        else:
            set_history2(a, node, _history_alias(a), v)
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
        set_history(a, node, (_history_alias(a), s))
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


# --- copies and casts ----------------------------------------------------------------------------

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
    cdef TensorBase a = input, out
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
                return _arr(np.trunc(np.true_divide(x, y)))
            q = _arr(np.floor_divide(x, y))
            return _arr(q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(dt))
        if op == IOP_REMAINDER:
            if kind != "f":
                return _arr(np.remainder(x, y))
            m = _arr(np.fmod(x, y))
            fix = (m != 0) & ((y < 0) != (m < 0))
            return _arr(np.where(fix, m + y, m).astype(dt, copy=False))
        return _arr(_IOP_UFUNC[op](x, y))


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
        dt = _promote_tt(ta._data, tb._data)
        if not _same_shape(ta._data, tb._data):
            broadcast_shapes((<object>ta._data).shape, (<object>tb._data).shape, _IOP_NAME[op])
    elif ta is not None:
        dt = _promote_ts(ta._data, _pyscalar(b))
    else:
        dt = _promote_ts(tb._data, _pyscalar(a))
    if logical:
        x = ta._data if ta is not None else np.asarray(_pyscalar(a))
        y = tb._data if tb is not None else np.asarray(_pyscalar(b))
    else:
        x = _cast(ta._data, dt) if ta is not None else np.asarray(_pyscalar(a)).astype(dt)
        y = _cast(tb._data, dt) if tb is not None else np.asarray(_pyscalar(b)).astype(dt)
    out = wrap(_iop_values(op, x, y, dt if not logical else _bool))
    if logical or dt.kind != "f" or not grad_enabled():
        return out
    if not ((ta is not None and ta._requires_grad) or (tb is not None and tb._requires_grad)):
        return out
    if op == IOP_DIV_FLOOR or op == IOP_DIV_TRUNC:
        node = DivBackward2.__new__(DivBackward2)
        _set_meta2(node, out._data, ta, tb)
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
    _set_meta2(node, out._data, ta, tb)
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
            dt = _promote_tt(x, y)
            with np.errstate(all="ignore"):
                q = self._quotient(_cast(x, dt), _cast(y, dt))
            gb = mul(g, wrap(_arr(np.negative(q)).astype(dt, copy=False)))
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
    return wrap(_arr(np.invert(a._data)))


def logical_not(input):
    cdef TensorBase a = input
    return wrap(_arr(np.logical_not(a._data)))


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
        res = fn(_history_alias(a), b)
    else:
        res = fn(a, b)
    if res is NotImplemented:
        return NotImplemented
    if isinstance((<TensorBase>res)._grad_fn, _NotImplementedBackward):
        (<_NotImplementedBackward>(<TensorBase>res)._grad_fn).op = name
    _rebase(a, res, name)
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

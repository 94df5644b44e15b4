# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Matrix products: matmul/@ (1-D, 2-D, batched with broadcast batch dims), mm, bmm, mv, dot,
outer.

Products run on NumPy's BLAS (np.matmul); backward passes transposed operands as transposed
views (swapaxes), which np.matmul hands to BLAS with a transpose flag instead of copying.
During a plain backward (grad mode off) the gradients are computed on the arrays directly; under
create_graph they are written with recorded ops (matmul, transposes, sum_to) so they are
differentiable again. addmm and linear live in ops_linear.pyx, einsum in ops_einsum.pyx.
"""
cimport cython
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_reduce cimport sum_to
from fastgrad._core.ops_view cimport (transpose_c, unsqueeze_c, squeeze_to, ReshapeBackward,
                                     UnsafeViewBackward0)
from fastgrad._core.matmul_kernels cimport rank1_kernel
from fastgrad._core.ops_out import out_check, write_out

cnp.import_array()


cdef str _mat(tuple s):
    return "x".join(str(d) for d in s)


cdef object _mT(TensorBase a):
    return transpose_c(a, a._data.ndim - 2, a._data.ndim - 1)


# --- matmul --------------------------------------------------------------------------------------

cdef void _check_dtypes(TensorBase a, TensorBase b, str op) except *:
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"{op}: expected m1 and m2 to have the same dtype, but got: "
                           f"{a._data.dtype} != {b._data.dtype}; convert one first, "
                           f"e.g. b.to(a.dtype)")


cdef void _check_matmul(TensorBase a, TensorBase b) except *:
    sa, sb = _shape(a), _shape(b)
    na, nb = len(sa), len(sb)
    if na == 0 or nb == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{na}D and {nb}D")
    _check_dtypes(a, b, "matmul")
    k_b = sb[0] if nb == 1 else sb[-2]
    if sa[-1] == k_b:
        if na > 2 or nb > 2:
            _batch_shape(sa[:-2], sb[:-2])
        return
    if na == 1 and nb == 1:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src "
                           f"[{sb[0]}] to have the same number of elements, but got {sa[0]} "
                           f"and {sb[0]} elements respectively")
    if na == 2 and nb == 1:
        raise RuntimeError(f"size mismatch, got input ({sa[0]}), mat ({_mat(sa)}), vec "
                           f"({sb[0]})")
    m1 = (sa[-2] if na > 1 else 1, sa[-1])
    m2 = (sb[-2], sb[-1]) if nb > 1 else (sb[0], 1)
    raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mat(m1)} and {_mat(m2)})"
                       f"; matmul of shapes {list(sa)} and {list(sb)} needs the last dim of the "
                       f"first to equal the second-to-last dim of the second")


cdef tuple _batch_shape(tuple sa, tuple sb):
    try:
        return np.broadcast_shapes(sa, sb)
    except ValueError:
        n = max(len(sa), len(sb))
        pa = (1,) * (n - len(sa)) + sa
        pb = (1,) * (n - len(sb)) + sb
        for i in range(n):
            if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1:
                raise RuntimeError(f"The size of tensor a ({pa[i]}) must match the size of "
                                   f"tensor b ({pb[i]}) at non-singleton dimension {i}: matmul "
                                   f"cannot broadcast batch dims {list(sa)} and {list(sb)}")
        raise


def matmul(input, other, *, out=None):
    """input @ other with PyTorch's rules for 1-D, 2-D and batched (broadcast) operands."""
    cdef TensorBase a = input, b = other
    if out is not None:
        out_check("matmul", out, a, b)
        return write_out(out, matmul(a, b), 0)
    _check_matmul(a, b)
    na, nb = a._data.ndim, b._data.ndim
    if na == 1 and nb == 1:
        cls = DotBackward0
    elif na == 2 and nb == 1:
        cls = MvBackward0
    elif na == 2 and nb == 2:
        cls = MmBackward0
    elif na == 1 and nb == 2:
        cls = SqueezeBackward4
    else:
        cls = UnsafeViewBackward0
    return _matmul(a, b, cls)


cdef object _matmul(TensorBase a, TensorBase b, type cls):
    cdef TensorBase out = wrap(np.asarray(np.matmul(a._data, b._data)))
    cdef MatmulBackward node
    cdef ReshapeBackward named
    if grad_enabled() and (a._requires_grad or b._requires_grad):
        node = MatmulBackward.__new__(MatmulBackward) if cls is UnsafeViewBackward0 else \
            cls.__new__(cls)
        node.a_shape = _shape(a)
        node.b_shape = _shape(b)
        if b._requires_grad:
            node.self_ = save(a, False)
        if a._requires_grad:
            node.other = save(b, False)
        if cls is UnsafeViewBackward0:      # Note [Nodes named for a view] in ops_view.pyx
            named = UnsafeViewBackward0.__new__(UnsafeViewBackward0)
            named.inner = node
            set_history(out, named, (a, b))
        else:
            set_history(out, node, (a, b))
    return out


def _rmatmul(self, other):
    return matmul(other, self)


cdef class MatmulBackward(Node):
    """C = A @ B: grad_A = G @ B^T, grad_B = A^T @ G. A 1-D A is a row (1, k), a 1-D B a column
    (k, 1); G gets those dims back first. Batch dims are summed back to each input's shape."""
    cdef SavedVar self_, other
    cdef tuple a_shape, b_shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], a = None, b = None
        cdef bint a1 = len(self.a_shape) == 1, b1 = len(self.b_shape) == 1
        if self.self_ is not None:
            a = self.self_.unpack(self)
        if self.other is not None:
            b = self.other.unpack(self)
        if not grad_enabled():
            return _matmul_bwd_np(g._data, None if a is None else a._data,
                                  None if b is None else b._data, self.a_shape, self.b_shape)
        ga = gb = None
        cdef TensorBase g2 = g if not b1 else <TensorBase>unsqueeze_c(g, g._data.ndim)
        if a1:
            g2 = <TensorBase>unsqueeze_c(g2, g2._data.ndim - 1)
        if b is not None:
            ga = matmul(g2, _mT(b if not b1 else unsqueeze_c(b, 1)))
            if a1:
                ga = squeeze_to(ga, _shape(ga)[:-2] + _shape(ga)[-1:], 1)
            ga = sum_to(ga, self.a_shape)
        if a is not None:
            gb = matmul(_mT(a if not a1 else unsqueeze_c(a, 0)), g2)
            if b1:
                gb = squeeze_to(gb, _shape(gb)[:-1], 1)
            gb = sum_to(gb, self.b_shape)
        return (ga, gb)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
        if self.other is not None:
            self.other.release()


cdef tuple _matmul_bwd_np(cnp.ndarray g, object x, object y, tuple a_shape, tuple b_shape):
    """The same gradients on the arrays, for a plain backward (grad mode off)."""
    cdef bint a1 = len(a_shape) == 1, b1 = len(b_shape) == 1
    ga = gb = None
    if len(a_shape) == 2 and len(b_shape) == 2 and g.size and \
            (cnp.PyArray_STRIDE(g, 0) == 0 or cnp.PyArray_STRIDE(g, 1) == 0):
        return _mm_bwd_broadcast(g, x, y)
    g = _blasable(g)
    g2 = g if not b1 else g[..., None]
    g2 = g2 if not a1 else np.expand_dims(g2, -2)
    if y is not None:
        r = np.matmul(g2, np.swapaxes(y if not b1 else y[:, None], -1, -2))
        if a1:
            r = r[..., 0, :]
        ga = wrap(_np_sum_to(r, a_shape))
    if x is not None:
        r = np.matmul(np.swapaxes(x if not a1 else x[None, :], -1, -2), g2)
        if b1:
            r = r[..., 0]
        gb = wrap(_np_sum_to(r, b_shape))
    return (ga, gb)


cdef tuple _mm_bwd_broadcast(cnp.ndarray g, object x, object y):
    """2-D C = A @ B whose gradient G repeats one row (stride 0 along dim 0: G = 1 v^T) or one
    column (stride 0 along dim 1: G = u 1^T), e.g. the expanded gradient of C.sum() or
    C.sum(0). Exactly, G @ B^T = 1 (B v)^T or u (B 1)^T and A^T @ G = (A^T 1) v^T or
    (A^T u) 1^T: matrix-vector products and an outer product or a row/column fill, O(n^2)
    instead of an O(n^3) GEMM on a materialized G. A broadcast scalar c is both (v = u = c 1).
    float32/float64 run in one C pass (_rank1_bwd); other dtypes through NumPy."""
    cdef bint rows = cnp.PyArray_STRIDE(g, 0) == 0, cols = cnp.PyArray_STRIDE(g, 1) == 0
    cdef Py_ssize_t m = g.shape[0], n = g.shape[1]
    cdef cnp.ndarray v = None, u = None
    cdef int tn = cnp.PyArray_TYPE(g)
    if (tn == cnp.NPY_FLOAT32 or tn == cnp.NPY_FLOAT64) and _kernel_ok(g, tn, x) and \
            _kernel_ok(g, tn, y):
        return _rank1_bwd(g, x, y, tn)
    ga = gb = None
    if rows or y is not None:
        v = np.ascontiguousarray(g[0]) if rows else np.ones(n, dtype=g.dtype)
    if cols or x is not None:
        u = np.ascontiguousarray(g[:, 0]) if cols else np.ones(m, dtype=g.dtype)
    if y is not None:
        ga = _fill(np.matmul(y, v), m, True) if rows else _outer(u, np.matmul(y, v))
    if x is not None:
        gb = _fill(np.matmul(u, x), n, False) if cols else _outer(np.matmul(u, x), v)
    return (ga, gb)


cdef inline bint _kernel_ok(cnp.ndarray g, int tn, object x):
    """x (None, or an operand array) can be read by _rank1_bwd: g's dtype, aligned."""
    if x is None:
        return True
    cdef cnp.ndarray a = <cnp.ndarray>x
    return cnp.PyArray_TYPE(a) == tn and cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISALIGNED(g)


cdef tuple _rank1_bwd(cnp.ndarray g, object x, object y, int tn):
    """_mm_bwd_broadcast for float32/float64: G = u v^T with u = g[:, 0], v = 1 when G repeats
    one column (a scalar is that with u's stride 0), else u = 1, v = g[0]; then
    grad_A = u (B v)^T and grad_B = (A^T u) v^T, each written once into a fresh C array."""
    cdef Py_ssize_t m = g.shape[0], n = g.shape[1], isz = cnp.PyArray_ITEMSIZE(g)
    cdef Py_ssize_t k = (<cnp.ndarray>x).shape[1] if x is not None else (<cnp.ndarray>y).shape[0]
    cdef Py_ssize_t us, vs, a0 = 0, a1 = 0, b0 = 0, b1 = 0
    cdef char* up
    cdef char* vp
    cdef double one_d = 1.0
    cdef float one_f = 1.0
    cdef cnp.ndarray ga = None, gb = None, xa, ya
    cdef cnp.npy_intp dims[2]
    cdef char* w = NULL
    if cnp.PyArray_STRIDE(g, 1) == 0:                       # G = u 1^T
        up, us = <char*>cnp.PyArray_DATA(g), cnp.PyArray_STRIDE(g, 0) // isz
        vp, vs = (<char*>&one_f if tn == cnp.NPY_FLOAT32 else <char*>&one_d), 0
    else:                                                   # G = 1 v^T
        up, us = (<char*>&one_f if tn == cnp.NPY_FLOAT32 else <char*>&one_d), 0
        vp, vs = <char*>cnp.PyArray_DATA(g), cnp.PyArray_STRIDE(g, 1) // isz
    if y is not None:
        ya = <cnp.ndarray>y
        b0, b1 = cnp.PyArray_STRIDE(ya, 0) // isz, cnp.PyArray_STRIDE(ya, 1) // isz
        dims[0], dims[1] = m, k
        ga = cnp.PyArray_EMPTY(2, dims, tn, 0)
    if x is not None:
        xa = <cnp.ndarray>x
        a0, a1 = cnp.PyArray_STRIDE(xa, 0) // isz, cnp.PyArray_STRIDE(xa, 1) // isz
        dims[0], dims[1] = k, n
        gb = cnp.PyArray_EMPTY(2, dims, tn, 0)
    w = <char*>PyMem_Malloc(k * isz + 8)
    if w == NULL:
        raise MemoryError()
    if tn == cnp.NPY_FLOAT32:
        rank1_kernel(<float*>(NULL if x is None else cnp.PyArray_DATA(xa)), a0, a1,
                      <float*>(NULL if y is None else cnp.PyArray_DATA(ya)), b0, b1,
                      <float*>up, us, <float*>vp, vs,
                      <float*>(NULL if ga is None else cnp.PyArray_DATA(ga)),
                      <float*>(NULL if gb is None else cnp.PyArray_DATA(gb)), <float*>w, m, k, n)
    else:
        rank1_kernel(<double*>(NULL if x is None else cnp.PyArray_DATA(xa)), a0, a1,
                      <double*>(NULL if y is None else cnp.PyArray_DATA(ya)), b0, b1,
                      <double*>up, us, <double*>vp, vs,
                      <double*>(NULL if ga is None else cnp.PyArray_DATA(ga)),
                      <double*>(NULL if gb is None else cnp.PyArray_DATA(gb)), <double*>w, m, k, n)
    PyMem_Free(w)
    return (None if ga is None else wrap(ga), None if gb is None else wrap(gb))


cdef TensorBase _fill(cnp.ndarray w, Py_ssize_t k, bint rows):
    """A fresh C-contiguous (k, len(w)) array whose rows are w (rows), else (len(w), k) whose
    columns are w."""
    cdef cnp.ndarray r
    if rows:
        r = np.empty((k, w.shape[0]), dtype=w.dtype)
        r[...] = w
    else:
        r = np.empty((w.shape[0], k), dtype=w.dtype)
        r[...] = w[:, None]
    return wrap(r)


cdef TensorBase _outer(cnp.ndarray p, cnp.ndarray q):
    cdef cnp.ndarray r = np.empty((p.shape[0], q.shape[0]), dtype=p.dtype)
    np.multiply(p[:, None], q, out=r)
    return wrap(r)


cdef cnp.ndarray _blasable(cnp.ndarray g):
    """The incoming gradient is often an expanded (stride-0) array, e.g. from sum(): np.matmul
    cannot hand that to BLAS and falls back to a slow loop. One O(n^2) copy keeps the O(n^3)
    product in BLAS."""
    if cnp.PyArray_IS_C_CONTIGUOUS(g) or cnp.PyArray_IS_F_CONTIGUOUS(g):
        return g
    return np.ascontiguousarray(g)


cdef cnp.ndarray _np_sum_to(object r, tuple shape):
    r = np.asarray(r)
    if r.shape == shape:
        return r
    lead = r.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and r.shape[lead + i] != 1)
    return np.asarray(np.sum(r, axis=axes, keepdims=True).reshape(shape))


@cython.final
cdef class DotBackward0(MatmulBackward):
    pass


@cython.final
cdef class MvBackward0(MatmulBackward):
    pass


@cython.final
cdef class MmBackward0(MatmulBackward):
    pass


@cython.final
cdef class BmmBackward0(MatmulBackward):
    pass


@cython.final
cdef class SqueezeBackward4(MatmulBackward):
    pass


def mm(input, mat2, *, out=None):
    """2-D x 2-D matrix product."""
    cdef TensorBase a = input, b = mat2
    if out is not None:
        out_check("mm", out, a, b)
        return write_out(out, mm(a, b), 0)
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be 2-D matrices, got {a._data.ndim}-D "
                           f"(self) and {b._data.ndim}-D (mat2); use matmul for other ranks")
    _check_matmul(a, b)
    return _matmul(a, b, MmBackward0)


def bmm(input, mat2, *, out=None):
    """Batched product of (b, n, k) and (b, k, m) tensors (no broadcasting)."""
    cdef TensorBase a = input, b = mat2
    if out is not None:
        out_check("bmm", out, a, b)
        return write_out(out, bmm(a, b), 0)
    if a._data.ndim != 3 or b._data.ndim != 3:
        raise RuntimeError(f"bmm: batch1 must be a 3D tensor and batch2 a 3D tensor, got "
                           f"{a._data.ndim}D and {b._data.ndim}D")
    if _shape(a)[0] != _shape(b)[0] or _shape(a)[2] != _shape(b)[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{_shape(a)[0]}, {_shape(a)[2]}] but got: [{_shape(b)[0]}, "
                           f"{_shape(b)[1]}] (bmm of {list(_shape(a))} and {list(_shape(b))})")
    _check_dtypes(a, b, "bmm")
    return _matmul(a, b, BmmBackward0)


def mv(input, vec, *, out=None):
    cdef TensorBase a = input, b = vec
    if a._data.ndim != 2 or b._data.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {a._data.ndim}, "
                           f"{b._data.ndim}: mv needs a 2-D matrix and a 1-D vector")
    _check_matmul(a, b)
    return _matmul(a, b, MvBackward0)


def dot(input, tensor, *, out=None):
    cdef TensorBase a = input, b = tensor
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D "
                           f"tensors")
    _check_matmul(a, b)
    return _matmul(a, b, DotBackward0)


inner = dot


def outer(input, vec2):
    """Outer product of two 1-D tensors: input[:, None] * vec2[None, :] (MulBackward0)."""
    cdef TensorBase a = input, b = vec2
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {a._data.ndim}-D and "
                           f"{b._data.ndim}-D")
    return pw.mul(unsqueeze_c(a, 1), unsqueeze_c(b, 0))


ger = outer

# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Matrix products: matmul/@ (1-D, 2-D, batched with broadcast batch dims), mm, bmm, mv, dot,
outer, addmm, linear (one fused op), einsum.

Products run on NumPy's BLAS (np.matmul); backward passes transposed operands as transposed
views (swapaxes), which np.matmul hands to BLAS with a transpose flag instead of copying.
During a plain backward (grad mode off) the gradients are computed on the arrays directly; under
create_graph they are written with recorded ops (matmul, transposes, sum_to) so they are
differentiable again.
"""
cimport cython
from cython cimport floating
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport (TensorBase, SavedVar, wrap, save, set_history,
                                    set_history1)
from fastgrad._core cimport ops_pointwise as pw
from fastgrad._core.ops_reduce cimport sum_to, sum_
from fastgrad._core.ops_view cimport (reshape_c, transpose_c, unsqueeze_c, squeeze_to)
from fastgrad._core cimport linear_kernels as lk
from fastgrad._core cimport blas
from fastgrad._core.ops_view import expand
from fastgrad._core.ops_strided import _diag_scatter
from fastgrad._core.ops_out import out_check, write_out

cnp.import_array()




cdef inline str _mat(tuple s):
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
    if grad_enabled() and (a._requires_grad or b._requires_grad):
        node = cls.__new__(cls)
        node.a_shape = _shape(a)
        node.b_shape = _shape(b)
        if b._requires_grad:
            node.self_ = save(a, False)
        if a._requires_grad:
            node.other = save(b, False)
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
        g2 = g if not b1 else unsqueeze_c(g, g._data.ndim)
        g2 = g2 if not a1 else unsqueeze_c(g2, g2._data.ndim - 1)
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
        _rank1_kernel(<float*>(NULL if x is None else cnp.PyArray_DATA(xa)), a0, a1,
                      <float*>(NULL if y is None else cnp.PyArray_DATA(ya)), b0, b1,
                      <float*>up, us, <float*>vp, vs,
                      <float*>(NULL if ga is None else cnp.PyArray_DATA(ga)),
                      <float*>(NULL if gb is None else cnp.PyArray_DATA(gb)), <float*>w, m, k, n)
    else:
        _rank1_kernel(<double*>(NULL if x is None else cnp.PyArray_DATA(xa)), a0, a1,
                      <double*>(NULL if y is None else cnp.PyArray_DATA(ya)), b0, b1,
                      <double*>up, us, <double*>vp, vs,
                      <double*>(NULL if ga is None else cnp.PyArray_DATA(ga)),
                      <double*>(NULL if gb is None else cnp.PyArray_DATA(gb)), <double*>w, m, k, n)
    PyMem_Free(w)
    return (None if ga is None else wrap(ga), None if gb is None else wrap(gb))


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _rank1_kernel(const floating* A, Py_ssize_t a0, Py_ssize_t a1,      # IN (m, k) or NULL
                        const floating* B, Py_ssize_t b0, Py_ssize_t b1,      # IN (k, n) or NULL
                        const floating* u, Py_ssize_t us,                     # IN (m,)
                        const floating* v, Py_ssize_t vs,                     # IN (n,)
                        floating* ga, floating* gb,                           # OUT (m, k), (k, n) C
                        floating* w,                                          # scratch (k,)
                        Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """ga = u (B v)^T when B is given; gb = (A^T u) v^T when A is given. Strides in elements.
    The inner loops run along unit strides where the operand has one, with independent sums,
    so they vectorize; no floating-point dependency chain runs along a whole row."""
    cdef Py_ssize_t i, j, l
    cdef floating s0, s1, s2, s3, c
    if B != NULL:
        if b1 == 1:                                   # rows of B contiguous: dot products
            for l in range(k):
                s0 = s1 = s2 = s3 = 0
                j = 0
                if vs == 0:
                    while j + 4 <= n:
                        s0 = s0 + B[l * b0 + j]
                        s1 = s1 + B[l * b0 + j + 1]
                        s2 = s2 + B[l * b0 + j + 2]
                        s3 = s3 + B[l * b0 + j + 3]
                        j += 4
                    while j < n:
                        s0 = s0 + B[l * b0 + j]
                        j += 1
                    w[l] = ((s0 + s1) + (s2 + s3)) * v[0]
                else:
                    while j + 4 <= n:
                        s0 = s0 + B[l * b0 + j] * v[j * vs]
                        s1 = s1 + B[l * b0 + j + 1] * v[(j + 1) * vs]
                        s2 = s2 + B[l * b0 + j + 2] * v[(j + 2) * vs]
                        s3 = s3 + B[l * b0 + j + 3] * v[(j + 3) * vs]
                        j += 4
                    while j < n:
                        s0 = s0 + B[l * b0 + j] * v[j * vs]
                        j += 1
                    w[l] = (s0 + s1) + (s2 + s3)
        else:                                         # any strides: axpy over B's columns
            for l in range(k):
                w[l] = 0
            for j in range(n):
                c = v[j * vs]
                for l in range(k):
                    w[l] = w[l] + B[l * b0 + j * b1] * c
        for i in range(m):
            c = u[i * us]
            for l in range(k):
                ga[i * k + l] = c * w[l]
    if A != NULL:
        for l in range(k):
            w[l] = 0
        if a1 == 1:                                   # rows of A contiguous: axpy over rows
            for i in range(m):
                c = u[i * us]
                for l in range(k):
                    w[l] = w[l] + c * A[i * a0 + l]
        else:
            for i in range(m):
                c = u[i * us]
                for l in range(k):
                    w[l] = w[l] + c * A[i * a0 + l * a1]
        for l in range(k):
            c = w[l]
            for j in range(n):
                gb[l * n + j] = c * v[j * vs]


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


@cython.final
cdef class UnsafeViewBackward0(MatmulBackward):
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


# --- addmm / linear ------------------------------------------------------------------------------

def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat1 @ mat2), input broadcast to the product's shape."""
    cdef TensorBase c = input, a = mat1, b = mat2
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"addmm: mat1 and mat2 must be 2-D matrices, got {a._data.ndim}-D "
                           f"and {b._data.ndim}-D")
    _check_matmul(a, b)
    prod = np.matmul(a._data, b._data)
    if alpha != 1:
        prod *= alpha
    try:
        r = prod + (c._data * beta if beta != 1 else c._data) if beta != 0 else prod
    except ValueError:
        raise RuntimeError(f"addmm: input of shape {list(_shape(c))} is not broadcastable to "
                           f"the product's shape {list(prod.shape)}")
    if r.shape != prod.shape:
        raise RuntimeError(f"addmm: input of shape {list(_shape(c))} is not broadcastable to "
                           f"the product's shape {list(prod.shape)}")
    return _record_linear(np.asarray(r, dtype=prod.dtype), a, b, c, False, alpha, beta,
                          AddmmBackward0)


def linear(input, weight, bias=None):
    """input @ weight.T + bias as one op (input (..., in), weight (out, in), bias (out,))."""
    cdef TensorBase x = input, w = weight, bt = bias
    cdef cnp.ndarray xd = x._data, wd = w._data, y
    if wd.ndim != 2 and wd.ndim != 1:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                           f"{list(_shape(w))}")
    if xd.ndim == 0 or _shape(x)[-1] != _shape(w)[-1]:
        m1 = (xd.size // _shape(x)[-1] if xd.ndim and _shape(x)[-1] else 1,
              _shape(x)[-1] if xd.ndim else 1)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mat(m1)} and "
                           f"{_mat(_shape(w)[::-1])}); linear needs input's last dim "
                           f"({_shape(x)[-1] if xd.ndim else 0}) to equal in_features "
                           f"({_shape(w)[-1]})")
    _check_dtypes(x, w, "linear")
    if wd.ndim == 1:
        out = matmul(x, w)
        return pw.add(out, bt) if bt is not None else out
    n_in = _shape(w)[1]
    x2 = xd if xd.ndim == 2 else np.reshape(xd, _rows_shape(_shape(x)))
    y = _small_linear(x2, wd, bt)
    if y is not None:
        cls = (AddmmBackward0 if bt is not None else MmBackward0) if xd.ndim == 2 else ViewBackward0
        if xd.ndim != 2:
            y = y.reshape(_shape(x)[:-1] + (_shape(w)[0],))
        return _record_linear(y, x, w, bt, True, 1, 1, cls)
    if bt is not None and bt._data.dtype != wd.dtype:
        raise RuntimeError(f"linear: bias dtype {bt._data.dtype} != weight dtype {wd.dtype}")
    try:
        y = _linear_mm(x2, wd.T, x2.size * _shape(w)[0], bt._data if bt is not None else None)
    except ValueError:
        raise RuntimeError(f"linear: bias of shape {list(_shape(bt))} does not match "
                           f"out_features {_shape(w)[0]}")
    if xd.ndim != 2:
        y = y.reshape(_shape(x)[:-1] + (_shape(w)[0],))
    cls = (AddmmBackward0 if bt is not None else MmBackward0) if xd.ndim == 2 else ViewBackward0
    return _record_linear(y, x, w, bt, True, 1, 1, cls)


cdef object _record_linear(cnp.ndarray y, TensorBase a, TensorBase b, TensorBase c,
                           bint wt, object alpha, object beta, type cls):
    """Record y = beta * c + alpha * (a @ (b.T if wt else b)); c may be None (no bias)."""
    cdef TensorBase out = wrap(y)
    cdef LinearBackward node
    cdef bint need_c = c is not None and c._requires_grad
    if not (grad_enabled() and (a._requires_grad or b._requires_grad or need_c)):
        return out
    if cls is MmBackward0:
        node = LinearMmBackward0.__new__(LinearMmBackward0)
    else:
        node = cls.__new__(cls)
    node.wt = wt
    node.alpha = alpha
    node.beta = beta
    if b._requires_grad:
        node.self_ = save(a, False)
    if a._requires_grad:
        node.other = save(b, False)
    if need_c:
        node.c_shape = _shape(c)
    set_history(out, node, (a, b, c))
    return out


cdef tuple _rows_shape(tuple shape):
    """(rows, last dim): a shape with its leading dims folded into rows. Spelled out rather
    than (-1, n), which NumPy cannot resolve when the last dim is 0."""
    cdef Py_ssize_t rows = 1
    for s in shape[:-1]:
        rows *= s
    return (rows, shape[-1])


cdef object _linear_mm(cnp.ndarray a, cnp.ndarray b, Py_ssize_t macs, cnp.ndarray bias=None):
    """a @ b (+ bias) for linear's products (b 2-D; a's leading dims folded into rows): BLAS
    called directly on one thread per block (Note [Products on fastgrad's threads] in
    blas.pyx), or np.matmul on one BLAS thread and np.add (ValueError for a bias that does not
    broadcast) when the direct call does not apply."""
    cdef int prev
    cdef object r, oa = a
    if cnp.PyArray_NDIM(b) == 2 and cnp.PyArray_NDIM(a) >= 2:
        r = blas.matmul2d(a if cnp.PyArray_NDIM(a) == 2 else oa.reshape(_rows_shape(oa.shape)), b,
                          macs, bias)
        if r is not None:
            return r if cnp.PyArray_NDIM(a) == 2 else r.reshape(oa.shape[:-1] + (b.shape[1],))
    prev = blas.one_thread()
    try:
        r = np.matmul(a, b)
    finally:
        blas.restore(prev)
    if bias is not None:
        np.add(r, bias, out=r)
    return r


# Note [Small linear]
# NumPy's matmul costs ~1.5-2 us of dispatch per call whatever the size; for the tiny layers of a
# small network (W4: 4x2 @ 2x2) the arithmetic is a few dozen flops. Below SMALL_LINEAR_MACS
# multiply-adds, linear's forward (bias included) and its backward (grad_input, grad_weight and
# grad_bias in one call) run as plain C loops over the operands' strides, with no copies; above
# it they go to BLAS through np.matmul. The threshold is where the two cost the same here
# (measured on this machine, float32 and float64 alike).

cdef Py_ssize_t SMALL_LINEAR_MACS = 2048


def _set_small_linear_macs(Py_ssize_t n):
    """Set the small-linear threshold (multiply-adds); returns the old one (for tests)."""
    global SMALL_LINEAR_MACS
    old = SMALL_LINEAR_MACS
    SMALL_LINEAR_MACS = n
    return old


cdef inline bint _estrides(cnp.ndarray a, Py_ssize_t* s0, Py_ssize_t* s1) noexcept:
    """a's strides in elements (False when a byte stride is not a multiple of the item size)."""
    cdef Py_ssize_t it = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t b0 = cnp.PyArray_STRIDE(a, 0), b1 = cnp.PyArray_STRIDE(a, 1)
    if b0 % it or b1 % it:
        return False
    s0[0] = b0 // it
    s1[0] = b1 // it
    return True


cdef inline bint _float_type(int t) noexcept:
    return t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64


cdef void _gemm(int t, char* a, Py_ssize_t as0, Py_ssize_t as1, char* b, Py_ssize_t bs0,
                Py_ssize_t bs1, cnp.ndarray out, Py_ssize_t p, Py_ssize_t q,
                Py_ssize_t r) noexcept:
    """out (p, q) = a (p, r) @ b (r, q) for float32 (t) or float64, strides in elements."""
    cdef char* o = <char*>cnp.PyArray_DATA(out)
    if t == cnp.NPY_FLOAT32:
        lk.small_gemm(<float*>a, as0, as1, <float*>b, bs0, bs1, <float*>o, p, q, r)
    else:
        lk.small_gemm(<double*>a, as0, as1, <double*>b, bs0, bs1, <double*>o, p, q, r)


cdef object _small_linear(cnp.ndarray x, cnp.ndarray w, TensorBase bt):
    """x (m, k) @ w(n, k).T + b as C loops when small (Note [Small linear]); None otherwise."""
    cdef Py_ssize_t m = cnp.PyArray_DIM(x, 0), k = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t n = cnp.PyArray_DIM(w, 0)
    cdef Py_ssize_t xs0, xs1, ws0, ws1, bs0 = 0
    cdef int t = cnp.PyArray_TYPE(x)
    cdef cnp.ndarray bd = None, y
    if m * n * k > SMALL_LINEAR_MACS or not _float_type(t) or cnp.PyArray_TYPE(w) != t:
        return None
    if bt is not None:
        bd = bt._data
        if bd.ndim != 1 or cnp.PyArray_DIM(bd, 0) != n or cnp.PyArray_TYPE(bd) != t:
            return None
        bs0 = cnp.PyArray_STRIDE(bd, 0)
        if bs0 % cnp.PyArray_ITEMSIZE(bd):
            return None
        bs0 //= cnp.PyArray_ITEMSIZE(bd)
    if not (_estrides(x, &xs0, &xs1) and _estrides(w, &ws0, &ws1)):
        return None
    y = cnp.PyArray_EMPTY(2, [m, n], t, 0)
    _gemm(t, <char*>cnp.PyArray_DATA(x), xs0, xs1, <char*>cnp.PyArray_DATA(w), ws1, ws0, y,
          m, n, k)
    if bd is not None:
        if t == cnp.NPY_FLOAT32:
            lk.add_row(<float*>cnp.PyArray_DATA(y), <float*>cnp.PyArray_DATA(bd), bs0, m, n)
        else:
            lk.add_row(<double*>cnp.PyArray_DATA(y), <double*>cnp.PyArray_DATA(bd), bs0, m, n)
    return y


cdef object _small_linear_bwd(cnp.ndarray g, TensorBase x, TensorBase w, tuple c_shape):
    """(grad_input, grad_weight, grad_bias) of a small 2-D linear as C loops, or None."""
    cdef int t = cnp.PyArray_TYPE(g)
    cdef Py_ssize_t m, n, k, gs0, gs1, s0 = 0, s1 = 0
    cdef cnp.ndarray a, gx = None, gw = None, gb = None
    if g.ndim != 2 or not _float_type(t) or (x is None and w is None):
        return None
    m, n = cnp.PyArray_DIM(g, 0), cnp.PyArray_DIM(g, 1)
    a = x._data if x is not None else w._data
    if a.ndim != 2 or cnp.PyArray_TYPE(a) != t:
        return None
    k = cnp.PyArray_DIM(a, 1)
    if m * n * k > SMALL_LINEAR_MACS or (c_shape is not None and c_shape != (n,)):
        return None
    if x is not None and w is not None and cnp.PyArray_TYPE(w._data) != t:
        return None
    if not _estrides(g, &gs0, &gs1):
        return None
    if x is not None:                      # grad_weight = g.T @ x
        if not _estrides(x._data, &s0, &s1):
            return None
        gw = cnp.PyArray_EMPTY(2, [n, k], t, 0)
        _gemm(t, <char*>cnp.PyArray_DATA(g), gs1, gs0, <char*>cnp.PyArray_DATA(x._data), s0, s1,
              gw, n, k, m)
    if w is not None:                      # grad_input = g @ w
        if not _estrides(w._data, &s0, &s1):
            return None
        gx = cnp.PyArray_EMPTY(2, [m, k], t, 0)
        _gemm(t, <char*>cnp.PyArray_DATA(g), gs0, gs1, <char*>cnp.PyArray_DATA(w._data), s0, s1,
              gx, m, k, n)
    if c_shape is not None:
        gb = cnp.PyArray_EMPTY(1, [n], t, 0)
        _col_sum_into(g, gb, gs0, gs1)
    return (None if gx is None else wrap(gx), None if gw is None else wrap(gw),
            None if gb is None else wrap(gb))


cdef void _col_sum_into(cnp.ndarray g, cnp.ndarray out, Py_ssize_t gs0, Py_ssize_t gs1) noexcept:
    cdef Py_ssize_t m = cnp.PyArray_DIM(g, 0), n = cnp.PyArray_DIM(g, 1)
    if cnp.PyArray_TYPE(g) == cnp.NPY_FLOAT32:
        with nogil:
            lk.col_sum(<float*>cnp.PyArray_DATA(g), gs0, gs1, <float*>cnp.PyArray_DATA(out), m, n)
    else:
        with nogil:
            lk.col_sum(<double*>cnp.PyArray_DATA(g), gs0, gs1, <double*>cnp.PyArray_DATA(out),
                       m, n)


cdef cnp.ndarray _col_sum(cnp.ndarray g):
    """g (m, n) summed over rows (a bias gradient) in one pass; NumPy's sum for other dtypes."""
    cdef Py_ssize_t gs0, gs1
    cdef cnp.ndarray out
    if not _float_type(cnp.PyArray_TYPE(g)) or not _estrides(g, &gs0, &gs1):
        return np.asarray(g.sum(axis=0))
    out = cnp.PyArray_EMPTY(1, [cnp.PyArray_DIM(g, 1)], cnp.PyArray_TYPE(g), 0)
    _col_sum_into(g, out, gs0, gs1)
    return out


cdef class LinearBackward(Node):
    """Y = beta*C + alpha * X @ W' (W' = W.T for linear): grad_X = alpha * G @ W'^T,
    grad_W' = alpha * X^T @ G over all leading dims flattened, grad_C = beta * G summed to C."""
    cdef SavedVar self_, other
    cdef bint wt
    cdef object alpha, beta
    cdef tuple c_shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = None, w = None
        if self.self_ is not None:
            x = self.self_.unpack(self)
        if self.other is not None:
            w = self.other.unpack(self)
        if not grad_enabled():
            return self._np(g._data, x, w)
        gx = gw = gc = None
        n_out = _shape(g)[-1]
        if w is not None:                         # G @ W (linear) or G @ B^T (addmm)
            gx = matmul(g, w if self.wt else _mT(w))
            gx = pw.mul(gx, self.alpha) if self.alpha != 1 else gx
        if x is not None:
            g2 = reshape_c(g, _rows_shape(_shape(g)))
            x2 = reshape_c(x, _rows_shape(_shape(x)))
            gw = matmul(_mT(g2), x2) if self.wt else matmul(_mT(x2), g2)
            gw = pw.mul(gw, self.alpha) if self.alpha != 1 else gw
        if self.c_shape is not None:
            gc = sum_to(pw.mul(g, self.beta) if self.beta != 1 else g, self.c_shape)
        return (gx, gw, gc)

    cdef tuple _np(self, cnp.ndarray g, TensorBase x, TensorBase w):
        gx = gw = gc = None
        if self.wt and self.alpha == 1 and self.beta == 1:
            r = _small_linear_bwd(g, x, w, self.c_shape)
            if r is not None:
                return r
        g = _blasable(g)
        n_out = (<object>g).shape[-1]
        g2 = g if g.ndim == 2 else g.reshape(_rows_shape((<object>g).shape))
        if w is not None:
            r = _linear_mm(g, w._data if self.wt else w._data.T, g.size * w._data.size // n_out if n_out else 0)
            gx = wrap(r * self.alpha if self.alpha != 1 else r)
        if x is not None:
            x2 = (x._data if x._data.ndim == 2
                  else x._data.reshape(_rows_shape((<object>x._data).shape)))
            r = (_linear_mm(g2.T, x2, g2.size * (<object>x2).shape[1]) if self.wt
                 else _linear_mm(x2.T, g2, g2.size * (<object>x2).shape[1]))
            gw = wrap(r * self.alpha if self.alpha != 1 else r)
        if self.c_shape is not None:
            r = g * self.beta if self.beta != 1 else g
            gc = wrap(_col_sum(r) if g.ndim == 2 and self.c_shape == (<object>g).shape[1:]
                      else _np_sum_to(r, self.c_shape))
        return (gx, gw, gc)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
        if self.other is not None:
            self.other.release()


@cython.final
cdef class AddmmBackward0(LinearBackward):
    pass


@cython.final
cdef class ViewBackward0(LinearBackward):
    pass


cdef class LinearMmBackward0(LinearBackward):
    """linear without bias on a 2-D input: PyTorch prints MmBackward0."""
    def name(self):
        return "MmBackward0"


# --- einsum --------------------------------------------------------------------------------------

cdef str _LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


cdef tuple _explicit(str equation, list arrs):
    """The equation with '...' replaced by letters and the output written out: (input terms,
    output term). Ellipsis dims are right-aligned across operands (broadcast like PyTorch)."""
    cdef Py_ssize_t i, e, n_ell = 0
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(arrs):
        raise RuntimeError(f"einsum(): more operands were provided than specified in the "
                           f"equation ({len(arrs)} operands for {len(ins)} terms)"
                           if len(arrs) > len(ins) else
                           f"einsum(): fewer operands were provided than specified in the "
                           f"equation ({len(arrs)} operands for {len(ins)} terms)")
    for c in eq:
        if c not in _LETTERS and c not in ".,->":
            raise RuntimeError(f"einsum(): invalid subscript given at index "
                               f"{equation.index(c)} in the equation string, subscripts must "
                               f"be in [a-zA-Z]")
    free = [c for c in _LETTERS if c not in eq]
    ells = []
    for i in range(len(ins)):
        term = ins[i]
        nd = (<cnp.ndarray>arrs[i]).ndim
        if "..." in term:
            e = nd - (len(term) - 3)
            if e < 0 or term.count("...") > 1 or "." in term.replace("...", "", 1):
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(term) - 3}) is more than the number of dimensions "
                                   f"({nd}) for operand {i}" if e < 0 else
                                   f"einsum(): found '.' for operand {i} that is not part of "
                                   f"any ellipsis")
            ells.append(e)
            n_ell = max(n_ell, e)
        else:
            if "." in term:
                raise RuntimeError(f"einsum(): found '.' for operand {i} that is not part of "
                                   f"any ellipsis")
            if len(term) != nd:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(term)}) does not match the number of dimensions "
                                   f"({nd}) for operand {i} and no ellipsis was given")
            ells.append(-1)
    ell = "".join(free[:n_ell])
    ins = [t.replace("...", ell[n_ell - e:]) if e >= 0 else t for t, e in zip(ins, ells)]
    if arrow:
        if "..." in rhs:
            rhs = rhs.replace("...", ell)
        for c in rhs:
            if c not in "".join(ins):
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                                   f"equation for any input operand")
            if rhs.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                                   f"the output")
    else:
        joined = "".join(ins)
        rhs = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1
                                   and c not in ell))
    return tuple(ins), rhs


def einsum(equation, *operands):
    """np.einsum with gradients, '...' and repeated indices (diagonals): each operand's gradient
    is an einsum of the output's gradient with the other operands over the operand's distinct
    indices, broadcast over indices only it had and written onto its diagonal for repeated
    ones (EinsumBackward0)."""
    cdef TensorBase out
    cdef EinsumBackward0 node
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    arrs = [(<TensorBase>o)._data for o in operands]
    ins, rhs = _explicit(equation, arrs)
    try:
        r = np.einsum(f"{','.join(ins)}->{rhs}", *arrs, optimize=len(arrs) > 1)
    except ValueError as e:
        shapes = [list(x.shape) for x in arrs]
        raise RuntimeError(f"einsum(): operands do not match the equation '{equation}' "
                           f"(shapes {shapes}): {e}")
    r = np.asarray(r)
    out = wrap(np.ascontiguousarray(r) if r.ndim else r.copy())
    if grad_enabled() and any((<TensorBase>o)._requires_grad for o in operands):
        node = EinsumBackward0.__new__(EinsumBackward0)
        node.ins = ins
        node.rhs = rhs
        node.saved = tuple(save(o, False) for o in operands)
        set_history(out, node, tuple(operands))
    return out


@cython.final
cdef class EinsumBackward0(Node):
    """grad_i = einsum(rhs, other terms -> distinct indices of term_i), summed over dims term_i
    broadcast (size 1), expanded over indices only term_i had, written onto term_i's diagonal."""
    cdef tuple ins, saved
    cdef str rhs

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], op
        ops = [(<SavedVar>s).unpack(self) for s in self.saved]
        res = []
        for i, term in enumerate(self.ins):
            if self._next_fns[i] is None:
                res.append(None)
                continue
            op = ops[i]
            shape = _shape(op)
            uniq = "".join(c for k, c in enumerate(term) if term.index(c) == k)
            size = {c: shape[term.index(c)] for c in uniq}
            others = [self.ins[j] for j in range(len(self.ins)) if j != i]
            avail = set(self.rhs).union(*[set(o) for o in others])
            keep = "".join(c for c in uniq if c in avail)
            gi = einsum(",".join([self.rhs] + others) + "->" + keep, g,
                        *[ops[j] for j in range(len(ops)) if j != i])
            gi = sum_to(gi, tuple(size[c] for c in keep))          # broadcast size-1 dims
            if keep != uniq:
                gi = expand(reshape_c(gi, tuple(size[c] if c in avail else 1 for c in uniq)),
                            tuple(size[c] for c in uniq))
            if uniq != term:                                         # repeated: a diagonal
                gi = _diag_scatter(gi, shape, np.ascontiguousarray(np.einsum(
                    f"{term}->{uniq}", np.arange(op._data.size, dtype=np.int64).reshape(shape))))
            res.append(gi)
        return tuple(res)

    cdef void release_variables(self):
        for s in self.saved:
            (<SavedVar>s).release()

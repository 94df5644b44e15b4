# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""layer_norm as one node: a row loop forward (mean, 1/std, affine) and one fused backward.

Rows are the trailing normalized dims flattened (D values each), M rows in all. The forward keeps
each row's mean and rstd = 1 / sqrt(var + eps) (biased variance); the backward is, per row, with
xhat = (x - mean) rstd and gw = g * w,

    dx = rstd (gw - mean(gw) - xhat mean(gw xhat)),   dw = sum_rows g xhat,   db = sum_rows g

A composed layer norm records eight nodes and as many full-size temporaries; this is two passes
over the data each way, in row blocks on the thread team (Note [Layer norm in row blocks]). Sums accumulate in the input's dtype, vectorised (ops_norm is built
with reassociation allowed, setup.py). Under create_graph the same rule is written in
recorded ops (differentiable again); other dtypes take the composed path in nn.functional.
"""
cimport cython
cimport numpy as cnp
import numpy as np
from libc.math cimport sqrt
from cython.parallel cimport prange

from fastgrad._core.kernels cimport nthreads

from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save

cnp.import_array()

ctypedef fused floating:
    float
    double


cdef void ln_fwd(const floating* x, const floating* w, const floating* b,       # IN
                 floating* y, floating* mean, floating* rstd,                   # OUT
                 Py_ssize_t M, Py_ssize_t D, double eps) noexcept nogil:
    """y = (x - mean) rstd * w + b per row."""
    cdef Py_ssize_t i, j
    cdef floating s, v, mu, r, d
    cdef const floating* row
    cdef floating* out
    for i in range(M):
        row = x + i * D
        out = y + i * D
        s = 0
        for j in range(D):
            s = s + row[j]
        mu = s / D
        v = 0
        for j in range(D):
            d = row[j] - mu
            v = v + d * d
        r = <floating>(1.0 / sqrt(v / D + eps))
        mean[i] = mu
        rstd[i] = r
        for j in range(D):
            out[j] = (row[j] - mu) * r * w[j] + b[j]


# Note [Layer norm in row blocks]
# Rows are cut into blocks of ROW_BLOCK, shared across fastgrad's thread team when there are
# PAR_ELEMS elements or more. The backward's dw and db are summed per block into a row of partial
# sums of its own, and the partial rows are added in block order afterwards: the same additions
# whatever the thread count, so results do not depend on it.
cdef enum:
    ROW_BLOCK = 64
    PAR_ELEMS = 1 << 16


cdef void ln_fwd_blocks(const floating* x, const floating* w, const floating* b, floating* y,
                        floating* mean, floating* rstd, Py_ssize_t M, Py_ssize_t D,
                        double eps) noexcept nogil:
    cdef Py_ssize_t blk, lo, nblk = (M + ROW_BLOCK - 1) // ROW_BLOCK
    cdef int nt = nthreads()
    if nt > 1 and nblk > 1 and M * D >= PAR_ELEMS:
        for blk in prange(nblk, schedule="static", num_threads=nt):
            lo = blk * ROW_BLOCK
            ln_fwd(x + lo * D, w, b, y + lo * D, mean + lo, rstd + lo,
                   min(M - lo, <Py_ssize_t>ROW_BLOCK), D, eps)
    else:
        ln_fwd(x, w, b, y, mean, rstd, M, D, eps)


cdef void ln_bwd_blocks(const floating* g, const floating* x, const floating* w,
                        const floating* mean, const floating* rstd, floating* dx,
                        floating* part, floating* dw, floating* db, Py_ssize_t M,
                        Py_ssize_t D) noexcept nogil:
    """ln_bwd by row blocks; part: zeroed (nblk, 2, D) partial sums; dw, db zeroed (D,)."""
    cdef Py_ssize_t blk, lo, j, nblk = (M + ROW_BLOCK - 1) // ROW_BLOCK
    cdef int nt = nthreads()
    if nt > 1 and nblk > 1 and M * D >= PAR_ELEMS:
        for blk in prange(nblk, schedule="static", num_threads=nt):
            lo = blk * ROW_BLOCK
            ln_bwd(g + lo * D, x + lo * D, w, mean + lo, rstd + lo, dx + lo * D,
                   part + 2 * blk * D, part + (2 * blk + 1) * D,
                   min(M - lo, <Py_ssize_t>ROW_BLOCK), D)
    else:
        for blk in range(nblk):
            lo = blk * ROW_BLOCK
            ln_bwd(g + lo * D, x + lo * D, w, mean + lo, rstd + lo, dx + lo * D,
                   part + 2 * blk * D, part + (2 * blk + 1) * D,
                   min(M - lo, <Py_ssize_t>ROW_BLOCK), D)
    for blk in range(nblk):
        for j in range(D):
            dw[j] = dw[j] + part[2 * blk * D + j]
            db[j] = db[j] + part[(2 * blk + 1) * D + j]


cdef void ln_bwd(const floating* g, const floating* x, const floating* w,        # IN
                 const floating* mean, const floating* rstd,                    # IN
                 floating* dx, floating* dw, floating* db,                      # OUT
                 Py_ssize_t M, Py_ssize_t D) noexcept nogil:
    """dx per row; dw, db accumulated over rows (zeroed by the caller)."""
    cdef Py_ssize_t i, j
    cdef floating a, c, mu, r, xh, gw, gi
    cdef const floating* gr
    cdef const floating* xr
    cdef floating* dr
    for i in range(M):
        mu = mean[i]
        r = rstd[i]
        gr = g + i * D
        xr = x + i * D
        dr = dx + i * D
        a = 0
        c = 0
        for j in range(D):
            xh = (xr[j] - mu) * r
            gi = gr[j]
            gw = gi * w[j]
            c = c + gw
            a = a + gw * xh
            dw[j] = dw[j] + gi * xh
            db[j] = db[j] + gi
        a = a / D
        c = c / D
        for j in range(D):
            xh = (xr[j] - mu) * r
            dr[j] = r * (gr[j] * w[j] - c - xh * a)


cdef tuple _rows(tuple shape, int k):
    """(M, D): rows and row length when the last k dims of shape are normalised together."""
    cdef Py_ssize_t D = 1
    for s in shape[len(shape) - k:]:
        D *= s
    cdef Py_ssize_t n = 1
    for s in shape:
        n *= s
    return (n // D if D else 0, D)


cdef inline void* _ptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


def layer_norm(input, int k, weight, bias, double eps):
    """LayerNorm over the last k dims of a float32/float64 tensor; weight and bias (shape of
    those dims) of the same dtype, or None. The caller checked the shapes."""
    cdef TensorBase x = input, w = weight, b = bias, out
    cdef NativeLayerNormBackward0 node
    xd = np.ascontiguousarray(x._data)
    shape = (<object>xd).shape
    cdef Py_ssize_t M, D
    M, D = _rows(shape, k)
    y = np.empty_like(xd)
    mean = np.empty(M, dtype=xd.dtype)
    rstd = np.empty(M, dtype=xd.dtype)
    wd = np.ones(D, dtype=xd.dtype) if w is None else np.ascontiguousarray(w._data)
    bd = np.zeros(D, dtype=xd.dtype) if b is None else np.ascontiguousarray(b._data)
    cdef void* px = _ptr(xd)
    cdef void* pw = _ptr(wd)
    cdef void* pb = _ptr(bd)
    cdef void* py = _ptr(y)
    cdef void* pm = _ptr(mean)
    cdef void* pr = _ptr(rstd)
    cdef bint f32 = xd.dtype == np.float32
    if D:
        with nogil:
            if f32:
                ln_fwd_blocks(<float*>px, <float*>pw, <float*>pb, <float*>py, <float*>pm,
                              <float*>pr, M, D, eps)
            else:
                ln_fwd_blocks(<double*>px, <double*>pw, <double*>pb, <double*>py, <double*>pm,
                              <double*>pr, M, D, eps)
    out = wrap(y)
    need = x._requires_grad or (w is not None and w._requires_grad) or \
        (b is not None and b._requires_grad)
    if need and grad_enabled():
        node = NativeLayerNormBackward0.__new__(NativeLayerNormBackward0)
        node.x = save(x, False)
        node.w = save(w, False) if w is not None else None
        node.mean, node.rstd = mean, rstd
        node.k, node.eps = k, eps
        node.has_bias = b is not None
        inputs = (x,)
        if w is not None:
            inputs = inputs + (w,)
        if b is not None:
            inputs = inputs + (b,)
        set_history(out, node, inputs)
    return out


@cython.final
cdef class NativeLayerNormBackward0(Node):
    """The fused layer-norm backward (see the module docstring)."""
    cdef SavedVar x, w
    cdef object mean, rstd         # (M,) per-row statistics, in the input's dtype
    cdef int k
    cdef double eps
    cdef bint has_bias

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self)
        cdef TensorBase w = self.w.unpack(self) if self.w is not None else None
        if grad_enabled():
            return self._recorded(g, x, w)
        xd = np.ascontiguousarray(x._data)
        gd = np.ascontiguousarray(g._data, dtype=xd.dtype)
        shape = (<object>xd).shape
        cdef Py_ssize_t M, D
        M, D = _rows(shape, self.k)
        wd = np.ones(D, dtype=xd.dtype) if w is None else np.ascontiguousarray(w._data)
        dx = np.empty_like(xd)
        dw = np.zeros(D, dtype=xd.dtype)
        db = np.zeros(D, dtype=xd.dtype)
        part = np.zeros(((M + ROW_BLOCK - 1) // ROW_BLOCK, 2, D), dtype=xd.dtype)
        cdef void* pp = _ptr(part)
        mean, rstd = self.mean, self.rstd
        cdef void* pg = _ptr(gd)
        cdef void* px = _ptr(xd)
        cdef void* pw = _ptr(wd)
        cdef void* pdx = _ptr(dx)
        cdef void* pm = _ptr(mean)
        cdef void* pr = _ptr(rstd)
        cdef void* pdw = _ptr(dw)
        cdef void* pdb = _ptr(db)
        cdef bint f32 = xd.dtype == np.float32
        if D and M:
            with nogil:
                if f32:
                    ln_bwd_blocks(<float*>pg, <float*>px, <float*>pw, <float*>pm, <float*>pr,
                                  <float*>pdx, <float*>pp, <float*>pdw, <float*>pdb, M, D)
                else:
                    ln_bwd_blocks(<double*>pg, <double*>px, <double*>pw, <double*>pm,
                                  <double*>pr, <double*>pdx, <double*>pp, <double*>pdw,
                                  <double*>pdb, M, D)
        pshape = shape[len(shape) - self.k:]
        res = (wrap(dx),)
        if w is not None:
            res = res + (wrap(dw.reshape(pshape)),)
        if self.has_bias:
            res = res + (wrap(db.reshape(pshape)),)
        return res

    cdef tuple _recorded(self, TensorBase g, TensorBase x, TensorBase w):
        """The same rule in recorded ops (create_graph)."""
        nd = x._data.ndim
        dims = tuple(range(nd - self.k, nd))
        lead = tuple(range(nd - self.k))
        mu = x.mean(dims, True)
        xc = x - mu
        rstd = 1.0 / ((xc * xc).mean(dims, True) + self.eps).sqrt()
        xhat = xc * rstd
        gw = g * w if w is not None else g
        dx = rstd * (gw - gw.mean(dims, True) - xhat * (gw * xhat).mean(dims, True))
        res = (dx,)
        if w is not None:
            res = res + ((g * xhat).sum(lead) if lead else g * xhat,)
        if self.has_bias:
            res = res + (g.sum(lead) if lead else g,)
        return res

    cdef void release_variables(self):
        self.x.release()
        if self.w is not None:
            self.w.release()
        self.mean = self.rstd = None

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

from fastgrad._core.kernels cimport nthreads, team_run

from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.ops_arith cimport record_add

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef extern from "norm_rows.h" nogil:
    void fg_ln_fwd_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, Py_ssize_t M, Py_ssize_t D, double eps)
    void fg_ln_fwd_f64(const double* x, const double* w, const double* b, double* y,
                       double* mean, double* rstd, Py_ssize_t M, Py_ssize_t D, double eps)
    void fg_ln_bwd_f32(const float* g, const float* x, const float* w, const float* mean,
                       const float* rstd, float* dx, float* dw, float* db, Py_ssize_t M,
                       Py_ssize_t D)
    void fg_ln_bwd_f64(const double* g, const double* x, const double* w, const double* mean,
                       const double* rstd, double* dx, double* dw, double* db, Py_ssize_t M,
                       Py_ssize_t D)
    int fg_norm_rows_select(int want)

fg_norm_rows_select(2)


def rows_level(want=2):
    """Pick the row loops' instruction set (Note [Norm rows per instruction set]): at most
    `want` (2 AVX-512, 1 AVX2+FMA, 0 baseline); returns the level in use (for tests)."""
    return fg_norm_rows_select(int(want))


cdef inline void ln_fwd(const floating* x, const floating* w, const floating* b,  # IN
                        floating* y, floating* mean, floating* rstd,              # OUT
                        Py_ssize_t M, Py_ssize_t D, double eps) noexcept nogil:
    """y = (x - mean) rstd * w + b per row (norm_rows.h)."""
    if floating is float:
        fg_ln_fwd_f32(x, w, b, y, mean, rstd, M, D, eps)
    else:
        fg_ln_fwd_f64(x, w, b, y, mean, rstd, M, D, eps)


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
    cdef Py_ssize_t nblk = (M + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Blocks k
    if nthreads() > 1 and nblk > 1 and M * D >= PAR_ELEMS:
        k.x, k.w, k.b, k.y, k.mean, k.rstd, k.M, k.D, k.eps = x, w, b, y, mean, rstd, M, D, eps
        k.f32, k.add = floating is float, False
        team_run(_fwd_item, &k, nblk, nthreads())
    else:
        ln_fwd(x, w, b, y, mean, rstd, M, D, eps)


cdef void _fwd_item(void* ctx, Py_ssize_t blk, int slot) noexcept nogil:
    cdef const Blocks* k = <const Blocks*>ctx
    if k.f32:
        _fwd_block(k, <float*>NULL, blk)
    else:
        _fwd_block(k, <double*>NULL, blk)


cdef inline void _fwd_block(const Blocks* k, floating* tag, Py_ssize_t blk) noexcept nogil:
    cdef Py_ssize_t lo = blk * ROW_BLOCK, n = min(k.M - lo, <Py_ssize_t>ROW_BLOCK), D = k.D
    cdef floating* x = <floating*>k.x
    if k.add:
        add_rows(k.ra, k.rb, x, lo, lo + n, D)
    ln_fwd(x + lo * D, <const floating*>k.w, <const floating*>k.b, <floating*>k.y + lo * D,
           <floating*>k.mean + lo, <floating*>k.rstd + lo, n, D, k.eps)


# Note [Residual sum in the norm's pass]
# A transformer layer normalises a residual sum, norm(x + h). add_layer_norm makes the sum row by
# row in the norm's own pass (each row written to s, then normalised from cache by ln_fwd, the
# same additions in the same order as the add op and layer_norm one after the other), so s is
# read once instead of written by one pass and read back by the next, and the thread team forks
# once. h may be a view (the attention block's output is a transposed one): rows are addressed by
# two leading strides. The graph is the two ops' (AddBackward0 for s, then the norm's node).
ctypedef struct Rows:
    const char* p          # row (i0, i1) at p + i0 * s0 + i1 * s1 (bytes); each row contiguous
    Py_ssize_t s0, s1, n1


ctypedef struct Blocks:             # a row-block loop's operands, for its items
    const void* x               # the input (add_ln: the sum s, written by the item)
    const void* w
    const void* b
    void* y
    void* mean
    void* rstd
    const void* g               # backward: the output's gradient
    void* dx
    void* part
    Py_ssize_t M, D
    double eps
    bint f32, add
    Rows ra, rb                 # add_ln: the two summands


cdef void add_rows(Rows a, Rows b, floating* s, Py_ssize_t lo, Py_ssize_t hi,
                   Py_ssize_t D) noexcept nogil:
    """s[i] = a[i] + b[i] for rows lo..hi (s C-contiguous, D per row)."""
    cdef Py_ssize_t i, j
    cdef const floating* ar
    cdef const floating* br
    cdef floating* sr
    for i in range(lo, hi):
        ar = <const floating*>(a.p + (i // a.n1) * a.s0 + (i % a.n1) * a.s1)
        br = <const floating*>(b.p + (i // b.n1) * b.s0 + (i % b.n1) * b.s1)
        sr = s + i * D
        for j in range(D):
            sr[j] = ar[j] + br[j]


cdef void add_ln_fwd_blocks(Rows a, Rows b, floating* s, const floating* w, const floating* bias,
                            floating* y, floating* mean, floating* rstd, Py_ssize_t M,
                            Py_ssize_t D, double eps) noexcept nogil:
    """s = a + b, y = layer_norm(s), by row blocks (Note [Layer norm in row blocks])."""
    cdef Py_ssize_t nblk = (M + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Blocks k
    if nthreads() > 1 and nblk > 1 and M * D >= PAR_ELEMS:
        k.x, k.w, k.b, k.y, k.mean, k.rstd, k.M, k.D, k.eps = s, w, bias, y, mean, rstd, M, D, eps
        k.f32, k.add, k.ra, k.rb = floating is float, True, a, b
        team_run(_fwd_item, &k, nblk, nthreads())
    else:
        add_rows(a, b, s, 0, M, D)
        ln_fwd(s, w, bias, y, mean, rstd, M, D, eps)


cdef void ln_bwd_blocks(const floating* g, const floating* x, const floating* w,
                        const floating* mean, const floating* rstd, floating* dx,
                        floating* part, floating* dw, floating* db, Py_ssize_t M,
                        Py_ssize_t D) noexcept nogil:
    """ln_bwd by row blocks; part: zeroed (nblk, 2, D) partial sums; dw, db zeroed (D,)."""
    cdef Py_ssize_t blk, lo, j, nblk = (M + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Blocks k
    if nthreads() > 1 and nblk > 1 and M * D >= PAR_ELEMS:
        k.g, k.x, k.w, k.dx, k.part, k.M, k.D = g, x, w, dx, part, M, D
        k.mean, k.rstd = <void*>mean, <void*>rstd
        k.f32 = floating is float
        team_run(_bwd_item, &k, nblk, nthreads())
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


cdef void _bwd_item(void* ctx, Py_ssize_t blk, int slot) noexcept nogil:
    cdef const Blocks* k = <const Blocks*>ctx
    if k.f32:
        _bwd_block(k, <float*>NULL, blk)
    else:
        _bwd_block(k, <double*>NULL, blk)


cdef inline void _bwd_block(const Blocks* k, floating* tag, Py_ssize_t blk) noexcept nogil:
    cdef Py_ssize_t lo = blk * ROW_BLOCK, D = k.D
    cdef floating* part = <floating*>k.part
    ln_bwd(<const floating*>k.g + lo * D, <const floating*>k.x + lo * D, <const floating*>k.w,
           <const floating*>k.mean + lo, <const floating*>k.rstd + lo, <floating*>k.dx + lo * D,
           part + 2 * blk * D, part + (2 * blk + 1) * D, min(k.M - lo, <Py_ssize_t>ROW_BLOCK), D)


cdef inline void ln_bwd(const floating* g, const floating* x, const floating* w,   # IN
                        const floating* mean, const floating* rstd,                # IN
                        floating* dx, floating* dw, floating* db,                  # OUT
                        Py_ssize_t M, Py_ssize_t D) noexcept nogil:
    """dx per row; dw, db accumulated over rows (zeroed by the caller; norm_rows.h)."""
    if floating is float:
        fg_ln_bwd_f32(g, x, w, mean, rstd, dx, dw, db, M, D)
    else:
        fg_ln_bwd_f64(g, x, w, mean, rstd, dx, dw, db, M, D)


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
    those dims) of the same dtype, or None. The caller (F.layer_norm) checked the shapes: the
    loops read a whole row of each."""
    cdef TensorBase x = input, w = weight, b = bias
    xd = np.ascontiguousarray(x._data)
    y, mean, rstd = _forward(xd, NULL, NULL, k, w, b, eps)
    return _record(wrap(y), x, w, b, mean, rstd, k, eps)


cdef tuple _forward(cnp.ndarray x, Rows* ra, Rows* rb, int k, TensorBase w, TensorBase b,
                    double eps):
    """(y, mean, rstd) of the layer norm of x's rows (x C-contiguous, its last k dims a row),
    or, with ra and rb, of the rows of a + b, written into x in the same pass."""
    shape = (<object>x).shape
    cdef Py_ssize_t M, D
    M, D = _rows(shape, k)
    dt = x.dtype
    y = np.empty(shape, dtype=dt)
    mean = np.empty(M, dtype=dt)
    rstd = np.empty(M, dtype=dt)
    wd = np.ones(D, dtype=dt) if w is None else np.ascontiguousarray(w._data)
    bd = np.zeros(D, dtype=dt) if b is None else np.ascontiguousarray(b._data)
    cdef void* px = _ptr(x)
    cdef void* pw = _ptr(wd)
    cdef void* pb = _ptr(bd)
    cdef void* py = _ptr(y)
    cdef void* pm = _ptr(mean)
    cdef void* pr = _ptr(rstd)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    if D and M:
        with nogil:
            if f32 and ra == NULL:
                ln_fwd_blocks(<float*>px, <float*>pw, <float*>pb, <float*>py, <float*>pm,
                              <float*>pr, M, D, eps)
            elif ra == NULL:
                ln_fwd_blocks(<double*>px, <double*>pw, <double*>pb, <double*>py, <double*>pm,
                              <double*>pr, M, D, eps)
            elif f32:
                add_ln_fwd_blocks(ra[0], rb[0], <float*>px, <float*>pw, <float*>pb, <float*>py,
                                  <float*>pm, <float*>pr, M, D, eps)
            else:
                add_ln_fwd_blocks(ra[0], rb[0], <double*>px, <double*>pw, <double*>pb,
                                  <double*>py, <double*>pm, <double*>pr, M, D, eps)
    return y, mean, rstd


cdef object _record(TensorBase out, TensorBase x, TensorBase w, TensorBase b, object mean,
                    object rstd, int k, double eps):
    """out = layer_norm(x) recorded (NativeLayerNormBackward0) when a gradient is needed."""
    cdef NativeLayerNormBackward0 node
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


cdef bint _rows_of(cnp.ndarray a, int k, Rows* r):
    """r addressing a's rows (its last k dims, which must lie C-contiguous) through at most two
    leading dims; False when a is not laid out so."""
    cdef int nd = cnp.PyArray_NDIM(a), lead = nd - k, d
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a), step = isz
    if lead > 2 or lead < 0:
        return False
    r.p = <const char*>cnp.PyArray_DATA(a)
    r.s0 = r.s1 = 0
    r.n1 = 1
    if cnp.PyArray_SIZE(a) == 0:                  # nothing to address (NumPy's strides may be 0)
        return True
    for d in range(nd - 1, lead - 1, -1):         # the row itself: C order
        if cnp.PyArray_DIM(a, d) != 1 and cnp.PyArray_STRIDE(a, d) != step:
            return False
        step *= cnp.PyArray_DIM(a, d)
    if lead == 2:
        r.s0, r.s1, r.n1 = cnp.PyArray_STRIDE(a, 0), cnp.PyArray_STRIDE(a, 1), cnp.PyArray_DIM(a, 1)
    elif lead == 1:
        r.s0 = cnp.PyArray_STRIDE(a, 0)
    return True


cdef inline bint _param_fits(TensorBase p, int t, tuple shape):
    return p is None or (cnp.PyArray_TYPE(p._data) == t and (<object>p._data).shape == shape)


def add_layer_norm(x, h, int k, weight, bias, double eps):
    """layer_norm(x + h) over the last k dims with the sum made in the norm's pass (Note
    [Residual sum in the norm's pass]), recorded as the two ops; None when the operands are not
    of the kind the fused loop takes (x and h float32/float64 tensors of one shape and dtype, at
    most two leading dims, rows contiguous; weight and bias None or of that dtype and the rows'
    shape): the caller then composes the two ops."""
    if not isinstance(x, TensorBase) or not isinstance(h, TensorBase):
        return None
    cdef TensorBase a = x, b = h, w = weight, bt = bias
    cdef cnp.ndarray ad = a._data, bd = b._data
    cdef int t = cnp.PyArray_TYPE(ad)
    cdef Rows ra, rb
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or cnp.PyArray_TYPE(bd) != t or \
            (<object>ad).shape != (<object>bd).shape or k < 1 or k > ad.ndim or \
            not cnp.PyArray_ISNOTSWAPPED(ad) or not cnp.PyArray_ISNOTSWAPPED(bd) or \
            not _rows_of(ad, k, &ra) or not _rows_of(bd, k, &rb):
        return None
    shape = (<object>ad).shape
    pshape = shape[len(shape) - k:]
    if not (_param_fits(w, t, pshape) and _param_fits(bt, t, pshape)):
        return None
    s = np.empty(shape, dtype=ad.dtype)
    y, mean, rstd = _forward(s, &ra, &rb, k, w, bt, eps)
    cdef TensorBase st = wrap(s)
    record_add(st, a, b)
    return _record(wrap(y), st, w, bt, mean, rstd, k, eps)


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

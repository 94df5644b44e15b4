# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Convolutions (conv1d/2d, conv_transpose2d) and unfold/fold on im2col/col2im kernels (the loops
and the per-sample passes: conv_kernels.pyx).

Note [Convolution as per-sample products]
Everything is 2-D inside: a 1-D convolution is a 2-D one of height 1. A convolution with weight
(O, C/G, kh, kw) relates a "wide" side X (N, C, H, W) to a "narrow" side Y (N, O, OH, OW):
  forward          Y[n]  = W_g @ im2col(X[n])_g          (+ bias)
  input gradient   gX[n] = col2im(W_g^T @ gY[n]_g)
  weight gradient  gW_g += gY[n]_g @ im2col(X[n])_g^T
and a transposed convolution is the same pair read the other way round (its forward is the input
gradient above, its input gradient the forward). One pass over the batch runs one sample per
thread of fastgrad's team (taken dynamically: on a shared machine a busy partner core then
delays nothing), each thread doing
its sample's im2col into its own buffer and the sample's products as single-threaded sgemm/dgemm
calls (blas.gemm; OpenBLAS set to one thread, Note [Single-threaded BLAS for small products]), so
the column matrix is written and read while it is in that core's cache. Weight and bias gradients
are summed per block of samples (WEIGHT_BLOCKS equal blocks in sample order, whichever thread
runs them) and the blocks added in order, so the result does not depend on the thread count. With a stride, the forward keeps
its column matrices for the weight gradient when they are small enough (COLS_KEEP bytes),
sparing the backward a second im2col; the shifted rows of unit stride (Note [Shifted rows for
unit stride]) are cheap enough to copy again into the thread's cache-resident scratch, which
measured faster than writing them out and reading them back (W11: ~5-10%). Padding is split into a leading and a trailing amount per dim, so
padding="same" with an even kernel runs in the kernel too; the other padding modes pad with F.pad
first. Under create_graph the gradients are written with recorded unfold/fold and matmul, so they
are differentiable again. float32 unit-stride convolutions without groups run the forward and the
weight gradient in register tiles that read the shifted rows straight from the padded plane
(conv_tiles.h, Note [Convolution tiles]) where the CPU has AVX2+FMA.
"""
cimport numpy as cnp
from fastgrad._core.kernels cimport team_run

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport blas
from fastgrad._core.conv_kernels cimport (Geom, _pointwise, _shifted, _team, im2col, col2im,
                                          _scratch_len, cols_len, _narrow_pass, _wide_pass,
                                          _weight_pass)
from fastgrad._core.ops_matmul import matmul

cnp.import_array()

# Column matrices up to this many bytes (the whole batch) are kept from forward to backward.
cdef Py_ssize_t COLS_KEEP = 64 << 20
# The weight gradient is summed in this many blocks of samples (Note [Convolution as per-sample
# products]).
cdef Py_ssize_t WEIGHT_BLOCKS = 8


cdef Geom _geom(tuple t):
    cdef Geom g
    (g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW, g.G) = t
    return g


# --- array-level passes (checked shapes, C-contiguous float arrays of one dtype) -------------

cdef inline void* _p(cnp.ndarray a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(a)


cdef cnp.ndarray _c(object a):
    return np.ascontiguousarray(a)


cdef tuple narrow_fwd(cnp.ndarray x, cnp.ndarray w, object bias, Geom g, bint keep):
    """(y (N, O, OH, OW), cols or None): the convolution of x (N, C, H, W) with w."""
    cdef Py_ssize_t N = x.shape[0], O = w.shape[0], L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef int nt = _team(N, N * O * L * CK // g.G)
    cdef int prev
    cdef cnp.ndarray y, cols = None, scratch = None, b = None
    x, w = _c(x), _c(w)
    if bias is not None:
        b = np.ascontiguousarray(bias, x.dtype)
    y = np.empty((N, O, L), x.dtype)
    keep = keep and not _pointwise(&g) and not _shifted(&g) and \
        N * CK * cols_len(&g) * x.itemsize <= COLS_KEEP
    if keep:
        cols = np.empty((N, CK, cols_len(&g)), x.dtype)
    if not _pointwise(&g):
        scratch = np.empty((nt, _scratch_len(&g, O)), x.dtype)
    cdef void* p_cols = _p(cols)
    cdef void* p_scratch = _p(scratch)
    cdef void* p_w = _p(w)
    cdef void* p_x = _p(x)
    cdef void* p_y = _p(y)
    cdef void* p_b = _p(b)
    if N and L and O:
        with nogil:
            prev = blas.one_thread()
        if x.dtype == np.float32:
            with nogil:
                _narrow_pass[float](<float*>p_x, <float*>p_w, <float*>p_b, <float*>p_y,
                                    <float*>p_cols, keep, <float*>p_scratch, N, O, &g, nt)
        else:
            with nogil:
                _narrow_pass[double](<double*>p_x, <double*>p_w, <double*>p_b, <double*>p_y,
                                     <double*>p_cols, keep, <double*>p_scratch, N, O, &g, nt)
        with nogil:
            blas.restore(prev)
    return y.reshape(N, O, g.OH, g.OW), cols


cdef cnp.ndarray wide_fwd(cnp.ndarray gy, cnp.ndarray w, Geom g):
    """gx (N, C, H, W) = the transposed convolution of gy (N, O, OH, OW) with w."""
    cdef Py_ssize_t N = gy.shape[0], O = w.shape[0], L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef int nt = _team(N, N * O * L * CK // g.G)
    cdef int prev
    cdef cnp.ndarray gx = np.empty((N, g.C, g.H, g.W), gy.dtype), scratch = None
    gy = _c(gy)
    w = _c((<object>w).reshape(g.G, O // g.G, -1).transpose(0, 2, 1))
    if not _pointwise(&g):
        scratch = np.empty((nt, _scratch_len(&g, O)), gy.dtype)
    cdef void* p_gx = _p(gx)
    cdef void* p_gy = _p(gy)
    cdef void* p_scratch = _p(scratch)
    cdef void* p_w = _p(w)
    if gx.size == 0:
        return gx
    if L == 0 or O == 0:
        gx[...] = 0
        return gx
    with nogil:
        prev = blas.one_thread()
    if gy.dtype == np.float32:
        with nogil:
            _wide_pass[float](<float*>p_gy, <float*>p_w, <float*>p_gx, <float*>p_scratch,
                              N, O, &g, nt)
    else:
        with nogil:
            _wide_pass[double](<double*>p_gy, <double*>p_w, <double*>p_gx,
                               <double*>p_scratch, N, O, &g, nt)
    with nogil:
        blas.restore(prev)
    return gx


cdef tuple weight_grad(cnp.ndarray gy, cnp.ndarray x, object cols, tuple wshape, Geom g,
                       bint need_b):
    """(gw of shape wshape, gb (O,) or None) from gy (N, O, OH, OW) and the wide side x."""
    cdef Py_ssize_t N = gy.shape[0], O = wshape[0], L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef int nt = _team(N, N * O * L * CK // g.G)
    cdef int prev
    cdef cnp.ndarray gw, gb = None, scratch = None, cl = cols
    gy, x = _c(gy), _c(x)
    cdef Py_ssize_t nb = min(N, WEIGHT_BLOCKS)
    gw = np.zeros((max(nb, 1), O, CK // g.G), gy.dtype)
    if need_b:
        gb = np.zeros((max(nb, 1), O), gy.dtype)
    if (cols is None or _shifted(&g)) and not _pointwise(&g):
        scratch = np.empty((nt, _scratch_len(&g, O)), gy.dtype)
    cdef void* p_cl = _p(cl)
    cdef void* p_gb = _p(gb)
    cdef void* p_gw = _p(gw)
    cdef void* p_gy = _p(gy)
    cdef void* p_scratch = _p(scratch)
    cdef void* p_x = _p(x)
    if N and L and O:
        with nogil:
            prev = blas.one_thread()
        if gy.dtype == np.float32:
            with nogil:
                _weight_pass[float](<float*>p_gy, <float*>p_x, <float*>p_cl, <float*>p_gw,
                                    <float*>p_gb, <float*>p_scratch, N, O, &g, nt, nb)
        else:
            with nogil:
                _weight_pass[double](<double*>p_gy, <double*>p_x, <double*>p_cl,
                                     <double*>p_gw, <double*>p_gb, <double*>p_scratch, N,
                                     O, &g, nt, nb)
        with nogil:
            blas.restore(prev)
    rw = gw[0] if nb <= 1 else np.add.reduce(gw, 0)
    rb = None if gb is None else (gb[0] if nb <= 1 else np.add.reduce(gb, 0))
    return rw.reshape(wshape), rb


cdef cnp.ndarray unfold_arr(cnp.ndarray x, Geom g):
    """(N, C*kh*kw, OH*OW) column matrices of x (N, C, H, W)."""
    cdef Py_ssize_t N = x.shape[0], L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef cnp.ndarray out = np.empty((N, CK, L), x.dtype)
    x = _c(x)
    if out.size == 0:
        return out
    _samples(x, out, &g, False, _team(N, N * CK * L * 8))
    return out


cdef cnp.ndarray fold_arr(cnp.ndarray cols, Geom g):
    """(N, C, H, W): the column matrices cols (N, C*kh*kw, OH*OW) summed back onto the pixels."""
    cdef Py_ssize_t N = cols.shape[0], L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef cnp.ndarray out = np.zeros((N, g.C, g.H, g.W), cols.dtype)
    cols = _c(cols)
    if out.size == 0 or cols.size == 0:
        return out
    _samples(cols, out, &g, True, _team(N, N * CK * L * 8))
    return out


ctypedef struct Samples:            # unfold_arr's or fold_arr's loop, one sample per item
    const char* src
    char* dst
    const Geom* g
    Py_ssize_t isz
    bint fold


cdef void _samples(cnp.ndarray src, cnp.ndarray dst, const Geom* g, bint fold, int nt):
    cdef Samples w
    w.src, w.dst, w.g, w.isz, w.fold = <const char*>_p(src), <char*>_p(dst), g, src.itemsize, fold
    with nogil:
        team_run(_sample_item, &w, src.shape[0], nt)


cdef void _sample_item(void* ctx, Py_ssize_t n, int slot) noexcept nogil:
    cdef const Samples* w = <const Samples*>ctx
    cdef const Geom* g = w.g
    cdef Py_ssize_t img = g.C * g.H * g.W * w.isz, col = g.C * g.kh * g.kw * g.OH * g.OW * w.isz
    if w.fold and w.isz == 4:
        col2im[float](<float*>(w.src + n * col), <float*>(w.dst + n * img), g)
    elif w.fold:
        col2im[double](<double*>(w.src + n * col), <double*>(w.dst + n * img), g)
    elif w.isz == 4:
        im2col[float](<float*>(w.src + n * img), <float*>(w.dst + n * col), g)
    else:
        im2col[double](<double*>(w.src + n * img), <double*>(w.dst + n * col), g)


# --- recorded ops ------------------------------------------------------------------------------

def conv(TensorBase x, TensorBase w, TensorBase b, tuple geom, bint transposed, tuple out_hw):
    """The convolution (transposed: its transpose) of a 4-D x with a 4-D w, arguments checked
    by the caller (nn/conv_functional.py). geom: (C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH,
    OW, G) for the wide side; out_hw unused except for the transposed output's (H, W)."""
    cdef Geom g = _geom(geom)
    cdef cnp.ndarray y, cols = None
    cdef bint need_w = grad_enabled() and w._requires_grad
    cdef ConvolutionBackward0 node
    if transposed:
        y = wide_fwd(x._data, w._data, g)
        if b is not None:
            y += b._data.reshape(1, -1, 1, 1)
    else:
        y, cols = narrow_fwd(x._data, w._data, None if b is None else b._data, g, need_w)
    cdef TensorBase out = wrap(y)
    if grad_enabled() and (x._requires_grad or w._requires_grad or
                           (b is not None and b._requires_grad)):
        node = ConvolutionBackward0.__new__(ConvolutionBackward0)
        node.geom = geom
        node.transposed = transposed
        node.has_bias = b is not None
        node.wshape = (<object>w._data).shape
        if w._requires_grad:
            node.x = save(x, False)
        node.w = save(w, False)
        node.cols = cols
        set_history(out, node, (x, w, b))
    return out


cdef class ConvolutionBackward0(Node):
    """Gradients of conv (Note [Convolution as per-sample products])."""
    cdef SavedVar x, w
    cdef object cols
    cdef tuple geom, wshape
    cdef bint transposed, has_bias

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        cdef TensorBase x = None, w = self.w.unpack(self)
        cdef Geom geo = _geom(self.geom)
        cdef bint nx = self.needs_input_grad(0), nw = self.needs_input_grad(1)
        cdef bint nb = self.has_bias and self.needs_input_grad(2)
        if self.x is not None:
            x = self.x.unpack(self)
        if grad_enabled():
            return _conv_bwd_recorded(g, x, w, self.geom, self.transposed, nx, nw, nb)
        gd = _c(g._data)
        gx = gw = gb = None
        if self.transposed:          # y = wide(x): gx = narrow(gy), gw from (x as gy, gy as wide)
            if nx:
                gx = wrap(narrow_fwd(gd, w._data, None, geo, False)[0])
            if nw and x is not None:
                gw = wrap(weight_grad(x._data, gd, None, self.wshape, geo, False)[0])
            if nb:
                gb = wrap(gd.sum((0, 2, 3)))
        else:
            if nx:
                gx = wrap(wide_fwd(gd, w._data, geo))
            if nw and x is not None:
                rw, rb = weight_grad(gd, x._data, self.cols, self.wshape, geo, nb)
                gw = wrap(rw)
                gb = wrap(rb) if nb else None
            elif nb:
                gb = wrap(gd.sum((0, 2, 3)))
        return (gx, gw, gb)

    cdef bint needs_input_grad(self, int i):
        return self._next_fns is not None and self._next_fns[i] is not None

    cdef void release_variables(self):
        if self.x is not None:
            self.x.release()
        self.w.release()
        self.cols = None


cdef tuple _conv_bwd_recorded(TensorBase g, TensorBase x, TensorBase w, tuple geom,
                              bint transposed, bint nx, bint nw, bint nb):
    """The gradients as recorded ops (create_graph): unfold/fold and batched matmul."""
    G = geom[13]
    wshape = (<object>w._data).shape
    O = wshape[0]
    CKg = wshape[1] * wshape[2] * wshape[3]
    wg = w.reshape(G, O // G, CKg)
    gx = gw = gb = None
    # narrow side (N, O, L) and wide side's column matrices (N, G, CKg, L)
    narrow, wide = (x, g) if transposed else (g, x)
    N = (<object>narrow._data).shape[0]
    nar = narrow.reshape(N, G, O // G, -1)
    if nx:
        if transposed:               # gx = narrow conv of g: W_g @ unfold(g)
            cg = unfold(g, geom).reshape(N, G, CKg, -1)
            gx = matmul(wg, cg).reshape((<object>x._data).shape)
        else:                        # gx = fold(W_g^T @ g)
            gx = fold(matmul(wg.transpose(1, 2), nar).reshape(N, G * CKg, -1), geom)
    if nw and wide is not None:
        cw = unfold(wide, geom).reshape(N, G, CKg, -1)
        gw = matmul(nar, cw.transpose(2, 3)).sum(0).reshape(wshape)
    if nb:
        gb = g.sum((0, 2, 3))
    return (gx, gw, gb)


def unfold(TensorBase x, tuple geom):
    """(N, C*kh*kw, L) column matrices of 4-D x; geom as for conv."""
    cdef Geom g = _geom(geom)
    cdef TensorBase out = wrap(unfold_arr(x._data, g))
    cdef Im2ColBackward0 node
    if grad_enabled() and x._requires_grad:
        node = Im2ColBackward0.__new__(Im2ColBackward0)
        node.geom = geom
        set_history(out, node, (x,))
    return out


def fold(TensorBase cols, tuple geom):
    """(N, C, H, W): 3-D column matrices summed back onto the pixels; geom as for conv."""
    cdef Geom g = _geom(geom)
    cdef TensorBase out = wrap(fold_arr(cols._data, g))
    cdef Col2ImBackward0 node
    if grad_enabled() and cols._requires_grad:
        node = Col2ImBackward0.__new__(Col2ImBackward0)
        node.geom = geom
        set_history(out, node, (cols,))
    return out


cdef class Im2ColBackward0(Node):
    cdef tuple geom

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        if grad_enabled():
            return (fold(g, self.geom),)
        return (wrap(fold_arr(g._data, _geom(self.geom))),)


cdef class Col2ImBackward0(Node):
    cdef tuple geom

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        if grad_enabled():
            return (unfold(g, self.geom),)
        return (wrap(unfold_arr(g._data, _geom(self.geom))),)


def _set_cols_keep(Py_ssize_t n):
    """Set the byte limit for keeping column matrices; returns the old one (for tests)."""
    global COLS_KEEP
    old = COLS_KEEP
    COLS_KEEP = n
    return old

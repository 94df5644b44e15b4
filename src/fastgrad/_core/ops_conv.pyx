# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Convolutions (conv1d/2d, conv_transpose2d) and unfold/fold on im2col/col2im kernels.

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
are differentiable again.
"""
cimport numpy as cnp
from libc.string cimport memset, memcpy
from cython cimport floating
from cython.parallel cimport prange, threadid
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, SavedVar, wrap, save, set_history
from fastgrad._core.kernels cimport nthreads
from fastgrad._core cimport blas
from fastgrad._core.ops_matmul import matmul

cnp.import_array()

# Column matrices up to this many bytes (the whole batch) are kept from forward to backward.
cdef Py_ssize_t COLS_KEEP = 64 << 20
# The weight gradient is summed in this many blocks of samples (Note [Convolution as per-sample
# products]).
cdef Py_ssize_t WEIGHT_BLOCKS = 8
# Multiply-adds up to which an NT product (A @ B^T) runs unpacked in OpenBLAS (measured).
cdef Py_ssize_t SMALL_NT_MACS = 1 << 18


ctypedef struct Geom:
    Py_ssize_t C, H, W            # wide side, per sample
    Py_ssize_t kh, kw, sh, sw, ph, pw, dh, dw   # kernel, stride, leading padding, dilation
    Py_ssize_t OH, OW             # narrow side
    Py_ssize_t G                  # groups


cdef Geom _geom(tuple t):
    cdef Geom g
    (g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW, g.G) = t
    return g


cdef inline bint _pointwise(const Geom* g) noexcept nogil:
    """A 1x1 kernel with unit stride and no padding: the column matrix is the sample itself."""
    return g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0 and g.pw == 0 \
        and g.OH == g.H and g.OW == g.W


cdef inline void _span(Py_ssize_t off, Py_ssize_t s, Py_ssize_t size, Py_ssize_t nout,
                       Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Outputs o in [lo, hi) read inside 0 <= o*s + off < size."""
    cdef Py_ssize_t a = 0 if off >= 0 else (-off + s - 1) // s
    cdef Py_ssize_t b = 0 if size - off <= 0 else (size - off + s - 1) // s
    if a > nout:
        a = nout
    if b > nout:
        b = nout
    if b < a:
        b = a
    lo[0], hi[0] = a, b


cdef void im2col(const floating* x, floating* col, const Geom* g) noexcept nogil:
    """col (C*kh*kw, OH*OW) from one sample x (C, H, W); padding reads as zero."""
    cdef Py_ssize_t c, ki, kj, oh, ow, ih, off, lo, hi, L = g.OH * g.OW
    cdef floating* r
    cdef const floating* xr
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                off = kj * g.dw - g.pw
                _span(off, g.sw, g.W, g.OW, &lo, &hi)
                r = col + ((c * g.kh + ki) * g.kw + kj) * L
                for oh in range(g.OH):
                    ih = oh * g.sh - g.ph + ki * g.dh
                    if ih < 0 or ih >= g.H:
                        for ow in range(g.OW):
                            r[ow] = 0
                    else:
                        xr = x + (c * g.H + ih) * g.W + off
                        for ow in range(lo):
                            r[ow] = 0
                        if g.sw == 1:          # rows are short (10-30): a loop, not memcpy calls
                            for ow in range(lo, hi):
                                r[ow] = xr[ow]
                        else:
                            for ow in range(lo, hi):
                                r[ow] = xr[ow * g.sw]
                        for ow in range(hi, g.OW):
                            r[ow] = 0
                    r += g.OW


cdef void col2im(const floating* col, floating* x, const Geom* g) noexcept nogil:
    """x (C, H, W) += the column matrix col (C*kh*kw, OH*OW) summed back onto the pixels it read."""
    cdef Py_ssize_t c, ki, kj, oh, ow, ih, off, lo, hi, L = g.OH * g.OW
    cdef const floating* r
    cdef floating* xr
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                off = kj * g.dw - g.pw
                _span(off, g.sw, g.W, g.OW, &lo, &hi)
                r = col + ((c * g.kh + ki) * g.kw + kj) * L
                for oh in range(g.OH):
                    ih = oh * g.sh - g.ph + ki * g.dh
                    if ih >= 0 and ih < g.H:
                        xr = x + (c * g.H + ih) * g.W + off
                        if g.sw == 1:
                            for ow in range(lo, hi):
                                xr[ow] += r[ow]
                        else:
                            for ow in range(lo, hi):
                                xr[ow * g.sw] += r[ow]
                    r += g.OW


# Note [Shifted rows for unit stride]
# With stride 1 the row (c, ki, kj) of the column matrix is the plane of channel c read from
# offset (ki*dh, kj*dw), OH rows of OW. Laid over a plane padded to Hp x Wp (Hp = OH + (kh-1)*dh,
# Wp likewise), those rows are one contiguous run of Lw = (OH-1)*Wp + OW elements that also
# crosses the Wp - OW columns between output rows. So the "wide" column matrix (CK, Lw) is CK
# plain copies (instead of CK*OH short ones: at LeNet's second layer, rows of 10 elements, that
# made im2col cost more than the product), the product gives a wide output (O, Lw) whose
# between-row columns are dropped, and the backward widens the output gradient with zeros there,
# so those columns add nothing to either gradient; col2im becomes CK contiguous additions.

cdef inline bint _shifted(const Geom* g) noexcept nogil:
    return g.sh == 1 and g.sw == 1 and not _pointwise(g)


cdef inline void _shift_dims(const Geom* g, Py_ssize_t* Hp, Py_ssize_t* Wp,
                             Py_ssize_t* Lw) noexcept nogil:
    Hp[0] = g.OH + (g.kh - 1) * g.dh
    Wp[0] = g.OW + (g.kw - 1) * g.dw
    Lw[0] = (g.OH - 1) * Wp[0] + g.OW


cdef inline bint _needs_pad(const Geom* g, Py_ssize_t Hp, Py_ssize_t Wp) noexcept nogil:
    return g.ph != 0 or g.pw != 0 or Hp != g.H or Wp != g.W


cdef Py_ssize_t _scratch_len(const Geom* g, Py_ssize_t O) noexcept nogil:
    """Elements of one thread's scratch: im2col's column matrix, or for the shifted rows a padded
    plane, a wide column matrix and a wide output."""
    cdef Py_ssize_t Hp, Wp, Lw, CK = g.C * g.kh * g.kw
    if not _shifted(g):
        return CK * g.OH * g.OW
    _shift_dims(g, &Hp, &Wp, &Lw)
    return g.C * Hp * Wp + CK * Lw + O * Lw + O * CK // g.G


cdef Py_ssize_t cols_len(const Geom* g) noexcept nogil:
    """Columns of one sample's column matrix as kept from forward to backward."""
    cdef Py_ssize_t Hp, Wp, Lw
    if not _shifted(g):
        return g.OH * g.OW
    _shift_dims(g, &Hp, &Wp, &Lw)
    return Lw


cdef void _pad_into(const floating* x, floating* xp, const Geom* g, Py_ssize_t Hp,
                    Py_ssize_t Wp) noexcept nogil:
    """xp (C, Hp, Wp): x (C, H, W) placed at (ph, pw), zeros around (and x cropped to Hp x Wp)."""
    cdef Py_ssize_t c, hp, wp, ih, iw
    cdef floating* r
    for c in range(g.C):
        for hp in range(Hp):
            r = xp + (c * Hp + hp) * Wp
            ih = hp - g.ph
            if ih < 0 or ih >= g.H:
                for wp in range(Wp):
                    r[wp] = 0
            else:
                for wp in range(Wp):
                    iw = wp - g.pw
                    r[wp] = x[(c * g.H + ih) * g.W + iw] if 0 <= iw < g.W else 0


cdef void _crop_from(const floating* xp, floating* x, const Geom* g, Py_ssize_t Hp,
                     Py_ssize_t Wp) noexcept nogil:
    """x (C, H, W) = the padded plane's interior (zero where the padded plane does not reach)."""
    cdef Py_ssize_t c, ih, iw, hp, wp
    for c in range(g.C):
        for ih in range(g.H):
            hp = ih + g.ph
            for iw in range(g.W):
                wp = iw + g.pw
                x[(c * g.H + ih) * g.W + iw] = xp[(c * Hp + hp) * Wp + wp] \
                    if hp < Hp and wp < Wp else 0


cdef void _shift_cols(const floating* xp, floating* col, const Geom* g, Py_ssize_t Hp,
                      Py_ssize_t Wp, Py_ssize_t Lw) noexcept nogil:
    cdef Py_ssize_t c, ki, kj, l
    cdef const floating* src
    cdef floating* dst = col
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                src = xp + (c * Hp + ki * g.dh) * Wp + kj * g.dw
                memcpy(dst, src, Lw * sizeof(floating))
                dst += Lw


cdef void _unshift_cols(const floating* col, floating* xp, const Geom* g, Py_ssize_t Hp,
                        Py_ssize_t Wp, Py_ssize_t Lw) noexcept nogil:
    """xp (C, Hp, Wp) += the wide column matrix's rows at their offsets (xp zeroed by caller)."""
    cdef Py_ssize_t c, ki, kj, l
    cdef const floating* src = col
    cdef floating* dst
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                dst = xp + (c * Hp + ki * g.dh) * Wp + kj * g.dw
                for l in range(Lw):
                    dst[l] += src[l]
                src += Lw


cdef void _widen(const floating* gy, floating* gyw, Py_ssize_t O, const Geom* g, Py_ssize_t Wp,
                 Py_ssize_t Lw) noexcept nogil:
    """gyw (O, Lw): gy (O, OH, OW) with zeros in the columns between output rows."""
    cdef Py_ssize_t o, oh, ow
    cdef floating* r
    cdef const floating* src
    for o in range(O):
        for oh in range(g.OH):
            r = gyw + o * Lw + oh * Wp
            src = gy + (o * g.OH + oh) * g.OW
            for ow in range(g.OW):
                r[ow] = src[ow]
            if oh < g.OH - 1:
                for ow in range(g.OW, Wp):
                    r[ow] = 0


cdef void _widen_t(const floating* gy, floating* gyt, Py_ssize_t O, const Geom* g,
                   Py_ssize_t Wp, Py_ssize_t Lw) noexcept nogil:
    """gyt (Lw, O): _widen's matrix transposed."""
    cdef Py_ssize_t o, oh, ow, l
    for l in range(Lw * O):
        gyt[l] = 0
    for o in range(O):
        for oh in range(g.OH):
            for ow in range(g.OW):
                gyt[(oh * Wp + ow) * O + o] = gy[(o * g.OH + oh) * g.OW + ow]


cdef void _shift_cols_of(const floating* x, floating* cp, floating* pad, const Geom* g,
                         Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t Lw) noexcept nogil:
    """One sample's wide column matrix, through the padded plane when there is padding."""
    if _needs_pad(g, Hp, Wp):
        _pad_into(x, pad, g, Hp, Wp)
        _shift_cols(pad, cp, g, Hp, Wp, Lw)
    else:
        _shift_cols(x, cp, g, Hp, Wp, Lw)


cdef void _shift_fwd(const floating* x, const floating* w, floating* y, floating* cp,
                     floating* scr, Py_ssize_t O, const Geom* g) noexcept nogil:
    """y (O, OH, OW) += the convolution of one sample x, through the wide column matrix cp (kept
    by the caller, or in scr); scr: the thread's scratch."""
    cdef Py_ssize_t Hp, Wp, Lw, grp, o, oh, ow, CK = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef floating* pad = scr
    cdef floating* yw = scr + g.C * Hp * Wp + CK * Lw
    cdef floating* yr
    cdef const floating* src
    if cp == NULL:
        cp = scr + g.C * Hp * Wp
    _shift_cols_of(x, cp, pad, g, Hp, Wp, Lw)
    for grp in range(g.G):
        blas.gemm(floating is float, False, False, Og, Lw, CKg, w + grp * Og * CKg, CKg,
                  cp + grp * CKg * Lw, Lw, 0.0, yw + grp * Og * Lw, Lw)
    for o in range(O):
        for oh in range(g.OH):
            yr = y + (o * g.OH + oh) * g.OW
            src = yw + o * Lw + oh * Wp
            for ow in range(g.OW):
                yr[ow] += src[ow]


cdef void _shift_bwd_input(const floating* gy, const floating* wt, floating* gx, floating* scr,
                           Py_ssize_t O, const Geom* g) noexcept nogil:
    """gx (C, H, W) = the input gradient of one sample from its output gradient gy; wt: the
    weight transposed per group, (G, CKg, Og)."""
    cdef Py_ssize_t Hp, Wp, Lw, grp, CK = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef bint padded = _needs_pad(g, Hp, Wp)
    cdef floating* pad = scr
    cdef floating* gcw = scr + g.C * Hp * Wp
    cdef floating* gyw = gcw + CK * Lw
    cdef floating* tgt = pad if padded else gx
    _widen(gy, gyw, O, g, Wp, Lw)
    for grp in range(g.G):
        blas.gemm(floating is float, False, False, CKg, Lw, Og, wt + grp * Og * CKg, Og,
                  gyw + grp * Og * Lw, Lw, 0.0, gcw + grp * CKg * Lw, Lw)
    memset(tgt, 0, g.C * Hp * Wp * sizeof(floating))
    _unshift_cols(gcw, tgt, g, Hp, Wp, Lw)
    if padded:
        _crop_from(pad, gx, g, Hp, Wp)


cdef void _shift_bwd_weight(const floating* gy, const floating* x, const floating* cp,
                            floating* gwb, floating* scr, Py_ssize_t O,
                            const Geom* g) noexcept nogil:
    """gwb (O, CKg) += one sample's weight gradient (cp: its kept wide columns, or NULL)."""
    cdef Py_ssize_t Hp, Wp, Lw, grp, CK = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef floating* gyw = scr + g.C * Hp * Wp + CK * Lw
    cdef floating* cols
    if cp == NULL:
        cols = scr + g.C * Hp * Wp
        _shift_cols_of(x, cols, scr, g, Hp, Wp, Lw)
        cp = cols
    cdef floating* tmp = gyw + O * Lw
    cdef Py_ssize_t i, k, o
    # Products written with beta = 0 into tmp, then added: OpenBLAS runs small products on its
    # unpacked small-matrix kernels only for beta = 0. Above SMALL_NT_MACS the NT product is
    # packed anyway (LeNet's second layer: 13 us a sample) while the NN product of the
    # transposed operands is not (6 us): gW^T = cols @ gy^T, with gy widened transposed.
    if Og * CKg * Lw <= SMALL_NT_MACS:
        _widen(gy, gyw, O, g, Wp, Lw)
        for grp in range(g.G):
            blas.gemm(floating is float, False, True, Og, CKg, Lw, gyw + grp * Og * Lw, Lw,
                      cp + grp * CKg * Lw, Lw, 0.0, tmp + grp * Og * CKg, CKg)
        for i in range(O * CKg):
            gwb[i] += tmp[i]
    else:
        _widen_t(gy, gyw, O, g, Wp, Lw)
        for grp in range(g.G):
            blas.gemm(floating is float, False, False, CKg, Og, Lw, cp + grp * CKg * Lw, Lw,
                      gyw + grp * Og, O, 0.0, tmp, Og)
            for k in range(CKg):
                for o in range(Og):
                    gwb[(grp * Og + o) * CKg + k] += tmp[k * Og + o]


cdef inline int _team(Py_ssize_t n, Py_ssize_t work) noexcept nogil:
    """Threads for a pass over n samples of `work` multiply-adds in all: one below ~1M."""
    cdef int nt = nthreads()
    if work < (1 << 20) or n < 2:
        return 1
    return nt if nt < n else <int>n


cdef void _narrow_pass(const floating* x, const floating* w, floating* y, floating* cols,
                       bint keep, floating* scratch, Py_ssize_t N, Py_ssize_t O,
                       const Geom* g, int nt) noexcept nogil:
    """y[n] (O, L) = W_g @ im2col(x[n])_g (+ y[n] already there: beta 1) for every sample; the
    column matrices go to cols[n] (keep) or to the thread's scratch."""
    cdef Py_ssize_t n, grp, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef bint direct = _pointwise(g)
    cdef const floating* cp
    cdef floating* buf
    cdef bint shifted = _shifted(g)
    cdef Py_ssize_t S = _scratch_len(g, O), CL = cols_len(g)
    for n in prange(N, schedule="dynamic", num_threads=nt):
        if shifted:
            _shift_fwd(x + n * g.C * g.H * g.W, w, y + n * O * L,
                       cols + n * CK * CL if keep else NULL, scratch + threadid() * S, O, g)
            continue
        if direct:
            cp = x + n * g.C * g.H * g.W
        else:
            buf = cols + n * CK * L if keep else scratch + threadid() * S
            im2col(x + n * g.C * g.H * g.W, buf, g)
            cp = buf
        for grp in range(g.G):
            blas.gemm(floating is float, False, False, Og, L, CKg, w + grp * Og * CKg, CKg,
                      cp + grp * CKg * L, L, 1.0, y + (n * O + grp * Og) * L, L)


cdef void _wide_pass(const floating* gy, const floating* wt, floating* gx, floating* scratch,
                     Py_ssize_t N, Py_ssize_t O, const Geom* g, int nt) noexcept nogil:
    """gx[n] (C, H, W) = col2im(W_g^T @ gy[n]_g) for every sample (gx zeroed here); wt: the
    weight transposed per group, (G, CKg, Og), so that the products are NoTrans (OpenBLAS's
    small-matrix kernels; a transposed A is packed first, ~1.5x the time here)."""
    cdef Py_ssize_t n, grp, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G, HW = g.C * g.H * g.W
    cdef bint direct = _pointwise(g)
    cdef floating* buf
    cdef bint shifted = _shifted(g)
    cdef Py_ssize_t S = _scratch_len(g, O)
    for n in prange(N, schedule="dynamic", num_threads=nt):
        if shifted:
            _shift_bwd_input(gy + n * O * L, wt, gx + n * HW, scratch + threadid() * S, O, g)
            continue
        buf = gx + n * HW if direct else scratch + threadid() * S
        for grp in range(g.G):
            blas.gemm(floating is float, False, False, CKg, L, Og, wt + grp * Og * CKg, Og,
                      gy + (n * O + grp * Og) * L, L, 0.0, buf + grp * CKg * L, L)
        if not direct:
            memset(gx + n * HW, 0, HW * sizeof(floating))
            col2im(buf, gx + n * HW, g)


cdef void _weight_pass(const floating* gy, const floating* x, const floating* cols,
                       floating* gw, floating* gb, floating* scratch, Py_ssize_t N,
                       Py_ssize_t O, const Geom* g, int nt, Py_ssize_t nb) noexcept nogil:
    """Per block b of samples (nb equal blocks, in sample order): gw[b] (O, CKg) = sum of
    gy[n]_g @ im2col(x[n])_g^T, gb[b] (O,) = sum of gy[n]'s rows (gb NULL: no bias); gw and gb
    zeroed by the caller, who adds the blocks in order. The blocks do not depend on the thread
    count, so neither do the sums, while threads take blocks as they come free. cols: the
    forward's column matrices, or NULL (im2col again into the thread's scratch)."""
    cdef Py_ssize_t b
    for b in prange(nb, schedule="dynamic", num_threads=nt):
        _weight_block(gy, x, cols, gw + b * O * (g.C * g.kh * g.kw // g.G),
                      NULL if gb == NULL else gb + b * O,
                      scratch + threadid() * _scratch_len(g, O),
                      b * N // nb, (b + 1) * N // nb, O, g)


cdef void _weight_block(const floating* gy, const floating* x, const floating* cols,
                        floating* gwb, floating* gbb, floating* buf, Py_ssize_t lo,
                        Py_ssize_t hi, Py_ssize_t O, const Geom* g) noexcept nogil:
    cdef Py_ssize_t n, grp, o, l, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef bint direct = _pointwise(g)
    cdef const floating* cp
    cdef const floating* gr
    cdef double s
    cdef bint shifted = _shifted(g)
    cdef Py_ssize_t CL = cols_len(g)
    for n in range(lo, hi):
        if shifted:
            _shift_bwd_weight(gy + n * O * L, x + n * g.C * g.H * g.W,
                              NULL if cols == NULL else cols + n * CK * CL, gwb, buf, O, g)
        elif direct:
            cp = x + n * g.C * g.H * g.W
        elif cols != NULL:
            cp = cols + n * CK * L
        else:
            im2col(x + n * g.C * g.H * g.W, buf, g)
            cp = buf
        if not shifted:
            for grp in range(g.G):
                blas.gemm(floating is float, False, True, Og, CKg, L, gy + (n * O + grp * Og) * L,
                          L, cp + grp * CKg * L, L, 1.0, gwb + grp * Og * CKg, CKg)
        if gbb != NULL:
            for o in range(O):
                gr = gy + (n * O + o) * L
                s = 0
                for l in range(L):
                    s += gr[l]
                gbb[o] += <floating>s


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
    cdef cnp.ndarray y, cols = None, scratch = None
    x, w = _c(x), _c(w)
    if bias is not None:
        y = np.empty((N, O, L), x.dtype)
        y[...] = (<cnp.ndarray>bias).reshape(1, O, 1)
    else:
        y = np.zeros((N, O, L), x.dtype)
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
    if N and L and O:
        with nogil:
            prev = blas.one_thread()
        if x.dtype == np.float32:
            with nogil:
                _narrow_pass[float](<float*>p_x, <float*>p_w, <float*>p_y, <float*>p_cols,
                                    keep, <float*>p_scratch, N, O, &g, nt)
        else:
            with nogil:
                _narrow_pass[double](<double*>p_x, <double*>p_w, <double*>p_y,
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
    cdef Py_ssize_t N = x.shape[0], n, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef int nt = _team(N, N * CK * L * 8)
    cdef cnp.ndarray out = np.empty((N, CK, L), x.dtype)
    x = _c(x)
    cdef char* xp = <char*>_p(x)
    cdef char* op = <char*>_p(out)
    cdef Py_ssize_t isz = x.itemsize
    if out.size == 0:
        return out
    if x.dtype == np.float32:
        for n in prange(N, nogil=True, schedule="static", num_threads=nt):
            im2col[float](<float*>(xp + n * g.C * g.H * g.W * isz), <float*>(op + n * CK * L * isz), &g)
    else:
        for n in prange(N, nogil=True, schedule="static", num_threads=nt):
            im2col[double](<double*>(xp + n * g.C * g.H * g.W * isz),
                           <double*>(op + n * CK * L * isz), &g)
    return out


cdef cnp.ndarray fold_arr(cnp.ndarray cols, Geom g):
    """(N, C, H, W): the column matrices cols (N, C*kh*kw, OH*OW) summed back onto the pixels."""
    cdef Py_ssize_t N = cols.shape[0], n, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef int nt = _team(N, N * CK * L * 8)
    cdef cnp.ndarray out = np.zeros((N, g.C, g.H, g.W), cols.dtype)
    cols = _c(cols)
    cdef char* cp = <char*>_p(cols)
    cdef char* op = <char*>_p(out)
    cdef Py_ssize_t isz = cols.itemsize
    if out.size == 0 or cols.size == 0:
        return out
    if cols.dtype == np.float32:
        for n in prange(N, nogil=True, schedule="static", num_threads=nt):
            col2im[float](<float*>(cp + n * CK * L * isz), <float*>(op + n * g.C * g.H * g.W * isz), &g)
    else:
        for n in prange(N, nogil=True, schedule="static", num_threads=nt):
            col2im[double](<double*>(cp + n * CK * L * isz),
                           <double*>(op + n * g.C * g.H * g.W * isz), &g)
    return out


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

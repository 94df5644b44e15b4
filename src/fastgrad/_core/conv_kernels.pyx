# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The convolution loops: im2col/col2im, the shifted rows for unit stride (Note [Shifted rows for
unit stride]) and the passes over a batch that ops_conv.pyx drives (Note [Convolution as
per-sample products] there): one sample per thread of fastgrad's team, its products as
single-threaded sgemm/dgemm calls (blas.gemm). Raw pointers, nogil, no Python objects."""
from libc.string cimport memset, memcpy
from libc.stdlib cimport malloc, free
from cython cimport floating
from fastgrad._core.kernels cimport team_run

from fastgrad._core cimport blas

cdef extern from "conv_tiles.h" nogil:
    int fg_ct_ok(int force)
    int fg_ct_lanes()
    void fg_ct_fwd(const float* xp, const Py_ssize_t* off, Py_ssize_t K, const float* w,
                   Py_ssize_t O, float* yw, Py_ssize_t LwR)
    void fg_ct_wgrad(const float* xp, const Py_ssize_t* off, Py_ssize_t K, const float* gw,
                     Py_ssize_t O, Py_ssize_t LwR, float* dw)
    void fg_ct_row_sums(const float* g, Py_ssize_t O, Py_ssize_t n, float* s)
    void fg_ct_crop(const float* yw, Py_ssize_t LwR, Py_ssize_t O, Py_ssize_t OH, Py_ssize_t OW,
                    Py_ssize_t Wp, const float* bias, float* y)
    void fg_ct_unshift(const float* gc, Py_ssize_t Lw, const Py_ssize_t* off, Py_ssize_t K,
                       Py_ssize_t C, Py_ssize_t plane, float* dst)
    void fg_ct_fwd_ch(const float* xp, const Py_ssize_t* off, Py_ssize_t K, const float* wt,
                      Py_ssize_t O, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Wp,
                      const float* bias, float* y)
    void fg_ct_wgrad_ch(const float* xp, const Py_ssize_t* off, Py_ssize_t K, const float* gt,
                        Py_ssize_t O, const Py_ssize_t* pos, Py_ssize_t P, float* dw)

# conv_tiles.h includes these (the first once per instruction set); named here so that a change
# to them rebuilds this module (setup.py follows a module's own extern headers only)
cdef extern from "conv_tiles_isa.h":
    pass
cdef extern from "cpu_level.h":
    pass

# Multiply-adds up to which an NT product (A @ B^T) runs unpacked in OpenBLAS (measured).
cdef Py_ssize_t SMALL_NT_MACS = 1 << 18


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
# Nothing, that is, while the input is finite: the weight gradient multiplies those zeros by
# input values, and 0 * inf is NaN where PyTorch's gradient is inf. The padding's zeros do the
# same to the output gradient's values (and, in a transposed convolution, where the two swap
# roles, to the input's). A block of samples whose weight gradient comes out non-finite is
# computed again, each sample whose operands hold inf or NaN where such zeros can meet them by a
# direct loop over the terms that exist (_exact_weight); a finite result needed no check.

cdef Py_ssize_t _scratch_len(const Geom* g, Py_ssize_t O) noexcept nogil:
    """Elements of one thread's scratch: im2col's column matrix, or for the shifted rows a padded
    plane, a wide column matrix and a wide output."""
    cdef Py_ssize_t Hp, Wp, Lw, CK = g.C * g.kh * g.kw
    if not _shifted(g):
        return CK * g.OH * g.OW
    _shift_dims(g, &Hp, &Wp, &Lw)
    # + the tiled loops' slack (Note [Convolution tiles]): 32 past the plane, O*31 in the rows
    return g.C * Hp * Wp + CK * Lw + O * Lw + O * CK // g.G + 32 + O * 32


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
    cdef Py_ssize_t c, hp, ih, lo, hi
    cdef floating* r
    # the columns of a row that come from x: wp in [lo, hi), a contiguous copy
    lo = g.pw if g.pw > 0 else 0
    hi = g.pw + g.W if g.pw + g.W < Wp else Wp
    if hi < lo:
        hi = lo
    for c in range(g.C):
        for hp in range(Hp):
            r = xp + (c * Hp + hp) * Wp
            ih = hp - g.ph
            if ih < 0 or ih >= g.H or hi == lo:
                memset(r, 0, Wp * sizeof(floating))
            else:
                memset(r, 0, lo * sizeof(floating))
                memcpy(r + lo, x + (c * g.H + ih) * g.W + lo - g.pw,
                       (hi - lo) * sizeof(floating))
                memset(r + hi, 0, (Wp - hi) * sizeof(floating))


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


cdef void _shift_fwd(const floating* x, const floating* w, const floating* bias, floating* y,
                     floating* cp, floating* scr, Py_ssize_t O, const Geom* g) noexcept nogil:
    """y (O, OH, OW) = the convolution of one sample x (+ bias: NULL for none), through the wide
    column matrix cp (kept by the caller, or in scr); scr: the thread's scratch."""
    cdef Py_ssize_t Hp, Wp, Lw, grp, o, oh, ow, CK = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef floating* pad = scr
    cdef floating* yw = scr + g.C * Hp * Wp + CK * Lw
    cdef floating* yr
    cdef floating b
    cdef const floating* src
    if cp == NULL:
        cp = scr + g.C * Hp * Wp
    _shift_cols_of(x, cp, pad, g, Hp, Wp, Lw)
    for grp in range(g.G):
        blas.gemm(floating is float, False, False, Og, Lw, CKg, w + grp * Og * CKg, CKg,
                  cp + grp * CKg * Lw, Lw, 0.0, yw + grp * Og * Lw, Lw)
    for o in range(O):
        b = 0 if bias == NULL else bias[o]
        for oh in range(g.OH):
            yr = y + (o * g.OH + oh) * g.OW
            src = yw + o * Lw + oh * Wp
            for ow in range(g.OW):
                yr[ow] = src[ow] + b


cdef void _shift_bwd_input(const floating* gy, const floating* wt, floating* gx, floating* scr,
                           Py_ssize_t O, const Geom* g, const Py_ssize_t* off) noexcept nogil:
    """gx (C, H, W) = the input gradient of one sample from its output gradient gy; wt: the
    weight transposed per group, (G, CKg, Og); off: the rows' offsets in the padded plane for
    fg_ct_unshift (float32 where the CPU runs the tiles), or NULL."""
    cdef Py_ssize_t Hp, Wp, Lw, grp, CK = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef bint padded = _needs_pad(g, Hp, Wp)
    cdef floating* pad = scr
    cdef floating* gcw = scr + g.C * Hp * Wp + 32      # after the gathered plane's slack
    cdef floating* gyw = gcw + CK * Lw
    cdef floating* tgt = pad if padded else gx
    _widen(gy, gyw, O, g, Wp, Lw)
    for grp in range(g.G):
        blas.gemm(floating is float, False, False, CKg, Lw, Og, wt + grp * Og * CKg, Og,
                  gyw + grp * Og * Lw, Lw, 0.0, gcw + grp * CKg * Lw, Lw)
    if floating is float:
        if off != NULL:
            fg_ct_unshift(gcw, Lw, off, CK, g.C, Hp * Wp, pad)
            if padded:
                _crop_from(pad, gx, g, Hp, Wp)
            else:
                memcpy(gx, pad, g.C * Hp * Wp * sizeof(float))
            return
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


# --- the tiled float32 loops (Note [Convolution tiles] in conv_tiles.h) -------------------------

def tiles(force=None):
    """The tiled loops float32 unit-stride convolutions run (Note [Convolution tiles]): 2
    AVX-512, 1 AVX2+FMA, 0 none (BLAS); force: the highest level allowed from now on (for tests;
    True: the best the CPU has, False: none)."""
    if force is True:
        force = 2
    return fg_ct_ok(-1 if force is None else int(force))


cdef inline bint _tiled(const Geom* g, bint f32) noexcept nogil:
    return f32 and g.G == 1 and _shifted(g) and fg_ct_ok(-1)


cdef inline bint _by_channel(Py_ssize_t O) noexcept nogil:
    """The channel tiles (vectors along output channels, Note [Convolution tiles])."""
    return O % fg_ct_lanes() == 0


cdef Py_ssize_t* _tile_offsets(const Geom* g, Py_ssize_t O) noexcept nogil:
    """off[k]: where row k = (c, ki, kj) of the wide column matrix starts in the padded plane,
    followed for the channel tiles by pos[p], where output position p = (oh, ow) reads it
    (malloc'd; NULL when out of memory, and the caller takes the BLAS path)."""
    cdef Py_ssize_t Hp, Wp, Lw, c, ki, kj, k = 0, K = g.C * g.kh * g.kw, oh, ow
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t* off = <Py_ssize_t*>malloc((K + g.OH * g.OW) * sizeof(Py_ssize_t))
    if off == NULL:
        return NULL
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                off[k] = (c * Hp + ki * g.dh) * Wp + kj * g.dw
                k += 1
    for oh in range(g.OH):
        for ow in range(g.OW):
            off[K + oh * g.OW + ow] = oh * Wp + ow
    return off


cdef inline Py_ssize_t _lwr(Py_ssize_t Lw) noexcept nogil:
    return (Lw + 31) // 32 * 32


cdef const float* _tile_plane(const float* x, float* pad, const Geom* g, Py_ssize_t Hp,
                              Py_ssize_t Wp, bint exact) noexcept nogil:
    """The padded plane of one sample and 32 zeros after it, in pad; or x itself when it needs
    no padding and the reads stay inside it (exact: the channel tiles)."""
    if not _needs_pad(g, Hp, Wp):
        if exact:
            return x
        memcpy(pad, x, g.C * Hp * Wp * sizeof(float))
    else:
        _pad_into(x, pad, g, Hp, Wp)
    memset(pad + g.C * Hp * Wp, 0, 32 * sizeof(float))
    return pad


cdef void _tile_widen(const float* gy, float* gyw, Py_ssize_t O, const Geom* g, Py_ssize_t Wp,
                      Py_ssize_t LwR) noexcept nogil:
    """gyw (O, LwR): gy (O, OH, OW) at columns oh*Wp + ow, zeros elsewhere."""
    cdef Py_ssize_t o, oh
    memset(gyw, 0, O * LwR * sizeof(float))
    for o in range(O):
        for oh in range(g.OH):
            memcpy(gyw + o * LwR + oh * Wp, gy + (o * g.OH + oh) * g.OW, g.OW * sizeof(float))


cdef void _tile_fwd(const float* x, const float* w, const float* wt, const float* bias,
                    float* y, float* scr, const Py_ssize_t* off, Py_ssize_t O,
                    const Geom* g) noexcept nogil:
    """y (O, OH, OW) = the convolution of one sample (+ bias); wt: w transposed, (CK, O), for
    the channel tiles."""
    cdef Py_ssize_t Hp, Wp, Lw, K = g.C * g.kh * g.kw
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef Py_ssize_t LwR = _lwr(Lw)
    cdef float* yw = scr + g.C * Hp * Wp + 32
    if _by_channel(O):            # exact reads: the plane itself serves when it needs no padding
        fg_ct_fwd_ch(_tile_plane(x, scr, g, Hp, Wp, True), off, K, wt, O, g.OH, g.OW, Wp,
                     bias, y)
        return
    fg_ct_fwd(_tile_plane(x, scr, g, Hp, Wp, False), off, K, w, O, yw, LwR)
    fg_ct_crop(yw, LwR, O, g.OH, g.OW, Wp, bias, y)


cdef void _tile_bwd_weight(const float* gy, const float* x, float* gwb, float* gbb, float* scr,
                           const Py_ssize_t* off, Py_ssize_t O, const Geom* g) noexcept nogil:
    """gwb (O, CK) += one sample's weight gradient, gbb (O,) += its bias gradient (gbb NULL:
    none)."""
    cdef Py_ssize_t Hp, Wp, Lw, o, p, K = g.C * g.kh * g.kw, P = g.OH * g.OW
    _shift_dims(g, &Hp, &Wp, &Lw)
    cdef float* buf = scr + g.C * Hp * Wp + 32
    cdef const float* plane = _tile_plane(x, scr, g, Hp, Wp, _by_channel(O))
    if _by_channel(O):
        for p in range(P):
            for o in range(O):
                buf[p * O + o] = gy[o * P + p]
        fg_ct_wgrad_ch(plane, off, K, buf, O, off + K, P, gwb)
    else:
        _tile_widen(gy, buf, O, g, Wp, _lwr(Lw))
        fg_ct_wgrad(plane, off, K, buf, O, _lwr(Lw), gwb)
    if gbb != NULL:
        fg_ct_row_sums(gy, O, P, gbb)


cdef void _narrow_pass(const floating* x, const floating* w, const floating* bias, floating* y,
                       floating* cols, bint keep, floating* scratch, Py_ssize_t N, Py_ssize_t O,
                       const Geom* g, int nt) noexcept nogil:
    """y[n] (O, L) = W_g @ im2col(x[n])_g + bias (NULL: none) for every sample; the column
    matrices go to cols[n] (keep) or to the thread's scratch."""
    cdef Py_ssize_t o, l, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t* off = _tile_offsets(g, O) if _tiled(g, floating is float) else NULL
    cdef float* wt = NULL
    cdef Pass ps
    if off != NULL and _by_channel(O):
        wt = <float*>malloc(CK * O * sizeof(float))
        if wt == NULL:
            free(off)
            off = NULL
        else:
            for o in range(O):
                for l in range(CK):
                    wt[l * O + o] = w[o * CK + l]
    ps.a, ps.w, ps.wt, ps.bias, ps.y, ps.cols, ps.scratch = x, w, wt, bias, y, cols, scratch
    ps.keep, ps.off, ps.O, ps.g, ps.f32 = keep, off, O, g, floating is float
    team_run(_narrow_item, &ps, N, nt)
    free(off)
    free(wt)


ctypedef struct Pass:               # a pass over the samples, for its items
    const void* a               # x (forward, weight) or gy (input gradient, weight)
    const void* b               # weight: x
    const void* w
    const float* wt             # forward: W transposed for the tiles, or NULL
    const void* bias
    void* y                     # forward: y; input gradient: gx
    void* cols
    void* gb
    void* scratch
    Py_ssize_t* off
    const Geom* g
    Py_ssize_t O, N, nb
    bint keep, f32
    bint plain                  # input gradient: products and col2im though the rows shift


cdef void _narrow_item(void* ctx, Py_ssize_t n, int slot) noexcept nogil:
    cdef const Pass* ps = <const Pass*>ctx
    if ps.f32:
        _narrow_sample(ps, <float*>NULL, n, slot)
    else:
        _narrow_sample(ps, <double*>NULL, n, slot)


cdef inline void _narrow_sample(const Pass* ps, floating* tag, Py_ssize_t n,
                                int slot) noexcept nogil:
    """Sample n of _narrow_pass, with the scratch of thread slot `slot`."""
    cdef const Geom* g = ps.g
    cdef Py_ssize_t grp, o, l, O = ps.O, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef Py_ssize_t S = _scratch_len(g, O), CL = cols_len(g)
    cdef const floating* x = <const floating*>ps.a
    cdef const floating* w = <const floating*>ps.w
    cdef const floating* bias = <const floating*>ps.bias
    cdef floating* y = <floating*>ps.y
    cdef floating* cols = <floating*>ps.cols
    cdef floating* scratch = <floating*>ps.scratch
    cdef const floating* cp
    cdef floating* buf
    cdef floating* yn
    if ps.off != NULL:
        _tile_fwd(<const float*>x + n * g.C * g.H * g.W, <const float*>w, ps.wt,
                  <const float*>bias, <float*>y + n * O * L, <float*>scratch + slot * S, ps.off,
                  O, g)
        return
    if _shifted(g):
        _shift_fwd(x + n * g.C * g.H * g.W, w, bias, y + n * O * L,
                   cols + n * CK * CL if ps.keep else NULL, scratch + slot * S, O, g)
        return
    yn = y + n * O * L
    for o in range(O):
        for l in range(L):
            yn[o * L + l] = 0 if bias == NULL else bias[o]
    if _pointwise(g):
        cp = x + n * g.C * g.H * g.W
    else:
        buf = cols + n * CK * L if ps.keep else scratch + slot * S
        im2col(x + n * g.C * g.H * g.W, buf, g)
        cp = buf
    for grp in range(g.G):
        blas.gemm(floating is float, False, False, Og, L, CKg, w + grp * Og * CKg, CKg,
                  cp + grp * CKg * L, L, 1.0, yn + grp * Og * L, L)


cdef void _wide_pass(const floating* gy, const floating* wt, floating* gx, floating* scratch,
                     Py_ssize_t N, Py_ssize_t O, const Geom* g, int nt) noexcept nogil:
    """gx[n] (C, H, W) = col2im(W_g^T @ gy[n]_g) for every sample (gx zeroed here); wt: the
    weight transposed per group, (G, CKg, Og), so that the products are NoTrans (OpenBLAS's
    small-matrix kernels; a transposed A is packed first, ~1.5x the time here)."""
    # An inf or NaN weight takes the products and col2im: the shifted rows' zero gaps would
    # multiply it (0 * inf = NaN where PyTorch's sum has no such term).
    cdef bint plain = _shifted(g) and not _all_finite(wt, g.C * g.kh * g.kw * O // g.G)
    cdef Py_ssize_t* off = _tile_offsets(g, O) if _shifted(g) and not plain and \
        floating is float and fg_ct_ok(-1) else NULL
    cdef Pass ps
    ps.a, ps.w, ps.y, ps.scratch, ps.off, ps.O, ps.g, ps.f32 = gy, wt, gx, scratch, off, O, g, \
        floating is float
    ps.plain = plain
    team_run(_wide_item, &ps, N, nt)
    free(off)


cdef void _wide_item(void* ctx, Py_ssize_t n, int slot) noexcept nogil:
    cdef const Pass* ps = <const Pass*>ctx
    if ps.f32:
        _wide_sample(ps, <float*>NULL, n, slot)
    else:
        _wide_sample(ps, <double*>NULL, n, slot)


cdef inline void _wide_sample(const Pass* ps, floating* tag, Py_ssize_t n,
                              int slot) noexcept nogil:
    """Sample n of _wide_pass, with the scratch of thread slot `slot`."""
    cdef const Geom* g = ps.g
    cdef Py_ssize_t grp, O = ps.O, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G, HW = g.C * g.H * g.W
    cdef Py_ssize_t S = _scratch_len(g, O)
    cdef const floating* gy = <const floating*>ps.a
    cdef const floating* wt = <const floating*>ps.w
    cdef floating* gx = <floating*>ps.y
    cdef floating* scratch = <floating*>ps.scratch
    cdef floating* buf
    cdef bint direct = _pointwise(g)
    if _shifted(g) and not ps.plain:
        _shift_bwd_input(gy + n * O * L, wt, gx + n * HW, scratch + slot * S, O, g, ps.off)
        return
    buf = gx + n * HW if direct else scratch + slot * S
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
    cdef Py_ssize_t* off = _tile_offsets(g, O) if _tiled(g, floating is float) else NULL
    cdef Pass ps
    ps.a, ps.b, ps.cols, ps.y, ps.gb = gy, x, <void*>cols, gw, gb
    ps.scratch, ps.off = scratch, off
    ps.N, ps.nb, ps.O, ps.g, ps.f32 = N, nb, O, g, floating is float
    team_run(_weight_item, &ps, nb, nt)
    free(off)


cdef void _weight_item(void* ctx, Py_ssize_t b, int slot) noexcept nogil:
    cdef const Pass* ps = <const Pass*>ctx
    if ps.f32:
        _weight_sample_block(ps, <float*>NULL, b, slot)
    else:
        _weight_sample_block(ps, <double*>NULL, b, slot)


cdef inline void _weight_sample_block(const Pass* ps, floating* tag, Py_ssize_t b,
                                      int slot) noexcept nogil:
    """Block b of _weight_pass's samples, with the scratch of thread slot `slot`."""
    cdef const Geom* g = ps.g
    cdef Py_ssize_t O = ps.O, N = ps.N, nb = ps.nb, K = O * (g.C * g.kh * g.kw // g.G)
    cdef floating* gw = <floating*>ps.y + b * K
    cdef floating* gb = NULL if ps.gb == NULL else <floating*>ps.gb + b * O
    cdef floating* scratch = <floating*>ps.scratch + slot * _scratch_len(g, O)
    _weight_block(<const floating*>ps.a, <const floating*>ps.b, <const floating*>ps.cols, gw, gb,
                  scratch, b * N // nb, (b + 1) * N // nb, O, g, ps.off, False)
    # a non-finite block may hold a zero times inf: again, sample by sample with care
    if not _all_finite(gw, K):
        memset(gw, 0, K * sizeof(floating))
        if gb != NULL:
            memset(gb, 0, O * sizeof(floating))
        _weight_block(<const floating*>ps.a, <const floating*>ps.b, <const floating*>ps.cols, gw,
                      gb, scratch, b * N // nb, (b + 1) * N // nb, O, g, ps.off, True)


cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No inf or NaN among x[:n] (x * 0 is NaN exactly for those; LANES independent sums)."""
    cdef Py_ssize_t i, j
    cdef int l
    cdef floating acc[16]
    cdef floating t = 0
    for l in range(16):
        acc[l] = 0
    for i in range(n // 16):
        for l in range(16):
            acc[l] = acc[l] + x[i * 16 + l] * 0
    for j in range(n - n % 16, n):
        t = t + x[j] * 0
    for l in range(16):
        t = t + acc[l]
    return t == 0


cdef void _exact_weight(const floating* gy, const floating* x, floating* gwb, Py_ssize_t O,
                        const Geom* g) noexcept nogil:
    """gwb (O, CKg) += one sample's weight gradient summed over the terms that exist only (no
    padding, no gap columns): for a sample whose input or output gradient holds inf or NaN."""
    cdef Py_ssize_t o, c, ki, kj, oh, ow, ih, iw, Og = O // g.G, CKg = g.C // g.G * g.kh * g.kw
    cdef double s
    cdef const floating* gr
    cdef const floating* xr
    for o in range(O):
        gr = gy + o * g.OH * g.OW
        for c in range(g.C // g.G):
            xr = x + (o // Og * (g.C // g.G) + c) * g.H * g.W
            for ki in range(g.kh):
                for kj in range(g.kw):
                    s = 0
                    for oh in range(g.OH):
                        ih = oh * g.sh - g.ph + ki * g.dh
                        if ih < 0 or ih >= g.H:
                            continue
                        for ow in range(g.OW):
                            iw = ow * g.sw - g.pw + kj * g.dw
                            if 0 <= iw < g.W:
                                s += gr[oh * g.OW + ow] * xr[ih * g.W + iw]
                    gwb[o * CKg + (c * g.kh + ki) * g.kw + kj] += <floating>s


cdef void _weight_block(const floating* gy, const floating* x, const floating* cols,
                        floating* gwb, floating* gbb, floating* buf, Py_ssize_t lo,
                        Py_ssize_t hi, Py_ssize_t O, const Geom* g,
                        const Py_ssize_t* off, bint careful) noexcept nogil:
    """Samples lo..hi of _weight_pass; careful: a sample whose inf or NaN may meet a zero that
    stands for no term takes _exact_weight."""
    cdef Py_ssize_t n, grp, o, l, L = g.OH * g.OW, CK = g.C * g.kh * g.kw
    cdef Py_ssize_t CKg = CK // g.G, Og = O // g.G
    cdef bint direct = _pointwise(g)
    cdef const floating* cp
    cdef const floating* gr
    cdef double s
    cdef bint shifted = _shifted(g)
    cdef Py_ssize_t CL = cols_len(g), CHW = g.C * g.H * g.W
    # zeros that stand for no term (padding, the wide columns' gaps) meet the other operand's
    # values: exact only while those are finite (Note [Shifted rows for unit stride])
    cdef bint wide = careful and shifted and not (off != NULL and _by_channel(O))
    cdef bint padded = careful and (g.ph > 0 or g.pw > 0 or \
        (g.OH - 1) * g.sh - g.ph + (g.kh - 1) * g.dh >= g.H or \
        (g.OW - 1) * g.sw - g.pw + (g.kw - 1) * g.dw >= g.W)
    cdef bint exact
    for n in range(lo, hi):
        exact = (wide and not _all_finite(x + n * CHW, CHW)) or \
            (padded and not _all_finite(gy + n * O * L, O * L))
        if exact:
            _exact_weight(gy + n * O * L, x + n * CHW, gwb, O, g)
        if off != NULL and not exact:
            _tile_bwd_weight(<const float*>gy + n * O * L, <const float*>x + n * CHW,
                             <float*>gwb, <float*>gbb, <float*>buf, off, O, g)
            continue
        if shifted and not exact:
            _shift_bwd_weight(gy + n * O * L, x + n * CHW,
                              NULL if cols == NULL else cols + n * CK * CL, gwb, buf, O, g)
        elif exact:
            pass
        elif direct:
            cp = x + n * g.C * g.H * g.W
        elif cols != NULL:
            cp = cols + n * CK * L
        else:
            im2col(x + n * g.C * g.H * g.W, buf, g)
            cp = buf
        if not shifted and not exact:
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

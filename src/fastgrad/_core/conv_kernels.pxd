# The convolution loops (conv_kernels.pyx): im2col/col2im, the shifted rows for unit stride and
# the per-sample passes over a batch (Note [Convolution as per-sample products] in ops_conv.pyx).
# Raw pointers, nogil, no Python objects.
from cython cimport floating
from fastgrad._core.kernels cimport nthreads

ctypedef struct Geom:
    Py_ssize_t C, H, W            # wide side, per sample
    Py_ssize_t kh, kw, sh, sw, ph, pw, dh, dw   # kernel, stride, leading padding, dilation
    Py_ssize_t OH, OW             # narrow side
    Py_ssize_t G                  # groups


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


cdef inline bint _shifted(const Geom* g) noexcept nogil:
    return g.sh == 1 and g.sw == 1 and not _pointwise(g)


cdef inline void _shift_dims(const Geom* g, Py_ssize_t* Hp, Py_ssize_t* Wp,
                             Py_ssize_t* Lw) noexcept nogil:
    Hp[0] = g.OH + (g.kh - 1) * g.dh
    Wp[0] = g.OW + (g.kw - 1) * g.dw
    Lw[0] = (g.OH - 1) * Wp[0] + g.OW


cdef inline bint _needs_pad(const Geom* g, Py_ssize_t Hp, Py_ssize_t Wp) noexcept nogil:
    return g.ph != 0 or g.pw != 0 or Hp != g.H or Wp != g.W


cdef inline int _team(Py_ssize_t n, Py_ssize_t work) noexcept nogil:
    """Threads for a pass over n samples of `work` multiply-adds in all: one below ~1M."""
    cdef int nt = nthreads()
    if work < (1 << 20) or n < 2:
        return 1
    return nt if nt < n else <int>n


cdef void im2col(const floating* x, floating* col, const Geom* g) noexcept nogil
cdef void col2im(const floating* col, floating* x, const Geom* g) noexcept nogil
cdef Py_ssize_t _scratch_len(const Geom* g, Py_ssize_t O) noexcept nogil
cdef Py_ssize_t cols_len(const Geom* g) noexcept nogil
cdef void _narrow_pass(const floating* x, const floating* w, const floating* bias, floating* y,
                       floating* cols, bint keep, floating* scratch, Py_ssize_t N, Py_ssize_t O,
                       const Geom* g, int nt) noexcept nogil
cdef void _wide_pass(const floating* gy, const floating* wt, floating* gx, floating* scratch,
                     Py_ssize_t N, Py_ssize_t O, const Geom* g, int nt) noexcept nogil
cdef void _weight_pass(const floating* gy, const floating* x, const floating* cols,
                       floating* gw, floating* gb, floating* scratch, Py_ssize_t N,
                       Py_ssize_t O, const Geom* g, int nt, Py_ssize_t nb) noexcept nogil

# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Attention per (batch, head), forward and backward, on fastgrad's thread team.

Note [Attention by heads]
Multi-head attention's core, softmax(q k^T * scale + mask) v, is independent for each (batch,
head) pair. heads_forward and heads_backward take one pair at a time through the whole rule: the
pair's products read q, k, v in place (a head is a column slice of the projection's rows, so BLAS
reads it with the row stride as leading dimension and nothing is copied out), the pair's scores
(L x S, 16 KB for 64 x 64 floats) stay in cache from the product through the softmax to the
product with v, and the result is written where the caller wants it (MultiheadAttention asks for
the (L, N, E) rows its output projection reads, so no permuted copy follows). The pairs are shared
across the thread team (team.h): each pair is computed by the same calls whatever thread takes it,
so results do not depend on the thread count. Attention as three batched products and a softmax
over the whole (N, H, L, S) array (ops_attention.attention) does the same arithmetic but makes
three passes over a score array too large for the cache, and forks the team for each product.

The backward, per pair (P the probabilities kept by the forward, dO the output's gradient):
    dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)) * scale,  dQ = dS K,  dK = dS^T Q
with dP/dS in a scratch block of the thread's own. Rows whose every key is masked give zeros
(Note [Fully masked rows] in ops_attention.pyx).
"""
from cython cimport floating
from libc.math cimport INFINITY, NAN, isfinite, log
from libc.string cimport memcpy

from fastgrad._core cimport blas
from fastgrad._core.kernels cimport nthreads, team_run

from fastgrad._core.vmath cimport fg_vm_f32, fg_vm_f64, fg_vm_select, FG_VM_EXP

fg_vm_select(2)

# Multiply-adds from which the pairs are shared across the team (below, waking the partner costs
# more than it takes over: Note [Products on fastgrad's threads] in blas.pyx).
cdef Py_ssize_t TEAM_MACS = 1 << 22


def set_team_macs(Py_ssize_t n):
    """Set the multiply-adds from which the (batch, head) pairs are shared across threads;
    returns the old value (for tests: results are the same either way)."""
    global TEAM_MACS
    old = TEAM_MACS
    TEAM_MACS = n
    return old


cdef inline char* _at(const HeadArray* x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t isz) noexcept nogil:
    return x.base + (n * x.sn + h * x.sh) * isz


cdef bint _shared(const Heads* a) noexcept nogil:
    return nthreads() > 1 and a.N * a.H > 1 and \
        a.N * a.H * a.L * a.S * (a.D + a.Dv) >= TEAM_MACS


# Note [Row reductions in lanes]
# A row's max, sum and dot product are kept in 16 partial results, element j in lane j % 16,
# and the lanes combined at the end: 16 independent chains the compiler turns into vector
# instructions, where one running sum is a chain of dependent additions (a 64-key row of W13's
# attention: 4 cycles an element). The order of the additions is fixed by the row length alone.
# The row loops are in softmax_rows.h, built for three instruction sets (Note [Norm rows per
# instruction set] in norm_rows.h).
cdef extern from "softmax_rows.h" nogil:
    float fg_row_dot_f32(const float* r, const float* q, Py_ssize_t S)
    double fg_row_dot_f64(const double* r, const double* q, Py_ssize_t S)
    void fg_rows_shift_f32(float* s, Py_ssize_t M, Py_ssize_t S, float scale, int nan_rows)
    void fg_rows_shift_f64(double* s, Py_ssize_t M, Py_ssize_t S, double scale, int nan_rows)
    void fg_row_scale_f32(float* r, const float* q, float z, Py_ssize_t n)
    void fg_row_scale_f64(double* r, const double* q, double z, Py_ssize_t n)
    void fg_rows_softmax_bwd_f32(float* dp, const float* p, Py_ssize_t M, Py_ssize_t S,
                                 float scale)
    void fg_rows_softmax_bwd_f64(double* dp, const double* p, Py_ssize_t M, Py_ssize_t S,
                                 double scale)
    int fg_softmax_rows_select(int want)

fg_softmax_rows_select(2)


def rows_level(want=2):
    """Pick the softmax row loops' instruction set: at most `want` (2 AVX-512, 1 AVX2+FMA, 0
    baseline); returns the level in use (for tests)."""
    return fg_softmax_rows_select(int(want))


cdef void rows_shift(floating* s, Py_ssize_t M, Py_ssize_t S, floating scale,
                     bint nan_rows) noexcept nogil:
    """Each row of s (M, S): s = s * scale - max(s * scale) in place (NaN is never the max). A
    row max that is not finite is taken as 0 (Note [Fully masked rows] in ops_attention.pyx), or
    with nan_rows makes the whole row NaN (softmax's rule, as PyTorch's: inf - inf)."""
    if floating is float:
        fg_rows_shift_f32(s, M, S, scale, nan_rows)
    else:
        fg_rows_shift_f64(s, M, S, scale, nan_rows)


cdef inline floating _row_dot(const floating* r, const floating* q, Py_ssize_t S) noexcept nogil:
    """The sum of r[:S] (with q: of r * q) in lanes."""
    if floating is float:
        return fg_row_dot_f32(r, q, S)
    else:
        return fg_row_dot_f64(r, q, S)


cdef inline void _row_scale(floating* r, const floating* q, floating z,
                            Py_ssize_t n) noexcept nogil:
    """r[:n] *= z (with q: r[:n] -= q[:n] * z)."""
    if floating is float:
        fg_row_scale_f32(r, q, z, n)
    else:
        fg_row_scale_f64(r, q, z, n)


cdef void rows_exp_normalize(floating* e, Py_ssize_t M, Py_ssize_t S) noexcept nogil:
    """exp of every element, then each row divided by its sum in place (a zero sum leaves the
    row zero)."""
    cdef Py_ssize_t i
    cdef floating z
    cdef floating* r
    if floating is float:
        fg_vm_f32[FG_VM_EXP](e, e, M * S)
    else:
        fg_vm_f64[FG_VM_EXP](e, e, M * S)
    for i in range(M):
        r = e + i * S
        z = _row_dot(r, NULL, S)
        if z != 0:
            z = 1 / z
        _row_scale(r, NULL, z, S)


cdef void rows_softmax_bwd(floating* dp, const floating* p, Py_ssize_t M, Py_ssize_t S,
                           floating scale) noexcept nogil:
    """dS = P * (dP - rowsum(dP * P)) * scale in place of dP."""
    if floating is float:
        fg_rows_softmax_bwd_f32(dp, p, M, S, scale)
    else:
        fg_rows_softmax_bwd_f64(dp, p, M, S, scale)


cdef enum:
    EXP_PIECE = 1024    # elements of a row exponentiated at a time into a buffer on the stack


cdef inline void _exp(const floating* x, floating* e, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fg_vm_f32[FG_VM_EXP](x, e, n)
    else:
        fg_vm_f64[FG_VM_EXP](x, e, n)


cdef void rows_log_normalize(floating* s, Py_ssize_t M, Py_ssize_t S) noexcept nogil:
    """Each shifted row of s: s - log(sum(exp(s))) in place."""
    cdef Py_ssize_t i, j, j0, n
    cdef floating z
    cdef floating buf[EXP_PIECE]
    cdef floating* r
    for i in range(M):
        r = s + i * S
        z = 0
        j0 = 0
        while j0 < S:
            n = min(<Py_ssize_t>EXP_PIECE, S - j0)
            _exp(r + j0, buf, n)
            z = z + _row_dot(buf, <floating*>NULL, n)
            j0 += n
        z = <floating>log(z)
        for j in range(S):
            r[j] = r[j] - z


cdef void rows_log_softmax_bwd(floating* g, const floating* y, Py_ssize_t M,
                               Py_ssize_t S) noexcept nogil:
    """g - exp(y) * rowsum(g) in place of g (y = log_softmax)."""
    cdef Py_ssize_t i, j0, n
    cdef floating a
    cdef floating buf[EXP_PIECE]
    cdef floating* d
    for i in range(M):
        d = g + i * S
        a = _row_dot(d, <floating*>NULL, S)
        j0 = 0
        while j0 < S:
            n = min(<Py_ssize_t>EXP_PIECE, S - j0)
            _exp(y + i * S + j0, buf, n)
            _row_scale(d + j0, buf, a, n)
            j0 += n


# Note [Softmax over the last dim]
# softmax and log_softmax over the last dim of a C-contiguous float32/float64 array run on the
# row loops above, in blocks of SOFTMAX_ROWS rows shared across fastgrad's team from SOFTMAX_PAR
# elements: every row is computed by the same calls whatever the block or thread, so the thread
# count never changes a bit. NumPy's max, exp, sum and divide along an axis made five passes and
# paid per-row overhead on short rows: (64, 64, 64) float32 took 935 us against PyTorch's 204.
# A row whose max is not finite (+inf anywhere, or every element -inf) comes out NaN, as in
# PyTorch (inf - inf); a NaN anywhere in a row makes the row NaN through its sum.
cdef enum:
    SOFTMAX_ROWS = 64
    SOFTMAX_PAR = 1 << 16


cdef void _softmax_block(floating* y, const floating* g, Py_ssize_t M, Py_ssize_t S, bint log_,
                         bint backward) noexcept nogil:
    if backward:                    # y: the gradient in place; g: the forward's result
        if log_:
            rows_log_softmax_bwd(y, g, M, S)
        else:
            rows_softmax_bwd(y, g, M, S, <floating>1)
        return
    rows_shift(y, M, S, <floating>1, True)
    if log_:
        rows_log_normalize(y, M, S)
    else:
        rows_exp_normalize(y, M, S)


cdef void _softmax_rows(floating* y, const floating* g, Py_ssize_t M, Py_ssize_t S, bint log_,
                        bint backward) noexcept nogil:
    cdef Py_ssize_t nblk = (M + SOFTMAX_ROWS - 1) // SOFTMAX_ROWS
    cdef Rows r
    if nthreads() > 1 and nblk > 1 and M * S >= SOFTMAX_PAR:
        r.y, r.g, r.M, r.S, r.log_, r.backward, r.f32 = y, g, M, S, log_, backward, \
            floating is float
        team_run(_rows_item, &r, nblk, nthreads())
    else:
        _softmax_block(y, g, M, S, log_, backward)


ctypedef struct Rows:               # _softmax_rows's or _softmax_cols's loop, for its items
    void* y
    const void* g
    Py_ssize_t M, S, C, inner, nch
    bint log_, backward, f32


cdef void _rows_item(void* ctx, Py_ssize_t blk, int slot) noexcept nogil:
    cdef const Rows* r = <const Rows*>ctx
    cdef Py_ssize_t lo = blk * SOFTMAX_ROWS, m = min(r.M - lo, <Py_ssize_t>SOFTMAX_ROWS)
    cdef Py_ssize_t g0 = 0 if r.g == NULL else lo * r.S     # keeps NULL NULL
    if r.f32:
        _softmax_block(<float*>r.y + lo * r.S, <const float*>r.g + g0, m, r.S, r.log_, r.backward)
    else:
        _softmax_block(<double*>r.y + lo * r.S, <const double*>r.g + g0, m, r.S, r.log_,
                       r.backward)


cdef void softmax_last(void* y, Py_ssize_t M, Py_ssize_t S, bint f32, bint log_) noexcept nogil:
    if f32:
        _softmax_rows(<float*>y, <const float*>NULL, M, S, log_, False)
    else:
        _softmax_rows(<double*>y, <const double*>NULL, M, S, log_, False)


cdef void softmax_last_bwd(void* g, const void* y, Py_ssize_t M, Py_ssize_t S, bint f32,
                           bint log_) noexcept nogil:
    if f32:
        _softmax_rows(<float*>g, <const float*>y, M, S, log_, True)
    else:
        _softmax_rows(<double*>g, <const double*>y, M, S, log_, True)


# Note [Softmax over a middle dim]
# Over any other dim, x is (outer, C, inner) with the dim in the middle: each column j of an outer
# block (C values inner apart) is one softmax, and the columns are computed side by side over
# chunks of INNER_CHUNK contiguous columns (max, shifted exponentials, sums and the scaling each
# one vectorised pass along the rows of the chunk), chunks shared across the team. A (32, 10,
# 64, 64) float32 softmax over dim 1 took 3.1 ms through NumPy, 0.51 ms in PyTorch. The column
# rules are the last dim's: a column whose max is not finite comes out NaN.
cdef enum:
    INNER_CHUNK = 256


cdef void _cols_block(floating* y, const floating* g, Py_ssize_t C, Py_ssize_t inner,
                      Py_ssize_t n, bint log_, bint backward) noexcept nogil:
    """Columns 0 .. n of one (C, inner) block starting at y (and g): softmax / log_softmax in
    place, or (backward) their gradient in place of y from the result g."""
    cdef Py_ssize_t c, j
    cdef floating m[INNER_CHUNK]
    cdef double z[INNER_CHUNK]          # the columns' sums, in double whatever the dtype: C
    cdef floating buf[INNER_CHUNK]      # floats run as a float32 sum stops at 2**24 terms
    cdef floating v
    cdef floating* r
    cdef const floating* q
    for j in range(n):
        z[j] = 0
    if backward:                        # y: the output's gradient; g: the forward's result
        for c in range(C):
            r, q = y + c * inner, g + c * inner
            if log_:
                for j in range(n):
                    z[j] = z[j] + r[j]
            else:
                for j in range(n):
                    z[j] = z[j] + r[j] * q[j]
        for j in range(n):
            m[j] = <floating>z[j]
        for c in range(C):
            r, q = y + c * inner, g + c * inner
            if log_:
                _exp(q, buf, n)
                for j in range(n):
                    r[j] = r[j] - buf[j] * m[j]
            else:
                for j in range(n):
                    r[j] = q[j] * (r[j] - m[j])
        return
    for j in range(n):
        m[j] = -INFINITY
    for c in range(C):
        r = y + c * inner
        for j in range(n):
            v = r[j]
            m[j] = v if v > m[j] else m[j]
    for j in range(n):
        if not isfinite(m[j]):
            m[j] = NAN                  # the column comes out NaN (PyTorch's inf - inf)
    for c in range(C):
        r = y + c * inner
        for j in range(n):
            r[j] = r[j] - m[j]
        _exp(r, buf, n)
        for j in range(n):
            z[j] = z[j] + buf[j]
        if not log_:
            memcpy(r, buf, n * sizeof(floating))
    for j in range(n):
        m[j] = <floating>(log(z[j]) if log_ else 1 / z[j])
    for c in range(C):
        r = y + c * inner
        if log_:
            for j in range(n):
                r[j] = r[j] - m[j]
        else:
            for j in range(n):
                r[j] = r[j] * m[j]


cdef void _softmax_cols(floating* y, const floating* g, Py_ssize_t outer, Py_ssize_t C,
                        Py_ssize_t inner, bint log_, bint backward) noexcept nogil:
    cdef Py_ssize_t nch = (inner + INNER_CHUNK - 1) // INNER_CHUNK
    cdef Rows r
    r.y, r.g, r.C, r.inner, r.nch, r.log_, r.backward, r.f32 = y, g, C, inner, nch, log_, \
        backward, floating is float
    team_run(_cols_item, &r, outer * nch,
             nthreads() if outer * C * inner >= SOFTMAX_PAR else 1)


cdef void _cols_item(void* ctx, Py_ssize_t t, int slot) noexcept nogil:
    cdef const Rows* r = <const Rows*>ctx
    cdef Py_ssize_t j0 = (t % r.nch) * INNER_CHUNK
    cdef Py_ssize_t off = t // r.nch * r.C * r.inner + j0, w = min(<Py_ssize_t>INNER_CHUNK,
                                                                    r.inner - j0)
    cdef Py_ssize_t g0 = 0 if r.g == NULL else off          # keeps NULL NULL
    if r.f32:
        _cols_block(<float*>r.y + off, <const float*>r.g + g0, r.C, r.inner, w, r.log_,
                    r.backward)
    else:
        _cols_block(<double*>r.y + off, <const double*>r.g + g0, r.C, r.inner, w, r.log_,
                    r.backward)


cdef void softmax_mid(void* y, Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, bint f32,
                      bint log_) noexcept nogil:
    if f32:
        _softmax_cols(<float*>y, <const float*>NULL, outer, C, inner, log_, False)
    else:
        _softmax_cols(<double*>y, <const double*>NULL, outer, C, inner, log_, False)


cdef void softmax_mid_bwd(void* g, const void* y, Py_ssize_t outer, Py_ssize_t C,
                          Py_ssize_t inner, bint f32, bint log_) noexcept nogil:
    if f32:
        _softmax_cols(<float*>g, <const float*>y, outer, C, inner, log_, True)
    else:
        _softmax_cols(<double*>g, <const double*>y, outer, C, inner, log_, True)


cdef void _softmax_pair(const Heads* a, floating* s, Py_ssize_t n, Py_ssize_t h) noexcept nogil:
    """Scores s (L, S) of pair (n, h) -> probabilities, in place: scaled, then masked (PyTorch's
    order), shifted by the row max, exponentiated, normalised."""
    cdef Py_ssize_t i, j
    cdef floating scale = <floating>a.scale
    cdef floating* r
    cdef const floating* m
    if a.mask == NULL and not a.causal:
        rows_shift(s, a.L, a.S, scale, False)
    else:
        for i in range(a.L):
            r = s + i * a.S
            for j in range(a.S):
                r[j] = r[j] * scale
            if a.mask != NULL:
                m = <const floating*>a.mask + n * a.mask_s[0] + h * a.mask_s[1] + \
                    i * a.mask_s[2]
                for j in range(a.S):
                    r[j] = r[j] + m[j * a.mask_s[3]]
            if a.causal:
                for j in range(i + 1, a.S):
                    r[j] = -INFINITY
        rows_shift(s, a.L, a.S, <floating>1, False)
    rows_exp_normalize(s, a.L, a.S)


cdef void _forward_pair(const Heads* a, floating* tag, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t n = i // a.H, h = i % a.H, isz = sizeof(floating)
    cdef floating* s = <floating*>a.p + i * a.L * a.S
    blas.product(floating is float, False, True, a.L, a.S, a.D, _at(&a.q, n, h, isz), a.q.sr,
                 _at(&a.k, n, h, isz), a.k.sr, s, a.S)
    _softmax_pair(a, s, n, h)
    blas.product(floating is float, False, False, a.L, a.Dv, a.S, s, a.S, _at(&a.v, n, h, isz),
                 a.v.sr, _at(&a.o, n, h, isz), a.o.sr)


cdef void _backward_pair(const Heads* a, floating* ds, Py_ssize_t i) noexcept nogil:
    """The pair's gradients (module docstring), dP and dS in ds (L, S)."""
    cdef Py_ssize_t n = i // a.H, h = i % a.H, isz = sizeof(floating)
    cdef Py_ssize_t L = a.L, S = a.S
    cdef const floating* p = <const floating*>a.p + i * L * S
    cdef bint f32 = floating is float
    cdef char* go = _at(&a.o, n, h, isz)
    blas.gemm(f32, True, False, S, a.Dv, L, p, S, go, a.o.sr, 0, _at(&a.dv, n, h, isz),
              a.dv.sr)
    blas.product(f32, False, True, L, S, a.Dv, go, a.o.sr, _at(&a.v, n, h, isz), a.v.sr, ds, S)
    rows_softmax_bwd(ds, p, L, S, <floating>a.scale)
    blas.product(f32, False, False, L, a.D, S, ds, S, _at(&a.k, n, h, isz), a.k.sr,
                 _at(&a.dq, n, h, isz), a.dq.sr)
    blas.gemm(f32, True, False, S, a.D, L, ds, S, _at(&a.q, n, h, isz), a.q.sr, 0,
              _at(&a.dk, n, h, isz), a.dk.sr)


cdef void heads_forward(Heads* a) noexcept nogil:
    """Probabilities into a.p and the output into a.o for every (batch, head) pair."""
    cdef int prev = blas.one_thread()
    team_run(_forward_item, a, a.N * a.H, nthreads() if _shared(a) else 1)
    blas.restore(prev)


cdef void _forward_item(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const Heads* a = <const Heads*>ctx
    if a.f32:
        _forward_pair(a, <float*>NULL, i)
    else:
        _forward_pair(a, <double*>NULL, i)


ctypedef struct HeadsBackward:
    const Heads* a
    char* scratch               # a block of L*S elements per thread slot
    Py_ssize_t blk


cdef void heads_backward(Heads* a, char* scratch, int threads) noexcept nogil:
    """dq, dk, dv for every pair from the output's gradient (in a.o) and the probabilities, on
    up to `threads` threads; scratch holds `threads` blocks of L*S elements."""
    cdef HeadsBackward w
    cdef int prev = blas.one_thread()
    w.a, w.scratch, w.blk = a, scratch, a.L * a.S * (4 if a.f32 else 8)
    team_run(_backward_item, &w, a.N * a.H, threads if _shared(a) else 1)
    blas.restore(prev)


cdef void _backward_item(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const HeadsBackward* w = <const HeadsBackward*>ctx
    if w.a.f32:
        _backward_pair(w.a, <float*>(w.scratch + slot * w.blk), i)
    else:
        _backward_pair(w.a, <double*>(w.scratch + slot * w.blk), i)

# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Matrix products for linear (forward and backward) on NumPy's OpenBLAS, called directly.

Note [Single-threaded BLAS for small products]
OpenBLAS splits a product over its pthreads pool above a tiny size (m*n*k > 65536), and its
workers busy-wait between calls. On this 2-core machine shared with other processes the second
thread is a gamble: measured per call, 1 thread vs 2 (min of 7 runs), at load ~2: 64x64x128
14 vs 11 us, 128x128x128 50 vs 33 us, 128x784x256 571 vs 308 us; at load ~6: 64x64x128 30 vs
96 us, 128x784x256 0.86 vs 1.9 ms (a W5-sized step with 2 threads at load 7 sometimes took
10-100x longer). A whole W6 step: 1.8 ms with 2 threads vs 2.7 ms with 1 at load ~2.5, but
146 ms vs 4.7 ms at load ~4.3. So every product here runs with OpenBLAS set to one thread (the
caller's count is put back after the call, read each time, so threadpoolctl limits are kept).

Note [Products on fastgrad's threads]
The second core still pays for large products when it is used without spinning: at SPLIT_MACS
multiply-adds and above, matmul2d cuts C = A @ B into one block of rows (or of columns, whichever
dimension is longer) per thread of fastgrad's thread team (set_num_threads), and each thread
runs single-threaded sgemm/dgemm on its block. The team's threads sleep when idle and take blocks
as they come (Note [A team that does not wait for its partners] in team.h), so the caller starts
at once and a late partner finds less to do. Measured per product (median, quiet): 128x784x256 609 -> 325 us,
128x256x256 194 -> 104 us (NumPy with OpenBLAS's own two threads: 310 and 104 us). Below
SPLIT_MACS (4M multiply-adds, ~100 us on one core) the split gains little or loses: waking the
partner costs 20-50 us on this VM (up to ~300 us after a millisecond idle), as much as the half
of a 1M-multiply-add product (~25 us) it would take over. With other
processes keeping both cores busy, a W6 step took 2.5 ms split against 3.3 ms on one thread
(OpenBLAS's spinning threads: 146 ms, Note [Single-threaded BLAS for small products]).
The blocks run different OpenBLAS kernels at their edges than the whole product would, so float32
results can differ from an unsplit product in the last bits (as they do between OpenBLAS thread
counts); a given thread count repeats bit for bit.
fastgrad._threads finds OpenBLAS's entry points (cblas_?gemm, LP64 or ILP64 from its config
string, and the thread-count setter and getter) in NumPy's own OpenBLAS; without them (another
BLAS) matmul2d returns None and the caller uses np.matmul.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.limits cimport INT_MAX
from libc.string cimport memcpy
from libc.stdlib cimport malloc, free
from cython cimport floating
import numpy as np

from fastgrad._core.kernels cimport nthreads, team_run
from fastgrad._core cimport linear_kernels as lk

cnp.import_array()

cdef extern from *:
    """
    enum { FG_ROW_MAJOR = 101, FG_NO_TRANS = 111, FG_TRANS = 112 };
    """
    enum:
        FG_ROW_MAJOR, FG_NO_TRANS, FG_TRANS

ctypedef void (*_set_t)(int) noexcept nogil
ctypedef int (*_get_t)() noexcept nogil
# cblas_?gemm with 32-bit (LP64) or 64-bit (ILP64) integers; CBLAS enums are C ints in both.
ctypedef void (*_sgemm32_t)(int, int, int, int, int, int, float, const float*, int,
                            const float*, int, float, float*, int) noexcept nogil
ctypedef void (*_dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                            const double*, int, double, double*, int) noexcept nogil
ctypedef void (*_sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*,
                            int64_t, const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*_dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*,
                            int64_t, const double*, int64_t, double, double*,
                            int64_t) noexcept nogil

from fastgrad._core.panel_tiles cimport fg_rt_ok, fg_rt_nr, fg_rt_pack, fg_rt_pack_t, \
    fg_rt_mm_bias

cdef _set_t _blas_set = NULL
cdef _get_t _blas_get = NULL
cdef void* _sgemm = NULL
cdef void* _dgemm = NULL
cdef bint _ilp64 = False
cdef Py_ssize_t SPLIT_MACS = 1 << 22


# One product C (m, n) = op(A) @ op(B), row-major, and the block [lo, hi) of rows (by_rows) or
# columns of C that one thread computes.
ctypedef struct Gemm:
    bint f32, by_rows
    Py_ssize_t parts
    int ta, tb
    Py_ssize_t m, n, k, lda, ldb, ldc, isz
    const char* a
    const char* b
    const char* bias       # (n,) C-contiguous, or NULL
    bint relu              # C's block clamped at 0 after the product (Note [Work beside a product])
    char* c


# Note [Work beside a product]
# Two passes over a linear layer's rows are fused with its products, to skip a pass over memory
# and a fork of the thread team each: a ReLU right after the forward product (each thread clamps
# its own block of C while it is still in cache, same formula as the relu kernel: 0 if x < 0
# else x, so NaN and -0.0 pass), and the bias gradient (column sums of G) beside the backward's
# products (ColSums: each part of the region sums its share of the columns after its product).
# Every column is still summed over all rows in row order, as lk.col_sum does alone, so neither
# the thread count nor the fusion changes a bit of the result.
ctypedef struct ColSums:
    bint f32
    const char* g          # (m, n), strides gs0, gs1 in elements; NULL: nothing to sum
    Py_ssize_t gs0, gs1, m, n
    char* out              # (n,) C-contiguous


def install(size_t setter, size_t getter, size_t sgemm, size_t dgemm, bint ilp64):
    """Give this module OpenBLAS's entry points (C addresses; setter 0 disables everything)."""
    global _blas_set, _blas_get, _sgemm, _dgemm, _ilp64
    if setter == 0 or getter == 0:
        _blas_set, _blas_get, _sgemm, _dgemm = NULL, NULL, NULL, NULL
        return
    _blas_set, _blas_get = <_set_t>setter, <_get_t>getter
    _sgemm, _dgemm, _ilp64 = <void*>sgemm, <void*>dgemm, ilp64


def installed():
    """(thread hooks, gemm entry points) found: for tests."""
    return (_blas_set != NULL, _sgemm != NULL and _dgemm != NULL)


def set_split_macs(Py_ssize_t n):
    """Set the multiply-adds above which a product is split across threads; returns the old one
    (for tests and benchmarks)."""
    global SPLIT_MACS
    old = SPLIT_MACS
    SPLIT_MACS = n
    return old


def blas_threads_during():
    """The OpenBLAS thread count a product here runs with (for tests), None without the hooks."""
    if _blas_set == NULL:
        return None
    cdef int prev = one_thread()
    try:
        return _blas_get()
    finally:
        restore(prev)


cdef int one_thread() noexcept nogil:
    """Set OpenBLAS to one thread; the count to put back with restore (0: nothing changed)."""
    cdef int prev
    if _blas_set == NULL:
        return 0
    prev = _blas_get()
    if prev <= 1:
        return 0
    _blas_set(1)
    return prev


cdef void restore(int prev) noexcept nogil:
    if prev > 0:
        _blas_set(prev)


cdef inline bint _layout(cnp.ndarray x, Py_ssize_t isz, int* trans, Py_ssize_t* ld) noexcept:
    """BLAS's view of 2-D x (r, c): row-major with leading dim ld (NoTrans), or column-major
    (Trans). False when neither (or misaligned): the caller copies or falls back."""
    cdef Py_ssize_t r = x.shape[0], c = x.shape[1]
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(x, 0), s1 = cnp.PyArray_STRIDE(x, 1)
    if (<size_t>cnp.PyArray_DATA(x)) % isz:
        return False
    # A dimension of length 1 is never stepped along, and NumPy leaves any stride on it (0 after
    # a broadcast, the old one after a slice); BLAS still checks the leading dimension, so such
    # a stride is replaced by the one a C-contiguous array would have.
    if c == 1:
        s1 = isz
    if r == 1:
        s0 = c * isz
    if (s1 == isz or c == 1) and s0 % isz == 0 and s0 // isz >= c:
        trans[0], ld[0] = FG_NO_TRANS, s0 // isz
        return True
    if (s0 == isz or r == 1) and s1 % isz == 0 and s1 // isz >= r:
        trans[0], ld[0] = FG_TRANS, s1 // isz
        return True
    return False


cdef object _prepare(Gemm* g, cnp.ndarray a, cnp.ndarray b, cnp.ndarray bias):
    """g set up for a (m, k) @ b (k, n) (+ bias (n,)) into a new C-contiguous array, which is
    returned (an operand BLAS cannot read in place is copied; g keeps pointers into a, b and
    bias, so the caller keeps them alive); None when BLAS's entry points were not found or the
    operands are not of that kind."""
    cdef int t = cnp.PyArray_TYPE(a)
    cdef cnp.npy_intp dims[2]
    cdef cnp.ndarray out
    if _sgemm == NULL or cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_NDIM(b) != 2 \
            or cnp.PyArray_TYPE(b) != t or (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64):
        return None
    g.f32 = t == cnp.NPY_FLOAT32
    g.isz = 4 if g.f32 else 8
    g.m, g.k, g.n = a.shape[0], a.shape[1], b.shape[1]
    if b.shape[0] != g.k or g.m == 0 or g.n == 0 or g.k == 0:
        return None
    g.bias = NULL
    g.relu = False
    if bias is not None:
        if cnp.PyArray_TYPE(bias) != t or cnp.PyArray_NDIM(bias) != 1 or bias.shape[0] != g.n \
                or not cnp.PyArray_IS_C_CONTIGUOUS(bias):
            return None
        g.bias = <const char*>cnp.PyArray_DATA(bias)
    if not _layout(a, g.isz, &g.ta, &g.lda) or not _layout(b, g.isz, &g.tb, &g.ldb):
        return None
    if not _ilp64 and max(g.m, g.n, g.k, g.lda, g.ldb) > INT_MAX:     # LP64 takes C ints
        return None
    dims[0], dims[1] = g.m, g.n
    out = cnp.PyArray_EMPTY(2, dims, t, 0)
    g.a, g.b, g.c = <const char*>cnp.PyArray_DATA(a), <const char*>cnp.PyArray_DATA(b), \
        <char*>cnp.PyArray_DATA(out)
    g.ldc = g.n
    g.by_rows = g.m >= g.n
    g.parts = 1
    return out


cdef inline cnp.ndarray _readable(cnp.ndarray x, Py_ssize_t isz):
    """x itself when BLAS can read it in place, else a C-contiguous copy."""
    cdef int t
    cdef Py_ssize_t ld
    if cnp.PyArray_NDIM(x) == 2 and _layout(x, isz, &t, &ld):
        return x
    return cnp.PyArray_GETCONTIGUOUS(x)


cdef object matmul2d(cnp.ndarray a, cnp.ndarray b, Py_ssize_t macs, cnp.ndarray bias=None,
                     bint relu=False, cnp.ndarray sum_rows_of=None, cnp.ndarray sums=None):
    """a (m, k) @ b (k, n) (+ bias, (n,), added in the product: C starts as the bias rows and
    BLAS accumulates with beta = 1) for 2-D float32/float64 arrays of one dtype, as a new
    C-contiguous array (an operand BLAS cannot read in place is copied first); None when BLAS's
    entry points were not found or the operands are not of that kind (the caller uses
    np.matmul and adds the bias itself). relu: the result clamped at 0; sum_rows_of (p, q):
    its rows summed into sums (q,) in the same region (Note [Work beside a product])."""
    cdef Gemm g
    cdef ColSums cs
    cdef Parts w
    cdef int prev, nt
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_NDIM(b) != 2:
        return None
    if not _col_sums_of(&cs, sum_rows_of, sums):
        return None
    a, b = _readable(a, isz), _readable(b, isz)
    if bias is not None:
        bias = cnp.PyArray_GETCONTIGUOUS(bias)
    out = _prepare(&g, a, b, bias)
    if out is None:
        return None
    g.relu = relu
    nt = nthreads()
    g.parts = nt
    if macs < SPLIT_MACS or (g.m if g.by_rows else g.n) < 32 * g.parts or nt == 1:
        g.parts = 1
    with nogil:
        prev = one_thread()
        if g.parts == 1:
            _block(&g, 0, g.m if g.by_rows else g.n)
            _sums_part(&cs, 0, 1)
        else:
            w.g, w.cs = &g, &cs
            team_run(_part_item, &w, g.parts, nt)
        restore(prev)
    return out


ctypedef struct Parts:              # matmul2d's or matmul2d_pair's loop, for its items
    const Gemm* g               # matmul2d: part p of g; matmul2d_pair: product p of g[0..2)
    const ColSums* cs


cdef void _part_item(void* ctx, Py_ssize_t p, int slot) noexcept nogil:
    cdef const Parts* w = <const Parts*>ctx
    _part(w.g, p)
    _sums_part(w.cs, p, w.g.parts)


cdef void _pair_item(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const Parts* w = <const Parts*>ctx
    cdef const Gemm* g = &w.g[i]
    _block(g, 0, g.m if g.by_rows else g.n)
    _sums_part(w.cs, i, 2)


cdef bint _col_sums_of(ColSums* s, cnp.ndarray g, cnp.ndarray out) noexcept:
    """s set up to sum the rows of 2-D g into out (C-contiguous, g's dtype, float32/float64);
    s.g = NULL when g is None. False when g or out is not of that kind."""
    s.g = NULL
    if g is None:
        return True
    cdef int t = cnp.PyArray_TYPE(g)
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(g)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(g) != 2 \
            or out is None or cnp.PyArray_TYPE(out) != t or cnp.PyArray_NDIM(out) != 1 \
            or out.shape[0] != g.shape[1] or not cnp.PyArray_IS_C_CONTIGUOUS(out) \
            or cnp.PyArray_STRIDE(g, 0) % isz or cnp.PyArray_STRIDE(g, 1) % isz:
        return False
    s.f32 = t == cnp.NPY_FLOAT32
    s.gs0, s.gs1 = cnp.PyArray_STRIDE(g, 0) // isz, cnp.PyArray_STRIDE(g, 1) // isz
    s.m, s.n = g.shape[0], g.shape[1]
    s.g, s.out = <const char*>cnp.PyArray_DATA(g), <char*>cnp.PyArray_DATA(out)
    return True


cdef void _sums_part(const ColSums* s, Py_ssize_t p, Py_ssize_t parts) noexcept nogil:
    """Columns [n p / parts, n (p + 1) / parts) of s's row sums."""
    cdef Py_ssize_t lo = s.n * p // parts, hi = s.n * (p + 1) // parts
    if s.g == NULL or hi <= lo:
        return
    if s.f32:
        lk.col_sum(<const float*>s.g + lo * s.gs1, s.gs0, s.gs1, <float*>s.out + lo, s.m, hi - lo)
    else:
        lk.col_sum(<const double*>s.g + lo * s.gs1, s.gs0, s.gs1, <double*>s.out + lo, s.m,
                   hi - lo)


# Note [Two products at once]
# A linear layer's backward makes two independent products of the same multiply-add count,
# grad_input = G @ W and grad_weight = G^T @ X. On two or more threads, when each is large enough
# to be split (SPLIT_MACS), matmul2d_pair gives each product a thread of its own instead of
# splitting them one after the other: no block edges, each B packed once instead of once per
# block, one fork of the team instead of two. Each product is one unsplit call, as on one thread,
# so the thread count does not change the result.

cdef bint pair_pays(Py_ssize_t macs) noexcept nogil:
    """Whether two products of `macs` multiply-adds each go one per thread (two or more threads,
    each product large enough to be split otherwise): a check to make before preparing them."""
    return nthreads() >= 2 and macs >= SPLIT_MACS


cdef tuple matmul2d_pair(cnp.ndarray a1, cnp.ndarray b1, cnp.ndarray a2, cnp.ndarray b2,
                         cnp.ndarray sum_rows_of=None, cnp.ndarray sums=None):
    """(a1 @ b1, a2 @ b2), one product per thread (Note [Two products at once]); None when that
    does not apply (one thread, a product below SPLIT_MACS, or operands matmul2d refuses): the
    caller makes the two products with matmul2d. sum_rows_of: its rows summed into sums, half
    the columns on each thread after its product (Note [Work beside a product])."""
    cdef Gemm gs[2]
    cdef ColSums cs
    cdef Parts w
    cdef int prev
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a1)
    if cnp.PyArray_NDIM(a1) != 2 or cnp.PyArray_NDIM(b1) != 2 or \
            cnp.PyArray_NDIM(a2) != 2 or cnp.PyArray_NDIM(b2) != 2:
        return None
    if not pair_pays(min(a1.shape[0] * a1.shape[1] * b1.shape[1],
                         a2.shape[0] * a2.shape[1] * b2.shape[1])):
        return None
    if not _col_sums_of(&cs, sum_rows_of, sums):
        return None
    a1, b1, a2, b2 = _readable(a1, isz), _readable(b1, isz), _readable(a2, isz), \
        _readable(b2, isz)
    o1 = _prepare(&gs[0], a1, b1, None)
    o2 = _prepare(&gs[1], a2, b2, None)
    if o1 is None or o2 is None:
        return None
    with nogil:
        prev = one_thread()
        w.g, w.cs = gs, &cs
        team_run(_pair_item, &w, 2, 2)
        restore(prev)
    return (o1, o2)


cdef inline void _part(const Gemm* g, Py_ssize_t p) noexcept nogil:
    """Block p of g.parts: equal shares of the split dimension, cut on multiples of 16."""
    cdef Py_ssize_t parts = g.parts
    cdef Py_ssize_t total = g.m if g.by_rows else g.n
    cdef Py_ssize_t lo = (total * p // parts) // 16 * 16
    cdef Py_ssize_t hi = total if p == parts - 1 else (total * (p + 1) // parts) // 16 * 16
    if hi > lo:
        _block(g, lo, hi)


cdef void _block(const Gemm* g, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Rows (or columns) [lo, hi) of C, on the calling thread."""
    cdef const char* a = g.a
    cdef const char* b = g.b
    cdef char* c = g.c
    cdef Py_ssize_t m = g.m, n = g.n, r
    cdef double beta = 0
    cdef const char* bias
    if g.by_rows:                  # A's rows lo..hi: row offset lo*lda (NoTrans) or lo (Trans)
        a += lo * (g.lda if g.ta == FG_NO_TRANS else 1) * g.isz
        c += lo * g.ldc * g.isz
        m = hi - lo
    else:                          # B's columns lo..hi: offset lo (NoTrans) or lo*ldb (Trans)
        b += lo * (1 if g.tb == FG_NO_TRANS else g.ldb) * g.isz
        c += lo * g.isz
        n = hi - lo
    bias = NULL if g.bias == NULL else g.bias + (0 if g.by_rows else lo * g.isz)
    if not (g.f32 and g.ta == FG_NO_TRANS and _tiled(m, n, g.k, <const float*>a, g.lda,
                                                     <const float*>b, g.ldb, g.tb == FG_TRANS,
                                                     <float*>c, g.ldc, <const float*>bias)):
        if bias != NULL:           # C's block starts as the bias rows; BLAS adds the product
            for r in range(m):
                memcpy(c + r * g.ldc * g.isz, bias, n * g.isz)
            beta = 1
        gemm(g.f32, g.ta == FG_TRANS, g.tb == FG_TRANS, m, n, g.k, a, g.lda, b, g.ldb, beta, c,
             g.ldc)
    if g.relu:
        if g.f32:
            _relu_rows(<float*>c, m, n, g.ldc)
        else:
            _relu_rows(<double*>c, m, n, g.ldc)


# Note [Linear products on packed panels]
# A float32 product whose A is row-major (a linear layer's forward x @ W^T and its input gradient
# G @ W) runs on the register tiles of the recurrent loops (panel_tiles.h, Note [Packed recurrent
# weights]) instead of OpenBLAS: B (W^T or W) is copied once into panels of NR columns, A's rows
# are read in place, and C is made in blocks of TILE_ROWS rows, every panel over a block's rows
# before the next block, so that the block of A stays in L2 while the panels pass. OpenBLAS
# copies both operands into its own layout for every call (in W13's forward its two copy
# routines took 14% of the CPU against 44% for its product kernel). Measured on one core
# (median of 100 calls; 512x384x128 is half of W13's qkv projection): 512x384x128 320 -> 285 us,
# 1024x128x256 (G @ W) 412 -> 371 us, 64x128x128 21.5 -> 13.9 us, 128x256x784 408 -> 349 us.
# A bias is added to each tile as it is stored (bias + product, the sum OpenBLAS's beta = 1 makes
# on C's bias rows), so C is written once: copying the bias rows first was 3% of W13's CPU
# (4,096 row copies a step), and a 1024x128 -> 384 linear forward is 5-11% faster without it.
# Each element of C is one multiply-add chain over k in order whichever block or thread computes
# it, so the thread split never changes a bit. Other products (A transposed, as in a weight
# gradient G^T @ X, where OpenBLAS measured faster; fewer than 8 rows; K beyond TILE_K; float64;
# a CPU without AVX2) stay on OpenBLAS.

cdef enum:
    TILE_ROWS = 128     # rows of C per block
    TILE_K = 1024       # longest K on the tiles (a panel's K x NR floats stream from L2)


def tiles(force=None):
    """The tile level of the linear products (2 AVX-512, 1 AVX2+FMA, 0 OpenBLAS only); force:
    at most that level from now on (tests run every path the CPU has)."""
    return fg_rt_ok(-1 if force is None else int(force))


cdef bint _tiled(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                 const float* b, Py_ssize_t ldb, bint tb, float* c, Py_ssize_t ldc,
                 const float* bias) noexcept nogil:
    """C (m, n) = A @ op(B) (+ bias (n,) on every row, added as each tile is stored: the bias
    rows are not written first) on the tiles (Note [Linear products on packed panels]); False
    when the product is not of that kind (or out of memory): nothing was written."""
    cdef Py_ssize_t nr, i0
    cdef void* mem
    cdef float* bp
    if m < 8 or k > TILE_K or fg_rt_ok(-1) == 0:
        return False
    nr = fg_rt_nr()
    mem = malloc(k * ((n + nr - 1) // nr * nr) * sizeof(float) + 64)
    if mem == NULL:
        return False
    bp = <float*>(<char*>mem + (64 - <size_t>mem % 64) % 64)
    if tb:
        fg_rt_pack_t(b, ldb, k, n, nr, k, bp)
    else:
        fg_rt_pack(b, ldb, k, n, nr, bp)
    i0 = 0
    while i0 < m:
        fg_rt_mm_bias(min(<Py_ssize_t>TILE_ROWS, m - i0), n, k, a + i0 * lda, lda, 1, bp,
                      c + i0 * ldc, ldc, bias)
        i0 += TILE_ROWS
    free(mem)
    return True


cdef void _relu_rows(floating* c, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ldc) noexcept nogil:
    """c[r, j] = 0 if c[r, j] < 0 else c[r, j] over m rows of n (the relu kernel's formula)."""
    cdef Py_ssize_t r, j
    cdef floating* row
    for r in range(m):
        row = c + r * ldc
        for j in range(n):
            row[j] = 0 if row[j] < 0 else row[j]


cdef void product(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                  const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb,
                  void* c, Py_ssize_t ldc) noexcept nogil:
    """C (m, n) = op(A) @ op(B) on the calling thread: on the tiles when A is float32 and not
    transposed (Note [Linear products on packed panels]; a small product then skips OpenBLAS's
    per-call set-up and its copies of both operands), else one gemm."""
    if f32 and not ta and _tiled(m, n, k, <const float*>a, lda, <const float*>b, ldb, tb,
                                 <float*>c, ldc, NULL):
        return
    gemm(f32, ta, tb, m, n, k, a, lda, b, ldb, 0, c, ldc)


cdef bint gemm(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, double beta,
               void* c, Py_ssize_t ldc) noexcept nogil:
    """One row-major product C (m, n) = op(A) @ op(B) + beta * C on the calling thread, for
    kernels that drive many small products themselves (the caller sets OpenBLAS to one thread
    around its loop with one_thread/restore, e.g. one sample per thread in the convolutions).
    Plain loops when OpenBLAS's entry points were not found or a size exceeds LP64's ints.
    Always True (the product was made)."""
    cdef int ta_ = FG_TRANS if ta else FG_NO_TRANS, tb_ = FG_TRANS if tb else FG_NO_TRANS
    if m == 0 or n == 0:
        return True
    if _sgemm == NULL or (not _ilp64 and max(m, n, k, lda, ldb, ldc) > INT_MAX):
        if f32:
            _naive_gemm[float](ta, tb, m, n, k, <const float*>a, lda, <const float*>b, ldb,
                               beta, <float*>c, ldc)
        else:
            _naive_gemm[double](ta, tb, m, n, k, <const double*>a, lda, <const double*>b, ldb,
                                beta, <double*>c, ldc)
    elif f32:
        if _ilp64:
            (<_sgemm64_t>_sgemm)(FG_ROW_MAJOR, ta_, tb_, m, n, k, 1.0, <const float*>a, lda,
                                 <const float*>b, ldb, <float>beta, <float*>c, ldc)
        else:
            (<_sgemm32_t>_sgemm)(FG_ROW_MAJOR, ta_, tb_, <int>m, <int>n, <int>k, 1.0,
                                 <const float*>a, <int>lda, <const float*>b, <int>ldb,
                                 <float>beta, <float*>c, <int>ldc)
    else:
        if _ilp64:
            (<_dgemm64_t>_dgemm)(FG_ROW_MAJOR, ta_, tb_, m, n, k, 1.0, <const double*>a, lda,
                                 <const double*>b, ldb, beta, <double*>c, ldc)
        else:
            (<_dgemm32_t>_dgemm)(FG_ROW_MAJOR, ta_, tb_, <int>m, <int>n, <int>k, 1.0,
                                 <const double*>a, <int>lda, <const double*>b, <int>ldb,
                                 beta, <double*>c, <int>ldc)
    return True


cdef void _naive_gemm(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                      double beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    cdef Py_ssize_t i, j, p
    cdef double s
    for i in range(m):
        for j in range(n):
            s = 0
            for p in range(k):
                s += (a[p * lda + i] if ta else a[i * lda + p]) * \
                    (b[j * ldb + p] if tb else b[p * ldb + j])
            c[i * ldc + j] = <floating>(s + (beta * c[i * ldc + j] if beta != 0 else 0))


# Note [Batched products]
# bmm runs a stack of equal-shaped products (attention's per-head q k^T, P v and their
# gradients) with each product a single-threaded sgemm/dgemm read in place through its batch
# offsets (broadcast batch dims are stride 0, transposed views are BLAS's Trans), and the stack
# split across fastgrad's thread team when it holds SPLIT_MACS multiply-adds or more: whole
# products per thread, so no product is cut and results do not depend on the thread count.

@cython.wraparound(True)
cdef object _batch_offsets(object x, tuple batch):
    """Byte offset of each batch element of x (broadcast to batch + its last two dims), in
    C order, as a contiguous int64 array."""
    off = np.zeros(batch, dtype=np.int64)
    nd = len(batch)
    for d in range(nd):
        shape = [1] * nd
        shape[d] = batch[d]
        off += (np.arange(batch[d], dtype=np.int64) * x.strides[d]).reshape(shape)
    return np.ascontiguousarray(off.reshape(-1))


@cython.wraparound(True)               # negative indices into Python shape tuples
cdef object bmm(object a, object b):
    """np.matmul(a, b) for float32/float64 arrays of one dtype with at least 2 dims (batch dims
    broadcast), as a new C-contiguous array (Note [Batched products]); None when BLAS's entry
    points were not found or the operands are not of that kind (the caller uses np.matmul)."""
    cdef Gemm g
    cdef Batch bt
    cdef cnp.ndarray a2, b2, oa, ob, out, sample
    cdef Py_ssize_t B, i, isz
    cdef int prev, nt
    cdef const int64_t* pa
    cdef const int64_t* pb
    if _sgemm == NULL or a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or \
            a.dtype not in (np.float32, np.float64):
        return None
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    if b.shape[-2] != k:
        return None
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    g.f32 = a.dtype == np.float32
    g.isz = isz = 4 if g.f32 else 8
    B = 1
    for s in batch:
        B *= s
    if B == 0 or m == 0 or n == 0 or k == 0:
        return np.zeros(batch + (m, n), dtype=a.dtype)
    a2 = np.broadcast_to(a, batch + (m, k))
    b2 = np.broadcast_to(b, batch + (k, n))
    sample = a2[(0,) * len(batch)]
    if not _layout(sample, isz, &g.ta, &g.lda):
        a2 = np.ascontiguousarray(a2)
        if not _layout(a2[(0,) * len(batch)], isz, &g.ta, &g.lda):
            return None
    sample = b2[(0,) * len(batch)]
    if not _layout(sample, isz, &g.tb, &g.ldb):
        b2 = np.ascontiguousarray(b2)
        if not _layout(b2[(0,) * len(batch)], isz, &g.tb, &g.ldb):
            return None
    if not _ilp64 and max(m, n, k, g.lda, g.ldb) > INT_MAX:
        return None
    oa = _batch_offsets(a2, batch)
    ob = _batch_offsets(b2, batch)
    out = np.empty(batch + (m, n), dtype=a.dtype)
    g.m, g.n, g.k, g.ldc = m, n, k, n
    g.by_rows, g.parts, g.bias, g.relu = True, 1, NULL, False
    g.a, g.b, g.c = <const char*>cnp.PyArray_DATA(a2), <const char*>cnp.PyArray_DATA(b2), \
        <char*>cnp.PyArray_DATA(out)
    pa, pb = <const int64_t*>cnp.PyArray_DATA(oa), <const int64_t*>cnp.PyArray_DATA(ob)
    nt = nthreads()
    with nogil:
        prev = one_thread()
        bt.g, bt.oa, bt.ob = &g, pa, pb
        team_run(_batch_piece, &bt, B, nt if B * g.m * g.n * g.k >= SPLIT_MACS else 1)
        restore(prev)
    return out


ctypedef struct Batch:
    const Gemm* g
    const int64_t* oa
    const int64_t* ob


cdef void _batch_piece(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const Batch* bt = <const Batch*>ctx
    _batch_item(bt.g, i, bt.oa, bt.ob)


cdef void _batch_item(const Gemm* g, Py_ssize_t i, const int64_t* oa,
                      const int64_t* ob) noexcept nogil:
    """Product i of a batch: g with its operands moved to the element's offsets."""
    cdef Gemm h = g[0]
    h.a = g.a + oa[i]
    h.b = g.b + ob[i]
    h.c = g.c + i * g.m * g.n * g.isz
    _block(&h, 0, h.m)

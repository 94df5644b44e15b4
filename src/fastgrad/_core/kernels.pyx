# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Elementwise loops. Raw pointers in, raw pointers out; no Python objects, no allocation.

Note [Kernel contract]
Callers pass C-contiguous buffers of `n` elements of one floating type, already checked to have
equal shapes (or a scalar operand passed as a double). Loops are written one per op so the
compiler vectorises each; above PAR_MIN elements they split across OpenMP threads with a static
schedule, so every element is computed by the same formula whatever the thread count. exp, tanh,
sigmoid and log run the vectorised loops of vmath.h (Note [Vectorised transcendental kernels]).

Note [Deterministic sums]
sum_all cuts the buffer into SUM_CHUNK-element chunks (a constant, not a function of the thread
count), sums each chunk with fixed-order float64 accumulators, and adds the chunk sums in index
order on one thread. Threads only decide who computes which chunk, so the result is bit-identical
for any set_num_threads(). tests/test_threads.py checks it.
"""
from libc.stdlib cimport malloc, free
from libc.math cimport sqrt, sqrtf, sin, sinf, cos, cosf, fabs, fabsf, pow, powf
from cython.parallel cimport prange

cdef extern from "vmath.h" nogil:
    ctypedef void (*fg_vm_f32_fn)(const float*, float*, Py_ssize_t) noexcept nogil
    ctypedef void (*fg_vm_f64_fn)(const double*, double*, Py_ssize_t) noexcept nogil
    fg_vm_f32_fn fg_vm_f32[4]
    fg_vm_f64_fn fg_vm_f64[4]
    int FG_VM_EXP, FG_VM_TANH, FG_VM_SIGMOID, FG_VM_LOG
    int fg_vm_select(int want_avx2)
    double fg_sum_chunk_f32(const float* a, Py_ssize_t n)
    double fg_sum_chunk_f64(const double* a, Py_ssize_t n)

# Note [Keeping large buffers]
# glibc serves allocations above its mmap threshold (dynamic, at most 32 MiB) with fresh mmaps
# and returns heap tops above its trim threshold to the OS, so every large temporary of a step is
# page-faulted in and zeroed by the kernel again: measured here, W2 at n = 1e6 spent ~65% of its
# CPU time in page faults (3,900 per step) and at n = 1e7 ~40% (5,100 per step). Raising both
# thresholds once keeps freed buffers in the heap for the next step: 0 faults per step. Memory
# stays flat (the heap does not grow past the largest working set), but after a large
# computation up to FG_TRIM bytes of freed heap stay mapped. FASTGRAD_KEEP_BUFFERS=0 opts out.
cdef extern from *:
    """
    #if defined(__GLIBC__)
    #include <malloc.h>
    static int fg_keep_large_buffers(int mmap_threshold, int trim_threshold) {
        return mallopt(M_MMAP_THRESHOLD, mmap_threshold) && mallopt(M_TRIM_THRESHOLD, trim_threshold);
    }
    #else
    static int fg_keep_large_buffers(int a, int b) { (void)a; (void)b; return 0; }
    #endif
    """
    int fg_keep_large_buffers(int mmap_threshold, int trim_threshold)

cdef enum:
    FG_MMAP = 256 * 1024 * 1024     # buffers below this come from the heap (and are reused)
    FG_TRIM = 512 * 1024 * 1024     # free heap top kept mapped up to this


def keep_large_buffers():
    """Apply Note [Keeping large buffers]; True when the C library took the settings."""
    return bool(fg_keep_large_buffers(FG_MMAP, FG_TRIM))


if __import__("os").environ.get("FASTGRAD_KEEP_BUFFERS", "1") != "0":
    keep_large_buffers()


# Threads for every parallel loop of this module (fastgrad.set_num_threads). A module global,
# not omp_set_num_threads: OpenMP's setting is per calling thread, torch's is per process.
#
# Note [Threads after fork]
# libgomp keeps the team it started for a thread; in a child forked from that thread the team's
# threads do not exist, and the child's first parallel loop waits for them forever (measured: a
# 1e6-element multiply in a multiprocessing "fork" worker hung). Like torch, which drops to one
# thread in a forked child, fastgrad marks the child at fork (pthread_atfork) and runs every
# parallel loop there on the calling thread; set_num_threads in the child warns and keeps one.
cdef extern from *:
    """
    #include <pthread.h>
    static int fg_forked = 0;
    static void fg_on_fork_child(void) { fg_forked = 1; }
    static int fg_watch_fork(void) { return pthread_atfork(NULL, NULL, fg_on_fork_child); }
    """
    int fg_forked
    int fg_watch_fork()

fg_watch_fork()
cdef int _nthreads = 1
cdef int _isa = fg_vm_select(1)
cdef enum:
    CHUNK = 16384          # elements per parallel work item of the vectorised loops
    SUM_CHUNK = 16384      # elements per partial sum (fixed: Note [Deterministic sums])


def set_threads(int n):
    """Threads for the parallel loops (n >= 1; checked by the caller)."""
    global _nthreads
    _nthreads = n


def get_threads():
    return nthreads()


def forked():
    """True in a process forked from one that had imported fastgrad (Note [Threads after fork])."""
    return bool(fg_forked)


cdef int nthreads() noexcept nogil:
    """The team size for a parallel loop: set_num_threads's, or 1 in a forked child."""
    return 1 if fg_forked else _nthreads


def vmath_isa(want=None):
    """The instruction set the exp/tanh/sigmoid/log loops use: "avx2" (AVX2+FMA) or "baseline".
    want="baseline"/"avx2" switches (avx2 only where the CPU has it); for tests and benchmarks."""
    global _isa
    if want is not None:
        if want not in ("avx2", "baseline"):
            raise ValueError(f"vmath_isa: want must be 'avx2' or 'baseline', got {want!r}")
        _isa = fg_vm_select(want == "avx2")
    return "avx2" if _isa else "baseline"


# One elementwise call: which loop, its operands, and their precision. _launch runs it on the
# whole buffer, or in CHUNK pieces across the OpenMP team when n is large enough; small calls
# never enter OpenMP (a `parallel if(0)` region still costs ~0.7 µs, more than a 1-element op).
cdef enum:
    K_BINARY, K_SCALAR, K_UNARY, K_BWD, K_BWD_S, K_MUL_BOTH

ctypedef struct Job:
    int kind, op
    bint f32
    const void* a
    const void* b
    const void* c          # K_MUL_BOTH's third input
    void* out
    void* out2             # K_MUL_BOTH's second output
    double s


cdef inline void _launch(int kind, int op, bint f32, const void* a, const void* b, void* out,
                         double s, Py_ssize_t n) noexcept nogil:
    cdef Job j
    j.kind, j.op, j.f32, j.a, j.b, j.out, j.s = kind, op, f32, a, b, out, s
    _go(&j, n)


cdef inline void _go(const Job* j, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t c, lo, nch
    cdef int team = nthreads()
    if n < PAR_MIN or team == 1:
        _run(j, 0, n)
        return
    nch = (n + CHUNK - 1) // CHUNK
    for c in prange(nch, schedule="static", num_threads=team):
        lo = c * CHUNK
        _run(j, lo, min(<Py_ssize_t>CHUNK, n - lo))


cdef void _run(const Job* j, Py_ssize_t lo, Py_ssize_t m) noexcept nogil:
    """Elements [lo, lo + m) of job j, on the calling thread."""
    if j.kind == K_MUL_BOTH:
        if j.f32:
            _mul_both_run(<const float*>j.a + lo, <const float*>j.b + lo, <const float*>j.c + lo,
                          <float*>j.out + lo, <float*>j.out2 + lo, m)
        else:
            _mul_both_run(<const double*>j.a + lo, <const double*>j.b + lo,
                          <const double*>j.c + lo, <double*>j.out + lo, <double*>j.out2 + lo, m)
    elif j.f32:
        _run_t(j, <float*>j.out + lo, <const float*>j.a + lo if j.a != NULL else NULL,
               <const float*>j.b + lo if j.b != NULL else NULL, m)
    else:
        _run_t(j, <double*>j.out + lo, <const double*>j.a + lo if j.a != NULL else NULL,
               <const double*>j.b + lo if j.b != NULL else NULL, m)


cdef inline void _run_t(const Job* j, floating* out, const floating* a, const floating* b,
                        Py_ssize_t m) noexcept nogil:
    if j.kind == K_BINARY:
        _binary_run(j.op, a, b, out, m)
    elif j.kind == K_SCALAR:
        _scalar_run(j.op, a, j.s, out, m)
    elif j.kind == K_UNARY:
        _unary_run(j.op, a, out, m)
    elif j.kind == K_BWD:
        _bwd_run(j.op, a, b, out, m)
    else:
        _bwd_s_run(j.op, j.s, b, out, m)


cdef double sum_all(const floating* a, Py_ssize_t n) noexcept nogil:
    """Sum of n elements in float64, bit-identical for any thread count (Note [Deterministic
    sums]): chunk sums added in index order, whoever computed them."""
    cdef Py_ssize_t nch = (n + SUM_CHUNK - 1) // SUM_CHUNK, c
    cdef double stack_part[64]
    cdef double* part = stack_part
    cdef double total = 0
    cdef int team = nthreads()
    if n < PAR_MIN or team == 1 or (nch > 64 and
                                         (part := <double*>malloc(nch * sizeof(double))) == NULL):
        for c in range(nch):                 # the same chunks, the same order, one thread
            total += _chunk_sum(a, c, n)
        return total
    for c in prange(nch, schedule="static", num_threads=team):
        part[c] = _chunk_sum(a, c, n)
    for c in range(nch):
        total += part[c]
    if part != stack_part:
        free(part)
    return total


cdef inline double _chunk_sum(const floating* a, Py_ssize_t c, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t lo = c * SUM_CHUNK
    if floating is float:
        return fg_sum_chunk_f32(a + lo, min(<Py_ssize_t>SUM_CHUNK, n - lo))
    else:
        return fg_sum_chunk_f64(a + lo, min(<Py_ssize_t>SUM_CHUNK, n - lo))

cdef void binary_fwd(int op, const floating* a, const floating* b, floating* out,
                     Py_ssize_t n) noexcept nogil:
    """out[i] = a[i] (+ - * / **) b[i]"""
    _launch(K_BINARY, op, floating is float, a, b, out, 0, n)


cdef void mul_both(const floating* g, const floating* b, const floating* a, floating* ga,
                   floating* gb, Py_ssize_t n) noexcept nogil:
    """ga[i] = g[i] * b[i], gb[i] = g[i] * a[i]: mul's two gradients in one pass over g."""
    cdef Job j
    j.kind, j.f32, j.a, j.b, j.c, j.out, j.out2 = K_MUL_BOTH, floating is float, g, b, a, ga, gb
    _go(&j, n)


cdef void _mul_both_run(const floating* g, const floating* b, const floating* a, floating* ga,
                        floating* gb, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x
    for i in range(n):
        x = g[i]
        ga[i] = x * b[i]
        gb[i] = x * a[i]


cdef void _binary_run(int op, const floating* a, const floating* b, floating* out,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if op == OP_ADD:
        for i in range(n):
            out[i] = a[i] + b[i]
    elif op == OP_SUB:
        for i in range(n):
            out[i] = a[i] - b[i]
    elif op == OP_MUL:
        for i in range(n):
            out[i] = a[i] * b[i]
    elif op == OP_DIV:
        for i in range(n):
            out[i] = a[i] / b[i]
    elif op == OP_POW:
        for i in range(n):
            out[i] = powf(a[i], b[i]) if floating is float else pow(a[i], b[i])


cdef inline floating _bin(int op, floating x, floating y) noexcept nogil:
    if op == OP_ADD:
        return x + y
    if op == OP_SUB:
        return x - y
    if op == OP_MUL:
        return x * y
    if op == OP_DIV:
        return x / y
    return powf(x, y) if floating is float else pow(x, y)


cdef void strided_fwd(int op, const floating* a, const floating* b, floating* out,
                      int nd, const Py_ssize_t* shape, const Py_ssize_t* sa,
                      const Py_ssize_t* sb) noexcept nogil:
    """out (C-contiguous, `shape`) = a (op) b, where a and b are read through element strides
    sa, sb (0 on broadcast dimensions). The innermost dimension is a plain loop; the outer ones
    advance an index counter, so any rank and any broadcast works without copies."""
    cdef Py_ssize_t idx[32]
    cdef Py_ssize_t i, inner = shape[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1]
    cdef Py_ssize_t offa = 0, offb = 0, pos = 0
    cdef int d
    for d in range(nd):
        idx[d] = 0
        if shape[d] == 0:
            return
    while True:
        if ia == 1 and ib == 1:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i], b[offb + i])
        elif ia == 0 and ib == 1:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa], b[offb + i])
        elif ia == 1 and ib == 0:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i], b[offb])
        else:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i * ia], b[offb + i * ib])
        pos += inner
        d = nd - 2
        while d >= 0:
            idx[d] += 1
            offa += sa[d]
            offb += sb[d]
            if idx[d] < shape[d]:
                break
            offa -= sa[d] * shape[d]
            offb -= sb[d] * shape[d]
            idx[d] = 0
            d -= 1
        if d < 0:
            return


cdef void scalar_fwd(int op, const floating* a, double s, floating* out,
                     Py_ssize_t n) noexcept nogil:
    """out[i] = a[i] (op) s, or s (op) a[i] for OP_RSUB / OP_RDIV, in the buffer's precision"""
    _launch(K_SCALAR, op, floating is float, a, NULL, out, s, n)


cdef void _scalar_run(int op, const floating* a, double s, floating* out,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating c = <floating>s
    if op == OP_ADD:
        for i in range(n):
            out[i] = a[i] + c
    elif op == OP_SUB:
        for i in range(n):
            out[i] = a[i] - c
    elif op == OP_MUL:
        for i in range(n):
            out[i] = a[i] * c
    elif op == OP_DIV:
        for i in range(n):
            out[i] = a[i] / c
    elif op == OP_RSUB:
        for i in range(n):
            out[i] = c - a[i]
    elif op == OP_RDIV:
        for i in range(n):
            out[i] = c / a[i]
    elif op == OP_POW:
        # PyTorch's exponents computed by products and divisions (bit-identical to it); the
        # exponent is compared as given, before rounding to the buffer's precision
        if s == 2:
            for i in range(n):
                out[i] = a[i] * a[i]
        elif s == 3:
            for i in range(n):
                out[i] = a[i] * a[i] * a[i]
        elif s == -1:
            for i in range(n):
                out[i] = 1 / a[i]
        elif s == -2:
            for i in range(n):
                out[i] = 1 / (a[i] * a[i])
        elif s == 0.5:                  # a square root, as PyTorch: -0.0 ** 0.5 is -0.0
            for i in range(n):
                out[i] = sqrtf(a[i]) if floating is float else sqrt(a[i])
        elif s == -0.5:                 # and -0.0 ** -0.5 is -inf
            for i in range(n):
                out[i] = 1 / (sqrtf(a[i]) if floating is float else sqrt(a[i]))
        elif floating is float:
            for i in range(n):
                out[i] = powf(a[i], c)
        else:
            for i in range(n):
                out[i] = pow(a[i], c)


cdef void unary_fwd(int op, const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    """out[i] = f(a[i]) for the op's f"""
    _launch(K_UNARY, op, floating is float, a, NULL, out, 0, n)


cdef void _unary_run(int op, const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef int vm = -1
    if op == OP_EXP:
        vm = FG_VM_EXP
    elif op == OP_TANH:
        vm = FG_VM_TANH
    elif op == OP_SIGMOID:
        vm = FG_VM_SIGMOID
    elif op == OP_LOG:
        vm = FG_VM_LOG
    if op == OP_NEG:
        for i in range(n):
            out[i] = -a[i]
    elif vm >= 0:
        if floating is float:
            fg_vm_f32[vm](a, out, n)
        else:
            fg_vm_f64[vm](a, out, n)
    elif op == OP_RELU:
        for i in range(n):
            out[i] = 0 if a[i] < 0 else a[i]     # NaN and -0.0 pass through, as PyTorch
    else:
        _unary_math(op, a, out, n)


cdef void _unary_math(int op, const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    """sqrt, sin, cos, abs, reciprocal"""
    cdef Py_ssize_t i
    for i in range(n):
        if op == OP_SQRT:
            out[i] = sqrtf(a[i]) if floating is float else sqrt(a[i])
        elif op == OP_SIN:
            out[i] = sinf(a[i]) if floating is float else sin(a[i])
        elif op == OP_COS:
            out[i] = cosf(a[i]) if floating is float else cos(a[i])
        elif op == OP_ABS:
            out[i] = fabsf(a[i]) if floating is float else fabs(a[i])
        elif op == OP_RECIPROCAL:
            out[i] = 1 / a[i]


cdef void unary_bwd(int op, const floating* g, const floating* y, floating* out,
                    Py_ssize_t n) noexcept nogil:
    """Fused backward from the saved output y:
    tanh: g*(1-y*y); sigmoid: g*y*(1-y); exp: g*y; relu: g unless y <= 0 (a select: Note
    [Selecting, not masking, gradients] in ops_pointwise.pyx); reciprocal: -g*(y*y)"""
    _launch(K_BWD, op, floating is float, g, y, out, 0, n)


cdef void _bwd_run(int op, const floating* g, const floating* y, floating* out,
                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi
    if op == OP_TANH:
        for i in range(n):
            out[i] = g[i] * (1 - y[i] * y[i])
    elif op == OP_SIGMOID:
        for i in range(n):
            out[i] = g[i] * y[i] * (1 - y[i])
    elif op == OP_EXP:
        for i in range(n):
            out[i] = g[i] * y[i]
    elif op == OP_RELU:                   # g read unconditionally: a select, so it vectorises
        for i in range(n):
            gi = g[i]
            out[i] = 0 if y[i] <= 0 else gi   # NaN y passes g, as PyTorch
    elif op == OP_RECIPROCAL:
        for i in range(n):
            out[i] = -g[i] * (y[i] * y[i])   # PyTorch's grouping: inf * (tiny**2 == 0) is NaN


cdef inline floating _bwd1(int op, floating g, floating y) noexcept nogil:
    if op == OP_TANH:
        return g * (1 - y * y)
    if op == OP_SIGMOID:
        return g * y * (1 - y)
    if op == OP_EXP:
        return g * y
    if op == OP_RELU:
        return 0 if y <= 0 else g
    return -g * (y * y)


cdef void unary_bwd_s(int op, double g, const floating* y, floating* out,
                      Py_ssize_t n) noexcept nogil:
    """unary_bwd for a gradient that is one number broadcast over y (e.g. below a sum)."""
    _launch(K_BWD_S, op, floating is float, NULL, y, out, g, n)


cdef void _bwd_s_run(int op, double g, const floating* y, floating* out,
                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating c = <floating>g
    for i in range(n):
        out[i] = _bwd1(op, c, y[i])

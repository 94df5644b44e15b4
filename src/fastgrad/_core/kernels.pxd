# Elementwise loops over contiguous buffers: raw pointers in, raw pointers out; no Python objects,
# no allocation. The caller (ops_pointwise.pyx) validated shapes and dtypes. See kernels.pyx.
from cython cimport floating

# op codes shared by kernels and ops_pointwise (one table, read top to bottom)
cdef enum:
    OP_ADD = 0
    OP_SUB = 1
    OP_MUL = 2
    OP_DIV = 3
    OP_RSUB = 4            # s - a (scalar on the left)
    OP_RDIV = 5            # s / a
    OP_NEG = 10
    OP_ABS = 11
    OP_EXP = 12
    OP_LOG = 13
    OP_SQRT = 14
    OP_SIN = 15
    OP_COS = 16
    OP_TANH = 17
    OP_SIGMOID = 18
    OP_RELU = 19
    OP_RECIPROCAL = 20
    OP_POW = 21            # a ** s (binary: a ** b)

# Work below this many elements runs on one thread (OpenMP above it).
cdef enum:
    PAR_MIN = 65536

cdef int nthreads() noexcept nogil                                            # set_num_threads
cdef void binary_fwd(int op, const floating* a, const floating* b, floating* out,   # IN, IN, OUT
                     Py_ssize_t n) noexcept nogil
cdef void mul_both(const floating* g, const floating* b, const floating* a,          # IN x3
                   floating* ga, floating* gb, Py_ssize_t n) noexcept nogil         # OUT x2
cdef void strided_fwd(int op, const floating* a, const floating* b, floating* out,  # IN, IN, OUT
                      int nd, const Py_ssize_t* shape, const Py_ssize_t* sa,
                      const Py_ssize_t* sb) noexcept nogil
cdef void scalar_fwd(int op, const floating* a, double s, floating* out,            # IN, -, OUT
                     Py_ssize_t n) noexcept nogil
cdef void unary_fwd(int op, const floating* a, floating* out,                       # IN, OUT
                    Py_ssize_t n) noexcept nogil
cdef void unary_bwd(int op, const floating* g, const floating* y, floating* out,    # IN, IN, OUT
                    Py_ssize_t n) noexcept nogil
cdef void unary_bwd_s(int op, double g, const floating* y, floating* out,         # -, IN, OUT
                      Py_ssize_t n) noexcept nogil
cdef double sum_all(const floating* a, Py_ssize_t n) noexcept nogil                # IN

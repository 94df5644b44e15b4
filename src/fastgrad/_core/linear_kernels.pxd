# Small-matrix loops for linear's forward and backward (Note [Small linear] in ops_linear.pyx).
# Every operand is given by its data pointer and its strides in elements (any sign, 0 allowed),
# so a transposed operand is the same pointer with its strides swapped: below the size threshold
# NumPy's matmul costs more in dispatch than the arithmetic does.
from cython cimport floating
from libc.stdlib cimport calloc, free


cdef inline void small_gemm(const floating* a, Py_ssize_t as0, Py_ssize_t as1,   # IN  (p, r)
                            const floating* b, Py_ssize_t bs0, Py_ssize_t bs1,   # IN  (r, q)
                            floating* out,                                       # OUT (p, q) C
                            Py_ssize_t p, Py_ssize_t q, Py_ssize_t r) noexcept nogil:
    """out[i, j] = sum_l a[i, l] * b[l, j]"""
    cdef Py_ssize_t i, j, l
    cdef floating acc
    for i in range(p):
        for j in range(q):
            acc = 0
            for l in range(r):
                acc = acc + a[i * as0 + l * as1] * b[l * bs0 + j * bs1]
            out[i * q + j] = acc


cdef inline void add_row(floating* y, const floating* b, Py_ssize_t bs0,        # INOUT (m, n) C
                         Py_ssize_t m, Py_ssize_t n) noexcept nogil:            # IN (n,)
    """y[i, j] += b[j]"""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(n):
            y[i * n + j] = y[i * n + j] + b[j * bs0]


cdef enum:
    COL_SUM_ROWS = 2048   # rows col_sum adds in g's dtype before carrying the sums in double


cdef inline void _col_rows(const floating* g, Py_ssize_t gs0, Py_ssize_t gs1, floating* out,
                           Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """out[j] = sum_i g[i, j], rows added in order in g's dtype"""
    cdef Py_ssize_t i, j
    cdef const floating* row
    for j in range(n):
        out[j] = 0
    for i in range(m):
        row = g + i * gs0
        if gs1 == 1:
            for j in range(n):
                out[j] = out[j] + row[j]
        else:
            for j in range(n):
                out[j] = out[j] + row[j * gs1]


cdef inline void col_sum(const floating* g, Py_ssize_t gs0, Py_ssize_t gs1,      # IN  (m, n)
                         floating* out, Py_ssize_t m, Py_ssize_t n) noexcept nogil:  # OUT (n,)
    """out[j] = sum_i g[i, j], rows added in order (one pass over g when it is C-contiguous): in
    blocks of COL_SUM_ROWS rows in g's dtype, the blocks' sums added in double (a float32 running
    sum stops growing at 2**24 rows; Note [Sums' accumulators] in ops_reduce.pyx)"""
    cdef Py_ssize_t i0, j
    cdef double* total = NULL
    if m > COL_SUM_ROWS:
        total = <double*>calloc(n, sizeof(double))
    if total == NULL:                   # a short sum (or no memory): one running sum
        _col_rows(g, gs0, gs1, out, m, n)
        return
    i0 = 0
    while i0 < m:
        _col_rows(g + i0 * gs0, gs0, gs1, out, min(<Py_ssize_t>COL_SUM_ROWS, m - i0), n)
        for j in range(n):
            total[j] += out[j]
        i0 += COL_SUM_ROWS
    for j in range(n):
        out[j] = <floating>total[j]
    free(total)

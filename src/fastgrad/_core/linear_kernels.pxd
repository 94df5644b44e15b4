# Small-matrix loops for linear's forward and backward (Note [Small linear] in ops_linear.pyx).
# Every operand is given by its data pointer and its strides in elements (any sign, 0 allowed),
# so a transposed operand is the same pointer with its strides swapped: below the size threshold
# NumPy's matmul costs more in dispatch than the arithmetic does.
from cython cimport floating


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


cdef inline void col_sum(const floating* g, Py_ssize_t gs0, Py_ssize_t gs1,      # IN  (m, n)
                         floating* out, Py_ssize_t m, Py_ssize_t n) noexcept nogil:  # OUT (n,)
    """out[j] = sum_i g[i, j], rows added in order (one pass over g when it is C-contiguous)"""
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

# The loops of matmul's backward for a gradient that repeats one row or one column
# (_mm_bwd_broadcast in ops_matmul.pyx): O(n^2) products instead of a GEMM on the expanded
# gradient. Operands by data pointer and strides in elements.
cimport cython
from cython cimport floating


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void rank1_kernel(const floating* A, Py_ssize_t a0, Py_ssize_t a1,      # IN (m, k) or NULL
                              const floating* B, Py_ssize_t b0, Py_ssize_t b1,      # IN (k, n) or NULL
                              const floating* u, Py_ssize_t us,                     # IN (m,)
                              const floating* v, Py_ssize_t vs,                     # IN (n,)
                              floating* ga, floating* gb,                           # OUT (m, k), (k, n) C
                              floating* w,                                          # scratch (k,)
                              Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """ga = u (B v)^T when B is given; gb = (A^T u) v^T when A is given. Strides in elements.
    The inner loops run along unit strides where the operand has one, with independent sums,
    so they vectorize; no floating-point dependency chain runs along a whole row."""
    cdef Py_ssize_t i, j, l
    cdef floating s0, s1, s2, s3, c
    if B != NULL:
        if b1 == 1:                                   # rows of B contiguous: dot products
            for l in range(k):
                s0 = s1 = s2 = s3 = 0
                j = 0
                if vs == 0:
                    while j + 4 <= n:
                        s0 = s0 + B[l * b0 + j]
                        s1 = s1 + B[l * b0 + j + 1]
                        s2 = s2 + B[l * b0 + j + 2]
                        s3 = s3 + B[l * b0 + j + 3]
                        j += 4
                    while j < n:
                        s0 = s0 + B[l * b0 + j]
                        j += 1
                    w[l] = ((s0 + s1) + (s2 + s3)) * v[0]
                else:
                    while j + 4 <= n:
                        s0 = s0 + B[l * b0 + j] * v[j * vs]
                        s1 = s1 + B[l * b0 + j + 1] * v[(j + 1) * vs]
                        s2 = s2 + B[l * b0 + j + 2] * v[(j + 2) * vs]
                        s3 = s3 + B[l * b0 + j + 3] * v[(j + 3) * vs]
                        j += 4
                    while j < n:
                        s0 = s0 + B[l * b0 + j] * v[j * vs]
                        j += 1
                    w[l] = (s0 + s1) + (s2 + s3)
        else:                                         # any strides: axpy over B's columns
            for l in range(k):
                w[l] = 0
            for j in range(n):
                c = v[j * vs]
                for l in range(k):
                    w[l] = w[l] + B[l * b0 + j * b1] * c
        for i in range(m):
            c = u[i * us]
            for l in range(k):
                ga[i * k + l] = c * w[l]
    if A != NULL:
        for l in range(k):
            w[l] = 0
        if a1 == 1:                                   # rows of A contiguous: axpy over rows
            for i in range(m):
                c = u[i * us]
                for l in range(k):
                    w[l] = w[l] + c * A[i * a0 + l]
        else:
            for i in range(m):
                c = u[i * us]
                for l in range(k):
                    w[l] = w[l] + c * A[i * a0 + l * a1]
        for l in range(k):
            c = w[l]
            for j in range(n):
                gb[l * n + j] = c * v[j * vs]

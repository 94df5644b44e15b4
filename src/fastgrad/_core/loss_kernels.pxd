# The losses' loops (ops_loss.pyx): cross-entropy's softmax rows and gradient, the target scan,
# mse's sum of squares and gradient. Raw pointers, nogil, no Python objects.
cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport exp, expf, log


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void ce_rows(const floating* x, const cnp.int64_t* y, floating* p, floating* loss,  # IN IN OUT OUT
                         Py_ssize_t m, Py_ssize_t c) noexcept nogil:
    """Per row: p = softmax(x), loss = logsumexp(x) - x[y]. One pass for max, one for exp."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef floating* prow
    cdef double mx, s, inv
    for i in range(m):
        row = x + i * c
        prow = p + i * c
        mx = row[0]
        for j in range(1, c):
            if row[j] > mx:
                mx = row[j]
        s = 0.0
        for j in range(c):
            if floating is float:
                prow[j] = expf(<float>(row[j] - mx))
            else:
                prow[j] = exp(row[j] - mx)
            s += prow[j]
        inv = 1.0 / s
        for j in range(c):
            prow[j] = <floating>(prow[j] * inv)
        loss[i] = <floating>(log(s) + mx - row[y[i]])


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline Py_ssize_t scan_targets(const cnp.int64_t* y, Py_ssize_t m, Py_ssize_t c,   # IN
                                    cnp.int64_t ignore, Py_ssize_t* n_ignored) noexcept nogil:
    """Index of the first target outside [0, c) that is not `ignore`, or -1; counts ignores."""
    cdef Py_ssize_t i, k = 0
    for i in range(m):
        if y[i] == ignore:
            k += 1
        elif y[i] < 0 or y[i] >= c:
            n_ignored[0] = k
            return i
    n_ignored[0] = k
    return -1


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline double sum_arr(const floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double s = 0
    for i in range(n):
        s += a[i]
    return s


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void ce_grad(const floating* p, const cnp.int64_t* y, floating* out,    # IN IN OUT
                         Py_ssize_t m, Py_ssize_t c, floating s) noexcept nogil:
    """out = s * (p - onehot(y)): cross-entropy's gradient from the saved softmax p."""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(c):
            out[i * c + j] = p[i * c + j] * s
        out[i * c + y[i]] = (p[i * c + y[i]] - 1) * s


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline double sq_diff_sum(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    """sum (x - y)^2, each square in the element type, accumulated in double"""
    cdef Py_ssize_t i
    cdef double acc = 0
    cdef floating d
    for i in range(n):
        d = x[i] - y[i]
        acc += d * d
    return acc


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void mse_grad(const floating* x, const floating* y, floating* gx, floating* gy,  # IN IN OUT OUT
                          Py_ssize_t n, floating s) noexcept nogil:
    """gx = s * (x - y); gy = -gx (gy may be NULL)"""
    cdef Py_ssize_t i
    for i in range(n):
        gx[i] = (x[i] - y[i]) * s
        if gy != NULL:
            gy[i] = -gx[i]

# Matrix products on NumPy's OpenBLAS, called directly: one BLAS thread per call, the product split
# across fastgrad's own thread team (Note [Products on fastgrad's threads] in blas.pyx).
cimport numpy as cnp

cdef object matmul2d(cnp.ndarray a, cnp.ndarray b, Py_ssize_t macs,   # a (m, k) @ b (k, n)
                     cnp.ndarray bias=*, bint relu=*,               # + bias (n,), clamped at 0
                     cnp.ndarray sum_rows_of=*, cnp.ndarray sums=*)  # + rows summed into sums
cdef int one_thread() noexcept nogil          # OpenBLAS to 1 thread; returns the count to restore
cdef void restore(int prev) noexcept nogil
cdef bint gemm(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, double beta,
               void* c, Py_ssize_t ldc) noexcept nogil   # C = op(A) op(B) + beta C (always True)
cdef void product(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                  const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb,
                  void* c, Py_ssize_t ldc) noexcept nogil    # C = op(A) op(B), tiles when they fit
cdef bint pair_pays(Py_ssize_t macs) noexcept nogil   # matmul2d_pair would take 2 such products
cdef tuple matmul2d_pair(cnp.ndarray a1, cnp.ndarray b1,         # (a1 @ b1, a2 @ b2), one
                         cnp.ndarray a2, cnp.ndarray b2,         # product per thread, or None;
                         cnp.ndarray sum_rows_of=*, cnp.ndarray sums=*)  # + rows summed
cdef object bmm(object a, object b)           # np.matmul(a, b) on BLAS, batch split over threads

# The products on packed panels of panel_tiles.h (Note [Packed recurrent weights] there), shared
# by the recurrent time loops (rnn_kernels.pyx) and the linear products (blas.pyx).

cdef extern from "panel_tiles.h" nogil:
    int fg_rt_ok(int force)
    Py_ssize_t fg_rt_nr()
    void fg_rt_pack(const float* b, Py_ssize_t ldb, Py_ssize_t k, Py_ssize_t n, Py_ssize_t nr,
                    float* bp)
    void fg_rt_pack_t(const float* w, Py_ssize_t ldw, Py_ssize_t k, Py_ssize_t n, Py_ssize_t nr,
                      Py_ssize_t kp, float* bp)
    void fg_rt_mm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t sa,
                  Py_ssize_t sk, const float* bp, float* c, Py_ssize_t ldc, int add)
    void fg_rt_mm_bias(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t sa,
                       Py_ssize_t sk, const float* bp, float* c, Py_ssize_t ldc,
                       const float* bias)
    void fg_rt_mm_rows(Py_ssize_t m, Py_ssize_t n, Py_ssize_t nseg, const Py_ssize_t* seg,
                       const float* a, Py_ssize_t sa, Py_ssize_t sk, const float* b,
                       Py_ssize_t ldb, float* scratch, float* c, Py_ssize_t ldc, int add)

# panel_tiles.h includes these (the first once per instruction set); named here so that a change
# to them rebuilds this module
cdef extern from "panel_tiles_isa.h":
    pass
cdef extern from "cpu_level.h":
    pass

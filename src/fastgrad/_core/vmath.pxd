# vmath.h's vectorised exp/tanh/sigmoid/log loops and chunked sums (Note [Vectorised
# transcendental kernels] in vmath.h). The header's tables are static: each module that cimports
# this has its own copy and calls fg_vm_select once when it loads.
cdef extern from "vmath.h" nogil:
    ctypedef void (*fg_vm_f32_fn)(const float*, float*, Py_ssize_t) noexcept nogil
    ctypedef void (*fg_vm_f64_fn)(const double*, double*, Py_ssize_t) noexcept nogil
    fg_vm_f32_fn fg_vm_f32[4]
    fg_vm_f64_fn fg_vm_f64[4]
    int FG_VM_EXP, FG_VM_TANH, FG_VM_SIGMOID, FG_VM_LOG
    int fg_vm_select(int want)     # 2 AVX-512, 1 AVX2+FMA, 0 baseline (at most)
    double fg_sum_chunk_f32(const float* a, Py_ssize_t n)
    double fg_sum_chunk_f64(const double* a, Py_ssize_t n)

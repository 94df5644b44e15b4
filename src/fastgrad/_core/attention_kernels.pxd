from cython cimport floating

# Attention per (batch, head) on fastgrad's thread team (attention_kernels.pyx, Note [Attention
# by heads]). Raw pointers, nogil, no Python objects.

# One operand of the heads loop: element (n, h, r, c) at base + n*sn + h*sh + r*sr + c, strides in
# elements (c is contiguous: BLAS reads each head's rows with leading dimension sr).
ctypedef struct HeadArray:
    char* base
    Py_ssize_t sn, sh, sr

ctypedef struct Heads:
    bint f32, causal
    Py_ssize_t N, H, L, S, D, Dv   # batch, heads, queries, keys, q/k and v head dims
    double scale
    HeadArray q, k, v, o           # q (N,H,L,D), k (N,H,S,D), v (N,H,S,Dv), o (N,H,L,Dv)
    const char* mask               # additive (N,H,L,S) by strides mask_s (0 where broadcast),
    Py_ssize_t mask_s[4]           # or NULL
    char* p                        # (N,H,L,S) C-contiguous: the probabilities
    HeadArray dq, dk, dv           # backward: the gradients (written, not accumulated)

cdef void heads_forward(Heads* a) noexcept nogil
cdef void heads_backward(Heads* a, char* scratch, int threads) noexcept nogil  # threads x L*S

# The softmax row loops, shared with ops_attention's whole-array attention.
cdef void rows_shift(floating* s, Py_ssize_t M, Py_ssize_t S, floating scale,
                     bint nan_rows) noexcept nogil
cdef void rows_exp_normalize(floating* e, Py_ssize_t M, Py_ssize_t S) noexcept nogil
cdef void rows_softmax_bwd(floating* dp, const floating* p, Py_ssize_t M, Py_ssize_t S,
                           floating scale) noexcept nogil

# softmax / log_softmax of each row of the C-contiguous (M, S) y in place, and their gradient in
# place of g from the result y (Note [Softmax over the last dim])
cdef void softmax_last(void* y, Py_ssize_t M, Py_ssize_t S, bint f32, bint log_) noexcept nogil
cdef void softmax_last_bwd(void* g, const void* y, Py_ssize_t M, Py_ssize_t S, bint f32,
                           bint log_) noexcept nogil
# the same over the middle dim of a C-contiguous (outer, C, inner) y (Note [Softmax over a middle
# dim])
cdef void softmax_mid(void* y, Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, bint f32,
                      bint log_) noexcept nogil
cdef void softmax_mid_bwd(void* g, const void* y, Py_ssize_t outer, Py_ssize_t C,
                          Py_ssize_t inner, bint f32, bint log_) noexcept nogil

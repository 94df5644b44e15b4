# The recurrent layers' time loops (rnn_kernels.pyx): one direction of one layer, described by a
# Plan (Note [Packed layout] in ops_rnn.pyx), forward and backward, on fastgrad's thread team
# (Note [Recurrence on the thread team]). Raw pointers, nogil, no Python objects.

cdef enum:
    RNN_TANH = 0
    RNN_RELU = 1
    LSTM = 2
    GRU = 3

ctypedef struct Plan:
    int mode
    bint reverse, proj, f32
    Py_ssize_t T, B, nin, H, P, G, total
    Py_ssize_t lx    # row stride of x and hprev: both live in one (total, I + P) buffer, so the
                     # backward gets dW_ih and dW_hh from one product dG^T @ [x | h_prev]
    Py_ssize_t* bs
    Py_ssize_t* off
    void* x          # (total, I), row stride lx
    void* wih        # (G, I)
    void* wihT       # (I + P, G): [W_ih^T; W_hh^T], so that one product of a step's rows of
                     # [x | h_prev] (K = I + P) gives its gates (LSTM, RNN: Note [One product
                     # per step] in rnn_kernels.pyx); GRU: W_ih^T's input projection
    void* whh        # (G, P)
    void* whhT       # (P, G): W_hh^T, the rows I .. I + P of wihT (both in block gate order
                     # without proj: Note [Recurrence on the thread team])
    void* whr        # (P, H) or NULL
    void* bhh        # (G,) GRU's recurrent bias, or NULL
    void* bias       # (G,) b_ih + b_hh, added by the cells (GRU: b_ih, by its projection) or NULL
    void* gx         # (total, G) input projection, then the activated gates
    void* gh         # (total, G) GRU: W_hh h + b_hh
    void* out        # (total, P)
    void* hp         # (total, H) proj: o * tanh(c) before the projection
    void* tc         # (total, H) LSTM: tanh(c)
    void* cprev      # (total, H) LSTM: c entering the step
    void* hprev      # (total, P) h entering the step, row stride lx
    void* hs         # (B, P) state, h_n at the end
    void* cst        # (B, H) LSTM state, c_n at the end
    Py_ssize_t hb, nb  # units per block, blocks (Note [Recurrence on the thread team])
    Py_ssize_t rr, nrb # batch rows per row block, row blocks (Note [Rows of a row block]; set by
                       # run_forward/run_backward)
    double* db       # backward: (G,) float64 accumulators of the gate gradients' column sums
    double* db2      # (the bias gradients; GRU: db of b_ih, db2 of b_hh), or NULL
    void* dw         # backward: (G, I + P) [dW_ih | dW_hh] in gx's gate order, accumulated in the
                     # loop (Note [Weight gradients in the loop]), or NULL
    double* dbx      # backward with row blocks: the bias-gradient accumulators (db, db2) of
                     # row blocks 1 .. nrb - 1, 2 G each (row block 0 sums into db, db2)
    void* dwx        # and their [dW_ih | dW_hh] (G, I + P) each (row block 0: dw), or NULL
    void* wpk        # float32 without proj_size: the blocks' weight panels during a pass (set
                     # by run_forward/run_backward; Note [Packed recurrent weights]), or NULL


cdef Py_ssize_t unit_blocks(Py_ssize_t H) noexcept nogil     # units per block (Plan.hb)
cdef void run_forward(Plan* p) noexcept nogil    # wihT/whhT from wih/whh, then the loop
cdef void run_backward(Plan* p, const void* gout, void* dh, void* dc, void* dgx, void* dgh,
                       void* dhall, void* dhp) noexcept nogil     # the gradient time loop
cdef void product(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                  const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, void* c,
                  Py_ssize_t ldc) noexcept nogil     # C = op(A) op(B) in fixed blocks of rows

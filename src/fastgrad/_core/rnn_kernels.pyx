# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The recurrent layers' time loops: one direction of one layer described by a Plan
(rnn_kernels.pxd; Note [One node per recurrent layer] and Note [Packed layout] in ops_rnn.pyx),
the gate arithmetic fused per step, on fastgrad's thread team (Note [Recurrence on the thread
team])."""
from cython cimport floating
from libc.string cimport memcpy
from libc.stdlib cimport calloc, malloc, free

from fastgrad._core cimport blas
from fastgrad._core.kernels cimport nthreads, team_run

from fastgrad._core.vmath cimport fg_vm_f32, fg_vm_f64, fg_vm_select, FG_VM_TANH, FG_VM_SIGMOID

fg_vm_select(2)

cdef extern from "rnn_cell.h" nogil:
    void fg_lstm_fwd_f32(float* g, const float* bias, float* c, float* cp, float* tc, float* h,
                         float* hs, float* hn, Py_ssize_t n) noexcept nogil
    void fg_lstm_fwd_f64(double* g, const double* bias, double* c, double* cp, double* tc,
                         double* h, double* hs, double* hn, Py_ssize_t n) noexcept nogil
    void fg_lstm_bwd_f32(const float* g, const float* tc, const float* cp, const float* dh,
                         const float* go, float* dc, float* d, double* db,
                         Py_ssize_t n) noexcept nogil
    void fg_lstm_bwd_f64(const double* g, const double* tc, const double* cp,
                         const double* dh, const double* go, double* dc, double* d, double* db,
                         Py_ssize_t n) noexcept nogil
    int fg_lstm_select(int want)

fg_lstm_select(2)

from fastgrad._core.panel_tiles cimport fg_rt_ok, fg_rt_nr, fg_rt_pack, fg_rt_pack_t, fg_rt_mm, \
    fg_rt_mm_rows

# The GRU's gate-gradient loop for one row, with restrict pointers so that GCC vectorises it
# (through Cython's plain pointers it cannot rule out aliasing between the arrays).
cdef extern from *:
    """
    /* GRU: g = activated (r, z, n), gh = W_hh h + b_hh, hp = h entering the step; dh enters as
       the gradient of the step's output and leaves as its direct part dh * z */
    #define FG_GRU_BWD_ROW(T, NAME)                                                           \
    static void NAME(const T *restrict g, const T *restrict gh, const T *restrict hp,         \
                     T *restrict dh, T *restrict d, T *restrict d2, ptrdiff_t H,              \
                     ptrdiff_t n) {                                                           \
        for (ptrdiff_t j = 0; j < n; j++) {                                                   \
            T r = g[j], z = g[H + j], n = g[2 * H + j], dhr = dh[j];                          \
            T dn = dhr * (1 - z) * (1 - n * n);                                               \
            T dr = dn * gh[2 * H + j] * r * (1 - r);                                          \
            T dz = dhr * (hp[j] - n) * z * (1 - z);                                           \
            d[j] = dr; d[H + j] = dz; d[2 * H + j] = dn;                                      \
            d2[j] = dr; d2[H + j] = dz; d2[2 * H + j] = dn * r;                               \
            dh[j] = dhr * z;                                                                  \
        }                                                                                     \
    }
    FG_GRU_BWD_ROW(float, fg_gru_bwd_row_f32)
    FG_GRU_BWD_ROW(double, fg_gru_bwd_row_f64)
    /* a bias gradient's accumulator (float64 whatever the data) += one row's gate gradients */
    #define FG_RNN_ACC(T, NAME)                                                               \
    static void NAME(double *restrict acc, const T *restrict d, ptrdiff_t n) {                \
        for (ptrdiff_t j = 0; j < n; j++) acc[j] += d[j];                                     \
    }
    FG_RNN_ACC(float, fg_rnn_acc_f32)
    FG_RNN_ACC(double, fg_rnn_acc_f64)
    /* ask for m rows of len bytes (stride bytes apart) to be brought towards the core's cache */
    static void fg_rnn_prefetch(const char *p, ptrdiff_t m, ptrdiff_t len, ptrdiff_t stride) {
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < len; j += 64) __builtin_prefetch(p + i * stride + j, 0, 2);
    }
    """
    void fg_gru_bwd_row_f32(const float* g, const float* gh, const float* hp, float* dh,
                            float* d, float* d2, Py_ssize_t H, Py_ssize_t n) noexcept nogil
    void fg_gru_bwd_row_f64(const double* g, const double* gh, const double* hp, double* dh,
                            double* d, double* d2, Py_ssize_t H, Py_ssize_t n) noexcept nogil
    void fg_rnn_acc_f32(double* acc, const float* d, Py_ssize_t n) noexcept nogil
    void fg_rnn_acc_f64(double* acc, const double* d, Py_ssize_t n) noexcept nogil
    void fg_rnn_prefetch(const char* p, Py_ssize_t m, Py_ssize_t len,
                         Py_ssize_t stride) noexcept nogil


# ----- small helpers ------------------------------------------------------------------------------

cdef inline void _act(floating* p, Py_ssize_t n, int op) noexcept nogil:
    """In place: sigmoid or tanh of n values (vmath.h's vectorised loops)."""
    if floating is float:
        fg_vm_f32[op](p, p, n)
    else:
        fg_vm_f64[op](p, p, n)


cdef void _mm(floating* tag, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb, double beta,
              floating* c, Py_ssize_t ldc) noexcept nogil:
    """C (m, n) = op(A) @ op(B) + beta * C, row-major (blas.gemm: BLAS, or plain loops)."""
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = <floating>(beta * c[i * ldc + j]) if beta != 0 else 0
        return
    blas.gemm(floating is float, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)


cdef inline void _acc(double* acc, Py_ssize_t at, const floating* d, Py_ssize_t n) noexcept nogil:
    """acc[at:at + n] += d[:n] unless acc is NULL (a bias gradient, summed in float64 in a fixed
    order: block k's columns over the steps in turn, rows in turn, whichever thread runs the
    block)."""
    if acc == NULL:
        return
    if floating is float:
        fg_rnn_acc_f32(acc + at, d, n)
    else:
        fg_rnn_acc_f64(acc + at, d, n)


cdef inline double _bias_rows(floating* c, Py_ssize_t ldc, const floating* bias, Py_ssize_t m,
                              Py_ssize_t n) noexcept nogil:
    """Each of m rows of c (stride ldc) = bias[:n] when bias is not NULL; returns the beta of
    the product that then adds to c (1, or 0 without a bias)."""
    cdef Py_ssize_t i
    if bias == NULL:
        return 0.0
    for i in range(m):
        memcpy(c + i * ldc, bias, n * sizeof(floating))
    return 1.0


cdef inline Py_ssize_t _step(const Plan* p, Py_ssize_t i, bint backward) noexcept nogil:
    """Time index of the i-th step run (forward pass order, reversed for the gradient pass)."""
    if p.reverse != backward:
        return p.T - 1 - i
    return i


cdef inline void _lstm_row(floating* g, const floating* bias, floating* c, floating* cp,
                           floating* tc, floating* h, floating* hs, floating* hn,
                           Py_ssize_t n) noexcept nogil:
    """One row of an LSTM step, its bias added first (Note [Fused LSTM cell] in rnn_cell.h)."""
    if floating is float:
        fg_lstm_fwd_f32(g, bias, c, cp, tc, h, hs, hn, n)
    else:
        fg_lstm_fwd_f64(g, bias, c, cp, tc, h, hs, hn, n)


cdef inline void _lstm_back_row(const floating* g, const floating* tc, const floating* cp,
                                const floating* dh, const floating* go, floating* dc,
                                floating* d, double* db, Py_ssize_t n) noexcept nogil:
    """The gate gradients of one row of an LSTM step, with the bias gradient's sum (rnn_cell.h)."""
    if floating is float:
        fg_lstm_bwd_f32(g, tc, cp, dh, go, dc, d, db, n)
    else:
        fg_lstm_bwd_f64(g, tc, cp, dh, go, dc, d, db, n)


cdef void _forward(const Plan* p, floating* tag) noexcept nogil:
    """The time loop of an LSTM with a projection (proj_size > 0; the only recurrence that does
    not run on the thread team), gates in PyTorch's order: per step one product for the gates
    (Note [One product per step]), the fused cell per row, and the product with W_hr."""
    cdef Py_ssize_t i, s, b, o, r, H = p.H, P = p.P, G = p.G
    cdef floating* gx = <floating*>p.gx
    cdef floating* out = <floating*>p.out
    cdef floating* hp = <floating*>p.hp
    cdef floating* hprev = <floating*>p.hprev
    cdef floating* hs = <floating*>p.hs
    for i in range(p.T):
        s = _step(p, i, False)
        b, o = p.bs[s], p.off[s]
        for r in range(b):
            memcpy(hprev + (o + r) * p.lx, hs + r * P, P * sizeof(floating))
        _mm(tag, False, False, b, G, p.lx, <floating*>p.x + o * p.lx, p.lx, <floating*>p.wihT,
            G, 0.0, gx + o * G, G)
        for r in range(b):
            _lstm_row(gx + (o + r) * G, <floating*>p.bias, <floating*>p.cst + r * H,
                      <floating*>p.cprev + (o + r) * H, <floating*>p.tc + (o + r) * H,
                      hp + (o + r) * H, NULL, NULL, H)
        _mm(tag, False, True, b, P, H, hp + o * H, H, <floating*>p.whr, H, 0.0, out + o * P, P)
        memcpy(hs, out + o * P, b * P * sizeof(floating))


cdef void _backward(const Plan* p, floating* tag, const floating* gout, floating* dh,
                    floating* dc, floating* dgx, floating* dhall, floating* dhp) noexcept nogil:
    """The gradient pass of _forward: dh (B, P) and dc (B, H) enter as h_n's and c_n's gradients
    and leave as h_0's and c_0's; dgx (total, G) gets the pre-activation gate gradients, dhall
    (total, P) the total gradient of each step's output; dhp (B, H) is scratch."""
    cdef Py_ssize_t i, s, b, o, r, j, H = p.H, P = p.P, G = p.G
    cdef floating* gx = <floating*>p.gx
    for i in range(p.T):
        s = _step(p, i, True)
        b, o = p.bs[s], p.off[s]
        if gout != NULL:
            for j in range(b * P):
                dh[j] += gout[o * P + j]
        memcpy(dhall + o * P, dh, b * P * sizeof(floating))
        _mm(tag, False, False, b, H, P, dh, P, <floating*>p.whr, H, 0.0, dhp, H)
        for r in range(b):
            _lstm_back_row(gx + (o + r) * G, <floating*>p.tc + (o + r) * H,
                           <floating*>p.cprev + (o + r) * H, dhp + r * H, NULL, dc + r * H,
                           dgx + (o + r) * G, p.db, H)
        _mm(tag, False, False, b, P, G, dgx + o * G, G, <floating*>p.whh, P, 0.0, dh, P)


# ----- one layer-direction on fastgrad's threads ------------------------------------------------

# Note [Recurrence on the thread team]
# Without a projection (proj_size 0) a layer-direction's time loop runs on fastgrad's thread team
# (team.h), one loop of nt shares per pass (_shares):
# - the hidden units are cut into nb fixed blocks of hb units (unit_blocks: a function of H
#   alone, never of the thread count);
# - the gate rows of W_ih, W_hh and the biases are put in block gate order (ops_rnn._gate_order):
#   block k's gates (i, f, g, o of its units in turn) are the columns ng*k*hb .. ng*(k+1)*hb of
#   the gate buffers, so each block's gates are contiguous in every row; the weight and bias
#   gradients are put back in PyTorch's order at the end;
# - forward step i, block k (_forward_block): one product [x | h_prev] @ [W_ih^T; W_hh^T] for the
#   block's columns (Note [One product per step]; GRU: h_prev @ W_hh^T), the block's gate
#   arithmetic in place and state update, and its columns of the next step's hprev;
# - gradient step i, block k: its columns of dh after step i - 1 (_dh_block), then its gate
#   gradients at step i (_gates_back_block), which read only those columns of dh and dc, and its
#   partial product for the next dh (Note [Split gradient products]).
# (Batches of at least 2 * BATCH_ROWS rows are cut by rows instead: Note [Rows of a row block].)
# Each step is a phase: every share claims blocks (one atomic bit each), its own first (share
# s starts at block s * nb / threads, so a block's weights and state stay in one core's cache
# from step to step) and then any left unclaimed, and waits until every block is finished
# (spinning briefly, then yielding); a share whose thread has not started yet is no one's wait,
# and a share that starts late joins the others at their step: one wait per step, and a thread that the OS has descheduled
# delays no one unless it holds a block (its blocks are claimed by the others): on this 2-core
# machine shared with other processes a fixed share per thread made a step wait for the slowest
# thread (5.6 ms against 3.7 ms on one thread for W12's forward while another process was running).
# When the caller still spends more than half of a loop waiting (a partner descheduled while
# holding a block), the next SOLO_CALLS loops run on the caller's thread alone (_settle).
# A block is computed by the same calls whichever thread takes it, so results do not depend on
# the thread count (one thread runs the blocks in turn without the counters). The big products
# outside the loop (GRU's input projection, the input and weight gradients) are cut the same way
# into fixed blocks of rows (_mm_fixed).

# Note [Rows of a row block]
# Every batch row's recurrence is independent of the others': only the weight and bias gradients
# sum over rows. So a batch of at least 2 * BATCH_ROWS rows is cut into row blocks (_row_blocks:
# nrb blocks of rr rows, a multiple of 8, the last one smaller; a function of B alone) and a
# thread takes a whole row block for the whole pass, every unit block of its rows step after
# step, with no wait between steps and nothing written by the other core: W12's forward then
# took 1.2 ms on two threads against 1.6 ms with a wait per step (with unit blocks alone the
# cell ran ~1.6x slower on two threads than on one, its state and gates coming from the other
# core's cache whenever a block changed threads). A row block's forward rows are computed by the
# same calls as with one row block, so outputs are the same bits whatever the cut. In the
# gradient pass row block 0 sums into db, db2 and dw and the others into their own zeroed
# accumulators (dbx, dwx), added in row block order at the end (_add_row_sums); a row block's
# rows in a group of steps are one segment per step of the weight gradient's K (the tiles take
# K in segments, panel_tiles.h). Each row block packs its own copy of the weight panels. On one
# thread every step runs on all rows at once (row block -1: twice the rows per product, ~8% less
# time for W12's products than row blocks in turn), each row's bias-gradient terms still going
# to its row block's accumulator and the weight gradients computed per row block, so the sums
# are the same.

# Note [Split gradient products]
# dh after a gradient step is dG @ W_hh, dG (b, G) being the step's gate gradients. Cut by
# columns of dh, each unit block would read all of dG, half of it written by the other core a
# moment before (32 KB per step for W12, from the other core's cache). Instead each block
# multiplies its own gate columns of dG (still in its cache) by the same rows of W_hh, a partial
# (b, P) product (_partial_block), and in the next phase each block sums the partials for its
# columns of dh in block order (_dh_block): 8 KB of the other core's partial per step, and the
# same additions in the same order whatever the thread count. The partials alternate between two
# buffers by step parity, since a block may write step i's partial while another still reads
# step i - 1's.

# Note [Weight gradients in the loop]
# [dW_ih | dW_hh] = dG^T @ [x | h_prev] over all steps. As one product after the loop (512x192x1120
# for W12) it read dG back from beyond L2, packed [x | h_prev] once per block of rows, and woke
# the team once more; in the loop, after every _dw_steps gradient steps each block adds its rows'
# share for those steps (K = _dw_steps * b) while their gate gradients are still in its cache. The
# groups of steps are fixed, so the sums are the same whatever the thread count. LSTM and RNN
# only (GRU's recurrent part uses other gate gradients than its input part), without proj_size.

# Note [One product per step]
# For LSTM and RNN a step's gates are [x_t | h_{t-1}] @ [W_ih^T; W_hh^T] + (b_ih + b_hh): one
# product with K = I + P on rows that the buffer [x | h_prev] (Plan.lx) already holds side by
# side; the cell adds the bias as it reads the gates (the same sum as a product added to bias
# rows, without writing those rows first). The input projection of all steps used to be
# one large product before the loop (1120x512x64 for W12, ~70 GMAC/s on one core), and each
# step's product then read those 64 KB of gate rows back from beyond the core's L2 cache; now
# every step's gate rows are written and read while they are in cache, and the x part of the work
# is shared among the team with the rest of the step. GRU keeps the separate input projection:
# its candidate gate scales only the recurrent part (r * (W_hn h + b_hn)).

cdef extern from *:
    """
    #include <sched.h>
    #include <time.h>
    /* One phase of the time loop: the blocks claimed (grab, a bit each) and finished. */
    typedef struct { int grab; int done; char pad[56]; } fg_rnn_phase;
    /* claim block k (< 31) of the phase: true for the one thread that gets it */
    static int fg_rnn_claim(fg_rnn_phase *ph, int k) {
        return !(__atomic_fetch_or(&ph->grab, 1 << k, __ATOMIC_RELAXED) & (1 << k));
    }
    static void fg_rnn_finish(fg_rnn_phase *ph) {
        __atomic_add_fetch(&ph->done, 1, __ATOMIC_RELEASE);
    }
    static long long fg_rnn_now(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    }
    /* a spinning thread's hint to the core (x86 pause, Arm yield); nothing elsewhere */
    #if defined(__x86_64__) || defined(__i386__)
    #define FG_RNN_PAUSE() __builtin_ia32_pause()
    #elif defined(__aarch64__) || defined(__arm__)
    #define FG_RNN_PAUSE() __asm__ __volatile__("yield")
    #else
    #define FG_RNN_PAUSE() ((void)0)
    #endif
    /* wait until n blocks of the phase are finished; the nanoseconds waited are added to
       *waited (when not NULL) */
    static void fg_rnn_wait(fg_rnn_phase *ph, int n, long long *waited) {
        int spins = 0;
        long long t0;
        if (__atomic_load_n(&ph->done, __ATOMIC_ACQUIRE) >= n) return;
        t0 = waited ? fg_rnn_now() : 0;
        while (__atomic_load_n(&ph->done, __ATOMIC_ACQUIRE) < n) {
            if (spins < 4000) { spins++; FG_RNN_PAUSE(); }
            else sched_yield();
        }
        if (waited) *waited += fg_rnn_now() - t0;
    }
    """
    ctypedef struct fg_rnn_phase:
        pass
    int fg_rnn_claim(fg_rnn_phase* ph, int k) noexcept nogil
    void fg_rnn_finish(fg_rnn_phase* ph) noexcept nogil
    long long fg_rnn_now() noexcept nogil
    void fg_rnn_wait(fg_rnn_phase* ph, int n, long long* waited) noexcept nogil


cdef Py_ssize_t TEAM_MACS = 1 << 19     # per step: smaller recurrences stay on the caller's thread
cdef int _solo = 0                      # loops left to run on the caller's thread alone (_settle)


cdef enum:
    SOLO_CALLS = 32


def set_team_macs(Py_ssize_t n):
    """Set the multiply-adds per time step from which a recurrence runs on the thread team, and
    end a spell on one thread (_settle); returns the old value (for tests and benchmarks: results
    are the same either way)."""
    global TEAM_MACS, _solo
    old = TEAM_MACS
    TEAM_MACS = n
    _solo = 0
    return old


def tiles(force=None):
    """The tiled loops float32 recurrences on the thread team run (Note [Packed recurrent
    weights] in panel_tiles.h): 2 AVX-512, 1 AVX2+FMA, 0 none (BLAS); force: the highest level
    allowed from now on (for tests and benchmarks; True: the best the CPU has, False: none)."""
    if force is True:
        force = 2
    return fg_rt_ok(-1 if force is None else int(force))


cdef Py_ssize_t unit_blocks(Py_ssize_t H) noexcept nogil:
    """Units per block: half of H in multiples of 16 (two threads share a layer; the gate
    arithmetic on 32-unit blocks cost W12 ~0.4 ms more than on 64, its vectorised loops being
    short), whose products run in narrower column chunks (_mm_cols)."""
    return ((H + 1) // 2 + 15) // 16 * 16


cdef enum:
    FWD_COLS = 128      # columns per product in a forward block: 32x256x192 takes 21 us on one
                        # core whole, 13.5 in chunks of 128 or 64, 15 of 32 (OpenBLAS's small-
    BWD_COLS = 64       # matrix kernels); gradient partials 32x128x256: 16 us whole, 9.4 in
                        # chunks of 64 columns, 10.3 of 32


cdef enum:
    BATCH_ROWS = 16     # batch rows per row block at least (Note [Rows of a row block])
    MAX_ROW_BLOCKS = 8  # each row block packs its own weight panels: 30 blocks of a batch of 512
                        # made its forward + backward ~9% slower than 8 (median of 7 rounds)


cdef enum:
    DW_ROWS = 128       # rows per weight-gradient product in the loop (_dw_steps): 256x192x128
                        # takes 81 us on one core (85 GMAC/s), W12's whole 256x192x1120 711 us
    DW_MAX = 16         # steps per weight-gradient product at most


cdef inline Py_ssize_t _dw_steps(const Plan* p) noexcept nogil:
    """Gradient steps per weight-gradient product in the loop (Note [Weight gradients in the
    loop]): about DW_ROWS rows of a row block, 1 to DW_MAX steps."""
    return max(1, min(DW_MAX, DW_ROWS // max(p.rr, 1)))


cdef void _mm_cols(floating* tag, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* a,
                   Py_ssize_t lda, const floating* b, Py_ssize_t ldb, double beta, floating* c,
                   Py_ssize_t ldc, Py_ssize_t cols) noexcept nogil:
    """_mm (no transposes) in chunks of cols columns of C (the time loops' BLAS path: float64,
    or a CPU without the tiles of Note [Packed recurrent weights] in panel_tiles.h)."""
    cdef Py_ssize_t c0 = 0
    while c0 < n:
        _mm(tag, False, False, m, min(cols, n - c0), k, a, lda, b + c0, ldb, beta, c + c0, ldc)
        c0 += cols


cdef inline Py_ssize_t _panels(Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """Floats of the panels of a (k, n) operand (fg_rt_pack: n rounded up to whole panels)."""
    cdef Py_ssize_t nr = fg_rt_nr()
    return k * ((n + nr - 1) // nr * nr)


cdef Py_ssize_t _block_panels(const Plan* p, bint backward) noexcept nogil:
    """Floats of one block's panels (the widest block's): forward, its columns of
    [W_ih^T; W_hh^T] (GRU: W_hh^T); backward, its rows of W_hh, then room for one panel of
    the rows of [x | h_prev] of a group of _dw_steps steps (_dw_block)."""
    cdef Py_ssize_t ng = p.G // p.H
    if backward:
        return _panels(ng * p.hb, p.P) + _dw_steps(p) * p.rr * fg_rt_nr()
    return _panels(p.P if p.mode == GRU else p.lx, ng * p.hb)


cdef void* _alloc_panels(Plan* p, bint backward) noexcept nogil:
    """Set p.wpk to room for every block's panels (64-byte aligned) when the float32 loop runs
    on the tiles (fg_rt_ok; Note [Packed recurrent weights]); returns the block to free, or
    NULL (p.wpk NULL: the BLAS products)."""
    cdef void* mem = NULL
    p.wpk = NULL
    if p.f32 and not p.proj and fg_rt_ok(-1):
        mem = malloc(p.nrb * p.nb * _block_panels(p, backward) * sizeof(float) + 64)
        if mem != NULL:
            p.wpk = <char*>mem + (64 - <size_t>mem % 64) % 64
    return mem


cdef inline float* _block_panel(const Plan* p, bint backward, Py_ssize_t k,
                               Py_ssize_t rb) noexcept nogil:
    """Block k's panels in p.wpk (Note [Packed recurrent weights]), row block rb's copy (rb -1:
    row block 0's)."""
    return <float*>p.wpk + (max(rb, 0) * p.nb + k) * _block_panels(p, backward)


cdef void _row_blocks(Plan* p) noexcept nogil:
    """p.rr and p.nrb (Note [Rows of a row block]): the batch cut into up to MAX_ROW_BLOCKS
    blocks of at least BATCH_ROWS rows, a multiple of 8 (the last one smaller), when it has at
    least two such blocks, else one block of all rows."""
    p.nrb = 1 if p.proj else min(max(p.B // BATCH_ROWS, 1), <Py_ssize_t>MAX_ROW_BLOCKS)
    p.rr = (p.B + p.nrb - 1) // p.nrb
    p.rr = (p.rr + 7) // 8 * 8 if p.nrb > 1 else p.B
    p.nrb = (p.B + p.rr - 1) // p.rr if p.rr else 1


cdef inline Py_ssize_t _lo(const Plan* p, Py_ssize_t rb, Py_ssize_t b) noexcept nogil:
    """First batch row of row block rb at a step of b rows (b if it has none; rb -1: all the
    rows, on one thread)."""
    return 0 if rb < 0 else min(b, rb * p.rr)


cdef inline Py_ssize_t _hi(const Plan* p, Py_ssize_t rb, Py_ssize_t b) noexcept nogil:
    """One past the last batch row of row block rb at a step of b rows."""
    return b if rb < 0 else min(b, (rb + 1) * p.rr)


cdef inline double* _db(const Plan* p, Py_ssize_t rb, bint second) noexcept nogil:
    """Row block rb's bias-gradient accumulator (db, or db2 when second), or NULL."""
    cdef double* d = p.db2 if second else p.db
    if d == NULL or rb == 0:
        return d
    return p.dbx + (2 * (rb - 1) + second) * p.G


cdef void _pack_forward(const Plan* p, Py_ssize_t k, float* bp) noexcept nogil:
    """Block k's forward panels, the block's columns of [W_ih^T; W_hh^T] (GRU: W_hh^T), read
    straight from its rows of W_ih and W_hh (block gate order): the transposed copies wihT and
    whhT are then not written (run_forward)."""
    cdef Py_ssize_t ng = p.G // p.H, u0 = k * p.hb, nr = fg_rt_nr()
    cdef Py_ssize_t n = ng * min(p.hb, p.H - u0), kf = p.P if p.mode == GRU else p.lx
    if p.mode != GRU:
        fg_rt_pack_t(<float*>p.wih + ng * u0 * p.nin, p.nin, p.nin, n, nr, kf, bp)
        bp += p.nin * nr
    fg_rt_pack_t(<float*>p.whh + ng * u0 * p.P, p.P, p.P, n, nr, kf, bp)


cdef void _cell(const Plan* p, floating* tag, Py_ssize_t row, Py_ssize_t r, Py_ssize_t u0,
                Py_ssize_t n, floating* hn) noexcept nogil:
    """Gate arithmetic and state update of units u0 .. u0+n of batch row r at packed row `row`,
    h also written to hn (the next step's h_prev row) unless NULL: the block's gates (block gate
    order) already hold x W_ih^T + h W_hh^T + biases (GRU: gh holds h W_hh^T without its
    bias)."""
    cdef Py_ssize_t j, H = p.H, ng = p.G // p.H
    cdef floating* g = <floating*>p.gx + row * p.G + ng * u0
    cdef floating* h = <floating*>p.out + row * p.P + u0
    cdef const floating* bias = NULL if p.bias == NULL else <floating*>p.bias + ng * u0
    cdef floating* gh
    cdef const floating* hp
    cdef const floating* bhh
    cdef floating v
    if p.mode == LSTM:
        _lstm_row(g, bias, <floating*>p.cst + r * H + u0, <floating*>p.cprev + row * H + u0,
                  <floating*>p.tc + row * H + u0, h, <floating*>p.hs + r * p.P + u0, hn, n)
        return
    if p.mode == GRU:
        gh = <floating*>p.gh + row * p.G + ng * u0
        if p.bhh != NULL:
            bhh = <const floating*>p.bhh + ng * u0
            for j in range(3 * n):
                gh[j] += bhh[j]
        for j in range(2 * n):
            g[j] += gh[j]
        _act(g, 2 * n, FG_VM_SIGMOID)
        for j in range(n):
            g[2 * n + j] += g[j] * gh[2 * n + j]
        _act(g + 2 * n, n, FG_VM_TANH)
        hp = <const floating*>p.hprev + row * p.lx + u0
        for j in range(n):
            h[j] = (1 - g[n + j]) * g[2 * n + j] + g[n + j] * hp[j]
    else:
        if bias != NULL:
            for j in range(n):
                g[j] += bias[j]
        if p.mode == RNN_TANH:
            _act(g, n, FG_VM_TANH)
        else:
            for j in range(n):
                v = g[j]
                g[j] = v if v > 0 else 0
        memcpy(h, g, n * sizeof(floating))
    memcpy(<floating*>p.hs + r * p.P + u0, h, n * sizeof(floating))
    if hn != NULL:
        memcpy(hn, h, n * sizeof(floating))


cdef void _forward_block(const Plan* p, floating* tag, Py_ssize_t i, Py_ssize_t k,
                         Py_ssize_t rb) noexcept nogil:
    """Block k of forward step i, row block rb's rows: the block's product (added to its gate
    columns), gate arithmetic and state update, and its columns of the next step's hprev rows."""
    cdef Py_ssize_t s, b, o, r, lo, hi, b2 = 0, o2 = 0, ng = p.G // p.H, u0 = k * p.hb
    cdef Py_ssize_t n = min(p.hb, p.H - u0)
    cdef floating* hprev = <floating*>p.hprev
    cdef float* bp
    s = _step(p, i, False)
    b, o = p.bs[s], p.off[s]
    lo, hi = _lo(p, rb, b), _hi(p, rb, b)
    if floating is float and p.wpk != NULL:    # Note [Packed recurrent weights]
        bp = _block_panel(p, False, k, rb)
        if i == 0:
            _pack_forward(p, k, bp)
        if hi == lo:
            pass
        elif p.mode == GRU:
            fg_rt_mm(hi - lo, ng * n, p.P, hprev + (o + lo) * p.lx, p.lx, 1, bp,
                     <float*>p.gh + (o + lo) * p.G + ng * u0, p.G, 0)
        else:
            fg_rt_mm(hi - lo, ng * n, p.lx, <float*>p.x + (o + lo) * p.lx, p.lx, 1, bp,
                     <float*>p.gx + (o + lo) * p.G + ng * u0, p.G, 0)
    elif hi == lo:
        pass
    elif p.mode == GRU:
        _mm_cols(tag, hi - lo, ng * n, p.P, hprev + (o + lo) * p.lx, p.lx,
                 <floating*>p.whhT + ng * u0, p.G, 0.0,
                 <floating*>p.gh + (o + lo) * p.G + ng * u0, p.G, FWD_COLS)
    else:                           # Note [One product per step]
        _mm_cols(tag, hi - lo, ng * n, p.lx, <floating*>p.x + (o + lo) * p.lx, p.lx,
                 <floating*>p.wihT + ng * u0, p.G, 0.0,
                 <floating*>p.gx + (o + lo) * p.G + ng * u0, p.G, FWD_COLS)
    if i + 1 < p.T:
        s = _step(p, i + 1, False)
        b2, o2 = p.bs[s], p.off[s]
    for r in range(lo, hi):
        _cell(p, tag, o + r, r, u0, n, hprev + (o2 + r) * p.lx + u0 if r < b2 else NULL)
    for r in range(max(b, rb * p.rr), _hi(p, rb, b2)):  # rows joining the batch (reverse
        memcpy(hprev + (o2 + r) * p.lx + u0,             # direction): their initial state
               <floating*>p.hs + r * p.P + u0, n * sizeof(floating))


cdef void _gates_back_block(const Plan* p, Py_ssize_t i, Py_ssize_t k, Py_ssize_t rb,
                            const floating* gout, floating* dh, floating* dc, floating* dgx,
                            floating* dgh) noexcept nogil:
    """Block k of gradient step i, row block rb's rows: the gate gradients of the block's units
    (arguments as _backward's, the gates in block gate order)."""
    cdef Py_ssize_t s, b, o, r, j, row, H = p.H, P = p.P, G = p.G, u0 = k * p.hb
    cdef Py_ssize_t n = min(p.hb, H - u0), gb = G // H * u0
    cdef floating* gx = <floating*>p.gx
    cdef floating* d
    cdef floating* dhr
    cdef const floating* go
    cdef floating t
    cdef double* db = _db(p, rb, False)
    cdef double* db2 = _db(p, rb, True)
    s = _step(p, i, True)
    b, o = p.bs[s], p.off[s]
    for r in range(_lo(p, rb, b), _hi(p, rb, b)):
        row = o + r
        if rb < 0:
            db, db2 = _db(p, r // p.rr, False), _db(p, r // p.rr, True)
        dhr = dh + r * P + u0
        go = NULL if gout == NULL else gout + row * P + u0
        if p.mode == LSTM:          # dh + go only inside: these dh columns are rewritten next
            _lstm_back_row(gx + row * G + gb, <floating*>p.tc + row * H + u0,
                           <floating*>p.cprev + row * H + u0, dhr, go, dc + r * H + u0,
                           dgx + row * G + gb, NULL if db == NULL else db + gb, n)
            continue
        if go != NULL:
            for j in range(n):
                dhr[j] += go[j]
        if p.mode == GRU:
            if floating is float:
                fg_gru_bwd_row_f32(gx + row * G + gb, <float*>p.gh + row * G + gb,
                                   <float*>p.hprev + row * p.lx + u0, dhr, dgx + row * G + gb,
                                   dgh + row * G + gb, n, n)
            else:
                fg_gru_bwd_row_f64(gx + row * G + gb, <double*>p.gh + row * G + gb,
                                   <double*>p.hprev + row * p.lx + u0, dhr, dgx + row * G + gb,
                                   dgh + row * G + gb, n, n)
            _acc(db, gb, dgx + row * G + gb, 3 * n)
            _acc(db2, gb, dgh + row * G + gb, 3 * n)
        else:
            d = dgx + row * G + gb
            for j in range(n):
                t = (<floating*>p.out)[row * P + u0 + j]
                if p.mode == RNN_TANH:
                    d[j] = dhr[j] * (1 - t * t)
                else:
                    d[j] = dhr[j] if t > 0 else 0
            _acc(db, gb, d, n)


cdef inline floating* _part(const Plan* p, floating* part, Py_ssize_t i,
                           Py_ssize_t k) noexcept nogil:
    """Block k's partial product of gradient step i (Note [Split gradient products]): one of
    two (B, P) buffers per block, by the parity of i, each starting on a cache line."""
    return part + ((i % 2) * p.nb + k) * _part_stride(p)


cdef inline Py_ssize_t _part_stride(const Plan* p) noexcept nogil:
    return (p.B * p.P + 15) // 16 * 16


cdef void _partial_block(const Plan* p, floating* tag, Py_ssize_t i, Py_ssize_t k,
                         Py_ssize_t rb, const floating* dg, floating* part) noexcept nogil:
    """Block k's share of the next dh after gradient step i, row block rb's rows: its gate
    columns of the step's recurrent gate gradients dg (dgx; GRU: dgh) times the same rows of
    W_hh, all P columns."""
    cdef Py_ssize_t s = _step(p, i, True), ng = p.G // p.H, u0 = k * p.hb
    cdef Py_ssize_t n = min(p.hb, p.H - u0), b = p.bs[s], o = p.off[s]
    cdef Py_ssize_t lo = _lo(p, rb, b), hi = _hi(p, rb, b)
    cdef float* bp
    if floating is float and p.wpk != NULL:    # Note [Packed recurrent weights]
        bp = _block_panel(p, True, k, rb)
        if i == 0:
            fg_rt_pack(<float*>p.whh + ng * u0 * p.P, p.P, ng * n, p.P, fg_rt_nr(), bp)
        if hi > lo:
            fg_rt_mm(hi - lo, p.P, ng * n, dg + (o + lo) * p.G + ng * u0, p.G, 1, bp,
                     _part(p, part, i, k) + lo * p.P, p.P, 0)
        return
    if hi > lo:
        _mm_cols(tag, hi - lo, p.P, ng * n, dg + (o + lo) * p.G + ng * u0, p.G,
                 <floating*>p.whh + ng * u0 * p.P, p.P, 0.0, _part(p, part, i, k) + lo * p.P,
                 p.P, BWD_COLS)


cdef void _dh_block(const Plan* p, Py_ssize_t i, Py_ssize_t k, Py_ssize_t rb, floating* dh,
                    floating* part) noexcept nogil:
    """Block k's columns of dh after gradient step i, row block rb's rows: the blocks' partial
    products summed in block order (GRU: added to the direct part dh * z already there)."""
    cdef Py_ssize_t s = _step(p, i, True), u0 = k * p.hb, r, j, q
    cdef Py_ssize_t n = min(p.hb, p.H - u0), b = p.bs[s]
    cdef floating* d
    cdef const floating* src
    for r in range(_lo(p, rb, b), _hi(p, rb, b)):
        d = dh + r * p.P + u0
        for q in range(p.nb):
            src = _part(p, part, i, q) + r * p.P + u0
            if q == 0 and p.mode != GRU:
                memcpy(d, src, n * sizeof(floating))
            else:
                for j in range(n):
                    d[j] += src[j]


cdef void _forward_team(const Plan* p, floating* tag, fg_rnn_phase* ph, Py_ssize_t first,
                        long long* waited) noexcept nogil:
    """One thread's part of the forward time loop (Note [Recurrence on the thread team]): per
    step, blocks in turn until none is left, then wait for the others' blocks."""
    cdef Py_ssize_t i, j, k
    for i in range(p.T):
        for j in range(p.nb):
            k = (first + j) % p.nb
            if fg_rnn_claim(ph + i, <int>k):
                _forward_block(p, tag, i, k, 0)
                fg_rnn_finish(ph + i)
        fg_rnn_wait(ph + i, <int>p.nb, waited)


cdef void _prefetch_back(const Plan* p, Py_ssize_t i, Py_ssize_t k, Py_ssize_t rb,
                         const floating* gout) noexcept nogil:
    """Start bringing block k's forward rows of gradient step i (saved gates, and for LSTM c and
    tanh c; the output gradient) into cache, while the step before is computed: written during
    the forward pass, they are beyond L2 by now."""
    cdef Py_ssize_t s = _step(p, i, True), ng = p.G // p.H, u0 = k * p.hb, sz = sizeof(floating)
    cdef Py_ssize_t n = min(p.hb, p.H - u0), b = p.bs[s], o = p.off[s]
    cdef Py_ssize_t lo = _lo(p, rb, b)
    o, b = o + lo, _hi(p, rb, b) - lo
    fg_rnn_prefetch(<char*>p.gx + (o * p.G + ng * u0) * sz, b, ng * n * sz, p.G * sz)
    if p.mode == LSTM:
        fg_rnn_prefetch(<char*>p.tc + (o * p.H + u0) * sz, b, n * sz, p.H * sz)
        fg_rnn_prefetch(<char*>p.cprev + (o * p.H + u0) * sz, b, n * sz, p.H * sz)
    if gout != NULL:
        fg_rnn_prefetch(<char*>gout + (o * p.P + u0) * sz, b, n * sz, p.P * sz)


cdef void _dw_block(const Plan* p, floating* tag, Py_ssize_t i, Py_ssize_t k, Py_ssize_t rb,
                    const floating* dgx) noexcept nogil:
    """After gradient step i ending a group of _dw_steps steps (or the last step): block k's rows
    of [dW_ih | dW_hh] (row block rb's: dw or its share in dwx) += the group's gate gradients
    of the block, row block rb's rows^T @ the same rows of [x | h_prev] (Note [Weight gradients
    in the loop]): the rows in segments, one per step in increasing time (merged when
    contiguous: with one row block a group's rows are one segment)."""
    cdef Py_ssize_t ng = p.G // p.H, u0 = k * p.hb, n = min(p.hb, p.H - u0)
    cdef Py_ssize_t s0 = _step(p, i - i % _dw_steps(p), True), s1 = _step(p, i, True), s, q
    cdef Py_ssize_t seg[2 * DW_MAX]
    cdef Py_ssize_t nseg = 0, lo, hi
    cdef floating* dw = <floating*>p.dw if rb == 0 else <floating*>p.dwx + (rb - 1) * p.G * p.lx
    for s in range(min(s0, s1), max(s0, s1) + 1):
        lo, hi = _lo(p, rb, p.bs[s]), _hi(p, rb, p.bs[s])
        if hi == lo:
            continue
        if nseg and seg[2 * nseg - 2] + seg[2 * nseg - 1] == p.off[s] + lo:
            seg[2 * nseg - 1] += hi - lo
        else:
            seg[2 * nseg], seg[2 * nseg + 1] = p.off[s] + lo, hi - lo
            nseg += 1
    if nseg == 0:
        return
    if floating is float and p.wpk != NULL:    # Note [Packed recurrent weights]
        fg_rt_mm_rows(ng * n, p.lx, nseg, seg, dgx + ng * u0, 1, p.G, <float*>p.x, p.lx,
                      _block_panel(p, True, k, rb) + _panels(ng * p.hb, p.P),
                      <float*>dw + ng * u0 * p.lx, p.lx, 1)
        return
    for q in range(nseg):
        _mm(tag, True, False, ng * n, p.lx, seg[2 * q + 1], dgx + seg[2 * q] * p.G + ng * u0,
            p.G, <floating*>p.x + seg[2 * q] * p.lx, p.lx, 1.0, dw + ng * u0 * p.lx, p.lx)


cdef inline void _backward_task(const Plan* p, floating* tag, Py_ssize_t i, Py_ssize_t k,
                                Py_ssize_t rb, const floating* gout, floating* dh, floating* dc,
                                floating* dgx, floating* dgh, floating* part) noexcept nogil:
    """Phase i, block k of the gradient loop, row block rb's rows: its columns of dh after step
    i - 1, then its gate gradients at step i (which read only those columns) and its partial
    product for dh."""
    cdef Py_ssize_t q
    if i > 0:
        _dh_block(p, i - 1, k, rb, dh, part)
    if i + 1 < p.T:
        _prefetch_back(p, i + 1, k, rb, gout)
    if i < p.T:
        _gates_back_block(p, i, k, rb, gout, dh, dc, dgx, dgh)
        _partial_block(p, tag, i, k, rb, dgh if p.mode == GRU else dgx, part)
        if p.dw != NULL and ((i + 1) % _dw_steps(p) == 0 or i + 1 == p.T):
            if rb >= 0:
                _dw_block(p, tag, i, k, rb, dgx)
            else:
                for q in range(p.nrb):
                    _dw_block(p, tag, i, k, q, dgx)


cdef void _backward_team(const Plan* p, floating* tag, fg_rnn_phase* ph, Py_ssize_t first,
                         long long* waited, const floating* gout, floating* dh, floating* dc,
                         floating* dgx, floating* dgh, floating* part) noexcept nogil:
    """One thread's part of the gradient time loop (_backward_task per block), one wait per
    step; phase T finishes dh."""
    cdef Py_ssize_t i, j, k
    for i in range(p.T + 1):
        for j in range(p.nb):
            k = (first + j) % p.nb
            if fg_rnn_claim(ph + i, <int>k):
                _backward_task(p, tag, i, k, 0, gout, dh, dc, dgx, dgh, part)
                fg_rnn_finish(ph + i)
        fg_rnn_wait(ph + i, <int>p.nb, waited)




cdef int _team_size(const Plan* p) noexcept nogil:
    """Threads for the time loop: 1 below TEAM_MACS multiply-adds per step, or for a while after
    the caller's thread spent most of a loop waiting for its partners (_settle)."""
    global _solo
    if p.B * p.G * p.P < TEAM_MACS:
        return 1
    if _solo > 0:
        _solo -= 1
        return 1
    return <int>min(<Py_ssize_t>nthreads(), p.nb if p.nrb == 1 else p.nrb)


cdef inline void _settle(long long start, long long waited) noexcept nogil:
    """After a loop on the team: when the caller waited for more than half of it, another
    process holds the partners' core, and a step shared with a descheduled thread lasts until
    the OS runs it again; the next SOLO_CALLS loops run on the caller's thread alone."""
    global _solo
    if 2 * waited > fg_rnn_now() - start:
        _solo = SOLO_CALLS


cdef void _forward_rows(const Plan* p, floating* tag, fg_rnn_phase* ph, Py_ssize_t first,
                        long long* waited) noexcept nogil:
    """One thread's part of a forward pass in row blocks (Note [Rows of a row block]): whole
    row blocks, its own first, until none is left, then wait for the others'."""
    cdef Py_ssize_t i, j, k, rb
    for j in range(p.nrb):
        rb = (first + j) % p.nrb
        if fg_rnn_claim(ph, <int>rb):
            for i in range(p.T):
                for k in range(p.nb):
                    _forward_block(p, tag, i, k, rb)
            fg_rnn_finish(ph)
    fg_rnn_wait(ph, <int>p.nrb, waited)


cdef void _backward_rows(const Plan* p, floating* tag, fg_rnn_phase* ph, Py_ssize_t first,
                         long long* waited, const floating* gout, floating* dh, floating* dc,
                         floating* dgx, floating* dgh, floating* part) noexcept nogil:
    """The gradient pass's _forward_rows."""
    cdef Py_ssize_t i, j, k, rb
    for j in range(p.nrb):
        rb = (first + j) % p.nrb
        if fg_rnn_claim(ph, <int>rb):
            for i in range(p.T + 1):
                for k in range(p.nb):
                    _backward_task(p, tag, i, k, rb, gout, dh, dc, dgx, dgh, part)
            fg_rnn_finish(ph)
    fg_rnn_wait(ph, <int>p.nrb, waited)


cdef void _run_forward(const Plan* p, floating* tag) noexcept nogil:
    cdef int nt = _team_size(p)
    cdef Py_ssize_t i, k
    cdef long long start, waited = 0
    cdef fg_rnn_phase* ph = NULL
    if nt > 1:
        ph = <fg_rnn_phase*>calloc(p.T if p.nrb == 1 else 1, sizeof(fg_rnn_phase))
    if ph == NULL:
        for i in range(p.T):
            for k in range(p.nb):
                _forward_block(p, tag, i, k, -1)
        return
    start = fg_rnn_now()
    _shares(p, ph, nt, &waited, NULL, NULL, NULL, NULL, NULL, NULL, False, floating is float)
    _settle(start, waited)
    free(ph)


ctypedef struct Shares:             # a time loop's shares for the thread team (_shares)
    const Plan* p
    fg_rnn_phase* ph
    long long* waited
    const void* gout
    void* dh
    void* dc
    void* dgx
    void* dgh
    void* part
    int nt
    bint backward, f32


cdef void _shares(const Plan* p, fg_rnn_phase* ph, int nt, long long* waited, const void* gout,
                  void* dh, void* dc, void* dgx, void* dgh, void* part, bint backward,
                  bint f32) noexcept nogil:
    """The time loop as nt shares on the thread team, share s starting at block s * nb / nt (or
    row block s * nrb / nt). Blocks are claimed per phase and every share waits only for blocks
    claimed, so a share run alone does the whole loop and a share that starts late joins where
    the others are (Note [Recurrence on the thread team]); share 0 measures the waits."""
    cdef Shares w
    w.p, w.ph, w.waited, w.gout, w.dh, w.dc, w.dgx, w.dgh, w.part = p, ph, waited, gout, dh, dc, \
        dgx, dgh, part
    w.nt, w.backward, w.f32 = nt, backward, f32
    team_run(_share_item, &w, nt, nt)


cdef void _share_item(void* ctx, Py_ssize_t s, int slot) noexcept nogil:
    cdef const Shares* w = <const Shares*>ctx
    if w.f32:
        _share(w, <float*>NULL, s)
    else:
        _share(w, <double*>NULL, s)


cdef inline void _share(const Shares* w, floating* tag, Py_ssize_t s) noexcept nogil:
    cdef const Plan* p = w.p
    cdef long long* waited = w.waited if s == 0 else NULL
    cdef Py_ssize_t first = s * (p.nrb if p.nrb > 1 else p.nb) // w.nt
    if not w.backward:
        if p.nrb > 1:
            _forward_rows(p, tag, w.ph, first, waited)
        else:
            _forward_team(p, tag, w.ph, first, waited)
    elif p.nrb > 1:
        _backward_rows(p, tag, w.ph, first, waited, <const floating*>w.gout, <floating*>w.dh,
                       <floating*>w.dc, <floating*>w.dgx, <floating*>w.dgh, <floating*>w.part)
    else:
        _backward_team(p, tag, w.ph, first, waited, <const floating*>w.gout, <floating*>w.dh,
                       <floating*>w.dc, <floating*>w.dgx, <floating*>w.dgh, <floating*>w.part)


cdef void _run_backward(const Plan* p, floating* tag, const floating* gout, floating* dh,
                        floating* dc, floating* dgx, floating* dgh) noexcept nogil:
    cdef int nt = _team_size(p)
    cdef Py_ssize_t i, k
    cdef long long start, waited = 0
    cdef fg_rnn_phase* ph = NULL
    cdef void* mem = malloc(2 * p.nb * _part_stride(p) * sizeof(floating) + 64)
    cdef floating* part
    if mem == NULL:
        return
    part = <floating*>(<char*>mem + (64 - <size_t>mem % 64) % 64)
    if nt > 1:
        ph = <fg_rnn_phase*>calloc(p.T + 1 if p.nrb == 1 else 1, sizeof(fg_rnn_phase))
    if ph == NULL:
        for i in range(p.T + 1):
            for k in range(p.nb):
                _backward_task(p, tag, i, k, -1, gout, dh, dc, dgx, dgh, part)
    else:
        start = fg_rnn_now()
        _shares(p, ph, nt, &waited, gout, dh, dc, dgx, dgh, part, True, floating is float)
        _settle(start, waited)
        free(ph)
    free(mem)


cdef bint _row_sums(Plan* p) noexcept nogil:
    """Room for the bias and weight gradients of row blocks 1 .. nrb - 1 (zeros; p.dbx, p.dwx
    NULL with one row block); false when out of memory."""
    cdef size_t fsz = sizeof(float) if p.f32 else sizeof(double)
    p.dbx = NULL
    p.dwx = NULL
    if p.nrb == 1:
        return True
    if p.db != NULL:
        p.dbx = <double*>calloc(2 * (p.nrb - 1) * p.G, sizeof(double))
        if p.dbx == NULL:
            return False
    if p.dw != NULL:
        p.dwx = calloc((p.nrb - 1) * p.G * p.lx, fsz)
        if p.dwx == NULL:
            free(p.dbx)
            p.dbx = NULL
            return False
    return True


cdef void _add_row_sums(Plan* p, floating* tag) noexcept nogil:
    """db, db2 and dw += row blocks 1 .. nrb - 1's shares, in row block order; frees them."""
    cdef Py_ssize_t rb, j, n = p.G * p.lx
    cdef floating* dw = <floating*>p.dw
    cdef floating* src
    cdef double* d
    for rb in range(1, p.nrb):
        if p.dbx != NULL:
            d = p.dbx + 2 * (rb - 1) * p.G
            for j in range(p.G):
                p.db[j] += d[j]
            if p.db2 != NULL:
                for j in range(p.G):
                    p.db2[j] += d[p.G + j]
        if p.dwx != NULL:
            src = <floating*>p.dwx + (rb - 1) * n
            for j in range(n):
                dw[j] += src[j]
    free(p.dbx)
    free(p.dwx)
    p.dbx = NULL
    p.dwx = NULL


cdef enum:
    ROW_BLOCK = 256     # rows of C per block in _mm_fixed (128: a weight gradient 20% slower)


cdef void _mm_fixed(floating* tag, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                    floating* c, Py_ssize_t ldc, const floating* bias) noexcept nogil:
    """C = op(A) @ op(B) (+ bias on every row when not NULL) in fixed blocks of ROW_BLOCK rows
    of C, shared by the thread team when the product is large (blas.SPLIT_MACS's scale): the same
    calls whatever the thread count."""
    cdef Py_ssize_t nblk = (m + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Fixed f
    f.ta, f.tb, f.m, f.n, f.k, f.a, f.lda, f.b, f.ldb, f.c, f.ldc, f.bias = \
        ta, tb, m, n, k, a, lda, b, ldb, c, ldc, bias
    f.f32 = floating is float
    team_run(_fixed_item, &f, nblk,
             nthreads() if nblk > 1 and m * n * k >= 4 * TEAM_MACS else 1)


ctypedef struct Fixed:              # _mm_fixed's product, for its blocks
    bint ta, tb, f32
    Py_ssize_t m, n, k, lda, ldb, ldc
    const void* a
    const void* b
    void* c
    const void* bias


cdef void _fixed_item(void* ctx, Py_ssize_t blk, int slot) noexcept nogil:
    cdef const Fixed* f = <const Fixed*>ctx
    if f.f32:
        _mm_rows(<float*>NULL, f.ta, f.tb, f.m, f.n, f.k, <const float*>f.a, f.lda,
                 <const float*>f.b, f.ldb, <float*>f.c, f.ldc, <const float*>f.bias, blk)
    else:
        _mm_rows(<double*>NULL, f.ta, f.tb, f.m, f.n, f.k, <const double*>f.a, f.lda,
                 <const double*>f.b, f.ldb, <double*>f.c, f.ldc, <const double*>f.bias, blk)


cdef void _mm_rows(floating* tag, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                   floating* c, Py_ssize_t ldc, const floating* bias,
                   Py_ssize_t blk) noexcept nogil:
    """One block of _mm_fixed; the bias rows are written just before the product adds to them,
    while the block is in this core's cache."""
    cdef Py_ssize_t lo = blk * ROW_BLOCK, hi = min(m, lo + ROW_BLOCK)
    _mm(tag, ta, tb, hi - lo, n, k, a + (lo if ta else lo * lda), lda, b, ldb,
        _bias_rows(c + lo * ldc, ldc, bias, hi - lo, n), c + lo * ldc, ldc)


# ----- the entry points (rnn_kernels.pxd) ---------------------------------------------------------

cdef void _forward_all(const Plan* p, floating* tag) noexcept nogil:
    if p.mode == GRU:               # its input part stays apart (r scales only W_hn h + b_hn)
        _mm_fixed(tag, False, False, p.total, p.G, p.nin, <floating*>p.x, p.lx,
                  <floating*>p.wihT, p.G, <floating*>p.gx, p.G, <floating*>p.bias)
    if p.proj:
        _forward(p, tag)
    else:
        _run_forward(p, tag)


cdef void _transpose(const floating* a, Py_ssize_t m, Py_ssize_t n, floating* t,
                     Py_ssize_t ldt) noexcept nogil:
    """t[j, i] = a[i, j] for the (m, n) contiguous a, t's rows ldt apart; 16 rows of a at a
    time, so each write fills a cache line of t while 16 rows of a are read in step (NumPy's
    strided copy took ~110 us for W12's two weights)."""
    cdef Py_ssize_t i0, i, j, hi
    for i0 in range(0, m, 16):
        hi = min(m, i0 + 16)
        for j in range(n):
            for i in range(i0, hi):
                t[j * ldt + i] = a[i * n + j]


cdef void _weights_t(const Plan* p, floating* tag) noexcept nogil:
    """wihT = [W_ih^T; W_hh^T] (Note [One product per step])."""
    _transpose(<const floating*>p.wih, p.G, p.nin, <floating*>p.wihT, p.G)
    _transpose(<const floating*>p.whh, p.G, p.P, <floating*>p.whhT, p.G)


cdef void run_forward(Plan* p) noexcept nogil:
    cdef int prev = blas.one_thread()
    cdef void* panels
    _row_blocks(p)
    panels = _alloc_panels(p, False)
    if p.f32:
        if p.wpk == NULL or p.mode == GRU:  # the tiles read W_ih and W_hh (_pack_forward)
            _weights_t(p, <float*>NULL)
        _forward_all(p, <float*>NULL)
    else:
        _weights_t(p, <double*>NULL)
        _forward_all(p, <double*>NULL)
    free(panels)
    p.wpk = NULL
    blas.restore(prev)


cdef void _backward_all(const Plan* p, floating* tag, const floating* gout, floating* dh,
                        floating* dc, floating* dgx, floating* dgh, floating* dhall,
                        floating* dhp) noexcept nogil:
    if p.proj:
        _backward(p, tag, gout, dh, dc, dgx, dhall, dhp)
    else:
        _run_backward(p, tag, gout, dh, dc, dgx, dgh)


cdef void run_backward(Plan* p, const void* gout, void* dh, void* dc, void* dgx, void* dgh,
                       void* dhall, void* dhp) noexcept nogil:
    cdef int prev = blas.one_thread()
    cdef void* panels
    _row_blocks(p)
    if not _row_sums(p):
        p.nrb, p.rr = 1, p.B
    panels = _alloc_panels(p, True)
    if p.f32:
        _backward_all(p, <float*>NULL, <const float*>gout, <float*>dh, <float*>dc, <float*>dgx,
                      <float*>dgh, <float*>dhall, <float*>dhp)
        _add_row_sums(p, <float*>NULL)
    else:
        _backward_all(p, <double*>NULL, <const double*>gout, <double*>dh, <double*>dc,
                      <double*>dgx, <double*>dgh, <double*>dhall, <double*>dhp)
        _add_row_sums(p, <double*>NULL)
    free(panels)
    p.wpk = NULL
    blas.restore(prev)


cdef void product(bint f32, bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                  const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, void* c,
                  Py_ssize_t ldc) noexcept nogil:
    cdef int prev = blas.one_thread()
    if f32:
        _mm_fixed(<float*>NULL, ta, tb, m, n, k, <const float*>a, lda, <const float*>b, ldb,
                  <float*>c, ldc, NULL)
    else:
        _mm_fixed(<double*>NULL, ta, tb, m, n, k, <const double*>a, lda, <const double*>b, ldb,
                  <double*>c, ldc, NULL)
    blas.restore(prev)

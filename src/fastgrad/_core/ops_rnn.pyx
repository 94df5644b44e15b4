# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Recurrent layers (RNN tanh/relu, LSTM, GRU): one direction of one layer as one graph node.

Note [One node per recurrent layer]
Recorded op by op, a 35-step LSTM makes ~10 nodes per step and the per-op overhead dominates a
small model. Here a whole layer-direction is one call and one node (RNNTanhBackward0,
RNNReluBackward0, LSTMBackward0, GRUBackward0):
- forward: the input projection of every time step is ONE product (x @ W_ih^T + biases), then per
  step one product h @ W_hh^T accumulated into that step's gate rows, and one fused nogil kernel
  for the gate nonlinearities and the state update (vectorised exp/tanh of vmath.h);
- backward: per step (in reverse order) one fused kernel for the gate gradients and one product
  dgates @ W_hh for the recurrent gradient; the input gradient and every weight gradient are then
  single products over all time steps (dgates^T @ x, dgates^T @ h_prev, ...).
The loop runs with OpenBLAS set to one thread (the products are small: Note [Single-threaded
BLAS for small products] in blas.pyx).

Note [Packed layout]
Every input is handled in the packed layout of PyTorch's PackedSequence: rows of time step t are
off[t] .. off[t] + bs[t], batch sizes non-increasing, a plain (T, B, I) sequence being bs = [B]*T.
The state is kept in a (B, .) buffer of which step t uses the first bs[t] rows: going forward in
time the finished sequences' rows simply stop changing (their final state is already in place);
going backward in time (reverse direction) rows joining the batch still hold their initial
state. The gradient pass mirrors this, so h_n's and h_0's gradients need no gathering either.

Gate layouts are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with n = tanh(W_in x + b_in +
r * (W_hn h + b_hn)), proj_size h = W_hr (o * tanh(c)).
"""
cimport cython
from cython cimport floating
cimport numpy as cnp
from libc.string cimport memcpy, memset
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport blas

cnp.import_array()

cdef extern from "vmath.h" nogil:
    ctypedef void (*fg_vm_f32_fn)(const float*, float*, Py_ssize_t) noexcept nogil
    ctypedef void (*fg_vm_f64_fn)(const double*, double*, Py_ssize_t) noexcept nogil
    fg_vm_f32_fn fg_vm_f32[4]
    fg_vm_f64_fn fg_vm_f64[4]
    int FG_VM_TANH, FG_VM_SIGMOID
    int fg_vm_select(int want_avx2)

fg_vm_select(1)

# The LSTM's gate-gradient loop for one row, with restrict pointers so that GCC vectorises it
# (through Cython's plain pointers it cannot rule out aliasing between the six arrays).
cdef extern from *:
    """
    #define FG_LSTM_BWD_ROW(T, NAME)                                                          \
    static void NAME(const T *restrict g, const T *restrict tc, const T *restrict cp,         \
                     const T *restrict dh, T *restrict dc, T *restrict d, ptrdiff_t H) {      \
        for (ptrdiff_t j = 0; j < H; j++) {                                                   \
            T gi = g[j], gf = g[H + j], gg = g[2 * H + j], go = g[3 * H + j], t = tc[j];      \
            T dcc = dc[j] + dh[j] * go * (1 - t * t);                                         \
            d[j] = dcc * gg * gi * (1 - gi);                                                  \
            d[H + j] = dcc * cp[j] * gf * (1 - gf);                                           \
            d[2 * H + j] = dcc * gi * (1 - gg * gg);                                          \
            d[3 * H + j] = dh[j] * t * go * (1 - go);                                         \
            dc[j] = dcc * gf;                                                                 \
        }                                                                                     \
    }
    FG_LSTM_BWD_ROW(float, fg_lstm_bwd_row_f32)
    FG_LSTM_BWD_ROW(double, fg_lstm_bwd_row_f64)
    /* GRU: g = activated (r, z, n), gh = W_hh h + b_hh, hp = h entering the step; dh enters as
       the gradient of the step's output and leaves as its direct part dh * z */
    #define FG_GRU_BWD_ROW(T, NAME)                                                           \
    static void NAME(const T *restrict g, const T *restrict gh, const T *restrict hp,         \
                     T *restrict dh, T *restrict d, T *restrict d2, ptrdiff_t H) {            \
        for (ptrdiff_t j = 0; j < H; j++) {                                                   \
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
    """
    void fg_lstm_bwd_row_f32(const float* g, const float* tc, const float* cp, const float* dh,
                             float* dc, float* d, Py_ssize_t H) noexcept nogil
    void fg_lstm_bwd_row_f64(const double* g, const double* tc, const double* cp,
                             const double* dh, double* dc, double* d, Py_ssize_t H) noexcept nogil
    void fg_gru_bwd_row_f32(const float* g, const float* gh, const float* hp, float* dh,
                            float* d, float* d2, Py_ssize_t H) noexcept nogil
    void fg_gru_bwd_row_f64(const double* g, const double* gh, const double* hp, double* dh,
                            double* d, double* d2, Py_ssize_t H) noexcept nogil

cdef enum:
    RNN_TANH = 0
    RNN_RELU = 1
    LSTM = 2
    GRU = 3

cdef tuple _NAMES = ("RNNTanhBackward0", "RNNReluBackward0", "LSTMBackward0", "GRUBackward0")
cdef tuple _GATES = (1, 1, 4, 3)


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


cdef inline void _rows(floating* dst, const floating* row, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Each of m rows of dst (n wide, contiguous) = row, or zeros when row is NULL."""
    cdef Py_ssize_t i
    for i in range(m):
        if row == NULL:
            memset(dst + i * n, 0, n * sizeof(floating))
        else:
            memcpy(dst + i * n, row, n * sizeof(floating))


# ----- one layer-direction: the plan -------------------------------------------------------------

ctypedef struct Plan:
    int mode
    bint reverse, proj
    Py_ssize_t T, B, nin, H, P, G, total
    Py_ssize_t lx    # row stride of x and hprev: both live in one (total, I + P) buffer, so the
                     # backward gets dW_ih and dW_hh from one product dG^T @ [x | h_prev]
    Py_ssize_t* bs
    Py_ssize_t* off
    void* x          # (total, I), row stride lx
    void* wih        # (G, I)
    void* whh        # (G, P)
    void* whhT       # (P, G): W_hh^T laid out for the forward's per-step products
    void* whr        # (P, H) or NULL
    void* bhh        # (G,) GRU's recurrent bias, or NULL
    void* gx         # (total, G) input projection, then the activated gates
    void* gh         # (total, G) GRU: W_hh h + b_hh
    void* out        # (total, P)
    void* hp         # (total, H) proj: o * tanh(c) before the projection
    void* tc         # (total, H) LSTM: tanh(c)
    void* cprev      # (total, H) LSTM: c entering the step
    void* hprev      # (total, P) h entering the step, row stride lx
    void* hs         # (B, P) state, h_n at the end
    void* cst        # (B, H) LSTM state, c_n at the end


cdef inline Py_ssize_t _step(const Plan* p, Py_ssize_t i, bint backward) noexcept nogil:
    """Time index of the i-th step run (forward pass order, reversed for the gradient pass)."""
    if p.reverse != backward:
        return p.T - 1 - i
    return i


cdef void _forward(const Plan* p, floating* tag) noexcept nogil:
    cdef Py_ssize_t i, s, b, o, r, j, H = p.H, P = p.P, G = p.G
    cdef floating* gx = <floating*>p.gx
    cdef floating* gh = <floating*>p.gh
    cdef floating* out = <floating*>p.out
    cdef floating* hp = <floating*>p.hp
    cdef floating* tc = <floating*>p.tc
    cdef floating* cprev = <floating*>p.cprev
    cdef floating* hprev = <floating*>p.hprev
    cdef floating* hs = <floating*>p.hs
    cdef floating* cst = <floating*>p.cst
    cdef floating* g
    cdef floating* hrow
    cdef floating* crow
    cdef floating* hv
    cdef floating v
    for i in range(p.T):
        s = _step(p, i, False)
        b, o = p.bs[s], p.off[s]
        for r in range(b):
            memcpy(hprev + (o + r) * p.lx, hs + r * P, P * sizeof(floating))
        if p.mode == GRU:
            _rows(gh + o * G, <floating*>p.bhh, b, G)
            _mm(tag, False, False, b, G, P, hprev + o * p.lx, p.lx, <floating*>p.whhT, G, 1.0,
                gh + o * G, G)
        else:
            _mm(tag, False, False, b, G, P, hprev + o * p.lx, p.lx, <floating*>p.whhT, G, 1.0,
                gx + o * G, G)
        if p.mode == LSTM:
            memcpy(cprev + o * H, cst, b * H * sizeof(floating))
            hv = (hp if p.proj else out) + o * (H if p.proj else P)
            for r in range(b):
                g = gx + (o + r) * G
                _act(g, 2 * H, FG_VM_SIGMOID)
                _act(g + 2 * H, H, FG_VM_TANH)
                _act(g + 3 * H, H, FG_VM_SIGMOID)
                crow = cst + r * H
                for j in range(H):
                    crow[j] = g[H + j] * crow[j] + g[j] * g[2 * H + j]
            memcpy(tc + o * H, cst, b * H * sizeof(floating))
            _act(tc + o * H, b * H, FG_VM_TANH)
            for r in range(b):
                g = gx + (o + r) * G
                crow = tc + (o + r) * H
                hrow = hv + r * H
                for j in range(H):
                    hrow[j] = g[3 * H + j] * crow[j]
            if p.proj:
                _mm(tag, False, True, b, P, H, hp + o * H, H, <floating*>p.whr, H, 0.0,
                    out + o * P, P)
        elif p.mode == GRU:
            for r in range(b):
                g = gx + (o + r) * G
                hrow = gh + (o + r) * G
                for j in range(2 * H):
                    g[j] = g[j] + hrow[j]
                _act(g, 2 * H, FG_VM_SIGMOID)
                for j in range(H):
                    g[2 * H + j] = g[2 * H + j] + g[j] * hrow[2 * H + j]
                _act(g + 2 * H, H, FG_VM_TANH)
                hv = out + (o + r) * P
                crow = hprev + (o + r) * p.lx
                for j in range(H):
                    hv[j] = (1 - g[H + j]) * g[2 * H + j] + g[H + j] * crow[j]
        else:
            if p.mode == RNN_TANH:
                _act(gx + o * G, b * G, FG_VM_TANH)
            else:
                for j in range(b * G):
                    v = gx[o * G + j]
                    gx[o * G + j] = v if v > 0 else 0
            memcpy(out + o * P, gx + o * G, b * P * sizeof(floating))
        memcpy(hs, out + o * P, b * P * sizeof(floating))


cdef void _backward(const Plan* p, floating* tag, const floating* gout, floating* dh,
                    floating* dc, floating* dgx, floating* dgh, floating* dhall,
                    floating* dhp) noexcept nogil:
    """The gradient pass: dh (B, P) and dc (B, H) enter as h_n's and c_n's gradients and leave
    as h_0's and c_0's; dgx (total, G) gets the pre-activation gate gradients (GRU: of the input
    part, dgh of the recurrent part); dhall (total, P) the total gradient of each step's output
    (proj only); dhp (B, H) is scratch."""
    cdef Py_ssize_t i, s, b, o, r, j, H = p.H, P = p.P, G = p.G
    cdef floating* gx = <floating*>p.gx
    cdef floating* gh = <floating*>p.gh
    cdef floating* out = <floating*>p.out
    cdef floating* tc = <floating*>p.tc
    cdef floating* cprev = <floating*>p.cprev
    cdef floating* hprev = <floating*>p.hprev
    cdef floating* d
    cdef floating* dhv
    cdef floating t
    for i in range(p.T):
        s = _step(p, i, True)
        b, o = p.bs[s], p.off[s]
        if gout != NULL:
            for j in range(b * P):
                dh[j] += gout[o * P + j]
        if p.mode == LSTM:
            if p.proj:
                memcpy(dhall + o * P, dh, b * P * sizeof(floating))
                _mm(tag, False, False, b, H, P, dh, P, <floating*>p.whr, H, 0.0, dhp, H)
                dhv = dhp
            else:
                dhv = dh
            for r in range(b):
                if floating is float:
                    fg_lstm_bwd_row_f32(gx + (o + r) * G, tc + (o + r) * H,
                                        cprev + (o + r) * H, dhv + r * H, dc + r * H,
                                        dgx + (o + r) * G, H)
                else:
                    fg_lstm_bwd_row_f64(gx + (o + r) * G, tc + (o + r) * H,
                                        cprev + (o + r) * H, dhv + r * H, dc + r * H,
                                        dgx + (o + r) * G, H)
            _mm(tag, False, False, b, P, G, dgx + o * G, G, <floating*>p.whh, P, 0.0, dh, P)
        elif p.mode == GRU:
            for r in range(b):
                if floating is float:
                    fg_gru_bwd_row_f32(gx + (o + r) * G, gh + (o + r) * G,
                                       hprev + (o + r) * p.lx, dh + r * P, dgx + (o + r) * G,
                                       dgh + (o + r) * G, H)
                else:
                    fg_gru_bwd_row_f64(gx + (o + r) * G, gh + (o + r) * G,
                                       hprev + (o + r) * p.lx, dh + r * P, dgx + (o + r) * G,
                                       dgh + (o + r) * G, H)
            _mm(tag, False, False, b, P, G, dgh + o * G, G, <floating*>p.whh, P, 1.0, dh, P)
        else:
            d = dgx + o * G
            for j in range(b * G):
                t = out[o * P + j]
                if p.mode == RNN_TANH:
                    d[j] = dh[j] * (1 - t * t)
                else:
                    d[j] = dh[j] if t > 0 else 0
            _mm(tag, False, False, b, P, G, d, G, <floating*>p.whh, P, 0.0, dh, P)


# ----- the Python entry point and the node --------------------------------------------------------

cdef void _fill(Plan* p, list keep) except *:
    """Point the plan at the arrays in keep (order: see RNNLayerBackward.keep)."""
    p.x = cnp.PyArray_DATA(<cnp.ndarray>keep[0])
    p.wih = cnp.PyArray_DATA(<cnp.ndarray>keep[1])
    p.whh = cnp.PyArray_DATA(<cnp.ndarray>keep[2])
    p.whr = NULL if keep[3] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[3])
    p.bhh = NULL if keep[4] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[4])
    p.gx = cnp.PyArray_DATA(<cnp.ndarray>keep[5])
    p.gh = NULL if keep[6] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[6])
    p.out = cnp.PyArray_DATA(<cnp.ndarray>keep[7])
    p.hp = NULL if keep[8] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[8])
    p.tc = NULL if keep[9] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[9])
    p.cprev = NULL if keep[10] is None else cnp.PyArray_DATA(<cnp.ndarray>keep[10])
    p.hprev = cnp.PyArray_DATA(<cnp.ndarray>keep[11])
    p.bs = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>keep[12])
    p.off = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>keep[13])


def rnn_layer(int mode, TensorBase x, TensorBase h0, TensorBase c0, TensorBase w_ih,
              TensorBase w_hh, TensorBase b_ih, TensorBase b_hh, TensorBase w_hr,
              batch_sizes, bint reverse):
    """One direction of one recurrent layer over a time-major sequence (Note [Packed layout]).

    mode: 0 RNN tanh, 1 RNN relu, 2 LSTM, 3 GRU. x: (..., I) with sum(batch_sizes) rows;
    h0 (B, P), c0 (B, H) (LSTM) or None; b_ih, b_hh, w_hr may be None. Returns (output of x's
    leading shape + (P,), h_n (B, P), c_n (B, H) or None), recorded as one node."""
    cdef Plan p
    cdef int prev
    cdef cnp.ndarray bs = np.ascontiguousarray(batch_sizes, dtype=np.intp)
    cdef cnp.ndarray off
    dt = x._data.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"recurrent layers support float32 and float64, got {dt}")
    p.mode = mode
    p.reverse = reverse
    p.G = w_ih._data.shape[0]
    p.H = p.G // _GATES[mode]
    p.nin = w_ih._data.shape[1]
    p.P = w_hh._data.shape[1]
    p.proj = w_hr is not None
    p.T = bs.shape[0]
    p.B = bs[0] if p.T else h0._data.shape[0]
    off = np.zeros(p.T, dtype=np.intp)
    if p.T > 1:
        np.cumsum(bs[:p.T - 1], out=off[1:])
    p.total = int(bs.sum())
    xh = np.empty((p.total, p.nin + p.P), dtype=dt)
    xh[:, :p.nin] = np.reshape(x._data, (p.total, p.nin))
    p.lx = p.nin + p.P
    wih = np.ascontiguousarray(w_ih._data, dtype=dt)
    whh = np.ascontiguousarray(w_hh._data, dtype=dt)
    whr = None if w_hr is None else np.ascontiguousarray(w_hr._data, dtype=dt)
    bias = None
    if b_ih is not None:
        bias = np.array(b_ih._data, dtype=dt)
        if mode != GRU:
            bias += b_hh._data
    bhh = None if (mode != GRU or b_hh is None) else np.ascontiguousarray(b_hh._data, dtype=dt)
    gx = np.empty((p.total, p.G), dtype=dt)
    if bias is None:
        gx[...] = 0
    else:
        gx[...] = bias
    gh = np.empty((p.total, p.G), dtype=dt) if mode == GRU else None
    out = np.empty((p.total, p.P), dtype=dt)
    hp = np.empty((p.total, p.H), dtype=dt) if p.proj else None
    tc = np.empty((p.total, p.H), dtype=dt) if mode == LSTM else None
    cprev = np.empty((p.total, p.H), dtype=dt) if mode == LSTM else None
    hs = np.array(h0._data, dtype=dt, order="C")
    cst = np.array(c0._data, dtype=dt, order="C") if mode == LSTM else None
    keep = [xh[:, :p.nin], wih, whh, whr, bhh, gx, gh, out, hp, tc, cprev, xh[:, p.nin:], bs,
            off, xh]
    _fill(&p, keep)
    whhT = np.ascontiguousarray(whh.T)
    p.whhT = cnp.PyArray_DATA(<cnp.ndarray>whhT)
    wihT = np.ascontiguousarray(wih.T)          # (I, G): the layout OpenBLAS packs fastest
    cdef void* pwihT = cnp.PyArray_DATA(<cnp.ndarray>wihT)
    p.hs = cnp.PyArray_DATA(<cnp.ndarray>hs)
    p.cst = NULL if cst is None else cnp.PyArray_DATA(<cnp.ndarray>cst)
    cdef bint f32 = dt == np.float32
    with nogil:
        prev = blas.one_thread()
        if f32:                                     # the input projection: one product
            _mm(<float*>NULL, False, False, p.total, p.G, p.nin, <float*>p.x, p.lx,
                <float*>pwihT, p.G, 1.0, <float*>p.gx, p.G)
            _forward(&p, <float*>NULL)
        else:
            _mm(<double*>NULL, False, False, p.total, p.G, p.nin, <double*>p.x, p.lx,
                <double*>pwihT, p.G, 1.0, <double*>p.gx, p.G)
            _forward(&p, <double*>NULL)
        blas.restore(prev)
    lead = tuple((<object>x._data).shape)[:x._data.ndim - 1]
    cdef TensorBase o_t = wrap(out.reshape(lead + (p.P,)))
    cdef TensorBase hn_t = wrap(hs)
    cdef TensorBase cn_t = wrap(cst) if cst is not None else None
    inputs = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    if not grad_enabled() or not any(t is not None and (<TensorBase>t)._requires_grad
                                     for t in inputs):
        return o_t, hn_t, cn_t
    cls = _node_class(_NAMES[mode])
    cdef RNNLayerBackward node = cls.__new__(cls)
    node.mode, node.reverse, node.T, node.B = mode, reverse, p.T, p.B
    node.keep = keep
    node.x_shape = tuple((<object>x._data).shape)
    node.has_bias = b_ih is not None
    node.saved = tuple([save(<TensorBase>t, False) if t is not None else None
                        for t in (x, w_ih, w_hh, w_hr)])
    node._n_out = 3 if mode == LSTM else 2
    set_history(o_t, node, inputs)
    hn_t._grad_fn, hn_t._requires_grad, hn_t._output_nr = node, True, 1
    if cn_t is not None:
        cn_t._grad_fn, cn_t._requires_grad, cn_t._output_nr = node, True, 2
    return o_t, hn_t, cn_t


cdef dict _NODE_CLASSES = {}


cdef type _node_class(str name):
    cls = _NODE_CLASSES.get(name)
    if cls is None:
        cls = type(name, (RNNLayerBackward,), {"__slots__": (), "__module__": __name__,
                                               "__doc__": f"{name}: see Note [One node per "
                                                          "recurrent layer]."})
        _NODE_CLASSES[name] = cls
    return cls


cdef class RNNLayerBackward(Node):
    """The gradient of one recurrent layer-direction (Note [One node per recurrent layer]).
    Inputs: (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr); outputs (output, h_n[, c_n])."""
    cdef int mode
    cdef bint reverse, has_bias
    cdef Py_ssize_t T, B
    cdef list keep             # the forward's arrays: see _fill
    cdef tuple x_shape
    cdef tuple saved           # SavedVars of x, w_ih, w_hh, w_hr: the in-place checks

    cdef tuple apply(self, tuple grads):
        cdef Plan p
        cdef int prev
        cdef SavedVar s
        cdef cnp.ndarray gout = None, dh, dc = None, dgx, dgh = None, dhall = None, dhp = None
        if self.keep is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Specify retain_graph=True if you "
                "need to backward through the graph a second time.")
        if grad_enabled():
            raise RuntimeError(
                f"{type(self).__name__}: double backward (create_graph=True) through a recurrent "
                "layer is not supported; compute the second derivative by finite differences or "
                "without create_graph")
        for s in self.saved:
            if s is not None:
                s.unpack(self)
        keep = self.keep
        xs, wih, whh, whr = keep[0], keep[1], keep[2], keep[3]
        out, hp = keep[7], keep[8]
        dt = out.dtype
        p.mode, p.reverse, p.T, p.B = self.mode, self.reverse, self.T, self.B
        p.total, p.P = out.shape[0], out.shape[1]
        p.G, p.nin = wih.shape[0], wih.shape[1]
        p.lx = p.nin + p.P
        p.H = p.G // _GATES[p.mode]
        p.proj = whr is not None
        _fill(&p, keep)
        if grads[0] is not None:
            gout = np.ascontiguousarray(np.reshape((<TensorBase>grads[0])._data,
                                                   (p.total, p.P)), dtype=dt)
        dh = np.zeros((p.B, p.P), dtype=dt) if grads[1] is None else \
            np.array((<TensorBase>grads[1])._data, dtype=dt, order="C")
        if p.mode == LSTM:
            dc = np.zeros((p.B, p.H), dtype=dt) if grads[2] is None else \
                np.array((<TensorBase>grads[2])._data, dtype=dt, order="C")
        dgx = np.empty((p.total, p.G), dtype=dt)
        if p.mode == GRU:
            dgh = np.empty((p.total, p.G), dtype=dt)
        if p.proj:
            dhall = np.empty((p.total, p.P), dtype=dt)
            dhp = np.empty((p.B, p.H), dtype=dt)
        cdef bint f32 = dt == np.float32
        cdef void* a0 = _ptr(gout)
        cdef void* a1 = _ptr(dh)
        cdef void* a2 = _ptr(dc)
        cdef void* a3 = _ptr(dgx)
        cdef void* a4 = _ptr(dgh)
        cdef void* a5 = _ptr(dhall)
        cdef void* a6 = _ptr(dhp)
        with nogil:
            prev = blas.one_thread()
            if f32:
                _backward(&p, <float*>NULL, <float*>a0, <float*>a1, <float*>a2, <float*>a3,
                          <float*>a4, <float*>a5, <float*>a6)
            else:
                _backward(&p, <double*>NULL, <double*>a0, <double*>a1, <double*>a2,
                          <double*>a3, <double*>a4, <double*>a5, <double*>a6)
            blas.restore(prev)
        # every weight gradient and the input gradient: one product over all time steps each,
        # on this thread (the team split of blas.matmul2d costs more than it saves when other
        # processes keep the cores busy: Note [Single-threaded BLAS for small products])
        rec = dgx if dgh is None else dgh
        fns = self._next_fns
        dx = dwih = dwhh = dbih = dbhh = dwhr = None
        if fns[0] is not None:
            dx = _product(dgx, False, wih, False)
        if fns[3] is not None and fns[4] is not None and rec is dgx:
            both = _product(dgx, True, keep[14], False)
            dwih, dwhh = both[:, :p.nin].copy(), both[:, p.nin:].copy()
        else:
            if fns[3] is not None:
                dwih = _product(dgx, True, xs, False)
            if fns[4] is not None:
                dwhh = _product(rec, True, keep[11], False)
        if p.proj and fns[7] is not None:
            dwhr = _product(dhall, True, hp, False)
        if self.has_bias:
            if fns[5] is not None:
                dbih = wrap(dgx.sum(0))
            if fns[6] is not None:           # RNN/LSTM: both biases get the same gradient
                dbhh = wrap(rec.sum(0)) if rec is not dgx or dbih is None else \
                    wrap((<TensorBase>dbih)._data.copy())
        if dx is not None:
            dx = wrap(np.reshape(dx, self.x_shape))
        dwih, dwhh, dwhr = [None if a is None else wrap(a) for a in (dwih, dwhh, dwhr)]
        return (dx, wrap(dh), wrap(dc) if dc is not None else None, dwih, dwhh, dbih, dbhh,
                dwhr)

    cdef void release_variables(self):
        cdef SavedVar s
        self.keep = None
        if self.saved is not None:
            for s in self.saved:
                if s is not None:
                    s.release()


cdef inline void* _ptr(cnp.ndarray a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(a)


cdef cnp.ndarray _product(cnp.ndarray a, bint ta, cnp.ndarray b, bint tb):
    """op(a) @ op(b) for 2-D arrays of one float dtype with unit column stride, on the calling
    thread."""
    cdef Py_ssize_t m = a.shape[1] if ta else a.shape[0], k = a.shape[0] if ta else a.shape[1]
    cdef Py_ssize_t n = b.shape[0] if tb else b.shape[1]
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t lda = a.strides[0] // isz, ldb = b.strides[0] // isz
    cdef cnp.ndarray c = np.empty((m, n), dtype=a.dtype)
    cdef void* pa = cnp.PyArray_DATA(a)
    cdef void* pb = cnp.PyArray_DATA(b)
    cdef void* pc = cnp.PyArray_DATA(c)
    cdef bint f32 = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
    cdef int prev
    with nogil:
        prev = blas.one_thread()
        if f32:
            _mm(<float*>NULL, ta, tb, m, n, k, <float*>pa, lda, <float*>pb, ldb, 0.0,
                <float*>pc, n)
        else:
            _mm(<double*>NULL, ta, tb, m, n, k, <double*>pa, lda, <double*>pb, ldb, 0.0,
                <double*>pc, n)
        blas.restore(prev)
    return c

# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Recurrent layers (RNN tanh/relu, LSTM, GRU): one direction of one layer as one graph node.

Note [One node per recurrent layer]
Recorded op by op, a 35-step LSTM makes ~10 nodes per step and the per-op overhead dominates a
small model. Here a whole layer-direction is one call and one node (RNNTanhBackward0,
RNNReluBackward0, LSTMBackward0, GRUBackward0):
- forward: per step one product [x | h] @ [W_ih^T; W_hh^T] added to the biases (GRU: the input
  projection of every time step is ONE product, then per step h @ W_hh^T), and one fused nogil
  kernel for the gate nonlinearities and the state update (vectorised exp/tanh of vmath.h);
- backward: per step (in reverse order) one fused kernel for the gate gradients (and the bias
  gradients' sums) and one product dgates @ W_hh for the recurrent gradient; the input gradient
  and every weight gradient are then single products over all time steps (dgates^T @ x, dgates^T
  @ h_prev, ...).
The loops (rnn_kernels.pyx) run with OpenBLAS set to one thread (the products are small: Note
[Single-threaded BLAS for small products] in blas.pyx) and share each step among fastgrad's own
threads (Note [Recurrence on the thread team] in rnn_kernels.pyx).

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
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.rnn_kernels cimport Plan, LSTM, GRU, unit_blocks, run_forward, run_backward, \
    product

cnp.import_array()

cdef tuple _NAMES = ("RNNTanhBackward0", "RNNReluBackward0", "LSTMBackward0", "GRUBackward0")
cdef tuple _GATES = (1, 1, 4, 3)


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
    xh = _lines((p.total, p.nin + p.P), dt)
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
    if not p.proj:                              # Note [Recurrence on the thread team]
        p.hb = unit_blocks(p.H)
        p.nb = (p.H + p.hb - 1) // p.hb
        perm = _gate_order(_GATES[mode], p.H, p.hb)[0]
        wih, whh = wih[perm], whh[perm]
        bias = None if bias is None else bias[perm]
        bhh = None if bhh is None else bhh[perm]
    gx = _lines((p.total, p.G), dt)            # every row is written before it is read
    gh = _lines((p.total, p.G), dt) if mode == GRU else None
    out = _lines((p.total, p.P), dt)
    hp = np.empty((p.total, p.H), dtype=dt) if p.proj else None
    tc = _lines((p.total, p.H), dt) if mode == LSTM else None
    cprev = _lines((p.total, p.H), dt) if mode == LSTM else None
    hs = _lines((p.B, p.P), dt, h0._data)
    cst = _lines((p.B, p.H), dt, c0._data) if mode == LSTM else None
    keep = [xh[:, :p.nin], wih, whh, whr, bhh, gx, gh, out, hp, tc, cprev, xh[:, p.nin:], bs,
            off, xh]
    _fill(&p, keep)
    p.f32 = dt == np.float32
    p.bias = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    p.db = p.db2 = NULL
    p.dw = NULL
    wT = np.empty((p.lx, p.G), dtype=dt)        # run_forward writes [W_ih^T; W_hh^T] there
    p.wihT = cnp.PyArray_DATA(<cnp.ndarray>wT)
    p.whhT = cnp.PyArray_DATA(<cnp.ndarray>wT[p.nin:])
    p.hs = cnp.PyArray_DATA(<cnp.ndarray>hs)
    p.cst = NULL if cst is None else cnp.PyArray_DATA(<cnp.ndarray>cst)
    if not p.proj and p.T:                      # the first step's h entering it
        s0 = p.T - 1 if reverse else 0
        xh[off[s0]:off[s0] + bs[s0], p.nin:] = hs[:bs[s0]]
    with nogil:
        run_forward(&p)
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


cdef object _lines(tuple shape, dt, fill=None):
    """A new C-contiguous array starting on a 64-byte boundary (a cache line), filled from fill
    when given: threads writing neighbouring unit blocks of a row never share a line
    (Note [Recurrence on the thread team]; NumPy's own buffers start 16 bytes past one)."""
    cdef Py_ssize_t n = 1, isz = np.dtype(dt).itemsize, pad
    for d in shape:
        n *= d
    cdef cnp.ndarray buf = np.empty(n * isz + 64, dtype=np.uint8)
    pad = (64 - <Py_ssize_t>(<size_t>cnp.PyArray_DATA(buf) % 64)) % 64
    a = buf[pad:pad + n * isz].view(dt).reshape(shape)
    if fill is not None:
        a[...] = fill
    return a


cdef dict _GATE_ORDERS = {}


cdef tuple _gate_order(Py_ssize_t ng, Py_ssize_t H, Py_ssize_t hb):
    """The block gate order of Note [Recurrence on the thread team]: (perm, inv), perm[c] the
    PyTorch gate row at column c (block k's gates, each of its units in turn, at ng * k * hb),
    inv its inverse."""
    key = (ng, H, hb)
    got = _GATE_ORDERS.get(key)
    if got is None:
        perm = np.concatenate([(np.arange(ng)[:, None] * H + np.arange(u0, min(u0 + hb, H)))
                               .reshape(-1) for u0 in range(0, H, hb)]).astype(np.intp)
        got = (perm, np.argsort(perm).astype(np.intp))
        _GATE_ORDERS[key] = got
    return got


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
        cdef SavedVar s
        cdef cnp.ndarray gout = None, dh, dc = None, dgx, dgh = None, dhall = None, dhp = None
        cdef cnp.ndarray dw
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
        p.hb = unit_blocks(p.H)
        p.nb = (p.H + p.hb - 1) // p.hb
        p.f32 = dt == np.float32
        _fill(&p, keep)
        if grads[0] is not None:
            gout = np.ascontiguousarray(np.reshape((<TensorBase>grads[0])._data,
                                                   (p.total, p.P)), dtype=dt)
        dh = _lines((p.B, p.P), dt, 0 if grads[1] is None else (<TensorBase>grads[1])._data)
        if p.mode == LSTM:
            dc = _lines((p.B, p.H), dt, 0 if grads[2] is None else (<TensorBase>grads[2])._data)
        dgx = _lines((p.total, p.G), dt)
        if p.mode == GRU:
            dgh = _lines((p.total, p.G), dt)
        if p.proj:
            dhall = np.empty((p.total, p.P), dtype=dt)
            dhp = np.empty((p.B, p.H), dtype=dt)
        fns = self._next_fns
        db = db2 = None                 # the bias gradients, summed in the loop in float64
        if self.has_bias and (fns[5] is not None or fns[6] is not None):
            db = np.zeros(p.G, dtype=np.float64)
            if p.mode == GRU:
                db2 = np.zeros(p.G, dtype=np.float64)
        p.db = <double*>_ptr(db)
        p.db2 = <double*>_ptr(db2)
        p.bias = NULL
        dw = None                       # Note [Weight gradients in the loop] in rnn_kernels.pyx
        if p.mode != GRU and not p.proj and fns[3] is not None and fns[4] is not None:
            dw = np.zeros((p.G, p.lx), dtype=dt)
        p.dw = _ptr(dw)
        cdef void* a0 = _ptr(gout)
        cdef void* a1 = _ptr(dh)
        cdef void* a2 = _ptr(dc)
        cdef void* a3 = _ptr(dgx)
        cdef void* a4 = _ptr(dgh)
        cdef void* a5 = _ptr(dhall)
        cdef void* a6 = _ptr(dhp)
        with nogil:
            run_backward(&p, a0, a1, a2, a3, a4, a5, a6)
        # every weight gradient and the input gradient: one product over all time steps each,
        # in fixed blocks of rows shared by the thread team (Note [Recurrence on the thread
        # team] in rnn_kernels.pyx)
        rec = dgx if dgh is None else dgh
        dx = dwih = dwhh = dbih = dbhh = dwhr = None
        order = slice(None) if p.proj else _gate_order(_GATES[p.mode], p.H, p.hb)[1]
        if fns[0] is not None:
            dx = _product(dgx, False, wih, False)
        if fns[3] is not None and fns[4] is not None and rec is dgx:
            both = (dw if dw is not None else _product(dgx, True, keep[14], False))[order]
            dwih, dwhh = both[:, :p.nin].copy(), both[:, p.nin:].copy()
        else:
            if fns[3] is not None:
                dwih = _product(dgx, True, xs, False)[order]
            if fns[4] is not None:
                dwhh = _product(rec, True, keep[11], False)[order]
        if p.proj and fns[7] is not None:
            dwhr = _product(dhall, True, hp, False)
        if db is not None:
            b1 = db[order].astype(dt)
            if fns[5] is not None:
                dbih = wrap(b1)
            if fns[6] is not None:           # RNN/LSTM: both biases get the same gradient
                dbhh = wrap(db2[order].astype(dt) if db2 is not None else
                            b1.copy() if dbih is not None else b1)
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
    """op(a) @ op(b) for 2-D arrays of one float dtype with unit column stride (rnn_kernels.product:
    the same bits on any thread count)."""
    cdef Py_ssize_t m = a.shape[1] if ta else a.shape[0], k = a.shape[0] if ta else a.shape[1]
    cdef Py_ssize_t n = b.shape[0] if tb else b.shape[1]
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t lda = a.strides[0] // isz, ldb = b.strides[0] // isz
    cdef cnp.ndarray c = np.empty((m, n), dtype=a.dtype)
    cdef void* pa = cnp.PyArray_DATA(a)
    cdef void* pb = cnp.PyArray_DATA(b)
    cdef void* pc = cnp.PyArray_DATA(c)
    cdef bint f32 = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
    with nogil:
        product(f32, ta, tb, m, n, k, pa, lda, pb, ldb, pc, n)
    return c

# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Max and average pooling, plain and adaptive, 1-D and 2-D: compiled nogil kernels over the
(N*C) planes, planes taken by the threads of fastgrad's team as they come free, above PAR_MIN elements.

Note [Pooling windows]
Every pooling here reads, for output (oh, ow), the rows h0[oh] + i*dh (i < hn[oh]) and columns
w0[ow] + j*dw (j < wn[ow]) of its plane: only positions inside the input, computed once per call
by the caller (padding, ceil_mode, dilation and the adaptive windows all reduce to these four
vectors). Max pooling scans the window row by row and keeps the first maximum (a later element
replaces it only if strictly greater, or NaN), as PyTorch's CPU kernel does, and records its
index in the plane (h * W + w), which the backward uses to route each gradient. Average pooling
divides by divh[oh] * divw[ow] (PyTorch's divisor: the window clipped to the padded input with
count_include_pad, to the input without it) or by divisor_override. The average's backward is the
adjoint map (each output's gradient spread evenly over its window), and the two are recorded as
each other's backward, so gradients of gradients work; max pooling's create_graph backward is a
recorded scatter_add.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.string cimport memset
from libc.math cimport INFINITY
from cython cimport floating
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.kernels cimport nthreads, team_run, PAR_MIN

cnp.import_array()

cdef extern from "pool_pairs.h" nogil:
    int fg_pp_ok()
    void fg_pp_plane(const float* x, Py_ssize_t W, float* y, int64_t* idx, Py_ssize_t OH,
                     Py_ssize_t OW)
    void fg_pp_back_plane(const float* g, const int64_t* idx, float* gx, Py_ssize_t H,
                          Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW)


ctypedef struct Win:
    Py_ssize_t P, H, W, OH, OW, dh, dw, wmax    # wmax: the widest window
    bint full                     # every window has the same, full size
    bint pair                     # 2x2 windows at stride 2 from the origin, undilated
    const int64_t* h0
    const int64_t* hn
    const int64_t* w0
    const int64_t* wn
    const double* divh
    const double* divw
    double override


cdef inline int _team(Py_ssize_t planes, Py_ssize_t work) noexcept nogil:
    cdef int nt = nthreads()
    if work < PAR_MIN or planes < 2:
        return 1
    return nt if nt < planes else <int>planes


# The planes are shared across the thread team in groups of PLANES (one claim per group, not per
# plane: a plane of a small image is a fraction of a microsecond). Each plane is computed the
# same way whichever thread takes it.
cdef enum:
    PLANES = 8


ctypedef struct Planes:             # a pooling loop's operands, for its plane groups
    const void* x               # the input (backward: the output's gradient)
    void* y                     # the output (backward: the input's gradient)
    void* idx                   # max pooling's indices
    const Win* w
    const Win* pair             # max backward: pool_pairs.h's windows, or NULL
    Py_ssize_t P, HW, L
    int kind                    # P_MAX, P_MAX_BWD, P_AVG, P_AVG_BWD
    bint f32


cdef enum:
    P_MAX, P_MAX_BWD, P_AVG, P_AVG_BWD


cdef void _planes(Planes* k, int kind, bint f32, const void* x, void* y, void* idx,
                  const Win* w, Py_ssize_t P, Py_ssize_t HW, Py_ssize_t L, int nt) noexcept nogil:
    k.kind, k.f32, k.x, k.y, k.idx, k.w, k.P, k.HW, k.L = kind, f32, x, y, idx, w, P, HW, L
    if kind != P_MAX_BWD:
        k.pair = NULL               # (max backward: set by the caller)
    team_run(_planes_item, k, (P + PLANES - 1) // PLANES, nt)


cdef void _planes_item(void* ctx, Py_ssize_t grp, int slot) noexcept nogil:
    cdef const Planes* k = <const Planes*>ctx
    if k.f32:
        _planes_run(k, <float*>NULL, grp)
    else:
        _planes_run(k, <double*>NULL, grp)


cdef inline void _planes_run(const Planes* k, floating* tag, Py_ssize_t grp) noexcept nogil:
    cdef Py_ssize_t p, j, HW = k.HW, L = k.L
    cdef const floating* x = <const floating*>k.x
    cdef floating* y = <floating*>k.y
    cdef int64_t* idx = <int64_t*>k.idx
    cdef const Win* w = k.w
    for p in range(grp * PLANES, min(k.P, (grp + 1) * PLANES)):
        if k.kind == P_MAX:
            _max_plane(x + p * HW, y + p * L, idx + p * L, w)
        elif k.kind == P_AVG:
            _avg_plane(x + p * HW, y + p * L, w)
        elif k.kind == P_AVG_BWD:
            _avg_bwd_plane(x + p * L, y + p * HW, w)
        else:
            if floating is float:
                if k.pair != NULL:
                    fg_pp_back_plane(x + p * L, idx + p * L, y + p * HW, k.pair.H, k.pair.W,
                                     k.pair.OH, k.pair.OW)
                    continue
            memset(y + p * HW, 0, HW * sizeof(floating))
            for j in range(L):
                if idx[p * L + j] >= 0:         # -1: an empty window (_first)
                    y[p * HW + idx[p * L + j]] += x[p * L + j]


cdef void _max_fwd(const floating* x, floating* y, int64_t* idx, const Win* w,
                   int nt) noexcept nogil:
    cdef Planes k
    _planes(&k, P_MAX, floating is float, x, y, idx, w, w.P, w.H * w.W, w.OH * w.OW, nt)


cdef inline void _max_plane(const floating* xp, floating* y, int64_t* idx,
                            const Win* w) noexcept nogil:
    """One plane. The first maximum of each window wins, in the window's row-major scan order;
    a NaN replaces it (PyTorch's `v > m || isnan(v)` update). The scan runs along a row of
    outputs at a time, the row of y and idx holding the running maxima and their positions, so
    the innermost loop is long and its updates are a max instruction and an integer mask, not
    branches (a branch per element mispredicts half the time on random data: 4x slower,
    measured). A plane holding a NaN is scanned again by _max_plane_nan."""
    cdef Py_ssize_t oh, ow, i, j, h, c
    cdef int64_t gt
    cdef floating m, v
    cdef bint nan = False
    cdef floating* yr
    cdef int64_t* ir
    if floating is float:
        if w.pair:
            fg_pp_plane(xp, w.W, y, idx, w.OH, w.OW)
            return
    if w.full:
        _max_plane_full(xp, y, idx, w)
        return
    for oh in range(w.OH):
        yr = y + oh * w.OW
        ir = idx + oh * w.OW
        for ow in range(w.OW):
            yr[ow] = -INFINITY
            ir[ow] = _first(w, oh, ow)
        for i in range(w.hn[oh]):
            h = (w.h0[oh] + i * w.dh) * w.W
            for j in range(w.wmax):
                for ow in range(w.OW):
                    if j < w.wn[ow]:
                        c = h + w.w0[ow] + j * w.dw
                        v = xp[c]
                        m = yr[ow]
                        gt = -<int64_t>(v > m)
                        nan = nan | (v != v)
                        yr[ow] = v if v > m else m
                        ir[ow] = ir[ow] ^ ((ir[ow] ^ c) & gt)
    if nan:
        _max_plane_nan(xp, y, idx, w)


cdef inline int64_t _first(const Win* w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """The index a window's maximum starts from: its first element, or -1 for a window that
    holds none (all padding, with dilation: its output is -inf and takes no gradient)."""
    if w.hn[oh] == 0 or w.wn[ow] == 0:
        return -1
    return w.h0[oh] * w.W + w.w0[ow]


cdef void _max_plane_full(const floating* xp, floating* y, int64_t* idx,
                          const Win* w) noexcept nogil:
    """_max_plane when every window has the full kernel (no padding or ceil_mode reaching past
    the input): window element by window element along a row of outputs, so that the outputs'
    update chains are independent and overlap (one output at a time waits on each max in turn:
    ~2x slower, measured)."""
    cdef Py_ssize_t oh, ow, i, j, c, off, kh = w.hn[0], kw = w.wmax
    cdef Py_ssize_t rs = w.dh * w.W, row
    cdef int64_t gt, cur
    cdef floating m, v
    cdef bint nan = False
    cdef floating* yr
    cdef int64_t* ir
    for oh in range(w.OH):
        yr = y + oh * w.OW
        ir = idx + oh * w.OW
        row = w.h0[oh] * w.W
        for ow in range(w.OW):
            c = row + w.w0[ow]
            yr[ow] = xp[c]
            ir[ow] = c
            nan = nan | (yr[ow] != yr[ow])
        for i in range(kh):
            for j in range(kw):
                if i == 0 and j == 0:
                    continue
                off = row + i * rs + j * w.dw
                for ow in range(w.OW):
                    c = off + w.w0[ow]
                    v = xp[c]
                    m = yr[ow]
                    gt = -<int64_t>(v > m)
                    nan = nan | (v != v)
                    yr[ow] = v if v > m else m
                    cur = ir[ow]
                    ir[ow] = cur ^ ((cur ^ c) & gt)
    if nan:
        _max_plane_nan(xp, y, idx, w)


cdef void _max_plane_nan(const floating* xp, floating* y, int64_t* idx,
                         const Win* w) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, h, c, best
    cdef floating m, v
    for oh in range(w.OH):
        for ow in range(w.OW):
            m = -INFINITY
            best = _first(w, oh, ow)
            for i in range(w.hn[oh]):
                h = (w.h0[oh] + i * w.dh) * w.W + w.w0[ow]
                for j in range(w.wn[ow]):
                    c = h + j * w.dw
                    v = xp[c]
                    if v > m or v != v:
                        m = v
                        best = c
            y[oh * w.OW + ow] = m
            idx[oh * w.OW + ow] = best


cdef void _max_bwd(const floating* gy, const int64_t* idx, floating* gx, Py_ssize_t P,
                   Py_ssize_t HW, Py_ssize_t L, int nt, const Win* pair) noexcept nogil:
    """gx = zeros, then each output's gradient added at its index; pair (not NULL: the windows
    were 2x2 at stride 2, float32): pool_pairs.h writes the windows instead."""
    cdef Planes k
    k.pair = pair
    _planes(&k, P_MAX_BWD, floating is float, gy, gx, <void*>idx, NULL, P, HW, L, nt)


cdef inline double _div(const Win* w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    return w.override if w.override != 0 else w.divh[oh] * w.divw[ow]


cdef void _avg_fwd(const floating* x, floating* y, const Win* w, int nt) noexcept nogil:
    cdef Planes k
    _planes(&k, P_AVG, floating is float, x, y, NULL, w, w.P, w.H * w.W, w.OH * w.OW, nt)


cdef inline void _avg_plane(const floating* xp, floating* y, const Win* w) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, h
    cdef double s
    for oh in range(w.OH):
        for ow in range(w.OW):
            s = 0
            for i in range(w.hn[oh]):
                h = (w.h0[oh] + i) * w.W + w.w0[ow]
                for j in range(w.wn[ow]):
                    s += xp[h + j]
            y[oh * w.OW + ow] = <floating>(s / _div(w, oh, ow))


cdef void _avg_bwd(const floating* gy, floating* gx, const Win* w, int nt) noexcept nogil:
    cdef Planes k
    _planes(&k, P_AVG_BWD, floating is float, gy, gx, NULL, w, w.P, w.H * w.W, w.OH * w.OW, nt)


cdef inline void _avg_bwd_plane(const floating* gy, floating* gp, const Win* w) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, h
    cdef floating v
    memset(gp, 0, w.H * w.W * sizeof(floating))
    for oh in range(w.OH):
        for ow in range(w.OW):
            v = <floating>(gy[oh * w.OW + ow] / _div(w, oh, ow))
            for i in range(w.hn[oh]):
                h = (w.h0[oh] + i) * w.W + w.w0[ow]
                for j in range(w.wn[ow]):
                    gp[h + j] += v


# --- windows -------------------------------------------------------------------------------------

def windows(Py_ssize_t size, Py_ssize_t out, Py_ssize_t k, Py_ssize_t s, Py_ssize_t p,
            Py_ssize_t d, bint include_pad):
    """(start, count, divisor) per output along one dim for a kernel k, stride s, padding p,
    dilation d (Note [Pooling windows]); divisor as average pooling counts the window."""
    start = np.empty(out, np.int64)
    count = np.empty(out, np.int64)
    div = np.empty(out, np.float64)
    cdef Py_ssize_t o, a, i0, n, hend
    for o in range(out):
        a = o * s - p
        i0 = 0 if a >= 0 else (-a + d - 1) // d
        n = 0
        while i0 + n < k and a + (i0 + n) * d < size:
            n += 1
        if i0 >= k:
            i0, n = 0, 0
        start[o] = a + i0 * d if n else max(a, 0)
        count[o] = n
        hend = min(a + k, size + p)
        div[o] = (hend - a) if include_pad else n
    return start, count, div


def adaptive_windows(Py_ssize_t size, Py_ssize_t out):
    """PyTorch's adaptive windows: [floor(o*size/out), ceil((o+1)*size/out))."""
    o = np.arange(out, dtype=np.int64)
    start = (o * size) // out
    end = -((-(o + 1) * size) // out)
    return start, end - start, (end - start).astype(np.float64)


cdef Win _win(Py_ssize_t P, Py_ssize_t H, Py_ssize_t W, tuple hw, tuple ww, Py_ssize_t dh,
              Py_ssize_t dw, double override):
    cdef Win w
    cdef cnp.ndarray h0 = hw[0], hn = hw[1], dvh = hw[2], w0 = ww[0], wn = ww[1], dvw = ww[2]
    w.P, w.H, w.W, w.OH, w.OW, w.dh, w.dw = P, H, W, h0.shape[0], w0.shape[0], dh, dw
    w.h0, w.hn = <const int64_t*>cnp.PyArray_DATA(h0), <const int64_t*>cnp.PyArray_DATA(hn)
    w.w0, w.wn = <const int64_t*>cnp.PyArray_DATA(w0), <const int64_t*>cnp.PyArray_DATA(wn)
    w.divh, w.divw = <const double*>cnp.PyArray_DATA(dvh), <const double*>cnp.PyArray_DATA(dvw)
    w.override = override
    # typed loops over the window tables (NumPy's reductions cost ~1 us a call, six a call here)
    cdef Py_ssize_t o
    cdef int64_t wmin = 0, hmin = 0, hmax = 0
    cdef bint regular = True           # windows at 2*o: 2x2 at stride 2 when also full and 2 wide
    w.wmax = 0
    for o in range(w.OW):
        if o == 0 or w.wn[o] < wmin:
            wmin = w.wn[o]
        if w.wn[o] > w.wmax:
            w.wmax = w.wn[o]
        regular = regular and w.w0[o] == 2 * o
    for o in range(w.OH):
        if o == 0 or w.hn[o] < hmin:
            hmin = w.hn[o]
        if o == 0 or w.hn[o] > hmax:
            hmax = w.hn[o]
        regular = regular and w.h0[o] == 2 * o
    w.full = w.OH > 0 and w.OW > 0 and hmin == hmax and wmin == w.wmax and hmin > 0 and wmin > 0
    # the vectorised scan of pool_pairs.h (float32 only), int32 plane indices
    w.pair = w.full and regular and hmax == 2 and w.wmax == 2 and dh == 1 and dw == 1 and \
        H * W < (1 << 31) and fg_pp_ok()
    return w


# --- recorded ops (4-D input (N, C, H, W), arguments checked by nn/pool_functional.py) -----------

def max_pool(TensorBase x, tuple hw, tuple ww, Py_ssize_t dh, Py_ssize_t dw):
    """(values, int64 indices into each plane) of max pooling over the given windows."""
    cdef cnp.ndarray xd = np.ascontiguousarray(x._data)
    N, C, H, W = (<object>xd).shape
    cdef Win w = _win(N * C, H, W, hw, ww, dh, dw, 0)
    cdef cnp.ndarray y = np.empty((N, C, w.OH, w.OW), xd.dtype)
    cdef cnp.ndarray idx = np.empty((N, C, w.OH, w.OW), np.int64)
    cdef int nt = _team(w.P, w.P * w.OH * w.OW * 4)
    cdef void* px = cnp.PyArray_DATA(xd)
    cdef void* py = cnp.PyArray_DATA(y)
    cdef int64_t* pi = <int64_t*>cnp.PyArray_DATA(idx)
    if y.size:
        if xd.dtype == np.float32:
            with nogil:
                _max_fwd[float](<float*>px, <float*>py, pi, &w, nt)
        else:
            with nogil:
                _max_fwd[double](<double*>px, <double*>py, pi, &w, nt)
    cdef TensorBase out = wrap(y)
    cdef MaxPool2DWithIndicesBackward0 node
    if grad_enabled() and x._requires_grad:
        node = MaxPool2DWithIndicesBackward0.__new__(MaxPool2DWithIndicesBackward0)
        node.idx = idx
        node.xshape = (<object>xd).shape
        node.pair = w.pair and xd.dtype == np.float32
        set_history(out, node, (x,))
    return out, wrap(idx)


cdef cnp.ndarray _max_bwd_arr(cnp.ndarray g, cnp.ndarray idx, tuple xshape, bint pair):
    g = np.ascontiguousarray(g)
    N, C, H, W = xshape
    cdef Win pw
    pw.H, pw.W, pw.OH, pw.OW = H, W, idx.shape[2], idx.shape[3]
    pair = pair and g.dtype == np.float32
    cdef Py_ssize_t P = N * C, HW = H * W, L = idx.size // P if P else 0
    cdef cnp.ndarray gx = np.empty(xshape, g.dtype)
    cdef int nt = _team(P, P * (L + HW))
    cdef void* pg = cnp.PyArray_DATA(g)
    cdef void* px = cnp.PyArray_DATA(gx)
    cdef const int64_t* pi = <const int64_t*>cnp.PyArray_DATA(idx)
    if gx.size == 0:
        return gx
    if g.dtype == np.float32:
        with nogil:
            _max_bwd[float](<float*>pg, pi, <float*>px, P, HW, L, nt, &pw if pair else NULL)
    else:
        with nogil:
            _max_bwd[double](<double*>pg, pi, <double*>px, P, HW, L, nt, NULL)
    return gx


cdef class MaxPool2DWithIndicesBackward0(Node):
    cdef cnp.ndarray idx
    cdef tuple xshape
    cdef bint pair

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        if grad_enabled():
            N, C, H, W = self.xshape
            z = wrap(np.zeros((N, C, H * W), dtype=g._data.dtype))
            gi = wrap(self.idx.reshape(N, C, -1))
            return (z.scatter_add(2, gi, g.reshape(N, C, -1)).reshape(self.xshape),)
        return (wrap(_max_bwd_arr(g._data, self.idx, self.xshape, self.pair)),)

    cdef void release_variables(self):
        self.idx = None


cdef cnp.ndarray _avg_arr(cnp.ndarray a, tuple shape, tuple hw, tuple ww, double override,
                          bint adjoint):
    """Average pooling of a (adjoint: its backward, a the output gradient; shape: the input's)."""
    a = np.ascontiguousarray(a)
    N, C, H, W = shape
    cdef Win w = _win(N * C, H, W, hw, ww, 1, 1, override)
    cdef cnp.ndarray r = np.empty(shape if adjoint else (N, C, w.OH, w.OW), a.dtype)
    cdef int nt = _team(w.P, w.P * (w.OH * w.OW + w.H * w.W))
    cdef void* pa = cnp.PyArray_DATA(a)
    cdef void* pr = cnp.PyArray_DATA(r)
    if r.size == 0:
        return r
    if a.dtype == np.float32:
        with nogil:
            if adjoint:
                _avg_bwd[float](<float*>pa, <float*>pr, &w, nt)
            else:
                _avg_fwd[float](<float*>pa, <float*>pr, &w, nt)
    else:
        with nogil:
            if adjoint:
                _avg_bwd[double](<double*>pa, <double*>pr, &w, nt)
            else:
                _avg_fwd[double](<double*>pa, <double*>pr, &w, nt)
    return r


def avg_pool(TensorBase x, tuple shape, tuple hw, tuple ww, double override, bint adjoint):
    """Average pooling of 4-D x over the windows (divisor_override: override, 0 for none), or,
    adjoint, its backward applied to x (shape: the pooled input's shape)."""
    cdef TensorBase out = wrap(_avg_arr(x._data, shape, hw, ww, override, adjoint))
    cdef AvgPool2DBackward0 node
    if grad_enabled() and x._requires_grad:
        node = AvgPool2DBackward0.__new__(AvgPool2DBackward0)
        node.args = (shape, hw, ww, override, not adjoint)
        set_history(out, node, (x,))
    return out


cdef class AvgPool2DBackward0(Node):
    cdef tuple args

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        shape, hw, ww, override, adjoint = self.args
        if grad_enabled():
            return (avg_pool(g, shape, hw, ww, override, adjoint),)
        return (wrap(_avg_arr(g._data, shape, hw, ww, override, adjoint)),)

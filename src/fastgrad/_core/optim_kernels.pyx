# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Fused optimizer updates: one pass over a parameter's contiguous buffer per step.

Each optimizer (SGD, Adam/AdamW, Adagrad, RMSprop) is a `_*_block`, a `noexcept nogil` loop over
raw pointers that reads the gradient and the state buffers and writes the parameter and the state
in place, with no temporaries; one driver, `run_update`, runs any of them over a whole parameter
(in parallel blocks when it is large); and a `*_update` entry validates the tensors once (dtype,
shape, contiguity), fills an Update with their pointers and hyper-parameters, releases the GIL
for the driver and bumps the parameter's version counter. The Python classes in fastgrad/optim/ keep the options and the state dict.

Note [Matching PyTorch's rounding]
Each kernel performs PyTorch's single-tensor update (torch/optim/*.py, `_single_tensor_*`, the
path PyTorch takes on the CPU) in the same order and in the parameter's own precision: every
hyper-parameter is rounded to the element type first, as ATen casts a Python scalar to the
tensor's dtype, and each in-place op of the PyTorch code is one rounded expression here
(`buf.mul_(m).add_(g, alpha=a)` is `b*m` rounded, then `+ a*g`). One exception: Adam multiplies
sqrt(v) by 1/sqrt(bias_correction2) where PyTorch divides (one rounding more, at most an ulp):
its loop is bound by the divider, and one division less per element took W6's Adam step from
290 to 235 us on one thread. Bit equality is not reachable
portably: PyTorch's AVX2 loops fuse `add(alpha)`, `lerp` and `addcmul` into FMAs and its float32
sqrt is not correctly rounded (measured: ~19% of results differ by 1 ulp from IEEE sqrt). The
trajectories therefore agree to about one ulp per step: over 100 steps on a quadratic, ~1e-7
relative (norm) in float32 and ~1e-16 in float64 (tests/test_optim.py).
"""
cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport sqrt, sqrtf, fabs
from libc.stdlib cimport malloc, free

import numpy as np

from fastgrad._core.tensor cimport TensorBase
from fastgrad._core.inplace_checks cimport check_inference_inplace
from fastgrad._core.kernels cimport nthreads, team_run, PAR_MIN

cnp.import_array()

# Note [Vectorized update loops]
# The loops below vectorize (SSE2/AVX) only when sqrt need not set errno: setup.py compiles this
# module with -fno-math-errno (a `#pragma GCC optimize` does not reach it); the kernels never
# read errno. Loop-invariant options (maximize, weight decay, amsgrad, momentum) are either exact
# arithmetic (`sign * g` with sign = +-1) or literal flags of an inlined loop, folded away.


# Note [Parallel updates]
# A parameter of at least 2 * PAR_MIN elements is updated in OPT_CHUNK-element blocks across the
# thread team (team.h); each element's update is the same expression whichever thread computes
# it, so the thread count does not change the result. Smaller ones stay on one thread:
# waking the partner costs 20-50 us here. Adam over W6's parameters (269k floats, one of 200k):
# 235 us on one thread, 195-200 us on two; the loop reads and writes 4-5 buffers per element and
# is near the cache's bandwidth, and on one core its divisions and square root bound it (SSE2).
# A group's parameters (sgd_group, adam_group) are made ready one by one and run as one list of
# blocks (run_group), so a model of many small parameters fills the team as one large one does.
cdef enum:
    OPT_CHUNK = 16384


cdef inline Py_ssize_t _nchunks(Py_ssize_t n) noexcept nogil:
    """Blocks for a parameter of n elements: 1 (run inline) below 2 * PAR_MIN or on one thread."""
    if n < 2 * PAR_MIN or nthreads() == 1:
        return 1
    return (n + OPT_CHUNK - 1) // OPT_CHUNK


cdef inline floating* _at(floating* a, Py_ssize_t lo) noexcept nogil:
    """a + lo, or NULL for an absent (NULL) state buffer."""
    return a + lo if a != NULL else NULL


# --- scalar helpers ------------------------------------------------------------------------------

cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# --- kernels -------------------------------------------------------------------------------------
# Each `_*_loop` is inlined by its `_*_block` at call sites whose option flags are literals, so
# the C compiler folds the flags away and vectorizes each variant (Note [Vectorized update loops]).

cdef inline void _sgd_loop(floating* p, const floating* grad, floating* buf, Py_ssize_t n,
                           floating sign, floating neg_lr, floating wd, floating momentum,
                           floating one_minus_damp, bint has_wd, int mode) noexcept nogil:
    """mode 0: no momentum; 1/2: momentum on its first/later steps; 3/4: the same, Nesterov."""
    cdef Py_ssize_t i
    cdef floating g, b = 0
    for i in range(n):
        g = sign * grad[i]
        if has_wd:
            g = g + wd * p[i]
        if mode == 1 or mode == 3:
            b = g
            buf[i] = b
        elif mode == 2 or mode == 4:
            b = buf[i] * momentum
            b = b + one_minus_damp * g
            buf[i] = b
        if mode == 1 or mode == 2:
            g = b
        elif mode == 3 or mode == 4:
            g = g + momentum * b
        p[i] = p[i] + neg_lr * g


cdef void _sgd_block(floating* p, const floating* grad, floating* buf,     # INOUT, IN, INOUT
                     Py_ssize_t n, floating neg_lr, floating wd, floating momentum,
                     floating one_minus_damp, bint nesterov, bint maximize,
                     bint init_buf) noexcept nogil:
    """g = ±grad + wd*p;  b = g (first step) or b*momentum + (1-dampening)*g;
    g = g + momentum*b (nesterov) or b;  p = p - lr*g.  `buf` is NULL when momentum == 0."""
    cdef floating s = -1 if maximize else 1
    cdef int mode = 0 if buf == NULL else (1 if init_buf else 2) + (2 if nesterov else 0)
    if wd == 0:
        if mode == 0:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, False, 0)
        elif mode == 2:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, False, 2)
        elif mode == 4:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, False, 4)
        else:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, False, mode)
    else:
        if mode == 0:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, True, 0)
        elif mode == 2:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, True, 2)
        elif mode == 4:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, True, 4)
        else:
            _sgd_loop(p, grad, buf, n, s, neg_lr, wd, momentum, one_minus_damp, True, mode)


cdef inline void _adam_loop(floating* p, const floating* grad, floating* m, floating* v,
                            floating* vmax, Py_ssize_t n, floating sign, floating neg_step_size,
                            floating w, floating beta2, floating one_minus_beta2,
                            floating bc2_sqrt, floating eps, floating wd, floating decay,
                            bint has_wd, bint has_decay, bint amsgrad, bint small_w) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, mi, vi, vm, pi
    cdef floating one_minus_w = 1 - w
    cdef floating inv_bc2 = 1 / bc2_sqrt        # one division per element instead of two
    for i in range(n):
        g = sign * grad[i]
        pi = p[i]
        if has_decay:
            pi = pi * decay
        if has_wd:
            g = g + wd * pi
        mi = m[i]
        mi = mi + w * (g - mi) if small_w else g - (g - mi) * one_minus_w    # ATen's lerp
        m[i] = mi
        vi = v[i] * beta2
        vi = vi + one_minus_beta2 * g * g
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            vm = vi if (vi > vm) | (vi != vi) else vm                        # torch.maximum
            vmax[i] = vm
            vi = vm
        p[i] = pi + neg_step_size * mi / (_sqrt(vi) * inv_bc2 + eps)


cdef void _adam_block(floating* p, const floating* grad, floating* m, floating* v,  # INOUT, IN, INOUT x2
                      floating* vmax, Py_ssize_t n,                                 # INOUT or NULL
                      floating neg_step_size, floating one_minus_beta1, floating beta2,
                      floating one_minus_beta2, floating bc2_sqrt, floating eps, floating wd,
                      floating decay, bint maximize) noexcept nogil:
    """p *= decay (AdamW);  g = ±grad + wd*p (Adam);  m = lerp(m, g, 1-b1);
    v = v*b2 + (1-b2)*g*g;  vmax = max(vmax, v) (amsgrad);
    p = p - step_size * m / (sqrt(v or vmax)/sqrt(bc2) + eps)."""
    cdef floating s = -1 if maximize else 1
    cdef floating w = one_minus_beta1
    cdef bint has_wd = wd != 0, has_decay = decay != 1, ams = vmax != NULL
    if fabs(w) >= 0.5:                     # rare: beta1 <= 0.5; the unspecialized loop
        _adam_loop(p, grad, m, v, vmax, n, s, neg_step_size, w, beta2, one_minus_beta2,
                   bc2_sqrt, eps, wd, decay, has_wd, has_decay, ams, False)
    elif not ams:
        if not has_wd and not has_decay:
            _adam_loop(p, grad, m, v, vmax, n, s, neg_step_size, w, beta2, one_minus_beta2,
                       bc2_sqrt, eps, wd, decay, False, False, False, True)
        elif has_decay:
            _adam_loop(p, grad, m, v, vmax, n, s, neg_step_size, w, beta2, one_minus_beta2,
                       bc2_sqrt, eps, wd, decay, has_wd, True, False, True)
        else:
            _adam_loop(p, grad, m, v, vmax, n, s, neg_step_size, w, beta2, one_minus_beta2,
                       bc2_sqrt, eps, wd, decay, True, False, False, True)
    else:
        _adam_loop(p, grad, m, v, vmax, n, s, neg_step_size, w, beta2, one_minus_beta2,
                   bc2_sqrt, eps, wd, decay, has_wd, has_decay, True, True)


cdef inline void _adagrad_loop(floating* p, const floating* grad, floating* s, Py_ssize_t n,
                               floating sign, floating neg_clr, floating eps, floating wd,
                               bint has_wd) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, si
    for i in range(n):
        g = sign * grad[i]
        if has_wd:
            g = g + wd * p[i]
        si = s[i] + g * g
        s[i] = si
        p[i] = p[i] + neg_clr * g / (_sqrt(si) + eps)


cdef void _adagrad_block(floating* p, const floating* grad, floating* s,   # INOUT, IN, INOUT
                         Py_ssize_t n, floating neg_clr, floating eps, floating wd,
                         bint maximize) noexcept nogil:
    """g = ±grad + wd*p;  s = s + g*g;  p = p - clr * g / (sqrt(s) + eps)."""
    cdef floating sign = -1 if maximize else 1
    if wd == 0:
        _adagrad_loop(p, grad, s, n, sign, neg_clr, eps, wd, False)
    else:
        _adagrad_loop(p, grad, s, n, sign, neg_clr, eps, wd, True)


cdef inline void _rmsprop_loop(floating* p, const floating* grad, floating* sq, floating* gavg,
                               floating* buf, Py_ssize_t n, floating sign, floating neg_lr,
                               floating alpha, floating w, floating eps, floating wd,
                               floating momentum, bint has_wd, bint centered, bint has_momentum,
                               bint small_w) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, si, ai, gi, bi
    cdef floating one_minus_w = 1 - w
    for i in range(n):
        g = sign * grad[i]
        if has_wd:
            g = g + wd * p[i]
        si = sq[i] * alpha
        si = si + w * g * g
        sq[i] = si
        if centered:
            gi = gavg[i]
            gi = gi + w * (g - gi) if small_w else g - (g - gi) * one_minus_w
            gavg[i] = gi
            ai = _sqrt(si + (-gi) * gi)
        else:
            ai = _sqrt(si)
        ai = ai + eps
        if has_momentum:
            bi = buf[i] * momentum
            bi = bi + g / ai
            buf[i] = bi
            p[i] = p[i] + neg_lr * bi
        else:
            p[i] = p[i] + neg_lr * g / ai


cdef void _rmsprop_block(floating* p, const floating* grad, floating* sq,   # INOUT, IN, INOUT
                         floating* gavg, floating* buf, Py_ssize_t n,       # INOUT or NULL (x2)
                         floating neg_lr, floating alpha, floating one_minus_alpha, floating eps,
                         floating wd, floating momentum, bint maximize) noexcept nogil:
    """g = ±grad + wd*p;  sq = sq*alpha + (1-alpha)*g*g;  gavg = lerp(gavg, g, 1-alpha) (centered);
    avg = sqrt(sq - gavg*gavg) + eps;  b = b*momentum + g/avg, p = p - lr*b (momentum)
    or p = p - lr*g/avg."""
    cdef floating s = -1 if maximize else 1
    cdef floating w = one_minus_alpha
    cdef bint has_wd = wd != 0, centered = gavg != NULL, has_m = buf != NULL
    if fabs(w) >= 0.5:
        _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                      has_wd, centered, has_m, False)
    elif not centered and not has_m:
        if has_wd:
            _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                          True, False, False, True)
        else:
            _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                          False, False, False, True)
    elif centered and has_m:
        _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                      has_wd, True, True, True)
    elif centered:
        _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                      has_wd, True, False, True)
    else:
        _rmsprop_loop(p, grad, sq, gavg, buf, n, s, neg_lr, alpha, w, eps, wd, momentum,
                      has_wd, False, True, True)


# --- NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD ----------------------------------------------
# The same contract as the loops above (Note [Matching PyTorch's rounding]): each is PyTorch's
# single-tensor update, one rounded expression per in-place op, in PyTorch's order.

cdef inline floating _lerp(floating a, floating b, floating w, bint small_w) noexcept nogil:
    """ATen's lerp(a, b, w): a + w*(b - a) for |w| < 0.5, else b - (b - a)*(1 - w)."""
    if small_w:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


cdef inline floating _max_nan(floating a, floating b) noexcept nogil:
    """torch.maximum: the larger, NaN when either is NaN."""
    if a != a:
        return a
    return b if (b > a) | (b != b) else a


cdef inline floating _decayed_grad(floating* p, const floating* grad, Py_ssize_t i,
                                   floating sign, floating wd, floating decay) noexcept nogil:
    """±grad[i] with PyTorch's weight decay: p[i] *= decay first (decoupled; decay 1: none),
    then + wd * p[i] (L2; wd 0: none)."""
    cdef floating g = sign * grad[i]
    if decay != 1:
        p[i] = p[i] * decay
    if wd != 0:
        g = g + wd * p[i]
    return g


cdef void _nadam_block(floating* p, const floating* grad, floating* m, floating* v,
                       Py_ssize_t n, floating one_minus_beta1, floating beta2,
                       floating one_minus_beta2, floating bc2, floating eps, floating c_grad,
                       floating c_avg, floating wd, floating decay, bint maximize) noexcept nogil:
    """p *= decay;  g = ±grad + wd*p;  m = lerp(m, g, 1-b1);  v = v*b2 + (1-b2)*g*g;
    d = sqrt(v / bc2) + eps;  p = p + c_grad*g/d;  p = p + c_avg*m/d."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, mi, vi, d
    cdef bint small_w = fabs(one_minus_beta1) < 0.5
    for i in range(n):
        g = _decayed_grad(p, grad, i, s, wd, decay)
        mi = _lerp(m[i], g, one_minus_beta1, small_w)
        m[i] = mi
        vi = v[i] * beta2
        vi = vi + one_minus_beta2 * g * g
        v[i] = vi
        d = _sqrt(vi / bc2) + eps
        p[i] = p[i] + c_grad * g / d
        p[i] = p[i] + c_avg * mi / d


cdef void _radam_block(floating* p, const floating* grad, floating* m, floating* v,
                       Py_ssize_t n, floating one_minus_beta1, floating beta2,
                       floating one_minus_beta2, floating bc1, floating lr, floating bc2_sqrt,
                       floating eps, floating rect, floating wd, floating decay, bint rectify,
                       bint maximize) noexcept nogil:
    """p *= decay;  g = ±grad + wd*p;  m = lerp(m, g, 1-b1);  v = v*b2 + (1-b2)*g*g;
    x = m / bc1 * lr, times (1 / (sqrt(v) + eps)) * sqrt(bc2) and rect when rectified;  p -= x."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, mi, vi, x, r
    cdef bint small_w = fabs(one_minus_beta1) < 0.5
    for i in range(n):
        g = _decayed_grad(p, grad, i, s, wd, decay)
        mi = _lerp(m[i], g, one_minus_beta1, small_w)
        m[i] = mi
        vi = v[i] * beta2
        vi = vi + one_minus_beta2 * g * g
        v[i] = vi
        x = mi / bc1
        x = x * lr
        if rectify:
            r = 1 / (_sqrt(vi) + eps)
            r = r * bc2_sqrt
            x = x * r
            x = x * rect
        p[i] = p[i] - x


cdef void _adamax_block(floating* p, const floating* grad, floating* m, floating* u,
                        Py_ssize_t n, floating one_minus_beta1, floating beta2, floating eps,
                        floating neg_clr, floating wd, bint maximize) noexcept nogil:
    """g = ±grad + wd*p;  m = lerp(m, g, 1-b1);  u = max(u*b2, |g| + eps);  p = p - clr*m/u."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, mi, ui
    cdef bint small_w = fabs(one_minus_beta1) < 0.5
    for i in range(n):
        g = _decayed_grad(p, grad, i, s, wd, 1)
        mi = _lerp(m[i], g, one_minus_beta1, small_w)
        m[i] = mi
        ui = _max_nan(u[i] * beta2, fabs(g) + eps)
        u[i] = ui
        p[i] = p[i] + neg_clr * mi / ui


cdef void _adadelta_block(floating* p, const floating* grad, floating* sq, floating* acc,
                          Py_ssize_t n, floating rho, floating one_minus_rho, floating eps,
                          floating neg_lr, floating wd, bint maximize) noexcept nogil:
    """g = ±grad + wd*p;  sq = sq*rho + (1-rho)*g*g;  d = sqrt(acc + eps) / sqrt(sq + eps) * g;
    acc = acc*rho + (1-rho)*d*d;  p = p - lr*d."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, si, ai, d
    for i in range(n):
        g = _decayed_grad(p, grad, i, s, wd, 1)
        si = sq[i] * rho
        si = si + one_minus_rho * g * g
        sq[i] = si
        ai = acc[i]
        d = _sqrt(ai + eps) / _sqrt(si + eps)
        d = d * g
        ai = ai * rho
        ai = ai + one_minus_rho * d * d
        acc[i] = ai
        p[i] = p[i] + neg_lr * d


cdef void _rprop_block(floating* p, const floating* grad, floating* prev, floating* ss,
                       Py_ssize_t n, floating etaminus, floating etaplus, floating ss_min,
                       floating ss_max, bint maximize) noexcept nogil:
    """f = etaplus / etaminus / 1 as sign(g*prev) is +, - or 0;  ss = clamp(ss*f, min, max);
    g = 0 where f == etaminus;  p = p - sign(g)*ss;  prev = g."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, q, f, si, sg
    for i in range(n):
        g = s * grad[i]
        q = g * prev[i]
        f = etaplus if q > 0 else (etaminus if q < 0 else (q if q != q else 1))
        si = ss[i] * f
        si = ss_min if si < ss_min else (ss_max if si > ss_max else si)     # clamp (NaN kept)
        ss[i] = si
        if f == etaminus:
            g = 0
        sg = 1 if g > 0 else (-1 if g < 0 else 0)
        p[i] = p[i] + (-1) * sg * si
        prev[i] = g


cdef void _asgd_block(floating* p, const floating* grad, floating* ax, Py_ssize_t n,
                      floating decay, floating neg_eta, floating mu, floating wd,
                      bint copy_ax, bint maximize) noexcept nogil:
    """g = ±grad + wd*p;  p = p*(1 - lambd*eta);  p = p - eta*g;
    ax = p (mu == 1) or ax + (p - ax)*mu."""
    cdef Py_ssize_t i
    cdef floating s = -1 if maximize else 1, g, pi
    for i in range(n):
        g = _decayed_grad(p, grad, i, s, wd, 1)
        pi = p[i] * decay
        pi = pi + neg_eta * g
        p[i] = pi
        if copy_ax:
            ax[i] = pi
        else:
            ax[i] = ax[i] + (pi - ax[i]) * mu


# --- the driver: the whole parameter, in parallel blocks when large (Note [Parallel updates]) -----

cdef enum:
    U_SGD, U_ADAM, U_ADAGRAD, U_RMSPROP, U_NADAM, U_RADAM, U_ADAMAX, U_ADADELTA, U_RPROP, U_ASGD

ctypedef struct Update:
    int kind                   # which optimizer's block (U_*)
    bint f32                   # float elements, else double
    Py_ssize_t n
    void* p                    # the parameter (INOUT)
    const void* grad           # its gradient (IN)
    void* s0                   # state buffers (INOUT), in each block's order; NULL when absent
    void* s1
    void* s2
    double h[10]               # hyper-parameters, rounded to the element type by the block
    bint maximize, nesterov, init_buf
    bint flag                  # RAdam: rectified; ASGD: ax copies p (mu == 1)


cdef inline Update _update(int kind, cnp.ndarray pa, cnp.ndarray work, cnp.ndarray grad,
                           char* s0, char* s1, char* s2, bint maximize) noexcept:
    cdef Update u
    u.kind, u.f32, u.n = kind, cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT32, cnp.PyArray_SIZE(pa)
    u.p, u.grad = cnp.PyArray_DATA(work), cnp.PyArray_DATA(grad)
    u.s0, u.s1, u.s2 = s0, s1, s2
    u.maximize, u.nesterov, u.init_buf, u.flag = maximize, False, False, False
    return u


cdef void run_update(const Update* u) noexcept nogil:
    """The one driver: the update's block over the whole parameter, or over OPT_CHUNK-element
    blocks across the thread team when the parameter is large (Note [Parallel updates])."""
    cdef Py_ssize_t nch = _nchunks(u.n)
    if nch == 1:
        _block(u, 0, u.n)
        return
    team_run(_update_item, <void*>u, nch, nthreads())


cdef void _update_item(void* ctx, Py_ssize_t c, int slot) noexcept nogil:
    cdef const Update* u = <const Update*>ctx
    cdef Py_ssize_t lo = c * OPT_CHUNK
    _block(u, lo, min(<Py_ssize_t>OPT_CHUNK, u.n - lo))


ctypedef struct Group:              # run_group's blocks: block c is us[owner[c]] from start[c]
    const Update* us
    const Py_ssize_t* owner
    const Py_ssize_t* start


cdef void _group_item(void* ctx, Py_ssize_t c, int slot) noexcept nogil:
    cdef const Group* w = <const Group*>ctx
    cdef const Update* u = &w.us[w.owner[c]]
    _block(u, w.start[c], min(<Py_ssize_t>OPT_CHUNK, u.n - w.start[c]))


cdef void run_group(const Update* us, Py_ssize_t k) noexcept nogil:
    """The updates us[0..k) of one parameter group: one after the other, or, when together they
    hold 2 * PAR_MIN elements or more, as one list of OPT_CHUNK-element blocks shared across the
    team (Note [Parallel updates]: many small parameters fill the team as one large one does)."""
    cdef Py_ssize_t i, c, lo, total = 0, nch = 0
    cdef Py_ssize_t* owner
    cdef Py_ssize_t* start
    for i in range(k):
        total += us[i].n
        nch += (us[i].n + OPT_CHUNK - 1) // OPT_CHUNK
    owner = <Py_ssize_t*>malloc(2 * nch * sizeof(Py_ssize_t)) if nch else NULL
    if total < 2 * PAR_MIN or nthreads() == 1 or owner == NULL:
        free(owner)
        for i in range(k):
            run_update(&us[i])
        return
    start = owner + nch
    c = 0
    for i in range(k):
        lo = 0
        while lo < us[i].n:
            owner[c], start[c] = i, lo
            c += 1
            lo += OPT_CHUNK
    cdef Group w
    w.us, w.owner, w.start = us, owner, start
    team_run(_group_item, &w, nch, nthreads())
    free(owner)


cdef inline void _block(const Update* u, Py_ssize_t lo, Py_ssize_t m) noexcept nogil:
    if u.f32:
        _block_t(u, <float*>u.p + lo, lo, m)
    else:
        _block_t(u, <double*>u.p + lo, lo, m)


cdef inline void _block_t(const Update* u, floating* p, Py_ssize_t lo,
                          Py_ssize_t m) noexcept nogil:
    """Elements [lo, lo + m) of update u; p is the parameter at lo, its type the element type."""
    cdef const floating* g = <const floating*>u.grad + lo
    cdef floating* s0 = _at(<floating*>u.s0, lo)
    cdef floating* s1 = _at(<floating*>u.s1, lo)
    cdef floating* s2 = _at(<floating*>u.s2, lo)
    cdef const double* h = u.h
    if u.kind == U_SGD:
        _sgd_block(p, g, s0, m, <floating>h[0], <floating>h[1], <floating>h[2], <floating>h[3],
                   u.nesterov, u.maximize, u.init_buf)
    elif u.kind == U_ADAM:
        _adam_block(p, g, s0, s1, s2, m, <floating>h[0], <floating>h[1], <floating>h[2],
                    <floating>h[3], <floating>h[4], <floating>h[5], <floating>h[6],
                    <floating>h[7], u.maximize)
    elif u.kind == U_ADAGRAD:
        _adagrad_block(p, g, s0, m, <floating>h[0], <floating>h[1], <floating>h[2], u.maximize)
    elif u.kind == U_RMSPROP:
        _rmsprop_block(p, g, s0, s1, s2, m, <floating>h[0], <floating>h[1], <floating>h[2],
                       <floating>h[3], <floating>h[4], <floating>h[5], u.maximize)
    elif u.kind == U_NADAM:
        _nadam_block(p, g, s0, s1, m, <floating>h[0], <floating>h[1], <floating>h[2],
                     <floating>h[3], <floating>h[4], <floating>h[5], <floating>h[6],
                     <floating>h[7], <floating>h[8], u.maximize)
    elif u.kind == U_RADAM:
        _radam_block(p, g, s0, s1, m, <floating>h[0], <floating>h[1], <floating>h[2],
                     <floating>h[3], <floating>h[4], <floating>h[5], <floating>h[6],
                     <floating>h[7], <floating>h[8], <floating>h[9], u.flag, u.maximize)
    elif u.kind == U_ADAMAX:
        _adamax_block(p, g, s0, s1, m, <floating>h[0], <floating>h[1], <floating>h[2],
                      <floating>h[3], <floating>h[4], u.maximize)
    elif u.kind == U_ADADELTA:
        _adadelta_block(p, g, s0, s1, m, <floating>h[0], <floating>h[1], <floating>h[2],
                        <floating>h[3], <floating>h[4], u.maximize)
    elif u.kind == U_RPROP:
        _rprop_block(p, g, s0, s1, m, <floating>h[0], <floating>h[1], <floating>h[2],
                     <floating>h[3], u.maximize)
    else:
        _asgd_block(p, g, s0, m, <floating>h[0], <floating>h[1], <floating>h[2], <floating>h[3],
                    u.flag, u.maximize)


# --- glue: validate once, take pointers, run without the GIL -------------------------------------

cdef inline bint _is_float(cnp.ndarray a) noexcept:
    cdef int t = cnp.PyArray_TYPE(a)
    return t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64


cdef cnp.ndarray _param_array(TensorBase p, str opt):
    check_inference_inplace(p)
    cdef cnp.ndarray a = p._data
    if not _is_float(a):
        raise TypeError(f"{opt}: parameters must be float32 or float64 tensors, got a "
                        f"{a.dtype} parameter of shape {(<object>a).shape}")
    if not cnp.PyArray_ISWRITEABLE(a):
        raise RuntimeError(f"{opt}: a parameter of shape {(<object>a).shape} is read-only "
                           f"(its NumPy array is not writeable); copy it first")
    return a


cdef cnp.ndarray _grad_array(TensorBase g, cnp.ndarray pa, str opt):
    """The gradient as a contiguous array of the parameter's dtype (a copy only when needed)."""
    cdef cnp.ndarray a = g._data
    if (<object>a).shape != (<object>pa).shape:
        raise RuntimeError(f"{opt}: the gradient of a parameter of shape {(<object>pa).shape} has "
                           f"shape {(<object>a).shape}; they must match")
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(pa) or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        a = np.ascontiguousarray(a, dtype=pa.dtype)
    return a


cdef char* _state_ptr(TensorBase t, cnp.ndarray pa, str opt, str name) except NULL:
    cdef cnp.ndarray a = t._data
    if (cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(pa) or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or cnp.PyArray_SIZE(a) != cnp.PyArray_SIZE(pa)):
        raise RuntimeError(f"{opt}: state '{name}' must be a contiguous {pa.dtype} tensor with "
                           f"{pa.size} elements like its parameter, got {a.dtype} of shape "
                           f"{(<object>a).shape}; was the state dict loaded for other parameters?")
    return <char*>cnp.PyArray_DATA(a)


cdef inline char* _maybe_state_ptr(TensorBase t, cnp.ndarray pa, str opt, str name) except? NULL:
    if t is None:
        return NULL
    return _state_ptr(t, pa, opt, name)


cdef double incr_step(TensorBase step) except? -1:
    """step += 1 on a 0-d float tensor (PyTorch's `state['step']`); returns the new value."""
    cdef cnp.ndarray a = step._data
    cdef int t = cnp.PyArray_TYPE(a)
    if cnp.PyArray_SIZE(a) != 1:
        raise RuntimeError("optimizer state 'step' must be a one-element tensor")
    if t == cnp.NPY_FLOAT32:
        (<float*>cnp.PyArray_DATA(a))[0] += 1
        return (<float*>cnp.PyArray_DATA(a))[0]
    if t == cnp.NPY_FLOAT64:
        (<double*>cnp.PyArray_DATA(a))[0] += 1
        return (<double*>cnp.PyArray_DATA(a))[0]
    a[...] = a + 1
    return float(a)


cdef inline void _finish(TensorBase p, cnp.ndarray work):
    """Copy a contiguous working copy back into a non-contiguous parameter; bump its version."""
    if work is not p._data:
        np.copyto(p._data, work)
    p.bump_version()


cdef inline cnp.ndarray _work(cnp.ndarray pa):
    return pa if cnp.PyArray_IS_C_CONTIGUOUS(pa) else np.ascontiguousarray(pa)


def sgd_update(TensorBase p, TensorBase grad, TensorBase buf, double lr, double weight_decay,
               double momentum, double dampening, bint nesterov, bint maximize, bint init_buf):
    """One SGD step on `p` (in place). `buf` is the momentum buffer (None when momentum == 0);
    `init_buf` says it is fresh and takes the gradient as it is (PyTorch's first step)."""
    _sgd_one(p, grad, buf, lr, weight_decay, momentum, dampening, nesterov, maximize, init_buf)


def sgd_group(list params, object state, object zeros, double lr, double weight_decay,
              double momentum, double dampening, bint nesterov, bint maximize):
    """SGD over one parameter group: every parameter with a gradient, its momentum buffer
    taken from (or, on its first step, made by `zeros(p)` into) `state[p]['momentum_buffer']`."""
    cdef TensorBase p, buf
    cdef bint fresh
    cdef Update stack_us[GROUP_STACK]
    cdef Py_ssize_t k = 0, cap = len(params)
    cdef Update* us = _group_buffer(stack_us, cap)
    cdef list keep = []
    try:
        for obj in params:
            p = <TensorBase?>obj
            if p._grad is None:
                continue
            if k == cap:               # the list grew under the step (a callback appended)
                raise RuntimeError("the optimizer's parameter list changed during step()")
            buf, fresh = None, False
            if momentum != 0:
                st = state[p]
                buf = st.get("momentum_buffer")
                fresh = buf is None
                if fresh:
                    buf = zeros(p)
                    st["momentum_buffer"] = buf
            _sgd_prep(&us[k], keep, p, p._grad, buf, lr, weight_decay, momentum, dampening,
                      nesterov, maximize, fresh)
            k += 1
    finally:                       # the parameters before a bad one are still updated
        _run_group(us, k, keep, stack_us)


cdef enum:
    GROUP_STACK = 32               # updates held on the stack; larger groups allocate


cdef Update* _group_buffer(Update* stack_us, Py_ssize_t n) except NULL:
    cdef Update* us
    if n <= GROUP_STACK:
        return stack_us
    us = <Update*>malloc(n * sizeof(Update))
    if us == NULL:
        raise MemoryError()
    return us


cdef void _run_group(Update* us, Py_ssize_t k, list keep, Update* stack_us) except *:
    """Run a group's prepared updates together (run_group), then finish each parameter; keep
    holds (parameter, working array, gradient array) per update, the arrays they point into."""
    cdef Py_ssize_t i
    try:
        with nogil:
            run_group(us, k)
        for i in range(k):
            _finish(<TensorBase>keep[3 * i], <cnp.ndarray>keep[3 * i + 1])
    finally:
        if us != stack_us:
            free(us)


cdef void _sgd_prep(Update* u, list keep, TensorBase p, TensorBase grad, TensorBase buf,
                    double lr, double weight_decay, double momentum, double dampening,
                    bint nesterov, bint maximize, bint init_buf) except *:
    cdef cnp.ndarray pa = _param_array(p, "SGD")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "SGD")
    cdef cnp.ndarray w = _work(pa)
    cdef char* pbuf = _maybe_state_ptr(buf, pa, "SGD", "momentum_buffer")
    keep.append(p)
    keep.append(w)
    keep.append(ga)
    u[0] = _update(U_SGD, pa, w, ga, pbuf, NULL, NULL, maximize)
    u.h[0], u.h[1], u.h[2], u.h[3] = -lr, weight_decay, momentum, 1 - dampening
    u.nesterov, u.init_buf = nesterov, init_buf


cdef void _sgd_one(TensorBase p, TensorBase grad, TensorBase buf, double lr, double weight_decay,
                   double momentum, double dampening, bint nesterov, bint maximize,
                   bint init_buf) except *:
    cdef Update u
    cdef list keep = []
    _sgd_prep(&u, keep, p, grad, buf, lr, weight_decay, momentum, dampening, nesterov, maximize,
              init_buf)
    _run_group(&u, 1, keep, &u)


def adam_group(list params, object state, object init, double lr, double beta1, double beta2,
               double eps, double weight_decay, bint amsgrad, bint maximize, bint decoupled):
    """Adam/AdamW over one parameter group: every parameter with a gradient, its state read
    from `state[p]` (filled by `init(state[p], p)` on its first step)."""
    cdef double a[6]
    a[:] = [lr, beta1, beta2, eps, weight_decay, decoupled]
    _elementwise_group(U_ADAM, "Adam", params, state, init, "exp_avg", "exp_avg_sq",
                       "max_exp_avg_sq" if amsgrad else None, _adam_hyper, a, maximize)


cdef void _adam_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, beta1, beta2, eps, weight_decay, decoupled
    cdef double lr = a[0], beta1 = a[1], beta2 = a[2]
    u.h[0], u.h[1], u.h[2], u.h[3] = -(lr / (1 - beta1 ** t)), 1 - beta1, beta2, 1 - beta2
    u.h[4], u.h[5] = (1 - beta2 ** t) ** 0.5, a[3]
    _decoupled_decay(u, lr, a[4], a[5] != 0, 6)


def adagrad_update(TensorBase p, TensorBase grad, TensorBase state_sum, TensorBase step,
                   double lr, double lr_decay, double eps, double weight_decay, bint maximize):
    """One Adagrad step on `p`; increments `step`."""
    cdef cnp.ndarray pa = _param_array(p, "Adagrad")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "Adagrad")   # kept alive: u points into it
    cdef cnp.ndarray w = _work(pa)
    cdef Update u = _update(U_ADAGRAD, pa, w, ga,
                            _state_ptr(state_sum, pa, "Adagrad", "sum"), NULL, NULL, maximize)
    cdef double t = incr_step(step)
    u.h[0], u.h[1], u.h[2] = -(lr / (1 + (t - 1) * lr_decay)), eps, weight_decay
    with nogil:
        run_update(&u)
    _finish(p, w)


def rmsprop_update(TensorBase p, TensorBase grad, TensorBase square_avg, TensorBase grad_avg,
                   TensorBase momentum_buffer, TensorBase step, double lr, double alpha,
                   double eps, double weight_decay, double momentum, bint maximize):
    """One RMSprop step on `p`; increments `step`. `grad_avg` is None unless centered,
    `momentum_buffer` None unless momentum > 0."""
    cdef cnp.ndarray pa = _param_array(p, "RMSprop")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "RMSprop")   # kept alive: u points into it
    cdef cnp.ndarray w = _work(pa)
    cdef Update u = _update(U_RMSPROP, pa, w, ga,
                            _state_ptr(square_avg, pa, "RMSprop", "square_avg"),
                            _maybe_state_ptr(grad_avg, pa, "RMSprop", "grad_avg"),
                            _maybe_state_ptr(momentum_buffer, pa, "RMSprop", "momentum_buffer"),
                            maximize)
    incr_step(step)
    u.h[0], u.h[1], u.h[2] = -lr, alpha, 1 - alpha
    u.h[3], u.h[4], u.h[5] = eps, weight_decay, momentum
    with nogil:
        run_update(&u)
    _finish(p, w)


# --- the newer optimizers' groups: one gathering loop, a per-kind `_*_hyper` for the scalars ----

ctypedef void (*HyperFn)(Update* u, dict st, double t, const double* a) except *


cdef _elementwise_group(int kind, str opt, list params, object state, object init, str name0,
                        str name1, str name2, HyperFn hyper, const double* a, bint maximize):
    """One parameter group of optimizer `opt`: for every parameter with a gradient, its state
    (made by `init(state[p], p)` on its first step) gives the buffers named name0, name1 and
    name2 (None: absent); `step` is incremented and `hyper` fills the update's scalars from the
    step count t and the group's options `a`; the updates run together (run_group)."""
    cdef TensorBase p
    cdef dict st
    cdef cnp.ndarray pa, ga, w
    cdef Update stack_us[GROUP_STACK]
    cdef Py_ssize_t k = 0, cap = len(params)
    cdef Update* us = _group_buffer(stack_us, cap)
    cdef list keep = []
    try:
        for obj in params:
            p = <TensorBase?>obj
            if p._grad is None:
                continue
            if k == cap:               # the list grew under the step (a callback appended)
                raise RuntimeError("the optimizer's parameter list changed during step()")
            st = state[p]
            if not st:
                init(st, p)
            pa = _param_array(p, opt)
            ga = _grad_array(p._grad, pa, opt)
            w = _work(pa)
            us[k] = _update(kind, pa, w, ga, _state_ptr(st[name0], pa, opt, name0),
                            NULL if name1 is None else _state_ptr(st[name1], pa, opt, name1),
                            NULL if name2 is None else _state_ptr(st[name2], pa, opt, name2),
                            maximize)
            hyper(&us[k], st, incr_step(st["step"]), a)
            keep.append(p)
            keep.append(w)
            keep.append(ga)
            k += 1
    finally:                       # the parameters before a bad one are still updated
        _run_group(us, k, keep, stack_us)


cdef inline void _decoupled_decay(Update* u, double lr, double wd, bint decoupled,
                                  int wd_slot) noexcept:
    """PyTorch's weight decay options: (L2 coefficient, decoupled factor 1 - lr*wd) into h."""
    if wd != 0 and decoupled:
        u.h[wd_slot], u.h[wd_slot + 1] = 0, 1 - lr * wd
    else:
        u.h[wd_slot], u.h[wd_slot + 1] = wd, 1


cdef void _nadam_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled
    cdef double lr = a[0], beta1 = a[1], beta2 = a[2], md = a[5]
    cdef double mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * md))
    cdef double mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * md))
    cdef double mu_product = _scale_scalar_state(st["mu_product"], mu, "NAdam", "mu_product")
    u.h[0], u.h[1], u.h[2], u.h[3], u.h[4] = 1 - beta1, beta2, 1 - beta2, 1 - beta2 ** t, a[3]
    u.h[5] = -lr * (1.0 - mu) / (1.0 - mu_product)
    u.h[6] = (-lr * mu_next) / (1.0 - mu_product * mu_next)
    _decoupled_decay(u, lr, a[4], a[6] != 0, 7)


cdef void _radam_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, beta1, beta2, eps, weight_decay, decoupled
    cdef double lr = a[0], beta1 = a[1], beta2 = a[2]
    cdef double bc2 = 1 - beta2 ** t
    cdef double rho_inf = 2 / (1 - beta2) - 1
    cdef double rho_t = rho_inf - 2 * t * (beta2 ** t) / bc2
    u.flag = rho_t > 5.0
    u.h[0], u.h[1], u.h[2], u.h[3], u.h[4] = 1 - beta1, beta2, 1 - beta2, 1 - beta1 ** t, lr
    u.h[5], u.h[6], u.h[7] = bc2 ** 0.5, a[3], 0
    if u.flag:
        u.h[7] = ((rho_t - 4) * (rho_t - 2) * rho_inf
                  / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    _decoupled_decay(u, lr, a[4], a[5] != 0, 8)


cdef void _adamax_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, beta1, beta2, eps, weight_decay
    u.h[0], u.h[1], u.h[2] = 1 - a[1], a[2], a[3]
    u.h[3], u.h[4] = -(a[0] / (1 - a[1] ** t)), a[4]


cdef void _adadelta_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, rho, eps, weight_decay
    u.h[0], u.h[1], u.h[2], u.h[3], u.h[4] = a[1], 1 - a[1], a[2], -a[0], a[3]


cdef void _rprop_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: etaminus, etaplus, step_size_min, step_size_max
    u.h[0], u.h[1], u.h[2], u.h[3] = a[0], a[1], a[2], a[3]


cdef void _asgd_hyper(Update* u, dict st, double t, const double* a) except *:
    # a: lr, lambd, alpha, t0, weight_decay. eta and mu are read for this step, then advanced.
    cdef double lr = a[0], lambd = a[1]
    cdef double eta = _scale_scalar_state(st["eta"], 1, "ASGD", "eta")
    cdef double mu = _scale_scalar_state(st["mu"], 1, "ASGD", "mu")
    u.h[0], u.h[1], u.h[2], u.h[3] = 1 - lambd * eta, -eta, mu, a[4]
    u.flag = mu == 1
    _set_scalar_state(st["eta"], lr / ((1 + lambd * lr * t) ** a[2]))
    _set_scalar_state(st["mu"], 1 / max(1.0, t - a[3]))


cdef double _scale_scalar_state(TensorBase s, double factor, str opt, str name) except? -1:
    """s *= factor on a one-element float state tensor (rounded to its dtype); the new value."""
    cdef cnp.ndarray arr = s._data
    if cnp.PyArray_SIZE(arr) != 1 or not _is_float(arr):
        raise RuntimeError(f"{opt}: state '{name}' must be a one-element float tensor, got "
                           f"{arr.dtype} of shape {(<object>arr).shape}")
    if factor != 1:
        arr[...] = arr * arr.dtype.type(factor)
    return float(arr)


cdef void _set_scalar_state(TensorBase s, double value) except *:
    """PyTorch's `state.copy_(torch.as_tensor(value))`: the value passes through a float32
    tensor (the default dtype) on its way, also into a float64 state (loaded for a float64
    parameter)."""
    (<cnp.ndarray>s._data)[...] = np.float32(value)



def nadam_group(list params, object state, object init, double lr, double beta1, double beta2,
                double eps, double weight_decay, double momentum_decay, bint decoupled,
                bint maximize):
    """NAdam over one parameter group (state: step, mu_product, exp_avg, exp_avg_sq)."""
    cdef double a[7]
    a[:] = [lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled]
    _elementwise_group(U_NADAM, "NAdam", params, state, init, "exp_avg", "exp_avg_sq", None,
                       _nadam_hyper, a, maximize)


def radam_group(list params, object state, object init, double lr, double beta1, double beta2,
                double eps, double weight_decay, bint decoupled, bint maximize):
    """RAdam over one parameter group (state: step, exp_avg, exp_avg_sq)."""
    cdef double a[6]
    a[:] = [lr, beta1, beta2, eps, weight_decay, decoupled]
    _elementwise_group(U_RADAM, "RAdam", params, state, init, "exp_avg", "exp_avg_sq", None,
                       _radam_hyper, a, maximize)


def adamax_group(list params, object state, object init, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bint maximize):
    """Adamax over one parameter group (state: step, exp_avg, exp_inf)."""
    cdef double a[5]
    a[:] = [lr, beta1, beta2, eps, weight_decay]
    _elementwise_group(U_ADAMAX, "Adamax", params, state, init, "exp_avg", "exp_inf", None,
                       _adamax_hyper, a, maximize)


def adadelta_group(list params, object state, object init, double lr, double rho, double eps,
                   double weight_decay, bint maximize):
    """Adadelta over one parameter group (state: step, square_avg, acc_delta)."""
    cdef double a[4]
    a[:] = [lr, rho, eps, weight_decay]
    _elementwise_group(U_ADADELTA, "Adadelta", params, state, init, "square_avg", "acc_delta",
                       None, _adadelta_hyper, a, maximize)


def rprop_group(list params, object state, object init, double etaminus, double etaplus,
                double step_size_min, double step_size_max, bint maximize):
    """Rprop over one parameter group (state: step, prev, step_size)."""
    cdef double a[4]
    a[:] = [etaminus, etaplus, step_size_min, step_size_max]
    _elementwise_group(U_RPROP, "Rprop", params, state, init, "prev", "step_size", None,
                       _rprop_hyper, a, maximize)


def asgd_group(list params, object state, object init, double lr, double lambd, double alpha,
               double t0, double weight_decay, bint maximize):
    """ASGD over one parameter group (state: step, eta, mu, ax)."""
    cdef double a[5]
    a[:] = [lr, lambd, alpha, t0, weight_decay]
    _elementwise_group(U_ASGD, "ASGD", params, state, init, "ax", None, None, _asgd_hyper, a,
                       maximize)

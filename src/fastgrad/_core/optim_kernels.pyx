# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Fused optimizer updates: one pass over a parameter's contiguous buffer per step.

Each optimizer (SGD, Adam/AdamW, Adagrad, RMSprop) is a `*_kernel`, a `noexcept nogil` loop over
raw pointers that reads the gradient and the state buffers and writes the parameter and the state
in place, with no temporaries; and a `*_update` driver that validates the tensors once (dtype,
shape, contiguity), takes their pointers, releases the GIL for the loop and bumps the parameter's
version counter. The Python classes in fastgrad/optim/ keep the options and the state dict.

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

import numpy as np

from fastgrad._core.tensor cimport TensorBase, check_inference_inplace
from fastgrad._core.kernels cimport nthreads, PAR_MIN
from cython.parallel cimport prange

cnp.import_array()

# Note [Vectorized update loops]
# The loops below vectorize (SSE2/AVX) only when sqrt need not set errno: setup.py compiles this
# module with -fno-math-errno (a `#pragma GCC optimize` does not reach it); the kernels never
# read errno. Loop-invariant options (maximize, weight decay, amsgrad, momentum) are either exact
# arithmetic (`sign * g` with sign = +-1) or literal flags of an inlined loop, folded away.


# Note [Parallel updates]
# A parameter of at least 2 * PAR_MIN elements is updated in OPT_CHUNK-element blocks across the
# OpenMP team (fastgrad.set_num_threads); each element's update is the same expression whoever
# computes it, so the thread count does not change the result. Smaller ones stay on one thread:
# waking the partner costs 20-50 us here. Adam over W6's parameters (269k floats, one of 200k):
# 235 us on one thread, 195-200 us on two; the loop reads and writes 4-5 buffers per element and
# is near the cache's bandwidth, and on one core its divisions and square root bound it (SSE2).
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
# Each `_*_loop` is inlined by its `*_kernel` at call sites whose option flags are literals, so
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


# --- drivers: the whole parameter, in parallel blocks when large (Note [Parallel updates]) -------

cdef void sgd_kernel(floating* p, const floating* grad, floating* buf,     # INOUT, IN, INOUT
                     Py_ssize_t n, floating neg_lr, floating wd, floating momentum,
                     floating one_minus_damp, bint nesterov, bint maximize,
                     bint init_buf) noexcept nogil:
    cdef Py_ssize_t c, lo, nch = _nchunks(n)
    if nch == 1:
        _sgd_block(p, grad, buf, n, neg_lr, wd, momentum, one_minus_damp, nesterov, maximize,
                   init_buf)
        return
    for c in prange(nch, schedule="static", num_threads=nthreads()):
        lo = c * OPT_CHUNK
        _sgd_block(p + lo, grad + lo, _at(buf, lo), min(<Py_ssize_t>OPT_CHUNK, n - lo), neg_lr,
                   wd, momentum, one_minus_damp, nesterov, maximize, init_buf)


cdef void adam_kernel(floating* p, const floating* grad, floating* m, floating* v,  # INOUT, IN, INOUT x2
                      floating* vmax, Py_ssize_t n,                                 # INOUT or NULL
                      floating neg_step_size, floating one_minus_beta1, floating beta2,
                      floating one_minus_beta2, floating bc2_sqrt, floating eps, floating wd,
                      floating decay, bint maximize) noexcept nogil:
    cdef Py_ssize_t c, lo, nch = _nchunks(n)
    if nch == 1:
        _adam_block(p, grad, m, v, vmax, n, neg_step_size, one_minus_beta1, beta2,
                    one_minus_beta2, bc2_sqrt, eps, wd, decay, maximize)
        return
    for c in prange(nch, schedule="static", num_threads=nthreads()):
        lo = c * OPT_CHUNK
        _adam_block(p + lo, grad + lo, m + lo, v + lo, _at(vmax, lo),
                    min(<Py_ssize_t>OPT_CHUNK, n - lo), neg_step_size, one_minus_beta1, beta2,
                    one_minus_beta2, bc2_sqrt, eps, wd, decay, maximize)


cdef void adagrad_kernel(floating* p, const floating* grad, floating* s,   # INOUT, IN, INOUT
                         Py_ssize_t n, floating neg_clr, floating eps, floating wd,
                         bint maximize) noexcept nogil:
    cdef Py_ssize_t c, lo, nch = _nchunks(n)
    if nch == 1:
        _adagrad_block(p, grad, s, n, neg_clr, eps, wd, maximize)
        return
    for c in prange(nch, schedule="static", num_threads=nthreads()):
        lo = c * OPT_CHUNK
        _adagrad_block(p + lo, grad + lo, s + lo, min(<Py_ssize_t>OPT_CHUNK, n - lo), neg_clr,
                       eps, wd, maximize)


cdef void rmsprop_kernel(floating* p, const floating* grad, floating* sq,   # INOUT, IN, INOUT
                         floating* gavg, floating* buf, Py_ssize_t n,       # INOUT or NULL (x2)
                         floating neg_lr, floating alpha, floating one_minus_alpha, floating eps,
                         floating wd, floating momentum, bint maximize) noexcept nogil:
    cdef Py_ssize_t c, lo, nch = _nchunks(n)
    if nch == 1:
        _rmsprop_block(p, grad, sq, gavg, buf, n, neg_lr, alpha, one_minus_alpha, eps, wd,
                       momentum, maximize)
        return
    for c in prange(nch, schedule="static", num_threads=nthreads()):
        lo = c * OPT_CHUNK
        _rmsprop_block(p + lo, grad + lo, sq + lo, _at(gavg, lo), _at(buf, lo),
                       min(<Py_ssize_t>OPT_CHUNK, n - lo), neg_lr, alpha, one_minus_alpha, eps,
                       wd, momentum, maximize)


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
    for obj in params:
        p = <TensorBase?>obj
        if p._grad is None:
            continue
        if momentum == 0:
            _sgd_one(p, p._grad, None, lr, weight_decay, momentum, dampening, nesterov, maximize,
                     False)
            continue
        st = state[p]
        buf = st.get("momentum_buffer")
        fresh = buf is None
        if fresh:
            buf = zeros(p)
            st["momentum_buffer"] = buf
        _sgd_one(p, p._grad, buf, lr, weight_decay, momentum, dampening, nesterov, maximize,
                 fresh)


cdef void _sgd_one(TensorBase p, TensorBase grad, TensorBase buf, double lr, double weight_decay,
                   double momentum, double dampening, bint nesterov, bint maximize,
                   bint init_buf) except *:
    cdef cnp.ndarray pa = _param_array(p, "SGD")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "SGD")
    cdef cnp.ndarray w = _work(pa)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    cdef char* pp = <char*>cnp.PyArray_DATA(w)
    cdef char* gp = <char*>cnp.PyArray_DATA(ga)
    cdef char* bp = _maybe_state_ptr(buf, pa, "SGD", "momentum_buffer")
    if cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT32:
        with nogil:
            sgd_kernel(<float*>pp, <float*>gp, <float*>bp, n, <float>(-lr), <float>weight_decay,
                       <float>momentum, <float>(1 - dampening), nesterov, maximize, init_buf)
    else:
        with nogil:
            sgd_kernel(<double*>pp, <double*>gp, <double*>bp, n, -lr, weight_decay, momentum,
                       1 - dampening, nesterov, maximize, init_buf)
    _finish(p, w)


def adam_group(list params, object state, object init, double lr, double beta1, double beta2,
               double eps, double weight_decay, bint amsgrad, bint maximize, bint decoupled):
    """Adam/AdamW over one parameter group: every parameter with a gradient, its state read
    from `state[p]` (filled by `init(state[p], p)` on its first step)."""
    cdef TensorBase p
    cdef dict st
    for obj in params:
        p = <TensorBase?>obj
        if p._grad is None:
            continue
        st = state[p]
        if not st:
            init(st, p)
        _adam_one(p, p._grad, st["exp_avg"], st["exp_avg_sq"],
                  st["max_exp_avg_sq"] if amsgrad else None, st["step"], lr, beta1, beta2, eps,
                  weight_decay, maximize, decoupled)


cdef void _adam_one(TensorBase p, TensorBase grad, TensorBase exp_avg, TensorBase exp_avg_sq,
                    TensorBase max_exp_avg_sq, TensorBase step, double lr, double beta1,
                    double beta2, double eps, double weight_decay, bint maximize,
                    bint decoupled) except *:
    cdef cnp.ndarray pa = _param_array(p, "Adam")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "Adam")
    cdef cnp.ndarray w = _work(pa)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    cdef char* pp = <char*>cnp.PyArray_DATA(w)
    cdef char* gp = <char*>cnp.PyArray_DATA(ga)
    cdef char* mp = _state_ptr(exp_avg, pa, "Adam", "exp_avg")
    cdef char* vp = _state_ptr(exp_avg_sq, pa, "Adam", "exp_avg_sq")
    cdef char* xp = _maybe_state_ptr(max_exp_avg_sq, pa, "Adam", "max_exp_avg_sq")
    cdef double t = incr_step(step)
    cdef double step_size = lr / (1 - beta1 ** t)
    cdef double bc2_sqrt = (1 - beta2 ** t) ** 0.5
    cdef double decay = 1.0
    if weight_decay != 0 and decoupled:
        decay = 1 - lr * weight_decay
        weight_decay = 0
    if cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT32:
        with nogil:
            adam_kernel(<float*>pp, <float*>gp, <float*>mp, <float*>vp, <float*>xp, n,
                        <float>(-step_size), <float>(1 - beta1), <float>beta2,
                        <float>(1 - beta2), <float>bc2_sqrt, <float>eps, <float>weight_decay,
                        <float>decay, maximize)
    else:
        with nogil:
            adam_kernel(<double*>pp, <double*>gp, <double*>mp, <double*>vp, <double*>xp, n,
                        -step_size, 1 - beta1, beta2, 1 - beta2, bc2_sqrt, eps, weight_decay,
                        decay, maximize)
    _finish(p, w)


def adagrad_update(TensorBase p, TensorBase grad, TensorBase state_sum, TensorBase step,
                   double lr, double lr_decay, double eps, double weight_decay, bint maximize):
    """One Adagrad step on `p`; increments `step`."""
    cdef cnp.ndarray pa = _param_array(p, "Adagrad")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "Adagrad")
    cdef cnp.ndarray w = _work(pa)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    cdef char* pp = <char*>cnp.PyArray_DATA(w)
    cdef char* gp = <char*>cnp.PyArray_DATA(ga)
    cdef char* sp = _state_ptr(state_sum, pa, "Adagrad", "sum")
    cdef double t = incr_step(step)
    cdef double clr = lr / (1 + (t - 1) * lr_decay)
    if cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT32:
        with nogil:
            adagrad_kernel(<float*>pp, <float*>gp, <float*>sp, n, <float>(-clr), <float>eps,
                           <float>weight_decay, maximize)
    else:
        with nogil:
            adagrad_kernel(<double*>pp, <double*>gp, <double*>sp, n, -clr, eps, weight_decay,
                           maximize)
    _finish(p, w)


def rmsprop_update(TensorBase p, TensorBase grad, TensorBase square_avg, TensorBase grad_avg,
                   TensorBase momentum_buffer, TensorBase step, double lr, double alpha,
                   double eps, double weight_decay, double momentum, bint maximize):
    """One RMSprop step on `p`; increments `step`. `grad_avg` is None unless centered,
    `momentum_buffer` None unless momentum > 0."""
    cdef cnp.ndarray pa = _param_array(p, "RMSprop")
    cdef cnp.ndarray ga = _grad_array(grad, pa, "RMSprop")
    cdef cnp.ndarray w = _work(pa)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    cdef char* pp = <char*>cnp.PyArray_DATA(w)
    cdef char* gp = <char*>cnp.PyArray_DATA(ga)
    cdef char* sp = _state_ptr(square_avg, pa, "RMSprop", "square_avg")
    cdef char* ap = _maybe_state_ptr(grad_avg, pa, "RMSprop", "grad_avg")
    cdef char* bp = _maybe_state_ptr(momentum_buffer, pa, "RMSprop", "momentum_buffer")
    incr_step(step)
    if cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT32:
        with nogil:
            rmsprop_kernel(<float*>pp, <float*>gp, <float*>sp, <float*>ap, <float*>bp, n,
                           <float>(-lr), <float>alpha, <float>(1 - alpha), <float>eps,
                           <float>weight_decay, <float>momentum, maximize)
    else:
        with nogil:
            rmsprop_kernel(<double*>pp, <double*>gp, <double*>sp, <double*>ap, <double*>bp, n,
                           -lr, alpha, 1 - alpha, eps, weight_decay, momentum, maximize)
    _finish(p, w)

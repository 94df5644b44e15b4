# cython: boundscheck=False, wraparound=False, cdivision=True
"""Fused losses for nn: cross_entropy / nll_loss, mse_loss, binary_cross_entropy(_with_logits).
Activations live in ops_activation.pyx, embedding in ops_embedding.pyx, the loops in
loss_kernels.pxd.

What it is: forward entry points that validate once (naming shapes, dtypes and the fix), compute
on the NumPy storage -- cross-entropy's hot case (class indices, no weight, no smoothing) in one
compiled pass per row that leaves the softmax behind for backward -- and record ONE node.
What it is not: a home for composites that are not hot (layer_norm, batch_norm live in
nn/functional.py as recorded ops).

Note [Fused backward, composed double backward]
Every node here has two backward paths. Without create_graph (grad mode off while the engine
runs) it computes its gradient directly on arrays: softmax - onehot for cross-entropy, 2(x - y)/n
for mse, sigmoid(x) - y for bce-with-logits. With create_graph it writes the same formula with
recorded ops (ops_arith, ops_unary, ops_reduce ...), so gradients of gradients flow.

Note [Class-dim rows]
Cross-entropy works on a (rows, C) view: input (C,) is one row, (N, C) is itself, and
(N, C, d1, ...) moves the class dim last and flattens the rest. Gradients are moved back.
"""
cimport cython
cimport numpy as cnp
import math
import os
import warnings

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history, set_history1, set_history2
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core cimport ops_reduce as red
from fastgrad._core.ops_activation cimport _tensor, _c
from fastgrad._core.loss_kernels cimport (ce_rows, scan_targets, sum_arr, ce_grad, sq_diff_sum,
                                          mse_grad)
from fastgrad._core.ops_select import clamp as _clamp
from fastgrad._core.ops_view import unsqueeze
from fastgrad._core.ops_activation import softplus
from fastgrad._core.ops_unary cimport unary
from fastgrad._core.promotion cimport broadcast_shapes
from fastgrad._core.kernels cimport OP_EXP, OP_LOG, OP_NEG, OP_SIGMOID

cnp.import_array()

cdef dict _REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def legacy_reduction(size_average, reduce, reduction):
    """The reduction that the deprecated size_average / reduce flags ask for (either None: the
    flag's default, True), with PyTorch's deprecation warning; `reduction` when both are None."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        reduction = "none"
    else:
        reduction = "sum" if size_average is False else "mean"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", UserWarning, stacklevel=_user_level())
    return reduction


_PACKAGE = os.path.dirname(os.path.dirname(__file__)) + os.sep      # .../fastgrad/


cdef int _user_level():
    """warnings' stacklevel of the user's line: the first frame outside fastgrad (a compiled
    function has no frame of its own, so the count depends on the Python wrappers between)."""
    import sys
    f = sys._getframe(0)
    cdef int level = 1
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f = f.f_back
        level += 1
    return level


cdef int _reduction(object reduction, str op) except -1:
    r = _REDUCTIONS.get(reduction)
    if r is None:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; "
                         f"use 'none', 'mean' or 'sum'")
    return r


cdef inline str _tn(cnp.ndarray a):
    return scalar_type_name(a.dtype)




cdef object _gscale(TensorBase g, int reduction, double denom):
    """The incoming gradient as the factor every element's local gradient is multiplied by."""
    if reduction == 1:
        return pw.mul_any(g, 1.0 / denom) if grad_enabled() else g._data / denom
    return g if grad_enabled() else g._data


# --- cross_entropy / nll_loss --------------------------------------------------------------------


cdef cnp.ndarray _scalar_like(double v, int typenum):
    """A 0-d array of `typenum` holding v."""
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(0, NULL, typenum, 0)
    if typenum == cnp.NPY_FLOAT32:
        (<float*>cnp.PyArray_DATA(r))[0] = <float>v
    else:
        (<double*>cnp.PyArray_DATA(r))[0] = v
    return r


cdef inline bint _f32_or_f64(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64


cdef cnp.ndarray _rows(cnp.ndarray x):
    """Note [Class-dim rows]: x as a C-contiguous (rows, C) array."""
    if x.ndim == 1:
        return _c(x.reshape(1, -1))
    if x.ndim == 2:
        return _c(x)
    return np.asarray(np.moveaxis(x, 1, -1), order="C").reshape(-1, x.shape[1])


cdef cnp.ndarray _unrows(cnp.ndarray r, tuple shape):
    """Inverse of _rows for a gradient."""
    if len(shape) == 1:
        return r.reshape(shape)
    if len(shape) == 2:
        return r
    lead = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.asarray(np.moveaxis(r.reshape(lead), -1, 1), order="C")


cdef void _check_index_target(cnp.ndarray x, cnp.ndarray t, str op) except *:
    cdef tuple xs = (<object>x).shape, ts = (<object>t).shape
    if t.dtype != np.int64 and t.dtype != np.uint8:
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_tn(t)}: {op} class-index "
            f"targets must be int64 (use target.long()); floating targets must have the input's "
            f"shape {list(xs)} to be read as class probabilities, got {list(ts)}")
    if x.ndim == 0:
        raise RuntimeError(f"{op}: input must have at least 1 dimension (classes), got a 0-d tensor")
    if x.ndim == 1:                                     # one sample: a 0-d or a (1,) target
        if t.ndim > 1:
            raise RuntimeError(f"0D or 1D target tensor expected, multi-target not supported: "
                               f"{op} got a 1-D input of shape {list(xs)} (one sample) and a "
                               f"target of shape {list(ts)}")
        if t.ndim == 1 and ts[0] != 1:
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: "
                             f"{ts[0]} ({op}: a 1-D input is one sample; batch inputs are "
                             f"(N, C))")
        return
    if t.ndim == 0 or ts[0] != xs[0]:
        raise ValueError(f"Expected input batch_size ({xs[0]}) to match target batch_size "
                         f"({ts[0] if t.ndim else 0}): {op} got input {list(xs)} and target "
                         f"{list(ts)}; the target holds one class index per sample")
    if ts != xs[:1] + xs[2:]:
        raise RuntimeError(f"{op}: expected target of shape {list(xs[:1] + xs[2:])} for input of "
                           f"shape {list(xs)} (class dim 1 removed), got {list(ts)}")


cdef object _weight_arr(object weight, Py_ssize_t c, object dt, str op):
    if weight is None:
        return None
    w = _tensor(weight, op, "weight")._data
    if w.ndim != 1 or w.shape[0] != c:
        raise RuntimeError(f"{op}: weight tensor should be defined either for all {c} classes "
                           f"or no classes but got weight tensor of shape: {list((<object>w).shape)}")
    return w.astype(dt, copy=False)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """log_softmax + nll_loss in one op (grad_fn NllLossBackward0)."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    return _nll(input, target, weight, ignore_index, reduction, label_smoothing, True,
                "cross_entropy")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities `input` at class indices `target`."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    return _nll(input, target, weight, ignore_index, reduction, 0.0, False, "nll_loss")


cdef object _nll(object input, object target, object weight, object ignore_index,
                 object reduction, double eps, bint log_softmax, str op):
    cdef TensorBase x = _tensor(input, op, "input"), t = _tensor(target, op, "target"), out
    cdef int red_ = _reduction(reduction, op)
    cdef cnp.ndarray xd = x._data, td = t._data, rows, p, loss, tgt, valid, A = None
    cdef Py_ssize_t m, c, bad_at, n_ignored = 0
    cdef cnp.int64_t ig
    cdef bint probs
    cdef double denom, total
    cdef NllLossBackward0 node
    if xd.dtype.kind != "f":
        raise NotImplementedError(f'"{op}" not implemented for \'{scalar_type_name(xd.dtype)}\': '
                                  f"{op} expects a floating point input (logits); convert it "
                                  f"with input.float()")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {eps}")
    probs = td.dtype.kind == "f" and log_softmax and (<object>td).shape == (<object>xd).shape
    rows = _rows(xd)
    m = rows.shape[0]
    c = rows.shape[1] if rows.ndim == 2 else 0
    w = _weight_arr(weight, c, xd.dtype, op)
    if probs:
        if (<object>td).shape != (<object>xd).shape:
            raise RuntimeError(f"{op}: class-probability targets must have the input's shape "
                               f"{list((<object>xd).shape)}, got {list((<object>td).shape)}; for class indices "
                               f"pass an int64 tensor of shape {list((<object>xd).shape[:1] + (<object>xd).shape[2:])}")
        if ignore_index != -100:
            raise RuntimeError(f"{op}: ignore_index is not supported for floating point "
                               f"(class-probability) targets")
        q = _rows(td.astype(xd.dtype, copy=False))
        A = q * (1.0 - eps) + eps / c if eps > 0 else q
        if w is not None:
            A = A * w
        tgt = None
        denom = m
    else:
        _check_index_target(xd, td, op)
        tgt = _c(td.reshape(-1).astype(np.int64, copy=False))
        ig = ignore_index
        bad_at = scan_targets(<cnp.int64_t*>cnp.PyArray_DATA(tgt), m, c, ig, &n_ignored)
        if bad_at >= 0:
            raise IndexError(f"Target {tgt[bad_at]} is out of bounds: {op} got class indices "
                             f"outside [0, {c - 1}] for {c} classes")
        if w is None and eps == 0.0 and n_ignored == 0:
            denom = m
        else:
            valid = tgt != ignore_index
            A = np.zeros((m, c), dtype=xd.dtype)
            idx = np.nonzero(valid)[0]
            cls = tgt[idx]
            wy = w[cls] if w is not None else np.ones(idx.shape[0], dtype=xd.dtype)
            A[idx, cls] = (1.0 - eps) * wy
            if eps > 0:
                A[idx] += (eps / c) * (w if w is not None else 1.0)
            denom = float(wy.sum())
    if A is None and not (log_softmax and (xd.dtype == np.float32 or xd.dtype == np.float64)):
        A = np.zeros((m, c), dtype=xd.dtype)
        A[np.arange(m), tgt] = 1
    # forward
    if A is None:
        p = np.empty_like(rows)
        loss = np.empty(m, dtype=xd.dtype)
        tgt = _c(tgt)
        if xd.dtype == np.float32:
            with nogil:
                ce_rows(<float*>cnp.PyArray_DATA(rows), <cnp.int64_t*>cnp.PyArray_DATA(tgt),
                        <float*>cnp.PyArray_DATA(p), <float*>cnp.PyArray_DATA(loss), m, c)
        else:
            with nogil:
                ce_rows(<double*>cnp.PyArray_DATA(rows), <cnp.int64_t*>cnp.PyArray_DATA(tgt),
                        <double*>cnp.PyArray_DATA(p), <double*>cnp.PyArray_DATA(loss), m, c)
        saved_rows = p
        if red_ != 0:
            if xd.dtype == np.float32:
                total = sum_arr(<float*>cnp.PyArray_DATA(loss), m)
            else:
                total = sum_arr(<double*>cnp.PyArray_DATA(loss), m)
            total = total if red_ == 2 else (total / denom if denom != 0 else math.nan)
            loss = _scalar_like(total, cnp.PyArray_TYPE(xd))
    else:
        if log_softmax:
            mx = rows.max(axis=1, keepdims=True)
            z = rows - mx
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        else:
            logp = rows
        with np.errstate(invalid="ignore"):     # 0 * -inf: NaN, replaced just below
            prod = A * logp         # class indices: a 0 coefficient adds 0, even at a -inf logit
        loss = -(prod if probs else np.where(A == 0, 0, prod)).sum(axis=1)
        saved_rows = logp if log_softmax else None
    if A is None and red_ != 0:
        out = wrap(loss)
    elif red_ == 0:
        res = loss.reshape((<object>td).shape if not probs else (<object>xd).shape[:1] +
                           (<object>xd).shape[2:]) if xd.ndim > 1 else loss.reshape(())
        out = wrap(np.asarray(res, order="C"))
    elif red_ == 2:
        out = wrap(np.asarray(loss.sum(dtype=red.acc_dtype(loss, None, False)), dtype=xd.dtype))
    else:
        out = wrap(np.asarray(loss.sum(dtype=red.acc_dtype(loss, None, False)) / denom
                              if denom != 0 else np.nan, dtype=xd.dtype))
    if grad_enabled() and (x._requires_grad or (probs and t._requires_grad)):
        node = NllLossBackward0.__new__(NllLossBackward0)
        node.x = save(x, False)
        node.rows = saved_rows
        node.A = A
        node.tgt = tgt
        node.reduction = red_
        node.denom = denom
        node.c = c
        node.eps = eps
        node.log_softmax = log_softmax
        node.w = w
        if probs:
            set_history(out, node, (x, t))
        else:
            set_history1(out, node, x)
    return out


@cython.final
cdef class NllLossBackward0(Node):
    """Cross-entropy / NLL (Note [Fused backward, composed double backward]).
    d/dx = g * (rowsum(A) * softmax(x) - A) / denom   (nll: -g * A / denom)
    d/dq = -g * (1 - eps) * w * log_softmax(x) / denom (probability targets)"""
    cdef SavedVar x                # the logits / log-probs
    cdef object rows               # (rows, C) softmax (hot path) or log-softmax (else) or None
    cdef object A                  # (rows, C) target coefficients, or None: one-hot of tgt
    cdef object tgt                # flat class indices, or None for probability targets
    cdef object w                  # class weights array or None
    cdef int reduction
    cdef double denom, eps
    cdef Py_ssize_t c              # number of classes
    cdef bint log_softmax

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self)
        cdef tuple shape = (<object>x._data).shape
        if self.rows is None and self.log_softmax:
            raise RuntimeError("NllLossBackward0: saved values were released; use retain_graph=True")
        if (self.A is None and self.log_softmax and self.reduction != 0 and len(shape) <= 2
                and g._data.ndim == 0 and len(self._next_fns) == 1 and not grad_enabled()):
            return (self._ce_grad_c(shape, float(g._data)),)
        scale = _gscale(g, self.reduction, self.denom)
        if self.reduction == 0 and len(shape) > 1:
            scale = (_unsqueeze(scale, 1) if grad_enabled() else
                     np.expand_dims(scale, 1))
        gx = self._grad_input(x, shape, scale) if self._next_fns[0] is not None else None
        if len(self._next_fns) == 1:
            return (gx,)
        gq = None
        if self._next_fns[1] is not None:
            coef = -(1.0 - self.eps) * (self.w if self.w is not None else 1.0)
            if grad_enabled():
                gq = pw.mul(pw.mul_any(_log_softmax_rec(x), coef), scale)
            else:
                gq = wrap(_unrows(coef * self.rows, shape) * scale)
        return (gx, gq)

    cdef object _grad_input(self, TensorBase x, tuple shape, object scale):
        cdef Py_ssize_t m
        if grad_enabled():
            Ar = self._onehot()
            A = wrap(_unrows(Ar, shape))
            if not self.log_softmax:
                return pw.mul(pw.mul_any(A, -1.0), scale)
            sa = wrap(_unrows(np.repeat(Ar.sum(1, keepdims=True), self.c, axis=1), shape))
            return pw.mul(pw.sub(pw.mul(_softmax_rec(x), sa), A), scale)
        if not self.log_softmax:
            r = -self._onehot()
        elif self.A is None:
            r = self.rows.copy()
            m = r.shape[0]
            r[np.arange(m), self.tgt] -= 1
        else:
            r = np.exp(self.rows) * self.A.sum(axis=1, keepdims=True) - self.A
        return wrap(np.asarray(_unrows(r, shape) * scale, dtype=x._data.dtype, order="C"))

    cdef object _ce_grad_c(self, tuple shape, double gs):
        """The hot case in one pass: g * (softmax - onehot) / denom (Note [Fused backward, composed double backward])."""
        cdef cnp.ndarray p = self.rows, y = self.tgt
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, [p.shape[0], p.shape[1]],
                                                 cnp.PyArray_TYPE(p), 0)
        cdef double s = gs / self.denom if self.reduction == 1 else gs
        if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32:
            ce_grad(<float*>cnp.PyArray_DATA(p), <cnp.int64_t*>cnp.PyArray_DATA(y),
                    <float*>cnp.PyArray_DATA(out), p.shape[0], p.shape[1], <float>s)
        else:
            ce_grad(<double*>cnp.PyArray_DATA(p), <cnp.int64_t*>cnp.PyArray_DATA(y),
                    <double*>cnp.PyArray_DATA(out), p.shape[0], p.shape[1], s)
        return wrap(out if len(shape) == 2 else out.reshape(shape))

    cdef object _onehot(self):
        if self.A is not None:
            return self.A
        m = self.tgt.shape[0]
        A = np.zeros((m, self.c), dtype=self.rows.dtype)
        A[np.arange(m), self.tgt] = 1
        return A

    cdef void release_variables(self):
        self.x.release()
        self.rows = None
        self.A = None


cdef object _unsqueeze(object g, int dim):
    return unsqueeze(g, dim)


cdef object _softmax_rec(TensorBase x):
    """softmax over the class dim with recorded ops (double backward)."""
    cdef int cd = 0 if x._data.ndim == 1 else 1
    e = unary(OP_EXP, pw.sub(x, wrap(x._data.max(axis=cd, keepdims=True))))
    return pw.div(e, red.sum_(e, cd, True))


cdef object _log_softmax_rec(TensorBase x):
    cdef int cd = 0 if x._data.ndim == 1 else 1
    z = pw.sub(x, wrap(x._data.max(axis=cd, keepdims=True)))
    return pw.sub(z, unary(OP_LOG, red.sum_(unary(OP_EXP, z), cd, True)))


# --- mse_loss ------------------------------------------------------------------------------------

def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """mean/sum/none of (input - target)**2 in one op (grad_fn MseLossBackward0)."""
    cdef TensorBase x = _tensor(input, "mse_loss", "input"), y = _tensor(target, "mse_loss", "target")
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    cdef int red_ = _reduction(reduction, "mse_loss")
    cdef cnp.ndarray xd = x._data, yd = y._data
    cdef MseLossBackward0 node
    cdef TensorBase out
    cdef Py_ssize_t n
    cdef double total
    xs, ys = (<object>xd).shape, (<object>yd).shape
    if xs != ys:
        warnings.warn(f"Using a target size ({_size(ys)}) that is different to the input size "
                      f"({_size(xs)}). This will likely lead to incorrect results due to "
                      f"broadcasting. Please ensure they have the same size.", UserWarning,
                      stacklevel=2)
        broadcast_shapes(xs, ys, "mse_loss")
    if xd.dtype.kind != "f" and yd.dtype.kind != "f":
        raise RuntimeError(f"mse_loss: expected floating point input and target, got "
                           f"{x.dtype} and {y.dtype}; convert with .float()")
    fast = (red_ != 0 and xs == ys and cnp.PyArray_TYPE(xd) == cnp.PyArray_TYPE(yd)
            and _f32_or_f64(xd) and cnp.PyArray_IS_C_CONTIGUOUS(xd)
            and cnp.PyArray_IS_C_CONTIGUOUS(yd))
    if fast:
        n = cnp.PyArray_SIZE(xd)
        if cnp.PyArray_TYPE(xd) == cnp.NPY_FLOAT32:
            total = sq_diff_sum(<float*>cnp.PyArray_DATA(xd), <float*>cnp.PyArray_DATA(yd), n)
        else:
            total = sq_diff_sum(<double*>cnp.PyArray_DATA(xd), <double*>cnp.PyArray_DATA(yd), n)
        out = wrap(_scalar_like(total if red_ == 2 else (total / n if n else math.nan),
                                cnp.PyArray_TYPE(xd)))
    else:
        d = np.subtract(xd, yd)
        if d.dtype.kind != "f":
            d = d.astype(np.float32)
        n = d.size
        if red_ == 0:
            out = wrap(np.asarray(d * d, order="C"))
        else:
            fd = d.reshape(-1)
            s = np.dot(fd, fd)
            out = wrap(np.asarray(s / fd.shape[0] if red_ == 1 else s, dtype=d.dtype))
    if grad_enabled() and (x._requires_grad or y._requires_grad):
        node = MseLossBackward0.__new__(MseLossBackward0)
        node.x = save(x, False)
        node.y = save(y, False)
        node.reduction = red_
        node.n = n
        if not fast:
            mx = None if xs == d.shape and xd.dtype == d.dtype else (xs, xd.dtype)
            my = None if ys == d.shape and yd.dtype == d.dtype else (ys, yd.dtype)
            if mx is not None or my is not None:
                node._in_meta = (mx, my)
        set_history2(out, node, x, y)
    return out


cdef str _size(tuple s):
    return f"torch.Size({list(s)})"


@cython.final
cdef class MseLossBackward0(Node):
    """d/dx = g * 2 (x - y) / n (mean), d/dy = -d/dx."""
    cdef SavedVar x, y
    cdef int reduction
    cdef Py_ssize_t n

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self), y = self.y.unpack(self)
        cdef cnp.ndarray xd = x._data, yd = y._data, gx_a, gy_a = None
        cdef double s
        if (not grad_enabled() and g._data.ndim == 0 and self.reduction != 0
                and cnp.PyArray_TYPE(xd) == cnp.PyArray_TYPE(yd) and _f32_or_f64(xd)
                and (<object>xd).shape == (<object>yd).shape
                and cnp.PyArray_IS_C_CONTIGUOUS(xd) and cnp.PyArray_IS_C_CONTIGUOUS(yd)):
            s = 2.0 * float(g._data) / (self.n if self.reduction == 1 else 1)
            gx_a = cnp.PyArray_EMPTY(xd.ndim, cnp.PyArray_DIMS(xd), cnp.PyArray_TYPE(xd), 0)
            if self._next_fns[1] is not None:
                gy_a = cnp.PyArray_EMPTY(xd.ndim, cnp.PyArray_DIMS(xd), cnp.PyArray_TYPE(xd), 0)
            if cnp.PyArray_TYPE(xd) == cnp.NPY_FLOAT32:
                mse_grad(<float*>cnp.PyArray_DATA(xd), <float*>cnp.PyArray_DATA(yd),
                         <float*>cnp.PyArray_DATA(gx_a),
                         <float*>(cnp.PyArray_DATA(gy_a) if gy_a is not None else NULL),
                         cnp.PyArray_SIZE(xd), <float>s)
            else:
                mse_grad(<double*>cnp.PyArray_DATA(xd), <double*>cnp.PyArray_DATA(yd),
                         <double*>cnp.PyArray_DATA(gx_a),
                         <double*>(cnp.PyArray_DATA(gy_a) if gy_a is not None else NULL),
                         cnp.PyArray_SIZE(xd), s)
            return (wrap(gx_a) if self._next_fns[0] is not None else None,
                    wrap(gy_a) if gy_a is not None else None)
        scale = _gscale(g, self.reduction, <double>self.n)
        if grad_enabled():
            gx = pw.mul(pw.mul_any(pw.sub(x, y), 2.0), scale)
        else:
            d = np.subtract(x._data, y._data)
            gx = wrap(np.asarray(d * (2.0 * scale),
                                           dtype=d.dtype if d.dtype.kind == "f" else np.float32, order="C"))
        gy = None
        if self._next_fns[1] is not None:
            gy = unary(OP_NEG, gx)
        return (gx if self._next_fns[0] is not None else None, gy)

    cdef void release_variables(self):
        self.x.release()
        self.y.release()


# --- binary_cross_entropy_with_logits --------------------------------------------------------

cdef tuple _binary_pair(object input, object target, str op, str size_msg):
    """(input, target) of a binary cross-entropy: tensors of one shape (ValueError with
    size_msg, which names them {i} and {t}), both floating point."""
    cdef TensorBase x = _tensor(input, op, "input"), y = _tensor(target, op, "target")
    cdef tuple xs = (<object>x._data).shape, ys = (<object>y._data).shape
    if xs != ys:
        raise ValueError(size_msg.format(i=_size(xs), t=_size(ys)))
    if x._data.dtype.kind != "f" or y._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected floating point input and target, got {x.dtype} and "
                           f"{y.dtype}; targets are probabilities: use target.float()")
    return x, y


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Stable sigmoid + binary cross-entropy:
    loss = (1 - y) x + (1 + (pw - 1) y) (log1p(exp(-|x|)) + max(-x, 0)), times weight."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    cdef str op = "binary_cross_entropy_with_logits"
    cdef TensorBase x, y, out
    cdef int red_ = _reduction(reduction, op)
    x, y = _binary_pair(input, target, op, "Target size ({t}) must be the same as input size "
                        "({i}) in binary_cross_entropy_with_logits")
    cdef cnp.ndarray xd = x._data, yd = y._data
    cdef BinaryCrossEntropyWithLogitsBackward0 node
    for name, arg in (("weight", weight), ("pos_weight", pos_weight)):
        if isinstance(arg, TensorBase) and (<TensorBase>arg)._requires_grad and grad_enabled():
            raise RuntimeError(f"The function '{op}' is not differentiable with respect to "
                               f"argument '{name}'. This input cannot have requires_grad True: "
                               f"pass {name}.detach()")
    w = None if weight is None else _tensor(weight, op, "weight")._data
    pwt = None if pos_weight is None else _tensor(pos_weight, op, "pos_weight")._data
    sp = np.logaddexp(0, -xd)                               # softplus(-x), stable
    lw = 1.0 if pwt is None else 1.0 + (pwt - 1.0) * yd
    loss = (1.0 - yd) * xd + lw * sp
    if w is not None:
        loss = loss * w
    loss = np.asarray(loss, dtype=xd.dtype)
    if red_ == 0:
        out = wrap(np.asarray(loss, order="C"))
    elif red_ == 2:
        out = wrap(np.asarray(loss.sum(), dtype=xd.dtype))
    else:
        out = wrap(np.asarray(loss.mean(), dtype=xd.dtype))
    if grad_enabled() and (x._requires_grad or y._requires_grad):
        node = BinaryCrossEntropyWithLogitsBackward0.__new__(BinaryCrossEntropyWithLogitsBackward0)
        node.x = save(x, False)
        node.y = save(y, False)
        node.w = w
        node.pw = pwt
        node.reduction = red_
        node.n = xd.size
        set_history(out, node, (x, y))
    return out


@cython.final
cdef class BinaryCrossEntropyWithLogitsBackward0(Node):
    """d/dx = g w (lw sigmoid(x) - lw + 1 - y), lw = 1 + (pw - 1) y;
    d/dy = g w ((pw - 1) softplus(-x) - x)."""
    cdef SavedVar x, y
    cdef object w, pw
    cdef int reduction
    cdef Py_ssize_t n

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self), y = self.y.unpack(self)
        scale = _gscale(g, self.reduction, <double>self.n)
        gx = gy = None
        if grad_enabled():
            w = wrap(np.asarray(self.w, dtype=x._data.dtype)) if self.w is not None else None
            if self.pw is None:
                gx = pw.sub(unary(OP_SIGMOID, x), y)
            else:
                lw = pw.add(pw.mul(y, wrap(np.asarray(self.pw - 1.0, dtype=x._data.dtype))), 1.0)
                gx = pw.sub(pw.add(pw.sub(pw.mul(lw, unary(OP_SIGMOID, x)), lw), 1.0), y)
            if w is not None:
                gx = pw.mul(gx, w)
            gx = pw.mul(gx, scale)
            if self._next_fns[1] is not None:
                gy = unary(OP_NEG, x)
                if self.pw is not None:
                    sp = softplus(unary(OP_NEG, x), 1.0, 20.0)
                    gy = pw.add(gy, pw.mul(sp, wrap(np.asarray(self.pw - 1.0, dtype=x._data.dtype))))
                if w is not None:
                    gy = pw.mul(gy, w)
                gy = pw.mul(gy, scale)
            return (gx, gy)
        xd, yd = x._data, y._data
        s = 1.0 / (1.0 + np.exp(-np.clip(xd, -700, 700)))
        if self.pw is None:
            dx = s - yd
        else:
            lw = 1.0 + (self.pw - 1.0) * yd
            dx = lw * s - lw + 1.0 - yd
        wf = scale if self.w is None else self.w * scale
        gx = wrap(np.asarray(dx * wf, dtype=xd.dtype, order="C"))
        if self._next_fns[1] is not None:
            dy = -xd if self.pw is None else (self.pw - 1.0) * np.logaddexp(0, -xd) - xd
            gy = wrap(np.asarray(dy * wf, dtype=xd.dtype, order="C"))
        return (gx, gy)

    cdef void release_variables(self):
        self.x.release()
        self.y.release()


# --- binary_cross_entropy ------------------------------------------------------------------------

# PyTorch's floor on x (1 - x) in the input gradient: 1e-12 rounded to float32, as its kernel has
# it (so x = 0, y = 1 gives -1.000000004e12, not -1e12, in float64 too)
cdef double _BCE_EPS = <float>1e-12


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) with each log clamped at -100, as PyTorch, so x = 0 or 1
    gives a finite loss; its input gradient g w (x - y) / max(x (1 - x), 1e-12) is finite there
    too (PyTorch's formula), where the composed log's would be NaN."""
    cdef str op = "binary_cross_entropy"
    cdef TensorBase x, y, out
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    cdef int red_ = _reduction(reduction, op)
    x, y = _binary_pair(input, target, op, "Using a target size ({t}) that is different to the "
                        "input size ({i}) is deprecated. Please ensure they have the same size.")
    cdef cnp.ndarray xd = x._data, yd = y._data
    cdef BinaryCrossEntropyBackward0 node
    # NaN fails both comparisons, so it is out of range too, as in PyTorch
    if xd.size and not np.all((xd >= 0) & (xd <= 1)):
        raise RuntimeError("all elements of input should be between 0 and 1 "
                           "(binary_cross_entropy takes probabilities; for logits use "
                           "binary_cross_entropy_with_logits)")
    if yd.size and not np.all((yd >= 0) & (yd <= 1)):
        raise RuntimeError("all elements of target should be between 0 and 1 "
                           "(binary_cross_entropy takes targets that are probabilities)")
    w = None if weight is None else np.asarray(_tensor(weight, op, "weight")._data,
                                               dtype=xd.dtype)
    with np.errstate(divide="ignore"):
        loss = (yd - 1) * np.maximum(np.log(1 - xd), -100.0) - yd * np.maximum(np.log(xd),
                                                                               -100.0)
    if w is not None:
        loss = loss * w
    loss = np.asarray(loss, dtype=xd.dtype)
    if red_ == 0:
        out = wrap(np.asarray(loss, order="C"))           # (ascontiguousarray makes 0-d 1-d)
    elif red_ == 2:
        out = wrap(np.asarray(loss.sum(), dtype=xd.dtype))
    else:
        out = wrap(np.asarray(loss.mean() if loss.size else np.nan, dtype=xd.dtype))
    if grad_enabled() and (x._requires_grad or y._requires_grad):
        node = BinaryCrossEntropyBackward0.__new__(BinaryCrossEntropyBackward0)
        node.x = save(x, False)
        node.y = save(y, False)
        node.w = w
        node.reduction = red_
        node.n = loss.size
        if (<object>loss).shape != (<object>xd).shape:        # a weight that broadcast x up
            node._in_meta = (((<object>xd).shape, xd.dtype), ((<object>yd).shape, yd.dtype))
        set_history(out, node, (x, y))
    return out


@cython.final
cdef class BinaryCrossEntropyBackward0(Node):
    """d/dx = g w (x - y) / max(x (1 - x), 1e-12); d/dy = -g w logit(x). Written
    with recorded ops in both modes: not hot, and differentiable again as it stands."""
    cdef SavedVar x, y
    cdef object w
    cdef int reduction
    cdef Py_ssize_t n

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = self.x.unpack(self), y = self.y.unpack(self)
        scale = pw.mul_any(g, 1.0 / self.n) if self.reduction == 1 and self.n else g
        if self.w is not None:
            scale = pw.mul(scale, wrap(self.w))
        gx = gy = None
        if self._next_fns[0] is not None:
            d = _clamp(pw.mul(x, pw.rsub(x, 1.0)), _BCE_EPS, None)
            gx = pw.mul(scale, pw.div(pw.sub(x, y), d))
        if self._next_fns[1] is not None:
            gy = pw.mul(scale, unary(OP_NEG, pw.sub(unary(OP_LOG, x), unary(
                OP_LOG, pw.rsub(x, 1.0)))))        # -logit(x)
        return (gx, gy)

    cdef void release_variables(self):
        self.x.release()
        self.y.release()

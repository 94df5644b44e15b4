# cython: boundscheck=True, wraparound=True
"""Reductions beyond ops_reduce's fused ones: var/std, prod, cumsum, logsumexp, norm, dist,
amax/amin, argmax/argmin, all/any, nansum, count_nonzero.

Forwards run on NumPy; each backward is written with recorded ops (pw.*, sum_, reshape) so it
is differentiable again. Reduced dims are put back as size 1 (`_keep`) and broadcasting in the
pointwise ops spreads the gradient over them.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap, tensor_arg
from fastgrad._core.recording cimport set_history1
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_reduce cimport sum_, normalize_dims, as_dtype, acc_dtype, mean as mean_
from fastgrad._core.ops_view cimport reshape_c, expand_c
from fastgrad._core.ops_view import flip
from fastgrad._core.ops_select import sign
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.ops_unary cimport unary
from fastgrad._core.ops_select cimport where_, zeros_grad
from fastgrad._core.kernels cimport OP_ABS, OP_EXP, OP_SQRT
from fastgrad._core.formula cimport record
from fastgrad._core.promotion cimport promote_tt, broadcast_shapes
from fastgrad._core.dtypes cimport scalar_type_name

cnp.import_array()




cdef inline bint _rec(TensorBase a):
    return a._requires_grad and grad_enabled()


cdef tuple _axes(TensorBase a, object dim, str op):
    """dim (None/int/sequence; () means all) -> sorted axes tuple."""
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):
        return tuple(range(a._data.ndim))
    return normalize_dims(dim, a._data.ndim, op)


cdef tuple _kept_shape(tuple shape, tuple axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


cdef object _keep(TensorBase g, tuple in_shape, tuple axes, bint keepdim):
    """A reduction's output (or its gradient) with the reduced axes back as size 1."""
    if keepdim:
        return g
    return reshape_c(g, _kept_shape(in_shape, axes))


cdef void _need_float(cnp.ndarray x, str op) except *:
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}(): input dtype should be floating point, but got {x.dtype}; "
                           f"convert first, e.g. x.float()")


# --- var / std -----------------------------------------------------------------------------------

cdef object _correction(object unbiased, object correction):
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _var_std(input, dim, unbiased, keepdim, correction, False)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _var_std(input, dim, unbiased, keepdim, correction, True)


cdef object _var_std(TensorBase a, object dim, object unbiased, bint keepdim, object correction,
                     bint is_std):
    cdef VarStdBackward node
    if isinstance(dim, bool):                        # legacy x.var(False)
        unbiased, dim = dim, None
    x = <object>a._data
    _need_float(x, "std" if is_std else "var")
    c = _correction(unbiased, correction)
    axes = _axes(a, dim, "var")
    n = 1
    for ax in axes:
        n *= _shape(a)[ax]
    # float32/float16 accumulate in float64, as PyTorch's CPU kernel does: squares of 3e19 fit,
    # so std([3e19, -3e19]) is 4.24e19, not inf (var itself still overflows float32 there)
    xa = x.astype(np.float64) if x.dtype.itemsize < 8 else x
    mu = np.mean(xa, axis=axes, keepdims=True) if n else np.zeros(_kept_shape(_shape(a), axes),
                                                                    xa.dtype)
    denom = max(0, n - c)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = np.sum((xa - mu) ** 2, axis=axes, keepdims=keepdim) / denom
    r = np.sqrt(v) if is_std else v
    with np.errstate(over="ignore"):
        out = wrap(np.asarray(r, dtype=x.dtype))
    if _rec(a):
        node = (StdBackward0.__new__(StdBackward0) if is_std else VarBackward0.__new__(VarBackward0))
        node.self_ = save(a, False)
        node.axes = axes
        node.keepdim = keepdim
        node.denom = denom
        if is_std:
            set_history1(out, node, a)
            node.result = save(out, True)
        else:
            set_history1(out, node, a)
    return out


cdef class VarStdBackward(Node):
    """var: grad_x = g * 2 (x - mean) / (N - correction); std: that / (2 std), 0 where std = 0"""
    cdef SavedVar self_, result
    cdef tuple axes
    cdef bint keepdim
    cdef object denom

    cdef tuple apply(self, tuple grads):
        cdef TensorBase x = self.self_.unpack(self)
        g = _keep(grads[0], _shape(x), self.axes, self.keepdim)
        centered = pw.sub(x, _keep(_mean(x, self.axes), _shape(x), self.axes, False))
        if self.result is None:
            return (pw.mul(g, pw.div(pw.mul(centered, 2.0), self.denom)),)
        s = _keep(self.result.unpack(self), _shape(x), self.axes, self.keepdim)
        zero = wrap(np.asarray((<TensorBase>s)._data == 0))
        safe = where_(zero, 1.0, s)
        return (where_(zero, 0.0, pw.mul(g, pw.div(centered, pw.mul(safe, self.denom)))),)

    cdef void release_variables(self):
        self.self_.release()
        if self.result is not None:
            self.result.release()


cdef object _mean(TensorBase x, tuple axes):
    """x's mean over axes, rounded once (a float16 sum rounded before its division put the
    mean of values near 100 an ulp off, and var's gradient 2 (x - mean) / N with it)."""
    if not axes:
        return x
    return mean_(x, axes, False)


@cython.final
cdef class VarBackward0(VarStdBackward):
    pass


@cython.final
cdef class StdBackward0(VarStdBackward):
    pass


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            input.mean(dim if dim is not None else None, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (std(input, dim, unbiased, keepdim, correction=correction),
            input.mean(dim if dim is not None else None, keepdim))


# --- prod ----------------------------------------------------------------------------------------

def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements (ProdBackward0) or along dim (ProdBackward1)."""
    cdef TensorBase a = as_dtype(input, dtype, "prod"), out
    cdef ProdBackward node
    x = <object>a._data
    odt = np.int64 if x.dtype.kind in "biu" else x.dtype
    pdt = np.float32 if odt == np.float16 else odt      # float16 multiplied in float32
    if dim is None:
        axes = tuple(range(x.ndim))
        with np.errstate(over="ignore"):        # float32's product beyond float16: inf
            out = wrap(np.asarray(np.prod(x, dtype=pdt), dtype=odt).reshape(()))
        keepdim = False
    else:
        d = wrap_dim(dim, x.ndim, "prod")
        axes = (d,) if x.ndim else ()
        with np.errstate(over="ignore"):
            out = wrap(np.asarray(np.prod(x, axis=axes, dtype=pdt, keepdims=keepdim), dtype=odt))
    if _rec(a):
        node = (ProdBackward0.__new__(ProdBackward0) if dim is None
                else ProdBackward1.__new__(ProdBackward1))
        node.self_ = save(a, False)
        node.axes = axes
        node.keepdim = keepdim
        set_history1(out, node, a)
    return out


cdef class ProdBackward(Node):
    """grad_x = g * prod / x when x has no zeros (PyTorch's rule, so an underflowed or infinite
    product gives what PyTorch gives; recorded, for double backward), else g * (product of the
    other elements of x's slice) from exclusive products, exact with zeros."""
    cdef SavedVar self_
    cdef tuple axes
    cdef bint keepdim

    cdef tuple apply(self, tuple grads):
        cdef TensorBase x = self.self_.unpack(self)
        g = _keep(grads[0], _shape(x), self.axes, self.keepdim)
        xd = <object>x._data
        if xd.size and (xd != 0).all():
            p = _keep(prod(x, None) if len(self.axes) != 1 or xd.ndim == 0 else
                      prod(x, self.axes[0], True), _shape(x), self.axes, True)
            if len(self.axes) != 1 and xd.ndim:
                p = reshape_c(p, (1,) * xd.ndim)
            return (pw.mul(g, pw.div(p, x)),)
        return (pw.mul(g, wrap(_others_product(xd, self.axes))),)


cdef cnp.ndarray _others_product(object x, tuple axes):
    """For every element, the product of the other elements over `axes` (exact with zeros)."""
    if x.ndim == 0:
        return np.ones((), dtype=x.dtype)
    if x.size == 0:                                      # nothing to differentiate
        return np.zeros((<object>x).shape, dtype=x.dtype)
    rest = [i for i in range(x.ndim) if i not in axes]
    perm = rest + list(axes)
    y = np.transpose(x, perm)
    lead = y.shape[:len(rest)]
    flat = y.reshape(lead + (-1,))
    ones = np.ones(lead + (1,), dtype=x.dtype)
    left = np.concatenate([ones, np.cumprod(flat, axis=-1)[..., :-1]], axis=-1)
    right = np.concatenate([np.cumprod(flat[..., ::-1], axis=-1)[..., :-1][..., ::-1], ones],
                           axis=-1)
    r = (left * right).reshape(y.shape)
    return np.ascontiguousarray(np.transpose(r, np.argsort(perm)))


@cython.final
cdef class ProdBackward0(ProdBackward):
    pass


@cython.final
cdef class ProdBackward1(ProdBackward):
    pass


# --- cumsum --------------------------------------------------------------------------------------

def cumsum(input, dim, *, dtype=None):
    cdef TensorBase a = as_dtype(input, dtype, "cumsum"), out
    cdef CumsumBackward0 node
    x = <object>a._data
    d = wrap_dim(dim, x.ndim, "cumsum")
    odt = np.int64 if x.dtype.kind in "biu" else x.dtype
    acc = acc_dtype(x, (d,), True) if x.ndim else None    # Note [Sums' accumulators]
    out = wrap(np.asarray(np.cumsum(x, axis=d, dtype=odt) if x.ndim else x.astype(odt))
               if acc is None else np.cumsum(x, axis=d, dtype=acc).astype(odt))
    if _rec(a):
        node = CumsumBackward0.__new__(CumsumBackward0)
        node.dim = d
        set_history1(out, node, a)
    return out


@cython.final
cdef class CumsumBackward0(Node):
    """grad_x = reversed cumsum of g along dim"""
    cdef int dim

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        if g._data.ndim == 0:
            return (g,)
        return (flip(cumsum(flip(g, self.dim), self.dim), self.dim),)


# --- logsumexp -----------------------------------------------------------------------------------

def logsumexp(input, dim=None, keepdim=False):
    """log(sum(exp(x))) over dim, stably (the max is taken out first)."""
    cdef TensorBase a = input, out
    cdef LogsumexpBackward0 node
    x = <object>a._data
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    axes = _axes(a, dim, "logsumexp")
    if x.size == 0:                             # log(0) = -inf, as PyTorch, without a warning
        with np.errstate(divide="ignore"):
            r = np.log(np.sum(np.exp(x), axis=axes, keepdims=keepdim))
    else:
        acc = acc_dtype(x, axes, False)     # Note [Sums' accumulators]
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
        r = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True, dtype=acc)) + m
        if not keepdim:
            r = r.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))
    out = wrap(np.asarray(r, dtype=x.dtype))
    if _rec(a):
        node = LogsumexpBackward0.__new__(LogsumexpBackward0)
        node.self_ = save(a, False)
        node.axes = axes
        node.keepdim = keepdim
        set_history1(out, node, a)
        node.result = save(out, True)
    return out


@cython.final
cdef class LogsumexpBackward0(Node):
    """grad_x = g * exp(x - result)"""
    cdef SavedVar self_, result
    cdef tuple axes
    cdef bint keepdim

    cdef tuple apply(self, tuple grads):
        cdef TensorBase x = self.self_.unpack(self)
        sh = _shape(x)
        g = _keep(grads[0], sh, self.axes, self.keepdim)
        r = _keep(self.result.unpack(self), sh, self.axes, self.keepdim)
        return (pw.mul(g, unary(OP_EXP, pw.sub(x, r))),)

    cdef void release_variables(self):
        self.self_.release()
        self.result.release()


# --- amax / amin ---------------------------------------------------------------------------------

def amax(input, dim=(), keepdim=False):
    return _amaxmin(input, dim, keepdim, True)


def amin(input, dim=(), keepdim=False):
    return _amaxmin(input, dim, keepdim, False)


cdef object _amaxmin(TensorBase a, object dim, bint keepdim, bint is_max):
    cdef AmaxminBackward node
    cdef str name = "amax" if is_max else "amin"
    x = <object>a._data
    if x.size == 0 and (dim is None or not isinstance(dim, int) and len(dim) == 0):
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                           f"== 0. Specify the reduction dim with the 'dim' argument.")
    axes = _axes(a, dim, name)
    for ax in axes:
        if _shape(a)[ax] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {ax} to have non-zero size.")
    f = np.max if is_max else np.min
    r = f(x, axis=axes, keepdims=True) if x.ndim else x.copy()
    out = wrap(np.asarray(r if keepdim else r.reshape(
        tuple(s for i, s in enumerate(x.shape) if i not in axes))))
    if _rec(a):
        node = (AmaxBackward0.__new__(AmaxBackward0) if is_max
                else AminBackward0.__new__(AminBackward0))
        mask = (x == r)
        node.share = wrap((mask / np.sum(mask, axis=axes, keepdims=True)).astype(x.dtype))
        node.in_shape = _shape(a)
        node.axes = axes
        node.keepdim = keepdim
        set_history1(out, node, a)
    return out


cdef class AmaxminBackward(Node):
    """grad_x = g spread evenly over the elements equal to the extreme of their slice"""
    cdef TensorBase share
    cdef tuple in_shape, axes
    cdef bint keepdim

    cdef tuple apply(self, tuple grads):
        # product: as PyTorch
        return (pw.mul(_keep(grads[0], self.in_shape, self.axes, self.keepdim), self.share),)

    cdef void release_variables(self):
        self.share = None


@cython.final
cdef class AmaxBackward0(AmaxminBackward):
    pass


@cython.final
cdef class AminBackward0(AmaxminBackward):
    pass


# --- argmax / argmin / all / any (no gradient) ---------------------------------------------------

def argmax(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, True)


def argmin(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, False)


cdef object _arg(TensorBase a, object dim, bint keepdim, bint is_max):
    x = <object>a._data
    name = "argmax" if is_max else "argmin"
    f = np.argmax if is_max else np.argmin
    if x.size == 0 and (dim is None or x.ndim == 0 or _shape(a)[wrap_dim(dim, x.ndim, name)] == 0):
        raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                         f"== 0." if dim is None else f"{name}(): Expected reduction dim "
                         f"{dim} to have non-zero size.")
    if dim is not None:
        wrap_dim(dim, x.ndim, name)
    if dim is None or x.ndim == 0:
        r = np.asarray(f(x)).reshape((1,) * x.ndim if keepdim else ())
    else:
        d = wrap_dim(dim, x.ndim, name)
        r = f(x, axis=d, keepdims=keepdim)
    return wrap(np.asarray(r, dtype=np.int64))


def all(input, dim=None, keepdim=False):
    return _allany(input, dim, keepdim, True)


def any(input, dim=None, keepdim=False):
    return _allany(input, dim, keepdim, False)


cdef object _allany(TensorBase a, object dim, bint keepdim, bint is_all):
    x = <object>a._data
    f = np.all if is_all else np.any
    axes = _axes(a, dim, "all" if is_all else "any")
    return wrap(np.asarray(f(x, axis=axes, keepdims=keepdim) if x.ndim else f(x)))


# --- norm ----------------------------------------------------------------------------------------

def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over dim (all elements when dim is None): p = 2/'fro', any number, inf."""
    cdef TensorBase a = input, out
    cdef LinalgVectorNormBackward0 node
    x = <object>a._data
    _need_float(x, "norm")
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):
        raise RuntimeError(f"norm: p='{p}' is not supported; use a number, inf or 'fro'")
    p = float(p)
    axes = _axes(a, dim, "norm")
    acc = acc_dtype(x, axes, False)     # Note [Sums' accumulators]
    if x.dtype.itemsize < 4:            # float16's squares and powers in float32, as PyTorch
        x = x.astype(np.float32)
    absx = np.abs(x)
    if abs(p) == np.inf and 0 in [x.shape[i] for i in axes]:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {'inf' if p > 0 else '-inf'} "
                           f"norm on an empty tensor because the operation does not have an "
                           f"identity (reduce over non-empty dims only)")
    if p == np.inf:
        r = np.max(absx, axis=axes, keepdims=True) if x.size else np.zeros(
            _kept_shape(x.shape, axes), x.dtype)
    elif p == -np.inf:
        r = np.min(absx, axis=axes, keepdims=True)
    elif p == 0:
        r = np.count_nonzero(absx, axis=axes, keepdims=True).astype(x.dtype)
    elif p == 2:
        r = np.sqrt(np.sum(x * x, axis=axes, keepdims=True, dtype=acc))
    elif p == 1:
        r = np.sum(absx, axis=axes, keepdims=True, dtype=acc)
    else:
        with np.errstate(divide="ignore", over="ignore"):   # 0 ** -1 = inf: a result, as in PyTorch
            r = np.sum(absx ** p, axis=axes, keepdims=True, dtype=acc) ** (1.0 / p)
    if not keepdim:
        r = r.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))
    out = wrap(np.asarray(r, dtype=a._data.dtype))
    if _rec(a):
        node = LinalgVectorNormBackward0.__new__(LinalgVectorNormBackward0)
        node.self_ = save(a, False)
        node.p = p
        node.axes = axes
        node.keepdim = keepdim
        set_history1(out, node, a)
        node.result = save(out, True)
    return out


@cython.final
cdef class LinalgVectorNormBackward0(Node):
    """p=2: g x / n; p=1: g sign(x); inf: g sign(x) spread over the maxima;
    other p: g sign(x) |x|^(p-1) / n^(p-1). Zero where the norm is zero."""
    cdef SavedVar self_, result
    cdef double p
    cdef tuple axes
    cdef bint keepdim

    cdef tuple apply(self, tuple grads):
        return (norm_backward(grads[0], self.self_.unpack(self), self.result.unpack(self), self.p,
                              self.axes, self.keepdim),)

    cdef void release_variables(self):
        self.self_.release()
        self.result.release()


cdef object norm_backward(object grad, TensorBase x, object result, double p, tuple axes,
                          bint keepdim):
    """The gradient of the p-norm of x over axes (result: the norm), in recorded ops: the rule of
    norm's node and of dist's (the norm of a difference)."""
    sh = _shape(x)
    g = _keep(grad, sh, axes, keepdim)
    n = _keep(result, sh, axes, keepdim)
    if p == 0:
        return zeros_grad(x)
    if p == 1:
        return pw.mul(g, sign(x))
    zero = wrap(np.asarray((<TensorBase>n)._data == 0))
    safe = where_(zero, 1.0, n)
    if p == np.inf or p == -np.inf:
        absx = unary(OP_ABS, x)
        mask = ((<TensorBase>absx)._data == (<TensorBase>n)._data)
        share = wrap((mask / np.sum(mask, axis=axes, keepdims=True)).astype(x._data.dtype))
        return pw.mul(pw.mul(g, sign(x)), share)  # product: as PyTorch
    # grad times the local derivative, which is 0 where the norm is 0 and, for p < 1, where
    # x is 0 (|x|^(p-1) is inf there): the select is inside, the product with grad outside,
    # as in PyTorch (an inf grad at a zero norm gives NaN there too)
    if p == 2:
        d = pw.div(x, safe)
    else:
        ax = unary(OP_ABS, x)
        if p < 1:
            ax = where_(wrap(np.asarray(x._data == 0)), 1.0, ax)
        d = pw.div(pw.mul(sign(x), pw.pow_(ax, p - 1)), pw.pow_(safe, p - 1))
    return pw.mul(g, where_(zero, 0.0, d))


# --- dist ----------------------------------------------------------------------------------------

def _r_dist(g, s, e):
    a, b, out = s
    cdef TensorBase diff = pw.sub(a, b)
    d = norm_backward(g, diff, out, e, tuple(range(diff._data.ndim)), False)
    return (d, pw.mul(d, -1.0))


def dist(input, other, p=2):
    """The p-norm of input - other (broadcast together, flattened): p = 2 by default, any
    number, 0 (the count of differences), inf or -inf. Its gradient is norm's, 0 where the
    norm is 0."""
    if not isinstance(input, TensorBase):
        raise TypeError(f"dist(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if not isinstance(other, TensorBase):
        raise TypeError(f"dist(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}; make it one with fastgrad.tensor(...)")
    if isinstance(p, TensorBase):
        p = (<TensorBase>p)._data.item()
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dist(): argument 'p' (position 3) must be Number, not "
                        f"{type(p).__name__}; pass a number, inf or -inf")
    cdef TensorBase a = input, b = other
    broadcast_shapes(_shape(a), _shape(b), "dist")
    dt = promote_tt(a._data, b._data)
    if dt.kind != "f":
        raise RuntimeError(f"norm(): input dtype should be either floating point or complex. "
                           f"Got {scalar_type_name(dt)} instead; convert with .float() first")
    diff = pw.sub(wrap(a._data), wrap(b._data))          # not recorded: the node is dist's own
    cdef TensorBase out = norm(diff, p)
    return record(out, "DistBackward0", _r_dist, (a, b), (a, b), True, float(p))


# --- count_nonzero -------------------------------------------------------------------------------

def count_nonzero(input, dim=None):
    """The number of elements that are not zero (NaN counts), over dim (None: all; an int or a
    sequence), as an int64 tensor without a gradient."""
    cdef TensorBase a = tensor_arg(input, "count_nonzero")
    x = a._data
    axes = _axes(a, dim, "count_nonzero") if dim is not None else None
    return wrap(np.asarray(np.count_nonzero(x, axis=axes), dtype=np.int64))


# --- nansum --------------------------------------------------------------------------------------

def _r_nansum(g, s, e):
    cdef TensorBase x = s[0]
    axes, keepdim = e
    # the engine casts the result back to the input's dtype (after a sum with dtype=)
    return (where_(wrap(np.asarray(np.isnan(x._data))), 0.0, _keep(g, _shape(x), axes, keepdim)),)


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """sum with NaNs counted as 0 (dim: None or () for all dims, an int or a sequence); dtype=
    as sum's. Its gradient is 0 at the NaNs."""
    cdef TensorBase a = tensor_arg(input, "nansum")
    x = a._data
    axes = _axes(a, dim, "nansum")
    clean = wrap(np.asarray(np.where(np.isnan(x), 0, x)) if x.dtype.kind == "f" else x)
    # all dims: sum's own path for them (the same bits as x.sum() without the NaNs)
    every = dim is None or (not isinstance(dim, int) and len(dim) == 0)
    out = sum_(as_dtype(clean, dtype, "nansum"), None if every else axes, keepdim)
    if (<TensorBase>out)._data.dtype.kind != "f":
        return out                          # integer results carry no gradient
    return record(out, "NansumBackward0", _r_nansum, (a,), (a,), False, (axes, bool(keepdim)))

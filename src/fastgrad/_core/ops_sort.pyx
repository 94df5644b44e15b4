# cython: boundscheck=False, wraparound=False
"""Sorting, selection and scans: sort, argsort, msort, topk, kthvalue, cummax, cummin, cumprod.

Each forward finds its indices with NumPy (a stable sort, or an accumulate), gathers the values,
and records a node whose rule scatters the gradient back through those indices (Note [Formula
nodes] in formula.pyx). Order rules are PyTorch's: NaN sorts above +inf, ties keep their input
order (both directions), cummax/cummin point at the latest of equal extremes and stay on a NaN
once one is seen.
"""
cimport numpy as cnp

from collections import namedtuple

import numpy as np

from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.tensor cimport tensor_arg as _input
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.formula cimport record
from fastgrad._core.ops_join import stack

cnp.import_array()

return_types_sort = namedtuple("sort", ["values", "indices"])
return_types_topk = namedtuple("topk", ["values", "indices"])
return_types_kthvalue = namedtuple("kthvalue", ["values", "indices"])
return_types_cummax = namedtuple("cummax", ["values", "indices"])
return_types_cummin = namedtuple("cummin", ["values", "indices"])




cdef object _sort_key(cnp.ndarray x, bint descending):
    """Stable argsort along the last axis with NaN above everything, either direction."""
    if x.dtype.kind == "b":
        x = x.astype(np.int8)
    if not descending:
        return np.argsort(x, axis=-1, kind="stable")
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        # lexsort's last key is primary: NaN first, then larger values first
        return np.lexsort((np.where(nan, 0, -x.astype(np.float64)), ~nan), axis=-1)
    return np.argsort(~x, axis=-1, kind="stable")     # ~x = -x - 1: decreasing, never overflows


def _r_take(g, s, e):
    """The gradient of values = take_along_dim(input, indices, dim): scattered back."""
    dim, indices, shape = e
    return (g.new_zeros(shape).scatter_add(dim, indices, g),)


cdef object _taken(TensorBase a, object idx, int dim, str node, bint keepdim_flat):
    """values = a gathered at idx (an int64 array shaped like the result) along dim, recorded."""
    cdef cnp.ndarray x = a._data
    vals = np.take_along_axis(x, idx, axis=dim) if x.ndim else x.copy()
    out = wrap(np.asarray(vals, order="C"))
    ind = wrap(np.asarray(idx, dtype=np.int64, order="C"))
    if a._requires_grad:
        record(out, node, _r_take, (a,), (), False, (dim, ind, tuple((<object>x).shape)))
    return out, ind


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along dim; ties keep input order; NaN counts as the largest."""
    cdef TensorBase a = _input(input, "sort")
    cdef cnp.ndarray x = a._data
    cdef int d = wrap_dim(dim, x.ndim, "sort")
    if x.ndim == 0:
        return return_types_sort(*_taken(a, np.zeros((), np.int64), 0, "SortBackward0", False))
    idx = np.moveaxis(_sort_key(np.moveaxis(x, d, -1), descending), -1, d)
    return return_types_sort(*_taken(a, idx, d, "SortBackward0", False))


def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable)[1]


def msort(input):
    return sort(input, 0)[0]


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) along dim, in order; among equal values the earlier come
    first (PyTorch's order among ties is an implementation detail of its selection)."""
    cdef TensorBase a = _input(input, "topk")
    cdef cnp.ndarray x = a._data
    cdef int d = wrap_dim(dim, x.ndim, "topk")
    size = x.shape[d] if x.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"topk: selected index k out of range: k = {k} but the dimension "
                           f"has size {size}; k must be between 0 and the size of dim {dim}")
    if x.ndim == 0:
        return return_types_topk(*_taken(a, np.zeros((), np.int64), 0, "TopkBackward0", False))
    order = _sort_key(np.moveaxis(x, d, -1), largest)[..., :k]
    return return_types_topk(*_taken(a, np.moveaxis(order, -1, d), d, "TopkBackward0", False))


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest along dim (1-based k) and its index."""
    cdef TensorBase a = _input(input, "kthvalue")
    cdef cnp.ndarray x = a._data
    cdef int d = wrap_dim(dim, x.ndim, "kthvalue")
    size = x.shape[d] if x.ndim else 1
    if not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}: "
                           f"k = {k}, but the dimension has size {size}; k counts from 1")
    if x.ndim == 0:
        return return_types_kthvalue(*_taken(a, np.zeros((), np.int64), 0, "KthvalueBackward0",
                                             False))
    idx = _sort_key(np.moveaxis(x, d, -1), False)[..., k - 1:k]
    idx = np.moveaxis(idx, -1, d)
    vals, ind = _taken(a, idx, d, "KthvalueBackward0", False)
    if not keepdim:
        vals, ind = vals.squeeze(d), ind.squeeze(d)
    return return_types_kthvalue(vals, ind)


cdef object _cum_extreme(object input, int dim, bint is_max, str name):
    cdef TensorBase a = _input(input, name)
    cdef cnp.ndarray x = a._data
    cdef int d = wrap_dim(dim, x.ndim, name)
    rt = return_types_cummax if is_max else return_types_cummin
    node = "CummaxBackward0" if is_max else "CumminBackward0"
    if x.ndim == 0 or x.size == 0:
        return rt(*_taken(a, np.zeros((<object>x).shape, np.int64), d if x.ndim else 0, node,
                          False))
    idx = np.moveaxis(_extreme_indices(np.moveaxis(x, d, 0), is_max), 0, d)
    return rt(*_taken(a, idx, d, node, False))


cdef object _extreme_indices(object x, bint is_max):
    """Index of the running max (min) along axis 0: the latest of equal values; once a NaN is
    seen, the running value stays NaN and its index stays that NaN's."""
    n = x.shape[0]
    idx = np.zeros(x.shape, dtype=np.int64)
    best = x[0].copy()
    cur = np.zeros(x.shape[1:], dtype=np.int64)
    floating = x.dtype.kind == "f"
    stuck = np.isnan(best) if floating else None
    for i in range(1, n):
        v = x[i]
        take = (v >= best) if is_max else (v <= best)
        if floating:
            vnan = np.isnan(v)
            take = (take | vnan) & ~stuck
            stuck = stuck | vnan
        best = np.where(take, v, best)
        cur = np.where(take, i, cur)
        idx[i] = cur
    return idx


def cummax(input, dim):
    return _cum_extreme(input, dim, True, "cummax")


def cummin(input, dim):
    return _cum_extreme(input, dim, False, "cummin")


def _r_cumprod(g, s, e):
    """d/dx_k sum_i g_i prod_{j<=i} x_j = prod_{j<k} x_j * S_k, S_k = g_k + x_{k+1} S_{k+1}:
    a reverse scan, exact with zeros in x (no division)."""
    x, = s
    dim, = e
    if x.dim() == 0:                # the product of one value: the value itself
        return (g,)
    n = x.shape[dim]
    if n == 0:
        return (g * 0,)
    xs = x.unbind(dim)
    gs = g.unbind(dim)
    suffix = [None] * n
    acc = gs[n - 1]
    suffix[n - 1] = acc
    for k in range(n - 2, -1, -1):
        acc = gs[k] + xs[k + 1] * acc
        suffix[k] = acc
    prefix = xs[0] * 0 + 1
    out = []
    for k in range(n):
        out.append(prefix * suffix[k])
        prefix = prefix * xs[k]
    return (stack(out, dim),)


def cumprod(input, dim, *, dtype=None):
    """Running product along dim; its gradient is exact where inputs are zero."""
    cdef TensorBase a = _input(input, "cumprod")
    cdef cnp.ndarray x = a._data
    cdef int d = wrap_dim(dim, x.ndim, "cumprod")
    if dtype is not None:
        a = a.to(dtype)
        x = a._data
    elif x.dtype.kind in "biu":
        x = x.astype(np.int64)
    # float16 multiplied in float32 and rounded once, as prod: a float16 running product
    # overflowed midway (300 * 300 * 0.5 gave inf)
    pdt = np.float32 if x.dtype == np.float16 else None
    with np.errstate(over="ignore"):
        out = wrap(np.asarray(np.cumprod(x, axis=d, dtype=pdt) if x.ndim else x.copy(),
                              dtype=x.dtype, order="C"))
    return record(out, "CumprodBackward0", _r_cumprod, (a,), (a,), False, (d,))


#: name -> function: each is a `fastgrad.<name>` function and a `Tensor.<name>` method.
FUNCTIONS = {f.__name__: f for f in (sort, argsort, msort, topk, kthvalue, cummax, cummin,
                                     cumprod)}

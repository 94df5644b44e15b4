# cython: boundscheck=False, wraparound=False
"""Writing through indices and masks: scatter, scatter_reduce, index_add, index_copy,
index_fill, masked_scatter, masked_select; and the index finders nonzero, unique, bucketize,
searchsorted.

Forwards run on NumPy after the indices are checked (PyTorch's messages: an out-of-range index
names the index, the dimension and its size); backwards are rules of recorded ops (Note [Formula
nodes] in formula.pyx). `scatter_add`, `gather`, `index_select` and `masked_fill` are in
ops_index.
"""
cimport numpy as cnp

import numpy as np

from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.tensor cimport tensor_arg as _input
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.formula cimport record
from fastgrad._core.ops_select import where

cnp.import_array()




cdef object _index_array(object index, str name, int ndim_expected=-1):
    cdef TensorBase t = _input(index, name, "index")
    if t._data.dtype != np.int64:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index, got {t.dtype}; make the "
                           f"index with dtype=torch.long (or call .long() on it)")
    if ndim_expected >= 0 and t._data.ndim != ndim_expected and not (
            ndim_expected == 1 and t._data.ndim == 0):
        raise IndexError(f"{name}(): Index is supposed to be a vector, got a tensor of "
                         f"{t._data.ndim} dimensions")
    return t._data


cdef void _check_range(object idx, Py_ssize_t size, int dim, object error=RuntimeError,
                       bint negative=True) except *:
    """PyTorch's bound check: scatter raises RuntimeError, the index_* ops IndexError;
    index_add takes no negative index ("index out of range in self")."""
    if idx.size == 0:
        return
    lo, hi = idx.min(), idx.max()
    if lo < (-size if negative else 0) or hi >= size:
        bad = hi if hi >= size else lo
        raise error(f"index {bad} is out of bounds for dimension {dim} with size {size} "
                    f"(index out of range in self)")


cdef void _same_dtype(TensorBase a, TensorBase b, str name) except *:
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype, got "
                           f"{a.dtype} and {b.dtype}; convert src with .to(self.dtype)")


# --- scatter ---------------------------------------------------------------------------------------

cdef object _scatter_index(TensorBase a, int d, object idx, object src_shape, str name):
    """Check scatter's index against self (all dims but d) and src (all dims); return the
    index with negative entries wrapped."""
    xs = _shape(a)
    if idx.ndim != max(len(xs), 1) and idx.size:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as "
                           f"self tensor ({idx.ndim} vs {len(xs)})")
    for k in range(idx.ndim):
        if k != d and len(xs) and idx.shape[k] > xs[k]:
            raise RuntimeError(f"{name}(): Expected index {list(idx.shape)} to be smaller than "
                               f"self {list(xs)} apart from dimension {d}")
        if src_shape is not None and idx.shape[k] > src_shape[k]:
            raise RuntimeError(f"{name}(): Expected index {list(idx.shape)} to be smaller than "
                               f"src {list(src_shape)} in every dimension")
    size = xs[d] if len(xs) else 1
    _check_range(idx, size, d)
    return np.where(idx < 0, idx + size, idx)


cdef tuple _coords(object idx, int d):
    """The coordinates scatter writes to: index's own position in every dimension but d, the
    index value in d (the index may be smaller than self in the other dimensions)."""
    coords = list(np.indices(idx.shape, sparse=True))
    coords[d] = idx
    return tuple(coords)


def _r_scatter(g, s, e):
    dim, index, src_shape = e
    gin = g.scatter(dim, index, 0.0)
    if src_shape is None:
        return (gin,)
    return (gin, _embed(g.gather(dim, index), src_shape))


cdef object _embed(object part, tuple shape):
    """`part` (index-shaped) placed at the start of a zero tensor of `shape`: the gradient of
    a src larger than the index, of whose elements only the index-shaped corner was used."""
    if tuple(part.shape) == shape:
        return part
    full = part.new_zeros(shape)
    full[tuple(slice(0, n) for n in part.shape)] = part
    return full


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """out = input with out[index[i][j]][j] = src[i][j] (dim 0; likewise for other dims)."""
    cdef TensorBase a = _input(input, "scatter")
    cdef TensorBase s = None
    if src is None:
        src = value
    if reduce is not None:
        return _scatter_legacy_reduce(a, dim, index, src, reduce)
    d = wrap_dim(dim, a._data.ndim, "scatter")
    idx = _index_array(index, "scatter")
    if isinstance(src, TensorBase):
        s = <TensorBase>src
        _same_dtype(a, s, "scatter")
        idx = _scatter_index(a, d, idx, _shape(s), "scatter")
        vals = s._data[tuple(slice(0, n) for n in idx.shape)]
    else:
        idx = _scatter_index(a, d, idx, None, "scatter")
        vals = np.full(idx.shape, src, dtype=a._data.dtype)
    out = a._data.copy()
    if idx.size:
        out[_coords(idx, d)] = vals
    res = wrap(out)
    ind = wrap(np.asarray(idx, order="C"))
    if s is None:
        return record(res, "ScatterBackward1", _r_scatter, (a,), (), False, (d, ind, None))
    return record(res, "ScatterBackward0", _r_scatter, (a, s), (), False, (d, ind, _shape(s)))


cdef object _scatter_legacy_reduce(TensorBase a, object dim, object index, object src,
                                   str reduce):
    """scatter(..., reduce='add' | 'multiply'): PyTorch's older form; not differentiable."""
    if reduce not in ("add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce!r}")
    if not isinstance(src, TensorBase):
        src = wrap(np.full(_shape(_input(index, "scatter", "index")), src, a._data.dtype))
    return scatter_reduce(a.detach(), dim, index, src, "sum" if reduce == "add" else "prod")


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce src's values into input at index along dim with sum, prod, mean, amax or amin."""
    cdef TensorBase a = _input(input, "scatter_reduce")
    cdef TensorBase s = _input(src, "scatter_reduce", "src")
    if reduce not in _REDUCES:
        raise RuntimeError(f"reduce argument must be one of {', '.join(_REDUCES)}, got "
                           f"{reduce!r}")
    _same_dtype(a, s, "scatter_reduce")
    d = wrap_dim(dim, a._data.ndim, "scatter_reduce")
    idx = _scatter_index(a, d, _index_array(index, "scatter_reduce"), _shape(s),
                         "scatter_reduce")
    vals = s._data[tuple(slice(0, n) for n in idx.shape)]
    x = <object>a._data
    # flat positions in x of every src element
    if idx.ndim:
        flat = np.ravel_multi_index(_coords(idx, d), x.shape).ravel()
    else:
        flat = np.zeros(1, np.int64)
    v = vals.ravel()
    out = x.copy().ravel()
    counts = np.zeros(out.size, np.int64)
    np.add.at(counts, flat, 1)
    touched = counts > 0
    if reduce in ("sum", "mean"):
        acc = np.zeros(out.size, dtype=np.float64 if x.dtype.kind == "f" else np.int64)
        np.add.at(acc, flat, v)
        base = np.where(touched, out, 0) if include_self else np.zeros_like(out)
        total = base + acc
        if reduce == "mean":
            n = counts + (1 if include_self else 0)
            total = np.where(touched, total / np.maximum(n, 1), out)
            if x.dtype.kind in "biu":
                total = np.floor_divide(base + acc, np.maximum(n, 1))
                total = np.where(touched, total, out)
        out = np.where(touched, total, out).astype(x.dtype)
    elif reduce == "prod":
        acc = np.ones(out.size, dtype=x.dtype)
        np.multiply.at(acc, flat, v)
        out = np.where(touched, (out if include_self else 1) * acc, out).astype(x.dtype)
    else:
        ufunc = np.maximum if reduce == "amax" else np.minimum
        init = out.copy()
        if not include_self:
            fill = -np.inf if reduce == "amax" else np.inf
            if x.dtype.kind in "biu":
                info = np.iinfo(x.dtype)
                fill = info.min if reduce == "amax" else info.max
            init[touched] = fill
        ufunc.at(init, flat, v)
        out = init
    res = wrap(np.asarray(out.reshape(x.shape), order="C"))
    extra = (d, wrap(np.asarray(idx, order="C")), reduce, include_self,
             wrap(np.asarray(counts.reshape(x.shape), order="C")))
    return record(res, "ScatterReduceBackward0", _r_scatter_reduce, (a, s), (a, s), True, extra)


def _r_scatter_reduce(g, s, e):
    x, src, out = s
    dim, index, reduce, include_self, counts = e
    touched = counts > 0
    srcv = src
    if tuple(index.shape) != tuple(src.shape):
        srcv = src[tuple(slice(0, n) for n in index.shape)]
    if reduce == "sum":
        gx = g if include_self else g.masked_fill(touched, 0.0)
        gs = g.gather(dim, index)
    elif reduce == "mean":
        n = counts + (1 if include_self else 0)
        gm = g / n.clamp(min=1)
        gx = where(touched, gm, g) if include_self else g.masked_fill(touched, 0.0)
        gs = gm.gather(dim, index)
    elif reduce == "prod":
        if bool((x == 0).any()) or bool((srcv == 0).any()):
            raise RuntimeError("scatter_reduce(reduce='prod') backward with a zero among the "
                               "reduced values is not supported yet: the product of the "
                               "others is needed; add a tiny offset or use reduce='sum' on logs")
        gx = (g * out / x) if include_self else g.masked_fill(touched, 0.0)
        gs = (g * out).gather(dim, index) / srcv
    else:
        # amax/amin: the gradient is shared evenly by every value equal to the result
        hit_x = (x == out) if include_self else (x == out) & ~touched
        hit_s = srcv == out.gather(dim, index)
        ties = hit_x.to(g.dtype) + g.new_zeros(tuple(out.shape)).scatter_add(
            dim, index, hit_s.to(g.dtype))
        share = g / ties.clamp(min=1)
        gx = where(hit_x, share, 0.0)
        gs = where(hit_s, share.gather(dim, index), 0.0)
    return (gx, _embed(gs, tuple(src.shape)))


# --- index_* -----------------------------------------------------------------------------------

cdef object _index_prep(TensorBase a, object dim, object index, str name):
    d = wrap_dim(dim, a._data.ndim, name)
    idx = _index_array(index, name, 1).reshape(-1)
    size = _shape(a)[d] if a._data.ndim else 1
    _check_range(idx, size, d, IndexError, name != "index_add")
    return d, np.where(idx < 0, idx + size, idx)


cdef object _view_along(object arr, int d):
    return np.moveaxis(arr, d, 0) if arr.ndim else arr.reshape(1)


def _r_index_add(g, s, e):
    dim, index, alpha = e
    return (g, g.index_select(dim, index) * alpha)


def index_add(input, dim, index, source, *, alpha=1):
    """out = input; out[index[i]] += alpha * source[i] along dim (repeated indices add up)."""
    cdef TensorBase a = _input(input, "index_add")
    cdef TensorBase s = _input(source, "index_add", "source")
    _same_dtype(a, s, "index_add")
    d, idx = _index_prep(a, dim, index, "index_add")
    src = <object>s._data if s._data.ndim else s._data.reshape(1)
    if src.ndim != max(a._data.ndim, 1) or (idx.size and src.shape[d] != idx.size):
        raise RuntimeError(f"index_add(): source {list(_shape(s))} must have the same number of "
                           f"dimensions as self and {idx.size} entries along dim {d}")
    out = a._data.copy()
    np.add.at(_view_along(out, d), idx, _view_along(src, d) * alpha)
    res = wrap(out)
    return record(res, "IndexAddBackward0", _r_index_add, (a, s), (), False,
                  (d, wrap(idx.astype(np.int64)), alpha))


def _r_index_copy(g, s, e):
    dim, index = e
    return (g.index_fill(dim, index, 0.0), g.index_select(dim, index))


def index_copy(input, dim, index, source):
    """out = input; out[index[i]] = source[i] along dim."""
    cdef TensorBase a = _input(input, "index_copy")
    cdef TensorBase s = _input(source, "index_copy", "source")
    _same_dtype(a, s, "index_copy")
    d, idx = _index_prep(a, dim, index, "index_copy")
    src = <object>s._data if s._data.ndim else s._data.reshape(1)
    if idx.size and (src.ndim != max(a._data.ndim, 1) or src.shape[d] != idx.size):
        raise IndexError(f"index_copy(): source {list(_shape(s))} must have {idx.size} entries "
                         f"along dim {d}, one per index")
    out = a._data.copy()
    _view_along(out, d)[idx] = _view_along(src, d)
    res = wrap(out)
    return record(res, "IndexCopyBackward0", _r_index_copy, (a, s), (), False,
                  (d, wrap(idx.astype(np.int64))))


def _r_index_fill(g, s, e):
    dim, index = e
    return (g.index_fill(dim, index, 0.0),)


def index_fill(input, dim, index, value):
    """out = input with the slices at index along dim set to value."""
    cdef TensorBase a = _input(input, "index_fill")
    d, idx = _index_prep(a, dim, index, "index_fill")
    if isinstance(value, TensorBase):
        if (<TensorBase>value)._data.ndim:
            raise RuntimeError("index_fill_(): only supports a 0-dimensional value tensor, but "
                               f"got a tensor with {(<TensorBase>value)._data.ndim} dimensions")
        value = (<TensorBase>value)._data.item()
    out = a._data.copy()
    _view_along(out, d)[idx] = value
    res = wrap(out)
    return record(res, "IndexFillBackward0", _r_index_fill, (a,), (), False,
                  (d, wrap(idx.astype(np.int64))))


# --- masks -------------------------------------------------------------------------------------

cdef object _mask_array(object mask, str name):
    cdef TensorBase m = _input(mask, name, "mask")
    if m._data.dtype != np.bool_:
        raise RuntimeError(f"{name}: expected BoolTensor for mask, got {m.dtype}; make the mask "
                           f"with a comparison or .bool()")
    return m._data


def _r_masked_select(g, s, e):
    mask, shape = e
    out = g.new_zeros(shape)
    out[mask] = g
    return (out,)


def masked_select(input, mask):
    """The elements of input where mask (broadcast together) is True, as a 1-D tensor."""
    cdef TensorBase a = _input(input, "masked_select")
    m = _mask_array(mask, "masked_select")
    shape = np.broadcast_shapes(_shape(a), m.shape)
    x = np.broadcast_to(a._data, shape)
    mb = np.broadcast_to(m, shape)
    res = wrap(np.asarray(x[mb], order="C"))
    return record(res, "MaskedSelectBackward0", _r_masked_select, (a,), (), False,
                  (wrap(np.asarray(mb, order="C")), tuple(shape)))


def _r_masked_scatter(g, s, e):
    mask, n, src_shape = e
    gs = g.new_zeros((int(np.prod(src_shape)),))
    if n:
        gs[:n] = g[mask]
    return (g.masked_fill(mask, 0.0), gs.reshape(src_shape))


def masked_scatter(input, mask, source):
    """input with the positions where mask is True filled, in order, from source's elements."""
    cdef TensorBase a = _input(input, "masked_scatter")
    cdef TensorBase s = _input(source, "masked_scatter", "source")
    _same_dtype(a, s, "masked_scatter")
    m = np.broadcast_to(_mask_array(mask, "masked_scatter"), _shape(a))
    n = int(m.sum())
    if n > s._data.size:
        raise RuntimeError(f"masked_scatter: the mask selects {n} elements but source has only "
                           f"{s._data.size}; source needs at least as many elements as True "
                           f"entries in the mask")
    out = a._data.copy()
    out[m] = s._data.ravel()[:n]
    res = wrap(out)
    return record(res, "MaskedScatterBackward0", _r_masked_scatter, (a, s), (), False,
                  (wrap(np.asarray(m, order="C")), n, _shape(s)))


# --- finding indices (no gradient) -----------------------------------------------------------------

def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-D tensor per
    dimension with as_tuple=True."""
    cdef TensorBase a = _input(input, "nonzero")
    x = <object>a._data
    if as_tuple:
        if x.ndim == 0:
            return (wrap(np.nonzero(x.reshape(1))[0].astype(np.int64)),)
        return tuple(wrap(np.asarray(i, dtype=np.int64, order="C")) for i in np.nonzero(x))
    if x.ndim == 0:
        return wrap(np.zeros((1 if x.item() else 0, 0), np.int64))
    return wrap(np.asarray(np.argwhere(x), dtype=np.int64, order="C"))


def argwhere(input):
    return nonzero(input)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (sorted), optionally with each input's position among them and
    each value's count."""
    cdef TensorBase a = _input(input, "unique")
    x = <object>a._data
    if dim is not None:
        d = wrap_dim(dim, x.ndim, "unique")
        vals, inv, cnt = np.unique(x, axis=d, return_inverse=True, return_counts=True)
    else:
        vals, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)
        inv = inv.reshape(x.shape)
    res = [wrap(np.asarray(vals, order="C"))]
    if return_inverse:
        res.append(wrap(np.asarray(inv, dtype=np.int64, order="C")))
    if return_counts:
        res.append(wrap(np.asarray(cnt, dtype=np.int64, order="C")))
    return res[0] if len(res) == 1 else tuple(res)


def searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """For each value, the index where it would be inserted to keep the (last-dim) sorted
    sequence sorted: the first such index, or the last with right=True / side='right'."""
    cdef TensorBase seq = _input(sorted_sequence, "searchsorted", "sorted_sequence")
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side!r}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    how = "right" if right else "left"
    s = <object>seq._data
    v = (<TensorBase>values)._data if isinstance(values, TensorBase) else np.asarray(values)
    if sorter is not None:
        s = np.take_along_axis(s, _input(sorter, "searchsorted", "sorter")._data, axis=-1)
    if s.ndim <= 1:
        r = np.searchsorted(s, v, side=how)
    else:
        if s.shape[:-1] != v.shape[:-1]:
            raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension "
                               f"or the first N-1 dimensions of boundaries tensor and input "
                               f"value tensor must match, but we got boundaries tensor "
                               f"{list(s.shape)} and input value tensor {list(v.shape)}")
        flat_s = s.reshape(-1, s.shape[-1])
        flat_v = v.reshape(-1, v.shape[-1])
        r = np.stack([np.searchsorted(a, b, side=how) for a, b in zip(flat_s, flat_v)])
        r = r.reshape(v.shape)
    return wrap(np.asarray(r, dtype=np.int32 if out_int32 else np.int64, order="C"))


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """Index of the bucket of each input among 1-D sorted boundaries (PyTorch's `right`
    convention: right=False puts boundaries[i-1] < x <= boundaries[i] in bucket i)."""
    cdef TensorBase b = _input(boundaries, "bucketize", "boundaries")
    if b._data.ndim != 1:
        raise RuntimeError(f"bucketize only supports 1-D boundaries tensor, got "
                           f"{b._data.ndim} dimensions; use searchsorted for batched boundaries")
    x = (<TensorBase>input)._data if isinstance(input, TensorBase) else np.asarray(input)
    r = np.searchsorted(b._data, x, side="left" if not right else "right")
    return wrap(np.asarray(r, dtype=np.int32 if out_int32 else np.int64, order="C"))


#: name -> function: each is a `fastgrad.<name>` function and a `Tensor.<name>` method.
FUNCTIONS = {f.__name__: f for f in (scatter, scatter_reduce, index_add, index_copy, index_fill,
                                     masked_select, masked_scatter, nonzero, argwhere, unique)}
#: fastgrad.<name> functions only (not Tensor methods)
FREE_FUNCTIONS = {"searchsorted": searchsorted, "bucketize": bucketize}
#: ops with an in-place form Tensor.<name>_
INPLACE = ("scatter", "scatter_reduce", "index_add", "index_copy", "index_fill",
           "masked_scatter")

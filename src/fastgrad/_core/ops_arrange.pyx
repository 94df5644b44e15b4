# cython: boundscheck=False, wraparound=False
"""Rearranging and combining: triu, tril, roll, diff, meshgrid, tensordot, kron, cdist, and
F.pad's index maps.

triu/tril/roll record their own nodes (Note [Formula nodes] in formula.pyx); the others are
compositions of recorded ops (narrow, cat, reshape, expand, matmul, index_select), so their
gradients are the compositions' and need no rule of their own.
"""
cimport numpy as cnp

import warnings

import numpy as np

from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.tensor cimport tensor_arg as _input
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.formula cimport record
from fastgrad._core.ops_join import cat
from fastgrad._core.ops_matmul import matmul
from fastgrad._core.ops_select import where

cnp.import_array()


# --- triangles -----------------------------------------------------------------------------------

def _r_triu(g, s, e):
    return (triu(g, e),)


def _r_tril(g, s, e):
    return (tril(g, e),)


cdef object _triangle(object input, int diagonal, bint upper):
    name = "triu" if upper else "tril"
    cdef TensorBase a = _input(input, name)
    cdef object x = a._data
    if x.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions, got "
                           f"{x.ndim}; reshape a vector to a matrix first")
    out = wrap(np.asarray(np.triu(x, diagonal) if upper else np.tril(x, diagonal), order="C"))
    return record(out, "TriuBackward0" if upper else "TrilBackward0",
                  _r_triu if upper else _r_tril, (a,), (), False, diagonal)


def triu(input, diagonal=0):
    """The upper triangle (on and above `diagonal`) of the last two dims; the rest zero."""
    return _triangle(input, diagonal, True)


def tril(input, diagonal=0):
    """The lower triangle (on and below `diagonal`) of the last two dims; the rest zero."""
    return _triangle(input, diagonal, False)


# --- roll ----------------------------------------------------------------------------------------

def _r_roll(g, s, e):
    shifts, dims = e
    return (roll(g, tuple(-k for k in shifts), dims),)


def roll(input, shifts, dims=None):
    """Elements shifted along dims, wrapping around; with dims=None the flattened tensor is
    rolled and the shape restored."""
    cdef TensorBase a = _input(input, "roll")
    cdef object x = a._data
    sh = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
        if len(sh) != 1:
            raise RuntimeError(f"roll: shifts and dimensions must align; with dims=None give "
                               f"one shift, got {len(sh)}")
        out = np.roll(x.reshape(-1), sh[0]).reshape(x.shape)
        dm = None
    else:
        dm = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(sh) != len(dm):
            raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(sh)}, "
                               f"dims: {len(dm)}")
        dm = tuple(wrap_dim(d, x.ndim, "roll") for d in dm)
        out = np.roll(x, sh, dm) if x.ndim else x.copy()
    return record(wrap(np.asarray(out, order="C")), "RollBackward0", _r_roll, (a,), (), False,
                  (sh, dm))


# --- diff ----------------------------------------------------------------------------------------

def diff(input, n=1, dim=-1, prepend=None, append=None):
    """n-th forward difference along dim: out[i] = x[i + 1] - x[i], applied n times, after
    prepend/append are joined on (composed of recorded narrow, cat and sub)."""
    cdef TensorBase a = _input(input, "diff")
    if a._data.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = wrap_dim(dim, a._data.ndim, "diff")
    x = a
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        parts = [p if isinstance(p, TensorBase) and (<TensorBase>p)._data.ndim else
                 _broadcast_edge(p, a, d) for p in parts]
        x = cat(parts, d)
    if (<TensorBase>x)._data.dtype == np.bool_:
        for _ in range(n):
            length = x.shape[d]
            if length == 0:
                break
            x = x.narrow(d, 1, length - 1) ^ x.narrow(d, 0, length - 1)
        return x
    for _ in range(n):
        length = x.shape[d]
        if length == 0:
            break
        x = x.narrow(d, 1, length - 1) - x.narrow(d, 0, length - 1)
    return x


cdef object _broadcast_edge(object value, TensorBase like, int d):
    """A number or 0-d tensor given as prepend/append: one slice along d of like's shape."""
    shape = list((<object>like._data).shape)
    shape[d] = 1
    v = (<TensorBase>value)._data if isinstance(value, TensorBase) else value
    return wrap(np.full(shape, v, dtype=like._data.dtype))


# --- meshgrid ------------------------------------------------------------------------------------

def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors (views made with reshape and expand).
    indexing='ij' (PyTorch's default) or 'xy' (the first two dims swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                           f"received: {indexing}")
    for t in tensors:
        if _input(t, "meshgrid", "tensors")._data.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                               f"got a tensor of {t.dim()} dimensions")
    ts = [t.reshape(-1) for t in tensors]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    grids = []
    for i, t in enumerate(ts):
        view = [1] * len(ts)
        view[i] = shape[i]
        grids.append(t.reshape(view).expand(shape))
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


# --- products ------------------------------------------------------------------------------------

def tensordot(a, b, dims=2, out=None):
    """Sum over pairs of dims of a and b: dims=k pairs a's last k with b's first k; dims=(da, db)
    names them (permute + reshape + one matmul)."""
    _input(a, "tensordot", "a")
    _input(b, "tensordot", "b")
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da = list(range(a.dim() - dims, a.dim()))
        db = list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, int) else list(da)
        db = [db] if isinstance(db, int) else list(db)
        if hasattr(da, "tolist"):
            da = da.tolist()
        if len(da) != len(db):
            raise RuntimeError(f"both dimension lists should have same length, got {len(da)} "
                               f"and {len(db)}")
    da = [wrap_dim(d, a.dim(), "tensordot") for d in da]
    db = [wrap_dim(d, b.dim(), "tensordot") for d in db]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{a.shape[i]} in dim {i} and second has size {b.shape[j]} in "
                               f"dim {j}")
    fa = [d for d in range(a.dim()) if d not in da]
    fb = [d for d in range(b.dim()) if d not in db]
    k = int(np.prod([a.shape[d] for d in da])) if da else 1
    ma = a.permute(fa + da).reshape(-1, k)
    mb = b.permute(db + fb).reshape(k, -1)
    res = matmul(ma, mb).reshape([a.shape[d] for d in fa] + [b.shape[d] for d in fb])
    if out is not None:
        out.copy_(res.detach())
        return out
    return res


def kron(input, other):
    """Kronecker product: block (i, j) of the result is input[i, j] * other (any dims)."""
    _input(input, "kron")
    _input(other, "kron", "other")
    nd = max(input.dim(), other.dim())
    a = input.reshape([1] * (nd - input.dim()) + list(input.shape))
    b = other.reshape([1] * (nd - other.dim()) + list(other.shape))
    inter_a, inter_b = [], []
    for s in a.shape:
        inter_a += [s, 1]
    for s in b.shape:
        inter_b += [1, s]
    out_shape = [sa * sb for sa, sb in zip(a.shape, b.shape)]
    return (a.reshape(inter_a) * b.reshape(inter_b)).reshape(out_shape)


def _r_cdist2(g, s, e):
    """Euclidean distances: d dist_ij / d x1_i = (x1_i - x2_j) / dist_ij, 0 where dist_ij = 0
    (PyTorch's choice for the kink)."""
    x1, x2, dist = s
    safe = where(dist > 0, g / where(dist > 0, dist, 1.0), 0.0)
    g1 = x1 * safe.sum(-1, keepdim=True) - matmul(safe, x2)
    g2 = x2 * safe.sum(-2).unsqueeze(-1) - matmul(safe.transpose(-1, -2), x1)
    return (g1, g2)


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M)."""
    _input(x1, "cdist", "x1")
    _input(x2, "cdist", "x2")
    if x1.dim() < 2 or x2.dim() < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.dim()}D, X2 "
                           f"got: {x2.dim()}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    if p == 2:
        a = (<TensorBase>x1)._data.astype(np.float64)
        b = (<TensorBase>x2)._data.astype(np.float64)
        sq = ((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1)
        dist = wrap(np.sqrt(sq).astype((<TensorBase>x1)._data.dtype))
        return record(dist, "CdistBackward0", _r_cdist2, (x1, x2), (x1, x2), True, None)
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == 0:
        return (diff != 0).to(x1.dtype).sum(-1)
    if p == float("inf"):
        return diff.abs().amax(-1)
    if p == 1:
        return diff.abs().sum(-1)
    return (diff.abs() ** p).sum(-1) ** (1.0 / p)


# --- padding index maps (F.pad's reflect, replicate and circular modes) --------------------------

def pad_index(Py_ssize_t size, Py_ssize_t before, Py_ssize_t after, str mode):
    """The source index of every output position along one padded dimension."""
    pos = np.arange(-before, size + after)
    if mode == "reflect":
        if before >= size or after >= size:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                               f"input dimension, but got: padding ({before}, {after}) at "
                               f"dimension of size {size}")
        period = 2 * (size - 1)
        m = np.mod(pos, period) if period else np.zeros_like(pos)
        idx = np.where(m < size, m, period - m)
    elif mode == "replicate":
        idx = np.clip(pos, 0, size - 1)
    else:   # circular
        if before > size or after > size:
            raise RuntimeError(f"Padding value causes wrapping around more than once: padding "
                               f"({before}, {after}) at dimension of size {size}")
        idx = np.mod(pos, size)
    return wrap(np.asarray(idx, dtype=np.int64, order="C"))


#: name -> function: each is a `fastgrad.<name>` function and a `Tensor.<name>` method.
FUNCTIONS = {f.__name__: f for f in (triu, tril, roll, diff, kron)}
#: fastgrad.<name> functions only
FREE_FUNCTIONS = {f.__name__: f for f in (meshgrid, tensordot, cdist)}
INPLACE = ("triu", "tril")

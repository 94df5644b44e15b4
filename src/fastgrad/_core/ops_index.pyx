# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Indexing: x[key] (ints, slices with steps, None, ..., integer and boolean arrays), select,
narrow, gather, scatter_add, index_select, masked_fill, take_along_dim. x[key] = v and in-place
writes through views (CopySlices) live in ops_setitem.pyx.

Every index is validated here, once, before NumPy sees it: an out-of-range index raises
IndexError naming the index, the dim and its size. Basic keys give views (no copy); keys with an
integer/boolean array give copies (IndexBackward0). Gradients are written with the flat-position
primitives of ops_strided (Note [Flat positions]) or with this module's own recorded ops.
"""
cimport cython
cimport numpy as cnp
import warnings

import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history, set_history1
from fastgrad._core.ops_reduce cimport sum_
from fastgrad._core.ops_strided cimport _rec, make_view, strided_view
from fastgrad._core.ops_view cimport (reshape_c, ReshapeBackward, UnsqueezeBackward0,
                                     AliasBackward0)
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.ops_view import expand

cnp.import_array()

cdef extern from "Python.h":
    bint PySlice_Check(object)
    bint PyLong_CheckExact(object)
    int PySlice_Unpack(object, Py_ssize_t*, Py_ssize_t*, Py_ssize_t*) except -1
    Py_ssize_t PySlice_AdjustIndices(Py_ssize_t, Py_ssize_t*, Py_ssize_t*, Py_ssize_t)

cdef object _int64 = np.dtype(np.int64)


cdef inline object _contig(object r):
    """A C-contiguous ndarray of r, keeping 0-d results 0-d (np.ascontiguousarray makes them 1-d)."""
    r = np.asarray(r)
    return np.ascontiguousarray(r) if r.ndim else r.copy()


# --- key parsing ---------------------------------------------------------------------------------

cdef object _uint8_mask(cnp.ndarray k):
    """A uint8 index tensor is a mask, as in PyTorch (which deprecates it): k != 0, with its
    warning."""
    warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a dtype "
                  "torch.bool instead.", UserWarning, stacklevel=3)
    return k != 0


cdef tuple _parse_key(TensorBase a, object key):
    """(numpy key tuple, advanced?, name of the node for a basic key). Validates every index."""
    cdef tuple sh = _shape(a)
    cdef int nd = len(sh), dim = 0, consumed = 0
    cdef list out = []
    items = key if isinstance(key, tuple) else (key,)
    conv = []
    for k in items:                               # tensors / lists -> arrays, count consumed dims
        if isinstance(k, TensorBase):
            k = (<TensorBase>k)._data
            if k.dtype == np.uint8:
                k = _uint8_mask(k)
            if k.ndim == 0 and k.dtype.kind in "iu":
                k = int(k)
        elif isinstance(k, (list, tuple, range)):
            k = np.asarray(k)
            if k.dtype.kind == "f" or (k.size == 0 and k.dtype.kind != "b"):
                k = k.astype(np.int64)
        elif isinstance(k, np.ndarray) and k.ndim == 0 and k.dtype.kind in "iu":
            k = int(k)
        elif isinstance(k, np.integer):
            k = int(k)
        if isinstance(k, np.ndarray):
            if k.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be long, int, byte or bool "
                                 f"tensors (got {k.dtype})")
            consumed += k.ndim if k.dtype.kind == "b" else 1
        elif isinstance(k, bool) or k is None or k is Ellipsis:
            pass
        elif isinstance(k, (int, slice)):
            consumed += 1
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(k).__name__})")
        conv.append(k)
    if consumed > nd:
        raise IndexError(f"too many indices for tensor of dimension {nd}")
    advanced = False
    name = "AliasBackward0"
    seen_ellipsis = False
    for k in conv:
        if k is Ellipsis:
            if seen_ellipsis:
                raise IndexError("an index can only have a single ellipsis ('...')")
            seen_ellipsis = True
            dim += nd - consumed
            out.append(Ellipsis)
        elif k is None:
            out.append(None)
            name = "UnsqueezeBackward0"
        elif isinstance(k, bool):
            out.append(None if k else np.zeros(0, dtype=np.int64))
            advanced = advanced or not k
        elif isinstance(k, int):
            n = sh[dim]
            if k < -n or k >= n:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {n}")
            out.append(k)
            dim += 1
            name = "SelectBackward0"
        elif isinstance(k, slice):
            if k.step is not None and int(k.step) <= 0:
                raise ValueError(f"step must be greater than zero (got {k.step}); use "
                                 f"flip() to reverse a tensor")
            out.append(slice(None if k.start is None else int(k.start),
                             None if k.stop is None else int(k.stop),
                             None if k.step is None else int(k.step)))
            dim += 1
            name = "SliceBackward0"
        elif k.dtype.kind == "b":
            msh = k.shape
            if tuple(sh[dim:dim + k.ndim]) != msh:
                for j in range(k.ndim):
                    if msh[j] != sh[dim + j]:
                        raise IndexError(
                            f"The shape of the mask {list(msh)} at index {j} does not match the "
                            f"shape of the indexed tensor {list(sh)} at index {dim + j}")
            if k.ndim:
                out.extend(np.nonzero(k))
            else:                                # x[True]: a new dim of size 1 (0 for False)
                out.append(k)
            dim += k.ndim
            advanced = True
        else:
            n = sh[dim]
            if k.size:
                lo, hi = int(k.min()), int(k.max())
                if lo < -n or hi >= n:
                    raise IndexError(f"index {hi if hi >= n else lo} is out of bounds for "
                                     f"dimension {dim} with size {n}")
            out.append(k.astype(np.int64, copy=False))
            dim += 1
            advanced = True
    if not seen_ellipsis:
        out.append(Ellipsis)              # keeps NumPy from returning scalars for full int keys
    return tuple(out), advanced, name


# --- __getitem__ ---------------------------------------------------------------------------------

def getitem(input, key):
    """x[key]: a view for basic keys (Select/Slice/Unsqueeze/AliasBackward0), a copy for array
    keys (IndexBackward0)."""
    return getitem_c(input, key)


cdef object getitem_c(TensorBase a, object key):
    cdef TensorBase out
    out = _basic_getitem(a, key)
    if out is not None:
        return out
    npkey, advanced, name = _parse_key(a, key)
    if advanced:
        out = wrap(_contig(a._data[npkey]))
        name = "IndexBackward0"
    else:
        out = make_view(a, a._data[npkey])
    if _rec(a):
        set_history1(out, _key_node(_KEY_NODES[name], _shape(a), npkey, advanced), a)
    return out


cdef object _basic_getitem(TensorBase a, object key):
    """x[key] for a key of in-range ints, positive-step slices and None only (the common case),
    built as one strided view in C; None for anything else (the general path then handles or
    rejects it with its messages)."""
    cdef cnp.ndarray x = a._data
    cdef tuple items
    cdef int nd = x.ndim, i, d = 0, k = 0, n, used = 0, sel = 0
    cdef Py_ssize_t v, size, start, stop, step
    cdef char* data = x.data
    cdef cnp.npy_intp dims[64]
    cdef cnp.npy_intp strides[64]
    cdef TensorBase out
    if PyLong_CheckExact(key) or PySlice_Check(key):
        items = (key,)
    elif type(key) is tuple:
        items = <tuple>key
    elif key is None:
        items = (None,)
    else:
        return None
    n = len(items)
    for i in range(n):
        if items[i] is not None:
            used += 1
    if n == 0 or used > nd or n - used + nd > 64:
        return None
    for i in range(n):
        it = items[i]
        if it is None:
            dims[k] = 1
            strides[k] = 0
            k += 1
            sel = 3
            continue
        size = x.shape[d]
        if PyLong_CheckExact(it):
            try:
                v = it
            except OverflowError:
                return None
            if v < -size or v >= size:
                return None
            data += (v + size if v < 0 else v) * x.strides[d]
            d += 1
            sel = 1
        elif PySlice_Check(it):
            try:
                PySlice_Unpack(it, &start, &stop, &step)
            except (TypeError, ValueError):
                return None
            if step <= 0:
                return None
            dims[k] = PySlice_AdjustIndices(size, &start, &stop, step)
            strides[k] = x.strides[d] * step
            data += start * x.strides[d]
            d += 1
            k += 1
            sel = 2
        else:
            return None
    for i in range(d, nd):
        dims[k] = x.shape[i]
        strides[k] = x.strides[i]
        k += 1
    out = make_view(a, strided_view(x, k, dims, strides, data,
                                    cnp.PyArray_FLAGS(x) & cnp.NPY_ARRAY_WRITEABLE))
    if _rec(a):
        set_history1(out, _key_node(SelectBackward0 if sel == 1 else SliceBackward0 if sel == 2
                                    else UnsqueezeBackward0, _shape(a), items + (Ellipsis,),
                                    False), a)
    return out


cdef class KeyBackward(Node):
    """grad_a = zeros(in_shape) with grad written (added, for array keys) at key"""
    cdef tuple in_shape, key
    cdef bint advanced

    cdef tuple apply(self, tuple grads):
        return (_key_scatter(grads[0], self.in_shape, self.key, self.advanced),)


@cython.final
cdef class SelectBackward0(KeyBackward):
    pass


@cython.final
cdef class SliceBackward0(KeyBackward):
    pass


@cython.final
cdef class IndexBackward0(KeyBackward):
    pass


@cython.final
cdef class IndexSelectBackward0(KeyBackward):
    pass


cdef dict _KEY_NODES = {"SelectBackward0": SelectBackward0, "SliceBackward0": SliceBackward0,
                        "IndexBackward0": IndexBackward0, "UnsqueezeBackward0": UnsqueezeBackward0,
                        "AliasBackward0": AliasBackward0,
                        "IndexSelectBackward0": IndexSelectBackward0}


cdef Node _key_node(type cls, tuple in_shape, tuple key, bint advanced):
    """The node of x[key], of class `cls`. A key PyTorch names for a view (UnsqueezeBackward0,
    AliasBackward0: ops_view's classes) gets that view's node running a KeyBackward in its place
    (Note [Nodes named for a view] in ops_view.pyx)."""
    cdef KeyBackward node
    cdef ReshapeBackward named
    if cls is UnsqueezeBackward0 or cls is AliasBackward0:
        named = cls.__new__(cls)
        named.inner = _key_node(KeyBackward, in_shape, key, advanced)
        return named
    node = cls.__new__(cls)
    node.in_shape = in_shape
    node.key = key
    node.advanced = advanced
    return node


cdef object _key_scatter(TensorBase g, tuple shape, tuple key, bint advanced):
    """zeros(shape); z[key] (+)= g — the backward of indexing, itself recorded."""
    cdef cnp.ndarray z = np.zeros(shape, dtype=g._data.dtype)
    cdef TensorBase out
    cdef KeyScatterBackward node
    if advanced:
        np.add.at(z, key, g._data)
    else:
        z[key] = g._data
    out = wrap(z)
    if _rec(g):
        node = KeyScatterBackward.__new__(KeyScatterBackward)
        node.key = key
        set_history1(out, node, g)
    return out


@cython.final
cdef class KeyScatterBackward(Node):
    """grad_g = grad[key]"""
    cdef tuple key

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        cdef TensorBase out = wrap(_contig(g._data[self.key]))
        cdef KeyBackward node
        if _rec(g):
            node = IndexBackward0.__new__(IndexBackward0)
            node.in_shape = _shape(g)
            node.key = self.key
            node.advanced = True
            set_history1(out, node, g)
        return (out,)


def _slice_dim(TensorBase g, int dim, Py_ssize_t start, Py_ssize_t stop):
    return getitem_c(g, (slice(None),) * dim + (slice(start, stop),))


def _select_dim(TensorBase g, int dim, Py_ssize_t i):
    return getitem_c(g, (slice(None),) * dim + (i,))


def select(input, dim, index):
    cdef TensorBase a = input
    if a._data.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor")
    d = wrap_dim(dim, a._data.ndim, "select")
    return getitem_c(a, (slice(None),) * d + (int(index),))


def narrow(input, dim, start, length):
    """x.narrow(dim, start, length): x[..., start:start + length, ...] along dim, built as one
    strided view in C (SliceBackward0)."""
    cdef TensorBase a = input, out
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, i, d
    cdef Py_ssize_t n, s, ln
    cdef cnp.npy_intp dims[64]
    cdef cnp.npy_intp strides[64]
    cdef KeyBackward node
    if nd == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, nd, "narrow")
    n = x.shape[d]
    s = int(start)
    ln = int(length)
    if s < 0:
        s += n
    if s < 0 or s + ln > n or ln < 0:
        raise RuntimeError(f"start ({s}) + length ({ln}) exceeds dimension size ({n}).")
    for i in range(nd):
        dims[i] = x.shape[i]
        strides[i] = x.strides[i]
    dims[d] = ln
    out = make_view(a, strided_view(x, nd, dims, strides, x.data + s * x.strides[d],
                                    cnp.PyArray_FLAGS(x) & cnp.NPY_ARRAY_WRITEABLE))
    if _rec(a):
        node = SliceBackward0.__new__(SliceBackward0)
        node.in_shape = _shape(a)
        node.key = ((slice(s, s + ln), Ellipsis) if d == 0 else
                    (slice(None),) * d + (slice(s, s + ln), Ellipsis))
        node.advanced = False
        set_history1(out, node, a)
    return out


def index_select(input, dim, index):
    """input.index_select(dim, index): the rows `index` (1-D int tensor) along dim (a copy)."""
    cdef TensorBase a = input, idx = index, out
    cdef KeyBackward node
    d = wrap_dim(dim, a._data.ndim, "index_select")
    ix = idx._data
    if ix.ndim > 1 or ix.dtype.kind not in "iu":
        raise RuntimeError(f"index_select(): Index is supposed to be a vector of integers, got "
                           f"a {ix.ndim}-D {ix.dtype} tensor")
    n = _shape(a)[d] if a._data.ndim else 1
    ix = ix.reshape(-1).astype(np.int64, copy=False)
    if n == 0 and ix.size and a._data.ndim > 1:          # (PyTorch: IndexError below for 1-D)
        raise RuntimeError(f"index_select(): self indexing axis dim should be positive: "
                           f"dimension {d} is empty, so no index can select from it")
    if ix.size and (ix.min() < 0 or ix.max() >= n):
        bad = int(ix.max()) if ix.max() >= n else int(ix.min())
        raise IndexError(f"index_select(): index {bad} is out of range for dimension {d} with "
                         f"size {n}")
    if a._data.ndim == 0:
        if ix.size != 1:
            raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got "
                               f"{ix.size} value(s)")
        return reshape_c(a, ())
    key = (slice(None),) * d + (ix, Ellipsis)
    out = wrap(np.take(a._data, ix, axis=d))
    if _rec(a):
        node = IndexSelectBackward0.__new__(IndexSelectBackward0)
        node.in_shape = _shape(a)
        node.key = key
        node.advanced = True
        set_history1(out, node, a)
    return out


# --- gather / scatter_add / take_along_dim -------------------------------------------------------

cdef tuple _dim_key(cnp.ndarray idx, int d):
    """Index arrays that address element (i0, .., idx[i], .., in) for every position of idx."""
    grids = list(np.indices((<object>idx).shape, sparse=True))
    grids[d] = idx
    return tuple(grids)


cdef cnp.ndarray _check_index(TensorBase a, TensorBase index, int d, str op):
    cdef cnp.ndarray ix = index._data
    if ix.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index (got {ix.dtype})")
    if ix.ndim != a._data.ndim and not (ix.ndim <= 1 and a._data.ndim <= 1):
        raise RuntimeError(f"Index tensor must have the same number of dimensions as input "
                           f"tensor ({op}: index {list((<object>ix).shape)}, input "
                           f"{list(_shape(a))})")
    n = _shape(a)[d] if a._data.ndim else 1
    if ix.size and (ix.min() < 0 or ix.max() >= n):
        bad = int(ix.max()) if ix.max() >= n else int(ix.min())
        raise RuntimeError(f"{op}(): index {bad} is out of bounds for dimension {d} with "
                           f"size {n}")
    for k in range(ix.ndim):
        if k != d and (<object>ix).shape[k] > _shape(a)[k]:
            raise RuntimeError(f"Size does not match at dimension {k} expected index "
                               f"{list((<object>ix).shape)} to be smaller than self "
                               f"{list(_shape(a))} apart from dimension {d}")
    return ix.astype(np.int64, copy=False)


def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j] = input[index[i][j]][j] (dim 0), etc."""
    cdef TensorBase a = input, out
    cdef GatherBackward0 node
    d = wrap_dim(dim, a._data.ndim, "gather")
    ix = _check_index(a, index, d, "gather")
    if a._data.ndim == 0:
        return reshape_c(a, ())
    key = _dim_key(ix, d)
    out = wrap(_contig(a._data[key]))
    if _rec(a):
        node = GatherBackward0.__new__(GatherBackward0)
        node.in_shape = _shape(a)
        node.key = key
        node.advanced = True
        set_history1(out, node, a)
    return out


@cython.final
cdef class GatherBackward0(KeyBackward):
    pass


def scatter_add(input, dim, index, src):
    """out = input.clone(); out[index[i][j]][j] += src[i][j] (dim 0), etc."""
    cdef TensorBase a = input, s = src, out
    cdef ScatterAddBackward0 node
    if a._data.dtype != s._data.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype (scatter_add "
                           f"got {a.dtype} and {s.dtype}; convert src with .to(input.dtype))")
    d = wrap_dim(dim, a._data.ndim, "scatter_add")
    if s._data.dtype != a._data.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype (got "
                           f"{a.dtype} and {s.dtype}); convert src first, e.g. "
                           f"src.to(input.dtype)")
    ix = _check_index(a, index, d, "scatter_add")
    for k in range(ix.ndim):
        if (<object>ix).shape[k] > _shape(s)[k]:
            raise RuntimeError(f"scatter_add(): index {list((<object>ix).shape)} must not be "
                               f"larger than src {list(_shape(s))} at dimension {k}")
    key = _dim_key(ix, d) if ix.ndim else ()
    sub = tuple(slice(0, n) for n in (<object>ix).shape)
    r = a._data.copy()
    if a._data.ndim == 0:
        r = r + s._data.reshape(()) if ix.size else r
    else:
        np.add.at(r, key, s._data[sub].astype(r.dtype, copy=False))
    out = wrap(np.asarray(r))
    if grad_enabled() and (a._requires_grad or s._requires_grad):
        node = ScatterAddBackward0.__new__(ScatterAddBackward0)
        node.key = key
        node.sub = sub
        node.src_shape = _shape(s)
        set_history(out, node, (a, s))
    return out


@cython.final
cdef class ScatterAddBackward0(Node):
    """grad_input = grad; grad_src = grad gathered at index (zero outside index's extent)"""
    cdef tuple key, sub, src_shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        gs = None
        if self._next_fns[1] is not None:
            gathered = getitem_c(g, self.key) if g._data.ndim else g
            gs = _key_scatter(gathered, self.src_shape, self.sub, False) \
                if tuple(gathered.shape) != self.src_shape else gathered
        return (g if self._next_fns[0] is not None else None, gs)


def take_along_dim(input, indices, dim=None):
    """input values at `indices` along dim (broadcast against each other); flattened if dim is None."""
    cdef TensorBase a = input, ix = indices
    if dim is None:
        return gather(reshape_c(a, (-1,)), 0, reshape_c(ix, (-1,)))
    d = wrap_dim(dim, a._data.ndim, "take_along_dim")
    sa, si = list(_shape(a)), list(_shape(ix))
    if len(sa) != len(si):
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {len(sa)} dimensions for input, and "
                           f"{len(si)} dimensions for indices")
    ta, ti = list(sa), list(si)
    for k in range(len(sa)):
        if k != d:
            m = max(sa[k], si[k])
            ta[k] = ti[k] = m
    if ta != sa:
        a = expand(a, tuple(ta))
    if ti != si:
        ix = expand(ix, tuple(ti))
    return gather(a, d, ix)


# --- masked_fill ---------------------------------------------------------------------------------

def masked_fill(input, mask, value):
    """Where mask (broadcastable bool tensor) is True: value, else input."""
    cdef TensorBase a = input, m = mask
    if m._data.dtype.kind != "b":
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{m._data.dtype}")
    if isinstance(value, TensorBase) and (<TensorBase>value)._data.ndim != 0:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {(<TensorBase>value)._data.ndim} dimension(s).")
    sh = np.broadcast_shapes(_shape(a), _shape(m))
    if sh != _shape(a):
        raise RuntimeError(f"masked_fill: the mask of shape {list(_shape(m))} is not "
                           f"broadcastable to the input of shape {list(_shape(a))}")
    cdef TensorBase v = None, out
    cdef MaskedFillBackward node
    cdef cnp.ndarray r = np.array(a._data, order="C", copy=True)
    if isinstance(value, TensorBase):
        v = value
        fill = v._data
    else:
        fill = value
        if r.dtype.kind in "iu" and isinstance(value, float) and not (
                np.iinfo(r.dtype).min <= value <= np.iinfo(r.dtype).max):
            # NumPy's unsafe cast would store an arbitrary integer for inf, nan or 1e30
            raise RuntimeError(f"masked_fill: value cannot be converted to type {r.dtype}_t "
                               f"without overflow: {value!r} does not fit the {r.dtype} input")
    try:
        np.copyto(r, np.asarray(fill).astype(r.dtype, casting="unsafe"), where=m._data)
    except (TypeError, ValueError, OverflowError):
        raise RuntimeError(f"masked_fill: value {value!r} cannot be converted to "
                           f"{r.dtype} without overflow")
    out = wrap(r)
    if grad_enabled() and (a._requires_grad or (v is not None and v._requires_grad)):
        node = (MaskedFillBackward0.__new__(MaskedFillBackward0) if v is None else
                MaskedFillBackward1.__new__(MaskedFillBackward1))
        node.mask = m
        if v is not None and v._data.dtype != r.dtype:
            node._in_meta = (None, ((), v._data.dtype))
        set_history(out, node, (a, v))
    return out


cdef class MaskedFillBackward(Node):
    """grad_input = grad with zeros where mask; grad_value = sum of grad where mask"""
    cdef TensorBase mask

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        ga = gv = None
        if self._next_fns[0] is not None:
            ga = masked_fill(g, self.mask, 0)
        if len(self._next_fns) > 1 and self._next_fns[1] is not None:
            gv = sum_(masked_fill(g, wrap(np.logical_not(self.mask._data)), 0), None, False)
        return (ga, gv)


@cython.final
cdef class MaskedFillBackward0(MaskedFillBackward):
    pass


@cython.final
cdef class MaskedFillBackward1(MaskedFillBackward):
    pass

# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Joins and repeats: cat/concat/stack/hstack/vstack (copies), split/chunk/unbind (views that
are all outputs of one node), repeat and repeat_interleave (copies).

Each backward is a recorded op (slices, selects, cat, stack, sums), so they are differentiable
twice.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history, set_history1
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_reduce cimport sum_
from fastgrad._core.ops_strided cimport _rec, _writeable, make_view, strided_view
from fastgrad._core.ops_view cimport reshape_c, unsqueeze_c, expand_c, size_args
from fastgrad._core.ops_cast import clone as _clone
from fastgrad._core.ops_index import _slice_dim, _select_dim, index_select
from fastgrad._core.ops_out import out_check, write_out
from fastgrad._core.promotion cimport promote_arrays

cnp.import_array()

DEF MAXD = 64                     # NumPy's NPY_MAXDIMS


# --- cat / stack ---------------------------------------------------------------------------------

cdef object _narrow(TensorBase g, int dim, Py_ssize_t start, Py_ssize_t stop):
    """g[..., start:stop, ...] along dim: a view (SliceBackward0 via indexing)."""
    return _slice_dim(g, dim, start, stop)


def cat(tensors, dim=0, *, out=None):
    if out is not None:
        tensors = list(tensors)
        out_check("cat", out, tensors)
        return write_out(out, cat_c(tensors, dim), 2)
    return cat_c(list(tensors), dim)


concat = concatenate = cat


cdef object cat_c(list tensors, int dim):
    cdef TensorBase t, first, out
    cdef CatBackward0 node
    cdef Py_ssize_t i
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i in range(len(tensors)):
        if not isinstance(tensors[i], TensorBase):
            raise TypeError(f"cat(): expected a sequence of Tensors, but element {i} is "
                            f"{type(tensors[i]).__name__}")
    first = tensors[0]
    if first._data.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated; "
                           "use stack() or unsqueeze first")
    d = wrap_dim(dim, first._data.ndim, "cat")
    s0 = _shape(first)
    for i in range(1, len(tensors)):
        t = tensors[i]
        si = _shape(t)
        if len(si) != len(s0):
            raise RuntimeError(f"Tensors must have same number of dimensions: got {len(s0)} and "
                               f"{len(si)} (shapes {list(s0)} and {list(si)} at positions 0 "
                               f"and {i})")
        for k in range(len(s0)):
            if k != d and si[k] != s0[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{s0[k]} but got size {si[k]} for tensor number {i} in the list "
                    f"(shapes {list(s0)} and {list(si)})")
    dt = promote_arrays([(<TensorBase>x)._data for x in tensors]) if len(tensors) > 1 \
        else first._data.dtype
    out = wrap(np.concatenate([(<TensorBase>x)._data for x in tensors], axis=d, dtype=dt))
    if grad_enabled() and any((<TensorBase>x)._requires_grad for x in tensors):
        node = CatBackward0.__new__(CatBackward0)
        node.dim = d
        node.sizes = tuple(_shape(x)[d] for x in tensors)
        meta = [(_shape(x), (<TensorBase>x)._data.dtype)
                if (<TensorBase>x)._data.dtype != dt else None for x in tensors]
        if any(m is not None for m in meta):
            node._in_meta = tuple(meta)
        set_history(out, node, tuple(tensors))
    return out


@cython.final
cdef class CatBackward0(Node):
    """grad_i = grad[..., offset_i : offset_i + size_i, ...] along dim"""
    cdef int dim
    cdef tuple sizes

    cdef tuple apply(self, tuple grads):
        res = []
        off = 0
        for i, s in enumerate(self.sizes):
            res.append(_narrow(grads[0], self.dim, off, off + s)
                       if self._next_fns[i] is not None else None)
            off += s
        return tuple(res)


def stack(tensors, dim=0, *, out=None):
    """Join equal-shaped tensors along a new dim."""
    cdef TensorBase t, first, res
    cdef StackBackward0 node
    tensors = list(tensors)
    if out is not None:
        out_check("stack", out, tensors)
        return write_out(out, stack(tensors, dim), 2)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    first = tensors[0]
    s0 = _shape(first)
    for i in range(1, len(tensors)):
        t = tensors[i]
        if _shape(t) != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(_shape(t))} at entry {i}")
    d = wrap_dim(dim, first._data.ndim + 1, "stack")
    dt = promote_arrays([(<TensorBase>x)._data for x in tensors])
    res = wrap(np.stack([(<TensorBase>x)._data for x in tensors], axis=d, dtype=dt))
    if grad_enabled() and any((<TensorBase>x)._requires_grad for x in tensors):
        node = StackBackward0.__new__(StackBackward0)
        node.dim = d
        meta = [(s0, (<TensorBase>x)._data.dtype) if (<TensorBase>x)._data.dtype != dt else None
                for x in tensors]
        if any(m is not None for m in meta):
            node._in_meta = tuple(meta)
        set_history(res, node, tuple(tensors))
    return res


@cython.final
cdef class StackBackward0(Node):
    """grad_i = grad.select(dim, i)"""
    cdef int dim

    cdef tuple apply(self, tuple grads):
        return tuple([_select_dim(grads[0], self.dim, i) if self._next_fns[i] is not None
                      else None for i in range(len(self._next_fns))])


def hstack(tensors):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("hstack expects a non-empty TensorList")
    return cat_c(tensors, 0 if (<TensorBase>tensors[0])._data.ndim == 1 else 1)


def vstack(tensors):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("vstack expects a non-empty TensorList")
    return cat_c([t if (<TensorBase>t)._data.ndim > 1 else unsqueeze_c(t, 0) for t in tensors], 0)


# --- chunk / split / unbind (multi-output views) -------------------------------------------------

cdef tuple _split_views(TensorBase a, int d, list sizes, bint with_sizes):
    """Views of `a` along dim d with `sizes`; all outputs of one node (output_nr = i):
    SplitWithSizesBackward0 when `with_sizes`, else SplitBackward0."""
    cdef TensorBase o
    cdef Node node
    cdef cnp.ndarray x = a._data
    cdef list outs = []
    cdef Py_ssize_t off = 0, i, j
    cdef int nd = x.ndim
    cdef bint w = _writeable(x)
    cdef cnp.npy_intp dims[MAXD]
    for j in range(nd):
        dims[j] = x.shape[j]
    for i in range(len(sizes)):
        dims[d] = sizes[i]
        outs.append(make_view(a, strided_view(x, nd, dims, x.strides,
                                              x.data + off * x.strides[d], w)))
        off += sizes[i]
    if _rec(a):
        node = (SplitWithSizesBackward0.__new__(SplitWithSizesBackward0) if with_sizes else
                SplitBackward0.__new__(SplitBackward0))
        (<SplitBackward>node).dim = d
        (<SplitBackward>node).sizes = tuple(sizes)
        (<SplitBackward>node).in_shape = _shape(a)
        node._n_out = len(outs)
        for i in range(len(outs)):
            o = outs[i]
            if i == 0:
                set_history1(o, node, a)
            else:
                o._grad_fn = node
                o._requires_grad = True
            o._output_nr = i
    return tuple(outs)


cdef class SplitBackward(Node):
    """grad_a = cat of the outputs' grads along dim (zeros for outputs that got none)"""
    cdef int dim
    cdef tuple sizes, in_shape

    cdef tuple apply(self, tuple grads):
        parts = []
        ref = next(g for g in grads if g is not None)
        for g, s in zip(grads, self.sizes):
            if g is None:
                sh = list(self.in_shape)
                sh[self.dim] = s
                g = wrap(np.zeros(sh, dtype=(<TensorBase>ref)._data.dtype))
            parts.append(g)
        return (cat_c(parts, self.dim),)


@cython.final
cdef class SplitBackward0(SplitBackward):
    pass


@cython.final
cdef class SplitWithSizesBackward0(SplitBackward):
    pass


def split(input, split_size_or_sections, dim=0):
    """Views of `split_size` along dim (the last may be shorter), or of the given sizes."""
    cdef TensorBase a = input
    if a._data.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, a._data.ndim, "split")
    if isinstance(split_size_or_sections, int):
        return _split_int(a, d, split_size_or_sections)
    n = _shape(a)[d]
    sizes = [int(s) for s in split_size_or_sections]
    if sum(sizes) != n:
        raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input "
                           f"tensor's size at dimension {d}), but got split_sizes={sizes}")
    return _split_views(a, d, sizes, True)


cdef tuple _split_int(TensorBase a, int d, Py_ssize_t s):
    """split(a, s, d) for an int size: ceil(n / s) views, the last one possibly shorter."""
    cdef Py_ssize_t n = a._data.shape[d], i = 0
    cdef list sizes = []
    if s < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={s}")
    if s == 0 and n > 0:
        raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                           f"dimension size of {n}")
    if n == 0:
        sizes.append(0)
    while i < n:
        sizes.append(s if s < n - i else n - i)
        i += s
    return _split_views(a, d, sizes, False)


def chunk(input, chunks, dim=0):
    """Up to `chunks` views of equal size (ceil(n / chunks)) along dim."""
    cdef TensorBase a = input
    cdef Py_ssize_t c = chunks, n
    if c <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {c}")
    if a._data.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, a._data.ndim, "chunk")
    n = a._data.shape[d]
    if n == 0:                                   # PyTorch: `chunks` empty views
        return _split_views(a, d, [0] * c, False)
    return _split_int(a, d, max(1, (n + c - 1) // c))


def unbind(input, dim=0):
    """The slices along dim, each without that dim (views)."""
    cdef TensorBase a = input, o
    cdef list outs = []
    cdef UnbindBackward0 node = None
    cdef cnp.ndarray x = a._data
    cdef cnp.npy_intp dims[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    cdef int j, k = 0
    cdef Py_ssize_t i, n
    cdef bint w = _writeable(x)
    d = wrap_dim(dim, x.ndim, "unbind", False)
    n = x.shape[d]
    for j in range(x.ndim):
        if j != d:
            dims[k] = x.shape[j]
            strides[k] = x.strides[j]
            k += 1
    for i in range(n):
        outs.append(make_view(a, strided_view(x, k, dims, strides, x.data + i * x.strides[d],
                                              w)))
    if _rec(a) and n:
        node = UnbindBackward0.__new__(UnbindBackward0)
        node.dim = d
        node.in_shape = _shape(a)
        node._n_out = n
        for i in range(n):
            o = outs[i]
            if i == 0:
                set_history1(o, node, a)
            else:
                o._grad_fn = node
                o._requires_grad = True
            o._output_nr = i
    return tuple(outs)


@cython.final
cdef class UnbindBackward0(Node):
    """grad_a = stack of the outputs' grads along dim (zeros for missing ones)"""
    cdef int dim
    cdef tuple in_shape

    cdef tuple apply(self, tuple grads):
        ref = next(g for g in grads if g is not None)
        sh = list(self.in_shape)
        del sh[self.dim]
        parts = [g if g is not None else wrap(np.zeros(sh, dtype=(<TensorBase>ref)._data.dtype))
                 for g in grads]
        return (stack(parts, self.dim),)


# --- repeat ---------------------------------------------------------------------------------------

def repeat(input, *sizes):
    """Tile the tensor `sizes` times along each dim (a copy)."""
    cdef TensorBase a = input, out
    cdef RepeatBackward0 node
    reps = size_args(sizes)
    sh = _shape(a)
    if len(reps) < len(sh):
        raise RuntimeError(f"Number of dimensions of repeat dims ({len(reps)}) can not be smaller "
                           f"than number of dimensions of tensor ({len(sh)})")
    out = wrap(np.tile(a._data, reps))
    if _rec(a):
        node = RepeatBackward0.__new__(RepeatBackward0)
        node.in_shape = sh
        node.reps = reps
        set_history1(out, node, a)
    return out


@cython.final
cdef class RepeatBackward0(Node):
    """grad_a = grad viewed as (r0, s0, r1, s1, ...) summed over the r axes"""
    cdef tuple in_shape, reps

    cdef tuple apply(self, tuple grads):
        lead = len(self.reps) - len(self.in_shape)
        full = (1,) * lead + self.in_shape
        split = []
        for r, s in zip(self.reps, full):
            split += [r, s]
        g = reshape_c(grads[0], tuple(split))
        g = sum_(g, tuple(range(0, 2 * len(full), 2)), False) if split else g
        return (reshape_c(g, self.in_shape),)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (dim=None: of the flattened tensor) or each slice along dim repeated
    `repeats` times (an int, or a 0-d/1-d int tensor with one count per slice). Int repeats are
    unsqueeze + expand + contiguous copy + view as PyTorch (ViewBackward0); tensor repeats are an
    index_select (IndexSelectBackward0). repeat_interleave(counts) alone gives the indices."""
    cdef TensorBase a = input, r
    if repeats is None:                              # repeat_interleave(counts): indices
        r = a
        c = r._data
        if c.ndim > 1:
            raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
        if c.dtype.kind not in "iu":
            raise NotImplementedError(f"\"repeat_interleave_cpu\" not implemented for "
                                      f"'{scalar_type_name(c.dtype)}'")
        if c.size and c.min() < 0:
            raise RuntimeError("repeats can not be negative")
        return wrap(np.repeat(np.arange(c.size, dtype=c.dtype), c.reshape(-1)))
    if dim is None:
        a = reshape_c(a, (-1,))
        d = 0
    else:
        d = wrap_dim(dim, a._data.ndim, "repeat_interleave")
    if a._data.ndim == 0:
        a = reshape_c(a, (1,))
    n = _shape(a)[d]
    if isinstance(repeats, TensorBase):
        c = (<TensorBase>repeats)._data
        if c.ndim > 1:
            raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
        if c.dtype.kind not in "iu":
            raise NotImplementedError(f"\"repeat_interleave_cpu\" not implemented for "
                                      f"'{scalar_type_name(c.dtype)}'")
        c = c.reshape(-1).astype(np.int64)
        if c.size == 1:
            c = np.full(n, c[0], dtype=np.int64)
        elif c.size != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {c.size} and input.size({d}) = {n}")
        if c.size and c.min() < 0:
            raise RuntimeError("repeats can not be negative")
        idx = wrap(np.repeat(np.arange(n, dtype=np.int64), c))
        if output_size is not None and int(output_size) != idx._data.size:
            raise RuntimeError(f"allocated size does not match required size")
        return index_select(a, d, idx)
    k = int(repeats)
    if k < 0:
        raise RuntimeError("Repeats must be non-negative")
    sh = _shape(a)
    e = unsqueeze_c(a, d + 1)
    e = expand_c(e, sh[:d + 1] + (k,) + sh[d + 1:])
    return reshape_c(_clone(e), sh[:d] + (n * k,) + sh[d + 1:])

# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Views and shapes: reshape/view/flatten/unflatten/squeeze/unsqueeze/transpose/permute/t/T/mT/
expand/contiguous/diagonal, plus flip (a copy).

A view's storage is a NumPy view of its input's array (no copy, built by ops_strided) and
`out._base` is the root base, so base and views share one version counter (Note [Version
counters]) and writes through a view show in the base. Each backward is a recorded op (reshape
back, transpose back, sum_to ...), so views are differentiable twice. Joins and repeats (cat,
stack, split, chunk, unbind, repeat, repeat_interleave) live in ops_join.pyx, indexing (`x[...]`,
gather ...) in ops_index.pyx, `x[...] = v` in ops_setitem.pyx.
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from cpython.long cimport PyLong_CheckExact
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.ops_reduce cimport sum_to, ExpandBackward0
from fastgrad._core.ops_strided cimport _rec, _writeable, make_view, strided_view, scatter_add_flat
from fastgrad._core.ops_cast import clone as _clone

cnp.import_array()

DEF MAXD = 64                     # NumPy's NPY_MAXDIMS


# --- helpers -------------------------------------------------------------------------------------

cdef tuple size_args(tuple args):
    """f(2, 3) and f((2, 3)) / f([2, 3]) / f(torch.Size) both give (2, 3)."""
    cdef Py_ssize_t i
    for i in range(len(args)):
        if not PyLong_CheckExact(args[i]):
            break
    else:
        return args
    if len(args) == 1 and not isinstance(args[0], int) and hasattr(args[0], "__len__"):
        args = tuple(args[0])
    return tuple([int(s) for s in args])


cdef tuple _infer_shape(tuple shape, Py_ssize_t numel):
    """Resolve one -1 in `shape`; RuntimeError when the sizes cannot hold `numel` elements."""
    cdef Py_ssize_t known = 1, infer = -1, i, v, n = len(shape)
    for i in range(n):
        v = shape[i]
        if v == -1:
            if infer >= 0:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif v < 0:
            raise RuntimeError(f"invalid shape dimension {v}")
        else:
            known *= v
    if infer < 0 and known == numel:
        return shape
    if infer >= 0 and known != 0 and numel % known == 0:
        r = PyTuple_New(n)                              # one tuple, not three slices
        for i in range(n):
            o = numel // known if i == infer else shape[i]
            Py_INCREF(o)
            PyTuple_SET_ITEM(r, i, o)
        return r
    raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")


# --- reshape / view ------------------------------------------------------------------------------

def reshape(input, *shape):
    """reshape(*shape): a view when the layout allows it (ViewBackward0), else a copy."""
    return reshape_c(input, size_args(shape))


cdef object reshape_c(TensorBase a, tuple shape):
    cdef cnp.ndarray x = a._data, r
    cdef TensorBase out
    cdef ReshapeBackward node = None
    shape = _infer_shape(shape, cnp.PyArray_SIZE(x))
    r = cnp.PyArray_Reshape(x, shape)                   # a view when the layout allows, else a copy
    if cnp.PyArray_DATA(r) == cnp.PyArray_DATA(x) or cnp.PyArray_SIZE(x) == 0:
        out = make_view(a, r)
        if not _rec(a):
            return out
        node = ViewBackward0.__new__(ViewBackward0)
    else:
        out = wrap(r)
        if not _rec(a):
            return out
        node = UnsafeViewBackward0.__new__(UnsafeViewBackward0)
    node.in_shape = (<object>x).shape
    set_history1(out, node, a)
    return out


def view(input, *shape):
    """view(*shape): a view sharing storage; RuntimeError when the layout cannot be viewed.
    view(dtype): the same bytes as another dtype."""
    cdef TensorBase a = input, out
    cdef cnp.ndarray x = a._data, r
    cdef ViewBackward0 node
    if len(shape) == 1 and not PyLong_CheckExact(shape[0]) and hasattr(shape[0], "np_dtype"):
        return _view_dtype(a, shape[0])
    sh = _infer_shape(size_args(shape), cnp.PyArray_SIZE(x))
    r = cnp.PyArray_Reshape(x, sh)
    if cnp.PyArray_DATA(r) != cnp.PyArray_DATA(x) and cnp.PyArray_SIZE(x) != 0:
        raise RuntimeError(
            f"view size is not compatible with input tensor's size and stride (at least one "
            f"dimension spans across two contiguous subspaces): cannot view shape "
            f"{list(_shape(a))} as {list(sh)} without a copy. Use .reshape(...) instead.")
    out = make_view(a, r)
    if _rec(a):
        node = ViewBackward0.__new__(ViewBackward0)
        node.in_shape = (<object>x).shape
        set_history1(out, node, a)
    return out


cdef object _view_dtype(TensorBase a, object dtype):
    """x.view(dtype): the same bytes read as another dtype (a view, never differentiable). A
    different element size rescales the last dim, which must then be contiguous."""
    cdef cnp.ndarray x = a._data
    cdef TensorBase root = a._base if a._base is not None else a
    new = dtype.np_dtype
    cdef Py_ssize_t old_sz = x.itemsize, new_sz = new.itemsize, i
    if old_sz != new_sz:
        what = (f"to view {scalar_type_name(x.dtype)} as "
                f"{scalar_type_name(new)} (different element sizes)")
        if x.ndim == 0:
            raise RuntimeError(f"self.dim() cannot be 0 {what}")
        if x.size == 0:                        # no bytes to reinterpret: only the sizes matter
            last = x.shape[x.ndim - 1] * old_sz
            if last % new_sz:
                raise RuntimeError(f"self.size(-1) must be divisible by {new_sz // old_sz} "
                                   f"{what}, but got {x.shape[x.ndim - 1]}")
            return make_view(a, np.empty((<object>x).shape[:-1] + (last // new_sz,), new))
        if x.shape[x.ndim - 1] != 1 and x.strides[x.ndim - 1] != old_sz:
            raise RuntimeError(f"self.stride(-1) must be 1 {what}, but got "
                               f"{x.strides[x.ndim - 1] // old_sz}")
        if new_sz > old_sz:
            k = new_sz // old_sz
            if x.shape[x.ndim - 1] % k:
                raise RuntimeError(f"self.size(-1) must be divisible by {k} {what}, but got "
                                   f"{x.shape[x.ndim - 1]}")
            off = (<Py_ssize_t>cnp.PyArray_DATA(x) - <Py_ssize_t>cnp.PyArray_DATA(root._data)) \
                // old_sz
            if off % k:
                raise RuntimeError(f"self.storage_offset() must be divisible by {k} {what}, "
                                   f"but got {off}")
            for i in range(x.ndim - 1):
                if (x.strides[i] // old_sz) % k:
                    raise RuntimeError(f"self.stride({i}) must be divisible by {k} {what}, but "
                                       f"got {x.strides[i] // old_sz}")
        if x.shape[x.ndim - 1] == 1 and x.strides[x.ndim - 1] != old_sz:
            x = np.lib.stride_tricks.as_strided(x, (<object>x).shape,
                                                (<object>x).strides[:-1] + (old_sz,),
                                                writeable=x.flags.writeable)
    return make_view(a, x.view(new))


def view_as(input, other):
    return view(input, (<TensorBase>other).shape)


def reshape_as(input, other):
    return reshape_c(input, _shape(other))


# Note [Nodes named for a view]
# PyTorch names the node of some ops after the view that ends them: linear over an input of more
# than 2 dims is ViewBackward0, a batched matmul UnsafeViewBackward0, x[0, None] is
# UnsqueezeBackward0 and x[...] AliasBackward0. fastgrad records each such op as one node with
# the op's own backward. A name has one class, the view's, here: the family above records its
# backward node as the named node's `inner`, and the named node runs it in its place (apply,
# release_variables). So the gradient is the op's own, and grad_fn's type and name are
# PyTorch's.

cdef class ReshapeBackward(Node):
    """grad_a = grad reshaped to the input's shape (or `inner`'s backward: Note [Nodes named for
    a view])"""

    cdef tuple apply(self, tuple grads):
        if self.inner is not None:
            return self.inner.apply(grads)
        return (reshape_c(grads[0], self.in_shape),)

    cdef void release_variables(self):
        if self.inner is not None:
            self.inner.release_variables()


@cython.final
cdef class ViewBackward0(ReshapeBackward):
    pass


@cython.final
cdef class UnsafeViewBackward0(ReshapeBackward):
    pass


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one (the same tensor when nothing changes)."""
    cdef TensorBase a = input
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, s, e, i
    cdef Py_ssize_t n = 1
    s = wrap_dim(start_dim, nd, "flatten")
    e = wrap_dim(end_dim, nd, "flatten")
    if nd == 0:
        return reshape_c(a, (1,))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return a
    for i in range(s, e + 1):
        n *= x.shape[i]
    sh = _shape(a)
    return reshape_c(a, (n,) if s == 0 and e == nd - 1 else sh[:s] + (n,) + sh[e + 1:])


def unflatten(input, dim, sizes):
    """Split dim `dim` into `sizes` (one entry may be -1)."""
    cdef TensorBase a = input
    d = wrap_dim(dim, a._data.ndim, "unflatten")
    if a._data.ndim == 0:
        raise RuntimeError("unflatten() cannot be applied to a 0-dim tensor")
    sh = _shape(a)
    sizes = tuple(sizes)
    for v in <tuple>sizes:
        if not PyLong_CheckExact(v):
            sizes = tuple([int(v) for v in sizes])
            break
    sizes = _infer_shape(sizes, sh[d])
    return reshape_c(a, sh[:d] + sizes + sh[d + 1:])


# --- squeeze / unsqueeze -------------------------------------------------------------------------

def squeeze(input, dim=None):
    """Drop size-1 dims (all, one `dim`, or a tuple of dims); others are kept."""
    cdef TensorBase a = input
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, i, k = 0, kind
    cdef bint drop[MAXD]
    cdef cnp.npy_intp dims[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    if dim is None:
        kind = 0
        for i in range(nd):
            drop[i] = x.shape[i] == 1
    else:
        for i in range(nd):
            drop[i] = False
        if isinstance(dim, (int, np.integer)):
            kind = 1
            i = wrap_dim(dim, nd, "squeeze")
            if nd:
                drop[i] = x.shape[i] == 1
        else:
            kind = 2
            for d in dim:
                i = wrap_dim(d, nd, "squeeze")
                if nd:
                    drop[i] = x.shape[i] == 1
    for i in range(nd):
        if not drop[i]:
            dims[k] = x.shape[i]
            strides[k] = x.strides[i]
            k += 1
    return _record_reshape(a, strided_view(x, k, dims, strides, x.data, _writeable(x)), kind)


cdef object squeeze_to(TensorBase a, tuple shape, int kind):
    return _record_reshape(a, cnp.PyArray_Reshape(a._data, shape), kind)


cdef object _record_reshape(TensorBase a, cnp.ndarray r, int kind):
    """The view r of a, recorded as Squeeze (kind 0/1/2) or Unsqueeze (3) backward."""
    cdef TensorBase out = make_view(a, r)
    cdef ReshapeBackward node
    if _rec(a):
        node = (SqueezeBackward0.__new__(SqueezeBackward0) if kind == 0 else
                SqueezeBackward1.__new__(SqueezeBackward1) if kind == 1 else
                SqueezeBackward2.__new__(SqueezeBackward2) if kind == 2 else
                UnsqueezeBackward0.__new__(UnsqueezeBackward0))
        node.in_shape = _shape(a)
        set_history1(out, node, a)
    return out


@cython.final
cdef class SqueezeBackward0(ReshapeBackward):
    pass


@cython.final
cdef class SqueezeBackward1(ReshapeBackward):
    pass


@cython.final
cdef class SqueezeBackward2(ReshapeBackward):
    pass


def unsqueeze(input, dim):
    cdef TensorBase a = input
    return unsqueeze_c(a, wrap_dim(dim, a._data.ndim + 1, "unsqueeze"))


cdef object unsqueeze_c(TensorBase a, int dim):
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, i
    cdef cnp.npy_intp dims[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    if nd >= MAXD:
        raise RuntimeError(f"unsqueeze: a tensor can have at most {MAXD} dims")
    for i in range(nd + 1):
        if i < dim:
            dims[i] = x.shape[i]
            strides[i] = x.strides[i]
        elif i == dim:
            dims[i] = 1
            strides[i] = x.strides[i] * x.shape[i] if i < nd else x.itemsize
        else:
            dims[i] = x.shape[i - 1]
            strides[i] = x.strides[i - 1]
    return _record_reshape(a, strided_view(x, nd + 1, dims, strides, x.data, _writeable(x)), 3)


@cython.final
cdef class UnsqueezeBackward0(ReshapeBackward):
    pass


# --- transpose / permute -------------------------------------------------------------------------

def transpose(input, dim0, dim1):
    cdef TensorBase a = input
    cdef int nd = a._data.ndim
    return transpose_c(a, wrap_dim(dim0, nd, "transpose"), wrap_dim(dim1, nd, "transpose"))


cdef object transpose_c(TensorBase a, int d0, int d1):
    cdef TensorBase out
    cdef TransposeBackward0 node
    if a._data.ndim < 2:
        return make_view(a, a._data.view()) if not _rec(a) else _alias(a)
    out = make_view(a, cnp.PyArray_SwapAxes(a._data, d0, d1))
    if _rec(a):
        node = TransposeBackward0.__new__(TransposeBackward0)
        node.d0 = d0
        node.d1 = d1
        set_history1(out, node, a)
    return out


@cython.final
cdef class TransposeBackward0(Node):
    """grad_a = grad.transpose(d0, d1)"""
    cdef int d0, d1

    cdef tuple apply(self, tuple grads):
        return (transpose_c(grads[0], self.d0, self.d1),)


def t(input):
    """Transpose of a tensor with at most 2 dims (TBackward0)."""
    cdef TensorBase a = input, out
    cdef Node node
    if a._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{a._data.ndim}D; use transpose(dim0, dim1) or .mT instead")
    out = make_view(a, cnp.PyArray_Transpose(a._data, NULL))
    if _rec(a):
        node = TBackward0.__new__(TBackward0)
        set_history1(out, node, a)
    return out


@cython.final
cdef class TBackward0(Node):
    """grad_a = grad.t()"""
    cdef tuple apply(self, tuple grads):
        return (t(grads[0]),)


def permute(input, *dims):
    cdef TensorBase a = input
    cdef int nd = a._data.ndim, i, d
    cdef bint seen[MAXD]
    dims = size_args(dims)
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {nd} is not equal to len(dims) = {len(dims)}")
    for i in range(nd):
        seen[i] = False
    wrapped = list(dims)
    for i in range(nd):
        d = wrap_dim(dims[i], nd, "permute")
        if seen[d]:
            raise RuntimeError(f"permute(): duplicate dims are not allowed (got {list(dims)})")
        seen[d] = True
        wrapped[i] = d
    return permute_c(a, tuple(wrapped))


cdef object permute_c(TensorBase a, tuple dims):
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, i, d
    cdef cnp.npy_intp shp[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    cdef list inv
    cdef TensorBase out
    cdef PermuteBackward0 node
    for i in range(nd):
        d = dims[i]
        shp[i] = x.shape[d]
        strides[i] = x.strides[d]
    out = make_view(a, strided_view(x, nd, shp, strides, x.data, _writeable(x)))
    if _rec(a):
        inv = [0] * nd
        for i in range(nd):
            inv[<int>dims[i]] = i
        node = PermuteBackward0.__new__(PermuteBackward0)
        node.inv = tuple(inv)
        set_history1(out, node, a)
    return out


@cython.final
cdef class PermuteBackward0(Node):
    """grad_a = grad.permute(inverse of dims)"""
    cdef tuple inv

    cdef tuple apply(self, tuple grads):
        return (permute_c(grads[0], self.inv),)


def T(input):
    """x.T: all dims reversed (PermuteBackward0)."""
    cdef TensorBase a = input
    cdef int nd = a._data.ndim
    if nd == 2:
        return permute_c(a, _REV2)
    return permute_c(a, tuple(range(nd - 1, -1, -1)))


cdef tuple _REV2 = (1, 0)


def mT(input):
    """x.mT: the last two dims swapped (batched matrix transpose)."""
    cdef TensorBase a = input
    if a._data.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {a._data.ndim}-D tensor.")
    return transpose_c(a, a._data.ndim - 2, a._data.ndim - 1)


def swapaxes(input, axis0, axis1):
    return transpose(input, axis0, axis1)


def movedim(input, source, destination):
    cdef TensorBase a = input
    cdef int nd = a._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [wrap_dim(d, nd, "movedim") for d in src]
    dst = [wrap_dim(d, nd, "movedim") for d in dst]
    if nd == 0:
        return _alias(a)
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute_c(a, tuple(order))


cdef object _alias(TensorBase a):
    cdef TensorBase out = make_view(a, a._data.view())
    cdef Node node
    if _rec(a):
        node = AliasBackward0.__new__(AliasBackward0)
        set_history1(out, node, a)
    return out


@cython.final
cdef class AliasBackward0(ReshapeBackward):
    """grad_a = grad (or `inner`'s backward: Note [Nodes named for a view])"""

    cdef tuple apply(self, tuple grads):
        if self.inner is not None:
            return self.inner.apply(grads)
        return (grads[0],)


# --- expand / contiguous -------------------------------------------------------------------------

def expand(input, *sizes):
    """Broadcast to `sizes` (-1 keeps a dim) without copying (ExpandBackward0)."""
    cdef TensorBase a = input
    cdef cnp.ndarray x = a._data
    cdef Py_ssize_t i, s, n, lead, nd = x.ndim
    if not sizes:
        raise TypeError('expand() missing 1 required positional arguments: "size" (pass the '
                        'target shape, e.g. x.expand(2, 3) or x.expand_as(other))')
    sizes = size_args(sizes)
    n = len(sizes)
    lead = n - nd
    if lead < 0:
        raise RuntimeError(f"expand({list(_shape(a))}, size={list(sizes)}): the number of sizes "
                           f"provided ({n}) must be greater or equal to the number of dimensions "
                           f"in the tensor ({nd})")
    target = list(sizes)
    for i in range(n):
        s = sizes[i]
        if i < lead:
            if s < 0:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing "
                                   f"dimension {i}")
        elif s == -1:
            target[i] = x.shape[i - lead]
        elif x.shape[i - lead] != s and x.shape[i - lead] != 1:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size "
                f"({x.shape[i - lead]}) at non-singleton dimension {i}.  Target sizes: "
                f"{list(sizes)}.  Tensor sizes: {list(_shape(a))}")
    return expand_c(a, tuple(target))


cdef object expand_c(TensorBase a, tuple shape):
    """a broadcast to `shape` (validated): stride 0 along new and expanded dims, read-only."""
    cdef cnp.ndarray x = a._data
    cdef TensorBase out
    cdef ExpandBackward0 node
    cdef Py_ssize_t i, n = len(shape), lead = n - x.ndim, s
    cdef cnp.npy_intp dims[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    if n > MAXD or lead < 0:
        raise RuntimeError(f"expand: cannot expand shape {list(_shape(a))} to {list(shape)}")
    for i in range(n):
        s = shape[i]
        dims[i] = s
        if i < lead or (x.shape[i - lead] == 1 and s != 1):
            strides[i] = 0
        elif x.shape[i - lead] == s:
            strides[i] = x.strides[i - lead]
        else:
            raise RuntimeError(f"expand: cannot expand shape {list(_shape(a))} to {list(shape)}")
    out = make_view(a, strided_view(x, n, dims, strides, x.data, False))
    if _rec(a):
        node = ExpandBackward0.__new__(ExpandBackward0)
        node.in_shape = _shape(a)
        set_history1(out, node, a)
    return out


def expand_as(input, other):
    return expand(input, _shape(other))


def broadcast_to(input, size):
    return expand(input, tuple(size))


def contiguous(input, memory_format=None):
    """self when already C-contiguous, else a contiguous copy (CloneBackward0)."""
    cdef TensorBase a = input
    if a._data.flags.c_contiguous:
        return a
    return _clone(a)


def diagonal(input, offset=0, dim1=0, dim2=1):
    """A view of the diagonal (offset) of the (dim1, dim2) planes, as the last dim."""
    cdef TensorBase a = input, out
    cdef DiagonalBackward0 node
    cdef cnp.ndarray x = a._data
    cdef int nd = x.ndim, i, k = 0, d1, d2
    cdef Py_ssize_t off = offset, n
    cdef cnp.npy_intp dims[MAXD]
    cdef cnp.npy_intp strides[MAXD]
    cdef char* data = x.data
    d1 = wrap_dim(dim1, nd, "diagonal")
    d2 = wrap_dim(dim2, nd, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    for i in range(nd):
        if i != d1 and i != d2:
            dims[k] = x.shape[i]
            strides[k] = x.strides[i]
            k += 1
    n = min(x.shape[d1] - (-off if off < 0 else 0), x.shape[d2] - (off if off > 0 else 0))
    dims[k] = n if n > 0 else 0
    strides[k] = x.strides[d1] + x.strides[d2]
    if dims[k] > 0:
        data += off * x.strides[d2] if off >= 0 else -off * x.strides[d1]
    out = make_view(a, strided_view(x, k + 1, dims, strides, data, _writeable(x)))
    if _rec(a):
        node = DiagonalBackward0.__new__(DiagonalBackward0)
        node.in_shape = _shape(a)
        node.offset = off
        node.d1 = d1
        node.d2 = d2
        set_history1(out, node, a)
    return out


@cython.final
cdef class DiagonalBackward0(Node):
    """grad_a = zeros with grad written on the diagonal (Note [Flat positions])"""
    cdef tuple in_shape
    cdef Py_ssize_t offset
    cdef int d1, d2

    cdef tuple apply(self, tuple grads):
        pos = np.ascontiguousarray(np.diagonal(np.arange(np.prod(self.in_shape, dtype=np.int64),
                                                         dtype=np.int64).reshape(self.in_shape),
                                               self.offset, self.d1, self.d2))
        return (scatter_add_flat(grads[0], self.in_shape, pos, True),)



def flip(input, *dims):
    """A copy with the order of elements reversed along `dims`."""
    cdef TensorBase a = input, out
    cdef FlipBackward0 node
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    dims = tuple([wrap_dim(d, a._data.ndim, "flip") for d in dims])
    if len(set(dims)) != len(dims):
        d = next(d for d in dims if dims.count(d) > 1)
        raise RuntimeError(f"flip: dim {d} appears multiple times in the list of dims")
    if a._data.ndim == 0:
        dims = ()
    out = wrap(np.flip(a._data, dims).copy() if dims else a._data.copy())
    if _rec(a):
        node = FlipBackward0.__new__(FlipBackward0)
        node.dims = dims
        set_history1(out, node, a)
    return out


@cython.final
cdef class FlipBackward0(Node):
    """grad_a = grad flipped along the same dims"""
    cdef tuple dims

    cdef tuple apply(self, tuple grads):
        return (flip(grads[0], self.dims),)

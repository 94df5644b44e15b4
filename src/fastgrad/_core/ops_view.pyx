# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Views and shapes: reshape/view/flatten/unflatten/squeeze/unsqueeze/transpose/permute/t/T/mT/
expand/contiguous/diagonal/chunk/split/unbind, plus repeat/flip/cat/stack (copies).

A view's storage is a NumPy view of its input's array (no copy) and `out._base` is the root base,
so base and views share one version counter (Note [Version counters]) and writes through a view
show in the base. Each backward is a recorded op (reshape back, transpose back, sum_to ...), so
views are differentiable twice. Indexing (`x[...]`, setitem, gather ...) lives in ops_index.pyx.

Note [Flat positions]
`take_flat(g, pos)` and `scatter_add_flat(g, shape, pos)` are the two primitives every indexing
gradient is written with: `pos` is an int64 array of C-order flat indices into a tensor of
`shape`. Each is the other's backward, so gradients of gradients stay recorded ops.
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject, PyTypeObject, Py_INCREF
from cpython.long cimport PyLong_CheckExact
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport scalar_type_name
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap, set_history, set_history1
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.promotion cimport promote_arrays
from fastgrad._core.ops_reduce cimport sum_to, sum_, ExpandBackward0
from fastgrad._core.ops_cast import clone as _clone

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyArray_Type
    object _new_from_descr "PyArray_NewFromDescr" (PyTypeObject*, cnp.PyArray_Descr*, int,
                                                    cnp.npy_intp*, cnp.npy_intp*, void*, int,
                                                    PyObject*)

DEF MAXD = 64                     # NumPy's NPY_MAXDIMS


# --- helpers -------------------------------------------------------------------------------------



cdef inline bint _rec(TensorBase a):
    return a._requires_grad and grad_enabled()


cdef TensorBase make_view(TensorBase a, cnp.ndarray arr):
    """A tensor over `arr` (a NumPy view of a's array) sharing a's root base."""
    cdef TensorBase out = wrap(arr)
    out._base = a._base if a._base is not None else a
    return out


cdef cnp.ndarray strided_view(cnp.ndarray x, int nd, cnp.npy_intp* dims, cnp.npy_intp* strides,
                         char* data, bint writeable):
    """An ndarray over x's memory at `data` with the given dims and byte strides (its base is x):
    the one C call every view below is built with, no Python-level NumPy dispatch."""
    cdef cnp.PyArray_Descr* d = cnp.PyArray_DESCR(x)
    Py_INCREF(<object>d)                               # PyArray_NewFromDescr steals it
    cdef cnp.ndarray r = _new_from_descr(&PyArray_Type, d, nd, dims, strides, data,
                                         cnp.NPY_ARRAY_WRITEABLE if writeable else 0, NULL)
    cnp.set_array_base(r, x)
    return r


cdef inline bint _writeable(cnp.ndarray x) noexcept:
    return cnp.PyArray_FLAGS(x) & cnp.NPY_ARRAY_WRITEABLE


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


cdef class ReshapeBackward(Node):
    """grad_a = grad reshaped to the input's shape"""
    cdef tuple in_shape

    cdef tuple apply(self, tuple grads):
        return (reshape_c(grads[0], self.in_shape),)


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
cdef class AliasBackward0(Node):
    """grad_a = grad"""
    cdef tuple apply(self, tuple grads):
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


# --- flat positions: take / scatter-add (Note [Flat positions]) ----------------------------------

cdef object take_flat(TensorBase g, cnp.ndarray pos):
    cdef TensorBase out = wrap(np.take(g._data, pos))
    cdef TakeBackward0 node
    if _rec(g):
        node = TakeBackward0.__new__(TakeBackward0)
        node.in_shape = _shape(g)
        node.pos = pos
        set_history1(out, node, g)
    return out


@cython.final
cdef class TakeBackward0(Node):
    """grad_g = zeros(in_shape) with grad added at pos"""
    cdef tuple in_shape
    cdef cnp.ndarray pos

    cdef tuple apply(self, tuple grads):
        return (scatter_add_flat(grads[0], self.in_shape, self.pos, False),)


cdef object scatter_add_flat(TensorBase g, tuple shape, cnp.ndarray pos, bint unique):
    cdef cnp.ndarray z = np.zeros(shape, dtype=g._data.dtype)
    cdef TensorBase out
    cdef PutBackward0 node
    flat = z.reshape(-1)
    src = np.broadcast_to(g._data, (<object>pos).shape)
    if unique:
        flat[pos] = src
    else:
        np.add.at(flat, pos, src)
    out = wrap(z)
    if _rec(g):
        node = PutBackward0.__new__(PutBackward0)
        node.pos = pos
        set_history1(out, node, g)
    return out


@cython.final
cdef class PutBackward0(Node):
    """grad_g = grad.flatten()[pos]"""
    cdef cnp.ndarray pos

    cdef tuple apply(self, tuple grads):
        return (take_flat(grads[0], self.pos),)


# --- repeat / flip -------------------------------------------------------------------------------

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
    from fastgrad._core.ops_index import index_select
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


# --- cat / stack ---------------------------------------------------------------------------------

cdef object _narrow(TensorBase g, int dim, Py_ssize_t start, Py_ssize_t stop):
    """g[..., start:stop, ...] along dim: a view (SliceBackward0 via indexing)."""
    from fastgrad._core.ops_index import _slice_dim
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
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
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
        from fastgrad._core.ops_index import _select_dim
        return tuple([_select_dim(grads[0], self.dim, i) if self._next_fns[i] is not None
                      else None for i in range(len(self._next_fns))])


def hstack(tensors):
    tensors = list(tensors)
    return cat_c(tensors, 0 if (<TensorBase>tensors[0])._data.ndim == 1 else 1)


def vstack(tensors):
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


# --- out= (Note: PyTorch's out= functions are not differentiable) ------------------------------------

cdef dict _CNAMES = {"float32": "float", "float64": "double", "float16": "c10::Half",
                     "int64": "long int", "int32": "int", "int16": "short int",
                     "int8": "signed char", "uint8": "unsigned char", "bool": "bool"}


def out_check(str name, out, *inputs):
    """Refuse out= when grad mode is on and an input (tensors in lists count) or out itself
    requires grad, as PyTorch does."""
    if not isinstance(out, TensorBase):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if not grad_enabled():
        return
    cdef bint need = (<TensorBase>out)._requires_grad
    for t in inputs:
        if isinstance(t, (list, tuple)):
            need = need or any(isinstance(u, TensorBase) and (<TensorBase>u)._requires_grad
                               for u in t)
        elif isinstance(t, TensorBase):
            need = need or (<TensorBase>t)._requires_grad
    if need:
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           f"differentiation, but one of the arguments requires grad.")


def write_out(out, result, int rule):
    """Copy `result` into `out` and return out. rule 0: out must have result's dtype (BLAS
    products); 1: result must cast to out's dtype within its kind (pointwise); 2: as 1 with
    cat's TypeError. A wrongly shaped out is resized, with PyTorch's warning unless it was
    empty."""
    cdef TensorBase o = out, r = result
    cdef cnp.ndarray od = o._data, rd = r._data
    if rule == 0 and od.dtype != rd.dtype:
        raise RuntimeError(f"Expected out tensor to have dtype {_CNAMES.get(rd.dtype.name)}, "
                           f"but got {_CNAMES.get(od.dtype.name)} instead")
    if rule and not np.can_cast(rd.dtype, od.dtype, "same_kind"):
        if rule == 2:
            raise TypeError(f"torch.cat(): input types can't be cast to the desired output "
                            f"type {scalar_type_name(od.dtype)}")
        raise RuntimeError(f"result type {scalar_type_name(rd.dtype)} can't be cast to the "
                           f"desired output type {scalar_type_name(od.dtype)}")
    if (<object>od).shape != (<object>rd).shape:
        if od.size:
            import warnings
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list((<object>od).shape)}, which does not match the required output "
                          f"shape {list((<object>rd).shape)}. This behavior is deprecated, and "
                          f"in a future PyTorch release outputs will not be resized unless they "
                          f"have zero elements. You can explicitly reuse an out tensor t by "
                          f"resizing it, inplace, to zero elements with t.resize_(0).",
                          UserWarning, stacklevel=3)
        o._data = np.empty((<object>rd).shape, dtype=od.dtype)
    np.copyto(o._data, rd, casting="unsafe")
    o.bump_version()
    return o


def _diag_scatter(g, tuple shape, cnp.ndarray pos):
    """zeros(shape) with g written at the flat positions pos (a generalized diagonal)."""
    return scatter_add_flat(g, shape, pos, True)

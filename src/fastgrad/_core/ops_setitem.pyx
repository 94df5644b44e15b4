# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""x[key] = v, and in-place writes through views: the CopySlices rebase of a view's root.

Note [In-place writes through views]
Writing into a view `v` of a base `B` (v[...] = x, v.mul_(2), y[0] = 5 with y non-leaf) changes
B. As PyTorch's CopySlices: B's history is rebased onto a node that, given B's gradient, takes
the view region (`take_flat` at v's flat positions in B), runs the in-place op's own backward
on it, and writes the result back into the region (zeroed first). The positions are found from
the arrays' memory addresses and strides, so any chain of views works. `v` then becomes an
AsStridedBackward0 view of the new B. Views of B taken before the write keep their old history
(PyTorch regenerates them; fastgrad does not yet).
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history, set_history1
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_reduce cimport sum_to
from fastgrad._core.ops_strided cimport take_flat, scatter_add_flat
from fastgrad._core.ops_index cimport _parse_key
from fastgrad._core.ops_select cimport select_grad
from fastgrad._core.inplace_checks cimport check_inplace

cnp.import_array()


cdef cnp.ndarray _positions(TensorBase v, TensorBase root):
    """Flat C-order index into `root` of every element of the view `v` (same dtype, same memory)."""
    cdef cnp.ndarray x = v._data, r = root._data
    item = r.itemsize
    if r.size == 0 or x.size == 0:
        return np.zeros((<object>x).shape, dtype=np.int64)
    rp = r.__array_interface__["data"][0]
    vp = x.__array_interface__["data"][0]
    offs_r = _offsets(r)
    offs_v = _offsets(x) + (vp - rp)
    lo = int(offs_r.min())
    span = (int(offs_r.max()) - lo) // item + 1
    table = np.full(span, -1, dtype=np.int64)
    table[(offs_r - lo) // item] = np.arange(r.size, dtype=np.int64).reshape((<object>r).shape)
    k = offs_v - lo
    if x.dtype != r.dtype or (k % item).any() or k.min() < 0 or k.max() >= span * item:
        raise RuntimeError("in-place write through a view: the view does not lie inside its "
                           "base's storage; clone() the view before writing to it")
    pos = np.asarray(table[k // item])                   # an int, not an array, for a 0-d view
    if (pos < 0).any():
        raise RuntimeError("in-place write through a view whose elements are not elements of "
                           "its base; clone() the view before writing to it")
    return pos


cdef object _offsets(cnp.ndarray x):
    off = np.zeros((<object>x).shape, dtype=np.int64)
    for d in range(x.ndim):
        sh = [1] * x.ndim
        sh[d] = (<object>x).shape[d]
        off = off + (np.arange((<object>x).shape[d], dtype=np.int64) * x.strides[d]).reshape(sh)
    return off


def setitem(input, key, value):
    """x[key] = value (a number or a tensor broadcastable to the region)."""
    cdef TensorBase a = input, tv = None, root, hist
    cdef SetRegion fn
    check_inplace(a)
    if (isinstance(key, TensorBase) and (<TensorBase>key)._data.dtype == np.uint8
            and not isinstance(value, TensorBase)):
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                           "unsigned char (uint8): make the mask with .bool()")
    npkey, advanced, _ = _parse_key(a, key)
    if isinstance(value, TensorBase):
        tv = value
        src = tv._data
    elif isinstance(value, (list, tuple)):
        src = np.asarray(value)
    else:
        src = value
    region_shape = np.empty(_shape(a), dtype=np.uint8)[npkey].shape
    try:
        np.broadcast_shapes(np.shape(src), region_shape)
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(np.shape(src))} cannot "
                           f"be broadcast to indexing result of shape {list(region_shape)}")
    if not (grad_enabled() and (a._requires_grad or (tv is not None and tv._requires_grad))):
        a._data[npkey] = src
        a.bump_version()
        return
    root = a._base if a._base is not None else a
    pos_a = (np.arange(a._data.size, dtype=np.int64).reshape(_shape(a)) if root is a
             else _positions(a, root))
    pos = np.asarray(pos_a[npkey])
    a._data[npkey] = src
    fn = SetRegion.__new__(SetRegion)
    if tv is not None and tv._requires_grad and (np.shape(src) != pos.shape or
                                                 src.dtype != a._data.dtype):
        fn._in_meta = (None, (np.shape(src), src.dtype))
    set_history(wrap(a._data), fn, (None, tv))
    _rebase_root(a, root, pos, pos_a, fn)
    a.bump_version()


@cython.final
cdef class SetRegion(Node):
    """The in-place op of x[key] = v as seen by CopySlices: grad_old = 0, grad_v = grad."""
    cdef tuple apply(self, tuple grads):
        return (None, grads[0])


cdef void _rebase_root(TensorBase a, TensorBase root, cnp.ndarray pos, cnp.ndarray pos_a,
                       Node fn) except *:
    """Make `root` the output of CopySlices(fn) and `a` (if a view) a view of the new root."""
    cdef TensorBase hist = wrap(root._data)
    cdef CopySlices node = CopySlices.__new__(CopySlices)
    cdef AsStridedBackward0 vnode
    hist._grad_fn = root._grad_fn
    hist._requires_grad = root._requires_grad
    hist._output_nr = root._output_nr
    node.fn = fn
    node.pos = pos
    node.shape = _shape(root)
    set_history(root, node, (hist,) + (None,) * (len(fn._next_fns) - 1))
    nrs0 = node._next_nrs[0] if node._next_nrs is not None else 0
    fnrs = fn._next_nrs if fn._next_nrs is not None else (0,) * len(fn._next_fns)
    node._next_fns = (node._next_fns[0],) + fn._next_fns[1:]
    nrs = (nrs0,) + tuple(fnrs[1:])
    node._next_nrs = nrs if any(nrs) else None
    root._output_nr = 0
    if a is not root:
        vnode = AsStridedBackward0.__new__(AsStridedBackward0)
        vnode.pos = pos_a
        vnode.shape = _shape(root)
        set_history1(a, vnode, root)
        a._output_nr = 0


cdef void rebase_view(TensorBase a) except *:
    """Called by ops_inplace after an in-place op recorded `a`'s new history (a is a view)."""
    cdef TensorBase root = a._base
    if root is None or a._grad_fn is None:
        return
    pos = _positions(a, root)
    _rebase_root(a, root, pos, pos, a._grad_fn)


@cython.final
cdef class CopySlices(Node):
    """grad_root_old = grad with the region replaced by fn's grad of its old values;
    other inputs = fn's grads, fn run on grad taken at the region (Note [In-place writes through views])."""
    cdef Node fn
    cdef cnp.ndarray pos
    cdef tuple shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        gv = take_flat(g, self.pos)
        res = list(self.fn.apply((gv,)))
        meta = self.fn._in_meta
        for i in range(1, len(res)):
            if meta is not None and meta[i] is not None and res[i] is not None:
                r = res[i]
                if tuple(r.shape) != meta[i][0]:
                    r = sum_to(r, meta[i][0])
                res[i] = r
        g0 = None
        if self._next_fns[0] is not None:
            keep = np.ones(self.shape, dtype=bool)
            keep.reshape(-1)[self.pos.reshape(-1)] = False
            g0 = select_grad(keep, g)
            if res[0] is not None:
                g0 = pw.add(g0, scatter_add_flat(res[0], self.shape, self.pos, False))
        return (g0,) + tuple(res[1:])

    cdef void release_variables(self):
        self.fn.release_variables()


@cython.final
cdef class AsStridedBackward0(Node):
    """grad_root = zeros with grad added at the view's positions"""
    cdef cnp.ndarray pos
    cdef tuple shape

    cdef tuple apply(self, tuple grads):
        return (scatter_add_flat(grads[0], self.shape, self.pos, False),)

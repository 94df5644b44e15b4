# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""Strided views and flat positions: the primitives ops_view, ops_join and ops_index build on.

`strided_view` is the one C call every view is built with (an ndarray over another's memory,
no Python-level NumPy dispatch); `make_view` wraps such an ndarray as a tensor sharing its
input's root base, so base and views share one version counter (Note [Version counters]).

Note [Flat positions]
`take_flat(g, pos)` and `scatter_add_flat(g, shape, pos)` are the two primitives every indexing
gradient is written with: `pos` is an int64 array of C-order flat indices into a tensor of
`shape`. Each is the other's backward, so gradients of gradients stay recorded ops.
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject, PyTypeObject, Py_INCREF
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyArray_Type
    object _new_from_descr "PyArray_NewFromDescr" (PyTypeObject*, cnp.PyArray_Descr*, int,
                                                    cnp.npy_intp*, cnp.npy_intp*, void*, int,
                                                    PyObject*)


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




def _diag_scatter(g, tuple shape, cnp.ndarray pos):
    """zeros(shape) with g written at the flat positions pos (a generalized diagonal)."""
    return scatter_add_flat(g, shape, pos, True)

# Strided views and flat positions: the primitives ops_view, ops_join and ops_index build on.
cimport numpy as cnp
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase


cdef inline bint _rec(TensorBase a):
    return a._requires_grad and grad_enabled()


cdef inline bint _writeable(cnp.ndarray x) noexcept:
    return cnp.PyArray_FLAGS(x) & cnp.NPY_ARRAY_WRITEABLE


cdef TensorBase make_view(TensorBase a, cnp.ndarray arr)     # arr must be a view of a._data
cdef cnp.ndarray strided_view(cnp.ndarray x, int nd, cnp.npy_intp* dims, cnp.npy_intp* strides,
                             char* data, bint writeable)   # an ndarray over x's memory
cdef object take_flat(TensorBase g, cnp.ndarray pos)                 # g.flatten()[pos]
cdef object scatter_add_flat(TensorBase g, tuple shape, cnp.ndarray pos, bint unique)

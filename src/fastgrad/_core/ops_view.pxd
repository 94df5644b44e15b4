# Views, shapes, indexing and joining: forward entry points other ops_* modules reuse.
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase

cdef TensorBase make_view(TensorBase a, cnp.ndarray arr)     # arr must be a view of a._data
cdef cnp.ndarray strided_view(cnp.ndarray x, int nd, cnp.npy_intp* dims, cnp.npy_intp* strides,
                             char* data, bint writeable)   # an ndarray over x's memory
cdef object reshape_c(TensorBase a, tuple shape)              # view when possible, else a copy
cdef object transpose_c(TensorBase a, int d0, int d1)
cdef object permute_c(TensorBase a, tuple dims)
cdef object unsqueeze_c(TensorBase a, int dim)
cdef object squeeze_to(TensorBase a, tuple shape, int kind)  # drop size-1 dims to `shape`
cdef object expand_c(TensorBase a, tuple shape)
cdef object cat_c(list tensors, int dim)
cdef object take_flat(TensorBase g, cnp.ndarray pos)                 # g.flatten()[pos]
cdef object scatter_add_flat(TensorBase g, tuple shape, cnp.ndarray pos, bint unique)
cdef tuple size_args(tuple args)

# Views and shapes: forward entry points other ops_* modules reuse.
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase

cdef object reshape_c(TensorBase a, tuple shape)              # view when possible, else a copy
cdef object transpose_c(TensorBase a, int d0, int d1)
cdef object permute_c(TensorBase a, tuple dims)
cdef object unsqueeze_c(TensorBase a, int dim)
cdef object squeeze_to(TensorBase a, tuple shape, int kind)  # drop size-1 dims to `shape`
cdef object expand_c(TensorBase a, tuple shape)
cdef tuple size_args(tuple args)

# Indexing entry points other ops_* modules reuse (see ops_index.pyx).
from fastgrad._core.tensor cimport TensorBase

cdef object getitem_c(TensorBase a, object key)

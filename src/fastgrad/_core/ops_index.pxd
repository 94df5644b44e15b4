# Indexing entry points other ops_* modules reuse (see ops_index.pyx).
from fastgrad._core.tensor cimport TensorBase

cdef object getitem_c(TensorBase a, object key)
cdef void rebase_view(TensorBase a) except *      # after an in-place write into the view a

# Writes through views: what ops_inplace calls after an in-place op on a view (see ops_setitem.pyx).
from fastgrad._core.tensor cimport TensorBase

cdef void rebase_view(TensorBase a) except *      # after an in-place write into the view a

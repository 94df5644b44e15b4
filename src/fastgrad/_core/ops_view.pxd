# Views and shapes: forward entry points other ops_* modules reuse.
cimport cython
cimport numpy as cnp
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase


# The nodes named for a view (Note [Nodes named for a view] in ops_view.pyx); the families above
# that record their own backward under one of these names cimport them.
cdef class ReshapeBackward(Node):
    cdef tuple in_shape            # the input's shape (the view's backward reshapes to it)
    cdef Node inner                # the backward run in this node's place, or None

@cython.final
cdef class ViewBackward0(ReshapeBackward):
    pass

@cython.final
cdef class UnsafeViewBackward0(ReshapeBackward):
    pass

@cython.final
cdef class UnsqueezeBackward0(ReshapeBackward):
    pass

@cython.final
cdef class AliasBackward0(ReshapeBackward):
    pass


cdef object reshape_c(TensorBase a, tuple shape)              # view when possible, else a copy
cdef object transpose_c(TensorBase a, int d0, int d1)
cdef object permute_c(TensorBase a, tuple dims)
cdef object unsqueeze_c(TensorBase a, int dim)
cdef object squeeze_to(TensorBase a, tuple shape, int kind)  # drop size-1 dims to `shape`
cdef object expand_c(TensorBase a, tuple shape)
cdef tuple size_args(tuple args)

# Reductions and their backward nodes; sum_to (un-broadcasting), which the engine reaches through
# the op table (tensor.pxd).
cimport cython
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase

cdef object sum_(TensorBase a, object dim, bint keepdim)
cdef object mean(TensorBase a, object dim, bint keepdim)
cdef object as_dtype(TensorBase a, object dtype, str op)   # the input of sum/mean/... (dtype=)
cdef object sum_to(TensorBase g, tuple shape)
cdef tuple normalize_dims(object dim, int ndim, str op)
cdef object acc_dtype(object x, tuple axes, bint running)  # a sum's accumulator (Note [Sums' accumulators])
cdef object acc_for(object dt, Py_ssize_t terms, bint pairwise)    # the same by dtype and count


@cython.final
cdef class ExpandBackward0(Node):      # expand's node (ops_view): sums the gradient back
    cdef tuple in_shape

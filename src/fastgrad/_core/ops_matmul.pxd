# Matrix products: the checks and helpers ops_linear shares (see ops_matmul.pyx).
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase


cdef str _mat(tuple s)                                    # "2x3": a shape in a message
cdef object _mT(TensorBase a)                             # the last two dims swapped (a view)
cdef void _check_dtypes(TensorBase a, TensorBase b, str op) except *
cdef void _check_matmul(TensorBase a, TensorBase b) except *
cdef cnp.ndarray _blasable(cnp.ndarray g)                 # g, or a contiguous copy for BLAS
cdef cnp.ndarray _np_sum_to(object r, tuple shape)        # sum_to on arrays

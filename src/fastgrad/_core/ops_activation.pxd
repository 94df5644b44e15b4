# Activations (see ops_activation.pyx) and the argument helpers the other nn ops share.
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase

cdef TensorBase _tensor(object x, str op, str arg)   # x, or TypeError naming op and argument
cdef cnp.ndarray _c(cnp.ndarray a)                  # a, or a C-contiguous copy
cdef object _pick(object keep, object v, object w, object dtype)   # where(keep, v, w), no branch

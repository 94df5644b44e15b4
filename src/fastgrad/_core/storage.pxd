# The arrays behind tensors: new result arrays and the small array cache (storage.pyx).
cimport numpy as cnp
from cpython.ref cimport PyObject

cdef cnp.ndarray empty_like(cnp.ndarray x)    # uninitialised, C-contiguous (Note [Small array cache])
cdef void keep_array(PyObject* a) noexcept    # a dying tensor's array, cached when reusable

# Arithmetic: + - * / ** forward entry points (validate, promote, allocate, run a kernel, record).
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase

# Kernels on fewer elements keep the GIL: dropping and retaking it costs more than such a loop.
cdef enum:
    NOGIL_MIN = 4096

cdef object add(object a, object b)
cdef void record_add(TensorBase out, TensorBase a, TensorBase b) except *   # out = a + b, made elsewhere
cdef bint add_into(cnp.ndarray acc, cnp.ndarray g) noexcept   # acc += g in place when it can
cdef object sub(object a, object b)
cdef object rsub(object a, object b)           # b - a
cdef object mul(object a, object b)
cdef object div(object a, object b)
cdef object rdiv(object a, object b)           # b / a
cdef object pow_(object a, object b)
cdef object rpow(object a, object b)           # b ** a
cdef object mul_any(object a, object b)        # either may be a Python number
cdef object binary(int op, TensorBase a, object b)             # a (op) b, recorded
cdef cnp.ndarray binary_tt(int op, cnp.ndarray a, cnp.ndarray b)   # the values only
cdef cnp.ndarray binary_ts(int op, cnp.ndarray a, object s)
cdef int check_bool_sub(TensorBase a, object b) except -1     # PyTorch refuses bool - bool

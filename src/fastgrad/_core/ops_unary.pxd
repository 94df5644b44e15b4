# The hot unary ops (exp log sqrt sin cos tanh sigmoid relu neg abs reciprocal) by op code.
from fastgrad._core.tensor cimport TensorBase

cdef object unary(int op, TensorBase a)        # op: kernels.pxd's OP_NEG .. OP_RECIPROCAL
cdef void _record_unary(int op, TensorBase res, TensorBase a) except *   # res = op(a)'s node

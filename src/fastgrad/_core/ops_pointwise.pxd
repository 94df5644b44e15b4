# Elementwise ops: forward entry points (validate, promote, allocate, run a kernel, record a node).
cimport numpy as cnp
from fastgrad._core.tensor cimport TensorBase
from fastgrad._core.kernels cimport (OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_RSUB, OP_RDIV, OP_NEG,
    OP_ABS, OP_EXP, OP_LOG, OP_SQRT, OP_SIN, OP_COS, OP_TANH, OP_SIGMOID, OP_RELU,
    OP_RECIPROCAL, OP_POW)

cdef enum:
    CMP_EQ = 0
    CMP_NE = 1
    CMP_LT = 2
    CMP_LE = 3
    CMP_GT = 4
    CMP_GE = 5

cdef object add(object a, object b)
cdef bint add_into(cnp.ndarray acc, cnp.ndarray g) noexcept   # acc += g in place when it can
cdef object sub(object a, object b)
cdef object rsub(object a, object b)           # b - a
cdef object mul(object a, object b)
cdef object div(object a, object b)
cdef object rdiv(object a, object b)           # b / a
cdef object pow_(object a, object b)
cdef object rpow(object a, object b)           # b ** a
cdef object mul_any(object a, object b)        # either may be a Python number
cdef object unary(int op, TensorBase a)
cdef object compare(int op, object a, object b)
cdef object inplace(int op, TensorBase a, object b)
cdef void check_inplace(TensorBase a) except *   # PyTorch's in-place rules for leaves/views
cdef object fill_(TensorBase a, object value)
cdef object copy_(TensorBase a, object src)
cdef object where_(object cond, object a, object b)
cdef bint is_scalar(object x) noexcept
cdef object broadcast_shapes(tuple sa, tuple sb, str op)
cdef object promote_arrays(list arrays)       # result dtype of cat/stack's operands
cdef object _extremum(object input, object other, bint is_max)
# Note [Selecting, not masking, gradients]: the one way a backward zeroes part of a gradient
cdef object select_grad(object keep, object g)     # g where keep (bool ndarray), else 0
cdef object share_grad(object share, object g)     # g * share where share != 0, else 0
cdef object zeros_grad(object g)                   # zeros shaped like g

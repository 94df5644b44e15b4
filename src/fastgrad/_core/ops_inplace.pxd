# In-place writes and the machinery the in-place forms of other families share.
from fastgrad._core.tensor cimport TensorBase

cdef TensorBase history_alias(TensorBase a)    # a copy of a's values carrying a's history
cdef void rebase(TensorBase a, TensorBase res, str op) except *   # write res into a, a its output
cdef object inplace(int op, TensorBase a, object b)   # a (op)= b, op in OP_ADD .. OP_DIV
cdef object fill_(TensorBase a, object value)
cdef object copy_(TensorBase a, object src)

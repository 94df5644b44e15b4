# Selecting ops and the gradient-selection helpers (Note [Selecting, not masking, gradients]).
from fastgrad._core.tensor cimport TensorBase

cdef object where_(object cond, object a, object b)   # a and b: tensors or Python numbers
cdef object extremum(object input, object other, bint is_max)   # maximum / minimum
cdef object select_grad(object keep, object g)     # g where keep (bool ndarray), else 0
cdef object share_grad(object share, object g)     # g * share where share != 0, else 0
cdef object zeros_grad(object g)                   # zeros shaped like g

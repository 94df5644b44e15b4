# PyTorch's rules for in-place writes (inplace_checks.pyx).
from fastgrad._core.tensor cimport TensorBase

cdef void check_inference_inplace(TensorBase t) except *   # an inference tensor, outside inference mode
cdef void check_inplace(TensorBase a) except *             # all the rules: leaves, views, read-only memory

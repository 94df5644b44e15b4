# Copies and dtype conversions.
from fastgrad._core.tensor cimport TensorBase

cdef object cast(TensorBase a, object np_dtype, bint copy)   # recorded; a itself if no change

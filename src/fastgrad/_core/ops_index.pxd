# Indexing entry points other ops_* modules reuse (see ops_index.pyx).
from fastgrad._core.tensor cimport TensorBase

cdef object getitem_c(TensorBase a, object key)
cdef tuple _parse_key(TensorBase a, object key)   # (NumPy key, advanced?, basic key's node name)

# dtypes: the one table of element types (fastgrad.float32 ... and their names). See dtypes.pyx.
cimport numpy as cnp

cdef object dtype_of(cnp.ndarray arr)          # the fastgrad dtype object of an array
cdef str scalar_type_name(object np_dt)        # Float, Double, Long ... (PyTorch's error messages)
cdef object dtype_name(cnp.ndarray arr)        # torch.FloatTensor ... (legacy type names)

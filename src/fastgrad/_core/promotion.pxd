# Type promotion, Python scalars and broadcast shapes: the rules every elementwise op shares
# (PyTorch's). Arrays only, no tensors: see promotion.pyx.
cimport numpy as cnp
from libc.string cimport memcmp

cdef bint is_scalar(object x) noexcept             # a Python or NumPy number
cdef object promote_tt(cnp.ndarray a, cnp.ndarray b)   # dtype of an op on two tensors
cdef object promote_ts(cnp.ndarray a, object s)        # dtype of tensor (op) Python number
cdef object promote_arrays(list arrays)            # dtype of cat/stack's operands
cdef object broadcast_shapes(tuple sa, tuple sb, str op)


cdef inline object pyscalar(object x):
    """A NumPy number as the Python number it holds (other values as they are)."""
    return x.item() if isinstance(x, cnp.generic) else x


cdef inline int category(object dt):
    """bool < integer < floating, PyTorch's promotion categories."""
    cdef str k = dt.kind
    return 0 if k == "b" else (1 if k in "iu" else 2)


cdef inline bint same_shape(cnp.ndarray x, cnp.ndarray y) noexcept:
    cdef int nd = x.ndim
    if nd != y.ndim:
        return False
    return memcmp(cnp.PyArray_DIMS(x), cnp.PyArray_DIMS(y), nd * sizeof(cnp.npy_intp)) == 0


cdef inline bint fast_float(cnp.ndarray x) noexcept:
    """float32/float64, C-contiguous, aligned: the kernels' contract."""
    cdef int t = cnp.PyArray_TYPE(x)
    return (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64) and cnp.PyArray_IS_C_CONTIGUOUS(x) \
        and cnp.PyArray_ISALIGNED(x)


cdef inline cnp.ndarray as_array(object r):
    """ufuncs return NumPy scalars for 0-d inputs: always hand back an ndarray."""
    return r if type(r) is cnp.ndarray else cnp.PyArray_FROM_O(r)


cdef inline cnp.ndarray cast_array(cnp.ndarray x, object dt):
    """x as dtype dt (x itself when it has it)."""
    return x if x.dtype == dt else x.astype(dt)

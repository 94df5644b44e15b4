# cython: boundscheck=False, wraparound=False
"""Type promotion, Python scalars and broadcast shapes, as PyTorch defines them for elementwise
ops: the one place these rules are written (every ops_* module cimports them).

A higher category (bool < integer < floating) wins outright; within a category the wider type
wins, except that a 0-d tensor does not widen a dimensioned one and a Python number only lifts
the category (float32 + 2.5 is float32, int64 + 2.5 is float32).
"""
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef object _float32 = np.dtype(np.float32)
cdef object _int64 = np.dtype(np.int64)


cdef bint is_scalar(object x) noexcept:
    return isinstance(x, (float, int)) or isinstance(x, np.generic)


cdef object promote_tt(cnp.ndarray a, cnp.ndarray b):
    """Result dtype of an op on two tensors (PyTorch's rules): a higher category (bool < int <
    float) wins outright; within a category the wider type wins, except that a 0-d tensor does
    not widen a dimensioned one."""
    cdef object da = a.dtype, db = b.dtype
    if da is db or da == db:
        return da
    cdef int ca = category(da), cb = category(db)
    if ca != cb:
        return da if ca > cb else db
    cdef bint a0 = a.ndim == 0, b0 = b.ndim == 0
    if a0 != b0:
        return db if a0 else da
    return np.promote_types(da, db)


cdef object promote_arrays(list arrays):
    """The result dtype of an op on several tensors of equal standing (cat, stack): the highest
    category wins outright (float32 with int64 is float32, not NumPy's float64), the widest
    type within it."""
    cdef int best = -1, c
    cdef object dt = None
    for a in arrays:
        best = max(best, category((<cnp.ndarray>a).dtype))
    for a in arrays:
        c = category((<cnp.ndarray>a).dtype)
        if c == best:
            dt = a.dtype if dt is None else np.promote_types(dt, a.dtype)
    return dt


cdef object promote_ts(cnp.ndarray a, object s):
    """Result dtype of tensor (op) Python number: the number only lifts the category."""
    cdef object da = a.dtype
    cdef int cat = category(da)
    if isinstance(s, bool) or isinstance(s, np.bool_):
        return da
    if isinstance(s, (int, np.integer)):
        return _int64 if cat == 0 else da
    return _float32 if cat < 2 else da


cdef object broadcast_shapes(tuple sa, tuple sb, str op):
    """The broadcast shape of sa and sb, or PyTorch's RuntimeError naming both shapes."""
    cdef Py_ssize_t na = len(sa), nb = len(sb), n = max(na, nb), i
    out = [0] * n
    for i in range(1, n + 1):
        da = sa[na - i] if i <= na else 1
        db = sb[nb - i] if i <= nb else 1
        if da == db or db == 1:
            out[n - i] = da
        elif da == 1:
            out[n - i] = db
        else:
            raise RuntimeError(
                f"The size of tensor a ({da}) must match the size of tensor b ({db}) at "
                f"non-singleton dimension {n - i}: {op} cannot broadcast shapes {list(sa)} and "
                f"{list(sb)}; dimensions must be equal or 1, aligned from the right")
    return tuple(out)

# Dimension arguments: the one place a user-supplied dim is checked and made non-negative.
#
# Note [Wrapping dims]
# Every op that takes a dim goes through wrap_dim, so all of them accept the same range and
# raise the same IndexError. A 0-d tensor has no dims to index, yet PyTorch lets most ops name
# dim 0 or -1 of it (x.sum(0), x.softmax(-1), x.squeeze(0) on a 0-d x): with wrap_scalar those
# wrap to 0 and the caller must not index shape/strides with it -- every caller branches on
# ndim == 0 first. Ops that do index the shape with the dim (size, stride, unbind ...) pass
# wrap_scalar=False and a 0-d tensor rejects every dim, as PyTorch does.
# dim must be an integer (anything with __index__): a float or a string is a TypeError.

cdef inline Py_ssize_t wrap_dim(object dim, Py_ssize_t ndim, str op,
                                bint wrap_scalar=True) except? -1:
    """dim in [-ndim, ndim) -> dim in [0, ndim); IndexError naming `op` otherwise."""
    cdef Py_ssize_t d = dim
    cdef Py_ssize_t n = ndim
    if n <= 0:
        if not wrap_scalar:
            raise IndexError(f"{op}: Dimension specified as {d} but tensor has no dimensions")
        n = 1
    if d < -n or d >= n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {d})")
    return d + n if d < 0 else d

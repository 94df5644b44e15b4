# Tensors saved for backward (saved.pyx): Note [Saved tensor release], Note [Saved outputs].
cimport numpy as cnp
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase, VersionCounter


cdef class SavedVar:
    """A tensor saved for backward, with the version it had then (Note [Saved tensor release])."""
    cdef TensorBase t              # a saved input; None for a saved output, and once released
    cdef cnp.ndarray data          # a saved output's array (Note [Saved outputs]); None once released
    cdef VersionCounter vc         # a saved output's counter (shared with the output); None for inputs
    cdef Py_ssize_t version        # vc.value when saved
    cdef Node fn                   # t's grad_fn when saved (names the op in errors)
    cdef int output_nr             # t's output_nr when saved
    cdef bint is_output            # saved the output of the node that owns it

    cdef TensorBase unpack(self, Node owner)
    cpdef void release(self)


cdef SavedVar save(TensorBase t, bint is_output)

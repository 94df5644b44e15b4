# cython: boundscheck=False, wraparound=False
"""PyTorch's rules for writing into a tensor in place, which every in-place op checks first:
no inference tensor outside inference mode, no read-only or self-overlapping memory, and under
grad mode no leaf that requires grad nor a view of one."""
cimport numpy as cnp

from fastgrad._core.grad_mode cimport grad_enabled, inference_mode_c
from fastgrad._core.tensor cimport TensorBase, is_inference

cnp.import_array()


cdef void check_inplace(TensorBase a) except *:
    """PyTorch's rules for an in-place write into `a`: not an inference tensor outside inference
    mode, not read-only memory, and, while grad mode is on, not a leaf that requires grad nor a
    view of one."""
    check_inference_inplace(a)
    if not cnp.PyArray_ISWRITEABLE(a._data):
        _refuse_readonly(a._data)
    if not grad_enabled():
        return
    if a._grad_fn is None and a._requires_grad:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation. Wrap the update in `with torch.no_grad():`, or operate "
                           "on a copy (x = x.clone()).")
    if a._base is not None and a._base._grad_fn is None and a._base._requires_grad:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation. Wrap the update in `with torch.no_grad():`, or "
                           "clone the leaf first.")


cdef void _refuse_readonly(cnp.ndarray x) except *:
    """An in-place write into memory NumPy marks read-only: an expanded tensor (several elements
    share one memory location) or a tensor sharing a read-only NumPy array."""
    cdef int i
    for i in range(x.ndim):
        if x.strides[i] == 0 and x.shape[i] > 1:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.")
    raise RuntimeError("the tensor's memory is read-only (it shares a read-only NumPy array, "
                       "e.g. from from_numpy or as_tensor); clone() the tensor before writing "
                       "to it in place")


cdef void check_inference_inplace(TensorBase t) except *:
    """In-place ops call this first: an inference tensor may only be written inside
    inference mode."""
    if is_inference(t) and not inference_mode_c():
        raise RuntimeError(
            "Inplace update to inference tensor outside InferenceMode is not allowed. You can "
            "make a clone to get a normal tensor (t.clone()) before doing the inplace update. "
            "See https://github.com/pytorch/rfcs/pull/17 for more details.")

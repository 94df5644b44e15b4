# cython: boundscheck=True, wraparound=True
"""out= arguments: the checks and the copy every op with an out= parameter shares."""
import numpy as np

from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport dtype_of, scalar_type_name
from fastgrad._core.tensor cimport TensorBase
cimport numpy as cnp

cnp.import_array()


# --- out= (Note: PyTorch's out= functions are not differentiable) ------------------------------------

def out_check(str name, out, *inputs):
    """Refuse out= when grad mode is on and an input (tensors in lists count) or out itself
    requires grad, as PyTorch does."""
    if not isinstance(out, TensorBase):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if not grad_enabled():
        return
    cdef bint need = (<TensorBase>out)._requires_grad
    for t in inputs:
        if isinstance(t, (list, tuple)):
            need = need or any(isinstance(u, TensorBase) and (<TensorBase>u)._requires_grad
                               for u in t)
        elif isinstance(t, TensorBase):
            need = need or (<TensorBase>t)._requires_grad
    if need:
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           f"differentiation, but one of the arguments requires grad.")


def write_out(out, result, int rule):
    """Copy `result` into `out` and return out. rule 0: out must have result's dtype (BLAS
    products); 1: result must cast to out's dtype within its kind (pointwise); 2: as 1 with
    cat's TypeError. A wrongly shaped out is resized, with PyTorch's warning unless it was
    empty."""
    cdef TensorBase o = out, r = result
    cdef cnp.ndarray od = o._data, rd = r._data
    if rule == 0 and od.dtype != rd.dtype:
        raise RuntimeError(f"Expected out tensor to have dtype {dtype_of(rd).c_name}, "
                           f"but got {dtype_of(od).c_name} instead")
    if rule and not np.can_cast(rd.dtype, od.dtype, "same_kind"):
        if rule == 2:
            raise TypeError(f"torch.cat(): input types can't be cast to the desired output "
                            f"type {scalar_type_name(od.dtype)}")
        raise RuntimeError(f"result type {scalar_type_name(rd.dtype)} can't be cast to the "
                           f"desired output type {scalar_type_name(od.dtype)}")
    if (<object>od).shape != (<object>rd).shape:
        if od.size:
            import warnings
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list((<object>od).shape)}, which does not match the required output "
                          f"shape {list((<object>rd).shape)}. This behavior is deprecated, and "
                          f"in a future PyTorch release outputs will not be resized unless they "
                          f"have zero elements. You can explicitly reuse an out tensor t by "
                          f"resizing it, inplace, to zero elements with t.resize_(0).",
                          UserWarning, stacklevel=3)
        o._data = np.empty((<object>rd).shape, dtype=od.dtype)
    np.copyto(o._data, rd, casting="unsafe")
    o.bump_version()
    return o

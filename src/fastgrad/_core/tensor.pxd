# TensorBase: the compiled half of fastgrad.Tensor. See tensor.pyx.
cimport numpy as cnp
from cpython.pythread cimport PyThread_type_lock
from fastgrad._core.node cimport Node


cdef class VersionCounter:
    cdef Py_ssize_t value          # in-place modifications so far; shared by a base and its views


cdef class TensorBase:
    cdef cnp.ndarray _data         # storage: a NumPy array (any shape, strides, dtype)
    cdef object _grad              # TensorBase or None: accumulated gradient (leaves)
    cdef Node _grad_fn             # the node that produced this tensor; None on leaves
    cdef bint _requires_grad       # leaf flag; always True for tensors with a grad_fn
    cdef bint _retains_grad        # non-leaf asked for .grad via retain_grad()
    cdef bint _is_param            # set by nn.Parameter (repr only)
    cdef int _output_nr            # which output of _grad_fn this tensor is
    cdef VersionCounter _vc        # created lazily; shared with views (Note [Version counters])
    cdef object _acc               # weakref to this leaf's AccumulateGrad, or None
    cdef TensorBase _base          # the tensor this one is a view of, or None
    cdef object _hooks             # gradient hooks fn(grad) -> None or replacement (hooks.pyx)
    cdef object _post_acc_hooks    # post-accumulate-grad hooks fn(tensor) (leaves)
    cdef object __weakref__
    cdef bint _inference           # made under inference_mode (views: read the base's flag)

    cdef VersionCounter version_counter(self)
    cdef Py_ssize_t version_value(self) noexcept
    cdef void bump_version(self)


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


cdef class AccumulateGrad(Node):
    cdef TensorBase variable       # the leaf whose .grad this node accumulates into
    cdef PyThread_type_lock _lock  # held across read-add-write of variable.grad; made on first use
    cdef unsigned long _holder     # thread holding _lock (a post-accumulate hook may re-enter)

    cdef void accumulate(self, TensorBase g, bint owned) except *
    cdef void _add(self, TensorBase g, bint owned) except *


cdef void accumulate_nonleaf(TensorBase t, TensorBase g, bint copy) except *


# allocation and graph recording, used by every ops_* module
cdef TensorBase wrap(object arr)                # arr: an ndarray, or a NumPy scalar (Note [0-d results])
cdef cnp.ndarray empty_like(cnp.ndarray x)     # uninitialised, C-contiguous (Note [Small array cache])
cdef bint any_requires_grad2(TensorBase a, TensorBase b) noexcept
cdef void set_history(TensorBase out, Node node, tuple inputs) except *
cdef void set_history1(TensorBase out, Node node, TensorBase a) except *
cdef void set_history2(TensorBase out, Node node, TensorBase a, TensorBase b) except *
cdef SavedVar save(TensorBase t, bint is_output)
cdef void check_inference_inplace(TensorBase t) except *
cdef object check_hook_grad(object hook, TensorBase old, object new)   # PyTorch's checks on a hook's result


cdef inline bint is_inference(TensorBase t) noexcept:
    """An inference tensor: made under inference_mode, or a view of one."""
    return t._base._inference if t._base is not None else t._inference


cdef inline tuple shape_of(TensorBase t):
    """t's shape as a Python tuple (a typed ndarray's .shape is a C pointer)."""
    return (<object>t._data).shape


cdef inline TensorBase tensor_arg(object x, str op, str arg="input"):
    """x if it is a tensor; otherwise PyTorch's TypeError naming the op and the argument."""
    if isinstance(x, TensorBase):
        return <TensorBase>x
    raise TypeError(f"{op}(): argument '{arg}'{' (position 1)' if arg == 'input' else ''} must "
                    f"be Tensor, not {type(x).__name__}")

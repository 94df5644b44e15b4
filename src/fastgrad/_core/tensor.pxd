# TensorBase: the compiled half of fastgrad.Tensor. See tensor.pyx.
cimport numpy as cnp
from fastgrad._core.node cimport Node
from fastgrad._core.promotion cimport same_shape


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
    cdef object _acc               # weakref to this leaf's AccumulateGrad (recording.pyx), or None
    cdef TensorBase _base          # the tensor this one is a view of, or None
    cdef object _hooks             # gradient hooks fn(grad) -> None or replacement (hooks.pyx)
    cdef object _post_acc_hooks    # post-accumulate-grad hooks fn(tensor) (leaves)
    cdef object __weakref__
    cdef bint _inference           # made under inference_mode (views: read the base's flag)

    cdef VersionCounter version_counter(self)
    cdef Py_ssize_t version_value(self) noexcept
    cdef void bump_version(self)


cdef void accumulate_nonleaf(TensorBase t, TensorBase g, bint copy) except *   # retain_grad's add


# Note [The op table]
# TensorBase's operators (a + b, a.exp(), a.sum() ...), the engine (gradient sums, casts and
# un-broadcasting) and backward formulas that need an op of a family above their own call the
# ops through this table of C function pointers, never by cimporting an op module: the op
# modules sit above TensorBase and the engine, and each fills its slots when it is imported
# (`op_table()` at the end of the module). A slot that no module has filled yet holds a function
# that raises a RuntimeError naming the module to import, so a partial import fails cleanly.
# A call through a slot costs what a call to a cimported function does (both are one indirect C
# call).
cdef enum:
    CMP_EQ = 0
    CMP_NE = 1
    CMP_LT = 2
    CMP_LE = 3
    CMP_GT = 4
    CMP_GE = 5

ctypedef object (*binary_fn)(object, object)
ctypedef object (*unary_fn)(int, TensorBase)
ctypedef object (*compare_fn)(int, object, object)
ctypedef object (*inplace_fn)(int, TensorBase, object)
ctypedef object (*write_fn)(TensorBase, object)
ctypedef bint (*add_into_fn)(cnp.ndarray, cnp.ndarray) noexcept
ctypedef object (*reduce_fn)(TensorBase, object, bint)
ctypedef object (*as_dtype_fn)(TensorBase, object, str)
ctypedef object (*sum_to_fn)(TensorBase, tuple)

cdef struct OpTable:
    binary_fn add, sub, mul, div, pow_    # a (op) b, a a tensor, b a tensor or number
    binary_fn rsub, rdiv, rpow            # b (op) a, b a number
    binary_fn mul_any                     # either may be a number
    add_into_fn add_into                  # acc += g in place when it can (ops_arith)
    unary_fn unary                        # OP_NEG ... OP_RECIPROCAL (ops_unary)
    compare_fn compare                    # CMP_* (ops_compare)
    inplace_fn inplace                    # a (op)= b, op in OP_ADD..OP_DIV (ops_inplace)
    write_fn fill, copy                   # fill_(value), copy_(src) (ops_inplace)
    write_fn to_dtype                     # cast to a NumPy dtype, recorded (ops_cast)
    reduce_fn sum, mean                   # over dim (None: all), keepdim (ops_reduce)
    as_dtype_fn as_dtype                  # a reduction's dtype= input (ops_reduce)
    sum_to_fn sum_to                      # un-broadcast a gradient (ops_reduce)

cdef OpTable* op_table() noexcept


cdef TensorBase wrap(object arr)                # arr: an ndarray, or a NumPy scalar (Note [0-d results])
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


cdef inline object grad_meta(cnp.ndarray out, TensorBase t):
    """(shape, dtype) of an input whose gradient the engine must sum or cast back to it (Note
    [Un-broadcasting in the engine]), else None."""
    if t is None or not t._requires_grad:
        return None
    if same_shape(out, t._data) and out.dtype == t._data.dtype:
        return None
    return ((<object>t._data).shape, t._data.dtype)


cdef inline void set_meta2(Node node, cnp.ndarray out, TensorBase a, TensorBase b):
    """node._in_meta for a two-input op whose output is `out`."""
    ma = grad_meta(out, a)
    mb = grad_meta(out, b)
    if ma is not None or mb is not None:
        node._in_meta = (ma, mb)

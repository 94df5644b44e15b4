# cython: boundscheck=False, wraparound=False
"""TensorBase: storage (a NumPy array) plus the autograd fields; `wrap`, which makes every op's
result; the op table; and the hooks a tensor registers on its gradient.

The Python class fastgrad.Tensor subclasses TensorBase and tells this module about itself with
`_set_tensor_class`, so every op allocates its result as a Tensor directly (`wrap`). Ops live in
the ops_* modules, above this one; the arithmetic dunders here reach them through the op table
the op modules fill (Note [The op table] in tensor.pxd).

Note [Version counters]
Every in-place op bumps the version counter of the tensor it writes. A base and its views share
one counter. It is created lazily (first save, view or in-place write), so ops that never save
pay nothing. A SavedVar records the value at save time; unpacking a SavedVar whose counter moved
raises the "modified by an inplace operation" error (saved.pyx).
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject
from cpython.pythread cimport PyThread_type_lock, PyThread_allocate_lock
import weakref
import warnings

import numpy as np

from fastgrad._core.grad_mode cimport grad_enabled, inference_mode_c
from fastgrad._core.hooks import add_hook, hook_dict
from fastgrad._core.number_slots import inherit_number_slots
from fastgrad._core.size import Size
from fastgrad._core.storage cimport keep_array
from fastgrad._core.kernels cimport (OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_NEG, OP_ABS, OP_EXP,
    OP_LOG, OP_SQRT, OP_SIN, OP_COS, OP_TANH, OP_SIGMOID, OP_RELU, OP_RECIPROCAL)
from fastgrad._core.dims cimport wrap_dim
from fastgrad._core.dtypes cimport dtype_of, dtype_name
from fastgrad._core cimport locks

cnp.import_array()

cdef type _tensor_cls = None


def _set_tensor_class(cls):
    """Make every op allocate its results as `cls` (fastgrad.Tensor)."""
    global _tensor_cls
    _tensor_cls = <type>cls       # unchecked: its metaclass is a subclass of type (fastgrad._legacy)
    fast_number_slots(cls)


def fast_number_slots(cls):
    """Make `a + b` on a Python subclass of TensorBase call TensorBase's C operators directly
    (number_slots.pyx)."""
    inherit_number_slots(cls, TensorBase)


@cython.freelist(256)
cdef class VersionCounter:
    pass


cdef extern from *:
    """
    static PyObject *fg_tp_new(PyTypeObject *cls, PyObject *args) {
        return cls->tp_new(cls, args, NULL);
    }
    """
    TensorBase fg_tp_new(type cls, tuple args)


cdef tuple _no_args = ()


# Note [0-d results]
# NumPy ufuncs and reductions return a NumPy scalar, not an array, when every input is 0-d
# (np.exp(np.array(1.0)) is an np.float64). Every op result goes through wrap, so wrap is the one
# place that turns such a scalar back into a 0-d array of the same dtype; an op never has to
# special-case 0-d tensors for this. (A `cdef cnp.ndarray` helper that returns a ufunc result
# must return it through np.asarray for the same reason.)

cdef TensorBase wrap(object arr):
    """A new fastgrad.Tensor over `arr` (no copy), with no history. Calls the class's tp_new
    directly: `TensorBase.__new__(cls)` would go through a Python-level method call."""
    cdef TensorBase t = fg_tp_new(_tensor_cls, _no_args)
    if not cnp.PyArray_Check(arr):
        arr = cnp.PyArray_FROM_O(arr)
    t._data = <cnp.ndarray>arr
    if inference_mode_c():
        t._inference = True
    return t


# --- the op table (Note [The op table] in tensor.pxd) -------------------------------------------

cdef object _unfilled(str what, str module):
    raise RuntimeError(f"{what} is not available: fastgrad._core.{module}, which provides it, has "
                       f"not been imported; import fastgrad (which imports every op module) first")


cdef object _no_arith(object a, object b):
    return _unfilled("arithmetic (+ - * / **)", "ops_arith")


cdef bint _no_add_into(cnp.ndarray acc, cnp.ndarray g) noexcept:
    return False                  # "not done in place": the caller adds out of place instead


cdef object _no_unary(int op, TensorBase a):
    return _unfilled("elementwise math (exp, log, neg ...)", "ops_unary")


cdef object _no_compare(int op, object a, object b):
    return _unfilled("comparison", "ops_compare")


cdef object _no_inplace(int op, TensorBase a, object b):
    return _unfilled("in-place arithmetic", "ops_inplace")


cdef object _no_write(TensorBase a, object value):
    return _unfilled("fill_ / copy_", "ops_inplace")


cdef object _no_to_dtype(TensorBase a, object dtype):
    return _unfilled("dtype conversion", "ops_cast")


cdef object _no_reduce(TensorBase a, object dim, bint keepdim):
    return _unfilled("sum / mean", "ops_reduce")


cdef object _no_as_dtype(TensorBase a, object dtype, str op):
    return _unfilled(op, "ops_reduce")


cdef object _no_sum_to(TensorBase g, tuple shape):
    return _unfilled("sum_to", "ops_reduce")


cdef OpTable _ops
_ops.add = _ops.sub = _ops.mul = _ops.div = _ops.pow_ = _no_arith
_ops.rsub = _ops.rdiv = _ops.rpow = _ops.mul_any = _no_arith
_ops.add_into = _no_add_into
_ops.unary = _no_unary
_ops.compare = _no_compare
_ops.inplace = _no_inplace
_ops.fill = _ops.copy = _no_write
_ops.to_dtype = _no_to_dtype
_ops.sum = _ops.mean = _no_reduce
_ops.as_dtype = _no_as_dtype
_ops.sum_to = _no_sum_to


cdef OpTable* op_table() noexcept:
    """The table the op modules fill when imported (Note [The op table] in tensor.pxd)."""
    return &_ops


# --- TensorBase ----------------------------------------------------------------------------------

@cython.trashcan(True)
cdef class TensorBase:
    """The compiled tensor: a NumPy array plus autograd state. Use fastgrad.Tensor."""

    def __dealloc__(self):
        keep_array(<PyObject*>self._data)       # Note [Small array cache] (storage.pyx)

    cdef VersionCounter version_counter(self):
        if self._vc is None:
            if self._base is not None:
                self._vc = self._base.version_counter()
            else:
                self._vc = VersionCounter.__new__(VersionCounter)
        return self._vc

    cdef Py_ssize_t version_value(self) noexcept:
        if self._vc is not None:
            return self._vc.value
        if self._base is not None:
            return self._base.version_value()
        return 0

    cdef void bump_version(self):
        cdef VersionCounter vc = self.version_counter()
        vc.value += 1

    # -- storage and metadata --
    @property
    def _np(self):
        """The NumPy array behind this tensor (no copy, no checks): for fastgrad's own Python code."""
        return self._data

    @property
    def shape(self):
        return Size((<object>self._data).shape)

    def size(self, dim=None):
        if dim is None:
            return Size((<object>self._data).shape)
        return (<object>self._data).shape[wrap_dim(dim, self._data.ndim, "size", False)]

    def dim(self):
        return self._data.ndim

    @property
    def ndim(self):
        return self._data.ndim

    def ndimension(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    def nelement(self):
        return self._data.size

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return (<object>self._data).shape[0]

    @property
    def dtype(self):
        return dtype_of(self._data)

    @property
    def is_cuda(self):
        return False

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def element_size(self):
        return self._data.itemsize

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in (<object>self._data).strides)
        return st if dim is None else st[wrap_dim(dim, self._data.ndim, "stride", False)]

    def is_contiguous(self, memory_format=None):
        return self._data.flags.c_contiguous

    # -- autograd state --
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        requires_grad = bool(requires_grad)
        if self._grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to "
                    "use a computed variable in a subgraph that doesn't require differentiation "
                    "use var_no_grad = var.detach().")
            return self
        if requires_grad and self._data.dtype.kind not in "fc":
            raise RuntimeError(
                "Only Tensors of floating point and complex dtype can require gradients "
                f"(this tensor is {self.dtype}); convert it first, e.g. x = x.float()")
        if requires_grad and is_inference(self) and not inference_mode_c():
            raise RuntimeError(
                "Setting requires_grad=True on inference tensor outside InferenceMode is not "
                "allowed. Make a clone first (t.clone().requires_grad_()) to get a normal tensor.")
        self._requires_grad = requires_grad
        return self

    def is_inference(self):
        """True for a tensor made under inference_mode (or a view of one)."""
        return is_inference(self)

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def _version(self):
        if is_inference(self):
            raise RuntimeError("Inference tensors do not track version counter.")
        return 0 if self._vc is None and self._base is None else self.version_counter().value

    @property
    def _base(self):
        return self._base

    @property
    def output_nr(self):
        return self._output_nr

    @property
    def retains_grad(self):
        return self._retains_grad

    @property
    def grad(self):
        if self._grad_fn is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its "
                ".grad attribute won't be populated during autograd.backward(). If you indeed want "
                "the .grad field to be populated for a non-leaf Tensor, use .retain_grad() on the "
                "non-leaf Tensor. If you access the non-leaf Tensor by mistake, make sure you "
                "access the leaf Tensor instead. See github.com/pytorch/pytorch/pull/30531 for "
                "more information.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        cdef TensorBase g
        if value is None:
            self._grad = None
            return
        if not isinstance(value, TensorBase):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                            f"{type(value).__name__}")
        g = <TensorBase>value
        if (<object>g._data).shape != (<object>self._data).shape:
            raise RuntimeError(
                f"attempting to assign a gradient of size '{list((<object>g._data).shape)}' to a tensor of "
                f"size '{list((<object>self._data).shape)}'. Please ensure that the gradient and the tensor "
                f"are the same size")
        if g._data.dtype != self._data.dtype:
            raise RuntimeError(f"attempting to assign a gradient with dtype '{g.dtype}' to a "
                               f"tensor with dtype '{self.dtype}'. Please ensure that the "
                               f"gradient and the tensor have the same dtype")
        self._grad = g

    def detach(self):
        """A tensor sharing this one's data and version counter, with no history."""
        cdef TensorBase t = wrap(self._data)
        t._vc = self.version_counter()
        t._inference = is_inference(self)
        return t

    def detach_(self):
        if self._base is not None and self._base._requires_grad:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._grad_fn = None
        self._requires_grad = False
        self._output_nr = 0
        return self

    def retain_grad(self):
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is None or self._retains_grad:
            return
        self._retains_grad = True
        self._grad_fn.register_prehook(_RetainGradHook(self, self._output_nr))

    def _register_grad_hook(self, fn):
        """Tensor.register_hook's compiled half: leaves run hooks in AccumulateGrad, others as a
        pre-hook of grad_fn on this tensor's output slot. Returns the handle."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = hook_dict()
            return add_hook(self._hooks, fn)
        return self._grad_fn.register_prehook(_SlotHook(self._output_nr, fn))

    def register_post_accumulate_grad_hook(self, fn):
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = hook_dict()
        return add_hook(self._post_acc_hooks, fn)

    def _set_data(self, arr):
        """Fill a fresh tensor made with __new__ (creation functions, Parameter, unpickling)."""
        self._data = arr
        if inference_mode_c():
            self._inference = True

    @property
    def data(self):
        """This tensor's values outside autograd: shares the memory but not the version
        counter, so `p.data.add_(...)` (a manual update step) does not invalidate what backward
        saved, as in PyTorch."""
        cdef TensorBase t = wrap(self._data)
        t._inference = is_inference(self)
        return t

    @data.setter
    def data(self, value):
        if not isinstance(value, TensorBase):
            raise TypeError("data must be set to a Tensor")
        self._data = (<TensorBase>value)._data

    # -- conversion --
    def numpy(self, *, force=False):
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to "
                               f"Scalar; use .tolist() for all elements or index one first")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        self._check_one_element()
        return float(self._data.reshape(()).item())

    def __int__(self):
        self._check_one_element()
        return int(self._data.reshape(()).item())

    def _check_one_element(self):
        if self._data.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars "
                             f"(this one has {self._data.size}); index or reduce it first")

    def __index__(self):
        if self._data.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is "
                               f"ambiguous; use .any() or .all()")
        return bool(self._data.reshape(()).item())

    def __hash__(self):
        return id(self)

    # -- arithmetic (hot: C calls through the op table, Note [The op table]) --
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(self, other)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.rsub(self, other)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(self, other)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.rdiv(self, other)

    def __pow__(self, other, mod):
        return _ops.pow_(self, other)

    def __rpow__(self, other, mod):
        return _ops.rpow(self, other)

    def __neg__(self):
        return _ops.unary(OP_NEG, self)

    def __abs__(self):
        return _ops.unary(OP_ABS, self)

    def __pos__(self):
        return self

    def __eq__(self, other):
        return _ops.compare(CMP_EQ, self, other)

    def __ne__(self, other):
        return _ops.compare(CMP_NE, self, other)

    def __lt__(self, other):
        return _ops.compare(CMP_LT, self, other)

    def __le__(self, other):
        return _ops.compare(CMP_LE, self, other)

    def __gt__(self, other):
        return _ops.compare(CMP_GT, self, other)

    def __ge__(self, other):
        return _ops.compare(CMP_GE, self, other)

    def __iadd__(self, other):
        return _ops.inplace(OP_ADD, self, other)

    def __isub__(self, other):
        return _ops.inplace(OP_SUB, self, other)

    def __imul__(self, other):
        return _ops.inplace(OP_MUL, self, other)

    def __itruediv__(self, other):
        return _ops.inplace(OP_DIV, self, other)

    # -- elementwise methods --
    def exp(self):
        return _ops.unary(OP_EXP, self)

    def log(self):
        return _ops.unary(OP_LOG, self)

    def sqrt(self):
        return _ops.unary(OP_SQRT, self)

    def sin(self):
        return _ops.unary(OP_SIN, self)

    def cos(self):
        return _ops.unary(OP_COS, self)

    def tanh(self):
        return _ops.unary(OP_TANH, self)

    def sigmoid(self):
        return _ops.unary(OP_SIGMOID, self)

    def relu(self):
        return _ops.unary(OP_RELU, self)

    def neg(self):
        return _ops.unary(OP_NEG, self)

    def abs(self):
        return _ops.unary(OP_ABS, self)

    def reciprocal(self):
        return _ops.unary(OP_RECIPROCAL, self)

    def add(self, other, *, alpha=1):
        return _ops.add(self, other if alpha == 1 else _ops.mul_any(other, alpha))

    def sub(self, other, *, alpha=1):
        return _ops.sub(self, other if alpha == 1 else _ops.mul_any(other, alpha))

    def mul(self, other):
        return _ops.mul(self, other)

    def pow(self, exponent):
        return _ops.pow_(self, exponent)

    # -- in-place --
    def add_(self, other, *, alpha=1):
        return _ops.inplace(OP_ADD, self, other if alpha == 1 else _ops.mul_any(other, alpha))

    def sub_(self, other, *, alpha=1):
        return _ops.inplace(OP_SUB, self, other if alpha == 1 else _ops.mul_any(other, alpha))

    def mul_(self, other):
        return _ops.inplace(OP_MUL, self, other)

    def fill_(self, value):
        return _ops.fill(self, value)

    def copy_(self, src):
        return _ops.copy(self, src)

    # -- reductions --
    # axis / keepdims: NumPy's spellings, which PyTorch accepts too; dtype casts the input first
    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        if dtype is not None or axis is not None or keepdims is not None:
            x, dim, keepdim = _reduce_args(self, dim, keepdim, dtype, axis, keepdims, "sum")
            return _ops.sum(x, dim, keepdim)
        return _ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        if dtype is not None or axis is not None or keepdims is not None:
            x, dim, keepdim = _reduce_args(self, dim, keepdim, dtype, axis, keepdims, "mean")
            return _ops.mean(x, dim, keepdim)
        return _ops.mean(self, dim, keepdim)


cdef tuple _reduce_args(self, dim, keepdim, dtype, axis, keepdims, str op):
    """(input, dim, keepdim) for a reduction called with NumPy's spellings or a dtype."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}() got both dim and its alias axis; pass one of them")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if dtype is not None:
        self = _ops.as_dtype(self, dtype, op)
    return self, dim, keepdim


# --- the hooks a tensor registers on its gradient -------------------------------------------------
# Beside RemovableHandle (hooks.pyx) in spirit, but they live here: TensorBase's register_hook and
# retain_grad make them, and they read and write TensorBase's fields, so they can be neither
# below TensorBase (they would cimport it) nor above it (TensorBase would cimport them).

cdef object check_hook_grad(object hook, TensorBase old, object new):
    """The gradient a tensor hook returned in place of `old`: a Tensor of the same dtype and
    shape, else the error PyTorch raises (a gradient of another shape would reach backward
    formulas that index it by the forward shapes)."""
    cdef TensorBase g
    if not isinstance(new, TensorBase):
        raise TypeError(f"expected Variable, but hook returned '{type(new).__name__}'")
    g = new
    name = getattr(hook, "__name__", type(hook).__name__)
    if old is None:
        return g
    if g._data.dtype != old._data.dtype:
        raise RuntimeError(f"hook '{name}' has changed the type of value (was "
                           f"{dtype_name(old._data)} got {dtype_name(g._data)}); return a "
                           f"gradient of the dtype it was given")
    if (<object>g._data).shape != (<object>old._data).shape:
        raise RuntimeError(f"hook '{name}' has changed the size of value (was "
                           f"{list((<object>old._data).shape)} got "
                           f"{list((<object>g._data).shape)}); return a gradient of the shape "
                           f"it was given")
    return g


class _SlotHook:
    """A tensor hook on a non-leaf: runs on the gradient of one output slot of its grad_fn."""

    def __init__(self, slot, fn):
        self.slot = slot
        self.fn = fn

    def __call__(self, grads):
        g = grads[self.slot]
        if g is None:
            return None
        r = self.fn(g)
        if r is None:
            return None
        grads = list(grads)
        grads[self.slot] = check_hook_grad(self.fn, g, r)
        return tuple(grads)


cdef PyThread_type_lock _nonleaf_lock = PyThread_allocate_lock()


cdef void accumulate_nonleaf(TensorBase t, TensorBase g, bint copy) except *:
    """t.grad += g for a non-leaf (retain_grad, backward(inputs=...)); g is stored as it is when
    t has no .grad and not `copy`. One lock for all non-leaves (a rare path): the add may release
    the GIL while another thread's backward adds into the same .grad."""
    locks.acquire(_nonleaf_lock)
    try:
        if t._grad is None:
            t._grad = wrap(np.array(g._data, copy=True)) if copy else g
        else:
            t._grad = _ops.add(t._grad, g)
    finally:
        locks.release(_nonleaf_lock)


class _RetainGradHook:
    """retain_grad(): stores the gradient of a non-leaf into its .grad (weakly held)."""

    def __init__(self, TensorBase t, slot):
        self.ref = weakref.ref(t)
        self.slot = slot

    def __call__(self, grads):
        cdef TensorBase t = self.ref()
        g = grads[self.slot]
        if t is None or g is None:
            return None
        accumulate_nonleaf(t, g, not grad_enabled())
        return None


def from_array(arr):
    """A new fastgrad.Tensor over the NumPy array `arr` (shared, not copied), with no history:
    how the facade's creation and sampling functions make tensors without the Tensor class."""
    if _tensor_cls is None:
        raise RuntimeError("fastgrad.Tensor is not defined yet: import fastgrad first")
    return wrap(arr)


def dtype_legacy_name(TensorBase t):
    """'torch.FloatTensor' style name of a tensor's type (Tensor.type())."""
    return dtype_name(t._data)

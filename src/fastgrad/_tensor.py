"""fastgrad.Tensor: the Python face of the compiled TensorBase.

Only Python-shaped conveniences live here (repr, backward's argument handling, dtype
conversions, aliases). Arithmetic and the hot methods are compiled in TensorBase; the methods
below that forward to compiled functions are plain aliases, so they add no Python frame.
"""
import functools

from fastgrad import _device, _dtypes, _legacy, _sampling
from fastgrad._core import ops_pointwise as _pw
from fastgrad._core import ops_reduce as _red
from fastgrad._core import tensor as _ct
from fastgrad._core import engine as _engine
from fastgrad._core import ops_view as _view
from fastgrad._core import ops_join as _join
from fastgrad._core import ops_index as _ix
from fastgrad._core import ops_setitem as _setitem
from fastgrad._core import ops_matmul as _la
from fastgrad._core import ops_linear as _lin
from fastgrad._core import ops_nn as _nn
from fastgrad._core import ops_reduce_composed as _red2
from fastgrad._core import ops_arrange as _arrange
from fastgrad._core import ops_math as _math
from fastgrad._core import ops_scatter as _scatter
from fastgrad._core import ops_sort as _sort
from fastgrad._core.tensor import Size, TensorBase  # noqa: F401  (Size: re-exported)


class Tensor(TensorBase, metaclass=_legacy.TensorMeta):
    """A multi-dimensional array that can record the operations applied to it for backward().
    `Tensor(data)` / `Tensor(*sizes)` are PyTorch's legacy float32 constructors (Note [Legacy
    constructor without Tensor.__new__])."""
    __slots__ = ()
    __array_ufunc__ = None           # NumPy defers to our reflected operators (np.float64 * t)

    def __init_subclass__(cls, **kwargs):
        # subclasses (Parameter, users' own) keep the C arithmetic slots they do not override
        super().__init_subclass__(**kwargs)
        _ct.fast_number_slots(cls)

    # -- repr --
    def __repr__(self, *, tensor_contents=None):
        from fastgrad._format import format_tensor
        suffixes = []
        if self.dtype not in (_dtypes.float32, _dtypes.int64, _dtypes.bool_):
            suffixes.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            suffixes.append(f"grad_fn=<{self.grad_fn.name().rpartition('::')[2]}>")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        return format_tensor(self._np, suffixes)

    def __format__(self, spec):
        if self.dim() == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # -- autograd --
    backward = _engine.tensor_backward    # compiled: `loss.backward()` builds its seed in C

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; it may return a replacement.
        Returns a handle whose remove() unregisters it."""
        return self._register_grad_hook(hook)

    # -- dtype conversions --
    @property
    def device(self):
        """Always the CPU: fastgrad computes on the CPU only (see fastgrad.cuda)."""
        return _device.cpu

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False,
           memory_format=None):
        """to(dtype) / to(device) / to(device, dtype) / to(other_tensor): a cast copy, or self
        when nothing changes. Devices other than the CPU raise (fastgrad runs on the CPU)."""
        for a in args:
            if isinstance(a, TensorBase):
                dtype = a.dtype
            elif isinstance(a, _dtypes.dtype) or (isinstance(a, type) and a is not bool):
                dtype = a
            elif _device.is_device_arg(a):
                _device.check(a, "move")
            elif isinstance(a, bool):
                pass                         # non_blocking / copy given positionally
            elif a is not None:
                raise TypeError(f"to() received an invalid argument {a!r}: expected a dtype, a "
                                f"device or a tensor")
        if device is not None:
            _device.check(device, "move")
        if dtype is None:
            return self.clone() if copy else self
        return _pw.to_dtype(self, _dtypes.to_numpy_dtype(dtype), copy)

    def type(self, dtype=None, non_blocking=False, **kwargs):
        """type(): PyTorch's type name ('torch.FloatTensor'); type(t): a cast to a dtype, a
        legacy type (torch.DoubleTensor) or its name ('torch.DoubleTensor')."""
        if dtype is None:
            return _ct.dtype_legacy_name(self)
        return self.to(_legacy.type_to_dtype(dtype))

    def float(self):
        return _pw.to_dtype(self, _dtypes.float32.np_dtype)

    def double(self):
        return _pw.to_dtype(self, _dtypes.float64.np_dtype)

    def half(self):
        return _pw.to_dtype(self, _dtypes.float16.np_dtype)

    def long(self):
        return _pw.to_dtype(self, _dtypes.int64.np_dtype)

    def int(self):
        return _pw.to_dtype(self, _dtypes.int32.np_dtype)

    def bool(self):
        return _pw.to_dtype(self, _dtypes.bool_.np_dtype)

    def type_as(self, other):
        return self.to(other.dtype)

    def cpu(self, memory_format=None):
        return self

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        _device.check("cuda", "move")

    @property
    def is_cpu(self):
        return True

    def get_device(self):
        """-1 for a CPU tensor, as in PyTorch."""
        return -1

    # -- compiled functions as methods --
    clone = _pw.clone
    maximum = _pw.maximum
    minimum = _pw.minimum
    clamp = _pw.clamp
    clip = _pw.clamp
    sign = _pw.sign
    max = _red.max
    min = _red.min
    zero_ = _pw.zero_

    __invert__ = _pw._invert
    div = divide = _pw.div_rounding
    div_ = _pw.div_rounding_

    # -- shapes, indexing, matrix products, more reductions (ops_view/ops_index/ops_matmul/...) --
    __getitem__ = _ix.getitem
    __setitem__ = _setitem.setitem
    __matmul__ = _la.matmul
    __rmatmul__ = _la._rmatmul
    T = property(_view.T)
    mT = property(_view.mT)
    reshape = _view.reshape
    view = _view.view
    view_as = _view.view_as
    reshape_as = _view.reshape_as
    flatten = _view.flatten
    unflatten = _view.unflatten
    squeeze = _view.squeeze
    unsqueeze = _view.unsqueeze
    transpose = _view.transpose
    swapaxes = _view.swapaxes
    movedim = _view.movedim
    permute = _view.permute
    t = _view.t
    expand = _view.expand
    expand_as = _view.expand_as
    broadcast_to = _view.broadcast_to
    contiguous = _view.contiguous
    diagonal = _view.diagonal
    repeat = _join.repeat
    repeat_interleave = _join.repeat_interleave
    flip = _view.flip
    chunk = _join.chunk
    split = _join.split
    unbind = _join.unbind
    select = _ix.select
    narrow = _ix.narrow
    index_select = _ix.index_select
    gather = _ix.gather
    scatter_add = _ix.scatter_add
    masked_fill = _ix.masked_fill
    take_along_dim = _ix.take_along_dim
    matmul = _la.matmul
    mm = _la.mm
    bmm = _la.bmm
    mv = _la.mv
    dot = _la.dot
    inner = _la.inner
    outer = _la.outer
    addmm = _lin.addmm
    softmax = _nn.softmax
    log_softmax = _nn.log_softmax
    var = _red2.var
    std = _red2.std
    prod = _red2.prod
    cumsum = _red2.cumsum
    logsumexp = _red2.logsumexp
    norm = _red2.norm
    amax = _red2.amax
    amin = _red2.amin
    argmax = _red2.argmax
    argmin = _red2.argmin
    all = _red2.all
    any = _red2.any

    # -- sampling in place, PyTorch's streams (_sampling.py) --
    normal_ = _sampling.normal_
    uniform_ = _sampling.uniform_
    random_ = _sampling.random_
    exponential_ = _sampling.exponential_
    log_normal_ = _sampling.log_normal_
    cauchy_ = _sampling.cauchy_
    geometric_ = _sampling.geometric_
    bernoulli_ = _sampling.bernoulli_
    bernoulli = _sampling.bernoulli_method
    multinomial = _sampling.multinomial_method

    # comparisons as methods (the operators are compiled slots)
    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne

    def masked_fill_(self, mask, value):
        return self.copy_(_ix.masked_fill(self, mask, value))

    def scatter_add_(self, dim, index, src):
        return self.copy_(_ix.scatter_add(self, dim, index, src))

    def square(self):
        return self ** 2

    def clamp_(self, min=None, max=None):
        return self.copy_(_pw.clamp(self, min, max))

    def __iter__(self):
        if self.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __reduce_ex__(self, proto):
        return (_rebuild, (self.detach().numpy().copy(), self.requires_grad))

    # -- new_* constructors --
    def new_tensor(self, data, dtype=None, requires_grad=False):
        from fastgrad._creation import tensor
        return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, requires_grad=False):
        from fastgrad._creation import zeros
        return zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False):
        from fastgrad._creation import ones
        return ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        from fastgrad._creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, requires_grad=requires_grad)


# floor division, remainders, bitwise and logical ops (ops_pointwise): methods, in-place methods,
# and the operators // % & | ^ with their reflected and augmented forms
for _name in ("floor_divide", "remainder", "fmod", "bitwise_and", "bitwise_or", "bitwise_xor",
              "bitwise_not", "logical_and", "logical_or", "logical_xor", "logical_not"):
    setattr(Tensor, _name, getattr(_pw, _name))
    setattr(Tensor, _name + "_", getattr(_pw, _name + "_"))
for _op, _fwd, _refl, _inpl in (("floordiv", _pw._floordiv, _pw._rfloordiv, _pw.floor_divide_),
                                ("mod", _pw._mod, _pw._rmod, _pw.remainder_),
                                ("and", _pw._and, _pw._and, _pw.bitwise_and_),
                                ("or", _pw._or, _pw._or, _pw.bitwise_or_),
                                ("xor", _pw._xor, _pw._xor, _pw.bitwise_xor_)):
    setattr(Tensor, f"__{_op}__", _fwd)
    setattr(Tensor, f"__r{_op}__", _refl)
    setattr(Tensor, f"__i{_op}__", _inpl)


def axis_alias(fn):
    """fn also taking NumPy's spellings axis= (for dim=) and keepdims= (for keepdim=), as
    PyTorch's functions do. One Python frame more, so the hot sum/mean take them in C instead."""
    @functools.wraps(fn)
    def accepting(*args, axis=None, keepdims=None, **kwargs):
        if axis is not None:
            if "dim" in kwargs:
                raise TypeError(f"{fn.__name__}() got both dim and its alias axis; pass one")
            kwargs["dim"] = axis
        if keepdims is not None:
            kwargs["keepdim"] = keepdims
        return fn(*args, **kwargs)
    return accepting


#: reductions and dim-taking ops that accept axis= / keepdims= (sum and mean do so in C)
AXIS_OPS = ("max", "min", "prod", "var", "std", "cumsum", "logsumexp", "norm", "amax", "amin",
            "argmax", "argmin", "all", "any", "softmax", "log_softmax", "sort", "argsort",
            "topk", "kthvalue", "cummax", "cummin", "cumprod", "squeeze", "unsqueeze",
            "flip", "roll")


def _inplace_form(fn):
    def method(self, *args, **kwargs):
        return self.copy_(fn(self, *args, **kwargs))
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}: self.copy_({fn.__name__}(self, ...))."
    return method


# op families that publish a table (elementwise math, sorting and scans, scatters): each table
# gives the methods, their in-place forms, and the fastgrad.<name> functions (functional.py)
OP_TABLES = (_math, _sort, _scatter, _arrange)
for _module in OP_TABLES:
    for _name, _fn in _module.FUNCTIONS.items():
        setattr(Tensor, _name, _fn)
    for _name in getattr(_module, "INPLACE", ()):
        setattr(Tensor, _name + "_", _inplace_form(_module.FUNCTIONS[_name]))
for _name in AXIS_OPS:
    setattr(Tensor, _name, axis_alias(getattr(Tensor, _name)))


# in-place forms of the compiled pointwise ops that have none yet (x.exp_(), w.abs_(), ...);
# functional.py publishes them as fastgrad.exp_(x) ... too
POINTWISE_INPLACE = tuple(n for n in ("exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "sqrt",
                                      "abs", "neg", "negative", "reciprocal", "sign", "pow",
                                      "square", "clamp_min", "clamp_max")
                          if hasattr(Tensor, n) and not hasattr(Tensor, n + "_"))
for _name in POINTWISE_INPLACE:
    setattr(Tensor, _name + "_", _inplace_form(getattr(Tensor, _name)))


def _reshape_inplace(fn):
    """squeeze_ / unsqueeze_ / t_ / transpose_: self takes the view's shape. A tensor that
    records gradients keeps its history only as the returned view, so those are refused (as
    PyTorch refuses them for a leaf) rather than silently detached."""
    def method(self, *args, **kwargs):
        if self.requires_grad:
            raise RuntimeError(f"{fn.__name__}_: a tensor that requires grad cannot change its "
                               f"shape in place here; use y = x.{fn.__name__}(...) instead")
        TensorBase.data.__set__(self, fn(self, *args, **kwargs))
        return self
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}: self becomes {fn.__name__}(self, ...)."
    return method


for _name in ("squeeze", "unsqueeze", "t", "transpose"):
    if not hasattr(Tensor, _name + "_"):
        setattr(Tensor, _name + "_", _reshape_inplace(getattr(Tensor, _name)))


def _cross_method(self, other, dim=None):
    from fastgrad.functional import cross
    return cross(self, other, dim)


Tensor.cross = _cross_method


def _diag_method(self, diagonal=0):
    from fastgrad.functional import diag
    return diag(self, diagonal)


def _rsqrt_method(self):
    return self.sqrt().reciprocal()


Tensor.diag = _diag_method
Tensor.rsqrt = _rsqrt_method
Tensor.rsqrt_ = _inplace_form(_rsqrt_method)


def _rebuild(arr, requires_grad):
    t = Tensor.__new__(Tensor)
    t._set_data(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


_ct._set_tensor_class(Tensor)
_legacy.register_tensor_class(Tensor)

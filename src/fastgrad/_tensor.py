"""fastgrad.Tensor: the Python face of the compiled TensorBase.

Only Python-shaped conveniences live here (repr, dtype conversions, new_*). Arithmetic and the
hot methods are compiled in TensorBase; the methods that are compiled functions under another
name come from the one alias table (_aliases.py), as plain attributes, so they add no Python
frame.
"""
from fastgrad import _aliases, _creation, _creation_base, _device, _dtypes, _legacy
from fastgrad._core import tensor as _ct
from fastgrad._core import ops_arith, ops_unary  # noqa: F401  (fill Tensor's op table, _core/tensor.pxd)
from fastgrad._core import ops_cast as _cast
from fastgrad._core import ops_view as _view
from fastgrad._core.size import Size  # noqa: F401  (re-exported)
from fastgrad._core.tensor import TensorBase


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
        return _cast.to_dtype(self, _dtypes.to_numpy_dtype(dtype), copy)

    def type(self, dtype=None, non_blocking=False, **kwargs):
        """type(): PyTorch's type name ('torch.FloatTensor'); type(t): a cast to a dtype, a
        legacy type (torch.DoubleTensor) or its name ('torch.DoubleTensor')."""
        if dtype is None:
            return _ct.dtype_legacy_name(self)
        return self.to(_legacy.type_to_dtype(dtype))

    def float(self):
        return _cast.to_dtype(self, _dtypes.float32.np_dtype)

    def double(self):
        return _cast.to_dtype(self, _dtypes.float64.np_dtype)

    def half(self):
        return _cast.to_dtype(self, _dtypes.float16.np_dtype)

    def long(self):
        return _cast.to_dtype(self, _dtypes.int64.np_dtype)

    def int(self):
        return _cast.to_dtype(self, _dtypes.int32.np_dtype)

    def bool(self):
        return _cast.to_dtype(self, _dtypes.bool_.np_dtype)

    def type_as(self, other):
        return self.to(other.dtype)

    def cpu(self, memory_format=None):
        return self

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        _device.check("cuda", "move")

    @property
    def is_cpu(self):
        return True

    # the other device kinds PyTorch scripts test for: a fastgrad tensor is never on one
    is_mps = is_xpu = is_meta = is_sparse = is_quantized = is_mkldnn = is_vulkan = \
        property(lambda self: False)

    def get_device(self):
        """-1 for a CPU tensor, as in PyTorch."""
        return -1

    T = property(_view.T)
    mT = property(_view.mT)

    def __iter__(self):
        if self.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __reduce_ex__(self, proto):
        return (_rebuild, (self.detach().numpy().copy(), self.requires_grad))

    # -- shared memory (Note [Shared memory] in _shared_memory.py) --
    def share_memory_(self):
        """Move this tensor's values into shared memory (a no-op when they are there already):
        processes forked afterwards, and those it is sent to through fastgrad.multiprocessing,
        see each other's in-place writes. Returns self."""
        from fastgrad import _shared_memory      # on first use: import fastgrad stays cheap (W8)
        return _shared_memory.share_memory_(self)

    def is_shared(self):
        """True when this tensor's values are in shared memory (share_memory_)."""
        from fastgrad import _shared_memory
        return _shared_memory.is_shared(self)

    # -- new_* constructors --
    def new_tensor(self, data, dtype=None, requires_grad=False):
        return _creation.tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, requires_grad=False):
        return _creation.zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False):
        return _creation.ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        return _creation.full(size, fill_value, dtype=dtype or self.dtype,
                              requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, requires_grad=requires_grad)


# every alias (compiled functions as methods, their in-place forms, operators // % & | ^ @ ~ and
# indexing): one table, shared with the fastgrad.<name> functions (_aliases.py)
for _name, _fn in _aliases.METHODS.items():
    setattr(Tensor, _name, _fn)


def _rebuild(arr, requires_grad):
    """Unpickling (__reduce_ex__): pickles name this function, so it keeps its name."""
    return _creation_base.wrap(arr, requires_grad)


_ct._set_tensor_class(Tensor)
_legacy.register_tensor_class(Tensor)

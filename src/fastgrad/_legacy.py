"""PyTorch's legacy constructors: Tensor(data) / Tensor(*sizes), FloatTensor and friends, the
'torch.FloatTensor' type strings of Tensor.type(), and autograd.Variable.

Note [Legacy constructor without Tensor.__new__]
The compiled core allocates every result as fastgrad.Tensor through the class's tp_new (tensor.pyx
`wrap`). A Python `Tensor.__new__` would put a Python call on that path for every op, so the
legacy constructor lives in the metaclass's __call__ instead: `Tensor(...)` written in a script
goes through TensorMeta.__call__, while the core's allocation never does."""
import numbers

import numpy as np

from fastgrad import _creation, _dtypes
from fastgrad._core.size import Size
from fastgrad._core.tensor import TensorBase

_tensor_class = None                  # fastgrad.Tensor, registered by _tensor.py


class TensorMeta(type):
    """Metaclass of fastgrad.Tensor: `Tensor(...)` is the legacy float32 constructor; subclasses
    (Parameter, users' own) construct as they define."""

    def __call__(cls, *args, **kwargs):
        if cls is _tensor_class:
            return legacy_new(_dtypes.float32, "Tensor", args, kwargs)
        return super().__call__(*args, **kwargs)


def register_tensor_class(cls):
    global _tensor_class
    _tensor_class = cls


def _is_size_arg(a):
    return isinstance(a, (numbers.Integral, np.integer)) and not isinstance(a, (bool, np.bool_))


def legacy_new(dtype, name, args, kwargs):
    """torch.Tensor / torch.FloatTensor ... (data) or (*sizes) or (Size) or ()."""
    device = kwargs.pop("device", None)
    if kwargs:
        raise TypeError(f"{name}() got unexpected keyword argument(s) {', '.join(kwargs)}: the "
                        f"legacy constructor takes only device=; use torch.tensor(data, "
                        f"dtype=..., requires_grad=...) for the others")
    if device is not None:
        from fastgrad import _device
        _device.check(device)
    if not args:
        return _creation.empty(0, dtype=dtype)
    if len(args) == 1:
        data = args[0]
        if isinstance(data, Size):
            return _creation.empty(tuple(data), dtype=dtype)
        if _is_size_arg(data):
            return _creation.empty(int(data), dtype=dtype)
        if isinstance(data, TensorBase):
            if name != "Tensor" and data.dtype is not dtype:
                raise TypeError(f"{name}(tensor): expected a tensor of dtype {dtype} (got "
                                f"{data.dtype}); convert it with .to({dtype}) or "
                                f"torch.tensor(data, dtype={dtype})")
            return data[...]                 # an alias sharing storage, as in PyTorch
        if isinstance(data, np.ndarray):
            if data.dtype.kind not in "biuf":
                raise TypeError(f"new(): can't convert np.ndarray of type {data.dtype} to a "
                                f"tensor; the supported kinds are numbers and bool")
            return _creation.as_tensor(np.ascontiguousarray(data), dtype=dtype)
        if isinstance(data, (list, tuple)):
            return _creation.tensor(data, dtype=dtype)
        if isinstance(data, str):
            raise TypeError("new(): invalid data type 'str'")
        raise TypeError(f"new(): data must be a sequence (got {type(data).__name__}); for a "
                        f"0-d tensor use torch.tensor({data!r})")
    for a in args:
        if not _is_size_arg(a):
            raise TypeError(f"new(): sizes must be ints (got {type(a).__name__} {a!r} in "
                            f"{name}{args}); pass data as one list: {name}([...])")
    return _creation.empty(*(int(a) for a in args), dtype=dtype)


class LegacyTensorType(type):
    """Metaclass of FloatTensor ...: calling makes a tensor of its dtype; isinstance checks the
    dtype (isinstance(torch.zeros(2), torch.FloatTensor) is True, as in PyTorch)."""

    def __call__(cls, *args, **kwargs):
        return legacy_new(cls.dtype, cls.__name__, args, kwargs)

    def __instancecheck__(cls, obj):
        return isinstance(obj, TensorBase) and obj.dtype is cls.dtype

    def __repr__(cls):
        return f"<class 'torch.{cls.__name__}'>"


def _legacy_type(name, dtype):
    return LegacyTensorType(name, (), {"dtype": dtype, "__slots__": (), "__module__": "fastgrad"})


FloatTensor = _legacy_type("FloatTensor", _dtypes.float32)
DoubleTensor = _legacy_type("DoubleTensor", _dtypes.float64)
HalfTensor = _legacy_type("HalfTensor", _dtypes.float16)
LongTensor = _legacy_type("LongTensor", _dtypes.int64)
IntTensor = _legacy_type("IntTensor", _dtypes.int32)
ShortTensor = _legacy_type("ShortTensor", _dtypes.int16)
CharTensor = _legacy_type("CharTensor", _dtypes.int8)
ByteTensor = _legacy_type("ByteTensor", _dtypes.uint8)
BoolTensor = _legacy_type("BoolTensor", _dtypes.bool_)

LEGACY_TYPES = (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor, ShortTensor,
                CharTensor, ByteTensor, BoolTensor)
_BY_TYPE_NAME = {f"torch.{t.__name__}": t.dtype for t in LEGACY_TYPES}
_BY_TYPE_NAME["torch.Tensor"] = _dtypes.float32


def type_to_dtype(t):
    """The dtype that Tensor.type(t) converts to: a dtype, a legacy type, fastgrad.Tensor, or a
    'torch.DoubleTensor' string."""
    if isinstance(t, _dtypes.dtype):
        return t
    if isinstance(t, LegacyTensorType):
        return t.dtype
    if t is _tensor_class:
        return _dtypes.float32
    if isinstance(t, str):
        if t in _BY_TYPE_NAME:
            return _BY_TYPE_NAME[t]
        raise ValueError(f"invalid type: '{t}'; use a tensor type name such as "
                         f"'torch.DoubleTensor', or a dtype such as torch.float64")
    raise TypeError(f"type(): expected a dtype, a tensor type or its name, got "
                    f"{type(t).__name__}")


class _VariableMeta(type):
    """autograd.Variable(t): a tensor sharing t's storage, with no history, as PyTorch returns
    today; every tensor is an instance of Variable."""

    def __call__(cls, data, requires_grad=False, volatile=False):
        if not isinstance(data, TensorBase):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        if volatile:
            import warnings
            warnings.warn("volatile was removed and now has no effect. Use `with "
                          "torch.no_grad():` instead.", stacklevel=2)
        out = data.detach()
        if requires_grad:
            out.requires_grad_(True)
        return out

    def __instancecheck__(cls, obj):
        return isinstance(obj, TensorBase)


class Variable(metaclass=_VariableMeta):
    __slots__ = ()
    __module__ = "fastgrad.autograd"

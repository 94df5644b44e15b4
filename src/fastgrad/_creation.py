"""Tensor creation: tensor(), zeros/ones/full/arange/linspace/eye/rand/randn/..., from_numpy.

dtype rules (PyTorch's): Python floats -> float32, Python ints -> int64, bools -> bool; NumPy
input keeps its dtype (float64 stays float64).

Below the Tensor class (fastgrad._tensor imports this module for Tensor.new_*): the tensors are
made by the core (_creation_base.wrap), and `Tensor` is named here only for type checkers."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from fastgrad import _dtypes
from fastgrad._device import check as _check_device
from fastgrad._core.tensor import TensorBase
from fastgrad import _sampling
from fastgrad._creation_base import numpy_dtype as _np_dtype, size_arg as _size, wrap as _wrap
from fastgrad.random import _gen

if TYPE_CHECKING:
    from fastgrad._tensor import Tensor


def _contains_tensor(data, cls=TensorBase):
    if isinstance(data, cls):
        return True
    if isinstance(data, (list, tuple)) and data:
        return any(_contains_tensor(d, cls) for d in data)
    return False


def _to_array(data):
    if isinstance(data, (list, tuple)) and _contains_tensor(data):
        return np.array([_to_array(d) for d in data])
    if isinstance(data, TensorBase):
        return data.detach()._np
    return np.array(data)


_PY_NUMBER_DTYPE = {float: np.dtype(np.float32), int: np.dtype(np.int64), bool: np.dtype(np.bool_)}


def _numpy_scalar_dtype(data):
    """The dtype PyTorch infers for a list holding NumPy scalars (each keeps its dtype, Python
    numbers take the defaults, then bool < integer < floating promotion), or None when the list
    holds only Python numbers."""
    if not isinstance(data, (list, tuple)) or _contains_tensor(data):
        return None
    types = set(map(type, np.array(data, dtype=object).ravel()))
    if not any(issubclass(t, np.generic) for t in types):
        return None
    result = None
    for t in types:
        dt = _PY_NUMBER_DTYPE.get(t) or np.dtype(t)
        if result is None:
            result = dt
        elif _category(dt) != _category(result):
            result = dt if _category(dt) > _category(result) else result
        else:
            result = np.promote_types(result, dt)
    return result


def _category(dt):
    return 0 if dt.kind == "b" else (1 if dt.kind in "iu" else 2)


def _check_byte_order(arr):
    """NumPy arrays in another byte order (e.g. dtype '>f4') are refused, as PyTorch does: the
    compiled core reads raw memory and would see garbage."""
    if not arr.dtype.isnative:
        raise ValueError(f"given numpy array has byte order different from the native byte order "
                         f"(dtype {arr.dtype.str}); convert it first, e.g. "
                         f"arr.astype(arr.dtype.newbyteorder('='))")


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new leaf tensor holding a copy of `data` (a number, nested lists, a NumPy array or a
    tensor)."""
    _check_device(device)
    from_numpy_input = isinstance(data, (np.ndarray, np.generic))
    if from_numpy_input:
        _check_byte_order(data)
    if isinstance(data, TensorBase):
        arr = np.array(data.detach()._np, copy=True)
    else:
        try:
            arr = np.array(data, copy=True) if from_numpy_input else _to_array(data)
        except ValueError as e:
            raise ValueError(f"tensor(): could not build a tensor from the data ({e}); nested "
                             f"lists must be rectangular") from None
    if dtype is not None:
        arr = arr.astype(_dtypes.to_numpy_dtype(dtype))
    elif not from_numpy_input and not isinstance(data, TensorBase):
        scalar_dt = _numpy_scalar_dtype(data) if arr.dtype.kind in "biuf" else None
        if _contains_tensor(data, np.ndarray) and arr.dtype.kind in "biuf":
            arr = arr.astype(arr.dtype.newbyteorder("="))   # a list of arrays keeps their dtype
        elif scalar_dt is not None:
            arr = arr.astype(scalar_dt)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype == object or arr.dtype.kind in "US":
            raise TypeError(f"tensor(): can't convert {type(data).__name__} of "
                            f"{arr.dtype} elements to a tensor; expected numbers")
    _dtypes.from_numpy_dtype(arr.dtype)
    return _wrap(arr if arr.flags.c_contiguous else arr.copy(), requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a NumPy array or tensor when no cast is needed."""
    _check_device(device)
    if isinstance(data, TensorBase) and (dtype is None or data.dtype == dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or
                                         data.dtype == _dtypes.to_numpy_dtype(dtype)):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(ndarray) -> Tensor:
    """A tensor sharing memory with `ndarray` (writes to either show in both)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    _check_byte_order(ndarray)
    _dtypes.from_numpy_dtype(ndarray.dtype)
    return _wrap(ndarray)


def _filled(size, value, dtype, requires_grad, default=_dtypes.float32):
    arr = np.full(_size(size), value, dtype=_np_dtype(dtype, default))
    return _wrap(arr, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    _check_device(device)
    return _filled(size, 0, dtype, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    _check_device(device)
    return _filled(size, 1, dtype, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, out=None, memory_format=None) -> Tensor:
    _check_device(device)
    return _filled(size, 0, dtype, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    _check_device(device)
    if isinstance(fill_value, TensorBase):
        fill_value = fill_value.item()
    default = (_dtypes.bool_ if isinstance(fill_value, (bool, np.bool_)) else
               _dtypes.int64 if isinstance(fill_value, (numbers.Integral, np.integer)) else
               _dtypes.float32)
    return _filled((tuple(size),), fill_value, dtype, requires_grad, default)


def _like(t, dtype):
    return t.shape, (dtype if dtype is not None else t.dtype)


def zeros_like(input, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    _check_device(device)
    shape, dt = _like(input, dtype)
    return zeros(shape, dtype=dt, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    _check_device(device)
    shape, dt = _like(input, dtype)
    return ones(shape, dtype=dt, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    _check_device(device)
    return zeros_like(input, dtype=dtype, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False,
              memory_format=None) -> Tensor:
    _check_device(device)
    shape, dt = _like(input, dtype)
    return full(shape, fill_value, dtype=dt, requires_grad=requires_grad)


def _draw_size(fn, size, size_kw):
    """rand(2, 3), rand((2, 3)) or rand(size=(2, 3)) -- not both."""
    if size_kw is None:
        return _size(size)
    if size:
        raise TypeError(f"{fn}() got the size both positionally and as size=; pass it once")
    return _size((tuple(size_kw),) if not isinstance(size_kw, numbers.Integral) else (size_kw,))


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None,
         pin_memory=False, **kw) -> Tensor:
    """Uniform samples on [0, 1) (PyTorch's stream: Note [PyTorch's streams])."""
    _check_device(device)
    shape = _draw_size("rand", size, kw.pop("size", None))
    if kw:
        raise TypeError(f"rand() got unexpected keyword arguments {sorted(kw)}")
    arr = _sampling.uniform_array(shape, _np_dtype(dtype), 0.0, 1.0, generator)
    return _sampling._finish(arr, out, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None,
          pin_memory=False, **kw) -> Tensor:
    """Standard normal samples (PyTorch's stream)."""
    _check_device(device)
    shape = _draw_size("randn", size, kw.pop("size", None))
    if kw:
        raise TypeError(f"randn() got unexpected keyword arguments {sorted(kw)}")
    arr = _sampling.normal_array(shape, _np_dtype(dtype), 0.0, 1.0, generator)
    return _sampling._finish(arr, out, requires_grad)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
              memory_format=None) -> Tensor:
    _check_device(device)
    return rand(input.shape, generator=generator, dtype=dtype or input.dtype,
                requires_grad=requires_grad)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
               memory_format=None) -> Tensor:
    _check_device(device)
    return randn(input.shape, generator=generator, dtype=dtype or input.dtype,
                 requires_grad=requires_grad)


def _randint_bounds(fn, args, low, high, size, need_size=True):
    """randint(high, size) / randint(low, high, size), positionally or by keyword."""
    args = list(args)
    if need_size and size is None and args:
        size = args.pop()
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        else:
            low = args[0]
    elif args:
        raise TypeError(f"{fn}() takes (low=0, high, size): got {len(args)} extra positional "
                        f"arguments")
    if high is None:
        raise TypeError(f"{fn}() missing required argument 'high'")
    if need_size and (size is None or isinstance(size, (numbers.Integral, np.integer))):
        raise TypeError(f"{fn}(): argument 'size' must be tuple of ints, not "
                        f"{type(size).__name__}; e.g. randint(10, (3,))")
    low = 0 if low is None else low
    for v in (low, high):
        if isinstance(v, TensorBase):
            raise TypeError(f"{fn}(): low and high must be Python ints")
    return int(low), int(high), size


def randint(*args, size=None, low=None, high=None, generator=None, dtype=None, device=None,
            requires_grad=False, out=None, pin_memory=False) -> Tensor:
    """Integers uniform on [low, high): randint(high, size) or randint(low, high, size)."""
    _check_device(device)
    low, high, size = _randint_bounds("randint", args, low, high, size)
    npdt = _np_dtype(dtype, _dtypes.int64)
    arr = _sampling.random_array(_size((tuple(size),)), npdt, low, high, generator)
    return _sampling._finish(arr, out, requires_grad)


def randint_like(input, *args, low=None, high=None, generator=None, dtype=None, device=None,
                 requires_grad=False, memory_format=None) -> Tensor:
    _check_device(device)
    low, high, _ = _randint_bounds("randint_like", args, low, high, None, need_size=False)
    npdt = _np_dtype(dtype if dtype is not None else input.dtype)
    arr = _sampling.random_array(tuple(input.shape), npdt, low, high, generator)
    return _sampling._finish(arr, None, requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False, out=None,
             pin_memory=False) -> Tensor:
    """A random permutation of 0..n-1 (PyTorch's algorithm and stream)."""
    _check_device(device)
    if isinstance(n, TensorBase):
        n = n.item()
    if not isinstance(n, (numbers.Integral, np.integer)) or isinstance(n, bool):
        raise TypeError(f"randperm(): argument 'n' must be int, not {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    npdt = _np_dtype(dtype, _dtypes.int64)
    if npdt.kind == "f" and n > 2 ** (np.finfo(npdt).nmant + 1) + 1:
        raise RuntimeError(f"n cannot be greater than {2 ** (np.finfo(npdt).nmant + 1) + 1} "
                           f"for {npdt.name}: the values would not be exact")
    arr = _sampling._rk.randperm(_gen(generator), n).astype(npdt, copy=False)
    return _sampling._finish(arr, out, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from start to end (exclusive) by step; int64 when all are integers, else float32."""
    _check_device(device)
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, TensorBase) else v for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    ints = all(isinstance(v, (numbers.Integral, np.integer)) for v in vals)
    default = _dtypes.int64 if ints else _dtypes.float32
    arr = np.arange(*vals, dtype=np.float64 if not ints else np.int64)
    return _wrap(arr.astype(_np_dtype(dtype, default)), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    arr = np.linspace(float(start), float(end), int(steps))
    return _wrap(arr.astype(_np_dtype(dtype)), requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    arr = np.logspace(float(start), float(end), int(steps), base=base)
    return _wrap(arr.astype(_np_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    return _wrap(np.eye(int(n), int(m) if m is not None else None, dtype=_np_dtype(dtype)),
                 requires_grad)

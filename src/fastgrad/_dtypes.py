"""dtype objects (fastgrad.float32 ...) and their NumPy counterparts.

PyTorch's promotion rules (Python float -> float32, Python int -> int64, 0-d tensors only lift
the category) are applied by the compiled ops; this module only names the types."""
import numpy as np

import builtins

from fastgrad._device import device, cpu  # noqa: F401  (fastgrad.device; the table's device)


class dtype:
    """A tensor element type; prints as PyTorch does (torch.float32)."""
    __slots__ = ("name", "np_dtype", "is_floating_point", "is_complex", "is_signed", "itemsize")

    def __init__(self, name, np_type):
        self.name = name
        self.np_dtype = np.dtype(np_type)
        self.is_floating_point = self.np_dtype.kind == "f"
        self.is_complex = self.np_dtype.kind == "c"
        self.is_signed = self.np_dtype.kind in "fic"
        self.itemsize = self.np_dtype.itemsize

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))

    def to_real(self):
        return self


float32 = dtype("float32", np.float32)
float64 = dtype("float64", np.float64)
float16 = dtype("float16", np.float16)
int64 = dtype("int64", np.int64)
int32 = dtype("int32", np.int32)
int16 = dtype("int16", np.int16)
int8 = dtype("int8", np.int8)
uint8 = dtype("uint8", np.uint8)
bool_ = dtype("bool", np.bool_)

ALL = (float32, float64, float16, int64, int32, int16, int8, uint8, bool_)
ALIASES = {"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
           "short": int16, "bool": bool_}
_BY_NUM = {d.np_dtype.num: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update(ALIASES)


def from_name(name):
    return _BY_NAME[name]


def from_numpy_dtype(np_dtype):
    """The fastgrad dtype of a NumPy dtype; TypeError for types fastgrad does not support."""
    try:
        return _BY_NUM[np.dtype(np_dtype).num]
    except KeyError:
        raise TypeError(f"NumPy dtype {np.dtype(np_dtype)} is not supported; supported: "
                        f"{', '.join(d.name for d in ALL)}") from None


def to_numpy_dtype(dt):
    """NumPy dtype for a fastgrad dtype, a NumPy dtype, or a Python type (float, int, bool)."""
    if isinstance(dt, dtype):
        return dt.np_dtype
    if dt is builtins.float:
        return float32.np_dtype
    if dt is builtins.int:
        return int64.np_dtype
    if dt is builtins.bool:
        return bool_.np_dtype
    if isinstance(dt, str) and dt in _BY_NAME:
        return _BY_NAME[dt].np_dtype
    try:
        return from_numpy_dtype(dt).np_dtype
    except TypeError:
        raise TypeError(f"{dt!r} is not a dtype; use e.g. fastgrad.float32") from None


def table():
    """The compiled core's lookup: NumPy type number -> dtype (and the device)."""
    t = dict(_BY_NUM)
    # NumPy has two type numbers for 64-bit ints on some platforms (long / longlong)
    for code in "lq":
        t.setdefault(np.dtype(code).num, int64 if np.dtype(code).itemsize == 8 else int32)
    t["device"] = cpu
    return t

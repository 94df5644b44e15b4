# cython: language_level=3
"""The element types: `fastgrad.float32` ... as objects, their NumPy counterparts, and the names
PyTorch gives them in messages. The one home of these tables; every other module asks here.

PyTorch's promotion rules (Python float -> float32, Python int -> int64, 0-d tensors only lift
the category) are applied by the compiled ops; this module only names the types."""
cimport numpy as cnp
import builtins

import numpy as np

cnp.import_array()


class dtype:
    """A tensor element type; prints as PyTorch does (torch.float32)."""
    __slots__ = ("name", "np_dtype", "is_floating_point", "is_complex", "is_signed", "itemsize",
                 "scalar_name", "c_name")

    def __init__(self, name, np_type, scalar_name, c_name):
        self.name = name
        self.np_dtype = np.dtype(np_type)
        self.is_floating_point = self.np_dtype.kind == "f"
        self.is_complex = self.np_dtype.kind == "c"
        self.is_signed = self.np_dtype.kind in "fic"
        self.itemsize = self.np_dtype.itemsize
        self.scalar_name = scalar_name           # PyTorch's ScalarType name: Float, Long ...
        self.c_name = c_name                     # the C++ type PyTorch's messages name

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))

    def to_real(self):
        return self


float32 = dtype("float32", np.float32, "Float", "float")
float64 = dtype("float64", np.float64, "Double", "double")
float16 = dtype("float16", np.float16, "Half", "c10::Half")
int64 = dtype("int64", np.int64, "Long", "long int")
int32 = dtype("int32", np.int32, "Int", "int")
int16 = dtype("int16", np.int16, "Short", "short int")
int8 = dtype("int8", np.int8, "Char", "signed char")
uint8 = dtype("uint8", np.uint8, "Byte", "unsigned char")
bool_ = dtype("bool", np.bool_, "Bool", "bool")

ALL = (float32, float64, float16, int64, int32, int16, int8, uint8, bool_)
ALIASES = {"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
           "short": int16, "bool": bool_}
cdef dict _BY_NUM = {d.np_dtype.num: d for d in ALL}
# NumPy has two type numbers for 64-bit ints on some platforms (long / longlong)
for _code in "lq":
    _BY_NUM.setdefault(np.dtype(_code).num, int64 if np.dtype(_code).itemsize == 8 else int32)
del _code
cdef dict _BY_NAME = {d.name: d for d in ALL}
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


def torch_scalar_name(dt):
    """PyTorch's ScalarType name of a fastgrad or NumPy dtype (or a name): Float, Double, Long ..."""
    if isinstance(dt, dtype):
        return dt.scalar_name
    return scalar_type_name(np.dtype(str(dt).split(".")[-1]) if isinstance(dt, str) else dt)


cdef object dtype_of(cnp.ndarray arr):
    return _BY_NUM[arr.dtype.num]


cdef dict _OTHER_NAMES = {"complex64": "ComplexFloat", "complex128": "ComplexDouble"}


cdef str scalar_type_name(object np_dt):
    d = _BY_NUM.get(np_dt.num) if isinstance(np_dt, np.dtype) else None
    if d is not None:
        return d.scalar_name
    return _OTHER_NAMES.get(str(np_dt), str(np_dt))


cdef object dtype_name(cnp.ndarray arr):
    return f"torch.{scalar_type_name(arr.dtype)}Tensor"

"""fastgrad's dtype objects (fastgrad.float32 ...): the table lives in the compiled core
(`fastgrad._core.dtypes`); this module re-exports it for the Python facade."""
from fastgrad._core.dtypes import (dtype, float32, float64, float16, int64, int32, int16,  # noqa: F401
                                   int8, uint8, bool_, ALL, ALIASES, from_name, from_numpy_dtype,
                                   to_numpy_dtype, torch_scalar_name)
from fastgrad._device import device, cpu  # noqa: F401  (fastgrad.device)

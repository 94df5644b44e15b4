"""fastgrad: compiled automatic differentiation with PyTorch's API.

    import fastgrad as torch
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 2 + 1
    y.backward()
    x.grad          # tensor(4.)
"""
from fastgrad._dtypes import (dtype, device, float32, float64, float16, int64, int32, int16, int8,
                              uint8, bool_ as bool)
from fastgrad._dtypes import float32 as float, float64 as double, float16 as half
from fastgrad._dtypes import int64 as long, int32 as int, int16 as short
from fastgrad._tensor import Tensor, Size
from fastgrad._legacy import (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor,
                              ShortTensor, CharTensor, ByteTensor, BoolTensor)
from fastgrad._device import set_default_device, get_default_device
from fastgrad._creation import (tensor, as_tensor, from_numpy, zeros, ones, empty, full,
                                zeros_like, ones_like, empty_like, full_like, rand, randn,
                                rand_like, randn_like, randint, randperm, arange, linspace,
                                logspace, eye, randint_like)
from fastgrad.random import (Generator, default_generator, initial_seed, get_rng_state,
                             set_rng_state, manual_seed, seed)
from fastgrad._sampling import normal, bernoulli, multinomial
from fastgrad.functional import *          # noqa: F401,F403  (add, exp, sum, maximum, where ...)
from fastgrad import autograd
from fastgrad.autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                                         is_grad_enabled, is_inference_mode_enabled)
from fastgrad._core.anomaly_mode import (is_anomaly_enabled, is_anomaly_check_nan_enabled,
                                         set_anomaly_enabled)
from fastgrad._threads import set_num_threads, get_num_threads  # noqa: F401  (Note [One thread count])

# Loaded on first use (PEP 562), so `import fastgrad` costs little more than NumPy:
# `fastgrad.nn`, `torch.optim.SGD`, `fastgrad.save` and `import fastgrad.nn` all still work.
from fastgrad import _lazy  # noqa: E402
__getattr__, __dir__ = _lazy.attach(
    __name__, globals(), frozenset(["nn", "optim", "serialization", "viz", "demo", "bench", "linalg",
                                    "distributions", "utils", "cuda", "backends",
                                    "accelerator", "onnx", "multiprocessing"]),
    {"save": ("fastgrad.serialization", "save"), "load": ("fastgrad.serialization", "load")})
import typing as _typing  # noqa: E402
if _typing.TYPE_CHECKING:  # a type checker cannot see through __getattr__: the same names, eager
    from fastgrad import nn, optim, serialization  # noqa: F401
    from fastgrad.serialization import load, save  # noqa: F401

__version__ = "0.1.0"


def get_default_dtype():
    return float32


def is_floating_point(input):
    return input.is_floating_point()


def is_inference(input):
    """True for a tensor made under inference_mode (Tensor.is_inference)."""
    return input.is_inference()


__all__ = sorted({name for name in globals() if not name.startswith("_")} - {"annotations"}
                 | {"nn", "optim", "serialization", "save", "load", "linalg", "utils", "cuda",
                    "distributions", "backends", "accelerator", "onnx", "multiprocessing"})

"""The nn activations PyTorch also publishes as `torch.<name>` (selu, celu, threshold, rrelu and
their in-place forms) or as Tensor methods too (hardshrink, prelu): rows of the alias table that
load their compiled module (ops_activation, ops_gated) on the first call, so `import fastgrad`
stays as cheap as before (W8; tests/test_import.py). rrelu is composed here."""
import importlib

from fastgrad._core import ops_select as _select
from fastgrad._core.tensor import TensorBase
from fastgrad._creation_base import wrap as _wrap
from fastgrad._sampling import uniform_array


def _ops(name):
    return importlib.import_module(f"fastgrad._core.{name}")


def selu(input, inplace=False):
    return _ops("ops_activation").selu(input, inplace)


def selu_(input):
    return _ops("ops_activation").selu_(input)


def celu(input, alpha=1.0, inplace=False):
    return _ops("ops_activation").celu(input, alpha, inplace)


def celu_(input, alpha=1.0):
    return _ops("ops_activation").celu_(input, alpha)


def threshold(input, threshold, value, inplace=False):
    return _ops("ops_activation").threshold(input, threshold, value, inplace)


def threshold_(input, threshold, value):
    return _ops("ops_activation").threshold_(input, threshold, value)


def hardshrink(input, lambd=0.5):
    return _ops("ops_activation").hardshrink(input, lambd)


def prelu(input, weight):
    return _ops("ops_gated").prelu(input, weight)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky relu: in training each element <= 0 is multiplied by its own slope drawn
    uniformly from [lower, upper] (from fastgrad's generator: not PyTorch's sequence of draws),
    else leaky_relu with the mean slope (lower + upper) / 2."""
    if not isinstance(input, TensorBase):
        raise TypeError(f"rrelu(): argument 'input' must be Tensor, not {type(input).__name__}")
    if not training:
        act = _ops("ops_activation")
        slope = (lower + upper) / 2
        return act.leaky_relu(input, slope, inplace)
    if not input.is_floating_point():
        raise NotImplementedError(f"rrelu: not implemented for '{input.dtype}': it expects a "
                                  f"floating point tensor; convert it with .float()")
    slopes = _wrap(uniform_array(tuple(input.shape), input.detach().numpy().dtype, lower, upper))
    noise = _select.where(input <= 0, slopes, 1.0)
    if inplace:
        return _ops("ops_inplace").apply_inplace(input, lambda x: x * noise, "rrelu_")
    return input * noise


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, True)

"""The nn activations PyTorch also publishes as `torch.<name>` (selu, celu, threshold, and their
in-place forms) or as Tensor methods too (hardshrink, prelu): rows of the alias table that load
their compiled module (ops_activation, ops_gated) on the first call, so `import fastgrad` stays
as cheap as before (W8; tests/test_import.py)."""
import importlib


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

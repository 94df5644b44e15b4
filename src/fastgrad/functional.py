"""Torch-level free functions (fastgrad.exp(x), fastgrad.add(a, b) ...): the functions of the
alias table (_aliases.py: each one the same function as its Tensor method where both exist), and
below, the ones with arguments of their own (alpha=, out=, reflected forms)."""
from fastgrad import _aliases
from fastgrad._core import ops_compare as _cmp
from fastgrad._core import ops_out as _out
from fastgrad._core.tensor import TensorBase
from fastgrad._creation import tensor as _tensor
from fastgrad._histogram import histogram  # noqa: F401
from fastgrad._tensor import Tensor

globals().update(_aliases.FUNCTIONS)


def _t(x):
    return x if isinstance(x, TensorBase) else _tensor(x)


def _into(name, out, input, other, fn, rule=1):
    """fn() written into `out` (PyTorch's out=: not differentiable, resized if mis-shaped)."""
    _out.out_check(name, out, input, other)
    return _out.write_out(out, fn(), rule)


def add(input, other, *, alpha=1, out=None) -> Tensor:
    if out is not None:
        return _into("add", out, input, other, lambda: _t(input).add(other, alpha=alpha))
    return _t(input).add(other, alpha=alpha)


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    if out is not None:
        return _into("sub", out, input, other, lambda: _t(input).sub(other, alpha=alpha))
    return _t(input).sub(other, alpha=alpha)


subtract = sub


def mul(input, other, *, out=None) -> Tensor:
    if out is not None:
        return _into("mul", out, input, other, lambda: _t(input) * other)
    return _t(input) * other


multiply = mul


def div(input, other, *, rounding_mode=None, out=None) -> Tensor:
    def fn():
        if rounding_mode is None:
            return _t(input) / other
        return _cmp.div_rounding(_t(input), other, rounding_mode=rounding_mode)
    return fn() if out is None else _into("div", out, input, other, fn)


divide = true_divide = div


def pow(input, exponent, *, out=None) -> Tensor:
    if out is not None:
        return _into("pow", out, input, exponent, lambda: pow(input, exponent))
    if not isinstance(input, TensorBase):
        return exponent.__rpow__(input)
    return input ** exponent


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    return input.sum(dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    return input.mean(dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)


def is_tensor(obj) -> bool:
    return isinstance(obj, TensorBase)


def numel(input) -> int:
    return input.numel()

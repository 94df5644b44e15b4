"""Torch-level free functions (fastgrad.exp(x), fastgrad.add(a, b) ...): each one forwards to the
tensor method or compiled function of the same name."""
import warnings as _warnings

import numpy as _np

from fastgrad._core import ops_pointwise as _pw
from fastgrad._core import ops_reduce as _red
from fastgrad._core import ops_view as _view
from fastgrad._core import ops_join as _join
from fastgrad._core import ops_out as _out
from fastgrad._core import ops_index as _ix
from fastgrad._core import ops_matmul as _la
from fastgrad._core import ops_linear as _lin
from fastgrad._core import ops_einsum as _ein
from fastgrad._core import ops_nn as _nn
from fastgrad._core import ops_reduce_composed as _red2
from fastgrad._core.ops_pointwise import (floor_divide, remainder, fmod,  # noqa: F401
                                          bitwise_and, bitwise_or, bitwise_xor, bitwise_not,
                                          logical_and, logical_or, logical_xor, logical_not)
from fastgrad._core.tensor import TensorBase
from fastgrad._creation import tensor as _tensor
from fastgrad._histogram import histogram  # noqa: F401
from fastgrad._tensor import AXIS_OPS as _AXIS_OPS
from fastgrad._tensor import OP_TABLES as _OP_TABLES, POINTWISE_INPLACE as _POINTWISE_INPLACE
from fastgrad._tensor import axis_alias as _axis_alias
from fastgrad._tensor import Tensor

maximum = _pw.maximum
minimum = _pw.minimum
clamp = _pw.clamp
clip = _pw.clamp
where = _pw.where
sign = _pw.sign
clone = _pw.clone
max = _red.max
min = _red.min
exp, log, sqrt, sin, cos = _pw.exp, _pw.log, _pw.sqrt, _pw.sin, _pw.cos
tanh, sigmoid, relu, reciprocal = _pw.tanh, _pw.sigmoid, _pw.relu, _pw.reciprocal
neg = negative = _pw.neg
abs = absolute = _pw.abs


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
        return _pw.div_rounding(_t(input), other, rounding_mode=rounding_mode)
    return fn() if out is None else _into("div", out, input, other, fn)


divide = true_divide = div


def pow(input, exponent, *, out=None) -> Tensor:
    if out is not None:
        return _into("pow", out, input, exponent, lambda: pow(input, exponent))
    if not isinstance(input, TensorBase):
        return exponent.__rpow__(input)
    return input ** exponent


def square(input) -> Tensor:
    return input ** 2


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    return input.sum(dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    return input.mean(dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)


def eq(input, other) -> Tensor:
    return input == other


def ne(input, other) -> Tensor:
    return input != other


def lt(input, other) -> Tensor:
    return input < other


def le(input, other) -> Tensor:
    return input <= other


def gt(input, other) -> Tensor:
    return input > other


def ge(input, other) -> Tensor:
    return input >= other


def is_tensor(obj) -> bool:
    return isinstance(obj, TensorBase)


def numel(input) -> int:
    return input.numel()


# -- shapes, indexing, joining (ops_view, ops_index) --
reshape = _view.reshape
flatten = _view.flatten
unflatten = _view.unflatten
squeeze = _view.squeeze
unsqueeze = _view.unsqueeze
transpose = _view.transpose
swapaxes = _view.swapaxes
movedim = _view.movedim
permute = _view.permute
t = _view.t
broadcast_to = _view.broadcast_to
diagonal = _view.diagonal
flip = _view.flip
repeat_interleave = _join.repeat_interleave
chunk = _join.chunk
split = _join.split
unbind = _join.unbind
cat = _join.cat
concat = concatenate = _join.cat
stack = _join.stack
hstack = _join.hstack
vstack = _join.vstack
select = _ix.select
narrow = _ix.narrow
index_select = _ix.index_select
gather = _ix.gather
scatter_add = _ix.scatter_add
masked_fill = _ix.masked_fill
take_along_dim = _ix.take_along_dim

# -- matrix products (ops_matmul, ops_linear, ops_einsum) and fused softmax (ops_nn) --
matmul = _la.matmul
mm = _la.mm
bmm = _la.bmm
mv = _la.mv
dot = _la.dot
inner = _la.inner
outer = _la.outer
ger = _la.outer
addmm = _lin.addmm
einsum = _ein.einsum
softmax = _nn.softmax
log_softmax = _nn.log_softmax

# -- more reductions (ops_reduce_composed) --
var = _red2.var
std = _red2.std
var_mean = _red2.var_mean
std_mean = _red2.std_mean
prod = _red2.prod
cumsum = _red2.cumsum
logsumexp = _red2.logsumexp
norm = _red2.norm
amax = _red2.amax
amin = _red2.amin
argmax = _red2.argmax
argmin = _red2.argmin
all = _red2.all
any = _red2.any

def cross(input, other, dim=None, *, out=None) -> Tensor:
    """linalg.cross along dim; without dim, along the first dim of size 3 (PyTorch's deprecated
    default, with its warning)."""
    from fastgrad.linalg import cross as _cross
    if dim is None:
        _warnings.warn("Using torch.cross without specifying the dim arg is deprecated. Please "
                      "either pass the dim explicitly or simply use torch.linalg.cross.",
                      UserWarning, stacklevel=2)
        shape = _np.broadcast_shapes(tuple(input.shape), tuple(other.shape))
        dim = next((d for d, n in enumerate(shape) if n == 3), -1)
    return _cross(input, other, dim=dim, out=out)


def diag(input, diagonal=0, *, out=None) -> Tensor:
    """A 1-D input becomes the given diagonal of a square matrix (zeros elsewhere); a 2-D input
    gives its diagonal as a 1-D tensor (a view). Recorded ops, so gradients follow."""
    if input.dim() == 2:
        res = input.diagonal(diagonal)
    elif input.dim() == 1:
        n, k = input.shape[0], int(diagonal)
        m = n + (k if k >= 0 else -k)          # (abs and max here are the tensor functions)
        rows = _np.arange(n) + (-k if k < 0 else 0)
        flat = _tensor((rows * m + rows + k).tolist(), dtype=None).long()
        zeros = _tensor(_np.zeros(m * m, dtype=input.numpy(force=True).dtype))
        res = zeros.index_add(0, flat, input).view(m, m)
    else:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.dim()}D")
    if out is not None:
        return out.copy_(res.detach())
    return res


def rsqrt(input, *, out=None) -> Tensor:
    """1 / sqrt(input), rounded as PyTorch computes it (a division of the square root)."""
    res = input.rsqrt()
    if out is not None:
        return out.copy_(res.detach())
    return res


# -- the op families' tables (log1p, erf, atan2, isclose, sort, topk, scatter, unique, ...) --
for _module in _OP_TABLES:
    globals().update(_module.FUNCTIONS)
    globals().update(getattr(_module, "FREE_FUNCTIONS", {}))

# torch.exp_(x), torch.sigmoid_(x) ...: the in-place methods as functions
for _name in _POINTWISE_INPLACE:
    globals()[_name + "_"] = getattr(Tensor, _name + "_")

# -- axis= / keepdims= on the dim-taking functions, as on the methods --
for _name in _AXIS_OPS:
    if _name in globals():
        globals()[_name] = _axis_alias(globals()[_name])

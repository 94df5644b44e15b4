"""Helpers shared by the distributions: broadcasting parameters, probabilities <-> logits,
lazily computed parameters."""
import numpy as np

import fastgrad
from fastgrad._creation_base import numpy_dtype
from fastgrad._core.tensor import TensorBase

__all__ = ["broadcast_all", "clamp_probs", "lazy_property", "logits_to_probs",
           "probs_to_logits"]

# PyTorch's Python numbers (bool, int, float); NumPy's float64 is a float subclass.
_NUMBER = (bool, int, float)


def broadcast_shape(*shapes):
    """The shape `shapes` broadcast to, or PyTorch's RuntimeError naming the clash."""
    out, n = [], max(map(len, shapes), default=0)
    for i in range(1, n + 1):
        sizes = {s[-i] for s in shapes if len(s) >= i} - {1}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b "
                               f"({b}) at non-singleton dimension {n - i}: shapes "
                               f"{[list(s) for s in shapes]} do not broadcast (sizes must be "
                               f"equal or 1, aligned from the right)")
        out.append(sizes.pop() if sizes else 1)
    return fastgrad.Size(reversed(out))


def broadcast_tensors(*tensors):
    """The tensors expanded (views, differentiable) to their common broadcast shape."""
    shape = broadcast_shape(*(tuple(t.shape) for t in tensors))
    return tuple(t if tuple(t.shape) == shape else t.expand(shape) for t in tensors)


def broadcast_all(*values):
    """Tensors and numbers broadcast together. Numbers become tensors of the first tensor's
    dtype (of the default dtype when all are numbers); tensors keep their own dtypes."""
    for v in values:
        if not isinstance(v, (TensorBase,) + _NUMBER):
            raise ValueError("Input arguments must all be instances of Number, torch.Tensor "
                             f"or objects implementing __torch_function__; got "
                             f"{type(v).__name__}: pass a tensor or a Python number")
    like = next((v for v in values if isinstance(v, TensorBase)), None)
    dtype = like.dtype if like is not None else fastgrad.get_default_dtype()
    return broadcast_tensors(*(v if isinstance(v, TensorBase) else fastgrad.tensor(v, dtype=dtype)
                               for v in values))


def one_parameter(probs, logits):
    """("probs", probs) or ("logits", logits): the one of the two given."""
    if (probs is None) == (logits is None):
        raise ValueError("Either `probs` or `logits` must be specified, but not both.")
    return ("probs", probs) if probs is not None else ("logits", logits)


def sum_rightmost(value, dim):
    """`value` summed over its `dim` rightmost dims."""
    if dim == 0:
        return value
    return value.reshape(tuple(value.shape[:value.dim() - dim]) + (-1,)).sum(-1)


def clamp_probs(probs):
    """probs clamped to [eps, 1 - eps] with eps the dtype's machine epsilon, so that their
    logs stay finite."""
    eps = float(np.finfo(numpy_dtype(probs.dtype)).eps)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    """Log-probabilities of each event (is_binary: the log-odds of the event 1)."""
    p = clamp_probs(probs)
    if is_binary:
        return p.log() - (-p).log1p()
    return p.log()


def logits_to_probs(logits, is_binary=False):
    """Probabilities from log-odds (is_binary) or from unnormalised log-probabilities over the
    last dim."""
    if is_binary:
        return logits.sigmoid()
    return logits.softmax(-1)


def finfo_min(dtype):
    """The most negative finite value of a floating dtype."""
    return float(np.finfo(numpy_dtype(dtype)).min)


class lazy_property:
    """A parameter computed from another on first access, then stored on the instance (a
    Categorical made from logits computes its probs only when asked). Computed with gradient
    recording on, so it stays differentiable even when first read under no_grad."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.__doc__ = wrapped.__doc__
        self.__name__ = wrapped.__name__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with fastgrad.enable_grad():
            value = self.wrapped(instance)
        setattr(instance, self.__name__, value)
        return value

"""torch.nn.functional for fastgrad: activations, linear, dropout, normalisation, embedding, losses.

Hot ops are compiled primitives: cross_entropy / nll_loss / mse_loss /
binary_cross_entropy_with_logits / gelu / silu / softplus / elu / leaky_relu / embedding come from
_core.ops_loss; relu / sigmoid / tanh from _core.ops_pointwise; linear / softmax / log_softmax /
reshapes from the shape and matrix-product ops (_core.ops_linalg, ops_nn, ops_view). The rest
(layer_norm, batch_norm, l1/smooth_l1/huber, bce, dropout) are composed of recorded ops: they are
not hot, and composing keeps every gradient differentiable.
"""
import math
import warnings

import numpy as np

from fastgrad._core import ops_arrange as _arrange
from fastgrad._core import ops_loss as _L
from fastgrad._core.ops_linalg import linear as _linear
from fastgrad._core.ops_nn import log_softmax as _log_softmax
from fastgrad._core.ops_nn import softmax as _softmax
from fastgrad._core import ops_pointwise as _pw
from fastgrad._core.tensor import TensorBase
from fastgrad._tensor import Tensor

cross_entropy = _L.cross_entropy
nll_loss = _L.nll_loss
mse_loss = _L.mse_loss
binary_cross_entropy_with_logits = _L.binary_cross_entropy_with_logits
gelu = _L.gelu
silu = _L.silu
softplus = _L.softplus
elu = _L.elu
leaky_relu = _L.leaky_relu
embedding = _L.embedding

_REDUCTIONS = ("none", "mean", "sum")


def _view():
    from fastgrad._core import ops_view
    return ops_view


# --- activations ---------------------------------------------------------------------------------

def relu(input, inplace=False) -> Tensor:
    if inplace:
        return input.copy_(input.relu()) if not input.requires_grad else input.relu()
    return input.relu()


def sigmoid(input) -> Tensor:
    return input.sigmoid()


def tanh(input) -> Tensor:
    return input.tanh()


def _softmax_dim(name, ndim):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1




def softmax(input, dim=None, _stacklevel=3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.dim())
    if dtype is not None:
        input = input.to(dtype)
    return _softmax(input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim())
    if dtype is not None:
        input = input.to(dtype)
    return _log_softmax(input, dim)


# --- linear, dropout, embedding ------------------------------------------------------------------

def linear(input, weight, bias=None) -> Tensor:
    return _linear(input, weight, bias)


def dropout(input, p=0.5, training=True, inplace=False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    from fastgrad import _sampling
    x = input._np
    if p == 1.0:
        mask = np.zeros(x.shape, dtype=x.dtype)
    else:
        # PyTorch's mask: bernoulli_(1 - p) in the input's dtype, then divided by (1 - p), which
        # float16 computes in float32 and rounds once
        ct = np.float32 if x.dtype == np.float16 else x.dtype.type
        mask = (_sampling._bernoulli_values(x.shape, 1 - p, None).astype(ct) / ct(1 - p))
    out = input * _wrap(mask.astype(x.dtype, copy=False))
    if inplace:
        return input.copy_(out)
    return out


def _wrap(arr):
    from fastgrad._creation import from_numpy
    return from_numpy(np.asarray(arr, order="C"))


def one_hot(tensor, num_classes=-1) -> Tensor:
    """int64 tensor of shape tensor.shape + (num_classes,) with a 1 at each index."""
    x = tensor._np
    if x.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to index tensor of type LongTensor, got "
                           f"{tensor.dtype}; use tensor.long()")
    if num_classes == -1:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise RuntimeError(f"Class values must be smaller than num_classes ({num_classes}) and "
                           f"non-negative, got min {x.min()} max {x.max()}")
    out = np.zeros(x.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, x[..., None].astype(np.int64), 1, axis=-1)
    return _wrap(out)


# --- normalisation -------------------------------------------------------------------------------

def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the last len(normalized_shape) dims, then * w + b."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[input.dim() - k:]) != normalized_shape or input.dim() < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    dims = tuple(range(input.dim() - k, input.dim()))
    xc = input - input.mean(dims, True)
    var = (xc * xc).mean(dims, True)
    y = xc / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Normalise over every dim but 1 (channels). In training, batch statistics are used and the
    running ones updated in place: running = (1 - momentum) running + momentum batch (unbiased
    variance); otherwise the running statistics are used."""
    from fastgrad.autograd.grad_mode import no_grad
    if input.dim() < 2:
        raise ValueError(f"batch_norm: expected 2D or 3D input (got {input.dim()}D input)")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.dim()))
    bshape = (1, c) + (1,) * (input.dim() - 2)
    n = input.numel() // c
    if training:
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
        mean = input.mean(dims, True)
        xc = input - mean
        var = (xc * xc).mean(dims, True)
        if running_mean is not None:
            with no_grad():
                bm = mean.detach()._np.reshape(c)
                bv = var.detach()._np.reshape(c) * (n / (n - 1))
                rm, rv = running_mean._np, running_var._np
                rm *= (1 - momentum)
                rm += momentum * bm.astype(rm.dtype)
                rv *= (1 - momentum)
                rv += momentum * bv.astype(rv.dtype)
        y = xc / (var + eps).sqrt()
    else:
        if running_mean is None:
            raise RuntimeError("batch_norm: running_mean and running_var are required in eval "
                               "mode (or use training=True)")
        rm = _wrap(running_mean._np.reshape(bshape).astype(input._np.dtype))
        rv = _wrap(running_var._np.reshape(bshape).astype(input._np.dtype))
        y = (input - rm) / (rv + eps).sqrt()
    if weight is not None:
        y = y * (weight if input.dim() == 2 else _view().reshape(weight, bshape))
    if bias is not None:
        y = y + (bias if input.dim() == 2 else _view().reshape(bias, bshape))
    return y


# --- losses --------------------------------------------------------------------------------------

def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; use 'none', "
                     f"'mean' or 'sum'")


def _same_size(input, target, op):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to "
                      f"broadcasting. Please ensure they have the same size.", UserWarning,
                      stacklevel=3)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None) -> Tensor:
    _same_size(input, target, "l1_loss")
    reduction = _L.legacy_reduction(size_average, reduce, reduction)
    return _reduce((input - target).abs(), reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (l1 when beta == 0)."""
    _same_size(input, target, "smooth_l1_loss")
    reduction = _L.legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = (input - target).abs()
    if beta == 0.0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = _pw.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None) -> Tensor:
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    _same_size(input, target, "huber_loss")
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = (input - target).abs()
    loss = _pw.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean") -> Tensor:
    """-(y log x + (1 - y) log(1 - x)), each log clamped at -100 as PyTorch does."""
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         f"size.")
    reduction = _L.legacy_reduction(size_average, reduce, reduction)
    x = input._np
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1):
        raise RuntimeError("all elements of input should be between 0 and 1 (binary_cross_entropy "
                           "takes probabilities; for logits use binary_cross_entropy_with_logits)")
    log_x = _pw.clamp(input.log(), -100.0, None)
    log_1mx = _pw.clamp((1 - input).log(), -100.0, None)
    loss = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


# --- padding, normalising and comparing vectors ---------------------------------------------------

def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dims: pad = (left, right) for the last dim, then the one before
    it, ... Modes: constant (negative amounts crop), reflect, replicate, circular. Recorded ops
    (narrow, cat, index_select), so the gradient flows back to the unpadded input."""
    if len(pad) % 2:
        raise RuntimeError(f"Padding length must be divisible by 2, got {len(pad)}")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of dimension "
                           f"{input.dim()}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}; use 'constant', 'reflect', "
                                  f"'replicate' or 'circular'")
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument")
    out = input
    for k in range(len(pad) // 2):
        dim = input.dim() - 1 - k
        before, after = int(pad[2 * k]), int(pad[2 * k + 1])
        if mode == "constant":
            out = _pad_constant(out, dim, before, after, 0.0 if value is None else value)
        elif before or after:
            if mode != "circular" and (before < 0 or after < 0):
                raise RuntimeError(f"{mode} padding takes non-negative amounts, got "
                                   f"({before}, {after})")
            index = _arrange.pad_index(out.shape[dim], before, after, mode)
            out = out.index_select(dim, index)
    return out


def _pad_constant(x, dim, before, after, value):
    if before < 0:
        x = x.narrow(dim, -before, x.shape[dim] + before)
        before = 0
    if after < 0:
        x = x.narrow(dim, 0, x.shape[dim] + after)
        after = 0
    parts = []
    for amount in (before, None, after):
        if amount is None:
            parts.append(x)
        elif amount:
            shape = list(x.shape)
            shape[dim] = amount
            parts.append(_wrap(np.full(shape, value, dtype=x._np.dtype)))
    return parts[0] if len(parts) == 1 else _view().cat(parts, dim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    denom = _pw.clamp(input.norm(p, dim, keepdim=True), eps, None)
    res = input / denom
    if out is not None:
        return out.copy_(res.detach())
    return res


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """(x1 . x2) / max(||x1|| * ||x2||, eps) along dim, inputs broadcast together."""
    w12 = (x1 * x2).sum(dim)
    n1 = (x1 * x1).sum(dim)
    n2 = (x2 * x2).sum(dim)
    return w12 / _pw.clamp((n1 * n2).sqrt(), eps, None)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    d = x1 - x2 + eps
    dim = -1 if d.dim() else 0
    return d.norm(p, dim, keepdim=keepdim)

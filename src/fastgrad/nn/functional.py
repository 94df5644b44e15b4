"""torch.nn.functional for fastgrad: activations, linear, dropout, normalisation, embedding, losses.

Hot ops are compiled primitives: cross_entropy / nll_loss / mse_loss / binary_cross_entropy /
binary_cross_entropy_with_logits / gelu / silu / softplus / elu / leaky_relu / embedding come from
_core.ops_loss; relu / sigmoid / tanh from _core.ops_unary; linear / softmax / log_softmax /
reshapes from the shape and matrix-product ops (_core.ops_matmul, ops_softmax, ops_view). The rest
(layer_norm, batch_norm, l1/smooth_l1/huber, dropout) are composed of recorded ops: they are
not hot, and composing keeps every gradient differentiable.
"""
import math
import warnings

import numpy as np

from fastgrad._core import ops_arrange as _arrange
from fastgrad._core import ops_loss as _L
from fastgrad._core import ops_activation as _A
from fastgrad._core import ops_gated as _gated
from fastgrad import _activations
from fastgrad._core import ops_embedding as _E
from fastgrad._core.ops_einsum import einsum as _einsum
from fastgrad._core.ops_linear import linear as _linear
from fastgrad._core.ops_softmax import log_softmax as _log_softmax
from fastgrad._core.ops_softmax import softmax as _softmax
from fastgrad._core import ops_select as _select
from fastgrad._core import ops_view as _ops_view
from fastgrad._core import ops_join as _join
from fastgrad._core import ops_attention as _attn
from fastgrad.nn.loss_functional import reduce_loss as _reduce
from fastgrad.nn import float16_compute as _f16
from fastgrad.nn.loss_functional import (kl_div, soft_margin_loss,  # noqa: F401
                                         margin_ranking_loss, hinge_embedding_loss,
                                         cosine_embedding_loss, multilabel_soft_margin_loss,
                                         poisson_nll_loss, gaussian_nll_loss,
                                         triplet_margin_loss, multi_margin_loss)
from fastgrad._creation_base import wrap as _new_tensor
from fastgrad._tensor import Tensor

cross_entropy = _L.cross_entropy
nll_loss = _L.nll_loss
mse_loss = _L.mse_loss
binary_cross_entropy = _L.binary_cross_entropy
binary_cross_entropy_with_logits = _L.binary_cross_entropy_with_logits
gelu = _A.gelu
silu = _A.silu
softplus = _A.softplus
elu = _A.elu
leaky_relu = _A.leaky_relu
elu_ = _A.elu_
leaky_relu_ = _A.leaky_relu_
hardtanh = _A.hardtanh
hardtanh_ = _A.hardtanh_
relu6 = _A.relu6
selu = _A.selu
selu_ = _A.selu_
celu = _A.celu
celu_ = _A.celu_
hardsigmoid = _A.hardsigmoid
hardswish = _A.hardswish
mish = _A.mish
threshold = _A.threshold
threshold_ = _A.threshold_
logsigmoid = _A.logsigmoid
hardshrink = _A.hardshrink
softshrink = _A.softshrink
glu = _gated.glu
rrelu = _activations.rrelu
rrelu_ = _activations.rrelu_
prelu = _gated.prelu
embedding = _E.embedding

_REDUCTIONS = ("none", "mean", "sum")


# --- activations ---------------------------------------------------------------------------------

def relu(input, inplace=False) -> Tensor:
    return input.relu_() if inplace else input.relu()


def relu_(input) -> Tensor:
    return input.relu_()


def sigmoid(input) -> Tensor:
    return input.sigmoid()


def tanh(input) -> Tensor:
    return input.tanh()


def softsign(input) -> Tensor:
    return input / (input.abs() + 1)


def tanhshrink(input) -> Tensor:
    return input - input.tanh()


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


def softmin(input, dim=None, _stacklevel=3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmin", input.dim())
    if dtype is not None:
        input = input.to(dtype)
    return _softmax(-input, dim)


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
        # drawn in the input's memory order, as PyTorch's empty_like(input).bernoulli_ fills it
        order = _sampling._MemoryOrder(input)
        mask = order.place(_sampling._bernoulli_values(order.draw_shape, 1 - p, None).astype(ct)
                           / ct(1 - p))
    out = input * _wrap(mask.astype(x.dtype, copy=False))  # product: as PyTorch
    if inplace:
        return input.copy_(out)
    return out


_SELU_NEG = 1.7580993408473766        # selu's scale * alpha: what alpha dropout drops to


def _alpha_dropout(input, p, training, inplace, feature):
    """Alpha dropout: dropped elements (or whole channels, with `feature`) become selu's
    negative saturation -scale * alpha, then an affine map restores zero mean and unit variance
    for selu inputs; the noise is bernoulli_(1 - p) drawn as PyTorch draws it."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        from fastgrad import _sampling
        if feature:
            if input.dim() < 2:
                raise RuntimeError(f"Feature dropout requires at least 2 dimensions in the input; "
                                   f"got {input.dim()}")
            keep = _sampling._bernoulli_values(tuple(input.shape[:2]) + (1,) * (input.dim() - 2),
                                               1 - p, None)
        else:
            order = _sampling._MemoryOrder(input)
            keep = order.place(_sampling._bernoulli_values(order.draw_shape, 1 - p, None))
        dt = input._np.dtype
        a = 1.0 / math.sqrt((_SELU_NEG * _SELU_NEG * p + 1) * (1 - p))
        keep = keep.astype(dt)
        b = (keep - 1) * (_SELU_NEG * a) + _SELU_NEG * a * p
        out = input * _wrap((keep * a).astype(dt, copy=False)) + _wrap(b.astype(dt, copy=False))
    return input.copy_(out) if inplace else out


def alpha_dropout(input, p=0.5, training=False, inplace=False) -> Tensor:
    return _alpha_dropout(input, p, training, inplace, False)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False) -> Tensor:
    return _alpha_dropout(input, p, training, inplace, True)


def bilinear(input1, input2, weight, bias=None) -> Tensor:
    """y[..., o] = input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    if input1.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got "
                           f"{input1.shape[-1]} but expected {weight.shape[1]}")
    if input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got "
                           f"{input2.shape[-1]} but expected {weight.shape[2]}")
    for d, (n1, n2) in enumerate(zip(input1.shape[:-1], input2.shape[:-1])):
        if n1 != n2 or input1.dim() != input2.dim():
            raise RuntimeError(f"bilinear(): input batch dimensions do not match at dim {d}: "
                               f"got {n1} and {n2}")
    if bias is not None and bias.shape[-1] != weight.shape[0]:
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got "
                           f"{bias.shape[-1]} but expected {weight.shape[0]}")
    out = _einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def _wrap(arr):
    """A new tensor over arr (copied only if it is not C-contiguous)."""
    return _new_tensor(np.asarray(arr, order="C"))


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

def _check_normalized_shape(input, normalized_shape):
    """The number of trailing dims normalized_shape names, after checking input ends with them."""
    k = len(normalized_shape)
    if k == 0:
        raise RuntimeError(f"Expected normalized_shape to be at least 1-dimensional, i.e., "
                           f"containing at least one element, but got normalized_shape = "
                           f"{list(normalized_shape)}")
    if tuple(input.shape[input.dim() - k:]) != normalized_shape or input.dim() < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    return k


def _check_norm_params(normalized_shape, **params):
    """PyTorch's RuntimeError for a weight or bias not of normalized_shape's shape."""
    for name, p in params.items():
        if p is not None and tuple(p.shape) != tuple(normalized_shape):
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got "
                               f"{name} of shape {list(p.shape)} and normalized_shape = "
                               f"{list(normalized_shape)}")


def _check_norm_dtypes(input, *params):
    """PyTorch's "mixed dtype" RuntimeError: a float32 or float64 input takes parameters of its
    own dtype; a float16 one takes its own or float32."""
    dt, f32 = input._np.dtype, np.dtype(np.float32)
    for p in params:
        if p is None or p._np.dtype == dt or (dt == np.float16 and p._np.dtype == f32):
            continue
        what = ("expect parameter to have scalar type of Float" if dt == f32 else
                "all inputs must share same datatype.")
        dt, pdt = input.dtype, p.dtype
        raise RuntimeError(f"mixed dtype (CPU): {what} (input {dt}, parameter {pdt}: "
                           f"convert the parameters with .to({dt}), e.g. module.to({dt}))")


def rms_norm(input, normalized_shape, weight=None, eps=None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the last len(normalized_shape) dims, then * weight; eps
    defaults to the machine epsilon of the dtype it is computed in, as PyTorch."""
    if not isinstance(normalized_shape, (tuple, list)):
        raise TypeError(f"rms_norm(): argument 'normalized_shape' (position 2) must be tuple of "
                        f"ints, not {type(normalized_shape).__name__}")
    normalized_shape = tuple(normalized_shape)
    if not input.is_floating_point():
        raise RuntimeError(f"rms_norm: expected a floating point input, got {input.dtype}; "
                           f"convert first, e.g. x.float()")
    k = _check_normalized_shape(input, normalized_shape)
    _check_norm_params(normalized_shape, weight=weight)
    if _f16.is_float16(input):          # Note [float16 computed in float32]
        # eps too defaults to float32's (PyTorch's kernel takes its computing type's epsilon)
        x, w = _f16.upcast(input, weight)
        return _f16.like(rms_norm(x, normalized_shape, w, eps), input)
    if eps is None:
        eps = float(np.finfo(input._np.dtype).eps)
    dims = tuple(range(input.dim() - k, input.dim()))
    y = input * ((input * input).mean(dims, True) + eps).rsqrt()
    return y if weight is None else y * weight


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the last len(normalized_shape) dims, then * w + b."""
    if not isinstance(normalized_shape, (tuple, list)):
        raise TypeError(f"layer_norm(): argument 'normalized_shape' (position 2) must be tuple of "
                        f"ints, not {type(normalized_shape).__name__}")
    normalized_shape = tuple(normalized_shape)
    if not input.is_floating_point():
        raise NotImplementedError(f'"LayerNormKernelImpl" not implemented for {input.dtype}: '
                                  f'layer_norm needs a floating point input; convert first, e.g. '
                                  f'x.float()')
    k = _check_normalized_shape(input, normalized_shape)
    _check_norm_params(normalized_shape, weight=weight, bias=bias)
    _check_norm_dtypes(input, weight, bias)
    from fastgrad._core.ops_norm import layer_norm as _layer_norm
    dt = input._np.dtype
    if dt == _F16:                      # Note [float16 computed in float32]
        x, w, b = _f16.upcast(input, weight, bias)
        return _f16.like(layer_norm(x, normalized_shape, w, b, eps), input)
    if dt == _F32:
        d = math.prod(normalized_shape)
        if d and (d > _LONG_SUM or input.numel() // d > _LONG_SUM * 64):
            # the row loops sum a row in its dtype, and the weight's gradient over blocks of 64
            # rows: float32 sums this long are taken in float64 (Note [Sums' accumulators])
            x, w, b = (t if t is None else t.double() for t in (input, weight, bias))
            return _layer_norm(x, k, w, b, float(eps)).to(input.dtype)
    return _layer_norm(input, k, weight, bias, float(eps))


_LONG_SUM = 2048    # ACC_TERMS of Note [Sums' accumulators] in ops_reduce.pyx
_F16, _F32 = np.dtype(np.float16), np.dtype(np.float32)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Normalise over every dim but 1 (channels). In training, batch statistics are used and the
    running ones updated in place: running = (1 - momentum) running + momentum batch (unbiased
    variance); otherwise the running statistics are used."""
    from fastgrad.autograd.grad_mode import no_grad
    if input.dim() < 2:
        raise ValueError(f"batch_norm: expected 2D or 3D input (got {input.dim()}D input)")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    if _f16.is_float16(input):          # Note [float16 computed in float32]
        x, w, b = _f16.upcast(input, weight, bias)
        return _f16.like(batch_norm(x, running_mean, running_var, w, b, training, momentum,
                                    eps), input)
    dims = (0,) + tuple(range(2, input.dim()))
    bshape = (1, c) + (1,) * (input.dim() - 2)
    n = input.numel() // c
    if training and n == 0:        # an empty batch: an empty result, the statistics kept
        y = input * 0
    elif training:
        if n == 1:
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
        y = y * (weight if input.dim() == 2 else _ops_view.reshape(weight, bshape))
    if bias is not None:
        y = y + (bias if input.dim() == 2 else _ops_view.reshape(bias, bshape))
    return y


# --- losses --------------------------------------------------------------------------------------

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
    # the linear branch only where |d| >= beta holds: an infinite d gives the quadratic branch
    # no NaN, and a NaN d takes the quadratic branch, whose gradient is NaN (as PyTorch's)
    far = d >= beta
    dq = _select.where(far, 0.0, d)
    loss = _select.where(far, d - 0.5 * beta, dq * dq * (0.5 / beta))
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None) -> Tensor:
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    _same_size(input, target, "huber_loss")
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = (input - target).abs()
    far = d >= delta                    # as in smooth_l1_loss: inf and NaN as PyTorch
    dq = _select.where(far, 0.0, d)
    loss = _select.where(far, (d - 0.5 * delta) * delta, dq * dq * 0.5)
    return _reduce(loss, reduction, "huber_loss")


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
    return parts[0] if len(parts) == 1 else _join.cat(parts, dim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    denom = _select.clamp(input.norm(p, dim, keepdim=True), eps, None)
    res = input / denom
    if out is not None:
        return out.copy_(res.detach())
    return res


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """(x1 . x2) / max(||x1|| * ||x2||, eps) along dim, inputs broadcast together."""
    if _f16.is_float16(x1) or _f16.is_float16(x2):  # Note [float16 computed in float32]
        out = cosine_similarity(*_f16.upcast(x1, x2), dim, eps)
        return _f16.like(out, x1) if x1.dtype == x2.dtype else out
    w12 = (x1 * x2).sum(dim)
    n1 = (x1 * x1).sum(dim)
    n2 = (x2 * x2).sum(dim)
    return w12 / _select.clamp((n1 * n2).sqrt(), eps, None)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    d = x1 - x2 + eps
    dim = -1 if d.dim() else 0
    return d.norm(p, dim, keepdim=keepdim)


# --- convolution and pooling (compiled: _core.ops_conv, _core.ops_pool) -----------------------------

from fastgrad.nn.conv_functional import (conv1d, conv2d, conv_transpose1d,  # noqa: E402,F401
                                         conv_transpose2d, unfold, fold)
from fastgrad.nn.pool_functional import (max_pool1d, max_pool2d, avg_pool1d,  # noqa: E402,F401
                                         avg_pool2d, adaptive_avg_pool1d, adaptive_avg_pool2d,
                                         adaptive_max_pool1d, adaptive_max_pool2d)


# --- attention -----------------------------------------------------------------------------------

def _additive_mask(mask, dtype_np, keep_true):
    """A bool mask as a float tensor to add to the scores: 0 where attended, -inf elsewhere
    (keep_true: True means attend, as in scaled_dot_product_attention; otherwise True means
    masked, as in MultiheadAttention). A float mask is returned as it is."""
    m = mask._np
    if m.dtype == np.bool_:
        masked = ~m if keep_true else m
        return _wrap(np.where(masked, dtype_np.type(-np.inf), dtype_np.type(0)))
    if m.dtype.kind != "f":
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query "
                           f"dtype, but got attn_mask.dtype: {mask.dtype}; pass a bool or "
                           f"float mask")
    return mask


def _check_batch_dims(*tensors):
    """PyTorch's RuntimeError when the batch dims (all but the last two) do not broadcast."""
    shapes = [tuple(t.shape[:-2]) for t in tensors]
    n = max(len(s) for s in shapes)
    shapes = [(1,) * (n - len(s)) + s for s in shapes]
    for d in range(n):
        sizes = {s[d] for s in shapes} - {1}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b ({b}) "
                               f"at non-singleton dimension {d}: query, key and value's batch "
                               f"dims {[list(s) for s in shapes]} must be equal or 1")


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False) -> Tensor:
    """softmax(q k^T * scale + mask) v over any leading batch dims, with dropout on the
    probabilities; one graph node with a fused backward (_core.ops_attention)."""
    from fastgrad import random as _random
    from fastgrad._core.ops_attention import attention
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() < 2:
            raise RuntimeError(f"scaled_dot_product_attention: {name} must have at least 2 "
                               f"dims (..., L, E), got shape {list(t.shape)}")
    qd = query._np.dtype
    if key._np.dtype != qd or value._np.dtype != qd:
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got "
                           f"query.dtype: {query.dtype} key.dtype: {key.dtype} and value.dtype: "
                           f"{value.dtype} instead.")
    if qd.kind != "f":
        raise RuntimeError(f"scaled_dot_product_attention needs floating point inputs, got "
                           f"{query.dtype}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: query (..., L, E) {list(query.shape)}"
                           f", key (..., S, E) {list(key.shape)} and value (..., S, Ev) "
                           f"{list(value.shape)} do not fit together")
    if enable_gqa and key.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        reps = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(reps, -3)
        value = value.repeat_interleave(reps, -3)
    _check_batch_dims(query, key, value)
    L, S = query.shape[-2], key.shape[-2]
    if is_causal and attn_mask is not None and (
            dropout_p > 0.0 or not query.dim() == key.dim() == value.dim() == 4):
        # PyTorch 2.13 takes both (and masks with both) only where its fused CPU kernel runs:
        # 4-D inputs without dropout
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                           "set when is_causal=True; pass one or the other")
    mask = None
    if attn_mask is not None:
        mask = _additive_mask(attn_mask, qd, True)
        try:
            np.broadcast_shapes(mask._np.shape, tuple(query.shape[:-2]) + (L, S))
        except ValueError:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask of shape "
                               f"{list(attn_mask.shape)} does not broadcast to the scores' "
                               f"shape {list(query.shape[:-2]) + [L, S]}") from None
    if is_causal:                  # keys after the query's position masked (with attn_mask: both)
        causal = _wrap(np.where(np.tril(np.ones((L, S), dtype=bool)), qd.type(0),
                                qd.type(-np.inf)))
        mask = causal if mask is None else mask + causal
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    if qd == np.float16:                # Note [float16 computed in float32]
        q, k, v, m = _f16.upcast(query, key, value, mask)
        return _f16.like(attention(q, k, v, m, float(scale), float(dropout_p),
                                   _random.default_generator), query)
    return attention(query, key, value, mask, float(scale), float(dropout_p),
                     _random.default_generator)


def _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads):
    """PyTorch's shape checks of multi_head_attention_forward (AssertionError); True when the
    input is batched (3-D)."""
    if query.dim() not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received "
                             f"{query.dim()}-D query tensor")
    kind = "batched (3-D)" if query.dim() == 3 else "unbatched (2-D)"
    if key.dim() != query.dim() or value.dim() != query.dim():
        raise AssertionError(f"For {kind} `query`, expected `key` and `value` to be "
                             f"{query.dim()}-D but found {key.dim()}-D and {value.dim()}-D "
                             f"tensors respectively")
    if key_padding_mask is not None and key_padding_mask.dim() != query.dim() - 1:
        raise AssertionError(f"For {kind} `query`, expected `key_padding_mask` to be `None` or "
                             f"{query.dim() - 1}-D but found {key_padding_mask.dim()}-D tensor "
                             f"instead")
    if attn_mask is not None and attn_mask.dim() not in (2, 3):
        raise AssertionError(f"expected `attn_mask` to be `None`, 2-D or 3-D but found "
                             f"{attn_mask.dim()}-D tensor instead")
    return query.dim() == 3


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """PyTorch's function: query (L, N, E), key/value (S, N, E), or unbatched (L, E)."""
    return _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                training, key_padding_mask, need_weights, attn_mask, use_separate_proj_weight,
                q_proj_weight, k_proj_weight, v_proj_weight, static_k, static_v,
                average_attn_weights, is_causal, batch_first=False)


def _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
         bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training,
         key_padding_mask, need_weights, attn_mask, use_separate_proj_weight, q_proj_weight,
         k_proj_weight, v_proj_weight, static_k, static_v, average_attn_weights, is_causal,
         batch_first):
    """Multi-head attention computed batch-major: (N, L, E) in, heads as (N, H, L, hd) views,
    so a batch_first module needs no transposed copies of its activations."""
    batched = _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k/static_v are not "
                                  "supported; project the keys and values with the layer")
    same_kv = key is value
    same_qkv = same_kv and query is key
    if not batched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    bsz, tgt_len, embed_dim = query.shape
    src_len = key.shape[1]
    dt = query._np.dtype
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    for name, m in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
        if m is not None and m._np.dtype != np.bool_ and m._np.dtype.kind != "f":
            raise AssertionError(f"only bool and floating types of {name} are supported")
    if key_padding_mask is not None:
        key_padding_mask = _additive_mask(key_padding_mask, dt, False)
        is_causal = False
    if is_causal and not need_weights:
        attn_mask = None
    elif attn_mask is not None:
        attn_mask = _additive_mask(attn_mask, dt, False)
        is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but "
                             f"got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    # Without weights to return, dropout, bias_k/v or a zero key, the heads are computed pair by
    # pair from the projections as they lie (Note [Attention by heads]); same numbers.
    by_heads = (not need_weights and bias_k is None and bias_v is None and not add_zero_attn
                and (dropout_p == 0.0 or not training) and dt in (np.float32, np.float64)
                and all(m is None or (m._np.dtype == dt and not m.requires_grad)
                        for m in (attn_mask, key_padding_mask)))
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not "
                                 f"match value's {tuple(value.shape[:2])}")
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = in_proj_bias.chunk(3)
        q = _linear(query, q_proj_weight, bq)
        k = _linear(key, k_proj_weight, bk)
        v = _linear(value, v_proj_weight, bv)
    else:
        if tuple(key.shape) != tuple(value.shape):
            raise AssertionError(f"key shape {tuple(key.shape)} does not match value shape "
                                 f"{tuple(value.shape)}")
        if by_heads and same_qkv:
            qkv = _linear(query, in_proj_weight, in_proj_bias)   # [q | k | v] columns
            q = k = v = None
        else:
            q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias,
                                            same_qkv, same_kv)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)},"
                                   f" but should be {(tgt_len, src_len)}.")
            attn_mask = attn_mask.reshape(1, 1, tgt_len, src_len)
        else:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)},"
                                   f" but should be {(bsz * num_heads, tgt_len, src_len)}.")
            attn_mask = attn_mask.reshape(bsz, num_heads, tgt_len, src_len)
    if by_heads:
        if key_padding_mask is not None:
            _check_padding_mask(key_padding_mask, bsz, src_len)
            kpm = key_padding_mask.reshape(bsz, 1, 1, src_len)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        mask = None if attn_mask is None else attn_mask._np
        scale = math.sqrt(1.0 / float(head_dim))
        if q is None:
            out = _attn.heads_attention(qkv, None, None, num_heads, scale, mask, is_causal)
        else:
            out = _attn.heads_attention(q, k, v, num_heads, scale, mask, is_causal)
        return _mha_out(out, out_proj_weight, out_proj_bias, None, False, batched, batch_first)
    if bias_k is not None and bias_v is not None:
        k = _join.cat([k, bias_k.reshape(1, 1, embed_dim).expand(bsz, 1, embed_dim)], 1)
        v = _join.cat([v, bias_v.reshape(1, 1, embed_dim).expand(bsz, 1, embed_dim)], 1)
        attn_mask = _pad_key(attn_mask)
        key_padding_mask = _pad_key(key_padding_mask)
    elif bias_k is not None or bias_v is not None:
        raise AssertionError("bias_k is set but bias_v is None" if bias_k is not None
                             else "bias_v is set but bias_k is None")
    q = q.reshape(bsz, tgt_len, num_heads, head_dim).transpose(1, 2)
    k = k.reshape(bsz, k.shape[1], num_heads, head_dim).transpose(1, 2)
    v = v.reshape(bsz, v.shape[1], num_heads, head_dim).transpose(1, 2)
    if add_zero_attn:
        zeros = _wrap(np.zeros((bsz, num_heads, 1, head_dim), dtype=dt))
        k = _join.cat([k, zeros], 2)
        v = _join.cat([v, zeros], 2)
        attn_mask = _pad_key(attn_mask)
        key_padding_mask = _pad_key(key_padding_mask)
    src_len = k.shape[2]
    if key_padding_mask is not None:
        _check_padding_mask(key_padding_mask, bsz, src_len)
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        if is_causal and attn_mask is None:
            raise AssertionError("is_causal without an attn_mask is not implemented for "
                                 "need_weights=True; pass the causal mask as attn_mask")
        scores = (q * math.sqrt(1.0 / float(head_dim))).matmul(k.mT)
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = softmax(scores, dim=-1)
        if dropout_p > 0.0:
            weights = dropout(weights, p=dropout_p)
        out = weights.matmul(v)
    else:
        weights = None
        out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    return _mha_out(out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim), out_proj_weight,
                    out_proj_bias, weights, average_attn_weights, batched, batch_first)


def _check_padding_mask(key_padding_mask, bsz, src_len):
    if key_padding_mask.shape[0] != bsz:
        raise AssertionError(f"Expected key_padded_mask.shape[0] to be {bsz}, but got "
                             f"{key_padding_mask.shape[0]}")
    if key_padding_mask.shape[1] != src_len:
        raise AssertionError(f"Expected key_padded_mask.shape[1] to be {src_len}, but got "
                             f"{key_padding_mask.shape[1]}")


def _mha_out(out, out_proj_weight, out_proj_bias, weights, average_attn_weights, batched,
             batch_first):
    """The attention rows out (L, N, E) through the output projection, laid out as asked. (L, N,
    E) in memory whatever the layout, as PyTorch's result is: a dropout drawn on it afterwards
    fills its mask in memory order, so the draws land where PyTorch's do."""
    out = _linear(out, out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = weights.mean(1)
    if not batched:
        out = out.squeeze(1)
        if weights is not None:
            weights = weights.squeeze(0)
    elif batch_first:
        out = out.transpose(0, 1)
    return out, weights


def _pad_key(mask):
    """A mask with one more (attended) key at the end."""
    if mask is None:
        return None
    return pad(mask, (0, 1))


def _in_projection_packed(q, k, v, w, b, same_qkv, same_kv):
    """q, k, v projected by the rows of the packed (3E, E) weight: one product for
    self-attention, two when key is value, three otherwise."""
    E = q.shape[-1]
    if same_kv:
        if same_qkv:
            return _linear(q, w, b).chunk(3, -1)
        wq, wkv = w.split([E, 2 * E])
        bq, bkv = (None, None) if b is None else b.split([E, 2 * E])
        return (_linear(q, wq, bq),) + tuple(_linear(k, wkv, bkv).chunk(2, -1))
    wq, wk, wv = w.chunk(3)
    bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
    return _linear(q, wq, bq), _linear(k, wk, bk), _linear(v, wv, bv)


# --- normalisation, channel dropout and resampling for images ------------------------------------

def _normalize_groups(x, dims, eps):
    """(x - mean) / sqrt(biased var + eps) over dims (recorded ops); also the mean and the
    biased variance, for running statistics."""
    mean = x.mean(dims, True)
    xc = x - mean
    var = (xc * xc).mean(dims, True)
    return xc / (var + eps).sqrt(), mean, var


def _channel_affine(y, weight, bias):
    """y * weight + bias with weight and bias of shape (C,) on dim 1 of y."""
    shape = (1, y.shape[1]) + (1,) * (y.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Normalise each sample over its channel groups (C / num_groups channels and every spatial
    position per group), then a per-channel affine."""
    if input.dim() < 2:
        raise RuntimeError(f"group_norm: expected an input of at least 2 dims (N, C, *), got "
                           f"shape {list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    if input.numel() == 0:          # nothing to normalise: an empty result (graph kept)
        return _channel_affine(input * 0, weight, bias)
    if n * c // num_groups * math.prod(input.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{list(input.shape)}")
    if _f16.is_float16(input):          # Note [float16 computed in float32]
        x, w, b = _f16.upcast(input, weight, bias)
        return _f16.like(group_norm(x, num_groups, w, b, eps), input)
    g = input.reshape(n, num_groups, -1)
    y, _, _ = _normalize_groups(g, (2,), eps)
    return _channel_affine(y.reshape(tuple(input.shape)), weight, bias)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5) -> Tensor:
    """Normalise each (sample, channel) over its spatial positions. With running statistics,
    they move towards the batch average of the per-instance mean and unbiased variance."""
    if input.dim() < 3:
        raise ValueError(f"instance_norm: expected an input (N, C, *) with at least one "
                         f"spatial dim, got shape {list(input.shape)}")
    if _f16.is_float16(input):          # Note [float16 computed in float32]
        x, w, b = _f16.upcast(input, weight, bias)
        return _f16.like(instance_norm(x, running_mean, running_var, w, b, use_input_stats,
                                       momentum, eps), input)
    dims = tuple(range(2, input.dim()))
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError("instance_norm: Expected running_mean and running_var to be "
                               "defined when use_input_stats is false")
        shape = (1, input.shape[1]) + (1,) * len(dims)
        rm = _wrap(running_mean._np.reshape(shape).astype(input._np.dtype))
        rv = _wrap(running_var._np.reshape(shape).astype(input._np.dtype))
        return _channel_affine((input - rm) / (rv + eps).sqrt(), weight, bias)
    m = math.prod(input.shape[2:])
    if m == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{list(input.shape)}")
    if input.numel() == 0:          # an empty batch or plane: an empty result, statistics kept
        return _channel_affine(input * 0, weight, bias)
    y, mean, var = _normalize_groups(input, dims, eps)
    if running_mean is not None:
        _update_running(running_mean, running_var, mean.detach()._np.mean(0),
                        var.detach()._np.mean(0) * (m / (m - 1)), momentum)
    return _channel_affine(y, weight, bias)


def _update_running(running_mean, running_var, mean, var, momentum):
    """running = (1 - momentum) running + momentum batch, in place (no graph)."""
    for r, b in ((running_mean, mean), (running_var, var)):
        if r is None:
            continue
        arr = r._np
        arr *= (1 - momentum)
        arr += (momentum * np.asarray(b).reshape(arr.shape)).astype(arr.dtype)


def _feature_dropout(input, p, training, inplace, spatial):
    """Zero whole channels: one bernoulli_(1 - p) draw per (sample, channel), drawn as PyTorch
    draws them (a (N, C, 1, ...) noise tensor filled in order), scaled by 1 / (1 - p)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    batched = input.dim() == spatial + 2
    x = input if batched else input.unsqueeze(0)
    from fastgrad import _sampling
    dt = x._np.dtype
    shape = tuple(x.shape[:2]) + (1,) * spatial
    if p == 1.0:
        noise = np.zeros(shape, dtype=dt)
    else:
        ct = np.float32 if dt == np.float16 else dt.type
        noise = (_sampling._bernoulli_values(shape, 1 - p, None).astype(ct) / ct(1 - p))
    out = x * _wrap(noise.astype(dt, copy=False))
    if not batched:
        out = out.squeeze(0)
    return input.copy_(out) if inplace else out


def dropout1d(input, p=0.5, training=True, inplace=False) -> Tensor:
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D "
                           f"input. Note that dropout1d exists to provide channel-wise dropout on "
                           f"inputs with 1 spatial dimension, a channel dimension, and an "
                           f"optional batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, 1)


def dropout2d(input, p=0.5, training=True, inplace=False) -> Tensor:
    if input.dim() not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.dim()}-D input to dropout2d, which is "
                      f"deprecated and will result in an error in a future release. To retain "
                      f"the behavior and silence this warning, please use dropout instead. Note "
                      f"that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      f"spatial dimensions, a channel dimension, and an optional batch dimension "
                      f"(i.e. 3D or 4D inputs).", stacklevel=2)
    if input.dim() == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim. This behavior will change in a future release "
                      "to interpret the input as one without a batch dimension, i.e. shape "
                      "(C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", stacklevel=2)
        return _feature_dropout(input, p, training, inplace, 1)
    return _feature_dropout(input, p, training, inplace, max(input.dim() - 2, 0))


def _pixel_factor(input, factor, op, name):
    r = int(factor)
    if input.dim() < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input "
                           f"with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{op} expects a positive {name}, but got {r}")
    return r


def channel_shuffle(input, groups) -> Tensor:
    """(*, C, ...) with its channels regrouped: channel g * (C / groups) + k moves to k * groups
    + g (ShuffleNet's shuffle)."""
    if input.dim() <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with "
                           f"sizes {list(input.shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of "
                           f"groups:{groups}")
    c = input.shape[1]
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and "
                           f"{groups} groups.")
    n, rest = input.shape[0], tuple(input.shape[2:])
    return input.reshape((n, groups, c // groups) + rest).transpose(1, 2).reshape(input.shape)


def pixel_shuffle(input, upscale_factor) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = _pixel_factor(input, upscale_factor, "pixel_shuffle", "upscale_factor")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                           f"is not divisible by {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = _pixel_factor(input, downscale_factor, "pixel_unshuffle", "downscale_factor")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but input of shape {list(input.shape)} is not "
                           f"divisible by {r}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False) -> Tensor:
    """Resample the spatial dims of (N, C, *spatial): nearest, nearest-exact, or (bi/tri)linear
    one spatial dim at a time (separable: index_select of the two neighbours and their weights),
    so the gradient flows back through recorded ops."""
    nsp = input.dim() - 2
    if nsp < 1:
        raise ValueError(f"interpolate: expected an input (N, C, *spatial) with 1 to 3 spatial "
                         f"dims, got shape {list(input.shape)}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != nsp:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs "
                                  f"{_LINEAR_MODES[mode] + 2}D input")
    if mode not in ("nearest", "nearest-exact") and mode not in _LINEAR_MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; use nearest, "
                                  f"nearest-exact, linear, bilinear or trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    in_sizes = tuple(input.shape[2:])
    if size is not None:
        sizes = [size] * nsp if isinstance(size, int) else list(size)
        if len(sizes) != nsp:
            raise ValueError(f"Input and output must have the same number of spatial dimensions,"
                             f" but got input with spatial dimensions of {list(in_sizes)} and "
                             f"output size of {sizes}. Please provide input tensor in (N, C, d1, "
                             f"d2, ...,dK) format and output size in (o1, o2, ...,oK) format.")
        scales = [None] * nsp
    else:
        factors = [scale_factor] * nsp if isinstance(scale_factor, (int, float)) \
            else list(scale_factor)
        if len(factors) != nsp:
            raise ValueError(f"Input and scale_factor must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(in_sizes)} and scale_factor of shape {factors}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and "
                             f"scale_factor in (s1, s2, ...,sK) format.")
        sizes = [int(math.floor(float(n) * f)) for n, f in zip(in_sizes, factors)]
        scales = [None if recompute_scale_factor else float(f) for f in factors]
    out = input
    for i in range(nsp):
        out = _resample_dim(out, 2 + i, in_sizes[i], sizes[i], scales[i], mode,
                            bool(align_corners))
    return out


def _resample_dim(x, dim, n_in, n_out, scale_factor, mode, align_corners):
    """One spatial dim of interpolate, with PyTorch's source coordinates."""
    dt = x._np.dtype
    ct = np.float64 if dt == np.float64 else np.float32      # PyTorch's accumulate type
    if mode in ("nearest", "nearest-exact"):
        # float32 scale; nearest multiplies in float32, nearest-exact adds 0.5 in double
        scale = np.float32(1.0 / scale_factor if scale_factor else n_in / n_out)
        if mode == "nearest-exact":
            src = (np.arange(n_out, dtype=np.float64) + 0.5) * np.float64(scale)
        else:
            src = np.arange(n_out, dtype=np.float32) * scale
        idx = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        return x.index_select(dim, _wrap(idx))
    dst = np.arange(n_out, dtype=ct)
    if align_corners:
        src = dst * ct((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        scale = ct(1.0 / scale_factor) if scale_factor else ct(n_in) / ct(n_out)
        src = np.maximum(scale * (dst + ct(0.5)) - ct(0.5), ct(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(dt)
    wshape = [1] * x.dim()
    wshape[dim] = n_out
    w1 = _wrap(lam.reshape(wshape))
    w0 = _wrap((1 - lam).reshape(wshape))
    return x.index_select(dim, _wrap(i0)) * w0 + x.index_select(dim, _wrap(i1)) * w1


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)

"""The losses PyTorch writes as compositions of elementwise ops: kl_div, soft_margin_loss,
margin_ranking_loss, hinge_embedding_loss, cosine_embedding_loss, multilabel_soft_margin_loss,
poisson_nll_loss, gaussian_nll_loss, triplet_margin_loss, multi_margin_loss. Each is composed
of recorded ops with PyTorch's formula (so every gradient, and its gradient, follows), and
`reduce_loss`, the reduction they and nn.functional's other composed losses share."""
import math
import warnings

from fastgrad._core import ops_activation as _A
from fastgrad._core import ops_select as _select
from fastgrad._core.ops_loss import legacy_reduction


def reduce_loss(loss, reduction, op):
    """loss reduced as `reduction` asks: 'mean', 'sum' or 'none'."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; use 'none', "
                     f"'mean' or 'sum'")


def _reduction(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        return legacy_reduction(size_average, reduce, reduction)
    return reduction


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """target * (log target - input) (input holds log-probabilities; with log_target, target
    too), 0 where target is 0. 'batchmean' divides the sum by the batch size (dim 0)."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning, stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:                                  # xlogy(target, target): 0 * log 0 is 0
        loss = target * _select.where(target == 0, 1.0, target).log() - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.dim() else total
    return reduce_loss(loss, reduction, "kl_div")


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input))."""
    reduction = _reduction(size_average, reduce, reduction)
    return reduce_loss((-input * target).exp().log1p(), reduction, "soft_margin_loss")


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    """max(0, -target * (input1 - input2) + margin)."""
    reduction = _reduction(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension "
                           f"but got sizes: input1: {input1.shape}, input2: {input2.shape}, "
                           f"target: {target.shape} ")
    loss = _select.clamp(-target * (input1 - input2) + margin, 0, None)
    return reduce_loss(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """input where target is 1, max(0, margin - input) where it is -1 (both terms for any other
    target value, as PyTorch)."""
    reduction = _reduction(size_average, reduce, reduction)
    margin_term = _select.where(target != 1, _select.clamp(margin - input, 0, None), 0.0)
    loss = margin_term + _select.where(target != -1, input, 0.0)
    return reduce_loss(loss, reduction, "hinge_embedding_loss")


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1; cos along
    the last dim, each squared norm + 1e-12 (PyTorch's EPSILON)."""
    reduction = _reduction(size_average, reduce, reduction)
    tdim = target.dim()
    if tdim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if tdim == 1 and (input1.dim() != 2 or input2.dim() != 2):
        raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with "
                           f"sizes {list(input1.shape)} and {list(input2.shape)}.")
    if tdim == 0 and (input1.dim() != 1 or input2.dim() != 1):
        raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with "
                           f"sizes {list(input1.shape)} and {list(input2.shape)}.")
    prod = (input1 * input2).sum(tdim)
    mag1 = (input1 * input1).sum(tdim) + 1e-12
    mag2 = (input2 * input2).sum(tdim) + 1e-12
    cos = prod / (mag1 * mag2).sqrt()
    loss = (_select.where(target == 1, 1 - cos, 0.0)
            + _select.where(target == -1, _select.clamp(cos - margin, 0, None), 0.0))
    return reduce_loss(loss, reduction, "cosine_embedding_loss")


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """-(target log sigmoid(input) + (1 - target) log sigmoid(-input)), weighted, averaged over
    the classes (the last dim)."""
    reduction = _reduction(size_average, reduce, reduction)
    loss = -(target * _A.logsigmoid(input) + (1 - target) * _A.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    loss = loss.sum(class_dim) / input.shape[class_dim]
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not valid")
    return reduce_loss(loss, reduction, "multilabel_soft_margin_loss")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """exp(input) - target * input (log_input), else input - target * log(input + eps); with
    full, Stirling's term target log target - target + log(2 pi target) / 2 where target > 1."""
    reduction = _reduction(size_average, reduce, reduction)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        safe = _select.where(target <= 1, 1.0, target)     # the term is 0 there: no log of 0
        stirling = safe * safe.log() - safe + 0.5 * (2 * math.pi * safe).log()
        loss = loss + _select.where(target <= 1, 0.0, stirling)
    return reduce_loss(loss, reduction, "poisson_nll_loss")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """(log max(var, eps) + (input - target)^2 / max(var, eps)) / 2 (+ log(2 pi) / 2 with
    full); var per element, or one short of input's shape, or broadcast along one dim. The clamp
    to eps is not differentiated (var's gradient passes as if unclamped), as in PyTorch."""
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = input.new_ones(input.shape) * var
    elif bool((var < 0).any()):
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (input.dim() == var.dim() and
                  sum(y for x, y in zip(input.shape, var.shape) if x != y) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not valid")
    # var + (clamped - var) without recording the difference: the forward sees the clamped
    # values, the gradient flows to var unchanged (PyTorch clamps a clone in place, no_grad)
    held = var.detach()
    var = var + (_select.clamp(held, eps, None) - held)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction, "gaussian_nll_loss")


def _pairwise_distance(x1, x2, p, eps):
    """||x1 - x2 + eps||_p over the last dim (PyTorch's pairwise_distance)."""
    d = x1 - x2 + eps
    return d.norm(p, d.dim() - 1 if d.dim() else 0)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(0, margin + d(anchor, positive) - d(anchor, negative)), d the p-norm distance over
    the last dim (with swap, the smaller of d(anchor, negative) and d(positive, negative))."""
    reduction = _reduction(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if len(set(dims)) != 1:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {dims[0]}D, positive "
                           f"{dims[1]}D, and negative {dims[2]}D inputs")
    d_pos = _pairwise_distance(anchor, positive, p, eps)
    d_neg = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = _select.minimum(d_neg, _pairwise_distance(positive, negative, p, eps))
    loss = _select.clamp(margin + d_pos - d_neg, 0, None)
    return reduce_loss(loss, reduction, "triplet_margin_loss")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """For each sample, the sum over classes j != target of max(0, margin - x[target] + x[j])
    (squared for p=2, times weight[target]), divided by the number of classes."""
    reduction = _reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    if input.dim() > 2:
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch size, "
                           f"but got: {list(input.shape)}")
    x = input if input.dim() == 2 else input.reshape(1, -1)
    t = target.reshape(-1)
    n, c = x.shape
    if target.dim() > 1 or t.shape[0] != n:
        raise RuntimeError(f"multi_margin_loss: target tensor should be 1-D with size equal to "
                           f"the number of input samples (batch size). Expected target size "
                           f"[{n}], but got {list(target.shape)}. Input has shape "
                           f"{list(input.shape)}.")
    if n and (bool((t < 0).any()) or bool((t >= c).any())):
        raise RuntimeError(f"target out of range: multi_margin_loss's classes are 0 .. {c - 1}")
    cols = t.reshape(n, 1)
    z = margin - x.gather(1, cols) + x
    own = (x.new_zeros(x.shape).scatter_add(1, cols, x.new_ones((n, 1)))) > 0
    h = _select.where((z > 0) & ~own, z, 0.0)    # selected: no gradient where z == 0, as torch
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * weight.index_select(0, t).reshape(n, 1)
    loss = h.sum(1) / c
    if input.dim() < 2:
        loss = loss.reshape(target.shape) if target.dim() else loss.reshape(())
    return reduce_loss(loss, reduction, "multi_margin_loss")

"""Custom Functions for steps that have no useful derivative: documented, tested examples.

straight_through_round(x)
    Forward: round(x) (its true derivative is 0 almost everywhere, which stops learning).
    Backward: the identity ("straight-through estimator", Bengio et al. 2013).

gumbel_softmax(logits, tau=1, hard=False, dim=-1)
    A differentiable sample from the categorical distribution softmax(logits): softmax of
    (logits + Gumbel noise) / tau. With hard=True the forward value is the one-hot of the argmax,
    while the gradient is that of the soft sample (straight-through), as torch's
    nn.functional.gumbel_softmax.
"""
import numpy as np

from fastgrad.autograd.function import Function

__all__ = ["StraightThroughRound", "straight_through_round", "gumbel_softmax"]


class StraightThroughRound(Function):
    """round(x) forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        import fastgrad
        return fastgrad.from_numpy(np.round(x.detach().numpy()))

    @staticmethod
    def backward(ctx, grad):
        return grad


def straight_through_round(x):
    """Round to the nearest integer (halves to even, as torch.round); gradient passes unchanged."""
    return StraightThroughRound.apply(x)


def _softmax(x, dim):
    import fastgrad
    if hasattr(fastgrad, "softmax"):
        return fastgrad.softmax(x, dim=dim)
    e = (x - x.detach().max(dim, keepdim=True)[0]).exp()      # composed: still differentiable
    return e / e.sum(dim, keepdim=True)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Sample softmax((logits + g) / tau), g ~ Gumbel(0, 1); hard=True: one-hot forward,
    soft gradient (y_hard - y_soft.detach() + y_soft)."""
    import fastgrad
    u = fastgrad.rand_like(logits.detach())
    gumbels = -((-(u.clamp(min=eps)).log()).clamp(min=eps)).log()
    y_soft = _softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y_soft
    soft = y_soft.detach().numpy()
    idx = np.expand_dims(soft.argmax(axis=dim), dim)
    one_hot = np.zeros_like(soft)
    np.put_along_axis(one_hot, idx, 1.0, axis=dim)
    y_hard = fastgrad.from_numpy(one_hot)
    return y_hard - y_soft.detach() + y_soft

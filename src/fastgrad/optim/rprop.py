"""Rprop: resilient backpropagation (torch.optim.Rprop: lr=0.01, etas=(0.5, 1.2),
step_sizes=(1e-6, 50))."""
import functools

from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_lr
from fastgrad.optim._state import full_state, step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["Rprop"]


def _init(state, p, lr):
    state["step"] = step_tensor()
    state["prev"] = zeros_state(p)
    state["step_size"] = full_state(p, lr)


class Rprop(GroupOptimizer):
    """Per element: the step size grows by etaplus while the gradient keeps its sign and shrinks
    by etaminus when it flips (clamped to step_sizes; after a flip the element does not move and
    its gradient counts as 0 next time); p -= sign(g) * step_size. Only the gradient's sign is
    used; the step sizes start at lr."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        init = functools.partial(_init, lr=scalar(group["lr"]))
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        _k.rprop_group(group["params"], self.state, init, etaminus, etaplus, step_size_min,
                       step_size_max, group["maximize"])

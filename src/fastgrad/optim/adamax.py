"""Adamax: Adam with an infinity norm (torch.optim.Adamax: lr=2e-3)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_adam_family
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["Adamax"]


def _init(state, p):
    state["step"] = step_tensor()
    state["exp_avg"] = zeros_state(p)
    state["exp_inf"] = zeros_state(p)


class Adamax(GroupOptimizer):
    """m = lerp(m, g, 1 - beta1); u = max(beta2 * u, |g| + eps);
    p -= lr / (1 - beta1^t) * m / u, with g = grad + weight_decay * p."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        check_adam_family(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        beta1, beta2 = group["betas"]
        _k.adamax_group(group["params"], self.state, _init, scalar(group["lr"]), beta1,
                        beta2, group["eps"], group["weight_decay"], group["maximize"])

"""Adadelta (torch.optim.Adadelta: lr=1.0, rho=0.9, eps=1e-6)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_lr
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["Adadelta"]


def _init(state, p):
    state["step"] = step_tensor()
    state["square_avg"] = zeros_state(p)
    state["acc_delta"] = zeros_state(p)


class Adadelta(GroupOptimizer):
    """v = rho * v + (1 - rho) * g²; d = sqrt(a + eps) / sqrt(v + eps) * g;
    a = rho * a + (1 - rho) * d²; p -= lr * d, with g = grad + weight_decay * p."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        _k.adadelta_group(group["params"], self.state, _init, scalar(group["lr"]),
                          group["rho"], group["eps"], group["weight_decay"],
                          group["maximize"])

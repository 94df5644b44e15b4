"""ASGD: averaged SGD (torch.optim.ASGD: lr=0.01, lambd=1e-4, alpha=0.75, t0=1e6)."""
import functools

from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_lr
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["ASGD"]


def _init(state, p, lr):
    state["step"] = step_tensor()
    state["eta"] = step_tensor(lr)
    state["mu"] = step_tensor(1.0)
    state["ax"] = zeros_state(p)


class ASGD(GroupOptimizer):
    """p *= 1 - lambd * eta; p -= eta * g (g = grad + weight_decay * p);
    ax = p, or ax += (p - ax) * mu once t > t0 + 1; then eta = lr / (1 + lambd * lr * t)^alpha
    and mu = 1 / max(1, t - t0). `ax` holds the averaged parameters."""

    _restore_states = ("eta", "mu")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        check_lr(lr)
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr = scalar(group["lr"])
        _k.asgd_group(group["params"], self.state, functools.partial(_init, lr=lr), lr,
                      group["lambd"], group["alpha"], group["t0"], group["weight_decay"],
                      group["maximize"])

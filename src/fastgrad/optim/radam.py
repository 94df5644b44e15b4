"""RAdam: Adam with a rectified adaptive learning rate (torch.optim.RAdam: lr=1e-3)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_adam_family
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["RAdam"]


def _init(state, p):
    state["step"] = step_tensor()
    state["exp_avg"] = zeros_state(p)
    state["exp_avg_sq"] = zeros_state(p)


class RAdam(GroupOptimizer):
    """m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g²;
    rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t), rho_inf = 2 / (1 - beta2) - 1;
    p -= lr * m / (1 - beta1^t) * (sqrt(1 - beta2^t) / (sqrt(v) + eps) * r_t when rho_t > 5),
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)); weight
    decay as in Adam, or p *= 1 - lr * weight_decay when decoupled_weight_decay."""

    _restore_options = dict(GroupOptimizer._restore_options, decoupled_weight_decay=False)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        check_adam_family(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        beta1, beta2 = group["betas"]
        _k.radam_group(group["params"], self.state, _init, scalar(group["lr"]), beta1, beta2,
                       group["eps"], group["weight_decay"], group["decoupled_weight_decay"],
                       group["maximize"])

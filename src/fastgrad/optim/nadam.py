"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam: lr=2e-3, momentum_decay=4e-3)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_adam_family
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim._group_optimizer import GroupOptimizer
from fastgrad.optim.optimizer import _check_differentiable

__all__ = ["NAdam"]


def _init(state, p):
    state["step"] = step_tensor()
    state["mu_product"] = step_tensor(1.0)
    state["exp_avg"] = zeros_state(p)
    state["exp_avg_sq"] = zeros_state(p)


class NAdam(GroupOptimizer):
    """mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)); mu_product *= mu_t;
    m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g²; d = sqrt(v / (1 - beta2^t)) + eps;
    p -= lr * (1 - mu_t) / (1 - mu_product) * g / d + lr * mu_{t+1} / (1 - mu_product * mu_{t+1})
    * m / d, with g = grad + weight_decay * p, or p *= 1 - lr * weight_decay when
    decoupled_weight_decay (NAdamW)."""

    _restore_options = dict(GroupOptimizer._restore_options, decoupled_weight_decay=False)
    _restore_states = ("mu_product",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        check_adam_family(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps,
                        weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _update_group(self, group):
        beta1, beta2 = group["betas"]
        _k.nadam_group(group["params"], self.state, _init, scalar(group["lr"]), beta1, beta2,
                       group["eps"], group["weight_decay"], group["momentum_decay"],
                       group["decoupled_weight_decay"], group["maximize"])

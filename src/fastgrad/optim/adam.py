"""Adam (with amsgrad, L2 weight decay, maximize), as torch.optim.Adam."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._checks import check_adam_family
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim.optimizer import Optimizer, _check_differentiable, _no_grad_step, _run_closure

__all__ = ["Adam"]


def _init(state, p):
    """A parameter's Adam state on its first step."""
    state["step"] = step_tensor()
    state["exp_avg"] = zeros_state(p)
    state["exp_avg_sq"] = zeros_state(p)


def _init_amsgrad(state, p):
    _init(state, p)
    state["max_exp_avg_sq"] = zeros_state(p)


class Adam(Optimizer):
    """m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g²;
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), with
    g = grad + weight_decay * p (or p *= 1 - lr * weight_decay when decoupled: AdamW),
    and v replaced by its running maximum with amsgrad."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        check_adam_family(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        betas = tuple(float(b) for b in betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not hasattr(p_state["step"], "_np"):
                    p_state["step"] = step_tensor(float(p_state["step"]))

    @_no_grad_step
    def step(self, closure=None):
        """One Adam step over every parameter that has a gradient; returns the closure's loss."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            init = _init_amsgrad if group["amsgrad"] else _init
            _k.adam_group(group["params"], self.state, init, scalar(group["lr"]), beta1, beta2,
                          group["eps"], group["weight_decay"], group["amsgrad"],
                          group["maximize"], group["decoupled_weight_decay"])
        return loss

"""Adagrad (torch.optim.Adagrad: lr=0.01, eps=1e-10, lr_decay, initial_accumulator_value)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._state import full_state, step_tensor, scalar
from fastgrad.optim.optimizer import Optimizer, _check_differentiable, _no_grad_step, _run_closure

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """s += g²;  p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps),
    with g = grad + weight_decay * p. State is created for every parameter up front."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        state = self.state[p]
        state["step"] = step_tensor()
        state["sum"] = full_state(p, group["initial_accumulator_value"])
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)
        for s in self.state.values():
            if "step" in s and not hasattr(s["step"], "_np"):
                s["step"] = step_tensor(float(s["step"]))

    @_no_grad_step
    def step(self, closure=None):
        """One Adagrad step over every parameter that has a gradient; returns the closure's loss."""
        loss = _run_closure(closure)
        update = _k.adagrad_update
        for group in self.param_groups:
            lr, lr_decay = scalar(group["lr"]), group["lr_decay"]
            eps, wd, maximize = group["eps"], group["weight_decay"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if len(state) == 0:                  # a group added after construction
                    state = self._init_state(p, group)
                update(p, g, state["sum"], state["step"], lr, lr_decay, eps, wd, maximize)
        return loss

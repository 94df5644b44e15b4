"""RMSprop with momentum and centering (torch.optim.RMSprop: lr=0.01, alpha=0.99, eps=1e-8)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._state import step_tensor, zeros_state, scalar
from fastgrad.optim.optimizer import Optimizer, _check_differentiable, _no_grad_step, _run_closure

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """v = alpha * v + (1 - alpha) * g²;  avg = sqrt(v - mean(g)²) (centered) or sqrt(v), + eps;
    p -= lr * g / avg, or through a momentum buffer b = momentum * b + g / avg."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not hasattr(p_state["step"], "_np"):
                    p_state["step"] = step_tensor(float(p_state["step"]))

    @_no_grad_step
    def step(self, closure=None):
        """One RMSprop step over every parameter that has a gradient; returns the closure's loss."""
        loss = _run_closure(closure)
        update = _k.rmsprop_update
        for group in self.param_groups:
            lr, alpha, eps = scalar(group["lr"]), group["alpha"], group["eps"]
            wd, momentum = group["weight_decay"], group["momentum"]
            centered, maximize = group["centered"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = step_tensor()
                    state["square_avg"] = zeros_state(p)
                    if momentum > 0:
                        state["momentum_buffer"] = zeros_state(p)
                    if centered:
                        state["grad_avg"] = zeros_state(p)
                update(p, g, state["square_avg"], state["grad_avg"] if centered else None,
                       state["momentum_buffer"] if momentum > 0 else None, state["step"],
                       lr, alpha, eps, wd, momentum, maximize)
        return loss

"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch.optim.SGD)."""
from fastgrad._core import optim_kernels as _k
from fastgrad.optim._state import zeros_state, scalar
from fastgrad.optim.optimizer import Optimizer, _check_differentiable, _no_grad_step, _run_closure

__all__ = ["SGD"]


class SGD(Optimizer):
    """p -= lr * g, where g = grad (+ weight_decay * p), passed through momentum:
    b = momentum * b + (1 - dampening) * g (b = g on the first step), g = b, or
    g + momentum * b with nesterov. `maximize` ascends instead."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    @_no_grad_step
    def step(self, closure=None):
        """One SGD step over every parameter that has a gradient; returns the closure's loss."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            _k.sgd_group(group["params"], self.state, zeros_state, scalar(group["lr"]),
                         group["weight_decay"], group["momentum"], group["dampening"],
                         group["nesterov"], group["maximize"])
        return loss

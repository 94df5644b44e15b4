"""GroupOptimizer: the step and the checkpoint restore shared by optimizers whose update is one
compiled call per parameter group (NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD)."""
from fastgrad.optim._state import restore_state_tensors
from fastgrad.optim.optimizer import Optimizer, _no_grad_step, _run_closure

__all__ = ["GroupOptimizer"]


class GroupOptimizer(Optimizer):
    """A subclass defines `_update_group(group)`, and names in `_restore_options` the group
    options (with their defaults) an older checkpoint may lack and in `_restore_states` the
    one-number states it may hold as Python numbers."""

    _restore_options = dict(foreach=None, maximize=False, differentiable=False,
                            capturable=False)
    _restore_states = ()

    def __setstate__(self, state):
        super().__setstate__(state)
        restore_state_tensors(self, *self._restore_states, **self._restore_options)

    @_no_grad_step
    def step(self, closure=None):
        """One step over every parameter that has a gradient; returns the closure's loss."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group):
        raise NotImplementedError

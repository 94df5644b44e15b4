"""Optimizer: the base class of fastgrad's optimizers, with PyTorch's interface.

It keeps `param_groups` (a list of dicts: 'params' plus every option, per group, filled from
`defaults`), `state` (a dict keyed by parameter), and the `state_dict()` format of
torch.optim.Optimizer: {'state': {int id: {...}}, 'param_groups': [{..., 'params': [int ids]}]},
so checkpoints and learning-rate schedulers work as they do there. The per-parameter update
loops are compiled (fastgrad._core.optim_kernels); subclasses only gather the state.
"""
import functools
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from fastgrad._core.grad_mode import _set_grad_enabled
from fastgrad._core.hooks import add_hook, hook_dict
from fastgrad._core.tensor import TensorBase
from fastgrad._creation import from_numpy as _from_numpy

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks an option without a default (like torch.optim.optimizer.required)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _no_grad_step(step):
    """Run an optimizer's step with grad recording off (the closure turns it back on)."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        prev = _set_grad_enabled(False)
        try:
            for hook in self._optimizer_step_pre_hooks.values():
                result = hook(self, args, kwargs)
                if result is not None:
                    args, kwargs = result
            out = step(self, *args, **kwargs)
            for hook in self._optimizer_step_post_hooks.values():
                hook(self, args, kwargs)
            return out
        finally:
            _set_grad_enabled(prev)
    return wrapper


def _run_closure(closure):
    if closure is None:
        return None
    prev = _set_grad_enabled(True)
    try:
        return closure()
    finally:
        _set_grad_enabled(prev)


def _check_differentiable(differentiable):
    if differentiable:
        raise ValueError("differentiable=True is not supported by fastgrad's optimizers: their "
                         "updates are compiled in-place loops; use differentiable=False")


class Optimizer:
    """Base class for all optimizers.

    params: an iterable of tensors, or of dicts (parameter groups) each with a 'params' entry
    and any per-group options. defaults: the options a group takes when it does not set them.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self._optimizer_step_pre_hooks = hook_dict()
        self._optimizer_step_post_hooks = hook_dict()
        if isinstance(params, TensorBase):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__module__}."
                            f"{type(params).__name__}")
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("_optimizer_step_pre_hooks", hook_dict())
        self.__dict__.setdefault("_optimizer_step_post_hooks", hook_dict())

    def __repr__(self):
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    # -- parameter groups --
    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with 'params' and optional per-group options)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, TensorBase):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)

        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names

        for param in param_group["params"]:
            if not isinstance(param, TensorBase):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(param).__module__}.{type(param).__name__}")
            if not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor (this one was computed by "
                                 f"{param.grad_fn.name()}); optimize the leaf it came from, or "
                                 "pass x.detach().requires_grad_() instead")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)

        params = param_group["params"]
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error; "
                          "see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)

        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if not seen.isdisjoint(id(p) for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- gradients --
    def zero_grad(self, set_to_none=True) -> None:
        """Reset the gradients of all optimized tensors: to None (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        if g.grad_fn is not None:
                            g.detach_()
                        else:
                            g.requires_grad_(False)
                        g.zero_()

    def step(self, closure=None):
        """Perform one optimization step (and return the closure's loss, if given)."""
        raise NotImplementedError

    # -- hooks --
    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None or (args, kwargs), run before each step."""
        return add_hook(self._optimizer_step_pre_hooks, hook)

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None, run after each step."""
        return add_hook(self._optimizer_step_post_hooks, hook)

    # -- checkpoints --
    def state_dict(self):
        """{'state': {param index: {name: value}}, 'param_groups': [{option: value, 'params':
        [param indices]}]}, PyTorch's format. Tensors in it are the live state (not copies)."""
        param_mappings = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, TensorBase) else k): v
                        for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict() of an optimizer over parameters of the same shapes and grouping."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer ({len(groups)})")
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 f"match the size of optimizer's group: group {i} has "
                                 f"{len(s['params'])} parameters there and "
                                 f"{len(g['params'])} here")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v, k, state_dict["param_groups"])
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})


# States not shaped like the parameter they are filed under: one number (NAdam's, ASGD's), or
# LBFGS's vectors over all parameters. Like every non-'step' tensor they take the parameter's
# float dtype, as in torch; their shapes are not checked.
_FREE_STATE = frozenset({"mu_product", "eta", "mu", "d", "t", "H_diag", "prev_flat_grad",
                         "old_dirs", "old_stps", "ro", "al"})


def _cast(param, value, param_id, param_groups, key=None):
    """A loaded state value adapted to its parameter: tensors take the parameter's float dtype
    (except 'step') and shape; they are shared with the dict when nothing changes, as in torch."""
    if isinstance(value, TensorBase):
        if key == "step":
            return value
        if param.is_floating_point() and value.dtype != param.dtype:
            value = value.to(param.dtype)
        if key in _FREE_STATE:
            return value
        if key is not None and value.numel() == param.numel() and value.shape != param.shape:
            raise ValueError(f"optimizer state '{key}' for parameter {param_id} has shape "
                             f"{tuple(value.shape)} but the parameter has shape "
                             f"{tuple(param.shape)}")
        if key is not None and value.numel() != param.numel():
            raise ValueError(f"optimizer state '{key}' for parameter {param_id} has "
                             f"{value.numel()} elements but the parameter has {param.numel()}; "
                             "was this state dict saved for other parameters?")
        if not value.is_contiguous():
            value = _from_numpy(np.ascontiguousarray(value.detach().numpy()))
        return value
    if isinstance(value, dict):
        return {k: _cast(param, v, param_id, param_groups, key=k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(param, v, param_id, param_groups) for v in value)
    return value

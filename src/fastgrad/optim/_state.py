"""State buffers for the compiled updates: contiguous arrays of the parameter's dtype."""
import numpy as np

from fastgrad._creation import from_numpy


def zeros_state(p):
    """A zero tensor shaped and typed like parameter `p` (C-contiguous, allocated once)."""
    return from_numpy(np.zeros(p._np.shape, dtype=p._np.dtype))


def full_state(p, value):
    return from_numpy(np.full(p._np.shape, value, dtype=p._np.dtype))


def step_tensor(value=0.0):
    """PyTorch's `state['step']`: a 0-d float32 tensor on the CPU."""
    return from_numpy(np.array(value, dtype=np.float32))


def scalar(x):
    """A hyper-parameter as a Python float (a one-element tensor lr is allowed, as in torch)."""
    return float(x)


def restore_state_tensors(optimizer, *names, **defaults):
    """After loading (`__setstate__`): each group gets the options in `defaults` it lacks, and
    every parameter state's 'step' and the one-number states in `names` become 0-d float32
    tensors when a checkpoint stored them as Python numbers (as torch.optim does)."""
    for group in optimizer.param_groups:
        for key, value in defaults.items():
            group.setdefault(key, value)
        for p in group["params"]:
            p_state = optimizer.state.get(p, {})
            for name in ("step",) + names:
                if name in p_state and not hasattr(p_state[name], "_np"):
                    p_state[name] = step_tensor(float(p_state[name]))

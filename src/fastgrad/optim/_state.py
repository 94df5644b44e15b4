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

"""What the creation functions (_creation.py) and the samplers (_sampling.py) share: a new tensor
over a fresh NumPy array, and the size and dtype arguments as PyTorch's functions take them.

Below both, and below the Tensor class: the tensor is made by the core (`from_array` allocates
the class that fastgrad._tensor registers), so no module here imports _tensor."""
import numbers

import numpy as np

from fastgrad import _dtypes
from fastgrad._core.tensor import TensorBase, from_array


def wrap(arr, requires_grad=False):
    """A new leaf tensor over `arr` (not copied)."""
    t = from_array(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def size_arg(size):
    """zeros(2, 3), zeros((2, 3)), zeros([2, 3]) and zeros(torch.Size) all mean shape (2, 3)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, TensorBase):
            s = s.item()
        if not isinstance(s, (numbers.Integral, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, but got an element of type "
                            f"{type(s).__name__} ({s!r})")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(int(s))
    return tuple(out)


def numpy_dtype(dtype, default=_dtypes.float32):
    """The NumPy dtype of a dtype= argument (`default` when it is None)."""
    return _dtypes.to_numpy_dtype(dtype if dtype is not None else default)

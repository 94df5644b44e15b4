"""parameters_to_vector / vector_to_parameters (one flat vector <-> a list of parameters)."""
import numpy as np

from fastgrad._core.tensor import TensorBase


def parameters_to_vector(parameters):
    """Concatenate the flattened parameters into one 1-D tensor (differentiable)."""
    from fastgrad._core import ops_join, ops_view
    params = list(parameters)
    if not params:
        raise RuntimeError("parameters_to_vector: expected a non-empty list of parameters")
    return ops_join.cat([ops_view.reshape(p, (-1,)) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D `vec` into each parameter's data (no graph)."""
    if not isinstance(vec, TensorBase):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != total:
        raise RuntimeError(f"vector_to_parameters: vec must be 1-D with {total} elements (the "
                           f"parameters' total), got shape {list(vec.shape)}")
    from fastgrad._creation import from_numpy
    from fastgrad.autograd.grad_mode import no_grad
    v = vec.detach()._np
    pointer = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(from_numpy(np.asarray(v[pointer:pointer + n], order="C").reshape(tuple(p.shape))))
            pointer += n

"""Gradient clipping: clip_grad_norm_ (returns the total norm before clipping) and
clip_grad_value_. Both work on the NumPy storage of .grad in place."""
import math

import numpy as np

from fastgrad._core.tensor import TensorBase


def _grads(parameters):
    if isinstance(parameters, TensorBase):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so their joint norm is at most max_norm. Returns the total
    norm (over all gradients, as one vector) before clipping, as a 0-d tensor."""
    from fastgrad._creation import tensor
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return tensor(0.0)
    dt = np.result_type(*[g._np.dtype for g in grads])
    if norm_type == math.inf:
        total = max(float(np.abs(g._np).max()) if g._np.size else 0.0 for g in grads)
    elif norm_type == -math.inf:
        total = min(float(np.abs(g._np).min()) for g in grads if g._np.size)
    else:
        s = sum(float(np.sum(np.abs(g._np.astype(np.float64)) ** norm_type)) for g in grads)
        total = s ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           f"is non-finite, so it cannot be clipped. To disable this error and "
                           f"scale the gradients by the non-finite norm anyway, set "
                           f"`error_if_nonfinite=False`")
    clip_coef = float(max_norm) / (total + 1e-6)
    if clip_coef < 1.0:
        for g in grads:
            g._np[...] *= np.asarray(clip_coef, dtype=g._np.dtype)
    return tensor(np.asarray(total, dtype=dt))


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g._np, -clip_value, clip_value, out=g._np)

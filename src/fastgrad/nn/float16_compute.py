"""float16 operands of norms, attention and cosine similarity, computed in float32.

Note [float16 computed in float32]
PyTorch's CPU kernels for the norms (layer, group, batch, instance, RMS), attention and cosine
similarity take float16 inputs but compute in float32 and round the result once. Run on float16
arrays, their statistics overflow (the squares of values past 256) or underflow (those of values
below 0.004), or lose most of their digits (a mean over thousands of values, a variance of
values far from zero), and attention's softmax kernels take float32 or float64 only. These ops
pass their float16 operands through `upcast` and cast the result back with `like`: both casts
are recorded, so gradients come back in float16 as well.
"""
import numpy as np

_F16 = np.dtype(np.float16)


def is_float16(t):
    return t is not None and t._np.dtype == _F16


def upcast(*tensors):
    """The tensors, float16 ones as float32 (Note [float16 computed in float32])."""
    return tuple(t.float() if is_float16(t) else t for t in tensors)


def like(out, input):
    """out cast back to input's dtype (float16) when it differs."""
    return out if out.dtype == input.dtype else out.to(input.dtype)

"""Ops written in Python over recorded ops: one definition each, published by the alias table
(_aliases.py) as the Tensor method and, where PyTorch has it, the fastgrad.<name> function."""
import warnings

import numpy as np

from fastgrad._core.tensor import from_array


# comparisons by name (the operators are the compiled slots)
def eq(input, other):
    return input == other


def ne(input, other):
    return input != other


def lt(input, other):
    return input < other


def le(input, other):
    return input <= other


def gt(input, other):
    return input > other


def ge(input, other):
    return input >= other


def square(input):
    return input ** 2


def rsqrt(input, *, out=None):
    """1 / sqrt(input), rounded as PyTorch computes it (a division of the square root)."""
    res = input.sqrt().reciprocal()
    if out is not None:
        return out.copy_(res.detach())
    return res


def cross(input, other, dim=None, *, out=None):
    """linalg.cross along dim; without dim, along the first dim of size 3 (PyTorch's deprecated
    default, with its warning)."""
    from fastgrad.linalg import cross as _cross     # loaded on first use, as fastgrad.linalg is
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated. Please "
                      "either pass the dim explicitly or simply use torch.linalg.cross.",
                      UserWarning, stacklevel=2)
        shape = np.broadcast_shapes(tuple(input.shape), tuple(other.shape))
        dim = next((d for d, n in enumerate(shape) if n == 3), -1)
    return _cross(input, other, dim=dim, out=out)


def inverse(input, *, out=None):
    """linalg.inv (fastgrad.inverse, Tensor.inverse)."""
    from fastgrad._linalg_factor import inverse as _inverse   # loaded on first use
    return _inverse(input, out=out)


def det(input):
    """linalg.det (fastgrad.det, Tensor.det)."""
    from fastgrad._linalg_factor import det as _det
    return _det(input)


def logdet(input):
    """log det(input): nan for a negative determinant, -inf for a zero one."""
    from fastgrad._linalg_factor import logdet as _logdet
    return _logdet(input)


def slogdet(input, *, out=None):
    """linalg.slogdet: (sign, logabsdet)."""
    from fastgrad._linalg_factor import slogdet as _slogdet, slogdet_legacy_result
    return slogdet_legacy_result(*_slogdet(input, out=out))


def cholesky(input, upper=False, *, out=None):
    """PyTorch's deprecated torch.cholesky / Tensor.cholesky (with its warning)."""
    from fastgrad._linalg_factor import cholesky_legacy
    return cholesky_legacy(input, upper, out=out)


def matrix_power(input, n):
    """linalg.matrix_power (fastgrad.matrix_power, Tensor.matrix_power)."""
    from fastgrad.linalg import matrix_power as _matrix_power
    return _matrix_power(input, n)


def pinverse(input, rcond=1e-15):
    """linalg.pinv with rtol=rcond (fastgrad.pinverse, Tensor.pinverse)."""
    from fastgrad.linalg import pinv
    return pinv(input, rtol=rcond)


def qr(input, some=True):
    """PyTorch's deprecated torch.qr / Tensor.qr: (Q, R), reduced when some."""
    from fastgrad._linalg_factor import qr_legacy
    return qr_legacy(input, some)


def svd(input, some=True, compute_uv=True):
    """torch.svd / Tensor.svd: (U, S, V), V not transposed."""
    from fastgrad._linalg_factor import svd_legacy
    return svd_legacy(input, some, compute_uv)


def diag(input, diagonal=0, *, out=None):
    """A 1-D input becomes the given diagonal of a square matrix (zeros elsewhere); a 2-D input
    gives its diagonal as a 1-D tensor (a view). Recorded ops, so gradients follow."""
    if input.dim() == 2:
        res = input.diagonal(diagonal)
    elif input.dim() == 1:
        n, k = input.shape[0], int(diagonal)
        m = n + (k if k >= 0 else -k)
        rows = np.arange(n, dtype=np.int64) + (-k if k < 0 else 0)
        flat = from_array(rows * m + rows + k)
        zeros = from_array(np.zeros(m * m, dtype=input.numpy(force=True).dtype))
        res = zeros.index_add(0, flat, input).view(m, m)
    else:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.dim()}D")
    if out is not None:
        return out.copy_(res.detach())
    return res

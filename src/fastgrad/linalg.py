"""fastgrad.linalg: the norms of torch.linalg (vector_norm, matrix_norm, norm), composed of
recorded reductions so their gradients follow, and the factorizations and solves
(_linalg_factor.py)."""
from fastgrad._core.tensor import TensorBase
from fastgrad._linalg_factor import (LinAlgError, cholesky, inv, det, slogdet, solve,
                                     solve_triangular, eigh, eigvalsh, qr, svd, svdvals, _check)

_INF = float("inf")


def _dims(dim, ndim):
    if dim is None:
        return None
    return (dim,) if isinstance(dim, int) else tuple(dim)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """(sum |x|^ord)^(1/ord) over dim (all elements when dim is None); ord may be inf, -inf
    or 0 (the count of non-zeros)."""
    if not isinstance(x, TensorBase):
        raise TypeError(f"linalg.vector_norm(): argument 'x' must be Tensor, not {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if not x.is_floating_point():
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {x.dtype}")
    dims = _dims(dim, x.dim())
    if dims is None:
        x = x.reshape(-1)
        dims = (0,)
        if keepdim:
            raise RuntimeError("linalg.vector_norm: keepdim=True needs dim when the input is "
                               "flattened; pass dim=tuple(range(x.dim()))")
    a = x.abs()
    if ord == _INF:
        return a.amax(dims, keepdim)
    if ord == -_INF:
        return a.amin(dims, keepdim)
    if ord == 0:
        return (x != 0).to(x.dtype).sum(dims, keepdim)
    if ord == 1:
        return a.sum(dims, keepdim)
    if ord == 2:
        return x.norm(2, dims, keepdim)
    return (a ** ord).sum(dims, keepdim) ** (1.0 / ord)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Frobenius norm ('fro'), or the max (ord=1, inf) / min (ord=-1, -inf) absolute column
    (1) or row (inf) sum, over the two dims in `dim`."""
    if dtype is not None:
        A = A.to(dtype)
    if A.dim() < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 "
                           f"dimensions, got {A.dim()}")
    d0, d1 = (d % A.dim() for d in dim)
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        S = svdvals(A.movedim((d0, d1), (-2, -1)))
        out = S.sum(-1) if ord == "nuc" else S.amax(-1) if ord == 2 else S.amin(-1)
        if keepdim:
            out = out.unsqueeze(min(d0, d1)).unsqueeze(max(d0, d1))
        return out
    if ord in (1, -1):
        sums = A.abs().sum(d0, keepdim=True)
        red = sums.amax if ord == 1 else sums.amin
        out = red(d1, keepdim=True)
    elif ord in (_INF, -_INF):
        sums = A.abs().sum(d1, keepdim=True)
        red = sums.amax if ord == _INF else sums.amin
        out = red(d0, keepdim=True)
    else:
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    return out if keepdim else out.squeeze(max(d0, d1)).squeeze(min(d0, d1))


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """vector_norm for 1 dim (or a flattened input), matrix_norm for 2 dims."""
    if dim is not None:
        dims = _dims(dim, A.dim())
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.dim() == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.dim() == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D "
                       f"or 2D. Got {A.dim()}D.")


def cross(input, other, *, dim=-1, out=None):
    """The cross product of 3-vectors along dim (input and other, of equal dims, broadcast together), as
    PyTorch rounds it: a[i+1] b[i+2] - a[i+2] b[i+1]. Recorded index_select / mul / sub, so the
    gradient follows."""
    import numpy as np
    from fastgrad._creation import tensor
    if not isinstance(input, TensorBase) or not isinstance(other, TensorBase):
        raise TypeError("linalg.cross(): input and other must be Tensors")
    if input.dim() != other.dim():
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions "
                           f"(got {input.dim()} and {other.dim()}); unsqueeze the smaller one")
    try:
        shape = np.broadcast_shapes(tuple(input.shape), tuple(other.shape))
    except ValueError:
        raise RuntimeError(f"linalg.cross: the shapes {list(input.shape)} and "
                           f"{list(other.shape)} cannot be broadcast together") from None
    input, other = input.broadcast_to(shape), other.broadcast_to(shape)
    if not -len(shape) <= dim < len(shape) or shape[dim] != 3:
        size = shape[dim] if -len(shape) <= dim < len(shape) else None
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got "
                           f"{size} and {size}")
    nxt, prv = tensor([1, 2, 0]), tensor([2, 0, 1])
    res = (input.index_select(dim, nxt) * other.index_select(dim, prv)
           - input.index_select(dim, prv) * other.index_select(dim, nxt))
    if out is not None:
        return out.copy_(res.detach())
    return res


def pinv(A, *, atol=None, rtol=None, hermitian=False, out=None):
    """The pseudo-inverse: V diag(1/s) U^T over the singular values s > max(atol, rtol * s_max)
    (rtol defaults to eps * max(m, n) when neither is given)."""
    _pinv_check(A)
    return _factor_with_out(_Pinv.apply(A, atol, rtol, bool(hermitian)), out)


def matrix_power(A, n, *, out=None):
    """A^n for an integer n by repeated squaring (n < 0: inv(A)^-n; n == 0: the identity),
    recorded matmuls so the gradient follows."""
    if not isinstance(A, TensorBase):
        raise TypeError(f"linalg.matrix_power(): argument 'A' must be Tensor, not "
                        f"{type(A).__name__}")
    if A.dim() < 2:
        raise RuntimeError("linalg.matrix_power: The input tensor A must have at least 2 "
                           "dimensions.")
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.matrix_power: A must be batches of square matrices, but they "
                           f"are {A.shape[-2]} by {A.shape[-1]} matrices")
    n = int(n)
    if n == 0:
        from fastgrad._creation import eye
        res = eye(A.shape[-1], dtype=A.dtype).expand(A.shape).clone()
        return _factor_with_out(res, out)
    if n < 0:
        A, n = inv(A), -n
    res, base = None, A
    while n:
        if n & 1:
            res = base if res is None else res @ base
        n >>= 1
        if n:
            base = base @ base
    return _factor_with_out(res.clone() if res is A else res, out)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, out=None):
    """The number of singular values (eigenvalue magnitudes when hermitian) above
    max(atol, rtol * largest), int64, no gradient."""
    import numpy as np
    from fastgrad._core.tensor import from_array
    if isinstance(A, TensorBase) and A.dim() >= 2 and not A.is_floating_point():
        raise RuntimeError(f"linalg.matrix_rank: This function doesn't handle types other than "
                           f"float and double (got {A.dtype.scalar_name}); convert first, e.g. "
                           f"A.double()")
    _check(A, "linalg.matrix_rank", square=bool(hermitian))
    a = A.detach().numpy()
    s = np.abs(np.linalg.eigvalsh(a)) if hermitian else np.linalg.svd(a, compute_uv=False)
    tol = _tolerance(s, a.shape, atol, rtol)
    return _factor_with_out(from_array((s > tol).sum(-1).astype(np.int64)), out)


from fastgrad._linalg_factor import (_Pinv, _pinv_check, _tolerance,  # noqa: E402
                                     _with_out as _factor_with_out)

__all__ = ["vector_norm", "matrix_norm", "norm", "cross", "LinAlgError", "cholesky", "inv",
           "det", "slogdet", "solve", "solve_triangular", "eigh", "eigvalsh", "qr", "svd",
           "svdvals", "pinv", "matrix_power", "matrix_rank"]

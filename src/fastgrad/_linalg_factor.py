"""The factorizations and solves of torch.linalg (cholesky, inv, det, slogdet, solve,
solve_triangular, eigh, qr, svd, pinv): forwards on NumPy's batched LAPACK calls, each backward
a rule of recorded fastgrad ops (PyTorch's formulas) so it is differentiable again.

Each op is an autograd Function whose node class carries PyTorch's name (LinalgInvExBackward0
...). Batch broadcasting of two operands (solve, solve_triangular) is done with recorded
expands before the Function, so their gradients are summed back to the operands' shapes."""
import warnings
from collections import namedtuple

import numpy as np

from fastgrad._core.ops_join import cat, stack
from fastgrad._core.ops_select import where
from fastgrad._core.tensor import TensorBase, from_array
from fastgrad.autograd.function import Function


class LinAlgError(RuntimeError):
    """A linear-algebra routine failed on its input (singular or not positive-definite
    matrix), as torch.linalg.LinAlgError."""


slogdet_result = namedtuple("linalg_slogdet", ["sign", "logabsdet"])
slogdet_legacy_result = namedtuple("slogdet", ["sign", "logabsdet"])
eigh_result = namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
qr_result = namedtuple("linalg_qr", ["Q", "R"])
svd_result = namedtuple("linalg_svd", ["U", "S", "Vh"])


def _torch_named(name):
    """Gives a Function's node class PyTorch's grad_fn name."""
    def deco(cls):
        cls._backward_cls.__name__ = cls._backward_cls.__qualname__ = name
        return cls
    return deco


# -- argument checks ------------------------------------------------------------------------------

def _check(A, op, *, square=True, int_error=RuntimeError, arg="A"):
    if not isinstance(A, TensorBase):
        raise TypeError(f"{op}(): argument '{arg}' must be Tensor, not {type(A).__name__}")
    if A.dim() < 2:
        raise RuntimeError(f"{op}: The input tensor {arg} must have at least 2 dimensions.")
    if not A.is_floating_point():
        if int_error is NotImplementedError:
            raise NotImplementedError(f"{op}: not implemented for '{A.dtype.scalar_name}'; "
                                      f"convert the input first, e.g. A.double()")
        raise RuntimeError(f"{op}: Expected a floating point or complex tensor as input. Got "
                           f"{A.dtype.scalar_name}; convert it first, e.g. A.double()")
    if A.dtype.itemsize < 4:
        raise RuntimeError(f"{op}: Low precision dtypes not supported. Got "
                           f"{A.dtype.scalar_name}; use float32 or float64")
    if square and A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"{op}: {arg} must be batches of square matrices, but they are "
                           f"{A.shape[-2]} by {A.shape[-1]} matrices")


def _np(t):
    return t.detach().numpy()


def _out(arr, dtype):
    a = np.asarray(arr, dtype=dtype)
    return from_array(a if a.flags.c_contiguous else a.copy())


def _batch_prefix(batch_shape, idx):
    return f"(Batch element {idx}): " if batch_shape else ""


def _first_zero_pivot(a):
    """1-based index of the first exactly zero pivot of a's LU factorization with partial
    pivoting (LAPACK getrf's info), 0 when there is none."""
    a = np.array(a, dtype=np.float64)
    n = a.shape[0]
    first = 0
    for j in range(n):
        p = j + int(np.argmax(np.abs(a[j:, j])))
        if a[p, j] == 0:
            first = first or j + 1
            continue
        a[[j, p]] = a[[p, j]]
        a[j + 1:, j] /= a[j, j]
        a[j + 1:, j + 1:] -= np.outer(a[j + 1:, j], a[j, j + 1:])
    return first


def _raise_singular(a, op):
    """Raise LinAlgError naming the first singular batch element and its zero pivot."""
    batch = a.shape[:-2]
    flat = a.reshape((-1,) + a.shape[-2:])
    for i, m in enumerate(flat):
        k = _first_zero_pivot(m)
        if k:
            raise LinAlgError(f"{op}: {_batch_prefix(batch, i)}The diagonal element {k} is zero, "
                              f"the inversion could not be completed because the input matrix is "
                              f"singular.")
    raise LinAlgError(f"{op}: the inversion could not be completed because the input matrix is "
                      f"singular.")


def _inv_np(a, op):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        _raise_singular(a, op)


def _diag_embed(v):
    n = v.shape[-1]
    eye = from_array(np.eye(n, dtype=_np(v).dtype))
    return v.unsqueeze(-1) * eye


def _eye_like(A):
    return from_array(np.eye(A.shape[-1], dtype=_np(A).dtype))


# -- cholesky -------------------------------------------------------------------------------------

def _cholesky_np(a, upper, op):
    """LAPACK's lower factor of a (upper: of a^T, transposed). A matrix that is not
    positive-definite (NaN included) raises LinAlgError naming the first leading minor that
    fails, as PyTorch."""
    src = np.swapaxes(a, -1, -2) if upper else a
    try:
        L = np.linalg.cholesky(src)
        if np.isfinite(L).all():
            return np.swapaxes(L, -1, -2) if upper else L
    except np.linalg.LinAlgError:
        pass
    batch = a.shape[:-2]
    for i, m in enumerate(src.reshape((-1,) + src.shape[-2:])):
        for k in range(1, m.shape[0] + 1):
            if not _cholesky_succeeds(m[:k, :k]):
                raise LinAlgError(
                    f"{op}: {_batch_prefix(batch, i)}The factorization could not be completed "
                    f"because the input is not positive-definite (the leading minor of order "
                    f"{k} is not positive-definite).")
    raise LinAlgError(f"{op}: The factorization could not be completed because the input is "
                      f"not positive-definite.")


def _cholesky_succeeds(m):
    try:
        return bool(np.isfinite(np.linalg.cholesky(m)).all())
    except np.linalg.LinAlgError:
        return False


def _cholesky_backward(gL, L, upper):
    """PyTorch's rule: gA = L^-H phi(L^H gL) L^-1 symmetrized, phi = tril with half diagonal."""
    if upper:
        L, gL = L.mT, gL.mT
    phi = (L.mT @ gL).tril()
    phi = phi - 0.5 * _diag_embed(phi.diagonal(0, -2, -1))
    gA = solve_triangular(L.mT, phi, upper=True, left=True)
    gA = solve_triangular(L, gA, upper=False, left=False)
    return 0.5 * (gA + gA.mT)


@_torch_named("LinalgCholeskyExBackward0")
class _Cholesky(Function):
    @staticmethod
    def forward(ctx, A, upper, op):
        L = _out(_cholesky_np(_np(A), upper, op), _np(A).dtype)
        ctx.upper = upper
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx, gL):
        (L,) = ctx.saved_tensors
        return _cholesky_backward(gL, L, ctx.upper), None, None


@_torch_named("CholeskyBackward0")
class _CholeskyLegacy(_Cholesky):
    pass


def cholesky(A, *, upper=False, out=None):
    """L (lower, A = L L^T) or U (upper=True, A = U^T U) of a symmetric positive-definite A,
    batched over leading dims. Reads the lower (upper=True: upper) triangle only."""
    _check(A, "linalg.cholesky")
    return _with_out(_Cholesky.apply(A, bool(upper), "linalg.cholesky"), out)


def cholesky_legacy(input, upper=False, *, out=None):
    """torch.cholesky (deprecated in PyTorch in favour of linalg.cholesky, with its warning)."""
    warnings.warn("torch.cholesky is deprecated in favor of torch.linalg.cholesky and will be "
                  "removed in a future PyTorch release; use linalg.cholesky(A) (or "
                  "linalg.cholesky(A).mT for upper=True).", UserWarning, stacklevel=3)
    _check(input, "cholesky")
    return _with_out(_CholeskyLegacy.apply(input, bool(upper), "cholesky"), out)


def _with_out(res, out):
    if out is not None:
        return out.copy_(res.detach())
    return res


# -- inv / det / slogdet --------------------------------------------------------------------------

@_torch_named("LinalgInvExBackward0")
class _Inv(Function):
    @staticmethod
    def forward(ctx, A, op):
        Ainv = _out(_inv_np(_np(A), op), _np(A).dtype)
        ctx.save_for_backward(Ainv)
        return Ainv

    @staticmethod
    def backward(ctx, g):
        (Ainv,) = ctx.saved_tensors
        return -(Ainv.mT @ g @ Ainv.mT), None


def inv(A, *, out=None):
    """A^-1, batched; a singular A raises LinAlgError naming the zero pivot."""
    _check(A, "linalg.inv")
    return _with_out(_Inv.apply(A, "linalg.inv"), out)


def inverse(input, *, out=None):
    return inv(input, out=out)


def _det_cofactor(A):
    """d det(A) / dA, written as recorded ops: det(A) A^-T for invertible matrices, and the
    SVD form U diag(prod_{j != i} s_j) V^T det(U) det(V) otherwise (rank-deficient A)."""
    try:
        invertible = bool(np.isfinite(np.linalg.inv(_np(A))).all())
    except np.linalg.LinAlgError:
        invertible = False
    if invertible:
        return det(A).unsqueeze(-1).unsqueeze(-1) * inv(A).mT
    U, S, Vh = svd(A)
    n = S.shape[-1]
    others = []
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        others.append(S[..., keep].prod(-1) if keep else S[..., :0].sum(-1) + 1)
    P = stack(others, -1)
    sgn = (det(U) * det(Vh.mT)).detach()
    return sgn.unsqueeze(-1).unsqueeze(-1) * (U @ _diag_embed(P) @ Vh)


@_torch_named("LinalgDetBackward0")
class _Det(Function):
    @staticmethod
    def forward(ctx, A):
        ctx.save_for_backward(A)
        return _out(np.linalg.det(_np(A)), _np(A).dtype)

    @staticmethod
    def backward(ctx, g):
        (A,) = ctx.saved_tensors
        return g.unsqueeze(-1).unsqueeze(-1) * _det_cofactor(A)


def det(A, *, out=None):
    """The determinant of each matrix of A (..., n, n)."""
    _check(A, "linalg.det")
    return _with_out(_Det.apply(A), out)


@_torch_named("LinalgSlogdetBackward0")
class _Slogdet(Function):
    @staticmethod
    def forward(ctx, A):
        sign, logabs = np.linalg.slogdet(_np(A))
        dtype = _np(A).dtype
        ctx.save_for_backward(A)
        s = _out(sign, dtype)
        ctx.mark_non_differentiable(s)
        return s, _out(logabs, dtype)

    @staticmethod
    def backward(ctx, gsign, glog):
        (A,) = ctx.saved_tensors
        return glog.unsqueeze(-1).unsqueeze(-1) * inv(A).mT


def slogdet(A, *, out=None):
    """(sign, logabsdet) of det(A): sign in {-1, 0, 1} (no gradient), log|det A|."""
    _check(A, "linalg.slogdet")
    sign, logabs = _Slogdet.apply(A)
    res = slogdet_result(sign, logabs)
    if out is not None:
        out[0].copy_(sign.detach())
        out[1].copy_(logabs.detach())
        return slogdet_result(*out)
    return res


def logdet(input):
    """log det(input): nan where det < 0, -inf where det == 0."""
    _check(input, "logdet")
    sign, logabs = _Slogdet.apply(input)
    return where(sign < 0, float("nan"), logabs)


# -- solve / solve_triangular ---------------------------------------------------------------------

def _broadcast_batch(A, B, op, left, eq):
    """A (..., n, n) and B (..., n, k) (left) / (..., k, n) expanded to one batch shape."""
    n = A.shape[-1]
    rows, cols = B.shape[-2], B.shape[-1]
    if (rows if left else cols) != n:
        raise RuntimeError(f"{op}: Incompatible shapes of A and B for the equation {eq} "
                           f"({A.shape[-2]}x{n} and {rows}x{cols})")
    try:
        batch = np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2]))
    except ValueError:
        raise RuntimeError(f"{op}: the batch dimensions of A {list(A.shape[:-2])} and B "
                           f"{list(B.shape[:-2])} cannot be broadcast together") from None
    A = A.expand(*batch, n, n) if tuple(A.shape[:-2]) != batch else A
    B = B.expand(*batch, rows, cols) if tuple(B.shape[:-2]) != batch else B
    return A, B


def _same_dtype(A, B, op):
    if A.dtype != B.dtype:
        raise RuntimeError(f"{op}: Expected A and B to have the same dtype, but found A of type "
                           f"{A.dtype.scalar_name} and B of type {B.dtype.scalar_name} instead; "
                           f"convert one of them, e.g. B.to(A.dtype)")


def _solve_np(a, b, left, op):
    if not left:
        return np.swapaxes(_solve_np(np.swapaxes(a, -1, -2), np.swapaxes(b, -1, -2), True, op),
                           -1, -2)
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"{op}: The solver failed because the input matrix is singular.") \
            from None


@_torch_named("LinalgSolveExBackward0")
class _Solve(Function):
    @staticmethod
    def forward(ctx, A, B, left):
        X = _out(_solve_np(_np(A), _np(B), left, "linalg.solve"), _np(A).dtype)
        ctx.left = left
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx, gX):
        A, X = ctx.saved_tensors
        gB = solve(A.mT, gX, left=ctx.left)
        gA = -(gB @ X.mT) if ctx.left else -(X.mT @ gB)
        return gA, gB, None


def solve(A, B, *, left=True, out=None):
    """X with A X = B (left=False: X A = B), batched with broadcasting. B is a vector (...,n)
    when it is 1-D or has the shape of A without its last dim, else a matrix (..., n, k)."""
    op = "linalg.solve"
    _check(A, op)
    if not isinstance(B, TensorBase):
        raise TypeError(f"{op}(): argument 'B' must be Tensor, not {type(B).__name__}")
    if not B.is_floating_point():
        _check(B, op, square=False, arg="B")
    _same_dtype(A, B, op)
    vector = B.dim() == 1 or (B.dim() == A.dim() - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    Bm = B.unsqueeze(-1) if vector else B
    if Bm.dim() < 2:
        raise RuntimeError(f"{op}: The input tensor B must have at least 1 dimension.")
    A2, B2 = _broadcast_batch(A, Bm, op, left, "AX = B" if left else "XA = B")
    X = _Solve.apply(A2, B2, bool(left))
    return _with_out(X.squeeze(-1) if vector else X, out)


def _tri_np(a, upper, unit):
    t = np.triu(a) if upper else np.tril(a)
    if unit:
        idx = np.arange(a.shape[-1])
        t = t.copy()
        t[..., idx, idx] = 1
    return t


def _substitute(t, b, upper):
    """Row-by-row substitution (for triangular matrices with a zero on the diagonal, which
    LAPACK's trtrs also divides by: inf / nan rather than an error)."""
    n = t.shape[-1]
    x = np.zeros(np.broadcast_shapes(t.shape[:-2], b.shape[:-2]) + b.shape[-2:], dtype=b.dtype)
    order = range(n - 1, -1, -1) if upper else range(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in order:
            acc = b[..., i, :] - np.einsum("...j,...jk->...k", t[..., i, :], x)
            x[..., i, :] = acc / t[..., i, i, None]
    return x


def _solve_tri_np(a, b, upper, left, unit):
    if not left:
        return np.swapaxes(_solve_tri_np(np.swapaxes(a, -1, -2), np.swapaxes(b, -1, -2),
                                         not upper, True, unit), -1, -2)
    t = _tri_np(a, upper, unit)
    try:
        x = np.linalg.solve(t, b)
        if np.isfinite(x).all() or not np.isfinite(b).all():
            return x
    except np.linalg.LinAlgError:
        pass
    return _substitute(t, b, upper)


@_torch_named("LinalgSolveTriangularBackward0")
class _SolveTriangular(Function):
    @staticmethod
    def forward(ctx, A, B, upper, left, unit):
        X = _out(_solve_tri_np(_np(A), _np(B), upper, left, unit), _np(A).dtype)
        ctx.flags = (upper, left, unit)
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx, gX):
        A, X = ctx.saved_tensors
        upper, left, unit = ctx.flags
        gB = solve_triangular(A.mT, gX, upper=not upper, left=left, unitriangular=unit)
        gA = -(gB @ X.mT) if left else -(X.mT @ gB)
        gA = gA.triu(int(unit)) if upper else gA.tril(-int(unit))
        return gA, gB, None, None, None


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """X with A X = B (left=False: X A = B) for a triangular A (only its upper/lower triangle
    is read; unitriangular: its diagonal is taken as ones), batched with broadcasting."""
    op = "linalg.solve_triangular"
    _check(A, op, int_error=NotImplementedError)
    if not isinstance(B, TensorBase):
        raise TypeError(f"{op}(): argument 'B' must be Tensor, not {type(B).__name__}")
    if B.dim() < 2:
        raise RuntimeError(f"{op}: The input tensor B must have at least 2 dimensions.")
    _same_dtype(A, B, op)
    A2, B2 = _broadcast_batch(A, B, op, left, "AX = B" if left else "XA = B")
    X = _SolveTriangular.apply(A2, B2, bool(upper), bool(left), bool(unitriangular))
    return _with_out(X, out)


# -- eigh -----------------------------------------------------------------------------------------

def _eigh_backward(gL, gV, L, V):
    """PyTorch's rule for a symmetric A = V diag(L) V^T (distinct eigenvalues):
    gA = V (skew(V^T gV) / E + diag(gL)) V^T, E_ij = L_j - L_i."""
    if gV is None:
        return V @ _diag_embed(gL) @ V.mT
    VtgV = V.mT @ gV
    VtgV = 0.5 * (VtgV - VtgV.mT)
    E = L.unsqueeze(-2) - L.unsqueeze(-1) + _eye_like(V)
    inner = VtgV / E
    inner = inner - _diag_embed(inner.diagonal(0, -2, -1))
    if gL is not None:
        inner = inner + _diag_embed(gL)
    return V @ inner @ V.mT


@_torch_named("LinalgEighBackward0")
class _Eigh(Function):
    @staticmethod
    def forward(ctx, A, uplo):
        w, v = np.linalg.eigh(_np(A), UPLO=uplo)
        dtype = _np(A).dtype
        L, V = _out(w, dtype), _out(v, dtype)
        ctx.save_for_backward(L, V)
        ctx.set_materialize_grads(False)
        return L, V

    @staticmethod
    def backward(ctx, gL, gV):
        L, V = ctx.saved_tensors
        if gL is None and gV is None:
            return None, None
        return _eigh_backward(gL, gV, L, V), None


def _uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return UPLO


def eigh(A, UPLO="L", *, out=None):
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric A, batched; only the
    UPLO triangle is read. Gradients need distinct eigenvalues (as in PyTorch)."""
    _check(A, "linalg.eigh", int_error=NotImplementedError)
    L, V = _Eigh.apply(A, _uplo(UPLO))
    if out is not None:
        out[0].copy_(L.detach())
        out[1].copy_(V.detach())
        return eigh_result(*out)
    return eigh_result(L, V)


def eigvalsh(A, UPLO="L", *, out=None):
    """The eigenvalues (ascending) of a symmetric A, batched."""
    _check(A, "linalg.eigvalsh", int_error=NotImplementedError)
    L, _ = _Eigh.apply(A, _uplo(UPLO))
    return _with_out(L, out)


# -- qr -------------------------------------------------------------------------------------------

def _qr_square_backward(gQ, gR, Q, R):
    """m >= n (reduced): gA = (gQ + Q copyltu(M)) R^-T, M = R gR^T - gQ^T Q."""
    if gQ is None:
        M = R @ gR.mT
    elif gR is None:
        M = -(gQ.mT @ Q)
    else:
        M = R @ gR.mT - gQ.mT @ Q
    low = M.tril()
    sym = low + low.mT - _diag_embed(M.diagonal(0, -2, -1))
    b = Q @ sym
    if gQ is not None:
        b = b + gQ
    return solve_triangular(R.mT, b, upper=False, left=False)


@_torch_named("LinalgQrBackward0")
class _Qr(Function):
    @staticmethod
    def forward(ctx, A, mode):
        a = _np(A)
        if mode == "r":
            r = np.linalg.qr(a, mode="r")
            q = np.zeros((0,), a.dtype)
        else:
            q, r = np.linalg.qr(a, mode=mode)
        Q, R = _out(q, a.dtype), _out(r, a.dtype)
        ctx.mode = mode
        ctx.mn = tuple(a.shape[-2:])
        ctx.save_for_backward(A, Q, R)
        ctx.set_materialize_grads(False)
        return Q, R

    @staticmethod
    def backward(ctx, gQ, gR):
        A, Q, R = ctx.saved_tensors
        m, n = ctx.mn
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed "
                               "when mode='r'. Please use linalg.qr(A, mode='reduced') if you "
                               "are going to differentiate through linalg.qr.")
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when "
                               "mode='complete' and nrows > ncols.")
        if gQ is None and gR is None:
            return None, None
        if m >= n:
            return _qr_square_backward(gQ, gR, Q, R), None
        # m < n: A = [X | Y], X = Q U square, Y = Q V
        U = R[..., :, :m]
        Y = A[..., :, m:]
        gU = None if gR is None else gR[..., :, :m]
        gV = None if gR is None else gR[..., :, m:]
        gQx = gQ
        if gV is not None:
            gQx = Y @ gV.mT if gQx is None else gQx + Y @ gV.mT
        gX = _qr_square_backward(gQx, gU, Q, U)
        gY = Q @ gV if gV is not None else (A[..., :, m:] * 0)
        return cat([gX, gY], -1), None


def qr(A, mode="reduced", *, out=None):
    """(Q, R) with A = Q R: mode 'reduced' (Q m x k), 'complete' (Q m x m) or 'r' (Q empty)."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           f"'reduced' (default), 'r', or 'complete'")
    _check(A, "linalg.qr", square=False)
    Q, R = _Qr.apply(A, mode)
    if out is not None:
        out[0].copy_(Q.detach())
        out[1].copy_(R.detach())
        return qr_result(*out)
    return qr_result(Q, R)


# -- svd ------------------------------------------------------------------------------------------

def _svd_backward(gU, gS, gVh, U, S, Vh):
    """PyTorch's rule (distinct non-zero singular values), k = min(m, n):
    gA = U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)] V^T
         + (I - U U^T) gU S^-1 V^T + U S^-1 gV^T (I - V V^T),  E_ij = s_j^2 - s_i^2."""
    m, n = U.shape[-2], Vh.shape[-1]
    k = S.shape[-1]
    U, Vh = U[..., :, :k], Vh[..., :k, :]
    if gU is not None:
        gU = gU[..., :, :k]
    if gVh is not None:
        gVh = gVh[..., :k, :]
    if gU is None and gVh is None:
        return U @ _diag_embed(gS) @ Vh
    S2 = S * S
    E = S2.unsqueeze(-2) - S2.unsqueeze(-1) + _eye_like(S2.unsqueeze(-1).expand(*S.shape, k))
    Srow, Scol = S.unsqueeze(-2), S.unsqueeze(-1)
    gA = None
    if gU is not None:
        UtgU = U.mT @ gU
        gA = (UtgU - UtgU.mT) * Srow
    if gVh is not None:
        V, gV = Vh.mT, gVh.mT
        VtgV = V.mT @ gV
        term = Scol * (VtgV - VtgV.mT)
        gA = term if gA is None else gA + term
    gA = gA / E
    gA = gA - _diag_embed(gA.diagonal(0, -2, -1))
    if gS is not None:
        gA = gA + _diag_embed(gS)
    if m > k and gU is not None:
        gA = U @ gA
        gUSinv = gU / Srow
        gA = gA + gUSinv - U @ (U.mT @ gUSinv)
        return gA @ Vh
    if n > k and gVh is not None:
        gA = gA @ Vh
        gVSinv = gVh.mT / Srow
        gA = gA + gVSinv.mT - (gVSinv.mT @ Vh.mT) @ Vh
        return U @ gA
    return U @ gA @ Vh


@_torch_named("LinalgSvdBackward0")
class _Svd(Function):
    @staticmethod
    def forward(ctx, A, full_matrices, compute_uv):
        a = _np(A)
        if compute_uv:
            u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
        else:
            u, vh = None, None
            s = np.linalg.svd(a, compute_uv=False)
            if A.requires_grad:
                u, s, vh = np.linalg.svd(a, full_matrices=False)
        U = _out(u if u is not None else np.zeros((0,), a.dtype), a.dtype)
        Vh = _out(vh if vh is not None else np.zeros((0,), a.dtype), a.dtype)
        S = _out(s, a.dtype)
        ctx.save_for_backward(U, S, Vh)
        ctx.set_materialize_grads(False)
        return U, S, Vh

    @staticmethod
    def backward(ctx, gU, gS, gVh):
        U, S, Vh = ctx.saved_tensors
        if gU is None and gS is None and gVh is None:
            return None, None, None
        return _svd_backward(gU, gS, gVh, U, S, Vh), None, None


def svd(A, full_matrices=True, *, driver=None, out=None):
    """(U, S, Vh) with A = U diag(S) Vh, S descending, batched. Gradients through U and Vh
    need distinct singular values (as in PyTorch)."""
    _check(A, "linalg.svd", square=False)
    U, S, Vh = _Svd.apply(A, bool(full_matrices), True)
    if out is not None:
        for o, r in zip(out, (U, S, Vh)):
            o.copy_(r.detach())
        return svd_result(*out)
    return svd_result(U, S, Vh)


def svdvals(A, *, driver=None, out=None):
    """The singular values of A, descending, batched."""
    _check(A, "linalg.svd", square=False)
    _, S, _ = _Svd.apply(A, False, False)
    return _with_out(S, out)


# -- pinv -----------------------------------------------------------------------------------------

def _tolerance(s, shape, atol, rtol):
    """max(atol, rtol * s_max) per matrix; rtol defaults to eps * max(m, n) when neither is
    given (0 when only atol is), as PyTorch."""
    smax = s.max(-1, initial=0.0) if s.shape[-1] else np.zeros(s.shape[:-1], s.dtype)
    if rtol is None:
        rtol = np.finfo(s.dtype).eps * max(shape[-2:]) if atol is None else 0.0
    atol = 0.0 if atol is None else atol
    atol = atol.detach().numpy() if isinstance(atol, TensorBase) else atol
    rtol = rtol.detach().numpy() if isinstance(rtol, TensorBase) else rtol
    return np.maximum(atol, rtol * smax)[..., None]


def _pinv_check(A):
    if isinstance(A, TensorBase) and not A.is_floating_point():
        raise RuntimeError(f"linalg.pinv({A.dtype.scalar_name}{list(A.shape)}): expected a "
                           f"tensor with 2 or more dimensions of float, double, cfloat or "
                           f"cdouble types")
    _check(A, "linalg.pinv", square=False)


def _pinv_backward(g, P, A):
    """PyTorch's rule for the gradient of P = pinv(A) (constant rank)."""
    m, n = A.shape[-2], A.shape[-1]
    Ph, gh = P.mT, g.mT
    if m <= n:
        K = gh @ P
        KPh = K @ Ph
        return -(P @ K).mT + KPh - (A @ P) @ KPh + (Ph @ P) @ (gh - K @ A)
    K = P @ gh
    PhK = Ph @ K
    return -(K @ P).mT + (gh - A @ K) @ P @ Ph + PhK - PhK @ P @ A


@_torch_named("LinalgPinvBackward0")
class _Pinv(Function):
    @staticmethod
    def forward(ctx, A, atol, rtol, hermitian):
        a = _np(A)
        if hermitian:
            w, v = np.linalg.eigh(a)
            s = np.abs(w)
            tol = _tolerance(s, a.shape, atol, rtol)
            with np.errstate(divide="ignore"):
                inv_w = np.where(s > tol, 1.0 / np.where(w == 0, 1, w), 0)
            p = (v * inv_w[..., None, :]) @ np.swapaxes(v, -1, -2)
        else:
            u, s, vh = np.linalg.svd(a, full_matrices=False)
            tol = _tolerance(s, a.shape, atol, rtol)
            inv_s = np.where(s > tol, 1.0 / np.where(s == 0, 1, s), 0)
            p = np.swapaxes(vh, -1, -2) @ (inv_s[..., :, None] * np.swapaxes(u, -1, -2))
        P = _out(p, a.dtype)
        ctx.save_for_backward(A, P)
        return P

    @staticmethod
    def backward(ctx, g):
        A, P = ctx.saved_tensors
        return _pinv_backward(g, P, A), None, None, None


# -- PyTorch's older spellings (torch.qr, torch.svd) ------------------------------------------

qr_legacy_result = namedtuple("qr", ["Q", "R"])
svd_legacy_result = namedtuple("svd", ["U", "S", "V"])


def qr_legacy(input, some=True):
    """torch.qr: linalg.qr with mode 'reduced' (some) or 'complete' (deprecated in PyTorch)."""
    warnings.warn("torch.qr is deprecated in favor of torch.linalg.qr and will be removed in a "
                  "future PyTorch release; use linalg.qr(A, 'reduced' if some else 'complete')",
                  UserWarning, stacklevel=3)
    return qr_legacy_result(*qr(input, "reduced" if some else "complete"))


def svd_legacy(input, some=True, compute_uv=True):
    """torch.svd: (U, S, V) with A = U diag(S) V^T (V, not Vh); compute_uv=False gives
    zero-filled U (m x m) and V (n x n), as PyTorch."""
    if not compute_uv:
        S = svdvals(input)
        m, n = input.shape[-2], input.shape[-1]
        dtype = _np(input).dtype
        batch = tuple(input.shape[:-2])
        return svd_legacy_result(_out(np.zeros(batch + (m, m), dtype), dtype), S,
                                 _out(np.zeros(batch + (n, n), dtype), dtype))
    U, S, Vh = svd(input, full_matrices=not some)
    return svd_legacy_result(U, S, Vh.mT)

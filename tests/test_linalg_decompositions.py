"""linalg factorizations and solves: values against NumPy float64, reconstruction identities,
gradients against float64 central differences (batched), PyTorch where installed, errors."""
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import gradcheck, gradgradcheck

LA = fg.linalg
RNG = np.random.default_rng(1234)


def _t(a, grad=False, dtype=fg.float64):
    return fg.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)


def _np(t):
    return t.detach().numpy()


def _spd(*shape):
    a = RNG.standard_normal(shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def _sym(X):
    """X + X^T: keeps finite differences inside the symmetric matrices that eigh / cholesky
    read one triangle of."""
    return X + X.mT


# -- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [fg.float32, fg.float64])
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 1, 3, 3)])
def test_values_match_numpy(dtype, shape):
    a = RNG.standard_normal(shape) + 3 * np.eye(shape[-1])
    s = _spd(*shape)
    A, S = _t(a, dtype=dtype), _t(s, dtype=dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == fg.float32 else dict(rtol=1e-10, atol=1e-10)
    for res in (LA.inv(A), LA.det(A), LA.cholesky(S), LA.eigvalsh(S), LA.svdvals(A), LA.pinv(A)):
        assert res.dtype == dtype
    np.testing.assert_allclose(_np(LA.inv(A)), np.linalg.inv(a), **tol)
    np.testing.assert_allclose(_np(LA.det(A)), np.linalg.det(a), **tol)
    assert LA.det(A).shape == shape[:-2] and LA.slogdet(A).sign.shape == shape[:-2]
    sign, logabs = LA.slogdet(A)
    ref_sign, ref_log = np.linalg.slogdet(a)
    np.testing.assert_allclose(_np(sign), ref_sign)
    np.testing.assert_allclose(_np(logabs), ref_log, **tol)
    np.testing.assert_allclose(_np(LA.cholesky(S)), np.linalg.cholesky(s), **tol)
    np.testing.assert_allclose(_np(LA.eigvalsh(S)), np.linalg.eigvalsh(s), **tol)
    np.testing.assert_allclose(_np(LA.svdvals(A)), np.linalg.svd(a, compute_uv=False), **tol)
    np.testing.assert_allclose(_np(LA.pinv(A)), np.linalg.pinv(a), **tol)
    np.testing.assert_allclose(_np(LA.pinv(S, hermitian=True)), np.linalg.inv(s), **tol)
    b = RNG.standard_normal(shape[:-1] + (2,))
    np.testing.assert_allclose(_np(LA.solve(A, _t(b, dtype=dtype))), np.linalg.solve(a, b), **tol)


def test_reconstructions_batched():
    a = RNG.standard_normal((3, 5, 4))
    A = _t(a)
    Q, R = LA.qr(A)
    assert Q.shape == (3, 5, 4) and R.shape == (3, 4, 4)
    np.testing.assert_allclose(_np(Q @ R), a, atol=1e-12)
    np.testing.assert_allclose(_np(Q.mT @ Q), np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-12)
    assert np.allclose(np.tril(_np(R), -1), 0)
    Qc, Rc = LA.qr(A, mode="complete")
    assert Qc.shape == (3, 5, 5) and Rc.shape == (3, 5, 4)
    np.testing.assert_allclose(_np(Qc @ Rc), a, atol=1e-12)
    Qr, Rr = LA.qr(A, mode="r")
    assert Qr.shape == (0,)
    np.testing.assert_allclose(np.abs(_np(Rr)), np.abs(_np(R)), atol=1e-12)
    U, S, Vh = LA.svd(A, full_matrices=False)
    np.testing.assert_allclose(_np(U * S.unsqueeze(-2) @ Vh), a, atol=1e-12)
    U, S, Vh = LA.svd(A)
    assert U.shape == (3, 5, 5) and Vh.shape == (3, 4, 4)
    assert np.all(np.diff(_np(S), axis=-1) <= 0)
    s = _spd(2, 4, 4)
    L = LA.cholesky(_t(s))
    np.testing.assert_allclose(_np(L @ L.mT), s, atol=1e-12)
    Up = LA.cholesky(_t(s), upper=True)
    assert np.allclose(np.tril(_np(Up), -1), 0)
    np.testing.assert_allclose(_np(Up.mT @ Up), s, atol=1e-12)
    w, V = LA.eigh(_t(s))
    np.testing.assert_allclose(_np(V * w.unsqueeze(-2) @ V.mT), s, atol=1e-12)


def test_cholesky_and_eigh_read_one_triangle():
    m = np.array([[4.0, 1.0], [100.0, 5.0]])         # lower triangle not PD, upper is
    U = LA.cholesky(_t(m), upper=True)
    np.testing.assert_allclose(_np(U.mT @ U), [[4.0, 1.0], [1.0, 5.0]])
    with pytest.raises(LA.LinAlgError):
        LA.cholesky(_t(m))
    sym_upper = np.array([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(_np(LA.eigvalsh(_t([[2.0, 1.0], [7.0, 3.0]]), UPLO="U")),
                               np.linalg.eigvalsh(sym_upper))
    np.testing.assert_allclose(_np(LA.eigvalsh(_t([[2.0, 7.0], [1.0, 3.0]]))),
                               np.linalg.eigvalsh(sym_upper))


def test_solve_broadcasting_and_vector_rule():
    A = _t(RNG.standard_normal((3, 2, 2)) + 2 * np.eye(2))
    assert LA.solve(A, _t(np.ones((3, 2)))).shape == (3, 2)       # vector: shape of A[..., 0]
    assert LA.solve(A, _t(np.ones(2))).shape == (3, 2)
    X = LA.solve(A, _t(np.ones((4, 1, 2, 5))))
    assert X.shape == (4, 3, 2, 5)
    np.testing.assert_allclose(_np(A @ X), np.ones((4, 3, 2, 5)), atol=1e-12)
    B = _t(RNG.standard_normal((3, 4, 2)))
    Xr = LA.solve(A, B, left=False)
    np.testing.assert_allclose(_np(Xr @ A), _np(B), atol=1e-12)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular_values(upper, left, unit):
    a = RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)
    t = np.triu(a) if upper else np.tril(a)
    if unit:
        t = t * (1 - np.eye(3)) + np.eye(3)
    b = RNG.standard_normal((2, 3, 4) if left else (2, 4, 3))
    X = _np(LA.solve_triangular(_t(a), _t(b), upper=upper, left=left, unitriangular=unit))
    np.testing.assert_allclose(t @ X if left else X @ t, b, atol=1e-12)


def test_solve_triangular_zero_diagonal_gives_inf_not_error():
    X = LA.solve_triangular(_t(np.zeros((2, 2))), _t(np.ones((2, 2))), upper=True)
    assert not np.isfinite(_np(X)).any()


def test_det_logdet_singular_and_negative():
    z = _t([[1.0, 2.0], [2.0, 4.0]])
    assert _np(LA.det(z)) == 0
    sign, logabs = LA.slogdet(z)
    assert _np(sign) == 0 and _np(logabs) == -np.inf
    assert _np(fg.logdet(z)) == -np.inf
    assert np.isnan(_np(fg.logdet(_t([[0.0, 1.0], [1.0, 0.0]]))))
    np.testing.assert_allclose(_np(fg.logdet(_t(-np.diag([1.0, 2.0])))), np.log(2.0))


def test_matrix_norm_singular_value_ords():
    a = RNG.standard_normal((2, 4, 3))
    A = _t(a)
    for ord_ in ("nuc", 2, -2):
        np.testing.assert_allclose(_np(LA.matrix_norm(A, ord_)),
                                   np.linalg.norm(a, ord_, axis=(-2, -1)), rtol=1e-12)
    np.testing.assert_allclose(_np(LA.matrix_norm(A, "nuc", dim=(0, 2))),
                               np.linalg.norm(a, "nuc", axis=(0, 2)), rtol=1e-12)
    assert LA.matrix_norm(A, 2, keepdim=True).shape == (2, 1, 1)
    assert LA.matrix_norm(A, 2, dim=(0, 1), keepdim=True).shape == (1, 1, 3)
    np.testing.assert_allclose(_np(LA.norm(A[0], "nuc")), np.linalg.norm(a[0], "nuc"))
    np.testing.assert_allclose(_np(LA.norm(A, -2, dim=(1, 2))),
                               np.linalg.norm(a, -2, axis=(1, 2)))


def test_matrix_power_and_rank():
    a = RNG.standard_normal((2, 3, 3))
    A = _t(a)
    for n in (0, 1, 2, 3, 6, -1, -3):
        np.testing.assert_allclose(_np(LA.matrix_power(A, n)), np.linalg.matrix_power(a, n),
                                   rtol=1e-9, atol=1e-9)
    ints = fg.tensor([[1, 1], [1, 1]])
    assert LA.matrix_power(ints, 2).tolist() == [[2, 2], [2, 2]]
    r = LA.matrix_rank(_t(np.ones((3, 3))))
    assert r.dtype == fg.int64 and int(r) == 1
    assert LA.matrix_rank(_t(a)).tolist() == [3, 3]
    assert int(LA.matrix_rank(_t(np.diag([1.0, 1e-3, 0.0])), atol=1e-2)) == 1
    assert int(LA.matrix_rank(_t(np.diag([1.0, -2.0, 0.0])), hermitian=True)) == 2
    d = _t(np.diag([2.0, 1e-20, 0.0]))
    np.testing.assert_allclose(_np(LA.pinv(d)), np.diag([0.5, 0.0, 0.0]))
    np.testing.assert_allclose(_np(LA.pinv(d, hermitian=True)), np.diag([0.5, 0.0, 0.0]))
    np.testing.assert_allclose(_np(LA.pinv(d, atol=3.0)), np.zeros((3, 3)))


def test_aliases_and_methods():
    a = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    A = _t(a)
    np.testing.assert_allclose(_np(fg.inverse(A)), np.linalg.inv(a))
    np.testing.assert_allclose(_np(A.inverse()), np.linalg.inv(a))
    np.testing.assert_allclose(_np(fg.det(A)), np.linalg.det(a))
    np.testing.assert_allclose(_np(A.det()), np.linalg.det(a))
    np.testing.assert_allclose(_np(A.slogdet()[1]), np.linalg.slogdet(a)[1])
    np.testing.assert_allclose(_np(fg.slogdet(A).logabsdet), np.linalg.slogdet(a)[1])
    s = _spd(3, 3)
    np.testing.assert_allclose(_np(_t(s).logdet()), np.log(np.linalg.det(s)))
    with pytest.warns(UserWarning, match="deprecated"):
        L = fg.cholesky(_t(s))
    np.testing.assert_allclose(_np(L), np.linalg.cholesky(s))
    with pytest.warns(UserWarning, match="deprecated"):
        U = _t(s).cholesky(upper=True)
    np.testing.assert_allclose(_np(U), np.linalg.cholesky(s).T)


def test_older_spellings():
    a = RNG.standard_normal((2, 4, 3))
    A = _t(a)
    with pytest.warns(UserWarning, match="torch.qr is deprecated"):
        Q, R = fg.qr(A)
    assert Q.shape == (2, 4, 3)
    np.testing.assert_allclose(_np(Q @ R), a, atol=1e-12)
    with pytest.warns(UserWarning):
        assert A.qr(some=False).Q.shape == (2, 4, 4)
    U, S, V = fg.svd(A)
    assert (U.shape, S.shape, V.shape) == ((2, 4, 3), (2, 3), (2, 3, 3))
    np.testing.assert_allclose(_np(U * S.unsqueeze(-2) @ V.mT), a, atol=1e-12)
    assert A.svd(some=False).U.shape == (2, 4, 4)
    U0, S0, V0 = fg.svd(A, compute_uv=False)
    assert not _np(U0).any() and V0.shape == (2, 3, 3)
    np.testing.assert_allclose(_np(S0), np.linalg.svd(a, compute_uv=False))
    np.testing.assert_allclose(_np(fg.pinverse(A)), np.linalg.pinv(a), atol=1e-12)
    np.testing.assert_allclose(_np(A[0, :3].matrix_power(3)),
                               np.linalg.matrix_power(a[0, :3], 3), atol=1e-12)


# -- gradients ------------------------------------------------------------------------------------

def _batch(*shape, shift=0.0):
    a = RNG.standard_normal(shape)
    if shift:
        a = a + shift * np.eye(shape[-1])
    return _t(a, grad=True)


GRAD_CASES = {
    "cholesky": (lambda X: LA.cholesky(X @ X.mT + 3 * fg.eye(3, dtype=fg.float64)), (2, 3, 3)),
    "cholesky_upper": (lambda X: LA.cholesky(_sym(X) + 6 * fg.eye(3, dtype=fg.float64),
                                             upper=True), (2, 3, 3)),
    "inv": (LA.inv, (2, 3, 3)),
    "det": (LA.det, (2, 3, 3)),
    "slogdet": (lambda X: LA.slogdet(X).logabsdet, (2, 3, 3)),
    "logdet": (lambda X: fg.logdet(X @ X.mT + fg.eye(3, dtype=fg.float64)), (2, 3, 3)),
    "eigvalsh": (lambda X: LA.eigvalsh(_sym(X)), (2, 3, 3)),
    "eigh_vectors": (lambda X: LA.eigh(_sym(X)).eigenvectors ** 2, (2, 3, 3)),
    "eigh_both": (lambda X: (lambda w, V: V * (w * w).unsqueeze(-2) @ V.mT)(*LA.eigh(_sym(X))),
                  (2, 3, 3)),
    "qr_tall": (lambda X: LA.qr(X), (2, 5, 3)),
    "qr_square": (lambda X: LA.qr(X), (2, 3, 3)),
    "qr_wide": (lambda X: LA.qr(X), (2, 3, 5)),
    "qr_complete_wide": (lambda X: LA.qr(X, mode="complete"), (2, 3, 4)),
    "svdvals": (LA.svdvals, (2, 4, 3)),
    "svd_tall": (lambda X: (lambda U, S, Vh: (U @ Vh, S))(*LA.svd(X, full_matrices=False)),
                 (2, 5, 3)),
    "svd_wide": (lambda X: (lambda U, S, Vh: (U @ Vh, U.abs() * 0 + S[..., :1, None]))(
        *LA.svd(X, full_matrices=False)), (2, 3, 5)),
    "svd_full_square": (lambda X: (lambda U, S, Vh: U @ Vh)(*LA.svd(X)), (3, 3)),
    "nuc": (lambda X: LA.matrix_norm(X, "nuc"), (2, 4, 3)),
    "norm2": (lambda X: LA.matrix_norm(X, 2), (2, 3, 4)),
    "pinv_tall": (LA.pinv, (2, 4, 3)),
    "pinv_wide": (LA.pinv, (3, 5)),
    "matrix_power": (lambda X: LA.matrix_power(X, -3), (2, 3, 3)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_match_finite_differences(name):
    fn, shape = GRAD_CASES[name]
    X = _batch(*shape, shift=2.0 if shape[-1] == shape[-2] else 0.0)
    assert gradcheck(fn, (X,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["cholesky", "inv", "det", "slogdet", "eigvalsh", "qr_tall",
                                  "svdvals", "pinv_tall"])
def test_double_backward_matches_finite_differences(name):
    fn, shape = GRAD_CASES[name]
    X = _batch(*shape, shift=2.0 if shape[-1] == shape[-2] else 0.0)
    assert gradgradcheck(fn, (X,), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("b_shape", [(3,), (2, 3), (3, 2), (4, 1, 3, 2)])
def test_solve_gradients_broadcast(b_shape):
    A = _batch(2, 3, 3, shift=3.0)
    B = _batch(*b_shape)
    assert gradcheck(LA.solve, (A, B), atol=1e-6, rtol=1e-4)
    B2 = _batch(2, 4, 3)
    assert gradcheck(lambda a, b: LA.solve(a, b, left=False), (A, B2), atol=1e-6, rtol=1e-4)


def test_solve_double_backward():
    A, B = _batch(2, 3, 3, shift=3.0), _batch(3, 2)
    assert gradgradcheck(LA.solve, (A, B), atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular_gradients(upper, left, unit):
    A = _batch(2, 3, 3, shift=3.0)
    B = _batch(1, 3, 2) if left else _batch(1, 2, 3)
    fn = lambda a, b: LA.solve_triangular(a, b, upper=upper, left=left, unitriangular=unit)  # noqa: E731
    assert gradcheck(fn, (A, B), atol=1e-6, rtol=1e-4)
    assert gradgradcheck(fn, (A, B), atol=1e-5, rtol=1e-3)


def test_det_gradient_of_singular_matrix_is_the_cofactor():
    Z = _t([[1.0, 2.0], [2.0, 4.0]], grad=True)
    LA.det(Z).backward()
    np.testing.assert_allclose(_np(Z.grad), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)


def test_grad_fn_names():
    A = _batch(3, 3, shift=3.0)
    S = A @ A.mT
    names = {
        "LinalgCholeskyExBackward0": LA.cholesky(S),
        "LinalgInvExBackward0": LA.inv(A),
        "LinalgDetBackward0": LA.det(A),
        "LinalgSlogdetBackward0": LA.slogdet(A)[1],
        "LinalgSolveExBackward0": LA.solve(A, A),
        "LinalgSolveTriangularBackward0": LA.solve_triangular(A, A, upper=True),
        "LinalgEighBackward0": LA.eigh(S)[1],
        "LinalgQrBackward0": LA.qr(A)[0],
        "LinalgSvdBackward0": LA.svd(A)[0],
        "LinalgPinvBackward0": LA.pinv(A),
    }
    for name, res in names.items():
        assert res.grad_fn.name() == name
    assert LA.eigvalsh(S).grad_fn.name() == "LinalgEighBackward0"
    assert LA.svdvals(A).grad_fn.name() == "LinalgSvdBackward0"
    assert LA.slogdet(A).sign.grad_fn is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fg.cholesky(S).grad_fn.name() == "CholeskyBackward0"


def test_qr_backward_refusals():
    A = _batch(4, 3)
    Q, R = LA.qr(A, mode="r")
    with pytest.raises(RuntimeError, match="mode='r'"):
        R.sum().backward()
    Q, R = LA.qr(A, mode="complete")
    with pytest.raises(RuntimeError, match="mode='complete' and nrows > ncols"):
        Q.sum().backward()


# -- errors ---------------------------------------------------------------------------------------

def test_singular_inv_names_the_zero_pivot():
    z = _t([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(LA.LinAlgError, match="The diagonal element 2 is zero, the inversion "
                                             "could not be completed because the input matrix "
                                             "is singular"):
        LA.inv(z)
    assert issubclass(LA.LinAlgError, RuntimeError)
    with pytest.raises(LA.LinAlgError, match=r"\(Batch element 1\): The diagonal element 1"):
        LA.inv(_t(np.stack([np.eye(3), np.zeros((3, 3))])))
    with pytest.raises(LA.LinAlgError, match="singular"):
        fg.inverse(z)
    with pytest.raises(LA.LinAlgError, match="The solver failed because the input matrix is "
                                             "singular"):
        LA.solve(z, _t([1.0, 1.0]))


def test_non_positive_definite_cholesky():
    with pytest.raises(LA.LinAlgError, match=r"not positive-definite \(the leading minor of "
                                             r"order 2 is not positive-definite\)"):
        LA.cholesky(_t([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(LA.LinAlgError, match=r"\(Batch element 1\): .*order 1 is not"):
        LA.cholesky(_t(np.stack([np.eye(2), -np.eye(2)])))
    with pytest.raises(LA.LinAlgError, match="order 2 is not positive-definite"):
        LA.cholesky(_t([[1.0, 0.0], [0.0, np.nan]]))


@pytest.mark.parametrize("fn", [LA.cholesky, LA.inv, LA.det, LA.slogdet, LA.eigh, LA.eigvalsh,
                                fg.logdet, lambda A: LA.matrix_power(A, 2),
                                lambda A: LA.solve(A, A[..., 0]),
                                lambda A: LA.solve_triangular(A, A, upper=True)])
def test_non_square_raises(fn):
    with pytest.raises(RuntimeError, match="must be batches of square matrices, but they are 2 "
                                           "by 3 matrices"):
        fn(_t(np.ones((2, 3))))


@pytest.mark.parametrize("fn", [LA.cholesky, LA.inv, LA.det, LA.slogdet, LA.qr, LA.svd,
                                LA.svdvals, LA.pinv, LA.matrix_rank, lambda A: LA.solve(A, A)])
def test_integer_input_raises_runtime_error(fn):
    with pytest.raises(RuntimeError):
        fn(fg.tensor([[1, 0], [0, 1]]))


@pytest.mark.parametrize("fn", [LA.eigh, LA.eigvalsh,
                                lambda A: LA.solve_triangular(A, A, upper=True)])
def test_integer_input_raises_not_implemented(fn):
    with pytest.raises(NotImplementedError):
        fn(fg.tensor([[1, 0], [0, 1]]))


def test_bad_shapes_and_arguments():
    I2 = _t(np.eye(2))
    with pytest.raises(RuntimeError, match=r"Incompatible shapes of A and B for the equation "
                                           r"AX = B \(2x2 and 3x1\)"):
        LA.solve(I2, _t(np.ones(3)))
    with pytest.raises(RuntimeError, match=r"AX = B \(2x2 and 3x2\)"):
        LA.solve(I2, _t(np.ones((3, 2))))
    with pytest.raises(RuntimeError, match=r"XA = B \(2x2 and 2x1\)"):
        LA.solve(I2, _t(np.ones(2)), left=False)
    with pytest.raises(RuntimeError, match="same dtype"):
        LA.solve(I2, _t(np.ones(2), dtype=fg.float32))
    with pytest.raises(RuntimeError, match="B must have at least 2 dimensions"):
        LA.solve_triangular(I2, _t(np.ones(2)), upper=True)
    with pytest.raises(RuntimeError, match="A must have at least 2 dimensions"):
        LA.inv(_t(np.ones(3)))
    with pytest.raises(RuntimeError, match="unrecognized mode 'x'"):
        LA.qr(I2, mode="x")
    with pytest.raises(RuntimeError, match="UPLO argument to be 'L' or 'U', but got X"):
        LA.eigh(I2, UPLO="X")
    with pytest.raises(RuntimeError, match="Low precision"):
        LA.inv(fg.eye(2, dtype=fg.float16))
    with pytest.raises(TypeError):
        LA.inv(np.eye(2))


# -- against PyTorch ------------------------------------------------------------------------------

def _torch_pair(fn_fg, fn_t, *arrays, grad=True):
    torch = pytest.importorskip("torch")
    xs = [_t(a, grad=grad) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]
    out_f, out_t = fn_fg(*xs), fn_t(*ts)
    np.testing.assert_allclose(_np(out_f), out_t.detach().numpy(), rtol=1e-9, atol=1e-10)
    if grad:
        g = RNG.standard_normal(tuple(out_t.shape))
        out_f.backward(_t(g))
        out_t.backward(torch.tensor(g))
        for x, t in zip(xs, ts):
            np.testing.assert_allclose(_np(x.grad), t.grad.numpy(), rtol=1e-7, atol=1e-9)


def _sq(*shape):
    return RNG.standard_normal(shape) + 2 * np.eye(shape[-1])


@pytest.mark.parametrize("upper", [False, True])
def test_torch_cholesky(upper):
    s = _spd(2, 3, 3) + np.triu(np.ones(3), 1) * 0.1 * (1 if upper else -1)
    torch = pytest.importorskip("torch")
    _torch_pair(lambda A: LA.cholesky(A, upper=upper),
                lambda A: torch.linalg.cholesky(A, upper=upper), s)


def test_torch_inv_det_slogdet_logdet():
    torch = pytest.importorskip("torch")
    a = _sq(2, 3, 3)
    _torch_pair(LA.inv, torch.linalg.inv, a)
    _torch_pair(LA.det, torch.linalg.det, a)
    _torch_pair(lambda A: LA.slogdet(A)[1], lambda A: torch.linalg.slogdet(A)[1], a)
    _torch_pair(fg.logdet, torch.logdet, _spd(2, 3, 3))
    # singular: the cofactor matrix (PyTorch's first-order backward gives 0 for this exactly
    # singular 2x2 matrix, its create_graph backward the cofactors)
    for m in ([[1.0, 2.0], [2.0, 4.0]], [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]):
        Z, T = _t(m, grad=True), torch.tensor(m, dtype=torch.float64, requires_grad=True)
        (gz,) = fg.autograd.grad(LA.det(Z), Z)
        (gt,) = torch.autograd.grad(torch.linalg.det(T), T, create_graph=True)
        np.testing.assert_allclose(_np(gz), gt.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("b_shape,left", [((3,), True), ((2, 3), True), ((4, 1, 3, 2), True),
                                          ((2, 4, 3), False)])
def test_torch_solve(b_shape, left):
    torch = pytest.importorskip("torch")
    _torch_pair(lambda A, B: LA.solve(A, B, left=left),
                lambda A, B: torch.linalg.solve(A, B, left=left),
                _sq(2, 3, 3), RNG.standard_normal(b_shape))


@pytest.mark.parametrize("upper,left,unit", [(True, True, False), (False, False, True),
                                             (False, True, False), (True, False, True)])
def test_torch_solve_triangular(upper, left, unit):
    torch = pytest.importorskip("torch")
    _torch_pair(lambda A, B: LA.solve_triangular(A, B, upper=upper, left=left,
                                                 unitriangular=unit),
                lambda A, B: torch.linalg.solve_triangular(A, B, upper=upper, left=left,
                                                           unitriangular=unit),
                _sq(2, 3, 3), RNG.standard_normal((3, 2) if left else (2, 3)))


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_torch_eigh(uplo):
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal((2, 4, 4))
    _torch_pair(lambda A: LA.eigvalsh(A, UPLO=uplo), lambda A: torch.linalg.eigvalsh(A, UPLO=uplo),
                a)
    # eigenvectors up to sign: compare the sign-free V diag(w^2) V^T
    _torch_pair(lambda A: (lambda w, V: V * (w * w).unsqueeze(-2) @ V.mT)(*LA.eigh(A, UPLO=uplo)),
                lambda A: (lambda w, V: V * (w * w).unsqueeze(-2) @ V.mT)(
                    *torch.linalg.eigh(A, UPLO=uplo)), a)


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 3), (2, 3, 5)])
def test_torch_qr_svd_pinv(shape):
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal(shape)
    _torch_pair(lambda A: LA.qr(A)[1].abs() + LA.qr(A)[0].sum(), lambda A: torch.linalg.qr(A)[1].abs()
                + torch.linalg.qr(A)[0].sum(), a)
    _torch_pair(LA.svdvals, torch.linalg.svdvals, a)
    _torch_pair(lambda A: (lambda U, S, Vh: U @ Vh)(*LA.svd(A, full_matrices=False)),
                lambda A: (lambda U, S, Vh: U @ Vh)(*torch.linalg.svd(A, full_matrices=False)), a)
    _torch_pair(LA.pinv, torch.linalg.pinv, a)
    # full_matrices: the extra columns of U / rows of Vh (any orthonormal completion, so
    # their values are not compared) carry no gradient, as in PyTorch
    k = min(shape[-2:])
    grads = []
    for lib, A in ((fg, _t(a, grad=True)), (torch, torch.tensor(a, requires_grad=True))):
        U, S, Vh = lib.linalg.svd(A)
        loss = (U[..., :k].abs().sum() + Vh[..., :k, :].abs().sum() + U[..., k:].sum()
                + Vh[..., k:, :].sum() + S.sum())
        loss.backward()
        grads.append(A.grad.detach().numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-10)
    _torch_pair(lambda A: LA.matrix_norm(A, "nuc"), lambda A: torch.linalg.matrix_norm(A, "nuc"),
                a)


def test_torch_error_messages_carry_the_same_phrases():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m: m.linalg.inv(m.tensor([[1.0, 2.0], [2.0, 4.0]]))),
        (lambda m: m.linalg.cholesky(m.tensor([[1.0, 2.0], [2.0, 1.0]]))),
        (lambda m: m.linalg.inv(m.ones(2, 3))),
        (lambda m: m.linalg.det(m.ones(2, 2, dtype=m.int64))),
    ]
    for case in cases:
        with pytest.raises(RuntimeError) as ours:
            case(fg)
        with pytest.raises(RuntimeError) as theirs:
            case(torch)
        assert str(theirs.value).split(". Got")[0].split(", but")[0] in str(ours.value)
        assert isinstance(ours.value, LA.LinAlgError) == isinstance(theirs.value,
                                                                    torch.linalg.LinAlgError)

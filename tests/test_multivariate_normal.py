"""distributions.MultivariateNormal: its three parameterizations agree with each other and with
closed forms in float64, gradients against finite differences, PyTorch's values and seeded
draws where installed, argument errors."""
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import gradcheck
from fastgrad.distributions import MultivariateNormal, Normal, kl_divergence

RNG = np.random.default_rng(7)
LOC = RNG.standard_normal((2, 3))
_A = RNG.standard_normal((2, 3, 3))
COV = _A @ np.swapaxes(_A, -1, -2) + np.eye(3)
L = np.linalg.cholesky(COV)
PREC = np.linalg.inv(COV)
VALUE = RNG.standard_normal((4, 2, 3))
PARAMS = {"covariance_matrix": COV, "precision_matrix": PREC, "scale_tril": L}


def _t(a, grad=False):
    return fg.tensor(np.asarray(a), dtype=fg.float64, requires_grad=grad)


def _np(t):
    return t.detach().numpy()


def _log_density(x, mu, cov):
    d = x - mu
    sol = np.linalg.solve(cov, d[..., None])[..., 0]
    return -0.5 * ((d * sol).sum(-1) + mu.shape[-1] * math.log(2 * math.pi)
                   + np.linalg.slogdet(cov)[1])


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_parameterizations_agree_with_closed_forms(kind):
    d = MultivariateNormal(_t(LOC), **{kind: _t(PARAMS[kind])})
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    np.testing.assert_allclose(_np(d.scale_tril), L, atol=1e-12)
    np.testing.assert_allclose(_np(d.covariance_matrix), COV, atol=1e-12)
    np.testing.assert_allclose(_np(d.precision_matrix), PREC, atol=1e-10)
    np.testing.assert_allclose(_np(d.variance), np.diagonal(COV, 0, -2, -1), atol=1e-12)
    np.testing.assert_allclose(_np(d.mean), LOC)
    np.testing.assert_allclose(_np(d.log_prob(_t(VALUE))), _log_density(VALUE, LOC, COV),
                               atol=1e-10)
    ent = 0.5 * (3 * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(COV)[1])
    np.testing.assert_allclose(_np(d.entropy()), ent, atol=1e-12)


def test_diagonal_covariance_is_independent_normals():
    sd = np.array([0.5, 1.0, 2.0])
    mvn = MultivariateNormal(_t(LOC[0]), scale_tril=_t(np.diag(sd)))
    normal = Normal(_t(LOC[0]), _t(sd))
    np.testing.assert_allclose(_np(mvn.log_prob(_t(VALUE[:, 0]))),
                               _np(normal.log_prob(_t(VALUE[:, 0])).sum(-1)), atol=1e-12)
    np.testing.assert_allclose(_np(mvn.entropy()), _np(normal.entropy().sum()), atol=1e-12)


def test_samples_have_the_moments_and_shapes():
    d = MultivariateNormal(_t(LOC), covariance_matrix=_t(COV))
    fg.manual_seed(0)
    s = d.sample((20000,))
    assert s.shape == (20000, 2, 3) and s.grad_fn is None
    np.testing.assert_allclose(_np(s).mean(0), LOC, atol=0.1)
    c = np.einsum("sbi,sbj->bij", _np(s) - LOC, _np(s) - LOC) / 20000
    np.testing.assert_allclose(c, COV, atol=0.25)
    assert d.expand((5, 2)).sample().shape == (5, 2, 3)
    assert d.expand((5, 2)).covariance_matrix.shape == (5, 2, 3, 3)


def test_batch_broadcasting_of_loc_and_matrix():
    d = MultivariateNormal(_t(np.zeros(3)), scale_tril=_t(L))
    assert d.batch_shape == (2,) and d.loc.shape == (2, 3)
    d = MultivariateNormal(_t(np.zeros((4, 1, 3))), scale_tril=_t(L))
    assert d.batch_shape == (4, 2)
    assert d.log_prob(_t(np.zeros(3))).shape == (4, 2)


def test_gradients_against_finite_differences():
    x = _t(VALUE)

    def lp_cov(loc, a):
        cov = a @ a.mT + fg.eye(3, dtype=fg.float64)
        return MultivariateNormal(loc, covariance_matrix=cov).log_prob(x)

    def lp_prec(loc, a):
        prec = a @ a.mT + fg.eye(3, dtype=fg.float64)
        return MultivariateNormal(loc, precision_matrix=prec).log_prob(x)

    def rs(loc, a):
        fg.manual_seed(1)
        return MultivariateNormal(loc, scale_tril=a.tril(-1) + fg.eye(3, dtype=fg.float64)
                                  * 2).rsample((3,))

    def kl(loc, a):
        p = MultivariateNormal(loc, scale_tril=a.tril(-1) + 2 * fg.eye(3, dtype=fg.float64))
        q = MultivariateNormal(loc * 0.5 + 1, covariance_matrix=a @ a.mT
                               + fg.eye(3, dtype=fg.float64))
        return kl_divergence(p, q)

    def ent(loc, a):
        return MultivariateNormal(loc, covariance_matrix=a @ a.mT
                                  + fg.eye(3, dtype=fg.float64)).entropy()

    for fn in (lp_cov, lp_prec, rs, kl, ent):
        assert gradcheck(fn, (_t(LOC, True), _t(_A, True)), atol=1e-6, rtol=1e-4)


def test_kl_closed_form_and_self():
    p = MultivariateNormal(_t(LOC), covariance_matrix=_t(COV))
    q = MultivariateNormal(_t(np.zeros(3)), covariance_matrix=_t(np.eye(3) * 2))
    inv_q = np.eye(3) / 2
    ref = 0.5 * (np.trace(inv_q @ COV, axis1=-2, axis2=-1) + (LOC ** 2).sum(-1) / 2 - 3
                 + 3 * math.log(2) - np.linalg.slogdet(COV)[1])
    np.testing.assert_allclose(_np(kl_divergence(p, q)), ref, atol=1e-12)
    np.testing.assert_allclose(_np(kl_divergence(p, p)), 0, atol=1e-12)
    with pytest.raises(ValueError, match="different event shapes"):
        kl_divergence(p, MultivariateNormal(_t(np.zeros(2)), scale_tril=_t(np.eye(2))))


def test_argument_errors():
    with pytest.raises(ValueError, match="Exactly one of covariance_matrix or precision_matrix"):
        MultivariateNormal(_t(LOC))
    with pytest.raises(ValueError, match="Exactly one of"):
        MultivariateNormal(_t(LOC), covariance_matrix=_t(COV), scale_tril=_t(L))
    with pytest.raises(ValueError, match="loc must be at least one-dimensional"):
        MultivariateNormal(_t(1.0), scale_tril=_t(np.eye(1)))
    with pytest.raises(ValueError, match="scale_tril matrix must be at least two-dimensional"):
        MultivariateNormal(_t(LOC), scale_tril=_t(np.ones(3)))
    with pytest.raises(ValueError, match="PositiveDefinite"):
        MultivariateNormal(_t(np.zeros(2)), covariance_matrix=_t([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="LowerCholesky"):
        MultivariateNormal(_t(np.zeros(2)), scale_tril=_t([[1.0, 1.0], [0.0, 1.0]]))
    ok = MultivariateNormal(_t(np.zeros(2)), scale_tril=_t([[1.0, 1.0], [0.0, 1.0]]),
                            validate_args=False)
    assert ok.event_shape == (2,)
    with pytest.raises(ValueError, match="right-most size of value must match event_shape"):
        MultivariateNormal(_t(LOC), scale_tril=_t(L)).log_prob(_t(np.zeros(4)))


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_against_torch(kind):
    torch = pytest.importorskip("torch")
    d1 = MultivariateNormal(_t(LOC, True), **{kind: _t(PARAMS[kind], True)})
    loc_t = torch.tensor(LOC, requires_grad=True)
    mat_t = torch.tensor(PARAMS[kind], requires_grad=True)
    d2 = torch.distributions.MultivariateNormal(loc_t, **{kind: mat_t})
    for attr in ("scale_tril", "covariance_matrix", "precision_matrix", "variance"):
        np.testing.assert_allclose(_np(getattr(d1, attr)), getattr(d2, attr).detach().numpy(),
                                   atol=1e-12)
    lp1, lp2 = d1.log_prob(_t(VALUE)), d2.log_prob(torch.tensor(VALUE))
    np.testing.assert_allclose(_np(lp1), lp2.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(_np(d1.entropy()), d2.entropy().detach().numpy(), atol=1e-12)
    fg.manual_seed(11)
    torch.manual_seed(11)
    np.testing.assert_allclose(_np(d1.sample((6,))), d2.sample((6,)).numpy(), atol=1e-12)
    np.testing.assert_allclose(_np(d1.rsample((2,))), d2.rsample((2,)).detach().numpy(),
                               atol=1e-12)
    q1 = MultivariateNormal(_t(np.zeros(3)), scale_tril=_t(L[1]))
    q2 = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64),
                                                scale_tril=torch.tensor(L[1]))
    kl1, kl2 = kl_divergence(d1, q1), torch.distributions.kl_divergence(d2, q2)
    np.testing.assert_allclose(_np(kl1), kl2.detach().numpy(), atol=1e-12)


def test_against_torch_gradients():
    torch = pytest.importorskip("torch")
    for kind, mat in PARAMS.items():
        loc_f, mat_f = _t(LOC, True), _t(mat, True)
        loc_t, mat_t = torch.tensor(LOC, requires_grad=True), torch.tensor(mat, requires_grad=True)
        d1 = MultivariateNormal(loc_f, **{kind: mat_f})
        d2 = torch.distributions.MultivariateNormal(loc_t, **{kind: mat_t})
        fg.manual_seed(4)
        torch.manual_seed(4)
        out1 = d1.log_prob(_t(VALUE)).sum() + d1.entropy().sum() + d1.rsample((2,)).sum()
        out2 = (d2.log_prob(torch.tensor(VALUE)).sum() + d2.entropy().sum()
                + d2.rsample((2,)).sum())
        out1.backward()
        out2.backward()
        np.testing.assert_allclose(_np(loc_f.grad), loc_t.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(_np(mat_f.grad), mat_t.grad.numpy(), atol=1e-9, err_msg=kind)

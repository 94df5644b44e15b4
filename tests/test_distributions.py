"""fastgrad.distributions: Normal, Categorical, Bernoulli, Uniform, Independent, kl_divergence.

Values in float64 against scipy.stats and closed forms (and against torch where installed, with
the same parameters and, under one seed, the same draws), gradients of log_prob, entropy,
kl_divergence and rsample against central finite differences, sample shapes and empirical
moments under a fixed seed, PyTorch's validation errors, and a REINFORCE loop that must find a
bandit's best arm."""
import math
import warnings

import numpy as np
import pytest

from _backend import fg, reference_torch
from _fd import check_grad

D = fg.distributions
F64 = fg.float64


def _t(a, dtype=None):
    return fg.tensor(np.asarray(a), dtype=F64 if dtype is None else dtype)


def _np(t):
    return np.asarray(t.detach().numpy(), dtype=np.float64)


def _close(actual, expected, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(_np(actual), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


RNG = np.random.default_rng(20261205)
LOC = RNG.normal(size=(2, 3))
SCALE = RNG.uniform(0.3, 2.5, size=(2, 3))
VALUE = RNG.normal(size=(4, 2, 3)) * 2
PROBS = RNG.uniform(0.05, 1.0, size=(3, 4))        # unnormalised rows
LOGITS = RNG.normal(size=(3, 4)) * 2
BPROBS = RNG.uniform(0.02, 0.98, size=(5,))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- values against scipy and closed forms ------------------------------------------------------

def test_normal_values_match_scipy():
    st = pytest.importorskip("scipy.stats")
    d = D.Normal(_t(LOC), _t(SCALE))
    assert d.batch_shape == (2, 3) and d.event_shape == ()
    _close(d.log_prob(_t(VALUE)), st.norm.logpdf(VALUE, LOC, SCALE))
    _close(d.cdf(_t(VALUE)), st.norm.cdf(VALUE, LOC, SCALE), atol=1e-15)
    q = np.array([[0.1, 0.5, 0.9], [0.01, 0.3, 0.999]])
    _close(d.icdf(_t(q)), st.norm.ppf(q, LOC, SCALE), rtol=1e-9)
    _close(d.entropy(), st.norm.entropy(LOC, SCALE))
    _close(d.mean, LOC)
    _close(d.mode, LOC)
    _close(d.stddev, SCALE)
    _close(d.variance, SCALE ** 2)
    _close(d.perplexity(), np.exp(st.norm.entropy(LOC, SCALE)))


def test_categorical_values_from_probs_and_logits():
    st = pytest.importorskip("scipy.stats")
    p = PROBS / PROBS.sum(-1, keepdims=True)
    d = D.Categorical(probs=_t(PROBS))
    assert d.batch_shape == (3,) and d.event_shape == () and d.param_shape == (3, 4)
    _close(d.probs, p)                                  # normalised over the last dim
    _close(d.logits, np.log(p))
    _close(d.entropy(), st.entropy(p, axis=-1))
    k = np.array([[0, 3, 1], [2, 2, 0]])
    _close(d.log_prob(fg.tensor(k)), np.log(p[np.arange(3), k]))
    assert d.mode.tolist() == p.argmax(-1).tolist()
    assert np.isnan(_np(d.mean)).all() and np.isnan(_np(d.variance)).all()

    q = _softmax(LOGITS)
    e = D.Categorical(logits=_t(LOGITS))
    _close(e.logits, np.log(q))                         # logits - logsumexp(logits)
    _close(e.probs, q)
    _close(e.entropy(), st.entropy(q, axis=-1))
    _close(e.log_prob(fg.tensor(k)), np.log(q[np.arange(3), k]))


def test_categorical_entropy_with_impossible_classes_is_finite():
    d = D.Categorical(probs=_t([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]))
    _close(d.entropy(), [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), 0.0], atol=1e-14)
    e = D.Categorical(logits=_t([[-math.inf, 0.0, 0.0]]))
    _close(e.entropy(), [math.log(2)])


def test_bernoulli_values_match_scipy():
    st = pytest.importorskip("scipy.stats")
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    for d in (D.Bernoulli(probs=_t(BPROBS)), D.Bernoulli(logits=_t(np.log(BPROBS / (1 - BPROBS))))):
        assert d.batch_shape == (5,)
        _close(d.log_prob(_t(x)), st.bernoulli.logpmf(x, BPROBS), rtol=1e-10)
        _close(d.entropy(), st.bernoulli.entropy(BPROBS), rtol=1e-10)
        _close(d.mean, BPROBS, rtol=1e-12)
        _close(d.variance, BPROBS * (1 - BPROBS), rtol=1e-10)
        _close(d.probs, BPROBS, rtol=1e-12)
        _close(d.logits, np.log(BPROBS / (1 - BPROBS)), rtol=1e-10)
    mode = _np(D.Bernoulli(_t([0.2, 0.5, 0.7])).mode)
    assert mode[0] == 0 and np.isnan(mode[1]) and mode[2] == 1


def test_uniform_values_match_scipy():
    st = pytest.importorskip("scipy.stats")
    low, high = np.array([-1.0, 0.5, 2.0]), np.array([3.0, 0.75, 10.0])
    d = D.Uniform(_t(low), _t(high), validate_args=False)
    x = np.array([[0.0, 0.6, 11.0], [-1.0, 0.75, 2.5]])     # inside, at the bounds, outside
    # [low, high): high itself is outside, where scipy's closed interval has it inside
    _close(d.log_prob(_t(x)), np.where(x == high, -np.inf, st.uniform.logpdf(x, low, high - low)))
    _close(d.entropy(), st.uniform.entropy(low, high - low))
    _close(d.mean, st.uniform.mean(low, high - low))
    _close(d.variance, st.uniform.var(low, high - low))
    _close(d.stddev, st.uniform.std(low, high - low))
    _close(d.cdf(_t(x)), st.uniform.cdf(x, low, high - low))
    _close(d.icdf(_t([0.25, 0.5, 1.0])), low + np.array([0.25, 0.5, 1.0]) * (high - low))
    assert np.isnan(_np(d.mode)).all()


def test_independent_sums_the_reinterpreted_dims():
    base = D.Normal(_t(LOC), _t(SCALE))
    d = D.Independent(base, 1)
    assert (d.batch_shape, d.event_shape) == ((2,), (3,))
    _close(d.log_prob(_t(VALUE)), _np(base.log_prob(_t(VALUE))).sum(-1))
    _close(d.entropy(), _np(base.entropy()).sum(-1))
    _close(d.mean, LOC)
    _close(d.variance, SCALE ** 2)
    whole = D.Independent(base, 2)
    assert (whole.batch_shape, whole.event_shape) == ((), (2, 3))
    _close(whole.log_prob(_t(VALUE)), _np(base.log_prob(_t(VALUE))).sum((-1, -2)))
    assert d.has_rsample and repr(d) == "Independent(Normal(loc: torch.Size([2, 3]), " \
                                        "scale: torch.Size([2, 3])), 1)"
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims <= len"):
        D.Independent(base, 3)


def test_kl_divergences_match_closed_forms():
    m1, s1, m2, s2 = LOC, SCALE, LOC[::-1] * 1.5, SCALE[:, ::-1] + 0.2
    kl = D.kl_divergence(D.Normal(_t(m1), _t(s1)), D.Normal(_t(m2), _t(s2)))
    _close(kl, np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5, rtol=1e-10)

    p, q = _softmax(LOGITS), PROBS / PROBS.sum(-1, keepdims=True)
    kl = D.kl_divergence(D.Categorical(logits=_t(LOGITS)), D.Categorical(probs=_t(PROBS)))
    _close(kl, (p * np.log(p / q)).sum(-1), rtol=1e-10)
    kl = D.kl_divergence(D.Categorical(probs=_t([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0]])),
                         D.Categorical(probs=_t([[0.2, 0.0, 0.8], [0.25, 0.75, 0.0]])))
    assert _np(kl)[0] == np.inf                        # q puts no mass where p does
    _close(kl[1], 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))   # p's zeros add nothing

    a, b = BPROBS, BPROBS[::-1]
    kl = D.kl_divergence(D.Bernoulli(_t(a)), D.Bernoulli(logits=_t(np.log(b / (1 - b)))))
    _close(kl, a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b)), rtol=1e-9)
    kl = D.kl_divergence(D.Bernoulli(_t([0.0, 1.0, 0.3, 0.3])), D.Bernoulli(_t([0.4, 0.4, 0.0, 1.0])))
    _close(kl[:2], [-math.log(0.6), -math.log(0.4)])
    assert (_np(kl)[2:] == np.inf).all()

    kl = D.kl_divergence(D.Uniform(_t([0.0, 0.0, -1.0]), _t([1.0, 3.0, 1.0])),
                         D.Uniform(_t([-1.0, 0.5, -1.0]), _t([2.0, 2.0, 3.0])))
    _close(kl[::2], [math.log(3.0), math.log(2.0)])
    assert _np(kl)[1] == np.inf                        # p reaches outside q

    ind = D.kl_divergence(D.Independent(D.Normal(_t(m1), _t(s1)), 1),
                          D.Independent(D.Normal(_t(m2), _t(s2)), 1))
    _close(ind, _np(D.kl_divergence(D.Normal(_t(m1), _t(s1)), D.Normal(_t(m2), _t(s2)))).sum(-1))


def test_kl_of_a_distribution_with_itself_is_zero():
    for d in (D.Normal(_t(LOC), _t(SCALE)), D.Categorical(_t(PROBS)), D.Bernoulli(_t(BPROBS)),
              D.Uniform(_t(LOC), _t(LOC + SCALE))):
        _close(D.kl_divergence(d, d), np.zeros(tuple(d.batch_shape)), atol=1e-14)


# -- gradients against finite differences -------------------------------------------------------

def test_normal_log_prob_entropy_cdf_gradients():
    check_grad(lambda m, s, x: D.Normal(m, s).log_prob(x), [LOC, SCALE, VALUE])
    check_grad(lambda s: D.Normal(0.0, s).entropy(), [SCALE])
    check_grad(lambda m, s, x: D.Normal(m, s).cdf(x), [LOC, SCALE, VALUE[0]])


def test_categorical_gradients_through_logits_and_probs():
    k = fg.tensor([[0, 3, 1], [2, 2, 0]])
    check_grad(lambda lg: D.Categorical(logits=lg).log_prob(k), [LOGITS])
    check_grad(lambda p: D.Categorical(probs=p).log_prob(k), [PROBS])
    check_grad(lambda lg: D.Categorical(logits=lg).entropy(), [LOGITS])
    check_grad(lambda p: D.Categorical(probs=p).entropy(), [PROBS])


def test_bernoulli_gradients_through_logits_and_probs():
    x = _t([1.0, 0.0, 1.0, 1.0, 0.0])
    lg = np.log(BPROBS / (1 - BPROBS))
    check_grad(lambda p: D.Bernoulli(probs=p).log_prob(x), [BPROBS])
    check_grad(lambda g: D.Bernoulli(logits=g).log_prob(x), [lg])
    check_grad(lambda p: D.Bernoulli(probs=p).entropy(), [BPROBS])
    check_grad(lambda g: D.Bernoulli(logits=g).entropy(), [lg])


def test_uniform_gradients():
    low, high = np.array([-1.0, 0.5]), np.array([3.0, 0.75])
    check_grad(lambda a, b: D.Uniform(a, b).log_prob(_t([0.0, 0.6])), [low, high])
    check_grad(lambda a, b: D.Uniform(a, b).entropy(), [low, high])


def test_kl_gradients():
    check_grad(lambda m1, s1, m2, s2: D.kl_divergence(D.Normal(m1, s1), D.Normal(m2, s2)),
               [LOC, SCALE, LOC[::-1], SCALE[::-1]])
    check_grad(lambda a, b: D.kl_divergence(D.Categorical(logits=a), D.Categorical(probs=b)),
               [LOGITS, PROBS])
    check_grad(lambda a, b: D.kl_divergence(D.Bernoulli(a), D.Bernoulli(logits=b)),
               [BPROBS, LOGITS[0, :1].repeat(5)])
    check_grad(lambda a, b, c, d: D.kl_divergence(D.Uniform(a, b), D.Uniform(c, d)),
               [[0.0, 1.0], [1.0, 2.0], [-1.0, 0.5], [2.0, 3.0]])


def test_rsample_is_reparameterised():
    def normal(m, s):
        fg.manual_seed(3)
        return D.Normal(m, s).rsample((5,))

    def uniform(a, b):
        fg.manual_seed(3)
        return D.Uniform(a, b).rsample((5,))

    out = check_grad(normal, [LOC, SCALE])
    fg.manual_seed(3)
    eps = _np(fg.empty((5, 2, 3), dtype=F64).normal_())
    np.testing.assert_allclose(out, LOC + eps * SCALE, rtol=1e-14)   # loc + eps * scale
    check_grad(uniform, [LOC[0], LOC[0] + SCALE[0]])


def test_sample_is_not_differentiable_and_rsample_is():
    m = _t(LOC).requires_grad_()
    s = _t(SCALE).requires_grad_()
    d = D.Normal(m, s)
    assert not d.sample().requires_grad
    r = d.rsample()
    assert r.requires_grad and r.grad_fn is not None
    for e in (D.Categorical(logits=m), D.Bernoulli(logits=m), D.Uniform(m, m + s)):
        assert not e.sample((2,)).requires_grad
    with pytest.raises(NotImplementedError):
        D.Categorical(logits=m).rsample()


# -- sampling ------------------------------------------------------------------------------------

def test_sample_shapes_and_dtypes():
    cases = [(D.Normal(_t(LOC), _t(SCALE)), (2, 3), F64),
             (D.Normal(0.0, 1.0), (), fg.float32),
             (D.Categorical(_t(PROBS)), (3,), fg.int64),
             (D.Categorical(fg.tensor([0.2, 0.8])), (), fg.int64),
             (D.Bernoulli(_t(BPROBS)), (5,), F64),
             (D.Bernoulli(0.3), (), fg.float32),
             (D.Uniform(_t(LOC), _t(LOC + 1)), (2, 3), F64),
             (D.Independent(D.Normal(_t(LOC), _t(SCALE)), 1), (2, 3), F64)]
    for d, shape, dtype in cases:
        for sample_shape in [(), (4,), (2, 5)]:
            x = d.sample(sample_shape)
            assert tuple(x.shape) == tuple(sample_shape) + shape, (d, sample_shape)
            assert x.dtype == dtype
            assert type(x.shape).__name__ == "Size"
        if d.has_rsample:
            assert tuple(d.rsample((7,)).shape) == (7,) + shape


def test_empirical_moments_under_a_fixed_seed():
    fg.manual_seed(0)
    n = 40000
    loc, scale = np.array([-1.0, 2.0]), np.array([0.5, 3.0])
    for x in (D.Normal(_t(loc), _t(scale)).sample((n,)), D.Normal(_t(loc), _t(scale)).rsample((n,))):
        x = _np(x)
        assert np.all(np.abs(x.mean(0) - loc) < 4 * scale / math.sqrt(n))
        assert np.all(np.abs(x.std(0) / scale - 1) < 0.03)

    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    k = _np(D.Categorical(_t(p * 3)).sample((n,)))
    for row in range(2):
        freq = np.bincount(k[:, row].astype(int), minlength=3) / n
        assert np.all(np.abs(freq - p[row]) < 4 * np.sqrt(p[row] * (1 - p[row]) / n))

    bp = np.array([0.05, 0.5, 0.9])
    for d in (D.Bernoulli(_t(bp)), D.Bernoulli(logits=_t(np.log(bp / (1 - bp))))):
        freq = _np(d.sample((n,))).mean(0)
        assert np.all(np.abs(freq - bp) < 4 * np.sqrt(bp * (1 - bp) / n))

    low, high = np.array([-2.0, 5.0]), np.array([1.0, 5.5])
    u = _np(D.Uniform(_t(low), _t(high)).rsample((n,)))
    assert np.all(u >= low) and np.all(u < high)
    assert np.all(np.abs(u.mean(0) - (low + high) / 2) < 4 * (high - low) / math.sqrt(12 * n))
    assert np.all(np.abs(u.var(0) / ((high - low) ** 2 / 12) - 1) < 0.03)


def test_sampling_is_reproducible_under_manual_seed():
    def draws():
        fg.manual_seed(7)
        return [_np(D.Normal(_t(LOC), _t(SCALE)).sample((3,))),
                _np(D.Normal(_t(LOC), _t(SCALE)).rsample((3,))),
                _np(D.Categorical(_t(PROBS)).sample((3,))),
                _np(D.Bernoulli(_t(BPROBS)).sample((3,))),
                _np(D.Uniform(_t(LOC), _t(LOC + 1)).sample((3,)))]
    a, b = draws(), draws()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])              # the stream moves on between draws


# torch 2.13's draws after manual_seed(0), float64 parameters: the same streams without torch
GOLDEN_DRAWS = [
    (lambda: D.Normal(_t([0.0, 1.0]), _t([1.0, 2.0])).sample((2,)),
     [[1.5409961082440433, 0.41314218847810724], [-2.1787893820745574, 2.1368625545613353]]),
    (lambda: D.Normal(_t([0.0, 1.0]), _t([1.0, 2.0])).rsample((2,)),
     [[1.5409961082440433, 0.41314218847810724], [-2.1787893820745574, 2.1368625545613353]]),
    (lambda: D.Categorical(_t([[0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])).sample((4,)),
     [[2, 1], [2, 1], [1, 0], [2, 0]]),
    (lambda: D.Bernoulli(_t([0.2, 0.5, 0.9])).sample((3,)),
     [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]),
    (lambda: D.Uniform(_t(0.0), _t(2.0)).rsample((3,)),
     [1.9401060036131061, 1.415639728799576, 0.9187658862549017]),
]


@pytest.mark.parametrize("draw, expected", GOLDEN_DRAWS)
def test_seeded_draws_are_torchs(draw, expected):
    fg.manual_seed(0)
    np.testing.assert_array_equal(_np(draw()), np.array(expected, dtype=np.float64))


# -- shapes, expand, support ----------------------------------------------------------------------

def test_broadcasting_and_expand():
    d = D.Normal(_t([[0.0], [1.0]]), 2.0)
    assert d.batch_shape == (2, 1) and d.scale.dtype == F64 and tuple(d.scale.shape) == (2, 1)
    assert d.log_prob(_t(np.zeros((3, 2, 4)))).shape == (3, 2, 4)
    e = d.expand((5, 2, 3))
    assert e.batch_shape == (5, 2, 3) and tuple(e.sample().shape) == (5, 2, 3)
    _close(e.log_prob(_t(np.zeros(3))), np.broadcast_to(_np(d.log_prob(_t(np.zeros(3)))), (5, 2, 3)))
    c = D.Categorical(logits=_t(LOGITS[0])).expand((6,))
    assert c.batch_shape == (6,) and c.param_shape == (6, 4) and tuple(c.sample((2,)).shape) == (2, 6)
    b = D.Bernoulli(0.25).expand([3])
    assert b.batch_shape == (3,)
    i = D.Independent(D.Normal(_t(LOC), _t(SCALE)), 1).expand((4, 2))
    assert (i.batch_shape, i.event_shape) == ((4, 2), (3,))
    with pytest.raises(RuntimeError):
        d.expand((3,))


def test_enumerate_support_and_support():
    c = D.Categorical(_t(PROBS))
    assert c.enumerate_support().tolist() == [[k] * 3 for k in range(4)]
    assert tuple(c.enumerate_support(expand=False).shape) == (4, 1)
    assert D.Bernoulli(_t([0.3, 0.6])).enumerate_support().tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert repr(c.support) == "IntegerInterval(lower_bound=0, upper_bound=3)"
    assert repr(D.Uniform(0.0, 2.0).support) == "Interval(lower_bound=0.0, upper_bound=2.0)"
    C = D.constraints
    assert C.simplex.check(_t([[0.5, 0.5], [0.7, 0.7]])).tolist() == [True, False]
    assert C.real_vector.check(_t([[1.0, math.nan], [1.0, 2.0]])).tolist() == [False, True]
    assert C.integer_interval(0, 2).check(_t([0.0, 1.5, 2.0, 3.0])).tolist() == [True, False, True, False]
    assert C.positive.check(_t([0.0, 1e-300])).tolist() == [False, True]
    assert C.is_dependent(D.Uniform.support) and not C.is_dependent(C.real)


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, phrase", [
    (lambda: D.Normal(fg.tensor([0.0]), fg.tensor([-1.0])),
     "Expected parameter scale (Tensor of shape (1,)) of distribution Normal(loc: tensor([0.]), "
     "scale: tensor([-1.])) to satisfy the constraint GreaterThan(lower_bound=0.0), but found "
     "invalid values:\ntensor([-1.])"),
    (lambda: D.Normal(0.0, 0.0), "to satisfy the constraint GreaterThan(lower_bound=0.0)"),
    (lambda: D.Normal(math.nan, 1.0), "parameter loc (Tensor of shape ()) of distribution "
     "Normal(loc: nan, scale: 1.0) to satisfy the constraint Real()"),
    (lambda: D.Bernoulli(1.5), "parameter probs (Tensor of shape ()) of distribution "
     "Bernoulli(probs: 1.5) to satisfy the constraint Interval(lower_bound=0.0, upper_bound=1.0)"),
    (lambda: D.Categorical(fg.tensor([0.5, -0.1])), "to satisfy the constraint Simplex()"),
    (lambda: D.Uniform(2.0, 1.0), "parameter low (Tensor of shape ()) of distribution "
     "Uniform(low: 2.0, high: 1.0) to satisfy the constraint LessThan(upper_bound=1.0)"),
    (lambda: D.Categorical(fg.tensor([0.5, 0.5]), fg.tensor([0.0, 0.0])),
     "Either `probs` or `logits` must be specified, but not both."),
    (lambda: D.Bernoulli(), "Either `probs` or `logits` must be specified, but not both."),
    (lambda: D.Categorical(logits=fg.tensor(1.0)), "`logits` parameter must be at least one-dimensional."),
    (lambda: D.Normal(0.0, 1.0).log_prob(0.5), "The value argument to log_prob must be a Tensor"),
    (lambda: D.Normal(fg.zeros(2), fg.ones(2)).log_prob(fg.zeros(3)),
     "Value is not broadcastable with batch_shape+event_shape: torch.Size([3]) vs torch.Size([2])."),
    (lambda: D.Categorical(fg.ones(2, 3)).log_prob(fg.tensor([3, 0])),
     "Expected value argument (Tensor of shape (2,)) to be within the support "
     "(IntegerInterval(lower_bound=0, upper_bound=2)) of the distribution "
     "Categorical(probs: torch.Size([2, 3])), but found invalid values:\ntensor([3, 0])"),
    (lambda: D.Bernoulli(0.5).log_prob(fg.tensor(0.5)), "to be within the support (Boolean())"),
    (lambda: D.Uniform(0.0, 1.0).log_prob(fg.tensor(1.5)),
     "to be within the support (Interval(lower_bound=0.0, upper_bound=1.0))"),
    (lambda: D.Normal([0.0], 1.0), "Input arguments must all be instances of Number, torch.Tensor"),
])
def test_validation_errors(make, phrase):
    with pytest.raises(ValueError) as info:
        make()
    assert phrase in str(info.value)


def test_validate_args_false_and_the_default_switch():
    d = D.Normal(0.0, -1.0, validate_args=False)             # no check at construction ...
    assert math.isnan(d.log_prob(fg.tensor(0.0)).item())     # ... nor on log_prob
    assert _np(D.Uniform(0.0, 1.0, validate_args=False).log_prob(fg.tensor(1.5))) == -np.inf
    before = D.Distribution._validate_args
    try:
        D.Distribution.set_default_validate_args(False)
        D.Normal(0.0, -1.0)
        D.Bernoulli(0.5).log_prob(fg.tensor(0.5))
        with pytest.raises(ValueError):
            D.Normal(0.0, -1.0, validate_args=True)
        D.Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError):
            D.Normal(0.0, -1.0)
        with pytest.raises(ValueError):
            D.Distribution.set_default_validate_args(3)
    finally:
        D.Distribution.set_default_validate_args(before)
    assert D.Normal(0.0, 1.0, validate_args=False).expand((2,))._validate_args is False


def test_reprs():
    assert repr(D.Normal(0.0, 1.0)) == "Normal(loc: 0.0, scale: 1.0)"
    assert repr(D.Normal(fg.zeros(2), 1.0)) == "Normal(loc: torch.Size([2]), scale: torch.Size([2]))"
    assert repr(D.Categorical(logits=fg.zeros(2, 3))) == "Categorical(logits: torch.Size([2, 3]))"
    b = D.Bernoulli(logits=fg.zeros(3))
    assert repr(b) == "Bernoulli(logits: torch.Size([3]))"
    b.probs                                             # computed on first use, then shown
    assert repr(b) == "Bernoulli(probs: torch.Size([3]), logits: torch.Size([3]))"
    assert repr(D.Uniform(0.0, 2.0)) == "Uniform(low: 0.0, high: 2.0)"
    C = D.constraints
    assert [repr(c) for c in (C.real, C.positive, C.simplex, C.real_vector, C.unit_interval,
                              C.boolean, C.nonnegative, C.dependent)] == [
        "Real()", "GreaterThan(lower_bound=0.0)", "Simplex()", "IndependentConstraint(Real(), 1)",
        "Interval(lower_bound=0.0, upper_bound=1.0)", "Boolean()", "GreaterThanEq(lower_bound=0.0)",
        "Dependent()"]


# -- kl_divergence dispatch -------------------------------------------------------------------------

def test_kl_dispatch_registration_and_errors():
    with pytest.raises(NotImplementedError, match="No KL\\(p \\|\\| q\\) is implemented for p type "
                                                  "Normal and q type Categorical"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Categorical(fg.ones(2)))

    class Wide(D.Normal):
        pass

    w, n = Wide(0.0, 2.0), D.Normal(1.0, 1.0)
    _close(D.kl_divergence(w, n), [math.log(0.5) + (4 + 1) / 2 - 0.5], rtol=1e-6)  # Normal's

    @D.register_kl(Wide, D.Normal)
    def _wide_normal(p, q):
        return fg.tensor(-7.0)

    assert D.kl_divergence(w, n).item() == -7.0          # the more specific pair wins
    assert D.kl_divergence(n, w).item() != -7.0

    @D.register_kl(D.Normal, Wide)
    def _normal_wide(p, q):
        return fg.tensor(-8.0)

    with pytest.warns(RuntimeWarning, match="Ambiguous kl_divergence"):
        D.kl_divergence(w, Wide(0.0, 1.0))


# -- comparison with torch ----------------------------------------------------------------------------

@pytest.fixture
def torch():
    lib = reference_torch()
    if lib is None:
        pytest.skip("needs torch installed, and the suite run on fastgrad")
    return lib


def test_values_reprs_and_draws_equal_torch(torch):
    def cases(T):
        Dn = T.distributions
        f = lambda a: T.tensor(np.asarray(a))           # noqa: E731  (float64)
        n = Dn.Normal(f(LOC), f(SCALE))
        c = Dn.Categorical(probs=f(PROBS))
        cl = Dn.Categorical(logits=f(LOGITS))
        b = Dn.Bernoulli(logits=f(LOGITS[0]))
        u = Dn.Uniform(f(LOC), f(LOC + SCALE))
        x = f(VALUE)
        k = T.tensor([[0, 3, 1], [2, 2, 0]])
        T.manual_seed(11)
        draws = [n.sample((4,)), n.rsample((4,)), c.sample((5,)), cl.sample((2, 3)),
                 b.sample((3,)), u.rsample((4,)), Dn.Normal(0.0, 1.0).sample((6,))]
        values = [n.log_prob(x), n.entropy(), n.cdf(x), c.log_prob(k), c.entropy(), cl.log_prob(k),
                  cl.entropy(), b.log_prob((f(LOGITS[1]) > 0).double()), b.entropy(),
                  u.log_prob(f(LOC + 0.5 * SCALE)), u.entropy(),
                  Dn.kl_divergence(n, Dn.Normal(f(LOC[::-1].copy()), f(SCALE))),
                  Dn.kl_divergence(c, cl), Dn.kl_divergence(b, Dn.Bernoulli(f(BPROBS[:4])))]
        reprs = [repr(d) for d in (n, c, cl, b, u, Dn.Normal(0.0, 1.0), Dn.Bernoulli(0.25))]
        return draws, values, reprs

    (fd, fv, fr), (td, tv, tr) = cases(fg), cases(torch)
    for a, b in zip(fd, td):
        assert a.dtype.__repr__() == b.dtype.__repr__()
        np.testing.assert_array_equal(_np(a), b.detach().double().numpy())   # same streams
    for a, b in zip(fv, tv):
        np.testing.assert_allclose(_np(a), b.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert fr == tr


def test_gradients_equal_torch(torch):
    def grads(T):
        Dn = T.distributions
        loc = T.tensor(LOC, requires_grad=True)
        scale = T.tensor(SCALE, requires_grad=True)
        logits = T.tensor(LOGITS, requires_grad=True)
        probs = T.tensor(BPROBS[:4], requires_grad=True)
        n = Dn.Normal(loc, scale)
        T.manual_seed(5)
        loss = (n.log_prob(T.tensor(VALUE)).sum() + n.rsample((3,)).pow(2).sum()
                + Dn.Categorical(logits=logits).entropy().sum()
                + Dn.Categorical(logits=logits).log_prob(T.tensor([1, 0, 3])).sum()
                + Dn.kl_divergence(Dn.Bernoulli(probs), Dn.Bernoulli(logits=logits[0])).sum())
        loss.backward()
        return [loss.detach(), loc.grad, scale.grad, logits.grad, probs.grad]

    fgs, tgs = grads(fg), grads(torch)
    np.testing.assert_allclose(float(fgs[0]), float(tgs[0]), rtol=1e-12)
    for a, b in zip(fgs[1:], tgs[1:]):
        np.testing.assert_allclose(_np(a), b.numpy(), rtol=1e-10, atol=1e-12)


# -- a policy gradient that has to work ------------------------------------------------------------

def test_reinforce_learns_a_bandits_best_arm():
    """A 6-armed bandit with Gaussian rewards: a softmax policy trained by REINFORCE (with a
    running-mean baseline and an entropy bonus) puts most of its mass on the best arm."""
    rng = np.random.default_rng(4)
    means = rng.normal(0.0, 1.0, size=6)
    best = int(np.argmax(means))
    assert np.sort(means)[-1] - np.sort(means)[-2] > 0.2        # a clear winner to find
    fg.manual_seed(0)
    logits = fg.zeros(6, requires_grad=True)
    opt = fg.optim.Adam([logits], lr=0.05)
    baseline = 0.0
    for _ in range(300):
        policy = D.Categorical(logits=logits)
        arms = policy.sample((16,))
        reward = fg.tensor(means[arms.numpy()] + rng.normal(0.0, 0.5, size=16), dtype=fg.float32)
        advantage = reward - baseline
        loss = -(policy.log_prob(arms) * advantage).mean() - 0.01 * policy.entropy()
        opt.zero_grad()
        loss.backward()
        opt.step()
        baseline = 0.9 * baseline + 0.1 * float(reward.mean())
    probs = D.Categorical(logits=logits.detach()).probs
    assert int(probs.argmax()) == best
    assert float(probs[best]) > 0.9


def test_a_subclass_without_constraints_warns_and_skips_validation():
    class Bare(D.Distribution):
        pass

    with pytest.warns(UserWarning, match="does not define `arg_constraints`"):
        Bare(validate_args=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Bare(validate_args=False)
    d = Bare(validate_args=False)
    d._validate_args = True
    with pytest.warns(UserWarning, match="does not define `support`"):
        d._validate_sample(fg.zeros(2))
    with pytest.raises(NotImplementedError):
        d.rsample()

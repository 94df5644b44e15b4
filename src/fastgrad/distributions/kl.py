"""kl_divergence(p, q) and register_kl: KL(p || q) by the most specific function registered
for the pair of types."""
import math
import warnings

import fastgrad
import fastgrad.nn.functional as F
from fastgrad.distributions.bernoulli import Bernoulli
from fastgrad.distributions.categorical import Categorical
from fastgrad.distributions.distribution import Distribution
from fastgrad.distributions.independent import Independent
from fastgrad.distributions.multivariate_normal import (MultivariateNormal, _batch_mahalanobis,
                                                        _half_log_det)
from fastgrad.distributions.normal import Normal
from fastgrad.distributions.uniform import Uniform
from fastgrad.distributions.utils import sum_rightmost

__all__ = ["kl_divergence", "register_kl"]

_REGISTRY = {}          # (type_p, type_q) -> function, as registered
_LOOKUP = {}            # (type(p), type(q)) -> function found for them (None: none), a cache


def register_kl(type_p, type_q):
    """Decorator registering fn(p, q) as KL(p || q) for p of type_p and q of type_q (and
    their subclasses, unless a more specific pair is registered)."""
    for t in (type_p, type_q):
        if not (isinstance(t, type) and issubclass(t, Distribution)):
            raise TypeError(f"Expected a Distribution subclass for register_kl, but got {t!r}")

    def decorator(fn):
        _REGISTRY[type_p, type_q] = fn
        _LOOKUP.clear()
        return fn
    return decorator


def _dispatch(type_p, type_q):
    """The function of the registered pair closest to (type_p, type_q): nearest in p's MRO
    first, then in q's. When ranking q first picks another function, the pair is ambiguous:
    warn, and keep the p-first choice."""
    mro_p, mro_q = type_p.__mro__, type_q.__mro__
    pairs = [(mro_p.index(p), mro_q.index(q), p, q) for p, q in _REGISTRY
             if issubclass(type_p, p) and issubclass(type_q, q)]
    if not pairs:
        return None
    by_p = min(pairs, key=lambda m: (m[0], m[1]))
    by_q = min(pairs, key=lambda m: (m[1], m[0]))
    fn = _REGISTRY[by_p[2], by_p[3]]
    if _REGISTRY[by_q[2], by_q[3]] is not fn:
        warnings.warn(f"Ambiguous kl_divergence({type_p.__name__}, {type_q.__name__}). "
                      f"Please register_kl({by_p[2].__name__}, {by_q[3].__name__})",
                      RuntimeWarning, stacklevel=3)
    return fn


def kl_divergence(p, q):
    """KL(p || q), one value per batch entry (shape: p's and q's batch shapes broadcast).
    NotImplementedError when no function is registered for the pair of types."""
    key = type(p), type(q)
    if key not in _LOOKUP:
        _LOOKUP[key] = _dispatch(*key)
    fn = _LOOKUP[key]
    if fn is None:
        raise NotImplementedError(f"No KL(p || q) is implemented for p type "
                                  f"{type(p).__name__} and q type {type(q).__name__}; "
                                  f"register one with @register_kl({type(p).__name__}, "
                                  f"{type(q).__name__})")
    return fn(p, q)


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale).pow(2)
    t1 = ((p.loc - q.loc) / q.scale).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    # log|Lq| - log|Lp| + (tr((Lq^-1 Lp)(Lq^-1 Lp)^T) + |Lq^-1 (mq - mp)|^2 - n) / 2
    if p.event_shape != q.event_shape:
        raise ValueError("KL-divergence between two Multivariate Normals with different event "
                         "shapes cannot be computed")
    Lp, Lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    n = p.event_shape[0]
    X = fastgrad.linalg.solve_triangular(Lq, Lp, upper=False)
    term2 = X.pow(2).sum((-2, -1))
    term3 = _batch_mahalanobis(Lq, q.loc - p.loc)
    return _half_log_det(Lq) - _half_log_det(Lp) + 0.5 * (term2 + term3 - n)


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    # p log(p/q) + (1-p) log((1-p)/(1-q)) through softplus of the logits (stable); a term
    # whose weight is 0 is 0, one whose q is 0 against a non-zero weight is inf
    t1 = p.probs * (F.softplus(-q.logits) - F.softplus(-p.logits))
    t1 = fastgrad.where(p.probs == 0, 0.0, fastgrad.where(q.probs == 0, math.inf, t1))
    t2 = (1 - p.probs) * (F.softplus(q.logits) - F.softplus(p.logits))
    t2 = fastgrad.where(p.probs == 1, 0.0, fastgrad.where(q.probs == 1, math.inf, t2))
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = fastgrad.where(p.probs == 0, 0.0, fastgrad.where(q.probs == 0, math.inf, t))
    return t.sum(-1)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    result = ((q.high - q.low) / (p.high - p.low)).log()
    return fastgrad.where((q.low > p.low) | (q.high < p.high), math.inf, result)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("KL between Independent distributions is implemented only "
                                  "for equal reinterpreted_batch_ndims")
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)

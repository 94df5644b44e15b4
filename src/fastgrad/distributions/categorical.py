"""Categorical(probs | logits): one of K classes per batch entry."""
import math

import fastgrad
from fastgrad._core.tensor import TensorBase
from fastgrad.distributions import constraints
from fastgrad.distributions.distribution import Distribution
from fastgrad.distributions.utils import (broadcast_tensors, finfo_min, lazy_property,
                                          logits_to_probs, one_parameter, probs_to_logits)

__all__ = ["Categorical"]


def _one_tensor_parameter(probs, logits):
    """The one parameter given, checked to be a tensor of dim >= 1."""
    name, value = one_parameter(probs, logits)
    if not isinstance(value, TensorBase):
        raise TypeError(f"`{name}` must be a Tensor, got {type(value).__name__}")
    if value.dim() < 1:
        raise ValueError(f"`{name}` parameter must be at least one-dimensional.")
    return name, value


class Categorical(Distribution):
    """Integers 0 .. K-1 with K = param.size(-1); the leading dims of the parameter are the
    batch. `probs` (non-negative, finite, non-zero sum) is normalised to sum to 1 over the last
    dim; `logits` (unnormalised log-probabilities) is normalised so that its exp does. Both are
    kept normalised: `.probs` and `.logits` return the normalised values."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        name, value = _one_tensor_parameter(probs, logits)
        if name == "probs":
            self.probs = value / value.sum(-1, keepdim=True)
        else:
            self.logits = value - value.logsumexp(dim=-1, keepdim=True)
        self._param = self.probs if name == "probs" else self.logits
        self._num_events = self._param.size()[-1]
        batch_shape = self._param.size()[:-1] if self._param.dim() > 1 else ()
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Categorical, _instance)
        batch_shape = fastgrad.Size(batch_shape)
        param_shape = batch_shape + (self._num_events,)
        for name in ("probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, self.__dict__[name].expand(param_shape))
                new._param = new.__dict__[name]
        new._num_events = self._num_events
        return self._expanded(new, batch_shape)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @property
    def param_shape(self):
        return self._param.size()

    @property
    def mean(self):
        return fastgrad.full(self._extended_shape(), math.nan, dtype=self.probs.dtype)

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    @property
    def variance(self):
        return fastgrad.full(self._extended_shape(), math.nan, dtype=self.probs.dtype)

    def sample(self, sample_shape=()):
        sample_shape = fastgrad.Size(sample_shape)
        rows = self.probs.reshape(-1, self._num_events)
        draws = fastgrad.multinomial(rows, sample_shape.numel(), True).T
        return draws.reshape(self._extended_shape(sample_shape))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value, log_pmf = broadcast_tensors(value.long().unsqueeze(-1), self.logits)
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def entropy(self):
        # a probability of 0 has logit -inf: clamped, its term is 0 * (finite) = 0, not NaN
        logits = self.logits.clamp(min=finfo_min(self.logits.dtype))
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        values = fastgrad.arange(self._num_events).view((-1,) + (1,) * len(self._batch_shape))
        if expand:
            values = values.expand((-1,) + self._batch_shape)
        return values

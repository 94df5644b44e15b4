"""Distribution: the base of fastgrad.distributions, as torch.distributions.Distribution.

A distribution has a batch_shape (independent distributions side by side, one per set of
parameters) and an event_shape (the shape of one draw). sample(sample_shape) returns
sample_shape + batch_shape + event_shape; log_prob(value) returns one number per event.
Everything is composed of recorded fastgrad ops, so log_prob, entropy and rsample are
differentiable in the parameters."""
import warnings

import fastgrad
from fastgrad._core.tensor import TensorBase
from fastgrad.distributions import constraints
from fastgrad.distributions.utils import lazy_property

__all__ = ["Distribution"]


class Distribution:
    """Base class of the probability distributions.

    batch_shape: the shape over which parameters are batched; event_shape: the shape of one
    sample; validate_args: check parameters (and values passed to log_prob) against their
    constraints (None: the default set by set_default_validate_args, True unless python -O)."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = __debug__

    @staticmethod
    def set_default_validate_args(value):
        """Turn argument validation on or off for distributions made without validate_args."""
        if value not in (True, False):
            raise ValueError(f"set_default_validate_args expects True or False, got {value!r}")
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = fastgrad.Size(batch_shape)
        self._event_shape = fastgrad.Size(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            self._check_parameters()
        super().__init__()

    def _declared(self, attr, what):
        """self.<attr>, or None with a warning when the class does not define it."""
        try:
            return getattr(self, attr)
        except NotImplementedError:
            warnings.warn(f"{self.__class__} does not define `{attr}`, so its {what} cannot be "
                          f"validated: define it (`arg_constraints = {{}}` for none), or "
                          f"initialize the distribution with `validate_args=False` to turn off "
                          f"validation.", stacklevel=4)
            return None

    def _check_parameters(self):
        arg_constraints = self._declared("arg_constraints", "parameters")
        if arg_constraints is None:
            return
        for name, constraint in arg_constraints.items():
            if constraints.is_dependent(constraint):
                continue
            if name not in self.__dict__ and isinstance(getattr(type(self), name, None),
                                                        lazy_property):
                continue                  # computed from another parameter: nothing to check
            value = getattr(self, name)
            if not bool(constraint.check(value).all()):
                raise ValueError(
                    f"Expected parameter {name} ({type(value).__name__} of shape "
                    f"{tuple(value.shape)}) of distribution {self!r} to satisfy the constraint "
                    f"{constraint!r}, but found invalid values:\n{value}")

    def expand(self, batch_shape, _instance=None):
        """A distribution with the parameters expanded (views, no copies) to batch_shape."""
        raise NotImplementedError(f"{type(self).__name__} does not implement expand()")

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def event_shape(self):
        return self._event_shape

    @property
    def arg_constraints(self):
        """{parameter name: Constraint} that validation checks."""
        raise NotImplementedError

    @property
    def support(self):
        """The Constraint that values of this distribution satisfy."""
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError(f"{self.__class__} does not implement mean")

    @property
    def mode(self):
        raise NotImplementedError(f"{self.__class__} does not implement mode")

    @property
    def variance(self):
        raise NotImplementedError(f"{self.__class__} does not implement variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def sample(self, sample_shape=()):
        """A draw of shape sample_shape + batch_shape + event_shape, outside the graph."""
        with fastgrad.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        """A reparameterised draw: differentiable in the parameters."""
        raise NotImplementedError(f"{self.__class__} does not implement rsample")

    def log_prob(self, value):
        raise NotImplementedError(f"{self.__class__} does not implement log_prob")

    def cdf(self, value):
        raise NotImplementedError(f"{self.__class__} does not implement cdf")

    def icdf(self, value):
        raise NotImplementedError(f"{self.__class__} does not implement icdf")

    def enumerate_support(self, expand=True):
        raise NotImplementedError(f"{self.__class__} does not implement enumerate_support")

    def entropy(self):
        raise NotImplementedError(f"{self.__class__} does not implement entropy")

    def perplexity(self):
        return self.entropy().exp()

    def _extended_shape(self, sample_shape=()):
        """sample_shape + batch_shape + event_shape."""
        return fastgrad.Size(tuple(sample_shape) + self._batch_shape + self._event_shape)

    def _validate_sample(self, value):
        """The checks log_prob (cdf) runs on `value` when validating: a tensor, whose rightmost
        dims match event_shape, broadcastable with batch_shape + event_shape, in the support."""
        if not isinstance(value, TensorBase):
            raise ValueError("The value argument to log_prob must be a Tensor")
        shape = fastgrad.Size(value.shape)
        start = len(shape) - len(self._event_shape)
        if fastgrad.Size(shape[start:]) != self._event_shape:
            raise ValueError(f"The right-most size of value must match event_shape: "
                             f"{shape} vs {self._event_shape}.")
        expected = fastgrad.Size(self._batch_shape + self._event_shape)
        for i, j in zip(reversed(shape), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"Value is not broadcastable with batch_shape+event_shape: "
                                 f"{shape} vs {expected}.")
        support = self._declared("support", "values")
        if support is None:
            return
        if not bool(support.check(value).all()):
            raise ValueError(
                f"Expected value argument ({type(value).__name__} of shape {tuple(shape)}) to "
                f"be within the support ({support!r}) of the distribution {self!r}, but found "
                f"invalid values:\n{value}")

    def _get_checked_instance(self, cls, _instance=None):
        """The bare instance expand() fills: `_instance`, or a new one of type(self)."""
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(
                f"Subclass {type(self).__name__} of {cls.__name__} that defines a custom "
                f"__init__ method must also define a custom .expand() method.")
        return self.__new__(type(self)) if _instance is None else _instance

    def _expanded(self, new, batch_shape, event_shape=()):
        """Finish an expand(): new's shapes set without validation, the flag copied."""
        Distribution.__init__(new, batch_shape, event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def __repr__(self):
        shown = []
        for name in self.arg_constraints:
            if name in self.__dict__:
                v = self.__dict__[name]
                shown.append(f"{name}: {v if v.numel() == 1 else v.size()}")
        return f"{type(self).__name__}({', '.join(shown)})"

"""torch.distributions for fastgrad: the distributions that policy-gradient, actor-critic and
VAE code uses (Normal, MultivariateNormal, Categorical, Bernoulli, Uniform, Independent),
kl_divergence with register_kl, and constraints for argument validation. They are composed of fastgrad's recorded
ops, so log_prob, entropy, kl_divergence and rsample are differentiable in the parameters;
sample() draws from PyTorch's random streams, so a seeded program draws what PyTorch draws."""
from fastgrad.distributions import constraints
from fastgrad.distributions.bernoulli import Bernoulli
from fastgrad.distributions.categorical import Categorical
from fastgrad.distributions.distribution import Distribution
from fastgrad.distributions.independent import Independent
from fastgrad.distributions.kl import kl_divergence, register_kl
from fastgrad.distributions.multivariate_normal import MultivariateNormal
from fastgrad.distributions.normal import Normal
from fastgrad.distributions.uniform import Uniform

__all__ = ["Bernoulli", "Categorical", "Distribution", "Independent", "MultivariateNormal",
           "Normal", "Uniform", "constraints", "kl_divergence", "register_kl"]

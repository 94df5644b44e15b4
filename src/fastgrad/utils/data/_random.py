"""Every random draw the samplers, random_split and DataLoader make, in one place.

They make PyTorch's calls in PyTorch's order (RandomSampler without a generator draws a seed from
the global stream with `empty((), dtype=int64).random_()` and permutes with a Generator seeded
from it; a DataLoader iterator draws its workers' base seed the same way, from its generator), and
fastgrad's streams are PyTorch's, so shuffled orders and splits are PyTorch's too."""
import fastgrad


def seed_from(generator=None):
    """An int64 seed drawn from `generator` (None: the global stream)."""
    return int(fastgrad.empty((), dtype=fastgrad.int64).random_(generator=generator).item())


def new_generator(seed):
    """A fastgrad.Generator seeded with `seed`."""
    g = fastgrad.Generator()
    g.manual_seed(seed)
    return g


def randperm(n, generator=None):
    """A random permutation of range(n) as an int64 NumPy array."""
    return fastgrad.randperm(n, generator=generator).numpy()


def randint(high, count, generator=None):
    """`count` ints uniform on [0, high) as an int64 NumPy array."""
    return fastgrad.randint(0, high, (count,), dtype=fastgrad.int64, generator=generator).numpy()


def multinomial(weights, count, replacement, generator=None):
    """`count` indices drawn with probability proportional to the float64 tensor `weights`."""
    return fastgrad.multinomial(weights, count, replacement, generator=generator).tolist()

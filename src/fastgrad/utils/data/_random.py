"""Every random draw the samplers, random_split and DataLoader make, in one place.

They make PyTorch's calls in PyTorch's order (RandomSampler without a generator draws a seed from
the global stream with `empty((), dtype=int64).random_()` and permutes with a Generator seeded
from it; a DataLoader iterator draws its workers' base seed the same way, from its generator), so
that where fastgrad's random streams match PyTorch's, shuffled orders and splits match too.
Where fastgrad lacks one of those calls (Generator, Tensor.random_, multinomial), the draw falls
back to fastgrad's own generator: the order is then fastgrad's, not PyTorch's."""
import fastgrad


def seed_from(generator=None):
    """An int64 seed drawn from `generator` (None: the global stream)."""
    t = fastgrad.empty((), dtype=fastgrad.int64)
    if hasattr(t, "random_"):
        return int(t.random_(generator=generator).item())
    return int(fastgrad.randint(0, 2 ** 63 - 1, (1,), generator=generator)[0].item())


def new_generator(seed):
    """A generator seeded with `seed` (fastgrad.Generator, else the stream randperm takes)."""
    if hasattr(fastgrad, "Generator"):
        g = fastgrad.Generator()
        g.manual_seed(seed)
        return g
    import numpy as np
    return np.random.default_rng(seed)


def randperm(n, generator=None):
    """A random permutation of range(n) as an int64 NumPy array."""
    return fastgrad.randperm(n, generator=generator).numpy()


def randint(high, count, generator=None):
    """`count` ints uniform on [0, high) as an int64 NumPy array."""
    return fastgrad.randint(0, high, (count,), dtype=fastgrad.int64, generator=generator).numpy()


def multinomial(weights, count, replacement, generator=None):
    """`count` indices drawn with probability proportional to the float64 tensor `weights`."""
    if hasattr(fastgrad, "multinomial"):
        return fastgrad.multinomial(weights, count, replacement, generator=generator).tolist()
    import numpy as np
    from fastgrad._creation import default_generator
    g = generator if isinstance(generator, np.random.Generator) else default_generator()
    w = weights.numpy()
    return g.choice(len(w), size=count, replace=replacement, p=w / w.sum()).tolist()

"""Samplers: the orders in which a DataLoader visits a map-style dataset's indices."""
import itertools

import numpy as np

from fastgrad.utils.data import _random


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")


class Sampler:
    """Base class: subclasses define __iter__ (and __len__ when they can)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def _index_chunks(self):
        """The same indices as __iter__, as int64 arrays (BatchSampler._index_batches)."""
        yield np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices (replacement=False), or num_samples indices drawn
    uniformly with replacement. Without a generator each epoch draws a fresh seed from the global
    stream, as PyTorch does."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        _positive_int("num_samples", self.num_samples)

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        for chunk in self._index_chunks():
            yield from chunk.tolist()

    def _index_chunks(self):
        """The indices as int64 arrays, drawn lazily in PyTorch's order: with replacement 32 at a
        time, else one permutation per len(data_source) samples."""
        n = len(self.data_source)
        generator = self.generator
        if generator is None:
            generator = _random.new_generator(_random.seed_from(None))
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield _random.randint(n, 32, generator)
            yield _random.randint(n, self.num_samples % 32, generator)
        else:
            for _ in range(self.num_samples // n):
                yield _random.randperm(n, generator)
            yield _random.randperm(n, generator)[:self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in _random.randperm(len(self.indices), self.generator).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices of range(len(weights)), index i drawn with probability proportional to
    weights[i] (with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        _positive_int("num_samples", num_samples)
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement!r}")
        from fastgrad import as_tensor, float64
        weights = as_tensor(weights, dtype=float64)
        if weights.dim() != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(weights.shape)}")
        self.weights = weights
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        yield from _random.multinomial(self.weights, self.num_samples, self.replacement,
                                       self.generator)

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of batch_size (the last one shorter unless
    drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        _positive_int("batch_size", batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        it = iter(self.sampler)
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def _index_batches(self):
        """The same batches as __iter__, as int64 arrays sliced from the sampler's index chunks
        when it has them (no Python step per index), drawn at the same moments."""
        chunks = None
        if type(self.sampler).__iter__ in (SequentialSampler.__iter__, RandomSampler.__iter__):
            chunks = self.sampler._index_chunks
        if chunks is None:
            for batch in self:
                yield np.array(batch, dtype=np.int64)
            return
        size, pending = self.batch_size, None
        for chunk in chunks():
            pending = chunk if pending is None else np.concatenate((pending, chunk))
            full = len(pending) - len(pending) % size
            for start in range(0, full, size):
                yield pending[start:start + size]
            pending = pending[full:]
        if pending is not None and len(pending) and not self.drop_last:
            yield pending

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

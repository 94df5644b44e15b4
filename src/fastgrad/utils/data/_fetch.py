"""Fetchers: turn one entry of the index sampler into one batch, in the main process or in a
worker. A map-style fetch reads dataset[i] per index and collates; a TensorDataset (or Subsets of
one, as random_split makes) under the default collate instead gathers the whole batch with one
index operation per tensor (the same tensors default_collate would stack, without a Python step
per sample)."""
import numpy as np

from fastgrad.utils.data._collate import default_collate
from fastgrad.utils.data.dataset import Subset, TensorDataset


def _note_index(exc, index):
    if isinstance(index, np.ndarray):
        index = index.tolist()
    what = "indices" if isinstance(index, list) else "index"
    if hasattr(exc, "add_note"):
        exc.add_note(f"(raised while the DataLoader fetched {what} {index!r} from the dataset)")


def _gather_source(dataset):
    """(the TensorDataset under `dataset`, the Subsets' index lists from the outside in) when
    `dataset` is a TensorDataset or Subsets of one (none of them overriding how an item is
    read); else None."""
    maps = []
    while type(dataset) is Subset:
        maps.append(dataset.indices)
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__:
        return dataset, maps
    return None


def gathers(dataset, auto_collation, collate_fn):
    """True when batches of `dataset` are gathered one index operation per tensor."""
    return (auto_collation and collate_fn is default_collate
            and _gather_source(dataset) is not None)


class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        self.gather = gathers(dataset, auto_collation, collate_fn)
        if self.gather:
            source, maps = _gather_source(dataset)
            self.tensors = source.tensors
            self.maps = [np.asarray(m, dtype=np.int64) for m in maps]
        self.getitems = getattr(dataset, "__getitems__", None)

    def fetch(self, index):
        dataset = self.dataset
        if not self.auto_collation:
            try:
                return self.collate_fn(dataset[index])
            except Exception as exc:
                _note_index(exc, index)
                raise
        if self.gather:
            return self._gather(index)
        if self.getitems is not None:
            try:
                data = self.getitems(index)
            except Exception as exc:
                _note_index(exc, index)
                raise
            return self.collate_fn(data)
        data = []
        try:
            for i in index:
                data.append(dataset[i])
        except Exception as exc:
            _note_index(exc, i)
            raise
        return self.collate_fn(data)

    def _gather(self, index):
        # default_collate of [(t[i] for t in tensors) for i in index] is a list of stacked
        # fields; one gather per tensor builds the same list
        idx = index if isinstance(index, np.ndarray) else np.array(index, dtype=np.int64)
        try:
            for m in self.maps:
                idx = m[idx]
            return [t[idx] for t in self.tensors]
        except Exception as exc:
            _note_index(exc, index)
            raise


class IterableFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.it = iter(dataset)
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.it))
        data = []
        for _ in index:
            try:
                data.append(next(self.it))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last):
    cls = IterableFetcher if iterable else MapFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)

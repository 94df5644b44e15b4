"""default_collate (a list of samples -> a batch) and default_convert (one sample, when automatic
batching is off), with PyTorch's rules: tensors and NumPy arrays stack into a tensor with a new
first dimension, Python floats become float64 and ints int64, strings stay a list, and tuples,
lists, dicts and namedtuples are collated field by field (a tuple of fields becomes a list)."""
import collections.abc
import copy
import re

import numpy as np

import fastgrad
from fastgrad._core.tensor import TensorBase

_STR_OR_OBJECT = re.compile(r"[SaUO]")


def _type_error(what):
    return TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                     f"or lists; found {what}. Pass a collate_fn for other types.")


def _same_mapping(elem, values):
    """`values` (a dict) as a mapping of elem's type, as PyTorch rebuilds one."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _same_sequence(elem, values):
    """`values` (a list) as a sequence of elem's type, as PyTorch rebuilds one."""
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """Stack a list of samples into a batch (see the module docstring for the rules)."""
    elem = batch[0]
    if isinstance(elem, TensorBase):
        return fastgrad.stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if _STR_OR_OBJECT.search(elem.dtype.str):
            raise _type_error(elem.dtype)
        return fastgrad.stack([fastgrad.as_tensor(b) for b in batch], 0)
    if isinstance(elem, (np.bool_, np.number)):
        return fastgrad.as_tensor(np.array(batch))
    if isinstance(elem, float):
        return fastgrad.tensor(batch, dtype=fastgrad.float64)
    if isinstance(elem, int):                          # bool included: a bool tensor
        return fastgrad.tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _same_mapping(elem, {key: default_collate([d[key] for d in batch])
                                    for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):          # namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        collated = [default_collate(s) for s in zip(*batch)]
        return collated if isinstance(elem, tuple) else _same_sequence(elem, collated)
    raise _type_error(type(elem))


def default_convert(data):
    """One sample as a DataLoader with batch_size=None returns it: NumPy arrays and scalars
    become tensors, containers are converted element by element, the rest is left as is."""
    if isinstance(data, TensorBase):
        return data
    if isinstance(data, np.ndarray):
        return data if _STR_OR_OBJECT.search(data.dtype.str) else fastgrad.as_tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return fastgrad.as_tensor(data)
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        return _same_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        return _same_sequence(data, [default_convert(d) for d in data])
    return data

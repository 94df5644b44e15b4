"""Variable-length sequences for the recurrent layers: PackedSequence, pack/pad (torch's names).

A PackedSequence holds the time steps of a batch of sequences sorted by decreasing length, step
by step: rows of step t are the bs[t] sequences still running (Note [Packed layout] in
_core/ops_rnn.pyx). Packing and unpacking are row gathers (index_select), so gradients flow
through them.
"""
from collections import namedtuple

import numpy as np

import fastgrad

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence", "invert_permutation"]


def _idx(values):
    return fastgrad.tensor(np.asarray(values, dtype=np.int64))


def invert_permutation(permutation):
    if permutation is None:
        return None
    p = np.asarray(permutation.numpy(), dtype=np.int64)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.shape[0], dtype=np.int64)
    return _idx(inv)


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """data (sum(lengths), *) and batch_sizes (int64, one per time step); sorted_indices maps
    packed batch position -> original position (None when the input was already sorted)."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise TypeError("PackedSequence needs batch_sizes; build one with "
                            "pack_padded_sequence or pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else type(self)(data, self.batch_sizes,
                                                         self.sorted_indices,
                                                         self.unsorted_indices)

    @property
    def is_cuda(self):
        return False

    def is_pinned(self):
        return False


def _lengths(lengths):
    if isinstance(lengths, fastgrad.Tensor):
        return np.asarray(lengths.numpy(), dtype=np.int64).reshape(-1)
    return np.asarray(list(lengths), dtype=np.int64).reshape(-1)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences of `lengths`."""
    lens = _lengths(lengths)
    if enforce_sorted:
        if np.any(lens[1:] > lens[:-1]):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                "pack_sequence to sidestep this requirement if you do not need ONNX "
                "exportability.")
        sorted_indices = None
        order = np.arange(lens.shape[0])
    else:
        order = np.argsort(-lens, kind="stable")
        sorted_indices = _idx(order)
    if batch_first:
        input = input.transpose(0, 1)
    T, B = input.shape[0], input.shape[1]
    if lens.shape[0] != B:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{lens.shape[0]} (batch_size={B})")
    slens = lens[order]
    if B and slens[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if B and slens[0] > T:
        raise RuntimeError(f"a length ({int(slens[0])}) is larger than the padded sequence "
                           f"length {T}: check `lengths` and batch_first")
    steps = int(slens[0]) if B else 0
    batch_sizes = np.array([(slens > t).sum() for t in range(steps)], dtype=np.int64)
    rows = np.concatenate([t * B + order[:batch_sizes[t]] for t in range(steps)]) \
        if steps else np.zeros(0, dtype=np.int64)
    flat = input.reshape((T * B,) + tuple(input.shape[2:]))
    data = flat.index_select(0, _idx(rows))
    return PackedSequence(data, _idx(batch_sizes), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths int64)."""
    data, batch_sizes, sorted_indices, unsorted_indices = sequence
    bs = np.asarray(batch_sizes.numpy(), dtype=np.int64)
    steps, B = bs.shape[0], int(bs[0]) if bs.shape[0] else 0
    T = steps
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {steps}")
        T = total_length
    n = data.shape[0]
    # row (t, i) of the padded batch: packed row off[t] + i, or the padding row n
    src = np.full((T, B), n, dtype=np.int64)
    off = 0
    for t in range(steps):
        src[t, :bs[t]] = np.arange(off, off + bs[t])
        off += bs[t]
    pad = fastgrad.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    out = fastgrad.cat([data, pad], 0).index_select(0, _idx(src.reshape(-1)))
    out = out.reshape((T, B) + tuple(data.shape[1:]))
    lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1) if steps else np.zeros(0, np.int64)
    if unsorted_indices is not None:
        out = out.index_select(1, unsorted_indices)
        lengths = lengths[np.asarray(unsorted_indices.numpy(), dtype=np.int64)]
    if batch_first:
        out = out.transpose(0, 1)
    return out, _idx(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shape (L_i, *) into (max L, B, *) (or (B, max L, *)), padded."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    if isinstance(sequences, fastgrad.Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    longest = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        short = longest - s.shape[0]
        if short:
            fill = fastgrad.full((short,) + tuple(s.shape[1:]), padding_value, dtype=s.dtype)
            s = fastgrad.cat([s, fill] if padding_side == "right" else [fill, s], 0)
        rows.append(s)
    return fastgrad.stack(rows, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[i, :int(n)] for i, n in enumerate(_lengths(lengths))]


def pack_sequence(sequences, enforce_sorted=True):
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)

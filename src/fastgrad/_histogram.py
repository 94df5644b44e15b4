"""fastgrad.histogram: counts of a float tensor's values in equal-width or given bins (not
differentiable, as in PyTorch)."""
from collections import namedtuple

import numpy as np

from fastgrad._core.tensor import TensorBase
from fastgrad._creation import from_numpy

histogram_result = namedtuple("histogram", ["hist", "bin_edges"])


def histogram(input, bins=100, *, range=None, weight=None, density=False, out=None):
    """(hist, bin_edges): `bins` equal bins over `range` (default: the values' min and max), or
    the edges given as a 1-D tensor. The last bin includes its right edge; values outside the
    edges are not counted. density=True divides by the total count times the bin width."""
    if not isinstance(input, TensorBase):
        raise TypeError(f"histogram(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    x = input.detach().numpy()
    if x.dtype.kind != "f":
        raise NotImplementedError(f"\"histogramdd\" not implemented for {input.dtype}; convert "
                                  f"the input with .float()")
    if isinstance(bins, TensorBase):
        edges = bins.detach().numpy().astype(x.dtype)
    else:
        if int(bins) <= 0:
            raise RuntimeError(f"histogram(): bins must be > 0, but got {bins}")
        edges = int(bins)
    w = None if weight is None else weight.detach().numpy()
    hist, edges = np.histogram(x, bins=edges, range=range, weights=w, density=density)
    result = histogram_result(from_numpy(hist.astype(x.dtype)),
                              from_numpy(np.asarray(edges, dtype=x.dtype)))
    if out is not None:
        out[0].copy_(result.hist)
        out[1].copy_(result.bin_edges)
        return histogram_result(*out)
    return result

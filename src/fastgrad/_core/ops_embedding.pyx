# cython: boundscheck=False, wraparound=False, cdivision=True
"""embedding: rows of a weight matrix by index (EmbeddingBackward0 scatter-adds them back)."""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history1
from fastgrad._core.ops_activation cimport _tensor

cnp.import_array()


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """weight[input] (grad_fn EmbeddingBackward0); rows at padding_idx get no gradient."""
    cdef TensorBase idx = _tensor(input, "embedding", "input"), w = _tensor(weight, "embedding", "weight"), out
    cdef cnp.ndarray i = idx._data, wd = w._data
    cdef EmbeddingBackward0 node
    if i.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {idx.dtype} instead "
                           f"(while checking arguments for embedding); use input.long()")
    if wd.ndim != 2:
        raise RuntimeError(f"embedding: 'weight' must be 2-D, got shape {list((<object>wd).shape)}")
    n = wd.shape[0]
    if i.size and (i.min() < 0 or i.max() >= n):
        raise IndexError(f"index out of range in self: embedding indices must be in [0, {n - 1}] "
                         f"for a weight with {n} rows, got min {i.min()} max {i.max()}")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    out = wrap(np.asarray(wd[i], order="C"))
    if w._requires_grad and grad_enabled():
        node = EmbeddingBackward0.__new__(EmbeddingBackward0)
        node.idx = i
        node.num = n
        node.padding_idx = -1 if padding_idx is None else padding_idx
        set_history1(out, node, w)
    return out


@cython.final
cdef class EmbeddingBackward0(Node):
    """d/dweight: scatter-add the incoming rows into a zero (num, dim) gradient. It is linear in
    the incoming gradient and does not record (no double backward through the index scatter)."""
    cdef object idx
    cdef Py_ssize_t num, padding_idx

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        gd = g._data
        dim = (<object>gd).shape[gd.ndim - 1]
        gw = np.zeros((self.num, dim), dtype=gd.dtype)
        np.add.at(gw, self.idx.reshape(-1), gd.reshape(-1, dim))
        if self.padding_idx >= 0:
            gw[self.padding_idx] = 0
        return (wrap(gw),)

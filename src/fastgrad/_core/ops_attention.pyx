# cython: boundscheck=True, wraparound=True
"""Scaled dot-product attention as one graph node with a fused backward.

out = dropout(softmax(q k^T * scale + mask)) v over any leading batch dims (broadcast among q, k,
v and the mask). The forward runs three batched products and an in-place softmax on the arrays;
the node keeps q, k, v (SavedVars, so in-place edits are caught) and the attention probabilities
P, and its backward is

    dV = Pd^T dO,  dPd = dO V^T,  dP = dPd * keep,  dS = P * (dP - rowsum(dP * P)),
    dQ = scale dS K,  dK = scale dS^T Q,  dMask = dS

(Pd = P * keep, keep the dropout mask already divided by 1 - p) with batched GEMMs: five
products and a few passes over the (..., L, S) scores, instead of the dozen nodes a composed
attention records. Under create_graph the same rule is written in recorded ops, with P recomputed
from q and k so that the gradient is differentiable again.

Note [Fully masked rows]
A row whose every key is masked (-inf) gives zeros, not NaN, as PyTorch's CPU attention does: the
row max is taken as 0, exp gives 0 everywhere, and a zero row sum is divided as 1.

Products run with OpenBLAS on one thread (Note [Single-threaded BLAS for small products] in
blas.pyx): per-head products are small.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.blas cimport one_thread, restore
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase, SavedVar, wrap, save, set_history

cnp.import_array()


cdef inline object _mT(object x):
    return np.swapaxes(x, -1, -2)


cdef object _softmax_rows(cnp.ndarray s):
    """softmax over the last dim of the float scores s, in place (Note [Fully masked rows])."""
    m = np.max(s, axis=-1, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0).astype(s.dtype, copy=False)
    np.subtract(s, m, out=s)
    np.exp(s, out=s)
    z = np.sum(s, axis=-1, keepdims=True)
    if not z.all():
        z[z == 0] = 1
    np.divide(s, z, out=s)
    return s


cdef object _meta(TensorBase t, tuple full_batch):
    """The input's (shape, dtype) when its gradient has to be summed over broadcast batch dims."""
    shape = (<object>t._data).shape
    if shape[:-2] == full_batch:
        return None
    return (shape, t._data.dtype)


def attention(query, key, value, mask=None, double scale=1.0, double dropout_p=0.0):
    """Attention of float tensors q (..., L, E), k (..., S, E), v (..., S, Ev); mask None or a
    float tensor broadcastable to (..., L, S), added to the scaled scores (differentiable).
    Dropout (training) draws PyTorch's mask: bernoulli_(1 - p) over the scores' shape."""
    cdef TensorBase q = query, k = key, v = value, mt = mask, out
    cdef ScaledDotProductAttentionBackward0 node
    cdef int prev
    qd, kd, vd = q._data, k._data, v._data
    prev = one_thread()
    try:
        s = np.matmul(qd, _mT(kd))
        if scale != 1.0:
            s *= s.dtype.type(scale)
        if mt is not None:
            s = np.add(s, mt._data, dtype=s.dtype)
        p = _softmax_rows(s)
        keep = None
        if dropout_p > 0.0:
            from fastgrad import _sampling
            if dropout_p >= 1.0:
                keep = np.zeros(p.shape, dtype=p.dtype)
            else:
                keep = (_sampling._bernoulli_values(p.shape, 1 - dropout_p, None).astype(p.dtype)
                        / p.dtype.type(1 - dropout_p))
            o = np.matmul(p * keep, vd)
        else:
            o = np.matmul(p, vd)
    finally:
        restore(prev)
    out = wrap(np.ascontiguousarray(o))
    need = q._requires_grad or k._requires_grad or v._requires_grad or \
        (mt is not None and mt._requires_grad)
    if need and grad_enabled():
        node = ScaledDotProductAttentionBackward0.__new__(ScaledDotProductAttentionBackward0)
        node.q = save(q, False)
        node.k = save(k, False)
        node.v = save(v, False)
        node.mask = save(mt, False) if mt is not None else None
        node.p = p
        node.keep = keep
        node.scale = scale
        batch = p.shape[:-2]
        metas = (_meta(q, batch), _meta(k, batch), _meta(v, batch))
        inputs = (q, k, v)
        if mt is not None:
            inputs = inputs + (mt,)
            ms = (<object>mt._data).shape
            metas = metas + ((None if ms == p.shape else (ms, mt._data.dtype)),)
        if any(m is not None for m in metas):
            node._in_meta = metas
        set_history(out, node, inputs)
    return out


@cython.final
cdef class ScaledDotProductAttentionBackward0(Node):
    """The fused attention backward (see the module docstring)."""
    cdef SavedVar q, k, v, mask
    cdef object p                  # attention probabilities (..., L, S), before dropout
    cdef object keep               # dropout mask / (1 - p), or None
    cdef double scale

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0]
        cdef TensorBase q = self.q.unpack(self), k = self.k.unpack(self), v = self.v.unpack(self)
        cdef int prev
        if self.p is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly "
                               "access saved tensors after they have already been freed); "
                               "specify retain_graph=True on the first backward")
        if grad_enabled():
            return self._recorded(g, q, k, v)
        p, keep, gd = self.p, self.keep, g._data
        prev = one_thread()
        try:
            dv = np.matmul(_mT(p if keep is None else p * keep), gd)
            dp = np.matmul(gd, _mT(v._data))
            if keep is not None:
                dp *= keep
            ds = dp
            ds -= np.sum(dp * p, axis=-1, keepdims=True)
            ds *= p
            dss = ds * ds.dtype.type(self.scale) if self.scale != 1.0 else ds
            dq = np.matmul(dss, k._data)
            dk = np.matmul(_mT(dss), q._data)
        finally:
            restore(prev)
        res = (wrap(dq), wrap(dk), wrap(np.ascontiguousarray(dv)))
        if self.mask is not None:
            res = res + (wrap(ds),)
        return res

    cdef tuple _recorded(self, TensorBase g, TensorBase q, TensorBase k, TensorBase v):
        """The same rule in recorded ops, P recomputed from q and k (create_graph)."""
        from fastgrad._core.ops_linalg import matmul
        from fastgrad._core.ops_nn import softmax
        s = matmul(q, k.mT) * self.scale
        if self.mask is not None:
            s = s + self.mask.unpack(self)
        p = softmax(s, -1)
        valid = wrap(np.asarray(self.p.sum(-1, keepdims=True) > 0, dtype=self.p.dtype))
        p = p * valid              # Note [Fully masked rows]: those rows stay zero
        keep = None if self.keep is None else wrap(self.keep)
        pd = p if keep is None else p * keep
        dv = matmul(pd.mT, g)
        dp = matmul(g, v.mT)
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - (dp * p).sum(-1, True))
        dq = matmul(ds * self.scale, k)
        dk = matmul((ds * self.scale).mT, q)
        res = (dq, dk, dv)
        if self.mask is not None:
            res = res + (ds,)
        return res

    cdef void release_variables(self):
        self.q.release()
        self.k.release()
        self.v.release()
        if self.mask is not None:
            self.mask.release()
        self.p = None
        self.keep = None

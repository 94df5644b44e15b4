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

Products run per head on single-threaded BLAS, the heads split across fastgrad's threads (Note
[Batched products] in blas.pyx).
"""
cimport cython
cimport numpy as cnp
import numpy as np
from libc.math cimport INFINITY, isfinite
from cython cimport floating

from fastgrad._core.kernels cimport OP_EXP, unary_fwd

from fastgrad._core.blas cimport bmm, one_thread, restore
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.random cimport Engine
from fastgrad._core.random import bernoulli_scalar
from fastgrad._core.ops_matmul import matmul
from fastgrad._core.ops_softmax import softmax

cnp.import_array()


cdef inline object _mT(object x):
    return np.swapaxes(x, -1, -2)


cdef object _mm(object a, object b):
    """a @ b over the batch dims: BLAS per product, the batch split across fastgrad's threads
    (Note [Batched products] in blas.pyx); np.matmul on one BLAS thread without the hooks."""
    cdef int prev
    r = bmm(a, b)
    if r is not None:
        return r
    prev = one_thread()
    try:
        return np.matmul(a, b)
    finally:
        restore(prev)


cdef void rows_shift(floating* s, Py_ssize_t M, Py_ssize_t S, floating scale) noexcept nogil:
    """Each row of s (M, S): s = s * scale - max(s * scale) in place (a row max that is not
    finite is taken as 0: Note [Fully masked rows])."""
    cdef Py_ssize_t i, j
    cdef floating m
    cdef floating* r
    for i in range(M):
        r = s + i * S
        m = -INFINITY
        for j in range(S):
            r[j] = r[j] * scale
            if r[j] > m:
                m = r[j]
        if not isfinite(m):
            m = 0
        for j in range(S):
            r[j] = r[j] - m


cdef void rows_normalize(floating* e, Py_ssize_t M, Py_ssize_t S) noexcept nogil:
    """Each row of e (M, S) divided by its sum in place (a zero sum leaves the row zero)."""
    cdef Py_ssize_t i, j
    cdef floating z
    cdef floating* r
    for i in range(M):
        r = e + i * S
        z = 0
        for j in range(S):
            z = z + r[j]
        if z != 0:
            z = 1 / z
        for j in range(S):
            r[j] = r[j] * z


cdef void rows_softmax_bwd(floating* dp, const floating* p, Py_ssize_t M, Py_ssize_t S,
                           floating scale) noexcept nogil:
    """dS = P * (dP - rowsum(dP * P)) in place of dP, times scale."""
    cdef Py_ssize_t i, j
    cdef floating a
    cdef floating* d
    cdef const floating* q
    for i in range(M):
        d = dp + i * S
        q = p + i * S
        a = 0
        for j in range(S):
            a = a + d[j] * q[j]
        for j in range(S):
            d[j] = q[j] * (d[j] - a) * scale


cdef object _softmax_rows(cnp.ndarray s, double scale):
    """softmax(s * scale) over the last dim of the C-contiguous float scores s, in place."""
    cdef Py_ssize_t S = s.shape[s.ndim - 1], n = s.size
    cdef Py_ssize_t M = n // S if S else 0
    cdef void* ps = cnp.PyArray_DATA(s)
    if M == 0:
        return s
    if s.dtype == np.float32:
        with nogil:
            rows_shift(<float*>ps, M, S, <float>scale)
            unary_fwd(OP_EXP, <float*>ps, <float*>ps, n)
            rows_normalize(<float*>ps, M, S)
    else:
        with nogil:
            rows_shift(<double*>ps, M, S, scale)
            unary_fwd(OP_EXP, <double*>ps, <double*>ps, n)
            rows_normalize(<double*>ps, M, S)
    return s


cdef object _softmax_bwd(cnp.ndarray dp, cnp.ndarray p, double scale):
    """dS from dP and P (both C-contiguous, one shape), in place of dP."""
    cdef Py_ssize_t S = p.shape[p.ndim - 1]
    cdef Py_ssize_t M = p.size // S if S else 0
    cdef void* pd = cnp.PyArray_DATA(dp)
    cdef void* pp = cnp.PyArray_DATA(p)
    if M:
        if p.dtype == np.float32:
            with nogil:
                rows_softmax_bwd(<float*>pd, <const float*>pp, M, S, <float>scale)
        else:
            with nogil:
                rows_softmax_bwd(<double*>pd, <const double*>pp, M, S, scale)
    return dp


cdef object _meta(TensorBase t, tuple full_batch):
    """The input's (shape, dtype) when its gradient has to be summed over broadcast batch dims."""
    shape = (<object>t._data).shape
    if shape[:-2] == full_batch:
        return None
    return (shape, t._data.dtype)


def attention(query, key, value, mask=None, double scale=1.0, double dropout_p=0.0,
              Engine generator=None):
    """Attention of float tensors q (..., L, E), k (..., S, E), v (..., S, Ev); mask None or a
    float tensor broadcastable to (..., L, S), added to the scaled scores (differentiable).
    Dropout (training) draws PyTorch's mask from `generator`: bernoulli_(1 - p) over the scores'
    shape."""
    cdef TensorBase q = query, k = key, v = value, mt = mask, out
    cdef ScaledDotProductAttentionBackward0 node
    qd, kd, vd = q._data, k._data, v._data
    s = _mm(qd, _mT(kd))
    if mt is not None:             # PyTorch scales the scores, then adds the mask
        if scale != 1.0:
            s *= s.dtype.type(scale)
        s = np.ascontiguousarray(np.add(s, mt._data, dtype=s.dtype))
    p = _softmax_rows(s, 1.0 if mt is not None else scale)
    keep = None
    if dropout_p > 0.0:
        if dropout_p >= 1.0:
            keep = np.zeros(p.shape, dtype=p.dtype)
        else:
            if generator is None:
                raise ValueError("attention(): dropout_p > 0 needs the generator to draw the "
                                 "dropout mask from (pass fastgrad.default_generator)")
            keep = np.empty(p.shape, np.uint8)
            if keep.size:
                bernoulli_scalar(generator, keep, 1 - dropout_p)
            keep = keep.astype(p.dtype) / p.dtype.type(1 - dropout_p)
        o = _mm(p * keep, vd)
    else:
        o = _mm(p, vd)
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
        if self.p is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly "
                               "access saved tensors after they have already been freed); "
                               "specify retain_graph=True on the first backward")
        if grad_enabled():
            return self._recorded(g, q, k, v)
        p, keep, gd = self.p, self.keep, g._data
        dv = _mm(_mT(p if keep is None else p * keep), gd)
        dp = _mm(gd, _mT(v._data))
        if keep is not None:
            dp *= keep
        if self.mask is not None:  # the mask's gradient is dS before the scale
            ds = _softmax_bwd(dp, p, 1.0)
            dss = ds * ds.dtype.type(self.scale) if self.scale != 1.0 else ds
        else:
            ds = dss = _softmax_bwd(dp, p, self.scale)
        dq = _mm(dss, k._data)
        dk = _mm(_mT(dss), q._data)
        res = (wrap(dq), wrap(dk), wrap(np.ascontiguousarray(dv)))
        if self.mask is not None:
            res = res + (wrap(ds),)
        return res

    cdef tuple _recorded(self, TensorBase g, TensorBase q, TensorBase k, TensorBase v):
        """The same rule in recorded ops, P recomputed from q and k (create_graph)."""
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

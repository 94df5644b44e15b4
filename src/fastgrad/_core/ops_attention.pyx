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

from fastgrad._core.kernels cimport nthreads
from fastgrad._core.attention_kernels cimport Heads, HeadArray, heads_forward, heads_backward, \
    rows_shift, rows_exp_normalize, rows_softmax_bwd

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
from fastgrad._core.ops_join import cat

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


cdef object _softmax_rows(cnp.ndarray s, double scale):
    """softmax(s * scale) over the last dim of the C-contiguous float scores s, in place."""
    cdef Py_ssize_t S = s.shape[s.ndim - 1], n = s.size
    cdef Py_ssize_t M = n // S if S else 0
    cdef void* ps = cnp.PyArray_DATA(s)
    if M == 0:
        return s
    if s.dtype == np.float32:
        with nogil:
            rows_shift(<float*>ps, M, S, <float>scale, False)
            rows_exp_normalize(<float*>ps, M, S)
    else:
        with nogil:
            rows_shift(<double*>ps, M, S, scale, False)
            rows_exp_normalize(<double*>ps, M, S)
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
    if qd.dtype != np.float32 and qd.dtype != np.float64:    # the row loops read no other
        raise TypeError(f"attention(): takes float32 or float64 tensors, got {qd.dtype}; "
                        f"compute float16 in float32 (F.scaled_dot_product_attention does)")
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


# ----- multi-head attention by (batch, head) pairs -----------------------------------------------

cdef object _rows(TensorBase t):
    """t's (N, L, C) float array with its last dim contiguous (copied only when it is not)."""
    x = <object>t._data
    isz = x.itemsize
    if (x.strides[2] != isz and x.shape[2] > 1) or (<size_t>cnp.PyArray_DATA(x)) % isz or \
            x.strides[0] % isz or x.strides[1] % isz or x.strides[0] < 0 or \
            (x.shape[1] > 1 and x.strides[1] < x.shape[2] * isz):
        x = np.ascontiguousarray(x)
    return x


cdef void _head_array(HeadArray* h, object x, Py_ssize_t col, Py_ssize_t hd):
    """Heads of x (N, L, C): head j is columns col + j*hd ... of each row (the row stride of a
    single row is taken as C: BLAS wants a leading dimension of at least the columns read)."""
    cdef Py_ssize_t isz = x.itemsize
    h.base = <char*>cnp.PyArray_DATA(x) + col * isz
    h.sn, h.sh = x.strides[0] // isz, hd
    h.sr = x.strides[1] // isz if x.shape[1] > 1 else x.shape[2]


cdef void _seq_major(HeadArray* h, object x, Py_ssize_t hd):
    """Heads of the C-contiguous (L, N, C) array x."""
    h.base = <char*>cnp.PyArray_DATA(x)
    h.sn, h.sh, h.sr = x.shape[2], hd, x.shape[1] * x.shape[2]


cdef tuple _operands(Heads* a, TensorBase q, TensorBase k, TensorBase v, int heads):
    """a's shapes and q, k, v heads; packed (k is None) means q holds [q | k | v] columns.
    Returns the arrays read (kept alive by the caller for as long as a is used)."""
    qd = _rows(q)
    kd = qd if k is None else _rows(k)
    vd = qd if v is None else _rows(v)
    a.f32 = qd.dtype == np.float32
    a.N, a.H, a.L, a.S = qd.shape[0], heads, qd.shape[1], kd.shape[1]
    if k is None:
        a.D = a.Dv = qd.shape[2] // (3 * heads)
        _head_array(&a.q, qd, 0, a.D)
        _head_array(&a.k, qd, heads * a.D, a.D)
        _head_array(&a.v, qd, 2 * heads * a.D, a.D)
    else:
        a.D, a.Dv = qd.shape[2] // heads, vd.shape[2] // heads
        _head_array(&a.q, qd, 0, a.D)
        _head_array(&a.k, kd, 0, a.D)
        _head_array(&a.v, vd, 0, a.Dv)
    return (qd, kd, vd)


def heads_attention(q, k, v, int num_heads, double scale, mask=None, bint causal=False):
    """softmax(q_h k_h^T * scale + mask) v_h for every head h of the (N, L, H*D) projections q,
    k (N, S, H*D) and v (N, S, H*Dv), as the (L, N, H*Dv) rows an output projection reads (Note
    [Attention by heads] in attention_kernels.pyx). k and v None: q is the packed (N, L, 3*H*D)
    [q | k | v] projection of self-attention, and its gradient comes back in one array. mask:
    None or an additive float array broadcastable to (N, H, L, S) (not differentiated); causal:
    keys after the query's position are masked. The caller checks shapes and dtypes."""
    cdef Heads a
    cdef TensorBase tq = q, tk = k, tv = v, out
    cdef ScaledDotProductFlashAttentionForCpuBackward0 node
    arrays = _operands(&a, tq, tk, tv, num_heads)
    a.scale, a.causal, a.mask = scale, causal, NULL
    dt = arrays[0].dtype
    m = None
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=dt), (a.N, a.H, a.L, a.S))
        a.mask = <const char*>cnp.PyArray_DATA(m)
        for i in range(4):
            a.mask_s[i] = m.strides[i] // dt.itemsize
    p = np.empty((a.N, a.H, a.L, a.S), dtype=dt)
    o = np.empty((a.L, a.N, a.H * a.Dv), dtype=dt)
    a.p = <char*>cnp.PyArray_DATA(p)
    _seq_major(&a.o, o, a.Dv)
    if p.size and a.Dv:
        with nogil:
            heads_forward(&a)
    elif o.size:
        o.fill(0)
    out = wrap(o)
    need = tq._requires_grad or (tk is not None and tk._requires_grad) or \
        (tv is not None and tv._requires_grad)
    if need and grad_enabled():
        node = ScaledDotProductFlashAttentionForCpuBackward0.__new__(ScaledDotProductFlashAttentionForCpuBackward0)
        node.q = save(tq, False)
        node.k = save(tk, False) if tk is not None else None
        node.v = save(tv, False) if tv is not None else None
        node.p, node.mask, node.heads, node.scale, node.causal = p, m, num_heads, scale, causal
        set_history(out, node, (tq,) if tk is None else (tq, tk, tv))
    return out


@cython.final
cdef class ScaledDotProductFlashAttentionForCpuBackward0(Node):
    """heads_attention's backward, per (batch, head) pair on the thread team (Note [Attention by
    heads]); under create_graph, the same rule in recorded ops."""
    cdef SavedVar q, k, v
    cdef object p, mask
    cdef int heads
    cdef double scale
    cdef bint causal

    cdef tuple apply(self, tuple grads):
        cdef Heads a
        cdef char* ps
        cdef int nt
        cdef TensorBase g = grads[0]
        cdef TensorBase q = self.q.unpack(self)
        cdef TensorBase k = self.k.unpack(self) if self.k is not None else None
        cdef TensorBase v = self.v.unpack(self) if self.v is not None else None
        if grad_enabled():                 # (a second backward: unpack raised already)
            return self._recorded(g, q, k, v)
        arrays = _operands(&a, q, k, v, self.heads)
        qd, kd, vd = arrays
        a.scale, a.causal, a.mask = self.scale, self.causal, NULL
        a.p = <char*>cnp.PyArray_DATA(self.p)
        go = np.ascontiguousarray(g._data, dtype=qd.dtype)
        _seq_major(&a.o, go, a.Dv)
        if k is None:
            dqkv = np.empty(qd.shape, dtype=qd.dtype)
            dq = dk = dv = dqkv
            _head_array(&a.dq, dqkv, 0, a.D)
            _head_array(&a.dk, dqkv, a.H * a.D, a.D)
            _head_array(&a.dv, dqkv, 2 * a.H * a.D, a.D)
        else:
            dq, dk = np.empty(qd.shape, dtype=qd.dtype), np.empty(kd.shape, dtype=qd.dtype)
            dv = np.empty(vd.shape, dtype=qd.dtype)
            _head_array(&a.dq, dq, 0, a.D)
            _head_array(&a.dk, dk, 0, a.D)
            _head_array(&a.dv, dv, 0, a.Dv)
        if (<object>self.p).size and a.Dv:
            nt = nthreads()
            scratch = np.empty(nt * a.L * a.S, dtype=qd.dtype)
            ps = <char*>cnp.PyArray_DATA(scratch)
            with nogil:
                heads_backward(&a, ps, nt)
        else:
            dq.fill(0)
            dk.fill(0)
            dv.fill(0)
        if k is None:
            return (wrap(dq),)
        return (wrap(dq), wrap(dk), wrap(dv))

    cdef tuple _recorded(self, TensorBase g, TensorBase q, TensorBase k, TensorBase v):
        """The rule of the module docstring in recorded ops, P recomputed from q and k."""
        cdef Py_ssize_t H = self.heads
        N, L = q.shape[0], q.shape[1]
        if k is None:
            E = q.shape[2] // 3
            qs, ks, vs = q[..., :E], q[..., E:2 * E], q[..., 2 * E:]
        else:
            qs, ks, vs = q, k, v
        S = ks.shape[1]
        D, Dv = qs.shape[2] // H, vs.shape[2] // H
        qh = qs.reshape(N, L, H, D).transpose(1, 2)
        kh = ks.reshape(N, S, H, D).transpose(1, 2)
        vh = vs.reshape(N, S, H, Dv).transpose(1, 2)
        s = matmul(qh, kh.mT) * self.scale
        if self.mask is not None:
            s = s + wrap(np.ascontiguousarray(self.mask))
        if self.causal:
            s = s + wrap(np.triu(np.full((L, S), -np.inf, dtype=self.p.dtype), 1))
        p = softmax(s, -1)
        valid = wrap(np.asarray(self.p.sum(-1, keepdims=True) > 0, dtype=self.p.dtype))
        p = p * valid              # Note [Fully masked rows]: those rows stay zero
        go = g.reshape(L, N, H, Dv).permute(1, 2, 0, 3)
        dv = matmul(p.mT, go)
        dp = matmul(go, vh.mT)
        ds = p * (dp - (dp * p).sum(-1, True)) * self.scale
        dq = matmul(ds, kh)
        dk = matmul(ds.mT, qh)
        grads = [t.transpose(1, 2).reshape(N, -1, t.shape[1] * t.shape[3]) for t in (dq, dk, dv)]
        if k is None:
            return (cat(grads, -1),)
        return tuple(grads)

    cdef void release_variables(self):
        self.q.release()
        if self.k is not None:
            self.k.release()
            self.v.release()
        self.p = None
        self.mask = None

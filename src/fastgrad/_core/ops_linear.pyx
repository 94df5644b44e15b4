# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""addmm and linear (one fused op each): y = beta * c + alpha * (a @ b), y = x @ w.T + bias.

Products above Note [Small linear]'s threshold run on BLAS (blas.matmul2d, or np.matmul);
below it, as the plain loops of linear_kernels.pxd. During a plain backward (grad mode off) the
gradients are computed on the arrays directly; under create_graph they are written with
recorded ops (matmul, transposes, sum_to) so they are differentiable again.
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core cimport ops_arith as pw
from fastgrad._core.ops_reduce cimport sum_to
from fastgrad._core.ops_view cimport reshape_c, ReshapeBackward, ViewBackward0
from fastgrad._core.ops_matmul cimport (_mat, _mT, _check_dtypes, _check_matmul, _blasable,
                                        _np_sum_to)
from fastgrad._core cimport linear_kernels as lk
from fastgrad._core cimport blas
from fastgrad._core.kernels cimport nthreads, team_run, PAR_MIN, OP_RELU
from cython cimport floating
from fastgrad._core.ops_matmul import matmul, MmBackward0
from fastgrad._core.ops_unary cimport unary, _record_unary

cnp.import_array()


# --- addmm / linear ------------------------------------------------------------------------------

def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat1 @ mat2), input broadcast to the product's shape."""
    cdef TensorBase c = input, a = mat1, b = mat2
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"addmm: mat1 and mat2 must be 2-D matrices, got {a._data.ndim}-D "
                           f"and {b._data.ndim}-D")
    _check_matmul(a, b)
    prod = np.matmul(a._data, b._data)
    if alpha != 1:
        prod *= alpha
    try:
        r = prod + (c._data * beta if beta != 1 else c._data) if beta != 0 else prod
    except ValueError:
        raise RuntimeError(f"addmm: input of shape {list(_shape(c))} is not broadcastable to "
                           f"the product's shape {list(prod.shape)}")
    if r.shape != prod.shape:
        raise RuntimeError(f"addmm: input of shape {list(_shape(c))} is not broadcastable to "
                           f"the product's shape {list(prod.shape)}")
    return _record_linear(np.asarray(r, dtype=prod.dtype), a, b, c, False, alpha, beta,
                          AddmmBackward0)


def linear(input, weight, bias=None):
    """input @ weight.T + bias as one op (input (..., in), weight (out, in), bias (out,))."""
    return _linear(input, weight, bias, False)


def linear_relu(input, weight, bias=None):
    """relu(linear(input, weight, bias)), the clamp made in the product's own pass when the
    product runs on BLAS (Note [Work beside a product] in blas.pyx). The graph is the one the
    two ops record (the linear's node, then ReluBackward0 saving the result), so grad_fn,
    hooks on the result and double backward see no difference."""
    return _linear(input, weight, bias, True)


cdef object _linear(object input, object weight, object bias, bint relu):
    cdef TensorBase x = input, w = weight, bt = bias, pre, res
    cdef cnp.ndarray xd = x._data, wd = w._data, y
    if wd.ndim != 2 and wd.ndim != 1:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                           f"{list(_shape(w))}")
    if xd.ndim == 0 or _shape(x)[-1] != _shape(w)[-1]:
        m1 = (xd.size // _shape(x)[-1] if xd.ndim and _shape(x)[-1] else 1,
              _shape(x)[-1] if xd.ndim else 1)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mat(m1)} and "
                           f"{_mat(_shape(w)[::-1])}); linear needs input's last dim "
                           f"({_shape(x)[-1] if xd.ndim else 0}) to equal in_features "
                           f"({_shape(w)[-1]})")
    _check_dtypes(x, w, "linear")
    if wd.ndim == 1:
        out = matmul(x, w)
        out = pw.add(out, bt) if bt is not None else out
        return unary(OP_RELU, out) if relu else out
    n_in = _shape(w)[1]
    x2 = xd if xd.ndim == 2 else np.reshape(xd, _rows_shape(_shape(x)))
    cls = (AddmmBackward0 if bt is not None else MmBackward0) if xd.ndim == 2 else ViewBackward0
    y = _small_linear(x2, wd, bt)
    if y is not None:
        if xd.ndim != 2:
            y = y.reshape(_shape(x)[:-1] + (_shape(w)[0],))
        out = _record_linear(y, x, w, bt, True, 1, 1, cls)
        return unary(OP_RELU, out) if relu else out
    if bt is not None and bt._data.dtype != wd.dtype:
        raise RuntimeError(f"linear: bias dtype {bt._data.dtype} != weight dtype {wd.dtype}")
    try:
        y = _linear_mm(x2, wd.T, x2.size * _shape(w)[0], bt._data if bt is not None else None,
                       relu and _float_type(cnp.PyArray_TYPE(x2)))
    except ValueError:
        raise RuntimeError(f"linear: bias of shape {list(_shape(bt))} does not match "
                           f"out_features {_shape(w)[0]}")
    if xd.ndim != 2:
        y = y.reshape(_shape(x)[:-1] + (_shape(w)[0],))
    pre = _record_linear(y, x, w, bt, True, 1, 1, cls)
    if not relu:
        return pre
    if not _float_type(cnp.PyArray_TYPE(y)):
        return unary(OP_RELU, pre)
    if pre._grad_fn is None:
        return pre
    # y already holds the clamped values; the linear's output tensor is only the relu node's
    # edge (nothing saves it), so the result shares y: the two ops' graph, one pass less.
    res = wrap(y)
    _record_unary(OP_RELU, res, pre)
    return res


cdef object _record_linear(cnp.ndarray y, TensorBase a, TensorBase b, TensorBase c,
                           bint wt, object alpha, object beta, type cls):
    """Record y = beta * c + alpha * (a @ (b.T if wt else b)); c may be None (no bias)."""
    cdef TensorBase out = wrap(y)
    cdef LinearBackward node
    cdef bint need_c = c is not None and c._requires_grad
    if not (grad_enabled() and (a._requires_grad or b._requires_grad or need_c)):
        return out
    cdef ReshapeBackward named = None
    if cls is MmBackward0:
        node = LinearMmBackward0.__new__(LinearMmBackward0)
    elif cls is ViewBackward0:
        named = ViewBackward0.__new__(ViewBackward0)
        node = LinearBackward.__new__(LinearBackward)
    else:
        node = cls.__new__(cls)
    node.wt = wt
    node.alpha = alpha
    node.beta = beta
    if b._requires_grad:
        node.self_ = save(a, False)
    if a._requires_grad:
        node.other = save(b, False)
    if need_c:
        node.c_shape = _shape(c)
    if named is not None:                   # Note [Nodes named for a view] in ops_view.pyx
        named.inner = node
        set_history(out, named, (a, b, c))
    else:
        set_history(out, node, (a, b, c))
    return out


cdef tuple _rows_shape(tuple shape):
    """(rows, last dim): a shape with its leading dims folded into rows. Spelled out rather
    than (-1, n), which NumPy cannot resolve when the last dim is 0."""
    cdef Py_ssize_t rows = 1
    for s in shape[:-1]:
        rows *= s
    return (rows, shape[-1])


cdef object _linear_mm(cnp.ndarray a, cnp.ndarray b, Py_ssize_t macs, cnp.ndarray bias=None,
                       bint relu=False, cnp.ndarray sum_rows_of=None, cnp.ndarray sums=None):
    """a @ b (+ bias) for linear's products (b 2-D; a's leading dims folded into rows): BLAS
    called directly on one thread per block (Note [Products on fastgrad's threads] in
    blas.pyx), or np.matmul on one BLAS thread and np.add (ValueError for a bias that does not
    broadcast) when the direct call does not apply. relu (float types only): the result clamped
    at 0; sum_rows_of (2-D float): its rows summed into sums, beside the product when it runs on
    BLAS (Note [Work beside a product])."""
    cdef int prev
    cdef object r, oa = a
    if cnp.PyArray_NDIM(b) == 2 and cnp.PyArray_NDIM(a) >= 2:
        r = blas.matmul2d(a if cnp.PyArray_NDIM(a) == 2 else oa.reshape(_rows_shape(oa.shape)), b,
                          macs, bias, relu, sum_rows_of, sums)
        if r is not None:
            return r if cnp.PyArray_NDIM(a) == 2 else r.reshape(oa.shape[:-1] + (b.shape[1],))
    prev = blas.one_thread()
    try:
        r = np.matmul(a, b)
    finally:
        blas.restore(prev)
    if bias is not None:
        np.add(r, bias, out=r)
    if relu:
        r[r < 0] = 0                            # the relu kernel's formula: NaN and -0.0 pass
    if sum_rows_of is not None:
        _col_sum_into(sum_rows_of, sums)
    return r


# Note [Small linear]
# NumPy's matmul costs ~1.5-2 us of dispatch per call whatever the size; for the tiny layers of a
# small network (W4: 4x2 @ 2x2) the arithmetic is a few dozen flops. Below SMALL_LINEAR_MACS
# multiply-adds, linear's forward (bias included) and its backward (grad_input, grad_weight and
# grad_bias in one call) run as plain C loops over the operands' strides, with no copies; above
# it they go to BLAS through np.matmul. The threshold is where the two cost the same here
# (measured on this machine, float32 and float64 alike).

cdef Py_ssize_t SMALL_LINEAR_MACS = 2048


def _set_small_linear_macs(Py_ssize_t n):
    """Set the small-linear threshold (multiply-adds); returns the old one (for tests)."""
    global SMALL_LINEAR_MACS
    old = SMALL_LINEAR_MACS
    SMALL_LINEAR_MACS = n
    return old


cdef inline bint _estrides(cnp.ndarray a, Py_ssize_t* s0, Py_ssize_t* s1) noexcept:
    """a's strides in elements (False when a byte stride is not a multiple of the item size)."""
    cdef Py_ssize_t it = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t b0 = cnp.PyArray_STRIDE(a, 0), b1 = cnp.PyArray_STRIDE(a, 1)
    if b0 % it or b1 % it:
        return False
    s0[0] = b0 // it
    s1[0] = b1 // it
    return True


cdef inline bint _float_type(int t) noexcept:
    return t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64


cdef void _gemm(int t, char* a, Py_ssize_t as0, Py_ssize_t as1, char* b, Py_ssize_t bs0,
                Py_ssize_t bs1, cnp.ndarray out, Py_ssize_t p, Py_ssize_t q,
                Py_ssize_t r) noexcept:
    """out (p, q) = a (p, r) @ b (r, q) for float32 (t) or float64, strides in elements."""
    cdef char* o = <char*>cnp.PyArray_DATA(out)
    if t == cnp.NPY_FLOAT32:
        lk.small_gemm(<float*>a, as0, as1, <float*>b, bs0, bs1, <float*>o, p, q, r)
    else:
        lk.small_gemm(<double*>a, as0, as1, <double*>b, bs0, bs1, <double*>o, p, q, r)


cdef object _small_linear(cnp.ndarray x, cnp.ndarray w, TensorBase bt):
    """x (m, k) @ w(n, k).T + b as C loops when small (Note [Small linear]); None otherwise."""
    cdef Py_ssize_t m = cnp.PyArray_DIM(x, 0), k = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t n = cnp.PyArray_DIM(w, 0)
    cdef Py_ssize_t xs0, xs1, ws0, ws1, bs0 = 0
    cdef int t = cnp.PyArray_TYPE(x)
    cdef cnp.ndarray bd = None, y
    if m * n * k > SMALL_LINEAR_MACS or not _float_type(t) or cnp.PyArray_TYPE(w) != t:
        return None
    if bt is not None:
        bd = bt._data
        if bd.ndim != 1 or cnp.PyArray_DIM(bd, 0) != n or cnp.PyArray_TYPE(bd) != t:
            return None
        bs0 = cnp.PyArray_STRIDE(bd, 0)
        if bs0 % cnp.PyArray_ITEMSIZE(bd):
            return None
        bs0 //= cnp.PyArray_ITEMSIZE(bd)
    if not (_estrides(x, &xs0, &xs1) and _estrides(w, &ws0, &ws1)):
        return None
    y = cnp.PyArray_EMPTY(2, [m, n], t, 0)
    _gemm(t, <char*>cnp.PyArray_DATA(x), xs0, xs1, <char*>cnp.PyArray_DATA(w), ws1, ws0, y,
          m, n, k)
    if bd is not None:
        if t == cnp.NPY_FLOAT32:
            lk.add_row(<float*>cnp.PyArray_DATA(y), <float*>cnp.PyArray_DATA(bd), bs0, m, n)
        else:
            lk.add_row(<double*>cnp.PyArray_DATA(y), <double*>cnp.PyArray_DATA(bd), bs0, m, n)
    return y


cdef object _small_linear_bwd(cnp.ndarray g, TensorBase x, TensorBase w, tuple c_shape):
    """(grad_input, grad_weight, grad_bias) of a small 2-D linear as C loops, or None."""
    cdef int t = cnp.PyArray_TYPE(g)
    cdef Py_ssize_t m, n, k, gs0, gs1, s0 = 0, s1 = 0
    cdef cnp.ndarray a, gx = None, gw = None, gb = None
    if g.ndim != 2 or not _float_type(t) or (x is None and w is None):
        return None
    m, n = cnp.PyArray_DIM(g, 0), cnp.PyArray_DIM(g, 1)
    a = x._data if x is not None else w._data
    if a.ndim != 2 or cnp.PyArray_TYPE(a) != t:
        return None
    k = cnp.PyArray_DIM(a, 1)
    if m * n * k > SMALL_LINEAR_MACS or (c_shape is not None and c_shape != (n,)):
        return None
    if x is not None and w is not None and cnp.PyArray_TYPE(w._data) != t:
        return None
    if not _estrides(g, &gs0, &gs1):
        return None
    if x is not None:                      # grad_weight = g.T @ x
        if not _estrides(x._data, &s0, &s1):
            return None
        gw = cnp.PyArray_EMPTY(2, [n, k], t, 0)
        _gemm(t, <char*>cnp.PyArray_DATA(g), gs1, gs0, <char*>cnp.PyArray_DATA(x._data), s0, s1,
              gw, n, k, m)
    if w is not None:                      # grad_input = g @ w
        if not _estrides(w._data, &s0, &s1):
            return None
        gx = cnp.PyArray_EMPTY(2, [m, k], t, 0)
        _gemm(t, <char*>cnp.PyArray_DATA(g), gs0, gs1, <char*>cnp.PyArray_DATA(w._data), s0, s1,
              gx, m, k, n)
    if c_shape is not None:
        gb = cnp.PyArray_EMPTY(1, [n], t, 0)
        _col_sum_into(g, gb)
    return (None if gx is None else wrap(gx), None if gw is None else wrap(gw),
            None if gb is None else wrap(gb))


cdef enum:
    COL_BLOCK = 64                 # columns per thread's share of a bias gradient


cdef void _col_sums(const floating* g, Py_ssize_t gs0, Py_ssize_t gs1, floating* out,
                    Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """lk.col_sum in blocks of COL_BLOCK columns, shared across the thread team when g is large:
    each column is still summed over the rows in order, so the thread count changes nothing."""
    cdef Py_ssize_t nblk = (n + COL_BLOCK - 1) // COL_BLOCK
    cdef ColBlocks k
    if nthreads() > 1 and nblk > 1 and m * n >= PAR_MIN:
        k.g, k.gs0, k.gs1, k.out, k.m, k.n, k.f32 = g, gs0, gs1, out, m, n, floating is float
        team_run(_col_item, &k, nblk, nthreads())
    else:
        lk.col_sum(g, gs0, gs1, out, m, n)


ctypedef struct ColBlocks:
    const void* g
    void* out
    Py_ssize_t gs0, gs1, m, n
    bint f32


cdef void _col_item(void* ctx, Py_ssize_t blk, int slot) noexcept nogil:
    cdef const ColBlocks* k = <const ColBlocks*>ctx
    cdef Py_ssize_t lo = blk * COL_BLOCK, w = min(<Py_ssize_t>COL_BLOCK, k.n - lo)
    if k.f32:
        lk.col_sum(<const float*>k.g + lo * k.gs1, k.gs0, k.gs1, <float*>k.out + lo, k.m, w)
    else:
        lk.col_sum(<const double*>k.g + lo * k.gs1, k.gs0, k.gs1, <double*>k.out + lo, k.m, w)


cdef void _col_sum_into(cnp.ndarray g, cnp.ndarray out) noexcept:
    """out (n,) = g (m, n, float32/float64, strides multiples of the item size) summed over
    rows."""
    cdef Py_ssize_t m = cnp.PyArray_DIM(g, 0), n = cnp.PyArray_DIM(g, 1), gs0, gs1
    _estrides(g, &gs0, &gs1)
    if cnp.PyArray_TYPE(g) == cnp.NPY_FLOAT32:
        with nogil:
            _col_sums(<float*>cnp.PyArray_DATA(g), gs0, gs1, <float*>cnp.PyArray_DATA(out), m, n)
    else:
        with nogil:
            _col_sums(<double*>cnp.PyArray_DATA(g), gs0, gs1, <double*>cnp.PyArray_DATA(out),
                      m, n)


cdef cnp.ndarray _col_sum(cnp.ndarray g):
    """g (m, n) summed over rows (a bias gradient) in one pass; NumPy's sum for other dtypes."""
    cdef cnp.ndarray out = _sums_for(g)
    if out is None:
        return np.asarray(g.sum(axis=0))
    _col_sum_into(g, out)
    return out


cdef cnp.ndarray _sums_for(cnp.ndarray g):
    """An empty (n,) array for the row sums of g (m, n), or None when g is not of a kind the
    column-sum loop takes (float32/float64, strides multiples of the item size)."""
    cdef Py_ssize_t gs0, gs1
    if not _float_type(cnp.PyArray_TYPE(g)) or not _estrides(g, &gs0, &gs1):
        return None
    return cnp.PyArray_EMPTY(1, [cnp.PyArray_DIM(g, 1)], cnp.PyArray_TYPE(g), 0)


cdef tuple _grads_at_once(cnp.ndarray g2, TensorBase x, TensorBase w, cnp.ndarray sums):
    """linear's (G @ W, G^T @ X) for the 2-D gradient rows g2, one product per thread, or None
    (blas.matmul2d_pair); sums: G's rows summed into it beside the products, or None."""
    xd = x._data
    x2 = xd if xd.ndim == 2 else xd.reshape(_rows_shape((<object>xd).shape))
    if x2.dtype != g2.dtype or w._data.dtype != g2.dtype:
        return None
    return blas.matmul2d_pair(g2, w._data, g2.T, x2, g2 if sums is not None else None, sums)


cdef class LinearBackward(Node):
    """Y = beta*C + alpha * X @ W' (W' = W.T for linear): grad_X = alpha * G @ W'^T,
    grad_W' = alpha * X^T @ G over all leading dims flattened, grad_C = beta * G summed to C."""
    cdef SavedVar self_, other
    cdef bint wt
    cdef object alpha, beta
    cdef tuple c_shape

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], x = None, w = None
        if self.self_ is not None:
            x = self.self_.unpack(self)
        if self.other is not None:
            w = self.other.unpack(self)
        if not grad_enabled():
            return self._np(g._data, x, w)
        gx = gw = gc = None
        n_out = _shape(g)[-1]
        if w is not None:                         # G @ W (linear) or G @ B^T (addmm)
            gx = matmul(g, w if self.wt else _mT(w))
            gx = pw.mul(gx, self.alpha) if self.alpha != 1 else gx
        if x is not None:
            g2 = reshape_c(g, _rows_shape(_shape(g)))
            x2 = reshape_c(x, _rows_shape(_shape(x)))
            gw = matmul(_mT(g2), x2) if self.wt else matmul(_mT(x2), g2)
            gw = pw.mul(gw, self.alpha) if self.alpha != 1 else gw
        if self.c_shape is not None:
            gc = sum_to(pw.mul(g, self.beta) if self.beta != 1 else g, self.c_shape)
        return (gx, gw, gc)

    cdef tuple _np(self, cnp.ndarray g, TensorBase x, TensorBase w):
        """The gradients on arrays (no graph recorded)."""
        gx = gw = gc = None
        if self.wt and self.alpha == 1 and self.beta == 1:
            r = _small_linear_bwd(g, x, w, self.c_shape)
            if r is not None:
                return r
        g = _blasable(g)
        n_out = (<object>g).shape[-1]
        g2 = g if g.ndim == 2 else g.reshape(_rows_shape((<object>g).shape))
        # a bias's gradient (the rows of G summed), made beside whichever product runs first
        sums = _sums_for(g2) if self.c_shape == (n_out,) and (x is not None or w is not None) \
            else None
        if w is not None and x is not None and self.wt and self.alpha == 1 and \
                blas.pair_pays((<object>g2).shape[0] * n_out * (<object>w._data).shape[1]):
            pair = _grads_at_once(g2, x, w, sums)   # Note [Two products at once] in blas.pyx
            if pair is not None:
                gx = wrap(pair[0] if g.ndim == 2 else
                          pair[0].reshape((<object>g).shape[:-1] + (pair[0].shape[1],)))
                gw = wrap(pair[1])
                w = x = None
                gc, sums = sums, None
        if w is not None:
            r = _linear_mm(g, w._data if self.wt else w._data.T,
                           g.size * w._data.size // n_out if n_out else 0, None, False,
                           g2 if sums is not None else None, sums)
            gx = wrap(r * self.alpha if self.alpha != 1 else r)
            gc, sums = (sums, None) if sums is not None else (gc, None)
        if x is not None:
            x2 = (x._data if x._data.ndim == 2
                  else x._data.reshape(_rows_shape((<object>x._data).shape)))
            r = (_linear_mm(g2.T, x2, g2.size * (<object>x2).shape[1], None, False,
                            g2 if sums is not None else None, sums) if self.wt
                 else _linear_mm(x2.T, g2, g2.size * (<object>x2).shape[1], None, False,
                                 g2 if sums is not None else None, sums))
            gw = wrap(r * self.alpha if self.alpha != 1 else r)
            gc, sums = (sums, None) if sums is not None else (gc, None)
        if self.c_shape is not None:
            if gc is not None:                     # summed beside a product above
                gc = wrap(gc * self.beta if self.beta != 1 else gc)
            elif self.c_shape == (n_out,):         # a bias: the sum over all leading dims
                r = _col_sum(g2)
                gc = wrap(r * self.beta if self.beta != 1 else r)
            else:
                gc = wrap(_np_sum_to(g * self.beta if self.beta != 1 else g, self.c_shape))
        return (gx, gw, gc)

    cdef void release_variables(self):
        if self.self_ is not None:
            self.self_.release()
        if self.other is not None:
            self.other.release()


@cython.final
cdef class AddmmBackward0(LinearBackward):
    pass


cdef class LinearMmBackward0(LinearBackward):
    """linear without bias on a 2-D input: PyTorch prints MmBackward0."""
    def name(self):
        return "MmBackward0"

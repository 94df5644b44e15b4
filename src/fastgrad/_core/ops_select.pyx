# cython: boundscheck=False, wraparound=False
"""Selecting ops: sign, clamp, maximum/minimum and where, and the one way a backward zeroes part of
a gradient (select_grad, share_grad, zeros_grad).

Note [Selecting, not masking, gradients]
A backward that passes the gradient on one branch and zero on the other must select,
where(taken, grad, 0), never multiply by a 0/1 mask: the gradient arriving at a branch that was
not taken can be inf or NaN (1 / clamp(x, min=0) at x < 0 sends -inf), and inf * 0 is NaN, so a
multiply leaks NaN into inputs that did not affect the result. PyTorch selects in these rules
(relu, clamp, maximum/minimum, max/min, masked_fill, where, copy slices) and returns zeros_like
for the gradients that are zero by definition (sign, x ** 0, overwritten values). select_grad,
share_grad and zeros_grad below are the one way to write such a rule here; the rules PyTorch
writes as grad * f'(x) (abs, amax/amin, norm, leaky_relu, dropout) keep the product, as its
results do, and say so with the comment `# product: as PyTorch` on or above the line; a source
check in tests/test_nan_masking.py fails on any other product with 0 or with a mask.

The lowest elementwise family: the arithmetic, unary and reduction families above cimport it;
share_grad's product goes through the op table (Note [The op table] in tensor.pxd).
"""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap, grad_meta, set_meta2
from fastgrad._core.recording cimport set_history, set_history1, any_requires_grad2
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.promotion cimport (is_scalar, broadcast_shapes, pyscalar, promote_tt,
                                       promote_ts, same_shape, as_array, cast_array)

cnp.import_array()

cdef object _float32 = np.dtype(np.float32)
cdef OpTable* _ops = op_table()


def sign(input):
    """sign(a): (a > 0) - (a < 0), so sign(NaN) and sign(-0.0) are 0 as in PyTorch; its
    gradient is zero everywhere."""
    cdef TensorBase a = input, out
    x = a._data
    if x.dtype.kind == "b":
        out = wrap(x.copy())
    else:
        out = wrap(as_array(np.subtract(x > 0, x < 0, dtype=x.dtype)))
    cdef Node node
    if a._requires_grad and grad_enabled():
        node = SignBackward0.__new__(SignBackward0)
        set_history1(out, node, a)
    return out


@cython.final
cdef class SignBackward0(Node):
    """grad_a = 0"""
    cdef tuple apply(self, tuple grads):
        return (zeros_grad(grads[0]),)


def clamp(input, min=None, max=None):
    """Clamp to [min, max] (Python numbers or tensors; either may be None)."""
    cdef TensorBase a = input, out
    cdef ClampBackward1 node
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, TensorBase) or isinstance(max, TensorBase):
        return _clamp_tensor(a, min, max)
    x = a._data
    lo = pyscalar(min) if min is not None else None
    hi = pyscalar(max) if max is not None else None
    dt = x.dtype
    for v in (lo, hi):
        if v is not None:       # each bound promotes like a Python number: int64 with 0.25 is float32
            dt = promote_ts(x if dt == x.dtype else np.empty(0, dtype=dt), v)
    # NumPy's maximum/minimum return their second operand at ties, so the bound goes first: -0.0
    # clamped at 0 stays -0.0 as in PyTorch; NaN (input or bound) propagates
    r = cast_array(x, dt)
    if lo is not None:
        r = np.maximum(lo, r)
    if hi is not None:
        r = np.minimum(hi, r)
    out = wrap(as_array(r).astype(dt, copy=False))
    if a._requires_grad and grad_enabled():
        node = ClampBackward1.__new__(ClampBackward1)
        node.self_ = save(a, False)
        node.lo = lo
        node.hi = hi
        set_history1(out, node, a)
    return out


cdef object _in_bounds(object x, object lo, object hi):
    """lo <= x <= hi as a bool array (a None bound is not checked): where clamp passed x
    through. NaN fails every comparison, so NaN inputs and NaN bounds get no gradient."""
    if lo is not None and hi is not None:
        return np.logical_and(x >= lo, x <= hi)
    return x >= lo if lo is not None else x <= hi


cdef object _clamp_tensor(TensorBase a, object min, object max):
    """clamp with tensor bounds (a number bound is used as such), recorded as ClampBackward0."""
    cdef TensorBase tl = min if isinstance(min, TensorBase) else None
    cdef TensorBase th = max if isinstance(max, TensorBase) else None
    cdef TensorBase out
    cdef ClampBackward0 node
    x = a._data
    dt = x.dtype
    shape = (<object>x).shape
    bounds = []
    for b, t in ((min, tl), (max, th)):
        if b is None:
            bounds.append(None)
        elif t is not None:
            dt = _promote_bound(x, dt, t._data)
            shape = broadcast_shapes(shape, (<object>t._data).shape, "clamp")
            bounds.append(t._data)
        else:
            dt = np.promote_types(dt, promote_ts(x, pyscalar(b)))
            bounds.append(pyscalar(b))
    lo = cast_array(bounds[0], dt) if tl is not None else bounds[0]
    hi = cast_array(bounds[1], dt) if th is not None else bounds[1]
    # the bound goes first: NumPy returns the second operand at ties (-0.0 stays -0.0)
    r = cast_array(x, dt)
    if lo is not None:
        r = np.maximum(lo, r)
    if hi is not None:
        r = np.minimum(hi, r)
    out = wrap(np.ascontiguousarray(np.broadcast_to(as_array(r).astype(dt, copy=False), shape)))
    if grad_enabled() and (a._requires_grad or (tl is not None and tl._requires_grad) or
                           (th is not None and th._requires_grad)):
        node = ClampBackward0.__new__(ClampBackward0)
        node.keep = _in_bounds(x, lo, hi)
        if tl is not None and tl._requires_grad:
            node.keep_lo = x < lo if hi is None else np.logical_and(x < lo, lo < hi)
        if th is not None and th._requires_grad:
            node.keep_hi = x > hi if lo is None else np.logical_or(x > hi, hi < lo)
        metas = (grad_meta(out._data, a), grad_meta(out._data, tl), grad_meta(out._data, th))
        if metas != (None, None, None):
            node._in_meta = metas
        set_history(out, node, (a, tl, th))
    return out


cdef object _promote_bound(cnp.ndarray x, object dt, cnp.ndarray b):
    """The result dtype of clamp with a tensor bound: PyTorch's tensor-tensor promotion."""
    cdef cnp.ndarray probe = x if x.dtype == dt else x.astype(dt)
    return promote_tt(probe, b)


@cython.final
cdef class ClampBackward0(Node):
    """clamp with tensor bounds: grad_a = grad where min <= a <= max; grad_min = grad where
    a < min (and min < max); grad_max = grad where a > max (or max < min); else 0."""
    cdef object keep, keep_lo, keep_hi

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        return (select_grad(self.keep, g) if self._next_fns[0] is not None else None,
                select_grad(self.keep_lo, g) if self.keep_lo is not None else None,
                select_grad(self.keep_hi, g) if self.keep_hi is not None else None)

    cdef void release_variables(self):
        self.keep = self.keep_lo = self.keep_hi = None


@cython.final
cdef class ClampBackward1(Node):
    """grad_a = grad where min <= a <= max, else 0"""
    cdef SavedVar self_
    cdef object lo, hi

    cdef tuple apply(self, tuple grads):
        cdef TensorBase a = self.self_.unpack(self)
        x = a._data
        return (select_grad(_in_bounds(x, self.lo, self.hi), grads[0]),)

    cdef void release_variables(self):
        self.self_.release()


def maximum(input, other):
    """Elementwise max of two tensors (NaN propagates); at ties each input gets half the
    gradient, and where either is NaN both get all of it (PyTorch's rule)."""
    return extremum(input, other, True)


def minimum(input, other):
    """Elementwise min of two tensors (NaN propagates); ties and NaN as maximum."""
    return extremum(input, other, False)


cdef object extremum(object input, object other, bint is_max):
    cdef TensorBase a = input, b = other, out
    cdef ExtremumBackward node
    name = "maximum" if is_max else "minimum"
    if not isinstance(other, TensorBase):
        raise TypeError(f"{name}(): argument 'other' must be Tensor, not {type(other).__name__}")
    dt = promote_tt(a._data, b._data)
    if not same_shape(a._data, b._data):
        broadcast_shapes((<object>a._data).shape, (<object>b._data).shape, name)
    f = np.maximum if is_max else np.minimum
    # NumPy returns its second operand at ties, PyTorch `input`: maximum(-0., 0.) is -0.
    out = wrap(as_array(f(cast_array(b._data, dt), cast_array(a._data, dt))))
    if any_requires_grad2(a, b):
        node = (MaximumBackward0.__new__(MaximumBackward0) if is_max
                else MinimumBackward0.__new__(MinimumBackward0))
        x, y = a._data, b._data
        # share 1 for the winner, 1/2 each at a tie, 0 for the loser; NaN compares false both
        # ways, so a NaN pair gives both inputs the whole gradient, as PyTorch does
        tie = as_array(np.where(x == y, 0.5, 1.0)).astype(dt)
        node.share_a = as_array(np.where((x < y) if is_max else (x > y), 0, tie)).astype(dt)
        node.share_b = as_array(np.where((x > y) if is_max else (x < y), 0, tie)).astype(dt)
        set_meta2(node, out._data, a, b)
        set_history(out, node, (a, b))
    return out


cdef class ExtremumBackward(Node):
    """grad_a = grad * share_a where share_a != 0, else 0 (share_grad); the same for b."""
    cdef object share_a, share_b

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        ga = share_grad(self.share_a, g) if self._next_fns[0] is not None else None
        gb = share_grad(self.share_b, g) if self._next_fns[1] is not None else None
        return (ga, gb)

    cdef void release_variables(self):
        self.share_a = self.share_b = None


@cython.final
cdef class MaximumBackward0(ExtremumBackward):
    pass


@cython.final
cdef class MinimumBackward0(ExtremumBackward):
    pass


cdef object where_(object cond, object a, object b):
    """where(cond, a, b): a and b may be tensors or Python numbers."""
    cdef TensorBase c = cond, ta = None, tb = None, out
    cdef WhereBackward0 node
    if c._data.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {c.dtype}; compare first, e.g. where(x > 0, ...)")
    if isinstance(a, TensorBase):
        ta = a
    if isinstance(b, TensorBase):
        tb = b
    for v in (a, b):
        if not isinstance(v, TensorBase) and not is_scalar(v):
            raise TypeError(f"where(): expected a Tensor or a number for input and other, got "
                            f"{type(v).__name__}; wrap arrays with fastgrad.as_tensor")
    if ta is not None and tb is not None:
        dt = promote_tt(ta._data, tb._data)
    elif ta is not None:
        dt = promote_ts(ta._data, pyscalar(b))
    elif tb is not None:
        dt = promote_ts(tb._data, pyscalar(a))
    else:
        dt = np.result_type(a, b)
        dt = _float32 if dt.kind == "f" else dt
    xa = cast_array(ta._data, dt) if ta is not None else pyscalar(a)
    xb = cast_array(tb._data, dt) if tb is not None else pyscalar(b)
    shapes = [(<object>c._data).shape] + [(<object>t._data).shape for t in (ta, tb) if t is not None]
    shape = shapes[0]
    for s in shapes[1:]:
        shape = broadcast_shapes(shape, s, "where")
    out = wrap(as_array(np.where(c._data, xa, xb)).astype(dt, copy=False))
    if grad_enabled() and ((ta is not None and ta._requires_grad) or
                           (tb is not None and tb._requires_grad)):
        node = WhereBackward0.__new__(WhereBackward0)
        node.cond = c._data
        set_meta2(node, out._data, ta, tb)
        set_history(out, node, (ta, tb))
    return out


def where(condition, input, other):
    """where(condition, input, other): elements of input where condition, else other."""
    return where_(condition, input, other)


@cython.final
cdef class WhereBackward0(Node):
    """grad_a = where(cond, grad, 0), grad_b = where(cond, 0, grad)"""
    cdef object cond               # bool ndarray, broadcastable to the output

    cdef tuple apply(self, tuple grads):
        g = grads[0]
        c = wrap(np.broadcast_to(self.cond, (<object>(<TensorBase>g)._data).shape))
        ga = where_(c, g, 0.0) if self._next_fns[0] is not None else None
        gb = where_(c, 0.0, g) if self._next_fns[1] is not None else None
        return (ga, gb)


# --- gradient selection (Note [Selecting, not masking, gradients]) ------------------------------

cdef object select_grad(object keep, object g):
    """g where `keep` (a bool ndarray broadcastable with g), 0 elsewhere, whatever g holds
    there; recorded (a where), so it is differentiable under create_graph."""
    return where_(wrap(as_array(keep)), g, 0.0)


cdef object share_grad(object share, object g):
    """g * share where share != 0, 0 elsewhere (share: a float ndarray of g's dtype holding 1
    for a selected element, 1/k for each of k tied ones, 0 for the others)."""
    cdef cnp.ndarray s = as_array(share)
    cdef cnp.ndarray keep = as_array(s != 0)
    if np.all(s[keep] == 1):
        return select_grad(keep, g)
    return where_(wrap(keep), _ops.mul(g, wrap(s)), 0.0)


cdef object zeros_grad(object g):
    """A zero gradient shaped like g (PyTorch's zeros_like(grad)), not g * 0, which is NaN
    where g is inf or NaN."""
    cdef TensorBase t = g
    return wrap(np.zeros((<object>t._data).shape, dtype=t._data.dtype))

# cython: boundscheck=True, wraparound=True
# (Python-level glue: negative tuple indices and bounds checks stay on; no raw loops here.)
"""einsum: NumPy's einsum with PyTorch's equation rules ('...' broadcast, repeated indices as
diagonals) and a backward that is itself an einsum (EinsumBackward0)."""
cimport cython
cimport numpy as cnp
import numpy as np

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.tensor cimport shape_of as _shape
from fastgrad._core.tensor cimport TensorBase, wrap
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.ops_reduce cimport sum_to, acc_for
from fastgrad._core.ops_view cimport reshape_c
from fastgrad._core.ops_view import expand
from fastgrad._core.ops_strided import _diag_scatter

cnp.import_array()


# --- einsum --------------------------------------------------------------------------------------

cdef str _LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


cdef tuple _explicit(str equation, list arrs):
    """The equation with '...' replaced by letters and the output written out: (input terms,
    output term). Ellipsis dims are right-aligned across operands (broadcast like PyTorch)."""
    cdef Py_ssize_t i, e, n_ell = 0
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(arrs):
        raise RuntimeError(f"einsum(): more operands were provided than specified in the "
                           f"equation ({len(arrs)} operands for {len(ins)} terms)"
                           if len(arrs) > len(ins) else
                           f"einsum(): fewer operands were provided than specified in the "
                           f"equation ({len(arrs)} operands for {len(ins)} terms)")
    for c in eq:
        if c not in _LETTERS and c not in ".,->":
            raise RuntimeError(f"einsum(): invalid subscript given at index "
                               f"{equation.index(c)} in the equation string, subscripts must "
                               f"be in [a-zA-Z]")
    free = [c for c in _LETTERS if c not in eq]
    ells = []
    for i in range(len(ins)):
        term = ins[i]
        nd = (<cnp.ndarray>arrs[i]).ndim
        if "..." in term:
            e = nd - (len(term) - 3)
            if e < 0 or term.count("...") > 1 or "." in term.replace("...", "", 1):
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(term) - 3}) is more than the number of dimensions "
                                   f"({nd}) for operand {i}" if e < 0 else
                                   f"einsum(): found '.' for operand {i} that is not part of "
                                   f"any ellipsis")
            ells.append(e)
            n_ell = max(n_ell, e)
        else:
            if "." in term:
                raise RuntimeError(f"einsum(): found '.' for operand {i} that is not part of "
                                   f"any ellipsis")
            if len(term) != nd:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({len(term)}) does not match the number of dimensions "
                                   f"({nd}) for operand {i} and no ellipsis was given")
            ells.append(-1)
    ell = "".join(free[:n_ell])
    ins = [t.replace("...", ell[n_ell - e:]) if e >= 0 else t for t, e in zip(ins, ells)]
    if arrow:
        if "..." in rhs:
            rhs = rhs.replace("...", ell)
        for c in rhs:
            if c not in "".join(ins):
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                                   f"equation for any input operand")
            if rhs.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                                   f"the output")
    else:
        joined = "".join(ins)
        rhs = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1
                                   and c not in ell))
    return tuple(ins), rhs


cdef object _accumulator(tuple ins, str rhs, list arrs):
    """The dtype np.einsum is to accumulate in, or None for its own (Note [Sums' accumulators] in
    ops_reduce.pyx): float16 in float32; one float32 operand summed over more than a few thousand
    terms per result in float64 (products of several operands go through BLAS, which keeps its
    sums in registers, and stay float32)."""
    cdef Py_ssize_t terms = 1
    dt = np.result_type(*arrs)
    size = {}
    for term, x in zip(ins, arrs):
        for c, n in zip(term, x.shape):
            size[c] = max(size.get(c, 1), n)
    for c, n in size.items():
        if c not in rhs:
            terms *= n
    acc = acc_for(dt, terms, False)
    return acc if len(arrs) == 1 or dt.itemsize < 4 else None


def einsum(equation, *operands):
    """np.einsum with gradients, '...' and repeated indices (diagonals): each operand's gradient
    is an einsum of the output's gradient with the other operands over the operand's distinct
    indices, broadcast over indices only it had and written onto its diagonal for repeated
    ones (EinsumBackward0)."""
    cdef TensorBase out
    cdef EinsumBackward0 node
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    arrs = [(<TensorBase>o)._data for o in operands]
    ins, rhs = _explicit(equation, arrs)
    acc = _accumulator(ins, rhs, arrs)
    try:
        r = np.einsum(f"{','.join(ins)}->{rhs}", *arrs, optimize=len(arrs) > 1, dtype=acc)
    except ValueError as e:
        shapes = [list(x.shape) for x in arrs]
        raise RuntimeError(f"einsum(): operands do not match the equation '{equation}' "
                           f"(shapes {shapes}): {e}")
    r = np.asarray(r)
    if acc is not None:
        r = r.astype(np.result_type(*arrs))
    out = wrap(np.ascontiguousarray(r) if r.ndim else r.copy())
    if grad_enabled() and any((<TensorBase>o)._requires_grad for o in operands):
        node = EinsumBackward0.__new__(EinsumBackward0)
        node.ins = ins
        node.rhs = rhs
        node.saved = tuple(save(o, False) for o in operands)
        set_history(out, node, tuple(operands))
    return out


@cython.final
cdef class EinsumBackward0(Node):
    """grad_i = einsum(rhs, other terms -> distinct indices of term_i), summed over dims term_i
    broadcast (size 1), expanded over indices only term_i had, written onto term_i's diagonal."""
    cdef tuple ins, saved
    cdef str rhs

    cdef tuple apply(self, tuple grads):
        cdef TensorBase g = grads[0], op
        ops = [(<SavedVar>s).unpack(self) for s in self.saved]
        res = []
        for i, term in enumerate(self.ins):
            if self._next_fns[i] is None:
                res.append(None)
                continue
            op = ops[i]
            shape = _shape(op)
            uniq = "".join(c for k, c in enumerate(term) if term.index(c) == k)
            size = {c: shape[term.index(c)] for c in uniq}
            others = [self.ins[j] for j in range(len(self.ins)) if j != i]
            avail = set(self.rhs).union(*[set(o) for o in others])
            keep = "".join(c for c in uniq if c in avail)
            gi = einsum(",".join([self.rhs] + others) + "->" + keep, g,
                        *[ops[j] for j in range(len(ops)) if j != i])
            gi = sum_to(gi, tuple(size[c] for c in keep))          # broadcast size-1 dims
            if keep != uniq:
                gi = expand(reshape_c(gi, tuple(size[c] if c in avail else 1 for c in uniq)),
                            tuple(size[c] for c in uniq))
            if uniq != term:                                         # repeated: a diagonal
                gi = _diag_scatter(gi, shape, np.ascontiguousarray(np.einsum(
                    f"{term}->{uniq}", np.arange(op._data.size, dtype=np.int64).reshape(shape))))
            res.append(gi)
        return tuple(res)

    cdef void release_variables(self):
        for s in self.saved:
            (<SavedVar>s).release()

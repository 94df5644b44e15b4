# cython: boundscheck=False, wraparound=False
"""FormulaBackward: graph nodes whose backward is a rule written in recorded tensor ops.

For ops that are not on the per-op hot path (elementwise math beyond the hot set, sorting,
scans, scatters): their forward computes with NumPy or a small loop, and their backward is a
plain function of the incoming gradient and the saved tensors, so it needs no kernel of its
own and is differentiable again under create_graph.

Note [Formula nodes]
A FormulaBackward node keeps the tensors its rule needs as SavedVars (so the in-place version
checks and release after backward hold as for every node) and a module-level rule function
rule(grad, saved, extra) -> one gradient (or None) per input. The rule is written with
recorded tensor ops, so under create_graph the gradient is itself differentiable. Each op has its
own node class, named as PyTorch names it (Log1PBackward0 ...), made once at import as a Python
subclass of FormulaBackward with no instance dict.
"""
cimport numpy as cnp

from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase
from fastgrad._core.recording cimport set_history
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.grad_mode cimport grad_enabled

cnp.import_array()


cdef class FormulaBackward(Node):
    """Base of the nodes whose backward is a rule of recorded ops (Note [Formula nodes])."""

    cdef tuple apply(self, tuple grads):
        cdef SavedVar s
        saved = tuple([s.unpack(self) for s in self._saved])
        return tuple(self._rule(grads[0], saved, self._extra))

    cdef void release_variables(self):
        cdef SavedVar s
        for s in self._saved:
            s.release()


_NODE_CLASSES = {}


cdef type _node_class(str name):
    cls = _NODE_CLASSES.get(name)
    if cls is None:
        cls = type(name, (FormulaBackward,), {"__slots__": (), "__module__": __name__,
                                              "__doc__": f"{name}: see Note [Formula nodes]."})
        _NODE_CLASSES[name] = cls
    return cls


cdef object _meta(cnp.ndarray out, TensorBase t):
    if t is None or not t._requires_grad:
        return None
    if (<object>out).shape == (<object>t._data).shape and out.dtype == t._data.dtype:
        return None
    return ((<object>t._data).shape, t._data.dtype)


cdef object record(TensorBase out, str name, object rule, tuple inputs, tuple saved_inputs,
                   bint save_output, object extra):
    """Record a FormulaBackward node `name` producing `out` from `inputs` (TensorBase or None).
    The rule receives saved_inputs' tensors, then `out` when save_output."""
    cdef FormulaBackward node
    cdef TensorBase t
    cdef bint needed = False
    for x in inputs:
        if x is not None and (<TensorBase>x)._requires_grad:
            needed = True
    if not needed or not grad_enabled():
        return out
    node = _node_class(name).__new__(_node_class(name))
    node._rule = rule
    node._extra = extra
    saved = [save(<TensorBase>t, False) for t in saved_inputs]
    metas = [_meta(out._data, <TensorBase>t) for t in inputs]
    if any(m is not None for m in metas):
        node._in_meta = tuple(metas)
    set_history(out, node, inputs)
    if save_output:
        saved.append(save(out, True))
    node._saved = tuple(saved)
    return out

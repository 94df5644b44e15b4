# cython: boundscheck=False, wraparound=False
"""Recording ops in the graph: `set_history` gives an op's node its edges to the nodes that made
its inputs; an input that is a leaf requiring grad is reached through its AccumulateGrad, the
sink that adds the incoming gradient into the leaf's .grad, made here on first use.

AccumulateGrad is a Node, but it lives here, above TensorBase, rather than beside Node in
node.pyx: it holds a TensorBase and adds into its .grad, so it must cimport tensor, which
cimports node. TensorBase never needs it (a leaf keeps only a weak reference to its
AccumulateGrad), and `set_history`, which makes them, is beside it.
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject
from cpython.weakref cimport PyWeakref_GetObject
from cpython.pythread cimport (PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_get_thread_ident)
import weakref

import numpy as np

from fastgrad._core.node cimport Node, next_sequence_nr
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.anomaly_mode cimport anomaly_enabled, forward_trace
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap, check_hook_grad
from fastgrad._core cimport locks

cnp.import_array()

cdef OpTable* _ops = op_table()


cdef inline bint _needs(TensorBase t) noexcept:
    return t is not None and t._requires_grad


cdef bint any_requires_grad2(TensorBase a, TensorBase b) noexcept:
    """True when an op on (a, b) must record a node: grad mode on and an input requires grad."""
    if not grad_enabled():
        return False
    return _needs(a) or _needs(b)


cdef inline object _live_accumulator(TensorBase leaf):
    cdef PyObject* ref
    if leaf._acc is not None:
        ref = PyWeakref_GetObject(leaf._acc)
        if ref != <PyObject*>None:
            return <object>ref
    return None


cdef Node accumulator(TensorBase leaf):
    """The leaf's AccumulateGrad, created once and cached weakly (the node holds the leaf).
    One leaf has at most one live AccumulateGrad, whose lock guards its .grad: allocating the new
    node can run a garbage collection and so another thread, which may make one for the same
    leaf meanwhile; the cache is looked at again after the allocations, and set with nothing
    between the look and the store."""
    cdef AccumulateGrad acc
    cdef object ref
    live = _live_accumulator(leaf)
    if live is not None:
        return <AccumulateGrad>live
    acc = AccumulateGrad.__new__(AccumulateGrad)
    acc.variable = leaf
    acc._seq = -1                 # sinks: ordering among them does not matter
    ref = weakref.ref(acc)
    live = _live_accumulator(leaf)
    if live is not None:
        return <AccumulateGrad>live
    leaf._acc = ref
    return acc


cdef inline Node _edge(TensorBase t):
    if t is None or not t._requires_grad:
        return None
    if t._grad_fn is not None:
        return t._grad_fn
    return accumulator(t)


cdef void set_history1(TensorBase out, Node node, TensorBase a) except *:
    """Record `node` as the producer of `out`, with one input `a`."""
    node._next_fns = (_edge(a),)
    if a._grad_fn is not None and a._output_nr != 0:
        node._next_nrs = (a._output_nr,)
    node._seq = next_sequence_nr()
    if anomaly_enabled():              # the forward stack, for anomaly mode's report
        node._trace = forward_trace()
    out._grad_fn = node
    out._requires_grad = True


cdef void set_history2(TensorBase out, Node node, TensorBase a, TensorBase b) except *:
    """set_history for two inputs (either may be None), without building lists."""
    node._next_fns = (_edge(a), _edge(b))
    if (a is not None and a._grad_fn is not None and a._output_nr != 0) or \
            (b is not None and b._grad_fn is not None and b._output_nr != 0):
        node._next_nrs = (a._output_nr if a is not None and a._grad_fn is not None else 0,
                          b._output_nr if b is not None and b._grad_fn is not None else 0)
    node._seq = next_sequence_nr()
    if anomaly_enabled():              # the forward stack, for anomaly mode's report
        node._trace = forward_trace()
    out._grad_fn = node
    out._requires_grad = True


cdef void set_history(TensorBase out, Node node, tuple inputs) except *:
    """Record `node` as the producer of `out`; `inputs` are TensorBase or None, in forward order."""
    cdef Py_ssize_t i, n = len(inputs)
    cdef TensorBase t
    cdef list fns = [None] * n
    cdef list nrs = None
    for i in range(n):
        t = <TensorBase>inputs[i]
        fns[i] = _edge(t)
        if t is not None and t._grad_fn is not None and t._output_nr != 0:
            if nrs is None:
                nrs = [0] * n
            nrs[i] = t._output_nr
    node._next_fns = tuple(fns)
    if nrs is not None:
        node._next_nrs = tuple(nrs)
    node._seq = next_sequence_nr()
    if anomaly_enabled():              # the forward stack, for anomaly mode's report
        node._trace = forward_trace()
    out._grad_fn = node
    out._requires_grad = True


@cython.final
cdef class AccumulateGrad(Node):
    """Sink of the graph for one leaf: adds the incoming gradient into `variable.grad`."""

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef tuple apply(self, tuple grads):
        self.accumulate(grads[0], False)
        return ()

    cdef void accumulate(self, TensorBase g, bint owned) except *:
        """Add g into variable.grad. `owned`: g is a sum the engine allocated and nobody else
        holds, so a leaf without a .grad takes it as it is (no copy). Tensor hooks run first,
        outside the lock (as torch's); the read-add-write of .grad and the post-accumulate hooks
        hold the node's lock, since the add releases the GIL for large tensors and another
        thread's backward may be adding into the same .grad (Note [Backward from several
        threads] in engine.pyx)."""
        cdef TensorBase var = self.variable
        cdef unsigned long me
        if g is None:
            return
        if var._hooks is not None:
            for hook in list(var._hooks.values()):
                r = hook(g)
                if r is not None:
                    g = check_hook_grad(hook, g, r)
            owned = False                          # a hook may have kept g
        me = PyThread_get_thread_ident()
        if self._holder == me:                     # from this thread's post-accumulate hook
            self._add(g, owned)
            return
        if self._lock == NULL:
            self._lock = PyThread_allocate_lock()
            if self._lock == NULL:
                raise MemoryError("could not allocate the lock of an AccumulateGrad node")
        locks.acquire(self._lock)
        self._holder = me
        try:
            self._add(g, owned)
        finally:
            self._holder = 0
            locks.release(self._lock)

    cdef void _add(self, TensorBase g, bint owned) except *:
        cdef TensorBase var = self.variable
        cdef TensorBase old
        cdef cnp.ndarray gd
        old = var._grad
        gd = g._data
        if old is None:
            if grad_enabled():
                var._grad = g                      # create_graph: keep the graph of the grad
            elif cnp.PyArray_TYPE(gd) != cnp.PyArray_TYPE(var._data):
                var._grad = wrap(np.array(gd, dtype=var._data.dtype, order="C", copy=True))
            elif owned and cnp.PyArray_IS_C_CONTIGUOUS(gd):
                var._grad = g
            else:
                var._grad = wrap(cnp.PyArray_NewCopy(gd, cnp.NPY_CORDER))
        elif grad_enabled() or old._requires_grad:
            var._grad = _ops.add(old, g)             # out of place: the old grad may be in a graph
        else:
            if not _ops.add_into(old._data, gd):
                np.add(old._data, gd, out=old._data, casting="unsafe")
            old.bump_version()
        if var._post_acc_hooks is not None:
            for hook in list(var._post_acc_hooks.values()):
                hook(var)

    @property
    def variable(self):
        return self.variable


def _get_accumulator(TensorBase leaf):
    """The AccumulateGrad node of a leaf that requires grad (for the engine's roots/targets)."""
    return accumulator(leaf)

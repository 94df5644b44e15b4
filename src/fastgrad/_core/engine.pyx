# cython: boundscheck=False, wraparound=False
"""The backward engine: runs a graph of Nodes from its roots to its leaves.

Like micrograd's `backward` (seed, order, apply), but iterative and dependency-counted as in
PyTorch: a walk over a worklist counts, for every reachable node, the edges that will bring it a
gradient; a node becomes ready when all have arrived, and the ready node with the highest
sequence_nr runs first. Gradients for one node are summed per output slot in its InputBuffer
(`_buf` of the node's BackwardState). After a node runs it releases its saved tensors unless the
graph is kept.
No recursion anywhere: a 1,000,000-node chain runs in constant C-stack depth.

Note [Input buffers]
A node with one output (nearly all) keeps its pending gradient in `_buf` as it is; a node with
several keeps a list, one entry per output slot. The first gradient to arrive is stored as it is
(it may be shared: AddBackward0 hands the same tensor to both inputs). The second is summed into a
new tensor that only the engine holds (`_owned`), and later ones are added into that tensor in
place, so a leaf used k times costs one allocation, not k-1. Under create_graph every sum is out
of place (it is recorded). An owned sum that reaches a leaf without .grad becomes its .grad as is.
"""
cimport cython
cimport numpy as cnp
from cpython.object cimport PyObject
from cpython.ref cimport Py_REFCNT
from cpython.tuple cimport PyTuple_GET_ITEM
import warnings

import numpy as np

from fastgrad._core.node cimport BackwardState, Node, next_epoch
from fastgrad._core.grad_mode cimport grad_enabled, grad_mode_flag, set_grad_enabled_c
from fastgrad._core.anomaly_mode cimport anomaly_enabled, anomaly_check_nan
from fastgrad._core.tensor cimport (TensorBase, OpTable, op_table, accumulate_nonleaf, wrap,
                                    check_hook_grad)
from fastgrad._core.recording cimport AccumulateGrad, accumulator

cnp.import_array()

# gradient sums, casts and un-broadcasting go through the op table (Note [The op table] in
# tensor.pxd): the engine sits below the op modules
cdef OpTable* _ops = op_table()


# --- ready heap: max-heap of Nodes by sequence_nr ------------------------------------------------

cdef inline void _heap_push(list heap, Node node):
    cdef Py_ssize_t i = len(heap), parent
    heap.append(node)
    while i > 0:
        parent = (i - 1) >> 1
        if (<Node>heap[parent])._seq >= node._seq:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = node


cdef inline Node _heap_pop(list heap):
    cdef Node top = heap[0], last = heap.pop()
    cdef Py_ssize_t n = len(heap), i = 0, c
    if n == 0:
        return top
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (<Node>heap[c + 1])._seq > (<Node>heap[c])._seq:
            c += 1
        if (<Node>heap[c])._seq <= last._seq:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = last
    return top


# --- graph discovery -----------------------------------------------------------------------------

# Note [Backward from several threads]
# Python threads may run backward at the same time: on separate graphs that end in the same leaves
# (parameters), or over one graph kept with retain_graph, or one nested in another (a custom
# Function's backward running a backward). Kernels release the GIL, so a call can stop anywhere
# a kernel runs and another call run meanwhile. Two things are shared between calls:
# - The per-call scratch of a node (dependency count, input buffer, `_owned`, `_needed`). A node
#   inherits these fields from BackwardState; the call that reaches a node first while no other
#   running call owns it claims it (`_epoch`, reset when the call ends) and uses the node's own
#   fields, exactly as a call alone does. A call that reaches a node another running call owns
#   keeps a separate BackwardState for it in its `side` dict. So a lone call, the common case,
#   pays one comparison per state lookup, and concurrent calls never see each other's counts or
#   buffers. Claiming is a load and a store with nothing between them that could run another
#   thread (no allocation, no Python code), so under the GIL two calls cannot both claim a node.
# - A leaf's .grad. AccumulateGrad holds a lock (made on first use, re-entered by the same
#   thread) across the read-add-write of .grad and the post-accumulate hooks, as torch's holds a
#   mutex; tensor hooks run before it, outside. A leaf has one live AccumulateGrad at a time (see
#   _accumulator), so one lock per leaf. Non-leaf .grad (retain_grad, backward(inputs=)) is
#   added under one lock shared by all non-leaves (a rare path).
# `_steal` stays on the node: every call writes it just before apply and the two rules that read
# it do so before anything that could let another thread run (Note [Stealing the incoming
# gradient]), so a call only ever reads its own value.
# Other module state in _core needs nothing more: the small array cache (storage.pyx) and the
# sequence and epoch counters (node.pyx) are read and written with the GIL held and nothing
# between; grad and inference mode are per thread (grad_mode.pyx); anomaly mode is one flag for
# the process, as in torch.
# Weighed against this, one engine lock held for a whole backward would serialise calls that share
# nothing, deadlock a hook that waits on another thread's backward, and still need care for
# nested calls in one thread. Cost, in instructions counted by callgrind (timings on a shared
# 2-core machine do not resolve a few percent), backward alone, before -> after: W9's chain
# 1980 -> 1500 per node, W1 (n=1) 2570 -> 2100 per op. The state lookups and claims add about 60
# per node; walking the `nodes` list in place of a separate DFS stack saves about 250 (in a chain
# that stack went between 0 and 1 entries, and list.append/pop reallocated it at every step). A
# leaf's lock adds about 340 per leaf and backward (made, taken, released, freed with the node).

cdef inline BackwardState _state(Node node, Py_ssize_t epoch, dict side):
    """node's state in backward call `epoch`: the node itself when the call owns it, else the
    call's own copy (Note [Backward from several threads])."""
    if node._epoch == epoch:
        return node
    return <BackwardState>side[node]


cdef inline BackwardState _visit(Node node, Py_ssize_t epoch, dict side, bint needed, list nodes):
    """node's state in call `epoch`, made fresh on the call's first visit (the node then joins
    `nodes`): the node itself when no other running call owns it, which the call claims, else a
    separate BackwardState kept in `side`. Claiming is a check and a store with nothing between
    them that could let another thread run."""
    cdef BackwardState st
    if node._epoch == epoch:
        return node
    if side:
        st = side.get(node)
        if st is not None:
            return st
    if node._epoch == 0:
        node._epoch = epoch
        st = node
    else:
        st = BackwardState.__new__(BackwardState)
        side[node] = st
    st._deps = 0
    st._buf = None
    st._owned = False
    st._needed = needed
    nodes.append(node)
    return st


cdef void _discover(list roots, Py_ssize_t epoch, bint needed, dict side, list nodes) except *:
    """Every node reachable from `roots` into `nodes`, its state's `_deps` = number of incoming
    edges and `_needed` = `needed`."""
    cdef Py_ssize_t seen
    cdef Node node
    cdef BackwardState st
    for node in roots:
        _visit(node, epoch, side, needed, nodes)
    seen = 0
    while seen < len(nodes):
        node = <Node>nodes[seen]
        seen += 1
        if node._next_fns is None:
            continue
        for obj in node._next_fns:
            if obj is not None:
                st = _visit(<Node>obj, epoch, side, needed, nodes)
                st._deps += 1


cdef void _mark_needed(list nodes, dict targets, bint accumulate, Py_ssize_t epoch,
                       dict side) except *:
    """_needed: the node must run because it leads to a requested input. Edges go from higher to
    lower sequence_nr (sinks have -1), so one pass in ascending order sees children first."""
    cdef Node node
    cdef BackwardState st
    cdef Py_ssize_t i
    for node in sorted(nodes, key=_seq_key):
        st = _state(node, epoch, side)
        if type(node) is AccumulateGrad:
            st._needed = accumulate and (node, 0) in targets
            continue
        st._needed = False
        if node._next_fns is None:
            continue
        for i in range(len(node._next_fns)):
            obj = node._next_fns[i]
            if obj is None:
                continue
            nr = 0 if node._next_nrs is None else node._next_nrs[i]
            if _state(<Node>obj, epoch, side)._needed or (obj, nr) in targets:
                st._needed = True
                break


def _seq_key(Node n):
    return n._seq


# --- running -------------------------------------------------------------------------------------

# Note [Stealing the incoming gradient]
# A node's incoming gradient is usually a fresh array that the node before it made and nothing
# else holds (_sole_ref: no second edge, hook, retain_grad or capture refers to it). When no
# graph is being created and the node has no hooks, the engine sets node._steal for the apply
# call, and elementwise rules whose output has the gradient's shape and dtype (the unary rules
# from a saved output, mul's two gradients) write their result into that array and return its
# tensor instead of allocating: in W1's chain, three of every four ops' backward allocate
# nothing. Leaves take such a gradient as their .grad the same way (AccumulateGrad, below).

cdef inline bint _sole_ref(tuple grads) noexcept:
    """grads[0] is a gradient only this tuple holds, on a fresh C-contiguous array only it holds:
    a leaf without .grad may take it as it is (as torch's AccumulateGrad steals a gradient whose
    use count is what the engine holds). A gradient passed to two edges, kept by a hook or by
    retain_grad, captured, or viewing another array has more references and is copied."""
    cdef PyObject* p = PyTuple_GET_ITEM(grads, 0)
    cdef PyObject* a
    if p == <PyObject*>None or Py_REFCNT(<object>p) != 1:
        return False
    if (<TensorBase>p)._base is not None or (<TensorBase>p)._grad_fn is not None:
        return False
    a = <PyObject*>(<TensorBase>p)._data
    return Py_REFCNT(<object>a) == 1 and \
        cnp.PyArray_BASE(<cnp.ndarray>a) == NULL and \
        cnp.PyArray_CHKFLAGS(<cnp.ndarray>a, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_WRITEABLE |
                             cnp.NPY_ARRAY_OWNDATA)


cdef inline bint _any_grad(tuple grads):
    for g in grads:
        if g is not None:
            return True
    return False


cdef void _buf_add(Node node, BackwardState st, Py_ssize_t slot, object g,
                   bint create_graph) except *:
    """Add gradient g for output `slot` into node's InputBuffer `st._buf` (Note [Input
    buffers])."""
    cdef list buf
    if node._n_out != 1:
        if st._buf is None:
            st._buf = [None] * node._n_out
        buf = st._buf
        buf[slot] = g if buf[slot] is None else _ops.add(buf[slot], g)
        return
    old = st._buf
    if old is None:
        st._buf = g
    elif st._owned and _ops.add_into((<TensorBase>old)._data, (<TensorBase>g)._data):
        pass
    else:
        st._buf = _ops.add(old, g)
        st._owned = not create_graph


cdef inline tuple _take_buf(Node node, BackwardState st):
    """The node's gradients, one per output slot, and its buffer cleared."""
    buf = st._buf
    st._buf = None
    if node._n_out == 1:
        return (buf,)
    if buf is None:
        return (None,) * node._n_out
    return tuple(<list>buf)


cdef tuple _validate(Node node, tuple out):
    """Gradients back to each input's shape and dtype (Note [Un-broadcasting in the engine])."""
    cdef Py_ssize_t i, n = 0 if node._next_fns is None else len(node._next_fns)
    cdef TensorBase g
    if len(out) != n:
        raise RuntimeError(f"function {type(node).__name__} returned an incorrect number of "
                           f"gradients (expected {n}, got {len(out)})")
    if node._in_meta is None:
        return out
    res = list(out)
    for i in range(n):
        meta = node._in_meta[i] if i < len(node._in_meta) else None
        if meta is None or res[i] is None:
            continue
        g = res[i]
        shape, dt = meta
        if (<object>g._data).shape != shape:
            g = _ops.sum_to(g, shape)
        if g._data.dtype != dt:
            g = _ops.to_dtype(g, dt)             # recorded only under create_graph
        res[i] = g
    return tuple(res)


cdef void _warn_trace(Node node) except *:
    """Anomaly mode: say which forward line made the node whose backward failed."""
    warnings.warn(f"Error detected in {type(node).__name__}. Traceback of forward call that "
                  f"caused the error:\n{node._trace}", UserWarning, stacklevel=3)


cdef void _check_nan(Node node, tuple out) except *:
    for i, g in enumerate(out):
        if g is not None and np.isnan((<TensorBase>g)._data).any():
            raise RuntimeError(f"Function '{type(node).__name__}' returned nan values in its "
                               f"{i}th output.")


cdef tuple _hook_result(Node node, object hook, object r, tuple old, str what):
    """A hook's replacement for the gradients `old`: a sequence of as many Tensors or None, each
    of the dtype and shape of the one it replaces, checked before any is used as a Tensor (a
    wrong type or shape here would otherwise reach the backward formulas)."""
    cdef Py_ssize_t n = len(old)
    if not isinstance(r, (tuple, list)) or len(r) != n or \
            not all(g is None or isinstance(g, TensorBase) for g in r):
        raise TypeError(f"a {what} of {type(node).__name__} must return None or a tuple of {n} "
                        f"Tensors (or None), but returned {type(r).__name__}")
    return tuple([None if r[i] is None else check_hook_grad(hook, old[i], r[i])
                  for i in range(n)])


cdef tuple _run_hooks(Node node, tuple grads):
    for hook in list(node._pre_hooks.values()):
        r = hook(grads)
        if r is not None:
            grads = _hook_result(node, hook, r, grads, "pre-hook")
    return grads


def run_backward(tuple roots, tuple root_grads, bint keep_graph, bint create_graph,
                 tuple inputs, bint accumulate, bint allow_unused=False):
    """Backpropagate `root_grads` from `roots`.

    accumulate=True (Tensor.backward / autograd.backward): add into leaves' .grad (only those in
    `inputs` when given). accumulate=False (autograd.grad): return the gradients of `inputs`,
    touching no .grad. Grad mode is `create_graph` while nodes run.
    """
    return _run(roots, root_grads, keep_graph, create_graph, inputs, accumulate, allow_unused)


def tensor_backward(TensorBase self, gradient=None, retain_graph=None, create_graph=False,
                    inputs=None):
    """Accumulate d(self)/d(leaf) into every leaf's .grad (see fastgrad.autograd.backward)."""
    cdef cnp.ndarray d = self._data
    cdef int t = cnp.PyArray_TYPE(d)
    if gradient is None and inputs is None and create_graph is False and \
            (retain_graph is None or retain_graph is False or retain_graph is True) and \
            (self._grad_fn is not None or self._requires_grad) and cnp.PyArray_SIZE(d) == 1 and \
            (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64):
        # the common `loss.backward()`: straight into the engine
        _run((self,), (_seed(d),), retain_graph is True, False, None, True, False)
        return
    backward((self,), None if gradient is None else _as_tuple(gradient), retain_graph,
             create_graph, None if inputs is None else _as_tuple(inputs))


cdef tuple _as_tuple(object x):
    return (x,) if isinstance(x, TensorBase) else tuple(x)


def backward(tuple tensors, tuple grad_tensors, retain_graph, bint create_graph, tuple inputs):
    """fastgrad.autograd.backward on tuples (grad_tensors: Tensors or None; None: all implicit):
    accumulate the gradients of `tensors` into the .grad of leaves, or only of `inputs`."""
    if inputs is not None and len(inputs) == 0:
        raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    _check_roots(tensors)
    grads = make_grads(tensors, grad_tensors)
    _run(tensors, grads, create_graph if retain_graph is None else bool(retain_graph),
         create_graph, inputs, True, False)


cdef void _check_roots(tuple tensors) except *:
    cdef TensorBase t
    for i in range(len(tensors)):
        t = tensors[i]
        if not t._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               f"a grad_fn")


def make_grads(tuple outputs, tuple grads):
    """Each output's seed gradient (PyTorch's rules): the one given (a Tensor of the output's
    shape, cast to its dtype when floating), or for None a 1 of a one-element floating output."""
    cdef TensorBase o, g
    cdef Py_ssize_t i, n = len(outputs)
    if grads is None:
        grads = (None,) * n
    if len(grads) != n:
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got "
                           f"{len(grads)} gradients for {n} outputs")
    out = []
    for i in range(n):
        o = outputs[i]
        if grads[i] is None:
            if o._data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (output {i} has "
                    f"shape {list(o.shape)}); pass `gradient=` with the output's shape, or "
                    f"reduce it first, e.g. y.sum().backward()")
            if o._data.dtype.kind != "f":
                raise RuntimeError(f"grad can be implicitly created only for real scalar "
                                   f"outputs but got {o.dtype}")
            g = _seed(o._data)
        else:
            if not isinstance(grads[i], TensorBase):
                raise TypeError(f"gradients can be either Tensors or None, but got "
                                f"{type(grads[i]).__name__}")
            g = grads[i]
            if (<object>g._data).shape != (<object>o._data).shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape} and output[{i}] has a shape of {o.shape}.")
            if g._data.dtype != o._data.dtype and g._data.dtype.kind == "f":
                g = _ops.to_dtype(g, o._data.dtype)
        out.append(g)
    return tuple(out)


cdef TensorBase _seed(cnp.ndarray d):
    cdef int t = cnp.PyArray_TYPE(d)
    cdef cnp.ndarray seed
    if t == cnp.NPY_FLOAT32:
        seed = cnp.PyArray_EMPTY(d.ndim, cnp.PyArray_DIMS(d), t, 0)
        (<float*>cnp.PyArray_DATA(seed))[0] = 1
    elif t == cnp.NPY_FLOAT64:
        seed = cnp.PyArray_EMPTY(d.ndim, cnp.PyArray_DIMS(d), t, 0)
        (<double*>cnp.PyArray_DATA(seed))[0] = 1
    else:
        seed = np.ones((<object>d).shape, dtype=d.dtype)
    return wrap(seed)


cdef object _run(tuple roots, tuple root_grads, bint keep_graph, bint create_graph,
                 tuple inputs, bint accumulate, bint allow_unused):
    cdef Py_ssize_t epoch = next_epoch(), i
    cdef bint owned
    cdef TensorBase t
    cdef Node node = None, nxt, pending = None
    cdef BackwardState st, nst
    cdef list root_nodes = [], heap = [], nodes = []
    cdef dict targets = None, side = {}
    cdef tuple grads, out
    cdef bint prev_mode = grad_mode_flag()

    for i in range(len(roots)):
        t = roots[i]
        node = t._grad_fn
        if node is None:
            if not t._requires_grad:
                raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                                   f"have a grad_fn")
            node = accumulator(t)
        root_nodes.append(node)

    captured = None
    if inputs is not None:
        targets = {}
        for i in range(len(inputs)):
            t = inputs[i]
            if t._grad_fn is not None:
                key = (t._grad_fn, t._output_nr)
            else:
                key = (accumulator(t), 0) if t._requires_grad else (None, 0)
            targets.setdefault(key, []).append(i)
        captured = [None] * len(inputs)

    try:
        _discover(root_nodes, epoch, inputs is None, side, nodes)
        if targets is not None:
            _mark_needed(nodes, targets, accumulate, epoch, side)
        for i in range(len(root_nodes)):
            node = root_nodes[i]
            st = _state(node, epoch, side)
            t = roots[i]
            _buf_add(node, st, t._output_nr if t._grad_fn is not None else 0, root_grads[i],
                     create_graph)
            st._owned = False                        # a root's seed belongs to the caller
        for node in root_nodes:
            st = _state(node, epoch, side)
            if st._deps == 0 and st._buf is not None:
                st._deps = -1                        # queued once
                _heap_push(heap, node)

        set_grad_enabled_c(create_graph)
        while pending is not None or heap:
            # the ready node with the highest sequence_nr; in a chain the one just made ready
            # (`pending`) runs without a trip through the heap
            if pending is not None:
                if heap and (<Node>heap[0])._seq > pending._seq:
                    _heap_push(heap, pending)
                    node = _heap_pop(heap)
                else:
                    node = pending
                pending = None
            else:
                node = _heap_pop(heap)
            st = _state(node, epoch, side)
            owned = st._owned and node._pre_hooks is None
            grads = _take_buf(node, st)
            if targets is not None:
                for slot in range(node._n_out):
                    idx = targets.get((node, slot))
                    if idx is not None and grads[slot] is not None:
                        if node._pre_hooks is not None and type(node) is not AccumulateGrad:
                            grads = _run_hooks(node, grads)
                        for j in idx:
                            captured[j] = grads[slot]
            out = None
            if st._needed and _any_grad(grads):
                if node._pre_hooks is not None:
                    grads = _run_hooks(node, grads)
                if type(node) is AccumulateGrad:
                    if not owned and not create_graph and node._pre_hooks is None:
                        owned = _sole_ref(grads)
                    (<AccumulateGrad>node).accumulate(grads[0], owned)
                    out = ()
                else:
                    node._steal = not create_graph and node._pre_hooks is None and \
                        node._post_hooks is None and _sole_ref(grads)
                    out = node.apply(grads)
                    node._steal = False
                if node._post_hooks is not None:
                    for hook in list(node._post_hooks.values()):
                        r = hook(out, grads)
                        if r is not None:
                            out = _hook_result(node, hook, r, out, "hook")
                out = _validate(node, out)
                if anomaly_enabled() and anomaly_check_nan():
                    _check_nan(node, out)
                if not keep_graph:
                    node.release_variables()
                    node._released = True
            if node._next_fns is None:
                continue
            for i in range(len(node._next_fns)):
                obj = node._next_fns[i]
                if obj is None:
                    continue
                nxt = <Node>obj
                nst = _state(nxt, epoch, side)
                if out is not None and out[i] is not None:
                    _buf_add(nxt, nst, 0 if node._next_nrs is None else node._next_nrs[i],
                             out[i], create_graph)
                nst._deps -= 1
                if nst._deps == 0:
                    if pending is None:
                        pending = nxt
                    else:
                        _heap_push(heap, nxt)
    except BaseException:
        if anomaly_enabled() and node is not None and node._trace is not None:
            _warn_trace(node)
        raise
    finally:
        set_grad_enabled_c(prev_mode)
        for obj in nodes:
            node = <Node>obj
            if node._epoch == epoch:
                node._buf = None
                node._epoch = 0

    if accumulate:
        for i in range(len(inputs) if inputs is not None else 0):
            t = inputs[i]
            if t._grad_fn is not None and captured[i] is not None:
                accumulate_nonleaf(t, captured[i], False)
        return None
    for i in range(len(inputs)):
        if captured[i] is None and not allow_unused:
            raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have been "
                               f"used in the graph. Set allow_unused=True if this is the desired "
                               f"behavior.")
    return tuple(captured)

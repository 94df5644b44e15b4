# cython: boundscheck=False, wraparound=False
"""PyNode: the graph node of a custom `autograd.Function`, and the compiled `Function.apply`.

As in PyTorch, the `ctx` a user's forward/backward receive IS the graph node: `y.grad_fn` of a
`MyFn.apply(x)` result is an instance of `MyFnBackward` (a Python subclass of PyNode made once
per Function class by function.py), so `ctx.saved_tensors`, `ctx.needs_input_grad` and any
attribute set on ctx in forward are there in backward. The engine runs a PyNode like any other
Node: `apply` calls the user's Python `backward(ctx, *grads)` and checks what comes back.

This file is not the Python API (function.py: Function, once_differentiable); it is the per-call
path, compiled because a custom Function's overhead must stay within 2x of a built-in op.

Note [Custom Function edges]
A PyNode has one edge per *tensor* argument of forward, in order (PyTorch's next_functions);
backward returns one value per forward argument, tensors or not. `_tensor_pos` maps edges to
argument positions.
"""
cimport cython
cimport numpy as cnp
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

import numpy as np

from fastgrad._core.node cimport Node, next_sequence_nr
from fastgrad._core.tensor cimport TensorBase, OpTable, op_table, wrap
from fastgrad._core.recording cimport accumulator
from fastgrad._core.saved cimport SavedVar, save
from fastgrad._core.grad_mode cimport grad_enabled, grad_mode_flag, set_grad_enabled_c
from fastgrad._core.anomaly_mode cimport anomaly_enabled, forward_trace

cnp.import_array()

# returned gradients are summed and cast to their inputs through the op table (Note [The op
# table] in tensor.pxd), as the engine does
cdef OpTable* _ops = op_table()


cdef inline Node _edge(TensorBase t):
    if not t._requires_grad:
        return None
    if t._grad_fn is not None:
        return t._grad_fn
    return accumulator(t)


cdef class PyNode(Node):
    """Base of every `<Name>Backward` node of a custom Function; also its `ctx`."""
    cdef readonly object _forward_cls   # the Function subclass whose backward this runs
    cdef readonly tuple needs_input_grad  # per forward argument: does it need a gradient
    cdef tuple _tensor_pos              # argument position of each edge (Note [Custom Function edges])
    cdef tuple _in_info                 # per edge: (shape, np.dtype) of the input
    cdef list _out_info                 # per output: (shape, np.dtype), None for non-tensors
    cdef tuple _to_save                 # save_for_backward's tensors until apply packs them
    cdef list _saved                    # SavedVar (or None) per saved tensor, after packing
    cdef tuple _non_diff                # outputs marked non-differentiable
    cdef tuple _dirty                   # inputs marked dirty (modified in place by forward)
    cdef bint _keep_none                # set_materialize_grads(False): None grads stay None

    # -- the ctx API used in forward / setup_context --
    def save_for_backward(self, *tensors):
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, TensorBase):
                raise TypeError(f"save_for_backward can only save variables, but argument "
                                f"{i} is of type {type(t).__name__}; keep other values as "
                                f"attributes of ctx")
        self._to_save = tensors

    def mark_non_differentiable(self, *tensors):
        self._non_diff = tensors

    def mark_dirty(self, *tensors):
        self._dirty = tensors

    def set_materialize_grads(self, bint value):
        self._keep_none = not value

    @property
    def saved_tensors(self):
        cdef SavedVar s
        if self._saved is None:
            return self._to_save if self._to_save is not None else ()
        return tuple([None if s is None else s.unpack(self) for s in self._saved])

    @property
    def saved_variables(self):
        return self.saved_tensors

    @property
    def materialize_grads(self):
        return not self._keep_none

    # -- backward --
    cdef tuple apply(self, tuple grads):
        cdef Py_ssize_t k, pos
        cdef TensorBase g
        if not self._keep_none and self._out_info is not None and _contains(grads, None):
            grads = tuple([wrap(np.zeros(self._out_info[k][0], self._out_info[k][1]))
                           if grads[k] is None and self._out_info[k] is not None else grads[k]
                           for k in range(len(grads))])
        res = self._forward_cls.backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n_args = len(self.needs_input_grad)
        if len(res) != n_args:
            if len(res) > n_args and all(r is None for r in res[n_args:]):
                res = res[:n_args]
            else:
                name = type(self).__name__
                raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                                   f"(expected {n_args}, got {len(res)})")
        out = [None] * len(self._tensor_pos)
        for k in range(len(self._tensor_pos)):
            pos = self._tensor_pos[k]
            r = res[pos]
            if r is None or self._next_fns[k] is None:
                continue
            if not isinstance(r, TensorBase):
                name = type(self).__name__
                raise TypeError(f"function {name} returned a gradient of type "
                                f"{type(r).__name__} at index {pos}; expected a Tensor or None")
            out[k] = _fit(<TensorBase>r, self._in_info[k], self, pos)
        for pos in range(n_args if n_args != len(self._tensor_pos) else 0):
            if res[pos] is not None and pos not in self._tensor_pos:
                name = type(self).__name__
                raise RuntimeError(f"function {name} returned a gradient different than None at "
                                   f"position {pos + 1}, but the corresponding forward input was "
                                   f"not a Variable")
        return tuple(out)

    cdef void release_variables(self):
        cdef SavedVar s
        if self._saved is not None:
            for s in self._saved:
                if s is not None:
                    s.release()


cdef TensorBase _fit(TensorBase g, tuple info, PyNode node, Py_ssize_t pos):
    """A returned gradient in its input's shape (summed if broadcast) and dtype, or an error."""
    shape, dt = info
    gshape = (<object>g._data).shape
    if gshape != shape:
        try:
            ok = np.broadcast_shapes(shape, gshape) == gshape
        except ValueError:
            ok = False
        if not ok:
            name = type(node).__name__
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {pos} - "
                               f"got {list(gshape)} but expected shape compatible with "
                               f"{list(shape)}")
        g = _ops.sum_to(g, shape)
    if g._data.dtype != dt:
        g = _ops.to_dtype(g, dt)               # recorded only under create_graph
    return g


cdef extern from "Python.h":
    object PyObject_Vectorcall(object fn, PyObject** args, size_t nargsf, PyObject* kwnames)


cdef enum:
    _MAX_FAST_ARGS = 8


@cython.final
cdef class FunctionApply:
    """`MyFn.apply`: one per Function subclass (made by FunctionMeta), holding what every call
    needs from the class, so a call is one C call with no bound-method object and no class
    attribute walk beyond looking up `forward` (which may be replaced after class creation)."""
    cdef readonly object cls
    cdef object node_cls            # MyFnBackward: the PyNode subclass (the ctx)
    cdef bint new_style             # forward(*args) + setup_context(ctx, inputs, output)

    def __init__(self, cls, node_cls, bint new_style):
        self.cls = cls
        self.node_cls = node_cls
        self.new_style = new_style

    def __call__(self, *args):
        return _function_apply(self, args)

    def __get__(self, instance, owner):
        if owner is None or owner is self.cls:
            return self
        # a subclass reached through super() from its own `apply`: bind to that subclass
        return FunctionApply(owner, owner._backward_cls, owner._new_style)

    def __repr__(self):
        return f"<bound method Function.apply of {self.cls!r}>"


cdef object _call_forward(object fwd, object first, tuple args):
    """fwd(first, *args), or fwd(*args) when `first` is None, without building a new tuple."""
    cdef PyObject* stack[_MAX_FAST_ARGS + 1]
    cdef Py_ssize_t i, n = len(args), off = 0 if first is None else 1
    if n + off > _MAX_FAST_ARGS:
        return fwd(first, *args) if off else fwd(*args)
    if off:
        stack[0] = <PyObject*>first
    for i in range(n):
        stack[i + off] = <PyObject*>args[i]
    return PyObject_Vectorcall(fwd, stack, n + off, NULL)


cdef object _function_apply(FunctionApply fa, tuple args):
    """Function.apply: run forward without recording, then record one PyNode for the outputs."""
    cdef PyNode node
    cdef TensorBase t
    cdef Py_ssize_t i, k, n = len(args), n_tensors = 0
    cdef bint needs = False
    cdef bint record = grad_enabled()
    cdef bint prev_mode = grad_mode_flag()
    cdef object a
    for i in range(n):
        a = args[i]
        if isinstance(a, TensorBase):
            n_tensors += 1
            if record and (<TensorBase>a)._requires_grad:
                needs = True
    node = PyNode.__new__(fa.node_cls)
    node._forward_cls = fa.cls
    node.needs_input_grad = _needs_input_grad(args, n, needs)
    fwd = fa.cls.forward
    set_grad_enabled_c(False)
    try:
        if fa.new_style:
            out = _call_forward(fwd, None, args)
            fa.cls.setup_context(node, args, out)
        else:
            out = _call_forward(fwd, node, args)
    finally:
        set_grad_enabled_c(prev_mode)
    if not needs:
        return out
    cdef tuple fns = PyTuple_New(n_tensors)
    cdef tuple pos = PyTuple_New(n_tensors)
    cdef tuple info = PyTuple_New(n_tensors)
    k = 0
    for i in range(n):
        a = args[i]
        if isinstance(a, TensorBase):
            t = <TensorBase>a
            _tuple_set(fns, k, _edge(t))
            _tuple_set(pos, k, i)
            _tuple_set(info, k, _meta(t))
            k += 1
    node._next_fns = fns
    node._tensor_pos = pos
    node._in_info = info
    node._seq = next_sequence_nr()
    out = _record_outputs(node, args, out)
    if anomaly_enabled():
        node._trace = forward_trace()
    return out


cdef tuple _TRUE1 = (True,)
cdef tuple _FALSE1 = (False,)


cdef tuple _needs_input_grad(tuple args, Py_ssize_t n, bint needs):
    """ctx.needs_input_grad: per argument, is it a tensor whose gradient is wanted."""
    cdef Py_ssize_t i
    if n == 1:
        return _TRUE1 if needs else _FALSE1
    cdef tuple r = PyTuple_New(n)
    for i in range(n):
        a = args[i]
        _tuple_set(r, i, needs and isinstance(a, TensorBase) and (<TensorBase>a)._requires_grad)
    return r


cdef inline void _tuple_set(tuple t, Py_ssize_t i, object v):
    Py_INCREF(v)
    PyTuple_SET_ITEM(t, i, v)


cdef inline tuple _meta(TensorBase t):
    """(shape, dtype) of a tensor, read from the array struct (no attribute lookups)."""
    cdef cnp.ndarray arr = t._data
    cdef int d, nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    cdef tuple shape = PyTuple_New(nd)
    for d in range(nd):
        _tuple_set(shape, d, dims[d])
    return (shape, <object>cnp.PyArray_DESCR(arr))


cdef object _record_outputs(PyNode node, tuple args, object out):
    """Give each differentiable output this node as grad_fn; pack the saved tensors."""
    cdef Py_ssize_t i, n
    cdef list outs
    if type(out) is not tuple:
        node._n_out = 1                        # _out_info stays None: a lone output's gradient
        if isinstance(out, TensorBase):        # is never None when the node runs
            out = _record_output(node, args, <TensorBase>out, 0)
    else:
        outs = list(<tuple>out)
        n = len(outs)
        node._n_out = n
        node._out_info = [None] * n
        for i in range(n):
            o = outs[i]
            if isinstance(o, TensorBase):
                t = _record_output(node, args, <TensorBase>o, i)
                outs[i] = t
                node._out_info[i] = _meta(t)
        out = tuple(outs)
    if node._to_save is not None:
        # a saved output (grad_fn is node) is saved as an alias: Note [Saved outputs]
        node._saved = [None if s is None else save(<TensorBase>s, (<TensorBase>s)._grad_fn is node)
                       for s in node._to_save]
        node._to_save = None
    return out


cdef TensorBase _record_output(PyNode node, tuple args, TensorBase t, Py_ssize_t i):
    """Make `t` output `i` of `node` (or leave it without history when non-differentiable);
    returns the tensor to hand back (an alias when forward returned an input unchanged)."""
    cdef tuple dirty = node._dirty, non_diff = node._non_diff
    cdef bint is_dirty = dirty is not None and _contains(dirty, t)
    if not is_dirty and _contains(args, t):
        t = _alias(t)                          # an input returned as is: a new tensor, as a view
    if (non_diff is not None and _contains(non_diff, t)) or not (
            cnp.PyArray_ISFLOAT(t._data) or cnp.PyArray_ISCOMPLEX(t._data)):
        if t._grad_fn is None:
            t._requires_grad = False
        return t
    if is_dirty and t._grad_fn is None and t._requires_grad:
        raise RuntimeError("a leaf Variable that requires grad has been used in an in-place "
                           "operation.")
    t._grad_fn = node
    t._requires_grad = True
    t._output_nr = i
    return t


cdef inline bint _contains(tuple items, object x):
    """`x in items` by identity (Tensor.__eq__ is elementwise)."""
    for y in items:
        if y is x:
            return True
    return False


cdef TensorBase _alias(TensorBase t):
    cdef TensorBase r = wrap(t._data)
    r._vc = t.version_counter()
    r._base = t
    return r

# cython: boundscheck=False, wraparound=False
"""Node: one recorded operation of the graph (PyTorch's `grad_fn`).

A Node knows where its input gradients go (`_next_fns`/`_next_nrs`, PyTorch's next_edges), how to
turn gradients of its outputs into gradients of its inputs (`apply`), and how to drop what it saved
(`release_variables`). It knows nothing of tensors' storage; the engine (engine.pyx) runs Nodes.

Note [Un-broadcasting in the engine]
An op whose input was broadcast (or promoted to a wider dtype) records that input's shape and dtype
in `_in_meta`. Backward formulas return gradients in the output's shape; the engine sums each one
back to its input's shape and casts it to its dtype, once, for every op alike.
"""
cimport cython

from fastgrad._core.hooks import add_hook, hook_dict

cdef Py_ssize_t _seq_counter = 0
cdef Py_ssize_t _epoch_counter = 0


cdef Py_ssize_t next_sequence_nr() noexcept nogil:
    global _seq_counter
    _seq_counter += 1
    return _seq_counter


cdef Py_ssize_t next_epoch() noexcept nogil:
    global _epoch_counter
    _epoch_counter += 1
    return _epoch_counter


cdef class BackwardState:
    """A node's gradient buffer and dependency count during one backward call (engine.pyx)."""


@cython.trashcan(True)
cdef class Node(BackwardState):
    """Base of every backward node (`AddBackward0`, `AccumulateGrad`, custom Functions ...)."""

    def __cinit__(self):
        self._n_out = 1

    cdef tuple apply(self, tuple grads):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    cdef void release_variables(self):
        pass

    def __repr__(self):
        return f"<{type(self).__name__} object at {hex(id(self))}>"

    def name(self):
        """The node's name as PyTorch prints it, e.g. 'MulBackward0'."""
        return type(self).__name__

    @property
    def next_functions(self):
        """((node or None, input_nr), ...), one pair per input of the forward op."""
        if self._next_fns is None:
            return ()
        if self._next_nrs is None:
            return tuple([(fn, 0) for fn in self._next_fns])
        return tuple(zip(self._next_fns, self._next_nrs))

    @property
    def metadata(self):
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def _sequence_nr(self):
        return self._seq

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) runs after this node; may return new grad_inputs."""
        if self._post_hooks is None:
            self._post_hooks = hook_dict()
        return add_hook(self._post_hooks, fn)

    def register_prehook(self, fn):
        """fn(grad_outputs) runs before this node; may return new grad_outputs."""
        if self._pre_hooks is None:
            self._pre_hooks = hook_dict()
        return add_hook(self._pre_hooks, fn)

    def __call__(self, *grads):
        return self.apply(grads)

# Graph nodes: the compiled half of PyTorch's `grad_fn` objects. See node.pyx.

# A node's scratch for one backward call: the Node itself for the call that owns the node
# (Node._epoch), a separate BackwardState for any other call that reaches it meanwhile
# (Note [Backward from several threads] in engine.pyx).
cdef class BackwardState:
    cdef Py_ssize_t _deps          # edges still to arrive before this node may run
    cdef object _buf               # InputBuffer: the summed gradient (one output), or a list of
                                   #   one per output slot (Note [Input buffers] in engine.pyx)
    cdef bint _owned               # _buf (one output) was allocated by the engine: add in place
    cdef bint _needed              # on a path to a requested input (or every node: backward())


cdef class Node(BackwardState):
    cdef tuple _next_fns           # per forward input: Node its gradient flows to, or None
    cdef tuple _next_nrs           # per forward input: output slot of that Node; None = all 0
    cdef tuple _in_meta            # None, or per input (shape, np.dtype) or None: grads are
                                   #   summed/cast to it (Note [Un-broadcasting in the engine])
    cdef Py_ssize_t _seq           # sequence_nr: creation order; higher runs first
    cdef int _n_out                # forward outputs = gradients this node receives (usually 1)
    cdef bint _released            # saved values were freed after a backward
    cdef Py_ssize_t _epoch         # the running backward call that owns the inherited
                                   #   BackwardState fields; 0 when none does
    cdef bint _steal               # apply may overwrite grads[0] in place (Note [Stealing the
                                   #   incoming gradient] in engine.pyx)
    # hooks and anomaly mode (None unless used)
    cdef object _pre_hooks         # fn(grad_outputs) -> None or replacement (hooks.pyx)
    cdef object _post_hooks        # fn(grad_inputs, grad_outputs) -> None or replacement
    cdef object _trace             # forward stack text recorded under detect_anomaly
    cdef dict _metadata            # grad_fn.metadata, made on first use (custom Functions'
                                   #   Python node classes keep ctx state in their own __dict__)
    cdef object __weakref__

    cdef tuple apply(self, tuple grads)
    cdef void release_variables(self)


cdef Py_ssize_t next_sequence_nr() noexcept nogil
cdef Py_ssize_t next_epoch() noexcept nogil

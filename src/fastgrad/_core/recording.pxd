# Recording ops in the graph, and the leaves' AccumulateGrad sinks (recording.pyx).
from cpython.pythread cimport PyThread_type_lock
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase


cdef class AccumulateGrad(Node):
    cdef TensorBase variable       # the leaf whose .grad this node accumulates into
    cdef PyThread_type_lock _lock  # held across read-add-write of variable.grad; made on first use
    cdef unsigned long _holder     # thread holding _lock (a post-accumulate hook may re-enter)

    cdef void accumulate(self, TensorBase g, bint owned) except *
    cdef void _add(self, TensorBase g, bint owned) except *


cdef Node accumulator(TensorBase leaf)        # the leaf's AccumulateGrad, made once
cdef bint any_requires_grad2(TensorBase a, TensorBase b) noexcept
cdef void set_history(TensorBase out, Node node, tuple inputs) except *
cdef void set_history1(TensorBase out, Node node, TensorBase a) except *
cdef void set_history2(TensorBase out, Node node, TensorBase a, TensorBase b) except *

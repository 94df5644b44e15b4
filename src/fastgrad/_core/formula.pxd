# Nodes whose backward is a rule of recorded tensor ops. See formula.pyx.
from fastgrad._core.node cimport Node
from fastgrad._core.tensor cimport TensorBase


cdef class FormulaBackward(Node):
    cdef tuple _saved              # SavedVar per tensor the rule needs (inputs, then the output)
    cdef object _rule              # rule(grad, saved_tensors, extra) -> one grad (or None) per input
    cdef object _extra             # the op's non-tensor arguments the rule needs, or None


cdef object record(TensorBase out, str name, object rule, tuple inputs, tuple saved_inputs,
                   bint save_output, object extra)

# cython: boundscheck=False, wraparound=False
"""Tensors saved for backward: SavedVar and `save`, which every op that records a node uses.

Note [Saved tensor release]
A node drops saved inputs right after its backward unless retain_graph; a second backward then
raises "Trying to backward through the graph a second time ...". A node that saved nothing can be
run again.

Note [Saved outputs]
A node that saves its own output (exp, tanh, sigmoid ...) would form a cycle node -> output ->
node. It saves the output's array and version counter instead; unpacking makes a tensor over
them, with no grad_fn, or under create_graph with the node as its grad_fn.
"""
cimport cython
cimport numpy as cnp

from fastgrad._core.node cimport Node
from fastgrad._core.grad_mode cimport grad_enabled
from fastgrad._core.dtypes cimport dtype_name
from fastgrad._core.tensor cimport TensorBase, wrap, is_inference

cnp.import_array()


@cython.freelist(256)
cdef class SavedVar:

    cdef TensorBase unpack(self, Node owner):
        cdef TensorBase r
        if self.is_output:
            if self.data is None:
                self._raise_released()
            if self.vc.value != self.version:
                raise RuntimeError(self._modified_message(owner))
            r = wrap(self.data)
            r._vc = self.vc
            if grad_enabled():
                # Note [Saved outputs]: under create_graph the output must carry its history
                r._grad_fn = owner
                r._requires_grad = True
                r._output_nr = self.output_nr
            return r
        r = self.t
        if r is None:
            self._raise_released()
        if r.version_value() != self.version:
            raise RuntimeError(self._modified_message(owner))
        return r

    def _raise_released(self):
        raise RuntimeError(
            "Trying to backward through the graph a second time (or directly access saved "
            "tensors after they have already been freed). Saved intermediate values of the "
            "graph are freed when you call .backward() or autograd.grad(). Specify "
            "retain_graph=True if you need to backward through the graph a second time or if "
            "you need to access saved tensors after calling backward.")

    def _modified_message(self, Node owner):
        cdef cnp.ndarray d = self.data if self.is_output else self.t._data
        now = self.vc.value if self.is_output else self.t.version_value()
        fn = owner if self.is_output else self.fn
        shape = ", ".join(str(n) for n in (<object>d).shape)
        producer = ""
        if fn is not None:
            name = type(fn).__name__
            if name.endswith("Backward0") or name.endswith("Backward1"):
                name = name[:-9]
            producer = f", which is output {self.output_nr} of {name},"
        return (f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{dtype_name(d)} [{shape}]]{producer} is at version "
                f"{now}; expected version {self.version} instead. Hint: enable anomaly "
                f"detection to find the operation that failed to compute its gradient, with "
                f"torch.autograd.set_detect_anomaly(True, check_nan=False).")

    cpdef void release(self):
        self.t = None
        self.data = None


cdef SavedVar save(TensorBase t, bint is_output):
    """Save `t` for backward (Note [Saved tensor release], Note [Saved outputs]). A saved input
    keeps the tensor itself and reads its version when unpacked, so saving a fresh tensor
    allocates no version counter; a saved output keeps its array and counter, and a tensor is
    made for it only when it is unpacked."""
    cdef SavedVar s = SavedVar.__new__(SavedVar)
    s.output_nr = t._output_nr
    s.is_output = is_output
    if is_output:
        s.vc = t.version_counter()
        s.version = s.vc.value
        s.data = t._data
    else:
        if is_inference(t):
            _raise_inference_saved()
        s.version = t.version_value()
        s.t = t
        s.fn = t._grad_fn
    return s


cdef void _raise_inference_saved() except *:
    raise RuntimeError(
        "Inference tensors cannot be saved for backward. A tensor created under "
        "torch.inference_mode() is used in computation tracked by autograd; to work around "
        "this, make a clone to get a normal tensor (t.clone()) and use it in autograd, or use "
        "`torch.no_grad()` instead of `torch.inference_mode()`.")


# cython: boundscheck=False, wraparound=False
"""The compiled `__call__` of nn.Module.

nn.Module inherits `__call__` from `ModuleCall`: calling a module with no forward hooks and no
forward pre-hooks is one C slot call that looks up `forward` and calls it, with no Python frame
of its own (a Python `__call__` costs a frame and an args tuple more per layer). With hooks it
runs them as torch does: pre-hooks may replace the args, forward hooks the output.
"""
cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

cdef extern from "Python.h":
    PyObject** _PyObject_GetDictPtr(object obj)


cdef object _run_hooked(object self, object fwd, tuple args, dict kwargs, object pre, object post):
    if pre:
        for hook in list(pre.values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
    out = fwd(*args, **kwargs) if kwargs else fwd(*args)
    if post:
        for hook in list(post.values()):
            r = hook(self, args, out)
            if r is not None:
                out = r
    return out


@cython.auto_pickle(False)
cdef class ModuleCall:
    """Base of nn.Module providing `module(*args, **kwargs)`: forward hooks, pre-hooks, forward."""

    def __call__(self, *args, **kwargs):
        cdef PyObject** dp = _PyObject_GetDictPtr(self)
        cdef PyObject* pre = NULL
        cdef PyObject* post = NULL
        if dp != NULL and dp[0] != NULL:
            pre = PyDict_GetItem(<object>dp[0], "_forward_pre_hooks")
            post = PyDict_GetItem(<object>dp[0], "_forward_hooks")
        fwd = self.forward
        if (pre == NULL or not <dict>pre) and (post == NULL or not <dict>post):
            return fwd(*args, **kwargs) if kwargs else fwd(*args)
        return _run_hooked(self, fwd, args, kwargs,     # hook dicts: OrderedDicts (hooks.pyx)
                           <object>pre if pre != NULL else None,
                           <object>post if post != NULL else None)

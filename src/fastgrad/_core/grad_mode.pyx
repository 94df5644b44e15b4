# cython: boundscheck=False, wraparound=False
"""The grad-enabled flag, one per thread (a C `__thread` variable: reading it costs a load).

Only this module owns the variable; others read it through the cdef functions in grad_mode.pxd,
so every compiled module sees the same flag."""

cdef extern from *:
    """
    static __thread int fg_grad_enabled = 1;
    static __thread int fg_inference_mode = 0;
    """
    int fg_grad_enabled
    int fg_inference_mode


cdef bint grad_enabled() noexcept nogil:
    return fg_grad_enabled


cdef void set_grad_enabled_c(bint enabled) noexcept nogil:
    global fg_grad_enabled
    fg_grad_enabled = enabled


cdef bint inference_mode_c() noexcept nogil:
    return fg_inference_mode


def is_grad_enabled():
    """True when operations record a graph for backward (the default)."""
    return bool(fg_grad_enabled)


def _set_grad_enabled(bint enabled):
    """Set the flag and return its previous value."""
    global fg_grad_enabled
    cdef bint prev = fg_grad_enabled
    fg_grad_enabled = enabled
    return prev


def is_inference_mode_enabled():
    return bool(fg_inference_mode)


def _set_inference_mode(bint enabled):
    global fg_inference_mode
    cdef bint prev = fg_inference_mode
    fg_inference_mode = enabled
    return prev

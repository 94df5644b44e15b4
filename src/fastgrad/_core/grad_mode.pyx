# cython: boundscheck=False, wraparound=False
"""The grad-mode and inference-mode flags, one per thread (C `__thread` variables: reading one
costs a load).

Ops ask one question, "record a graph?": `grad_enabled()`, which reads `fg_record`, kept equal to
grad mode AND NOT inference mode by every setter. Inside inference mode nothing records even
under enable_grad (as in PyTorch), while `is_grad_enabled()` still reports the grad-mode flag.

Only this module owns the variables; others read them through the cdef functions in
grad_mode.pxd, so every compiled module sees the same flags."""

cdef extern from *:
    """
    static __thread int fg_grad_enabled = 1;
    static __thread int fg_inference_mode = 0;
    static __thread int fg_record = 1;
    """
    int fg_grad_enabled
    int fg_inference_mode
    int fg_record


cdef bint grad_enabled() noexcept nogil:
    return fg_record


cdef bint grad_mode_flag() noexcept nogil:
    return fg_grad_enabled


cdef void set_grad_enabled_c(bint enabled) noexcept nogil:
    global fg_grad_enabled, fg_record
    fg_grad_enabled = enabled
    fg_record = enabled and not fg_inference_mode


cdef bint inference_mode_c() noexcept nogil:
    return fg_inference_mode


def is_grad_enabled():
    """True when grad mode is on (the default; off under no_grad and inference_mode)."""
    return bool(fg_grad_enabled)


def _set_grad_enabled(bint enabled):
    """Set the grad-mode flag and return its previous value."""
    cdef bint prev = fg_grad_enabled
    set_grad_enabled_c(enabled)
    return prev


def is_inference_mode_enabled():
    """True inside `inference_mode()` (and not inside a nested `inference_mode(False)`)."""
    return bool(fg_inference_mode)


def _set_inference_mode(bint enabled):
    """Set the inference-mode flag and return its previous value."""
    global fg_inference_mode, fg_record
    cdef bint prev = fg_inference_mode
    fg_inference_mode = enabled
    fg_record = fg_grad_enabled and not enabled
    return prev

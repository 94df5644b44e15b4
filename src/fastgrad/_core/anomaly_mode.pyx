"""Anomaly detection's two flags and the setter for both (PyTorch's `torch.set_anomaly_enabled`,
`torch.is_anomaly_enabled`, `torch.is_anomaly_check_nan_enabled`).

One pair for the whole process, not one per thread: PyTorch's anomaly mode is global too.
Only this module writes them; compiled modules read them through anomaly_mode.pxd, and
`fastgrad.autograd.detect_anomaly` / `set_detect_anomaly` set them through set_anomaly_enabled.
"""
cdef bint _enabled = False
cdef bint _check_nan = True


cdef bint anomaly_enabled() noexcept nogil:
    return _enabled


cdef bint anomaly_check_nan() noexcept nogil:
    return _check_nan


cdef str forward_trace():
    import traceback                 # loaded only when anomaly mode is used: `import fastgrad`
    return "".join(traceback.format_stack())   # stays light (tests/test_import.py)


def set_anomaly_enabled(bint enabled, bint check_nan=True):
    """Turn anomaly detection on or off; check_nan: also fail on a backward that returns NaN."""
    global _enabled, _check_nan
    _enabled = enabled
    _check_nan = check_nan


def is_anomaly_enabled():
    """True while anomaly detection is on (detect_anomaly / set_detect_anomaly(True))."""
    return bool(_enabled)


def is_anomaly_check_nan_enabled():
    """True when anomaly detection also checks each backward's outputs for NaN (the default)."""
    return bool(_check_nan)

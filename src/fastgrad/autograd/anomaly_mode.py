"""Anomaly detection: find the forward line behind a NaN in backward (torch.autograd.anomaly_mode).

While enabled, every graph node records the Python stack that created it (`node._trace`), and
the engine checks each node's output gradients for NaN (check_nan). When a node's backward
fails, the engine warns "Error detected in DivBackward0. Traceback of forward call that caused
the error: ..." with that stack, then raises the error ("Function 'DivBackward0' returned nan
values in its 1th output."). Recording stacks is slow: a debugging tool, off by default.
"""
import functools
import warnings

from fastgrad._core.anomaly_mode import (is_anomaly_check_nan_enabled, is_anomaly_enabled,
                                         set_anomaly_enabled)

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
           "is_anomaly_check_nan_enabled"]


def _set(enabled, check_nan):
    """Set both flags (the core's one setter); the previous pair, for restoring it."""
    prev = (is_anomaly_enabled(), is_anomaly_check_nan_enabled())
    set_anomaly_enabled(bool(enabled), bool(check_nan))
    return prev


def _warn_enabled():
    warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and "
                  "should only be enabled for debugging.", UserWarning, stacklevel=3)


class detect_anomaly:
    """Context manager / decorator turning anomaly detection on inside it.

        with fastgrad.autograd.detect_anomaly():
            y = x / x
            y.sum().backward()    # warns with the line of `x / x`, raises RuntimeError
    """

    def __init__(self, check_nan=True):
        self.check_nan = check_nan
        self.prev = None
        _warn_enabled()

    def __enter__(self):
        self.prev = _set(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        _set(*self.prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


class set_detect_anomaly:
    """Turn anomaly detection on or off: at once when called, or for a `with` block."""

    def __init__(self, mode, check_nan=True):
        # torch 2.13 warns only from detect_anomaly(), not here (checked against torch)
        self.prev = _set(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(*self.prev)
        return False

"""Anomaly mode: a planted 0/0 is found, named (DivBackward0) and traced to its forward line."""
import warnings

import pytest

from _backend import fg


def _run_planted_nan():
    x = fg.tensor([0.0, 1.0], requires_grad=True)
    y = x / x                                   # PLANTED: 0/0 in backward
    y.sum().backward()


def test_detect_anomaly_names_node_and_forward_line():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with fg.autograd.detect_anomaly():
            with pytest.raises(RuntimeError, match=r"Function 'DivBackward0' returned nan values "
                                                   r"in its 1th output"):
                _run_planted_nan()
    msgs = [str(m.message) for m in w]
    assert any(m.startswith("Anomaly Detection has been enabled.") for m in msgs)
    trace = [m for m in msgs if m.startswith("Error detected in DivBackward0. Traceback of "
                                             "forward call that caused the error:")]
    assert trace and "y = x / x" in trace[0] and "_run_planted_nan" in trace[0]


def test_without_anomaly_mode_nan_passes_silently():
    x = fg.tensor([0.0], requires_grad=True)
    (x / x).sum().backward()
    assert x.grad.isnan().all() if hasattr(x.grad, "isnan") else x.grad.numpy() != x.grad.numpy()


def test_set_detect_anomaly_and_check_nan_false():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fg.autograd.set_detect_anomaly(True, check_nan=False):
            x = fg.tensor([0.0], requires_grad=True)
            (x / x).sum().backward()            # no NaN check: no error
        prev = fg.autograd.set_detect_anomaly(True)
        try:
            with pytest.raises(RuntimeError, match="returned nan values"):
                _run_planted_nan()
        finally:
            fg.autograd.set_detect_anomaly(False)
    assert not fg.is_anomaly_enabled() if hasattr(fg, "is_anomaly_enabled") else True
    del prev


def test_decorator_and_errors_in_custom_backward_are_traced():
    class Boom(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            raise ValueError("boom")

    def run():
        with fg.autograd.detect_anomaly():
            x = fg.tensor([1.0], requires_grad=True)
            z = Boom.apply(x)                   # the line the trace must show
            z.sum().backward()

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="boom"):
            run()
    trace = [str(m.message) for m in w if str(m.message).startswith("Error detected in Boom")]
    assert trace and "z = Boom.apply(x)" in trace[0]


def test_one_flag_set_once_read_everywhere():
    """set_anomaly_enabled, the one setter, alone turns on both the forward traces (recorded at
    graph-building time) and the engine's NaN check; detect_anomaly and set_detect_anomaly set
    the same flag that is_anomaly_enabled / is_anomaly_check_nan_enabled read."""
    assert not fg.is_anomaly_enabled() and fg.is_anomaly_check_nan_enabled()
    fg.set_anomaly_enabled(True)
    try:
        assert fg.is_anomaly_enabled()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with pytest.raises(RuntimeError, match="returned nan values"):
                _run_planted_nan()
        assert any("PLANTED" in str(m.message) for m in w)      # the forward line was recorded
    finally:
        fg.set_anomaly_enabled(False)
    assert not fg.is_anomaly_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fg.autograd.set_detect_anomaly(True, check_nan=False):
            assert fg.is_anomaly_enabled() and not fg.is_anomaly_check_nan_enabled()
        assert not fg.is_anomaly_enabled() and fg.is_anomaly_check_nan_enabled()
        with fg.autograd.detect_anomaly():
            assert fg.is_anomaly_enabled() and fg.is_anomaly_check_nan_enabled()
    assert not fg.is_anomaly_enabled()

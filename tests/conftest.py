"""Shared pytest setup for the fastgrad suite.

The helpers (`_backend`, `_fd`) live next to this file and are imported by
plain name, so the directory goes on sys.path whatever pytest's import mode.

Reference mode: `FASTGRAD_TEST_BACKEND=torch pytest tests/` runs the suite
against PyTorch itself. It proves the tests encode PyTorch's behaviour (a test
that fails there is a test bug); checks that are fastgrad's own promises
(e.g. broadcast messages naming both shapes) skip in that mode.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from _backend import BACKEND  # noqa: E402
from hypothesis import settings  # noqa: E402

# Reproducible property tests: the same examples on every run and machine
# (HYPOTHESIS_PROFILE=explore turns randomness back on for bug hunting).
settings.register_profile("fastgrad", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastgrad"))


def pytest_report_header(config):
    return f"fastgrad tests: backend = {BACKEND}"


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator per test: every test is reproducible."""
    return np.random.default_rng(20240613)


@pytest.fixture(params=["float32", "float64"])
def fdtype(request):
    """(fastgrad dtype, NumPy dtype, rtol) for the floating dtypes."""
    from _backend import fg

    rtol = {"float32": 1e-5, "float64": 1e-12}[request.param]
    return getattr(fg, request.param), np.dtype(request.param), rtol

"""The library under test: `fastgrad`, or `torch` in reference mode.

`FASTGRAD_TEST_BACKEND=torch` swaps in PyTorch so the suite can be checked
against the behaviour it claims to encode. fastgrad itself never imports torch.
"""
import os

BACKEND = os.environ.get("FASTGRAD_TEST_BACKEND", "fastgrad")

if BACKEND == "torch":
    import torch as fg  # noqa: F401
elif BACKEND == "fastgrad":
    import fastgrad as fg  # noqa: F401
else:
    raise RuntimeError(f"FASTGRAD_TEST_BACKEND must be 'fastgrad' or 'torch', got {BACKEND!r}")

#: True when the suite runs against PyTorch (reference mode).
REFERENCE = BACKEND == "torch"


def reference_torch():
    """PyTorch to compare fastgrad with, or None when it is not installed or when the suite
    itself runs on it (reference mode: a comparison with itself would prove nothing)."""
    if REFERENCE:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def child_env():
    """os.environ for a child process, with PYTHONPATH leading to the fastgrad under test
    (the source tree built in place, or the installed package: wherever it was imported from)."""
    import fastgrad
    site = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [site, os.environ.get("PYTHONPATH")])))

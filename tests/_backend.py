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

"""The demo (`fastgrad-demo`, `python -m fastgrad.demo`) trains and reports accuracy and speed."""
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own demo")


def test_demo_module_runs_and_beats_chance():
    out = subprocess.run([sys.executable, "-m", "fastgrad.demo", "--steps", "300"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    acc = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    us = float(re.search(r"time per training step: ([\d.]+) µs", out).group(1))
    assert acc > 50.0                                   # chance is 10%
    assert us > 0
    assert "300/300" in out and "loss" in out           # the progress bar reached the end


def test_train_returns_numbers():
    from fastgrad import demo
    buf = io.StringIO()
    r = demo.train(steps=200, hidden=32, lr=3e-3, out=buf, progress=False)
    assert r["accuracy"] > 0.4
    assert np.isfinite(r["loss"]) and r["loss"] < 2.0
    assert "test accuracy" in buf.getvalue()


def test_synthetic_digits_shape_and_range():
    from fastgrad.demo import synthetic_digits, split
    x, y = synthetic_digits(n_per_class=5)
    assert x.shape == (50, 64) and x.dtype == np.float32
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == list(range(10))
    assert x.min() >= 0 and x.max() <= 16
    xtr, ytr, xte, yte = split(x, y)
    assert len(ytr) + len(yte) == 50 and xtr.max() <= 1.0


def test_main_rejects_bad_steps():
    from fastgrad import demo
    with pytest.raises(SystemExit):
        demo.main(["--steps", "0"])

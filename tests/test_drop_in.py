"""The drop-in proof: examples/pytorch_loop.py, an ordinary PyTorch training loop whose only
fastgrad-specific lines are its imports, runs under fastgrad and (where installed) under torch
from the same initial weights, with the same loss curve; examples/xor_seed.py learns XOR."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from _backend import REFERENCE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

pytestmark = pytest.mark.skipif(REFERENCE, reason="runs fastgrad and torch side by side itself")


def _load(name, backend, monkeypatch):
    """Import an example as a fresh module bound to `backend` ('fastgrad' or 'torch')."""
    if backend == "torch":
        monkeypatch.setenv("FASTGRAD_EXAMPLE_BACKEND", "torch")
    else:
        monkeypatch.delenv("FASTGRAD_EXAMPLE_BACKEND", raising=False)
    spec = importlib.util.spec_from_file_location(f"_example_{name}_{backend}",
                                                  os.path.join(EXAMPLES, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_only_the_imports_mention_fastgrad():
    with open(os.path.join(EXAMPLES, "pytorch_loop.py")) as f:
        code = f.read().split('"""', 2)[2]          # skip the docstring
    lines = [ln.strip() for ln in code.splitlines() if "fastgrad" in ln]
    assert lines and all(ln.startswith("import fastgrad") for ln in lines), lines


def test_pytorch_loop_learns_under_fastgrad(monkeypatch):
    mod = _load("pytorch_loop", "fastgrad", monkeypatch)
    assert mod.torch.__name__ == "fastgrad"
    mod.torch.manual_seed(0)
    x, y = mod.make_data()
    model = mod.MLP()
    losses = mod.train(model, x, y, epochs=8)
    assert len(losses) == 8 * 12
    assert np.mean(losses[-12:]) < 0.5 * np.mean(losses[:12])
    assert mod.accuracy(model, x, y) > 0.8


def test_pytorch_loop_same_curve_as_torch(monkeypatch):
    pytest.importorskip("torch")
    fg_mod = _load("pytorch_loop", "fastgrad", monkeypatch)
    th_mod = _load("pytorch_loop", "torch", monkeypatch)
    assert th_mod.torch.__name__ == "torch"

    fg_mod.torch.manual_seed(0)
    fg_model = fg_mod.MLP()
    th_model = th_mod.MLP()
    weights = {k: v.detach().numpy().copy() for k, v in fg_model.state_dict().items()}
    assert sorted(weights) == sorted(th_model.state_dict())
    th_model.load_state_dict({k: th_mod.torch.from_numpy(v) for k, v in weights.items()})

    curves = []
    for mod, model in ((fg_mod, fg_model), (th_mod, th_model)):
        x, y = mod.make_data()
        curves.append(np.array(mod.train(model, x, y, epochs=5)))
    mine, theirs = curves
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=0)
    for k, v in fg_model.state_dict().items():
        np.testing.assert_allclose(v.detach().numpy(), th_model.state_dict()[k].numpy(),
                                   rtol=1e-3, atol=1e-5)


def test_pytorch_loop_script_runs():
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "pytorch_loop.py"), "3"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "backend: fastgrad" in out and "final loss" in out


def test_xor_seed_loss_drops():
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "xor_seed.py")],
                         capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "XOR_EPOCHS": "1000"}).stdout
    losses = [float(ln.split()[-1]) for ln in out.splitlines() if ln.startswith("epoch")]
    assert len(losses) == 10
    assert losses[-1] < 0.01 < losses[0] or losses[-1] < 0.1 * losses[0]
    assert "first layer weight gradients:" in out and "tensor([[" in out


def test_xor_seed_reaches_the_classic_answer(monkeypatch):
    mod = _load("xor_seed", "fastgrad", monkeypatch)
    losses = mod.main(epochs=1500)
    assert losses[-1] < 1e-2

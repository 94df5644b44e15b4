"""`import fastgrad` stays light (W8) while the whole public API still resolves: submodules that
the core workflow does not need load on first attribute access (PEP 562)."""
import os
import subprocess
import sys

import pytest

from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own import layout")


def _run(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# loaded by `import fastgrad` beyond what NumPy itself loads -> a regression in W8 (each of
# these costs milliseconds)
LAZY = ["fastgrad.nn", "fastgrad.optim", "fastgrad.optim.lr_scheduler", "fastgrad.serialization",
        "fastgrad.viz", "fastgrad.demo", "fastgrad.distributions", "fastgrad.bench", "fastgrad.autograd.functional",
        "fastgrad.autograd.gradcheck", "fastgrad.autograd.graph",
        "fastgrad.autograd.anomaly_mode", "fastgrad._core.ops_loss", "fastgrad._core.ops_activation",
        "fastgrad._core.ops_embedding", "fastgrad._core.ops_gated",
        "fastgrad._core.optim_kernels", "numpy.random", "json", "traceback", "inspect",
        "dataclasses", "argparse", "tempfile", "hashlib"]


def test_import_fastgrad_loads_nothing_heavy():
    out = _run("import sys, numpy; before = set(sys.modules); import fastgrad; "
               "print('\\n'.join(sorted(set(sys.modules) - before)))")
    loaded = set(out.split())
    assert "fastgrad._core.tensor" in loaded and "fastgrad.autograd.function" in loaded
    assert sorted(m for m in LAZY if m in loaded) == []


TOP = ["tensor", "zeros", "ones", "randn", "rand", "manual_seed", "no_grad", "enable_grad",
       "set_grad_enabled", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled",
       "Tensor", "Size", "float32", "float64", "int64", "bool", "matmul", "cat", "stack",
       "where", "autograd", "nn", "optim", "save", "load", "serialization"]
AUTOGRAD = ["backward", "grad", "Function", "NestedIOFunction", "once_differentiable",
            "functional", "graph", "gradcheck", "gradgradcheck", "detect_anomaly",
            "set_detect_anomaly", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]


def test_every_public_name_resolves_in_a_fresh_interpreter():
    code = f"""
import fastgrad
names = sorted(set(fastgrad.__all__) | set({TOP!r}))
missing = [n for n in names if getattr(fastgrad, n, None) is None]
missing += ["autograd." + n for n in sorted(set(fastgrad.autograd.__all__) | set({AUTOGRAD!r}))
            if getattr(fastgrad.autograd, n, None) is None]
print(missing)
print(len(fastgrad.__all__))
"""
    missing, n = _run(code).split("\n")[:2]
    assert missing == "[]"
    assert int(n) > 150


def test_lazy_submodules_work_as_attributes_and_imports():
    out = _run("""
import fastgrad as torch
m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
opt = torch.optim.SGD(m.parameters(), lr=0.1)
sched = torch.optim.lr_scheduler.StepLR(opt, 1)
import fastgrad.nn.functional as F
from fastgrad import nn, optim
from fastgrad.autograd import functional as AF
import fastgrad.autograd.functional
assert torch.autograd.functional is AF is fastgrad.autograd.functional
assert callable(torch.autograd.gradcheck) and callable(torch.save) and callable(torch.load)
assert nn is torch.nn and optim is torch.optim and F is torch.nn.functional
J = AF.jacobian(lambda t: t * t, torch.tensor([1.0, 2.0]))
print(J.tolist())
print(torch.autograd.gradcheck(lambda t: (t * t).sum(),
                               (torch.tensor([1.0, 2.0], dtype=torch.float64,
                                             requires_grad=True),)))
print('save' in dir(torch), 'nn' in dir(torch), 'functional' in dir(torch.autograd))
""")
    assert out.split("\n")[:3] == ["[[2.0, 0.0], [0.0, 4.0]]", "True", "True True True"]


def test_gradcheck_attribute_is_the_function_after_a_submodule_import():
    out = _run("import fastgrad.autograd.gradcheck as g; import fastgrad; "
               "print(callable(fastgrad.autograd.gradcheck), callable(g))")
    assert out.strip() == "True True"


def test_unknown_attribute_raises_attribute_error():
    import fastgrad
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'"):
        fastgrad.not_a_thing
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'"):
        fastgrad.autograd.not_a_thing


def test_facade_imports_are_one_way():
    """No import cycle among the facade's modules, counting imports inside function bodies
    (tools/core_layers.py --facade): each module imports only modules below it."""
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tools",
                        "core_layers.py")
    proc = subprocess.run([sys.executable, tool, "--facade", "--check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no cycles" in proc.stdout

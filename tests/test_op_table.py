"""Note [The op table] (src/fastgrad/_core/tensor.pxd): TensorBase's operators, the engine and
custom Function nodes reach the ops through a table of C function pointers that the op modules
fill when they are imported, so the core below the op modules imports none of them; a slot that
no module has filled raises an error naming the module to import, never a crash."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad
from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own module layout")

# fastgrad's package without its __init__ (which imports every op module): only the core
_BARE = """
import sys, types
import numpy as np
pkg = types.ModuleType("fastgrad")
pkg.__path__ = [{root!r}]
sys.modules["fastgrad"] = pkg
from fastgrad._core import tensor
tensor._set_tensor_class(tensor.TensorBase)
t = tensor.TensorBase.__new__(tensor.TensorBase)
t._set_data(np.ones(2))

def attempt(name, fn):
    try:
        r = fn()
        print(name, "ok", r._np.tolist())
    except RuntimeError as e:
        print(name, "RuntimeError", e)

def attempts():
    attempt("add", lambda: t + t)
    attempt("rtruediv", lambda: 2 / t)
    attempt("exp", lambda: t.exp())
    attempt("eq", lambda: t == t)
    attempt("iadd", lambda: t.add_(1))
    attempt("fill", lambda: t.fill_(0))
    attempt("sum", lambda: t.sum())

attempts()
print("--")
import fastgrad._core.ops_arith
print(sorted(m[len("fastgrad._core."):] for m in sys.modules if m.startswith("fastgrad._core.")))
attempts()
"""


def _bare_run():
    root = str(Path(fastgrad.__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", _BARE.format(root=root)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr         # a crash would show here
    before, after = proc.stdout.split("--\n")
    return dict(line.split(" ", 1) for line in before.splitlines()), after.splitlines()


def test_unfilled_slots_raise_an_error_naming_the_module():
    results, _ = _bare_run()
    expected = {"add": "ops_arith", "rtruediv": "ops_arith", "exp": "ops_unary",
                "eq": "ops_compare", "iadd": "ops_inplace", "fill": "ops_inplace",
                "sum": "ops_reduce"}
    for name, module in expected.items():
        assert results[name].startswith("RuntimeError"), (name, results[name])
        assert f"fastgrad._core.{module}" in results[name] and "has not been imported" in \
            results[name], results[name]


def test_an_op_module_fills_its_slots_when_imported():
    _, after = _bare_run()
    loaded, results = eval(after[0]), dict(line.split(" ", 1) for line in after[1:])
    assert "ops_arith" in loaded and "ops_unary" not in loaded and "ops_reduce" not in loaded
    assert results["add"] == "ok [2.0, 2.0]"
    assert results["exp"].startswith("RuntimeError") and "ops_unary" in results["exp"]
    assert results["sum"].startswith("RuntimeError") and "ops_reduce" in results["sum"]
    # 2 / t is reciprocal(t) * 2: arithmetic reaches the unary family through the table too
    assert results["rtruediv"].startswith("RuntimeError") and "ops_unary" in results["rtruediv"]


def _core_layers():
    path = Path(__file__).resolve().parents[1] / "tools" / "core_layers.py"
    if not path.exists() or not (path.parent.parent / "src" / "fastgrad" / "_core").exists():
        pytest.skip("needs fastgrad's source tree")
    spec = importlib.util.spec_from_file_location("core_layers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_core_below_the_op_modules_imports_none_of_them():
    layers = _core_layers()
    deps = layers.graph()
    for m in ("node", "tensor", "engine", "function", "promotion"):
        assert not [d for d in deps[m] if d.startswith("ops_")], (m, deps[m])


def test_no_cycle_through_the_elementwise_families_or_the_engine():
    layers = _core_layers()
    mine = {"tensor", "engine", "function", "node", "promotion", "ops_arith", "ops_unary",
            "ops_select", "ops_compare", "ops_inplace", "ops_cast", "ops_reduce", "ops_softmax"}
    loops = [c for c in layers.cycles(layers.graph()) if mine & set(c)]
    assert loops == []

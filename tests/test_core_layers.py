"""The compiled core as a one-way stack (src/fastgrad/_core/README.md), read from the sources as
tools/core_layers.py reads them: the op families import the Python facade nowhere, and import
each other at module level, never inside a function body to dodge a cycle."""
import os
import re

import numpy as np
import pytest

import fastgrad
from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own sources and core")

CORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src", "fastgrad",
                    "_core")
FACADE_IMPORT = re.compile(r"^\s*(from|import)\s+fastgrad(\.(?!_core\b)\w+|\s+import\b)")
CORE_IMPORT_IN_BODY = re.compile(r"^\s+(from|import)\s+fastgrad\._core\b")


def _op_sources():
    names = sorted(n for n in os.listdir(CORE) if n.startswith("ops_") and n.endswith(".pyx"))
    assert len(names) > 20
    for name in names:
        with open(os.path.join(CORE, name)) as f:
            yield name, f.read().splitlines()


def test_op_families_do_not_import_the_facade():
    bad = [(name, line.strip()) for name, lines in _op_sources() for line in lines
           if FACADE_IMPORT.match(line)]
    assert bad == []


def test_op_families_import_each_other_at_module_level():
    bad = [(name, line.strip()) for name, lines in _op_sources() for line in lines
           if CORE_IMPORT_IN_BODY.match(line)]
    assert bad == []


def test_attention_dropout_draws_from_the_generator_it_is_given():
    from fastgrad._core.ops_attention import attention
    q = fastgrad.randn(2, 3, 4)
    with pytest.raises(ValueError, match="generator"):
        attention(q, q, q, None, 1.0, 0.5)
    g = fastgrad.Generator()
    g.manual_seed(3)
    a = attention(q, q, q, None, 1.0, 0.5, g)
    g.manual_seed(3)
    b = attention(q, q, q, None, 1.0, 0.5, g)
    assert (a == b).all()


def _all_sources():
    for name in sorted(os.listdir(CORE)):
        if name.endswith((".pyx", ".pxd", ".tp")):
            with open(os.path.join(CORE, name)) as f:
                yield name, f.read().splitlines()


def test_no_core_module_imports_the_facade_or_imports_inside_a_function():
    """engine, function and tensor included: the engine seeds and casts gradients itself."""
    bad = [(name, line.strip()) for name, lines in _all_sources() for line in lines
           if FACADE_IMPORT.match(line) or CORE_IMPORT_IN_BODY.match(line)]
    assert bad == []


def test_the_core_has_no_import_cycle():
    import subprocess
    import sys
    tool = os.path.join(CORE, os.pardir, os.pardir, os.pardir, "tools", "core_layers.py")
    r = subprocess.run([sys.executable, tool, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no cycles" in r.stdout


def test_op_families_stay_small():
    """One family per file, each short enough to read whole (the split that made them: ~700)."""
    big = [(name, len(lines)) for name, lines in _op_sources() if len(lines) > 720]
    assert big == []
CDEF_CLASS = re.compile(r"^cdef class (\w+)", re.M)


def test_each_node_class_name_is_defined_once():
    """One class per node name (Note [Nodes named for a view] in ops_view.pyx): a name defined
    in two families would give grad_fn two types that print alike."""
    homes = {}
    for name in sorted(os.listdir(CORE)):
        if name.endswith(".pyx"):
            with open(os.path.join(CORE, name)) as f:
                for cls in CDEF_CLASS.findall(f.read()):
                    homes.setdefault(cls, []).append(name)
    assert len(homes) > 100
    assert {cls: files for cls, files in homes.items() if len(files) > 1} == {}


def test_a_node_name_has_one_class_across_families():
    x = fastgrad.randn(2, 3, 4, dtype=fastgrad.float64, requires_grad=True)
    w = fastgrad.randn(5, 4, dtype=fastgrad.float64, requires_grad=True)
    s = fastgrad.tensor(1.5, dtype=fastgrad.float64, requires_grad=True)
    pairs = [(x.view(6, 4), fastgrad.nn.functional.linear(x, w)),      # ops_view, ops_linear
             (x.transpose(0, 1).reshape(12, 2), x @ w.T),              # ops_view, ops_matmul
             (x.unsqueeze(0), x[0, None]),                             # ops_view, ops_index
             (fastgrad.movedim(s, 0, 0), x[...])]                      # ops_view, ops_index
    assert [(type(a.grad_fn).__name__, type(b.grad_fn) is type(a.grad_fn)) for a, b in pairs] == [
        ("ViewBackward0", True), ("UnsafeViewBackward0", True), ("UnsqueezeBackward0", True),
        ("AliasBackward0", True)]


@pytest.mark.parametrize("fn", [lambda x, w: fastgrad.nn.functional.linear(x, w),
                                lambda x, w: x @ w.T,
                                lambda x, w: x[1:, None] * w.sum(),
                                lambda x, w: x[...] * w.sum()],
                         ids=["linear", "matmul", "index-unsqueeze", "index-alias"])
def test_a_node_named_for_a_view_runs_its_ops_backward_and_releases_it(fn):
    from _fd import check_grad
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4))
    check_grad(fn, [x, w])
    xt = fastgrad.tensor(x, requires_grad=True)
    y = fn(xt, fastgrad.tensor(w)).sum()
    fastgrad.autograd.grad(y, xt)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        fastgrad.autograd.grad(y, xt)


def test_the_core_map_says_what_each_family_imports():
    """_core/README.md's family table: one row per ops_* module, bottom up, its last column the
    op families it imports, as tools/core_layers.py reads them from the sources."""
    import subprocess
    import sys
    tool = os.path.join(CORE, os.pardir, os.pardir, os.pardir, "tools", "core_layers.py")
    out = subprocess.run([sys.executable, tool], capture_output=True, text=True).stdout
    deps = {m.group(1): {d for d in m.group(2).split(", ") if d.startswith("ops_")}
            for m in re.finditer(r"^(\w+)\s+-> (.*)$", out, re.M)}
    with open(os.path.join(CORE, "README.md")) as f:
        rows = re.findall(r"^\| `(ops_\w+)` \|.*\| ([^|]*) \|$", f.read(), re.M)
    order = [name for name, _ in rows]
    assert sorted(order) == sorted(m for m in deps if m.startswith("ops_"))
    for name, col in rows:
        listed = {x.strip() for x in col.split(",")} - {"—"}
        assert listed == deps[name], name
        assert all(order.index(d) < order.index(name) for d in listed), name

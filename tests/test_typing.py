"""Type stubs: the compiled modules and Tensor as editors and mypy see them.

The .pyi files are written by tools/gen_stubs.py from the built modules; these tests keep them
in step with the build, check the declared return types against what the functions return, and
run mypy on ordinary user code to see that it infers tensors, not Any.
"""
import ast
import importlib
import importlib.util
import os
import re
import textwrap
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from _backend import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own stubs")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
SRC = os.path.join(ROOT, "src")
REGENERATE = "run `PYTHONPATH=src python tools/gen_stubs.py` and commit the .pyi files"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location(
        "gen_stubs", os.path.join(ROOT, "tools", "gen_stubs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(rel):
    path = os.path.join(SRC, rel)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def test_stubs_match_the_built_modules(gen):
    stale = [rel for rel, text in gen.stubs().items() if _read(rel) != text]
    assert not stale, f"type stubs out of date with the compiled modules: {stale}; {REGENERATE}"


def test_every_compiled_module_has_a_stub(gen):
    import fastgrad._core
    folder = fastgrad._core.__path__[0]             # built in place, or installed
    built = {name.split(".")[0] for name in os.listdir(folder) if name.endswith((".so", ".pyd"))}
    assert built, "no compiled modules found: build first"
    missing = sorted(m for m in built if not os.path.exists(os.path.join(folder, m + ".pyi")))
    assert not missing, f"compiled modules without a stub: {missing}; {REGENERATE}"
    assert os.path.exists(os.path.join(SRC, "fastgrad", "py.typed"))


def _stub_names(rel):
    """Top-level names a stub defines, and the member names of each class in it."""
    tree = ast.parse(_read(rel))
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets}
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return names, members


def _compiled_modules():
    import fastgrad._core as core
    folder = core.__path__[0]
    return sorted(name.split(".")[0] for name in os.listdir(folder)
                  if name.endswith((".so", ".pyd")))


@pytest.mark.parametrize("name", _compiled_modules())
def test_stub_names_every_public_name(name):
    mod = importlib.import_module(f"fastgrad._core.{name}")
    names, members = _stub_names(os.path.join("fastgrad", "_core", name + ".pyi"))
    public = {n for n, v in vars(mod).items()
              if not n.startswith("_") and not isinstance(v, type(os))
              and (getattr(v, "__module__", "") or "").startswith("fastgrad")}
    assert public - names == set(), f"missing from {name}.pyi; {REGENERATE}"
    for cls_name, cls in vars(mod).items():
        if isinstance(cls, type) and cls.__module__ == mod.__name__ and cls_name in members:
            methods = {n for n, v in vars(cls).items()
                       if not n.startswith("_") and callable(v) or type(v).__name__ ==
                       "getset_descriptor" and not n.startswith("__")}
            assert methods - members[cls_name] == set(), f"{name}.{cls_name}; {REGENERATE}"


def test_tensor_stub_names_every_method():
    from fastgrad import Tensor
    _, members = _stub_names(os.path.join("fastgrad", "_tensor.pyi"))
    own = {n for n, v in vars(Tensor).items()
           if (callable(v) or isinstance(v, property)) and not n.startswith("__")}
    assert own - members["Tensor"] == set(), REGENERATE


# -- declared return types against what comes back -------------------------------------------------
def _declared_returns():
    """{method or property name: [(stub def, return annotation), ...]} of Tensor, or of
    TensorBase for what Tensor inherits (an overloaded method has several)."""
    out = {}
    for rel, cls in ((os.path.join("fastgrad", "_tensor.pyi"), "Tensor"),
                     (os.path.join("fastgrad", "_core", "tensor.pyi"), "TensorBase")):
        for node in ast.parse(_read(rel)).body:
            if isinstance(node, ast.ClassDef) and node.name == cls:
                for fn in node.body:
                    if isinstance(fn, ast.FunctionDef) and fn.returns is not None:
                        setter = any(isinstance(d, ast.Attribute) for d in fn.decorator_list)
                        if not setter:
                            out.setdefault(fn.name, {}).setdefault(cls, []).append(
                                (fn, ast.unparse(fn.returns)))
    return {name: next(iter(by_cls.values())) for name, by_cls in out.items()}


def _conforms(value, annotation, env):
    for alt in annotation.replace("builtins.", "").split(" | "):
        alt = alt.strip()
        if alt in ("Any", "NoReturn") or (alt == "None" and value is None):
            return True
        m = re.fullmatch(r"tuple\[(.+), \.\.\.\]", alt)
        if m:
            if isinstance(value, tuple) and all(_conforms(v, m.group(1), env) for v in value):
                return True
            continue
        alt = alt.partition("[")[0]         # Iterator[Tensor]: an iterator
        if alt != "None" and isinstance(value, eval(alt, env)):
            return True
    return False


def _env():
    import fastgrad
    from fastgrad._core import hooks, node, ops_reduce, tensor
    return {"Tensor": fastgrad.Tensor, "Size": tensor.Size, "np": np, "Node": node.Node,
            "_dtypes": importlib.import_module("fastgrad._dtypes"),
            "RemovableHandle": hooks.RemovableHandle, "str": str, "int": int, "float": float,
            "bool": bool, "return_types_max": ops_reduce.return_types_max,
            "return_types_min": ops_reduce.return_types_min, "Sequence": Sequence,
            "Iterator": Iterator, "Self": fastgrad.Tensor}


def _params(fn):
    """A stub method's positional parameters after self."""
    return (fn.args.posonlyargs + fn.args.args)[1:]


# Calls with arguments, for the rules that depend on them (overloads, several results).
_CALLS_WITH_ARGS = [("size", (0,)), ("stride", (1,)), ("max", (0,)), ("min", (1,)),
                    ("max", ()), ("chunk", (2,)), ("split", (1,)), ("unbind", ()),
                    ("register_hook", (lambda g: g,))]


def test_declared_returns_match_what_comes_back():
    """Every Tensor method callable without arguments, every property, and the calls above:
    the value returned conforms to the stub's return type (a wrong rule-table entry fails)."""
    import fastgrad
    declared, env = _declared_returns(), _env()
    checked = []

    def sample():
        t = fastgrad.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
        t.grad = fastgrad.ones(2, 2)
        return t

    def check(name, value, args):
        # the first declaration (overload) whose parameters accept args, as a type checker picks
        anns = []
        for fn, ann in declared[name]:
            params = _params(fn)
            if len(args) < len(params) - len(fn.args.defaults) or (
                    len(args) > len(params) and fn.args.vararg is None):
                continue
            if all(p.annotation is None or _conforms(a, ast.unparse(p.annotation), env)
                   for p, a in zip(params, args)):
                anns.append(ann)
        assert anns, f"no declaration of Tensor.{name} accepts {args}"
        assert _conforms(value, anns[0], env), \
            f"Tensor.{name}{args} returned {type(value).__name__}; the stub says {anns[0]}: " \
            f"annotate it in _tensor.py or give it a rule in tools/gen_stubs.py's RETURNS, " \
            f"then regenerate"
        checked.append(name)

    leaf = sample()
    for name in sorted(declared):
        attr = getattr(type(leaf), name, None)
        if isinstance(attr, property) or type(attr).__name__ == "getset_descriptor":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # .grad of a non-leaf
                for t in (leaf, leaf * 1.0):        # grad and grad_fn set, and None
                    check(name, getattr(t, name), ())
            continue
        fn = declared[name][0][0]
        needs = len(_params(fn)) - len(fn.args.defaults)
        if needs or None in fn.args.kw_defaults or name.startswith("_") and \
                not name.startswith("__"):
            continue
        try:
            value = getattr(sample(), name)()
        except Exception:                   # a call that needs a particular shape or dtype
            continue
        check(name, value, ())
    for name, args in _CALLS_WITH_ARGS:
        check(name, getattr(sample(), name)(*args), args)
    check("type", sample().type(fastgrad.float64), (fastgrad.float64,))
    for one in (fastgrad.tensor(2.5), fastgrad.tensor([3]), fastgrad.tensor(True)):
        check("item", one.item(), ())
    check("numpy", sample().detach().numpy(), ())
    for name in ("item", "tolist", "numpy", "dim", "numel", "shape", "grad", "grad_fn",
                 "requires_grad", "dtype", "sum", "exp", "T", "float", "__len__"):
        assert name in checked, name


# -- mypy on user code -----------------------------------------------------------------------------
USER_SCRIPT = '''
    import fastgrad as torch

    x = torch.randn(3, requires_grad=True)
    y = (x * 2).sum()
    reveal_type(y)                          # Tensor
    reveal_type(y.item())                   # float int
    reveal_type(x.grad)                     # Tensor None
    reveal_type(x.shape)                    # Size
    reveal_type(x.size())                   # Size
    reveal_type(x.size(0))                  # int
    reveal_type(x.dim())                    # int
    reveal_type(x.requires_grad)            # bool
    reveal_type(x.grad_fn)                  # Node None
    reveal_type(x.dtype)                    # dtype
    reveal_type(x.tolist())                 # Any
    reveal_type(x.numpy())                  # ndarray
    reveal_type(x.max(0))                   # return_types_max
    reveal_type(x.max())                    # Tensor
    reveal_type(x.chunk(3))                 # tuple Tensor
    reveal_type(x.reshape(3, 1).T)          # Tensor
    reveal_type(2 * x // 2 % 3)             # Tensor
    reveal_type(x == 1)                     # Tensor
    reveal_type(x.float())                  # Tensor
    reveal_type(torch.exp(x))               # Tensor
    reveal_type(torch.tensor([1.0, 2.0]))   # Tensor
    reveal_type(torch.nn.Linear(2, 3)(x))   # Tensor
    reveal_type(torch.sum(x, dim=0))        # Tensor
    reveal_type(torch.add(x, 1, alpha=2))   # Tensor
    reveal_type(torch.max(x, 0))            # return_types_max
    reveal_type(torch.cat([x, x]))          # Tensor
    reveal_type(torch.where(x > 0, x, 0.0)) # Tensor
    reveal_type(torch.nn.functional.relu(x))            # Tensor
    reveal_type(torch.nn.functional.cross_entropy(x, x))  # Tensor
    reveal_type(torch.nn.MSELoss()(x, x))   # Tensor
    reveal_type(x.register_hook(print))     # RemovableHandle
    reveal_type(x.register_hook(print).id)  # int
'''

TYPED_SCRIPT = '''
    import fastgrad as torch
    import fastgrad.nn as nn
    import fastgrad.optim as optim
    from fastgrad import Tensor


    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x: Tensor) -> Tensor:
            return torch.tanh(self.fc(x)).relu()


    def step(model: Net, opt: optim.Optimizer, x: Tensor, y: Tensor) -> float:
        opt.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
        values, indices = model(x).max(dim=1)
        parts: tuple[Tensor, ...] = x.chunk(2)
        n: int = x.size(0) + x.shape[1] + len(parts) + indices.numel()
        g = model.fc.weight.grad
        return loss.item() + n + (0.0 if g is None else g.norm().item()) + values.sum().item()


    class Pair(nn.Module):                  # a forward with its own signature and result
        def forward(self, x: Tensor, *, scale: float = 1.0) -> tuple[Tensor, Tensor]:
            return x * scale, x


    model = Net()
    print(step(model, optim.SGD(model.parameters(), lr=0.1), torch.randn(4, 2), torch.zeros(4, 3)))
    a, b = Pair()(torch.ones(2), scale=2.0)
    w = nn.Parameter(torch.zeros(2))
    with torch.no_grad():
        w -= 0.1 * a                        # in place: w stays a Parameter
    print(w.sum().item() + b.sum().item())
'''


def _example_on_fastgrad(name):
    """An example script with its import block reduced to the fastgrad branch."""
    with open(os.path.join(ROOT, "examples", name)) as f:
        text = f.read()
    head, sep, rest = text.partition('if "--torch" in sys.argv')
    if not sep:
        return text
    _, _, tail = rest.partition("\nelse:\n")
    body, _, after = tail.partition("\n\n")
    return head + textwrap.dedent(body) + "\n\n" + after


def _mypy(tmp_path, scripts):
    api = pytest.importorskip("mypy.api")
    paths = []
    for name, text in scripts.items():
        path = tmp_path / name
        path.write_text(textwrap.dedent(text) if text.startswith("\n    ") else text)
        paths.append(str(path))
    config = tmp_path / "mypy.ini"
    # fastgrad as a user's mypy meets an installed package: its own modules are not reported on
    config.write_text(f"[mypy]\nmypy_path = {os.path.abspath(SRC)}\n"
                      f"cache_dir = {tmp_path / 'cache'}\n"
                      "[mypy-fastgrad.*]\nfollow_imports = silent\n")
    out, err, status = api.run(["--config-file", str(config), "--check-untyped-defs",
                                "--no-color-output", *paths])
    return out, err, status


def test_mypy_sees_tensors_not_any(tmp_path):
    examples = {f"example_{name}": _example_on_fastgrad(name)
                for name in sorted(os.listdir(os.path.join(ROOT, "examples")))
                if name.endswith(".py")}
    out, err, _ = _mypy(tmp_path, {"user.py": USER_SCRIPT, "typed.py": TYPED_SCRIPT, **examples})
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not errors, "\n".join(errors)
    revealed = {int(m.group(1)): m.group(2)
                for m in re.finditer(r'user\.py:(\d+): note: Revealed type is "(.*)"', out)}
    lines = textwrap.dedent(USER_SCRIPT).splitlines()
    expected = {i + 1: line.partition("#")[2].split()
                for i, line in enumerate(lines) if "reveal_type" in line}
    assert set(revealed) == set(expected), out + err
    for lineno, words in expected.items():
        got = revealed[lineno]
        tokens = {tok.rpartition(".")[2] for tok in re.findall(r"[\w.]+", got)}
        assert set(words) <= tokens, f"{lines[lineno - 1].strip()}: revealed {got!r}"
        if words != ["Any"]:                 # (ndarray[Any, ...] is fine: NumPy's own)
            outer = re.findall(r"[\w.]+", re.sub(r"\[.*\]", "", got))
            assert "Any" not in outer, f"{lines[lineno - 1].strip()}: revealed {got!r}"

"""Print the dependency graph of src/fastgrad/_core (cimports and imports between its modules,
including imports inside function bodies) and any cycles in it; with --facade, the same for the
Python facade (every fastgrad module outside _core).

    python tools/core_layers.py            # the graph, one module a line, then the cycles
    python tools/core_layers.py --check    # exit 1 if there is a cycle
    python tools/core_layers.py --facade [--check]

It reads the sources; nothing is imported. In the facade an import inside a function body counts
as an edge like any other (one that closes a cycle only hides it until the function runs); an
import under `if TYPE_CHECKING:` does not (it never runs)."""
import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "fastgrad"
CORE = PACKAGE / "_core"
PATTERNS = [re.compile(r"^\s*(?:from\s+fastgrad\._core\.(\w+)\s+c?import)", re.M),
            re.compile(r"^\s*from\s+fastgrad\._core\s+c?import\s+([\w, ]+)", re.M),
            re.compile(r"^\s*c?import\s+fastgrad\._core\.(\w+)", re.M)]


def _module_name(path):
    """kernels.pyx, kernels.pxd and their templates kernels.pyx.tp / kernels.pxd.tp: kernels."""
    name = path.name[:-3] if path.name.endswith(".tp") else path.name
    stem, _, suffix = name.rpartition(".")
    return stem if suffix in ("pyx", "pxd") else None


def graph():
    modules = sorted({m for m in map(_module_name, CORE.iterdir()) if m})
    deps = {m: set() for m in modules}
    for m in modules:
        for suffix in (".pyx", ".pxd"):
            path = CORE / f"{m}{suffix}"
            if (CORE / f"{m}{suffix}.tp").exists():
                path = CORE / f"{m}{suffix}.tp"      # read the template, not what it generates
            if not path.exists():
                continue
            text = path.read_text()
            for pat in PATTERNS:
                for hit in pat.findall(text):
                    for name in re.split(r"[,\s]+", hit.strip()):
                        name = name.split(" as ")[0]
                        if name in deps and name != m:
                            deps[m].add(name)
    return deps


def cycles(deps):
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(deps[m]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m)
    return found


def facade_modules():
    """{dotted name: path} of the facade's modules (a package is its __init__.py)."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "_core" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


def _runs(node):
    """The statements below `node` that execute: all but `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for stmt in child.orelse:
                yield stmt
                yield from _runs(stmt)
            continue
        yield child
        yield from _runs(child)


def facade_graph():
    """{module: {imported module: [line, ...]}} among the facade's modules."""
    mods = facade_modules()
    deps = {m: {} for m in mods}

    def target(name):
        if name == "fastgrad._core" or name.startswith("fastgrad._core."):
            return None                        # the compiled core: below the whole facade
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in _runs(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                         for a in node.names]
            for name in names:
                t = target(name)
                if t is not None and t != m and node.lineno not in deps[m].get(t, ()):
                    deps[m].setdefault(t, []).append(node.lineno)
    return deps


def strongly_connected(deps):
    """The groups of modules that import each other, directly or around a loop (Tarjan)."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return groups


def report(deps, width, found):
    """Print the graph (unless --check) and the cycle lines; the exit status."""
    if "--check" not in sys.argv:
        for m in sorted(deps):
            print(f"{m:{width}s} -> {', '.join(sorted(deps[m])) or '-'}")
        print()
    for line in found:
        print(line)
    if not found:
        print("no cycles")
    return 1 if found and "--check" in sys.argv else 0


def facade_main():
    deps = facade_graph()
    found = []
    for group in strongly_connected(deps):
        found.append("cycle among: " + ", ".join(group))
        found += [f"    {m} -> {t} (line {', '.join(map(str, deps[m][t]))})"
                  for m in group for t in sorted(set(deps[m]) & set(group))]
    return report(deps, 40, found)


def main():
    if "--facade" in sys.argv:
        return facade_main()
    deps = graph()
    return report(deps, 16, ["cycle: " + " -> ".join(loop) for loop in cycles(deps)])


if __name__ == "__main__":
    sys.exit(main())

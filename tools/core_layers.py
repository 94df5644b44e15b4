"""Print the dependency graph of src/fastgrad/_core (cimports and imports between its modules,
including imports inside function bodies) and any cycles in it.

    python tools/core_layers.py            # the graph, one module a line, then the cycles
    python tools/core_layers.py --check    # exit 1 if there is a cycle

It reads the sources as text; nothing is imported."""
import re
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "src" / "fastgrad" / "_core"
PATTERNS = [re.compile(r"^\s*(?:from\s+fastgrad\._core\.(\w+)\s+c?import)", re.M),
            re.compile(r"^\s*from\s+fastgrad\._core\s+c?import\s+([\w, ]+)", re.M),
            re.compile(r"^\s*c?import\s+fastgrad\._core\.(\w+)", re.M)]


def graph():
    modules = sorted({p.stem for p in CORE.iterdir() if p.suffix in (".pyx", ".pxd")})
    deps = {m: set() for m in modules}
    for m in modules:
        for suffix in (".pyx", ".pxd"):
            path = CORE / f"{m}{suffix}"
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


def main():
    deps = graph()
    loops = cycles(deps)
    if "--check" not in sys.argv:
        for m in sorted(deps):
            print(f"{m:16s} -> {', '.join(sorted(deps[m])) or '-'}")
        print()
    for loop in loops:
        print("cycle: " + " -> ".join(loop))
    if not loops:
        print("no cycles")
    return 1 if loops and "--check" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())

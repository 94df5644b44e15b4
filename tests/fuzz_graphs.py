"""Differential fuzzing: random expression graphs run in fastgrad and in PyTorch, compared.

Each program is a few lines of Python text (`n1 = m.exp(x0)`, `n2 = (n1 * x1).sum(0)` ...)
executed twice, once with `m` bound to fastgrad and once to torch (`F` is `m.nn.functional`),
from the same leaf arrays. Compared: the exception TYPE when torch raises (fastgrad must raise the
same), the result's dtype and shape, its values (NaN positions equal, infinities of the same sign,
finite values within the dtype's tolerance), `requires_grad`, and every leaf's gradient after
backward of a reduction of the output (`out.sum()` or `(out * v).sum()` with a random v).
Without torch, `check_fd` checks float64 programs of smooth ops against central finite differences
(points where the difference quotient depends on the step, i.e. near a kink, are skipped) and
elementwise forward values against NumPy.

Run it long (one process: the machine is shared):

    PYTHONPATH=src python tests/fuzz_graphs.py --n 50000 --report        # rate by class + repros
    PYTHONPATH=src python tests/fuzz_graphs.py --n 2000 --fd --report    # no-torch oracle
    FASTGRAD_FUZZ_EXAMPLES=200000 PYTHONPATH=src python -m pytest tests/test_fuzz.py

`--seed S` picks another stream, `--only 1234` re-runs one program index verbosely, `--known`
also lists mismatches that KNOWN_OPEN / OPEN_HERE excuse. KNOWN_OPEN names the classes being fixed
on other branches (empty it once they are merged and run long to confirm); OPEN_HERE the classes
found and not fixed yet, each with why. Every mismatch is attributed to the first node
whose sub-program already mismatches (the culprit op) and reduced, when it still reproduces, to that
one op applied to leaves holding its operands' values: the printed reproducer is one line to paste
with `m = fastgrad` and with `m = torch`.

Adding an op: one row in OPS, `Op(name, build, kinds, smooth, np_ref)`, where `build(g, x)` gets
the generator and the operand node and returns `(text, shape, kind)`, drawing extra operands,
dims and constants from `g` (`g.other`, `g.fresh`, `g.dim`, `g.scalar`, `g.pos`). Most rows use
the family builders below (`unary`, `binary`, `reduce_dims`, ...). A builder raises `Skip` when
the operand does not suit the op; setting `g.invalid` marks a deliberately bad call (a dim out of
range, a bad index) whose only purpose is to compare the exception type, so the program ends there.
"""
import math
import os
import random
import re
import sys
import warnings
from collections import Counter, namedtuple

import numpy as np

# ----------------------------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------------------------

FLOATS = ("float32", "float64")
SUBNORMAL = {"float32": 1e-40, "float64": 5e-324}


class Skip(Exception):
    """The operand does not suit this op: the generator picks another."""


Node = namedtuple("Node", "name shape kind dtype op inputs")   # shape None: data-dependent
Leaf = namedtuple("Leaf", "name array dtype requires_grad")


def bcast(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise Skip from None


def fmt(v):
    """A Python literal for a number (nan and inf included)."""
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(int(v)) if v >= 0 else f"({int(v)!r})"
    v = float(v)
    if math.isnan(v):
        return "float('nan')"
    if math.isinf(v):
        return "float('inf')" if v > 0 else "(-float('inf'))"
    return repr(v) if v >= 0 and math.copysign(1, v) > 0 else f"({v!r})"


class Gen:
    """Draws one program: leaves (NumPy arrays) and statements over them."""

    def __init__(self, rng, fd=False):
        self.rng = rng
        self.fd = fd
        self.dtype = "float64" if fd else rng.choice(FLOATS)
        self.edges = (not fd) and rng.random() < 0.5
        self.leaves = []
        self.nodes = []
        self.stmts = []
        self.invalid = False

    # -- values --
    def _np(self):
        return np.random.default_rng(self.rng.getrandbits(32))

    def array(self, shape, kind="f", dtype=None, style="normal"):
        r = self._np()
        dtype = dtype or self.dtype
        if kind == "b":
            return r.random(shape) < 0.5
        if kind == "i":
            return r.integers(-4, 5, size=shape).astype(dtype)
        if style == "prob":
            a = r.random(shape)
        elif self.fd:
            a = r.uniform(0.3, 1.5, size=shape) * r.choice([-1.0, 1.0], size=shape)
        else:
            a = r.standard_normal(shape) * self.rng.choice([1.0, 1.0, 3.0, 0.1])
        if self.edges and a.size:
            mask = r.random(shape) < 0.25
            if style == "prob":
                pool = [0.0, 1.0, 0.0, 1.0, float("nan"), 0.5, SUBNORMAL[dtype]]
            else:
                pool = [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1.0, -1.0, 1e30,
                        -1e30, SUBNORMAL[dtype], 0.5, 2.0]
            a = np.where(mask, r.choice(pool, size=shape), a)
            if a.size > 1 and self.rng.random() < 0.3:          # ties
                flat = a.reshape(-1)
                flat[r.integers(0, a.size, size=max(1, a.size // 2))] = flat[0]
                a = flat.reshape(shape)
        return np.asarray(a, dtype=dtype)

    def shape(self):
        nd = self.rng.choice([0, 1, 1, 2, 2, 3])
        zero = (not self.fd) and self.rng.random() < 0.08
        dims = [self.rng.randint(1, 3) for _ in range(nd)]
        if zero and nd:
            dims[self.rng.randrange(nd)] = 0
        return tuple(dims)

    def compat(self, shape):
        """A shape that broadcasts with `shape` (fewer leading dims, some dims 1, or one more)."""
        s = list(shape)
        r = self.rng.random()
        if r < 0.2 and s:
            s = s[self.rng.randint(1, len(s)):]
        elif r < 0.3 and len(s) < 3:
            s = [self.rng.randint(1, 2)] + s
        for i in range(len(s)):
            if self.rng.random() < 0.25:
                s[i] = 1
        return tuple(s)

    # -- operands --
    def leaf(self, shape, kind="f", dtype=None, style="normal", grad=None):
        if dtype is None:
            dtype = {"f": self.dtype, "i": "int64", "b": "bool"}[kind]
        name = f"x{len(self.leaves)}"
        grad = (kind == "f") if grad is None else grad
        self.leaves.append(Leaf(name, self.array(shape, kind, dtype, style), dtype, grad))
        self.nodes.append(Node(name, tuple(shape), kind, dtype, None, ()))
        return name

    fresh = leaf

    def scalar(self, kind="f"):
        if self.fd:
            return fmt(self.rng.choice([0.5, 1.5, -2.0, 3.0, 2]))
        if kind == "i" or self.rng.random() < 0.3:
            return fmt(self.rng.choice([0, 1, 2, -1, 3, True]))
        pool = [0.5, -2.5, 3.0, 1.0, 0.0, -0.0, 2.0]
        if self.edges:
            pool += [float("inf"), -float("inf"), float("nan"), 1e30, SUBNORMAL["float64"]]
        return fmt(self.rng.choice(pool))

    def other(self, shape, kinds="fi", allow_scalar=True):
        """A second operand for an elementwise op: (text, shape or None for a Python number, kind)."""
        r = self.rng.random()
        if allow_scalar and r < 0.3:
            k = "i" if ("i" in kinds and not self.fd and self.rng.random() < 0.3) else "f"
            return self.scalar(k), None, k
        if r < 0.55:
            pool = [n for n in self.nodes if n.shape is not None and n.kind in kinds]
            self.rng.shuffle(pool)
            for n in pool:
                try:
                    bcast(shape, n.shape)
                    return n.name, n.shape, n.kind
                except Skip:
                    pass
        kind, dtype = "f", None
        if not self.fd:
            r = self.rng.random()
            if r < 0.1:
                dtype = "float32" if self.dtype == "float64" else "float64"
            elif r < 0.2 and "i" in kinds:
                kind = "i"
        shape = self.compat(shape)
        return self.leaf(shape, kind, dtype), shape, kind

    def dim(self, shape):
        nd = max(len(shape), 1)
        if not self.fd and self.rng.random() < 0.02:
            self.invalid = True
            return self.rng.choice([nd, -nd - 1])
        return self.rng.randint(-nd, nd - 1)

    def pos(self, text, how="pos"):
        """In finite-difference mode, map an operand into the op's smooth domain."""
        if not self.fd or how is None:
            return text
        return {"pos": f"({text} * {text} + 0.25)",
                "unit": f"m.sigmoid({text})"}[how]


def norm_dim(d, nd):
    nd = max(nd, 1)
    return d + nd if d < 0 else d


def kind_of(*kinds):
    return "f" if "f" in kinds else ("i" if "i" in kinds else "b")


# -- family builders (each returns build(g, x) -> (text, shape, kind)) --

def unary(template, domain=None, keeps_kind=False):
    def build(g, x):
        kind = x.kind if keeps_kind else "f"
        return template.format(x=g.pos(x.name, domain)), x.shape, kind
    return build


def unary_params(template, choices, domain=None):
    """A unary op with keyword constants drawn from `choices` (name -> list of literals)."""
    def build(g, x):
        p = {k: g.rng.choice(v) for k, v in choices.items()}
        return template.format(x=g.pos(x.name, domain), **p), x.shape, "f"
    return build


def binary(template, kinds="fi", result=None, domain=None, scalar_first=True, tensor_only=False):
    """template with {a} {b}; result 'b' (comparison), 'f' (true division) or None (promotion)."""
    def build(g, x):
        text, shape, kind = g.other(x.shape, kinds, allow_scalar=not tensor_only)
        out = x.shape if shape is None else bcast(x.shape, shape)
        a, b = x.name, text
        if shape is None and scalar_first and g.rng.random() < 0.4:
            a, b = b, a
        elif shape is not None and g.rng.random() < 0.5:
            a, b = b, a
        if domain == "pos_b":
            b = g.pos(b)
        elif domain == "pos_a":
            a = g.pos(a)
        return template.format(a=a, b=b), out, result or kind_of(x.kind, kind)
    return build


def pow_scalar(g, x):
    e = g.rng.choice([2, 3, 0.5, -1, 0, -0.5, 1.5, 2.0] + ([] if g.fd else [-2, 0.0]))
    base = g.pos(x.name) if (g.fd and (e != int(e) or e < 0)) else x.name
    return f"({base} ** {fmt(e)})", x.shape, "f" if isinstance(e, float) else x.kind


def rpow_scalar(g, x):
    b = g.rng.choice([2.0, 0.5, 3] + ([] if g.fd else [0.0, -1.0, 1.0, 0]))
    return f"({fmt(b)} ** {x.name})", x.shape, "f"


def clamp(g, x):
    lo, hi = sorted([g.rng.choice([-1.0, -0.5, 0.0, 0.25, 1.0, 2]) for _ in range(2)])
    which = g.rng.random()
    if which < 0.3:
        return f"{x.name}.clamp(min={fmt(lo)})", x.shape, kind_of(x.kind, "f" if isinstance(lo, float) else "i")
    if which < 0.5:
        return f"m.clamp({x.name}, max={fmt(hi)})", x.shape, "f"
    if which < 0.6 and not g.fd:
        lo, hi = hi + 0.5, lo                       # min > max: PyTorch returns max everywhere
    return f"m.clamp({x.name}, {fmt(lo)}, {fmt(hi)})", x.shape, "f"


def where(g, x):
    cond_src = g.rng.choice(["{x} > 0", "{x} < 0.5", "{x} == {x}", "{x} != 0"])
    cond = cond_src.format(x=x.name)
    a, sa, ka = g.other(x.shape, "fi")
    b, sb, kb = g.other(x.shape, "fi", allow_scalar=g.rng.random() < 0.3)
    shape = bcast(x.shape, *(s for s in (sa, sb) if s is not None))
    if g.rng.random() < 0.5:
        # the classic masked computation: a branch that is not taken can be NaN/inf
        body = g.rng.choice(["{x}.log()", "{x}.sqrt()", "(1 / {x})", "{x} ** 0.5"]).format(x=x.name)
        return f"m.where({x.name} > 0, {body}, {b})", bcast(x.shape, sb or ()), "f"
    return f"m.where({cond}, {a}, {b})", shape, kind_of(ka, kb)


def masked_fill(g, x):
    mask_src, sm, _ = g.other(x.shape, "fi", allow_scalar=False)
    if bcast(x.shape, sm) != x.shape:
        raise Skip
    v = g.scalar("f")
    return f"{x.name}.masked_fill({mask_src} > 0, {v})", x.shape, kind_of(x.kind, "f")


def reduce_dims(method, multi=True, keepdim=True, full=True, result=None, extra=""):
    """x.method(dims, keepdim=k){extra} with 0, 1 or several dims."""
    def build(g, x):
        nd = len(x.shape)
        k = keepdim and g.rng.random() < 0.5
        r = g.rng.random()
        if full and r < 0.3:
            return f"{x.name}.{method}()", (), result or x.kind
        if multi and r < 0.5 and nd >= 2:
            dims = sorted(g.rng.sample(range(nd), g.rng.randint(1, nd)))
            dims = [d - nd if g.rng.random() < 0.3 else d for d in dims]
            dd = tuple(norm_dim(d, nd) for d in dims)
            shape = tuple(1 if i in dd else s for i, s in enumerate(x.shape)) if k else \
                tuple(s for i, s in enumerate(x.shape) if i not in dd)
            return (f"{x.name}.{method}({tuple(dims)!r}, keepdim={k}){extra}", shape,
                    result or x.kind)
        d = g.dim(x.shape)
        if g.invalid:
            return f"{x.name}.{method}({d}){extra}", None, "f"
        dd = norm_dim(d, nd)
        shape = tuple(1 if i == dd else s for i, s in enumerate(x.shape)) if k else \
            tuple(s for i, s in enumerate(x.shape) if i != dd)
        kw = f", keepdim={k}" if keepdim else ""
        return f"{x.name}.{method}({d}{kw}){extra}", shape, result or x.kind
    return build


def var_std(method):
    def build(g, x):
        corr = g.rng.choice(["", ", correction=0", ", unbiased=False", ", correction=2"])
        if g.rng.random() < 0.3:
            return f"{x.name}.{method}({corr.lstrip(', ')})", (), "f"
        text, shape, _ = reduce_dims(method, full=False)(g, x)
        return text[:-1] + corr + ")", shape, "f"
    return build


def along_dim(template, result=None):
    """ops that keep the shape and take one dim: softmax, cumsum, ..."""
    def build(g, x):
        d = g.dim(x.shape)
        return template.format(x=x.name, d=d), (None if g.invalid else x.shape), result or "f"
    return build


def norm(g, x):
    p = g.rng.choice(["", "p=1", "p=2", "p=float('inf')", "p=3"])
    if g.rng.random() < 0.5 or not x.shape:
        return f"{x.name}.norm({p})", (), "f"
    d = g.dim(x.shape)
    shape = tuple(s for i, s in enumerate(x.shape) if i != norm_dim(d, len(x.shape)))
    return f"{x.name}.norm({p + ', ' if p else ''}dim={d})", (None if g.invalid else shape), "f"


def reshape(g, x):
    n = int(np.prod(x.shape))
    r = g.rng.random()
    if r < 0.3:
        return f"{x.name}.reshape(-1)", (n,), x.kind
    if r < 0.5:
        return f"{x.name}.flatten()", (n,), x.kind
    if r < 0.7 and n > 0 and n % 2 == 0:
        return f"{x.name}.view({n // 2}, -1)", (n // 2, 2), x.kind
    shape = tuple(reversed(x.shape))
    return f"{x.name}.reshape({shape!r})", shape, x.kind


def unsqueeze(g, x):
    nd = len(x.shape) + 1
    d = g.rng.randint(-nd, nd - 1)
    s = list(x.shape)
    s.insert(norm_dim(d, nd), 1)
    return f"{x.name}.unsqueeze({d})", tuple(s), x.kind


def squeeze(g, x):
    if g.rng.random() < 0.5:
        return f"{x.name}.squeeze()", tuple(s for s in x.shape if s != 1), x.kind
    d = g.dim(x.shape)
    if g.invalid:
        return f"{x.name}.squeeze({d})", None, x.kind
    dd = norm_dim(d, len(x.shape))
    shape = tuple(s for i, s in enumerate(x.shape) if not (i == dd and s == 1))
    return f"{x.name}.squeeze({d})", shape, x.kind


def transpose(g, x):
    if len(x.shape) < 2:
        if len(x.shape) == 0 or g.rng.random() < 0.5:
            return f"{x.name}.t()", x.shape, x.kind
        raise Skip
    nd = len(x.shape)
    a, b = g.rng.sample(range(nd), 2)
    s = list(x.shape)
    s[a], s[b] = s[b], s[a]
    how = g.rng.random()
    if how < 0.3:
        return f"{x.name}.mT", x.shape[:-2] + (x.shape[-1], x.shape[-2]), x.kind
    if how < 0.6:
        perm = list(range(nd))
        g.rng.shuffle(perm)
        return f"{x.name}.permute{tuple(perm)!r}", tuple(x.shape[p] for p in perm), x.kind
    return f"{x.name}.transpose({a}, {b - nd})", tuple(s), x.kind


def expand(g, x):
    shape = tuple(g.rng.choice([s, 2]) if s == 1 else s for s in x.shape)
    if g.rng.random() < 0.5:
        shape = (2,) + shape
    if g.rng.random() < 0.5:
        return f"{x.name}.expand{shape!r}", shape, x.kind
    reps = tuple(g.rng.randint(1, 2) for _ in x.shape) or (2,)
    if g.rng.random() < 0.3:
        reps = (2,) + reps
    lead = len(reps) - len(x.shape)
    full = (1,) * lead + x.shape
    return f"{x.name}.repeat{reps!r}", tuple(a * b for a, b in zip(full, reps)), x.kind


def flip(g, x):
    d = g.dim(x.shape)
    return f"{x.name}.flip({d})", (None if g.invalid else x.shape), x.kind


def narrow(g, x):
    if not x.shape:
        raise Skip
    d = g.rng.randrange(len(x.shape))
    size = x.shape[d]
    start = g.rng.randint(0, size)
    length = g.rng.randint(0, size - start)
    shape = tuple(length if i == d else s for i, s in enumerate(x.shape))
    r = g.rng.random()
    if r < 0.4:
        return f"{x.name}.narrow({d}, {start}, {length})", shape, x.kind
    if r < 0.7:
        key = ", ".join([":"] * d + [f"{start}:{start + length}"])
        return f"{x.name}[{key}]", shape, x.kind
    if size == 0:
        raise Skip
    i = g.rng.randrange(-size, size)
    key = ", ".join([":"] * d + [str(i)])
    return f"{x.name}[{key}]", tuple(s for j, s in enumerate(x.shape) if j != d), x.kind


def index_misc(g, x):
    r = g.rng.random()
    if r < 0.25:
        return f"{x.name}[None]", (1,) + x.shape, x.kind
    if r < 0.5 and x.shape:
        return f"{x.name}[..., ::2]", x.shape[:-1] + ((x.shape[-1] + 1) // 2,), x.kind
    if r < 0.75 and x.shape and x.shape[0]:
        idx = [g.rng.randrange(-x.shape[0], x.shape[0]) for _ in range(g.rng.randint(1, 4))]
        return f"{x.name}[{idx!r}]", (len(idx),) + x.shape[1:], x.kind
    return f"{x.name}[{x.name} > 0]", None, x.kind   # data-dependent length: ends the program


def index_select(g, x):
    nd = len(x.shape)
    d = g.rng.randrange(max(nd, 1))
    size = x.shape[d] if nd else 1
    n = g.rng.randint(0, 3)
    if not nd and n != 1:           # a 0-d operand takes exactly one index (both libraries raise)
        if g.fd:
            n = 1
        else:
            g.invalid = True
    if size == 0 and n:
        g.invalid = True
    idx = [g.rng.randrange(max(size, 1)) for _ in range(n)]
    if not g.fd and idx and g.rng.random() < 0.03:
        idx[0], g.invalid = size, True
    shape = tuple(n if i == d else s for i, s in enumerate(x.shape)) if nd else None
    r = g.rng.random()
    if r < 0.5 or not nd:
        return (f"m.index_select({x.name}, {d}, m.tensor({idx!r}, dtype=m.int64))",
                None if g.invalid or not nd else shape, x.kind)
    # gather / take_along_dim with an index of the operand's shape but n along d
    ishape = tuple(n if i == d else s for i, s in enumerate(x.shape))
    arr = np.random.default_rng(g.rng.getrandbits(32)).integers(0, max(size, 1), size=ishape)
    lit = f"m.tensor({arr.tolist()!r}, dtype=m.int64).reshape({ishape!r})"
    fn = "m.gather({x}, {d}, {i})" if r < 0.8 else "m.take_along_dim({x}, {i}, {d})"
    return fn.format(x=x.name, d=d, i=lit), None if g.invalid else ishape, x.kind


def scatter_add(g, x):
    if not x.shape or 0 in x.shape:
        raise Skip
    d = g.rng.randrange(len(x.shape))
    arr = np.random.default_rng(g.rng.getrandbits(32)).integers(0, x.shape[d], size=x.shape)
    src = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None)
    lit = f"m.tensor({arr.tolist()!r}, dtype=m.int64).reshape({x.shape!r})"
    return f"m.scatter_add({x.name}, {d}, {lit}, {src})", x.shape, kind_of(x.kind, "f")


def split_like(g, x):
    if not x.shape:
        raise Skip
    d = g.rng.randrange(len(x.shape))
    size = x.shape[d]
    r = g.rng.random()
    if r < 0.35:
        k = g.rng.randint(1, 3)
        if size == 0:
            return f"m.chunk({x.name}, {k}, {d})[0]", x.shape, x.kind
        per = -(-size // k)
        return f"m.chunk({x.name}, {k}, {d})[-1]", tuple(
            (size - per * (-(-size // per) - 1)) if i == d else s for i, s in enumerate(x.shape)), x.kind
    if r < 0.7:
        s = g.rng.randint(1, 2)
        last = size % s or s
        if size == 0:
            return f"{x.name}.split({s}, {d})[0]", x.shape, x.kind
        return f"{x.name}.split({s}, {d})[-1]", tuple(
            last if i == d else t for i, t in enumerate(x.shape)), x.kind
    if size == 0:
        raise Skip
    return (f"{x.name}.unbind({d})[{g.rng.randrange(size)}]",
            tuple(t for i, t in enumerate(x.shape) if i != d), x.kind)


def cat_stack(g, x):
    nd = len(x.shape)
    if g.rng.random() < 0.5 and nd:
        d = g.rng.randrange(nd)
        extra = g.rng.randint(0, 2)
        y = g.leaf(tuple(extra if i == d else s for i, s in enumerate(x.shape)), x.kind)
        shape = tuple(s + extra if i == d else s for i, s in enumerate(x.shape))
        return f"m.cat([{x.name}, {y}], {d - nd if g.rng.random() < 0.3 else d})", shape, x.kind
    d = g.rng.randint(-nd - 1, nd)
    y = g.leaf(x.shape, x.kind)
    s = list(x.shape)
    s.insert(norm_dim(d, nd + 1), 2)
    return f"m.stack([{x.name}, {y}], {d})", tuple(s), x.kind


def matmul(g, x):
    nd = len(x.shape)
    k = x.shape[-1] if nd else None
    r = g.rng.random()
    n = g.rng.randint(0 if not g.fd else 1, 3)
    if nd == 1:
        if r < 0.3:
            y = g.leaf((k,))
            return f"m.dot({x.name}, {y})", (), "f"
        if r < 0.5:
            y = g.leaf((g.rng.randint(1, 3),))
            return f"m.outer({x.name}, {y})", None, "f"
        y = g.leaf((k, n))
        return f"({x.name} @ {y})", (n,), "f"
    if nd == 2:
        if r < 0.25:
            y = g.leaf((k,))
            return f"m.mv({x.name}, {y})", (x.shape[0],), "f"
        if r < 0.45:
            y = g.leaf((k, n))
            b = g.leaf(g.compat((x.shape[0], n))[-2:])
            return f"m.addmm({b}, {x.name}, {y}, beta={g.rng.choice([1, 0.5])}, alpha=2)", (x.shape[0], n), "f"
        if r < 0.65:
            w = g.leaf((n, k))
            b = g.leaf((n,))
            return f"F.linear({x.name}, {w}, {b})", (x.shape[0], n), "f"
        y = g.leaf((k, n))
        return f"m.mm({x.name}, {y})", (x.shape[0], n), "f"
    if nd == 3:
        y = g.leaf((x.shape[0], k, n))
        if r < 0.5:
            return f"m.bmm({x.name}, {y})", (x.shape[0], x.shape[1], n), "f"
        y = g.leaf((k, n))
        return f"m.matmul({x.name}, {y})", (x.shape[0], x.shape[1], n), "f"
    raise Skip


def einsum(g, x):
    nd = len(x.shape)
    if nd == 0:
        raise Skip
    letters = "ijklmn"[:nd]
    r = g.rng.random()
    if r < 0.5:
        out = "".join(g.rng.sample(letters, g.rng.randint(0, nd)))
        shape = tuple(x.shape[letters.index(c)] for c in out)
        return f"m.einsum('{letters}->{out}', {x.name})", shape, "f"
    y = g.leaf((x.shape[-1], 2))
    return f"m.einsum('{letters},{letters[-1]}z->{letters[:-1]}z', {x.name}, {y})", x.shape[:-1] + (2,), "f"


REDUCTIONS = ["'mean'", "'sum'", "'none'"]


def pointwise_loss(fn, extra=None):
    def build(g, x):
        t = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None,
                   grad=g.rng.random() < 0.5)
        red = g.rng.choice(REDUCTIONS)
        kw = "".join(f", {k}={g.rng.choice(v)}" for k, v in (extra or {}).items())
        return f"F.{fn}({x.name}, {t}, reduction={red}{kw})", x.shape if red == "'none'" else (), "f"
    return build


def bce(g, x):
    t = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None, style="prob",
               grad=g.rng.random() < 0.3)
    red = g.rng.choice(REDUCTIONS)
    if g.rng.random() < 0.5:
        inp = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None, style="prob")
    else:
        inp = g.pos(x.name, "unit") if g.fd else f"m.sigmoid({x.name})"
    return f"F.binary_cross_entropy({inp}, {t}, reduction={red})", x.shape if red == "'none'" else (), "f"


def bce_logits(g, x):
    t = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None, style="prob",
               grad=g.rng.random() < 0.3)
    red = g.rng.choice(REDUCTIONS)
    pw = ""
    if x.shape and g.rng.random() < 0.3:
        # a pos_weight that requires grad is refused by both libraries: only outside fd mode
        w = g.leaf((x.shape[-1],), 'f', dtype=x.dtype if x.kind == 'f' else None,
                   grad=None if not g.fd else False)
        pw = f", pos_weight={g.pos(w)}"
    return (f"F.binary_cross_entropy_with_logits({x.name}, {t}, reduction={red}{pw})",
            x.shape if red == "'none'" else (), "f")


def class_loss(g, x):
    nd = len(x.shape)
    if nd not in (1, 2) or 0 in x.shape:
        raise Skip
    c = x.shape[-1]
    tshape = x.shape[:-1]
    arr = np.random.default_rng(g.rng.getrandbits(32)).integers(0, c, size=tshape)
    if not g.fd and arr.size and g.rng.random() < 0.03:
        arr.reshape(-1)[0] = c
        g.invalid = True
    lit = f"m.tensor({arr.tolist()!r}, dtype=m.int64)"
    red = g.rng.choice(REDUCTIONS)
    shape = tshape if red == "'none'" else ()
    r = g.rng.random()
    if r < 0.4:
        ls = g.rng.choice(["", ", label_smoothing=0.1"])
        return f"F.cross_entropy({x.name}, {lit}, reduction={red}{ls})", shape, "f"
    if r < 0.6:
        p = g.leaf(x.shape, "f", dtype=x.dtype if x.kind == "f" else None, style="prob", grad=False)
        return f"F.cross_entropy({x.name}, {p}, reduction={red})", shape, "f"
    return f"F.nll_loss(F.log_softmax({x.name}, -1), {lit}, reduction={red})", shape, "f"


def layer_norm(g, x):
    if not x.shape or x.shape[-1] < 2:        # one element: the result is rounding noise * rstd
        raise Skip
    d = x.shape[-1]
    if g.rng.random() < 0.5:
        w, b = g.leaf((d,)), g.leaf((d,))
        return f"F.layer_norm({x.name}, ({d},), {w}, {b})", x.shape, "f"
    return f"F.layer_norm({x.name}, ({d},))", x.shape, "f"


def inplace(g, x):
    text, shape, kind = g.other(x.shape, "f")
    if shape is not None and bcast(x.shape, shape) != x.shape:
        raise Skip
    op = g.rng.choice(["add_", "mul_", "sub_", "div_"])
    return f"({x.name} * 1).{op}({text})", x.shape, kind_of(x.kind, "f")


class Op(namedtuple("Op", "name build kinds smooth np_ref")):
    """kinds: operand kinds accepted ('f' float, 'i' int, 'b' bool); smooth: usable in the
    finite-difference oracle; np_ref: NumPy forward for that oracle (elementwise ops)."""


def op(name, build, kinds="f", smooth=True, np_ref=None):
    return Op(name, build, kinds, smooth, np_ref)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


OPS = [
    # arithmetic (tensor or Python number on either side)
    op("add", binary("({a} + {b})"), "fi", np_ref=None),
    op("sub", binary("({a} - {b})"), "fi"),
    op("mul", binary("({a} * {b})"), "fi"),
    op("div", binary("({a} / {b})", result="f", domain="pos_b"), "fi"),
    op("add_alpha", binary("m.add({a}, {b}, alpha=2)", scalar_first=False), "fi"),
    op("pow", binary("({a} ** {b})", kinds="f", domain="pos_a"), "fi"),
    op("pow_scalar", pow_scalar, "fi"),
    op("rpow_scalar", rpow_scalar, "fi"),
    op("floor_divide", binary("({a} // {b})"), "fi", smooth=False),
    op("remainder", binary("({a} % {b})"), "fi", smooth=False),
    op("fmod", binary("m.fmod({a}, {b})", scalar_first=False), "fi", smooth=False),
    op("div_floor", binary("m.div({a}, {b}, rounding_mode='floor')", scalar_first=False), "fi",
       smooth=False),
    op("maximum", binary("m.maximum({a}, {b})", tensor_only=True), "fi"),
    op("minimum", binary("m.minimum({a}, {b})", tensor_only=True), "fi"),
    op("inplace", inplace, "f"),
    # unary math
    op("neg", unary("(-{x})", keeps_kind=True), "fi", np_ref=np.negative),
    op("abs", unary("{x}.abs()", keeps_kind=True), "fi", np_ref=np.abs),
    op("exp", unary("m.exp({x})"), "fi", np_ref=np.exp),
    op("log", unary("{x}.log()", "pos"), "fi", np_ref=np.log),
    op("sqrt", unary("m.sqrt({x})", "pos"), "fi", np_ref=np.sqrt),
    op("sin", unary("{x}.sin()"), "fi", np_ref=np.sin),
    op("cos", unary("m.cos({x})"), "fi", np_ref=np.cos),
    op("tanh", unary("{x}.tanh()"), "fi", np_ref=np.tanh),
    op("sigmoid", unary("m.sigmoid({x})"), "fi", np_ref=_sigmoid),
    op("reciprocal", unary("{x}.reciprocal()", "pos"), "fi", np_ref=np.reciprocal),
    op("square", unary("m.square({x})", keeps_kind=True), "fi", np_ref=np.square),
    op("sign", unary("{x}.sign()", keeps_kind=True), "fi", smooth=False),
    op("relu", unary("m.relu({x})", keeps_kind=True), "fi", np_ref=lambda a: np.maximum(a, 0)),
    # nn.functional activations
    op("F.gelu", unary_params("F.gelu({x}, approximate={a})", {"a": ["'none'", "'tanh'"]})),
    op("F.silu", unary("F.silu({x})"), np_ref=lambda a: a * _sigmoid(a)),
    op("F.softplus", unary_params("F.softplus({x}, beta={b}, threshold={t})",
                                  {"b": ["1", "2.0", "0.5"], "t": ["20", "1.0", "5"]})),
    op("F.elu", unary_params("F.elu({x}, alpha={a})", {"a": ["1.0", "0.5", "2"]})),
    op("F.leaky_relu", unary_params("F.leaky_relu({x}, {s})", {"s": ["0.01", "0.2", "-0.5"]})),
    op("F.relu", unary("F.relu({x})"), "fi"),
    op("F.tanh", unary("F.tanh({x})")),
    op("F.sigmoid", unary("F.sigmoid({x})")),
    # selections
    op("clamp", clamp, "fi"),
    op("where", where, "fi"),
    op("masked_fill", masked_fill, "fi"),
    op("compare", binary("({a} > {b})", result="b"), "fi", smooth=False),
    op("compare_eq", binary("({a} == {b})", result="b"), "fi", smooth=False),
    op("logical", binary("m.logical_and({a} > 0, {b})", tensor_only=True, result="b"), "fi",
       smooth=False),
    # reductions
    op("sum", reduce_dims("sum"), "fi"),
    op("mean", reduce_dims("mean"), "f"),
    op("prod", reduce_dims("prod", multi=False), "fi"),
    op("amax", reduce_dims("amax"), "fi"),
    op("amin", reduce_dims("amin"), "fi"),
    op("max", reduce_dims("max", multi=False, extra="[0]"), "fi"),
    op("min_values", reduce_dims("min", multi=False, full=False, extra=".values"), "fi"),
    op("argmax", reduce_dims("argmax", multi=False, result="i"), "fi", smooth=False),
    op("logsumexp", reduce_dims("logsumexp", full=False), "f"),
    op("var", var_std("var"), "f"),
    op("std", var_std("std"), "f"),
    op("norm", norm, "f"),
    op("cumsum", along_dim("{x}.cumsum({d})", result=None), "fi"),
    op("softmax", along_dim("m.softmax({x}, {d})"), "f"),
    op("log_softmax", along_dim("F.log_softmax({x}, dim={d})"), "f"),
    op("any", reduce_dims("any", multi=False, result="b"), "fib", smooth=False),
    # views and shapes
    op("reshape", reshape, "fib"),
    op("unsqueeze", unsqueeze, "fib"),
    op("squeeze", squeeze, "fib"),
    op("transpose", transpose, "fib"),
    op("expand", expand, "fib"),
    op("flip", flip, "fib"),
    op("narrow", narrow, "fib"),
    op("index", index_misc, "fib"),
    op("index_select", index_select, "fi"),
    op("scatter_add", scatter_add, "f"),
    op("split", split_like, "fib"),
    op("cat", cat_stack, "fi"),
    # products
    op("matmul", matmul, "f"),
    op("einsum", einsum, "f"),
    # losses and normalisation
    op("mse_loss", pointwise_loss("mse_loss")),
    op("l1_loss", pointwise_loss("l1_loss")),
    op("smooth_l1_loss", pointwise_loss("smooth_l1_loss", {"beta": ["1.0", "0.5", "0.0"]})),
    op("huber_loss", pointwise_loss("huber_loss", {"delta": ["1.0", "0.5"]})),
    op("bce", bce),
    op("bce_logits", bce_logits),
    op("cross_entropy", class_loss),
    op("layer_norm", layer_norm),
]
OPS_BY_NAME = {o.name: o for o in OPS}

Program = namedtuple("Program", "leaves stmts nodes dtype seed")


def generate(rng, fd=False, max_ops=4, ops=None):
    """One random program drawn from `rng` (random.Random or hypothesis' randoms())."""
    g = Gen(rng, fd)
    table = [o for o in (ops or OPS) if (o.smooth or not fd)]
    kinds = "f" if fd else rng.choice("fffffi")
    g.leaf(g.shape(), kinds)
    n_ops = rng.randint(1, max_ops)
    for _ in range(n_ops):
        cands = [n for n in g.nodes if n.shape is not None]
        x = g.nodes[-1] if (g.nodes[-1].shape is not None and rng.random() < 0.7) else rng.choice(cands)
        for _attempt in range(20):
            o = rng.choice(table)
            if x.kind not in o.kinds:
                continue
            mark = (len(g.leaves), len(g.nodes))
            try:
                text, shape, kind = o.build(g, x)
            except Skip:
                del g.leaves[mark[0]:]
                del g.nodes[mark[1]:]
                g.invalid = False
                continue
            name = f"n{len(g.stmts) + 1}"
            inputs = tuple(n.name for n in g.nodes if _mentions(text, n.name))
            g.nodes.append(Node(name, None if shape is None else tuple(shape), kind, None, o.name,
                                inputs))
            g.stmts.append((name, text))
            break
        if g.invalid or g.nodes[-1].shape is None or not g.stmts:
            break
    if not g.stmts:
        return generate(rng, fd, max_ops, ops)
    return Program(g.leaves, g.stmts, g.nodes, g.dtype, None)


def _mentions(text, name):
    return re.search(rf"\b{name}\b", text) is not None


# ----------------------------------------------------------------------------------------------
# running one program in one library
# ----------------------------------------------------------------------------------------------

Run = namedtuple("Run", "stage exc out grads ns")   # stage: None (ran), 'forward', 'backward'


def dtype_name(t):
    return str(t.dtype).rsplit(".", 1)[-1]


def make_leaves(m, leaves):
    ns = {}
    for lf in leaves:
        ns[lf.name] = m.tensor(lf.array, dtype=getattr(m, lf.dtype), requires_grad=lf.requires_grad)
    return ns


def run(m, prog, upto=None, backward="sum", cot_seed=0, leaves=None):
    """Execute the program's statements (through index `upto`) with `m` as the library."""
    stmts = prog.stmts if upto is None else prog.stmts[:upto + 1]
    ns = make_leaves(m, prog.leaves if leaves is None else leaves)
    ns["m"], ns["F"] = m, m.nn.functional
    src = "\n".join(f"{n} = {t}" for n, t in stmts)
    try:
        exec(compile(src, "<fuzz program>", "exec"), ns)
    except Exception as e:           # noqa: BLE001  (the type is what is compared)
        return Run("forward", e, None, None, ns)
    out = ns[stmts[-1][0]]
    grads = {}
    if getattr(out, "requires_grad", False) and out.is_floating_point():
        try:
            if backward == "sum":
                out.sum().backward()
            else:
                v = np.random.default_rng(cot_seed).standard_normal(tuple(out.shape))
                (out * m.tensor(v, dtype=out.dtype)).sum().backward()
        except Exception as e:       # noqa: BLE001
            return Run("backward", e, out, None, ns)
        for lf in (prog.leaves if leaves is None else leaves):
            g = ns[lf.name].grad
            grads[lf.name] = None if g is None else (g.detach().numpy().copy(), dtype_name(g))
    return Run(None, None, out, grads, ns)


# ----------------------------------------------------------------------------------------------
# comparing two runs
# ----------------------------------------------------------------------------------------------

TOL = {"float32": (2e-4, 1e-5), "float64": (1e-9, 1e-12), "float16": (2e-3, 1e-3)}

Mismatch = namedtuple("Mismatch", "kind detail")


def builtin_base(exc_type):
    """The nearest builtin exception class: torch's own classes compare by what they extend."""
    for cls in exc_type.__mro__:
        if cls.__module__ == "builtins":
            return cls
    return Exception


def compare_values(ref, got, dtype, what):
    """None, or the Mismatch for two arrays; `dtype` names the tolerance (the least precise float
    dtype the program computes in)."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        return Mismatch(f"{what} shape", f"{got.shape} vs torch {ref.shape}")
    if ref.dtype.kind not in "fc":
        if not np.array_equal(ref, got):
            return Mismatch(f"{what} value", f"{_show(got)} vs torch {_show(ref)}")
        return None
    r = ref.astype(np.float64)
    q = got.astype(np.float64)
    rn, qn = np.isnan(r), np.isnan(q)
    if not np.array_equal(rn, qn):
        kind = "NaN where torch has a number" if (qn & ~rn).any() else "number where torch has NaN"
        return Mismatch(f"{what} {kind}", f"{_show(got)} vs torch {_show(ref)}")
    ri, qi = np.isinf(r), np.isinf(q)
    if not np.array_equal(np.where(ri, r, 0), np.where(qi, q, 0)):
        return Mismatch(f"{what} inf vs number", f"{_show(got)} vs torch {_show(ref)}")
    fin = ~(rn | ri)
    if fin.any():
        rtol, atol = TOL.get(dtype, TOL["float32"])
        a, b = q[fin], r[fin]
        scale = np.max(np.abs(b))
        # summation order differs between the libraries: allow rounding relative to the tensor's
        # largest magnitude as well as each element's own
        tol = atol + rtol * np.maximum(np.abs(b), 0.05 * scale)
        if not (np.abs(a - b) <= tol).all():
            return Mismatch(f"{what} value", f"{_show(got)} vs torch {_show(ref)}")
    return None


def _show(a):
    a = np.asarray(a)
    if a.size > 12:
        return f"array{a.shape}[{', '.join(fmt(v) for v in a.reshape(-1)[:12])}, ...]"
    return np.array2string(a, precision=6, separator=", ").replace("\n", "")


def compare(ref, got, tol="float64"):
    """First Mismatch between the torch run `ref` and the fastgrad run `got`, or None. `tol`: the
    dtype whose tolerance applies (float32 as soon as any float32 value takes part)."""
    if ref.stage is not None and "INTERNAL ASSERT FAILED" in str(ref.exc):
        return None                          # a PyTorch bug (True ** t): nothing to compare with
    if ref.stage == "forward" or got.stage == "forward":
        if ref.stage != "forward":
            return Mismatch("fastgrad raised", f"{type(got.exc).__name__}: {got.exc}")
        if got.stage != "forward":
            return Mismatch("missing error", f"torch raises {type(ref.exc).__name__}: {ref.exc}")
        base = builtin_base(type(ref.exc))
        if not isinstance(got.exc, base):
            return Mismatch("exception type", f"{type(got.exc).__name__} ({got.exc}) vs torch "
                                              f"{base.__name__} ({ref.exc})")
        return None
    r, q = ref.out, got.out
    if not hasattr(q, "dtype") or not hasattr(r, "dtype"):
        return Mismatch("result type", f"{type(q).__name__} vs torch {type(r).__name__}")
    if dtype_name(q) != dtype_name(r):
        return Mismatch("dtype", f"{dtype_name(q)} vs torch {dtype_name(r)}")
    if tuple(q.shape) != tuple(r.shape):
        return Mismatch("shape", f"{tuple(q.shape)} vs torch {tuple(r.shape)}")
    tol = "float32" if "float32" in (tol, dtype_name(r)) else tol
    mm = compare_values(r.detach().numpy(), q.detach().numpy(), tol, "forward")
    if mm:
        return mm
    if bool(q.requires_grad) != bool(r.requires_grad):
        return Mismatch("requires_grad", f"{q.requires_grad} vs torch {r.requires_grad}")
    if ref.stage == "backward" or got.stage == "backward":
        if ref.stage != "backward":
            return Mismatch("fastgrad raised in backward", f"{type(got.exc).__name__}: {got.exc}")
        if got.stage != "backward":
            return Mismatch("missing error in backward", f"torch raises {type(ref.exc).__name__}: {ref.exc}")
        if not isinstance(got.exc, builtin_base(type(ref.exc))):
            return Mismatch("exception type in backward", f"{type(got.exc).__name__} ({got.exc}) "
                                                          f"vs torch {type(ref.exc).__name__} "
                                                          f"({ref.exc})")
        return None
    for name, rg in ref.grads.items():
        qg = got.grads.get(name)
        if (rg is None) != (qg is None):
            return Mismatch("grad None vs tensor", f"{name}.grad: {'None' if qg is None else 'tensor'}"
                                                   f" vs torch {'None' if rg is None else 'tensor'}")
        if rg is None:
            continue
        if rg[1] != qg[1]:
            return Mismatch("grad dtype", f"{name}.grad {qg[1]} vs torch {rg[1]}")
        mm = compare_values(rg[0], qg[0], "float32" if "float32" in (tol, rg[1]) else tol, "grad")
        if mm:
            return Mismatch(mm.kind, f"{name}.grad {mm.detail}")
    return None


# ----------------------------------------------------------------------------------------------
# checking, attribution, reduction to one op
# ----------------------------------------------------------------------------------------------

Finding = namedtuple("Finding", "op kind detail repro features")


def _libs():
    import fastgrad
    import fastgrad.nn.functional  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    return fastgrad, torch


def _check(fg, torch, prog, upto=None, leaves=None, backward="sum", seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np_err = np.seterr(all="ignore")
        try:
            ref = run(torch, prog, upto, backward, seed, leaves)
            got = run(fg, prog, upto, backward, seed, leaves)
        finally:
            np.seterr(**np_err)
    # float32 tolerance as soon as any value of the reference run is float32 (a Python number
    # promotes an integer tensor, or makes a where() result, in the default float32)
    f32 = any(getattr(v, "dtype", None) == torch.float32 for v in ref.ns.values())
    return compare(ref, got, "float32" if f32 else "float64"), ref, got


def check(prog, seed=0, libs=None):
    """A Finding for the program's first mismatch with torch, or None."""
    fg, torch = libs or _libs()
    backward = "sum" if seed % 2 else "weighted"
    k = known_crash(prog)
    if k is not None:
        mm = Mismatch("crash", k.issue)
        return Finding("(not run)", mm.kind, mm.detail, repro(prog, backward, seed), features(prog, mm))
    mm, ref, got = _check(fg, torch, prog, backward=backward, seed=seed)
    if mm is None:
        return None
    # culprit: the first statement whose sub-program already mismatches
    i = 0
    for i in range(len(prog.stmts)):
        sub_mm, sub_ref, _ = _check(fg, torch, prog, upto=i, backward=backward, seed=seed)
        if sub_mm is not None:
            mm, ref = sub_mm, sub_ref
            break
    name, text = prog.stmts[i]
    node = next(n for n in prog.nodes if n.name == name)
    sub = Program(prog.leaves, prog.stmts[:i + 1], prog.nodes, prog.dtype, prog.seed)
    # one op on leaves that hold its operands' values (as torch computed them)
    one = _one_op(prog, node, text, ref.ns)
    if one is not None:
        one_mm, _, _ = _check(fg, torch, one, backward=backward, seed=seed)
        if one_mm is not None and one_mm.kind == mm.kind:
            sub, mm = one, one_mm
    used = [lf for lf in sub.leaves if any(_mentions(t, lf.name) for _, t in sub.stmts)]
    sub = sub._replace(leaves=used)
    return Finding(node.op, mm.kind, mm.detail, repro(sub, backward, seed), features(sub, mm))


def _one_op(prog, node, text, ns):
    leaves = []
    for name in node.inputs:
        t = ns.get(name)
        if t is None or not hasattr(t, "detach"):
            return None
        if name.startswith("x"):
            leaves.append(next(lf for lf in prog.leaves if lf.name == name))
            continue
        arr = t.detach().numpy().copy()
        leaves.append(Leaf(name, arr, dtype_name(t), bool(t.requires_grad)))
    return Program(leaves, [(node.name, text)], prog.nodes, prog.dtype, prog.seed)


def literal(arr, dtype, requires_grad):
    rg = ", requires_grad=True" if requires_grad else ""
    if arr.size == 0:
        return f"m.zeros({arr.shape!r}, dtype=m.{dtype}{rg})"
    body = _nested(arr)
    return f"m.tensor({body}, dtype=m.{dtype}{rg})"


def _nested(a):
    if a.ndim == 0:
        return fmt(a.item())
    return "[" + ", ".join(_nested(x) for x in a) + "]"


def repro(prog, backward="sum", seed=0):
    """One line: leaves, statements and the backward call (bind m to fastgrad or torch)."""
    parts = [f"{lf.name} = {literal(lf.array, lf.dtype, lf.requires_grad)}" for lf in prog.leaves]
    parts += [f"{n} = {t}" for n, t in prog.stmts]
    out = prog.stmts[-1][0]
    if backward == "sum":
        parts.append(f"{out}.sum().backward()")
    else:
        parts.append(f"({out} * m.tensor(np.random.default_rng({seed}).standard_normal("
                     f"tuple({out}.shape)), dtype={out}.dtype)).sum().backward()")
    return "; ".join(parts)


Features = namedtuple("Features", "zero_d zero_size nonfinite edge dtypes ops text")


def features(prog, mm):
    arrays = [lf.array for lf in prog.leaves]
    floats = [a for a in arrays if a.dtype.kind == "f"]
    text = " ".join(t for _, t in prog.stmts)
    edge_vals = [0.0, 1.0]
    return Features(
        zero_d=any(a.ndim == 0 for a in arrays),
        zero_size=any(a.size == 0 for a in arrays) or "(0" in mm.detail or ", 0)" in mm.detail,
        nonfinite=any(not np.isfinite(a).all() for a in floats),
        edge=any(np.isin(a, edge_vals).any() or (np.abs(a[a != 0]) < 1e-37).any()
                 or (np.abs(a) >= 1e29).any() for a in floats if a.size),
        dtypes=frozenset(lf.dtype for lf in prog.leaves),
        ops=text, text=f"{mm.kind}: {mm.detail}")


# ----------------------------------------------------------------------------------------------
# classes open on other branches: excused until their fixes are merged (then empty this list)
# ----------------------------------------------------------------------------------------------

KnownOpen = namedtuple("KnownOpen", "issue predicate crashes")
KnownOpen.__new__.__defaults__ = (None,)
KnownOpen.__doc__ = """issue: the issue's phrase; predicate(Finding) -> bool; crashes(Program) -> bool
for a program that must not run at all in fastgrad (it would take the process down)."""


def on_0d(prog, pattern):
    """True when a statement matching regex `pattern` applies to a 0-d operand."""
    shapes = {n.name: n.shape for n in prog.nodes}
    for _name, text in prog.stmts:
        mt = re.search(r"\b(\w+)" + pattern, text)
        if mt and shapes.get(mt.group(1)) == ():
            return True
    return False


EXC_KINDS = ("fastgrad raised", "missing error", "exception type", "fastgrad raised in backward",
             "missing error in backward", "exception type in backward", "shape", "crash")
NAN_LEAK = ("grad NaN where torch has a number", "grad inf vs number")


def _zero_d_or_size(f):
    return (f.features.zero_d and f.kind in EXC_KINDS) or f.features.zero_size


# ops whose backward masks or zeroes the incoming gradient (the NaN x 0 sites); a NaN gradient
# can surface downstream of them, so the whole sub-program's text is searched
MASKING = re.compile(r"m\.where|clamp|maximum|minimum|\.abs\(|sign\(|relu|_loss|softplus|elu|"
                     r"gelu|silu|norm\(|amax|amin|\.max\(|\.min\(|masked_fill|\*\*|rounding_mode|"
                     r"//|%|fmod|prod\(|\.log\(|sqrt|reciprocal|/|\.var\(|\.std\(|logsumexp|"
                     r"layer_norm|argmax")


def _masked_nan(f):
    return f.kind in NAN_LEAK and MASKING.search(f.features.ops) is not None


def _listed_edge_value(f):
    ft = f.features
    return ((f.op in ("softmax", "log_softmax", "cross_entropy", "logsumexp") and ft.nonfinite)
            or (f.op in ("sign", "relu", "F.relu", "abs") and ft.nonfinite)
            or (f.op == "rpow_scalar" and "(0" in ft.ops)
            or ("**" in ft.ops and f.kind.startswith("grad") and "NaN" in f.kind)
            or (f.op in ("std", "var", "layer_norm") and (ft.nonfinite or ft.edge)))


def _dtype_rule(f):
    return (f.kind in ("dtype", "grad dtype")
            or (f.op.startswith("compare") and f.kind == "forward value")  # number's dtype
            or (len(f.features.dtypes) > 1 and f.kind in ("forward value", "missing error"))
            or (f.kind.startswith("missing error") and ("expected scalar type" in f.detail
                                                        or "Found dtype" in f.detail)))


KNOWN_OPEN = []      # every class that other branches were fixing has landed


# Classes the fuzzer found that no branch fixes yet and this one left alone (each with why); the
# CI-bounded run excuses them so that it guards everything else.
OPEN_HERE = [
    KnownOpen("einsum of an integer and a floating operand: PyTorch raises on some contraction "
              "paths ('expected scalar type Long but found Double') and promotes on others; "
              "fastgrad always promotes, as NumPy's einsum",
              lambda f: f.op == "einsum" and f.kind.startswith("missing error")),
    KnownOpen("var/std with correction >= N (no degrees of freedom left): the forward is inf or "
              "NaN in both; the gradient's inf/NaN pattern is PyTorch's own arithmetic on a zero "
              "or negative divisor, and fastgrad's differs in sign or NaN-ness",
              lambda f: re.search(r"\.(var|std)\(.*correction=[2-9]", f.features.ops) is not None
              and f.kind.startswith("grad")),
    KnownOpen("maximum/minimum backward where an operand is NaN (PyTorch hands the gradient to "
              "both sides / to the NaN side)",
              lambda f: f.op in ("maximum", "minimum") and f.features.nonfinite),
    KnownOpen("signed zero: nll_loss / cross_entropy of a certain class give +0.0 where PyTorch "
              "gives -0.0 (visible through 1/x)",
              lambda f: f.kind == "forward inf vs number" and ("nll_loss" in f.features.ops
                                                               or "cross_entropy" in f.features.ops)),
    KnownOpen("sin/cos of |x| > 1e15: the libm argument reductions differ (not a fault)",
              lambda f: f.op in ("sin", "cos") and f.kind == "forward value" and f.features.edge),
    KnownOpen("PyTorch's pow and gelu at infinities: gelu(+-inf) is NaN in PyTorch, x ** 0.5 and "
              "x ** 1.5 at -inf are NaN (PyTorch takes sqrt), a subnormal scalar exponent is kept "
              "in double precision",
              lambda f: (f.op in ("F.gelu", "pow", "pow_scalar")
                         or re.search(r"\*\* [01]\.5\b", f.features.ops))
              and (f.features.nonfinite or f.features.edge or "5e-324" in f.features.ops)),
    KnownOpen("norm backward at a zero or subnormal norm (PyTorch divides by it)",
              lambda f: "norm(" in f.features.ops and f.kind.startswith("grad")
              and (f.features.edge or f.features.nonfinite or "NaN" in f.kind)),
    KnownOpen("norm of a float32 value whose square overflows: PyTorch returns |x| for a one-"
              "element reduction (1e30) and inf for two elements",
              lambda f: f.op == "norm" and f.features.edge and f.kind.startswith("forward")),
    KnownOpen("remainder/fmod by a tiny or subnormal divisor: ill-conditioned (the operands' last "
              "bits decide the quotient); PyTorch gives NaN for x % 5e-324",
              lambda f: f.op in ("remainder", "fmod") and (f.features.edge
                                                           or f.kind == "forward value")),
    KnownOpen("rounding of fused kernels, amplified downstream: layer_norm of a near-constant row "
              "(noise * rstd; PyTorch's row of two gives exactly +-1), gelu's negative tail "
              "(PyTorch's float32 gelu is ~1e-3 off there), cross_entropy near 0 (a cancellation)",
              lambda f: (f.kind in ("forward value", "grad value") or "NaN" in f.kind)
              and re.search(r"layer_norm|gelu|cross_entropy", f.features.ops) is not None
              and (f.kind.endswith("value") or "**" in f.features.ops)),
    KnownOpen("index_select out of range: PyTorch raises IndexError or RuntimeError depending on "
              "its kernel path",
              lambda f: f.op == "index_select" and f.kind == "exception type"
              and "out of" in f.detail),
    KnownOpen("summation order: a value that cancels in exact arithmetic (x * (1/x), sums with "
              "+-1e30 terms) keeps different rounding residue",
              lambda f: f.kind in ("grad value", "forward value") and (f.features.edge or (
                  "/" in f.features.ops and "e-0" in f.detail) or "1e+30" in f.features.ops)),
]


def known_open(f):
    """The KNOWN_OPEN (or OPEN_HERE) entry that excuses Finding `f`, or None."""
    for k in KNOWN_OPEN + OPEN_HERE:
        if k.predicate(f):
            return k
    return None


def known_crash(prog):
    for k in KNOWN_OPEN:
        if k.crashes is not None and k.crashes(prog):
            return k
    return None


# ----------------------------------------------------------------------------------------------
# the oracle without torch: central differences and NumPy
# ----------------------------------------------------------------------------------------------

def _invalid_for_torch(prog, got, seed):
    """Whether PyTorch (when installed) raises the same exception type at the same stage: the
    program was not valid, and there is nothing to compare."""
    try:
        import torch
    except ImportError:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run(torch, prog, backward="weighted", cot_seed=seed)
    return ref.stage == got.stage and type(ref.exc) is type(got.exc)


def check_fd(prog, seed=0):
    """Mismatch text for a float64 program of smooth ops against central differences and NumPy
    elementwise references, or None. Points near a kink (where the quotient depends on the step)
    are skipped."""
    import fastgrad as m
    if known_crash(prog) is not None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = run(m, prog, backward="weighted", cot_seed=seed)
    if got.stage is not None:
        msg = f"raised {type(got.exc).__name__}: {got.exc}"
        if _invalid_for_torch(prog, got, seed):
            return None             # the generator wrote a program PyTorch refuses the same way
        mm = Mismatch("fastgrad raised", msg)
        f = Finding("?", mm.kind, msg, "", features(prog, mm))
        return None if known_open(f) is not None else msg
    for node in prog.nodes:
        o = OPS_BY_NAME.get(node.op)
        if o is None or o.np_ref is None or len(node.inputs) != 1:
            continue
        x = got.ns[node.inputs[0]].detach().numpy().astype(np.float64)
        y = got.ns[node.name].detach().numpy()
        if "+ 0.25)" in dict(prog.stmts)[node.name]:       # the operand went through Gen.pos
            x = x * x + 0.25
        with np.errstate(all="ignore"):
            expect = o.np_ref(x)
        if not np.allclose(y, expect, rtol=1e-12, atol=1e-12, equal_nan=True):
            return f"forward of {node.op}: {_show(y)} vs NumPy {_show(expect)}"
    out = got.out
    if not (out.requires_grad and out.is_floating_point()) or 0 in tuple(out.shape):
        return None
    v = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    wrt = [lf for lf in prog.leaves if lf.requires_grad]

    def f(arrays):
        lv = [lf._replace(array=a, requires_grad=False) for lf, a in zip(wrt, arrays)]
        rest = [lf for lf in prog.leaves if not lf.requires_grad]
        with m.no_grad():
            r = run(m, prog, leaves=lv + rest)
        return float(np.sum(v * r.out.numpy()))

    base = [lf.array.astype(np.float64) for lf in wrt]
    for k, lf in enumerate(wrt):
        g = got.grads[lf.name]
        if g is None:
            continue
        for idx in np.ndindex(lf.array.shape):
            ests = []
            for eps in (1e-6, 1e-4):
                plus = [a.copy() for a in base]
                minus = [a.copy() for a in base]
                plus[k][idx] += eps
                minus[k][idx] -= eps
                ests.append((f(plus) - f(minus)) / (2 * eps))
            if abs(ests[0] - ests[1]) > 1e-3 * (1 + abs(ests[0])):
                continue                                   # near a kink: no derivative to test
            if abs(g[0][idx] - ests[0]) > 1e-5 * (1 + abs(ests[0])):
                return f"grad of {lf.name}{list(idx)}: {g[0][idx]!r} vs central difference {ests[0]!r}"
    return None


# ----------------------------------------------------------------------------------------------
# command line: the long run
# ----------------------------------------------------------------------------------------------

def program_rng(seed, i):
    return random.Random(f"fastgrad-fuzz:{seed}:{i}")


def long_run(n, seed=0, fd=False, show_known=False, only=None, out=sys.stdout):
    libs = None if fd else _libs()
    classes = Counter()
    first = {}
    bad = known = here = 0
    indices = [only] if only is not None else range(n)
    for i in indices:
        prog = generate(program_rng(seed, i), fd=fd)
        if only is not None:
            print("\n".join(f"{a} = {b}" for a, b in prog.stmts), file=out)
        if fd:
            msg = check_fd(prog, seed=i)
            if msg:
                bad += 1
                key = ("fd", msg.split(":")[0])
                classes[key] += 1
                first.setdefault(key, (i, msg, repro(prog, "weighted", i)))
            continue
        f = check(prog, seed=i, libs=libs)
        if f is None:
            continue
        k = known_open(f)
        if k is not None:
            if k in OPEN_HERE:
                here += 1
            else:
                known += 1
            if not show_known:
                continue
        bad += k is None
        key = (f.op, f.kind, k.issue if k else "")
        classes[key] += 1
        first.setdefault(key, (i, f.detail, f.repro))
    total = len(indices)
    print(f"{total} programs (seed {seed}{', finite differences' if fd else ', vs torch'}): "
          f"{bad} mismatches ({100.0 * bad / max(total, 1):.2f}%); excused: {known} by KNOWN_OPEN "
          f"({100.0 * known / max(total, 1):.2f}%), {here} by OPEN_HERE", file=out)
    for key, c in classes.most_common():
        i, detail, rep = first[key]
        label = " / ".join(x for x in key if x)
        print(f"\n[{c:6d}] {label}   (program {i})\n    {detail[:300]}\n    {rep}", file=out)
    return bad


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of programs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fd", action="store_true", help="finite-difference oracle (no torch)")
    ap.add_argument("--known", action="store_true", help="also list KNOWN_OPEN classes")
    ap.add_argument("--only", type=int, default=None, help="run one program index")
    ap.add_argument("--report", action="store_true", help="print the rate by class (default)")
    a = ap.parse_args(argv)
    bad = long_run(a.n, a.seed, a.fd, a.known, a.only)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    sys.exit(main())

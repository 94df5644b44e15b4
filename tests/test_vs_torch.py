"""The same programs run in fastgrad and in PyTorch: values, gradients, dtypes,
grad_fn names, reprs and exception types must agree. Skips cleanly without torch."""
import numpy as np
import pytest

from _backend import fg

torch = pytest.importorskip("torch")


def _leaves(T, arrays, dtype):
    return [T.tensor(a, dtype=getattr(T, dtype), requires_grad=True) for a in arrays]


def _np(t):
    return t.detach().numpy()


def _dt(dtype):
    """'float32' for torch.float32 and for fastgrad's float32, whatever its str prefix."""
    return str(dtype).rsplit(".", 1)[-1]


# Each program: (id, function(T, *leaves) -> scalar or tensor, input shapes, sampler kind)
def prog_poly(T, x):
    return (x ** 2 + 3 * x + 1).sum()


def prog_logistic(T, x, w, b):
    p = (x * w + b).sigmoid()
    return -(p.log() + (1 - p).log()).mean()


def prog_mlp_like(T, x, w1, w2):
    h = (x * w1).tanh()
    h = T.relu(h - 0.1) + h.abs() * 0.5
    return (h * w2).sum(dim=-1).exp().mean()


def prog_reductions(T, x):
    m = x.max(dim=1, keepdim=True).values
    s = (x - m).exp().sum(1, keepdim=True)
    return ((x - m) - s.log()).sum(0).mean() + x.min() * 0.25 + x.max()


def prog_clamp_minmax(T, a, b):
    return (T.maximum(a, b) * T.minimum(a, b).clamp(-0.7, 0.7)).sum()


def prog_pow_div(T, a, b):
    return (a.abs() + 0.5) ** b / (b * b + 1) - 2 / (a * a + 1) + b.reciprocal().sin().cos()


def prog_diamond(T, x):
    a = x.exp()
    b = a * x
    c = a.sqrt() + b.tanh()
    return (b * c - a / c).mean((0, 1))


def prog_scalars_both_sides(T, x):
    return (2.0 - x) * (3 + x) / (x + 4.0) + 1.5 ** x - (x - 1) ** 2 + 0.5 * x.neg()


PROGRAMS = [
    ("poly", prog_poly, [(5,)]),
    ("logistic", prog_logistic, [(4, 3), (3,), ()]),
    ("mlp_like", prog_mlp_like, [(4, 1, 3), (2, 3), (3,)]),
    ("reductions", prog_reductions, [(3, 4)]),
    ("clamp_minmax", prog_clamp_minmax, [(2, 3), (3,)]),
    ("pow_div", prog_pow_div, [(2, 3), (1, 3)]),
    ("diamond", prog_diamond, [(2, 2, 3)]),
    ("scalars_both_sides", prog_scalars_both_sides, [(3, 2)]),
]


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("name, prog, shapes", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_program_matches_torch(name, prog, shapes, dtype, rtol, rng):
    arrays = [rng.uniform(0.2, 1.5, size=s) * rng.choice([-1.0, 1.0], size=s) for s in shapes]
    if name == "reductions":     # distinct values: no ties for max/min
        arrays = [(rng.permutation(12) * 0.3 - 1.6).reshape(3, 4)]
    results = {}
    for T in (fg, torch):
        leaves = _leaves(T, arrays, dtype)
        out = prog(T, *leaves)
        seed = T.tensor(np.full(tuple(out.shape), 0.75), dtype=getattr(T, dtype))
        out.backward(seed)
        results[T] = (_np(out), _dt(out.dtype), [(_np(l.grad), _dt(l.grad.dtype)) for l in leaves],
                      out.grad_fn.name())
    (o_f, dt_f, g_f, n_f), (o_t, dt_t, g_t, n_t) = results[fg], results[torch]
    assert dt_f == dt_t
    assert n_f == n_t
    np.testing.assert_allclose(o_f, o_t, rtol=rtol, atol=rtol)
    for i, ((gf, gdf), (gt, gdt)) in enumerate(zip(g_f, g_t)):
        assert gdf == gdt
        assert gf.shape == gt.shape
        np.testing.assert_allclose(gf, gt, rtol=rtol, atol=rtol, err_msg=f"grad of input {i}")


# Expressions over fixed leaves: repr, dtype and grad_fn name must be identical.
EXPRESSIONS = [
    "x", "x + 3", "x * x", "x.exp()", "3 - x", "1 / x", "x / 2", "x ** 2", "x ** y", "2 ** x",
    "-x", "x.abs()", "x.log()", "x.sqrt()", "x.sin()", "x.cos()", "x.tanh()", "x.sigmoid()",
    "x.relu()", "T.relu(x)", "x.clamp(0, 1)", "x.clamp(min=0.5)", "x.clamp(max=0.5)", "x.reciprocal()",
    "T.maximum(x, y)", "T.minimum(x, y)", "x.sum()", "m.sum(0)", "m.sum(1, keepdim=True)",
    "m.sum((0, 1))", "x.mean()", "m.mean(0)", "m.max()", "m.min()", "m.max(1).values",
    "m.max(1).indices", "m.min(0, keepdim=True).values", "x > 1", "x == y", "i * 2", "i * 2.5",
    "i / 2", "i + x", "d * 2", "d + x", "x.detach()", "x.double()", "x.float()", "x.long()",
    "T.exp(x)", "T.sqrt(m)", "s * 2", "s + d", "b * 1", "T.zeros(2, 3)", "T.ones(2, dtype=T.float64)",
    "T.arange(4)", "T.arange(0.0, 1.0, 0.5)", "T.linspace(0, 1, 3)", "T.eye(2)", "T.full((2,), 7)",
    "T.zeros_like(i)", "T.ones_like(d)", "T.tensor([[1e-5, 1.0], [100.0, -3.0]])",
    "T.tensor([123456.0, 0.001])", "T.tensor([0.1, 0.25, 1.0 / 3.0])", "T.tensor([[True, False]])",
    "x.grad",
]


def _env(T):
    return {
        "T": T,
        "x": T.tensor([0.5, 1.0, 2.0], requires_grad=True),
        "y": T.tensor([1.5, 1.0, -1.0], requires_grad=True),
        "m": T.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], requires_grad=True),
        "i": T.tensor([1, 2, 3]),
        "d": T.tensor([1.0, 2.0, 3.0], dtype=T.float64),
        "s": T.tensor(2.5, requires_grad=True),
        "b": T.tensor([True, False, True]),
    }


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_expression_matches_torch(expr):
    out = {}
    for T in (fg, torch):
        r = eval(expr, _env(T))
        out[T] = r
    f, t = out[fg], out[torch]
    if t is None:
        assert f is None
        return
    assert repr(f) == repr(t)
    assert _dt(f.dtype) == _dt(t.dtype)
    assert tuple(f.shape) == tuple(t.shape)
    assert f.requires_grad == t.requires_grad and f.is_leaf == t.is_leaf
    assert (f.grad_fn is None) == (t.grad_fn is None)
    if t.grad_fn is not None:
        assert f.grad_fn.name() == t.grad_fn.name()


# Error programs: the exception type must be the same.
ERRORS = [
    "(x * 2).backward()",
    "T.tensor([1.0]).sum().backward()",
    "T.tensor([1, 2], requires_grad=True)",
    "x.add_(1)",
    "x.numpy()",
    "(x * 2).requires_grad_(False)",
    "x + T.ones(4)",
    "(x * 2).backward(T.ones(4))",
    "x.detach().item()",
    "T.tensor([1.0]).retain_grad()",
    "x.sum(1)",
    "float(x.detach())",
    "x.max(5)",
]


@pytest.mark.parametrize("code", ERRORS)
def test_error_type_matches_torch(code):
    types = {}
    for T in (fg, torch):
        with pytest.raises(Exception) as exc:
            exec(code, _env(T))
        types[T] = type(exc.value)
    assert types[fg].__name__ == types[torch].__name__


def test_promotion_table_matches_torch():
    dtypes = ["float32", "float64", "int64", "bool"]
    scalars = [2, 2.5, True]
    for da in dtypes:
        for db in dtypes:
            for shape_b in [(3,), ()]:
                got, want = [], []
                for T, acc in ((fg, got), (torch, want)):
                    a = T.ones(3, dtype=getattr(T, da))
                    b = T.ones(shape_b, dtype=getattr(T, db))
                    acc.append(_dt((a * b).dtype))
                    acc.append(_dt((a + b).dtype))
                    acc.append(_dt((a / b).dtype))
                assert got == want, (da, db, shape_b)
        for s in scalars:
            got = [_dt(op(fg.ones(2, dtype=getattr(fg, da)), s).dtype) for op in (_mul, _radd, _div)]
            want = [_dt(op(torch.ones(2, dtype=getattr(torch, da)), s).dtype) for op in (_mul, _radd, _div)]
            assert got == want, (da, s)


def _mul(a, s):
    return a * s


def _radd(a, s):
    return s + a


def _div(a, s):
    return a / s


# ---------------------------------------------------------------- random programs
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

RANDOM_UNARY = [
    lambda T, a: a.tanh(), lambda T, a: a.sigmoid(), lambda T, a: a.sin(), lambda T, a: T.cos(a),
    lambda T, a: a.tanh().exp(), lambda T, a: (a * a + 1).log(), lambda T, a: (a * a + 1).sqrt(),
    lambda T, a: (a * a + 1).reciprocal(), lambda T, a: a.relu(), lambda T, a: a.abs(),
    lambda T, a: a.clamp(-0.5, 0.5), lambda T, a: -a, lambda T, a: a * 2.5, lambda T, a: 1.5 - a,
    lambda T, a: a ** 2, lambda T, a: 2.0 ** a.tanh(), lambda T, a: a.sum(-1, keepdim=True),
    lambda T, a: a.mean(0, keepdim=True), lambda T, a: a.max(-1, keepdim=True).values,
    lambda T, a: a - a.min(), lambda T, a: a / 3,
]
RANDOM_BINARY = [
    lambda T, a, b: a + b, lambda T, a, b: a - b, lambda T, a, b: a * b,
    lambda T, a, b: a / (b * b + 1), lambda T, a, b: T.maximum(a, b), lambda T, a, b: T.minimum(a, b),
    lambda T, a, b: (a * a + 1) ** b.tanh(),
]


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-9), ("float32", 2e-5)])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_programs_match_torch(dtype, tol, data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3)).input_shapes
    n_leaves = data.draw(st.integers(1, 3))
    steps = data.draw(st.lists(st.tuples(st.booleans(), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100)),
                               min_size=1, max_size=8))
    seed = data.draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, size=s) for s in shapes[:n_leaves]]
    results = []
    for T in (fg, torch):
        leaves = [T.tensor(a, dtype=getattr(T, dtype), requires_grad=True) for a in arrays]
        pool = list(leaves)
        for binary, op_i, a_i, b_i in steps:
            a = pool[a_i % len(pool)]
            if binary:
                pool.append(RANDOM_BINARY[op_i % len(RANDOM_BINARY)](T, a, pool[b_i % len(pool)]))
            else:
                pool.append(RANDOM_UNARY[op_i % len(RANDOM_UNARY)](T, a))
        out = pool[-1]
        out.backward(T.tensor(np.full(tuple(out.shape), 0.7), dtype=getattr(T, dtype)))
        results.append((_np(out), [None if l.grad is None else _np(l.grad) for l in leaves]))
    (of, gf), (ot, gt) = results
    assert of.shape == ot.shape
    np.testing.assert_allclose(of, ot, rtol=tol, atol=tol)
    for i, (a, b) in enumerate(zip(gf, gt)):
        assert (a is None) == (b is None), f"leaf {i}: grad presence differs"
        if a is not None:
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"grad of leaf {i}")

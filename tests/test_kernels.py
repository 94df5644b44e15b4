"""The elementwise kernels of fastgrad._core.kernels, called directly (kernels._call_kernel runs one
function of the C API on NumPy buffers): every op of kernel_table.py in every loop shape it runs
in (contiguous, scalar operand, strided and broadcast, unary, fused backward), float32 and float64,
lengths 0, 1, odd ones and those around the threading threshold, on one thread and on two.

Each result is checked against NumPy in float64 on the same (rounded) inputs: within
rtol = atol = 8 eps of the element type (float32: 9.5e-7, float64: 1.8e-15). The atol covers the
formulas that cancel (1 - r*r near |r| = 1); vmath.h's exp/tanh/sigmoid/log are within 3 ulp
(tests/test_vmath.py measures them closely). Results must also be bit-identical for 1 and 2
threads (Note [Kernel contract]).
"""
import collections

import numpy as np
import pytest

from _backend import REFERENCE, fg

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own kernels")

if not REFERENCE:
    from fastgrad._core import kernel_table, kernels

    CODES = kernels._op_codes()

PAR_MIN = 65536     # kernels.pxd: below this a launch runs on one thread
CHUNK = 16384       # kernels.pyx: elements per parallel work item
SIZES = [0, 1, 2, 7, 33, 1001, PAR_MIN - 1, PAR_MIN, PAR_MIN + 1, 4 * CHUNK + 4097]
DTYPES = [np.float32, np.float64]

# NumPy references, float64, one per op of the table (a new op without one fails
# test_every_op_has_a_reference)
FORWARD = {
    "ADD": lambda x, y: x + y, "SUB": lambda x, y: x - y, "MUL": lambda x, y: x * y,
    "DIV": lambda x, y: x / y, "RSUB": lambda x, y: y - x, "RDIV": lambda x, y: y / x,
    "POW": lambda x, y: np.power(x, y),
    "NEG": lambda x: -x, "ABS": np.abs, "EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt,
    "SIN": np.sin, "COS": np.cos, "TANH": np.tanh, "SIGMOID": lambda x: 1 / (1 + np.exp(-x)),
    "RELU": lambda x: np.where(x < 0, 0.0, x), "RECIPROCAL": lambda x: 1 / x,
}
BACKWARD = {   # the gradient from g and the saved result r
    "EXP": lambda g, r: g * r, "TANH": lambda g, r: g * (1 - r * r),
    "SIGMOID": lambda g, r: g * r * (1 - r), "RELU": lambda g, r: np.where(r <= 0, 0.0, g),
    "RECIPROCAL": lambda g, r: -g * (r * r),
}
POSITIVE = {"LOG", "SQRT", "POW"}     # ops whose first operand is drawn positive


def _eps(dtype):
    return 8 * float(np.finfo(dtype).eps)


def _close(got, ref, dtype):
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=_eps(dtype), atol=_eps(dtype),
                               equal_nan=True)


def _operand(n, dtype, positive=False, seed=0):
    rng = np.random.default_rng(seed + n)
    lo = 0.25 if positive else -3.0
    return rng.uniform(lo, 3.0, n).astype(dtype)


def _call(kernel, op, out, *, a=None, b=None, s=0.0, n=None, c=None, out2=None, strided=None):
    """kernels._call_kernel with NumPy arrays; returns what it returns (sum_all: the sum)."""
    addr = lambda arr: 0 if arr is None else arr.ctypes.data
    kw = {}
    if strided is not None:
        shape, sa, sb = (np.asarray(v, dtype=np.int64) for v in strided)
        kw = dict(nd=len(shape), shape=addr(shape), sa=addr(sa), sb=addr(sb))
    dtype = out.dtype if out is not None else a.dtype
    return kernels._call_kernel(kernel, CODES[op] if op else 0, np.dtype(dtype).name, addr(out),
                                addr(a), addr(b), s, out.size if n is None else n, addr(c),
                                addr(out2), **kw)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = fg.get_num_threads()
    fg.set_num_threads(request.param)
    yield request.param
    fg.set_num_threads(before)


def _names(shape):
    return [op.name for op in kernel_table.ops_for(shape)] if not REFERENCE else []


def _backward_names():
    return [op.name for op in kernel_table.with_backward()] if not REFERENCE else []


def test_every_op_has_a_reference():
    assert {op.name for op in kernel_table.OPS} == set(FORWARD)
    assert set(_backward_names()) == set(BACKWARD)
    # the generated kernels.pxd carries the table's codes
    assert CODES == {op.name: op.code for op in kernel_table.OPS}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", _names("contiguous"))
def test_binary_contiguous(op, n, dtype, threads):
    x = _operand(n, dtype, op in POSITIVE)
    y = _operand(n, dtype, op == "DIV", seed=1)
    out = np.full(n, np.nan, dtype)
    _call("binary_fwd", op, out, a=x, b=y)
    _close(out, FORWARD[op](x.astype(np.float64), y.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", _names("scalar"))
def test_scalar_operand(op, n, dtype, threads):
    x = _operand(n, dtype, op in POSITIVE or op == "RDIV")
    # POW's exponents with their own loops (kernel_table.py), then ordinary ones
    scalars = [2.0, 3.0, -1.0, -2.0, 0.5, -0.5, 1.7, -0.3] if op == "POW" else [1.7, -0.3]
    for s in scalars:
        out = np.full(n, np.nan, dtype)
        _call("scalar_fwd", op, out, a=x, s=s)
        # the scalar is rounded to the element type once, as the kernel does
        _close(out, FORWARD[op](x.astype(np.float64), float(dtype(s))), dtype)


def _strided_case(op, x, y, dtype):
    """strided_fwd over NumPy views x, y broadcast together, strides as ops_arith passes them
    (elements; 0 on a broadcast or missing dimension)."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    nd = len(shape)

    def strides(v):
        pad = nd - v.ndim
        return [0 if d < pad or v.shape[d - pad] == 1 else v.strides[d - pad] // v.itemsize
                for d in range(nd)]

    out = np.full(shape, np.nan, dtype)
    _call("strided_fwd", op, out, a=x, b=y, strided=(shape, strides(x), strides(y)))
    _close(out, FORWARD[op](x.astype(np.float64), y.astype(np.float64)), dtype)


# (x shape, y shape, x view, y view): the inner loop's four cases (both contiguous, x broadcast,
# y broadcast, both strided), zero-sized and one-element dimensions, odd lengths, a long row
LAYOUTS = [
    ((3, 5), (3, 5), None, None),
    ((1, 7), (4, 7), None, None),             # x broadcast over rows
    ((4, 1), (4, 7), None, None),             # x broadcast along a row: inner stride 0
    ((4, 7), (7,), None, None),               # y missing a dimension
    ((4, 7), (4, 1), None, None),             # y broadcast along a row
    ((6, 9), (6, 9), "T", None),              # x transposed: inner stride 6
    ((5, 10), (5, 5), "step", "T"),           # x every other column, y transposed
    ((2, 3, 5), (3, 1), None, None),
    ((0, 5), (1, 5), None, None),             # empty
    ((3, 0), (3, 1), None, None),             # empty inner dimension
    ((1,), (1,), None, None),
    ((PAR_MIN + 1,), (1,), None, None),       # one long row
    ((1, 1, 1), (2, 1, 3), None, None),
    ((1030, 67), (67,), None, None),          # above PAR_MIN: rows shared across threads
    ((300, 7, 33), (300, 1, 33), None, None),  # the same in 3-D, a chunk ending mid-plane
    ((260, 260), (260, 260), "T", None),
]


def _view(shape, how, dtype, positive, seed):
    v = _operand(int(np.prod(shape)), dtype, positive, seed).reshape(shape)
    if how == "T":
        v = np.ascontiguousarray(v.T).T          # same shape, transposed strides
    elif how == "step":
        v = v[:, ::2]
    return v


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lt: f"{lt[0]}-{lt[1]}-{lt[2]}-{lt[3]}")
@pytest.mark.parametrize("op", _names("strided"))
def test_strided_and_broadcast(op, layout, dtype, threads):
    xs, ys, xv, yv = layout
    x = _view(xs, xv, dtype, op in POSITIVE, 0)
    y = _view(ys, yv, dtype, op == "DIV", 1)
    _strided_case(op, x, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", _names("unary"))
def test_unary(op, n, dtype, threads):
    x = _operand(n, dtype, op in POSITIVE)
    out = np.full(n, np.nan, dtype)
    _call("unary_fwd", op, out, a=x)
    _close(out, FORWARD[op](x.astype(np.float64)), dtype)


def test_relu_passes_nan_and_negative_zero():
    for dtype in DTYPES:
        x = np.array([np.nan, -0.0, 0.0, -1.0, 2.0], dtype)
        out = np.empty_like(x)
        _call("unary_fwd", "RELU", out, a=x)
        assert np.isnan(out[0]) and np.signbit(out[1]) and not np.signbit(out[2])
        assert out[3] == 0 and out[4] == 2
        g = np.full(5, 3.0, dtype)
        _call("unary_bwd", "RELU", out, a=g, b=x)       # NaN r passes g; r <= 0 gives 0
        assert list(out) == [3.0, 0.0, 0.0, 0.0, 3.0]


def _saved(op, n, dtype):
    """A saved forward result r of the op, as its node keeps it."""
    x = _operand(n, dtype, op in POSITIVE, seed=2)
    r = np.empty_like(x)
    _call("unary_fwd", op, r, a=x)
    return r


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", _backward_names())
def test_unary_backward(op, n, dtype, threads):
    r = _saved(op, n, dtype)
    g = _operand(n, dtype, seed=3)
    ref = BACKWARD[op](g.astype(np.float64), r.astype(np.float64))
    out = np.full(n, np.nan, dtype)
    _call("unary_bwd", op, out, a=g, b=r)
    _close(out, ref, dtype)
    _call("unary_bwd", op, g, a=g, b=r)                  # in place: out is g
    _close(g, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", _backward_names())
def test_unary_backward_scalar_gradient(op, n, dtype, threads):
    r = _saved(op, n, dtype)
    out = np.full(n, np.nan, dtype)
    _call("unary_bwd_s", op, out, b=r, s=-1.3)
    _close(out, BACKWARD[op](float(dtype(-1.3)), r.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
def test_mul_both(n, dtype, threads):
    g, b, a = (_operand(n, dtype, seed=k) for k in range(3))
    ga, gb = np.full(n, np.nan, dtype), np.full(n, np.nan, dtype)
    _call("mul_both", None, ga, a=g, b=b, c=a, out2=gb)
    _close(ga, g.astype(np.float64) * b, dtype)
    _close(gb, g.astype(np.float64) * a, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES + [70 * CHUNK + 5])     # more chunks than the stack holds
def test_sum_all(n, dtype, threads):
    x = _operand(n, dtype)
    got = _call("sum_all", None, None, a=x, n=n)
    ref = float(np.sum(x.astype(np.float64)))
    # float64 accumulation whatever the element type: error ~ n * 1e-16 of the absolute sum
    assert abs(got - ref) <= 1e-15 * max(n, 1) * float(np.abs(x.astype(np.float64)).sum()) + 1e-300


def _every_launch(n, dtype):
    """The result of every kernel on length-n inputs, for comparing thread counts."""
    x = _operand(n, dtype, positive=True)
    y = _operand(n, dtype, positive=True, seed=1)
    results = []
    for op in _names("contiguous"):
        out = np.empty_like(x)
        _call("binary_fwd", op, out, a=x, b=y)
        results.append(out)
    for op in _names("scalar"):
        out = np.empty_like(x)
        _call("scalar_fwd", op, out, a=x, s=1.7)
        results.append(out)
    for op in _names("unary"):
        out = np.empty_like(x)
        _call("unary_fwd", op, out, a=x)
        results.append(out)
    for op in _backward_names():
        out = np.empty_like(x)
        _call("unary_bwd", op, out, a=y, b=x)
        results.append(out)
        out = np.empty_like(x)
        _call("unary_bwd_s", op, out, b=x, s=0.7)
        results.append(out)
    results.append(np.array([_call("sum_all", None, None, a=x, n=n)]))
    return results


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [PAR_MIN - 1, PAR_MIN, PAR_MIN + 1, 4 * CHUNK + 4097])
def test_thread_count_does_not_change_results(n, dtype):
    before = fg.get_num_threads()
    try:
        fg.set_num_threads(1)
        one = _every_launch(n, dtype)
        fg.set_num_threads(2)
        two = _every_launch(n, dtype)
    finally:
        fg.set_num_threads(before)
    for r1, r2 in zip(one, two):
        np.testing.assert_array_equal(r1, r2)


def test_unknown_kernel_and_dtype_are_refused():
    out = np.zeros(1)
    with pytest.raises(ValueError, match="no kernel named"):
        kernels._call_kernel("nope", 0, "float64", out.ctypes.data)
    with pytest.raises(ValueError, match="dtype must be"):
        kernels._call_kernel("unary_fwd", 0, "int8", out.ctypes.data)


@pytest.mark.parametrize("n", [1, 7, PAR_MIN + 1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_public_ops_reach_the_kernels(n, dtype):
    """The op modules' calls land in these kernels: fastgrad's results match the direct calls."""
    x = _operand(n, np.dtype(dtype).type, positive=True)
    t = fg.tensor(x)
    for name, fn in [("TANH", fg.tanh), ("EXP", fg.exp), ("SQRT", fg.sqrt), ("RELU", fg.relu)]:
        out = np.empty_like(x)
        _call("unary_fwd", name, out, a=x)
        np.testing.assert_array_equal(fn(t).numpy(), out)
    out = np.empty_like(x)
    _call("scalar_fwd", "POW", out, a=x, s=3.0)
    np.testing.assert_array_equal((t ** 3).numpy(), out)
    out = np.empty_like(x)
    _call("binary_fwd", "DIV", out, a=x, b=x[::-1].copy())
    np.testing.assert_array_equal((t / fg.tensor(x[::-1].copy())).numpy(), out)


# --- optimizer updates (optim_kernels: one driver, run_update, over each optimizer's block) -----
# Two steps from a random state, against PyTorch's single-tensor update in float64 (NumPy), at
# lengths around the parallel-block threshold (2 * PAR_MIN, blocks of OPT_CHUNK = 16384):
# within rtol = atol = 32 eps of the element type (two steps of a few roundings each, and the
# hyper-parameters rounded to the element type first, as PyTorch does).
OPT_SIZES = [0, 1, 7, 2 * PAR_MIN - 1, 2 * PAR_MIN, 2 * PAR_MIN + 1, 9 * CHUNK + 5]


def _opt_close(got, ref, dtype):
    e = 32 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=e, atol=e)


def _opt_start(n, dtype, k):
    rng = np.random.default_rng(n + 10 * k)
    return [rng.standard_normal(n).astype(dtype) for _ in range(3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("nesterov, maximize, wd", [(False, False, 0.0), (True, True, 0.1)])
def test_sgd_update(n, dtype, nesterov, maximize, wd, threads):
    from fastgrad._core import optim_kernels
    p0, g1, g2 = _opt_start(n, dtype, 0)
    lr, mom, damp = 0.1, 0.9, 0.0 if nesterov else 0.2
    p, buf = fg.tensor(p0.copy()), fg.tensor(np.zeros(n, dtype))
    rp, rb = p0.astype(np.float64), None
    for step, g in enumerate([g1, g2]):
        optim_kernels.sgd_update(p, fg.tensor(g), buf, lr, wd, mom, damp, nesterov, maximize,
                                 step == 0)
        d = (-1 if maximize else 1) * g.astype(np.float64) + wd * rp
        rb = d if rb is None else rb * mom + (1 - damp) * d
        rp = rp - lr * (d + mom * rb if nesterov else rb)
    _opt_close(p.numpy(), rp, dtype)
    _opt_close(buf.numpy(), rb, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("amsgrad, decoupled, maximize, wd, beta1",
                         [(False, False, False, 0.0, 0.9), (True, False, True, 0.1, 0.9),
                          (False, True, False, 0.1, 0.9), (False, False, False, 0.0, 0.3)])
def test_adam_update(n, dtype, amsgrad, decoupled, maximize, wd, beta1, threads):
    from fastgrad._core import optim_kernels
    p0, g1, g2 = _opt_start(n, dtype, 1)
    lr, beta2, eps = 0.01, 0.999, 1e-8
    p = fg.tensor(p0.copy())
    st = {"step": fg.tensor(np.zeros((), dtype)), "exp_avg": fg.tensor(np.zeros(n, dtype)),
          "exp_avg_sq": fg.tensor(np.zeros(n, dtype)),
          "max_exp_avg_sq": fg.tensor(np.zeros(n, dtype))}
    rp, m, v, vmax = p0.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    for t, g in enumerate([g1, g2], start=1):
        p.grad = fg.tensor(g)
        optim_kernels.adam_group([p], {p: st}, None, lr, beta1, beta2, eps, wd, amsgrad,
                                 maximize, decoupled)
        d = (-1 if maximize else 1) * g.astype(np.float64)
        if decoupled:
            rp = rp * (1 - lr * wd)
        else:
            d = d + wd * rp
        m = m + (1 - beta1) * (d - m)
        v = v * beta2 + (1 - beta2) * d * d
        vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / np.sqrt(1 - beta2 ** t) + eps
        rp = rp - lr / (1 - beta1 ** t) * m / denom
    _opt_close(p.numpy(), rp, dtype)
    _opt_close(st["exp_avg"].numpy(), m, dtype)
    _opt_close(st["exp_avg_sq"].numpy(), v, dtype)
    assert float(st["step"]) == 2


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("sizes", [[PAR_MIN // 4] * 9, [5, 2 * PAR_MIN + 3, 0, 17, CHUNK - 1]])
def test_group_updates_do_not_depend_on_the_thread_count(kind, sizes):
    """run_group: a group of small parameters that together cross 2 * PAR_MIN is one list of
    blocks shared across the team; each element gets the update it gets alone, on 1 thread or 2."""
    from fastgrad._core import optim_kernels
    runs, before = [], fg.get_num_threads()
    try:
        for threads in (1, 2):
            fg.set_num_threads(threads)
            ps = [fg.tensor(_opt_start(n, np.float32, 4)[0]) for n in sizes]
            state = collections.defaultdict(dict)
            for step in range(2):
                for i, p in enumerate(ps):
                    p.grad = fg.tensor(_opt_start(len(p), np.float32, 5 + i + step)[1])
                if kind == "adam":
                    optim_kernels.adam_group(ps, state, _adam_state, 0.01, 0.9, 0.999, 1e-8,
                                             0.1, False, False, True)
                else:
                    optim_kernels.sgd_group(ps, state, fg.zeros_like, 0.1, 0.0, 0.9, 0.0,
                                            False, False)
            runs.append([p.numpy() for p in ps])
    finally:
        fg.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    alone = fg.tensor(_opt_start(sizes[1], np.float32, 4)[0])   # one parameter by itself
    st = collections.defaultdict(dict)
    for step in range(2):
        alone.grad = fg.tensor(_opt_start(sizes[1], np.float32, 6 + step)[1])
        if kind == "adam":
            optim_kernels.adam_group([alone], st, _adam_state, 0.01, 0.9, 0.999, 1e-8, 0.1,
                                     False, False, True)
        else:
            optim_kernels.sgd_group([alone], st, fg.zeros_like, 0.1, 0.0, 0.9, 0.0, False, False)
    np.testing.assert_array_equal(runs[0][1], alone.numpy())


def test_group_whose_list_grows_during_the_step_is_refused():
    """A state callback that appends to the parameter list mid-step: a RuntimeError (the updates
    are prepared in a buffer sized by the list), the parameters before it still updated."""
    from fastgrad._core import optim_kernels
    ps = [fg.tensor(np.ones(3, np.float32)) for _ in range(40)]
    for p in ps:
        p.grad = fg.ones_like(p)

    def init(st, p):
        _adam_state(st, p)
        if p is ps[-1]:
            extra = fg.tensor(np.ones(3, np.float32))
            extra.grad = fg.ones_like(extra)
            ps.append(extra)
    with pytest.raises(RuntimeError, match="parameter list changed"):
        optim_kernels.adam_group(ps, collections.defaultdict(dict), init, 0.1, 0.9, 0.999,
                                 1e-8, 0.0, False, False, False)
    assert all(p.numpy()[0] < 1 for p in ps[:40])
    assert ps[40].numpy()[0] == 1


def _adam_state(st, p):
    st["step"] = fg.tensor(np.zeros((), np.float32))
    st["exp_avg"] = fg.zeros_like(p)
    st["exp_avg_sq"] = fg.zeros_like(p)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("maximize, wd", [(False, 0.0), (True, 0.1)])
def test_adagrad_update(n, dtype, maximize, wd, threads):
    from fastgrad._core import optim_kernels
    p0, g1, g2 = _opt_start(n, dtype, 2)
    lr, lr_decay, eps = 0.1, 0.01, 1e-10
    p, s, step = fg.tensor(p0.copy()), fg.tensor(np.zeros(n, dtype)), fg.tensor(np.zeros((), dtype))
    rp, rs = p0.astype(np.float64), np.zeros(n)
    for t, g in enumerate([g1, g2], start=1):
        optim_kernels.adagrad_update(p, fg.tensor(g), s, step, lr, lr_decay, eps, wd, maximize)
        d = (-1 if maximize else 1) * g.astype(np.float64) + wd * rp
        rs = rs + d * d
        rp = rp - lr / (1 + (t - 1) * lr_decay) * d / (np.sqrt(rs) + eps)
    _opt_close(p.numpy(), rp, dtype)
    _opt_close(s.numpy(), rs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("centered, momentum, maximize, wd, alpha",
                         [(False, 0.0, False, 0.0, 0.99), (True, 0.5, True, 0.1, 0.9),
                          (True, 0.0, False, 0.0, 0.9), (False, 0.5, False, 0.1, 0.3)])
def test_rmsprop_update(n, dtype, centered, momentum, maximize, wd, alpha, threads):
    from fastgrad._core import optim_kernels
    p0, g1, g2 = _opt_start(n, dtype, 3)
    lr, eps = 0.01, 1e-8
    zeros = lambda: fg.tensor(np.zeros(n, dtype))
    p, sq, step = fg.tensor(p0.copy()), zeros(), fg.tensor(np.zeros((), dtype))
    ga, buf = (zeros() if centered else None), (zeros() if momentum else None)
    rp, rsq, rga, rb = p0.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    for g in [g1, g2]:
        optim_kernels.rmsprop_update(p, fg.tensor(g), sq, ga, buf, step, lr, alpha, eps, wd,
                                     momentum, maximize)
        d = (-1 if maximize else 1) * g.astype(np.float64) + wd * rp
        rsq = rsq * alpha + (1 - alpha) * d * d
        if centered:
            rga = rga + (1 - alpha) * (d - rga)
            avg = np.sqrt(rsq - rga * rga) + eps
        else:
            avg = np.sqrt(rsq) + eps
        if momentum:
            rb = rb * momentum + d / avg
            rp = rp - lr * rb
        else:
            rp = rp - lr * d / avg
    _opt_close(p.numpy(), rp, dtype)
    _opt_close(sq.numpy(), rsq, dtype)

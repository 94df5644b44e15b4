"""The vectorised exp / tanh / sigmoid / log loops (vmath.h): error in ulps against a long-double
reference over a wide range, exact special values, both instruction sets, and the fused backward
from the saved output (also when the incoming gradient is one number broadcast, as below sum())."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from _fd import check_grad

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's own kernels")

if not REFERENCE:
    from fastgrad._core import kernels

OPS = {
    "exp": (lambda t: fg.exp(t), np.exp),
    "tanh": (lambda t: fg.tanh(t), np.tanh),
    "sigmoid": (lambda t: fg.sigmoid(t), lambda x: 1 / (1 + np.exp(-x))),
    "log": (lambda t: fg.log(t), np.log),
}
ISAS = ["baseline", "avx2", "avx512"]
MAX_ULP = 3.0


@pytest.fixture(params=ISAS)
def isa(request):
    before = kernels.vmath_isa()
    got = kernels.vmath_isa(request.param)
    if got != request.param:
        kernels.vmath_isa(before)
        pytest.skip(f"this CPU has no {request.param}")
    yield got
    kernels.vmath_isa(before)


def _inputs(dtype):
    rng = np.random.default_rng(7)
    big = 110.0 if dtype == np.float32 else 750.0
    tiny = np.finfo(dtype).smallest_subnormal
    xs = [rng.uniform(-1, 1, 50_000), rng.uniform(-25, 25, 50_000),
          rng.uniform(-big, big, 50_000), np.linspace(-0.7, 0.7, 20_001),
          rng.standard_normal(20_000) * 1e-3,
          [0.0, -0.0, tiny, -tiny, 1e3 * tiny, np.finfo(dtype).tiny, -np.finfo(dtype).tiny,
           np.finfo(dtype).max, -np.finfo(dtype).max, 88.72, 88.73, -87.3, -103.5, 709.7, 709.79,
           -745.1, 19.0, 9.0, -9.5]]
    with np.errstate(over="ignore"):
        return np.concatenate([np.asarray(x, dtype=np.float64) for x in xs]).astype(dtype)


def _ulps(got, ref, dtype):
    """|got - ref| in units of the last place of ref rounded to dtype (0 where equal)."""
    with np.errstate(over="ignore"):
        refc = ref.astype(dtype)
    spacing = np.spacing(np.abs(refc)).astype(np.longdouble)
    spacing[spacing == 0] = np.finfo(dtype).smallest_subnormal
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.longdouble) - ref) / spacing
    return np.where((got == refc) | (np.isnan(got) & np.isnan(refc)), 0, err)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ulp_error(name, dtype, isa):
    x = _inputs(dtype)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ref = OPS[name][1](x.astype(np.longdouble))
    got = OPS[name][0](fg.from_numpy(x)).numpy()
    assert got.dtype == dtype
    err = _ulps(got, ref, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP, f"{name}({x[worst]!r}) = {got[worst]!r}, ref {ref[worst]!r}"


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(name, dtype, isa):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], dtype=dtype)
    got = OPS[name][0](fg.from_numpy(x)).numpy()
    expected = {"exp": [1, 1, np.inf, 0, np.nan, np.nan],
                "tanh": [0.0, -0.0, 1, -1, np.nan, np.nan],
                "sigmoid": [0.5, 0.5, 1, 0, np.nan, np.nan],
                "log": [-np.inf, -np.inf, np.inf, np.nan, np.nan, np.nan]}[name]
    np.testing.assert_array_equal(got, np.array(expected, dtype=dtype))
    if name != "log":
        assert np.array_equal(np.signbit(got[:2]), np.signbit(np.array(expected[:2], dtype=dtype)))


@pytest.mark.parametrize("n", [1, 7, 16, 33, 70_001, 200_003])
def test_lengths_and_tails(n, isa):
    """Every element computed once, whatever the vector tail and chunk split."""
    x = np.linspace(-30, 30, n).astype(np.float32)
    got = fg.tanh(fg.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.tanh(x.astype(np.float64)), rtol=3e-7, atol=0)


def test_isa_argument_checked():
    with pytest.raises(ValueError, match="avx512"):
        kernels.vmath_isa("sse9")


@pytest.mark.parametrize("name", list(OPS))
def test_grad_vs_finite_differences(name, rng):
    x = rng.uniform(0.2, 3, (3, 5)) if name == "log" else rng.uniform(-3, 3, (3, 5))
    check_grad(OPS[name][0], [x], ref=OPS[name][1])


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [5, 100_003])
def test_backward_from_broadcast_gradient(name, dtype, n):
    """f(x).sum() * 3: the gradient reaching f's node is one number broadcast (stride 0); the
    scalar-gradient kernel must give 3 * f'(x) exactly as the formula from the saved output."""
    x = np.random.default_rng(3).uniform(-4, 4, n).astype(dtype)
    t = fg.tensor(x, requires_grad=True)
    y = OPS[name][0](t)
    (y.sum() * 3).backward()
    yv = y.detach().numpy().astype(np.longdouble)
    dy = {"exp": yv, "tanh": 1 - yv * yv, "sigmoid": yv * (1 - yv)}[name]
    # The bound is a few roundings of the formula's terms, not of its result: 1 - y*y cancels
    # where |y| is near 1, and a build that contracts it into an FMA (FASTGRAD_NATIVE=1) rounds
    # once where the default build rounds twice; both are within this.
    terms = {"exp": abs(yv), "tanh": 1 + yv * yv, "sigmoid": abs(yv)}[name]
    err = np.abs(t.grad.numpy().astype(np.longdouble) - 3 * dy)
    assert np.all(err <= 4 * np.finfo(dtype).eps * 3 * terms), float(np.max(err / (3 * terms)))
    assert t.grad.dtype == t.dtype


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx2_and_avx512_loops_give_the_same_bits(op, dtype):
    """The 512-bit loops run each element through the AVX2 loops' arithmetic (vmath.h)."""
    before = kernels.vmath_isa()
    try:
        if kernels.vmath_isa("avx512") != "avx512":
            pytest.skip("this CPU has no avx512")
        x = _inputs(dtype)
        if op == "log":
            x = np.abs(x)
        wide = OPS[op][0](fg.from_numpy(x)).numpy()
        kernels.vmath_isa("avx2")
        narrow = OPS[op][0](fg.from_numpy(x)).numpy()
        np.testing.assert_array_equal(wide, narrow)
    finally:
        kernels.vmath_isa(before)

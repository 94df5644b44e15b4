"""Tests for fastgrad._format: tensor repr text identical to PyTorch's.

The module is loaded straight from src/fastgrad/_format.py (no package import), so these
tests run whether or not the compiled fastgrad package is built. Golden strings run
without torch; the property tests compare against ``repr(torch.from_numpy(a))`` and skip
when torch is not importable.
"""
import contextlib
import importlib.util
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_PATH = pathlib.Path(__file__).resolve().parents[1] / "src" / "fastgrad" / "_format.py"


def _load():
    spec = importlib.util.spec_from_file_location("_fastgrad_format_under_test", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fmt = _load()
format_tensor = fmt.format_tensor

F32, F64, F16 = np.float32, np.float64, np.float16
FLOAT_DTYPES = [np.dtype(d) for d in (np.float32, np.float64, np.float16)]
INT_DTYPES = [np.dtype(d) for d in (np.int64, np.int32, np.int16, np.int8, np.uint8)]
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + [np.dtype(np.bool_)]

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ============================================================== golden strings (no torch)

GOLDEN = [
    (np.array(2.0, F32), [], "tensor(2.)"),
    (np.array(5.0, F32), [], "tensor(5.)"),
    (np.array([1, 2, 3], F32), ["requires_grad=True"], "tensor([1., 2., 3.], requires_grad=True)"),
    (np.exp(np.array([1, 2, 3], F32)), ["grad_fn=<ExpBackward0>"],
     "tensor([ 2.7183,  7.3891, 20.0855], grad_fn=<ExpBackward0>)"),
    (np.array([[1], [2], [3]], F32), ["grad_fn=<ViewBackward0>"],
     "tensor([[1.],\n        [2.],\n        [3.]], grad_fn=<ViewBackward0>)"),
    (np.array([1, 2], F64), ["dtype=torch.float64", "requires_grad=True"],
     "tensor([1., 2.], dtype=torch.float64, requires_grad=True)"),
    (np.array([1, 2], np.int64), [], "tensor([1, 2])"),
    (np.array([1.5, 2.25], F32), [], "tensor([1.5000, 2.2500])"),
    (np.array([1e-5, 1e5], F32), [], "tensor([1.0000e-05, 1.0000e+05])"),
    (np.array([False, True, True]), [], "tensor([False,  True,  True])"),
    (np.zeros((0, 3), F32), [], "tensor([], size=(0, 3))"),
    (np.zeros((0,), F32), [], "tensor([])"),
    # empty: PyTorch shows the dtype for every non-float32 dtype, even int64
    (np.zeros((0,), np.int64), [], "tensor([], dtype=torch.int64)"),
    (np.zeros((2, 0), F64), ["dtype=torch.float64"], "tensor([], size=(2, 0), dtype=torch.float64)"),
    (np.array(np.nan, F32), [], "tensor(nan)"),
    (np.array([np.inf, -np.inf, np.nan], F32), [], "tensor([inf, -inf, nan])"),
    (np.array(-0.0, F32), [], "tensor(-0.)"),
    (np.array([1e10, 1.5], F32), [], "tensor([1.0000e+10, 1.5000e+00])"),
    (np.array([123456789.0, 1.0], F32), [], "tensor([1.2346e+08, 1.0000e+00])"),
    (np.arange(2000, dtype=F32), [],
     "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
     "        1.9990e+03])"),
    (np.arange(30, dtype=F32) / F32(7), [],
     "tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n"
     "        1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286,\n"
     "        2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143,\n"
     "        3.8571, 4.0000, 4.1429])"),
    (np.arange(1200).reshape(2, 3, 200), [],
     "tensor([[[   0,    1,    2,  ...,  197,  198,  199],\n"
     "         [ 200,  201,  202,  ...,  397,  398,  399],\n"
     "         [ 400,  401,  402,  ...,  597,  598,  599]],\n"
     "\n"
     "        [[ 600,  601,  602,  ...,  797,  798,  799],\n"
     "         [ 800,  801,  802,  ...,  997,  998,  999],\n"
     "         [1000, 1001, 1002,  ..., 1197, 1198, 1199]]])"),
    # the suffixes move to the next line when they would pass 80 columns
    ((np.arange(24, dtype=F64) / 3).reshape(2, 3, 4), ["dtype=torch.float64", "grad_fn=<MulBackward0>"],
     "tensor([[[0.0000, 0.3333, 0.6667, 1.0000],\n"
     "         [1.3333, 1.6667, 2.0000, 2.3333],\n"
     "         [2.6667, 3.0000, 3.3333, 3.6667]],\n"
     "\n"
     "        [[4.0000, 4.3333, 4.6667, 5.0000],\n"
     "         [5.3333, 5.6667, 6.0000, 6.3333],\n"
     "         [6.6667, 7.0000, 7.3333, 7.6667]]], dtype=torch.float64,\n"
     "       grad_fn=<MulBackward0>)"),
]


@pytest.mark.parametrize("arr, suffixes, expected", GOLDEN, ids=range(len(GOLDEN)))
def test_golden(arr, suffixes, expected):
    assert format_tensor(arr, suffixes) == expected


def test_golden_printoptions():
    with fmt.printoptions(threshold=5):
        assert format_tensor(np.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    with fmt.printoptions(precision=2):
        assert format_tensor(np.array([1.12345], F32)) == "tensor([1.12])"
    with fmt.printoptions(edgeitems=0, threshold=5):
        assert format_tensor(np.arange(10.0, dtype=F32).reshape(2, 5)) == "tensor([...], size=(2, 5))"
        assert format_tensor(np.arange(10.0, dtype=F32)) == "tensor([...], size=(10,))"
    # options are restored on exit
    assert format_tensor(np.array([1.12345], F32)) == "tensor([1.1235])"


def test_custom_prefix_sets_indent():
    got = format_tensor(np.array([[1, 2], [3, 4]], F32), indent_prefix="MyT(")
    assert got == "MyT([[1., 2.],\n     [3., 4.]])"


def test_set_printoptions_semantics():
    saved = fmt.get_printoptions()
    try:
        assert saved == dict(precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None)
        fmt.set_printoptions(profile="short", sci_mode=True)
        assert fmt.get_printoptions() == dict(precision=2, threshold=1000, edgeitems=2,
                                              linewidth=80, sci_mode=True)
        assert format_tensor(np.array([1.5, 2.0], F32)) == "tensor([1.50e+00, 2.00e+00])"
        fmt.set_printoptions(precision=3)          # sci_mode is reset to None, as in PyTorch
        assert fmt.get_printoptions()["sci_mode"] is None
        assert fmt.get_printoptions()["precision"] == 3
        fmt.set_printoptions(profile="full")
        assert fmt.get_printoptions()["threshold"] == math.inf
        assert "..." not in format_tensor(np.arange(5000))
        fmt.set_printoptions(profile="default")
        assert fmt.get_printoptions() == saved
    finally:
        fmt.set_printoptions(**saved)


def test_dtype_helpers():
    assert fmt.torch_dtype_name(np.float64) == "torch.float64"
    assert fmt.dtype_suffix(np.zeros(2, F32)) is None
    assert fmt.dtype_suffix(np.zeros(2, np.int64)) is None
    assert fmt.dtype_suffix(np.zeros(2, bool)) is None
    assert fmt.dtype_suffix(np.zeros(2, np.int32)) == "dtype=torch.int32"
    assert fmt.dtype_suffix(np.zeros(0, np.int64)) == "dtype=torch.int64"
    assert fmt.dtype_suffix(np.zeros(0, F32)) is None
    with pytest.raises(TypeError):
        format_tensor(np.zeros(2, np.complex64))


def test_module_never_imports_torch():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('m', {str(_PATH)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "import numpy as np\n"
            "m.format_tensor(np.arange(3.0))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ============================================================== against PyTorch

def _torch():
    return pytest.importorskip("torch")


@contextlib.contextmanager
def _both_printoptions(torch, **kwargs):
    """Apply the same print options to PyTorch and to fastgrad._format."""
    from torch._tensor_str import get_printoptions as torch_get
    saved_torch = torch_get()
    saved_ours = fmt.get_printoptions()
    torch.set_printoptions(**kwargs)
    fmt.set_printoptions(**kwargs)
    try:
        yield
    finally:
        torch.set_printoptions(**saved_torch)
        fmt.set_printoptions(**saved_ours)


def _caller_suffixes(torch, t):
    """The suffixes fastgrad's Tensor.__repr__ passes (PyTorch's rules for a non-empty tensor)."""
    out = []
    if t.dtype not in (torch.float32, torch.int64, torch.bool):
        out.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        out.append(f"grad_fn=<{type(t.grad_fn).__name__}>")
    elif t.requires_grad:
        out.append("requires_grad=True")
    return out


def _check(torch, arr, mode="plain", prefix=None):
    t = torch.from_numpy(np.array(arr, order="C"))  # (ascontiguousarray makes 0-d 1-d)
    if mode != "plain" and arr.dtype.kind == "f":
        t = t.requires_grad_()
        if mode == "mul":
            t = t * 1
    expected = repr(t)
    if prefix is None:
        got = format_tensor(arr, _caller_suffixes(torch, t))
    else:
        class Sub(torch.Tensor):
            pass
        Sub.__name__ = prefix
        expected = repr(t.detach().as_subclass(Sub))
        got = format_tensor(arr, _caller_suffixes(torch, t.detach()), indent_prefix=prefix + "(")
    assert got == expected, f"\n--- ours ---\n{got}\n--- torch ---\n{expected}"


_SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, -1e-5, 5e-5, 1e-3, 0.5, 1e4, 99999.0,
            1e8, 1.5e8, 1e9, -1e12, 123456.789, -2.5e-7, 1e30, 3.0, -7.0, 1000.0, 1001.0]


def _float_elements():
    return st.one_of(
        st.integers(-1000, 1000).map(float),                 # integer-valued floats
        st.floats(-10, 10),
        st.floats(-1e6, 1e6),
        st.sampled_from(_SPECIAL),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def _fill(draw, elements, n):
    """n values: drawn one by one for small arrays (good shrinking), else sampled with a
    drawn seed from a drawn pool of values (keeps Hypothesis' data small)."""
    if n <= 32:
        return draw(st.lists(elements, min_size=n, max_size=n))
    pool = draw(st.lists(elements, min_size=1, max_size=10))
    seed = draw(st.integers(0, 2**32 - 1))
    picks = np.random.default_rng(seed).integers(0, len(pool), n)
    return [pool[i] for i in picks]


@st.composite
def arrays(draw, dtypes=ALL_DTYPES, max_dims=3, max_side=6):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    n = int(np.prod(shape))
    if dtype.kind == "f":
        values = _fill(draw, _float_elements(), n)
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1e-6, 1e-3, 1e3, 1e7, 1e9]))
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            arr = (np.array(values, dtype=np.float64) * scale).astype(dtype)
    elif dtype.kind == "b":
        arr = np.array(_fill(draw, st.booleans(), n), dtype=bool)
    else:
        info = np.iinfo(dtype)
        elem = st.one_of(st.integers(-5, 20).filter(lambda v: info.min <= v <= info.max),
                         st.integers(int(info.min), int(info.max)))
        arr = np.array(_fill(draw, elem, n), dtype=dtype)
    arr = arr.reshape(shape)
    if arr.ndim >= 2 and draw(st.booleans()):
        arr = arr.T                                        # non-contiguous input
    return arr


@PROPERTY
@given(arr=arrays(), mode=st.sampled_from(["plain", "leaf", "mul"]))
def test_matches_torch(arr, mode):
    _check(_torch(), arr, mode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=st.one_of(arrays(dtypes=[np.dtype(F32), np.dtype(F64)], max_dims=2, max_side=30),
                     arrays(dtypes=[np.dtype(F32), np.dtype(F64)], max_dims=4, max_side=5)),
       mode=st.sampled_from(["plain", "leaf", "mul"]))
def test_matches_torch_wide_rows(arr, mode):
    # longer rows: line wrapping and suffix wrapping at 80 columns
    _check(_torch(), arr, mode)


@settings(max_examples=60, deadline=None)
@given(arr=arrays(max_dims=3, max_side=12), name=st.sampled_from(["T", "MyTensor", "Parameter"]))
def test_matches_torch_other_prefix(arr, name):
    _check(_torch(), arr, prefix=name)


_BIG_SHAPES = [(1001,), (2000,), (40, 30), (3, 400), (400, 3), (3, 20, 20), (7, 7, 7, 7), (2, 1001),
               (1000,), (10, 100), (1, 1, 1500)]


@settings(max_examples=80, deadline=None)
@given(shape=st.sampled_from(_BIG_SHAPES),
       dtype=st.sampled_from(ALL_DTYPES),
       kind=st.sampled_from(["randn", "arange", "ints", "mixed", "special"]),
       scale=st.sampled_from([1.0, 1e-5, 1e4, 1e9]),
       seed=st.integers(0, 2**32 - 1))
def test_matches_torch_large(shape, dtype, kind, scale, seed):
    torch = _torch()
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "randn":
        base = rng.standard_normal(n) * scale
    elif kind == "arange":
        base = np.arange(n, dtype=np.float64) * scale
    elif kind == "ints":
        base = rng.integers(-100, 100, n).astype(np.float64)
    elif kind == "mixed":
        base = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)
    else:
        base = rng.choice(np.array(_SPECIAL), n)
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype.kind == "b":
            arr = base > 0
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arr = np.nan_to_num(base, nan=0, posinf=0, neginf=0)
            arr = np.clip(np.round(arr), info.min, info.max).astype(dtype)
        else:
            arr = base.astype(dtype)
    _check(torch, arr.reshape(shape), mode="plain")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=arrays(max_dims=3, max_side=9),
       precision=st.integers(0, 8),
       threshold=st.sampled_from([None, 0, 5, 10, 50, 1000]),
       edgeitems=st.sampled_from([None, 0, 1, 2, 4]),
       linewidth=st.sampled_from([None, 1, 20, 40, 60, 120]),
       sci_mode=st.sampled_from([None, True, False]),
       profile=st.sampled_from([None, "default", "short", "full"]),
       mode=st.sampled_from(["plain", "mul"]))
def test_matches_torch_printoptions(arr, precision, threshold, edgeitems, linewidth, sci_mode,
                                    profile, mode):
    torch = _torch()
    with _both_printoptions(torch, precision=precision, threshold=threshold, edgeitems=edgeitems,
                            linewidth=linewidth, sci_mode=sci_mode, profile=profile):
        _check(torch, arr, mode)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (3, 0, 2), (1,), (2, 1, 1)])
def test_matches_torch_edge_shapes(dtype, shape):
    torch = _torch()
    arr = (np.arange(int(np.prod(shape))) - 1).astype(dtype).reshape(shape)
    _check(torch, arr)
    if dtype.kind == "f":
        _check(torch, arr, mode="leaf")
        _check(torch, arr, mode="mul")
